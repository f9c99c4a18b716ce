#!/usr/bin/env python3
"""check_convert_tokenizer.py TOKENIZER_JSON IDS_FILE

Load a tokenizer.json written by `gqa convert --to hf` with the PyPI
`tokenizers` package and check that it encodes the texts of
tests/test_convert_tokenizer.c to the ids the GGUF tokenizer gave (one line
of space-separated ids per text, in order)."""
import sys

from tokenizers import Tokenizer

TEXTS = [
    "The capital of France is",
    "  leading spaces and trailing   ",
    "Numbers: 2024, 3.14159, 1000000 and 007",
    "Emoji \U0001F600\U0001F389 and \u2713",
    "\u4e2d\u6587\u6d4b\u8bd5 \u65e5\u672c\u8a9e",
    "<|im_start|>user\nHello there!<|im_end|>\n<|im_start|>assistant\n",
    "don't won't it's I'll we've they're",
    "tabs\tand\nnewlines\n\n\nend",
    "caf\u00e9 na\u00efve r\u00e9sum\u00e9 -- ~!@#$%^&*()",
]


def main():
    tok = Tokenizer.from_file(sys.argv[1])
    with open(sys.argv[2]) as f:
        want = [[int(x) for x in line.split()] for line in f]
    assert len(want) == len(TEXTS), f"{len(want)} id lines for {len(TEXTS)} texts"
    bad = 0
    for text, ids in zip(TEXTS, want):
        got = tok.encode(text, add_special_tokens=False).ids
        if got != ids:
            bad += 1
            print(f"MISMATCH {text!r}: tokenizers {got}, gqa {ids}")
        if tok.decode(got, skip_special_tokens=False) != text:
            bad += 1
            print(f"DECODE {text!r}: {tok.decode(got, skip_special_tokens=False)!r}")
    print(f"check_convert_tokenizer: {len(TEXTS) - bad}/{len(TEXTS)} texts agree")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
