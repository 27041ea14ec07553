// conv.cpp
#include "nn/conv.h"

#include <fmt/format.h>

#include "autograd/ops.h"
#include "nn/trace.h"

namespace ddpm {

Conv2d::Conv2d(int64_t in_, int64_t out_, int64_t kernel_, int64_t stride_, int64_t pad_, Initializer& init,
               bool zero_init)
    : in(in_), out(out_), kernel(kernel_), stride(stride_), pad(pad_) {
    const Shape w{out, in, kernel, kernel};
    weight = register_parameter("weight", zero_init ? init.zeros(w) : init.weight(w));
    bias = register_parameter("bias", zero_init ? init.zeros({out}) : init.bias(out, in * kernel * kernel));
}

Variable Conv2d::forward(const Variable& x, const Variable& image_bias, const Variable& residual) {
    if (x.dim() != 4 || x.size(1) != in)
        fail("conv2d(" + name() + ")",
             fmt::format("input {} weight {}: channels differ", x.data().describe(), weight.data().describe()));
    if (image_bias.defined() && image_bias.shape() != Shape{x.size(0), out})
        fail("conv2d(" + name() + ")", fmt::format("image bias {} for input {} and {} output channels",
                                                  image_bias.data().describe(), x.data().describe(), out));
    // bias (out) + image_bias (B, out): the (B, out) bias of each image, by broadcasting.
    Variable y = conv2d(x, weight, image_bias.defined() ? image_bias + bias : bias, stride, pad, residual);
    LayerTrace::record([&] {
        return LayerRecord{name(),      "conv2d", y.shape(), weight.numel() + bias.numel(),
                           2.0 * y.numel() * in * kernel * kernel, x.shape(), kernel, stride, pad};
    });
    return y;
}

Downsample::Downsample(int64_t ch, Initializer& init) {
    conv = register_module("conv", std::make_shared<Conv2d>(ch, ch, 3, 2, 1, init));
}
Variable Downsample::forward(const Variable& x) { return conv->forward(x); }

Upsample::Upsample(int64_t ch, Initializer& init) {
    conv = register_module("conv", std::make_shared<Conv2d>(ch, ch, 3, 1, 1, init));
}
Variable Upsample::forward(const Variable& x) { return conv->forward(upsample_nearest2x(x)); }

}  // namespace ddpm
