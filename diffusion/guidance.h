// guidance.h: classifier-free guidance (Ho & Salimans 2021; guide.md §16).
#pragma once

#include "diffusion/gaussian_diffusion.h"

namespace ddpm {

// A class-conditional network: y (B) holds a label in [0, K] per image, K meaning "no class".
using ConditionalDenoiseFn = std::function<Variable(const Variable& x_t, const Tensor& t, const Tensor& y)>;

// How strongly, and where in the chain, to guide: weight w at the images whose timestep t
// lies in [t_min, t_max] (timesteps of the original chain), the plain conditional model elsewhere.
// Guiding only a middle stretch of noise levels keeps most of guidance's gain in class
// fidelity at a smaller loss of variety (Kynkäänniemi et al. 2024, "guidance in a limited interval").
struct Guidance {
    double w = 0;
    double t_min = 0, t_max = 1e300;
};

// The network with the labels of one batch fixed, as the DenoiseFn every sampler takes.
// With guidance weight w > 0 its output is
//   out = (1 + w) out(x_t, t, y) - w out(x_t, t, no class)
// on the first `channels` channels (eps, or v: with x_t fixed both are affine in one another, and weights
// summing to 1 commute with an affine map, so guiding v is guiding eps), and the conditional output on any
// further channels (a learned variance, as GLIDE). The two outputs come from one network call on
// the batch [x_t; x_t] with labels [y; no class]. w = 0, or t outside the interval, is the plain
// conditional model (one call on x_t alone).
DenoiseFn guided_denoiser(ConditionalDenoiseFn model, Tensor labels, int64_t null_label, Guidance g, int64_t channels);

}  // namespace ddpm
