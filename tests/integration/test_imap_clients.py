"""Real IMAP clients against toasterd: mbsync (isync) pulling a 2,000-message
mailbox into a local Maildir and pushing flag changes and deletions back,
and mutt, driven headless on a pseudo-terminal, reading, copying, flagging,
deleting and moving messages.
"""

import fcntl
import os
import pty
import re
import select
import shutil
import signal
import struct
import subprocess
import termios
import time

import pytest

COUNT = 2000

pytestmark = pytest.mark.skipif(shutil.which("mbsync") is None and shutil.which("mutt") is None,
                                reason="mbsync/mutt not installed")


def fill(toaster, count, user="alice@example.com"):
    """Write messages straight into new/ (toasterd picks them up)."""
    md = toaster.maildir(user)
    with toaster.raw_imap() as c:
        c.login(user)  # creates the Maildir
    base = int(time.time())
    for i in range(count):
        data = (b"From: s@remote.test\r\nTo: %s\r\nSubject: msg %d\r\n"
                b"Message-ID: <m%d@remote.test>\r\n\r\nbody %d\r\n" % (user.encode(), i, i, i))
        name = "%d.M%dP1Q%d.other,S=%d" % (base, i, i, len(data))
        (md / "new" / name).write_bytes(data)
    return md


def mbsyncrc(tmp, toaster, ops):
    local = tmp / "local"
    local.mkdir(exist_ok=True)
    rc = tmp / "mbsyncrc"
    rc.write_text(
        "IMAPAccount t\nHost 127.0.0.1\nPort %d\nUser alice@example.com\nPass alice-secret\n"
        "SSLType None\nAuthMechs LOGIN\n\n"
        "IMAPStore remote\nAccount t\n\n"
        "MaildirStore local\nPath %s/\nInbox %s/INBOX\n\n"
        "Channel c\nFar :remote:\nNear :local:\nPatterns INBOX\n%s\nSyncState *\n"
        % (toaster.imap_port, local, local, ops))
    return rc, local / "INBOX"


def run_mbsync(rc, timeout=60):
    r = subprocess.run(["mbsync", "-c", str(rc), "-a"], capture_output=True, timeout=timeout)
    return r


@pytest.mark.skipif(shutil.which("mbsync") is None, reason="mbsync not installed")
def test_mbsync_pull_then_push_flags_and_expunge(toaster, tmp_path):
    md = fill(toaster, COUNT)
    rc, inbox = mbsyncrc(tmp_path, toaster, "Sync All\nCreate Near\nExpunge Both")
    t0 = time.monotonic()
    r = run_mbsync(rc)
    assert r.returncode == 0, r.stderr.decode()[-2000:]
    local = sorted((inbox / "cur").iterdir()) + sorted((inbox / "new").iterdir())
    assert len(local) == COUNT
    # Flag 10 messages seen+flagged and delete 5 locally.
    files = sorted(local)
    for p in files[:10]:
        base = p.name.split(":2,")[0]
        os.rename(p, inbox / "cur" / (base + ":2,FS"))
    for p in files[10:15]:
        os.unlink(p)
    r = run_mbsync(rc)
    assert r.returncode == 0, r.stderr.decode()[-2000:]
    assert time.monotonic() - t0 < 60
    server = list((md / "cur").iterdir()) + list((md / "new").iterdir())
    assert len(server) == COUNT - 5
    flagged = [p for p in server if p.name.endswith(":2,FS")]
    assert len(flagged) == 10
    with toaster.raw_imap() as c:
        c.login()
        c.cmd("s SELECT INBOX")
        assert c.cmd("a SEARCH FLAGGED SEEN")[0].count(b" ") == 11
        assert b"* STATUS INBOX (MESSAGES %d)" % (COUNT - 5) == c.cmd(
            "b STATUS INBOX (MESSAGES)")[0]


@pytest.mark.skipif(shutil.which("mbsync") is None, reason="mbsync not installed")
def test_mbsync_push_new_message(toaster, tmp_path):
    fill(toaster, 3)
    rc, inbox = mbsyncrc(tmp_path, toaster, "Sync All\nCreate Both\nExpunge Both")
    r = run_mbsync(rc)
    assert r.returncode == 0, r.stderr.decode()[-2000:]
    data = b"From: me@example.com\r\nSubject: uploaded\r\n\r\nup\r\n"
    (inbox / "new" / ("%d.local1.host" % time.time())).write_bytes(data)
    r = run_mbsync(rc)
    assert r.returncode == 0, r.stderr.decode()[-2000:]
    with toaster.raw_imap() as c:
        c.login()
        c.cmd("s SELECT INBOX")
        assert c.cmd("a SEARCH SUBJECT uploaded")[0] == b"* SEARCH 4"


