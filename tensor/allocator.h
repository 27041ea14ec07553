// allocator.h: where tensor memory comes from.
//
// A training step allocates the same buffers, of the same sizes, every time.
// Freed buffers are therefore kept in a cache keyed by their (64-byte rounded)
// size and handed out again, so after the first step a step asks the system
// for no new memory (and takes no page faults). The cache is bounded; past the
// bound, freed buffers go back to the system.
#pragma once

#include <cstddef>
#include <cstdint>

namespace ddpm {

void* storage_alloc(size_t bytes);
void storage_free(void* p, size_t bytes);

struct AllocatorStats {
    int64_t system_allocations = 0;  // buffers obtained from the system (cache misses)
    int64_t reuses = 0;              // buffers served from the cache
    int64_t live_bytes = 0, peak_live_bytes = 0, cached_bytes = 0;
};
AllocatorStats allocator_stats();
void release_cached_memory();  // returns every cached buffer to the system

}  // namespace ddpm
