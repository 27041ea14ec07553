// gemm_kernels: every family this CPU can run against the reference loop, over
// sizes that leave ragged edges in every direction.
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "helpers.h"
#include "tensor/gemm_kernels.h"
#include "tensor/random.h"

using namespace ddpm;

namespace {

// The bound on a float dot product of length K, summed in any order with FMA:
// |error| <= K u sum_k |a_k b_k| (u = 2^-24), Higham's gamma_K to first order;
// the reference is summed in double, so its own error is negligible.
double dot_bound(int64_t K, double abs_sum) { return (K + 2) * std::ldexp(1.0, -24) * abs_sum + 1e-30; }

struct Sizes { int64_t M, N, K; };

float as_is(float x) { return x; }

// kernel against `reference` (sgemm_reference, or sgemm_bf16_reference with
// round = bf16_round: then both see the same rounded operands and differ only
// by the fp32 sums, so the same bound applies to sum |round(a) round(b)|).
void check_family(const SgemmKernel& kernel, Sizes s, bool accumulate, bool trans_a, Generator& gen,
                  SgemmFn reference = sgemm_reference, float (*round)(float) = as_is) {
    INFO(kernel.name << " M " << s.M << " N " << s.N << " K " << s.K << (accumulate ? " accumulate" : "")
                     << (trans_a ? " trans_a" : ""));
    // Leading dimensions wider than the matrices, as in the Winograd buffers.
    // A is M x K, or K x M when trans_a; entry (i, k) of op(A) at A[i rs + k cs].
    const int64_t lda = (trans_a ? s.M : s.K) + 3, ldb = s.N + 5, ldc = s.N + 7;
    const int64_t rs = trans_a ? 1 : lda, cs = trans_a ? lda : 1;
    Tensor a = randn({trans_a ? s.K : s.M, lda}, gen), b = randn({s.K, ldb}, gen), c0 = randn({s.M, ldc}, gen);
    Tensor got = c0.clone(), want = c0.clone();
    const float *pa = a.data<float>(), *pb = b.data<float>();
    kernel.fn(s.M, s.N, s.K, pa, lda, pb, ldb, got.data<float>(), ldc, accumulate, trans_a);
    reference(s.M, s.N, s.K, pa, lda, pb, ldb, want.data<float>(), ldc, accumulate, trans_a);
    int bad = 0;
    for (int64_t i = 0; i < s.M; ++i)
        for (int64_t j = 0; j < ldc; ++j) {
            const float g = got.data<float>()[i * ldc + j], w = want.data<float>()[i * ldc + j];
            if (j >= s.N) {  // past the N columns: untouched
                bad += g != c0.data<float>()[i * ldc + j];
                continue;
            }
            double abs_sum = accumulate ? std::fabs(c0.data<float>()[i * ldc + j]) : 0.0;
            for (int64_t k = 0; k < s.K; ++k) abs_sum += std::fabs(double(round(pa[i * rs + k * cs])) * round(pb[k * ldb + j]));
            bad += std::fabs(double(g) - w) > dot_bound(s.K, abs_sum);
        }
    CHECK(bad == 0);
}

// Single rows and columns, every remainder of the 6-row tile and of the 8- and
// 16-lane vectors, panels past 64 columns, K = 1, odd K (bf16 pairs k) and long K.
const Sizes kSizes[] = {{1, 1, 1},    {1, 17, 3},   {7, 1, 5},    {5, 13, 1},    {6, 16, 32},  {13, 31, 9},
                        {12, 64, 64}, {15, 24, 10}, {19, 65, 17}, {32, 80, 32}, {37, 100, 71}, {64, 33, 256}};

}  // namespace

TEST_CASE("every GEMM kernel family matches the reference loop on ragged sizes, A plain or transposed") {
    const std::vector<SgemmKernel> kernels = available_sgemm_kernels();
    REQUIRE(kernels.front().name == "reference");
    MESSAGE("GEMM kernel families on this CPU: " << kernels.size() << ", in use: " << sgemm_kernel().name);
    Generator gen(3);
    for (const SgemmKernel& kernel : kernels)
        for (Sizes s : kSizes)
            for (bool accumulate : {false, true})
                for (bool trans_a : {false, true}) check_family(kernel, s, accumulate, trans_a, gen);
}

TEST_CASE("an empty inner dimension gives zeros, or leaves C as it was when accumulating") {
    for (const SgemmKernel& kernel : available_sgemm_kernels()) {
        INFO(kernel.name);
        float c[6] = {1, 2, 3, 4, 5, 6};
        kernel.fn(2, 3, 0, nullptr, 1, nullptr, 3, c, 3, true, false);
        CHECK(c[5] == 6.0f);
        kernel.fn(2, 3, 0, nullptr, 1, nullptr, 3, c, 3, false, false);
        for (float v : c) CHECK(v == 0.0f);
    }
}

