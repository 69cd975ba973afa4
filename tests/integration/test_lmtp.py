"""LMTP (RFC 2033) through the real toasterd, as a front end (Postfix's or
Exim's lmtp transport) would drive it: smtplib.LMTP over TCP and over the
Unix socket, and raw bytes where smtplib would not send them.

Covered: LHLO and its extensions (EHLO and HELO are 500); one reply per
accepted recipient after the final dot, in RCPT order, each that
recipient's own outcome (a Sieve reject -> 550 5.7.1, a broken mailbox ->
451, the others 250 with their Maildir files present); unknown users and
remote addresses refused at RCPT; DATA without recipients is 503;
pipelining, also past the final dot; BDAT; a client that vanishes mid-DATA
leaves nothing delivered; the Received and Return-Path headers; the Unix
socket's mode, its stale file replaced at start and its removal at stop;
many recipients in one transaction.
"""
import os
import socket
import stat
import time

import pytest

from conftest import free_ports, wait_until

import smtplib


def put_script(t, user, text):
    """The user's active script, as Pigeonhole keeps it on disk."""
    local, domain = user.split("@")
    home = t.data_dir / "mail" / domain / local
    (home / "sieve").mkdir(parents=True, exist_ok=True)
    (home / "sieve" / "test.sieve").write_text(text)
    link = home / ".dovecot.sieve"
    if link.is_symlink() or link.exists():
        link.unlink()
    os.symlink("sieve/test.sieve", link)


REJECT = 'require "reject";\r\nreject "no thanks";\r\n'

MESSAGE = (b"From: <sender@front.test>\r\nTo: <all@example.com>\r\nSubject: via lmtp\r\n"
           b"Date: Fri, 04 Dec 2026 10:00:00 +0000\r\nMessage-ID: <lmtp.1@front.test>\r\n"
           b"\r\nhello over lmtp\r\n")


@pytest.fixture
def lmtp(make_toaster, tmp_path):
    """A daemon listening for LMTP on a TCP port and a Unix socket."""
    def start(config=None, users=None, aliases=None):
        (port,) = free_ports(1)
        path = str(tmp_path / "lmtp.sock")
        settings = {"lmtp_listen": "127.0.0.1:%d, unix:%s" % (port, path)}
        settings.update(config or {})
        t = make_toaster(config=settings, users=users, aliases=aliases)
        t.lmtp_port = port
        t.lmtp_path = path
        return t
    return start


def connect(t, where):
    host, port = (t.lmtp_path, 0) if where == "unix" else ("127.0.0.1", t.lmtp_port)
    client = smtplib.LMTP(host, port, local_hostname="front.test", timeout=15)
    code, _ = client.ehlo()  # smtplib.LMTP sends LHLO here
    assert code == 250
    return client


def lmtp_data(client, message, rcpt_count):
    """DATA, then every recipient's reply (smtplib reads only the first)."""
    first = client.data(message)
    return [first] + [client.getreply() for _ in range(rcpt_count - 1)]


class RawLMTP:
    """Bytes over TCP or the Unix socket, for pipelining and BDAT."""

    def __init__(self, t, where, timeout=15):
        if where == "unix":
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(timeout)
            self.sock.connect(t.lmtp_path)
        else:
            self.sock = socket.create_connection(("127.0.0.1", t.lmtp_port), timeout=timeout)
        self.buf = b""

    def send(self, data):
        self.sock.sendall(data.encode() if isinstance(data, str) else data)

    def line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed; unread %r" % self.buf)
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line

    def reply(self):
        lines = [self.line()]
        while lines[-1][3:4] == b"-":
            lines.append(self.line())
        return lines

    def replies(self, count):
        return [self.reply()[-1] for _ in range(count)]

    def close(self):
        self.sock.close()


def new_files(t, user):
    return t.delivered(user)


# ---- greeting --------------------------------------------------------------------


