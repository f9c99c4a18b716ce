#!/usr/bin/env bash
# test_train.sh - `gqa train`, `gqa uptrain` and `gqa bench train` end to end
# on a text made here: train a tiny model a few steps, train it again (the
# same file, byte for byte), stop and resume (the same file as not stopping),
# convert it to fewer KV heads, uptrain it, and have gqa run / perplexity read
# the results. Bad command lines are one error line.
#
#   test_train.sh GQA_BINARY WORKDIR
set -uo pipefail

gqa=$1
work=$2
rm -rf "$work"
mkdir -p "$work"
# shellcheck source=tests/cli/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
one_error() { [ "$(wc -l <"$work/err")" = 1 ] && grep -q "^gqa: error: " "$work/err"; }

# ~30 KB of text with some structure
text=$work/text.txt
for i in $(seq 1 300); do
    printf 'In the beginning %d the word was with the light, and the light shone %d times.\n' \
        "$i" $((i * 7 % 13))
done >"$text"
cat >"$work/cfg.json" <<'JSON'
{"base": "tiny", "n_layers": 2, "n_embd": 32, "n_heads": 4, "n_kv_heads": 4, "head_dim": 8,
 "n_ff": 64, "n_ctx": 32, "batch": 4, "seq_len": 32, "lr": 0.003}
JSON
train() { "$gqa" train --config "$work/cfg.json" --data "$text" --threads 2 "$@" \
    >"$work/out" 2>"$work/err"; rc=$?; }

"$gqa" train --help >"$work/out" 2>&1
check "train --help" 'grep -q "usage: gqa train" "$work/out" && grep -q "exp " "$work/out"'

train --steps 8 --out "$work/a.gguf" --log "$work/a.csv"
check "train 8 steps: exit 0, model and optimizer files" \
    '[ "$rc" = 0 ] && [ -s "$work/a.gguf" ] && [ -s "$work/a.opt.gguf" ]'
check "CSV: header and rows 0..8" \
    '[ "$(head -1 "$work/a.csv")" = "step,tokens,lr,train_loss,val_loss,tok_per_s" ] &&
     [ "$(wc -l <"$work/a.csv")" = 10 ] && [ "$(tail -1 "$work/a.csv" | cut -d, -f1,2)" = 8,1024 ]'
check "the loss goes down" \
    'awk -F, "NR==3{a=\$4} END{exit !(\$4 < a)}" "$work/a.csv"'
check "no carriage returns when stderr is not a terminal" '! grep -q $'"'"'\r'"'"' "$work/err"'
check "progress lines with loss, tokens/s and ETA" 'grep -q "train 8/8  loss .* tok/s  ETA" "$work/err"'

train --steps 8 --out "$work/b.gguf"
check "the same run again writes the same file" 'cmp -s "$work/a.gguf" "$work/b.gguf"'

train --steps 4 --schedule-steps 8 --out "$work/r.gguf" --quiet
check "--quiet prints nothing" '[ "$rc" = 0 ] && [ ! -s "$work/err" ]'
"$gqa" train --resume "$work/r.gguf" --data "$text" --threads 2 --steps 8 --out "$work/r8.gguf" \
    >"$work/out" 2>"$work/err"
check "resume 4 -> 8 == 8 in a row (byte-identical checkpoint)" 'cmp -s "$work/a.gguf" "$work/r8.gguf"'

"$gqa" convert "$work/a.gguf" "$work/g2.gguf" --kv-heads 2 >"$work/out" 2>"$work/err"
check "gqa convert reads the checkpoint" '[ $? = 0 ] && grep -q "4 -> 2 KV heads" "$work/out"'

"$gqa" uptrain --from "$work/a.gguf" --kv-heads 2 --method mean --fraction 0.5 --data "$text" \
    --threads 2 --out "$work/u.gguf" --log "$work/u.csv" >"$work/out" 2>"$work/err"
rc=$?
check "uptrain 0.5 x 8 steps: exit 0" '[ "$rc" = 0 ] && [ -s "$work/u.gguf" ]'
check "uptrain takes the source's optimizer settings (lr 0.003 from cfg.json)" \
    'grep -q "from the source.s sidecar (lr 0.003, min lr 0.0003" "$work/err"'
check "uptrain: 4 steps, 12 in the lineage" \
    'grep -q "4 steps = 0.5 x 8" "$work/err" && grep -q "(12 steps" "$work/err" &&
     [ "$(wc -l <"$work/u.csv")" = 6 ]'
