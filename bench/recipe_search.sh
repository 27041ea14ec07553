#!/usr/bin/env bash
# recipe_search.sh: one row of the recipe table. Trains a U-Net (`tiny`, or $RECIPE_CONFIG) on Fashion-MNIST with the
# given flags for a fixed number of steps (what the recipe's batch size reaches in ten
# quiet minutes on the machine at hand: measure it with `ddpm bench`, or take the step
# count of a `--minutes 10` run), then scores 1,000 EMA samples with `ddpm fid`.
#
# Usage: bench/recipe_search.sh NAME STEPS [train flags...]
# Appends "name,steps,seed,sampler,calls,fid,train_s,sample_s,flags" to runs/recipes/results.csv,
# for DPM-Solver++(2M) with 20 calls as an ODE (eta 0) and as an SDE (eta 0.5), and with
# RECIPE_DDPM=1 for DDPM over 250 respaced steps too.
# A fixed step count (not --minutes) makes each row independent of what else the machine
# is doing; the time column says how long it took here.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/openblas_env.sh
name=$1 steps=$2
shift 2
flags="$*"
out=runs/recipes/$name
mkdir -p runs/recipes
[ -f runs/fid_fashion-mnist.safetensors ] || ./build/app/ddpm fid --train-features
t0=$(date +%s.%N)
./build/app/ddpm train --config "${RECIPE_CONFIG:-tiny}" --steps "$steps" --sample-every 0 --ckpt-every 0 --log-every 500 \
    --final-samples 0 --out "$out" "$@" > "$out.log" 2>&1
t1=$(date +%s.%N)
ckpt=$(ls "$out"/checkpoint_*.safetensors | tail -n 1)
seed=$(grep -o '"seed": [0-9]*' "$out/train.json" | grep -o '[0-9]*$')
for spec in "dpmpp2m 20 0" "dpmpp2m 20 0.5" "ddpm 250 0"; do
    set -- $spec
    [ "$1" = ddpm ] && [ -z "${RECIPE_DDPM:-}" ] && continue  # 250 DDPM steps: 5 minutes, on request
    s0=$(date +%s.%N)
    ./build/app/ddpm sample --checkpoint "$ckpt" --sampler "$1" --steps "$2" --eta "$3" --num 1000 --batch 125 --out "$out/fid_$1_$2_$3" > /dev/null
    s1=$(date +%s.%N)
    fid=$(./build/app/ddpm fid "$out/fid_$1_$2_$3.npy" | grep -o '[0-9.]*$')
    printf '%s,%s,%s,%s eta %s,%s,%s,%.0f,%.1f,"%s"\n' "$name" "$steps" "$seed" "$1" "$3" "$2" "$fid" "$(echo "$t1 - $t0" | bc)" \
        "$(echo "$s1 - $s0" | bc)" "--config ${RECIPE_CONFIG:-tiny} $flags" >> runs/recipes/results.csv
done
tail -n 3 runs/recipes/results.csv
