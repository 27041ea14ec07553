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
    // (B, in, H, W) -> (B, out, OH, OW), plus, where defined, image_bias (B, out):
    // one value per image and output channel added at every position (as
    // y + image_bias[:, :, None, None] would), and residual (B, out, OH, OW) (as
    // residual + y would); both added as the output is written, with no pass over
    // it of their own.
    Variable forward(const Variable& x, const Variable& image_bias = Variable(),
                     const Variable& residual = Variable());
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
