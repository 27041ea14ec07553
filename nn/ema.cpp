// ema.cpp
#include "nn/ema.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "tensor/parallel.h"

namespace ddpm {

EMA::EMA(Module::NamedParameters params, double decay, bool warmup)
    : params_(std::move(params)), decay_(decay), warmup_(warmup) {
    for (auto& [name, p] : params_) shadow_.push_back(p.data().clone());
}

// guide.md §15: the gamma whose power-function profile has this sigma_rel (Karras et al. 2024,
// Eq. 4), by bisection: sigma_rel(gamma) = sqrt((gamma + 1) / ((gamma + 2)^2 (gamma + 3))).
double EMA::gamma_of_sigma_rel(double sigma_rel) {
    auto sigma = [](double g) { return std::sqrt((g + 1) / ((g + 2) * (g + 2) * (g + 3))); };  // decreasing in g
    if (!(sigma_rel > 0 && sigma_rel < sigma(0)))
        throw std::invalid_argument(fmt::format("EMA sigma_rel {} is outside (0, {:.4f})", sigma_rel, sigma(0)));
    double lo = 0, hi = 1;
    while (sigma(hi) > sigma_rel) hi *= 2;
    for (int i = 0; i < 200 && hi - lo > 1e-12 * hi; ++i) (sigma(0.5 * (lo + hi)) > sigma_rel ? lo : hi) = 0.5 * (lo + hi);
    return 0.5 * (lo + hi);
}

void EMA::set_sigma_rel(double sigma_rel) { power_gamma_ = gamma_of_sigma_rel(sigma_rel); }

// guide.md §15: (1 - 1/t)^(gamma + 1) for the power-function profile, else the fixed
// decay, capped by (1 + n) / (10 + n) while warming up.
double EMA::current_decay() const {
    const double t = 1.0 + static_cast<double>(n_);
    if (power_gamma_ >= 0) return std::pow(1.0 - 1.0 / t, power_gamma_ + 1.0);
    if (!warmup_) return decay_;
    return std::min(decay_, (1.0 + static_cast<double>(n_)) / (10.0 + static_cast<double>(n_)));
}

void EMA::update() {
    const double d = current_decay();
    for (size_t i = 0; i < params_.size(); ++i) {
        dispatch(shadow_[i].dtype(), [&](auto tag) {
            using T = decltype(tag);
            T* s = shadow_[i].data<T>();
            const T* p = params_[i].second.data().data<T>();
            const T a = T(d), b = T(1.0 - d);
            parallel_range(shadow_[i].numel(), kGrainElementwise, [&](int64_t lo, int64_t hi) {
                for (int64_t j = lo; j < hi; ++j) s[j] = a * s[j] + b * p[j];
            });
        });
    }
    ++n_;
}

void EMA::swap() {
    for (size_t i = 0; i < params_.size(); ++i) std::swap(params_[i].second.data(), shadow_[i]);
}

}  // namespace ddpm
