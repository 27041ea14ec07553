// avx512.h: the AVX-512 intrinsics, for the few kernels that use them directly
// (each keeps a portable loop beside them for other CPUs and for float64).
//
// GCC 12's own intrinsic headers trip -Wuninitialized / -Wmaybe-uninitialized
// wherever they are inlined (their _mm512_undefined_* helpers read an
// uninitialised register on purpose), so a file that includes this header has
// those two warnings off from here on.
#pragma once

#if defined(__AVX512F__)
#include <immintrin.h>
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <cstdint>
namespace ddpm {
// The first n of a vector's 16 float lanes (all for n >= 16, none for n <= 0): the
// mask of a row's last, partial vector.
inline __mmask16 first_lanes(int64_t n) {
    return static_cast<__mmask16>(n >= 16 ? 0xFFFFu : n <= 0 ? 0u : (1u << n) - 1u);
}
}  // namespace ddpm
#endif

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512BF16__)
namespace ddpm {
// 16 pairs of bfloat16s (lo[j], hi[j]), lo in the low half of word j, each rounded to
// nearest even (vcvtne2ps2bf16, which gives all of lo then all of hi; a permute
// interleaves them): the operand layout of vdpbf16ps (gemm_kernels.h).
inline __m512i bf16_pairs_of(__m512 lo, __m512 hi) {
    alignas(64) static const uint16_t kInterleave[32] = {0, 16, 1, 17, 2,  18, 3,  19, 4,  20, 5,  21, 6,  22, 7,  23,
                                                          8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31};
    const __m512i both = (__m512i)_mm512_cvtne2ps_pbh(hi, lo);  // 16 of lo, then 16 of hi
    return _mm512_permutexvar_epi16(_mm512_load_si512(kInterleave), both);
}
}  // namespace ddpm
#endif
