// direct_conv.cpp: the direct 3x3 convolution of direct_conv.h, forward and both gradients.
#include "tensor/direct_conv.h"

#include <algorithm>

#include "tensor/block_sum.h"
#include "tensor/parallel.h"
#include "tensor/scratch.h"

namespace ddpm {

namespace {

// One H x W plane inside a border of zeros: H + 2 rows of Wp = W + 2, and 2 more
// elements, so that the dropped columns of the last output row may read past the
// border. Tap (i, j) of the output at flat index m = y Wp + x reads P[m + i Wp + j].
struct Padded {
    int64_t H, W, Wp, size;
    Padded(int64_t H_, int64_t W_) : H(H_), W(W_), Wp(W_ + 2), size((H_ + 2) * (W_ + 2) + 2) {}
    int64_t grid() const { return H * Wp; }  // output rows at the padded width
    int64_t shift(int i, int j) const { return i * Wp + j; }
};

struct PlanesTag {};  // the padded planes of one image's input (or output gradient)
struct GridTag {};    // one output plane (or its gradient) at the padded width
struct PartTag {};    // the weight gradient's sums, one slice of the images per thread

// n floats from src to dst, in a loop rather than a call (rows here are a few dozen
// floats, and memmove's call took longer than the copy: 11% of the samples).
template <class T> void copy_row(const T* src, int64_t n, T* dst) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) dst[i] = src[i];
}

// P = plane (H x W) inside a border of zeros.
template <class T> void pad_plane(const T* plane, const Padded& p, T* P) {
    std::fill(P, P + p.Wp + 1, T(0));  // the top row and row 1's left border
    for (int64_t y = 0; y < p.H; ++y) {
        T* row = P + (y + 1) * p.Wp;
        copy_row(plane + y * p.W, p.W, row + 1);
        row[p.W + 1] = row[p.Wp] = T(0);  // its right border, the next row's left one
    }
    std::fill(P + (p.H + 1) * p.Wp + 1, P + p.size, T(0));  // the bottom row and the slack
}

// The nine taps at flat index m of one plane: sum_{i,j} k[3 i + j] r_i[m + j], r_i its row i on.
template <class T> inline T taps(const T k[9], const T* r0, const T* r1, const T* r2, int64_t m) {
    return k[0] * r0[m] + k[1] * r0[m + 1] + k[2] * r0[m + 2] + k[3] * r1[m] + k[4] * r1[m + 1] + k[5] * r1[m + 2] +
           k[6] * r2[m] + k[7] * r2[m + 1] + k[8] * r2[m + 2];
}

// acc (H rows of Wp) = sum_c sum_{i,j} k(c, i, j) P_c[m + i Wp + j], over n planes P_c
// (P + c size): guide.md §3, the direct sum, nine multiply-adds per element.
template <class T, class K> void correlate(const T* P, int64_t n, const Padded& p, K k, T* acc) {
    if (n == 0) std::fill(acc, acc + p.grid(), T(0));  // no input channels: the sum is empty
    for (int64_t c = 0; c < n; ++c) {
        T kc[9];
        for (int ij = 0; ij < 9; ++ij) kc[ij] = k(c, ij / 3, ij % 3);
        const T* r0 = P + c * p.size;  // kernel row 0; rows 1 and 2 one and two padded rows on
        const T *r1 = r0 + p.Wp, *r2 = r0 + 2 * p.Wp;
        if (c == 0) {  // the first plane writes acc, the others add to it
#pragma omp simd
            for (int64_t m = 0; m < p.grid(); ++m) acc[m] = taps(kc, r0, r1, r2, m);
        } else {
#pragma omp simd
            for (int64_t m = 0; m < p.grid(); ++m) acc[m] += taps(kc, r0, r1, r2, m);
        }
    }
}

// The planes of image b of t (n planes of H x W), padded, into this thread's scratch.
template <class T> const T* padded_planes(const T* t, int64_t b, int64_t n, const Padded& p) {
    T* P = thread_scratch<T, PlanesTag>(static_cast<size_t>(n * p.size));
    for (int64_t c = 0; c < n; ++c) pad_plane(t + (b * n + c) * p.H * p.W, p, P + c * p.size);
    return P;
}

}  // namespace

template <class T>
void direct_conv3x3_forward(const T* x, const T* w, const T* bias, T* out, int64_t B, int64_t C, int64_t H, int64_t W,
                            int64_t OC, bool per_image_bias, const T* residual) {
    const Padded p(H, W);
    parallel_for(B, 1, [&](int64_t b) {
        const T* P = padded_planes(x, b, C, p);
        T* acc = thread_scratch<T, GridTag>(static_cast<size_t>(p.grid()));
        for (int64_t o = 0; o < OC; ++o) {
            correlate(P, C, p, [&](int64_t c, int i, int j) { return w[((o * C + c) * 3 + i) * 3 + j]; }, acc);
            const T bo = bias ? bias[per_image_bias ? b * OC + o : o] : T(0);
            T* op = out + (b * OC + o) * H * W;
            const T* rp = residual ? residual + (b * OC + o) * H * W : nullptr;
            for (int64_t y = 0; y < H; ++y)
                for (int64_t x0 = 0; x0 < W; ++x0)
                    op[y * W + x0] = acc[y * p.Wp + x0] + bo + (rp ? rp[y * W + x0] : T(0));
        }
    });
}

