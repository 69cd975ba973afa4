#!/bin/bash
# bench/tls_handshakes.sh - full and resumed TLS handshakes per second per
# core against toasterd (issue 5, numbers).
#
# Starts toasterd on its embedded defaults (the self-signed ECDSA P-256
# certificate made at first start, logging at info) in a temporary data_dir,
# once per value of THREADS (reactor_threads), and points clients at its imaps
# port, one connection after another: each connection is a TCP connect, a
# handshake and a close. The figure is handshakes per CPU-second of toasterd
# (utime + stime of every thread, from /proc/PID/stat, over the run), i.e.
# handshakes per second per core; handshakes are counted by toasterd itself
# (the tls_handshakes counter of `toasterctl stats`). With one reactor the
# daemon is pinned to CPU 0 and the clients to CPU 1, so the client's own
# work never lands on the measured core; with two reactors nothing is pinned.
#
# Clients (CLIENTS processes at once, each sequential):
#   full TLS 1.3 / 1.2:  openssl s_time -connect 127.0.0.1:PORT -new -tls1_3|-tls1_2
#   resumed TLS 1.2:     openssl s_time ... -reuse -tls1_2 (a session ticket;
#                        every 'r' in its output is a resumed connection)
#   TLS 1.3, both ways:  a small Python client (tls_client.py below): s_time
#                        closes before it reads anything, so it never sees a
#                        TLS 1.3 ticket (which arrives after the handshake)
#                        and cannot resume TLS 1.3; the Python client reads
#                        the IMAP greeting, keeps the newest ticket and
#                        offers it on the next connection. Its full-handshake
#                        row shows the server's cost does not depend on which
#                        client is used.
# Rows take turns within each round; the table shows medians over ROUNDS.
#
# Usage: bench/tls_handshakes.sh [-o FILE]
#   env: ROUNDS (3), DURATION (10 s per row and round), THREADS ("1 2"),
#        CLIENTS (2), BUILD (build)
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS="${ROUNDS:-3}"
DURATION="${DURATION:-10}"
THREADS="${THREADS:-1 2}"
CLIENTS="${CLIENTS:-2}"
BUILD="${BUILD:-build}"
out=""
if [ "${1:-}" = "-o" ]; then out="$2"; fi

for tool in openssl taskset /usr/bin/python3; do
    command -v "$tool" >/dev/null || { echo "$tool is missing" >&2; exit 1; }
done
if [ ! -x "$BUILD/toasterd" ] || [ ! -x "$BUILD/toasterctl" ]; then
    echo "no $BUILD/toasterd: meson setup $BUILD && ninja -C $BUILD" >&2
    exit 1
fi

work=$(mktemp -d /tmp/toaster-tls-hs.XXXXXX)
pid=""
stop_daemon() {
    if [ -n "$pid" ]; then
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
        pid=""
    fi
}
trap 'stop_daemon; rm -rf "$work"' EXIT
. bench/toasterd_lib.sh

ncpu=$(nproc)
clk_tck=$(getconf CLK_TCK)

# The TLS client for TLS 1.3 resumption (and a full-handshake cross-check).
cat >"$work/tls_client.py" <<'EOF'
"""tls_client.py PORT SECONDS VERSION MODE: sequential connections to an
implicit-TLS IMAP port; each reads the greeting line and closes. MODE new:
a full handshake every time; reuse: offer the newest session (ticket).
Prints "connections N resumed R"."""
import socket, ssl, sys, time

