// winograd.cpp: F(4x4, 3x3) convolution, forward, input gradient and weight gradient.
//
// The batch's output tiles (image b, tile row th, tile column tw) are numbered
// p = (b * TH + th) * TW + tw and cut into blocks whose transformed data fit
// in about block_bytes(). A thread takes a contiguous run of blocks; for each it
//   1. transforms the input patches: V[xi][c][p] = (B^T d B)[xi],
//   2. runs 36 GEMMs M[xi] = U[xi] V[xi] (OC x C times C x tiles), and
//   3. transforms back: out tile = A^T M A (+ bias).
// All three stay in the thread's cache-sized scratch buffers. The transforms
// work on kLanes tiles at once, one tile per vector lane.
#include "tensor/winograd.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <mutex>
#include <tuple>
#include <type_traits>
#include <vector>

#include "tensor/avx2.h"
#include "tensor/avx512.h"
#include "tensor/gemm_kernels.h"
#include "tensor/matmul.h"
#include "tensor/parallel.h"
#include "tensor/scratch.h"

namespace ddpm {

namespace {

constexpr int64_t kLanes = 16;  // tiles transformed together (one AVX-512 register of floats)
constexpr int kXi = 36;         // points of the 6x6 transform grid
constexpr int64_t kMinBlockTiles = 3 * kLanes;  // a block's tiles, however large their V and M (see Tiling)

// The bytes of V and M of one block (float): three quarters of the core's L2
// cache, so that they stay there beside a slice of U. Measured (`ddpm bench
// --config small --batch 64`, 2 threads): 768 KiB best where L2 is 1 MiB
// (AMD Zen 5); on a Zen 3 (512 KiB) 384 KiB took 3-4% less per step than 768.
int64_t l2_bytes() {
    static const int64_t bytes = [] {
        const long l2 = sysconf(_SC_LEVEL2_CACHE_SIZE);
        return l2 > 0 ? int64_t{l2} : int64_t{1} << 20;
    }();
    return bytes;
}
int64_t block_bytes() { return l2_bytes() * 3 / 4; }

// The bytes of V and M of one block that all threads share in a wide layer's
// forward (winograd_conv_by_xi): a quarter of L3, at most 8 MiB. (The weight
// gradient's are larger: weight_grad_block_bytes.)
int64_t shared_block_bytes() {
    static const int64_t bytes = [] {
        const long l3 = sysconf(_SC_LEVEL3_CACHE_SIZE);
        return std::min<int64_t>(l3 > 0 ? int64_t{l3} / 4 : int64_t{4} << 20, int64_t{8} << 20);
    }();
    return bytes;
}

constexpr int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// The tiling of one convolution: TH x TW tiles of 4x4 outputs per image, cut
// into blocks whose V and M take about `bytes`.
struct Tiling {
    int64_t B, C, H, W, OC, TH, TW, P, block, ld, nblocks;
    int64_t vxi, mxi, uxi;  // from one xi's matrix of V (C x ld), of M (OC x ld), of U (OC x C), to the next
    int64_t pxi;            // from one xi's U packed to bfloat16 pairs (OC x ceil(C / 2)) to the next
    int64_t pvxi;           // from one xi's V as bfloat16 pairs (ceil(C / 2) x ld) to the next
    // The weight gradient's operands as bfloat16 pairs along the tiles: dM's (OC x ld / 2) from
    // one xi to the next, and V^T's (ld / 2 rows of ldt, C rounded up to whole vectors).
    int64_t pmxi, ldt, ptxi;
    Tiling(int64_t B_, int64_t C_, int64_t H_, int64_t W_, int64_t OC_, int nthreads, int64_t bytes = block_bytes())
        : B(B_), C(C_), H(H_), W(W_), OC(OC_), TH((H_ + 3) / 4), TW((W_ + 3) / 4) {
        P = B * TH * TW;
        // Blocks that fit the cache, as many as a multiple of the threads (so
        // that each thread gets the same number of tiles: 3 blocks on 2 threads
        // leave one thread idle while the other runs its second), of whole lane
        // groups where possible. (Smaller blocks, several per thread, balance a shared CPU
        // better but cost more on a quiet one.) At least three lane groups even where
        // that overflows the budget: the products' register tiles are one column
        // vector of tiles per group, and with one or two they do one or two FMAs per
        // broadcast entry of U (`bench_conv2d`'s wgemm on a Zen 5: 61% of peak at 16
        // tiles, 82% at 32, 85% at 48). Measured, whole forward, 2 threads, in one
        // process alternating: `small` batch 64 2.4% faster than with a floor of one
        // group (12/12; its 64 -> 64 and 128 -> 64 layers had 32 and 16 tiles),
        // `cifar10` batch 16 3.2%, `tiny` unchanged.
        const int64_t fit = bytes / (kXi * (C + OC) * static_cast<int64_t>(sizeof(float)));
        const int64_t cap = std::max<int64_t>(kMinBlockTiles, fit / kLanes * kLanes);
        const int64_t wanted = ceil_div(ceil_div(P, cap), nthreads) * nthreads;
        const int64_t even = ceil_div(P, wanted);  // <= cap
        block = even >= kLanes ? ceil_div(even, kLanes) * kLanes : std::max<int64_t>(even, 1);
        ld = ceil_div(block, kLanes) * kLanes;  // a lane group never spills past a row
        nblocks = ceil_div(P, block);
        // One cache line more than a matrix's size: at exactly its size (often a
        // multiple of 4 KiB) a transform's 36 stores per channel would all fall into
        // one set of the L1 cache and evict each other (the input transform took
        // 2-3x as long).
        vxi = C * ld + 16, mxi = OC * ld + 16, uxi = OC * C + 16, pxi = OC * bf16_pairs(C) + 16;
        pvxi = bf16_pairs(C) * ld + 16;
        ldt = ceil_div(C, kLanes) * kLanes;
        pmxi = OC * (ld / 2) + 16, ptxi = ld / 2 * ldt + 16;
    }
};

// Where the tiles of one lane group start: input row/column of the patch's
// corner (the tile's first output row/column minus the padding) and the image.
struct LaneTiles {
    int64_t image[kLanes], row[kLanes], col[kLanes];
    int n;  // lanes in use
    LaneTiles(const Tiling& t, int64_t p0, int64_t count) : n(static_cast<int>(std::min(kLanes, count))) {
        for (int l = 0; l < n; ++l) {
            const int64_t p = p0 + l, per_image = t.TH * t.TW;
            image[l] = p / per_image;
            row[l] = (p % per_image) / t.TW * 4;
            col[l] = p % t.TW * 4;
        }
    }
};

// The six-point transforms, applied across kLanes lanes: in[k * is + l] -> out[k * os + l].
// guide.md §3: B^T (input), A^T (output) and G (kernel) of F(4x4, 3x3), and their transposes for backward.
template <class T> inline void bt6(const T* in, int64_t is, T* out, int64_t os) {
#pragma omp simd
    for (int64_t l = 0; l < kLanes; ++l) {
        const T a0 = in[l], a1 = in[is + l], a2 = in[2 * is + l], a3 = in[3 * is + l], a4 = in[4 * is + l],
                a5 = in[5 * is + l];
        out[l] = 4 * a0 - 5 * a2 + a4;
        out[os + l] = -4 * (a1 + a2) + a3 + a4;
        out[2 * os + l] = 4 * (a1 - a2) - a3 + a4;
        out[3 * os + l] = 2 * (a3 - a1) - a2 + a4;
        out[4 * os + l] = 2 * (a1 - a3) - a2 + a4;
        out[5 * os + l] = 4 * a1 - 5 * a3 + a5;
    }
}

// Six values in, four out: the output transform A^T.
template <class T> inline void at6(const T* in, int64_t is, T* out, int64_t os) {
#pragma omp simd
    for (int64_t l = 0; l < kLanes; ++l) {
        const T a0 = in[l], a1 = in[is + l], a2 = in[2 * is + l], a3 = in[3 * is + l], a4 = in[4 * is + l],
                a5 = in[5 * is + l];
        const T s12 = a1 + a2, d12 = a1 - a2, s34 = a3 + a4, d34 = a3 - a4;
        out[l] = a0 + s12 + s34;
        out[os + l] = d12 + 2 * d34;
        out[2 * os + l] = s12 + 4 * s34;
        out[3 * os + l] = d12 + 8 * d34 + a5;
    }
}

// Four values in, six out: A, the adjoint of at6 (used on output gradients).
template <class T> inline void a4(const T* in, int64_t is, T* out, int64_t os) {
#pragma omp simd
    for (int64_t l = 0; l < kLanes; ++l) {
        const T y0 = in[l], y1 = in[is + l], y2 = in[2 * is + l], y3 = in[3 * is + l];
        const T e = y0 + y2, o = y1 + y3, e4 = y0 + 4 * y2, o2 = 2 * y1 + 8 * y3;
        out[l] = y0;
        out[os + l] = e + o;
        out[2 * os + l] = e - o;
        out[3 * os + l] = e4 + o2;
        out[4 * os + l] = e4 - o2;
        out[5 * os + l] = y3;
    }
}

// Kernel transform of kLanes 3x3 kernels at once, k[i][j][lane] -> u[xi][lane]:
// guide.md §3: u (6x6) = G k G^T.
template <class T> void kernel_transform(const T (*k)[3][kLanes], T (*u)[kLanes]) {
    const T sixth = T(1) / T(6);
    // G applied to three values (the 1/6 and 1/24 rows share a factor 1/6).
    auto g3 = [&](const T* a, const T* b, const T* c, T* o, int64_t os) {
#pragma omp simd
        for (int64_t l = 0; l < kLanes; ++l) {
            const T x = a[l], y = b[l], z = c[l];
            o[l] = T(0.25) * x;
            o[os + l] = -(x + y + z) * sixth;
            o[2 * os + l] = -(x - y + z) * sixth;
            o[3 * os + l] = (T(0.25) * x + T(0.5) * y + z) * sixth;
            o[4 * os + l] = (T(0.25) * x - T(0.5) * y + z) * sixth;
            o[5 * os + l] = z;
        }
    };
    alignas(64) T t[6][3][kLanes];
    for (int j = 0; j < 3; ++j) g3(&k[0][j][0], &k[1][j][0], &k[2][j][0], &t[0][j][0], 3 * kLanes);
    for (int i = 0; i < 6; ++i) g3(&t[i][0][0], &t[i][1][0], &t[i][2][0], &u[i * 6][0], kLanes);
}

// The adjoint, of kLanes 6x6 du at once, du[xi][lane] -> dk[i][j][lane]:
// guide.md §3: dk (3x3) = G^T du G.
template <class T> void kernel_transform_adjoint(const T (*du)[kLanes], T (*dk)[3][kLanes]) {
    // (Multiplications by 1/6, 1/12, 1/24, not divisions: the weight gradient of
    // 256 -> 256 channels at 4x4, batch 16, 2 threads, took 2.6 ms against 4.2 on a
    // Zen 3. On lanes rather than one kernel at a time: 3.6 -> 1.3 ms on a Zen 5.)
    const T sixth = T(1) / T(6), twelfth = T(1) / T(12), twentyfourth = T(1) / T(24);
    // G^T applied to six values (u[k * s + l]) across the lanes.
    auto gt6 = [&](const T* u, int64_t s, T* o, int64_t os) {
#pragma omp simd
        for (int64_t l = 0; l < kLanes; ++l) {
            const T u0 = u[l], u1 = u[s + l], u2 = u[2 * s + l], u3 = u[3 * s + l], u4 = u[4 * s + l], u5 = u[5 * s + l];
            o[l] = u0 * T(0.25) - (u1 + u2) * sixth + (u3 + u4) * twentyfourth;
            o[os + l] = (u2 - u1) * sixth + (u3 - u4) * twelfth;
            o[2 * os + l] = -(u1 + u2) * sixth + (u3 + u4) * sixth + u5;
        }
    };
    alignas(64) T t[3][6][kLanes];
    for (int j = 0; j < 6; ++j) gt6(&du[j][0], 6 * kLanes, &t[0][j][0], 6 * kLanes);
    for (int i = 0; i < 3; ++i) gt6(&t[i][0][0], kLanes, &dk[i][0][0], kLanes);
}

// Kernel k[i][j][l] of lane l < n from w: w[o][c0 + l] (w is (OC, C, 3, 3)), or
// with kFlipped w[c0 + l][o] turned half a turn (w is then (C, OC, 3, 3)). A full
// group's loops have constant bounds, so the compiler unrolls them (the kernel
// transform took 40-57 ns a kernel on a Zen 3 with the flip and the lane count
// decided per load; see transform_kernels).
template <bool kFlipped, class T>
void gather_kernels(const T* w, int64_t OC, int64_t C, int64_t o, int64_t c0, int64_t n, T (*k)[3][kLanes]) {
    auto load = [&](int64_t l) {
        const T* src = kFlipped ? w + ((c0 + l) * OC + o) * 9 : w + (o * C + c0 + l) * 9;
        for (int ij = 0; ij < 9; ++ij) k[ij / 3][ij % 3][l] = src[kFlipped ? 8 - ij : ij];
    };
    if (n == kLanes) {
        for (int64_t l = 0; l < kLanes; ++l) load(l);
    } else {
        for (int64_t l = 0; l < n; ++l) load(l);
        for (int ij = 0; ij < 9; ++ij) std::fill(k[ij / 3][ij % 3] + n, k[ij / 3][ij % 3] + kLanes, T(0));
    }
}

// Row o of U from w: U_o[xi * uxi + c] = U[xi][o][c] for c < C (U_o = U + o C in a
// whole U); with `flipped` the kernel used is w[c][o][2 - i][2 - j] (w is then
// (C, OC, 3, 3)): the input-gradient convolution. kLanes input channels are
// transformed together.
template <bool kFlipped, class T>
void transform_kernel_row(const T* w, int64_t OC, int64_t C, int64_t o, T* U_o, int64_t uxi) {
    for (int64_t c0 = 0; c0 < C; c0 += kLanes) {
        const int64_t n = std::min(kLanes, C - c0);
        alignas(64) T k[3][3][kLanes], u[kXi][kLanes];
        gather_kernels<kFlipped>(w, OC, C, o, c0, n, k);
        kernel_transform(k, u);
        T* dst = U_o + c0;
        if (n == kLanes)
            for (int xi = 0; xi < kXi; ++xi) std::copy(u[xi], u[xi] + kLanes, dst + xi * uxi);
        else
            for (int xi = 0; xi < kXi; ++xi) std::copy(u[xi], u[xi] + n, dst + xi * uxi);
    }
}

// Rows o0 .. o1 - 1 of U on this thread: U_rows[xi * uxi + (o - o0) C + c].
template <class T>
void transform_kernel_rows(const T* w, bool flipped, const Tiling& t, int64_t o0, int64_t o1, T* U_rows, int64_t uxi) {
    for (int64_t o = o0; o < o1; ++o) {
        if (flipped)
            transform_kernel_row<true>(w, t.OC, t.C, o, U_rows + (o - o0) * t.C, uxi);
        else
            transform_kernel_row<false>(w, t.OC, t.C, o, U_rows + (o - o0) * t.C, uxi);
    }
}

std::atomic<int64_t> kernel_transforms{0};  // made so far (winograd_kernel_transforms)

// All of U (U[xi][o][c] at U + xi uxi + o C + c), its rows shared out among the threads.
template <class T> void transform_kernels(const T* w, bool flipped, const Tiling& t, T* U) {
    kernel_transforms.fetch_add(1, std::memory_order_relaxed);
    parallel_for(t.OC, ceil_div(1024, t.C),
                 [&](int64_t o) { transform_kernel_rows(w, flipped, t, o, o + 1, U + o * t.C, t.uxi); });
}

// What a TilePatches is for: gathering the patches only, or also scattering tiles
// into them (which works out, once, the runs that scatter_runs stores together).
enum class PatchUse { Gather, Scatter };

// For each lane, the kRows x kRows patch whose corner is (row - off, col - off)
// of its image's plane. gather reads it into d[r][s][lane] (zero outside the
// H x W plane); scatter writes d back to the part inside the plane. The lanes'
// offsets and edge masks are worked out once per lane group, then used for
// every channel.
template <class T, int kRows> struct TilePatches {
    int64_t offset[kLanes];  // of the patch corner from the plane of image 0 (may lie outside)
    bool inside[kLanes];
    uint32_t row_ok[kRows] = {}, col_ok[kRows] = {};  // bit l: that patch row / column lies in the plane
    uint32_t row_whole[kRows] = {};  // bit l: 8 floats from that row's first column lie in the plane
    uint8_t lane_cols[kLanes] = {};                     // bit k: column k of lane l's patch lies in the plane
    // The stretches [lo, hi) of a plane (from plane0) that hold the patches, consecutive lanes'
    // stretches merged where they overlap: what prefetch() asks the cache for.
    int64_t span_lo[kLanes], span_hi[kLanes];
    int nspans = 0;
    int n;
    int64_t H, W;
#if (defined(__AVX512F__) && defined(__AVX512VL__) && defined(__AVX512DQ__)) || defined(__AVX2__)
    // For patch row r of lane l: where it starts (from plane0); 0 for a row outside
    // the plane or an unused lane. With the masks below, worked out once per lane
    // group rather than in every channel's gather, where the tests on row_ok,
    // row_whole and n per lane and row took more time than the loads (`perf
    // annotate`). Measured in one process against the per-channel tests (`small`'s
    // 3x3 layers at batch 64, forward, input and weight gradient together, 25
    // alternating pairs each, the same bits): 2 threads 5-16% faster (21-25/25
    // pairs), one thread 7-13%, bf16 2 threads 9-21%.
    int64_t row_at[kRows][kLanes];
#endif
#if defined(__AVX512F__) && defined(__AVX512VL__) && defined(__AVX512DQ__)
    // Which of a row's first 8 floats to keep (the columns inside the plane, none
    // for a row outside it or an unused lane), and in row_plain bit l whether all 8
    // may be loaded plainly (they lie in the plane).
    __mmask8 row_cols[kRows][kLanes];
    uint32_t row_plain[kRows] = {};
    // For scatter_row, bit l of a row: all its kRows columns lie in the plane
    // (row_full), or some do (row_part); neither for a row outside it or an unused lane.
    uint32_t row_full[kRows] = {}, row_part[kRows] = {};
    // For scatter_row, bit l of a row: lane l is one of a run of lanes whose rows lie
    // side by side in the plane (tiles next to each other in one row of tiles, the
    // last perhaps cut by the plane's right edge), stored together: four lanes 4j ..
    // 4j + 3 (bit j of row_run4) as one 64-byte stretch with the mask run_cols[r][j],
    // else two lanes 2i, 2i + 1 as one 32-byte stretch with the mask pair_cols[r][i].
    uint32_t row_run[kRows] = {}, row_run4[kRows] = {};
    __mmask16 run_cols[kRows][kLanes / 4] = {};
    __mmask8 pair_cols[kRows][kLanes / 2] = {};
    // Whether the rows r of lanes j .. j + len - 1 follow one another in the plane, all
    // four columns of each inside it but for the last lane's.
    bool adjacent(int r, int j, int len) const {
        for (int m = 0; m < len; ++m) {
            const int l = j + m;
            const bool whole = row_full[r] >> l & 1u, cut = m == len - 1 && (row_part[r] >> l & 1u);
            if (!(whole || cut) || row_at[r][l] != row_at[r][j] + 4 * m) return false;
        }
        return true;
    }
    // The runs among lanes j .. j + 3 of row r: all four, else each pair that is one.
    void find_runs(int r, int j) {
        if (adjacent(r, j, 4)) {
            row_run[r] |= 0xFu << j, row_run4[r] |= 1u << (j / 4);
            run_cols[r][j / 4] = static_cast<__mmask16>(0x0FFFu | (row_cols[r][j + 3] & 0xFu) << 12);
            return;
        }
        for (int i = j; i < j + 4; i += 2) {
            if (!adjacent(r, i, 2)) continue;
            row_run[r] |= 0x3u << i;
            pair_cols[r][i / 2] = static_cast<__mmask8>(0x0Fu | (row_cols[r][i + 1] & 0xFu) << 4);
        }
    }
#elif defined(__AVX2__)
    // Which of a row's first 8 floats to read: the columns inside the plane, none
    // for a row outside it or an unused lane; so gathering a channel takes no
    // branch (masked-off floats are never read: no fault past an end).
    __m256i row_mask[kRows][kLanes];
#endif

    TilePatches(const LaneTiles& lt, int64_t plane_stride, int64_t H_, int64_t W_, int64_t off,
                PatchUse use = PatchUse::Gather)
        : n(lt.n), H(H_), W(W_) {
        for (int l = 0; l < n; ++l) {
            const int64_t r0 = lt.row[l] - off, c0 = lt.col[l] - off;
            offset[l] = lt.image[l] * plane_stride + r0 * W + c0;
            inside[l] = r0 >= 0 && c0 >= 0 && r0 + kRows <= H && c0 + kRows <= W;
            for (int k = 0; k < kRows; ++k) {
                if (r0 + k >= 0 && r0 + k < H) row_ok[k] |= 1u << l;
                if (r0 + k >= 0 && c0 >= 0 && (r0 + k) * W + c0 + 8 <= H * W) row_whole[k] |= 1u << l;
                if (c0 + k >= 0 && c0 + k < W) col_ok[k] |= 1u << l, lane_cols[l] |= 1u << k;
            }
            const int64_t lo = offset[l], hi = offset[l] + (kRows - 1) * W + kRows;  // first row's start, last row's end
            if (nspans > 0 && lo <= span_hi[nspans - 1]) {
                span_hi[nspans - 1] = std::max(span_hi[nspans - 1], hi);
            } else {
                span_lo[nspans] = lo, span_hi[nspans] = hi, ++nspans;
            }
        }
#if (defined(__AVX512F__) && defined(__AVX512VL__) && defined(__AVX512DQ__)) || defined(__AVX2__)
        for (int r = 0; r < kRows; ++r)
            for (int l = 0; l < kLanes; ++l) {
                const bool ok = l < n && (row_ok[r] >> l & 1u);
                row_at[r][l] = ok ? offset[l] + r * W : 0;
#if defined(__AVX512F__) && defined(__AVX512VL__) && defined(__AVX512DQ__)
                row_cols[r][l] = ok ? __mmask8(lane_cols[l]) : __mmask8(0);
                if (l < n && (row_whole[r] >> l & 1u)) row_plain[r] |= 1u << l;
                if (ok) (lane_cols[l] == (1u << kRows) - 1 ? row_full : row_part)[r] |= 1u << l;
                if (kRows == 4 && use == PatchUse::Scatter && l % 4 == 3) find_runs(r, l - 3);
#else
                row_mask[r][l] = bit_mask8(ok ? lane_cols[l] : 0u);
#endif
            }
#endif
    }

    // Asks the cache for this lane group's patches in `plane0` (the next channel's plane), one
    // 64-byte line (16 floats, 8 doubles) at a time, so that its gather does not wait on memory. A prefetch never
    // faults, and the stretches may reach a row past the tensor's ends: the addresses are
    // computed as integers, not as pointers outside the tensor. kWrite = 1 asks for lines
    // about to be written (a scatter's), in the state that lets the store go ahead.
    template <int kWrite = 0> void prefetch(const T* plane0) const {
        const auto at = [&](int64_t f) {
            __builtin_prefetch(reinterpret_cast<const void*>(reinterpret_cast<uintptr_t>(plane0) + f * int64_t{sizeof(T)}),
                               kWrite);
        };
        for (int i = 0; i < nspans; ++i) {
            for (int64_t f = span_lo[i]; f < span_hi[i]; f += 64 / int64_t{sizeof(T)}) at(f);
            at(span_hi[i] - 1);
        }
    }

#if defined(__AVX512F__) && defined(__AVX512VL__) && defined(__AVX512DQ__)
    // Row r of the 16 lanes' patches, d[s][lane] = patch(lane)[r][s], without a
    // vector gather per element: lane j's row (8 floats from its corner, the
    // columns outside the plane masked to zero) and lane j + 8's row fill the two
    // halves of z[j]; an 8x8 transpose inside each 256-bit half then turns "a
    // lane's columns" into "a column's lanes". (Measured against 36 gathers per
    // channel: a 32 -> 32 channel forward at 28x28, batch 64, one thread,
    // 4.5-5.4 ms against 5.8-6.0.)
    void gather_row(const float* plane0, int r, __m512 d[kRows]) const {
        __m512 z[8];
        for (int j = 0; j < 8; ++j) {
            // A plain load where all 8 floats lie in the plane (then zero the columns
            // past its edge) rather than a masked load for every row: a `mini` training
            // step 3-7% faster in three alternating pairs on the development machine.
            auto row_of = [&](int l) {
                const __mmask8 m = row_cols[r][l];
                if (row_plain[r] >> l & 1u) {
                    __m256 v = _mm256_loadu_ps(plane0 + row_at[r][l]);
                    asm("" : "+x"(v));  // keeps the compiler from folding the mask back into the load
                    return _mm256_maskz_mov_ps(m, v);
                }
                return _mm256_maskz_loadu_ps(m, plane0 + row_at[r][l]);
            };
            z[j] = _mm512_insertf32x8(_mm512_castps256_ps512(row_of(j)), row_of(j + 8), 1);
        }
        // In each 128-bit block: t[2i] = (z[2i][0], z[2i+1][0], z[2i][1], z[2i+1][1]), t[2i+1] the next two.
        __m512 t[8], u[8];
        for (int i = 0; i < 4; ++i) {
            t[2 * i] = _mm512_unpacklo_ps(z[2 * i], z[2 * i + 1]);
            t[2 * i + 1] = _mm512_unpackhi_ps(z[2 * i], z[2 * i + 1]);
        }
        // u[4h + s'] block b: lanes 4h .. 4h+3 (and 8 more in the upper half) at column s' (b even) or s' + 4 (b odd).
        for (int h = 0; h < 2; ++h) {
            u[4 * h + 0] = _mm512_shuffle_ps(t[4 * h], t[4 * h + 2], 0x44);
            u[4 * h + 1] = _mm512_shuffle_ps(t[4 * h], t[4 * h + 2], 0xEE);
            u[4 * h + 2] = _mm512_shuffle_ps(t[4 * h + 1], t[4 * h + 3], 0x44);
            u[4 * h + 3] = _mm512_shuffle_ps(t[4 * h + 1], t[4 * h + 3], 0xEE);
        }
        // Column s: blocks (low lanes 0-3, 4-7, high lanes 8-11, 12-15) from u[s % 4] and u[4 + s % 4].
        const __m512i first = _mm512_setr_epi32(0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27);
        const __m512i second = _mm512_add_epi32(first, _mm512_set1_epi32(4));
        for (int s = 0; s < kRows; ++s) d[s] = _mm512_permutex2var_ps(u[s % 4], s < 4 ? first : second, u[4 + s % 4]);
    }
    void gather_row(const float* plane0, int r, float (*d)[kLanes]) const {
        __m512 z[kRows];
        gather_row(plane0, r, z);
        for (int s = 0; s < kRows; ++s) _mm512_store_ps(d[s], z[s]);
    }
#elif defined(__AVX2__)
    // The same with AVX2, eight lanes at a time: lane l's row (from row_at, its
    // floats outside the plane not read) is one register, and an 8x8 transpose
    // turns eight lanes' rows into eight columns' lanes: z[s] = column s.
    void gather_row8(const float* plane0, int r, int g, __m256 z[8]) const {
        for (int j = 0; j < 8; ++j) z[j] = _mm256_maskload_ps(plane0 + row_at[r][g + j], row_mask[r][g + j]);
        transpose8x8(z);
    }
    void gather_row(const float* plane0, int r, float (*d)[kLanes]) const {
        for (int g = 0; g < kLanes; g += 8) {
            __m256 z[8];
            gather_row8(plane0, r, g, z);
            for (int s = 0; s < kRows; ++s) _mm256_store_ps(&d[s][g], z[s]);
        }
    }
#endif

    void gather(const T* plane0, T (*d)[kRows][kLanes]) const {
#if (defined(__AVX512F__) && defined(__AVX512VL__) && defined(__AVX512DQ__)) || defined(__AVX2__)
        if constexpr (std::is_same_v<T, float> && kLanes == 16) {
            for (int r = 0; r < kRows; ++r) gather_row(plane0, r, d[r]);
            return;
        }
#endif
        for (int l = 0; l < kLanes; ++l) {
            if (l >= n) {
                for (int r = 0; r < kRows; ++r)
                    for (int s = 0; s < kRows; ++s) d[r][s][l] = 0;
            } else if (inside[l]) {
                const T* x = plane0 + offset[l];
                for (int r = 0; r < kRows; ++r)
                    for (int s = 0; s < kRows; ++s) d[r][s][l] = x[r * W + s];
            } else {
                for (int r = 0; r < kRows; ++r)
                    for (int s = 0; s < kRows; ++s) {
                        const bool ok = (row_ok[r] & col_ok[s]) >> l & 1u;
                        d[r][s][l] = ok ? plane0[offset[l] + r * W + s] : T(0);
                    }
            }
        }
    }

    // plane0[patch element] = d[r][s][lane] + add[lane], plus res0[the same
    // element] if res0 is not null (a residual laid out like the output), inside
    // the plane only.
    void scatter(const T (*d)[kRows][kLanes], const T* add, T* plane0, const T* res0) const {
#if defined(__AVX2__) && !(defined(__AVX512F__) && defined(__AVX512VL__))
        if constexpr (std::is_same_v<T, float> && kLanes % 8 == 0 && kRows == 4) return scatter_avx2(d, add, plane0, res0);
#endif
        for (int l = 0; l < n; ++l) {
            T* x = plane0 + offset[l];
            const T* rx = res0 ? res0 + offset[l] : nullptr;
            for (int r = 0; r < kRows; ++r)
                for (int s = 0; s < kRows; ++s)
                    if (inside[l] || ((row_ok[r] & col_ok[s]) >> l & 1u))
                        x[r * W + s] = rx ? d[r][s][l] + add[l] + rx[r * W + s] : d[r][s][l] + add[l];
        }
    }

#if defined(__AVX512F__) && defined(__AVX512VL__) && defined(__AVX512DQ__)
    // The runs of row r (row_run): the rows of lanes 4j .. 4j + 3 (pieces j of q[0 .. 3])
    // brought together by a 4x4 transpose of 128-bit pieces, z[j] = (q[0].j, q[1].j,
    // q[2].j, q[3].j), and stored as one 64-byte stretch (a run of four) or two
    // 32-byte ones (runs of two: lanes 4j, 4j + 1 in z[j]'s low half, 4j + 2, 4j + 3
    // in its high half) rather than as 16-byte rows. (`small`'s 3x3 layers at batch 64,
    // forward and backward, 2 threads, 4 alternating rounds, the same bits: the 28x28
    // ones 9-11% faster, the 14x14 ones up to 4%.)
    void scatter_runs(int r, const __m512 q[4], float* plane0, const float* res0) const {
        const __m512 a = _mm512_shuffle_f32x4(q[0], q[1], 0x44), b = _mm512_shuffle_f32x4(q[0], q[1], 0xEE);
        const __m512 c = _mm512_shuffle_f32x4(q[2], q[3], 0x44), d = _mm512_shuffle_f32x4(q[2], q[3], 0xEE);
        const __m512 z[4] = {_mm512_shuffle_f32x4(a, c, 0x88), _mm512_shuffle_f32x4(a, c, 0xDD),
                             _mm512_shuffle_f32x4(b, d, 0x88), _mm512_shuffle_f32x4(b, d, 0xDD)};
        for (int j = 0; j < 4; ++j) {
            if (row_run4[r] >> j & 1u) {
                const int64_t at = row_at[r][4 * j];
                const __mmask16 m = run_cols[r][j];
                __m512 v = z[j];
                if (m == 0xFFFF) {  // plain accesses where they can be (as scatter_row's)
                    if (res0) v = _mm512_add_ps(v, _mm512_loadu_ps(res0 + at));
                    _mm512_storeu_ps(plane0 + at, v);
                } else {
                    if (res0) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, res0 + at));
                    _mm512_mask_storeu_ps(plane0 + at, m, v);
                }
                continue;
            }
            for (int h = 0; h < 2; ++h) {
                const int l = 4 * j + 2 * h;
                if (!(row_run[r] >> l & 1u)) continue;
                const int64_t at = row_at[r][l];
                const __mmask8 m = pair_cols[r][l / 2];
                __m256 v = h ? _mm512_extractf32x8_ps(z[j], 1) : _mm512_castps512_ps256(z[j]);
                if (m == 0xFF) {
                    if (res0) v = _mm256_add_ps(v, _mm256_loadu_ps(res0 + at));
                    _mm256_storeu_ps(plane0 + at, v);
                } else {
                    if (res0) v = _mm256_add_ps(v, _mm256_maskz_loadu_ps(m, res0 + at));
                    _mm256_mask_storeu_ps(plane0 + at, m, v);
                }
            }
        }
    }
#endif

#if defined(__AVX512F__) && defined(__AVX512VL__)
    // Row r of the 16 lanes' 4x4 tiles, y[s][lane] (bias already added), plus
    // res0's values if res0 is not null: transposed in registers so that a lane's
    // four values are one 128-bit piece, stored with a column mask. (A vector
    // scatter per element was twice as slow.)
    void scatter_row(int r, const __m512 y[4], float* plane0, const float* res0) const {
        if (!(row_full[r] | row_part[r])) return;
        const __m512d t0 = _mm512_castps_pd(_mm512_unpacklo_ps(y[0], y[1]));  // 128-bit piece j: lanes 4j, 4j+1
        const __m512d t1 = _mm512_castps_pd(_mm512_unpackhi_ps(y[0], y[1]));  // lanes 4j+2, 4j+3
        const __m512d t2 = _mm512_castps_pd(_mm512_unpacklo_ps(y[2], y[3]));
        const __m512d t3 = _mm512_castps_pd(_mm512_unpackhi_ps(y[2], y[3]));
        // q[k], 128-bit piece j: the row of lane 4j + k.
        const __m512 q[4] = {_mm512_castpd_ps(_mm512_unpacklo_pd(t0, t2)), _mm512_castpd_ps(_mm512_unpackhi_pd(t0, t2)),
                             _mm512_castpd_ps(_mm512_unpacklo_pd(t1, t3)), _mm512_castpd_ps(_mm512_unpackhi_pd(t1, t3))};
        if (row_run[r]) scatter_runs(r, q, plane0, res0);
        const uint32_t full = row_full[r] & ~row_run[r], part = row_part[r] & ~row_run[r];
        if (!(full | part)) return;
        alignas(64) float quad[4][16];  // quad[k][4j .. 4j+3]: the row of lane 4j + k
        for (int k = 0; k < 4; ++k) _mm512_store_ps(quad[k], q[k]);
        // Lanes whose four columns all lie in the plane: plain accesses (masked ones
        // everywhere: a `small` forward 3% slower on a Zen 5); then the lanes at the
        // plane's right edge, masked. Each loop visits only its lanes' bits, worked out
        // once per lane group (against testing every lane of every row and channel, in
        // one process, 25 alternating pairs, the same bits: 32 -> 32 at 28x28 and 64 ->
        // 64 at 14x14, batch 64, forward and both gradients, 2 threads, 4-8% faster in
        // fp32 and bf16; the other `small` layers and one thread within 2%).
        for (uint32_t bits = full; bits; bits &= bits - 1) {
            const int l = __builtin_ctz(bits);
            const int64_t at = row_at[r][l];
            __m128 v = _mm_load_ps(&quad[l % 4][4 * (l / 4)]);
            if (res0) v = _mm_add_ps(v, _mm_loadu_ps(res0 + at));
            _mm_storeu_ps(plane0 + at, v);
        }
        for (uint32_t bits = part; bits; bits &= bits - 1) {
            const int l = __builtin_ctz(bits);
            const int64_t at = row_at[r][l];
            __m128 v = _mm_load_ps(&quad[l % 4][4 * (l / 4)]);
            if (res0) v = _mm_add_ps(v, _mm_maskz_loadu_ps(row_cols[r][l], res0 + at));
            _mm_mask_storeu_ps(plane0 + at, row_cols[r][l], v);
        }
    }
#elif defined(__AVX2__)
    // The same with AVX2, eight lanes at a time; a lane whose four columns all
    // lie in the plane is stored plainly (a masked store is slow on some CPUs).
    void scatter_avx2(const float (*d)[4][kLanes], const float* add, float* plane0, const float* res0) const {
        for (int r = 0; r < 4; ++r) {
            if (!row_ok[r]) continue;
            for (int g = 0; g < kLanes; g += 8) {
                const __m256 vadd = _mm256_load_ps(add + g);
                __m256 a[4];
                for (int s = 0; s < 4; ++s) a[s] = _mm256_add_ps(_mm256_load_ps(&d[r][s][g]), vadd);
                const __m256 t0 = _mm256_unpacklo_ps(a[0], a[1]), t1 = _mm256_unpackhi_ps(a[0], a[1]);
                const __m256 t2 = _mm256_unpacklo_ps(a[2], a[3]), t3 = _mm256_unpackhi_ps(a[2], a[3]);
                // q[k]: the row of lane g + k in the low half, of lane g + 4 + k in the high half
                const __m256 q[4] = {_mm256_shuffle_ps(t0, t2, 0x44), _mm256_shuffle_ps(t0, t2, 0xEE),
                                     _mm256_shuffle_ps(t1, t3, 0x44), _mm256_shuffle_ps(t1, t3, 0xEE)};
                for (int k = 0; k < 8 && g + k < n; ++k) {
                    const int l = g + k;
                    if (!(row_ok[r] >> l & 1u)) continue;
                    const int64_t at = row_at[r][l];
                    __m128 v = k < 4 ? _mm256_castps256_ps128(q[k]) : _mm256_extractf128_ps(q[k - 4], 1);
                    if (lane_cols[l] == 0xF) {
                        if (res0) v = _mm_add_ps(v, _mm_loadu_ps(res0 + at));
                        _mm_storeu_ps(plane0 + at, v);
                    } else {
                        const __m128i mask = _mm256_castsi256_si128(row_mask[r][l]);  // its columns in the plane
                        if (res0) v = _mm_add_ps(v, _mm_maskload_ps(res0 + at, mask));
                        _mm_maskstore_ps(plane0 + at, mask, v);
                    }
                }
            }
        }
    }
#endif
};

