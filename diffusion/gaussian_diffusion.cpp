// gaussian_diffusion.cpp
#include "diffusion/gaussian_diffusion.h"

#include <fmt/format.h>

#include <cmath>
#include <stdexcept>

#include "autograd/ops.h"
#include "tensor/shape_ops.h"

namespace ddpm {

ModelVarType parse_var_type(const std::string& name) {
    if (name == "fixed_small") return ModelVarType::FixedSmall;
    if (name == "fixed_large") return ModelVarType::FixedLarge;
    if (name == "learned_range") return ModelVarType::LearnedRange;
    throw std::invalid_argument("unknown variance type '" + name + "' (fixed_small, fixed_large, learned_range)");
}

GaussianDiffusion::GaussianDiffusion(DiffusionSchedule schedule, ModelVarType var_type, std::vector<int64_t> map)
    : s_(std::move(schedule)), var_type_(var_type), map_(std::move(map)) {
    if (map_.empty())
        for (int64_t t = 0; t < s_.T; ++t) map_.push_back(t);
    if (static_cast<int64_t>(map_.size()) != s_.T) throw std::invalid_argument("diffusion: timestep map of the wrong length");
    // Fixed-large: beta_t, except beta~_1 at t = 0 so that the decoder's variance is not
    // beta_0 (tiny) but the posterior's (improved-diffusion's choice).
    for (int64_t t = 0; t < s_.T; ++t) {
        fixed_large_variance_.push_back(t == 0 ? s_.posterior_variance[1] : s_.betas[t]);
        fixed_large_log_variance_.push_back(std::log(fixed_large_variance_.back()));
        log_betas_.push_back(std::log(s_.betas[t]));
    }
}

GaussianDiffusion GaussianDiffusion::respaced(const std::vector<int64_t>& use) const {
    std::vector<int64_t> map;
    for (int64_t t : use) map.push_back(map_.at(static_cast<size_t>(t)));
    return GaussianDiffusion(respace(s_, use), var_type_, map);
}

Tensor GaussianDiffusion::extract(const std::vector<double>& arr, const Tensor& t, int64_t ndim, DType dtype) const {
    if (!(t.dim() == 1)) fail("diffusion", "timesteps " + t.describe() + " are not (B)");
    const int64_t B = t.size(0);
    Shape shape(static_cast<size_t>(ndim), 1);
    shape[0] = B;
    const Tensor tt = t.to(DType::F64);
    const double* pt = tt.data<double>();
    Tensor values(shape, dtype);
    for (int64_t b = 0; b < B; ++b) {
        const int64_t ti = static_cast<int64_t>(pt[b]);
        if (ti != pt[b] || ti < 0 || ti >= s_.T)
            fail("diffusion", fmt::format("timestep {} is not an integer in [0, {})", pt[b], s_.T));
        values.set_flat(b, arr[static_cast<size_t>(ti)]);
    }
    return values;
}

Tensor GaussianDiffusion::model_timesteps(const Tensor& t) const {
    const Tensor tt = t.to(DType::F64);
    Tensor mapped(t.shape(), t.dtype());
    for (int64_t b = 0; b < t.numel(); ++b)
        mapped.set_flat(b, static_cast<double>(map_.at(static_cast<size_t>(tt.data<double>()[b]))));
    return mapped;
}

// guide.md §6: x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps.
Variable GaussianDiffusion::q_sample(const Variable& x_start, const Tensor& t, const Tensor& noise) const {
    if (!(noise.shape() == x_start.shape())) fail("q_sample", "noise " + noise.describe() + " for x " + x_start.data().describe());
    const int64_t nd = x_start.dim();
    const DType dt = x_start.dtype();
    return x_start * Variable(extract(s_.sqrt_alphas_cumprod, t, nd, dt)) +
           Variable(noise) * Variable(extract(s_.sqrt_one_minus_alphas_cumprod, t, nd, dt));
}

// guide.md §6: q(x_t | x_0) = N(sqrt(abar_t) x_0, (1 - abar_t) I).
GaussianDiffusion::Gaussian GaussianDiffusion::q_mean_variance(const Variable& x_start, const Tensor& t) const {
    const int64_t nd = x_start.dim();
    const DType dt = x_start.dtype();
    Tensor var = extract(s_.alphas_cumprod, t, nd, dt);
    for (int64_t i = 0; i < var.numel(); ++i) var.set_flat(i, 1.0 - var.flat(i));
    return {x_start * Variable(extract(s_.sqrt_alphas_cumprod, t, nd, dt)), Variable(var),
            Variable(extract(s_.log_one_minus_alphas_cumprod, t, nd, dt))};
}

// guide.md §7: mu~_t = coef1 x_0 + coef2 x_t, beta~_t = (1 - abar_{t-1}) beta_t / (1 - abar_t).
GaussianDiffusion::Gaussian GaussianDiffusion::q_posterior_mean_variance(const Variable& x_start, const Variable& x_t,
                                                                         const Tensor& t) const {
    const int64_t nd = x_t.dim();
    const DType dt = x_t.dtype();
    Variable mean = x_start * Variable(extract(s_.posterior_mean_coef1, t, nd, dt)) +
                    x_t * Variable(extract(s_.posterior_mean_coef2, t, nd, dt));
    return {mean, Variable(extract(s_.posterior_variance, t, nd, dt)),
            Variable(extract(s_.posterior_log_variance_clipped, t, nd, dt))};
}

// guide.md §9: x_0 = sqrt(1/abar_t) x_t - sqrt(1/abar_t - 1) eps.
Variable GaussianDiffusion::predict_xstart_from_eps(const Variable& x_t, const Tensor& t, const Variable& eps) const {
    const int64_t nd = x_t.dim();
    const DType dt = x_t.dtype();
    return x_t * Variable(extract(s_.sqrt_recip_alphas_cumprod, t, nd, dt)) -
           eps * Variable(extract(s_.sqrt_recipm1_alphas_cumprod, t, nd, dt));
}

Variable GaussianDiffusion::predict_eps_from_xstart(const Variable& x_t, const Tensor& t, const Variable& x_start) const {
    const int64_t nd = x_t.dim();
    const DType dt = x_t.dtype();
    return (x_t * Variable(extract(s_.sqrt_recip_alphas_cumprod, t, nd, dt)) - x_start) /
           Variable(extract(s_.sqrt_recipm1_alphas_cumprod, t, nd, dt));
}

// guide.md §9: mu_theta = (x_t - beta_t / sqrt(1 - abar_t) eps_theta) / sqrt(alpha_t), via x0_hat.
PMeanVariance GaussianDiffusion::p_mean_variance(const DenoiseFn& model, const Variable& x_t, const Tensor& t,
                                                 bool clip_denoised) const {
    return p_mean_variance_from_output(model(x_t, model_timesteps(t)), x_t, t, clip_denoised);
}

// guide.md §12: log sigma^2 = f log beta_t + (1 - f) log beta~_t, f = (v + 1) / 2.
PMeanVariance GaussianDiffusion::p_mean_variance_from_output(const Variable& out, const Variable& x_t, const Tensor& t,
                                                             bool clip_denoised) const {
    const int64_t nd = x_t.dim(), C = x_t.size(1);
    const DType dt = x_t.dtype();
    PMeanVariance p;
    Variable eps = out;
    if (var_type_ == ModelVarType::LearnedRange) {
        if (out.size(1) != 2 * C)
            fail("p_mean_variance", fmt::format("learned-range variance needs {} output channels (eps and v), got {}",
                                                2 * C, out.data().describe()));
        eps = narrow(out, 1, 0, C);
        Variable frac = (narrow(out, 1, C, C) + 1.0) * 0.5;  // v in [-1, 1] -> [0, 1]
        Variable min_log(extract(s_.posterior_log_variance_clipped, t, nd, dt));
        Variable max_log(extract(log_betas_, t, nd, dt));
        p.log_variance = frac * max_log + (frac * -1.0 + 1.0) * min_log;
        p.variance = exp(p.log_variance);
    } else {
        if (out.size(1) != C)
            fail("p_mean_variance", fmt::format("fixed variance needs {} output channels, got {}", C, out.data().describe()));
        const bool large = var_type_ == ModelVarType::FixedLarge;
        p.variance = Variable(extract(large ? fixed_large_variance_ : s_.posterior_variance, t, nd, dt));
        p.log_variance = Variable(extract(large ? fixed_large_log_variance_ : s_.posterior_log_variance_clipped, t, nd, dt));
    }
    p.pred_xstart = predict_xstart_from_eps(x_t, t, eps);
    if (clip_denoised) {
        p.pred_xstart = clamp(p.pred_xstart, -1.0, 1.0);
        p.pred_eps = predict_eps_from_xstart(x_t, t, p.pred_xstart);
    } else {
        p.pred_eps = eps;
    }
    p.mean = q_posterior_mean_variance(p.pred_xstart, x_t, t).mean;
    return p;
}

}  // namespace ddpm
