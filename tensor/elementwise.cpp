// elementwise.cpp: broadcasting binary ops, unary maps and in-place updates.
#include "tensor/elementwise.h"

#include <fmt/format.h>

#include <cmath>

#include "tensor/broadcast.h"
#include "tensor/fast_exp.h"
#include "tensor/parallel.h"

namespace ddpm {

// guide.md §1: shapes aligned on the right, size 1 stretches.
Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op) {
    const size_t n = std::max(a.size(), b.size());
    Shape out(n);
    for (size_t i = 0; i < n; ++i) {
        int64_t da = i < n - a.size() ? 1 : a[i - (n - a.size())];
        int64_t db = i < n - b.size() ? 1 : b[i - (n - b.size())];
        if (da != db && da != 1 && db != 1)
            fail(op, fmt::format("shapes {} and {} do not broadcast (axis {}: {} vs {})",
                                 shape_str(a), shape_str(b), i, da, db));
        out[i] = da == 1 ? db : da;
    }
    return out;
}

static void check_same_dtype(const Tensor& a, const Tensor& b, const char* op) {
    DDPM_CHECK(a.defined() && b.defined(), op, "undefined input");
    if (a.dtype() != b.dtype())
        fail(op, fmt::format("dtypes differ: {} and {}", a.describe(), b.describe()));
}

// The inner loop of a binary op, specialised for the common stride patterns
// (both contiguous, one a broadcast scalar) so that the compiler vectorises them.
template <class T, class F>
static inline void binary_run(T* o, const T* a, int64_t sa, const T* b, int64_t sb, int64_t n, F f) {
    if (sa == 1 && sb == 1) {
#pragma omp simd
        for (int64_t i = 0; i < n; ++i) o[i] = f(a[i], b[i]);
    } else if (sa == 1 && sb == 0) {
        const T bv = *b;
        for (int64_t i = 0; i < n; ++i) o[i] = f(a[i], bv);
    } else if (sa == 0 && sb == 1) {
        const T av = *a;
        for (int64_t i = 0; i < n; ++i) o[i] = f(av, b[i]);
    } else {
        for (int64_t i = 0; i < n; ++i) o[i] = f(a[i * sa], b[i * sb]);
    }
}

// out[i] = f(a[i], b[i]) over the broadcast of a and b; f is written once for
// both dtypes as a generic lambda.
template <class F> static Tensor binary(const Tensor& a, const Tensor& b, const char* op, F f) {
    check_same_dtype(a, b, op);
    Shape shape = broadcast_shapes(a.shape(), b.shape(), op);
    Tensor out(shape, a.dtype());
    auto plan = make_broadcast_plan<3>(shape, {&shape, &a.shape(), &b.shape()});
    dispatch(a.dtype(), [&](auto tag) {
        using T = decltype(tag);
        const T* pa = a.data<T>();
        const T* pb = b.data<T>();
        T* po = out.data<T>();
        for_each_row(plan, [&](std::array<int64_t, 3> off, int64_t n, std::array<int64_t, 3> st) {
            binary_run<T>(po + off[0], pa + off[1], st[1], pb + off[2], st[2], n,
                          [&](T x, T y) { return static_cast<T>(f(x, y)); });
        });
    });
    return out;
}

