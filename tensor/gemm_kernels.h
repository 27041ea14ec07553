// gemm_kernels.h: our own single-precision GEMM for the convolution hot path,
// so the U-Net's speed does not depend on which kernel family the BLAS picked.
//
//   C (M x N) = op(A) (M x K) B (K x N)          (accumulate = false)
//   C (M x N) = C + op(A) (M x K) B (K x N)      (accumulate = true)
// all row-major with leading dimensions lda, ldb, ldc (elements); op(A) is A,
// or with trans_a the transpose of A stored as K x M (entry (i, k) at
// A[k lda + i]: the convolutions' W^T dout needs no copy of W).
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
#pragma once

#include <cstdint>
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

struct SgemmKernel {
    std::string name;  // "reference", "avx2", "avx512"
    SgemmFn fn;
};

// Every family this CPU (and this build) can run, reference first.
std::vector<SgemmKernel> available_sgemm_kernels();

// The family in use: DDPM_KERNELS if set, otherwise the fastest available.
const SgemmKernel& sgemm_kernel();

// guide.md §3: C = (C +) A B with the family in use.
inline void sgemm(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B, int64_t ldb,
                  float* C, int64_t ldc, bool accumulate, bool trans_a = false) {
    sgemm_kernel().fn(M, N, K, A, lda, B, ldb, C, ldc, accumulate, trans_a);
}

}  // namespace ddpm
