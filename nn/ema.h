// ema.h: an exponential moving average of the parameters, for evaluation and sampling.
#pragma once

#include "nn/module.h"

namespace ddpm {

// After each optimiser step: shadow = d * shadow + (1 - d) * param, with
// d = min(decay, (1 + n) / (10 + n)) when warm-up is on (n = updates so far),
// so that early averages are not dominated by the random initialisation.
//
// Or, after set_sigma_rel, the power-function profile of Karras et al. 2024 ("Analyzing
// and improving the training dynamics of diffusion models", Eq. 3): d = (1 - 1/t)^(gamma + 1)
// at update t = n + 1. It averages the weights of the last fraction of training, whatever
// its length, with a relative width (std of the averaging profile / training time)
//   sigma_rel = sqrt((gamma + 1) / ((gamma + 2)^2 (gamma + 3)))   (their Eq. 4),
// so a run with a time budget needs no decay tuned to its number of steps.
class EMA {
public:
    EMA(Module::NamedParameters params, double decay, bool warmup = true);
    // Switches to the power-function profile with the gamma of this sigma_rel, in (0, 0.288).
    void set_sigma_rel(double sigma_rel);
    static double gamma_of_sigma_rel(double sigma_rel);
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
    double power_gamma_ = -1;  // >= 0: the power-function profile
    int64_t n_ = 0;
};

}  // namespace ddpm
