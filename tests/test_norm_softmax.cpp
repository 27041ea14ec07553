// group norm, softmax, upsampling, dropout, concat/narrow: forward values.
#include <cmath>

#include "helpers.h"
#include "tensor/dropout.h"
#include "tensor/elementwise.h"
#include "tensor/group_norm.h"
#include "tensor/random.h"
#include "tensor/shape_ops.h"
#include "tensor/softmax.h"
#include "tensor/upsample.h"

using namespace ddpm;
using ddpm::test::check_values;
using ddpm::test::tol;

TEST_CASE_TEMPLATE("group_norm on hand-computed values", T, float, double) {
    const DType dt = dtype_of<T>();
    Tensor x = Tensor::from_data({1, 2, 3, 4}, {1, 2, 1, 2}, dt);
    Tensor gamma = Tensor::from_data({1, 2}, {2}, dt), beta = Tensor::from_data({0, 1}, {2}, dt);
    // One group: mean 2.5, variance 1.25.
    GroupNormOut one = group_norm_forward(x, gamma, beta, 1, 0.0);
    const double r = 1 / std::sqrt(1.25);
    check_values(one.y, {-1.5 * r, -0.5 * r, 0.5 * r * 2 + 1, 1.5 * r * 2 + 1}, tol<T>());
    check_values(one.mean, {2.5}, tol<T>());
    check_values(one.rstd, {r}, tol<T>());
    // Two groups, one channel each: [1,2] and [3,4] each normalise to [-1, 1].
    GroupNormOut two = group_norm_forward(x, gamma, beta, 2, 0.0);
    check_values(two.y, {-1, 1, -1, 3}, tol<T>());
    // eps enters under the square root.
    GroupNormOut e = group_norm_forward(x, gamma, beta, 2, 0.75);
    check_values(e.rstd, {1.0, 1.0}, tol<T>());
    CHECK_THROWS_AS(group_norm_forward(x, gamma, beta, 3, 1e-5), TensorError);
}

TEST_CASE_TEMPLATE("fused group norm + SiLU equals silu(group_norm) forward and backward", T, float, double) {
    const DType dt = dtype_of<T>();
    Generator gen(5);
    // 600 elements per group: several of the kernel's 256-element summation blocks.
    Tensor x = randn({3, 8, 10, 15}, gen, dt), dz = randn({3, 8, 10, 15}, gen, dt);
    Tensor gamma = randn({8}, gen, dt), beta = randn({8}, gen, dt);
    GroupNormOut gn = group_norm_forward(x, gamma, beta, 2, 1e-5);
    GroupNormOut fused = group_norm_silu_forward(x, gamma, beta, 2, 1e-5);
    CHECK(ddpm::test::max_abs_diff(fused.y, silu(gn.y)) <= 4 * tol<T>());
    CHECK(ddpm::test::max_abs_diff(fused.rstd, gn.rstd) == 0.0);
    GroupNormGrads ref = group_norm_backward(silu_backward(gn.y, dz), x, gamma, gn.mean, gn.rstd, 2);
    GroupNormGrads got = group_norm_silu_backward(dz, x, gamma, beta, fused.mean, fused.rstd, 2);
    CHECK(ddpm::test::max_abs_diff(got.dx, ref.dx) <= 10 * tol<T>());
    CHECK(ddpm::test::max_abs_diff(got.dgamma, ref.dgamma) <= 100 * tol<T>());  // sums of 1800 terms
    CHECK(ddpm::test::max_abs_diff(got.dbeta, ref.dbeta) <= 100 * tol<T>());
}

