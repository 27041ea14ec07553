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

// A chunk: 64 elements, one 64-bit keep word, 16 Philox blocks of 4 numbers (element
// k of chunk c takes number k % 4 of block 16 c + k / 4 of the draw). One philox_lanes
// call makes the blocks of kGroupChunks chunks.
constexpr int64_t kChunk = 64, kChunkBlocks = kChunk / 4, kGroupChunks = kPhiloxLanes / kChunkBlocks;

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

// spread(b) puts bit i of the 16-bit b at bit 4 i (by a table of bytes: BMI2's pdep
// does it in one instruction, but takes hundreds of cycles on AMD CPUs before Zen 3).
struct SpreadTable {
    uint32_t of_byte[256] = {};
    constexpr SpreadTable() {
        for (int b = 0; b < 256; ++b)
            for (int i = 0; i < 8; ++i)
                if (b >> i & 1) of_byte[b] |= 1u << (4 * i);
    }
};
constexpr SpreadTable kSpread{};
inline uint64_t spread(unsigned b) {
    return kSpread.of_byte[b & 0xFFu] | static_cast<uint64_t>(kSpread.of_byte[b >> 8 & 0xFFu]) << 32;
}

// The keep word of a chunk whose blocks are lanes l0 .. l0 + 15 of a philox_lanes draw:
// bit k set where number k % 4 of block l0 + k / 4 is >= threshold (k < m <= 64). A
// whole chunk compares number j of its 16 blocks at once and spreads those 16 bits
// to bits 4 l + j.
inline uint64_t keep_bits(const uint32_t (*lanes)[kPhiloxLanes], int l0, int64_t m, uint32_t threshold) {
#if defined(__AVX512F__)
    if (m == kChunk) {
        const __m512i t = _mm512_set1_epi32(static_cast<int>(threshold));
        uint64_t word = 0;
        for (int j = 0; j < 4; ++j)
            word |= spread(_mm512_cmpge_epu32_mask(_mm512_load_si512(lanes[j] + l0), t)) << j;
        return word;
    }
#elif defined(__AVX2__)
    if (m == kChunk) {
        const __m256i t = _mm256_set1_epi32(static_cast<int>(threshold));
        uint64_t word = 0;
        for (int j = 0; j < 4; ++j) {
            unsigned ge = 0;
            for (int h = 0; h < 2; ++h) {
                const __m256i v = _mm256_load_si256(reinterpret_cast<const __m256i*>(lanes[j] + l0 + 8 * h));
                const __m256i at_least = _mm256_cmpeq_epi32(_mm256_max_epu32(v, t), v);  // v >= t, unsigned
                ge |= static_cast<unsigned>(_mm256_movemask_ps(_mm256_castsi256_ps(at_least))) << (8 * h);
            }
            word |= spread(ge) << j;
        }
        return word;
    }
#endif
    uint64_t word = 0;
    for (int64_t k = 0; k < m; ++k) word |= static_cast<uint64_t>(lanes[k % 4][l0 + k / 4] >= threshold) << k;
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
    // Whole chunks' blocks are reserved, so the next draw never shares a block with this one.
    const uint64_t base = gen.reserve(static_cast<uint64_t>(chunks * kChunkBlocks)), seed = gen.seed();
    // kept <=> (x + 0.5) / 2^32 >= p <=> x >= ceil(p 2^32 - 0.5), in integers (p < 1: below 2^32).
    const uint32_t threshold = static_cast<uint32_t>(std::max(0.0, std::ceil(p * 4294967296.0 - 0.5)));
    double* words = out.keep.data<double>();
    dispatch(x.dtype(), [&](auto tag) {
        using T = decltype(tag);
        const T* px = x.data<T>();
        T* py = out.y.data<T>();
        const T scale = static_cast<T>(1.0 / (1.0 - p));
        parallel_range(chunks, kGrainElementwise / kChunk, [&](int64_t lo, int64_t hi) {
            alignas(64) uint32_t lanes[4][kPhiloxLanes];
            for (int64_t c = lo; c < hi; ++c) {
                const int64_t g = (c - lo) % kGroupChunks;  // this chunk's place in the draw
                if (g == 0) philox_lanes(base + static_cast<uint64_t>(c * kChunkBlocks), seed, lanes);
                const int64_t i0 = c * kChunk, m = std::min(kChunk, n - i0);
                const uint64_t word = keep_bits(lanes, static_cast<int>(g * kChunkBlocks), m, threshold);
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
