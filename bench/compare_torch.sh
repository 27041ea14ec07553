#!/usr/bin/env bash
# compare_torch.sh: ddpm.cpp against PyTorch on the same U-Net, run alternately
# ROUNDS times at 1 and 2 threads; prints each figure's median and the ratio.
# Each round runs all four (ours and PyTorch's, 1 and 2 threads) back to back, so
# that a machine whose speed drifts (a shared host) slows both frameworks and both
# thread counts alike, and the ratios and the 1 -> 2 thread scaling compare runs
# made minutes, not a quarter of an hour, apart.
# With precision bf16, both in mixed precision: ours `--precision bf16`, PyTorch's
# torch.autocast to bfloat16 (torch_bench.py; fp32 weights, Adam, EMA and group norm in both).
# With isa avx2, both as on a CPU with AVX2 but no AVX-512: ours built with
# -march=haswell (into build-avx2/, as scripts/portability.sh builds it) on the AVX2
# GEMM kernels (DDPM_KERNELS=avx2), PyTorch held to AVX2 in its own kernels
# (ATEN_CPU_CAPABILITY=avx2) and in oneDNN's convolutions (ONEDNN_MAX_CPU_ISA=AVX2).
# Needs python3-torch (apt-get install python3-torch); skipped without it.
# Usage: bash bench/compare_torch.sh [config=small] [batch=64] [rounds=3] [precision=fp32] [isa=native]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
config=${1:-small}; batch=${2:-64}; rounds=${3:-3}; precision=${4:-fp32}; isa=${5:-native}
if ! /usr/bin/python3 -c "import torch" 2>/dev/null; then echo "python3-torch is not installed: skipped"; exit 0; fi
source scripts/openblas_env.sh
ddpm=./build/app/ddpm
case $isa in
  native) ;;
  avx2)
    cmake -S . -B build-avx2 -DCMAKE_BUILD_TYPE=Release -DDDPM_NATIVE=OFF -DCMAKE_CXX_FLAGS=-march=haswell >/dev/null
    cmake --build build-avx2 -j "$(nproc)" --target ddpm >/dev/null
    ddpm=./build-avx2/app/ddpm
    export DDPM_KERNELS=avx2 ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 ;;
  *) echo "isa $isa: expected native or avx2"; exit 1 ;;
esac
tmp=$(mktemp -d)
for r in $(seq "$rounds"); do
  for threads in 1 2; do
    "$ddpm" bench --config "$config" --batch "$batch" --threads "$threads" --precision "$precision" \
        >> "$tmp/ours_$threads.jsonl"
    OMP_NUM_THREADS=$threads /usr/bin/python3 bench/torch_bench.py --config "$config" --batch "$batch" \
        --threads "$threads" --precision "$precision" >> "$tmp/torch_$threads.jsonl"
  done
done
echo "$config, batch $batch, $precision, $rounds rounds, isa $isa"
/usr/bin/python3 - "$tmp" <<'PY'
import json, statistics, sys, os
d = sys.argv[1]
# runs[framework, threads]: one JSON line per round, in round order
runs = {(f, th): [json.loads(l) for l in open(os.path.join(d, f"{f}_{th}.jsonl"))]
        for f in ("ours", "torch") for th in (1, 2)}
print("| threads | figure | ddpm.cpp | PyTorch | ratio (ours / torch) |")
print("|---|---|---|---|---|")
for th in (1, 2):
    for k in ("train_step_s", "forward_s", "ddim_step_s", "peak_rss_mib"):
        a = statistics.median(o[k] for o in runs["ours", th]); b = statistics.median(o[k] for o in runs["torch", th])
        print(f"| {th} | {k} | {a:.3f} | {b:.3f} | {a / b:.2f} |")
print()
print("| figure | ddpm.cpp 1 -> 2 threads | PyTorch 1 -> 2 threads |")
print("|---|---|---|")
for k in ("train_step_s", "forward_s", "ddim_step_s"):
    # per round, then the median: each round's two runs were made minutes apart
    sc = {f: statistics.median(one[k] / two[k] for one, two in zip(runs[f, 1], runs[f, 2])) for f in ("ours", "torch")}
    print(f"| {k} | {sc['ours']:.2f}x | {sc['torch']:.2f}x |")
PY
rm -rf "$tmp"
