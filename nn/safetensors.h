// safetensors.h: reading and writing the safetensors format.
//
// Layout (https://github.com/huggingface/safetensors):
//   8 bytes   N, the header length, little-endian u64
//   N bytes   a JSON object: name -> {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]},
//             plus an optional "__metadata__": {string: string}; padded with spaces
//   the rest  the tensors' bytes, row-major little-endian, at [begin, end) from here
// Tensors are written contiguously in the order given, so the file loads with the
// safetensors package and torch.
#pragma once

#include <map>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "tensor/tensor.h"
#include "util/file_io.h"

namespace ddpm {

// A malformed or unreadable file; the message names the file and what is wrong where.

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;
using Metadata = std::map<std::string, std::string>;

struct SafeTensors {
    NamedTensors tensors;  // in file order
    Metadata metadata;
    const Tensor& at(const std::string& name) const;  // FormatError if absent
    bool contains(const std::string& name) const;
};

// The file's bytes, or a FormatError naming what is wrong.
std::string safetensors_serialize(const NamedTensors& tensors, const Metadata& metadata);
SafeTensors safetensors_parse(const std::string& bytes, const std::string& origin);

// Writes atomically: a temporary file in the same folder, flushed and fsynced,
// renamed over `path`, then the folder fsynced. A crash leaves the old file or the new one.
void save_safetensors(const std::string& path, const NamedTensors& tensors, const Metadata& metadata = {});
SafeTensors load_safetensors(const std::string& path);

}  // namespace ddpm
