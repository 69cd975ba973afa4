#!/bin/bash
# bench/compare.sh - toasterd beside the stack it replaces, in one run on one
# machine: Postfix (smtpd, cleanup, qmgr) handing mail to Dovecot LMTP, which
# writes Maildir, both from Debian, on loopback high ports with the same 100
# users and default durability (both fsync). Identical toaster-bench
# workloads go to each in turn (A B A B ..., ROUNDS each), every round on a
# freshly started server with an empty mail store and queue. Writes a
# markdown report and an SVG chart to OUT (compare-<stamp>.md/.svg, copied
# to compare-latest.*) and prints the table. Stops everything it started.
#
# Throughput is end to end: delivered messages (files in Maildir) divided by
# the time from the client's start until the last accepted message is in a
# Maildir. Postfix answers 250 once the message is in its queue, so its run
# ends when the queue has drained; toasterd answers 250 after the Maildir
# rename and fsync, so its run ends with the client.
#
# With TLS=1 every toaster-bench session says STARTTLS after EHLO and sends
# its messages encrypted, to both servers: each gets its own self-signed
# ECDSA P-256 certificate made here (toasterd through tls_cert/tls_key,
# Postfix through smtpd_tls_cert_file/key_file, security level "may", TLS
# 1.2 and 1.3 only), so both do the same crypto. That report is
# compare-tls-<stamp>.md/.svg (and compare-tls-latest.*), and the IMAP
# comparison is skipped unless IMAP=1 asks for it.
#
# With FILTERS=1 both sides run the same checks on every message: toasterd
# with its filters on (ClamAV, DKIM verification, SPF, DMARC, spam scoring
# with greylisting, ratelimit and Bayes), Postfix with Rspamd (Redis, and
# ClamAV's clamd as its antivirus) and OpenDKIM as milters before Dovecot
# LMTP (bench/compare_peer_filters.sh: private instances on loopback high
# ports FILTER_PORT..+6, OpenDKIM on a Unix socket, their processes in the
# peer's accounting). DNS is
# NXDOMAIN for every name on both sides, answered on the machine (toasterd:
# an override zone; Rspamd and OpenDKIM: a private unbound). Both load the
# same ClamAV signature files. That report is compare-filters-<stamp>.md/.svg
# (compare-filters-latest.*; compare-tls-filters-* with TLS=1), and the IMAP
# comparison, which no filter touches, is skipped unless IMAP=1.
#
# With SIEVE=1 both sides run a global Sieve script before every delivery:
# toasterd its shipped default (sieve_before = builtin: the user's
# whitelist and blacklist, spam into Junk), Dovecot LMTP with Pigeonhole
# (dovecot-sieve) and sieve_before set to bench/compare_peer.sieve, the
# same tests written without extlists, which Pigeonhole lacks. Without it
# toasterd runs with `sieve = no`, as the peer runs no Sieve. That report
# is compare-sieve-<stamp>.md/.svg. What Sieve costs toasterd alone is
# measured beside it by `bench/tuning.sh sieve=no,yes`.
#
# With RELAY=1 both servers relay instead (bench/compare_relay.sh): every
# message goes to user<N>@sink.test from 127.0.0.1, inside mynetworks, and
# each server queues it (fsync on both) and passes it on to the same sink,
# Postfix's smtp-sink(1) on SINK_PORT (relayhost / relay_host). Postfix
# runs alone (smtpd, cleanup, qmgr, smtp; no Dovecot), toasterd with
# outbound_delivery on. A run ends when the sink has counted every message
# toaster-bench had accepted. The sink alone, fed by toaster-bench at the
# same concurrencies, is measured first. That report is
# compare-relay-<stamp>.md/.svg; concurrency defaults to "10 100", no size
# mix, no IMAP; TLS, FILTERS and SIEVE are refused with it.
#
# Then, unless IMAP=0, bench/compare_imap.sh sets toasterd's IMAP server
# beside Dovecot's on two copies of the same Maildir data (same ROUNDS and
# DURATION); its table is added to this report (its own report holds the
# details).
#
# Usage: bench/compare.sh
# Env: ROUNDS (3) DURATION (15 s per run) CONCURRENCY ("1 10 100 1000")
#      SIZE (4k) MIX_CONCURRENCY (100; empty skips the size-mix row)
#      SIZE_MIX (4k:70,50k:25,1m:5) MESSAGES_PER_SESSION (100)
#      TOASTER_PORT (2725, +1..+6 for its other listeners) PEER_PORT (2625)
#      LMTP_PORT (2624) OUT (bench/results) WORKDIR (parent of the temp dir)
#      KEEP (1 keeps the temp dir) DRAIN_TIMEOUT (600 s) BENCH_THREADS (1)
#      PEER_LMTP_CONCURRENCY (empty: Postfix's default of 20)
#      ACCOUNTING (auto; v1, v2 or proc to force how CPU is counted)
#      IMAP (1, or 0 with TLS=1; 0 skips the IMAP comparison) IMAP_CONCURRENCY ("10 100");
#      TLS (0; 1: STARTTLS on every SMTP session, see above)
#      FILTERS (0; 1: the checks on both sides, see above) FILTER_PORT (2630)
#      SIEVE (0; 1: a global Sieve script on both sides, see above)
#      OPENDKIM_INET (0: OpenDKIM on a Unix socket; 1: on 127.0.0.1:FILTER_PORT+6)
#      FILTERS_LOG_CLEAN (0; 1: clamd and Rspamd log every clean scan too)
#      RSPAMD_WORKERS (empty: as many scanners as toasterd has worker_threads;
#      N; or "default": Rspamd's own, cores - 2 and at least 1)
#      TOASTERD, BENCH (the binaries; default build/toasterd, build/toaster-bench)
#      RELAY (0; 1: both relay to a sink, see above) SINK_PORT (2626)
#      RELAY_CONCURRENCY (empty: 20, both servers' default sessions to one
#      destination) SIDES ("toaster peer"; "peer" alone, "toaster" alone)
#      RELAY_TOASTER_EXTRA (empty; "key = value; ..." more toasterd settings)
#      RELAY_DRAIN (1; 0 skips the queue drained alone, see compare_relay.sh)
#      DRAIN_MESSAGES (20000) DRAIN_FILL_CONCURRENCY (100)
#      TOASTERCTL (default: toasterctl beside TOASTERD; RELAY_DRAIN needs it)
#      compare_imap.sh reads its other settings (USERS, MESSAGES...) from
#      the environment too
# shellcheck disable=SC2015 # 'a && b || die' is meant: die when either fails
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$BENCH_DIR")
PY=/usr/bin/python3

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-15}
RELAY=${RELAY:-0}
if [ "$RELAY" = 1 ]; then
    CONCURRENCY=${CONCURRENCY:-10 100}
    MIX_CONCURRENCY=${MIX_CONCURRENCY-}
