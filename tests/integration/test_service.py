"""Running as a service: the real toasterd started as root with `user` set
(a system user made for the tests), checked from outside: the ids in
/proc/PID/status of every thread, the owner and mode of every file it made,
a port below 1024 bound before the drop, TLS keys readable by root only
loaded at start but not on a reload (root is gone for good); reload with
a renewed certificate through etc/certbot-deploy-hook.sh (a new handshake
sees it while an IMAP session from before goes on), a broken configuration
(reload fails, the old one stays), a changed listener ("needs a restart");
the journald log format, sd_notify, the example configuration and
`systemd-analyze verify` of etc/toasterd.service.
"""
import os
import pwd
import grp
import shutil
import signal
import socket
import ssl
import stat
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from conftest import LISTEN_KEYS, TOASTERCTL, TOASTERD, Toaster, free_ports, wait_until

REPO = Path(__file__).resolve().parents[2]
TEST_USER = "toaster-test"

needs_root = pytest.mark.skipif(os.geteuid() != 0,
                                reason="starting as root and dropping to a user needs root")


def service_user():
    """(uid, gid, name) of a system user for the daemon: made if missing."""
    try:
        pw = pwd.getpwnam(TEST_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--user-group", "--no-create-home",
                        "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin",
                        TEST_USER], check=True, capture_output=True)
        pw = pwd.getpwnam(TEST_USER)
    return pw.pw_uid, pw.pw_gid, TEST_USER


def make_cert(directory, name, cn):
    key = Path(directory) / (name + ".key")
    cert = Path(directory) / (name + ".pem")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=" + cn,
         "-addext", "subjectAltName=DNS:" + cn],
        check=True, capture_output=True)
    return cert, key


def served_cert(port, name="mail.example.com"):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname=name) as tls:
            return tls.getpeercert(binary_form=True)


def der(cert_path):
    return ssl.PEM_cert_to_DER_cert(Path(cert_path).read_text())


def ids(status_text, field):
    for line in status_text.splitlines():
        if line.startswith(field + ":"):
            return [int(x) for x in line.split()[1:]]
    raise AssertionError("no %s line" % field)


def write_config(daemon):
    """The daemon's file, for a start by hand (ports picked as start() does)."""
    daemon.ports = dict(zip(LISTEN_KEYS, free_ports(len(LISTEN_KEYS))))
    daemon.config_file.write_text(daemon.config_text())


def run_toasterd(daemon):
    write_config(daemon)
    return subprocess.run([TOASTERD, "-c", str(daemon.config_file)], capture_output=True,
                          text=True, timeout=30)


def toasterctl_reload(daemon):
    """`toasterctl reload` by the socket: with -c, toasterctl would read the
    (maybe broken) file itself first."""
    return subprocess.run([TOASTERCTL, "reload", "--socket",
                           str(daemon.data_dir / "toasterd.sock")],
                          capture_output=True, text=True, timeout=60)


def rewrite_config(daemon, **changes):
    """Change keys in the daemon's file (None removes), as an operator would."""
    for key, value in changes.items():
        if value is None:
            daemon.extra_config.pop(key, None)
        else:
            daemon.extra_config[key] = value
    daemon.config_file.write_text(daemon.config_text())


@pytest.fixture
def service_root():
    """A directory every user can traverse (pytest's tmp_path is root's 0700)."""
    root = Path(tempfile.mkdtemp(prefix="toaster-svc-", dir="/tmp"))
    root.chmod(0o755)
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def make_service(service_root):
    """Factory: a Toaster under service_root, its data_dir given to the user."""
    daemons = []

    def factory(config=None, start=True, chown=True, name=None):
        uid, gid, user = service_user()
        settings = {"user": user}
        settings.update(config or {})
        daemon = Toaster(service_root / (name or "d%d" % len(daemons)), config=settings)
        daemon.root.chmod(0o755)
        if chown:
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


