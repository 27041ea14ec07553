// gemm_avx512.cpp: the AVX-512F family of gemm_kernels.h (compiled with
// -mavx512f -mfma whatever the rest of the build targets; only called after
// cpuid said the CPU has them). 16 floats per vector; register tiles of up to
// 24 accumulators of the 32 zmm registers: 6 rows x 3-4 vectors, or 12 rows
// x 1-2 vectors (gemm_tiles.h).
#include "tensor/gemm_kernels.h"

#if defined(__AVX512F__)
#include "tensor/avx512.h"

#include "tensor/gemm_tiles.h"

namespace ddpm {

namespace {

constexpr int kL = gemm_tiles::kLanes;

// One MR x (NV vectors) tile of C: c[i][v] (+)= sum_k op(A)(i, k) B[k][16 v ..],
// with op(A)(i, k) = A[i rs + k cs].
// The last vector covers only the lanes in `last` (all 16 when the tile is full).
template <int MR, int NV> struct Tile {
    static void run(int64_t K, const float* A, int64_t rs, int64_t cs, const float* B, int64_t ldb, float* C,
                    int64_t ldc, __mmask16 last, bool accumulate) {
        __m512 c[MR][NV];
#pragma GCC unroll 24
        for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
            for (int v = 0; v < NV; ++v) c[i][v] = _mm512_setzero_ps();
        for (int64_t k = 0; k < K; ++k) {
            const float* b = B + k * ldb;
            __m512 bv[NV];
#pragma GCC unroll 4
            for (int v = 0; v < NV - 1; ++v) bv[v] = _mm512_loadu_ps(b + v * kL);
            bv[NV - 1] = _mm512_maskz_loadu_ps(last, b + (NV - 1) * kL);
#pragma GCC unroll 12
            for (int i = 0; i < MR; ++i) {
                const __m512 a = _mm512_set1_ps(A[i * rs + k * cs]);
#pragma GCC unroll 4
                for (int v = 0; v < NV; ++v) c[i][v] = _mm512_fmadd_ps(a, bv[v], c[i][v]);
            }
        }
#pragma GCC unroll 12
        for (int i = 0; i < MR; ++i) {
#pragma GCC unroll 4
            for (int v = 0; v < NV; ++v) {
                float* p = C + i * ldc + v * kL;
                const __mmask16 m = v == NV - 1 ? last : __mmask16(0xFFFF);
                if (accumulate) c[i][v] = _mm512_add_ps(c[i][v], _mm512_maskz_loadu_ps(m, p));
                _mm512_mask_storeu_ps(p, m, c[i][v]);
            }
        }
    }
};

using TileFn = void (*)(int64_t, const float*, int64_t, int64_t, const float*, int64_t, float*, int64_t, __mmask16,
                        bool);
constexpr const TileFn* const* kTiles = gemm_tiles::Table<Tile, TileFn>::by_vectors;  // [nv - 1][mr - 1]

}  // namespace

// guide.md §3: register tiles over C (gemm_tiles.h), each running k over K.
void sgemm_avx512(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B, int64_t ldb,
                  float* C, int64_t ldc, bool accumulate, bool trans_a) {
    const int64_t rs = trans_a ? 1 : lda, cs = trans_a ? lda : 1;  // op(A)(i, k) = A[i rs + k cs]
    gemm_tiles::for_each_tile(M, N, [&](int nv, int mr, int64_t i0, int64_t j0, int64_t tail) {
        kTiles[nv - 1][mr - 1](K, A + i0 * rs, rs, cs, B + j0, ldb, C + i0 * ldc + j0, ldc, first_lanes(tail),
                               accumulate);
    });
}

}  // namespace ddpm

#else  // a compiler without AVX-512 support: the family is never offered

namespace ddpm {
void sgemm_avx512(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B, int64_t ldb,
                  float* C, int64_t ldc, bool accumulate, bool trans_a) {
    sgemm_reference(M, N, K, A, lda, B, ldb, C, ldc, accumulate, trans_a);
}
}  // namespace ddpm

#endif