fi
CONCURRENCY=${CONCURRENCY:-1 10 100 1000}
MIX_CONCURRENCY=${MIX_CONCURRENCY-100}
SIZE=${SIZE:-4k}
SIZE_MIX=${SIZE_MIX:-4k:70,50k:25,1m:5}
MESSAGES_PER_SESSION=${MESSAGES_PER_SESSION:-100}
BENCH_THREADS=${BENCH_THREADS:-1}
TOASTER_PORT=${TOASTER_PORT:-2725}
PEER_PORT=${PEER_PORT:-2625}
LMTP_PORT=${LMTP_PORT:-2624}
PEER_LMTP_CONCURRENCY=${PEER_LMTP_CONCURRENCY:-}
DRAIN_TIMEOUT=${DRAIN_TIMEOUT:-600}
OUT=${OUT:-$ROOT/bench/results}
KEEP=${KEEP:-0}
TOASTERD=${TOASTERD:-$ROOT/build/toasterd}
BENCH=${BENCH:-$ROOT/build/toaster-bench}
TLS=${TLS:-0}
FILTERS=${FILTERS:-0}
SIEVE=${SIEVE:-0}
SIDES=${SIDES:-toaster peer}
if [ "$TLS" = 1 ]; then
    REPORT_NAME=compare-tls
    BENCH_TLS_ARGS=(--starttls)
