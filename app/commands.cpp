// commands.cpp
#include "app/commands.h"

#include <fmt/format.h>

#include <chrono>
#include <cmath>
#include <filesystem>

#include <unistd.h>

#include "app/data.h"
#include "app/heap_counter.h"
#include "app/image_io.h"
#include "app/npy.h"
#include "app/plot.h"
#include "app/run.h"
#include "util/file_io.h"
#include "app/train.h"
#include "autograd/profiler.h"
#include "tensor/allocator.h"

#include <omp.h>
#include <sys/resource.h>
#include <algorithm>
#include <nlohmann/json.hpp>
#include "autograd/ops.h"
#include "diffusion/samplers.h"
#include "diffusion/training_losses.h"
#include "diffusion/vlb.h"
#include "nn/trace.h"
#include "tensor/elementwise.h"
#include "tensor/shape_ops.h"

namespace ddpm {

namespace fs = std::filesystem;

namespace {
void ensure_parent(const std::string& path) {
    const fs::path p = fs::path(path).parent_path();
    if (!p.empty() && !fs::is_directory(p)) throw std::runtime_error(p.string() + ": no such folder for the output");
}

// A counter that rewrites itself on a terminal and stays silent in logs.
void progress_line(const char* what, int64_t done, int64_t total) {
    static const bool tty = ::isatty(STDERR_FILENO);
    if (!tty) return;
    fmt::print(stderr, "\r{} {}/{}", what, done, total);
    if (done == total) fmt::print(stderr, "\n");
}
}  // namespace

int run_sample(const SampleCommand& c) {
    set_threads(c.threads);
    if (c.sampler != "ddpm" && c.sampler != "ddim") throw std::invalid_argument("--sampler must be ddpm or ddim");
    if (c.num < 1 || c.batch < 1) throw std::invalid_argument("--num and --batch must be at least 1");
    if (c.eta < 0 || c.eta > 1) throw std::invalid_argument("--eta must be in [0, 1]");
    ensure_parent(c.out);
    LoadedModel m = load_trained_model(c.checkpoint, c.ema);
    warn_if_slow_blas();
    const UNetConfig& cfg = m.model->config();
    GaussianDiffusion base = m.diffusion.make();
    const int64_t T = base.num_timesteps();
    const int64_t steps = c.steps ? c.steps : (c.sampler == "ddim" ? std::min<int64_t>(50, T) : T);
    std::string spec = c.sampler == "ddim" ? (c.spacing.empty() ? "ddim" : c.spacing) + std::to_string(steps)
                                            : std::to_string(steps);
    GaussianDiffusion d = steps == T && c.sampler == "ddpm" ? base : base.respaced(space_timesteps(T, spec));
    DenoiseFn net = [&](const Variable& x, const Tensor& t) { return m.model->forward(x, t); };
    fmt::print("sampling {} images with {} ({} steps, {} weights) from {}\n", c.num, c.sampler, d.num_timesteps(),
               m.ema ? "EMA" : "raw", c.checkpoint);
    Generator gen(c.seed);
    std::vector<Tensor> parts, strips;
    std::vector<int64_t> strip_t;
    const auto t0 = std::chrono::steady_clock::now();
    for (int64_t done = 0; done < c.num; done += c.batch) {
        const int64_t n = std::min(c.batch, c.num - done);
        SampleOptions so;
        so.keep_trajectory = c.strip && done == 0;
        so.progress = [&](int64_t k, int64_t total) { progress_line("step", k, total); };
        const Shape shape{n, cfg.in_channels, cfg.image_size, cfg.image_size};
        SampleResult r = c.sampler == "ddim" ? ddim_sample_loop(d, net, shape, gen, c.eta, so)
                                             : p_sample_loop(d, net, shape, gen, so);
        parts.push_back(ddpm::clamp(r.x0, -1.0, 1.0));
        if (so.keep_trajectory) strips = r.trajectory, strip_t = r.trajectory_t;
    }
    Tensor all = concat(parts, 0);
    write_png(c.out + ".png", make_grid(all, static_cast<int64_t>(std::ceil(std::sqrt(double(c.num))))));
    write_npy(c.out + ".npy", all);
    fmt::print("wrote {}.png and {}.npy [{}, {}, {}, {}] in {:.1f} s\n", c.out, c.out, c.num, cfg.in_channels,
               cfg.image_size, cfg.image_size,
               std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    if (c.strip && !strips.empty()) {
        // Rows: up to 8 samples; columns: x_t at 10 evenly spaced points of the chain, then x_0.
        const int64_t rows = std::min<int64_t>(8, strips[0].size(0)), cols = 11;
        std::vector<Tensor> tiles;
        for (int64_t r = 0; r < rows; ++r)
            for (int64_t k = 0; k < cols; ++k) {
                const size_t idx = static_cast<size_t>(k * (static_cast<int64_t>(strips.size()) - 1) / (cols - 1));
                tiles.push_back(ddpm::clamp(strips[idx].slice(r, r + 1), -1.0, 1.0));
            }
        write_png(c.out + "_strip.png", make_grid(concat(tiles, 0), cols));
        fmt::print("wrote {}_strip.png (rows: samples; columns: x_t from t = {} down to x_0)\n", c.out, strip_t.front());
    }
    return 0;
}

int run_eval(const EvalCommand& c) {
    set_threads(c.threads);
    if (c.num < 1 || c.batch < 1 || c.timesteps < 0) throw std::invalid_argument("--num, --batch must be >= 1, --timesteps >= 0");
    ensure_parent(c.out);
    LoadedModel m = load_trained_model(c.checkpoint, c.ema);
    const UNetConfig& cfg = m.model->config();
    const std::string spec = c.data.empty() ? m.extra.value("data", std::string("fashion-mnist")) : c.data;
    Dataset data = load_dataset(spec, Split::Test, cfg.in_channels, cfg.image_size);
    warn_if_slow_blas();
    GaussianDiffusion d = m.diffusion.make();
    const int64_t T = d.num_timesteps(), n = std::min(c.num, data.n);
    BatchLoader loader(data, n, c.seed, false);
    Tensor images = loader.make(0);  // n test images, shuffled by the seed
    DenoiseFn net = [&](const Variable& x, const Tensor& t) { return m.model->forward(x, t); };
    Generator gen(c.seed + 1);
    fmt::print("evaluating {} on {} test images of {}\n", c.checkpoint, n, data.description);

    // L_simple on the same images, one uniform t each.
    double lsimple = 0;
    {
        NoGradGuard ng;
        for (int64_t b0 = 0; b0 < n; b0 += c.batch) {
            Tensor x0 = images.slice(b0, std::min(n, b0 + c.batch));
            Tensor t = randint(T, {x0.size(0)}, gen), noise = randn(x0.shape(), gen);
            TrainingLosses l = training_losses(d, net, x0, t, noise, LossType::Simple);
            for (int64_t i = 0; i < x0.size(0); ++i) lsimple += l.mse.data().flat(i) / n;
        }
    }
    if (c.timesteps > 0) {
        std::vector<double> totals;
        double se2 = 0;
        for (int64_t b0 = 0; b0 < n; b0 += c.batch) {
            Tensor x0 = images.slice(b0, std::min(n, b0 + c.batch));
            BpdEstimate e = estimate_bpd(d, net, x0, c.timesteps, gen);
            for (int64_t i = 0; i < x0.size(0); ++i) totals.push_back(e.total_bpd.flat(i));
            const double w = double(x0.size(0)) / n;
            se2 += w * w * e.stderr_ * e.stderr_;
            progress_line("images", std::min(n, b0 + c.batch), n);
        }
        double mean = 0;
        for (double v : totals) mean += v / static_cast<double>(totals.size());
        fmt::print("bits/dim (unbiased estimate, {} timesteps per image): {:.4f} +- {:.4f}\n", c.timesteps, mean, std::sqrt(se2));
        fmt::print("L_simple: {:.5f}\n", lsimple);
        return 0;
    }
    std::vector<double> term_mean(static_cast<size_t>(T), 0.0);
    double prior = 0, total = 0;
    for (int64_t b0 = 0; b0 < n; b0 += c.batch) {
        Tensor x0 = images.slice(b0, std::min(n, b0 + c.batch));
        BpdResult r = calc_bpd_loop(d, net, x0, gen, false, [&](int64_t k, int64_t tot) {
            if (k % 10 == 0 || k == tot) progress_line("timestep", k, tot);
        });
        for (int64_t i = 0; i < x0.size(0); ++i) {
            prior += r.prior.flat(i) / n;
            total += r.total_bpd.flat(i) / n;
            for (int64_t t = 0; t < T; ++t) term_mean[t] += r.terms.flat(i * T + t) / n;
        }
    }
    double kl = 0;
    for (int64_t t = 1; t < T; ++t) kl += term_mean[t];
    std::string csv = "t,bits_per_dim\n";
    for (int64_t t = 0; t < T; ++t) csv += fmt::format("{},{:.8g}\n", t, term_mean[t]);
    csv += fmt::format("prior,{:.8g}\n", prior);
    write_file_atomic(c.out + "_terms.csv", csv);
    Series s;
    for (int64_t t = 0; t < T; ++t) s.x.push_back(double(t)), s.y.push_back(term_mean[t]);
    s.r = 20, s.g = 60, s.b = 200, s.label = "bits/dim per timestep";
    PlotOptions po;
    po.title = fmt::format("where the bits go: total {:.3f} bits/dim", total);
    po.log_y = true;
    write_png(c.out + "_terms.png", plot({s}, po));
    fmt::print("bits/dim (full bound, T = {}): {:.4f}  = L_0 {:.4f} + sum L_t-1 {:.4f} + L_T {:.2e}\n", T, total,
               term_mean[0], kl, prior);
    fmt::print("L_simple: {:.5f}\nwrote {}_terms.csv and {}_terms.png\n", lsimple, c.out, c.out);
    return 0;
}

int run_bench(const BenchCommand& c) {
    // Under mpirun the global batch is split over the ranks as in training, and the
    // figures are those of the whole job (rank 0 prints them).
    Distributed& dist = Distributed::get();
    set_threads(c.threads ? c.threads : default_threads_per_rank());
    if (c.batch < 1 || c.steps < 1) throw std::invalid_argument("--batch and --steps must be at least 1");
    if (c.batch % dist.size() != 0)
        throw std::invalid_argument(fmt::format("--batch {} does not split evenly over {} ranks", c.batch, dist.size()));
    const int64_t local_batch = c.batch / dist.size();
    UNetConfig cfg = UNetConfig::load(c.config);
    if (dist.is_root()) warn_if_slow_blas();
    UNet model(cfg, InitScheme::DDPM, 0);
    DiffusionSettings ds;
    GaussianDiffusion diffusion = ds.make();
    TimestepSampler sampler(TimestepSampler::Kind::Uniform, ds.T);
    Adam adam(model.named_parameters(), AdamOptions{});
    EMA ema(model.named_parameters(), 0.9999);
    Generator gen(0);
    const Shape shape{local_batch, cfg.in_channels, cfg.image_size, cfg.image_size};
    Tensor x0 = ddpm::clamp(randn(shape, gen), -1.0, 1.0);
    double gflop_image = 0;
    {
        NoGradGuard ng;
        LayerTrace trace;
        model.forward(Variable(Tensor::zeros({1, cfg.in_channels, cfg.image_size, cfg.image_size})), Tensor::zeros({1}));
        for (const LayerRecord& r : trace.records()) gflop_image += r.flops / 1e9;
    }
    auto now = [] { return std::chrono::steady_clock::now(); };
    auto secs = [](auto a, auto b) { return std::chrono::duration<double>(b - a).count(); };
    auto median = [](std::vector<double> v) {
        std::sort(v.begin(), v.end());
        return v[v.size() / 2];
    };
    std::vector<double> step_s, fwd_s, ddim_s, comm_s;
    for (auto* v : {&step_s, &fwd_s, &ddim_s, &comm_s}) v->reserve(static_cast<size_t>(c.steps));  // no growth while timing
    int64_t allocs = 0, news = 0, counted = 0;  // over the timed steps, the profiled one left out (the profiler allocates)
    GaussianDiffusion ddim = diffusion.respaced(space_timesteps(ds.T, "ddim50"));
    DenoiseFn net = [&](const Variable& x, const Tensor& t) { return model.forward(x, t); };
    for (int64_t i = 0; i < c.steps + 2; ++i) {  // two warm-up rounds
        const bool timed = i >= 2, profiled = c.profile && i == c.steps + 1;
        const int64_t before = allocator_stats().system_allocations, news_before = heap_allocations();
        if (profiled) profiler::enable(true);
        const double comm_before = dist.comm_seconds;
        auto t0 = now();
        model.train();
        train_step(model, diffusion, sampler, LossType::Simple, adam, &ema, x0, gen, 2e-4, 1.0, &dist);
        auto t1 = now();
        if (timed) comm_s.push_back(dist.comm_seconds - comm_before);
        if (profiled) profiler::enable(false);
        if (timed && !profiled) {
            allocs += allocator_stats().system_allocations - before, news += heap_allocations() - news_before;
            ++counted;
        }
        model.eval();
        Tensor tt = randint(ds.T, {local_batch}, gen);
        {
            NoGradGuard ng;
            auto f0 = now();
            model.forward(Variable(x0), tt);
            auto f1 = now();
            ddim_sample(ddim, net, x0, 25, gen, 0.0, true);
            auto f2 = now();
            if (timed) fwd_s.push_back(secs(f0, f1)), ddim_s.push_back(secs(f1, f2));
        }
        if (timed) step_s.push_back(secs(t0, t1));
    }
    struct rusage ru {};
    getrusage(RUSAGE_SELF, &ru);
    const double step = median(step_s), fwd = median(fwd_s);
    // With several ranks the allreduce ends every step together, so rank 0's step time
    // is the job's; forward and DDIM figures are of rank 0's slice of the batch.
    // Null when no step was counted (one timed step, and that one profiled).
    auto per_step = [&](int64_t n) {
        return counted > 0 ? nlohmann::json(static_cast<double>(n) / static_cast<double>(counted)) : nlohmann::json();
    };
    nlohmann::ordered_json j = {
        {"framework", "ddpm.cpp"}, {"config", cfg.name}, {"batch", c.batch}, {"threads", omp_get_max_threads()},
        {"ranks", dist.size()}, {"train_step_s", step}, {"images_per_s", c.batch / step},
        {"comm_share", median(comm_s) / step}, {"forward_s", fwd}, {"ddim_step_s", median(ddim_s)},
        {"peak_rss_mib", ru.ru_maxrss / 1024.0}, {"train_gflops", 3 * gflop_image * c.batch / step},
        {"forward_gflops", gflop_image * c.batch / fwd},
        {"tensor_allocations_per_step", per_step(allocs)}, {"heap_allocations_per_step", per_step(news)},
        {"steps_timed", c.steps}};
    if (!dist.is_root()) return 0;
    fmt::print("{}\n", j.dump());
    if (c.profile) {
        auto stats = profiler::snapshot();
        double total = 0;
        std::vector<std::pair<double, std::string>> ops;
        for (auto& [op, st] : stats) ops.push_back({st.forward_s + st.backward_s, op}), total += st.forward_s + st.backward_s;
        std::sort(ops.rbegin(), ops.rend());
        fmt::print("\nper-op profile of one training step ({:.3f} s in ops):\n{:<22} {:>6} {:>12} {:>12} {:>7}\n", total, "op",
                   "calls", "forward s", "backward s", "share");
        for (auto& [tm, op] : ops)
            fmt::print("{:<22} {:>6} {:>12.4f} {:>12.4f} {:>6.1f}%\n", op, stats[op].forward_calls, stats[op].forward_s,
                       stats[op].backward_s, 100 * tm / total);
    }
    return 0;
}

int run_info(const std::string& what) {
    std::unique_ptr<UNet> owned;
    UNet* model = nullptr;
    if (fs::exists(what) && fs::path(what).extension() == ".safetensors") {
        owned = std::move(load_trained_model(what, false).model);
    } else {
        owned = std::make_unique<UNet>(UNetConfig::load(what));
    }
    model = owned.get();
    const UNetConfig& cfg = model->config();
    LayerTrace trace;
    {
        NoGradGuard ng;
        model->eval();
        model->forward(Variable(Tensor::zeros({1, cfg.in_channels, cfg.image_size, cfg.image_size})), Tensor::zeros({1}));
    }
    fmt::print("U-Net '{}': {}\n\n", cfg.name, cfg.to_json().dump());
    fmt::print("{:<40} {:<12} {:>18} {:>10} {:>14}\n", "layer", "kind", "output", "params", "MFLOP/image");
    double flops = 0;
    for (const LayerRecord& r : trace.records()) {
        fmt::print("{:<40} {:<12} {:>18} {:>10} {:>14.3f}\n", r.name, r.kind, shape_str(r.out_shape), r.params, r.flops / 1e6);
        flops += r.flops;
    }
    fmt::print("\nforward: {:.4f} GFLOP per image (convolutions, linear layers and attention products)\n", flops / 1e9);
    fmt::print("parameters: {}\n", model->num_parameters());
    return 0;
}

}  // namespace ddpm
