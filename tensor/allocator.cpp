// allocator.cpp
#include "tensor/allocator.h"

#include <cstdlib>
#include <mutex>
#include <new>
#include <unordered_map>
#include <vector>

namespace ddpm {

namespace {
constexpr size_t kMaxCached = size_t(4) << 30;  // bytes kept for reuse at most

struct Cache {
    std::mutex mu;
    std::unordered_map<size_t, std::vector<void*>> free_by_size;
    AllocatorStats stats;
};
Cache& cache() {
    static Cache* c = new Cache;  // never destroyed: tensors may outlive static destructors
    return *c;
}
size_t rounded(size_t bytes) { return bytes == 0 ? 64 : ((bytes + 63) / 64) * 64; }
}  // namespace

void* storage_alloc(size_t bytes) {
    const size_t n = rounded(bytes);
    Cache& c = cache();
    {
        std::lock_guard<std::mutex> lock(c.mu);
        c.stats.live_bytes += static_cast<int64_t>(n);
        if (c.stats.live_bytes > c.stats.peak_live_bytes) c.stats.peak_live_bytes = c.stats.live_bytes;
        auto it = c.free_by_size.find(n);
        if (it != c.free_by_size.end() && !it->second.empty()) {
            void* p = it->second.back();
            it->second.pop_back();
            c.stats.cached_bytes -= static_cast<int64_t>(n);
            ++c.stats.reuses;
            return p;
        }
        ++c.stats.system_allocations;
    }
    void* p = std::aligned_alloc(64, n);
    if (!p) {
        release_cached_memory();  // try once more with the cache emptied
        p = std::aligned_alloc(64, n);
        if (!p) throw std::bad_alloc();
    }
    return p;
}

void storage_free(void* p, size_t bytes) {
    if (!p) return;
    const size_t n = rounded(bytes);
    Cache& c = cache();
    {
        std::lock_guard<std::mutex> lock(c.mu);
        c.stats.live_bytes -= static_cast<int64_t>(n);
        if (c.stats.cached_bytes + static_cast<int64_t>(n) <= static_cast<int64_t>(kMaxCached)) {
            c.free_by_size[n].push_back(p);
            c.stats.cached_bytes += static_cast<int64_t>(n);
            return;
        }
    }
    std::free(p);
}

AllocatorStats allocator_stats() {
    Cache& c = cache();
    std::lock_guard<std::mutex> lock(c.mu);
    return c.stats;
}

void release_cached_memory() {
    Cache& c = cache();
    std::lock_guard<std::mutex> lock(c.mu);
    for (auto& [size, list] : c.free_by_size)
        for (void* p : list) std::free(p);
    c.free_by_size.clear();
    c.stats.cached_bytes = 0;
}

}  // namespace ddpm
