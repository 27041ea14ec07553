// ode_samplers.cpp
#include "diffusion/ode_samplers.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "autograd/ops.h"
#include "tensor/elementwise.h"
#include "tensor/shape_ops.h"

namespace ddpm {

namespace {
// At (possibly fractional) timestep t: x0_hat = (x_t - sqrt(1 - abar) eps) / sqrt(abar) from
// an eps model, x0_hat = sqrt(abar) x_t - sqrt(1 - abar) v from a v model.
Tensor predict_x0(const GaussianDiffusion& d, const DenoiseFn& model, const Tensor& x_t, double t, double abar, bool clip) {
    NoGradGuard no_grad;
    Tensor out = model(Variable(x_t), Tensor::full({x_t.size(0)}, t, x_t.dtype())).data();
    if (out.size(1) == 2 * x_t.size(1)) out = narrow(out, 1, 0, x_t.size(1));  // a learned variance's mean half
    const Tensor x0 = d.mean_type() == ModelMeanType::Epsilon ? (x_t - std::sqrt(1 - abar) * out) / std::sqrt(abar)
                                                              : std::sqrt(abar) * x_t - std::sqrt(1 - abar) * out;
    return clip ? clamp(x0, -1.0, 1.0) : x0;
}

double lambda_of(double abar) { return 0.5 * std::log(abar / (1 - abar)); }  // log(alpha / sigma)

void record(SampleResult& r, const SampleOptions& opt, const Tensor& x, int64_t t) {
    if (!opt.keep_trajectory) return;
    r.trajectory.push_back(x);
    r.trajectory_t.push_back(t);
}
}  // namespace

// guide.md §11: n timesteps uniform in lambda = log(alpha / sigma), from T-1 down to 0.
std::vector<int64_t> lambda_uniform_timesteps(const DiffusionSchedule& s, int64_t n) {
    DDPM_CHECK(n >= 1 && n <= s.T, "dpm_solver", fmt::format("{} steps for a chain of {}", n, s.T));
    if (n == 1) return {s.T - 1};
    const double hi = lambda_of(s.alphas_cumprod[s.T - 1]), lo = lambda_of(s.alphas_cumprod[0]);
    std::vector<int64_t> ts{s.T - 1};
    int64_t t = s.T - 1;
    for (int64_t i = 1; i < n; ++i) {  // the timestep whose lambda is nearest the i-th uniform point
        const double target = hi + (lo - hi) * double(i) / double(n - 1);
        while (t > 0 && std::abs(lambda_of(s.alphas_cumprod[t - 1]) - target) <= std::abs(lambda_of(s.alphas_cumprod[t]) - target))
            --t;
        t = std::min(t, ts.back() - 1);                    // strictly decreasing,
        t = std::max(t, n - 1 - i);                         // leaving room for the rest
        ts.push_back(t);
    }
    return ts;
}

// guide.md §11: DPM-Solver++(2M), and with eta > 0 its SDE form. Step i goes from ts[i-1]
// to ts[i] with the network called at ts[i-1]; the last call, at timestep 0, denoises:
// x = x0_hat (lambda = +inf).
SampleResult dpm_solver_pp_2m_sample_loop(const GaussianDiffusion& d, const DenoiseFn& model, const Shape& shape,
                                          Generator& gen, int64_t steps, const SampleOptions& opt, double eta) {
    const DiffusionSchedule& s = d.schedule();
    const std::vector<int64_t> ts = lambda_uniform_timesteps(s, steps);
    SampleResult r;
    Tensor x = randn(shape, gen, opt.dtype), x0_prev;
    record(r, opt, x, ts[0]);
    for (int64_t i = 1; i <= steps; ++i) {
        const double ab_prev = s.alphas_cumprod[ts[i - 1]];
        const Tensor x0 = predict_x0(d, model, x, double(ts[i - 1]), ab_prev, opt.clip_denoised);
        if (opt.progress) opt.progress(i, steps);
        if (i == steps) {  // to noise level 0: x = D, first order
            x = x0;
            record(r, opt, x, -1);
            break;
        }
        const double ab = s.alphas_cumprod[ts[i]], h = lambda_of(ab) - lambda_of(ab_prev);
        Tensor D = x0;
        if (i > 1 && !(i == steps - 1 && steps < 10)) {  // second order after the first step (and, when few, but the last)
            const double r_i = (lambda_of(ab_prev) - lambda_of(s.alphas_cumprod[ts[i - 2]])) / h;
            D = (1 + 1 / (2 * r_i)) * x0 - (1 / (2 * r_i)) * x0_prev;
        }
        const double sigma = std::sqrt(1 - ab), sigma_prev = std::sqrt(1 - ab_prev), alpha = std::sqrt(ab);
        x = (sigma / sigma_prev * std::exp(-eta * h)) * x - (alpha * std::expm1(-(1 + eta) * h)) * D;
        if (eta > 0) x = x + (sigma * std::sqrt(-std::expm1(-2 * eta * h))) * randn(shape, gen, opt.dtype);
        x0_prev = x0;
        record(r, opt, x, ts[i]);
    }
    r.x0 = x;
    return r;
}

std::vector<double> karras_sigmas(double s_min, double s_max, int64_t n, double rho) {
    std::vector<double> sig;
    for (int64_t i = 0; i < n; ++i) {
        const double f = n == 1 ? 0.0 : double(i) / double(n - 1);
        sig.push_back(std::pow(std::pow(s_max, 1 / rho) + f * (std::pow(s_min, 1 / rho) - std::pow(s_max, 1 / rho)), rho));
    }
    sig.push_back(0.0);
    return sig;
}

// guide.md §11: Heun's method on Karras et al.'s ODE.
SampleResult heun_sample_loop(const GaussianDiffusion& d, const DenoiseFn& model, const Shape& shape, Generator& gen,
                              int64_t calls, const SampleOptions& opt) {
    const DiffusionSchedule& s = d.schedule();
    DDPM_CHECK(calls >= 1, "heun", "needs at least one model call");
    std::vector<double> log_sigma;  // log s at each timestep: increasing in t
    for (double ab : s.alphas_cumprod) log_sigma.push_back(0.5 * std::log((1 - ab) / ab));
    // D(x~, s): the network at the fractional timestep where log s falls, on x_t = x~ / sqrt(1 + s^2).
    auto denoise = [&](const Tensor& xk, double sigma) {
        const double ls = std::log(sigma);
        const int64_t hi = std::clamp<int64_t>(std::lower_bound(log_sigma.begin(), log_sigma.end(), ls) - log_sigma.begin(), 1, s.T - 1);
        const double t = double(hi - 1) + std::clamp((ls - log_sigma[hi - 1]) / (log_sigma[hi] - log_sigma[hi - 1]), 0.0, 1.0);
        const double abar = 1 / (1 + sigma * sigma);
        return predict_x0(d, model, xk * std::sqrt(abar), t, abar, opt.clip_denoised);
    };
    const int64_t n = (calls + 1) / 2;
    const std::vector<double> sig = karras_sigmas(std::exp(log_sigma.front()), std::exp(log_sigma.back()), n);
    SampleResult r;
    Tensor x = sig[0] * randn(shape, gen, opt.dtype);  // x~ at s_max: x_T scaled by 1 / alpha
    record(r, opt, x / std::sqrt(1 + sig[0] * sig[0]), s.T - 1);
    for (int64_t i = 0; i < n; ++i) {
        const Tensor dx = (x - denoise(x, sig[i])) / sig[i];
        Tensor next = x + (sig[i + 1] - sig[i]) * dx;
        if (sig[i + 1] > 0) {  // the trapezoid: the slope at the end of the step too
            const Tensor dx2 = (next - denoise(next, sig[i + 1])) / sig[i + 1];
            next = x + (sig[i + 1] - sig[i]) * (0.5 * (dx + dx2));
        }
        x = next;
        record(r, opt, x / std::sqrt(1 + sig[i + 1] * sig[i + 1]), -1);
        if (opt.progress) opt.progress(i + 1, n);
    }
    r.x0 = x;
    return r;
}

}  // namespace ddpm
