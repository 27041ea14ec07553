// vlb.h: the variational bound on -log p(x_0), term by term, in bits per dimension.
//
//   L = L_T + sum_{t=2..T} L_{t-1} + L_0                                   (ELBO, Eq. 5 of DDPM)
//   L_T     = KL(q(x_T | x_0) || N(0, I))                 prior_bpd
//   L_{t-1} = KL(q(x_{t-1} | x_t, x_0) || p(x_{t-1} | x_t)) vb_terms_bpd, t >= 1 in code
//   L_0     = -log p(x_0 | x_1), discretised decoder       vb_terms_bpd, t = 0 in code
// Each term is averaged over the dimensions of an image and divided by ln 2.
#pragma once

#include <functional>
#include <vector>

#include "diffusion/gaussian_diffusion.h"
#include "tensor/random.h"

namespace ddpm {

struct VbTerms {
    Variable output;       // (B): the decoder NLL where t = 0, the KL elsewhere, bits/dim
    Variable pred_xstart;  // the model's x_0 estimate at this step
};
// From a model output already computed at (x_t, t).
VbTerms vb_terms_bpd(const GaussianDiffusion& d, const Variable& model_output, const Tensor& x_start,
                     const Variable& x_t, const Tensor& t, bool clip_denoised);

// L_T per image, in bits/dim (close to 0 for a schedule that destroys the data).
Tensor prior_bpd(const GaussianDiffusion& d, const Tensor& x_start);

struct BpdResult {
    Tensor total_bpd;  // (B): prior + every term
    Tensor prior;      // (B)
    Tensor terms;      // (B, T): terms[:, 0] is L_0, terms[:, t] is L_t for t >= 1
    Tensor xstart_mse, eps_mse;  // (B, T): how well x_0 and eps were predicted at each t
};
// The whole bound: every one of the T terms for every image (T model calls).
// progress(t_done, T) is called after each timestep when given.
BpdResult calc_bpd_loop(const GaussianDiffusion& d, const DenoiseFn& model, const Tensor& x_start, Generator& gen,
                        bool clip_denoised = false, const std::function<void(int64_t, int64_t)>& progress = {});

struct BpdEstimate {
    Tensor total_bpd;  // (B): prior + T * mean of the K sampled terms, an unbiased estimate of the bound
    double mean = 0;   // over the batch
    double stderr_ = 0;  // standard error of `mean` (over images and sampled timesteps)
};
// Unbiased estimate from K timesteps drawn uniformly (with replacement) per image.
BpdEstimate estimate_bpd(const GaussianDiffusion& d, const DenoiseFn& model, const Tensor& x_start, int64_t K,
                         Generator& gen, bool clip_denoised = false);

}  // namespace ddpm
