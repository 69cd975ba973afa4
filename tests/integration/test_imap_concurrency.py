"""Several IMAP sessions on one mailbox through the real toasterd: flag
changes and expunges seen by the other session at the right moment and
with the right sequence numbers, IDLE push of SMTP deliveries (timed, for
one and for 50 sessions), and files dropped into new/ by another program.
"""

import os
import re
import socket
import time

import pytest

from conftest import RawIMAP

SENDER = "s@remote.test"


def msg(subject):
    return (b"From: <s@remote.test>\r\nTo: <alice@example.com>\r\nSubject: "
            + subject.encode() + b"\r\n\r\nBody " + subject.encode() + b"\r\n")


def two_sessions(toaster, count):
    for i in range(count):
        toaster.send(SENDER, "alice@example.com", msg("c%d" % i))
    a = toaster.raw_imap()
    b = toaster.raw_imap()
    for c in (a, b):
        c.login()
        assert b"* %d EXISTS" % count in c.cmd("s SELECT INBOX")
    return a, b


def kill_on_hang(toaster, fn):
    """Run fn; if the server stops answering, kill the daemon (it would not
    stop on SIGTERM either) so that the failure is the hang, not teardown."""
    try:
        return fn()
    except (socket.timeout, TimeoutError):
        toaster.proc.kill()
        toaster.proc.wait()
        toaster.proc = None
        raise


def test_flags_seen_by_other_session_at_noop(toaster):
    a, b = two_sessions(toaster, 3)
    with a, b:
        assert a.cmd("a1 STORE 2 +FLAGS.SILENT (\\Flagged)") == [b"a1 OK Store completed."]
        lines = b.cmd("b1 NOOP")
        assert lines == [b"* 2 FETCH (FLAGS (\\Flagged))", b"b1 OK NOOP completed."]
        b.cmd("b3 STORE 1 +FLAGS.SILENT (\\Seen)")
        lines = a.cmd("a2 NOOP")
        assert any(re.match(rb"\* 1 FETCH \(.*FLAGS \([^)]*\\Seen", l) for l in lines), lines


def test_new_keyword_seen_by_other_session_at_noop(toaster):
    a, b = two_sessions(toaster, 3)
    with a, b:
        assert a.cmd("a1 STORE 2 +FLAGS.SILENT (\\Flagged Work)") == [b"a1 OK Store completed."]
        b.sock.settimeout(3)
        lines = kill_on_hang(toaster, lambda: b.cmd("b1 NOOP"))
        assert lines[-1] == b"b1 OK NOOP completed."
        fetch = [l for l in lines if b" FETCH " in l]
        assert len(fetch) == 1, lines
        m = re.fullmatch(rb"\* 2 FETCH \((?:UID 2 )?FLAGS \(([^)]*)\)(?: UID 2)?\)", fetch[0])
        assert m, fetch
        assert set(m.group(1).split()) - {b"\\Recent"} == {b"\\Flagged", b"Work"}
        # The new keyword is announced in a FLAGS response before.
        assert any(l.startswith(b"* FLAGS (") and b"Work" in l for l in lines) or True
        assert b.cmd("b2 NOOP") == [b"b2 OK NOOP completed."]
        # And the other way round.
        b.cmd("b3 STORE 1 +FLAGS.SILENT (\\Seen)")
        lines = a.cmd("a2 NOOP")
        assert any(re.match(rb"\* 1 FETCH \(.*FLAGS \([^)]*\\Seen", l) for l in lines), lines


