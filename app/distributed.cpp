// distributed.cpp
#include "app/distributed.h"

#include <fmt/format.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

#ifdef DDPM_HAVE_MPI
#define OMPI_SKIP_MPICXX 1  // the C API only: the deprecated C++ bindings need another library
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>
#endif

namespace ddpm {

namespace {
Distributed* g_instance = nullptr;

struct CommTimer {  // adds the wall time of one collective call to comm_seconds
    double& total;
    std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
    ~CommTimer() { total += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(); }
};

#ifdef DDPM_HAVE_MPI
void check_mpi(int rc, const char* what) {
    if (rc != MPI_SUCCESS) throw std::runtime_error(fmt::format("MPI: {} failed (error {})", what, rc));
}
#endif
}  // namespace

Distributed& Distributed::init(int* argc, char*** argv) {
    static Distributed d;
    g_instance = &d;
#ifdef DDPM_HAVE_MPI
    // Only under a launcher: a plain `ddpm train` must not need an MPI runtime at all.
    const bool launched = std::getenv("OMPI_COMM_WORLD_SIZE") || std::getenv("PMI_SIZE") || std::getenv("PMIX_RANK");
    if (launched && !d.initialised_) {
        int provided = 0;
        check_mpi(MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread");
        d.initialised_ = true;
        MPI_Comm_rank(MPI_COMM_WORLD, &d.rank_);
        MPI_Comm_size(MPI_COMM_WORLD, &d.size_);
    }
#else
    (void)argc, (void)argv;
#endif
    return d;
}

Distributed& Distributed::get() {
    if (!g_instance) return init(nullptr, nullptr);
    return *g_instance;
}

Distributed::~Distributed() {
#ifdef DDPM_HAVE_MPI
    if (initialised_) MPI_Finalize();
#endif
}

void Distributed::average_gradients(const Module::NamedParameters& params) {
    if (!active()) return;
    int64_t total = 0;
    for (const auto& [name, p] : params) total += p.numel();
    flat_.resize(static_cast<size_t>(total));  // allocates on the first call only
    float* f = flat_.data();
    for (const auto& [name, p] : params) {
        if (p.grad().defined()) {
            std::memcpy(f, p.grad().data<float>(), static_cast<size_t>(p.numel()) * sizeof(float));
        } else {
            std::memset(f, 0, static_cast<size_t>(p.numel()) * sizeof(float));
        }
        f += p.numel();
    }
#ifdef DDPM_HAVE_MPI
    {
        CommTimer timer{comm_seconds};
        check_mpi(MPI_Allreduce(MPI_IN_PLACE, flat_.data(), static_cast<int>(total), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD),
                  "MPI_Allreduce of the gradients");
    }
#endif
    const float scale = 1.0f / static_cast<float>(size_);
    f = flat_.data();
    for (const auto& [name, p] : params) {
        Variable v = p;
        if (!v.grad().defined()) v.set_grad(Tensor::zeros(v.shape()));
        Tensor g = v.grad();  // shares the gradient's storage
        float* dst = g.data<float>();
        for (int64_t i = 0; i < v.numel(); ++i) dst[i] = f[i] * scale;
        f += v.numel();
    }
}

void Distributed::allreduce_sum(double* values, int64_t n) {
    if (!active()) return;
#ifdef DDPM_HAVE_MPI
    CommTimer timer{comm_seconds};
    check_mpi(MPI_Allreduce(MPI_IN_PLACE, values, static_cast<int>(n), MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD), "MPI_Allreduce");
#endif
}

int64_t Distributed::allreduce_max(int64_t value) {
    if (!active()) return value;
#ifdef DDPM_HAVE_MPI
    CommTimer timer{comm_seconds};
    check_mpi(MPI_Allreduce(MPI_IN_PLACE, &value, 1, MPI_INT64_T, MPI_MAX, MPI_COMM_WORLD), "MPI_Allreduce");
#endif
    return value;
}

void Distributed::allgather(const float* local, int64_t n, float* all) {
    if (!active()) {
        std::memcpy(all, local, static_cast<size_t>(n) * sizeof(float));
        return;
    }
#ifdef DDPM_HAVE_MPI
    CommTimer timer{comm_seconds};
    check_mpi(MPI_Allgather(local, static_cast<int>(n), MPI_FLOAT, all, static_cast<int>(n), MPI_FLOAT, MPI_COMM_WORLD),
              "MPI_Allgather");
#endif
}

void Distributed::abort(int code) {
#ifdef DDPM_HAVE_MPI
    if (initialised_) MPI_Abort(MPI_COMM_WORLD, code);
#endif
    std::exit(code);
}

uint64_t weights_hash(const Module::NamedParameters& params) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (const auto& [name, p] : params) {
        const auto* b = static_cast<const unsigned char*>(p.data().raw_data());
        for (size_t i = 0; i < p.data().nbytes(); ++i) h = (h ^ b[i]) * 0x100000001b3ull;
    }
    return h;
}

}  // namespace ddpm
