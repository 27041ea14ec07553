// class_embedding.cpp
#include "nn/class_embedding.h"

#include "autograd/ops.h"
#include "nn/trace.h"

namespace ddpm {

ClassEmbed::ClassEmbed(int64_t k, int64_t d, Initializer& init) : num_classes(k), dim(d) {
    weight = register_parameter("weight", init.normal({k + 1, d}));
}

// guide.md §16: emb_y = W[y], a row lookup (its gradient lands in the rows that were used).
Variable ClassEmbed::forward(const Tensor& labels) {
    Variable y = embedding(weight, labels);
    LayerTrace::record([&] { return LayerRecord{name(), "embedding", y.shape(), weight.numel(), 0.0}; });
    return y;
}

}  // namespace ddpm
