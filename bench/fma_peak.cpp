// fma_peak.cpp: see fma_peak.h. Each ISA's loop is a function compiled for that
// ISA (a target attribute) and runs only when cpuid reports the ISA.
#include "fma_peak.h"

#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <string_view>

namespace ddpm::bench {

namespace {

constexpr long kIters = 4'000'000;  // x 12 instructions per thread: tens of ms at peak
constexpr int kChains = 12;

// c[j] = c[j] * a + b, chains j independent; returns lane 0 of their sum (so none is dead).
__attribute__((target("avx512f"))) float chains_avx512() {
    const __m512 a = _mm512_set1_ps(0.999f), b = _mm512_set1_ps(1e-3f);
    __m512 c[kChains];
#pragma GCC unroll 12
    for (int j = 0; j < kChains; ++j) c[j] = _mm512_set1_ps(float(j));
    for (long i = 0; i < kIters; ++i)
#pragma GCC unroll 12
        for (int j = 0; j < kChains; ++j) c[j] = _mm512_fmadd_ps(c[j], a, b);
#pragma GCC unroll 12
    for (int j = 1; j < kChains; ++j) c[0] = _mm512_add_ps(c[0], c[j]);
    return _mm512_cvtss_f32(c[0]);  // lane 0 keeps the chains alive (_mm512_reduce_add_ps: GCC 12 warns)
}

__attribute__((target("avx2,fma"))) float chains_avx2() {
    const __m256 a = _mm256_set1_ps(0.999f), b = _mm256_set1_ps(1e-3f);
    __m256 c[kChains];
#pragma GCC unroll 12
    for (int j = 0; j < kChains; ++j) c[j] = _mm256_set1_ps(float(j));
    for (long i = 0; i < kIters; ++i)
#pragma GCC unroll 12
        for (int j = 0; j < kChains; ++j) c[j] = _mm256_fmadd_ps(c[j], a, b);
#pragma GCC unroll 12
    for (int j = 1; j < kChains; ++j) c[0] = _mm256_add_ps(c[0], c[j]);
    return _mm256_cvtss_f32(c[0]);
}

// c[j] += sum over pairs of a * b in bf16 (vdpbf16ps: 32 products into 16 lanes).
__attribute__((target("avx512f,avx512bf16"))) float chains_bf16() {
    const __m512bh a = (__m512bh)_mm512_set1_epi16(0x3f80);  // 1.0
    const __m512bh b = (__m512bh)_mm512_set1_epi16(0x3a83);  // about 1e-3
    __m512 c[kChains];
#pragma GCC unroll 12
    for (int j = 0; j < kChains; ++j) c[j] = _mm512_set1_ps(float(j));
    for (long i = 0; i < kIters; ++i)
#pragma GCC unroll 12
        for (int j = 0; j < kChains; ++j) c[j] = _mm512_dpbf16_ps(c[j], a, b);
#pragma GCC unroll 12
    for (int j = 1; j < kChains; ++j) c[0] = _mm512_add_ps(c[0], c[j]);
    return _mm512_cvtss_f32(c[0]);
}

// Best of three runs of `chains` on every thread at once, in GFLOP/s.
double measure(int threads, double flops_per_instruction, float (*chains)()) {
    double best = 0;
    for (int round = 0; round < 3; ++round) {
        float sink = 0;
        const auto t0 = std::chrono::steady_clock::now();
#pragma omp parallel num_threads(threads) reduction(+ : sink)
        sink += chains();
        const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        const double flops = double(threads) * kIters * kChains * flops_per_instruction;
        best = std::max(best, flops / s * 1e-9 + (sink == 1.25f ? 1e-300 : 0.0));  // sink: keep the result alive
    }
    return best;
}

}  // namespace

const char* fp32_peak_isa(std::string_view family) {
    const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    if (family == "avx2" && avx2) return "avx2";
    if (__builtin_cpu_supports("avx512f")) return "avx512";
    return avx2 ? "avx2" : "none";
}

double fp32_fma_peak_gflops(int threads, std::string_view family) {
    const std::string_view isa = fp32_peak_isa(family);
    if (isa == "avx512") return measure(threads, 16 * 2, chains_avx512);
    if (isa == "avx2") return measure(threads, 8 * 2, chains_avx2);
    return 0;
}

double bf16_dot_peak_gflops(int threads) {
    if (!__builtin_cpu_supports("avx512bf16")) return 0;
    return measure(threads, 32 * 2, chains_bf16);
}

}  // namespace ddpm::bench
