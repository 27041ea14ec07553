// samplers.h: drawing images by running the reverse process from pure noise.
#pragma once

#include <functional>
#include <vector>

#include "diffusion/gaussian_diffusion.h"
#include "tensor/random.h"

namespace ddpm {

struct SampleOptions {
    bool clip_denoised = true;
    DType dtype = DType::F32;
    // Keep x_t after every step (for a denoising strip); trajectory[k] is the state
    // after k steps, trajectory[0] the starting noise.
    bool keep_trajectory = false;
    std::function<void(int64_t done, int64_t total)> progress;
};

struct SampleResult {
    Tensor x0;  // (B, C, H, W)
    std::vector<Tensor> trajectory;
    std::vector<int64_t> trajectory_t;  // the chain timestep each trajectory entry sits at (-1 for x_0)
};

// DDPM ancestral sampling (Algorithm 2): x_{t-1} = mu_theta(x_t, t) + sigma_t z, z ~ N(0, I),
// no noise at the last step; sigma_t^2 from the diffusion's fixed or learned variance.
// Pass a respaced diffusion for fewer steps.
SampleResult p_sample_loop(const GaussianDiffusion& d, const DenoiseFn& model, const Shape& shape, Generator& gen,
                           const SampleOptions& opt = {});
// One step: x_{t-1} from x_t.
Tensor p_sample(const GaussianDiffusion& d, const DenoiseFn& model, const Tensor& x_t, int64_t t, Generator& gen,
                bool clip_denoised);

// DDIM (Song et al., 2021, Eq. 12) over the steps of a (respaced) diffusion:
//   x_{t-1} = sqrt(abar_{t-1}) x0_hat + sqrt(1 - abar_{t-1} - sigma_t^2) eps_hat + sigma_t z,
//   sigma_t = eta sqrt((1 - abar_{t-1}) / (1 - abar_t)) sqrt(1 - abar_t / abar_{t-1}).
// eta = 0 is deterministic; eta = 1 matches DDPM's fixed-small variance.
SampleResult ddim_sample_loop(const GaussianDiffusion& d, const DenoiseFn& model, const Shape& shape, Generator& gen,
                              double eta = 0.0, const SampleOptions& opt = {});
Tensor ddim_sample(const GaussianDiffusion& d, const DenoiseFn& model, const Tensor& x_t, int64_t t, Generator& gen,
                   double eta, bool clip_denoised);

}  // namespace ddpm
