// random.cpp: Philox-4x32-10 and the fills built on it.
#include "tensor/random.h"

#include <cmath>

#include "tensor/parallel.h"

namespace ddpm {

namespace {
constexpr uint32_t kMul0 = 0xD2511F53u, kMul1 = 0xCD9E8D57u;  // round multipliers
constexpr uint32_t kWeyl0 = 0x9E3779B9u, kWeyl1 = 0xBB67AE85u;  // key schedule increments

inline void mulhilo(uint32_t a, uint32_t b, uint32_t& hi, uint32_t& lo) {
    uint64_t p = static_cast<uint64_t>(a) * b;
    hi = static_cast<uint32_t>(p >> 32);
    lo = static_cast<uint32_t>(p);
}
}  // namespace

std::array<uint32_t, 4> philox4x32(std::array<uint32_t, 4> c, std::array<uint32_t, 2> k) {
    for (int round = 0; round < 10; ++round) {
        uint32_t hi0, lo0, hi1, lo1;
        mulhilo(kMul0, c[0], hi0, lo0);
        mulhilo(kMul1, c[2], hi1, lo1);
        c = {hi1 ^ c[1] ^ k[0], lo1, hi0 ^ c[3] ^ k[1], lo0};
        k[0] += kWeyl0;
        k[1] += kWeyl1;
    }
    return c;
}

std::array<uint32_t, 4> Generator::block(uint64_t counter) const {
    return philox4x32({static_cast<uint32_t>(counter), static_cast<uint32_t>(counter >> 32), 0u, 0u},
                      {static_cast<uint32_t>(seed_), static_cast<uint32_t>(seed_ >> 32)});
}

// Element i of the tensor takes number i % 4 of block base + i / 4.
template <class F> static void fill_blocks(Tensor& t, Generator& gen, F&& from_block) {
    const int64_t n = t.numel();
    const int64_t blocks = (n + 3) / 4;
    const uint64_t base = gen.reserve(static_cast<uint64_t>(blocks));
    dispatch(t.dtype(), [&](auto tag) {
        using T = decltype(tag);
        T* p = t.data<T>();
        parallel_for(blocks, 4096, [&](int64_t b) {
            double v[4];
            from_block(gen.block(base + static_cast<uint64_t>(b)), v);
            for (int64_t j = 0; j < 4 && 4 * b + j < n; ++j) p[4 * b + j] = static_cast<T>(v[j]);
        });
    });
}

void fill_uniform(Tensor& t, Generator& gen, double low, double high) {
    fill_blocks(t, gen, [&](const std::array<uint32_t, 4>& r, double* v) {
        for (int j = 0; j < 4; ++j) v[j] = low + (high - low) * uint_to_open01(r[j]);
    });
}

// Box-Muller: two uniforms give two independent standard normals.
void fill_normal(Tensor& t, Generator& gen, double mean, double std) {
    fill_blocks(t, gen, [&](const std::array<uint32_t, 4>& r, double* v) {
        for (int j = 0; j < 4; j += 2) {
            double radius = std::sqrt(-2.0 * std::log(uint_to_open01(r[j])));
            double angle = 2.0 * M_PI * uint_to_open01(r[j + 1]);
            v[j] = mean + std * radius * std::cos(angle);
            v[j + 1] = mean + std * radius * std::sin(angle);
        }
    });
}

Tensor rand(const Shape& shape, Generator& gen, DType dtype) {
    Tensor t(shape, dtype);
    fill_uniform(t, gen);
    return t;
}

Tensor randn(const Shape& shape, Generator& gen, DType dtype) {
    Tensor t(shape, dtype);
    fill_normal(t, gen);
    return t;
}

Tensor randint(int64_t n, const Shape& shape, Generator& gen, DType dtype) {
    check(n > 0, "randint", "n must be positive");
    Tensor t(shape, dtype);
    fill_blocks(t, gen, [&](const std::array<uint32_t, 4>& r, double* v) {
        // Multiply-shift maps a 32-bit draw onto [0, n) with bias below n / 2^32.
        for (int j = 0; j < 4; ++j)
            v[j] = static_cast<double>((static_cast<uint64_t>(r[j]) * static_cast<uint64_t>(n)) >> 32);
    });
    return t;
}

}  // namespace ddpm
