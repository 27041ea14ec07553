// classifier.h: a small CNN image classifier, the second kind of model this framework
// trains. `ddpm fid` (app/fid.h) measures sample quality in its feature space: a Fréchet
// distance of our own, since Inception weights cannot be fetched here.
//
//   x (B, C, S, S) -> conv3x3 (C -> w)      GN SiLU      S x S
//                  -> conv3x3/2 (w -> 2w)   GN SiLU      S/2
//                  -> conv3x3 (2w -> 2w)    GN SiLU      S/2
//                  -> conv3x3/2 (2w -> 4w)  GN SiLU      S/4        conv_features (B, 4w, S/4, S/4)
//                  -> flatten, Linear (4w (S/4)^2 -> H), SiLU
//                  -> Linear (H -> classes)             logits (B, classes)
//
// features(x), the mean of conv_features over positions (B, 4w), is the feature space:
// the last convolution block, globally average-pooled, as Inception's pool3 is.
#pragma once

#include <memory>

#include "nn/conv.h"
#include "nn/group_norm.h"
#include "nn/linear.h"

namespace ddpm {

class Classifier : public Module {
public:
    Classifier(int64_t in_channels, int64_t image_size, int64_t classes, int64_t width, int64_t hidden, uint64_t seed);
    Variable conv_features(const Variable& x);             // (B, 4 width, S/4, S/4)
    Variable features(const Variable& x);                  // (B, 4 width)
    Variable forward(const Variable& x);                   // logits (B, classes)
    int64_t in_channels, image_size, classes, width, hidden;

private:
    std::shared_ptr<Conv2d> conv_[4];
    std::shared_ptr<GroupNorm> norm_[4];
    std::shared_ptr<Linear> fc_hidden_, fc_;
};

// Cross-entropy of logits (B, K) against integer labels (B): mean_b -log softmax(logits_b)[label_b].
Variable cross_entropy(const Variable& logits, const std::vector<uint8_t>& labels);

}  // namespace ddpm
