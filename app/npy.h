// npy.h: NumPy's .npy format (version 1.0) for float32 arrays.
#pragma once

#include <string>

#include "tensor/tensor.h"

namespace ddpm {

// "\x93NUMPY", version 1.0, a header dict padded to a multiple of 64 bytes, then
// the little-endian float32 data in C order. Written atomically.
void write_npy(const std::string& path, const Tensor& t);
Tensor read_npy(const std::string& path);  // float32 C-order arrays only

}  // namespace ddpm
