// ops_norm.cpp: group norm with its fused backward.
#include "autograd/ops.h"
#include "autograd/profiler.h"
#include "tensor/group_norm.h"

namespace ddpm {

Variable group_norm(const Variable& x, const Variable& gamma, const Variable& beta, int64_t groups, double eps) {
    OpTimer timer("group_norm");
    GroupNormOut f = group_norm_forward(x.data(), gamma.data(), beta.data(), groups, eps);
    return Variable::make_result(
        std::move(f.y), {x, gamma, beta},
        [mean = f.mean, rstd = f.rstd, groups](const Tensor& g, std::vector<Variable>& in) {
            GroupNormGrads d = group_norm_backward(g, in[0].data(), in[1].data(), mean, rstd, groups);
            if (in[0].requires_grad()) in[0].accumulate_grad(std::move(d.dx));
            if (in[1].requires_grad()) in[1].accumulate_grad(std::move(d.dgamma));
            if (in[2].requires_grad()) in[2].accumulate_grad(std::move(d.dbeta));
        },
        "group_norm");
}

}  // namespace ddpm
