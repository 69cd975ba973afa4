"""The outbound relay (issue 8) end to end: the real toasterd takes mail
for remote.test over SMTP from 127.0.0.1 (mynetworks) and delivers it to
smtp_sink.SmtpSink, a scripted SMTP server on loopback that the DNS
override zone names as remote.test's MX (smtp_mx_port points at it).

Each test asserts exact outcomes: what the sink received (envelope, the
message byte for byte behind our Received field), what is left in the
queue (toasterctl queue list/show and the queue directory), what landed
in local mailboxes (bounces: RFC 3464 reports from MAILER-DAEMON with the
null sender), and the log's Postfix-style status lines. Scenarios: a plain
relay; 451 then 250; 550 -> bounce; one recipient of two refused; a
silent remote (greeting timeout) then a healthy one; the connection cut
in the middle of the data; connection refused on every MX, then the
second MX; a null MX; STARTTLS (may, and encrypt without STARTTLS on
offer); connection reuse; relay_host with SASL over STARTTLS;
transport_file; a bounce of a bounce never made; Sieve redirect and
vacation to remote addresses; toasterctl queue flush; DATA with
dot-stuffing to a server without CHUNKING or PIPELINING; the DSN
parameters passed on to a DSN server (and no success report of ours),
a "relayed" report from a server without DSN.

Every address is on 127.0.0.0/8.
"""

import email
import email.policy
import re
import subprocess
import time

import pytest

from conftest import FILTER_FIELDS, TOASTERCTL, skip_field, wait_until
from smtp_sink import SmtpSink, make_cert

ZONE = ["remote.test MX 10 mx.remote.test", "mx.remote.test A 127.0.0.1"]

BASE = {
    "outbound_delivery": "yes",
    "mynetworks": "127.0.0.0/8",
    "queue_retry_min": "1s",
    "queue_retry_max": "2s",
    # No filter adds anything, so what the sink receives is our Received
    # field and the message as sent.
    "spam": "no",
    "clamav": "no",
    "dkim_verify": "no",
    "spf": "no",
    "dmarc": "no",
}

SENDER = "alice@example.com"
DELIVERY_S = 15.0  # time allowed for a delivery that is due at once


# ---- helpers ----------------------------------------------------------------------


@pytest.fixture
def sink():
    with SmtpSink() as s:
        yield s


def relay_toaster(make_toaster, port, zone=ZONE, start=True, **config):
    """A toasterd that relays to port (the sink's) for the hosts in zone."""
    settings = dict(BASE, smtp_mx_port=port)
    settings.update(config)
    t = make_toaster(config=settings, start=False)
    t.write_dns_zone(zone)  # read at start
    if start:
        t.start()
    return t


def message(subject, rcpts=("bob@remote.test",), sender=SENDER, body=None):
    if body is None:
        body = "Hello,\r\n.a line that starts with a dot\r\n.\r\nthe end\r\n"
    return ("From: <%s>\r\nTo: %s\r\nSubject: %s\r\nDate: Sat, 05 Dec 2026 04:00:00 +0000\r\n"
            "Message-ID: <%s@client.test>\r\n\r\n%s"
            % (sender, ", ".join("<%s>" % r for r in rcpts), subject,
               re.sub(r"\W", ".", subject), body)).encode()


def send(t, subject, rcpts=("bob@remote.test",), sender=SENDER, **kwargs):
    """One message over SMTP; returns (queue id, the message bytes)."""
    msg = message(subject, rcpts, sender, **kwargs)
    return t.send(sender, list(rcpts), msg), msg


def split_relayed(data):
    """The sink's copy -> (our trace fields, the message as sent). No
    Return-Path (RFC 5321 4.4: a relay does not add one); our Received on
    top (after a DKIM signature or other filter fields, if any)."""
    header = data.split(b"\r\n\r\n", 1)[0]
    assert not re.search(rb"(?im)^Return-Path:", header), data[:300]
    pos = 0
    while data[pos:].startswith(FILTER_FIELDS):
        pos = skip_field(data, pos)
    assert data[pos:].startswith(b"Received: "), data[:300]
    end = skip_field(data, pos)
    trace = data[:end]
    assert b"by mx.example.com" in trace, trace
    return trace, data[end:]


def queue_dir(t):
    return t.data_dir / "queue"


def queue_ids(t):
    return t.queue_ids()


def wait_queue_empty(t, timeout=DELIVERY_S):
    ok = wait_until(lambda: queue_ids(t) == [], timeout, 0.05)
    assert ok, "queue not empty: %s\n%s" % (queue_ids(t), t.log()[-3000:])
    out = ctl(t, "list")
    assert out.returncode == 0 and out.stdout == "Mail queue is empty\n", out


def ctl(t, *args):
    return subprocess.run([TOASTERCTL, "-c", str(t.config_file), "queue", *args],
                          capture_output=True, text=True, timeout=30)


def show(t, qid):
    out = ctl(t, "show", qid)
    return out.stdout if out.returncode == 0 else ""


def wait_deferred(t, qid, rcpt, reply_text, timeout=DELIVERY_S):
    """Wait until qid's rcpt is pending after at least one attempt whose
    last reply holds reply_text; returns the show text."""
    pat = re.compile(r"recipient: <%s> pending, [1-9]\d* attempts?, next " % re.escape(rcpt))

    def deferred():
        text = show(t, qid)
        return text if pat.search(text) and ("last reply: " in text and reply_text in
                                             text.split("last reply: ", 1)[1]) else ""
    text = wait_until(deferred, timeout, 0.05)
    assert text, "%s <%s> not deferred with %r:\n%s\n%s" % (
        qid, rcpt, reply_text, show(t, qid), t.log()[-3000:])
    return text


def log_line(t, *parts, timeout=DELIVERY_S):
    """The first log line holding every one of parts (waits for it)."""
    def find():
        for line in t.log().splitlines():
            if all(p in line for p in parts):
                return line
        return None
    line = wait_until(find, timeout, 0.05)
    assert line, "no log line with %r:\n%s" % (parts, t.log()[-3000:])
    return line


def wait_bounces(t, mailbox, count=1, timeout=DELIVERY_S):
    ok = wait_until(lambda: len(t.messages(mailbox)) >= count, timeout, 0.05)
    assert ok, "no bounce for %s:\n%s" % (mailbox, t.log()[-3000:])
    return t.messages(mailbox)


def unfold(text):
    return re.sub(r"\r?\n[ \t]+", " ", text)