Tensor add(const Tensor& a, const Tensor& b) { return binary(a, b, "add", [](auto x, auto y) { return x + y; }); }
Tensor sub(const Tensor& a, const Tensor& b) { return binary(a, b, "sub", [](auto x, auto y) { return x - y; }); }
Tensor mul(const Tensor& a, const Tensor& b) { return binary(a, b, "mul", [](auto x, auto y) { return x * y; }); }
Tensor div(const Tensor& a, const Tensor& b) { return binary(a, b, "div", [](auto x, auto y) { return x / y; }); }
Tensor maximum(const Tensor& a, const Tensor& b) {
    return binary(a, b, "maximum", [](auto x, auto y) { return x > y ? x : y; });
}
Tensor gt(const Tensor& a, const Tensor& b) { return binary(a, b, "gt", [](auto x, auto y) { return x > y ? 1 : 0; }); }
Tensor lt(const Tensor& a, const Tensor& b) { return binary(a, b, "lt", [](auto x, auto y) { return x < y ? 1 : 0; }); }
Tensor ge(const Tensor& a, const Tensor& b) { return binary(a, b, "ge", [](auto x, auto y) { return x >= y ? 1 : 0; }); }
Tensor le(const Tensor& a, const Tensor& b) { return binary(a, b, "le", [](auto x, auto y) { return x <= y ? 1 : 0; }); }
Tensor eq(const Tensor& a, const Tensor& b) { return binary(a, b, "eq", [](auto x, auto y) { return x == y ? 1 : 0; }); }

Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
    check_same_dtype(a, b, "where");
    check_same_dtype(cond, a, "where");
    Shape shape = broadcast_shapes(broadcast_shapes(cond.shape(), a.shape(), "where"), b.shape(), "where");
    Tensor out(shape, a.dtype());
    auto plan = make_broadcast_plan<4>(shape, {&shape, &cond.shape(), &a.shape(), &b.shape()});
    dispatch(a.dtype(), [&](auto tag) {
        using T = decltype(tag);
        const T* pc = cond.data<T>();
        const T* pa = a.data<T>();
        const T* pb = b.data<T>();
        T* po = out.data<T>();
        for_each_row(plan, [&](std::array<int64_t, 4> off, int64_t n, std::array<int64_t, 4> st) {
            for (int64_t i = 0; i < n; ++i)
                po[off[0] + i] = pc[off[1] + i * st[1]] != T(0) ? pa[off[2] + i * st[2]] : pb[off[3] + i * st[3]];
        });
    });
    return out;
}

// out[i] = f(x[i]).
template <class F> static Tensor unary(const Tensor& x, F f) {
    Tensor out(x.shape(), x.dtype());
    dispatch(x.dtype(), [&](auto tag) {
        using T = decltype(tag);
        const T* px = x.data<T>();
        T* po = out.data<T>();
        parallel_range(x.numel(), kGrainElementwise / 4, [&](int64_t b, int64_t e) {
#pragma omp simd
            for (int64_t i = b; i < e; ++i) po[i] = static_cast<T>(f(px[i]));
        });
    });
    return out;
}

Tensor add_scalar(const Tensor& x, double s) { return unary(x, [s](auto v) { return v + static_cast<decltype(v)>(s); }); }
Tensor mul_scalar(const Tensor& x, double s) { return unary(x, [s](auto v) { return v * static_cast<decltype(v)>(s); }); }
Tensor pow_scalar(const Tensor& x, double p) {
    if (p == 2.0) return unary(x, [](auto v) { return v * v; });
    return unary(x, [p](auto v) { return std::pow(v, static_cast<decltype(v)>(p)); });
}
Tensor neg(const Tensor& x) { return unary(x, [](auto v) { return -v; }); }
Tensor exp(const Tensor& x) { return unary(x, [](auto v) { return exp_kernel(v); }); }
Tensor log(const Tensor& x) { return unary(x, [](auto v) { return std::log(v); }); }
Tensor sqrt(const Tensor& x) { return unary(x, [](auto v) { return std::sqrt(v); }); }
Tensor tanh(const Tensor& x) { return unary(x, [](auto v) { return std::tanh(v); }); }
Tensor sigmoid(const Tensor& x) {
    return unary(x, [](auto v) { return decltype(v)(1) / (decltype(v)(1) + exp_kernel(-v)); });
}
Tensor silu(const Tensor& x) {
    return unary(x, [](auto v) { return v / (decltype(v)(1) + exp_kernel(-v)); });
}
Tensor abs(const Tensor& x) { return unary(x, [](auto v) { return std::abs(v); }); }
Tensor sign(const Tensor& x) {
    return unary(x, [](auto v) { return static_cast<decltype(v)>((v > 0) - (v < 0)); });
}

