// matmul.cpp: cblas_?gemm wrappers and batched matmul (float batches on our kernels).
#include "tensor/matmul.h"

#include <cblas.h>
#include <fmt/format.h>


#include "tensor/gemm_kernels.h"
#include "tensor/parallel.h"

namespace ddpm {

static CBLAS_TRANSPOSE flag(bool t) { return t ? CblasTrans : CblasNoTrans; }

void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
          const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
    cblas_sgemm(CblasRowMajor, flag(ta), flag(tb), static_cast<int>(M), static_cast<int>(N),
                static_cast<int>(K), alpha, A, static_cast<int>(lda), B, static_cast<int>(ldb), beta, C,
                static_cast<int>(ldc));
}

void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, double alpha, const double* A,
          int64_t lda, const double* B, int64_t ldb, double beta, double* C, int64_t ldc) {
    cblas_dgemm(CblasRowMajor, flag(ta), flag(tb), static_cast<int>(M), static_cast<int>(N),
                static_cast<int>(K), alpha, A, static_cast<int>(lda), B, static_cast<int>(ldb), beta, C,
                static_cast<int>(ldc));
}

void small_product(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B,
                   int64_t ldb, float* C, int64_t ldc) {
    sgemm_fp32(M, N, K, A, lda, B, ldb, C, ldc, false, ta, tb);
}

void small_product(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const double* A, int64_t lda,
                   const double* B, int64_t ldb, double* C, int64_t ldc) {
    gemm(ta, tb, M, N, K, 1.0, A, lda, B, ldb, 0.0, C, ldc);
}

namespace {
// Sizes of one matmul call, checked once.
struct MatmulShape {
    int64_t batch, M, N, K;
    bool a_batched, b_batched;
    Shape out;
};

MatmulShape matmul_shape(const Tensor& a, const Tensor& b, bool ta, bool tb) {
    const char* op = "matmul";
    DDPM_CHECK(a.dtype() == b.dtype(), op, fmt::format("dtypes differ: {} and {}", a.describe(), b.describe()));
    DDPM_CHECK(a.dim() >= 2 && b.dim() >= 2, op,
          fmt::format("needs 2-D or batched operands, got {} and {}", a.describe(), b.describe()));
    MatmulShape s{};
    s.M = ta ? a.size(-1) : a.size(-2);
    int64_t ka = ta ? a.size(-2) : a.size(-1);
    int64_t kb = tb ? b.size(-1) : b.size(-2);
    s.N = tb ? b.size(-2) : b.size(-1);
    DDPM_CHECK(ka == kb, op,
          fmt::format("inner sizes differ: {}{} @ {}{} ({} vs {})", a.describe(), ta ? "^T" : "",
                      b.describe(), tb ? "^T" : "", ka, kb));
    s.K = ka;
    Shape lead_a(a.shape().begin(), a.shape().end() - 2), lead_b(b.shape().begin(), b.shape().end() - 2);
    s.a_batched = !lead_a.empty();
    s.b_batched = !lead_b.empty();
    DDPM_CHECK(!(s.a_batched && s.b_batched) || lead_a == lead_b, op,
          fmt::format("batch axes differ: {} and {}", a.describe(), b.describe()));
    s.out = s.a_batched ? lead_a : lead_b;
    s.batch = shape_numel(s.out);
    s.out.push_back(s.M);
    s.out.push_back(s.N);
    return s;
}
}  // namespace

// guide.md §3: batched float products on our GEMM kernels, the rest through BLAS.
Tensor matmul(const Tensor& a, const Tensor& b, bool ta, bool tb) {
    MatmulShape s = matmul_shape(a, b, ta, tb);
    Tensor out(s.out, a.dtype());
    dispatch(a.dtype(), [&](auto tag) {
        using T = decltype(tag);
        const T* pa = a.data<T>();
        const T* pb = b.data<T>();
        T* pc = out.data<T>();
        const int64_t lda = a.size(-1), ldb = b.size(-1);
        const int64_t sa = s.a_batched ? s.M * s.K : 0, sb = s.b_batched ? s.K * s.N : 0;
        // Small products in float on our own GEMM kernels (gemm_kernels.h), so that
        // their speed does not depend on the BLAS build either: many (attention's, one
        // per image and head) one per thread, a single one (a linear layer's) on this
        // thread. Large products: BLAS on every thread. (A linear layer's products, a
        // few MFLOP, had gone to the BLAS too: waking its own threads for them made
        // `cifar10`'s matmul backward 18 ms a step on 2 threads against 4 on one.)
        const bool small = 2.0 * s.M * s.N * s.K < 64e6;
        if (small) {
            parallel_for(s.batch, 2, [&](int64_t i) {
                small_product(ta, tb, s.M, s.N, s.K, pa + i * sa, lda, pb + i * sb, ldb, pc + i * s.M * s.N, s.N);
            });
        } else {
            for (int64_t i = 0; i < s.batch; ++i)
                gemm(ta, tb, s.M, s.N, s.K, T(1), pa + i * sa, lda, pb + i * sb, ldb, T(0), pc + i * s.M * s.N, s.N);
        }
    });
    return out;
}

Tensor matmul_reference(const Tensor& a, const Tensor& b, bool ta, bool tb) {
    MatmulShape s = matmul_shape(a, b, ta, tb);
    Tensor out(s.out, a.dtype());
    dispatch(a.dtype(), [&](auto tag) {
        using T = decltype(tag);
        const T* pa = a.data<T>();
        const T* pb = b.data<T>();
        T* pc = out.data<T>();
        for (int64_t n = 0; n < s.batch; ++n) {
            const T* A = pa + (s.a_batched ? n * s.M * s.K : 0);
            const T* B = pb + (s.b_batched ? n * s.K * s.N : 0);
            for (int64_t i = 0; i < s.M; ++i)
                for (int64_t j = 0; j < s.N; ++j) {
                    double acc = 0;
                    for (int64_t k = 0; k < s.K; ++k)
                        acc += double(ta ? A[k * s.M + i] : A[i * s.K + k]) *
                               double(tb ? B[j * s.K + k] : B[k * s.N + j]);
                    pc[(n * s.M + i) * s.N + j] = static_cast<T>(acc);
                }
        }
    });
    return out;
}

}  // namespace ddpm
