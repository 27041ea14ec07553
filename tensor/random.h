// random.h: a counter-based generator (Philox-4x32-10, Salmon et al., SC'11).
//
// Number i of a draw is a pure function of (seed, offset + i), so a tensor
// filled in parallel is the same whatever the number of threads, and the whole
// state of a generator is two integers that a checkpoint can store.
#pragma once

#include <array>
#include <cstdint>

#include "tensor/tensor.h"

namespace ddpm {

// One Philox-4x32 block: 10 rounds on a 128-bit counter with a 64-bit key.
std::array<uint32_t, 4> philox4x32(std::array<uint32_t, 4> counter, std::array<uint32_t, 2> key);

class Generator {
public:
    explicit Generator(uint64_t seed = 0) : seed_(seed) {}
    uint64_t seed() const { return seed_; }
    uint64_t offset() const { return offset_; }  // blocks of 4 numbers used so far
    void set_state(uint64_t seed, uint64_t offset) { seed_ = seed; offset_ = offset; }

    // Reserves `blocks` counters and returns the first; the caller draws block
    // base + j with block(base + j).
    uint64_t reserve(uint64_t blocks) { uint64_t b = offset_; offset_ += blocks; return b; }
    std::array<uint32_t, 4> block(uint64_t counter) const;

private:
    uint64_t seed_;
    uint64_t offset_ = 0;
};

// The numbers of kPhiloxLanes consecutive blocks (Generator::block), computed
// together (vectorised), number by number: lanes[j][l] is number j of block first + l.
constexpr int kPhiloxLanes = 64;
void philox_lanes(uint64_t first, uint64_t seed, uint32_t (*lanes)[kPhiloxLanes]);

// A 32-bit integer to a uniform in (0, 1): never 0, so log() is safe.
inline double uint_to_open01(uint32_t x) { return (static_cast<double>(x) + 0.5) * (1.0 / 4294967296.0); }

void fill_uniform(Tensor& t, Generator& gen, double low = 0.0, double high = 1.0);
void fill_normal(Tensor& t, Generator& gen, double mean = 0.0, double std = 1.0);

Tensor rand(const Shape& shape, Generator& gen, DType dtype = DType::F32);   // U(0, 1)
Tensor randn(const Shape& shape, Generator& gen, DType dtype = DType::F32);  // N(0, 1)
// Integers uniform in [0, n), as values of the tensor's dtype.
Tensor randint(int64_t n, const Shape& shape, Generator& gen, DType dtype = DType::F32);

}  // namespace ddpm
