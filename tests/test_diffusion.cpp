// Diffusion math against closed forms and the Gaussian-data oracle (no network needed).
#include <cmath>
#include <numeric>

#include "autograd/gradcheck.h"
#include "autograd/ops.h"
#include "diffusion/guidance.h"
#include "diffusion/losses.h"
#include "diffusion/ode_samplers.h"
#include "diffusion/samplers.h"
#include "diffusion/timestep_sampler.h"
#include "diffusion/training_losses.h"
#include "diffusion/vlb.h"
#include "helpers.h"
#include "tensor/elementwise.h"
#include "tensor/reduce.h"
#include "tensor/shape_ops.h"

using namespace ddpm;

namespace {
GaussianDiffusion linear_diffusion(ModelVarType v, int64_t T = 1000) {
    return GaussianDiffusion(DiffusionSchedule::from_betas(make_betas(ScheduleKind::Linear, T)), v);
}

// The oracle's data: i.i.d. pixels on the 256 levels k/127.5 - 1, with the
// probabilities of N(0, 0.2^2) integrated over each level's bin (edge bins open).
struct GaussianData {
    std::vector<double> level, prob;
    GaussianData() {
        auto Phi = [](double z) { return 0.5 * std::erfc(-z / std::sqrt(2.0)); };
        for (int k = 0; k < 256; ++k) {
            const double v = k / 127.5 - 1.0;
            const double hi = k == 255 ? 1.0 : Phi((v + 1.0 / 255) / 0.2), lo = k == 0 ? 0.0 : Phi((v - 1.0 / 255) / 0.2);
            level.push_back(v);
            prob.push_back(hi - lo);
        }
    }
    Tensor sample(int64_t n, Generator& gen) const {
        Tensor u = rand({n}, gen, DType::F64), x({n, 1, 1, 1}, DType::F64);
        std::vector<double> cdf;
        double acc = 0;
        for (double p : prob) cdf.push_back(acc += p);
        for (int64_t i = 0; i < n; ++i) {
            size_t k = std::lower_bound(cdf.begin(), cdf.end(), u.flat(i) * acc) - cdf.begin();
            x.set_flat(i, level[std::min<size_t>(k, 255)]);
        }
        return x;
    }
};
constexpr double kDataVar = 0.040005;

// The optimal eps predictor for Gaussian data of variance kDataVar:
// eps_hat = sqrt(1 - abar_t) x_t / (abar_t var + 1 - abar_t).
DenoiseFn gaussian_oracle(const DiffusionSchedule& s) {
    return [&s](const Variable& x_t, const Tensor& t) {
        Tensor scale({t.numel(), 1, 1, 1}, x_t.dtype());
        for (int64_t b = 0; b < t.numel(); ++b) {
            const double ab = s.alphas_cumprod[static_cast<size_t>(t.flat(b))];
            scale.set_flat(b, std::sqrt(1 - ab) / (ab * kDataVar + 1 - ab));
        }
        return Variable(mul(x_t.data(), scale));
    };
}

double mean_of(const Tensor& t) { return sum(t.to(DType::F64)).item() / static_cast<double>(t.numel()); }
double stderr_of(const Tensor& t) {
    const double m = mean_of(t);
    double v = 0;
    for (int64_t i = 0; i < t.numel(); ++i) v += (t.flat(i) - m) * (t.flat(i) - m);
    return std::sqrt(v / (t.numel() - 1) / t.numel());
}
}  // namespace

TEST_CASE("schedules match the oracle values") {
    DiffusionSchedule lin = DiffusionSchedule::from_betas(make_betas(ScheduleKind::Linear, 1000));
    CHECK(lin.alphas_cumprod[999] == doctest::Approx(4.035830e-05).epsilon(1e-6).scale(0));
    CHECK(lin.posterior_variance[1] == doctest::Approx(5.453188e-05).epsilon(1e-6).scale(0));
    CHECK(lin.posterior_variance[0] == 0.0);
    CHECK(lin.posterior_log_variance_clipped[0] == lin.posterior_log_variance_clipped[1]);
    DiffusionSchedule cos = DiffusionSchedule::from_betas(make_betas(ScheduleKind::Cosine, 1000));
    CHECK(cos.betas[0] == doctest::Approx(4.128422e-05).epsilon(1e-6).scale(0));
    CHECK(cos.alphas_cumprod[999] == doctest::Approx(2.428767e-09).epsilon(1e-5).scale(0));
    CHECK(cos.betas[999] == 0.999);  // clipped
    // Rescaled for other T: T = 100 spans the same range, betas 1e-3 .. 0.2.
    auto b100 = make_betas(ScheduleKind::Linear, 100);
    CHECK(b100.front() == doctest::Approx(1e-3));
    CHECK(b100.back() == doctest::Approx(0.2));
    // Every derived array is consistent with its definition.
    for (int64_t t = 1; t < 1000; t += 111) {
        CHECK(lin.alphas_cumprod_prev[t] == lin.alphas_cumprod[t - 1]);
        CHECK(lin.posterior_mean_coef1[t] ==
              doctest::Approx(std::sqrt(lin.alphas_cumprod[t - 1]) * lin.betas[t] / (1 - lin.alphas_cumprod[t])));
        CHECK(lin.sqrt_recipm1_alphas_cumprod[t] == doctest::Approx(std::sqrt(1 / lin.alphas_cumprod[t] - 1)));
    }
}

TEST_CASE("timestep spacings and respacing keep abar at the kept steps") {
    auto ddim = space_timesteps(1000, "ddim50");
    REQUIRE(ddim.size() == 50);
    CHECK(ddim.front() == 0);
    CHECK(ddim[1] == 20);
    CHECK(ddim.back() == 980);
    auto trailing = space_timesteps(1000, "trailing50");
    REQUIRE(trailing.size() == 50);
    CHECK(trailing.back() == 999);
    CHECK(trailing.front() == 19);
    auto even = space_timesteps(1000, "250");
    CHECK(even.size() == 250);
    CHECK(even.back() == 999);
    CHECK_THROWS_AS(space_timesteps(1000, "ddimx"), std::invalid_argument);
    CHECK_THROWS_AS(space_timesteps(1000, "ddim0"), std::invalid_argument);
    GaussianDiffusion base = linear_diffusion(ModelVarType::FixedSmall);
    GaussianDiffusion r = base.respaced(ddim);
    CHECK(r.num_timesteps() == 50);
    for (size_t i = 0; i < ddim.size(); ++i)
        CHECK(r.schedule().alphas_cumprod[i] == doctest::Approx(base.schedule().alphas_cumprod[ddim[i]]).epsilon(1e-12));
    CHECK(r.timestep_map()[1] == 20);
}

