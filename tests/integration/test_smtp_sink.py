"""The relay tests' remote MX (smtp_sink.py) checked on its own, with
smtplib and raw sockets on loopback: a plain transaction byte for byte
(dot-stuffing undone, parameters, EHLO name), two messages on one
connection, STARTTLS (and plaintext pipelined behind it dropped), AUTH
PLAIN (required, wrong and right password), BDAT chunks, pipelined
commands answered in order, scripted replies to MAIL, RCPT and the data
(4xx then 250, the last one repeating), close_in_data, a silent greeting,
421 at connect, over-long lines, SIZE, command order, several loopback
addresses on one port with parallel sessions counted, delay_s and
data_delay_s, a 6 MB message by DATA and by BDAT, stop()
cutting idle sessions, and non-loopback addresses refused."""

import socket
import smtplib
import ssl
import threading
import time

import pytest

from conftest import RawSMTP, dot_stuff
from smtp_sink import SmtpSink, make_cert

MESSAGE = (b"From: <alice@example.com>\r\nTo: <bob@remote.test>\r\nSubject: sink\r\n\r\n"
           b"first line\r\n.a line that starts with a dot\r\n..two dots\r\n.\r\nlast\r\n")


@pytest.fixture
def sink():
    with SmtpSink() as s:
        yield s


def client_context(cert):
    """Verifies the sink's certificate (smtplib names the peer 127.0.0.1, not sink.test)."""
    ctx = ssl.create_default_context(cafile=str(cert))
    ctx.check_hostname = False
    return ctx


def raw(sink, host=None, timeout=5.0):
    r = RawSMTP.__new__(RawSMTP)
    r.sock = socket.create_connection((host or sink.host, sink.port), timeout=timeout)
    r.buf = b""
    return r


def test_plain_transaction_byte_exact(sink):
    with smtplib.SMTP(sink.host, sink.port, local_hostname="client.example", timeout=5) as c:
        code, text = c.ehlo()
        assert code == 250
        for ext in ("pipelining", "size", "8bitmime", "smtputf8", "chunking",
                    "enhancedstatuscodes", "dsn"):
            assert c.has_extn(ext), ext
        assert not c.has_extn("starttls") and not c.has_extn("auth")
        c.sendmail("alice@example.com", ["bob@remote.test", "carol@remote.test"], MESSAGE,
                   mail_options=["BODY=8BITMIME"], rcpt_options=["NOTIFY=FAILURE"])
        c.sendmail("", ["bob@remote.test"], b"Subject: second\r\n\r\nx\r\n")
    assert sink.wait_for(2)
    first, second = sink.messages
    assert first.data == MESSAGE
    assert first.mail_from == "alice@example.com"
    assert first.rcpts == ["bob@remote.test", "carol@remote.test"]
    assert first.mail_params["BODY"] == "8BITMIME"
    assert int(first.mail_params["SIZE"]) == len(MESSAGE)
    assert first.rcpt_params == [{"NOTIFY": "FAILURE"}, {"NOTIFY": "FAILURE"}]
    assert first.helo == "client.example"
    assert first.is_tls is False and first.auth_user is None and first.via == "DATA"
    assert first.peer[0] == "127.0.0.1" and first.local == (sink.host, sink.port)
    assert first.reply.startswith("250 ")
    assert second.mail_from == "" and second.data == b"Subject: second\r\n\r\nx\r\n"
    # Both on one connection.
    assert sink.connections == 1
    assert sink.sessions[0].messages == 2
    assert sink.sessions[0].commands[0] == "ehlo client.example"  # smtplib writes lower case
    assert sink.sessions[0].commands[-1] == "QUIT"


def test_large_message(sink):
    body = b"".join(b"line %06d of a large message\r\n" % i for i in range(200000))
    big = b"Subject: big\r\n\r\n" + body
    started = time.monotonic()
    with smtplib.SMTP(sink.host, sink.port, timeout=30) as c:
        c.sendmail("a@b.test", ["c@d.test"], big)
    r = raw(sink, timeout=30)
    r.greet()
    r.cmd("MAIL FROM:<a@b.test>")
    r.cmd("RCPT TO:<c@d.test>")
    r.send(b"BDAT %d LAST\r\n" % len(big) + big)
    assert r.reply_line().startswith(b"250 ")
    r.close()
    assert sink.wait_for(2)
    assert time.monotonic() - started < 10  # 2 x 6 MB: no quadratic buffering
    assert [m.data == big for m in sink.messages] == [True, True]


