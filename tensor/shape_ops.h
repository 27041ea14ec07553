// shape_ops.h: concat and narrow (copies along any axis).
#pragma once

#include <span>
#include <vector>

#include "tensor/tensor.h"

namespace ddpm {

// Joins tensors along `axis`; all other sizes and the dtype must agree.
Tensor concat(std::span<const Tensor> parts, int64_t axis);
inline Tensor concat(const std::vector<Tensor>& parts, int64_t axis) { return concat(std::span<const Tensor>(parts), axis); }
// Elements [begin, begin + length) along `axis`, copied.
Tensor narrow(const Tensor& x, int64_t axis, int64_t begin, int64_t length);

}  // namespace ddpm
