#!/usr/bin/env python3
"""attn_oracle.py - an independent float64 oracle for gqa_attention.

Reads the cases that test_oracle wrote into a directory (manifest.json plus
raw little-endian arrays), recomputes grouped-query attention from q, k and v
with NumPy in float64 - decoding f16 with NumPy's own float16 and bf16 by
shifting the bits into a float32 - and compares the library's out and lse
for every kernel set that was written. It shares no code with the library.

Semantics (gqa.h): query head h reads KV head h // (H // G); query i sits at
position q_pos + i, key j at j. Causal: keys <= position. Window W > 0: keys
max(0, p-W+1) .. min(p, n_kv-1), causal or not. A row that sees no key has
out = 0 and lse = -inf. lse = log sum exp of the scaled, masked scores.

Tolerance (the library computes in float32): per element
    |got - want| <= ATOL * max|v| + RTOL * |want|      (out)
    |got - want| <= LSE_ATOL + LSE_RTOL * |want|         (lse)
the same budget as tests/test_attention.c, whose comment derives it: float
rounding of the scores, exp and the sums over up to 4096 keys stays below
~4e-6 absolute for data in [-1, 1]; outputs scale with max|v|.

Usage: attn_oracle.py DIR        exit status 0 if every comparison passes.
"""
import json
import math
import os
import sys

try:
    import numpy as np
except ImportError:
    print(f"FAIL: attn_oracle.py needs NumPy, which {sys.executable} does not have.\n"
          "      Install it with:  .venv/bin/pip install -r tests/oracle/requirements.txt")
    sys.exit(2)

ATOL = 2e-5
RTOL = 2e-4
LSE_ATOL = 2e-5
LSE_RTOL = 2e-5
SHOW = 5  # failing elements printed per comparison


def load(directory, name, dtype, count):
    path = os.path.join(directory, name)
    a = np.fromfile(path, dtype=dtype)
    if a.size != count:
        raise ValueError(f"{path}: {a.size} elements, expected {count}")
    return a


def load_kv(directory, name, kv_dtype, count):
    if kv_dtype == "f32":
        return load(directory, name, "<f4", count).astype(np.float64)
    bits = load(directory, name, "<u2", count)
    if kv_dtype == "f16":
        return bits.view("<f2").astype(np.float64)
    if kv_dtype == "bf16":
        return (bits.astype("<u4") << 16).view("<f4").astype(np.float64)
    raise ValueError(f"unknown kv_dtype {kv_dtype!r}")


def visible_mask(n_q, n_kv, q_pos, causal, window):
    """mask[i, j]: query i sees key j."""
    p = q_pos + np.arange(n_q, dtype=np.int64)[:, None]
    j = np.arange(n_kv, dtype=np.int64)[None, :]
    mask = np.ones((n_q, n_kv), dtype=bool)
    if causal or window > 0:
        mask &= j <= p
    if window > 0:
        mask &= j >= p - window + 1
    return mask


def attention(c, q, k, v):
    """float64 attention; q (n_q, H, d), k and v (n_kv, G, d)."""
    H, G, d = c["H"], c["G"], c["d"]
    n_q, n_kv = c["n_q"], c["n_kv"]
    scale = float(np.float32(c["scale"]))
    if scale == 0.0:
        scale = 1.0 / math.sqrt(d)
    mask = visible_mask(n_q, n_kv, c["q_pos"], c["causal"], c["window"])
    seen = mask.any(axis=1)
    group = H // G
    out = np.zeros((n_q, H, d))
    lse = np.full((n_q, H), -np.inf)
    for g in range(G):
        heads = slice(g * group, (g + 1) * group)
        s = np.einsum("qhd,kd->hqk", q[:, heads, :], k[:, g, :]) * scale
        s = np.where(mask[None], s, -np.inf)
        m = s.max(axis=2, keepdims=True)
        m = np.where(np.isfinite(m), m, 0.0)
        e = np.where(mask[None], np.exp(s - m), 0.0)
        l = e.sum(axis=2)
        with np.errstate(divide="ignore", invalid="ignore"):
            o = np.einsum("hqk,kd->qhd", e, v[:, g, :]) / l.T[:, :, None]
            row_lse = (m[:, :, 0] + np.log(l)).T
        out[:, heads, :] = np.where(seen[:, None, None], o, 0.0)
        lse[:, heads] = np.where(seen[:, None], row_lse, -np.inf)
    return out, lse


def compare(label, got, want, atol, rtol, shape):
    """Return True when got matches want; print the first failures if not."""
    got = got.astype(np.float64)
    bad = np.zeros(want.shape, dtype=bool)
    finite = np.isfinite(want)
    with np.errstate(invalid="ignore"):  # -inf - -inf where both are -inf
        err = np.where(finite & np.isfinite(got), np.abs(got - want), 0.0)
    bad |= finite & ~np.isfinite(got)
    bad |= finite & (err > atol + rtol * np.abs(want))
    bad |= ~finite & (got != want)  # an infinite reference (-inf lse) must match exactly
    max_err = float(err.max()) if err.size else 0.0
    if not bad.any():
        return True, max_err
    idx = np.flatnonzero(bad)
    print(f"FAIL {label}: {idx.size} of {want.size} elements outside "
          f"|got-want| <= {atol:.3g} + {rtol:.3g}*|want|; max |got-want| {max_err:.3g}")
    for i in idx[:SHOW]:
        where = np.unravel_index(i, shape)
        at = tuple(int(x) for x in where)
        print(f"      {at}: got {float(got.flat[i])!r} want {float(want.flat[i])!r}")
    return False, max_err


def main():
    if len(sys.argv) != 2:
        print("usage: attn_oracle.py DIR")
        return 2
    directory = sys.argv[1]
    with open(os.path.join(directory, "manifest.json")) as f:
        manifest = json.load(f)
    if manifest.get("format") != "gqa-oracle-1":
        print(f"FAIL: unknown manifest format {manifest.get('format')!r}")
        return 1
    passed = failed = 0
    for c in manifest["cases"]:
        H, G, d, n_q, n_kv = c["H"], c["G"], c["d"], c["n_q"], c["n_kv"]
        q = load(directory, c["q"], "<f4", n_q * H * d).astype(np.float64).reshape(n_q, H, d)
        k = load_kv(directory, c["k"], c["kv_dtype"], n_kv * G * d).reshape(n_kv, G, d)
        v = load_kv(directory, c["v"], c["kv_dtype"], n_kv * G * d).reshape(n_kv, G, d)
        want_out, want_lse = attention(c, q, k, v)
        vmax = float(np.abs(v).max())
        if not c["results"]:
            print(f"FAIL {c['name']}: no results were written")
            failed += 1
        for r in c["results"]:
            got_out = load(directory, r["out"], "<f4", n_q * H * d).reshape(n_q, H, d)
            got_lse = load(directory, r["lse"], "<f4", n_q * H).reshape(n_q, H)
            label = f"{c['name']} [{r['kernel']}]"
            ok_o, e_o = compare(label + " out", got_out, want_out, ATOL * vmax, RTOL,
                                (n_q, H, d))
            ok_l, e_l = compare(label + " lse", got_lse, want_lse, LSE_ATOL, LSE_RTOL, (n_q, H))
            if ok_o and ok_l:
                passed += 1
                print(f"ok   {label}: max |err| out {e_o:.3g}, lse {e_l:.3g}")
            else:
                failed += 1
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
