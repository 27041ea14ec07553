// run.h: what a trained model needs besides its weights, and the run folder's files.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "diffusion/gaussian_diffusion.h"
#include "nn/checkpoint.h"
#include "util/fields.h"

namespace ddpm {

// The diffusion a model was trained with; stored in every checkpoint (extra.diffusion).
struct DiffusionSettings {
    int64_t T = 1000;
    std::string schedule = "linear";  // linear | cosine
    std::string loss = "simple";      // simple (fixed-large variance) | hybrid (learned range)
    std::string prediction = "eps";   // eps | v: what the network outputs (ModelMeanType)
    template <class Self, class Visit> static void fields(Self& s, Visit&& visit) {
        visit(Field{.key = "T", .flag = "--diffusion-steps", .help = "T, the length of the diffusion", .min = 2, .max = 100000},
              s.T);
        visit(Field{.key = "schedule", .flag = "--schedule", .help = "noise schedule: linear | cosine",
                    .choices = "linear|cosine"},
              s.schedule);
        visit(Field{.key = "loss", .flag = "--loss", .help = "simple (L_simple, fixed-large variance) | hybrid (learned variance)",
                    .choices = "simple|hybrid"},
              s.loss);
        visit(Field{.key = "prediction", .flag = "--prediction",
                    .help = "what the network predicts: eps (the noise) | v (Salimans & Ho 2022)", .choices = "eps|v",
                    .optional = true},
              s.prediction);
    }
    ModelVarType var_type() const;
    GaussianDiffusion make() const;
    nlohmann::json to_json() const;
    static DiffusionSettings from_json(const nlohmann::json& j);
};

// --diffusion-steps and --schedule of `sample` and `eval`: the diffusion of a model file
// that does not state its own (0 and "": the spec's T = 1000, linear).
struct DiffusionFlags {
    int64_t T = 0;
    std::string schedule;
    template <class Self, class Visit> static void fields(Self& s, Visit&& visit) {
        visit(Field{.flag = "--diffusion-steps", .help = "T, for a model file that does not state its diffusion (default 1000)"},
              s.T);
        visit(Field{.flag = "--schedule", .help = "linear | cosine, for a model file that does not state its diffusion",
                    .choices = "linear|cosine"},
              s.schedule);
    }
};

// A model rebuilt from a checkpoint or a model file alone (nn/checkpoint.h), in eval mode.
struct LoadedModel {
    std::unique_ptr<UNet> model;
    DiffusionSettings diffusion;
    nlohmann::json extra = nlohmann::json::object();  // a checkpoint's trainer extras (data, ...)
    int64_t step = 0;
    std::string weights;  // which weights: "EMA" or "raw"
};
// The diffusion comes from the file (a checkpoint's extra.diffusion, a model file's
// __metadata__.diffusion); a model file without it takes `flags`, and its loss from the
// config (twice the input channels: hybrid). Flags that contradict the file are refused.
LoadedModel load_trained_model(const std::string& path, bool use_ema, const DiffusionFlags& flags = {});
LoadedModel load_trained_model(const SafeTensors& st, const std::string& path, bool use_ema, const DiffusionFlags& flags = {});

// Checkpoints in a run folder are checkpoint_<step>.safetensors; sorted by step.
std::string checkpoint_path(const std::string& run_dir, int64_t step);
std::vector<std::string> list_checkpoints(const std::string& run_dir);
void prune_checkpoints(const std::string& run_dir, size_t keep);

// An OpenMP thread that finds no work spins, by libgomp's default, for about
// 300,000 polls before it sleeps. Next to another busy program that spinning
// takes the core the other program (or our slower thread) needs: a training
// step took 3.4x its quiet time next to one busy process (bench/cpu_sharing.sh),
// when our loops ran on OpenMP's threads. They now run on our own pool
// (tensor/parallel.h), which polls about 50 microseconds; OpenBLAS's threads are still OpenMP's.
// Unless GOMP_SPINCOUNT or OMP_WAIT_POLICY is set, this sets GOMP_SPINCOUNT=1000
// (some 25 microseconds of polling, then sleep) and re-executes the program with
// it, since libgomp reads it only when it loads. Call first thing in main().
void wait_briefly_at_barriers(char** argv);

// The kernel family OpenBLAS picked at start-up (its name, as OPENBLAS_CORETYPE spells it).
std::string blas_core_name();
// Warns on stderr when OpenBLAS fell back to its slowest kernels (OPENBLAS_CORETYPE unset on a new CPU).
void warn_if_slow_blas();
// Sets OpenMP's and OpenBLAS's thread counts (0 keeps the default).
void set_threads(int threads);
// --precision: "fp32" or "bf16" for the convolution products (tensor/gemm_kernels.h);
// bf16 on a CPU without AVX512_BF16 throws, in one line.
void set_precision(const std::string& precision);
// Threads for one process when several share this machine under mpirun: the cores
// divided among them; 0 (leave as is) for a lone process.
int default_threads_per_rank();

}  // namespace ddpm
