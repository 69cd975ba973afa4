"""chroot = /path (core/chroot_paths.h, core/privileges.h), checked from
outside as root: a Toaster whose whole tree (data_dir, users, aliases, DNS
zone) lies in one directory that is also its chroot. toasterd started as
root with user and chroot runs with /proc/PID/root at that directory; mail
sent by SMTP lands in the Maildir there (named spool files: no /proc
inside), IMAP reads it, toasterctl (outside, same file) reaches the control
socket and the queue, the relay delivers a queued message to a sink, an
LMTP Unix socket is bound inside it, a reload reads the users file again
inside it. Keys outside the chroot and a chroot without user stop the
start with a clear error; a reload whose file moves users_file outside
fails and keeps the running tables.
"""
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

from conftest import TOASTERCTL, TOASTERD, Toaster, wait_until
from smtp_sink import SmtpSink
from test_service import (rewrite_config, run_toasterd, service_user, toasterctl_reload,
                          write_config as write_config_for)

needs_root = pytest.mark.skipif(os.geteuid() != 0,
                                reason="chroot(2) and the drop to a user need root")


@pytest.fixture(autouse=True)
def no_leak_check_in_a_chroot(monkeypatch):
    """LeakSanitizer reads /proc/PID/task at exit, and a chroot has no
    /proc: the ASan build's leak check is off for these daemons (ASan and
    UBSan stay on; the same code runs leak-checked outside a chroot in the
    other tests)."""
    options = os.environ.get("ASAN_OPTIONS", "")
    if "detect_leaks=1" in options:
        monkeypatch.setenv("ASAN_OPTIONS", options.replace("detect_leaks=1", "detect_leaks=0"))


@pytest.fixture
def jail_root():
    """A directory every user can traverse (pytest's tmp_path is root's 0700)."""
    root = Path(tempfile.mkdtemp(prefix="toaster-chroot-", dir="/tmp"))
    root.chmod(0o755)
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def make_jailed(jail_root):
    """Factory: a Toaster whose root directory is its chroot, run as the
    test user (data_dir given to it, the rest root's and world-readable)."""
    daemons = []

    def factory(config=None, start=True, name=None, chroot=True):
        uid, gid, user = service_user()
        daemon = Toaster(jail_root / (name or "jail%d" % len(daemons)))
        daemon.root.chmod(0o755)
        settings = {"user": user}
        if chroot:
            settings["chroot"] = str(daemon.root)
        settings.update(config or {})
        daemon.extra_config.update(settings)
        os.chown(daemon.data_dir, uid, gid)
        daemon.data_dir.chmod(0o700)
        daemons.append(daemon)
        if start:
            daemon.start()
        return daemon

    yield factory
    failures = []
    for daemon in daemons:
        if daemon.proc is None or daemon.returncode is not None:
            continue
        try:
            daemon.stop()
        except AssertionError as exc:
            failures.append(str(exc))
    if failures:
        pytest.fail("\n\n".join(failures), pytrace=False)


def ctl(daemon, *args):
    """toasterctl outside the chroot, reading the same file (outside paths)."""
    return subprocess.run([TOASTERCTL, "-c", str(daemon.config_file), *args],
                          capture_output=True, text=True, timeout=30)


@needs_root
def test_runs_in_the_chroot_and_delivers_inside(make_jailed):
    uid, gid, user = service_user()
    daemon = make_jailed()
    log = daemon.log()
    assert "chroot %s: entered; data in /data inside it" % daemon.root in log, log
    assert "running as %s" % user in log
    # The kernel's view: the process and every thread are rooted there.
    assert os.readlink("/proc/%d/root" % daemon.pid) == str(daemon.root)
    for task in Path("/proc/%d/task" % daemon.pid).iterdir():
        if (task / "comm").read_text().startswith("iou-"):
            continue
        assert os.readlink(task / "root") == str(daemon.root), task
    assert os.readlink("/proc/%d/cwd" % daemon.pid) == str(daemon.root)

    daemon.send("sender@example.net", ["alice@example.com"],
                b"Subject: jailed\r\n\r\nbody inside\r\n")
    [delivered] = daemon.delivered("alice@example.com")
    assert str(delivered).startswith(str(daemon.data_dir) + "/mail/")
    assert b"body inside" in delivered.read_bytes()
    assert delivered.stat().st_uid == uid
    # Named spool files: the O_TMPFILE path links through /proc.
    assert "named spool files (no /proc inside)" in log

    client = daemon.imap("alice@example.com")
    typ, data = client.select("INBOX")
    assert typ == "OK" and data == [b"1"], data
    typ, data = client.fetch("1", "(BODY[TEXT])")
    assert typ == "OK" and b"body inside" in data[0][1], data
    client.logout()

    # toasterctl reads the outside paths of the same file.
    stats = ctl(daemon, "stats", "--json")
    assert stats.returncode == 0, stats
    assert '"' in stats.stdout


