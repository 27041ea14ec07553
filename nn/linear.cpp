// linear.cpp
#include "nn/linear.h"

#include <fmt/format.h>

#include "autograd/ops.h"
#include "nn/trace.h"

namespace ddpm {

Linear::Linear(int64_t in_, int64_t out_, Initializer& init, bool zero_init) : in(in_), out(out_) {
    weight = register_parameter("weight", zero_init ? init.zeros({out, in}) : init.weight({out, in}));
    bias = register_parameter("bias", zero_init ? init.zeros({out}) : init.bias(out, in));
}

Variable Linear::forward(const Variable& x) {
    if (x.dim() != 2 || x.size(1) != in)
        fail("linear(" + name() + ")", fmt::format("input {} for weight [{},{}]", x.data().describe(), out, in));
    Variable y = add(matmul(x, weight, false, true), bias);
    LayerTrace::record([&] {
        return LayerRecord{name(), "linear", y.shape(), weight.numel() + bias.numel(), 2.0 * x.size(0) * in * out};
    });
    return y;
}

}  // namespace ddpm
