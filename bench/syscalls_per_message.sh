#!/bin/bash
# bench/syscalls_per_message.sh - system calls toasterd makes per accepted
# message: runs toasterd under `strace -c -f` (every thread) while
# toaster-bench sends COUNT 4 KiB messages over CONNECTIONS sessions to 100
# users, then divides each call count by COUNT. Work the kernel does for
# io_uring (sends, receives, file writes, fsyncs) is not a system call and
# shows up only as io_uring_enter. strace slows everything down, so the
# batching seen here is less than at full speed: the counts are an upper
# bound. Prints a markdown table; -o FILE also writes it there.
# Usage: bench/syscalls_per_message.sh [-o FILE]   (env: CONNECTIONS COUNT)
set -euo pipefail
cd "$(dirname "$0")/.."
CONNECTIONS="${CONNECTIONS:-100}"
COUNT="${COUNT:-10000}"
out=""
if [ "${1:-}" = "-o" ]; then out="$2"; fi
command -v strace >/dev/null || { echo "strace is not installed" >&2; exit 1; }

work=$(mktemp -d /tmp/toaster-syscalls.XXXXXX)
pid=""
trap '[ -n "$pid" ] && kill $pid 2>/dev/null; rm -rf "$work"' EXIT
. bench/toasterd_lib.sh

mkdir -p "$work/var"
write_users "$work/var/users"
smtp_port=$(free_port)
write_toasterd_conf "$work/toasterd.conf" "$work/var" "$smtp_port" \
    "max_connections_per_ip = $((CONNECTIONS + 100))"
strace -c -f -o "$work/strace.txt" ./build/toasterd -c "$work/toasterd.conf" 2>"$work/toasterd.log" &
pid=$!
wait_smtp "$smtp_port"
./build/toaster-bench smtp --server "127.0.0.1:$smtp_port" --connections "$CONNECTIONS" \
    --count "$COUNT" --size 4k --rcpt 'user%d@example.test' --users 100 --quiet
# Stop toasterd itself (strace's child); strace then writes its table.
kill -TERM "$(pgrep -P "$pid")"
wait "$pid" || true
pid=""
delivered=$(find "$work/var/mail" -type f -path '*/new/*' | wc -l)
[ "$delivered" -eq "$COUNT" ] || { echo "delivered $delivered of $COUNT" >&2; exit 1; }

{
    echo "### System calls per message: $CONNECTIONS connections, $COUNT messages of 4 KiB"
    echo
    echo "- commit $(git rev-parse --short HEAD), $(date -u +%Y-%m-%d), kernel $(uname -r)"
    echo "- command: \`CONNECTIONS=$CONNECTIONS COUNT=$COUNT bench/syscalls_per_message.sh\`"
    echo "  (\`strace -c -f\` on toasterd, all threads, start-up and shutdown included)"
    echo
    echo "| system call | calls | per message |"
    echo "| --- | --- | --- |"
    # strace -c rows: % time, seconds, usecs/call, calls, [errors], name.
    awk -v n="$COUNT" '
        /^-/ || /% time/ || /total$/ { next }
        NF >= 5 { name = $NF; calls = $4; rows[name] = calls; sum += calls }
        END {
            for (name in rows) printf "%d %s\n", rows[name], name
            printf "TOTAL %d\n", sum
        }' "$work/strace.txt" | sort -k1,1nr | awk -v n="$COUNT" '
        $1 == "TOTAL" { total = $2; next }
        $1 / n >= 0.01 { printf "| %s | %d | %.2f |\n", $2, $1, $1 / n }
        END { printf "| **all** | %d | **%.2f** |\n", total, total / n }'
} | tee ${out:+"$out"}
