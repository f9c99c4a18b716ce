#!/usr/bin/env bash
# test_perplexity.sh - `gqa perplexity` end to end on SmolLM2.
#
#   test_perplexity.sh GQA_BINARY MODEL WORKDIR PYTHON ORACLE_DIR
#
# A fixed English text gets a perplexity in the range measured for SmolLM2,
# far below the same words shuffled; every token but the first is scored
# once whatever the stride; 1 and 2 threads agree; bad input is one error
# line and a non-zero exit; and the NLL arithmetic (windows included) agrees
# with the float64 NumPy oracle (ORACLE_DIR/llama_oracle.py) on 12 tokens.
# Exit 77 (skip) without the model, unless GQA_REQUIRE_MODEL=1.
set -uo pipefail

gqa=$1
model=${GQA_MODEL_PATH:-$2}
work=$3
python=$4
oracle_dir=$5
mkdir -p "$work"
# shellcheck source=tests/cli/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_model "$model"

# The result lines:
#   ppl 12.345678 | 299 scored tokens | mean NLL 2.513 nats
#   300 tokens, ctx 512, stride 256, 1 windows | ...
ppl_of() { sed -n 's/^ppl \([0-9.]*\) | .*/\1/p' "$1"; }
scored_of() { sed -n 's/^ppl .* | \([0-9]*\) scored tokens | .*/\1/p' "$1"; }
tokens_of() { sed -n 's/^\([0-9]*\) tokens, ctx .*/\1/p' "$1"; }
# awk_true EXPR VAR=VALUE...: exit 0 when the awk expression holds
awk_true() {
    local expr=$1
    shift
    awk "$@" "BEGIN { exit !($expr) }"
}
# run NAME ARGS...: gqa perplexity with ARGS, stdout/stderr/status in $work/NAME.*
run() {
    local name=$1
    shift
    "$gqa" perplexity -m "$model" --quiet "$@" >"$work/$name.out" 2>"$work/$name.err"
    echo $? >"$work/$name.rc"
}
rc_of() { cat "$work/$1.rc"; }

cat >"$work/plain.txt" <<'EOF'
The old lighthouse stands at the end of a long stone pier, and for more than a hundred years it has warned ships away from the rocks below the cliff. In the early days a keeper lived in the small white house beside it. Every evening he climbed the narrow stairs, trimmed the wick, cleaned the glass and lit the lamp, and every morning he climbed them again to put it out. When a storm came in from the sea he stayed awake all night, because the light had to keep turning no matter how hard the wind blew.

Today the lamp is electric and the keeper is gone. A computer in the nearest town switches the light on at dusk and off at dawn, and an engineer visits twice a year to check the batteries and the motor. The house has become a small museum. Visitors can see the keeper's logbook, where he wrote down the weather, the ships that passed and the names of the sailors he helped to rescue. Children like to climb the stairs and look out over the water from the top, where on a clear day you can see the coast of the next county.

Some people in the village say that the lighthouse is no longer needed, since every ship now carries a satellite receiver that tells the captain exactly where he is. Others answer that machines fail, and that a bright light on a dark night is something every sailor understands. For now the light keeps turning, and the ships keep passing safely by.
EOF

# ------------------------------------------------ a plausible perplexity --
# SmolLM2-135M-Instruct Q4_1, f16 KV, ctx 512 (one window): measured 20.43
# with the avx512 kernels; avx2, scalar and ref give 20.434-20.435.
run plain -f "$work/plain.txt" --json "$work/plain.json"
n_plain=$(tokens_of "$work/plain.out")
ppl_plain=$(ppl_of "$work/plain.out")
check "plain text: exit 0 (got $(rc_of plain))" '[ "$(rc_of plain)" = 0 ]'
check "plain text: $n_plain tokens, $(scored_of "$work/plain.out") scored (n - 1)" \
    '[ -n "$n_plain" ] && [ "$(scored_of "$work/plain.out")" = $((n_plain - 1)) ]'
