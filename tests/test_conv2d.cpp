// conv2d: hand-computed values, the naive references (forward and backward) for the
// Winograd, direct and im2col paths, backward by adjointness.
#include "helpers.h"
#include "tensor/conv2d.h"
#include "tensor/direct_conv.h"
#include "tensor/gemm_kernels.h"
#include "tensor/winograd.h"
#include "tensor/elementwise.h"
#include "tensor/random.h"

using namespace ddpm;
using ddpm::test::check_values;
using ddpm::test::max_abs_diff;
using ddpm::test::relative_rms_error;
using ddpm::test::tol;

static std::string plan_name(WinogradPlan plan) {
    return plan == WinogradPlan::ByXi ? "by xi" : plan == WinogradPlan::ByChannels ? "by channels" : "by blocks";
}

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
        // A bias per image: each image's output is that image's convolution with its own bias.
        Tensor bi = randn({c.B, c.OC}, gen, dt), y = conv2d_forward(x, w, bi, c.stride, c.pad);
        CHECK(max_abs_diff(y, conv2d_reference(x, w, bi, c.stride, c.pad)) < 1e3 * tol<T>());
        for (int64_t i = 0; i < c.B; ++i)
            CHECK(max_abs_diff(y.select(i), conv2d_forward(x.slice(i, i + 1), w, bi.select(i), c.stride, c.pad).select(0)) <
                  1e3 * tol<T>());
        // A residual added as the output is written: with either kind of bias, and none.
        Tensor r = randn(y.shape(), gen, dt);
        for (const Tensor& bias : {b, bi, Tensor()})
            CHECK(max_abs_diff(conv2d_forward(x, w, bias, c.stride, c.pad, r),
                               add(conv2d_reference(x, w, bias, c.stride, c.pad), r)) < 1e3 * tol<T>());
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
    CHECK_THROWS_WITH_AS(conv2d_forward(x, Tensor::zeros({64, 32, 3, 3}), Tensor(), 1, 1, x),
                         "conv2d: residual f32[64,32,28,28] for output f32[64,64,28,28]: shapes differ", TensorError);
    CHECK_THROWS_WITH_AS(conv2d_forward(x, Tensor::zeros({8, 32, 3, 3}), Tensor::zeros({32, 8}), 1, 1),
                         "conv2d: bias f32[32,8] does not match weight f32[8,32,3,3] (it is (OC) or (B,OC))",
                         TensorError);
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
    // filled (17 tiles), and batches cut into several blocks per thread; rows of
    // tiles that the output transform writes four (16 columns) or two (8) at a time,
    // whole or with the last tile cut by the plane's edge (14, 13, 7), and mixed with
    // tiles written one by one (28: rows of seven tiles, across lane groups).
    const DType dt = dtype_of<T>();
    Generator gen(21);
    struct Case { int64_t B, C, H, W, OC; };
    // (Fewer than 4 input channels take the im2col path: held to the same loops.)
    for (Case c : {Case{1, 4, 1, 1, 1}, Case{2, 4, 2, 3, 4}, Case{3, 4, 5, 5, 5}, Case{2, 5, 7, 7, 3},
                   Case{1, 6, 9, 13, 2}, Case{17, 4, 4, 4, 2}, Case{40, 8, 14, 14, 6}, Case{3, 16, 28, 28, 8},
                   Case{2, 1, 6, 6, 3}, Case{2, 3, 5, 5, 1}, Case{2, 4, 8, 16, 3}, Case{3, 4, 8, 8, 2}}) {
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
        // Every way of sharing out the work, whichever the size picks.
        if (c.C >= 4)
            for (WinogradPlan plan : {WinogradPlan::ByBlocks, WinogradPlan::ByXi, WinogradPlan::ByChannels}) {
                INFO(plan_name(plan));
                // (with a residual added as the output tiles are written)
                Tensor out = Tensor::zeros(y.shape(), dt), dx = Tensor::zeros(x.shape(), dt);
                Generator rgen(22);  // its own stream: the cases' x, w and dy stay as they were
                Tensor residual = randn(y.shape(), rgen, dt), want_out = add(y_ref, residual);
                winograd_conv3x3_forward(x.data<T>(), w.data<T>(), b.data<T>(), out.data<T>(), c.B, c.C, c.H, c.W,
                                         c.OC, false, static_cast<const T*>(residual.data<T>()), plan);
                CHECK(max_abs_diff(out, want_out) <= rel * max_abs(want_out));
                winograd_conv3x3_input_grad(dy.data<T>(), w.data<T>(), dx.data<T>(), c.B, c.C, c.H, c.W, c.OC, plan);
                CHECK(max_abs_diff(dx, want.dx) <= rel * max_abs(want.dx));
                Tensor dw = Tensor::zeros(w.shape(), dt), db = Tensor::zeros({c.OC}, dt);
                winograd_conv3x3_weight_grad(x.data<T>(), dy.data<T>(), dw.data<T>(), db.data<T>(), c.B, c.C, c.H,
                                             c.W, c.OC, plan);
                CHECK(max_abs_diff(dw, want.dweight) <= rel * max_abs(want.dweight));
                CHECK(max_abs_diff(db, want.dbias) <= rel * max_abs(want.dbias));
            }
    }
}

