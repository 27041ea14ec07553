// ops_norm.cpp: group norm (alone, or fused with the SiLU after it) with its fused backward.
#include "autograd/ops.h"
#include "autograd/profiler.h"
#include "tensor/group_norm.h"

namespace ddpm {

namespace {
// The graph node both variants share: forward kernel now, backward kernel later,
// with the cached mean and rstd. Inputs are x, gamma, beta.
template <class Forward, class Backward>
Variable group_norm_node(const char* op, const Variable& x, const Variable& gamma, const Variable& beta, Forward forward,
                         Backward backward) {
    OpTimer timer(op);
    GroupNormOut f = forward(x.data(), gamma.data(), beta.data());
    return Variable::make_result(
        std::move(f.y), {x, gamma, beta},
        [mean = f.mean, rstd = f.rstd, backward](const Tensor& g, VariableList& in) {
            GroupNormGrads d = backward(g, in[0].data(), in[1].data(), in[2].data(), mean, rstd);
            if (in[0].requires_grad()) in[0].accumulate_grad(std::move(d.dx));
            if (in[1].requires_grad()) in[1].accumulate_grad(std::move(d.dgamma));
            if (in[2].requires_grad()) in[2].accumulate_grad(std::move(d.dbeta));
        },
        op);
}
}  // namespace

Variable group_norm(const Variable& x, const Variable& gamma, const Variable& beta, int64_t groups, double eps) {
    return group_norm_node(
        "group_norm", x, gamma, beta,
        [&](const Tensor& xd, const Tensor& g, const Tensor& b) { return group_norm_forward(xd, g, b, groups, eps); },
        [groups](const Tensor& dy, const Tensor& xd, const Tensor& g, const Tensor&, const Tensor& mean,
                 const Tensor& rstd) { return group_norm_backward(dy, xd, g, mean, rstd, groups); });
}

Variable group_norm_silu(const Variable& x, const Variable& gamma, const Variable& beta, int64_t groups, double eps) {
    return group_norm_node(
        "group_norm_silu", x, gamma, beta,
        [&](const Tensor& xd, const Tensor& g, const Tensor& b) { return group_norm_silu_forward(xd, g, b, groups, eps); },
        [groups](const Tensor& dz, const Tensor& xd, const Tensor& g, const Tensor& b, const Tensor& mean,
                 const Tensor& rstd) { return group_norm_silu_backward(dz, xd, g, b, mean, rstd, groups); });
}

}  // namespace ddpm
