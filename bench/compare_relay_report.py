#!/usr/bin/python3
"""bench/compare_relay_report.py - numbers and pictures for RELAY=1 bench/compare.sh.

  record ... --sink-cpu-ns N --sink-messages N
                  compare_report.py's record (--delivered is what the sink
                  counted) plus the sink's CPU and count; exits 3 as it does
                  when the sink has not counted exactly the accepted messages
  progress        one-line summary of such a line on stdin
  sink-record --bench-json F --concurrency N --round N --sink-messages N --sink-cpu-ns N
                  toaster-bench straight to the sink: one JSON line on stdout;
                  exits 3 when the sink counted other than the accepted count
  sink-progress   one-line summary of such a line on stdin
  drain-record --server S --round N --fill-json F --sink-messages N --t0 T --t-end T
               --cpu0-ns N --cpu1-ns N --sink-cpu-ns N --machine0 "B T" --machine1 "B T"
                  a held queue let go: one JSON line on stdout; exits 3 when
                  the sink counted other than the accepted count
  drain-progress  one-line summary of such a line on stdin
  report --runs FILE --sink-runs FILE [--drain-runs FILE] --meta FILE --md FILE --svg FILE
                  the relay report: compare_report.py's tables and chart with
                  the relay's wording, the sink-alone table, the drain table

Standard library only (Debian's /usr/bin/python3).
"""

import argparse
import contextlib
import io
import json
import os
import sys

import compare_report as cr

cr.SERVERS["toaster"] = "toasterd"
cr.SERVERS["peer"] = "Postfix (smtpd, qmgr, smtp)"


def cmd_record(args):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = cr.cmd_record(args)
    if rc != 0:
        return rc
    run = json.loads(out.getvalue())
    if args.sink_messages != args.delivered:
        print("compare_relay_report: sink counted %d at the end, %d when the run ended"
              % (args.sink_messages, args.delivered), file=sys.stderr)
        return 3
    run["sink_cpu_s"] = args.sink_cpu_ns / 1e9
    # The whole machine over the window of the relay's CPU figure: busy
    # cores in all, and those not the relay's (toaster-bench, the sink, the
    # script's polling, and anything else on the machine).
    run["machine_busy_cores"], run["other_busy_cores"] = machine_cores(
        args.machine0, args.machine1, run["cpu_s"])
    run["sink_cpu_s_per_1000"] = (run["sink_cpu_s"] / args.delivered * 1000
                                  if args.delivered else None)
    json.dump(run, sys.stdout)
    sys.stdout.write("\n")
    return 0


def machine_cores(machine0, machine1, relay_cpu_s):
    """Busy cores of the whole machine between two /proc/stat readings
    ("BUSY TOTAL" ticks), and those not the relay's."""
    busy0, total0 = (int(x) for x in machine0.split())
    busy1, total1 = (int(x) for x in machine1.split())
    if total1 <= total0:
        return None, None
    nproc = os.cpu_count() or 1
    window_s = (total1 - total0) / nproc / os.sysconf("SC_CLK_TCK")
    busy = (busy1 - busy0) / (total1 - total0) * nproc
    return busy, busy - relay_cpu_s / window_s


def cmd_drain_record(args):
    with open(args.fill_json) as f:
        fill = json.load(f)
    accepted = fill["messages"]
    if args.sink_messages != accepted:
        print("compare_relay_report: drain %s round %d: %d accepted, %d counted by the sink"
              % (args.server, args.round, accepted, args.sink_messages), file=sys.stderr)
        return 3
    wall_s = float(args.t_end) - float(args.t0)
    if wall_s <= 0:
        print("compare_relay_report: drain took %.6f s?" % wall_s, file=sys.stderr)
        return 3
    cpu_s = (args.cpu1_ns - args.cpu0_ns) / 1e9
    busy, other = machine_cores(args.machine0, args.machine1, cpu_s)
    run = {
        "server": args.server,
        "round": args.round,
        "messages": accepted,
        "size": fill.get("size"),
        "fill_per_s": fill["msgs_per_s"],
        "fill_concurrency": args.fill_concurrency,
        "wall_s": wall_s,
        "drain_per_s": accepted / wall_s,
        "cpu_s": cpu_s,
        "cpu_s_per_1000": cpu_s / accepted * 1000,
        "sink_cpu_s_per_1000": args.sink_cpu_ns / 1e9 / accepted * 1000,
        "machine_busy_cores": busy,
        "other_busy_cores": other,
        "command": fill["command"],
    }
    json.dump(run, sys.stdout)
    sys.stdout.write("\n")
    return 0


