// gemm_kernels.h: our own single-precision GEMM for the convolution hot path,
// so the U-Net's speed does not depend on which kernel family the BLAS picked.
//
//   C (M x N) = op(A) (M x K) B (K x N)          (accumulate = false)
//   C (M x N) = C + op(A) (M x K) B (K x N)      (accumulate = true)
// all row-major with leading dimensions lda, ldb, ldc (elements); op(A) is A,
// or with trans_a the transpose of A stored as K x M (entry (i, k) at
// A[k lda + i]: the convolutions' W^T dout needs no copy of W). sgemm() also
// takes trans_b (B stored N x K, entry (k, j) at B[j ldb + k]: the weight
// gradients' dout col^T): it copies B^T into per-thread scratch (1/M of the
// product's work) and runs the same kernels.
//
// The shapes are small (the Winograd products: M = output channels, K = input
// channels, N = a cache-sized block of tiles, all 16..256), so there is no
// packing: a register tile of MR rows of C by NV vectors of columns keeps its
// MR x NV accumulators in registers while k runs over K, reading one row of B
// (NV vectors) and broadcasting MR entries of A per step:
//   c[i][v] += A[i][k] * B[k][v*L .. v*L + L)   (L = floats per vector)
// A ragged edge is handled by masked loads and stores, never by padding.
//
// One file per kernel family, chosen once at run time from what the CPU has
// (cpuid):
//   gemm_reference.cpp  the plain triple loop: any CPU, and the tests' reference
//   gemm_avx2.cpp       AVX2 + FMA, 8-float vectors, 6 x 2 register tile
//   gemm_avx512.cpp     AVX-512F, 16-float vectors, 6 x 4 register tile
// DDPM_KERNELS=reference|avx2|avx512 in the environment picks one by hand
// (for comparison; a family this CPU lacks is refused with a clear error).
//
// bfloat16 precision (`--precision bf16`, set_gemm_precision): the same
// products with both operands rounded to bfloat16 (8 significant bits, round to
// nearest even) and the sums in fp32:
//   C (M x N) (+)= bf16(op(A)) bf16(B)
//   gemm_reference.cpp      rounds the same way and sums in double
//   gemm_avx512_bf16.cpp    AVX512_BF16's vdpbf16ps, two products per fp32 lane
// Each product of two bfloat16s is exact in fp32, so against the fp32 product
// the only new error is the operands' rounding: |bf16(a) bf16(b) - a b| <=
// (2 u + u^2) |a b| with u = 2^-8, about 2^-7 |a b| (guide.md §3).
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace ddpm {

using SgemmFn = void (*)(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B,
                         int64_t ldb, float* C, int64_t ldc, bool accumulate, bool trans_a);

// The kernel families, each with its entry point. Defined in its own file.
void sgemm_reference(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B, int64_t ldb,
                     float* C, int64_t ldc, bool accumulate, bool trans_a);
void sgemm_avx2(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B, int64_t ldb,
                float* C, int64_t ldc, bool accumulate, bool trans_a);
void sgemm_avx512(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B, int64_t ldb,
                  float* C, int64_t ldc, bool accumulate, bool trans_a);

// dst (cols x rows) = src (rows x cols, row length ld)^T: the plain loop, and by
// 8 x 8 blocks in AVX registers (what trans_b uses where the CPU has AVX2).
void transpose_reference(const float* src, int64_t rows, int64_t cols, int64_t ld, float* dst);
void transpose_avx2(const float* src, int64_t rows, int64_t cols, int64_t ld, float* dst);
// The one of the two this CPU runs (AVX2 where it has it).
void transpose(const float* src, int64_t rows, int64_t cols, int64_t ld, float* dst);

// The bfloat16 families (same contract, operands rounded to bfloat16 first).
void sgemm_bf16_reference(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B, int64_t ldb,
                          float* C, int64_t ldc, bool accumulate, bool trans_a);
void sgemm_bf16_avx512(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B, int64_t ldb,
                       float* C, int64_t ldc, bool accumulate, bool trans_a);
// The same with B given transposed (stored N x K, entry (k, j) at B[j ldb + k]),
// its pairs packed straight from there rather than from a copy of B^T.
void sgemm_bf16_bt_avx512(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B, int64_t ldb,
                          float* C, int64_t ldc, bool accumulate, bool trans_a);

// Pairs of bfloat16 along k: ceil(K / 2) (an odd K pairs its last k with a zero).
inline int64_t bf16_pairs(int64_t K) { return (K + 1) / 2; }

// The same product with both operands packed to bfloat16 pairs beforehand:
// Winograd's U once for all blocks' products, its V by the input transform as it
// makes V, and a weight gradient's dM and V^T by their transforms (so no Winograd
// product packs anything):
//   Ap[i K2 + k2]  = bf16(op(A)(i, 2 k2)) | bf16(op(A)(i, 2 k2 + 1)) << 16    (M x K2)
//   Bp[k2 ldp + j] = bf16(B(2 k2, j))     | bf16(B(2 k2 + 1, j)) << 16        (K2 x N16, row length ldp)
//   C (M x N) (+)= bf16(op(A)) bf16(B)
// pack_bf16_b writes N16 = N rounded up to 16 columns of each row, those past N
// zero; the product reads those N16 (a ragged edge's products are not stored).
// Same bits as the unpacked entry point of the family.
void pack_bf16_a_reference(int64_t M, int64_t K, const float* A, int64_t lda, bool trans_a, uint32_t* Ap);
void pack_bf16_a_avx512(int64_t M, int64_t K, const float* A, int64_t lda, bool trans_a, uint32_t* Ap);
void pack_bf16_b_reference(int64_t K, int64_t N, const float* B, int64_t ldb, uint32_t* Bp, int64_t ldp);
void pack_bf16_b_avx512(int64_t K, int64_t N, const float* B, int64_t ldb, uint32_t* Bp, int64_t ldp);
void sgemm_bf16_pairs_reference(int64_t M, int64_t N, int64_t K, const uint32_t* Ap, const uint32_t* Bp, int64_t ldp,
                                float* C, int64_t ldc, bool accumulate);
void sgemm_bf16_pairs_avx512(int64_t M, int64_t N, int64_t K, const uint32_t* Ap, const uint32_t* Bp, int64_t ldp,
                             float* C, int64_t ldc, bool accumulate);

// The bfloat16 bits of x (its top 16), rounded to nearest even as vcvtneps2bf16
// does; a NaN stays a NaN.
inline uint32_t bf16_bits(float x) {
    uint32_t u;
    std::memcpy(&u, &x, 4);
    if ((u & 0x7FFFFFFFu) > 0x7F800000u) return (u >> 16) | 0x40u;
    return (u + 0x7FFFu + ((u >> 16) & 1u)) >> 16;
}
// The float whose top 16 bits are `bits` (a bfloat16's value).
inline float bf16_value(uint32_t bits) {
    const uint32_t u = bits << 16;
    float r;
    std::memcpy(&r, &u, 4);
    return r;
}
// x rounded to bfloat16, as a float.
inline float bf16_round(float x) { return bf16_value(bf16_bits(x)); }

struct SgemmKernel {
    std::string name;  // "reference", "avx2", "avx512"
    SgemmFn fn;
    SgemmFn fn_bt = nullptr;  // with B given transposed, where the family has its own; else sgemm copies B^T
};

// Every family this CPU (and this build) can run, reference first.
std::vector<SgemmKernel> available_sgemm_kernels();

// The family in use: DDPM_KERNELS if set, otherwise the fastest available.
const SgemmKernel& sgemm_kernel();

// Every bfloat16 family this CPU can run (reference first), and the one in use
// (the reference under DDPM_KERNELS=reference, otherwise the fastest).
std::vector<SgemmKernel> available_bf16_kernels();
const SgemmKernel& bf16_kernel();

// Whether this CPU has AVX512_BF16 (what `--precision bf16` asks for).
bool cpu_has_avx512_bf16();

// The precision of the convolution products: fp32 (the default) or bf16. The
// process-wide setting of `--precision`; set before the work starts.
enum class GemmPrecision { FP32, BF16 };
void set_gemm_precision(GemmPrecision p);
GemmPrecision gemm_precision();
// "fp32" | "bf16" -> the precision; anything else, or bf16 on a CPU without
// AVX512_BF16, throws std::invalid_argument in one line saying why.
GemmPrecision parse_precision(const std::string& name);

// guide.md §3: C = (C +) op(A) op(B) with the family in use, in the precision set.
void sgemm(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B, int64_t ldb, float* C,
           int64_t ldc, bool accumulate, bool trans_a = false, bool trans_b = false);

// The packed bfloat16 product and its packing, with the bf16 family in use (bf16_kernel()).
void pack_bf16_a(int64_t M, int64_t K, const float* A, int64_t lda, bool trans_a, uint32_t* Ap);
void pack_bf16_b(int64_t K, int64_t N, const float* B, int64_t ldb, uint32_t* Bp, int64_t ldp);
void sgemm_bf16_pairs(int64_t M, int64_t N, int64_t K, const uint32_t* Ap, const uint32_t* Bp, int64_t ldp, float* C,
                      int64_t ldc, bool accumulate);
// C (+)= A B with A already packed (pack_bf16_a, for products that share it) and B
// (K x N, row length ldb) packed here into this thread's scratch: the pairs and sums of sgemm.
void sgemm_bf16_packed_a(int64_t M, int64_t N, int64_t K, const uint32_t* Ap, const float* B, int64_t ldb, float* C,
                         int64_t ldc, bool accumulate);

// The same in fp32 whatever the precision set: the linear layers' products
// (matmul.h), which `--precision bf16` leaves in fp32.
void sgemm_fp32(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B, int64_t ldb, float* C,
                int64_t ldc, bool accumulate, bool trans_a = false, bool trans_b = false);

}  // namespace ddpm
