#!/usr/bin/env bash
# precision_pairs.sh: how long a bf16 step takes against an fp32 step of the same
# network, on this machine, in the environment as it is set.
#
# `ddpm bench` runs in fp32 and then in bf16, one pair after another, PAIRS
# times. Each ratio is the bf16 figure over the fp32 figure of the same pair (run
# seconds apart), so a host whose speed drifts between pairs moves both halves
# of a pair; the table gives every pair's ratios and their medians, for the
# training step, the forward pass and the DDIM step. (On a shared or virtual
# machine one run of each says little: the same step can read 20-40% apart
# within the hour.)
#
# Usage: bash bench/precision_pairs.sh [config=small] [batch=64] [pairs=4] [steps=4]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
config=${1:-small}; batch=${2:-64}; pairs=${3:-4}; steps=${4:-4}
source scripts/openblas_env.sh
[ -x build/app/ddpm ] || { echo "precision_pairs.sh: build/app/ddpm is missing (bash scripts/setup.sh builds it)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

for p in $(seq "$pairs"); do
  for precision in fp32 bf16; do
    ./build/app/ddpm bench --config "$config" --batch "$batch" --threads 2 --steps "$steps" \
      --precision "$precision" | head -1 > "$tmp/${p}_$precision.json"
  done
done

/usr/bin/python3 - "$tmp" "$pairs" "$config" "$batch" <<'PY'
import json, os, statistics, sys
d, pairs, config, batch = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
runs = [{p: json.load(open(os.path.join(d, f"{i}_{p}.json"))) for p in ("fp32", "bf16")} for i in range(1, pairs + 1)]
first = runs[0]["bf16"]
print(f"{config}, batch {batch}, 2 threads; kernels {runs[0]['fp32']['gemm_kernels']} (fp32), "
      f"{first['gemm_kernels']} (bf16); OpenBLAS core {first['blas_core']}")
keys = [("train_step_s", "train"), ("forward_s", "forward"), ("ddim_step_s", "DDIM")]
print("| pair | " + " | ".join(f"{n} fp32 s | {n} bf16 s | ratio" for _, n in keys) + " |")
print("|---" * (1 + 3 * len(keys)) + "|")
ratios = {k: [] for k, _ in keys}
for i, r in enumerate(runs, 1):
    cells = []
    for k, _ in keys:
        ratios[k].append(r["bf16"][k] / r["fp32"][k])
        cells.append(f"{r['fp32'][k]:.4f} | {r['bf16'][k]:.4f} | {ratios[k][-1]:.3f}")
    print(f"| {i} | " + " | ".join(cells) + " |")
print("median ratio (range): " + ", ".join(
    f"{n} {statistics.median(ratios[k]):.3f} ({min(ratios[k]):.3f}-{max(ratios[k]):.3f})" for k, n in keys))
PY