else
    REPORT_NAME=compare
    BENCH_TLS_ARGS=()
fi
if [ "$TLS" = 1 ] || [ "$FILTERS" = 1 ] || [ "$SIEVE" = 1 ] || [ "$RELAY" = 1 ]; then
    IMAP=${IMAP:-0}
else
    IMAP=${IMAP:-1}
fi
[ "$FILTERS" = 1 ] && REPORT_NAME=$REPORT_NAME-filters
[ "$SIEVE" = 1 ] && REPORT_NAME=$REPORT_NAME-sieve
[ "$RELAY" = 1 ] && REPORT_NAME=$REPORT_NAME-relay
REPORT_PY=$BENCH_DIR/compare_report.py
[ "$RELAY" = 1 ] && REPORT_PY=$BENCH_DIR/compare_relay_report.py
RCPT_PATTERN='user%d@example.test'

WORK=""
POLICY_RC_CREATED=""
IN_CLEANUP=""
SAMPLER_PID=""

die() {
    echo "compare: $*" >&2
    # Inside the trap an error must not cut the rest of the clean-up short.
    [ -n "$IN_CLEANUP" ] && return 1
    exit 1
}

is_uint() {
    [[ "$1" =~ ^[0-9]+$ ]]
}

# Both servers must be able to take the largest concurrency from 127.0.0.1.
max_concurrency=0
for c in $CONCURRENCY $MIX_CONCURRENCY; do
    is_uint "$c" && [ "$c" -ge 1 ] || die "concurrency '$c' is not a positive integer"
    [ "$c" -gt "$max_concurrency" ] && max_concurrency=$c
done
[ "$TLS" = 0 ] || [ "$TLS" = 1 ] || die "TLS='$TLS' is neither 0 nor 1"
[ "$FILTERS" = 0 ] || [ "$FILTERS" = 1 ] || die "FILTERS='$FILTERS' is neither 0 nor 1"
[ "$SIEVE" = 0 ] || [ "$SIEVE" = 1 ] || die "SIEVE='$SIEVE' is neither 0 nor 1"
[ "$RELAY" = 0 ] || [ "$RELAY" = 1 ] || die "RELAY='$RELAY' is neither 0 nor 1"
if [ "$RELAY" = 1 ] && { [ "$TLS" = 1 ] || [ "$FILTERS" = 1 ] || [ "$SIEVE" = 1 ] || [ "$IMAP" = 1 ]; }; then
    die "RELAY=1 goes alone: no TLS, FILTERS, SIEVE or IMAP with it"
fi
for side in $SIDES; do
    [ "$side" = toaster ] || [ "$side" = peer ] || die "SIDES='$SIDES': each must be toaster or peer"
done
[ -n "${SIDES// /}" ] || die "SIDES is empty"
if [ "$SIEVE" = 1 ]; then
    dpkg-query -W -f='${Status}' dovecot-sieve 2>/dev/null | grep -q "install ok installed" ||
        die "SIEVE=1 needs Pigeonhole: apt-get install dovecot-sieve"
fi
for knob in ROUNDS DURATION MESSAGES_PER_SESSION BENCH_THREADS TOASTER_PORT PEER_PORT LMTP_PORT DRAIN_TIMEOUT; do
    is_uint "${!knob}" && [ "${!knob}" -ge 1 ] || die "$knob='${!knob}' is not a positive integer"
done
if [ -n "$PEER_LMTP_CONCURRENCY" ]; then
    is_uint "$PEER_LMTP_CONCURRENCY" && [ "$PEER_LMTP_CONCURRENCY" -ge 1 ] ||
        die "PEER_LMTP_CONCURRENCY='$PEER_LMTP_CONCURRENCY' is not a positive integer"
fi
PEER_PROCESS_LIMIT=$((max_concurrency + 200 > 100 ? max_concurrency + 200 : 100))
CONNECTIONS_PER_IP=$((max_concurrency + 200 > 64 ? max_concurrency + 200 : 64))

