// scratch.h: per-thread work buffers that are reused across calls.
#pragma once

#include <atomic>
#include <cstddef>
#include <new>
#include <vector>

namespace ddpm {

namespace detail {
// Storage that starts on a cache line (64 bytes). A scratch buffer shared by
// threads (a wide layer's Winograd V and M) has each thread write its own
// 64-byte stretches of a row; shifted off the cache lines by malloc's 16-byte
// alignment, every stretch shared a line with its neighbour's thread, and the
// input transform of `cifar10`'s 256 -> 256 layers took 2.4x as long on 2
// threads as on one (a Zen 5).
template <class T> struct CacheLineAllocator {
    using value_type = T;
    static constexpr std::align_val_t kAlign{64};
    CacheLineAllocator() = default;
    template <class U> CacheLineAllocator(const CacheLineAllocator<U>&) {}
    T* allocate(size_t n) { return static_cast<T*>(::operator new(n * sizeof(T), kAlign)); }
    void deallocate(T* p, size_t) { ::operator delete(p, kAlign); }
    template <class U> bool operator==(const CacheLineAllocator<U>&) const { return true; }
};

// Every buffer kind (T, Tag) in use registers, once, a function that grows the
// calling thread's buffer of that kind to the largest size asked for so far;
// `scratch_generation` counts the times some kind's largest size grew.
using ScratchGrow = void (*)();
void register_scratch(ScratchGrow grow);
extern std::atomic<unsigned> scratch_generation;

template <class T, class Tag> struct Scratch {
    static inline std::atomic<size_t> largest{0};
    static std::vector<T, CacheLineAllocator<T>>& buffer() {
        thread_local std::vector<T, CacheLineAllocator<T>> buf;
        return buf;
    }
    static void grow() {
        std::vector<T, CacheLineAllocator<T>>& buf = buffer();
        const size_t want = largest.load(std::memory_order_relaxed);
        if (buf.size() < want) buf.resize(want);
    }
};
}  // namespace detail

// A buffer of at least n elements owned by the calling thread, grown when needed
// and kept for the next call, so a warm training step allocates nothing.
// Each use passes its own Tag type: two buffers alive at once never alias.
// Every thread's buffer grows to the largest size any thread has asked for
// under that Tag, not only its own: work handed out dynamically (parallel.h)
// may give a thread a larger piece in a later step than in the first one, or a
// thread its first piece of some kind only then (next to a busy program a
// worker may sit out a whole warm-up step's loops of one kind); it must not
// allocate then. So the pool calls grow_thread_scratch() in each thread that
// joins a loop, before each piece it takes.
template <class T, class Tag> T* thread_scratch(size_t n) {
    using S = detail::Scratch<T, Tag>;
    static const bool registered = (detail::register_scratch(&S::grow), true);
    (void)registered;
    size_t seen = S::largest.load(std::memory_order_relaxed);
    while (n > seen && !S::largest.compare_exchange_weak(seen, n, std::memory_order_relaxed)) {
    }
    if (n > seen) detail::scratch_generation.fetch_add(1, std::memory_order_release);
    S::grow();
    return S::buffer().data();
}

// Grows each of the calling thread's buffers (of every kind registered) to the
// largest size any thread has asked for; cheap when nothing grew since its last call.
void grow_thread_scratch();

}  // namespace ddpm
