// gemm_dispatch.cpp: which family of gemm_kernels.h runs, decided once.
#include <cstdlib>
#include <stdexcept>

#include "tensor/gemm_kernels.h"
#include "tensor/scratch.h"

namespace ddpm {

bool cpu_has_avx512_bf16() {
#if defined(DDPM_X86_KERNELS)
    return __builtin_cpu_supports("avx512bf16") && __builtin_cpu_supports("avx512bw");
#else
    return false;
#endif
}

namespace {
bool cpu_has_avx2() {
#if defined(DDPM_X86_KERNELS)
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    return false;
#endif
}
}  // namespace

std::vector<SgemmKernel> available_sgemm_kernels() {
    std::vector<SgemmKernel> kernels = {{"reference", sgemm_reference}};
#if defined(DDPM_X86_KERNELS)  // the build compiled the x86 families (CMake: x86-64 only)
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) kernels.push_back({"avx2", sgemm_avx2});
    if (__builtin_cpu_supports("avx512f")) kernels.push_back({"avx512", sgemm_avx512});
#endif
    return kernels;
}

std::vector<SgemmKernel> available_bf16_kernels() {
    std::vector<SgemmKernel> kernels = {{"reference", sgemm_bf16_reference}};
    if (cpu_has_avx512_bf16()) kernels.push_back({"avx512_bf16", sgemm_bf16_avx512, sgemm_bf16_bt_avx512});
    return kernels;
}

namespace {

GemmPrecision g_precision = GemmPrecision::FP32;

SgemmKernel choose(const std::vector<SgemmKernel>& kernels) {
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
    static const SgemmKernel chosen = choose(available_sgemm_kernels());
    return chosen;
}

const SgemmKernel& bf16_kernel() {
    static const SgemmKernel chosen = [] {
        const char* wanted = std::getenv("DDPM_KERNELS");
        const std::vector<SgemmKernel> kernels = available_bf16_kernels();
        return wanted && std::string(wanted) == "reference" ? kernels.front() : kernels.back();
    }();
    return chosen;
}

void set_gemm_precision(GemmPrecision p) { g_precision = p; }
GemmPrecision gemm_precision() { return g_precision; }

GemmPrecision parse_precision(const std::string& name) {
    if (name == "fp32") return GemmPrecision::FP32;
    if (name != "bf16") throw std::invalid_argument("--precision " + name + ": expected fp32 or bf16");
    if (!cpu_has_avx512_bf16())
        throw std::invalid_argument("--precision bf16 needs a CPU with AVX512_BF16 (vdpbf16ps); this one has none");
    return GemmPrecision::BF16;
}

namespace {
struct BtTag {};
}  // namespace

void transpose(const float* src, int64_t rows, int64_t cols, int64_t ld, float* dst) {
    static const auto fn = cpu_has_avx2() ? transpose_avx2 : transpose_reference;
    fn(src, rows, cols, ld, dst);
}

namespace {
// C (+)= op(A) op(B) with kernel family k.
void run(const SgemmKernel& k, int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B,
         int64_t ldb, float* C, int64_t ldc, bool accumulate, bool trans_a, bool trans_b) {
    if (trans_b && k.fn_bt) return k.fn_bt(M, N, K, A, lda, B, ldb, C, ldc, accumulate, trans_a);
    if (trans_b) {  // B is N x K: B^T (K x N) into scratch, then the plain product
        float* bt = thread_scratch<float, BtTag>(static_cast<size_t>(K * N));
        if (k.name == "reference")
            transpose_reference(B, N, K, ldb, bt);
        else
            transpose(B, N, K, ldb, bt);
        B = bt, ldb = N;
    }
    k.fn(M, N, K, A, lda, B, ldb, C, ldc, accumulate, trans_a);
}
}  // namespace

void sgemm(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B, int64_t ldb, float* C,
           int64_t ldc, bool accumulate, bool trans_a, bool trans_b) {
    const SgemmKernel& k = gemm_precision() == GemmPrecision::BF16 ? bf16_kernel() : sgemm_kernel();
    run(k, M, N, K, A, lda, B, ldb, C, ldc, accumulate, trans_a, trans_b);
}

namespace {
// Whether the bf16 family in use is AVX512_BF16's (decided once, as bf16_kernel() is).
bool bf16_fast() {
    static const bool fast = bf16_kernel().name != "reference";
    return fast;
}
}  // namespace

void pack_bf16_a(int64_t M, int64_t K, const float* A, int64_t lda, bool trans_a, uint32_t* Ap) {
    (bf16_fast() ? pack_bf16_a_avx512 : pack_bf16_a_reference)(M, K, A, lda, trans_a, Ap);
}

void pack_bf16_b(int64_t K, int64_t N, const float* B, int64_t ldb, uint32_t* Bp, int64_t ldp) {
    (bf16_fast() ? pack_bf16_b_avx512 : pack_bf16_b_reference)(K, N, B, ldb, Bp, ldp);
}

void sgemm_bf16_pairs(int64_t M, int64_t N, int64_t K, const uint32_t* Ap, const uint32_t* Bp, int64_t ldp, float* C,
                      int64_t ldc, bool accumulate) {
    (bf16_fast() ? sgemm_bf16_pairs_avx512 : sgemm_bf16_pairs_reference)(M, N, K, Ap, Bp, ldp, C, ldc, accumulate);
}

namespace {
struct PackedBTag {};
}  // namespace

void sgemm_bf16_packed_a(int64_t M, int64_t N, int64_t K, const uint32_t* Ap, const float* B, int64_t ldb, float* C,
                         int64_t ldc, bool accumulate) {
    const int64_t N16 = (N + 15) / 16 * 16;  // pack_bf16_b's row length
    uint32_t* Bp = thread_scratch<uint32_t, PackedBTag>(static_cast<size_t>(bf16_pairs(K) * N16));
    pack_bf16_b(K, N, B, ldb, Bp, N16);
    sgemm_bf16_pairs(M, N, K, Ap, Bp, N16, C, ldc, accumulate);
}

void sgemm_fp32(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B, int64_t ldb, float* C,
                int64_t ldc, bool accumulate, bool trans_a, bool trans_b) {
    run(sgemm_kernel(), M, N, K, A, lda, B, ldb, C, ldc, accumulate, trans_a, trans_b);
}

}  // namespace ddpm
