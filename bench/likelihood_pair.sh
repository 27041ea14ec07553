#!/usr/bin/env bash
# likelihood_pair.sh: one row of the likelihood table (README, "Likelihood at equal training").
# Trains `tiny` on Fashion-MNIST with the fixed protocol of the improved-DDPM comparison
# (2,400 steps, batch 64, lr 2e-4, warm-up 100, EMA 0.999, seed 0) plus the given flags,
# then evaluates the full variational bound on the first 64 test images with the
# predicted x0 clipped to [-1, 1] and without the clip.
#
# Usage: bench/likelihood_pair.sh NAME [train flags...]   e.g. NAME=hybrid_linear --loss hybrid
# LIKELIHOOD_SEED=1 trains with another seed (the spread between seeds is the yardstick
# for a change such as --precision bf16).
# Appends "name,bpd_clip_on,bpd_clip_off,last_ten_off,l_simple,train_s,flags" to
# runs/likelihood/results.csv; last_ten_off is the share of the unclipped bound in t >= 990.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/openblas_env.sh
name=$1
shift
out=runs/likelihood/$name
mkdir -p runs/likelihood
t0=$(date +%s.%N)
./build/app/ddpm train --config tiny --batch 64 --lr 2e-4 --warmup 100 --ema 0.999 --seed "${LIKELIHOOD_SEED:-0}" --steps 2400 \
    --sample-every 0 --ckpt-every 0 --final-samples 0 --log-every 400 --out "$out" "$@" > "$out.log" 2>&1
t1=$(date +%s.%N)
ckpt=$(ls "$out"/checkpoint_*.safetensors | tail -n 1)
for clip in on off; do
    ./build/app/ddpm eval --checkpoint "$ckpt" --num 64 --clip-denoised "$clip" --out "$out/eval_$clip" > "$out/eval_$clip.txt"
done
bpd() { grep -o 'clip_denoised [a-z]*): [0-9.]*' "$out/eval_$1.txt" | grep -o '[0-9.]*$'; }
last_ten=$(awk -F, '$1 ~ /^[0-9]+$/ && $1 >= 990 { s += $2 } END { printf "%.4f", s }' "$out/eval_off_terms.csv")
l_simple=$(grep -o 'L_simple: [0-9.]*' "$out/eval_on.txt" | grep -o '[0-9.]*$')
printf '%s,%s,%s,%s,%s,%.0f,"%s"\n' "$name" "$(bpd on)" "$(bpd off)" "$last_ten" "$l_simple" "$(echo "$t1 - $t0" | bc)" "$*" \
    >> runs/likelihood/results.csv
tail -n 1 runs/likelihood/results.csv
