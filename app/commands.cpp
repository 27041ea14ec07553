// commands.cpp
#include "app/commands.h"

#include <fmt/format.h>
#include <omp.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <numeric>

#include "app/data.h"
#include "app/heap_counter.h"
#include "app/image_io.h"
#include "app/npy.h"
#include "app/plot.h"
#include "app/run.h"
#include "app/trainer.h"
#include "autograd/ops.h"
#include "autograd/profiler.h"
#include "diffusion/vlb.h"
#include "nn/trace.h"
#include "tensor/allocator.h"
#include "tensor/elementwise.h"
#include "tensor/gemm_kernels.h"
#include "tensor/shape_ops.h"
#include "tensor/winograd.h"
#include "util/file_io.h"

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


// Rows: up to 8 samples; columns: x_t at 10 evenly spaced points of the chain, then x_0.
void write_strip(const std::string& path, const SampleResult& chain, int64_t scale) {
    const std::vector<Tensor>& states = chain.trajectory;
    const int64_t rows = std::min<int64_t>(8, states[0].size(0)), cols = 11;
    std::vector<Tensor> tiles;
    for (int64_t r = 0; r < rows; ++r)
        for (int64_t k = 0; k < cols; ++k) {
            const size_t idx = static_cast<size_t>(k * (static_cast<int64_t>(states.size()) - 1) / (cols - 1));
            tiles.push_back(ddpm::clamp(states[idx].slice(r, r + 1), -1.0, 1.0));
        }
    write_png(path, upscale(make_grid(concat(tiles, 0), cols), scale));
}

// --class: `num` labels of that class, or with "all" `num` of each class in turn; undefined without it.
Tensor requested_labels(const UNetConfig& cfg, const std::string& cls, int64_t num) {
    if (cls.empty()) return Tensor();
    int64_t k = 0;
    try {
        k = cfg.class_index(cls == "all" ? "0" : cls);  // refuses an unconditional model and unknown names
    } catch (const std::invalid_argument& e) {
        throw std::invalid_argument(fmt::format("--class {}: {}", cls, e.what()));
    }
    if (cls != "all") return Tensor::full({num}, double(k), DType::F32);
    Tensor y({num * cfg.num_classes}, DType::F32);
    for (int64_t i = 0; i < y.numel(); ++i) y.set_flat(i, double(i / num));
    return y;
}

// --class all: one row of `per_class` images per class, its name on the left.
void write_class_grid(const std::string& path, const Tensor& images, const UNetConfig& cfg, int64_t per_class, int64_t scale) {
    const int64_t pad = 2, H = cfg.image_size;
    std::vector<std::string> names;
    std::vector<int64_t> centers;
    for (int64_t k = 0; k < cfg.num_classes; ++k)
        names.push_back(cfg.class_name(k)), centers.push_back((pad + k * (H + pad) + H / 2) * scale);
    write_png(path, with_row_labels(upscale(make_grid(images, per_class, pad), scale), names, centers));
}
}  // namespace

