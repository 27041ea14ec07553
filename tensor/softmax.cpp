// softmax.cpp: the axis is viewed as the middle of (outer, n, inner), and each
// (outer, inner) line is one independent task.
#include "tensor/softmax.h"

#include <cmath>

#include "tensor/fast_exp.h"
#include "tensor/parallel.h"

namespace ddpm {

namespace {
struct Lines {
    int64_t outer, n, inner;
};

Lines lines_of(const Tensor& x, int64_t axis, const char* op) {
    const int64_t a = normalize_axis(axis, x.dim(), op);
    Lines l{1, x.size(a), 1};
    for (int64_t i = 0; i < a; ++i) l.outer *= x.size(i);
    for (int64_t i = a + 1; i < x.dim(); ++i) l.inner *= x.size(i);
    return l;
}

// Calls f(offset, stride, n) for every line along the axis.
template <class F> void for_each_line(const Lines& l, F&& f) {
    parallel_for(l.outer * l.inner, std::max<int64_t>(1, kGrainElementwise / (4 * l.n)), [&](int64_t k) {
        const int64_t o = k / l.inner, i = k % l.inner;
        f(o * l.n * l.inner + i, l.inner, l.n);
    });
}

// One line of n values at stride s (Stride = 1: known contiguous, so the loops vectorise).
template <bool Log, class T, int Stride> void softmax_line(const T* xl, T* yl, int64_t n, int64_t s) {
    const int64_t st = Stride == 1 ? 1 : s;
    // The max and the sum each keep kLanes independent running values (one
    // vector of floats) so that they vectorise; NaNs never win the max, as in std::max.
    constexpr int kLanes = 16;
    T lane_max[kLanes], lane_sum[kLanes] = {};
    std::fill(lane_max, lane_max + kLanes, xl[0]);
    int64_t j = 0;
    for (; j + kLanes <= n; j += kLanes)
        for (int k = 0; k < kLanes; ++k) lane_max[k] = lane_max[k] < xl[(j + k) * st] ? xl[(j + k) * st] : lane_max[k];
    T m = *std::max_element(lane_max, lane_max + kLanes);
    for (; j < n; ++j) m = std::max(m, xl[j * st]);
    j = 0;
    for (; j + kLanes <= n; j += kLanes)
        for (int k = 0; k < kLanes; ++k) {
            const T e = exp_kernel(xl[(j + k) * st] - m);
            if constexpr (!Log) yl[(j + k) * st] = e;
            lane_sum[k] += e;
        }
    T z = 0;
    for (; j < n; ++j) {
        const T e = exp_kernel(xl[j * st] - m);
        if constexpr (!Log) yl[j * st] = e;
        z += e;
    }
    for (int k = 0; k < kLanes; ++k) z += lane_sum[k];
    if constexpr (Log) {
        const T lz = static_cast<T>(std::log(z)) + m;
        for (int64_t j = 0; j < n; ++j) yl[j * st] = xl[j * st] - lz;
    } else {
        const T inv = T(1) / z;
        for (int64_t j = 0; j < n; ++j) yl[j * st] *= inv;
    }
}

template <bool Log> Tensor softmax_impl(const Tensor& x, int64_t axis, const char* op) {
    const Lines l = lines_of(x, axis, op);
    Tensor y(x.shape(), x.dtype());
    dispatch(x.dtype(), [&](auto tag) {
        using T = decltype(tag);
        const T* px = x.data<T>();
        T* py = y.data<T>();
        for_each_line(l, [&](int64_t off, int64_t s, int64_t n) {
            if (s == 1)
                softmax_line<Log, T, 1>(px + off, py + off, n, 1);
            else
                softmax_line<Log, T, 0>(px + off, py + off, n, s);
        });
    });
    return y;
}

template <bool Log> Tensor softmax_backward_impl(const Tensor& y, const Tensor& dy, int64_t axis, const char* op) {
    DDPM_CHECK(y.shape() == dy.shape() && y.dtype() == dy.dtype(), op, "y " + y.describe() + " dy " + dy.describe());
    const Lines l = lines_of(y, axis, op);
    Tensor dx(y.shape(), y.dtype());
    dispatch(y.dtype(), [&](auto tag) {
        using T = decltype(tag);
        const T* py = y.data<T>();
        const T* pd = dy.data<T>();
        T* px = dx.data<T>();
        for_each_line(l, [&](int64_t off, int64_t s, int64_t n) {
            const T* yl = py + off;
            const T* dl = pd + off;
            T* xl = px + off;
            double dot = 0;
            for (int64_t j = 0; j < n; ++j) dot += Log ? dl[j * s] : dl[j * s] * yl[j * s];
            const T d = static_cast<T>(dot);
            for (int64_t j = 0; j < n; ++j) {
                if constexpr (Log)
                    xl[j * s] = dl[j * s] - exp_kernel(yl[j * s]) * d;
                else
                    xl[j * s] = yl[j * s] * (dl[j * s] - d);
            }
        });
    });
    return dx;
}
}  // namespace

// guide.md §4: y = exp(x - max) / sum exp(x - max).
Tensor softmax(const Tensor& x, int64_t axis) { return softmax_impl<false>(x, axis, "softmax"); }
Tensor log_softmax(const Tensor& x, int64_t axis) { return softmax_impl<true>(x, axis, "log_softmax"); }
// guide.md §4: dx = y (dy - sum(dy y)).
Tensor softmax_backward(const Tensor& y, const Tensor& dy, int64_t axis) {
    return softmax_backward_impl<false>(y, dy, axis, "softmax_backward");
}
Tensor log_softmax_backward(const Tensor& y, const Tensor& dy, int64_t axis) {
    return softmax_backward_impl<true>(y, dy, axis, "log_softmax_backward");
}

}  // namespace ddpm
