#!/usr/bin/env python3
"""make_hf.py - Hugging Face model directories and safetensors files for
tests/test_safetensors.c, and the check of what that test writes.

Valid files are written with the PyPI `safetensors` package (Hugging Face's
own Rust implementation, tests/oracle/requirements.txt), so they come from an
implementation independent of src/convert/; malformed ones are built byte by
byte here. What the C test must find is in OUTDIR/expect.json.

Tensor values follow one formula that tests/test_safetensors.c repeats:
element i of a tensor with seed s is ((7*i + 13*s) mod 97 - 48) / 16, which
f32, f16 and bf16 all hold exactly, so every comparison is exact.

Usage:
  make_hf.py make OUTDIR                 write everything below OUTDIR (replaced)
  make_hf.py check SRC OUT EXPECT_JSON   check the directory OUT that the C test
                                         wrote from SRC; EXPECT_JSON lists OUT's
                                         tensors (name, dtype, shape, seed) and
                                         its num_key_value_heads
"""
import json
import os
import shutil
import struct
import sys

import numpy as np
import safetensors

# safetensors' Python binding names dtypes the torch way
PY_DTYPE = {"F32": "float32", "F16": "float16", "BF16": "bfloat16", "F64": "float64",
            "BOOL": "bool", "U8": "uint8", "I64": "int64", "F4": "float4_e2m1fn_x2",
            "F8_E4M3": "float8_e4m3fn"}
ELEM_BITS = {"F32": 32, "F16": 16, "BF16": 16, "F64": 64, "BOOL": 8, "U8": 8, "I64": 64,
             "F4": 4, "F8_E4M3": 8}
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pth", ".pt", ".ckpt", ".h5", ".msgpack",
                   ".gguf", ".onnx", ".index.json")


def values(seed, n):
    i = np.arange(n, dtype=np.int64)
    return (((7 * i + 13 * seed) % 97) - 48) / 16.0


def encode(dtype, vals):
    if dtype == "F32":
        return vals.astype("<f4").tobytes()
    if dtype == "F16":
        return vals.astype("<f2").tobytes()
    if dtype == "BF16":  # exact: the values need 7 significant bits at most
        return (vals.astype("<f4").view("<u4") >> 16).astype("<u2").tobytes()
    raise ValueError(dtype)


def decode(dtype, data):
    if dtype == "F32":
        return np.frombuffer(data, "<f4").astype(np.float64)
    if dtype == "F16":
        return np.frombuffer(data, "<f2").astype(np.float64)
    if dtype == "BF16":
        return (np.frombuffer(data, "<u2").astype("<u4") << 16).view("<f4").astype(np.float64)
    raise ValueError(dtype)


def nbytes(dtype, shape):
    return int(np.prod(shape, dtype=np.int64)) * ELEM_BITS[dtype] // 8


def save(path, tensors, metadata):
    """tensors: list of (name, dtype, shape, raw bytes) -> the reference writer."""
    keep, specs = [], {}
    for name, dtype, shape, raw in tensors:
        buf = np.frombuffer(raw, np.uint8).copy() if raw else np.zeros(1, np.uint8)
        keep.append(buf)
        if dtype == "F4":  # the binding takes the storage shape (2 values a byte)
            shape = list(shape[:-1]) + [shape[-1] // 2]
        specs[name] = safetensors.TensorSpec(dtype=PY_DTYPE[dtype], shape=list(shape),
                                             data_ptr=buf.ctypes.data, data_len=len(raw))
    safetensors.serialize_file(specs, path, metadata=metadata)


def write_json(path, obj):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, ensure_ascii=False)
        f.write("\n")


# ----------------------------------------------------------------- models --

