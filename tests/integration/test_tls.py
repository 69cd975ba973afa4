"""TLS beneath SMTP and IMAP: STARTTLS on smtp, submission and imap,
implicit TLS on submissions and imaps, with Python's ssl module as the
client. Covers the protocol reset after STARTTLS and the throwing away of
commands pipelined after it (the CVE-2011-0411 class), TLS 1.2 and 1.3
only, SNI, session resumption, the Received header's TLS clause, and FETCH
of large messages (file ranges read and encrypted a record at a time).
"""
import imaplib
import json
import smtplib
import socket
import ssl
import subprocess

import pytest

from conftest import IMAP_PASSWORDS, TOASTERCTL

SENDER = "sender@example.net"


def client_context(**kwargs):
    """A client that takes the daemon's self-signed certificate."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    for key, value in kwargs.items():
        setattr(ctx, key, value)
    return ctx


def read_line(sock_file):
    line = sock_file.readline()
    assert line.endswith(b"\r\n"), line
    return line[:-2]


def smtp_reply(sock_file):
    lines = []
    while True:
        line = read_line(sock_file)
        lines.append(line)
        if line[3:4] != b"-":
            return lines


def reactor_total(toaster, key):
    out = subprocess.run([TOASTERCTL, "-c", str(toaster.config_file), "stats", "--json"],
                         capture_output=True, text=True, timeout=30, check=True)
    return sum(r[key] for r in json.loads(out.stdout)["reactors"])


def big_message(subject, kib):
    line = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ!?\r\n"
    body = line * (kib * 1024 // len(line) + 1)
    return b"Subject: " + subject.encode() + b"\r\nFrom: <a@example.net>\r\n\r\n" + body


# ---- SMTP ------------------------------------------------------------------


def test_smtp_starttls_then_mail_with_tls_in_received(make_toaster):
    toaster = make_toaster()
    client = toaster.smtp()
    assert client.has_extn("starttls")
    code, text = client.starttls(context=client_context())
    assert code == 220, text
    code, _ = client.ehlo()
    assert code == 250
    assert not client.has_extn("starttls")
    assert isinstance(client.sock, ssl.SSLSocket)
    version = client.sock.version()
    assert version in ("TLSv1.2", "TLSv1.3")
    client.sendmail(SENDER, ["alice@example.com"], b"Subject: over TLS\r\n\r\nsecret\r\n")
    client.quit()
    [path] = toaster.delivered("alice@example.com")
    head = path.read_bytes().split(b"\r\n\r\n", 1)[0]
    assert b"with ESMTPS id" in head, head
    assert ("(using %s with cipher " % version).encode() in head, head
    toaster.stop()


def test_smtp_starttls_drops_pipelined_commands(make_toaster):
    toaster = make_toaster()
    raw = socket.create_connection(("127.0.0.1", toaster.port), timeout=10)
    f = raw.makefile("rb")
    assert read_line(f).startswith(b"220 ")
    raw.sendall(b"EHLO client.example\r\n")
    assert b"STARTTLS" in b"\n".join(smtp_reply(f))
    # Injected after STARTTLS in the same packet: must never be answered.
    raw.sendall(b"STARTTLS\r\nMAIL FROM:<evil@example.net>\r\n")
    assert smtp_reply(f) == [b"220 2.0.0 Ready to start TLS"]
    tls = client_context().wrap_socket(raw, server_hostname="mail.example")
    tf = tls.makefile("rb")
    # The session starts over: MAIL before EHLO is refused, and the first
    # reply over TLS belongs to our first TLS command, not the injected one.
    tls.sendall(b"MAIL FROM:<good@example.net>\r\n")
    assert smtp_reply(tf) == [b"503 5.5.1 Error: send HELO/EHLO first"]
    tls.sendall(b"EHLO client.example\r\n")
    lines = smtp_reply(tf)
    assert lines[-1].startswith(b"250 ") and b"STARTTLS" not in b"\n".join(lines)
    tls.sendall(b"STARTTLS\r\n")
    assert smtp_reply(tf) == [b"554 5.5.1 Error: TLS already active"]
    tls.sendall(b"QUIT\r\n")
    assert smtp_reply(tf)[0].startswith(b"221")
    tls.close()
    toaster.stop()


def test_smtp_starttls_refused_mid_transaction(make_toaster):
    toaster = make_toaster()
    client = toaster.smtp()
    assert client.mail(SENDER)[0] == 250
    code, text = client.docmd("STARTTLS")
    assert code == 503 and b"transaction" in text
    code, text = client.docmd("STARTTLS now")
    assert code == 501
    client.quit()
    toaster.stop()


def test_submissions_is_tls_from_the_first_byte(make_toaster):
    toaster = make_toaster()
    client = smtplib.SMTP_SSL("127.0.0.1", toaster.ports["submissions_listen"],
                              local_hostname="client.example", context=client_context(),
                              timeout=10)
    code, _ = client.ehlo()
    assert code == 250
    assert not client.has_extn("starttls")
    code, text = client.docmd("STARTTLS")
    assert code == 554, text
    client.login("alice@example.com", "alice-secret")
    client.sendmail("alice@example.com", ["bob@example.com"],
                    b"Subject: implicit\r\n\r\nhello\r\n")
    client.quit()
    [path] = toaster.delivered("bob@example.com")
    assert b"with ESMTPSA id" in path.read_bytes()
    toaster.stop()


def test_old_protocols_and_weak_ciphers_refused(make_toaster):
    toaster = make_toaster()
    port = toaster.ports["submissions_listen"]
    old = client_context(minimum_version=ssl.TLSVersion.TLSv1,
                         maximum_version=ssl.TLSVersion.TLSv1_1)
    old.set_ciphers("DEFAULT:@SECLEVEL=0")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with pytest.raises((ssl.SSLError, ConnectionResetError)):
            old.wrap_socket(raw, server_hostname="mail.example")
    # TLS 1.2 with only CBC suites without forward secrecy: nothing shared.
    weak = client_context(maximum_version=ssl.TLSVersion.TLSv1_2)
    weak.set_ciphers("AES128-SHA:AES256-SHA")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with pytest.raises((ssl.SSLError, ConnectionResetError)):
            weak.wrap_socket(raw, server_hostname="mail.example")
    # TLS 1.2 with a modern suite works.
    good = client_context(maximum_version=ssl.TLSVersion.TLSv1_2)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with good.wrap_socket(raw, server_hostname="mail.example") as tls:
            assert tls.version() == "TLSv1.2"
            assert "GCM" in tls.cipher()[0] or "CHACHA20" in tls.cipher()[0]
            assert tls.makefile("rb").readline().startswith(b"220 ")
    toaster.stop()


def test_garbage_instead_of_a_handshake(make_toaster):
    toaster = make_toaster()
    for junk in (b"EHLO plain.example\r\n", b"\x16\x03\x01\xff\xff" + b"A" * 300, b"\x00" * 5):
        with socket.create_connection(("127.0.0.1", toaster.ports["imaps_listen"]),
                                      timeout=10) as raw:
            raw.sendall(junk)
            data = b""
            try:
                while True:
                    chunk = raw.recv(4096)
                    if not chunk:
                        break
                    data += chunk
            except ConnectionResetError:
                pass
            # Nothing but (at most) a TLS alert record.
            assert data == b"" or data[0] == 0x15, data
    # The daemon goes on.
    client = imaplib.IMAP4_SSL("127.0.0.1", toaster.ports["imaps_listen"],
                               ssl_context=client_context(), timeout=10)
    assert client.login("alice@example.com", IMAP_PASSWORDS["alice@example.com"])[0] == "OK"
    client.logout()
    toaster.stop()


def test_self_signed_default_kept_in_data_dir(make_toaster):
    toaster = make_toaster()
    cert_path = toaster.data_dir / "tls" / "selfsigned.pem"
    key_path = toaster.data_dir / "tls" / "selfsigned.key"
    assert cert_path.exists() and key_path.exists()
    assert key_path.stat().st_mode & 0o077 == 0
    with socket.create_connection(("127.0.0.1", toaster.ports["submissions_listen"]),
                                  timeout=10) as raw:
        with client_context().wrap_socket(raw, server_hostname="mail.example") as tls:
            served = tls.getpeercert(binary_form=True)
    assert ssl.PEM_cert_to_DER_cert(cert_path.read_text()) == served
    toaster.stop()


def make_cert(directory, name):
    key = directory / (name + ".key")
    cert = directory / (name + ".pem")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=" + name,
         "-addext", "subjectAltName=DNS:" + name],
        check=True, capture_output=True)
    return cert, key


def test_sni_picks_the_domain_certificate(make_toaster, tmp_path):
    cert, key = make_cert(tmp_path, "mail.example.org")
    toaster = make_toaster(config={"tls_sni": "mail.example.org %s %s" % (cert, key)})

    def served(name):
        with socket.create_connection(("127.0.0.1", toaster.ports["imaps_listen"]),
                                      timeout=10) as raw:
            with client_context().wrap_socket(raw, server_hostname=name) as tls:
                return tls.getpeercert(binary_form=True)

    domain_der = ssl.PEM_cert_to_DER_cert(cert.read_text())
    assert served("mail.example.org") == domain_der
    assert served("MAIL.Example.ORG") == domain_der
    assert served("other.example.com") != domain_der
    toaster.stop()


def test_session_resumption_by_ticket(make_toaster):
    toaster = make_toaster(config={"reactor_threads": "2"})
    ctx = client_context()
    port = toaster.ports["imaps_listen"]
    session = None
    reused = []
    for _ in range(6):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            with ctx.wrap_socket(raw, server_hostname="mail.example", session=session) as tls:
                # The greeting has been read, so a TLS 1.3 ticket has arrived.
                assert tls.makefile("rb").readline().startswith(b"* OK")
                reused.append(tls.session_reused)
                session = tls.session
    assert not reused[0]
    assert all(reused[1:]), reused
    toaster.stop()


# ---- IMAP ------------------------------------------------------------------


def deliver(toaster, rcpt, message):
    client = toaster.smtp()
    client.sendmail(SENDER, [rcpt], message)
    client.quit()


def test_imap_starttls_login_and_big_fetch(make_toaster):
    toaster = make_toaster()
    big = big_message("big one", 700)
    small = b"Subject: small\r\n\r\nhello\r\n"
    deliver(toaster, "alice@example.com", big)
    deliver(toaster, "alice@example.com", small)
    client = imaplib.IMAP4("127.0.0.1", toaster.imap_port, timeout=10)
    assert "STARTTLS" in client.capabilities
    client.starttls(ssl_context=client_context())
    assert "STARTTLS" not in client.capabilities
    assert client.login("alice@example.com", IMAP_PASSWORDS["alice@example.com"])[0] == "OK"
    assert client.select("INBOX")[0] == "OK"
    encrypted = reactor_total(toaster, "file_bytes_encrypted")
    for item in ("BODY.PEEK[]", "RFC822", "BINARY.PEEK[]"):
        typ, data = client.fetch("1:2", "(%s)" % item)
        assert typ == "OK"
        bodies = [part[1] for part in data if isinstance(part, tuple)]
        assert len(bodies) == 2
        # Delivery adds trace headers in front; the rest is byte for byte.
        assert bodies[0].endswith(big), item
        assert bodies[1].endswith(small), item
    typ, data = client.fetch("1", "(BODY.PEEK[]<1000.200000>)")
    whole = client.fetch("1", "(BODY.PEEK[])")[1][0][1]
    assert data[0][1] == whole[1000:201000]
    # Once the index knows the file holds no NUL (learnt on its first whole
    # read), the large body goes as a file range, read and encrypted a
    # record at a time, never copied whole; the small one as ordinary output.
    grown = reactor_total(toaster, "file_bytes_encrypted") - encrypted
    assert grown >= 2 * len(big) + 200000, grown
    assert reactor_total(toaster, "file_bytes_spliced") == 0
    assert reactor_total(toaster, "tls_handshakes") >= 1
    client.logout()
    toaster.stop()


def test_imaps_implicit_tls(make_toaster):
    toaster = make_toaster()
    big = big_message("imaps", 300)
    deliver(toaster, "bob@example.com", big)
    client = imaplib.IMAP4_SSL("127.0.0.1", toaster.ports["imaps_listen"],
                               ssl_context=client_context(), timeout=10)
    assert "STARTTLS" not in client.capabilities
    assert client.login("bob@example.com", IMAP_PASSWORDS["bob@example.com"])[0] == "OK"
    client.select("INBOX")
    typ, data = client.fetch("1", "(BODY.PEEK[])")
    assert typ == "OK" and data[0][1].endswith(big)
    client.logout()
    # STARTTLS inside TLS: BAD.
    with socket.create_connection(("127.0.0.1", toaster.ports["imaps_listen"]),
                                  timeout=10) as raw:
        with client_context().wrap_socket(raw, server_hostname="mail.example") as tls:
            f = tls.makefile("rb")
            assert read_line(f).startswith(b"* OK")
            tls.sendall(b"a STARTTLS\r\n")
            assert read_line(f) == b"a BAD TLS is already active."
    toaster.stop()


def test_imap_starttls_drops_pipelined_commands(make_toaster):
    toaster = make_toaster()
    raw = socket.create_connection(("127.0.0.1", toaster.imap_port), timeout=10)
    f = raw.makefile("rb")
    assert read_line(f).startswith(b"* OK")
    raw.sendall(b"a STARTTLS\r\nb LOGIN alice@example.com alice-secret\r\n")
    assert read_line(f) == b"a OK Begin TLS negotiation now."
    tls = client_context().wrap_socket(raw, server_hostname="mail.example")
    tf = tls.makefile("rb")
    tls.sendall(b"c CAPABILITY\r\n")
    caps = read_line(tf)
    assert caps.startswith(b"* CAPABILITY ") and b"STARTTLS" not in caps
    # Still not authenticated: the injected LOGIN was never run.
    assert read_line(tf) == b"c OK Capability completed."
    tls.sendall(b"d SELECT INBOX\r\n")
    assert read_line(tf).startswith(b"d BAD")
    tls.sendall(b"e STARTTLS\r\n")
    assert read_line(tf).startswith(b"e BAD")
    tls.sendall(b"f LOGOUT\r\n")
    assert read_line(tf).startswith(b"* BYE")
    tls.close()
    toaster.stop()


def test_imap_starttls_after_login_refused(make_toaster):
    toaster = make_toaster()
    with socket.create_connection(("127.0.0.1", toaster.imap_port), timeout=10) as raw:
        f = raw.makefile("rb")
        assert read_line(f).startswith(b"* OK")
        raw.sendall(b"a LOGIN alice@example.com alice-secret\r\nb STARTTLS\r\n")
        assert read_line(f).startswith(b"a OK")
        assert read_line(f) == b"b BAD Already authenticated."
    toaster.stop()


def test_tls_client_vanishing_mid_fetch(make_toaster):
    toaster = make_toaster()
    deliver(toaster, "alice@example.com", big_message("vanish", 2000))
    for _ in range(3):
        client = imaplib.IMAP4_SSL("127.0.0.1", toaster.ports["imaps_listen"],
                                   ssl_context=client_context(), timeout=10)
        client.login("alice@example.com", IMAP_PASSWORDS["alice@example.com"])
        client.select("INBOX")
        client.send(b"x FETCH 1 (BODY.PEEK[])\r\n")
        client.sock.recv(1000)
        client.sock.close()
    client = imaplib.IMAP4_SSL("127.0.0.1", toaster.ports["imaps_listen"],
                               ssl_context=client_context(), timeout=10)
    assert client.login("alice@example.com", IMAP_PASSWORDS["alice@example.com"])[0] == "OK"
    client.logout()
    # A vanished reader is not a file that ended early.
    assert "reading a file range" not in toaster.log()
    toaster.stop()
