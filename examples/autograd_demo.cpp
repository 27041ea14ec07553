// autograd_demo: a tour of the tensor and autograd layers in three steps.
//   1. reverse mode on a three-op expression, checked against the hand derivation;
//   2. gradcheck of a conv2d + group norm + SiLU block, input by input;
//   3. a small MLP fitted to sin(3x) with plain SGD.
#include <fmt/format.h>

#include <cmath>

#include "autograd/gradcheck.h"
#include "autograd/ops.h"
#include "tensor/elementwise.h"
#include "tensor/random.h"

using namespace ddpm;

static void three_ops() {
    fmt::print("1. y = sum(a * b + exp(a)) at a = [0, 1], b = [2, 3]\n");
    Variable a(Tensor::from_data({0, 1}, {2}, DType::F64), true);
    Variable b(Tensor::from_data({2, 3}, {2}, DType::F64), true);
    Variable y = sum(a * b + exp(a));
    y.backward();
    fmt::print("   y = {:.6f}\n", y.item());
    fmt::print("   dy/da = [{:.6f}, {:.6f}]   (by hand: b + exp(a) = [{:.6f}, {:.6f}])\n", a.grad().flat(0),
               a.grad().flat(1), 2 + std::exp(0.0), 3 + std::exp(1.0));
    fmt::print("   dy/db = [{:.6f}, {:.6f}]   (by hand: a = [0, 1])\n\n", b.grad().flat(0), b.grad().flat(1));
}

static void check_block() {
    fmt::print("2. gradcheck of silu(group_norm(conv2d(x, w, b))) in float64\n");
    Generator gen(0);
    auto block = [](const std::vector<Variable>& v) {
        return silu(group_norm(conv2d(v[0], v[1], v[2], 1, 1), v[3], v[4], 2, 1e-5));
    };
    std::vector<Tensor> inputs = {randn({2, 3, 5, 5}, gen, DType::F64), randn({4, 3, 3, 3}, gen, DType::F64),
                                  randn({4}, gen, DType::F64), randn({4}, gen, DType::F64),
                                  randn({4}, gen, DType::F64)};
    // Step by step for three weights: L = sum(f(w) * g) with a fixed random g,
    // the analytic dL/dw from backward(), and the central difference
    // (L(w + h) - L(w - h)) / 2h with h = 1e-6.
    {
        std::vector<Variable> v;
        for (const Tensor& t : inputs) v.emplace_back(t.clone(), true);
        Variable y = block(v);
        Tensor g = randn(y.shape(), gen, DType::F64);
        y.backward(g);
        auto L = [&] {
            NoGradGuard ng;
            Tensor out = block(v).data();
            double s = 0;
            for (int64_t i = 0; i < out.numel(); ++i) s += out.flat(i) * g.flat(i);
            return s;
        };
        fmt::print("   element    w          L(w+h)            L(w-h)            numeric        analytic       |diff|\n");
        for (int64_t i : {0, 13, 101}) {
            Tensor& w = v[1].data();
            const double w0 = w.flat(i), h = 1e-6;
            w.set_flat(i, w0 + h);
            const double lp = L();
            w.set_flat(i, w0 - h);
            const double lm = L();
            w.set_flat(i, w0);
            const double numeric = (lp - lm) / (2 * h), analytic = v[1].grad().flat(i);
            fmt::print("   w[{:3d}]  {:+.5f}  {:+.12f}  {:+.12f}  {:+.9f}  {:+.9f}  {:.1e}\n", i, w0, lp, lm, numeric,
                       analytic, std::abs(numeric - analytic));
        }
    }
    GradcheckResult r = gradcheck(block, inputs);
    const char* names[] = {"x", "weight", "bias", "gamma", "beta"};
    for (size_t i = 0; i < inputs.size(); ++i)
        fmt::print("   {:7s} {:4d} elements  max abs err {:.2e}  max rel err {:.2e}\n", names[i], r.checked[i],
                   r.max_abs_error[i], r.max_rel_error[i]);
    fmt::print("   worst relative error {:.2e} ({})\n\n", r.worst_rel(), r.worst_rel() <= 1e-6 ? "pass" : "FAIL");
}

static void fit_sine() {
    fmt::print("3. an MLP 1-32-32-1 fitted to sin(3x) on [-1, 1] with SGD (lr 0.1)\n");
    Generator gen(1);
    const int64_t n = 256;
    Tensor xs = Tensor::empty({n, 1}), ys = Tensor::empty({n, 1});
    for (int64_t i = 0; i < n; ++i) {
        xs.set_flat(i, -1.0 + 2.0 * i / (n - 1));
        ys.set_flat(i, std::sin(3 * xs.flat(i)));
    }
    auto param = [&](Shape s, double scale) {
        Tensor t = randn(s, gen);
        scale_(t, scale);
        return Variable(t, true);
    };
    std::vector<Variable> p = {param({1, 32}, 1.0), param({32}, 0.1), param({32, 32}, 0.18), param({32}, 0.1),
                               param({32, 1}, 0.18), param({1}, 0.0)};
    Variable X(xs), Y(ys);
    for (int step = 0; step <= 3000; ++step) {
        for (Variable& v : p) v.zero_grad();
        Variable h = tanh(matmul(X, p[0]) + p[1]);
        h = tanh(matmul(h, p[2]) + p[3]);
        Variable d = matmul(h, p[4]) + p[5] - Y;
        Variable loss = mean(d * d);
        loss.backward();
        for (Variable& v : p) axpy_(v.data(), -0.1, v.grad());
        if (step % 500 == 0) fmt::print("   step {:4d}  mse {:.6f}\n", step, loss.item());
    }
}

int main() {
    three_ops();
    check_block();
    fit_sine();
    return 0;
}
