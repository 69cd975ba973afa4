"""Prometheus metrics on /metrics of the HTTP listener (core/metrics.c),
against the real toasterd.

Every scrape is read by a small strict parser of the text exposition
format 0.0.4: each line is a HELP, a TYPE or a sample; every sample's
family has one HELP and one TYPE before it; counters end in _total; no
series appears twice; label values are unescaped by the grammar; each
histogram has cumulative buckets ending in +Inf equal to its _count.
Then exact deltas: mail accepted, refused for an unknown recipient and
greylisted moves those counters and the filter verdicts by exactly that;
the refusals the SMTP session decides itself (syntax, SIZE, a message too
big, too many recipients, MAIL before AUTH and AUTH before STARTTLS on
submission) and an LMTP recipient whose mailbox is broken move their
reasons by exactly one each, and nothing else; an IMAP session moves the
session, login and command counters, the commands answered without a
worker (CAPABILITY, NOOP, ID, LOGOUT) included; a relayed message that is
deferred once, then delivered, moves the agent's counters and its queue
gauges, and a held entry the held gauge. A client outside metrics_allow
gets 403.
A scrape costs the same with thousands of idle connections open as with
none (METRICS_IDLE_CONNECTIONS, default 2,000; the README's figure was
measured with 10,000). Every address is on 127.0.0.0/8.
"""

import http.client
import imaplib
import math
import os
import re
import smtplib
import socket
import statistics
import time

import subprocess

import pytest

from conftest import TOASTERCTL, free_ports, wait_until
from smtp_sink import SmtpSink

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"'
SAMPLE_RE = re.compile(r"^(%s)(?:\{(%s(?:,%s)*)?\})? (\S+)$" % (NAME, LABEL, LABEL))
LABEL_RE = re.compile(LABEL)
HELP_RE = re.compile(r"^# HELP (%s) (.*)$" % NAME)
TYPE_RE = re.compile(r"^# TYPE (%s) (counter|gauge|histogram|summary|untyped)$" % NAME)


def unescape(value):
    return re.sub(r"\\(.)", lambda m: {"n": "\n"}.get(m.group(1), m.group(1)), value)


def parse(text):
    """The document -> {(name, frozenset(labels.items())): float}; asserts
    the grammar and the format's rules along the way."""
    assert text.endswith("\n"), text[-200:]
    helps, types, series = {}, {}, {}
    histograms = {}
    for number, line in enumerate(text[:-1].split("\n"), 1):
        where = "line %d: %r" % (number, line)
        m = HELP_RE.match(line)
        if m:
            assert m.group(1) not in helps, "second HELP, " + where
            assert m.group(1) not in types, "HELP after TYPE, " + where
            helps[m.group(1)] = m.group(2)
            continue
        m = TYPE_RE.match(line)
        if m:
            assert m.group(1) not in types, "second TYPE, " + where
            assert m.group(1) in helps, "TYPE without HELP, " + where
            types[m.group(1)] = m.group(2)
            continue
        assert not line.startswith("#"), "unknown comment, " + where
        m = SAMPLE_RE.match(line)
        assert m, "not a sample, " + where
        name, label_text, value_text = m.group(1), m.group(2), m.group(7)
        labels = {}
        for lm in LABEL_RE.finditer(label_text or ""):
            assert lm.group(1) not in labels, "label twice, " + where
            labels[lm.group(1)] = unescape(lm.group(2))
        value = float(value_text)  # also "+Inf", "NaN" in the grammar; ours are numbers
        assert not math.isnan(value) and value >= 0, where
        family = name
        for suffix in ("_bucket", "_sum", "_count"):
            if name.endswith(suffix) and types.get(name[: -len(suffix)]) == "histogram":
                family = name[: -len(suffix)]
        assert family in types, "sample without TYPE, " + where
        kind = types[family]
        if kind == "counter":
            assert name.endswith("_total"), "counter not named _total, " + where
        if kind == "histogram":
            assert family != name, "histogram sample without suffix, " + where
            key = frozenset((k, v) for k, v in labels.items() if k != "le")
            h = histograms.setdefault((family, key), {"buckets": []})
            if name.endswith("_bucket"):
                assert "le" in labels, where
                h["buckets"].append((labels["le"], value))
            else:
                h[name[len(family) + 1:]] = value
        else:
            assert "le" not in labels, where
        key = (name, frozenset(labels.items()))
        assert key not in series, "duplicate series, " + where
        series[key] = value
    for (family, _labels), h in histograms.items():
        les = [le for le, _ in h["buckets"]]
        assert les[-1] == "+Inf", family
        bounds = [float(le) for le in les[:-1]]
        assert bounds == sorted(bounds) and len(set(bounds)) == len(bounds), family
        counts = [v for _, v in h["buckets"]]
        assert counts == sorted(counts), (family, counts)
        assert counts[-1] == h["count"], family
        assert "sum" in h, family
    return series