source "$BENCH_DIR/compare_cgroup.sh"
source "$BENCH_DIR/compare_toaster.sh"
source "$BENCH_DIR/compare_peer.sh"
# The same checks on the peer: Rspamd, clamd, Redis and OpenDKIM as milters.
[ "$FILTERS" = 1 ] && source "$BENCH_DIR/compare_peer_filters.sh"
# Both relay to a sink: Postfix alone with an smtp client, toasterd's agent.
[ "$RELAY" = 1 ] && source "$BENCH_DIR/compare_relay.sh"

cleanup() {
    local rc=$?
    IN_CLEANUP=1
    trap - EXIT INT TERM
    if [ -n "$SAMPLER_PID" ]; then
        kill -TERM "$SAMPLER_PID" 2>/dev/null || true
        wait "$SAMPLER_PID" 2>/dev/null || true
    fi
    toaster_kill || true
    peer_kill || true
    [ "$RELAY" = 1 ] && { sink_kill || true; }
    acct_remove_all || true
    if [ -n "$POLICY_RC_CREATED" ]; then
        rm -f "$POLICY_RC_CREATED" || echo "compare: cannot remove $POLICY_RC_CREATED" >&2
    fi
    if [ -n "$WORK" ]; then
        if [ "$KEEP" = 1 ]; then
            echo "compare: kept $WORK" >&2
        else
            rm -rf "$WORK" || echo "compare: cannot remove $WORK" >&2
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
        die "127.0.0.1:$1 is already in use; pick other ports (TOASTER_PORT, PEER_PORT, LMTP_PORT)"
    fi
}

# Move a finished round's store aside instead of deleting it: freeing many
# inodes makes ext4 without a journal skip them as "recently deleted" for
# a minute or more, which would slow the next round's file creation (the
# other server's included). Everything goes when the run ends.
RETIRED=0
retire() {
    local dir
    mkdir -p "$WORK/retired" || die "cannot create $WORK/retired"
    for dir in "$@"; do
        [ -e "$dir" ] || continue
        RETIRED=$((RETIRED + 1))
        mv "$dir" "$WORK/retired/$RETIRED" || die "cannot move $dir aside"
    done
}

# tls_cert_make DIR NAME: a self-signed ECDSA P-256 certificate for NAME in
# DIR/cert.pem and its key in DIR/key.pem (mode 600), as toasterd makes its
# own default, so both servers sign their handshakes alike.
tls_cert_make() {
    local dir=$1 name=$2
    mkdir -p "$dir" && chmod 700 "$dir" || die "cannot create $dir"
    (umask 077 && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -days 30 -subj "/CN=$name" -addext "subjectAltName=DNS:$name" \
        -keyout "$dir/key.pem" -out "$dir/cert.pem") >"$dir/openssl.log" 2>&1 ||
        die "openssl cannot make a certificate in $dir: $(tail -3 "$dir/openssl.log")"
}

# count_maildir DIR: message files in every Maildir's new/ and cur/ below DIR.
count_maildir() {
    [ -d "$1" ] || { echo 0; return 0; }
    find "$1" -type f \( -path '*/Maildir/new/*' -o -path '*/Maildir/cur/*' \) | wc -l
}

