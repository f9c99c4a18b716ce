#!/usr/bin/env bash
# serving.sh - the measurement of docs/serving.md: `gqa serve` with one fixed KV
# budget, SmolLM2-135M as shipped (G = 3 KV heads) against its MHA twin (G = 9,
# `gqa convert --method repeat`, the same function), under a closed-loop load
# of 1..32 clients (bench/serve_load.py, the official `openai` client).
#
#   bash bench/serving.sh
#
# Builds gqa, fetches the model (scripts/fetch_model.sh), sets up .venv-bench
# (scripts/setup_venv.sh), converts, starts one server per model on a free
# port of 127.0.0.1, runs the load at each client count against one, then the
# other, and stops both with SIGTERM (each must exit 0). Writes
# bench/out/serving/ (gitignored): serving.csv (one row per model and client
# count), outputs-{gqa,mha}.json (each prompt's completions: one per server,
# whatever the batching), serving.md (the tables), serving.png and the server
# logs; copies the plot to docs/serving.png. About 10 minutes.
#
# The server gets ONE forward-pass thread by default: on a 2-core machine the
# other core runs the HTTP threads and the load generator, which would
# otherwise keep descheduling one of two OpenMP threads (each step then waits
# at a barrier for it); run it on an otherwise idle machine all the same.
#
# Environment (defaults in brackets):
#   KV_BUDGET [64MiB]  KV_TYPE [f16]  CLIENTS [1,2,4,8,16,32]  MAX_TOKENS [128]
#   DURATION [30] (measured seconds per client count)  WARMUP [5]
#   THREADS [1] (forward-pass threads of the server)  GQA_BUILD_DIR [build]
#   MAX_QUEUE [64] (server queue; above the largest client count, so no 429)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
out=$root/bench/out/serving
build=${GQA_BUILD_DIR:-build}
kv_budget=${KV_BUDGET:-64MiB}
kv_type=${KV_TYPE:-f16}
clients=${CLIENTS:-1,2,4,8,16,32}
max_tokens=${MAX_TOKENS:-128}
duration=${DURATION:-30}
warmup=${WARMUP:-5}
threads=${THREADS:-1}
max_queue=${MAX_QUEUE:-64}

say() { printf 'serving.sh: %s\n' "$*" >&2; }
die() { printf 'serving.sh: error: %s\n' "$*" >&2; exit 1; }

bash "$root/scripts/setup_deps.sh" >&2
bash "$root/scripts/setup_venv.sh" .venv-bench bench/requirements-serving.txt >&2
py=$root/.venv-bench/bin/python
model=$(bash "$root/scripts/fetch_model.sh" | tail -n 1)
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DGQA_SANITIZE=OFF >/dev/null
cmake --build "$build" -j "$(nproc)" --target gqa >/dev/null
gqa=$(cd "$build" && pwd)/gqa
mkdir -p "$out"
rm -f "$out/serving.csv" "$out/outputs-gqa.json" "$out/outputs-mha.json"

mha=$out/$(basename "${model%.gguf}")-mha.gguf
"$gqa" convert "$model" "$mha" --kv-heads 9 --method repeat --quiet

declare -A server_pid url
stop_server() { # LABEL
    local pid=${server_pid[$1]:-} rc=0
    [ -n "$pid" ] || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 100); do # 10 s for a graceful exit, then SIGKILL
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        say "$1: server did not stop within 10 s of SIGTERM; killing it"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || rc=$?
    [ "$rc" = 0 ] || say "$1: server exited with status $rc"
    server_pid[$1]=
    return "$rc"
}
trap 'stop_server gqa || true; stop_server mha || true' EXIT

serve() { # LABEL MODEL-FILE: start a server on a free loopback port, set url[LABEL]
    local log=$out/server-$1.log line pid
    "$gqa" serve -m "$2" --host 127.0.0.1 --port 0 --kv-budget "$kv_budget" \
        --kv-type "$kv_type" --threads "$threads" --max-queue "$max_queue" >"$log" 2>&1 &
    pid=$!
    server_pid[$1]=$pid
    for _ in $(seq 300); do # up to 30 s to load and listen
        kill -0 "$pid" 2>/dev/null || die "gqa serve exited at start; see $log"
        line=$(grep -m 1 'listening on http://' "$log" || true)
        if [ -n "$line" ]; then
            url[$1]=$(sed -E 's#.*listening on (http://[0-9.]+:[0-9]+).*#\1#' <<<"$line")
            say "$1: $line"
            return 0
        fi
        sleep 0.1
    done
    die "gqa serve did not say where it listens within 30 s; see $log"
}

load() { # LABEL CLIENTS
    "$py" "$root/bench/serve_load.py" --url "${url[$1]}" --label "$1" --clients "$2" \
        --server-pid "${server_pid[$1]}" \
        --duration "$duration" --warmup "$warmup" --max-tokens "$max_tokens" \
        --csv "$out/serving.csv" --outputs "$out/outputs-$1.json"
}

cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
started=$(date -u '+%Y-%m-%d %H:%M UTC')
say "start $started on $(nproc) x $cpu; load $(cut -d' ' -f1-3 /proc/loadavg)"
status=0
# Both servers stay up (an idle one sleeps) and the load alternates between
# them at each client count, so that whatever else the machine does in the
# meantime weighs on both about equally.
serve gqa "$model"
serve mha "$mha"
for c in ${clients//,/ }; do
    load gqa "$c" || status=1
    load mha "$c" || status=1
done
stop_server gqa || status=1
stop_server mha || status=1
finished=$(date -u '+%H:%M UTC')
say "done $finished; load $(cut -d' ' -f1-3 /proc/loadavg)"

# Greedy decoding: each prompt must have had one completion on each server,
# whatever the batching did (a failure). The two models compute the same
# function but not in the same floating-point order (grouped vs per-head
# attention), so a near-tie may tip a greedy choice: reported, with where.
same=$("$py" - "$out/outputs-gqa.json" "$out/outputs-mha.json" <<'EOF'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
common = sorted(set(a) & set(b), key=int)
multi = [k for k in common if len(a[k]["sha256"]) != 1 or len(b[k]["sha256"]) != 1]
diff = [k for k in common if a[k]["sha256"] != b[k]["sha256"]]
where = []
for k in diff:
    x, y = a[k]["text"], b[k]["text"]
    i = next((j for j in range(min(len(x), len(y))) if x[j] != y[j]), min(len(x), len(y)))
    where.append(f"prompt {k} from character {i}: {x[max(0, i - 20):i + 20]!r} vs "
                 f"{y[max(0, i - 20):i + 20]!r}")
print(f"{len(common)} prompts on both servers: {len(common) - len(diff)} same greedy completion "
      f"on GQA and MHA, {len(diff)} differ{' (' + '; '.join(where) + ')' if where else ''}; "
      f"{len(multi)} prompts had more than one completion on one server")
sys.exit(1 if multi or not common else 0)
EOF
) || status=1
say "$same"
"$py" "$root/bench/plot_serving.py" "$out/serving.csv" --png "$out/serving.png" \
    --table "$out/serving.md" --title "gqa serve, SmolLM2-135M Q4_1: GQA (G=3) vs MHA twin (G=9), \
KV budget $kv_budget $kv_type, max_tokens $max_tokens, server threads $threads; $started"
printf '\n%s - %s, %s x %s; %s\n' "$started" "$finished" "$(nproc)" "$cpu" "$same" \
    >>"$out/serving.md"
cp "$out/serving.png" "$root/docs/serving.png"
exit "$status"
