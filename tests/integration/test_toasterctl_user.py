"""`toasterctl user add|passwd|del|list` against a running toasterd: the
password comes from a pipe or --password-file (never argv), the users file is
rewritten with every other line kept byte for byte, the daemon reloads over
the control socket, and the result is checked with real clients: IMAP LOGIN
(imaplib) with the old and new passwords, and SMTP RCPT (smtplib) to a
deleted user refused with 550 5.1.1."""

import imaplib
import subprocess

from conftest import DEFAULT_USERS, LISTEN_KEYS, TOASTERCTL


def ctl(toaster, *args, password=None):
    toaster.config_file.write_text(toaster.config_text())
    return subprocess.run(
        [TOASTERCTL, "-c", str(toaster.config_file), *args],
        input=password if password is not None else "",
        capture_output=True,
        text=True,
        timeout=60,
    )


def imap_login(toaster, user, password):
    """True when LOGIN succeeds, False when the server says NO."""
    client = imaplib.IMAP4("127.0.0.1", toaster.ports["imap_listen"], timeout=10)
    try:
        client.login(user, password)
    except imaplib.IMAP4.error:
        return False
    finally:
        try:
            client.logout()
        except (imaplib.IMAP4.error, OSError):
            pass
    return True


def rcpt_code(toaster, address):
    client = toaster.smtp()
    try:
        code, _ = client.mail("sender@far.example")
        assert code == 250
        code, message = client.rcpt(address)
        return code, message
    finally:
        client.quit()


def test_add_passwd_del_with_imap_and_smtp(make_toaster):
    toaster = make_toaster()
    before = toaster.users_file.read_bytes()

    out = ctl(toaster, "user", "add", "Erin@Example.com", password="first-pass\n")
    assert out.returncode == 0, out.stderr
    assert "erin@example.com added" in out.stdout
    assert "toasterd reloaded its configuration, certificates, users and aliases (5 users)" in out.stdout
    after = toaster.users_file.read_bytes()
    # The old lines are untouched; one line is appended, hashed with yescrypt.
    assert after.startswith(before)
    added = after[len(before):]
    assert added.startswith(b"erin@example.com:{CRYPT}$y$"), added
    assert added.endswith(b"\n") and added.count(b"\n") == 1
    assert b"first-pass" not in after
    assert imap_login(toaster, "erin@example.com", "first-pass")
    assert rcpt_code(toaster, "erin@example.com")[0] == 250

    # New password from a file; the old one stops working at once.
    pw_file = toaster.root / "pw"
    pw_file.write_text("second-pass\n")
    out = ctl(toaster, "user", "passwd", "--password-file", str(pw_file), "erin@example.com")
    assert out.returncode == 0, out.stderr
    assert "toasterd reloaded" in out.stdout
    assert not imap_login(toaster, "erin@example.com", "first-pass")
    assert imap_login(toaster, "erin@example.com", "second-pass")
    # Others are not disturbed.
    assert imap_login(toaster, "alice@example.com", "alice-secret")

    out = ctl(toaster, "user", "list")
    assert out.returncode == 0, out.stderr
    names = [line.partition(":")[0] for line in DEFAULT_USERS] + ["erin@example.com"]
    assert out.stdout.splitlines() == names
    assert "$" not in out.stdout and "{" not in out.stdout

    out = ctl(toaster, "user", "del", "erin@example.com")
    assert out.returncode == 0, out.stderr
    assert "erin@example.com deleted" in out.stdout
    assert toaster.users_file.read_bytes() == before
    assert not imap_login(toaster, "erin@example.com", "second-pass")
    code, message = rcpt_code(toaster, "erin@example.com")
    assert code == 550 and message.startswith(b"5.1.1"), (code, message)
    assert imap_login(toaster, "bob@example.com", "bob-secret")


def test_other_schemes_log_in(make_toaster):
    toaster = make_toaster()
    for user, scheme, prefix in (
        ("sha@example.com", "SHA512-CRYPT", "{SHA512-CRYPT}$6$"),
        ("blf@example.com", "BLF-CRYPT", "{BLF-CRYPT}$2y$"),
    ):
        out = ctl(toaster, "user", "add", "--scheme", scheme, user, password="pw-" + scheme)
        assert out.returncode == 0, out.stderr
        line = [l for l in toaster.users_file.read_text().splitlines() if l.startswith(user)]
        assert line and line[0].startswith(user + ":" + prefix), line
        assert imap_login(toaster, user, "pw-" + scheme)
        assert not imap_login(toaster, user, "pw-wrong")


def test_refusals(make_toaster):
    toaster = make_toaster()
    before = toaster.users_file.read_bytes()

    out = ctl(toaster, "user", "add", "alice@EXAMPLE.com", password="x\n")
    assert out.returncode == 1
    assert "already in" in out.stderr
    for bad in ("alice", "a:b@example.com", "a b@example.com", ".a@example.com",
                "a@example.com.", "#a@example.com", "a@b@example.com"):
        out = ctl(toaster, "user", "add", bad, password="x\n")
        assert out.returncode == 1, bad
        assert "not a usable user name" in out.stderr, out.stderr
    # The password is never an argument: a second operand is a usage error.
    out = ctl(toaster, "user", "add", "new@example.com", "secret-on-argv", password="x\n")
    assert out.returncode == 2
    out = ctl(toaster, "user", "add", "new@example.com", password="")
    assert out.returncode == 1 and "no password" in out.stderr
    out = ctl(toaster, "user", "add", "new@example.com", password="\n")
    assert out.returncode == 1 and "empty" in out.stderr
    out = ctl(toaster, "user", "add", "--scheme", "MD5", "new@example.com", password="x\n")
    assert out.returncode == 2 and "unknown scheme" in out.stderr
    out = ctl(toaster, "user", "passwd", "nobody@example.com", password="x\n")
    assert out.returncode == 1 and "no such user" in out.stderr
    out = ctl(toaster, "user", "del", "nobody@example.com")
    assert out.returncode == 1 and "no such user" in out.stderr
    assert toaster.users_file.read_bytes() == before
    assert not list(toaster.root.glob("users.tmp*"))


def test_without_a_daemon_and_reload(make_toaster):
    toaster = make_toaster(start=False)
    toaster.ports = {key: 20000 + i for i, key in enumerate(LISTEN_KEYS)}  # not started
    out = ctl(toaster, "user", "add", "frank@example.com", password="frank-pass\n")
    assert out.returncode == 0, out.stderr
    assert "toasterd is not running" in out.stdout
    out = ctl(toaster, "reload")
    assert out.returncode == 1 and "not running" in out.stderr

    toaster.start()
    assert imap_login(toaster, "frank@example.com", "frank-pass")
    # An edit by hand plus `toasterctl reload` (as SIGHUP would).
    with open(toaster.users_file, "a") as f:
        f.write("gina@example.com:{PLAIN}gina-pass\n")
    out = ctl(toaster, "reload")
    assert out.returncode == 0, out.stderr
    assert "(6 users)" in out.stdout
    assert imap_login(toaster, "gina@example.com", "gina-pass")
    # A broken file: the reload fails and the daemon keeps the old tables.
    with open(toaster.users_file, "a") as f:
        f.write("broken line without at sign\n")
    out = ctl(toaster, "reload")
    assert out.returncode == 1 and "keeps what it had" in out.stderr
    assert imap_login(toaster, "gina@example.com", "gina-pass")