def check_bounce(stored, failed, original_subject, status, diagnostic, not_failed=()):
    """A bounce as stored in a local Maildir: the null sender, from
    MAILER-DAEMON, an RFC 3464 multipart/report naming each failed
    recipient with its Status and the remote's reply, and the original's
    header."""
    assert stored.startswith(b"Return-Path: <>\r\n"), stored[:200]
    msg = email.message_from_bytes(stored, policy=email.policy.compat32)
    assert "MAILER-DAEMON@mx.example.com" in msg["From"], msg["From"]
    assert msg.get_content_type() == "multipart/report"
    assert msg.get_param("report-type") == "delivery-status"
    parts = msg.get_payload()
    assert len(parts) >= 2, [p.get_content_type() for p in parts]
    assert parts[0].get_content_type() == "text/plain"
    assert parts[1].get_content_type() == "message/delivery-status"
    text = unfold(stored.decode("utf-8", "replace"))
    report = text[text.index("message/delivery-status"):]
    for rcpt in failed:
        assert "Final-Recipient: rfc822; %s" % rcpt in report, report
    for rcpt in not_failed:
        assert "Final-Recipient: rfc822; %s" % rcpt not in report, report
    assert "Action: failed" in report
    assert "Status: %s" % status in report, report
    assert diagnostic in report, report
    assert ("Subject: %s" % original_subject) in text
    return text


# ---- 1. plain relay ------------------------------------------------------------------


def test_plain_relay(make_toaster, sink):
    t = relay_toaster(make_toaster, sink.port)
    qid, msg = send(t, "plain relay", rcpts=["bob@remote.test", "carol@remote.test"])
    assert sink.wait_for(1, DELIVERY_S), t.log()[-3000:]
    wait_queue_empty(t)
    time.sleep(0.5)  # nothing more comes
    assert len(sink.messages) == 1
    m = sink.messages[0]
    assert m.mail_from == SENDER
    assert sorted(m.rcpts) == ["bob@remote.test", "carol@remote.test"]
    trace, rest = split_relayed(m.data)
    assert rest == msg  # dot-stuffing done and undone: byte for byte
    assert m.helo == "mx.example.com"  # smtp_helo_name defaults to myhostname
    assert int(m.mail_params["SIZE"]) >= len(m.data)
    assert m.peer[0] == "127.0.0.1" and m.local == ("127.0.0.1", sink.port)
    for rcpt in ("bob@remote.test", "carol@remote.test"):
        line = log_line(t, qid, "to=<%s>" % rcpt, "status=sent")
        assert "mx.remote.test" in line, line
    assert not (queue_dir(t) / (qid + ".msg")).exists()
    # The session ends with QUIT once idle (smtp_connection_cache_time_limit).
    assert wait_until(lambda: sink.sessions[0].ended_at is not None, 10)
    assert sink.sessions[0].commands[-1].upper() == "QUIT"


# ---- 2. 451 then 250 --------------------------------------------------------------------


def test_temporary_failure_then_success(make_toaster, sink):
    sink.set_rcpt_replies("bob@remote.test", ["451 4.3.0 try again later", "250 2.1.5 ok"])
    t = relay_toaster(make_toaster, sink.port, queue_retry_min="3s", queue_retry_max="6s")
    qid, msg = send(t, "try again")
    text = wait_deferred(t, qid, "bob@remote.test", "451 4.3.0 try again later")
    assert "recipient: <bob@remote.test> pending, 1 attempt, next " in text, text
    assert sink.messages == []
    assert qid in ctl(t, "list").stdout
    log_line(t, qid, "to=<bob@remote.test>", "status=deferred", "451 4.3.0 try again later")
    assert sink.wait_for(1, DELIVERY_S), t.log()[-3000:]
    wait_queue_empty(t)
    assert len(sink.messages) == 1 and split_relayed(sink.messages[0].data)[1] == msg
    log_line(t, qid, "to=<bob@remote.test>", "status=sent")
    # The retry came no sooner than queue_retry_min after the first try.
    first_try = [s for s in sink.sessions if any(c.upper().startswith("RCPT")
                                                 for c in s.commands)][0]
    # (unix seconds: 3 s after a time truncated to the second)
    assert sink.messages[0].accepted_at - first_try.started_at >= 2.0


# ---- 3. 5xx -> bounce -----------------------------------------------------------------------


def test_permanent_failure_bounces(make_toaster, sink):
    reply = "550 5.1.1 <nobody@remote.test>: no such user here"
    sink.set_rcpt_replies("nobody@remote.test", [reply])
    t = relay_toaster(make_toaster, sink.port)
    qid, msg = send(t, "to nobody", rcpts=["nobody@remote.test"])
    bounces = wait_bounces(t, SENDER)
    wait_queue_empty(t)
    assert len(bounces) == 1
    text = check_bounce(bounces[0], ["nobody@remote.test"], "to nobody", "5.1.1", reply)
    assert "Remote-MTA: dns; mx.remote.test" in text
    assert sink.messages == []  # the bounce is local, nothing went to the sink
    assert sink.transactions == []
    log_line(t, qid, "to=<nobody@remote.test>", "status=bounced", "550 5.1.1")
    time.sleep(0.5)
    assert len(t.messages(SENDER)) == 1  # one bounce, not more


# ---- 4. partial success ----------------------------------------------------------------------


def test_partial_success(make_toaster, sink):
    reply = "550 5.1.1 <nobody@remote.test>: no such user here"
    sink.set_rcpt_replies("nobody@remote.test", [reply])
    t = relay_toaster(make_toaster, sink.port)
    qid, msg = send(t, "one of two", rcpts=["bob@remote.test", "nobody@remote.test"])
    assert sink.wait_for(1, DELIVERY_S), t.log()[-3000:]
    bounces = wait_bounces(t, SENDER)
    wait_queue_empty(t)
    time.sleep(0.5)
    assert len(sink.messages) == 1
    assert sink.messages[0].rcpts == ["bob@remote.test"]
    assert split_relayed(sink.messages[0].data)[1] == msg
    assert len(t.messages(SENDER)) == 1
    check_bounce(bounces[0], ["nobody@remote.test"], "one of two", "5.1.1", reply,
                 not_failed=["bob@remote.test"])
    log_line(t, qid, "to=<bob@remote.test>", "status=sent")
    log_line(t, qid, "to=<nobody@remote.test>", "status=bounced")


# ---- 5. a silent remote -------------------------------------------------------------------------


