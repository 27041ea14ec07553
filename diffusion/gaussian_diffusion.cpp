// gaussian_diffusion.cpp
#include "diffusion/gaussian_diffusion.h"

#include <fmt/format.h>

#include <cmath>
#include <stdexcept>

#include "autograd/ops.h"
#include "tensor/elementwise.h"
#include "tensor/shape_ops.h"

namespace ddpm {

ModelVarType parse_var_type(const std::string& name) {
    if (name == "fixed_small") return ModelVarType::FixedSmall;
    if (name == "fixed_large") return ModelVarType::FixedLarge;
    if (name == "learned_range") return ModelVarType::LearnedRange;
    throw std::invalid_argument("unknown variance type '" + name + "' (fixed_small, fixed_large, learned_range)");
}

ModelMeanType parse_mean_type(const std::string& name) {
    if (name == "eps") return ModelMeanType::Epsilon;
    if (name == "v") return ModelMeanType::Velocity;
    throw std::invalid_argument("unknown prediction '" + name + "' (eps, v)");
}

GaussianDiffusion::GaussianDiffusion(DiffusionSchedule schedule, ModelVarType var_type, std::vector<int64_t> map,
                                     ModelMeanType mean_type)
    : s_(std::move(schedule)), var_type_(var_type), map_(std::move(map)), mean_type_(mean_type) {
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
    return GaussianDiffusion(respace(s_, use), var_type_, map, mean_type_);
}

// guide.md §6: arr[t_b] for each image b, shaped (B, 1, ..., 1) to broadcast against x.
Tensor GaussianDiffusion::coef(const std::vector<double>& arr, const Tensor& t, const Tensor& like) const {
    DDPM_CHECK(t.dim() == 1, "diffusion", "timesteps " + t.describe() + " are not (B)");
    const int64_t B = t.size(0);
    Shape shape(static_cast<size_t>(like.dim()), 1);
    shape[0] = B;
    const Tensor tt = t.to(DType::F64);
    const double* pt = tt.data<double>();
    Tensor values(shape, like.dtype());
    for (int64_t b = 0; b < B; ++b) {
        const int64_t ti = static_cast<int64_t>(pt[b]);
        DDPM_CHECK(ti == pt[b] && ti >= 0 && ti < s_.T, "diffusion",
                   fmt::format("timestep {} is not an integer in [0, {})", pt[b], s_.T));
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

// guide.md §6, Eq. (4) of Ho et al. 2020: x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps.
Variable GaussianDiffusion::q_sample(const Variable& x_start, const Tensor& t, const Tensor& noise) const {
    DDPM_CHECK(noise.shape() == x_start.shape(), "q_sample",
               "noise " + noise.describe() + " for x " + x_start.data().describe());
    const Tensor sqrt_abar = coef(s_.sqrt_alphas_cumprod, t, x_start);
    const Tensor sqrt_one_minus_abar = coef(s_.sqrt_one_minus_alphas_cumprod, t, x_start);
    return x_start * sqrt_abar + Variable(noise) * sqrt_one_minus_abar;
}

// guide.md §6: q(x_t | x_0) = N(sqrt(abar_t) x_0, (1 - abar_t) I).
GaussianDiffusion::Gaussian GaussianDiffusion::q_mean_variance(const Variable& x_start, const Tensor& t) const {
    const Tensor abar = coef(s_.alphas_cumprod, t, x_start);
    return {x_start * coef(s_.sqrt_alphas_cumprod, t, x_start), Variable(1.0 - abar),
            Variable(coef(s_.log_one_minus_alphas_cumprod, t, x_start))};
}

// guide.md §7, Eq. (6)-(7) of Ho et al. 2020:
//   mu~_t = coef1 x_0 + coef2 x_t,  beta~_t = (1 - abar_{t-1}) beta_t / (1 - abar_t).
GaussianDiffusion::Gaussian GaussianDiffusion::q_posterior_mean_variance(const Variable& x_start, const Variable& x_t,
                                                                         const Tensor& t) const {
    const Tensor coef1 = coef(s_.posterior_mean_coef1, t, x_t), coef2 = coef(s_.posterior_mean_coef2, t, x_t);
    return {x_start * coef1 + x_t * coef2, Variable(coef(s_.posterior_variance, t, x_t)),
            Variable(coef(s_.posterior_log_variance_clipped, t, x_t))};
}

// guide.md §9, Eq. (4) solved for x_0: x_0 = sqrt(1/abar_t) x_t - sqrt(1/abar_t - 1) eps.
Variable GaussianDiffusion::predict_xstart_from_eps(const Variable& x_t, const Tensor& t, const Variable& eps) const {
    return x_t * coef(s_.sqrt_recip_alphas_cumprod, t, x_t) - eps * coef(s_.sqrt_recipm1_alphas_cumprod, t, x_t);
}

// The same solved for eps: eps = (sqrt(1/abar_t) x_t - x_0) / sqrt(1/abar_t - 1).
Variable GaussianDiffusion::predict_eps_from_xstart(const Variable& x_t, const Tensor& t, const Variable& x_start) const {
    return (x_t * coef(s_.sqrt_recip_alphas_cumprod, t, x_t) - x_start) / coef(s_.sqrt_recipm1_alphas_cumprod, t, x_t);
}

// guide.md §15: x_0 = sqrt(abar_t) x_t - sqrt(1 - abar_t) v, from v = sqrt(abar_t) eps - sqrt(1 - abar_t) x_0
// and Eq. (4) (Salimans & Ho 2022, Eq. 11 rewritten with alpha_t = sqrt(abar_t), sigma_t = sqrt(1 - abar_t)).
Variable GaussianDiffusion::predict_xstart_from_v(const Variable& x_t, const Tensor& t, const Variable& v) const {
    return x_t * coef(s_.sqrt_alphas_cumprod, t, x_t) - v * coef(s_.sqrt_one_minus_alphas_cumprod, t, x_t);
}

// guide.md §9 and §15: the regression target, eps or v = sqrt(abar_t) eps - sqrt(1 - abar_t) x_0.
Tensor GaussianDiffusion::training_target(const Tensor& x_start, const Tensor& t, const Tensor& noise) const {
    if (mean_type_ == ModelMeanType::Epsilon) return noise;
    return noise * coef(s_.sqrt_alphas_cumprod, t, x_start) - x_start * coef(s_.sqrt_one_minus_alphas_cumprod, t, x_start);
}

// guide.md §9: mu_theta = (x_t - beta_t / sqrt(1 - abar_t) eps_theta) / sqrt(alpha_t), via x0_hat.
PMeanVariance GaussianDiffusion::p_mean_variance(const DenoiseFn& model, const Variable& x_t, const Tensor& t,
                                                 bool clip_denoised) const {
    return p_mean_variance_from_output(model(x_t, model_timesteps(t)), x_t, t, clip_denoised);
}

// guide.md §12: the variance of p_theta(x_{t-1} | x_t). Fixed: beta_t (large) or beta~_t (small).
// Learned: the network's v in [-1, 1] interpolates the two bounds in log space,
//   log sigma^2 = f log beta_t + (1 - f) log beta~_t,  f = (v + 1) / 2   (Nichol & Dhariwal 2021, Eq. 15).
void GaussianDiffusion::p_variance(const Variable& v, const Tensor& t, const Variable& x_t, PMeanVariance& p) const {
    if (var_type_ == ModelVarType::LearnedRange) {
        const Variable f = (v + 1.0) * 0.5;
        const Tensor log_beta = coef(log_betas_, t, x_t);
        const Tensor log_beta_tilde = coef(s_.posterior_log_variance_clipped, t, x_t);
        p.log_variance = f * log_beta + (1.0 - f) * log_beta_tilde;
        p.variance = exp(p.log_variance);
        return;
    }
    const bool large = var_type_ == ModelVarType::FixedLarge;
    p.variance = Variable(coef(large ? fixed_large_variance_ : s_.posterior_variance, t, x_t));
    p.log_variance = Variable(coef(large ? fixed_large_log_variance_ : s_.posterior_log_variance_clipped, t, x_t));
}

// guide.md §9-§10: from the network's output, x0_hat = predict_xstart_from_eps (or _from_v) (clipped to
// [-1, 1] when sampling) and mu_theta = mu~_t(x0_hat, x_t), the posterior mean of Eq. (7);
// without clipping that is Eq. (11): (x_t - beta_t / sqrt(1 - abar_t) eps_theta) / sqrt(alpha_t).
PMeanVariance GaussianDiffusion::p_mean_variance_from_output(const Variable& out, const Variable& x_t, const Tensor& t,
                                                             bool clip_denoised) const {
    const int64_t C = x_t.size(1);
    const bool learned = var_type_ == ModelVarType::LearnedRange;
    DDPM_CHECK(out.size(1) == (learned ? 2 * C : C), "p_mean_variance",
               fmt::format("{} variance needs {} output channels{}, got {}", learned ? "learned-range" : "fixed",
                           learned ? 2 * C : C, learned ? " (mean and variance)" : "", out.data().describe()));
    const Variable mean_out = learned ? narrow(out, 1, 0, C) : out;  // eps_theta or v_theta
    PMeanVariance p;
    p_variance(learned ? narrow(out, 1, C, C) : Variable(), t, x_t, p);
    if (mean_type_ == ModelMeanType::Epsilon) {
        p.pred_xstart = predict_xstart_from_eps(x_t, t, mean_out);
        p.pred_eps = mean_out;
    } else {
        p.pred_xstart = predict_xstart_from_v(x_t, t, mean_out);
        p.pred_eps = predict_eps_from_xstart(x_t, t, p.pred_xstart);
    }
    if (clip_denoised) {
        p.pred_xstart = clamp(p.pred_xstart, -1.0, 1.0);
        p.pred_eps = predict_eps_from_xstart(x_t, t, p.pred_xstart);
    }
    p.mean = q_posterior_mean_variance(p.pred_xstart, x_t, t).mean;
    return p;
}

}  // namespace ddpm
