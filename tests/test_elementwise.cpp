// Element-wise ops: values against hand-computed results, broadcasting, errors.
#include <bit>
#include <cmath>
#include <limits>
#include <vector>

#include "helpers.h"
#include "tensor/elementwise.h"
#include "tensor/fast_exp.h"

using namespace ddpm;
using ddpm::test::check_values;
using ddpm::test::tol;

TEST_CASE_TEMPLATE("binary ops with broadcasting", T, float, double) {
    const DType dt = dtype_of<T>();
    Tensor a = Tensor::from_data({1, 2, 3, 4, 5, 6}, {2, 3}, dt);
    Tensor row = Tensor::from_data({10, 20, 30}, {3}, dt);
    Tensor col = Tensor::from_data({100, 200}, {2, 1}, dt);
    check_values(add(a, row), {11, 22, 33, 14, 25, 36}, tol<T>());
    check_values(add(a, col), {101, 102, 103, 204, 205, 206}, tol<T>());
    check_values(sub(a, row), {-9, -18, -27, -6, -15, -24}, tol<T>());
    check_values(mul(a, col), {100, 200, 300, 800, 1000, 1200}, tol<T>());
    check_values(div(row, a), {10, 10, 10, 2.5, 4, 5}, tol<T>());
    // Both operands stretched: [2,1] x [3] -> [2,3].
    Tensor outer = mul(col, row);
    CHECK(outer.shape() == Shape{2, 3});
    check_values(outer, {1000, 2000, 3000, 2000, 4000, 6000}, tol<T>());
    // A 0-d scalar broadcasts against anything.
    check_values(add(a, Tensor::scalar(1, dt)), {2, 3, 4, 5, 6, 7}, tol<T>());
    check_values(maximum(a, Tensor::scalar(3.5, dt)), {3.5, 3.5, 3.5, 4, 5, 6}, tol<T>());
    // Per-channel bias on a 4-D tensor, the U-Net's most common broadcast.
    Tensor x = Tensor::zeros({2, 3, 2, 2}, dt);
    Tensor bias = Tensor::from_data({1, 2, 3}, {1, 3, 1, 1}, dt);
    Tensor y = add(x, bias);
    for (int64_t i = 0; i < y.numel(); ++i) CHECK(y.flat(i) == 1 + (i / 4) % 3);
}

TEST_CASE_TEMPLATE("large broadcasts match a scalar loop (threaded path)", T, float, double) {
    const DType dt = dtype_of<T>();
    Tensor x = Tensor::arange(8 * 16 * 30 * 30, dt).reshape({8, 16, 30, 30});
    Tensor b = Tensor::arange(8 * 16, dt).reshape({8, 16, 1, 1});
    Tensor y = add(x, b);
    for (int64_t i = 0; i < y.numel(); i += 97) CHECK(y.flat(i) == x.flat(i) + (i / 900));
    Tensor z = mul(x, Tensor::scalar(2, dt));
    for (int64_t i = 0; i < z.numel(); i += 101) CHECK(z.flat(i) == 2 * x.flat(i));
}

TEST_CASE_TEMPLATE("comparisons and where", T, float, double) {
    const DType dt = dtype_of<T>();
    Tensor a = Tensor::from_data({1, 5, 3}, {3}, dt);
    Tensor b = Tensor::from_data({2, 5, 1}, {3}, dt);
    check_values(gt(a, b), {0, 0, 1}, 0);
    check_values(lt(a, b), {1, 0, 0}, 0);
    check_values(ge(a, b), {0, 1, 1}, 0);
    check_values(le(a, b), {1, 1, 0}, 0);
    check_values(eq(a, b), {0, 1, 0}, 0);
    check_values(where(gt(a, b), a, Tensor::scalar(-1, dt)), {-1, -1, 3}, 0);
}

TEST_CASE_TEMPLATE("unary ops against the standard library", T, float, double) {
    const DType dt = dtype_of<T>();
    const std::vector<double> v = {-2.0, -0.5, 0.0, 0.25, 1.5};
    Tensor x = Tensor::from_data(v, {5}, dt);
    Tensor pos = Tensor::from_data({0.5, 1.0, 4.0}, {3}, dt);
    auto expect = [&](const Tensor& got, auto f, const std::vector<double>& in) {
        std::vector<double> want;
        for (double e : in) want.push_back(f(e));
        check_values(got, want, tol<T>());
    };
    expect(neg(x), [](double e) { return -e; }, v);
    expect(exp(x), [](double e) { return std::exp(e); }, v);
    expect(tanh(x), [](double e) { return std::tanh(e); }, v);
    expect(sigmoid(x), [](double e) { return 1 / (1 + std::exp(-e)); }, v);
    expect(silu(x), [](double e) { return e / (1 + std::exp(-e)); }, v);
    expect(abs(x), [](double e) { return std::abs(e); }, v);
    expect(erf(x), [](double e) { return std::erf(e); }, v);
    expect(clamp(x, -1, 0.3), [](double e) { return std::min(std::max(e, -1.0), 0.3); }, v);
    expect(sign(x), [](double e) { return double((e > 0) - (e < 0)); }, v);
    expect(add_scalar(x, 3), [](double e) { return e + 3; }, v);
    expect(mul_scalar(x, -2), [](double e) { return -2 * e; }, v);
    expect(pow_scalar(x, 2), [](double e) { return e * e; }, v);
    expect(pow_scalar(pos, 1.5), [](double e) { return std::pow(e, 1.5); }, {0.5, 1.0, 4.0});
    expect(log(pos), [](double e) { return std::log(e); }, {0.5, 1.0, 4.0});
    expect(sqrt(pos), [](double e) { return std::sqrt(e); }, {0.5, 1.0, 4.0});
    // silu'(x) = s (1 + x (1 - s)) at x = 0 is 1/2, at large x tends to 1.
    Tensor d = silu_backward(Tensor::from_data({0, 20}, {2}, dt), Tensor::ones({2}, dt));
    check_values(d, {0.5, 1.0}, 1e-6);
}