@pytest.mark.parametrize("where", ["tcp", "unix"])
def test_lhlo_ok_ehlo_and_helo_refused(lmtp, where):
    t = lmtp()
    raw = RawLMTP(t, where)
    assert raw.reply() == [b"220 mx.example.com LMTP toaster"]
    raw.send("EHLO front.test\r\nHELO front.test\r\n")
    assert raw.replies(2) == [b"500 5.5.1 Error: this is LMTP, send LHLO"] * 2
    raw.send("LHLO front.test\r\n")
    lines = raw.reply()
    assert lines[0] == b"250-mx.example.com"
    assert lines[-1] == b"250 CHUNKING"
    words = {l[4:].split(b" ")[0] for l in lines[1:]}
    assert {b"PIPELINING", b"SIZE", b"8BITMIME", b"ENHANCEDSTATUSCODES", b"SMTPUTF8",
            b"CHUNKING"} <= words
    # No TLS and no AUTH: a trusted front end on loopback or a Unix socket.
    assert b"STARTTLS" not in words and b"AUTH" not in words
    raw.send("STARTTLS\r\nQUIT\r\n")
    assert raw.replies(2) == [b"502 5.5.1 Error: command not implemented", b"221 2.0.0 Bye"]
    raw.close()


# ---- one reply per recipient --------------------------------------------------------


@pytest.mark.parametrize("where", ["tcp", "unix"])
def test_three_recipients_one_rejected_by_sieve(lmtp, where):
    t = lmtp(config={"sieve": "yes", "clamav": "no"})
    put_script(t, "bob@example.com", REJECT)
    client = connect(t, where)
    assert client.mail("sender@front.test")[0] == 250
    for rcpt in ("alice@example.com", "bob@example.com", "carol@example.org"):
        assert client.rcpt(rcpt)[0] == 250
    replies = lmtp_data(client, MESSAGE, 3)
    assert replies[0][0] == 250 and b"<alice@example.com>" in replies[0][1]
    assert replies[1] == (550, b"5.7.1 no thanks")
    assert replies[2][0] == 250 and b"<carol@example.org>" in replies[2][1]
    client.quit()
    for user in ("alice@example.com", "carol@example.org"):
        files = t.delivered(user)
        assert len(files) == 1, user
        stored = files[0].read_bytes()
        assert stored.startswith(b"Return-Path: <sender@front.test>\r\nReceived: from front.test")
        assert b"with LMTP id " in stored
        assert stored.endswith(MESSAGE)
    assert t.delivered("bob@example.com") == []
    # A reject over LMTP is the 550 itself: no rejection message is made.
    assert t.queue_ids() == []
    assert t.delivered("sender@front.test") == []
    # The spool file is gone once every recipient is done.
    assert wait_until(lambda: t.spool_files() == [], 5), t.spool_files()


@pytest.mark.parametrize("where", ["tcp", "unix"])
def test_broken_mailbox_fails_only_its_recipient(lmtp, where):
    t = lmtp()
    # dave's Maildir cannot take mail: new/ is a file (root ignores modes).
    maildir = t.maildir("dave@example.org")
    (maildir / "tmp").mkdir(parents=True)
    (maildir / "cur").mkdir()
    (maildir / "new").write_bytes(b"not a directory")
    client = connect(t, where)
    assert client.mail("sender@front.test")[0] == 250
    rcpts = ("alice@example.com", "dave@example.org", "carol@example.org")
    for rcpt in rcpts:
        assert client.rcpt(rcpt)[0] == 250
    replies = lmtp_data(client, MESSAGE, 3)
    assert [code for code, _ in replies] == [250, 451, 250], replies
    assert replies[1][1].startswith(b"4.3.0 <dave@example.org>")
    client.quit()
    assert len(t.delivered("alice@example.com")) == 1
    assert len(t.delivered("carol@example.org")) == 1
    # Nothing half-made for dave, and the front end will retry him alone.
    assert (maildir / "new").read_bytes() == b"not a directory"
    assert list((maildir / "tmp").iterdir()) == []


