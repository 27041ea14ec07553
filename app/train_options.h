// train_options.h: every option of `ddpm train`, listed once (util/fields.h) for the
// command line and for the run folder's train.json.
#pragma once

#include <string>

#include "app/run.h"
#include "util/fields.h"

namespace ddpm {

struct TrainOptions {
    std::string config = "small";          // tiny | mini | small | cifar10 | FILE.json
    std::string data = "fashion-mnist";    // see data.h
    std::string out;                       // run folder; default runs/<config>-<time>
    std::string resume;                    // a run folder to continue
    int64_t steps = 0;                     // stop after this many steps (0: no limit)
    double minutes = 0;                    // stop after this much training time (0: no limit)
    int64_t batch = 64;
    double lr = 2e-4;
    double adam_beta2 = 0.999;  // Adam's second-moment decay (0.99: a shorter memory for short runs)
    int64_t warmup = 5000;
    std::string lr_schedule = "constant";  // constant | cosine (to 0 at the end of the step or time budget)
    double ema = 0.9999;
    double ema_sigma_rel = 0;   // > 0: the power-function EMA of this relative width instead of --ema
    double min_snr_gamma = 0;   // > 0: min-SNR-gamma loss weighting
    bool class_cond = false;    // a class-conditional model (num_classes from the data's labels)
    bool scale_shift_norm = false;  // the config's scale_shift_norm on, whatever the config says
    double label_dropout = 0.1; // the share of labels dropped to "no class" (classifier-free guidance)
    double grad_clip = 1.0;
    DiffusionSettings diffusion;
    std::string timestep_sampler = "uniform";  // uniform | importance | stratified
    bool flip = false;
    uint64_t seed = 0;
    int threads = 0;
    std::string precision = "fp32";  // fp32 | bf16: the convolutions' and attention's products (a run-time choice, as threads)
    int64_t sample_every = 1000, ckpt_every = 1000, log_every = 50, keep_checkpoints = 3;
    int64_t sample_num = 36, sample_steps = 100;  // grids while training and at the end
    int64_t final_samples = 64;                   // the grid at the end of the run (0: none)
    std::string sample_sampler = "ddpm";          // ddpm (ancestral, respaced) | ddim (eta 0)
    int64_t fid_every = 0, fid_num = 1000;        // FID (ours) of fid_num EMA samples every N steps (0: never)
    std::string fid_features;                     // `ddpm fid`'s cached classifier (default runs/fid_<data>.safetensors)
    bool skip_nonfinite = false;  // skip a step with a non-finite loss or gradient instead of stopping
    std::string command_line;

