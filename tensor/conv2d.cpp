// conv2d.cpp: convolution as a GEMM per image.
//
// im2col unrolls the receptive fields of one image into a matrix
//   col[(c*KH + i)*KW + j][oh*OW + ow] = x[c][oh*stride - pad + i][ow*stride - pad + j]
// (0 outside the image), so the convolution is one product
//   out[OC, OH*OW] = W[OC, C*KH*KW] @ col.
// Backward is two more products: dW += dout @ col^T and dcol = W^T @ dout, and
// col2im scatters dcol back onto dx. A 1x1 convolution with stride 1 needs no
// im2col at all: col is the image itself.
#include "tensor/conv2d.h"

#include <fmt/format.h>

#include <cstring>
#include <type_traits>

#include "tensor/avx512.h"
#include "tensor/block_sum.h"
#include "tensor/direct_conv.h"
#include "tensor/gemm_kernels.h"
#include "tensor/matmul.h"
#include "tensor/parallel.h"
#include "tensor/scratch.h"
#include "tensor/winograd.h"

namespace ddpm {

namespace {

struct Geom {
    int64_t B, C, H, W, OC, KH, KW, stride, pad, OH, OW;
    bool per_image_bias;  // bias (B,OC) rather than (OC)
    int64_t ckk() const { return C * KH * KW; }
    int64_t ohw() const { return OH * OW; }
    bool is_pointwise() const { return KH == 1 && KW == 1 && stride == 1 && pad == 0; }
};

Geom conv_geom(const Tensor& x, const Tensor& w, const Tensor& bias, int64_t stride, int64_t pad) {
    const char* op = "conv2d";
    DDPM_CHECK(x.dim() == 4, op, fmt::format("input {} is not (B,C,H,W)", x.describe()));
    DDPM_CHECK(w.dim() == 4, op, fmt::format("weight {} is not (OC,C,KH,KW)", w.describe()));
    DDPM_CHECK(x.dtype() == w.dtype(), op, fmt::format("dtypes differ: input {} weight {}", x.describe(), w.describe()));
    DDPM_CHECK(x.size(1) == w.size(1), op,
          fmt::format("input {} weight {}: channels differ ({} vs {})", shape_str(x.shape()),
                      shape_str(w.shape()), x.size(1), w.size(1)));
    DDPM_CHECK(stride >= 1 && pad >= 0, op, fmt::format("stride {} pad {}", stride, pad));
    const bool per_image = bias.defined() && bias.dim() == 2;
    if (bias.defined())
        DDPM_CHECK((bias.shape() == Shape{w.size(0)} || bias.shape() == Shape{x.size(0), w.size(0)}) &&
                       bias.dtype() == w.dtype(),
                   op, fmt::format("bias {} does not match weight {} (it is (OC) or (B,OC))", bias.describe(),
                                   w.describe()));
    Geom g{x.size(0), x.size(1), x.size(2), x.size(3), w.size(0), w.size(2), w.size(3), stride, pad, 0, 0, per_image};
    DDPM_CHECK(g.H + 2 * pad >= g.KH && g.W + 2 * pad >= g.KW, op,
          fmt::format("kernel {}x{} larger than padded input {}", g.KH, g.KW, shape_str(x.shape())));
    g.OH = (g.H + 2 * pad - g.KH) / stride + 1;
    g.OW = (g.W + 2 * pad - g.KW) / stride + 1;
    return g;
}

// The output columns [lo, hi) whose input column ow*stride - pad + j lies inside [0, W).
inline void valid_columns(const Geom& g, int64_t j, int64_t& lo, int64_t& hi) {
    const int64_t off = j - g.pad;  // input column of ow = 0
    lo = off >= 0 ? 0 : (-off + g.stride - 1) / g.stride;
    hi = g.W - 1 - off < 0 ? 0 : std::min(g.OW, (g.W - 1 - off) / g.stride + 1);
    if (hi < lo) hi = lo;
}

// x is (C,H,W) of one image, col is (C*KH*KW, OH*OW).
// guide.md §3: col[(c,i,j)][(oh,ow)] = x[c][oh s - p + i][ow s - p + j].
// The loops as written: the reference of im2col_stride2 below, and the path of every other shape.
template <class T> void im2col_loops(const T* x, T* col, const Geom& g) {
    for (int64_t c = 0; c < g.C; ++c)
        for (int64_t i = 0; i < g.KH; ++i)
            for (int64_t j = 0; j < g.KW; ++j) {
                T* dst = col + ((c * g.KH + i) * g.KW + j) * g.ohw();
                int64_t lo, hi;
                valid_columns(g, j, lo, hi);
                for (int64_t oh = 0; oh < g.OH; ++oh) {
                    const int64_t h = oh * g.stride - g.pad + i;
                    T* row = dst + oh * g.OW;
                    if (h < 0 || h >= g.H) {
                        std::fill(row, row + g.OW, T(0));
                        continue;
                    }
                    const T* src = x + (c * g.H + h) * g.W + (j - g.pad);  // src[ow * stride] is the pixel
                    std::fill(row, row + lo, T(0));
                    if (g.stride == 1)
                        std::copy(src + lo, src + hi, row + lo);
                    else
                        for (int64_t ow = lo; ow < hi; ++ow) row[ow] = src[ow * g.stride];
                    std::fill(row + hi, row + g.OW, T(0));
                }
            }
}

// The adjoint of im2col: dx (C,H,W) = sum of dcol over every place an input pixel was copied to.
// guide.md §3: the adjoint of im2col: dx = sum of dcol over the copies of each pixel.
template <class T> void col2im_loops(const T* col, T* dx, const Geom& g) {
    std::fill(dx, dx + g.C * g.H * g.W, T(0));
    for (int64_t c = 0; c < g.C; ++c)
        for (int64_t i = 0; i < g.KH; ++i)
            for (int64_t j = 0; j < g.KW; ++j) {
                const T* src = col + ((c * g.KH + i) * g.KW + j) * g.ohw();
                int64_t lo, hi;
                valid_columns(g, j, lo, hi);
                for (int64_t oh = 0; oh < g.OH; ++oh) {
                    const int64_t h = oh * g.stride - g.pad + i;
                    if (h < 0 || h >= g.H) continue;
                    T* dst = dx + (c * g.H + h) * g.W + (j - g.pad);
                    const T* s = src + oh * g.OW;
                    if (g.stride == 1)
                        for (int64_t ow = lo; ow < hi; ++ow) dst[ow] += s[ow];
                    else
                        for (int64_t ow = lo; ow < hi; ++ow) dst[ow * g.stride] += s[ow];
                }
            }
}

#if defined(__AVX512F__)
// Stride 2 with rows of at most 32 floats and at most 16 outputs (the U-Net's
// downsampling convolutions at 32x32 and below): a row of x is loaded into two
// registers once, and each of its KW columns j of col made from there by one
// permute, lane ow taking column 2 ow - pad + j (zero outside the plane). The loops
// above copy one float at a time along a stride of 2: `perf` put 28% of a 32 -> 32
// channel stride-2 layer's time (28x28, batch 64, forward and backward) in im2col
// and 14% in col2im. col2im adds back the same way: lane w of a row gathers
// column j's ow = (w + pad - j) / 2 where that is whole, the columns j in order, as
// the loops add them (the same sums in the same order).
constexpr int64_t kStride2MaxKW = 4;
bool stride2_fits(const Geom& g) { return g.stride == 2 && g.W <= 32 && g.OW <= 16 && g.KW <= kStride2MaxKW; }

struct Stride2Lanes {
    __m512i from[kStride2MaxKW];             // im2col: lane ow of column j reads column 2 ow - pad + j of the row
    __mmask16 from_ok[kStride2MaxKW] = {};   // where that column lies in the row and ow < OW
    __m512i to[2][kStride2MaxKW];            // col2im: lane w (16 + w in the second register) of the row takes ow
    __mmask16 to_ok[2][kStride2MaxKW] = {};  // where w + pad - j is even, and ow = (w + pad - j) / 2 in [0, OW)
    __mmask16 row[2], out;                   // the row's W floats in the two registers; the OW lanes of col
    explicit Stride2Lanes(const Geom& g) : row{first_lanes(g.W), first_lanes(g.W - 16)}, out(first_lanes(g.OW)) {
        alignas(64) int32_t idx[16];
        for (int64_t j = 0; j < g.KW; ++j) {
            for (int l = 0; l < 16; ++l) {
                const int64_t w = 2 * l - g.pad + j;
                idx[l] = static_cast<int32_t>(w & 31);
                if (l < g.OW && w >= 0 && w < g.W) from_ok[j] |= static_cast<__mmask16>(1u << l);
            }
            from[j] = _mm512_load_si512(idx);
            for (int half = 0; half < 2; ++half) {
                for (int l = 0; l < 16; ++l) {
                    const int64_t d = 16 * half + l + g.pad - j, ow = d / 2;  // d >= 0 for the lanes kept
                    idx[l] = static_cast<int32_t>(ow & 15);
                    if (16 * half + l < g.W && d >= 0 && d % 2 == 0 && ow < g.OW)
                        to_ok[half][j] |= static_cast<__mmask16>(1u << l);
                }
                to[half][j] = _mm512_load_si512(idx);
            }
        }
    }
};

// guide.md §3: im2col (as im2col_loops) for stride2_fits(g).
void im2col_stride2(const float* x, float* col, const Geom& g) {
    const Stride2Lanes L(g);
    for (int64_t c = 0; c < g.C; ++c)
        for (int64_t i = 0; i < g.KH; ++i) {
            float* dst = col + (c * g.KH + i) * g.KW * g.ohw();  // column j's row oh at dst + j ohw + oh OW
            for (int64_t oh = 0; oh < g.OH; ++oh) {
                const int64_t h = 2 * oh - g.pad + i;
                const bool inside = h >= 0 && h < g.H;
                const float* src = x + (c * g.H + (inside ? h : 0)) * g.W;
                const __m512 lo = _mm512_maskz_loadu_ps(inside ? L.row[0] : 0, src);
                const __m512 hi = _mm512_maskz_loadu_ps(inside ? L.row[1] : 0, src + 16);
                for (int64_t j = 0; j < g.KW; ++j)
                    _mm512_mask_storeu_ps(dst + j * g.ohw() + oh * g.OW, L.out,
                                          _mm512_maskz_permutex2var_ps(L.from_ok[j], lo, L.from[j], hi));
            }
        }
}

// guide.md §3: col2im (as col2im_loops) for stride2_fits(g).
void col2im_stride2(const float* col, float* dx, const Geom& g) {
    const Stride2Lanes L(g);
    std::fill(dx, dx + g.C * g.H * g.W, 0.0f);
    for (int64_t c = 0; c < g.C; ++c)
        for (int64_t i = 0; i < g.KH; ++i) {
            const float* src = col + (c * g.KH + i) * g.KW * g.ohw();
            for (int64_t oh = 0; oh < g.OH; ++oh) {
                const int64_t h = 2 * oh - g.pad + i;
                if (h < 0 || h >= g.H) continue;
                float* row = dx + (c * g.H + h) * g.W;
                __m512 sum[2] = {_mm512_maskz_loadu_ps(L.row[0], row), _mm512_maskz_loadu_ps(L.row[1], row + 16)};
                for (int64_t j = 0; j < g.KW; ++j) {
                    const __m512 s = _mm512_maskz_loadu_ps(L.out, src + j * g.ohw() + oh * g.OW);
                    for (int half = 0; half < 2; ++half)
                        sum[half] = _mm512_mask_add_ps(sum[half], L.to_ok[half][j], sum[half],
                                                       _mm512_permutexvar_ps(L.to[half][j], s));
                }
                _mm512_mask_storeu_ps(row, L.row[0], sum[0]);
                _mm512_mask_storeu_ps(row + 16, L.row[1], sum[1]);
            }
        }
}
#endif

// guide.md §3: im2col and its adjoint col2im, by the loops or, where it applies, the stride-2 path.
template <class T> void im2col(const T* x, T* col, const Geom& g) {
#if defined(__AVX512F__)
    if constexpr (std::is_same_v<T, float>)
        if (stride2_fits(g)) return im2col_stride2(x, col, g);
#endif
    im2col_loops(x, col, g);
}
template <class T> void col2im(const T* col, T* dx, const Geom& g) {
#if defined(__AVX512F__)
    if constexpr (std::is_same_v<T, float>)
        if (stride2_fits(g)) return col2im_stride2(col, dx, g);
#endif
    col2im_loops(col, dx, g);
}

// The left operand of one image's product, op(A) (M x K), and under --precision bf16
// (float) its bfloat16 pairs Ap (gemm_kernels.h) where the caller packed them once for
// every image: the weights, which sgemm would otherwise pack again for each image.
template <class T> struct Operand {
    const T* A;
    int64_t lda;
    bool trans;
    const uint32_t* Ap = nullptr;
};

struct WeightPairsTag {};

// Whether the loops below run a batch of `images` one image per thread, each thread's
// products on our single-threaded kernels (else one image after another, the BLAS on
// every thread): im2col_forward's parallel_for, whose grain is max_threads(), and
// im2col_backward's slices. With one thread, every batch runs on our kernels.
bool image_per_thread(int64_t images) { return images >= max_threads(); }

// guide.md §3: op(W) (M x K) as that operand, packed once for all images under --precision bf16
// where the images then run on our kernels (image_per_thread; else the BLAS takes W as it is).
// (`cifar10`, batch 16, 2 threads, a Zen 5: packed for each image, 256 x 2304 weights
// for a product of 16 columns, its 8x8 downsampling convolution was slower in bf16
// than in fp32.)
template <class T> Operand<T> weight_operand(const T* w, int64_t M, int64_t K, bool trans, int64_t images) {
    Operand<T> a{w, trans ? M : K, trans};
    if constexpr (std::is_same_v<T, float>) {
        if (gemm_precision() == GemmPrecision::BF16 && image_per_thread(images)) {
            uint32_t* Ap = thread_scratch<uint32_t, WeightPairsTag>(static_cast<size_t>(M * bf16_pairs(K)));
            pack_bf16_a(M, K, w, a.lda, trans, Ap);
            a.Ap = Ap;
        }
    }
    return a;
}

// C (M x N) (+)= op(A) (M x K) op(B) (K x N) for one image's products. Inside a
// parallel loop (one image per thread) float runs our single-threaded kernels
// (gemm_kernels.h), on A's pairs where it has them; outside one, and for double, the
// BLAS (then on every thread).
template <class T>
void product(const Operand<T>& a, bool trans_b, int64_t M, int64_t N, int64_t K, const T* B, int64_t ldb, T* C,
             int64_t ldc, bool accumulate) {
    if constexpr (std::is_same_v<T, float>) {
        if (max_threads() == 1 && a.Ap && !trans_b) {
            sgemm_bf16_packed_a(M, N, K, a.Ap, B, ldb, C, ldc, accumulate);
            return;
        }
        if (max_threads() == 1) {
            sgemm(M, N, K, a.A, a.lda, B, ldb, C, ldc, accumulate, a.trans, trans_b);
            return;
        }
    }
    gemm(a.trans, trans_b, M, N, K, T(1), a.A, a.lda, B, ldb, accumulate ? T(1) : T(0), C, ldc);
}

struct ColTag {};     // im2col's columns
struct DcolTag {};    // the gradient of the columns
struct DwPartTag {};  // partial weight gradients, one per slice of the images
struct DbPartTag {};  // partial bias gradients, one per slice of the images


// guide.md §3: out[OC, OH OW] = W[OC, C K K] col, one image per thread when there are
// enough images (BLAS then runs single-threaded inside each); else one after the other,
// BLAS using every thread.
template <class T> void im2col_forward(const Geom& g, const T* px, const T* pw, const T* pb, const T* pr, T* po) {
    const Operand<T> w = weight_operand(pw, g.OC, g.ckk(), false, g.B);
    parallel_for(g.B, max_threads(), [&](int64_t b) {
        const T* xb = px + b * g.C * g.H * g.W;
        T* ob = po + b * g.OC * g.ohw();
        const T* col = xb;
        if (!g.is_pointwise()) {
            T* c = thread_scratch<T, ColTag>(static_cast<size_t>(g.ckk() * g.ohw()));
            im2col(xb, c, g);
            col = c;
        }
        // Start from the bias (this image's, if one per image) and the residual, and
        // accumulate the product onto them (this image's output is in cache by then).
        const T* bb = !pb ? nullptr : g.per_image_bias ? pb + b * g.OC : pb;
        const T* rb = pr ? pr + b * g.OC * g.ohw() : nullptr;
        for (int64_t oc = 0; (bb || rb) && oc < g.OC; ++oc) {
            T* o = ob + oc * g.ohw();
            if (rb && bb)
                for (int64_t i = 0; i < g.ohw(); ++i) o[i] = bb[oc] + rb[oc * g.ohw() + i];
            else if (rb)
                std::copy(rb + oc * g.ohw(), rb + (oc + 1) * g.ohw(), o);
            else
                std::fill(o, o + g.ohw(), bb[oc]);
        }
        product(w, false, g.OC, g.ohw(), g.ckk(), col, g.ohw(), ob, g.ohw(), bb || rb);
    });
}

}  // namespace

// guide.md §3: x (B,C,H,W), weight (OC,C,KH,KW), bias (OC), (B,OC) or undefined, residual
// (B,OC,OH,OW) or undefined -> (B,OC,OH,OW). Routed once: 3x3 stride-1 convolutions
// with one output channel to the direct sum (direct_conv.h), the other 3x3 stride-1
// ones to Winograd (winograd.h), every other one to im2col + GEMM.
Tensor conv2d_forward(const Tensor& x, const Tensor& weight, const Tensor& bias, int64_t stride, int64_t pad,
                      const Tensor& residual) {
    const Geom g = conv_geom(x, weight, bias, stride, pad);
    Tensor out({g.B, g.OC, g.OH, g.OW}, x.dtype());
    DDPM_CHECK(!residual.defined() || (residual.shape() == out.shape() && residual.dtype() == x.dtype()), "conv2d",
               fmt::format("residual {} for output {}: shapes differ", residual.describe(), out.describe()));
    dispatch(x.dtype(), [&](auto tag) {
        using T = decltype(tag);
        const T* pb = bias.defined() ? bias.data<T>() : nullptr;
        const T* pr = residual.defined() ? residual.data<T>() : nullptr;
        if (direct_conv_applies(g.KH, g.KW, g.stride, g.pad, g.OC))
            direct_conv3x3_forward(x.data<T>(), weight.data<T>(), pb, out.data<T>(), g.B, g.C, g.H, g.W, g.OC,
                                   g.per_image_bias, pr);
        else if (winograd_applies(g.KH, g.KW, g.stride, g.pad, g.C))
            winograd_conv3x3_forward(x.data<T>(), weight.data<T>(), pb, out.data<T>(), g.B, g.C, g.H, g.W, g.OC,
                                     g.per_image_bias, pr);
        else
            im2col_forward(g, x.data<T>(), weight.data<T>(), pb, pr, out.data<T>());
    });
    return out;
}

namespace {

// guide.md §3: the gradients of image b, of dout_b (OC, OH OW), with the columns of x_b:
//   dW += dout_b col^T (into this thread's slice dw_part), db += sum of dout_b over positions,
//   dcol = W^T dout_b and dx_b = col2im(dcol).
template <class T>
void im2col_backward_image(const Geom& g, const T* xb, const Operand<T>& wt, const T* doutb, T* dxb, T* dw_part,
                           double* db_part) {
    if (dw_part) {
        const T* col = xb;
        if (!g.is_pointwise()) {
            T* c = thread_scratch<T, ColTag>(static_cast<size_t>(g.ckk() * g.ohw()));
            im2col(xb, c, g);
            col = c;
        }
        // dW (OC x C K K) += dout_b (OC x OH OW) col^T (OH OW x C K K).
        const Operand<T> dout{doutb, g.ohw(), false};
        product(dout, true, g.OC, g.ckk(), g.ohw(), col, g.ohw(), dw_part, g.ckk(), true);
    }
    if (db_part) {
        for (int64_t oc = 0; oc < g.OC; ++oc) {
            const T* r = doutb + oc * g.ohw();
            db_part[oc] += block_sum<T>(g.ohw(), [&](int64_t i) { return r[i]; });
        }
    }
    if (!dxb) return;
    if (g.is_pointwise()) {
        product(wt, false, g.ckk(), g.ohw(), g.OC, doutb, g.ohw(), dxb, g.ohw(), false);
        return;
    }
    T* dcol = thread_scratch<T, DcolTag>(static_cast<size_t>(g.ckk() * g.ohw()));
    product(wt, false, g.ckk(), g.ohw(), g.OC, doutb, g.ohw(), dcol, g.ohw(), false);
    col2im(dcol, dxb, g);
}

// The images split into slices, one per thread; each slice sums dW and db of its own
// images into a private partial, and the partials are added at the end in a fixed
// order: no two threads write one element, and the result does not depend on timing.
template <class T>
void im2col_backward(const Geom& g, const T* px, const T* pw, const T* pd, T* dx, T* dw, T* dbias) {
    const int nt = image_per_thread(g.B) ? max_threads() : 1;
    const int64_t wsize = g.OC * g.ckk();
    T* dw_part = dw ? thread_scratch<T, DwPartTag>(static_cast<size_t>(nt * wsize)) : nullptr;
    double* db_part = dbias ? thread_scratch<double, DbPartTag>(static_cast<size_t>(nt * g.OC)) : nullptr;
    if (dw_part) std::fill(dw_part, dw_part + nt * wsize, T(0));
    if (db_part) std::fill(db_part, db_part + nt * g.OC, 0.0);
    const Operand<T> wt = dx ? weight_operand(pw, g.ckk(), g.OC, true, g.B) : Operand<T>{pw, g.ckk(), true};  // W^T
    // Slice k, the images [B k / nt, B (k + 1) / nt), sums into partial k, on thread k unless another takes it over.
    parallel_pieces(nt, [&](int64_t k) {
        for (int64_t b = g.B * k / nt; b < g.B * (k + 1) / nt; ++b)
            im2col_backward_image(g, px + b * g.C * g.H * g.W, wt, pd + b * g.OC * g.ohw(),
                                  dx ? dx + b * g.C * g.H * g.W : nullptr, dw ? dw_part + k * wsize : nullptr,
                                  dbias ? db_part + k * g.OC : nullptr);
    });
    // (On all threads: `cifar10`'s 256 -> 256 downsampling weights are 590K floats a partial.)
    if (dw)
        parallel_range(wsize, kGrainElementwise, [&](int64_t lo, int64_t hi) {
            for (int64_t i = lo; i < hi; ++i) {
                T s = 0;
                for (int t = 0; t < nt; ++t) s += dw_part[t * wsize + i];
                dw[i] = s;
            }
        });
    for (int64_t oc = 0; dbias && oc < g.OC; ++oc) {
        double s = 0;
        for (int t = 0; t < nt; ++t) s += db_part[t * g.OC + oc];
        dbias[oc] = static_cast<T>(s);
    }
}

}  // namespace

// guide.md §3: dW += dout col^T, dcol = W^T dout, dx = col2im(dcol).
// Gradients of conv2d_forward, routed as it is: the direct sum's or Winograd's own
// whole-batch kernels for the input and weight gradients (the bias gradient comes with
// the weight's), im2col else.
Conv2dGrads conv2d_backward(const Tensor& dout, const Tensor& x, const Tensor& weight, int64_t stride,
                            int64_t pad, bool need_dx, bool need_dweight, bool need_dbias) {
    const Geom g = conv_geom(x, weight, Tensor(), stride, pad);
    DDPM_CHECK(dout.shape() == Shape({g.B, g.OC, g.OH, g.OW}) && dout.dtype() == x.dtype(), "conv2d_backward",
               fmt::format("dout {} for output [{},{},{},{}]", dout.describe(), g.B, g.OC, g.OH, g.OW));
    Conv2dGrads grads;
    if (need_dx) grads.dx = Tensor(x.shape(), x.dtype());
    if (need_dweight) grads.dweight = Tensor(weight.shape(), x.dtype());
    if (need_dbias) grads.dbias = Tensor({g.OC}, x.dtype());
    dispatch(x.dtype(), [&](auto tag) {
        using T = decltype(tag);
        const T *px = x.data<T>(), *pw = weight.data<T>(), *pd = dout.data<T>();
        T* dx = need_dx ? grads.dx.template data<T>() : nullptr;
        T* dw = need_dweight ? grads.dweight.template data<T>() : nullptr;
        T* db = need_dbias ? grads.dbias.template data<T>() : nullptr;
        if (direct_conv_applies(g.KH, g.KW, g.stride, g.pad, g.OC)) {
            if (dx) direct_conv3x3_input_grad(pd, pw, dx, g.B, g.C, g.H, g.W, g.OC);
            if (dw || db) direct_conv3x3_weight_grad(px, pd, dw, db, g.B, g.C, g.H, g.W, g.OC);
            return;
        }
        if (!winograd_applies(g.KH, g.KW, g.stride, g.pad, g.C)) return im2col_backward(g, px, pw, pd, dx, dw, db);
        if (dx) winograd_conv3x3_input_grad(pd, pw, dx, g.B, g.C, g.H, g.W, g.OC);
        if (dw) winograd_conv3x3_weight_grad(px, pd, dw, db, g.B, g.C, g.H, g.W, g.OC);
        else if (db) im2col_backward<T>(g, px, pw, pd, nullptr, nullptr, db);  // the bias alone
    });
    return grads;
}

Tensor conv2d_reference(const Tensor& x, const Tensor& weight, const Tensor& bias, int64_t stride, int64_t pad) {
    const Geom g = conv_geom(x, weight, bias, stride, pad);
    Tensor out({g.B, g.OC, g.OH, g.OW}, x.dtype());
    dispatch(x.dtype(), [&](auto tag) {
        using T = decltype(tag);
        const T* px = x.data<T>();
        const T* pw = weight.data<T>();
        T* po = out.data<T>();
        for (int64_t b = 0; b < g.B; ++b)
            for (int64_t oc = 0; oc < g.OC; ++oc)
                for (int64_t oh = 0; oh < g.OH; ++oh)
                    for (int64_t ow = 0; ow < g.OW; ++ow) {
                        double acc = bias.defined() ? bias.flat(g.per_image_bias ? b * g.OC + oc : oc) : 0.0;
                        for (int64_t c = 0; c < g.C; ++c)
                            for (int64_t i = 0; i < g.KH; ++i)
                                for (int64_t j = 0; j < g.KW; ++j) {
                                    int64_t h = oh * g.stride - g.pad + i, w = ow * g.stride - g.pad + j;
                                    if (h < 0 || h >= g.H || w < 0 || w >= g.W) continue;
                                    acc += double(px[((b * g.C + c) * g.H + h) * g.W + w]) *
                                           double(pw[((oc * g.C + c) * g.KH + i) * g.KW + j]);
                                }
                        po[((b * g.OC + oc) * g.OH + oh) * g.OW + ow] = static_cast<T>(acc);
                    }
    });
    return out;
}

Conv2dGrads conv2d_backward_reference(const Tensor& dout, const Tensor& x, const Tensor& weight, int64_t stride,
                                      int64_t pad) {
    const Geom g = conv_geom(x, weight, Tensor(), stride, pad);
    DDPM_CHECK(dout.shape() == Shape({g.B, g.OC, g.OH, g.OW}) && dout.dtype() == x.dtype(), "conv2d_backward_reference",
          fmt::format("dout {} for output [{},{},{},{}]", dout.describe(), g.B, g.OC, g.OH, g.OW));
    std::vector<double> dx(static_cast<size_t>(x.numel()), 0.0), dw(static_cast<size_t>(weight.numel()), 0.0),
        db(static_cast<size_t>(g.OC), 0.0);
    for (int64_t b = 0; b < g.B; ++b)
        for (int64_t oc = 0; oc < g.OC; ++oc)
            for (int64_t oh = 0; oh < g.OH; ++oh)
                for (int64_t ow = 0; ow < g.OW; ++ow) {
                    const double d = dout.flat(((b * g.OC + oc) * g.OH + oh) * g.OW + ow);
                    db[oc] += d;
                    for (int64_t c = 0; c < g.C; ++c)
                        for (int64_t i = 0; i < g.KH; ++i)
                            for (int64_t j = 0; j < g.KW; ++j) {
                                const int64_t h = oh * g.stride - g.pad + i, w = ow * g.stride - g.pad + j;
                                if (h < 0 || h >= g.H || w < 0 || w >= g.W) continue;
                                const int64_t xi = ((b * g.C + c) * g.H + h) * g.W + w;
                                const int64_t wi = ((oc * g.C + c) * g.KH + i) * g.KW + j;
                                dx[xi] += d * weight.flat(wi);
                                dw[wi] += d * x.flat(xi);
                            }
                }
    auto to_tensor = [&](const std::vector<double>& v, const Shape& shape) {
        Tensor t(shape, x.dtype());
        for (int64_t i = 0; i < t.numel(); ++i) t.set_flat(i, v[static_cast<size_t>(i)]);
        return t;
    };
    return {to_tensor(dx, x.shape()), to_tensor(dw, weight.shape()), to_tensor(db, {g.OC})};
}

}  // namespace ddpm