def test_silent_remote_greeting_timeout(make_toaster, sink):
    sink.configure(greeting=None)
    t = relay_toaster(make_toaster, sink.port, smtp_greeting_timeout="2s")
    qid, msg = send(t, "silent remote")
    started = time.monotonic()
    wait_deferred(t, qid, "bob@remote.test",
                  "timed out while receiving the initial server greeting", 10)
    assert 1.5 <= time.monotonic() - started, "deferred before the 2 s greeting timeout"
    assert sink.messages == []
    log_line(t, qid, "to=<bob@remote.test>", "status=deferred",
             "timed out while receiving the initial server greeting")
    # The agent closed the silent session itself, after the timeout.
    first = sink.sessions[0]
    assert wait_until(lambda: first.ended_at is not None, 5)
    assert 1.5 <= first.ended_at - first.started_at < 10, first
    sink.configure(greeting="220 sink.test ESMTP awake now")
    assert sink.wait_for(1, DELIVERY_S), t.log()[-3000:]
    wait_queue_empty(t)
    assert len(sink.messages) == 1 and split_relayed(sink.messages[0].data)[1] == msg


# ---- 6. the connection cut in the middle of the data ------------------------------------------


def test_connection_lost_in_data(make_toaster, sink):
    # A body far larger than the socket buffers: the agent is still writing it
    # when the sink cuts the connection after 2000 bytes.
    body = "".join("line %06d of a long body, to be cut short\r\n" % i for i in range(100000))
    sink.configure(close_in_data=2000, close_in_data_times=1)
    t = relay_toaster(make_toaster, sink.port)
    qid, msg = send(t, "cut short", body=body)
    wait_deferred(t, qid, "bob@remote.test", "lost connection", 20)
    line = log_line(t, qid, "to=<bob@remote.test>", "status=deferred", "lost connection")
    assert "while sending message body" in line, line
    assert sink.cuts == 1
    assert sink.wait_for(1, DELIVERY_S), t.log()[-3000:]
    wait_queue_empty(t)
    time.sleep(0.5)
    assert len(sink.messages) == 1  # one complete copy
    assert split_relayed(sink.messages[0].data)[1] == msg


# ---- 7. connection refused, the second MX ----------------------------------------------------


def test_refused_then_second_mx(make_toaster, sink):
    # Nothing listens at the sink's port on 127.0.0.9, .3 or .4 yet.
    zone = ["remote.test MX 10 dead.remote.test", "remote.test MX 20 backup.remote.test",
            "remote.test MX 30 third.remote.test", "dead.remote.test A 127.0.0.9",
            "backup.remote.test A 127.0.0.3", "third.remote.test A 127.0.0.4"]
    t = relay_toaster(make_toaster, sink.port, zone=zone, queue_retry_min="2s",
                      queue_retry_max="2s")
    qid, msg = send(t, "refused")
    wait_deferred(t, qid, "bob@remote.test", "Connection refused")
    log_line(t, qid, "to=<bob@remote.test>", "status=deferred", "Connection refused")
    # MX 20 and MX 30 come up; MX 10 stays dead: the message goes to MX 20,
    # the most preferred that answers.
    with SmtpSink(host="127.0.0.3", port=sink.port) as backup, \
            SmtpSink(host="127.0.0.4", port=sink.port) as third:
        assert backup.wait_for(1, DELIVERY_S), t.log()[-3000:]
        wait_queue_empty(t)
        time.sleep(0.5)
        assert len(backup.messages) == 1
        m = backup.messages[0]
        assert m.local == ("127.0.0.3", sink.port) and m.rcpts == ["bob@remote.test"]
        assert split_relayed(m.data)[1] == msg
        line = log_line(t, qid, "to=<bob@remote.test>", "status=sent")
        assert "backup.remote.test" in line, line
        assert third.connections == 0
    assert sink.connections == 0


# ---- 8. null MX -------------------------------------------------------------------------------


def test_null_mx_bounces_at_once(make_toaster, sink):
    t = relay_toaster(make_toaster, sink.port, zone=["remote.test MX 0 ."],
                      queue_retry_min="60s", queue_retry_max="120s")
    qid, msg = send(t, "null mx")
    bounces = wait_bounces(t, SENDER, timeout=10)  # no retry: retries are 60 s away
    wait_queue_empty(t)
    text = unfold(bounces[0].decode("utf-8", "replace"))
    assert bounces[0].startswith(b"Return-Path: <>\r\n")
    assert "Final-Recipient: rfc822; bob@remote.test" in text
    assert "Status: 5.1.10" in text, text
    assert "556" in text and "does not accept mail" in text, text
    log_line(t, qid, "to=<bob@remote.test>", "status=bounced", "5.1.10")
    assert sink.connections == 0


# ---- 9. STARTTLS -------------------------------------------------------------------------------


def test_starttls_may(make_toaster, tmp_path):
    cert, key = make_cert(tmp_path)
    with SmtpSink(tls_cert=cert, tls_key=key) as tls_sink:
        t = relay_toaster(make_toaster, tls_sink.port)  # smtp_tls_security = may (default)
        qid, msg = send(t, "over tls")
        assert tls_sink.wait_for(1, DELIVERY_S), t.log()[-3000:]
        wait_queue_empty(t)
        m = tls_sink.messages[0]
        assert m.is_tls is True
        assert split_relayed(m.data)[1] == msg
        # EHLO again after the handshake, MAIL only inside TLS.
        commands = [c.upper() for c in tls_sink.sessions[m.session].commands]
        assert commands.index("STARTTLS") < commands.index([c for c in commands
                                                            if c.startswith("MAIL")][0])
        assert [c for c in commands if c.startswith("EHLO")] == ["EHLO MX.EXAMPLE.COM"] * 2
        log_line(t, qid, "to=<bob@remote.test>", "status=sent")


def test_tls_encrypt_never_in_clear(make_toaster, sink):
    t = relay_toaster(make_toaster, sink.port, smtp_tls_security="encrypt")
    qid, msg = send(t, "secret")
    text = wait_deferred(t, qid, "bob@remote.test", "", DELIVERY_S)
    assert "STARTTLS" in text or "TLS" in text, text
    time.sleep(1.5)  # a retry or two
    assert sink.transactions == []
    for s in sink.sessions:
        assert not any(c.upper().startswith(("MAIL", "RCPT", "DATA", "BDAT"))
                       for c in s.commands), s.commands
    assert qid in queue_ids(t)
    log_line(t, qid, "to=<bob@remote.test>", "status=deferred", "TLS")


# ---- 10. connection reuse ----------------------------------------------------------------------


def test_connection_reuse(make_toaster, sink):
    # At most 2 sessions at once, so 20 messages cannot each have their own
    # parallel session: fewer connections than messages means reuse.
    t = relay_toaster(make_toaster, sink.port, smtp_destination_concurrency_limit=2)
    with t.smtp() as client:
        for i in range(20):
            client.sendmail(SENDER, ["bob@remote.test"], message("reuse %d" % i))
    assert sink.wait_for(20, 30), t.log()[-3000:]
    wait_queue_empty(t)
    time.sleep(0.5)
    subjects = sorted(re.search(rb"Subject: (reuse \d+)", m.data).group(1)
                      for m in sink.messages)
    assert subjects == sorted(b"reuse %d" % i for i in range(20))
    assert sink.connections < 20, [s.messages for s in sink.sessions]
    assert max(s.messages for s in sink.sessions) >= 2
    assert sink.max_parallel["127.0.0.1"] <= 2


