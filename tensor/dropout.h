// dropout.h: inverted dropout (Srivastava et al., 2014).
#pragma once

#include "tensor/random.h"
#include "tensor/tensor.h"

namespace ddpm {

// Each element is kept with probability 1 - p and scaled by 1 / (1 - p), so the
// expectation is unchanged. Element i is kept when its uniform
// (x_i + 0.5) / 2^32 >= p, x_i being number i % 4 of the Philox blocks the call
// reserves (the numbers fill_uniform would draw). Backward needs only which
// elements were kept: one bit each, 64 to a word, kept in `keep`.
struct DropoutOut {
    Tensor y;
    Tensor keep;  // (ceil(n / 64)) words of 64 keep bits, stored in float64 slots
    double p = 0;
};
DropoutOut dropout_forward(const Tensor& x, double p, Generator& gen);

// dx = dy / (1 - p) where the element was kept, 0 where it was dropped.
Tensor dropout_backward(const Tensor& dy, const Tensor& keep, double p);

}  // namespace ddpm