def test_named_spool_file_shared_then_removed(lmtp):
    """With named spool files (spool_unnamed = no) each recipient's message
    links the one file by its fd; the name goes once all are done."""
    t = lmtp(config={"spool_unnamed": "no", "sieve": "yes", "clamav": "no"})
    put_script(t, "bob@example.com", REJECT)
    client = connect(t, "tcp")
    assert client.mail("sender@front.test")[0] == 250
    for rcpt in ("alice@example.com", "bob@example.com", "carol@example.org"):
        assert client.rcpt(rcpt)[0] == 250
    replies = lmtp_data(client, MESSAGE, 3)
    assert [code for code, _ in replies] == [250, 550, 250], replies
    client.quit()
    alice = t.delivered("alice@example.com")
    carol = t.delivered("carol@example.org")
    assert len(alice) == 1 and len(carol) == 1
    # One file, two names (hard links), and the spool's name is gone.
    assert os.stat(alice[0]).st_ino == os.stat(carol[0]).st_ino
    assert wait_until(lambda: t.spool_files() == [], 5), t.spool_files()
    assert os.stat(alice[0]).st_nlink == 2


def test_unknown_and_remote_recipients_refused_at_rcpt(lmtp):
    t = lmtp(config={"mynetworks": "127.0.0.0/8"})  # LMTP never relays, whatever it says
    client = connect(t, "tcp")
    assert client.mail("sender@front.test")[0] == 250
    code, text = client.rcpt("nobody@example.com")
    assert code == 550 and text.startswith(b"5.1.1 <nobody@example.com>")
    code, text = client.rcpt("someone@remote.test")
    assert code == 550 and text.startswith(b"5.1.1 <someone@remote.test>")
    assert b"LMTP does not relay" in text
    assert client.rcpt("alice@example.com")[0] == 250
    replies = lmtp_data(client, MESSAGE, 1)
    assert replies[0][0] == 250
    client.quit()
    assert len(t.delivered("alice@example.com")) == 1
    assert t.queue_ids() == []


def test_data_without_recipients_is_503(lmtp):
    t = lmtp()
    client = connect(t, "tcp")
    assert client.mail("sender@front.test")[0] == 250
    assert client.rcpt("nobody@example.com")[0] == 550
    code, text = client.docmd("DATA")
    assert code == 503
    client.quit()


def test_alias_recipient_is_one_outcome(lmtp):
    """team@ reaches alice and bob: one recipient, one reply, two copies."""
    t = lmtp()
    client = connect(t, "unix")
    assert client.mail("sender@front.test")[0] == 250
    assert client.rcpt("team@example.com")[0] == 250
    assert client.rcpt("carol@example.org")[0] == 250
    replies = lmtp_data(client, MESSAGE, 2)
    assert [code for code, _ in replies] == [250, 250]
    assert b"<team@example.com>" in replies[0][1]
    client.quit()
    for user in ("alice@example.com", "bob@example.com", "carol@example.org"):
        assert len(t.delivered(user)) == 1, user


# ---- pipelining, BDAT, vanishing clients -------------------------------------------------


@pytest.mark.parametrize("where", ["tcp", "unix"])
def test_pipelined_transactions(lmtp, where):
    t = lmtp()
    raw = RawLMTP(t, where)
    raw.reply()
    raw.send("LHLO front.test\r\nMAIL FROM:<a@front.test>\r\nRCPT TO:<alice@example.com>\r\n"
             "RCPT TO:<nobody@example.com>\r\nRCPT TO:<bob@example.com>\r\nDATA\r\n")
    raw.reply()  # LHLO
    got = raw.replies(5)
    assert got[0] == b"250 2.1.0 Ok"
    assert got[1] == b"250 2.1.5 Ok"
    assert got[2].startswith(b"550 5.1.1 <nobody@example.com>")
    assert got[3] == b"250 2.1.5 Ok"
    assert got[4].startswith(b"354 ")
    # The body, then the next transaction pipelined behind the final dot.
    raw.send(b"Subject: one\r\n\r\nfirst\r\n.\r\n"
             b"MAIL FROM:<b@front.test>\r\nRCPT TO:<carol@example.org>\r\nDATA\r\n")
    got = raw.replies(5)
    assert got[0].startswith(b"250 2.0.0 <alice@example.com>")
    assert got[1].startswith(b"250 2.0.0 <bob@example.com>")
    assert got[2:4] == [b"250 2.1.0 Ok", b"250 2.1.5 Ok"]
    assert got[4].startswith(b"354 ")
    raw.send(b"Subject: two\r\n\r\nsecond\r\n.\r\nQUIT\r\n")
    got = raw.replies(2)
    assert got[0].startswith(b"250 2.0.0 <carol@example.org>")
    assert got[1] == b"221 2.0.0 Bye"
    raw.close()
    assert len(t.delivered("alice@example.com")) == 1
    assert len(t.delivered("bob@example.com")) == 1
    assert b"second" in t.delivered("carol@example.org")[0].read_bytes()


