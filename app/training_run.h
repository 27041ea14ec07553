// training_run.h: `ddpm train` as an object. A TrainingRun owns the Trainer (model,
// diffusion, timestep sampler, Adam, EMA, random streams), the data, the run folder
// and the metrics; run_train (train.cpp) is the loop that drives it.
#pragma once

#include <memory>
#include <optional>

#include "app/data.h"
#include "app/fid.h"
#include "app/metrics.h"
#include "app/train_options.h"
#include "app/trainer.h"

namespace ddpm {

class TrainingRun {
public:
    // A new run in opt.out, or (opt.resume) the run in that folder from its last checkpoint.
    // Checks every option and loads the data before it writes anything.
    explicit TrainingRun(const TrainOptions& opt);

    // Why the loop ends: 0 go on, 1 the step or time budget is spent, 2 x SIGNAL for a
    // signal. Decided by every rank together, so that none waits in a collective for one that stopped.
    int64_t should_stop(int signal);
    StepResult step();                 // Trainer::step on the next batch, at the scheduled learning rate
    void log(const StepResult& r);     // a metrics.csv row, the progress line, loss.png every --log-every steps
    void save();                       // checkpoint_STEP.safetensors, keeping the last --keep
    void sample_grid(int64_t num);     // samples_STEP.png from the EMA weights
    double measure_fid();              // FID (ours) of --fid-num EMA samples (DPM-Solver++(2M), 20 calls)
    bool every(int64_t n) const { return n > 0 && step_ % n == 0; }
    // After the loop: 0 done, 128 + SIGNAL (after a checkpoint) or 1 for a non-finite value
    // (nothing saved, the last good checkpoint kept). Returns the exit code.
    int finish(int exit_code);
    // Prints where a non-finite value appeared; true when --skip-nonfinite says to go on.
    bool skip_nonfinite(const StepResult& r) const;

    const TrainOptions& options() const { return opt_; }

private:
    void write_run_folder();
    void restore_newest_valid();
    void restore(const std::string& checkpoint);
    uint64_t check_replicas();
    Tensor grid_labels(int64_t num) const;  // every rank holds the same weights, or an error

    TrainOptions opt_;
    Distributed& dist_;
    bool root_;  // rank 0 alone writes the run folder and prints
    Dataset data_;
    UNetConfig cfg_;  // with the data's classes for a class-conditional run
    Trainer trainer_;
    LrSchedule lr_schedule_;
    int64_t step_ = 0;
    double progress_ = 0;  // share of the step or time budget spent (should_stop)
    std::optional<Metrics> metrics_;
    std::optional<BatchLoader> loader_;
    std::optional<FidNet> fid_;  // with --fid-every
    double start_ = 0, step_seconds_ = 0;
    bool tty_;
};

}  // namespace ddpm
