#!/usr/bin/env python3
"""make_cases.py - expected token ids for the C tokenizer test, from an
independent implementation.

Reads the tokenizer metadata (tokens, token types, merges, special ids,
pre-tokenizer name) of a GGUF file with the PyPI `gguf` package, builds the
same byte-level BPE with the PyPI `tokenizers` package (Hugging Face's Rust
implementation: its own regex engine, its own BPE), encodes a fixed list of
tricky strings plus seeded random ones, and writes into OUTDIR:

  vocab.bin  the vocabulary, so the C test can build its tokenizer before the
             C GGUF reader exists:
               "GQATOKV1", u32 n_tokens, n_tokens x (u32 len, bytes, i32 type),
               u32 n_merges, n_merges x (u32 len, bytes),
               i32 bos, eos, unk, pad, u32 add_bos, u32 len + bytes of the
               pre-tokenizer name
  cases.bin  "GQATOKC1", u32 n_cases, n_cases x (u32 flags, u32 len, bytes,
             u32 n_ids, n_ids x i32); flags bit 0: parse special tokens
  cases.txt  the same cases, readable (for a human comparing failures)

All integers little-endian. Exit status: 0 written, 3 model file absent
(nothing written), 1 anything else (message on stderr).

Usage: make_cases.py --model PATH --out OUTDIR
"""
import argparse
import os
import random
import struct
import sys

MAGIC_VOCAB = b"GQATOKV1"
MAGIC_CASES = b"GQATOKC1"
CONTROL, USER_DEFINED, UNKNOWN = 3, 4, 2

# Tricky strings: (text, parse_special).
FIXED_CASES = [
    ("Hello world", True),
    ("Hello, world! How are you?", True),
    (" leading space", True),
    ("  two leading spaces", True),
    ("trailing spaces   ", True),
    ("multiple    spaces   between words", True),
    ("tabs\tand\ttabs\t\t", True),
    ("new\nlines\n\nand\r\nCRLF\n", True),
    ("\n\n\n", True),
    ("1234567", True),
    ("3.14159 and 2,718,281 and -42", True),
    ("In 2024 there were 365 days; in 2025, 1000000.", True),
    ("digits9in9words x2y3", True),
    ("It's, don't, I'm, we've, you'll, they'd, she's", True),
    ("IT'S LOUD 'quoted' ''", True),
    ("emoji 😀 and 👍🏽 and 👨‍👩‍👧‍👦 family", True),
    ("🤗🤗🤗", True),
    ("中文分词测试，你好世界。", True),
    ("日本語のテキストとカタカナ", True),
    ("한국어 텍스트", True),
    ("Привет, мир! Ёлки-палки", True),
    ("مرحبا بالعالم", True),
    ("नमस्ते दुनिया", True),
    ("combining: e\u0301 a\u0308 n\u0303 and precomposed: é ä ñ", True),
    ("Zalgo: Z\u0351\u0356a\u0352l\u0357g\u0358o", True),
    ("mixed: English, 中文, русский, 123, 😀!", True),
    ("<|im_start|>user\nHi<|im_end|>", True),
    ("<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
     "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n", True),
    ("<|endoftext|>", True),
    ("text<|endoftext|>more text", True),
    ("<|im_start|>user\nHi<|im_end|>", False),
    ("<|endoftext|> not special here", False),
    ("<|im_start", True),
    ("<<|im_end|>>", True),
    ("def f(x):\n    return x ** 2  # square\n", True),
    ("if (a != b && c <= d) { x[i] = y->z; }", True),
    ("https://example.com/path?q=1&r=two#frag", True),
    ("email@example.org, @handle, #hashtag, $100.00, 50%", True),
    ("¡¿Qué?! «quotes» „low“ ‘single’", True),
    ("non\u00a0breaking\u2009thin\u3000ideographic spaces", True),
    ("½ ² ⅷ ① numeric-ish", True),
    # characters with a byte SmolLM2 has no token for (0x04; 0xF1 leads
    # U+50000): the byte is dropped, as tokenizers does
    ("a\x04b\U00050000c", True),
    ("\x13\x14 control \x1d bytes\x06", True),
    ("a", True),
    (" ", True),
    ("", True),
]

