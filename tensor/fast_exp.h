// fast_exp.h: exp(x) for float in plain arithmetic, so loops that call it vectorise.
//
// std::exp on float is a library call the compiler cannot vectorise (without
// -ffast-math, which would also break NaN detection). This is the Cephes expf
// scheme: x = n ln2 + r with |r| <= ln2/2 (ln2 split in two for exactness), a
// degree-6 polynomial for e^r, and 2^n put straight into the exponent bits.
// Relative error below 1e-7 (about 1 ulp) on [-87, 88]; NaN stays NaN, +inf
// gives inf, and arguments below -87.3 give e^-87.3 (1.2e-38) instead of 0.
// Loops calling it vectorise when compiled with -fno-trapping-math (set in CMake).
#pragma once

#include <cstdint>
#include <bit>

namespace ddpm {

inline float exp_fast(float x) {
    const float c = x < -87.3f ? -87.3f : (x > 88.7f ? 88.7f : x);
    // n = round(c / ln2); the +128 keeps the truncating conversion on positive values.
    const float n = static_cast<float>(static_cast<int32_t>(c * 1.44269504088896341f + 128.5f) - 128);
    const float r = (c - n * 0.693359375f) - n * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    const float y = p * r * r + r + 1.0f;
    const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
    const float scale = std::bit_cast<float>(bits);
    const float out = y * scale;
    return x != x ? x : out;
}

// The exp used by element-wise kernels: fast for float, the library's for double
// (the float64 path serves gradient checks, where accuracy matters more than speed).
inline float exp_kernel(float x) { return exp_fast(x); }
inline double exp_kernel(double x);

}  // namespace ddpm

#include <cmath>
inline double ddpm::exp_kernel(double x) { return std::exp(x); }
