// guidance.cpp
#include "diffusion/guidance.h"

#include <fmt/format.h>

#include "autograd/ops.h"
#include "tensor/shape_ops.h"

namespace ddpm {

// guide.md §16: eps~ = (1 + w) eps(x_t, t, y) - w eps(x_t, t, no class), both from one batched call.
DenoiseFn guided_denoiser(ConditionalDenoiseFn model, Tensor labels, int64_t null_label, double w, int64_t channels) {
    if (w == 0) return [model, labels](const Variable& x_t, const Tensor& t) { return model(x_t, t, labels); };
    return [model, labels, null_label, w, channels](const Variable& x_t, const Tensor& t) {
        const int64_t B = x_t.size(0);
        DDPM_CHECK(labels.dim() == 1 && labels.size(0) == B, "guidance",
                   fmt::format("labels {} for a batch of {}", labels.describe(), B));
        const Tensor none = Tensor::full({B}, double(null_label), labels.dtype());
        const Variable out = model(concat({x_t, x_t}, 0), ddpm::concat({t, t}, 0), ddpm::concat({labels, none}, 0));
        const Variable cond = slice(out, 0, B), uncond = slice(out, B, 2 * B);
        const Variable guided = (1 + w) * narrow(cond, 1, 0, channels) - w * narrow(uncond, 1, 0, channels);
        if (out.size(1) == channels) return guided;
        return concat({guided, narrow(cond, 1, channels, out.size(1) - channels)}, 1);
    };
}

}  // namespace ddpm
