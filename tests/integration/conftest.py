"""Shared fixtures for the integration suite: the real toasterd on 127.0.0.1.

`make_toaster(**config)` writes a configuration, a users file and an aliases
file into a per-test temporary directory, starts build/toasterd on freshly
picked loopback ports and returns a `Toaster` handle (SMTP clients, the
delivered Maildir files, the log, signals). At the end of the test every
daemon still running is stopped with SIGTERM, and each one must have exited 0
without an assertion or sanitizer report on stderr. `toaster` is a daemon
with the default test configuration.
"""

import os
import re
import signal
import smtplib
import socket
import subprocess
import time
from pathlib import Path

import pytest

QUEUE_ENVELOPE_ATTR = "user.toaster.env"  # store/queue.c: the envelope on <id>.msg

TOASTERD = os.environ.get("TOASTERD") or "/work/main/build/toasterd"
TOASTERCTL = os.environ.get("TOASTERCTL") or "/work/main/build/toasterctl"

LISTEN_KEYS = (
    "smtp_listen",
    "submission_listen",
    "submissions_listen",
    "imap_listen",
    "imaps_listen",
    "managesieve_listen",
    "http_listen",
)

DEFAULT_USERS = [
    "alice@example.com:{PLAIN}alice-secret",
    "bob@example.com:{PLAIN}bob-secret",
    "carol@example.org:{PLAIN}carol-secret",
    "dave@example.org:{PLAIN}dave-secret",
]

DEFAULT_ALIASES = [
    "team@example.com: alice@example.com, bob@example.com",
    # alice twice: directly and again through team@.
    "all@example.com: alice@example.com, team@example.com, carol@example.org",
    "info@example.org: carol@example.org",
    "@example.net: dave@example.org",
]

# Text that must never appear on the daemon's stderr.
CRASH_MARKERS = (
    "assertion failed",
    "AddressSanitizer",
    "LeakSanitizer",
    "ThreadSanitizer",
    "UndefinedBehaviorSanitizer",
    "runtime error:",
    "Segmentation fault",
    "core dumped",
)

QUEUED_RE = re.compile(rb"^250 2\.0\.0 Ok: queued as ([0-9A-F]{16})$")

START_TIMEOUT = 10.0


