// ops_norm.cpp: group norm (alone, or fused with the SiLU after it) with its fused backward.
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

Variable group_norm_silu(const Variable& x, const Variable& gamma, const Variable& beta, int64_t groups, double eps) {
    OpTimer timer("group_norm_silu");
    GroupNormOut f = group_norm_silu_forward(x.data(), gamma.data(), beta.data(), groups, eps);
    return Variable::make_result(
        std::move(f.y), {x, gamma, beta},
        [mean = f.mean, rstd = f.rstd, groups](const Tensor& g, std::vector<Variable>& in) {
            GroupNormGrads d = group_norm_silu_backward(g, in[0].data(), in[1].data(), in[2].data(), mean, rstd, groups);
            if (in[0].requires_grad()) in[0].accumulate_grad(std::move(d.dx));
            if (in[1].requires_grad()) in[1].accumulate_grad(std::move(d.dgamma));
            if (in[2].requires_grad()) in[2].accumulate_grad(std::move(d.dbeta));
        },
        "group_norm_silu");
}

}  // namespace ddpm