Tensor erf(const Tensor& x) { return unary(x, [](auto v) { return std::erf(v); }); }
Tensor clamp(const Tensor& x, double lo, double hi) {
    return unary(x, [lo, hi](auto v) {
        using T = decltype(v);
        return std::min(std::max(v, static_cast<T>(lo)), static_cast<T>(hi));
    });
}

Tensor silu_backward(const Tensor& x, const Tensor& dy) {
    DDPM_CHECK(x.shape() == dy.shape(), "silu_backward", x.describe() + " vs " + dy.describe());
    return binary(x, dy, "silu_backward", [](auto v, auto g) {
        using T = decltype(v);
        T s = T(1) / (T(1) + exp_kernel(-v));
        return g * s * (T(1) + v * (T(1) - s));
    });
}

Tensor expand(const Tensor& x, const Shape& shape) {
    Shape b = broadcast_shapes(x.shape(), shape, "expand");
    DDPM_CHECK(b == shape, "expand", fmt::format("{} does not broadcast to {}", shape_str(x.shape()), shape_str(shape)));
    Tensor out(shape, x.dtype());
    auto plan = make_broadcast_plan<2>(shape, {&shape, &x.shape()});
    dispatch(x.dtype(), [&](auto tag) {
        using T = decltype(tag);
        const T* px = x.data<T>();
        T* po = out.data<T>();
        for_each_row(plan, [&](std::array<int64_t, 2> off, int64_t n, std::array<int64_t, 2> st) {
            for (int64_t i = 0; i < n; ++i) po[off[0] + i] = px[off[1] + i * st[1]];
        });
    });
    return out;
}

void add_(Tensor& dst, const Tensor& src) {
    check_same_dtype(dst, src, "add_");
    Shape b = broadcast_shapes(dst.shape(), src.shape(), "add_");
    DDPM_CHECK(b == dst.shape(), "add_",
          fmt::format("{} does not broadcast into {}", shape_str(src.shape()), shape_str(dst.shape())));
    auto plan = make_broadcast_plan<2>(dst.shape(), {&dst.shape(), &src.shape()});
    dispatch(dst.dtype(), [&](auto tag) {
        using T = decltype(tag);
        const T* ps = src.data<T>();
        T* pd = dst.data<T>();
        for_each_row(plan, [&](std::array<int64_t, 2> off, int64_t n, std::array<int64_t, 2> st) {
            T* d = pd + off[0];
            const T* s = ps + off[1];
            if (st[1] == 1)
                for (int64_t i = 0; i < n; ++i) d[i] += s[i];
            else
                for (int64_t i = 0; i < n; ++i) d[i] += s[i * st[1]];
        });
    });
}

void axpy_(Tensor& dst, double alpha, const Tensor& src) {
    check_same_dtype(dst, src, "axpy_");
    DDPM_CHECK(dst.numel() == src.numel(), "axpy_", dst.describe() + " vs " + src.describe());
    dispatch(dst.dtype(), [&](auto tag) {
        using T = decltype(tag);
        const T* ps = src.data<T>();
        T* pd = dst.data<T>();
        const T a = static_cast<T>(alpha);
        parallel_range(dst.numel(), kGrainElementwise, [&](int64_t b, int64_t e) {
            for (int64_t i = b; i < e; ++i) pd[i] += a * ps[i];
        });
    });
}

void scale_(Tensor& dst, double s) {
    dispatch(dst.dtype(), [&](auto tag) {
        using T = decltype(tag);
        T* pd = dst.data<T>();
        const T a = static_cast<T>(s);
        parallel_range(dst.numel(), kGrainElementwise, [&](int64_t b, int64_t e) {
            for (int64_t i = b; i < e; ++i) pd[i] *= a;
        });
    });
}

}  // namespace ddpm