// Step 1. V[xi][c][q] (row length ld) for the block's tiles p0 .. p0 + count:
// guide.md §3: V = B^T d B for each 6x6 input patch d.
template <class T> void input_transform(const T* x, const Tiling& t, int64_t p0, int64_t count, T* V) {
    for (int64_t q = 0; q < count; q += kLanes) {
        const TilePatches<T, 6> patches(LaneTiles(t, p0 + q, count - q), t.C * t.H * t.W, t.H, t.W, 1);
        for (int64_t c = 0; c < t.C; ++c) {
            alignas(64) T d[6][6][kLanes], tmp[6][6][kLanes];
            if (c + 1 < t.C) patches.prefetch(x + (c + 1) * t.H * t.W);
            patches.gather(x + c * t.H * t.W, d);
            for (int s = 0; s < 6; ++s) bt6(&d[0][s][0], 6 * kLanes, &tmp[0][s][0], 6 * kLanes);  // columns
            for (int r = 0; r < 6; ++r)                                                          // rows
                bt6(&tmp[r][0][0], kLanes, V + r * 6 * t.vxi + c * t.ld + q, t.vxi);
        }
    }
}

#if (defined(__AVX512F__) && defined(__AVX512VL__) && defined(__AVX512DQ__)) || defined(__AVX2__)
// bt6 on a register of lanes (GCC's vector arithmetic, one operation per lane): o = B^T a.
template <class Vec> inline void bt6(const Vec a[6], Vec o[6]) {
    o[0] = 4 * a[0] - 5 * a[2] + a[4];
    o[1] = -4 * (a[1] + a[2]) + a[3] + a[4];
    o[2] = 4 * (a[1] - a[2]) - a[3] + a[4];
    o[3] = 2 * (a[3] - a[1]) - a[2] + a[4];
    o[4] = 2 * (a[1] - a[3]) - a[2] + a[4];
    o[5] = 4 * a[1] - 5 * a[3] + a[5];
}

