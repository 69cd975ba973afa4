# bench/compare_relay.sh - sourced by compare.sh after compare_toaster.sh and
# compare_peer.sh when RELAY=1: both servers relay instead of delivering.
# toaster-bench sends every message to user<N>@sink.test from 127.0.0.1 (in
# both servers' mynetworks); each server queues it (durably: Postfix's
# cleanup fsyncs the queue file, toasterd has fsync = yes) and its own SMTP
# client passes it on to the same sink, Postfix's smtp-sink(1) from the
# postfix package: one process, one event loop, no disk, nothing stored.
# Its -c counter (one "sess=S quit=Q mesg=M\r" record written to a file for
# every message and session end) says how many messages arrived.
#
# A run ends when the sink has counted as many messages as toaster-bench
# had accepted (throughput: that count over the time from the client's
# start); the CPU of the relay is read once its queue is empty too, so the
# removal of the queue files is in it. The sink is started fresh for every
# round, outside both accounting groups, and its own CPU is recorded beside
# each round. relay_sink_alone measures the sink with toaster-bench alone at
# the same concurrencies, to show it is not what limits either relay.
#
# This file redefines the peer_* functions of compare_peer.sh (Postfix alone,
# with an smtp client and relayhost, no Dovecot) and wraps toaster_prepare
# and the toaster_pending/_delivered of compare_toaster.sh.
# shellcheck shell=bash disable=SC2015,SC2034 # 'a && b || die' is meant: die when either fails; compare.sh reads the variables set here

SINK_PORT=${SINK_PORT:-2626}
SINK_BIN=${SINK_BIN:-/usr/sbin/smtp-sink}
# Parallel sessions from each relay to the sink: both default to 20
# (Postfix's default_destination_concurrency_limit, toasterd's
# smtp_destination_concurrency_limit); RELAY_CONCURRENCY=N sets both.
RELAY_CONCURRENCY=${RELAY_CONCURRENCY:-}
# Extra toasterd settings for experiments, "key = value; key = value"; the
# report lists them.
RELAY_TOASTER_EXTRA=${RELAY_TOASTER_EXTRA:-}
SINK_PID=""
SINK_DIR=""
RELAY_EXPECTED=""
RCPT_PATTERN='user%d@sink.test'

is_uint "$SINK_PORT" && [ "$SINK_PORT" -ge 1 ] && [ "$SINK_PORT" -le 65535 ] ||
    die "SINK_PORT='$SINK_PORT' is not a port"
if [ -n "$RELAY_CONCURRENCY" ]; then
    is_uint "$RELAY_CONCURRENCY" && [ "$RELAY_CONCURRENCY" -ge 1 ] && [ "$RELAY_CONCURRENCY" -le 1000 ] ||
        die "RELAY_CONCURRENCY='$RELAY_CONCURRENCY' is not 1..1000"
fi
[ -x "$SINK_BIN" ] || die "no $SINK_BIN (it comes with Debian's postfix package)"

PEER_NOTES=(
    "Postfix: smtpd, cleanup, qmgr, trivial-rewrite and the smtp client, nothing else (no Dovecot, no milters); \`relayhost = [127.0.0.1]:$SINK_PORT\`, \`mynetworks = 127.0.0.0/8\`, no local or virtual domains, so every message is relayed; \`smtp_destination_concurrency_limit = ${RELAY_CONCURRENCY:-20}\`${RELAY_CONCURRENCY:+ (default 20)}; TLS off on both sides of Postfix (its default at compatibility level 3.6; the sink offers no STARTTLS anyway)"
    "Postfix: \`default_process_limit = $PEER_PROCESS_LIMIT\` (default 100) so smtpd and cleanup can each have one process per connection at $max_concurrency connections; \`smtpd_client_connection_count_limit = 0\`, \`smtpd_client_connection_rate_limit = 0\`, \`smtpd_peername_lookup = no\`, \`smtp_dns_support_level = disabled\`, \`smtp_host_lookup = native\`; no chroot; queue-file fsync, \`in_flow_delay = 1s\`, the connection cache (on demand) and the qmgr's concurrency window at their defaults"
)

