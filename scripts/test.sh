#!/usr/bin/env bash
# test.sh: set up, build and run the whole test suite (README command 2; .ci/run calls it).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh "$@"
# doctest_discover_tests splits names at ';' (a CMake list) and ctest would then run nothing.
if grep -nE 'TEST_CASE\("[^"]*;' tests/*.cpp; then echo "test names must not contain ';'"; exit 1; fi
source scripts/openblas_env.sh
echo "OpenBLAS: OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-auto} OPENBLAS_L2_SIZE=${OPENBLAS_L2_SIZE:-auto}"
# One test at a time: every test already uses all cores through OpenMP, and two
# OpenMP processes sharing two cores spin against each other (20x slower).
ctest --test-dir build --output-on-failure --no-tests=error
bash scripts/check_docs.sh
bash scripts/check_style.sh
