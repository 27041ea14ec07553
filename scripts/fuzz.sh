#!/usr/bin/env bash
# fuzz.sh: builds the libFuzzer harnesses (clang, ASan + UBSan) into build-fuzz/ and runs
# each for FUZZ_SECONDS (default 60) from its seed corpus in fuzz/corpus/. Any crash,
# sanitizer report, unexpected exception or hang fails the script; the input that
# caused it is left in build-fuzz/findings/ to become a regression test.
# Usage: bash scripts/fuzz.sh [harness ...]   (default: all)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/install_packages.sh clang libclang-rt-14-dev libomp-dev
source scripts/openblas_env.sh

HARNESSES=("$@")
[ ${#HARNESSES[@]} -eq 0 ] && HARNESSES=(idx cifar10 image config safetensors)
CC=clang CXX=clang++ cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Release -DDDPM_FUZZ=ON \
  -DDDPM_BUILD_TESTS=OFF -DDDPM_BUILD_BENCH=OFF >/dev/null
cmake --build build-fuzz -j "$(nproc)" --target "${HARNESSES[@]/#/fuzz_}" 2>&1 | grep -E "error|Error" || true

SECONDS_EACH=${FUZZ_SECONDS:-60}
mkdir -p build-fuzz/findings
status=0
for h in "${HARNESSES[@]}"; do
  work=build-fuzz/corpus/$h   # new inputs go here; the committed seeds stay untouched
  mkdir -p "$work"
  log=build-fuzz/fuzz_$h.log
  # One thread: the harnesses exercise parsing, and libFuzzer wants a deterministic target.
  if OMP_NUM_THREADS=1 ASAN_OPTIONS=detect_leaks=1 "build-fuzz/fuzz/fuzz_$h" "$work" "fuzz/corpus/$h" \
       -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=3072 -print_final_stats=1 \
       -artifact_prefix="build-fuzz/findings/$h-" >"$log" 2>&1; then
    runs=$(grep -m1 -oE "stat::number_of_executed_units: *[0-9]+" "$log" | grep -oE "[0-9]+$" || echo "?")
    cov=$(grep -oE "cov: [0-9]+" "$log" | tail -1 || true)
    echo "fuzz_$h: ${SECONDS_EACH} s, $runs executions, $cov, no crash"
  else
    status=1
    echo "fuzz_$h: FAILED; the last lines of $log:"
    tail -n 30 "$log"
    ls build-fuzz/findings/"$h"-* 2>/dev/null || true
  fi
done
exit $status