port, seconds, version, mode = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3], sys.argv[4]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
ctx.minimum_version = ctx.maximum_version = {
    "1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}[version]
session = None
count = resumed = 0
deadline = time.monotonic() + seconds
while time.monotonic() < deadline:
    raw = socket.create_connection(("127.0.0.1", port))
    tls = ctx.wrap_socket(raw, server_hostname="localhost",
                          session=session if mode == "reuse" else None)
    buf = b""
    while b"\r\n" not in buf:
        chunk = tls.recv(4096)
        if not chunk:
            sys.exit("connection closed before the greeting")
        buf += chunk
    count += 1
    resumed += tls.session_reused
    if mode == "reuse":
        session = tls.session
    raw.close()
print("connections %d resumed %d" % (count, resumed))
EOF

cpu_ticks() {
    awk '{print $14 + $15}' "/proc/$1/stat"
}

handshakes() {
    "$BUILD/toasterctl" -c "$work/toasterd.conf" stats --json |
        /usr/bin/python3 -c 'import json, sys
print(sum(r["tls_handshakes"] for r in json.load(sys.stdin)["reactors"]))'
}

# run_row THREADS ROW: CLIENTS clients for DURATION seconds; appends
# "threads row handshakes resumed offered wall_s cpu_s" to $work/samples.
run_row() {
    local threads=$1 row=$2 i hs0 hs1 t0 t1 c0 c1 resumed=0 offered=0 n r
    local pin=() clients=()
    if [ "$threads" = 1 ] && [ "$ncpu" -ge 2 ]; then pin=(taskset -c 1); fi
    hs0=$(handshakes)
    c0=$(cpu_ticks "$pid")
    t0=$(date +%s.%N)
    for i in $(seq "$CLIENTS"); do
        case $row in
        s_time-new-1.3) "${pin[@]}" openssl s_time -connect "127.0.0.1:$imaps_port" -new \
                            -tls1_3 -time "$DURATION" ;;
        s_time-new-1.2) "${pin[@]}" openssl s_time -connect "127.0.0.1:$imaps_port" -new \
                            -tls1_2 -time "$DURATION" ;;
        s_time-reuse-1.2) "${pin[@]}" openssl s_time -connect "127.0.0.1:$imaps_port" -reuse \
                            -tls1_2 -time "$DURATION" ;;
        python-new-1.3) "${pin[@]}" /usr/bin/python3 "$work/tls_client.py" "$imaps_port" \
                            "$DURATION" 1.3 new ;;
        python-reuse-1.3) "${pin[@]}" /usr/bin/python3 "$work/tls_client.py" "$imaps_port" \
                            "$DURATION" 1.3 reuse ;;
        esac >"$work/client.$i" 2>&1 &
        clients+=($!)
    done
    for i in "${clients[@]}"; do
        wait "$i" || true  # a failed client is reported below, from its output
    done
    t1=$(date +%s.%N)
    c1=$(cpu_ticks "$pid")
    hs1=$(handshakes)
    for i in $(seq "$CLIENTS"); do
        case $row in
        s_time-reuse-*)
            # One full handshake to get the session, then 'r' (resumed) or
            # '*' (not) per connection.
            r=$( (grep -E '^[r*]+$' "$work/client.$i" || true) | tr -cd 'r' | wc -c)
            n=$( (grep -E '^[r*]+$' "$work/client.$i" || true) | tr -cd 'r*' | wc -c)
            [ "$n" -gt 0 ] || n=""
            ;;
        s_time-*)
            n=$(grep -o '^[0-9]* connections in [0-9.]* real' "$work/client.$i" | cut -d' ' -f1)
            r=0 ;;
        python-*)
            n=$(awk '/^connections/ {print $2}' "$work/client.$i")
            r=$(awk '/^connections/ {print $4}' "$work/client.$i") ;;
        esac
        if [ -z "$n" ]; then
            echo "client $i of $row failed:" >&2
            tail -5 "$work/client.$i" >&2
            exit 1
        fi
        resumed=$((resumed + r))
        offered=$((offered + n))
    done
    echo "$threads $row $((hs1 - hs0)) $resumed $offered" \
         "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')" \
         "$(awk -v a="$c0" -v b="$c1" -v t="$clk_tck" 'BEGIN { printf "%.2f", (b - a) / t }')" \
         >>"$work/samples"
}

rows="s_time-new-1.3 python-new-1.3 python-reuse-1.3 s_time-new-1.2 s_time-reuse-1.2"
: >"$work/samples"
for threads in $THREADS; do
    rm -rf "${work:?}/var"
    mkdir -p "$work/var"
    write_users "$work/var/users"
    write_toasterd_conf "$work/toasterd.conf" "$work/var" "$(free_port)" \
        "reactor_threads = $threads"
    imaps_port=$(sed -n 's/^imaps_listen = 127.0.0.1://p' "$work/toasterd.conf")
    pin_daemon=()
    if [ "$threads" = 1 ] && [ "$ncpu" -ge 2 ]; then pin_daemon=(taskset -c 0); fi
    "${pin_daemon[@]}" "./$BUILD/toasterd" -c "$work/toasterd.conf" 2>"$work/toasterd.log" &
    pid=$!
    wait_smtp "$imaps_port"
    sleep 0.5
    # What is negotiated, for the report.
    for v in 1_3 1_2; do
        openssl s_client -connect "127.0.0.1:$imaps_port" -tls$v -brief </dev/null 2>&1 |
            awk -v v="$v" '/^Protocol version|^Ciphersuite|^Signature type|^Server Temp Key/ {
                sub(/^[^:]*: /, ""); s = s (s ? ", " : "") $0 } END { print "tls" v ": " s }'
    done >"$work/negotiated"
    for round in $(seq "$ROUNDS"); do
        for row in $rows; do
            echo "reactor_threads=$threads round $round/$ROUNDS: $row" >&2
            run_row "$threads" "$row"
        done
    done
    if grep -E "assertion failed|AddressSanitizer|runtime error" "$work/toasterd.log" >&2; then
        exit 1
    fi
    stop_daemon
