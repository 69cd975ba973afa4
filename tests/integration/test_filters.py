"""The filter chain end to end: the real toasterd, real SMTP clients, DNS
answered from the daemon's override zone (nothing leaves the machine).

Inbound mail gets one Authentication-Results field with dkim=, spf= and
dmarc= (signatures made by Debian's dkimpy, records in the zone), a
DMARC p=reject failure is refused at DATA, forged Authentication-Results
fields that claim our authserv-id are taken out, GTUBE is rejected as in
Rspamd, greylisting defers a first delivery and passes the retry, and
mail that our authenticated users send is DKIM-signed with the key
`toasterctl dkim keygen` made, which dkimpy verifies.
"""
import base64
import re
import smtplib
import subprocess
import time

import dkim
import pytest

from conftest import TOASTERCTL, filter_fields

GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"


def keygen(tmp_path, domain, selector, *args):
    """A key by toasterctl: (path, TXT record text as the zone wants it)."""
    keydir = tmp_path / "keys"
    keydir.mkdir(exist_ok=True)
    out = subprocess.run([TOASTERCTL, "dkim", "keygen", domain, selector, "--dir", str(keydir),
                          *args], capture_output=True, text=True, timeout=120, check=True)
    record = [line for line in out.stdout.splitlines() if "._domainkey." in line][0]
    path = keydir / ("%s.%s.pem" % (domain, selector))
    return path, record


def txt_value(record_line):
    return "".join(re.findall(r'"([^"]*)"', record_line))


def message(sender, subject, body="Hello there.\r\n", extra=""):
    return ("From: <%s>\r\nTo: <carol@example.org>\r\nSubject: %s\r\n"
            "Date: Fri, 04 Dec 2026 10:00:00 +0000\r\nMessage-ID: <%s@remote.test>\r\n%s\r\n%s"
            % (sender, subject, subject.replace(" ", "."), extra, body)).encode()


def send(toaster, sender, msg, rcpt="carol@example.org"):
    with smtplib.SMTP("127.0.0.1", toaster.port, timeout=30) as s:
        s.ehlo("client.remote.test")
        return s.sendmail(sender, [rcpt], msg)


def stored_with(toaster, mailbox, subject):
    for m in toaster.messages(mailbox):
        if ("Subject: " + subject).encode() in m:
            return m
    raise AssertionError("no message %r in %s" % (subject, mailbox))


def auth_results(stored):
    fields = filter_fields(stored).decode()
    m = re.search(r"Authentication-Results: (.*?)\r\n(?=\S|$)", fields, re.S)
    assert m, fields
    return re.sub(r"\r\n[ \t]+", " ", m.group(1))


@pytest.fixture
def zone_toaster(make_toaster, tmp_path):
    key, record = keygen(tmp_path, "sender.test", "s1")
    t = make_toaster(start=False)
    t.write_dns_zone([
        'sender.test. TXT "v=spf1 ip4:127.0.0.1 -all"',
        record.replace(" IN TXT ", " TXT "),
        '_dmarc.sender.test. TXT "v=DMARC1; p=reject"',
        'strict.test. TXT "v=spf1 ip4:192.0.2.1 -all"',
        '_dmarc.strict.test. TXT "v=DMARC1; p=reject"',
        'lenient.test. TXT "v=spf1 ip4:192.0.2.1 -all"',
        '_dmarc.lenient.test. TXT "v=DMARC1; p=none"',
    ])
    t.start()
    t.sender_key = key
    return t


def test_spf_dkim_dmarc_pass_in_one_field(zone_toaster):
    msg = message("news@sender.test", "signed")
    signed = dkim.sign(msg, b"s1", b"sender.test", zone_toaster.sender_key.read_bytes(),
                       include_headers=[b"from", b"to", b"subject", b"date", b"message-id"])
    send(zone_toaster, "news@sender.test", signed + msg)
    stored = stored_with(zone_toaster, "carol@example.org", "signed")
    ar = auth_results(stored)
    assert ar.startswith("mx.example.com;"), ar
    assert "dkim=pass header.d=sender.test header.s=s1 header.a=rsa-sha256" in ar, ar
    assert "spf=pass smtp.mailfrom=sender.test" in ar, ar
    assert "dmarc=pass" in ar and "header.from=sender.test" in ar, ar
    # Stored right below Return-Path, with the spam filter's fields.
    assert stored.startswith(b"Return-Path: <news@sender.test>\r\nAuthentication-Results: ")
    assert b"X-Spamd-Result: default: False [" in stored
    assert b"X-Spam-Status: No, score=" in stored


