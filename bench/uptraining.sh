#!/usr/bin/env bash
# uptraining.sh - the uptraining experiment of issue 6 (docs/uptraining.md):
# does a multi-head model converted to grouped-query attention win its quality
# back with a small share of its training compute?
#
#  1. pre-train an MHA model (the `exp` preset: 6 layers, width 256, 8 heads of
#     32, byte tokens, context 256) for --steps S on the whole King James Bible
#     (scripts/fetch_corpus.sh; first 90% of the bytes train, last 10% validate);
#  2. convert it to G = 4, 2, 1 KV heads with mean, first and random, and
#     uptrain each for 5% and for 10% of S (two runs; the 10% run's log starts
#     with the validation loss right after conversion);
#  3. train a GQA model of each G from scratch for 1.1 S steps (the MHA's steps
#     plus the 10% uptraining) as the control;
#  4. decode speed (`gqa bench model`, 1 thread) and KV bytes per token
#     (`gqa plan`, f16 cache) of each G;
#  5. bench/plot_uptraining.py: a summary CSV, a Markdown table and a PNG of
#     the validation-loss curves.
# Every training job runs on one thread, --jobs of them at a time (default 2,
# one per core): on a shared 2-core machine two 1-thread processes lose far
# less to other load than one 2-thread process does. The validation loss of
# every run is measured on the same --eval-windows windows of the split.
#
#   bash bench/uptraining.sh [--steps S] [--batch B] [--jobs N] [--eval-windows W]
#                            [--config exp] [--up-lr X] [--uptrain-only] [--skip-decode]
#
# `gqa uptrain` by default re-warms to the source's peak learning rate and
# decays it over the uptraining steps. --up-lr X uptrains at a constant X
# instead (e.g. 1e-4, where the pre-training schedule ended); its files get
# the suffix -lrX. --uptrain-only reuses mha.gguf and runs only the uptraining
# jobs (no MHA, no controls); --skip-decode skips step 4 and the summary.
#
# Output: bench/out/uptraining/ (gitignored): *.csv training logs (step,
# tokens, lr, train_loss, val_loss, tok_per_s), *.gguf checkpoints, *.txt
# command output, summary.csv, table.md, uptraining.png; copy the PNG to
# docs/uptraining.png by hand. Needs .venv-torch for matplotlib
# (scripts/setup_torch.sh). Environment: GQA_BUILD_DIR (default build), GQA_BIN (a
# gqa binary to use instead of building one).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
steps=300 batch=8 jobs=2 windows=32 config=exp uplr= only_up=0 decode=1
while [ $# -gt 0 ]; do
    case $1 in
    --up-lr) uplr=$2; shift 2 ;;
    --uptrain-only) only_up=1; shift ;;
    --skip-decode) decode=0; shift ;;
    --steps) steps=$2; shift 2 ;;
    --batch) batch=$2; shift 2 ;;
    --jobs) jobs=$2; shift 2 ;;
    --eval-windows) windows=$2; shift 2 ;;
    --config) config=$2; shift 2 ;;
    -h | --help) sed -n '2,38p' "$0"; exit 0 ;;
    *) echo "uptraining.sh: unknown argument '$1'" >&2; exit 2 ;;
    esac
