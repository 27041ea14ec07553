// commands.h: `ddpm sample`, `ddpm eval` and `ddpm info` (train is in train.h).
#pragma once

#include <string>

namespace ddpm {

struct SampleCommand {
    std::string checkpoint;
    std::string sampler = "ddim";  // ddpm | ddim
    int64_t steps = 0;             // 0: 50 for ddim, the full chain for ddpm
    std::string spacing = "";      // ddim: "ddim" (evenly from 0) or "trailing"
    double eta = 0.0;
    int64_t num = 64;
    uint64_t seed = 0;
    bool ema = true;
    std::string out = "samples";   // writes OUT.png and OUT.npy (and OUT_strip.png)
    bool strip = false;
    int64_t batch = 64;
    int threads = 0;
};
int run_sample(const SampleCommand& c);

struct EvalCommand {
    std::string checkpoint;
    std::string data;          // default: the data the model was trained on
    int64_t num = 64;          // test images
    int64_t timesteps = 0;     // 0: the full bound over all T; K: the unbiased K-sample estimate
    int64_t batch = 64;
    uint64_t seed = 0;
    bool ema = true;
    std::string out = "eval";  // OUT_terms.csv, OUT_terms.png
    int threads = 0;
};
int run_eval(const EvalCommand& c);

// `ddpm bench`: medians over `steps` timed steps (after warm-up) of a training
// step (forward, L_simple, backward, clip, Adam, EMA), a no-grad forward and one
// DDIM step of the batch; peak RSS; GFLOP/s; tensor buffers taken from the system per step.
struct BenchCommand {
    std::string config = "small";
    int64_t batch = 64;
    int threads = 0;
    int64_t steps = 10;
    bool profile = false;  // also print the per-op time table
};
int run_bench(const BenchCommand& c);

// A config name/file or a checkpoint: the layer table and the parameter count.
int run_info(const std::string& what);

}  // namespace ddpm
