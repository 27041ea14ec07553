#!/usr/bin/env bash
# setup.sh: installs the Debian packages ddpm.cpp needs (only those missing),
# then configures and builds into build/. Sourced by main.sh and test.sh.
# Usage: bash scripts/setup.sh [extra cmake flags]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/install_packages.sh build-essential cmake pkg-config libopenblas-openmp-dev doctest-dev libbenchmark-dev \
  nlohmann-json3-dev libcli11-dev libfmt-dev zlib1g-dev libpng-dev libstb-dev dataset-fashion-mnist \
  libopenmpi-dev openmpi-bin

source scripts/openblas_env.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release "$@" >/dev/null
# DDPM_BUILD_TARGET=ddpm builds only the executable (the main job needs no tests).
cmake --build build -j "$(nproc)" ${DDPM_BUILD_TARGET:+--target "$DDPM_BUILD_TARGET"}