// The weight gradient's first block of each slice writes dU and the others add to it
// (no clearing pass). Enough tiles for several blocks per slice (by blocks: 196 tiles
// of 64 -> 64 channels, blocks of at most 80) and several shared blocks (by xi: 256
// tiles of 128 -> 128 channels, shared blocks of about 227): the batch's gradient must
// equal the sum of each image's, every one of those a single block (float64).
TEST_CASE("a weight gradient over many blocks equals the sum of its images' gradients") {
    Generator gen(31);
    struct Case { int64_t B, C, H, OC; WinogradPlan plan; };
    for (Case c : {Case{4, 64, 28, 64, WinogradPlan::ByBlocks}, Case{64, 128, 7, 128, WinogradPlan::ByXi}}) {
        INFO("B " << c.B << " C " << c.C << " " << c.H << "x" << c.H << (c.plan == WinogradPlan::ByXi ? " by xi" : " by blocks"));
        const int64_t plane = c.H * c.H;
        Tensor x = randn({c.B, c.C, c.H, c.H}, gen, DType::F64), dy = randn({c.B, c.OC, c.H, c.H}, gen, DType::F64);
        Tensor dw = Tensor::zeros({c.OC, c.C, 3, 3}, DType::F64), db = Tensor::zeros({c.OC}, DType::F64);
        winograd_conv3x3_weight_grad(x.data<double>(), dy.data<double>(), dw.data<double>(), db.data<double>(), c.B, c.C,
                                     c.H, c.H, c.OC, c.plan);
        Tensor sum_dw = Tensor::zeros(dw.shape(), DType::F64), one = Tensor::zeros(dw.shape(), DType::F64);
        Tensor one_db = Tensor::zeros({c.OC}, DType::F64);
        for (int64_t b = 0; b < c.B; ++b) {
            winograd_conv3x3_weight_grad(x.data<double>() + b * c.C * plane, dy.data<double>() + b * c.OC * plane,
                                         one.data<double>(), one_db.data<double>(), 1, c.C, c.H, c.H, c.OC, c.plan);
            sum_dw = add(sum_dw, one);
        }
        CHECK(max_abs_diff(dw, sum_dw) <= 1e-12 * max_abs(sum_dw));
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

// 3x3 convolutions with one output channel take the direct sum on padded planes
// (direct_conv.h), called here directly for two and three as well: forward with each
// kind of bias and a residual, and all three gradients, against the definition, at odd
// sizes (one pixel, rows of 2 and of 17 or 33).
TEST_CASE_TEMPLATE("3x3 convolutions by the direct sum match the naive loops", T, float, double) {
    const DType dt = dtype_of<T>();
    const double rel = std::is_same_v<T, float> ? 1e-5 : 1e-12;
    Generator gen(23);
    struct Case { int64_t B, C, H, W, OC; };
    for (Case c : {Case{3, 5, 7, 7, 1}, Case{2, 4, 1, 1, 2}, Case{2, 16, 28, 28, 1}, Case{1, 3, 5, 9, 3},
                   Case{5, 6, 4, 17, 1}, Case{2, 1, 6, 6, 2}, Case{1, 8, 33, 2, 3}}) {
        INFO("B " << c.B << " C " << c.C << " " << c.H << "x" << c.W << " OC " << c.OC);
        Tensor x = randn({c.B, c.C, c.H, c.W}, gen, dt), w = randn({c.OC, c.C, 3, 3}, gen, dt);
        Tensor b = randn({c.OC}, gen, dt), bi = randn({c.B, c.OC}, gen, dt);
        Tensor r = randn({c.B, c.OC, c.H, c.W}, gen, dt), y(r.shape(), dt);
        auto data = [](const Tensor& t) { return t.defined() ? t.data<T>() : nullptr; };
        for (const Tensor& bias : {b, bi, Tensor()})
            for (const Tensor& residual : {Tensor(), r}) {
                direct_conv3x3_forward(data(x), data(w), data(bias), y.data<T>(), c.B, c.C, c.H, c.W, c.OC,
                                       bias.defined() && bias.dim() == 2, data(residual));
                Tensor want = conv2d_reference(x, w, bias, 1, 1);
                if (residual.defined()) want = add(want, residual);
                CHECK(max_abs_diff(y, want) <= rel * max_abs(want));
                if (c.OC == 1)  // conv2d routes a single output channel here
                    CHECK(max_abs_diff(conv2d_forward(x, w, bias, 1, 1, residual), y) == 0);
            }
        Tensor dy = randn(r.shape(), gen, dt), dx(x.shape(), dt), dw(w.shape(), dt), db({c.OC}, dt), db2({c.OC}, dt);
        direct_conv3x3_input_grad(data(dy), data(w), dx.data<T>(), c.B, c.C, c.H, c.W, c.OC);
        direct_conv3x3_weight_grad(data(x), data(dy), dw.data<T>(), db.data<T>(), c.B, c.C, c.H, c.W, c.OC);
        direct_conv3x3_weight_grad(data(x), data(dy), static_cast<T*>(nullptr), db2.data<T>(), c.B, c.C, c.H, c.W,
                                   c.OC);  // the bias alone
        Conv2dGrads want = conv2d_backward_reference(dy, x, w, 1, 1);
        CHECK(max_abs_diff(dx, want.dx) <= rel * max_abs(want.dx));
        CHECK(max_abs_diff(dw, want.dweight) <= rel * max_abs(want.dweight));
        CHECK(max_abs_diff(db, want.dbias) <= rel * max_abs(want.dbias));
        CHECK(max_abs_diff(db2, db) == 0);
        if (c.OC == 1) {
            Conv2dGrads got = conv2d_backward(dy, x, w, 1, 1, true, true, true);
            CHECK((max_abs_diff(got.dx, dx) == 0 && max_abs_diff(got.dweight, dw) == 0 &&
                   max_abs_diff(got.dbias, db) == 0));
        }
    }
}

// Stride 2 on rows of up to 32 floats takes a path of its own in float (registers and
// permutes, conv2d.cpp): every width from 1 to 34 (33 and 34 past it, by the loops), odd
// and even heights, kernels 1 to 4 (4 its widest), with and without padding, against the
// definition.
TEST_CASE("stride-2 im2col and col2im match the naive loops at every row width") {
    Generator gen(17);
    struct Case { int64_t K, pad; };
    for (int64_t W = 1; W <= 34; ++W)
        for (Case c : {Case{3, 1}, Case{1, 0}, Case{2, 0}, Case{4, 1}, Case{3, 0}}) {
            const int64_t H = W % 2 ? 5 : 6;
            if (W + 2 * c.pad < c.K || H + 2 * c.pad < c.K) continue;
            INFO("W " << W << " kernel " << c.K << " pad " << c.pad);
            Tensor x = randn({2, 3, H, W}, gen, DType::F32);
            Tensor w = randn({4, 3, c.K, c.K}, gen, DType::F32);
            Tensor y = conv2d_forward(x, w, Tensor(), 2, c.pad);
            CHECK(max_abs_diff(y, conv2d_reference(x, w, Tensor(), 2, c.pad)) <= 1e-5 * max_abs(y));
            Tensor dy = randn(y.shape(), gen, DType::F32);
            Conv2dGrads got = conv2d_backward(dy, x, w, 2, c.pad, true, true, false);
            Conv2dGrads want = conv2d_backward_reference(dy, x, w, 2, c.pad);
            CHECK(max_abs_diff(got.dx, want.dx) <= 1e-5 * max_abs(want.dx));
            CHECK(max_abs_diff(got.dweight, want.dweight) <= 1e-5 * max_abs(want.dweight));
        }
}

// The expected error of --precision bf16 (gemm_kernels.h), relative to the output's RMS.
// Rounding to bfloat16 (8 significant bits, nearest) leaves an error uniform within half
// an ulp, ulp = 2^-7 |x| / m for the significand m in [1, 2): its relative RMS is
// 2^-7 sqrt(E[1/m^2] / 12), with E[1/m^2] = 3 / (8 ln 2) for log-uniform m: 0.001659.
// A product rounds both operands: sqrt(2) x 0.001659 = 0.002346 = sigma. Independent
// errors on a sum of products keep that ratio: the im2col convolutions (1x1, strided)
// err by sigma of the output's RMS, forward and backward.
// Winograd F(4x4, 3x3) rounds the transformed operands u = G g, v = B^T d instead, and
// y_i = sum_xi A^T[i][xi] u_xi v_xi: for unit i.i.d. data each product's error has
// variance sigma^2 |G_xi|^2 |B^T_xi|^2, so per dimension the noise of output i is
// sigma^2 N_i with N_i = sum_xi A^T[i][xi]^2 |G_xi|^2 |B^T_xi|^2 = (9.02, 8.58, 17.3, 94.3)
// (the last row, with its 8s, dominates), against the signal's 3 (three taps). In 2-D
// the factors multiply: RMS ratio sigma mean(N) / 3 = 10.8 sigma = 0.0253. Zero padding
// at the image's edges lowers it a little (0.020-0.023 measured on 14x14 and 7x7).
TEST_CASE("bf16 convolutions err by the bfloat16 rounding derived above: 0.0023 direct, 0.025 Winograd") {
    if (!cpu_has_avx512_bf16()) MESSAGE("no AVX512_BF16: the bf16 reference kernel stands in");
    const double sigma = 0.002346, winograd = 10.77 * sigma;
    Generator gen(7);
    struct Case { int64_t B, C, H, OC, K, stride, pad; };
    // (5 -> 7 channels at 9x9: an odd channel without a partner in its bfloat16 pair, 9 tiles an
    // image, 63 in all: an odd tile without a partner in the weight gradient's pairs.)
    for (Case c : {Case{8, 32, 14, 32, 3, 1, 1}, Case{8, 64, 7, 64, 3, 1, 1}, Case{7, 5, 9, 7, 3, 1, 1},
                   Case{8, 32, 14, 32, 1, 1, 0}, Case{8, 16, 28, 32, 3, 2, 1}}) {
        const bool by_winograd = winograd_applies(c.K, c.K, c.stride, c.pad, c.C);
        INFO("C " << c.C << " " << c.H << "x" << c.H << " OC " << c.OC << " kernel " << c.K << " stride " << c.stride
                  << std::string(by_winograd ? " (Winograd)" : " (im2col)"));
        Tensor x = randn({c.B, c.C, c.H, c.H}, gen, DType::F32);
        Tensor w = mul_scalar(randn({c.OC, c.C, c.K, c.K}, gen, DType::F32), 1.0 / std::sqrt(9.0 * double(c.C)));
        set_gemm_precision(GemmPrecision::FP32);
        Tensor y = conv2d_forward(x, w, Tensor(), c.stride, c.pad);
        Tensor dy = randn(y.shape(), gen, DType::F32);
        Conv2dGrads g = conv2d_backward(dy, x, w, c.stride, c.pad, true, true, false);
        set_gemm_precision(GemmPrecision::BF16);
        Tensor yb = conv2d_forward(x, w, Tensor(), c.stride, c.pad);
        Conv2dGrads gb = conv2d_backward(dy, x, w, c.stride, c.pad, true, true, false);
        // Direct: within 20% of sigma (so bf16 really ran, and rounds no worse).
        // Winograd: between half the predicted ratio (padding) and 1.2 times it.
        const double lo = by_winograd ? 0.5 * winograd : 0.8 * sigma, hi = by_winograd ? 1.2 * winograd : 1.2 * sigma;
        // Every way of sharing out the work: the forward's and input gradient's sums the
        // same, the same bits; the weight gradient's run in another order (other blocks),
        // each within the bounds.
        if (by_winograd)
            for (WinogradPlan plan : {WinogradPlan::ByBlocks, WinogradPlan::ByXi, WinogradPlan::ByChannels}) {
                INFO(plan_name(plan));
                Tensor out = Tensor::zeros(yb.shape(), DType::F32), dx = Tensor::zeros(x.shape(), DType::F32);
                winograd_conv3x3_forward(x.data<float>(), w.data<float>(), static_cast<const float*>(nullptr),
                                         out.data<float>(), c.B, c.C, c.H, c.H, c.OC, false,
                                         static_cast<const float*>(nullptr), plan);
                CHECK(max_abs_diff(out, yb) == 0);
                winograd_conv3x3_input_grad(dy.data<float>(), w.data<float>(), dx.data<float>(), c.B, c.C, c.H, c.H,
                                            c.OC, plan);
                CHECK(max_abs_diff(dx, gb.dx) == 0);
                Tensor dw = Tensor::zeros(w.shape(), DType::F32);
                winograd_conv3x3_weight_grad(x.data<float>(), dy.data<float>(), dw.data<float>(),
                                             static_cast<float*>(nullptr), c.B, c.C, c.H, c.H, c.OC, plan);
                const double ratio = relative_rms_error(g.dweight, dw);
                INFO("dweight: RMS error / RMS = " << ratio);
                CHECK(ratio >= lo);
                CHECK(ratio <= hi);
            }
        set_gemm_precision(GemmPrecision::FP32);
        for (auto [name, want, got] : {std::tuple{"y", &y, &yb}, std::tuple{"dx", &g.dx, &gb.dx},
                                       std::tuple{"dweight", &g.dweight, &gb.dweight}}) {
            const double ratio = relative_rms_error(*want, *got);
            INFO(name << ": RMS error / RMS = " << ratio);
            CHECK(ratio >= lo);
            CHECK(ratio <= hi);
        }
    }
}

// A KernelTransformCache keeps each weight's transform for the next call: the outputs
// are the same bits as without it (fp32 and bf16), each weight is transformed once
// while a scope is alive (nested ones included), and the kept ones are gone after it.
TEST_CASE("kept kernel transforms: the same outputs, one transform per weight while a scope lives") {
    Generator gen(41);
    Tensor x = randn({4, 16, 12, 12}, gen, DType::F32), b = randn({24}, gen, DType::F32);
    Tensor w1 = randn({24, 16, 3, 3}, gen, DType::F32), w2 = randn({24, 16, 3, 3}, gen, DType::F32);
    for (GemmPrecision p : {GemmPrecision::FP32, GemmPrecision::BF16}) {
        INFO((p == GemmPrecision::BF16 ? "bf16" : "fp32"));
        set_gemm_precision(p);
        const Tensor want1 = conv2d_forward(x, w1, b, 1, 1), want2 = conv2d_forward(x, w2, b, 1, 1);
        const int64_t before = winograd_kernel_transforms();
        {
            const KernelTransformCache kept;
            CHECK(max_abs_diff(conv2d_forward(x, w1, b, 1, 1), want1) == 0);
            CHECK(max_abs_diff(conv2d_forward(x, w1, b, 1, 1), want1) == 0);
            CHECK(max_abs_diff(conv2d_forward(x, w2, b, 1, 1), want2) == 0);
            {
                const KernelTransformCache nested;
                CHECK(max_abs_diff(conv2d_forward(x, w1, b, 1, 1), want1) == 0);
            }
            CHECK(max_abs_diff(conv2d_forward(x, w2, b, 1, 1), want2) == 0);
            CHECK(winograd_kernel_transforms() == before + 2);  // w1 and w2, once each
        }
        // The plan by channels makes its rows of U piece by piece, or takes them from the kept U.
        auto by_channels = [&](const Tensor& w) {
            Tensor out = Tensor::zeros(want1.shape(), DType::F32);
            winograd_conv3x3_forward(x.data<float>(), w.data<float>(), b.data<float>(), out.data<float>(), 4, 16, 12,
                                     12, 24, false, static_cast<const float*>(nullptr), WinogradPlan::ByChannels);
            return out;
        };
        CHECK(max_abs_diff(by_channels(w1), want1) == 0);
        {
            const KernelTransformCache kept;
            const int64_t made = winograd_kernel_transforms();
            CHECK(max_abs_diff(by_channels(w1), want1) == 0);
            CHECK(max_abs_diff(by_channels(w1), want1) == 0);
            CHECK(winograd_kernel_transforms() == made + 1);
        }
        // The scope is over: a changed weight at the same address is transformed afresh.
        Tensor w1_was = w1.clone();
        w1.copy_(w2);
        CHECK(max_abs_diff(conv2d_forward(x, w1, b, 1, 1), want2) == 0);
        CHECK(winograd_kernel_transforms() == before + 5);
        w1.copy_(w1_was);
    }
    set_gemm_precision(GemmPrecision::FP32);
}
