# bench/compare_peer_filters.sh - sourced by compare.sh after
# compare_peer.sh when FILTERS=1: the peer gets the checks toasterd runs
# with its filters on. Postfix hands every message, before it answers the
# end of DATA, to two milters: Rspamd's proxy worker (spam scoring with
# SPF, DKIM and DMARC results, greylisting, ratelimit and Bayes in Redis,
# ClamAV through clamd) and OpenDKIM (DKIM verification, an
# Authentication-Results field); then Dovecot LMTP delivers, as without
# filters.
#
# Every daemon is a private instance of the Debian package: its own config,
# data and log under $WORK, listening on 127.0.0.1 high ports (FILTER_PORT
# and the next six; OpenDKIM on a Unix socket there, see OPENDKIM_INET), started in the foreground as a child of this script in
# the peer's accounting group (so its CPU and memory count for the peer) and
# stopped with the peer, every round. Nothing is read from or written to
# /etc/rspamd/local.d, /etc/clamav or /etc/opendkim.conf, and systemctl is
# never used:
#   unbound   the DNS server for Rspamd: `local-zone: "."
#             always_nxdomain`, so every name is NXDOMAIN as in toasterd's
#             override zone and no query leaves the machine;
#   redis     --save "" --appendonly no, empty at every start (toasterd
#             starts on a fresh data_dir every round too);
#   clamd     TCP on 127.0.0.1, loading the same signature files as
#             toasterd: the database toasterd logs it loaded (its shipped
#             toaster.ndb and toaster.hdb, written to <data_dir>/clamav/,
#             copied once after toasterd's first start; or the system or
#             configured directory if toasterd used that);
#   rspamd    Debian's /etc/rspamd configuration under our own top level
#             (our sockets) and our local.d; workers as _rspamd;
#   opendkim  Mode sv, no keys, every client external, so it verifies.
# Debian packages installed when missing: rspamd, clamav-daemon, opendkim,
# redis-server, unbound.
# shellcheck shell=bash disable=SC2015,SC2034,SC2154 # 'a && b || die' is meant: die when either fails; compare.sh reads the variables set here, and max_concurrency, WORK and the rest come from compare.sh

FILTER_PORT=${FILTER_PORT:-2630}
# 1: clamd and Rspamd log every clean scan too (for checking a short run).
FILTERS_LOG_CLEAN=${FILTERS_LOG_CLEAN:-0}
# Rspamd's scanner (normal worker) processes: empty gives it as many as
# toasterd has worker threads (worker_threads: those run its filters);
# "default" leaves Rspamd's own default, cores - 2 and at least 1, which
# is one scanner on a 2-core machine.
RSPAMD_WORKERS=${RSPAMD_WORKERS:-}
RSPAMD_WORKERS_WHY="RSPAMD_WORKERS"
if [ -n "$RSPAMD_WORKERS" ] && [ "$RSPAMD_WORKERS" != default ]; then
    is_uint "$RSPAMD_WORKERS" && [ "$RSPAMD_WORKERS" -ge 1 ] ||
        die "RSPAMD_WORKERS='$RSPAMD_WORKERS' is neither a positive integer nor 'default'"
fi
is_uint "$FILTER_PORT" && [ "$FILTER_PORT" -ge 1 ] && [ "$FILTER_PORT" -le 65529 ] ||
    die "FILTER_PORT='$FILTER_PORT' is not a port from 1 to 65529"
