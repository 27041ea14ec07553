// classifier.cpp
#include "nn/classifier.h"

#include <fmt/format.h>

#include "autograd/ops.h"

namespace ddpm {

Classifier::Classifier(int64_t in_ch, int64_t size, int64_t k, int64_t w, int64_t h, uint64_t seed)
    : in_channels(in_ch), image_size(size), classes(k), width(w), hidden(h) {
    Initializer init(InitScheme::PyTorch, seed);
    const int64_t in[4] = {in_ch, w, 2 * w, 2 * w}, out[4] = {w, 2 * w, 2 * w, 4 * w}, stride[4] = {1, 2, 1, 2};
    for (int i = 0; i < 4; ++i) {
        conv_[i] = register_module(fmt::format("conv{}", i), std::make_shared<Conv2d>(in[i], out[i], 3, stride[i], 1, init));
        norm_[i] = register_module(fmt::format("norm{}", i), std::make_shared<GroupNorm>(8, out[i], init));
    }
    const int64_t s4 = (((size + 1) / 2) + 1) / 2;  // the resolution after two stride-2 convolutions
    fc_hidden_ = register_module("fc_hidden", std::make_shared<Linear>(4 * w * s4 * s4, h, init));
    fc_ = register_module("fc", std::make_shared<Linear>(h, k, init));
    assign_names();
}

Variable Classifier::conv_features(const Variable& x) {
    Variable h = x;
    for (int i = 0; i < 4; ++i) h = norm_[i]->forward_silu(conv_[i]->forward(h));
    return h;
}

Variable Classifier::features(const Variable& x) { return mean(conv_features(x), {2, 3}); }

Variable Classifier::forward(const Variable& x) {
    const Variable h = conv_features(x);
    return fc_->forward(silu(fc_hidden_->forward(reshape(h, {h.size(0), -1}))));
}

Variable cross_entropy(const Variable& logits, const std::vector<uint8_t>& labels) {
    const int64_t B = logits.size(0), K = logits.size(1);
    DDPM_CHECK(static_cast<int64_t>(labels.size()) == B, "cross_entropy",
               fmt::format("{} labels for logits {}", labels.size(), logits.data().describe()));
    Tensor onehot = Tensor::zeros({B, K}, logits.dtype());
    for (int64_t b = 0; b < B; ++b) {
        DDPM_CHECK(labels[b] < K, "cross_entropy", fmt::format("label {} is not below {}", labels[b], K));
        onehot.set_flat(b * K + labels[b], 1.0);
    }
    return -(sum(log_softmax(logits, 1) * Variable(onehot)) / static_cast<double>(B));
}

}  // namespace ddpm