# Pieces for seeded random strings (valid UTF-8 by construction).
RANDOM_ALPHABETS = [
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ",
    "0123456789",
    " ", "  ", "\t", "\n", "\r\n",
    ".,;:!?'\"()[]{}<>-_=+*/\\|@#$%^&~`",
    "的一是不了人我在有他这中大来上国个到说们为子和你地出道也时年得就那要下以生会",
    "абвгдеёжзийклмнопрстуфхцчшщъыьэюя",
    "αβγδεζηθικλμνξοπρστυφχψω",
    "😀😁😂🤣😃😄😅🙂🙃😉👍👎🎉🔥✨🚀",
    "\u0301\u0308\u0303\u0327",
    "éèêëàâäôöûüçñß",
]


def die(msg):
    print(f"make_cases.py: {msg}", file=sys.stderr)
    sys.exit(1)


def field_str(reader, key, default=None):
    f = reader.fields.get(key)
    if f is None:
        return default
    return bytes(f.parts[f.data[0]]).decode("utf-8")


def field_int(reader, key, default):
    f = reader.fields.get(key)
    if f is None:
        return default
    return int(f.parts[f.data[0]][0])


def read_vocab(path):
    try:
        from gguf import GGUFReader
    except ImportError:
        die("the PyPI package `gguf` is missing: .venv/bin/pip install gguf")
    r = GGUFReader(path)
    model = field_str(r, "tokenizer.ggml.model")
    if model != "gpt2":
        die(f"{path}: tokenizer.ggml.model is {model!r}, this test covers 'gpt2' (byte-level BPE)")
    tf = r.fields["tokenizer.ggml.tokens"]
    tokens = [bytes(tf.parts[i]) for i in tf.data]
    types_f = r.fields.get("tokenizer.ggml.token_type")
    types = [int(types_f.parts[i][0]) for i in types_f.data] if types_f else [1] * len(tokens)
    mf = r.fields.get("tokenizer.ggml.merges")
    merges = [bytes(mf.parts[i]) for i in mf.data] if mf else []
    return {
        "tokens": tokens,
        "types": types,
        "merges": merges,
        "bos": field_int(r, "tokenizer.ggml.bos_token_id", -1),
        "eos": field_int(r, "tokenizer.ggml.eos_token_id", -1),
        "unk": field_int(r, "tokenizer.ggml.unknown_token_id", -1),
        "pad": field_int(r, "tokenizer.ggml.padding_token_id", -1),
        "add_bos": field_int(r, "tokenizer.ggml.add_bos_token", 0),
        "pre": field_str(r, "tokenizer.ggml.pre", "default"),
    }


def build_reference(v):
    """The same tokenizer, built by Hugging Face `tokenizers`."""
    try:
        from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers
    except ImportError:
        die("the PyPI package `tokenizers` is missing: .venv/bin/pip install tokenizers")
    vocab = {}
    for i, t in enumerate(v["tokens"]):
        vocab.setdefault(t.decode("utf-8"), i)
    merges = []
    for m in v["merges"]:
        s = m.decode("utf-8")
        sp = s.index(" ", 1)
        merges.append((s[:sp], s[sp + 1:]))
    tk = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    if v["pre"] == "smollm":
        # SmolLM2's own tokenizer.json: individual digits, then GPT-2's regex.
        tk.pre_tokenizer = pre_tokenizers.Sequence(
            [pre_tokenizers.Digits(individual_digits=True), byte_level])
    elif v["pre"] == "gpt2":
        tk.pre_tokenizer = byte_level
    else:
        die(f"no reference pre-tokenizer for {v['pre']!r}")
    tk.decoder = decoders.ByteLevel()
    specials = [AddedToken(t.decode("utf-8"), special=True, normalized=False)
                for t, ty in zip(v["tokens"], v["types"]) if ty in (CONTROL, UNKNOWN) and t]
    tk.add_special_tokens(specials)
    user = [AddedToken(t.decode("utf-8"), special=False, normalized=False)
            for t, ty in zip(v["tokens"], v["types"]) if ty == USER_DEFINED and t]
    if user:
        tk.add_tokens(user)
    return tk