def test_dkim_tampered_body_fails(zone_toaster):
    msg = message("news@sender.test", "tampered")
    signed = dkim.sign(msg, b"s1", b"sender.test", zone_toaster.sender_key.read_bytes())
    send(zone_toaster, "news@sender.test", signed + msg.replace(b"Hello", b"Jello"))
    ar = auth_results(stored_with(zone_toaster, "carol@example.org", "tampered"))
    assert "dkim=fail" in ar and "spf=pass" in ar and "dmarc=pass" in ar, ar


def test_dmarc_reject_refused_at_data(zone_toaster):
    with pytest.raises(smtplib.SMTPDataError) as info:
        send(zone_toaster, "ceo@strict.test", message("ceo@strict.test", "phish"))
    assert info.value.smtp_code == 550
    assert b"5.7.1" in info.value.smtp_error and b"strict.test" in info.value.smtp_error
    assert zone_toaster.messages("carol@example.org") == []
    # p=none: reported, delivered.
    send(zone_toaster, "a@lenient.test", message("a@lenient.test", "lenient"))
    ar = auth_results(stored_with(zone_toaster, "carol@example.org", "lenient"))
    assert "spf=fail" in ar and "dmarc=fail" in ar and "dkim=none" in ar, ar


def test_forged_auth_results_removed(zone_toaster):
    forged = ("Authentication-Results: mx.example.com; dkim=pass header.d=bank.test\r\n"
              "Authentication-Results: other.example; spf=pass smtp.mailfrom=x.test\r\n")
    send(zone_toaster, "news@sender.test", message("news@sender.test", "forged", extra=forged))
    stored = stored_with(zone_toaster, "carol@example.org", "forged")
    assert b"header.d=bank.test" not in stored
    assert b"Authentication-Results: other.example; spf=pass smtp.mailfrom=x.test\r\n" in stored
    assert stored.count(b"Authentication-Results: mx.example.com;") == 1


def test_gtube_rejected(toaster):
    with pytest.raises(smtplib.SMTPDataError) as info:
        send(toaster, "someone@remote.test", message("someone@remote.test", "gtube",
                                                     body=GTUBE + "\r\n"))
    assert info.value.smtp_code == 554 and b"5.7.1" in info.value.smtp_error
    assert toaster.messages("carol@example.org") == []


def test_greylisting_defers_then_passes(make_toaster):
    t = make_toaster(config={"greylist": "always", "greylist_local": "yes",
                             "greylist_delay": "1s"})
    msg = message("first@remote.test", "greylisted")
    with pytest.raises(smtplib.SMTPDataError) as info:
        send(t, "first@remote.test", msg)
    assert info.value.smtp_code == 451 and b"4.7.1" in info.value.smtp_error
    assert b"Greylisted" in info.value.smtp_error
    time.sleep(1.5)
    send(t, "first@remote.test", msg)
    assert len(t.messages("carol@example.org")) == 1
    # The triplet is known now: at once.
    send(t, "first@remote.test", message("first@remote.test", "again"))
    assert len(t.messages("carol@example.org")) == 2


def test_outgoing_mail_signed(make_toaster, tmp_path):
    """An authenticated user's mail is signed with its From: domain's key;
    dkimpy verifies the stored copy against the record keygen printed."""
    key, record = keygen(tmp_path, "example.com", "out1")
    t = make_toaster(config={"dkim_key": "example.com out1 %s" % key})
    msg = ("From: Alice <alice@example.com>\r\nTo: <carol@example.org>\r\n"
           "Subject: outgoing\r\nDate: Fri, 04 Dec 2026 10:00:00 +0000\r\n"
           "Message-ID: <out1@example.com>\r\n\r\nFrom us to you.\r\n").encode()
    with smtplib.SMTP("127.0.0.1", t.ports["submission_listen"], timeout=30) as s:
        s.ehlo("laptop.example.com")
        s.login("alice@example.com", "alice-secret")
        s.sendmail("alice@example.com", ["carol@example.org"], msg)
    stored = stored_with(t, "carol@example.org", "outgoing")
    assert stored.startswith(b"Return-Path: <alice@example.com>\r\nDKIM-Signature: v=1; a=rsa-sha256;")
    assert b"Authentication-Results" not in stored  # our own users' mail is not judged
    value = txt_value(record).encode()
    assert dkim.verify(stored, dnsfunc=lambda name, timeout=5: value
                       if name == b"out1._domainkey.example.com." else None) is True
    assert "dkim-signed=example.com" in t.log()


