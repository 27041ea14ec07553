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
    if (x.dim() < 2 || x.size(1) != channels)
        fail("group_norm(" + name() + ")", fmt::format("input {} for {} channels", x.data().describe(), channels));
    Variable y = group_norm(x, weight, bias, groups, eps);
    LayerTrace::record({name(), "group_norm", y.shape(), 2 * channels, 0.0});
    return y;
}

}  // namespace ddpm
