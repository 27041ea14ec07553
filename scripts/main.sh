#!/usr/bin/env bash
# main.sh: set up, build, then the main job (README command 1): train the tiny
# U-Net on Fashion-MNIST for 10 minutes, then sample 64 images from its EMA weights
# (DDPM ancestral sampling over 250 respaced steps).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
DDPM_BUILD_TARGET=ddpm bash scripts/setup.sh
source scripts/openblas_env.sh
run="runs/main-$(date +%Y%m%d-%H%M%S)"
./build/app/ddpm train --config tiny --minutes 10 --batch 32 --lr 1e-3 --warmup 100 --ema 0.999 \
    --sample-every 0 --ckpt-every 1000 --log-every 200 --out "$run"
ckpt=$(ls "$run"/checkpoint_*.safetensors | tail -n 1)
./build/app/ddpm sample --checkpoint "$ckpt" --sampler ddpm --steps 250 --num 64 --strip --out "$run/samples"
echo "main job done: $run/samples.png (64 samples), $run/samples_strip.png (denoising), $run/loss.png"
