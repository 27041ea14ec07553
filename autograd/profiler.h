// profiler.h: wall time per op, forward and backward, when switched on.
//
// Every op in ops_*.cpp opens an OpTimer for its forward; backward() opens one
// around each node's gradient rule. Off by default: then an OpTimer is a
// single branch.
#pragma once

#include <chrono>
#include <map>
#include <string>

namespace ddpm {

struct OpStats {
    double forward_s = 0, backward_s = 0;
    int64_t forward_calls = 0, backward_calls = 0;
};

namespace profiler {
void enable(bool on);
bool enabled();
void reset();
std::map<std::string, OpStats> snapshot();
void add(const std::string& op, bool backward, double seconds);
}  // namespace profiler

class OpTimer {
public:
    explicit OpTimer(const char* op, bool backward = false)
        : op_(profiler::enabled() ? op : nullptr), backward_(backward) {
        if (op_) start_ = std::chrono::steady_clock::now();
    }
    ~OpTimer() {
        if (op_)
            profiler::add(op_, backward_,
                          std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count());
    }
    OpTimer(const OpTimer&) = delete;
    OpTimer& operator=(const OpTimer&) = delete;

private:
    const char* op_;
    bool backward_;
    std::chrono::steady_clock::time_point start_;
};

}  // namespace ddpm