# ---- 11. relay_host with SASL over STARTTLS ------------------------------------------------------


def test_relay_host_with_sasl(make_toaster, tmp_path):
    cert, key = make_cert(tmp_path)
    with SmtpSink(tls_cert=cert, tls_key=key, auth={"relay-user": "relay-secret"}) as hub:
        nexthop = "[127.0.0.1]:%d" % hub.port
        passwords = tmp_path / "sasl_passwd"
        passwords.write_text("%s relay-user:relay-secret\n" % nexthop)
        # No MX for remote.test at all: relay_host takes every remote domain.
        t = relay_toaster(make_toaster, 9, zone=[], relay_host=nexthop,
                          smtp_sasl_password_file=str(passwords))
        qid, msg = send(t, "via the hub", rcpts=["bob@remote.test", "x@far.test"])
        assert hub.wait_for(1, DELIVERY_S), t.log()[-3000:]
        wait_queue_empty(t)
        time.sleep(0.5)
        # One transaction or one per domain: every recipient once, each
        # over TLS after AUTH.
        assert sorted(r for m in hub.messages for r in m.rcpts) == ["bob@remote.test",
                                                                    "x@far.test"]
        for m in hub.messages:
            assert m.auth_user == "relay-user" and m.is_tls is True
            assert split_relayed(m.data)[1] == msg
            commands = [c.upper() for c in hub.sessions[m.session].commands]
            assert commands.index("STARTTLS") < min(i for i, c in enumerate(commands)
                                                    if c.startswith("AUTH"))
        log_line(t, qid, "to=<x@far.test>", "status=sent")


# ---- 12. transport_file --------------------------------------------------------------------------


def test_transport_file_route(make_toaster, sink, tmp_path):
    with SmtpSink(host="127.0.0.2") as other:
        transport = tmp_path / "transport"
        transport.write_text("other.test [127.0.0.2]:%d\n.other.test [127.0.0.2]:%d\n"
                             % (other.port, other.port))
        t = relay_toaster(make_toaster, sink.port, transport_file=str(transport))
        qid, msg = send(t, "two routes", rcpts=["bob@remote.test", "x@other.test",
                                                 "y@deep.other.test"])
        assert sink.wait_for(1, DELIVERY_S), t.log()[-3000:]
        assert other.wait_for(1, DELIVERY_S), t.log()[-3000:]
        wait_queue_empty(t)
        time.sleep(0.5)
        assert [m.rcpts for m in sink.messages] == [["bob@remote.test"]]
        got = sorted(r for m in other.messages for r in m.rcpts)
        assert got == ["x@other.test", "y@deep.other.test"]
        assert all(split_relayed(m.data)[1] == msg for m in sink.messages + other.messages)
        assert all(m.local[0] == "127.0.0.2" for m in other.messages)


# ---- 13. no bounce of a bounce ----------------------------------------------------------------------


def test_null_sender_failure_makes_no_bounce(make_toaster, sink):
    sink.set_rcpt_replies("nobody@remote.test", ["550 5.1.1 no such user"])
    t = relay_toaster(make_toaster, sink.port)
    msg = message("a bounce", ["nobody@remote.test"], sender="MAILER-DAEMON@example.com")
    qid = t.send("", ["nobody@remote.test"], msg)
    log_line(t, qid, "to=<nobody@remote.test>", "status=bounced")
    wait_queue_empty(t)
    time.sleep(1.0)
    assert t.all_delivered() == []
    assert queue_ids(t) == []
    assert sink.messages == []
    # It was tried with the null sender.
    assert any("MAIL FROM:<>" in c.upper() for s in sink.sessions for c in s.commands)


# ---- 14. Sieve redirect and vacation to remote addresses ----------------------------------------


def test_sieve_redirect_and_vacation_go_out(make_toaster, sink):
    from test_sieve_delivery import put_script  # the way Pigeonhole keeps scripts

    t = relay_toaster(make_toaster, sink.port, start=False, sieve="yes")
    put_script(t, "alice@example.com", 'redirect "friend@remote.test";\r\n')
    put_script(t, "bob@example.com", 'require "vacation";\r\nvacation "Out of office.";\r\n')
    t.start()
    redirect_msg = message("redirect me", ["alice@example.com"], sender="x@remote.test")
    t.send("x@remote.test", ["alice@example.com"], redirect_msg)
    vacation_msg = message("hello bob", ["bob@example.com"], sender="someone@remote.test")
    t.send("someone@remote.test", ["bob@example.com"], vacation_msg)
    assert sink.wait_for(2, DELIVERY_S), t.log()[-3000:]
    wait_queue_empty(t)
    time.sleep(0.5)
    assert len(sink.messages) == 2
    by_rcpt = {tuple(m.rcpts): m for m in sink.messages}
    redirected = by_rcpt[("friend@remote.test",)]
    assert redirected.mail_from == "x@remote.test"  # the original sender
    assert b"Subject: redirect me\r\n" in redirected.data
    assert redirected.data.endswith(redirect_msg.split(b"\r\n\r\n", 1)[1])
    reply = by_rcpt[("someone@remote.test",)]
    assert reply.mail_from == ""  # RFC 5230: the null sender
    assert b"Out of office." in reply.data
    assert b"Auto-Submitted: auto-replied" in reply.data
    assert b"Subject: Auto: hello bob\r\n" in reply.data
    assert not reply.data.startswith(b"Return-Path:")
    assert t.messages("alice@example.com") == []  # redirect cancels the keep
    assert len(t.messages("bob@example.com")) == 1


# ---- 15. toasterctl queue flush ------------------------------------------------------------------


def test_queue_flush_sends_at_once(make_toaster, sink):
    sink.set_rcpt_replies("bob@remote.test", ["451 4.3.0 try again later", "250 2.1.5 ok"])
    t = relay_toaster(make_toaster, sink.port, queue_retry_min="60s", queue_retry_max="120s")
    qid, msg = send(t, "flush me")
    text = wait_deferred(t, qid, "bob@remote.test", "451 4.3.0")
    assert "pending, 1 attempt, next 1" in text, text  # a unix time, not "at once"
    time.sleep(1.0)
    assert sink.messages == []  # the retry is a minute away
    out = ctl(t, "flush")
    assert out.returncode == 0, out.stderr
    assert "no delivery agent" not in out.stdout, out.stdout
    assert sink.wait_for(1, 5), t.log()[-3000:]
    wait_queue_empty(t)
    assert split_relayed(sink.messages[0].data)[1] == msg