def llama_tensors(layers, heads, kv_heads, head_dim, hidden, inter, vocab, dtypes):
    """HF Llama tensor names and shapes; dtypes cycle through the list."""
    names = [("model.embed_tokens.weight", [vocab, hidden])]
    for l in range(layers):
        p = f"model.layers.{l}."
        names += [(p + "input_layernorm.weight", [hidden]),
                  (p + "self_attn.q_proj.weight", [heads * head_dim, hidden]),
                  (p + "self_attn.k_proj.weight", [kv_heads * head_dim, hidden]),
                  (p + "self_attn.v_proj.weight", [kv_heads * head_dim, hidden]),
                  (p + "self_attn.o_proj.weight", [hidden, heads * head_dim]),
                  (p + "post_attention_layernorm.weight", [hidden]),
                  (p + "mlp.gate_proj.weight", [inter, hidden]),
                  (p + "mlp.up_proj.weight", [inter, hidden]),
                  (p + "mlp.down_proj.weight", [hidden, inter])]
    names += [("model.norm.weight", [hidden]), ("lm_head.weight", [vocab, hidden])]
    return [{"name": n, "dtype": dtypes[k % len(dtypes)], "shape": s, "seed": k + 1}
            for k, (n, s) in enumerate(names)]


def raw_of(t):
    return encode(t["dtype"], values(t["seed"], int(np.prod(t["shape"], dtype=np.int64))))


def extra_files(d):
    with open(os.path.join(d, "tokenizer.json"), "w") as f:
        f.write('{"version": "1.0", "model": {"type": "BPE", "vocab": {"a": 0}}, '
                '"note": "dummy \u00e9\u65e5"}\n')
    write_json(os.path.join(d, "generation_config.json"), {"bos_token_id": 1, "eos_token_id": 2})
    with open(os.path.join(d, "README.md"), "w") as f:
        f.write("# test model\n")


def make_single(d):
    os.makedirs(d)
    cfg = {"architectures": ["LlamaForCausalLM"], "model_type": "llama",
           "hidden_size": 64, "intermediate_size": 32, "num_attention_heads": 8,
           "num_key_value_heads": 4, "num_hidden_layers": 2, "rms_norm_eps": 1e-05,
           "rope_theta": 10000.0, "rope_scaling": None, "tie_word_embeddings": False,
           "torch_dtype": "float32", "vocab_size": 16, "initializer_range": 0.02,
           "nested": {"a": [1, 2, {"b": "c"}], "\u00fcnicode": "\u65e5\u672c"}}
    write_json(os.path.join(d, "config.json"), cfg)
    extra_files(d)
    ts = llama_tensors(2, 8, 4, 8, 64, 32, 16, ["F32", "F16", "BF16"])
    save(os.path.join(d, "model.safetensors"),
         [(t["name"], t["dtype"], t["shape"], raw_of(t)) for t in ts], {"format": "pt"})
    for t in ts:
        t["shard"] = "model.safetensors"
    return {"dir": "single", "sharded": False, "heads": 8, "kv_heads": 4, "hidden": 64,
            "head_dim": 8, "layers": 2, "architecture": "LlamaForCausalLM",
            "model_type": "llama", "tensors": ts, "metadata": {"format": "pt"}}


def make_sharded(d):
    os.makedirs(d)
    # no num_key_value_heads (MHA: defaults to the head count), explicit head_dim
    cfg = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 48,
           "head_dim": 16, "intermediate_size": 24, "num_attention_heads": 4,
           "num_hidden_layers": 3, "rms_norm_eps": 1e-06, "vocab_size": 8,
           "bos_token_id": 1, "max_position_embeddings": 2048}
    write_json(os.path.join(d, "config.json"), cfg)
    extra_files(d)
    with open(os.path.join(d, "real_tokenizer.model"), "wb") as f:
        f.write(bytes(range(256)) * 3)
    os.symlink("real_tokenizer.model", os.path.join(d, "tokenizer.model"))
    with open(os.path.join(d, "pytorch_model.bin"), "wb") as f:  # stale: not copied
        f.write(b"stale weights")
    os.makedirs(os.path.join(d, "original"))  # subdirectories: not copied
    with open(os.path.join(d, "original", "params.json"), "w") as f:
        f.write("{}\n")
    ts = llama_tensors(3, 4, 4, 16, 48, 24, 8, ["BF16", "F32", "F16", "F16"])
    shards = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
    half = len(ts) // 2
    for k, t in enumerate(ts):
        t["shard"] = shards[0 if k < half else 1]
    for s in shards:
        save(os.path.join(d, s), [(t["name"], t["dtype"], t["shape"], raw_of(t))
                                  for t in ts if t["shard"] == s], {"format": "pt"})
    total = sum(nbytes(t["dtype"], t["shape"]) for t in ts)
    index = {"metadata": {"total_parameters": 12345, "total_size": total},
             "weight_map": {t["name"]: t["shard"] for t in sorted(ts, key=lambda t: t["name"])}}
    write_json(os.path.join(d, "model.safetensors.index.json"), index)
    return {"dir": "sharded", "sharded": True, "heads": 4, "kv_heads": 4, "hidden": 48,
            "head_dim": 16, "layers": 3, "architecture": "LlamaForCausalLM",
            "model_type": "llama", "tensors": ts, "metadata": {"format": "pt"}}


