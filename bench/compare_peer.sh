# bench/compare_peer.sh - sourced by compare.sh: the stack toaster replaces,
# as side B. Postfix from Debian (smtpd, cleanup, qmgr, trivial-rewrite,
# lmtp client) accepts mail on PEER_PORT and hands it to Dovecot LMTP on
# LMTP_PORT, which writes Maildir. Both run as private instances: their own
# config, queue, state and log files under $WORK, listening on 127.0.0.1
# only, started with -c so the system's /etc/postfix and /etc/dovecot are
# neither read nor changed (Postfix checks alternate_config_directories only
# for its set-gid programs, which we never run).
#
# Durability is the packages' default: cleanup fsyncs each queue file before
# smtpd answers 250, and Dovecot (mail_fsync = optimized) fsyncs each
# message file, and fdatasyncs its index and uidlist, before LMTP answers.
# Settings that change the work per message stay at their defaults
# (in_flow_delay 1s, header checks off, LMTP concurrency 20 per destination
# unless PEER_LMTP_CONCURRENCY says); the ones we change are for fairness at
# 1000 connections from one address and for running without DNS, and the
# report lists them (PEER_NOTES). With TLS=1 smtpd offers STARTTLS with the
# certificate compare.sh made in $WORK/postfix/tls (TLS 1.2 and 1.3, the
# rest of Postfix's TLS settings at their defaults), and tlsmgr runs for
# its ticket keys and random seed.
# shellcheck shell=bash disable=SC2015,SC2034 # 'a && b || die' is meant: die when either fails; compare.sh reads the variables set here

PEER_RUNNING=""
PEER_NOTES=(
    "Postfix: \`default_process_limit = $PEER_PROCESS_LIMIT\` (default 100) so smtpd and cleanup can each have one process per connection at $max_concurrency connections; \`smtpd_client_connection_count_limit = 0\` and \`smtpd_client_connection_rate_limit = 0\` (no per-client throttling; toasterd gets \`max_connections_per_ip = $CONNECTIONS_PER_IP\` for the same reason)"
    "Postfix: \`smtpd_peername_lookup = no\`, \`smtp_dns_support_level = disabled\`, \`lmtp_host_lookup = native\`: no DNS on loopback; \`message_size_limit = 52428800\` as toasterd's 50m; no chroot; everything else, including queue-file fsync and \`in_flow_delay = 1s\` (smtpd pauses before MAIL while the queue manager falls behind), at its default"
    "Postfix: parallel LMTP deliveries to Dovecot: ${PEER_LMTP_CONCURRENCY:-20, the default \`lmtp_destination_concurrency_limit\` (under load qmgr warns that it may need raising; PEER_LMTP_CONCURRENCY=N sets it)}"
    "Dovecot: LMTP only, passwd-file users (uid/gid of \`mail\`), \`mail_location = maildir:…/%d/%n/Maildir\`, \`mail_fsync\` at its default (optimized: before LMTP answers 250 the message file is fsynced before its rename into \`new/\`, and the index and \`dovecot-uidlist\` files are fdatasynced; the \`new/\` directory is not); Postfix's cleanup fsyncs each queue file before smtpd answers 250 (both seen with strace)"
)

# Install Dovecot LMTP (and Postfix) from Debian when missing.
peer_install() {
    local missing=()
    [ -x /usr/sbin/postfix ] || missing+=(postfix)
    [ -x /usr/sbin/dovecot ] || missing+=(dovecot-core)
    [ -x /usr/lib/dovecot/lmtp ] || missing+=(dovecot-lmtpd)
    peer_apt_install "${missing[@]}"
}

