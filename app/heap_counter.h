// heap_counter.h: how many times the process has called operator new.
//
// The `ddpm` executable links heap_counter.cpp, which replaces the global
// operator new with one that counts; `ddpm bench` reports the calls per training
// step (tensor buffers come from the caching allocator and are counted apart).
// Elsewhere (tests, library users) nothing is replaced and the count stays 0.
#pragma once

#include <cstdint>

namespace ddpm {

int64_t heap_allocations();          // operator new calls so far (0 when not linked in)
int64_t heap_allocations_counted();  // defined weakly in heap_stats.cpp, strongly in heap_counter.cpp

}  // namespace ddpm