"$gqa" uptrain --from "$work/a.gguf" --kv-heads 1 --method random --steps 2 --data "$text" \
    --threads 2 --out "$work/u1.gguf" --quiet >"$work/out" 2>"$work/err"
check "uptrain to MQA with random heads, --steps" '[ $? = 0 ] && [ -s "$work/u1.gguf" ]'

"$gqa" run -m "$work/u.gguf" -p "In the" -n 24 --seed 1 --threads 2 >"$work/out" 2>"$work/err"
check "gqa run prints text from the uptrained model" \
    '[ $? = 0 ] && [ "$(head -c 6 "$work/out")" = "In the" ] && [ "$(wc -c <"$work/out")" -gt 8 ]'
"$gqa" perplexity -m "$work/u.gguf" -f "$text" --ctx 32 --max-tokens 600 --threads 2 \
    >"$work/out" 2>"$work/err"
check "gqa perplexity reads it" '[ $? = 0 ] && grep -q "^ppl [0-9.]* | 599 scored tokens" "$work/out"'

"$gqa" bench train --config "$work/cfg.json" --threads 1,2 --steps 2 --warmup 0 >"$work/out" 2>&1
check "bench train: a row per thread count" \
    '[ $? = 0 ] && grep -q "tokens/s" "$work/out" && grep -Eq "^2 +[0-9.]+ " "$work/out"'

# bad command lines: one error line, exit 2 (usage) or 1 (failure)
bad() { "$gqa" "$@" >"$work/out" 2>"$work/err"; rc=$?; }
bad train --data "$text" --out "$work/x.gguf"
check "train without --steps: exit 2, one line" '[ "$rc" = 2 ] && one_error && grep -q -- "--steps" "$work/err"'
bad train --config nosuch --data "$text" --steps 2 --out "$work/x.gguf"
check "unknown preset: one line" '[ "$rc" = 2 ] && one_error'
bad train --config "$work/cfg.json" --data "$work/none.txt" --steps 2 --out "$work/x.gguf"
check "missing data file: exit 1, one line" '[ "$rc" = 1 ] && one_error'
bad train --config "$work/cfg.json" --data "$text" --steps 2 --out "$work/x.gguf" --lr -1
check "negative --lr: one line" '[ "$rc" = 2 ] && one_error'
bad train --config "$work/cfg.json" --data "$text" --steps 2 --out "$work/x.gguf" --bogus
check "unknown option: one line" '[ "$rc" = 2 ] && one_error'
bad uptrain --from "$work/a.gguf" --data "$text" --out "$work/x.gguf"
check "uptrain without --kv-heads: one line" '[ "$rc" = 2 ] && one_error'
bad uptrain --from "$work/a.gguf" --kv-heads 3 --data "$text" --out "$work/x.gguf"
check "uptrain to 3 of 4 heads: exit 1, one line" '[ "$rc" = 1 ] && one_error && [ ! -e "$work/x.gguf" ]'
bad uptrain --from "$work/a.gguf" --kv-heads 2 --method median --data "$text" --out "$work/x.gguf"
check "unknown --method: one line" '[ "$rc" = 2 ] && one_error'
printf '{"base": "tiny", "n_vocab": 100}' >"$work/v100.json"
bad train --config "$work/v100.json" --data "$text" --steps 2 --out "$work/x.gguf"
check "a vocabulary below 256: one line" '[ "$rc" = 2 ] && one_error && grep -q "256" "$work/err"'
if [ -f "${GQA_SOURCE_DIR:-.}/models/SmolLM2-135M-Instruct.Q4_1.gguf" ]; then
    bad uptrain --from "${GQA_SOURCE_DIR:-.}/models/SmolLM2-135M-Instruct.Q4_1.gguf" --kv-heads 1 \
        --steps 1 --data "$text" --out "$work/x.gguf"
    check "uptrain from a BPE model: one line" '[ "$rc" = 1 ] && one_error && grep -q "byte-level" "$work/err"'
fi
bad train --resume "$work/a.gguf" --config tiny --data "$text" --steps 9 --out "$work/x.gguf"
check "--config with --resume: one line" '[ "$rc" = 2 ] && one_error'
bad train --resume "$work/a.gguf" --data "$text" --steps 8 --out "$work/x.gguf"
check "resume with nothing left to do: one line" '[ "$rc" = 2 ] && one_error'

[ "$fails" = 0 ] && echo "all passed" || echo "$fails failed"
[ "$fails" = 0 ]
