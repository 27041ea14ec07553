// activation.h: SiLU and Dropout as modules (no parameters), for building
// networks layer by layer; the U-Net's blocks call the same functions directly.
#pragma once

#include "autograd/ops.h"
#include "nn/module.h"

namespace ddpm {

// x * sigmoid(x) (Elfwing et al., 2018), the U-Net's nonlinearity.
class SiLU : public Module {
public:
    Variable forward(const Variable& x) { return silu(x); }
};

// Inverted dropout while training, the identity in eval mode.
class Dropout : public Module {
public:
    explicit Dropout(double p) : p(p) {}
    Variable forward(const Variable& x, Generator& gen) { return dropout(x, p, gen, is_training()); }
    double p;
};

}  // namespace ddpm
