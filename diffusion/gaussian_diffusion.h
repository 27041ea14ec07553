// gaussian_diffusion.h: the forward process q and the model's reverse step p_theta.
//
// Names follow improved-diffusion's gaussian_diffusion.py, so the paper, that
// code and this one can be read side by side. Equations refer to docs/guide.md
// (and to Ho et al. 2020, "DDPM", where noted).
#pragma once

#include <functional>
#include <vector>

#include "autograd/variable.h"
#include "diffusion/schedule.h"

namespace ddpm {

// The variance of p_theta(x_{t-1} | x_t):
//   FixedSmall   beta~_t (the posterior variance; right when x_0 is a point)
//   FixedLarge   beta_t  (with beta~_1 at t = 0; right when x_0 ~ N(0, I))
//   LearnedRange the network outputs v in 2x the channels and
//                log sigma^2 = frac log beta_t + (1 - frac) log beta~_t, frac = (v + 1) / 2.
enum class ModelVarType { FixedSmall, FixedLarge, LearnedRange };
ModelVarType parse_var_type(const std::string& name);  // "fixed_small" | "fixed_large" | "learned_range"

// What the network's (first C) output channels predict:
//   Epsilon  the noise eps of x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps (Ho et al. 2020)
//   Velocity v = sqrt(abar_t) eps - sqrt(1 - abar_t) x_0 (Salimans & Ho 2022, "v-prediction")
enum class ModelMeanType { Epsilon, Velocity };
ModelMeanType parse_mean_type(const std::string& name);  // "eps" | "v"

// The network (eps_theta or v_theta, see ModelMeanType), called with timesteps of the original chain.
using DenoiseFn = std::function<Variable(const Variable& x_t, const Tensor& t)>;

struct PMeanVariance {
    Variable mean, variance, log_variance;  // of p_theta(x_{t-1} | x_t)
    Variable pred_xstart, pred_eps;
};

class GaussianDiffusion {
public:
    // timestep_map[i] is the original timestep of step i of a respaced chain (identity if empty).
    GaussianDiffusion(DiffusionSchedule schedule, ModelVarType var_type, std::vector<int64_t> timestep_map = {},
                      ModelMeanType mean_type = ModelMeanType::Epsilon);
    // A respaced copy visiting only `use` (see space_timesteps), for fewer-step sampling.
    GaussianDiffusion respaced(const std::vector<int64_t>& use) const;

    const DiffusionSchedule& schedule() const { return s_; }
    int64_t num_timesteps() const { return s_.T; }
    ModelVarType var_type() const { return var_type_; }
    ModelMeanType mean_type() const { return mean_type_; }
    const std::vector<int64_t>& timestep_map() const { return map_; }

    // Eq. (4): x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps.
    Variable q_sample(const Variable& x_start, const Tensor& t, const Tensor& noise) const;
    // q(x_t | x_0): mean sqrt(abar_t) x_0, variance 1 - abar_t, and its log.
    struct Gaussian {
        Variable mean, variance, log_variance;
    };
    Gaussian q_mean_variance(const Variable& x_start, const Tensor& t) const;
    // Eq. (6)-(7): q(x_{t-1} | x_t, x_0) = N(coef1 x_0 + coef2 x_t, beta~_t), log variance clipped.
    Gaussian q_posterior_mean_variance(const Variable& x_start, const Variable& x_t, const Tensor& t) const;

    // Eq. (4) solved for x_0: x_0 = sqrt(1/abar_t) x_t - sqrt(1/abar_t - 1) eps.
    Variable predict_xstart_from_eps(const Variable& x_t, const Tensor& t, const Variable& eps) const;
    // ... and for eps: eps = (sqrt(1/abar_t) x_t - x_0) / sqrt(1/abar_t - 1).
    Variable predict_eps_from_xstart(const Variable& x_t, const Tensor& t, const Variable& x_start) const;
    // v = sqrt(abar_t) eps - sqrt(1 - abar_t) x_0 solved for x_0 with Eq. (4): x_0 = sqrt(abar_t) x_t - sqrt(1 - abar_t) v.
    Variable predict_xstart_from_v(const Variable& x_t, const Tensor& t, const Variable& v) const;
    // What the network learns to output for (x_0, eps) at t: eps, or v = sqrt(abar_t) eps - sqrt(1 - abar_t) x_0.
    Tensor training_target(const Tensor& x_start, const Tensor& t, const Tensor& noise) const;

    // Runs the model (mapping t to the original chain) and forms p_theta(x_{t-1} | x_t):
    // mean = mu~_t(pred_x0, x_t) (Eq. 11 in the eps parametrisation), variance per var_type.
    // clip_denoised clamps pred_x0 to [-1, 1] (on for sampling, off inside training losses).
    PMeanVariance p_mean_variance(const DenoiseFn& model, const Variable& x_t, const Tensor& t,
                                  bool clip_denoised) const;
    // The same from an already computed model output (B, C or 2C, H, W).
    PMeanVariance p_mean_variance_from_output(const Variable& model_output, const Variable& x_t, const Tensor& t,
                                              bool clip_denoised) const;

    // coef(arr, t, x): arr[t_b] for each image b, shaped (B, 1, ..., 1) in x's dtype so that
    // it broadcasts against x. It is the a_t of every formula "a_t x" below.
    Tensor coef(const std::vector<double>& arr, const Tensor& t, const Tensor& like) const;
    Tensor coef(const std::vector<double>& arr, const Tensor& t, const Variable& like) const {
        return coef(arr, t, like.data());
    }
    // The model's timesteps for chain steps t.
    Tensor model_timesteps(const Tensor& t) const;

private:
    // Sets p.variance and p.log_variance at t; v is the network's variance output (LearnedRange only).
    void p_variance(const Variable& v, const Tensor& t, const Variable& x_t, PMeanVariance& p) const;

    DiffusionSchedule s_;
    ModelVarType var_type_;
    std::vector<int64_t> map_;
    ModelMeanType mean_type_;
    std::vector<double> fixed_large_variance_, fixed_large_log_variance_;
    std::vector<double> log_betas_;
};

}  // namespace ddpm