DNS_PORT=$FILTER_PORT
REDIS_PORT=$((FILTER_PORT + 1))
CLAMD_PORT=$((FILTER_PORT + 2))
RSPAMD_PROXY_PORT=$((FILTER_PORT + 3))
RSPAMD_NORMAL_PORT=$((FILTER_PORT + 4))
RSPAMD_CONTROLLER_PORT=$((FILTER_PORT + 5))
OPENDKIM_PORT=$((FILTER_PORT + 6))
# OpenDKIM's milter socket: a Unix socket (Debian's default for it) unless
# OPENDKIM_INET=1 puts it on 127.0.0.1:OPENDKIM_PORT. Over TCP each message
# waits about 40 ms more: libmilter sends its end-of-message replies (the
# Authentication-Results insert, then accept) in separate writes without
# TCP_NODELAY, so the second waits for Postfix's delayed ACK (measured
# here: 44 ms per message at any load, 106 msgs/s at 10 connections with
# OpenDKIM alone, at under half the CPU).
OPENDKIM_INET=${OPENDKIM_INET:-0}
[ "$OPENDKIM_INET" = 0 ] || [ "$OPENDKIM_INET" = 1 ] || die "OPENDKIM_INET='$OPENDKIM_INET' is neither 0 nor 1"

# name -> pid of each filter daemon running now (empty when stopped).
declare -A FILTER_PIDS=()
FILTER_CLAMAV_DB=""

