"""Hostile and broken IMAP input over a raw socket: oversized literals and
lines, unterminated literals, unbalanced parentheses, huge sequence sets,
deep section paths, NUL bytes, invalid mailbox names, wrong-state commands,
IDLE garbage and clients that vanish mid-command. After each the session
answers BAD/NO or closes with BYE, and the daemon keeps serving (conftest
checks the log for crash markers when it stops).
"""

import socket
import time

import pytest

from conftest import RawIMAP

SENDER = "s@remote.test"


def still_serving(toaster):
    with toaster.raw_imap() as c:
        c.login()
        assert c.cmd("z1 SELECT INBOX")[-1].startswith(b"z1 OK ")
        assert c.cmd("z2 LOGOUT")[-1] == b"z2 OK Logout completed."


def answered_or_bye(lines, tag):
    last = lines[-1]
    assert last.startswith((tag + b" BAD ", tag + b" NO ")) or last.startswith(b"* BYE "), lines


@pytest.fixture
def sel(toaster):
    toaster.send(SENDER, "alice@example.com",
                 b"Subject: x\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"
                 b"Content-Type: text/plain\r\n\r\npart\r\n--b--\r\n")
    c = toaster.raw_imap()
    c.login()
    assert c.cmd("s1 SELECT INBOX")[-1].startswith(b"s1 OK ")
    yield c
    c.close()
    still_serving(toaster)


def test_huge_literal_refused_without_waiting(toaster):
    with toaster.raw_imap() as c:
        c.login()
        c.sock.settimeout(3)
        t0 = time.monotonic()
        c.send(b"a1 CREATE {99999999}\r\n")
        line = c.readline()
        assert line == b"a1 NO [TOOBIG] Literal too big."
        assert time.monotonic() - t0 < 2
        assert c.cmd("a2 NOOP") == [b"a2 OK NOOP completed."]
        # Non-synchronizing: the server must skip (or close) what follows.
        c.send(b"a3 CREATE {99999999+}\r\n" + b"x" * 1000 + b"\r\n")
        line = c.readline()
        assert line.startswith((b"a3 NO ", b"a3 BAD ", b"* BYE ")), line
    still_serving(toaster)


def test_literal_over_limit_by_one(toaster):
    with toaster.raw_imap() as c:
        c.login()
        c.send(b"a1 CREATE {65537}\r\n")
        assert c.readline() == b"a1 NO [TOOBIG] Literal too big."
        c.send(b"a2 SEARCH CHARSET UTF-8 TEXT {65536}\r\n")
        line = c.readline()
        assert line == b"+ OK" or line.startswith(b"a2 NO [TOOBIG]"), line


def test_unterminated_literal_then_disconnect(toaster):
    with toaster.raw_imap() as c:
        c.login()
        c.send(b"a1 CREATE {100}\r\n")
        assert c.readline() == b"+ OK"
        c.send(b"only a few bytes")
    still_serving(toaster)
    toaster.wait_log("disconnect from", count=1)


def test_unbalanced_parentheses(sel):
    for i, cmd in enumerate([b"FETCH 1 (FLAGS", b"FETCH 1 FLAGS)", b"FETCH 1 ((FLAGS)",
                             b"SEARCH (ALL", b"SEARCH ALL)", b"STORE 1 +FLAGS (\\Seen",
                             b"FETCH 1 (" * 40 + b"FLAGS" + b")" * 40]):
        tag = b"p%d" % i
        answered_or_bye(sel.cmd(tag + b" " + cmd), tag)
    assert sel.cmd(b"q NOOP")[-1] == b"q OK NOOP completed."