TEST_CASE("the discretized likelihood sums to 1 over the 256 bins") {
    for (double mean : {-0.97, -0.3, 0.0, 0.5, 0.99})
        for (double log_scale : {-5.0, -2.0, 0.0}) {
            Tensor x({256}, DType::F64);
            for (int k = 0; k < 256; ++k) x.set_flat(k, k / 127.5 - 1.0);
            Variable lp = discretized_gaussian_log_likelihood(x, Variable(Tensor::full({256}, mean, DType::F64)),
                                                              Variable(Tensor::full({256}, log_scale, DType::F64)));
            double total = 0;
            for (int k = 0; k < 256; ++k) total += std::exp(lp.data().flat(k));
            INFO("mean " << mean << " log_scale " << log_scale);
            CHECK(total == doctest::Approx(1.0).epsilon(1e-9));
        }
}

TEST_CASE("normal_kl: zero for equal Gaussians, the closed form otherwise") {
    auto v = [](double x) { return Variable(Tensor::from_data({x}, {1}, DType::F64)); };
    CHECK(normal_kl(v(0.3), v(-1.2), v(0.3), v(-1.2)).item() == doctest::Approx(0.0).scale(1.0));
    // KL(N(1, 1) || N(0, e^2)) = log(e) + (1 + 1) / (2 e^2) - 1/2.
    CHECK(normal_kl(v(1.0), v(0.0), v(0.0), v(2.0)).item() ==
          doctest::Approx(1.0 + 2.0 / (2 * std::exp(2.0)) - 0.5).epsilon(1e-12));
}

TEST_CASE("the posterior is the Bayes product of q(x_t | x_{t-1}) and q(x_{t-1} | x_0)") {
    // Completing the square in x_{t-1}: precision = alpha_t / beta_t + 1 / (1 - abar_{t-1}),
    // mean = (sqrt(alpha_t) x_t / beta_t + sqrt(abar_{t-1}) x_0 / (1 - abar_{t-1})) / precision.
    GaussianDiffusion d = linear_diffusion(ModelVarType::FixedSmall);
    const auto& s = d.schedule();
    for (int64_t t : {1, 10, 500, 999}) {
        const double x0 = 0.7, xt = -0.4;
        const double prec = s.alphas[t] / s.betas[t] + 1.0 / (1.0 - s.alphas_cumprod_prev[t]);
        const double mean = (std::sqrt(s.alphas[t]) * xt / s.betas[t] +
                             std::sqrt(s.alphas_cumprod_prev[t]) * x0 / (1.0 - s.alphas_cumprod_prev[t])) / prec;
        Tensor tt = Tensor::from_data({double(t)}, {1}, DType::F64);
        auto q = d.q_posterior_mean_variance(Variable(Tensor::from_data({x0}, {1, 1, 1, 1}, DType::F64)),
                                             Variable(Tensor::from_data({xt}, {1, 1, 1, 1}, DType::F64)), tt);
        CHECK(q.mean.item() == doctest::Approx(mean).epsilon(1e-10));
        CHECK(q.variance.item() == doctest::Approx(1.0 / prec).epsilon(1e-10));
    }
}

TEST_CASE("predict_xstart_from_eps and predict_eps_from_xstart invert each other and q_sample") {
    GaussianDiffusion d = linear_diffusion(ModelVarType::FixedLarge);
    Generator gen(3);
    Tensor x0 = randn({4, 2, 3, 3}, gen, DType::F64), eps = randn({4, 2, 3, 3}, gen, DType::F64);
    Tensor t = Tensor::from_data({0, 1, 500, 999}, {4}, DType::F64);
    Variable xt = d.q_sample(Variable(x0), t, eps);
    CHECK(test::max_abs_diff(d.predict_xstart_from_eps(xt, t, Variable(eps)).data(), x0) < 1e-9);
    CHECK(test::max_abs_diff(d.predict_eps_from_xstart(xt, t, Variable(x0)).data(), eps) < 1e-9);
}

TEST_CASE("an oracle that knows x0 makes DDIM-50 return x0 exactly") {
    GaussianDiffusion base = linear_diffusion(ModelVarType::FixedSmall);
    GaussianDiffusion d = base.respaced(space_timesteps(1000, "ddim50"));
    Generator data(5);
    Tensor x0 = clamp(randn({3, 1, 4, 4}, data, DType::F64), -1, 1);
    const auto& s = base.schedule();
    DenoiseFn knows_x0 = [&](const Variable& x_t, const Tensor& t) {
        Tensor scale = base.coef(s.sqrt_alphas_cumprod, t, Tensor::zeros({1, 1, 1, 1}, DType::F64));
        Tensor noise_scale = base.coef(s.sqrt_one_minus_alphas_cumprod, t, Tensor::zeros({1, 1, 1, 1}, DType::F64));
        return Variable(div(sub(x_t.data(), mul(x0, scale)), noise_scale));
    };
    Generator gen(6);
    SampleOptions opt;
    opt.dtype = DType::F64;
    SampleResult r = ddim_sample_loop(d, knows_x0, x0.shape(), gen, 0.0, opt);
    CHECK(test::max_abs_diff(r.x0, x0) < 1e-9);
}

// abar at a fractional timestep as heun_sample_loop reads it: log sigma (sigma^2 = (1 - abar) / abar)
// interpolated linearly in t; at whole timesteps, the schedule's own abar.
double abar_at(const DiffusionSchedule& s, double t) {
    auto log_sigma = [&](int64_t k) { return 0.5 * std::log((1 - s.alphas_cumprod[k]) / s.alphas_cumprod[k]); };
    const int64_t lo = std::min<int64_t>(static_cast<int64_t>(std::floor(t)), s.T - 2);
    const double ls = log_sigma(lo) + (t - double(lo)) * (log_sigma(lo + 1) - log_sigma(lo));
    return 1 / (1 + std::exp(2 * ls));
}

// The exact eps of x_t for a known x0, at any (fractional) timestep.
DenoiseFn knows_x0_at_any_t(const DiffusionSchedule& s, const Tensor& x0) {
    return [&s, x0](const Variable& x_t, const Tensor& t) {
        Tensor eps(x_t.shape(), x_t.dtype());
        const int64_t per = x_t.numel() / x_t.size(0);
        for (int64_t b = 0; b < x_t.size(0); ++b) {
            const double ab = abar_at(s, t.flat(b));
            for (int64_t i = 0; i < per; ++i)
                eps.set_flat(b * per + i, (x_t.data().flat(b * per + i) - std::sqrt(ab) * x0.flat(b * per + i)) / std::sqrt(1 - ab));
        }
        return Variable(eps);
    };
}

