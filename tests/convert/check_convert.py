#!/usr/bin/env python3
"""check_convert.py - an independent oracle for `gqa convert` (GGUF).

Reads each (input, output) pair with the PyPI `gguf` package and recomputes
what the converted file must hold with NumPy and gguf's own quantisers (the
ggml reference rules), independently of src/convert/:

  - metadata: the same keys in the same order with the same bytes, except
    {arch}.attention.head_count_kv = G (appended when the input lacks it);
  - tensors: the same names, order, types and shapes; every tensor other than
    blk.N.attn_{k,v}.{weight,bias} byte-identical;
  - K/V tensors: the expected type (gqa_convert_out_type rules) and shape, and
      mean    the group's mean in float64, rounded to float32, then encoded;
      first   the group's first head;
      repeat  old head j // (G / G0);
    a new head is the old head's bytes when the types match and it is a plain
    copy (first, repeat, or mean over byte-identical heads); else the f32
    values encoded with gguf.quants (f16 by NumPy's round-to-nearest-even);
      random  finite values whose RMS is near the old tensor's.

Usage: check_convert.py MANIFEST
  MANIFEST lines: IN OUT G METHOD OUT_TYPE   (# starts a comment)
                  load PATH                  (a file that must merely parse)
Prints one line per case; exit status 1 if any case fails.
"""
import sys

import numpy as np
from gguf import GGUFReader, GGMLQuantizationType as Q
from gguf import quants

WRITABLE = {Q.F32, Q.F16, Q.BF16, Q.Q8_0, Q.Q4_0, Q.Q4_1}
QTYPES = {Q.Q8_0, Q.Q4_0, Q.Q4_1}
OUT_TYPES = {"f32": Q.F32, "f16": Q.F16, "bf16": Q.BF16, "q8_0": Q.Q8_0, "q4_0": Q.Q4_0,
             "q4_1": Q.Q4_1}
KV_SUFFIXES = ("attn_k.weight", "attn_v.weight", "attn_k.bias", "attn_v.bias")


class Fail(Exception):
    pass


def field_bytes(f):
    return b"".join(np.asarray(p).tobytes() for p in f.parts)


def scalar(r, key, default=None):
    f = r.fields.get(key)
    return default if f is None else int(f.parts[-1][0])