# peer_install: Postfix only (the sink comes with it).
peer_install() {
    local missing=()
    [ -x /usr/sbin/postfix ] || missing+=(postfix)
    peer_apt_install "${missing[@]}"
    [ -x "$SINK_BIN" ] || die "no $SINK_BIN after installing postfix"
}

peer_prepare() {
    local etc="$WORK/postfix/etc"
    mkdir -p "$etc" || die "cannot create $etc"
    peer_write_main_cf >"$etc/main.cf" || die "cannot write $etc/main.cf"
    peer_write_master_cf >"$etc/master.cf" || die "cannot write $etc/master.cf"
    postconf -c "$etc" -n >"$etc/effective.cf" 2>"$etc/postconf.err" ||
        die "postconf refuses $etc/main.cf: $(cat "$etc/postconf.err")"
    if grep -q . "$etc/postconf.err"; then
        die "postconf warns about $etc/main.cf: $(cat "$etc/postconf.err")"
    fi
    acct_create peer
}

peer_write_main_cf() {
    cat <<EOF
# written by bench/compare.sh (RELAY=1): a private relaying instance on 127.0.0.1
compatibility_level = 3.6
queue_directory = $WORK/postfix/queue
data_directory = $WORK/postfix/data
mail_owner = postfix
setgid_group = postdrop
myhostname = peer.bench.example.test
mydomain = bench.example.test
myorigin = \$myhostname
mydestination =
relay_domains =
local_recipient_maps =
alias_maps =
alias_database =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
relayhost = [127.0.0.1]:$SINK_PORT
message_size_limit = 52428800
default_process_limit = $PEER_PROCESS_LIMIT
smtpd_client_connection_count_limit = 0
smtpd_client_connection_rate_limit = 0
smtpd_peername_lookup = no
smtp_dns_support_level = disabled
smtp_host_lookup = native
biff = no
maillog_file = $WORK/postfix/postfix.log
maillog_file_prefixes = $WORK/postfix
EOF
    if [ -n "$RELAY_CONCURRENCY" ]; then
        echo "smtp_destination_concurrency_limit = $RELAY_CONCURRENCY"
    fi
}

# The relay path only, none chrooted; smtp is the client that talks to the
# sink (relayhost), and the only way out: it has nowhere else to go.
peer_write_master_cf() {
    cat <<EOF
# written by bench/compare.sh (RELAY=1)
# service type  private unpriv  chroot  wakeup  maxproc command
127.0.0.1:$PEER_PORT inet n - n - - smtpd
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
EOF
}

peer_ports() {
    echo "$PEER_PORT"
}

# Fresh queue and data directory, then Postfix in its group.
peer_start() {
    retire "$WORK/postfix/queue" "$WORK/postfix/data"
    mkdir -p "$WORK/postfix/queue" || die "cannot create $WORK/postfix/queue"
    PEER_RUNNING=1
    (
        acct_join peer
        exec postfix -c "$WORK/postfix/etc" start
    ) >>"$WORK/postfix/start.log" 2>&1 ||
        die "postfix did not start: $(tail -5 "$WORK/postfix/start.log")"
    local postfix_pid
    postfix_pid=$(head -1 "$WORK/postfix/queue/pid/master.pid" | tr -d ' ') || die "postfix wrote no master.pid"
    acct_add_root peer "$postfix_pid"
    wait_port "$PEER_PORT" "postfix smtpd" "$WORK/postfix/postfix.log"
}

# Files still in Postfix's queue; a deferred message fails the run at once
# (the sink accepts everything, so a deferral is a fault of the set-up).
peer_queued() {
    local q="$WORK/postfix/queue" deferred
    deferred=$(find "$q/deferred" -type f 2>/dev/null | wc -l)
    if [ "$deferred" -gt 0 ]; then
        grep 'status=deferred' "$WORK/postfix/postfix.log" | tail -3 >&2
        die "postfix deferred $deferred messages; see $WORK/postfix/postfix.log (KEEP=1 keeps it)"
    fi
    find "$q/maildrop" "$q/incoming" "$q/active" "$q/hold" -type f 2>/dev/null | wc -l
}

