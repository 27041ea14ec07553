// gemm_avx2.cpp: the AVX2 + FMA family of gemm_kernels.h (compiled with
// -mavx2 -mfma; only called after cpuid said the CPU has them). 8 floats per
// vector, register tile of up to 6 rows x 2 vectors: 12 accumulators, 2 rows
// of B and one broadcast in the 16 ymm registers.
#include "tensor/gemm_kernels.h"

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>

namespace ddpm {

namespace {

constexpr int kMR = 6, kNV = 2, kL = 8;

// Lane l of the mask is set (all ones) when l < n: maskload/maskstore's form.
inline __m256i lanes(int64_t n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

// One MR x (NV vectors) tile of C, op(A)(i, k) = A[i rs + k cs], the last vector
// limited to the lanes in `last`.
template <int MR, int NV>
void tile(int64_t K, const float* A, int64_t rs, int64_t cs, const float* B, int64_t ldb, float* C, int64_t ldc, __m256i last,
          bool accumulate) {
    __m256 c[MR][NV];
#pragma GCC unroll 12
    for (int i = 0; i < MR; ++i)
#pragma GCC unroll 2
        for (int v = 0; v < NV; ++v) c[i][v] = _mm256_setzero_ps();
    for (int64_t k = 0; k < K; ++k) {
        const float* b = B + k * ldb;
        __m256 bv[NV];
#pragma GCC unroll 2
        for (int v = 0; v < NV - 1; ++v) bv[v] = _mm256_loadu_ps(b + v * kL);
        bv[NV - 1] = _mm256_maskload_ps(b + (NV - 1) * kL, last);
#pragma GCC unroll 6
        for (int i = 0; i < MR; ++i) {
            const __m256 a = _mm256_broadcast_ss(A + i * rs + k * cs);
#pragma GCC unroll 2
            for (int v = 0; v < NV; ++v) c[i][v] = _mm256_fmadd_ps(a, bv[v], c[i][v]);
        }
    }
    const __m256i all = _mm256_set1_epi32(-1);
#pragma GCC unroll 6
    for (int i = 0; i < MR; ++i) {
#pragma GCC unroll 2
        for (int v = 0; v < NV; ++v) {
            float* p = C + i * ldc + v * kL;
            const __m256i m = v == NV - 1 ? last : all;
            if (accumulate) c[i][v] = _mm256_add_ps(c[i][v], _mm256_maskload_ps(p, m));
            _mm256_maskstore_ps(p, m, c[i][v]);
        }
    }
}

using TileFn = void (*)(int64_t, const float*, int64_t, int64_t, const float*, int64_t, float*, int64_t, __m256i, bool);

template <int MR> constexpr TileFn row_of_tiles[kNV] = {tile<MR, 1>, tile<MR, 2>};
constexpr const TileFn* kTiles[kMR] = {row_of_tiles<1>, row_of_tiles<2>, row_of_tiles<3>,
                                       row_of_tiles<4>, row_of_tiles<5>, row_of_tiles<6>};

}  // namespace

// Column panels of 16 outer, row blocks of 6 inner, as the AVX-512 family.
void sgemm_avx2(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B, int64_t ldb, float* C,
                int64_t ldc, bool accumulate, bool trans_a) {
    const int64_t rs = trans_a ? 1 : lda, cs = trans_a ? lda : 1;  // op(A)(i, k) = A[i rs + k cs]
    for (int64_t j0 = 0; j0 < N; j0 += kNV * kL) {
        const int64_t n = N - j0 < kNV * kL ? N - j0 : kNV * kL;
        const int64_t nv = (n + kL - 1) / kL;
        const __m256i last = lanes(n - (nv - 1) * kL);
        for (int64_t i0 = 0; i0 < M; i0 += kMR) {
            const int64_t mr = M - i0 < kMR ? M - i0 : kMR;
            kTiles[mr - 1][nv - 1](K, A + i0 * rs, rs, cs, B + j0, ldb, C + i0 * ldc + j0, ldc, last, accumulate);
        }
    }
}

}  // namespace ddpm

#else  // a compiler without AVX2: the family is never offered

namespace ddpm {
void sgemm_avx2(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B, int64_t ldb, float* C,
                int64_t ldc, bool accumulate, bool trans_a) {
    sgemm_reference(M, N, K, A, lda, B, ldb, C, ldc, accumulate, trans_a);
}
}  // namespace ddpm

#endif
