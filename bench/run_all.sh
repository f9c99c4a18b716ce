#!/usr/bin/env bash
# run_all.sh - the measurements quoted in bench/RESULTS.md, in one go.
#
#   bash bench/run_all.sh [OUTDIR]      (default OUTDIR: bench/out, gitignored)
#
# Builds Release, then runs the full `gqa bench attn` and `gqa bench kv` three
# times each with JSON reports and prints their medians (bench/median_runs.py:
# single runs on this VM swing by 10-20%), plus `gqa bench attn` at 1 thread
# for the per-core numbers.
# Run it on an otherwise idle machine: with 2 OpenMP threads on 2 cores any
# other process inflates the times (the header prints the load average).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=${1:-$root/bench/out}
cd "$root"
bash scripts/setup_deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j "$(nproc)" --target gqa
mkdir -p "$out"
for i in 1 2 3; do
    ./build/gqa bench attn --json "$out/attn$i.json" | tee "$out/attn$i.txt"
done
python3 bench/median_runs.py "$out"/attn[123].json | tee "$out/attn-median.txt"
./build/gqa bench attn --threads 1 --shapes 'llama3-8b-decode-4k*,llama3-8b-mqa-decode-4k*' \
    --json "$out/attn-1thread.json" | tee "$out/attn-1thread.txt"
for i in 1 2 3; do
    ./build/gqa bench kv --json "$out/kv$i.json" | tee "$out/kv$i.txt"
done
python3 bench/median_runs.py "$out"/kv[123].json | tee "$out/kv-median.txt"