def value(series, name, **labels):
    return series[(name, frozenset(labels.items()))]


def total(series, name):
    """Sum over every label set of name (e.g. every reactor)."""
    return sum(v for (n, _), v in series.items() if n == name)


def scrape(t, source="127.0.0.1", path="/metrics", method="GET"):
    conn = http.client.HTTPConnection("127.0.0.1", t.ports["http_listen"], timeout=10,
                                      source_address=(source, 0))
    try:
        conn.request(method, path, headers={"Host": "mx.example.com"})
        resp = conn.getresponse()
        return resp.status, resp.getheader("Content-Type"), resp.read()
    finally:
        conn.close()


def metrics(t):
    status, ctype, body = scrape(t)
    assert status == 200, (status, body)
    assert ctype == "text/plain; version=0.0.4; charset=utf-8", ctype
    return parse(body.decode())


def message(sender, subject):
    return ("From: <%s>\r\nTo: <carol@example.org>\r\nSubject: %s\r\n"
            "Date: Sat, 05 Dec 2026 04:00:00 +0000\r\nMessage-ID: <%s@remote.test>\r\n\r\n"
            "Hello there.\r\n" % (sender, subject, subject)).encode()


# Every reason label (core/stats.c): a fixed set.
REASONS = {"recipient_unknown", "relay_denied", "rate_limit", "greylist", "spam", "virus",
           "policy", "size", "protocol", "tls_required", "internal", "auth_required",
           "auth_failed", "too_many_recipients", "mailbox_full", "other"}


def reason_deltas(before, after):
    """{(family, reason): delta} for every SMTP refusal series that moved."""
    moved = {}
    for family in ("toaster_smtp_refused_total", "toaster_smtp_deferred_total"):
        for reason in REASONS:
            d = value(after, family, reason=reason) - value(before, family, reason=reason)
            if d != 0:
                moved[(family, reason)] = d
    return moved


# ---- the tests -------------------------------------------------------------------


def test_parser_refuses_what_breaks_the_format():
    """The test's own parser: each rule it checks, broken once."""
    good = "# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"1\"} 3\n"
    assert parse(good) == {("a_total", frozenset({("x", "1")})): 3.0}
    for bad in (
        "a_total 3\n",                                                # no TYPE
        "# HELP a A.\n# TYPE a counter\na 3\n",                        # counter not _total
        good + "a_total{x=\"1\"} 4\n",                                 # duplicate series
        "# HELP a_total A.\n# TYPE a_total counter\na_total{x=1} 3\n",  # unquoted value
        "# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"1\"} 2\n"
        "h_bucket{le=\"+Inf\"} 1\nh_sum 0\nh_count 1\n",               # not cumulative
        "# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"+Inf\"} 1\nh_sum 0\nh_count 2\n",
    ):
        with pytest.raises(AssertionError):
            parse(bad)
    assert parse('# HELP b B.\n# TYPE b gauge\nb{v="q\\"\\\\\\n"} 1\n') == {
        ("b", frozenset({("v", 'q"\\\n')})): 1.0}


