// sampling.h: the U-Net as the diffusion code sees it, and drawing images with any sampler.
// Used by train (its sample grids), sample, eval and bench.
#pragma once

#include <string>

#include "diffusion/guidance.h"
#include "diffusion/samplers.h"
#include "nn/unet.h"

namespace ddpm {

// eps_theta(x_t, t) or v_theta (and, for a learned variance, its interpolation): the network as a DenoiseFn.
DenoiseFn denoiser(UNet& model);
// A class-conditional network with the labels (B) of one batch fixed, guided as g says (diffusion/guidance.h).
DenoiseFn denoiser(UNet& model, const Tensor& labels, const Guidance& g = {});

// Which reverse process to run, and over how many steps.
struct SamplerSpec {
    std::string sampler = "ddim";  // ddpm (ancestral) | ddim | dpmpp2m (DPM-Solver++(2M)) | heun (Karras et al.)
    int64_t steps = 0;             // model calls; 0: 50 for ddim, 20 for dpmpp2m and heun, the full chain for ddpm
    std::string spacing;           // ddim: "ddim" (evenly from 0, the default) or "trailing"
    double eta = 0.0;              // noise of ddim and dpmpp2m: 0 deterministic, 1 like DDPM
    double guidance = 0.0;         // classifier-free guidance weight w of a class-conditional model (0: none)
    std::vector<int64_t> guidance_interval;  // {t_min, t_max}: guide only there (empty: the whole chain)
};

// The guidance spec.guidance and spec.guidance_interval ask for (an interval must be T_MIN <= T_MAX).
Guidance guidance_of(const SamplerSpec& spec);

// Network calls of the ODE samplers (dpmpp2m, heun): spec.steps, or 20.
inline int64_t ode_calls(const SamplerSpec& spec) { return spec.steps ? spec.steps : 20; }

// The chain the sampler walks: the full one, or `base` respaced to spec.steps (guide.md §10);
// the ODE samplers (dpmpp2m, heun) pick their own timesteps on the full chain.
GaussianDiffusion sampling_chain(const GaussianDiffusion& base, const SamplerSpec& spec);

// `num` images (num, C, H, W) drawn from `model` (put it in eval mode first) in
// batches of `batch`, clamped to [-1, 1]; `trajectory` (if not null) gets the first
// batch's chain for a denoising strip. For a class-conditional model, `labels` (num)
// holds the class of each image (undefined: "no class", the unconditional model).
Tensor sample_images(UNet& model, const GaussianDiffusion& chain, const SamplerSpec& spec, int64_t num, int64_t batch,
                     Generator& gen, SampleResult* trajectory = nullptr,
                     const std::function<void(int64_t, int64_t)>& progress = {}, const Tensor& labels = Tensor());

// Labels 0, 1, ..., K-1, 0, 1, ... for num images: every class equally often.
Tensor cycled_labels(int64_t num, int64_t num_classes);

}  // namespace ddpm
