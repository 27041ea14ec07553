// fuzz_image.cpp: PNG and JPEG files of an images:DIR dataset (decode, crop, resize).
// The first byte picks the target size and channel count, the rest is the file.
#include "app/data.h"
#include "fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < 1) return 0;
    const int64_t channels = (data[0] & 1) ? 3 : 1, side = 1 + (data[0] >> 1) % 64;
    try {
        std::vector<uint8_t> px = ddpm::decode_image(ddpm::fuzz::as_string(data + 1, size - 1), "input", side, channels);
        if (px.size() != static_cast<size_t>(channels * side * side)) __builtin_trap();
    } catch (const ddpm::DataError&) {
    }
    return 0;
}
