// fma_peak.h: this CPU's arithmetic peak per thread, measured, for rooflines.
//
// Each thread runs 12 independent chains of vector FMAs on registers only (no
// memory traffic), enough to cover the FMA latency on every x86 core we know
// of: the rate that no kernel can beat, the denominator of "share of peak".
//   fp32: vfmadd231ps, 2 flops per lane (AVX-512: 16 lanes, AVX2: 8).
//   bf16: vdpbf16ps (AVX512_BF16), 32 bf16 products summed into 16 fp32
//         lanes: 64 flops per instruction.
#pragma once

#include <string_view>

namespace ddpm::bench {

// GFLOP/s of `threads` threads together; 0 when the CPU lacks the instructions.
// The fp32 figure is measured at the vector width of the GEMM kernel family
// `family` ("avx2" forced on an AVX-512 CPU is held to the AVX2 peak), otherwise
// ("avx512", "reference") at the widest this CPU has.
double fp32_fma_peak_gflops(int threads, std::string_view family);
double bf16_dot_peak_gflops(int threads);
// The vector width the fp32 figure used: "avx512", "avx2" or "none".
const char* fp32_peak_isa(std::string_view family);

}  // namespace ddpm::bench
