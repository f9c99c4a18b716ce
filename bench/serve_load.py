#!/usr/bin/env python3
"""serve_load.py - closed-loop load generator for `gqa serve` (or any server that
speaks the OpenAI completions API and exposes Prometheus text at /metrics).

For each client count C in --clients, C asyncio clients send streaming
POST /v1/completions requests back to back (greedy, fixed max_tokens, prompts
from a fixed list, client i starting at prompt i) through the official `openai`
package's AsyncOpenAI client. One run per C:

  warm-up (--warmup s) | measured window (--duration s) | drain

Clients stop sending at the end of the window and the requests still in flight
are allowed to finish (bounded by --timeout), so the server is idle again before
the next C. Measured, per C:

  gen_tok_s      aggregate generation tokens/s: the server's generated-token
                 counter (--metric-gen-tokens) over the window, from the first
                 to the last /metrics sample in it
  step_ms        mean time of one scheduler step (one batched forward pass):
                 the window over the server's step counter (--metric-steps);
                 tokens_per_step = gen_tok_s * step_ms
  tok_per_cpu_s  with --server-pid: generated tokens per CPU second of the
  server_cpu     server process (user + system, from /proc), and its CPU use
                 (CPU seconds per second); robust to other load, unlike tok/s
  client_tok_s   the client's own count: each completion's usage tokens spread
                 over its stream chunks by bytes, those arriving in the window,
                 divided by the window's length (a check of gen_tok_s)
  lat_p50/p99    request latency, send -> last chunk, of requests sent inside the
                 window that completed
  ttft_p50/p99   time to first token (first chunk with text) of the same requests
  n_429          answers 429 (the client honours Retry-After, capped at 2 s)
  active_*,      GET /metrics sampled every --metrics-interval s inside the
  queued_*,      window: max and mean of the active-sequence gauge ("sustained
  kv_used_*,     concurrent sequences"), the queued gauge, KV blocks used and
  kv_reserved_*  KV blocks reserved by the admitted requests

One CSV row per C is appended to --csv (header written when the file is new),
and each completion's text is hashed per prompt into --outputs (JSON, merged
with the file's contents: the hashes of every distinct completion and the
first one's text), so two
runs that must compute the same function (a GQA model and its MHA twin) can be
compared. Everything is bounded: --max-requests per run, --timeout per request,
and the whole run by the window plus the drain. Only --url is contacted.
"""
import argparse
import asyncio
import csv
import hashlib
import json
import math
import os
import re
import sys
import time

import httpx2 as httpx
import openai

# Fixed prompts: plain text for the completions endpoint, distinct from their
# first token on (no shared prefix, so prefix sharing does not blur the KV
# accounting), 10 to 15 tokens each with SmolLM2's tokenizer: with
# max_tokens 128 every request reserves the same ceil(143 / 16) = 9 blocks.
PROMPTS = [
    "The history of the printing press begins in the fifteenth century, when",
    "To bake a loaf of bread at home, you need flour, water and",
    "In mathematics, a prime number is a natural number greater than one that",
    "Once upon a time, in a village at the edge of a forest,",
    "Photosynthesis is the process by which green plants use sunlight to",
    "A good software engineer writes code that is easy to read because",
    "The ocean covers most of the surface of our planet, and its deepest parts",
    "Learning a second language as an adult can be difficult, but the best way",
    "Mount Everest, the highest mountain on Earth, was first climbed by",
    "Rain forms when water vapour in the atmosphere cools and condenses into",
    "The human heart has four chambers, and its job is to pump blood",
    "When you travel by train across Europe, one of the pleasures is",
    "Chess is a board game for two players in which each player controls",
    "Bees are important for farming because they carry pollen from flower to flower,",
    "The first computers filled whole rooms and were programmed with",
    "Volcanoes erupt when pressure from molten rock deep below the surface",
]

