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

// Bp (K2 x N16 pairs, row length ldp): bf16(B)(2 k2, j) in the low half of
// Bp[k2 ldp + j], bf16(B)(2 k2 + 1, j) (zero past K) in the high half; zero past N.
void pack_bf16_b_reference(int64_t K, int64_t N, const float* B, int64_t ldb, uint32_t* Bp, int64_t ldp) {
    const int64_t N16 = (N + 15) / 16 * 16;
    for (int64_t k2 = 0; k2 < bf16_pairs(K); ++k2)
        for (int64_t j = 0; j < N16; ++j) {
            const uint32_t lo = j < N ? bf16_bits(B[2 * k2 * ldb + j]) : 0u;
            const uint32_t hi = j < N && 2 * k2 + 1 < K ? bf16_bits(B[(2 * k2 + 1) * ldb + j]) : 0u;
            Bp[k2 * ldp + j] = lo | hi << 16;
        }
}

// The bfloat16 of pair `p`'s half k % 2 (the low half holds the even k).
inline float half_of(uint32_t p, int64_t k) { return bf16_value(k % 2 ? p >> 16 : p & 0xFFFFu); }

// C (M x N) (+)= A B with both given as their packed pairs Ap and Bp.
void sgemm_bf16_pairs_reference(int64_t M, int64_t N, int64_t K, const uint32_t* Ap, const uint32_t* Bp, int64_t ldp,
                                float* C, int64_t ldc, bool accumulate) {
    const int64_t K2 = bf16_pairs(K);
    for (int64_t i = 0; i < M; ++i) {
        for (int64_t j = 0; j < N; ++j) {
            double s = accumulate ? C[i * ldc + j] : 0.0;
            for (int64_t k = 0; k < K; ++k)
                s += static_cast<double>(half_of(Ap[i * K2 + k / 2], k)) * half_of(Bp[k / 2 * ldp + j], k);
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
