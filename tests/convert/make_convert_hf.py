#!/usr/bin/env python3
"""make_convert_hf.py - small Hugging Face model directories for the
conversion tests (tests/test_convert_hf.c, checked by check_convert_hf.py).

Written with the PyPI `safetensors` package (Hugging Face's own writer), so
the inputs come from an implementation independent of src/convert/. Values
are drawn from a seeded NumPy generator and rounded to each dtype; the tests
never need to know them, they recompute what they expect from the files.

Usage: make_convert_hf.py OUTDIR        (OUTDIR is replaced)

  llama_f32      LlamaForCausalLM, H = 4, G0 = 4 (MHA), head_dim 8, hidden 32, 3
                 layers, F32, untied lm_head, one model.safetensors; tokenizer.json,
                 generation_config.json and a README are copied by conversions.
  llama_f16      the same in F16, tie_word_embeddings (no lm_head), two shards with
                 model.safetensors.index.json, no num_key_value_heads (MHA default).
  llama_bf16     BF16, G0 = 2 (GQA), explicit head_dim; for repeat round trips.
  qwen2_bf16     model_type qwen2 (Qwen2ForCausalLM), G0 = 4, q/k/v biases, BF16.
  gpt2           model_type gpt2: not a Llama-family model.
  missing_k      llama_f32 without model.layers.1.self_attn.k_proj.weight.
  rope_scaled    llama_f32 with rope_scaling (fine for HF -> HF, not for GGUF).
  extra_tensor   llama_f32 with an extra model.layers.0.self_attn.foo.weight.
  k_i32          llama_f32 whose layer 0 k_proj is I32.
  q6k.gguf       a complete one-layer llama GGUF (E = 256) whose attn_q is q6_k, a
                 type this project cannot dequantise: GGUF -> HF must refuse it.
"""
import json
import os
import shutil
import sys

import numpy as np
import safetensors
from gguf import GGUFWriter, GGMLQuantizationType as Q

H, D, HIDDEN, INTER, VOCAB, LAYERS = 4, 8, 32, 64, 16, 3
PY_DTYPE = {"F32": "float32", "F16": "float16", "BF16": "bfloat16", "I32": "int32"}


def encode(dtype, x):
    x = np.asarray(x, dtype=np.float64)
    if dtype == "F32":
        return x.astype("<f4").tobytes()
    if dtype == "F16":
        return x.astype("<f2").tobytes()
    if dtype == "BF16":  # round to nearest even, as every converter does
        u = x.astype("<f4").view("<u4").astype(np.uint64)
        return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype("<u2").tobytes()
    if dtype == "I32":
        return np.round(x * 100).astype("<i4").tobytes()
    raise ValueError(dtype)


def save(path, tensors, metadata=None):
    """tensors: dict name -> (dtype, shape, raw bytes), in insertion order."""
    keep, specs = [], {}
    for name, (dtype, shape, raw) in tensors.items():
        buf = np.frombuffer(raw, np.uint8).copy()
        keep.append(buf)
        specs[name] = safetensors.TensorSpec(dtype=PY_DTYPE[dtype], shape=list(shape),
                                             data_ptr=buf.ctypes.data, data_len=len(raw))
    safetensors.serialize_file(specs, path, metadata=metadata)


def write_json(path, obj):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, ensure_ascii=False)
        f.write("\n")


