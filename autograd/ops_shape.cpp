// ops_shape.cpp: reshaping, slicing, joining and resampling, with their gradients.
#include <fmt/format.h>

#include <algorithm>

#include "autograd/ops.h"
#include "autograd/profiler.h"
#include "tensor/dropout.h"
#include "tensor/elementwise.h"
#include "tensor/shape_ops.h"
#include "tensor/upsample.h"

namespace ddpm {

Variable reshape(const Variable& x, const Shape& shape) {
    OpTimer timer("reshape");
    return Variable::make_result(
        x.data().reshape(shape), {x},
        [](const Tensor& g, VariableList& in) { in[0].accumulate_grad(g.reshape(in[0].shape())); },
        "reshape");
}

// The gradient of rows [begin, end) lands in those rows of a zero gradient.
Variable slice(const Variable& x, int64_t begin, int64_t end) {
    OpTimer timer("slice");
    return Variable::make_result(
        x.data().slice(begin, end), {x},
        [begin, end](const Tensor& g, VariableList& in) {
            Tensor dx = Tensor::zeros_like(in[0].data());
            Tensor rows = dx.slice(begin, end);
            rows.copy_(g);
            in[0].accumulate_grad(std::move(dx));
        },
        "slice");
}

// The gradient goes back through the inverse permutation.
Variable permute(const Variable& x, const std::vector<int64_t>& order) {
    OpTimer timer("permute");
    std::vector<int64_t> inverse(order.size());
    for (size_t i = 0; i < order.size(); ++i)
        inverse[static_cast<size_t>(normalize_axis(order[i], x.dim(), "permute"))] = static_cast<int64_t>(i);
    return Variable::make_result(
        x.data().permute(order), {x},
        [inverse](const Tensor& g, VariableList& in) { in[0].accumulate_grad(g.permute(inverse)); },
        "permute");
}

Variable transpose(const Variable& x, int64_t a, int64_t b) {
    std::vector<int64_t> order(static_cast<size_t>(x.dim()));
    for (int64_t i = 0; i < x.dim(); ++i) order[static_cast<size_t>(i)] = i;
    std::swap(order[static_cast<size_t>(normalize_axis(a, x.dim(), "transpose"))],
              order[static_cast<size_t>(normalize_axis(b, x.dim(), "transpose"))]);
    return permute(x, order);
}

// Each part gets back its own stretch of the gradient.
Variable concat(const VariableList& parts, int64_t axis) {
    OpTimer timer("concat");
    std::vector<Tensor, PoolAllocator<Tensor>> data;
    for (const Variable& p : parts) data.push_back(p.data());
    const int64_t a = normalize_axis(axis, parts.at(0).dim(), "concat");
    return Variable::make_result(
        ddpm::concat(std::span<const Tensor>(data.data(), data.size()), a), parts,
        [a](const Tensor& g, VariableList& in) {
            int64_t at = 0;
            for (Variable& v : in) {
                const int64_t n = v.size(a);
                if (v.requires_grad()) v.accumulate_grad(ddpm::narrow(g, a, at, n));
                at += n;
            }
        },
        "concat");
}

// The gradient is g padded with zeros to the input's extent along the axis.
Variable narrow(const Variable& x, int64_t axis, int64_t begin, int64_t length) {
    OpTimer timer("narrow");
    const int64_t a = normalize_axis(axis, x.dim(), "narrow");
    return Variable::make_result(
        ddpm::narrow(x.data(), a, begin, length), {x},
        [a, begin, length](const Tensor& g, VariableList& in) {
            Shape before = in[0].shape(), after = in[0].shape();
            before[a] = begin;
            after[a] = in[0].size(a) - begin - length;
            in[0].accumulate_grad(ddpm::concat(
                {Tensor::zeros(before, g.dtype()), g, Tensor::zeros(after, g.dtype())}, a));
        },
        "narrow");
}

Variable upsample_nearest2x(const Variable& x) {
    OpTimer timer("upsample_nearest2x");
    return Variable::make_result(
        ddpm::upsample_nearest2x(x.data()), {x},
        [](const Tensor& g, VariableList& in) { in[0].accumulate_grad(upsample_nearest2x_backward(g)); },
        "upsample_nearest2x");
}

Variable dropout(const Variable& x, double p, Generator& gen, bool training) {
    OpTimer timer("dropout");
    if (!training || p == 0.0) return x;
    DropoutOut f = dropout_forward(x.data(), p, gen);
    return Variable::make_result(
        std::move(f.y), {x},
        [keep = f.keep, p](const Tensor& g, VariableList& in) {
            in[0].accumulate_grad(dropout_backward(g, keep, p));
        },
        "dropout");
}

namespace {
// The row index ids[b], checked against the table's K rows.
int64_t embedding_row(const Tensor& ids, int64_t b, int64_t K) {
    const double v = ids.flat(b);
    const auto row = static_cast<int64_t>(v);
    DDPM_CHECK(double(row) == v && row >= 0 && row < K, "embedding", fmt::format("id {} of row {} is not a row of a {}-row table", v, b, K));
    return row;
}

// forward: out[b, :] = table[ids[b], :]      table (K, D), ids (B), out (B, D)
template <class T> void embedding_forward(const Tensor& table, const Tensor& ids, Tensor& out) {
    const int64_t B = ids.size(0), K = table.size(0), D = table.size(1);
    for (int64_t b = 0; b < B; ++b) {
        const T* src = table.data<T>() + embedding_row(ids, b, K) * D;
        std::copy(src, src + D, out.data<T>() + b * D);
    }
}

// backward: dtable[ids[b], :] += dout[b, :]  (a row picked twice gets both gradients)
template <class T> void embedding_backward(const Tensor& dout, const Tensor& ids, Tensor& dtable) {
    const int64_t B = ids.size(0), K = dtable.size(0), D = dtable.size(1);
    for (int64_t b = 0; b < B; ++b) {
        T* dst = dtable.data<T>() + embedding_row(ids, b, K) * D;
        const T* g = dout.data<T>() + b * D;
        for (int64_t d = 0; d < D; ++d) dst[d] += g[d];
    }
}
}  // namespace

// guide.md §16: out[b] = table[ids[b]]; dtable[ids[b]] += dout[b].
Variable embedding(const Variable& table, const Tensor& ids) {
    OpTimer timer("embedding");
    DDPM_CHECK(table.dim() == 2 && ids.dim() == 1, "embedding",
               "a (K, D) table and (B) ids, got " + table.data().describe() + " and " + ids.describe());
    Tensor out(Shape{ids.size(0), table.size(1)}, table.data().dtype());
    if (out.dtype() == DType::F32) embedding_forward<float>(table.data(), ids, out);
    else embedding_forward<double>(table.data(), ids, out);
    return Variable::make_result(
        std::move(out), {table},
        [ids](const Tensor& g, VariableList& in) {
            Tensor dtable = Tensor::zeros_like(in[0].data());
            if (g.dtype() == DType::F32) embedding_backward<float>(g, ids, dtable);
            else embedding_backward<double>(g, ids, dtable);
            in[0].accumulate_grad(std::move(dtable));
        },
        "embedding");
}

}  // namespace ddpm