#if defined(__AVX512F__) && defined(__AVX512VL__) && defined(__AVX512DQ__)
using LaneFloats = __m512;  // all 16 lanes of a group in one register
inline void gather_lanes(const TilePatches<float, 6>& p, const float* plane0, int r, int, __m512 z[8]) {
    p.gather_row(plane0, r, z);
}
inline void store_unaligned(float* at, __m512 v) { _mm512_storeu_ps(at, v); }
#else
using LaneFloats = __m256;  // 8 lanes a register, two per group
inline void gather_lanes(const TilePatches<float, 6>& p, const float* plane0, int r, int g, __m256 z[8]) {
    p.gather_row8(plane0, r, g, z);
}
inline void store_unaligned(float* at, __m256 v) { _mm256_storeu_ps(at, v); }
#endif

// One channel's patches (plane0) through d B: rows[r][k] = (d B)[r][k] of every lane.
inline void transform_rows(const TilePatches<float, 6>& patches, const float* plane0, float (*rows)[6][kLanes]) {
    constexpr int kPer = sizeof(LaneFloats) / sizeof(float);  // lanes per register
    for (int g = 0; g < kLanes; g += kPer)
        for (int r = 0; r < 6; ++r) {
            LaneFloats z[8], o[6];
            gather_lanes(patches, plane0, r, g, z);
            bt6(z, o);
            for (int k = 0; k < 6; ++k) *reinterpret_cast<LaneFloats*>(&rows[r][k][g]) = o[k];
        }
}

