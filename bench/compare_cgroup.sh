# bench/compare_cgroup.sh - sourced by compare.sh: one accounting group per
# server stack, so CPU time and memory are summed over every process the
# stack forks (Postfix runs one smtpd and one cleanup per client, Dovecot one
# lmtp per Postfix connection; toasterd is one process).
#
# Prefers a cgroup v1 cpuacct group, then a cgroup v2 group: a process put
# into the group before it starts the server takes every descendant with it,
# and the group's counter keeps the CPU time of children that have exited.
# Without a writable cgroup it walks the process tree from the stack's root
# processes and sums utime+stime+cutime+cstime, which misses CPU of children
# reaped by a process outside the tree (ACCT_NOTE says so in the report).
# Only groups created here are touched; ACCT_CREATED lists them for the trap.
# shellcheck shell=bash disable=SC2015,SC2034 # 'a && b || die' is meant: die when either fails; compare.sh reads the variables set here

ACCT_MODE=""
ACCT_NOTE=""
ACCT_BASE=""
ACCT_CREATED=()
declare -A ACCT_DIR=()
declare -A ACCT_ROOTS=()

# Pick the accounting mode once. A probe group proves the hierarchy is
# writable. ACCOUNTING=v1|v2|proc forces one (to test the others here).
acct_detect() {
    local want=${ACCOUNTING:-auto}
    case $want in
    auto | v1 | v2 | proc) ;;
    *) die "ACCOUNTING='$want' is not auto, v1, v2 or proc" ;;
    esac
    if [ "$want" = auto ] || [ "$want" = v1 ]; then
        acct_probe v1 /sys/fs/cgroup/cpuacct/cpuacct.usage /sys/fs/cgroup/cpu,cpuacct/cpuacct.usage &&
            return 0
    fi
    if [ "$want" = auto ] || [ "$want" = v2 ]; then
        acct_probe v2 /sys/fs/cgroup/cgroup.controllers /sys/fs/cgroup/unified/cgroup.controllers &&
            return 0
    fi
    [ "$want" = auto ] || [ "$want" = proc ] || die "no writable cgroup $want hierarchy"
    ACCT_MODE=proc
    ACCT_NOTE="no writable cgroup: CPU is utime+stime+cutime+cstime summed over the process tree of each stack (children reaped outside the tree are missed)"
}

# acct_probe MODE FILE...: use the first hierarchy that has FILE at its top
# and lets us create a group.
acct_probe() {
    local mode=$1 file base probe
    shift
    for file in "$@"; do
        [ -f "$file" ] || continue
        base=$(dirname "$file")
        probe="$base/toaster-compare-probe-$$"
        mkdir "$probe" 2>/dev/null || continue
        rmdir "$probe" || die "cannot remove probe cgroup $probe"
        ACCT_MODE=$mode ACCT_BASE=$base
        if [ "$mode" = v1 ]; then
            ACCT_NOTE="CPU from cgroup v1 \`cpuacct.usage\` of one group per stack ($base)"
        else
            ACCT_NOTE="CPU from cgroup v2 \`cpu.stat\` usage_usec of one group per stack ($base)"
        fi
        return 0
    done
    return 1
}

# acct_create NAME: make the group (or, without cgroups, an empty root list).
acct_create() {
    local name=$1 dir
    if [ "$ACCT_MODE" = proc ]; then
        ACCT_ROOTS[$name]=""
        return 0
    fi
    dir="$ACCT_BASE/toaster-compare-$name-$$"
    mkdir "$dir" || die "cannot create cgroup $dir"
    ACCT_DIR[$name]=$dir
    ACCT_CREATED+=("$name")
}

# acct_join NAME: move the calling (sub)shell into the group. Call it in the
# subshell that then execs the server, never in the main shell.
acct_join() {
    local name=$1
    [ "$ACCT_MODE" = proc ] && return 0
    echo "$BASHPID" >"${ACCT_DIR[$name]}/cgroup.procs" || die "cannot join cgroup ${ACCT_DIR[$name]}"
}

# acct_add_root NAME PID: without cgroups, remember a root of the stack's tree.
acct_add_root() {
    [ "$ACCT_MODE" = proc ] || return 0
    ACCT_ROOTS[$1]="${ACCT_ROOTS[$1]} $2"
}

# acct_cpu_ns NAME: CPU time of the stack so far, in nanoseconds.
acct_cpu_ns() {
    local name=$1 usec
    case $ACCT_MODE in
    v1) cat "${ACCT_DIR[$name]}/cpuacct.usage" ;;
    v2)
        usec=$(awk '$1 == "usage_usec" {print $2}' "${ACCT_DIR[$name]}/cpu.stat")
        [ -n "$usec" ] || die "no usage_usec in ${ACCT_DIR[$name]}/cpu.stat"
        echo $((usec * 1000))
        ;;
    proc)
        # shellcheck disable=SC2086 # the root list is meant to split
        "$PY" "$BENCH_DIR/compare_sample.py" cpu --tree ${ACCT_ROOTS[$name]}
        ;;
    esac
}

# acct_pids NAME: the stack's processes, one per line.
acct_pids() {
    local name=$1
    if [ "$ACCT_MODE" = proc ]; then
        [ -n "${ACCT_ROOTS[$name]// /}" ] || return 0
        # shellcheck disable=SC2086
        "$PY" "$BENCH_DIR/compare_sample.py" pids --tree ${ACCT_ROOTS[$name]}
    else
        cat "${ACCT_DIR[$name]}/cgroup.procs"
    fi
}

# acct_sampler_args NAME: how compare_sample.py finds the stack's processes.
acct_sampler_args() {
    local name=$1
    if [ "$ACCT_MODE" = proc ]; then
        echo "--tree ${ACCT_ROOTS[$name]}"
    else
        echo "--cgroup ${ACCT_DIR[$name]}"
    fi
}

# acct_wait_empty NAME SECONDS: wait until every process of the stack has
# exited; past the deadline kill what is left (all of it was started by us,
# since the group held nothing else) and fail if even that does not help.
acct_wait_empty() {
    local name=$1 seconds=$2 i pids
    for ((i = 0; i < seconds * 10; i++)); do
        pids=$(acct_pids "$name")
        [ -z "$pids" ] && break
        sleep 0.1
    done
    if [ -n "$pids" ]; then
        echo "compare: $name processes still running after ${seconds}s, killing: $pids" >&2
        # shellcheck disable=SC2086
        kill -KILL $pids 2>/dev/null || true
        sleep 1
        pids=$(acct_pids "$name")
        [ -z "$pids" ] || die "cannot stop $name processes: $pids"
    fi
    [ "$ACCT_MODE" = proc ] && ACCT_ROOTS[$name]=""
    return 0
}

# acct_remove_all: remove the groups this run created (they must be empty).
acct_remove_all() {
    local name
    for name in "${ACCT_CREATED[@]}"; do
        [ -d "${ACCT_DIR[$name]}" ] || continue
        rmdir "${ACCT_DIR[$name]}" || echo "compare: cannot remove cgroup ${ACCT_DIR[$name]}" >&2
    done
    ACCT_CREATED=()
}
