#!/usr/bin/python3
"""bench/compare_report.py - numbers and pictures for bench/compare.sh.

  record ...      one run's measurements as one JSON line on stdout; exits 3
                  when the delivered count differs from the accepted count,
                  or (--tls 1) when the run made no TLS handshake
  progress        reads such a line on stdin, prints a one-line summary
  report --runs FILE --meta FILE --md FILE --svg FILE
                  medians per workload and server, the markdown report with
                  every round's raw numbers, and the SVG chart (throughput and
                  p99 against concurrency); prints the main table on stdout

Standard library only (Debian's /usr/bin/python3, no matplotlib).
"""

import argparse
import json
import math
import statistics
import sys
from collections import OrderedDict

SERVERS = OrderedDict([("toaster", "toasterd"), ("peer", "Postfix → Dovecot LMTP")])
COLORS = {"toaster": "#d9480f", "peer": "#1c7ed6"}


# ---------------------------------------------------------------- record --

def cmd_record(args):
    with open(args.bench_json) as f:
        bench = json.load(f)
    with open(args.mem_json) as f:
        mem = json.load(f)
    accepted = bench["messages"]
    wall_s = float(args.t_end) - float(args.t0)
    if args.delivered != accepted:
        print("compare_report: %s %s round %d: %d messages accepted (250) but %d in Maildir"
              % (args.workload, args.server, args.round, accepted, args.delivered), file=sys.stderr)
        return 3
    if wall_s <= 0:
        print("compare_report: run took %.6f s?" % wall_s, file=sys.stderr)
        return 3
    handshakes = bench.get("tls_handshakes", 0)
    # A session that failed may have stopped before its handshake (its
    # error is in the report); a run with none at all did not use TLS.
    if args.tls == 1 and (not bench.get("starttls") or handshakes == 0):
        print("compare_report: %s %s round %d: %d TLS handshakes for %d connections"
              % (args.workload, args.server, args.round, handshakes, bench["connects"]),
              file=sys.stderr)
        return 3
    cpu_s = (args.cpu1_ns - args.cpu0_ns) / 1e9
    run = {
        "workload": args.workload,
        "server": args.server,
        "concurrency": args.concurrency,
        "round": args.round,
        "size": bench.get("size"),
        "accepted": accepted,
        "failed": bench["failed"],
        "errors": bench["errors"],
        "bench_rc": args.bench_rc,
        "bench_seconds": bench["seconds"],
        "accepted_per_s": bench["msgs_per_s"],
        "p50_ms": bench["latency_us"]["p50"] / 1000.0,
        "p99_ms": bench["latency_us"]["p99"] / 1000.0,
        "delivered": args.delivered,
        "wall_s": wall_s,
        "drain_s": float(args.t_end) - float(args.t_bench),
        "delivered_per_s": args.delivered / wall_s,
        "cpu_s": cpu_s,
        "cpu_s_per_1000": cpu_s / args.delivered * 1000 if args.delivered else None,
        "peak_rss_mib": mem["peak_rss_kib"] / 1024.0,
        "peak_pss_mib": mem["peak_pss_kib"] / 1024.0,
        "peak_processes": mem["peak_processes"],
        "rss_samples": mem["rss_samples"],
        "pss_samples": mem["pss_samples"],
        "rss_interval_s": mem["mean_interval_s"],
        "sampler_s": mem["sample_seconds_total"],
        "hwm_mib": args.hwm_kib / 1024.0 if args.hwm_kib is not None else None,
        "connects": bench["connects"],
        "tls_handshakes": handshakes,
        "tls": bench.get("tls", ""),
        "command": bench["command"],
    }
    json.dump(run, sys.stdout)
    sys.stdout.write("\n")
    return 0


def cmd_progress(args):
    run = json.loads(sys.stdin.readline())
    print("compare: %-8s %-8s round %d: %7.1f msgs/s delivered (%7.1f accepted), p99 %.1f ms, "
          "CPU %s s/1000, peak RSS %.0f MiB, drain %.2f s%s"
          % (run["workload"], run["server"], run["round"], run["delivered_per_s"],
             run["accepted_per_s"], run["p99_ms"], fmt(run["cpu_s_per_1000"], 2),
             run["peak_rss_mib"], run["drain_s"],
             ", %d FAILED" % run["failed"] if run["failed"] else ""), file=sys.stderr)
    return 0


