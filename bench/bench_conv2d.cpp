// bench_conv2d: conv2d forward and forward+backward at U-Net shapes, beside
// plain sgemm on the same matrix sizes, at 1 and 2 threads.
//
// A convolution of (B,C,H,W) by (OC,C,K,K) is, as matrices, the product
// [OC, C*K*K] @ [C*K*K, B*OH*OW]: 2*OC*C*K*K*B*OH*OW flops forward, and twice
// that again backward (dW and dX). The sgemm rows time exactly that product as
// one call, the best case for the BLAS, so "conv / sgemm" is our efficiency.
// The 3x3 stride-1 shapes run by Winograd F(4x4, 3x3) (tensor/winograd.h),
// which does about a quarter of those multiplications: their GFLOP/s still
// count the direct product's flops ("effective" rates), so they can pass the
// machine's sgemm figure.
//
// The roofline rows: this CPU's fp32 FMA peak per thread is measured first
// (fma_peak.h, printed in the header), then
//   unet/<layer>   every distinct convolution of a U-Net config (default
//                  `small`, batch 64), forward + backward, with "peak": the
//                  share of the threads' peak its arithmetic reached. For the
//                  3x3 layers that arithmetic is the Winograd products' (36
//                  multiplies per 4x4 tile and channel pair, 1/4 of direct);
//                  the transforms, which are memory-bound, count as time only.
//   wgemm/<shape>  our GEMM kernel (gemm_kernels.h) alone, on one block's 36
//                  Winograd products of that layer, one thread, data in cache.
// With --parts=1 the unet rows come in three, each layer's forward, input gradient
// and weight gradient (with the bias's) timed apart: fwd/, dx/ and dw/<layer>.
//
// With --precision=bf16 every product runs in bfloat16 (gemm_kernels.h) and
// "peak" is the share of the bf16 dot-product peak instead.
//
// Run: ./build/bench/bench_conv2d [--config=small] [--batch=64] [--precision=fp32] [--parts=0]
//      (add --benchmark_filter=... to pick rows)
#include <benchmark/benchmark.h>
#include <cblas.h>
#include <fmt/format.h>
#include <omp.h>

#include <chrono>
#include <cstring>
#include <set>
#include <vector>

#include "autograd/ops.h"
#include "fma_peak.h"
#include "nn/trace.h"
#include "nn/unet.h"
#include "tensor/conv2d.h"
#include "tensor/gemm_kernels.h"
#include "tensor/matmul.h"
#include "tensor/random.h"
#include "tensor/winograd.h"

using namespace ddpm;
using ddpm::bench::bf16_dot_peak_gflops;
using ddpm::bench::fp32_fma_peak_gflops;
using ddpm::bench::fp32_peak_isa;

