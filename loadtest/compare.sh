#!/usr/bin/env bash
# Runs the benchmark scenarios of docs/benchmarks.md against Parley and the
# Node `ws` peer, one after the other in the same run, and leaves one JSON
# summary per scenario and server in target/bench/. Then
# `parley-bench-report target/bench` prints the tables and draws the plot.
#
#   loadtest/compare.sh              # every scenario
#   loadtest/compare.sh rooms-1000   # the scenarios whose name starts so
#   SERVERS=node loadtest/compare.sh rooms-5000   # one server only
#   loadtest/compare.sh cross                       # one room over one process, then over two on Redis
#   PARLEY_BIN=../old/target/release/parley BENCH_OUT=target/bench-old SERVERS=parley loadtest/compare.sh rooms-1000
#                                    # another build of Parley (before a change), its summaries kept apart
#
# Needs release builds (cargo build --release -p parley -p parley-loadtest)
# and, for the peer, Node.js 20 with npm; the cross-process rows need a Redis
# (REDIS_URL, default redis://127.0.0.1:6379), whose CPU is counted with the
# two processes'. Loopback only; nothing else runs.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${BENCH_OUT:-target/bench}
parley_bin=${PARLEY_BIN:-target/release/parley}
mkdir -p "$out"
peer_src=${NODE_PEER:-../shared/peers/node_ws}
only=${1:-}
port=8123
# Every limit stays on, set above the load (the join storm opens 5 000+
# WebSockets from 127.0.0.1 in seconds), so the runs include what the
# accounting costs.
above_load="PARLEY_RATE=1000000 PARLEY_BURST=1000000 PARLEY_MAX_CONNECTIONS_PER_ADDRESS=50000 PARLEY_CONNECTIONS_PER_SECOND_PER_ADDRESS=1000000 PARLEY_CONNECTION_BURST_PER_ADDRESS=1000000 PARLEY_ADDRESS_RATE=10000000 PARLEY_ADDRESS_BURST=10000000 PARLEY_USER_RATE=10000000 PARLEY_USER_BURST=10000000 PARLEY_JOIN_RATE=1000000 PARLEY_JOIN_BURST=1000000"

start_parley() {
    rm -rf "$out/parley-data"
    env $above_load PARLEY_DATA_DIR="$out/parley-data" PORT=$port RUST_LOG=warn \
        "$parley_bin" >"$out/server.log" 2>&1 &
    echo $!
}

# Two processes on one Redis and one data directory (so one database and one
# secret: the second starts once the first has written it). Prints both pids
# and the Redis's, comma-separated, for --server-pid.
start_parley2() {
    rm -rf "$out/parley-data"
    local redis=${REDIS_URL:-redis://127.0.0.1:6379} pids="" at
    for at in $port $((port + 1)); do
        env $above_load REDIS_URL=$redis PARLEY_DATA_DIR="$out/parley-data" PORT=$at \
            RUST_LOG=warn "$parley_bin" >"$out/server-$at.log" 2>&1 &
        pids="$pids$!,"
        for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$at/" && break; sleep 0.1; done
    done
    local host=${redis#redis://} && host=${host%%/*}
    echo "$pids$(redis-cli -h "${host%:*}" -p "${host##*:}" info server | tr -d '\r' | sed -n 's/^process_id://p')"
}

start_node() {
    if [ ! -d "$out/node_ws/node_modules/ws" ]; then
        rm -rf "$out/node_ws" && cp -r "$peer_src" "$out/node_ws"
        (cd "$out/node_ws" && npm install --no-audit --no-fund >/dev/null)
    fi
    (cd "$out/node_ws" && exec node server.js $port) >"$out/server.log" 2>&1 &
    echo $!
}

# scenario NAME SERVER USERS ROOMS MESSAGES WINDOW RUN_TIME [goose args...]
scenario() {
    local name=$1 server=$2 users=$3 rooms=$4 messages=$5 window=$6 run_time=$7
    shift 7
    case "$name" in "$only"*) ;; *) return 0 ;; esac
    local pid
    pid=$(start_"$server")
    for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.1; done
    echo "== $name on $server (users $users, rooms $rooms, messages $messages, window $window)" >&2
    local hosts=""
    [ "$server" = parley2 ] && hosts="http://127.0.0.1:$port,http://127.0.0.1:$((port + 1))"
    PARLEY_LT_HOSTS=$hosts PARLEY_LT_PUBLISHERS=${PUBLISHERS:-1} PARLEY_LT_ROOMS=$rooms PARLEY_LT_MESSAGES=$messages PARLEY_LT_WINDOW=$window PARLEY_LT_PACE=${PACE:-echo} \
        PARLEY_LT_JOIN_SECONDS=${JOIN_SECONDS:-60} \
        target/release/parley-loadtest --host "http://127.0.0.1:$port" --users "$users" \
        --run-time "$run_time" --server-pid "$pid" --summary "$out/$name-$server.json" --quiet \
        --report-file "$out/$name-$server.html" "$@" >"$out/$name-$server.log" 2>&1 || true
    # Parley's processes only (the last of parley2's pids is the shared Redis).
    local mine=${pid//,/ }
    [ "$server" = parley2 ] && mine=${mine% *}
    kill $mine 2>/dev/null; wait $mine 2>/dev/null || true
    grep -hE '"(cpu_us_per_delivery|p99_ms|idle_kib_per_connection|join_seconds|lost|cpu_us_per_request|me_p99_us)"' \
        "$out/$name-$server.json" | tr -d ' \n' >&2 || true
    echo >&2
}

for server in ${SERVERS:-parley node}; do
    slow=$([ $server = node ] && echo 3 || echo 1)
    scenario rooms-100x2000 $server 100 1 2000 10 $((20 * slow))s --scenarios rooms --increase-rate 1000
    scenario rooms-1000x500 $server 1000 1 500 10 $((20 * slow))s --scenarios rooms --increase-rate 1000
    scenario rooms-1000x500-w1 $server 1000 1 500 1 $((30 * slow))s --scenarios rooms --increase-rate 1000
    PACE=room scenario rooms-1000x500-room $server 1000 1 500 10 $((20 * slow))s --scenarios rooms --increase-rate 1000
    JOIN_SECONDS=300 scenario rooms-5000x100 $server 5000 1 100 10 $([ $server = node ] && echo 420 || echo 40)s \
        --scenarios rooms --increase-rate 5000
    scenario idle-10000 $server 10000 100 0 10 $((25 * (slow > 1 ? 2 : 1)))s --scenarios rooms --increase-rate 2000
done
# One room, members split over two processes on Redis, a publisher on each;
# beside the same room in one process.
for server in parley parley2; do
    PUBLISHERS=2 scenario cross-1000x500 $server 1000 1 500 10 30s --scenarios rooms --increase-rate 1000
done
# HTTP: Parley only (the peer speaks no HTTP API).
scenario http-me parley 20 1 0 1 20s --scenarios me --increase-rate 20
scenario http-me-logins parley 25 1 0 1 20s --scenarios me,logins --increase-rate 25
