"""IMAP session basics against the real toasterd: greeting, CAPABILITY before
and after login, LOGIN and AUTHENTICATE PLAIN (with and without an initial
response) with good and bad credentials, LOGOUT, ID, ENABLE, NAMESPACE,
commands given in the wrong state, and the log line of a failed login.
"""

import base64
import re

import pytest

from conftest import RawIMAP, wait_until

PRE_CAPS = (b"IMAP4rev1 IMAP4rev2 LITERAL+ ENABLE ID IDLE NAMESPACE UNSELECT STARTTLS SASL-IR"
            b" AUTH=PLAIN")
AUTH_CAPS = set(
    b"IMAP4rev1 IMAP4rev2 LITERAL+ ENABLE ID IDLE NAMESPACE UNSELECT UTF8=ACCEPT CHILDREN "
    b"SPECIAL-USE LIST-EXTENDED LIST-STATUS ESEARCH BINARY CONDSTORE QRESYNC".split()
)


def plain(authzid, user, password):
    return base64.b64encode(b"%s\0%s\0%s" % (authzid, user, password))


def caps_of(line):
    m = re.search(rb"\[CAPABILITY ([^\]]*)\]", line) or re.match(rb"\* CAPABILITY (.*)$", line)
    assert m, line
    return set(m.group(1).split())


def test_greeting_and_capability_before_login(toaster):
    with toaster.raw_imap() as c:
        greeting = c.greet()
        assert greeting == b"* OK [CAPABILITY " + PRE_CAPS + b"] mx.example.com ready."
        lines = c.cmd("a1 CAPABILITY")
        assert lines == [b"* CAPABILITY " + PRE_CAPS, b"a1 OK Capability completed."]
        # Not offered before login: no LOGINDISABLED on loopback.
        assert b"LOGINDISABLED" not in lines[0]
        assert b"CONDSTORE" not in lines[0]


def test_capability_after_login(toaster):
    with toaster.raw_imap() as c:
        c.greet()
        ok = c.cmd("a1 LOGIN alice@example.com alice-secret")
        assert len(ok) == 1 and ok[0].startswith(b"a1 OK [CAPABILITY ")
        assert ok[0].endswith(b"] Logged in")
        assert caps_of(ok[0]) >= AUTH_CAPS
        assert b"AUTH=PLAIN" not in ok[0] and b"SASL-IR" not in ok[0]
        lines = c.cmd("a2 CAPABILITY")
        assert len(lines) == 2 and lines[1] == b"a2 OK Capability completed."
        assert caps_of(lines[0]) == caps_of(ok[0])


def test_imaplib_login_and_capabilities(toaster):
    client = toaster.imap("bob@example.com")
    assert "IDLE" in client.capabilities and "IMAP4REV1" in client.capabilities
    typ, data = client.noop()
    assert typ == "OK"
    typ, data = client.logout()
    assert typ == "BYE"


@pytest.mark.parametrize(
    "user,password",
    [
        ("alice@example.com", "wrong"),
        ("alice@example.com", ""),
        ("nobody@example.com", "alice-secret"),
        ("alice@example.org", "alice-secret"),
        ("alice", "alice-secret"),
    ],
)
def test_login_refused(toaster, user, password):
    with toaster.raw_imap() as c:
        c.greet()
        lines = c.cmd(b'a1 LOGIN "%s" "%s"' % (user.encode(), password.encode()))
        assert lines == [b"a1 NO [AUTHENTICATIONFAILED] Authentication failed."]
        # Still not authenticated: a mailbox command is refused.
        assert c.cmd("a2 SELECT INBOX") == [b"a2 BAD Not authenticated."]
        # And a good login on the same connection works afterwards.
        assert c.cmd("a3 LOGIN alice@example.com alice-secret")[-1].startswith(b"a3 OK ")
    toaster.wait_log("imap-login: auth failed: user=<%s>, rip=127.0.0.1" % user)