def test_huge_sequence_set(sel):
    seq = b",".join([b"1:*"] * 10000)
    lines = sel.cmd(b"h1 FETCH " + seq + b" FLAGS")
    if lines[-1].startswith(b"h1 OK "):
        # Served: each message once, however often the set names it.
        assert lines == [b"* 1 FETCH (FLAGS (\\Recent))", b"h1 OK Fetch completed."], lines
        return
    answered_or_bye(lines, b"h1")
    if not lines[-1].startswith(b"* BYE"):
        assert sel.cmd(b"h2 NOOP")[-1] == b"h2 OK NOOP completed."


def test_many_ranges_within_line_limit(sel):
    seq = b",".join(b"%d" % (i % 2 + 1) for i in range(2000))
    lines = sel.cmd(b"h1 FETCH " + seq + b" UID")
    # Within the command line limit: either served or refused as BAD.
    assert lines[-1].startswith((b"h1 OK ", b"h1 BAD ", b"h1 NO ")), lines[-1]


def test_deep_section_path(sel):
    path = b".".join([b"1"] * 100)
    lines = sel.cmd(b"d1 FETCH 1 BODY.PEEK[" + path + b"]")
    assert lines[-1].startswith((b"d1 BAD ", b"d1 OK ", b"d1 NO ")), lines
    path = b".".join([b"1"] * 65)
    lines = sel.cmd(b"d2 FETCH 1 BINARY.PEEK[" + path + b"]")
    assert lines[-1].startswith((b"d2 BAD ", b"d2 OK ", b"d2 NO ")), lines
    lines = sel.cmd(b"d3 FETCH 1 BODY.PEEK[1.1.1.1.MIME]")
    assert lines[-1].startswith(b"d3 OK "), lines
    lines = sel.cmd(b"d4 FETCH 1 BODY.PEEK[4294967296]")
    assert lines[-1].startswith(b"d4 BAD "), lines


def test_100k_command_line(toaster):
    with toaster.raw_imap() as c:
        c.login()
        c.send(b"a1 LIST \"\" " + b"x" * 100 * 1024 + b"\r\n")
        line = c.readline()
        assert line in (b"a1 BAD Command line too long.", b"* BAD Command line too long.") or (
            line.startswith(b"* BYE ")), line
        if not line.startswith(b"* BYE"):
            assert c.cmd(b"a2 NOOP") == [b"a2 OK NOOP completed."]
    still_serving(toaster)


def test_nul_bytes(toaster):
    with toaster.raw_imap() as c:
        c.greet()
        c.send(b"a1 LOGIN alice@example.com alice\0secret\r\n")
        line = c.readline()
        assert line.startswith((b"a1 BAD ", b"a1 NO ", b"* BAD ")), line
        c.send(b"a2 LOGIN {17}\r\n")
        assert c.readline() == b"+ OK"
        c.send(b"alice@example.com {13+}\r\nalice-secret\0\r\n")
        line = c.readline()
        assert line.startswith((b"a2 BAD ", b"a2 NO ")), line
        c.send(b"a\0b NOOP\r\n")
        line = c.readline()
        assert b"BAD" in line, line
        assert c.cmd(b"a3 NOOP") == [b"a3 OK NOOP completed."]
        assert c.cmd(b"a4 LOGIN alice@example.com alice-secret")[-1].startswith(b"a4 OK ")
        c.send(b"a5 CREATE {3+}\r\na\0b\r\n")
        line = c.readline()
        assert line.startswith((b"a5 BAD ", b"a5 NO ")), line
    still_serving(toaster)


@pytest.mark.parametrize("name", [b"&Jjo", b"&Jjo-&Jjo-", b"&-&", b"&AGE-", b"&ZeVnLIqe",
                                  b'"../x"', b'"../../../../tmp/evil"', b'"x/../y"', b"~"])
