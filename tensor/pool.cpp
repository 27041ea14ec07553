// pool.cpp: size-class free lists (see pool.h).
#include "tensor/pool.h"

#include <atomic>
#include <new>

namespace ddpm {

namespace {

#if defined(__SANITIZE_ADDRESS__)
constexpr bool kPoolOn = false;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr bool kPoolOn = false;
#else
constexpr bool kPoolOn = true;
#endif
#else
constexpr bool kPoolOn = true;
#endif

constexpr int kClasses = 7;  // 16 << k bytes, k < kClasses: up to 1024
constexpr size_t kMaxBlock = size_t{16} << (kClasses - 1);

std::atomic<int64_t> g_system{0};

// A free block holds the pointer to the next one. The lists are shared by all
// threads (a block made on one thread is often freed on another, which would
// drain per-thread lists) and each is guarded by a spin lock: the critical
// section is two pointer moves, and nearly every call comes from the main thread.
struct FreeBlock {
    FreeBlock* next;
};
struct FreeList {
    std::atomic_flag busy = ATOMIC_FLAG_INIT;
    FreeBlock* head = nullptr;
    void lock() {
        while (busy.test_and_set(std::memory_order_acquire)) {
        }
    }
    void unlock() { busy.clear(std::memory_order_release); }
};
FreeList g_free[kClasses];

// The class whose blocks (16 << k bytes) hold `bytes`.
inline int size_class(size_t bytes) {
    int k = 0;
    while ((size_t{16} << k) < bytes) ++k;
    return k;
}

}  // namespace

// guide.md §2: a freed block of the right class if there is one, else a new one.
void* pool_allocate(size_t bytes) {
    if (!kPoolOn || bytes > kMaxBlock) {
        g_system.fetch_add(1, std::memory_order_relaxed);
        return ::operator new(bytes);
    }
    const int k = size_class(bytes);
    FreeList& list = g_free[k];
    list.lock();
    FreeBlock* b = list.head;
    if (b) list.head = b->next;
    list.unlock();
    if (b) return b;
    g_system.fetch_add(1, std::memory_order_relaxed);
    return ::operator new(size_t{16} << k);
}

void pool_deallocate(void* p, size_t bytes) {
    if (!p) return;
    if (!kPoolOn || bytes > kMaxBlock) {
        ::operator delete(p);
        return;
    }
    FreeList& list = g_free[size_class(bytes)];
    FreeBlock* b = static_cast<FreeBlock*>(p);
    list.lock();
    b->next = list.head;
    list.head = b;
    list.unlock();
}

int64_t pool_system_allocations() { return g_system.load(std::memory_order_relaxed); }

}  // namespace ddpm
