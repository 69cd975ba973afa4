"""Submission policy (issue 5 point 3) against the real daemon: relaying
to foreign domains only for authenticated sessions and `mynetworks`, into
the outbound queue (data_dir/queue: <id>.msg and its text envelope) durably
before the 250, also across kill -9; the From: header bound to the login
(553 at end of data, nothing delivered or queued); and the per-user limits
on recipients per message (452) and messages per hour (450).
"""
import signal
import smtplib
import ssl
import subprocess

import pytest

from conftest import LISTEN_KEYS, TOASTERD, RawSMTP

QUEUED = b"250 2.0.0 Ok: queued as "


def client_context():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def login(toaster, user="alice@example.com", password="alice-secret"):
    client = smtplib.SMTP("127.0.0.1", toaster.ports["submission_listen"],
                          local_hostname="client.example", timeout=10)
    client.ehlo()
    client.starttls(context=client_context())
    client.ehlo()
    client.login(user, password)
    return client


def queue_entries(toaster):
    return toaster.queue_ids()


def envelope(toaster, qid):
    lines = toaster.queue_envelope(qid).splitlines()
    fields = {}
    rcpts = []
    for line in lines[1:-1]:
        key, _, value = line.partition(" ")
        if key == "rcpt":
            rcpts.append(value)
        else:
            fields[key] = value
    return lines, fields, rcpts


def test_authenticated_relay_is_queued(make_toaster):
    toaster = make_toaster()
    client = login(toaster)
    body = b"From: Alice <alice@example.com>\r\nSubject: out\r\n\r\nhello\r\n"
    client.mail("alice@example.com", ["RET=HDRS", "ENVID=env+2B1"])
    assert client.rcpt("bob@remote.test", ["NOTIFY=FAILURE,DELAY",
                                           "ORCPT=rfc822;bob@remote.test"])[0] == 250
    assert client.rcpt("carol@example.org")[0] == 250
    code, text = client.data(body)
    assert code == 250, text
    queue_id = text.split()[-1].decode()
    client.quit()
    [qid] = queue_entries(toaster)
    assert qid == queue_id
    lines, fields, rcpts = envelope(toaster, qid)
    assert lines[0] == "toaster-queue 1" and lines[-1] == "end"
    assert fields["id"] == queue_id
    assert fields["from"] == "<alice@example.com>"
    assert fields["ret"] == "hdrs"
    assert fields["envid"] == "env+2B1"
    assert fields["user"] == "alice@example.com"
    assert rcpts == ["pending 0 0 <bob@remote.test> rfc822;bob@remote.test FAILURE,DELAY"]
    msg = (toaster.data_dir / "queue" / (qid + ".msg")).read_bytes()
    assert int(fields["size"]) == len(msg)
    assert msg.startswith(b"Return-Path: <alice@example.com>\r\n")
    assert msg.endswith(body)
    # The local recipient got it as usual.
    assert len(toaster.delivered("carol@example.org")) == 1
    toaster.wait_log("status=delivered (1 mailbox, queued for 1 remote recipient)")
    toaster.stop()


def test_port_25_never_relays(make_toaster):
    toaster = make_toaster()
    with RawSMTP(toaster.ports["smtp_listen"]) as c:
        c.greet()
        assert c.cmd("MAIL FROM:<alice@example.com>")[-1] == b"250 2.1.0 Ok"
        assert c.cmd("RCPT TO:<victim@remote.test>")[-1] == \
            b"554 5.7.1 <victim@remote.test>: Relay access denied"
    assert queue_entries(toaster) == []
    toaster.stop()


def test_mynetworks_relays_on_port_25(make_toaster):
    toaster = make_toaster(config={"mynetworks": "10.0.0.0/8, 127.0.0.1/32"})
    toaster.send("app@internal.test", ["someone@remote.test"],
                 b"Subject: from the app\r\n\r\nhi\r\n")
    [qid] = queue_entries(toaster)
    _, fields, rcpts = envelope(toaster, qid)
    assert fields["user"] == "-" and fields["from"] == "<app@internal.test>"
    assert rcpts == ["pending 0 0 <someone@remote.test> - -"]
    toaster.stop()


def test_mynetworks_elsewhere_does_not_relay(make_toaster):
    toaster = make_toaster(config={"mynetworks": "192.0.2.0/24"})
    with RawSMTP(toaster.ports["smtp_listen"]) as c:
        c.greet()
        c.cmd("MAIL FROM:<a@b.test>")
        assert c.cmd("RCPT TO:<x@remote.test>")[-1].startswith(b"554 5.7.1")
    toaster.stop()


def test_bad_mynetworks_stops_the_start(make_toaster):
    toaster = make_toaster(config={"mynetworks": "192.0.2.1/24"}, start=False)
    toaster.ports = {key: 1 for key in LISTEN_KEYS}
    toaster.config_file.write_text(toaster.config_text())
    result = subprocess.run([TOASTERD, "-n", "-c", str(toaster.config_file)],
                            capture_output=True, timeout=10)
    assert result.returncode != 0
    assert b"mynetworks: host bits set in \"192.0.2.1/24\"" in result.stderr + result.stdout


