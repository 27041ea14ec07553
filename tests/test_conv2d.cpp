// conv2d: hand-computed values, the naive references (forward and backward) for the
// Winograd and im2col paths, backward by adjointness.
#include "helpers.h"
#include "tensor/conv2d.h"
#include "tensor/elementwise.h"
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
    // Stride 2 takes the im2col path, stride 1 the Winograd one.
    Generator gen(3);
    for (int64_t stride : {2, 1}) {
        INFO("stride " << stride);
        Tensor x = randn({3, 4, 7, 7}, gen, DType::F64);
        Tensor w = randn({5, 4, 3, 3}, gen, DType::F64);
        Tensor y = conv2d_forward(x, w, Tensor(), stride, 1);
        Tensor dy = randn(y.shape(), gen, DType::F64);
        Conv2dGrads g = conv2d_backward(dy, x, w, stride, 1, true, true, true);
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
}

TEST_CASE("conv2d errors name the shapes") {
    Tensor x = Tensor::zeros({64, 32, 28, 28}), w = Tensor::zeros({64, 16, 3, 3});
    CHECK_THROWS_WITH_AS(conv2d_forward(x, w, Tensor(), 1, 1),
                         "conv2d: input [64,32,28,28] weight [64,16,3,3]: channels differ (32 vs 16)", TensorError);
    CHECK_THROWS_AS(conv2d_forward(Tensor::zeros({32, 28, 28}), w, Tensor(), 1, 1), TensorError);
    CHECK_THROWS_AS(conv2d_forward(x, Tensor::zeros({8, 32, 3, 3}), Tensor::zeros({4}), 1, 1), TensorError);
}

namespace {
double max_abs(const Tensor& t) {
    double m = 0;
    for (int64_t i = 0; i < t.numel(); ++i) m = std::max(m, std::abs(t.flat(i)));
    return m;
}
}  // namespace

TEST_CASE_TEMPLATE("Winograd 3x3 convolution matches the naive loops forward and backward", T, float, double) {
    // Planes smaller than a tile, not a multiple of 4, a lane group only partly
    // filled (17 tiles), and batches cut into several blocks per thread.
    const DType dt = dtype_of<T>();
    Generator gen(21);
    struct Case { int64_t B, C, H, W, OC; };
    // (Fewer than 4 input channels take the im2col path: held to the same loops.)
    for (Case c : {Case{1, 4, 1, 1, 1}, Case{2, 4, 2, 3, 4}, Case{3, 4, 5, 5, 5}, Case{2, 5, 7, 7, 3},
                   Case{1, 6, 9, 13, 2}, Case{17, 4, 4, 4, 2}, Case{40, 8, 14, 14, 6}, Case{3, 16, 28, 28, 8},
                   Case{2, 1, 6, 6, 3}, Case{2, 3, 5, 5, 1}}) {
        INFO("B " << c.B << " C " << c.C << " " << c.H << "x" << c.W << " OC " << c.OC);
        Tensor x = randn({c.B, c.C, c.H, c.W}, gen, dt);
        Tensor w = mul_scalar(randn({c.OC, c.C, 3, 3}, gen, dt), 1.0 / std::sqrt(9.0 * double(c.C)));
        Tensor b = randn({c.OC}, gen, dt);
        Tensor y = conv2d_forward(x, w, b, 1, 1), y_ref = conv2d_reference(x, w, b, 1, 1);
        // float: F(4x4, 3x3) rounds a little more than the direct sum (its
        // transforms scale by up to 8 and 1/24); relative to the output's scale.
        const double rel = sizeof(T) == 4 ? 1e-5 : 1e-13;  // float: 2-3e-6 measured
        CHECK(max_abs_diff(y, y_ref) <= rel * max_abs(y_ref));
        Tensor dy = randn(y.shape(), gen, dt);
        Conv2dGrads got = conv2d_backward(dy, x, w, 1, 1, true, true, true);
        Conv2dGrads want = conv2d_backward_reference(dy, x, w, 1, 1);
        CHECK(max_abs_diff(got.dx, want.dx) <= rel * max_abs(want.dx));
        CHECK(max_abs_diff(got.dweight, want.dweight) <= rel * max_abs(want.dweight));
        CHECK(max_abs_diff(got.dbias, want.dbias) <= rel * max_abs(want.dbias));
        // The input gradient alone (no weight gradient) and the bias gradient alone.
        Conv2dGrads dx_only = conv2d_backward(dy, x, w, 1, 1, true, false, false);
        CHECK(max_abs_diff(dx_only.dx, got.dx) == 0);
        Conv2dGrads db_only = conv2d_backward(dy, x, w, 1, 1, false, false, true);
        CHECK(max_abs_diff(db_only.dbias, want.dbias) <= rel * max_abs(want.dbias));
    }
}

TEST_CASE("the im2col path matches the naive backward loops too") {
    Generator gen(5);
    struct Case { int64_t K, stride, pad; };
    for (Case c : {Case{3, 2, 1}, Case{1, 1, 0}, Case{2, 2, 0}, Case{3, 1, 0}}) {
        Tensor x = randn({3, 4, 7, 6}, gen, DType::F32);
        Tensor w = randn({5, 4, c.K, c.K}, gen, DType::F32);
        Tensor y = conv2d_forward(x, w, Tensor(), c.stride, c.pad);
        Tensor dy = randn(y.shape(), gen, DType::F32);
        Conv2dGrads got = conv2d_backward(dy, x, w, c.stride, c.pad, true, true, true);
        Conv2dGrads want = conv2d_backward_reference(dy, x, w, c.stride, c.pad);
        CHECK(max_abs_diff(got.dx, want.dx) <= 1e-5 * max_abs(want.dx));
        CHECK(max_abs_diff(got.dweight, want.dweight) <= 1e-5 * max_abs(want.dweight));
        CHECK(max_abs_diff(got.dbias, want.dbias) <= 1e-5 * max_abs(want.dbias));
    }
}
