"""Malformed and hostile SMTP input against the real toasterd, exact replies checked.

Raw sockets send what polite clients never do: command lines at and past the
2048-byte limit, 1 MiB lines, NUL bytes, bare LF, end-of-data smuggling, bursts
of garbage, oversized messages, too many recipients, clients that vanish or go
quiet mid-transaction. Every case must get the protocol's own error (or be
stored intact), never a crash, a hang, a split message or a leftover spool file.
"""

import socket
import struct
import time

import pytest

from conftest import QUEUED_RE, dot_stuff, split_trace, wait_until

LINE_MAX = 2048
SENDER = "sender@remote.test"


def start_data(c, rcpts=("alice@example.com",)):
    c.greet()
    assert c.cmd("MAIL FROM:<%s>" % SENDER)[-1] == b"250 2.1.0 Ok"
    for rcpt in rcpts:
        assert c.cmd("RCPT TO:<%s>" % rcpt)[-1] == b"250 2.1.5 Ok"
    assert c.cmd("DATA")[-1].startswith(b"354 ")


def only_message(toaster, mailbox="alice@example.com"):
    paths = toaster.all_delivered()
    assert len(paths) == 1, paths
    assert paths == toaster.delivered(mailbox)
    return split_trace(paths[0].read_bytes())[1]


def spool_drained(toaster):
    return wait_until(lambda: toaster.spool_files() == [] and toaster.tmp_files() == [], 5)


# ---- command lines -----------------------------------------------------------------


@pytest.mark.parametrize("length,ok", [(LINE_MAX - 1, True), (LINE_MAX, True),
                                       (LINE_MAX + 1, False), (LINE_MAX + 2, False),
                                       (4 * LINE_MAX, False)])
def test_command_line_limit(toaster, length, ok):
    line = b"NOOP " + b"x" * (length - 5)
    assert len(line) == length
    with toaster.raw() as c:
        c.greet()
        got = c.cmd(line)
        if ok:
            assert got == [b"250 2.0.0 Ok"]
        else:
            assert got == [b"500 5.5.6 Error: line too long"]
        assert c.cmd("NOOP") == [b"250 2.0.0 Ok"]


def test_line_limit_with_cr_split_across_writes(toaster):
    """A 2048-byte line whose CR and LF arrive in separate segments is still fine."""
    with toaster.raw() as c:
        c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        c.greet()
        c.send(b"NOOP " + b"y" * (LINE_MAX - 5) + b"\r")
        time.sleep(0.05)
        c.send(b"\n")
        assert c.reply_line() == b"250 2.0.0 Ok"
        c.send(b"NOOP " + b"y" * (LINE_MAX - 4))
        time.sleep(0.05)
        c.send(b"\r\n")
        assert c.reply_line() == b"500 5.5.6 Error: line too long"


def test_one_mib_command_line(toaster):
    with toaster.raw() as c:
        c.greet()
        c.send(b"MAIL FROM:<" + b"a" * (1 << 20) + b"@remote.test>\r\n")
        assert c.reply_line() == b"500 5.5.6 Error: line too long"
        assert c.cmd("NOOP") == [b"250 2.0.0 Ok"]
        # Still a working session afterwards.
        assert c.cmd("MAIL FROM:<%s>" % SENDER)[-1] == b"250 2.1.0 Ok"
        # And one in the middle of a transaction.
        c.send(b"RCPT TO:<" + b"b" * (1 << 20) + b"@example.com>\r\n")
        assert c.reply_line() == b"500 5.5.6 Error: line too long"
        assert c.cmd("RCPT TO:<alice@example.com>")[-1] == b"250 2.1.5 Ok"
    assert toaster.all_delivered() == []


def test_long_line_without_newline_then_close(toaster):
    with toaster.raw() as c:
        c.greet()
        c.send(b"x" * (1 << 20))
    with toaster.raw() as c:
        c.greet()  # the daemon is still serving


