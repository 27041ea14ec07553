// upsample.h: nearest-neighbour upsampling by 2 in both spatial axes.
#pragma once

#include "tensor/tensor.h"

namespace ddpm {

// x is (B,C,H,W); y is (B,C,2H,2W) with y[..., h, w] = x[..., h/2, w/2].
Tensor upsample_nearest2x(const Tensor& x);
// dx[..., h, w] = sum of the 2x2 block of dy it was copied to.
Tensor upsample_nearest2x_backward(const Tensor& dy);

}  // namespace ddpm
