// fuzz_config.cpp: U-Net config files (JSON), parsed and validated.
#include <stdexcept>

#include "fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    try {
        ddpm::UNetConfig c = ddpm::UNetConfig::parse(ddpm::fuzz::as_string(data, size), "input");
        // A config that passed must survive its own round trip unchanged.
        if (ddpm::UNetConfig::from_json(c.to_json()).to_json() != c.to_json()) __builtin_trap();
    } catch (const std::invalid_argument&) {
    }
    return 0;
}