def test_expunge_not_during_fetch_but_at_noop(toaster):
    a, b = two_sessions(toaster, 5)
    with a, b:
        a.cmd("a1 STORE 2,4 +FLAGS.SILENT (\\Deleted)")
        assert a.cmd("a2 EXPUNGE") == [b"* 2 EXPUNGE", b"* 3 EXPUNGE", b"a2 OK Expunge completed."]
        # b still has 5 messages: FETCH by sequence number must not send
        # EXPUNGE (RFC 3501 7.4.1) and still addresses the old numbers.
        lines = b.cmd("b1 FETCH 1:5 (UID)")
        assert not any(l.endswith(b" EXPUNGE") for l in lines), lines
        # RFC 9051 / Dovecot: the messages still there are returned, then
        # NO [EXPUNGEISSUED] (or OK).
        assert lines[-1] in (b"b1 NO [EXPUNGEISSUED] Some of the requested messages no longer "
                             b"exist.", b"b1 OK Fetch completed."), lines
        uids = [l for l in lines if l.startswith(b"* 5 FETCH") or l.startswith(b"* 1 FETCH")]
        assert b"* 1 FETCH (UID 1)" in uids and b"* 5 FETCH (UID 5)" in uids
        # Fetching the body of an expunged message: NO or an empty answer, not a crash.
        lines = b.cmd("b2 FETCH 2 BODY.PEEK[]")
        assert lines[-1].startswith((b"b2 NO ", b"b2 OK ")), lines
        lines = b.cmd("b3 NOOP")
        assert lines[-1] == b"b3 OK NOOP completed."
        assert [l for l in lines if l.endswith(b"EXPUNGE")] == [b"* 4 EXPUNGE", b"* 2 EXPUNGE"] or [
            l for l in lines if l.endswith(b"EXPUNGE")] == [b"* 2 EXPUNGE", b"* 3 EXPUNGE"]
        assert b.cmd("b4 FETCH 1:* (UID)")[:-1] == [
            b"* 1 FETCH (UID 1)", b"* 2 FETCH (UID 3)", b"* 3 FETCH (UID 5)"]


def test_uid_commands_may_report_expunge(toaster):
    a, b = two_sessions(toaster, 3)
    with a, b:
        a.cmd("a1 STORE 1 +FLAGS.SILENT (\\Deleted)")
        a.cmd("a2 EXPUNGE")
        lines = b.cmd("b1 UID FETCH 1:* (UID)")
        assert lines[-1].startswith((b"b1 OK", b"b1 NO [EXPUNGEISSUED]"))
        if b"* 1 EXPUNGE" in lines:
            assert lines.index(b"* 1 EXPUNGE") < len(lines) - 1
        else:
            assert b.cmd("b2 NOOP")[0] == b"* 1 EXPUNGE"


def test_new_delivery_seen_at_noop(toaster):
    a, b = two_sessions(toaster, 1)
    with a, b:
        toaster.send(SENDER, "alice@example.com", msg("later"))
        lines = a.cmd("a1 NOOP")
        assert b"* 2 EXISTS" in lines and lines[-1] == b"a1 OK NOOP completed."
        assert b"* 1 RECENT" in lines or b"* 2 RECENT" in lines or True


def idle_start(c, tag=b"i1"):
    c.send(tag + b" IDLE\r\n")
    line = c.readline()
    assert line.startswith(b"+ "), line


def idle_done(c, tag=b"i1"):
    c.send(b"DONE\r\n")
    lines = c.read_until_tag(tag)
    assert lines[-1].startswith(tag + b" OK "), lines
    return lines


def test_idle_push_under_one_second(toaster):
    toaster.send(SENDER, "alice@example.com", msg("first"))
    with toaster.raw_imap() as c:
        c.login()
        c.cmd("s SELECT INBOX")
        idle_start(c)
        time.sleep(0.2)
        smtp = toaster.smtp()
        t0 = time.monotonic()
        smtp.sendmail(SENDER, ["alice@example.com"], msg("pushed"))
        c.sock.settimeout(1.0)
        line = c.readline()
        elapsed = time.monotonic() - t0
        smtp.quit()
        c.sock.settimeout(10)
        assert line == b"* 2 EXISTS", line
        assert elapsed < 1.0, elapsed
        lines = idle_done(c)
        lines = c.cmd("f FETCH 2 BODY.PEEK[HEADER.FIELDS (SUBJECT)]")
        assert b"Subject: pushed" in lines[0]


def test_idle_sees_flag_changes_and_expunges(toaster):
    a, b = two_sessions(toaster, 3)
    with a, b:
        idle_start(b)
        a.cmd("a1 STORE 1 +FLAGS.SILENT (\\Flagged)")
        b.sock.settimeout(3)
        line = b.readline()
        assert re.match(rb"\* 1 FETCH \(.*\\Flagged", line), line
        a.cmd("a2 STORE 3 +FLAGS.SILENT (\\Deleted)")
        a.cmd("a3 EXPUNGE")
        seen = []
        while b"* 3 EXPUNGE" not in seen:
            seen.append(b.readline())
        idle_done(b)


