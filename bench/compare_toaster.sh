# bench/compare_toaster.sh - sourced by compare.sh: toasterd as side A.
#
# One toasterd on TOASTER_PORT (its other listeners on the next six ports so
# nothing clashes with a daemon left on the defaults), the same 100 users
# as the peer, fsync on (the default), and a fresh data_dir for every
# round. Its 250 already means the message is in Maildir/new, so it never
# has anything pending after the client is done.
#
# Like the peer's per-IP limits, max_connections_per_ip is raised above the
# largest concurrency: every benchmark connection comes from 127.0.0.1.
# With TLS=1, tls_cert/tls_key name the certificate compare.sh made in
# $WORK/toaster/tls (STARTTLS is on either way; only the certificate
# changes, to one like the peer's).
# shellcheck shell=bash disable=SC2015 # 'a && b || die' is meant: die when either fails

TOASTER_PID=""

toaster_prepare() {
    local i listen port=$((TOASTER_PORT + 1))
    mkdir -p "$WORK/toaster" || die "cannot create $WORK/toaster"
    for i in $(seq 1 100); do echo "user$i@example.test:{PLAIN}x"; done >"$WORK/toaster/users" ||
        die "cannot write $WORK/toaster/users"
    {
        echo "# written by bench/compare.sh"
        echo "data_dir = $WORK/toaster/data"
        echo "users_file = $WORK/toaster/users"
        echo "myhostname = toaster.bench.example.test"
        echo "smtp_listen = 127.0.0.1:$TOASTER_PORT"
        for listen in submission submissions imap imaps managesieve http; do
            echo "${listen}_listen = 127.0.0.1:$port"
            port=$((port + 1))
        done
        echo "max_connections_per_ip = $CONNECTIONS_PER_IP"
        # DNS answered at once from a zone where no name exists: nothing
        # leaves the machine, and the filters' lookups cost no waiting.
        echo '$UNLISTED NXDOMAIN' >"$WORK/toaster/dns.zone"
        echo "dns_override_file = $WORK/toaster/dns.zone"
        # The peer runs no filters; FILTERS=1 measures toaster with its own
        # (ClamAV, DKIM verification, SPF, DMARC, spam scoring) on.
        if [ "${FILTERS:-0}" != 1 ]; then
            echo "clamav = no"
            echo "dkim_verify = no"
            echo "spf = no"
            echo "dmarc = no"
        fi
        # The peer runs Sieve only with SIEVE=1; so does toasterd.
        if [ "${SIEVE:-0}" = 1 ]; then
            echo "sieve = yes"
            echo "sieve_before = builtin"
        else
            echo "sieve = no"
        fi
        if [ "$TLS" = 1 ]; then
            echo "tls_cert = $WORK/toaster/tls/cert.pem"
            echo "tls_key = $WORK/toaster/tls/key.pem"
        fi
    } >"$WORK/toaster/toasterd.conf" || die "cannot write $WORK/toaster/toasterd.conf"
    "$TOASTERD" -n -c "$WORK/toaster/toasterd.conf" >"$WORK/toaster/effective.conf" ||
        die "toasterd refuses $WORK/toaster/toasterd.conf"
    acct_create toaster
}

toaster_ports() {
    echo "$TOASTER_PORT" $(seq $((TOASTER_PORT + 1)) $((TOASTER_PORT + 6)))
}

toaster_start() {
    retire "$WORK/toaster/data"
    mkdir "$WORK/toaster/data" || die "cannot create $WORK/toaster/data"
    (
        acct_join toaster
        exec "$TOASTERD" -c "$WORK/toaster/toasterd.conf" 2>>"$WORK/toaster/toasterd.log"
    ) &
    TOASTER_PID=$!
    acct_add_root toaster "$TOASTER_PID"
    wait_port "$TOASTER_PORT" toasterd "$WORK/toaster/toasterd.log"
}

# Nothing is ever queued: 250 came after the Maildir rename and fsync.
toaster_pending() {
    echo 0
}

toaster_delivered() {
    count_maildir "$WORK/toaster/data/mail"
}

# toasterd's own high-water mark, which the sampler could miss between samples.
toaster_hwm_kib() {
    awk '/^VmHWM:/ {print $2}' "/proc/$TOASTER_PID/status"
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

# For the trap: stop without judging, since we may be here because of an error.
toaster_kill() {
    [ -n "$TOASTER_PID" ] || return 0
    kill -TERM "$TOASTER_PID" 2>/dev/null || true
    wait "$TOASTER_PID" 2>/dev/null || true
    TOASTER_PID=""
    acct_wait_empty toaster 30
}

toaster_version() {
    "$TOASTERD" -V
}
