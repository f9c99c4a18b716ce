#!/usr/bin/env python3
"""check_convert_hf.py - an independent oracle for `gqa convert` with Hugging
Face checkpoints (gqa_convert_hf, gqa_convert_gguf_to_hf,
gqa_convert_hf_to_gguf).

Reads the files with the PyPI `safetensors` package (Hugging Face's Rust
parser, which validates every output shard) and `gguf` (llama.cpp's reader,
dequantisers and quantisers), and recomputes with NumPy what each output must
hold, independently of src/convert/:

  hf SRC OUT G METHOD OUT_TYPE
      HF -> HF. Every tensor but k_proj/v_proj (.weight, .bias) byte-identical
      in the same shard file; K/V: dtype (keep: the input's) and shape [G*d, ...];
      mean = the group's mean in float64 rounded to float32, then to the dtype
      (round to nearest even); first = the group's first head; repeat = old head
      j // (G/G0); random = finite, RMS within a factor 2 of the old tensor's.
      config.json: the same keys in the same order, num_key_value_heads = G
      (appended when absent); every other file copied; index.json consistent.
  gguf2hf GGUF OUT G METHOD OUT_TYPE
      GGUF -> HF. Names mapped; each tensor = gguf's dequantised tensor, K/V
      pooled as above in GGUF row order, then Q and K rows un-permuted (the
      inverse of convert_hf_to_gguf.py's permute, as tests/oracle/
      llama_oracle.py undoes it), encoded in the type (keep: float types kept,
      quantised ones F16); config.json from the llama.* keys.
  hf2gguf SRC OUT G METHOD OUT_TYPE
      HF -> GGUF. The inverse: names, Q/K rows permuted, 1-D tensors f32, 2-D in
      the type asked (q* with gguf's quantisers); llama.* keys from config.json.
  same SRC OUT
      Two HF directories hold the same tensors (names, dtypes, shapes, bytes).

Usage: check_convert_hf.py MANIFEST   (one case a line; # starts a comment)
Prints one line per case; exit status 1 if any case fails.
"""
import json
import os
import sys

import numpy as np
import safetensors
from gguf import GGUFReader, GGMLQuantizationType as Q
from gguf import quants

ST_OF_Q = {Q.F32: "F32", Q.F16: "F16", Q.BF16: "BF16"}
Q_OF_ST = {v: k for k, v in ST_OF_Q.items()}
OUT_TYPES = {"f32": Q.F32, "f16": Q.F16, "bf16": Q.BF16, "q8_0": Q.Q8_0, "q4_0": Q.Q4_0,
             "q4_1": Q.Q4_1}
KV = ("self_attn.k_proj.weight", "self_attn.v_proj.weight", "self_attn.k_proj.bias",
      "self_attn.v_proj.bias")
# GGUF name (after blk.N.) -> HF name (after model.layers.N.), llama.cpp's tensor map
LAYER_MAP = {"attn_norm.weight": "input_layernorm.weight",
             "attn_q.weight": "self_attn.q_proj.weight", "attn_k.weight": "self_attn.k_proj.weight",
             "attn_v.weight": "self_attn.v_proj.weight",
             "attn_output.weight": "self_attn.o_proj.weight",
             "attn_q.bias": "self_attn.q_proj.bias", "attn_k.bias": "self_attn.k_proj.bias",
             "attn_v.bias": "self_attn.v_proj.bias", "ffn_norm.weight": "post_attention_layernorm.weight",
             "ffn_gate.weight": "mlp.gate_proj.weight", "ffn_up.weight": "mlp.up_proj.weight",
             "ffn_down.weight": "mlp.down_proj.weight"}
TOP_MAP = {"token_embd.weight": "model.embed_tokens.weight", "output_norm.weight": "model.norm.weight",
           "output.weight": "lm_head.weight"}


class Fail(Exception):
    pass


def need(cond, msg):
    if not cond:
        raise Fail(msg)


# ------------------------------------------------------------- encodings --

