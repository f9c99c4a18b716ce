#!/usr/bin/env bash
# setup_venv.sh - a Python virtual environment in the repo with the packages of
# one requirements file, reinstalled only when that file changes:
#
#   bash scripts/setup_venv.sh VENV_DIR REQUIREMENTS_FILE
#
# e.g. `bash scripts/setup_venv.sh .venv-serve tests/serve/requirements.txt`
# (scripts/test.sh does this for the server test). Paths are relative to the
# repo root; the venv directory must be gitignored. pip (PyPI) is the only
# network access. Safe to run any number of times; non-interactive.
#   PYTHON=/path/to/python3   interpreter that creates the venv (default: python3)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
[ $# = 2 ] || { sed -n '2,11s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" >&2; exit 2; }
venv=$root/$1
requirements=$root/$2
python=${PYTHON:-python3}
name=$1

say() { printf 'setup_venv: %s\n' "$*"; }
die() { printf 'setup_venv: error: %s\n' "$*" >&2; exit 1; }

[ -f "$requirements" ] || die "no $2"
if ! "$venv/bin/python" -c 'import sys' >/dev/null 2>&1 || [ ! -x "$venv/bin/pip" ]; then
    command -v "$python" >/dev/null 2>&1 || die "no '$python' to create $name with"
    say "creating $name with $("$python" --version 2>&1)"
    rm -rf "$venv"
    "$python" -m venv "$venv" || die "'$python -m venv' failed (is python3-venv installed?)"
fi

stamp=$venv/.gqa-requirements.sha256
want=$(sha256sum "$requirements" | cut -d' ' -f1)
have=$(cat "$stamp" 2>/dev/null || true)
if [ "$want" != "$have" ]; then
    say "pip install -r $2 into $name"
    "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$requirements" ||
        die "pip install into $name failed"
    printf '%s\n' "$want" >"$stamp"
fi
say "$name ok"
