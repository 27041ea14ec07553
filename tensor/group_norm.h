// group_norm.h: group normalisation (Wu & He, 2018), fused forward and backward.
#pragma once

#include "tensor/tensor.h"

namespace ddpm {

// x is (B,C,...) with C divisible by `groups`; gamma, beta are (C), or (B,C) for one
// affine per image (the timestep's scale and shift of a ResBlock, guide.md §5).
// y = (x - mean) * rstd * gamma[c] + beta[c], mean and rstd = 1/sqrt(var + eps)
// taken over each group of C/groups channels and all spatial positions.
// mean and rstd (B,groups) are returned for backward.
struct GroupNormOut {
    Tensor y, mean, rstd;
};
GroupNormOut group_norm_forward(const Tensor& x, const Tensor& gamma, const Tensor& beta, int64_t groups,
                                double eps);

// With xhat = (x - mean) * rstd and g = dy * gamma over one group of N elements:
//   dx = rstd * (g - mean(g) - xhat * mean(g * xhat)),
//   dgamma[c] = sum dy * xhat, dbeta[c] = sum dy (over batch and positions; over
//   positions only when gamma and beta are (B,C)).
struct GroupNormGrads {
    Tensor dx, dgamma, dbeta;
};
GroupNormGrads group_norm_backward(const Tensor& dy, const Tensor& x, const Tensor& gamma,
                                   const Tensor& mean, const Tensor& rstd, int64_t groups);

// Fused group norm + SiLU: z = silu(y) = y sigmoid(y) with y as above, in one pass;
// backward takes dz and recomputes y from x (y is never stored):
//   dy = dz s (1 + y (1 - s)), s = sigmoid(y), then the group-norm backward above.
// The same results as silu(group_norm(x)) and its backward (tests compare them).
GroupNormOut group_norm_silu_forward(const Tensor& x, const Tensor& gamma, const Tensor& beta, int64_t groups,
                                     double eps);
GroupNormGrads group_norm_silu_backward(const Tensor& dz, const Tensor& x, const Tensor& gamma, const Tensor& beta,
                                        const Tensor& mean, const Tensor& rstd, int64_t groups);

// The definitions as written (xhat, then y; the backward formula above), one element at
// a time in double precision: slow, for reading and for testing the fused kernels against.
GroupNormOut group_norm_reference(const Tensor& x, const Tensor& gamma, const Tensor& beta, int64_t groups, double eps);
GroupNormGrads group_norm_backward_reference(const Tensor& dy, const Tensor& x, const Tensor& gamma, int64_t groups,
                                             double eps);

}  // namespace ddpm
