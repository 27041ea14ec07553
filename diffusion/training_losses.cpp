// training_losses.cpp
#include "diffusion/training_losses.h"

#include <algorithm>
#include <stdexcept>

#include "autograd/ops.h"
#include "diffusion/losses.h"

namespace ddpm {

LossType parse_loss_type(const std::string& name) {
    if (name == "simple") return LossType::Simple;
    if (name == "hybrid") return LossType::Hybrid;
    throw std::invalid_argument("unknown loss '" + name + "' (simple or hybrid)");
}

// guide.md §15: min(SNR_t, gamma) / SNR_t (eps) or / (SNR_t + 1) (v), SNR_t = abar_t / (1 - abar_t).
double min_snr_weight(double abar, double gamma, ModelMeanType mean_type) {
    const double snr = abar / (1 - abar);
    return std::min(snr, gamma) / (mean_type == ModelMeanType::Epsilon ? snr : snr + 1);
}

// guide.md §9: L_simple = || eps - eps_theta(x_t, t) ||^2 (or v; and L_hybrid, guide.md §12).
TrainingLosses training_losses(const GaussianDiffusion& d, const DenoiseFn& model, const Tensor& x_start,
                               const Tensor& t, const Tensor& noise, LossType type, double lambda, double min_snr_gamma) {
    Variable x_t = d.q_sample(Variable(x_start), t, noise);
    Variable out = model(x_t, d.model_timesteps(t));
    const Variable target(d.training_target(x_start, t, noise));
    const int64_t C = x_start.size(1);
    const bool learned = d.var_type() == ModelVarType::LearnedRange;
    if (type == LossType::Hybrid && !learned)
        throw std::invalid_argument("the hybrid loss trains a learned-range variance (2x output channels)");
    Variable mean_out = learned ? narrow(out, 1, 0, C) : out;
    TrainingLosses r;
    r.mse = mean_flat(pow(target - mean_out, 2.0));
    if (min_snr_gamma > 0) {
        std::vector<double> w;
        for (double abar : d.schedule().alphas_cumprod) w.push_back(min_snr_weight(abar, min_snr_gamma, d.mean_type()));
        r.mse = r.mse * Variable(d.coef(w, t, x_start).reshape({-1}));
    }
    r.loss = r.mse;
    if (type == LossType::Hybrid) {
        // The VLB term trains only the variance: the mean half of the output is detached.
        Variable frozen = concat({mean_out.detach(), narrow(out, 1, C, C)}, 1);
        VbTerms vb = vb_terms_bpd(d, frozen, x_start, x_t, t, /*clip_denoised=*/false);
        r.vb = vb.output * (lambda * static_cast<double>(d.num_timesteps()));
        r.loss = r.mse + r.vb;
    }
    return r;
}

}  // namespace ddpm