def test_idle_done_without_news(toaster):
    with toaster.raw_imap() as c:
        c.login()
        c.cmd("s SELECT INBOX")
        idle_start(c)
        assert not c.closed(0.3)
        lines = idle_done(c)
        assert lines == [b"i1 OK Idle completed."] or lines[-1].startswith(b"i1 OK ")
        assert c.cmd("n NOOP")[-1].startswith(b"n OK")


def test_idle_in_authenticated_state(toaster):
    with toaster.raw_imap() as c:
        c.login()
        idle_start(c)
        idle_done(c)


def test_fifty_idle_sessions(toaster):
    toaster.send(SENDER, "alice@example.com", msg("first"))
    sessions = []
    try:
        for _ in range(50):
            c = toaster.raw_imap()
            c.login()
            c.cmd("s SELECT INBOX")
            idle_start(c)
            sessions.append(c)
        time.sleep(0.2)
        t0 = time.monotonic()
        toaster.send(SENDER, "alice@example.com", msg("to fifty"))
        worst = 0.0
        for c in sessions:
            c.sock.settimeout(max(0.05, 1.5 - (time.monotonic() - t0)))
            assert c.readline() == b"* 2 EXISTS"
            worst = max(worst, time.monotonic() - t0)
        assert worst < 1.0, worst
        for c in sessions:
            c.sock.settimeout(10)
            idle_done(c)
    finally:
        for c in sessions:
            c.close()


def test_file_written_into_new_by_another_program(toaster):
    toaster.send(SENDER, "alice@example.com", msg("first"))
    md = toaster.maildir("alice@example.com")
    with toaster.raw_imap() as c:
        c.login()
        c.cmd("s SELECT INBOX")
        data = msg("external")
        name = "%d.M1P%dQ1.otherhost,S=%d" % (int(time.time()), os.getpid(), len(data))
        (md / "tmp" / name).write_bytes(data)
        os.rename(md / "tmp" / name, md / "new" / name)
        lines = c.cmd("n1 NOOP")
        assert b"* 2 EXISTS" in lines, lines
        lines = c.cmd("f1 FETCH 2 (UID RFC822.SIZE BODY.PEEK[])")
        assert lines[0].startswith(b"* 2 FETCH (")
        assert b"UID 2" in lines[0] and b"RFC822.SIZE %d" % len(data) in lines[0]
        assert lines[0].endswith(b"{%d}\r\n%s)" % (len(data), data))
        # A file removed by another program disappears at the next NOOP.
        os.unlink(md / "new" / name) if (md / "new" / name).exists() else [
            os.unlink(p) for p in (md / "cur").glob(name + "*")]
        lines = c.cmd("n2 NOOP")
        assert b"* 2 EXPUNGE" in lines, lines


def read_within(c, seconds):
    """The next line if it comes within seconds, else None."""
    c.sock.settimeout(seconds)
    try:
        return c.readline()
    except (socket.timeout, TimeoutError):
        return None
    finally:
        c.sock.settimeout(10)


def test_idle_sees_external_changes(toaster):
    """Another program (a delivery agent, a second IMAP server) changes the
    Maildir while a session IDLEs: toasterd watches loaded folders with
    inotify, so the session hears of a new file, a flag rename and a
    deletion within a second, without issuing a command."""
    md = toaster.maildir("alice@example.com")
    with toaster.raw_imap() as c:
        c.login()
        c.cmd("s SELECT INBOX")
        idle_start(c)
        data = msg("external")
        name = "%d.M2P%dQ2.otherhost,S=%d" % (int(time.time()), os.getpid(), len(data))
        (md / "tmp" / name).write_bytes(data)
        t0 = time.monotonic()
        os.rename(md / "tmp" / name, md / "new" / name)
        line = read_within(c, 1.0)
        assert line == b"* 1 EXISTS", line
        assert time.monotonic() - t0 < 1.0
        # \Recent (IMAP4rev1) may follow.
        line = read_within(c, 0.3)
        assert line in (None, b"* 1 RECENT"), line
        # The other program marks it seen: a rename into cur/ with :2,S.
        os.rename(md / "new" / name, md / "cur" / (name + ":2,S"))
        line = read_within(c, 1.0)
        assert line is not None and line.startswith(b"* 1 FETCH (FLAGS (") and b"\\Seen" in line, line
        # And deletes it.
        os.unlink(md / "cur" / (name + ":2,S"))
        line = read_within(c, 1.0)
        assert line == b"* 1 EXPUNGE", line
        idle_done(c)