# ----------------------------------------------------- hand-built files --

def raw_file(header, data=b"", pad=True, length=None):
    """A safetensors file from header text (str or bytes) and data bytes."""
    h = header.encode("utf-8") if isinstance(header, str) else header
    if pad:
        h += b" " * ((8 - len(h) % 8) % 8)
    n = len(h) if length is None else length
    return struct.pack("<Q", n) + h + data


def ent(dtype, shape, begin, end):
    return {"dtype": dtype, "shape": shape, "data_offsets": [begin, end]}


def hdr(obj):
    return json.dumps(obj, separators=(",", ":"))


# file name -> (bytes, expected status, substring of the message)
def bad_files():
    ok8 = hdr({"a": ent("F32", [2], 0, 8)})
    deep = '{"__metadata__":' + "[" * 1100 + "]" * 1100 + "}"
    return {
        "empty_file": (b"", "format", "too short"),
        "truncated_len": (b"\x10\x00\x00", "format", "too short"),
        "header_too_big": (raw_file(ok8, bytes(8), length=100_000_001), "format",
                           "exceeds the limit"),
        "header_past_end": (raw_file(ok8, bytes(8), length=4096), "format", "runs past the end"),
        "truncated_data": (raw_file(ok8, bytes(5)), "format", "run past the end"),
        "bad_json": (raw_file('{"a":{"dtype":"F32",'), "format", "not valid JSON"),
        "not_object": (raw_file("[1,2]"), "format", "must start with '{'"),
        "trailing_garbage": (raw_file("{} x"), "format", "non-whitespace"),
        "offsets_out_of_range": (raw_file(hdr({"a": ent("F32", [4], 0, 16)}), bytes(8)),
                                 "format", "run past the end"),
        "overlap": (raw_file(hdr({"a": ent("F32", [2], 0, 8), "b": ent("F32", [2], 4, 12)}),
                             bytes(12)), "format", "overlaps"),
        "wrong_size": (raw_file(hdr({"a": ent("F32", [3], 0, 8)}), bytes(8)), "format",
                       "need 12"),
        "unknown_dtype": (raw_file(hdr({"a": ent("F17", [2], 0, 8)}), bytes(8)), "format",
                          "unknown dtype 'F17'"),
        "dtype_not_string": (raw_file('{"a":{"dtype":5,"shape":[2],"data_offsets":[0,8]}}',
                                      bytes(8)), "format", "unknown dtype"),
        "gap": (raw_file(hdr({"a": ent("F32", [2], 0, 8), "b": ent("F32", [2], 12, 20)}),
                         bytes(20)), "format", "gap"),
        "trailing_data": (raw_file(ok8, bytes(12)), "format", "trailing"),
        "first_not_at_zero": (raw_file(hdr({"a": ent("F32", [2], 8, 16)}), bytes(16)), "format",
                              "gap"),
        "duplicate_name": (raw_file('{"a":' + hdr(ent("F32", [1], 0, 4)) + ',"a":' +
                                    hdr(ent("F32", [1], 4, 8)) + "}", bytes(8)), "format",
                           "duplicate tensor name"),
        "nul_escape": (raw_file('{"a\\u0000b":' + hdr(ent("F32", [2], 0, 8)) + "}", bytes(8)),
                       "format", "\\u0000"),
        "nul_byte": (raw_file(b'{"a\x00":' + hdr(ent("F32", [2], 0, 8)).encode() + b"}",
                              bytes(8)), "format", "NUL byte"),
        "bad_utf8": (raw_file(b'{"a\xff":' + hdr(ent("F32", [2], 0, 8)).encode() + b"}",
                              bytes(8)), "format", "UTF-8"),
        "meta_not_string": (raw_file(hdr({"__metadata__": {"k": 1}})), "format", "not a string"),
        "meta_not_object": (raw_file(hdr({"__metadata__": [1]})), "format",
                            "__metadata__ is not"),
        "dup_metadata": (raw_file('{"__metadata__":{},"__metadata__":{}}'), "format",
                         "duplicate __metadata__"),
        "dup_metadata_key": (raw_file('{"__metadata__":{"k":"a","k":"b"}}'), "format",
                             "duplicate __metadata__ key"),
        "extra_key": (raw_file(hdr({"a": dict(ent("F32", [2], 0, 8), foo=1)}), bytes(8)),
                      "format", "unexpected key 'foo'"),
        "duplicate_key": (raw_file('{"a":{"dtype":"F32","dtype":"F32","shape":[2],'
                                   '"data_offsets":[0,8]}}', bytes(8)), "format",
                          "duplicate key 'dtype'"),
        "missing_key": (raw_file(hdr({"a": {"dtype": "F32", "shape": [2]}}), bytes(8)),
                        "format", "missing 'data_offsets'"),
        "tensor_not_object": (raw_file(hdr({"a": 5})), "format", "not a JSON object"),
        "shape_not_array": (raw_file(hdr({"a": ent("F32", 2, 0, 8)}), bytes(8)), "format",
                            "shape is not an array"),
        "negative_dim": (raw_file(hdr({"a": ent("F32", [-1], 0, 8)}), bytes(8)), "format",
                         "shape[0]"),
        "fractional_dim": (raw_file(hdr({"a": ent("F32", [1.5], 0, 8)}), bytes(8)), "format",
                           "shape[0]"),
        "huge_dim": (raw_file(hdr({"a": ent("F32", [2 ** 60], 0, 8)}), bytes(8)), "format",
                     "shape[0]"),
        "overflow": (raw_file(hdr({"a": ent("F32", [2 ** 40, 2 ** 40], 0, 8)}), bytes(8)),
                     "format", "overflows"),
        "bytes_overflow": (raw_file(hdr({"a": ent("F64", [2 ** 31, 2 ** 31], 0, 8)}),
                                    bytes(8)), "format", "overflows"),
        "end_before_begin": (raw_file(hdr({"a": ent("F32", [0], 8, 0)}), bytes(8)), "format",
                             "end before"),
        "offsets_not_pair": (raw_file(hdr({"a": {"dtype": "F32", "shape": [2],
                                                 "data_offsets": [0]}}), bytes(8)),
                             "format", "data_offsets is not"),
        "offsets_huge": (raw_file(hdr({"a": ent("F32", [2], 2 ** 60, 2 ** 60 + 8)}), bytes(8)),
                         "format", "data_offsets is not"),
        "sub_byte": (raw_file(hdr({"a": ent("F4", [3], 0, 2)}), bytes(2)), "format",
                     "whole number of bytes"),
        "rank9": (raw_file(hdr({"a": ent("F32", [1] * 9, 0, 4)}), bytes(4)), "unsupported",
                  "9 dimensions"),
        "deep_nesting": (raw_file(deep), "format", "JSON"),
    }


