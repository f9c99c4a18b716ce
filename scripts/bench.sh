#!/usr/bin/env bash
# bench.sh - install dependencies, build gqa (Release) and run the attention benchmark.
#
#   bash scripts/bench.sh [extra `gqa bench attn` options]
#
# Runs `./build/gqa bench attn --quick "$@"`. GQA_THREADS and GQA_KERNEL
# (ref|scalar|avx2|avx512) in the environment choose threads and kernels.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

bash "$root/scripts/setup_deps.sh"

cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DGQA_SANITIZE=OFF
cmake --build build -j "$(nproc)" --target gqa
exec ./build/gqa bench attn --quick "$@"
