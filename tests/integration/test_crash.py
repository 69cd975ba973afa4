"""Crash safety: toasterd is killed with SIGKILL while clients are sending,
mid-DATA and just after replies, then started again on the same data_dir.

Every message that got "250 ... queued as" before the kill must be in its
Maildir, whole (its file size equals S= and it ends with the body token);
nothing half-written may be visible in new/, and start-up must clear the
spool of what no client was promised."""

import re
import signal
import socket
import threading
import time

import pytest

from conftest import QUEUED_RE, dot_stuff

USERS = ["u%d@example.com:{PLAIN}x" % i for i in range(10)]


def sender(port, worker, acknowledged, stop):
    """Send messages until the connection dies; record each 250'd token."""
    n = 0
    while not stop.is_set():
        try:
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        except OSError:
            return
        try:
            f = sock.makefile("rb")
            f.readline()
            sock.sendall(b"EHLO crash.example\r\n")
            while not f.readline().startswith(b"250 "):
                pass
            while not stop.is_set():
                n += 1
                token = "tok-%d-%d" % (worker, n)
                body = ("Subject: %s\r\n\r\n" % token + ("x" * 70 + "\r\n") * 60
                        + token + "\r\n").encode()
                sock.sendall(b"MAIL FROM:<s@example.org>\r\nRCPT TO:<u%d@example.com>\r\n"
                             b"DATA\r\n" % (n % 10))
                for _ in range(3):
                    line = f.readline()
                if not line.startswith(b"354"):
                    return
                sock.sendall(dot_stuff(body))
                line = f.readline().rstrip(b"\r\n")
                if QUEUED_RE.match(line):
                    acknowledged.append((token, n % 10))
                elif not line:
                    return
        except OSError:
            return
        finally:
            sock.close()


# Unnamed (O_TMPFILE) spool files vanish with the process by themselves;
# named ones are what start-up must clear. Both must lose nothing promised.
@pytest.mark.parametrize("spool_unnamed", ["yes", "no"])
def test_sigkill_loses_nothing_acknowledged(make_toaster, spool_unnamed):
    toaster = make_toaster(users=USERS, aliases=[], config={"spool_unnamed": spool_unnamed})
    acknowledged = []
    stop = threading.Event()
    threads = [threading.Thread(target=sender, args=(toaster.port, i, acknowledged, stop))
               for i in range(8)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 10
    while len(acknowledged) < 600 and time.monotonic() < deadline:
        time.sleep(0.01)
    toaster.signal(signal.SIGKILL)
    toaster.wait()
    stop.set()
    for t in threads:
        t.join(10)
    assert len(acknowledged) >= 50, "too little traffic before the kill"
    toaster.proc = None

    toaster.start()
    # Start-up removed every spool file: nobody was promised those messages.
    assert toaster.spool_files() == []
    delivered = {}
    for path in toaster.all_delivered():
        data = path.read_bytes()
        size = int(re.search(r",S=(\d+)", path.name).group(1))
        assert len(data) == size, "half-written file visible: %s" % path
        token = re.search(rb"\r\n(tok-\d+-\d+)\r\n$", data)
        assert token, "file does not end with its token: %s" % path
        delivered.setdefault(token.group(1).decode(), []).append(path)
    for token, user in acknowledged:
        assert token in delivered, "acknowledged %s lost" % token
        assert all("/u%d/" % user in str(p) for p in delivered[token])
    # A message may appear that was not acknowledged (killed between the
    # sync and the reply), but never more than once.
    for token, paths in delivered.items():
        assert len(paths) == 1, (token, paths)
