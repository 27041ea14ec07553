// scratch.cpp: the registry behind scratch.h's grow_thread_scratch().
#include "tensor/scratch.h"

#include <mutex>

namespace ddpm {

namespace {
constexpr int kMaxKinds = 256;  // buffer kinds (T, Tag) in the whole program: a few dozen
std::atomic<detail::ScratchGrow> g_kinds[kMaxKinds];
std::atomic<int> g_count{0};
std::mutex g_register;
thread_local unsigned t_generation_seen = 0;
}  // namespace

std::atomic<unsigned> detail::scratch_generation{0};

void detail::register_scratch(ScratchGrow grow) {
    std::lock_guard<std::mutex> lock(g_register);
    const int n = g_count.load(std::memory_order_relaxed);
    if (n == kMaxKinds) return;  // never reached; the kind then only misses the early growth
    g_kinds[n].store(grow, std::memory_order_relaxed);
    g_count.store(n + 1, std::memory_order_release);
}

void grow_thread_scratch() {
    const unsigned generation = detail::scratch_generation.load(std::memory_order_acquire);
    if (generation == t_generation_seen) return;
    t_generation_seen = generation;
    const int n = g_count.load(std::memory_order_acquire);
    for (int i = 0; i < n; ++i) g_kinds[i].load(std::memory_order_relaxed)();
}

}  // namespace ddpm
