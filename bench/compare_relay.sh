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
# sink (relayhost), and the only way out: it has nowhere else to go. pickup
# (idle: nothing is submitted locally) is there because postqueue -f, used
# by the drain, refuses to run without it.
peer_write_master_cf() {
    cat <<EOF
# written by bench/compare.sh (RELAY=1)
# service type  private unpriv  chroot  wakeup  maxproc command
127.0.0.1:$PEER_PORT inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
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

# Entries in toasterd's outbound queue: one <id>.msg each (the envelope is
# its attribute, or <id>.env beside it).
toaster_queued() {
    find "$WORK/toaster/data/queue" -maxdepth 1 -name '*.msg' 2>/dev/null | wc -l
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

# relay_wait_queue SERVER [_all]: after the sink has all, until the relay's
# queue is empty too (it removes each entry after the sink's 250), so that
# its CPU covers the whole of the work. _all counts deferred files too.
relay_wait_queue() {
    local server=$1 which=${2:-} queued deadline=$((${EPOCHREALTIME%.*} + 60))
    while :; do
        queued=$("${server}_queued$which") || die "cannot count $server's queue"
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

# ---- the queue drained alone (RELAY_DRAIN=1) ---------------------------------
#
# The relay's delivery side without its SMTP server at work: DRAIN_MESSAGES
# are accepted with delivery held (toasterd: outbound_delivery = no, as
# Postfix's defer_transports = smtp; Postfix: defer_transports = smtp), then
# the sink is started and delivery let go (toasterd: restarted with
# outbound_delivery = yes and `toasterctl queue flush`; Postfix: reload
# without defer_transports and postqueue -f). Throughput: messages over the time from
# letting go until the sink has them all; CPU from letting go until the
# queue is empty, restart or reload included.

RELAY_DRAIN=${RELAY_DRAIN:-1}
DRAIN_MESSAGES=${DRAIN_MESSAGES:-20000}
DRAIN_FILL_CONCURRENCY=${DRAIN_FILL_CONCURRENCY:-100}
TOASTERCTL=${TOASTERCTL:-$(dirname "$TOASTERD")/toasterctl}
[ "$RELAY_DRAIN" = 0 ] || [ "$RELAY_DRAIN" = 1 ] || die "RELAY_DRAIN='$RELAY_DRAIN' is neither 0 nor 1"
is_uint "$DRAIN_MESSAGES" && [ "$DRAIN_MESSAGES" -ge 100 ] || die "DRAIN_MESSAGES='$DRAIN_MESSAGES' is not 100 or more"
is_uint "$DRAIN_FILL_CONCURRENCY" && [ "$DRAIN_FILL_CONCURRENCY" -ge 1 ] ||
    die "DRAIN_FILL_CONCURRENCY='$DRAIN_FILL_CONCURRENCY' is not a positive integer"
[ "$RELAY_DRAIN" = 0 ] || [ -x "$TOASTERCTL" ] || die "RELAY_DRAIN=1 needs $TOASTERCTL (TOASTERCTL=...)"

# relay_toaster_launch CONF: toasterd on its existing data_dir (no retire).
relay_toaster_launch() {
    local conf=$1
    (
        acct_join toaster
        exec "$TOASTERD" -c "$conf" 2>>"$WORK/toaster/toasterd.log"
    ) &
    TOASTER_PID=$!
    acct_add_root toaster "$TOASTER_PID"
    wait_port "$TOASTER_PORT" toasterd "$WORK/toaster/toasterd.log"
}

toaster_hold_start() {
    { cat "$WORK/toaster/toasterd.conf" && echo "outbound_delivery = no"; } >"$WORK/toaster/toasterd-hold.conf" ||
        die "cannot write $WORK/toaster/toasterd-hold.conf"
    retire "$WORK/toaster/data"
    mkdir "$WORK/toaster/data" || die "cannot create $WORK/toaster/data"
    relay_toaster_launch "$WORK/toaster/toasterd-hold.conf"
}

# toaster_hold_wait N: every accepted message is in the queue (its 250 came
# after the entry was synced, so this holds at once).
toaster_hold_wait() {
    local queued
    queued=$(toaster_queued)
    [ "$queued" -eq "$1" ] || die "toasterd holds $queued queue entries, $1 were accepted"
}

# Restarted with delivery on, then flushed like Postfix (postqueue -f): the
# start-up queue scan alone does not wake the agent before queue_retry_min.
toaster_release() {
    local i
    toaster_stop
    relay_toaster_launch "$WORK/toaster/toasterd.conf"
    for i in $(seq 50); do
        "$TOASTERCTL" -c "$WORK/toaster/toasterd.conf" queue flush >>"$WORK/toaster/flush.log" 2>&1 && return 0
        sleep 0.02
    done
    die "toasterctl queue flush failed: $(tail -3 "$WORK/toaster/flush.log")"
}

toaster_queued_all() {
    toaster_queued
}

peer_hold_start() {
    { peer_write_main_cf && echo "defer_transports = smtp"; } >"$WORK/postfix/etc/main.cf" ||
        die "cannot write $WORK/postfix/etc/main.cf"
    peer_start
}

# Every queue file of Postfix, deferred ones too (no verdict on them).
peer_queued_all() {
    local q="$WORK/postfix/queue"
    find "$q/maildrop" "$q/incoming" "$q/active" "$q/deferred" "$q/hold" -type f 2>/dev/null | wc -l
}

# peer_hold_wait N: until the queue manager has deferred all N (defer_transports).
peer_hold_wait() {
    local n=$1 q="$WORK/postfix/queue" deferred moving deadline=$((${EPOCHREALTIME%.*} + DRAIN_TIMEOUT))
    while :; do
        deferred=$(find "$q/deferred" -type f 2>/dev/null | wc -l)
        moving=$(find "$q/maildrop" "$q/incoming" "$q/active" -type f 2>/dev/null | wc -l)
        [ "$deferred" -eq "$n" ] && [ "$moving" -eq 0 ] && return 0
        [ "$deferred" -le "$n" ] || die "postfix has $deferred deferred messages, $n were accepted"
        [ "${EPOCHREALTIME%.*}" -lt "$deadline" ] ||
            die "postfix has $deferred of $n messages deferred (and $moving on the way) after ${DRAIN_TIMEOUT}s"
        sleep 0.1
    done
}

peer_release() {
    peer_write_main_cf >"$WORK/postfix/etc/main.cf" || die "cannot write $WORK/postfix/etc/main.cf"
    postfix -c "$WORK/postfix/etc" reload >>"$WORK/postfix/start.log" 2>&1 ||
        die "postfix reload failed: $(tail -3 "$WORK/postfix/start.log")"
    postqueue -c "$WORK/postfix/etc" -f >>"$WORK/postfix/start.log" 2>&1 ||
        die "postqueue -f failed: $(tail -3 "$WORK/postfix/start.log")"
}

# relay_drain_one SERVER ROUND: one drain of DRAIN_MESSAGES; appends a JSON
# line to $WORK/drain.jsonl.
relay_drain_one() {
    local server=$1 round=$2 rc=0 port accepted t0 t_end cpu0 cpu1 m0 m1 sink_cpu0 sink_cpu1 got deadline pending
    local run="$WORK/runs/drain-$server-$round"
    mkdir -p "$run" || die "cannot create $run"
    [ "$server" = toaster ] && port=$TOASTER_PORT || port=$PEER_PORT
    "${server}_hold_start"
    "$BENCH" smtp --server "127.0.0.1:$port" --connections "$DRAIN_FILL_CONCURRENCY" \
        --count "$DRAIN_MESSAGES" --messages-per-session "$MESSAGES_PER_SESSION" \
        --threads "$BENCH_THREADS" --pipelining on --rcpt "$RCPT_PATTERN" --users 100 --size "$SIZE" \
        --quiet --json "$run/fill.json" >"$run/fill.out" 2>&1 || rc=$?
    [ "$rc" -eq 0 ] || die "filling $server's queue: toaster-bench exited $rc: $(tail -5 "$run/fill.out")"
    accepted=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["messages"])' "$run/fill.json") ||
        die "no message count in $run/fill.json"
    [ "$accepted" -eq "$DRAIN_MESSAGES" ] || die "$server accepted $accepted of $DRAIN_MESSAGES"
    "${server}_hold_wait" "$accepted"
    sleep 1
    sink_start "$run"
    sink_cpu0=$(sink_cpu_ns)
    RELAY_EXPECTED=$accepted
    cpu0=$(acct_cpu_ns "$server")
    m0=$(machine_cpu_ticks)
    t0=$EPOCHREALTIME
    "${server}_release"
    deadline=$((${t0%.*} + DRAIN_TIMEOUT))
    while :; do
        pending=$(relay_pending)
        [ "$pending" -eq 0 ] && break
        [ "${EPOCHREALTIME%.*}" -lt "$deadline" ] ||
            die "$server: the sink has $(sink_count) of $accepted ${DRAIN_TIMEOUT}s after delivery was let go"
        sleep 0.05
    done
    t_end=$EPOCHREALTIME
    relay_wait_queue "$server" _all
    cpu1=$(acct_cpu_ns "$server")
    m1=$(machine_cpu_ticks)
    sink_cpu1=$(sink_cpu_ns)
    got=$(sink_count)
    "${server}_stop"
    sink_stop
    "$PY" "$BENCH_DIR/compare_relay_report.py" drain-record --server "$server" --round "$round" \
        --fill-json "$run/fill.json" --fill-concurrency "$DRAIN_FILL_CONCURRENCY" --sink-messages "$got" --t0 "$t0" --t-end "$t_end" \
        --cpu0-ns "$cpu0" --cpu1-ns "$cpu1" --sink-cpu-ns $((sink_cpu1 - sink_cpu0)) \
        --machine0 "$m0" --machine1 "$m1" >>"$WORK/drain.jsonl" ||
        die "drain $server round $round does not add up (see above)"
    tail -1 "$WORK/drain.jsonl" | "$PY" "$BENCH_DIR/compare_relay_report.py" drain-progress
}