def test_starttls(tmp_path):
    cert, key = make_cert(tmp_path)
    with SmtpSink(tls_cert=cert, tls_key=key) as sink:
        ctx = client_context(cert)
        with smtplib.SMTP(sink.host, sink.port, local_hostname="client.example",
                          timeout=5) as c:
            c.ehlo()
            assert c.has_extn("starttls")
            code, _ = c.starttls(context=ctx)
            assert code == 220
            c.ehlo()
            assert not c.has_extn("starttls")
            c.sendmail("alice@example.com", ["bob@remote.test"], MESSAGE)
        # Without STARTTLS the same sink takes mail in the clear.
        with smtplib.SMTP(sink.host, sink.port, timeout=5) as c:
            c.sendmail("alice@example.com", ["bob@remote.test"], MESSAGE)
        assert sink.wait_for(2)
        assert [m.is_tls for m in sink.messages] == [True, False]
        assert sink.messages[0].data == MESSAGE
        assert sink.sessions[0].is_tls and not sink.sessions[1].is_tls


def test_starttls_drops_pipelined_plaintext(tmp_path):
    cert, key = make_cert(tmp_path)
    with SmtpSink(tls_cert=cert, tls_key=key) as sink:
        r = raw(sink)
        r.greet()
        r.send(b"STARTTLS\r\nNOOP\r\n")
        assert r.reply_line().startswith(b"220 ")
        assert r.buf == b""
        ctx = client_context(cert)
        r.sock = ctx.wrap_socket(r.sock, server_hostname="sink.test")
        # The first reply inside TLS belongs to EHLO, not to the injected NOOP.
        lines = r.cmd("EHLO client.example")
        assert lines[0] == b"250-sink.test" and lines[-1].startswith(b"250 "), lines
        assert b"250-STARTTLS" not in lines and b"250 STARTTLS" not in lines
        assert r.cmd("QUIT")[-1].startswith(b"221 ")
        r.close()
        assert "NOOP" not in sink.sessions[0].commands


def test_auth_plain(tmp_path):
    cert, key = make_cert(tmp_path)
    with SmtpSink(tls_cert=cert, tls_key=key, auth={"relay-user": "relay-secret"}) as sink:
        ctx = client_context(cert)
        with smtplib.SMTP(sink.host, sink.port, timeout=5) as c:
            c.ehlo()
            assert "PLAIN" in c.esmtp_features["auth"].upper()
            c.starttls(context=ctx)
            c.ehlo()
            code, text = c.mail("alice@example.com")
            assert code == 530, text
            with pytest.raises(smtplib.SMTPAuthenticationError) as err:
                c.login("relay-user", "wrong")
            assert err.value.smtp_code == 535
            c.login("relay-user", "relay-secret")
            c.sendmail("alice@example.com", ["bob@remote.test"], MESSAGE)
        # Initial response left out: the 334 continuation.
        r = raw(sink)
        r.greet()
        assert r.cmd("AUTH PLAIN")[-1] == b"334 "
        assert r.cmd("*")[-1].startswith(b"501 ")
        r.close()
        assert sink.wait_for(1)
        m = sink.messages[0]
        assert m.auth_user == "relay-user" and m.is_tls
        assert sink.sessions[0].auth_user == "relay-user"


