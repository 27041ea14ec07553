// attention.h: multi-head self-attention over the spatial positions.
#pragma once

#include "nn/conv.h"
#include "nn/group_norm.h"

namespace ddpm {

// h = GN(x); q, k, v = Conv1x1(h) each; per head (d = C / heads channels),
// w = softmax(q^T k / sqrt(d)) over the H*W key positions; out = v w^T;
// return x + Conv1x1(out), the projection starting at zero.
class AttnBlock : public Module {
public:
    AttnBlock(int64_t ch, int64_t heads, int64_t groups, double eps, Initializer& init);
    Variable forward(const Variable& x);
    std::shared_ptr<GroupNorm> norm;
    std::shared_ptr<Conv2d> q, k, v, proj_out;
    int64_t ch, heads;
};

}  // namespace ddpm
