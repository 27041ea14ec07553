// matmul.h: matrix products: batched float ones on our GEMM kernels
// (gemm_kernels.h), single ones and float64 through BLAS (OpenBLAS, OpenMP build).
#pragma once

#include "tensor/tensor.h"

namespace ddpm {

// Row-major C = alpha * op(A) op(B) + beta * C, op(X) = X or X^T; M x N result,
// K the inner size. The transposes are BLAS flags, never copies.
void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
          const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc);
void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, double alpha,
          const double* A, int64_t lda, const double* B, int64_t ldb, double beta, double* C, int64_t ldc);

// C (M x N, row stride ldc) = op(A) op(B) for one of many small products run one
// per thread (a batched matmul's entries, attention's): float on our own GEMM
// kernels in fp32 (gemm_kernels.h, whatever --precision says), so their speed does
// not depend on the BLAS build; double through BLAS (one core inside a parallel piece).
void small_product(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, const float* A, int64_t lda,
                   const float* B, int64_t ldb, float* C, int64_t ldc);
void small_product(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, const double* A, int64_t lda,
                   const double* B, int64_t ldb, double* C, int64_t ldc);

// op(a) @ op(b). 2-D: a is [M,K] ([K,M] when trans_a), b is [K,N] ([N,K] when
// trans_b). Batched: any leading axes, equal in both, or one operand 2-D and
// shared by every batch entry. Independent small products run one per thread.
Tensor matmul(const Tensor& a, const Tensor& b, bool trans_a = false, bool trans_b = false);

// The naive triple loop, kept as the reference the tests check matmul against.
Tensor matmul_reference(const Tensor& a, const Tensor& b, bool trans_a = false, bool trans_b = false);

}  // namespace ddpm
