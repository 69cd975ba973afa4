#!/bin/bash
# bench/idle_connections.sh - what an idle SMTP connection costs toasterd:
# opens COUNT connections (each reads the banner and says EHLO, then waits,
# as a client between messages does), and reports toasterd's resident memory
# (VmRSS) before and with them, per connection. The kernel's socket buffers
# are not in the process's RSS; /proc/net/sockstat's page count is shown
# beside it for the whole picture.
# Usage: bench/idle_connections.sh [-o FILE]   (env: COUNT, default 10000)
set -euo pipefail
cd "$(dirname "$0")/.."
COUNT="${COUNT:-10000}"
out=""
if [ "${1:-}" = "-o" ]; then out="$2"; fi

work=$(mktemp -d /tmp/toaster-idle.XXXXXX)
pid=""
trap '[ -n "$pid" ] && kill $pid 2>/dev/null; rm -rf "$work"' EXIT
. bench/toasterd_lib.sh

ulimit -n "$(ulimit -Hn)"
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt $((COUNT + 100)) ]; then
    echo "open file limit $(ulimit -n) is below $((COUNT + 100))" >&2
    exit 1
fi
mkdir -p "$work/var"
echo "user1@example.test:{PLAIN}x" > "$work/var/users"
smtp_port=$(free_port)
write_toasterd_conf "$work/toasterd.conf" "$work/var" "$smtp_port" \
    "max_connections = $((COUNT + 100))" "max_connections_per_ip = $((COUNT + 100))" \
    "log_level = warning"
./build/toasterd -c "$work/toasterd.conf" 2>"$work/toasterd.log" &
pid=$!
wait_smtp "$smtp_port"
sleep 0.5

/usr/bin/python3 - "$pid" "$smtp_port" "$COUNT" <<'EOF' | tee "$work/result.md"
import sys, time

sys.path.insert(0, "bench")
import idle_smtp  # noqa: E402

pid, port, count = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])

def status(key):
    for line in open("/proc/%d/status" % pid):
        if line.startswith(key + ":"):
            return int(line.split()[1])  # kB

def sockstat_pages():
    for line in open("/proc/net/sockstat"):
        if line.startswith("TCP:"):
            f = line.split()
            return int(f[f.index("mem") + 1])

rss_before = status("VmRSS")
tcp_pages_before = sockstat_pages()
socks = idle_smtp.open_idle(port, count, timeout_s=120)
time.sleep(1)
rss_with = status("VmRSS")
tcp_pages_with = sockstat_pages()
per_conn = (rss_with - rss_before) * 1024 / count
print("### %d idle SMTP connections (after EHLO)\n" % count)
print("| toasterd VmRSS before | with them | per connection | kernel TCP memory per connection |")
print("| --- | --- | --- | --- |")
print("| %.1f MiB | %.1f MiB | %.1f KiB | %.1f KiB |" % (
    rss_before / 1024, rss_with / 1024, per_conn / 1024,
    (tcp_pages_with - tcp_pages_before) * 4096 / count / 1024))
for s in socks:
    s.close()
EOF
if [ -n "$out" ]; then cp "$work/result.md" "$out"; fi
