// parallel.h: the one place where loops are split across OpenMP threads.
//
// Work is only split when it is large enough that the fork/join (a few
// microseconds) costs less than it saves: `grain` is the smallest number of
// iterations worth giving a second thread.
//
// The split is dynamic: the work is cut into several pieces per thread, handed
// out as threads come free. On a quiet machine that costs one atomic add per
// piece; on a shared one, where another program takes part of a core, the
// thread that has its core to itself takes more pieces instead of waiting at
// the end of the loop for the one that does not (bench/cpu_sharing.sh).
// Every piece computes exactly what it would on any thread, so results do not
// depend on the split.
#pragma once

#include <omp.h>

#include <algorithm>
#include <cstdint>

namespace ddpm {

// Element-wise work: ~32k simple flops per thread before splitting pays.
constexpr int64_t kGrainElementwise = 32768;
// Pieces per thread of a dynamically split loop.
constexpr int64_t kPiecesPerThread = 4;

// Runs f(i) for i in [0, n), in parallel when n >= grain.
template <class F> inline void parallel_for(int64_t n, int64_t grain, F&& f) {
    const int64_t nt = omp_get_max_threads();
    if (n >= std::max<int64_t>(grain, 2) && nt > 1 && !omp_in_parallel()) {
        const int64_t piece = std::max<int64_t>(1, n / (kPiecesPerThread * nt));
#pragma omp parallel for schedule(dynamic, piece)
        for (int64_t i = 0; i < n; ++i) f(i);
    } else {
        for (int64_t i = 0; i < n; ++i) f(i);
    }
}

// Runs f(begin, end) on contiguous pieces of [0, n), none shorter than grain
// (when n >= grain), up to kPiecesPerThread per thread. Use it where the body
// has a fast inner loop the compiler should vectorise.
template <class F> inline void parallel_range(int64_t n, int64_t grain, F&& f) {
    const int64_t nt = omp_get_max_threads();
    if (n >= std::max<int64_t>(grain, 2) && nt > 1 && !omp_in_parallel()) {
        const int64_t pieces = std::clamp<int64_t>(n / std::max<int64_t>(grain, 1), 1, kPiecesPerThread * nt);
#pragma omp parallel for schedule(dynamic, 1) num_threads(static_cast<int>(std::min(nt, pieces)))
        for (int64_t p = 0; p < pieces; ++p) {
            const int64_t begin = n * p / pieces, end = n * (p + 1) / pieces;
            if (begin < end) f(begin, end);
        }
    } else if (n > 0) {
        f(int64_t{0}, n);
    }
}

}  // namespace ddpm