def model_tensors(rng, dtype, g0, lm_head=True, bias=False):
    def t(*shape, scale=0.5, offset=0.0):
        return (dtype, list(shape), encode(dtype, offset + rng.standard_normal(shape) * scale))
    ts = {"model.embed_tokens.weight": t(VOCAB, HIDDEN)}
    for l in range(LAYERS):
        p = f"model.layers.{l}."
        ts[p + "input_layernorm.weight"] = t(HIDDEN, scale=0.1, offset=1.0)
        ts[p + "self_attn.q_proj.weight"] = t(H * D, HIDDEN)
        ts[p + "self_attn.k_proj.weight"] = t(g0 * D, HIDDEN)
        ts[p + "self_attn.v_proj.weight"] = t(g0 * D, HIDDEN)
        if bias:
            ts[p + "self_attn.q_proj.bias"] = t(H * D, scale=0.1)
            ts[p + "self_attn.k_proj.bias"] = t(g0 * D, scale=0.1)
            ts[p + "self_attn.v_proj.bias"] = t(g0 * D, scale=0.1)
        ts[p + "self_attn.o_proj.weight"] = t(HIDDEN, H * D)
        ts[p + "post_attention_layernorm.weight"] = t(HIDDEN, scale=0.1, offset=1.0)
        ts[p + "mlp.gate_proj.weight"] = t(INTER, HIDDEN)
        ts[p + "mlp.up_proj.weight"] = t(INTER, HIDDEN)
        ts[p + "mlp.down_proj.weight"] = t(HIDDEN, INTER)
    ts["model.norm.weight"] = t(HIDDEN, scale=0.1, offset=1.0)
    if lm_head:
        ts["lm_head.weight"] = t(VOCAB, HIDDEN)
    return ts


def config(g0=None, arch="LlamaForCausalLM", model_type="llama", dtype="float32", tied=False,
           **extra):
    c = {"architectures": [arch], "model_type": model_type, "hidden_size": HIDDEN,
         "intermediate_size": INTER, "num_attention_heads": H, "num_hidden_layers": LAYERS,
         "rms_norm_eps": 1e-05, "rope_theta": 10000.0, "max_position_embeddings": 64,
         "hidden_act": "silu", "tie_word_embeddings": tied, "torch_dtype": dtype,
         "vocab_size": VOCAB, "bos_token_id": 1, "eos_token_id": 2,
         "nested": {"list": [1, 2.5, None], "s": "\u65e5\u672c"}}
    if g0 is not None:
        c["num_key_value_heads"] = g0
    c.update(extra)
    return c


def byte_chars():
    """GPT-2's bytes_to_unicode: the 256 characters byte-level BPE uses."""
    bs = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [chr(c) for _, c in sorted(zip(bs, cs))]


# A small byte-level BPE tokenizer (SmolLM's pre-tokenizer: single digits,
# then GPT-2's split): the 256 byte tokens, two merges (one in each JSON
# form), a special and a plain added token. The converter's tokenizer.ggml.*
# keys are checked against it (check_convert_hf.py, check_tokenizer).
def tokenizer_json():
    vocab = {c: i for i, c in enumerate(byte_chars())}
    vocab["\u0120t"] = 256
    vocab["he"] = 257
    return {"version": "1.0",
            "added_tokens": [
                {"id": 258, "content": "<s>", "special": True},
                {"id": 259, "content": "<|user|>", "special": False}],
            "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
                {"type": "Digits", "individual_digits": True},
                {"type": "ByteLevel", "add_prefix_space": False, "use_regex": True}]},
            "decoder": {"type": "ByteLevel"},
            "model": {"type": "BPE", "vocab": vocab, "merges": ["\u0120 t", ["h", "e"]]}}


TOKENIZER_CONFIG = {"bos_token": {"content": "<s>"}, "add_bos_token": True,
                    "chat_template": "{{ messages }}"}


