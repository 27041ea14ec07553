// attention.cpp: see attention.h. One task per batch entry: its two products
// and the softmax between them run on the same thread, on an N x N matrix in
// that thread's cache (196 x 196 floats, 150 KiB, for 14 x 14 positions).
#include "tensor/attention.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "tensor/fast_exp.h"
#include "tensor/gemm_kernels.h"
#include "tensor/matmul.h"
#include "tensor/parallel.h"
#include "tensor/scratch.h"

namespace ddpm {

namespace {

struct AttnShape {
    int64_t batch, d, N;
};

AttnShape attn_shape(const Tensor& q, const Tensor& k, const Tensor& v) {
    DDPM_CHECK(q.dim() == 3 && k.shape() == q.shape() && v.shape() == q.shape() && k.dtype() == q.dtype() &&
                   v.dtype() == q.dtype(),
               "attention", fmt::format("q {} k {} v {}: each must be (batch, d, N), all alike", q.describe(),
                                        k.describe(), v.describe()));
    return {q.size(0), q.size(1), q.size(2)};
}

// C (M x N) = op(A) op(B) for one entry, on this thread; rows of A, B and C lie
// lda, ldb, ldc elements apart. float on our kernels in the precision set
// (gemm_kernels.h: under --precision bf16 both operands rounded to bfloat16, the
// sums fp32, the softmax between the products fp32), double through the BLAS.
// (`small`, batch 64, 2 threads, a Zen 5, 3 alternating pairs: a bf16 training
// step 5-6% faster than with these products in fp32, attention 38 -> 31 ms.)
template <class T>
void product(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const T* A, int64_t lda, const T* B, int64_t ldb, T* C,
             int64_t ldc) {
    if constexpr (std::is_same_v<T, float>)
        sgemm(M, N, K, A, lda, B, ldb, C, ldc, false, ta, tb);
    else
        small_product(ta, tb, M, N, K, A, lda, B, ldb, C, ldc);
}
template <class T> void product(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const T* A, const T* B, T* C) {
    product(ta, tb, M, N, K, A, ta ? M : K, B, tb ? K : N, C, N);
}

// The row length the forward's products work on: n itself, or for rows longer
// than four 64-byte cache lines that end inside a line, the next whole number of
// lines; then they run on copies of q, k and v (and S^T) with rows that long.
// Measured on one Zen 3 core (d = 64, batch 64, the two versions alternating in
// one process, medians of 30): an entry's forward 8% faster at N = 196 (14 x 14
// positions, rows 208 long; 4% with P^T kept for the backward), 16% at N = 100;
// at N = 49 (in place now) padding made it 6% slower.
template <class T> int64_t padded_row(int64_t n) {
    constexpr int64_t per_line = 64 / sizeof(T);
    const int64_t whole_lines = (n + per_line - 1) / per_line * per_line;
    return n > 4 * per_line ? whole_lines : n;
}

// dst (rows x n, row length ld) = src (rows x n, dense).
template <class T> void copy_rows(const T* src, int64_t rows, int64_t n, int64_t ld_src, T* dst, int64_t ld_dst) {
    for (int64_t r = 0; r < rows; ++r) std::copy(src + r * ld_src, src + r * ld_src + n, dst + r * ld_dst);
}

struct ColumnTag {};  // per-thread column statistics (max and sum, or the softmax backward's dot)
struct ScoresTag {};  // per-thread S^T of an entry whose P^T is not kept (or kept with shorter rows)
struct PaddedTag {};  // per-thread copies of an entry's q, k and v with rows padded_row() long
struct DScoresTag {};  // per-thread dP^T, then dS^T, in the backward

// One row of the softmax's exps, in place: row[i] = exp(s (row[i] - m[i])), added into z[i].
// For float with AVX-512 on exp_fast16 (fast_exp.h), 16 lanes at a time, the last masked.
template <class T> void exp_row(T* row, int64_t n, T s, const T* m, T* z) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) {
        row[i] = exp_kernel(s * (row[i] - m[i]));
        z[i] += row[i];
    }
}
#if defined(__AVX512F__)
template <> void exp_row<float>(float* row, int64_t n, float s, const float* m, float* z) {
    const __m512 scale = _mm512_set1_ps(s);
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 k = first_lanes(n - i);
        const __m512 e = exp_fast16(
            _mm512_mul_ps(scale, _mm512_sub_ps(_mm512_maskz_loadu_ps(k, row + i), _mm512_maskz_loadu_ps(k, m + i))));
        _mm512_mask_storeu_ps(row + i, k, e);
        _mm512_mask_storeu_ps(z + i, k, _mm512_add_ps(_mm512_maskz_loadu_ps(k, z + i), e));
    }
}
#endif

