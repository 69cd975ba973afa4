"""toaster-bench smtp, the bundled load generator, run for real.

The real build/toaster-bench (TOASTER_BENCH) drives the real toasterd from
conftest's make_toaster: counts, sizes and mixes, recipients, sessions,
BDAT, pipelining off, refusals, a dead server, --duration, --rate,
--source, and --starttls (with --tls-resume), whose handshakes toasterd
counts too. Each run's --json summary is checked against what toasterd put in
the Maildirs: the number of files per user, and each file's size behind
toasterd's trace headers, which is the --size exactly (bench_message.h:
head + tail with CRLF line ends, unstuffed). A small threaded SMTP server
written here, which offers neither PIPELINING nor CHUNKING (or refuses EHLO
altogether, or offers both), shows what the client puts on the wire: one
command at a time and DATA, HELO when EHLO is refused, and BDAT with SIZE=
when they are offered, and that --starttls stops at once when STARTTLS is
not. Counts are small: the file runs in well under a minute.
"""

import email
import email.policy
import json
import os
import re
import socket
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from conftest import CRASH_MARKERS, TOASTERCTL, free_ports, split_trace

TOASTER_BENCH = os.environ.get("TOASTER_BENCH") or str(
    Path(__file__).resolve().parents[2] / "build" / "toaster-bench"
)

USERS = 5
MAILBOXES = ["user%d@example.com" % i for i in range(1, USERS + 1)]
RCPT = "user%d@example.com"
MESSAGE_ID_RE = re.compile(rb"^Message-ID: (<[^>]+>)\r$", re.M | re.I)

pytestmark = pytest.mark.skipif(
    not os.access(TOASTER_BENCH, os.X_OK), reason="no toaster-bench at " + TOASTER_BENCH
)


class Run:
    """One finished toaster-bench run."""

    def __init__(self, proc, seconds, json_path):
        self.rc = proc.returncode
        self.stdout = proc.stdout.decode("utf-8", "replace")
        self.stderr = proc.stderr.decode("utf-8", "replace")
        self.seconds = seconds
        self.json = json.loads(json_path.read_text()) if json_path.exists() else None

    def __str__(self):
        return "rc=%r after %.1fs\nstdout:\n%s\nstderr:\n%s\njson: %s" % (
            self.rc, self.seconds, self.stdout, self.stderr, self.json)


@pytest.fixture
def bench(tmp_path):
    """bench(port, *args): run toaster-bench smtp against 127.0.0.1:port."""
    runs = []

    def run(port, *args, timeout=60):
        json_path = tmp_path / ("bench%d.json" % len(runs))
        argv = [TOASTER_BENCH, "smtp", "--server", "127.0.0.1:%d" % port,
                "--json", str(json_path), *[str(a) for a in args]]
        started = time.monotonic()
        proc = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                              timeout=timeout)
        result = Run(proc, time.monotonic() - started, json_path)
        runs.append(result)
        for marker in CRASH_MARKERS:
            assert marker not in result.stderr, str(result)
        return result

    return run


@pytest.fixture
def mailhost(make_toaster):
    # fsync off: the disk is throw-away and the counts are what matter here.
    return make_toaster(config={"fsync": "no"},
                        users=["%s:{PLAIN}pw" % m for m in MAILBOXES])


def stored_messages(t):
    """Every delivered file as (mailbox, message as sent by the bench)."""
    out = []
    for mailbox in MAILBOXES:
        for path in t.delivered(mailbox):
            out.append((mailbox, split_trace(path.read_bytes())[1]))
    return out


def message_id(message):
    match = MESSAGE_ID_RE.search(message)
    assert match, message[:400]
    return match.group(1)


def check_clean(run, messages):
    """Exit 0 and a JSON summary that agrees."""
    assert run.rc == 0, str(run)
    j = run.json
    assert j is not None, str(run)
    assert j["messages"] == messages, str(run)
    assert j["failed"] == 0, str(run)
    assert j["errors"] == {}, str(run)
    assert j["msgs_per_s"] > 0, str(run)
    lat = j["latency_us"]
    assert 0 < lat["max"], str(run)
    assert lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["p999"] <= lat["max"], lat