// Column k of B^T (d B) for the lanes from g: v[r] = V[6 r + k].
inline void transform_column(const float (*rows)[6][kLanes], int k, int g, LaneFloats v[6]) {
    LaneFloats a[6];
    for (int r = 0; r < 6; ++r) a[r] = *reinterpret_cast<const LaneFloats*>(&rows[r][k][g]);
    bt6(a, v);
}

// Step 1 with vector registers: the same V = B^T d B, with each patch row gathered
// into registers and transformed along the row there (t = d B), then down the
// columns (B^T t) from a small buffer into V. (Measured, AVX2, 64 -> 64 channels at
// 28x28, batch 64, one thread: 2.3-2.9 ms for the transform of the whole batch
// against 4.8 ms before, when the AVX2 gather branched per lane and row and the
// strides of V were multiples of 4 KiB. AVX-512, `small`, batch 64, 2 threads, a
// Zen 5: the whole forward 4% faster than with the portable loop.)
template <> void input_transform<float>(const float* x, const Tiling& t, int64_t p0, int64_t count, float* V) {
    constexpr int kPer = sizeof(LaneFloats) / sizeof(float);
    for (int64_t q = 0; q < count; q += kLanes) {
        const TilePatches<float, 6> patches(LaneTiles(t, p0 + q, count - q), t.C * t.H * t.W, t.H, t.W, 1);
        for (int64_t c = 0; c < t.C; ++c) {
            if (c + 1 < t.C) patches.prefetch(x + (c + 1) * t.H * t.W);
            alignas(64) float rows[6][6][kLanes];
            transform_rows(patches, x + c * t.H * t.W, rows);
            for (int k = 0; k < 6; ++k)
                for (int g = 0; g < kLanes; g += kPer) {
                    LaneFloats v[6];
                    transform_column(rows, k, g, v);
                    for (int r = 0; r < 6; ++r) store_unaligned(V + (r * 6 + k) * t.vxi + c * t.ld + q + g, v[r]);
                }
        }
    }
}
#endif

// Step 1 under --precision bf16 (guide.md §3): V straight as the products' bfloat16 pairs
// (gemm_kernels.h), channels 2 k2 and 2 k2 + 1 of a tile in one 32-bit word:
//   Vp[xi][k2][q] = bf16(V[xi][2 k2][q]) | bf16(V[xi][2 k2 + 1][q]) << 16
// (zero high halves past an odd C). Written here rather than packed from an fp32 V
// before each product, that pass over V is gone and V takes half the bytes.
#if defined(__AVX512F__) && defined(__AVX512VL__) && defined(__AVX512DQ__) && defined(__AVX512BW__) && \
    defined(__AVX512BF16__)
void input_transform_pairs(const float* x, const Tiling& t, int64_t p0, int64_t count, uint32_t* Vp) {
    const int64_t plane = t.H * t.W;
    for (int64_t q = 0; q < count; q += kLanes) {
        const TilePatches<float, 6> patches(LaneTiles(t, p0 + q, count - q), t.C * plane, t.H, t.W, 1);
        for (int64_t c = 0; c < t.C; c += 2) {
            const bool odd = c + 1 == t.C;  // channel c has no partner
            alignas(64) float rows[2][6][6][kLanes];
            if (c + 1 < t.C) patches.prefetch(x + (c + 1) * plane);
            transform_rows(patches, x + c * plane, rows[0]);
            if (c + 2 < t.C) patches.prefetch(x + (c + 2) * plane);
            if (!odd) transform_rows(patches, x + (c + 1) * plane, rows[1]);
            for (int k = 0; k < 6; ++k) {
                __m512 lo[6], hi[6] = {};
                transform_column(rows[0], k, 0, lo);
                if (!odd) transform_column(rows[1], k, 0, hi);
                for (int r = 0; r < 6; ++r)
                    _mm512_storeu_si512(Vp + (r * 6 + k) * t.pvxi + c / 2 * t.ld + q, bf16_pairs_of(lo[r], hi[r]));
            }
        }
    }
}
#else
// Without AVX512_BF16 in this build: the fp32 V of these tiles, then packed.
struct PairsSourceTag {};
void input_transform_pairs(const float* x, const Tiling& t, int64_t p0, int64_t count, uint32_t* Vp) {
    float* V = thread_scratch<float, PairsSourceTag>(static_cast<size_t>(kXi * t.vxi));
    input_transform(x, t, p0, count, V);
    for (int xi = 0; xi < kXi; ++xi) pack_bf16_b(t.C, count, V + xi * t.vxi, t.ld, Vp + xi * t.pvxi, t.ld);
}
#endif

#if defined(__AVX512F__) && defined(__AVX512VL__) && defined(__AVX512DQ__) && defined(__AVX512BW__) && \
    defined(__AVX512BF16__)
// Four channels' pairs of one point xi and one lane group (w[i]: channel c + i's 8 words, pair
// j in word j) stored down their four columns: row j gets (w0[j], w1[j], w2[j], w3[j]).
inline void store_down(const __m512i w[4], uint32_t* at, int64_t ldt) {
    const __m512i side_by_side = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    const __m512i a = _mm512_permutex2var_epi32(w[0], side_by_side, w[1]);  // qword j: (w0[j], w1[j])
    const __m512i b = _mm512_permutex2var_epi32(w[2], side_by_side, w[3]);
    // 128-bit piece i of even: row 2 i's four words; of odd: row 2 i + 1's.
    const __m512i even = _mm512_unpacklo_epi64(a, b), odd = _mm512_unpackhi_epi64(a, b);
    // (Written out: the piece's index must be a constant even in an unoptimised build.)
    const auto row = [&](int j) { return reinterpret_cast<__m128i*>(at + j * ldt); };
    _mm_storeu_si128(row(0), _mm512_castsi512_si128(even));
    _mm_storeu_si128(row(1), _mm512_castsi512_si128(odd));
    _mm_storeu_si128(row(2), _mm512_extracti32x4_epi32(even, 1));
    _mm_storeu_si128(row(3), _mm512_extracti32x4_epi32(odd, 1));
    _mm_storeu_si128(row(4), _mm512_extracti32x4_epi32(even, 2));
    _mm_storeu_si128(row(5), _mm512_extracti32x4_epi32(odd, 2));
    _mm_storeu_si128(row(6), _mm512_extracti32x4_epi32(even, 3));
    _mm_storeu_si128(row(7), _mm512_extracti32x4_epi32(odd, 3));
}

// guide.md §3: the weight gradient's step 1 under --precision bf16: V^T straight as the products' B
// pairs (gemm_kernels.h), two tiles of one channel in one 32-bit word,
//   VTp[xi][q2][c] = bf16(V[xi][c][2 q2]) | bf16(V[xi][c][2 q2 + 1]) << 16
// in rows of ldt (the columns past C zero): the tiles p0 .. p0 + count fill rows
// 0 .. ceil(count / 2) (a lane past the tiles is zero). A lane group's pairs of one
// channel lie down a column, so four channels are made at once and stored a row of
// four at a time (store_down). (With a vector scatter down one column, or two
// columns, this transform took 3.8% or 3.5% of a `small` bf16 training step's
// samples in `perf`, against 3.0% with plain stores.)
void input_transform_pairs_t(const float* x, const Tiling& t, int64_t p0, int64_t count, uint32_t* VTp) {
    const int64_t plane = t.H * t.W;
    for (int64_t q = 0; q < count; q += kLanes) {
        const TilePatches<float, 6> patches(LaneTiles(t, p0 + q, count - q), t.C * plane, t.H, t.W, 1);
        uint32_t* rows8 = VTp + q / 2 * t.ldt;
        for (int64_t c = 0; c < t.C; c += 4) {  // channels past C (padding columns) get zeros
            const int n = static_cast<int>(std::min<int64_t>(4, t.C - c));
            alignas(64) float rows[4][6][6][kLanes];
            for (int i = 0; i < n; ++i) {
                if (c + i + 1 < t.C) patches.prefetch(x + (c + i + 1) * plane);
                transform_rows(patches, x + (c + i) * plane, rows[i]);
            }
            for (int k = 0; k < 6; ++k) {
                __m512 v[4][6] = {};
                for (int i = 0; i < n; ++i) transform_column(rows[i], k, 0, v[i]);
                for (int r = 0; r < 6; ++r) {
                    __m512i w[4];  // vcvtneps2bf16: lanes 2 j and 2 j + 1 in word j
                    for (int i = 0; i < 4; ++i) w[i] = _mm512_castsi256_si512((__m256i)_mm512_cvtneps_pbh(v[i][r]));
                    store_down(w, rows8 + (r * 6 + k) * t.ptxi + c, t.ldt);
                }
            }
        }
        for (int xi = 0; xi < kXi; ++xi)
            for (int64_t j = 0; j < kLanes / 2; ++j) {
                uint32_t* row = rows8 + xi * t.ptxi + j * t.ldt;
                std::fill(row + (t.C + 3) / 4 * 4, row + t.ldt, 0u);
            }
    }
}
#else
// The same without AVX512_BF16 in this build: the fp32 V of these tiles, transposed, then packed.
struct TransposedTag {};
void input_transform_pairs_t(const float* x, const Tiling& t, int64_t p0, int64_t count, uint32_t* VTp) {
    float* V = thread_scratch<float, PairsSourceTag>(static_cast<size_t>(kXi * t.vxi));
    float* Vt = thread_scratch<float, TransposedTag>(static_cast<size_t>(count * t.C));
    input_transform(x, t, p0, count, V);
    for (int xi = 0; xi < kXi; ++xi) {
        transpose_reference(V + xi * t.vxi, t.C, count, t.ld, Vt);
        pack_bf16_b(count, t.C, Vt, t.C, VTp + xi * t.ptxi, t.ldt);
    }
}
#endif

// The residual and output patches of output channel o + 1, asked for while channel o is
// transformed, so that its scatter does not wait on memory (`small`, batch 64,
// 2 threads, a Zen 5: a forward 8-9% faster).
template <class T>
void prefetch_next_channel(const TilePatches<T, 4>& patches, const T* residual, const T* out, const Tiling& t, int64_t o) {
    if (o + 1 >= t.OC) return;
    if (residual) patches.prefetch(residual + (o + 1) * t.H * t.W);
    patches.template prefetch<1>(out + (o + 1) * t.H * t.W);
}

// Step 3. guide.md §3: out tile = A^T M A + bias (+ residual), written where it lies inside
// the image, for the output channels o0 <= o < o1. The bias of output channel o is
// bias[o], or with bias_stride = OC (a bias per image) bias[b OC + o] for a tile of image b.
template <class T>
void output_transform(const T* M, const T* bias, int64_t bias_stride, const T* residual, const Tiling& t, int64_t p0,
                      int64_t count, T* out, int64_t o0, int64_t o1) {
    for (int64_t q = 0; q < count; q += kLanes) {
        const LaneTiles lanes(t, p0 + q, count - q);
        const TilePatches<T, 4> patches(lanes, t.OC * t.H * t.W, t.H, t.W, 0, PatchUse::Scatter);
        for (int64_t o = o0; o < o1; ++o) {
            alignas(64) T tmp[4][6][kLanes], y[4][4][kLanes], b[kLanes] = {};
            for (int s = 0; s < 6; ++s) at6(M + s * t.mxi + o * t.ld + q, 6 * t.mxi, &tmp[0][s][0], 6 * kLanes);
            for (int r = 0; r < 4; ++r) at6(&tmp[r][0][0], kLanes, &y[r][0][0], kLanes);
            prefetch_next_channel(patches, residual, out, t, o);
            for (int l = 0; bias && l < lanes.n; ++l) b[l] = bias[lanes.image[l] * bias_stride + o];
            patches.scatter(y, b, out + o * t.H * t.W, residual ? residual + o * t.H * t.W : nullptr);
        }
    }
}