def test_bdat_chunks(sink):
    r = raw(sink)
    r.greet()
    assert r.cmd("MAIL FROM:<alice@example.com> BODY=BINARYMIME")[-1].startswith(b"250 ")
    assert r.cmd("RCPT TO:<bob@remote.test>")[-1].startswith(b"250 ")
    first = b"Subject: chunks\r\n\r\n.not stuffed\r\n.\r\n"
    second = b"second chunk\r\n"
    r.send(b"BDAT %d\r\n" % len(first) + first)
    assert r.reply_line() == b"250 2.0.0 %d octets received" % len(first)
    r.send(b"BDAT %d LAST\r\n" % len(second) + second)
    assert r.reply_line().startswith(b"250 ")
    # A message in one BDAT 0 LAST after a chunk, pipelined with the next MAIL.
    r.send(b"MAIL FROM:<>\r\nRCPT TO:<carol@remote.test>\r\nBDAT 3\r\nabcBDAT 0 LAST\r\n")
    assert [l[:3] for l in r.replies(4)] == [b"250"] * 4
    # DATA after BDAT is refused.
    assert r.cmd("MAIL FROM:<a@b.test>")[-1].startswith(b"250 ")
    assert r.cmd("RCPT TO:<c@d.test>")[-1].startswith(b"250 ")
    r.send(b"BDAT 2\r\nxy")
    assert r.reply_line().startswith(b"250 ")
    assert r.cmd("DATA")[-1].startswith(b"503 ")
    # BDAT without a transaction: its bytes are read, then 503.
    assert r.cmd("RSET")[-1].startswith(b"250 ")
    r.send(b"BDAT 5 LAST\r\nhello")
    assert r.reply_line().startswith(b"503 ")
    assert r.cmd("NOOP")[-1].startswith(b"250 ")
    r.close()
    assert sink.wait_for(2)
    one, two = sink.messages[:2]
    assert one.data == first + second and one.via == "BDAT"
    assert one.mail_params == {"BODY": "BINARYMIME"}
    assert two.data == b"abc" and two.mail_from == "" and two.rcpts == ["carol@remote.test"]
    assert len(sink.messages) == 2


def test_pipelining_in_order(sink):
    sink.set_rcpt_replies("nobody@remote.test", ["550 5.1.1 no such user"])
    r = raw(sink)
    r.greet()
    r.send(b"MAIL FROM:<alice@example.com>\r\nRCPT TO:<bob@remote.test>\r\n"
           b"RCPT TO:<nobody@remote.test>\r\nRCPT TO:<Carol@Remote.test>\r\nDATA\r\n")
    got = r.replies(5)
    assert [l[:4] for l in got] == [b"250 ", b"250 ", b"550 ", b"250 ", b"354 "], got
    assert got[2] == b"550 5.1.1 no such user"
    r.send(dot_stuff(MESSAGE) + b"RSET\r\nNOOP\r\nQUIT\r\n")
    assert [l[:4] for l in r.replies(4)] == [b"250 ", b"250 ", b"250 ", b"221 "]
    assert r.closed()
    assert sink.wait_for(1)
    assert sink.messages[0].rcpts == ["bob@remote.test", "Carol@Remote.test"]
    assert sink.messages[0].data == MESSAGE


def test_scripted_replies(sink):
    sink.set_rcpt_replies("bob@remote.test", ["451 4.3.0 try again later", "250 2.1.5 ok"])
    with smtplib.SMTP(sink.host, sink.port, timeout=5) as c:
        with pytest.raises(smtplib.SMTPRecipientsRefused) as err:
            c.sendmail("alice@example.com", ["bob@remote.test"], MESSAGE)
        assert err.value.recipients["bob@remote.test"] == (451, b"4.3.0 try again later")
        c.rset()
        assert c.sendmail("alice@example.com", ["bob@remote.test"], MESSAGE) == {}
        c.rset()
        assert c.sendmail("alice@example.com", ["bob@remote.test"], MESSAGE) == {}  # repeats
    assert sink.wait_for(2) and len(sink.messages) == 2

    sink.set_data_replies(["554 5.7.1 no", "250 2.0.0 fine now"])
    sink.set_mail_replies(["452 4.3.1 insufficient storage", "250 2.1.0 ok"])
    with smtplib.SMTP(sink.host, sink.port, timeout=5) as c:
        with pytest.raises(smtplib.SMTPSenderRefused) as err:
            c.sendmail("alice@example.com", ["bob@remote.test"], MESSAGE)
        assert err.value.smtp_code == 452
        c.rset()
        with pytest.raises(smtplib.SMTPDataError) as err:
            c.sendmail("alice@example.com", ["bob@remote.test"], MESSAGE)
        assert err.value.smtp_code == 554 and err.value.smtp_error == b"5.7.1 no"
        c.rset()
        assert c.sendmail("alice@example.com", ["bob@remote.test"], MESSAGE) == {}
    assert sink.wait_for(3) and len(sink.messages) == 3
    assert [t.reply for t in sink.transactions] == ["250 2.0.0 Ok: queued"] * 2 + [
        "554 5.7.1 no", "250 2.0.0 fine now"]
    # A multi-line scripted reply.
    sink.set_rcpt_replies("multi@remote.test", ["550-5.1.1 first line\nsecond line"])
    r = raw(sink)
    r.greet()
    r.cmd("MAIL FROM:<a@b.test>")
    assert r.cmd("RCPT TO:<multi@remote.test>") == [b"550-5.1.1 first line",
                                                     b"550 second line"]
    r.close()


