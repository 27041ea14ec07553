// unet.h: epsilon_theta(x_t, t), the DDPM U-Net of Ho et al. 2020 (specified in docs/unet.md).
#pragma once

#include "nn/attention.h"
#include "nn/class_embedding.h"
#include "nn/config.h"
#include "nn/conv.h"
#include "nn/module_list.h"
#include "nn/resblock.h"
#include "nn/timestep_embedding.h"

namespace ddpm {

// One resolution level: its ResBlocks, an AttnBlock after each when the
// resolution is in attn_resolutions, and the resampling step between levels.
struct UNetLevel : Module {
    std::shared_ptr<ModuleList<ResBlock>> block;
    std::shared_ptr<ModuleList<AttnBlock>> attn;
    std::shared_ptr<Downsample> downsample;  // down path, every level but the last
    std::shared_ptr<Upsample> upsample;      // up path, every level but the first
};

class UNet : public Module {
public:
    UNet(const UNetConfig& config, InitScheme scheme = InitScheme::DDPM, uint64_t seed = 0,
         DType dtype = DType::F32);

    // x is (B, in_channels, S, S), t holds B timesteps in [0, T); returns (B, out_channels, S, S).
    // A class-conditional model (num_classes K > 0) also takes labels y (B) in [0, K], K meaning
    // "no class"; without y every image is "no class". An unconditional model refuses y.
    Variable forward(const Variable& x, const Tensor& t, const Tensor& y = Tensor());
    // The label that means "no class" (num_classes), for classifier-free guidance.
    int64_t null_label() const { return config_.num_classes; }

    const UNetConfig& config() const { return config_; }
    // Dropout masks come from here; its state is part of a training checkpoint.
    Generator& dropout_generator() { return dropout_gen_; }

private:
    // The two paths; skip_ch is the width of every activation on the skip stack, ch and
    // res the current width and resolution (updated). Layers are made in the order of
    // their parameters' initialisation.
    void build_down_path(Initializer& init, std::vector<int64_t>& skip_ch, int64_t& ch, int64_t& res);
    void build_up_path(Initializer& init, std::vector<int64_t>& skip_ch, int64_t& ch, int64_t& res);
    std::shared_ptr<ResBlock> make_resblock(int64_t in, int64_t out, Initializer& init) const;
    std::shared_ptr<AttnBlock> make_attnblock(int64_t ch, Initializer& init) const;
    bool has_attn(int64_t res) const;
    Variable embed(const Tensor& t, const Tensor& y, int64_t batch);  // silu(time_embed(t) [+ label_emb(y)])

    UNetConfig config_;
    Generator dropout_gen_;
    std::shared_ptr<TimeEmbed> time_embed_;
    std::shared_ptr<ClassEmbed> label_emb_;  // class-conditional models only
    std::shared_ptr<Conv2d> conv_in_, conv_out_;
    std::shared_ptr<ModuleList<UNetLevel>> down_, up_;
    std::shared_ptr<ResBlock> mid_block_1_, mid_block_2_;
    std::shared_ptr<AttnBlock> mid_attn_1_;
    std::shared_ptr<GroupNorm> norm_out_;
};

}  // namespace ddpm
