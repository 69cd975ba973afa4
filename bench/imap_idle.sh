#!/bin/bash
# bench/imap_idle.sh - what a selected, IDLE IMAP session costs toasterd,
# and how fast new mail reaches it: COUNT sessions (users in turn) LOGIN,
# SELECT INBOX and IDLE through `toaster-bench imap-idle`; then one message
# per user is delivered over SMTP and every session's "* n EXISTS" is timed
# from the SMTP 250. toasterd's VmRSS is sampled from outside: the figure
# per session is (RSS with every session idling - RSS before) / COUNT, so
# it includes each session's slot, its view of the shared index, and its
# share of the indexes (one per user). Kernel socket buffers are not in
# RSS; /proc/net/sockstat's TCP pages are shown beside it.
# Above PER_PROCESS sessions the clients are split over several
# toaster-bench processes (each its own source address 127.0.0.k and its
# own share of the users, so its deliveries reach only its sessions), since
# one process may not hold more sockets than the open-file limit; toasterd
# holds its connections as io_uring direct descriptors (direct_sockets), a
# ring's table bounded by that limit, so it gets enough reactors
# (REACTORS, default: one more than the client processes, at least 2).
# Usage: bench/imap_idle.sh [-o FILE]
# Env: COUNT (10000) USERS (1000) PER_PROCESS (16000) REACTORS TOASTERD BENCH HOLD (seconds
#      the sessions idle before the deliveries; default 20, 120 when split)
set -euo pipefail
cd "$(dirname "$0")/.."
COUNT="${COUNT:-10000}"
USERS="${USERS:-1000}"
PER_PROCESS="${PER_PROCESS:-16000}"
out=""
if [ "${1:-}" = "-o" ]; then out="$2"; fi

procs=$(((COUNT + PER_PROCESS - 1) / PER_PROCESS))
[ "$procs" -le "$USERS" ] || { echo "need at least $procs users" >&2; exit 1; }
REACTORS="${REACTORS:-$((procs > 1 ? procs + 1 : 2))}"
HOLD="${HOLD:-$((procs > 1 ? 120 : 20))}"

work=$(mktemp -d /tmp/toaster-imap-idle.XXXXXX)
pid=""
sampler=""
bench_pids=()
cleanup() {
    [ -n "$sampler" ] && kill "$sampler" 2>/dev/null
    for b in "${bench_pids[@]}"; do kill "$b" 2>/dev/null; done
    [ -n "$pid" ] && kill "$pid" 2>/dev/null
    [ -n "${KEEP:-}" ] || rm -rf "$work"
}
trap cleanup EXIT
. bench/toasterd_lib.sh

ulimit -n "$(ulimit -Hn)"
per=$(((COUNT + procs - 1) / procs))
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt $((per + 100)) ]; then
    echo "open file limit $(ulimit -n) is below $((per + 100)): lower PER_PROCESS" >&2
    exit 1
fi
mkdir -p "$work/var"
for i in $(seq 1 "$USERS"); do echo "user$i@example.test:{PLAIN}x"; done >"$work/var/users"
smtp_port=$(free_port)
imap_port=$(free_port)
# Both are per reactor (and per client address); 65536 is the most either takes.
limit=$((COUNT + 100 > 65536 ? 65536 : COUNT + 100))
write_toasterd_conf "$work/toasterd.conf" "$work/var" "$smtp_port" \
    "imap_listen = 127.0.0.1:$imap_port" \
    "max_connections = $limit" "max_connections_per_ip = $limit" \
    "reactor_threads = $REACTORS" "log_level = warning"
