// random.cpp: Philox-4x32-10 and the fills built on it.
#include "tensor/random.h"

#include <cmath>

#include "tensor/avx2.h"
#include "tensor/avx512.h"
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

#if defined(__AVX512F__) || defined(__AVX2__)
namespace {
// One register of lanes, as the rounds below need it: 16 with AVX-512, 8 with AVX2.
// mulhilo gives the hi and lo words of the products a[l] * b (32 x 32 -> 64 bits):
// the even and the odd lanes are multiplied separately (vpmuludq), then interleaved.
#if defined(__AVX512F__)
struct Reg {
    using V = __m512i;
    static constexpr int kWidth = 16, kInFlight = 4;  // registers whose rounds interleave
    static V load(const uint32_t* p) { return _mm512_load_si512(p); }
    static void store(uint32_t* p, V v) { _mm512_storeu_si512(p, v); }
    static V zero() { return _mm512_setzero_si512(); }
    static V all(uint32_t x) { return _mm512_set1_epi32(static_cast<int>(x)); }
    static V xor3(V a, V b, V c) { return _mm512_xor_si512(_mm512_xor_si512(a, b), c); }
    static void mulhilo(V a, V b, V& hi, V& lo) {
        const V even = _mm512_mul_epu32(a, b), odd = _mm512_mul_epu32(_mm512_srli_epi64(a, 32), b);
        lo = _mm512_mask_blend_epi32(0xAAAA, even, _mm512_slli_epi64(odd, 32));
        hi = _mm512_mask_blend_epi32(0xAAAA, _mm512_srli_epi64(even, 32), odd);
    }
};
#else
struct Reg {
    using V = __m256i;
    static constexpr int kWidth = 8, kInFlight = 2;  // (16 registers: four would spill)
    static V load(const uint32_t* p) { return _mm256_load_si256(reinterpret_cast<const V*>(p)); }
    static void store(uint32_t* p, V v) { _mm256_storeu_si256(reinterpret_cast<V*>(p), v); }
    static V zero() { return _mm256_setzero_si256(); }
    static V all(uint32_t x) { return _mm256_set1_epi32(static_cast<int>(x)); }
    static V xor3(V a, V b, V c) { return _mm256_xor_si256(_mm256_xor_si256(a, b), c); }
    static void mulhilo(V a, V b, V& hi, V& lo) {
        const V even = _mm256_mul_epu32(a, b), odd = _mm256_mul_epu32(_mm256_srli_epi64(a, 32), b);
        lo = _mm256_blend_epi32(even, _mm256_slli_epi64(odd, 32), 0xAA);
        hi = _mm256_blend_epi32(_mm256_srli_epi64(even, 32), odd, 0xAA);
    }
};
#endif
static_assert(kPhiloxLanes % (Reg::kWidth * Reg::kInFlight) == 0, "whole groups of registers");

// The rounds of philox4x32 for the kInFlight registers of lanes from `first` (lane l's
// counter first + l: its low and high words in c0 and c1, c2 = c3 = 0), into lanes[j][at
// + l], side by side: a round's multiplies wait on the last round's, so one register
// alone leaves the multiplier idle most of the time.
void philox_registers(uint64_t first, uint32_t key0, uint32_t key1, uint32_t (*lanes)[kPhiloxLanes], int at) {
    using V = Reg::V;
    constexpr int G = Reg::kInFlight;
    V c0[G], c1[G], c2[G], c3[G];
    for (int g = 0; g < G; ++g) {
        alignas(64) uint32_t lo[Reg::kWidth], hi[Reg::kWidth];
        for (int l = 0; l < Reg::kWidth; ++l) {
            const uint64_t ctr = first + static_cast<uint64_t>(g * Reg::kWidth + l);
            lo[l] = static_cast<uint32_t>(ctr), hi[l] = static_cast<uint32_t>(ctr >> 32);
        }
        c0[g] = Reg::load(lo), c1[g] = Reg::load(hi), c2[g] = Reg::zero(), c3[g] = Reg::zero();
    }
    const V m0 = Reg::all(kMul0), m1 = Reg::all(kMul1);
    uint32_t k0 = key0, k1 = key1;
    for (int round = 0; round < 10; ++round) {
        const V key_a = Reg::all(k0), key_b = Reg::all(k1);
        for (int g = 0; g < G; ++g) {
            V hi0, lo0, hi1, lo1;
            Reg::mulhilo(c0[g], m0, hi0, lo0);
            Reg::mulhilo(c2[g], m1, hi1, lo1);
            c0[g] = Reg::xor3(hi1, c1[g], key_a);
            c2[g] = Reg::xor3(hi0, c3[g], key_b);
            c1[g] = lo1, c3[g] = lo0;
        }
        k0 += kWeyl0, k1 += kWeyl1;
    }
    for (int g = 0; g < G; ++g) {
        const int l = at + g * Reg::kWidth;
        Reg::store(lanes[0] + l, c0[g]), Reg::store(lanes[1] + l, c1[g]);
        Reg::store(lanes[2] + l, c2[g]), Reg::store(lanes[3] + l, c3[g]);
    }
}
}  // namespace
#endif