METRIC_DEFAULTS = {
    "active": "gqa_sequences_active",
    "queued": "gqa_sequences_queued",
    "kv_used": "gqa_kv_blocks_used",
    "kv_total": "gqa_kv_blocks_total",
    "kv_reserved": "gqa_kv_blocks_reserved",
    "gen_tokens": "gqa_generation_tokens_total",
    "steps": "gqa_steps_total",
}

CSV_FIELDS = [
    "label", "clients", "max_tokens", "window_s", "requests_ok", "n_429", "n_err",
    "gen_tokens", "gen_tok_s", "client_tok_s", "step_ms", "tokens_per_step", "server_cpu",
    "tok_per_cpu_s", "lat_p50_s", "lat_p99_s", "ttft_p50_s", "ttft_p99_s",
    "active_max", "active_mean", "queued_max", "queued_mean", "kv_used_max",
    "kv_used_mean", "kv_reserved_max", "kv_reserved_mean", "kv_total", "metric_samples", "load1_before", "load1_after",
]

_SAMPLE = re.compile(r"^([A-Za-z_:][A-Za-z0-9_:]*)(\{[^}]*\})?\s+(\S+)")


def parse_metrics(text):
    """Prometheus text -> {name: value}; samples with labels are summed per name."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        if not m:
            continue
        try:
            v = float(m.group(3))
        except ValueError:
            continue
        out[m.group(1)] = out.get(m.group(1), 0.0) + v
    return out


def percentile(xs, q):
    """Nearest-rank percentile (q in 0..100) of a non-empty list; NaN if empty."""
    if not xs:
        return math.nan
    s = sorted(xs)
    k = max(0, min(len(s) - 1, math.ceil(q / 100.0 * len(s)) - 1))
    return s[k]


def mean(xs):
    return sum(xs) / len(xs) if xs else math.nan


class Run:
    """State shared by the clients of one run (one client count)."""

    def __init__(self, args, clients):
        self.args = args
        self.clients = clients
        self.t0 = 0.0
        self.w0 = 0.0  # window start (after warm-up)
        self.w1 = 0.0  # window end: no request is sent after it
        self.latencies = []
        self.ttfts = []
        self.tokens_in_window = 0
        self.n_ok = 0
        self.n_429 = 0
        self.n_err = 0
        self.n_sent = 0
        self.no_usage = 0  # completions whose stream had no usage chunk
        self.errors = []
        self.samples = []  # (t, {metric: value})
        self.outputs = {}  # prompt index -> set of sha256 of the completion text
        self.texts = {}  # prompt index -> the first completion text


async def one_request(run, client, model, prompt_i):
    """Send one streaming completion; record its timings. Returns seconds to wait."""
    args = run.args
    t_send = time.monotonic()
    chunks = []  # (arrival time, bytes of text)
    usage_tokens = None
    text = []
    try:
        stream = await client.completions.create(
            model=model, prompt=PROMPTS[prompt_i], max_tokens=args.max_tokens,
            temperature=0.0, seed=args.seed, stream=True,
            stream_options={"include_usage": True}, timeout=args.timeout)
        async for chunk in stream:
            now = time.monotonic()
            if chunk.usage is not None and chunk.usage.completion_tokens is not None:
                usage_tokens = chunk.usage.completion_tokens
            if not chunk.choices or not chunk.choices[0].text:
                continue
            text.append(chunk.choices[0].text)
            chunks.append((now, len(chunk.choices[0].text.encode())))
    except openai.RateLimitError as e:
        run.n_429 += 1
        retry = e.response.headers.get("retry-after", "1")
        try:
            return min(2.0, max(0.05, float(retry)))
        except ValueError:
            return 1.0
    except (openai.APIError, httpx.HTTPError) as e:
        run.n_err += 1
        if len(run.errors) < 5:
            run.errors.append(f"{type(e).__name__}: {e}")
        return 0.2
    t_end = time.monotonic()
    run.n_ok += 1
    text = "".join(text)
    run.outputs.setdefault(prompt_i, set()).add(hashlib.sha256(text.encode()).hexdigest()[:16])
    run.texts.setdefault(prompt_i, text)
    # A chunk may carry several tokens (the server sends what is ready), so the
    # client's count spreads the request's usage.completion_tokens over its
    # chunks by their bytes; without usage it counts one token per chunk.
    if usage_tokens is None:
        run.no_usage += 1
        usage_tokens = len(chunks)
    n_bytes = sum(b for _, b in chunks)
    for t, b in chunks:
        if run.w0 <= t < run.w1 and n_bytes:
            run.tokens_in_window += usage_tokens * b / n_bytes
    if run.w0 <= t_send < run.w1:
        run.latencies.append(t_end - t_send)
        if chunks:
            run.ttfts.append(chunks[0][0] - t_send)
    return 0.0


async def client_loop(run, client, model, cid):
    j = 0
    while time.monotonic() < run.w1 and run.n_sent < run.args.max_requests:
        run.n_sent += 1
        wait = await one_request(run, client, model, (cid + j) % len(PROMPTS))
        j += 1
        if run.n_err > run.args.max_errors:
            return
        if wait > 0:
            await asyncio.sleep(min(wait, max(0.0, run.w1 - time.monotonic())))


def server_cpu_s(pid):
    """CPU seconds (user + system, all threads) the server process has used, or
    None. Unlike wall time, hardly changed by other processes on the machine."""
    if not pid:
        return None
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


async def sample_metrics(run, http):
    names = run.args.metric
    while time.monotonic() < run.w1:
        now = time.monotonic()
        if now >= run.w0:
            try:
                r = await http.get("/metrics", timeout=5.0)
                m = parse_metrics(r.text)
                sample = {k: m.get(v) for k, v in names.items()}
                sample["cpu_s"] = server_cpu_s(run.args.server_pid)
                run.samples.append((now, sample))
            except httpx.HTTPError as e:
                if len(run.errors) < 5:
                    run.errors.append(f"GET /metrics: {e}")
        await asyncio.sleep(run.args.metrics_interval)


def load1():
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


def summarize(run, label, load_before):
    def series(key):
        return [s[key] for _, s in run.samples if s.get(key) is not None]

    act, que, kv, kvr, kvt = (series(k) for k in
                              ("active", "queued", "kv_used", "kv_reserved", "kv_total"))
    window = run.w1 - run.w0
    client_tps = run.tokens_in_window / window
    # The server's generated-token counter between the first and the last
    # sample of the window; the client's estimate when there is no counter.
    def delta(key):
        v = [(t, s[key]) for t, s in run.samples if s.get(key) is not None]
        if len(v) >= 2 and v[-1][0] > v[0][0]:
            return v[-1][1] - v[0][1], v[-1][0] - v[0][0]
        return math.nan, math.nan

    server_tokens, dt = delta("gen_tokens")
    server_tps = server_tokens / dt if dt == dt else math.nan
    if math.isnan(server_tps):
        server_tokens, server_tps = run.tokens_in_window, client_tps
    # Mean time of one scheduler step (one batched forward pass) in the window.
    steps, dts = delta("steps")
    step_ms = 1000.0 * dts / steps if steps and steps == steps else math.nan
    cpu, dtc = delta("cpu_s")
    gen_c, _ = delta("gen_tokens")
    return {
        "label": label, "clients": run.clients, "max_tokens": run.args.max_tokens,
        "window_s": round(window, 2), "requests_ok": run.n_ok, "n_429": run.n_429,
        "n_err": run.n_err, "gen_tokens": round(server_tokens),
        "gen_tok_s": round(server_tps, 2), "client_tok_s": round(client_tps, 2),
        "step_ms": round(step_ms, 2),
        "tokens_per_step": round(server_tps * step_ms / 1000.0, 2),
        "server_cpu": round(cpu / dtc, 3) if dtc == dtc and dtc > 0 else math.nan,
        "tok_per_cpu_s": round(gen_c / cpu, 2) if cpu == cpu and cpu > 0 else math.nan,
        "lat_p50_s": round(percentile(run.latencies, 50), 4),
        "lat_p99_s": round(percentile(run.latencies, 99), 4),
        "ttft_p50_s": round(percentile(run.ttfts, 50), 4),
        "ttft_p99_s": round(percentile(run.ttfts, 99), 4),
        "active_max": max(act, default=math.nan), "active_mean": round(mean(act), 2),
        "queued_max": max(que, default=math.nan), "queued_mean": round(mean(que), 2),
        "kv_used_max": max(kv, default=math.nan), "kv_used_mean": round(mean(kv), 1),
        "kv_reserved_max": max(kvr, default=math.nan),
        "kv_reserved_mean": round(mean(kvr), 1), "kv_total": max(kvt, default=math.nan), "metric_samples": len(run.samples),
        "load1_before": load_before, "load1_after": load1(),
    }


async def wait_idle(http, names, limit_s):
    """Wait (bounded) until the server reports no active or queued sequence."""
    t_end = time.monotonic() + limit_s
    while time.monotonic() < t_end:
        try:
            m = parse_metrics((await http.get("/metrics", timeout=5.0)).text)
            if not m.get(names["active"]) and not m.get(names["queued"]):
                return True
        except httpx.HTTPError:
            pass
        await asyncio.sleep(0.2)
    return False


async def one_run(args, client, http, model, clients):
    run = Run(args, clients)
    run.t0 = time.monotonic()
    run.w0 = run.t0 + args.warmup
    run.w1 = run.w0 + args.duration
    load_before = load1()
    tasks = [asyncio.create_task(client_loop(run, client, model, i)) for i in range(clients)]
    sampler = asyncio.create_task(sample_metrics(run, http))
    # Bounded: the window, then at most one request timeout of drain.
    done, pending = await asyncio.wait(
        tasks + [sampler], timeout=args.warmup + args.duration + args.timeout + 5)
    for t in pending:
        t.cancel()
    if pending:
        run.errors.append(f"{len(pending)} clients still busy after the drain limit")
    for t in done:
        if t.exception() is not None:
            raise t.exception()
    idle = await wait_idle(http, args.metric, 30.0)
    if not idle:
        run.errors.append("server still has active/queued sequences 30 s after the run")
    return run, summarize(run, args.label, load_before)


async def resolve_model(args, http):
    if args.model:
        return args.model
    r = await http.get("/v1/models", timeout=10.0)
    r.raise_for_status()
    return r.json()["data"][0]["id"]


def write_csv(path, row):
    new = not os.path.exists(path) or os.path.getsize(path) == 0
    with open(path, "a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CSV_FIELDS)
        if new:
            w.writeheader()
        w.writerow(row)


def save_outputs(path, hashes, texts):
    """Merge this run's completions into the JSON file (created if absent)."""
    old = {}
    if os.path.exists(path):
        with open(path) as f:
            old = json.load(f)
    for k, v in hashes.items():
        e = old.setdefault(str(k), {"prompt": PROMPTS[k], "sha256": [], "text": texts[k]})
        e["sha256"] = sorted(set(e["sha256"]) | v)
    with open(path, "w") as f:
        json.dump(dict(sorted(old.items(), key=lambda kv: int(kv[0]))), f, indent=1)


