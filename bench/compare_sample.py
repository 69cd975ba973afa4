#!/usr/bin/python3
"""bench/compare_sample.py - reads the processes of one server stack for
bench/compare.sh: peak memory while a workload runs, and (without cgroups)
CPU time and the process list of a process tree.

  mem --out FILE (--cgroup DIR | --tree PID...) [--interval S]
        until SIGTERM, sum the resident set (statm, as VmRSS) and Pss
        (smaps_rollup) over the stack's processes every S seconds or less
        often (see below); then write the peaks as JSON.
  cpu --tree PID...    print utime+stime+cutime+cstime of the tree in ns
  pids --tree PID...   print the tree's pids, one per line

Rss counts shared pages once per process (a thousand smtpd processes share
their text), so Pss, which splits each shared page among its users, is the
fairer sum; both are reported. Reading the memory of two thousand
processes costs real CPU on the machine under test, so each of the two
sums stretches its interval to stay under DUTY_MAX of one core: the cheap
resident-set sum keeps close to S, while the Pss sum, which walks every
page table (about 0.5 ms per smtpd), may come only every few seconds.
"""

import argparse
import json
import os
import signal
import sys
import time

DUTY_MAX = 0.04
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024


def stat_fields(pid):
    """Fields of /proc/PID/stat after the command name, or None if gone."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name may hold spaces and parentheses; it ends at the last ')'.
    return data[data.rindex(b")") + 2:].split()


def tree_pids(roots):
    """Roots that still exist plus all their descendants."""
    children = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        fields = stat_fields(int(name))
        if fields is None:
            continue
        children.setdefault(int(fields[1]), []).append(int(name))
    found = []
    todo = [pid for pid in roots if os.path.exists("/proc/%d" % pid)]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def cgroup_pids(directory):
    with open(os.path.join(directory, "cgroup.procs")) as f:
        return [int(line) for line in f if line.strip()]


def rss_kib(pid):
    """Resident set from statm (cheap: no page-table walk), or None if gone."""
    try:
        with open("/proc/%d/statm" % pid, "rb") as f:
            return int(f.read().split()[1]) * PAGE_KIB
    except (FileNotFoundError, ProcessLookupError):
        return None


def pss_kib(pid):
    """Pss from smaps_rollup, or None if the process is gone."""
    try:
        with open("/proc/%d/smaps_rollup" % pid, "rb") as f:
            for line in f:
                if line.startswith(b"Pss:"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        return None
    # A zombie has an empty smaps_rollup: it holds no memory any more.
    return 0


class Stop(Exception):
    pass


def on_term(signum, frame):
    raise Stop()


def sum_over(pids, read):
    """Sum of read(pid) over pids, and how many were still there."""
    total = count = 0
    for pid in pids:
        value = read(pid)
        if value is None:
            continue  # exited between listing and reading: holds nothing now
        total += value
        count += 1
    return total, count


def cmd_mem(args):
    if args.cgroup:
        list_pids = lambda: cgroup_pids(args.cgroup)
    else:
        list_pids = lambda: tree_pids(args.tree)
    peak = {"peak_rss_kib": 0, "peak_pss_kib": 0, "peak_processes": 0,
            "rss_samples": 0, "pss_samples": 0, "sample_seconds_total": 0.0}
    rss_times = []
    next_pss = 0.0
    signal.signal(signal.SIGTERM, on_term)
    try:
        while True:
            started = time.monotonic()
            pids = list_pids()
            rss, count = sum_over(pids, rss_kib)
            peak["peak_rss_kib"] = max(peak["peak_rss_kib"], rss)
            peak["peak_processes"] = max(peak["peak_processes"], count)
            peak["rss_samples"] += 1
            rss_times.append(started)
            spent_rss = time.monotonic() - started
            if started >= next_pss:
                # Pss walks every page table: far dearer than statm, so it
                # gets its own, usually longer, interval under the same cap.
                pss_started = time.monotonic()
                pss, _ = sum_over(pids, pss_kib)
                peak["peak_pss_kib"] = max(peak["peak_pss_kib"], pss)
                peak["pss_samples"] += 1
                spent_pss = time.monotonic() - pss_started
                next_pss = pss_started + max(args.interval, spent_pss / DUTY_MAX)
            peak["sample_seconds_total"] += time.monotonic() - started
            time.sleep(max(args.interval - spent_rss, spent_rss / DUTY_MAX - spent_rss))
    except Stop:
        pass
    n = len(rss_times)
    peak["mean_interval_s"] = (rss_times[-1] - rss_times[0]) / (n - 1) if n > 1 else None
    with open(args.out, "w") as f:
        json.dump(peak, f)
        f.write("\n")
    if peak["pss_samples"] == 0:
        print("compare_sample: no memory sample was taken", file=sys.stderr)
        return 1
    return 0


def cmd_cpu(args):
    ticks = 0
    for pid in tree_pids(args.tree):
        fields = stat_fields(pid)
        if fields is None:
            continue  # exited while we walked: its time went to its parent's cutime
        # utime, stime, cutime, cstime are fields 14-17 of stat; 12-15 here.
        ticks += sum(int(x) for x in fields[11:15])
    print(ticks * 1000000000 // CLOCK_TICKS)
    return 0


def cmd_pids(args):
    for pid in tree_pids(args.tree):
        print(pid)
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    mem = sub.add_parser("mem")
    mem.add_argument("--out", required=True)
    mem.add_argument("--interval", type=float, default=0.2)
    group = mem.add_mutually_exclusive_group(required=True)
    group.add_argument("--cgroup")
    group.add_argument("--tree", type=int, nargs="+")
    for name in ("cpu", "pids"):
        p = sub.add_parser(name)
        p.add_argument("--tree", type=int, nargs="+", required=True)
    args = parser.parse_args()
    return {"mem": cmd_mem, "cpu": cmd_cpu, "pids": cmd_pids}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