@pytest.mark.parametrize("header", [
    b"From: Bob <bob@example.com>\r\n",
    b"From: alice@example.com, mallory@evil.test\r\n",
    b"From: alice@example.com\r\nFrom: bob@example.com\r\n",
    b"From: Alice\r\n <bob@example.com>\r\n",
])
def test_from_header_must_be_the_users(make_toaster, header):
    toaster = make_toaster()
    client = login(toaster)
    client.mail("alice@example.com")
    assert client.rcpt("someone@remote.test")[0] == 250
    assert client.rcpt("carol@example.org")[0] == 250
    code, text = client.data(header + b"Subject: forged\r\n\r\nx\r\n")
    assert (code, text) == (553, b"5.7.1 From: address not owned by user alice@example.com")
    # The session goes on.
    assert client.noop()[0] == 250
    client.quit()
    assert toaster.all_delivered() == []
    assert queue_entries(toaster) == []
    assert toaster.spool_files() == []
    toaster.stop()


@pytest.mark.parametrize("header", [
    b"From: \"Alice A.\" <alice@example.com> (work)\r\n",
    b"From: team: alice+x@example.com, <team@example.com>;\r\n",
    b"From: =?utf-8?q?Al,ice?=\r\n\t<alice@example.com>\r\n",
    b"Subject: no from at all\r\n",
])
def test_from_header_of_the_user_is_accepted(make_toaster, header):
    toaster = make_toaster()
    client = login(toaster)
    client.mail("alice@example.com")
    client.rcpt("carol@example.org")
    code, text = client.data(header + b"Subject: ok\r\n\r\nx\r\n")
    assert code == 250, text
    client.quit()
    assert len(toaster.delivered("carol@example.org")) == 1
    toaster.stop()


def test_unreadable_from_is_refused(make_toaster):
    toaster = make_toaster()
    client = login(toaster)
    client.mail("alice@example.com")
    client.rcpt("carol@example.org")
    code, text = client.data(b"From: alice\r\n\r\nx\r\n")
    assert code == 553 and text.startswith(b"5.7.1 From: header cannot be read"), text
    client.quit()
    assert toaster.all_delivered() == []
    toaster.stop()


def test_recipients_per_message(make_toaster):
    toaster = make_toaster(config={"submission_recipients_per_message": "3"})
    client = login(toaster)
    client.mail("alice@example.com")
    for i in range(3):
        assert client.rcpt("r%d@remote.test" % i)[0] == 250
    code, text = client.rcpt("r3@remote.test")
    assert (code, text) == (452, b"4.5.3 Error: too many recipients")
    assert client.data(b"From: alice@example.com\r\n\r\nx\r\n")[0] == 250
    client.quit()
    [qid] = queue_entries(toaster)
    assert len(envelope(toaster, qid)[2]) == 3
    # Port 25 keeps recipient_limit.
    with RawSMTP(toaster.ports["smtp_listen"]) as c:
        c.greet()
        c.cmd("MAIL FROM:<x@remote.test>")
        for rcpt in ("alice@example.com", "bob@example.com", "carol@example.org",
                     "dave@example.org"):
            assert c.cmd("RCPT TO:<%s>" % rcpt)[-1] == b"250 2.1.5 Ok"
    toaster.stop()


def test_messages_per_hour(make_toaster):
    toaster = make_toaster(config={"submission_messages_per_hour": "2"})
    client = login(toaster)
    for i in range(2):
        client.mail("alice@example.com")
        assert client.rcpt("x%d@remote.test" % i)[0] == 250
        assert client.data(b"From: alice@example.com\r\n\r\nx\r\n")[0] == 250
    client.mail("alice@example.com")
    code, text = client.rcpt("x2@remote.test")
    assert (code, text) == (
        450, b"4.7.1 Error: too many messages from user alice@example.com this hour, try later")
    client.rset()
    client.quit()
    # Another user has their own count.
    bob = login(toaster, "bob@example.com", "bob-secret")
    bob.mail("bob@example.com")
    assert bob.rcpt("y@remote.test")[0] == 250
    bob.quit()
    assert len(queue_entries(toaster)) == 2
    toaster.stop()


def test_queue_entry_survives_kill_9(make_toaster):
    toaster = make_toaster()
    client = login(toaster)
    client.mail("alice@example.com")
    client.rcpt("far@remote.test")
    code, text = client.data(b"From: alice@example.com\r\nSubject: keep\r\n\r\nkeep me\r\n")
    assert code == 250
    queue_id = text.split()[-1].decode()
    toaster.proc.send_signal(signal.SIGKILL)
    toaster.wait()
    toaster.proc = None
    toaster.start()
    [qid] = queue_entries(toaster)
    assert qid == queue_id
    _, fields, rcpts = envelope(toaster, qid)
    msg = (toaster.data_dir / "queue" / (qid + ".msg")).read_bytes()
    assert int(fields["size"]) == len(msg) and msg.endswith(b"keep me\r\n")
    assert rcpts == ["pending 0 0 <far@remote.test> - -"]
    assert list((toaster.data_dir / "queue").glob("*.tmp")) == []
    toaster.stop()