# The plain peer's functions stay reachable as peer_base_*; the ones below
# wrap them.
for fn in peer_install peer_prepare peer_write_main_cf peer_ports peer_start peer_stop peer_kill peer_version; do
    eval "$(declare -f "$fn" | sed "1s/^$fn /peer_base_${fn#peer_} /")"
done
unset fn

# ---- install ---------------------------------------------------------------

peer_install() {
    local missing=()
    peer_base_install
    [ -x /usr/bin/rspamd ] || missing+=(rspamd)
    [ -x /usr/sbin/clamd ] || missing+=(clamav-daemon)
    [ -x /usr/sbin/opendkim ] || missing+=(opendkim)
    [ -x /usr/bin/redis-server ] || missing+=(redis-server)
    [ -x /usr/sbin/unbound ] || missing+=(unbound)
    peer_apt_install "${missing[@]}"
}

# ---- configuration ---------------------------------------------------------

peer_write_main_cf() {
    peer_base_write_main_cf || return 1
    cat <<EOF
smtpd_milters = inet:127.0.0.1:$RSPAMD_PROXY_PORT, $(filters_opendkim_milter)
non_smtpd_milters =
milter_protocol = 6
milter_default_action = tempfail
milter_mail_macros = i {mail_addr} {client_addr} {client_name} {auth_authen}
EOF
}

peer_prepare() {
    local dir
    peer_base_prepare
    if [ -z "$RSPAMD_WORKERS" ]; then
        RSPAMD_WORKERS=$(awk -F' = ' '$1 == "worker_threads" {print $2}' "$WORK/toaster/effective.conf")
        is_uint "$RSPAMD_WORKERS" && [ "$RSPAMD_WORKERS" -ge 1 ] ||
            die "no worker_threads in $WORK/toaster/effective.conf for Rspamd's scanner count"
        RSPAMD_WORKERS_WHY="as many as toasterd's worker_threads"
    fi
    filters_notes
    for dir in unbound redis clamd/db rspamd/etc/local.d rspamd/db rspamd/run rspamd/log opendkim; do
        mkdir -p "$WORK/$dir" || die "cannot create $WORK/$dir"
    done
    filters_write_unbound >"$WORK/unbound/unbound.conf" || die "cannot write $WORK/unbound/unbound.conf"
    unbound-checkconf "$WORK/unbound/unbound.conf" >"$WORK/unbound/checkconf.log" 2>&1 ||
        die "unbound refuses its config: $(tail -3 "$WORK/unbound/checkconf.log")"
    filters_write_clamd >"$WORK/clamd/clamd.conf" || die "cannot write $WORK/clamd/clamd.conf"
    filters_write_opendkim || die "cannot write $WORK/opendkim's config"
    filters_write_rspamd || die "cannot write $WORK/rspamd's config"
    chown -R _rspamd:_rspamd "$WORK/rspamd/db" "$WORK/rspamd/run" "$WORK/rspamd/log" ||
        die "cannot give $WORK/rspamd to _rspamd"
    # shellcheck disable=SC2046 # the --var options are meant to split
    rspamadm $(filters_rspamd_vars) configtest -c "$WORK/rspamd/etc/rspamd.conf" \
        >"$WORK/rspamd/configtest.log" 2>&1 ||
        die "rspamd refuses its config: $(grep -v '^$' "$WORK/rspamd/configtest.log" | tail -5)"
}

# How Postfix and OpenDKIM name OpenDKIM's milter socket.
filters_opendkim_milter() {
    if [ "$OPENDKIM_INET" = 1 ]; then
        echo "inet:127.0.0.1:$OPENDKIM_PORT"
    else
        echo "unix:$WORK/opendkim/opendkim.sock"
    fi
}

filters_opendkim_socket() {
    if [ "$OPENDKIM_INET" = 1 ]; then
        echo "inet:$OPENDKIM_PORT@127.0.0.1"
    else
        echo "local:$WORK/opendkim/opendkim.sock"
    fi
}

filters_rspamd_vars() {
    echo "--var=LOCAL_CONFDIR=$WORK/rspamd/etc --var=DBDIR=$WORK/rspamd/db" \
        "--var=RUNDIR=$WORK/rspamd/run --var=LOGDIR=$WORK/rspamd/log"
}

filters_write_unbound() {
    cat <<EOF
# written by bench/compare.sh: every name is NXDOMAIN, nothing is forwarded
server:
    interface: 127.0.0.1
    port: $DNS_PORT
    do-ip6: no
    do-daemonize: no
    username: ""
    chroot: ""
    directory: "$WORK/unbound"
    pidfile: "$WORK/unbound/unbound.pid"
    use-syslog: no
    logfile: "$WORK/unbound/unbound.log"
    verbosity: 1
    num-threads: 1
    access-control: 127.0.0.0/8 allow
    local-zone: "." always_nxdomain
    module-config: "iterator"
remote-control:
    control-enable: no
EOF
}

filters_write_clamd() {
    local log_clean=no
    [ "$FILTERS_LOG_CLEAN" = 1 ] && log_clean=yes
    cat <<EOF
# written by bench/compare.sh: a private clamd on 127.0.0.1
Foreground yes
LogFile $WORK/clamd/clamd.log
LogTime yes
LogClean $log_clean
LogVerbose no
PidFile $WORK/clamd/clamd.pid
TemporaryDirectory $WORK/clamd
DatabaseDirectory $WORK/clamd/db
OfficialDatabaseOnly no
TCPSocket $CLAMD_PORT
TCPAddr 127.0.0.1
SelfCheck 3600
StreamMaxLength 64M
MaxScanSize 100M
MaxFileSize 64M
MaxRecursion 17
MaxFiles 10000
MaxQueue $((max_concurrency + 100))
MaxConnectionQueueLength $((max_concurrency + 100))
EOF
}

filters_write_opendkim() {
    local syslog=no
    # Without a syslog socket there is nowhere to log; the Authentication-
    # Results field it adds to every message shows that it ran.
    [ -S /dev/log ] && syslog=yes
    # DNS: its libunbound is told to ask 127.0.0.1 only, which libunbound
    # refuses (do-not-query-localhost), so a key lookup fails at once as
    # "key not found" without a packet sent (strace: no sendto). Not
    # ResolverConfiguration: OpenDKIM re-reads that file for every message
    # and libunbound's parser is not thread-safe (parse errors, tempfails
    # at 10 connections). The benchmark's messages carry no signature, so
    # OpenDKIM looks nothing up.
    cat >"$WORK/opendkim/opendkim.conf" <<EOF
# written by bench/compare.sh: a private OpenDKIM on 127.0.0.1
Mode sv
Socket $(filters_opendkim_socket)
UMask 0111
PidFile $WORK/opendkim/opendkim.pid
Background no
Syslog $syslog
SyslogSuccess $syslog
AuthservID peer.bench.example.test
AlwaysAddARHeader yes
InternalHosts 192.0.2.1
Nameservers 127.0.0.1
EOF
}

filters_write_rspamd() {
    local etc="$WORK/rspamd/etc" ld="$WORK/rspamd/etc/local.d" log_clean=false
    [ "$FILTERS_LOG_CLEAN" = 1 ] && log_clean=true
    # Debian's /etc/rspamd/rspamd.conf with our sockets and no fuzzy storage.
    cat >"$etc/rspamd.conf" <<EOF || return 1
# written by bench/compare.sh: Debian's top level with private sockets
.include "\$CONFDIR/common.conf"
options {
    pidfile = "\$RUNDIR/rspamd.pid";
    .include "\$CONFDIR/options.inc"
    .include(try=true; priority=1,duplicate=merge) "\$LOCAL_CONFDIR/local.d/options.inc"
}
logging {
    type = "file";
    filename = "\$LOGDIR/rspamd.log";
    .include "\$CONFDIR/logging.inc"
}
worker "normal" {
    bind_socket = "127.0.0.1:$RSPAMD_NORMAL_PORT";$([ "$RSPAMD_WORKERS" = default ] || printf '\n    count = %s;' "$RSPAMD_WORKERS")
    .include "\$CONFDIR/worker-normal.inc"
}
worker "controller" {
    bind_socket = "127.0.0.1:$RSPAMD_CONTROLLER_PORT";
    .include "\$CONFDIR/worker-controller.inc"
}
worker "rspamd_proxy" {
    bind_socket = "127.0.0.1:$RSPAMD_PROXY_PORT";
    milter = yes;
    timeout = 120s;
    upstream "local" {
        default = yes;
        hosts = "127.0.0.1:$RSPAMD_NORMAL_PORT";
    }
    count = 1;
    max_retries = 5;
    discard_on_reject = false;
    quarantine_on_reject = false;
    spam_header = "X-Spam";
    reject_message = "Spam message rejected";
}
EOF
    cat >"$ld/options.inc" <<EOF || return 1
dns {
    nameserver = ["127.0.0.1:$DNS_PORT"];
}
EOF
    echo "servers = \"127.0.0.1:$REDIS_PORT\";" >"$ld/redis.conf" || return 1
    printf 'reject = 15;\nadd_header = 6;\ngreylist = 4;\n' >"$ld/actions.conf" || return 1
    cat >"$ld/antivirus.conf" <<EOF || return 1
clamav {
    type = "clamav";
    servers = "127.0.0.1:$CLAMD_PORT";
    symbol = "CLAM_VIRUS";
    action = "reject";
    scan_mime_parts = false;
    log_clean = $log_clean;
    max_size = 52428800;
}
EOF
    echo "enabled = false;" >"$ld/dkim_signing.conf" || return 1
    # Its servers are rspamd.com's public storage, looked up with the
    # system's resolver when the config loads: nothing may leave.
    echo "enabled = false;" >"$ld/fuzzy_check.conf" || return 1
    echo "check_local = true;" >"$ld/spf.conf" || return 1
    echo "check_local = true;" >"$ld/dkim.conf" || return 1
    echo "check_local = true;" >"$ld/dmarc.conf" || return 1
    printf 'use = ["x-spamd-result", "x-spam-status", "authentication-results"];\nskip_local = false;\n' \
        >"$ld/milter_headers.conf" || return 1
}

peer_ports() {
    peer_base_ports
    echo "$DNS_PORT $REDIS_PORT $CLAMD_PORT $RSPAMD_PROXY_PORT $RSPAMD_NORMAL_PORT" \
        "$RSPAMD_CONTROLLER_PORT $OPENDKIM_PORT"
}

# ---- the signatures ------------------------------------------------------

# The directory toasterd last said it loaded its ClamAV engine from. Its
# shipped database lives in a data_dir that is retired every round, so
# those files are copied for clamd; any other directory is used as it is.
filters_clamav_db() {
    local dir log="$WORK/toaster/toasterd.log" file copied=0 names
    [ -n "$FILTER_CLAMAV_DB" ] && return 0
    dir=$(sed -n 's/.*clamav: engine [0-9]* loaded from \(.*\): [0-9]* signatures.*/\1/p' "$log" 2>/dev/null | tail -1)
    [ -n "$dir" ] || die "toasterd's log ($log) does not say where its ClamAV database is; the peer must start after toasterd"
    [ -d "$dir" ] || die "toasterd's ClamAV database $dir is gone"
    case $dir in
    "$WORK"/toaster/*)
        for file in "$dir"/*; do
            [ -f "$file" ] || continue
            cp "$file" "$WORK/clamd/db/" || die "cannot copy $file to $WORK/clamd/db"
            copied=$((copied + 1))
        done
        [ "$copied" -gt 0 ] || die "no signature files in $dir"
        FILTER_CLAMAV_DB="$WORK/clamd/db"
        ;;
    *) FILTER_CLAMAV_DB=$dir ;;
    esac
    sed -i "s|^DatabaseDirectory .*|DatabaseDirectory $FILTER_CLAMAV_DB|" "$WORK/clamd/clamd.conf" ||
        die "cannot set clamd's DatabaseDirectory"
    names=("$FILTER_CLAMAV_DB"/*)
    echo "compare: clamd loads ${names[*]##*/} from $FILTER_CLAMAV_DB (as toasterd)" >&2
}