#if defined(__AVX512F__) && defined(__AVX512VL__) && defined(__AVX512DQ__)
// at6 on a register of sixteen lanes (GCC's vector arithmetic, as bt6): o = A^T a.
inline void at6(const __m512 a[6], __m512 o[4]) {
    const __m512 s12 = a[1] + a[2], d12 = a[1] - a[2], s34 = a[3] + a[4], d34 = a[3] - a[4];
    o[0] = a[0] + s12 + s34;
    o[1] = d12 + 2 * d34;
    o[2] = s12 + 4 * s34;
    o[3] = d12 + 8 * d34 + a[5];
}

// Step 3 on AVX-512: the same, down the columns of M into a small buffer (A^T M),
// then each row of the output tiles transformed in registers ((A^T M) A) and
// written from there.
template <>
void output_transform<float>(const float* M, const float* bias, int64_t bias_stride, const float* residual,
                             const Tiling& t, int64_t p0, int64_t count, float* out, int64_t o0, int64_t o1) {
    for (int64_t q = 0; q < count; q += kLanes) {
        const LaneTiles lanes(t, p0 + q, count - q);
        const TilePatches<float, 4> patches(lanes, t.OC * t.H * t.W, t.H, t.W, 0, PatchUse::Scatter);
        for (int64_t o = o0; o < o1; ++o) {
            alignas(64) float tmp[4][6][kLanes], b[kLanes] = {};  // tmp[r][s]: (A^T M)[r][s] of every lane
            for (int s = 0; s < 6; ++s) {
                __m512 a[6], y[4];
                for (int r = 0; r < 6; ++r) a[r] = _mm512_loadu_ps(M + (r * 6 + s) * t.mxi + o * t.ld + q);
                at6(a, y);
                for (int r = 0; r < 4; ++r) _mm512_store_ps(tmp[r][s], y[r]);
            }
            prefetch_next_channel(patches, residual, out, t, o);
            for (int l = 0; bias && l < lanes.n; ++l) b[l] = bias[lanes.image[l] * bias_stride + o];
            const __m512 vb = _mm512_load_ps(b);
            for (int r = 0; r < 4; ++r) {
                __m512 a[6], y[4];
                for (int s = 0; s < 6; ++s) a[s] = _mm512_load_ps(tmp[r][s]);
                at6(a, y);
                for (int s = 0; s < 4; ++s) y[s] = _mm512_add_ps(y[s], vb);
                patches.scatter_row(r, y, out + o * t.H * t.W, residual ? residual + o * t.H * t.W : nullptr);
            }
        }
    }
}
#endif

// Weight-gradient step: guide.md §3: dM = A dy A^T for each 4x4 output-gradient tile (zero
// past the image's edge). For one lane group and one output channel (its plane of dout):
// dM[xi] written at to + xi xi_stride, kLanes lanes each, and the tiles' sum added to
// *dbias_o (when not null): the bias gradient costs no second pass over dout.
template <class T>
void output_grad_lanes(const TilePatches<T, 4>& patches, const T* plane, T* to, int64_t xi_stride, double* dbias_o) {
    alignas(64) T dy[4][4][kLanes], tmp[6][4][kLanes];
    patches.gather(plane, dy);
    for (int s = 0; s < 4; ++s) a4(&dy[0][s][0], 4 * kLanes, &tmp[0][s][0], 4 * kLanes);
    for (int r = 0; r < 6; ++r) a4(&tmp[r][0][0], kLanes, to + r * 6 * xi_stride, xi_stride);
    if (dbias_o) {
        T lane[kLanes] = {};
        for (int r = 0; r < 4; ++r)
            for (int s = 0; s < 4; ++s)
                for (int l = 0; l < kLanes; ++l) lane[l] += dy[r][s][l];
        for (int l = 0; l < kLanes; ++l) *dbias_o += static_cast<double>(lane[l]);
    }
}

#if defined(__AVX512F__) && defined(__AVX512VL__) && defined(__AVX512DQ__)
// a4 on registers of sixteen lanes (GCC's vector arithmetic, as at6): o = A y.
inline void a4(const __m512 y[4], __m512 o[6]) {
    const __m512 e = y[0] + y[2], od = y[1] + y[3], e4 = y[0] + 4 * y[2], o2 = 2 * y[1] + 8 * y[3];
    o[0] = y[0];
    o[1] = e + od;
    o[2] = e - od;
    o[3] = e4 + o2;
    o[4] = e4 - o2;
    o[5] = y[3];
}

// The same on AVX-512: the patches' rows gathered into registers, transformed down
// the columns (A dy) and along the rows ((A dy) A^T) there, and stored from there.
// (Against the portable loop through buffers, the same bits: a whole weight gradient
// of 16 -> 32 channels at 14x14, batch 32, 2 threads, 0.15-0.17 ms against 0.23-0.27;
// 32 -> 32 at 28x28 0.69-0.74 against 1.07-1.15; 4 alternating rounds, a Zen 5.)
template <>
void output_grad_lanes<float>(const TilePatches<float, 4>& patches, const float* plane, float* to, int64_t xi_stride,
                              double* dbias_o) {
    __m512 dy[4][4], t[6][4];  // t[r][s]: (A dy)[r][s] of every lane
    for (int r = 0; r < 4; ++r) patches.gather_row(plane, r, dy[r]);
    for (int s = 0; s < 4; ++s) {
        const __m512 column[4] = {dy[0][s], dy[1][s], dy[2][s], dy[3][s]};
        __m512 o[6];
        a4(column, o);
        for (int r = 0; r < 6; ++r) t[r][s] = o[r];
    }
    for (int r = 0; r < 6; ++r) {
        __m512 o[6];
        a4(t[r], o);
        for (int k = 0; k < 6; ++k) _mm512_storeu_ps(to + (6 * r + k) * xi_stride, o[k]);
    }
    if (dbias_o) {  // the portable loop's sums, in its order
        __m512 sum = _mm512_setzero_ps();
        for (int r = 0; r < 4; ++r)
            for (int s = 0; s < 4; ++s) sum = _mm512_add_ps(sum, dy[r][s]);
        alignas(64) float lane[kLanes];
        _mm512_store_ps(lane, sum);
        for (int l = 0; l < kLanes; ++l) *dbias_o += static_cast<double>(lane[l]);
    }
}
#endif

// guide.md §3: dM of the block's tiles p0 .. p0 + count, stored like M; the bias sums into dbias.
// Output channel o + 1's patches are asked for while o is transformed, as in the input
// transform: without it the patch loads were most of this transform's samples (`perf
// annotate`). (`bench_conv2d --config=small --batch=64 --parts=1`, the ten 3x3 `dw` rows at
// 2 threads summed, alternating with the build before: bf16 faster in 8 of 8 rounds, the
// ratios' median 0.90; fp32 in 6 of 6, the medians 29.3 -> 26.3 ms.)
template <class T>
void output_grad_transform(const T* dout, const Tiling& t, int64_t p0, int64_t count, T* dM, double* dbias) {
    for (int64_t q = 0; q < count; q += kLanes) {
        const TilePatches<T, 4> patches(LaneTiles(t, p0 + q, count - q), t.OC * t.H * t.W, t.H, t.W, 0);
        for (int64_t o = 0; o < t.OC; ++o) {
            if (o + 1 < t.OC) patches.prefetch(dout + (o + 1) * t.H * t.W);
            output_grad_lanes(patches, dout + o * t.H * t.W, dM + o * t.ld + q, t.mxi, dbias ? dbias + o : nullptr);
        }
    }
}

// guide.md §3: the same under --precision bf16, dM written straight as the weight-gradient products'
// A pairs (gemm_kernels.h), two tiles of one output channel in one 32-bit word,
//   dMp[xi][o][q2] = bf16(dM[xi][o][2 q2]) | bf16(dM[xi][o][2 q2 + 1]) << 16
// in rows of K2 pairs (the product's bf16_pairs(K)); a lane past the tiles is zero.
void output_grad_transform_pairs(const float* dout, const Tiling& t, int64_t p0, int64_t count, int64_t K2,
                                 uint32_t* dMp, double* dbias) {
    for (int64_t q = 0; q < count; q += kLanes) {
        const TilePatches<float, 4> patches(LaneTiles(t, p0 + q, count - q), t.OC * t.H * t.W, t.H, t.W, 0);
        const int64_t pairs = std::min(kLanes, count - q + 1) / 2;  // of these lanes
        for (int64_t o = 0; o < t.OC; ++o) {
            alignas(64) float dm[kXi][kLanes];
            if (o + 1 < t.OC) patches.prefetch(dout + (o + 1) * t.H * t.W);
            output_grad_lanes(patches, dout + o * t.H * t.W, &dm[0][0], kLanes, dbias ? dbias + o : nullptr);
            for (int xi = 0; xi < kXi; ++xi) {
                uint32_t* to = dMp + xi * t.pmxi + o * K2 + q / 2;
#if defined(__AVX512F__) && defined(__AVX512VL__) && defined(__AVX512BF16__)
                // vcvtneps2bf16 puts lanes 2 j and 2 j + 1 in word j: the pairs as they stand.
                const __m256i words = (__m256i)_mm512_cvtneps_pbh(_mm512_load_ps(dm[xi]));
                _mm256_mask_storeu_epi32(to, static_cast<__mmask8>((1u << pairs) - 1), words);
#else
                for (int64_t j = 0; j < pairs; ++j)
                    to[j] = bf16_bits(dm[xi][2 * j]) | bf16_bits(dm[xi][2 * j + 1]) << 16;
#endif
            }
        }
    }
}

// f(k, first, last) for the slices k < nt of the blocks: slice k is blocks
// [nblocks k / nt, nblocks (k + 1) / nt), on thread k unless another, done
// with its own, takes it over (tensor/parallel.h).
template <class F> void run_slices(int nt, int64_t nblocks, F f) {
    parallel_pieces(nt, [&](int64_t k) { f(static_cast<int>(k), nblocks * k / nt, nblocks * (k + 1) / nt); });
}

// A block's transformed input: V, or under --precision bf16 its bfloat16 pairs Vp
// (input_transform_pairs) and V null.
template <class T> struct TransformedInput {
    T* V;
    uint32_t* Vp;
};

// Step 1 for the tiles p0 .. p0 + count into columns q .. of the block's V (or Vp).
template <class T>
void transform_input(const T* x, const Tiling& t, int64_t p0, int64_t count, TransformedInput<T> in, int64_t q = 0) {
    if constexpr (std::is_same_v<T, float>) {
        if (in.Vp) return input_transform_pairs(x, t, p0, count, in.Vp + q);
    }
    input_transform(x, t, p0, count, in.V + q);
}

// Step 2. guide.md §3: M[xi] (OC x n) = U[xi] (OC x C) V[xi] (C x n), n = count tiles.
// float runs our own kernels (gemm_kernels.h), on the pairs Up and Vp under
// --precision bf16; double (the gradient checks) the BLAS.
template <class T>
void winograd_products(const T* U, const uint32_t* Up, TransformedInput<T> in, T* M, const Tiling& t, int64_t count,
                       int xi0 = 0, int xi1 = kXi) {
    for (int xi = xi0; xi < xi1; ++xi) {
        T* m = M + xi * t.mxi;
        if constexpr (std::is_same_v<T, float>) {
            if (Up) {
                sgemm_bf16_pairs(t.OC, count, t.C, Up + xi * t.pxi, in.Vp + xi * t.pvxi, t.ld, m, t.ld, false);
                continue;
            }
        }
        const T* u = U + xi * t.uxi;
        const T* v = in.V + xi * t.vxi;
        if constexpr (std::is_same_v<T, float>)
            sgemm(t.OC, count, t.C, u, t.C, v, t.ld, m, t.ld, false);
        else
            gemm(false, false, t.OC, count, t.C, T(1), u, t.C, v, t.ld, T(0), m, t.ld);
    }
}

struct UPairsTag {};
struct VTag {};
struct VPairsTag {};
struct MTag {};
struct UTag {};
struct BiasTag {};
struct SliceSumTag {};  // the weight gradient's dU slices summed, rows of one piece
struct URowsTag {};     // the rows of U (or of Up) one piece of the plan by channels makes
struct UPairsRowsTag {};

