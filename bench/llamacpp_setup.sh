#!/usr/bin/env bash
# llamacpp_setup.sh - build llama.cpp (via the PyPI llama-cpp-python sdist) into
# its own venv, .venv-llamacpp/ in the repo root, for the side-by-side
# comparison in `bench/llamacpp_bench.py`. Never part of gqa's dependencies.
#
# llama-cpp-python is pinned (LLAMA_CPP_PYTHON_VERSION below); its sdist
# vendors a llama.cpp checkout and builds it with CMake through
# scikit-build-core, which passes $CMAKE_ARGS to CMake. We build from source
# (--no-binary) for this CPU:
#   -DGGML_NATIVE=ON    ggml's -march=native (the default unless cross-compiling
#                       or SOURCE_DATE_EPOCH is set; forced here so it is explicit)
#   -DLLAVA_BUILD=OFF   skip the multimodal (mtmd) library; the bench only needs
#                       libllama/libggml, and mtmd_cpp is loaded lazily
#   -DCMAKE_BUILD_TYPE=Release
# Everything else stays at llama.cpp's defaults (OpenMP threads, f16 KV cache,
# the CPU backend's "extra" buffer types such as AMX when the CPU has it).
# pip's wheel cache is bypassed (--no-cache-dir): it is keyed by the sdist,
# not by CMAKE_ARGS, so a cached wheel could carry other build flags.
#
# Debian packages: build-essential and cmake, installed with apt-get only when
# dpkg says they are missing (via sudo only when not already root), like
# scripts/setup_deps.sh. pip (PyPI) is the only other network access.
#
# Idempotent: when the venv already holds the pinned version built with the
# same CMAKE_ARGS (a stamp file records both), nothing is done. The build is
# long (~3 min of compiling on 2 cores); its output goes to a log file and the terminal
# shows one progress line.
#
# Environment:
#   PYTHON=/path/to/python3    interpreter that creates the venv (default: python3)
#   GQA_SKIP_APT=1             never call apt-get (fail if a package is missing)
#   GQA_LLAMACPP_LOG=FILE      build log (default: ${TMPDIR:-/tmp}/gqa-llamacpp-build.log)
#   GQA_LLAMACPP_JOBS=N        parallel compile jobs (default: nproc)
#   GQA_LLAMACPP_FORCE=1       rebuild even when the stamp matches
set -euo pipefail

LLAMA_CPP_PYTHON_VERSION=0.3.36
CMAKE_ARGS_PINNED="-DGGML_NATIVE=ON -DLLAVA_BUILD=OFF -DCMAKE_BUILD_TYPE=Release"

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

say() { printf 'llamacpp_setup: %s\n' "$*"; }
die() { printf 'llamacpp_setup: error: %s\n' "$*" >&2; exit 1; }

venv=$root/.venv-llamacpp
stamp=$venv/.gqa-llamacpp-stamp
want_stamp="llama-cpp-python==$LLAMA_CPP_PYTHON_VERSION CMAKE_ARGS=$CMAKE_ARGS_PINNED"
log=${GQA_LLAMACPP_LOG:-${TMPDIR:-/tmp}/gqa-llamacpp-build.log}
jobs=${GQA_LLAMACPP_JOBS:-$(nproc 2>/dev/null || echo 2)}

installed_version() {
    "$venv/bin/python" - <<'EOF' 2>/dev/null
import importlib.metadata as m
print(m.version("llama_cpp_python"))
EOF
}

# ------------------------------------------------------------- already done? --
if [ "${GQA_LLAMACPP_FORCE:-0}" != 1 ] && [ -x "$venv/bin/python" ] \
    && [ "$(cat "$stamp" 2>/dev/null || true)" = "$want_stamp" ] \
    && [ "$(installed_version || true)" = "$LLAMA_CPP_PYTHON_VERSION" ] \
    && "$venv/bin/python" -c 'import llama_cpp' >/dev/null 2>&1; then
    say "llama-cpp-python $LLAMA_CPP_PYTHON_VERSION already installed in .venv-llamacpp"
    exit 0