# ---- 452 too many recipients ------------------------------------------------------------


def test_too_many_recipients_go_in_a_second_transaction(make_toaster, sink):
    """RFC 5321 4.5.3.1.10: a server that takes fewer recipients than we
    send answers 452 to the rest; they go at once in the next transaction
    of the same session, not after a back-off."""
    sink.set_rcpt_replies("c@remote.test", ["452 4.5.3 Too many recipients", "250 2.1.5 ok"])
    t = relay_toaster(make_toaster, sink.port, queue_retry_min="1h", queue_retry_max="2h")
    rcpts = ["a@remote.test", "b@remote.test", "c@remote.test"]
    qid, msg = send(t, "three rcpts", rcpts=rcpts)
    assert sink.wait_for(2, DELIVERY_S), t.log()[-3000:]
    wait_queue_empty(t)
    assert [m.rcpts for m in sink.messages] == [rcpts[:2], rcpts[2:]]
    assert sink.messages[0].session == sink.messages[1].session
    for rcpt in rcpts:
        log_line(t, qid, "to=<%s>" % rcpt, "status=sent")


# ---- DATA and dot-stuffing, no PIPELINING ---------------------------------------------------


def test_data_dot_stuffing_without_chunking(make_toaster):
    """A remote without CHUNKING gets DATA: lines starting with a dot are
    stuffed on the wire and come out whole (the sink undoes the stuffing)."""
    plain = ("SIZE 52428800", "8BITMIME", "ENHANCEDSTATUSCODES")  # no PIPELINING either
    with SmtpSink(extensions=plain) as data_sink:
        t = relay_toaster(make_toaster, data_sink.port)
        body = ".\r\n..\r\n.leading dot\r\n. \r\nlast line without a dot\r\n"
        qid, msg = send(t, "dots", rcpts=["bob@remote.test", "carol@remote.test"], body=body)
        assert data_sink.wait_for(1, DELIVERY_S), t.log()[-3000:]
        wait_queue_empty(t)
        m = data_sink.messages[0]
        assert m.via == "DATA"
        assert split_relayed(m.data)[1] == msg
        assert sorted(m.rcpts) == ["bob@remote.test", "carol@remote.test"]
        log_line(t, qid, "to=<carol@remote.test>", "status=sent")


# ---- DSN parameters passed on (RFC 3461) ------------------------------------------------------


def test_dsn_parameters_passed_on(make_toaster, sink):
    """To a DSN server: NOTIFY, ORCPT, RET and ENVID go along and the
    remote takes the responsibility for the success report (RFC 3461
    5.2.2; a "delivered" report means delivered to the mailbox), so no
    report from us."""
    t = relay_toaster(make_toaster, sink.port)
    msg = message("dsn passed on")
    qid = t.send(SENDER, ["bob@remote.test"], msg, mail_options=["RET=HDRS", "ENVID=env42"],
                 rcpt_options=["NOTIFY=SUCCESS,FAILURE",
                               "ORCPT=rfc822;bob@remote.test"])
    assert sink.wait_for(1, DELIVERY_S), t.log()[-3000:]
    wait_queue_empty(t)
    m = sink.messages[0]
    assert m.mail_params.get("RET") == "HDRS" and m.mail_params.get("ENVID") == "env42"
    assert m.rcpt_params[0].get("NOTIFY") == "SUCCESS,FAILURE"
    assert m.rcpt_params[0].get("ORCPT", "").lower() == "rfc822;bob@remote.test"
    log_line(t, qid, "to=<bob@remote.test>", "status=sent")
    time.sleep(1.5)
    assert t.messages(SENDER) == [], t.messages(SENDER)[0][:1500]


def test_dsn_relayed_report_from_non_dsn_server(make_toaster):
    """To a server without DSN, NOTIFY=SUCCESS is answered by us with a
    "relayed" report (RFC 3461 5.2.3), and no DSN parameter is sent."""
    no_dsn = ("PIPELINING", "SIZE 52428800", "8BITMIME", "ENHANCEDSTATUSCODES")
    with SmtpSink(extensions=no_dsn) as plain:
        t = relay_toaster(make_toaster, plain.port)
        msg = message("relayed report")
        qid = t.send(SENDER, ["bob@remote.test"], msg, rcpt_options=["NOTIFY=SUCCESS"])
        assert plain.wait_for(1, DELIVERY_S), t.log()[-3000:]
        reports = wait_bounces(t, SENDER)
        wait_queue_empty(t)
        m = plain.messages[0]
        assert "NOTIFY" not in m.rcpt_params[0] and "RET" not in m.mail_params
        text = unfold(reports[0].decode("utf-8", "replace"))
        assert reports[0].startswith(b"Return-Path: <>\r\n")
        assert "Final-Recipient: rfc822; bob@remote.test" in text
        assert "Action: relayed" in text, text
        assert "Status: 2." in text
        log_line(t, qid, "to=<bob@remote.test>", "status=sent")


# ---- relay_domains: a backup MX / gateway ---------------------------------------------------


def test_relay_domains_taken_from_anyone_and_passed_inward(make_toaster, sink, tmp_path):
    """Mail for a relay domain is accepted from any client (we are its
    backup MX) and goes to its inner host; other foreign domains stay
    closed to a client that is neither authenticated nor in mynetworks."""
    transport = tmp_path / "transport"
    transport.write_text("inner.test [127.0.0.1]:%d\n" % sink.port)
    t = relay_toaster(make_toaster, sink.port, zone=[], mynetworks="",
                      relay_domains="inner.test", transport_file=str(transport))
    with t.raw() as c:
        c.greet()
        assert c.cmd("MAIL FROM:<x@outside.test>")[-1].startswith(b"250")
        assert c.cmd("RCPT TO:<other@remote.test>")[-1].startswith(b"554 5.7.1")
        assert c.cmd("RCPT TO:<someone@inner.test>")[-1].startswith(b"250")
        assert c.cmd("DATA")[-1].startswith(b"354")
        c.send(b"Subject: for the inside\r\n\r\nhello\r\n.\r\n")
        assert c.reply_line().startswith(b"250")
    assert sink.wait_for(1, DELIVERY_S), t.log()[-3000:]
    assert sink.messages[0].rcpts == ["someone@inner.test"]
    assert sink.messages[0].mail_from == "x@outside.test"
    wait_queue_empty(t)


# ---- more failure modes ---------------------------------------------------------------------


