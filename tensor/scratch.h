// scratch.h: per-thread work buffers that are reused across calls.
#pragma once

#include <cstddef>
#include <vector>

namespace ddpm {

// A buffer of at least n elements owned by the calling thread, grown when needed
// and kept for the next call, so a warm training step allocates nothing.
// Each use passes its own Tag type: two buffers alive at once never alias.
template <class T, class Tag> T* thread_scratch(size_t n) {
    thread_local std::vector<T> buf;
    if (buf.size() < n) buf.resize(n);
    return buf.data();
}

}  // namespace ddpm
