// reduce.cpp: reductions as a walk over the input with the output broadcast into it.
#include "tensor/reduce.h"

#include <fmt/format.h>

#include <limits>
#include <type_traits>

#include "tensor/block_sum.h"
#include "tensor/broadcast.h"
#include "tensor/scratch.h"

namespace ddpm {

Shape reduced_shape(const Shape& shape, const Axes& axes, const char* op, bool keepdim) {
    const int64_t n = static_cast<int64_t>(shape.size());
    Int64List reduced(shape.size(), axes.empty() ? 1 : 0);
    for (int64_t a : axes) reduced[normalize_axis(a, n, op)] = true;
    Shape out;
    for (int64_t i = 0; i < n; ++i) {
        if (!reduced[i]) out.push_back(shape[i]);
        else if (keepdim) out.push_back(1);
    }
    return out;
}

// Reduces x into `keep` (same rank, 1 on reduced axes) with `combine`, starting
// from `init`, accumulating in double. Threads each fill a private copy of the
// output and the copies are combined at the end, so no two threads write the same element.
// A sum along a row (the innermost axes reduced: a per-image bias's gradient, sum over
// H and W) adds the row in vectorised blocks (block_sum.h) rather than one dependent double
// addition per element (`small`, batch 64: 2% of a training step's samples in `perf`).
struct AccTag {};  // the per-thread partial results of reduce_into
struct Add {
    double operator()(double a, double b) const { return a + b; }
};

template <class Combine>
static Tensor reduce_into(const Tensor& x, const Shape& keep, double init, Combine combine) {
    Tensor out(keep, x.dtype());
    const int64_t n_out = out.numel();
    auto plan = make_broadcast_plan<2>(x.shape(), {&x.shape(), &keep});
    const int64_t rows = plan.rows(), inner = plan.inner();
    const auto st = plan.inner_strides();
    const int nt = (n_out * max_threads() <= x.numel() && x.numel() >= kGrainElementwise && rows >= 2)
                       ? max_threads() : 1;
    double* acc = thread_scratch<double, AccTag>(static_cast<size_t>(n_out * nt));
    std::fill(acc, acc + n_out * nt, init);
    dispatch(x.dtype(), [&](auto tag) {
        using T = decltype(tag);
        const T* px = x.data<T>();
        parallel_pieces(nt, [&](int64_t k) {  // slice k of the rows, summed into acc's slice k
            double* a = acc + k * n_out;
            for (int64_t r = rows * k / nt; r < rows * (k + 1) / nt; ++r) {
                auto off = plan.row_offsets(r);
                const T* row = px + off[0];
                if (st[1] == 0) {
                    double s = init;
                    if constexpr (std::is_same_v<Combine, Add>)
                        s += block_sum<T>(inner, [&](int64_t i) { return row[i * st[0]]; });
                    else
                        for (int64_t i = 0; i < inner; ++i) s = combine(s, static_cast<double>(row[i * st[0]]));
                    a[off[1]] = combine(a[off[1]], s);
                } else {
                    for (int64_t i = 0; i < inner; ++i)
                        a[off[1] + i * st[1]] = combine(a[off[1] + i * st[1]], static_cast<double>(row[i * st[0]]));
                }
            }
        });
        T* po = out.data<T>();
        for (int64_t j = 0; j < n_out; ++j) {
            double v = acc[j];
            for (int t = 1; t < nt; ++t) v = combine(v, acc[t * n_out + j]);
            po[j] = static_cast<T>(v);
        }
    });
    return out;
}

Tensor sum(const Tensor& x, const Axes& axes, bool keepdim) {
    Shape keep = reduced_shape(x.shape(), axes, "sum");
    Tensor out = reduce_into(x, keep, 0.0, Add{});
    return keepdim ? out : out.reshape(reduced_shape(x.shape(), axes, "reduce", false));
}

Tensor mean(const Tensor& x, const Axes& axes, bool keepdim) {
    Shape keep = reduced_shape(x.shape(), axes, "mean");
    const int64_t count = x.numel() / std::max<int64_t>(shape_numel(keep), 1);
    DDPM_CHECK(count > 0, "mean", "mean over zero elements of " + x.describe());
    Tensor out = reduce_into(x, keep, 0.0, Add{});
    dispatch(out.dtype(), [&](auto tag) {
        using T = decltype(tag);
        T* p = out.data<T>();
        for (int64_t i = 0; i < out.numel(); ++i) p[i] = static_cast<T>(p[i] / static_cast<double>(count));
    });
    return keepdim ? out : out.reshape(reduced_shape(x.shape(), axes, "reduce", false));
}

Tensor max(const Tensor& x, const Axes& axes, bool keepdim) {
    Shape keep = reduced_shape(x.shape(), axes, "max");
    DDPM_CHECK(x.numel() > 0, "max", "max of an empty tensor");
    Tensor out = reduce_into(x, keep, -std::numeric_limits<double>::infinity(),
                             [](double a, double b) { return b > a || b != b ? b : a; });
    return keepdim ? out : out.reshape(reduced_shape(x.shape(), axes, "reduce", false));
}

// guide.md §1: the gradient of a broadcast input is summed over the stretched axes.
Tensor sum_to(const Tensor& x, const Shape& shape) {
    if (x.shape() == shape) return x;
    const size_t nd = x.shape().size();
    DDPM_CHECK(shape.size() <= nd, "sum_to",
          fmt::format("{} has more axes than {}", shape_str(shape), shape_str(x.shape())));
    Shape keep(nd - shape.size(), 1);
    keep.insert(keep.end(), shape.begin(), shape.end());
    for (size_t i = 0; i < nd; ++i)
        DDPM_CHECK(keep[i] == x.shape()[i] || keep[i] == 1, "sum_to",
              fmt::format("{} does not broadcast to {}", shape_str(shape), shape_str(x.shape())));
    return reduce_into(x, keep, 0.0, Add{}).reshape(shape);
}

}  // namespace ddpm