# The report's notes on the filters (after the install: they name versions).
filters_notes() {
    local scanners="Rspamd's default number of scanner (normal) processes (cores - 2, at least 1: RSPAMD_WORKERS=default)"
    [ "$RSPAMD_WORKERS" != default ] &&
        scanners="$RSPAMD_WORKERS scanner (normal) processes ($RSPAMD_WORKERS_WHY; Rspamd's own default would be cores - 2, at least 1)"
    PEER_NOTES+=(
        "Filters on the peer: Postfix \`smtpd_milters = inet:127.0.0.1:$RSPAMD_PROXY_PORT, $(filters_opendkim_milter | sed "s|$WORK|…|")\` (Rspamd's proxy worker in milter mode, then OpenDKIM$([ "$OPENDKIM_INET" = 1 ] || echo " on a Unix socket, its Debian default: over TCP libmilter's two end-of-message replies, sent without TCP_NODELAY, wait for Postfix's delayed ACK, about 40 ms per message")), \`milter_protocol = 6\`, \`milter_default_action = tempfail\`, \`milter_mail_macros\` as Rspamd's Postfix guide has them; every filter daemon is a private foreground instance under the work dir, restarted with Postfix every round, and counted in the peer's CPU and memory"
        "Rspamd $(rspamd --version 2>/dev/null | awk '{print $NF}'): Debian's stock configuration (every module it enables by default) with local.d overrides: actions reject 15, add_header 6, greylist 4 (toasterd's defaults); Redis for greylisting, ratelimit, Bayes (min_learns 200, as toasterd) and the rest; antivirus \`clamav\` on clamd with \`scan_mime_parts = false\` (the whole message goes to clamd, as toasterd scans the whole message with libclamav) and \`action = reject\`; \`check_local = true\` for SPF, DKIM and DMARC (toasterd checks loopback clients too; greylisting stays off for loopback on both sides, Rspamd's and toasterd's default); DKIM signing off; \`fuzzy_check\` off (it asks rspamd.com's public storage; nothing may leave the machine, and toasterd has no such check); milter headers X-Spamd-Result, X-Spam-Status and Authentication-Results, for loopback clients too (\`skip_local = false\`; toasterd adds X-Spam-Score/X-Spam-Status/X-Spamd-Result and Authentication-Results); workers: $scanners, one proxy, one controller, as user _rspamd"
        "ClamAV: clamd $(clamd --version 2>/dev/null | awk '{print $2}' | cut -d/ -f1) on TCP, loading exactly the signature files toasterd loaded; MaxScanSize 100M, MaxFileSize 64M, StreamMaxLength 64M, MaxRecursion 17, MaxFiles 10000 (toasterd's clamav_* defaults); \`MaxQueue\` and \`MaxConnectionQueueLength\` $((max_concurrency + 100)) (defaults 100 and 200) so every connection's scan can wait its turn; no freshclam"
        "OpenDKIM $(opendkim -V 2>/dev/null | awk 'NR == 1 {print $NF}'): \`Mode sv\` without keys, \`InternalHosts\` a TEST-NET address so mail from 127.0.0.1 is verified, \`AlwaysAddARHeader yes\` (toasterd always adds Authentication-Results); \`Nameservers 127.0.0.1\`, which its libunbound refuses, so it sends no DNS (the benchmark's messages are unsigned: nothing to look up)"
        "DNS: both sides answer NXDOMAIN for every name without leaving the machine: toasterd from \`dns_override_file\` (\`\$UNLISTED NXDOMAIN\`, in process), Rspamd from a private unbound (\`local-zone: \".\" always_nxdomain\`, one thread) counted in the peer's CPU"
    )
}