def test_close_in_data(sink):
    body = b"Subject: cut\r\n\r\n" + b"0123456789abcdef\r\n" * 100
    sink.configure(close_in_data=500, close_in_data_times=1)
    r = raw(sink)
    r.greet()
    r.cmd("MAIL FROM:<alice@example.com>")
    r.cmd("RCPT TO:<bob@remote.test>")
    assert r.cmd("DATA")[-1].startswith(b"354 ")
    try:
        r.send(dot_stuff(body))
    except (BrokenPipeError, ConnectionResetError):
        pass
    assert r.closed()
    assert r.buf == b""  # no reply before the close
    r.close()
    assert sink.cuts == 1
    assert sink.transactions == []
    # The next transfer (times is used up) goes through, whole.
    with smtplib.SMTP(sink.host, sink.port, timeout=5) as c:
        c.sendmail("alice@example.com", ["bob@remote.test"], body)
    assert sink.wait_for(1)
    assert sink.messages[0].data == body and sink.cuts == 1
    # In BDAT too, and for every transfer while times is None.
    sink.configure(close_in_data=10, close_in_data_times=None)
    for _ in range(2):
        r = raw(sink)
        r.greet()
        r.cmd("MAIL FROM:<a@b.test>")
        r.cmd("RCPT TO:<c@d.test>")
        try:
            r.send(b"BDAT 100 LAST\r\n" + b"x" * 100)
        except (BrokenPipeError, ConnectionResetError):
            pass
        assert r.closed() and r.buf == b""
        r.close()
    assert sink.cuts == 3 and len(sink.messages) == 1


def test_silent_greeting_and_421(sink):
    sink.configure(greeting=None)
    started = time.monotonic()
    with pytest.raises((socket.timeout, smtplib.SMTPServerDisconnected)):
        smtplib.SMTP(sink.host, sink.port, timeout=1)
    assert 0.9 <= time.monotonic() - started < 5
    assert sink.wait_sessions(1)
    # A raw client that writes first still hears nothing.
    r = raw(sink, timeout=1)
    r.send(b"EHLO client.example\r\n")
    with pytest.raises(socket.timeout):
        r.readline()
    r.close()
    sink.configure(greeting="421 4.3.2 sink.test busy, come back later")
    with pytest.raises(smtplib.SMTPConnectError) as err:
        smtplib.SMTP(sink.host, sink.port, timeout=5)
    assert err.value.smtp_code == 421
    sink.configure(greeting="554 5.7.1 sink.test no service for you")
    r = raw(sink)
    assert r.reply_line() == b"554 5.7.1 sink.test no service for you"
    assert r.cmd("EHLO client.example")[-1].startswith(b"503 ")
    assert r.cmd("QUIT")[-1].startswith(b"221 ")
    r.close()
    sink.configure(greeting="220 sink.test ready again")
    with smtplib.SMTP(sink.host, sink.port, timeout=5) as c:
        c.sendmail("alice@example.com", ["bob@remote.test"], MESSAGE)
    assert sink.wait_for(1) and sink.connections == 5


def test_long_lines_refused(sink):
    r = raw(sink)
    r.greet()
    assert r.cmd(b"NOOP " + b"x" * 1100)[-1].startswith(b"500 ")
    assert r.cmd("NOOP")[-1].startswith(b"250 ")
    # 998 characters and CRLF is the longest line allowed.
    assert r.cmd(b"NOOP " + b"y" * 993)[-1].startswith(b"250 ")
    r.cmd("MAIL FROM:<a@b.test>")
    r.cmd("RCPT TO:<c@d.test>")
    assert r.cmd("DATA")[-1].startswith(b"354 ")
    r.send(b"Subject: long\r\n\r\n" + b"z" * 999 + b"\r\nafter\r\n.\r\n")
    assert r.reply_line().startswith(b"500 ")
    assert r.cmd("NOOP")[-1].startswith(b"250 ")
    # The transaction is gone: a new one works, a line of exactly 998 passes.
    r.cmd("MAIL FROM:<a@b.test>")
    r.cmd("RCPT TO:<c@d.test>")
    assert r.cmd("DATA")[-1].startswith(b"354 ")
    r.send(b"Subject: long\r\n\r\n" + b"z" * 998 + b"\r\n.\r\n")
    assert r.reply_line().startswith(b"250 ")
    r.close()
    assert sink.wait_for(1) and len(sink.messages) == 1
    assert sink.messages[0].data.endswith(b"z" * 998 + b"\r\n")


