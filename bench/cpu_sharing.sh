#!/usr/bin/env bash
# cpu_sharing.sh: how much a training step slows down next to another program,
# for ddpm.cpp and for the PyTorch twin (when python3-torch is installed).
#
# A user trains with a browser and an editor open. Three conditions, each
# figure the median train step of `ddpm bench` / bench/torch_bench.py:
#   quiet       nothing else running
#   busy        one single-threaded process computing all the time
#   half-busy   one single-threaded process computing 5 ms, sleeping 5 ms
# and the ratio of each to quiet. On 2 cores a fair share is 4/3 of a core
# next to the busy process (two threads of three: ratio 1.5) and 1.5 cores next
# to the half-busy one (1.33); a
# ratio far above that means our threads wait on each other (a static split of
# work waits for the slowest thread; spinning threads burn the share they have).
#
# Usage: bash bench/cpu_sharing.sh [config=tiny] [batch=32] [steps=20] [rounds=3]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
config=${1:-tiny}; batch=${2:-32}; steps=${3:-20}; rounds=${4:-3}
source scripts/openblas_env.sh
have_torch=0
/usr/bin/python3 -c "import torch" 2>/dev/null && have_torch=1
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$tmp"' EXIT

# The competing program: busy for ON ms, then asleep for OFF ms, forever.
competitor() {  # ON OFF
  /usr/bin/python3 -c "
import time
on, off = $1 / 1000, $2 / 1000
while True:
    t = time.perf_counter()
    while time.perf_counter() - t < on: pass
    if off: time.sleep(off)
" >/dev/null 2>&1 &
  echo $!
}

step_of() { /usr/bin/python3 -c "import json,sys; print(json.loads(sys.stdin.readlines()[0])['train_step_s'])"; }

run() {  # CONDITION FRAMEWORK
  if [ "$2" = ours ]; then
    ./build/app/ddpm bench --config "$config" --batch "$batch" --threads 2 --steps "$steps" | step_of
  else
    OMP_NUM_THREADS=2 /usr/bin/python3 bench/torch_bench.py --config "$config" --batch "$batch" --threads 2 \
      --steps "$steps" | step_of
  fi >> "$tmp/$1_$2"
}

frameworks=ours
[ "$have_torch" = 1 ] && frameworks="ours torch"
for r in $(seq "$rounds"); do
  for condition in quiet busy half-busy; do
    pid=""
    [ "$condition" = busy ] && pid=$(competitor 1000 0)
    [ "$condition" = half-busy ] && pid=$(competitor 5 5)
    for f in $frameworks; do run "$condition" "$f"; done
    [ -n "$pid" ] && kill "$pid" && wait "$pid" 2>/dev/null || true
  done
done

/usr/bin/python3 - "$tmp" $frameworks <<'PY'
import os, statistics, sys
d, frameworks = sys.argv[1], sys.argv[2:]
names = {"ours": "ddpm.cpp", "torch": "PyTorch"}
# Each ratio is the median over rounds of that round's step over the same round's
# quiet step (run a minute apart), so a host whose speed drifts between rounds
# moves both; the steps shown are the medians over rounds.
print("| framework | quiet step s | busy step s | ratio | half-busy step s | ratio |")
print("|---|---|---|---|---|---|")
for f in frameworks:
    s = {c: [float(x) for x in open(os.path.join(d, f"{c}_{f}"))] for c in ("quiet", "busy", "half-busy")}
    m = {c: statistics.median(v) for c, v in s.items()}
    ratio = {c: statistics.median(a / q for a, q in zip(s[c], s["quiet"])) for c in ("busy", "half-busy")}
    print(f"| {names[f]} | {m['quiet']:.4f} | {m['busy']:.4f} | {ratio['busy']:.2f} | "
          f"{m['half-busy']:.4f} | {ratio['half-busy']:.2f} |")
PY
