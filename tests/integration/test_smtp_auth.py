"""SMTP AUTH (RFC 4954) on submission, with smtplib as the client: PLAIN
and LOGIN over STARTTLS and over implicit TLS, MAIL refused before AUTH,
the envelope sender bound to the login (Postfix's
reject_sender_login_mismatch), failed attempts slowed and logged in one
stable line, and port 25 offering no AUTH at all.
"""
import base64
import re
import smtplib
import ssl
import time

import pytest

from conftest import wait_until


def client_context():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def submission(toaster, starttls=True):
    client = smtplib.SMTP("127.0.0.1", toaster.ports["submission_listen"],
                          local_hostname="client.example", timeout=10)
    client.ehlo()
    if starttls:
        client.starttls(context=client_context())
        client.ehlo()
    return client


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_auth_then_send_over_starttls(make_toaster, mechanism):
    toaster = make_toaster()
    client = submission(toaster)
    assert client.has_extn("auth")
    assert set(client.esmtp_features["auth"].split()) == {"PLAIN", "LOGIN"}
    client.user, client.password = "alice@example.com", "alice-secret"
    code, text = client.auth(mechanism, getattr(client, "auth_" + mechanism.lower()),
                             initial_response_ok=(mechanism == "PLAIN"))
    assert code == 235, text
    client.sendmail("alice@example.com", ["bob@example.com"], b"Subject: sub\r\n\r\nhi\r\n")
    client.quit()
    [path] = toaster.delivered("bob@example.com")
    head = path.read_bytes().split(b"\r\n\r\n", 1)[0]
    assert b"with ESMTPSA id" in head, head
    toaster.wait_log("smtp-login: Login: user=<alice@example.com>, rip=127.0.0.1")
    toaster.stop()


def test_mail_needs_auth_and_sender_must_be_the_users(make_toaster):
    toaster = make_toaster(aliases=["team@example.com: alice@example.com, bob@example.com",
                                    "info@example.org: carol@example.org"])
    client = submission(toaster)
    code, text = client.mail("alice@example.com")
    assert (code, text) == (530, b"5.7.0 Authentication required")
    client.login("alice@example.com", "alice-secret")
    code, text = client.mail("bob@example.com")
    assert code == 553 and b"not owned by user alice@example.com" in text
    code, text = client.mail("info@example.org")
    assert code == 553
    # Her own address with a subaddress, and an alias that reaches her.
    for sender in ("Alice+lists@example.com", "team@example.com"):
        assert client.mail(sender)[0] == 250
        client.rset()
    # The null sender (bounces, receipts) is allowed.
    assert client.mail("<>")[0] == 250
    client.rset()
    code, _ = client.docmd("AUTH PLAIN AGFsaWNlQGV4YW1wbGUuY29tAGFsaWNlLXNlY3JldA==")
    assert code == 503
    client.quit()
    toaster.stop()


def plain(user, password):
    return base64.b64encode(b"\0" + user.encode() + b"\0" + password.encode()).decode()


def test_failed_auth_is_slowed_and_logged(make_toaster):
    toaster = make_toaster()
    client = submission(toaster)
    timings = []
    for user, password in (("alice@example.com", "wrong"), ("alice@example.com", "wrong 2"),
                           ("nobody@example.com", "x")):
        started = time.monotonic()
        code, text = client.docmd("AUTH PLAIN", plain(user, password))
        timings.append(time.monotonic() - started)
        assert (code, text) == (535, b"5.7.8 Error: authentication failed")
    # The delays the daemon chose double (core/login_delay: per address and
    # per user), and each answer waited at least its delay.
    toaster.wait_log("smtp-login: auth failed: user=<nobody@example.com>, rip=127.0.0.1, delay=")
    delays = [int(m) for m in re.findall(r"smtp-login: auth failed: user=<[^>]*>, "
                                         r"rip=127\.0\.0\.1, delay=(\d+)ms", toaster.log())]
    assert delays == [500, 1000, 2000], delays
    for took, delay in zip(timings, delays):
        assert took >= 0.9 * delay / 1000, (timings, delays)
    # The right password is answered at once and clears the count.
    started = time.monotonic()
    code, _ = client.docmd("AUTH PLAIN", plain("alice@example.com", "alice-secret"))
    assert code == 235 and time.monotonic() - started < timings[0]
    client.quit()
    toaster.stop()


def test_auth_on_implicit_tls_and_aborted_exchange(make_toaster):
    toaster = make_toaster()
    client = smtplib.SMTP_SSL("127.0.0.1", toaster.ports["submissions_listen"],
                              local_hostname="client.example", context=client_context(),
                              timeout=10)
    client.ehlo()
    assert client.has_extn("auth")
    code, text = client.docmd("AUTH LOGIN")
    assert (code, text) == (334, b"VXNlcm5hbWU6")
    code, text = client.docmd("*")
    assert code == 501
    code, text = client.docmd("AUTH PLAIN", "!!!")
    assert code == 501
    code, text = client.docmd("AUTH DIGEST-MD5")
    assert code == 504
    client.login("carol@example.org", "carol-secret")
    client.sendmail("carol@example.org", ["dave@example.org"], b"Subject: x\r\n\r\ny\r\n")
    client.quit()
    assert wait_until(lambda: len(toaster.delivered("dave@example.org")) == 1, 5)
    toaster.stop()


def test_port_25_offers_no_auth(make_toaster):
    toaster = make_toaster()
    client = toaster.smtp()
    assert not client.has_extn("auth")
    code, text = client.docmd("AUTH PLAIN AGFsaWNlQGV4YW1wbGUuY29tAGFsaWNlLXNlY3JldA==")
    assert code == 503 and b"not enabled" in text
    client.quit()
    toaster.stop()


def test_auth_refused_before_tls(make_toaster):
    # Loopback is trusted by default (as in Dovecot); without that trust
    # this connection is as any other: no AUTH until STARTTLS.
    toaster = make_toaster(config={"loopback_is_secure": "no"})
    client = submission(toaster, starttls=False)
    assert client.has_extn("starttls")
    assert not client.has_extn("auth")
    code, text = client.docmd("AUTH", "PLAIN " + plain("alice@example.com", "alice-secret"))
    assert code == 538 and b"Encryption required" in text
    assert client.mail("alice@example.com")[0] == 530
    client.starttls(context=client_context())
    client.ehlo()
    assert client.has_extn("auth")
    client.login("alice@example.com", "alice-secret")
    client.quit()
    toaster.stop()


def test_imap_login_refused_before_tls(make_toaster):
    import imaplib

    toaster = make_toaster(config={"loopback_is_secure": "no"})
    client = imaplib.IMAP4("127.0.0.1", toaster.imap_port, timeout=10)
    assert "LOGINDISABLED" in client.capabilities and "STARTTLS" in client.capabilities
    typ, data = client._simple_command("LOGIN", "alice@example.com", "alice-secret")
    assert typ == "NO", data
    client.starttls(ssl_context=client_context())
    assert "LOGINDISABLED" not in client.capabilities
    assert client.login("alice@example.com", "alice-secret")[0] == "OK"
    client.logout()
    toaster.stop()
