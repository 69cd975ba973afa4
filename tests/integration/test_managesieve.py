"""ManageSieve (RFC 5804) against the real toasterd: a Python socket client
speaking the protocol line by line, and Debian's sieve-connect where it is
installed. Covers the greeting and capabilities, STARTTLS (capabilities
again afterwards, pipelined commands after it thrown away), AUTHENTICATE
PLAIN only under TLS or on a trusted transport, the login slow-down, every
script command with the files Pigeonhole users expect on disk
(sieve/NAME.sieve and the .dovecot.sieve link), compile errors with their
line, quotas, and bad input.
"""
import base64
import os
import re
import shutil
import socket
import ssl
import subprocess

import pytest

from conftest import IMAP_PASSWORDS


def tls_context():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def plain(user, password):
    return base64.b64encode(b"\0" + user.encode() + b"\0" + password.encode()).decode()


def quoted(text):
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def literal(data):
    if isinstance(data, str):
        data = data.encode()
    return b"{%d+}\r\n" % len(data) + data


class Sieve:
    """A small RFC 5804 client: replies come back as (status, code, text, lines)."""

    def __init__(self, port, timeout=10.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.file = self.sock.makefile("rb")
        self.greeting = self.response()

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def read_item(self):
        """One line; a literal {N} is read whole and returned as bytes."""
        line = self.file.readline()
        assert line.endswith(b"\r\n"), line
        line = line[:-2]
        m = re.fullmatch(rb"(.*)\{(\d+)\}", line)
        if m:
            data = self.file.read(int(m.group(2)))
            rest = self.file.readline()
            assert rest.endswith(b"\r\n")
            return m.group(1) + data + rest[:-2]
        return line

    def response(self):
        lines = []
        while True:
            line = self.read_item()
            m = re.match(rb'^(OK|NO|BYE)(?: \(([^)]*)\))?(?: (.*))?$', line, re.S)
            if m:
                text = m.group(3) or b""
                if text.startswith(b'"') and text.endswith(b'"'):
                    text = text[1:-1].replace(b'\\"', b'"').replace(b"\\\\", b"\\")
                code = m.group(2).decode() if m.group(2) else None
                return m.group(1).decode(), code, text.decode(errors="replace"), lines
            lines.append(line)

    def cmd(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.send(data + b"\r\n")
        return self.response()

    def starttls(self):
        status, _, _, _ = self.cmd("STARTTLS")
        assert status == "OK"
        self.sock = tls_context().wrap_socket(self.sock)
        self.file = self.sock.makefile("rb")
        return self.response()

    def login(self, user, password=None):
        password = IMAP_PASSWORDS[user] if password is None else password
        return self.cmd('AUTHENTICATE "PLAIN" ' + quoted(plain(user, password)))

    def capabilities(self, lines):
        caps = {}
        for line in lines:
            m = re.fullmatch(rb'"([^"]+)"(?: "(.*)")?', line)
            assert m, line
            caps[m.group(1).decode()] = (m.group(2) or b"").decode()
        return caps

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def home(toaster, user):
    local, domain = user.split("@")
    return toaster.data_dir / "mail" / domain / local


def port(toaster):
    return toaster.ports["managesieve_listen"]


def test_greeting_and_capabilities(toaster):
    with Sieve(port(toaster)) as s:
        status, _, _, lines = s.greeting
        assert status == "OK"
        caps = s.capabilities(lines)
        assert caps["IMPLEMENTATION"].startswith("toaster")
        assert caps["VERSION"] == "1.0"
        assert "STARTTLS" in caps
        assert caps["SASL"] == "PLAIN"  # loopback is trusted by default
        for ext in ("fileinto", "reject", "vacation", "imap4flags", "variables", "body"):
            assert ext in caps["SIEVE"].split()
        status, _, _, lines = s.cmd("CAPABILITY")
        assert status == "OK" and s.capabilities(lines) == caps
        assert s.cmd("LOGOUT")[0] == "OK"
        assert s.file.read() == b""


def test_plain_refused_without_tls(make_toaster):
    t = make_toaster(config={"loopback_is_secure": "no"})
    with Sieve(port(t)) as s:
        caps = s.capabilities(s.greeting[3])
        assert caps["SASL"] == ""
        status, code, _, _ = s.login("alice@example.com")
        assert (status, code) == ("NO", "ENCRYPT-NEEDED")
        status, _, _, lines = s.starttls()
        assert status == "OK"
        caps = s.capabilities(lines)  # RFC 5804 2.2: capabilities again
        assert caps["SASL"] == "PLAIN" and "STARTTLS" not in caps
        assert s.login("alice@example.com")[0] == "OK"
        caps = s.capabilities(s.cmd("CAPABILITY")[3])
        assert caps["OWNER"] == "alice@example.com"


def test_starttls_throws_away_pipelined_commands(make_toaster):
    """Bytes after STARTTLS were sent in plaintext: they must never run."""
    t = make_toaster(config={"loopback_is_secure": "no"})
    with Sieve(port(t)) as s:
        s.send('STARTTLS\r\nAUTHENTICATE "PLAIN" %s\r\n' % quoted(plain("alice@example.com",
                                                                      "alice-secret")))
        assert s.response()[0] == "OK"
        s.sock = tls_context().wrap_socket(s.sock)
        s.file = s.sock.makefile("rb")
        assert s.response()[0] == "OK"
        # Not logged in: the AUTHENTICATE was thrown away.
        assert s.cmd("LISTSCRIPTS")[:2] == ("NO", None)
        assert "Login: user=<alice" not in t.log()


def test_garbage_instead_of_client_hello(toaster):
    with Sieve(port(toaster)) as s:
        s.cmd("STARTTLS")
        s.send(b"this is not TLS\r\n" * 10)
        s.sock.settimeout(5)
        try:
            data = s.sock.recv(4096)
        except (ConnectionResetError, socket.timeout):
            data = b""
        assert b"OK" not in data  # no protocol reply in plaintext after STARTTLS
    toaster.check_log_clean()


def test_authenticate_forms_and_failures(toaster):
    with Sieve(port(toaster)) as s:
        # Empty challenge, then the response as a literal.
        s.send('AUTHENTICATE "PLAIN"\r\n')
        assert s.file.readline() == b'""\r\n'
        s.send(literal(plain("bob@example.com", "bob-secret")) + b"\r\n")
        assert s.response()[0] == "OK"
        assert s.cmd("UNAUTHENTICATE")[0] == "OK"
        assert s.cmd("LISTSCRIPTS")[0] == "NO"
        # "*" cancels.
        s.send('AUTHENTICATE "PLAIN"\r\n')
        assert s.file.readline() == b'""\r\n'
        assert s.cmd('"*"')[0] == "NO"
        status, _, text, _ = s.login("bob@example.com", "wrong")
        assert status == "NO" and "failed" in text
    toaster.wait_log("managesieve-login: auth failed: user=<bob@example.com>, rip=127.0.0.1, delay=")


def test_script_lifecycle_on_disk(toaster):
    user = "alice@example.com"
    script = 'require ["fileinto"];\r\nif header :contains "subject" "[list]" {\r\n  fileinto "Lists";\r\n}\r\n'
    with Sieve(port(toaster)) as s:
        assert s.login(user)[0] == "OK"
        assert s.cmd("LISTSCRIPTS")[:1] == ("OK",) and s.cmd("LISTSCRIPTS")[3] == []
        assert s.cmd(b'PUTSCRIPT "lists" ' + literal(script))[0] == "OK"
        assert s.cmd(b'PUTSCRIPT "other" ' + literal("keep;\r\n"))[0] == "OK"
        h = home(toaster, user)
        assert (h / "sieve" / "lists.sieve").read_bytes() == script.encode()
        assert not (h / ".dovecot.sieve").exists()

        assert s.cmd('SETACTIVE "lists"')[0] == "OK"
        assert os.readlink(h / ".dovecot.sieve") == "sieve/lists.sieve"
        status, _, _, lines = s.cmd("LISTSCRIPTS")
        assert status == "OK" and sorted(lines) == [b'"lists" ACTIVE', b'"other"']

        status, _, _, lines = s.cmd('GETSCRIPT "lists"')
        assert status == "OK" and lines == [script.encode()]

        assert s.cmd('DELETESCRIPT "lists"')[:2] == ("NO", "ACTIVE")
        assert s.cmd('RENAMESCRIPT "lists" "other"')[:2] == ("NO", "ALREADYEXISTS")
        assert s.cmd('RENAMESCRIPT "lists" "mailing lists"')[0] == "OK"
        assert os.readlink(h / ".dovecot.sieve") == "sieve/mailing lists.sieve"
        assert s.cmd('GETSCRIPT "lists"')[:2] == ("NO", "NONEXISTENT")
        assert s.cmd('SETACTIVE "nothing"')[:2] == ("NO", "NONEXISTENT")

        assert s.cmd('SETACTIVE ""')[0] == "OK"
        assert not os.path.lexists(h / ".dovecot.sieve")
        assert s.cmd('DELETESCRIPT "mailing lists"')[0] == "OK"
        assert s.cmd('DELETESCRIPT "other"')[0] == "OK"
        assert s.cmd("LISTSCRIPTS")[3] == []
        assert s.cmd('GETSCRIPT "../../../etc/passwd"')[0] == "NO"


def test_compile_errors_and_checkscript(toaster):
    with Sieve(port(toaster)) as s:
        assert s.login("carol@example.org")[0] == "OK"
        bad = "require \"fileinto\";\r\nkeep;\r\nfileintoo \"x\";\r\n"
        status, _, text, _ = s.cmd(b'PUTSCRIPT "bad" ' + literal(bad))
        assert status == "NO" and "line 3" in text and "fileintoo" in text
        assert not (home(toaster, "carol@example.org") / "sieve" / "bad.sieve").exists()
        status, _, text, _ = s.cmd(b"CHECKSCRIPT " + literal('fileinto "x";\r\n'))
        assert status == "NO" and "line 1" in text  # fileinto not required
        assert s.cmd(b"CHECKSCRIPT " + literal("keep;\r\n"))[0] == "OK"
        # The session goes on after errors.
        assert s.cmd('NOOP "t1"')[:2] == ("OK", 'TAG "t1"')


def test_quotas_and_size(make_toaster):
    t = make_toaster(config={"sieve_max_script_size": "200", "sieve_quota_max_scripts": "2"})
    with Sieve(port(t)) as s:
        assert s.login("dave@example.org")[0] == "OK"
        assert s.cmd('HAVESPACE "a" 100')[0] == "OK"
        assert s.cmd('HAVESPACE "a" 201')[:2] == ("NO", "QUOTA/MAXSIZE")
        big = "# " + "x" * 300 + "\r\nkeep;\r\n"
        assert s.cmd(b'PUTSCRIPT "a" ' + literal(big))[:2] == ("NO", "QUOTA/MAXSIZE")
        assert s.cmd(b'PUTSCRIPT "a" ' + literal("keep;\r\n"))[0] == "OK"
        assert s.cmd(b'PUTSCRIPT "b" ' + literal("keep;\r\n"))[0] == "OK"
        assert s.cmd(b'PUTSCRIPT "c" ' + literal("keep;\r\n"))[:2] == ("NO", "QUOTA/MAXSCRIPTS")
        assert s.cmd(b'PUTSCRIPT "a" ' + literal("stop;\r\n"))[0] == "OK"  # replace fits


def test_bad_input(toaster):
    with Sieve(port(toaster)) as s:
        assert s.cmd("FROBNICATE")[0] == "NO"
        assert s.cmd("NOOP " + "x" * 9000)[0] == "NO"
        assert s.cmd('NOOP "' + "q" * 2000 + '"')[0] == "NO"
        assert s.cmd(b"NOOP \x00\x01\x02")[0] == "NO"
        assert s.cmd("NOOP")[0] == "OK"  # still in step
        s.send(b'PUTSCRIPT "x" {999999999999+}\r\n')
        status, _, _, _ = s.response()
        assert status == "BYE"
        assert s.file.read() == b""
    # A client that vanishes in the middle of a script upload.
    with Sieve(port(toaster)) as s:
        s.login("alice@example.com")
        s.send(b'PUTSCRIPT "half" {1000+}\r\nkeep;')
    toaster.check_log_clean()


@pytest.mark.skipif(shutil.which("sieve-connect") is None, reason="sieve-connect not installed")
def test_sieve_connect(toaster, tmp_path):
    """Debian's sieve-connect uploads, activates, lists and downloads over STARTTLS."""
    script = tmp_path / "vacation.sieve"
    script.write_text('require "vacation";\nvacation :days 7 "I am away.";\n')
    base = ["sieve-connect", "--server", "127.0.0.1", "--port", str(port(toaster)),
            "--user", "alice@example.com", "--passwordfd", "0", "--nosslverify",
            "--authmech", "PLAIN"]

    def run(*args):
        return subprocess.run(base + list(args), input="alice-secret\n", capture_output=True,
                              text=True, timeout=60)

    out = run("--upload", "--localsieve", str(script), "--remotesieve", "vacation")
    assert out.returncode == 0, out.stderr
    out = run("--activate", "--remotesieve", "vacation")
    assert out.returncode == 0, out.stderr
    out = run("--list")
    assert out.returncode == 0 and "vacation" in out.stdout, out.stdout + out.stderr
    target = tmp_path / "down.sieve"
    out = run("--download", "--remotesieve", "vacation", "--localsieve", str(target))
    assert out.returncode == 0, out.stderr
    assert target.read_text() == script.read_text()
    assert os.readlink(home(toaster, "alice@example.com") / ".dovecot.sieve") == \
        "sieve/vacation.sieve"


def test_openssl_s_client_starttls_sieve(toaster):
    """OpenSSL's own ManageSieve STARTTLS dialogue finds a TLS 1.2+ server."""
    # LOGOUT goes once the dialogue is surely over: s_client sends what
    # stdin already holds as soon as it can, which races its own STARTTLS.
    command = ("(sleep 1; printf 'LOGOUT\\r\\n') | openssl s_client -connect 127.0.0.1:%d "
               "-starttls sieve -brief -ign_eof" % port(toaster))
    out = subprocess.run(["sh", "-c", command], capture_output=True, timeout=30)
    text = out.stdout.decode(errors="replace") + out.stderr.decode(errors="replace")
    assert "Protocol version: TLSv1.3" in text, text
    # What came under TLS (s_client prints it on stdout, its own dialogue on
    # stderr): the capabilities again (RFC 5804 2.2), then LOGOUT's reply.
    after = out.stdout.decode(errors="replace")
    assert '"IMPLEMENTATION"' in after and 'OK "TLS negotiation successful."' in after, text
    assert '"STARTTLS"' not in after and 'OK "Logout completed."' in after, text
