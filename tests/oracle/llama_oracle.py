#!/usr/bin/env python3
"""llama_oracle.py - an independent float64 reference of the Llama forward pass.

Reads a "llama" GGUF model with the PyPI `gguf` package, dequantises every
weight with gguf.quants.dequantize (llama.cpp's own Python decoder, not the
library's C kernels) and computes logits with NumPy in float64. Test-only: it
shares no code with the C runtime.

Usage:
    llama_oracle.py MODEL --tokens 1,2,3 [--greedy N] --out FILE

It computes the logits at every position of the given token ids; with
--greedy N it then appends N tokens greedily (argmax of the last logit row,
lowest id on ties) and records the logits of every generated step as well.

Output FILE (all little-endian):
    8 bytes   magic b"GQAORCL1"
    int32     n_vocab
    int32     n_prompt
    int32     n_gen                      (N, or 0 without --greedy)
    int32     gen[n_gen]                 the generated token ids, in order
    float32   logits[n_prompt + n_gen][n_vocab]
Logit row p is the model output after reading tokens 0..p of the full
sequence prompt + gen, i.e. it predicts token p+1. Rows are written for ALL
positions 0..n_prompt+n_gen-1, including the row after the last generated
token (that row chose no token; it costs one extra step and lets a test
compare every position). gen[i] = argmax(row n_prompt-1+i).

Model: every hyper-parameter comes from the GGUF metadata ({arch}.block_count,
embedding_length, attention.head_count[_kv], feed_forward_length,
attention.layer_norm_rms_epsilon, rope.freq_base (default 10000),
rope.dimension_count, attention.key_length (default n_embd / n_head)). The
classifier is output.weight, or token_embd.weight when the model ties them.

RoPE, done differently from the runtime on purpose: llama.cpp's
convert_hf_to_gguf.py permutes the rows of attn_q / attn_k so that ggml's
"normal" RoPE (rotating adjacent pairs x[2i], x[2i+1]) can be applied to them.
Within each head, Hugging Face rows [first half ; second half] were
interleaved: GGUF row 2i+j  <-  HF row j*d/2 + i  (j = 0, 1). The C runtime
uses the GGUF rows as they are with adjacent-pair RoPE; this oracle instead
undoes the permutation to recover the Hugging Face weights and applies HF's
`rotate_half` RoPE (pairs (i, i + d/2), inv_freq = base^(-2i/d)). Both paths
must agree, so a bug in either the runtime's RoPE or its pair convention shows.
"""
import argparse
import struct
import sys
import time

try:
    import numpy as np
    import gguf
except ImportError as e:
    print(f"FAIL: llama_oracle.py needs NumPy and gguf ({e}).\n"
          "      Install them with:  .venv/bin/pip install -r tests/oracle/requirements.txt")
    sys.exit(2)

MAGIC = b"GQAORCL1"


def field(reader, key, default=None):
    f = reader.fields.get(key)
    if f is None:
        if default is None:
            sys.exit(f"llama_oracle: GGUF has no metadata key {key!r}")
        return default
    return f.contents()


def load_tensor(t):
    """Dequantise one GGUF tensor to a float64 (rows, cols) matrix.

    ggml lists dims fastest first: dims[0] is the row length, so the NumPy
    shape is the reversed dims (the file stores rows contiguously)."""
    w = gguf.quants.dequantize(t.data, t.tensor_type)
    shape = tuple(int(d) for d in reversed(t.shape))
    return np.asarray(w, dtype=np.float64).reshape(shape)


