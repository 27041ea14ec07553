// heap_stats.cpp: the library's side of heap_counter.h. Without heap_counter.cpp in
// the link (tests, other programs) nothing counts and this weak default says 0.
#include "app/heap_counter.h"

namespace ddpm {

__attribute__((weak)) int64_t heap_allocations_counted() { return 0; }

int64_t heap_allocations() { return heap_allocations_counted(); }

}  // namespace ddpm