def free_ports(count):
    """Loopback ports that were free a moment ago (bound together, so distinct)."""
    socks = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def wait_until(predicate, timeout=5.0, interval=0.02):
    """Poll predicate until it is truthy; returns its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


class RawSMTP:
    """A byte-level SMTP client for what smtplib will not send."""

    def __init__(self, port, timeout=10.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def cmd(self, line):
        """Send one command line (CRLF added) and return its reply."""
        if isinstance(line, str):
            line = line.encode()
        self.send(line + b"\r\n")
        return self.reply()

    def readline(self):
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("connection closed; unread: %r" % self.buf)
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        assert line.endswith(b"\r"), "reply line without CRLF: %r" % line
        return line[:-1]

    def reply(self):
        """One complete (possibly multi-line) reply as a list of lines."""
        lines = []
        while True:
            line = self.readline()
            lines.append(line)
            if len(line) < 4 or line[3:4] != b"-":
                return lines

    def reply_line(self):
        """The last line of one reply (what carries code and text)."""
        return self.reply()[-1]

    def replies(self, count):
        return [self.reply_line() for _ in range(count)]

    def greet(self, ehlo="client.example"):
        banner = self.reply_line()
        assert banner.startswith(b"220 "), banner
        lines = self.cmd("EHLO " + ehlo)
        assert lines[-1].startswith(b"250 "), lines
        return lines

    def closed(self, timeout=5.0):
        """True when the server closes the connection (EOF) within timeout."""
        self.sock.settimeout(timeout)
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
                self.buf += chunk
        except (ConnectionResetError, BrokenPipeError):
            return True
        except socket.timeout:
            return False

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Toaster:
    """One toasterd process with its own data_dir under a tmp directory."""

    def __init__(self, root, config=None, users=None, aliases=None):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.data_dir = self.root / "data"
        self.data_dir.mkdir(exist_ok=True)
        self.users_file = self.root / "users"
        self.aliases_file = self.root / "aliases"
        self.config_file = self.root / "toasterd.conf"
        # DNS for the filters: fixed answers, every other name absent, so
        # no question ever leaves the machine (tests add records here).
        self.dns_zone_file = self.root / "dns.zone"
        self.write_dns_zone([])
        self.log_file = self.root / "toasterd.log"
        self.write_users(DEFAULT_USERS if users is None else users)
        self.write_aliases(DEFAULT_ALIASES if aliases is None else aliases)
        self.extra_config = dict(config or {})
        self.proc = None
        self.returncode = None
        self.ports = {}
        self._log_handle = None

    # ---- files -------------------------------------------------------------

    def write_users(self, lines):
        self.users_file.write_bytes(_join_lines(lines))

    def write_aliases(self, lines):
        self.aliases_file.write_bytes(_join_lines(lines))

    def write_dns_zone(self, lines):
        """The override zone (core/dns_zone.h): these records, nothing else."""
        self.dns_zone_file.write_bytes(_join_lines(["$UNLISTED NXDOMAIN"] + list(lines)))

    def config_text(self):
        settings = {key: "127.0.0.1:%d" % self.ports[key] for key in LISTEN_KEYS}
        settings.update(
            {
                "data_dir": str(self.data_dir),
                "users_file": str(self.users_file),
                "aliases_file": str(self.aliases_file),
                "dns_override_file": str(self.dns_zone_file),
                "myhostname": "mx.example.com",
                "local_domains": "example.com",
                "reactor_threads": "2",
                "worker_threads": "2",
                "log_timestamps": "no",
                "shutdown_timeout": "10s",
                # The tests' bare messages (no Date, no Message-ID) score as
                # spam, which the default global Sieve script files into
                # Junk; the Sieve tests turn it on themselves.
                "sieve": "no",
                # Mail for remote recipients stays queued (the DNS zone
                # names no MX, so the agent would bounce it into the
                # senders' mailboxes); the relay's tests turn it on.
                "outbound_delivery": "no",
            }
        )
        settings.update(self.extra_config)
        # A list is a repeated key (dkim_key, tls_sni): one line per value.
        return "".join("%s = %s\n" % (k, item) for k, v in settings.items()
                       for item in (v if isinstance(v, (list, tuple)) else [v]))

    # ---- process -----------------------------------------------------------

    def start(self):
        assert self.proc is None
        last_log = ""
        for _attempt in range(5):
            self.ports = dict(zip(LISTEN_KEYS, free_ports(len(LISTEN_KEYS))))
            self.config_file.write_text(self.config_text())
            self._log_handle = open(self.log_file, "ab")
            self.log_offset_at_start = self.log_file.stat().st_size
            self.proc = subprocess.Popen(
                [TOASTERD, "-c", str(self.config_file)],
                stdin=subprocess.DEVNULL,
                stdout=self._log_handle,
                stderr=self._log_handle,
            )
            if self._wait_started():
                return self
            # A port picked above was taken by someone else meanwhile: retry.
            last_log = self.log()
            self.proc.kill()
            self.proc.wait()
            self.proc = None
            self._log_handle.close()
            if "in use" not in last_log:
                break
        raise AssertionError("toasterd did not start; log:\n" + last_log)

    def _wait_started(self):
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            if " started: " in self.log()[self.log_offset_at_start :]:
                try:
                    socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                except OSError:
                    time.sleep(0.02)
                    continue
                # Let the daemon finish with the probe, so that it does not
                # count against connection limits in the test.
                wait_until(
                    lambda: "disconnect from" in self.log()[self.log_offset_at_start :], 5
                )
                return True
            time.sleep(0.02)
        return False

    @property
    def port(self):
        return self.ports["smtp_listen"]

    @property
    def pid(self):
        return self.proc.pid

    def is_running(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, signo):
        assert self.is_running(), "toasterd is not running"
        os.kill(self.proc.pid, signo)

    def reload(self, wait_for_result=True):
        """SIGHUP, then wait until the log says how the reload ended."""
        before = self.log().count("SIGHUP: reloading")
        marks = ("reload: users and aliases replaced", "reload failed")
        counts = [self.log().count(m) for m in marks]
        self.signal(signal.SIGHUP)
        if wait_for_result:
            ok = wait_until(
                lambda: any(self.log().count(m) > c for m, c in zip(marks, counts)), 10
            )
            assert ok, "no reload result in the log:\n" + self.log()
        assert self.log().count("SIGHUP: reloading") > before

    def wait(self, timeout=15.0):
        """Wait for exit; returns the exit status."""
        try:
            self.returncode = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(
                "toasterd did not exit within %.0fs; log:\n%s" % (timeout, self.log())
            )
        if self._log_handle is not None:
            self._log_handle.close()
            self._log_handle = None
        return self.returncode

    def stop(self, timeout=15.0):
        """SIGTERM; assert exit status 0 and a clean stderr."""
        if self.is_running():
            self.proc.send_signal(signal.SIGTERM)
        rc = self.wait(timeout)
        self.check_log_clean()
        assert rc == 0, "toasterd exited with %r; log:\n%s" % (rc, self.log())

    def check_log_clean(self):
        text = self.log()
        for marker in CRASH_MARKERS:
            assert marker not in text, "%r in toasterd stderr:\n%s" % (marker, text)

    def log(self):
        try:
            return self.log_file.read_bytes().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def wait_log(self, text, timeout=5.0, count=1):
        ok = wait_until(lambda: self.log().count(text) >= count, timeout)
        assert ok, "%r (x%d) not in log:\n%s" % (text, count, self.log())

    # ---- clients -----------------------------------------------------------

    def smtp(self, ehlo=True, timeout=10.0, **kwargs):
        """An smtplib client, connected (and greeted with EHLO unless told)."""
        client = smtplib.SMTP(
            "127.0.0.1", self.port, local_hostname="client.example", timeout=timeout, **kwargs
        )
        if ehlo:
            code, _ = client.ehlo()
            assert code == 250
        return client

    def raw(self, timeout=10.0, port=None):
        return RawSMTP(port or self.port, timeout)

    # ---- delivered mail ----------------------------------------------------

    def maildir(self, mailbox):
        local, _, domain = mailbox.rpartition("@")
        return self.data_dir / "mail" / domain / local / "Maildir"

    def delivered(self, mailbox):
        """Files in the mailbox's Maildir/new, oldest name first."""
        new = self.maildir(mailbox) / "new"
        if not new.is_dir():
            return []
        return sorted(new.iterdir())

    def messages(self, mailbox):
        return [p.read_bytes() for p in self.delivered(mailbox)]

    def all_delivered(self):
        """Every file in any Maildir/new under data_dir/mail."""
        mail = self.data_dir / "mail"
        if not mail.is_dir():
            return []
        return sorted(mail.glob("*/*/Maildir/new/*"))

    def spool_files(self):
        spool = self.data_dir / "spool"
        return sorted(spool.iterdir()) if spool.is_dir() else []

    def tmp_files(self):
        mail = self.data_dir / "mail"
        return sorted(mail.glob("*/*/Maildir/tmp/*")) if mail.is_dir() else []

    # ---- the outbound queue (store/queue.h) ----------------------------------

    def queue_ids(self):
        """Ids of the queue's entries: each <id>.env, and each <id>.msg whose
        envelope is its attribute (no mailbox shares that file)."""
        queue = self.data_dir / "queue"
        if not queue.is_dir():
            return []
        ids = {p.stem for p in queue.glob("*.env")}
        for msg in queue.glob("*.msg"):
            try:
                if os.getxattr(msg, QUEUE_ENVELOPE_ATTR):
                    ids.add(msg.stem)
            except OSError:  # no attribute, or removed meanwhile
                pass
        return sorted(ids)

    def queue_envelope(self, qid):
        """The envelope text of an entry, wherever it is kept."""
        env = self.data_dir / "queue" / (qid + ".env")
        if env.exists():
            return env.read_text()
        msg = self.data_dir / "queue" / (qid + ".msg")
        return os.getxattr(msg, QUEUE_ENVELOPE_ATTR).decode()

    def queue_envelope_write(self, qid, text):
        """Replace an entry's envelope where it is kept (tests that edit it
        by hand, as an operator with an editor would not)."""
        env = self.data_dir / "queue" / (qid + ".env")
        if env.exists():
            env.write_text(text)
        else:
            os.setxattr(self.data_dir / "queue" / (qid + ".msg"), QUEUE_ENVELOPE_ATTR,
                        text.encode())

    # ---- one-shot helpers --------------------------------------------------

    def send(self, mail_from, rcpts, message, mail_options=(), rcpt_options=()):
        """One transaction with smtplib; returns the queue id of the 250 reply."""
        if isinstance(rcpts, str):
            rcpts = [rcpts]
        with self.smtp() as client:
            code, resp = client.mail(mail_from, list(mail_options))
            assert code == 250, (code, resp)
            for rcpt in rcpts:
                code, resp = client.rcpt(rcpt, list(rcpt_options))
                assert code == 250, (rcpt, code, resp)
            code, resp = client.data(message)
            match = QUEUED_RE.match(b"%d %s" % (code, resp))
            assert match, (code, resp)
            return match.group(1).decode()

    def transact(self, raw, mail_from, rcpts, data):
        """A whole DATA transaction on a greeted RawSMTP; returns the 250 line."""
        assert raw.cmd("MAIL FROM:<%s>" % mail_from)[-1].startswith(b"250 ")
        for rcpt in rcpts:
            line = raw.cmd("RCPT TO:<%s>" % rcpt)[-1]
            assert line.startswith(b"250 "), line
        assert raw.cmd("DATA")[-1].startswith(b"354 ")
        raw.send(data)
        line = raw.reply_line()
        assert QUEUED_RE.match(line), line
        return line


