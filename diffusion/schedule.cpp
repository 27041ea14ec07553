// schedule.cpp
#include "diffusion/schedule.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace ddpm {

// guide.md §6: beta_t linear (1e-4 .. 0.02, x 1000/T) or cosine.
std::vector<double> make_betas(ScheduleKind kind, int64_t T) {
    if (T < 2) throw std::invalid_argument(fmt::format("diffusion: T = {} must be at least 2", T));
    std::vector<double> b(static_cast<size_t>(T));
    if (kind == ScheduleKind::Linear) {
        const double scale = 1000.0 / static_cast<double>(T), lo = scale * 1e-4, hi = scale * 0.02;
        for (int64_t i = 0; i < T; ++i) b[i] = lo + (hi - lo) * static_cast<double>(i) / static_cast<double>(T - 1);
    } else {
        const double s = 0.008;
        auto abar = [&](double u) { return std::pow(std::cos((u + s) / (1 + s) * M_PI / 2), 2); };
        for (int64_t i = 0; i < T; ++i)
            b[i] = std::min(1.0 - abar(double(i + 1) / double(T)) / abar(double(i) / double(T)), 0.999);
    }
    return b;
}

ScheduleKind parse_schedule(const std::string& name) {
    if (name == "linear") return ScheduleKind::Linear;
    if (name == "cosine") return ScheduleKind::Cosine;
    throw std::invalid_argument("unknown noise schedule '" + name + "' (linear or cosine)");
}

// guide.md §6: alpha_t = 1 - beta_t, abar_t = prod alpha_s, and every derived array.
DiffusionSchedule DiffusionSchedule::from_betas(std::vector<double> betas) {
    DiffusionSchedule s;
    s.T = static_cast<int64_t>(betas.size());
    for (double b : betas)
        if (!(b > 0.0 && b <= 1.0)) throw std::invalid_argument(fmt::format("diffusion: beta {} is not in (0, 1]", b));
    const size_t T = betas.size();
    s.betas = std::move(betas);
    s.alphas.resize(T), s.alphas_cumprod.resize(T), s.alphas_cumprod_prev.resize(T), s.alphas_cumprod_next.resize(T);
    double prod = 1.0;
    for (size_t t = 0; t < T; ++t) {
        s.alphas[t] = 1.0 - s.betas[t];
        prod *= s.alphas[t];
        s.alphas_cumprod[t] = prod;
    }
    for (size_t t = 0; t < T; ++t) {
        s.alphas_cumprod_prev[t] = t == 0 ? 1.0 : s.alphas_cumprod[t - 1];
        s.alphas_cumprod_next[t] = t + 1 == T ? 0.0 : s.alphas_cumprod[t + 1];
        const double ab = s.alphas_cumprod[t], abp = s.alphas_cumprod_prev[t];
        s.sqrt_alphas_cumprod.push_back(std::sqrt(ab));
        s.sqrt_one_minus_alphas_cumprod.push_back(std::sqrt(1.0 - ab));
        s.log_one_minus_alphas_cumprod.push_back(std::log(1.0 - ab));
        s.sqrt_recip_alphas_cumprod.push_back(std::sqrt(1.0 / ab));
        s.sqrt_recipm1_alphas_cumprod.push_back(std::sqrt(1.0 / ab - 1.0));
        s.posterior_variance.push_back(s.betas[t] * (1.0 - abp) / (1.0 - ab));
        s.posterior_mean_coef1.push_back(s.betas[t] * std::sqrt(abp) / (1.0 - ab));
        s.posterior_mean_coef2.push_back((1.0 - abp) * std::sqrt(s.alphas[t]) / (1.0 - ab));
    }
    // beta~_0 = 0, so its log is clipped to the next entry's (the decoder at t = 0 never uses it).
    for (size_t t = 0; t < T; ++t)
        s.posterior_log_variance_clipped.push_back(std::log(s.posterior_variance[t == 0 ? 1 : t]));
    return s;
}

// guide.md §10: which timesteps a shortened chain keeps.
std::vector<int64_t> space_timesteps(int64_t T, const std::string& spec) {
    auto count = [&](const std::string& digits) {
        size_t used = 0;
        int64_t n = 0;
        try {
            n = std::stoll(digits, &used);
        } catch (const std::exception&) {
            used = 0;
        }
        if (used != digits.size() || digits.empty() || n < 1 || n > T)
            throw std::invalid_argument(
                fmt::format("timestep spacing '{}': need a step count in [1, {}] (e.g. ddim50, trailing50, 250)", spec, T));
        return n;
    };
    std::vector<int64_t> use;
    if (spec.rfind("ddim", 0) == 0) {
        const int64_t n = count(spec.substr(4));
        for (int64_t stride = 1; stride <= T; ++stride)
            if ((T + stride - 1) / stride == n) {
                for (int64_t t = 0; t < T; t += stride) use.push_back(t);
                return use;
            }
        throw std::invalid_argument(fmt::format("timestep spacing '{}': no integer stride gives {} steps of {}", spec, n, T));
    }
    if (spec.rfind("trailing", 0) == 0) {
        const int64_t n = count(spec.substr(8));
        for (int64_t i = 0; i < n; ++i)
            use.push_back(static_cast<int64_t>(std::llround(double(T) - double(i) * double(T) / double(n))) - 1);
    } else {
        const int64_t n = count(spec);
        if (n == 1) {
            use.push_back(0);
        } else {
            const double stride = double(T - 1) / double(n - 1);
            for (int64_t i = 0; i < n; ++i) use.push_back(static_cast<int64_t>(std::llround(i * stride)));
        }
    }
    std::sort(use.begin(), use.end());
    use.erase(std::unique(use.begin(), use.end()), use.end());
    return use;
}

// guide.md §10: beta_i = 1 - abar_{use[i]} / abar_{use[i-1]}: same abar at the kept steps.
DiffusionSchedule respace(const DiffusionSchedule& base, const std::vector<int64_t>& use) {
    std::vector<double> betas;
    double last = 1.0;
    int64_t prev = -1;
    for (int64_t t : use) {
        if (t <= prev || t >= base.T) throw std::invalid_argument("respace: timesteps must be increasing and below T");
        betas.push_back(1.0 - base.alphas_cumprod[t] / last);
        last = base.alphas_cumprod[t];
        prev = t;
    }
    return DiffusionSchedule::from_betas(std::move(betas));
}

}  // namespace ddpm
