#!/usr/bin/env bash
# main.sh: set up, build, then the main job (README command 1): train the mini U-Net
# on Fashion-MNIST for 10 minutes with the recipe chosen by measurement (README,
# "The recipe"), then draw 64 samples from its EMA weights with DPM-Solver++(2M) (the ODE)
# in 20 network calls, and 1,000 more that `ddpm fid` scores when its classifier is cached.
# Arguments are passed on to `ddpm train` (`bash scripts/main.sh --seed 1`: another training seed).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
DDPM_BUILD_TARGET=ddpm bash scripts/setup.sh
source scripts/openblas_env.sh
run="runs/main-$(date +%Y%m%d-%H%M%S)"
./build/app/ddpm train --config mini --minutes 10 --batch 32 --lr 1e-3 --warmup 100 --lr-schedule cosine \
    --min-snr-gamma 5 --prediction v --schedule cosine --adam-beta2 0.99 --timestep-sampler stratified --scale-shift-norm \
    --ema 0.999 --sample-every 0 --ckpt-every 1000 \
    --log-every 200 --out "$run" "$@"
ckpt=$(ls "$run"/checkpoint_*.safetensors | tail -n 1)
./build/app/ddpm sample --checkpoint "$ckpt" --sampler dpmpp2m --steps 20 --eta 0 --num 64 --strip --out "$run/samples"
./build/app/ddpm sample --checkpoint "$ckpt" --sampler dpmpp2m --steps 20 --eta 0 --num 1000 --batch 125 --seed 1 \
    --out "$run/samples_1000"
features=runs/fid_fashion-mnist.safetensors
if [ -f "$features" ]; then
    ./build/app/ddpm fid "$run/samples_1000.npy" --features "$features"
else
    echo "FID (ours): run ./build/app/ddpm fid --train-features once (about 3 minutes), then ./build/app/ddpm fid $run/samples_1000.npy"
fi
echo "main job done: $run/samples.png (64 samples), $run/samples_strip.png (denoising), $run/loss.png"
