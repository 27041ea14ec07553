// shape_ops.cpp: a tensor seen as (outer, size along axis * inner) rows of contiguous runs.
#include "tensor/shape_ops.h"

#include <fmt/format.h>

#include <cstring>

#include "tensor/parallel.h"

namespace ddpm {

static int64_t prod(const Shape& s, int64_t b, int64_t e) {
    int64_t p = 1;
    for (int64_t i = b; i < e; ++i) p *= s[i];
    return p;
}

Tensor concat(std::span<const Tensor> parts, int64_t axis) {
    DDPM_CHECK(!parts.empty(), "concat", "no tensors to join");
    const Shape& s0 = parts[0].shape();
    const int64_t a = normalize_axis(axis, static_cast<int64_t>(s0.size()), "concat");
    Shape out_shape = s0;
    out_shape[a] = 0;
    for (const Tensor& t : parts) {
        bool ok = t.dim() == static_cast<int64_t>(s0.size()) && t.dtype() == parts[0].dtype();
        for (int64_t i = 0; ok && i < t.dim(); ++i) ok = i == a || t.size(i) == s0[i];
        if (!ok) {
            std::string all;
            for (const Tensor& u : parts) all += (all.empty() ? "" : ", ") + u.describe();
            fail("concat", fmt::format("tensors {} differ outside axis {}", all, a));
        }
        out_shape[a] += t.size(a);
    }
    Tensor out(out_shape, parts[0].dtype());
    const int64_t outer = prod(s0, 0, a), inner = prod(s0, a + 1, static_cast<int64_t>(s0.size()));
    const size_t es = dtype_size(out.dtype());
    const int64_t out_row = out_shape[a] * inner;
    char* po = static_cast<char*>(out.raw_data());
    parallel_for(outer, std::max<int64_t>(1, kGrainElementwise / std::max<int64_t>(out_row, 1)), [&](int64_t o) {
        int64_t at = 0;
        for (const Tensor& t : parts) {
            const int64_t run = t.size(a) * inner;
            std::memcpy(po + (o * out_row + at) * es, static_cast<const char*>(t.raw_data()) + o * run * es,
                        run * es);
            at += run;
        }
    });
    return out;
}

Tensor narrow(const Tensor& x, int64_t axis, int64_t begin, int64_t length) {
    const int64_t a = normalize_axis(axis, x.dim(), "narrow");
    DDPM_CHECK(begin >= 0 && length >= 0 && begin + length <= x.size(a), "narrow",
          fmt::format("[{}, {}) out of range on axis {} of {}", begin, begin + length, a, x.describe()));
    Shape out_shape = x.shape();
    out_shape[a] = length;
    Tensor out(out_shape, x.dtype());
    const int64_t outer = prod(x.shape(), 0, a), inner = prod(x.shape(), a + 1, x.dim());
    const size_t es = dtype_size(x.dtype());
    const int64_t in_row = x.size(a) * inner, run = length * inner;
    const char* px = static_cast<const char*>(x.raw_data());
    char* po = static_cast<char*>(out.raw_data());
    parallel_for(outer, std::max<int64_t>(1, kGrainElementwise / std::max<int64_t>(run, 1)), [&](int64_t o) {
        std::memcpy(po + o * run * es, px + (o * in_row + begin * inner) * es, run * es);
    });
    return out;
}

}  // namespace ddpm
