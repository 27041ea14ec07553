// profiler.cpp
#include "autograd/profiler.h"

#include <atomic>
#include <mutex>

namespace ddpm::profiler {

namespace {
std::atomic<bool> g_on{false};
std::mutex g_mu;
std::map<std::string, OpStats> g_stats;
}  // namespace

void enable(bool on) { g_on = on; }
bool enabled() { return g_on.load(std::memory_order_relaxed); }
void reset() {
    std::lock_guard<std::mutex> lock(g_mu);
    g_stats.clear();
}
std::map<std::string, OpStats> snapshot() {
    std::lock_guard<std::mutex> lock(g_mu);
    return g_stats;
}
void add(const std::string& op, bool backward, double seconds) {
    std::lock_guard<std::mutex> lock(g_mu);
    OpStats& s = g_stats[op];
    if (backward) {
        s.backward_s += seconds;
        ++s.backward_calls;
    } else {
        s.forward_s += seconds;
        ++s.forward_calls;
    }
}

}  // namespace ddpm::profiler