peer_pending() {
    relay_pending
}

peer_delivered() {
    sink_count
}

peer_stop() {
    [ -n "$PEER_RUNNING" ] || return 0
    postfix -c "$WORK/postfix/etc" stop >>"$WORK/postfix/start.log" 2>&1 ||
        die "postfix stop failed: $(tail -3 "$WORK/postfix/start.log")"
    acct_wait_empty peer 30
    PEER_RUNNING=""
}

peer_kill() {
    [ -n "$PEER_RUNNING" ] || return 0
    postfix -c "$WORK/postfix/etc" stop >>"$WORK/postfix/start.log" 2>&1 || true
    acct_wait_empty peer 30
    PEER_RUNNING=""
}

peer_version() {
    local postfix_v
    postfix_v=$(postconf -c "$WORK/postfix/etc" -h mail_version) || return 1
    echo "Postfix $postfix_v (smtpd → qmgr → smtp client)"
}

# toasterd: compare_toaster.sh's configuration plus the relay's keys.
eval "relay_toaster_prepare_inbound() $(declare -f toaster_prepare | tail -n +2)"
toaster_prepare() {
    relay_toaster_prepare_inbound
    {
        echo "# RELAY=1: every message goes on to the sink"
        echo "mynetworks = 127.0.0.0/8"
        echo "outbound_delivery = yes"
        echo "relay_host = [127.0.0.1]:$SINK_PORT"
        echo "spam = no"
        if [ -n "$RELAY_CONCURRENCY" ]; then
            echo "smtp_destination_concurrency_limit = $RELAY_CONCURRENCY"
        fi
        if [ -n "$RELAY_TOASTER_EXTRA" ]; then
            echo "# RELAY_TOASTER_EXTRA"
            tr ';' '\n' <<<"$RELAY_TOASTER_EXTRA" | sed 's/^ *//; s/ *$//' | grep .
        fi
    } >>"$WORK/toaster/toasterd.conf" || die "cannot write $WORK/toaster/toasterd.conf"
    "$TOASTERD" -n -c "$WORK/toaster/toasterd.conf" >"$WORK/toaster/effective.conf" ||
        die "toasterd refuses the relay keys in $WORK/toaster/toasterd.conf"
}

# Entries still in toasterd's outbound queue (data_dir/queue/<id>.env).
toaster_queued() {
    find "$WORK/toaster/data/queue" -maxdepth 1 -name '*.env' 2>/dev/null | wc -l
}

toaster_pending() {
    relay_pending
}

toaster_delivered() {
    sink_count
}

# ---- the sink ----------------------------------------------------------------

# sink_start DIR: a fresh smtp-sink on 127.0.0.1:SINK_PORT counting into
# DIR/sink.count. -a -C -F: no AUTH, XCLIENT or XFORWARD offered, a plain
# SMTP server with PIPELINING, 8BITMIME, DSN and ENHANCEDSTATUSCODES.
sink_start() {
    local dir=$1
    SINK_DIR=$dir
    : >"$dir/sink.count" || die "cannot create $dir/sink.count"
    "$SINK_BIN" -4 -a -C -F -c -u nobody -h sink.test -m 1024 "127.0.0.1:$SINK_PORT" 1024 \
        >"$dir/sink.count" 2>"$dir/sink.err" &
    SINK_PID=$!
    wait_port "$SINK_PORT" smtp-sink "$dir/sink.err"
}

