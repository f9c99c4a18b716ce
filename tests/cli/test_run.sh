#!/usr/bin/env bash
# test_run.sh - `gqa run` and `gqa chat` end to end on SmolLM2.
#
#   test_run.sh GQA_BINARY MODEL WORKDIR
#
# Greedy generation gives the known continuation, the report shows the KV
# bytes against MHA, chat keeps the KV cache across turns, and bad input is
# one error line with a non-zero exit. Exit 77 (skip) without the model,
# unless GQA_REQUIRE_MODEL=1.
set -uo pipefail

gqa=$1
model=${GQA_MODEL_PATH:-$2}
work=$3
mkdir -p "$work"
# shellcheck source=tests/cli/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_model "$model"

# greedy run: the continuation the NumPy oracle also produces
"$gqa" run -m "$model" -p "The capital of France is" -n 8 --temp 0 \
    >"$work/run.out" 2>"$work/run.err"
rc=$?
check "gqa run exits 0 (got $rc)" '[ "$rc" = 0 ]'
check "greedy continuation starts with ' Paris.'" \
    'grep -q "^The capital of France is Paris\." "$work/run.out"'
check "report: prompt and generation tok/s" \
    'grep -Eq "prompt: 5 tokens, [0-9.]+ tok/s \| generation: 8 tokens, [0-9.]+ tok/s" "$work/run.err"'
check "report: KV bytes with G = 3 and the MHA cost (3.0x)" \
    'grep -Eq "KV cache \(f16\): 13 tokens x 23040 B .* G = 3 KV heads; MHA \(G = H = 9\) would need .* \(3\.0x more\)" "$work/run.err"'

# the same with q8_0 KV and one thread still answers Paris
"$gqa" run -m "$model" -p "The capital of France is" -n 3 --temp 0 --kv-type q8_0 --threads 1 \
    >"$work/q8.out" 2>"$work/q8.err"
check "q8_0 KV, 1 thread" 'grep -q "Paris" "$work/q8.out" && grep -q "KV cache (q8_0)" "$work/q8.err"'

# chat: two turns, the second only feeds its own tokens
printf 'What is the capital of France?\nAnd what is the capital of Italy?\n' |
    "$gqa" chat -m "$model" --temp 0 -n 40 >"$work/chat.out" 2>"$work/chat.err"
rc=$?
check "gqa chat exits 0 (got $rc)" '[ "$rc" = 0 ]'
check "chat answers both turns (Paris, Rome)" \
    'grep -q Paris "$work/chat.out" && grep -q Rome "$work/chat.out"'
kv1=$(grep -Eo 'KV cache \(f16\): [0-9]+' "$work/chat.err" | sed -n 1p | grep -Eo '[0-9]+$')
kv2=$(grep -Eo 'KV cache \(f16\): [0-9]+' "$work/chat.err" | sed -n 2p | grep -Eo '[0-9]+$')
p2=$(grep -Eo 'prompt: [0-9]+ tokens' "$work/chat.err" | sed -n 2p | grep -Eo '[0-9]+')
check "chat keeps the KV cache across turns (turn 1: $kv1 tokens; turn 2 feeds $p2 and holds $kv2)" \
    '[ -n "$kv1" ] && [ -n "$kv2" ] && [ -n "$p2" ] && [ "$kv2" -gt "$kv1" ] && [ "$p2" -lt "$((kv2 - kv1 + 1))" ] && [ "$p2" -lt "$kv2" ]'

# errors: one line, non-zero exit, no crash
"$gqa" run -m "$work/missing.gguf" -p hi >"$work/e1.out" 2>"$work/e1.err"
rc=$?
check "missing model: exit 1, one error line naming the file" \
    '[ "$rc" = 1 ] && [ "$(grep -c "gqa: error" "$work/e1.err")" = 1 ] && grep -q missing.gguf "$work/e1.err"'
head -c 1000000 "$model" >"$work/truncated.gguf"
"$gqa" run -m "$work/truncated.gguf" -p hi >"$work/e2.out" 2>"$work/e2.err"
rc=$?
check "truncated model: exit 1, one error line" \
    '[ "$rc" = 1 ] && [ "$(wc -l <"$work/e2.err")" = 1 ] && grep -q "gqa: error: cannot load the model" "$work/e2.err"'
printf 'not a gguf file\n' >"$work/text.gguf"
"$gqa" run -m "$work/text.gguf" -p hi >"$work/e3.out" 2>"$work/e3.err"
rc=$?
check "not a GGUF file: exit 1" '[ "$rc" = 1 ] && grep -q "gqa: error" "$work/e3.err"'
"$gqa" run -m "$model" >"$work/e4.out" 2>"$work/e4.err"
rc=$?
check "no prompt: usage error (exit 2)" '[ "$rc" = 2 ]'
"$gqa" run -m "$model" -p hi --kv-type f8 >"$work/e5.out" 2>"$work/e5.err"
rc=$?
check "bad --kv-type: exit 2 naming the value" '[ "$rc" = 2 ] && grep -q f8 "$work/e5.err"'
"$gqa" run -m "$model" -p hi --ctx 4 -n 10 >"$work/e6.out" 2>"$work/e6.err"
rc=$?
check "context too small: exit 1 with a hint" '[ "$rc" = 1 ] && grep -q "context full" "$work/e6.err"'

echo "$fails failed"
[ "$fails" = 0 ]
