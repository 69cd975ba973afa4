#!/bin/bash
# bench/compare_imap.sh - toasterd's IMAP server beside Dovecot's, in one run
# on one machine, on two copies of the same Maildir data set (made by
# bench/imap_fill.py: USERS users x MESSAGES messages). Identical
# toaster-bench imap workloads go to each in turn (A B A B ..., ROUNDS
# each): the default command mix at each CONCURRENCY, and a login-only
# round (connect, LOGIN, SELECT, LOGOUT) at LOGIN_CONCURRENCY. Each run
# starts its server afresh on the data the previous runs left (APPENDs
# and flag changes accumulate the same way on both sides); each server
# gets one unrecorded warm-up run first, so Dovecot's indexes and
# toasterd's caches are built before anything is measured.
#
# Measured per run: commands/s and p99 from toaster-bench's JSON, CPU time
# of the server's whole process tree (compare_cgroup.sh) over the run, and
# the peak resident memory (compare_sample.py). Writes
# OUT/compare-imap-<stamp>.md (and compare-imap-latest.md) and prints the
# table. Stops everything it started.
#
# toasterd's half is skipped, with a note in the report, when its IMAP
# listener does not answer a LOGIN/SELECT/NOOP session (SERVERS=peer
# skips it on purpose).
#
# Usage: bench/compare_imap.sh
# Env: ROUNDS (3) DURATION (15 s per run) CONCURRENCY ("10 100")
#      LOGIN_CONCURRENCY (10; empty skips the login round) USERS (20)
#      MESSAGES (2000) SEED (1) DATA (an imap_fill.py --data-dir to copy
#      instead of making one) SERVERS ("toaster peer") TOASTER_PORT (2725,
#      SMTP) TOASTER_IMAP_PORT (2743) PEER_IMAP_PORT (2643) OUT
#      (bench/results) WORKDIR (parent of the temp dir) KEEP (1 keeps it)
#      BENCH_THREADS (1) WARMUP (5 s) ACCOUNTING (auto, v1, v2 or proc)
#      TOASTERD, BENCH (the binaries; default build/toasterd, build/toaster-bench)
# shellcheck disable=SC2015 # 'a && b || die' is meant: die when either fails
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$BENCH_DIR")
PY=/usr/bin/python3

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-15}
CONCURRENCY=${CONCURRENCY:-10 100}
LOGIN_CONCURRENCY=${LOGIN_CONCURRENCY-10}
USERS=${USERS:-20}
MESSAGES=${MESSAGES:-2000}
SEED=${SEED:-1}
DATA=${DATA:-}
SERVERS=${SERVERS:-toaster peer}
TOASTER_PORT=${TOASTER_PORT:-2725}
TOASTER_IMAP_PORT=${TOASTER_IMAP_PORT:-2743}
PEER_IMAP_PORT=${PEER_IMAP_PORT:-2643}
BENCH_THREADS=${BENCH_THREADS:-1}
WARMUP=${WARMUP:-5}
OUT=${OUT:-$ROOT/bench/results}
KEEP=${KEEP:-0}
TOASTERD=${TOASTERD:-$ROOT/build/toasterd}
BENCH=${BENCH:-$ROOT/build/toaster-bench}
MIX=fetch-headers=40,fetch-body=20,fetch-bodystructure=10,search=10,store=10,append=5,noop=5

WORK=""
IN_CLEANUP=""
SAMPLER_PID=""
TOASTER_PID=""
SKIP_NOTES=()

die() {
    echo "compare_imap: $*" >&2
    [ -n "$IN_CLEANUP" ] && return 1
    exit 1
}

is_uint() {
    [[ "$1" =~ ^[0-9]+$ ]]
}

max_concurrency=1
for c in $CONCURRENCY $LOGIN_CONCURRENCY; do
    is_uint "$c" && [ "$c" -ge 1 ] || die "concurrency '$c' is not a positive integer"
    [ "$c" -gt "$max_concurrency" ] && max_concurrency=$c
done
for knob in ROUNDS DURATION USERS MESSAGES SEED TOASTER_PORT TOASTER_IMAP_PORT PEER_IMAP_PORT BENCH_THREADS WARMUP; do
    is_uint "${!knob}" && [ "${!knob}" -ge 1 ] || die "$knob='${!knob}' is not a positive integer"
done
for s in $SERVERS; do
    [ "$s" = toaster ] || [ "$s" = peer ] || die "SERVERS may hold toaster and peer, not '$s'"
