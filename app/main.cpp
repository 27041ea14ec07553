// main.cpp: the `ddpm` command line (CLI11): train, sample, eval, info.
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <csignal>

#include "app/commands.h"
#include "app/distributed.h"
#include "app/train.h"

using namespace ddpm;

int main(int argc, char** argv) {
    Distributed& dist = Distributed::init(&argc, &argv);  // one rank unless started by mpirun
    // A file-size limit (ulimit -f) or a full disk is a write error we report, not a signal that kills us.
    std::signal(SIGXFSZ, SIG_IGN);
    CLI::App app{"ddpm: train, sample and evaluate DDPM diffusion models on the CPU"};
    app.require_subcommand(1);
    std::string command_line;
    for (int i = 0; i < argc; ++i) command_line += (i ? " " : "") + std::string(argv[i]);

    TrainOptions tr;
    tr.command_line = command_line;
    auto* train = app.add_subcommand("train", "train the U-Net (DDPM recipe of shared/reference/unet.md by default)");
    train->add_option("--config", tr.config, "tiny | small | cifar10 | FILE.json")->capture_default_str();
    train->add_option("--data", tr.data, "fashion-mnist[:DIR] | mnist:DIR | cifar10:DIR | images:DIR")->capture_default_str();
    train->add_option("--out", tr.out, "run folder (default runs/<config>-<date>-<time>)");
    train->add_option("--resume", tr.resume, "continue the run in this folder from its last checkpoint");
    train->add_option("--steps", tr.steps, "stop after this many steps (0: no limit)")->capture_default_str();
    train->add_option("--minutes", tr.minutes, "time budget: stop, checkpoint and sample when it runs out")->capture_default_str();
    train->add_option("--batch", tr.batch, "images per step")->capture_default_str();
    train->add_option("--lr", tr.lr, "Adam learning rate")->capture_default_str();
    train->add_option("--warmup", tr.warmup, "linear learning-rate warm-up steps")->capture_default_str();
    train->add_option("--ema", tr.ema, "EMA decay of the weights")->capture_default_str();
    train->add_option("--grad-clip", tr.grad_clip, "clip the global gradient norm at this value")->capture_default_str();
    train->add_option("--loss", tr.diffusion.loss, "simple (L_simple, fixed-large variance) | hybrid (learned variance)")
        ->check(CLI::IsMember({"simple", "hybrid"}))->capture_default_str();
    train->add_option("--schedule", tr.diffusion.schedule, "noise schedule: linear | cosine")
        ->check(CLI::IsMember({"linear", "cosine"}))->capture_default_str();
    train->add_option("--diffusion-steps", tr.diffusion.T, "T, the length of the diffusion")->check(CLI::Range(2, 100000))->capture_default_str();
    train->add_option("--timestep-sampler", tr.timestep_sampler, "uniform | importance")
        ->check(CLI::IsMember({"uniform", "importance"}))->capture_default_str();
    train->add_flag("--flip", tr.flip, "random horizontal flips");
    train->add_option("--seed", tr.seed, "seed of every random stream")->capture_default_str();
    train->add_option("--threads", tr.threads, "threads (0: all cores)")->capture_default_str();
    train->add_option("--sample-every", tr.sample_every, "write an EMA sample grid every N steps (0: never)")->capture_default_str();
    train->add_option("--ckpt-every", tr.ckpt_every, "checkpoint every N steps (0: only at the end)")->capture_default_str();
    train->add_option("--log-every", tr.log_every, "log line and loss.png every N steps")->capture_default_str();
    train->add_option("--keep", tr.keep_checkpoints, "checkpoints kept in the run folder")->capture_default_str();
    train->add_option("--sample-num", tr.sample_num, "images in the grids written while training")->capture_default_str();
    train->add_option("--final-samples", tr.final_samples, "images in the grid written at the end (0: none)")
        ->check(CLI::Range(0, 4096))->capture_default_str();
    train->add_option("--sample-steps", tr.sample_steps, "sampling steps for those grids")->capture_default_str();
    train->add_option("--sample-sampler", tr.sample_sampler, "sampler for those grids: ddpm (respaced ancestral) | ddim")
        ->check(CLI::IsMember({"ddpm", "ddim"}))->capture_default_str();
    train->add_flag("--skip-nonfinite", tr.skip_nonfinite, "skip a step with a NaN/Inf loss or gradient instead of stopping");

    SampleCommand sc;
    auto* sample = app.add_subcommand("sample", "draw images from a checkpoint: a PNG grid and an .npy array in [-1, 1]");
    sample->add_option("--checkpoint", sc.checkpoint, "a .safetensors checkpoint")->required();
    sample->add_option("--sampler", sc.sampler, "ddpm (ancestral) | ddim")->check(CLI::IsMember({"ddpm", "ddim"}))->capture_default_str();
    sample->add_option("--steps", sc.steps, "steps (0: 50 for ddim, T for ddpm)")->capture_default_str();
    sample->add_option("--spacing", sc.spacing, "ddim timesteps: ddim (from 0) | trailing (ending at T-1)")
        ->check(CLI::IsMember({"ddim", "trailing"}));
    sample->add_option("--eta", sc.eta, "DDIM noise: 0 deterministic, 1 like DDPM")->capture_default_str();
    sample->add_option("--num", sc.num, "number of images")->capture_default_str();
    sample->add_option("--batch", sc.batch, "images per model call")->capture_default_str();
    sample->add_option("--seed", sc.seed, "seed")->capture_default_str();
    sample->add_flag("--ema,!--no-ema", sc.ema, "use the EMA weights (default) or the raw ones");
    sample->add_option("--out", sc.out, "output prefix: OUT.png, OUT.npy")->capture_default_str();
    sample->add_flag("--strip", sc.strip, "also write OUT_strip.png, x_t at evenly spaced t for 8 samples");
    sample->add_option("--threads", sc.threads, "threads (0: all cores)");

    EvalCommand ec;
    auto* eval = app.add_subcommand("eval", "test-set negative log-likelihood (bits/dim) and L_simple");
    eval->add_option("--checkpoint", ec.checkpoint, "a .safetensors checkpoint")->required();
    eval->add_option("--data", ec.data, "test data (default: what the model was trained on)");
    eval->add_option("--num", ec.num, "test images")->capture_default_str();
    eval->add_option("--timesteps", ec.timesteps, "0: the full bound over all T; K: unbiased estimate from K timesteps")->capture_default_str();
    eval->add_option("--batch", ec.batch, "images per model call")->capture_default_str();
    eval->add_option("--seed", ec.seed, "seed")->capture_default_str();
    eval->add_flag("--ema,!--no-ema", ec.ema, "use the EMA weights (default) or the raw ones");
    eval->add_option("--out", ec.out, "output prefix: OUT_terms.csv, OUT_terms.png")->capture_default_str();
    eval->add_option("--threads", ec.threads, "threads (0: all cores)");

    BenchCommand bc;
    auto* bench = app.add_subcommand("bench", "time a training step, a forward pass and a DDIM step; print JSON");
    bench->add_option("--config", bc.config, "tiny | small | cifar10 | FILE.json")->capture_default_str();
    bench->add_option("--batch", bc.batch, "batch size")->capture_default_str();
    bench->add_option("--threads", bc.threads, "threads (0: all cores)")->capture_default_str();
    bench->add_option("--steps", bc.steps, "timed steps (after two warm-up steps)")->capture_default_str();
    bench->add_flag("--profile", bc.profile, "also print the per-op time of one training step");

    std::string what = "small";
    auto* info = app.add_subcommand("info", "layer table: output shapes, parameters and FLOPs per image");
    info->add_option("what", what, "a config (tiny, small, cifar10, FILE.json) or a checkpoint")->capture_default_str();

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        if (e.get_exit_code() == 0) return app.exit(e);
        fmt::print(stderr, "ddpm: error: {} (see ddpm {}--help)\n", e.what(),
                   app.get_subcommands().empty() ? "" : app.get_subcommands()[0]->get_name() + " ");
        return 2;
    }
    try {
        if (dist.active() && !*train && !*bench)  // the others would write the same files from every rank
            throw std::invalid_argument("only `ddpm train` and `ddpm bench` run under mpirun");
        if (*train) return run_train(tr);
        if (*sample) return run_sample(sc);
        if (*eval) return run_eval(ec);
        if (*info) return run_info(what);
        if (*bench) return run_bench(bc);
    } catch (const std::exception& e) {
        if (dist.active()) {  // the other ranks would wait for this one forever
            fmt::print(stderr, "ddpm: error (rank {} of {}): {}\n", dist.rank(), dist.size(), e.what());
            std::fflush(stderr);
            dist.abort(1);
        }
        fmt::print(stderr, "ddpm: error: {}\n", e.what());
        return 1;
    }
    return 0;
}
