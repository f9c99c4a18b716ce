#!/usr/bin/env python3
"""make_gguf.py - write small, valid GGUF files for the GGUF reader's tests.

Uses the PyPI `gguf` package (llama.cpp's own writer, tests/oracle/requirements.txt),
so the files come from an implementation independent of src/model/gguf.c.
tests/test_gguf.c knows the contents below and checks every value; keep the
two in step. The files also seed the fuzzer's corpus (tests/fuzz/fuzz_gguf.c).

Usage: make_gguf.py OUTDIR      (writes valid.gguf, align64.gguf, empty.gguf, ...)
"""
import os
import sys

import numpy as np
from gguf import GGUFWriter, GGUFValueType as V, GGMLQuantizationType as Q
from gguf.constants import GGML_QUANT_SIZES


def pattern(n, k):
    """Bytes of raw tensor number k: byte j is (31*j + 7*k + 1) mod 256."""
    return ((np.arange(n, dtype=np.int64) * 31 + 7 * k + 1) % 256).astype(np.uint8)


# name, ggml type, numpy shape (rows, row elements); raw bytes from pattern()
RAW_TENSORS = [
    ("t.q8_0", Q.Q8_0, (2, 64)),
    ("t.q4_0", Q.Q4_0, (3, 32)),
    ("t.q4_1", Q.Q4_1, (1, 32)),
    ("t.bf16", Q.BF16, (5,)),
    ("t.q6_k", Q.Q6_K, (1, 256)),
    ("blk.0.attn_q.weight", Q.Q4_1, (4, 64)),
]


def add_metadata(w):
    w.add_uint8("test.u8", 200)
    w.add_int8("test.i8", -100)
    w.add_uint16("test.u16", 60000)
    w.add_int16("test.i16", -30000)
    w.add_uint32("test.u32", 4000000000)
    w.add_int32("test.i32", -2000000000)
    w.add_float32("test.f32", 1.5)
    w.add_bool("test.bool", True)
    w.add_bool("test.bool_false", False)
    w.add_string("test.str", "h\u00e9llo w\u00f6rld")
    w.add_string("test.str_empty", "")
    w.add_uint64("test.u64", 2**40 + 7)
    w.add_int64("test.i64", -(2**40))
    w.add_float64("test.f64", 0.25)
    w.add_float64("test.f64_inexact", 0.1)
    w.add_uint32("test.small_u32", 7)
    w.add_int64("test.small_i64", 576)
    w.add_array("test.arr_str", ["a", "", "bc", "\u65e5\u672c"])
    w.add_key_value("test.arr_i32", [1, -2, 3, 2147483647, -2147483648], V.ARRAY, sub_type=V.INT32)
    w.add_key_value("test.arr_u8", [0, 1, 255], V.ARRAY, sub_type=V.UINT8)
    w.add_key_value("test.arr_u32_big", [1, 4000000000], V.ARRAY, sub_type=V.UINT32)
    w.add_key_value("test.arr_f32", [0.5, -1.25, 3.0], V.ARRAY, sub_type=V.FLOAT32)
    w.add_key_value("test.arr_bool", [True, False, True], V.ARRAY, sub_type=V.BOOL)
    w.add_key_value("test.arr_nested", [[1, 2], [3]], V.ARRAY, sub_type=V.ARRAY)


def add_tensors(w):
    w.add_tensor("t.f32", (np.arange(12, dtype=np.float32) * 0.5).reshape(3, 4))
    w.add_tensor("t.f16", (np.arange(16, dtype=np.float32) - 8).astype(np.float16).reshape(2, 8))
    for k, (name, qt, shape) in enumerate(RAW_TENSORS):
        blck, size = GGML_QUANT_SIZES[qt]
        rows = shape[0] if len(shape) > 1 else 1
        row_bytes = shape[-1] // blck * size
        data = pattern(rows * row_bytes, k).reshape(rows, row_bytes) if len(shape) > 1 \
            else pattern(row_bytes, k)
        w.add_tensor(name, data, raw_dtype=qt)


def write(path, metadata=True, tensors=True, alignment=None):
    w = GGUFWriter(path, "testarch")
    if alignment:
        w.add_custom_alignment(alignment)
    if metadata:
        add_metadata(w)
    if tensors:
        add_tensors(w)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: make_gguf.py OUTDIR")
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    write(os.path.join(out, "valid.gguf"))
    write(os.path.join(out, "align64.gguf"), alignment=64)
    write(os.path.join(out, "empty.gguf"), metadata=False, tensors=False)
    write(os.path.join(out, "metadata_only.gguf"), tensors=False)
    write(os.path.join(out, "tensors_only.gguf"), metadata=False)


if __name__ == "__main__":
    main()
