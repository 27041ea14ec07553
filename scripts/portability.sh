#!/usr/bin/env bash
# portability.sh: builds and tests the code a build on another x86 CPU compiles.
# The default build (-march=native) compiles only this machine's branches of the
# Winograd transforms and of the loops the compiler vectorises; a user whose CPU
# has AVX2 but no AVX-512, or a portable binary, runs other branches. Each is
# built here and the suite run on it:
#   build-avx2/      -march=haswell (AVX2 + FMA), with DDPM_KERNELS=avx2: the GEMM
#                    family such a CPU would pick (cpuid would pick AVX-512 here)
#   build-portable/  -DDDPM_NATIVE=OFF: the x86-64 baseline (SSE2); the transforms'
#                    plain loops, the GEMM family still picked by cpuid
# Needs what scripts/setup.sh installs (.ci/run runs it first).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/openblas_env.sh
build_and_test() {  # folder, kernel family (or "" for cpuid's choice), extra cmake arguments...
    local dir=$1 kernels=$2
    shift 2
    cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=Release -DDDPM_NATIVE=OFF "$@" >/dev/null
    if ! cmake --build "$dir" -j "$(nproc)" --target ddpm_tests ddpm >"$dir/build.log" 2>&1; then
        cat "$dir/build.log"
        exit 1
    fi
    grep -E "warning" "$dir/build.log" || true
    # Without the two long numerical tests, as under the sanitizers (scripts/sanitize.sh):
    # the code they run, the others cover.
    local skip="every term of the full bound|2-D toy"
    env ${kernels:+DDPM_KERNELS=$kernels} \
        ctest --test-dir "$dir" --output-on-failure --no-tests=error -E "$skip"
    echo "portability: $dir passes the suite (GEMM kernels: ${kernels:-as cpuid picks})"
}
if grep -q avx2 /proc/cpuinfo; then build_and_test build-avx2 avx2 -DCMAKE_CXX_FLAGS=-march=haswell; fi
build_and_test build-portable ""
