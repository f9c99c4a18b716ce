#!/usr/bin/env python3
"""plot_uptraining.py - the summary of bench/uptraining.sh: summary.csv, table.md
and uptraining.png (validation-loss curves) from the run directory.

    python bench/plot_uptraining.py bench/out/uptraining --steps S [--train-seconds N]
                                    [--tag -lr1e-4 --tag-label "lr 1e-4"]

Reads the training logs (step,tokens,lr,train_loss,val_loss,tok_per_s):
mha.csv, control-gG.csv, gG-METHOD-{5,10}.csv; with --tag T also the second
uptraining protocol's gG-METHOD-{5,10}T.csv (bench/uptraining.sh --up-lr);
decode-gG.json (`gqa bench model --json`) and plan-gG.json (`gqa plan
--json`). Needs matplotlib (.venv-torch, scripts/setup_torch.sh).
"""
import argparse
import csv
import json
import math
import os
import sys

GS = (4, 2, 1)
METHODS = ("mean", "first", "random")


def read_log(path):
    """[(step, val_loss)] for the rows that have one, and the median tok/s."""
    vals, tps = [], []
    if not os.path.exists(path):
        return vals, math.nan
    with open(path, newline="") as f:
        for r in csv.DictReader(f):
            if r["val_loss"]:
                vals.append((int(r["step"]), float(r["val_loss"])))
            if float(r["tok_per_s"]) > 0:
                tps.append(float(r["tok_per_s"]))
    tps.sort()
    return vals, (tps[len(tps) // 2] if tps else math.nan)


def final(vals):
    return vals[-1][1] if vals else math.nan


def decode_info(d, g):
    """(decode tok/s, KV bytes per token in the f16 cache) of the G-head model."""
    tok_s = kv = math.nan
    p = os.path.join(d, f"decode-g{g}.json")
    if os.path.exists(p):
        tok_s = json.load(open(p))["results"][0]["gen"][0]["tok_s"]
    p = os.path.join(d, f"plan-g{g}.json")
    if os.path.exists(p):
        for r in json.load(open(p))["rows"]:
            if r["variant"] == "model" and r["dtype"] == "f16":
                kv = r["bytes_per_token"]
    return tok_s, kv


def fmt(x, nd=3):
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{nd}f}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--steps", type=int, required=True, help="the MHA model's steps")
    ap.add_argument("--train-seconds", type=float, default=math.nan)
    ap.add_argument("--tag", default=None, help="file suffix of a second uptraining protocol")
    ap.add_argument("--tag-label", default=None, help="its name in the table and plot")
    a = ap.parse_args()
    d = a.dir

    mha, mha_tps = read_log(os.path.join(d, "mha.csv"))
    controls = {g: read_log(os.path.join(d, f"control-g{g}.csv")) for g in GS}
    tags = [""] + ([a.tag] if a.tag else [])
    label = a.tag_label or a.tag
    up = {}
    for t in tags:
        for g in GS:
            for m in METHODS:
                for pct in (5, 10):
                    up[g, m, pct, t] = read_log(os.path.join(d, f"g{g}-{m}-{pct}{t}.csv"))[0]

    rows = []
    tok8, kv8 = decode_info(d, 8)
    nan = math.nan
    rows.append(dict(variant="MHA", G=8, method="-", converted=nan, up5=nan, up10=nan,
                     b5=nan, b10=nan, control=final(mha), kv=kv8, decode=tok8))
    for g in GS:
        tok, kv = decode_info(d, g)
        for m in METHODS:
            v10 = up[g, m, 10, ""]
            b = a.tag or ""
            rows.append(dict(variant="MQA" if g == 1 else f"GQA-{g}", G=g, method=m,
                             converted=v10[0][1] if v10 and v10[0][0] == 0 else nan,
                             up5=final(up[g, m, 5, ""]), up10=final(v10),
                             b5=final(up.get((g, m, 5, b), [])) if b else nan,
                             b10=final(up.get((g, m, 10, b), [])) if b else nan,
                             control=final(controls[g][0]), kv=kv, decode=tok))

    with open(os.path.join(d, "summary.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["variant", "G", "method", "val_after_conversion", "val_after_5pct",
                    "val_after_10pct", f"val_after_5pct{a.tag or ''}",
                    f"val_after_10pct{a.tag or ''}", "val_from_scratch",
                    "kv_bytes_per_token_f16", "decode_tok_s_1thread"])
        for r in rows:
            w.writerow([r["variant"], r["G"], r["method"], r["converted"], r["up5"], r["up10"],
                        r["b5"], r["b10"], r["control"], r["kv"], r["decode"]])

    extra = f" | after 5% ({label}) | after 10% ({label})" if a.tag else ""
    lines = ["| variant | G | method | val loss after conversion | after 5% | after 10%"
             f"{extra} | from scratch (110%) | KV bytes/token (f16) | decode tok/s (1 thread) |",
             "|---|---|---|---|---|---|" + ("---|---|" if a.tag else "") + "---|---|---|"]
    for r in rows:
        more = f" | {fmt(r['b5'])} | {fmt(r['b10'])}" if a.tag else ""
        lines.append(f"| {r['variant']} | {r['G']} | {r['method']} | {fmt(r['converted'])} "
                     f"| {fmt(r['up5'])} | {fmt(r['up10'])}{more} | {fmt(r['control'])} "
                     f"| {fmt(r['kv'], 0)} | {fmt(r['decode'], 0)} |")
    lines.append("")
    lines.append(f"MHA: {a.steps} steps, final validation loss {fmt(final(mha))} "
                 f"(median {fmt(mha_tps, 0)} training tok/s on 1 thread); "
                 "`from scratch` for MHA is the MHA model itself.")
    for g in GS:
        lines.append(f"control G={g}: median {fmt(controls[g][1], 0)} training tok/s")
    if not math.isnan(a.train_seconds):
        lines.append(f"all training jobs: {a.train_seconds / 60:.1f} min wall clock")
    table = "\n".join(lines) + "\n"
    open(os.path.join(d, "table.md"), "w").write(table)
    print(table)

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FormatStrFormatter

    panels = len(tags) + 1
    fig, axes = plt.subplots(1, panels, figsize=(6.5 * panels, 5))
    ax1 = axes[0]
    colors = {4: "tab:blue", 2: "tab:green", 1: "tab:red"}
    ax1.plot(*zip(*mha), "k-o", ms=3, label="MHA (G=8)")
    for g in GS:
        if controls[g][0]:
            ax1.plot(*zip(*controls[g][0]), "-o", ms=3, color=colors[g],
                     label=f"from scratch G={g}")
    ax1.set_xlabel("training step")
    ax1.set_ylabel("validation loss (nats/byte)")
    ax1.set_title("pre-training: MHA and the GQA/MQA controls")
    ax1.set_ylim(top=min(3.0, ax1.get_ylim()[1]))
    ax1.legend()
    ax1.grid(alpha=0.3)

    styles = {"mean": "-", "first": "--", "random": ":"}
    names = {"": "default schedule (re-warmed to peak lr)"}
    if a.tag:
        names[a.tag] = label
    for ax2, t in zip(axes[1:], tags):
        for g in GS:
            for m in METHODS:
                v = up[g, m, 10, t]
                if v:
                    pts = [(100.0 * st / a.steps, x) for st, x in v]
                    ax2.plot(*zip(*pts), styles[m], marker="o", ms=3, color=colors[g],
                             label=f"G={g} {m}")
            c = final(controls[g][0])
            if not math.isnan(c):
                ax2.axhline(c, color=colors[g], lw=0.8, alpha=0.6)
        ax2.axhline(final(mha), color="k", lw=1.0, label="MHA final")
        ax2.set_yscale("log")
        ax2.yaxis.set_major_formatter(FormatStrFormatter("%.2f"))
        ax2.yaxis.set_minor_formatter(FormatStrFormatter("%.2f"))
        ax2.set_xlabel("uptraining steps, % of the MHA model's steps")
        ax2.set_ylabel("validation loss (log scale)")
        ax2.set_title(f"uptraining, {names[t]}\n(thin lines: from-scratch controls)",
                      fontsize=10)
        ax2.legend(fontsize=7, ncol=3)
        ax2.grid(alpha=0.3, which="both")
    fig.tight_layout()
    fig.savefig(os.path.join(d, "uptraining.png"), dpi=110)
    return 0


if __name__ == "__main__":
    sys.exit(main())
