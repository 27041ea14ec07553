// fuzz_cifar10.cpp: CIFAR-10 binary batches (label byte + 3x32x32 bytes per record).
#include "app/data.h"
#include "fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    try {
        ddpm::Dataset d;
        ddpm::parse_cifar10_batch(ddpm::fuzz::as_string(data, size), "input", d);
        if (d.pixels.size() != static_cast<size_t>(d.n * 3072)) __builtin_trap();
    } catch (const ddpm::DataError&) {
    }
    return 0;
}