# run_one SERVER WORKLOAD ROUND CONCURRENCY SIZE-ARGS...: one workload against
# one freshly started server; appends one JSON line to $WORK/runs.jsonl.
run_one() {
    local server=$1 workload=$2 round=$3 conc=$4
    shift 4
    local run="$WORK/runs/$workload-$server-$round" port rc=0 t0 t_bench t_end
    local cpu0 cpu1 pending delivered hwm="" deadline
    local relay_args=() sink_cpu0=0
    mkdir -p "$run" || die "cannot create $run"
    [ "$server" = toaster ] && port=$TOASTER_PORT || port=$PEER_PORT
    if [ "$RELAY" = 1 ]; then
        sink_start "$run"
        sink_cpu0=$(sink_cpu_ns)
    fi
    "${server}_start"
    # Let start-up work (Postfix's queue check, Dovecot's first processes)
    # settle so the CPU baseline covers only the workload.
    sleep 1
    cpu0=$(acct_cpu_ns "$server")
    [ "$RELAY" = 1 ] && relay_args+=(--machine0 "$(machine_cpu_ticks)")
    # shellcheck disable=SC2046 # the sampler arguments are meant to split
    "$PY" "$BENCH_DIR/compare_sample.py" mem --out "$run/mem.json" $(acct_sampler_args "$server") &
    SAMPLER_PID=$!
    t0=$EPOCHREALTIME
    "$BENCH" smtp --server "127.0.0.1:$port" --connections "$conc" --duration "$DURATION" \
        --messages-per-session "$MESSAGES_PER_SESSION" --threads "$BENCH_THREADS" \
        --pipelining on --rcpt "$RCPT_PATTERN" --users 100 "${BENCH_TLS_ARGS[@]}" "$@" \
        --quiet --json "$run/bench.json" >"$run/bench.out" 2>&1 || rc=$?
    t_bench=$EPOCHREALTIME
    # Exit 1 means some messages failed: a result, shown in the report.
    [ "$rc" -le 1 ] || die "toaster-bench exited $rc: $(tail -5 "$run/bench.out")"
    [ -s "$run/bench.json" ] || die "toaster-bench wrote no $run/bench.json: $(tail -5 "$run/bench.out")"
    [ "$RELAY" = 1 ] && relay_expect "$run/bench.json"
    deadline=$((${t_bench%.*} + DRAIN_TIMEOUT))
    while :; do
        pending=$("${server}_pending") || die "cannot count what $server still has queued"
        [ "$pending" -eq 0 ] && break
        [ "${EPOCHREALTIME%.*}" -lt "$deadline" ] ||
            die "$server still has $pending messages queued ${DRAIN_TIMEOUT}s after the client finished"
        sleep 0.05
    done
    t_end=$EPOCHREALTIME
    [ "$RELAY" = 1 ] && relay_wait_queue "$server"
    cpu1=$(acct_cpu_ns "$server")
    [ "$RELAY" = 1 ] && relay_args+=(--machine1 "$(machine_cpu_ticks)")
    kill -TERM "$SAMPLER_PID" || die "memory sampler (pid $SAMPLER_PID) is gone"
    wait "$SAMPLER_PID" || die "memory sampler failed"
    SAMPLER_PID=""
    [ "$server" = toaster ] && hwm=$(toaster_hwm_kib)
    delivered=$("${server}_delivered")
    "${server}_stop"
    if [ "$RELAY" = 1 ]; then
        relay_args+=(--sink-cpu-ns $(($(sink_cpu_ns) - sink_cpu0)) --sink-messages "$(sink_count)")
        sink_stop
    fi
    "$PY" "$REPORT_PY" record --server "$server" --workload "$workload" \
        --concurrency "$conc" --round "$round" --bench-json "$run/bench.json" --bench-rc "$rc" \
        --mem-json "$run/mem.json" --t0 "$t0" --t-bench "$t_bench" --t-end "$t_end" \
        --cpu0-ns "$cpu0" --cpu1-ns "$cpu1" --delivered "$delivered" ${hwm:+--hwm-kib "$hwm"} \
        --tls "$TLS" "${relay_args[@]}" \
        >>"$WORK/runs.jsonl" || die "run $workload $server round $round does not add up (see above)"
    tail -1 "$WORK/runs.jsonl" | "$PY" "$REPORT_PY" progress
}

