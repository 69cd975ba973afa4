"""Signals and start-up configuration checks of the real toasterd.

SIGHUP must swap in new users and aliases without dropping open sessions, and
keep the old tables when the new files are broken. SIGTERM (and SIGINT) must
stop accepting at once, tell idle sessions 421 4.3.2, let a transaction in
flight finish with 250, and exit 0 (at the latest at shutdown_timeout).
Configuration mistakes must stop the daemon with exit status 1 and a message
naming the file and line.
"""

import signal
import socket
import subprocess
import time

import pytest

from conftest import (DEFAULT_ALIASES, DEFAULT_USERS, LISTEN_KEYS, QUEUED_RE, TOASTERD,
                      dot_stuff, free_ports, split_trace, wait_until)

SENDER = "sender@remote.test"
SHUTDOWN_421 = b"421 4.3.2 mx.example.com Service shutting down, closing transmission channel"


def rcpt(c, address):
    return c.cmd("RCPT TO:<%s>" % address)[-1]


def connect_refused(port):
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=2)
    except ConnectionRefusedError:
        return True
    # Accepted by a listener about to close: it must not greet us.
    try:
        s.settimeout(2)
        data = s.recv(100)
        return not data.startswith(b"220")
    except OSError:
        return True
    finally:
        s.close()


# ---- SIGHUP ----------------------------------------------------------------------


def test_sighup_adds_user_open_session_survives(toaster):
    with toaster.raw() as old_session:
        old_session.greet()
        assert old_session.cmd("MAIL FROM:<%s>" % SENDER)[-1] == b"250 2.1.0 Ok"
        assert rcpt(old_session, "alice@example.com") == b"250 2.1.5 Ok"
        assert rcpt(old_session, "newbie@example.com").startswith(b"550 5.1.1 ")
        assert rcpt(old_session, "zoe@newdomain.test").startswith(b"554 5.7.1 ")

        toaster.write_users(DEFAULT_USERS + ["newbie@example.com:{PLAIN}fresh",
                                             "zoe@newdomain.test:{PLAIN}z"])
        toaster.write_aliases(DEFAULT_ALIASES + ["newteam@example.com: newbie@example.com, "
                                                 "bob@example.com"])
        toaster.reload()
        assert "reload failed" not in toaster.log()

        # The session opened before the reload goes on, and sees the new table.
        assert rcpt(old_session, "newbie@example.com") == b"250 2.1.5 Ok"
        assert rcpt(old_session, "newteam@example.com") == b"250 2.1.5 Ok"
        # A domain that only the new users file names is local now.
        assert rcpt(old_session, "zoe@newdomain.test") == b"250 2.1.5 Ok"
        assert old_session.cmd("DATA")[-1].startswith(b"354 ")
        msg = b"Subject: across reload\r\n\r\nbody\r\n"
        old_session.send(dot_stuff(msg))
        assert QUEUED_RE.match(old_session.reply_line())

    with toaster.raw() as c:
        c.greet()
        assert c.cmd("MAIL FROM:<%s>" % SENDER)[-1] == b"250 2.1.0 Ok"
        assert rcpt(c, "newbie+tag@example.com") == b"250 2.1.5 Ok"
    for mailbox in ("alice@example.com", "newbie@example.com", "bob@example.com",
                    "zoe@newdomain.test"):
        [path] = toaster.delivered(mailbox)
        assert split_trace(path.read_bytes())[1] == msg
    assert len(toaster.all_delivered()) == 4


def test_sighup_removes_user(toaster):
    with toaster.raw() as c:
        c.greet()
        assert c.cmd("MAIL FROM:<%s>" % SENDER)[-1] == b"250 2.1.0 Ok"
        assert rcpt(c, "bob@example.com") == b"250 2.1.5 Ok"
        toaster.write_users([u for u in DEFAULT_USERS if not u.startswith("bob@")])
        toaster.write_aliases([a for a in DEFAULT_ALIASES if "bob@" not in a])
        toaster.reload()
        assert rcpt(c, "bob@example.com").startswith(b"550 5.1.1 ")
        assert rcpt(c, "team@example.com").startswith(b"550 5.1.1 ")
        # A recipient accepted before the reload stays accepted.
        assert c.cmd("DATA")[-1].startswith(b"354 ")
        c.send(b"Subject: for bob\r\n\r\nstill yours\r\n.\r\n")
        assert QUEUED_RE.match(c.reply_line())
    assert len(toaster.delivered("bob@example.com")) == 1