def test_count_with_several_connections(mailhost, bench):
    run = bench(mailhost.port, "--count", 40, "--connections", 4, "--rcpt", RCPT,
                "--users", USERS)
    check_clean(run, 40)
    assert run.json["connections"] == 4
    assert run.json["connects"] >= 4
    assert run.json["bytes"] == 40 * 4096
    assert run.json["size"] == "4k"
    assert "40" in run.stdout  # the summary on stdout
    # Round robin over the users: every mailbox got its share, nothing else.
    stored = stored_messages(mailhost)
    assert len(stored) == 40
    assert len(mailhost.all_delivered()) == 40
    assert Counter(m for m, _ in stored) == {m: 40 // USERS for m in MAILBOXES}
    # Each is exactly --size (4k by default) as sent, and unique.
    assert {len(msg) for _, msg in stored} == {4096}
    assert len({message_id(msg) for _, msg in stored}) == 40
    for mailbox, msg in stored:
        assert re.search(rb"^To: %s\r$" % re.escape(mailbox.encode()), msg, re.M), msg[:300]


def test_pipelining_off(mailhost, bench):
    run = bench(mailhost.port, "--count", 12, "--connections", 2, "--pipelining", "off",
                "--rcpt", RCPT, "--users", USERS, "--size", 2000)
    check_clean(run, 12)
    assert run.json["pipelining"] is False
    stored = stored_messages(mailhost)
    assert len(stored) == 12
    assert {len(msg) for _, msg in stored} == {2000}


def test_bdat(mailhost, bench):
    run = bench(mailhost.port, "--count", 10, "--connections", 2, "--bdat",
                "--rcpt", RCPT, "--users", USERS, "--size", "20k")
    check_clean(run, 10)
    assert run.json["bdat"] is True
    assert "without CHUNKING" not in run.stdout
    stored = stored_messages(mailhost)
    assert len(stored) == 10
    assert {len(msg) for _, msg in stored} == {20 * 1024}
    # The lines that start with a dot (one is a lone ".") arrive as meant.
    for _, msg in stored:
        assert b"\r\n.\r\n" in msg and b"\r\n..\r\n" not in msg


def test_size_mix(mailhost, bench):
    run = bench(mailhost.port, "--count", 24, "--connections", 3,
                "--size-mix", "4k:50,20k:50", "--rcpt", RCPT, "--users", USERS)
    check_clean(run, 24)
    stored = stored_messages(mailhost)
    assert len(stored) == 24
    sizes = Counter(len(msg) for _, msg in stored)
    assert set(sizes) == {4096, 20480}, sizes
    assert run.json["bytes"] == sum(len(msg) for _, msg in stored)
    for _, msg in stored:
        parsed = email.message_from_bytes(msg, policy=email.policy.default)
        assert parsed["Subject"] and parsed["Date"] and parsed["From"]
        if len(msg) < 16 * 1024:
            assert parsed.get_content_type() == "text/plain"
            continue
        # From 16k up: multipart/mixed with a base64 attachment that a
        # real MIME parser splits and decodes.
        assert parsed.get_content_type() == "multipart/mixed"
        assert not parsed.defects, parsed.defects
        parts = list(parsed.iter_parts())
        assert [p.get_content_type() for p in parts] == ["text/plain",
                                                         "application/octet-stream"]
        attachment = parts[1]
        assert attachment.get_filename() == "bench.bin"
        assert attachment["Content-Transfer-Encoding"] == "base64"
        payload = attachment.get_payload(decode=True)
        assert not attachment.defects, attachment.defects
        assert len(payload) > 10000


def test_rcpts_per_message(mailhost, bench):
    run = bench(mailhost.port, "--count", 6, "--connections", 2, "--rcpts-per-message", 3,
                "--rcpt", RCPT, "--users", USERS)
    check_clean(run, 6)
    stored = stored_messages(mailhost)
    assert len(stored) == 18  # one file per recipient
    by_id = Counter(message_id(msg) for _, msg in stored)
    assert len(by_id) == 6 and set(by_id.values()) == {3}
    assert sum(Counter(m for m, _ in stored).values()) == 18
    for mailbox, msg in stored:
        to = email.message_from_bytes(msg, policy=email.policy.default)["To"]
        assert mailbox in str(to)
        assert len(to.addresses) == 3


def test_messages_per_session(mailhost, bench):
    # One connection: sessions follow each other, so 10 messages two at a
    # time are exactly 5 connections.
    run = bench(mailhost.port, "--count", 10, "--connections", 1, "--messages-per-session", 2,
                "--rcpt", RCPT, "--users", USERS)
    check_clean(run, 10)
    assert run.json["connects"] == 5
    # toasterd saw as many, besides conftest's probe at start-up.
    mailhost.wait_log("disconnect from [127.0.0.1]", count=1 + 5)
    log = mailhost.log()[mailhost.log_offset_at_start:]
    connects = len(re.findall(r"(?<!dis)connect from \[127\.0\.0\.1\]", log))
    assert connects == 1 + 5, log
    # With two connections, at least as many (a session may end early when
    # the count runs out, or greet and find nothing left to send).
    run = bench(mailhost.port, "--count", 10, "--connections", 2, "--messages-per-session", 2,
                "--rcpt", RCPT, "--users", USERS)
    check_clean(run, 10)
    assert 5 <= run.json["connects"] <= 10, str(run)
    assert len(mailhost.all_delivered()) == 20


def test_unknown_recipients_refused(mailhost, bench):
    # user6 does not exist: 2 of 12 round-robin recipients are refused.
    run = bench(mailhost.port, "--count", 12, "--connections", 2, "--rcpt", RCPT,
                "--users", USERS + 1)
    assert run.rc == 1, str(run)
    j = run.json
    assert j["messages"] == 10, str(run)
    assert j["failed"] == 2, str(run)
    assert j["errors"].get("550") == 2, str(run)
    assert len(mailhost.all_delivered()) == 10
    assert mailhost.log().count("NOQUEUE: reject: RCPT from [127.0.0.1]: 550") == 2


def test_all_recipients_refused(mailhost, bench):
    run = bench(mailhost.port, "--count", 4, "--connections", 1,
                "--rcpt", "nobody%d@example.com", "--users", 3)
    assert run.rc == 1, str(run)
    assert run.json["messages"] == 0
    assert run.json["failed"] == 4
    assert run.json["errors"].get("550") == 4, str(run)
    assert mailhost.all_delivered() == []


def test_server_not_listening(bench):
    (port,) = free_ports(1)
    run = bench(port, "--count", 5, "--connections", 2, timeout=30)
    assert run.rc == 1, str(run)
    # It gives up on its own, well before the reply timeout of 60 s.
    assert run.seconds < 20, str(run)
    assert "connect" in run.stderr, str(run)
    assert run.json["messages"] == 0
    assert run.json["errors"].get("connect", 0) > 0, str(run)


def test_duration(mailhost, bench):
    run = bench(mailhost.port, "--duration", 2, "--connections", 2, "--rcpt", RCPT,
                "--users", USERS, timeout=60)
    assert run.seconds < 15, str(run)
    check_clean(run, run.json["messages"])
    assert run.json["messages"] > 0
    assert len(mailhost.all_delivered()) == run.json["messages"]


def test_rate(mailhost, bench):
    run = bench(mailhost.port, "--rate", 50, "--duration", 2, "--connections", 4,
                "--rcpt", RCPT, "--users", USERS, timeout=60)
    assert run.seconds < 15, str(run)
    check_clean(run, run.json["messages"])
    # rate x duration = 100; a wide band, for a loaded machine.
    assert 40 <= run.json["messages"] <= 160, str(run)
    assert run.json["rate"] == 50


def test_source_addresses(mailhost, bench):
    run = bench(mailhost.port, "--source", "127.0.0.2,127.0.0.3", "--count", 8,
                "--connections", 4, "--rcpt", RCPT, "--users", USERS)
    check_clean(run, 8)
    mailhost.wait_log("connect from [127.0.0.2]")
    mailhost.wait_log("connect from [127.0.0.3]")
    log = mailhost.log()[mailhost.log_offset_at_start:]
    assert len(re.findall(r"(?<!dis)connect from \[127\.0\.0\.1\]", log)) == 1  # the probe only


def reactor_total(t, key):
    """A counter of toasterctl stats --json, summed over the reactors."""
    out = subprocess.run([TOASTERCTL, "-c", str(t.config_file), "stats", "--json"],
                         capture_output=True, text=True, timeout=30, check=True)
    return sum(r[key] for r in json.loads(out.stdout)["reactors"])


def test_starttls(mailhost, bench):
    handshakes_before = reactor_total(mailhost, "tls_handshakes")
    run = bench(mailhost.port, "--starttls", "--count", 30, "--connections", 3,
                "--messages-per-session", 5, "--rcpt", RCPT, "--users", USERS)
    check_clean(run, 30)
    j = run.json
    assert j["starttls"] is True
    # Every connection went through one handshake, none resumed (not asked).
    assert j["connects"] >= 6, str(run)
    assert j["tls_handshakes"] == j["connects"], str(run)
    assert j["tls_resumed"] == 0
    assert j["tls"].startswith("TLSv1."), str(run)
    assert "STARTTLS" in run.stdout and "handshakes" in run.stdout, str(run)
    # toasterd saw them too, and took every message over TLS.
    assert reactor_total(mailhost, "tls_handshakes") - handshakes_before >= j["connects"]
    stored = stored_messages(mailhost)
    assert len(stored) == 30
    assert {len(msg) for _, msg in stored} == {4096}
    assert len({message_id(msg) for _, msg in stored}) == 30
    for mailbox in MAILBOXES:
        for path in mailhost.delivered(mailbox):
            trace = split_trace(path.read_bytes())[0]
            assert b"using TLSv1." in trace and b"with ESMTPS" in trace, trace


def test_starttls_resume_bdat_and_big_messages(mailhost, bench):
    # Two messages a session: most connections offer the last ticket, and
    # messages of 300k go as many records, in many sends.
    run = bench(mailhost.port, "--starttls", "--tls-resume", "--tls-sni", "mail.example.com",
                "--bdat", "--count", 20, "--connections", 2, "--messages-per-session", 2,
                "--size-mix", "4k:50,300k:50", "--rcpt", RCPT, "--users", USERS)
    check_clean(run, 20)
    j = run.json
    assert j["tls_handshakes"] == j["connects"] >= 10, str(run)
    assert j["tls_resumed"] >= j["connects"] // 2, str(run)
    stored = stored_messages(mailhost)
    assert len(stored) == 20
    assert set(len(msg) for _, msg in stored) <= {4096, 300 * 1024}
    assert j["bytes"] == sum(len(msg) for _, msg in stored)


def test_starttls_not_offered(fake_smtp, bench):
    # A server without STARTTLS: no message goes in plaintext, and the run
    # ends at once with the reason on stderr.
    server = fake_smtp(extensions=["PIPELINING"])
    run = bench(server.port, "--starttls", "--count", 10, "--connections", 2, timeout=30)
    assert run.rc == 1, str(run)
    assert run.seconds < 15, str(run)
    assert "does not offer STARTTLS" in run.stderr, str(run)
    assert run.json["messages"] == 0
    assert run.json["errors"].get("tls", 0) >= 1, str(run)
    with server.lock:
        commands = list(server.commands)
    assert not any(c.upper().startswith((b"MAIL", b"STARTTLS")) for c in commands), commands


def test_starttls_refused(fake_smtp, bench):
    # Offered, then refused with 454: counted by code, nothing sent.
    server = fake_smtp(extensions=["STARTTLS"])
    run = bench(server.port, "--starttls", "--count", 4, "--connections", 1, timeout=30)
    assert run.rc == 1, str(run)
    assert run.json["messages"] == 0
    assert run.json["errors"].get("454", 0) >= 1, str(run)
    with server.lock:
        commands = list(server.commands)
    assert b"STARTTLS" in commands
    assert not any(c.upper().startswith(b"MAIL") for c in commands), commands


class FakeSMTP:
    """A tiny threaded SMTP server on 127.0.0.1 that is not toasterd.

    It answers 250 to everything, 354 to DATA and reads the data to
    CRLF.CRLF. extensions are the EHLO keywords it offers (none by default);
    with ehlo=False it refuses EHLO with 502. BDAT is served only when
    CHUNKING is offered. It records every command line, whether a command
    arrived while an earlier one was still unanswered (pipelining), and
    each message, unstuffed."""

    def __init__(self, extensions=(), ehlo=True):
        self.extensions = list(extensions)
        self.ehlo = ehlo
        self.lock = threading.Lock()
        self.commands = []
        self.messages = []
        self.pipelined = 0
        self.sessions = 0
        self.errors = []
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def close(self):
        self.listener.close()

    def _accept(self):
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._session, args=(conn,), daemon=True).start()

    def _session(self, conn):
        conn.settimeout(30)
        reader = _Reader(conn)
        try:
            with self.lock:
                self.sessions += 1
            conn.sendall(b"220 fake.example ESMTP not toaster\r\n")
            while True:
                line = reader.line()
                if line is None:
                    return
                with self.lock:
                    self.commands.append(line)
                    # The client waits for each reply unless told PIPELINING.
                    if reader.buf:
                        self.pipelined += 1
                verb = line.split(b" ", 1)[0].upper()
                if verb == b"EHLO":
                    if not self.ehlo:
                        conn.sendall(b"502 5.5.1 EHLO not implemented\r\n")
                        continue
                    keywords = ["fake.example"] + self.extensions + ["HELP"]
                    reply = "".join("250%s%s\r\n" % ("-" if i < len(keywords) - 1 else " ", k)
                                    for i, k in enumerate(keywords))
                    conn.sendall(reply.encode())
                elif verb == b"DATA":
                    conn.sendall(b"354 go ahead\r\n")
                    data = reader.until(b"\r\n.\r\n")
                    if data is None:
                        return
                    lines = data[:-3].split(b"\r\n")[:-1]
                    body = b"".join((l[1:] if l.startswith(b".") else l) + b"\r\n"
                                    for l in lines)
                    with self.lock:
                        self.messages.append(("DATA", body))
                    conn.sendall(b"250 2.0.0 queued\r\n")
                elif verb == b"BDAT" and "CHUNKING" in self.extensions:
                    size = int(line.split()[1])
                    body = reader.exactly(size)
                    if body is None:
                        return
                    with self.lock:
                        self.messages.append(("BDAT", body))
                    conn.sendall(b"250 2.0.0 queued\r\n")
                elif verb == b"STARTTLS":
                    conn.sendall(b"454 4.7.0 TLS not available\r\n")
                elif verb == b"QUIT":
                    conn.sendall(b"221 2.0.0 bye\r\n")
                    return
                elif verb in (b"HELO", b"MAIL", b"RCPT", b"RSET", b"NOOP"):
                    conn.sendall(b"250 2.0.0 ok\r\n")
                else:
                    conn.sendall(b"500 5.5.2 what?\r\n")
        except OSError as exc:
            with self.lock:
                self.errors.append(repr(exc))
        finally:
            conn.close()


