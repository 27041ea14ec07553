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
// Run: ./build/bench/bench_conv2d   (add --benchmark_filter=... to pick rows)
#include <benchmark/benchmark.h>
#include <cblas.h>
#include <omp.h>

#include "tensor/conv2d.h"
#include "tensor/matmul.h"
#include "tensor/random.h"

using namespace ddpm;

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
}  // namespace

BENCHMARK_MAIN();
