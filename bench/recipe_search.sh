#!/usr/bin/env bash
# recipe_search.sh: one row of the recipe table. Trains a U-Net (`tiny`, or $RECIPE_CONFIG) on Fashion-MNIST with the
# given flags for a fixed number of steps (what the recipe's batch size reaches in ten
# quiet minutes on the machine at hand: measure it with `ddpm bench`, or take the step
# count of a `--minutes 10` run), then scores 1,000 EMA samples with `ddpm fid`.
#
# Usage: bench/recipe_search.sh NAME STEPS [train flags...]
# Appends "name,steps,seed,sampler,calls,fid,train_s,sample_s,flags" to runs/recipes/results.csv,
# for DPM-Solver++(2M) with 20 calls as an ODE (eta 0) and as an SDE (eta 0.5), and with
# RECIPE_DDPM=1 for DDPM over 250 respaced steps too. RECIPE_SEEDS="1 2 3" draws each sampler's 1,000 images
# with each of those sampling seeds (one row each, the seed after the sampler; default: seed 0 only), since one
# score moves by 0.2-0.5 with the sampling seed alone. RECIPE_ODE_ONLY=1 skips the SDE. RECIPE_SCORE_ONLY=1 skips the training and scores the
# run folder's last checkpoint again (for more seeds).
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
[ -n "${RECIPE_SCORE_ONLY:-}" ] || ./build/app/ddpm train --config "${RECIPE_CONFIG:-tiny}" --steps "$steps" --sample-every 0 --ckpt-every 0 --log-every 500 \
    --final-samples 0 --out "$out" "$@" > "$out.log" 2>&1
t1=$(date +%s.%N)
ckpt=$(ls "$out"/checkpoint_*.safetensors | tail -n 1)
seed=$(grep -o '"seed": [0-9]*' "$out/train.json" | grep -o '[0-9]*$')
seeds=${RECIPE_SEEDS:-0}
for spec in "dpmpp2m 20 0" "dpmpp2m 20 0.5" "ddpm 250 0"; do
    set -- $spec
    [ "$1" = ddpm ] && [ -z "${RECIPE_DDPM:-}" ] && continue  # 250 DDPM steps: 5 minutes, on request
    [ "$3" = 0.5 ] && [ -n "${RECIPE_ODE_ONLY:-}" ] && continue
    for s in $seeds; do
        base="$out/fid_$1_$2_$3_seed$s"
        s0=$(date +%s.%N)
        ./build/app/ddpm sample --checkpoint "$ckpt" --sampler "$1" --steps "$2" --eta "$3" --num 1000 --batch 125 \
            --seed "$s" --out "$base" > /dev/null
        s1=$(date +%s.%N)
        fid=$(./build/app/ddpm fid "$base.npy" | grep -o '[0-9.]*$')
        train_s=$([ -n "${RECIPE_SCORE_ONLY:-}" ] || echo "$t1 - $t0" | bc)
        printf '%s,%s,%s,%s eta %s seed %s,%s,%s,%s,%.1f,"%s"\n' "$name" "$steps" "$seed" "$1" "$3" "$s" "$2" "$fid" \
            "${train_s%.*}" "$(echo "$s1 - $s0" | bc)" "--config ${RECIPE_CONFIG:-tiny} $flags" >> runs/recipes/results.csv
    done
done
tail -n 6 runs/recipes/results.csv
