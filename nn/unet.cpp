// unet.cpp: the down path pushes every activation on a skip stack, the up path
// pops one into each of its ResBlocks (concatenated along channels).
#include "nn/unet.h"

#include <fmt/format.h>

#include <algorithm>

#include "autograd/ops.h"

namespace ddpm {

// guide.md §5: eps_theta(x_t, t): the down path pushes every activation, the up path pops one per ResBlock.
UNet::UNet(const UNetConfig& cfg, InitScheme scheme, uint64_t seed, DType dtype)
    : config_(cfg), dropout_gen_(seed ^ 0x9E3779B97F4A7C15ull) {
    config_.validate();
    Initializer init(scheme, seed, dtype);
    const int64_t C = cfg.channels;
    time_embed_ = register_module("time_embed", std::make_shared<TimeEmbed>(C, init));
    conv_in_ = register_module("conv_in", std::make_shared<Conv2d>(cfg.in_channels, C, 3, 1, 1, init));
    std::vector<int64_t> skip_ch{C};
    int64_t ch = C, res = cfg.image_size;
    build_down_path(init, skip_ch, ch, res);
    mid_block_1_ = register_module("mid.block_1", make_resblock(ch, ch, init));
    mid_attn_1_ = register_module("mid.attn_1", make_attnblock(ch, init));
    mid_block_2_ = register_module("mid.block_2", make_resblock(ch, ch, init));
    build_up_path(init, skip_ch, ch, res);
    norm_out_ = register_module("norm_out", std::make_shared<GroupNorm>(cfg.groups, ch, init, cfg.gn_eps));
    conv_out_ = register_module("conv_out",
                                std::make_shared<Conv2d>(ch, cfg.out_channels, 3, 1, 1, init, /*zero_init=*/true));
    // Drawn last, so that an unconditional config's other weights start the same with or without it.
    if (cfg.num_classes > 0) label_emb_ = register_module("label_emb", std::make_shared<ClassEmbed>(cfg.num_classes, 4 * C, init));
    assign_names();
}

bool UNet::has_attn(int64_t res) const {
    const std::vector<int64_t>& a = config_.attn_resolutions;
    return std::find(a.begin(), a.end(), res) != a.end();
}

std::shared_ptr<ResBlock> UNet::make_resblock(int64_t in, int64_t out, Initializer& init) const {
    return std::make_shared<ResBlock>(in, out, 4 * config_.channels, config_.groups, config_.dropout, config_.gn_eps, init,
                                      config_.scale_shift_norm);
}

std::shared_ptr<AttnBlock> UNet::make_attnblock(int64_t ch, Initializer& init) const {
    return std::make_shared<AttnBlock>(ch, config_.heads, config_.groups, config_.gn_eps, init);
}

// Level i: num_res_blocks ResBlocks to width C ch_mult[i] (each followed by attention at
// the attention resolutions), then a downsample except at the last level.
void UNet::build_down_path(Initializer& init, std::vector<int64_t>& skip_ch, int64_t& ch, int64_t& res) {
    const int64_t levels = static_cast<int64_t>(config_.ch_mult.size());
    down_ = register_module("down", std::make_shared<ModuleList<UNetLevel>>());
    for (int64_t i = 0; i < levels; ++i) {
        auto level = std::make_shared<UNetLevel>();
        level->block = level->register_module("block", std::make_shared<ModuleList<ResBlock>>());
        level->attn = level->register_module("attn", std::make_shared<ModuleList<AttnBlock>>());
        for (int64_t j = 0; j < config_.num_res_blocks; ++j) {
            level->block->push_back(make_resblock(ch, config_.channels * config_.ch_mult[i], init));
            ch = config_.channels * config_.ch_mult[i];
            if (has_attn(res)) level->attn->push_back(make_attnblock(ch, init));
            skip_ch.push_back(ch);
        }
        if (i != levels - 1) {
            level->downsample = level->register_module("downsample", std::make_shared<Downsample>(ch, init));
            skip_ch.push_back(ch);
            res /= 2;
        }
        down_->push_back(level);
    }
}

// Built in reverse level order (up.i is level i): num_res_blocks + 1 ResBlocks, each
// taking the concatenation of the current activation and one popped from the skip stack.
void UNet::build_up_path(Initializer& init, std::vector<int64_t>& skip_ch, int64_t& ch, int64_t& res) {
    const int64_t levels = static_cast<int64_t>(config_.ch_mult.size());
    up_ = register_module("up", std::make_shared<ModuleList<UNetLevel>>());
    std::vector<std::shared_ptr<UNetLevel>> up_levels(levels);
    for (int64_t i = levels - 1; i >= 0; --i) {
        auto level = std::make_shared<UNetLevel>();
        level->block = level->register_module("block", std::make_shared<ModuleList<ResBlock>>());
        level->attn = level->register_module("attn", std::make_shared<ModuleList<AttnBlock>>());
        for (int64_t j = 0; j < config_.num_res_blocks + 1; ++j) {
            level->block->push_back(make_resblock(ch + skip_ch.back(), config_.channels * config_.ch_mult[i], init));
            skip_ch.pop_back();
            ch = config_.channels * config_.ch_mult[i];
            if (has_attn(res)) level->attn->push_back(make_attnblock(ch, init));
        }
        if (i != 0) {
            level->upsample = level->register_module("upsample", std::make_shared<Upsample>(ch, init));
            res *= 2;
        }
        up_levels[i] = level;
    }
    for (auto& l : up_levels) up_->push_back(l);
}

// guide.md §16: emb = time_embed(t) + label_emb(y) for a class-conditional model (as improved-diffusion).
Variable UNet::embed(const Tensor& t, const Tensor& y, int64_t batch) {
    Variable emb = time_embed_->forward(t);
    if (!label_emb_) {
        if (y.defined()) fail("unet", fmt::format("class labels given to the unconditional '{}' model", config_.name));
        return silu(emb);
    }
    if (y.defined() && (y.dim() != 1 || y.size(0) != batch))
        fail("unet", fmt::format("labels {} for a batch of {}", y.describe(), batch));
    const Tensor labels = y.defined() ? y : Tensor::full({batch}, double(null_label()), DType::F32);
    return silu(emb + label_emb_->forward(labels));
}

Variable UNet::forward(const Variable& x, const Tensor& t, const Tensor& y) {
    const UNetConfig& c = config_;
    if (x.dim() != 4 || x.size(1) != c.in_channels || x.size(2) != c.image_size || x.size(3) != c.image_size)
        fail("unet", fmt::format("input {} but the '{}' config takes [B,{},{},{}]", x.data().describe(), c.name,
                                 c.in_channels, c.image_size, c.image_size));
    if (t.dim() != 1 || t.size(0) != x.size(0))
        fail("unet", fmt::format("timesteps {} for a batch of {}", t.describe(), x.size(0)));
    const int64_t levels = static_cast<int64_t>(c.ch_mult.size());

    Variable temb_act = embed(t, y, x.size(0));  // every ResBlock applies SiLU to temb first
    VariableList hs{conv_in_->forward(x)};  // the skip connections (pooled: no heap call per step)
    for (int64_t i = 0; i < levels; ++i) {
        UNetLevel& level = (*down_)[i];
        for (int64_t j = 0; j < c.num_res_blocks; ++j) {
            Variable h = (*level.block)[j].forward(hs.back(), temb_act, dropout_gen_);
            if (!level.attn->empty()) h = (*level.attn)[j].forward(h);
            hs.push_back(h);
        }
        if (level.downsample) hs.push_back(level.downsample->forward(hs.back()));
    }
    Variable h = hs.back();
    h = mid_block_1_->forward(h, temb_act, dropout_gen_);
    h = mid_attn_1_->forward(h);
    h = mid_block_2_->forward(h, temb_act, dropout_gen_);
    for (int64_t i = levels - 1; i >= 0; --i) {
        UNetLevel& level = (*up_)[i];
        for (int64_t j = 0; j < c.num_res_blocks + 1; ++j) {
            h = (*level.block)[j].forward(concat({h, hs.back()}, 1), temb_act, dropout_gen_);
            hs.pop_back();
            if (!level.attn->empty()) h = (*level.attn)[j].forward(h);
        }
        if (level.upsample) h = level.upsample->forward(h);
    }
    return conv_out_->forward(norm_out_->forward_silu(h));
}

}  // namespace ddpm