def test_command_order_and_size(sink):
    r = raw(sink)
    assert r.reply_line().startswith(b"220 sink.test ")
    assert r.cmd("MAIL FROM:<a@b.test>")[-1].startswith(b"503 ")  # no EHLO yet
    assert r.cmd("HELO client.example")[-1] == b"250 sink.test"
    assert r.cmd("RCPT TO:<c@d.test>")[-1].startswith(b"503 ")
    assert r.cmd("DATA")[-1].startswith(b"503 ")
    assert r.cmd("MAIL FROM:<a@b.test> SIZE=52428801")[-1].startswith(b"552 5.3.4")
    assert r.cmd("MAIL FROM:a@b.test")[-1].startswith(b"501 ")
    assert r.cmd("MAIL FROM:<a@b.test> SIZE=52428800")[-1].startswith(b"250 ")
    assert r.cmd("MAIL FROM:<a@b.test>")[-1].startswith(b"503 ")  # nested
    sink.set_rcpt_replies("c@d.test", ["550 5.1.1 no"])
    assert r.cmd("RCPT TO:<c@d.test>")[-1].startswith(b"550 ")
    assert r.cmd("DATA")[-1].startswith(b"554 ")  # no valid recipient
    assert r.cmd("FROB")[-1].startswith(b"500 ")
    assert r.cmd("QUIT")[-1].startswith(b"221 ")
    assert r.closed()
    r.close()


def test_several_addresses_and_parallel_sessions():
    with SmtpSink(host=["127.0.0.2", "127.0.0.3"]) as sink:
        assert sink.host == "127.0.0.2"
        conns = [raw(sink, "127.0.0.2") for _ in range(3)] + [raw(sink, "127.0.0.3")]
        for c in conns:
            c.greet()
        for c in conns:
            c.cmd("QUIT")
            c.close()
        assert sink.connections == 4
        assert sink.max_parallel == {"127.0.0.2": 3, "127.0.0.3": 1}
        assert sink.max_parallel_total == 4
        assert {s.local for s in sink.sessions} == {("127.0.0.2", sink.port),
                                                    ("127.0.0.3", sink.port)}
        # One after the other: never more than one at once.
        for _ in range(3):
            with smtplib.SMTP("127.0.0.3", sink.port, timeout=5) as c:
                c.sendmail("a@b.test", ["c@d.test"], b"Subject: x\r\n\r\ny\r\n")
        assert sink.wait_for(3)
        assert sink.max_parallel["127.0.0.3"] == 1
        assert all(m.local[0] == "127.0.0.3" for m in sink.messages)


def test_delay(sink):
    r = raw(sink)
    r.greet()
    sink.configure(delay_s=0.4)
    started = time.monotonic()
    assert r.cmd("NOOP")[-1].startswith(b"250 ")
    assert time.monotonic() - started >= 0.4
    sink.configure(delay_s=0, data_delay_s=0.5)
    started = time.monotonic()
    assert r.cmd("MAIL FROM:<a@b.test>")[-1].startswith(b"250 ")
    assert r.cmd("RCPT TO:<c@d.test>")[-1].startswith(b"250 ")
    assert time.monotonic() - started < 0.4  # only the reply after the data waits
    r.send(b"BDAT 1 LAST\r\nx")
    assert r.reply_line().startswith(b"250 ")
    assert time.monotonic() - started >= 0.5
    r.close()


def test_stop_cuts_idle_sessions():
    sink = SmtpSink().start()
    r = raw(sink)
    r.greet()
    sink.configure(greeting=None)
    silent = raw(sink)
    assert sink.wait_sessions(2)
    done = threading.Event()
    threading.Thread(target=lambda: (sink.stop(), done.set()), daemon=True).start()
    assert done.wait(5)
    assert r.closed(2) and silent.closed(2)
    r.close()
    silent.close()
    with pytest.raises(OSError):
        socket.create_connection((sink.host, sink.port), timeout=1)


def test_loopback_only():
    for host in ("0.0.0.0", "192.0.2.1", "::1", "localhost", "127.0.0.256"):
        with pytest.raises(ValueError):
            SmtpSink(host=host)