def test_mail_counters(make_toaster):
    t = make_toaster(config={"greylist": "always", "greylist_local": "yes",
                             "greylist_delay": "1s", "clamav": "no"})
    before = metrics(t)
    assert value(before, "toaster_reactors") == 2
    assert value(before, "toaster_build_info", version="0.1.0") == 1
    for r in ("0", "1"):
        assert ("toaster_connections_open", frozenset({("reactor", r)})) in before

    msg = message("first@remote.test", "greylisted")
    # 1: greylisted (451 4.7.1 at the end of data), and one unknown recipient.
    with smtplib.SMTP("127.0.0.1", t.ports["smtp_listen"], timeout=30) as s:
        s.ehlo("client.remote.test")
        assert s.mail("first@remote.test")[0] == 250
        code, _ = s.rcpt("nobody@example.com")
        assert code == 550
        assert s.rcpt("carol@example.org")[0] == 250
        code, resp = s.data(msg)
        assert code == 451 and b"Greylisted" in resp, (code, resp)
    time.sleep(1.5)
    # 2: the retry passes.
    with smtplib.SMTP("127.0.0.1", t.ports["smtp_listen"], timeout=30) as s:
        s.ehlo("client.remote.test")
        s.sendmail("first@remote.test", ["carol@example.org"], msg)
    assert wait_until(lambda: len(t.messages("carol@example.org")) == 1, 5.0)

    after = metrics(t)

    def delta(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    def delta_total(name):
        return total(after, name) - total(before, name)

    assert delta("toaster_smtp_refused_total", reason="recipient_unknown") == 1
    assert delta("toaster_smtp_deferred_total", reason="greylist") == 1
    for reason in REASONS - {"recipient_unknown", "greylist"}:
        assert delta("toaster_smtp_refused_total", reason=reason) == 0, reason
        assert delta("toaster_smtp_deferred_total", reason=reason) == 0, reason
    assert delta_total("toaster_smtp_messages_accepted_total") == 1
    assert delta_total("toaster_smtp_messages_refused_total") == 1
    # The two SMTP connections and this scrape's own.
    assert delta_total("toaster_connections_total") == 3
    assert delta_total("toaster_received_bytes_total") > 2 * len(msg)
    assert delta_total("toaster_sent_bytes_total") > 0
    assert delta("toaster_smtp_reply_latency_seconds_count") == 2
    # The filters: the chain's verdicts, the spam filter's (it greylists).
    assert delta("toaster_filter_verdicts_total", filter="chain", verdict="defer") == 1
    assert delta("toaster_filter_verdicts_total", filter="chain", verdict="accept") == 1
    assert delta("toaster_filter_verdicts_total", filter="chain", verdict="reject") == 0
    assert delta("toaster_filter_verdicts_total", filter="spam", verdict="defer") == 1
    assert delta("toaster_filter_verdicts_total", filter="spam", verdict="accept") == 1
    assert delta("toaster_filter_verdicts_total", filter="clamav", verdict="accept") == 0
    assert delta("toaster_filter_duration_seconds_count", filter="spam") == 2
    assert delta("toaster_filter_duration_seconds_count", filter="chain") == 2
    assert delta("toaster_filter_duration_seconds_count", filter="clamav") == 0
    # One delivery, at least one sync for it.
    assert delta("toaster_delivery_messages_total") == 1
    assert delta("toaster_delivery_syncs_total") >= 1
    assert delta("toaster_worker_jobs_total") >= 2
    assert value(after, "toaster_worker_threads") == 2


def test_session_refusals(make_toaster):
    """Refusals the SMTP session writes itself, each by its reason, once."""
    (lmtp_port,) = free_ports(1)
    t = make_toaster(config={"loopback_is_secure": "no", "message_size_limit": "4k",
                             "recipient_limit": "2", "clamav": "no",
                             "lmtp_listen": "127.0.0.1:%d" % lmtp_port})
    # dave's Maildir cannot take mail: new/ is a file.
    maildir = t.maildir("dave@example.org")
    (maildir / "tmp").mkdir(parents=True)
    (maildir / "cur").mkdir()
    (maildir / "new").write_bytes(b"not a directory")
    before = metrics(t)
    assert {r for (n, labels) in before for k, r in labels
            if n == "toaster_smtp_refused_total" and k == "reason"} == REASONS

    with smtplib.SMTP("127.0.0.1", t.ports["smtp_listen"], timeout=30) as s:
        s.ehlo("client.remote.test")
        assert s.docmd("FROB")[0] == 500                                     # protocol
        assert s.mail("a@remote.test", ["SIZE=5000"])[0] == 552              # size
        assert s.mail("a@remote.test")[0] == 250
        assert s.rcpt("carol@example.org")[0] == 250
        assert s.rcpt("nobody@example.com")[0] == 550                        # recipient_unknown
        assert s.rcpt("dave@example.org")[0] == 250
        assert s.rcpt("alice@example.com")[0] == 452                         # too_many_recipients
        big = message("a@remote.test", "big") + b"x" * 5000 + b"\r\n"
        code, _ = s.data(big)
        assert code == 552                                                   # size
        assert s.noop()[0] == 250
    with smtplib.SMTP("127.0.0.1", t.ports["submission_listen"], timeout=30) as s:
        s.ehlo("client.remote.test")
        assert not s.has_extn("auth")
        assert s.mail("alice@example.com")[0] == 530                         # auth_required
        assert s.docmd("AUTH", "PLAIN AGFsaWNlQGV4YW1wbGUuY29tAGFsaWNlLXNlY3JldA==")[0] == 538
    # LMTP: one recipient's mailbox is broken (451 for it alone).
    with smtplib.LMTP("127.0.0.1", lmtp_port, local_hostname="front.test", timeout=30) as c:
        assert c.ehlo()[0] == 250
        assert c.mail("sender@front.test")[0] == 250
        assert c.rcpt("carol@example.org")[0] == 250
        assert c.rcpt("dave@example.org")[0] == 250
        replies = [c.data(message("sender@front.test", "lmtp"))[0], c.getreply()[0]]
        assert replies == [250, 451], replies
    assert wait_until(lambda: len(t.messages("carol@example.org")) == 1, 5.0)

    after = metrics(t)
    assert reason_deltas(before, after) == {
        ("toaster_smtp_refused_total", "protocol"): 1,
        ("toaster_smtp_refused_total", "size"): 2,
        ("toaster_smtp_refused_total", "recipient_unknown"): 1,
        ("toaster_smtp_deferred_total", "too_many_recipients"): 1,
        ("toaster_smtp_refused_total", "auth_required"): 1,
        ("toaster_smtp_refused_total", "tls_required"): 1,
        ("toaster_smtp_deferred_total", "internal"): 1,
    }


def test_postscreen_refusals(make_toaster):
    """Refused before the banner: the access list's reject is policy, a
    pregreet protocol."""
    t = make_toaster(config={"postscreen_greet_wait": "2s",
                             "postscreen_access": "127.0.0.7 reject"})
    before = metrics(t)
    with socket.create_connection(("127.0.0.1", t.port), timeout=10,
                                  source_address=("127.0.0.7", 0)) as s:
        assert s.recv(512).startswith(b"554 5.7.1 Service unavailable")
    with socket.create_connection(("127.0.0.1", t.port), timeout=10,
                                  source_address=("127.0.0.9", 0)) as s:
        s.sendall(b"EHLO early.test\r\n")  # before the banner
        assert s.recv(512).startswith(b"554 5.5.1 Error: no SMTP service")
    assert wait_until(lambda: total(metrics(t), "toaster_connections_open") == 1, 5.0)
    assert reason_deltas(before, metrics(t)) == {
        ("toaster_smtp_refused_total", "policy"): 1,
        ("toaster_smtp_refused_total", "protocol"): 1,
    }


def test_imap_commands_answered_by_the_session(make_toaster):
    """CAPABILITY, NOOP, ID, LOGOUT (no worker) count like SELECT (a
    worker), each once; an unknown name as other."""
    t = make_toaster()
    before = metrics(t)
    imap = imaplib.IMAP4("127.0.0.1", t.ports["imap_listen"], timeout=30)  # CAPABILITY
    assert imap.noop()[0] == "OK"
    assert imap.xatom("ID", "NIL")[0] == "OK"
    imaplib.Commands.setdefault("FROBNICATE", ("NONAUTH", "AUTH", "SELECTED"))
    with pytest.raises(imaplib.IMAP4.error):
        imap._simple_command("FROBNICATE")  # BAD
    imap.login("alice@example.com", "alice-secret")
    assert imap.select("INBOX")[0] == "OK"
    assert imap.noop()[0] == "OK"
    imap.logout()
    assert wait_until(lambda: value(metrics(t), "toaster_imap_sessions_open") == 0, 5.0)
    after = metrics(t)
    moved = {}
    for (name, labels), v in after.items():
        if name == "toaster_imap_commands_total":
            d = v - before[(name, labels)]
            if d:
                moved[dict(labels)["command"]] = d
    assert moved == {"CAPABILITY": 1, "NOOP": 2, "ID": 1, "other": 1, "LOGIN": 1,
                     "SELECT": 1, "LOGOUT": 1}, moved
    # Only SELECT and the NOOP in the selected state ran on a worker.
    assert value(after, "toaster_imap_command_duration_seconds_count") - \
        value(before, "toaster_imap_command_duration_seconds_count") == 2


def test_imap_counters(make_toaster):
    t = make_toaster()
    before = metrics(t)
    imap = imaplib.IMAP4("127.0.0.1", t.ports["imap_listen"], timeout=30)
    try:
        with pytest.raises(imaplib.IMAP4.error):
            imap.login("alice@example.com", "wrong")
    finally:
        imap.shutdown()
    imap = imaplib.IMAP4("127.0.0.1", t.ports["imap_listen"], timeout=30)
    imap.login("alice@example.com", "alice-secret")
    assert imap.select("INBOX")[0] == "OK"
    assert imap.search(None, "ALL")[0] == "OK"
    assert imap.noop()[0] == "OK"
    during = metrics(t)
    assert value(during, "toaster_imap_sessions_open") == 1
    imap.logout()
    assert wait_until(lambda: value(metrics(t), "toaster_imap_sessions_open") == 0, 5.0)
    after = metrics(t)

    def delta(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("toaster_imap_sessions_total") == 2
    assert delta("toaster_imap_logins_total", result="ok") == 1
    assert delta("toaster_imap_logins_total", result="failed") == 1
    assert delta("toaster_imap_commands_total", command="SELECT") == 1
    assert delta("toaster_imap_commands_total", command="SEARCH") == 1
    assert delta("toaster_imap_commands_total", command="FETCH") == 0
    # Two greetings' CAPABILITY (imaplib asks), two LOGINs, SELECT, SEARCH,
    # NOOP, LOGOUT; the first session ends without LOGOUT (shutdown).
    assert delta("toaster_imap_commands_total", command="LOGIN") == 2
    assert delta("toaster_imap_commands_total", command="CAPABILITY") == 2
    assert delta("toaster_imap_commands_total", command="LOGOUT") == 1
    counted = sum(v for (n, _), v in after.items() if n == "toaster_imap_commands_total") - \
        sum(v for (n, _), v in before.items() if n == "toaster_imap_commands_total")
    assert counted == 8
    # The times: the worker's commands (SELECT, SEARCH, the selected NOOP).
    assert delta("toaster_imap_command_duration_seconds_count") == 3


def test_relay_counters_and_queue_gauges(make_toaster):
    with SmtpSink() as sink:
        sink.set_rcpt_replies("bob@remote.test", ["451 4.3.0 try again later", "250 2.1.5 ok"])
        t = make_toaster(config={
            "outbound_delivery": "yes", "mynetworks": "127.0.0.0/8",
            "queue_retry_min": "3s", "queue_retry_max": "3s", "smtp_mx_port": sink.port,
            "spam": "no", "clamav": "no", "dkim_verify": "no", "spf": "no", "dmarc": "no",
        }, start=False)
        t.write_dns_zone(["remote.test MX 10 mx.remote.test", "mx.remote.test A 127.0.0.1"])
        t.start()
        before = metrics(t)
        assert value(before, "toaster_queue_entries") == 0
        assert value(before, "toaster_queue_oldest_entry_age_seconds") == 0
        msg = message("alice@example.com", "relayed").replace(b"carol@example.org",
                                                              b"bob@remote.test")
        t.send("alice@example.com", ["bob@remote.test"], msg)

        # The first attempt is deferred: the entry waits for its retry.
        def deferred():
            m = metrics(t)
            return m if value(m, "toaster_queue_entries_deferred") == 1 else None
        waiting = wait_until(deferred, 10.0, 0.1)
        assert waiting, metrics(t)
        assert value(waiting, "toaster_queue_entries") == 1
        assert value(waiting, "toaster_queue_entries_active") == 0
        assert value(waiting, "toaster_relay_recipients_total", outcome="deferred") - \
            value(before, "toaster_relay_recipients_total", outcome="deferred") == 1
        assert 0 <= value(waiting, "toaster_queue_oldest_entry_age_seconds") <= 10

        # The retry delivers it; the queue is empty again.
        def delivered():
            m = metrics(t)
            return m if (value(m, "toaster_relay_recipients_total", outcome="delivered") == 1
                         and value(m, "toaster_queue_entries") == 0) else None
        after = wait_until(delivered, 15.0, 0.1)
        assert after, metrics(t)
        assert len(sink.messages) == 1
        # Two attempts delivered something; a loaded machine may add a load
        # that found the entry busy or nothing due yet (counted: started).
        assert value(after, "toaster_relay_attempts_total") - \
            value(before, "toaster_relay_attempts_total") >= 2
        assert value(after, "toaster_relay_recipients_total", outcome="deferred") - \
            value(before, "toaster_relay_recipients_total", outcome="deferred") == 1
        assert value(after, "toaster_relay_recipients_total", outcome="bounced") == 0
        assert value(after, "toaster_queue_entries_deferred") == 0
        assert value(after, "toaster_queue_oldest_entry_age_seconds") == 0


def test_held_gauge(make_toaster):
    """toasterctl queue hold: the agent learns of it at the entry's next
    load (within queue_retry_min) and shows it held, not deferred; a
    release and a flush deliver it and the gauge is 0 again."""
    with SmtpSink() as sink:
        sink.set_rcpt_replies("bob@remote.test", ["451 4.3.0 try again later", "250 2.1.5 ok"])
        t = make_toaster(config={
            "outbound_delivery": "yes", "mynetworks": "127.0.0.0/8",
            "queue_retry_min": "2s", "queue_retry_max": "2s", "smtp_mx_port": sink.port,
            "spam": "no", "clamav": "no", "dkim_verify": "no", "spf": "no", "dmarc": "no",
        }, start=False)
        t.write_dns_zone(["remote.test MX 10 mx.remote.test", "mx.remote.test A 127.0.0.1"])
        t.start()
        assert value(metrics(t), "toaster_queue_entries_held") == 0
        msg = message("alice@example.com", "held").replace(b"carol@example.org",
                                                           b"bob@remote.test")
        t.send("alice@example.com", ["bob@remote.test"], msg)
        assert wait_until(lambda: value(metrics(t), "toaster_queue_entries_deferred") == 1,
                          10.0, 0.1), metrics(t)
        (qid,) = t.queue_ids()

        def queue(*args):
            out = subprocess.run([TOASTERCTL, "-c", str(t.config_file), "queue", *args],
                                 capture_output=True, text=True, timeout=30)
            assert out.returncode == 0, out.stderr
        queue("hold", qid)

        def held():
            m = metrics(t)
            return m if value(m, "toaster_queue_entries_held") == 1 else None
        m = wait_until(held, 8.0, 0.1)
        assert m, metrics(t)
        assert value(m, "toaster_queue_entries") == 1
        assert value(m, "toaster_queue_entries_deferred") == 0
        assert value(m, "toaster_queue_oldest_entry_age_seconds") == 0
        # Held: the sink hears nothing more, however many scans pass.
        time.sleep(2.5)
        assert value(metrics(t), "toaster_queue_entries_held") == 1
        assert len(sink.messages) == 0
        queue("release", qid)
        queue("flush", qid)

        def delivered():
            m = metrics(t)
            return m if value(m, "toaster_queue_entries") == 0 else None
        m = wait_until(delivered, 10.0, 0.1)
        assert m, metrics(t)
        assert value(m, "toaster_queue_entries_held") == 0
        assert len(sink.messages) == 1


def test_allow_list(make_toaster):
    t = make_toaster(config={"metrics_allow": "127.0.0.1/32"})
    status, _, body = scrape(t, source="127.0.0.2")
    assert status == 403, (status, body)
    assert b"toaster_" not in body
    status, _, body = scrape(t, source="127.0.0.1")
    assert status == 200 and b"# TYPE toaster_uptime_seconds gauge\n" in body
    # HEAD: the headers alone; other methods are refused.
    status, ctype, body = scrape(t, method="HEAD")
    assert status == 200 and body == b"" and ctype.startswith("text/plain; version=0.0.4")
    status, _, _ = scrape(t, method="POST")
    assert status == 405


def test_default_allow_list_is_loopback(make_toaster):
    t = make_toaster()
    for source in ("127.0.0.1", "127.0.0.2"):
        status, _, _ = scrape(t, source=source)
        assert status == 200, source


def test_bad_allow_list_refused(make_toaster):
    t = make_toaster(config={"metrics_allow": "127.0.0.1/33"}, start=False)
    with pytest.raises(Exception):
        t.start()
    assert "metrics_allow" in t.log()


def test_scrape_cost_does_not_grow_with_connections(make_toaster):
    count = int(os.environ.get("METRICS_IDLE_CONNECTIONS", "2000"))
    per_reactor = str(max(count + 64, 4096))  # room for the scrapes
    t = make_toaster(config={"max_connections": per_reactor,
                             "max_connections_per_ip": per_reactor,
                             "clamav": "no"})

    def median_scrape_s(rounds=15):
        times = []
        for _ in range(rounds):
            start = time.perf_counter()
            status, _, body = scrape(t)
            times.append(time.perf_counter() - start)
            assert status == 200, body
        return statistics.median(times)

    idle_s = median_scrape_s()
    socks = []
    try:
        for _ in range(count):
            socks.append(socket.create_connection(("127.0.0.1", t.port), timeout=30))
        # Every one of them holds a slot (the scrape's own is one more).
        assert wait_until(
            lambda: total(metrics(t), "toaster_connections_open") == count + 1, 30.0, 0.2), \
            total(metrics(t), "toaster_connections_open")
        loaded_s = median_scrape_s()
    finally:
        for s in socks:
            s.close()
    print("scrape median: %.2f ms with no connection, %.2f ms with %d open"
          % (idle_s * 1e3, loaded_s * 1e3, count))
    # The renderer walks no connection: the same cost within noise.
    assert loaded_s < idle_s * 3 + 0.005, (idle_s, loaded_s)