# peer_apt_install PACKAGE...: apt-get install them (nothing when none). A
# temporary policy-rc.d keeps the packages from starting their own daemons
# on the standard ports; an existing policy-rc.d is left as it is.
peer_apt_install() {
    local policy=/usr/sbin/policy-rc.d
    [ $# -eq 0 ] && return 0
    echo "compare: installing $*" >&2
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\n# temporary, from bench/compare.sh\nexit 101\n' >"$policy" &&
            chmod 755 "$policy" || die "cannot write $policy"
        POLICY_RC_CREATED=$policy
    fi
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y "$@" >>"$WORK/apt.log" 2>&1; then
        apt-get update >>"$WORK/apt.log" 2>&1 || die "apt-get update failed; see $WORK/apt.log"
        DEBIAN_FRONTEND=noninteractive apt-get install -y "$@" >>"$WORK/apt.log" 2>&1 ||
            die "cannot install $*; see $WORK/apt.log"
    fi
    if [ -n "${POLICY_RC_CREATED:-}" ]; then
        rm -f "$POLICY_RC_CREATED" || die "cannot remove $POLICY_RC_CREATED"
        POLICY_RC_CREATED=""
    fi
}

peer_prepare() {
    local i etc="$WORK/postfix/etc" dc="$WORK/dovecot"
    MAIL_UID=$(id -u mail) && MAIL_GID=$(id -g mail) || die "no 'mail' user for Dovecot's mailboxes"
    mkdir -p "$etc" "$dc" "$WORK/dovecot-mail" || die "cannot create $etc and $dc"
    chown "$MAIL_UID:$MAIL_GID" "$WORK/dovecot-mail" || die "cannot chown $WORK/dovecot-mail"
    # Dovecot delivers as the mail user, who needs a way down to the store.
    setpriv --reuid="$MAIL_UID" --regid="$MAIL_GID" --clear-groups test -w "$WORK/dovecot-mail" ||
        die "user mail cannot write $WORK/dovecot-mail: can others search the folders above it (WORKDIR)?"
    for i in $(seq 1 100); do echo "user$i@example.test OK"; done >"$etc/vmailbox" ||
        die "cannot write $etc/vmailbox"
    for i in $(seq 1 100); do
        echo "user$i@example.test:{PLAIN}x:$MAIL_UID:$MAIL_GID::$WORK/dovecot-mail/example.test/user$i::"
    done >"$dc/users" || die "cannot write $dc/users"
    peer_write_main_cf >"$etc/main.cf" || die "cannot write $etc/main.cf"
    peer_write_master_cf >"$etc/master.cf" || die "cannot write $etc/master.cf"
    peer_write_dovecot_conf >"$dc/dovecot.conf" || die "cannot write $dc/dovecot.conf"
    postconf -c "$etc" -n >"$etc/effective.cf" 2>"$etc/postconf.err" ||
        die "postconf refuses $etc/main.cf: $(cat "$etc/postconf.err")"
    if grep -q . "$etc/postconf.err"; then
        die "postconf warns about $etc/main.cf: $(cat "$etc/postconf.err")"
    fi
    dovecot -c "$dc/dovecot.conf" -n >"$dc/effective.conf" 2>"$dc/doveconf.err" ||
        die "dovecot refuses $dc/dovecot.conf: $(cat "$dc/doveconf.err")"
    acct_create peer
}

peer_write_main_cf() {
    cat <<EOF
# written by bench/compare.sh: a private instance on 127.0.0.1
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
virtual_mailbox_domains = example.test
virtual_mailbox_maps = texthash:$WORK/postfix/etc/vmailbox
virtual_transport = lmtp:inet:127.0.0.1:$LMTP_PORT
message_size_limit = 52428800
default_process_limit = $PEER_PROCESS_LIMIT
smtpd_client_connection_count_limit = 0
smtpd_client_connection_rate_limit = 0
smtpd_peername_lookup = no
smtp_dns_support_level = disabled
smtp_host_lookup = native
lmtp_host_lookup = native
biff = no
maillog_file = $WORK/postfix/postfix.log
maillog_file_prefixes = $WORK/postfix
EOF
    if [ -n "$PEER_LMTP_CONCURRENCY" ]; then
        echo "lmtp_destination_concurrency_limit = $PEER_LMTP_CONCURRENCY"
    fi
    if [ "$TLS" = 1 ]; then
        cat <<EOF
smtpd_tls_cert_file = $WORK/postfix/tls/cert.pem
smtpd_tls_key_file = $WORK/postfix/tls/key.pem
smtpd_tls_security_level = may
smtpd_tls_protocols = >=TLSv1.2
smtpd_tls_mandatory_protocols = >=TLSv1.2
smtpd_tls_loglevel = 0
EOF
    fi
}

# Only the services this path uses, none chrooted. No smtp client: nothing
# may leave the machine, and mail for anywhere else would stay deferred.
peer_write_master_cf() {
    cat <<EOF
# written by bench/compare.sh
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
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
EOF
    if [ "$TLS" = 1 ]; then
        echo "tlsmgr    unix  -       -       n       1000?   1       tlsmgr"
    fi
}

peer_write_dovecot_conf() {
    cat <<EOF
# written by bench/compare.sh: a private LMTP-only instance on 127.0.0.1
protocols = lmtp
listen = 127.0.0.1
instance_name = toaster-compare-$$
base_dir = $WORK/dovecot/run
state_dir = $WORK/dovecot/state
log_path = $WORK/dovecot/dovecot.log
info_log_path = $WORK/dovecot/dovecot.log
ssl = no
first_valid_uid = $MAIL_UID
last_valid_uid = $MAIL_UID
first_valid_gid = $MAIL_GID
mail_location = maildir:$WORK/dovecot-mail/%d/%n/Maildir
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u $WORK/dovecot/users
}
userdb {
  driver = passwd-file
  args = username_format=%u $WORK/dovecot/users
}
service lmtp {
  inet_listener lmtp {
    address = 127.0.0.1
    port = $LMTP_PORT
  }
}
EOF
    # SIEVE=1: Pigeonhole runs the global script before every delivery,
    # as toasterd runs its own.
    if [ "${SIEVE:-0}" = 1 ]; then
        cat <<EOF
protocol lmtp {
  mail_plugins = \$mail_plugins sieve
}
plugin {
  sieve = file:~/sieve;active=~/.dovecot.sieve
  sieve_before = $BENCH_DIR/compare_peer.sieve
}
EOF
    fi
}

