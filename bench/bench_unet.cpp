// bench_unet: U-Net forward and forward+backward at 1 and 2 threads, with the
// share of time per layer type from the per-op profiler.
//
// Usage: bench_unet [config=small] [batch=64] [iterations=5]
// GFLOP/s counts the forward as the traced conv/linear/attention FLOPs
// (0.6246 GFLOP per image for `small`) and forward+backward as 3x that.
#include <fmt/format.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <map>
#include <stdexcept>

#include "autograd/ops.h"
#include "autograd/profiler.h"
#include "nn/trace.h"
#include "nn/unet.h"
#include "tensor/random.h"

using namespace ddpm;

namespace {
double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

std::string category(const std::string& op) {
    if (op == "conv2d") return "conv";
    if (op == "group_norm" || op == "group_norm_silu") return "group norm";
    if (op == "attention" || op == "matmul" || op == "softmax") return "attention (and the linear layers)";
    return "element-wise and shape";
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}


// The profile of one forward+backward, by layer type and by op, as Markdown tables.
void print_profile(int threads, std::map<std::string, OpStats>& stats) {
    std::map<std::string, std::pair<double, double>> by_cat;
    double total = 0;
    for (auto& [op, st] : stats) {
        by_cat[category(op)].first += st.forward_s;
        by_cat[category(op)].second += st.backward_s;
        total += st.forward_s + st.backward_s;
    }
    fmt::print("\nTime share of one forward+backward by layer type, {} thread(s) (profiled run, {:.3f} s in ops):\n\n",
               threads, total);
    fmt::print("| layer type | forward (s) | backward (s) | share |\n|---|---|---|---|\n");
    for (auto& [cat, fb] : by_cat)
        fmt::print("| {} | {:.3f} | {:.3f} | {:.1f}% |\n", cat, fb.first, fb.second, 100 * (fb.first + fb.second) / total);
    std::vector<std::pair<double, std::string>> ops;
    for (auto& [op, st] : stats) ops.push_back({st.forward_s + st.backward_s, op});
    std::sort(ops.rbegin(), ops.rend());
    fmt::print("\nPer op, {} thread(s):\n\n| op | calls | forward (s) | backward (s) | share |\n|---|---|---|---|---|\n", threads);
    for (auto& [t, op] : ops)
        fmt::print("| {} | {} | {:.4f} | {:.4f} | {:.1f}% |\n", op, stats[op].forward_calls, stats[op].forward_s,
                   stats[op].backward_s, 100 * t / total);
}

// Median seconds of a no-grad forward and of a forward+backward over `iters` runs after
// one warm-up; one more run is profiled into `profile`.
std::pair<double, double> time_passes(UNet& net, const Variable& x, const Tensor& t, const Tensor& target, int iters,
                                      std::map<std::string, OpStats>& profile) {
    std::vector<double> fwd, step;
    for (int i = 0; i < iters + 2; ++i) {  // the first run warms up, the last is profiled
        const double t0 = now();
        {
            NoGradGuard ng;
            net.forward(x, t);
        }
        const double t1 = now();
        if (i == iters + 1) profiler::enable(true);
        net.zero_grad();
        Variable d = net.forward(x, t) - Variable(target);
        mean(d * d).backward();
        const double t2 = now();
        if (i == iters + 1) {
            profiler::enable(false);
            profile = profiler::snapshot();
            profiler::reset();
        } else if (i > 0) {
            fwd.push_back(t1 - t0);
            step.push_back(t2 - t1);
        }
    }
    return {median(fwd), median(step)};
}

struct Args {
    std::string config = "small";
    UNetConfig cfg;  // the preset named by config
    int64_t batch = 64;
    int iters = 5;
};

// A positive whole number from argument `what`, or an exception naming it.
int64_t positive(const char* text, const char* what) {
    char* end = nullptr;
    const long long v = std::strtoll(text, &end, 10);
    if (end == text || *end != '\0' || v < 1)
        throw std::invalid_argument(fmt::format("{} '{}' is not a whole number of at least 1", what, text));
    return v;
}

// The positional arguments; -h/--help prints the usage and exits 0, a bad argument
// says which and exits 2.
Args parse_args(int argc, char** argv) {
    const char* usage = "usage: bench_unet [config=small] [batch=64] [iterations=5]   (config: tiny, mini, small, cifar10)\n";
    Args a;
    try {
        if (argc > 1 && (std::string(argv[1]) == "-h" || std::string(argv[1]) == "--help")) {
            fmt::print("{}", usage);
            std::exit(0);
        }
        if (argc > 4) throw std::invalid_argument(fmt::format("{} arguments, at most 3", argc - 1));
        if (argc > 1) a.config = argv[1];
        if (argc > 2) a.batch = positive(argv[2], "batch");
        if (argc > 3) a.iters = static_cast<int>(positive(argv[3], "iterations"));
        a.cfg = UNetConfig::preset(a.config);  // an unknown name throws, listing the presets
    } catch (const std::exception& e) {
        fmt::print(stderr, "bench_unet: {}\n{}", e.what(), usage);
        std::exit(2);
    }
    return a;
}
}  // namespace

int main(int argc, char** argv) {
    const Args args = parse_args(argc, argv);
    const std::string& config = args.config;
    const int64_t batch = args.batch;
    const int iters = args.iters;
    const UNetConfig& cfg = args.cfg;
    UNet net(cfg, InitScheme::DDPM, 0);
    Generator gen(1);
    const int64_t S = cfg.image_size;
    Variable x(randn({batch, cfg.in_channels, S, S}, gen));
    Tensor t = randint(1000, {batch}, gen);
    Tensor target = randn({batch, cfg.out_channels, S, S}, gen);
    double gflop_per_image = 0;
    {
        NoGradGuard ng;
        LayerTrace trace;
        net.forward(Variable(randn({1, cfg.in_channels, S, S}, gen)), Tensor::zeros({1}));
        for (auto& r : trace.records()) gflop_per_image += r.flops / 1e9;
    }
    fmt::print("U-Net '{}', {} parameters, batch {}, {:.4f} GFLOP forward per image, median of {} runs\n\n", config,
               net.num_parameters(), batch, gflop_per_image, iters);
    fmt::print("| threads | pass | time (s) | images/s | GFLOP/s |\n|---|---|---|---|---|\n");
    std::map<int, std::map<std::string, OpStats>> profiles;
    for (int threads : {1, 2}) {
        omp_set_num_threads(threads);
        const auto [f, s] = time_passes(net, x, t, target, iters, profiles[threads]);
        fmt::print("| {} | forward (no grad) | {:.3f} | {:.1f} | {:.1f} |\n", threads, f, batch / f, batch * gflop_per_image / f);
        fmt::print("| {} | forward + backward | {:.3f} | {:.1f} | {:.1f} |\n", threads, s, batch / s,
                   3 * batch * gflop_per_image / s);
    }
    for (auto& [threads, stats] : profiles) print_profile(threads, stats);
    return 0;
}
