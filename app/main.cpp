// main.cpp: the `ddpm` command line (CLI11): train, sample, eval, bench, info, export. Each
// command's flags come from its options' field list (train_options.h, commands.h).
#include <fmt/format.h>

#include <csignal>

#include "app/cli.h"
#include "app/commands.h"
#include "app/distributed.h"
#include "app/fid.h"
#include "app/run.h"
#include "app/train.h"

using namespace ddpm;

int main(int argc, char** argv) {
    wait_briefly_at_barriers(argv);
    Distributed& dist = Distributed::init(&argc, &argv);  // one rank unless started by mpirun
    // A file-size limit (ulimit -f) or a full disk is a write error we report, not a signal that kills us.
    std::signal(SIGXFSZ, SIG_IGN);
    CLI::App app{"ddpm: train, sample and evaluate DDPM diffusion models on the CPU"};
    app.require_subcommand(1);
    TrainOptions tr;
    for (int i = 0; i < argc; ++i) tr.command_line += (i ? " " : "") + std::string(argv[i]);
    SampleCommand sc;
    EvalCommand ec;
    BenchCommand bc;
    ExportCommand xc;
    FidCommand fc;
    std::string what = "small";
    auto* train = app.add_subcommand("train", "train the U-Net (the DDPM recipe of docs/unet.md by default)");
    auto* sample = app.add_subcommand("sample", "draw images from a checkpoint: a PNG grid and an .npy array in [-1, 1]");
    auto* eval = app.add_subcommand("eval", "test-set negative log-likelihood (bits/dim) and L_simple");
    auto* bench = app.add_subcommand("bench", "time a training step, a forward pass and a DDIM step; print JSON");
    auto* info = app.add_subcommand("info", "layer table: output shapes, parameters and FLOPs per image");
    auto* exp = app.add_subcommand("export", "write a checkpoint's EMA (or raw) weights and config as a model file");
    auto* fid = app.add_subcommand("fid", "sample quality: Fréchet distance in our own classifier's feature space");
    add_cli_options(train, tr);
    add_cli_options(sample, sc);
    add_cli_options(eval, ec);
    add_cli_options(bench, bc);
    add_cli_options(exp, xc);
    add_cli_options(fid, fc);
    sample->get_option("--checkpoint")->required();
    eval->get_option("--checkpoint")->required();
    exp->get_option("--checkpoint")->required();
    exp->get_option("--out")->required();
    info->add_option("what", what, "a config (tiny, mini, small, cifar10, FILE.json) or a checkpoint")->capture_default_str();

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
        if (*exp) return run_export(xc);
        if (*fid) return run_fid(fc);
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