// The optimal eps for the Gaussian data, at any (fractional) timestep.
DenoiseFn gaussian_oracle_at_any_t(const DiffusionSchedule& s) {
    return [&s](const Variable& x_t, const Tensor& t) {
        Tensor scale({t.numel(), 1, 1, 1}, x_t.dtype());
        for (int64_t b = 0; b < t.numel(); ++b) {
            const double ab = abar_at(s, t.flat(b));
            scale.set_flat(b, std::sqrt(1 - ab) / (ab * kDataVar + 1 - ab));
        }
        return Variable(mul(x_t.data(), scale));
    };
}

TEST_CASE("an oracle that knows x0 makes DPM-Solver++(2M) and Heun return x0") {
    GaussianDiffusion d = linear_diffusion(ModelVarType::FixedSmall);
    Generator data(5), gen(6);
    const Tensor x0 = clamp(randn({3, 1, 4, 4}, data, DType::F64), -1, 1);
    const DenoiseFn oracle = knows_x0_at_any_t(d.schedule(), x0);
    SampleOptions opt;
    opt.dtype = DType::F64;
    for (int64_t calls : {1, 2, 5, 10, 20}) {
        INFO(calls << " model calls");
        CHECK(test::max_abs_diff(dpm_solver_pp_2m_sample_loop(d, oracle, x0.shape(), gen, calls, opt).x0, x0) < 1e-9);
        CHECK(test::max_abs_diff(heun_sample_loop(d, oracle, x0.shape(), gen, calls, opt).x0, x0) < 1e-9);
    }
    const std::vector<int64_t> ts = lambda_uniform_timesteps(d.schedule(), 10);
    CHECK(ts.front() == 999);
    CHECK(ts.back() == 0);
    for (size_t i = 1; i < ts.size(); ++i) CHECK(ts[i] < ts[i - 1]);
    const std::vector<double> sig = karras_sigmas(0.01, 100, 4);
    test::check_values(Tensor::from_data(sig, {5}, DType::F64), {100, std::pow(std::pow(100, 1 / 7.0) * 2 / 3 + std::pow(0.01, 1 / 7.0) / 3, 7),
                                                                 std::pow(std::pow(100, 1 / 7.0) / 3 + std::pow(0.01, 1 / 7.0) * 2 / 3, 7), 0.01, 0},
                       1e-12);
}

GaussianDiffusion v_diffusion(ModelVarType v = ModelVarType::FixedLarge) {
    return GaussianDiffusion(DiffusionSchedule::from_betas(make_betas(ScheduleKind::Linear, 1000)), v, {},
                             ModelMeanType::Velocity);
}

TEST_CASE("v-prediction: the target is sqrt(abar) eps - sqrt(1 - abar) x0, and p_mean_variance reads it as eps") {
    GaussianDiffusion d = linear_diffusion(ModelVarType::FixedLarge), dv = v_diffusion();
    Generator gen(3);
    Tensor x0 = randn({4, 2, 3, 3}, gen, DType::F64), eps = randn({4, 2, 3, 3}, gen, DType::F64);
    Tensor t = Tensor::from_data({0, 1, 500, 999}, {4}, DType::F64);
    const Tensor v = dv.training_target(x0, t, eps);
    CHECK(test::max_abs_diff(d.training_target(x0, t, eps), eps) == 0);
    const auto& s = d.schedule();
    for (int64_t b = 0; b < 4; ++b) {
        const double ab = s.alphas_cumprod[static_cast<size_t>(t.flat(b))];
        for (int64_t i = 0; i < 18; ++i)
            CHECK(v.flat(b * 18 + i) == doctest::Approx(std::sqrt(ab) * eps.flat(b * 18 + i) - std::sqrt(1 - ab) * x0.flat(b * 18 + i)));
    }
    Variable xt = d.q_sample(Variable(x0), t, eps);
    CHECK(test::max_abs_diff(dv.predict_xstart_from_v(xt, t, Variable(v)).data(), x0) < 1e-9);
    const PMeanVariance pe = d.p_mean_variance_from_output(Variable(eps), xt, t, false);
    const PMeanVariance pv = dv.p_mean_variance_from_output(Variable(v), xt, t, false);
    CHECK(test::max_abs_diff(pv.pred_xstart.data(), pe.pred_xstart.data()) < 1e-9);
    CHECK(test::max_abs_diff(pv.pred_eps.data(), pe.pred_eps.data()) < 1e-7);  // through x0 and 1/sqrt(1/abar - 1) at t = 0
    CHECK(test::max_abs_diff(pv.mean.data(), pe.mean.data()) < 1e-9);
    CHECK(dv.respaced(space_timesteps(1000, "10")).mean_type() == ModelMeanType::Velocity);
    CHECK_THROWS_WITH_AS(parse_mean_type("x0"), doctest::Contains("(eps, v)"), std::invalid_argument);
}

TEST_CASE("an oracle that knows x0 makes every sampler of a v model return x0") {
    GaussianDiffusion dv = v_diffusion(ModelVarType::FixedSmall);
    Generator data(5), gen(6);
    const Tensor x0 = clamp(randn({3, 1, 4, 4}, data, DType::F64), -1, 1);
    const DenoiseFn eps_oracle = knows_x0_at_any_t(dv.schedule(), x0);
    // v = sqrt(abar) eps - sqrt(1 - abar) x0, at the timestep the sampler asks for.
    const DenoiseFn v_oracle = [&](const Variable& x_t, const Tensor& t) {
        const Tensor eps = eps_oracle(x_t, t).data();
        Tensor v(eps.shape(), eps.dtype());
        const int64_t per = eps.numel() / eps.size(0);
        for (int64_t b = 0; b < eps.size(0); ++b) {
            const double ab = abar_at(dv.schedule(), t.flat(b));
            for (int64_t i = 0; i < per; ++i)
                v.set_flat(b * per + i, std::sqrt(ab) * eps.flat(b * per + i) - std::sqrt(1 - ab) * x0.flat(b * per + i));
        }
        return Variable(v);
    };
    SampleOptions opt;
    opt.dtype = DType::F64;
    for (int64_t calls : {2, 10}) {
        INFO(calls << " model calls");
        CHECK(test::max_abs_diff(dpm_solver_pp_2m_sample_loop(dv, v_oracle, x0.shape(), gen, calls, opt).x0, x0) < 1e-9);
        CHECK(test::max_abs_diff(heun_sample_loop(dv, v_oracle, x0.shape(), gen, calls, opt).x0, x0) < 1e-9);
    }
    const GaussianDiffusion ddim = dv.respaced(space_timesteps(1000, "ddim50"));
    CHECK(test::max_abs_diff(ddim_sample_loop(ddim, v_oracle, x0.shape(), gen, 0.0, opt).x0, x0) < 1e-9);
}

