// matmul: hand-computed products, transposes, batches, against the naive loop;
// attention against its double loops.
#include <cmath>
#include <tuple>

#include "helpers.h"
#include "tensor/attention.h"
#include "tensor/elementwise.h"
#include "tensor/gemm_kernels.h"
#include "tensor/matmul.h"
#include "tensor/random.h"

using namespace ddpm;
using ddpm::test::check_values;
using ddpm::test::max_abs_diff;
using ddpm::test::relative_rms_error;
using ddpm::test::tol;

TEST_CASE_TEMPLATE("2-D matmul with every transpose flag", T, float, double) {
    const DType dt = dtype_of<T>();
    Tensor a = Tensor::from_data({1, 2, 3, 4, 5, 6}, {2, 3}, dt);      // [[1,2,3],[4,5,6]]
    Tensor b = Tensor::from_data({7, 8, 9, 10, 11, 12}, {3, 2}, dt);   // [[7,8],[9,10],[11,12]]
    check_values(matmul(a, b), {58, 64, 139, 154}, tol<T>());
    Tensor at = a.transpose(0, 1), bt = b.transpose(0, 1);
    check_values(matmul(at, b, true, false), {58, 64, 139, 154}, tol<T>());
    check_values(matmul(a, bt, false, true), {58, 64, 139, 154}, tol<T>());
    check_values(matmul(at, bt, true, true), {58, 64, 139, 154}, tol<T>());
}

TEST_CASE_TEMPLATE("batched matmul, shared operands and the naive reference", T, float, double) {
    const DType dt = dtype_of<T>();
    Generator gen(5);
    for (bool ta : {false, true})
        for (bool tb : {false, true}) {
            Tensor a = randn(ta ? Shape{4, 2, 7, 5} : Shape{4, 2, 5, 7}, gen, dt);
            Tensor b = randn(tb ? Shape{4, 2, 3, 7} : Shape{4, 2, 7, 3}, gen, dt);
            Tensor c = matmul(a, b, ta, tb);
            CHECK(c.shape() == Shape{4, 2, 5, 3});
            CHECK(max_abs_diff(c, matmul_reference(a, b, ta, tb)) < 1e3 * tol<T>());
            Tensor w = randn(tb ? Shape{3, 7} : Shape{7, 3}, gen, dt);  // one matrix for every batch entry
            CHECK(max_abs_diff(matmul(a, w, ta, tb), matmul_reference(a, w, ta, tb)) < 1e3 * tol<T>());
        }
    // Large enough to run across threads.
    Tensor a = randn({16, 64, 96}, gen, dt), b = randn({16, 96, 48}, gen, dt);
    CHECK(max_abs_diff(matmul(a, b), matmul_reference(a, b)) < 1e3 * tol<T>());
    // One product: a small one (a linear layer's, on our kernels in float) with every
    // transpose flag, and one large enough for multi-threaded BLAS (80 MFLOP).
    for (bool ta : {false, true})
        for (bool tb : {false, true}) {
            Tensor x = randn(ta ? Shape{29, 37} : Shape{37, 29}, gen, dt), y = randn(tb ? Shape{41, 29} : Shape{29, 41}, gen, dt);
            CHECK(max_abs_diff(matmul(x, y, ta, tb), matmul_reference(x, y, ta, tb)) < 1e3 * tol<T>());
        }
    Tensor big_a = randn({400, 400}, gen, dt), big_b = randn({400, 250}, gen, dt);
    CHECK(max_abs_diff(matmul(big_a, big_b), matmul_reference(big_a, big_b)) < 1e3 * tol<T>());
}

TEST_CASE("batched float matmul stays fp32 under bf16 precision (attention is not rounded)") {
    // The batched products run on our GEMM kernels; --precision bf16 rounds the
    // convolutions' operands only. (The bf16 reference family exists on every
    // CPU, so the switch is exercised here even without AVX512_BF16.)
    Generator gen(8);
    Tensor a = randn({6, 64, 40}, gen), b = randn({6, 40, 33}, gen);
    const Tensor want = matmul_reference(a, b);
    set_gemm_precision(GemmPrecision::BF16);
    const Tensor got = matmul(a, b);
    set_gemm_precision(GemmPrecision::FP32);
    // fp32 sums of 40 products: ~1e-5 of the scale; bf16 operands would err by ~1e-2.
    CHECK(max_abs_diff(got, want) < 1e-4);
}

TEST_CASE("matmul shape errors name the shapes") {
    Tensor a = Tensor::zeros({2, 3}), b = Tensor::zeros({4, 5});
    CHECK_THROWS_WITH_AS(matmul(a, b), "matmul: inner sizes differ: f32[2,3] @ f32[4,5] (3 vs 4)", TensorError);
    CHECK_THROWS_AS(matmul(Tensor::zeros({2, 2, 3}), Tensor::zeros({3, 3, 4})), TensorError);
    CHECK_THROWS_AS(matmul(Tensor::zeros({3}), Tensor::zeros({3, 3})), TensorError);
}

