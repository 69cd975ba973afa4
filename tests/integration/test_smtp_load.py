"""Many concurrent SMTP sessions against one toasterd, and the connection caps.

200 client threads connect, wait for each other on a barrier so that all
sessions are open at once, then each sends a few messages, some with several
recipients; every message that got a 250 must be in each of its recipients'
Maildirs exactly once (matched by a unique token), and nothing else may be.
The per-IP and per-reactor connection limits must answer 421 4.7.0 at connect.
"""

import re
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from conftest import QUEUED_RE, dot_stuff, split_trace, wait_until

SESSIONS = 200
MESSAGES_PER_SESSION = 2
USERS = ["user%02d@example.com" % i for i in range(40)] + \
        ["user%02d@example.org" % i for i in range(40, 50)]
TOKEN_RE = re.compile(rb"X-Load-Token: (t-\d+-\d+)\r\n")


def test_concurrent_sessions(make_toaster):
    t = make_toaster(config={"max_connections_per_ip": "1000", "worker_threads": "2"},
                     users=["%s:{PLAIN}pw" % u for u in USERS],
                     aliases=["pair@example.com: user00@example.com, user41@example.org"])
    barrier = threading.Barrier(SESSIONS, timeout=60)

    def session(i):
        accepted = {}
        refused = []
        c = t.raw(timeout=60)
        try:
            assert c.reply_line().startswith(b"220 ")
            barrier.wait()
            assert c.cmd("EHLO load%d.example" % i)[-1].startswith(b"250 ")
            for j in range(MESSAGES_PER_SESSION):
                token = "t-%d-%d" % (i, j)
                rcpts = [USERS[(i + j) % len(USERS)]]
                if j == 1:
                    rcpts.append(USERS[(i * 7 + 3) % len(USERS)])
                if i % 10 == 0 and j == 0:
                    rcpts.append("pair@example.com")
                body = (b"Subject: load %s\r\nX-Load-Token: %s\r\n\r\n" % (token.encode(),
                                                                          token.encode()) +
                        b"line of text for %s\r\n" % token.encode() * (1 + (i % 5) * 40) +
                        b".leading dot\r\n")
                if i % 2:
                    c.send(b"MAIL FROM:<load%d@remote.test>\r\n" % i +
                           b"".join(b"RCPT TO:<%s>\r\n" % r.encode() for r in rcpts) +
                           b"DATA\r\n")
                    replies = c.replies(len(rcpts) + 2)
                    assert all(r.startswith(b"250 ") for r in replies[:-1]), replies
                    assert replies[-1].startswith(b"354 "), replies
                    c.send(dot_stuff(body))
                else:
                    # Every other session uses BDAT.
                    c.send(b"MAIL FROM:<load%d@remote.test>\r\n" % i +
                           b"".join(b"RCPT TO:<%s>\r\n" % r.encode() for r in rcpts) +
                           b"BDAT %d LAST\r\n" % len(body) + body)
                    replies = c.replies(len(rcpts) + 1)
                    assert all(r.startswith(b"250 ") for r in replies), replies
                line = c.reply_line()
                if QUEUED_RE.match(line):
                    accepted[token] = (set(rcpts), body)
                else:
                    refused.append((token, line))
            assert c.cmd("QUIT")[-1] == b"221 2.0.0 Bye"
        finally:
            c.close()
        return accepted, refused

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=SESSIONS) as pool:
        results = list(pool.map(session, range(SESSIONS)))
    elapsed = time.monotonic() - started

    accepted = {}
    refused = []
    for a, r in results:
        accepted.update(a)
        refused.extend(r)
    # A temporary refusal would be legal SMTP, but nothing here should cause one.
    assert refused == [], refused[:5]
    assert len(accepted) == SESSIONS * MESSAGES_PER_SESSION

    # Expected copies: alias pair@ expands to user00@ and user41@.
    expected = Counter()
    for token, (rcpts, _) in accepted.items():
        mailboxes = set()
        for r in rcpts:
            mailboxes |= {"user00@example.com", "user41@example.org"} if r == "pair@example.com" \
                else {r}
        for m in mailboxes:
            expected[(token, m)] += 1

    found = Counter()
    for path in t.all_delivered():
        domain, local = path.parts[-5], path.parts[-4]
        stored = path.read_bytes()
        m = TOKEN_RE.search(stored)
        assert m, path
        token = m.group(1).decode()
        found[(token, "%s@%s" % (local, domain))] += 1
        assert split_trace(stored)[1] == accepted[token][1], path
        size = int(re.search(r",S=(\d+)", path.name).group(1))
        assert size == len(stored)
    assert found == expected
    assert wait_until(lambda: t.spool_files() == [], 5)
    assert t.tmp_files() == []
    t.wait_log("status=delivered", count=len(accepted))
    print("load: %d messages, %d copies in %.2fs" % (len(accepted), sum(found.values()),
                                                    elapsed))


def _banner_or_refusal(t):
    c = t.raw(timeout=5)
    return c, c.reply_line()


def _open_sessions(t, count, held):
    """Open count greeted sessions; a refusal may only be a slot that an
    earlier, closed connection has not yet given back, so retry briefly."""
    deadline = time.monotonic() + 5
    while len(held) < count:
        c, line = _banner_or_refusal(t)
        if line.startswith(b"220 "):
            assert line == b"220 mx.example.com ESMTP toaster"
            held.append(c)
            continue
        c.close()
        assert line == REFUSAL
        assert time.monotonic() < deadline, "slots not given back"
        time.sleep(0.05)


REFUSAL = b"421 4.7.0 mx.example.com Error: too many connections, try again later"