def test_login_logged(toaster):
    with toaster.raw_imap() as c:
        c.login("carol@example.org")
    toaster.wait_log("imap-login: Login: user=<carol@example.org>, rip=127.0.0.1")


def test_login_literal_and_quoted_forms(toaster):
    with toaster.raw_imap() as c:
        c.greet()
        c.send(b"a1 LOGIN {17}\r\n")
        assert c.readline() == b"+ OK"
        lines = c.cmd(b"alice@example.com {12+}\r\nalice-secret", tag=b"a1")
        assert lines[-1].startswith(b"a1 OK [CAPABILITY ")
    with toaster.raw_imap() as c:
        c.greet()
        lines = c.cmd(b'a1 LOGIN "bob@example.com" "bob-\\s\\ecret"')  # bad escapes
        assert lines[-1].startswith(b"a1 BAD ") or lines[-1].startswith(b"a1 NO ")
        lines = c.cmd(b'a2 LOGIN "bob@example.com" "bob-secret"')
        assert lines[-1].startswith(b"a2 OK ")


def test_login_wrong_arguments(toaster):
    with toaster.raw_imap() as c:
        c.greet()
        assert c.cmd("a1 LOGIN alice@example.com")[-1].startswith(b"a1 BAD ")
        assert c.cmd("a2 LOGIN")[-1].startswith(b"a2 BAD ")
        assert c.cmd("a3 LOGIN a b c")[-1].startswith(b"a3 BAD ")


def test_authenticate_plain_initial_response(toaster):
    with toaster.raw_imap() as c:
        c.greet()
        lines = c.cmd(b"a1 AUTHENTICATE PLAIN " + plain(b"", b"alice@example.com", b"alice-secret"))
        assert len(lines) == 1 and lines[0].startswith(b"a1 OK [CAPABILITY ")
        assert caps_of(lines[0]) >= AUTH_CAPS
        assert c.cmd("a2 LOGIN alice@example.com alice-secret") == [
            b"a2 BAD Already authenticated."
        ]
    # authzid equal to authcid is fine
    with toaster.raw_imap() as c:
        c.greet()
        resp = plain(b"bob@example.com", b"bob@example.com", b"bob-secret")
        assert c.cmd(b"a1 AUTHENTICATE PLAIN " + resp)[-1].startswith(b"a1 OK ")


def test_authenticate_plain_continuation(toaster):
    with toaster.raw_imap() as c:
        c.greet()
        c.send(b"a1 AUTHENTICATE PLAIN\r\n")
        assert c.readline() == b"+ "
        c.send(plain(b"", b"alice@example.com", b"alice-secret") + b"\r\n")
        line = c.readline()
        assert line.startswith(b"a1 OK [CAPABILITY ") and line.endswith(b"] Logged in")


@pytest.mark.parametrize(
    "response,expected",
    [
        (plain(b"", b"alice@example.com", b"wrong"),
         b"a1 NO [AUTHENTICATIONFAILED] Authentication failed."),
        (plain(b"bob@example.com", b"alice@example.com", b"alice-secret"), None),
        (b"*", b"a1 BAD Authentication cancelled."),
        (b"not-base64!", b"a1 BAD Invalid SASL PLAIN response."),
        (base64.b64encode(b"alice@example.com"), b"a1 BAD Invalid SASL PLAIN response."),
    ],
)
def test_authenticate_plain_refused(toaster, response, expected):
    with toaster.raw_imap() as c:
        c.greet()
        c.send(b"a1 AUTHENTICATE PLAIN\r\n")
        assert c.readline() == b"+ "
        c.send(response + b"\r\n")
        line = c.readline()
        if expected is None:
            assert line.startswith(b"a1 NO ") or line.startswith(b"a1 BAD "), line
        else:
            assert line == expected
        assert c.cmd("a2 NOOP") == [b"a2 OK NOOP completed."]
        assert c.cmd("a3 LIST \"\" *") == [b"a3 BAD Not authenticated."]


