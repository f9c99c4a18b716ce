#!/usr/bin/env python3
"""plot_serving.py - the plot and the Markdown table of bench/serving.sh.

  plot_serving.py RESULTS.csv --png OUT.png [--table OUT.md] [--title TEXT]

RESULTS.csv holds the rows bench/serve_load.py appends (one per model label and
client count). The PNG has four panels against the number of clients: sustained
concurrent sequences (mean of the server's active-sequence gauge over the
window, the band reaching up to its max), aggregate generation tokens
(per second of wall clock, and per CPU-second of the server process, which
other load on the machine hardly changes), request latency p50/p99 and time to
first token p50/p99, one colour per label.
The table lists the same numbers, the mean time of one batched step and the
server's tokens per CPU-second, one row per label and client count; with
exactly two labels a second table puts them side by side with the ratios of
the first to the second (active sequences, tokens per server CPU-second).
"""
import argparse
import csv
import math
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FuncFormatter, LogLocator  # noqa: E402


def num(x):
    try:
        return float(x)
    except (TypeError, ValueError):
        return math.nan


def load(path):
    rows = {}
    with open(path, newline="") as f:
        for r in csv.DictReader(f):
            rows.setdefault(r["label"], []).append({k: (v if k == "label" else num(v))
                                                    for k, v in r.items()})
    if not rows:
        sys.exit(f"plot_serving: no rows in {path}")
    for v in rows.values():
        v.sort(key=lambda r: r["clients"])
    return rows


def col(rs, key):
    return [r[key] for r in rs]


def plot(rows, png, title):
    fig, ax = plt.subplots(2, 2, figsize=(11, 8), constrained_layout=True)
    for i, (label, rs) in enumerate(rows.items()):
        c = f"C{i}"
        x = col(rs, "clients")
        a = ax[0][0]
        a.plot(x, col(rs, "active_mean"), "o-", color=c, label=f"{label} mean")
        a.fill_between(x, col(rs, "active_mean"), col(rs, "active_max"), color=c, alpha=0.15)
        a.plot(x, col(rs, "active_max"), "^:", color=c, label=f"{label} max")
        ax[0][1].plot(x, col(rs, "gen_tok_s"), "o-", color=c, label=f"{label}, per second")
        if not all(math.isnan(v) for v in col(rs, "tok_per_cpu_s")):
            ax[0][1].plot(x, col(rs, "tok_per_cpu_s"), "s--", color=c,
                          label=f"{label}, per server CPU-second")
        ax[1][0].plot(x, col(rs, "lat_p50_s"), "o-", color=c, label=f"{label} p50")
        ax[1][0].plot(x, col(rs, "lat_p99_s"), "s--", color=c, label=f"{label} p99")
        ax[1][1].plot(x, col(rs, "ttft_p50_s"), "o-", color=c, label=f"{label} p50")
        ax[1][1].plot(x, col(rs, "ttft_p99_s"), "s--", color=c, label=f"{label} p99")
    names = [("sustained concurrent sequences", "active sequences"),
             ("aggregate generation throughput", "generated tokens"),
             ("request latency", "seconds"), ("time to first token", "seconds")]
    xs = sorted({r["clients"] for rs in rows.values() for r in rs})
    for a, (t, y) in zip(ax.flat, names):
        a.set_title(t)
        a.set_ylabel(y)
        a.set_xlabel("concurrent clients")
        a.set_xscale("log", base=2)
        a.set_xticks(xs, [str(int(v)) for v in xs])
        a.grid(True, alpha=0.3)
        a.legend(fontsize=8)
    ax[0][0].set_ylim(bottom=0)
    ax[0][1].set_ylim(bottom=0)
    for a in (ax[1][0], ax[1][1]):
        a.set_yscale("log")
        a.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        a.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        a.yaxis.set_minor_formatter(FuncFormatter(lambda v, _: ""))
    if title:
        fig.suptitle(title, fontsize=10)
    fig.savefig(png, dpi=100)


