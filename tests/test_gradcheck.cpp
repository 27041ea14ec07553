// Every differentiable op against central differences in float64, through the
// random projection sum(f(x) * g). Bar: norm-wise relative error <= 1e-6.
#include "autograd/gradcheck.h"
#include "autograd/ops.h"
#include "helpers.h"
#include "tensor/elementwise.h"
#include "tensor/random.h"

using namespace ddpm;

namespace {
constexpr double kTol = 1e-6;
using Vars = const std::vector<Variable>&;

Tensor rn(const Shape& s, uint64_t seed) {
    Generator g(seed);
    return randn(s, g, DType::F64);
}
// Values bounded away from 0 (for log, sqrt, abs, div).
Tensor positive(const Shape& s, uint64_t seed) {
    Generator g(seed);
    Tensor u = rand(s, g, DType::F64);
    for (int64_t i = 0; i < u.numel(); ++i) u.set_flat(i, 0.5 + 1.5 * u.flat(i));
    return u;
}

void expect_grad(const char* name, const GradcheckFn& f, const std::vector<Tensor>& inputs,
                 GradcheckOptions opt = {}) {
    GradcheckResult r = gradcheck(f, inputs, opt);
    INFO(name << "\n" << r.report());
    CHECK(r.worst_rel() <= kTol);
    for (int64_t n : r.checked) CHECK(n > 0);
}
}  // namespace

TEST_CASE("gradcheck: binary ops with broadcasting") {
    expect_grad("add", [](Vars v) { return v[0] + v[1]; }, {rn({2, 3, 4}, 1), rn({3, 1}, 2)});
    expect_grad("sub", [](Vars v) { return v[0] - v[1]; }, {rn({4}, 3), rn({2, 3, 4}, 4)});
    expect_grad("mul", [](Vars v) { return v[0] * v[1]; }, {rn({2, 3, 4, 5}, 5), rn({1, 3, 1, 1}, 6)});
    expect_grad("mul same", [](Vars v) { return v[0] * v[0]; }, {rn({6}, 7)});
    expect_grad("div", [](Vars v) { return v[0] / v[1]; }, {rn({2, 3}, 8), positive({2, 1}, 9)});
    expect_grad("scalar broadcast", [](Vars v) { return v[0] * v[1]; }, {rn({3, 4}, 10), rn({}, 11)});
    Tensor cond = Tensor::from_data({1, 0, 1, 0, 0, 1}, {2, 3}, DType::F64);
    expect_grad("where", [cond](Vars v) { return where(cond, v[0], v[1]); }, {rn({2, 3}, 12), rn({3}, 13)});
}

TEST_CASE("gradcheck: unary ops") {
    Tensor x = rn({3, 5}, 20), p = positive({3, 5}, 21);
    expect_grad("add_scalar", [](Vars v) { return v[0] + 2.5; }, {x});
    expect_grad("mul_scalar", [](Vars v) { return v[0] * -1.5; }, {x});
    expect_grad("pow 3", [](Vars v) { return pow(v[0], 3.0); }, {x});
    expect_grad("pow 1.5", [](Vars v) { return pow(v[0], 1.5); }, {p});
    expect_grad("neg", [](Vars v) { return -v[0]; }, {x});
    expect_grad("exp", [](Vars v) { return exp(v[0]); }, {x});
    expect_grad("log", [](Vars v) { return log(v[0]); }, {p});
    expect_grad("sqrt", [](Vars v) { return sqrt(v[0]); }, {p});
    expect_grad("tanh", [](Vars v) { return tanh(v[0]); }, {x});
    expect_grad("sigmoid", [](Vars v) { return sigmoid(v[0]); }, {x});
    expect_grad("silu", [](Vars v) { return silu(v[0]); }, {x});
    expect_grad("abs", [](Vars v) { return abs(v[0]); }, {p});
    expect_grad("abs of negatives", [](Vars v) { return abs(-v[0]); }, {p});
    expect_grad("erf", [](Vars v) { return erf(v[0]); }, {x});
    expect_grad("clamp", [](Vars v) { return clamp(v[0], -0.7, 0.9); }, {x});
}

