"""Delivery status notifications (store/dsn) read back by another parser.

tests/tools/dsn_tool composes a DSN from command-line arguments exactly as
the delivery agent will (dsn_compose); Python's email package parses it and
we check what a mail client or a bounce processor sees: multipart/report
with report-type=delivery-status, three parts, the delivery-status fields
per message and per recipient, the original returned whole or as headers,
UTF-8 addresses as message/global-delivery-status (RFC 6533), no header
injected through a reply, and the null sender refused. No network.
"""
import email
import email.policy
import os
import subprocess

import pytest

DSN_TOOL = os.environ.get("DSN_TOOL") or "/work/main/build/tests/dsn_tool"

pytestmark = pytest.mark.skipif(
    not os.access(DSN_TOOL, os.X_OK),
    reason=f"DSN_TOOL ({DSN_TOOL}) is not built: meson compile tests/dsn_tool",
)

ORIGINAL = (
    b"Return-Path: <alice@example.com>\r\n"
    b"From: Alice <alice@example.com>\r\n"
    b"To: bob@example.net\r\n"
    b"Subject: quarterly numbers\r\n"
    b"Message-ID: <q1@example.com>\r\n"
    b"\r\n"
    b"Numbers attached.\r\n"
)


def run_tool(args, message=ORIGINAL):
    result = subprocess.run([DSN_TOOL, *args], input=message, capture_output=True, timeout=60)
    return result


def compose(args, message=ORIGINAL):
    result = run_tool(args, message)
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout


def parse(raw):
    return email.message_from_bytes(raw, policy=email.policy.compat32)


def status_blocks(msg, raw):
    """The delivery-status part as a list of field blocks (per-message first)."""
    parts = msg.get_payload()
    status = parts[1]
    assert status.get_content_type() in ("message/delivery-status",
                                         "message/global-delivery-status")
    payload = status.get_payload()
    if status.get_content_type() == "message/delivery-status":
        assert isinstance(payload, list)
        return payload
    # email does not know message/global-delivery-status (RFC 6533): take
    # the part's bytes between its boundaries and split the blocks.
    delim = b"\r\n--" + msg.get_boundary().encode() + b"\r\n"
    body = raw.split(delim)[2].split(b"\r\n\r\n", 1)[1]
    body = body.split(b"\r\n--" + msg.get_boundary().encode())[0]
    blocks = [b for b in body.decode("utf-8").split("\r\n\r\n") if b.strip()]
    return [email.message_from_string(b + "\r\n") for b in blocks]


def test_bounce_structure():
    raw = compose(["--envid", "QQ314159", "--ret", "full",
                   "--rcpt", "bob@example.net|rfc822;Bob+2Bx@example.net||failed|"
                             "mx.example.net|550 5.1.1 <bob@example.net>: User unknown",
                   "--rcpt", "carol@example.net|||failed||"])
    msg = parse(raw)
    assert msg.get_content_type() == "multipart/report"
    assert msg.get_param("report-type") == "delivery-status"
    assert msg["From"] == "Mail Delivery System <MAILER-DAEMON@mx.toaster.test>"
    assert msg["To"] == "<alice@example.com>"
    assert msg["Subject"] == "Undelivered Mail Returned to Sender"
    assert msg["Auto-Submitted"] == "auto-replied"
    assert msg["Message-ID"].startswith("<dsn.")
    assert msg["Date"]
    parts = msg.get_payload()
    assert [p.get_content_type() for p in parts] == [
        "text/plain", "message/delivery-status", "message/rfc822"]
    assert not msg.defects
    for part in parts:
        assert not part.defects

    text = parts[0].get_payload(decode=True).decode("ascii")
    assert "This is the mail system at host mx.toaster.test." in text
    assert "<bob@example.net> (expanded from <Bob+x@example.net>): host mx.example.net" in text
    assert "<carol@example.net>: delivery failed" in text

    blocks = status_blocks(msg, raw)
    assert len(blocks) == 3
    per_message, bob, carol = blocks
    assert per_message["Reporting-MTA"] == "dns; mx.toaster.test"
    assert per_message["X-Toaster-Queue-ID"] == "14CB8BFEB7900000"
    assert per_message["Original-Envelope-Id"] == "QQ314159"
    assert per_message["Arrival-Date"]
    assert bob["Final-Recipient"] == "rfc822; bob@example.net"
    assert bob["Original-Recipient"] == "rfc822; Bob+x@example.net"
    assert bob["Action"] == "failed"
    assert bob["Status"] == "5.1.1"
    assert bob["Remote-MTA"] == "dns; mx.example.net"
    assert bob["Diagnostic-Code"] == "smtp; 550 5.1.1 <bob@example.net>: User unknown"
    assert bob["Last-Attempt-Date"]
    assert carol["Final-Recipient"] == "rfc822; carol@example.net"
    assert carol["Status"] == "5.0.0"
    assert carol["Diagnostic-Code"] is None

    returned = parts[2].get_payload()[0]
    assert returned["Subject"] == "quarterly numbers"
    assert returned.get_payload() == "Numbers attached.\r\n"


