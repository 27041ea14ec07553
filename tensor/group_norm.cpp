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
};

GnGeom gn_geom(const Tensor& x, const Tensor& gamma, int64_t groups) {
    const char* op = "group_norm";
    DDPM_CHECK(x.dim() >= 2, op, "input " + x.describe() + " is not (B,C,...)");
    const int64_t C = x.size(1);
    DDPM_CHECK(groups > 0 && C % groups == 0, op, fmt::format("{} channels not divisible into {} groups", C, groups));
    DDPM_CHECK(gamma.shape() == Shape{C} && gamma.dtype() == x.dtype(), op,
          fmt::format("gamma {} for input {}", gamma.describe(), x.describe()));
    return {x.size(0), C, x.numel() / std::max<int64_t>(x.size(0) * C, 1), groups, C / groups};
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
        const T* pg = gamma.data<T>();
        const T* pb = beta.data<T>();
        T* py = out.y.data<T>();
        T* pm = out.mean.data<T>();
        T* pr = out.rstd.data<T>();
        const int64_t n = g.cpg * g.HW;  // elements per group, contiguous in memory
        parallel_for(g.B * g.G, std::max<int64_t>(1, kGrainElementwise / n), [&](int64_t bg) {
            const T* xg = px + bg * n;
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

// guide.md §4: dx = r (g - mean(g) - xhat mean(g xhat)), g = dy gamma.
// With kSilu, dz is the gradient of silu(y): dy = dz s (1 + y (1 - s)), s = sigmoid(y),
// with y recomputed from x (never stored), into a per-thread buffer of one group.
template <bool kSilu>
GroupNormGrads group_norm_backward_impl(const Tensor& dz, const Tensor& x, const Tensor& gamma, const Tensor& beta,
                                        const Tensor& mean, const Tensor& rstd, int64_t groups) {
    const GnGeom g = gn_geom(x, gamma, groups);
    DDPM_CHECK(dz.shape() == x.shape() && dz.dtype() == x.dtype(), "group_norm_backward",
          "dy " + dz.describe() + " for input " + x.describe());
    GroupNormGrads grads{Tensor(x.shape(), x.dtype()), Tensor({g.C}, x.dtype()), Tensor({g.C}, x.dtype())};
    dispatch(x.dtype(), [&](auto tag) {
        using T = decltype(tag);
        const T* px = x.data<T>();
        const T* pdz = dz.data<T>();
        const T* pg = gamma.data<T>();
        const T* pb = kSilu ? beta.data<T>() : nullptr;
        const T* pm = mean.data<T>();
        const T* pr = rstd.data<T>();
        T* pdx = grads.dx.data<T>();
        // Per (image, channel) partial sums of dy*xhat and dy; each (b, g) task owns its rows.
        double* part_dg = thread_scratch<double, PartGammaTag>(static_cast<size_t>(g.B * g.C));
        double* part_db = thread_scratch<double, PartBetaTag>(static_cast<size_t>(g.B * g.C));
        const int64_t n = g.cpg * g.HW;
        parallel_for(g.B * g.G, std::max<int64_t>(1, kGrainElementwise / n), [&](int64_t bg) {
            const T mu = pm[bg], rs = pr[bg];
            const int64_t b = bg / g.G, c0 = (bg % g.G) * g.cpg;
            const T* xg = px + bg * n;
            const T* dyg = pdz + bg * n;
            if constexpr (kSilu) {
                T* buf = thread_scratch<T, GroupBufTag>(static_cast<size_t>(n));
                for (int64_t c = 0; c < g.cpg; ++c) {
                    const T scale = rs * pg[c0 + c], shift = pb[c0 + c] - mu * rs * pg[c0 + c];
                    const T* xc = xg + c * g.HW;
                    const T* dc = dyg + c * g.HW;
                    T* bc = buf + c * g.HW;
#pragma omp simd
                    for (int64_t i = 0; i < g.HW; ++i) {
                        const T y = xc[i] * scale + shift, s = sigmoid_of(y);
                        bc[i] = dc[i] * s * (T(1) + y * (T(1) - s));
                    }
                }
                dyg = buf;
            }
            double sum_g = 0, sum_gx = 0;  // sums of dy*gamma and dy*gamma*xhat over the group
            for (int64_t c = 0; c < g.cpg; ++c) {
                const T* xc = xg + c * g.HW;
                const T* dc = dyg + c * g.HW;
                const double sdy = block_sum<T>(g.HW, [&](int64_t i) { return dc[i]; });
                const double sdyx = block_sum<T>(g.HW, [&](int64_t i) { return dc[i] * (xc[i] - mu); }) * rs;
                part_db[b * g.C + c0 + c] = sdy;
                part_dg[b * g.C + c0 + c] = sdyx;
                sum_g += sdy * pg[c0 + c];
                sum_gx += sdyx * pg[c0 + c];
            }
            // dx = r gamma dy - r^2 mean_gx (x - mu) - r mean_g = A dy + B (x - mu) + C per channel.
            const double mean_g = sum_g / n, mean_gx = sum_gx / n, r = rs;
            for (int64_t c = 0; c < g.cpg; ++c) {
                const T* xc = xg + c * g.HW;
                const T* dc = dyg + c * g.HW;
                T* dxc = pdx + bg * n + c * g.HW;
                const T A = static_cast<T>(r * pg[c0 + c]), B = static_cast<T>(-r * r * mean_gx);
                const T C = static_cast<T>(-r * mean_g);
#pragma omp simd
                for (int64_t i = 0; i < g.HW; ++i) dxc[i] = A * dc[i] + B * (xc[i] - mu) + C;
            }
        });
        T* pdg = grads.dgamma.data<T>();
        T* pdb = grads.dbeta.data<T>();
        for (int64_t c = 0; c < g.C; ++c) {
            double sg = 0, sb = 0;
            for (int64_t b = 0; b < g.B; ++b) {
                sg += part_dg[b * g.C + c];
                sb += part_db[b * g.C + c];
            }
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

}  // namespace ddpm