# ---------------------------------------------------------------- report --

def fmt(value, digits=1):
    if value is None:
        return "–"
    if digits == 0 or abs(value) >= 1000:
        return "{:,.0f}".format(value)
    return "{:,.{}f}".format(value, digits)


def median_of(runs, key):
    values = [r[key] for r in runs if r[key] is not None]
    return statistics.median(values) if values else None


def load(args):
    runs = []
    with open(args.runs) as f:
        for line in f:
            if line.strip():
                runs.append(json.loads(line))
    meta = {"note": []}
    with open(args.meta) as f:
        for line in f:
            key, _, value = line.rstrip("\n").partition("\t")
            if key == "note":
                meta["note"].append(value)
            else:
                meta[key] = value
    return runs, meta


def summarize(runs):
    """OrderedDict workload -> {server: medians}, in the order workloads ran."""
    keys = ["delivered_per_s", "accepted_per_s", "p50_ms", "p99_ms", "cpu_s_per_1000",
            "peak_rss_mib", "peak_pss_mib", "hwm_mib", "peak_processes"]
    table = OrderedDict()
    for run in runs:
        table.setdefault(run["workload"], OrderedDict())
    for workload, servers in table.items():
        for server in SERVERS:
            mine = [r for r in runs if r["workload"] == workload and r["server"] == server]
            if not mine:
                continue
            row = {k: median_of(mine, k) for k in keys}
            row["concurrency"] = mine[0]["concurrency"]
            row["size"] = mine[0]["size"]
            row["rounds"] = len(mine)
            row["failed"] = sum(r["failed"] for r in mine)
            servers[server] = row
    return table


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def workload_label(row):
    if row["size"] and "," in row["size"]:
        return "%d conns, mix %s" % (row["concurrency"], row["size"])
    return "%d conns, %s" % (row["concurrency"], row["size"])


def main_table(table):
    lines = [
        "| workload | server | delivered msgs/s | accepted msgs/s | p50 ms | p99 ms "
        "| CPU s / 1000 msgs | peak RSS MiB | peak PSS MiB | toasterd ÷ peer msgs/s "
        "| peer ÷ toasterd CPU |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for workload, servers in table.items():
        t, p = servers.get("toaster"), servers.get("peer")
        for server, row in servers.items():
            rss = fmt(row["peak_rss_mib"], 0)
            if row["hwm_mib"] is not None:
                rss += " (HWM %s)" % fmt(row["hwm_mib"], 0)
            failed = " ⚠ %d failed" % row["failed"] if row["failed"] else ""
            if server == "toaster" and p is not None:
                r_msgs = fmt(ratio(t["delivered_per_s"], p["delivered_per_s"]), 2) + "×"
                r_cpu = fmt(ratio(p["cpu_s_per_1000"], t["cpu_s_per_1000"]), 2) + "×"
            else:
                r_msgs = r_cpu = ""
            lines.append("| %s | %s%s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                workload_label(row), SERVERS[server], failed, fmt(row["delivered_per_s"]),
                fmt(row["accepted_per_s"]), fmt(row["p50_ms"], 2), fmt(row["p99_ms"], 2),
                fmt(row["cpu_s_per_1000"], 3), rss, fmt(row["peak_pss_mib"], 0), r_msgs, r_cpu))
    return "\n".join(lines)


