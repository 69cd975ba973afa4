"""bench/idle_smtp.py - hold idle SMTP connections open against a server on
127.0.0.1: each reads its banner and says EHLO, then waits, as a client
between messages does. Source addresses 127.0.0.2, .3, ... in turn (20,000
connections each), so the ephemeral ports of one never run out.

As a module: open_idle(port, count) returns the sockets once every session
is idle. As a program: `idle_smtp.py PORT COUNT READY_FILE` opens them,
writes the count to READY_FILE, and holds them until SIGTERM.
"""
import selectors
import signal
import socket
import sys
import time


def open_idle(port, count, timeout_s=180):
    sel = selectors.DefaultSelector()
    socks = []
    for i in range(count):
        s = socket.socket()
        s.bind(("127.0.0.%d" % (2 + i // 20000), 0))
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", port))
        socks.append(s)
        sel.register(s, selectors.EVENT_READ, [b"", 0])
    done = 0
    deadline = time.monotonic() + timeout_s
    while done < count and time.monotonic() < deadline:
        for key, _ in sel.select(timeout=1):
            s, state = key.fileobj, key.data
            data = s.recv(4096)
            if not data:
                raise SystemExit("connection closed by the server: %r" % state[0][-200:])
            state[0] += data
            if state[1] == 0 and state[0].endswith(b"\r\n") and state[0].startswith(b"220 "):
                state[0], state[1] = b"", 1
                s.send(b"EHLO idle.example.test\r\n")
            elif state[1] == 1 and b"\r\n250 " in b"\r\n" + state[0]:
                state[1] = 2
                sel.unregister(s)
                done += 1
    if done < count:
        raise SystemExit("only %d of %d sessions got to idle" % (done, count))
    return socks


if __name__ == "__main__":
    if len(sys.argv) != 4:
        raise SystemExit("usage: idle_smtp.py PORT COUNT READY_FILE")
    signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGTERM])
    held = open_idle(int(sys.argv[1]), int(sys.argv[2]))
    with open(sys.argv[3], "w") as ready:
        ready.write("%d\n" % len(held))
    signal.sigwait([signal.SIGTERM])
