// group_norm.cpp: one pass for the statistics, one for the output; the
// statistics are cached so that backward does not recompute them. The variants
// with SiLU fuse the activation that follows every group norm of the U-Net into
// the same passes, forward and backward.
#include "tensor/group_norm.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "tensor/avx512.h"
#include "tensor/block_sum.h"
#include "tensor/fast_exp.h"

#include "tensor/parallel.h"
#include "tensor/scratch.h"

namespace ddpm {

namespace {
struct GnGeom {
    int64_t B, C, HW, G, cpg;  // cpg: channels per group
    int64_t affine_stride;     // gamma and beta: 0 when (C), C when (B,C) (one row per image)
};

GnGeom gn_geom(const Tensor& x, const Tensor& gamma, int64_t groups) {
    const char* op = "group_norm";
    DDPM_CHECK(x.dim() >= 2, op, "input " + x.describe() + " is not (B,C,...)");
    const int64_t C = x.size(1);
    DDPM_CHECK(groups > 0 && C % groups == 0, op, fmt::format("{} channels not divisible into {} groups", C, groups));
    const bool per_image = gamma.shape() == Shape{x.size(0), C};
    DDPM_CHECK((gamma.shape() == Shape{C} || per_image) && gamma.dtype() == x.dtype(), op,
          fmt::format("gamma {} for input {}", gamma.describe(), x.describe()));
    return {x.size(0), C, x.numel() / std::max<int64_t>(x.size(0) * C, 1), groups, C / groups, per_image ? C : 0};
}

template <class T> T sigmoid_of(T y) { return T(1) / (T(1) + exp_kernel(-y)); }

// The SiLU passes over one channel's n positions, y = scale x + shift recomputed
// from x: silu_row writes silu(y) = y sigmoid(y) (forward), silu_grad_row
// dy = dz s (1 + y (1 - s)) with s = sigmoid(y) (backward). For float with AVX-512, on
// exp_fast16, two vectors at a time and a masked one for the rest; else the loops as
// written. (`small`'s four shapes of group norm with SiLU, batch 64, 2 threads, a Zen 5,
// a test program alternating with the loops, 3 rounds: forward 0.84 -> 0.64 ms in all
// with the inputs in cache, 1.27-1.40 -> 0.97-1.06 with them cold; backward 1.19-1.23
// -> 0.97-1.00 and 2.01-2.13 -> 1.79-2.04.)
template <class T> void silu_row(const T* x, T scale, T shift, int64_t n, T* out) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) {
        const T y = x[i] * scale + shift;
        out[i] = y * sigmoid_of(y);
    }
}

template <class T> void silu_grad_row(const T* x, const T* dz, T scale, T shift, int64_t n, T* out) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) {
        const T y = x[i] * scale + shift, s = sigmoid_of(y);
        out[i] = dz[i] * s * (T(1) + y * (T(1) - s));
    }
}

#if defined(__AVX512F__)
inline __m512 silu16(__m512 x, __m512 scale, __m512 shift) {
    const __m512 y = _mm512_fmadd_ps(x, scale, shift);
    return _mm512_div_ps(y, _mm512_add_ps(_mm512_set1_ps(1.0f), exp_fast16(_mm512_sub_ps(_mm512_setzero_ps(), y))));
}

inline __m512 silu_grad16(__m512 x, __m512 dz, __m512 scale, __m512 shift) {
    const __m512 one = _mm512_set1_ps(1.0f), y = _mm512_fmadd_ps(x, scale, shift);
    const __m512 s = _mm512_div_ps(one, _mm512_add_ps(one, exp_fast16(_mm512_sub_ps(_mm512_setzero_ps(), y))));
    return _mm512_mul_ps(_mm512_mul_ps(dz, s), _mm512_fmadd_ps(y, _mm512_sub_ps(one, s), one));
}

