#!/usr/bin/env bash
# serving_setup.sh - the virtual environment of the serving benchmark:
# .venv-bench/ in the repo root (gitignored) with bench/requirements-serving.txt
# (the `openai` client and matplotlib) in it, reinstalled only when that file
# changes. pip (PyPI) is the only network access; nothing is fetched at run time.
#
# Safe to run any number of times; non-interactive. Environment:
#   PYTHON=/path/to/python3   interpreter that creates the venv (default: python3)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=$root/.venv-bench
requirements=$root/bench/requirements-serving.txt
python=${PYTHON:-python3}

say() { printf 'serving_setup: %s\n' "$*"; }
die() { printf 'serving_setup: error: %s\n' "$*" >&2; exit 1; }

if ! "$venv/bin/python" -c 'import sys' >/dev/null 2>&1 || [ ! -x "$venv/bin/pip" ]; then
    command -v "$python" >/dev/null 2>&1 || die "no '$python' to create .venv-bench with"
    say "creating .venv-bench with $("$python" --version 2>&1)"
    rm -rf "$venv"
    "$python" -m venv "$venv" || die "'$python -m venv' failed (is python3-venv installed?)"
fi

stamp=$venv/.gqa-requirements.sha256
want=$(sha256sum "$requirements" | cut -d' ' -f1)
have=$(cat "$stamp" 2>/dev/null || true)
if [ "$want" != "$have" ]; then
    say "pip install -r bench/requirements-serving.txt"
    "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$requirements" ||
        die "pip install failed"
    printf '%s\n' "$want" >"$stamp"
fi
say "ok"
