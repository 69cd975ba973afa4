"""postscreen on the SMTP port (25 in production), driven through the real toasterd.

Covers the greet wait (a quiet client gets the banner after the wait, can
send mail, and is then remembered as good and greeted at once; a client that
talks first gets 554 5.5.1, is closed, and is refused 554 5.7.1 when it
comes back), postscreen_access inline and from a file (reject refuses at
once, permit skips the wait, a bad list stops the start), the per-address
connection rate limit and the concurrency limit (421 4.7.0), the default
(no greet wait) and the submission port, which is never screened. Each test
speaks from its own 127.0.0.x address, so the memory of one client never
leaks into another (the fixture's start-up probe comes from 127.0.0.1).
"""

import signal
import socket
import time

import pytest

from conftest import RawSMTP, dot_stuff

GREET_WAIT = 1.0

MESSAGE = (
    b"From: <sender@remote.test>\r\n"
    b"To: <alice@example.com>\r\n"
    b"Subject: postscreen\r\n"
    b"\r\n"
    b"Hello.\r\n"
)


class Client(RawSMTP):
    """A RawSMTP connection from a chosen loopback source address."""

    def __init__(self, port, source, timeout=10.0):  # noqa: super().__init__ connects
        self.started = time.monotonic()
        self.sock = socket.create_connection(
            ("127.0.0.1", port), timeout=timeout, source_address=(source, 0)
        )
        self.buf = b""

    def banner(self):
        """The first reply line and the seconds it took since connect."""
        line = self.reply_line()
        return line, time.monotonic() - self.started


def send_mail(toaster, c):
    assert c.cmd("EHLO client.example")[-1].startswith(b"250 ")
    toaster.transact(c, "sender@remote.test", ["alice@example.com"], dot_stuff(MESSAGE))
    assert c.cmd("QUIT")[-1].startswith(b"221 ")


def test_greet_wait_off_by_default(toaster):
    with Client(toaster.port, "127.0.0.2") as c:
        line, took = c.banner()
        assert line.startswith(b"220 "), line
        assert took < 0.5, took
        send_mail(toaster, c)
    assert "postscreen" not in toaster.log()


def test_quiet_client_passes_and_is_remembered(make_toaster):
    t = make_toaster(config={"postscreen_greet_wait": "1s"})
    with Client(t.port, "127.0.0.2") as c:
        line, first = c.banner()
        assert line.startswith(b"220 "), line
        assert first >= GREET_WAIT * 0.9, first
        assert first < GREET_WAIT + 2.0, first
        send_mail(t, c)
    t.wait_log("postscreen: PASS NEW [127.0.0.2]")
    assert len(t.delivered("alice@example.com")) == 1
    # Remembered as good: the banner comes at once.
    with Client(t.port, "127.0.0.2") as c:
        line, again = c.banner()
        assert line.startswith(b"220 "), line
        send_mail(t, c)
    assert again * 5 < first, (again, first)
    t.wait_log("postscreen: PASS OLD [127.0.0.2]")
    # Another address is still tested.
    with Client(t.port, "127.0.0.3") as c:
        line, took = c.banner()
        assert line.startswith(b"220 ") and took >= GREET_WAIT * 0.9, (line, took)


def test_pregreet_is_refused_and_remembered(make_toaster):
    t = make_toaster(config={"postscreen_greet_wait": "1s"})
    with Client(t.port, "127.0.0.4") as c:
        c.send(b"EHLO bot.example\r\nMAIL FROM:<spam@bot.example>\r\n")
        line, took = c.banner()
        # No banner first: the refusal is the only thing it hears.
        assert line == b"554 5.5.1 Error: no SMTP service", line
        assert took < GREET_WAIT + 1.0
        assert c.closed()
        assert c.buf == b""  # nothing after the refusal, never a reply to its commands
    t.wait_log("postscreen: PREGREET ")
    assert "from [127.0.0.4]: EHLO bot.example\\x0d\\x0aMAIL" in t.log()
    # Remembered as bad: refused at once on the next connection.
    with Client(t.port, "127.0.0.4") as c:
        line, took = c.banner()
        assert line == b"554 5.7.1 Service unavailable; client [127.0.0.4] blocked", line
        assert took < 0.5, took
        assert c.closed()
    t.wait_log("postscreen: BAD OLD [127.0.0.4]")
    # Nothing of it reached a mailbox, and other clients are not affected.
    assert t.all_delivered() == []
    with Client(t.port, "127.0.0.5") as c:
        line, _ = c.banner()
        assert line.startswith(b"220 "), line
        send_mail(t, c)