@needs_root
def test_reload_reads_the_users_file_inside(make_jailed):
    daemon = make_jailed()
    with daemon.smtp() as client:
        client.mail("sender@example.net")
        code, _ = client.rcpt("erin@example.com")
        assert code == 550
    daemon.write_users(["alice@example.com:{PLAIN}alice-secret",
                        "erin@example.com:{PLAIN}erin-secret"])
    result = toasterctl_reload(daemon)
    assert result.returncode == 0, result
    daemon.wait_log("reload: users and aliases replaced")
    daemon.send("sender@example.net", ["erin@example.com"], b"Subject: new\r\n\r\nhi erin\r\n")
    [delivered] = daemon.delivered("erin@example.com")
    assert b"hi erin" in delivered.read_bytes()

    # The file read again moves users_file outside the chroot: the reload
    # fails, named, and the running tables stay.
    outside = daemon.root.parent / ("users-outside-%s" % daemon.root.name)
    outside.write_text("zed@example.com:{PLAIN}zed\n")
    rewrite_config(daemon, users_file=str(outside))
    result = toasterctl_reload(daemon)
    assert result.returncode == 1, result
    daemon.wait_log("reload failed: chroot = %s: toasterd reads these after entering the "
                    "chroot, so they must lie under it: users_file (%s)" % (daemon.root, outside))
    daemon.send("sender@example.net", ["erin@example.com"], b"Subject: still\r\n\r\nstill\r\n")
    assert len(daemon.delivered("erin@example.com")) == 2

    # Another chroot in the file: not judged against the one toasterd is in.
    rewrite_config(daemon, users_file=str(daemon.users_file), chroot=str(daemon.root.parent))
    result = toasterctl_reload(daemon)
    assert result.returncode == 1, result
    daemon.wait_log('reload failed: chroot changed to "%s": needs a restart; the running '
                    'configuration stays' % daemon.root.parent)
    rewrite_config(daemon, chroot=str(daemon.root))
    result = toasterctl_reload(daemon)
    assert result.returncode == 0, result


@needs_root
def test_relay_and_queue_inside(make_jailed):
    with SmtpSink() as sink:
        config = {
            "outbound_delivery": "yes",
            "mynetworks": "127.0.0.0/8",
            "queue_retry_min": "1s",
            "queue_retry_max": "2s",
            "smtp_mx_port": str(sink.port),
            "spam": "no",
            "clamav": "no",
            "dkim_verify": "no",
            "spf": "no",
            "dmarc": "no",
        }
        daemon = make_jailed(config=config, start=False)
        daemon.write_dns_zone(["remote.test MX 10 mx.remote.test",
                               "mx.remote.test A 127.0.0.1"])
        daemon.start()
        daemon.send("alice@example.com", ["bob@remote.test"],
                    b"From: <alice@example.com>\r\nSubject: out\r\n\r\nrelayed from the jail\r\n")
        assert sink.wait_for(1, timeout=15), daemon.log()[-3000:]
        assert b"relayed from the jail" in sink.snapshot()[0].data
        assert wait_until(lambda: daemon.queue_ids() == [], 10)
        listed = ctl(daemon, "queue", "list")
        assert listed.returncode == 0 and listed.stdout == "Mail queue is empty\n", listed


@needs_root
def test_lmtp_unix_socket_inside(make_jailed):
    uid, gid, _ = service_user()
    daemon = make_jailed(start=False)
    run_dir = daemon.root / "run"  # the user's: it makes the socket there
    run_dir.mkdir()
    os.chown(run_dir, uid, gid)
    sock_path = run_dir / "lmtp.sock"
    daemon.extra_config["lmtp_listen"] = "unix:%s" % sock_path
    daemon.start()
    assert sock_path.is_socket()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect(str(sock_path))
        assert s.recv(512).startswith(b"220 ")
        s.sendall(b"LHLO client.example\r\n")
        reply = b""
        while b"\r\n250 " not in reply and not reply.startswith(b"250 "):
            chunk = s.recv(4096)
            assert chunk, reply
            reply += chunk
        s.sendall(b"QUIT\r\n")


@needs_root
def test_keys_outside_the_chroot_stop_the_start(make_jailed, jail_root):
    outside = jail_root / "elsewhere"
    outside.mkdir()
    (outside / "aliases").write_text("")
    daemon = make_jailed(start=False, config={
        "users_file": "/etc/toaster-users",
        "aliases_file": str(outside / "aliases"),
        "tls_cert": str(daemon_prefix_confusion(jail_root) / "cert.pem"),
        "tls_key": str(daemon_prefix_confusion(jail_root) / "key.pem"),
    })
    proc = run_toasterd(daemon)
    assert proc.returncode == 1, proc
    want = "chroot = %s: toasterd reads these after entering the chroot, so they must lie " \
        "under it: users_file (/etc/toaster-users), aliases_file (%s/aliases), tls_cert " \
        "(%s/cert.pem), tls_key (%s/key.pem)" % (daemon.root, outside,
                                                 daemon_prefix_confusion(jail_root),
                                                 daemon_prefix_confusion(jail_root))
    assert want in proc.stderr, proc.stderr
    assert list(daemon.data_dir.iterdir()) == []


