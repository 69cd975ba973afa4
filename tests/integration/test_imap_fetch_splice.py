"""FETCH of whole messages by splice (file -> pipe -> socket) against the
real toasterd: the bytes a client gets are the file's, whether the message
was read (first FETCH: the index learns it holds no NUL) or spliced (every
later one), across the 64 KiB pieces the reactor moves, for partials, for a
client that reads slowly (the socket fills: the reactor waits for room), and
for one that goes away mid-literal (nothing leaks, the daemon goes on).
Messages below IMAP_EXEC_SPLICE_MIN_BYTES (64 KiB) are read and copied. A
message holding NUL is never spliced: its NULs still arrive as 0x80. With
imap_fetch_splice = no the answers are the same and no pipe is ever made.
"""

import os
import re
import socket
import time

import pytest

from conftest import IMAP_PASSWORDS, wait_until

SENDER = "s@remote.test"


def message(subject, body_line, lines):
    head = (
        "From: s@remote.test\r\nTo: alice@example.com\r\nSubject: %s\r\n"
        "Date: Thu, 04 Jan 2024 10:00:00 +0000\r\n\r\n" % subject
    ).encode()
    return head + (body_line + b"\r\n") * lines


SMALL = message("small", b"hello", 3)
# About 3 MiB: many splice pieces, and more than a socket buffer holds.
LARGE = message("large", bytes(range(33, 126)) * 2, 17000)
# Large enough to be spliced if it held no NUL.
WITH_NUL = message("nul", b"before\x00after", 7000)


def deliver(toaster):
    for m in (SMALL, LARGE, WITH_NUL):
        toaster.send(SENDER, "alice@example.com", m)
    files = toaster.delivered("alice@example.com")
    assert len(files) == 3
    stored = [p.read_bytes() for p in files]
    by_subject = {}
    for data in stored:
        subject = re.search(rb"Subject: (\w+)", data).group(1).decode()
        by_subject[subject] = data
    return by_subject


def fetch_whole(client, uid, item="BODY.PEEK[]"):
    typ, data = client.uid("FETCH", str(uid), "(%s)" % item)
    assert typ == "OK", data
    literals = [part[1] for part in data if isinstance(part, tuple)]
    if not literals and data[0].endswith(b' "")'):
        return b""  # a partial past the end
    assert len(literals) == 1, data
    return literals[0]


