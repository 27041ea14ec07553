// run.cpp
#include "app/run.h"
#include "tensor/gemm_kernels.h"
#include "util/file_io.h"

#include <cblas.h>
#include <fmt/format.h>
#include <omp.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <regex>

namespace ddpm {

namespace fs = std::filesystem;

ModelVarType DiffusionSettings::var_type() const {
    return loss == "hybrid" ? ModelVarType::LearnedRange : ModelVarType::FixedLarge;
}

GaussianDiffusion DiffusionSettings::make() const {
    return GaussianDiffusion(DiffusionSchedule::from_betas(make_betas(parse_schedule(schedule), T)), var_type(), {},
                             parse_mean_type(prediction));
}

nlohmann::json DiffusionSettings::to_json() const { return fields_to_json(*this); }

DiffusionSettings DiffusionSettings::from_json(const nlohmann::json& j) {
    DiffusionSettings s;
    fields_from_json(s, j, "diffusion");
    return s;
}

namespace {
// The diffusion a model file implies when it states none: the flags, else the spec's.
DiffusionSettings implied_diffusion(const UNetConfig& cfg, const DiffusionFlags& flags) {
    DiffusionSettings d;
    if (flags.T) d.T = flags.T;
    if (!flags.schedule.empty()) d.schedule = flags.schedule;
    d.loss = cfg.out_channels == 2 * cfg.in_channels ? "hybrid" : "simple";
    return d;
}

// A metadata field as JSON, or a FormatError naming it.
nlohmann::json metadata_json(const SafeTensors& st, const std::string& key, const std::string& path) {
    try {
        return nlohmann::json::parse(st.metadata.at(key));
    } catch (const nlohmann::json::exception& e) {
        throw FormatError(fmt::format("{}: __metadata__.{} is not valid JSON: {}", path, key, e.what()));
    }
}
}  // namespace

LoadedModel load_trained_model(const std::string& path, bool use_ema, const DiffusionFlags& flags) {
    return load_trained_model(load_safetensors(path), path, use_ema, flags);
}

LoadedModel load_trained_model(const SafeTensors& st, const std::string& path, bool use_ema, const DiffusionFlags& flags) {
    LoadedModel m;
    const UNetConfig cfg = checkpoint_config(st, path);  // refuse a file that is not ours before reading its extras
    const bool checkpoint = is_checkpoint(st);
    try {
        if (checkpoint) m.extra = metadata_json(st, "extra", path);
        m.diffusion = checkpoint                     ? DiffusionSettings::from_json(m.extra.at("diffusion"))
                      : st.metadata.count("diffusion") ? DiffusionSettings::from_json(metadata_json(st, "diffusion", path))
                                                       : implied_diffusion(cfg, flags);
        if (st.metadata.count("step")) m.step = std::stoll(st.metadata.at("step"));
    } catch (const FormatError&) {
        throw;
    } catch (const std::exception& e) {  // a missing or malformed field
        throw FormatError(fmt::format("{}: unusable {} metadata: {}", path, checkpoint ? "checkpoint" : "model file", e.what()));
    }
    if ((flags.T && flags.T != m.diffusion.T) || (!flags.schedule.empty() && flags.schedule != m.diffusion.schedule))
        throw std::invalid_argument(fmt::format("{} states its diffusion (T = {}, {}); --diffusion-steps/--schedule differ",
                                                path, m.diffusion.T, m.diffusion.schedule));
    if ((m.diffusion.loss == "hybrid") != (cfg.out_channels == 2 * cfg.in_channels))
        throw FormatError(fmt::format("{}: the loss '{}' does not fit a network of {} input and {} output channels "
                                      "(hybrid learns a variance: twice the input channels)",
                                      path, m.diffusion.loss, cfg.in_channels, cfg.out_channels));
    bool ema = false;
    m.model = load_model(st, path, use_ema, &ema);
    m.weights = ema ? "EMA" : checkpoint ? "raw" : st.metadata.count("weights") ? st.metadata.at("weights") : "the file's";
    m.model->eval();
    return m;
}

std::string checkpoint_path(const std::string& run_dir, int64_t step) {
    return (fs::path(run_dir) / fmt::format("checkpoint_{:08d}.safetensors", step)).string();
}

std::vector<std::string> list_checkpoints(const std::string& run_dir) {
    std::vector<std::string> out;
    if (!fs::is_directory(run_dir)) return out;
    const std::regex name("checkpoint_[0-9]{8}\\.safetensors");
    for (auto& e : fs::directory_iterator(run_dir))
        if (e.is_regular_file() && std::regex_match(e.path().filename().string(), name)) out.push_back(e.path().string());
    std::sort(out.begin(), out.end());
    return out;
}

void prune_checkpoints(const std::string& run_dir, size_t keep) {
    std::vector<std::string> all = list_checkpoints(run_dir);
    for (size_t i = 0; i + keep < all.size(); ++i) fs::remove(all[i]);
}

void wait_briefly_at_barriers(char** argv) {
    if (std::getenv("GOMP_SPINCOUNT") || std::getenv("OMP_WAIT_POLICY")) return;  // the user's choice stands
    setenv("GOMP_SPINCOUNT", "1000", 1);
    execv("/proc/self/exe", argv);  // returns only on failure: then carry on with the default
}

std::string blas_core_name() { return openblas_get_corename(); }

void warn_if_slow_blas() {
    const std::string core = blas_core_name();
    if (core == "Prescott" || core == "prescott")
        fmt::print(stderr,
                   "warning: OpenBLAS is using its generic '{}' kernels, several times slower than this CPU allows; "
                   "run `source scripts/openblas_env.sh` (sets OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE) first\n",
                   core);
}

int default_threads_per_rank() {
    const char* local = std::getenv("OMPI_COMM_WORLD_LOCAL_SIZE");  // ranks on this machine, under mpirun
    const int ranks_here = local ? std::max(1, std::atoi(local)) : 1;
    return ranks_here > 1 ? std::max(1, omp_get_num_procs() / ranks_here) : 0;
}

void set_precision(const std::string& precision) { set_gemm_precision(parse_precision(precision)); }

void set_threads(int threads) {
    if (threads <= 0) return;
    omp_set_num_threads(threads);
    openblas_set_num_threads(threads);
}

}  // namespace ddpm