    template <class Self, class Visit> static void fields(Self& o, Visit&& v) {
        v(Field{.key = "config", .flag = "--config", .help = "tiny | mini | small | cifar10 | FILE.json"}, o.config);
        v(Field{.key = "data", .flag = "--data", .help = "fashion-mnist[:DIR] | mnist:DIR | cifar10:DIR | images:DIR"}, o.data);
        v(Field{.key = "out", .flag = "--out", .help = "run folder (default runs/<config>-<date>-<time>)"}, o.out);
        v(Field{.flag = "--resume", .help = "continue the run in this folder from its last checkpoint"}, o.resume);
        v(Field{.key = "steps", .flag = "--steps", .help = "stop after this many steps (0: no limit)"}, o.steps);
        v(Field{.key = "minutes", .flag = "--minutes", .help = "time budget: stop, checkpoint and sample when it runs out"},
          o.minutes);
        v(Field{.key = "batch", .flag = "--batch", .help = "images per step"}, o.batch);
        v(Field{.key = "lr", .flag = "--lr", .help = "Adam learning rate"}, o.lr);
        v(Field{.key = "adam_beta2", .flag = "--adam-beta2",
                .help = "Adam's second-moment decay beta2 (0.999 as Kingma & Ba; 0.99 remembers ~100 steps)", .min = 0,
                .max = 0.999999, .optional = true},
          o.adam_beta2);
        v(Field{.key = "warmup", .flag = "--warmup", .help = "linear learning-rate warm-up steps"}, o.warmup);
        v(Field{.key = "lr_schedule", .flag = "--lr-schedule",
                .help = "constant | cosine: after the warm-up, decay to 0 at the end of --steps or --minutes",
                .choices = "constant|cosine", .optional = true},
          o.lr_schedule);
        v(Field{.key = "ema", .flag = "--ema", .help = "EMA decay of the weights"}, o.ema);
        v(Field{.key = "ema_sigma_rel", .flag = "--ema-sigma-rel",
                .help = "instead of --ema: Karras et al. 2024's power-function EMA averaging this share of training (0: off)",
                .min = 0, .max = 0.28, .optional = true},
          o.ema_sigma_rel);
        v(Field{.key = "min_snr_gamma", .flag = "--min-snr-gamma",
                .help = "weight each timestep's loss by min(SNR, gamma) (Hang et al. 2023; 0: off, 5 is theirs)", .min = 0,
                .max = 1e6, .optional = true},
          o.min_snr_gamma);
        v(Field{.key = "class_cond", .flag = "--class-cond",
                .help = "condition on the data's class labels (a class embedding; sample with --class and --guidance)",
                .optional = true},
          o.class_cond);
        v(Field{.key = "scale_shift_norm", .flag = "--scale-shift-norm",
                .help = "the timestep scales and shifts each ResBlock's second group norm (the config's scale_shift_norm)",
                .optional = true},
          o.scale_shift_norm);
        v(Field{.key = "label_dropout", .flag = "--label-dropout",
                .help = "class-conditional: the share of labels replaced by \"no class\" (classifier-free guidance)",
                .min = 0, .max = 1, .optional = true},
          o.label_dropout);
        v(Field{.key = "grad_clip", .flag = "--grad-clip", .help = "clip the global gradient norm at this value"}, o.grad_clip);
        v(Field{.key = "diffusion"}, o.diffusion);
        v(Field{.key = "timestep_sampler", .flag = "--timestep-sampler", .help = "uniform | importance | stratified (one t in each 1/B of [0, T): less variance)",
                .choices = "uniform|importance|stratified"},
          o.timestep_sampler);
        v(Field{.key = "flip", .flag = "--flip", .help = "random horizontal flips"}, o.flip);
        v(Field{.key = "seed", .flag = "--seed", .help = "seed of every random stream"}, o.seed);
        v(Field{.key = "threads", .flag = "--threads", .help = "threads (0: all cores)"}, o.threads);
        v(Field{.key = "precision", .flag = "--precision",
                .help = "fp32 | bf16: the convolutions' and attention's products in bfloat16 (AVX512_BF16), all else fp32; "
                        "checkpoints are fp32 either way",
                .choices = "fp32|bf16", .optional = true},
          o.precision);
        v(Field{.key = "sample_every", .flag = "--sample-every", .help = "write an EMA sample grid every N steps (0: never)"},
          o.sample_every);
        v(Field{.key = "ckpt_every", .flag = "--ckpt-every", .help = "checkpoint every N steps (0: only at the end)"},
          o.ckpt_every);
        v(Field{.key = "log_every", .flag = "--log-every", .help = "log line and loss.png every N steps"}, o.log_every);
        v(Field{.key = "keep_checkpoints", .flag = "--keep", .help = "checkpoints kept in the run folder"}, o.keep_checkpoints);
        v(Field{.key = "sample_num", .flag = "--sample-num", .help = "images in the grids written while training"},
          o.sample_num);
        v(Field{.key = "final_samples", .flag = "--final-samples", .help = "images in the grid written at the end (0: none)",
                .min = 0, .max = 4096, .optional = true},
          o.final_samples);
        v(Field{.key = "sample_steps", .flag = "--sample-steps", .help = "sampling steps for those grids"}, o.sample_steps);
        v(Field{.key = "sample_sampler", .flag = "--sample-sampler",
                .help = "sampler for those grids: ddpm (respaced ancestral) | ddim", .choices = "ddpm|ddim", .optional = true},
          o.sample_sampler);
        v(Field{.key = "fid_every", .flag = "--fid-every",
                .help = "FID (ours) of --fid-num EMA samples (DPM-Solver++, 20 calls) every N steps, into metrics.csv and fid.png",
                .min = 0, .max = 1e12, .optional = true},
          o.fid_every);
        v(Field{.key = "fid_num", .flag = "--fid-num", .help = "samples per FID", .min = 2, .max = 100000, .optional = true},
          o.fid_num);
        v(Field{.key = "fid_features", .flag = "--fid-features",
                .help = "the classifier of `ddpm fid --train-features` (default runs/fid_<data>.safetensors)", .optional = true},
          o.fid_features);
        v(Field{.key = "skip_nonfinite", .flag = "--skip-nonfinite",
                .help = "skip a step with a NaN/Inf loss or gradient instead of stopping"},
          o.skip_nonfinite);
        v(Field{.key = "command_line", .optional = true}, o.command_line);
    }

    // Throws std::invalid_argument naming the first option out of its range.
    void validate() const;
    // A resumed run's own options (its train.json), with this call's new step or time
    // budget, thread count and command line.
    TrainOptions resumed() const;
};

}  // namespace ddpm