TEST_CASE("min-SNR-gamma: min(SNR, gamma) / SNR for eps, / (SNR + 1) for v, on each image's mse") {
    const double gamma = 5;
    for (double abar : {0.999, 0.9, 5.0 / 6.0, 0.5, 0.01}) {
        const double snr = abar / (1 - abar);
        INFO("abar " << abar << ", SNR " << snr);
        CHECK(min_snr_weight(abar, gamma, ModelMeanType::Epsilon) == doctest::Approx(snr > gamma ? gamma / snr : 1.0));
        CHECK(min_snr_weight(abar, gamma, ModelMeanType::Velocity) == doctest::Approx(std::min(snr, gamma) / (snr + 1)));
    }
    // In x0 terms both weightings are the same: min(SNR, gamma) || x0 - x0_hat ||^2.
    CHECK(min_snr_weight(0.5, gamma, ModelMeanType::Epsilon) * 1.0 == doctest::Approx(min_snr_weight(0.5, gamma, ModelMeanType::Velocity) * 2.0));
    for (const GaussianDiffusion& d : {linear_diffusion(ModelVarType::FixedLarge), v_diffusion()}) {
        Generator gen(8);
        Tensor x0 = randn({3, 1, 2, 2}, gen, DType::F64), noise = randn({3, 1, 2, 2}, gen, DType::F64);
        Tensor t = Tensor::from_data({3, 400, 900}, {3}, DType::F64);
        const DenoiseFn zero = [](const Variable& x, const Tensor&) { return Variable(Tensor::zeros(x.shape(), x.dtype())); };
        NoGradGuard ng;
        const Tensor plain = training_losses(d, zero, x0, t, noise, LossType::Simple).mse.data();
        const Tensor weighted = training_losses(d, zero, x0, t, noise, LossType::Simple, 0.001, gamma).loss.data();
        for (int64_t b = 0; b < 3; ++b)
            CHECK(weighted.flat(b) ==
                  doctest::Approx(plain.flat(b) * min_snr_weight(d.schedule().alphas_cumprod[size_t(t.flat(b))], gamma, d.mean_type())));
    }
}

TEST_CASE("Gaussian oracle: DPM-Solver++(2M) (ODE and SDE) and Heun return the data's distribution in 10-20 calls") {
    // The ODE carries N(0, 1) to N(0, 0.04) exactly; a good solver gets close in few calls.
    const int64_t n = 20000;
    GaussianDiffusion d = linear_diffusion(ModelVarType::FixedSmall);
    const DenoiseFn oracle = gaussian_oracle_at_any_t(d.schedule());
    SampleOptions opt;
    opt.dtype = DType::F64;
    opt.clip_denoised = false;
    Generator gen(9);
    // The variance's relative error (its sampling error is sqrt(2 / n) = 1%); the mean within 3 standard errors.
    auto error = [&](const Tensor& x, const std::string& name) {
        const double m = mean_of(x);
        double v = 0;
        for (int64_t i = 0; i < x.numel(); ++i) v += (x.flat(i) - m) * (x.flat(i) - m) / double(x.numel() - 1);
        MESSAGE(name << ": mean " << m << ", variance " << v << " (data 0.04)");
        CHECK(std::abs(m) < 3 * std::sqrt(kDataVar / n));
        return std::abs(v - kDataVar) / kDataVar;
    };
    CHECK(error(dpm_solver_pp_2m_sample_loop(d, oracle, {n, 1, 1, 1}, gen, 10, opt).x0, "DPM-Solver++(2M), 10 calls") < 0.1);
    CHECK(error(dpm_solver_pp_2m_sample_loop(d, oracle, {n, 1, 1, 1}, gen, 20, opt).x0, "DPM-Solver++(2M), 20 calls") < 0.06);
    // The SDE form (eta = 1) adds fresh noise at each step and still ends on the data's distribution,
    // less exactly than the ODE at 20 calls, within the sampling error at 100.
    const double sde20 = error(dpm_solver_pp_2m_sample_loop(d, oracle, {n, 1, 1, 1}, gen, 20, opt, 1.0).x0, "DPM-Solver++(2M) SDE, 20 calls");
    const double sde100 = error(dpm_solver_pp_2m_sample_loop(d, oracle, {n, 1, 1, 1}, gen, 100, opt, 1.0).x0, "DPM-Solver++(2M) SDE, 100 calls");
    CHECK(sde20 < 0.1);
    CHECK(sde100 < 0.03);
    CHECK(error(dpm_solver_pp_2m_sample_loop(d, oracle, {n, 1, 1, 1}, gen, 50, opt, 0.5).x0, "DPM-Solver++(2M) eta 0.5, 50 calls") < 0.05);
    // Heun with Karras et al.'s steps (rho = 7) is made for data of standard deviation 0.5; on this
    // narrow data (0.2) it needs more calls, but converges: 9 -> 19 -> 99 calls, the error shrinks to within 5%.
    const double h9 = error(heun_sample_loop(d, oracle, {n, 1, 1, 1}, gen, 9, opt).x0, "Heun, 9 calls");
    const double h19 = error(heun_sample_loop(d, oracle, {n, 1, 1, 1}, gen, 19, opt).x0, "Heun, 19 calls");
    const double h99 = error(heun_sample_loop(d, oracle, {n, 1, 1, 1}, gen, 99, opt).x0, "Heun, 99 calls");
    CHECK(h19 < h9);
    CHECK(h99 < h19);
    CHECK(h99 < 0.05);
}

TEST_CASE("the Gaussian oracle data have the stated variance and entropy") {
    GaussianData g;
    double var = 0, h = 0;
    for (int k = 0; k < 256; ++k) {
        var += g.prob[k] * g.level[k] * g.level[k];
        h -= g.prob[k] * std::log2(g.prob[k]);
    }
    CHECK(var == doctest::Approx(kDataVar).epsilon(1e-4));
    CHECK(h == doctest::Approx(6.71961).epsilon(1e-5));
}

// The Gaussian oracle's bound in closed form. Every quantity in a KL term is linear in
// x_0 and eps, so its expectation needs only the data's second moment v (and the oracle's
// assumed kDataVar): with x_k = sqrt(abar) x_0 + sqrt(1 - abar) eps and the oracle's
// x0_hat = g x_k, g = sqrt(abar) kDataVar / (abar kDataVar + 1 - abar),
//   E (x_0 - x0_hat)^2 = v - 2 g sqrt(abar) v + g^2 (abar v + 1 - abar),
// and the term at code index k >= 1 (the paper's L_k, a KL between Gaussians of
// variances beta~_k and sigma_k^2) is, in bits,
//   1/2 [ log(sigma^2 / beta~) + beta~ / sigma^2 - 1 + coef1^2 E (x_0 - x0_hat)^2 / sigma^2 ] / ln 2.
struct OracleBound {
    std::vector<double> terms;  // bits per pixel at each code index k (terms[0] is L_0)
    double prior = 0;
};

