// ode_samplers.h: few-step samplers that integrate the probability-flow ODE (or, for
// DPM-Solver++ with eta > 0, the reverse SDE) of the diffusion with a higher-order method,
// on the same eps- or v-predicting network.
//
// Both read the network through its x_0 prediction, x0_hat = (x_t - sqrt(1 - abar) eps) / sqrt(abar)
// or sqrt(abar) x_t - sqrt(1 - abar) v (clipped to [-1, 1] when opt.clip_denoised), and walk the chain of the full
// (not respaced) diffusion `d`, whose timesteps the network was trained on.
#pragma once

#include "diffusion/samplers.h"

namespace ddpm {

// DPM-Solver++(2M) (Lu et al. 2022, "DPM-Solver++", Algorithm 2): a second-order multistep
// method in lambda = log(alpha / sigma) (alpha = sqrt(abar), sigma = sqrt(1 - abar)) on the
// data prediction. With h_i = lambda_i - lambda_{i-1} and r_i = h_{i-1} / h_i,
//   D_i = (1 + 1/(2 r_i)) x0_hat_{i-1} - 1/(2 r_i) x0_hat_{i-2}   (first step, last step: D_i = x0_hat_{i-1})
//   x_i = (sigma_i / sigma_{i-1}) x_{i-1} - alpha_i (e^{-h_i} - 1) D_i.
// `steps` model calls at timesteps uniform in lambda (their spacing for small images), from
// T-1 down to 0; the call at 0 ends the chain at noise level 0, x = x0_hat (as DDIM's last step).
//
// eta > 0 solves the reverse SDE instead (DPM-Solver++(2M) SDE, Lu et al. 2022, Appendix; eta = 1
// is the SDE, between them the noise is scaled as DDIM's eta scales it):
//   x_i = (sigma_i / sigma_{i-1}) e^{-eta h_i} x_{i-1} + alpha_i (1 - e^{-(1 + eta) h_i}) D_i
//         + sigma_i sqrt(1 - e^{-2 eta h_i}) z,   z ~ N(0, I),
// which for eta = 0 is the line above. The noise added at each step corrects the network's
// errors instead of carrying them to the end, as DDPM's does.
SampleResult dpm_solver_pp_2m_sample_loop(const GaussianDiffusion& d, const DenoiseFn& model, const Shape& shape,
                                          Generator& gen, int64_t steps, const SampleOptions& opt = {}, double eta = 0);
// The n timesteps it calls the network at: decreasing, distinct, T-1 first and 0 last.
std::vector<int64_t> lambda_uniform_timesteps(const DiffusionSchedule& s, int64_t n);

// Heun's second-order method on the deterministic ODE of Karras et al. 2022 ("Elucidating
// the Design Space", Algorithm 1 with S_churn = 0): in x~ = x_t / alpha and
// s = sigma / alpha, dx~/ds = (x~ - D(x~, s)) / s with D = x0_hat. Noise levels
//   s_i = (s_max^(1/rho) + i / (N-1) (s_min^(1/rho) - s_max^(1/rho)))^rho, rho = 7, then s_N = 0,
// between the chain's own s at T-1 and at 0; the network is called at the fractional
// timestep whose log s is interpolated. N steps take 2N - 1 model calls: `calls` gives N = (calls + 1) / 2.
SampleResult heun_sample_loop(const GaussianDiffusion& d, const DenoiseFn& model, const Shape& shape, Generator& gen,
                              int64_t calls, const SampleOptions& opt = {});
// Karras et al.'s noise levels (N of them, then 0) between s_max and s_min.
std::vector<double> karras_sigmas(double s_min, double s_max, int64_t n, double rho = 7.0);

}  // namespace ddpm