def check_metadata(ri, ro, g):
    arch = bytes(ri.fields["general.architecture"].parts[-1]).decode()
    kv_key = f"{arch}.attention.head_count_kv"
    names_in = [n for n in ri.fields if not n.startswith("GGUF.")]
    names_out = [n for n in ro.fields if not n.startswith("GGUF.")]
    expect = names_in if kv_key in names_in else names_in + [kv_key]
    if names_out != expect:
        raise Fail(f"key order differs: {names_out} vs {expect}")
    for n in names_in:
        if n != kv_key and field_bytes(ri.fields[n]) != field_bytes(ro.fields[n]):
            raise Fail(f"key {n} is not byte-identical")
    if scalar(ro, kv_key) != g:
        raise Fail(f"{kv_key} = {scalar(ro, kv_key)}, expected {g}")
    if kv_key in ri.fields and ri.fields[kv_key].types != ro.fields[kv_key].types:
        raise Fail(f"{kv_key} changed its type")
    h = scalar(ri, f"{arch}.attention.head_count")
    e = scalar(ri, f"{arch}.embedding_length")
    g0 = scalar(ri, kv_key, h)
    dk = scalar(ri, f"{arch}.attention.key_length", e // h)
    dv = scalar(ri, f"{arch}.attention.value_length", dk)
    return g0, dk, dv


def out_type(spec, in_type, n_dims):
    t = OUT_TYPES.get(spec, in_type if in_type in WRITABLE else Q.F16)
    return Q.F32 if n_dims == 1 and t in QTYPES else t


def members(g0, g, method, j):
    if method == "repeat":
        return [j // (g // g0)]
    size = g0 // g
    return [j * size] if method == "first" else list(range(j * size, (j + 1) * size))


def encode(values, t, cols):
    arr = values.astype(np.float32).reshape(-1, cols)
    if t == Q.F32:
        return arr.tobytes()
    if t == Q.F16:
        return arr.astype(np.float16).tobytes()
    return np.asarray(quants.quantize(arr, t)).tobytes()


def all_copies(ti, method, g0, g):
    """Every new head is an old head's bytes (first, repeat, mean of equal heads)."""
    if method == "random":
        return False
    raw = np.asarray(ti.data).tobytes()
    hb = len(raw) // g0
    head = lambda k: raw[k * hb:(k + 1) * hb]
    return all(head(k) == head(members(g0, g, method, j)[0])
               for j in range(g) for k in members(g0, g, method, j))


def expected_heads(ti, method, g0, g, t_out):
    """The expected bytes of each new head, or None for random."""
    raw = np.asarray(ti.data).tobytes()
    cols = int(ti.shape[0])
    n_dims = len(ti.shape)
    hb = len(raw) // g0  # bytes per old head
    heads_raw = [raw[k * hb:(k + 1) * hb] for k in range(g0)]
    vals = None
    out = []
    for j in range(g):
        m = members(g0, g, method, j)
        if t_out == ti.tensor_type and all(heads_raw[k] == heads_raw[m[0]] for k in m):
            out.append(heads_raw[m[0]])
            continue
        if vals is None:
            vals = quants.dequantize(np.asarray(ti.data), ti.tensor_type).astype(np.float32)
            vals = vals.reshape(g0, -1)
        acc = vals[m[0]].astype(np.float64)
        for k in m[1:]:
            acc = acc + vals[k].astype(np.float64)
        mean = (acc / len(m)).astype(np.float32)
        out.append(encode(mean, t_out, cols if n_dims > 1 else mean.size))
    return out


def check_random(ti, to, g0, g):
    src = quants.dequantize(np.asarray(ti.data), ti.tensor_type).astype(np.float64)
    new = quants.dequantize(np.asarray(to.data), to.tensor_type).astype(np.float64)
    if not np.all(np.isfinite(new)):
        raise Fail(f"{to.name}: non-finite random values")
    rs, rn = np.sqrt(np.mean(src ** 2)), np.sqrt(np.mean(new ** 2))
    # the RMS of n normal draws is within a few 1/sqrt(2n) of the scale
    lo = 0.8 if new.size >= 256 else 0.6 if new.size >= 64 else 0.2
    hi = 1 / lo
    if not lo * rs <= rn <= hi * rs:
        raise Fail(f"{to.name}: RMS {rn:.4g} is not near the original's {rs:.4g}")


def check_kv(ti, to, method, g0, g, d, spec):
    n_dims = len(ti.shape)
    t_out = out_type(spec, ti.tensor_type, n_dims)
    if spec == "keep" and t_out != ti.tensor_type and n_dims > 1 and \
            all_copies(ti, method, g0, g):
        t_out = ti.tensor_type  # a type we cannot write is kept when every head is a copy
    if to.tensor_type != t_out:
        raise Fail(f"{to.name}: type {to.tensor_type.name}, expected {t_out.name}")
    shape = [g * d] if n_dims == 1 else [int(ti.shape[0]), g * d]
    if [int(x) for x in to.shape] != shape:
        raise Fail(f"{to.name}: shape {list(to.shape)}, expected {shape}")
    if method == "random":
        return check_random(ti, to, g0, g)
    want = b"".join(expected_heads(ti, method, g0, g, t_out))
    got = np.asarray(to.data).tobytes()
    if got != want:
        bad = next(i for i in range(min(len(got), len(want))) if got[i] != want[i]) \
            if len(got) == len(want) else -1
        raise Fail(f"{to.name} ({t_out.name}, {method}): bytes differ from the oracle "
                   f"(first at byte {bad} of {len(want)})")


def check_case(src, dst, g, method, spec):
    ri, ro = GGUFReader(src), GGUFReader(dst)
    g0, dk, dv = check_metadata(ri, ro, g)
    names_in = [t.name for t in ri.tensors]
    if [t.name for t in ro.tensors] != names_in:
        raise Fail("tensor names or order differ")
    n_kv = 0
    for ti, to in zip(ri.tensors, ro.tensors):
        parts = ti.name.split(".", 2)
        if len(parts) == 3 and parts[0] == "blk" and parts[2] in KV_SUFFIXES:
            check_kv(ti, to, method, g0, g, dk if "attn_k" in parts[2] else dv, spec)
            n_kv += 1
        elif ti.tensor_type != to.tensor_type or list(ti.shape) != list(to.shape) or \
                np.asarray(ti.data).tobytes() != np.asarray(to.data).tobytes():
            raise Fail(f"untouched tensor {ti.name} is not byte-identical")
    return n_kv, len(names_in)


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: check_convert.py MANIFEST")
    fails = 0
    with open(sys.argv[1]) as f:
        lines = [l.split() for l in f if l.strip() and not l.startswith("#")]
    for line in lines:
        if line[0] == "load":  # a file from the writer: it must parse, every byte accounted
            try:
                r = GGUFReader(line[1])
                sizes = sum(int(t.n_bytes) for t in r.tensors)
                print(f"ok   {line[1]}: gguf reads {len(r.fields)} fields, {len(r.tensors)} "
                      f"tensors ({sizes} bytes)")
            except Exception as e:  # the reader raises many kinds
                print(f"FAIL {line[1]}: gguf cannot read it: {e}")
                fails += 1
            continue
        src, dst, g, method, spec = line
        case = f"{dst} ({method} to G={g}, out-type {spec})"
        try:
            n_kv, n = check_case(src, dst, int(g), method, spec)
            print(f"ok   {case}: {n_kv} K/V tensors as computed, {n - n_kv} others identical")
        except Fail as e:
            print(f"FAIL {case}: {e}")
            fails += 1
    print(f"check_convert: {len(lines) - fails} of {len(lines)} cases agree with the oracle")
    sys.exit(1 if fails else 0)


if __name__ == "__main__":
    main()
