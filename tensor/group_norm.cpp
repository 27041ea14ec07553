// group_norm.cpp: one pass for the statistics, one for the output; the
// statistics are cached so that backward does not recompute them. The variants
// with SiLU fuse the activation that follows every group norm of the U-Net into
// the same passes, forward and backward.
#include "tensor/group_norm.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <vector>

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
#pragma omp simd
                for (int64_t i = 0; i < g.HW; ++i) {
                    const T y = xc[i] * scale + shift;
                    yc[i] = kSilu ? y * sigmoid_of(y) : y;
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
        const T* xc = xg + c * g.HW;
        const T* dc = dzg + c * g.HW;
        T* out = dyg + c * g.HW;
#pragma omp simd
        for (int64_t i = 0; i < g.HW; ++i) {
            const T y = xc[i] * scale + shift, s = sigmoid_of(y);
            out[i] = dc[i] * s * (T(1) + y * (T(1) - s));
        }
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
