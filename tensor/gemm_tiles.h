// gemm_tiles.h: how the AVX-512 families of gemm_kernels.h (fp32 and bf16) cut C into
// register tiles. Header-only, so each family's file compiles it for its own ISA.
//
// Column panels of up to kPanelVectors vectors of 16 columns run outer (a panel
// of B stays in L1 while every row block of A passes over it), row blocks inner.
// The N / 16 vectors are shared evenly among the fewest panels: 80 columns run as
// 3 + 2 vectors, not 4 + 1 (a one-vector tile does one FMA per broadcast of A).
// A tile of nv vectors has kRowsFor[nv] rows: at most 24 accumulators of the 32
// registers, and at least 12 (two FMA pipes of latency 4 need 8 in flight).
#pragma once

#include <cstdint>
#include <utility>

namespace ddpm::gemm_tiles {

constexpr int kLanes = 16, kPanelVectors = 4;
constexpr int kRowsFor[kPanelVectors + 1] = {0, 12, 12, 6, 6};

// f(nv, mr, i0, j0, tail) for each tile: rows [i0, i0 + mr) by nv vectors from
// column j0, the last vector holding `tail` (1..16) columns.
template <class F> void for_each_tile(int64_t M, int64_t N, F&& f) {
    const int64_t vectors = (N + kLanes - 1) / kLanes, panels = (vectors + kPanelVectors - 1) / kPanelVectors;
    for (int64_t p = 0, j0 = 0; p < panels; ++p) {
        const int nv = static_cast<int>(vectors / panels + (p < vectors % panels ? 1 : 0));
        const int64_t n = N - j0 < nv * kLanes ? N - j0 : nv * kLanes;
        const int64_t rows = kRowsFor[nv];
        for (int64_t i0 = 0; i0 < M; i0 += rows)
            f(nv, static_cast<int>(M - i0 < rows ? M - i0 : rows), i0, j0, n - (nv - 1) * kLanes);
        j0 += n;
    }
}

// table<Tile, Fn>()[nv - 1][mr - 1] = &Tile<mr, nv>::run, for mr up to kRowsFor[nv].
template <template <int, int> class Tile, class Fn, int NV, int... R> struct Column {
    static constexpr Fn fns[sizeof...(R)] = {&Tile<R + 1, NV>::run...};
};
template <template <int, int> class Tile, class Fn, int NV, int... R>
constexpr const Fn* column(std::integer_sequence<int, R...>) {
    return Column<Tile, Fn, NV, R...>::fns;
}
template <template <int, int> class Tile, class Fn> struct Table {
    static constexpr const Fn* by_vectors[kPanelVectors] = {
        column<Tile, Fn, 1>(std::make_integer_sequence<int, kRowsFor[1]>()),
        column<Tile, Fn, 2>(std::make_integer_sequence<int, kRowsFor[2]>()),
        column<Tile, Fn, 3>(std::make_integer_sequence<int, kRowsFor[3]>()),
        column<Tile, Fn, 4>(std::make_integer_sequence<int, kRowsFor[4]>())};
};

}  // namespace ddpm::gemm_tiles
