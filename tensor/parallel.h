// parallel.h: the one place where loops are split across threads.
//
// A loop is cut into pieces. The threads of a small pool (parallel.cpp) and
// the thread that started the loop each take the next piece as they come
// free, and the loop returns when every piece is done, whoever did them.
// Work is only split when it is large enough that handing it out (waking a
// thread: microseconds) costs less than it saves: `grain` is the smallest
// number of iterations worth giving a second thread.
//
// Why not OpenMP's parallel regions: a region ends only when every thread of
// its team has reached its end. On a CPU shared with another program the
// kernel often has one of our threads off its core; then each of the
// hundreds of loops in a training step waited for that thread to be put back
// before it could end, even when the other thread had done all of its work.
// Here a thread that has not woken up when the work runs out is not waited
// for; only a piece already begun is. (bench/cpu_sharing.sh, 2 cores, a Zen 3:
// a training step next to a process that is busy half the time took 5-11% less
// than with OpenMP's regions, next to an always-busy one 2-6% less; what is
// left there is the kernel's placement of the three threads, see the README.)
//
// Each piece computes exactly what it would on any thread, so results do not
// depend on the split, nor on which thread ran which piece. The number of
// threads is OpenMP's setting (OMP_NUM_THREADS, `--threads`), read on the
// calling thread; a loop started inside a piece runs on its own thread.
// Pieces must not throw: an exception out of a piece ends the program (as out
// of an OpenMP region).
#pragma once

#include <algorithm>
#include <cstdint>

namespace ddpm {

// Element-wise work: ~32k simple flops per thread before splitting pays.
constexpr int64_t kGrainElementwise = 32768;
// Pieces per thread of a split loop: enough that a thread that has its core to
// itself takes more of them instead of waiting for one that does not.
constexpr int64_t kPiecesPerThread = 4;

// True on a thread while it runs a piece of a parallel loop.
bool in_parallel_piece();
// The threads a loop started here may use: OpenMP's setting, 1 inside a piece.
int max_threads();

namespace detail {
using PieceFn = void (*)(const void* body, int64_t piece);
void run_pieces(int64_t pieces, PieceFn fn, const void* body);
// Tests: 1 makes the pool act as if another program competed for the cores, 0 as
// if none did; -1 (the default) goes back to asking the kernel.
void set_contention_for_testing(int contended);
// Tests: whether the pool holds the cores contended now (as judged, or as set above).
bool cores_contended_for_testing();
}  // namespace detail

// Runs f(piece) for every piece in [0, pieces), in any order, on up to
// max_threads() threads; returns when all are done.
template <class F> inline void parallel_pieces(int64_t pieces, const F& f) {
    detail::run_pieces(pieces, [](const void* body, int64_t piece) { (*static_cast<const F*>(body))(piece); }, &f);
}

// Runs f(i) for i in [0, n), in parallel when n >= grain.
template <class F> inline void parallel_for(int64_t n, int64_t grain, F&& f) {
    const int64_t nt = max_threads();
    if (n >= std::max<int64_t>(grain, 2) && nt > 1) {
        const int64_t pieces = std::min(n, kPiecesPerThread * nt);
        parallel_pieces(pieces, [&](int64_t p) {
            for (int64_t i = n * p / pieces; i < n * (p + 1) / pieces; ++i) f(i);
        });
    } else {
        for (int64_t i = 0; i < n; ++i) f(i);
    }
}

// Runs f(begin, end) on contiguous pieces of [0, n), none shorter than grain
// (when n >= grain), up to kPiecesPerThread per thread. Use it where the body
// has a fast inner loop the compiler should vectorise.
template <class F> inline void parallel_range(int64_t n, int64_t grain, F&& f) {
    const int64_t nt = max_threads();
    if (n >= std::max<int64_t>(grain, 2) && nt > 1) {
        const int64_t pieces = std::clamp<int64_t>(n / std::max<int64_t>(grain, 1), 1, kPiecesPerThread * nt);
        parallel_pieces(pieces, [&](int64_t p) {
            const int64_t begin = n * p / pieces, end = n * (p + 1) / pieces;
            if (begin < end) f(begin, end);
        });
    } else if (n > 0) {
        f(int64_t{0}, n);
    }
}

}  // namespace ddpm
