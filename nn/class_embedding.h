// class_embedding.h: the learned embedding of a class label, added to the timestep embedding
// (improved-diffusion's label_emb; guide.md §16).
#pragma once

#include "nn/init.h"
#include "nn/module.h"

namespace ddpm {

// weight is (K + 1, dim): rows 0..K-1 are the K classes, row K is "no class", the label
// a classifier-free-guided model sees when its label is dropped in training and asks
// for its unconditional prediction when sampling. Initialised N(0, 1) (torch.nn.Embedding).
class ClassEmbed : public Module {
public:
    ClassEmbed(int64_t num_classes, int64_t dim, Initializer& init);
    Variable forward(const Tensor& labels);  // (B) labels in [0, K] -> (B, dim)
    int64_t null_label() const { return num_classes; }
    Variable weight;
    int64_t num_classes, dim;
};

}  // namespace ddpm
