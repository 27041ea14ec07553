#!/usr/bin/env bash
# guidance_table.sh: the class-conditional table of the README ("Class conditioning and guidance").
# Trains the main job's recipe as it was when the table was made (before the cosine noise schedule,
# beta2 0.99, stratified timesteps and --scale-shift-norm, kept so the table can be reproduced) with
# --class-cond for ten minutes (or GUIDANCE_STEPS steps), then for
# each guidance setting draws 100 images of each class (DPM-Solver++(2M), 20 calls, eta 0.5, as that
# main job) with sampling seeds 1, 2 and 3, and scores each 1,000 with `ddpm fid --labels`: the FID
# (ours) and the share the feature classifier puts in the class asked for. One FID of 1,000 samples
# moves by about 0.2-0.3 between seeds, so each row gives the three and their mean.
#
# Usage: bench/guidance_table.sh [RUN_FOLDER]   (default runs/guidance; an existing run is re-scored)
# Writes RUN_FOLDER/table.md and RUN_FOLDER/classes_w<W>_<T_MIN>_<T_MAX>_s<SEED>.png (a labelled row per class).
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
    echo "| W | timesteps guided | FID (ours), seeds 1, 2, 3 | mean | classified as asked, seeds 1, 2, 3 | seconds for 1,000 (seed 1) |"
    echo "|---|---|---|---|---|---|"
} > "$out/table.md"
for spec in "0 0 999" "0.2 0 999" "1 0 999" "2 0 999" "4 0 999" "1 0 400" "2 0 258"; do
    set -- $spec
    fids="" agrees="" secs=""
    for seed in 1 2 3; do
        name="$out/classes_w$1_$2_$3_s$seed"
        s0=$(date +%s.%N)
        ./build/app/ddpm sample --checkpoint "$ckpt" --class all --num 100 --guidance "$1" --guidance-interval "$2" "$3" \
            --sampler dpmpp2m --steps 20 --eta 0.5 --batch 250 --seed "$seed" --out "$name" > /dev/null
        s1=$(date +%s.%N)
        [ -z "$secs" ] && secs=$(printf '%.1f' "$(echo "$s1 - $s0" | bc)")
        ./build/app/ddpm fid "$name.npy" --labels "${name}_labels.npy" > "$name.txt"
        fids="$fids $(grep -o 'not Inception-FID) of .*: [0-9.]*$' "$name.txt" | grep -o '[0-9.]*$')"
        agrees="$agrees $(grep '^| all |' "$name.txt" | awk -F'|' '{ gsub(/ /, "", $4); print $4 }')"
    done
    mean=$(echo "$fids" | awk '{ printf "%.2f", ($1 + $2 + $3) / 3 }')
    printf '| %s | %s-%s | %s | %s | %s | %s |\n' "$1" "$2" "$3" "$(echo $fids | sed 's/ /, /g')" "$mean" \
        "$(echo $agrees | sed 's/ /, /g')" "$secs" >> "$out/table.md"
done
cat "$out/table.md"
