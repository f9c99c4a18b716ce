#!/usr/bin/env python3
"""make_convert_gguf.py - small Llama-family GGUF files for the conversion tests.

Written with the PyPI `gguf` package (llama.cpp's own writer and quantisers), so
the inputs of tests/test_convert.c come from an implementation independent of
ours. Every value is drawn from a seeded NumPy generator: the tests never need
to know them, they recompute what they expect from the files themselves
(tests/convert/check_convert.py and test_convert.c).

Usage: make_convert_gguf.py OUTDIR

  mha.gguf        H = 4, G0 = 4 (MHA), d = 8, E = 32, 6 layers whose K/V tensors are
                  f32, f16, bf16, q8_0, q4_0, q4_1 (one type per layer); K/V biases
                  (f32) in layers 0 and 3; alignment 64; metadata of every kind.
                  Loadable by gqa_model_load (tied output, f32 everything else).
  gqa.gguf        the same with G0 = 2 and default alignment: for repeat / round trip.
  nokv.gguf       1 layer, no head_count_kv key (G0 = H = 4 by default).
  kvi16.gguf      1 layer, head_count_kv stored as i16 (the output keeps the type).
  gpt2.gguf       general.architecture "gpt2".
  missing_k.gguf  mha.gguf without blk.1.attn_k.weight.
  badshape.gguf   blk.0.attn_k.weight with 24 rows where 4 heads of 8 need 32.
  q6k.gguf        1 layer whose attn_k is q6_k (E = 256): pooling needs dequantising
                  it, which this project cannot; first/repeat copy its blocks.
"""
import os
import sys

import numpy as np
from gguf import GGUFWriter, GGUFValueType as V, GGMLQuantizationType as Q
from gguf import quants

KV_TYPES = [Q.F32, Q.F16, Q.BF16, Q.Q8_0, Q.Q4_0, Q.Q4_1]
E, D, H, F, VOCAB = 32, 8, 4, 64, 16


def add_weight(w, name, arr, qt):
    """Add a 2-D (rows, cols) or 1-D float array as ggml type qt."""
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    if qt == Q.F32:
        w.add_tensor(name, arr)
    elif qt == Q.F16:
        w.add_tensor(name, arr.astype(np.float16))
    else:
        w.add_tensor(name, quants.quantize(arr, qt), raw_dtype=qt)


def metadata(w, arch, n_layers, h, g0, with_kv_key=True, alignment=None, kv_type=V.UINT32):
    if alignment:
        w.add_custom_alignment(alignment)
    w.add_name("convert test")
    w.add_uint32(f"{arch}.block_count", n_layers)
    w.add_uint32(f"{arch}.context_length", 64)
    w.add_uint32(f"{arch}.embedding_length", E)
    w.add_uint32(f"{arch}.feed_forward_length", F)
    w.add_uint32(f"{arch}.attention.head_count", h)
    if with_kv_key:
        w.add_key_value(f"{arch}.attention.head_count_kv", g0, kv_type)
    w.add_float32(f"{arch}.rope.freq_base", 10000.0)
    w.add_float32(f"{arch}.attention.layer_norm_rms_epsilon", 1e-5)
    w.add_uint32("general.file_type", 0)
    # values of every kind, to be copied byte for byte
    w.add_array("test.strings", ["a", "", "\u65e5\u672c", "xyz"])
    w.add_key_value("test.i32s", [1, -2, 3], V.ARRAY, sub_type=V.INT32)
    w.add_key_value("test.nested", [[1, 2], [3]], V.ARRAY, sub_type=V.ARRAY)
    w.add_float64("test.f64", 0.1)
    w.add_bool("test.bool", True)
    w.add_uint8("test.u8", 7)
    w.add_int64("test.i64", -(2**40))
    w.add_string("test.str", "h\u00e9llo")


