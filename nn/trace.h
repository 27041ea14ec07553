// trace.h: a per-layer record of output shapes and FLOPs, filled by layers'
// forward() while a LayerTrace is active (for `ddpm info` and the profilers).
#pragma once

#include <string>
#include <vector>

#include "tensor/tensor.h"

namespace ddpm {

struct LayerRecord {
    std::string name;   // dotted module path, e.g. "down.0.block.1.conv1"
    std::string kind;   // "conv2d", "linear", "attention", ...
    Shape out_shape;
    int64_t params = 0;
    double flops = 0;   // multiply-adds count 2
    // Convolutions only (for the benchmarks' per-layer tables): the input's shape,
    // the kernel's size, the stride and the padding.
    Shape in_shape = {};
    int64_t kernel = 0, stride = 0, pad = 0;
};

// While alive, layer forwards on this thread append to records().
class LayerTrace {
public:
    LayerTrace();
    ~LayerTrace();
    LayerTrace(const LayerTrace&) = delete;
    LayerTrace& operator=(const LayerTrace&) = delete;
    const std::vector<LayerRecord>& records() const { return records_; }
    // Appends build() to the active trace; when none is active, build is not
    // even called (so a training step makes no record and allocates nothing).
    template <class Build> static void record(Build&& build) {
        if (LayerTrace* t = active()) t->records_.push_back(build());
    }

private:
    static LayerTrace* active();  // the innermost trace alive on this thread, or null
    std::vector<LayerRecord> records_;
    LayerTrace* previous_;
};

}  // namespace ddpm
