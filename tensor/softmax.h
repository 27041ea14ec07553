// softmax.h: numerically stable softmax and log-softmax along one axis.
#pragma once

#include "tensor/tensor.h"

namespace ddpm {

// y_i = exp(x_i - m) / sum_j exp(x_j - m), m = max_j x_j, along `axis`.
Tensor softmax(const Tensor& x, int64_t axis);
// y_i = x_i - m - log sum_j exp(x_j - m).
Tensor log_softmax(const Tensor& x, int64_t axis);

// Given the forward output y: dx = y * (dy - sum(dy * y)).
Tensor softmax_backward(const Tensor& y, const Tensor& dy, int64_t axis);
// Given the forward output y: dx = dy - exp(y) * sum(dy).
Tensor log_softmax_backward(const Tensor& y, const Tensor& dy, int64_t axis);

}  // namespace ddpm