def raw_table(runs):
    lines = [
        "| workload | server | round | accepted | failed | delivered | wall s | drain s "
        "| delivered msgs/s | accepted msgs/s | p50 ms | p99 ms | CPU s | CPU s / 1000 "
        "| peak RSS MiB | peak PSS MiB | peak processes | memory samples: RSS, PSS (sampler s) |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
        "| ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in runs:
        errors = ", ".join("%s: %s" % kv for kv in sorted(r["errors"].items()))
        lines.append("| %s | %s | %d | %d | %d%s | %d | %.2f | %.2f | %s | %s | %s | %s | %s | %s "
                     "| %s | %s | %d | %d (every %s s), %d (%s s) |" % (
                         r["workload"], SERVERS[r["server"]], r["round"], r["accepted"],
                         r["failed"], " (%s)" % errors if errors else "", r["delivered"],
                         r["wall_s"], r["drain_s"], fmt(r["delivered_per_s"]),
                         fmt(r["accepted_per_s"]), fmt(r["p50_ms"], 2), fmt(r["p99_ms"], 2),
                         fmt(r["cpu_s"], 2), fmt(r["cpu_s_per_1000"], 3),
                         fmt(r["peak_rss_mib"], 0), fmt(r["peak_pss_mib"], 0),
                         r["peak_processes"], r["rss_samples"], fmt(r["rss_interval_s"], 2),
                         r["pss_samples"], fmt(r["sampler_s"], 2)))
    return "\n".join(lines)


def commands(runs):
    seen = OrderedDict()
    for r in runs:
        seen.setdefault((r["workload"], r["server"]), r["command"])
    return "\n".join("- %s, %s: `%s`" % (w, SERVERS[s], c) for (w, s), c in seen.items())


def tls_summary(runs):
    """Per server: what was negotiated and how many handshakes were made."""
    lines = []
    for server, label in SERVERS.items():
        mine = [r for r in runs if r["server"] == server]
        if not mine:
            continue
        agreed = sorted({r.get("tls") or "?" for r in mine})
        handshakes = sum(r.get("tls_handshakes", 0) for r in mine)
        connects = sum(r.get("connects", 0) for r in mine)
        lines.append("%s: %s; %d handshakes for %d connections over all rounds"
                     % (label, ", ".join(agreed), handshakes, connects))
    return "; ".join(lines)


def markdown(runs, meta, table, svg_name):
    any_failed = any(r["failed"] for r in runs)
    is_tls = meta.get("tls") == "1"
    is_filters = meta.get("filters") == "1"
    is_sieve = meta.get("sieve") == "1"
    parts = [
        "# toasterd beside Postfix → Dovecot LMTP%s%s%s" % (
            ", filters on (toasterd's; Rspamd with Redis and clamd, and OpenDKIM, as Postfix "
            "milters)" if is_filters else "",
            ", a global Sieve script on both (toasterd's; Pigeonhole in Dovecot LMTP)"
            if is_sieve else "",
            ", SMTP over STARTTLS" if is_tls else ""),
        "",
        "- %s, commit `%s`" % (meta.get("date"), meta.get("commit")),
        "- machine: %s, %s cores, %s RAM, kernel %s, work dir on %s" % (
            meta.get("cpu"), meta.get("nproc"), meta.get("memory"), meta.get("kernel"),
            meta.get("filesystem")),
        "- %s; %s" % (meta.get("toasterd"), meta.get("peer")),
        "- command: `%s`" % meta.get("command"),
        "",
        "Each cell is the median of %s round(s); the servers took turns (A B A B …), "
        "each round on a freshly started server with an empty mail store and queue, "
        "100 users, one recipient per message, %s messages per connection, PIPELINING%s."
        % (meta.get("rounds"), meta.get("messages_per_session", "100"),
           ", and STARTTLS on every connection (one full handshake each; the messages "
           "then go encrypted)" if is_tls else ""),
        "",
        main_table(table),
        "",
        "![msgs/s and p99 latency against concurrency](%s)" % svg_name,
        "",
        "## Columns",
        "",
        "- **delivered msgs/s**: message files found in the Maildirs (`new/` and `cur/`) after "
        "the run, divided by the time from starting toaster-bench until the last accepted "
        "message was in a Maildir (for Postfix: until its queue was empty; polled every 50 ms). "
        "Checked equal to the accepted count in every round.",
        "- **accepted msgs/s**: toaster-bench's own figure, 250 replies per second of its run. "
        "For Postfix a 250 means queued, not yet delivered.",
        "- **p50 / p99 ms**: toaster-bench's latency from the end of the message data to the "
        "final reply (for Postfix that is queueing, not delivery). Time spent before that, "
        "waiting for a banner or for the reply to MAIL (Postfix's `in_flow_delay`), is not in "
        "it but shows in msgs/s.",
        "- **CPU s / 1000 msgs**: user+system CPU time of every process of the server stack "
        "(toasterd alone; Postfix's master, smtpd, cleanup, qmgr, trivial-rewrite, lmtp and the "
        "rest plus all of Dovecot), from just before the client started until the last message "
        "was delivered, per 1,000 delivered messages.",
        "- **peak RSS / PSS MiB**: the largest sum over the stack's processes of the resident "
        "set (`/proc/PID/statm`, as `VmRSS`) and of `Pss` (`/proc/PID/smaps_rollup`), sampled "
        "while the run lasted (the per-round table says how often). RSS counts pages shared "
        "between processes once per process; PSS splits them, so it adds up to the real "
        "footprint. For toasterd, HWM is its own `VmHWM`.",
        "- **toasterd ÷ peer msgs/s**: median delivered msgs/s of toasterd over the peer's; "
        "above 1 toasterd is faster. **peer ÷ toasterd CPU**: the peer's CPU per message over "
        "toasterd's; above 1 toasterd is cheaper.",
        "",
        "## Notes",
        "",
    ]
    parts += ["- %s" % note for note in meta["note"]]
    if is_tls:
        parts += ["- TLS negotiated (toaster-bench's report of a handshake): %s."
                  % tls_summary(runs)]
    if any_failed:
        parts += ["- ⚠ some rounds had failed messages; see the per-round table."]
    parts += [
        "",
        "## Every round",
        "",
        raw_table(runs),
        "",
        "## toaster-bench commands",
        "",
        commands(runs),
        "",
    ]
    return "\n".join(parts)


# ------------------------------------------------------------------- svg --

def svg_escape(text):
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class Panel:
    """One chart with log axes (the servers differ by an order of magnitude
    and connections go 1, 10, 100, 1000) in a box at (x, y)."""

    def __init__(self, x, y, width, height, x_values, y_values):
        self.x, self.y, self.width, self.height = x, y, width, height
        # A little room on both sides so no point sits on the frame.
        self.x_lo = math.log10(min(x_values)) - 0.15
        self.x_hi = math.log10(max(x_values)) + 0.15
        positive = [v for v in y_values if v and v > 0] or [1.0]
        self.y_lo = math.floor(math.log10(min(positive)))
        self.y_hi = math.ceil(math.log10(max(positive)))
        if self.y_hi == self.y_lo:
            self.y_hi += 1

    def px(self, value):
        span = self.x_hi - self.x_lo
        return self.x + (math.log10(value) - self.x_lo) / span * self.width

    def py(self, value):
        span = self.y_hi - self.y_lo
        return self.y + self.height - (math.log10(value) - self.y_lo) / span * self.height

    def y_ticks(self):
        """1, 2 and 5 in each decade: enough lines to read a value off."""
        ticks = []
        for exponent in range(int(self.y_lo), int(self.y_hi) + 1):
            for mantissa in (1, 2, 5):
                value = mantissa * 10.0 ** exponent
                if value <= 10.0 ** self.y_hi:
                    ticks.append(value)
        return ticks

    def frame(self, title, y_label, x_values):
        out = ['<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="none" stroke="#999"/>'
               % (self.x, self.y, self.width, self.height)]
        for value in self.y_ticks():
            y = self.py(value)
            label = fmt(value, 0) if value >= 1 else "%g" % value
            out.append('<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#e5e5e5"/>'
                       % (self.x, y, self.x + self.width, y))
            out.append('<text x="%.1f" y="%.1f" text-anchor="end" font-size="11">%s</text>'
                       % (self.x - 6, y + 4, label))
        for value in sorted(set(x_values)):
            x = self.px(value)
            out.append('<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#e5e5e5"/>'
                       % (x, self.y, x, self.y + self.height))
            out.append('<text x="%.1f" y="%.1f" text-anchor="middle" font-size="11">%s</text>'
                       % (x, self.y + self.height + 16, fmt(value, 0)))
        out.append('<text x="%.1f" y="%.1f" text-anchor="middle" font-size="14" '
                   'font-weight="bold">%s</text>' % (self.x + self.width / 2, self.y - 10,
                                                      svg_escape(title)))
        out.append('<text x="%.1f" y="%.1f" text-anchor="middle" font-size="12">'
                   'concurrent connections (log)</text>'
                   % (self.x + self.width / 2, self.y + self.height + 34))
        out.append('<text transform="translate(%.1f,%.1f) rotate(-90)" text-anchor="middle" '
                   'font-size="12">%s</text>' % (self.x - 52, self.y + self.height / 2,
                                                 svg_escape(y_label)))
        return out

    def series(self, points, color, hollow=False):
        # A log axis has no place for zero (a server that delivered nothing).
        points = [(x, y) for x, y in points if y is not None and y > 0]
        out = []
        if len(points) > 1 and not hollow:
            path = " ".join("%.1f,%.1f" % (self.px(x), self.py(y)) for x, y in points)
            out.append('<polyline points="%s" fill="none" stroke="%s" stroke-width="2"/>'
                       % (path, color))
        for x, y in points:
            if hollow:
                out.append('<rect x="%.1f" y="%.1f" width="9" height="9" fill="white" '
                           'stroke="%s" stroke-width="2"/>' % (self.px(x) - 4.5, self.py(y) - 4.5,
                                                               color))
            else:
                out.append('<circle cx="%.1f" cy="%.1f" r="4" fill="%s"/>'
                           % (self.px(x), self.py(y), color))
        return out


def svg(table, meta):
    """Two panels: delivered msgs/s and p99 against concurrency."""
    fixed = {s: [] for s in SERVERS}   # (concurrency, row) of the fixed-size workloads
    mixed = {s: [] for s in SERVERS}
    for servers in table.values():
        for server, row in servers.items():
            is_mix = bool(row["size"]) and "," in row["size"]
            (mixed if is_mix else fixed)[server].append((row["concurrency"], row))
    all_rows = [row for servers in table.values() for row in servers.values()]
    x_values = [row["concurrency"] for row in all_rows]
    width, height = 960, 440
    left = Panel(90, 50, 360, 300, x_values, [r["delivered_per_s"] for r in all_rows])
    right = Panel(570, 50, 360, 300, x_values, [r["p99_ms"] for r in all_rows])
    out = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" '
           'viewBox="0 0 %d %d" font-family="sans-serif">' % (width, height, width, height),
           '<rect width="100%" height="100%" fill="white"/>']
    out += left.frame("delivered msgs/s (median)", "messages per second (log)", x_values)
    out += right.frame("p99 latency, end of data → reply", "milliseconds (log)", x_values)
    for server in SERVERS:
        pts = sorted(fixed[server], key=lambda p: p[0])
        mix = mixed[server]
        out += left.series([(c, r["delivered_per_s"]) for c, r in pts], COLORS[server])
        out += left.series([(c, r["delivered_per_s"]) for c, r in mix], COLORS[server], True)
        out += right.series([(c, r["p99_ms"]) for c, r in pts if r["p99_ms"]], COLORS[server])
        out += right.series([(c, r["p99_ms"]) for c, r in mix if r["p99_ms"]], COLORS[server],
                            True)
    legend_y = height - 30
    x = 90
    for server, label in SERVERS.items():
        out.append('<circle cx="%d" cy="%d" r="5" fill="%s"/>' % (x, legend_y, COLORS[server]))
        out.append('<text x="%d" y="%d" font-size="12">%s</text>'
                   % (x + 10, legend_y + 4, svg_escape(label)))
        x += 200
    sizes = sorted({r["size"] for r in all_rows if r["size"] and "," not in r["size"]})
    mixes = sorted({r["size"] for r in all_rows if r["size"] and "," in r["size"]})
    out.append('<text x="%d" y="%d" font-size="12">● %s messages%s</text>'
               % (x, legend_y + 4, svg_escape(", ".join(sizes)),
                  svg_escape("   □ size mix %s" % ", ".join(mixes)) if mixes else ""))
    out.append('<text x="%d" y="%d" font-size="11" fill="#555">%s</text>'
               % (90, height - 10, svg_escape("commit %s, %s, %s cores, %s" % (
                   meta.get("commit"), meta.get("date"), meta.get("nproc"), meta.get("cpu")))))
    out.append("</svg>")
    return "\n".join(out) + "\n"


def cmd_report(args):
    runs, meta = load(args)
    if not runs:
        print("compare_report: no runs in %s" % args.runs, file=sys.stderr)
        return 1
    table = summarize(runs)
    svg_name = args.svg.rsplit("/", 1)[-1]
    with open(args.md, "w") as f:
        f.write(markdown(runs, meta, table, svg_name))
    with open(args.svg, "w") as f:
        f.write(svg(table, meta))
    print(main_table(table))
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    rec = sub.add_parser("record")
    rec.add_argument("--server", required=True, choices=list(SERVERS))
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
    sub.add_parser("progress")
    rep = sub.add_parser("report")
    for name in ("--runs", "--meta", "--md", "--svg"):
        rep.add_argument(name, required=True)
    args = parser.parse_args()
    return {"record": cmd_record, "progress": cmd_progress, "report": cmd_report}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