check "plain text: ppl $ppl_plain in 16.3..24.5 (measured 20.43, +-20%)" \
    'awk_true "p >= 16.3 && p <= 24.5" -v p="${ppl_plain:-0}"'
check "JSON report: same ppl and scored tokens" \
    'grep -q "\"ppl\":[[:space:]]*${ppl_plain%????}" "$work/plain.json" && grep -Eq "\"scored_tokens\":[[:space:]]*$((n_plain - 1))\b" "$work/plain.json"'

# the same words in a fixed random order: the model must find them far less likely
tr -s ' \n' '\n\n' <"$work/plain.txt" | shuf --random-source=<(yes gqa) | tr '\n' ' ' \
    >"$work/shuffled.txt"
run shuffled -f "$work/shuffled.txt"
ppl_shuf=$(ppl_of "$work/shuffled.out")
check "shuffled words: ppl $ppl_shuf > 10 x $ppl_plain (measured 772)" \
    'awk_true "s > 10 * p" -v s="${ppl_shuf:-0}" -v p="${ppl_plain:-1e9}"'

# ---------------------------------------- every token scored exactly once --
# (one thread: on a busy machine two OpenMP threads can be many times slower)
for cfg in 64:64:200 64:24:200 128:64:200 8:1:40; do
    IFS=: read -r c s n <<<"$cfg"
    run "w${c}_$s" -f "$work/plain.txt" --ctx "$c" --stride "$s" --max-tokens "$n" --threads 1
    check "ctx $c stride $s: exit 0, $((n - 1)) of $n tokens scored" \
        '[ "$(rc_of "w${c}_$s")" = 0 ] && [ "$(tokens_of "$work/w${c}_$s.out")" = "$n" ] && [ "$(scored_of "$work/w${c}_$s.out")" = $((n - 1)) ]'
done
check "ctx 64 stride 64: 4 windows (targets 1..64, 65..128, 129..192, 193..199)" \
    'grep -q "ctx 64, stride 64, 4 windows" "$work/w64_64.out"'
check "more context per token gives a lower ppl (stride 24 < stride 64 at ctx 64)" \
    'awk_true "a < b" -v a="$(ppl_of "$work/w64_24.out")" -v b="$(ppl_of "$work/w64_64.out")"'

# ------------------------------------------------------ 1 and 2 threads --
run t1 -f "$work/plain.txt" --ctx 128 --stride 64 --threads 1
run t2 -f "$work/plain.txt" --ctx 128 --stride 64 --threads 2
p1=$(ppl_of "$work/t1.out")
p2=$(ppl_of "$work/t2.out")
check "1 and 2 threads agree to 4 significant digits ($p1 vs $p2)" \
    'awk_true "a > 0 && (a - b < 0 ? b - a : a - b) <= 5e-5 * a" -v a="${p1:-0}" -v b="${p2:-1}"'

# ----------------------------------------------------------------- errors --
# one_error NAME STATUS WHAT: exit STATUS and exactly one line, "gqa: error: ..."
one_error() {
    local name=$1 status=$2
    check "$3: exit $status, one error line" \
        '[ "$(rc_of "$name")" = "$status" ] && [ "$(wc -l <"$work/$name.err")" = 1 ] && grep -q "^gqa: error: " "$work/$name.err"'
}
run e_missing -f "$work/no-such-file.txt"
one_error e_missing 1 "missing text file"
check "missing text file: the message names it" 'grep -q "no-such-file.txt" "$work/e_missing.err"'
: >"$work/empty.txt"
run e_empty -f "$work/empty.txt"
one_error e_empty 1 "empty text"
printf 'a' >"$work/one.txt"
run e_one -f "$work/one.txt"
one_error e_one 1 "a one-token text"
run e_noarg
one_error e_noarg 2 "no -f"
run e_ctx -f "$work/plain.txt" --ctx 1
one_error e_ctx 2 "--ctx 1"
run e_stride0 -f "$work/plain.txt" --stride 0
one_error e_stride0 2 "--stride 0"
run e_stride -f "$work/plain.txt" --ctx 64 --stride 65
one_error e_stride 2 "--stride larger than --ctx"
run e_kv -f "$work/plain.txt" --kv-type f8
one_error e_kv 2 "bad --kv-type"
run e_opt -f "$work/plain.txt" --bogus
one_error e_opt 2 "unknown option"
run e_max -f "$work/plain.txt" --max-tokens 1
one_error e_max 2 "--max-tokens 1"
printf 'not a gguf file\n' >"$work/text.gguf"
"$gqa" perplexity -m "$work/text.gguf" -f "$work/plain.txt" >"$work/e_model.out" \
    2>"$work/e_model.err"
