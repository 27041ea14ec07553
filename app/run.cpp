// run.cpp
#include "app/run.h"
#include "util/file_io.h"

#include <cblas.h>
#include <fmt/format.h>
#include <omp.h>

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
    return GaussianDiffusion(DiffusionSchedule::from_betas(make_betas(parse_schedule(schedule), T)), var_type());
}

nlohmann::json DiffusionSettings::to_json() const { return fields_to_json(*this); }

DiffusionSettings DiffusionSettings::from_json(const nlohmann::json& j) {
    DiffusionSettings s;
    fields_from_json(s, j, "diffusion");
    return s;
}

LoadedModel load_trained_model(const std::string& checkpoint, bool use_ema) {
    SafeTensors st = load_safetensors(checkpoint);
    LoadedModel m;
    checkpoint_config(st, checkpoint);  // refuse a file that is not ours before reading its extras
    try {
        m.extra = nlohmann::json::parse(st.metadata.at("extra"));
        m.diffusion = DiffusionSettings::from_json(m.extra.at("diffusion"));
        m.step = std::stoll(st.metadata.at("step"));
    } catch (const std::exception& e) {
        throw FormatError(fmt::format("{}: no usable training metadata ({})", checkpoint, e.what()));
    }
    m.model = load_model(st, checkpoint, use_ema, &m.ema);
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

void warn_if_slow_blas() {
    const std::string core = openblas_get_corename();
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

void set_threads(int threads) {
    if (threads <= 0) return;
    omp_set_num_threads(threads);
    openblas_set_num_threads(threads);
}

}  // namespace ddpm