// guide.md §3: under --precision bf16, U from w (flipped for the input gradient) straight
// as the products' bfloat16 pairs (gemm_kernels.h). A lane group's 16 channels c0 ..
// c0 + 15 of u[xi], rounded to bfloat16 in order, are the 8 words
//   Up[xi][o][c0 / 2 + j] = bf16(u[xi][c0 + 2 j]) | bf16(u[xi][c0 + 2 j + 1]) << 16:
// the bits pack_bf16_a makes from an fp32 U, which is then never written.
#if defined(__AVX512F__) && defined(__AVX512VL__) && defined(__AVX512BF16__)
// Row o: Up_o[xi * pxi + k2] = Up[xi][o][k2] (Up_o = Up + o bf16_pairs(C) in a whole Up).
template <bool kFlipped> void transform_kernel_row_pairs(const float* w, const Tiling& t, int64_t o, uint32_t* Up_o,
                                                         int64_t pxi) {
    for (int64_t c0 = 0; c0 < t.C; c0 += kLanes) {
        const int64_t n = std::min(kLanes, t.C - c0);
        alignas(64) float k[3][3][kLanes], u[kXi][kLanes];
        gather_kernels<kFlipped>(w, t.OC, t.C, o, c0, n, k);  // the lanes past n zero
        kernel_transform(k, u);
        const __mmask8 words = static_cast<__mmask8>((1u << ((n + 1) / 2)) - 1u);
        for (int xi = 0; xi < kXi; ++xi)
            _mm256_mask_storeu_epi32(Up_o + xi * pxi + c0 / 2, words,
                                     (__m256i)_mm512_cvtneps_pbh(_mm512_load_ps(u[xi])));
    }
}
// Rows o0 .. o1 - 1 of Up on this thread: Up_rows[xi * pxi + (o - o0) bf16_pairs(C) + k2].
void transform_kernel_rows_pairs(const float* w, bool flipped, const Tiling& t, int64_t o0, int64_t o1,
                                 uint32_t* Up_rows, int64_t pxi) {
    for (int64_t o = o0; o < o1; ++o) {
        uint32_t* row = Up_rows + (o - o0) * bf16_pairs(t.C);
        if (flipped)
            transform_kernel_row_pairs<true>(w, t, o, row, pxi);
        else
            transform_kernel_row_pairs<false>(w, t, o, row, pxi);
    }
}
// guide.md §3: all of Up, its rows shared out among the threads.
void transform_kernels_pairs(const float* w, bool flipped, const Tiling& t, uint32_t* Up) {
    kernel_transforms.fetch_add(1, std::memory_order_relaxed);
    const int64_t K2 = bf16_pairs(t.C);
    parallel_for(t.OC, ceil_div(1024, t.C),
                 [&](int64_t o) { transform_kernel_rows_pairs(w, flipped, t, o, o + 1, Up + o * K2, t.pxi); });
}
#else
// Without AVX512_BF16 in this build: the fp32 U in scratch, then packed (for all blocks'
// products at once, rather than once per product).
void pack_kernels_bf16(const float* U, const Tiling& t, uint32_t* Up) {
    parallel_for(kXi, 1, [&](int64_t xi) { pack_bf16_a(t.OC, t.C, U + xi * t.uxi, t.C, false, Up + xi * t.pxi); });
}
void transform_kernels_pairs(const float* w, bool flipped, const Tiling& t, uint32_t* Up) {
    float* U = thread_scratch<float, UTag>(static_cast<size_t>(kXi * t.uxi));
    transform_kernels(w, flipped, t, U);
    pack_kernels_bf16(U, t, Up);
}
void transform_kernel_rows_pairs(const float* w, bool flipped, const Tiling& t, int64_t o0, int64_t o1,
                                 uint32_t* Up_rows, int64_t pxi) {
    const int64_t rows_uxi = (o1 - o0) * t.C;
    float* U = thread_scratch<float, URowsTag>(static_cast<size_t>(kXi * rows_uxi));
    transform_kernel_rows(w, flipped, t, o0, o1, U, rows_uxi);
    for (int xi = 0; xi < kXi; ++xi) pack_bf16_a(o1 - o0, t.C, U + xi * rows_uxi, t.C, false, Up_rows + xi * pxi);
}
#endif

// A convolution's transformed kernels: U, or under --precision bf16 its pairs Up (U then null).
template <class T> struct TransformedKernels {
    const T* U;
    const uint32_t* Up;
};

// guide.md §3: U (or Up) from w (flipped for the input gradient) into this thread's scratch.
template <class T> TransformedKernels<T> transform_into_scratch(const T* w, bool flipped, const Tiling& t) {
    if constexpr (std::is_same_v<T, float>) {
        if (gemm_precision() == GemmPrecision::BF16) {
            uint32_t* Up = thread_scratch<uint32_t, UPairsTag>(static_cast<size_t>(kXi * t.pxi));
            transform_kernels_pairs(w, flipped, t, Up);
            return {nullptr, Up};
        }
    }
    T* U = thread_scratch<T, UTag>(static_cast<size_t>(kXi * t.uxi));
    transform_kernels(w, flipped, t, U);
    return {U, nullptr};
}

// A block's weight-gradient operands: V and dM, or under --precision bf16 their bfloat16
// pairs along the tiles, VTp and dMp (input_transform_pairs_t, output_grad_transform_pairs;
// V and dM null), which the products take as they are.
template <class T> struct GradOperands {
    T* V;
    T* dM;
    uint32_t* VTp;
    uint32_t* dMp;
};

// Scratch for them (the tags of V, of VTp and of dM or dMp).
template <class VT, class PT, class MT, class T> GradOperands<T> grad_scratch(const Tiling& t) {
    if constexpr (std::is_same_v<T, float>) {
        if (gemm_precision() == GemmPrecision::BF16)
            return {nullptr, nullptr, thread_scratch<uint32_t, PT>(static_cast<size_t>(kXi * t.ptxi)),
                    thread_scratch<uint32_t, MT>(static_cast<size_t>(kXi * t.pmxi))};
    }
    return {thread_scratch<T, VT>(static_cast<size_t>(kXi * t.vxi)),
            thread_scratch<T, MT>(static_cast<size_t>(kXi * t.mxi)), nullptr, nullptr};
}

// Step 1 and dM for the tiles p0 .. p0 + count, into columns q .. of a block of
// block_count tiles: V from x, dM from dout (its bias sums into dbias).
template <class T>
void transform_grad_operands(const T* x, const T* dout, const Tiling& t, int64_t p0, int64_t count,
                             int64_t block_count, GradOperands<T> g, double* dbias, int64_t q = 0) {
    if constexpr (std::is_same_v<T, float>) {
        if (g.VTp) {
            input_transform_pairs_t(x, t, p0, count, g.VTp + q / 2 * t.ldt);
            output_grad_transform_pairs(dout, t, p0, count, bf16_pairs(block_count), g.dMp + q / 2, dbias);
            return;
        }
    }
    input_transform(x, t, p0, count, g.V + q);
    output_grad_transform(dout, t, p0, count, g.dM + q, dbias);
}

// guide.md §3: dU[xi] (OC x C) += dM[xi] (OC x n) V[xi]^T (n x C), for xi in [xi0, xi1);
// the first block's products write dU (add = false) rather than clear it and add.
template <class T>
void winograd_grad_products(GradOperands<T> g, T* dU, const Tiling& t, int64_t count, bool add, int xi0 = 0,
                            int xi1 = kXi) {
    for (int xi = xi0; xi < xi1; ++xi) {
        T* du = dU + xi * t.uxi;
        if constexpr (std::is_same_v<T, float>) {
            if (g.VTp) {
                sgemm_bf16_pairs(t.OC, t.C, count, g.dMp + xi * t.pmxi, g.VTp + xi * t.ptxi, t.ldt, du, t.C, add);
                continue;
            }
        }
        const T* dm = g.dM + xi * t.mxi;
        const T* v = g.V + xi * t.vxi;
        if constexpr (std::is_same_v<T, float>)
            sgemm(t.OC, t.C, count, dm, t.ld, v, t.ld, du, t.C, add, false, true);
        else
            gemm(false, true, t.OC, t.C, count, T(1), dm, t.ld, v, t.ld, add ? T(1) : T(0), du, t.C);
    }
}

struct SharedVTag {};  // a wide layer's V and M (or dM) of the one block all threads share
struct SharedVPairsTag {};
struct SharedMTag {};

// Scratch for a block's transformed input (VT, PT: the tags of V and of Vp): its
// bfloat16 pairs Vp where the products take them (`pairs`: U's pairs Up in use), else V.
template <class VT, class PT, class T> TransformedInput<T> input_scratch(const Tiling& t, bool pairs) {
    if (pairs) return {nullptr, thread_scratch<uint32_t, PT>(static_cast<size_t>(kXi * t.pvxi))};
    return {thread_scratch<T, VT>(static_cast<size_t>(kXi * t.vxi)), nullptr};
}

// guide.md §3: the convolution of x with the transformed kernels U (OC x C at
// each xi), by blocks: each thread transforms, multiplies and writes back its
// own blocks, whose V and M stay in its L2.
template <class T>
void winograd_conv_by_blocks(const T* x, const T* U, const uint32_t* Up, const T* bias, int64_t bias_stride,
                             const T* residual, T* out, const Tiling& t) {
    // Blocks are independent and compute the same on any thread: each thread
    // starts on its own run of them, and one done early takes over the rest of
    // another's (see tensor/parallel.h on sharing the CPU).
    parallel_pieces(t.nblocks, [&](int64_t blk) {
        const TransformedInput<T> V = input_scratch<VTag, VPairsTag, T>(t, Up != nullptr);
        T* M = thread_scratch<T, MTag>(static_cast<size_t>(kXi * t.mxi));
        const int64_t p0 = blk * t.block, count = std::min(t.block, t.P - p0);
        transform_input(x, t, p0, count, V);
        winograd_products(U, Up, V, M, t, count);
        output_transform(M, bias, bias_stride, residual, t, p0, count, out, 0, t.OC);
    });
}

// The same by xi, for a wide layer: by blocks, every block's products would
// read all of U (several L2s) from memory again for a few dozen tiles. Here all
// threads take one large block at a time (its V and M in L3): the lane groups'
// input transforms shared out, then the 36 products (each U[xi] read once per
// block), then the lane groups' output transforms. (`cifar10`, batch 16, a Zen 5
// with 1 MiB of L2, the whole U-Net alternating with the plan by blocks in one
// process: a forward 4.7% faster on 2 threads and 6.8% on one, a training step
// 6.8% and 5.8%; 256 -> 256 channels at 8x8 alone, 2 threads: 1.61 ms against 2.02.)
template <class T>
void winograd_conv_by_xi(const T* x, const T* U, const uint32_t* Up, const T* bias, int64_t bias_stride,
                         const T* residual, T* out, const Tiling& t) {
    const TransformedInput<T> V = input_scratch<SharedVTag, SharedVPairsTag, T>(t, Up != nullptr);
    T* M = thread_scratch<T, SharedMTag>(static_cast<size_t>(kXi * t.mxi));
    for (int64_t blk = 0; blk < t.nblocks; ++blk) {
        const int64_t p0 = blk * t.block, count = std::min(t.block, t.P - p0), groups = ceil_div(count, kLanes);
        parallel_pieces(groups, [&](int64_t g) {
            transform_input(x, t, p0 + g * kLanes, std::min(kLanes, count - g * kLanes), V, g * kLanes);
        });
        parallel_pieces(kXi, [&](int64_t xi) { winograd_products(U, Up, V, M, t, count, int(xi), int(xi) + 1); });
        parallel_pieces(groups, [&](int64_t g) {
            output_transform(M + g * kLanes, bias, bias_stride, residual, t, p0 + g * kLanes,
                             std::min(kLanes, count - g * kLanes), out, 0, t.OC);
        });
    }
}

// The bytes of a layer's U, or of its weight gradient's dU: 36 matrices of OC x C floats.
int64_t kernel_bytes(int64_t C, int64_t OC) { return kXi * OC * C * int64_t{sizeof(float)}; }

// The 4x4 output tiles of a batch of B images of H x W.
int64_t tile_count(int64_t B, int64_t H, int64_t W) { return B * ceil_div(H, 4) * ceil_div(W, 4); }

// Whether the layer is wide: shared out by xi (or by channels, conv_plan) rather than
// by blocks. By blocks, every block reads all of U (36 matrices of OC x C) again; that
// pays while U fits a few L2s or each thread has many tiles to read it for: by xi when
// U takes more than four L2s and more than L2 / 16 per tile of a thread's share.
// Measured on a Zen 5 (1 MiB L2), batch 16, 2 threads, forward / input gradient /
// weight gradient in ms, by blocks against by xi: 384 -> 128 at 32x32 (U 7.1 MB, 512
// tiles a thread) 12.7 / 13.4 / 16.9 against 19.4 / 16.7 / 23.8; 512 -> 256 at 16x16
// (19 MB, 128 tiles) 10.5 / 11.1 / 16.9 against 10.7 / 10.2 / 15.0; 256 -> 256 at 8x8
// (9.4 MB, 32 tiles) 2.5 / 2.5 / 2.8 against 2.0 / 2.0 / 2.2. The threshold was L2 / 8
// until `bench_conv2d --config=cifar10 --batch=16 --parts=1`'s fwd and dx rows, 3
// alternating rounds, put the two 16x16 layers it moves to by xi at 0.81-0.88x and
// 0.76-0.79x (384 -> 256, 14 MB) and 0.88-0.93x and 0.85-0.95x (256 -> 256, 9.4 MB) in
// fp32; in bf16 0.99-1.02x, 0.85-0.91x, 0.89-1.13x, 1.01-1.13x (the sum of all its 3x3
// layers' fwd and dx rows 0.95x in fp32, 0.98x in bf16). (Before blocks held three
// lane groups and the weight gradient's adjoint ran on lanes, more than four L2s alone
// had been the rule. The weight gradient has a threshold of its own, below.) (by_tile:
// the bytes of U per tile of a thread's share above which by xi pays.)
bool wide_layer(int64_t B, int64_t C, int64_t H, int64_t W, int64_t OC, WinogradPlan plan,
                int64_t by_tile = l2_bytes() / 16) {
    if (plan != WinogradPlan::Auto) return plan != WinogradPlan::ByBlocks;
    const int64_t u_bytes = kernel_bytes(C, OC);
    return u_bytes > 4 * l2_bytes() && u_bytes * max_threads() > tile_count(B, H, W) * by_tile;
}