# ---- start and stop --------------------------------------------------------

# filters_spawn NAME LOG COMMAND...: one daemon in the foreground, in the
# peer's group.
filters_spawn() {
    local name=$1 log=$2
    shift 2
    (
        acct_join peer
        exec "$@" >>"$log" 2>&1 </dev/null
    ) &
    FILTER_PIDS[$name]=$!
    acct_add_root peer "${FILTER_PIDS[$name]}"
}

filters_start() {
    filters_clamav_db
    rm -rf "$WORK/redis" && mkdir -p "$WORK/redis" || die "cannot reset $WORK/redis"
    filters_spawn unbound "$WORK/unbound/stderr.log" unbound -d -c "$WORK/unbound/unbound.conf"
    filters_spawn redis "$WORK/redis/stderr.log" redis-server --bind 127.0.0.1 --port "$REDIS_PORT" \
        --save "" --appendonly no --dir "$WORK/redis" --logfile "$WORK/redis/redis.log" \
        --daemonize no --databases 16
    filters_spawn clamd "$WORK/clamd/stderr.log" clamd -c "$WORK/clamd/clamd.conf"
    wait_port "$REDIS_PORT" redis "$WORK/redis/redis.log"
    wait_port "$CLAMD_PORT" clamd "$WORK/clamd/clamd.log"
    local rspamd_log="$WORK/rspamd/log/rspamd.log" log_lines=0
    if [ -f "$rspamd_log" ]; then
        log_lines=$(wc -l <"$rspamd_log") || die "cannot read $rspamd_log"
    fi
    # shellcheck disable=SC2046 # the --var options are meant to split
    filters_spawn rspamd "$WORK/rspamd/log/stderr.log" rspamd -f -u _rspamd -g _rspamd \
        -c "$WORK/rspamd/etc/rspamd.conf" $(filters_rspamd_vars)
    rm -f "$WORK/opendkim/opendkim.sock" || die "cannot remove OpenDKIM's old socket"
    filters_spawn opendkim "$WORK/opendkim/stderr.log" opendkim -f -x "$WORK/opendkim/opendkim.conf"
    if [ "$OPENDKIM_INET" = 1 ]; then
        wait_port "$OPENDKIM_PORT" opendkim "$WORK/opendkim/stderr.log"
    else
        filters_wait_socket opendkim "$WORK/opendkim/opendkim.sock" "$WORK/opendkim/stderr.log"
    fi
    filters_dns_check
    # Rspamd reads its configuration for 10 s or more before its workers
    # listen; then its hs_helper compiles the hyperscan database (into
    # DBDIR at the first start: 20 s of CPU; after that it finds nothing
    # to compile) and tells the workers a second later to load it. Only
    # then is it ready, and idle again.
    filters_wait_log rspamd "$rspamd_log" "$log_lines" 'rspamd_rs_compile_cb: compiled [0-9]+ regular expressions' 300
    sleep 2
    wait_port "$RSPAMD_NORMAL_PORT" "rspamd normal worker" "$rspamd_log"
    wait_port "$RSPAMD_PROXY_PORT" "rspamd proxy" "$rspamd_log"
}

