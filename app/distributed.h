// distributed.h: data-parallel training across processes with Open MPI.
//
// `mpirun -np N ddpm train ...` starts N copies of the trainer, the ranks. Every rank
// holds the whole model; each global batch of B images is split into N slices of B/N,
// rank r taking images [r*B/N, (r+1)*B/N). After backward, the ranks average their
// gradients with one MPI_Allreduce over a flat buffer, so that every rank applies the
// same Adam step and the weights stay identical. Rank 0 alone writes to the run folder.
//
// Built without MPI (no libopenmpi-dev), or started without mpirun, there is one rank
// and every call here is a no-op.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "nn/module.h"

namespace ddpm {

class Distributed {
public:
    // Initialises MPI when the process was started by mpirun (and MPI was built in).
    static Distributed& init(int* argc, char*** argv);
    static Distributed& get();  // after init; one rank if init was never called
    ~Distributed();

    int rank() const { return rank_; }
    int size() const { return size_; }
    bool is_root() const { return rank_ == 0; }
    bool active() const { return size_ > 1; }

    // The gradients of `params`, averaged over the ranks in place (one flat buffer,
    // allocated on the first call and reused).
    void average_gradients(const Module::NamedParameters& params);
    // In place: the element-wise sum (or maximum) over the ranks.
    void allreduce_sum(double* values, int64_t n);
    int64_t allreduce_max(int64_t value);
    // Every rank's `local` (the same length on each), concatenated in rank order.
    void allgather(const float* local, int64_t n, float* all);
    // Stops every rank (after an error on one: the others would wait forever).
    [[noreturn]] void abort(int code);

    double comm_seconds = 0;  // wall time spent in the calls above

private:
    Distributed() = default;
    int rank_ = 0, size_ = 1;
    bool initialised_ = false;
    std::vector<float> flat_;
};

// A 64-bit FNV-1a hash of every parameter's bytes, to compare replicas.
uint64_t weights_hash(const Module::NamedParameters& params);

}  // namespace ddpm
