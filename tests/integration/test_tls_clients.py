"""TLS, AUTH and relay policy driven by real third-party clients (issue 5
point 5): `openssl s_client` (STARTTLS on smtp and imap with a dialogue
through its stdin, implicit TLS 1.2 and 1.3, TLS 1.0 and 1.1 refused),
`swaks --tls --auth` (PLAIN and LOGIN, STARTTLS and --tls-on-connect, AUTH
withheld before TLS), relay attempts to a foreign domain on every SMTP port
with and without AUTH, and 1,000 TLS handshakes held open at once on imaps.
"""
import asyncio
import base64
import imaplib
import json
import os
import re
import resource
import select
import shutil
import smtplib
import ssl
import subprocess
import time

import pytest

from conftest import TOASTERCTL, wait_until

OPENSSL = shutil.which("openssl")
SWAKS = shutil.which("swaks")

needs_openssl = pytest.mark.skipif(OPENSSL is None, reason="openssl not installed")
needs_swaks = pytest.mark.skipif(SWAKS is None, reason="swaks not installed")

QUEUED_RE = re.compile(rb"^250 2\.0\.0 Ok: queued as ([0-9A-F]{16})$")
FOREIGN = "victim@remote.test"


def client_context():
    """Python's client for the daemon's self-signed certificate."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def queue_entries(toaster):
    return toaster.queue_ids()


def stats(toaster):
    out = subprocess.run([TOASTERCTL, "-c", str(toaster.config_file), "stats", "--json"],
                         capture_output=True, text=True, timeout=30, check=True)
    return json.loads(out.stdout)


def reactor_sum(toaster, key):
    return sum(r[key] for r in stats(toaster)["reactors"])


def plain_token(user, password):
    return base64.b64encode(b"\0" + user.encode() + b"\0" + password.encode()).decode()


# ---- openssl s_client --------------------------------------------------------


class SClient:
    """`openssl s_client` as a subprocess, driven line by line through its
    stdin; what the server sends arrives on its stdout (-quiet: nothing
    else there). -ign_eof and -nocommands keep lines such as QUIT and RCPT
    from being taken as s_client's own Q/R commands."""

    def __init__(self, port, *args, timeout=10.0):
        cmd = [OPENSSL, "s_client", "-connect", "127.0.0.1:%d" % port, "-quiet",
               "-ign_eof", "-nocommands"] + list(args)
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
        self.timeout = timeout
        self.buf = b""

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def readline(self):
        deadline = time.monotonic() + self.timeout
        fd = self.proc.stdout.fileno()
        while b"\r\n" not in self.buf:
            left = deadline - time.monotonic()
            assert left > 0, "no complete line from s_client; have %r; stderr %r" % (
                self.buf, self.stderr())
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                continue
            chunk = os.read(fd, 65536)
            assert chunk, "s_client closed; have %r; stderr %r" % (self.buf, self.stderr())
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line

    def smtp_reply(self):
        lines = []
        while True:
            line = self.readline()
            lines.append(line)
            if line[3:4] != b"-":
                return lines

    def smtp(self, line):
        self.send(line + "\r\n")
        return self.smtp_reply()

    def imap(self, tag, command):
        self.send("%s %s\r\n" % (tag, command))
        lines = []
        while True:
            line = self.readline()
            lines.append(line)
            if line.startswith(tag.encode() + b" "):
                return lines

    def finish(self):
        """Wait for s_client to exit (the server closed); returns its status."""
        self.proc.stdin.close()
        try:
            rc = self.proc.wait(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("s_client still running; stderr %r" % self.stderr())
        rest = self.proc.stdout.read()
        assert self.buf + rest == b"", "unread server output: %r" % (self.buf + rest)
        return rc

    def stderr(self):
        if self.proc.poll() is None:
            return "(running)"
        return self.proc.stderr.read().decode(errors="replace")

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for f in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            try:
                f.close()
            except (OSError, ValueError):
                pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def run_s_client(port, *args, stdin=b""):
    """A one-shot s_client; returns (exit status, stdout, stderr)."""
    proc = subprocess.run([OPENSSL, "s_client", "-connect", "127.0.0.1:%d" % port] + list(args),
                          input=stdin, capture_output=True, timeout=30)
    return proc.returncode, proc.stdout, proc.stderr.decode(errors="replace")


@needs_openssl
def test_s_client_starttls_smtp_delivers(make_toaster):
    toaster = make_toaster()
    body = "Subject: via s_client\r\nFrom: <sender@example.net>\r\n\r\nline one\r\n..dot\r\n"
    with SClient(toaster.ports["smtp_listen"], "-starttls", "smtp", "-tls1_3") as c:
        # s_client read the banner, said EHLO and STARTTLS; the session starts over.
        lines = c.smtp("EHLO client.example")
        assert lines[0] == b"250-mx.example.com" and lines[-1].startswith(b"250 ")
        assert not any(b"STARTTLS" in l or b"AUTH" in l for l in lines), lines
        assert c.smtp("MAIL FROM:<sender@example.net>") == [b"250 2.1.0 Ok"]
        assert c.smtp("RCPT TO:<alice@example.com>") == [b"250 2.1.5 Ok"]
        [line] = c.smtp("DATA")
        assert line.startswith(b"354 "), line
        [line] = c.smtp(body + ".")
        assert QUEUED_RE.match(line), line
        assert c.smtp("QUIT")[0].startswith(b"221 ")
        assert c.finish() == 0
    [path] = toaster.delivered("alice@example.com")
    stored = path.read_bytes()
    head = stored.split(b"\r\n\r\n", 1)[0]
    assert b"with ESMTPS id" in head and b"(using TLSv1.3 with cipher " in head, head
    assert stored.endswith(b"\r\nline one\r\n.dot\r\n")
    toaster.stop()


@needs_openssl
def test_s_client_starttls_submission_auth_plain(make_toaster):
    toaster = make_toaster(config={"loopback_is_secure": "no"})
    with SClient(toaster.ports["submission_listen"], "-starttls", "smtp") as c:
        lines = c.smtp("EHLO client.example")
        assert b"250-AUTH PLAIN LOGIN" in lines, lines
        assert c.smtp("MAIL FROM:<alice@example.com>") == \
            [b"530 5.7.0 Authentication required"]
        assert c.smtp("AUTH PLAIN " + plain_token("alice@example.com", "wrong")) == \
            [b"535 5.7.8 Error: authentication failed"]
        [line] = c.smtp("AUTH PLAIN " + plain_token("alice@example.com", "alice-secret"))
        assert line.startswith(b"235 2.7.0"), line
        assert c.smtp("MAIL FROM:<alice@example.com>") == [b"250 2.1.0 Ok"]
        assert c.smtp("RCPT TO:<bob@example.com>") == [b"250 2.1.5 Ok"]
        assert c.smtp("DATA")[0].startswith(b"354 ")
        [line] = c.smtp("From: <alice@example.com>\r\nSubject: s\r\n\r\nhi\r\n.")
        assert QUEUED_RE.match(line), line
        assert c.smtp("QUIT")[0].startswith(b"221 ")
        assert c.finish() == 0
    [path] = toaster.delivered("bob@example.com")
    assert b"with ESMTPSA id" in path.read_bytes()
    toaster.stop()


@needs_openssl
def test_s_client_starttls_imap_login_select_logout(make_toaster):
    toaster = make_toaster(config={"loopback_is_secure": "no"})
    toaster.send("sender@example.net", "alice@example.com", b"Subject: one\r\n\r\nbody\r\n")
    with SClient(toaster.ports["imap_listen"], "-starttls", "imap") as c:
        lines = c.imap("a1", "CAPABILITY")
        assert lines[-1].startswith(b"a1 OK"), lines
        # After STARTTLS: no STARTTLS, no LOGINDISABLED, AUTH=PLAIN offered.
        cap = lines[0]
        assert cap.startswith(b"* CAPABILITY ") and b"AUTH=PLAIN" in cap, cap
        assert b"STARTTLS" not in cap and b"LOGINDISABLED" not in cap, cap
        lines = c.imap("a2", 'LOGIN "alice@example.com" "alice-secret"')
        assert lines[-1].startswith(b"a2 OK"), lines
        lines = c.imap("a3", "SELECT INBOX")
        assert b"* 1 EXISTS" in lines, lines
        assert lines[-1].startswith(b"a3 OK [READ-WRITE]"), lines
        lines = c.imap("a4", "FETCH 1 (BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        assert b"Subject: one" in b"\n".join(lines) and lines[-1].startswith(b"a4 OK")
        lines = c.imap("a5", "LOGOUT")
        assert lines[0].startswith(b"* BYE") and lines[-1].startswith(b"a5 OK"), lines
        assert c.finish() == 0
    toaster.stop()


@needs_openssl
@pytest.mark.parametrize("version", ["-tls1_2", "-tls1_3"])
@pytest.mark.parametrize("listener", ["imaps_listen", "submissions_listen"])
def test_s_client_implicit_tls_versions_accepted(make_toaster, listener, version):
    toaster = make_toaster()
    port = toaster.ports[listener]
    quit_cmd = b"a LOGOUT\r\n" if listener == "imaps_listen" else b"QUIT\r\n"
    rc, out, err = run_s_client(port, "-brief", "-ign_eof", "-nocommands", version,
                                stdin=quit_cmd)
    assert rc == 0, err
    want = "TLSv1.3" if version == "-tls1_3" else "TLSv1.2"
    assert "Protocol version: %s" % want in err, err
    assert "Signature type: ECDSA" in err, err
    if listener == "imaps_listen":
        assert out.startswith(b"* OK [CAPABILITY IMAP4rev1 "), out
        assert b"\r\n* BYE" in out and out.endswith(b"a OK Logout completed.\r\n"), out
    else:
        assert out.startswith(b"220 mx.example.com ESMTP"), out
        assert out.endswith(b"221 2.0.0 Bye\r\n"), out
    toaster.stop()


@needs_openssl
@pytest.mark.parametrize("version", ["-tls1", "-tls1_1"])
@pytest.mark.parametrize("listener,starttls", [
    ("imaps_listen", None), ("submissions_listen", None),
    ("smtp_listen", "smtp"), ("imap_listen", "imap")])
def test_s_client_old_versions_refused(make_toaster, listener, starttls, version):
    toaster = make_toaster()
    args = [version, "-cipher", "DEFAULT:@SECLEVEL=0", "-brief"]
    if starttls:
        args += ["-starttls", starttls]
    rc, out, err = run_s_client(toaster.ports[listener], *args)
    assert rc != 0, err
    # The server answered the old ClientHello with a protocol_version alert.
    assert "alert protocol version" in err, err
    assert "CONNECTION ESTABLISHED" not in err
    assert not out.startswith(b"* OK") and not out.startswith(b"220"), out
    # And serves the next client as usual.
    rc, out, err = run_s_client(toaster.ports[listener], "-brief",
                                *(["-starttls", starttls] if starttls else []))
    assert rc == 0 and "Protocol version: TLSv1.3" in err, err
    toaster.wait_log("TLS with 127.0.0.1 failed: unsupported protocol")
    toaster.stop()


# ---- swaks ---------------------------------------------------------------------


def swaks(toaster, listener, *args, expect_rc=0):
    cmd = [SWAKS, "--server", "127.0.0.1:%d" % toaster.ports[listener], "--helo",
           "swaks.example", "--timeout", "20"] + list(args)
    proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
    out = proc.stdout.decode(errors="replace") + proc.stderr.decode(errors="replace")
    assert proc.returncode == expect_rc, (proc.returncode, out)
    return out


def swaks_has_tls():
    if SWAKS is None:
        return False
    out = subprocess.run([SWAKS, "--support"], capture_output=True, text=True)
    return "=== TLS supported" in out.stdout + out.stderr


needs_swaks_tls = pytest.mark.skipif(not swaks_has_tls(),
                                     reason="swaks without TLS (libnet-ssleay-perl)")


@needs_swaks_tls
@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
@pytest.mark.parametrize("listener,tls_arg", [("submission_listen", "--tls"),
                                              ("submissions_listen", "--tls-on-connect")])
def test_swaks_tls_auth_delivers(make_toaster, listener, tls_arg, mechanism):
    toaster = make_toaster(config={"loopback_is_secure": "no"})
    token = "swaks-%s-%s" % (mechanism, listener)
    out = swaks(toaster, listener, tls_arg, "--auth", mechanism,
                "--auth-user", "alice@example.com", "--auth-password", "alice-secret",
                "--from", "alice@example.com", "--to", "bob@example.com",
                "--add-header", "X-Token: " + token)
    assert re.search(r"TLS started with cipher TLSv1\.3:", out), out
    assert re.search(r"<~  235 2\.7\.0 ", out), out
    assert re.search(r"<~  250 2\.0\.0 Ok: queued as [0-9A-F]{16}", out), out
    if tls_arg == "--tls":
        assert "<-  220 2.0.0 Ready to start TLS" in out, out
    # The password never crossed in the clear.
    assert "alice-secret" not in out.split("TLS started")[0]
    [path] = toaster.delivered("bob@example.com")
    stored = path.read_bytes()
    assert ("X-Token: %s\r\n" % token).encode() in stored
    assert b"with ESMTPSA id" in stored
    toaster.wait_log("smtp-login: Login: user=<alice@example.com>, rip=127.0.0.1")
    toaster.stop()


@needs_swaks_tls
def test_swaks_auth_withheld_before_tls(make_toaster):
    toaster = make_toaster(config={"loopback_is_secure": "no"})
    out = swaks(toaster, "submission_listen", "--auth", "PLAIN",
                "--auth-user", "alice@example.com", "--auth-password", "alice-secret",
                "--from", "alice@example.com", "--to", "bob@example.com", expect_rc=28)
    assert "Host did not advertise authentication" in out, out
    assert "alice-secret" not in out
    # A wrong password over TLS: 535, nothing delivered.
    out = swaks(toaster, "submission_listen", "--tls", "--auth", "PLAIN",
                "--auth-user", "alice@example.com", "--auth-password", "bad",
                "--from", "alice@example.com", "--to", "bob@example.com", expect_rc=28)
    assert "535 5.7.8" in out, out
    assert toaster.all_delivered() == []
    toaster.stop()


@needs_swaks_tls
def test_swaks_starttls_on_port_25(make_toaster):
    toaster = make_toaster()
    out = swaks(toaster, "smtp_listen", "--tls", "--tls-protocol", "tlsv1_2",
                "--from", "sender@example.net", "--to", "carol@example.org")
    assert re.search(r"TLS started with cipher TLSv1\.2:ECDHE-ECDSA-", out), out
    [path] = toaster.delivered("carol@example.org")
    head = path.read_bytes().split(b"\r\n\r\n", 1)[0]
    assert b"with ESMTPS id" in head and b"(using TLSv1.2 with cipher ECDHE-ECDSA-" in head
    # swaks --auth on port 25: AUTH is never offered there.
    out = swaks(toaster, "smtp_listen", "--tls", "--auth", "PLAIN",
                "--auth-user", "alice@example.com", "--auth-password", "alice-secret",
                "--from", "alice@example.com", "--to", FOREIGN, expect_rc=28)
    assert "Host did not advertise authentication" in out
    toaster.stop()


@needs_swaks_tls
def test_swaks_relay_only_when_authenticated(make_toaster):
    toaster = make_toaster()
    out = swaks(toaster, "smtp_listen", "--tls", "--from", "alice@example.com",
                "--to", FOREIGN, expect_rc=24)
    assert "<~* 554 5.7.1 <victim@remote.test>: Relay access denied" in out, out
    out = swaks(toaster, "submissions_listen", "--tls-on-connect",
                "--from", "alice@example.com", "--to", FOREIGN, expect_rc=23)
    assert "<~* 530 5.7.0 Authentication required" in out, out
    assert queue_entries(toaster) == []
    out = swaks(toaster, "submissions_listen", "--tls-on-connect", "--auth", "LOGIN",
                "--auth-user", "alice@example.com", "--auth-password", "alice-secret",
                "--from", "alice@example.com", "--to", FOREIGN)
    queue_id = re.search(r"<~  250 2\.0\.0 Ok: queued as ([0-9A-F]{16})", out).group(1)
    [qid] = queue_entries(toaster)
    assert qid == queue_id
    assert "rcpt pending 0 0 <%s>" % FOREIGN in toaster.queue_envelope(qid)
    toaster.stop()


# ---- relay attempts on every port, with and without AUTH -------------------------


def smtp_session(toaster, listener):
    """smtplib under TLS on the listener: STARTTLS on smtp and submission."""
    port = toaster.ports[listener]
    if listener == "submissions_listen":
        client = smtplib.SMTP_SSL("127.0.0.1", port, local_hostname="client.example",
                                  context=client_context(), timeout=10)
        client.ehlo()
    else:
        client = smtplib.SMTP("127.0.0.1", port, local_hostname="client.example", timeout=10)
        client.ehlo()
        client.starttls(context=client_context())
        client.ehlo()
    return client


@pytest.mark.parametrize("with_auth", [False, True], ids=["noauth", "auth"])
@pytest.mark.parametrize("listener", ["smtp_listen", "submission_listen", "submissions_listen"])
def test_relay_attempt(make_toaster, listener, with_auth):
    toaster = make_toaster(config={"loopback_is_secure": "no"})
    client = smtp_session(toaster, listener)
    if with_auth:
        token = plain_token("alice@example.com", "alice-secret")
        code, text = client.docmd("AUTH", "PLAIN " + token)
        if listener == "smtp_listen":
            # Port 25 offers no AUTH, so a login cannot buy relaying there.
            assert not client.has_extn("auth")
            assert (code, text) == (503, b"5.5.1 Error: authentication not enabled")
        else:
            assert code == 235, text
    code, text = client.mail("alice@example.com")
    if listener != "smtp_listen" and not with_auth:
        assert (code, text) == (530, b"5.7.0 Authentication required")
        client.quit()
        assert queue_entries(toaster) == []
        toaster.stop()
        return
    assert code == 250, text
    code, text = client.rcpt(FOREIGN)
    if listener == "smtp_listen":
        assert (code, text) == (554, b"5.7.1 <victim@remote.test>: Relay access denied")
        client.quit()
        assert queue_entries(toaster) == []
        toaster.stop()
        return
    assert code == 250, text
    code, text = client.data(b"From: <alice@example.com>\r\nSubject: out\r\n\r\nhello\r\n")
    match = QUEUED_RE.match(b"%d %s" % (code, text))
    assert match, (code, text)
    client.quit()
    [qid] = queue_entries(toaster)
    assert qid == match.group(1).decode()
    lines = toaster.queue_envelope(qid).splitlines()
    assert "user alice@example.com" in lines
    assert any(l.startswith("rcpt pending 0 0 <%s>" % FOREIGN) for l in lines), lines
    assert (toaster.data_dir / "queue" / (qid + ".msg")).exists()
    assert toaster.all_delivered() == []
    toaster.stop()


# ---- many handshakes at once ---------------------------------------------------

HANDSHAKES = 1000


async def _hold_handshakes(port, count):
    ctx = client_context()
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3

    async def one():
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=ctx, server_hostname="mx.example.com",
            ssl_handshake_timeout=20)
        greeting = await asyncio.wait_for(reader.readline(), 20)
        return reader, writer, greeting

    results = await asyncio.gather(*(one() for _ in range(count)), return_exceptions=True)
    return results


async def _close_all(conns):
    for _, writer, _ in conns:
        writer.close()
    await asyncio.gather(*(w.wait_closed() for _, w, _ in conns), return_exceptions=True)


def test_thousand_concurrent_handshakes(make_toaster):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = HANDSHAKES + 200
    if soft != resource.RLIM_INFINITY and soft < need:
        if hard != resource.RLIM_INFINITY and hard < need:
            pytest.skip("open file limit %d is below %d" % (hard, need))
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))
    toaster = make_toaster(config={"max_connections": 4000,
                                   "max_connections_per_ip": 4000,
                                   "reactor_threads": 2})
    port = toaster.ports["imaps_listen"]
    handshakes_before = reactor_sum(toaster, "tls_handshakes")
    started = time.monotonic()
    loop = asyncio.new_event_loop()
    try:
        results = loop.run_until_complete(_hold_handshakes(port, HANDSHAKES))
        errors = [r for r in results if isinstance(r, BaseException)]
        conns = [r for r in results if not isinstance(r, BaseException)]
        try:
            assert errors == [], "%d of %d failed, first: %r" % (
                len(errors), HANDSHAKES, errors[:3])
            for _, writer, greeting in conns:
                assert greeting.startswith(b"* OK [CAPABILITY IMAP4rev1 "), greeting
                assert writer.get_extra_info("ssl_object").version() == "TLSv1.3"
            # All of them are open at once, on the daemon's side too.
            assert reactor_sum(toaster, "connections_open") >= HANDSHAKES
            assert reactor_sum(toaster, "tls_handshakes") - handshakes_before >= HANDSHAKES
            held_s = time.monotonic() - started
        finally:
            loop.run_until_complete(_close_all(conns))
    finally:
        loop.close()
    assert held_s < 25, "1,000 handshakes took %.1f s" % held_s
    assert wait_until(lambda: reactor_sum(toaster, "connections_open") == 0, 15)
    # Still healthy: a fresh client logs in over implicit TLS.
    client = imaplib.IMAP4_SSL("127.0.0.1", port, ssl_context=client_context(), timeout=10)
    typ, data = client.login("alice@example.com", "alice-secret")
    assert typ == "OK", data
    client.logout()
    toaster.check_log_clean()
    toaster.stop()
