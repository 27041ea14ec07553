// Data-parallel training with Open MPI: `mpirun -np 2 ddpm train` against one process.
// Skipped when the build has no MPI or there is no mpirun.
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "app/run.h"
#include "helpers.h"
#include "nn/checkpoint.h"

using namespace ddpm;
namespace fs = std::filesystem;

#ifdef DDPM_MPIRUN
constexpr bool kHaveMpi = true;
#else
#define DDPM_MPIRUN ""
constexpr bool kHaveMpi = false;
#endif

namespace {
struct Run {
    int code;
    std::string out;
};
// Runs a shell command line, output (stdout and stderr) captured.
Run shell(const std::string& cmd, const fs::path& log) {
    const int status = std::system((cmd + " >" + log.string() + " 2>&1").c_str());
    std::ifstream in(log);
    std::stringstream ss;
    ss << in.rdbuf();
    return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, ss.str()};
}
std::string mpirun(int ranks) {
    // Root in a container is normal here; --oversubscribe lets 2 ranks share fewer cores.
    // Under the sanitizer build, Open MPI 4.1's own allocations (in plugins it unloads
    // at MPI_Finalize, so no suppression can name them) are not leak-checked; our code
    // is, by every other test.
    return fmt::format("LSAN_OPTIONS=detect_leaks=0 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 {} --oversubscribe -np {} ",
                       DDPM_MPIRUN, ranks);
}
std::string dataset(const fs::path& dir) {
    std::string b;
    for (uint32_t v : {0x803u, 48u, 28u, 28u})
        for (int s = 24; s >= 0; s -= 8) b += static_cast<char>((v >> s) & 0xff);
    for (int i = 0; i < 48 * 784; ++i) b += static_cast<char>((i * 131 + i / 784 * 7) % 256);
    std::ofstream(dir / "train-images-idx3-ubyte", std::ios::binary) << b;
    return "mnist:" + dir.string();
}
std::vector<double> losses(const fs::path& csv) {
    std::ifstream in(csv);
    std::string line;
    std::getline(in, line);
    std::vector<double> out;
    while (std::getline(in, line)) out.push_back(std::stod(line.substr(line.find(',') + 1)));
    return out;
}
}  // namespace

TEST_CASE("mpirun -np 2 matches one process up to summation order, rank 0 alone writes, resume works" *
          doctest::skip(!kHaveMpi)) {
    const fs::path root = test::fresh_dir("ddpm_mpi", "dp");
    const std::string data = dataset(root);
    const std::string flags = " train --config tiny --data " + data +
                              " --batch 8 --diffusion-steps 50 --flip --sample-every 0 --sample-num 4 --final-samples 4 --sample-steps 2"
                              " --log-every 1 --lr 1e-3 --warmup 0 --ema 0.9";  // replicas compared after every step
    const std::string one = (root / "one").string(), two = (root / "two").string(), split = (root / "split").string();
    const std::string bin = std::string(DDPM_BINARY);
    Run r1 = shell(bin + flags + " --threads 2 --steps 8 --out " + one, root / "log1");
    REQUIRE_MESSAGE(r1.code == 0, r1.out);
    Run r2 = shell(mpirun(2) + bin + flags + " --threads 1 --steps 8 --out " + two, root / "log2");
    REQUIRE_MESSAGE(r2.code == 0, r2.out);
    INFO(r2.out);
    // The ranks compared a hash of their weights at every log step and at the end.
    CHECK(r2.out.find("2 ranks: weights identical on every rank after step 8") != std::string::npos);
    CHECK(r2.out.find("batch 8 over 2 ranks of 4") != std::string::npos);
    // Rank 0 alone printed and wrote: each line once, one row per step.
    auto count = [&](const std::string& what) {
        size_t n = 0;
        for (size_t at = r2.out.find(what); at != std::string::npos; at = r2.out.find(what, at + 1)) ++n;
        return n;
    };
    CHECK(count("training 'tiny'") == 1);
    CHECK(count("step 8/8") == 1);
    CHECK(count("done: 8 steps") == 1);
    const std::vector<double> l1 = losses(fs::path(one) / "metrics.csv"), l2 = losses(fs::path(two) / "metrics.csv");
    REQUIRE(l1.size() == 8);
    REQUIRE(l2.size() == 8);
    // Same global batches, timesteps and noise: the losses agree to float32 summation order.
    for (size_t i = 0; i < l1.size(); ++i) {
        INFO("step " << i + 1 << ": " << l1[i] << " vs " << l2[i]);
        CHECK(std::abs(l1[i] - l2[i]) <= 1e-5 * std::abs(l1[i]));
    }
    const SafeTensors a = load_safetensors(one + "/checkpoint_00000008.safetensors");
    const SafeTensors b = load_safetensors(two + "/checkpoint_00000008.safetensors");
    double worst = 0, scale = 0;
    for (size_t i = 0; i < a.tensors.size(); ++i) {
        if (a.tensors[i].first.rfind("model.", 0) != 0) continue;
        worst = std::max(worst, test::max_abs_diff(a.tensors[i].second, b.tensors[i].second));
        for (int64_t j = 0; j < a.tensors[i].second.numel(); ++j) scale = std::max(scale, std::abs(a.tensors[i].second.flat(j)));
    }
    MESSAGE(fmt::format("after 8 Adam steps (lr 1e-3): largest weight difference {:.3g}, largest weight {:.3g}", worst, scale));
    // Adam moves each weight by about lr per step; summation order changes it by far less.
    CHECK(worst <= 1e-5);

    // Resume under MPI: 4 + 4 steps equal 8 steps bit for bit (the same reduction order).
    REQUIRE(shell(mpirun(2) + bin + flags + " --threads 1 --steps 4 --out " + split, root / "log3").code == 0);
    Run r4 = shell(mpirun(2) + bin + " train --resume " + split + " --steps 8", root / "log4");
    REQUIRE_MESSAGE(r4.code == 0, r4.out);
    test::check_bit_identical(b, load_safetensors(split + "/checkpoint_00000008.safetensors"));
    CHECK(losses(fs::path(split) / "metrics.csv") == l2);

    // A batch that does not split evenly is refused on every rank, and mpirun stops.
    Run bad = shell(mpirun(2) + bin + " train --config tiny --data " + data + " --batch 7 --steps 1 --out " + (root / "bad").string(),
                    root / "log5");
    CHECK(bad.code != 0);
    CHECK(bad.out.find("--batch 7 does not split evenly over 2 ranks") != std::string::npos);
}