@pytest.mark.parametrize("where", ["tcp", "unix"])
def test_bdat(lmtp, where):
    t = lmtp()
    raw = RawLMTP(t, where)
    raw.reply()
    raw.send("LHLO front.test\r\nMAIL FROM:<a@front.test>\r\nRCPT TO:<alice@example.com>\r\n"
             "RCPT TO:<carol@example.org>\r\n")
    raw.reply()
    assert raw.replies(3) == [b"250 2.1.0 Ok", b"250 2.1.5 Ok", b"250 2.1.5 Ok"]
    part1 = b"Subject: chunks\r\n\r\n"
    part2 = b"in two chunks\r\n"
    raw.send(b"BDAT %d\r\n" % len(part1) + part1)
    assert raw.replies(1) == [b"250 2.0.0 Ok: %d octets received" % len(part1)]
    raw.send(b"BDAT %d LAST\r\n" % len(part2) + part2)
    got = raw.replies(2)
    assert got[0].startswith(b"250 2.0.0 <alice@example.com>")
    assert got[1].startswith(b"250 2.0.0 <carol@example.org>")
    raw.close()
    for user in ("alice@example.com", "carol@example.org"):
        assert t.delivered(user)[0].read_bytes().endswith(part1 + part2)


@pytest.mark.parametrize("where", ["tcp", "unix"])
def test_client_vanishing_mid_data_delivers_nothing(lmtp, where):
    t = lmtp()
    raw = RawLMTP(t, where)
    raw.reply()
    raw.send("LHLO front.test\r\nMAIL FROM:<a@front.test>\r\nRCPT TO:<alice@example.com>\r\n"
             "RCPT TO:<bob@example.com>\r\nDATA\r\n")
    raw.reply()
    assert raw.replies(4)[-1].startswith(b"354 ")
    raw.send(b"Subject: cut\r\n\r\n" + b"x" * 100000 + b"\r\n")  # no final dot
    raw.close()
    t.wait_log("disconnect from [%s]" % ("unix" if where == "unix" else "127.0.0.1"),
               count=2 if where == "tcp" else 1)
    time.sleep(0.3)
    assert t.all_delivered() == []
    assert wait_until(lambda: t.spool_files() == [], 5), t.spool_files()


def test_many_recipients_one_transaction(lmtp):
    users = ["u%03d@example.com:{PLAIN}x" % i for i in range(300)]
    t = lmtp(users=users, aliases=[])
    client = connect(t, "unix")
    assert client.mail("sender@front.test")[0] == 250
    for i in range(300):
        assert client.rcpt("u%03d@example.com" % i)[0] == 250
    replies = lmtp_data(client, MESSAGE, 300)
    assert all(code == 250 for code, _ in replies)
    assert [text.split(b"<")[1].split(b">")[0] for _, text in replies] == \
        [b"u%03d@example.com" % i for i in range(300)]
    assert client.noop()[0] == 250
    client.quit()
    for i in (0, 150, 299):
        assert len(t.delivered("u%03d@example.com" % i)) == 1


# ---- the Unix socket ---------------------------------------------------------------------


def test_unix_socket_mode_stale_file_and_removal(make_toaster, tmp_path):
    path = tmp_path / "lmtp.sock"
    # A stale socket from an earlier run is replaced.
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))
    stale.close()
    t = make_toaster(config={"lmtp_listen": "unix:%s" % path, "lmtp_socket_mode": "0600"})
    st = os.stat(path)
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o600
    client = smtplib.LMTP(str(path), local_hostname="front.test", timeout=15)
    assert client.ehlo()[0] == 250
    client.quit()
    t.stop()
    assert not path.exists()


def test_unix_socket_path_taken_by_a_file_is_left_alone(make_toaster, tmp_path):
    path = tmp_path / "lmtp.sock"
    path.write_text("precious")
    t = make_toaster(config={"lmtp_listen": "unix:%s" % path}, start=False)
    with pytest.raises(AssertionError):
        t.start()
    assert path.read_text() == "precious"
    assert "not a socket" in t.log()


