// fuzz_idx.cpp: IDX image files, plain or gzipped (the Fashion-MNIST reader).
#include "app/data.h"
#include "fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    try {
        const std::string bytes = ddpm::maybe_gunzip(ddpm::fuzz::as_string(data, size), "input", size_t(64) << 20);
        ddpm::Dataset d = ddpm::parse_idx_images(bytes, "input");
        if (d.pixels.size() != static_cast<size_t>(d.n * d.height * d.width)) __builtin_trap();
    } catch (const ddpm::DataError&) {
    }
    return 0;
}
