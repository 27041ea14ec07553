// train.cpp: the training loop, and the checks and resumption of its options.
#include "app/train.h"

#include <fmt/format.h>

#include <atomic>
#include <cmath>
#include <csignal>
#include <filesystem>
#include <fstream>

#include "app/training_run.h"

namespace ddpm {

namespace {
std::atomic<int> g_signal{0};
extern "C" void on_signal(int sig) { g_signal = sig; }

// While it lives, SIGINT and SIGTERM are noted (for a checkpoint and a clean stop) instead of killing us.
struct SignalCatcher {
    SignalCatcher() : old_int(std::signal(SIGINT, on_signal)), old_term(std::signal(SIGTERM, on_signal)) { g_signal = 0; }
    ~SignalCatcher() {
        std::signal(SIGINT, old_int);
        std::signal(SIGTERM, old_term);
    }
    int caught() const { return g_signal; }
    void (*old_int)(int);
    void (*old_term)(int);
};
}  // namespace

// guide.md §9: Algorithm 1 of Ho et al. 2020, repeated until the budget is spent, with
// the run's bookkeeping around each step.
int run_train(const TrainOptions& options) {
    TrainingRun run(options);
    const TrainOptions& opt = run.options();
    SignalCatcher signals;
    for (;;) {
        const int64_t stop = run.should_stop(signals.caught());
        if (stop) return run.finish(stop == 1 ? 0 : 128 + static_cast<int>(stop / 2));
        const StepResult r = run.step();
        if (!r.nonfinite.empty()) {
            if (!run.skip_nonfinite(r)) return run.finish(1);
            continue;
        }
        run.log(r);
        if (run.every(opt.ckpt_every)) run.save();
        if (run.every(opt.sample_every)) run.sample_grid(opt.sample_num);
    }
}

void TrainOptions::validate() const {
    if (batch < 1 || batch > 65536) throw std::invalid_argument(fmt::format("--batch {} out of range", batch));
    if (!(lr > 0 && std::isfinite(lr))) throw std::invalid_argument("--lr must be positive");
    if (!(ema >= 0 && ema < 1)) throw std::invalid_argument("--ema must be in [0, 1)");
    if (sample_every < 0 || ckpt_every < 0 || warmup < 0 || steps < 0 || minutes < 0)
        throw std::invalid_argument("step counts and minutes must not be negative");
    if (lr_schedule == "cosine" && steps == 0 && minutes == 0)
        throw std::invalid_argument("--lr-schedule cosine decays over the budget: give --steps or --minutes");
}

TrainOptions TrainOptions::resumed() const {
    namespace fs = std::filesystem;
    const fs::path saved = fs::path(resume) / "train.json";
    if (!fs::exists(saved)) throw std::runtime_error(resume + ": not a run folder (no train.json)");
    TrainOptions prev;
    try {
        std::ifstream in(saved);
        fields_from_json(prev, nlohmann::json::parse(in), "train.json");
    } catch (const std::exception& e) {  // bad JSON, a missing field, a field of the wrong type
        throw std::runtime_error(fmt::format("{}: not a usable train.json: {}", saved.string(), e.what()));
    }
    if (steps) prev.steps = steps;
    if (minutes) prev.minutes = minutes;
    if (threads) prev.threads = threads;
    prev.precision = precision;  // a run-time choice: a run resumes in either precision
    prev.command_line = command_line;
    prev.out = prev.resume = resume;
    if (list_checkpoints(resume).empty()) throw std::runtime_error(resume + ": no checkpoint to resume from");
    return prev;
}

}  // namespace ddpm