def daemon_prefix_confusion(jail_root):
    """A sibling whose name starts with the first jail's: not inside it."""
    return jail_root / "jail0x"


@needs_root
def test_chroot_needs_user_and_root(make_jailed):
    daemon = make_jailed(start=False, config={"user": ""})
    proc = run_toasterd(daemon)
    assert proc.returncode == 1
    assert "chroot = %s needs user" % daemon.root in proc.stderr, proc.stderr

    # Not started as root: the chroot cannot be entered.
    uid, gid, user = service_user()
    daemon = make_jailed(start=False, name="as-user")
    write_config_for(daemon)

    def become_test_user():
        os.setgroups([])
        os.setgid(gid)
        os.setuid(uid)

    proc = subprocess.run([TOASTERD, "-c", str(daemon.config_file)], capture_output=True,
                          text=True, timeout=30, preexec_fn=become_test_user)
    assert proc.returncode == 1
    assert "chroot = %s: toasterd must be started as root with user set" % daemon.root \
        in proc.stderr, proc.stderr


@needs_root
def test_check_only_names_the_problem(make_jailed):
    """toasterd -n reports the same error without starting."""
    daemon = make_jailed(start=False, config={"users_file": "relative/users"})
    write_config_for(daemon)
    proc = subprocess.run([TOASTERD, "-n", "-c",
                           str(daemon.config_file)], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 1
    assert 'users_file (want an absolute path without "..")' in proc.stderr, proc.stderr


@needs_root
def test_the_configuration_file_lies_in_the_chroot(make_jailed, jail_root):
    """Read again on every reload: outside the chroot it stops the start; a
    symbolic link from outside to the file inside is fine (and followed)."""
    daemon = make_jailed(start=False)
    write_config_for(daemon)
    outside = jail_root / "toasterd-outside.conf"
    outside.write_text(daemon.config_file.read_text())
    proc = subprocess.run([TOASTERD, "-c", str(outside)], capture_output=True, text=True,
                          timeout=30)
    assert proc.returncode == 1
    assert "chroot = %s: the configuration file %s is read again on a reload, so it must lie " \
        "under the chroot (a symbolic link to a file there will do): it lies outside" % (
            daemon.root, outside) in proc.stderr, proc.stderr

    link = jail_root / "toasterd-link.conf"
    link.symlink_to(daemon.config_file)
    daemon.config_file = link  # start() and rewrite_config() write through the link
    daemon.start()
    daemon.write_users(["erin@example.com:{PLAIN}erin-secret"])
    daemon.reload()
    daemon.wait_log("reload: users and aliases replaced")
    daemon.send("sender@example.net", ["erin@example.com"], b"Subject: l\r\n\r\nlinked\r\n")
    assert len(daemon.delivered("erin@example.com")) == 1


@needs_root
def test_read_before_the_chroot_may_lie_outside(make_jailed, jail_root):
    """DKIM keys and the Public Suffix List are read before the chroot (so
    from anywhere); Sieve runs inside it."""
    key_dir = jail_root / "dkim-outside"
    key_dir.mkdir(mode=0o755)
    made = subprocess.run([TOASTERCTL, "dkim", "keygen", "example.com", "s1", "--dir",
                           str(key_dir)], capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made
    [key] = list(key_dir.glob("*.pem"))
    key.chmod(0o644)
    daemon = make_jailed(config={"dkim_key": "example.com s1 %s" % key, "dmarc": "yes",
                                 "sieve": "yes", "spam": "no"})
    log = daemon.log()
    assert "dkim: 1 signing key(s) loaded" in log, log
    assert "public_suffix_file" not in log, log
    daemon.send("sender@example.net", ["alice@example.com"],
                b"From: <sender@example.net>\r\nDate: Sat, 05 Dec 2026 04:00:00 +0000\r\n"
                b"Message-ID: <sieve@client.example>\r\nSubject: s\r\n\r\nthrough sieve\r\n")
    assert wait_until(lambda: len(daemon.delivered("alice@example.com")) == 1, 10), \
        daemon.log()[-3000:]


@needs_root
def test_sd_notify_reaches_systemd_from_inside(make_jailed, tmp_path, monkeypatch):
    """NOTIFY_SOCKET is a path outside the chroot: the socket connected at
    start still carries READY=1, RELOADING=1 and STOPPING=1 from inside."""
    path = tmp_path / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(20)
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    daemon = make_jailed()
    assert sock.recv(4096) == b"READY=1"
    assert toasterctl_reload(daemon).returncode == 0
    assert sock.recv(4096).decode().startswith("RELOADING=1\n")
    assert sock.recv(4096) == b"READY=1"
    daemon.stop()
    assert sock.recv(4096) == b"STOPPING=1"
    sock.close()
    assert "sd_notify" not in daemon.log()
