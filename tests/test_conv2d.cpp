// conv2d: hand-computed values, the naive reference, the 1x1 path, backward by adjointness.
#include "helpers.h"
#include "tensor/conv2d.h"
#include "tensor/random.h"

using namespace ddpm;
using ddpm::test::check_values;
using ddpm::test::max_abs_diff;
using ddpm::test::tol;

TEST_CASE_TEMPLATE("conv2d on a hand-computed example", T, float, double) {
    const DType dt = dtype_of<T>();
    // 1 image, 1 channel, 3x3 input 1..9; a 2x2 kernel [[1,0],[0,-1]] computes x[h][w] - x[h+1][w+1].
    Tensor x = Tensor::from_data({1, 2, 3, 4, 5, 6, 7, 8, 9}, {1, 1, 3, 3}, dt);
    Tensor w = Tensor::from_data({1, 0, 0, -1}, {1, 1, 2, 2}, dt);
    Tensor y = conv2d_forward(x, w, Tensor(), 1, 0);
    CHECK(y.shape() == Shape{1, 1, 2, 2});
    check_values(y, {-4, -4, -4, -4}, tol<T>());
    // Padding 1, stride 2, with bias 10: outputs at (-1,-1), (-1,1), (1,-1), (1,1).
    Tensor b = Tensor::from_data({10}, {1}, dt);
    Tensor z = conv2d_forward(x, w, b, 2, 1);
    CHECK(z.shape() == Shape{1, 1, 2, 2});
    // (-1,-1): 0 - x[0][0] = -1;  (-1,1): 0 - x[0][2] = -3;  (1,-1): 0 - x[2][0] = -7;  (1,1): x[1][1] - x[2][2] = -4.
    check_values(z, {9, 7, 3, 6}, tol<T>());
    // A 3x3 box filter with padding 1 sums each neighbourhood.
    Tensor box = Tensor::ones({1, 1, 3, 3}, dt);
    check_values(conv2d_forward(x, box, Tensor(), 1, 1), {12, 21, 16, 27, 45, 33, 24, 39, 28}, tol<T>());
}

TEST_CASE_TEMPLATE("conv2d matches the naive reference at U-Net-like shapes", T, float, double) {
    const DType dt = dtype_of<T>();
    Generator gen(11);
    struct Case { int64_t B, C, H, W, OC, K, stride, pad; };
    for (Case c : {Case{3, 4, 8, 8, 5, 3, 1, 1}, Case{4, 3, 9, 7, 2, 3, 2, 1}, Case{2, 6, 5, 5, 4, 1, 1, 0},
                   Case{1, 2, 6, 6, 3, 3, 1, 1}, Case{2, 2, 7, 6, 3, 2, 2, 0}}) {
        Tensor x = randn({c.B, c.C, c.H, c.W}, gen, dt);
        Tensor w = randn({c.OC, c.C, c.K, c.K}, gen, dt);
        Tensor b = randn({c.OC}, gen, dt);
        CHECK(max_abs_diff(conv2d_forward(x, w, b, c.stride, c.pad), conv2d_reference(x, w, b, c.stride, c.pad)) <
              1e3 * tol<T>());
    }
}

TEST_CASE("conv2d backward is the adjoint of forward: <dy, conv(x)> = <conv^T(dy), x>") {
    // For a linear map y = W x, backward must satisfy <dy, y(x)> = <dx, x> for every x, dy.
    Generator gen(3);
    Tensor x = randn({3, 4, 7, 7}, gen, DType::F64);
    Tensor w = randn({5, 4, 3, 3}, gen, DType::F64);
    Tensor y = conv2d_forward(x, w, Tensor(), 2, 1);
    Tensor dy = randn(y.shape(), gen, DType::F64);
    Conv2dGrads g = conv2d_backward(dy, x, w, 2, 1, true, true, true);
    double lhs = 0, rhs_x = 0, rhs_w = 0, sum_dy = 0;
    for (int64_t i = 0; i < y.numel(); ++i) {
        lhs += dy.flat(i) * y.flat(i);
        sum_dy += dy.flat(i);
    }
    for (int64_t i = 0; i < x.numel(); ++i) rhs_x += g.dx.flat(i) * x.flat(i);
    for (int64_t i = 0; i < w.numel(); ++i) rhs_w += g.dweight.flat(i) * w.flat(i);
    CHECK(lhs == doctest::Approx(rhs_x).epsilon(1e-12));
    CHECK(lhs == doctest::Approx(rhs_w).epsilon(1e-12));
    double sdb = 0;
    for (int64_t i = 0; i < 5; ++i) sdb += g.dbias.flat(i);
    CHECK(sdb == doctest::Approx(sum_dy).epsilon(1e-12));
}

TEST_CASE("conv2d errors name the shapes") {
    Tensor x = Tensor::zeros({64, 32, 28, 28}), w = Tensor::zeros({64, 16, 3, 3});
    CHECK_THROWS_WITH_AS(conv2d_forward(x, w, Tensor(), 1, 1),
                         "conv2d: input [64,32,28,28] weight [64,16,3,3]: channels differ (32 vs 16)", TensorError);
    CHECK_THROWS_AS(conv2d_forward(Tensor::zeros({32, 28, 28}), w, Tensor(), 1, 1), TensorError);
    CHECK_THROWS_AS(conv2d_forward(x, Tensor::zeros({8, 32, 3, 3}), Tensor::zeros({4}), 1, 1), TensorError);
}
