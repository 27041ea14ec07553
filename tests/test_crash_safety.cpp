// Crash safety of `ddpm train`: SIGKILL at random moments (checkpoint writes included)
// and resume, an unwritable run folder, a full disk (a file-size limit stands in for it).
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include "app/run.h"
#include "helpers.h"
#include "nn/checkpoint.h"

using namespace ddpm;
namespace fs = std::filesystem;

namespace {
// In a forked child, before exec: standard output and error go to the file `log`.
// Only system calls here: stdio would write out the parent's unflushed buffer a
// second time, and the child of a threaded process may not call malloc.
void redirect_output(const char* log) {
    const int fd = ::open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) ::_exit(126);
    ::dup2(fd, STDOUT_FILENO);
    ::dup2(fd, STDERR_FILENO);
    ::close(fd);
}

// Starts `ddpm ARGS...` with its output in log; returns the child's pid.
pid_t spawn_ddpm(const std::vector<std::string>& args, const std::string& log) {
    std::vector<char*> argv{const_cast<char*>(DDPM_BINARY)};  // built before the fork, for the same reason
    for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        redirect_output(log.c_str());
        ::execv(DDPM_BINARY, argv.data());
        ::_exit(127);
    }
    return pid;
}

int wait_exit(pid_t pid) {
    int status = 0;
    ::waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

std::string slurp(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

// A 64-image IDX file, so that each start of the trainer is quick.
std::string small_dataset(const fs::path& dir) {
    std::string b;
    for (uint32_t v : {0x803u, 64u, 28u, 28u})
        for (int s = 24; s >= 0; s -= 8) b += static_cast<char>((v >> s) & 0xff);
    for (int i = 0; i < 64 * 784; ++i) b += static_cast<char>((i * 37 + i / 784) % 256);
    std::ofstream(dir / "train-images-idx3-ubyte", std::ios::binary) << b;
    return "mnist:" + dir.string();
}

std::vector<std::string> train_args(const std::string& data, const std::string& out, int64_t steps) {
    return {"train", "--config", "tiny", "--data", data, "--batch", "4", "--diffusion-steps", "50", "--threads", "1",
            "--ckpt-every", "1", "--keep", "2", "--sample-every", "0", "--sample-num", "4", "--final-samples", "4", "--sample-steps", "2",
            "--log-every", "5", "--steps", std::to_string(steps), "--out", out};
}

// The loss column of metrics.csv, one row per step.
std::vector<std::string> loss_rows(const fs::path& csv) {
    std::vector<std::string> rows;
    std::istringstream in(slurp(csv));
    std::string line;
    std::getline(in, line);
    while (std::getline(in, line)) {
        const size_t second = line.find(',', line.find(',') + 1);
        rows.push_back(line.substr(0, second));
    }
    return rows;
}

// Polls `done` every millisecond until it holds, for at most a minute or until the
// child `pid` has ended (it is not reaped here).
template <class Done>
void wait_for(pid_t pid, Done done) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(1);
    while (!done() && std::chrono::steady_clock::now() < deadline) {
        siginfo_t info{};
        if (::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT) == 0 && info.si_pid == pid) return;
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
}

bool has_temporaries(const fs::path& dir) {
    for (auto& e : fs::directory_iterator(dir))
        if (e.path().filename().string().find(".tmp.") != std::string::npos) return true;
    return false;
}
}  // namespace

