// pool.h: a cache of small memory blocks.
//
// Every op makes a few small objects: the shapes of its tensors, their storage
// records, a graph node, the node's list of inputs and its backward closure.
// A training step makes the same ones every time, so freed blocks are kept on
// free lists by size class (16, 32, ..., 1024 bytes) and handed out
// again: once a step has run, the next asks the system heap for nothing (the
// tensor buffers themselves have their own cache, allocator.h). Blocks larger
// than 1024 bytes go straight to operator new; blocks are aligned as operator
// new aligns (16 bytes), and over-aligned types are refused at compile time.
// Cached blocks are never handed back to the system: the cache is as large as
// the most small objects ever alive at once.
//
// Under AddressSanitizer the cache is off, so that every block is still checked.
#pragma once

#include <cstddef>
#include <cstdint>

namespace ddpm {

void* pool_allocate(size_t bytes);
void pool_deallocate(void* p, size_t bytes);

// Blocks taken from the system heap (cache misses), by this process, all threads.
int64_t pool_system_allocations();

// A standard allocator over the pool, for containers and std::allocate_shared.
template <class T> struct PoolAllocator {
    using value_type = T;
    PoolAllocator() noexcept = default;
    template <class U> PoolAllocator(const PoolAllocator<U>&) noexcept {}
    T* allocate(size_t n) {
        static_assert(alignof(T) <= alignof(std::max_align_t), "the pool's blocks are aligned for max_align_t only");
        return static_cast<T*>(pool_allocate(n * sizeof(T)));
    }
    void deallocate(T* p, size_t n) noexcept { pool_deallocate(p, n * sizeof(T)); }
    template <class U> bool operator==(const PoolAllocator<U>&) const noexcept { return true; }
    template <class U> bool operator!=(const PoolAllocator<U>&) const noexcept { return false; }
};

}  // namespace ddpm