# One line per fact about this run, read by compare_report.py (key<TAB>value).
write_meta() {
    local note toaster_v peer_v fs reactors workers
    # Substitutions inside printf's arguments would hide a failure: check here.
    toaster_v=$(toaster_version) || die "$TOASTERD -V failed"
    peer_v=$(peer_version) || die "cannot read the Postfix or Dovecot version"
    fs=$(findmnt -n -o FSTYPE,SOURCE --target "$WORK" | tr -s ' ') || die "findmnt cannot tell the file system of $WORK"
    reactors=$(awk -F' = ' '$1 == "reactor_threads" {print $2}' "$WORK/toaster/effective.conf")
    workers=$(awk -F' = ' '$1 == "worker_threads" {print $2}' "$WORK/toaster/effective.conf")
    [ -n "$reactors" ] && [ -n "$workers" ] || die "no reactor_threads/worker_threads in toasterd -n output"
    {
        printf 'stamp\t%s\n' "$STAMP"
        printf 'date\t%s\n' "$(date -u '+%Y-%m-%d %H:%M UTC')"
        printf 'commit\t%s\n' "$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
        printf 'cpu\t%s\n' "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
        printf 'nproc\t%s\n' "$(nproc)"
        printf 'memory\t%s\n' "$(awk '/^MemTotal:/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)"
        printf 'kernel\t%s\n' "$(uname -r)"
        printf 'filesystem\t%s\n' "$fs"
        printf 'toasterd\t%s\n' "$toaster_v"
        printf 'peer\t%s\n' "$peer_v"
        printf 'command\t%s%s%sROUNDS=%s DURATION=%s CONCURRENCY="%s" MIX_CONCURRENCY=%s SIZE_MIX=%s%s bench/compare.sh\n' \
            "$([ "$RELAY" = 1 ] && echo "RELAY=1 ${RELAY_CONCURRENCY:+RELAY_CONCURRENCY=$RELAY_CONCURRENCY }${RELAY_TOASTER_EXTRA:+RELAY_TOASTER_EXTRA=\"$RELAY_TOASTER_EXTRA\" }$([ "$RELAY_DRAIN" = 0 ] && echo 'RELAY_DRAIN=0 ')$([ "$RELAY_DRAIN" = 1 ] && [ "$DRAIN_MESSAGES" != 20000 ] && echo "DRAIN_MESSAGES=$DRAIN_MESSAGES ")$([ "$SIDES" != 'toaster peer' ] && echo "SIDES=\"$SIDES\" ")")" \
            "$([ "$TLS" = 1 ] && echo 'TLS=1 ')" "$([ "$FILTERS" = 1 ] && echo 'FILTERS=1 ')$([ "$SIEVE" = 1 ] && echo 'SIEVE=1 ')" "$ROUNDS" "$DURATION" "$CONCURRENCY" "$MIX_CONCURRENCY" "$SIZE_MIX" \
            "${PEER_LMTP_CONCURRENCY:+ PEER_LMTP_CONCURRENCY=$PEER_LMTP_CONCURRENCY}"
        printf 'rounds\t%s\n' "$ROUNDS"
        printf 'messages_per_session\t%s\n' "$MESSAGES_PER_SESSION"
        printf 'tls\t%s\n' "$TLS"
        printf 'filters\t%s\n' "$FILTERS"
        printf 'sieve\t%s\n' "$SIEVE"
        printf 'relay\t%s\n' "$RELAY"
        printf 'note\t%s\n' "$ACCT_NOTE"
        if [ "$RELAY" = 1 ]; then
            printf 'note\t%s\n' "toasterd: defaults (fsync on: the queue's message and envelope files are fdatasynced and its directory fsynced before the 250, $reactors reactors, $workers workers, log level info, \`smtp_tls_security = may\`) with \`mynetworks = 127.0.0.0/8\`, \`outbound_delivery = yes\`, \`relay_host = [127.0.0.1]:$SINK_PORT\`, \`smtp_destination_concurrency_limit = ${RELAY_CONCURRENCY:-20}\`${RELAY_CONCURRENCY:+ (default 20)}, filters off (\`clamav\`, \`dkim_verify\`, \`spf\`, \`dmarc\`, \`spam = no\`), \`sieve = no\`, \`max_connections_per_ip = $CONNECTIONS_PER_IP\` (default 64)${RELAY_TOASTER_EXTRA:+; and RELAY_TOASTER_EXTRA: \`$RELAY_TOASTER_EXTRA\`}"
            printf 'note\t%s\n' "The sink: \`$SINK_BIN -4 -a -C -F -c -u nobody -h sink.test -m 1024 127.0.0.1:$SINK_PORT 1024\` (Postfix $(postconf -h mail_version 2>/dev/null || echo '?')'s smtp-sink: one process, one event loop, throws every message away; offers PIPELINING, 8BITMIME, DSN, ENHANCEDSTATUSCODES, no STARTTLS), started fresh for every round, outside both accounting groups; its \`-c\` counter, written to a file, is polled every 50 ms. It runs on the same cores as both relays and toaster-bench."
        elif [ "$FILTERS" = 1 ]; then
            printf 'note\t%s\n' "toasterd: defaults (fsync on, $reactors reactors, $workers workers, log level info; filters on: \`clamav\` (libclamav in process, action reject), \`dkim_verify\`, \`spf\`, \`dmarc\`, \`spam\` with reject 15 / add_header 6 / greylist 4, \`greylist = score\` with loopback exempt, Bayes in its embedded store) except \`max_connections_per_ip = $CONNECTIONS_PER_IP\` (default 64) and \`dns_override_file\` (every name NXDOMAIN)"
        else
            printf 'note\t%s\n' "toasterd: defaults (fsync on, $reactors reactors, $workers workers, log level info) except \`max_connections_per_ip = $CONNECTIONS_PER_IP\` (default 64)"
        fi
        if [ "$SIEVE" = 1 ]; then
            printf 'note\t%s\n' "Sieve on both sides: toasterd \`sieve = yes\`, \`sieve_before = builtin\` (etc/sieve/default.sieve: the user's whitelist and blacklist as extlists address books, spam into Junk; no user has a list file or a script of his own); Dovecot LMTP with Pigeonhole's sieve plugin and \`sieve_before = bench/compare_peer.sieve\` (the same tests without extlists), users without scripts of their own. No message is spam, so both deliver to INBOX after running the script."
        elif [ "$RELAY" != 1 ]; then
            printf 'note\t%s\n' "Sieve off on both sides: toasterd \`sieve = no\`, Dovecot LMTP without Pigeonhole."
        fi
        for note in "${PEER_NOTES[@]}"; do printf 'note\t%s\n' "$note"; done
        if [ "$TLS" = 1 ]; then
            printf 'note\t%s\n' "TLS: toaster-bench \`--starttls\` on every connection to both servers (EHLO, STARTTLS, handshake, EHLO again, then $MESSAGES_PER_SESSION messages encrypted; no session resumption, no certificate check). Each server has its own self-signed ECDSA P-256 certificate made by \`openssl req\` for this run: toasterd through \`tls_cert\`/\`tls_key\` (its TLS settings otherwise at their defaults: TLS 1.2 and 1.3, X25519 first), Postfix through \`smtpd_tls_cert_file\`/\`smtpd_tls_key_file\` with \`smtpd_tls_security_level = may\`, \`smtpd_tls_protocols = >=TLSv1.2\` and a \`tlsmgr\` service (the rest, ciphers and curves included, at Postfix's defaults)."
        fi
        printf 'note\t%s\n' "Both stacks log one line per message to a file. toaster-bench runs on the same machine and cores, outside both groups, with $BENCH_THREADS thread(s)."
        printf 'note\t%s\n' "Memory is sampled from outside the groups every 0.2 s or less often: each of the two sums keeps under 4% of one core, so with hundreds of Postfix processes the Pss sum comes every second or two and the peak may fall between samples. The sampler's own time is in the per-round table."
    } >"$WORK/meta.tsv" || die "cannot write $WORK/meta.tsv"
}

