#!/usr/bin/env python3
"""model_compare.py - side-by-side table of `gqa bench model --json` and
bench/llamacpp_bench.py --json results (both measured in one bench/model.sh
run), in Markdown, for bench/RESULTS.md.

Usage: model_compare.py GQA_JSON LLAMACPP_JSON
"""
import json
import sys


def main():
    gqa = json.load(open(sys.argv[1]))
    llc = json.load(open(sys.argv[2]))
    rows = []
    llc_by = {}
    for r in llc["results"]:
        llc_by.setdefault(r["threads"], []).append(r)
    contexts = [g["context"] for g in gqa["results"][0]["gen"]]
    head = "| threads | engine | prompt tok/s |" + "".join(
        f" gen@{c} tok/s |" for c in contexts)
    rows.append(head)
    rows.append("|" + "---|" * (3 + len(contexts)))
    for r in gqa["results"]:
        t = int(r["threads"])
        cells = [f"{r['prompt_tok_s']:.1f}"] + [f"{g['tok_s']:.1f}" for g in r["gen"]]
        rows.append(f"| {t} | gqa ({gqa['kernel']}) | " + " | ".join(cells) + " |")
        best = {}
        for lr in llc_by.get(t, []):
            label = f"llama.cpp (flash_attn {lr['flash_attn']})"
            cells = [f"{lr['prompt']['median_tok_s']:.1f}"] + [
                f"{lr['gen'][str(c)]['median_tok_s']:.1f}" for c in contexts]
            rows.append(f"| {t} | {label} | " + " | ".join(cells) + " |")
            for c in contexts:
                v = lr["gen"][str(c)]["median_tok_s"]
                best[c] = max(best.get(c, 0.0), v)
        if best:
            ratios = [f"{g['tok_s'] / best[g['context']]:.2f}x" for g in r["gen"]]
            rows.append(f"| {t} | gqa / best llama.cpp (generation) | | " +
                        " | ".join(ratios) + " |")
    print("\n".join(rows))
    m = llc["meta"]
    print(f"\nllama.cpp: llama-cpp-python {m['llama_cpp_python']} ({m['llama_cpp']}), "
          f"{m.get('extra_bufts_note', 'extra buffer types on')}")
    print(f"gqa: kernel set {gqa['kernel']}, KV {gqa['kv_type']}, median of {gqa['reps']} runs; "
          f"llama.cpp: KV f16, median of {m['reps']} runs; same token ids ({m['prompt_ids']})")


if __name__ == "__main__":
    main()