TEST_CASE("gradcheck: reductions and softmax") {
    Tensor x = rn({2, 3, 4}, 30);
    expect_grad("sum all", [](Vars v) { return sum(v[0]); }, {x});
    expect_grad("sum axes", [](Vars v) { return sum(v[0], {0, 2}); }, {x});
    expect_grad("sum keepdim", [](Vars v) { return sum(v[0], {1}, true); }, {x});
    expect_grad("mean", [](Vars v) { return mean(v[0], {-1}); }, {x});
    expect_grad("mean all", [](Vars v) { return mean(v[0]); }, {x});
    expect_grad("max", [](Vars v) { return max(v[0], {1}); }, {x});  // randn: no ties
    expect_grad("max keepdim", [](Vars v) { return max(v[0], {0, 2}, true); }, {x});
    expect_grad("softmax last", [](Vars v) { return softmax(v[0], -1); }, {x});
    expect_grad("softmax middle", [](Vars v) { return softmax(v[0], 1); }, {x});
    expect_grad("log_softmax", [](Vars v) { return log_softmax(v[0], 0); }, {x});
}

TEST_CASE("gradcheck: matmul, 2-D and batched, with transposes") {
    for (bool ta : {false, true})
        for (bool tb : {false, true}) {
            Tensor a = rn(ta ? Shape{4, 3} : Shape{3, 4}, 40), b = rn(tb ? Shape{5, 4} : Shape{4, 5}, 41);
            expect_grad("matmul 2-D", [=](Vars v) { return matmul(v[0], v[1], ta, tb); }, {a, b});
            Tensor ba = rn(ta ? Shape{2, 3, 4, 3} : Shape{2, 3, 3, 4}, 42);
            Tensor bb = rn(tb ? Shape{2, 3, 5, 4} : Shape{2, 3, 4, 5}, 43);
            expect_grad("matmul batched", [=](Vars v) { return matmul(v[0], v[1], ta, tb); }, {ba, bb});
            expect_grad("matmul shared right operand", [=](Vars v) { return matmul(v[0], v[1], ta, tb); }, {ba, b});
            expect_grad("matmul shared left operand", [=](Vars v) { return matmul(v[0], v[1], ta, tb); }, {a, bb});
        }
}

TEST_CASE("gradcheck: attention (q, k, v each), several entries, ragged sizes") {
    // d = 3 and N = 5, 13: sizes off every vector width; 3 entries share the threads.
    for (int64_t N : {5, 13}) {
        Tensor q = rn({3, 3, N}, 44), k = rn({3, 3, N}, 45), v = rn({3, 3, N}, 46);
        expect_grad("attention", [](Vars x) { return attention(x[0], x[1], x[2]); }, {q, k, v});
    }
}