def _join_lines(lines):
    out = b""
    for line in lines:
        out += (line.encode() if isinstance(line, str) else line) + b"\n"
    return out


def dot_stuff(message):
    """CRLF message bytes -> DATA payload with the terminating dot."""
    assert message.endswith(b"\r\n")
    lines = message.split(b"\r\n")[:-1]
    stuffed = [b"." + l if l.startswith(b".") else l for l in lines]
    return b"\r\n".join(stuffed) + b"\r\n.\r\n"


# Header fields the filters put between Return-Path and Received.
FILTER_FIELDS = (b"Authentication-Results:", b"X-Spam", b"X-Virus:", b"DKIM-Signature:",
                 b"X-Spamd-Result:")


def skip_field(stored, pos):
    """The offset after the (folded) header field starting at pos."""
    pos = stored.index(b"\r\n", pos) + 2
    while stored[pos : pos + 1] in (b"\t", b" "):
        pos = stored.index(b"\r\n", pos) + 2
    return pos


def filter_fields(stored):
    """The filters' fields of a delivered file (between Return-Path and Received)."""
    pos = stored.index(b"\r\n") + 2
    start = pos
    while stored[pos:].startswith(FILTER_FIELDS):
        pos = skip_field(stored, pos)
    return stored[start:pos]


