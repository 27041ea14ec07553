// parallel.h: the one place where loops are split across OpenMP threads.
//
// Work is only split when it is large enough that the fork/join (a few
// microseconds) costs less than it saves: `grain` is the smallest number of
// iterations worth giving a second thread.
#pragma once

#include <omp.h>

#include <algorithm>
#include <cstdint>

namespace ddpm {

// Element-wise work: ~32k simple flops per thread before splitting pays.
constexpr int64_t kGrainElementwise = 32768;

// Runs f(i) for i in [0, n), in parallel when n >= grain.
template <class F> inline void parallel_for(int64_t n, int64_t grain, F&& f) {
    if (n >= std::max<int64_t>(grain, 2) && omp_get_max_threads() > 1 && !omp_in_parallel()) {
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < n; ++i) f(i);
    } else {
        for (int64_t i = 0; i < n; ++i) f(i);
    }
}

// Runs f(begin, end) on contiguous chunks of [0, n), one per thread, when n >= grain.
// Use it where the body has a fast inner loop the compiler should vectorise.
template <class F> inline void parallel_range(int64_t n, int64_t grain, F&& f) {
    const int nt = omp_get_max_threads();
    if (n >= std::max<int64_t>(grain, 2) && nt > 1 && !omp_in_parallel()) {
#pragma omp parallel num_threads(static_cast<int>(std::min<int64_t>(nt, n / std::max<int64_t>(grain, 1) + 1)))
        {
            const int64_t t = omp_get_thread_num(), k = omp_get_num_threads();
            const int64_t begin = n * t / k, end = n * (t + 1) / k;
            if (begin < end) f(begin, end);
        }
    } else if (n > 0) {
        f(int64_t{0}, n);
    }
}

}  // namespace ddpm
