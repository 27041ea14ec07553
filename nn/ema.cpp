// ema.cpp
#include "nn/ema.h"

#include <algorithm>

#include "tensor/parallel.h"

namespace ddpm {

EMA::EMA(Module::NamedParameters params, double decay, bool warmup)
    : params_(std::move(params)), decay_(decay), warmup_(warmup) {
    for (auto& [name, p] : params_) shadow_.push_back(p.data().clone());
}

double EMA::current_decay() const {
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
