// timestep_embedding.h: the sinusoidal embedding of the timestep and its MLP.
#pragma once

#include "nn/linear.h"

namespace ddpm {

// t is (B) timesteps; returns (B, dim): with half = dim / 2 and
// freq_i = exp(-ln(10000) * i / (half - 1)), emb = [sin(t * freq), cos(t * freq)]
// (Vaswani et al.'s positional encoding, as DDPM's get_timestep_embedding).
Tensor timestep_embedding(const Tensor& t, int64_t dim, DType dtype);

// Linear(C, 4C) -> SiLU -> Linear(4C, 4C), named "0" and "2" like a Sequential.
class TimeEmbed : public Module {
public:
    TimeEmbed(int64_t ch, Initializer& init);
    Variable forward(const Tensor& t);  // (B) -> (B, 4C)
    int64_t ch;
    std::shared_ptr<Linear> fc0, fc2;
};

}  // namespace ddpm
