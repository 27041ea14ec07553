// init.h: parameter initialisation, reproducible from a seed.
#pragma once

#include "tensor/random.h"
#include "tensor/tensor.h"

namespace ddpm {

enum class InitScheme {
    // DDPM (Ho et al.'s code): variance scaling, fan_avg, uniform — Glorot-uniform,
    // U(-a, a) with a = sqrt(3 * scale / ((fan_in + fan_out) / 2)); biases 0.
    DDPM,
    // PyTorch's default for Conv2d/Linear: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for
    // weights (kaiming_uniform with a = sqrt(5)) and for biases.
    PyTorch,
};

// Hands out initial values in creation order from one seeded generator.
class Initializer {
public:
    Initializer(InitScheme scheme, uint64_t seed, DType dtype = DType::F32)
        : scheme_(scheme), gen_(seed), dtype_(dtype) {}
    DType dtype() const { return dtype_; }

    // weight is (out, in, ...): fan_in = in * receptive field, fan_out = out * receptive field.
    Tensor weight(const Shape& shape);
    Tensor bias(int64_t n, int64_t fan_in);
    Tensor normal(const Shape& shape, double std = 1.0);  // N(0, std^2), as torch.nn.Embedding's default
    Tensor zeros(const Shape& shape) const { return Tensor::zeros(shape, dtype_); }
    Tensor ones(const Shape& shape) const { return Tensor::ones(shape, dtype_); }

private:
    InitScheme scheme_;
    Generator gen_;
    DType dtype_;
};

}  // namespace ddpm