def byte_chars_in_vocab(v):
    """spellable[b]: the vocabulary has the GPT-2 character of byte b."""
    printable = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
    cps, extra = {}, 0
    for b in range(256):
        if b in printable:
            cps[b] = b
        else:
            cps[b] = 256 + extra
            extra += 1
    have = {t.decode("utf-8", "replace") for t in v["tokens"]}
    return [chr(cps[b]) in have for b in range(256)]


def random_cases(n, seed):
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        parts = []
        for _ in range(rng.randint(1, 12)):
            alpha = rng.choice(RANDOM_ALPHABETS)
            parts.append("".join(rng.choice(alpha) for _ in range(rng.randint(1, 6))))
        out.append(("".join(parts), True))
    return out


def encode(tk, text, parse_special):
    tk.encode_special_tokens = not parse_special
    ids = tk.encode(text, add_special_tokens=False).ids
    tk.encode_special_tokens = False
    return ids


def u32(x):
    return struct.pack("<I", x)


def i32(x):
    return struct.pack("<i", x)


def write_vocab(path, v):
    with open(path, "wb") as f:
        f.write(MAGIC_VOCAB + u32(len(v["tokens"])))
        for t, ty in zip(v["tokens"], v["types"]):
            f.write(u32(len(t)) + t + i32(ty))
        f.write(u32(len(v["merges"])))
        for m in v["merges"]:
            f.write(u32(len(m)) + m)
        pre = v["pre"].encode("utf-8")
        f.write(i32(v["bos"]) + i32(v["eos"]) + i32(v["unk"]) + i32(v["pad"]))
        f.write(u32(1 if v["add_bos"] else 0) + u32(len(pre)) + pre)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--random", type=int, default=120, help="number of seeded random strings")
    args = ap.parse_args()

    os.makedirs(args.out, exist_ok=True)
    for name in ("vocab.bin", "cases.bin", "cases.txt"):
        try:
            os.remove(os.path.join(args.out, name))  # never leave a stale answer behind
        except FileNotFoundError:
            pass
    if not os.path.isfile(args.model):
        print(f"make_cases.py: model file {args.model} is absent", file=sys.stderr)
        sys.exit(3)

    v = read_vocab(args.model)
    tk = build_reference(v)
    cases = FIXED_CASES + random_cases(args.random, seed=20240531)
    spellable = byte_chars_in_vocab(v)
    rows = []
    for text, special in cases:
        ids = encode(tk, text, special)
        back = tk.decode(ids, skip_special_tokens=False)
        if all(spellable[b] for b in text.encode("utf-8")) and back != text:
            die(f"reference does not round-trip {text!r}: got {back!r}")
        rows.append((text.encode("utf-8"), 1 if special else 0, ids))

    write_vocab(os.path.join(args.out, "vocab.bin"), v)
    with open(os.path.join(args.out, "cases.bin"), "wb") as f:
        f.write(MAGIC_CASES + u32(len(rows)))
        for text, flags, ids in rows:
            f.write(u32(flags) + u32(len(text)) + text + u32(len(ids)))
            f.write(b"".join(i32(x) for x in ids))
    with open(os.path.join(args.out, "cases.txt"), "w", encoding="utf-8") as f:
        for i, (text, flags, ids) in enumerate(rows):
            f.write(f"{i}\tspecial={flags}\t{text.decode('utf-8')!r}\t{ids}\n")
    print(f"make_cases.py: {len(v['tokens'])} tokens, {len(v['merges'])} merges, "
          f"pre={v['pre']!r}, {len(rows)} cases -> {args.out}")


if __name__ == "__main__":
    main()
