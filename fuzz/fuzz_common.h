// fuzz_common.h: what the libFuzzer harnesses share.
//
// Each harness feeds arbitrary bytes to one reader. A reader may refuse the bytes with
// its documented error type (DataError, FormatError, std::invalid_argument); anything
// else (a crash, a sanitizer report, another exception, a hang) is a bug that
// libFuzzer reports. Run: build-fuzz/fuzz/fuzz_idx fuzz/corpus/idx -max_total_time=60
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "nn/config.h"

namespace ddpm::fuzz {

inline std::string as_string(const uint8_t* data, size_t size) {
    return std::string(reinterpret_cast<const char*>(data), size);
}

// The small U-Net whose checkpoints seed and exercise the safetensors harness.
inline UNetConfig small_model_config() {
    UNetConfig c;
    c.name = "fuzz";
    c.image_size = 4, c.channels = 4, c.ch_mult = {1}, c.num_res_blocks = 1, c.attn_resolutions = {4};
    c.groups = 2, c.dropout = 0.0;
    return c;
}

}  // namespace ddpm::fuzz
