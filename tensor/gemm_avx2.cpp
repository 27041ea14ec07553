// gemm_avx2.cpp: the AVX2 + FMA family of gemm_kernels.h (compiled with
// -mavx2 -mfma; only called after cpuid said the CPU has them). 8 floats per
// vector, register tile of up to 6 rows x 2 vectors: 12 accumulators, 2 rows
// of B and one broadcast in the 16 ymm registers.
#include "tensor/gemm_kernels.h"

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>

#include "tensor/avx2.h"

namespace ddpm {

namespace {

constexpr int kMR = 6, kNV = 2, kL = 8;

// Lane l of the mask is set (all ones) when l < n: maskload/maskstore's form.
inline __m256i lanes(int64_t n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

// The tile's last vector, whole (a plain load or store) or cut to the lanes in
// `last` (masked: AVX2's masked moves cost several times a plain one on some
// CPUs; measured on AMD Zen 3, where masked stores were a quarter of a tile's time).
template <bool Whole> inline __m256 load_last(const float* p, __m256i last) {
    return Whole ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, last);
}
template <bool Whole> inline void store_last(float* p, __m256i last, __m256 v) {
    if constexpr (Whole)
        _mm256_storeu_ps(p, v);
    else
        _mm256_maskstore_ps(p, last, v);
}

// One MR x (NV vectors) tile of C, op(A)(i, k) = A[i rs + k cs], the last vector
// whole or limited to the lanes in `last`.
template <int MR, int NV, bool Whole>
void tile(int64_t K, const float* A, int64_t rs, int64_t cs, const float* B, int64_t ldb, float* C, int64_t ldc, __m256i last,
          bool accumulate) {
    __m256 c[MR][NV];
#pragma GCC unroll 12
    for (int i = 0; i < MR; ++i)
#pragma GCC unroll 2
        for (int v = 0; v < NV; ++v) c[i][v] = _mm256_setzero_ps();
    for (int64_t k = 0; k < K; ++k) {
        const float* b = B + k * ldb;
        // The next column panel's piece of this row of B, asked for now: where B's rows
        // lie far apart (a 1x1 convolution's, one image plane each) no hardware
        // prefetcher follows so many streams, and the first tile of each panel waited on
        // memory (measured: 1x1 96 -> 32 channels at 28x28, batch 64, forward 6.6 -> 4.0 ms).
        _mm_prefetch(reinterpret_cast<const char*>(b + NV * kL), _MM_HINT_T0);
        __m256 bv[NV];
#pragma GCC unroll 2
        for (int v = 0; v < NV - 1; ++v) bv[v] = _mm256_loadu_ps(b + v * kL);
        bv[NV - 1] = load_last<Whole>(b + (NV - 1) * kL, last);
#pragma GCC unroll 6
        for (int i = 0; i < MR; ++i) {
            const __m256 a = _mm256_broadcast_ss(A + i * rs + k * cs);
#pragma GCC unroll 2
            for (int v = 0; v < NV; ++v) c[i][v] = _mm256_fmadd_ps(a, bv[v], c[i][v]);
        }
    }
#pragma GCC unroll 6
    for (int i = 0; i < MR; ++i) {
        float* p = C + i * ldc;
#pragma GCC unroll 2
        for (int v = 0; v < NV - 1; ++v) {
            if (accumulate) c[i][v] = _mm256_add_ps(c[i][v], _mm256_loadu_ps(p + v * kL));
            _mm256_storeu_ps(p + v * kL, c[i][v]);
        }
        if (accumulate) c[i][NV - 1] = _mm256_add_ps(c[i][NV - 1], load_last<Whole>(p + (NV - 1) * kL, last));
        store_last<Whole>(p + (NV - 1) * kL, last, c[i][NV - 1]);
    }
}

using TileFn = void (*)(int64_t, const float*, int64_t, int64_t, const float*, int64_t, float*, int64_t, __m256i, bool);

// kTiles[whole][mr - 1][nv - 1]
template <int MR, bool Whole> constexpr TileFn row_of_tiles[kNV] = {tile<MR, 1, Whole>, tile<MR, 2, Whole>};
template <bool Whole>
constexpr const TileFn* tiles_of[kMR] = {row_of_tiles<1, Whole>, row_of_tiles<2, Whole>, row_of_tiles<3, Whole>,
                                         row_of_tiles<4, Whole>, row_of_tiles<5, Whole>, row_of_tiles<6, Whole>};
constexpr const TileFn* const* kTiles[2] = {tiles_of<false>, tiles_of<true>};

}  // namespace

// Column panels of 16 outer, row blocks of 6 inner, as the AVX-512 family.
void sgemm_avx2(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B, int64_t ldb, float* C,
                int64_t ldc, bool accumulate, bool trans_a) {
    const int64_t rs = trans_a ? 1 : lda, cs = trans_a ? lda : 1;  // op(A)(i, k) = A[i rs + k cs]
    for (int64_t j0 = 0; j0 < N; j0 += kNV * kL) {
        const int64_t n = N - j0 < kNV * kL ? N - j0 : kNV * kL;
        const int64_t nv = (n + kL - 1) / kL;
        const __m256i last = lanes(n - (nv - 1) * kL);
        const bool whole = n % kL == 0;
        for (int64_t i0 = 0; i0 < M; i0 += kMR) {
            const int64_t mr = M - i0 < kMR ? M - i0 : kMR;
            kTiles[whole][mr - 1][nv - 1](K, A + i0 * rs, rs, cs, B + j0, ldb, C + i0 * ldc + j0, ldc, last, accumulate);
        }
    }
}


// dst (cols x rows) = src (rows x cols, row length ld)^T, by 8 x 8 blocks in
// registers (the plain loop for the ragged edges).
void transpose_avx2(const float* src, int64_t rows, int64_t cols, int64_t ld, float* dst) {
    int64_t r0 = 0;
    for (; r0 + 8 <= rows; r0 += 8) {
        int64_t c0 = 0;
        for (; c0 + 8 <= cols; c0 += 8) {
            __m256 r[8];
            for (int i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(src + (r0 + i) * ld + c0);
            transpose8x8(r);
            for (int i = 0; i < 8; ++i) _mm256_storeu_ps(dst + (c0 + i) * rows + r0, r[i]);
        }
        for (; c0 < cols; ++c0)
            for (int64_t i = 0; i < 8; ++i) dst[c0 * rows + r0 + i] = src[(r0 + i) * ld + c0];
    }
    for (; r0 < rows; ++r0)
        for (int64_t c = 0; c < cols; ++c) dst[c * rows + r0] = src[r0 * ld + c];
}

}  // namespace ddpm

#else  // a compiler without AVX2: the family is never offered

namespace ddpm {
void sgemm_avx2(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B, int64_t ldb, float* C,
                int64_t ldc, bool accumulate, bool trans_a) {
    sgemm_reference(M, N, K, A, lda, B, ldb, C, ldc, accumulate, trans_a);
}
void transpose_avx2(const float* src, int64_t rows, int64_t cols, int64_t ld, float* dst) {
    transpose_reference(src, rows, cols, ld, dst);
}
}  // namespace ddpm

#endif