def test_invalid_mailbox_names(toaster, name):
    with toaster.raw_imap() as c:
        c.login()
        for i, verb in enumerate([b"CREATE", b"SELECT", b"DELETE", b"SUBSCRIBE"]):
            tag = b"m%d" % i
            lines = c.cmd(tag + b" " + verb + b" " + name)
            if verb == b"SUBSCRIBE" and lines[-1].startswith(tag + b" OK"):
                continue  # subscribing to a non-existent name is allowed
            assert lines[-1].startswith((tag + b" NO ", tag + b" BAD ")), lines
        lines = c.cmd(b"r1 RENAME Sent " + name)
        assert lines[-1].startswith((b"r1 NO ", b"r1 BAD ")), lines
    assert not (toaster.root.parent / "evil").exists()
    assert not any(toaster.data_dir.parent.glob("x"))
    still_serving(toaster)


def test_idle_then_garbage(sel):
    sel.send(b"i1 IDLE\r\n")
    assert sel.readline().startswith(b"+ ")
    sel.send(b"NOT DONE AT ALL\r\n")
    line = sel.readline()
    assert line.startswith((b"i1 BAD ", b"* BYE ")), line
    if not line.startswith(b"* BYE"):
        assert sel.cmd(b"i2 NOOP")[-1] == b"i2 OK NOOP completed."


def test_idle_then_vanish(toaster):
    with toaster.raw_imap() as c:
        c.login()
        c.cmd(b"s SELECT INBOX")
        c.send(b"i1 IDLE\r\n")
        assert c.readline().startswith(b"+ ")
    toaster.send(SENDER, "alice@example.com", b"Subject: x\r\n\r\nx\r\n")
    still_serving(toaster)


def test_client_vanishes_mid_command(toaster):
    for data in (b"a1 FETCH 1:* (BODY", b"a1 LOGIN alice@example.com {12}\r\nalice",
                 b"a1 SEARCH TEXT {5}\r\n", b"a1 AUTHENTICATE PLAIN\r\n", b"a1 SEL"):
        with toaster.raw_imap() as c:
            c.greet()
            if not data.startswith(b"a1 LOGIN") and not data.startswith(b"a1 AUTH"):
                c.cmd(b"l LOGIN alice@example.com alice-secret")
                c.cmd(b"s SELECT INBOX")
            c.send(data)
    still_serving(toaster)


def test_vanish_during_large_fetch(toaster):
    body = b"y" * 2000000
    toaster.send(SENDER, "alice@example.com", b"Subject: big\r\n\r\n" + body + b"\r\n")
    c = toaster.raw_imap()
    c.login()
    c.cmd(b"s SELECT INBOX")
    c.send(b"f1 FETCH 1 BODY.PEEK[]\r\n")
    c.sock.recv(1000)
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    c.close()
    still_serving(toaster)


@pytest.mark.parametrize("line", [
    b"", b" ", b"*", b"+ x", b"a1", b"a1 ", b"a(1 NOOP", b"a{1 NOOP", b"\"a1\" NOOP",
    b"a1 NOOP\x80", b"a1 LOGIN \"unterminated", b"a1 LOGIN a\"b c", b"\xff\xfe\xfd",
])
def test_malformed_lines(toaster, line):
    with toaster.raw_imap() as c:
        c.greet()
        c.send(line + b"\r\n")
        got = c.readline()
        assert b" BAD " in got or got.startswith(b"* BYE "), got
        if not got.startswith(b"* BYE"):
            assert c.cmd(b"n NOOP") == [b"n OK NOOP completed."]


def test_error_flood_ends_in_bye(toaster):
    with toaster.raw_imap() as c:
        c.greet()
        c.send(b"".join(b"x%d BOGUS\r\n" % i for i in range(200)))
        assert c.closed(5)
        assert b"* BYE " in c.buf
    still_serving(toaster)


def test_lone_lf_and_bare_cr(toaster):
    with toaster.raw_imap() as c:
        c.greet()
        c.send(b"a1 NOOP\n")
        c.send(b"a2 NOOP\r\n")
        lines = c.read_until_tag(b"a2")
        assert lines[-1] == b"a2 OK NOOP completed."
        c.send(b"a3 NO\rOP\r\n")
        assert b"BAD" in c.readline()