fi

# ------------------------------------------------------------ Debian packages --
packages=(build-essential cmake)

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
command -v cmake >/dev/null 2>&1 || die "cmake not found"
command -v c++ >/dev/null 2>&1 || die "no C++ compiler (c++) found"

# ----------------------------------------------------------------------- venv --
python=${PYTHON:-python3}
if ! "$venv/bin/python" -c 'import sys' >/dev/null 2>&1 || [ ! -x "$venv/bin/pip" ]; then
    command -v "$python" >/dev/null 2>&1 || die "no '$python' to create .venv-llamacpp with"
    say "creating .venv-llamacpp with $("$python" --version 2>&1)"
    rm -rf "$venv"
    if ! "$python" -m venv "$venv" 2>/dev/null; then
        # Debian's python3 needs python3-venv for ensurepip.
        rm -rf "$venv"
        if command -v dpkg >/dev/null 2>&1 && ! installed python3-venv; then
            apt_install python3-venv
        fi
        "$python" -m venv "$venv" || die "'$python -m venv' failed"
    fi
fi
rm -f "$stamp"

# ---------------------------------------------------------------------- build --
mkdir -p "$(dirname "$log")"
: >"$log"
{
    echo "# $(date -u +%Y-%m-%dT%H:%M:%SZ) llama-cpp-python==$LLAMA_CPP_PYTHON_VERSION"
    echo "# CMAKE_ARGS=$CMAKE_ARGS_PINNED  CMAKE_BUILD_PARALLEL_LEVEL=$jobs"
    echo "# $(c++ --version | head -1); $(cmake --version | head -1)"
} >>"$log"

say "building llama-cpp-python $LLAMA_CPP_PYTHON_VERSION from source ($jobs jobs; log: $log)"
start=$(date +%s)
(
    export CMAKE_ARGS="$CMAKE_ARGS_PINNED"
    export CMAKE_BUILD_PARALLEL_LEVEL="$jobs"
    export FORCE_CMAKE=1
    unset SOURCE_DATE_EPOCH   # would turn GGML_NATIVE's default off
    "$venv/bin/python" -m pip install -v --disable-pip-version-check --no-cache-dir \
        --no-binary llama-cpp-python "llama-cpp-python==$LLAMA_CPP_PYTHON_VERSION"
) >>"$log" 2>&1 &
pid=$!

# One progress line: elapsed time and the latest [n/N] build step in the log.
# On a terminal it is rewritten in place; otherwise printed once per minute.
tty=0
[ -t 1 ] && tty=1
last_print=0
while kill -0 "$pid" 2>/dev/null; do
    sleep 2
    now=$(date +%s)
    step=$(grep -o '^ *\[[0-9]*/[0-9]*\]' "$log" 2>/dev/null | tail -1 | tr -d ' ' || true)
    line=$(printf 'building: %4ds elapsed %s' "$((now - start))" "${step:-(preparing)}")
    if [ "$tty" = 1 ]; then
        printf '\r%s\033[K' "$line"
    elif [ $((now - last_print)) -ge 60 ]; then
        printf '%s\n' "$line"
        last_print=$now
    fi
done
rc=0
wait "$pid" || rc=$?
[ "$tty" = 1 ] && printf '\r\033[K'
elapsed=$(( $(date +%s) - start ))
echo "# build finished rc=$rc after ${elapsed}s" >>"$log"
if [ "$rc" -ne 0 ]; then
    tail -n 30 "$log" >&2
    die "pip install failed (rc=$rc) after ${elapsed}s; full log: $log"
fi

got=$(installed_version || true)
[ "$got" = "$LLAMA_CPP_PYTHON_VERSION" ] \
    || die "installed version is '$got', expected $LLAMA_CPP_PYTHON_VERSION"
"$venv/bin/python" -c 'import llama_cpp' || die "'import llama_cpp' fails after the build"
printf '%s\n' "$want_stamp" >"$stamp"
say "llama-cpp-python $LLAMA_CPP_PYTHON_VERSION built in ${elapsed}s"
say "ok"