def cmd_drain_progress(args):
    run = json.loads(sys.stdin.readline())
    print("compare: drain %-8s round %d: %d messages in %.2f s, %7.1f msgs/s, CPU %s s/1000 "
          "(sink %s), machine busy %s cores (%s not the relay); filled at %.1f msgs/s"
          % (run["server"], run["round"], run["messages"], run["wall_s"], run["drain_per_s"],
             cr.fmt(run["cpu_s_per_1000"], 3), cr.fmt(run["sink_cpu_s_per_1000"], 3),
             cr.fmt(run["machine_busy_cores"], 2), cr.fmt(run["other_busy_cores"], 2),
             run["fill_per_s"]), file=sys.stderr)
    return 0


def drain_table(drain_runs):
    lines = [
        "| relay | rounds | messages | msgs/s (median) | CPU s / 1000 msgs | sink CPU s / 1000 "
        "| toasterd ÷ peer msgs/s | peer ÷ toasterd CPU |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    rows = {}
    for server in cr.SERVERS:
        mine = [r for r in drain_runs if r["server"] == server]
        if mine:
            rows[server] = {"rounds": len(mine), "messages": mine[0]["messages"],
                            "drain_per_s": cr.median_of(mine, "drain_per_s"),
                            "cpu_s_per_1000": cr.median_of(mine, "cpu_s_per_1000"),
                            "sink_cpu_s_per_1000": cr.median_of(mine, "sink_cpu_s_per_1000")}
    t, p = rows.get("toaster"), rows.get("peer")
    for server, row in rows.items():
        r_msgs = r_cpu = ""
        if server == "toaster" and p is not None:
            r_msgs = cr.fmt(cr.ratio(t["drain_per_s"], p["drain_per_s"]), 2) + "×"
            r_cpu = cr.fmt(cr.ratio(p["cpu_s_per_1000"], t["cpu_s_per_1000"]), 2) + "×"
        lines.append("| %s | %d | %s | %s | %s | %s | %s | %s |" % (
            cr.SERVERS[server], row["rounds"], cr.fmt(row["messages"], 0),
            cr.fmt(row["drain_per_s"]), cr.fmt(row["cpu_s_per_1000"], 3),
            cr.fmt(row["sink_cpu_s_per_1000"], 3), r_msgs, r_cpu))
    return "\n".join(lines)


def drain_round_table(drain_runs):
    lines = ["| relay | round | filled at msgs/s | drain s | msgs/s | CPU s | machine busy, cores "
             "| of which not the relay, cores |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in drain_runs:
        lines.append("| %s | %d | %s | %.2f | %s | %.2f | %s | %s |" % (
            cr.SERVERS[r["server"]], r["round"], cr.fmt(r["fill_per_s"]), r["wall_s"],
            cr.fmt(r["drain_per_s"]), r["cpu_s"], cr.fmt(r["machine_busy_cores"], 2),
            cr.fmt(r["other_busy_cores"], 2)))
    return "\n".join(lines)


def cmd_progress(args):
    line = sys.stdin.readline()
    run = json.loads(line)
    print("compare: %-8s %-8s round %d: %7.1f msgs/s at the sink (%7.1f accepted), p99 %.1f ms, "
          "CPU %s s/1000 (sink %s), peak RSS %.0f MiB, drain %.2f s%s"
          % (run["workload"], run["server"], run["round"], run["delivered_per_s"],
             run["accepted_per_s"], run["p99_ms"], cr.fmt(run["cpu_s_per_1000"], 3),
             cr.fmt(run["sink_cpu_s_per_1000"], 3), run["peak_rss_mib"], run["drain_s"],
             ", %d FAILED" % run["failed"] if run["failed"] else ""), file=sys.stderr)
    return 0


def cmd_sink_record(args):
    with open(args.bench_json) as f:
        bench = json.load(f)
    accepted = bench["messages"]
    if args.sink_messages != accepted:
        print("compare_relay_report: sink alone c%d round %d: %d accepted, %d counted by the sink"
              % (args.concurrency, args.round, accepted, args.sink_messages), file=sys.stderr)
        return 3
    cpu_s = args.sink_cpu_ns / 1e9
    run = {
        "concurrency": args.concurrency,
        "round": args.round,
        "size": bench.get("size"),
        "accepted": accepted,
        "failed": bench["failed"],
        "bench_seconds": bench["seconds"],
        "accepted_per_s": bench["msgs_per_s"],
        "p99_ms": bench["latency_us"]["p99"] / 1000.0,
        "sink_cpu_s": cpu_s,
        "sink_cpu_share": cpu_s / bench["seconds"] if bench["seconds"] > 0 else None,
        "sink_cpu_s_per_1000": cpu_s / accepted * 1000 if accepted else None,
        "command": bench["command"],
    }
    json.dump(run, sys.stdout)
    sys.stdout.write("\n")
    return 0


def cmd_sink_progress(args):
    run = json.loads(sys.stdin.readline())
    print("compare: sink alone c%-5d round %d: %7.1f msgs/s, p99 %.2f ms, sink CPU %s s/1000 "
          "(%s of a core)%s"
          % (run["concurrency"], run["round"], run["accepted_per_s"], run["p99_ms"],
             cr.fmt(run["sink_cpu_s_per_1000"], 3), cr.fmt(run["sink_cpu_share"], 2),
             ", %d FAILED" % run["failed"] if run["failed"] else ""), file=sys.stderr)
    return 0


def load_sink(path):
    runs = []
    with open(path) as f:
        for line in f:
            if line.strip():
                runs.append(json.loads(line))
    return runs


def sink_table(sink_runs):
    lines = [
        "| connections | rounds | msgs/s (median) | p99 ms | sink CPU s / 1000 msgs "
        "| sink's share of one core |",
        "| ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    by_conc = {}
    for run in sink_runs:
        by_conc.setdefault(run["concurrency"], []).append(run)
    for conc in sorted(by_conc):
        runs = by_conc[conc]
        lines.append("| %d | %d | %s | %s | %s | %s |" % (
            conc, len(runs), cr.fmt(cr.median_of(runs, "accepted_per_s")),
            cr.fmt(cr.median_of(runs, "p99_ms"), 2),
            cr.fmt(cr.median_of(runs, "sink_cpu_s_per_1000"), 3),
            cr.fmt(cr.median_of(runs, "sink_cpu_share"), 2)))
    return "\n".join(lines)


def round_table(runs):
    """Per round: the sink's CPU per 1000 relayed messages, and how busy the
    machine was (other work on the machine shows there)."""
    lines = ["| workload | relay | round | sink CPU s / 1000 msgs | machine busy, cores "
             "| of which not the relay, cores |",
             "| --- | --- | ---: | ---: | ---: | ---: |"]
    for run in runs:
        lines.append("| %s | %s | %d | %s | %s | %s |" % (
            run["workload"], cr.SERVERS[run["server"]], run["round"],
            cr.fmt(run["sink_cpu_s_per_1000"], 3), cr.fmt(run["machine_busy_cores"], 2),
            cr.fmt(run["other_busy_cores"], 2)))
    return "\n".join(lines)


def markdown(runs, sink_runs, drain_runs, meta, table, svg_name):
    any_failed = any(r["failed"] for r in runs)
    parts = [
        "# toasterd relaying beside Postfix relaying, both to the same smtp-sink",
        "",
        "- %s, commit `%s`" % (meta.get("date"), meta.get("commit")),
        "- machine: %s, %s cores, %s RAM, kernel %s, work dir on %s" % (
            meta.get("cpu"), meta.get("nproc"), meta.get("memory"), meta.get("kernel"),
            meta.get("filesystem")),
        "- %s; %s" % (meta.get("toasterd"), meta.get("peer")),
        "- command: `%s`" % meta.get("command"),
        "",
        "Each cell is the median of %s round(s); the servers took turns (A B A B …), each round "
        "on a freshly started server with an empty queue and a freshly started sink. "
        "toaster-bench sends from 127.0.0.1 (inside both servers' mynetworks) to user1..100"
        "@sink.test, one recipient per message, %s messages per connection, PIPELINING; each "
        "server queues the message durably, answers 250, and its own SMTP client relays it to "
        "the sink." % (meta.get("rounds"), meta.get("messages_per_session", "100")),
        "",
        cr.main_table(table),
        "",
        "![msgs/s and p99 latency against concurrency](%s)" % svg_name,
        "",
        "## The sink alone",
        "",
        "toaster-bench straight to the sink, the same messages at the same concurrency and "
        "duration, before each round's relays: what the sink can take when nothing stands in "
        "front of it (toaster-bench shares the cores with it).",
        "",
        sink_table(sink_runs) if sink_runs else "(not measured)",
        "",
        "The sink's own CPU while each relay fed it, and how many of the machine's %s cores "
        "were busy (from `/proc/stat`, over the same window as the relay's CPU figure); the "
        "cores busy but not with the relay are toaster-bench, the sink, this script's polling "
        "and anything else that ran on the machine meanwhile:" % meta.get("nproc"),
        "",
        round_table(runs),
        "",
    ]
    if drain_runs:
        parts += [
            "## The queue drained alone",
            "",
            "The delivery side without the SMTP server at work: %s messages (%s, to "
            "user1..100@sink.test) accepted at %s connections with delivery held (toasterd "
            "`outbound_delivery = no`; Postfix `defer_transports = smtp`), then the sink "
            "started and delivery let go (toasterd restarted with `outbound_delivery = yes`, "
            "then `toasterctl queue flush`; Postfix `postfix reload` without "
            "`defer_transports`, then `postqueue -f`). msgs/s: the messages over the time from "
            "letting go until the sink had them all (restart or reload included); CPU from "
            "letting go until the queue was empty. Medians of the rounds."
            % (cr.fmt(drain_runs[0]["messages"], 0), drain_runs[0]["size"],
               drain_runs[0]["fill_concurrency"]),
            "",
            drain_table(drain_runs),
            "",
            drain_round_table(drain_runs),
            "",
        ]
    parts += [
        "## Columns",
        "",
        "- **delivered msgs/s**: messages the sink counted (its `-c` counter) divided by the "
        "time from starting toaster-bench until the sink had counted every message toaster-bench "
        "had accepted (polled every 50 ms). Checked equal to the accepted count in every round.",
        "- **accepted msgs/s**: toaster-bench's own figure, 250 replies per second of its run; "
        "for both servers a 250 means queued (and fsynced), not yet relayed.",
        "- **p50 / p99 ms**: toaster-bench's latency from the end of the message data to the "
        "final reply (queueing, on both sides). Time spent before that, waiting for a banner or "
        "for the reply to MAIL (Postfix's `in_flow_delay`), is not in it but shows in msgs/s.",
        "- **CPU s / 1000 msgs**: user+system CPU time of every process of the relay (toasterd "
        "alone; Postfix's master, smtpd, cleanup, qmgr, trivial-rewrite, smtp and the rest), from "
        "just before the client started until the sink had every message and the relay's queue "
        "was empty, per 1,000 relayed messages. The sink's CPU is not in it (table above).",
        "- **peak RSS / PSS MiB**: the largest sum over the relay's processes of the resident "
        "set and of `Pss`, sampled while the run lasted; for toasterd, HWM is its own `VmHWM`.",
        "- **toasterd ÷ peer msgs/s**: median msgs/s of toasterd over Postfix's; above 1 "
        "toasterd is faster. **peer ÷ toasterd CPU**: Postfix's CPU per message over toasterd's.",
        "",
        "## Notes",
        "",
    ]
    parts += ["- %s" % note for note in meta["note"]]
    if any_failed:
        parts += ["- ⚠ some rounds had failed messages; see the per-round table."]
    parts += [
        "",
        "## Every round",
        "",
        cr.raw_table(runs),
        "",
        "## toaster-bench commands",
        "",
        cr.commands(runs),
        "",
    ]
    if sink_runs:
        parts += ["- sink alone: `%s`" % sink_runs[0]["command"], ""]
    return "\n".join(parts)


def cmd_report(args):
    runs, meta = cr.load(args)
    if not runs:
        print("compare_relay_report: no runs in %s" % args.runs, file=sys.stderr)
        return 1
    sink_runs = load_sink(args.sink_runs)
    drain_runs = load_sink(args.drain_runs) if args.drain_runs else []
    table = cr.summarize(runs)
    svg_name = args.svg.rsplit("/", 1)[-1]
    with open(args.md, "w") as f:
        f.write(markdown(runs, sink_runs, drain_runs, meta, table, svg_name))
    with open(args.svg, "w") as f:
        f.write(cr.svg(table, meta))
    print(cr.main_table(table))
    print()
    print(sink_table(sink_runs))
    if drain_runs:
        print()
        print(drain_table(drain_runs))
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    rec = sub.add_parser("record")
    rec.add_argument("--server", required=True, choices=list(cr.SERVERS))
    rec.add_argument("--workload", required=True)
    rec.add_argument("--concurrency", type=int, required=True)
    rec.add_argument("--round", type=int, required=True)
    rec.add_argument("--bench-json", required=True)
    rec.add_argument("--bench-rc", type=int, required=True)
    rec.add_argument("--mem-json", required=True)
    rec.add_argument("--t0", required=True)
    rec.add_argument("--t-bench", required=True)
    rec.add_argument("--t-end", required=True)
    rec.add_argument("--cpu0-ns", type=int, required=True)
    rec.add_argument("--cpu1-ns", type=int, required=True)
    rec.add_argument("--delivered", type=int, required=True)
    rec.add_argument("--hwm-kib", type=int)
    rec.add_argument("--tls", type=int, choices=(0, 1), default=0)
    rec.add_argument("--sink-cpu-ns", type=int, required=True)
    rec.add_argument("--sink-messages", type=int, required=True)
    rec.add_argument("--machine0", required=True)
    rec.add_argument("--machine1", required=True)
    sub.add_parser("progress")
    srec = sub.add_parser("sink-record")
    srec.add_argument("--bench-json", required=True)
    srec.add_argument("--concurrency", type=int, required=True)
    srec.add_argument("--round", type=int, required=True)
    srec.add_argument("--sink-messages", type=int, required=True)
    srec.add_argument("--sink-cpu-ns", type=int, required=True)
    sub.add_parser("sink-progress")
    rep = sub.add_parser("report")
    for name in ("--runs", "--sink-runs", "--meta", "--md", "--svg"):
        rep.add_argument(name, required=True)
    rep.add_argument("--drain-runs")
    drec = sub.add_parser("drain-record")
    drec.add_argument("--server", required=True, choices=list(cr.SERVERS))
    drec.add_argument("--round", type=int, required=True)
    drec.add_argument("--fill-json", required=True)
    drec.add_argument("--fill-concurrency", type=int, required=True)
    drec.add_argument("--sink-messages", type=int, required=True)
    drec.add_argument("--t0", required=True)
    drec.add_argument("--t-end", required=True)
    drec.add_argument("--cpu0-ns", type=int, required=True)
    drec.add_argument("--cpu1-ns", type=int, required=True)
    drec.add_argument("--sink-cpu-ns", type=int, required=True)
    drec.add_argument("--machine0", required=True)
    drec.add_argument("--machine1", required=True)
    sub.add_parser("drain-progress")
    args = parser.parse_args()
    return {"record": cmd_record, "progress": cmd_progress, "sink-record": cmd_sink_record,
            "sink-progress": cmd_sink_progress, "report": cmd_report,
            "drain-record": cmd_drain_record, "drain-progress": cmd_drain_progress}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