TEST_CASE_TEMPLATE("group norm's fused kernels equal the definitions as written, forward and backward", T, float, double) {
    const DType dt = dtype_of<T>();
    Generator gen(8);
    // Odd sizes: 3 channels per group and 7x9 positions (not a multiple of any vector width);
    // the U-Net's 8 groups at 28x28; groups of two 1x1 channels.
    // Each also with one gamma and beta per image, (B,C), as a scale-shift ResBlock uses them.
    for (const Shape& shape : {Shape{2, 6, 7, 9}, Shape{1, 16, 28, 28}, Shape{3, 4, 1, 1}})
    for (const bool per_image : {false, true}) {
        const int64_t C = shape[1], groups = C == 6 ? 2 : C / 2;
        Tensor x = randn(shape, gen, dt), dy = randn(shape, gen, dt);
        const Shape affine = per_image ? Shape{shape[0], C} : Shape{C};
        Tensor gamma = randn(affine, gen, dt), beta = randn(affine, gen, dt);
        const double eps = 1e-5;
        INFO(shape_str(shape) << (per_image ? ", gamma and beta per image" : ""));
        GroupNormOut fast = group_norm_forward(x, gamma, beta, groups, eps), ref = group_norm_reference(x, gamma, beta, groups, eps);
        CHECK(ddpm::test::max_abs_diff(fast.y, ref.y) <= 10 * tol<T>());
        CHECK(ddpm::test::max_abs_diff(fast.mean, ref.mean) <= 10 * tol<T>());
        GroupNormGrads gf = group_norm_backward(dy, x, gamma, fast.mean, fast.rstd, groups);
        GroupNormGrads gr = group_norm_backward_reference(dy, x, gamma, groups, eps);
        CHECK(ddpm::test::max_abs_diff(gf.dx, gr.dx) <= 10 * tol<T>());
        CHECK(ddpm::test::max_abs_diff(gf.dgamma, gr.dgamma) <= 200 * tol<T>());  // sums over B x HW
        CHECK(ddpm::test::max_abs_diff(gf.dbeta, gr.dbeta) <= 200 * tol<T>());
        CHECK(gf.dgamma.shape() == affine);
        if (!per_image) continue;
        // The fused SiLU variant with per-image gamma against silu of the reference and its backward.
        GroupNormOut fused = group_norm_silu_forward(x, gamma, beta, groups, eps);
        CHECK(ddpm::test::max_abs_diff(fused.y, silu(ref.y)) <= 10 * tol<T>());
        GroupNormGrads gs = group_norm_silu_backward(dy, x, gamma, beta, fused.mean, fused.rstd, groups);
        GroupNormGrads want = group_norm_backward_reference(silu_backward(ref.y, dy), x, gamma, groups, eps);
        CHECK(ddpm::test::max_abs_diff(gs.dx, want.dx) <= 10 * tol<T>());
        CHECK(ddpm::test::max_abs_diff(gs.dgamma, want.dgamma) <= 200 * tol<T>());
        CHECK(ddpm::test::max_abs_diff(gs.dbeta, want.dbeta) <= 200 * tol<T>());
    }
}

TEST_CASE("group norm in float32 keeps its accuracy when the mean is far from 0") {
    Generator gen(6);
    Tensor x64 = add_scalar(randn({2, 4, 20, 20}, gen, DType::F64), 100.0);
    Tensor g64 = randn({4}, gen, DType::F64), b64 = randn({4}, gen, DType::F64);
    GroupNormOut want = group_norm_forward(x64, g64, b64, 2, 1e-5);
    GroupNormOut got = group_norm_forward(x64.to(DType::F32), g64.to(DType::F32), b64.to(DType::F32), 2, 1e-5);
    CHECK(ddpm::test::max_abs_diff(got.y.to(DType::F64), want.y) <= 2e-4);  // outputs are O(1)
    CHECK(ddpm::test::max_abs_diff(got.rstd.to(DType::F64), want.rstd) <= 1e-5);
}

