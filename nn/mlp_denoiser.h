// mlp_denoiser.h: eps_theta(x_t, t) for low-dimensional data (the 2-D toy):
// h = SiLU(Linear(x) + Linear(SiLU(Linear(emb(t))))), then hidden layers, then Linear to dim.
#pragma once

#include "nn/linear.h"
#include "nn/module_list.h"

namespace ddpm {

class MLPDenoiser : public Module {
public:
    MLPDenoiser(int64_t dim, int64_t hidden, int64_t layers, Initializer& init, int64_t emb_dim = 32);
    Variable forward(const Variable& x, const Tensor& t);  // x is (B, dim), t is (B)
    int64_t dim, emb_dim;
    std::shared_ptr<Linear> in_proj, temb0, temb1, out_proj;
    std::shared_ptr<ModuleList<Linear>> hidden;
};

}  // namespace ddpm