def report(row, run):
    print(f"{row['label']:>6} C={row['clients']:<3} ok {row['requests_ok']:<4} "
          f"429 {row['n_429']:<4} err {row['n_err']:<3} {row['gen_tok_s']:7.1f} tok/s "
          f"(client {row['client_tok_s']:7.1f}) step {row['step_ms']:.1f} ms  "
          f"{row['tok_per_cpu_s']} tok/cpu-s  "
          f"lat p50 {row['lat_p50_s']:.2f} p99 {row['lat_p99_s']:.2f} s  "
          f"ttft p50 {row['ttft_p50_s']:.2f} s  active max {row['active_max']} "
          f"mean {row['active_mean']}  kv {row['kv_used_max']}/{row['kv_total']}  "
          f"load {row['load1_before']:.2f}->{row['load1_after']:.2f}", flush=True)
    for e in run.errors:
        print(f"    error: {e}", file=sys.stderr)
    if run.no_usage:
        print(f"    note: {run.no_usage} completions had no usage chunk; the client counted "
              "one token per chunk for them", file=sys.stderr)


async def main_async(args):
    base = args.url.rstrip("/")
    limits = httpx.Limits(max_connections=max(args.clients) + 4)
    async with httpx.AsyncClient(base_url=base) as http, openai.AsyncOpenAI(
            base_url=base + "/v1", api_key=args.api_key or "none", max_retries=0,
            http_client=httpx.AsyncClient(limits=limits, timeout=args.timeout)) as client:
        model = await resolve_model(args, http)
        all_outputs, texts = {}, {}
        failed = False
        for c in args.clients:
            run, row = await one_run(args, client, http, model, c)
            report(row, run)
            if args.csv:
                write_csv(args.csv, row)
            for k, v in run.outputs.items():
                all_outputs.setdefault(k, set()).update(v)
                texts.setdefault(k, run.texts[k])
            failed |= run.n_err > 0 or row["requests_ok"] == 0
        if args.outputs:
            save_outputs(args.outputs, all_outputs, texts)
        return 1 if failed else 0


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--url", default="http://127.0.0.1:8080", help="server base URL")
    p.add_argument("--model", default="", help="model name to send (default: first of /v1/models)")
    p.add_argument("--api-key", default="", help="bearer token, if the server wants one")
    p.add_argument("--clients", default="1,2,4,8", help="comma-separated client counts")
    p.add_argument("--duration", type=float, default=30.0, help="measured window, s")
    p.add_argument("--warmup", type=float, default=5.0, help="warm-up before the window, s")
    p.add_argument("--max-tokens", type=int, default=128, help="max_tokens of every request")
    p.add_argument("--max-requests", type=int, default=5000, help="cap on requests per run")
    p.add_argument("--max-errors", type=int, default=20, help="stop a run after this many errors")
    p.add_argument("--timeout", type=float, default=120.0, help="per-request timeout, s")
    p.add_argument("--seed", type=int, default=1, help="seed sent with each request")
    p.add_argument("--metrics-interval", type=float, default=0.25, help="seconds between samples")
    p.add_argument("--label", default="run", help="first CSV column")
    p.add_argument("--csv", default="", help="append one row per client count to this file")
    p.add_argument("--server-pid", type=int, default=0,
                   help="server process on this machine: also measure its CPU time")
    p.add_argument("--outputs", default="", help="write per-prompt completion hashes (JSON)")
    for key, name in METRIC_DEFAULTS.items():
        p.add_argument(f"--metric-{key.replace('_', '-')}", default=name,
                       help=f"Prometheus gauge for {key} (default {name})")
    args = p.parse_args(argv)
    try:
        args.clients = [int(x) for x in args.clients.split(",") if x]
    except ValueError:
        p.error("--clients wants integers, e.g. 1,2,4,8")
    if not args.clients or min(args.clients) < 1 or max(args.clients) > 256:
        p.error("--clients: each count in 1..256")
    if args.duration <= 0 or args.warmup < 0 or args.timeout <= 0 or args.max_tokens < 1:
        p.error("--duration, --timeout and --max-tokens must be positive, --warmup >= 0")
    args.metric = {k: getattr(args, "metric_" + k) for k in METRIC_DEFAULTS}
    return args


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
