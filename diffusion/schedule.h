// schedule.h: the noise schedule beta_t and every array derived from it, in float64.
//
// Time runs t = 0 .. T-1 in code (the paper's t = 1 .. T). With
// alpha_t = 1 - beta_t and abar_t = prod_{s<=t} alpha_s:
//   q(x_t | x_{t-1}) = N(sqrt(alpha_t) x_{t-1}, beta_t I)                    (forward step)
//   q(x_t | x_0)     = N(sqrt(abar_t) x_0, (1 - abar_t) I)                   (closed form)
//   q(x_{t-1} | x_t, x_0) = N(mu~_t, beta~_t I),                             (posterior)
//     mu~_t   = coef1_t x_0 + coef2_t x_t,
//     coef1_t = sqrt(abar_{t-1}) beta_t / (1 - abar_t),
//     coef2_t = sqrt(alpha_t) (1 - abar_{t-1}) / (1 - abar_t),
//     beta~_t = (1 - abar_{t-1}) beta_t / (1 - abar_t).
#pragma once

#include <string>
#include <vector>

namespace ddpm {

enum class ScheduleKind { Linear, Cosine };

// Linear: beta from 1e-4 to 0.02 (Ho et al.), both scaled by 1000/T so that any T
// spans the same noise levels. Cosine (Nichol & Dhariwal): abar(t) =
// cos^2(((t/T + s) / (1 + s)) pi/2), s = 0.008, beta_t = min(1 - abar(t+1)/abar(t), 0.999).
std::vector<double> make_betas(ScheduleKind kind, int64_t T);
ScheduleKind parse_schedule(const std::string& name);  // "linear" | "cosine"

struct DiffusionSchedule {
    int64_t T = 0;
    std::vector<double> betas, alphas, alphas_cumprod, alphas_cumprod_prev, alphas_cumprod_next;
    std::vector<double> sqrt_alphas_cumprod, sqrt_one_minus_alphas_cumprod, log_one_minus_alphas_cumprod;
    std::vector<double> sqrt_recip_alphas_cumprod, sqrt_recipm1_alphas_cumprod;
    std::vector<double> posterior_variance;               // beta~_t (0 at t = 0)
    std::vector<double> posterior_log_variance_clipped;   // log beta~_t with entry 0 replaced by entry 1
    std::vector<double> posterior_mean_coef1, posterior_mean_coef2;

    static DiffusionSchedule from_betas(std::vector<double> betas);
};

// Timesteps to keep when a chain is shortened (improved-diffusion's space_timesteps):
//   "ddimN"      N steps 0, k, 2k, ... with the integer stride k that gives exactly N
//   "trailingN"  N steps ending at T-1: round(T - i T/N) - 1 for i = 0..N-1
//   "N"          N steps evenly spread over [0, T-1], rounded
std::vector<int64_t> space_timesteps(int64_t T, const std::string& spec);

// The schedule of the chain that visits only `use` (sorted ascending) with the
// same abar at each kept step: beta'_i = 1 - abar_{use[i]} / abar_{use[i-1]}.
DiffusionSchedule respace(const DiffusionSchedule& base, const std::vector<int64_t>& use);

}  // namespace ddpm