def test_connection_cap_per_ip(make_toaster):
    t = make_toaster(config={"max_connections_per_ip": "3"})
    held = []
    try:
        _open_sessions(t, 3, held)
        c, line = _banner_or_refusal(t)
        assert line == REFUSAL
        assert c.closed()
        c.close()
        # The held sessions are unaffected.
        for c in held:
            assert c.cmd("NOOP") == [b"250 2.0.0 Ok"]
        # Freeing one slot lets a new client in (the close may take a moment
        # to be noticed).
        held.pop().cmd("QUIT")

        def try_connect():
            c, line = _banner_or_refusal(t)
            if line.startswith(b"220 "):
                held.append(c)
                return True
            c.close()
            return False

        assert wait_until(try_connect, 5, 0.05)
        c, line = _banner_or_refusal(t)
        assert line == REFUSAL
        c.close()
    finally:
        for c in held:
            c.close()
    t.wait_log("too many connections from")


def test_connection_cap_per_reactor(make_toaster):
    t = make_toaster(config={"reactor_threads": "1", "max_connections": "2",
                             "max_connections_per_ip": "100"})
    held = []
    try:
        _open_sessions(t, 2, held)
        for _ in range(3):
            c, line = _banner_or_refusal(t)
            assert line == REFUSAL
            c.close()
        for c in held:
            assert c.cmd("NOOP") == [b"250 2.0.0 Ok"]
    finally:
        for c in held:
            c.close()
    t.wait_log("connection limit 2 reached")


def test_connection_churn(make_toaster):
    """Many short connections (some dropped at once) leave no slot behind."""
    t = make_toaster(config={"max_connections_per_ip": "4"})

    def churn(i):
        c = t.raw(timeout=10)
        try:
            line = c.reply_line()
            if not line.startswith(b"220 "):
                return "refused"
            if i % 3 == 0:
                return "dropped"  # closed without QUIT
            assert c.cmd("QUIT")[-1] == b"221 2.0.0 Bye"
            return "ok"
        finally:
            c.close()

    with ThreadPoolExecutor(max_workers=4) as pool:
        outcomes = Counter(pool.map(churn, range(300)))
    assert outcomes["ok"] + outcomes["dropped"] > 0
    # After the churn all four slots come back.
    held = []
    try:
        def four_open():
            while len(held) < 4:
                c, line = _banner_or_refusal(t)
                if not line.startswith(b"220 "):
                    c.close()
                    return False
                held.append(c)
            return True

        assert wait_until(four_open, 5, 0.05), outcomes
    finally:
        for c in held:
            c.close()


def test_spool_buffers_exhausted_waits(make_toaster):
    """With one spool buffer, a second and a third concurrent DATA wait for
    it in turn (their 354 comes when it frees) instead of being refused; a
    waiter that hangs up leaves the queue without harm."""
    t = make_toaster(config={"spool_buffers": "1", "reactor_threads": "1"})
    with t.raw() as a, t.raw() as b, t.raw() as gone, t.raw() as c:
        for client in (a, b, gone, c):
            client.greet()
            assert client.cmd("MAIL FROM:<a@remote.test>")[-1] == b"250 2.1.0 Ok"
            assert client.cmd("RCPT TO:<alice@example.com>")[-1] == b"250 2.1.5 Ok"
        assert a.cmd("DATA")[-1].startswith(b"354 ")
        a.send(b"Subject: a\r\n\r\npartial\r\n")
        for client in (b, gone, c):
            client.send(b"DATA\r\n")
        t.wait_log("spool buffers all busy")
        for client in (b, gone, c):
            client.sock.settimeout(0.3)
            try:
                assert client.sock.recv(100) == b"", "a waiter got a reply"
            except TimeoutError:
                pass  # no reply yet: it waits
            client.sock.settimeout(10)
        gone.close()  # hangs up while waiting
        a.send(b".\r\n")
        assert QUEUED_RE.match(a.reply_line())
        # b was first in line: its 354 comes now; c follows once b is done.
        assert b.reply_line().startswith(b"354 ")
        b.send(b"Subject: b\r\n\r\nwaited\r\n.\r\n")
        assert QUEUED_RE.match(b.reply_line())
        assert c.reply_line().startswith(b"354 ")
        c.send(b"Subject: c\r\n\r\nwaited longer\r\n.\r\n")
        assert QUEUED_RE.match(c.reply_line())
    bodies = sorted(split_trace(m)[1] for m in t.messages("alice@example.com"))
    assert bodies == [b"Subject: a\r\n\r\npartial\r\n", b"Subject: b\r\n\r\nwaited\r\n",
                      b"Subject: c\r\n\r\nwaited longer\r\n"]


def test_receive_buffer_starvation(make_toaster):
    """60 sessions streaming bodies through 16 receive buffers on one reactor:
    slower, but every message arrives whole."""
    t = make_toaster(config={"recv_buffer_count": "16", "reactor_threads": "1",
                             "max_connections_per_ip": "1000"})
    line = b"y" * 900 + b"\r\n"

    def one(i):
        body = b"Subject: starve %d\r\n\r\n" % i + line * 300
        with t.raw(timeout=60) as c:
            c.greet()
            c.send(b"MAIL FROM:<a@remote.test>\r\nRCPT TO:<bob@example.com>\r\nDATA\r\n")
            assert c.replies(3)[2].startswith(b"354 ")
            c.send(body + b".\r\n")
            assert QUEUED_RE.match(c.reply_line())
            return body

    with ThreadPoolExecutor(max_workers=60) as pool:
        sent = list(pool.map(one, range(60)))
    stored = sorted(split_trace(m)[1] for m in t.messages("bob@example.com"))
    assert stored == sorted(sent)