done
build=${GQA_BUILD_DIR:-build}
out=$root/bench/out/uptraining
mkdir -p "$out"
tag=${uplr:+-lr$uplr}
up_opts=()
[ -n "$uplr" ] && up_opts=(--lr "$uplr" --min-lr "$uplr")
if [ "$only_up" = 1 ]; then
    [ -f "$out/mha.gguf" ] || { echo "uptraining.sh: --uptrain-only needs $out/mha.gguf" >&2; exit 1; }
    rm -f "$out"/*"$tag".done "$out"/*"$tag".failed
    touch "$out/mha.done"
else
    rm -f "$out"/*.done "$out"/*.failed
fi

if [ -z "${GQA_BIN:-}" ]; then
    cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DGQA_SANITIZE=OFF >/dev/null
    cmake --build "$build" -j "$(nproc)" --target gqa >/dev/null
fi
bash "$root/scripts/fetch_corpus.sh" >/dev/null
corpus=${GQA_CORPUS_DIR:-$root/data/corpus}/kjv-full.txt
[ -f "$corpus" ] || { echo "uptraining.sh: no $corpus" >&2; exit 1; }
gqa=${GQA_BIN:-$(cd "$build" && pwd)/gqa}
py=$root/.venv-torch/bin/python
[ -x "$py" ] || bash "$root/scripts/setup_torch.sh"

ctrl_steps=$(( (steps * 11 + 9) / 10 ))  # S + 10%
every=$(( steps / 10 > 0 ? steps / 10 : 1 ))
up10=$(( (steps + 9) / 10 ))
every10=$(( up10 / 3 > 0 ? up10 / 3 : 1 ))
common=(--data "$corpus" --threads 1 --quiet --eval-windows "$windows")
log() { printf 'uptraining.sh %s: %s\n' "$(date -u +%H:%M:%S)" "$*"; }

# One job: its command line goes to NAME.cmd, its output to NAME.txt; NAME.done
# or NAME.failed marks the end.
run_job() {
    local name=$1; shift
    printf '%q ' "$@" >"$out/$name.cmd"
    echo >>"$out/$name.cmd"
    local t0=$SECONDS
    if "$@" >"$out/$name.txt" 2>&1; then
        echo "$((SECONDS - t0))" >"$out/$name.done"
        log "$name done in $((SECONDS - t0)) s"
    else
        touch "$out/$name.failed"
        log "$name FAILED (see $out/$name.txt)"
    fi
}

wait_for() {  # a job's .done (or give up when it failed)
    while [ ! -f "$out/$1.done" ]; do
        [ -f "$out/$1.failed" ] && return 1
        sleep 2
    done
}

uptrain_job() {  # G method pct steps eval_every
    local g=$1 method=$2 pct=$3 n=$4 ev=$5 name=g$1-$2-$3$tag
    wait_for mha || { touch "$out/$name.failed"; return; }
    run_job "$name" "$gqa" uptrain --from "$out/mha.gguf" --kv-heads "$g" --method "$method" \
        --steps "$n" --eval-every "$ev" --log "$out/$name.csv" --out "$out/$name.gguf" \
        "${up_opts[@]}" "${common[@]}"
}

control_job() {  # G
    local g=$1
    printf '{"base": "%s", "n_kv_heads": %d, "batch": %d}\n' "$config" "$g" "$batch" \
        >"$out/control-g$g.json"
    run_job "control-g$g" "$gqa" train --config "$out/control-g$g.json" --steps "$ctrl_steps" \
        --eval-every "$every" --log "$out/control-g$g.csv" --out "$out/control-g$g.gguf" \
        --name "control-g$g" "${common[@]}"
}

# The queue, run --jobs at a time. The MHA model goes first; the uptraining
# jobs wait for it (the first control takes longer than the MHA run).
queue=()
[ "$only_up" = 1 ] || queue+=("mha" "control 1")
for g in 4 2 1; do
    for m in mean first random; do
        queue+=("up $g $m 10 $up10 $every10" "up $g $m 5 $(( (steps + 19) / 20 )) 0")
    done
done
[ "$only_up" = 1 ] || queue+=("control 2" "control 4")

start=$SECONDS
log "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), load $(cut -d' ' -f1-3 /proc/loadavg)"
log "config $config, batch $batch, S = $steps steps (controls $ctrl_steps, uptraining $(( (steps + 19) / 20 )) and $up10${uplr:+ at lr $uplr}), $jobs jobs of 1 thread"
[ "$only_up" = 1 ] || printf '{"base": "%s", "batch": %d}\n' "$config" "$batch" >"$out/mha.json"
for item in "${queue[@]}"; do
    while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do
        wait -n || true
    done
    set -- $item
    case $1 in
    mha) run_job mha "$gqa" train --config "$out/mha.json" --steps "$steps" --eval-every "$every" \
        --log "$out/mha.csv" --out "$out/mha.gguf" --name mha "${common[@]}" & ;;
    control) control_job "$2" & ;;
    up) uptrain_job "$2" "$3" "$4" "$5" "$6" & ;;
    esac
    sleep 1
done
wait
train_s=$((SECONDS - start))
log "training done in $train_s s, load $(cut -d' ' -f1-3 /proc/loadavg)"
[ "$decode" = 1 ] || exit 0
if ls "$out"/*.failed >/dev/null 2>&1; then
    log "failed jobs: $(cd "$out" && ls *.failed | tr '\n' ' ')"
    exit 1
fi

# Decode speed and KV bytes per token of each G (1 thread, one job at a time).
for v in mha:8 g4-mean-10:4 g2-mean-10:2 g1-mean-10:1; do
    name=${v%%:*} g=${v##*:}
    "$gqa" bench model -m "$out/$name.gguf" --threads 1 --prompt 64 --contexts 192 --gen 64 \
        --reps 5 --json "$out/decode-g$g.json" >"$out/decode-g$g.txt" 2>&1
    "$gqa" plan --model "$out/$name.gguf" --budget 64MiB --ctx 256 --json >"$out/plan-g$g.json"
done
log "decode benches done, load $(cut -d' ' -f1-3 /proc/loadavg)"

"$py" "$root/bench/plot_uptraining.py" "$out" --steps "$steps" --train-seconds "$train_s"
log "all done in $((SECONDS - start)) s; $out/table.md, $out/uptraining.png"