def good_files(d):
    """Valid edge cases; returns name -> what the reader must report."""
    out = {}
    f4 = bytes([0x12])
    edge = [("scalar", "F64", [], struct.pack("<d", 2.5)),
            ("empty", "F32", [0, 3], b""),
            ("packed_f4", "F4", [2], f4),
            ("flags", "BOOL", [3], bytes([1, 0, 1])),
            ("bytes", "U8", [5], bytes(range(5))),
            ("fp8", "F8_E4M3", [2], bytes([0x38, 0xb8])),
            ("\u540d\u524d.weight", "I64", [2], struct.pack("<qq", -1, 7))]
    save(os.path.join(d, "edge.safetensors"), edge, {"format": "pt", "n\u00f6te": "\u65e5"})
    save(os.path.join(d, "empty.safetensors"), [], None)
    with open(os.path.join(d, "unaligned.safetensors"), "wb") as f:  # legal, if unusual
        f.write(raw_file(hdr({"a": ent("F32", [1], 0, 4)}) + " \t\n", struct.pack("<f", 1.0),
                         pad=False))
    with open(os.path.join(d, "meta_null.safetensors"), "wb") as f:
        f.write(raw_file(hdr({"__metadata__": None, "b": ent("BF16", [1], 0, 2)}), bytes(2)))
    for name in ["edge", "empty", "unaligned", "meta_null"]:
        path = os.path.join(d, name + ".safetensors")
        data = open(path, "rb").read()
        n = struct.unpack("<Q", data[:8])[0]
        h = json.loads(data[8:8 + n])
        meta = h.pop("__metadata__", None) or {}
        ts = [{"name": k, "dtype": v["dtype"], "shape": v["shape"],
               "offset": v["data_offsets"][0], "n_bytes": v["data_offsets"][1] - v["data_offsets"][0]}
              for k, v in sorted(h.items(), key=lambda kv: kv[1]["data_offsets"])]
        out["good/" + name + ".safetensors"] = {"data_offset": 8 + n, "tensors": ts,
                                                "metadata": meta}
    return out


