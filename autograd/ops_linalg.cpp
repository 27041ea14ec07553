// ops_linalg.cpp: matmul, conv2d and attention with their gradients.
#include "autograd/ops.h"
#include "autograd/profiler.h"
#include "tensor/attention.h"
#include "tensor/conv2d.h"
#include "tensor/matmul.h"
#include "tensor/reduce.h"

namespace ddpm {

// C = op(A) op(B). With G = dC:
//   dA = G op(B)^T      (A^T stored: dA = op(B) G^T)
//   dB = op(A)^T G      (B^T stored: dB = G^T op(A))
// summed over the batch when one operand was shared by every batch entry.
// guide.md §4: dA = G op(B)^T, dB = op(A)^T G (transposes as BLAS flags).
Variable matmul(const Variable& a, const Variable& b, bool ta, bool tb) {
    OpTimer timer("matmul");
    return Variable::make_result(
        ddpm::matmul(a.data(), b.data(), ta, tb), {a, b},
        [ta, tb](const Tensor& g, VariableList& in) {
            const Tensor& A = in[0].data();
            const Tensor& B = in[1].data();
            if (in[0].requires_grad()) {
                Tensor dA = ta ? ddpm::matmul(B, g, tb, true) : ddpm::matmul(g, B, false, !tb);
                in[0].accumulate_grad(sum_to(dA, A.shape()));
            }
            if (in[1].requires_grad()) {
                Tensor dB = tb ? ddpm::matmul(g, A, true, ta) : ddpm::matmul(A, g, !ta, false);
                in[1].accumulate_grad(sum_to(dB, B.shape()));
            }
        },
        "matmul");
}

// A bias per image (B,OC) gets dout summed over the plane; one shared (OC) bias gets
// its gradient from conv2d_backward, beside the weight's. A residual gets dout itself.
Variable conv2d(const Variable& x, const Variable& weight, const Variable& bias, int64_t stride, int64_t pad,
                const Variable& residual) {
    OpTimer timer("conv2d");
    const bool has_bias = bias.defined(), per_image = has_bias && bias.dim() == 2, has_res = residual.defined();
    VariableList inputs{x, weight, bias, residual};  // an undefined one stands for "none"
    return Variable::make_result(
        conv2d_forward(x.data(), weight.data(), has_bias ? bias.data() : Tensor(), stride, pad,
                       has_res ? residual.data() : Tensor()),
        std::move(inputs),
        [stride, pad, has_bias, per_image, has_res](const Tensor& g, VariableList& in) {
            const bool need_db = has_bias && in[2].requires_grad();
            Conv2dGrads d = conv2d_backward(g, in[0].data(), in[1].data(), stride, pad, in[0].requires_grad(),
                                            in[1].requires_grad(), need_db && !per_image);
            if (d.dx.defined()) in[0].accumulate_grad(std::move(d.dx));
            if (d.dweight.defined()) in[1].accumulate_grad(std::move(d.dweight));
            if (d.dbias.defined()) in[2].accumulate_grad(std::move(d.dbias));
            if (need_db && per_image) in[2].accumulate_grad(ddpm::sum(g, {2, 3}));
            if (has_res && in[3].requires_grad()) in[3].accumulate_grad(g);
        },
        "conv2d");
}

// guide.md §4: attention's forward and backward (tensor/attention.h); P^T is kept
// for the backward only when a gradient will be asked for.
Variable attention(const Variable& q, const Variable& k, const Variable& v) {
    OpTimer timer("attention");
    const bool keep = grad_mode_enabled() && (q.requires_grad() || k.requires_grad() || v.requires_grad());
    Tensor pt;
    Tensor out = attention_forward(q.data(), k.data(), v.data(), keep ? &pt : nullptr);
    return Variable::make_result(
        std::move(out), {q, k, v},
        [pt](const Tensor& g, VariableList& in) {
            AttentionGrads d = attention_backward(g, in[0].data(), in[1].data(), in[2].data(), pt);
            if (in[0].requires_grad()) in[0].accumulate_grad(std::move(d.dq));
            if (in[1].requires_grad()) in[1].accumulate_grad(std::move(d.dk));
            if (in[2].requires_grad()) in[2].accumulate_grad(std::move(d.dv));
        },
        "attention");
}

}  // namespace ddpm
