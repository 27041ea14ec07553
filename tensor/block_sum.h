// block_sum.h: sums that vectorise yet keep near double accuracy.
#pragma once

#include <algorithm>
#include <cstdint>

namespace ddpm {

// sum_{i<n} f(i) in double, with T (float or double) partial sums over blocks of 256
// that the compiler vectorises; the blocks are added in double.
//
// Each block keeps kLanes independent running sums (one vector register of
// floats), so the additions do not wait on each other. (An `omp simd reduction`
// here was left scalar by GCC 12 in some callers: one dependent add per element.)
template <class T, class F> double block_sum(int64_t n, F f) {
    constexpr int kLanes = 16;
    double total = 0;
    for (int64_t b0 = 0; b0 < n; b0 += 256) {
        const int64_t b1 = std::min(n, b0 + 256);
        T lane[kLanes] = {};
        int64_t i = b0;
        for (; i + kLanes <= b1; i += kLanes)
            for (int k = 0; k < kLanes; ++k) lane[k] += f(i + k);
        T s = 0;
        for (; i < b1; ++i) s += f(i);
        for (int k = 0; k < kLanes; ++k) s += lane[k];
        total += static_cast<double>(s);
    }
    return total;
}

}  // namespace ddpm