def write_dir(d, cfg, tensors, shards=1):
    os.makedirs(d)
    write_json(os.path.join(d, "config.json"), cfg)
    write_json(os.path.join(d, "tokenizer.json"), tokenizer_json())
    write_json(os.path.join(d, "tokenizer_config.json"), TOKENIZER_CONFIG)
    write_json(os.path.join(d, "generation_config.json"), {"bos_token_id": 1, "eos_token_id": 2})
    with open(os.path.join(d, "README.md"), "w") as f:
        f.write("# synthetic test model\n")
    if shards == 1:
        save(os.path.join(d, "model.safetensors"), tensors, {"format": "pt"})
        return
    names = list(tensors)
    cut = len(names) // 2
    wm, total = {}, 0
    for k, part in enumerate((names[:cut], names[cut:])):
        fn = f"model-{k + 1:05d}-of-00002.safetensors"
        save(os.path.join(d, fn), {n: tensors[n] for n in part}, {"format": "pt"})
        for n in part:
            wm[n] = fn
            total += len(tensors[n][2])
    write_json(os.path.join(d, "model.safetensors.index.json"),
               {"metadata": {"total_size": total}, "weight_map": wm})


def write_q6k_gguf(path, rng):
    e, d = 256, 64
    w = GGUFWriter(path, "llama")
    for k, v in (("block_count", 1), ("context_length", 64), ("embedding_length", e),
                 ("feed_forward_length", e), ("attention.head_count", 4),
                 ("attention.head_count_kv", 4)):
        w.add_uint32("llama." + k, v)
    w.add_float32("llama.attention.layer_norm_rms_epsilon", 1e-5)
    f32 = lambda *shape: (rng.standard_normal(shape) * 0.3).astype(np.float32)
    w.add_tensor("token_embd.weight", f32(VOCAB, e))
    w.add_tensor("output_norm.weight", f32(e))
    raw = rng.integers(0, 256, size=(4 * d, 210), dtype=np.uint8)
    raw[:, 208:210] = np.frombuffer(np.float16(0.01).tobytes(), dtype=np.uint8)  # finite scale
    w.add_tensor("blk.0.attn_q.weight", raw, raw_dtype=Q.Q6_K)
    for n, shape in (("attn_norm", (e,)), ("attn_k", (4 * d, e)), ("attn_v", (4 * d, e)),
                     ("attn_output", (e, 4 * d)), ("ffn_norm", (e,)), ("ffn_gate", (e, e)),
                     ("ffn_up", (e, e)), ("ffn_down", (e, e))):
        w.add_tensor(f"blk.0.{n}.weight", f32(*shape))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def main(argv):
    if len(argv) != 2:
        print(__doc__)
        return 2
    out = argv[1]
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    rng = np.random.default_rng(20240607)
    p = lambda name: os.path.join(out, name)
    base = model_tensors(rng, "F32", 4)
    write_dir(p("llama_f32"), config(4), base)
    write_dir(p("llama_f16"), config(None, dtype="float16", tied=True),
              model_tensors(rng, "F16", 4, lm_head=False), shards=2)
    write_dir(p("llama_bf16"), config(2, dtype="bfloat16", head_dim=D),
              model_tensors(rng, "BF16", 2))
    write_dir(p("qwen2_bf16"), config(4, "Qwen2ForCausalLM", "qwen2", "bfloat16", tied=True),
              model_tensors(rng, "BF16", 4, lm_head=False, bias=True))
    write_dir(p("gpt2"), config(4, "GPT2LMHeadModel", "gpt2"), base)
    write_dir(p("missing_k"), config(4),
              {k: v for k, v in base.items() if k != "model.layers.1.self_attn.k_proj.weight"})
    write_dir(p("rope_scaled"), config(4, rope_scaling={"type": "linear", "factor": 2.0}), base)
    extra = dict(base)
    extra["model.layers.0.self_attn.foo.weight"] = ("F32", [4], encode("F32", [1, 2, 3, 4]))
    write_dir(p("extra_tensor"), config(4), extra)
    ki = dict(base)
    ki["model.layers.0.self_attn.k_proj.weight"] = (
        "I32", [4 * D, HIDDEN], encode("I32", rng.standard_normal(4 * D * HIDDEN)))
    write_dir(p("k_i32"), config(4), ki)
    write_q6k_gguf(p("q6k.gguf"), rng)
    print(f"make_convert_hf: 9 model directories and q6k.gguf under {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