done
# shellcheck disable=SC2034 # read by compare_imap_peer.sh
PEER_IMAP_PROCESS_LIMIT=$((max_concurrency * 2 + 100))
CONNECTIONS_PER_IP=$((max_concurrency + 200))

source "$BENCH_DIR/compare_cgroup.sh"
source "$BENCH_DIR/compare_imap_peer.sh"
source "$BENCH_DIR/toasterd_lib.sh"

cleanup() {
    local rc=$?
    IN_CLEANUP=1
    trap - EXIT INT TERM
    if [ -n "$SAMPLER_PID" ]; then
        kill -TERM "$SAMPLER_PID" 2>/dev/null || true
        wait "$SAMPLER_PID" 2>/dev/null || true
    fi
    toaster_kill || true
    imap_peer_kill || true
    acct_remove_all || true
    if [ -n "$WORK" ]; then
        if [ "$KEEP" = 1 ]; then
            echo "compare_imap: kept $WORK" >&2
        else
            rm -rf "$WORK" || echo "compare_imap: cannot remove $WORK" >&2
        fi
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# wait_port PORT NAME LOG: until something accepts on 127.0.0.1:PORT.
wait_port() {
    local port=$1 name=$2 log=$3 i
    for ((i = 0; i < 200; i++)); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            return 0
        fi
        sleep 0.05
    done
    [ -f "$log" ] && tail -5 "$log" >&2
    die "$name does not listen on 127.0.0.1:$port after 10 s"
}

port_free() {
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then
        die "127.0.0.1:$1 is already in use; pick other ports (TOASTER_PORT, TOASTER_IMAP_PORT, PEER_IMAP_PORT)"
    fi
}

# ---- toasterd, side A ------------------------------------------------------

toaster_prepare() {
    local key
    mkdir -p "$WORK/toaster" || die "cannot create $WORK/toaster"
    {
        echo "# written by bench/compare_imap.sh"
        echo "data_dir = $WORK/toaster-data"
        echo "users_file = $WORK/users"
        echo "myhostname = toaster.bench.example.test"
        echo "smtp_listen = 127.0.0.1:$TOASTER_PORT"
        echo "imap_listen = 127.0.0.1:$TOASTER_IMAP_PORT"
        for key in submission submissions imaps managesieve http; do
            echo "${key}_listen = 127.0.0.1:$(free_port)"
        done
        echo "max_connections_per_ip = $CONNECTIONS_PER_IP"
    } >"$WORK/toaster/toasterd.conf" || die "cannot write $WORK/toaster/toasterd.conf"
    "$TOASTERD" -n -c "$WORK/toaster/toasterd.conf" >"$WORK/toaster/effective.conf" 2>"$WORK/toaster/config.err" ||
        return 1
    acct_create toaster
}

toaster_start() {
    (
        acct_join toaster
        exec "$TOASTERD" -c "$WORK/toaster/toasterd.conf" 2>>"$WORK/toaster/toasterd.log"
    ) &
    TOASTER_PID=$!
    acct_add_root toaster "$TOASTER_PID"
    wait_port "$TOASTER_PORT" "toasterd smtp" "$WORK/toaster/toasterd.log"
}

# toaster_try_start: like toaster_start, but returns 1 (toasterd stopped)
# instead of dying when SMTP does not come up within 10 s.
toaster_try_start() {
    local i
    (
        acct_join toaster
        exec "$TOASTERD" -c "$WORK/toaster/toasterd.conf" 2>>"$WORK/toaster/toasterd.log"
    ) &
    TOASTER_PID=$!
    acct_add_root toaster "$TOASTER_PID"
    for ((i = 0; i < 200; i++)); do
        (exec 3<>"/dev/tcp/127.0.0.1/$TOASTER_PORT") 2>/dev/null && return 0
        kill -0 "$TOASTER_PID" 2>/dev/null || break
        sleep 0.05
    done
    toaster_kill
    return 1
}

toaster_stop() {
    local rc=0
    [ -n "$TOASTER_PID" ] || return 0
    kill -TERM "$TOASTER_PID" || die "toasterd (pid $TOASTER_PID) is gone before SIGTERM"
    wait "$TOASTER_PID" || rc=$?
    TOASTER_PID=""
    acct_wait_empty toaster 30
    [ "$rc" -eq 0 ] || die "toasterd exited $rc on SIGTERM; see $WORK/toaster/toasterd.log"
}

toaster_kill() {
    [ -n "$TOASTER_PID" ] || return 0
    kill -TERM "$TOASTER_PID" 2>/dev/null || true
    wait "$TOASTER_PID" 2>/dev/null || true
    TOASTER_PID=""
    acct_wait_empty toaster 30
}

toaster_hwm_kib() {
    awk '/^VmHWM:/ {print $2}' "/proc/$TOASTER_PID/status"
}

# Does toasterd's IMAP answer a whole session (greeting, LOGIN, SELECT,
# NOOP, LOGOUT)? Its IMAP server may not be there yet.
toaster_imap_answers() {
    local i
    for ((i = 0; i < 40; i++)); do
        (exec 3<>"/dev/tcp/127.0.0.1/$TOASTER_IMAP_PORT") 2>/dev/null && break
        sleep 0.05
    done
    "$BENCH" imap --port "$TOASTER_IMAP_PORT" --users "$WORK/users" --user-count 1 \
        --connections 1 --count 3 --mix noop=1 --timeout 5 --quiet >"$WORK/toaster/probe.out" 2>&1
}

# skip_toaster WHY: leave side A out and say so, here and in the report.
skip_toaster() {
    echo "compare_imap: $1; skipping the toasterd half" >&2
    SKIP_NOTES+=("toasterd was not measured: $1.")
    SERVERS=$(echo "$SERVERS" | tr ' ' '\n' | grep -vx toaster | tr '\n' ' ' || true)
}

# ---- the runs ----------------------------------------------------------------

server_port() {
    [ "$1" = toaster ] && echo "$TOASTER_IMAP_PORT" || echo "$PEER_IMAP_PORT"
}

server_start() {
    [ "$1" = toaster ] && toaster_start || imap_peer_start
}

server_stop() {
    [ "$1" = toaster ] && toaster_stop || imap_peer_stop
}

# warm_up SERVER: one unrecorded run of the mix; every user's mailbox is
# opened and its messages read at least partly.
warm_up() {
    local server=$1 port rc=0
    port=$(server_port "$server")
    server_start "$server"
    "$BENCH" imap --port "$port" --users "$WORK/users" --user-count "$USERS" \
        --connections "$USERS" --duration "$WARMUP" --mix "$MIX" --quiet \
        >"$WORK/warmup-$server.out" 2>&1 || rc=$?
    server_stop "$server"
    [ "$rc" -le 1 ] || die "warm-up of $server: toaster-bench exited $rc: $(tail -3 "$WORK/warmup-$server.out")"
}

# run_one SERVER WORKLOAD ROUND CONCURRENCY MIX: one recorded run; appends
# one JSON line to $WORK/runs.jsonl.
run_one() {
    local server=$1 workload=$2 round=$3 conc=$4 mix=$5
    local run="$WORK/runs/$workload-$server-$round" port rc=0 t0 t1 cpu0 cpu1 hwm=""
    mkdir -p "$run" || die "cannot create $run"
    port=$(server_port "$server")
    server_start "$server"
    sleep 1
    cpu0=$(acct_cpu_ns "$server")
    # shellcheck disable=SC2046 # the sampler arguments are meant to split
    "$PY" "$BENCH_DIR/compare_sample.py" mem --out "$run/mem.json" $(acct_sampler_args "$server") &
    SAMPLER_PID=$!
    t0=$EPOCHREALTIME
    "$BENCH" imap --port "$port" --users "$WORK/users" --user-count "$USERS" \
        --connections "$conc" --threads "$BENCH_THREADS" --duration "$DURATION" --mix "$mix" \
        --seed "$round" --quiet --json "$run/bench.json" >"$run/bench.out" 2>&1 || rc=$?
    t1=$EPOCHREALTIME
    cpu1=$(acct_cpu_ns "$server")
    kill -TERM "$SAMPLER_PID" || die "memory sampler (pid $SAMPLER_PID) is gone"
    wait "$SAMPLER_PID" || die "memory sampler failed"
    SAMPLER_PID=""
    [ "$server" = toaster ] && hwm=$(toaster_hwm_kib)
    server_stop "$server"
    # Exit 1 means some commands failed: a result, shown in the report.
    [ "$rc" -le 1 ] || die "toaster-bench exited $rc: $(tail -5 "$run/bench.out")"
    [ -s "$run/bench.json" ] || die "toaster-bench wrote no $run/bench.json: $(tail -5 "$run/bench.out")"
    "$PY" - "$server" "$workload" "$conc" "$round" "$run/bench.json" "$run/mem.json" "$rc" \
        "$t0" "$t1" "$cpu0" "$cpu1" "$hwm" >>"$WORK/runs.jsonl" <<'PYEOF' || die "cannot record $run"
import json, sys
server, workload, conc, rnd, bench_path, mem_path, rc, t0, t1, cpu0, cpu1, hwm = sys.argv[1:]
bench = json.load(open(bench_path))
mem = json.load(open(mem_path))
wall = float(t1) - float(t0)
cpu_s = (int(cpu1) - int(cpu0)) / 1e9
cmds = bench["commands"]
print(json.dumps({
    "server": server, "workload": workload, "concurrency": int(conc), "round": int(rnd),
    "cmds_per_s": bench["cmds_per_s"], "commands": cmds,
    "p50_us": bench["latency_us"]["p50"], "p99_us": bench["latency_us"]["p99"],
    "errors": bench["errors"]["total"], "bench_rc": int(rc),
    "kinds": {k: {"per_s": v["per_s"], "p99_us": v["latency_us"]["p99"]}
              for k, v in bench["kinds"].items()},
    "mb_per_s": bench["bytes_received"] / 1e6 / bench["seconds"] if bench["seconds"] else 0,
    "cpu_s": cpu_s, "cpu_cores": cpu_s / wall if wall > 0 else 0,
    "cpu_ms_per_1000": cpu_s * 1e6 / cmds if cmds else None,
    "peak_rss_mib": mem["peak_rss_kib"] / 1024.0, "peak_pss_mib": mem["peak_pss_kib"] / 1024.0,
    "peak_processes": mem["peak_processes"],
    "hwm_mib": int(hwm) / 1024.0 if hwm else None,
}))
PYEOF
    tail -1 "$WORK/runs.jsonl" | "$PY" -c 'import json,sys; r=json.loads(sys.stdin.read()); print("compare_imap: %-8s %-7s round %d: %9.1f cmds/s  p99 %7.2f ms  errors %d  cpu %.2f cores  rss %.0f MiB" % (r["workload"], r["server"], r["round"], r["cmds_per_s"], r["p99_us"]/1000, r["errors"], r["cpu_cores"], r["peak_rss_mib"]))' >&2
}

write_meta() {
    local fs note
    fs=$(findmnt -n -o FSTYPE,SOURCE --target "$WORK" | tr -s ' ') || die "findmnt cannot tell the file system of $WORK"
    {
        printf 'stamp\t%s\n' "$STAMP"
        printf 'date\t%s\n' "$(date -u '+%Y-%m-%d %H:%M UTC')"
        printf 'commit\t%s\n' "$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
        printf 'cpu\t%s\n' "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
        printf 'nproc\t%s\n' "$(nproc)"
        printf 'memory\t%s\n' "$(awk '/^MemTotal:/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)"
        printf 'kernel\t%s\n' "$(uname -r)"
        printf 'filesystem\t%s\n' "$fs"
        printf 'toasterd\t%s\n' "$("$TOASTERD" -V 2>/dev/null || echo unknown)"
        printf 'peer\t%s\n' "$(imap_peer_version)"
        printf 'data\t%s users x %s messages from bench/imap_fill.py --seed %s (%s)\n' "$USERS" "$MESSAGES" "$SEED" "$(du -sh "$WORK/dataset/mail" | cut -f1)"
        printf 'command\tROUNDS=%s DURATION=%s CONCURRENCY="%s" LOGIN_CONCURRENCY=%s USERS=%s MESSAGES=%s SERVERS="%s" bench/compare_imap.sh\n' \
            "$ROUNDS" "$DURATION" "$CONCURRENCY" "$LOGIN_CONCURRENCY" "$USERS" "$MESSAGES" "$SERVERS_ASKED"
        printf 'mix\t%s\n' "$MIX"
        printf 'note\t%s\n' "$ACCT_NOTE"
        for note in "${SKIP_NOTES[@]}"; do printf 'note\t%s\n' "$note"; done
        for note in "${PEER_IMAP_NOTES[@]}"; do printf 'note\t%s\n' "$note"; done
        printf 'note\t%s\n' "toasterd: defaults except \`max_connections_per_ip = $CONNECTIONS_PER_IP\`."
        printf 'note\t%s\n' "Each server gets one unrecorded ${WARMUP} s warm-up run with $USERS connections first. Every run starts its server afresh on the data the earlier runs left; APPENDs (5 % of the mix) make the mailboxes grow alike on both sides. toaster-bench runs on the same machine and cores, outside both groups, with $BENCH_THREADS thread(s); --seed is the round number, so both servers in a round draw from the same random sequence (the interleaving of connections differs)."
        printf 'note\t%s\n' "Latency is from sending a command to its tagged OK; for login, from connect to SELECT's OK. CPU is the server's whole process tree over the run; memory is the peak sum of resident sets (and of Pss, which splits shared pages) sampled from outside."
    } >"$WORK/meta.tsv" || die "cannot write $WORK/meta.tsv"
}

report() {
    local md=$1
    "$PY" - "$WORK/runs.jsonl" "$WORK/meta.tsv" "$md" <<'PYEOF'
import json, statistics, sys
runs_path, meta_path, md_path = sys.argv[1:]
runs = [json.loads(line) for line in open(runs_path) if line.strip()]
meta, notes = {}, []
for line in open(meta_path):
    key, _, value = line.rstrip("\n").partition("\t")
    if key == "note":
        notes.append(value)
    else:
        meta[key] = value
names = {"toaster": "toasterd", "peer": "Dovecot"}
order = []
for r in runs:
    if (r["workload"], r["concurrency"]) not in order:
        order.append((r["workload"], r["concurrency"]))
def med(rs, key):
    vals = [r[key] for r in rs if r.get(key) is not None]
    return statistics.median(vals) if vals else None
def fmt(v, f):
    return f % v if v is not None else "–"
out = []
out.append("# toasterd vs Dovecot: IMAP (%s)\n" % meta.get("date", ""))
out.append("Medians of %s rounds, %s s each. Data: %s.\n" % (meta.get("rounds", "?"), meta.get("duration", "?"), meta.get("data", "")))
out.append("| workload | conns | server | cmds/s | p50 ms | p99 ms | errors | CPU cores | CPU ms / 1000 cmds | peak RSS MiB | peak Pss MiB | processes |")
out.append("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for workload, conc in order:
    for server in ("toaster", "peer"):
        rs = [r for r in runs if r["workload"] == workload and r["server"] == server]
        if not rs:
            continue
        out.append("| %s | %d | %s | %s | %s | %s | %d | %s | %s | %s | %s | %s |" % (
            workload, conc, names[server], fmt(med(rs, "cmds_per_s"), "%.1f"),
            fmt(med(rs, "p50_us") / 1000, "%.2f"), fmt(med(rs, "p99_us") / 1000, "%.2f"),
            sum(r["errors"] for r in rs), fmt(med(rs, "cpu_cores"), "%.2f"),
            fmt(med(rs, "cpu_ms_per_1000"), "%.1f"), fmt(med(rs, "peak_rss_mib"), "%.0f"),
            fmt(med(rs, "peak_pss_mib"), "%.0f"), fmt(med(rs, "peak_processes"), "%.0f")))
table = "\n".join(out[2:])
out.append("\n## Per kind (medians of cmds/s and p99 ms)\n")
kinds = []
for r in runs:
    for k in r["kinds"]:
        if k not in kinds:
            kinds.append(k)
out.append("| workload | server | " + " | ".join(kinds) + " |")
out.append("|---|---|" + "---:|" * len(kinds))
for workload, conc in order:
    for server in ("toaster", "peer"):
        rs = [r for r in runs if r["workload"] == workload and r["server"] == server]
        if not rs:
            continue
        cells = []
        for k in kinds:
            ks = [r["kinds"][k] for r in rs if k in r["kinds"]]
            if not ks:
                cells.append("–")
                continue
            cells.append("%.1f / %.2f" % (statistics.median(x["per_s"] for x in ks),
                                          statistics.median(x["p99_us"] for x in ks) / 1000))
        out.append("| %s | %s | %s |" % (workload, names[server], " | ".join(cells)))
out.append("\n## Every round\n")
out.append("| workload | server | round | cmds/s | p99 ms | errors | exit | CPU s | MB/s received | peak RSS MiB | toasterd VmHWM MiB |")
out.append("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for r in runs:
    out.append("| %s | %s | %d | %.1f | %.2f | %d | %d | %.2f | %.1f | %.0f | %s |" % (
        r["workload"], names[r["server"]], r["round"], r["cmds_per_s"], r["p99_us"] / 1000,
        r["errors"], r["bench_rc"], r["cpu_s"], r["mb_per_s"], r["peak_rss_mib"],
        fmt(r["hwm_mib"], "%.0f")))
out.append("\n## Setup\n")
for key in ("commit", "cpu", "nproc", "memory", "kernel", "filesystem", "toasterd", "peer", "data", "mix"):
    out.append("- %s: %s" % (key, meta.get(key, "?")))
out.append("- command: `%s`" % meta.get("command", "?"))
out.append("")
for note in notes:
    out.append("- " + note)
open(md_path, "w").write("\n".join(out) + "\n")
print(table)
PYEOF
}

main() {
    local c round workload stamp_md server name mix port
    [ "$(id -u)" -eq 0 ] || die "run as root: the Dovecot instance needs it"
    [ -x "$BENCH" ] || die "build first: meson compile -C build (need $BENCH)"
    SERVERS_ASKED=$SERVERS
    mkdir -p "${WORKDIR:-/tmp}" || die "cannot create ${WORKDIR:-/tmp}"
    WORK=$(mktemp -d "${WORKDIR:-/tmp}/toaster-compare-imap.XXXXXX") || die "mktemp failed"
    chmod 711 "$WORK" || die "cannot chmod $WORK"
    mkdir -p "$OUT" || die "cannot create $OUT"
    STAMP=$(date -u +%Y%m%dT%H%M%SZ)
    ulimit -n "$(ulimit -Hn)" || die "cannot raise the descriptor limit"

    imap_peer_install
    for port in $TOASTER_PORT $TOASTER_IMAP_PORT $PEER_IMAP_PORT; do port_free "$port"; done
    acct_detect

    # One data set, two copies.
    if [ -n "$DATA" ]; then
        [ -d "$DATA/mail" ] || die "DATA=$DATA has no mail/ directory (make it with bench/imap_fill.py)"
        cp -a "$DATA" "$WORK/dataset" || die "cannot copy $DATA"
    else
        "$PY" "$BENCH_DIR/imap_fill.py" --data-dir "$WORK/dataset" --users "$USERS" \
            --messages "$MESSAGES" --seed "$SEED" || die "imap_fill.py failed"
    fi
    "$PY" -c 'import sys; n=int(sys.argv[1]); open(sys.argv[2], "w").write("".join("user%d@example.test:{PLAIN}x\n" % i for i in range(1, n + 1)))' \
        "$USERS" "$WORK/users" || die "cannot write $WORK/users"
    [[ " $SERVERS " == *" peer "* ]] && { cp -a "$WORK/dataset" "$WORK/peer-data" || die "cannot copy the data set"; }
    if [[ " $SERVERS " == *" toaster "* ]]; then
        if [ ! -x "$TOASTERD" ]; then
            skip_toaster "$TOASTERD is not built"
        elif ! toaster_prepare; then
            skip_toaster "toasterd refuses its configuration ($(head -1 "$WORK/toaster/config.err"))"
        else
            cp -a "$WORK/dataset" "$WORK/toaster-data" || die "cannot copy the data set"
            if ! toaster_try_start; then
                skip_toaster "toasterd does not start ($(tail -1 "$WORK/toaster/toasterd.log" 2>/dev/null))"
            elif ! toaster_imap_answers; then
                toaster_stop
                skip_toaster "toasterd's IMAP on 127.0.0.1:$TOASTER_IMAP_PORT does not answer LOGIN/SELECT/NOOP yet ($(tail -1 "$WORK/toaster/probe.out"))"
            else
                toaster_stop
            fi
        fi
    fi
    [ -n "${SERVERS// /}" ] || die "nothing left to measure"
    if [[ " $SERVERS " == *" peer "* ]]; then
        imap_peer_prepare "$WORK/users" "$WORK/peer-data"
    fi
    write_meta
    printf 'rounds\t%s\nduration\t%s\n' "$ROUNDS" "$DURATION" >>"$WORK/meta.tsv"

    for server in $SERVERS; do warm_up "$server"; done
    local workloads=()
    for c in $CONCURRENCY; do workloads+=("mix:$c:$MIX"); done
    [ -n "$LOGIN_CONCURRENCY" ] && workloads+=("login:$LOGIN_CONCURRENCY:login=1")
    for workload in "${workloads[@]}"; do
        IFS=: read -r name c mix <<<"$workload"
        name="$name-c$c"
        for round in $(seq 1 "$ROUNDS"); do
            for server in $SERVERS; do
                run_one "$server" "$name" "$round" "$c" "$mix"
            done
        done
    done

    stamp_md="$OUT/compare-imap-$STAMP.md"
    report "$stamp_md" || die "could not write the report"
    cp "$stamp_md" "$OUT/compare-imap-latest.md" || die "cannot copy the report"
    echo "compare_imap: wrote $stamp_md (also compare-imap-latest.md)" >&2
}

main "$@"
