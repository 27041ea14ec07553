// broadcast.h: the iteration plan behind every broadcasting loop.
//
// Each operand gets a stride per output axis (0 where it is broadcast); axes of
// size 1 are dropped and neighbours that every operand walks contiguously are
// merged, so [64,32,28,28] + [1,32,1,1] runs as 64*32 rows of 784 with the
// bias read at stride 0. The innermost axis is the fast loop.
#pragma once

#include <array>
#include <vector>

#include "tensor/parallel.h"
#include "tensor/tensor.h"

namespace ddpm {

template <int N> struct BroadcastPlan {
    Int64List dims;                    // merged output axes
    std::array<Int64List, N> strides;  // per operand, per merged axis
    int64_t inner() const { return dims.empty() ? 1 : dims.back(); }
    int64_t rows() const {
        int64_t r = 1;
        for (size_t i = 0; i + 1 < dims.size(); ++i) r *= dims[i];
        return r;
    }
    // Offsets of each operand at the start of row r.
    std::array<int64_t, N> row_offsets(int64_t r) const {
        std::array<int64_t, N> off{};
        for (int64_t i = static_cast<int64_t>(dims.size()) - 2; i >= 0; --i) {
            int64_t idx = r % dims[i];
            r /= dims[i];
            for (int k = 0; k < N; ++k) off[k] += idx * strides[k][i];
        }
        return off;
    }
    std::array<int64_t, N> inner_strides() const {
        std::array<int64_t, N> s{};
        for (int k = 0; k < N; ++k) s[k] = dims.empty() ? 0 : strides[k].back();
        return s;
    }
};

// Operand shapes must already broadcast to `out` (checked by the caller).
// guide.md §1: per-operand strides, 0 on stretched axes, neighbours merged.
template <int N>
BroadcastPlan<N> make_broadcast_plan(const Shape& out, const std::array<const Shape*, N>& in) {
    const int64_t nd = static_cast<int64_t>(out.size());
    std::array<Int64List, N> full;
    for (int k = 0; k < N; ++k) {
        const Shape& s = *in[k];
        const int64_t pad = nd - static_cast<int64_t>(s.size());
        full[k].assign(nd, 0);
        int64_t stride = 1;
        for (int64_t i = nd - 1; i >= pad; --i) {
            int64_t d = s[i - pad];
            full[k][i] = (d == 1) ? 0 : stride;
            stride *= d;
        }
    }
    BroadcastPlan<N> p;
    for (int64_t i = 0; i < nd; ++i) {
        if (out[i] == 1) continue;
        bool merge = !p.dims.empty();
        for (int k = 0; k < N && merge; ++k)
            merge = p.strides[k].back() == full[k][i] * out[i];
        if (merge) {
            p.dims.back() *= out[i];
            for (int k = 0; k < N; ++k) p.strides[k].back() = full[k][i];
        } else {
            p.dims.push_back(out[i]);
            for (int k = 0; k < N; ++k) p.strides[k].push_back(full[k][i]);
        }
    }
    return p;
}

// Calls row(offsets, len, inner_strides) over the whole plan, in parallel when
// the work is large. Few long rows (a flat same-shape op is one row) are cut
// into pieces so that both cores still get work.
template <int N, class F> void for_each_row(const BroadcastPlan<N>& p, F&& row) {
    const int64_t inner = p.inner(), rows = p.rows();
    const auto st = p.inner_strides();
    const int64_t pieces = (rows < 8 && inner >= 2 * kGrainElementwise)
                               ? (inner + kGrainElementwise - 1) / kGrainElementwise
                               : 1;
    const int64_t len = (inner + pieces - 1) / pieces;
    parallel_for(rows * pieces, std::max<int64_t>(1, kGrainElementwise / std::max<int64_t>(len, 1)),
                 [&](int64_t w) {
                     const int64_t r = w / pieces, begin = (w % pieces) * len;
                     const int64_t n = std::min(len, inner - begin);
                     if (n <= 0) return;
                     auto off = p.row_offsets(r);
                     for (int k = 0; k < N; ++k) off[k] += begin * st[k];
                     row(off, n, st);
                 });
}

}  // namespace ddpm