echo $? >"$work/e_model.rc"
one_error e_model 1 "a file that is not a model"
run e_json -f "$work/plain.txt" --json "$work/no-such-dir/out.json"
one_error e_json 1 "unwritable --json path"

# ---------------------------------------- the NLL against the NumPy oracle --
# 12 tokens, once as one window (ctx 16) and once as three windows (ctx 6,
# stride 4: targets 1..6 from tokens 0..5, 7..10 from 4..9, 11 from 8..11). The reference kernels and an f32 KV cache
# keep the runtime within 1e-4 of the float64 oracle's logits, so the
# perplexities must agree to 1e-3: what is compared is the windowing and the
# log-softmax arithmetic.
export GQA_KERNEL=ref
run o16 -f "$work/plain.txt" --max-tokens 12 --ctx 16 --kv-type f32 --threads 1 --dump-tokens "$work/o.ids"
run o6 -f "$work/plain.txt" --max-tokens 12 --ctx 6 --stride 4 --kv-type f32 --threads 1
unset GQA_KERNEL
check "oracle runs: exit 0, 12 token ids dumped" \
    '[ "$(rc_of o16)" = 0 ] && [ "$(rc_of o6)" = 0 ] && [ "$(wc -l <"$work/o.ids")" = 12 ]'
"$python" - "$oracle_dir" "$model" "$work/o.ids" "$(ppl_of "$work/o16.out")" \
    "$(ppl_of "$work/o6.out")" >"$work/oracle.out" 2>&1 <<'PY'
# Perplexity from the oracle's float64 logits, windows written out
# independently: token t (1..n-1) is scored by the first window [b, b + ctx)
# (b = 0, stride, 2 stride, ...) that holds token t - 1, from that window's
# row t - 1 - b, with the window's tokens alone as context.
import math
import sys

oracle_dir, model, ids_path, got16, got6 = sys.argv[1:6]
sys.path.insert(0, oracle_dir)
import numpy as np
from llama_oracle import Llama

ids = [int(x) for x in open(ids_path).read().split()]
n = len(ids)
m = Llama(model)


def ppl(ctx, stride):
    nll = []
    cache = {}
    for t in range(1, n):
        b = 0
        while not (b <= t - 1 < b + ctx):
            b += stride
        if b not in cache:
            m.reset()
            cache[b] = m.forward(ids[b:min(b + ctx, n)])
        row = cache[b][t - 1 - b]
        mx = row.max()
        nll.append(mx + math.log(np.exp(row - mx).sum()) - row[ids[t]])
    return math.exp(sum(nll) / len(nll)), len(cache)


bad = 0
for (ctx, stride), got in (((16, 16), got16), ((6, 4), got6)):
    want, windows = ppl(ctx, stride)
    got = float(got) if got else float("nan")
    rel = abs(got - want) / want
    ok = rel <= 1e-3
    bad += not ok
    print(f"{'ok  ' if ok else 'FAIL'} ctx {ctx} stride {stride}: gqa {got:.6f}, oracle "
          f"{want:.6f} ({windows} windows), relative error {rel:.2e} (limit 1e-3)")
sys.exit(1 if bad else 0)
PY
prc=$?
sed 's/^/     /' "$work/oracle.out"
check "perplexity agrees with the NumPy oracle (12 tokens, 1 and 3 windows)" '[ "$prc" = 0 ]'

echo "$fails failed"
[ "$fails" = 0 ]
