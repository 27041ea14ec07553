// samplers.cpp: both loops walk t = T-1 .. 0 of the (possibly respaced) chain.
#include "diffusion/samplers.h"

#include <cmath>

#include "autograd/ops.h"
#include "tensor/elementwise.h"

namespace ddpm {

// guide.md §10, Algorithm 2 of Ho et al. 2020: x_{t-1} = mu_theta(x_t, t) + sigma_t z, z ~ N(0, I).
Tensor p_sample(const GaussianDiffusion& d, const DenoiseFn& model, const Tensor& x_t, int64_t t, Generator& gen,
                bool clip_denoised) {
    NoGradGuard no_grad;
    const Tensor tt = Tensor::full({x_t.size(0)}, static_cast<double>(t), x_t.dtype());
    const PMeanVariance p = d.p_mean_variance(model, Variable(x_t), tt, clip_denoised);
    const Tensor mu = p.mean.data();
    if (t == 0) return mu;  // the last step returns the mean, no noise
    const Tensor sigma = exp(0.5 * p.log_variance.data()), z = randn(x_t.shape(), gen, x_t.dtype());
    return mu + sigma * z;
}

// guide.md §11, Eq. (12) of Song et al. 2021:
//   x_{t-1} = sqrt(abar_{t-1}) x0_hat + sqrt(1 - abar_{t-1} - sigma_t^2) eps_hat + sigma_t z,
//   sigma_t = eta sqrt((1 - abar_{t-1}) / (1 - abar_t)) sqrt(1 - abar_t / abar_{t-1}).
Tensor ddim_sample(const GaussianDiffusion& d, const DenoiseFn& model, const Tensor& x_t, int64_t t, Generator& gen,
                   double eta, bool clip_denoised) {
    NoGradGuard no_grad;
    const Tensor tt = Tensor::full({x_t.size(0)}, static_cast<double>(t), x_t.dtype());
    // eps_hat is re-derived from the (clipped) x0_hat, so the two stay consistent.
    const PMeanVariance p = d.p_mean_variance(model, Variable(x_t), tt, clip_denoised);
    const Tensor x0_hat = p.pred_xstart.data(), eps_hat = p.pred_eps.data();
    const double abar = d.schedule().alphas_cumprod[t], abar_prev = d.schedule().alphas_cumprod_prev[t];
    const double sigma = eta * std::sqrt((1 - abar_prev) / (1 - abar)) * std::sqrt(1 - abar / abar_prev);
    const Tensor x_prev = std::sqrt(abar_prev) * x0_hat + std::sqrt(std::max(0.0, 1 - abar_prev - sigma * sigma)) * eps_hat;
    if (t == 0 || sigma == 0.0) return x_prev;
    const Tensor z = randn(x_t.shape(), gen, x_t.dtype());
    return x_prev + sigma * z;
}

template <class Step>
static SampleResult sample_loop(const GaussianDiffusion& d, const Shape& shape, Generator& gen, const SampleOptions& opt,
                                Step step) {
    SampleResult r;
    Tensor x = randn(shape, gen, opt.dtype);
    const int64_t T = d.num_timesteps();
    if (opt.keep_trajectory) {
        r.trajectory.push_back(x);
        r.trajectory_t.push_back(d.timestep_map().back());
    }
    for (int64_t t = T - 1; t >= 0; --t) {
        x = step(x, t);
        if (opt.keep_trajectory) {
            r.trajectory.push_back(x);
            r.trajectory_t.push_back(t == 0 ? -1 : d.timestep_map()[t - 1]);
        }
        if (opt.progress) opt.progress(T - t, T);
    }
    r.x0 = x;
    return r;
}

// guide.md §10: x_T ~ N(0, I), then p_sample for t = T-1 .. 0.
SampleResult p_sample_loop(const GaussianDiffusion& d, const DenoiseFn& model, const Shape& shape, Generator& gen,
                           const SampleOptions& opt) {
    return sample_loop(d, shape, gen, opt,
                       [&](const Tensor& x, int64_t t) { return p_sample(d, model, x, t, gen, opt.clip_denoised); });
}

// guide.md §11: DDIM over the steps of a respaced chain.
SampleResult ddim_sample_loop(const GaussianDiffusion& d, const DenoiseFn& model, const Shape& shape, Generator& gen,
                              double eta, const SampleOptions& opt) {
    return sample_loop(d, shape, gen, opt, [&](const Tensor& x, int64_t t) {
        return ddim_sample(d, model, x, t, gen, eta, opt.clip_denoised);
    });
}

}  // namespace ddpm
