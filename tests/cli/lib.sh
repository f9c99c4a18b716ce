# lib.sh - what the CLI test scripts share (sourced, not run).
#
#   check NAME EXPR   evaluate EXPR; print "ok NAME" or "FAIL NAME" and count failures
#   require_model M   return if the model file M exists; otherwise exit 77 (skip), or
#                     exit 1 when GQA_REQUIRE_MODEL=1
fails=0
pass() { printf 'ok   %s\n' "$1"; }
fail() { printf 'FAIL %s\n' "$1"; fails=$((fails + 1)); }
check() { if eval "$2"; then pass "$1"; else fail "$1"; fi; }

require_model() {
    [ -f "$1" ] && return 0
    if [ "${GQA_REQUIRE_MODEL:-}" = 1 ]; then
        echo "FAIL: GQA_REQUIRE_MODEL=1 but $1 is absent (run scripts/fetch_model.sh)"
        exit 1
    fi
    echo "SKIP: $1 is absent (run scripts/fetch_model.sh)"
    exit 77
}
