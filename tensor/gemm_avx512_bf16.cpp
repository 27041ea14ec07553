// gemm_avx512_bf16.cpp: the bfloat16 family of gemm_kernels.h (--precision bf16),
// compiled with -mavx512f -mavx512bw -mavx512bf16; only called after cpuid said
// the CPU has AVX512_BF16.
//
// vdpbf16ps multiplies bfloat16 pairs and adds both products to one fp32 lane:
//   c[j] += a[2j] b[2j] + a[2j+1] b[2j+1]          (j = 0..15)
// so k runs two at a time, and both operands are packed with the pair (k, k+1)
// side by side in 32 bits:
//   Ap[i][k2]        = (bf16 op(A)(i, 2 k2), bf16 op(A)(i, 2 k2 + 1))   M x K2
//   Bp[k2][j]        = (bf16 B[2 k2][j],     bf16 B[2 k2 + 1][j])       K2 x N16
// (K2 = ceil(K / 2); an odd K pairs its last k with a zero; N16 is N rounded up
// to whole vectors, the padding columns zero). Packing rounds to nearest even
// and costs O(M K + K N) against the product's O(M N K). A register tile then
// runs as the fp32 one (gemm_avx512.cpp): one broadcast pair of A, NV vectors
// of Bp, MR x NV accumulators, each instruction doing 32 multiply-adds.
// A's pairs by scalar bf16_bits when op(A) is transposed (strided), by
// vcvtneps2bf16 when its rows are contiguous; both round to nearest even.
#include "tensor/gemm_kernels.h"

#if defined(__AVX512BF16__) && defined(__AVX512BW__)
#include <immintrin.h>

#include "tensor/gemm_tiles.h"
#include "tensor/scratch.h"

