// gemm_reference.cpp: the plain loop every fast family is tested against.
#include "tensor/gemm_kernels.h"

namespace ddpm {

// C (M x N) (+)= op(A) (M x K) B (K x N), summed in double so the reference is
// the more accurate side of every comparison.
void sgemm_reference(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B, int64_t ldb,
                     float* C, int64_t ldc, bool accumulate, bool trans_a) {
    const int64_t rs = trans_a ? 1 : lda, cs = trans_a ? lda : 1;  // op(A)(i, k) = A[i rs + k cs]
    for (int64_t i = 0; i < M; ++i) {
        for (int64_t j = 0; j < N; ++j) {
            double s = accumulate ? C[i * ldc + j] : 0.0;
            for (int64_t k = 0; k < K; ++k) s += static_cast<double>(A[i * rs + k * cs]) * B[k * ldb + j];
            C[i * ldc + j] = static_cast<float>(s);
        }
    }
}

// The same with both operands rounded to bfloat16 first (gemm_kernels.h).
void sgemm_bf16_reference(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B, int64_t ldb,
                          float* C, int64_t ldc, bool accumulate, bool trans_a) {
    const int64_t rs = trans_a ? 1 : lda, cs = trans_a ? lda : 1;
    for (int64_t i = 0; i < M; ++i) {
        for (int64_t j = 0; j < N; ++j) {
            double s = accumulate ? C[i * ldc + j] : 0.0;
            for (int64_t k = 0; k < K; ++k)
                s += static_cast<double>(bf16_round(A[i * rs + k * cs])) * bf16_round(B[k * ldb + j]);
            C[i * ldc + j] = static_cast<float>(s);
        }
    }
}

// Ap (M x K2 pairs): bf16(op(A))(i, 2 k2) in the low half of Ap[i K2 + k2],
// bf16(op(A))(i, 2 k2 + 1) (zero past K) in the high half.
void pack_bf16_a_reference(int64_t M, int64_t K, const float* A, int64_t lda, bool trans_a, uint32_t* Ap) {
    const int64_t rs = trans_a ? 1 : lda, cs = trans_a ? lda : 1, K2 = bf16_pairs(K);
    for (int64_t i = 0; i < M; ++i)
        for (int64_t k2 = 0; k2 < K2; ++k2) {
            const uint32_t hi = 2 * k2 + 1 < K ? bf16_bits(A[i * rs + (2 * k2 + 1) * cs]) : 0u;
            Ap[i * K2 + k2] = bf16_bits(A[i * rs + 2 * k2 * cs]) | hi << 16;
        }
}

// C (M x N) (+)= A B with A given as its packed pairs Ap, B rounded to bfloat16.
void sgemm_bf16_packed_reference(int64_t M, int64_t N, int64_t K, const uint32_t* Ap, const float* B, int64_t ldb,
                                 float* C, int64_t ldc, bool accumulate) {
    const int64_t K2 = bf16_pairs(K);
    for (int64_t i = 0; i < M; ++i) {
        for (int64_t j = 0; j < N; ++j) {
            double s = accumulate ? C[i * ldc + j] : 0.0;
            for (int64_t k = 0; k < K; ++k) {
                const uint32_t pair = Ap[i * K2 + k / 2];
                s += static_cast<double>(bf16_value(k % 2 ? pair >> 16 : pair & 0xFFFFu)) * bf16_round(B[k * ldb + j]);
            }
            C[i * ldc + j] = static_cast<float>(s);
        }
    }
}

// dst (cols x rows) = src (rows x cols, row length ld)^T.
void transpose_reference(const float* src, int64_t rows, int64_t cols, int64_t ld, float* dst) {
    for (int64_t r = 0; r < rows; ++r)
        for (int64_t c = 0; c < cols; ++c) dst[c * rows + r] = src[r * ld + c];
}

}  // namespace ddpm
