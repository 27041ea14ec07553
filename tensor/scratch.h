// scratch.h: per-thread work buffers that are reused across calls.
#pragma once

#include <atomic>
#include <cstddef>
#include <vector>

namespace ddpm {

// A buffer of at least n elements owned by the calling thread, grown when needed
// and kept for the next call, so a warm training step allocates nothing.
// Each use passes its own Tag type: two buffers alive at once never alias.
// Every thread's buffer grows to the largest size any thread has asked for
// under that Tag, not only its own: work handed out dynamically (parallel.h)
// may give a thread a larger piece in a later step than in the first one, and
// must not make it allocate then.
template <class T, class Tag> T* thread_scratch(size_t n) {
    static std::atomic<size_t> largest{0};
    size_t seen = largest.load(std::memory_order_relaxed);
    while (n > seen && !largest.compare_exchange_weak(seen, n, std::memory_order_relaxed)) {
    }
    const size_t want = n > seen ? n : seen;
    thread_local std::vector<T> buf;
    if (buf.size() < want) buf.resize(want);
    return buf.data();
}

}  // namespace ddpm
