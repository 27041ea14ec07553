#!/usr/bin/env bash
# main.sh: set up, build and run the main job (README command 1).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
source scripts/openblas_env.sh
./build/examples/autograd_demo