def bad_dirs(root, single_src):
    """Broken model directories: name -> (expected status, message substring)."""
    cfg = json.load(open(os.path.join(single_src, "config.json")))
    model = os.path.join(single_src, "model.safetensors")
    a = ("a", "F32", [2], encode("F32", values(1, 2)))
    b = ("b", "F16", [4], encode("F16", values(2, 4)))
    cases = {}

    def mk(name, config=cfg, files=None, index=None, status="format", msg=""):
        d = os.path.join(root, name)
        os.makedirs(d)
        if config is not None:
            if isinstance(config, str):
                open(os.path.join(d, "config.json"), "w").write(config)
            else:
                write_json(os.path.join(d, "config.json"), config)
        for fname, content in (files or {}).items():
            if isinstance(content, list):
                save(os.path.join(d, fname), content, {"format": "pt"})
            else:
                open(os.path.join(d, fname), "wb").write(content)
        if index is not None:
            write_json(os.path.join(d, "model.safetensors.index.json"), index)
        cases["baddir/" + name] = {"status": status, "message": msg}

    s1, s2 = "s1.safetensors", "s2.safetensors"
    mk("no_config", config=None, files={"model.safetensors": open(model, "rb").read()},
       status="io", msg="config.json")
    mk("config_bad_json", config='{"num_attention_heads": 8,', msg="not valid JSON")
    mk("config_not_object", config="[1]", msg="not a JSON object")
    mk("config_not_utf8", config=None, files={"config.json": b'{"x": "\xff"}'},
       msg="not UTF-8")
    mk("config_missing_heads", config={k: v for k, v in cfg.items()
                                       if k != "num_attention_heads"},
       msg='missing "num_attention_heads"')
    mk("config_heads_not_multiple", config=dict(cfg, num_key_value_heads=3),
       msg="not a multiple of num_key_value_heads 3")
    mk("config_bad_value", config=dict(cfg, hidden_size=-64), msg='"hidden_size" is not')
    mk("config_no_head_dim", config=dict(cfg, hidden_size=60), msg="no head_dim")
    mk("no_weights", status="io", msg="no model.safetensors")
    mk("index_escape", files={s1: [a]}, index={"weight_map": {"a": "../" + s1}},
       msg="not a plain file name")
    mk("index_wrong_shard", files={s1: [a], s2: [b]},
       index={"weight_map": {"a": s2, "b": s1}}, msg="is listed in")
    mk("index_unlisted_tensor", files={s1: [a, b]}, index={"weight_map": {"a": s1}},
       msg="'b' of 's1.safetensors' is not in the weight_map")
    mk("index_in_two_shards", files={s1: [a], s2: [a, b]},
       index={"weight_map": {"a": s1, "b": s2}}, msg="is in both")
    mk("index_missing_file", files={s1: [a]}, index={"weight_map": {"a": s1, "b": s2}},
       status="io", msg="s2.safetensors")
    mk("index_no_weight_map", files={s1: [a]}, index={"metadata": {}}, msg="weight_map")
    mk("index_value_not_string", files={s1: [a]}, index={"weight_map": {"a": 1}},
       msg="is not a file name")
    mk("bad_shard", files={s1: [a], s2: raw_file("{} x")},
       index={"weight_map": {"a": s1, "b": s2}}, msg="s2.safetensors")
    return cases