def test_unix_socket_only_for_lmtp(make_toaster, tmp_path):
    t = make_toaster(config={"imap_listen": "unix:%s" % (tmp_path / "imap.sock")},
                     start=False)
    with pytest.raises(AssertionError):
        t.start()
    assert "unix: sockets are for lmtp_listen only" in t.log()


# ---- a real Postfix in front (its lmtp client over the Unix socket) --------------------

POSTFIX_MASTER_CF = """\
127.0.0.1:{port} inet n - n - - smtpd
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""

POSTFIX_MAIN_CF = """\
compatibility_level = 3.6
queue_directory = {base}/queue
data_directory = {base}/data
mail_owner = postfix
setgid_group = postdrop
myhostname = front.lmtp-test.example
mydestination =
relay_domains =
local_recipient_maps =
alias_maps =
alias_database =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
virtual_mailbox_domains = example.com example.org
virtual_mailbox_maps = texthash:{base}/etc/vmailbox
virtual_transport = lmtp:unix:{socket}
smtp_dns_support_level = disabled
lmtp_host_lookup = native
biff = no
maillog_file = {base}/postfix.log
maillog_file_prefixes = {base}
"""


@pytest.mark.skipif(not os.access("/usr/sbin/postfix", os.X_OK), reason="no Postfix")
def test_postfix_front_end_over_unix_socket(make_toaster):
    """Postfix's virtual_transport = lmtp:unix:... hands mail to toasterd:
    two users get it, the third's Sieve reject becomes Postfix's bounce, and
    the fourth's broken mailbox (451) is deferred by Postfix alone."""
    import shutil
    import subprocess
    import tempfile

    import grp

    # Postfix's unprivileged processes must reach its queue and the socket:
    # a directory of their own under /tmp, not pytest's private one.
    base = tempfile.mkdtemp(prefix="toaster-lmtp-postfix-", dir="/tmp")
    os.chmod(base, 0o755)
    # The README's recipe: the socket in a set-gid directory of group
    # postfix, so it is made with that group, and the default mode 0660.
    sock_dir = os.path.join(base, "toaster")
    os.mkdir(sock_dir)
    os.chown(sock_dir, -1, grp.getgrnam("postfix").gr_gid)
    os.chmod(sock_dir, 0o2750)
    socket_path = os.path.join(sock_dir, "lmtp")
    t = make_toaster(config={"lmtp_listen": "unix:%s" % socket_path,
                             "sieve": "yes", "clamav": "no"})
    st = os.stat(socket_path)
    assert stat.S_IMODE(st.st_mode) == 0o660
    assert st.st_gid == grp.getgrnam("postfix").gr_gid
    put_script(t, "bob@example.com", REJECT)
    broken = t.maildir("dave@example.org")
    broken.mkdir(parents=True)
    (broken / "new").write_bytes(b"not a directory")
    etc = os.path.join(base, "etc")
    os.makedirs(os.path.join(base, "queue"))
    os.makedirs(etc)
    (port,) = free_ports(1)
    with open(os.path.join(etc, "main.cf"), "w") as f:
        f.write(POSTFIX_MAIN_CF.format(base=base, socket=socket_path))
    with open(os.path.join(etc, "master.cf"), "w") as f:
        f.write(POSTFIX_MASTER_CF.format(port=port))
    with open(os.path.join(etc, "vmailbox"), "w") as f:
        f.write("alice@example.com OK\nbob@example.com OK\ncarol@example.org OK\n"
                "dave@example.org OK\n")
    log = os.path.join(base, "postfix.log")
    started = subprocess.run(["/usr/sbin/postfix", "-c", etc, "start"],
                             capture_output=True, text=True, timeout=60)
    try:
        assert started.returncode == 0, started.stdout + started.stderr

        def smtpd_up():
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return True
            except OSError:
                return False
        assert wait_until(smtpd_up, 20), "postfix smtpd did not come up"
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as s:
            s.ehlo("client.lmtp-test.example")
            refused = s.sendmail("sender@front.test",
                                 ["alice@example.com", "bob@example.com", "carol@example.org",
                                  "dave@example.org"], MESSAGE)
            assert refused == {}
        assert wait_until(lambda: len(t.delivered("alice@example.com")) == 1 and
                          len(t.delivered("carol@example.org")) == 1, 30), \
            open(log).read() if os.path.exists(log) else "no postfix log"

        def postfix_log():
            return open(log).read() if os.path.exists(log) else ""
        assert wait_until(lambda: "to=<bob@example.com>" in postfix_log() and
                          "to=<dave@example.org>" in postfix_log(), 30), postfix_log()
        text = postfix_log()
        bob = [l for l in text.splitlines() if "to=<bob@example.com>" in l]
        assert any("status=bounced" in l and "550 5.7.1 no thanks" in l for l in bob), bob
        dave = [l for l in text.splitlines() if "to=<dave@example.org>" in l]
        assert any("status=deferred" in l and "451 4.3.0 <dave@example.org>" in l
                   for l in dave), dave
        alice = [l for l in text.splitlines() if "to=<alice@example.com>" in l]
        assert any("status=sent (250 2.0.0 <alice@example.com> Ok: delivered as" in l
                   for l in alice), alice
        stored = t.delivered("alice@example.com")[0].read_bytes()
        assert stored.startswith(b"Return-Path: <sender@front.test>\r\n")
        assert b"by mx.example.com (toaster) with LMTP id " in stored
        assert b"by front.lmtp-test.example (Postfix)" in stored  # the front end's own trace
        assert t.delivered("bob@example.com") == []
    finally:
        subprocess.run(["/usr/sbin/postfix", "-c", etc, "stop"], capture_output=True,
                       timeout=60)
        # The master exits a moment after "stop" (its pid file stays): wait
        # for the process before removing its directories.
        pid_file = os.path.join(base, "queue", "pid", "master.pid")
        try:
            with open(pid_file) as f:
                master = int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            master = None

        def master_gone():
            try:
                os.kill(master, 0)
                return False
            except OSError:
                return True
        if master is not None:
            wait_until(master_gone, 15)
        shutil.rmtree(base, ignore_errors=True)


