// toy2d.h: the 2-D toy problem: a mixture of 8 Gaussians on a circle, a small
// MLP diffusion model trained on it, and how close its samples come to the data.
#pragma once

#include <string>

#include "tensor/random.h"

namespace ddpm {

// (n, 2) points: 8 Gaussians (std 0.1) at radius 2, equal weights.
Tensor eight_gaussians(int64_t n, Generator& gen);

// Mean over the points of `a` of the distance to the nearest point of `b`.
double mean_nearest_distance(const Tensor& a, const Tensor& b);
// Fraction of points of `a` whose nearest mode centre is each of the 8 modes.
std::vector<double> mode_shares(const Tensor& a);

struct Toy2dResult {
    Tensor data, samples, noise;  // (n, 2) each
    double sample_distance = 0, noise_distance = 0;  // mean nearest-data distance
    std::vector<double> shares;
    double seconds = 0, final_loss = 0;
};
// Trains an MLP eps-network with L_simple (T = 200, linear schedule) and draws
// DDPM samples; `steps` Adam steps at batch 256.
Toy2dResult run_toy2d(int64_t steps, uint64_t seed);

// A scatter plot of data (blue) and samples (red).
void write_toy2d_plot(const std::string& path, const Toy2dResult& r);

}  // namespace ddpm