// guide.md §3: dx[c][y][x] = sum_o sum_{i,j} w[o][c][2 - i][2 - j] D_o[y + i][x + j], D_o
// the padded plane of dout[o] (the forward with the kernel flipped and the channels swapped).
template <class T>
void direct_conv3x3_input_grad(const T* dout, const T* w, T* dx, int64_t B, int64_t C, int64_t H, int64_t W,
                               int64_t OC) {
    const Padded p(H, W);
    parallel_for(B, 1, [&](int64_t b) {
        const T* D = padded_planes(dout, b, OC, p);
        T* acc = thread_scratch<T, GridTag>(static_cast<size_t>(p.grid()));
        for (int64_t c = 0; c < C; ++c) {
            correlate(D, OC, p, [&](int64_t o, int i, int j) { return w[((o * C + c) * 3 + 2 - i) * 3 + 2 - j]; }, acc);
            T* dp = dx + (b * C + c) * H * W;
            for (int64_t y = 0; y < H; ++y) copy_row(acc + y * p.Wp, W, dp + y * W);
        }
    });
}

namespace {
// guide.md §3: sums[ij] += sum_{m < H Wp} G[m] P[m + i Wp + j] for the nine taps, in one
// pass: sixteen lanes of T per tap, added up in double at the end of the plane.
template <class T> void tap_sums(const T* G, const T* P, const Padded& p, double sums[9]) {
    constexpr int kL = 16;
    T lane[9][kL] = {};
    int64_t m = 0;
    for (; m + kL <= p.grid(); m += kL)
        for (int ij = 0; ij < 9; ++ij) {
            const T* q = P + p.shift(ij / 3, ij % 3) + m;
#pragma omp simd
            for (int l = 0; l < kL; ++l) lane[ij][l] += G[m + l] * q[l];
        }
    for (int ij = 0; ij < 9; ++ij) {
        T s = 0;
        for (int64_t r = m; r < p.grid(); ++r) s += G[r] * P[p.shift(ij / 3, ij % 3) + r];
        for (int l = 0; l < kL; ++l) s += lane[ij][l];
        sums[ij] += static_cast<double>(s);
    }
}

// Image b's share of the weight gradient, added to dw_sums (OC x C x 9) and db_sums (OC):
// guide.md §3, dw[o][c][i][j] += sum_m G_o[m] P_c[m + i Wp + j], with G_o dout[o] laid on
// rows of Wp (zero past column W, so the dropped columns add nothing), and db[o] += sum dout[o].
template <class T>
void weight_grad_image(const T* x, const T* dout, int64_t b, int64_t C, int64_t OC, const Padded& p, double* dw_sums,
                       double* db_sums) {
    const T* P = dw_sums ? padded_planes(x, b, C, p) : nullptr;
    T* G = thread_scratch<T, GridTag>(static_cast<size_t>(p.grid()));
    for (int64_t o = 0; o < OC; ++o) {
        const T* d = dout + (b * OC + o) * p.H * p.W;
        if (db_sums) db_sums[o] += block_sum<T>(p.H * p.W, [&](int64_t i) { return d[i]; });
        if (!dw_sums) continue;
        for (int64_t y = 0; y < p.H; ++y) {
            copy_row(d + y * p.W, p.W, G + y * p.Wp);
            G[y * p.Wp + p.W] = G[y * p.Wp + p.W + 1] = T(0);
        }
        for (int64_t c = 0; c < C; ++c) tap_sums(G, P + c * p.size, p, dw_sums + (o * C + c) * 9);
    }
}
}  // namespace

// The images split into slices, one per thread, each summing into its own partial (in
// double); the partials are added in a fixed order, so the result does not depend on timing.
template <class T>
void direct_conv3x3_weight_grad(const T* x, const T* dout, T* dw, T* dbias, int64_t B, int64_t C, int64_t H, int64_t W,
                                int64_t OC) {
    const Padded p(H, W);
    const int nt = B >= max_threads() ? max_threads() : 1;
    const int64_t wsize = OC * C * 9, stride = wsize + OC;  // a slice's dw sums, then its bias sums
    double* part = thread_scratch<double, PartTag>(static_cast<size_t>(nt * stride));
    std::fill(part, part + nt * stride, 0.0);
    parallel_pieces(nt, [&](int64_t k) {
        for (int64_t b = B * k / nt; b < B * (k + 1) / nt; ++b)
            weight_grad_image(x, dout, b, C, OC, p, dw ? part + k * stride : nullptr,
                              dbias ? part + k * stride + wsize : nullptr);
    });
    for (int64_t i = 0; i < stride; ++i) {
        double s = 0;
        for (int k = 0; k < nt; ++k) s += part[k * stride + i];
        if (i < wsize && dw) dw[i] = static_cast<T>(s);
        if (i >= wsize && dbias) dbias[i - wsize] = static_cast<T>(s);
    }
}

template void direct_conv3x3_forward<float>(const float*, const float*, const float*, float*, int64_t, int64_t,
                                            int64_t, int64_t, int64_t, bool, const float*);
template void direct_conv3x3_forward<double>(const double*, const double*, const double*, double*, int64_t, int64_t,
                                             int64_t, int64_t, int64_t, bool, const double*);
template void direct_conv3x3_input_grad<float>(const float*, const float*, float*, int64_t, int64_t, int64_t, int64_t,
                                               int64_t);
template void direct_conv3x3_input_grad<double>(const double*, const double*, double*, int64_t, int64_t, int64_t,
                                                int64_t, int64_t);
template void direct_conv3x3_weight_grad<float>(const float*, const float*, float*, float*, int64_t, int64_t, int64_t,
                                                int64_t, int64_t);
template void direct_conv3x3_weight_grad<double>(const double*, const double*, double*, double*, int64_t, int64_t,
                                                 int64_t, int64_t, int64_t);

}  // namespace ddpm