# write_toasterd_conf put a free port on imap_listen first; the later line wins.
grep -v "^imap_listen = 127.0.0.1:[0-9]*$" "$work/toasterd.conf" >"$work/c" || true
echo "imap_listen = 127.0.0.1:$imap_port" >>"$work/c"
mv "$work/c" "$work/toasterd.conf"
"${TOASTERD:-./build/toasterd}" -c "$work/toasterd.conf" 2>"$work/toasterd.log" &
pid=$!
wait_smtp "$smtp_port"
sleep 0.5
rss() { awk '/^VmRSS:/ {print $2}' "/proc/$pid/status"; }
tcp_pages() { awk '/^TCP:/ {for (i = 1; i <= NF; i++) if ($i == "mem") print $(i + 1)}' /proc/net/sockstat; }
rss_before=$(rss)
tcp_before=$(tcp_pages)
# Peak RSS while the run goes on (the sessions close at its end).
(peak=0; while kill -0 "$pid" 2>/dev/null; do r=$(rss); [ "$r" -gt "$peak" ] && { peak=$r; echo "$peak" >"$work/peak"; echo "$(tcp_pages)" >"$work/tcp"; }; sleep 0.2; done) &
sampler=$!
# Client k: its share of the sessions, its own slice of the users, source
# address 127.0.0.(k+1).
users_per=$((USERS / procs))
for k in $(seq 0 $((procs - 1))); do
    first=$((k * users_per + 1))
    last=$((k == procs - 1 ? USERS : (k + 1) * users_per))
    sed -n "${first},${last}p" "$work/var/users" >"$work/users.$k"
    n=$((k == procs - 1 ? COUNT - k * per : per))
    "${BENCH:-./build/toaster-bench}" imap-idle --port "$imap_port" --smtp "127.0.0.1:$smtp_port" \
        --source "127.0.0.$((k + 1))" \
        --users "$work/users.$k" --user-count $((last - first + 1)) --connections "$n" \
        --deliver-count $((last - first + 1)) --push-timeout 30 --threads 2 --quiet \
        --json "$work/idle.$k.json" --hold "$HOLD" --hold-file "$work/holding.$k" &
    bench_pids+=($!)
done
all_holding() {
    local k
    for k in $(seq 0 $((procs - 1))); do [ -e "$work/holding.$k" ] || return 1; done
}
any_running() {
    local b
    for b in "${bench_pids[@]}"; do kill -0 "$b" 2>/dev/null && return 0; done
    return 1
}
# Steady state: every session idles, the login storm's transient memory
# has had time to go back (jemalloc returns dirty pages after ~10 s).
while ! all_holding && any_running; do sleep 0.2; done
sleep 15
rss_idle=$(rss)
tcp_idle=$(tcp_pages)
bench_status=0
for b in "${bench_pids[@]}"; do wait "$b" || bench_status=1; done
bench_pids=()
kill "$sampler" 2>/dev/null || true
sampler=""
rss_peak=$(cat "$work/peak")
/usr/bin/python3 - "$COUNT" "$USERS" "$rss_before" "$rss_peak" "$tcp_before" "$tcp_idle" \
    "$rss_idle" "$procs" "$REACTORS" "$work"/idle.*.json <<'EOF' | tee "$work/result.md"
import json, sys
count, users, before, peak, tcp0, tcp1, idle, procs, reactors = (int(a) for a in sys.argv[1:10])
runs = [json.load(open(path)) for path in sys.argv[10:]]
heard = sum(r.get("heard", 0) for r in runs)
expected = sum(r.get("expected", 0) for r in runs)
never = sum(r.get("never_heard", 0) for r in runs)
push = [r.get("push_us", {}) for r in runs]


def worst(key):
    return max(p.get(key, 0) for p in push) / 1000


print("### %d IMAP sessions in IDLE on %d mailboxes (LOGIN, SELECT INBOX, IDLE)\n" % (count, users))
print("toasterd with %d reactors; the clients in %d toaster-bench process(es)\n" % (reactors, procs))
print("| toasterd VmRSS before | all idling (steady) | per session | peak during the logins | kernel TCP memory per session |")
print("| --- | --- | --- | --- | --- |")
print("| %.1f MiB | %.1f MiB | %.2f KiB | %.1f MiB | %.2f KiB |" % (before / 1024, idle / 1024,
      (idle - before) / count, peak / 1024, (tcp1 - tcp0) * 4 / count))
print()
print("| sessions told | never told | push p50 | p99 | max |")
print("| --- | --- | --- | --- | --- |")
print("| %d of %d | %d | %.2f ms | %.2f ms | %.2f ms |" % (heard, expected, never, worst("p50"),
      worst("p99"), worst("max")))
print()
print("(push: from the SMTP 250 of the message for the session's user to its \"* n EXISTS\";"
      " with several client processes each percentile is the worst process's)")
print()
for r in runs:
    print("Raw toaster-bench summary: %s" % json.dumps(
        {k: v for k, v in r.items() if not isinstance(v, (list, dict)) or k == "error_kinds"}))
EOF
if [ -n "$out" ]; then cp "$work/result.md" "$out"; fi
exit "$bench_status"
