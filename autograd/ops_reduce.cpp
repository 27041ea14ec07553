// ops_reduce.cpp: reductions and softmax, with their gradients.
#include "autograd/ops.h"
#include "autograd/profiler.h"
#include "tensor/elementwise.h"
#include "tensor/reduce.h"
#include "tensor/softmax.h"

namespace ddpm {

// d sum = g copied back over every summed element.
Variable sum(const Variable& x, const Axes& axes, bool keepdim) {
    OpTimer timer("sum");
    Shape keep = reduced_shape(x.shape(), axes, "sum");
    return Variable::make_result(
        ddpm::sum(x.data(), axes, keepdim), {x},
        [keep](const Tensor& g, VariableList& in) {
            in[0].accumulate_grad(expand(g.reshape(keep), in[0].shape()));
        },
        "sum");
}

// d mean = g / n copied back, n the number of elements averaged.
Variable mean(const Variable& x, const Axes& axes, bool keepdim) {
    OpTimer timer("mean");
    Shape keep = reduced_shape(x.shape(), axes, "mean");
    const double n = static_cast<double>(x.numel()) / static_cast<double>(shape_numel(keep));
    return Variable::make_result(
        ddpm::mean(x.data(), axes, keepdim), {x},
        [keep, n](const Tensor& g, VariableList& in) {
            in[0].accumulate_grad(expand(mul_scalar(g.reshape(keep), 1.0 / n), in[0].shape()));
        },
        "mean");
}

Variable max(const Variable& x, const Axes& axes, bool keepdim) {
    OpTimer timer("max");
    Shape keep = reduced_shape(x.shape(), axes, "max");
    Tensor m = ddpm::max(x.data(), axes, true);
    Tensor out = keepdim ? m : m.reshape(reduced_shape(x.shape(), axes, "max", false));
    return Variable::make_result(
        std::move(out), {x},
        [keep, m, axes](const Tensor& g, VariableList& in) {
            Tensor hit = eq(in[0].data(), m);  // 1 where the max is attained
            Tensor count = ddpm::sum(hit, axes, true);
            in[0].accumulate_grad(ddpm::mul(hit, ddpm::div(g.reshape(keep), count)));
        },
        "max");
}

Variable softmax(const Variable& x, int64_t axis) {
    OpTimer timer("softmax");
    Tensor y = ddpm::softmax(x.data(), axis);
    return Variable::make_result(
        y, {x},
        [y, axis](const Tensor& g, VariableList& in) { in[0].accumulate_grad(softmax_backward(y, g, axis)); },
        "softmax");
}

Variable log_softmax(const Variable& x, int64_t axis) {
    OpTimer timer("log_softmax");
    Tensor y = ddpm::log_softmax(x.data(), axis);
    return Variable::make_result(
        y, {x},
        [y, axis](const Tensor& g, VariableList& in) {
            in[0].accumulate_grad(log_softmax_backward(y, g, axis));
        },
        "log_softmax");
}

}  // namespace ddpm