def unpermute(w, n_head):
    """Undo convert_hf_to_gguf's per-head interleave of attn_q/attn_k rows.

    GGUF row (h, i, j) [row h*d + 2i + j] came from HF row (h, j, i)
    [h*d + j*d/2 + i]; view as (head, d/2, 2, cols) and swap the middle axes."""
    rows, cols = w.shape
    d = rows // n_head
    return w.reshape(n_head, d // 2, 2, cols).swapaxes(1, 2).reshape(rows, cols)


class Llama:
    def __init__(self, path):
        r = gguf.GGUFReader(path)
        arch = field(r, "general.architecture")
        if arch != "llama":
            sys.exit(f"llama_oracle: architecture {arch!r} is not 'llama'")
        a = arch + "."
        self.n_layer = int(field(r, a + "block_count"))
        self.n_embd = int(field(r, a + "embedding_length"))
        self.n_head = int(field(r, a + "attention.head_count"))
        self.n_kv = int(field(r, a + "attention.head_count_kv", self.n_head))
        self.n_ff = int(field(r, a + "feed_forward_length"))
        self.eps = float(field(r, a + "attention.layer_norm_rms_epsilon"))
        self.base = float(field(r, a + "rope.freq_base", 10000.0))
        self.hd = int(field(r, a + "attention.key_length", self.n_embd // self.n_head))
        self.hd_v = int(field(r, a + "attention.value_length", self.hd))
        self.n_rot = int(field(r, a + "rope.dimension_count", self.hd))
        scaling = field(r, a + "rope.scaling.type", "none")
        if self.n_rot != self.hd or scaling != "none":
            sys.exit(f"llama_oracle: unsupported RoPE (n_rot {self.n_rot}, head_dim "
                     f"{self.hd}, scaling {scaling!r})")
        if self.n_head % self.n_kv:
            sys.exit("llama_oracle: head_count is not a multiple of head_count_kv")

        t = {x.name: x for x in r.tensors}
        if "rope_freqs.weight" in t:
            sys.exit("llama_oracle: rope_freqs (Llama 3 RoPE scaling) is not supported")
        self.tok = load_tensor(t["token_embd.weight"])          # (n_vocab, n_embd)
        self.out = (load_tensor(t["output.weight"]) if "output.weight" in t
                    else self.tok)                              # tied classifier
        self.out_norm = load_tensor(t["output_norm.weight"])
        self.n_vocab = self.out.shape[0]
        self.layers = []
        for i in range(self.n_layer):
            g = lambda n: load_tensor(t[f"blk.{i}.{n}.weight"])
            self.layers.append(dict(
                attn_norm=g("attn_norm"),
                wq=unpermute(g("attn_q"), self.n_head),
                wk=unpermute(g("attn_k"), self.n_kv),
                wv=g("attn_v"), wo=g("attn_output"), ffn_norm=g("ffn_norm"),
                gate=g("ffn_gate"), up=g("ffn_up"), down=g("ffn_down")))
        self.reset()

    def reset(self):
        self.pos = 0
        self.kcache = [np.zeros((self.n_kv, 0, self.hd)) for _ in range(self.n_layer)]
        self.vcache = [np.zeros((self.n_kv, 0, self.hd_v)) for _ in range(self.n_layer)]

    def rmsnorm(self, x, w):
        return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + self.eps) * w

    def rope(self, x, pos):
        """Hugging Face RoPE on x (heads, n, d): x*cos + rotate_half(x)*sin."""
        d = x.shape[-1]
        inv_freq = self.base ** (-np.arange(0, d, 2, dtype=np.float64) / d)
        ang = pos[:, None] * inv_freq[None, :]                  # (n, d/2)
        cos = np.cos(np.concatenate([ang, ang], axis=-1))
        sin = np.sin(np.concatenate([ang, ang], axis=-1))
        rot = np.concatenate([-x[..., d // 2:], x[..., :d // 2]], axis=-1)
        return x * cos + rot * sin

    def forward(self, ids):
        """Feed ids at positions self.pos.. (KV cache); return (len(ids), n_vocab)."""
        n = len(ids)
        pos = np.arange(self.pos, self.pos + n, dtype=np.float64)
        x = self.tok[np.asarray(ids)]                           # (n, n_embd)
        grp = self.n_head // self.n_kv
        n_tot = self.pos + n
        # causal mask: query at pos p sees keys 0..p
        mask = np.arange(n_tot)[None, :] > (self.pos + np.arange(n))[:, None]
        for li, L in enumerate(self.layers):
            h = self.rmsnorm(x, L["attn_norm"])
            q = (h @ L["wq"].T).reshape(n, self.n_head, self.hd).transpose(1, 0, 2)
            k = (h @ L["wk"].T).reshape(n, self.n_kv, self.hd).transpose(1, 0, 2)
            v = (h @ L["wv"].T).reshape(n, self.n_kv, self.hd_v).transpose(1, 0, 2)
            q, k = self.rope(q, pos), self.rope(k, pos)
            K = self.kcache[li] = np.concatenate([self.kcache[li], k], axis=1)
            V = self.vcache[li] = np.concatenate([self.vcache[li], v], axis=1)
            # GQA: query head hq reads KV head hq // grp
            Kq, Vq = np.repeat(K, grp, axis=0), np.repeat(V, grp, axis=0)
            s = q @ Kq.transpose(0, 2, 1) / np.sqrt(self.hd)    # (H, n, n_tot)
            s = np.where(mask[None], -np.inf, s)
            s = np.exp(s - s.max(axis=-1, keepdims=True))
            p = s / s.sum(axis=-1, keepdims=True)
            o = (p @ Vq).transpose(1, 0, 2).reshape(n, self.n_head * self.hd_v)
            x = x + o @ L["wo"].T
            h = self.rmsnorm(x, L["ffn_norm"])
            g = h @ L["gate"].T
            x = x + ((g / (1.0 + np.exp(-g))) * (h @ L["up"].T)) @ L["down"].T
        self.pos = n_tot
        return self.rmsnorm(x, self.out_norm) @ self.out.T


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model")
    ap.add_argument("--tokens", required=True, help="comma-separated token ids")
    ap.add_argument("--greedy", type=int, default=0, metavar="N")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    ids = [int(s) for s in args.tokens.split(",") if s.strip()]
    if not ids or args.greedy < 0:
        sys.exit("llama_oracle: need at least one token and --greedy >= 0")

    t0 = time.time()
    m = Llama(args.model)
    if min(ids) < 0 or max(ids) >= m.tok.shape[0]:
        sys.exit(f"llama_oracle: token id out of range 0..{m.tok.shape[0] - 1}")
    t1 = time.time()
    rows = [m.forward(ids)]
    gen = []
    for _ in range(args.greedy):
        nxt = int(np.argmax(rows[-1][-1]))                      # first max = lowest id
        gen.append(nxt)
        rows.append(m.forward([nxt]))
    logits = np.concatenate(rows, axis=0)
    t2 = time.time()

    with open(args.out, "wb") as f:
        f.write(MAGIC)
        f.write(struct.pack("<3i", m.n_vocab, len(ids), len(gen)))
        f.write(np.asarray(gen, dtype="<i4").tobytes())
        f.write(np.ascontiguousarray(logits, dtype="<f4").tobytes())
    print(f"llama_oracle: load {t1 - t0:.1f}s, forward {t2 - t1:.1f}s; "
          f"{len(ids)} prompt + {len(gen)} generated; max|logit| "
          f"{np.abs(logits).max():.3f}; gen {','.join(map(str, gen))}", file=sys.stderr)


if __name__ == "__main__":
    main()
