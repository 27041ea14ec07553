// Reductions over any set of axes, with and without keepdim.
#include "helpers.h"
#include "tensor/reduce.h"

using namespace ddpm;
using ddpm::test::check_values;
using ddpm::test::tol;

TEST_CASE_TEMPLATE("sum, mean and max over axes", T, float, double) {
    const DType dt = dtype_of<T>();
    // x[i][j][k] = 12 i + 4 j + k, shape [2,3,4].
    Tensor x = Tensor::arange(24, dt).reshape({2, 3, 4});
    CHECK(sum(x).item() == doctest::Approx(276));
    CHECK(mean(x).item() == doctest::Approx(11.5));
    CHECK(max(x).item() == 23);
    Tensor s0 = sum(x, {0});
    CHECK(s0.shape() == Shape{3, 4});
    check_values(s0, {12, 14, 16, 18, 20, 22, 24, 26, 28, 30, 32, 34}, tol<T>());
    Tensor s2 = sum(x, {-1}, true);
    CHECK(s2.shape() == Shape{2, 3, 1});
    check_values(s2, {6, 22, 38, 54, 70, 86}, tol<T>());
    Tensor s02 = sum(x, {0, 2});
    check_values(s02, {60, 92, 124}, tol<T>());
    check_values(mean(x, {1}), {4, 5, 6, 7, 16, 17, 18, 19}, tol<T>());
    check_values(max(x, {1, 2}, true), {11, 23}, 0);
    // Reducing over an axis of size 1 drops it too (not only the axes longer than 1).
    CHECK(sum(Tensor::ones({4, 1, 1, 1}, dt), {1, 2, 3}).shape() == Shape{4});
    CHECK(mean(Tensor::ones({1, 3}, dt), {0}).shape() == Shape{3});
    CHECK(max(Tensor::ones({2, 1}, dt), {1}).shape() == Shape{2});
    Tensor neg = Tensor::from_data({-3, -1, -2}, {3}, dt);
    CHECK(max(neg).item() == -1);
}

TEST_CASE_TEMPLATE("reductions of large tensors match a serial sum (threaded path)", T, float, double) {
    const DType dt = dtype_of<T>();
    Tensor x = Tensor::ones({64, 32, 28, 28}, dt);
    Tensor c = sum(x, {0, 2, 3}, true);  // the shape of a bias gradient
    CHECK(c.shape() == Shape{1, 32, 1, 1});
    for (int64_t i = 0; i < 32; ++i) CHECK(c.flat(i) == 64 * 28 * 28);
    Tensor hw = mean(x, {2, 3});
    CHECK(hw.shape() == Shape{64, 32});
    CHECK(hw.flat(100) == doctest::Approx(1.0));
    CHECK(sum(x).item() == doctest::Approx(64.0 * 32 * 28 * 28));
}

TEST_CASE("sum_to reduces a broadcast gradient to its input's shape") {
    Tensor g = Tensor::ones({2, 3, 4});
    check_values(sum_to(g, {3, 1}), {8, 8, 8}, 0);
    check_values(sum_to(g, {4}), {6, 6, 6, 6}, 0);
    check_values(sum_to(g, {1, 1, 1}), {24}, 0);
    CHECK(sum_to(g, {}).item() == 24);
    CHECK_THROWS_AS(sum_to(g, {5}), TensorError);
    CHECK_THROWS_AS(sum(g, {3}), TensorError);
}
