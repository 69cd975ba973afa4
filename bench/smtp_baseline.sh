#!/bin/bash
# bench/smtp_baseline.sh - toasterd alone: messages/s and latency for
# CONNECTIONS concurrent clients sending SIZE messages to 100 users with
# fsync on, ROUNDS rounds on a fresh data_dir each, plus the daemon's peak
# RSS (VmHWM) and how many messages shared each commit batch (one
# fdatasync round plus one fsync per distinct new/ directory). Prints a markdown block; -o FILE also writes it there.
# Usage: bench/smtp_baseline.sh [-o FILE]   (env: CONNECTIONS COUNT SIZE ROUNDS)
set -euo pipefail
cd "$(dirname "$0")/.."
CONNECTIONS="${CONNECTIONS:-20}"
COUNT="${COUNT:-20000}"
SIZE="${SIZE:-4k}"
ROUNDS="${ROUNDS:-3}"
out=""
if [ "${1:-}" = "-o" ]; then out="$2"; fi

work=$(mktemp -d /tmp/toaster-bench.XXXXXX)
trap 'kill $pid 2>/dev/null || true; rm -rf "$work"' EXIT
. bench/toasterd_lib.sh

results=()
for round in $(seq 1 "$ROUNDS"); do
    rm -rf "$work/var" && mkdir -p "$work/var"
    write_users "$work/var/users"
    smtp_port=$(free_port)
    write_toasterd_conf "$work/toasterd.conf" "$work/var" "$smtp_port" \
        "max_connections_per_ip = $((CONNECTIONS + 100))"
    ./build/toasterd -c "$work/toasterd.conf" 2>"$work/toasterd.log" &
    pid=$!
    wait_smtp "$smtp_port"
    ./build/toaster-bench smtp --server "127.0.0.1:$smtp_port" --connections "$CONNECTIONS" \
        --count "$COUNT" --size "$SIZE" --rcpt 'user%d@example.test' --users 100 \
        --quiet --json "$work/round$round.json"
    rss_kb=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
    kill -TERM "$pid"
    wait "$pid"
    batches=$(sed -n 's/.*delivery: \([0-9]*\) messages in \([0-9]*\) batches.*/\2/p' "$work/toasterd.log")
    delivered=$(find "$work/var/mail" -type f -path '*/new/*' | wc -l)
    [ "$delivered" -eq "$COUNT" ] || { echo "delivered $delivered of $COUNT" >&2; exit 1; }
    results+=("$(/usr/bin/python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
l = d["latency_us"]
print("%.0f %.1f %.1f %s %.1f" % (d["msgs_per_s"], l["p50"] / 1000, l["p99"] / 1000,
                                  sys.argv[2], d["messages"] / max(1, int(sys.argv[3]))))
' "$work/round$round.json" "$rss_kb" "$batches")")
done

{
    echo "### toasterd, $CONNECTIONS connections, $SIZE messages, 100 users, fsync on"
    echo
    echo "- commit $(git rev-parse --short HEAD), $(date -u +%Y-%m-%d), kernel $(uname -r)"
    echo "- CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores"
    echo "- command: \`CONNECTIONS=$CONNECTIONS COUNT=$COUNT SIZE=$SIZE ROUNDS=$ROUNDS bench/smtp_baseline.sh\`"
    echo "  (each round: \`toaster-bench smtp --connections $CONNECTIONS --count $COUNT --size $SIZE --rcpt 'user%d@example.test' --users 100\`)"
    echo
    echo "| round | msgs/s | p50 ms | p99 ms | toasterd peak RSS | messages per commit batch |"
    echo "| --- | --- | --- | --- | --- | --- |"
    i=1
    for r in "${results[@]}"; do
        read -r mps p50 p99 rss per_batch <<<"$r"
        echo "| $i | $mps | $p50 | $p99 | $((rss / 1024)) MiB | $per_batch |"
        i=$((i + 1))
    done
    median=$(printf '%s\n' "${results[@]}" | sort -n | awk '{a[NR]=$0} END {print a[int((NR+1)/2)]}')
    read -r mps p50 p99 rss per_batch <<<"$median"
    echo "| **median** | **$mps** | $p50 | $p99 | $((rss / 1024)) MiB | $per_batch |"
} | tee ${out:+"$out"}
