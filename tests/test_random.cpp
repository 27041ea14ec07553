// The counter-based generator: reproducible across thread counts, right moments.
#include <omp.h>

#include <cmath>

#include "helpers.h"
#include "tensor/random.h"

using namespace ddpm;

TEST_CASE("Philox-4x32-10 matches the Random123 known-answer vectors") {
    // Known-answer tests from Random123's kat_vectors (philox4x32_10).
    auto r = philox4x32({0, 0, 0, 0}, {0, 0});
    CHECK(r == std::array<uint32_t, 4>{0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u});
    r = philox4x32({0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu}, {0xffffffffu, 0xffffffffu});
    CHECK(r == std::array<uint32_t, 4>{0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu});
}

TEST_CASE("the same seed gives identical tensors with 1 and 2 threads") {
    const int saved = omp_get_max_threads();
    auto draw = [](int threads) {
        omp_set_num_threads(threads);
        Generator gen(42);
        Tensor a = randn({300001}, gen);  // large enough to be split across threads
        Tensor b = rand({7, 9}, gen, DType::F64);
        return std::make_pair(a, b);
    };
    auto [a1, b1] = draw(1);
    auto [a2, b2] = draw(2);
    omp_set_num_threads(saved);
    CHECK(std::memcmp(a1.raw_data(), a2.raw_data(), a1.nbytes()) == 0);
    CHECK(std::memcmp(b1.raw_data(), b2.raw_data(), b1.nbytes()) == 0);
    // A different seed gives different numbers; successive draws differ.
    Generator g1(1), g2(2);
    CHECK(randn({4}, g1).flat(0) != randn({4}, g2).flat(0));
    CHECK(randn({4}, g1).flat(0) != randn({4}, g1).flat(0));
}

TEST_CASE("randn and rand have the right moments within Monte-Carlo error") {
    const int64_t n = 1 << 20;
    Generator gen(7);
    Tensor z = randn({n}, gen, DType::F64);
    double s = 0, ss = 0, s4 = 0;
    for (int64_t i = 0; i < n; ++i) {
        double v = z.flat(i);
        s += v;
        ss += v * v;
        s4 += v * v * v * v;
    }
    const double mean = s / n, var = ss / n - mean * mean;
    // Standard errors: mean 1/sqrt(n); variance sqrt(2/n). Five of them.
    CHECK(std::abs(mean) < 5.0 / std::sqrt(double(n)));
    CHECK(std::abs(var - 1.0) < 5.0 * std::sqrt(2.0 / n));
    CHECK(std::abs(s4 / n - 3.0) < 5.0 * std::sqrt(96.0 / n));  // kurtosis of a normal
    Tensor u = rand({n}, gen, DType::F64);
    double us = 0, umin = 1, umax = 0;
    for (int64_t i = 0; i < n; ++i) {
        us += u.flat(i);
        umin = std::min(umin, u.flat(i));
        umax = std::max(umax, u.flat(i));
    }
    CHECK(std::abs(us / n - 0.5) < 5.0 * std::sqrt(1.0 / 12.0 / n));
    CHECK(umin > 0.0);
    CHECK(umax < 1.0);
    Tensor k = randint(10, {100000}, gen);
    std::vector<int> counts(10, 0);
    for (int64_t i = 0; i < k.numel(); ++i) counts[static_cast<size_t>(k.flat(i))]++;
    for (int c : counts) CHECK(std::abs(c - 10000) < 5 * 95);  // sd = sqrt(1e5 * 0.1 * 0.9)
}

TEST_CASE("generator state can be saved and restored") {
    Generator g(3);
    randn({10}, g);
    const uint64_t off = g.offset();
    Tensor a = randn({5}, g);
    Generator h(0);
    h.set_state(3, off);
    Tensor b = randn({5}, h);
    CHECK(std::memcmp(a.raw_data(), b.raw_data(), a.nbytes()) == 0);
}

TEST_CASE("rand takes element i from Philox block offset + i / 4: the vectorised fill equals the scalar function") {
    Generator g(0x123456789abcdefull), scalar(0x123456789abcdefull);
    g.set_state(g.seed(), 7);  // a non-zero offset, and a size that is no multiple of 4 or 16
    Tensor u = rand({1001}, g, DType::F64);
    CHECK(g.offset() == 7 + 251);
    for (int64_t i = 0; i < u.numel(); ++i) {
        const std::array<uint32_t, 4> r = philox4x32({static_cast<uint32_t>(7 + i / 4), 0u, 0u, 0u},
                                                     {static_cast<uint32_t>(scalar.seed()), static_cast<uint32_t>(scalar.seed() >> 32)});
        INFO("element " << i);
        CHECK(u.flat(i) == uint_to_open01(r[static_cast<size_t>(i % 4)]));
    }
}