def test_authenticate_unknown_mechanism(toaster):
    with toaster.raw_imap() as c:
        c.greet()
        lines = c.cmd("a1 AUTHENTICATE CRAM-MD5")
        assert lines == [b"a1 NO Unsupported authentication mechanism."]


def test_imaplib_authenticate_plain(toaster):
    client = toaster.imap()
    typ, _ = client.authenticate("PLAIN", lambda _: b"\0dave@example.org\0dave-secret")
    assert typ == "OK"
    assert client.state == "AUTH"
    client.logout()


def test_logout_bye_then_ok_then_close(toaster):
    for login in (False, True):
        with toaster.raw_imap() as c:
            if login:
                c.login()
            else:
                c.greet()
            lines = c.cmd("z LOGOUT")
            assert lines == [b"* BYE Logging out", b"z OK Logout completed."]
            assert c.closed(5)
            assert c.buf == b""


def test_id(toaster):
    with toaster.raw_imap() as c:
        c.greet()
        lines = c.cmd(b'a1 ID ("name" "pytest" "version" "1.0")')
        assert len(lines) == 2
        assert re.fullmatch(rb'\* ID \("name" "toaster" "version" "[^"]+"\)', lines[0]), lines
        assert lines[1] == b"a1 OK ID completed."
        assert c.cmd("a2 ID NIL")[1] == b"a2 OK ID completed."
        assert c.cmd("a3 ID")[-1].startswith(b"a3 BAD ")
        assert c.cmd("a4 ID foo")[-1].startswith(b"a4 BAD ")


def test_enable(toaster):
    with toaster.raw_imap() as c:
        c.greet()
        assert c.cmd("a0 ENABLE CONDSTORE") == [b"a0 BAD ENABLE needs authentication."]
        c.cmd("a1 LOGIN alice@example.com alice-secret")
        assert c.cmd("a2 ENABLE CONDSTORE") == [b"* ENABLED CONDSTORE", b"a2 OK Enabled."]
        # Only newly enabled ones are listed; unknown ones are ignored.
        assert c.cmd("a3 ENABLE CONDSTORE XYZZY UTF8=ACCEPT") == [
            b"* ENABLED UTF8=ACCEPT",
            b"a3 OK Enabled.",
        ]
        assert c.cmd("a4 ENABLE QRESYNC IMAP4rev2") == [
            b"* ENABLED IMAP4rev2 QRESYNC",
            b"a4 OK Enabled.",
        ]
        assert c.cmd("a5 ENABLE QRESYNC") == [b"* ENABLED", b"a5 OK Enabled."]
        assert c.cmd("a6 ENABLE")[-1].startswith(b"a6 BAD ")


def test_enable_qresync_implies_condstore(toaster):
    with toaster.raw_imap() as c:
        c.login()
        assert c.cmd("a1 ENABLE QRESYNC") == [b"* ENABLED CONDSTORE QRESYNC", b"a1 OK Enabled."]


def test_namespace(toaster):
    with toaster.raw_imap() as c:
        c.greet()
        assert c.cmd("a0 NAMESPACE") == [b"a0 BAD Not authenticated."]
        c.cmd("a1 LOGIN alice@example.com alice-secret")
        assert c.cmd("a2 NAMESPACE") == [
            b'* NAMESPACE (("" ".")) NIL NIL',
            b"a2 OK Namespace completed.",
        ]
        assert c.cmd("a3 NAMESPACE x")[-1].startswith(b"a3 BAD ")


def test_noop_in_every_state(toaster):
    with toaster.raw_imap() as c:
        c.greet()
        assert c.cmd("a1 NOOP") == [b"a1 OK NOOP completed."]
        c.cmd("a2 LOGIN alice@example.com alice-secret")
        assert c.cmd("a3 NOOP") == [b"a3 OK NOOP completed."]
        c.cmd("a4 SELECT INBOX")
        assert c.cmd("a5 NOOP")[-1].startswith(b"a5 OK ")
        assert c.cmd("a6 NOOP extra")[-1].startswith(b"a6 BAD ")