def test_refused_after_data_bounces_every_recipient(make_toaster, sink):
    reply = "554 5.7.1 message refused by policy"
    sink.set_data_replies([reply])
    t = relay_toaster(make_toaster, sink.port)
    qid, msg = send(t, "refused at the end", rcpts=["bob@remote.test", "carol@remote.test"])
    bounces = wait_bounces(t, SENDER)
    wait_queue_empty(t)
    time.sleep(0.5)
    assert len(t.messages(SENDER)) == 1  # one bounce naming both
    check_bounce(bounces[0], ["bob@remote.test", "carol@remote.test"], "refused at the end",
                 "5.7.1", reply)
    assert sink.messages == [] and len(sink.transactions) == 1
    for rcpt in ("bob@remote.test", "carol@remote.test"):
        log_line(t, qid, "to=<%s>" % rcpt, "status=bounced", "554 5.7.1")


def test_sender_refused_bounces(make_toaster, sink):
    reply = "550 5.7.1 <alice@example.com>: sender rejected"
    sink.set_mail_replies([reply])
    t = relay_toaster(make_toaster, sink.port)
    qid, msg = send(t, "sender refused")
    bounces = wait_bounces(t, SENDER)
    wait_queue_empty(t)
    check_bounce(bounces[0], ["bob@remote.test"], "sender refused", "5.7.1", reply)
    assert sink.transactions == []


def test_4xx_after_data_retried_once_delivered(make_toaster, sink):
    sink.set_data_replies(["451 4.3.0 queue full, later", "250 2.0.0 taken"])
    t = relay_toaster(make_toaster, sink.port)
    qid, msg = send(t, "later after data")
    assert sink.wait_for(1, DELIVERY_S), t.log()[-3000:]
    wait_queue_empty(t)
    time.sleep(1.0)
    assert len(sink.messages) == 1 and [tr.reply for tr in sink.transactions] == [
        "451 4.3.0 queue full, later", "250 2.0.0 taken"]
    log_line(t, qid, "to=<bob@remote.test>", "status=deferred", "451 4.3.0 queue full")
    assert t.messages(SENDER) == []


def test_message_over_remote_size_limit_bounces(make_toaster):
    small = ("PIPELINING", "SIZE 1000", "8BITMIME", "ENHANCEDSTATUSCODES")
    with SmtpSink(extensions=small) as tiny:
        t = relay_toaster(make_toaster, tiny.port)
        qid, msg = send(t, "too big for them", body="x" * 70 + "\r\n" + ("y" * 70 + "\r\n") * 60)
        bounces = wait_bounces(t, SENDER)
        wait_queue_empty(t)
        text = unfold(bounces[0].decode("utf-8", "replace"))
        assert "Final-Recipient: rfc822; bob@remote.test" in text
        assert "Status: 5.3.4" in text, text
        assert tiny.transactions == []


def test_8bit_message_to_7bit_server_bounces(make_toaster):
    seven = ("PIPELINING", "SIZE 52428800", "ENHANCEDSTATUSCODES")
    with SmtpSink(extensions=seven) as old:
        t = relay_toaster(make_toaster, old.port)
        msg = message("eight bits", body="Gr\u00fc\u00dfe aus K\u00f6ln\r\n")
        qid = t.send(SENDER, ["bob@remote.test"], msg, mail_options=["BODY=8BITMIME"])
        bounces = wait_bounces(t, SENDER)
        wait_queue_empty(t)
        text = unfold(bounces[0].decode("utf-8", "replace"))
        assert "Status: 5.6.3" in text, text
        assert old.transactions == []
        log_line(t, qid, "to=<bob@remote.test>", "status=bounced")


def test_lifetime_expiry_and_one_delay_warning(make_toaster, sink):
    sink.set_rcpt_replies("bob@remote.test", ["451 4.3.0 not today"])
    t = relay_toaster(make_toaster, sink.port, queue_retry_min="1s", queue_retry_max="1s",
                      delay_warning_time="2s", queue_lifetime="6s")
    qid, msg = send(t, "never arrives")
    # The delay warning comes first, once; the bounce at the end of the lifetime.
    assert wait_until(lambda: len(t.messages(SENDER)) >= 2, 20), t.log()[-3000:]
    wait_queue_empty(t)
    time.sleep(1.5)
    reports = t.messages(SENDER)
    assert len(reports) == 2, [r[:400] for r in reports]
    texts = [unfold(r.decode("utf-8", "replace")) for r in reports]
    delayed = [x for x in texts if "Action: delayed" in x]
    failed = [x for x in texts if "Action: failed" in x]
    assert len(delayed) == 1 and len(failed) == 1, texts
    assert "Subject: Delayed Mail" in delayed[0]
    assert "Will-Retry-Until: " in delayed[0]
    assert "Status: 4.4.7" in failed[0], failed[0]
    assert "451 4.3.0 not today" in failed[0]
    assert sink.messages == []


# ---- hold and release --------------------------------------------------------------------------


def test_held_entry_waits_for_release(make_toaster, sink):
    sink.configure(greeting="421 4.3.2 not yet")
    t = relay_toaster(make_toaster, sink.port)
    qid, msg = send(t, "on hold")
    wait_deferred(t, qid, "bob@remote.test", "421")
    out = ctl(t, "hold", qid)
    assert out.returncode == 0, out.stderr
    sink.configure(greeting="220 sink.test ESMTP")
    assert ctl(t, "flush").returncode == 0
    time.sleep(3.0)  # past two retry periods
    assert sink.messages == [] and qid in queue_ids(t)
    out = ctl(t, "release", qid)
    assert out.returncode == 0, out.stderr
    assert ctl(t, "flush", qid).returncode == 0
    assert sink.wait_for(1, DELIVERY_S), t.log()[-3000:]
    wait_queue_empty(t)
    assert split_relayed(sink.messages[0].data)[1] == msg


# ---- TLS verify and the per-destination policy ------------------------------------------------


def test_tls_verify(make_toaster, tmp_path):
    cert, key = make_cert(tmp_path, "mx.remote.test")
    other_dir = tmp_path / "other"
    other_dir.mkdir()
    other_cert, _ = make_cert(other_dir, "mx.remote.test")  # same name, another key
    with SmtpSink(tls_cert=cert, tls_key=key) as tls_sink:
        good = relay_toaster(make_toaster, tls_sink.port, smtp_tls_security="verify",
                             smtp_tls_ca_file=str(cert))
        qid, msg = send(good, "verified")
        assert tls_sink.wait_for(1, DELIVERY_S), good.log()[-3000:]
        wait_queue_empty(good)
        assert tls_sink.messages[0].is_tls
        bad = relay_toaster(make_toaster, tls_sink.port, smtp_tls_security="verify",
                            smtp_tls_ca_file=str(other_cert))
        qid2, _ = send(bad, "not verified")
        wait_deferred(bad, qid2, "bob@remote.test", "")
        time.sleep(1.0)
        assert len(tls_sink.messages) == 1  # nothing from the second daemon
        assert qid2 in queue_ids(bad)


