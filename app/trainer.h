// trainer.h: the model and everything one training step reads and updates (Algorithm 1
// of Ho et al. 2020). The run around it (data, run folder, metrics) is TrainingRun.
#pragma once

#include "app/distributed.h"
#include "app/run.h"
#include "diffusion/timestep_sampler.h"
#include "diffusion/training_losses.h"
#include "nn/ema.h"
#include "nn/optim.h"

namespace ddpm {

struct StepResult {
    double loss = 0, grad_norm = 0;
    Tensor t, per_image_loss;  // of the whole (global) batch
    std::string nonfinite;     // "" or what went non-finite: "the loss" or a parameter's name
};

class Trainer {
public:
    Trainer(const UNetConfig& cfg, const DiffusionSettings& diffusion, TimestepSampler::Kind sampler, double lr,
            double ema_decay, double grad_clip, uint64_t seed);

    // One optimisation step on x0 (this rank's slice of the global batch when `dist` has
    // several ranks; the gradients are then averaged over the ranks): t and eps drawn,
    // the loss (L_simple or L_hybrid, weighted for the timestep sampler), backward, a
    // check that the loss and every gradient are finite, clipping, Adam and EMA. On a
    // non-finite value nothing is updated and `nonfinite` says where it appeared.
    // A class-conditional model also takes the images' labels (B), each replaced by "no class"
    // with probability label_dropout (classifier-free guidance training, guide.md §16).
    StepResult step(const Tensor& x0, const Tensor& labels, double lr, Distributed* dist = nullptr);

    // What a checkpoint holds of this trainer (its `extra` is the caller's).
    TrainingState state(int64_t step);

    UNet model;
    GaussianDiffusion diffusion;
    TimestepSampler sampler;
    LossType loss_type;
    Adam adam;
    EMA ema;
    Generator gen;  // timesteps and noise
    double grad_clip;
    double min_snr_gamma = 0;  // > 0: min-SNR-gamma weighting (training_losses.h)
    double label_dropout = 0.1;  // class-conditional models: the share of labels dropped to "no class"

private:
    // The labels with each dropped to "no class" where a uniform draw from gen falls below label_dropout.
    Tensor dropped_labels(const Tensor& labels, int64_t first, int64_t global_batch);
    StepResult averaged_over_ranks(StepResult r, Distributed& dist);
};

}  // namespace ddpm
