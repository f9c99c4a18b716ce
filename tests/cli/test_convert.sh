#!/usr/bin/env bash
# test_convert.sh - `gqa convert` end to end on the synthetic models of
# tests/convert/make_convert_gguf.py (the library's results are checked in
# depth by test_convert; this checks the tool around it).
#
#   test_convert.sh GQA_BINARY DATA_DIR WORKDIR HF_DATA_DIR
#
# DATA_DIR holds make_convert_gguf.py's GGUF files, HF_DATA_DIR
# make_convert_hf.py's Hugging Face directories.
#
# A conversion prints one summary line on stdout and nothing on stderr when
# stderr is not a terminal; --quiet prints nothing; a terminal gets a progress
# bar. Bad input is one error line and exit 1 (exit 2 for a bad command line),
# with no output file left.
set -uo pipefail

gqa=$1
data=$2
work=$3
hf=$4
rm -rf "$work"
mkdir -p "$work"
# shellcheck source=tests/cli/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
run() { "$gqa" convert "$@" >"$work/out" 2>"$work/err"; rc=$?; }
one_error() { [ "$(wc -l <"$work/err")" = 1 ] && grep -q "^gqa: error: " "$work/err"; }

run --help
check "--help exits 0 and shows the usage" '[ "$rc" = 0 ] && grep -q "usage: gqa convert" "$work/out"'

run "$data/mha.gguf" "$work/mqa.gguf" --kv-heads 1
check "mean to 1: exit 0" '[ "$rc" = 0 ] && [ -f "$work/mqa.gguf" ]'
check "summary on stdout: 4 -> 1 KV heads, KV bytes per token" \
    'grep -q "4 -> 1 KV heads by mean; KV cache per token at f16: 768 -> 192 bytes" "$work/out"'
check "no progress bar when stderr is not a terminal" '[ ! -s "$work/err" ]'

run "$data/gqa.gguf" "$work/mha.gguf" --kv-heads=4 --method=repeat --out-type f32 --quiet
check "--quiet repeat: exit 0, silent" '[ "$rc" = 0 ] && [ ! -s "$work/out" ] && [ ! -s "$work/err" ]'
run "$work/mha.gguf" "$work/back.gguf" --kv-heads 2 --out-type keep -q
check "f32 repeat then mean: exit 0" '[ "$rc" = 0 ]'

run "$data/gqa.gguf" "$work/rep.gguf" --kv-heads 4 --method repeat -q
run "$work/rep.gguf" "$work/rt.gguf" --kv-heads 2 -q
check "repeat then mean gives the input back byte for byte" 'cmp -s "$data/gqa.gguf" "$work/rt.gguf"'

run "$data/mha.gguf" "$work/r1.gguf" --kv-heads 2 --method random --seed 5 -q
run "$data/mha.gguf" "$work/r2.gguf" --kv-heads 2 --method random --seed 5 -q
check "--seed: the same seed gives the same file" 'cmp -s "$work/r1.gguf" "$work/r2.gguf"'

if command -v script >/dev/null 2>&1; then
    script -qec "'$gqa' convert '$data/mha.gguf' '$work/tty.gguf' --kv-heads 2" /dev/null \
        >"$work/tty.log" 2>&1
    check "a terminal gets a progress bar that reaches 100%" \
        'grep -q "converting \[##############################\] 100.0%" "$work/tty.log"'
else
    echo "note: 'script' is not installed; the progress bar is not checked"
fi

# errors: one line, exit 1, no output file
run "$data/mha.gguf" "$work/e1.gguf" --kv-heads 3
check "G not dividing: exit 1, one line naming the heads" \
    '[ "$rc" = 1 ] && one_error && grep -q "divide the model.s 4 KV heads" "$work/err" && [ ! -e "$work/e1.gguf" ]'
run "$data/gpt2.gguf" "$work/e2.gguf" --kv-heads 2
check "wrong architecture: exit 1 naming it" \
    '[ "$rc" = 1 ] && one_error && grep -q gpt2 "$work/err" && [ ! -e "$work/e2.gguf" ]'
run "$data/missing_k.gguf" "$work/e3.gguf" --kv-heads 2
check "missing tensor: exit 1 naming it" \
    '[ "$rc" = 1 ] && one_error && grep -q "blk.1.attn_k.weight" "$work/err"'
run "$data/mha.gguf" "$data/mha.gguf" --kv-heads 2
check "OUT == IN: exit 1" '[ "$rc" = 1 ] && one_error && grep -q "input" "$work/err"'
run "$data/mha.gguf" "$work/no/dir/x.gguf" --kv-heads 2
check "unwritable output: exit 1 naming the path" \
    '[ "$rc" = 1 ] && one_error && grep -q "no/dir/x.gguf" "$work/err"'