// A layer's plan: by blocks unless the layer is wide, then by channels where its tiles
// are at most max_tiles, else by xi. By channels every piece reads all of V once, where
// by xi U is written out and read back: for a forward and input gradient that paid up to
// four lane groups of tiles (`bench_conv2d --config=cifar10 --batch=16 --parts=1`, 2
// threads, against by xi: the 4x4 layers (16 tiles) 0.52-0.64x the time, 256 -> 256 and
// 512 -> 256 at 8x8 (64 tiles) 0.65-0.78x in fp32 and 0.74-0.86x in bf16, at 16x16 (256)
// 0.95-1.10x); for the weight gradient see winograd_conv3x3_weight_grad.
WinogradPlan conv_plan(int64_t B, int64_t C, int64_t H, int64_t W, int64_t OC, WinogradPlan plan,
                       int64_t max_tiles = 4 * kLanes) {
    if (plan != WinogradPlan::Auto) return plan;
    if (!wide_layer(B, C, H, W, OC, plan)) return WinogradPlan::ByBlocks;
    return tile_count(B, H, W) <= max_tiles ? WinogradPlan::ByChannels : WinogradPlan::ByXi;
}

// The weight gradient's plan: as wide_layer, but by xi from a quarter of the U per
// tile, L2 / 64: by blocks, each block reads and writes all of its thread's slice of
// dU, where the forward's only reads U; by xi, dU moves once per shared block, and
// those blocks are large (weight_grad_block_bytes). Measured on a Zen 5 (1 MiB L2),
// batch 16, 2 threads, the weight gradient alone, by xi against by blocks, best of 12
// alternating each, four runs (with 8 MiB shared blocks): 128 -> 256 at 16x16 (U 4.7
// MB, 128 tiles a thread) 0.85-0.97x in fp32 and 0.82-1.02x in bf16; 256 -> 256 at
// 16x16 0.79-0.95x and 0.71-0.91x; 384 -> 256 at 16x16 0.75-0.89x and 0.67-0.81x. At
// 32x32 (512 tiles a thread) 256 -> 256 (9.4 MB) goes by xi since its blocks grew
// (`bench_conv2d --config=cifar10 --batch=16 --parts=1`'s dw row against the rule
// before, 4 alternating rounds: 0.77-0.91x in fp32, 0.62-0.81x in bf16); 384 -> 128
// and 256 -> 128 (7.1 and 4.7 MB) stay by blocks (by xi, with the large blocks, one
// round: 1.1x in fp32, 0.9x in bf16).
bool wide_weight_grad(int64_t B, int64_t C, int64_t H, int64_t W, int64_t OC, WinogradPlan plan) {
    return wide_layer(B, C, H, W, OC, plan, l2_bytes() / 64);
}

// The bytes (as floats) of V and dM of the shared block of a wide layer's weight
// gradient. Each block reads and writes all of dU, where its V and dM are written and
// read once: blocks whose V and dM take twice dU's bytes (so dU moves half as much as
// they do), up to 64 MiB, and never less than the forward's shared block. (Against
// 8 MiB, `cifar10` batch 16, 2 threads, the dw rows as above, 4 rounds: 512 -> 256
// at 16x16 0.80-0.84x in fp32 and 0.71-0.75x in bf16, 384 -> 256 0.80-0.83x and
// 0.69-0.85x, 256 -> 256 0.86-0.94x and 0.84-0.88x; 128 -> 256 unchanged.)
int64_t weight_grad_block_bytes(int64_t C, int64_t OC) {
    return std::max(shared_block_bytes(), std::min(2 * kernel_bytes(C, OC), int64_t{64} << 20));
}

// The tiling of a forward (or input-gradient) convolution with its plan:
// blocks for each thread's L2, or one shared block at a time in L3.
Tiling conv_tiling(int64_t B, int64_t C, int64_t H, int64_t W, int64_t OC, bool wide) {
    return wide ? Tiling(B, C, H, W, OC, 1, shared_block_bytes()) : Tiling(B, C, H, W, OC, max_threads());
}

// The transformed kernels kept while a KernelTransformCache is alive (winograd.h),
// one entry per weight (its address and shape, and whether flipped), made on first use.
struct CachedKernels {
    std::vector<float, detail::CacheLineAllocator<float>> U;
    std::vector<uint32_t, detail::CacheLineAllocator<uint32_t>> Up;  // under --precision bf16 (U then unused)
};
struct KernelCache {
    std::atomic<int> scopes{0};  // KernelTransformCache objects alive
    std::mutex mu;               // guards entries
    std::map<std::tuple<const void*, int64_t, int64_t, bool>, CachedKernels> entries;
};
KernelCache& kernel_cache() {
    static KernelCache* c = new KernelCache;  // never destroyed, as the allocator's cache
    return *c;
}

// U (or Up) for w from the cache while a KernelTransformCache is alive (made there on
// first use; float only: the double convolutions are the gradient checks'), else both null.
template <class T> TransformedKernels<T> kept_kernels(const T* w, bool flipped, const Tiling& t) {
    if constexpr (std::is_same_v<T, float>) {
        KernelCache& cache = kernel_cache();
        if (cache.scopes.load(std::memory_order_acquire) > 0) {
            std::lock_guard<std::mutex> lock(cache.mu);
            CachedKernels& e = cache.entries[{w, t.OC, t.C, flipped}];
            if (gemm_precision() == GemmPrecision::BF16) {
                if (e.Up.empty()) {
                    e.Up.resize(static_cast<size_t>(kXi * t.pxi));
                    transform_kernels_pairs(w, flipped, t, e.Up.data());
                }
                return {nullptr, e.Up.data()};
            }
            if (e.U.empty()) {
                e.U.resize(static_cast<size_t>(kXi * t.uxi));
                transform_kernels(w, flipped, t, e.U.data());
            }
            return {e.U.data(), nullptr};
        }
    }
    return {nullptr, nullptr};
}

// U (and Up) for w: kept ones while a KernelTransformCache is alive, else made afresh
// in scratch.
template <class T> TransformedKernels<T> transformed_kernels(const T* w, bool flipped, const Tiling& t) {
    const TransformedKernels<T> kept = kept_kernels(w, flipped, t);
    return kept.U || kept.Up ? kept : transform_into_scratch(w, flipped, t);
}

// Whether the products run on bfloat16 pairs (--precision bf16; float only).
template <class T> bool uses_bf16_pairs() {
    if constexpr (std::is_same_v<T, float>) return gemm_precision() == GemmPrecision::BF16;
    return false;
}

// The output channels one piece of the plan by channels takes: their rows of U (or Up)
// stay in its L2 (256 input channels: 590 KB in fp32).
constexpr int64_t kChannelPiece = 16;

// Rows o0 .. o1 - 1 of U (or Up) for the products of `rows` (t's with OC = o1 - o0): the
// kept ones, or made into this thread's scratch (rows.uxi or rows.pxi then their stride).
template <class T>
TransformedKernels<T> kernel_rows(const T* w, bool flipped, TransformedKernels<T> kept, const Tiling& t, int64_t o0,
                                  int64_t o1, Tiling& rows) {
    if (kept.U) return {kept.U + o0 * t.C, nullptr};
    if (kept.Up) return {nullptr, kept.Up + o0 * bf16_pairs(t.C)};
    if constexpr (std::is_same_v<T, float>) {
        if (uses_bf16_pairs<T>()) {
            rows.pxi = kChannelPiece * bf16_pairs(t.C) + 16;
            uint32_t* Up = thread_scratch<uint32_t, UPairsRowsTag>(static_cast<size_t>(kXi * rows.pxi));
            transform_kernel_rows_pairs(w, flipped, t, o0, o1, Up, rows.pxi);
            return {nullptr, Up};
        }
    }
    rows.uxi = kChannelPiece * t.C + 16;
    T* U = thread_scratch<T, URowsTag>(static_cast<size_t>(kXi * rows.uxi));
    transform_kernel_rows(w, flipped, t, o0, o1, U, rows.uxi);
    return {U, nullptr};
}

// The same by output channels, for a layer of few tiles and a large U (`cifar10`'s
// 4x4 and 8x8 layers at batch 16: 16 and 64 tiles, U of 9.4 MB and more; conv_plan).
// By xi, all of U would be written out and read back for those few tiles; here V is
// made once for all tiles, then each piece of kChannelPiece output channels makes its
// own rows of U (in L2, never written out), their products and their output tiles.
// (While a KernelTransformCache is alive, the pieces take their rows of the kept U.)
template <class T>
void winograd_conv_by_channels(const T* x, const T* w, bool flipped, const T* bias, int64_t bias_stride,
                               const T* residual, T* out, const Tiling& t) {
    const TransformedKernels<T> kept = kept_kernels(w, flipped, t);
    if (!kept.U && !kept.Up) kernel_transforms.fetch_add(1, std::memory_order_relaxed);
    const TransformedInput<T> V = input_scratch<SharedVTag, SharedVPairsTag, T>(t, uses_bf16_pairs<T>());
    T* M = thread_scratch<T, SharedMTag>(static_cast<size_t>(kXi * t.mxi));
    for (int64_t blk = 0; blk < t.nblocks; ++blk) {
        const int64_t p0 = blk * t.block, count = std::min(t.block, t.P - p0), groups = ceil_div(count, kLanes);
        parallel_pieces(groups, [&](int64_t g) {
            transform_input(x, t, p0 + g * kLanes, std::min(kLanes, count - g * kLanes), V, g * kLanes);
        });
        parallel_pieces(ceil_div(t.OC, kChannelPiece), [&](int64_t piece) {
            const int64_t o0 = piece * kChannelPiece, o1 = std::min(t.OC, o0 + kChannelPiece);
            Tiling rows = t;
            rows.OC = o1 - o0;
            const auto [U, Up] = kernel_rows(w, flipped, kept, t, o0, o1, rows);
            winograd_products(U, Up, V, M + o0 * t.ld, rows, count);
            output_transform(M, bias, bias_stride, residual, t, p0, count, out, o0, o1);
        });
    }
}

// guide.md §3: U from w (flipped for the input gradient; kept while a
// KernelTransformCache is alive), then the convolution by the plan (by channels, U
// piece by piece).
template <class T>
void winograd_conv(const T* x, const T* w, bool flipped, const T* bias, int64_t bias_stride, const T* residual,
                   T* out, const Tiling& t, WinogradPlan plan) {
    if (plan == WinogradPlan::ByChannels)
        return winograd_conv_by_channels(x, w, flipped, bias, bias_stride, residual, out, t);
    const auto [U, Up] = transformed_kernels(w, flipped, t);
    if (plan == WinogradPlan::ByXi)
        winograd_conv_by_xi(x, U, Up, bias, bias_stride, residual, out, t);
    else
        winograd_conv_by_blocks(x, U, Up, bias, bias_stride, residual, out, t);
}

}  // namespace

KernelTransformCache::KernelTransformCache() { kernel_cache().scopes.fetch_add(1, std::memory_order_acq_rel); }

KernelTransformCache::~KernelTransformCache() {
    KernelCache& cache = kernel_cache();
    std::lock_guard<std::mutex> lock(cache.mu);
    if (cache.scopes.fetch_sub(1, std::memory_order_acq_rel) == 1) cache.entries.clear();
}

int64_t winograd_kernel_transforms() { return kernel_transforms.load(std::memory_order_relaxed); }

int64_t winograd_block_tiles(int64_t B, int64_t C, int64_t H, int64_t W, int64_t OC, int threads) {
    return Tiling(B, C, H, W, OC, threads).block;
}

template <class T>
void winograd_conv3x3_forward(const T* x, const T* w, const T* bias, T* out, int64_t B, int64_t C, int64_t H,
                              int64_t W, int64_t OC, bool per_image_bias, const T* residual, WinogradPlan plan) {
    const WinogradPlan p = conv_plan(B, C, H, W, OC, plan);
    winograd_conv(x, w, false, bias, per_image_bias ? OC : 0, residual, out,
                  conv_tiling(B, C, H, W, OC, p != WinogradPlan::ByBlocks), p);
}

// guide.md §3: dx is the convolution of dout with the kernel flipped and its channels swapped.
template <class T>
void winograd_conv3x3_input_grad(const T* dout, const T* w, T* dx, int64_t B, int64_t C, int64_t H, int64_t W,
                                 int64_t OC, WinogradPlan plan) {
    // dx = conv3x3(dout, w') with w'[c][o][i][j] = w[o][c][2 - i][2 - j]: C outputs from OC inputs.
    const WinogradPlan p = conv_plan(B, OC, H, W, C, plan);
    winograd_conv(dout, w, true, static_cast<const T*>(nullptr), 0, static_cast<const T*>(nullptr), dx,
                  conv_tiling(B, OC, H, W, C, p != WinogradPlan::ByBlocks), p);
}