TEST_CASE_TEMPLATE("softmax and log_softmax along any axis", T, float, double) {
    const DType dt = dtype_of<T>();
    Tensor x = Tensor::from_data({1, 2, 3, 1, 1, 1}, {2, 3}, dt);
    const double z = std::exp(1) + std::exp(2) + std::exp(3);
    check_values(softmax(x, 1), {std::exp(1) / z, std::exp(2) / z, std::exp(3) / z, 1 / 3., 1 / 3., 1 / 3.}, tol<T>());
    check_values(log_softmax(x, -1), {1 - std::log(z), 2 - std::log(z), 3 - std::log(z), -std::log(3), -std::log(3),
                                      -std::log(3)},
                 tol<T>());
    // Along axis 0 each column is a 2-way softmax.
    const double s = 1 / (1 + std::exp(-1.0));
    check_values(softmax(x, 0), {0.5, s, 1 / (1 + std::exp(-2.0)), 0.5, 1 - s, 1 - 1 / (1 + std::exp(-2.0))},
                 tol<T>());
    // Stable for large inputs: shifting by 1000 changes nothing.
    Tensor big = Tensor::from_data({1001, 1002, 1003}, {3}, dt);
    check_values(softmax(big, 0), {std::exp(1) / z, std::exp(2) / z, std::exp(3) / z}, tol<T>());
}

TEST_CASE_TEMPLATE("nearest upsampling and its backward", T, float, double) {
    const DType dt = dtype_of<T>();
    Tensor x = Tensor::from_data({1, 2, 3, 4}, {1, 1, 2, 2}, dt);
    Tensor y = upsample_nearest2x(x);
    CHECK(y.shape() == Shape{1, 1, 4, 4});
    check_values(y, {1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4}, 0);
    Tensor dy = Tensor::arange(16, dt).reshape({1, 1, 4, 4});
    check_values(upsample_nearest2x_backward(dy), {0 + 1 + 4 + 5, 2 + 3 + 6 + 7, 8 + 9 + 12 + 13, 10 + 11 + 14 + 15}, 0);
}

TEST_CASE_TEMPLATE("dropout keeps 1-p of the elements, scaled by 1/(1-p)", T, float, double) {
    const DType dt = dtype_of<T>();
    Generator gen(9);
    Tensor x = Tensor::ones({100000}, dt);
    DropoutOut d = dropout_forward(x, 0.25, gen);
    int64_t kept = 0;
    for (int64_t i = 0; i < x.numel(); ++i) {
        const double v = d.y.flat(i);
        CHECK((v == 0.0 || std::abs(v - 4.0 / 3.0) < 1e-6));
        kept += v != 0.0;
    }
    CHECK(std::abs(kept - 75000) < 5 * 137);  // sd = sqrt(1e5 * 0.25 * 0.75)
    CHECK_THROWS_AS(dropout_forward(x, 1.0, gen), TensorError);
    // The mask is the uniform draw of the same counters (fill_uniform) compared with p ...
    Generator replay(9);
    Tensor u = rand(x.shape(), replay, dt);
    for (int64_t i = 0; i < x.numel(); ++i) CHECK((d.y.flat(i) != 0.0) == (u.flat(i) >= 0.25));
    // ... and backward applies the kept bits: dx = dy * mask.
    Tensor dy = Tensor::arange(100000, dt);
    Tensor dx = dropout_backward(dy, d.keep, 0.25);
    for (int64_t i = 0; i < x.numel(); i += 7) CHECK(dx.flat(i) == doctest::Approx(dy.flat(i) * d.y.flat(i)));
    // p = 0 keeps everything.
    check_values(dropout_forward(Tensor::ones({70}, dt), 0.0, gen).y, std::vector<double>(70, 1.0), 0);
}

TEST_CASE_TEMPLATE("concat and narrow along inner axes", T, float, double) {
    const DType dt = dtype_of<T>();
    Tensor a = Tensor::from_data({1, 2, 3, 4}, {2, 2}, dt);
    Tensor b = Tensor::from_data({5, 6}, {2, 1}, dt);
    Tensor c = concat({a, b}, 1);
    CHECK(c.shape() == Shape{2, 3});
    check_values(c, {1, 2, 5, 3, 4, 6}, 0);
    check_values(concat({a, a}, 0), {1, 2, 3, 4, 1, 2, 3, 4}, 0);
    check_values(narrow(c, 1, 1, 2), {2, 5, 4, 6}, 0);
    const std::string msg = fmt::format("concat: tensors {0}[2,2], {0}[3,1] differ outside axis 1", dtype_name(dt));
    CHECK_THROWS_WITH_AS(concat({a, Tensor::zeros({3, 1}, dt)}, 1), msg.c_str(), TensorError);
}