# filters_wait_socket NAME PATH LOG: until something accepts on the Unix
# socket PATH (10 s).
filters_wait_socket() {
    local name=$1 path=$2 log=$3 i
    for ((i = 0; i < 200; i++)); do
        if [ -S "$path" ] && "$PY" -c 'import socket, sys; socket.socket(socket.AF_UNIX).connect(sys.argv[1])' "$path" 2>/dev/null; then
            return 0
        fi
        sleep 0.05
    done
    [ -f "$log" ] && tail -5 "$log" >&2
    die "$name does not listen on $path after 10 s"
}

# filters_wait_log NAME LOG SKIP REGEX SECONDS: until a line of LOG after
# its first SKIP matches REGEX, while the daemon NAME lives.
filters_wait_log() {
    local name=$1 log=$2 skip=$3 regex=$4 seconds=$5 i
    for ((i = 0; i < seconds * 10; i++)); do
        # grep without -q reads to the end, so tail never dies of SIGPIPE.
        if tail -n +"$((skip + 1))" "$log" 2>/dev/null | grep -E "$regex" >/dev/null; then
            return 0
        fi
        kill -0 "${FILTER_PIDS[$name]}" 2>/dev/null ||
            die "$name exited while starting: $(tail -n +"$((skip + 1))" "$log" 2>/dev/null | tail -3)"
        sleep 0.1
    done
    die "$name is not ready after $seconds s (no /$regex/ in $log)"
}

