// commands.h: `ddpm sample`, `ddpm eval`, `ddpm bench` and `ddpm info` (train is in train.h).
// Each command's options are listed once (util/fields.h); main.cpp makes the flags from them.
#pragma once

#include <string>

#include "app/run.h"
#include "app/sampling.h"
#include "util/fields.h"

namespace ddpm {

struct SampleCommand {
    std::string checkpoint;  // a checkpoint or a model file
    DiffusionFlags diffusion;
    SamplerSpec spec;
    int64_t num = 64;
    std::string class_name;  // a class-conditional model: a class name or number, or "all"
    uint64_t seed = 0;
    bool ema = true;
    std::string out = "samples";   // writes OUT.png and OUT.npy (and OUT_strip.png, OUT_labels.npy)
    bool strip = false;
    int64_t scale = 0;  // pixels per image pixel in the PNGs (0: 3 for images of 32 px or less, else 1)
    int64_t batch = 64;
    int threads = 0;
    std::string precision = "fp32";  // fp32 | bf16 (the convolutions' and attention's products)

    template <class Self, class Visit> static void fields(Self& c, Visit&& v) {
        v(Field{.flag = "--checkpoint", .help = "a .safetensors checkpoint or model file (ddpm export)"}, c.checkpoint);
        v(Field{}, c.diffusion);
        v(Field{.flag = "--sampler", .help = "ddpm (ancestral) | ddim | dpmpp2m (DPM-Solver++(2M)) | heun (Karras et al. 2022)",
                .choices = "ddpm|ddim|dpmpp2m|heun"},
          c.spec.sampler);
        v(Field{.flag = "--steps", .help = "model calls (0: 50 for ddim, 20 for dpmpp2m and heun, T for ddpm)"}, c.spec.steps);
        v(Field{.flag = "--spacing", .help = "ddim timesteps: ddim (from 0) | trailing (ending at T-1)",
                .choices = "ddim|trailing"},
          c.spec.spacing);
        v(Field{.flag = "--eta", .help = "noise of ddim and dpmpp2m: 0 deterministic (the ODE), 1 like DDPM (the SDE)"}, c.spec.eta);
        v(Field{.flag = "--num", .help = "number of images (with --class all: of each class)"}, c.num);
        v(Field{.flag = "--class", .help = "class-conditional models: a class name or number, or all (one grid row per class)"},
          c.class_name);
        v(Field{.flag = "--guidance", .help = "classifier-free guidance W: eps = (1 + W) eps(x, class) - W eps(x, no class); "
                                              "0 the plain conditional model", .min = 0, .max = 100},
          c.spec.guidance);
        v(Field{.flag = "--guidance-interval", .help = "T_MIN T_MAX: guide only at timesteps in [T_MIN, T_MAX] of the chain "
                                                       "(Kynkaanniemi et al. 2024); default the whole chain"},
          c.spec.guidance_interval);
        v(Field{.flag = "--batch", .help = "images per model call"}, c.batch);
        v(Field{.flag = "--seed", .help = "seed"}, c.seed);
        v(Field{.flag = "--ema,!--no-ema", .help = "use the EMA weights (default) or the raw ones"}, c.ema);
        v(Field{.flag = "--out", .help = "output prefix: OUT.png, OUT.npy (and with --class OUT_labels.npy)"}, c.out);
        v(Field{.flag = "--strip", .help = "also write OUT_strip.png, x_t at evenly spaced t for 8 samples"}, c.strip);
        v(Field{.flag = "--scale", .help = "each pixel as a KxK block in the PNGs (0: 3 for images of 32 px or less)",
                .min = 0, .max = 64},
          c.scale);
        v(Field{.flag = "--threads", .help = "threads (0: all cores)"}, c.threads);
        v(Field{.flag = "--precision", .help = "fp32 | bf16: the convolutions' and attention's products in bfloat16 (AVX512_BF16), all else fp32", .choices = "fp32|bf16"}, c.precision);
    }
};
int run_sample(const SampleCommand& c);

struct EvalCommand {
    std::string checkpoint;    // a checkpoint or a model file
    DiffusionFlags diffusion;
    std::string data;          // default: the data the model was trained on
    int64_t num = 64;          // test images
    int64_t timesteps = 0;     // 0: the full bound over all T; K: the unbiased K-sample estimate
    int64_t batch = 64;
    uint64_t seed = 0;
    bool ema = true;
    std::string out = "eval";  // OUT_terms.csv, OUT_terms.png
    std::string clip_denoised = "on";  // clip x0_hat to [-1, 1] inside the bound, as improved-diffusion's likelihood script
    std::string images = "first";      // the first N test images, or N drawn by the seed
    int threads = 0;
    std::string precision = "fp32";  // fp32 | bf16 (the convolutions' and attention's products)