double data_variance(const GaussianData& data) {
    double v = 0;
    for (int k = 0; k < 256; ++k) v += data.prob[k] * data.level[k] * data.level[k];
    return v;
}

double x0_error(double abar, double v) {
    const double g = std::sqrt(abar) * kDataVar / (abar * kDataVar + 1 - abar);
    return v - 2 * g * std::sqrt(abar) * v + g * g * (abar * v + 1 - abar);
}

// L_0 = E -log P(x_0 | x_1): the discretised decoder (bins of half-width 1/255, open at
// -1 and 1) with mean g x_1 and variance beta~ at index 1, by quadrature over eps on a
// grid of 0.002 from -9 to 9 for each of the 256 data levels.
double oracle_l0_bits(const GaussianDiffusion& d, const GaussianData& data) {
    const DiffusionSchedule& s = d.schedule();
    const double ab = s.alphas_cumprod[0], g = std::sqrt(ab) * kDataVar / (ab * kDataVar + 1 - ab);
    const double sigma = std::sqrt(s.posterior_variance[1]), h = 0.002;
    auto Phi = [](double z) { return 0.5 * std::erfc(-z / std::sqrt(2.0)); };
    double nll = 0, wsum = 0;
    for (double e = -9; e <= 9 + 1e-9; e += h) wsum += std::exp(-e * e / 2);
    for (int k = 0; k < 256; ++k) {
        const double x = data.level[k];
        for (double e = -9; e <= 9 + 1e-9; e += h) {
            const double x1 = std::sqrt(ab) * x + std::sqrt(1 - ab) * e;
            const double mu = s.posterior_mean_coef1[0] * g * x1 + s.posterior_mean_coef2[0] * x1;
            const double hi = k == 255 ? 1.0 : Phi((x + 1.0 / 255 - mu) / sigma);
            const double lo = k == 0 ? 0.0 : Phi((x - 1.0 / 255 - mu) / sigma);
            nll -= data.prob[k] * std::exp(-e * e / 2) / wsum * std::log(std::max(hi - lo, 1e-12));
        }
    }
    return nll / std::log(2.0);
}

OracleBound oracle_bound(const GaussianDiffusion& d, const GaussianData& data) {
    const DiffusionSchedule& s = d.schedule();
    const double v = data_variance(data), ln2 = std::log(2.0);
    OracleBound b{{oracle_l0_bits(d, data)}, 0};
    for (int64_t k = 1; k < s.T; ++k) {
        const double bt = s.posterior_variance[k];
        const double sigma2 = d.var_type() == ModelVarType::FixedLarge ? s.betas[k] : bt;
        const double c1 = s.posterior_mean_coef1[k];
        b.terms.push_back(
            0.5 * (std::log(sigma2 / bt) + bt / sigma2 - 1 + c1 * c1 * x0_error(s.alphas_cumprod[k], v) / sigma2) / ln2);
    }
    const double abT = s.alphas_cumprod[s.T - 1];  // KL(N(sqrt(abar_T) x_0, 1 - abar_T) || N(0, 1))
    b.prior = 0.5 * (-std::log(1 - abT) + (1 - abT) + abT * v - 1) / ln2;
    return b;
}

TEST_CASE("Gaussian oracle: the bound's closed form") {
    GaussianData data;
    CHECK(data_variance(data) == doctest::Approx(0.0400051).epsilon(1e-6));
    struct Case { ModelVarType v; double kl_sum, total; };
    for (Case c : {Case{ModelVarType::FixedLarge, 4.33457, 6.8452}, Case{ModelVarType::FixedSmall, 4.94716, 7.4577}}) {
        const OracleBound b = oracle_bound(linear_diffusion(c.v), data);
        const double kl = std::accumulate(b.terms.begin() + 1, b.terms.end(), 0.0);
        const double total = b.terms[0] + kl + b.prior;
        MESSAGE("closed form: L_0 " << b.terms[0] << ", sum of KL terms " << kl << ", prior " << b.prior << ", total " << total);
        CHECK(kl == doctest::Approx(c.kl_sum).epsilon(2e-6));
        CHECK(b.terms[0] == doctest::Approx(2.5106).epsilon(1e-4));
        CHECK(total == doctest::Approx(c.total).epsilon(2e-5));
        CHECK(std::abs(b.prior / 1.16e-06 - 1) < 0.01);  // relative: Approx would compare 1e-6 with an absolute margin
    }
}

TEST_CASE("Gaussian oracle: every term of the full bound matches its closed form") {
    GaussianData data;
    Generator gen(2024);
    // 80000 pixels (each its own "image"), in chunks to bound the (pixels x T) tables.
    const int64_t chunks = 8, n = 10000, T = 1000;
    Tensor x0 = data.sample(chunks * n, gen);
    for (ModelVarType v : {ModelVarType::FixedLarge, ModelVarType::FixedSmall}) {
        GaussianDiffusion d = linear_diffusion(v);
        const OracleBound want = oracle_bound(d, data);
        std::vector<Tensor> tables, totals, priors;
        for (int64_t k = 0; k < chunks; ++k) {
            BpdResult part = calc_bpd_loop(d, gaussian_oracle(d.schedule()), x0.slice(k * n, (k + 1) * n), gen);
            tables.push_back(part.terms), totals.push_back(part.total_bpd), priors.push_back(part.prior);
        }
        const Tensor terms = concat(tables, 0), total = concat(totals, 0);
        // Each of the 1000 Monte-Carlo means within 4.5 standard errors of its closed form
        // (4.5, not 3: over 1000 terms a 3-sigma bound would be crossed by chance ~3 times).
        int worst_t = 0;
        double worst = 0;
        for (int64_t t = 0; t < T; ++t) {
            const Tensor column = narrow(terms, 1, t, 1);
            const double z = std::abs(mean_of(column) - want.terms[t]) / std::max(stderr_of(column), 1e-12);
            if (z > worst) worst = z, worst_t = static_cast<int>(t);
        }
        MESSAGE("largest deviation from the closed form: " << worst << " standard errors, at t = " << worst_t);
        CHECK(worst < 4.5);
        const double want_total = std::accumulate(want.terms.begin(), want.terms.end(), 0.0) + want.prior;
        MESSAGE("total " << mean_of(total) << " +- " << stderr_of(total) << " (closed form " << want_total << ")");
        CHECK(std::abs(mean_of(total) - want_total) < 3 * stderr_of(total));
        // L_T is linear in the sample's second moment, whose relative standard error is sqrt(2 / 80000) = 0.5%.
        CHECK(std::abs(mean_of(concat(priors, 0)) / want.prior - 1) < 0.02);
        // The fast estimate from K = 50 timesteps agrees with the closed form.
        BpdEstimate e = estimate_bpd(d, gaussian_oracle(d.schedule()), x0.slice(0, 4000), 50, gen);
        MESSAGE("estimate " << e.mean << " +- " << e.stderr_);
        CHECK(std::abs(e.mean - want_total) < 3 * e.stderr_);
    }
}