# unbound is the last to say nothing when it is not there: ask it once.
filters_dns_check() {
    "$PY" - "$DNS_PORT" <<'EOF' || die "the private unbound on 127.0.0.1:$DNS_PORT does not answer NXDOMAIN"
import socket, struct, sys
q = struct.pack(">HHHHHH", 0x4242, 0x0100, 1, 0, 0, 0) + b"\x07example\x04test\x00\x00\x01\x00\x01"
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(5)
for _ in range(50):
    try:
        s.sendto(q, ("127.0.0.1", int(sys.argv[1])))
        a = s.recv(512)
        sys.exit(0 if a[:2] == q[:2] and a[3] & 15 == 3 else 1)
    except (ConnectionRefusedError, socket.timeout):
        import time; time.sleep(0.1)
sys.exit(1)
EOF
}

# filters_stop: TERM each daemon, wait up to 30 s in all, then KILL.
filters_stop() {
    local name pid i
    for name in opendkim rspamd clamd redis unbound; do
        pid=${FILTER_PIDS[$name]:-}
        [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null
    done
    for name in opendkim rspamd clamd redis unbound; do
        pid=${FILTER_PIDS[$name]:-}
        [ -n "$pid" ] || continue
        for ((i = 0; i < 300; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            echo "compare: $name (pid $pid) still running 30 s after SIGTERM, killing it" >&2
            kill -KILL "$pid" 2>/dev/null
        fi
        wait "$pid" 2>/dev/null
        FILTER_PIDS[$name]=""
    done
    return 0
}

peer_start() {
    filters_start
    peer_base_start
}

# The milters first (Postfix's queue is empty by now, so none is in use),
# then Postfix and Dovecot and the wait for an empty group.
peer_stop() {
    filters_stop
    peer_base_stop
}

peer_kill() {
    filters_stop || true
    peer_base_kill
}

peer_version() {
    local base
    base=$(peer_base_version) || return 1
    echo "$base; with Rspamd $(rspamd --version | awk '{print $NF}'), ClamAV clamd $(clamd --version | awk '{print $2}' | cut -d/ -f1), OpenDKIM $(opendkim -V | awk 'NR == 1 {print $NF}'), Redis $(redis-server --version | sed -n 's/.* v=\([^ ]*\).*/\1/p'), unbound $(unbound -V | awk 'NR == 1 {print $2}')"
}
