// ops_elementwise.cpp: element-wise ops and their gradients.
#include "autograd/ops.h"
#include "autograd/profiler.h"
#include "tensor/elementwise.h"
#include "tensor/reduce.h"

#include <cmath>

namespace ddpm {

namespace {
// The one-input shape of most ops here: y = f(x), dx = rule(g, x, y).
template <class Rule> Variable unary_op(const Variable& x, Tensor y, const char* op, Rule rule) {
    Tensor saved_y = y;
    return Variable::make_result(
        std::move(y), {x},
        [rule, saved_y](const Tensor& g, VariableList& in) {
            in[0].accumulate_grad(rule(g, in[0].data(), saved_y));
        },
        op);
}
}  // namespace

// d(a + b) = g, g.
Variable add(const Variable& a, const Variable& b) {
    OpTimer timer("add");
    return Variable::make_result(
        ddpm::add(a.data(), b.data()), {a, b},
        [](const Tensor& g, VariableList& in) {
            for (Variable& v : in)
                if (v.requires_grad()) v.accumulate_grad(sum_to(g, v.shape()));
        },
        "add");
}

// d(a - b) = g, -g.
Variable sub(const Variable& a, const Variable& b) {
    OpTimer timer("sub");
    return Variable::make_result(
        ddpm::sub(a.data(), b.data()), {a, b},
        [](const Tensor& g, VariableList& in) {
            if (in[0].requires_grad()) in[0].accumulate_grad(sum_to(g, in[0].shape()));
            if (in[1].requires_grad()) in[1].accumulate_grad(sum_to(ddpm::neg(g), in[1].shape()));
        },
        "sub");
}

// d(a * b) = g b, g a.
// guide.md §2: d(a b) = g b for a, g a for b.
Variable mul(const Variable& a, const Variable& b) {
    OpTimer timer("mul");
    return Variable::make_result(
        ddpm::mul(a.data(), b.data()), {a, b},
        [](const Tensor& g, VariableList& in) {
            if (in[0].requires_grad()) in[0].accumulate_grad(sum_to(ddpm::mul(g, in[1].data()), in[0].shape()));
            if (in[1].requires_grad()) in[1].accumulate_grad(sum_to(ddpm::mul(g, in[0].data()), in[1].shape()));
        },
        "mul");
}

// d(a / b) = g / b, -g a / b^2.
Variable div(const Variable& a, const Variable& b) {
    OpTimer timer("div");
    return Variable::make_result(
        ddpm::div(a.data(), b.data()), {a, b},
        [](const Tensor& g, VariableList& in) {
            const Tensor& av = in[0].data();
            const Tensor& bv = in[1].data();
            if (in[0].requires_grad()) in[0].accumulate_grad(sum_to(ddpm::div(g, bv), in[0].shape()));
            if (in[1].requires_grad())
                in[1].accumulate_grad(
                    sum_to(ddpm::neg(ddpm::div(ddpm::mul(g, av), ddpm::mul(bv, bv))), in[1].shape()));
        },
        "div");
}

Variable add_scalar(const Variable& x, double s) {
    OpTimer timer("add_scalar");
    return unary_op(x, ddpm::add_scalar(x.data(), s), "add_scalar",
                    [](const Tensor& g, const Tensor&, const Tensor&) { return g; });
}

Variable mul_scalar(const Variable& x, double s) {
    OpTimer timer("mul_scalar");
    return unary_op(x, ddpm::mul_scalar(x.data(), s), "mul_scalar",
                    [s](const Tensor& g, const Tensor&, const Tensor&) { return ddpm::mul_scalar(g, s); });
}

// d(x^p) = g p x^(p-1).
Variable pow(const Variable& x, double p) {
    OpTimer timer("pow");
    return unary_op(x, pow_scalar(x.data(), p), "pow", [p](const Tensor& g, const Tensor& xv, const Tensor&) {
        return ddpm::mul(g, ddpm::mul_scalar(pow_scalar(xv, p - 1.0), p));
    });
}

Variable neg(const Variable& x) {
    OpTimer timer("neg");
    return unary_op(x, ddpm::neg(x.data()), "neg",
                    [](const Tensor& g, const Tensor&, const Tensor&) { return ddpm::neg(g); });
}

// d(e^x) = g e^x.
Variable exp(const Variable& x) {
    OpTimer timer("exp");
    return unary_op(x, ddpm::exp(x.data()), "exp",
                    [](const Tensor& g, const Tensor&, const Tensor& y) { return ddpm::mul(g, y); });
}

// d(log x) = g / x.
Variable log(const Variable& x) {
    OpTimer timer("log");
    return unary_op(x, ddpm::log(x.data()), "log",
                    [](const Tensor& g, const Tensor& xv, const Tensor&) { return ddpm::div(g, xv); });
}

// d(sqrt x) = g / (2 sqrt x).
Variable sqrt(const Variable& x) {
    OpTimer timer("sqrt");
    return unary_op(x, ddpm::sqrt(x.data()), "sqrt", [](const Tensor& g, const Tensor&, const Tensor& y) {
        return ddpm::div(ddpm::mul_scalar(g, 0.5), y);
    });
}

// d(tanh x) = g (1 - y^2).
Variable tanh(const Variable& x) {
    OpTimer timer("tanh");
    return unary_op(x, ddpm::tanh(x.data()), "tanh", [](const Tensor& g, const Tensor&, const Tensor& y) {
        return ddpm::mul(g, ddpm::add_scalar(ddpm::neg(ddpm::mul(y, y)), 1.0));
    });
}

// d(sigmoid x) = g y (1 - y).
Variable sigmoid(const Variable& x) {
    OpTimer timer("sigmoid");
    return unary_op(x, ddpm::sigmoid(x.data()), "sigmoid", [](const Tensor& g, const Tensor&, const Tensor& y) {
        return ddpm::mul(g, ddpm::mul(y, ddpm::add_scalar(ddpm::neg(y), 1.0)));
    });
}

Variable silu(const Variable& x) {
    OpTimer timer("silu");
    return unary_op(x, ddpm::silu(x.data()), "silu",
                    [](const Tensor& g, const Tensor& xv, const Tensor&) { return silu_backward(xv, g); });
}

// d|x| = g sign(x) (0 at 0, like PyTorch).
Variable abs(const Variable& x) {
    OpTimer timer("abs");
    return unary_op(x, ddpm::abs(x.data()), "abs",
                    [](const Tensor& g, const Tensor& xv, const Tensor&) { return ddpm::mul(g, sign(xv)); });
}

// d erf(x) = g (2 / sqrt(pi)) e^{-x^2}.
Variable erf(const Variable& x) {
    OpTimer timer("erf");
    return unary_op(x, ddpm::erf(x.data()), "erf", [](const Tensor& g, const Tensor& xv, const Tensor&) {
        return ddpm::mul(g, ddpm::mul_scalar(ddpm::exp(ddpm::neg(ddpm::mul(xv, xv))), 2.0 / std::sqrt(M_PI)));
    });
}

Variable clamp(const Variable& x, double lo, double hi) {
    OpTimer timer("clamp");
    return unary_op(x, ddpm::clamp(x.data(), lo, hi), "clamp", [lo, hi](const Tensor& g, const Tensor& xv, const Tensor&) {
        Tensor inside = ddpm::mul(gt(xv, Tensor::scalar(lo, xv.dtype())), lt(xv, Tensor::scalar(hi, xv.dtype())));
        return ddpm::mul(g, inside);
    });
}

Variable where(const Tensor& cond, const Variable& a, const Variable& b) {
    OpTimer timer("where");
    return Variable::make_result(
        ddpm::where(cond, a.data(), b.data()), {a, b},
        [cond](const Tensor& g, VariableList& in) {
            Tensor zero = Tensor::zeros({}, g.dtype());
            if (in[0].requires_grad()) in[0].accumulate_grad(sum_to(ddpm::where(cond, g, zero), in[0].shape()));
            if (in[1].requires_grad()) in[1].accumulate_grad(sum_to(ddpm::where(cond, zero, g), in[1].shape()));
        },
        "where");
}

}  // namespace ddpm
