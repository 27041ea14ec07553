// resblock.h: the U-Net's residual block with the timestep added in the middle.
#pragma once

#include "nn/activation.h"
#include "nn/conv.h"
#include "nn/group_norm.h"
#include "nn/linear.h"
#include "tensor/random.h"

namespace ddpm {

// h = Conv3x3(SiLU(GN(x)));  h += Linear(SiLU(temb))[:, :, None, None];
// h = Conv3x3(Dropout(SiLU(GN(h))));  return skip(x) + h,
// skip a Conv1x1 when the channel count changes; the last conv starts at zero,
// so a fresh block is the identity (or the 1x1 projection).
// With scale_shift, Linear(SiLU(temb)) gives 2 out values per image, [s, b], and the
// second norm becomes GN(h) (1 + s) + b (Dhariwal & Nichol 2021's adaptive group norm).
class ResBlock : public Module {
public:
    ResBlock(int64_t in, int64_t out, int64_t temb_ch, int64_t groups, double dropout, double eps,
             Initializer& init, bool scale_shift = false);
    // temb_act is SiLU(temb), (B, temb_ch), computed once for all blocks.
    Variable forward(const Variable& x, const Variable& temb_act, Generator& gen);
    std::shared_ptr<GroupNorm> norm1, norm2;
    std::shared_ptr<Conv2d> conv1, conv2, skip;
    std::shared_ptr<Linear> temb_proj;
    std::shared_ptr<Dropout> dropout;
    bool scale_shift;
};

}  // namespace ddpm