@pytest.mark.parametrize(
    "command",
    ["SELECT INBOX", "EXAMINE INBOX", 'LIST "" *', "LSUB \"\" *", "CREATE x", "DELETE x",
     "RENAME x y", "SUBSCRIBE x", "UNSUBSCRIBE x", "STATUS INBOX (MESSAGES)", "IDLE",
     "FETCH 1 FLAGS", "STORE 1 +FLAGS (\\Seen)", "SEARCH ALL", "EXPUNGE", "CLOSE",
     "UNSELECT", "CHECK", "UID FETCH 1 FLAGS", "COPY 1 Sent", "MOVE 1 Sent"],
)
def test_commands_before_login_are_bad(toaster, command):
    with toaster.raw_imap() as c:
        c.greet()
        assert c.cmd("x1 " + command) == [b"x1 BAD Not authenticated."]
        assert c.cmd("x2 NOOP") == [b"x2 OK NOOP completed."]
    # Nothing was created for anyone.
    assert not (toaster.data_dir / "mail").exists() or not any(
        (toaster.data_dir / "mail").rglob("x")
    )


@pytest.mark.parametrize(
    "command",
    ["FETCH 1 FLAGS", "STORE 1 +FLAGS (\\Seen)", "SEARCH ALL", "EXPUNGE", "CLOSE",
     "UNSELECT", "CHECK", "UID FETCH 1 FLAGS", "UID SEARCH ALL", "COPY 1 Sent", "MOVE 1 Sent"],
)
def test_selected_commands_without_mailbox_are_bad(toaster, command):
    with toaster.raw_imap() as c:
        c.login()
        assert c.cmd("x1 " + command) == [b"x1 BAD No mailbox selected."]


def test_unknown_and_unadvertised_commands(toaster):
    with toaster.raw_imap() as c:
        c.login()
        assert c.cmd("x1 XYZZY") == [b"x1 BAD Unknown command."]
        for i, cmd in enumerate(["SORT (DATE) UTF-8 ALL", "GETQUOTAROOT INBOX", "COMPRESS DEFLATE"]):
            lines = c.cmd("y%d %s" % (i, cmd))
            assert lines[-1].startswith(b"y%d BAD " % i), lines
        assert c.cmd("z NOOP") == [b"z OK NOOP completed."]


def test_login_after_login_is_bad(toaster):
    with toaster.raw_imap() as c:
        c.login()
        assert c.cmd("a1 LOGIN bob@example.com bob-secret") == [b"a1 BAD Already authenticated."]
        resp = plain(b"", b"bob@example.com", b"bob-secret")
        assert c.cmd(b"a2 AUTHENTICATE PLAIN " + resp) == [b"a2 BAD Already authenticated."]


def test_failed_logins_are_delayed_and_doubling(toaster):
    """core/login_delay: the NO comes after 500 ms, then 1 s, then 2 s."""
    import time
    with toaster.raw_imap(timeout=20) as c:
        c.greet()
        took = []
        for i in range(3):
            t0 = time.monotonic()
            lines = c.cmd(b"a%d LOGIN alice@example.com wrong%d" % (i, i))
            took.append(time.monotonic() - t0)
            assert lines[-1] == b"a%d NO [AUTHENTICATIONFAILED] Authentication failed." % i
        assert took[0] >= 0.45 and took[1] >= 0.95 and took[2] >= 1.95, took
        assert took[2] < 6, took
        # A success (another user, same address) still works, then clears the count.
        assert c.cmd(b"b1 LOGIN bob@example.com bob-secret")[-1].startswith(b"b1 OK ")
    with toaster.raw_imap() as c:
        c.login()
