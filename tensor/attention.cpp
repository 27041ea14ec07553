// attention.cpp: see attention.h. One task per batch entry: its two products
// and the softmax between them run on the same thread, on an N x N matrix in
// that thread's cache (196 x 196 floats, 150 KiB, for 14 x 14 positions).
#include "tensor/attention.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "tensor/fast_exp.h"
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

// C (M x N) = op(A) op(B) for one entry, on this thread (matmul.h).
template <class T>
void product(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const T* A, const T* B, T* C) {
    small_product(ta, tb, M, N, K, A, ta ? M : K, B, tb ? K : N, C, N);
}

struct ColumnTag {};  // per-thread column statistics (max and sum, or the softmax backward's dot)
struct ScoresTag {};  // per-thread S^T of an entry whose P^T is not kept
struct DScoresTag {};  // per-thread dP^T, then dS^T, in the backward

// guide.md §4, softmax down each column: in place, st (n x n) = S^T/s becomes P^T with
//   P^T[j][i] = exp(s (S^T[j][i] - m_i)) / sum_j' exp(s (S^T[j'][i] - m_i)),  m_i = max_j S^T[j][i].
// Every loop runs across a row, i.e. across queries: contiguous, vectorised.
template <class T> void softmax_columns(T* st, int64_t n, T s, T* m, T* z) {
    std::copy(st, st + n, m);
    for (int64_t j = 1; j < n; ++j) {
        const T* row = st + j * n;
#pragma omp simd
        for (int64_t i = 0; i < n; ++i) m[i] = m[i] < row[i] ? row[i] : m[i];  // a NaN never wins, as std::max
    }
    std::fill(z, z + n, T(0));
    for (int64_t j = 0; j < n; ++j) {
        T* row = st + j * n;
#pragma omp simd
        for (int64_t i = 0; i < n; ++i) {
            row[i] = exp_kernel(s * (row[i] - m[i]));
            z[i] += row[i];
        }
    }
    for (int64_t i = 0; i < n; ++i) z[i] = T(1) / z[i];
    for (int64_t j = 0; j < n; ++j) {
        T* row = st + j * n;
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

// One entry's forward: q, k, v, out (d x N); st (N x N) receives P^T.
template <class T> void attention_entry(const T* q, const T* k, const T* v, T* out, T* st, int64_t d, int64_t N) {
    T* stats = thread_scratch<T, ColumnTag>(static_cast<size_t>(2 * N));
    product(true, false, N, N, d, k, q, st);  // S^T/s = k^T q     (N x N)
    softmax_columns(st, N, static_cast<T>(1.0 / std::sqrt(double(d))), stats, stats + N);
    product(false, false, d, N, N, v, st, out);  // out = v P^T     (d x N)
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
            T* st = pt ? pt->data<T>() + b * nn : thread_scratch<T, ScoresTag>(static_cast<size_t>(nn));
            attention_entry(q.data<T>() + b * dn, k.data<T>() + b * dn, v.data<T>() + b * dn,
                            out.data<T>() + b * dn, st, a.d, a.N);
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