def split_trace(stored):
    """Split a delivered file into (trace headers, message as sent).

    toasterd puts "Return-Path:" first, then the filters' fields
    (Authentication-Results and the like, FILTER_FIELDS), then a folded
    "Received:" header; the message follows unchanged."""
    assert stored.startswith(b"Return-Path: <"), stored[:200]
    first_end = stored.index(b"\r\n") + 2
    pos = first_end
    while stored[pos:].startswith(FILTER_FIELDS):
        pos = skip_field(stored, pos)
    assert stored[pos:].startswith(b"Received: "), stored[:300]
    pos = stored.index(b"\r\n", pos) + 2
    while stored[pos : pos + 1] in (b"\t", b" "):
        pos = stored.index(b"\r\n", pos) + 2
    return stored[:pos], stored[pos:]


@pytest.fixture
def make_toaster(tmp_path):
    """Factory: make_toaster(config={...}, users=[...], aliases=[...], start=True)."""
    daemons = []

    def factory(config=None, users=None, aliases=None, start=True, name=None):
        root = tmp_path / (name or "toaster%d" % len(daemons))
        daemon = Toaster(root, config=config, users=users, aliases=aliases)
        daemons.append(daemon)
        if start:
            daemon.start()
        return daemon

    yield factory

    failures = []
    for daemon in daemons:
        if daemon.proc is None:
            continue
        try:
            daemon.stop()
        except AssertionError as exc:
            failures.append(str(exc))
    if failures:
        pytest.fail("\n\n".join(failures), pytrace=False)


