// linear.h: y = x W^T + b, W is (out, in) as in PyTorch.
#pragma once

#include "nn/init.h"
#include "nn/module.h"

namespace ddpm {

class Linear : public Module {
public:
    Linear(int64_t in, int64_t out, Initializer& init, bool zero_init = false);
    Variable forward(const Variable& x);  // x is (B, in), returns (B, out)
    Variable weight, bias;
    int64_t in, out;
};

}  // namespace ddpm