// (A first form, one vector an iteration on exp_fast's steps as written there, was no
// faster than GCC's loop above; this one, two vectors on exp_fast16, is the figure above.)
template <> void silu_row<float>(const float* x, float scale, float shift, int64_t n, float* out) {
    const __m512 a = _mm512_set1_ps(scale), b = _mm512_set1_ps(shift);
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        const __m512 z0 = silu16(_mm512_loadu_ps(x + i), a, b), z1 = silu16(_mm512_loadu_ps(x + i + 16), a, b);
        _mm512_storeu_ps(out + i, z0);
        _mm512_storeu_ps(out + i + 16, z1);
    }
    for (; i < n; i += 16) {
        const __mmask16 m = first_lanes(n - i);
        _mm512_mask_storeu_ps(out + i, m, silu16(_mm512_maskz_loadu_ps(m, x + i), a, b));
    }
}

template <>
void silu_grad_row<float>(const float* x, const float* dz, float scale, float shift, int64_t n, float* out) {
    const __m512 a = _mm512_set1_ps(scale), b = _mm512_set1_ps(shift);
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        const __m512 g0 = silu_grad16(_mm512_loadu_ps(x + i), _mm512_loadu_ps(dz + i), a, b);
        const __m512 g1 = silu_grad16(_mm512_loadu_ps(x + i + 16), _mm512_loadu_ps(dz + i + 16), a, b);
        _mm512_storeu_ps(out + i, g0);
        _mm512_storeu_ps(out + i + 16, g1);
    }
    for (; i < n; i += 16) {
        const __mmask16 m = first_lanes(n - i);
        _mm512_mask_storeu_ps(out + i, m,
                              silu_grad16(_mm512_maskz_loadu_ps(m, x + i), _mm512_maskz_loadu_ps(m, dz + i), a, b));
    }
}
#endif

struct GroupBufTag {};
struct PartGammaTag {};  // per (image, channel) sums for the gamma gradient
struct PartBetaTag {};   // and for the beta gradient

// guide.md §4: y = gamma (x - mu) r + beta, r = 1/sqrt(var + eps); mu and r cached.
// With kSilu the output is silu(y) = y sigmoid(y), computed in the same pass.
template <bool kSilu>
GroupNormOut group_norm_forward_impl(const Tensor& x, const Tensor& gamma, const Tensor& beta, int64_t groups,
                                     double eps) {
    const GnGeom g = gn_geom(x, gamma, groups);
    DDPM_CHECK(beta.shape() == gamma.shape() && beta.dtype() == x.dtype(), "group_norm",
          "beta " + beta.describe() + " does not match gamma " + gamma.describe());
    GroupNormOut out{Tensor(x.shape(), x.dtype()), Tensor({g.B, g.G}, x.dtype()), Tensor({g.B, g.G}, x.dtype())};
    dispatch(x.dtype(), [&](auto tag) {
        using T = decltype(tag);
        const T* px = x.data<T>();
        T* py = out.y.data<T>();
        T* pm = out.mean.data<T>();
        T* pr = out.rstd.data<T>();
        const int64_t n = g.cpg * g.HW;  // elements per group, contiguous in memory
        parallel_for(g.B * g.G, std::max<int64_t>(1, kGrainElementwise / n), [&](int64_t bg) {
            const T* xg = px + bg * n;
            const T* pg = gamma.data<T>() + bg / g.G * g.affine_stride;  // this image's gamma and beta
            const T* pb = beta.data<T>() + bg / g.G * g.affine_stride;
            const double mean = block_sum<T>(n, [&](int64_t i) { return xg[i]; }) / n;
            const T mu = static_cast<T>(mean);
            const double var = block_sum<T>(n, [&](int64_t i) { const T d = xg[i] - mu; return d * d; }) / n;
            const double rstd = 1.0 / std::sqrt(var + eps);  // biased variance, as PyTorch
            pm[bg] = mu;
            pr[bg] = static_cast<T>(rstd);
            const int64_t c0 = (bg % g.G) * g.cpg;
            for (int64_t c = 0; c < g.cpg; ++c) {
                const T scale = static_cast<T>(rstd * pg[c0 + c]);
                const T shift = static_cast<T>(pb[c0 + c] - mean * rstd * pg[c0 + c]);
                const T* xc = xg + c * g.HW;
                T* yc = py + bg * n + c * g.HW;
                if constexpr (kSilu) {
                    silu_row(xc, scale, shift, g.HW, yc);
                } else {
#pragma omp simd
                    for (int64_t i = 0; i < g.HW; ++i) yc[i] = xc[i] * scale + shift;
                }
            }
        });
    });
    return out;
}

