// group_norm.cpp: one pass for the statistics, one for the output; the
// statistics are cached so that backward does not recompute them.
#include "tensor/group_norm.h"

#include <fmt/format.h>

#include <cmath>

#include "tensor/parallel.h"

namespace ddpm {

namespace {
struct GnGeom {
    int64_t B, C, HW, G, cpg;  // cpg: channels per group
};

GnGeom gn_geom(const Tensor& x, const Tensor& gamma, int64_t groups) {
    const char* op = "group_norm";
    if (!(x.dim() >= 2)) fail(op, "input " + x.describe() + " is not (B,C,...)");
    const int64_t C = x.size(1);
    if (!(groups > 0 && C % groups == 0)) fail(op, fmt::format("{} channels not divisible into {} groups", C, groups));
    if (!(gamma.shape() == Shape{C} && gamma.dtype() == x.dtype())) fail(op,
          fmt::format("gamma {} for input {}", gamma.describe(), x.describe()));
    return {x.size(0), C, x.numel() / std::max<int64_t>(x.size(0) * C, 1), groups, C / groups};
}
}  // namespace

// guide.md §4: y = gamma (x - mu) r + beta, r = 1/sqrt(var + eps); mu and r cached.
GroupNormOut group_norm_forward(const Tensor& x, const Tensor& gamma, const Tensor& beta, int64_t groups,
                                double eps) {
    const GnGeom g = gn_geom(x, gamma, groups);
    if (!(beta.shape() == gamma.shape() && beta.dtype() == x.dtype())) fail("group_norm",
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
            double s = 0, ss = 0;
            for (int64_t i = 0; i < n; ++i) s += xg[i];
            const double mean = s / n;
            for (int64_t i = 0; i < n; ++i) {
                double d = xg[i] - mean;
                ss += d * d;
            }
            const double rstd = 1.0 / std::sqrt(ss / n + eps);  // biased variance, as PyTorch
            pm[bg] = static_cast<T>(mean);
            pr[bg] = static_cast<T>(rstd);
            const int64_t c0 = (bg % g.G) * g.cpg;
            for (int64_t c = 0; c < g.cpg; ++c) {
                const T scale = static_cast<T>(rstd * pg[c0 + c]);
                const T shift = static_cast<T>(pb[c0 + c] - mean * rstd * pg[c0 + c]);
                const T* xc = xg + c * g.HW;
                T* yc = py + bg * n + c * g.HW;
                for (int64_t i = 0; i < g.HW; ++i) yc[i] = xc[i] * scale + shift;
            }
        });
    });
    return out;
}

// guide.md §4: dx = r (g - mean(g) - xhat mean(g xhat)), g = dy gamma.
GroupNormGrads group_norm_backward(const Tensor& dy, const Tensor& x, const Tensor& gamma, const Tensor& mean,
                                   const Tensor& rstd, int64_t groups) {
    const GnGeom g = gn_geom(x, gamma, groups);
    if (!(dy.shape() == x.shape() && dy.dtype() == x.dtype())) fail("group_norm_backward",
          "dy " + dy.describe() + " for input " + x.describe());
    GroupNormGrads grads{Tensor(x.shape(), x.dtype()), Tensor({g.C}, x.dtype()), Tensor({g.C}, x.dtype())};
    dispatch(x.dtype(), [&](auto tag) {
        using T = decltype(tag);
        const T* px = x.data<T>();
        const T* pdy = dy.data<T>();
        const T* pg = gamma.data<T>();
        const T* pm = mean.data<T>();
        const T* pr = rstd.data<T>();
        T* pdx = grads.dx.data<T>();
        // Per (image, channel) partial sums of dy*xhat and dy; each (b, g) task owns its rows.
        std::vector<double> part_dg(static_cast<size_t>(g.B * g.C)), part_db(static_cast<size_t>(g.B * g.C));
        const int64_t n = g.cpg * g.HW;
        parallel_for(g.B * g.G, std::max<int64_t>(1, kGrainElementwise / n), [&](int64_t bg) {
            const double mu = pm[bg], rs = pr[bg];
            const int64_t b = bg / g.G, c0 = (bg % g.G) * g.cpg;
            double sum_g = 0, sum_gx = 0;  // sums of dy*gamma and dy*gamma*xhat over the group
            for (int64_t c = 0; c < g.cpg; ++c) {
                const T* xc = px + bg * n + c * g.HW;
                const T* dc = pdy + bg * n + c * g.HW;
                double sdy = 0, sdyx = 0;
                for (int64_t i = 0; i < g.HW; ++i) {
                    sdy += dc[i];
                    sdyx += dc[i] * (xc[i] - mu);
                }
                sdyx *= rs;
                part_db[b * g.C + c0 + c] = sdy;
                part_dg[b * g.C + c0 + c] = sdyx;
                sum_g += sdy * pg[c0 + c];
                sum_gx += sdyx * pg[c0 + c];
            }
            const double mean_g = sum_g / n, mean_gx = sum_gx / n;
            for (int64_t c = 0; c < g.cpg; ++c) {
                const T* xc = px + bg * n + c * g.HW;
                const T* dc = pdy + bg * n + c * g.HW;
                T* dxc = pdx + bg * n + c * g.HW;
                const double gm = pg[c0 + c];
                for (int64_t i = 0; i < g.HW; ++i) {
                    const double xhat = (xc[i] - mu) * rs;
                    dxc[i] = static_cast<T>(rs * (dc[i] * gm - mean_g - xhat * mean_gx));
                }
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

}  // namespace ddpm