# sink_count: messages the sink has counted so far (its last complete record).
sink_count() {
    local data record
    data=$(tail -c 128 "$SINK_DIR/sink.count") || die "cannot read $SINK_DIR/sink.count"
    [[ "$data" == *$'\r'* ]] || { echo 0; return 0; }
    data=${data%$'\r'*}
    record=${data##*$'\r'}
    [[ "$record" =~ mesg=([0-9]+) ]] || die "smtp-sink counter record '$record' has no mesg="
    echo "${BASH_REMATCH[1]}"
}

# sink_cpu_ns: the sink's user+system CPU so far.
sink_cpu_ns() {
    local fields ticks
    read -r -a fields <<<"$(sed 's/.*) //' "/proc/$SINK_PID/stat")" || die "smtp-sink (pid $SINK_PID) is gone"
    ticks=$((fields[11] + fields[12]))
    echo $((ticks * 1000000000 / $(getconf CLK_TCK)))
}

sink_stop() {
    [ -n "$SINK_PID" ] || return 0
    kill -TERM "$SINK_PID" 2>/dev/null || die "smtp-sink (pid $SINK_PID) died during the run: $(tail -3 "$SINK_DIR/sink.err")"
    wait "$SINK_PID" 2>/dev/null || true
    SINK_PID=""
}

sink_kill() {
    [ -n "$SINK_PID" ] || return 0
    kill -TERM "$SINK_PID" 2>/dev/null || true
    wait "$SINK_PID" 2>/dev/null || true
    SINK_PID=""
}

# ---- the run -----------------------------------------------------------------

# machine_cpu_ticks: "BUSY TOTAL" clock ticks of all cores since boot from
# /proc/stat (busy: user, nice, system, irq, softirq, steal; total adds idle
# and iowait), to tell how much else ran on the machine during a round.
machine_cpu_ticks() {
    awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8 + $9, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9 }' /proc/stat
}

# relay_expect BENCH_JSON: the run is over when the sink has this many.
relay_expect() {
    RELAY_EXPECTED=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["messages"])' "$1") ||
        die "no message count in $1"
}

# relay_pending: accepted messages the sink has not counted yet (0 once it
# has all, or more: the record step then reports the difference).
relay_pending() {
    local got
    [ -n "$RELAY_EXPECTED" ] || die "relay_pending before relay_expect"
    got=$(sink_count)
    [ "$got" -ge "$RELAY_EXPECTED" ] && { echo 0; return 0; }
    echo $((RELAY_EXPECTED - got))
}

# relay_wait_queue SERVER: after the sink has all, until the relay's queue is
# empty too (it removes each entry after the sink's 250), so that its CPU
# covers the whole of the work.
relay_wait_queue() {
    local server=$1 queued deadline=$((${EPOCHREALTIME%.*} + 60))
    while :; do
        queued=$("${server}_queued") || die "cannot count $server's queue"
        [ "$queued" -eq 0 ] && return 0
        [ "${EPOCHREALTIME%.*}" -lt "$deadline" ] ||
            die "$server still has $queued queue files 60 s after the sink had every message"
        sleep 0.05
    done
}

# relay_sink_alone ROUND CONCURRENCY SIZE-ARGS...: toaster-bench straight to the
# sink, the same workload, to show what the sink takes without a relay.
relay_sink_alone() {
    local round=$1 conc=$2 rc=0 cpu0 cpu1 got
    shift 2
    local run="$WORK/runs/sink-c$conc-$round"
    mkdir -p "$run" || die "cannot create $run"
    sink_start "$run"
    cpu0=$(sink_cpu_ns)
    "$BENCH" smtp --server "127.0.0.1:$SINK_PORT" --connections "$conc" --duration "$DURATION" \
        --messages-per-session "$MESSAGES_PER_SESSION" --threads "$BENCH_THREADS" \
        --pipelining on --rcpt "$RCPT_PATTERN" --users 100 "$@" \
        --quiet --json "$run/bench.json" >"$run/bench.out" 2>&1 || rc=$?
    [ "$rc" -le 1 ] || die "toaster-bench to the sink exited $rc: $(tail -5 "$run/bench.out")"
    sleep 0.2
    cpu1=$(sink_cpu_ns)
    got=$(sink_count)
    sink_stop
    "$PY" "$BENCH_DIR/compare_relay_report.py" sink-record --bench-json "$run/bench.json" \
        --concurrency "$conc" --round "$round" --sink-messages "$got" \
        --sink-cpu-ns $((cpu1 - cpu0)) >>"$WORK/sink.jsonl" ||
        die "sink-alone run c$conc round $round does not add up (see above)"
    tail -1 "$WORK/sink.jsonl" | "$PY" "$BENCH_DIR/compare_relay_report.py" sink-progress
}