// ULPs between two finite floats of one sign (their bit patterns are then ordered as the values).
static int64_t ulps_apart(float a, float b) {
    return std::abs(int64_t{std::bit_cast<int32_t>(a)} - int64_t{std::bit_cast<int32_t>(b)});
}

TEST_CASE("exp_fast, and exp_fast16 lane by lane, against std::exp and at the edges") {
    // Every 1/64 from -90 to 90: beyond the clamp at both ends, n = 128 above 88.3763.
    std::vector<float> xs;
    for (int i = -90 * 64; i <= 90 * 64; ++i) xs.push_back(static_cast<float>(i) / 64.0f);
    for (float e : {0.0f, -0.0f, 1e-30f, -1e-30f, 0.5f * 0.6931472f, 88.37f, 88.38f, 88.7f, -87.3f, -87.29f})
        xs.push_back(e);
    const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
    xs.insert(xs.end(), {inf, -inf, nan});
    while (xs.size() % 16) xs.push_back(0.0f);
    std::vector<float> fast16(xs.size());
#if defined(__AVX512F__)
    constexpr bool kHave16 = true;
    for (size_t i = 0; i < xs.size(); i += 16)
        _mm512_storeu_ps(fast16.data() + i, exp_fast16(_mm512_loadu_ps(xs.data() + i)));
#else
    constexpr bool kHave16 = false;  // exp_fast16 not built: its checks below are skipped
    MESSAGE("no AVX-512 in this build: exp_fast16 not built, exp_fast alone checked");
#endif
    int64_t worst = 0, worst16 = 0;
    for (size_t i = 0; i < xs.size(); ++i) {
        const float x = xs[i], e = exp_fast(x), e16 = fast16[i];
        INFO("x = " << x << ": exp_fast " << e << ", exp_fast16 " << e16);
        if (std::isnan(x)) {
            CHECK(std::isnan(e));
            if (kHave16) CHECK(std::isnan(e16));
        } else if (x < -87.3f) {  // the clamp: e^-87.3, not the denormal or 0 of exp
            CHECK(e == exp_fast(-87.3f));
            if (kHave16) CHECK(e16 == exp_fast(-87.3f));
        } else if (x > 88.3763f) {  // n = 128 (127.5 ln 2 = 88.37626); exp_fast: 2^n overflows, +inf;
                                    // exp_fast16: exp's value, +inf past 88.72
            const float want = static_cast<float>(std::exp(static_cast<double>(x)));
            CHECK(e == inf);
            if (kHave16) CHECK((want == inf ? e16 == inf : ulps_apart(e16, want) <= 2));
        } else {
            const float want = static_cast<float>(std::exp(static_cast<double>(x)));
            worst = std::max(worst, ulps_apart(e, want));
            if (kHave16) worst16 = std::max(worst16, ulps_apart(e16, e));
        }
    }
    CHECK(worst <= 2);    // the header's "about 1 ulp"
    CHECK(worst16 <= 2);  // the header's "within 2 ulp of exp_fast" (0 when not built)
    MESSAGE("exp_fast within " << worst << " ulp of exp; exp_fast16 within " << worst16 << " of exp_fast");
}

TEST_CASE_TEMPLATE("in-place updates and expand", T, float, double) {
    const DType dt = dtype_of<T>();
    Tensor a = Tensor::ones({2, 2}, dt);
    add_(a, Tensor::from_data({1, 2}, {2}, dt));
    check_values(a, {2, 3, 2, 3}, 0);
    axpy_(a, 0.5, Tensor::full({2, 2}, 4, dt));
    check_values(a, {4, 5, 4, 5}, 0);
    scale_(a, 2);
    check_values(a, {8, 10, 8, 10}, 0);
    check_values(expand(Tensor::from_data({1, 2}, {2, 1}, dt), {2, 3}), {1, 1, 1, 2, 2, 2}, 0);
}

TEST_CASE("mismatched shapes and dtypes name the op and the shapes") {
    Tensor a = Tensor::zeros({2, 3});
    CHECK_THROWS_WITH_AS(add(a, Tensor::zeros({4})), "add: shapes [2,3] and [4] do not broadcast (axis 1: 3 vs 4)",
                         TensorError);
    CHECK_THROWS_WITH_AS(mul(a, Tensor::zeros({2, 3}, DType::F64)), "mul: dtypes differ: f32[2,3] and f64[2,3]",
                         TensorError);
    CHECK_THROWS_AS(add_(a, Tensor::zeros({3, 3})), TensorError);
}