// The SiLU part of the fused backward: dy = dz s (1 + y (1 - s)), s = sigmoid(y), over one
// group (cpg channels of HW positions), with y = scale_c x + shift_c recomputed from x.
template <class T>
void silu_backward_group(const GnGeom& g, const T* xg, const T* dzg, const T* pg, const T* pb, int64_t c0, T mu, T rs,
                         T* dyg) {
    for (int64_t c = 0; c < g.cpg; ++c) {
        const T scale = rs * pg[c0 + c], shift = pb[c0 + c] - mu * rs * pg[c0 + c];
        silu_grad_row(xg + c * g.HW, dzg + c * g.HW, scale, shift, g.HW, dyg + c * g.HW);
    }
}

// guide.md §4: the group-norm backward of one group of n = cpg HW elements, with
// xhat = (x - mu) r and g = dy gamma:  dx = r (g - mean(g) - xhat mean(g xhat)),
// written per channel as dx = A dy + B (x - mu) + C. The channel sums of dy xhat and dy
// (for dgamma and dbeta) go to part_dg and part_db.
template <class T>
void group_norm_backward_group(const GnGeom& g, const T* xg, const T* dyg, const T* pg, int64_t c0, T mu, T rs, T* dxg,
                               double* part_dg, double* part_db) {
    double sum_g = 0, sum_gx = 0;  // sums of dy*gamma and dy*gamma*xhat over the group
    for (int64_t c = 0; c < g.cpg; ++c) {
        const T* xc = xg + c * g.HW;
        const T* dc = dyg + c * g.HW;
        const double sdy = block_sum<T>(g.HW, [&](int64_t i) { return dc[i]; });
        const double sdyx = block_sum<T>(g.HW, [&](int64_t i) { return dc[i] * (xc[i] - mu); }) * rs;
        part_db[c] = sdy;
        part_dg[c] = sdyx;
        sum_g += sdy * pg[c0 + c];
        sum_gx += sdyx * pg[c0 + c];
    }
    const double n = double(g.cpg * g.HW), mean_g = sum_g / n, mean_gx = sum_gx / n, r = rs;
    for (int64_t c = 0; c < g.cpg; ++c) {
        const T* xc = xg + c * g.HW;
        const T* dc = dyg + c * g.HW;
        T* dxc = dxg + c * g.HW;
        const T A = static_cast<T>(r * pg[c0 + c]), B = static_cast<T>(-r * r * mean_gx), C = static_cast<T>(-r * mean_g);
#pragma omp simd
        for (int64_t i = 0; i < g.HW; ++i) dxc[i] = A * dc[i] + B * (xc[i] - mu) + C;
    }
}

