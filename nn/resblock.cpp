// resblock.cpp
#include "nn/resblock.h"

#include "autograd/ops.h"

namespace ddpm {

ResBlock::ResBlock(int64_t in, int64_t out, int64_t temb_ch, int64_t groups, double dropout_, double eps,
                   Initializer& init) {
    norm1 = register_module("norm1", std::make_shared<GroupNorm>(groups, in, init, eps));
    conv1 = register_module("conv1", std::make_shared<Conv2d>(in, out, 3, 1, 1, init));
    temb_proj = register_module("temb_proj", std::make_shared<Linear>(temb_ch, out, init));
    norm2 = register_module("norm2", std::make_shared<GroupNorm>(groups, out, init, eps));
    dropout = register_module("dropout", std::make_shared<Dropout>(dropout_));
    conv2 = register_module("conv2", std::make_shared<Conv2d>(out, out, 3, 1, 1, init, /*zero_init=*/true));
    if (in != out) skip = register_module("skip", std::make_shared<Conv2d>(in, out, 1, 1, 0, init));
}

// guide.md §5: GN, SiLU, conv, + temb, GN, SiLU, dropout, conv, + skip.
Variable ResBlock::forward(const Variable& x, const Variable& temb_act, Generator& gen) {
    Variable h = conv1->forward(norm1->forward_silu(x));
    const int64_t B = h.size(0), C = h.size(1);
    h = h + reshape(temb_proj->forward(temb_act), {B, C, 1, 1});
    h = conv2->forward(dropout->forward(norm2->forward_silu(h), gen));
    return (skip ? skip->forward(x) : x) + h;
}

}  // namespace ddpm