namespace ddpm {

namespace {

constexpr int kL = gemm_tiles::kLanes;

inline __mmask16 lanes(int64_t n) { return static_cast<__mmask16>(n >= kL ? 0xFFFFu : (1u << n) - 1u); }

// Ap (M x K2 pairs) from op(A)(i, k) = A[i rs + k cs].
void pack_a(int64_t M, int64_t K, const float* A, int64_t rs, int64_t cs, uint32_t* Ap) {
    const int64_t K2 = bf16_pairs(K);
    for (int64_t i = 0; i < M; ++i) {
        const float* a = A + i * rs;
        uint32_t* dst = Ap + i * K2;
        if (cs == 1) {  // a row of A is contiguous: 16 floats -> 8 pairs per conversion
            for (int64_t k = 0; k < K; k += kL) {
                const __mmask16 m = lanes(K - k);
                const __m256bh h = _mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(m, a + k));
                const int64_t pairs = (K - k < kL ? K - k + 1 : kL) / 2;
                _mm256_mask_storeu_epi32(dst + k / 2, static_cast<__mmask8>((1u << pairs) - 1u), (__m256i)h);
            }
        } else {
            for (int64_t k2 = 0; k2 < K2; ++k2) {
                const uint32_t hi = 2 * k2 + 1 < K ? bf16_bits(a[(2 * k2 + 1) * cs]) : 0u;
                dst[k2] = bf16_bits(a[2 * k2 * cs]) | hi << 16;
            }
        }
    }
}

// Bp (K2 x N16 pairs) from B (K x N, row length ldb): rows 2 k2 and 2 k2 + 1
// are converted together and their lanes interleaved.
void pack_b(int64_t K, int64_t N, const float* B, int64_t ldb, uint32_t* Bp, int64_t N16) {
    alignas(64) static const uint16_t kInterleave[32] = {0, 16, 1, 17, 2,  18, 3,  19, 4,  20, 5,  21, 6,  22, 7,  23,
                                                          8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31};
    const __m512i idx = _mm512_load_si512(kInterleave);
    for (int64_t k = 0; k < K; k += 2) {
        const float* b0 = B + k * ldb;
        const float* b1 = k + 1 < K ? b0 + ldb : nullptr;
        uint32_t* dst = Bp + (k / 2) * N16;
        for (int64_t j = 0; j < N16; j += kL) {
            const __mmask16 m = lanes(N - j);
            const __m512 r0 = _mm512_maskz_loadu_ps(m, b0 + j);
            const __m512 r1 = b1 ? _mm512_maskz_loadu_ps(m, b1 + j) : _mm512_setzero_ps();
            const __m512i both = (__m512i)_mm512_cvtne2ps_pbh(r1, r0);  // 16 of row 2k2, then 16 of row 2k2+1
            _mm512_storeu_si512(dst + j, _mm512_permutexvar_epi16(idx, both));
        }
    }
}

// One MR x (NV vectors) tile of C: c[i][v] (+)= sum_k2 Ap[i][k2] . Bp[k2][16 v ..].
template <int MR, int NV> struct Tile {
    static void run(int64_t K2, const uint32_t* Ap, const uint32_t* Bp, int64_t N16, float* C, int64_t ldc,
                    __mmask16 last, bool accumulate) {
        __m512 c[MR][NV];
#pragma GCC unroll 24
        for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
            for (int v = 0; v < NV; ++v) c[i][v] = _mm512_setzero_ps();
        for (int64_t k2 = 0; k2 < K2; ++k2) {
            __m512bh bv[NV];
#pragma GCC unroll 4
            for (int v = 0; v < NV; ++v) bv[v] = (__m512bh)_mm512_loadu_si512(Bp + k2 * N16 + v * kL);
#pragma GCC unroll 12
            for (int i = 0; i < MR; ++i) {
                const __m512bh a = (__m512bh)_mm512_set1_epi32(static_cast<int>(Ap[i * K2 + k2]));
#pragma GCC unroll 4
                for (int v = 0; v < NV; ++v) c[i][v] = _mm512_dpbf16_ps(c[i][v], a, bv[v]);
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

using TileFn = void (*)(int64_t, const uint32_t*, const uint32_t*, int64_t, float*, int64_t, __mmask16, bool);
constexpr const TileFn* const* kTiles = gemm_tiles::Table<Tile, TileFn>::by_vectors;  // [nv - 1][mr - 1]

struct ApTag {};
struct BpTag {};

}  // namespace

void pack_bf16_a_avx512(int64_t M, int64_t K, const float* A, int64_t lda, bool trans_a, uint32_t* Ap) {
    pack_a(M, K, A, trans_a ? 1 : lda, trans_a ? lda : 1, Ap);
}

// guide.md §3: B packed into this thread's scratch, then the register tiles of
// the fp32 family (gemm_tiles.h) on the pairs.
void sgemm_bf16_packed_avx512(int64_t M, int64_t N, int64_t K, const uint32_t* Ap, const float* B, int64_t ldb,
                              float* C, int64_t ldc, bool accumulate) {
    const int64_t K2 = bf16_pairs(K), N16 = (N + kL - 1) / kL * kL;
    uint32_t* Bp = thread_scratch<uint32_t, BpTag>(static_cast<size_t>(K2 * N16));
    pack_b(K, N, B, ldb, Bp, N16);
    gemm_tiles::for_each_tile(M, N, [&](int nv, int mr, int64_t i0, int64_t j0, int64_t tail) {
        kTiles[nv - 1][mr - 1](K2, Ap + i0 * K2, Bp + j0, N16, C + i0 * ldc + j0, ldc, lanes(tail), accumulate);
    });
}

// guide.md §3: both operands packed for this one product.
void sgemm_bf16_avx512(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B, int64_t ldb,
                       float* C, int64_t ldc, bool accumulate, bool trans_a) {
    uint32_t* Ap = thread_scratch<uint32_t, ApTag>(static_cast<size_t>(M * bf16_pairs(K)));
    pack_bf16_a_avx512(M, K, A, lda, trans_a, Ap);
    sgemm_bf16_packed_avx512(M, N, K, Ap, B, ldb, C, ldc, accumulate);
}

}  // namespace ddpm

#else  // a compiler without AVX512_BF16: the family is never offered

namespace ddpm {
void sgemm_bf16_avx512(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B, int64_t ldb,
                       float* C, int64_t ldc, bool accumulate, bool trans_a) {
    sgemm_bf16_reference(M, N, K, A, lda, B, ldb, C, ldc, accumulate, trans_a);
}
void pack_bf16_a_avx512(int64_t M, int64_t K, const float* A, int64_t lda, bool trans_a, uint32_t* Ap) {
    pack_bf16_a_reference(M, K, A, lda, trans_a, Ap);
}
void sgemm_bf16_packed_avx512(int64_t M, int64_t N, int64_t K, const uint32_t* Ap, const float* B, int64_t ldb,
                              float* C, int64_t ldc, bool accumulate) {
    sgemm_bf16_packed_reference(M, N, K, Ap, B, ldb, C, ldc, accumulate);
}
}  // namespace ddpm

#endif
