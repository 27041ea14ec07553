// training_losses.h: what the network is trained on.
#pragma once

#include "diffusion/gaussian_diffusion.h"
#include "diffusion/vlb.h"

namespace ddpm {

enum class LossType {
    Simple,  // L_simple = || eps - eps_theta(x_t, t) ||^2, mean over all elements (DDPM Eq. 14)
             // (|| v - v_theta ||^2 for a Velocity model)
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
// term itself, as in improved-diffusion. min_snr_gamma > 0 weights each image's mse by
// min_snr_weight.
TrainingLosses training_losses(const GaussianDiffusion& d, const DenoiseFn& model, const Tensor& x_start,
                               const Tensor& t, const Tensor& noise, LossType type, double lambda = 0.001,
                               double min_snr_gamma = 0);

// Min-SNR-gamma (Hang et al. 2023): the mse at t weighted so that it counts as the x_0
// error times min(SNR_t, gamma), SNR_t = abar_t / (1 - abar_t). || eps - eps_theta ||^2 is
// SNR_t || x_0 - x0_hat ||^2 and || v - v_theta ||^2 is (SNR_t + 1) || x_0 - x0_hat ||^2, so the
// weight is min(SNR_t, gamma) / SNR_t for eps and min(SNR_t, gamma) / (SNR_t + 1) for v:
// the easy low-noise steps no longer dominate the gradient.
double min_snr_weight(double abar, double gamma, ModelMeanType mean_type);

}  // namespace ddpm