peer_ports() {
    echo "$PEER_PORT $LMTP_PORT"
}

# Fresh queue, data and mail store, then Dovecot and Postfix in one group.
peer_start() {
    retire "$WORK/postfix/queue" "$WORK/postfix/data" "$WORK/dovecot-mail"
    rm -rf "$WORK/dovecot/run" || die "cannot reset $WORK/dovecot/run"
    mkdir -p "$WORK/postfix/queue" "$WORK/dovecot-mail" "$WORK/dovecot/state" ||
        die "cannot create the peer's directories"
    chown "$MAIL_UID:$MAIL_GID" "$WORK/dovecot-mail" || die "cannot chown $WORK/dovecot-mail"
    PEER_RUNNING=1
    (
        acct_join peer
        exec dovecot -c "$WORK/dovecot/dovecot.conf"
    ) || die "dovecot did not start; see $WORK/dovecot/dovecot.log"
    (
        acct_join peer
        exec postfix -c "$WORK/postfix/etc" start
    ) >>"$WORK/postfix/start.log" 2>&1 ||
        die "postfix did not start: $(tail -5 "$WORK/postfix/start.log")"
    local dovecot_pid postfix_pid
    dovecot_pid=$(head -1 "$WORK/dovecot/run/master.pid") || die "dovecot wrote no master.pid"
    postfix_pid=$(head -1 "$WORK/postfix/queue/pid/master.pid" | tr -d ' ') || die "postfix wrote no master.pid"
    acct_add_root peer "$dovecot_pid"
    acct_add_root peer "$postfix_pid"
    wait_port "$LMTP_PORT" "dovecot lmtp" "$WORK/dovecot/dovecot.log"
    wait_port "$PEER_PORT" "postfix smtpd" "$WORK/postfix/postfix.log"
}

# Messages still in Postfix's queue. A deferred one means delivery failed,
# which no amount of waiting fixes before the retry timer: fail now.
peer_pending() {
    local q="$WORK/postfix/queue" deferred
    deferred=$(find "$q/deferred" -type f 2>/dev/null | wc -l)
    if [ "$deferred" -gt 0 ]; then
        grep 'status=deferred' "$WORK/postfix/postfix.log" | tail -3 >&2
        die "postfix deferred $deferred messages; see $WORK/postfix/postfix.log (KEEP=1 keeps it)"
    fi
    find "$q/maildrop" "$q/incoming" "$q/active" "$q/hold" -type f 2>/dev/null | wc -l
}

peer_delivered() {
    count_maildir "$WORK/dovecot-mail"
}

peer_stop() {
    [ -n "$PEER_RUNNING" ] || return 0
    postfix -c "$WORK/postfix/etc" stop >>"$WORK/postfix/start.log" 2>&1 ||
        die "postfix stop failed: $(tail -3 "$WORK/postfix/start.log")"
    dovecot -c "$WORK/dovecot/dovecot.conf" stop || die "dovecot stop failed"
    acct_wait_empty peer 30
    PEER_RUNNING=""
}

# For the trap: stop without judging, since we may be here because of an error.
peer_kill() {
    [ -n "$PEER_RUNNING" ] || return 0
    postfix -c "$WORK/postfix/etc" stop >>"$WORK/postfix/start.log" 2>&1 || true
    dovecot -c "$WORK/dovecot/dovecot.conf" stop 2>/dev/null || true
    acct_wait_empty peer 30
    PEER_RUNNING=""
}

peer_version() {
    local postfix_v dovecot_v
    postfix_v=$(postconf -c "$WORK/postfix/etc" -h mail_version) || return 1
    dovecot_v=$(dovecot --version) || return 1
    echo "Postfix $postfix_v, Dovecot $dovecot_v"
}
