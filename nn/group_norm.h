// group_norm.h: the GroupNorm layer, weight (gamma) 1 and bias (beta) 0 at start.
#pragma once

#include "nn/init.h"
#include "nn/module.h"

namespace ddpm {

class GroupNorm : public Module {
public:
    GroupNorm(int64_t groups, int64_t channels, Initializer& init, double eps = 1e-5);
    Variable forward(const Variable& x);
    Variable forward_silu(const Variable& x);  // silu(forward(x)), fused
    // silu(forward(x) (1 + scale) + shift) with scale, shift (B, channels), one row per image:
    // Dhariwal & Nichol 2021's adaptive group norm, fused as a per-image gamma and beta.
    Variable forward_scale_shift_silu(const Variable& x, const Variable& scale, const Variable& shift);
    Variable weight, bias;
    int64_t groups, channels;
    double eps;

private:
    void check_input(const Variable& x) const;
};

}  // namespace ddpm
