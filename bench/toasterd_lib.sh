# bench/toasterd_lib.sh - sourced by the measuring scripts that start their
# own toasterd on loopback: a free port, a configuration whose every
# listener is on a free port (so nothing clashes with a daemon on the
# defaults), 100 users, and a wait until SMTP answers.
# shellcheck shell=bash

# A free TCP port on 127.0.0.1 (the kernel picks it).
free_port() {
    /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# write_users FILE: user1..user100@example.test, the users every workload uses.
write_users() {
    local i
    for i in $(seq 1 100); do echo "user$i@example.test:{PLAIN}x"; done >"$1"
}

# write_dns_zone FILE: an override zone in which no name exists, so the
# filters' DNS questions (SPF, DKIM keys, DMARC) are answered at once and
# nothing leaves the machine.
write_dns_zone() {
    echo '$UNLISTED NXDOMAIN' >"$1"
}

# write_toasterd_conf FILE DATA_DIR SMTP_PORT [KEY = VALUE ...]: SMTP on
# SMTP_PORT, the other listeners on free ports, DNS answered from a zone
# beside FILE (write_dns_zone), then the extra lines.
write_toasterd_conf() {
    local file=$1 data_dir=$2 smtp_port=$3 key
    shift 3
    write_dns_zone "$file.zone"
    {
        echo "data_dir = $data_dir"
        echo "dns_override_file = $file.zone"
        echo "smtp_listen = 127.0.0.1:$smtp_port"
        for key in submission submissions imap imaps managesieve http; do
            echo "${key}_listen = 127.0.0.1:$(free_port)"
        done
        for key in "$@"; do
            echo "$key"
        done
    } >"$file"
}

# wait_smtp PORT: up to 10 s for something to accept on 127.0.0.1:PORT.
wait_smtp() {
    local _
    for _ in $(seq 200); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then
            return 0
        fi
        sleep 0.05
    done
    echo "nothing answers on 127.0.0.1:$1" >&2
    return 1
}
