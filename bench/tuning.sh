#!/bin/bash
# bench/tuning.sh - the measured effect of each per-core tuning key.
#
# For each KEY=V1,V2,... one toasterd per value, all else at defaults, runs
# the same toaster-bench workload (CONNECTIONS sessions, COUNT 4 KiB
# messages to 100 users, fsync on); the values take turns (V1 V2 V3 V1 V2
# V3 ...) for ROUNDS rounds so a slow minute of the shared disk hits them
# all alike. Reports per value the median msgs/s, p50 and p99 latency, the
# CPU seconds toasterd used per 1,000 messages and its peak RSS. Each round
# gets a fresh data_dir; finished ones are moved aside, not deleted, until
# the end (ext4 without a journal skips recently freed inodes for a minute,
# which would slow whoever runs next).
#
# Usage: bench/tuning.sh [-o FILE] [KEY=V1,V2,... ...]
#        (no KEY: every tuning key in turn; env: CONNECTIONS COUNT ROUNDS,
#        EXTRA: more configuration lines for every run, ';'-separated,
#        e.g. EXTRA="clamav = no; spam = no")
set -euo pipefail
cd "$(dirname "$0")/.."
CONNECTIONS="${CONNECTIONS:-100}"
COUNT="${COUNT:-20000}"
ROUNDS="${ROUNDS:-3}"
EXTRA="${EXTRA:-}"
IFS=';' read -r -a extra_lines <<< "$EXTRA"
out=""
if [ "${1:-}" = "-o" ]; then out="$2"; shift 2; fi
sweeps=("$@")
if [ ${#sweeps[@]} -eq 0 ]; then
    sweeps=(
        "reactor_threads=1,2"
        "reactor_cpus=,0-1"
        "worker_threads=1,2,4"
        "ring_entries=256,1024,4096"
        "sqpoll=no,yes"
        "sqpoll_idle=5ms,50ms,500ms"
        "recv_buffer_bytes=4k,16k,64k"
        "recv_buffer_count=256,1024,4096"
        "commit_window=0ms,2ms,10ms"
        "reactor_io_workers=8,32,128"
        "spool_unnamed=no,yes"
    )
fi

work=$(mktemp -d /tmp/toaster-tuning.XXXXXX)
pid=""
trap '[ -n "$pid" ] && kill $pid 2>/dev/null; rm -rf "$work"' EXIT
. bench/toasterd_lib.sh
write_users "$work/users"
clock_ticks=$(getconf CLK_TCK)

# run KEY VALUE: one round; prints "msgs_per_s p50_ms p99_ms cpu_s_per_1000 rss_mib".
run() {
    local key=$1 value=$2 smtp_port data cpu0 cpu1 rss
    data="$work/data.$RANDOM$RANDOM"
    mkdir -p "$data"
    smtp_port=$(free_port)
    # sqpoll_idle only matters with the poller on.
    local poller="# sqpoll as its default"
    [ "$key" = sqpoll_idle ] && poller="sqpoll = yes"
    write_toasterd_conf "$work/toasterd.conf" "$data" "$smtp_port" \
        "users_file = $work/users" "max_connections_per_ip = $((CONNECTIONS + 100))" \
        "log_level = warning" "$poller" "${extra_lines[@]}" "$key = $value"
    ./build/toasterd -c "$work/toasterd.conf" 2>>"$work/toasterd.log" &
    pid=$!
    wait_smtp "$smtp_port"
    cpu0=$(awk '{print $14 + $15}' "/proc/$pid/stat")
    ./build/toaster-bench smtp --server "127.0.0.1:$smtp_port" --connections "$CONNECTIONS" \
        --count "$COUNT" --size 4k --rcpt 'user%d@example.test' --users 100 \
        --quiet --json "$work/round.json"
    cpu1=$(awk '{print $14 + $15}' "/proc/$pid/stat")
    rss=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
    kill -TERM "$pid"
    wait "$pid"
    pid=""
    mv "$data" "$work/retired.$RANDOM$RANDOM"
    /usr/bin/python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
l = d["latency_us"]
cpu_s = (int(sys.argv[2]) - int(sys.argv[3])) / int(sys.argv[4])
print("%.0f %.1f %.1f %.3f %.0f" % (d["msgs_per_s"], l["p50"] / 1000, l["p99"] / 1000,
      cpu_s / d["messages"] * 1000, int(sys.argv[5]) / 1024))
' "$work/round.json" "$cpu1" "$cpu0" "$clock_ticks" "$rss"
}

{
    echo "### Tuning keys, one at a time: $CONNECTIONS connections, $COUNT messages of 4 KiB, fsync on"
    echo
    echo "- commit $(git rev-parse --short HEAD), $(date -u +%Y-%m-%d), kernel $(uname -r)," \
         "$(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs))"
    echo "- command: \`${EXTRA:+EXTRA=\"$EXTRA\" }ROUNDS=$ROUNDS CONNECTIONS=$CONNECTIONS COUNT=$COUNT bench/tuning.sh${*:+ $*}\`; each round:"
    echo "  \`toaster-bench smtp --connections $CONNECTIONS --count $COUNT --size 4k --users 100\`;"
    echo "  values take turns, medians of $ROUNDS rounds; CPU is toasterd's own (user + system)"
    echo
    echo "| key | value | msgs/s | p50 ms | p99 ms | CPU s / 1000 msgs | peak RSS MiB |"
    echo "| --- | --- | --- | --- | --- | --- | --- |"
    for sweep in "${sweeps[@]}"; do
        key=${sweep%%=*}
        IFS=, read -r -a values <<< "${sweep#*=},"
        results=()
        for round in $(seq 1 "$ROUNDS"); do
            for i in "${!values[@]}"; do
                results[i]+="$(run "$key" "${values[i]}")"$'\n'
            done
        done
        for i in "${!values[@]}"; do
            value=${values[i]}
            # Median per column over the rounds.
            printf '%s' "${results[i]}" | /usr/bin/python3 -c '
import statistics, sys
rows = [list(map(float, l.split())) for l in sys.stdin if l.strip()]
cols = [statistics.median(c) for c in zip(*rows)]
print("| `%s` | %s | %.0f | %.1f | %.1f | %.3f | %.0f |" % (
    sys.argv[1], sys.argv[2] or "(none)", *cols))
' "$key" "$value"
        done
    done
} | tee ${out:+"$out"}