def port_is_free(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def check_tree_owned(top, uid):
    """Every entry under top belongs to uid, with no group or other bits."""
    seen = 0
    for dirpath, dirnames, filenames in os.walk(top):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            assert st.st_uid == uid, "%s belongs to uid %d" % (path, st.st_uid)
            assert stat.S_IMODE(st.st_mode) & 0o077 == 0, "%s has mode %o" % (
                path, stat.S_IMODE(st.st_mode))
            seen += 1
    return seen


# ---- the drop ------------------------------------------------------------------


@needs_root
def test_drop_to_user_after_binding(make_service, service_root):
    uid, gid, user = service_user()
    # Keys only root can read: loaded at start, before the drop.
    key_dir = service_root / "root-only"
    key_dir.mkdir(mode=0o700)
    cert, key = make_cert(key_dir, "mail", "mail.example.com")
    key.chmod(0o600)
    config = {"tls_cert": str(cert), "tls_key": str(key)}
    low_port = 587 if port_is_free(587) else None
    if low_port is not None:
        config["submission_listen"] = "127.0.0.1:%d" % low_port
    daemon = make_service(config=config)
    assert "running as %s (uid %d, gid %d)" % (user, uid, gid) in daemon.log()

    status = Path("/proc/%d/status" % daemon.pid).read_text()
    assert ids(status, "Uid") == [uid] * 4, status  # real, effective, saved, file system
    assert ids(status, "Gid") == [gid] * 4, status
    assert 0 not in ids(status, "Groups")
    # Not dumpable after the change of ids: /proc/PID stays root's, so the
    # mail user cannot ptrace it or read its memory (TLS keys).
    assert Path("/proc/%d/status" % daemon.pid).stat().st_uid == 0
    # Every thread, not only the main one (glibc's setxid broadcast). The
    # kernel's io_uring workers ("iou-*") keep the ids they were made with
    # but run each request with its submitter's credentials.
    threads = 0
    for task in Path("/proc/%d/task" % daemon.pid).iterdir():
        comm = (task / "comm").read_text().strip()
        if comm.startswith("iou-"):
            continue
        task_status = (task / "status").read_text()
        assert ids(task_status, "Uid") == [uid] * 4, (comm, task_status)
        assert ids(task_status, "Gid") == [gid] * 4, (comm, task_status)
        threads += 1
    assert threads >= 4  # main, reactors, workers, control

    assert served_cert(daemon.ports["imaps_listen"]) == der(cert)
    if low_port is not None:
        client = daemon.raw(port=low_port)
        assert client.reply_line().startswith(b"220 ")
        client.close()

    # Mail, queue and spool files are the user's, 0600 / 0700.
    daemon.send("sender@example.net", ["alice@example.com"], b"Subject: owned\r\n\r\nbody\r\n")
    [delivered] = daemon.delivered("alice@example.com")
    assert delivered.stat().st_uid == uid
    assert check_tree_owned(daemon.data_dir, uid) >= 5

    # Root is gone for good: the same root-only key cannot be read now.
    result = toasterctl_reload(daemon)
    assert result.returncode == 1, result
    daemon.wait_log("reload failed: tls_cert: certificate %s: Permission denied" % cert)
    assert served_cert(daemon.ports["imaps_listen"]) == der(cert)

    daemon.stop()
    # The embedded store's snapshots are written at the end.
    assert (daemon.data_dir / "kv").is_dir()
    check_tree_owned(daemon.data_dir, uid)


@needs_root
def test_data_dir_of_another_user_stops_the_start(make_service):
    daemon = make_service(start=False, chown=False)  # data_dir stays root's
    proc = run_toasterd(daemon)
    assert proc.returncode == 1
    assert "data_dir %s is owned by uid 0, but toasterd runs as uid %d (%s)" % (
        daemon.data_dir, service_user()[0], TEST_USER) in proc.stderr, proc.stderr
    assert list(daemon.data_dir.iterdir()) == []


@needs_root
def test_a_directory_left_by_root_stops_the_start(make_service):
    uid, gid, _ = service_user()
    daemon = make_service(start=False)
    (daemon.data_dir / "spool").mkdir()  # as if an earlier start ran as root
    proc = run_toasterd(daemon)
    assert proc.returncode == 1
    assert "data_dir %s/spool is owned by uid 0, but toasterd runs as uid %d: chown -R %d:%d" % (
        daemon.data_dir, uid, uid, gid) in proc.stderr, proc.stderr
    os.chown(daemon.data_dir / "spool", uid, gid)
    # A root-owned file there (an operator's users file) is fine.
    (daemon.data_dir / "users").write_text("zed@example.com:{PLAIN}zed\n")
    daemon.start()
    daemon.stop()


@needs_root
def test_missing_data_dir_is_made_for_the_user(make_service):
    uid, gid, _ = service_user()
    daemon = make_service(start=False, chown=False)
    daemon.data_dir.rmdir()
    daemon.start()
    st = daemon.data_dir.stat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (uid, gid, 0o700)
    daemon.stop()


@needs_root
def test_unknown_user_and_sqpoll_are_refused(make_service):
    daemon = make_service(config={"user": "no-such-user-toaster"}, start=False)
    proc = run_toasterd(daemon)
    assert proc.returncode == 1
    assert "user = no-such-user-toaster: no such user" in proc.stderr, proc.stderr

    daemon = make_service(config={"sqpoll": "yes"}, start=False)
    proc = run_toasterd(daemon)
    assert proc.returncode == 1
    assert "sqpoll = yes cannot be combined with user" in proc.stderr, proc.stderr


@needs_root
def test_a_user_cannot_become_another(make_service):
    uid, gid, _ = service_user()
    daemon = make_service(config={"user": "nobody"}, start=False)
    write_config(daemon)

    def become_test_user():
        os.setgroups([])
        os.setgid(gid)
        os.setuid(uid)

    proc = subprocess.run([TOASTERD, "-c", str(daemon.config_file)], capture_output=True,
                          text=True, timeout=30, preexec_fn=become_test_user)
    assert proc.returncode == 1
    want = "user = nobody: toasterd runs as uid %d and can only become uid %d when started " \
        "as root" % (uid, pwd.getpwnam("nobody").pw_uid)
    assert want in proc.stderr, proc.stderr


def test_chroot_needs_user(make_toaster):
    """The rest of chroot = is in test_chroot.py."""
    daemon = make_toaster(config={"chroot": "/var/lib/toaster"}, start=False)
    proc = run_toasterd(daemon)
    assert proc.returncode == 1
    assert "chroot = /var/lib/toaster needs user" in proc.stderr, proc.stderr


# ---- reload --------------------------------------------------------------------


@needs_root
def test_certbot_renewal_reaches_new_handshakes_only(make_service, service_root):
    uid, gid, user = service_user()
    group = grp.getgrgid(gid).gr_name
    lineage = service_root / "letsencrypt" / "live" / "mail.example.com"
    lineage.mkdir(parents=True, mode=0o700)
    tls_dir = service_root / "tls"

    def renew(cn, daemon=None):
        cert, key = make_cert(lineage, "new", cn)
        shutil.move(str(cert), str(lineage / "fullchain.pem"))
        shutil.move(str(key), str(lineage / "privkey.pem"))
        env = dict(os.environ, RENEWED_LINEAGE=str(lineage), TOASTER_TLS_DIR=str(tls_dir),
                   TOASTER_GROUP=group, TOASTERCTL=TOASTERCTL,
                   TOASTER_CONF=str(daemon.config_file) if daemon else "/nonexistent")
        return subprocess.run(["sh", str(REPO / "etc" / "certbot-deploy-hook.sh")], env=env,
                              capture_output=True, text=True, timeout=60)

    # First issue: toasterd is not running yet, so the hook's reload fails.
    first = renew("first.example.com")
    assert first.returncode != 0
    key_st = (tls_dir / "mail.example.com.key").stat()
    assert (key_st.st_uid, key_st.st_gid, stat.S_IMODE(key_st.st_mode)) == (0, gid, 0o640)
    first_der = der(tls_dir / "mail.example.com.pem")

    daemon = make_service(config={"tls_cert": str(tls_dir / "mail.example.com.pem"),
                                  "tls_key": str(tls_dir / "mail.example.com.key")})
    assert served_cert(daemon.ports["imaps_listen"]) == first_der

    # Sessions from before the renewal: plain IMAP, logged in and selected,
    # and an IMAPS one that keeps the first certificate.
    imap = daemon.imap(user="alice@example.com")
    assert imap.select("INBOX")[0] == "OK"
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    old_tls = ctx.wrap_socket(socket.create_connection(("127.0.0.1", daemon.ports["imaps_listen"]),
                                                       timeout=10),
                              server_hostname="mail.example.com")
    assert old_tls.recv(1024).startswith(b"* OK")

    second = renew("second.example.com", daemon)
    assert second.returncode == 0, second
    daemon.wait_log("reload: users and aliases replaced, TLS certificates reloaded")
    second_der = der(tls_dir / "mail.example.com.pem")
    assert second_der != first_der
    assert served_cert(daemon.ports["imaps_listen"]) == second_der
    assert served_cert(daemon.ports["submissions_listen"]) == second_der

    # The sessions from before go on.
    assert imap.noop()[0] == "OK"
    daemon.send("sender@example.net", ["alice@example.com"], b"Subject: after\r\n\r\nx\r\n")
    assert imap.noop()[0] == "OK"
    typ, data = imap.select("INBOX")
    assert (typ, data) == ("OK", [b"1"]), (typ, data)
    imap.logout()
    assert old_tls.getpeercert(binary_form=True) == first_der
    old_tls.sendall(b"a1 NOOP\r\n")
    assert b"a1 OK" in old_tls.recv(1024)
    old_tls.close()
    daemon.stop()


def test_reloads_during_handshakes(make_toaster, tmp_path):
    """Certificate generations swapped and freed while handshakes run on
    every reactor (under ASan this checks the epoch wait before the free)."""
    import threading
    cert_a, key_a = make_cert(tmp_path, "a", "a.example.com")
    cert_b, key_b = make_cert(tmp_path, "b", "b.example.com")
    daemon = make_toaster(config={"tls_cert": str(cert_a), "tls_key": str(key_a),
                                  "reactor_threads": "2"})
    seen = set()
    errors = []
    stop = threading.Event()

    def handshakes():
        while not stop.is_set():
            try:
                seen.add(served_cert(daemon.ports["imaps_listen"]))
            except (OSError, ssl.SSLError) as exc:
                errors.append(exc)

    workers = [threading.Thread(target=handshakes) for _ in range(3)]
    for worker in workers:
        worker.start()
    try:
        for i in range(12):
            cert, key = (cert_b, key_b) if i % 2 == 0 else (cert_a, key_a)
            rewrite_config(daemon, tls_cert=str(cert), tls_key=str(key))
            assert toasterctl_reload(daemon).returncode == 0
    finally:
        stop.set()
        for worker in workers:
            worker.join()
    assert not errors, errors[:3]
    assert seen == {der(cert_a), der(cert_b)}
    daemon.wait_log("TLS certificates reloaded", count=12)
    daemon.stop()


def test_broken_config_keeps_the_running_one(make_toaster):
    daemon = make_toaster()
    good = daemon.config_file.read_text()
    daemon.config_file.write_text(good + "no_such_key = 1\n")
    # toasterctl -c reads the file too, and says what is wrong with it.
    by_file = subprocess.run([TOASTERCTL, "-c", str(daemon.config_file), "reload"],
                             capture_output=True, text=True, timeout=60)
    assert by_file.returncode != 0
    assert "unknown key 'no_such_key'" in by_file.stderr, by_file
    result = toasterctl_reload(daemon)
    assert result.returncode == 1, result
    daemon.wait_log("reload failed: %s:%d: unknown key 'no_such_key'; the running "
                    "configuration stays" % (daemon.config_file, good.count("\n") + 1))
    # Still serving, with the old tables.
    client = daemon.smtp()
    assert client.docmd("MAIL FROM:<a@example.net>")[0] == 250
    assert client.docmd("RCPT TO:<alice@example.com>")[0] == 250
    client.quit()
    # A bad value in a live key fails the same way, and changes nothing.
    daemon.config_file.write_text(good + "log_level = loud\n")
    assert toasterctl_reload(daemon).returncode == 1
    daemon.config_file.write_text(good)
    result = toasterctl_reload(daemon)
    assert result.returncode == 0, result
    daemon.stop()


def test_changed_listener_needs_a_restart_and_live_keys_apply(make_toaster, tmp_path):
    daemon = make_toaster()
    old_port = daemon.ports["smtp_listen"]
    [new_port] = [p for p in range(old_port + 1, old_port + 200) if port_is_free(p)][:1]
    (tmp_path / "users2").write_text("zed@example.com:{PLAIN}zed-secret\n")
    rewrite_config(daemon, smtp_listen="127.0.0.1:%d" % new_port, log_level="debug",
                   users_file=str(tmp_path / "users2"), recipient_limit="10")
    result = toasterctl_reload(daemon)
    assert result.returncode == 0, result
    daemon.wait_log("reload: smtp_listen, recipient_limit changed: needs a restart; "
                    "the running value stays")
    daemon.wait_log("reload: users_file, log_level changed")
    # The old address still serves, the new one is not bound.
    client = daemon.raw(port=old_port)
    client.greet()
    # users_file applied: zed is known now, alice is not.
    assert client.cmd("MAIL FROM:<a@example.net>")[-1].startswith(b"250")
    assert client.cmd("RCPT TO:<zed@example.com>")[-1].startswith(b"250")
    assert client.cmd("RCPT TO:<alice@example.com>")[-1].startswith(b"550")
    client.close()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", new_port), timeout=2).close()
    # log_level = debug applied: a TLS handshake is logged now.
    assert "debug: " not in daemon.log()
    served_cert(daemon.ports["imaps_listen"])
    assert wait_until(lambda: "debug: reactor" in daemon.log()), daemon.log()
    # The next reload says it again: the file still differs from what runs.
    assert toasterctl_reload(daemon).returncode == 0
    daemon.wait_log("smtp_listen, recipient_limit changed: needs a restart", count=2)
    daemon.stop()


# ---- logs and systemd ------------------------------------------------------------


def test_journal_format_when_stderr_is_the_journal(make_toaster, monkeypatch):
    daemon = make_toaster(start=False)
    daemon.log_file.touch()
    st = daemon.log_file.stat()
    monkeypatch.setenv("JOURNAL_STREAM", "%d:%d" % (st.st_dev, st.st_ino))
    daemon.start()
    daemon.signal(signal.SIGHUP)
    daemon.wait_log("reload: users and aliases replaced")
    daemon.stop()
    lines = daemon.log().splitlines()
    assert lines
    for line in lines:
        assert line[:3] in ("<3>", "<4>", "<6>", "<7>"), line
        assert "toasterd[" not in line, line
    assert any(line.startswith("<6>toasterd ") and " started: " in line for line in lines)
    assert "<6>stopped" in lines


def test_plain_format_when_journal_stream_is_another_file(make_toaster, monkeypatch):
    daemon = make_toaster(start=False)
    daemon.log_file.touch()
    st = daemon.log_file.stat()
    monkeypatch.setenv("JOURNAL_STREAM", "%d:%d" % (st.st_dev, st.st_ino + 1))
    daemon.start()
    daemon.stop()
    for line in daemon.log().splitlines():
        assert line.startswith("toasterd[%d]: " % daemon.pid), line


def test_log_format_key_and_live_switch(make_toaster):
    daemon = make_toaster(config={"log_format": "journal"})
    assert daemon.log().startswith("<")
    rewrite_config(daemon, log_format="plain")
    daemon.reload()
    daemon.wait_log("toasterd[%d]: reload: users and aliases replaced" % daemon.pid)
    daemon.stop()
    assert daemon.log().splitlines()[-1] == "toasterd[%d]: stopped" % daemon.pid


def test_sd_notify_ready_reloading_stopping(make_toaster, tmp_path, monkeypatch):
    path = tmp_path / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(20)
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    daemon = make_toaster()
    assert sock.recv(4096) == b"READY=1"
    daemon.signal(signal.SIGHUP)
    reloading = sock.recv(4096).decode()
    assert reloading.startswith("RELOADING=1\nMONOTONIC_USEC="), reloading
    assert int(reloading.rpartition("=")[2]) > 0
    assert sock.recv(4096) == b"READY=1"
    daemon.stop()
    assert sock.recv(4096) == b"STOPPING=1"
    sock.close()


def test_example_configuration_parses():
    proc = subprocess.run([TOASTERD, "-n", "-c", str(REPO / "etc" / "toasterd.conf.example")],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert "user = vmail\n" in proc.stdout
    assert "smtp_listen = 0.0.0.0:25, [::]:25\n" in proc.stdout


@pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                    reason="systemd-analyze is not installed")
def test_systemd_unit_verifies(tmp_path):
    unit = (REPO / "etc" / "toasterd.service").read_text()
    # The unit names the installed binaries; verify against the built ones.
    unit = unit.replace("/usr/local/bin/toasterd", TOASTERD)
    unit = unit.replace("/usr/local/bin/toasterctl", TOASTERCTL)
    path = tmp_path / "toasterd.service"
    path.write_text(unit)
    proc = subprocess.run(["systemd-analyze", "verify", str(path)], capture_output=True,
                          text=True, timeout=60)
    mine = [line for line in (proc.stdout + proc.stderr).splitlines()
            if "toasterd.service" in line]
    assert proc.returncode == 0 and not mine, proc.stdout + proc.stderr



MDWE_WRAPPER = """#!/usr/bin/python3
# PR_SET_MDWE (65), PR_MDWE_REFUSE_EXEC_GAIN (1): what MemoryDenyWriteExecute=
# asks of systemd, done by the kernel itself; kept across execve.
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl(65, 1, 0, 0, 0) != 0:
    sys.exit("prctl(PR_SET_MDWE): errno %d" % ctypes.get_errno())
if len(sys.argv) > 1 and sys.argv[1].startswith("/"):
    os.execv(sys.argv[1], sys.argv[1:])  # a program named: run it
os.execv("@REAL@", ["@REAL@"] + sys.argv[1:])  # else toasterd with these arguments
"""


def test_no_memory_is_writable_and_executable(make_toaster, tmp_path, monkeypatch):
    """MemoryDenyWriteExecute=yes in the unit: toasterd with ClamAV scanning
    runs under the kernel's own refusal of W+X memory (Linux 6.3+)."""
    import conftest
    from test_clamav import EICAR, data_reply, message
    wrapper = tmp_path / "mdwe"
    wrapper.write_text(MDWE_WRAPPER.replace("@REAL@", TOASTERD))
    wrapper.chmod(0o755)
    probe = subprocess.run([str(wrapper), "/bin/true"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip("the kernel has no PR_SET_MDWE: " + probe.stderr.strip())
    monkeypatch.setattr(conftest, "TOASTERD", str(wrapper))
    daemon = make_toaster(config={"clamav": "yes"})
    daemon.wait_log("clamav: engine 1 loaded", timeout=60)
    assert "Name:\ttoasterd" in Path("/proc/%d/status" % daemon.pid).read_text()
    line = data_reply(daemon, message(EICAR, "eicar.com", "eicar"))
    assert line.startswith(b"554 5.7.0 "), line
    daemon.stop()