def fmt(v, digits=2):
    return "-" if math.isnan(v) else f"{v:.{digits}f}"


def side_by_side(rows):
    """The two labels per client count, with the ratios first / second."""
    (la, ra), (lb, rb) = rows.items()
    byc = {r["clients"]: r for r in rb}

    def ratio(a, b):
        return f"**{a / b:.2f}x**" if b and not math.isnan(a) and not math.isnan(b) else "-"

    out = [f"| clients | active mean (max): {la} / {lb} | {la} / {lb} | gen tok/s: {la} / {lb} "
           f"| tok per server CPU-s: {la} / {lb} | {la} / {lb} | step ms: {la} / {lb} "
           f"| latency p50 (p99) s: {la} / {lb} | TTFT p50 s: {la} / {lb} | load |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    for g in ra:
        m = byc.get(g["clients"])
        if m is None:
            continue
        out.append(
            f"| {int(g['clients'])} | {fmt(g['active_mean'], 1)} ({fmt(g['active_max'], 0)}) / "
            f"{fmt(m['active_mean'], 1)} ({fmt(m['active_max'], 0)}) | "
            f"{ratio(g['active_mean'], m['active_mean'])} | {fmt(g['gen_tok_s'], 1)} / "
            f"{fmt(m['gen_tok_s'], 1)} | {fmt(g.get('tok_per_cpu_s', math.nan), 1)} / "
            f"{fmt(m.get('tok_per_cpu_s', math.nan), 1)} | "
            f"{ratio(g.get('tok_per_cpu_s', math.nan), m.get('tok_per_cpu_s', math.nan))} | "
            f"{fmt(g.get('step_ms', math.nan), 1)} / {fmt(m.get('step_ms', math.nan), 1)} | "
            f"{fmt(g['lat_p50_s'], 1)} ({fmt(g['lat_p99_s'], 1)}) / {fmt(m['lat_p50_s'], 1)} "
            f"({fmt(m['lat_p99_s'], 1)}) | {fmt(g['ttft_p50_s'])} / {fmt(m['ttft_p50_s'])} | "
            f"{fmt(min(g['load1_before'], m['load1_before']), 1)}-"
            f"{fmt(max(g['load1_after'], m['load1_after']), 1)} |")
    return out


def table(rows):
    lines = ["| model | clients | active mean / max | KV blocks used max / total | gen tok/s "
             "| step ms | tok per server CPU-s | latency p50 / p99 s | TTFT p50 / p99 s | requests "
             "| 429 | load |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for label, rs in rows.items():
        for r in rs:
            lines.append(
                f"| {label} | {int(r['clients'])} | {fmt(r['active_mean'], 1)} / "
                f"{fmt(r['active_max'], 0)} | {fmt(r['kv_used_max'], 0)} / "
                f"{fmt(r['kv_total'], 0)} | {fmt(r['gen_tok_s'], 1)} | "
                f"{fmt(r.get('step_ms', math.nan), 1)} | {fmt(r.get('tok_per_cpu_s', math.nan), 1)} | "
                f"{fmt(r['lat_p50_s'])} / "
                f"{fmt(r['lat_p99_s'])} | {fmt(r['ttft_p50_s'])} / {fmt(r['ttft_p99_s'])} | "
                f"{int(r['requests_ok'])} | {int(r['n_429'])} | "
                f"{fmt(r['load1_before'])}-{fmt(r['load1_after'])} |")
    if len(rows) == 2:
        lines += [""] + side_by_side(rows)
    return "\n".join(lines) + "\n"


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("csv")
    p.add_argument("--png", required=True)
    p.add_argument("--table", default="")
    p.add_argument("--title", default="")
    a = p.parse_args()
    rows = load(a.csv)
    plot(rows, a.png, a.title)
    t = table(rows)
    if a.table:
        with open(a.table, "w") as f:
            f.write(t)
    sys.stdout.write(t)


if __name__ == "__main__":
    main()
