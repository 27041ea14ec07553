// attention.cpp: the attention block; its core, softmax(q^T k / sqrt(d)) v, is one op (tensor/attention.h).
#include "nn/attention.h"

#include <fmt/format.h>

#include "autograd/ops.h"
#include "nn/trace.h"

namespace ddpm {

AttnBlock::AttnBlock(int64_t ch_, int64_t heads_, int64_t groups, double eps, Initializer& init)
    : ch(ch_), heads(heads_) {
    if (heads <= 0 || ch % heads != 0)
        fail("AttnBlock", fmt::format("{} channels are not divisible into {} heads", ch, heads));
    norm = register_module("norm", std::make_shared<GroupNorm>(groups, ch, init, eps));
    q = register_module("q", std::make_shared<Conv2d>(ch, ch, 1, 1, 0, init));
    k = register_module("k", std::make_shared<Conv2d>(ch, ch, 1, 1, 0, init));
    v = register_module("v", std::make_shared<Conv2d>(ch, ch, 1, 1, 0, init));
    proj_out = register_module("proj_out", std::make_shared<Conv2d>(ch, ch, 1, 1, 0, init, /*zero_init=*/true));
}

// guide.md §4: w = softmax(q^T k / sqrt(d)), out = v w^T, x + proj(out).
Variable AttnBlock::forward(const Variable& x) {
    const int64_t B = x.size(0), H = x.size(2), W = x.size(3), N = H * W, d = ch / heads;
    Variable h = norm->forward(x);
    // (B, C, H, W) -> (B*heads, d, N): the channels of head j are a contiguous block.
    Variable qh = reshape(q->forward(h), {B * heads, d, N});
    Variable kh = reshape(k->forward(h), {B * heads, d, N});
    Variable vh = reshape(v->forward(h), {B * heads, d, N});
    Variable out = attention(qh, kh, vh);  // (B*heads, d, N); the weights (N queries x N keys) inside
    LayerTrace::record([&] {
        return LayerRecord{name() + ".softmax(qk)v", "attention", {B * heads, N, N}, 0, 2.0 * 2.0 * B * heads * N * N * d};
    });
    return proj_out->forward(reshape(out, {B, ch, H, W}), Variable(), x);  // x + proj_out(out), one pass
}

}  // namespace ddpm
