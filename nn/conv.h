// conv.h: the convolution layers of the U-Net.
#pragma once

#include "nn/init.h"
#include "nn/module.h"

namespace ddpm {

// weight (out, in, k, k), bias (out).
class Conv2d : public Module {
public:
    Conv2d(int64_t in, int64_t out, int64_t kernel, int64_t stride, int64_t pad, Initializer& init,
           bool zero_init = false);
    Variable forward(const Variable& x);  // (B, in, H, W) -> (B, out, OH, OW)
    // The same plus image_bias (B, out), one value per image and output channel
    // added to every position (as x + image_bias[:, :, None, None] would, without
    // a pass over the output of its own).
    Variable forward(const Variable& x, const Variable& image_bias);
    Variable weight, bias;
    int64_t in, out, kernel, stride, pad;
};

// Halves the resolution: Conv3x3 with stride 2, padding 1.
class Downsample : public Module {
public:
    Downsample(int64_t ch, Initializer& init);
    Variable forward(const Variable& x);
    std::shared_ptr<Conv2d> conv;
};

// Doubles the resolution: nearest-neighbour x2, then Conv3x3.
class Upsample : public Module {
public:
    Upsample(int64_t ch, Initializer& init);
    Variable forward(const Variable& x);
    std::shared_ptr<Conv2d> conv;
};

}  // namespace ddpm
