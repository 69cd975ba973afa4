#!/bin/bash
# bench/imap_splice.sh - FETCH BODY[] by splice against reading and copying
# the file, side by side in one run: the same toasterd binary with
# imap_fetch_splice = yes and = no, in turn (A B A B ..., ROUNDS each), on
# two data sets: ordinary mail (bench/imap_fill.py, USERS x MESSAGES) and
# BIG_COUNT messages of about BIG_KIB KiB. Each run starts toasterd afresh, warms
# up for WARMUP s (the first read of a message teaches the index that it
# holds no NUL, which splicing needs), then runs `toaster-bench imap --mix
# fetch-body=1` for DURATION s. Measured: commands/s, and toasterd's CPU
# (user + system of every thread, io_uring's workers included) per 1000
# commands. Prints a markdown table of medians (and writes it to -o FILE).
# Usage: bench/imap_splice.sh [-o FILE]
# Env: ROUNDS (3) DURATION (8) WARMUP (4) CONNECTIONS (10) USERS (4)
#      MESSAGES (1000) BIG_COUNT (150) BIG_KIB (1024)
#      TOASTERD, BENCH (default build/...)
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-8}
WARMUP=${WARMUP:-4}
CONNECTIONS=${CONNECTIONS:-10}
USERS=${USERS:-4}
MESSAGES=${MESSAGES:-1000}
BIG_COUNT=${BIG_COUNT:-150}
BIG_KIB=${BIG_KIB:-1024}
TOASTERD=${TOASTERD:-build/toasterd}
BENCH=${BENCH:-build/toaster-bench}
out=""
if [ "${1:-}" = "-o" ]; then out="$2"; fi

work=$(mktemp -d /tmp/toaster-imap-splice.XXXXXX)
pid=""
trap '[ -n "$pid" ] && kill $pid 2>/dev/null; [ -n "${KEEP:-}" ] || rm -rf "$work"' EXIT
. bench/toasterd_lib.sh

mkdir -p "$work/data"
/usr/bin/python3 bench/imap_fill.py --data-dir "$work/data" --users "$USERS" \
    --messages "$MESSAGES" --users-file "$work/users" >/dev/null
# The big user: BIG_COUNT messages of about BIG_KIB KiB, CRLF, named as
# imap_fill.py names them (S= and W= equal).
echo "big@example.test:{PLAIN}x" >"$work/users-big"
/usr/bin/python3 - "$work/data/mail/example.test/big/Maildir" "$BIG_COUNT" "$BIG_KIB" <<'EOF'
import os, random, sys
root, count, kib = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for d in ("cur", "new", "tmp"):
    os.makedirs(os.path.join(root, d), exist_ok=True)
rng = random.Random(5)
line = bytes(65 + rng.randrange(26) for _ in range(76)) + b"\r\n"
for i in range(count):
    body = (b"From: a@example.org\r\nTo: big@example.test\r\nSubject: big %d\r\n"
            b"Date: Thu, 04 Jan 2024 10:00:00 +0000\r\n\r\n" % i) + line * (kib * 1024 // 78)
    name = "17000%05d.M%dP1Q%d.bench.example.test,S=%d,W=%d:2," % (i, i, i, len(body), len(body))
    with open(os.path.join(root, "cur", name), "wb") as f:
        f.write(body)
EOF
cat "$work/users-big" >>"$work/users"

# run MODE USERS_FILE USER_COUNT -> "cmds_per_s cpu_ms_per_1000"
run() {
    local mode=$1 users=$2 count=$3 port imap_port t0 t1
    port=$(free_port)
    write_toasterd_conf "$work/c.conf" "$work/data" "$port" "users_file = $work/users" \
        "log_level = warning" "max_connections_per_ip = 1000" "imap_fetch_splice = $mode"
    imap_port=$(sed -n 's/^imap_listen = 127.0.0.1://p' "$work/c.conf")
    "$TOASTERD" -c "$work/c.conf" >>"$work/toasterd.log" 2>&1 &
    pid=$!
    wait_smtp "$port"
    "$BENCH" imap --port "$imap_port" --users "$users" --user-count "$count" \
        --connections "$CONNECTIONS" --duration "$WARMUP" --mix fetch-body=1 --quiet
    t0=$(awk '{print $14 + $15}' "/proc/$pid/stat")
    "$BENCH" imap --port "$imap_port" --users "$users" --user-count "$count" \
        --connections "$CONNECTIONS" --duration "$DURATION" --mix fetch-body=1 --quiet \
        --json "$work/run.json"
    t1=$(awk '{print $14 + $15}' "/proc/$pid/stat")
    kill "$pid"
    wait "$pid" || true
    pid=""
    /usr/bin/python3 - "$work/run.json" "$t0" "$t1" "$(getconf CLK_TCK)" <<'EOF'
import json, sys
j = json.load(open(sys.argv[1]))
ticks = int(sys.argv[3]) - int(sys.argv[2])
print("%.1f %.1f" % (j["cmds_per_s"], ticks * 1000.0 / int(sys.argv[4]) / j["commands"] * 1000))
EOF
}

results="$work/results"
: >"$results"
for round in $(seq 1 "$ROUNDS"); do
    for set in ordinary big; do
        for mode in yes no; do
            if [ "$set" = ordinary ]; then
                r=$(run "$mode" "$work/users" "$USERS")
            else
                r=$(run "$mode" "$work/users-big" 1)
            fi
            echo "$set $mode $round $r" | tee -a "$results" >&2
        done
    done
done

table=$(/usr/bin/python3 - "$results" <<'EOF'
import statistics, sys
rows = [line.split() for line in open(sys.argv[1])]
print("| data | imap_fetch_splice | FETCH BODY[] /s (median) | CPU ms / 1000 FETCH (median) | rounds |")
print("|---|---|---:|---:|---:|")
for data in ("ordinary", "big"):
    for mode in ("yes", "no"):
        sel = [r for r in rows if r[0] == data and r[1] == mode]
        rate = statistics.median(float(r[3]) for r in sel)
        cpu = statistics.median(float(r[4]) for r in sel)
        print("| %s | %s | %.0f | %.1f | %d |" % (data, mode, rate, cpu, len(sel)))
EOF
)
echo "$table"
if [ -n "$out" ]; then
    {
        echo "# FETCH BODY[]: splice against read and copy ($(date -u +%Y-%m-%d))"
        echo
        echo "Command: \`ROUNDS=$ROUNDS DURATION=$DURATION CONNECTIONS=$CONNECTIONS USERS=$USERS MESSAGES=$MESSAGES BIG_COUNT=$BIG_COUNT BIG_KIB=$BIG_KIB bench/imap_splice.sh -o $out\`"
        echo "on $(nproc) cores, commit $(git rev-parse --short HEAD). Data: ordinary = imap_fill.py"
        echo "(text, alternatives, 1-100 KiB attachments), big = $BIG_COUNT messages of $BIG_KIB KiB."
        echo "Messages under 64 KiB are read and copied in both modes (IMAP_EXEC_SPLICE_MIN_BYTES)."
        echo
        echo "$table"
    } >"$out"
fi
