#!/usr/bin/env python3
"""Medians over several `gqa bench attn --json` or `gqa bench kv --json` runs
of one build.

This VM's timings swing by 10-20% from run to run, so one run can flip a
ratio near its target either way. Run the benchmark several times
(alternating with the other build, for an A/B) and summarise each build:

    python3 bench/median_runs.py out/new1.json out/new2.json out/new3.json

attn: per shape the median time and the median of the runs' ratios (each
run's ratio uses that run's own probes): roofline for decode, share of the
FMA peak for prefill; then the GQA dividends from the median times.
kv: per batched-decode configuration and per same-budget step the median
time and the median read-bandwidth ratio. Standard library only.
"""
import json
import statistics
import sys


def fmt_time(t):
    return "%9.3f ms" % (t * 1e3) if t >= 1e-3 else "%9.1f us" % (t * 1e6)


def per_run(xs, f):
    return " ".join(f % x for x in xs)


def attn(runs):
    rows = {}
    for run in runs:
        for r in run["results"]:
            rows.setdefault(r["name"], []).append(r)
    print("%-30s %12s %8s" % ("shape", "median time", "ratio"))
    med = {}
    for name, rs in rows.items():
        med[name] = statistics.median(r["time_median_s"] for r in rs)
        if rs[0]["n_q"] == 1:
            xs, what, target = [r["roofline_ratio"] for r in rs], "roofline", 1.25
            ok = statistics.median(xs) <= target
        else:
            xs, what, target = [r["peak_ratio"] for r in rs], "of peak", 0.35
            ok = statistics.median(xs) >= target
        flag = ("ok" if ok else "MISS") if rs[0]["n_q"] > 1 or rs[0]["n_kv"] >= 4096 else ""
        print("%-30s %s %8.2f %-8s %-4s (%s)" % (name, fmt_time(med[name]), statistics.median(xs),
                                               what, flag, per_run(xs, "%.2f")))
    print("GQA dividend from the median times (targets MHA/GQA >= 3.6, MHA/MQA >= 5.0)")
    for dt in ("f32", "f16"):
        for tag in ("4k", "32k"):
            g, m, q = (med.get("llama3-8b-%s-%s-%s" % (kind, tag, dt))
                       for kind in ("decode", "mha-decode", "mqa-decode"))
            if g and m and q:
                print("  %s %3s: MHA/GQA %5.2fx %-4s  MHA/MQA %5.2fx %s" % (
                    dt, tag, m / g, "ok" if m / g >= 3.6 else "MISS", m / q,
                    "ok" if m / q >= 5.0 else "MISS"))


def kv(runs):
    def table(key, label, fields):
        rows = {}
        for run in runs:
            for r in run[key]:
                rows.setdefault(tuple(r[f] for f in fields), []).append(r)
        print(label)
        for k, rs in rows.items():
            xs = [r["bw_ratio"] for r in rs]
            t = statistics.median(r["time_median_s"] for r in rs)
            print("  %-18s %s  bw %.2f (%s)" % (" ".join(str(x) for x in k), fmt_time(t),
                                             statistics.median(xs), per_run(xs, "%.2f")))
    table("decode",
          "batched decode (dtype, G, B): median step time, read-bandwidth ratio (target 0.70)",
          ("dtype", "n_kv_heads", "batch"))
    table("budget_fill", "same budget (dtype, G, sequences): median step time, bw ratio",
          ("dtype", "n_kv_heads", "sequences"))


def main(paths):
    runs = [json.load(open(p)) for p in paths]
    kinds = {r["benchmark"] for r in runs}
    if len(kinds) != 1:
        sys.exit("mixed benchmark kinds: %s" % sorted(kinds))
    print("%d runs (%s): %s" % (len(runs), runs[0]["benchmark"],
                                ", ".join(r["date"] for r in runs)))
    {"attn": attn, "kv": kv}[kinds.pop()](runs)


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: median_runs.py RUN.json [RUN.json ...]")
    main(sys.argv[1:])