    template <class Self, class Visit> static void fields(Self& c, Visit&& v) {
        v(Field{.flag = "--checkpoint", .help = "a .safetensors checkpoint or model file (ddpm export)"}, c.checkpoint);
        v(Field{}, c.diffusion);
        v(Field{.flag = "--data", .help = "test data (default: what the model was trained on)"}, c.data);
        v(Field{.flag = "--num", .help = "test images"}, c.num);
        v(Field{.flag = "--timesteps", .help = "0: the full bound over all T; K: unbiased estimate from K timesteps"},
          c.timesteps);
        v(Field{.flag = "--batch", .help = "images per model call"}, c.batch);
        v(Field{.flag = "--seed", .help = "seed"}, c.seed);
        v(Field{.flag = "--ema,!--no-ema", .help = "use the EMA weights (default) or the raw ones"}, c.ema);
        v(Field{.flag = "--out", .help = "output prefix: OUT_terms.csv, OUT_terms.png"}, c.out);
        v(Field{.flag = "--clip-denoised", .help = "clip the predicted x_0 to [-1, 1] in the bound's terms (as improved-diffusion)",
                .choices = "on|off"},
          c.clip_denoised);
        v(Field{.flag = "--images", .help = "first: the first N test images; random: N drawn by --seed", .choices = "first|random"},
          c.images);
        v(Field{.flag = "--threads", .help = "threads (0: all cores)"}, c.threads);
        v(Field{.flag = "--precision", .help = "fp32 | bf16: the convolutions' and attention's products in bfloat16 (AVX512_BF16), all else fp32", .choices = "fp32|bf16"}, c.precision);
    }
};
int run_eval(const EvalCommand& c);

// `ddpm export`: a checkpoint's EMA (or raw) weights and its U-Net config, without the
// training state, as a model file (nn/checkpoint.h) that info, sample and eval read,
// and that bench/torch_convert.py turns into a PyTorch state dict.
struct ExportCommand {
    std::string checkpoint, out;
    bool raw = false;
    template <class Self, class Visit> static void fields(Self& c, Visit&& v) {
        v(Field{.flag = "--checkpoint", .help = "a .safetensors training checkpoint"}, c.checkpoint);
        v(Field{.flag = "--out", .help = "the model file to write (.safetensors)"}, c.out);
        v(Field{.flag = "--raw", .help = "export the raw weights instead of the EMA weights"}, c.raw);
    }
};
int run_export(const ExportCommand& c);

// `ddpm bench`: medians over `steps` timed steps (after warm-up) of a training
// step (forward, L_simple, backward, clip, Adam, EMA), a no-grad forward and one
// DDIM step of the batch; peak RSS; GFLOP/s; tensor buffers taken from the system per step.
struct BenchCommand {
    std::string config = "small";
    int64_t batch = 64;
    int threads = 0;
    std::string precision = "fp32";  // fp32 | bf16 (the convolutions' and attention's products)
    int64_t steps = 10;
    bool profile = false;  // also print the per-op time table

    template <class Self, class Visit> static void fields(Self& c, Visit&& v) {
        v(Field{.flag = "--config", .help = "tiny | mini | small | cifar10 | FILE.json"}, c.config);
        v(Field{.flag = "--batch", .help = "batch size"}, c.batch);
        v(Field{.flag = "--threads", .help = "threads (0: all cores)"}, c.threads);
        v(Field{.flag = "--precision", .help = "fp32 | bf16: the convolutions' and attention's products in bfloat16 (AVX512_BF16), all else fp32", .choices = "fp32|bf16"}, c.precision);
        v(Field{.flag = "--steps", .help = "timed steps (after two warm-up steps)"}, c.steps);
        v(Field{.flag = "--profile", .help = "also print the per-op time of one training step"}, c.profile);
    }
};
int run_bench(const BenchCommand& c);

// A config name/file or a checkpoint: the layer table and the parameter count.
int run_info(const std::string& what);

}  // namespace ddpm
