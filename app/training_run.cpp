// training_run.cpp
#include "app/training_run.h"

#include <fmt/format.h>
#include <unistd.h>

#include <cmath>
#include <ctime>
#include <filesystem>

#include "app/image_io.h"
#include "app/sampling.h"
#include "util/file_io.h"

namespace ddpm {

namespace fs = std::filesystem;

namespace {
// Options checked (and, for --resume, the run's own options loaded) before anything is built.
TrainOptions prepared(const TrainOptions& given) {
    TrainOptions opt = given.resume.empty() ? given : given.resumed();
    opt.validate();
    const Distributed& dist = Distributed::get();
    if (opt.batch % dist.size() != 0)
        throw std::invalid_argument(fmt::format("--batch {} does not split evenly over {} ranks", opt.batch, dist.size()));
    set_threads(opt.threads ? opt.threads : default_threads_per_rank());
    set_precision(opt.precision);
    if (opt.out.empty()) {
        char stamp[32];
        std::time_t t = std::time(nullptr);
        std::strftime(stamp, sizeof(stamp), "%Y%m%d-%H%M%S", std::localtime(&t));
        opt.out = (fs::path("runs") / fmt::format("{}-{}", fs::path(opt.config).stem().string(), stamp)).string();
    }
    return opt;
}

Dataset training_data(const TrainOptions& opt) {
    const UNetConfig cfg = UNetConfig::load(opt.config);
    return load_dataset(opt.data, Split::Train, cfg.in_channels, cfg.image_size);
}

// The config, with the data's classes when the run is class-conditional (--class-cond, or a
// config file with num_classes, which must then be the data's count).
UNetConfig model_config(const TrainOptions& opt, const Dataset& data) {
    UNetConfig cfg = UNetConfig::load(opt.config);
    if (opt.diffusion.loss == "hybrid") cfg.out_channels = 2 * cfg.in_channels;  // the mean and the variance interpolation
    if (opt.scale_shift_norm) cfg.scale_shift_norm = true;
    if (!opt.class_cond && cfg.num_classes == 0) return cfg;
    if (data.labels.empty())
        throw std::invalid_argument(fmt::format("a class-conditional model needs labels, and {} has none{}", data.description,
                                                opt.data.starts_with("images:") ? " (give each class a sub-folder: DIR/CLASS/*.png)" : ""));
    const int64_t k = int64_t(data.class_names.size());
    if (cfg.num_classes != 0 && cfg.num_classes != k)
        throw std::invalid_argument(fmt::format("config {}: num_classes = {} but {} has {} classes", opt.config, cfg.num_classes,
                                                data.description, k));
    cfg.num_classes = k;
    if (cfg.class_names.empty()) cfg.class_names = data.class_names;
    return cfg;
}
}  // namespace

TrainingRun::TrainingRun(const TrainOptions& given)
    : opt_(prepared(given)),
      dist_(Distributed::get()),
      root_(dist_.is_root()),
      // The data before the run folder, so that a bad --data writes nothing.
      data_(training_data(opt_)),
      cfg_(model_config(opt_, data_)),
      trainer_(cfg_, opt_.diffusion, TimestepSampler::parse(opt_.timestep_sampler), opt_.lr, opt_.ema, opt_.grad_clip,
               opt_.seed),
      lr_schedule_{opt_.lr, opt_.warmup, opt_.lr_schedule == "cosine" ? LrSchedule::Kind::Cosine : LrSchedule::Kind::Constant},
      tty_(::isatty(STDERR_FILENO) && root_) {
    trainer_.adam.set_beta2(opt_.adam_beta2);
    trainer_.min_snr_gamma = opt_.min_snr_gamma;
    trainer_.label_dropout = opt_.label_dropout;
    if (opt_.ema_sigma_rel > 0) trainer_.ema.set_sigma_rel(opt_.ema_sigma_rel);
    if (root_) warn_if_slow_blas();  // after the checks, so that a bad flag gets a one-line error
    if (opt_.fid_every > 0 && root_)  // before the run folder: a missing classifier writes nothing
        fid_.emplace(load_fid_net(opt_.fid_features.empty() ? default_features_path(opt_.data) : opt_.fid_features));
    if (opt_.resume.empty() && !list_checkpoints(opt_.out).empty())
        throw std::runtime_error(opt_.out + ": already holds a run; use --resume " + opt_.out + " or another --out");
    write_run_folder();
    if (!opt_.resume.empty()) restore_newest_valid();
    if (dist_.rank() > 0) {  // each rank its own dropout masks (the checkpoint holds rank 0's stream)
        Generator& g = trainer_.model.dropout_generator();
        g.set_state(g.seed() + 0x9E3779B97F4A7C15ull * static_cast<uint64_t>(dist_.rank()), g.offset());
    }
    metrics_.emplace(root_ ? (fs::path(opt_.out) / "metrics.csv").string() : "", step_);
    loader_.emplace(data_, opt_.batch, opt_.seed + 2, opt_.flip, dist_.rank(), dist_.size());
    if (root_)
        fmt::print("training '{}' ({} parameters{}) on {}, batch {}{}, run folder {}\n", cfg_.name,
                   trainer_.model.num_parameters(),
                   cfg_.num_classes > 0 ? fmt::format(", conditioned on {} classes, label dropout {}", cfg_.num_classes, opt_.label_dropout) : "",
                   data_.description, opt_.batch,
                   dist_.active() ? fmt::format(" over {} ranks of {}", dist_.size(), opt_.batch / dist_.size()) : "",
                   opt_.out);
    std::fflush(stdout);
    trainer_.model.train();
    start_ = now_s();
}

void TrainingRun::write_run_folder() {
    if (!root_) return;
    fs::create_directories(opt_.out);
    if (int removed = remove_stale_temporaries(opt_.out))
        fmt::print("removed {} temporary file(s) left by an interrupted write\n", removed);
    write_file_atomic((fs::path(opt_.out) / "train.json").string(), fields_to_json(opt_).dump(2) + "\n");
    write_file_atomic((fs::path(opt_.out) / "config.json").string(), cfg_.to_json().dump(2) + "\n");
}

// --resume: the newest checkpoint that reads and restores completely. One that does not
// (truncated by a copy, say) is left in place, named with its error, and the one before
// it is used, with a warning saying how many steps are redone; none usable is an error.
void TrainingRun::restore_newest_valid() {
    const std::vector<std::string> ckpts = list_checkpoints(opt_.out);
    std::string skipped;
    for (auto it = ckpts.rbegin(); it != ckpts.rend(); ++it) {
        try {
            restore(*it);
        } catch (const std::exception& e) {
            if (root_) fmt::print(stderr, "warning: cannot resume from {}: {}\n", *it, e.what());
            if (skipped.empty()) skipped = *it;
            continue;
        }
        if (root_ && !skipped.empty())
            fmt::print(stderr, "warning: resuming from {} instead of the newer {}: the steps after {} are trained again\n", *it,
                       skipped, step_);
        return;
    }
    throw std::runtime_error(opt_.out + ": no checkpoint there can be resumed from (each one's error is above)");
}

void TrainingRun::restore(const std::string& checkpoint) {
    TrainingState state = trainer_.state(0);
    restore_checkpoint(load_safetensors(checkpoint), state, checkpoint);
    trainer_.sampler.load_state(state.extra.at("timestep_sampler"));
    step_ = state.step;
    if (root_) fmt::print("resumed {} at step {}\n", checkpoint, step_);
}

// Also measures the share of the budget spent (for the cosine learning rate): of the
// steps, or of this invocation's minutes (the slowest rank's clock, so that all agree).
int64_t TrainingRun::should_stop(int signal) {
    progress_ = opt_.steps ? double(step_) / double(opt_.steps) : 0.0;
    if (opt_.steps && step_ >= opt_.steps) return 1;
    int64_t stop = signal ? 2 * int64_t(signal) : 0, elapsed_ms = int64_t(1000 * (now_s() - start_));
    if (dist_.active()) stop = dist_.allreduce_max(stop), elapsed_ms = dist_.allreduce_max(elapsed_ms);
    if (opt_.minutes) progress_ = std::max(progress_, double(elapsed_ms) / (opt_.minutes * 60000));
    return stop ? stop : progress_ >= 1 ? 1 : 0;
}

StepResult TrainingRun::step() {
    const double t0 = now_s();
    const Tensor labels = cfg_.num_classes > 0 ? loader_->labels(step_) : Tensor();
    StepResult r = trainer_.step(loader_->get(step_), labels, lr_schedule_.at(step_, progress_), &dist_);
    step_seconds_ += now_s() - t0;
    ++step_;
    return r;
}

bool TrainingRun::skip_nonfinite(const StepResult& r) const {
    // The same on every rank: the loss and gradients are the averaged ones.
    if (root_) fmt::print(stderr, "\nstep {}: non-finite value in {} (loss {}); ", step_ - 1, r.nonfinite, r.loss);
    if (root_) fmt::print(stderr, "{}\n", opt_.skip_nonfinite ? "skipping the step" : "stopping; the last good checkpoint is kept");
    return opt_.skip_nonfinite;
}

void TrainingRun::log(const StepResult& r) {
    const double fid = fid_ && every(opt_.fid_every) ? measure_fid() : NAN;
    const double elapsed = now_s() - start_;
    metrics_->record(step_, r, trainer_.adam.lr(), opt_.diffusion.T, elapsed, fid);
    if (!std::isnan(fid)) {
        fmt::print("{}step {}: FID (ours) of {} EMA samples {:.3f}\n", tty_ ? "\n" : "", step_, opt_.fid_num, fid);
        metrics_->write_fid_plot((fs::path(opt_.out) / "fid.png").string());
    }
    const bool log_now = every(std::max<int64_t>(1, opt_.log_every));
    if (log_now && dist_.active()) check_replicas();
    if (!root_ || !(tty_ || log_now)) return;
    metrics_->print({step_, opt_.steps, opt_.minutes, elapsed, trainer_.adam.lr(), r.grad_norm}, tty_);
    if (!log_now) return;
    metrics_->flush();
    metrics_->write_loss_plot((fs::path(opt_.out) / "loss.png").string());
}

void TrainingRun::save() {
    if (!root_) return;
    metrics_->flush();  // every row up to this checkpoint is on disk before the checkpoint is
    TrainingState state = trainer_.state(step_);
    state.extra = {{"diffusion", opt_.diffusion.to_json()}, {"timestep_sampler", trainer_.sampler.state()}, {"data", opt_.data}};
    save_checkpoint(checkpoint_path(opt_.out, step_), state);
    prune_checkpoints(opt_.out, static_cast<size_t>(std::max<int64_t>(1, opt_.keep_checkpoints)));
}

void TrainingRun::sample_grid(int64_t num) {
    if (!root_) return;
    EMA::Scope use_ema(trainer_.ema);
    trainer_.model.eval();
    Generator g(opt_.seed + 3);  // the same noise at every step, so that grids are comparable
    SamplerSpec spec;
    spec.sampler = opt_.sample_sampler, spec.steps = std::min(opt_.sample_steps, opt_.diffusion.T);
    const Tensor x = sample_images(trainer_.model, sampling_chain(trainer_.diffusion, spec), spec, num, num, g, nullptr, {},
                                   grid_labels(num));
    trainer_.model.train();
    write_png((fs::path(opt_.out) / fmt::format("samples_{:08d}.png", step_)).string(), upscale(make_square_grid(x), default_scale(cfg_.image_size)));
}

// A class-conditional model's samples: every class in turn, unguided (w = 0).
Tensor TrainingRun::grid_labels(int64_t num) const {
    return cfg_.num_classes > 0 ? cycled_labels(num, cfg_.num_classes) : Tensor();
}

double TrainingRun::measure_fid() {
    EMA::Scope use_ema(trainer_.ema);
    trainer_.model.eval();
    Generator g(opt_.seed + 4);  // the same noise each time: the curve shows the model, not the draw
    SamplerSpec spec;
    spec.sampler = "dpmpp2m", spec.steps = 20;
    const Tensor x = sample_images(trainer_.model, trainer_.diffusion, spec, opt_.fid_num, 250, g, nullptr, {},
                                   grid_labels(opt_.fid_num));
    trainer_.model.train();
    return fid_of(*fid_, x);
}

// Every rank must hold the same weights: compared by hash at each log step and at the end.
uint64_t TrainingRun::check_replicas() {
    const uint64_t h = weights_hash(trainer_.model.named_parameters());
    const int64_t h63 = static_cast<int64_t>(h >> 1);
    if (dist_.allreduce_max(h63) != -dist_.allreduce_max(-h63))
        throw std::runtime_error(fmt::format("rank {}: the weights differ between ranks after step {}", dist_.rank(), step_));
    return h;
}

int TrainingRun::finish(int exit_code) {
    if (tty_) fmt::print(stderr, "\n");
    if (dist_.active()) {
        const uint64_t h = check_replicas();
        if (root_)
            fmt::print("{} ranks: weights identical on every rank after step {} (hash {:016x}); communication {:.1f}% of "
                       "the step time ({:.2f} of {:.2f} s)\n",
                       dist_.size(), step_, h, 100.0 * dist_.comm_seconds / std::max(1e-9, step_seconds_),
                       dist_.comm_seconds, step_seconds_);
    }
    metrics_->flush();
    if (exit_code == 1) return 1;  // non-finite: keep the last good checkpoint as it is
    if (list_checkpoints(opt_.out).empty() || list_checkpoints(opt_.out).back() != checkpoint_path(opt_.out, step_)) save();
    if (root_ && !metrics_->empty()) metrics_->write_loss_plot((fs::path(opt_.out) / "loss.png").string());
    if (exit_code) {
        if (root_) fmt::print("stopped by signal {} at step {}; checkpoint {}\n", exit_code - 128, step_, checkpoint_path(opt_.out, step_));
        return exit_code;
    }
    if (opt_.final_samples > 0) sample_grid(opt_.final_samples);
    if (root_)
        fmt::print("done: {} steps in {}; checkpoint {}{}\n", step_, format_duration(now_s() - start_),
                   checkpoint_path(opt_.out, step_),
                   opt_.final_samples > 0 ? ", samples " + (fs::path(opt_.out) / fmt::format("samples_{:08d}.png", step_)).string() : "");
    return 0;
}

}  // namespace ddpm