@pytest.mark.parametrize("broken", [
    ("users", DEFAULT_USERS + ["newbie@example.com:{PLAIN}x", "not an address:{PLAIN}x"]),
    ("users", DEFAULT_USERS + ["newbie@example.com:{PLAIN}x", "@example.com:{PLAIN}x"]),
    ("aliases", DEFAULT_ALIASES + ["newbie@example.com: alice@example.com",
                                   "team@example.com: bob@example.com"]),
    ("aliases", DEFAULT_ALIASES + ["newbie@example.com: alice@example.com",
                                   "broken@example.com:"]),
], ids=["users-syntax", "users-no-local", "aliases-duplicate", "aliases-empty"])
def test_sighup_broken_file_keeps_old_tables(toaster, broken):
    which, lines = broken
    with toaster.raw() as c:
        c.greet()
        assert c.cmd("MAIL FROM:<%s>" % SENDER)[-1] == b"250 2.1.0 Ok"
        if which == "users":
            toaster.write_users(lines)
        else:
            toaster.write_aliases(lines)
        toaster.reload()
        log = toaster.log()
        assert "reload failed; keeping the previous users and aliases" in log
        # The error names the file and the line.
        path = toaster.users_file if which == "users" else toaster.aliases_file
        assert "%s:%d:" % (path, len(lines)) in log, log
        assert rcpt(c, "alice@example.com") == b"250 2.1.5 Ok"
        assert rcpt(c, "team@example.com") == b"250 2.1.5 Ok"
        # The good line before the broken one was not half-applied.
        assert rcpt(c, "newbie@example.com").startswith(b"550 5.1.1 ")
        assert c.cmd("DATA")[-1].startswith(b"354 ")
        c.send(b"Subject: old tables\r\n\r\nx\r\n.\r\n")
        assert QUEUED_RE.match(c.reply_line())
    assert len(toaster.delivered("alice@example.com")) == 1
    assert len(toaster.delivered("bob@example.com")) == 1

    # Fixing the file and reloading again works.
    toaster.write_users(DEFAULT_USERS + ["newbie@example.com:{PLAIN}x"])
    toaster.write_aliases(DEFAULT_ALIASES)
    toaster.reload()
    assert toaster.log().count("reload: users and aliases replaced") == 1
    with toaster.raw() as c:
        c.greet()
        assert c.cmd("MAIL FROM:<%s>" % SENDER)[-1] == b"250 2.1.0 Ok"
        assert rcpt(c, "newbie@example.com") == b"250 2.1.5 Ok"


def test_sighup_storm_under_traffic(toaster):
    """Reloads while sessions are delivering: no session drops, nothing lost."""
    import threading
    stop = threading.Event()
    errors = []
    sent = []

    def sender(n):
        try:
            i = 0
            while not stop.is_set():
                with toaster.raw() as c:
                    c.greet()
                    body = b"Subject: storm\r\nX-Id: %d-%d\r\n\r\nx\r\n" % (n, i)
                    toaster.transact(c, SENDER, ["alice@example.com"], dot_stuff(body))
                    sent.append(body)
                i += 1
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=sender, args=(n,)) for n in range(4)]
    for th in threads:
        th.start()
    try:
        for i in range(10):
            toaster.write_users(DEFAULT_USERS + ["extra%d@example.com:{PLAIN}x" % i])
            toaster.reload()
    finally:
        stop.set()
        for th in threads:
            th.join(30)
    assert errors == []
    stored = sorted(split_trace(m)[1] for m in toaster.messages("alice@example.com"))
    assert stored == sorted(sent)
    assert len(sent) > 0


# ---- SIGTERM -----------------------------------------------------------------------


@pytest.mark.parametrize("signo,reactors", [(signal.SIGTERM, 1), (signal.SIGINT, 2)],
                         ids=["TERM-1reactor", "INT-2reactors"])
