// resblock.cpp
#include "nn/resblock.h"

#include "autograd/ops.h"

namespace ddpm {

ResBlock::ResBlock(int64_t in, int64_t out, int64_t temb_ch, int64_t groups, double dropout_, double eps,
                   Initializer& init, bool scale_shift_)
    : scale_shift(scale_shift_) {
    norm1 = register_module("norm1", std::make_shared<GroupNorm>(groups, in, init, eps));
    conv1 = register_module("conv1", std::make_shared<Conv2d>(in, out, 3, 1, 1, init));
    temb_proj = register_module("temb_proj", std::make_shared<Linear>(temb_ch, scale_shift ? 2 * out : out, init));
    norm2 = register_module("norm2", std::make_shared<GroupNorm>(groups, out, init, eps));
    dropout = register_module("dropout", std::make_shared<Dropout>(dropout_));
    conv2 = register_module("conv2", std::make_shared<Conv2d>(out, out, 3, 1, 1, init, /*zero_init=*/true));
    if (in != out) skip = register_module("skip", std::make_shared<Conv2d>(in, out, 1, 1, 0, init));
}

// guide.md §5: GN, SiLU, conv, + temb, GN, SiLU, dropout, conv, + skip.
Variable ResBlock::forward(const Variable& x, const Variable& temb_act, Generator& gen) {
    const Variable emb = temb_proj->forward(temb_act);  // (B, C), or (B, 2C) = [s, b]
    const Variable a = norm1->forward_silu(x);
    Variable h;
    if (scale_shift) {
        h = conv1->forward(a);
        const int64_t C = h.size(1);
        h = norm2->forward_scale_shift_silu(h, narrow(emb, 1, 0, C), narrow(emb, 1, C, C));  // silu(GN(h) (1 + s) + b)
    } else {
        h = norm2->forward_silu(conv1->forward(a, emb));  // conv1(a) + emb[:, :, None, None], one pass
    }
    const Variable shortcut = skip ? skip->forward(x) : x;
    return conv2->forward(dropout->forward(h, gen), Variable(), shortcut);  // shortcut + conv2(...), one pass
}

}  // namespace ddpm
