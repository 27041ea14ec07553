// training_losses.cpp
#include "diffusion/training_losses.h"

#include <stdexcept>

#include "autograd/ops.h"
#include "diffusion/losses.h"

namespace ddpm {

LossType parse_loss_type(const std::string& name) {
    if (name == "simple") return LossType::Simple;
    if (name == "hybrid") return LossType::Hybrid;
    throw std::invalid_argument("unknown loss '" + name + "' (simple or hybrid)");
}

// guide.md §9: L_simple = || eps - eps_theta(x_t, t) ||^2 (and L_hybrid, guide.md §12).
TrainingLosses training_losses(const GaussianDiffusion& d, const DenoiseFn& model, const Tensor& x_start,
                               const Tensor& t, const Tensor& noise, LossType type, double lambda) {
    Variable x_t = d.q_sample(Variable(x_start), t, noise);
    Variable out = model(x_t, d.model_timesteps(t));
    const int64_t C = x_start.size(1);
    TrainingLosses r;
    if (type == LossType::Hybrid) {
        if (d.var_type() != ModelVarType::LearnedRange)
            throw std::invalid_argument("the hybrid loss trains a learned-range variance (2x output channels)");
        Variable eps = narrow(out, 1, 0, C);
        // The VLB term trains only the variance: the mean half of the output is detached.
        Variable frozen = concat({eps.detach(), narrow(out, 1, C, C)}, 1);
        VbTerms vb = vb_terms_bpd(d, frozen, x_start, x_t, t, /*clip_denoised=*/false);
        r.vb = vb.output * (lambda * static_cast<double>(d.num_timesteps()));
        r.mse = mean_flat(pow(Variable(noise) - eps, 2.0));
        r.loss = r.mse + r.vb;
    } else {
        r.mse = mean_flat(pow(Variable(noise) - out, 2.0));
        r.loss = r.mse;
    }
    return r;
}

}  // namespace ddpm