def test_ret_hdrs_and_delay():
    raw = compose(["--ret", "hdrs", "--until", str(1733990400 + 4 * 86400),
                   "--rcpt", "bob@example.net||DELAY|delayed|mx.example.net|451 4.7.1 greylisted"])
    msg = parse(raw)
    assert msg["Subject"] == "Delayed Mail (still being retried)"
    parts = msg.get_payload()
    assert parts[2].get_content_type() == "text/rfc822-headers"
    assert b"Numbers attached." not in raw
    assert "Subject: quarterly numbers" in parts[2].get_payload()
    per_message, bob = status_blocks(msg, raw)
    assert bob["Action"] == "delayed"
    assert bob["Status"] == "4.7.1"
    assert bob["Will-Retry-Until"]
    assert "THIS IS A WARNING ONLY" in parts[0].get_payload()


def test_success_only_when_asked():
    result = run_tool(["--rcpt", "bob@example.net|||delivered|mx.example.net|250 2.0.0 ok"])
    assert result.returncode == 3
    assert b"No data" in result.stderr
    raw = compose(["--rcpt", "bob@example.net||SUCCESS|relayed|mx.example.net|250 2.0.0 ok"])
    msg = parse(raw)
    assert msg["Subject"] == "Successful Mail Delivery Report"
    assert status_blocks(msg, raw)[1]["Action"] == "relayed"
    result = run_tool(["--rcpt", "bob@example.net||NEVER|failed|mx.example.net|550 no"])
    assert result.returncode == 3


def test_null_sender_refused():
    result = run_tool(["--from", "", "--rcpt", "bob@example.net|||failed|mx|550 no"])
    assert result.returncode == 3
    assert b"Invalid argument" in result.stderr


def test_utf8_recipient_is_global():
    raw = compose(["--rcpt", "j\u00f6rg@b\u00fccher.example|||failed|mx.example.net|550 5.1.1 no"])
    msg = parse(raw)
    parts = msg.get_payload()
    assert parts[1].get_content_type() == "message/global-delivery-status"
    assert msg["Content-Transfer-Encoding"] == "8bit"
    blocks = status_blocks(msg, raw)
    assert blocks[1]["Final-Recipient"] == "utf-8; j\u00f6rg@b\u00fccher.example"


def test_reply_injection():
    raw = compose(["--rcpt", "bob@example.net|||failed|mx.example.net|"
                             "550 5.1.1 no\r\nBcc: victim@example.org\r\n\r\nX-Evil: 1"])
    msg = parse(raw)
    assert msg["Bcc"] is None
    blocks = status_blocks(msg, raw)
    assert len(blocks) == 2
    assert blocks[1]["X-Evil"] is None
    assert blocks[1]["Bcc"] is None
    assert blocks[1]["Diagnostic-Code"].startswith("smtp; 550 5.1.1 no  Bcc: victim@example.org")
    for line in raw.split(b"\r\n"):
        assert len(line) <= 998
        assert b"\n" not in line and b"\r" not in line


def test_original_quoting_a_boundary():
    first = compose(["--rcpt", "bob@example.net|||failed|mx.example.net|550 no"])
    boundary = parse(first).get_boundary().encode()
    quoting = (b"Subject: re\r\n\r\n--" + boundary + b"\r\nContent-Type: text/plain\r\n\r\nfake\r\n--"
               + boundary + b"--\r\n")
    raw = compose(["--rcpt", "bob@example.net|||failed|mx.example.net|550 no"], quoting)
    msg = parse(raw)
    assert msg.get_boundary().encode() != boundary
    assert len(msg.get_payload()) == 3
    assert msg.get_payload()[2].get_content_type() == "message/rfc822"