main() {
    local workload name c flag value round port stamp_md stamp_svg side
    [ "$(id -u)" -eq 0 ] || die "run as root: Postfix and Dovecot instances need it"
    [ -x "$TOASTERD" ] && [ -x "$BENCH" ] ||
        die "build first: meson compile -C build (need $TOASTERD and $BENCH)"
    mkdir -p "${WORKDIR:-/tmp}" || die "cannot create ${WORKDIR:-/tmp}"
    WORK=$(mktemp -d "${WORKDIR:-/tmp}/toaster-compare.XXXXXX") || die "mktemp failed"
    # Postfix and Dovecot's mail user must be able to reach their directories.
    chmod 711 "$WORK" || die "cannot chmod $WORK"
    mkdir -p "$OUT" || die "cannot create $OUT"
    STAMP=$(date -u +%Y%m%dT%H%M%SZ)

    # Enough descriptors for 1000 client sockets plus the servers' own.
    ulimit -n "$(ulimit -Hn)" || die "cannot raise the descriptor limit"
    [ "$(ulimit -n)" -ge $((max_concurrency * 2 + 100)) ] ||
        die "descriptor limit $(ulimit -n) is too low for $max_concurrency connections"

    peer_install
    for port in $(toaster_ports) $(peer_ports) $([ "$RELAY" = 1 ] && echo "$SINK_PORT"); do port_free "$port"; done
    acct_detect
    if [ "$TLS" = 1 ]; then
        tls_cert_make "$WORK/toaster/tls" toaster.bench.example.test
        tls_cert_make "$WORK/postfix/tls" peer.bench.example.test
    fi
    toaster_prepare
    peer_prepare
    write_meta

    local workloads=()
    for c in $CONCURRENCY; do workloads+=("c$c:$c:--size:$SIZE"); done
    [ -n "$MIX_CONCURRENCY" ] && workloads+=("mix$MIX_CONCURRENCY:$MIX_CONCURRENCY:--size-mix:$SIZE_MIX")
    for workload in "${workloads[@]}"; do
        IFS=: read -r name c flag value <<<"$workload"
        # The size mix holds colons itself, so take everything after the flag.
        value=${workload#*:*:*:}
        for round in $(seq 1 "$ROUNDS"); do
            # RELAY=1: first what the sink takes with no relay in front of it.
            [ "$RELAY" = 1 ] && relay_sink_alone "$round" "$c" "$flag" "$value"
            for side in $SIDES; do
                run_one "$side" "$name" "$round" "$c" "$flag" "$value"
            done
        done
    done

    # RELAY=1: the delivery side alone, a held queue let go.
    if [ "$RELAY" = 1 ] && [ "$RELAY_DRAIN" = 1 ]; then
        for round in $(seq 1 "$ROUNDS"); do
            for side in $SIDES; do
                relay_drain_one "$side" "$round"
            done
        done
    fi

    stamp_md="$OUT/$REPORT_NAME-$STAMP.md"
    stamp_svg="$OUT/$REPORT_NAME-$STAMP.svg"
    local report_args=()
    [ "$RELAY" = 1 ] && report_args=(--sink-runs "$WORK/sink.jsonl")
    [ "$RELAY" = 1 ] && [ "$RELAY_DRAIN" = 1 ] && report_args+=(--drain-runs "$WORK/drain.jsonl")
    "$PY" "$REPORT_PY" report --runs "$WORK/runs.jsonl" --meta "$WORK/meta.tsv" "${report_args[@]}" \
        --md "$stamp_md" --svg "$stamp_svg" || die "$REPORT_PY could not write the report"
    # The latest report shows the latest chart, whatever its stamp was.
    sed "s/$REPORT_NAME-$STAMP\.svg/$REPORT_NAME-latest.svg/" "$stamp_md" >"$OUT/$REPORT_NAME-latest.md" &&
        cp "$stamp_svg" "$OUT/$REPORT_NAME-latest.svg" ||
        die "cannot copy the report to $OUT/$REPORT_NAME-latest.*"
    echo "compare: wrote $stamp_md and $stamp_svg (also $REPORT_NAME-latest.*)" >&2
    if [ "$IMAP" != 0 ]; then
        ROUNDS="$ROUNDS" DURATION="$DURATION" OUT="$OUT" WORKDIR="${WORKDIR:-/tmp}" \
            TOASTERD="$TOASTERD" BENCH="$BENCH" CONCURRENCY="${IMAP_CONCURRENCY:-10 100}" \
            "$BENCH_DIR/compare_imap.sh" ||
            die "compare_imap.sh failed"
        imap_section >>"$stamp_md" && imap_section >>"$OUT/$REPORT_NAME-latest.md" ||
            die "cannot add the IMAP table to the report"
    fi
}

# The IMAP comparison's main table, from its latest report.
imap_section() {
    local report="$OUT/compare-imap-latest.md"
    [ -f "$report" ] || return 1
    echo
    echo "## IMAP beside Dovecot"
    echo
    echo "From \`bench/compare_imap.sh\` ([its report](compare-imap-latest.md): data, mix, per-command latency)."
    echo
    awk '/^\| workload \| conns/ { on = 1 } on && /^$/ { exit } on { print }' "$report"
}

main "$@"
