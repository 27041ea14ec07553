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
// to whole vectors, the padding columns zero; Bp's rows lie ldp >= N16 apart).
// Packing rounds to nearest even and costs O(M K + K N) against the product's
// O(M N K) (Winograd packs U once per layer, and its transforms make the pairs
// of V, and of the weight gradient's dM and V^T: sgemm_bf16_pairs takes both
// packed). A register tile then runs as the fp32 one (gemm_avx512.cpp): one
// broadcast pair of A, NV vectors of Bp, MR x NV accumulators, each instruction
// doing 32 multiply-adds.
// Pairs are made by vcvtne2ps2bf16 (round to nearest even) from two rows (k, k + 1)
// or from 32 consecutive k of one row; where that gives them across rather than
// down (op(A) transposed, B given transposed), a 16 x 16 transpose in registers
// puts them in place.
#include "tensor/gemm_kernels.h"

#if defined(__AVX512BF16__) && defined(__AVX512BW__)
#include "tensor/avx512.h"

#include "tensor/gemm_tiles.h"
#include "tensor/scratch.h"

namespace ddpm {

namespace {

constexpr int kL = gemm_tiles::kLanes;

// 16 pairs (r0[j], r1[j]), j < 16, zero past the first n (r1 null: zero high halves).
inline __m512i pairs_down(const float* r0, const float* r1, int64_t n) {
    const __mmask16 m = first_lanes(n);
    return bf16_pairs_of(_mm512_maskz_loadu_ps(m, r0), r1 ? _mm512_maskz_loadu_ps(m, r1) : _mm512_setzero_ps());
}

// 16 pairs (r[2 w], r[2 w + 1]), w < 16, from 32 consecutive floats, zero past the first n.
inline __m512i pairs_along(const float* r, int64_t n) {
    const __m512 lo = _mm512_maskz_loadu_ps(first_lanes(n), r);
    const __m512 hi = _mm512_maskz_loadu_ps(first_lanes(n - kL), r + kL);
    return (__m512i)_mm512_cvtne2ps_pbh(hi, lo);  // the low 16 bits of word w: r[2 w]
}

// Sixteen rows of sixteen 32-bit words -> their transpose, in registers (64 shuffles):
// pairs within 128-bit blocks, then 4 x 4 blocks of 128 bits.
inline void transpose16x16(__m512i r[16]) {
    __m512i t[16];
    for (int i = 0; i < 16; i += 2) {  // t[i], t[i+1]: rows i, i+1 interleaved, in each block
        t[i] = _mm512_unpacklo_epi32(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_epi32(r[i], r[i + 1]);
    }
    for (int g = 0; g < 16; g += 4) {  // r[g + m], block L: column 4 L + m of rows g .. g + 3
        r[g] = _mm512_unpacklo_epi64(t[g], t[g + 2]);
        r[g + 1] = _mm512_unpackhi_epi64(t[g], t[g + 2]);
        r[g + 2] = _mm512_unpacklo_epi64(t[g + 1], t[g + 3]);
        r[g + 3] = _mm512_unpackhi_epi64(t[g + 1], t[g + 3]);
    }
    for (int m = 0; m < 4; ++m) {  // column 4 L + m: block L of r[m], r[4 + m], r[8 + m], r[12 + m]
        const __m512i v0 = _mm512_shuffle_i32x4(r[m], r[4 + m], 0x88), v1 = _mm512_shuffle_i32x4(r[m], r[4 + m], 0xDD);
        const __m512i v2 = _mm512_shuffle_i32x4(r[8 + m], r[12 + m], 0x88);
        const __m512i v3 = _mm512_shuffle_i32x4(r[8 + m], r[12 + m], 0xDD);
        t[m] = _mm512_shuffle_i32x4(v0, v2, 0x88);
        t[4 + m] = _mm512_shuffle_i32x4(v1, v3, 0x88);
        t[8 + m] = _mm512_shuffle_i32x4(v0, v2, 0xDD);
        t[12 + m] = _mm512_shuffle_i32x4(v1, v3, 0xDD);
    }
    for (int i = 0; i < 16; ++i) r[i] = t[i];
}

// Ap (M x K2 pairs) from op(A)(i, k) = A[i rs + k cs].
void pack_a(int64_t M, int64_t K, const float* A, int64_t rs, int64_t cs, uint32_t* Ap) {
    const int64_t K2 = bf16_pairs(K);
    if (cs == 1) {  // a row of A is contiguous: 32 floats -> 16 pairs per conversion
        for (int64_t i = 0; i < M; ++i)
            for (int64_t k = 0; k < K; k += 2 * kL)
                _mm512_mask_storeu_epi32(Ap + i * K2 + k / 2, first_lanes(K2 - k / 2),
                                         pairs_along(A + i * rs + k, K - k));
        return;
    }
    // A stored transposed (rs = 1): 16 rows i at a time, the pairs of 16 k2 made down
    // the columns of A, then transposed into rows.
    for (int64_t i0 = 0; i0 < M; i0 += kL)
        for (int64_t k = 0; k < K; k += 2 * kL) {
            __m512i r[kL];
            for (int w = 0; w < kL; ++w) {
                const int64_t k0 = k + 2 * w;
                r[w] = k0 >= K ? _mm512_setzero_si512()
                               : pairs_down(A + k0 * cs + i0, k0 + 1 < K ? A + (k0 + 1) * cs + i0 : nullptr, M - i0);
            }
            transpose16x16(r);
            for (int64_t ii = 0; ii < kL && i0 + ii < M; ++ii)
                _mm512_mask_storeu_epi32(Ap + (i0 + ii) * K2 + k / 2, first_lanes(K2 - k / 2), r[ii]);
        }
}

// Bp (K2 x N16 pairs, row length ldp) from B (K x N, row length ldb): rows 2 k2
// and 2 k2 + 1 are converted together and their lanes interleaved.
void pack_b(int64_t K, int64_t N, const float* B, int64_t ldb, uint32_t* Bp, int64_t ldp) {
    for (int64_t k = 0; k < K; k += 2) {
        const float* b0 = B + k * ldb;
        for (int64_t j = 0; j < N; j += kL)
            _mm512_storeu_si512(Bp + (k / 2) * ldp + j, pairs_down(b0 + j, k + 1 < K ? b0 + ldb + j : nullptr, N - j));
    }
}

// The same Bp from B given transposed (N x K, row length ldb, entry (k, j) at
// B[j ldb + k]): 16 rows of it at a time, 32 k of each made into 16 pairs, the
// 16 x 16 pairs then transposed in registers. (No fp32 copy of B^T first.)
void pack_b_transposed(int64_t K, int64_t N, const float* B, int64_t ldb, uint32_t* Bp, int64_t N16) {
    const int64_t K2 = bf16_pairs(K);
    for (int64_t j0 = 0; j0 < N16; j0 += kL)
        for (int64_t k = 0; k < K; k += 2 * kL) {
            __m512i r[kL];
            for (int jj = 0; jj < kL; ++jj)
                r[jj] = j0 + jj < N ? pairs_along(B + (j0 + jj) * ldb + k, K - k) : _mm512_setzero_si512();
            transpose16x16(r);
            for (int64_t w = 0; w < kL && k / 2 + w < K2; ++w) _mm512_storeu_si512(Bp + (k / 2 + w) * N16 + j0, r[w]);
        }
}

// One MR x (NV vectors) tile of C: c[i][v] (+)= sum_k2 Ap[i][k2] . Bp[k2][16 v ..].
template <int MR, int NV> struct Tile {
    static void run(int64_t K2, const uint32_t* Ap, const uint32_t* Bp, int64_t ldp, float* C, int64_t ldc,
                    __mmask16 last, bool accumulate) {
        __m512 c[MR][NV];
#pragma GCC unroll 24
        for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
            for (int v = 0; v < NV; ++v) c[i][v] = _mm512_setzero_ps();
        for (int64_t k2 = 0; k2 < K2; ++k2) {
            __m512bh bv[NV];
#pragma GCC unroll 4
            for (int v = 0; v < NV; ++v) bv[v] = (__m512bh)_mm512_loadu_si512(Bp + k2 * ldp + v * kL);
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

void pack_bf16_b_avx512(int64_t K, int64_t N, const float* B, int64_t ldb, uint32_t* Bp, int64_t ldp) {
    pack_b(K, N, B, ldb, Bp, ldp);
}

// guide.md §3: C (M x N) (+)= the product of the packed pairs Ap (M x K2) and Bp
// (K2 x N16, row length ldp): the register tiles of the fp32 family (gemm_tiles.h) on the pairs.
void sgemm_bf16_pairs_avx512(int64_t M, int64_t N, int64_t K, const uint32_t* Ap, const uint32_t* Bp, int64_t ldp,
                             float* C, int64_t ldc, bool accumulate) {
    const int64_t K2 = bf16_pairs(K);
    gemm_tiles::for_each_tile(M, N, [&](int nv, int mr, int64_t i0, int64_t j0, int64_t tail) {
        kTiles[nv - 1][mr - 1](K2, Ap + i0 * K2, Bp + j0, ldp, C + i0 * ldc + j0, ldc, first_lanes(tail), accumulate);
    });
}

namespace {
// Both operands packed for this one product, into this thread's scratch (B by
// pack_b_into(Bp, N16)), then multiplied.
template <class PackB>
void pack_and_multiply(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, bool trans_a, PackB pack_b_into,
                       float* C, int64_t ldc, bool accumulate) {
    const int64_t K2 = bf16_pairs(K), N16 = (N + kL - 1) / kL * kL;
    uint32_t* Ap = thread_scratch<uint32_t, ApTag>(static_cast<size_t>(M * K2));
    uint32_t* Bp = thread_scratch<uint32_t, BpTag>(static_cast<size_t>(K2 * N16));
    pack_bf16_a_avx512(M, K, A, lda, trans_a, Ap);
    pack_b_into(Bp, N16);
    sgemm_bf16_pairs_avx512(M, N, K, Ap, Bp, N16, C, ldc, accumulate);
}
}  // namespace

// guide.md §3: the product with both operands packed for it (B as it stands).
void sgemm_bf16_avx512(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B, int64_t ldb,
                       float* C, int64_t ldc, bool accumulate, bool trans_a) {
    const auto pack = [&](uint32_t* Bp, int64_t N16) { pack_b(K, N, B, ldb, Bp, N16); };
    pack_and_multiply(M, N, K, A, lda, trans_a, pack, C, ldc, accumulate);
}

// The same with B given transposed (N x K), packed from there (the im2col weight gradients' dout col^T).
void sgemm_bf16_bt_avx512(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B, int64_t ldb,
                          float* C, int64_t ldc, bool accumulate, bool trans_a) {
    const auto pack = [&](uint32_t* Bp, int64_t N16) { pack_b_transposed(K, N, B, ldb, Bp, N16); };
    pack_and_multiply(M, N, K, A, lda, trans_a, pack, C, ldc, accumulate);
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
void pack_bf16_b_avx512(int64_t K, int64_t N, const float* B, int64_t ldb, uint32_t* Bp, int64_t ldp) {
    pack_bf16_b_reference(K, N, B, ldb, Bp, ldp);
}
void sgemm_bf16_pairs_avx512(int64_t M, int64_t N, int64_t K, const uint32_t* Ap, const uint32_t* Bp, int64_t ldp,
                             float* C, int64_t ldc, bool accumulate) {
    sgemm_bf16_pairs_reference(M, N, K, Ap, Bp, ldp, C, ldc, accumulate);
}
void sgemm_bf16_bt_avx512(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B, int64_t ldb,
                          float* C, int64_t ldc, bool accumulate, bool trans_a) {
    std::vector<float> bt(static_cast<size_t>(K * N));
    transpose_reference(B, N, K, ldb, bt.data());
    sgemm_bf16_reference(M, N, K, A, lda, bt.data(), N, C, ldc, accumulate, trans_a);
}
}  // namespace ddpm

#endif
