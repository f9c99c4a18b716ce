#!/usr/bin/env python3
"""llamacpp_bench.py - llama.cpp's side of `gqa bench model`.

Runs llama.cpp (through the low-level ctypes bindings of the PyPI package
llama-cpp-python, built from source by bench/llamacpp_setup.sh into
.venv-llamacpp/) on a GGUF file and reports, for each thread count and
flash-attention setting:

  prompt tok/s   one llama_decode() of a PROMPT-token batch (default 512) into
                 an empty KV cache (llama.cpp splits it into n_ubatch=512
                 micro-batches, its default, so 512 tokens are one ubatch);
  gen tok/s @C   the KV cache is first filled with C prompt tokens (untimed),
                 then GEN (default 128) tokens are decoded one llama_decode()
                 call each, greedily (the next input is the argmax of the
                 previous logits; EOS is ignored, generation never stops
                 early). Only those GEN single-token decode calls are timed.

Prompt token ids (the C benchmark uses the very same ones):

    ids[i] = 1000 + (i * 7919) % 40000        for i = 0, 1, 2, ...

at positions pos = i, sequence 0, with no BOS or other token added. The
512-token prompt is ids[0..511]; the context-C fill is ids[0..C-1]; the first
generated token (position C) is the argmax of the logits after ids[C-1].

Timing: llama.cpp's own counters (llama_perf_context(): t_p_eval_ms/n_p_eval
for the prompt batch, t_eval_ms/n_eval for the single-token calls; reset
with llama_perf_context_reset() before each measurement) when the bindings
have them, else time.perf_counter() around the same llama_decode() calls.
Both are recorded; the perf_counter wall time is taken around
llama_decode() + the logits fetch (which synchronizes the backend), so it
covers the same work plus the Python/ctypes call overhead.

Each measurement is repeated REPS times and the median is reported (all
values are in the JSON). A warm-up prompt + a few single-token decodes run
first in every context. The context-C fill is done once per (threads, FA)
context; between repetitions the generated tokens are removed again with
llama_memory_seq_rm(positions >= C), so every repetition decodes the same
128 tokens at positions C..C+127 against the same C cached tokens.

Context: KV cache f16/f16 (llama.cpp's default, set explicitly),
n_ctx = max(contexts, prompt) + gen + 64, n_batch = max(2048, prompt),
n_ubatch = 512 (default), n_threads = n_threads_batch = T, everything else
llama.cpp's defaults (mmap, OpenMP threading, the CPU backend's extra weight
buffer types -- AMX/repack -- where the CPU and type allow). The extra buffer
types are probed first in a child process (--extra-bufts auto): llama.cpp's
AMX matmul segfaults on multi-token batches on some AMX machines (llama.cpp
issue #20824; it does on this project's dev VM with this model), and then
they are turned off (use_extra_bufts=false, llama.cpp's --no-repack) and
this is reported. On x86 no repack exists for Q4_1/Q8_0, so for the
SmolLM2 Q4_1 file "off" means plain ggml CPU kernels.
Flash attention: "auto" is llama.cpp's default (LLAMA_FLASH_ATTN_TYPE_AUTO,
resolved when the context is created; the resolution is read from
llama.cpp's log and reported), "on" forces it (ENABLED), "off" disables it.
When auto resolves to a setting that is also requested explicitly (on the
CPU it resolves to on), that setting is measured once, in the "auto = on" row.

Output: a plain table (stdout; stderr when --json), and with --json a single
JSON object on stdout.

Run with the venv's interpreter:
    bash bench/llamacpp_setup.sh
    .venv-llamacpp/bin/python bench/llamacpp_bench.py \\
        --model models/SmolLM2-135M-Instruct.Q4_1.gguf --threads 1,2 --json
"""

import argparse
import ctypes
import json
import os
import platform
import statistics
import sys
import time

ID_BASE = 1000
ID_STRIDE = 7919
ID_MOD = 40000
ID_FORMULA = f"ids[i] = {ID_BASE} + (i * {ID_STRIDE}) % {ID_MOD}  (i = 0, 1, ...; pos = i; no BOS)"

