#!/usr/bin/env bash
# model.sh - whole-model speed of gqa and llama.cpp on the same GGUF file, in
# one run: prompt tok/s (512 tokens) and generation tok/s (128 tokens after a
# 512- and a 4096-token context), 1 and 2 threads, f16 KV, median of 3.
#
#   bash bench/model.sh            builds gqa, sets up llama.cpp in .venv-llamacpp
#                                  (bench/llamacpp_setup.sh, a few minutes the first
#                                  time), runs both, prints a Markdown table
#
# Results go to bench/out/model-gqa.json, bench/out/model-llamacpp.json and
# bench/out/model.md. Both programs use the same token ids
# (ids[i] = 1000 + (i * 7919) % 40000). Run it on a quiet machine: with 2
# threads on 2 cores any other process spoils the numbers. About 7 minutes.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
out=$root/bench/out
mkdir -p "$out"

bash "$root/scripts/setup_deps.sh"
model=$(bash "$root/scripts/fetch_model.sh" | tail -n 1)
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DGQA_SANITIZE=OFF >/dev/null
cmake --build build -j "$(nproc)" --target gqa >/dev/null
bash "$root/bench/llamacpp_setup.sh"

printf 'model.sh: load before: %s\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
./build/gqa bench model -m "$model" --threads 1,2 --json "$out/model-gqa.json"
"$root/.venv-llamacpp/bin/python" "$root/bench/llamacpp_bench.py" --model "$model" \
    --threads 1,2 --fa auto,off --json >"$out/model-llamacpp.json"
printf 'model.sh: load after: %s\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
python3 "$root/bench/model_compare.py" "$out/model-gqa.json" "$out/model-llamacpp.json" |
    tee "$out/model.md"