def uids_by_subject(client):
    typ, data = client.uid("FETCH", "1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    assert typ == "OK"
    out = {}
    for part in data:
        if isinstance(part, tuple):
            uid = int(re.search(rb"UID (\d+)", part[0]).group(1))
            subject = re.search(rb"Subject: (\w+)", part[1]).group(1).decode()
            out[subject] = uid
    return out


def pipes_of(pid):
    count = 0
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            if os.readlink("/proc/%d/fd/%s" % (pid, fd)).startswith("pipe:"):
                count += 1
        except OSError:
            pass
    return count


def fds_of(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


@pytest.mark.parametrize("splice", ["yes", "no"])
def test_whole_message_bytes_read_then_spliced(make_toaster, splice):
    toaster = make_toaster(config={"imap_fetch_splice": splice})
    stored = deliver(toaster)
    client = toaster.imap("alice@example.com")
    client.select("INBOX")
    uids = uids_by_subject(client)
    for round_ in range(3):  # round 0 reads the files, later ones may splice
        for subject, data in stored.items():
            want = data.replace(b"\x00", b"\x80")
            assert fetch_whole(client, uids[subject]) == want, (round_, subject)
            assert fetch_whole(client, uids[subject], "BODY.PEEK[]<0.7>") == want[:7]
        big = stored["large"]
        # Partials that start and end inside different 64 KiB pieces.
        for origin, length in ((1, 65535), (65530, 70000), (len(big) - 10, 100), (len(big), 5)):
            got = fetch_whole(client, uids["large"], "BODY.PEEK[]<%d.%d>" % (origin, length))
            assert got == big[origin : origin + length], (round_, origin, length)
        # Several messages in one response, the last one spliced between
        # two messages written as bytes.
        typ, data = client.uid("FETCH", "1:*", "(UID BODY.PEEK[] RFC822.SIZE)")
        assert typ == "OK"
        got = [part[1] for part in data if isinstance(part, tuple)]
        assert sorted(got) == sorted(d.replace(b"\x00", b"\x80") for d in stored.values())
    # RFC822 (not PEEK) also sets \Seen, as a read would.
    assert fetch_whole(client, uids["small"], "RFC822") == stored["small"]
    typ, data = client.uid("FETCH", str(uids["small"]), "(FLAGS)")
    assert b"\\Seen" in data[0]
    client.logout()
    toaster.check_log_clean()


def raw_login_select(toaster):
    sock = socket.create_connection(("127.0.0.1", toaster.imap_port), timeout=20)
    f = sock.makefile("rb")
    assert f.readline().startswith(b"* OK")
    password = IMAP_PASSWORDS["alice@example.com"].encode()
    sock.sendall(b'a LOGIN "alice@example.com" "%s"\r\nb SELECT INBOX\r\n' % password)
    seen = b""
    while not seen.endswith(b"b OK [READ-WRITE] Select completed.\r\n"):
        seen += f.readline()
    return sock, f


@pytest.fixture
def spliced(make_toaster):
    """A daemon whose LARGE message was read once (so it is spliced next)."""
    toaster = make_toaster()
    stored = deliver(toaster)
    client = toaster.imap("alice@example.com")
    client.select("INBOX")
    uids = uids_by_subject(client)
    assert fetch_whole(client, uids["large"]) == stored["large"]
    client.logout()
    return toaster, stored, uids


def test_slow_reader_gets_every_byte(spliced):
    toaster, stored, uids = spliced
    sock, f = raw_login_select(toaster)
    sock.sendall(b"c UID FETCH %d (BODY.PEEK[])\r\nd NOOP\r\n" % uids["large"])
    line = f.readline()
    n = int(re.search(rb"\{(\d+)\}\r\n$", line).group(1))
    assert n == len(stored["large"])
    # Hold back: the socket fills and the daemon must wait for room (and
    # holds a pipe meanwhile: the bytes go by splice).
    time.sleep(0.5)
    assert pipes_of(toaster.pid) >= 2
    got = b""
    while len(got) < n:
        got += f.read(min(65536, n - len(got)))
        if len(got) < 1000000:
            time.sleep(0.01)  # the socket stays full for a while
    assert got == stored["large"]
    assert f.readline() == b")\r\n"
    assert f.readline().startswith(b"c OK ")
    assert f.readline().startswith(b"d OK ")
    f.close()
    sock.close()
    # The pipe went back to the pool (kept for reuse), nothing else grew.
    toaster.check_log_clean()


def test_client_vanishing_mid_literal_leaks_nothing(spliced):
    toaster, stored, uids = spliced
    # A first transfer makes the pool's pipe, so counts below compare alike.
    sock, f = raw_login_select(toaster)
    sock.sendall(b"c UID FETCH %d (BODY.PEEK[])\r\n" % uids["large"])
    f.readline()
    f.read(len(stored["large"]))
    f.close()
    sock.close()
    wait_until(lambda: "disconnect from" in toaster.log(), 5)
    time.sleep(0.2)
    fds_before = fds_of(toaster.pid)
    for _ in range(5):
        sock, f = raw_login_select(toaster)
        sock.sendall(b"c UID FETCH %d (BODY.PEEK[] BODY.PEEK[])\r\n" % uids["large"])
        f.readline()
        f.read(100000)
        f.close()
        sock.close()  # mid-literal, with unread bytes: a reset
    assert wait_until(lambda: fds_of(toaster.pid) <= fds_before, 10), (
        fds_of(toaster.pid),
        fds_before,
    )
    client = toaster.imap("alice@example.com")
    client.select("INBOX")
    assert fetch_whole(client, uids["large"]) == stored["large"]
    client.logout()


def test_no_pipes_without_splice(make_toaster):
    toaster = make_toaster(config={"imap_fetch_splice": "no"})
    stored = deliver(toaster)
    client = toaster.imap("alice@example.com")
    client.select("INBOX")
    uids = uids_by_subject(client)
    for _ in range(2):
        assert fetch_whole(client, uids["large"]) == stored["large"]
    assert pipes_of(toaster.pid) == 0
    client.logout()


def test_whole_message_beside_header_items(make_toaster):
    """With the header cached, a header item beside BODY[] must not shrink
    BODY[] to the header block (found by fuzz_imap_fetch)."""
    toaster = make_toaster()
    stored = deliver(toaster)
    client = toaster.imap("alice@example.com")
    client.select("INBOX")
    uids = uids_by_subject(client)  # reads every header: the cache is filled
    for subject, data in stored.items():
        want = data.replace(b"\x00", b"\x80")
        for items, body in (("(ENVELOPE BODY.PEEK[])", want),
                            ("(BODY.PEEK[HEADER] BODY.PEEK[])", want),
                            ("(RFC822.HEADER RFC822.SIZE BODY.PEEK[]<0.100>)", want[:100])):
            typ, answer = client.uid("FETCH", str(uids[subject]), items)
            assert typ == "OK"
            literals = [part[1] for part in answer if isinstance(part, tuple)]
            assert body in literals, (subject, items)
    client.logout()