# The llama.cpp commit vendored by each llama-cpp-python release (its CHANGELOG);
# the shared library itself only knows its ggml/llama version numbers.
VENDORED_LLAMA_CPP = {"0.3.36": "ggml-org/llama.cpp@0c1e57098"}


def prompt_ids(n):
    """The benchmark's deterministic token ids: ids[i] = 1000 + (i*7919) % 40000."""
    return [ID_BASE + (i * ID_STRIDE) % ID_MOD for i in range(n)]


def int_list(s):
    try:
        v = [int(x) for x in s.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of integers: {s!r}")
    if not v or any(x <= 0 for x in v):
        raise argparse.ArgumentTypeError(f"need positive integers: {s!r}")
    return v


def fa_list(s):
    v = [x.strip() for x in s.split(",") if x.strip()]
    bad = [x for x in v if x not in ("auto", "on", "off")]
    if not v or bad:
        raise argparse.ArgumentTypeError(f"flash-attention modes are auto, on, off: {s!r}")
    return v


def parse_args(argv):
    p = argparse.ArgumentParser(
        description="llama.cpp prompt / generation throughput on a GGUF file "
        "(the comparison side of `gqa bench model`).",
        epilog=f"Prompt token ids: {ID_FORMULA}. The prompt is ids[0..P-1]; the "
        "context-C fill is ids[0..C-1]; generation is greedy (argmax), EOS ignored. "
        "Timing uses llama.cpp's llama_perf_context() counters when available.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--model", required=True, help="GGUF file")
    p.add_argument("--threads", type=int_list, default=[1, 2],
                   help="thread count(s), comma-separated (n_threads = n_threads_batch)")
    p.add_argument("--prompt-tokens", type=int, default=512,
                   help="prompt batch length for prompt tok/s")
    p.add_argument("--contexts", type=int_list, default=[512, 4096],
                   help="KV-cache fill lengths before generation, comma-separated")
    p.add_argument("--gen", type=int, default=128, help="tokens generated (timed) per context")
    p.add_argument("--reps", type=int, default=3, help="repetitions of each measurement (median reported)")
    p.add_argument("--fa", type=fa_list, default=["auto", "on", "off"],
                   help="flash-attention settings to measure: auto (llama.cpp default), on, off")
    p.add_argument("--extra-bufts", choices=("auto", "on", "off"), default="auto",
                   help="the CPU backend's extra weight buffer types (AMX, repack; llama.cpp's "
                   "default is on). auto: on, unless a probe in a child process (load the model, "
                   "decode a 16-token batch) crashes, then off -- llama.cpp's AMX path "
                   "segfaults on batches > 1 on some AMX machines (llama.cpp issue #20824)")
    p.add_argument("--probe-extra-bufts", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--json", action="store_true",
                   help="print one JSON object on stdout (the table then goes to stderr)")
    p.add_argument("--verbose", action="store_true", help="echo llama.cpp's log to stderr")
    a = p.parse_args(argv)
    if a.prompt_tokens <= 0 or a.gen <= 0 or a.reps <= 0:
        p.error("--prompt-tokens, --gen and --reps must be positive")
    return a


class LlamaLog:
    """Captures llama.cpp's log (and echoes it with --verbose)."""

    def __init__(self, llama_cpp, echo):
        self.lines = []
        self.echo = echo
        self._partial = ""

        @llama_cpp.llama_log_callback
        def cb(level, text, user_data):
            s = text.decode("utf-8", "replace") if text else ""
            if echo:
                sys.stderr.write(s)
            self._partial += s
            while "\n" in self._partial:
                line, self._partial = self._partial.split("\n", 1)
                self.lines.append(line)

        self._cb = cb  # keep the ctypes callback alive
        llama_cpp.llama_log_set(cb, ctypes.c_void_p(0))

    def mark(self):
        return len(self.lines)

    def since(self, mark):
        return self.lines[mark:]


def probe_extra_bufts(model_path):
    """Child-process body: decode one 16-token batch with the extra buffer types on."""
    import llama_cpp as L
    quiet = L.llama_log_callback(lambda level, text, ud: None)  # keep a reference
    L.llama_log_set(quiet, ctypes.c_void_p(0))
    L.llama_backend_init()
    mp = L.llama_model_default_params()
    mp.use_extra_bufts = True
    model = L.llama_model_load_from_file(model_path.encode(), mp)
    if not model:
        return 2
    cp = L.llama_context_default_params()
    cp.n_ctx = 256
    cp.n_threads = cp.n_threads_batch = 1
    ctx = L.llama_init_from_model(model, cp)
    if not ctx:
        return 2
    b = L.llama_batch_init(16, 0, 1)
    for i, t in enumerate(prompt_ids(16)):
        b.token[i], b.pos[i], b.n_seq_id[i], b.logits[i] = t, i, 1, 0
        b.seq_id[i][0] = 0
    b.logits[15] = 1
    b.n_tokens = 16
    rc = L.llama_decode(ctx, b)
    L.llama_synchronize(ctx)
    return 0 if rc == 0 else 3


def run_probe(model_path):
    """Returns (use_extra_bufts, note)."""
    import subprocess
    try:
        r = subprocess.run([sys.executable, os.path.abspath(__file__),
                            "--model", model_path, "--probe-extra-bufts"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=300)
    except subprocess.TimeoutExpired:
        return False, "probe with extra buffer types timed out; disabled"
    if r.returncode == 0:
        return True, "probe with extra buffer types passed; enabled (llama.cpp default)"
    if r.returncode < 0:
        import signal
        try:
            sig = signal.Signals(-r.returncode).name
        except ValueError:
            sig = str(-r.returncode)
        why = f"killed by {sig}"
    else:
        why = f"exit status {r.returncode}"
    return False, (f"probe with extra buffer types (AMX/repack) crashed ({why}) decoding a "
                   "16-token batch; disabled (use_extra_bufts=false, llama.cpp's --no-repack)")


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def loadavg():
    try:
        return list(os.getloadavg())
    except OSError:
        return None


def median(v):
    return statistics.median(v) if v else None


class Bench:
    def __init__(self, L, np, args, model, n_vocab, log):
        self.L, self.np, self.args, self.model, self.n_vocab, self.log = L, np, args, model, n_vocab, log
        self.has_perf = hasattr(L, "llama_perf_context") and hasattr(L, "llama_perf_context_reset")

    # ---------------------------------------------------------------- helpers --
    def new_context(self, threads, fa):
        L, a = self.L, self.args
        cp = L.llama_context_default_params()
        cp.n_ctx = max(max(a.contexts), a.prompt_tokens) + a.gen + 64
        cp.n_batch = max(cp.n_batch, a.prompt_tokens)
        cp.n_threads = threads
        cp.n_threads_batch = threads
        cp.type_k = L.GGML_TYPE_F16
        cp.type_v = L.GGML_TYPE_F16
        cp.no_perf = False
        cp.flash_attn_type = {
            "auto": L.LLAMA_FLASH_ATTN_TYPE_AUTO,
            "on": L.LLAMA_FLASH_ATTN_TYPE_ENABLED,
            "off": L.LLAMA_FLASH_ATTN_TYPE_DISABLED,
        }[fa]
        mark = self.log.mark()
        ctx = L.llama_init_from_model(self.model, cp)
        if not ctx:
            raise RuntimeError(f"llama_init_from_model failed (threads={threads}, fa={fa})")
        lines = self.log.since(mark)
        resolved = {"on": "on", "off": "off"}.get(fa)
        if fa == "auto":
            resolved = "unknown"
            for ln in lines:
                if "Flash Attention" in ln and "enabled" in ln:
                    resolved = "on"
                elif "Flash Attention" in ln and "not supported" in ln:
                    resolved = "off"
        info = {
            "n_ctx": L.llama_n_ctx(ctx),
            "n_batch": L.llama_n_batch(ctx),
            "n_ubatch": L.llama_n_ubatch(ctx),
            "type_k": "f16", "type_v": "f16",
            "flash_attn_requested": fa,
            "flash_attn": resolved,
            "kv_buffers": [ln.strip() for ln in lines if "buffer size" in ln],
        }
        return ctx, info

    def make_batch(self, n):
        b = self.L.llama_batch_init(n, 0, 1)
        return b

    def fill_batch(self, b, tokens, pos0, last_logits):
        n = len(tokens)
        for i, t in enumerate(tokens):
            b.token[i] = t
            b.pos[i] = pos0 + i
            b.n_seq_id[i] = 1
            b.seq_id[i][0] = 0
            b.logits[i] = 0
        if last_logits:
            b.logits[n - 1] = 1
        b.n_tokens = n

    def decode(self, ctx, b):
        rc = self.L.llama_decode(ctx, b)
        if rc != 0:
            raise RuntimeError(f"llama_decode returned {rc}")

    def argmax_last(self, ctx):
        ptr = self.L.llama_get_logits_ith(ctx, -1)
        return int(self.np.ctypeslib.as_array(ptr, shape=(self.n_vocab,)).argmax())

    def perf(self, ctx):
        d = self.L.llama_perf_context(ctx)
        return d.t_p_eval_ms, d.n_p_eval, d.t_eval_ms, d.n_eval

    def feed(self, ctx, b, tokens, pos0):
        """Untimed: decode tokens in n_batch chunks; logits only for the last one."""
        nb = self.L.llama_n_batch(ctx)
        for s in range(0, len(tokens), nb):
            chunk = tokens[s:s + nb]
            self.fill_batch(b, chunk, pos0 + s, s + nb >= len(tokens))
            self.decode(ctx, b)
        self.L.llama_synchronize(ctx)

    # ----------------------------------------------------------- measurements --
    def warmup(self, ctx, mem, bbig, b1):
        L = self.L
        L.llama_memory_clear(mem, True)
        self.feed(ctx, bbig, prompt_ids(self.args.prompt_tokens), 0)
        tok = self.argmax_last(ctx)
        for k in range(4):
            self.fill_batch(b1, [tok], self.args.prompt_tokens + k, True)
            self.decode(ctx, b1)
            tok = self.argmax_last(ctx)
        L.llama_memory_clear(mem, True)

    def prompt(self, ctx, mem, bbig):
        L, n = self.L, self.args.prompt_tokens
        ids = prompt_ids(n)
        res = {"tok_s_perf": [], "tok_s_wall": [], "ms_perf": [], "ms_wall": []}
        for _ in range(self.args.reps):
            L.llama_memory_clear(mem, True)
            self.fill_batch(bbig, ids, 0, True)
            if self.has_perf:
                L.llama_perf_context_reset(ctx)
            t0 = time.perf_counter()
            self.decode(ctx, bbig)
            L.llama_synchronize(ctx)
            wall = (time.perf_counter() - t0) * 1e3
            res["ms_wall"].append(wall)
            res["tok_s_wall"].append(n / wall * 1e3)
            if self.has_perf:
                t_p, n_p, _, _ = self.perf(ctx)
                if n_p != n:
                    raise RuntimeError(f"perf counted {n_p} prompt tokens, expected {n}")
                res["ms_perf"].append(t_p)
                res["tok_s_perf"].append(n / t_p * 1e3)
        L.llama_memory_clear(mem, True)
        return res

    def generate(self, ctx, mem, bbig, b1, C):
        L, gen = self.L, self.args.gen
        L.llama_memory_clear(mem, True)
        self.feed(ctx, bbig, prompt_ids(C), 0)
        first = self.argmax_last(ctx)
        res = {"tok_s_perf": [], "tok_s_wall": [], "ms_perf": [], "ms_wall": [],
               "tokens": None, "same_tokens_every_rep": True}
        for _ in range(self.args.reps):
            if not L.llama_memory_seq_rm(mem, 0, C, -1):
                raise RuntimeError("llama_memory_seq_rm failed")
            tok = first
            toks = []
            wall = 0.0
            if self.has_perf:
                L.llama_perf_context_reset(ctx)
            for k in range(gen):
                self.fill_batch(b1, [tok], C + k, True)
                t0 = time.perf_counter()
                self.decode(ctx, b1)
                ptr = L.llama_get_logits_ith(ctx, -1)  # synchronizes
                wall += time.perf_counter() - t0
                tok = int(self.np.ctypeslib.as_array(ptr, shape=(self.n_vocab,)).argmax())
                toks.append(tok)
            wall *= 1e3
            res["ms_wall"].append(wall)
            res["tok_s_wall"].append(gen / wall * 1e3)
            if self.has_perf:
                _, _, t_e, n_e = self.perf(ctx)
                if n_e != gen:
                    raise RuntimeError(f"perf counted {n_e} single-token evals, expected {gen}")
                res["ms_perf"].append(t_e)
                res["tok_s_perf"].append(gen / t_e * 1e3)
            if res["tokens"] is None:
                res["tokens"] = [first] + toks[:-1]  # the inputs of the timed decodes
            elif res["tokens"] != [first] + toks[:-1]:
                res["same_tokens_every_rep"] = False
        L.llama_memory_clear(mem, True)
        return res

    def run_config(self, threads, fa):
        L = self.L
        ctx, info = self.new_context(threads, fa)
        try:
            mem = L.llama_get_memory(ctx)
            nb = L.llama_n_batch(ctx)
            bbig = self.make_batch(nb)
            b1 = self.make_batch(1)
            try:
                load0 = loadavg()
                t0 = time.perf_counter()
                self.warmup(ctx, mem, bbig, b1)
                out = {"threads": threads, **info, "load_before": load0}
                out["prompt"] = self.prompt(ctx, mem, bbig)
                out["gen"] = {}
                for C in self.args.contexts:
                    out["gen"][str(C)] = self.generate(ctx, mem, bbig, b1, C)
                out["seconds"] = time.perf_counter() - t0
                out["load_after"] = loadavg()
            finally:
                L.llama_batch_free(bbig)
                L.llama_batch_free(b1)
        finally:
            L.llama_free(ctx)
        return out


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.probe_extra_bufts:
        return probe_extra_bufts(args.model)
    t_start = time.perf_counter()
    load_start = loadavg()

    try:
        import numpy as np
        import llama_cpp as L
    except ImportError as e:
        sys.exit(f"llamacpp_bench: cannot import llama_cpp/numpy ({e}); "
                 "run bash bench/llamacpp_setup.sh and use .venv-llamacpp/bin/python")
    try:
        import importlib.metadata as md
        lcp_version = md.version("llama_cpp_python")
    except Exception:
        lcp_version = getattr(L, "__version__", "unknown")

    if not os.path.isfile(args.model):
        sys.exit(f"llamacpp_bench: no such model file: {args.model}")
    gen_limit = max(args.contexts) + args.gen
    if min(args.contexts) < 1:
        sys.exit("llamacpp_bench: contexts must be >= 1")

    if args.extra_bufts == "auto":
        print("llamacpp_bench: probing the extra buffer types in a child process ...",
              file=sys.stderr, flush=True)
        use_extra_bufts, extra_bufts_note = run_probe(args.model)
        print(f"llamacpp_bench: {extra_bufts_note}", file=sys.stderr, flush=True)
    else:
        use_extra_bufts = args.extra_bufts == "on"
        extra_bufts_note = f"--extra-bufts {args.extra_bufts}"

    log = LlamaLog(L, args.verbose)
    L.llama_backend_init()

    mp = L.llama_model_default_params()
    mp.use_extra_bufts = use_extra_bufts
    mark = log.mark()
    model = L.llama_model_load_from_file(args.model.encode(), mp)
    if not model:
        sys.exit(f"llamacpp_bench: llama_model_load_from_file failed for {args.model}")
    load_lines = log.since(mark)
    vocab = L.llama_model_get_vocab(model)
    n_vocab = L.llama_vocab_n_tokens(vocab)
    if ID_BASE + ID_MOD - 1 >= n_vocab:
        sys.exit(f"llamacpp_bench: vocabulary has {n_vocab} tokens, the prompt ids need {ID_BASE + ID_MOD}")
    buf = ctypes.create_string_buffer(256)
    L.llama_model_desc(model, buf, ctypes.sizeof(buf))
    n_ctx_train = L.llama_model_n_ctx_train(model)
    if gen_limit > n_ctx_train:
        print(f"llamacpp_bench: warning: context {gen_limit} exceeds the model's n_ctx_train {n_ctx_train}",
              file=sys.stderr)

    meta = {
        "tool": "llamacpp_bench.py",
        "llama_cpp_python": lcp_version,
        "llama_cpp": VENDORED_LLAMA_CPP.get(lcp_version, "unknown"),
        "llama_version": (L.llama_version().decode() if hasattr(L, "llama_version") else None),
        "system_info": L.llama_print_system_info().decode().strip(),
        "timer": "llama_perf_context" if hasattr(L, "llama_perf_context") else "perf_counter",
        "cpu": cpu_model(),
        "nproc": os.cpu_count(),
        "python": platform.python_version(),
        "model": os.path.abspath(args.model),
        "model_desc": buf.value.decode(),
        "model_size_bytes": L.llama_model_size(model),
        "model_n_params": L.llama_model_n_params(model),
        "n_vocab": n_vocab,
        "weight_buffers": [ln.strip() for ln in load_lines if "buffer size" in ln],
        "use_extra_bufts": use_extra_bufts,
        "extra_bufts_note": extra_bufts_note,
        "prompt_ids": ID_FORMULA,
        "prompt_tokens": args.prompt_tokens,
        "contexts": args.contexts,
        "gen": args.gen,
        "reps": args.reps,
        "load_start": load_start,
    }

    bench = Bench(L, np, args, model, n_vocab, log)
    results = []
    try:
        for t in args.threads:
            auto_resolved = None
            for fa in args.fa:
                if fa == auto_resolved:
                    # llama.cpp's default already ran with this setting: the "auto"
                    # row is the measurement of flash_attn=fa; don't repeat it.
                    print(f"llamacpp_bench: threads={t} fa={fa}: same as auto, measured once",
                          file=sys.stderr, flush=True)
                    continue
                print(f"llamacpp_bench: threads={t} fa={fa} ...", file=sys.stderr, flush=True)
                r = bench.run_config(t, fa)
                if fa == "auto":
                    auto_resolved = r["flash_attn"]
                results.append(r)
    finally:
        L.llama_model_free(model)
        L.llama_backend_free()

    key = "tok_s_perf" if bench.has_perf else "tok_s_wall"
    for r in results:
        r["prompt"]["median_tok_s"] = median(r["prompt"][key])
        for g in r["gen"].values():
            g["median_tok_s"] = median(g[key])
    meta["seconds_total"] = time.perf_counter() - t_start
    meta["load_end"] = loadavg()

    # ------------------------------------------------------------- the table --
    out = sys.stderr if args.json else sys.stdout
    w = out.write
    w(f"llama.cpp via llama-cpp-python {lcp_version} ({meta['llama_cpp']}); "
      f"timer: {meta['timer']}; median of {args.reps}\n")
    w(f"system_info: {meta['system_info']}\n")
    w(f"cpu: {meta['cpu']} ({meta['nproc']} logical); model: {meta['model_desc']} "
      f"({os.path.basename(args.model)}, {meta['model_size_bytes'] / 2**20:.1f} MiB)\n")
    for ln in meta["weight_buffers"]:
        w(f"  {ln}\n")
    w(f"extra buffer types: {'on' if use_extra_bufts else 'off'} ({extra_bufts_note})\n")
    w(f"prompt ids: {ID_FORMULA}; KV f16; gen {args.gen} greedy, EOS ignored\n")
    la = lambda v: "n/a" if v is None else f"{v[0]:.2f}"
    w(f"load (1-min) at start {la(load_start)}, end {la(meta['load_end'])}\n")
    hdr = ["threads", "flash_attn", f"prompt{args.prompt_tokens} tok/s"] + \
          [f"gen{args.gen}@{C} tok/s" for C in args.contexts]
    rows = []
    for r in results:
        fa = r["flash_attn_requested"]
        fa = f"auto = {r['flash_attn']}" if fa == "auto" else fa
        rows.append([str(r["threads"]), fa, f"{r['prompt']['median_tok_s']:.1f}"] +
                    [f"{r['gen'][str(C)]['median_tok_s']:.1f}" for C in args.contexts])
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(hdr)]
    w("  ".join(h.rjust(widths[i]) for i, h in enumerate(hdr)) + "\n")
    for row in rows:
        w("  ".join(c.rjust(widths[i]) for i, c in enumerate(row)) + "\n")
    w(f"total {meta['seconds_total']:.1f} s\n")
    out.flush()

    if args.json:
        json.dump({"meta": meta, "results": results}, sys.stdout, indent=1)
        sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
