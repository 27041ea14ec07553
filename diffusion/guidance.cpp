// guidance.cpp
#include "diffusion/guidance.h"

#include <fmt/format.h>

#include "autograd/ops.h"
#include "tensor/shape_ops.h"

namespace ddpm {

namespace {
// The weight of each image (B, 1, 1, 1): w where t is in the interval, 0 elsewhere.
Tensor weights_in_interval(const Tensor& t, const Guidance& g, DType dtype) {
    Tensor w({t.size(0), 1, 1, 1}, dtype);
    for (int64_t b = 0; b < t.size(0); ++b) w.set_flat(b, t.flat(b) >= g.t_min && t.flat(b) <= g.t_max ? g.w : 0.0);
    return w;
}
}  // namespace

// guide.md §16: eps~ = (1 + w) eps(x_t, t, y) - w eps(x_t, t, no class), both from one batched call.
DenoiseFn guided_denoiser(ConditionalDenoiseFn model, Tensor labels, int64_t null_label, Guidance g, int64_t channels) {
    // Unguided (training, eval, W = 0): the labelled network itself, with no per-call interval check.
    if (g.w == 0) return [model, labels](const Variable& x_t, const Tensor& t) { return model(x_t, t, labels); };
    return [model, labels, null_label, g, channels](const Variable& x_t, const Tensor& t) {
        const int64_t B = x_t.size(0);
        DDPM_CHECK(labels.dim() == 1 && labels.size(0) == B, "guidance",
                   fmt::format("labels {} for a batch of {}", labels.describe(), B));
        const Tensor w = weights_in_interval(t, g, x_t.dtype());
        bool any = false;
        for (int64_t b = 0; b < B; ++b) any = any || w.flat(b) != 0;
        if (!any) return model(x_t, t, labels);
        const Tensor none = Tensor::full({B}, double(null_label), labels.dtype());
        const Variable out = model(concat({x_t, x_t}, 0), ddpm::concat({t, t}, 0), ddpm::concat({labels, none}, 0));
        const Variable cond = slice(out, 0, B), uncond = slice(out, B, 2 * B);
        const Variable c = narrow(cond, 1, 0, channels), u = narrow(uncond, 1, 0, channels);
        const Variable guided = c + w * (c - u);  // = (1 + w) c - w u
        if (out.size(1) == channels) return guided;
        return concat({guided, narrow(cond, 1, channels, out.size(1) - channels)}, 1);
    };
}

}  // namespace ddpm
