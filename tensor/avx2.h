// avx2.h: AVX2 helpers for the kernels that use AVX2 intrinsics directly (each
// keeps a portable loop beside them for other CPUs and for float64).
#pragma once

#if defined(__AVX2__)
#include <immintrin.h>

namespace ddpm {

// Eight rows of eight floats -> their transpose, in registers (24 shuffles).
// `static`: each file gets its own copy, compiled with that file's instruction set.
static inline void transpose8x8(__m256 r[8]) {
    __m256 t[8], u[8];
    for (int i = 0; i < 4; ++i) {
        t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);      // (a0 b0 a1 b1 | a4 b4 a5 b5)
        t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);  // (a2 b2 a3 b3 | a6 b6 a7 b7)
    }
    for (int i = 0; i < 2; ++i)
        for (int h = 0; h < 2; ++h) {
            u[4 * i + 2 * h] = _mm256_shuffle_ps(t[4 * i + h], t[4 * i + 2 + h], 0x44);      // (a b c d) of one column
            u[4 * i + 2 * h + 1] = _mm256_shuffle_ps(t[4 * i + h], t[4 * i + 2 + h], 0xEE);  // of the next
        }
    for (int j = 0; j < 4; ++j) {
        r[j] = _mm256_permute2f128_ps(u[j], u[4 + j], 0x20);      // columns 0-3: low halves
        r[4 + j] = _mm256_permute2f128_ps(u[j], u[4 + j], 0x31);  // columns 4-7: high halves
    }
}

// Lane k of the mask is set (all ones) when bit k of `bits` is: maskload/maskstore's form.
static inline __m256i bit_mask8(unsigned bits) {
    const __m256i bit = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
    return _mm256_cmpeq_epi32(_mm256_and_si256(_mm256_set1_epi32(static_cast<int>(bits)), bit), bit);
}

}  // namespace ddpm
#endif
