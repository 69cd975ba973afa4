# bench/compare_imap_peer.sh - sourced by compare_imap.sh: Dovecot's IMAP
# server as side B. A private instance: its own config, base_dir, state and
# log under $WORK, IMAP only, listening on 127.0.0.1:PEER_IMAP_PORT (never
# 143, never /etc/dovecot), started with -c. Users are toasterd's own
# users file (user@domain:{PLAIN}password) as passdb; the userdb is static:
# every mailbox belongs to the 'mail' user, at
# maildir:$PEER_DATA/mail/%d/%n/Maildir, the layout imap_fill.py writes.
#
# Settings are Debian's defaults (one imap-login process per connection,
# one imap process per session, mail_fsync = optimized, no FTS plugin, so
# SEARCH BODY reads the messages) except what running a private instance
# on loopback with many connections needs; PEER_IMAP_NOTES lists them for
# the report.
# shellcheck shell=bash disable=SC2015,SC2034 # 'a && b || die' is meant: die when either fails; compare_imap.sh reads the variables set here

PEER_IMAP_RUNNING=""
PEER_IMAP_PROCESS_LIMIT=${PEER_IMAP_PROCESS_LIMIT:-2000}
PEER_IMAP_NOTES=(
    "Dovecot: IMAP only, passdb passwd-file (the users file toasterd reads), userdb static (uid/gid \`mail\`), \`mail_location = maildir:…/mail/%d/%n/Maildir\`, \`ssl = no\`, \`disable_plaintext_auth = no\` (loopback, LOGIN in the clear as for toasterd)"
    "Dovecot: \`process_limit = $PEER_IMAP_PROCESS_LIMIT\` for imap and imap-login, \`mail_max_userip_connections = 10000\` (default 10 per user and IP would refuse the benchmark's sessions); everything else at Debian's defaults: one imap-login process per connection (\`service_count = 1\`), one imap process per session, \`mail_fsync = optimized\`, no FTS (SEARCH BODY reads each message)"
)

# Dovecot's IMAP server from Debian when missing.
imap_peer_install() {
    local missing=()
    [ -x /usr/sbin/dovecot ] || missing+=(dovecot-core)
    [ -x /usr/lib/dovecot/imap ] || missing+=(dovecot-imapd)
    [ ${#missing[@]} -eq 0 ] && return 0
    echo "compare_imap: installing ${missing[*]}" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" \
        >"$WORK/apt.log" 2>&1 || die "cannot install ${missing[*]}; see $WORK/apt.log"
}

# imap_peer_prepare USERS_FILE DATA_DIR: config and ownership.
imap_peer_prepare() {
    local users=$1 data=$2 dc="$WORK/dovecot"
    PEER_USERS=$users
    PEER_DATA=$data
    MAIL_UID=$(id -u mail) && MAIL_GID=$(id -g mail) || die "no 'mail' user for Dovecot's mailboxes"
    mkdir -p "$dc" || die "cannot create $dc"
    chown -R "$MAIL_UID:$MAIL_GID" "$data" || die "cannot chown $data to mail"
    setpriv --reuid="$MAIL_UID" --regid="$MAIL_GID" --clear-groups test -w "$data/mail" ||
        die "user mail cannot write $data/mail: can others search the folders above it (WORKDIR)?"
    # Dovecot's auth process reads the users file as its own user.
    chmod 644 "$users" || die "cannot chmod $users"
    imap_peer_write_conf >"$dc/dovecot.conf" || die "cannot write $dc/dovecot.conf"
    dovecot -c "$dc/dovecot.conf" -n >"$dc/effective.conf" 2>"$dc/doveconf.err" ||
        die "dovecot refuses $dc/dovecot.conf: $(cat "$dc/doveconf.err")"
    acct_create peer
}

imap_peer_write_conf() {
    cat <<EOF2
# written by bench/compare_imap.sh: a private IMAP-only instance on 127.0.0.1
protocols = imap
listen = 127.0.0.1
instance_name = toaster-compare-imap-$$
base_dir = $WORK/dovecot/run
state_dir = $WORK/dovecot/state
log_path = $WORK/dovecot/dovecot.log
info_log_path = $WORK/dovecot/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
first_valid_uid = $MAIL_UID
last_valid_uid = $MAIL_UID
first_valid_gid = $MAIL_GID
mail_location = maildir:$PEER_DATA/mail/%d/%n/Maildir
mail_max_userip_connections = 10000
default_process_limit = $PEER_IMAP_PROCESS_LIMIT
default_client_limit = $((PEER_IMAP_PROCESS_LIMIT * 2))
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u $PEER_USERS
}
userdb {
  driver = static
  args = uid=$MAIL_UID gid=$MAIL_GID home=$PEER_DATA/mail/%d/%n
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = $PEER_IMAP_PORT
  }
  inet_listener imaps {
    port = 0
  }
  process_limit = $PEER_IMAP_PROCESS_LIMIT
}
service imap {
  process_limit = $PEER_IMAP_PROCESS_LIMIT
}
service auth {
  client_limit = $((PEER_IMAP_PROCESS_LIMIT * 3))
}
service anvil {
  client_limit = $((PEER_IMAP_PROCESS_LIMIT * 3))
}
EOF2
}

imap_peer_ports() {
    echo "$PEER_IMAP_PORT"
}

imap_peer_start() {
    rm -rf "$WORK/dovecot/run" || die "cannot reset $WORK/dovecot/run"
    mkdir -p "$WORK/dovecot/state" || die "cannot create $WORK/dovecot/state"
    PEER_IMAP_RUNNING=1
    (
        acct_join peer
        exec dovecot -c "$WORK/dovecot/dovecot.conf"
    ) || die "dovecot did not start; see $WORK/dovecot/dovecot.log"
    local pid
    pid=$(head -1 "$WORK/dovecot/run/master.pid") || die "dovecot wrote no master.pid"
    acct_add_root peer "$pid"
    wait_port "$PEER_IMAP_PORT" "dovecot imap" "$WORK/dovecot/dovecot.log"
}

imap_peer_stop() {
    [ -n "$PEER_IMAP_RUNNING" ] || return 0
    dovecot -c "$WORK/dovecot/dovecot.conf" stop || die "dovecot stop failed"
    acct_wait_empty peer 30
    PEER_IMAP_RUNNING=""
}

# For the trap: stop without judging.
imap_peer_kill() {
    [ -n "$PEER_IMAP_RUNNING" ] || return 0
    dovecot -c "$WORK/dovecot/dovecot.conf" stop 2>/dev/null || true
    acct_wait_empty peer 30
    PEER_IMAP_RUNNING=""
}

imap_peer_version() {
    echo "Dovecot $(dovecot --version)"
}
