#!/usr/bin/env bash
# setup.sh: installs the Debian packages ddpm.cpp needs (only those missing),
# then configures and builds into build/. Sourced by main.sh and test.sh.
# Usage: bash scripts/setup.sh [extra cmake flags]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PACKAGES=(build-essential cmake pkg-config libopenblas-openmp-dev doctest-dev libbenchmark-dev
          nlohmann-json3-dev libcli11-dev libfmt-dev zlib1g-dev libpng-dev libstb-dev dataset-fashion-mnist
          libopenmpi-dev openmpi-bin)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

source scripts/openblas_env.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release "$@" >/dev/null
# DDPM_BUILD_TARGET=ddpm builds only the executable (the main job needs no tests).
cmake --build build -j "$(nproc)" ${DDPM_BUILD_TARGET:+--target "$DDPM_BUILD_TARGET"}