def test_tls_policy_file_per_domain(make_toaster, sink, tmp_path):
    policy = tmp_path / "tls_policy"
    policy.write_text("secure.test encrypt\n")
    zone = ZONE + ["secure.test MX 10 mx.remote.test"]
    t = relay_toaster(make_toaster, sink.port, zone=zone, smtp_tls_policy_file=str(policy))
    qid, msg = send(t, "policy", rcpts=["bob@remote.test", "x@secure.test"])
    assert sink.wait_for(1, DELIVERY_S), t.log()[-3000:]
    wait_deferred(t, qid, "x@secure.test", "")
    time.sleep(1.0)
    assert [m.rcpts for m in sink.messages] == [["bob@remote.test"]]  # the sink has no TLS
    assert "recipient: <bob@remote.test> delivered" in show(t, qid)


# ---- relay_domains (backup MX) and smtp_helo_name ------------------------------------------------


def test_relay_domains_by_mx_with_helo_name(make_toaster, sink):
    zone = ["inner.test MX 10 mx.inner.test", "mx.inner.test A 127.0.0.1"]
    t = relay_toaster(make_toaster, sink.port, zone=zone, mynetworks="",
                      relay_domains="inner.test", smtp_helo_name="out.example.com")
    with t.smtp() as client:
        code, _ = client.mail("someone@far.test")
        assert code == 250
        assert client.rcpt("bob@remote.test")[0] == 554  # not an open relay
        assert client.rcpt("x@inner.test")[0] == 250
        code, _ = client.data(message("for the inside", ["x@inner.test"],
                                      sender="someone@far.test"))
        assert code == 250
    assert sink.wait_for(1, DELIVERY_S), t.log()[-3000:]
    wait_queue_empty(t)
    m = sink.messages[0]
    assert m.rcpts == ["x@inner.test"] and m.mail_from == "someone@far.test"
    assert m.helo == "out.example.com"


# ---- routing failures: unknown domain, MX pointing back at us --------------------------------


def test_unknown_domain_bounces(make_toaster, sink):
    t = relay_toaster(make_toaster, sink.port)  # the zone says nothing of nowhere.test
    qid, msg = send(t, "nowhere", rcpts=["x@nowhere.test"])
    bounces = wait_bounces(t, SENDER)
    wait_queue_empty(t)
    text = unfold(bounces[0].decode("utf-8", "replace"))
    assert "Final-Recipient: rfc822; x@nowhere.test" in text
    assert "Status: 5.1.2" in text, text
    assert "Host or domain name not found" in text
    assert sink.connections == 0


class OwnSmtpPort:
    """A configuration value that is the daemon's own SMTP port, known only
    once start() has picked the ports (conftest formats values with str())."""

    def __init__(self):
        self.toaster = None

    def __str__(self):
        return str(self.toaster.ports["smtp_listen"])


def test_mx_pointing_back_at_us_bounces(make_toaster, sink):
    own = OwnSmtpPort()
    t = make_toaster(config=dict(BASE, smtp_mx_port=own), start=False)
    own.toaster = t
    t.write_dns_zone(ZONE)  # mx.remote.test is 127.0.0.1: our own listener
    t.start()
    qid, msg = send(t, "loop")
    bounces = wait_bounces(t, SENDER)
    wait_queue_empty(t)
    text = unfold(bounces[0].decode("utf-8", "replace"))
    assert "Status: 5.4.6" in text, text
    assert "loops back to myself" in text
    # The agent never connected to its own listener (two clients: the
    # start-up probe and our send).
    connects = re.findall(r": connect from \[127\.0\.0\.1\]$", t.log(), re.M)
    assert len(connects) == 2, t.log()[-3000:]


# ---- shutdown with a session open ------------------------------------------------------------


def test_shutdown_with_silent_remote_keeps_the_mail(make_toaster, sink):
    sink.configure(greeting=None)  # the greeting timeout (300 s) is far away
    t = relay_toaster(make_toaster, sink.port)
    qid, msg = send(t, "across a restart")
    assert sink.wait_sessions(1, DELIVERY_S), t.log()[-3000:]
    t.stop()  # SIGTERM: exit 0 within 15 s, clean log (conftest)
    env = t.queue_envelope(qid)
    assert re.search(r"\nrcpt pending \d+ \d+ <bob@remote\.test> ", env), env
    assert t.messages(SENDER) == []
    sink.configure(greeting="220 sink.test ESMTP back")
    t.proc = None
    t.start()
    assert sink.wait_for(1, DELIVERY_S), t.log()[-3000:]
    wait_queue_empty(t)
    time.sleep(0.5)
    assert len(sink.messages) == 1 and split_relayed(sink.messages[0].data)[1] == msg


# ---- smtp_data_done_timeout ------------------------------------------------------------------


def test_data_done_timeout(make_toaster, sink):
    """No reply to the end of the data within smtp_data_done_timeout: the
    recipient is deferred and tried again (the remote may have taken it:
    RFC 5321 6.1 allows the duplicate), then delivered."""
    sink.configure(data_delay_s=4.0)
    t = relay_toaster(make_toaster, sink.port, smtp_data_done_timeout="1s",
                      queue_retry_min="3s", queue_retry_max="3s")
    qid, msg = send(t, "slow to answer")
    text = wait_deferred(t, qid, "bob@remote.test", "timed out", 10)
    assert "pending, 1 attempt" in text, text
    sink.configure(data_delay_s=0)
    assert wait_until(lambda: queue_ids(t) == [], 20), t.log()[-3000:]
    wait_queue_empty(t)
    copies = [m for m in sink.snapshot() if split_relayed(m.data)[1] == msg]
    assert 1 <= len(copies) <= 2, len(copies)
    log_line(t, qid, "to=<bob@remote.test>", "status=sent")


# ---- per-destination pacing and the MX session limit -------------------------------------------


def test_destination_rate_delay(make_toaster, sink):
    sink.configure(greeting="421 4.3.2 not yet")
    t = relay_toaster(make_toaster, sink.port, smtp_destination_rate_delay="1s")
    with t.smtp() as client:
        for i in range(3):
            client.sendmail(SENDER, ["bob@remote.test"], message("paced %d" % i))
    assert wait_until(lambda: sink.connections >= 1, DELIVERY_S)
    sink.configure(greeting="220 sink.test ESMTP")
    assert sink.wait_for(3, 30), t.log()[-3000:]
    wait_queue_empty(t)
    times = sorted(m.accepted_at for m in sink.messages)
    gaps = [b - a for a, b in zip(times, times[1:])]
    # One delivery per second to the destination.
    assert all(g >= 0.8 for g in gaps), (gaps, [
        (m.session, round(m.accepted_at - times[0], 3),
         round(sink.sessions[m.session].started_at - times[0], 3)) for m in sink.messages])