class _Reader:
    """Buffered reads from a socket: lines, a terminator, a byte count."""

    def __init__(self, conn):
        self.conn = conn
        self.buf = b""

    def _fill(self):
        chunk = self.conn.recv(65536)
        if not chunk:
            return False
        self.buf += chunk
        return True

    def line(self):
        while b"\r\n" not in self.buf:
            if not self._fill():
                return None
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line

    def until(self, end):
        # The data starts at a line start, so its first line may be the end.
        while True:
            data = b"\r\n" + self.buf
            at = data.find(end)
            if at >= 0:
                self.buf = data[at + len(end):]
                return data[2:at + len(end)]
            if not self._fill():
                return None

    def exactly(self, size):
        while len(self.buf) < size:
            if not self._fill():
                return None
        data, self.buf = self.buf[:size], self.buf[size:]
        return data


@pytest.fixture
def fake_smtp():
    servers = []

    def factory(**kwargs):
        server = FakeSMTP(**kwargs)
        servers.append(server)
        return server

    yield factory
    for server in servers:
        server.close()


def test_plain_server_without_extensions(fake_smtp, bench):
    server = fake_smtp()
    # Asked for pipelining and BDAT, offered neither: one command at a time
    # and DATA, and still every message exact.
    run = bench(server.port, "--count", 8, "--connections", 2, "--bdat", "--pipelining", "on",
                "--size-mix", "3000:50,20k:50", "--rcpts-per-message", 2)
    check_clean(run, 8)
    assert "sessions without PIPELINING" in run.stdout, str(run)
    assert "sessions without CHUNKING" in run.stdout, str(run)
    with server.lock:
        commands = list(server.commands)
        messages = list(server.messages)
        pipelined = server.pipelined
        errors = list(server.errors)
    assert errors == []
    assert pipelined == 0, commands
    assert not any(c.upper().startswith(b"BDAT") for c in commands)
    mails = [c for c in commands if c.upper().startswith(b"MAIL FROM:")]
    assert len(mails) == 8
    assert not any(b"SIZE=" in c.upper() for c in mails)  # SIZE was not offered
    assert sum(c.upper().startswith(b"RCPT TO:") for c in commands) == 16
    assert [kind for kind, _ in messages] == ["DATA"] * 8
    assert {len(body) for _, body in messages} <= {3000, 20480}
    assert run.json["bytes"] == sum(len(body) for _, body in messages)
    for _, body in messages:
        assert body.endswith(b"\r\n") and not body.endswith(b"\r\n.\r\n")


