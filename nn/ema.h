// ema.h: an exponential moving average of the parameters, for evaluation and sampling.
#pragma once

#include "nn/module.h"

namespace ddpm {

// After each optimiser step: shadow = d * shadow + (1 - d) * param, with
// d = min(decay, (1 + n) / (10 + n)) when warm-up is on (n = updates so far),
// so that early averages are not dominated by the random initialisation.
class EMA {
public:
    EMA(Module::NamedParameters params, double decay, bool warmup = true);
    void update();
    double current_decay() const;  // d for the next update
    // Exchanges the live parameters and the averages (call again to swap back).
    void swap();
    // Swaps the averages in for the lifetime of the guard.
    struct Scope {
        explicit Scope(EMA& e) : ema(e) { ema.swap(); }
        ~Scope() { ema.swap(); }
        EMA& ema;
    };

    int64_t updates() const { return n_; }
    void set_updates(int64_t n) { n_ = n; }
    double decay() const { return decay_; }
    std::vector<Tensor>& shadow() { return shadow_; }
    const Module::NamedParameters& params() const { return params_; }

private:
    Module::NamedParameters params_;
    std::vector<Tensor> shadow_;
    double decay_;
    bool warmup_;
    int64_t n_ = 0;
};

}  // namespace ddpm