TEST_CASE("gradcheck: conv2d") {
    expect_grad("conv 3x3 stride 2 pad 1 with bias",
                [](Vars v) { return conv2d(v[0], v[1], v[2], 2, 1); },
                {rn({2, 3, 7, 6}, 50), rn({4, 3, 3, 3}, 51), rn({4}, 52)});
    expect_grad("conv 3x3 stride 1 pad 1, 2 channels (im2col)",
                [](Vars v) { return conv2d(v[0], v[1], Variable(), 1, 1); },
                {rn({2, 2, 5, 5}, 53), rn({3, 2, 3, 3}, 54)});
    expect_grad("conv 3x3 stride 1 pad 1 with bias, 4 channels (Winograd)",
                [](Vars v) { return conv2d(v[0], v[1], v[2], 1, 1); },
                {rn({2, 4, 5, 6}, 61), rn({3, 4, 3, 3}, 62), rn({3}, 63)});
    expect_grad("conv 1x1", [](Vars v) { return conv2d(v[0], v[1], v[2], 1, 0); },
                {rn({3, 4, 3, 3}, 55), rn({5, 4, 1, 1}, 56), rn({5}, 57)});
    expect_grad("conv 3x3 Winograd, a bias per image", [](Vars v) { return conv2d(v[0], v[1], v[2], 1, 1); },
                {rn({3, 4, 5, 6}, 64), rn({3, 4, 3, 3}, 65), rn({3, 3}, 66)});
    expect_grad("conv 3x3 stride 2 (im2col), a bias per image", [](Vars v) { return conv2d(v[0], v[1], v[2], 2, 1); },
                {rn({2, 3, 7, 6}, 67), rn({4, 3, 3, 3}, 68), rn({2, 4}, 69)});
    expect_grad("conv 3x3 Winograd plus a residual", [](Vars v) { return conv2d(v[0], v[1], v[2], 1, 1, v[3]); },
                {rn({2, 4, 5, 6}, 70), rn({3, 4, 3, 3}, 71), rn({3}, 72), rn({2, 3, 5, 6}, 73)});
    expect_grad("conv 1x1 plus a residual, a bias per image",
                [](Vars v) { return conv2d(v[0], v[1], v[2], 1, 0, v[3]); },
                {rn({3, 4, 3, 3}, 74), rn({5, 4, 1, 1}, 75), rn({3, 5}, 76), rn({3, 5, 3, 3}, 77)});
    expect_grad("conv 2x2 stride 2 no pad", [](Vars v) { return conv2d(v[0], v[1], v[2], 2, 0); },
                {rn({1, 2, 6, 4}, 58), rn({2, 2, 2, 2}, 59), rn({2}, 60)});
}

TEST_CASE("gradcheck: group norm") {
    expect_grad("group_norm 2 groups", [](Vars v) { return group_norm(v[0], v[1], v[2], 2, 1e-5); },
                {rn({2, 4, 3, 3}, 70), rn({4}, 71), rn({4}, 72)});
    expect_grad("group_norm 1 group", [](Vars v) { return group_norm(v[0], v[1], v[2], 1, 1e-5); },
                {rn({3, 2, 2, 5}, 73), rn({2}, 74), rn({2}, 75)});
    expect_grad("group_norm one channel per group", [](Vars v) { return group_norm(v[0], v[1], v[2], 3, 1e-5); },
                {rn({2, 3, 4, 4}, 76), rn({3}, 77), rn({3}, 78)});
}

TEST_CASE("gradcheck: group norm fused with SiLU") {
    expect_grad("group_norm_silu 2 groups", [](Vars v) { return group_norm_silu(v[0], v[1], v[2], 2, 1e-5); },
                {rn({2, 4, 3, 3}, 80), rn({4}, 81), rn({4}, 82)});
    expect_grad("group_norm_silu 1 group, 300 elements", [](Vars v) { return group_norm_silu(v[0], v[1], v[2], 1, 1e-5); },
                {rn({2, 3, 10, 10}, 83), rn({3}, 84), rn({3}, 85)});
    expect_grad("group_norm_silu, gamma and beta per image", [](Vars v) { return group_norm_silu(v[0], v[1], v[2], 2, 1e-5); },
                {rn({3, 4, 3, 3}, 86), rn({3, 4}, 87), rn({3, 4}, 88)});
}

