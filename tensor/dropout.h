// dropout.h: inverted dropout (Srivastava et al., 2014).
#pragma once

#include "tensor/random.h"
#include "tensor/tensor.h"

namespace ddpm {

// Each element is kept with probability 1 - p and scaled by 1 / (1 - p), so the
// expectation is unchanged; mask holds 0 or 1 / (1 - p), and dx = dy * mask.
struct DropoutOut {
    Tensor y, mask;
};
DropoutOut dropout_forward(const Tensor& x, double p, Generator& gen);

}  // namespace ddpm