def test_ipv6_loopback_listener(make_toaster):
    (port,) = free_ports(1)
    t = make_toaster(config={"lmtp_listen": "[::1]:%d" % port})
    client = smtplib.LMTP("::1", port, local_hostname="front.test", timeout=15)
    assert client.ehlo()[0] == 250
    assert client.mail("sender@front.test")[0] == 250
    assert client.rcpt("carol@example.org")[0] == 250
    assert lmtp_data(client, MESSAGE, 1)[0][0] == 250
    client.quit()
    stored = t.delivered("carol@example.org")[0].read_bytes()
    assert b"Received: from front.test ([IPv6:::1])" in stored
    assert b"for <carol@example.org>;" in stored


def test_unix_socket_path_bounds(make_toaster, tmp_path):
    """sun_path holds 107 bytes and a NUL: one more is refused at start,
    as is a relative path, and so is a mode that is not octal."""
    long_path = "/tmp/" + "x" * 103  # 108 bytes
    for value, key in (("unix:" + long_path, "lmtp_listen"), ("unix:relative.sock", "lmtp_listen"),
                       ("0669", "lmtp_socket_mode"), ("660", None)):
        config = {key: value} if key else {"lmtp_socket_mode": value,
                                           "lmtp_listen": "unix:%s" % (tmp_path / "ok.sock")}
        t = make_toaster(config=config, start=False, name="bounds-%s" % len(value))
        if key is None:
            t.start()  # "660" is read as octal too: rw for owner and group
            assert stat.S_IMODE(os.stat(tmp_path / "ok.sock").st_mode) == 0o660
            t.stop()
            continue
        with pytest.raises(AssertionError):
            t.start()
        assert ("bad listen address" in t.log()) or ("lmtp_socket_mode" in t.log()), t.log()
    # 107 bytes is the most that fits.
    edge = tmp_path / "e"
    edge.mkdir()
    path = str(edge) + "/" + "y" * (107 - len(str(edge)) - 1)
    assert len(path) == 107
    t = make_toaster(config={"lmtp_listen": "unix:" + path}, name="edge")
    assert stat.S_ISSOCK(os.stat(path).st_mode)
    t.stop()
