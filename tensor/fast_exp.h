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

#include "tensor/avx512.h"

namespace ddpm {

inline float exp_fast(float x) {
    // (Written so that a NaN x clamps to -87.3: n is then an integer's worth, its
    // conversion defined; the NaN is given back at the end.)
    const float c = x > -87.3f ? (x < 88.7f ? x : 88.7f) : -87.3f;
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

#if defined(__AVX512F__)
// exp_fast of 16 floats at once, by the same steps: the same clamp (but for its top,
// below), the same n and r, the same polynomial. Where GCC's vectorised exp_fast spends compares and blends
// on the clamp and the NaN test, and converts n to an integer and back, this clamps
// with vmaxps/vminps (ordered so that a NaN passes through), rounds with
// vrndscaleps, multiplies by 2^n with vscalefps, and evaluates the polynomial in
// Estrin's form (three short chains rather than one of six dependent FMAs).
// Within 2 ulp of exp_fast (n rounds half to even here, and the polynomial's
// roundings fall differently), but for the top of the range: vscalefps overflows
// only where the result does, so from 88.38 to ln(FLT_MAX) = 88.72, where exp_fast's
// 2^128 gives inf, this gives exp's finite value; the clamp sits at 88.75 so that
// larger x and +inf still give inf. Group norm's SiLU, whose time is mostly its
// exps, runs on it (group_norm.cpp).
inline __m512 exp_fast16(__m512 x) {
    // vmaxps and vminps return their second operand when either is NaN: x here.
    const __m512 c = _mm512_min_ps(_mm512_set1_ps(88.75f), _mm512_max_ps(_mm512_set1_ps(-87.3f), x));
    const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(c, _mm512_set1_ps(1.44269504088896341f)),
                                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f),
                                      _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), c));
    // exp_fast's p, p0 + p1 r + ... + p5 r^5 (p0 = 0.5, its Horner scheme's last), as
    // p0 + p1 r + r^2 (p2 + p3 r) + r^4 (p4 + p5 r).
    const __m512 r2 = _mm512_mul_ps(r, r), r4 = _mm512_mul_ps(r2, r2);
    const __m512 p01 = _mm512_fmadd_ps(_mm512_set1_ps(1.6666665459e-1f), r, _mm512_set1_ps(5.0000001201e-1f));
    const __m512 p23 = _mm512_fmadd_ps(_mm512_set1_ps(8.3334519073e-3f), r, _mm512_set1_ps(4.1665795894e-2f));
    const __m512 p45 = _mm512_fmadd_ps(_mm512_set1_ps(1.9875691500e-4f), r, _mm512_set1_ps(1.3981999507e-3f));
    const __m512 p = _mm512_fmadd_ps(r4, p45, _mm512_fmadd_ps(r2, p23, p01));
    const __m512 y = _mm512_add_ps(_mm512_fmadd_ps(p, r2, r), _mm512_set1_ps(1.0f));  // e^r = 1 + r + p r^2
    return _mm512_scalef_ps(y, n);
}
#endif

// The exp used by element-wise kernels: fast for float, the library's for double
// (the float64 path serves gradient checks, where accuracy matters more than speed).
inline float exp_kernel(float x) { return exp_fast(x); }
inline double exp_kernel(double x);

}  // namespace ddpm

#include <cmath>
inline double ddpm::exp_kernel(double x) { return std::exp(x); }