done

{
    echo "# TLS handshakes per second per core ($(date -u +%Y-%m-%d))"
    echo
    echo "Command: \`ROUNDS=$ROUNDS DURATION=$DURATION THREADS=\"$THREADS\" CLIENTS=$CLIENTS" \
         "bench/tls_handshakes.sh${out:+ -o $out}\`"
    echo "on $ncpu cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'))," \
         "kernel $(uname -r), $(openssl version | cut -d' ' -f1-2)," \
         "commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)."
    echo "toasterd on its embedded defaults (self-signed ECDSA P-256 certificate," \
         "logging at info) apart from reactor_threads; imaps port; each connection is"
    echo "connect, handshake, close ($CLIENTS sequential clients at once). Negotiated:"
    sed 's/^/- /' "$work/negotiated"
    echo
    echo "**per core** = handshakes counted by toasterd / toasterd's CPU seconds"
    echo "(utime + stime, all threads). With reactor_threads 1 toasterd is pinned to"
    echo "CPU 0 and the clients to CPU 1; with 2, nothing is pinned and clients and"
    echo "daemon share both cores, so its wall-clock rate is the client's limit, not the"
    echo "daemon's. Medians over $ROUNDS rounds of ${DURATION} s."
    echo
    echo "| handshake | client | reactor_threads | per core (handshakes per CPU-s) | µs CPU each | handshakes/s (wall) | toasterd CPU | resumed | rounds |"
    echo "|---|---|---:|---:|---:|---:|---:|---:|---:|"
    /usr/bin/python3 - "$work/samples" <<'EOF'
import statistics, sys
names = {
    "s_time-new-1.3": ("TLS 1.3 full", "openssl s_time -new -tls1_3"),
    "python-new-1.3": ("TLS 1.3 full", "Python ssl, new session"),
    "python-reuse-1.3": ("TLS 1.3 resumed (ticket)", "Python ssl, reused session"),
    "s_time-new-1.2": ("TLS 1.2 full", "openssl s_time -new -tls1_2"),
    "s_time-reuse-1.2": ("TLS 1.2 resumed (ticket)", "openssl s_time -reuse -tls1_2"),
}
samples = {}
for line in open(sys.argv[1]):
    threads, row, hs, resumed, offered, wall, cpu = line.split()
    samples.setdefault((threads, row), []).append(
        (int(hs), int(resumed), int(offered), float(wall), float(cpu)))
for (threads, row), runs in samples.items():
    per_cpu = statistics.median(hs / cpu for hs, _, _, _, cpu in runs)
    wall = statistics.median(hs / w for hs, _, _, w, _ in runs)
    busy = statistics.median(cpu / w for _, _, _, w, cpu in runs)
    resumed = sum(r for _, r, _, _, _ in runs)
    offered = sum(o for _, _, o, _, _ in runs)
    share = "-" if "reuse" not in row else "%.1f %%" % (100.0 * resumed / max(offered, 1))
    label, client = names[row]
    print("| %s | %s | %s | %.0f | %.0f | %.0f | %.0f %% | %s | %d |" % (
        label, client, threads, per_cpu, 1e6 / per_cpu, wall, 100 * busy, share, len(runs)))
EOF
    echo
    echo "Samples (reactor_threads, row, handshakes counted by toasterd, resumed and"
    echo "connections as the clients saw them, wall s, toasterd CPU s):"
    echo
    echo '```'
    cat "$work/samples"
    echo '```'
} >"$work/result.md"
cat "$work/result.md"
if [ -n "$out" ]; then
    cp "$work/result.md" "$out"
fi
