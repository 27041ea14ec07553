// mlp_denoiser.cpp
#include "nn/mlp_denoiser.h"

#include "autograd/ops.h"
#include "nn/timestep_embedding.h"

namespace ddpm {

MLPDenoiser::MLPDenoiser(int64_t dim_, int64_t width, int64_t layers, Initializer& init, int64_t emb_dim_)
    : dim(dim_), emb_dim(emb_dim_) {
    in_proj = register_module("in_proj", std::make_shared<Linear>(dim, width, init));
    temb0 = register_module("temb.0", std::make_shared<Linear>(emb_dim, width, init));
    temb1 = register_module("temb.1", std::make_shared<Linear>(width, width, init));
    hidden = register_module("hidden", std::make_shared<ModuleList<Linear>>());
    for (int64_t i = 0; i < layers; ++i) hidden->push_back(std::make_shared<Linear>(width, width, init));
    out_proj = register_module("out_proj", std::make_shared<Linear>(width, dim, init));
    assign_names();
}

Variable MLPDenoiser::forward(const Variable& x, const Tensor& t) {
    Variable emb(timestep_embedding(t, emb_dim, x.dtype()));
    Variable h = silu(in_proj->forward(x) + temb1->forward(silu(temb0->forward(emb))));
    for (size_t i = 0; i < hidden->size(); ++i) h = silu((*hidden)[i].forward(h));
    return out_proj->forward(h);
}

}  // namespace ddpm