def test_server_refusing_ehlo(fake_smtp, bench):
    server = fake_smtp(ehlo=False)
    run = bench(server.port, "--count", 3, "--connections", 1)
    check_clean(run, 3)
    with server.lock:
        commands = list(server.commands)
        messages = list(server.messages)
    assert any(c.upper().startswith(b"HELO ") for c in commands), commands
    assert [kind for kind, _ in messages] == ["DATA"] * 3


def test_server_with_pipelining_and_chunking(fake_smtp, bench):
    server = fake_smtp(extensions=["PIPELINING", "SIZE 10485760", "CHUNKING"])
    run = bench(server.port, "--count", 6, "--connections", 2, "--bdat", "--size", 5000,
                "--rcpts-per-message", 2)
    check_clean(run, 6)
    assert "without" not in run.stdout, str(run)
    with server.lock:
        commands = list(server.commands)
        messages = list(server.messages)
        pipelined = server.pipelined
    # MAIL, both RCPTs and BDAT in one write, announcing the exact size.
    assert pipelined > 0, commands
    mails = [c for c in commands if c.upper().startswith(b"MAIL FROM:")]
    assert mails and all(c.endswith(b" SIZE=5000") for c in mails), mails
    bdats = [c for c in commands if c.upper().startswith(b"BDAT")]
    assert bdats == [b"BDAT 5000 LAST"] * 6
    assert [(kind, len(body)) for kind, body in messages] == [("BDAT", 5000)] * 6
