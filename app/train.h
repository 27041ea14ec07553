// train.h: `ddpm train`, the DDPM training loop with its run folder.
#pragma once

#include <string>

#include "app/distributed.h"
#include "app/run.h"
#include "diffusion/timestep_sampler.h"
#include "diffusion/training_losses.h"
#include "nn/ema.h"
#include "nn/optim.h"

namespace ddpm {

struct TrainOptions {
    std::string config = "small";          // tiny | small | cifar10 | FILE.json
    std::string data = "fashion-mnist";    // see data.h
    std::string out;                       // run folder; default runs/<config>-<time>
    std::string resume;                    // a run folder to continue
    int64_t steps = 0;                     // stop after this many steps (0: no limit)
    double minutes = 0;                    // stop after this much training time (0: no limit)
    int64_t batch = 64;
    double lr = 2e-4;
    int64_t warmup = 5000;
    double ema = 0.9999;
    double grad_clip = 1.0;
    DiffusionSettings diffusion;
    std::string timestep_sampler = "uniform";  // uniform | importance
    bool flip = false;
    uint64_t seed = 0;
    int threads = 0;
    int64_t sample_every = 1000, ckpt_every = 1000, log_every = 50, keep_checkpoints = 3;
    int64_t sample_num = 36, sample_steps = 100;  // grids while training and at the end
    int64_t final_samples = 64;                   // the grid at the end of the run (0: none)
    std::string sample_sampler = "ddpm";          // ddpm (ancestral, respaced) | ddim (eta 0)
    bool skip_nonfinite = false;  // skip a step with a non-finite loss or gradient instead of stopping
    std::string command_line;

    nlohmann::json to_json() const;
    static TrainOptions from_json(const nlohmann::json& j);
};

// One optimisation step (on this rank's slice x0 of the global batch when `dist` has
// several ranks, the gradients then averaged over the ranks): t and eps drawn from `gen`, the loss (L_simple or
// L_hybrid, weighted for the timestep sampler), backward, a check that the loss and
// every gradient are finite, clipping, Adam and EMA. On a non-finite value nothing
// is updated and `nonfinite` names the loss or the first parameter that went bad.
struct StepResult {
    double loss = 0, grad_norm = 0;
    Tensor t, per_image_loss;
    std::string nonfinite;
};
StepResult train_step(UNet& model, const GaussianDiffusion& diffusion, TimestepSampler& sampler, LossType loss_type,
                      Adam& adam, EMA* ema, const Tensor& x0, Generator& gen, double lr, double grad_clip,
                      Distributed* dist = nullptr);

// Returns the process exit code: 0 done, 130/143 stopped by SIGINT/SIGTERM after
// checkpointing, 1 on a non-finite loss (the last good checkpoint kept).
int run_train(TrainOptions opt);

}  // namespace ddpm