TEST_CASE("gradcheck: shapes, slices, concat, upsampling, dropout") {
    Tensor x = rn({4, 3, 2, 2}, 80);
    expect_grad("reshape", [](Vars v) { return reshape(v[0], {6, 8}); }, {x});
    expect_grad("slice", [](Vars v) { return slice(v[0], 1, 3) * slice(v[0], 2, 4); }, {x});
    expect_grad("permute", [](Vars v) { return permute(v[0], {2, 0, 3, 1}); }, {x});
    expect_grad("transpose", [](Vars v) { return transpose(v[0], 1, -1); }, {x});
    expect_grad("concat channels", [](Vars v) { return concat({v[0], v[1], v[0]}, 1); },
                {x, rn({4, 2, 2, 2}, 81)});
    expect_grad("concat batch", [](Vars v) { return concat({v[0], v[1]}, 0); }, {x, rn({1, 3, 2, 2}, 82)});
    expect_grad("narrow", [](Vars v) { return narrow(v[0], 1, 1, 2); }, {x});
    expect_grad("upsample", [](Vars v) { return upsample_nearest2x(v[0]); }, {x});
    expect_grad("dropout", [](Vars v) {
        Generator gen(99);  // the same mask on every call
        return dropout(v[0], 0.3, gen, true);
    }, {x});
}

TEST_CASE("embedding: rows picked by index, against a naive loop, and gradients add up in repeated rows") {
    const Tensor table = rn({4, 3}, 90), ids = Tensor::from_data({2, 0, 2, 3, 2}, {5}, DType::F64);
    const Tensor out = embedding(Variable(table), ids).data();
    for (int64_t b = 0; b < 5; ++b)
        for (int64_t d = 0; d < 3; ++d) CHECK(out.flat(b * 3 + d) == table.flat(int64_t(ids.flat(b)) * 3 + d));
    expect_grad("embedding", [ids](Vars v) { return embedding(v[0], ids); }, {table});
    CHECK(test::error_message<TensorError>([&] { embedding(Variable(table), Tensor::from_data({4}, {1}, DType::F64)); })
              .find("id 4 of row 0 is not a row of a 4-row table") != std::string::npos);
    CHECK(test::error_message<TensorError>([&] { embedding(Variable(table), Tensor::from_data({0.5}, {1}, DType::F64)); })
              .find("id 0.5") != std::string::npos);
}

TEST_CASE("gradcheck: a composite of two conv layers with group norm and SiLU") {
    // h = conv(SiLU(GN(conv(x)))) + x-skip through a 1x1 conv; the shape of a ResBlock.
    auto block = [](Vars v) {
        Variable h = conv2d(v[0], v[1], v[2], 1, 1);
        h = silu(group_norm(h, v[3], v[4], 2, 1e-5));
        h = conv2d(h, v[5], Variable(), 2, 1);
        Variable skip = conv2d(v[0], v[6], Variable(), 2, 0);
        return h + skip;
    };
    expect_grad("resblock-like composite", block,
                {rn({2, 3, 6, 6}, 90), rn({4, 3, 3, 3}, 91), rn({4}, 92), rn({4}, 93), rn({4}, 94),
                 rn({5, 4, 3, 3}, 95), rn({5, 3, 1, 1}, 96)});
}

TEST_CASE("gradcheck catches a wrong backward and reports per input") {
    // x^2 with the factor 2 forgotten, and a transposed-sign bug.
    auto wrong_square = [](Vars v) {
        return Variable::make_result(
            ddpm::mul(v[0].data(), v[0].data()), {v[0]},
            [](const Tensor& g, VariableList& in) { in[0].accumulate_grad(ddpm::mul(g, in[0].data())); },
            "bad_square");
    };
    GradcheckResult r = gradcheck(wrong_square, {rn({5}, 100)});
    CHECK(r.max_rel_error.size() == 1);
    CHECK(r.worst_rel() > 0.4);
    auto wrong_sub = [](Vars v) {
        return Variable::make_result(
            ddpm::sub(v[0].data(), v[1].data()), {v[0], v[1]},
            [](const Tensor& g, VariableList& in) {
                in[0].accumulate_grad(g.clone());
                in[1].accumulate_grad(g.clone());  // should be -g
            },
            "bad_sub");
    };
    r = gradcheck(wrong_sub, {rn({3}, 101), rn({3}, 102)});
    CHECK(r.max_rel_error[0] <= kTol);
    CHECK(r.max_rel_error[1] > 1.0);
    CHECK(r.report().find("input 1") != std::string::npos);
}
