// train.cpp: one step is: batch k, t and eps drawn, L_simple (or L_hybrid),
// backward, clip, Adam, EMA. Everything random is keyed by the seed and the step,
// or checkpointed, so that a resumed run continues bit for bit.
#include "app/train.h"

#include <fmt/format.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cmath>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <numeric>

#include "app/data.h"
#include "app/image_io.h"
#include "app/plot.h"
#include "autograd/ops.h"
#include "diffusion/samplers.h"
#include "diffusion/timestep_sampler.h"
#include "diffusion/training_losses.h"
#include "nn/ema.h"
#include "nn/optim.h"
#include "nn/safetensors.h"
#include "tensor/shape_ops.h"

namespace ddpm {

namespace fs = std::filesystem;

namespace {
std::atomic<int> g_signal{0};
extern "C" void on_signal(int sig) { g_signal = sig; }

double now_s() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

std::string format_duration(double s) {
    if (!std::isfinite(s) || s < 0) return "?";
    const int64_t t = static_cast<int64_t>(s);
    return t >= 3600 ? fmt::format("{}h{:02d}m", t / 3600, (t / 60) % 60) : fmt::format("{}m{:02d}s", t / 60, t % 60);
}

// The name of the first parameter whose gradient holds a NaN or an infinity.
std::string first_nonfinite_grad(const Module::NamedParameters& params) {
    for (auto& [name, p] : params) {
        const Tensor& g = p.grad();
        if (!g.defined()) continue;
        const float* d = g.data<float>();
        for (int64_t i = 0; i < g.numel(); ++i)
            if (!std::isfinite(d[i])) return name;
    }
    return "";
}

// metrics.csv, and the (step, loss) history behind loss.png. On resume the rows
// up to the checkpoint's step are kept (later ones belong to steps being redone).
struct Metrics {
    std::ofstream csv;
    std::vector<double> steps, losses;
    // An empty path (ranks other than 0) keeps the history in memory only.
    Metrics(const std::string& path, int64_t resume_step) {
        if (path.empty()) return;
        const char* header = "step,loss,loss_q1,loss_q2,loss_q3,loss_q4,lr,grad_norm,images_per_s,wall_s\n";
        std::string kept = header;
        if (resume_step > 0 && fs::exists(path)) {
            std::ifstream in(path);
            std::string line;
            std::getline(in, line);
            while (std::getline(in, line)) {
                double st = 0, lo = 0;
                // Only whole rows up to the checkpoint: a row cut short by a crash is dropped.
                if (std::count(line.begin(), line.end(), ',') != 9 || std::sscanf(line.c_str(), "%lf,%lf", &st, &lo) != 2 ||
                    st > static_cast<double>(resume_step))
                    continue;
                steps.push_back(st);
                losses.push_back(lo);
                kept += line + "\n";
            }
        }
        write_file_atomic(path, kept);
        csv.open(path, std::ios::app);
        if (!csv) throw std::runtime_error(path + ": cannot write");
    }
};

void write_loss_plot(const std::string& path, const Metrics& m) {
    Series raw{m.steps, m.losses, 170, 190, 230, "loss"};
    Series smooth{m.steps, {}, 20, 60, 200, "moving average (100)"};
    double acc = 0;
    for (size_t i = 0; i < m.losses.size(); ++i) {
        acc += m.losses[i];
        if (i >= 100) acc -= m.losses[i - 100];
        smooth.y.push_back(acc / static_cast<double>(std::min<size_t>(i + 1, 100)));
    }
    PlotOptions o;
    o.title = "training loss";
    o.log_y = true;
    write_png(path, plot({raw, smooth}, o));
}
}  // namespace

StepResult train_step(UNet& model, const GaussianDiffusion& diffusion, TimestepSampler& sampler, LossType loss_type,
                      Adam& adam, EMA* ema, const Tensor& x0, Generator& gen, double lr, double grad_clip,
                      Distributed* dist) {
    StepResult r;
    // t and eps are drawn for the whole global batch on every rank, each rank keeping
    // its slice: the ranks together see exactly the draws of a one-process run.
    const int64_t ranks = dist ? dist->size() : 1, b = x0.size(0), B = b * ranks, first = dist ? dist->rank() * b : 0;
    TimestepSampler::Draw draw = sampler.sample(B, gen, DType::F32);
    Shape global_shape = x0.shape();
    global_shape[0] = B;
    Tensor noise = randn(global_shape, gen);
    Tensor t = draw.t, weights = draw.weights;
    if (ranks > 1) {
        t = narrow(draw.t, 0, first, b), weights = narrow(draw.weights, 0, first, b), noise = narrow(noise, 0, first, b);
    }
    DenoiseFn net = [&](const Variable& x, const Tensor& tt) { return model.forward(x, tt); };
    TrainingLosses l = training_losses(diffusion, net, x0, t, noise, loss_type);
    Variable loss = mean(l.loss * Variable(weights));
    adam.zero_grad();
    loss.backward();
    r.loss = loss.item();
    r.t = draw.t;
    r.per_image_loss = l.loss.data();
    if (ranks > 1) {
        // The mean of the ranks' means is the global mean; every rank then holds the
        // gradient of the whole batch, and the same loss to test.
        dist->average_gradients(model.named_parameters());
        dist->allreduce_sum(&r.loss, 1);
        r.loss /= static_cast<double>(ranks);
        Tensor all(Shape{B}, DType::F32);
        Tensor local = r.per_image_loss.to(DType::F32);
        dist->allgather(local.data<float>(), b, all.data<float>());
        r.per_image_loss = all;
    }
    r.nonfinite = std::isfinite(r.loss) ? first_nonfinite_grad(model.named_parameters()) : "the loss";
    if (!r.nonfinite.empty()) return r;
    r.grad_norm = clip_grad_norm(model.parameters(), grad_clip);
    adam.set_lr(lr);
    adam.step();
    if (ema) ema->update();
    sampler.update(draw.t, r.per_image_loss);
    return r;
}

nlohmann::json TrainOptions::to_json() const {
    return {{"config", config}, {"data", data}, {"out", out}, {"steps", steps}, {"minutes", minutes}, {"batch", batch},
            {"lr", lr}, {"warmup", warmup}, {"ema", ema}, {"grad_clip", grad_clip}, {"diffusion", diffusion.to_json()},
            {"timestep_sampler", timestep_sampler}, {"flip", flip}, {"seed", seed}, {"threads", threads},
            {"sample_every", sample_every}, {"ckpt_every", ckpt_every}, {"log_every", log_every},
            {"keep_checkpoints", keep_checkpoints}, {"sample_num", sample_num}, {"final_samples", final_samples},
            {"sample_steps", sample_steps},
            {"sample_sampler", sample_sampler},
            {"skip_nonfinite", skip_nonfinite}, {"command_line", command_line}};
}

TrainOptions TrainOptions::from_json(const nlohmann::json& j) {
    TrainOptions o;
    o.config = j.at("config");
    o.data = j.at("data");
    o.out = j.at("out");
    o.steps = j.at("steps");
    o.minutes = j.at("minutes");
    o.batch = j.at("batch");
    o.lr = j.at("lr");
    o.warmup = j.at("warmup");
    o.ema = j.at("ema");
    o.grad_clip = j.at("grad_clip");
    o.diffusion = DiffusionSettings::from_json(j.at("diffusion"));
    o.timestep_sampler = j.at("timestep_sampler");
    o.flip = j.at("flip");
    o.seed = j.at("seed");
    o.threads = j.at("threads");
    o.sample_every = j.at("sample_every");
    o.ckpt_every = j.at("ckpt_every");
    o.log_every = j.at("log_every");
    o.keep_checkpoints = j.at("keep_checkpoints");
    o.sample_num = j.at("sample_num");
    o.final_samples = j.value("final_samples", int64_t{64});
    o.sample_steps = j.at("sample_steps");
    o.sample_sampler = j.value("sample_sampler", "ddpm");
    o.skip_nonfinite = j.at("skip_nonfinite");
    o.command_line = j.value("command_line", "");
    return o;
}

int run_train(TrainOptions opt) {
    // Resume: the run's own options, with a new step or time budget if one was given.
    std::string resume_ckpt;
    if (!opt.resume.empty()) {
        const std::string dir = opt.resume;
        const fs::path saved = fs::path(dir) / "train.json";
        if (!fs::exists(saved)) throw std::runtime_error(dir + ": not a run folder (no train.json)");
        std::ifstream in(saved);
        TrainOptions prev;
        try {
            prev = TrainOptions::from_json(nlohmann::json::parse(in));
        } catch (const std::exception& e) {  // bad JSON, a missing field, a field of the wrong type
            throw std::runtime_error(fmt::format("{}: not a usable train.json: {}", saved.string(), e.what()));
        }
        if (opt.steps) prev.steps = opt.steps;
        if (opt.minutes) prev.minutes = opt.minutes;
        if (opt.threads) prev.threads = opt.threads;
        prev.command_line = opt.command_line;
        prev.out = dir;
        opt = prev;
        auto ckpts = list_checkpoints(dir);
        if (ckpts.empty()) throw std::runtime_error(dir + ": no checkpoint to resume from");
        resume_ckpt = ckpts.back();
    }
    if (opt.batch < 1 || opt.batch > 65536) throw std::invalid_argument(fmt::format("--batch {} out of range", opt.batch));
    if (!(opt.lr > 0 && std::isfinite(opt.lr))) throw std::invalid_argument("--lr must be positive");
    if (!(opt.ema >= 0 && opt.ema < 1)) throw std::invalid_argument("--ema must be in [0, 1)");
    if (opt.sample_every < 0 || opt.ckpt_every < 0 || opt.warmup < 0 || opt.steps < 0 || opt.minutes < 0)
        throw std::invalid_argument("step counts and minutes must not be negative");
    Distributed& dist = Distributed::get();
    const bool root = dist.is_root();  // rank 0 alone writes the run folder and prints
    if (opt.batch % dist.size() != 0)
        throw std::invalid_argument(fmt::format("--batch {} does not split evenly over {} ranks", opt.batch, dist.size()));
    set_threads(opt.threads ? opt.threads : default_threads_per_rank());

    UNetConfig cfg = UNetConfig::load(opt.config);
    if (opt.diffusion.loss == "hybrid") cfg.out_channels = 2 * cfg.in_channels;
    GaussianDiffusion diffusion = opt.diffusion.make();
    TimestepSampler sampler(TimestepSampler::parse(opt.timestep_sampler), opt.diffusion.T);
    const LossType loss_type = parse_loss_type(opt.diffusion.loss);
    // Load the data before touching the run folder, so a bad --data writes nothing.
    Dataset data = load_dataset(opt.data, Split::Train, cfg.in_channels, cfg.image_size);
    if (root) warn_if_slow_blas();  // after the checks, so that a bad flag gets a one-line error

    if (opt.out.empty()) {
        char stamp[32];
        std::time_t t = std::time(nullptr);
        std::strftime(stamp, sizeof(stamp), "%Y%m%d-%H%M%S", std::localtime(&t));
        opt.out = (fs::path("runs") / fmt::format("{}-{}", fs::path(opt.config).stem().string(), stamp)).string();
    }
    if (resume_ckpt.empty() && !list_checkpoints(opt.out).empty())
        throw std::runtime_error(opt.out + ": already holds a run; use --resume " + opt.out + " or another --out");
    if (root) {
        fs::create_directories(opt.out);
        if (int removed = remove_stale_temporaries(opt.out))
            fmt::print("removed {} temporary file(s) left by an interrupted write\n", removed);
        write_file_atomic((fs::path(opt.out) / "train.json").string(), opt.to_json().dump(2) + "\n");
        write_file_atomic((fs::path(opt.out) / "config.json").string(), cfg.to_json().dump(2) + "\n");
    }

    UNet model(cfg, InitScheme::DDPM, opt.seed);
    AdamOptions ao;
    ao.lr = opt.lr;
    Adam adam(model.named_parameters(), ao);
    EMA ema(model.named_parameters(), opt.ema);
    Generator train_gen(opt.seed + 1);  // timesteps and noise
    LrSchedule schedule{opt.lr, opt.warmup, LrSchedule::Kind::Constant, 0};
    TrainingState state{&model, &ema, &adam, 0, {{"train", &train_gen}, {"dropout", &model.dropout_generator()}}, {}};
    if (!resume_ckpt.empty()) {
        restore_checkpoint(load_safetensors(resume_ckpt), state, resume_ckpt);
        sampler.load_state(state.extra.at("timestep_sampler"));
        if (root) fmt::print("resumed {} at step {}\n", resume_ckpt, state.step);
    }
    if (dist.rank() > 0) {  // each rank its own dropout masks (the checkpoint holds rank 0's stream)
        Generator& g = model.dropout_generator();
        g.set_state(g.seed() + 0x9E3779B97F4A7C15ull * static_cast<uint64_t>(dist.rank()), g.offset());
    }
    Metrics metrics(root ? (fs::path(opt.out) / "metrics.csv").string() : "", state.step);
    BatchLoader loader(data, opt.batch, opt.seed + 2, opt.flip, dist.rank(), dist.size());
    DenoiseFn net = [&](const Variable& x, const Tensor& t) { return model.forward(x, t); };

    auto save = [&](int64_t step) {
        if (!root) return;
        metrics.csv.flush();  // every row up to this checkpoint is on disk before the checkpoint is
        state.step = step;
        state.extra = {{"diffusion", opt.diffusion.to_json()}, {"timestep_sampler", sampler.state()},
                       {"data", opt.data}};
        save_checkpoint(checkpoint_path(opt.out, step), state);
        prune_checkpoints(opt.out, static_cast<size_t>(std::max<int64_t>(1, opt.keep_checkpoints)));
    };
    auto sample_grid = [&](const std::string& name, int64_t num) {
        if (!root) return;
        NoGradGuard no_grad;
        EMA::Scope use_ema(ema);
        model.eval();
        Generator g(opt.seed + 3);  // the same noise at every step, so grids are comparable
        const int64_t steps = std::min(opt.sample_steps, opt.diffusion.T);
        const Shape shape{num, cfg.in_channels, cfg.image_size, cfg.image_size};
        Tensor x = opt.sample_sampler == "ddim"
                       ? ddim_sample_loop(diffusion.respaced(space_timesteps(opt.diffusion.T, fmt::format("ddim{}", steps))),
                                          net, shape, g, 0.0).x0
                       : p_sample_loop(diffusion.respaced(space_timesteps(opt.diffusion.T, std::to_string(steps))), net,
                                       shape, g).x0;
        model.train();
        write_png((fs::path(opt.out) / name).string(), make_grid(x, static_cast<int64_t>(std::ceil(std::sqrt(double(num))))));
    };

    // Every rank must hold the same weights: compared (by hash) at each log step and at the end.
    auto check_replicas = [&](int64_t at_step) {
        const uint64_t h = weights_hash(model.named_parameters());
        const int64_t h63 = static_cast<int64_t>(h >> 1);
        if (dist.allreduce_max(h63) != -dist.allreduce_max(-h63))
            throw std::runtime_error(fmt::format("rank {}: the weights differ between ranks after step {}", dist.rank(), at_step));
        return h;
    };

    g_signal = 0;
    auto old_int = std::signal(SIGINT, on_signal);
    auto old_term = std::signal(SIGTERM, on_signal);
    const bool tty = ::isatty(STDERR_FILENO);
    const double start = now_s();
    double last_log = start, ema_rate = 0;
    int64_t step = state.step, last_log_step = step;
    if (root)
        fmt::print("training '{}' ({} parameters) on {}, batch {}{}, run folder {}\n", cfg.name, model.num_parameters(),
                   data.description, opt.batch,
                   dist.active() ? fmt::format(" over {} ranks of {}", dist.size(), opt.batch / dist.size()) : "", opt.out);
    std::fflush(stdout);
    int exit_code = 0;
    model.train();
    const bool tty_out = tty && root;
    double step_seconds = 0;
    for (;;) {
        if (opt.steps && step >= opt.steps) break;
        // Stop for a signal or the time budget: decided together, so that no rank is
        // left waiting in a collective for one that stopped (2 x signal, or 1 when time is up).
        int64_t stop = g_signal ? 2 * int64_t(g_signal) : (opt.minutes && now_s() - start >= opt.minutes * 60) ? 1 : 0;
        if (dist.active()) stop = dist.allreduce_max(stop);
        if (stop == 1) break;
        if (stop >= 2) {
            exit_code = 128 + static_cast<int>(stop / 2);
            break;
        }
        const double step_start = now_s();
        StepResult r = train_step(model, diffusion, sampler, loss_type, adam, &ema, loader.get(step), train_gen,
                                  schedule.at(step), opt.grad_clip, &dist);
        step_seconds += now_s() - step_start;
        const double loss_v = r.loss, gnorm = r.grad_norm;
        if (!r.nonfinite.empty()) {  // the same on every rank: loss and gradients are the averaged ones
            if (root) fmt::print(stderr, "\nstep {}: non-finite value in {} (loss {}); ", step, r.nonfinite, loss_v);
            if (opt.skip_nonfinite) {
                if (root) fmt::print(stderr, "skipping the step\n");
                ++step;
                continue;
            }
            if (root) fmt::print(stderr, "stopping; the last good checkpoint is kept\n");
            exit_code = 1;
            break;
        }
        const Tensor& per_image = r.per_image_loss;
        const Tensor& draw_t = r.t;
        ++step;

        // Metrics: loss per quartile of t in this batch.
        double q_sum[4] = {0, 0, 0, 0};
        int q_n[4] = {0, 0, 0, 0};
        for (int64_t b = 0; b < opt.batch; ++b) {
            const int q = static_cast<int>(draw_t.flat(b) * 4 / opt.diffusion.T);
            q_sum[q] += per_image.flat(b);
            ++q_n[q];
        }
        const double t_now = now_s();
        const double rate = opt.batch / std::max(1e-9, t_now - last_log) * (step - last_log_step);
        ema_rate = ema_rate == 0 ? rate : 0.9 * ema_rate + 0.1 * rate;
        last_log = t_now, last_log_step = step;
        metrics.csv << step << ',' << loss_v;
        for (int q = 0; q < 4; ++q) {
            metrics.csv << ',';
            if (q_n[q]) metrics.csv << q_sum[q] / q_n[q];
        }
        metrics.csv << ',' << adam.lr() << ',' << gnorm << ',' << rate << ',' << (t_now - start) << '\n';
        metrics.steps.push_back(static_cast<double>(step));
        metrics.losses.push_back(loss_v);

        const bool log_now = step % std::max<int64_t>(1, opt.log_every) == 0;
        if (log_now && dist.active()) check_replicas(step);
        if (root && (tty || log_now)) {
            const double smooth = metrics.losses.size() >= 20
                                      ? std::accumulate(metrics.losses.end() - 20, metrics.losses.end(), 0.0) / 20
                                      : loss_v;
            double eta = NAN;
            if (opt.steps) eta = (opt.steps - step) * opt.batch / ema_rate;
            if (opt.minutes) eta = std::min(std::isfinite(eta) ? eta : 1e300, opt.minutes * 60 - (t_now - start));
            const std::string total = opt.steps ? std::to_string(opt.steps) : "-";
            if (tty_out) {
                const double frac = opt.steps ? double(step) / opt.steps
                                              : (opt.minutes ? (t_now - start) / (opt.minutes * 60) : 0.0);
                const int width = 24, fill = static_cast<int>(std::clamp(frac, 0.0, 1.0) * width);
                fmt::print(stderr, "\rstep {}/{} [{}{}] loss {:.4f} {:.1f} img/s ETA {}   ", step, total,
                           std::string(fill, '='), std::string(width - fill, ' '), smooth, ema_rate, format_duration(eta));
            } else {
                fmt::print("step {}/{} loss {:.4f} lr {:.2e} grad {:.3f} {:.1f} img/s elapsed {} ETA {}\n", step, total,
                           smooth, adam.lr(), gnorm, ema_rate, format_duration(t_now - start), format_duration(eta));
                std::fflush(stdout);
            }
            if (log_now) {
                metrics.csv.flush();
                write_loss_plot((fs::path(opt.out) / "loss.png").string(), metrics);
            }
        }
        if (opt.ckpt_every && step % opt.ckpt_every == 0) save(step);
        if (opt.sample_every && step % opt.sample_every == 0) sample_grid(fmt::format("samples_{:08d}.png", step), opt.sample_num);
    }
    if (tty_out) fmt::print(stderr, "\n");
    if (dist.active()) {
        const uint64_t h = check_replicas(step);
        if (root)
            fmt::print("{} ranks: weights identical on every rank after step {} (hash {:016x}); communication {:.1f}% of "
                       "the step time ({:.2f} of {:.2f} s)\n",
                       dist.size(), step, h, 100.0 * dist.comm_seconds / std::max(1e-9, step_seconds), dist.comm_seconds,
                       step_seconds);
    }
    std::signal(SIGINT, old_int);
    std::signal(SIGTERM, old_term);
    metrics.csv.flush();
    if (exit_code == 1) return 1;  // non-finite: keep the last good checkpoint as it is
    if (list_checkpoints(opt.out).empty() || list_checkpoints(opt.out).back() != checkpoint_path(opt.out, step)) save(step);
    if (root && !metrics.steps.empty()) write_loss_plot((fs::path(opt.out) / "loss.png").string(), metrics);
    if (exit_code) {
        if (root) fmt::print("stopped by signal {} at step {}; checkpoint {}\n", exit_code - 128, step, checkpoint_path(opt.out, step));
        return exit_code;
    }
    if (opt.final_samples > 0) sample_grid(fmt::format("samples_{:08d}.png", step), opt.final_samples);
    if (root)
        fmt::print("done: {} steps in {}; checkpoint {}{}\n", step, format_duration(now_s() - start),
                   checkpoint_path(opt.out, step),
                   opt.final_samples > 0
                       ? ", samples " + (fs::path(opt.out) / fmt::format("samples_{:08d}.png", step)).string()
                       : "");
    return 0;
}

}  // namespace ddpm
