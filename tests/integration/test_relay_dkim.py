"""DKIM signing of what the delivery agent sends (issue 8, point 4): every
outgoing message whose From: domain has a key is signed, once. Mail our
users submit is signed at receipt by the filters; what toasterd makes
itself (vacation replies, bounces) or takes without the filters is signed
by the agent as it goes out. The sink's copy is checked with dkimpy
(python3-dkim), not with our own verifier.

Every address is on 127.0.0.0/8.
"""

import re

import dkim

from smtp_sink import SmtpSink
from test_dkim import dns_table, key_record, openssl_key
from test_relay import DELIVERY_S, message, relay_toaster, wait_queue_empty


def signing_toaster(make_toaster, sink, tmp_path, **config):
    key_path = tmp_path / "example.com.pem"
    host_key_path = tmp_path / "mx.example.com.pem"
    openssl_key(key_path, "rsa2048")
    openssl_key(host_key_path, "rsa2048")
    records = {
        "sel._domainkey.example.com": key_record(key_path, "rsa2048"),
        "sel._domainkey.mx.example.com": key_record(host_key_path, "rsa2048"),
    }
    settings = {
        "dkim_key": ["example.com sel %s" % key_path, "mx.example.com sel %s" % host_key_path],
    }
    settings.update(config)
    t = relay_toaster(make_toaster, sink.port, start=False, **settings)
    return t, dns_table(records)


def signatures(data):
    header = data.split(b"\r\n\r\n", 1)[0]
    return re.findall(rb"(?im)^DKIM-Signature:.*(?:\r\n[ \t].*)*", header)


def test_vacation_reply_is_signed(make_toaster, tmp_path):
    from test_sieve_delivery import put_script

    with SmtpSink() as sink:
        t, dnsfunc = signing_toaster(make_toaster, sink, tmp_path, sieve="yes")
        put_script(t, "bob@example.com", 'require "vacation";\r\nvacation "Away.";\r\n')
        t.start()
        t.send("someone@remote.test", ["bob@example.com"],
               message("hello bob", ["bob@example.com"], sender="someone@remote.test"))
        assert sink.wait_for(1, DELIVERY_S), t.log()[-3000:]
        wait_queue_empty(t)
        reply = sink.messages[0]
        assert reply.mail_from == ""
        sigs = signatures(reply.data)
        assert len(sigs) == 1, reply.data[:800]
        assert b"d=example.com" in sigs[0]
        assert dkim.verify(reply.data, dnsfunc=dnsfunc) is True
        # Changing what was signed breaks it: the check is real.
        assert dkim.verify(reply.data.replace(b"Away.", b"Here."), dnsfunc=dnsfunc) is False
        assert ": DKIM-signed for example.com" in t.log()


def test_submitted_mail_is_signed_once(make_toaster, tmp_path):
    """The filters sign alice's mail at receipt; the agent sees their
    signature and adds none."""
    with SmtpSink() as sink:
        t, dnsfunc = signing_toaster(make_toaster, sink, tmp_path)
        t.start()
        t.send("alice@example.com", ["bob@remote.test"], message("signed once"))
        assert sink.wait_for(1, DELIVERY_S), t.log()[-3000:]
        data = sink.messages[0].data
        assert len(signatures(data)) == 1, data[:800]
        assert dkim.verify(data, dnsfunc=dnsfunc) is True
        assert ": DKIM-signed for" not in t.log()


def test_bounce_to_a_remote_sender_is_signed(make_toaster, tmp_path):
    """A message from a remote sender relayed for mynetworks fails; its
    bounce (From: MAILER-DAEMON@mx.example.com) goes to the sender's MX,
    signed with mx.example.com's key."""
    with SmtpSink() as sink:
        sink.set_rcpt_replies("nobody@remote.test", ["550 5.1.1 no such user"])
        t, dnsfunc = signing_toaster(make_toaster, sink, tmp_path)
        t.start()
        t.send("carol@remote.test", ["nobody@remote.test"],
               message("will bounce", ["nobody@remote.test"], sender="carol@remote.test"))
        assert sink.wait_for(1, DELIVERY_S), t.log()[-3000:]
        wait_queue_empty(t)
        bounce = sink.messages[0]
        assert bounce.mail_from == "" and bounce.rcpts == ["carol@remote.test"]
        assert b"MAILER-DAEMON@mx.example.com" in bounce.data
        sigs = signatures(bounce.data)
        assert len(sigs) == 1 and b"d=mx.example.com" in sigs[0], bounce.data[:800]
        assert dkim.verify(bounce.data, dnsfunc=dnsfunc) is True
