#!/usr/bin/env bash
# train.sh - training speed of gqa against PyTorch (CPU) on the same model, in
# one run: `gqa bench train` and bench/torch_train.py at 1 and 2 threads
# (forward + backward + AdamW, median of the timed steps after a warm-up
# step), plus `gqa bench gemm` (the trainer's matmul against the FMA peak) at
# each thread count. Appends a section to bench/RESULTS.md with the exact
# commands, date, CPU, load before and after, both numbers and their ratio.
#
#   bash bench/train.sh [--config exp] [--threads 1,2] [--steps 5] [--no-append]
#
# The torch side reads the model from the header line `gqa bench train`
# prints (layers, width, H, G, d, ff, vocab, batch x tokens), so both time
# the same model; gqa's presets tie the classifier to the embedding, and so
# does the torch model. PyTorch comes from scripts/setup_torch.sh
# (.venv-torch, about 5.5 GB the first time). Run it on a quiet machine: with
# 2 threads on 2 cores any other process spoils the numbers (the load is
# recorded next to them; on a busy machine OMP_WAIT_POLICY=passive keeps
# 2-thread runs from losing most of their time in spinning barriers, and is
# recorded too, as it applies to both programs). Environment: GQA_BUILD_DIR
# (default build), OMP_WAIT_POLICY.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
config=exp threads=1,2 steps=5 append=1
while [ $# -gt 0 ]; do
    case $1 in
    --config) config=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --no-append) append=0; shift ;;
    -h | --help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "train.sh: unknown argument '$1'" >&2; exit 2 ;;
    esac
done
build=${GQA_BUILD_DIR:-build}
out=$root/bench/out/train
mkdir -p "$out"

cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DGQA_SANITIZE=OFF >/dev/null
cmake --build "$build" -j "$(nproc)" --target gqa >/dev/null
bash "$root/scripts/setup_torch.sh"
gqa=$build/gqa
py=$root/.venv-torch/bin/python

load() { cut -d' ' -f1-3 /proc/loadavg; }
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
load_before=$(load)
policy=${OMP_WAIT_POLICY:-default}
echo "train.sh: $date, $cpu, load before: $load_before, OMP_WAIT_POLICY $policy"

gqa_cmd=("$gqa" bench train --config "$config" --threads "$threads" --steps "$steps" --warmup 1)
"${gqa_cmd[@]}" | tee "$out/gqa.txt"
# "gqa bench train: exp - 6 layers, width 256, H 8, G 8, d 32, ff 704, vocab 257; batch 16 x 256 tokens; ..."
hdr=$(head -n 1 "$out/gqa.txt")
num() { sed -n "s/.*$1 \([0-9]*\).*/\1/p" <<<"$hdr"; }
layers=$(sed -n 's/.* - \([0-9]*\) layers.*/\1/p' <<<"$hdr")
batch=$(sed -n 's/.*batch \([0-9]*\) x.*/\1/p' <<<"$hdr")
seq=$(sed -n 's/.*batch [0-9]* x \([0-9]*\) tokens.*/\1/p' <<<"$hdr")
torch_cmd=("$py" "$root/bench/torch_train.py" --layers "$layers" --embd "$(num width)"
    --heads "$(num H)" --kv-heads "$(num G)" --head-dim "$(num d)" --ff "$(num ff)"
    --vocab "$(num vocab)" --batch "$batch" --seq-len "$seq" --threads "$threads"
    --steps "$steps" --warmup 1)
"${torch_cmd[@]}" | tee "$out/torch.txt"

gemm_txt=()
for t in ${threads//,/ }; do
    "$gqa" bench gemm --threads "$t" --tokens $((batch * seq)) | tee "$out/gemm-$t.txt"
    gemm_txt+=("$t")
done
load_after=$(load)
echo "train.sh: load after: $load_after"

# tokens/s per thread count: gqa's table rows start with the thread count
gqa_tps() { awk -v t="$1" '$1 == t && NF == 6 { print $6 }' "$out/gqa.txt"; }
torch_tps() { sed -n "s/^RESULT threads=$1 tok_s=\([0-9.]*\).*/\1/p" "$out/torch.txt"; }
table="| threads | gqa tokens/s | PyTorch tokens/s | gqa / PyTorch |
|---|---|---|---|"
for t in ${threads//,/ }; do
    g=$(gqa_tps "$t") p=$(torch_tps "$t")
    table+=$'\n'"| $t | $g | $(printf '%.0f' "$p") | $(awk -v g="$g" -v p="$p" 'BEGIN { printf "%.2fx", g / p }') |"
done
echo "$table"

if [ "$append" = 1 ]; then
    {
        printf '\n## Issue 6: training speed, gqa vs PyTorch (`bash bench/train.sh`)\n\n'
        printf '%s, %s, load average before %s, after %s, OMP_WAIT_POLICY %s.\n' \
            "$date" "$cpu" "$load_before" "$load_after" "$policy"
        printf '`%s` against\n' \
            "gqa bench train --config $config --threads $threads --steps $steps --warmup 1"
        printf '`bench/torch_train.py` (%s) on the same model, same batch, same run.\n\n' \
            "$(head -n 1 "$out/torch.txt" | sed 's/:.*//')"
        printf '%s\n\n' "$table"
        printf '```\n'
        cat "$out/gqa.txt"
        printf '\n'
        cat "$out/torch.txt"
        for t in "${gemm_txt[@]}"; do
            printf '\n'
            cat "$out/gemm-$t.txt"
        done
        printf '```\n'
    } >>"$root/bench/RESULTS.md"
    echo "train.sh: appended to bench/RESULTS.md"
fi