def test_address_too_long(toaster):
    with toaster.raw() as c:
        c.greet()
        local = b"a" * 600
        assert c.cmd(b"MAIL FROM:<" + local + b"@remote.test>")[-1] == \
            b"501 5.1.7 Bad sender address syntax"
        assert c.cmd("MAIL FROM:<%s>" % SENDER)[-1] == b"250 2.1.0 Ok"
        assert c.cmd(b"RCPT TO:<" + local + b"@example.com>")[-1] == \
            b"501 5.1.3 Bad recipient address syntax"


@pytest.mark.parametrize("line", [
    b"NOOP\x00\r\n",
    b"\x00\r\n",
    b"NO\x00OP\r\n",
    b"MAIL FROM:<a\x00b@remote.test>\r\n",
    b"EHLO client\x00.example\r\n",
])
def test_nul_in_command(toaster, line):
    with toaster.raw() as c:
        c.greet()
        c.send(line)
        assert c.reply_line() == b"500 5.5.2 Error: command not recognized"
        assert c.cmd("NOOP") == [b"250 2.0.0 Ok"]
        # The refused MAIL did not start a transaction.
        assert c.cmd("RCPT TO:<alice@example.com>")[-1] == b"503 5.5.1 Error: need MAIL command"


def test_nul_in_data_stored(toaster):
    msg = b"Subject: nul\r\n\r\nbefore\x00after\r\n\x00\r\n"
    with toaster.raw() as c:
        start_data(c)
        c.send(dot_stuff(msg))
        assert QUEUED_RE.match(c.reply_line())
    assert only_message(toaster) == msg


def test_control_and_8bit_bytes_in_commands(toaster):
    with toaster.raw() as c:
        c.greet()
        assert c.cmd(b"\xff\xfe\xfd")[-1] == b"500 5.5.2 Error: command not recognized"
        assert c.cmd(b"EHLO \x1b[31mred\x1b[0m")[-1] in (b"501 5.5.4 Syntax: EHLO hostname",
                                                          b"250 mx.example.com")
        assert c.cmd(b"MAIL FROM:<a@remote.test>\x07")[-1][:1] in (b"2", b"5")
    assert "\x1b" not in toaster.log()


# ---- DATA bodies -------------------------------------------------------------------


