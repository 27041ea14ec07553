// vlb.cpp
#include "diffusion/vlb.h"

#include <cmath>

#include "autograd/ops.h"
#include "diffusion/losses.h"
#include "tensor/elementwise.h"

namespace ddpm {

namespace {
const double kLn2 = std::log(2.0);
}

// guide.md §8: L_{t-1} (t >= 1) and L_0 (t = 0) in bits/dim.
VbTerms vb_terms_bpd(const GaussianDiffusion& d, const Variable& model_output, const Tensor& x_start,
                     const Variable& x_t, const Tensor& t, bool clip_denoised) {
    GaussianDiffusion::Gaussian q = d.q_posterior_mean_variance(Variable(x_start), x_t, t);
    PMeanVariance p = d.p_mean_variance_from_output(model_output, x_t, t, clip_denoised);
    // L_{t-1}: KL between the true posterior and the model's step.
    Variable kl = mean_flat(normal_kl(q.mean, q.log_variance, p.mean, p.log_variance)) / kLn2;
    // L_0: the decoder's negative log-likelihood of the discrete data.
    Variable nll = mean_flat(-discretized_gaussian_log_likelihood(x_start, p.mean, p.log_variance * 0.5)) / kLn2;
    Tensor is_first = eq(t.to(x_start.dtype()), Tensor::scalar(0, x_start.dtype()));
    return {where(is_first, nll, kl), p.pred_xstart};
}

// guide.md §8: L_T = KL(q(x_T | x_0) || N(0, I)).
Tensor prior_bpd(const GaussianDiffusion& d, const Tensor& x_start) {
    NoGradGuard no_grad;
    const int64_t B = x_start.size(0);
    Tensor t = Tensor::full({B}, static_cast<double>(d.num_timesteps() - 1), x_start.dtype());
    GaussianDiffusion::Gaussian q = d.q_mean_variance(Variable(x_start), t);
    Variable zero(Tensor::zeros({}, x_start.dtype()));
    return (mean_flat(normal_kl(q.mean, q.log_variance, zero, zero)) / kLn2).data();
}

// guide.md §8: L = L_T + sum L_{t-1} + L_0, all T terms.
BpdResult calc_bpd_loop(const GaussianDiffusion& d, const DenoiseFn& model, const Tensor& x_start, Generator& gen,
                        bool clip_denoised, const std::function<void(int64_t, int64_t)>& progress) {
    NoGradGuard no_grad;
    const int64_t B = x_start.size(0), T = d.num_timesteps();
    const DType dt = x_start.dtype();
    std::vector<double> terms(static_cast<size_t>(B * T)), xstart_mse(terms.size()), eps_mse(terms.size());
    for (int64_t step = T - 1; step >= 0; --step) {
        Tensor t = Tensor::full({B}, static_cast<double>(step), dt);
        Tensor noise = randn(x_start.shape(), gen, dt);
        Variable x_t = d.q_sample(Variable(x_start), t, noise);
        Variable out = model(x_t, d.model_timesteps(t));
        VbTerms vb = vb_terms_bpd(d, out, x_start, x_t, t, clip_denoised);
        Variable eps = d.predict_eps_from_xstart(x_t, t, vb.pred_xstart);
        Tensor xmse = mean_flat(pow(vb.pred_xstart - Variable(x_start), 2.0)).data().to(DType::F64);
        Tensor emse = mean_flat(pow(eps - Variable(noise), 2.0)).data().to(DType::F64);
        Tensor term = vb.output.data().to(DType::F64);
        for (int64_t b = 0; b < B; ++b) {  // column `step` of each (B, T) table
            terms[b * T + step] = term.data<double>()[b];
            xstart_mse[b * T + step] = xmse.data<double>()[b];
            eps_mse[b * T + step] = emse.data<double>()[b];
        }
        if (progress) progress(T - step, T);
    }
    BpdResult r{Tensor::zeros({B}, dt), prior_bpd(d, x_start), Tensor::from_data(terms, {B, T}, dt),
                Tensor::from_data(xstart_mse, {B, T}, dt), Tensor::from_data(eps_mse, {B, T}, dt)};
    for (int64_t b = 0; b < B; ++b) {
        double s = r.prior.flat(b);
        for (int64_t step = 0; step < T; ++step) s += terms[b * T + step];
        r.total_bpd.set_flat(b, s);
    }
    return r;
}

// guide.md §8: prior + T x mean of K sampled terms, unbiased.
BpdEstimate estimate_bpd(const GaussianDiffusion& d, const DenoiseFn& model, const Tensor& x_start, int64_t K,
                         Generator& gen, bool clip_denoised) {
    NoGradGuard no_grad;
    DDPM_CHECK(K >= 1, "estimate_bpd", "K must be at least 1");
    const int64_t B = x_start.size(0), T = d.num_timesteps();
    const DType dt = x_start.dtype();
    Tensor prior = prior_bpd(d, x_start);
    std::vector<double> sum(static_cast<size_t>(B), 0.0), samples;  // samples: prior + T * term, per (image, draw)
    for (int64_t k = 0; k < K; ++k) {
        Tensor t = randint(T, {B}, gen, dt);
        Tensor noise = randn(x_start.shape(), gen, dt);
        Variable x_t = d.q_sample(Variable(x_start), t, noise);
        VbTerms vb = vb_terms_bpd(d, model(x_t, d.model_timesteps(t)), x_start, x_t, t, clip_denoised);
        for (int64_t b = 0; b < B; ++b) {
            const double term = vb.output.data().flat(b);
            sum[b] += term;
            samples.push_back(prior.flat(b) + static_cast<double>(T) * term);
        }
    }
    BpdEstimate e{Tensor::zeros({B}, dt)};
    for (int64_t b = 0; b < B; ++b) e.total_bpd.set_flat(b, prior.flat(b) + static_cast<double>(T) * sum[b] / K);
    double m = 0;
    for (double s : samples) m += s;
    m /= static_cast<double>(samples.size());
    double var = 0;
    for (double s : samples) var += (s - m) * (s - m);
    const double n = static_cast<double>(samples.size());
    e.mean = m;
    e.stderr_ = n > 1 ? std::sqrt(var / (n - 1) / n) : 0.0;
    return e;
}

}  // namespace ddpm