TEST_CASE("attention in float matches the double loops forward, and the double kernels backward") {
    // The U-Net's shapes (14 x 14 and 7 x 7 positions, 64 channels) and ragged ones; 196
    // and 100 positions run on row-padded copies (padded_row), 49 and fewer in place.
    Generator gen(31);
    struct Case { int64_t batch, d, N; };
    for (Case c : {Case{4, 64, 196}, Case{3, 64, 49}, Case{2, 3, 100}, Case{5, 5, 17}, Case{1, 1, 1}}) {
        INFO("batch " << c.batch << " d " << c.d << " N " << c.N);
        // Queries and keys of a trained layer's scale: softmax weights far from uniform.
        Tensor q = mul_scalar(randn({c.batch, c.d, c.N}, gen), 2.0), k = mul_scalar(randn({c.batch, c.d, c.N}, gen), 2.0);
        Tensor v = randn({c.batch, c.d, c.N}, gen), dout = randn({c.batch, c.d, c.N}, gen);
        Tensor pt;
        Tensor out = attention_forward(q, k, v, &pt);
        CHECK(max_abs_diff(out, attention_reference(q, k, v)) <= 1e-5);
        CHECK(max_abs_diff(attention_forward(q, k, v), out) == 0);  // P^T kept or not: the same bits
        // Each column of P^T is a distribution over the keys.
        for (int64_t i = 0; i < c.N; ++i) {
            double z = 0;
            for (int64_t j = 0; j < c.N; ++j) z += pt.flat(j * c.N + i);
            CHECK(z == doctest::Approx(1.0).epsilon(1e-5));
        }
        Tensor pt64;
        const Tensor q64 = q.to(DType::F64), k64 = k.to(DType::F64), v64 = v.to(DType::F64);
        attention_forward(q64, k64, v64, &pt64);
        const AttentionGrads got = attention_backward(dout, q, k, v, pt);
        const AttentionGrads want = attention_backward(dout.to(DType::F64), q64, k64, v64, pt64);
        CHECK(max_abs_diff(got.dq, want.dq) <= 1e-4);
        CHECK(max_abs_diff(got.dk, want.dk) <= 1e-4);
        CHECK(max_abs_diff(got.dv, want.dv) <= 1e-4);
    }
    CHECK_THROWS_WITH_AS(attention_forward(Tensor::zeros({2, 4, 9}), Tensor::zeros({2, 4, 8}), Tensor::zeros({2, 4, 9})),
                         "attention: q f32[2,4,9] k f32[2,4,8] v f32[2,4,9]: each must be (batch, d, N), all alike",
                         TensorError);
}

// Under --precision bf16 attention's products round both operands to bfloat16:
// sigma = 0.002346 of a product's RMS (derived in test_conv2d.cpp). A product
// adds sigma; an operand already off by sigma carries it through. With unit q, k
// (logits s k^T q of RMS 1, d = 64) the logits err by sigma, absolutely, and the
// softmax passes that on to P as dP_j = P_j (dl_j - sum_j' P_j' dl_j'), about
// sigma relative; so out = v P^T errs by sqrt(2) sigma (its rounding, P's error),
// dv = dout P likewise, and dq = k dS^T, dk = q dS by sqrt(3) sigma (their
// rounding, and dS = s P (dP - c) carrying P's error and that of dP = v^T dout).
// (Measured with q, k twice as large, logits of RMS 4: 1.6-1.8 times these.)
TEST_CASE("bf16 attention errs by the bfloat16 rounding derived above: sqrt(2) and sqrt(3) sigma") {
    if (!cpu_has_avx512_bf16()) MESSAGE("no AVX512_BF16: the bf16 reference kernel stands in");
    const double sigma = 0.002346;
    Generator gen(5);
    for (int64_t N : {196, 49}) {
        INFO("N " << N);
        Tensor q = randn({8, 64, N}, gen), k = randn({8, 64, N}, gen), v = randn({8, 64, N}, gen);
        Tensor dout = randn({8, 64, N}, gen);
        Tensor pt, ptb;
        set_gemm_precision(GemmPrecision::FP32);
        const Tensor out = attention_forward(q, k, v, &pt);
        const AttentionGrads g = attention_backward(dout, q, k, v, pt);
        set_gemm_precision(GemmPrecision::BF16);
        const Tensor outb = attention_forward(q, k, v, &ptb);
        const AttentionGrads gb = attention_backward(dout, q, k, v, ptb);
        set_gemm_precision(GemmPrecision::FP32);
        for (auto [name, want, got, predicted] :
             {std::tuple{"out", &out, &outb, std::sqrt(2.0) * sigma}, std::tuple{"dv", &g.dv, &gb.dv, std::sqrt(2.0) * sigma},
              std::tuple{"dq", &g.dq, &gb.dq, std::sqrt(3.0) * sigma}, std::tuple{"dk", &g.dk, &gb.dk, std::sqrt(3.0) * sigma}}) {
            const double ratio = relative_rms_error(*want, *got);
            INFO(name << ": RMS error / RMS = " << ratio << ", predicted " << predicted);
            CHECK(ratio >= 0.8 * predicted);  // bf16 really ran
            CHECK(ratio <= 1.25 * predicted);
        }
    }
}