// guide.md §4: the backward over every (image, group), one task each; with kSilu, dz is
// the gradient of silu(y) and goes through silu_backward_group first (into a per-thread
// buffer of one group). dgamma and dbeta are the per-(image, channel) sums added over images.
template <bool kSilu>
GroupNormGrads group_norm_backward_impl(const Tensor& dz, const Tensor& x, const Tensor& gamma, const Tensor& beta,
                                        const Tensor& mean, const Tensor& rstd, int64_t groups) {
    const GnGeom g = gn_geom(x, gamma, groups);
    DDPM_CHECK(dz.shape() == x.shape() && dz.dtype() == x.dtype(), "group_norm_backward",
               "dy " + dz.describe() + " for input " + x.describe());
    GroupNormGrads grads{Tensor(x.shape(), x.dtype()), Tensor(gamma.shape(), x.dtype()), Tensor(gamma.shape(), x.dtype())};
    dispatch(x.dtype(), [&](auto tag) {
        using T = decltype(tag);
        const T *px = x.data<T>(), *pdz = dz.data<T>(), *pm = mean.data<T>(), *pr = rstd.data<T>();
        // Per (image, channel) partial sums of dy*xhat and dy; each (b, g) task owns its rows.
        double* part_dg = thread_scratch<double, PartGammaTag>(static_cast<size_t>(g.B * g.C));
        double* part_db = thread_scratch<double, PartBetaTag>(static_cast<size_t>(g.B * g.C));
        const int64_t n = g.cpg * g.HW;
        parallel_for(g.B * g.G, std::max<int64_t>(1, kGrainElementwise / n), [&](int64_t bg) {
            const int64_t b = bg / g.G, c0 = (bg % g.G) * g.cpg;
            const T* pg = gamma.data<T>() + b * g.affine_stride;  // this image's gamma (and beta)
            const T* pb = kSilu ? beta.data<T>() + b * g.affine_stride : nullptr;
            const T* dyg = pdz + bg * n;
            if constexpr (kSilu) {
                T* buf = thread_scratch<T, GroupBufTag>(static_cast<size_t>(n));
                silu_backward_group(g, px + bg * n, dyg, pg, pb, c0, pm[bg], pr[bg], buf);
                dyg = buf;
            }
            group_norm_backward_group(g, px + bg * n, dyg, pg, c0, pm[bg], pr[bg], grads.dx.data<T>() + bg * n,
                                      part_dg + b * g.C + c0, part_db + b * g.C + c0);
        });
        T *pdg = grads.dgamma.data<T>(), *pdb = grads.dbeta.data<T>();
        if (g.affine_stride) {  // per-image gamma and beta: the per-(image, channel) sums are their gradients
            for (int64_t i = 0; i < g.B * g.C; ++i) pdg[i] = static_cast<T>(part_dg[i]), pdb[i] = static_cast<T>(part_db[i]);
            return;
        }
        for (int64_t c = 0; c < g.C; ++c) {
            double sg = 0, sb = 0;
            for (int64_t b = 0; b < g.B; ++b) sg += part_dg[b * g.C + c], sb += part_db[b * g.C + c];
            pdg[c] = static_cast<T>(sg);
            pdb[c] = static_cast<T>(sb);
        }
    });
    return grads;
}
}  // namespace

// guide.md §4: y = gamma (x - mu) r + beta (the kernel: group_norm_forward_impl above).
GroupNormOut group_norm_forward(const Tensor& x, const Tensor& gamma, const Tensor& beta, int64_t groups,
                                double eps) {
    return group_norm_forward_impl<false>(x, gamma, beta, groups, eps);
}

// guide.md §4: dx = r (g - mean(g) - xhat mean(g xhat)) (the kernel: group_norm_backward_impl above).
GroupNormGrads group_norm_backward(const Tensor& dy, const Tensor& x, const Tensor& gamma, const Tensor& mean,
                                   const Tensor& rstd, int64_t groups) {
    return group_norm_backward_impl<false>(dy, x, gamma, Tensor(), mean, rstd, groups);
}

GroupNormOut group_norm_silu_forward(const Tensor& x, const Tensor& gamma, const Tensor& beta, int64_t groups,
                                     double eps) {
    return group_norm_forward_impl<true>(x, gamma, beta, groups, eps);
}