// philox4x32 of the counters first, first+1, ..., first+kPhiloxLanes-1 (high words 0)
// at once: the same arithmetic as philox4x32, written lane by lane so that it vectorises.
void philox_lanes(uint64_t first, uint64_t seed, uint32_t (*lanes)[kPhiloxLanes]) {
    const uint32_t key0 = static_cast<uint32_t>(seed), key1 = static_cast<uint32_t>(seed >> 32);
#if defined(__AVX512F__) || defined(__AVX2__)
    for (int at = 0; at < kPhiloxLanes; at += Reg::kWidth * Reg::kInFlight)
        philox_registers(first + static_cast<uint64_t>(at), key0, key1, lanes, at);
#else
#pragma omp simd
    for (int l = 0; l < kPhiloxLanes; ++l) {
        const uint64_t ctr = first + static_cast<uint64_t>(l);
        uint32_t c0 = static_cast<uint32_t>(ctr), c1 = static_cast<uint32_t>(ctr >> 32), c2 = 0, c3 = 0;
        uint32_t k0 = key0, k1 = key1;
        for (int round = 0; round < 10; ++round) {
            const uint64_t p0 = static_cast<uint64_t>(kMul0) * c0, p1 = static_cast<uint64_t>(kMul1) * c2;
            const uint32_t n0 = static_cast<uint32_t>(p1 >> 32) ^ c1 ^ k0, n2 = static_cast<uint32_t>(p0 >> 32) ^ c3 ^ k1;
            c1 = static_cast<uint32_t>(p1), c3 = static_cast<uint32_t>(p0), c0 = n0, c2 = n2;
            k0 += kWeyl0, k1 += kWeyl1;
        }
        lanes[0][l] = c0, lanes[1][l] = c1, lanes[2][l] = c2, lanes[3][l] = c3;
    }
#endif
}

// Element i of the tensor takes number i % 4 of block base + i / 4 (Generator::block),
// the blocks drawn kLanes at a time.
template <class F> static void fill_blocks(Tensor& t, Generator& gen, F&& from_block) {
    constexpr int kLanes = kPhiloxLanes;
    const int64_t n = t.numel();
    const int64_t blocks = (n + 3) / 4;
    const uint64_t base = gen.reserve(static_cast<uint64_t>(blocks));
    const int64_t groups = (blocks + kLanes - 1) / kLanes;
    dispatch(t.dtype(), [&](auto tag) {
        using T = decltype(tag);
        T* p = t.data<T>();
        parallel_for(groups, 64, [&](int64_t grp) {
            alignas(64) uint32_t r[4][kLanes];
            philox_lanes(base + static_cast<uint64_t>(grp * kLanes), gen.seed(), r);
            for (int l = 0; l < kLanes; ++l) {
                const int64_t b = grp * kLanes + l;
                if (4 * b >= n) break;
                double v[4];
                from_block({r[0][l], r[1][l], r[2][l], r[3][l]}, v);
                for (int64_t j = 0; j < 4 && 4 * b + j < n; ++j) p[4 * b + j] = static_cast<T>(v[j]);
            }
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
    DDPM_CHECK(n > 0, "randint", "n must be positive");
    Tensor t(shape, dtype);
    fill_blocks(t, gen, [&](const std::array<uint32_t, 4>& r, double* v) {
        // Multiply-shift maps a 32-bit draw onto [0, n) with bias below n / 2^32.
        for (int j = 0; j < 4; ++j)
            v[j] = static_cast<double>((static_cast<uint64_t>(r[j]) * static_cast<uint64_t>(n)) >> 32);
    });
    return t;
}

}  // namespace ddpm
