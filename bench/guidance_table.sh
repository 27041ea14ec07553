#!/usr/bin/env bash
# guidance_table.sh: the class-conditional table of the README ("Class conditioning and guidance").
# Trains the main job's recipe with --class-cond for ten minutes (or GUIDANCE_STEPS steps), then for
# each guidance weight W draws 100 images of each class (DPM-Solver++(2M), 20 calls, eta 0.5, as the
# main job) and scores them with `ddpm fid --labels`: the FID (ours) of the 1,000 and the share the
# feature classifier puts in the class asked for, per class and overall.
#
# Usage: bench/guidance_table.sh [RUN_FOLDER]   (default runs/guidance; an existing run is re-scored)
# Writes RUN_FOLDER/table.md and RUN_FOLDER/classes_w<W>.png (one labelled row per class).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/openblas_env.sh
out=${1:-runs/guidance}
[ -f runs/fid_fashion-mnist.safetensors ] || ./build/app/ddpm fid --train-features
if ! ls "$out"/checkpoint_*.safetensors > /dev/null 2>&1; then
    budget="--minutes 10"
    [ -n "${GUIDANCE_STEPS:-}" ] && budget="--steps $GUIDANCE_STEPS"
    ./build/app/ddpm train --config mini --class-cond $budget --batch 32 --lr 1e-3 --warmup 100 --lr-schedule cosine \
        --min-snr-gamma 5 --prediction v --ema 0.999 --sample-every 0 --ckpt-every 0 --log-every 500 --final-samples 0 \
        --out "$out" > "$out.log" 2>&1
fi
ckpt=$(ls "$out"/checkpoint_*.safetensors | tail -n 1)
{
    echo "checkpoint: $ckpt ($(grep -o 'done: [0-9]* steps in [0-9m]*s' "$out.log" 2>/dev/null || echo 'trained earlier'))"
    echo
    echo "| W | FID (ours), 1,000 samples | classified as asked | seconds for 1,000 |"
    echo "|---|---|---|---|"
} > "$out/table.md"
for w in 0 1 2 4; do
    s0=$(date +%s.%N)
    ./build/app/ddpm sample --checkpoint "$ckpt" --class all --num 100 --guidance "$w" --sampler dpmpp2m --steps 20 --eta 0.5 \
        --batch 250 --seed 1 --out "$out/classes_w$w" > /dev/null
    s1=$(date +%s.%N)
    ./build/app/ddpm fid "$out/classes_w$w.npy" --labels "$out/classes_w${w}_labels.npy" > "$out/fid_w$w.txt"
    fid=$(grep -o 'not Inception-FID) of .*: [0-9.]*$' "$out/fid_w$w.txt" | grep -o '[0-9.]*$')
    agree=$(grep '^| all |' "$out/fid_w$w.txt" | awk -F'|' '{ gsub(/ /, "", $4); print $4 }')
    printf '| %s | %s | %s | %.1f |\n' "$w" "$fid" "$agree" "$(echo "$s1 - $s0" | bc)" >> "$out/table.md"
done
cat "$out/table.md"
for w in 0 1 2 4; do echo "W = $w:"; grep '^| [0-9]' "$out/fid_w$w.txt"; done
