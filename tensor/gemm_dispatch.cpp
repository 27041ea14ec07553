// gemm_dispatch.cpp: which family of gemm_kernels.h runs, decided once.
#include <cstdlib>
#include <stdexcept>

#include "tensor/gemm_kernels.h"

namespace ddpm {

std::vector<SgemmKernel> available_sgemm_kernels() {
    std::vector<SgemmKernel> kernels = {{"reference", sgemm_reference}};
#if defined(DDPM_X86_KERNELS)  // the build compiled the x86 families (CMake: x86-64 only)
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) kernels.push_back({"avx2", sgemm_avx2});
    if (__builtin_cpu_supports("avx512f")) kernels.push_back({"avx512", sgemm_avx512});
#endif
    return kernels;
}

namespace {

SgemmKernel choose() {
    const std::vector<SgemmKernel> kernels = available_sgemm_kernels();
    const char* wanted = std::getenv("DDPM_KERNELS");
    if (!wanted || !*wanted) return kernels.back();
    std::string names;
    for (const SgemmKernel& k : kernels) {
        if (k.name == wanted) return k;
        names += (names.empty() ? "" : ", ") + k.name;
    }
    throw std::runtime_error("DDPM_KERNELS=" + std::string(wanted) + ": not available on this CPU/build (available: " +
                             names + ")");
}

}  // namespace

const SgemmKernel& sgemm_kernel() {
    static const SgemmKernel chosen = choose();
    return chosen;
}

}  // namespace ddpm
