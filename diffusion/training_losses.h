// training_losses.h: what the network is trained on.
#pragma once

#include "diffusion/gaussian_diffusion.h"
#include "diffusion/vlb.h"

namespace ddpm {

enum class LossType {
    Simple,  // L_simple = || eps - eps_theta(x_t, t) ||^2, mean over all elements (DDPM Eq. 14)
    Hybrid,  // L_simple + lambda L_vlb, lambda = 0.001, the VLB term seeing the mean as a constant
};
LossType parse_loss_type(const std::string& name);  // "simple" | "hybrid"

struct TrainingLosses {
    Variable loss;  // (B) per image: mse (+ vb for hybrid)
    Variable mse;   // (B)
    Variable vb;    // (B), hybrid only: lambda * T * L_{t-1}, so its mean over t is lambda * L_vlb
};

// x_t = q_sample(x_start, t, noise), one model call, and the loss per image.
// For Hybrid (learned-range variance) L_vlb = sum over t of the terms is estimated by
// T times the term at the sampled t; with lambda = 0.001 and T = 1000 that is the
// term itself, as in improved-diffusion.
TrainingLosses training_losses(const GaussianDiffusion& d, const DenoiseFn& model, const Tensor& x_start,
                               const Tensor& t, const Tensor& noise, LossType type, double lambda = 0.001);

}  // namespace ddpm