def test_one_mib_body_line_stored_intact(toaster):
    line = bytes(range(0x21, 0x7f)) * ((1 << 20) // 94 + 1)
    line = line[: 1 << 20]
    msg = b"Subject: long line\r\n\r\n" + line + b"\r\n.." + line + b"\r\nend\r\n"
    with toaster.raw() as c:
        start_data(c)
        c.send(dot_stuff(msg))
        assert QUEUED_RE.match(c.reply_line())
    assert only_message(toaster) == msg
    assert spool_drained(toaster)


def test_bare_lf_normalised_by_default(toaster):
    with toaster.raw() as c:
        start_data(c)
        c.send(b"Subject: bare lf\n\nline one\nline two\r\nthree\r\n.\r\n")
        assert QUEUED_RE.match(c.reply_line())
        # A bare-LF command is accepted too in this mode.
        c.send(b"NOOP\n")
        assert c.reply_line() == b"250 2.0.0 Ok"
    assert only_message(toaster) == b"Subject: bare lf\r\n\r\nline one\r\nline two\r\nthree\r\n"


def test_bare_cr_kept(toaster):
    with toaster.raw() as c:
        start_data(c)
        c.send(b"Subject: bare cr\r\n\r\na\rb\r\n\r\r\n.\r\n")
        assert QUEUED_RE.match(c.reply_line())
    assert only_message(toaster) == b"Subject: bare cr\r\n\r\na\rb\r\n\r\r\n"


SMUGGLES = [
    b"\n.\n",
    b"\n.\r\n",
    b"\r\n.\n",
    b"\r.\r\n",
    b"\r\n.\r",
    b"\r\n\x00.\r\n",
]


@pytest.mark.parametrize("terminator", SMUGGLES, ids=[repr(s) for s in SMUGGLES])
def test_end_of_data_smuggling(toaster, terminator):
    injected = (b"MAIL FROM:<evil@remote.test>\r\n"
                b"RCPT TO:<bob@example.com>\r\n"
                b"DATA\r\n"
                b"Subject: smuggled\r\n\r\nSMUGGLED-PAYLOAD\r\n")
    with toaster.raw() as c:
        start_data(c)
        c.send(b"Subject: carrier\r\n\r\nfirst part" + terminator + injected + b".\r\n")
        line = c.reply_line()
        assert QUEUED_RE.match(line), line
        # Exactly one reply: nothing after it was run as a command.
        assert c.cmd("NOOP") == [b"250 2.0.0 Ok"]
    body = only_message(toaster)
    assert b"SMUGGLED-PAYLOAD" in body
    assert b"RCPT TO:<bob@example.com>" in body
    assert toaster.delivered("bob@example.com") == []


@pytest.mark.parametrize("terminator", SMUGGLES[:3], ids=[repr(s) for s in SMUGGLES[:3]])
def test_end_of_data_smuggling_bare_lf_reject(make_toaster, terminator):
    t = make_toaster(config={"bare_lf": "reject"})
    injected = (b"MAIL FROM:<evil@remote.test>\r\nRCPT TO:<bob@example.com>\r\nDATA\r\n"
                b"SMUGGLED\r\n")
    with t.raw() as c:
        start_data(c)
        c.send(b"Subject: carrier\r\n\r\nx" + terminator + injected + b".\r\n")
        assert c.reply_line() == b"550 5.5.2 Error: bare <LF> received"
        assert c.cmd("NOOP") == [b"250 2.0.0 Ok"]
    assert t.all_delivered() == []
    assert spool_drained(t)


def test_bare_lf_reject(make_toaster):
    t = make_toaster(config={"bare_lf": "reject"})
    with t.raw() as c:
        start_data(c)
        c.send(b"Subject: bare lf\r\n\r\nline one\nline two\r\n.\r\n")
        assert c.reply_line() == b"550 5.5.2 Error: bare <LF> received"
        # The session goes on; a clean message is accepted.
        assert c.cmd("MAIL FROM:<%s>" % SENDER)[-1] == b"250 2.1.0 Ok"
        assert c.cmd("RCPT TO:<alice@example.com>")[-1] == b"250 2.1.5 Ok"
        assert c.cmd("DATA")[-1].startswith(b"354 ")
        c.send(b"Subject: clean\r\n\r\nclean\r\n.\r\n")
        assert QUEUED_RE.match(c.reply_line())
        # A command ended by a bare LF is refused too.
        c.send(b"NOOP\n")
        assert c.reply_line() == b"500 5.5.2 Error: bare <LF> received"
        assert c.cmd("NOOP") == [b"250 2.0.0 Ok"]
    assert only_message(t) == b"Subject: clean\r\n\r\nclean\r\n"
    assert spool_drained(t)


def test_bare_lf_reject_bdat(make_toaster):
    t = make_toaster(config={"bare_lf": "reject"})
    with t.raw() as c:
        c.greet()
        assert c.cmd("MAIL FROM:<%s>" % SENDER)[-1] == b"250 2.1.0 Ok"
        assert c.cmd("RCPT TO:<alice@example.com>")[-1] == b"250 2.1.5 Ok"
        c.send(b"BDAT 8 LAST\r\na\nb\r\nc\r\n")
        assert c.reply_line() == b"550 5.5.2 Error: bare <LF> received"
        assert c.cmd("NOOP") == [b"250 2.0.0 Ok"]
    assert t.all_delivered() == []


# ---- error and junk budgets ---------------------------------------------------------


def test_pipelined_garbage_hits_error_limit(toaster):
    """Default smtp_error_limit = 20: 20 errors, then 421 and close."""
    garbage = b"".join(b"GARBAGE %d \x01\xfe\r\n" % i for i in range(40))
    with toaster.raw() as c:
        c.greet()
        c.send(garbage)
        replies = c.replies(21)
        assert c.closed()
    assert replies[:20] == [b"500 5.5.2 Error: command not recognized"] * 20
    assert replies[20] == b"421 4.7.0 mx.example.com Error: too many errors"


def test_error_limit_configured_and_mixed_errors(make_toaster):
    t = make_toaster(config={"smtp_error_limit": "3"})
    with t.raw() as c:
        c.greet()
        assert c.cmd("RCPT TO:<alice@example.com>")[-1].startswith(b"503 ")
        assert c.cmd("MAIL FROM:<%s>" % SENDER)[-1] == b"250 2.1.0 Ok"
        # Good commands in between do not reset the count.
        assert c.cmd("RCPT TO:<nobody@example.com>")[-1].startswith(b"550 ")
        assert c.cmd("RCPT TO:<alice@example.com>")[-1] == b"250 2.1.5 Ok"
        assert c.cmd("RCPT TO:<x@remote.test>") == [
            b"554 5.7.1 <x@remote.test>: Relay access denied",
            ]
        assert c.reply_line() == b"421 4.7.0 mx.example.com Error: too many errors"
        assert c.closed()
    assert t.all_delivered() == []
    assert spool_drained(t)


def test_junk_command_limit(make_toaster):
    t = make_toaster(config={"smtp_junk_command_limit": "5"})
    with t.raw() as c:
        c.greet()
        c.send(b"NOOP\r\nRSET\r\nVRFY a\r\nHELP\r\nNOOP\r\nNOOP\r\nNOOP\r\n")
        replies = c.replies(6)
        assert c.closed()
    assert replies[0] == b"250 2.0.0 Ok"
    assert replies[4] == b"250 2.0.0 Ok"
    assert replies[5] == b"421 4.7.0 mx.example.com Error: too many junk commands"


def test_garbage_binary_stream(toaster):
    """Random bytes: the daemon answers or closes, and keeps serving others."""
    rng = __import__("random").Random(1234)
    for _ in range(5):
        blob = bytes(rng.getrandbits(8) for _ in range(20000))
        with toaster.raw(timeout=5) as c:
            c.reply()
            c.send(blob)
            assert c.closed(timeout=5)  # too many errors, then closed
    with toaster.raw() as c:
        c.greet()
    assert toaster.all_delivered() == []


# ---- message size -------------------------------------------------------------------


def test_message_size_limit(make_toaster):
    limit = 10 * 1024
    t = make_toaster(config={"message_size_limit": "10k"})

    def body_of(size):
        head = b"Subject: size\r\n\r\n"
        fill = size - len(head) - 2
        return head + b"z" * fill + b"\r\n"

    with t.raw() as c:
        lines = c.greet()
        assert b"250-SIZE %d" % limit in lines
        results = []
        for size in (limit - 1, limit, limit + 1, 5 * limit):
            assert c.cmd("MAIL FROM:<%s>" % SENDER)[-1] == b"250 2.1.0 Ok"
            assert c.cmd("RCPT TO:<alice@example.com>")[-1] == b"250 2.1.5 Ok"
            assert c.cmd("DATA")[-1].startswith(b"354 ")
            c.send(dot_stuff(body_of(size)))
            results.append(c.reply_line())
        assert c.cmd("NOOP") == [b"250 2.0.0 Ok"]
        assert c.cmd("MAIL FROM:<%s> SIZE=%d" % (SENDER, limit + 1))[-1] == \
            b"552 5.3.4 Message size exceeds fixed limit"
        assert c.cmd("MAIL FROM:<%s> SIZE=%d" % (SENDER, limit))[-1] == b"250 2.1.0 Ok"
    assert QUEUED_RE.match(results[0]) and QUEUED_RE.match(results[1]), results
    assert results[2:] == [b"552 5.3.4 Error: message file too big"] * 2
    stored = sorted(split_trace(p.read_bytes())[1] for p in t.delivered("alice@example.com"))
    assert stored == sorted([body_of(limit - 1), body_of(limit)])
    assert len(t.all_delivered()) == 2
    assert spool_drained(t)


def test_hop_count_limit(make_toaster):
    """A message that has passed hopcount_limit servers already is a loop
    (RFC 5321 6.3): 554 5.4.6 at the end of data, by DATA and by BDAT;
    one hop fewer is stored; nothing counts past the header; the session
    goes on, and the refusal is no error of the client's."""
    t = make_toaster(config={"hopcount_limit": "5"})

    def with_hops(count, body_hops=0):
        head = b"".join(b"Received: from hop%d.example by x.example; Fri, 4 Dec 2026 "
                        b"10:00:00 +0000\r\n" % i for i in range(count))
        tail = b"".join(b"Received: quoted in the body\r\n" for _ in range(body_hops))
        return head + b"Subject: hops %d\r\n\r\nhello\r\n" % count + tail

    results = []
    with t.raw() as c:
        c.greet()
        for count, body_hops in ((4, 10), (5, 0), (50, 0)):
            assert c.cmd("MAIL FROM:<%s>" % SENDER)[-1] == b"250 2.1.0 Ok"
            assert c.cmd("RCPT TO:<alice@example.com>")[-1] == b"250 2.1.5 Ok"
            assert c.cmd("DATA")[-1].startswith(b"354 ")
            c.send(dot_stuff(with_hops(count, body_hops)))
            results.append(c.reply_line())
        body = with_hops(6)
        assert c.cmd("MAIL FROM:<%s>" % SENDER)[-1] == b"250 2.1.0 Ok"
        assert c.cmd("RCPT TO:<alice@example.com>")[-1] == b"250 2.1.5 Ok"
        c.send(b"BDAT %d LAST\r\n" % len(body) + body)
        results.append(c.reply_line())
        assert c.cmd("NOOP") == [b"250 2.0.0 Ok"]
    assert QUEUED_RE.match(results[0]), results
    assert results[1:] == [b"554 5.4.6 Error: too many hops"] * 3
    stored = [split_trace(p.read_bytes())[1] for p in t.delivered("alice@example.com")]
    assert stored == [with_hops(4, 10)]
    assert spool_drained(t)


def test_oversize_large_stream_then_more(make_toaster):
    """A 20 MiB body against a 1 MiB limit is read to its end, then 552 once."""
    t = make_toaster(config={"message_size_limit": "1m"})
    chunk = (b"x" * 998 + b"\r\n") * 1024
    with t.raw(timeout=30) as c:
        start_data(c)
        c.send(b"Subject: huge\r\n\r\n")
        for _ in range(20):
            c.send(chunk)
        c.send(b".\r\nNOOP\r\n")
        assert c.reply_line() == b"552 5.3.4 Error: message file too big"
        assert c.reply_line() == b"250 2.0.0 Ok"
    assert t.all_delivered() == []
    assert spool_drained(t)


# ---- recipients -----------------------------------------------------------------------


def test_recipient_limit(make_toaster):
    t = make_toaster(config={"recipient_limit": "5", "smtp_error_limit": "3"})
    users = ["u%d@example.com" % i for i in range(8)]
    t.write_users(["%s:{PLAIN}x" % u for u in users])
    t.reload()
    with t.raw() as c:
        c.greet()
        assert c.cmd("MAIL FROM:<%s>" % SENDER)[-1] == b"250 2.1.0 Ok"
        replies = [c.cmd("RCPT TO:<%s>" % u)[-1] for u in users]
        assert replies[:5] == [b"250 2.1.5 Ok"] * 5
        # 452 is not a client error: three of them do not hit the error limit of 3.
        assert replies[5:] == [b"452 4.5.3 Error: too many recipients"] * 3
        assert c.cmd("DATA")[-1].startswith(b"354 ")
        c.send(b"Subject: five\r\n\r\nfive\r\n.\r\n")
        assert QUEUED_RE.match(c.reply_line())
        # A new transaction gets a fresh allowance.
        assert c.cmd("MAIL FROM:<%s>" % SENDER)[-1] == b"250 2.1.0 Ok"
        assert [c.cmd("RCPT TO:<%s>" % u)[-1] for u in users[5:]] == [b"250 2.1.5 Ok"] * 3
    for u in users[:5]:
        assert len(t.delivered(u)) == 1, u
    for u in users[5:]:
        assert t.delivered(u) == []


def test_recipient_limit_counts_addresses_not_mailboxes(make_toaster):
    t = make_toaster(config={"recipient_limit": "2"})
    with t.raw() as c:
        c.greet()
        assert c.cmd("MAIL FROM:<%s>" % SENDER)[-1] == b"250 2.1.0 Ok"
        assert c.cmd("RCPT TO:<all@example.com>")[-1] == b"250 2.1.5 Ok"
        assert c.cmd("RCPT TO:<dave@example.org>")[-1] == b"250 2.1.5 Ok"
        assert c.cmd("RCPT TO:<bob@example.com>")[-1] == b"452 4.5.3 Error: too many recipients"


# ---- vanishing and silent clients -------------------------------------------------------


def _abort(c, rst):
    if rst:
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    c.close()


@pytest.mark.parametrize("rst", [False, True], ids=["fin", "rst"])
def test_client_vanishes_mid_data(toaster, rst):
    for size in (100, 300000):
        c = toaster.raw()
        start_data(c)
        c.send(b"Subject: vanish\r\n\r\n" + b"v" * size + b"\r\n")
        time.sleep(0.1)
        _abort(c, rst)
    assert wait_until(lambda: toaster.log().count("disconnect from") >= 2, 5)
    assert spool_drained(toaster), toaster.spool_files()
    time.sleep(0.2)
    assert toaster.all_delivered() == []
    assert toaster.spool_files() == []


@pytest.mark.parametrize("rst", [False, True], ids=["fin", "rst"])
def test_client_vanishes_mid_bdat(toaster, rst):
    c = toaster.raw()
    c.greet()
    assert c.cmd("MAIL FROM:<%s>" % SENDER)[-1] == b"250 2.1.0 Ok"
    assert c.cmd("RCPT TO:<alice@example.com>")[-1] == b"250 2.1.5 Ok"
    c.send(b"BDAT 200000\r\n" + b"b" * 100000)
    c.send(b"BDAT 1000 LAST\r\n")  # in the middle of the first chunk: content
    time.sleep(0.1)
    _abort(c, rst)
    assert wait_until(lambda: "disconnect from" in toaster.log(), 5)
    assert spool_drained(toaster), toaster.spool_files()
    assert toaster.all_delivered() == []


def test_client_vanishes_right_after_final_dot(toaster):
    """The dot arrived: the message is ours and must be delivered exactly once."""
    c = toaster.raw()
    start_data(c)
    c.send(b"Subject: dot then gone\r\n\r\nbody\r\n.\r\n")
    c.close()
    assert wait_until(lambda: len(toaster.all_delivered()) == 1, 5)
    assert spool_drained(toaster)
    time.sleep(0.2)
    assert len(toaster.all_delivered()) == 1


def test_idle_timeout(make_toaster):
    t = make_toaster(config={"smtp_idle_timeout": "1s"})
    with t.raw(timeout=10) as c:
        c.greet()
        started = time.monotonic()
        line = c.reply_line()
        elapsed = time.monotonic() - started
        assert line == b"421 4.4.2 mx.example.com Error: timeout exceeded"
        assert c.closed()
    assert 0.7 <= elapsed < 5, elapsed
    # Activity restarts the clock: NOOP every 0.5 s keeps the session alive.
    with t.raw(timeout=10) as c:
        c.greet()
        for _ in range(4):
            time.sleep(0.5)
            assert c.cmd("NOOP") == [b"250 2.0.0 Ok"]
    t.wait_log("timeout after")


def test_idle_timeout_in_transaction(make_toaster):
    t = make_toaster(config={"smtp_idle_timeout": "1s"})
    with t.raw(timeout=10) as c:
        c.greet()
        assert c.cmd("MAIL FROM:<%s>" % SENDER)[-1] == b"250 2.1.0 Ok"
        assert c.cmd("RCPT TO:<alice@example.com>")[-1] == b"250 2.1.5 Ok"
        assert c.reply_line() == b"421 4.4.2 mx.example.com Error: timeout exceeded"
        assert c.closed()
    assert t.all_delivered() == []


def test_data_timeout(make_toaster):
    t = make_toaster(config={"smtp_data_timeout": "1s"})
    with t.raw(timeout=10) as c:
        start_data(c)
        c.send(b"Subject: stalled\r\n\r\npartial")
        started = time.monotonic()
        assert c.reply_line() == b"421 4.4.2 mx.example.com Error: timeout exceeded"
        assert time.monotonic() - started < 5
        assert c.closed()
    assert spool_drained(t)
    assert t.all_delivered() == []



def test_timeouts_during_bdat(make_toaster):
    """Idle between chunks (idle timeout) and stalled inside a chunk (data
    timeout) both end with 421 and leave no spool file."""
    t = make_toaster(config={"smtp_idle_timeout": "1s", "smtp_data_timeout": "1s"})
    for stream in (b"BDAT 5\r\nabcde", b"BDAT 50\r\nabcde"):
        with t.raw(timeout=10) as c:
            c.greet()
            assert c.cmd("MAIL FROM:<%s>" % SENDER)[-1] == b"250 2.1.0 Ok"
            assert c.cmd("RCPT TO:<alice@example.com>")[-1] == b"250 2.1.5 Ok"
            c.send(stream)
            if stream.startswith(b"BDAT 5\r"):
                assert c.reply_line() == b"250 2.0.0 Ok: 5 octets received"
            assert c.reply_line() == b"421 4.4.2 mx.example.com Error: timeout exceeded"
            assert c.closed()
        assert spool_drained(t), t.spool_files()
    assert t.all_delivered() == []


def test_ehlo_resets_transaction(toaster):
    with toaster.raw() as c:
        c.greet()
        assert c.cmd("MAIL FROM:<%s>" % SENDER)[-1] == b"250 2.1.0 Ok"
        assert c.cmd("RCPT TO:<alice@example.com>")[-1] == b"250 2.1.5 Ok"
        c.send(b"BDAT 5\r\nabcde")
        assert c.reply_line() == b"250 2.0.0 Ok: 5 octets received"
        assert c.cmd("EHLO again.example")[-1] == b"250 DSN"
        assert c.cmd("BDAT 0 LAST")[-1] == b"503 5.5.1 Error: need MAIL command"
        assert c.cmd("MAIL FROM:<%s>" % SENDER)[-1] == b"250 2.1.0 Ok"
        assert c.cmd("HELO again.example")[-1] == b"250 mx.example.com"
        assert c.cmd("RCPT TO:<alice@example.com>")[-1] == b"503 5.5.1 Error: need MAIL command"
    assert spool_drained(toaster)
    assert toaster.all_delivered() == []


def test_client_never_reads_send_timeout(make_toaster):
    """A client that pipelines commands but never reads the replies is dropped
    after send_timeout; the daemon itself keeps serving."""
    t = make_toaster(config={"send_timeout": "1s"})
    try:
        _flood_without_reading(t)
    finally:
        if t.proc is not None and not t.is_running():
            # Crashed: report it here, once, rather than again at teardown.
            rc = t.wait()
            t.proc = None
            pytest.fail("toasterd died (exit %r); log:\n%s" % (rc, t.log()))


def _flood_without_reading(t):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", t.port))
    s.setblocking(False)
    # EHLO is neither a junk command nor an error, so only the send timeout
    # can end this session. Partial sends are resumed so lines stay whole.
    flood = b"EHLO never-reads.example\r\n" * 1000
    pending = b""
    deadline = time.monotonic() + 8
    try:
        while time.monotonic() < deadline and "timed out, closing" not in t.log():
            if not pending:
                pending = flood
            try:
                pending = pending[s.send(pending):]
            except BlockingIOError:
                time.sleep(0.05)
            except OSError:
                break  # reset by the server: fine
    finally:
        s.close()
    t.wait_log("send to 127.0.0.1 timed out, closing")
    time.sleep(0.3)
    assert t.is_running(), t.log()
    with t.raw() as c:
        c.greet()