GroupNormGrads group_norm_silu_backward(const Tensor& dz, const Tensor& x, const Tensor& gamma, const Tensor& beta,
                                        const Tensor& mean, const Tensor& rstd, int64_t groups) {
    return group_norm_backward_impl<true>(dz, x, gamma, beta, mean, rstd, groups);
}

// guide.md §4: the definition as written, one element at a time in double precision:
// mu and var over each group, xhat = (x - mu) / sqrt(var + eps), y = gamma xhat + beta.
GroupNormOut group_norm_reference(const Tensor& x, const Tensor& gamma, const Tensor& beta, int64_t groups, double eps) {
    const GnGeom g = gn_geom(x, gamma, groups);
    const int64_t n = g.cpg * g.HW;
    GroupNormOut out{Tensor(x.shape(), x.dtype()), Tensor({g.B, g.G}, x.dtype()), Tensor({g.B, g.G}, x.dtype())};
    for (int64_t bg = 0; bg < g.B * g.G; ++bg) {
        double mu = 0, var = 0;
        for (int64_t i = 0; i < n; ++i) mu += x.flat(bg * n + i) / double(n);
        for (int64_t i = 0; i < n; ++i) var += (x.flat(bg * n + i) - mu) * (x.flat(bg * n + i) - mu) / double(n);
        const double r = 1.0 / std::sqrt(var + eps);
        for (int64_t i = 0; i < n; ++i) {
            const int64_t c = bg / g.G * g.affine_stride + (bg % g.G) * g.cpg + i / g.HW;  // index into gamma, beta
            const double xhat = (x.flat(bg * n + i) - mu) * r;
            out.y.set_flat(bg * n + i, gamma.flat(c) * xhat + beta.flat(c));
        }
        out.mean.set_flat(bg, mu);
        out.rstd.set_flat(bg, r);
    }
    return out;
}

// guide.md §4: the backward as written, with g = dy gamma over one group of n elements:
//   dx = r (g - mean(g) - xhat mean(g xhat)),  dgamma_c = sum dy xhat,  dbeta_c = sum dy.
GroupNormGrads group_norm_backward_reference(const Tensor& dy, const Tensor& x, const Tensor& gamma, int64_t groups,
                                             double eps) {
    const GnGeom g = gn_geom(x, gamma, groups);
    const int64_t n = g.cpg * g.HW;
    const GroupNormOut fwd = group_norm_reference(x, gamma, Tensor::zeros(gamma.shape(), x.dtype()), groups, eps);
    GroupNormGrads grads{Tensor(x.shape(), x.dtype()), Tensor::zeros(gamma.shape(), x.dtype()),
                         Tensor::zeros(gamma.shape(), x.dtype())};
    for (int64_t bg = 0; bg < g.B * g.G; ++bg) {
        const double mu = fwd.mean.flat(bg), r = fwd.rstd.flat(bg);
        auto channel = [&](int64_t i) { return bg / g.G * g.affine_stride + (bg % g.G) * g.cpg + i / g.HW; };
        auto xhat = [&](int64_t i) { return (x.flat(bg * n + i) - mu) * r; };
        double mean_g = 0, mean_gxhat = 0;
        for (int64_t i = 0; i < n; ++i) {
            const double gi = dy.flat(bg * n + i) * gamma.flat(channel(i));
            mean_g += gi / double(n);
            mean_gxhat += gi * xhat(i) / double(n);
        }
        for (int64_t i = 0; i < n; ++i) {
            const double d = dy.flat(bg * n + i), gi = d * gamma.flat(channel(i));
            grads.dx.set_flat(bg * n + i, r * (gi - mean_g - xhat(i) * mean_gxhat));
            grads.dgamma.set_flat(channel(i), grads.dgamma.flat(channel(i)) + d * xhat(i));
            grads.dbeta.set_flat(channel(i), grads.dbeta.flat(channel(i)) + d);
        }
    }
    return grads;
}

}  // namespace ddpm