TEST_CASE("Gaussian oracle: expected L_simple is 0.080837") {
    GaussianData data;
    Generator gen(7);
    GaussianDiffusion d = linear_diffusion(ModelVarType::FixedLarge);
    const int64_t n = 200000;
    Tensor x0 = data.sample(n, gen);
    Tensor t = randint(1000, {n}, gen, DType::F64), noise = randn(x0.shape(), gen, DType::F64);
    NoGradGuard ng;
    TrainingLosses l = training_losses(d, gaussian_oracle(d.schedule()), x0, t, noise, LossType::Simple);
    const double m = mean_of(l.mse.data()), se = stderr_of(l.mse.data());
    MESSAGE("L_simple " << m << " +- " << se);
    CHECK(std::abs(m - 0.080837) < 3 * se);
}

// For Gaussian data the oracle's chain is linear in x, so the variance of its
// output follows in closed form: each step maps x to k x + sigma z, v -> k^2 v + sigma^2.
double chain_variance(const GaussianDiffusion& d, const DiffusionSchedule& base, bool ddim) {
    const auto& s = d.schedule();
    double v = 1.0;
    for (int64_t i = d.num_timesteps() - 1; i >= 0; --i) {
        const double ab = base.alphas_cumprod[d.timestep_map()[i]];
        const double x0_gain = std::sqrt(ab) * kDataVar / (ab * kDataVar + 1 - ab);   // E[x0 | x_t] = gain x_t
        const double eps_gain = std::sqrt(1 - ab) / (ab * kDataVar + 1 - ab);
        double k, var_add = 0;
        if (ddim) {
            const double abp = s.alphas_cumprod_prev[i];
            k = std::sqrt(abp) * x0_gain + std::sqrt(1 - abp) * eps_gain;
        } else {
            k = s.posterior_mean_coef1[i] * x0_gain + s.posterior_mean_coef2[i];
            if (i > 0)
                var_add = d.var_type() == ModelVarType::FixedLarge ? s.betas[i] : s.posterior_variance[i];
        }
        v = k * k * v + var_add;
    }
    return v;
}

TEST_CASE("Gaussian oracle: DDPM and DDIM-50 samples have mean 0 and variance 0.04") {
    // Each sampler must match its chain's exact output variance (closed form above)
    // within 3 Monte-Carlo standard errors (mean: sqrt(0.04/n); variance: v sqrt(2/n)).
    // Against the data's 0.04 the stated tolerance is the chain's own discretisation:
    // 3% for the 1000-step DDPM chains, 25% for 50 deterministic DDIM steps, whose
    // exact output variance is 0.0311 (the ODE is integrated in only 50 steps).
    const int64_t n = 20000;
    const Shape shape{n, 1, 1, 1};
    GaussianDiffusion full = linear_diffusion(ModelVarType::FixedLarge);
    const DiffusionSchedule& base = full.schedule();
    DenoiseFn oracle = gaussian_oracle(base);
    SampleOptions opt;
    opt.dtype = DType::F64;
    opt.clip_denoised = false;
    Generator gen(8);
    auto check_moments = [&](const Tensor& x, double exact_var, double tolerance, const char* name) {
        const double m = mean_of(x);
        double v = 0;
        for (int64_t i = 0; i < x.numel(); ++i) v += (x.flat(i) - m) * (x.flat(i) - m);
        v /= static_cast<double>(x.numel() - 1);
        MESSAGE(std::string(name) << ": mean " << m << ", variance " << v << " (exact for this chain " << exact_var << ")");
        CHECK(std::abs(m) < 3 * std::sqrt(kDataVar / n));
        CHECK(std::abs(v - exact_var) < 3 * exact_var * std::sqrt(2.0 / n));
        CHECK(std::abs(v - kDataVar) < tolerance * kDataVar);
    };
    check_moments(p_sample_loop(full, oracle, shape, gen, opt).x0, chain_variance(full, base, false), 0.03,
                  "DDPM fixed-large, 1000 steps");
    GaussianDiffusion small = linear_diffusion(ModelVarType::FixedSmall);
    check_moments(p_sample_loop(small, oracle, shape, gen, opt).x0, chain_variance(small, base, false), 0.03,
                  "DDPM fixed-small, 1000 steps");
    GaussianDiffusion ddim50 = small.respaced(space_timesteps(1000, "ddim50"));
    CHECK(chain_variance(ddim50, base, true) == doctest::Approx(0.031053).epsilon(1e-4));
    check_moments(ddim_sample_loop(ddim50, oracle, shape, gen, 0.0, opt).x0, chain_variance(ddim50, base, true), 0.25,
                  "DDIM eta 0, 50 steps");
}

TEST_CASE("sampling is deterministic for a seed and can return its trajectory") {
    GaussianDiffusion d = linear_diffusion(ModelVarType::FixedSmall).respaced(space_timesteps(1000, "ddim10"));
    DenoiseFn oracle = gaussian_oracle(linear_diffusion(ModelVarType::FixedSmall).schedule());
    GaussianDiffusion base = linear_diffusion(ModelVarType::FixedSmall);
    DenoiseFn o2 = gaussian_oracle(base.schedule());
    SampleOptions opt;
    opt.keep_trajectory = true;
    Generator g1(9), g2(9);
    SampleResult a = ddim_sample_loop(d, o2, {2, 1, 3, 3}, g1, 0.5, opt);
    SampleResult b = ddim_sample_loop(d, o2, {2, 1, 3, 3}, g2, 0.5, opt);
    CHECK(test::max_abs_diff(a.x0, b.x0) == 0);
    CHECK(a.trajectory.size() == 11);
    CHECK(a.trajectory_t.front() == 900);
    CHECK(a.trajectory_t.back() == -1);
    (void)oracle;
}