def make(outdir):
    if os.path.exists(outdir):
        shutil.rmtree(outdir)
    os.makedirs(outdir)
    expect = {"models": [make_single(os.path.join(outdir, "single")),
                         make_sharded(os.path.join(outdir, "sharded"))]}
    os.makedirs(os.path.join(outdir, "bad"))
    expect["bad_files"] = {}
    for name, (data, status, msg) in bad_files().items():
        with open(os.path.join(outdir, "bad", name + ".safetensors"), "wb") as f:
            f.write(data)
        expect["bad_files"]["bad/" + name + ".safetensors"] = {"status": status, "message": msg}
    os.makedirs(os.path.join(outdir, "good"))
    expect["good_files"] = good_files(os.path.join(outdir, "good"))
    os.makedirs(os.path.join(outdir, "baddir"))
    expect["bad_dirs"] = bad_dirs(os.path.join(outdir, "baddir"), os.path.join(outdir, "single"))
    # a model whose tokenizer.model is a dangling link: writing a copy must fail
    dangling = os.path.join(outdir, "dangling")
    shutil.copytree(os.path.join(outdir, "single"), dangling)
    os.symlink("missing.model", os.path.join(dangling, "tokenizer.model"))
    # the fuzzer's seed corpus: every file above, valid or not
    corpus = os.path.join(outdir, "corpus")
    os.makedirs(corpus)
    for sub in ["bad", "good"]:
        for name in os.listdir(os.path.join(outdir, sub)):
            shutil.copy(os.path.join(outdir, sub, name), os.path.join(corpus, sub + "_" + name))
    shutil.copy(os.path.join(outdir, "single", "model.safetensors"),
                os.path.join(corpus, "single.safetensors"))
    write_json(os.path.join(outdir, "expect.json"), expect)
    print(f"make_hf: wrote 2 model directories, {len(expect['bad_files'])} malformed files, "
          f"{len(expect['good_files'])} edge-case files, {len(expect['bad_dirs'])} broken "
          f"directories under {outdir}")


# ------------------------------------------------------------------ check --

class Checker:
    def __init__(self):
        self.failures = 0
        self.checks = 0

    def ok(self, cond, msg):
        self.checks += 1
        if not cond:
            self.failures += 1
            print("  FAIL", msg)
        return cond


def pairs(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f, object_pairs_hook=lambda kv: kv)


