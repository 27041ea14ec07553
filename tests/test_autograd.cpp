// The autodiff engine: order, accumulation, broadcasting, detach, no-grad, release.
#include "autograd/ops.h"
#include "helpers.h"
#include "tensor/random.h"

using namespace ddpm;
using ddpm::test::check_values;

TEST_CASE("a three-op expression by hand: y = (a * b + a) summed") {
    // dy/da = b + 1, dy/db = a.
    Variable a(Tensor::from_data({1, 2, 3}, {3}, DType::F64), true);
    Variable b(Tensor::from_data({4, 5, 6}, {3}, DType::F64), true);
    Variable y = sum(a * b + a);
    CHECK(y.item() == 1 * 4 + 2 * 5 + 3 * 6 + 6);
    y.backward();
    check_values(a.grad(), {5, 6, 7}, 1e-15);
    check_values(b.grad(), {1, 2, 3}, 1e-15);
}

TEST_CASE("a leaf used many times gets the sum of every path (diamond graph)") {
    // y = sum(x*x + exp(x) + x); dy/dx = 2x + exp(x) + 1.
    Variable x(Tensor::from_data({0.5, -1.0}, {2}, DType::F64), true);
    Variable sq = x * x;
    Variable y = sum(sq + exp(x) + x);
    y.backward();
    check_values(x.grad(), {2 * 0.5 + std::exp(0.5) + 1, -2 + std::exp(-1.0) + 1}, 1e-14);
}

TEST_CASE("results share one gradient buffer and a second gradient never writes into it") {
    // s = a + b hands the same gradient buffer to a and b (both results, not
    // leaves); a then gets a second gradient from t = s + a. Added in place, it
    // would change b's too. t = 2x + 3x + 2x and u = 5 b = 15 x: dy/dx = 7 w + 15.
    Variable x(Tensor::from_data({1, -2, 3}, {3}, DType::F64), true);
    Variable w(Tensor::from_data({0.5, 2, -1}, {3}, DType::F64), false);
    Variable a = mul_scalar(x, 2), b = mul_scalar(x, 3);
    Variable s = a + b;
    Variable t = s + a;
    Variable y = sum(t * w) + sum(mul_scalar(b, 5));
    y.backward();
    check_values(x.grad(), {7 * 0.5 + 15, 7 * 2 + 15, 7 * -1 + 15}, 1e-14);
}

TEST_CASE("backward adds into a gradient buffer that is already filled") {
    Variable w(Tensor::from_data({1, 2}, {2}, DType::F64), true);
    w.set_grad(Tensor::from_data({100, 200}, {2}, DType::F64));
    sum(w * w).backward();
    check_values(w.grad(), {102, 204}, 1e-15);
    sum(mul_scalar(w, 3)).backward();  // a second step keeps accumulating
    check_values(w.grad(), {105, 207}, 1e-15);
    w.zero_grad();
    CHECK(!w.grad().defined());
}

TEST_CASE("broadcast inputs get their gradient summed back to their own shape") {
    Variable x(Tensor::ones({2, 3, 4, 4}, DType::F64), true);
    Variable bias(Tensor::zeros({1, 3, 1, 1}, DType::F64), true);
    Variable s(Tensor::scalar(2, DType::F64), true);
    sum((x + bias) * s).backward();
    CHECK(bias.grad().shape() == Shape{1, 3, 1, 1});
    check_values(bias.grad(), {64, 64, 64}, 1e-15);  // 2 per element, 2*4*4 elements per channel
    CHECK(s.grad().shape() == Shape{});
    CHECK(s.grad().item() == 96);
}

TEST_CASE("backward with an explicit upstream gradient") {
    Variable x(Tensor::from_data({1, 2, 3}, {3}, DType::F64), true);
    Variable y = mul_scalar(x, 2);
    y.backward(Tensor::from_data({1, 10, 100}, {3}, DType::F64));
    check_values(x.grad(), {2, 20, 200}, 1e-15);
    CHECK_THROWS_AS(mul_scalar(x, 2).backward(), TensorError);  // not a scalar
}

TEST_CASE("detach and constants stop the gradient") {
    Variable x(Tensor::from_data({3}, {1}, DType::F64), true);
    Variable c(Tensor::from_data({5}, {1}, DType::F64));  // requires_grad false
    Variable y = sum(x * x.detach() + x * c);
    y.backward();
    check_values(x.grad(), {3 + 5}, 1e-15);
    CHECK(!c.grad().defined());
    CHECK(!x.detach().requires_grad());
}

TEST_CASE("under NoGradGuard no graph is recorded and nothing is held") {
    Variable x(Tensor::ones({4}), true);
    const int64_t before = live_graph_nodes();
    {
        NoGradGuard guard;
        CHECK(!grad_mode_enabled());
        Variable y = exp(x * x);
        CHECK(!y.requires_grad());
        CHECK(y.is_leaf());
        CHECK(live_graph_nodes() == before);
    }
    CHECK(grad_mode_enabled());
    Variable z = x * x;
    CHECK(z.requires_grad());
    CHECK(live_graph_nodes() == before + 1);
}

TEST_CASE("the graph is released after backward: no node outlives the step") {
    Generator gen(1);
    Variable w(randn({4, 3}, gen), true);
    Variable x(randn({5, 4}, gen));
    const int64_t before = live_graph_nodes();
    Variable loss;
    {
        Variable h = tanh(matmul(x, w));
        loss = mean(h * h);
        CHECK(live_graph_nodes() == before + 4);
    }
    loss.backward();
    CHECK(live_graph_nodes() == before);  // the user still holds `loss`, but no edges remain
    CHECK(w.grad().defined());
    CHECK_THROWS_AS(loss.backward(), TensorError);  // its graph is gone
}

TEST_CASE("ops reject mismatched shapes with the op's name") {
    Variable a(Tensor::zeros({2, 3}), true), b(Tensor::zeros({3, 2}), true);
    CHECK_THROWS_WITH_AS(a + b, "add: shapes [2,3] and [3,2] do not broadcast (axis 0: 2 vs 3)", TensorError);
    CHECK_THROWS_AS(matmul(a, a), TensorError);
}