TEST_CASE("SIGKILL at 20 random moments: every resume works, no file is corrupt, the weights end as if never killed") {
    const fs::path root = test::fresh_dir("ddpm_crash", "kill");
    const std::string data = small_dataset(root);
    const std::string run = (root / "run").string(), ref = (root / "ref").string();
    std::mt19937 rng(2026);  // fixed, so that a failure replays
    std::uniform_int_distribution<int> delay_ms(0, 300);
    int kills = 0, during_write = 0, before_first = 0, launches = 0;
    while (kills < 20) {
        const std::vector<std::string> before = list_checkpoints(run);
        std::vector<std::string> args = !before.empty() ? std::vector<std::string>{"train", "--resume", run, "--steps", "100000"}
                                                        : train_args(data, run, 100000);
        const pid_t pid = spawn_ddpm(args, (root / fmt::format("log{}", launches++)).string());
        // When each kill lands is set by what the run has done, not by the clock alone, so
        // that a slow build (the sanitizers) or a busy machine kills at the same kinds of
        // moments: the first launch at once (before any checkpoint); even launches at a
        // random time and then as soon as a checkpoint's temporary file appears (inside
        // write, fsync or rename); launches 3, 7, 11, ... at a random time (start-up and
        // restore included); launches 5, 9, 13, ... at a random time after a new
        // checkpoint is whole, so that the run always gets on.
        if (launches % 4 == 1 && launches > 1)
            wait_for(pid, [&] {
                const std::vector<std::string> now = list_checkpoints(run);
                return !now.empty() && (before.empty() || now.back() > before.back());
            });
        std::this_thread::sleep_for(std::chrono::milliseconds(launches == 1 ? 20 : delay_ms(rng)));
        if (launches % 2 == 0) wait_for(pid, [&] { return fs::exists(run) && has_temporaries(run); });
        ::kill(pid, SIGKILL);
        const int code = wait_exit(pid);
        INFO("launch " << launches << " log: " << slurp(root / fmt::format("log{}", launches - 1)));
        REQUIRE(code == 128 + SIGKILL);  // it was still running: killed, not failed
        ++kills;
        if (!fs::exists(run)) continue;
        during_write += has_temporaries(run);
        before_first += list_checkpoints(run).empty();
        // Every checkpoint on disk is whole: it parses and restores its config.
        for (const std::string& c : list_checkpoints(run)) {
            INFO("after kill " << kills << ": " << c);
            CHECK_NOTHROW(checkpoint_config(load_safetensors(c), c));
        }
    }
    REQUIRE(!list_checkpoints(run).empty());
    const std::string last = list_checkpoints(run).back();
    const int64_t reached = std::stoll(load_safetensors(last).metadata.at("step"));
    const int64_t steps = reached + 5;
    MESSAGE(fmt::format("{} kills: {} left an interrupted write, {} came before the first checkpoint; step {} reached",
                        kills, during_write, before_first, reached));

    std::vector<std::string> finish = {"train", "--resume", run, "--steps", std::to_string(steps)};
    REQUIRE(wait_exit(spawn_ddpm(finish, (root / "log_finish").string())) == 0);
    REQUIRE(wait_exit(spawn_ddpm(train_args(data, ref, steps), (root / "log_ref").string())) == 0);
    CHECK(!has_temporaries(run));

    const std::string name = fmt::format("checkpoint_{:08d}.safetensors", steps);
    const SafeTensors a = load_safetensors(run + "/" + name), b = load_safetensors(ref + "/" + name);
    test::check_bit_identical(a, b);
    CHECK(a.metadata.at("rng") == b.metadata.at("rng"));
    CHECK(a.metadata.at("extra") == b.metadata.at("extra"));
    // The loss history has one row per step, equal to the uninterrupted run's.
    CHECK(loss_rows(fs::path(run) / "metrics.csv") == loss_rows(fs::path(ref) / "metrics.csv"));
    CHECK(loss_rows(fs::path(run) / "metrics.csv").size() == static_cast<size_t>(steps));
}

TEST_CASE("an unwritable run folder or a full disk: a clear error, the previous checkpoint intact") {
    const fs::path root = test::fresh_dir("ddpm_crash", "disk");
    const std::string data = small_dataset(root);
    // A run folder under a regular file cannot be created (root ignores permissions, not this).
    std::ofstream(root / "a_file") << "x";
    const std::string bad_out = (root / "a_file" / "run").string();
    REQUIRE(wait_exit(spawn_ddpm(train_args(data, bad_out, 2), (root / "log_bad").string())) == 1);
    const std::string bad_log = slurp(root / "log_bad");
    CHECK(bad_log.find("ddpm: error:") != std::string::npos);
    CHECK(bad_log.find(bad_out) != std::string::npos);

    // Two steps and a checkpoint, then a resume whose next checkpoint does not fit: the
    // file-size limit (ulimit -f, 1 MiB) makes every large write fail like a full disk.
    const std::string run = (root / "run").string();
    REQUIRE(wait_exit(spawn_ddpm(train_args(data, run, 2), (root / "log1").string())) == 0);
    const std::string ckpt = list_checkpoints(run).back();
    const std::string before = slurp(ckpt);
    const std::string log2 = (root / "log2").string();
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        rlimit lim{1 << 20, 1 << 20};
        ::setrlimit(RLIMIT_FSIZE, &lim);
        redirect_output(log2.c_str());
        ::execl(DDPM_BINARY, DDPM_BINARY, "train", "--resume", run.c_str(), "--steps", "4", static_cast<char*>(nullptr));
        ::_exit(127);
    }
    CHECK(wait_exit(pid) == 1);
    const std::string log = slurp(log2);
    INFO(log);
    CHECK(log.find("ddpm: error:") != std::string::npos);
    CHECK(log.find("File too large") != std::string::npos);
    CHECK(log.find("the previous file is untouched") != std::string::npos);
    CHECK(slurp(ckpt) == before);
    CHECK(list_checkpoints(run).back() == ckpt);
    CHECK(!has_temporaries(run));
    // And the run goes on once there is room again.
    CHECK(wait_exit(spawn_ddpm({"train", "--resume", run, "--steps", "4"}, (root / "log3").string())) == 0);
}