TEST_CASE("learned-range variance interpolates between log beta~ and log beta") {
    GaussianDiffusion d = linear_diffusion(ModelVarType::LearnedRange);
    const auto& s = d.schedule();
    Tensor t = Tensor::from_data({10, 10, 10}, {3}, DType::F64);
    Tensor out = Tensor::zeros({3, 2, 1, 1}, DType::F64);
    out.set_flat(1, -1.0), out.set_flat(3, 1.0), out.set_flat(5, 0.0);  // v = -1, 1, 0
    PMeanVariance p = d.p_mean_variance_from_output(Variable(out), Variable(Tensor::zeros({3, 1, 1, 1}, DType::F64)), t, false);
    CHECK(p.log_variance.data().flat(0) == doctest::Approx(s.posterior_log_variance_clipped[10]));
    CHECK(p.log_variance.data().flat(1) == doctest::Approx(std::log(s.betas[10])));
    CHECK(p.log_variance.data().flat(2) ==
          doctest::Approx(0.5 * (std::log(s.betas[10]) + s.posterior_log_variance_clipped[10])));
}

TEST_CASE("the hybrid loss: its VLB term trains only the variance half of the output") {
    GaussianDiffusion d = linear_diffusion(ModelVarType::LearnedRange);
    Generator gen(10);
    Tensor x0 = clamp(randn({2, 1, 4, 4}, gen, DType::F64), -1, 1);
    Variable out(randn({2, 2, 4, 4}, gen, DType::F64), true);
    DenoiseFn model = [&](const Variable&, const Tensor&) { return out; };
    Tensor t = Tensor::from_data({0, 300}, {2}, DType::F64), noise = randn(x0.shape(), gen, DType::F64);
    TrainingLosses l = training_losses(d, model, x0, t, noise, LossType::Hybrid);
    sum(l.vb).backward();
    Tensor g = out.grad();
    double eps_part = 0, v_part = 0;
    for (int64_t b = 0; b < 2; ++b)
        for (int64_t i = 0; i < 16; ++i) {
            eps_part += std::abs(g.flat(b * 32 + i));
            v_part += std::abs(g.flat(b * 32 + 16 + i));
        }
    CHECK(eps_part == 0.0);
    CHECK(v_part > 0.0);
    CHECK_THROWS_AS(training_losses(linear_diffusion(ModelVarType::FixedSmall), model, x0, t, noise, LossType::Hybrid),
                    std::invalid_argument);
}

TEST_CASE("the VLB terms are differentiable: gradcheck through vb_terms_bpd") {
    GaussianDiffusion d = linear_diffusion(ModelVarType::LearnedRange, 50);
    Generator gen(12);
    Tensor x0 = clamp(randn({2, 1, 2, 2}, gen, DType::F64), -1, 1);
    x0 = div(Tensor::from_data({-1, -0.2, 0.6, 1, 0.3, 0.1, -0.7, 0.0}, {2, 1, 2, 2}, DType::F64),
             Tensor::scalar(1, DType::F64));
    Tensor t = Tensor::from_data({0, 7}, {2}, DType::F64);
    Tensor xt = d.q_sample(Variable(x0), t, randn(x0.shape(), gen, DType::F64)).data();
    GradcheckResult r = gradcheck([&](const std::vector<Variable>& v) {
        return vb_terms_bpd(d, v[0], x0, Variable(xt), t, false).output;
    }, {mul_scalar(randn({2, 2, 2, 2}, gen, DType::F64), 0.3)});
    INFO(r.report());
    CHECK(r.worst_rel() < 1e-6);
}

TEST_CASE("importance sampling: uniform until warmed up, then weighted by RMS loss, unbiased weights") {
    TimestepSampler s(TimestepSampler::Kind::Importance, 4);
    Generator gen(13);
    CHECK(s.probabilities()[0] == 0.25);
    for (int rep = 0; rep < 10; ++rep)
        s.update(Tensor::from_data({0, 1, 2, 3}, {4}, DType::F64), Tensor::from_data({1, 1, 1, 3}, {4}, DType::F64));
    auto p = s.probabilities();
    CHECK(p[3] == doctest::Approx(3.0 / 6.0 * 0.999 + 0.001 / 4));
    CHECK(p[0] == doctest::Approx(1.0 / 6.0 * 0.999 + 0.001 / 4));
    TimestepSampler::Draw draw = s.sample(20000, gen, DType::F64);
    double w_mean = 0;
    int64_t threes = 0;
    for (int64_t i = 0; i < 20000; ++i) {
        w_mean += draw.weights.flat(i) / 20000;
        threes += draw.t.flat(i) == 3;
    }
    CHECK(w_mean == doctest::Approx(1.0).epsilon(0.02));  // E[1 / (T p_t)] = 1
    CHECK(std::abs(threes - 0.5 * 20000) < 5 * 71);
    TimestepSampler restored(TimestepSampler::Kind::Importance, 4);
    restored.load_state(s.state());
    CHECK(restored.probabilities() == p);
}

TEST_CASE("stratified timesteps: one t in each of B equal slices of 0..T-1, uniform over draws, weights 1") {
    const int64_t T = 1000, B = 8, draws = 4000;
    TimestepSampler s(TimestepSampler::Kind::Stratified, T), u(TimestepSampler::Kind::Uniform, T);
    Generator gen(5), gen_u(5);
    std::vector<int64_t> per_slice(B, 0);
    double mean_t = 0;
    for (int rep = 0; rep < draws; ++rep) {
        const TimestepSampler::Draw d = s.sample(B, gen, DType::F64), du = u.sample(B, gen_u, DType::F64);
        CHECK(d.t.flat(0) == du.t.flat(0));  // the offset is the uniform sampler's first draw
        std::vector<int> in_slice(B, 0);
        for (int64_t b = 0; b < B; ++b) {
            const int64_t t = static_cast<int64_t>(d.t.flat(b));
            REQUIRE(t >= 0);
            REQUIRE(t < T);
            CHECK(d.weights.flat(b) == 1.0);
            ++in_slice[static_cast<size_t>(t * B / T)];
            ++per_slice[static_cast<size_t>(t * B / T)];
            mean_t += static_cast<double>(t) / static_cast<double>(draws * B);
        }
        for (int c : in_slice) REQUIRE(c == 1);
    }
    for (int64_t c : per_slice) CHECK(c == draws);
    // E[t] = (T - 1) / 2; the offset's mean over 4,000 draws has sd (T / B) / sqrt(12 * 4000) = 0.57.
    CHECK(std::abs(mean_t - (T - 1) / 2.0) < 4 * 0.57);
}