TEST_CASE("every bfloat16 GEMM family matches the reference on the same rounded operands") {
    const std::vector<SgemmKernel> kernels = available_bf16_kernels();
    REQUIRE(kernels.front().name == "reference");
    MESSAGE("bf16 GEMM families on this CPU: " << kernels.size() << ", AVX512_BF16: " << cpu_has_avx512_bf16());
    Generator gen(5);
    for (const SgemmKernel& kernel : kernels)
        for (Sizes s : kSizes)
            for (bool accumulate : {false, true})
                for (bool trans_a : {false, true})
                    check_family(kernel, s, accumulate, trans_a, gen, sgemm_bf16_reference, bf16_round);
}

namespace {
// The packed entry points of each bf16 family, as an SgemmFn: both operands packed to
// pairs (B's rows 5 pairs longer than its columns: the row length is its own), then the product.
template <void (*PackA)(int64_t, int64_t, const float*, int64_t, bool, uint32_t*),
          void (*PackB)(int64_t, int64_t, const float*, int64_t, uint32_t*, int64_t),
          void (*Product)(int64_t, int64_t, int64_t, const uint32_t*, const uint32_t*, int64_t, float*, int64_t, bool)>
void pack_then_multiply(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B, int64_t ldb,
                        float* C, int64_t ldc, bool accumulate, bool trans_a) {
    const int64_t ldp = (N + 15) / 16 * 16 + 5;
    std::vector<uint32_t> Ap(static_cast<size_t>(M * bf16_pairs(K)) + 1);
    std::vector<uint32_t> Bp(static_cast<size_t>(bf16_pairs(K) * ldp) + 16, 0xFFFFFFFFu);  // NaN pairs where unwritten
    PackA(M, K, A, lda, trans_a, Ap.data());
    PackB(K, N, B, ldb, Bp.data(), ldp);
    Product(M, N, K, Ap.data(), Bp.data(), ldp, C, ldc, accumulate);
}
}  // namespace

TEST_CASE("both operands packed to bfloat16 pairs: the same products, and the same bits as the unpacked entry") {
    std::vector<SgemmKernel> packed = {
        {"reference",
         pack_then_multiply<pack_bf16_a_reference, pack_bf16_b_reference, sgemm_bf16_pairs_reference>}};
    if (cpu_has_avx512_bf16())
        packed.push_back(
            {"avx512_bf16", pack_then_multiply<pack_bf16_a_avx512, pack_bf16_b_avx512, sgemm_bf16_pairs_avx512>});
    const std::vector<SgemmKernel> unpacked = available_bf16_kernels();
    REQUIRE(packed.size() == unpacked.size());
    Generator gen(7);
    for (size_t f = 0; f < packed.size(); ++f)
        for (Sizes s : kSizes)
            for (bool trans_a : {false, true}) {
                check_family(packed[f], s, true, trans_a, gen, sgemm_bf16_reference, bf16_round);
                INFO(packed[f].name << " M " << s.M << " N " << s.N << " K " << s.K << (trans_a ? " trans_a" : ""));
                const int64_t lda = trans_a ? s.M : s.K;
                Tensor a = randn({trans_a ? s.K : s.M, lda}, gen), b = randn({s.K, s.N}, gen);
                Tensor c1 = Tensor::zeros({s.M, s.N}), c2 = Tensor::zeros({s.M, s.N});
                packed[f].fn(s.M, s.N, s.K, a.data<float>(), lda, b.data<float>(), s.N, c1.data<float>(), s.N, false,
                             trans_a);
                unpacked[f].fn(s.M, s.N, s.K, a.data<float>(), lda, b.data<float>(), s.N, c2.data<float>(), s.N,
                               false, trans_a);
                CHECK(std::memcmp(c1.data<float>(), c2.data<float>(), sizeof(float) * s.M * s.N) == 0);
            }
}

TEST_CASE("B packed to bfloat16 pairs: rows of N rounded up to 16, zero past N and past an odd K, the rest untouched") {
    std::vector<std::pair<std::string, void (*)(int64_t, int64_t, const float*, int64_t, uint32_t*, int64_t)>> packs = {
        {"reference", pack_bf16_b_reference}};
    if (cpu_has_avx512_bf16()) packs.push_back({"avx512_bf16", pack_bf16_b_avx512});
    const int64_t K = 5, N = 19, ldb = 21, ldp = 37;  // 3 pairs of rows, 32 columns written of 37
    std::vector<float> b(static_cast<size_t>(K * ldb));
    for (size_t i = 0; i < b.size(); ++i) b[i] = 1.0f + static_cast<float>(i) / 64;  // some not exact in bf16
    for (const auto& [name, pack] : packs) {
        INFO(name);
        std::vector<uint32_t> bp(static_cast<size_t>(3 * ldp), 7u);
        pack(K, N, b.data(), ldb, bp.data(), ldp);
        for (int64_t k2 = 0; k2 < 3; ++k2)
            for (int64_t j = 0; j < ldp; ++j) {
                const uint32_t lo = j < N ? bf16_bits(b[2 * k2 * ldb + j]) : 0u;
                const uint32_t hi = j < N && 2 * k2 + 1 < K ? bf16_bits(b[(2 * k2 + 1) * ldb + j]) : 0u;
                CHECK(bp[k2 * ldp + j] == (j < 32 ? lo | hi << 16 : 7u));
            }
    }
}