int run_sample(const SampleCommand& c) {
    set_threads(c.threads);
    set_precision(c.precision);
    if (c.spec.sampler != "ddpm" && c.spec.sampler != "ddim" && c.spec.sampler != "dpmpp2m" && c.spec.sampler != "heun")
        throw std::invalid_argument("--sampler must be ddpm, ddim, dpmpp2m or heun");
    if (c.num < 1 || c.batch < 1) throw std::invalid_argument("--num and --batch must be at least 1");
    if (c.spec.eta < 0 || c.spec.eta > 1) throw std::invalid_argument("--eta must be in [0, 1]");
    if (c.spec.eta > 0 && c.spec.sampler != "ddim" && c.spec.sampler != "dpmpp2m")
        throw std::invalid_argument("--eta applies to the ddim and dpmpp2m samplers only");
    ensure_parent(c.out);
    LoadedModel m = load_trained_model(c.checkpoint, c.ema, c.diffusion);
    warn_if_slow_blas();
    const UNetConfig& cfg = m.model->config();
    const int64_t scale = c.scale ? c.scale : default_scale(cfg.image_size);
    const GaussianDiffusion chain = sampling_chain(m.diffusion.make(), c.spec);
    const bool ode = c.spec.sampler == "dpmpp2m" || c.spec.sampler == "heun";
    const Tensor labels = requested_labels(cfg, c.class_name, c.num);
    if (c.spec.guidance > 0 && !labels.defined()) throw std::invalid_argument("--guidance needs --class");
    guidance_of(c.spec);  // a bad --guidance-interval is refused before any work
    const int64_t num = labels.defined() ? labels.size(0) : c.num;
    fmt::print("sampling {} images{} with {} ({} {}, {} weights) from {}\n", num,
               labels.defined() ? fmt::format(" of class {}, guidance {}", c.class_name, c.spec.guidance) : "", c.spec.sampler,
               ode ? ode_calls(c.spec) : chain.num_timesteps(), ode ? "model calls" : "steps", m.weights, c.checkpoint);
    Generator gen(c.seed);
    SampleResult first;
    const auto t0 = std::chrono::steady_clock::now();
    const Tensor all = sample_images(*m.model, chain, c.spec, num, c.batch, gen, c.strip ? &first : nullptr,
                                     [](int64_t k, int64_t total) { progress_line("step", k, total); }, labels);
    if (c.class_name == "all") write_class_grid(c.out + ".png", all, cfg, c.num, scale);
    else write_png(c.out + ".png", upscale(make_square_grid(all), scale));
    write_npy(c.out + ".npy", all);
    if (labels.defined()) write_npy(c.out + "_labels.npy", labels);
    fmt::print("wrote {}.png and {}.npy [{}, {}, {}, {}]{} in {:.1f} s\n", c.out, c.out, num, cfg.in_channels, cfg.image_size,
               cfg.image_size, labels.defined() ? fmt::format(" and {}_labels.npy [{}]", c.out, num) : "",
               std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    if (c.strip && !first.trajectory.empty()) {
        write_strip(c.out + "_strip.png", first, scale);
        fmt::print("wrote {}_strip.png (rows: samples; columns: x_t from t = {} down to x_0)\n", c.out,
                   first.trajectory_t.front());
    }
    return 0;
}

namespace {
// The network for test images [begin, end): with their labels for a class-conditional evaluation.
using BatchNet = std::function<DenoiseFn(int64_t begin, int64_t end)>;

// L_simple on the test images, one uniform t each (guide.md §9).
double eval_lsimple(const GaussianDiffusion& d, const BatchNet& net, const Tensor& images, int64_t batch, Generator& gen) {
    NoGradGuard ng;
    const int64_t n = images.size(0);
    double lsimple = 0;
    for (int64_t b0 = 0; b0 < n; b0 += batch) {
        const Tensor x0 = images.slice(b0, std::min(n, b0 + batch));
        const Tensor t = randint(d.num_timesteps(), {x0.size(0)}, gen), noise = randn(x0.shape(), gen);
        const TrainingLosses l = training_losses(d, net(b0, b0 + x0.size(0)), x0, t, noise, LossType::Simple);
        for (int64_t i = 0; i < x0.size(0); ++i) lsimple += l.mse.data().flat(i) / double(n);
    }
    return lsimple;
}

// The unbiased estimate prior + T x mean of K sampled terms (guide.md §8), with its standard error.
void eval_estimate(const GaussianDiffusion& d, const BatchNet& net, const Tensor& images, const EvalCommand& c,
                   Generator& gen) {
    const int64_t n = images.size(0);
    double mean = 0, se2 = 0;
    for (int64_t b0 = 0; b0 < n; b0 += c.batch) {
        const Tensor x0 = images.slice(b0, std::min(n, b0 + c.batch));
        const BpdEstimate e = estimate_bpd(d, net(b0, b0 + x0.size(0)), x0, c.timesteps, gen, c.clip_denoised == "on");
        for (int64_t i = 0; i < x0.size(0); ++i) mean += e.total_bpd.flat(i) / double(n);
        const double w = double(x0.size(0)) / double(n);
        se2 += w * w * e.stderr_ * e.stderr_;
        progress_line("images", std::min(n, b0 + c.batch), n);
    }
    fmt::print("bits/dim (unbiased estimate, {} timesteps per image, clip_denoised {}): {:.4f} +- {:.4f}\n", c.timesteps,
               c.clip_denoised, mean, std::sqrt(se2));
}

// The full bound L_0 + sum L_{t-1} + L_T over all T terms (guide.md §8, §13), its terms
// written to OUT_terms.csv (with the eps error at each t) and plotted in OUT_terms.png.
void eval_full_bound(const GaussianDiffusion& d, const BatchNet& net, const Tensor& images, const EvalCommand& c,
                     const std::string& out, Generator& gen) {
    const int64_t n = images.size(0), T = d.num_timesteps();
    std::vector<double> term_mean(static_cast<size_t>(T), 0.0), eps_mse(static_cast<size_t>(T), 0.0);
    double prior = 0, total = 0;
    for (int64_t b0 = 0; b0 < n; b0 += c.batch) {
        const Tensor x0 = images.slice(b0, std::min(n, b0 + c.batch));
        const BpdResult r = calc_bpd_loop(d, net(b0, b0 + x0.size(0)), x0, gen, c.clip_denoised == "on", [&](int64_t k, int64_t tot) {
            if (k % 10 == 0 || k == tot) progress_line("timestep", k, tot);
        });
        for (int64_t i = 0; i < x0.size(0); ++i) {
            prior += r.prior.flat(i) / double(n);
            total += r.total_bpd.flat(i) / double(n);
            for (int64_t t = 0; t < T; ++t) {
                term_mean[t] += r.terms.flat(i * T + t) / double(n);
                eps_mse[t] += r.eps_mse.flat(i * T + t) / double(n);
            }
        }
    }
    std::string csv = "t,bits_per_dim,eps_mse,clip_denoised\n";
    Series s{{}, {}, 20, 60, 200, "bits/dim per timestep"};
    for (int64_t t = 0; t < T; ++t) {
        csv += fmt::format("{},{:.8g},{:.8g},{}\n", t, term_mean[t], eps_mse[t], c.clip_denoised);
        s.x.push_back(double(t)), s.y.push_back(term_mean[t]);
    }
    write_file_atomic(out + "_terms.csv", csv + fmt::format("prior,{:.8g},,{}\n", prior, c.clip_denoised));
    PlotOptions po;
    po.title = fmt::format("where the bits go: total {:.3f} bits/dim", total);
    po.x_label = "timestep t (code index)", po.y_label = "bits/dim";
    po.log_y = true;
    write_png(out + "_terms.png", plot({s}, po));
    const double kl = std::accumulate(term_mean.begin() + 1, term_mean.end(), 0.0);
    fmt::print("bits/dim (full bound, T = {}, clip_denoised {}): {:.4f}  = L_0 {:.4f} + sum L_t-1 {:.4f} + L_T {:.2e}\n", T,
               c.clip_denoised, total, term_mean[0], kl, prior);
}
}  // namespace

namespace {
// One evaluation (L_simple, then the bound or its estimate) with the network `net`, its files under `out`.
void evaluate(const GaussianDiffusion& d, const BatchNet& net, const Tensor& images, const EvalCommand& c,
              const std::string& out) {
    const KernelTransformCache kept;  // the weights stay as they are: kernels transformed once (winograd.h)
    Generator gen(c.seed + 1);
    const double lsimple = eval_lsimple(d, net, images, c.batch, gen);
    if (c.timesteps > 0) {
        eval_estimate(d, net, images, c, gen);
        fmt::print("L_simple: {:.5f}\n", lsimple);
        return;
    }
    eval_full_bound(d, net, images, c, out, gen);
    fmt::print("L_simple: {:.5f}\nwrote {}_terms.csv and {}_terms.png\n", lsimple, out, out);
}

// The labels (n) of the evaluated images, in the order `images` holds them.
Tensor eval_labels(const Dataset& data, const EvalCommand& c, int64_t n) {
    if (c.images == "random") return BatchLoader(data, n, c.seed, false).labels(0);
    Tensor y({n}, DType::F32);
    for (int64_t i = 0; i < n; ++i) y.set_flat(i, data.labels[static_cast<size_t>(i)]);
    return y;
}
}  // namespace

int run_eval(const EvalCommand& c) {
    set_threads(c.threads);
    set_precision(c.precision);
    if (c.num < 1 || c.batch < 1 || c.timesteps < 0) throw std::invalid_argument("--num, --batch must be >= 1, --timesteps >= 0");
    ensure_parent(c.out);
    if (c.clip_denoised != "on" && c.clip_denoised != "off") throw std::invalid_argument("--clip-denoised must be on or off");
    if (c.images != "first" && c.images != "random") throw std::invalid_argument("--images must be first or random");
    LoadedModel m = load_trained_model(c.checkpoint, c.ema, c.diffusion);
    const UNetConfig& cfg = m.model->config();
    const std::string spec = c.data.empty() ? m.extra.value("data", std::string("fashion-mnist")) : c.data;
    Dataset data = load_dataset(spec, Split::Test, cfg.in_channels, cfg.image_size);
    warn_if_slow_blas();
    const int64_t n = std::min(c.num, data.n);
    const Tensor images = c.images == "first" ? dataset_images(data, 0, n) : BatchLoader(data, n, c.seed, false).make(0);
    fmt::print("evaluating {} ({} weights) on the {} {} test images of {}\n", c.checkpoint, m.weights,
               c.images == "first" ? "first" : "random", n, data.description);
    const GaussianDiffusion d = m.diffusion.make();
    UNet& model = *m.model;
    const BatchNet unconditional = [&](int64_t, int64_t) { return denoiser(model); };
    if (cfg.num_classes == 0) {
        evaluate(d, unconditional, images, c, c.out);
        return 0;
    }
    // guide.md §16: -log p(x | y) with the true labels, then -log p(x) from the "no class" model.
    if (data.labels.empty()) {
        fmt::print("the test data has no labels: only the unconditioned bound\n");
    } else {
        const Tensor y = eval_labels(data, c, n);
        fmt::print("conditioned on the true labels:\n");
        evaluate(d, [&](int64_t b, int64_t e) { return denoiser(model, y.slice(b, e)); }, images, c, c.out);
    }
    fmt::print("unconditioned (no class):\n");
    evaluate(d, unconditional, images, c, c.out + "_uncond");
    return 0;
}

namespace {
// Forward GFLOP per image, from the layer trace of one forward pass.
double gflop_per_image(UNet& model) {
    const UNetConfig& cfg = model.config();
    NoGradGuard ng;
    LayerTrace trace;
    model.forward(Variable(Tensor::zeros({1, cfg.in_channels, cfg.image_size, cfg.image_size})), Tensor::zeros({1}));
    double g = 0;
    for (const LayerRecord& r : trace.records()) g += r.flops / 1e9;
    return g;
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

// Seconds per timed round of a training step, a no-grad forward and one DDIM step, and
// the allocations of the timed steps (the profiled one left out: the profiler allocates).
struct BenchTimes {
    std::vector<double> step, forward, ddim, comm;
    int64_t tensor_allocs = 0, heap_allocs = 0, counted = 0;
    std::map<std::string, OpStats> train_profile, forward_profile;  // with --profile: the last round's ops
};

// The per-op times of what `run` does (the profiler switched on around it).
template <class F> std::map<std::string, OpStats> op_times(F run) {
    profiler::reset();
    profiler::enable(true);
    run();
    profiler::enable(false);
    return profiler::snapshot();
}

BenchTimes time_rounds(Trainer& tr, const Tensor& x0, const BenchCommand& c, Distributed& dist) {
    using clock = std::chrono::steady_clock;
    auto secs = [](clock::time_point a, clock::time_point b) { return std::chrono::duration<double>(b - a).count(); };
    BenchTimes bt;
    for (auto* v : {&bt.step, &bt.forward, &bt.ddim, &bt.comm}) v->reserve(static_cast<size_t>(c.steps));  // no growth while timing
    const GaussianDiffusion ddim = tr.diffusion.respaced(space_timesteps(tr.diffusion.num_timesteps(), "ddim50"));
    const DenoiseFn net = denoiser(tr.model);
    for (int64_t i = 0; i < c.steps + 2; ++i) {  // two warm-up rounds
        const bool timed = i >= 2, profiled = c.profile && i == c.steps + 1;
        const int64_t allocs_before = allocator_stats().system_allocations, news_before = heap_allocations();
        const double comm_before = dist.comm_seconds;
        tr.model.train();
        const auto t0 = clock::now();
        if (profiled) bt.train_profile = op_times([&] { tr.step(x0, Tensor(), 2e-4, &dist); });
        else tr.step(x0, Tensor(), 2e-4, &dist);
        const auto t1 = clock::now();
        if (timed && !profiled) {
            bt.tensor_allocs += allocator_stats().system_allocations - allocs_before;
            bt.heap_allocs += heap_allocations() - news_before;
            ++bt.counted;
        }
        tr.model.eval();
        const Tensor t = randint(tr.diffusion.num_timesteps(), {x0.size(0)}, tr.gen);
        NoGradGuard ng;
        const auto f0 = clock::now();
        if (profiled) bt.forward_profile = op_times([&] { tr.model.forward(Variable(x0), t); });
        else tr.model.forward(Variable(x0), t);
        const auto f1 = clock::now();
        // A DDIM step as a sampling run makes every step after its first: the run
        // keeps the kernels it transformed at its first step (winograd.h).
        const KernelTransformCache kept;
        ddim_sample(ddim, net, x0, 26, tr.gen, 0.0, true);
        const auto d0 = clock::now();
        ddim_sample(ddim, net, x0, 25, tr.gen, 0.0, true);
        const auto d1 = clock::now();
        if (timed) {
            bt.step.push_back(secs(t0, t1)), bt.forward.push_back(secs(f0, f1)), bt.ddim.push_back(secs(d0, d1));
            bt.comm.push_back(dist.comm_seconds - comm_before);
        }
    }
    return bt;
}

void print_profile(std::map<std::string, OpStats> stats, const std::string& what) {
    double total = 0;
    std::vector<std::pair<double, std::string>> ops;
    for (auto& [op, st] : stats) ops.push_back({st.forward_s + st.backward_s, op}), total += st.forward_s + st.backward_s;
    std::sort(ops.rbegin(), ops.rend());
    fmt::print("\nper-op profile of {} ({:.3f} s in ops):\n{:<22} {:>6} {:>12} {:>12} {:>7}\n", what, total, "op",
               "calls", "forward s", "backward s", "share");
    for (auto& [tm, op] : ops)
        fmt::print("{:<22} {:>6} {:>12.4f} {:>12.4f} {:>6.1f}%\n", op, stats[op].forward_calls, stats[op].forward_s,
                   stats[op].backward_s, 100 * tm / total);
}
}  // namespace

int run_bench(const BenchCommand& c) {
    // Under mpirun the global batch is split over the ranks as in training, and the
    // figures are those of the whole job (rank 0 prints them).
    Distributed& dist = Distributed::get();
    set_threads(c.threads ? c.threads : default_threads_per_rank());
    set_precision(c.precision);
    if (c.batch < 1 || c.steps < 1) throw std::invalid_argument("--batch and --steps must be at least 1");
    if (c.batch % dist.size() != 0)
        throw std::invalid_argument(fmt::format("--batch {} does not split evenly over {} ranks", c.batch, dist.size()));
    const UNetConfig cfg = UNetConfig::load(c.config);
    if (dist.is_root()) warn_if_slow_blas();
    Trainer tr(cfg, DiffusionSettings{}, TimestepSampler::Kind::Uniform, 2e-4, 0.9999, 1.0, 0);
    Generator gen(0);
    const Tensor x0 = ddpm::clamp(randn({c.batch / dist.size(), cfg.in_channels, cfg.image_size, cfg.image_size}, gen), -1.0, 1.0);
    const double gflop_image = gflop_per_image(tr.model);
    const BenchTimes bt = time_rounds(tr, x0, c, dist);
    struct rusage ru {};
    getrusage(RUSAGE_SELF, &ru);
    // With several ranks the allreduce ends every step together, so rank 0's step time
    // is the job's; forward and DDIM figures are of rank 0's slice of the batch.
    // Allocation figures are null when no step was counted (one timed step, and that one profiled).
    const double step = median(bt.step), fwd = median(bt.forward);
    auto per_step = [&](int64_t n) {
        return bt.counted > 0 ? nlohmann::json(double(n) / double(bt.counted)) : nlohmann::json();
    };
    const nlohmann::ordered_json j = {
        {"framework", "ddpm.cpp"}, {"config", cfg.name}, {"batch", c.batch}, {"threads", omp_get_max_threads()},
        {"ranks", dist.size()}, {"train_step_s", step}, {"images_per_s", c.batch / step},
        {"comm_share", median(bt.comm) / step}, {"forward_s", fwd}, {"ddim_step_s", median(bt.ddim)},
        {"peak_rss_mib", ru.ru_maxrss / 1024.0}, {"train_gflops", 3 * gflop_image * c.batch / step},
        {"forward_gflops", gflop_image * c.batch / fwd},
        {"tensor_allocations_per_step", per_step(bt.tensor_allocs)}, {"heap_allocations_per_step", per_step(bt.heap_allocs)},
        {"steps_timed", c.steps}, {"gemm_kernels", c.precision == "bf16" ? bf16_kernel().name : sgemm_kernel().name}, {"precision", c.precision}, {"blas_core", blas_core_name()}};
    if (!dist.is_root()) return 0;
    fmt::print("{}\n", j.dump());
    if (c.profile) {
        print_profile(bt.train_profile, "one training step");
        print_profile(bt.forward_profile, "one no-grad forward, what a sampling step calls,");
    }
    return 0;
}

int run_export(const ExportCommand& c) {
    if (c.checkpoint.empty() || c.out.empty()) throw std::invalid_argument("--checkpoint and --out are required");
    ensure_parent(c.out);
    const SafeTensors st = load_safetensors(c.checkpoint);
    if (!is_checkpoint(st)) throw std::invalid_argument(c.checkpoint + ": not a training checkpoint (it is already a model file)");
    if (!c.raw && !st.contains("ema.conv_in.weight"))
        throw std::invalid_argument(c.checkpoint + ": has no EMA weights (ema.*); use --raw to export the raw weights");
    const LoadedModel m = load_trained_model(st, c.checkpoint, !c.raw);  // weights, diffusion and step, all checked
    Metadata meta{{"diffusion", m.diffusion.to_json().dump()},
                  {"weights", m.weights},
                  {"step", std::to_string(m.step)},
                  {"source", fs::path(c.checkpoint).filename().string()}};
    save_model_file(c.out, state_dict(*m.model), m.model->config(), meta);
    fmt::print("wrote {}: the {} weights of {} at step {} ({} parameters) and the U-Net config; no training state\n", c.out,
               m.weights, c.checkpoint, m.step, m.model->num_parameters());
    return 0;
}

int run_info(const std::string& what) {
    const bool checkpoint = fs::exists(what) && fs::path(what).extension() == ".safetensors";
    const std::unique_ptr<UNet> model =
        checkpoint ? std::move(load_trained_model(what, false).model) : std::make_unique<UNet>(UNetConfig::load(what));
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
