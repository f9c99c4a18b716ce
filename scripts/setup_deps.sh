#!/usr/bin/env bash
# setup_deps.sh - install what building and testing gqa needs, and nothing twice.
#
# Debian packages: a compiler with OpenMP (gcc's libgomp), cmake, pkg-config,
# cJSON (the library reads safetensors/Hugging Face JSON with it; the CLI writes
# reports), PCRE2 (the tokenizer's regexes), libmicrohttpd (the HTTP server of
# `gqa serve`) and python3-venv.
# Each package is checked with dpkg first; apt-get runs (after one
# `apt-get update`) only for what is missing, via sudo only when not already root.
# Python: a virtual environment at .venv with tests/oracle/requirements.txt
# (numpy, gguf, tokenizers, safetensors) in it, reinstalled only when that file
# changes. pip is the only other network access.
#
# Safe to run any number of times; non-interactive. Environment:
#   PYTHON=/path/to/python3   interpreter that creates .venv (default: python3)
#   GQA_SKIP_APT=1            never call apt-get (fail if a package is missing)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

say() { printf 'setup_deps: %s\n' "$*"; }
die() { printf 'setup_deps: error: %s\n' "$*" >&2; exit 1; }

# ------------------------------------------------------------ Debian packages --
packages=(build-essential cmake pkg-config libcjson-dev libpcre2-dev libmicrohttpd-dev python3-venv)

installed() {
    dpkg -s "$1" 2>/dev/null | grep -q '^Status: install ok installed'
}

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        die "need root for '$*'; run as root or install sudo"
    fi
}

apt_updated=0
apt_install() {
    [ "${GQA_SKIP_APT:-0}" = 1 ] && die "missing Debian packages: $* (GQA_SKIP_APT=1)"
    command -v apt-get >/dev/null 2>&1 || die "missing packages $* and no apt-get on this machine"
    export DEBIAN_FRONTEND=noninteractive
    if [ "$apt_updated" = 0 ]; then
        say "apt-get update"
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
        apt_updated=1
    fi
    say "apt-get install $*"
    as_root env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -q --no-install-recommends "$@"
}

if ! command -v dpkg >/dev/null 2>&1; then
    say "no dpkg here (not Debian?); assuming the packages are present: ${packages[*]}"
else
    missing=()
    for p in "${packages[@]}"; do
        installed "$p" || missing+=("$p")
    done
    if [ "${#missing[@]}" -gt 0 ]; then
        apt_install "${missing[@]}"
    fi
fi

# --------------------------------------------------------------------- OpenMP --
# gcc ships OpenMP (libgomp) with build-essential; clang needs libomp-dev.
# Compile and run a tiny program rather than trusting package names.
cc_bin=${CC:-cc}
omp_works() {
    local dir rc
    dir=$(mktemp -d)
    cat >"$dir/omp.c" <<'EOF'
#include <omp.h>
int main(void)
{
    int n = 0;
#pragma omp parallel reduction(+ : n)
    n += 1;
    return n >= 1 && omp_get_max_threads() >= 1 ? 0 : 1;
}
EOF
    rc=0
    "$cc_bin" -fopenmp "$dir/omp.c" -o "$dir/omp" >/dev/null 2>&1 && "$dir/omp" || rc=1
    rm -rf "$dir"
    return "$rc"
}
if ! omp_works; then
    if "$cc_bin" --version 2>/dev/null | grep -qi clang; then
        apt_install libomp-dev
    else
        apt_install libgomp1
    fi
    omp_works || die "'$cc_bin -fopenmp' cannot build an OpenMP program"
fi

# --------------------------------------------------------------- Python venv --
python=${PYTHON:-python3}
venv=$root/.venv
requirements=$root/tests/oracle/requirements.txt

if ! "$venv/bin/python" -c 'import sys' >/dev/null 2>&1 || [ ! -x "$venv/bin/pip" ]; then
    command -v "$python" >/dev/null 2>&1 || die "no '$python' to create .venv with"
    say "creating .venv with $("$python" --version 2>&1)"
    rm -rf "$venv"
    "$python" -m venv "$venv" || die "'$python -m venv' failed (is python3-venv installed?)"
fi

if [ -f "$requirements" ]; then
    stamp=$venv/.gqa-requirements.sha256
    want=$(sha256sum "$requirements" | cut -d' ' -f1)
    have=$(cat "$stamp" 2>/dev/null || true)
    if [ "$want" != "$have" ]; then
        say "pip install -r tests/oracle/requirements.txt"
        "$venv/bin/python" -m pip install -q --disable-pip-version-check \
            -r "$requirements"
        printf '%s\n' "$want" >"$stamp"
    fi
else
    say "no tests/oracle/requirements.txt yet; .venv has no extra packages"
fi

say "ok"
