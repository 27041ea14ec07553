// dropout.cpp
#include "tensor/dropout.h"

#include <fmt/format.h>

#include <cmath>
#include <cstring>

#include "tensor/avx2.h"
#include "tensor/avx512.h"
#include "tensor/parallel.h"

namespace ddpm {

namespace {

constexpr int64_t kChunk = 4 * kPhiloxLanes;  // elements per Philox call, and per keep word
static_assert(kChunk == 64, "one 64-bit keep word per chunk");

// out[k] = in[k] * scale where bit k of word is set, else 0 (k < m <= 64).
template <class T> inline void masked_scale(const T* in, T* out, int64_t m, uint64_t word, T scale) {
#if defined(__AVX512F__)
    if constexpr (std::is_same_v<T, float>) {
        if (m == kChunk) {
            for (int q = 0; q < 4; ++q)
                _mm512_storeu_ps(out + 16 * q, _mm512_maskz_mul_ps(static_cast<__mmask16>(word >> (16 * q)),
                                                                  _mm512_loadu_ps(in + 16 * q), _mm512_set1_ps(scale)));
            return;
        }
    }
#elif defined(__AVX2__)
    if constexpr (std::is_same_v<T, float>) {
        if (m == kChunk) {
            for (int q = 0; q < 8; ++q) {
                const __m256 kept = _mm256_castsi256_ps(bit_mask8(static_cast<unsigned>(word >> (8 * q)) & 0xFFu));
                _mm256_storeu_ps(out + 8 * q, _mm256_and_ps(kept, _mm256_mul_ps(_mm256_loadu_ps(in + 8 * q),
                                                                                 _mm256_set1_ps(scale))));
            }
            return;
        }
    }
#endif
    for (int64_t k = 0; k < m; ++k) out[k] = (word >> k & 1u) ? in[k] * scale : T(0);
}

// Bit k set where the draw x[k] >= threshold (k < m <= 64).
inline uint64_t keep_bits(const uint32_t* x, int64_t m, uint32_t threshold) {
#if defined(__AVX512F__)
    if (m == kChunk) {
        uint64_t word = 0;
        const __m512i t = _mm512_set1_epi32(static_cast<int>(threshold));
        for (int q = 0; q < 4; ++q)
            word |= static_cast<uint64_t>(_mm512_cmpge_epu32_mask(_mm512_loadu_si512(x + 16 * q), t)) << (16 * q);
        return word;
    }
#elif defined(__AVX2__)
    if (m == kChunk) {
        uint64_t word = 0;
        const __m256i t = _mm256_set1_epi32(static_cast<int>(threshold));
        for (int q = 0; q < 8; ++q) {
            const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + 8 * q));
            const __m256i ge = _mm256_cmpeq_epi32(_mm256_max_epu32(v, t), v);  // v >= t, unsigned
            word |= static_cast<uint64_t>(static_cast<unsigned>(_mm256_movemask_ps(_mm256_castsi256_ps(ge)))) << (8 * q);
        }
        return word;
    }
#endif
    uint64_t word = 0;
    for (int64_t k = 0; k < m; ++k) word |= static_cast<uint64_t>(x[k] >= threshold) << k;
    return word;
}

uint64_t load_word(const double* slot) {
    uint64_t w;
    std::memcpy(&w, slot, sizeof w);
    return w;
}

}  // namespace

DropoutOut dropout_forward(const Tensor& x, double p, Generator& gen) {
    DDPM_CHECK(p >= 0.0 && p < 1.0, "dropout", fmt::format("p = {} is not in [0, 1)", p));
    const int64_t n = x.numel(), chunks = (n + kChunk - 1) / kChunk;
    DropoutOut out{Tensor(x.shape(), x.dtype()), Tensor({chunks}, DType::F64), p};
    // Whole lane groups are reserved, so the next draw never shares a block with this one.
    const uint64_t base = gen.reserve(static_cast<uint64_t>(chunks * kPhiloxLanes)), seed = gen.seed();
    // kept <=> (x + 0.5) / 2^32 >= p <=> x >= ceil(p 2^32 - 0.5), in integers (p < 1: below 2^32).
    const uint32_t threshold = static_cast<uint32_t>(std::max(0.0, std::ceil(p * 4294967296.0 - 0.5)));
    double* words = out.keep.data<double>();
    dispatch(x.dtype(), [&](auto tag) {
        using T = decltype(tag);
        const T* px = x.data<T>();
        T* py = out.y.data<T>();
        const T scale = static_cast<T>(1.0 / (1.0 - p));
        parallel_range(chunks, kGrainElementwise / kChunk, [&](int64_t lo, int64_t hi) {
            alignas(64) uint32_t draws[kChunk];
            for (int64_t c = lo; c < hi; ++c) {
                philox_blocks(base + static_cast<uint64_t>(c * kPhiloxLanes), seed, draws);
                const int64_t i0 = c * kChunk, m = std::min(kChunk, n - i0);
                const uint64_t word = keep_bits(draws, m, threshold);
                masked_scale(px + i0, py + i0, m, word, scale);
                std::memcpy(words + c, &word, sizeof word);
            }
        });
    });
    return out;
}

Tensor dropout_backward(const Tensor& dy, const Tensor& keep, double p) {
    const int64_t n = dy.numel(), chunks = (n + kChunk - 1) / kChunk;
    DDPM_CHECK(keep.dtype() == DType::F64 && keep.numel() == chunks, "dropout_backward",
          fmt::format("keep {} for dy {}", keep.describe(), dy.describe()));
    Tensor dx(dy.shape(), dy.dtype());
    const double* words = keep.data<double>();
    dispatch(dy.dtype(), [&](auto tag) {
        using T = decltype(tag);
        const T* pd = dy.data<T>();
        T* px = dx.data<T>();
        const T scale = static_cast<T>(1.0 / (1.0 - p));
        parallel_range(chunks, kGrainElementwise / kChunk, [&](int64_t lo, int64_t hi) {
            for (int64_t c = lo; c < hi; ++c) {
                const int64_t i0 = c * kChunk;
                masked_scale(pd + i0, px + i0, std::min(kChunk, n - i0), load_word(words + c), scale);
            }
        });
    });
    return dx;
}

}  // namespace ddpm