def run_tty(args, env, timeout):
    """Run a full-screen program on a fresh pseudo-terminal (120x40) and return
    (exit status or None when it had to be killed at the timeout, screen bytes).
    Nothing is ever typed: the program is driven by its own command line."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    proc = subprocess.Popen(args, stdin=slave, stdout=slave, stderr=slave, env=env,
                            start_new_session=True, close_fds=True,
                            preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0))
    os.close(slave)
    out = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: the slave side is closed, the program is gone
                    chunk = b""
                if not chunk:
                    break
                out += chunk
            elif proc.poll() is not None:
                break
        else:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return None, out
        try:
            return proc.wait(timeout=5), out
        except subprocess.TimeoutExpired:  # closed the terminal but did not exit
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return None, out
    finally:
        os.close(master)


def screen_text(out):
    """What mutt drew, without terminal control sequences (for messages)."""
    text = re.sub(rb"\x1b(\[[0-9;?]*[A-Za-z]|[()][A-Z0-9]|[=>])", b"", out)
    return text.replace(b"\r", b"\n").decode("utf-8", "replace")


def last_index(out):
    """The text of the last index screen mutt drew (from its help line on)."""
    screen = screen_text(out)
    assert "q:Quit" in screen, "mutt never showed its index; screen:\n" + screen[-3000:]
    return screen[screen.rindex("q:Quit"):]


def mutt(toaster, home, keys, timeout=20):
    """One headless mutt session on INBOX over plain IMAP; `keys` is pushed
    into mutt's input before the index starts. Returns the screen bytes."""
    home.mkdir(exist_ok=True)
    muttrc = home / "muttrc"
    muttrc.write_text(
        "set imap_user=alice@example.com\nset imap_pass=alice-secret\n"
        "set folder=imap://127.0.0.1:%d/\nset spoolfile=+INBOX\n"
        "set ssl_starttls=no\nset ssl_force_tls=no\nset imap_check_subscribed=no\n"
        "set certificate_file=%s/certificates\nset header_cache=\nset message_cachedir=\n"
        "set mail_check=0\nset timeout=0\nset sort=date\nset mbox_type=mbox\n"
        "set confirmappend=no\nset confirmcreate=no\nset delete=yes\nset quit=yes\n"
        "set move=no\nset mark_old=no\nset resolve=no\nset wait_key=no\n"
        % (toaster.imap_port, home))
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "TERM": "xterm",
           "LANG": "C.UTF-8", "SHELL": "/bin/sh"}
    args = ["mutt", "-n", "-F", str(muttrc), "-f", "imap://127.0.0.1:%d/INBOX" % toaster.imap_port,
            "-e", 'push "%s"' % keys]
    code, out = run_tty(args, env, timeout)
    assert code is not None, "mutt hung; screen:\n" + screen_text(out)[-3000:]
    assert code == 0, "mutt exited %d; screen:\n%s" % (code, screen_text(out)[-3000:])
    return out


def server_files(md):
    """Subject -> path of each message file in the Maildir's new/ and cur/."""
    files = {}
    for path in list((md / "new").iterdir()) + list((md / "cur").iterdir()):
        subject = re.search(rb"^Subject: (.*)\r$", path.read_bytes(), re.M).group(1).decode()
        assert subject not in files, subject
        files[subject] = path
    return files


def mbox_messages(path):
    """The messages of an mbox mutt wrote, each without its "From " line and
    the Content-Length:/Lines: headers mutt adds, in the file's LF form."""
    data = path.read_bytes()
    assert data.startswith(b"From "), data[:200]
    messages = []
    for chunk in data[:-1].split(b"\n\nFrom ") if data.endswith(b"\n\n") else [data]:
        header, _, body = chunk.partition(b"\n\n")
        lines = header.split(b"\n")[1:]
        lines = [l for l in lines if not l.startswith((b"Content-Length: ", b"Lines: "))]
        messages.append(b"\n".join(lines) + b"\n\n" + body.rstrip(b"\n") + b"\n")
    return messages