// The weight gradient of a layer whose dU fits a core's L2: each thread takes
// cache-sized blocks of tiles (twice the forward's: each block reads and writes
// all of its thread's dU once per xi, and its tiles are the products' inner size,
// so longer blocks move dU less per multiply; measured on a Zen 3, 2 threads,
// batch 64, the `small` U-Net's 3x3 layers: 5-9% less time than at 1x, 4x no
// better) and adds into its own slice of dU, nt slices of 36 OC C in all.
template <class T>
void weight_grad_by_blocks(const T* x, const T* dout, T* dU, double* db, const Tiling& t, int nt) {
    const int64_t usize = kXi * t.uxi;
    auto run_blocks = [&](int k, int64_t first, int64_t last) {
        const GradOperands<T> g = grad_scratch<VTag, VPairsTag, MTag, T>(t);
        for (int64_t blk = first; blk < last; ++blk) {
            const int64_t p0 = blk * t.block, count = std::min(t.block, t.P - p0);
            transform_grad_operands(x, dout, t, p0, count, count, g, db ? db + k * t.OC : nullptr);
            winograd_grad_products(g, dU + k * usize, t, count, blk > first);
        }
    };
    run_slices(nt, t.nblocks, run_blocks);
}

// The operands of a block shared by all threads, its lane groups split into nt slices,
// slice k's bias sums in db's slice k.
template <class T>
void transform_shared_grad_operands(const T* x, const T* dout, const Tiling& t, int64_t p0, int64_t count,
                                    GradOperands<T> ops, double* db, int nt) {
    const int64_t groups = ceil_div(count, kLanes);
    parallel_pieces(nt, [&](int64_t k) {
        for (int64_t g = groups * k / nt; g < groups * (k + 1) / nt; ++g) {
            const int64_t q = g * kLanes, m = std::min(kLanes, count - q);
            transform_grad_operands(x, dout, t, p0 + q, m, count, ops, db ? db + k * t.OC : nullptr, q);
        }
    });
}

// The weight gradient of a wide layer, whose dU is several times a core's L2 (a
// slice per thread, added into once per small block, would cross memory each
// time): all threads take one large block of tiles at a time (weight_grad_block_bytes),
// transform its lane groups together, then each adds dU[xi] += dM[xi] V[xi]^T
// for its own share of the 36 xi, over all the block's tiles at once. One dU,
// each xi with one owner: no slices to clear and add up. (`cifar10`, batch 16,
// 2 threads, 256 -> 256 channels at 8x8: 3.7 ms forward; the weight gradient
// 16.6 ms by blocks, 7.3 ms by xi.)
template <class T>
void weight_grad_by_xi(const T* x, const T* dout, T* dU, double* db, const Tiling& t, int nt) {
    const GradOperands<T> ops = grad_scratch<SharedVTag, SharedVPairsTag, SharedMTag, T>(t);
    for (int64_t blk = 0; blk < t.nblocks; ++blk) {
        const int64_t p0 = blk * t.block, count = std::min(t.block, t.P - p0);
        transform_shared_grad_operands(x, dout, t, p0, count, ops, db, nt);
        parallel_pieces(kXi, [&](int64_t xi) {
            winograd_grad_products(ops, dU, t, count, blk > 0, static_cast<int>(xi), static_cast<int>(xi) + 1);
        });
    }
}

// guide.md §3: dw = G^T dU G and dbias for output channels [o0, o1), from their rows of
// dU, rows[xi * xi_stride + (o - o0) C + c], and the threads' nt slices of the bias sums.
template <class T>
void kernel_grads_of_rows(const T* rows, int64_t xi_stride, const double* db, int nt, const Tiling& t, int64_t o0,
                          int64_t o1, T* dw, T* dbias) {
    const int64_t C = t.C;
    for (int64_t o = o0; o < o1; ++o) {
        for (int64_t c0 = 0; c0 < C; c0 += kLanes) {
            const int64_t n = std::min(kLanes, C - c0);
            const T* at = rows + (o - o0) * C + c0;
            // (Added into a zeroed du rather than copied: GCC made the copy of n
            // floats a `rep movs`, and 256 -> 256 channels' weight gradient 10% slower.)
            alignas(64) T du[kXi][kLanes] = {}, dk[3][3][kLanes];
            for (int xi = 0; xi < kXi; ++xi)
                for (int64_t l = 0; l < n; ++l) du[xi][l] += at[xi * xi_stride + l];
            kernel_transform_adjoint(du, dk);
            for (int64_t l = 0; l < n; ++l)
                for (int ij = 0; ij < 9; ++ij) dw[(o * C + c0 + l) * 9 + ij] = dk[ij / 3][ij % 3][l];
        }
        if (dbias) {
            double s = 0;
            for (int k = 0; k < nt; ++k) s += db[k * t.OC + o];
            dbias[o] = static_cast<T>(s);
        }
    }
}

// dw and dbias of output channels [o0, o1) from the threads' slices of dU and
// of the bias sums: guide.md §3: dw = G^T (sum_k dU_k) G. With several slices,
// each xi's rows o0..o1 of them are added up first into this thread's scratch, in
// a fixed order whichever thread runs this (so the result does not depend on
// timing), as runs of (o1 - o0) C floats: half of them were written by the other
// thread, and read in runs they cross between the cores at streaming speed. (Read
// 16 floats at a time from 36 x slices places, as the adjoint wants them, they did
// not. The whole weight gradient, 2 threads, a Zen 5, alternating with that in one
// process, 75 pairs, same bits: batch 64, 64 -> 64 channels at 7x7 0.60 ms against
// 0.63, 128 -> 64 0.92 against 1.01, the 14x14 and 28x28 layers 1-4% faster.) The
// adjoint (kernel_grads_of_rows) then reads the sums, kLanes input channels at a
// time as the forward's kernel transform.
template <class T>
void kernel_grads_from_slices(const T* dU, int slices, const double* db, int nt, const Tiling& t, int64_t o0,
                              int64_t o1, T* dw, T* dbias) {
    const int64_t C = t.C, usize = kXi * t.uxi, run = (o1 - o0) * C;
    const T* rows = dU + o0 * C;  // rows[xi * xi_stride + (o - o0) C + c]: the sum over slices
    int64_t xi_stride = t.uxi;
    if (slices > 1) {
        T* sum = thread_scratch<T, SliceSumTag>(static_cast<size_t>(kXi * run));
        for (int xi = 0; xi < kXi; ++xi) {
            const T* from = dU + xi * t.uxi + o0 * C;
            T* to = sum + xi * run;
            std::copy_n(from, run, to);
            for (int k = 1; k < slices; ++k)
#pragma omp simd
                for (int64_t i = 0; i < run; ++i) to[i] += from[k * usize + i];
        }
        rows = sum, xi_stride = run;
    }
    kernel_grads_of_rows(rows, xi_stride, db, nt, t, o0, o1, dw, dbias);
}

struct DURowsTag {};  // the rows of dU one piece of the weight gradient by channels adds up
struct VTTag {};      // its V^T, made once for all the pieces

// fp32: V^T of each xi (P x C, at VT + xi P C), made once for all the pieces of the
// weight gradient by channels (sgemm's trans_b would copy it for each piece); else null.
template <class T> const T* transposed_v(const GradOperands<T>& ops, const Tiling& t) {
    if constexpr (std::is_same_v<T, float>) {
        if (ops.V) {
            float* VT = thread_scratch<float, VTTag>(static_cast<size_t>(kXi * t.P * t.C));
            parallel_pieces(kXi, [&](int64_t xi) { transpose(ops.V + xi * t.vxi, t.C, t.P, t.ld, VT + xi * t.P * t.C); });
            return VT;
        }
    }
    return nullptr;
}

// A piece's rows of dU: dU[xi] (rows.OC x C) = rows o0 .. of dM[xi] (x P tiles) times
// V[xi]^T, from the V^T made once (fp32), else on the products' own operands.
template <class T>
void grad_products_of_rows(GradOperands<T> ops, const T* VT, const Tiling& t, const Tiling& rows, int64_t o0, T* dU) {
    if constexpr (std::is_same_v<T, float>) {
        if (VT) {
            for (int xi = 0; xi < kXi; ++xi)
                sgemm(rows.OC, t.C, t.P, ops.dM + xi * t.mxi + o0 * t.ld, t.ld, VT + xi * t.P * t.C, t.C,
                      dU + xi * rows.uxi, t.C, false);
            return;
        }
    }
    if (ops.dM) ops.dM += o0 * t.ld;
    if (ops.dMp) ops.dMp += o0 * bf16_pairs(t.P);
    winograd_grad_products(ops, dU, rows, t.P, false);
}

// The weight gradient of a wide layer whose few tiles fit one block (`cifar10`'s 4x4
// layers at batch 16, and its 8x8 ones in bf16), by output channels as its forward
// (winograd_conv_by_channels): the block's V and dM made once, then each piece of
// kChannelPiece output channels adds up its rows of dU (in L2, never written out) and
// turns them into its rows of dw.
template <class T>
void weight_grad_by_channels(const T* x, const T* dout, T* dw, T* dbias, double* db, const Tiling& t, int nt) {
    const GradOperands<T> ops = grad_scratch<SharedVTag, SharedVPairsTag, SharedMTag, T>(t);
    transform_shared_grad_operands(x, dout, t, 0, t.P, ops, dbias ? db : nullptr, nt);
    const T* VT = transposed_v(ops, t);
    parallel_pieces(ceil_div(t.OC, kChannelPiece), [&](int64_t piece) {
        const int64_t o0 = piece * kChannelPiece, o1 = std::min(t.OC, o0 + kChannelPiece);
        Tiling rows = t;  // the products of dM's rows o0 .. o1 - 1 into this piece's dU
        rows.OC = o1 - o0;
        rows.uxi = kChannelPiece * t.C + 16;
        T* dU = thread_scratch<T, DURowsTag>(static_cast<size_t>(kXi * rows.uxi));
        grad_products_of_rows(ops, VT, t, rows, o0, dU);
        kernel_grads_of_rows(dU, rows.uxi, db, nt, t, o0, o1, dw, dbias);
    });
}

template <class T>
void winograd_conv3x3_weight_grad(const T* x, const T* dout, T* dw, T* dbias, int64_t B, int64_t C, int64_t H,
                                  int64_t W, int64_t OC, WinogradPlan plan) {
    const int threads = max_threads();
    // Wide: see wide_weight_grad. (On a Zen 3 with 512 KiB of L2, before blocks held
    // three lane groups, 128 -> 128 channels at 32x32 and wider had gone faster by
    // xi, 13.6 ms against 15.4, 17 against 40 at 256 -> 256 at 16x16; 128 -> 64 and
    // narrower by blocks, 7.4 ms against 7.8 at 14x14.)
    const bool wide = wide_weight_grad(B, C, H, W, OC, plan);
    const Tiling t(B, C, H, W, OC, wide ? 1 : threads, wide ? weight_grad_block_bytes(C, OC) : 2 * block_bytes());
    const int64_t usize = kXi * t.uxi;
    const int nt = static_cast<int>(std::min<int64_t>(threads, wide ? kXi : t.nblocks));
    // By channels (each piece reading all of V^T, or of its pairs) up to one lane group of
    // tiles in fp32, four in bf16, whose V^T takes half the bytes (2 threads, against by
    // xi: the 4x4 layers 0.70-0.76x the time in fp32, 0.61-0.92x in bf16; the 8x8 layers
    // 1.06-1.45x in fp32, 0.77-0.89x in bf16).
    const int64_t max_tiles = uses_bf16_pairs<T>() ? 4 * kLanes : kLanes;
    // The bias sums (one per thread), added in a fixed order at the end: the result does
    // not depend on timing. They start at zero.
    double* db = thread_scratch<double, BiasTag>(static_cast<size_t>(nt * OC));
    std::fill(db, db + nt * OC, 0.0);
    if (wide && t.nblocks == 1 && conv_plan(B, C, H, W, OC, plan, max_tiles) == WinogradPlan::ByChannels)
        return weight_grad_by_channels(x, dout, dw, dbias, db, t, nt);
    const int slices = wide ? 1 : nt;
    // dU (one slice, or one per thread), likewise added in a fixed order. Each slice
    // is written by its first block and added to by the others (every slice has
    // blocks: nt <= nblocks).
    T* dU = thread_scratch<T, UTag>(static_cast<size_t>(slices * usize));
    if (t.nblocks == 0) std::fill(dU, dU + slices * usize, T(0));  // no images
    if (wide)
        weight_grad_by_xi(x, dout, dU, dbias ? db : nullptr, t, nt);
    else
        weight_grad_by_blocks(x, dout, dU, dbias ? db : nullptr, t, nt);
    parallel_range(OC, ceil_div(1024, C), [&](int64_t o0, int64_t o1) {
        kernel_grads_from_slices(dU, slices, db, nt, t, o0, o1, dw, dbias);
    });
}

template void winograd_conv3x3_forward<float>(const float*, const float*, const float*, float*, int64_t, int64_t,
                                              int64_t, int64_t, int64_t, bool, const float*, WinogradPlan);
template void winograd_conv3x3_forward<double>(const double*, const double*, const double*, double*, int64_t,
                                               int64_t, int64_t, int64_t, int64_t, bool, const double*, WinogradPlan);
template void winograd_conv3x3_input_grad<float>(const float*, const float*, float*, int64_t, int64_t, int64_t,
                                                 int64_t, int64_t, WinogradPlan);
template void winograd_conv3x3_input_grad<double>(const double*, const double*, double*, int64_t, int64_t, int64_t,
                                                  int64_t, int64_t, WinogradPlan);
template void winograd_conv3x3_weight_grad<float>(const float*, const float*, float*, float*, int64_t, int64_t,
                                                  int64_t, int64_t, int64_t, WinogradPlan);
template void winograd_conv3x3_weight_grad<double>(const double*, const double*, double*, double*, int64_t, int64_t,
                                                   int64_t, int64_t, int64_t, WinogradPlan);

}  // namespace ddpm