TEST_CASE("bf16 rounding is to nearest, ties to even, keeps NaN and infinity") {
    CHECK(bf16_round(1.0f) == 1.0f);
    CHECK(bf16_round(1.0f + std::ldexp(1.0f, -8)) == 1.0f);                                 // a tie: down to even
    CHECK(bf16_round(1.0f + 3 * std::ldexp(1.0f, -8)) == 1.0f + std::ldexp(1.0f, -6));      // a tie: up to even
    CHECK(bf16_round(1.0f + std::ldexp(1.0f, -8) + std::ldexp(1.0f, -20)) == 1.0f + std::ldexp(1.0f, -7));
    CHECK(bf16_round(-3.0f) == -3.0f);
    CHECK(std::isnan(bf16_round(std::nanf(""))));
    CHECK(std::isinf(bf16_round(INFINITY)));
    // 2^-8 relative at most: the unit roundoff the bf16 error bounds use.
    Generator gen(6);
    Tensor x = randn({1000}, gen);
    for (int64_t i = 0; i < 1000; ++i) {
        const float v = x.data<float>()[i];
        CHECK(std::fabs(bf16_round(v) - v) <= std::ldexp(std::fabs(v), -8));
    }
}

TEST_CASE("precision names: fp32 and bf16 parse, anything else is refused by name") {
    CHECK(parse_precision("fp32") == GemmPrecision::FP32);
    CHECK_THROWS_WITH_AS(parse_precision("fp16"), "--precision fp16: expected fp32 or bf16", std::invalid_argument);
    if (cpu_has_avx512_bf16())
        CHECK(parse_precision("bf16") == GemmPrecision::BF16);
    else
        CHECK_THROWS_AS(parse_precision("bf16"), std::invalid_argument);
}

TEST_CASE("sgemm with trans_b equals the product with B transposed by hand, in both precisions") {
    Generator gen(8);
    for (GemmPrecision p : {GemmPrecision::FP32, GemmPrecision::BF16}) {
        if (p == GemmPrecision::BF16 && !cpu_has_avx512_bf16()) continue;
        set_gemm_precision(p);
        for (Sizes s : kSizes) {
            INFO("M " << s.M << " N " << s.N << " K " << s.K << (p == GemmPrecision::BF16 ? " bf16" : " fp32"));
            const int64_t ldb = s.K + 3;  // B stored N x K
            Tensor a = randn({s.M, s.K}, gen), b = randn({s.N, ldb}, gen), bt = Tensor({s.K, s.N}, DType::F32);
            for (int64_t j = 0; j < s.N; ++j)
                for (int64_t k = 0; k < s.K; ++k) bt.data<float>()[k * s.N + j] = b.data<float>()[j * ldb + k];
            Tensor got = Tensor({s.M, s.N}, DType::F32), want = Tensor({s.M, s.N}, DType::F32);
            sgemm(s.M, s.N, s.K, a.data<float>(), s.K, b.data<float>(), ldb, got.data<float>(), s.N, false, false, true);
            sgemm(s.M, s.N, s.K, a.data<float>(), s.K, bt.data<float>(), s.N, want.data<float>(), s.N, false);
            CHECK(test::max_abs_diff(got, want) == 0);
        }
    }
    set_gemm_precision(GemmPrecision::FP32);
}

TEST_CASE("the AVX2 transpose equals the plain loop on ragged shapes") {
    if (!__builtin_cpu_supports("avx2")) return;
    Generator gen(9);
    for (auto [rows, cols] : {std::pair<int64_t, int64_t>{1, 1}, {8, 8}, {7, 9}, {16, 24}, {17, 33}, {64, 80}, {3, 100}}) {
        INFO(rows << " x " << cols);
        const int64_t ld = cols + 5;
        Tensor src = randn({rows, ld}, gen);
        std::vector<float> got(rows * cols, -1.0f), want(rows * cols, -2.0f);
        transpose_avx2(src.data<float>(), rows, cols, ld, got.data());
        transpose_reference(src.data<float>(), rows, cols, ld, want.data());
        CHECK(got == want);
    }
}