def test_no_dns_leaves_the_machine(toaster):
    """Every name not in the zone is NXDOMAIN at once: no waiting, no packets."""
    start = time.monotonic()
    send(toaster, "x@nowhere.test", message("x@nowhere.test", "nowhere"))
    assert time.monotonic() - start < 5
    ar = auth_results(stored_with(toaster, "carol@example.org", "nowhere"))
    assert "spf=none" in ar and "dmarc=none" in ar, ar


def test_time_budget_defers(make_toaster):
    """A resolver that never answers: the checks run out of their budget and
    the message is deferred (451 4.7.1), not accepted unchecked; the silent
    server is a socket of this test on loopback."""
    import socket as socketlib
    silent = socketlib.socket(socketlib.AF_INET, socketlib.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))
    try:
        t = make_toaster(start=False, config={
            "dns_servers": "127.0.0.1:%d" % silent.getsockname()[1],
            "dns_timeout": "500ms", "dns_tries": "1", "filter_time_budget": "200ms"})
        t.dns_zone_file.write_text("; every name goes to the (silent) resolver\n")
        t.start()
        start = time.monotonic()
        with pytest.raises(smtplib.SMTPDataError) as info:
            send(t, "x@slow.test", message("x@slow.test", "slow"))
        assert info.value.smtp_code == 451 and b"4.7.1" in info.value.smtp_error
        assert time.monotonic() - start < 10
        assert "over-time-budget" in t.log()
        assert t.messages("carol@example.org") == []
    finally:
        silent.close()


def test_greylist_memory_survives_restart(make_toaster):
    """The embedded store is saved in data_dir/kv at shutdown and loaded at
    start: a triplet seen before a restart passes after it."""
    t = make_toaster(config={"greylist": "always", "greylist_local": "yes",
                             "greylist_delay": "1s"})
    msg = message("first@remote.test", "remembered")
    with pytest.raises(smtplib.SMTPDataError):
        send(t, "first@remote.test", msg)
    t.stop()
    assert (t.data_dir / "kv" / "greylist.kv").is_file()
    t.proc = None
    t.start()
    time.sleep(1.2)
    send(t, "first@remote.test", msg)  # known from before the restart: passes
    assert len(t.messages("carol@example.org")) == 1
    assert "greylist.kv" in t.log()


EICAR = r"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"


@pytest.mark.parametrize("order,code", [
    ("clamav, dkim, spf, dmarc, spam", b"5.7.0"),   # the default: the scan first
    ("dkim, spf, dmarc, spam, clamav", b"5.7.1"),   # scoring first: GTUBE decides
])
def test_filter_order(make_toaster, order, code):
    """filter_order decides which filter speaks first: a message that is
    both GTUBE and infected is refused by whichever comes first."""
    t = make_toaster(config={"filter_order": order})
    t.wait_log("clamav: engine 1 loaded", timeout=30)
    body = ("--b\r\nContent-Type: text/plain\r\n\r\n%s\r\n"
            "--b\r\nContent-Type: application/octet-stream\r\n\r\n%s\r\n--b--\r\n" % (GTUBE, EICAR))
    msg = message("x@remote.test", "both", body=body,
                  extra='MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b"\r\n')
    with pytest.raises(smtplib.SMTPDataError) as info:
        send(t, "x@remote.test", msg)
    assert info.value.smtp_code == 554 and code in info.value.smtp_error, info.value


def test_filter_order_refused(make_toaster):
    t = make_toaster(config={"filter_order": "spam, dkim, spf, dmarc, clamav"}, start=False)
    with pytest.raises(AssertionError):
        t.start()
    assert "filter_order: dmarc must follow dkim and spf, and spam must follow dmarc" in t.log()
