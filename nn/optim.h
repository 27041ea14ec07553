// optim.h: optimisers, gradient clipping and learning-rate schedules.
#pragma once

#include <string>
#include <vector>

#include "nn/module.h"

namespace ddpm {

// Adam (Kingma & Ba, 2015) with bias correction, as torch.optim.Adam:
//   m = b1 m + (1 - b1) g,  v = b2 v + (1 - b2) g^2,
//   p -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps).
// weight_decay adds wd * p to g (Adam) or, with decoupled, scales p by
// (1 - lr * wd) before the update (AdamW, Loshchilov & Hutter, 2019).
struct AdamOptions {
    double lr = 2e-4, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0.0;
    bool decoupled = false;  // true: AdamW
};

class Adam {
public:
    Adam(Module::NamedParameters params, AdamOptions opt);
    void step();  // parameters without a gradient are left alone
    void zero_grad();
    double lr() const { return opt_.lr; }
    void set_lr(double lr) { opt_.lr = lr; }
    void set_beta2(double beta2) { opt_.beta2 = beta2; }
    const AdamOptions& options() const { return opt_; }
    int64_t steps() const { return t_; }

    // State for checkpoints: first and second moments per parameter, and t.
    const Module::NamedParameters& params() const { return params_; }
    std::vector<Tensor>& exp_avg() { return m_; }
    std::vector<Tensor>& exp_avg_sq() { return v_; }
    void set_steps(int64_t t) { t_ = t; }

private:
    Module::NamedParameters params_;
    AdamOptions opt_;
    std::vector<Tensor> m_, v_;
    int64_t t_ = 0;
};

// SGD with momentum, as torch.optim.SGD (dampening 0): buf = mu buf + g (buf = g
// at the first step), p -= lr * buf; weight_decay adds wd * p to g.
class SGD {
public:
    SGD(std::vector<Variable> params, double lr, double momentum = 0.0, double weight_decay = 0.0);
    void step();
    void zero_grad();

private:
    std::vector<Variable> params_;
    double lr_, momentum_, weight_decay_;
    std::vector<Tensor> buf_;
};

// Scales all gradients by min(1, max_norm / ||g||) where ||g|| is the L2 norm
// of every gradient together; returns ||g|| before clipping. A non-finite ||g||
// (some gradient holds a NaN or an infinity) leaves the gradients as they are.
double clip_grad_norm(const std::vector<Variable>& params, double max_norm);

// base_lr times a linear warm-up over the first `warmup` steps (step s gets (s + 1) / warmup)
// times 1 (Constant) or, for Cosine, the decay (1 + cos(pi p)) / 2 to 0 at the end of the
// budget, where p in [0, 1] is the share of the budget (steps or minutes) already spent.
struct LrSchedule {
    enum class Kind { Constant, Cosine };
    double base_lr = 2e-4;
    int64_t warmup = 0;
    Kind kind = Kind::Constant;
    double at(int64_t step, double progress = 0) const;  // step counts from 0
};

}  // namespace ddpm