def test_sigterm_drains(make_toaster, signo, reactors):
    # With one reactor, the idle session's 421 proves the drain has begun
    # before the busy session goes on.
    toaster = make_toaster(config={"reactor_threads": str(reactors)})
    busy = toaster.raw()
    idle = toaster.raw()
    fresh = toaster.raw()  # connected, greeting not yet answered
    try:
        busy.greet()
        assert busy.cmd("MAIL FROM:<%s>" % SENDER)[-1] == b"250 2.1.0 Ok"
        assert rcpt(busy, "alice@example.com") == b"250 2.1.5 Ok"
        idle.greet()
        assert fresh.reply_line().startswith(b"220 ")

        toaster.signal(signo)
        toaster.wait_log("stopping; sessions have")

        # Idle sessions are told at once and closed.
        assert idle.reply_line() == SHUTDOWN_421
        assert idle.closed()
        assert fresh.reply_line() == SHUTDOWN_421
        assert fresh.closed()
        # New connections are refused.
        assert wait_until(lambda: connect_refused(toaster.port), 3)
        assert toaster.is_running()

        # The transaction in flight completes.
        assert rcpt(busy, "bob@example.com") == b"250 2.1.5 Ok"
        assert busy.cmd("DATA")[-1].startswith(b"354 ")
        msg = b"Subject: during shutdown\r\n\r\n" + b"late but welcome\r\n" * 1000
        busy.send(dot_stuff(msg))
        line = busy.reply_line()
        assert QUEUED_RE.match(line), line
        # Then the session ends too.
        assert busy.reply_line() == SHUTDOWN_421
        assert busy.closed()
    finally:
        for c in (busy, idle, fresh):
            c.close()
    assert toaster.wait(10) == 0
    toaster.check_log_clean()
    assert "stopped" in toaster.log()
    for mailbox in ("alice@example.com", "bob@example.com"):
        [path] = toaster.delivered(mailbox)
        assert split_trace(path.read_bytes())[1] == msg
    assert toaster.spool_files() == []


def test_sigterm_rset_and_quit_in_transaction(make_toaster):
    toaster = make_toaster(config={"reactor_threads": "1"})
    a = toaster.raw()
    b = toaster.raw()
    probe = toaster.raw()
    try:
        for c in (a, b):
            c.greet()
            assert c.cmd("MAIL FROM:<%s>" % SENDER)[-1] == b"250 2.1.0 Ok"
        probe.greet()
        toaster.signal(signal.SIGTERM)
        # The idle probe's 421 says the (only) reactor has begun draining.
        assert probe.reply_line() == SHUTDOWN_421
        # Abandoning the transaction leaves an idle session: it is closed.
        assert a.cmd("RSET") == [b"250 2.0.0 Ok"]
        a.send(b"NOOP\r\n")
        assert a.reply_line() == SHUTDOWN_421
        assert a.closed()
        # QUIT is always answered.
        assert b.cmd("QUIT") == [b"221 2.0.0 Bye"]
        assert b.closed()
    finally:
        for c in (a, b, probe):
            c.close()
    assert toaster.wait(10) == 0
    toaster.check_log_clean()


def test_sigterm_mid_data_completes(make_toaster):
    toaster = make_toaster(config={"reactor_threads": "1"})
    c = toaster.raw()
    probe = toaster.raw()
    try:
        probe.greet()
        c.greet()
        assert c.cmd("MAIL FROM:<%s>" % SENDER)[-1] == b"250 2.1.0 Ok"
        assert rcpt(c, "carol@example.org") == b"250 2.1.5 Ok"
        assert c.cmd("DATA")[-1].startswith(b"354 ")
        c.send(b"Subject: half\r\n\r\nfirst half\r\n")
        toaster.signal(signal.SIGTERM)
        assert probe.reply_line() == SHUTDOWN_421
        c.send(b"second half\r\n.\r\n")
        assert QUEUED_RE.match(c.reply_line())
        assert c.reply_line() == SHUTDOWN_421
    finally:
        c.close()
        probe.close()
    assert toaster.wait(10) == 0
    toaster.check_log_clean()
    [path] = toaster.delivered("carol@example.org")
    assert split_trace(path.read_bytes())[1] == \
        b"Subject: half\r\n\r\nfirst half\r\nsecond half\r\n"


def test_shutdown_timeout_drops_stuck_session(make_toaster):
    t = make_toaster(config={"shutdown_timeout": "1s"})
    c = t.raw()
    try:
        c.greet()
        assert c.cmd("MAIL FROM:<%s>" % SENDER)[-1] == b"250 2.1.0 Ok"
        assert rcpt(c, "alice@example.com") == b"250 2.1.5 Ok"
        assert c.cmd("DATA")[-1].startswith(b"354 ")
        c.send(b"Subject: never finished\r\n\r\npartial\r\n")
        time.sleep(0.1)
        started = time.monotonic()
        t.signal(signal.SIGTERM)
        assert t.wait(10) == 0
        elapsed = time.monotonic() - started
        assert 0.8 <= elapsed < 5, elapsed
        assert c.closed()
    finally:
        c.close()
    t.check_log_clean()
    assert "shutdown deadline: dropping" in t.log()
    assert t.all_delivered() == []
    assert t.spool_files() == []


def test_sigterm_with_no_clients_is_quick(toaster):
    started = time.monotonic()
    toaster.stop()
    assert time.monotonic() - started < 3


