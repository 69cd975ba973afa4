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
# Usage: bench/imap_idle.sh [-o FILE]   (env: COUNT 10000, USERS 1000)
set -euo pipefail
cd "$(dirname "$0")/.."
COUNT="${COUNT:-10000}"
USERS="${USERS:-1000}"
out=""
if [ "${1:-}" = "-o" ]; then out="$2"; fi

work=$(mktemp -d /tmp/toaster-imap-idle.XXXXXX)
pid=""
sampler=""
trap '[ -n "$sampler" ] && kill $sampler 2>/dev/null; [ -n "$pid" ] && kill $pid 2>/dev/null; [ -n "${KEEP:-}" ] || rm -rf "$work"' EXIT
. bench/toasterd_lib.sh

ulimit -n "$(ulimit -Hn)"
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt $((COUNT + 100)) ]; then
    echo "open file limit $(ulimit -n) is below $((COUNT + 100))" >&2
    exit 1
fi
mkdir -p "$work/var"
for i in $(seq 1 "$USERS"); do echo "user$i@example.test:{PLAIN}x"; done >"$work/var/users"
smtp_port=$(free_port)
imap_port=$(free_port)
write_toasterd_conf "$work/toasterd.conf" "$work/var" "$smtp_port" \
    "imap_listen = 127.0.0.1:$imap_port" \
    "max_connections = $((COUNT + 100))" "max_connections_per_ip = $((COUNT + 100))" \
    "log_level = warning"
# write_toasterd_conf put a free port on imap_listen first; the later line wins.
grep -v "^imap_listen = 127.0.0.1:[0-9]*$" "$work/toasterd.conf" >"$work/c" || true
echo "imap_listen = 127.0.0.1:$imap_port" >>"$work/c"
mv "$work/c" "$work/toasterd.conf"
./build/toasterd -c "$work/toasterd.conf" 2>"$work/toasterd.log" &
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
./build/toaster-bench imap-idle --port "$imap_port" --smtp "127.0.0.1:$smtp_port" \
    --users "$work/var/users" --user-count "$USERS" --connections "$COUNT" \
    --deliver-count "$USERS" --push-timeout 30 --threads 2 --quiet --json "$work/idle.json" \
    --hold 20 --hold-file "$work/holding" &
bench_pid=$!
# Steady state: every session idles, the login storm's transient memory
# has had time to go back (jemalloc returns dirty pages after ~10 s).
while [ ! -e "$work/holding" ] && kill -0 "$bench_pid" 2>/dev/null; do sleep 0.2; done
sleep 15
rss_idle=$(rss)
tcp_idle=$(tcp_pages)
wait "$bench_pid"
kill "$sampler" 2>/dev/null || true
sampler=""
rss_peak=$(cat "$work/peak")
tcp_peak=$(cat "$work/tcp")
/usr/bin/python3 - "$COUNT" "$USERS" "$rss_before" "$rss_peak" "$tcp_before" "$tcp_idle" "$work/idle.json" "$rss_idle" <<'EOF' | tee "$work/result.md"
import json, sys
count, users, before, peak, tcp0, tcp1 = (int(a) for a in sys.argv[1:7])
r = json.load(open(sys.argv[7]))
idle = int(sys.argv[8])
def find(d, *names):
    for n in names:
        if isinstance(d, dict) and n in d:
            return d[n]
    return None
push = r.get("push_us", {})
print("### %d IMAP sessions in IDLE on %d mailboxes (LOGIN, SELECT INBOX, IDLE)\n" % (count, users))
print("| toasterd VmRSS before | all idling (steady) | per session | peak during the logins | kernel TCP memory per session |")
print("| --- | --- | --- | --- | --- |")
print("| %.1f MiB | %.1f MiB | %.2f KiB | %.1f MiB | %.2f KiB |" % (before / 1024, idle / 1024,
      (idle - before) / count, peak / 1024, (tcp1 - tcp0) * 4 / count))
print()
print("| sessions told | never told | push p50 | p99 | max |")
print("| --- | --- | --- | --- | --- |")
print("| %d of %d | %d | %.2f ms | %.2f ms | %.2f ms |" % (r.get("heard", 0), r.get("expected", 0),
      r.get("never_heard", 0), push.get("p50", 0) / 1000, push.get("p99", 0) / 1000,
      push.get("max", 0) / 1000))
print()
print("(push: from the SMTP 250 of the message for the session's user to its \"* n EXISTS\")")
print()
print("Raw toaster-bench summary: %s" % json.dumps({k: v for k, v in r.items() if not isinstance(v, (list, dict))}))
EOF
if [ -n "$out" ]; then cp "$work/result.md" "$out"; fi
