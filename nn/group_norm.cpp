// group_norm.cpp
#include "nn/group_norm.h"

#include <fmt/format.h>

#include "autograd/ops.h"
#include "nn/trace.h"

namespace ddpm {

GroupNorm::GroupNorm(int64_t groups_, int64_t channels_, Initializer& init, double eps_)
    : groups(groups_), channels(channels_), eps(eps_) {
    if (groups <= 0 || channels % groups != 0)
        fail("GroupNorm", fmt::format("{} channels are not divisible into {} groups", channels, groups));
    weight = register_parameter("weight", init.ones({channels}));
    bias = register_parameter("bias", init.zeros({channels}));
}

Variable GroupNorm::forward(const Variable& x) {
    check_input(x);
    Variable y = group_norm(x, weight, bias, groups, eps);
    LayerTrace::record([&] { return LayerRecord{name(), "group_norm", y.shape(), 2 * channels, 0.0}; });
    return y;
}

Variable GroupNorm::forward_silu(const Variable& x) {
    check_input(x);
    Variable y = group_norm_silu(x, weight, bias, groups, eps);
    LayerTrace::record([&] { return LayerRecord{name(), "group_norm_silu", y.shape(), 2 * channels, 0.0}; });
    return y;
}

// guide.md §5: GN(x) (1 + s) + b = xhat (gamma (1 + s)) + (beta (1 + s) + b): one affine per (image, channel).
Variable GroupNorm::forward_scale_shift_silu(const Variable& x, const Variable& scale, const Variable& shift) {
    check_input(x);
    if (scale.shape() != Shape{x.size(0), channels} || shift.shape() != scale.shape())
        fail("group_norm(" + name() + ")", fmt::format("scale {} and shift {} for input {}", scale.data().describe(),
                                                       shift.data().describe(), x.data().describe()));
    const Variable one_plus_s = add_scalar(scale, 1.0);
    Variable y = group_norm_silu(x, weight * one_plus_s, bias * one_plus_s + shift, groups, eps);
    LayerTrace::record([&] { return LayerRecord{name(), "group_norm_silu", y.shape(), 2 * channels, 0.0}; });
    return y;
}

void GroupNorm::check_input(const Variable& x) const {
    if (x.dim() < 2 || x.size(1) != channels)
        fail("group_norm(" + name() + ")", fmt::format("input {} for {} channels", x.data().describe(), channels));
}

}  // namespace ddpm