namespace {
// A class-conditional Gaussian oracle: class y's data are N(mu_y, 0.04) per pixel, and the "no class"
// label (the last mean) another Gaussian of the same variance. Its eps is exact at any timestep:
// eps_hat = sqrt(1 - abar) (x_t - sqrt(abar) mu_y) / (abar var + 1 - abar). Records each call's batch.
ConditionalDenoiseFn class_gaussian_oracle(const DiffusionSchedule& s, std::vector<double> means,
                                           std::vector<int64_t>& batches) {
    return [&s, means, &batches](const Variable& x_t, const Tensor& t, const Tensor& y) {
        batches.push_back(x_t.size(0));
        Tensor eps(x_t.shape(), x_t.dtype());
        const int64_t per = x_t.numel() / x_t.size(0);
        for (int64_t b = 0; b < x_t.size(0); ++b) {
            const double ab = abar_at(s, t.flat(b)), mu = means[static_cast<size_t>(y.flat(b))];
            for (int64_t i = 0; i < per; ++i)
                eps.set_flat(b * per + i,
                             std::sqrt(1 - ab) * (x_t.data().flat(b * per + i) - std::sqrt(ab) * mu) / (ab * kDataVar + 1 - ab));
        }
        return Variable(eps);
    };
}
}  // namespace

TEST_CASE("classifier-free guidance on a Gaussian oracle: samples have the guided mean (1 + w) mu_y - w mu_none") {
    // With a common variance, (1 + w) eps_y - w eps_none is exactly the eps of N((1 + w) mu_y - w mu_none, var):
    // every sampler must then return that distribution (guide.md §16).
    const int64_t n = 4000;
    GaussianDiffusion d = linear_diffusion(ModelVarType::FixedSmall);
    const std::vector<double> means{-0.3, 0.4, 0.05};  // classes 0, 1; "no class" = 2
    std::vector<int64_t> batches;
    const ConditionalDenoiseFn oracle = class_gaussian_oracle(d.schedule(), means, batches);
    SampleOptions opt;
    opt.dtype = DType::F64;
    opt.clip_denoised = false;
    const GaussianDiffusion ddim = d.respaced(space_timesteps(1000, "ddim50"));
    for (double w : {0.0, 1.0, 3.0})
        for (int64_t y : {0, 1}) {
            const Tensor labels = Tensor::full({n}, double(y), DType::F64);
            const DenoiseFn guided = guided_denoiser(oracle, labels, 2, Guidance{.w = w}, 1);
            const double want = (1 + w) * means[static_cast<size_t>(y)] - w * means[2];
            Generator gen(40 + y);
            batches.clear();
            const Tensor a = ddim_sample_loop(ddim, guided, {n, 1, 1, 1}, gen, 0.0, opt).x0;
            const Tensor b = dpm_solver_pp_2m_sample_loop(d, guided, {n, 1, 1, 1}, gen, 20, opt, 0.5).x0;
            INFO("w " << w << ", class " << y << ": DDIM mean " << mean_of(a) << ", DPM-Solver++ mean " << mean_of(b)
                      << ", want " << want);
            // Within 4 standard errors (0.2 / sqrt(n) = 0.003) plus the solvers' own error.
            CHECK(std::abs(mean_of(a) - want) < 4 * std::sqrt(kDataVar / n) + 0.003);
            CHECK(std::abs(mean_of(b) - want) < 4 * std::sqrt(kDataVar / n) + 0.003);
            // One network call per step: on [x; x] (2n images) when guided, on x alone when w = 0.
            CHECK(batches.size() == 50 + 20);
            for (int64_t bs : batches) CHECK(bs == (w > 0 ? 2 * n : n));
        }
    // DDPM (ancestral, 1000 steps) with guidance, on fewer images.
    const Tensor labels = Tensor::full({2000}, 1.0, DType::F64);
    Generator gen(50);
    const Tensor x = p_sample_loop(d, guided_denoiser(oracle, labels, 2, Guidance{.w = 2.0}, 1), {2000, 1, 1, 1}, gen, opt).x0;
    MESSAGE("DDPM, w 2, class 1: mean " << mean_of(x) << " (want " << 3 * 0.4 - 2 * 0.05 << ")");
    CHECK(std::abs(mean_of(x) - (3 * 0.4 - 2 * 0.05)) < 4 * std::sqrt(kDataVar / 2000) + 0.003);
}

TEST_CASE("guidance mixes only the mean channels, and a learned variance comes from the conditional output") {
    // A fake network: channel 0 = 10 y + 1 (the "mean"), channel 1 = 100 y (the "variance").
    const ConditionalDenoiseFn net = [](const Variable& x_t, const Tensor&, const Tensor& y) {
        Tensor out({x_t.size(0), 2, 1, 1}, DType::F64);
        for (int64_t b = 0; b < x_t.size(0); ++b) out.set_flat(2 * b, 10 * y.flat(b) + 1), out.set_flat(2 * b + 1, 100 * y.flat(b));
        return Variable(out);
    };
    const Tensor labels = Tensor::from_data({1, 2}, {2}, DType::F64);
    const Variable out = guided_denoiser(net, labels, 5, Guidance{.w = 0.5}, 1)(Variable(Tensor::zeros({2, 1, 1, 1}, DType::F64)),
                                                                  Tensor::zeros({2}, DType::F64));
    // mean: 1.5 (10 y + 1) - 0.5 (10 * 5 + 1); variance: 100 y.
    test::check_values(out.data(), {1.5 * 11 - 0.5 * 51, 100, 1.5 * 21 - 0.5 * 51, 200}, 1e-12);
    // Guided only where t is in [10, 20]: image 0 (t = 5) gets the plain conditional output; when no
    // image is in the interval the network is called once, on the batch alone.
    int64_t calls = 0, seen = 0;
    const ConditionalDenoiseFn counted = [&](const Variable& x_t, const Tensor& t, const Tensor& y) {
        ++calls, seen = x_t.size(0);
        return net(x_t, t, y);
    };
    const DenoiseFn interval = guided_denoiser(counted, labels, 5, Guidance{.w = 0.5, .t_min = 10, .t_max = 20}, 1);
    const Variable x2(Tensor::zeros({2, 1, 1, 1}, DType::F64));
    test::check_values(interval(x2, Tensor::from_data({5, 15}, {2}, DType::F64)).data(), {11, 100, 1.5 * 21 - 0.5 * 51, 200}, 1e-12);
    CHECK(seen == 4);
    test::check_values(interval(x2, Tensor::from_data({25, 25}, {2}, DType::F64)).data(), {11, 100, 21, 200}, 1e-12);
    CHECK(calls == 2);
    CHECK(seen == 2);
    CHECK(test::error_message<TensorError>([&] {
              guided_denoiser(net, labels, 5, Guidance{.w = 0.5}, 1)(Variable(Tensor::zeros({3, 1, 1, 1}, DType::F64)), Tensor::zeros({3}, DType::F64));
          }).find("labels f64[2] for a batch of 3") != std::string::npos);
}