namespace {
struct ConvShape {
    const char* name;
    int64_t B, C, H, W, OC, K, stride, pad;
    int64_t OH() const { return (H + 2 * pad - K) / stride + 1; }
    int64_t OW() const { return (W + 2 * pad - K) / stride + 1; }
    double gemm_flops() const { return 2.0 * OC * C * K * K * B * OH() * OW(); }
};

const ConvShape kShapes[] = {
    {"b64_c32_28x28_3x3", 64, 32, 28, 28, 32, 3, 1, 1},
    {"b64_c64_14x14_3x3", 64, 64, 14, 14, 64, 3, 1, 1},
    {"b64_c64_14x14_1x1", 64, 64, 14, 14, 64, 1, 1, 0},
    {"b64_c32to64_28x28_1x1", 64, 32, 28, 28, 64, 1, 1, 0},
};

void set_threads(int n) {
    omp_set_num_threads(n);
    openblas_set_num_threads(n);
}

void report(benchmark::State& state, double flops_per_iter) {
    state.counters["GFLOP/s"] = benchmark::Counter(flops_per_iter * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

void BM_sgemm(benchmark::State& state, ConvShape s) {
    set_threads(static_cast<int>(state.range(0)));
    const int64_t M = s.OC, K = s.C * s.K * s.K, N = s.B * s.OH() * s.OW();
    Generator gen(1);
    Tensor a = randn({M, K}, gen), b = randn({K, N}, gen), c = Tensor::zeros({M, N});
    for (auto _ : state) {
        gemm(false, false, M, N, K, 1.0f, a.data<float>(), K, b.data<float>(), N, 0.0f, c.data<float>(), N);
        benchmark::ClobberMemory();
    }
    report(state, s.gemm_flops());
}

void BM_sgemm_x3(benchmark::State& state, ConvShape s) {
    // The three products of a forward+backward pass, each as one sgemm call.
    set_threads(static_cast<int>(state.range(0)));
    const int64_t M = s.OC, K = s.C * s.K * s.K, N = s.B * s.OH() * s.OW();
    Generator gen(1);
    Tensor w = randn({M, K}, gen), col = randn({K, N}, gen), out = Tensor::zeros({M, N});
    Tensor dw = Tensor::zeros({M, K}), dcol = Tensor::zeros({K, N});
    for (auto _ : state) {
        gemm(false, false, M, N, K, 1.0f, w.data<float>(), K, col.data<float>(), N, 0.0f, out.data<float>(), N);
        gemm(false, true, M, K, N, 1.0f, out.data<float>(), N, col.data<float>(), N, 0.0f, dw.data<float>(), K);
        gemm(true, false, K, N, M, 1.0f, w.data<float>(), K, out.data<float>(), N, 0.0f, dcol.data<float>(), N);
        benchmark::ClobberMemory();
    }
    report(state, 3 * s.gemm_flops());
}

void BM_conv_forward(benchmark::State& state, ConvShape s) {
    set_threads(static_cast<int>(state.range(0)));
    Generator gen(1);
    Tensor x = randn({s.B, s.C, s.H, s.W}, gen), w = randn({s.OC, s.C, s.K, s.K}, gen), b = randn({s.OC}, gen);
    for (auto _ : state) benchmark::DoNotOptimize(conv2d_forward(x, w, b, s.stride, s.pad));
    report(state, s.gemm_flops());
}

void BM_conv_forward_backward(benchmark::State& state, ConvShape s) {
    set_threads(static_cast<int>(state.range(0)));
    Generator gen(1);
    Tensor x = randn({s.B, s.C, s.H, s.W}, gen), w = randn({s.OC, s.C, s.K, s.K}, gen), b = randn({s.OC}, gen);
    for (auto _ : state) {
        Tensor y = conv2d_forward(x, w, b, s.stride, s.pad);
        Conv2dGrads g = conv2d_backward(y, x, w, s.stride, s.pad, true, true, true);
        benchmark::DoNotOptimize(g.dx.raw_data());
    }
    report(state, 3 * s.gemm_flops());
}


double g_peak_per_thread = 0;  // fp32 GFLOP/s of one thread, measured at start-up

// A U-Net convolution as the benchmark runs it.
struct Layer {
    std::string name;
    ConvShape shape;
    bool winograd() const { return winograd_applies(shape.K, shape.K, shape.stride, shape.pad, shape.C); }
    // Multiply-add flops of the arithmetic actually done by one forward.
    double forward_flops() const {
        if (!winograd()) return shape.gemm_flops();
        const double tiles = double(shape.B) * ((shape.H + 3) / 4) * ((shape.W + 3) / 4);
        return 2.0 * 36 * shape.OC * shape.C * tiles;
    }
};

// The distinct convolutions of a config's U-Net (first layer of each shape named), from a traced forward.
std::vector<Layer> unet_layers(const std::string& config, int64_t batch) {
    const UNetConfig cfg = UNetConfig::preset(config);
    UNet net(cfg);
    LayerTrace trace;
    Generator gen(1);
    net.forward(Variable(randn({1, cfg.in_channels, cfg.image_size, cfg.image_size}, gen)),
                Tensor::from_data({10}, {1}));
    std::vector<Layer> layers;
    std::set<std::string> seen;
    for (const LayerRecord& r : trace.records()) {
        if (r.kind != "conv2d") continue;
        const ConvShape s{"", batch, r.in_shape[1], r.in_shape[2], r.in_shape[3], r.out_shape[1], r.kernel, r.stride, r.pad};
        const std::string key = fmt::format("c{}to{}_{}x{}_{}x{}_s{}", s.C, s.OC, s.H, s.W, s.K, s.K, s.stride);
        if (seen.insert(key).second) layers.push_back({r.name + "/" + key, s});
    }
    return layers;
}

// "peak%": the arithmetic's rate as a percentage of the threads' measured peak
// (seconds: the timed loop's own wall time, the benchmark's real time).
void report_peak(benchmark::State& state, double actual_flops_per_iter, int threads, double seconds) {
    const double rate = actual_flops_per_iter * double(state.iterations()) / seconds * 1e-9;
    state.counters["peak%"] = 100.0 * rate / (g_peak_per_thread * threads);
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

void BM_unet_layer(benchmark::State& state, Layer layer) {
    const int threads = static_cast<int>(state.range(0));
    set_threads(threads);
    const ConvShape& s = layer.shape;
    Generator gen(1);
    Tensor x = randn({s.B, s.C, s.H, s.W}, gen), w = randn({s.OC, s.C, s.K, s.K}, gen), b = randn({s.OC}, gen);
    const auto t0 = std::chrono::steady_clock::now();
    for (auto _ : state) {
        Tensor y = conv2d_forward(x, w, b, s.stride, s.pad);
        Conv2dGrads g = conv2d_backward(y, x, w, s.stride, s.pad, true, true, true);
        benchmark::DoNotOptimize(g.dx.raw_data());
    }
    report_peak(state, 3 * layer.forward_flops(), threads, seconds_since(t0));
    report(state, 3 * s.gemm_flops());
}

// One part of a layer's convolution, timed apart (--parts=1).
enum class Part { Forward, InputGrad, WeightGrad };

void BM_unet_part(benchmark::State& state, Layer layer, Part part) {
    const int threads = static_cast<int>(state.range(0));
    set_threads(threads);
    const ConvShape& s = layer.shape;
    Generator gen(1);
    Tensor x = randn({s.B, s.C, s.H, s.W}, gen), w = randn({s.OC, s.C, s.K, s.K}, gen), b = randn({s.OC}, gen);
    const Tensor dy = conv2d_forward(x, w, b, s.stride, s.pad);  // a gradient of the output's shape
    const bool dx = part == Part::InputGrad, dw = part == Part::WeightGrad;
    const auto t0 = std::chrono::steady_clock::now();
    for (auto _ : state) {
        if (part == Part::Forward) {
            Tensor y = conv2d_forward(x, w, b, s.stride, s.pad);
            benchmark::DoNotOptimize(y.raw_data());
        } else {
            Conv2dGrads g = conv2d_backward(dy, x, w, s.stride, s.pad, dx, dw, dw);
            benchmark::DoNotOptimize(dx ? g.dx.raw_data() : g.dweight.raw_data());
        }
    }
    report_peak(state, layer.forward_flops(), threads, seconds_since(t0));
    report(state, s.gemm_flops());
}

// One block's 36 products M[xi] = U[xi] V[xi] (OC x C times C x N) of a Winograd layer,
// as the convolution runs them: in bf16 on U's and V's pairs, packed beforehand (as
// the kernel and input transforms make them), so only the products are timed.
void BM_winograd_gemm(benchmark::State& state, Layer layer) {
    set_threads(1);
    const ConvShape& s = layer.shape;
    const int64_t n = winograd_block_tiles(s.B, s.C, s.H, s.W, s.OC, 2), ld = (n + 15) / 16 * 16;
    const int64_t K2 = bf16_pairs(s.C);
    const bool bf16 = gemm_precision() == GemmPrecision::BF16;
    Generator gen(1);
    Tensor U = randn({36, s.OC, s.C}, gen), V = randn({36, s.C, ld}, gen), M = Tensor::zeros({36, s.OC, ld});
    std::vector<uint32_t> Up, Vp;
    if (bf16) {
        Up.resize(static_cast<size_t>(36 * s.OC * K2)), Vp.resize(static_cast<size_t>(36 * K2 * ld));
        for (int xi = 0; xi < 36; ++xi) {
            pack_bf16_a(s.OC, s.C, U.data<float>() + xi * s.OC * s.C, s.C, false, Up.data() + xi * s.OC * K2);
            pack_bf16_b(s.C, n, V.data<float>() + xi * s.C * ld, ld, Vp.data() + xi * K2 * ld, ld);
        }
    }
    const auto t0 = std::chrono::steady_clock::now();
    for (auto _ : state) {
        for (int xi = 0; xi < 36; ++xi) {
            float* m = M.data<float>() + xi * s.OC * ld;
            if (bf16)
                sgemm_bf16_pairs(s.OC, n, s.C, Up.data() + xi * s.OC * K2, Vp.data() + xi * K2 * ld, ld, m, ld, false);
            else
                sgemm(s.OC, n, s.C, U.data<float>() + xi * s.OC * s.C, s.C, V.data<float>() + xi * s.C * ld, ld, m,
                      ld, false);
        }
        benchmark::ClobberMemory();
    }
    const double flops = 2.0 * 36 * s.OC * s.C * n;
    report_peak(state, flops, 1, seconds_since(t0));
    report(state, flops);
    state.SetLabel(fmt::format("N={} {}", n, bf16 ? bf16_kernel().name : sgemm_kernel().name));
}

void register_unet(const std::string& config, int64_t batch, bool parts) {
    for (const Layer& layer : unet_layers(config, batch)) {
        const auto threads = [](benchmark::internal::Benchmark* b) {
            b->Arg(1)->Arg(2)->ArgName("threads")->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(0.3);
        };
        if (parts) {
            for (auto [label, part] : {std::pair{"fwd/", Part::Forward}, std::pair{"dx/", Part::InputGrad},
                                       std::pair{"dw/", Part::WeightGrad}})
                threads(benchmark::RegisterBenchmark((label + layer.name).c_str(), BM_unet_part, layer, part));
        } else {
            threads(benchmark::RegisterBenchmark(("unet/" + layer.name).c_str(), BM_unet_layer, layer));
        }
        if (layer.winograd())
            benchmark::RegisterBenchmark(("wgemm/" + layer.name).c_str(), BM_winograd_gemm, layer)
                ->Unit(benchmark::kMicrosecond)->UseRealTime()->MinTime(0.3);
    }
}

int register_all() {
    for (const ConvShape& s : kShapes) {
        using Fn = void (*)(benchmark::State&, ConvShape);
        const std::pair<const char*, Fn> rows[] = {{"sgemm_fwd_equiv", BM_sgemm},
                                                   {"conv_fwd", BM_conv_forward},
                                                   {"sgemm_x3_fwdbwd_equiv", BM_sgemm_x3},
                                                   {"conv_fwd_bwd", BM_conv_forward_backward}};
        for (auto [label, fn] : rows) {
            benchmark::RegisterBenchmark((std::string(label) + "/" + s.name).c_str(), fn, s)
                ->Arg(1)
                ->Arg(2)
                ->ArgName("threads")
                ->Unit(benchmark::kMillisecond)
                ->UseRealTime()
                ->MinTime(0.5);
        }
    }
    return 0;
}
const int registered = register_all();

// "--name=value" taken out of argv (Google Benchmark refuses flags it does not know).
std::string take_flag(int& argc, char** argv, const std::string& name, const std::string& fallback) {
    const std::string prefix = "--" + name + "=";
    for (int i = 1; i < argc; ++i)
        if (std::strncmp(argv[i], prefix.c_str(), prefix.size()) == 0) {
            std::string value = argv[i] + prefix.size();
            for (int j = i; j + 1 < argc; ++j) argv[j] = argv[j + 1];
            --argc;
            return value;
        }
    return fallback;
}
}  // namespace

int main(int argc, char** argv) {
    const std::string config = take_flag(argc, argv, "config", "small");
    const int64_t batch = std::stoll(take_flag(argc, argv, "batch", "64"));
    const std::string precision = take_flag(argc, argv, "precision", "fp32");
    set_gemm_precision(parse_precision(precision));
    const std::string& family = sgemm_kernel().name;  // the fp32 peak at this family's vector width
    const double fp32_peak = fp32_fma_peak_gflops(1, family), bf16_peak = bf16_dot_peak_gflops(1);
    g_peak_per_thread = precision == "bf16" ? bf16_peak : fp32_peak;
    benchmark::AddCustomContext("fp32 FMA peak, 1 thread",
                                fmt::format("{:.1f} GFLOP/s ({})", fp32_peak, fp32_peak_isa(family)));
    benchmark::AddCustomContext("fp32 FMA peak, 2 threads", fmt::format("{:.1f} GFLOP/s", fp32_fma_peak_gflops(2, family)));
    benchmark::AddCustomContext("bf16 dot peak, 1 thread", fmt::format("{:.1f} GFLOP/s", bf16_peak));
    benchmark::AddCustomContext("GEMM kernels", precision == "bf16" ? bf16_kernel().name : sgemm_kernel().name);
    benchmark::AddCustomContext("precision (peak% against its peak)", precision);
    benchmark::AddCustomContext("OpenBLAS core", openblas_get_corename());
    benchmark::AddCustomContext("U-Net layers", fmt::format("{}, batch {}", config, batch));
    register_unet(config, batch, take_flag(argc, argv, "parts", "0") == "1");
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}