def test_pregreet_memory_expires(make_toaster):
    t = make_toaster(config={"postscreen_greet_wait": "1s", "postscreen_bad_ttl": "2s"})
    with Client(t.port, "127.0.0.6") as c:
        c.send(b"HELO bot\r\n")
        assert c.banner()[0] == b"554 5.5.1 Error: no SMTP service"
    with Client(t.port, "127.0.0.6") as c:
        assert c.banner()[0].startswith(b"554 5.7.1 ")
    time.sleep(2.2)
    with Client(t.port, "127.0.0.6") as c:
        line, took = c.banner()  # tested afresh
        assert line.startswith(b"220 ") and took >= GREET_WAIT * 0.9, (line, took)


def test_access_reject_and_permit(make_toaster):
    t = make_toaster(
        config={
            "postscreen_greet_wait": "2s",
            "postscreen_access": "127.0.0.7 reject, 127.0.0.8 permit",
        }
    )
    with Client(t.port, "127.0.0.7") as c:
        line, took = c.banner()
        assert line == b"554 5.7.1 Service unavailable; client [127.0.0.7] blocked", line
        assert took < 0.5, took
        assert c.closed()
    t.wait_log("postscreen: DENYLISTED [127.0.0.7]")
    with Client(t.port, "127.0.0.8") as c:
        line, took = c.banner()
        assert line.startswith(b"220 "), line
        assert took < 0.5, took  # no greet wait
        send_mail(t, c)
    t.wait_log("postscreen: ALLOWLISTED [127.0.0.8]")


def test_access_reject_localhost_from_file(make_toaster, tmp_path):
    access = tmp_path / "postscreen_access"
    access.write_text("# our own machine is not welcome here\n127.0.0.0/8 reject\n")
    t = make_toaster(config={"postscreen_access": str(access)})
    with t.raw() as c:
        line = c.reply_line()
        assert line == b"554 5.7.1 Service unavailable; client [127.0.0.1] blocked", line
        assert c.closed()
    # The submission port is never screened.
    with t.raw(port=t.ports["submission_listen"]) as c:
        assert c.reply_line().startswith(b"220 ")


def test_bad_access_list_stops_the_start(make_toaster):
    t = make_toaster(config={"postscreen_access": "127.0.0.0/8 deny"}, start=False)
    with pytest.raises(AssertionError):
        t.start()
    assert "postscreen_access: action 'deny'" in t.log()


def test_rate_limit(make_toaster):
    t = make_toaster(config={"postscreen_rate_limit": "3"})
    for _ in range(3):
        with Client(t.port, "127.0.0.9") as c:
            assert c.banner()[0].startswith(b"220 ")
            assert c.cmd("QUIT")[-1].startswith(b"221 ")
    with Client(t.port, "127.0.0.9") as c:
        line, took = c.banner()
        assert line == (
            b"421 4.7.0 mx.example.com Error: too many connections from [127.0.0.9], "
            b"try again later"
        ), line
        assert c.closed()
    t.wait_log("postscreen: NOQUEUE: reject: CONNECT from [127.0.0.9]: too many connections")
    # Per address: another client is served.
    with Client(t.port, "127.0.0.10") as c:
        assert c.banner()[0].startswith(b"220 ")
    # Submission is not counted or limited.
    for _ in range(5):
        with Client(t.ports["submission_listen"], "127.0.0.9") as c:
            assert c.banner()[0].startswith(b"220 ")


def test_concurrency_limit_on_smtp_port(make_toaster):
    t = make_toaster(config={"max_connections_per_ip": "2", "postscreen_greet_wait": "1s"})
    held = [Client(t.port, "127.0.0.11") for _ in range(2)]
    try:
        # Both accepted (each reactor accepts on its own): only then is a
        # third one over the limit, whichever reactor takes it.
        t.wait_log("connect from [127.0.0.11]", count=2)
        with Client(t.port, "127.0.0.11") as c:
            line = c.reply_line()
            assert line.startswith(b"421 4.7.0 "), line
            assert b"too many connections" in line
            assert c.closed()
        for c in held:
            assert c.banner()[0].startswith(b"220 ")  # after the greet wait
    finally:
        for c in held:
            c.close()


def test_shutdown_during_greet_wait(make_toaster):
    t = make_toaster(config={"postscreen_greet_wait": "10s"})
    with Client(t.port, "127.0.0.12") as c:
        t.wait_log("connect from [127.0.0.12]")
        t.signal(signal.SIGTERM)
        assert c.reply_line().startswith(b"220 ")
        assert c.reply_line().startswith(b"421 4.3.2 ")
        assert c.closed()
    assert t.wait() == 0
    t.check_log_clean()