def lf(data):
    return data.replace(b"\r\n", b"\n")


@pytest.mark.skipif(shutil.which("mutt") is None, reason="mutt not installed")
def test_mutt_reads_copies_flags_deletes_and_moves(toaster, tmp_path):
    for i in range(3):
        toaster.send("s@remote.test", "alice@example.com",
                     b"From: s@remote.test\r\nTo: alice@example.com\r\nSubject: mutt %d\r\n"
                     b"Date: Mon, 1 Jan 2024 10:0%d:00 +0000\r\n"
                     b"Message-ID: <mutt%d@remote.test>\r\n"
                     b"\r\nmutt body zebra %d\r\n.dot line\r\n" % (i, i, i, i))
    md = toaster.maildir("alice@example.com")
    before = server_files(md)
    assert sorted(before) == ["mutt 0", "mutt 1", "mutt 2"]
    originals = {s: p.read_bytes() for s, p in before.items()}
    home = tmp_path / "home"
    piped, every, saved = home / "piped", home / "every.mbox", home / "saved.mbox"
    t0 = time.monotonic()

    # Session 1: pipe message 1 out, copy all three to a local mbox, copy
    # message 2 into a new server folder, flag message 2, delete message 3.
    out = mutt(toaster, home,
               "<first-entry><pipe-message>cat > %s<enter>"
               "<tag-pattern>~A<enter><tag-prefix><copy-message>%s<enter><untag-pattern>~A<enter>"
               "<next-entry><copy-message>=Archive<enter><flag-message>"
               "<next-entry><delete-message><sync-mailbox><quit>" % (piped, every))
    # The last index mutt drew shows the expunge and the flag ("!").
    screen = last_index(out)
    assert "mutt 0" in screen and "mutt 2" not in screen, screen
    assert re.search(r"2 N ! +Jan 01 s@remote\.test +\(.*\) mutt 1", screen), screen
    assert "Msgs:2 New:2 Flag:1" in screen, screen
    # The piped message is the stored file byte for byte (mutt turns CRLF into LF).
    assert piped.read_bytes() == lf(originals["mutt 0"])
    assert mbox_messages(every) == [lf(originals["mutt %d" % i]) for i in range(3)]
    after = server_files(md)
    assert sorted(after) == ["mutt 0", "mutt 1"]
    # Flagged on disk; piping and copying used BODY.PEEK (no \Seen).
    flags = {s: p.name.partition(":2,")[2] for s, p in after.items()}
    assert flags == {"mutt 0": "", "mutt 1": "F"}, flags
    for s, p in after.items():
        assert p.read_bytes() == originals[s]
    # COPY to the folder mutt created (Maildir++ ".Archive") keeps the bytes.
    archived = server_files(md / ".Archive")
    assert list(archived) == ["mutt 1"] and archived["mutt 1"].read_bytes() == originals["mutt 1"]
    with toaster.raw_imap() as c:
        c.login()
        assert c.cmd("a STATUS Archive (MESSAGES)")[0] == b"* STATUS Archive (MESSAGES 1)"
        c.cmd("b SELECT Archive")
        lines = c.cmd("c FETCH 1 (BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        assert any(b"Subject: mutt 1" in l for l in lines), lines
        listed = c.cmd("d LIST \"\" Archive")
        assert len(listed) == 2 and re.match(rb'\* LIST \(.*\) "\." Archive$', listed[0]), listed
        c.cmd("e SELECT INBOX")
        assert c.cmd("f SEARCH FLAGGED")[0] == b"* SEARCH 2"

    # Session 2: a fresh mutt sees the new state and moves message 1 to a
    # local mbox (save-message = copy + delete + expunge on quit).
    out = mutt(toaster, home, "<first-entry><save-message>%s<enter><quit>" % saved)
    screen = last_index(out)
    assert "Msgs:2 New:2 Del:1 Flag:1" in screen and "1 kept, 1 deleted." in screen, screen
    assert mbox_messages(saved) == [lf(originals["mutt 0"])]
    final = server_files(md)
    assert sorted(final) == ["mutt 1"]
    assert final["mutt 1"].read_bytes() == originals["mutt 1"]
    assert time.monotonic() - t0 < 20