def decode(dtype, raw):
    if dtype == "F32":
        return np.frombuffer(raw, "<f4").astype(np.float64)
    if dtype == "F16":
        return np.frombuffer(raw, "<f2").astype(np.float64)
    if dtype == "BF16":
        return (np.frombuffer(raw, "<u2").astype("<u4") << 16).view("<f4").astype(np.float64)
    raise Fail(f"unexpected dtype {dtype}")


def encode(dtype, x):
    """float64 values -> bytes: to float32 (round to nearest even), then the dtype."""
    x32 = np.asarray(x, dtype=np.float64).astype(np.float32)
    if dtype == "F32":
        return x32.astype("<f4").tobytes()
    if dtype == "F16":
        return x32.astype("<f2").tobytes()
    u = x32.view(np.uint32).astype(np.uint64)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype("<u2").tobytes()


def pool(w, g0, g, method):
    """New heads from old: w is (g0 * rows_per_head, cols) float64."""
    heads = w.reshape(g0, -1)
    if method == "repeat":
        return heads[np.arange(g) // (g // g0)].reshape(-1, w.shape[1])
    k = g0 // g
    grouped = heads.reshape(g, k, -1)
    if method == "first":
        return grouped[:, 0].reshape(-1, w.shape[1])
    s = grouped[:, 0].copy()
    for i in range(1, k):  # in head order, in double, rounded once
        s = s + grouped[:, i]
    return (s / k).astype(np.float32).astype(np.float64).reshape(-1, w.shape[1])


def unpermute(w, n_head):
    """GGUF rows -> HF rows within each head (tests/oracle/llama_oracle.py)."""
    rows, cols = w.shape
    return w.reshape(n_head, rows // n_head // 2, 2, cols).swapaxes(1, 2).reshape(rows, cols)


def permute(w, n_head):
    """HF rows -> GGUF rows (llama.cpp convert_hf_to_gguf.py LlamaModel.permute)."""
    rows, cols = w.shape
    return w.reshape(n_head, 2, rows // n_head // 2, cols).swapaxes(1, 2).reshape(rows, cols)


def rms(x):
    return float(np.sqrt(np.mean(np.square(x)))) if x.size else 0.0


# ------------------------------------------------------------ HF reading --

def pairs(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f, object_pairs_hook=lambda kv: kv)


def shard_files(d):
    idx = os.path.join(d, "model.safetensors.index.json")
    if os.path.exists(idx):
        return sorted(set(json.load(open(idx))["weight_map"].values()))
    return ["model.safetensors"]


def read_hf(d):
    """name -> (dtype, shape, raw bytes, shard), every shard through the reference parser."""
    out = {}
    for sf in shard_files(d):
        data = open(os.path.join(d, sf), "rb").read()
        for name, info in safetensors.deserialize(data):
            out[name] = (info["dtype"], list(info["shape"]), bytes(info["data"]), sf)
        with safetensors.safe_open(os.path.join(d, sf), framework="np") as f:
            need((f.metadata() or {}).get("format") == "pt", f"{sf}: __metadata__ format != pt")
    return out


def kv_kind(name):
    for k in KV:
        if name.endswith("." + k):
            return k
    return None


# ------------------------------------------------------------- HF -> HF --

def expect_kv(dtype_in, shape, raw, g0, g, method, out_dtype):
    rows = shape[0]
    w = decode(dtype_in, raw).reshape(rows, -1)
    return encode(out_dtype, pool(w, g0, g, method))


def check_kv_tensor(name, s, o, g0, g, method, spec):
    dt_in, shape, raw, _ = s
    want_dt = dt_in if spec == "keep" else ST_OF_Q[OUT_TYPES[spec]]
    want_shape = [shape[0] // g0 * g] + shape[1:]
    need(o[0] == want_dt and o[1] == want_shape,
         f"{name}: {o[0]} {o[1]}, expected {want_dt} {want_shape}")
    if method == "random":
        new, old = decode(o[0], o[2]), decode(dt_in, raw)
        need(np.all(np.isfinite(new)) and 0.5 < rms(new) / rms(old) < 2.0,
             f"{name}: random values with RMS {rms(new):.4g} vs the original's {rms(old):.4g}")
        return
    need(o[2] == expect_kv(dt_in, shape, raw, g0, g, method, want_dt),
         f"{name}: values differ from the hand-computed {method}")


def check_config(src, out, g):
    s, o = pairs(os.path.join(src, "config.json")), pairs(os.path.join(out, "config.json"))
    sk, ok = [k for k, _ in s], [k for k, _ in o]
    want = sk if "num_key_value_heads" in sk else sk + ["num_key_value_heads"]
    need(ok == want, f"config.json keys {ok} != {want}")
    sd, od = dict(s), dict(o)
    for k in sk:
        need(k == "num_key_value_heads" or od[k] == sd[k], f"config.json {k} changed")
    need(od["num_key_value_heads"] == g, f"num_key_value_heads {od['num_key_value_heads']} != {g}")
    return sd


def check_hf(src, out, g, method, spec):
    g = int(g)
    cfg = check_config(src, out, g)
    g0 = cfg.get("num_key_value_heads", cfg["num_attention_heads"])
    si, oi = read_hf(src), read_hf(out)
    need(sorted(si) == sorted(oi), f"tensor names differ: {sorted(set(si) ^ set(oi))}")
    n_kv = 0
    for name, s in si.items():
        o = oi[name]
        need(o[3] == s[3], f"{name} moved from {s[3]} to {o[3]}")
        if kv_kind(name):
            check_kv_tensor(name, s, o, g0, g, method, spec)
            n_kv += 1
        else:
            need(o[:3] == s[:3], f"{name} is not byte-identical")
    skip = {"config.json", "model.safetensors.index.json"} | set(shard_files(src))
    for fn in os.listdir(src):
        if fn not in skip:
            need(open(os.path.join(src, fn), "rb").read() == open(os.path.join(out, fn), "rb").read(),
                 f"{fn} not copied byte for byte")
    need(sorted(os.listdir(out)) == sorted(os.listdir(src)), "the output's files differ")
    return f"{len(si)} tensors, {n_kv} K/V"


# ---------------------------------------------------------- GGUF -> HF --

def field(r, key, default=None):
    f = r.fields.get(key)
    return default if f is None else f.contents()


def hf_name(gguf_name):
    if gguf_name in TOP_MAP:
        return TOP_MAP[gguf_name]
    _, layer, rest = gguf_name.split(".", 2)
    return f"model.layers.{layer}.{LAYER_MAP[rest]}"


def gguf_matrix(t):
    """A GGUF tensor as float64 (rows, cols); 1-D as (n, 1)."""
    w = np.asarray(quants.dequantize(t.data, t.tensor_type), dtype=np.float64)
    dims = [int(x) for x in t.shape]
    return w.reshape(dims[1], dims[0]) if len(dims) == 2 else w.reshape(dims[0], 1)


def transform(name_hf, w, h, g0, g, method, to_gguf):
    """Pool K/V heads (in the source's row order), then move Q/K rows."""
    if kv_kind(name_hf):
        w = pool(w, g0, g, method)
    n_head = h if ".q_proj." in name_hf else g if ".k_proj." in name_hf else 0
    if n_head:
        w = permute(w, n_head) if to_gguf else unpermute(w, n_head)
    return w


def check_gguf_config(r, out, g):
    c = json.load(open(os.path.join(out, "config.json")))
    a = "llama."
    h = int(field(r, a + "attention.head_count"))
    e = int(field(r, a + "embedding_length"))
    want = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": e,
            "intermediate_size": int(field(r, a + "feed_forward_length")),
            "num_attention_heads": h, "num_key_value_heads": g,
            "num_hidden_layers": int(field(r, a + "block_count")),
            "head_dim": int(field(r, a + "attention.key_length", e // h)),
            "tie_word_embeddings": "output.weight" not in {t.name for t in r.tensors},
            "hidden_act": "silu"}
    if a + "context_length" in r.fields:
        want["max_position_embeddings"] = int(field(r, a + "context_length"))
    for k, v in want.items():
        need(c.get(k) == v, f"config.json {k} = {c.get(k)!r}, expected {v!r}")
    eps = float(field(r, a + "attention.layer_norm_rms_epsilon"))
    need(np.float32(c["rms_norm_eps"]) == np.float32(eps), f"rms_norm_eps {c['rms_norm_eps']}")
    theta = float(field(r, a + "rope.freq_base", 10000.0))
    need(np.float32(c["rope_theta"]) == np.float32(theta), f"rope_theta {c['rope_theta']}")
    return c


def check_gguf2hf(src, out, g, method, spec):
    g = int(g)
    r = GGUFReader(src)
    c = check_gguf_config(r, out, g)
    h = c["num_attention_heads"]
    g0 = int(field(r, "llama.attention.head_count_kv", h))
    oi = read_hf(out)
    need(sorted(oi) == sorted(hf_name(t.name) for t in r.tensors), "tensor names differ")
    need(c["vocab_size"] == oi["model.embed_tokens.weight"][1][0], "vocab_size")
    for t in r.tensors:
        name = hf_name(t.name)
        dt, shape, raw, _ = oi[name]
        want_dt = (ST_OF_Q.get(t.tensor_type, "F16") if spec == "keep"
                   else ST_OF_Q[OUT_TYPES[spec]])
        w = gguf_matrix(t)
        if kv_kind(name) and method == "random":
            need(dt == want_dt and shape[0] == w.shape[0] // g0 * g, f"{name}: {dt} {shape}")
            continue
        w = transform(name, w, h, g0, g, method, False)
        want_shape = list(w.shape) if len(t.shape) == 2 else [w.shape[0]]
        need(dt == want_dt and shape == want_shape,
             f"{name}: {dt} {shape}, expected {want_dt} {want_shape}")
        need(raw == encode(dt, w), f"{name}: values differ from gguf's dequantised {t.name}")
    return f"{len(oi)} tensors"


# ---------------------------------------------------------- HF -> GGUF --

def gguf_name(name_hf):
    for k, v in TOP_MAP.items():
        if v == name_hf:
            return k
    _, _, layer, rest = name_hf.split(".", 3)
    return f"blk.{layer}." + next(k for k, v in LAYER_MAP.items() if v == rest)


def check_gguf_keys(r, cfg, g):
    a = "llama."
    want = {"general.architecture": "llama", a + "block_count": cfg["num_hidden_layers"],
            a + "embedding_length": cfg["hidden_size"],
            a + "feed_forward_length": cfg["intermediate_size"],
            a + "attention.head_count": cfg["num_attention_heads"],
            a + "attention.head_count_kv": g,
            a + "context_length": cfg["max_position_embeddings"],
            a + "vocab_size": cfg["vocab_size"],
            a + "rope.dimension_count": cfg["hidden_size"] // cfg["num_attention_heads"]}
    for k, v in want.items():
        need(field(r, k) == v, f"{k} = {field(r, k)!r}, expected {v!r}")
    need(np.float32(field(r, a + "attention.layer_norm_rms_epsilon")) == np.float32(cfg["rms_norm_eps"]),
         "layer_norm_rms_epsilon")
    need(np.float32(field(r, a + "rope.freq_base")) == np.float32(cfg["rope_theta"]), "freq_base")


def check_tokenizer(r, src, cfg):
    """tokenizer.ggml.* from make_convert_hf.py's tokenizer.json and
    tokenizer_config.json (bos by name, eos from config.json)."""
    tj = json.load(open(os.path.join(src, "tokenizer.json"), encoding="utf-8"))
    vocab = dict(tj["model"]["vocab"])
    vocab.update({a["content"]: a["id"] for a in tj["added_tokens"]})
    tokens = [t for t, _ in sorted(vocab.items(), key=lambda kv: kv[1])]
    need(field(r, "tokenizer.ggml.model") == "gpt2", "tokenizer.ggml.model")
    need(field(r, "tokenizer.ggml.pre") == "smollm", f"pre {field(r, 'tokenizer.ggml.pre')!r}")
    need(list(field(r, "tokenizer.ggml.tokens")) == tokens, "tokenizer.ggml.tokens")
    types = [1] * len(tokens)
    types[258], types[259] = 3, 4
    need(list(field(r, "tokenizer.ggml.token_type")) == types, "tokenizer.ggml.token_type")
    need(list(field(r, "tokenizer.ggml.merges")) == ["\u0120 t", "h e"], "tokenizer.ggml.merges")
    need(field(r, "tokenizer.ggml.bos_token_id") == 258, "bos id")
    need(field(r, "tokenizer.ggml.eos_token_id") == cfg["eos_token_id"], "eos id")
    need(field(r, "tokenizer.ggml.add_bos_token") is True, "add_bos_token")
    need(field(r, "tokenizer.chat_template") == "{{ messages }}", "chat_template")


def check_hf2gguf(src, out, g, method, spec):
    g = int(g)
    cfg = json.load(open(os.path.join(src, "config.json")))
    h = cfg["num_attention_heads"]
    g0 = cfg.get("num_key_value_heads", h)
    r = GGUFReader(out)
    check_gguf_keys(r, cfg, g)
    check_tokenizer(r, src, cfg)
    si = read_hf(src)
    if cfg.get("tie_word_embeddings"):
        si.pop("lm_head.weight", None)
    got = {t.name: t for t in r.tensors}
    need(sorted(got) == sorted(gguf_name(n) for n in si), "tensor names differ")
    for name, (dt, shape, raw, _) in si.items():
        t = got[gguf_name(name)]
        w = transform(name, decode(dt, raw).reshape(shape[0], -1), h, g0, g, method, True)
        want_t = (Q.F32 if len(shape) == 1 else Q_OF_ST[dt] if spec == "keep" else OUT_TYPES[spec])
        want_dims = [w.shape[1], w.shape[0]] if len(shape) == 2 else [w.shape[0]]
        need(t.tensor_type == want_t and [int(x) for x in t.shape] == want_dims,
             f"{t.name}: {t.tensor_type.name} {list(t.shape)}, expected {want_t.name} {want_dims}")
        if kv_kind(name) and method == "random":
            continue
        if want_t in ST_OF_Q:
            want = encode(ST_OF_Q[want_t], w)
        else:
            want = quants.quantize(w.astype(np.float32), want_t).tobytes()
        need(np.asarray(t.data).tobytes() == want, f"{t.name}: bytes differ from {name}")
    return f"{len(got)} tensors"


def check_same(a, b):
    ta, tb = read_hf(a), read_hf(b)
    need(sorted(ta) == sorted(tb), f"tensor names differ: {sorted(set(ta) ^ set(tb))}")
    for k in ta:
        need(ta[k][:3] == tb[k][:3], f"{k} differs")
    return f"{len(ta)} tensors identical"


CHECKS = {"hf": (check_hf, 5), "gguf2hf": (check_gguf2hf, 5), "hf2gguf": (check_hf2gguf, 5),
          "same": (check_same, 2)}


def main(argv):
    if len(argv) != 2:
        print(__doc__)
        return 2
    failures = 0
    for line in open(argv[1], encoding="utf-8"):
        words = line.split("#")[0].split()
        if not words:
            continue
        fn, n_args = CHECKS.get(words[0], (None, 0))
        try:
            need(fn is not None and len(words) == n_args + 1, f"bad manifest line: {line.strip()}")
            print(f"ok   {' '.join(words)}: {fn(*words[1:])}")
        except (Fail, OSError, KeyError, ValueError) as e:
            failures += 1
            print(f"FAIL {' '.join(words)}: {type(e).__name__}: {e}")
    print(f"check_convert_hf: {failures} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