def test_mx_session_limit(make_toaster, sink):
    """Five MX hosts that all answer 421: one attempt talks to at most
    smtp_mx_session_limit (2) of them, in preference order."""
    hosts = ["127.0.0.%d" % (21 + i) for i in range(5)]
    zone = []
    for i, address in enumerate(hosts):
        zone += ["remote.test MX %d mx%d.remote.test" % (10 * (i + 1), i),
                 "mx%d.remote.test A %s" % (i, address)]
    with SmtpSink(host=hosts, port=0) as busy:
        busy.configure(greeting="421 4.3.2 busy")
        t = relay_toaster(make_toaster, busy.port, zone=zone, smtp_mx_session_limit=2,
                          queue_retry_min="60s", queue_retry_max="120s")
        qid, msg = send(t, "busy everywhere")
        wait_deferred(t, qid, "bob@remote.test", "421")
        time.sleep(1.0)
        assert sorted({s.local[0] for s in busy.sessions}) == hosts[:2], \
            [s.local for s in busy.sessions]
        assert busy.connections == 2


# ---- client SASL: a wrong password, and never in clear -------------------------------------------


def test_sasl_wrong_password_defers(make_toaster, tmp_path):
    cert, key = make_cert(tmp_path)
    with SmtpSink(tls_cert=cert, tls_key=key, auth={"relay-user": "relay-secret"}) as hub:
        nexthop = "[127.0.0.1]:%d" % hub.port
        passwords = tmp_path / "sasl_passwd"
        passwords.write_text("%s relay-user:not-the-password\n" % nexthop)
        t = relay_toaster(make_toaster, 9, zone=[], relay_host=nexthop,
                          smtp_sasl_password_file=str(passwords))
        qid, msg = send(t, "wrong password")
        wait_deferred(t, qid, "bob@remote.test", "535")
        assert hub.transactions == []
        assert t.messages(SENDER) == []  # deferred, not bounced


def test_sasl_never_in_clear(make_toaster, tmp_path):
    with SmtpSink(auth={"relay-user": "relay-secret"}) as hub:  # AUTH offered, no STARTTLS
        nexthop = "[127.0.0.1]:%d" % hub.port
        passwords = tmp_path / "sasl_passwd"
        passwords.write_text("%s relay-user:relay-secret\n" % nexthop)
        t = relay_toaster(make_toaster, 9, zone=[], relay_host=nexthop,
                          smtp_sasl_password_file=str(passwords))
        qid, msg = send(t, "no password in clear")
        assert wait_until(lambda: hub.connections >= 1 and all(
            s.ended_at is not None for s in hub.sessions), DELIVERY_S), t.log()[-3000:]
        time.sleep(1.0)
        for s in hub.sessions:
            assert not any(c.upper().startswith("AUTH") for c in s.commands), s.commands
        assert hub.messages == []


# ---- stopping while mail waits for a session ---------------------------------------------------


def test_sigterm_writes_what_was_done_and_keeps_the_rest(make_toaster, sink):
    """SIGTERM while one message is on the wire and another waits for the
    destination's only session: the first finishes and leaves the queue,
    the second stays queued untried, and after a restart it goes, once.
    (A session still greeting when the stop comes is closed at once, its
    mail untried.)"""
    sink.configure(delay_s=0.3)
    t = relay_toaster(make_toaster, sink.port, smtp_destination_concurrency_limit=1,
                      smtp_connection_cache_time_limit="0s")
    first, _ = send(t, "first")
    second, _ = send(t, "second")
    # Stop once the first transaction is under way (MAIL sent).
    assert wait_until(lambda: any(c.upper().startswith("MAIL FROM") for se in sink.sessions
                                  for c in se.commands), DELIVERY_S)
    t.stop()
    assert sink.wait_for(1, 1)
    assert len(sink.messages) == 1
    sent_qid = first if "Subject: first" in sink.messages[0].data.decode() else second
    other = second if sent_qid == first else first
    assert queue_ids(t) == [other], (queue_ids(t), t.log()[-2000:])
    assert re.search(r"recipient: <bob@remote.test> pending, 0 attempts", show(t, other)), \
        show(t, other)
    sink.configure(delay_s=0)
    t.proc = None
    t.start()
    assert sink.wait_for(2, DELIVERY_S), t.log()[-3000:]
    wait_queue_empty(t)
    time.sleep(0.5)
    assert len(sink.messages) == 2


# ---- a cached session and a stricter TLS policy --------------------------------------------------


def test_cached_session_never_carries_a_stricter_domain(make_toaster, sink, tmp_path):
    """Two domains behind one relay_host: a.test may go in clear, b.test
    must be encrypted. The session opened (in clear) for a.test and kept
    for reuse must not carry b.test's message; that one waits for a
    session of its own, which the sink (no STARTTLS) cannot give."""
    policy = tmp_path / "tls_policy"
    policy.write_text("a.test may\nb.test encrypt\n")
    t = relay_toaster(make_toaster, sink.port, zone=[],
                      relay_host="[127.0.0.1]:%d" % sink.port,
                      smtp_tls_policy_file=str(policy),
                      smtp_connection_cache_time_limit="10s",
                      queue_retry_min="1h", queue_retry_max="2h")
    send(t, "for a", rcpts=["x@a.test"])
    assert sink.wait_for(1, DELIVERY_S), t.log()[-3000:]
    qid, _ = send(t, "for b", rcpts=["y@b.test"])
    wait_deferred(t, qid, "y@b.test", "TLS is required")
    assert len(sink.messages) == 1 and sink.messages[0].rcpts == ["x@a.test"]
    assert all("RCPT TO:<y@b.test>" not in c for s in sink.sessions for c in s.commands)


# ---- what a restart finds in the queue goes at once ---------------------------------------------


def test_restart_sends_what_the_queue_holds_at_once(make_toaster, sink):
    """Entries found by the start-up scan are due at once, not at the next
    scan (queue_retry_min, here an hour)."""
    t = relay_toaster(make_toaster, sink.port, outbound_delivery="no")
    qids = [send(t, "queued %d" % i)[0] for i in range(3)]
    t.stop()
    assert sorted(queue_ids(t)) == sorted(qids)
    t.extra_config.update(outbound_delivery="yes", queue_retry_min="1h", queue_retry_max="2h")
    t.proc = None
    t.start()
    assert sink.wait_for(3, DELIVERY_S), t.log()[-3000:]
    wait_queue_empty(t)