def check_shard(c, path, expect_by_name, src_meta):
    data = open(path, "rb").read()
    n = struct.unpack("<Q", data[:8])[0]
    c.ok(n % 8 == 0, f"{path}: header length {n} is not a multiple of 8")
    c.ok(data[8:9] == b"{", f"{path}: header does not start with '{{'")
    header = json.loads(data[8:8 + n])  # the reference reader below validates the rest
    with safetensors.safe_open(path, framework="np") as f:
        c.ok((f.metadata() or {}) == src_meta,
             f"{path}: metadata {f.metadata()} != source's {src_meta}")
        plain = [k for k in f.keys() if header[k]["dtype"] != "BF16"]
        for k in plain:  # the numpy path, where numpy has the dtype
            t = expect_by_name[k]
            arr = f.get_tensor(k)
            c.ok(list(arr.shape) == t["shape"] and
                 np.array_equal(arr.astype(np.float64).ravel(),
                                values(t["seed"], arr.size)),
                 f"{path}: numpy tensor {k} differs")
    names = []
    for name, info in safetensors.deserialize(data):
        names.append(name)
        t = expect_by_name.get(name)
        if not c.ok(t is not None, f"{path}: unexpected tensor {name}"):
            continue
        c.ok(info["dtype"] == t["dtype"] and list(info["shape"]) == t["shape"],
             f"{path}: {name} is {info['dtype']} {info['shape']}, want {t['dtype']} {t['shape']}")
        got = decode(info["dtype"], bytes(info["data"]))
        c.ok(np.array_equal(got, values(t["seed"], got.size)), f"{path}: {name} values differ")
        begin = header[name]["data_offsets"][0]
        c.ok((8 + n + begin) % (ELEM_BITS[t["dtype"]] // 8) == 0,
             f"{path}: {name} at file offset {8 + n + begin} is not aligned to its element size")
    return names


def check_config(c, src, out, kv):
    s, o = pairs(os.path.join(src, "config.json")), pairs(os.path.join(out, "config.json"))
    skeys, okeys = [k for k, _ in s], [k for k, _ in o]
    want = skeys if "num_key_value_heads" in skeys else skeys + ["num_key_value_heads"]
    c.ok(okeys == want, f"config.json keys {okeys} != {want}")
    sd, od = dict(s), dict(o)
    for k in skeys:
        if k != "num_key_value_heads":
            c.ok(od.get(k) == sd[k], f"config.json {k}: {od.get(k)!r} != {sd[k]!r}")
    c.ok(od.get("num_key_value_heads") == kv,
         f"config.json num_key_value_heads {od.get('num_key_value_heads')} != {kv}")


def check_other_files(c, src, out, shard_files):
    expected = set()
    for name in os.listdir(src):
        p = os.path.join(src, name)
        if name == "config.json" or name.endswith(WEIGHT_SUFFIXES) or not os.path.isfile(p):
            continue
        expected.add(name)
        q = os.path.join(out, name)
        c.ok(os.path.isfile(q) and not os.path.islink(q) and
             open(p, "rb").read() == open(q, "rb").read(), f"{name} not copied byte for byte")
    expected |= {"config.json"} | set(shard_files)
    if os.path.exists(os.path.join(src, "model.safetensors.index.json")):
        expected.add("model.safetensors.index.json")
    got = set(os.listdir(out))
    c.ok(got == expected, f"files in {out}: extra {sorted(got - expected)}, "
                          f"missing {sorted(expected - got)}")


def check(src, out, expect_path):
    c = Checker()
    exp = json.load(open(expect_path, encoding="utf-8"))
    by_name = {t["name"]: t for t in exp["tensors"]}
    index_path = os.path.join(src, "model.safetensors.index.json")
    if os.path.exists(index_path):
        sidx, oidx = pairs(index_path), pairs(os.path.join(out, "model.safetensors.index.json"))
        smap, omap = dict(dict(sidx)["weight_map"]), dict(dict(oidx)["weight_map"])
        c.ok([k for k, _ in sidx] == [k for k, _ in oidx], "index.json keys changed")
        c.ok(sorted(omap) == sorted(by_name), "index.json weight_map names != tensors written")
        for k, v in omap.items():
            c.ok(k not in smap or smap[k] == v, f"index.json: {k} moved from {smap.get(k)} to {v}")
        smeta, ometa = dict(dict(sidx)["metadata"]), dict(dict(oidx)["metadata"])
        total = sum(nbytes(t["dtype"], t["shape"]) for t in exp["tensors"])
        c.ok(ometa.get("total_size") == total,
             f"index.json total_size {ometa.get('total_size')} != {total}")
        for k in smeta:
            c.ok(k == "total_size" or ometa.get(k) == smeta[k], f"index.json metadata {k} lost")
        shard_files = sorted(set(smap.values()))
    else:
        shard_files, omap = ["model.safetensors"], None
    seen = []
    for sf in shard_files:
        with safetensors.safe_open(os.path.join(src, sf), framework="np") as f:
            src_meta = f.metadata() or {}
        names = check_shard(c, os.path.join(out, sf), by_name, src_meta)
        for nm in names:
            c.ok(omap is None or omap.get(nm) == sf, f"{nm} is in {sf}, weight_map says "
                                                     f"{omap and omap.get(nm)}")
        seen += names
    c.ok(sorted(seen) == sorted(by_name), f"tensors written {sorted(seen)} != expected")
    check_config(c, src, out, exp["n_kv_heads"])
    check_other_files(c, src, out, shard_files)
    print(f"make_hf check {out}: {c.checks - c.failures} passed, {c.failures} failed")
    return 1 if c.failures else 0


def main(argv):
    if len(argv) == 3 and argv[1] == "make":
        make(argv[2])
        return 0
    if len(argv) == 5 and argv[1] == "check":
        return check(argv[2], argv[3], argv[4])
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
