#!/usr/bin/env bash
# conversion.sh - the results table of docs/conversion.md: perplexity of
# SmolLM2-135M (G = 3, H = 9) and of its conversions without uptraining:
# `repeat` to G = 9 (MHA; must equal the original), and `mean`, `first`,
# `random` to G = 1 (MQA), with the KV bytes per token of each.
#
#   bash bench/conversion.sh            first 8192 tokens of the standard slice
#   TOKENS=0 bash bench/conversion.sh   the whole slice (Luke, 33,321 tokens; ~4x longer)
#
# Builds gqa, fetches the model and the corpus (scripts/fetch_model.sh,
# scripts/fetch_corpus.sh), writes the converted files to bench/out/convert/
# and the table to bench/out/conversion.md. About 3 minutes on 2 cores.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
tokens=${TOKENS:-8192}
out=$root/bench/out/convert
mkdir -p "$out"

bash "$root/scripts/setup_deps.sh"
model=$(bash "$root/scripts/fetch_model.sh" | tail -n 1)
corpus=$(bash "$root/scripts/fetch_corpus.sh" | tail -n 1)
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DGQA_SANITIZE=OFF >/dev/null
cmake --build build -j "$(nproc)" --target gqa >/dev/null
gqa=$root/build/gqa

# the converter's summary line ends "KV cache per token at f16: OLD -> NEW bytes"
declare -A kv
convert() { # OUT G METHOD
    local line
    line=$("$gqa" convert "$model" "$out/$1" --kv-heads "$2" --method "$3" --seed 1 2>&1 |
        grep 'KV cache per token' | tail -n 1)
    kv[orig]=$(sed -E 's/.*: ([0-9]+) -> ([0-9]+) bytes.*/\1/' <<<"$line")
    kv[$1]=$(sed -E 's/.*: ([0-9]+) -> ([0-9]+) bytes.*/\2/' <<<"$line")
}
convert g9-repeat.gguf 9 repeat
for m in mean first random; do convert "g1-$m.gguf" 1 "$m"; done

limit=()
[ "$tokens" != 0 ] && limit=(--max-tokens "$tokens")
{
    printf 'Perplexity on %s (%s), ctx 512, stride 256, f16 KV; %s\n\n' \
        "$(basename "$corpus")" "${tokens/#0/all} tokens" "$(date -u '+%Y-%m-%d %H:%M UTC')"
    printf '| model | KV heads G | KV bytes/token (f16) | perplexity |\n|---|---|---|---|\n'
    row() { # NAME FILE G KV-BYTES
        local ppl
        ppl=$("$gqa" perplexity -m "$2" -f "$corpus" --ctx 512 "${limit[@]}" --quiet |
            awk '/^ppl /{print $2}')
        printf '| %s | %d | %s | %s |\n' "$1" "$3" "$4" "$ppl"
    }
    row "original" "$model" 3 "${kv[orig]}"
    row "repeat -> G = 9 (MHA)" "$out/g9-repeat.gguf" 9 "${kv[g9-repeat.gguf]}"
    for m in mean first random; do
        row "$m -> G = 1 (MQA), no uptraining" "$out/g1-$m.gguf" 1 "${kv[g1-$m.gguf]}"
    done
} | tee "$root/bench/out/conversion.md"