head -c 50000 "$data/mha.gguf" >"$work/truncated.gguf"
run "$work/truncated.gguf" "$work/e4.gguf" --kv-heads 2
check "truncated input: exit 1" '[ "$rc" = 1 ] && one_error && [ ! -e "$work/e4.gguf" ]'
mkdir -p "$work/hf_model"
run "$work/hf_model" "$work/e5" --kv-heads 1
check "a directory without config.json: exit 1 naming it" \
    '[ "$rc" = 1 ] && one_error && grep -q "config.json" "$work/err" && [ ! -e "$work/e5" ]'
run "$hf/gpt2" "$work/e6" --kv-heads 2
check "a non-Llama Hugging Face model: exit 1 naming it" \
    '[ "$rc" = 1 ] && one_error && grep -q "GPT2LMHeadModel" "$work/err" && [ ! -e "$work/e6" ]'
run "$hf/llama_f32" "$work/e7" --kv-heads 2 --out-type q8_0
check "--out-type q8_0 for a Hugging Face output: exit 1" \
    '[ "$rc" = 1 ] && one_error && grep -q "q8_0" "$work/err" && [ ! -e "$work/e7" ]'
run "$hf/llama_f32" "$work" --kv-heads 2
check "an existing, non-empty Hugging Face OUT: exit 1" \
    '[ "$rc" = 1 ] && one_error && grep -q "not empty" "$work/err"'
check "no temporary file left behind" '[ -z "$(ls "$work" | grep -F .tmp-)" ]'

# Hugging Face directories, and between formats
run "$hf/llama_f16" "$work/hf_mqa" --kv-heads 1
check "HF -> HF: summary, 4 -> 1 KV heads" \
    '[ "$rc" = 0 ] && grep -q "wrote $work/hf_mqa (Hugging Face): 4 -> 1 KV heads by mean; KV cache per token at f16: 384 -> 96 bytes" "$work/out"'
check "HF -> HF: the shards, index, config and other files are there" \
    '[ -f "$work/hf_mqa/model.safetensors.index.json" ] && [ -f "$work/hf_mqa/model-00002-of-00002.safetensors" ] && grep -q "\"num_key_value_heads\":.*1" "$work/hf_mqa/config.json" && cmp -s "$hf/llama_f16/tokenizer.json" "$work/hf_mqa/tokenizer.json"'
run "$hf/llama_f32" "$work/x.gguf" --kv-heads 4 --to gguf -q
check "HF -> GGUF: exit 0, silent" '[ "$rc" = 0 ] && [ ! -s "$work/out" ] && [ -f "$work/x.gguf" ]'
run "$work/x.gguf" "$work/x_hf" --kv-heads 2 --to hf --out-type f16
check "GGUF -> HF: summary" \
    '[ "$rc" = 0 ] && grep -q "(Hugging Face): 4 -> 2 KV heads by mean" "$work/out" && [ -f "$work/x_hf/model.safetensors" ]'
run "$data/mha.gguf" "$work/mha_hf" --kv-heads 4 --to=hf -q
check "GGUF -> HF of quantised K/V: exit 0" '[ "$rc" = 0 ] && [ -f "$work/mha_hf/config.json" ]'
run "$hf/qwen2_bf16" "$work/e8.gguf" --kv-heads 2 --to gguf
check "HF -> GGUF of a Qwen2 model: exit 1 naming it" \
    '[ "$rc" = 1 ] && one_error && grep -q "qwen2" "$work/err" && [ ! -e "$work/e8.gguf" ]'
check "no temporary file left behind" '[ -z "$(ls "$work" | grep -F .tmp-)" ]'

# command-line errors: exit 2
run "$data/mha.gguf" "$work/u.gguf"
check "missing --kv-heads: exit 2" '[ "$rc" = 2 ] && one_error && grep -q -- "--kv-heads" "$work/err"'
run "$data/mha.gguf" --kv-heads 2
check "missing OUT: exit 2" '[ "$rc" = 2 ] && one_error'
run "$data/mha.gguf" "$work/u.gguf" --kv-heads 2 --method median
check "unknown method: exit 2 naming it" '[ "$rc" = 2 ] && grep -q median "$work/err"'
run "$data/mha.gguf" "$work/u.gguf" --kv-heads 2 --out-type q5_k
check "unknown out-type: exit 2" '[ "$rc" = 2 ] && grep -q q5_k "$work/err"'
run "$data/mha.gguf" "$work/u.gguf" --kv-heads two
check "non-numeric --kv-heads: exit 2" '[ "$rc" = 2 ]'
run "$data/mha.gguf" "$work/u.gguf" --kv-heads 2 --seed -1
check "negative --seed: exit 2" '[ "$rc" = 2 ]'
run "$data/mha.gguf" "$work/u.gguf" --kv-heads 2 --bogus
check "unknown option: exit 2" '[ "$rc" = 2 ] && grep -q -- --bogus "$work/err"'

if [ "$fails" -gt 0 ]; then
    echo "$fails check(s) failed"
    exit 1
fi
echo "all checks passed"