@pytest.fixture
def toaster(make_toaster):
    return make_toaster()


# ---- IMAP helpers (added for the IMAP integration tests) ---------------------

import imaplib  # noqa: E402

IMAP_PASSWORDS = {
    line.partition(":")[0]: line.partition("}")[2] for line in DEFAULT_USERS
}


class RawIMAP:
    """A byte-level IMAP client for what imaplib will not send.

    `cmd(b"a1 NOOP")` sends one line (CRLF added) and returns every line up
    to and including the tagged reply (literals are kept inline in the line
    that announced them)."""

    def __init__(self, port, timeout=10.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""
        self.greeting = None

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("connection closed; unread: %r" % self.buf[:500])
        self.buf += chunk

    def readline(self):
        """One response line without CRLF; a trailing {n} literal is read in."""
        while b"\r\n" not in self.buf:
            self._fill()
        line, _, self.buf = self.buf.partition(b"\r\n")
        m = re.search(rb"\{(\d+)\}$", line)
        while m:
            n = int(m.group(1))
            while len(self.buf) < n:
                self._fill()
            line += b"\r\n" + self.buf[:n]
            self.buf = self.buf[n:]
            while b"\r\n" not in self.buf:
                self._fill()
            rest, _, self.buf = self.buf.partition(b"\r\n")
            line += rest
            m = re.search(rb"\{(\d+)\}$", rest)
        return line

    def read_until_tag(self, tag):
        if isinstance(tag, str):
            tag = tag.encode()
        lines = []
        while True:
            line = self.readline()
            lines.append(line)
            if line.startswith(tag + b" "):
                return lines

    def cmd(self, line, tag=None):
        if isinstance(line, str):
            line = line.encode()
        if tag is None:
            tag = line.split(b" ", 1)[0]
        self.send(line + b"\r\n")
        return self.read_until_tag(tag)

    def greet(self):
        self.greeting = self.readline()
        assert self.greeting.startswith(b"* OK "), self.greeting
        return self.greeting

    def login(self, user="alice@example.com", password=None):
        password = IMAP_PASSWORDS[user] if password is None else password
        self.greet()
        lines = self.cmd(b'l1 LOGIN "%s" "%s"' % (user.encode(), password.encode()))
        assert lines[-1].startswith(b"l1 OK "), lines
        return lines

    def closed(self, timeout=5.0):
        """True when the server closes the connection (EOF) within timeout."""
        old = self.sock.gettimeout()
        self.sock.settimeout(timeout)
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
                self.buf += chunk
        except (ConnectionResetError, BrokenPipeError):
            return True
        except socket.timeout:
            return False
        finally:
            self.sock.settimeout(old)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _toaster_imap_port(self):
    return self.ports["imap_listen"]


def _toaster_imap(self, user=None, password=None, timeout=10.0):
    """An imaplib client on the IMAP port, logged in when a user is given."""
    client = imaplib.IMAP4("127.0.0.1", self.ports["imap_listen"], timeout=timeout)
    if user is not None:
        if password is None:
            password = IMAP_PASSWORDS[user]
        typ, data = client.login(user, password)
        assert typ == "OK", data
    return client


def _toaster_raw_imap(self, timeout=10.0):
    return RawIMAP(self.ports["imap_listen"], timeout)


Toaster.imap_port = property(_toaster_imap_port)
Toaster.imap = _toaster_imap
Toaster.raw_imap = _toaster_raw_imap
