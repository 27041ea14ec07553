// block_sum.h: sums that vectorise yet keep near double accuracy.
#pragma once

#include <algorithm>
#include <cstdint>

namespace ddpm {

// sum_{i<n} f(i) in double, with T (float or double) partial sums over blocks of 256
// that the compiler vectorises; the blocks are added in double.
template <class T, class F> double block_sum(int64_t n, F f) {
    double total = 0;
    for (int64_t b0 = 0; b0 < n; b0 += 256) {
        const int64_t b1 = std::min(n, b0 + 256);
        T s = 0;
#pragma omp simd reduction(+ : s)
        for (int64_t i = b0; i < b1; ++i) s += f(i);
        total += static_cast<double>(s);
    }
    return total;
}

}  // namespace ddpm
