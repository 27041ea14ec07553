// reduce.h: sum, mean and max over any set of axes, and sum_to for broadcast gradients.
#pragma once

#include <vector>

#include "tensor/tensor.h"

namespace ddpm {

// `axes` may be negative; an empty list reduces over every axis. With keepdim
// the reduced axes stay as size 1, so the result broadcasts back against x.
Tensor sum(const Tensor& x, const Axes& axes = {}, bool keepdim = false);
Tensor mean(const Tensor& x, const Axes& axes = {}, bool keepdim = false);
Tensor max(const Tensor& x, const Axes& axes = {}, bool keepdim = false);

// Sums x down to `shape`, which must broadcast to x.shape(): the gradient of a
// broadcast input is the output gradient summed over the axes it was stretched along.
Tensor sum_to(const Tensor& x, const Shape& shape);

// The shape of reducing `shape` over `axes` (empty = all): the reduced axes
// become 1 with keepdim, and are dropped without it.
Shape reduced_shape(const Shape& shape, const Axes& axes, const char* op, bool keepdim = true);

}  // namespace ddpm