def write_model(path, g0, rng, arch="llama", alignment=None, kv_types=KV_TYPES, bias_layers=(0, 3),
                skip=(), kv_rows=None, with_kv_key=True, kv_type=V.UINT32):
    n_layers = len(kv_types)
    w = GGUFWriter(path, arch)
    metadata(w, arch, n_layers, H, g0, with_kv_key, alignment, kv_type)
    def normal(*shape, scale=0.5):
        return (rng.standard_normal(shape) * scale).astype(np.float32)
    w.add_tensor("token_embd.weight", normal(VOCAB, E))
    w.add_tensor("output_norm.weight", 1.0 + normal(E, scale=0.1))
    for l, qt in enumerate(kv_types):
        p = f"blk.{l}."
        w.add_tensor(p + "attn_norm.weight", 1.0 + normal(E, scale=0.1))
        w.add_tensor(p + "attn_q.weight", normal(H * D, E, scale=0.3))
        rows = kv_rows if kv_rows else g0 * D
        if p + "attn_k.weight" not in skip:
            add_weight(w, p + "attn_k.weight", normal(rows, E, scale=0.3), qt)
        add_weight(w, p + "attn_v.weight", normal(g0 * D, E, scale=0.3), qt)
        if l in bias_layers:
            w.add_tensor(p + "attn_k.bias", normal(g0 * D, scale=0.1))
            w.add_tensor(p + "attn_v.bias", normal(g0 * D, scale=0.1))
        w.add_tensor(p + "attn_output.weight", normal(E, H * D, scale=0.3))
        w.add_tensor(p + "ffn_norm.weight", 1.0 + normal(E, scale=0.1))
        w.add_tensor(p + "ffn_gate.weight", normal(F, E, scale=0.3))
        w.add_tensor(p + "ffn_up.weight", normal(F, E, scale=0.3))
        w.add_tensor(p + "ffn_down.weight", normal(E, F, scale=0.3))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def write_q6k(path, rng):
    """One layer, E = 256 so that a q6_k row is one block; raw q6_k bytes."""
    w = GGUFWriter(path, "llama")
    w.add_uint32("llama.block_count", 1)
    w.add_uint32("llama.embedding_length", 256)
    w.add_uint32("llama.attention.head_count", 4)
    w.add_uint32("llama.attention.head_count_kv", 4)
    w.add_uint32("llama.attention.key_length", D)
    rows = 4 * D
    raw = rng.integers(0, 256, size=(rows, 210), dtype=np.uint8)
    raw[:, 208:210] = np.frombuffer(np.float16(0.01).tobytes(), dtype=np.uint8)  # finite scale
    w.add_tensor("blk.0.attn_k.weight", raw, raw_dtype=Q.Q6_K)
    w.add_tensor("blk.0.attn_v.weight", (rng.standard_normal((rows, 256)) * 0.3).astype(np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: make_convert_gguf.py OUTDIR")
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    j = lambda name: os.path.join(out, name)
    write_model(j("mha.gguf"), 4, np.random.default_rng(1), alignment=64)
    write_model(j("gqa.gguf"), 2, np.random.default_rng(2), bias_layers=(0,))
    write_model(j("nokv.gguf"), 4, np.random.default_rng(3), kv_types=[Q.F32], bias_layers=(),
                with_kv_key=False)
    write_model(j("kvi16.gguf"), 4, np.random.default_rng(7), kv_types=[Q.F16], bias_layers=(),
                kv_type=V.INT16)
    write_model(j("gpt2.gguf"), 4, np.random.default_rng(4), arch="gpt2", kv_types=[Q.F32])
    write_model(j("missing_k.gguf"), 4, np.random.default_rng(1), alignment=64,
                skip=("blk.1.attn_k.weight",))
    write_model(j("badshape.gguf"), 4, np.random.default_rng(5), kv_types=[Q.F32], kv_rows=24)
    write_q6k(j("q6k.gguf"), np.random.default_rng(6))


if __name__ == "__main__":
    main()
