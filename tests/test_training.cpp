// Training through the library: an MLP fitted with plain SGD to a known function.
#include "autograd/ops.h"
#include "helpers.h"
#include "tensor/elementwise.h"
#include "tensor/random.h"

using namespace ddpm;

TEST_CASE("an MLP trained with SGD on y = sin(3x) cuts its loss by more than 100x") {
    Generator gen(2024);
    const int64_t n = 256, hidden = 32;
    Tensor xs = Tensor::empty({n, 1});
    Tensor ys = Tensor::empty({n, 1});
    for (int64_t i = 0; i < n; ++i) {
        double x = -1.0 + 2.0 * i / (n - 1);
        xs.set_flat(i, x);
        ys.set_flat(i, std::sin(3 * x));
    }
    Variable X(xs), Y(ys);
    auto init = [&](Shape s, double scale) {
        Tensor t = randn(s, gen);
        scale_(t, scale);
        return Variable(t, true);
    };
    Variable w1 = init({1, hidden}, 1.0), b1 = init({hidden}, 0.1);
    Variable w2 = init({hidden, hidden}, 1.0 / std::sqrt(double(hidden))), b2 = init({hidden}, 0.1);
    Variable w3 = init({hidden, 1}, 1.0 / std::sqrt(double(hidden))), b3 = init({1}, 0.0);
    std::vector<Variable> params{w1, b1, w2, b2, w3, b3};
    auto loss_fn = [&] {
        Variable h = tanh(matmul(X, w1) + b1);
        h = tanh(matmul(h, w2) + b2);
        Variable d = matmul(h, w3) + b3 - Y;
        return mean(d * d);
    };
    double first = 0, last = 0;
    for (int step = 0; step < 3000; ++step) {
        for (Variable& p : params) p.zero_grad();
        Variable loss = loss_fn();
        if (step == 0) first = loss.item();
        loss.backward();
        for (Variable& p : params) axpy_(p.data(), -0.1, p.grad());  // plain SGD
        last = loss.item();
    }
    INFO("loss " << first << " -> " << last);
    CHECK(last * 100 < first);
    CHECK(live_graph_nodes() == 0);
}