def test_restart_same_data_dir(make_toaster):
    t = make_toaster()
    t.send(SENDER, ["alice@example.com"], b"Subject: one\r\n\r\n1\r\n")
    t.stop()
    t.proc = None
    t.start()
    t.send(SENDER, ["alice@example.com"], b"Subject: two\r\n\r\n2\r\n")
    bodies = sorted(split_trace(m)[1] for m in t.messages("alice@example.com"))
    assert bodies == [b"Subject: one\r\n\r\n1\r\n", b"Subject: two\r\n\r\n2\r\n"]
    names = [p.name for p in t.delivered("alice@example.com")]
    assert len(set(names)) == 2


# ---- configuration errors ---------------------------------------------------------


def run_toasterd(tmp_path, lines, check_only=False):
    ports = free_ports(len(LISTEN_KEYS))
    base = ["%s = 127.0.0.1:%d" % (k, p) for k, p in zip(LISTEN_KEYS, ports)]
    base += ["data_dir = %s" % (tmp_path / "data"), "myhostname = mx.example.com",
             "log_timestamps = no"]
    path = tmp_path / "bad.conf"
    path.write_text("\n".join(base + lines) + "\n")
    args = [TOASTERD] + (["-n"] if check_only else []) + ["-c", str(path)]
    proc = subprocess.run(args, stdin=subprocess.DEVNULL, capture_output=True, timeout=10)
    if proc.returncode == 0 and not check_only:
        pytest.fail("toasterd started with a bad configuration")
    return proc, path, len(base)


@pytest.mark.parametrize("line,reason", [
    ("no_such_key = 1", "unknown key"),
    ("smtp_listn = 127.0.0.1:1", "unknown key"),
    ("smtp_idle_timeout_ms = 5", "unknown key"),
    ("message_size_limit = lots", ""),
    ("message_size_limit = 10q", ""),
    ("message_size_limit = -5", ""),
    ("recipient_limit = 0", ""),
    ("recipient_limit = 99999999999999999999999", ""),
    ("reactor_threads = 100000", ""),
    ("smtp_idle_timeout = soon", ""),
    ("smtp_idle_timeout = 10x", ""),
    ("bare_lf = sometimes", ""),
    ("fsync = perhaps", ""),
    ("log_level = chatty", ""),
    ("smtp_listen = 127.0.0.1", ""),
    ("smtp_listen = 127.0.0.1:99999", ""),
    ("smtp_listen = nowhere:25", ""),
    ("this line has no equals sign", ""),
])
def test_config_error_names_line(tmp_path, line, reason):
    proc, path, base_count = run_toasterd(tmp_path, ["# a comment", "", line])
    stderr = proc.stderr.decode(errors="replace")
    assert proc.returncode == 1, (proc.returncode, stderr)
    assert "%s:%d:" % (path, base_count + 3) in stderr, stderr
    assert reason in stderr
    assert "assertion" not in stderr
    # -n refuses it the same way.
    proc2, _, _ = run_toasterd(tmp_path, ["# a comment", "", line], check_only=True)
    assert proc2.returncode == 1
    assert "%s:%d:" % (path, base_count + 3) in proc2.stderr.decode(errors="replace")


def test_config_check_prints_effective_values(tmp_path):
    proc, _, _ = run_toasterd(tmp_path, ["message_size_limit = 2m", "smtp_idle_timeout = 90s",
                                         "bare_lf = reject", "recipient_limit = 7"],
                              check_only=True)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.decode()
    assert "message_size_limit = 2097152\n" in out
    assert "smtp_idle_timeout = 90000ms\n" in out
    assert "bare_lf = reject\n" in out
    assert "recipient_limit = 7\n" in out
    assert "myhostname = mx.example.com\n" in out


def test_missing_config_file(tmp_path):
    proc = subprocess.run([TOASTERD, "-c", str(tmp_path / "absent.conf")],
                          capture_output=True, timeout=10)
    assert proc.returncode == 1
    assert str(tmp_path / "absent.conf") in proc.stderr.decode()


def test_broken_users_file_at_start(tmp_path):
    users = tmp_path / "users"
    users.write_text("alice@example.com:{PLAIN}x\nbroken line\n")
    proc, _, _ = run_toasterd(tmp_path, ["users_file = %s" % users])
    assert proc.returncode == 1
    assert "%s:2:" % users in proc.stderr.decode()


def test_port_in_use_fails_start(tmp_path):
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen(1)
    try:
        port = blocker.getsockname()[1]
        proc, _, _ = run_toasterd(tmp_path, ["smtp_listen = 127.0.0.1:%d" % port])
        assert proc.returncode == 1
        stderr = proc.stderr.decode()
        assert "127.0.0.1:%d" % port in stderr
        assert "assertion" not in stderr
    finally:
        blocker.close()