// guide.md §4, softmax down each column: in place, st (n x n, row length ld) = S^T/s becomes P^T with
//   P^T[j][i] = exp(s (S^T[j][i] - m_i)) / sum_j' exp(s (S^T[j'][i] - m_i)),  m_i = max_j S^T[j][i].
// Every loop runs across a row, i.e. across queries: contiguous, vectorised.
template <class T> void softmax_columns(T* st, int64_t n, int64_t ld, T s, T* m, T* z) {
    std::copy(st, st + n, m);
    for (int64_t j = 1; j < n; ++j) {
        const T* row = st + j * ld;
#pragma omp simd
        for (int64_t i = 0; i < n; ++i) m[i] = m[i] < row[i] ? row[i] : m[i];  // a NaN never wins, as std::max
    }
    std::fill(z, z + n, T(0));
    for (int64_t j = 0; j < n; ++j) exp_row(st + j * ld, n, s, m, z);
    for (int64_t i = 0; i < n; ++i) z[i] = T(1) / z[i];
    for (int64_t j = 0; j < n; ++j) {
        T* row = st + j * ld;
#pragma omp simd
        for (int64_t i = 0; i < n; ++i) row[i] *= z[i];
    }
}

// guide.md §4, its backward: in place, dpt = dP^T becomes dS^T of the unscaled
// product k^T q:  s P^T[j][i] (dP^T[j][i] - c_i),  c_i = sum_j P^T[j][i] dP^T[j][i].
template <class T> void softmax_columns_backward(const T* pt, T* dpt, int64_t n, T s, T* c) {
    std::fill(c, c + n, T(0));
    for (int64_t j = 0; j < n; ++j) {
        const T *p = pt + j * n, *dp = dpt + j * n;
#pragma omp simd
        for (int64_t i = 0; i < n; ++i) c[i] += p[i] * dp[i];
    }
    for (int64_t j = 0; j < n; ++j) {
        const T* p = pt + j * n;
        T* dp = dpt + j * n;
#pragma omp simd
        for (int64_t i = 0; i < n; ++i) dp[i] = s * p[i] * (dp[i] - c[i]);
    }
}

// One entry's forward: q, k, v, out (d x N); pt (N x N), when not null, receives P^T.
template <class T> void attention_entry(const T* q, const T* k, const T* v, T* out, T* pt, int64_t d, int64_t N) {
    const int64_t ld = padded_row<T>(N);
    T* stats = thread_scratch<T, ColumnTag>(static_cast<size_t>(2 * N));
    T* st = pt && ld == N ? pt : thread_scratch<T, ScoresTag>(static_cast<size_t>(N * ld));
    if (ld != N) {
        T* copies = thread_scratch<T, PaddedTag>(static_cast<size_t>(3 * d * ld));
        copy_rows(q, d, N, N, copies, ld), copy_rows(k, d, N, N, copies + d * ld, ld);
        copy_rows(v, d, N, N, copies + 2 * d * ld, ld);
        q = copies, k = copies + d * ld, v = copies + 2 * d * ld;
    }
    product(true, false, N, N, d, k, ld, q, ld, st, ld);  // S^T/s = k^T q     (N x N)
    softmax_columns(st, N, ld, static_cast<T>(1.0 / std::sqrt(double(d))), stats, stats + N);
    product(false, false, d, N, N, v, ld, st, ld, out, N);  // out = v P^T     (d x N)
    if (pt && st != pt) copy_rows(st, N, N, ld, pt, N);
}

// One entry's backward, from dout (d x N) and pt = P^T (N x N).
template <class T>
void attention_entry_backward(const T* dout, const T* q, const T* k, const T* v, const T* pt, T* dq, T* dk, T* dv,
                              int64_t d, int64_t N) {
    T* dst = thread_scratch<T, DScoresTag>(static_cast<size_t>(N * N));
    T* c = thread_scratch<T, ColumnTag>(static_cast<size_t>(2 * N));
    product(false, true, d, N, N, dout, pt, dv);  // dv = dout P       (d x N)
    product(true, false, N, N, d, v, dout, dst);  // dP^T = v^T dout   (N x N)
    softmax_columns_backward(pt, dst, N, static_cast<T>(1.0 / std::sqrt(double(d))), c);  // dS^T
    product(false, false, d, N, N, k, dst, dq);  // dq = k dS^T        (d x N)
    product(false, true, d, N, N, q, dst, dk);   // dk = q dS          (d x N)
}

}  // namespace

// guide.md §4: out = v P^T per entry, P^T = softmax down the columns of k^T q / sqrt(d).
Tensor attention_forward(const Tensor& q, const Tensor& k, const Tensor& v, Tensor* pt) {
    const AttnShape a = attn_shape(q, k, v);
    Tensor out(q.shape(), q.dtype());
    if (pt) *pt = Tensor({a.batch, a.N, a.N}, q.dtype());
    dispatch(q.dtype(), [&](auto tag) {
        using T = decltype(tag);
        const int64_t dn = a.d * a.N, nn = a.N * a.N;
        parallel_for(a.batch, 1, [&](int64_t b) {
            attention_entry(q.data<T>() + b * dn, k.data<T>() + b * dn, v.data<T>() + b * dn,
                            out.data<T>() + b * dn, pt ? pt->data<T>() + b * nn : nullptr, a.d, a.N);
        });
    });
    return out;
}

// guide.md §4: dv = dout P, dS^T from the softmax backward, dq = k dS^T / sqrt(d), dk = q dS / sqrt(d).
AttentionGrads attention_backward(const Tensor& dout, const Tensor& q, const Tensor& k, const Tensor& v,
                                  const Tensor& pt) {
    const AttnShape a = attn_shape(q, k, v);
    const bool pt_fits = pt.shape() == Shape{a.batch, a.N, a.N} && pt.dtype() == q.dtype();
    DDPM_CHECK(dout.shape() == q.shape() && dout.dtype() == q.dtype() && pt_fits,
               "attention_backward", fmt::format("dout {} P^T {} for q {}", dout.describe(), pt.describe(), q.describe()));
    AttentionGrads g{Tensor(q.shape(), q.dtype()), Tensor(q.shape(), q.dtype()), Tensor(q.shape(), q.dtype())};
    dispatch(q.dtype(), [&](auto tag) {
        using T = decltype(tag);
        const int64_t dn = a.d * a.N, nn = a.N * a.N;
        parallel_for(a.batch, 1, [&](int64_t b) {
            attention_entry_backward(dout.data<T>() + b * dn, q.data<T>() + b * dn, k.data<T>() + b * dn,
                                     v.data<T>() + b * dn, pt.data<T>() + b * nn, g.dq.data<T>() + b * dn,
                                     g.dk.data<T>() + b * dn, g.dv.data<T>() + b * dn, a.d, a.N);
        });
    });
    return g;
}

Tensor attention_reference(const Tensor& q, const Tensor& k, const Tensor& v) {
    const AttnShape a = attn_shape(q, k, v);
    Tensor out(q.shape(), q.dtype());
    const double s = 1.0 / std::sqrt(double(a.d));
    std::vector<double> w(static_cast<size_t>(a.N));
    for (int64_t b = 0; b < a.batch; ++b) {
        auto at = [&](const Tensor& t, int64_t c, int64_t i) { return t.flat((b * a.d + c) * a.N + i); };
        for (int64_t i = 0; i < a.N; ++i) {  // query i: w_j = softmax_j(s <k_j, q_i>), out_i = sum_j w_j v_j
            double m = -INFINITY, z = 0;
            for (int64_t j = 0; j < a.N; ++j) {
                double dot = 0;
                for (int64_t c = 0; c < a.d; ++c) dot += at(k, c, j) * at(q, c, i);
                w[j] = s * dot;
                m = std::max(m, w[j]);
            }
            for (double& wj : w) z += (wj = std::exp(wj - m));
            for (int64_t c = 0; c < a.d; ++c) {
                double o = 0;
                for (int64_t j = 0; j < a.N; ++j) o += w[j] / z * at(v, c, j);
                out.set_flat((b * a.d + c) * a.N + i, o);
            }
        }
    }
    return out;
}

}  // namespace ddpm
