"""PIPELINING and CHUNKING (BDAT) against the real toasterd over raw sockets.

Whole transactions are written in one send and the replies must come back
complete and in command order; BDAT bodies are cut at awkward places (inside
CRLF, empty last chunk, one byte per chunk) and must be stored byte for byte.
Refused BDAT chunks must still be consumed so the command stream stays in step.
smtplib with its ESMTP options closes the module.
"""

import re
import time

from conftest import QUEUED_RE, dot_stuff, split_trace, wait_until

SENDER = "sender@remote.test"


def message(tag, body=b"Hello.\r\n"):
    return (b"From: <sender@remote.test>\r\nSubject: " + tag.encode() +
            b"\r\nMessage-ID: <" + tag.encode() + b"@remote.test>\r\n\r\n" + body)


def stored_body(toaster, mailbox):
    paths = toaster.delivered(mailbox)
    assert len(paths) == 1, paths
    stored = paths[0].read_bytes()
    m = re.search(r",S=(\d+),W=(\d+)$", paths[0].name)
    assert int(m.group(1)) == len(stored)
    return split_trace(stored)[1]


def bdat_chunks(data, sizes, last=True):
    """BDAT commands with their chunks: sizes cut data, the rest is the last chunk."""
    out = b""
    pos = 0
    for size in sizes:
        out += b"BDAT %d\r\n" % size + data[pos:pos + size]
        pos += size
    rest = data[pos:]
    if last:
        out += b"BDAT %d LAST\r\n" % len(rest) + rest
    else:
        out += b"BDAT %d\r\n" % len(rest) + rest
    return out


# ---- PIPELINING -------------------------------------------------------------------


def test_pipelined_transaction_one_write(toaster):
    msg = message("pipelined")
    with toaster.raw() as c:
        assert c.reply_line().startswith(b"220 ")
        c.send(b"EHLO client.example\r\n"
               b"MAIL FROM:<sender@remote.test>\r\n"
               b"RCPT TO:<alice@example.com>\r\n"
               b"RCPT TO:<nobody@example.com>\r\n"
               b"RCPT TO:<victim@remote.test>\r\n"
               b"RCPT TO:<bob@example.com>\r\n"
               b"DATA\r\n" + dot_stuff(msg) +
               b"NOOP\r\n"
               b"QUIT\r\n")
        ehlo = c.reply()
        assert ehlo[0] == b"250-mx.example.com" and b"250-PIPELINING" in ehlo
        replies = c.replies(9)
        assert c.closed()
    assert replies[0] == b"250 2.1.0 Ok"
    assert replies[1] == b"250 2.1.5 Ok"
    assert replies[2].startswith(b"550 5.1.1 <nobody@example.com>")
    assert replies[3].startswith(b"554 5.7.1 <victim@remote.test>")
    assert replies[4] == b"250 2.1.5 Ok"
    assert replies[5].startswith(b"354 ")
    assert QUEUED_RE.match(replies[6]), replies[6]
    assert replies[7] == b"250 2.0.0 Ok"
    assert replies[8] == b"221 2.0.0 Bye"
    assert stored_body(toaster, "alice@example.com") == msg
    assert stored_body(toaster, "bob@example.com") == msg
    assert len(toaster.all_delivered()) == 2


def test_pipelined_several_transactions_one_write(toaster):
    msgs = [message("batch %d" % i, body=b".dot\r\nline %d\r\n" % i) for i in range(10)]
    stream = b"EHLO client.example\r\n"
    for i, msg in enumerate(msgs):
        stream += (b"MAIL FROM:<sender@remote.test>\r\n"
                   b"RCPT TO:<%s>\r\n" % (b"alice@example.com" if i % 2 else b"carol@example.org")
                   + b"DATA\r\n" + dot_stuff(msg))
        if i == 4:
            stream += b"RSET\r\n"
    stream += b"QUIT\r\n"
    with toaster.raw() as c:
        c.reply()
        c.send(stream)
        c.reply()
        replies = c.replies(4 * len(msgs) + 2)
        assert c.closed()
    expected = []
    for i in range(len(msgs)):
        expected += [b"250 2.1.0 Ok", b"250 2.1.5 Ok", b"354", b"queued"]
        if i == 4:
            expected.append(b"250 2.0.0 Ok")
    expected.append(b"221 2.0.0 Bye")
    for got, want in zip(replies, expected):
        if want == b"354":
            assert got.startswith(b"354 "), got
        elif want == b"queued":
            assert QUEUED_RE.match(got), got
        else:
            assert got == want
    ids = [QUEUED_RE.match(r).group(1) for r in replies if QUEUED_RE.match(r)]
    assert len(set(ids)) == len(msgs)
    stored = [split_trace(p.read_bytes())[1] for p in toaster.all_delivered()]
    assert sorted(stored) == sorted(msgs)


def test_one_byte_at_a_time(toaster):
    """The same session fed in one-byte segments."""
    msg = message("trickle", body=b".\r\n..\r\nend\r\n")
    stream = (b"EHLO client.example\r\nMAIL FROM:<sender@remote.test>\r\n"
              b"RCPT TO:<alice@example.com>\r\nDATA\r\n" + dot_stuff(msg) +
              b"MAIL FROM:<sender@remote.test>\r\nRCPT TO:<bob@example.com>\r\n" +
              bdat_chunks(msg, [5, 1]) + b"QUIT\r\n")
    with toaster.raw() as c:
        import socket
        c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        c.reply()
        for i in range(len(stream)):
            c.send(stream[i:i + 1])
            if i % 50 == 0:
                time.sleep(0.001)
        c.reply()
        replies = c.replies(10)
        assert c.closed()
    assert QUEUED_RE.match(replies[3]), replies
    assert replies[6:8] == [b"250 2.0.0 Ok: 5 octets received", b"250 2.0.0 Ok: 6 octets received"]
    assert QUEUED_RE.match(replies[8]), replies
    assert replies[-1] == b"221 2.0.0 Bye"
    assert stored_body(toaster, "alice@example.com") == msg
    assert stored_body(toaster, "bob@example.com") == msg


# ---- BDAT -------------------------------------------------------------------------


def bdat_session(toaster, rcpts, stream, reply_count):
    with toaster.raw() as c:
        c.greet()
        c.send(b"MAIL FROM:<sender@remote.test>\r\n" +
               b"".join(b"RCPT TO:<%s>\r\n" % r.encode() for r in rcpts) + stream)
        return c.replies(1 + len(rcpts) + reply_count)


def test_bdat_single_chunk(toaster):
    msg = message("bdat single", body=b".not stuffed\r\n.\r\n..\r\n")
    replies = bdat_session(toaster, ["alice@example.com"],
                           b"BDAT %d LAST\r\n" % len(msg) + msg, 1)
    assert replies[:2] == [b"250 2.1.0 Ok", b"250 2.1.5 Ok"]
    assert QUEUED_RE.match(replies[2]), replies
    # BDAT content is never dot-unstuffed.
    assert stored_body(toaster, "alice@example.com") == msg


def test_bdat_chunks_split_crlf_and_empty_last(toaster):
    msg = message("bdat split", body=b"line one\r\nline two\r\n\r\n.\r\nend\r\n")
    # Cut right between every CR and its LF.
    cuts = []
    pos = 0
    for i in range(len(msg)):
        if msg[i:i + 1] == b"\r":
            cuts.append(i + 1 - pos)
            pos = i + 1
    stream = bdat_chunks(msg, cuts, last=False) + b"BDAT 0 LAST\r\n"
    replies = bdat_session(toaster, ["alice@example.com", "bob@example.com"], stream,
                           len(cuts) + 2)
    chunk_replies = replies[3:-1]
    total = 0
    for size, line in zip(cuts + [len(msg) - sum(cuts)], chunk_replies):
        total += size
        assert line == b"250 2.0.0 Ok: %d octets received" % total
    assert QUEUED_RE.match(replies[-1]), replies[-1]
    assert stored_body(toaster, "alice@example.com") == msg
    assert stored_body(toaster, "bob@example.com") == msg


def test_bdat_one_byte_chunks(toaster):
    msg = message("bdat bytes", body=b"x\r\n")
    stream = bdat_chunks(msg, [1] * (len(msg) - 1))
    replies = bdat_session(toaster, ["alice@example.com"], stream, len(msg))
    assert replies[-2] == b"250 2.0.0 Ok: %d octets received" % (len(msg) - 1)
    assert QUEUED_RE.match(replies[-1]), replies[-1]
    assert stored_body(toaster, "alice@example.com") == msg


def test_bdat_binary_and_large(toaster):
    values = bytes(b for b in range(256) if b not in (0x0A, 0x0D))
    body = b"".join(values + b"\r\n" for _ in range(20000))  # ~5 MiB
    msg = message("bdat large", body=body)
    sizes = [1, 65536, 3, 1000000, 7]
    replies = bdat_session(toaster, ["alice@example.com"], bdat_chunks(msg, sizes),
                           len(sizes) + 1)
    assert QUEUED_RE.match(replies[-1]), replies[-1]
    assert stored_body(toaster, "alice@example.com") == msg


def test_bdat_only_empty_last_chunk(toaster):
    replies = bdat_session(toaster, ["alice@example.com"], b"BDAT 0 LAST\r\n", 1)
    assert QUEUED_RE.match(replies[-1]), replies
    assert stored_body(toaster, "alice@example.com") == b""


def test_bdat_then_more_transactions(toaster):
    msg1 = message("bdat first")
    msg2 = message("data second", body=b"..\r\n")
    with toaster.raw() as c:
        c.greet()
        c.send(b"MAIL FROM:<sender@remote.test>\r\nRCPT TO:<alice@example.com>\r\n" +
               bdat_chunks(msg1, [10]) +
               b"MAIL FROM:<sender@remote.test>\r\nRCPT TO:<bob@example.com>\r\nDATA\r\n" +
               dot_stuff(msg2) + b"QUIT\r\n")
        replies = c.replies(9)
        assert c.closed()
    assert replies[2] == b"250 2.0.0 Ok: 10 octets received"
    assert QUEUED_RE.match(replies[3]) and QUEUED_RE.match(replies[7]), replies
    assert replies[8] == b"221 2.0.0 Bye"
    assert stored_body(toaster, "alice@example.com") == msg1
    assert stored_body(toaster, "bob@example.com") == msg2


def test_bdat_refused_chunks_are_consumed(toaster):
    junk = b"MAIL FROM:<evil@remote.test>\r\nRCPT TO:<alice@example.com>\r\n"
    with toaster.raw() as c:
        c.greet()
        # No transaction yet: 503, and the chunk must not be read as commands.
        c.send(b"BDAT %d LAST\r\n" % len(junk) + junk)
        assert c.reply_line() == b"503 5.5.1 Error: need MAIL command"
        assert c.cmd("NOOP")[-1] == b"250 2.0.0 Ok"
        # No valid recipient: 554, chunk consumed likewise.
        assert c.cmd("MAIL FROM:<sender@remote.test>")[-1] == b"250 2.1.0 Ok"
        assert c.cmd("RCPT TO:<nobody@example.com>")[-1].startswith(b"550 ")
        c.send(b"BDAT %d\r\n" % len(junk) + junk)
        assert c.reply_line() == b"554 5.5.1 Error: no valid recipients"
        assert c.cmd("NOOP")[-1] == b"250 2.0.0 Ok"
        # The transaction is still open: a good recipient lets BDAT through.
        assert c.cmd("RCPT TO:<bob@example.com>")[-1] == b"250 2.1.5 Ok"
        msg = message("after refusal")
        c.send(b"BDAT %d LAST\r\n" % len(msg) + msg)
        assert QUEUED_RE.match(c.reply_line())
    assert stored_body(toaster, "bob@example.com") == msg
    assert len(toaster.all_delivered()) == 1


def test_bdat_sequence_errors(toaster):
    with toaster.raw() as c:
        c.greet()
        assert c.cmd("MAIL FROM:<sender@remote.test>")[-1] == b"250 2.1.0 Ok"
        assert c.cmd("RCPT TO:<alice@example.com>")[-1] == b"250 2.1.5 Ok"
        c.send(b"BDAT 4\r\nabc\n")
        assert c.reply_line() == b"250 2.0.0 Ok: 4 octets received"
        assert c.cmd("DATA")[-1] == b"503 5.5.1 Error: DATA after BDAT"
        assert c.cmd("RCPT TO:<bob@example.com>")[-1] == b"503 5.5.1 Error: RCPT after BDAT"
        # RSET abandons the chunked message.
        assert c.cmd("RSET")[-1] == b"250 2.0.0 Ok"
        assert c.cmd("MAIL FROM:<sender@remote.test>")[-1] == b"250 2.1.0 Ok"
        assert c.cmd("RCPT TO:<bob@example.com>")[-1] == b"250 2.1.5 Ok"
        c.send(b"BDAT 5 LAST\r\nabc\r\n")
        assert QUEUED_RE.match(c.reply_line())
    assert toaster.delivered("alice@example.com") == []
    # The bare LF of a chunk is normalised like DATA's.
    assert stored_body(toaster, "bob@example.com") == b"abc\r\n"
    assert toaster.spool_files() == []


def test_bdat_bad_syntax_closes(toaster):
    with toaster.raw() as c:
        c.greet()
        assert c.cmd("MAIL FROM:<sender@remote.test>")[-1] == b"250 2.1.0 Ok"
        assert c.cmd("RCPT TO:<alice@example.com>")[-1] == b"250 2.1.5 Ok"
        c.send(b"BDAT twelve\r\nhello world!")
        assert c.reply_line() == b"501 5.5.4 Syntax: BDAT count [LAST]"
        assert c.reply_line().startswith(b"421 4.7.0 ")
        assert c.closed()
    assert toaster.all_delivered() == []


def test_bdat_oversize(make_toaster):
    t = make_toaster(config={"message_size_limit": "4k"})
    body = b"y" * 1000 + b"\r\n"
    with t.raw() as c:
        c.greet()
        assert c.cmd("MAIL FROM:<sender@remote.test>")[-1] == b"250 2.1.0 Ok"
        assert c.cmd("RCPT TO:<alice@example.com>")[-1] == b"250 2.1.5 Ok"
        replies = []
        for _ in range(6):
            c.send(b"BDAT %d\r\n" % len(body) + body)
            replies.append(c.reply_line())
        c.send(b"BDAT 0 LAST\r\n")
        replies.append(c.reply_line())
        assert c.cmd("NOOP")[-1] == b"250 2.0.0 Ok"
    assert replies[:4] == [b"250 2.0.0 Ok: %d octets received" % (len(body) * i)
                           for i in range(1, 5)]
    assert replies[4:] == [b"552 5.3.4 Error: message file too big"] * 3
    assert t.all_delivered() == []
    assert wait_until(lambda: t.spool_files() == [], 3), t.spool_files()


# ---- smtplib ----------------------------------------------------------------------


def test_smtplib_esmtp_features(toaster):
    with toaster.smtp() as client:
        for ext in ("pipelining", "size", "8bitmime", "enhancedstatuscodes", "smtputf8",
                    "chunking", "dsn"):
            assert client.has_extn(ext), ext
        assert client.esmtp_features["size"] == "52428800"
        msg = message("smtplib features", body="Grüße ☃\r\n".encode())
        refused = client.sendmail("jörg@bücher.test", ["alice@example.com", "team@example.com"],
                                  msg, mail_options=["BODY=8BITMIME", "SMTPUTF8", "RET=HDRS",
                                                     "ENVID=abc"],
                                  rcpt_options=["NOTIFY=FAILURE,DELAY",
                                                "ORCPT=rfc822;alice@example.com"])
        assert refused == {}
        # A partly refused transaction: smtplib reports the refused recipient.
        refused = client.sendmail(SENDER, ["bob@example.com", "nobody@example.com"],
                                  message("partial"))
        assert list(refused) == ["nobody@example.com"]
        assert refused["nobody@example.com"][0] == 550
        code, text = client.noop()
        assert code == 250
    assert stored_body(toaster, "alice@example.com") == msg
    assert len(toaster.delivered("bob@example.com")) == 2
    assert toaster.all_delivered()[0].read_bytes().startswith(
        "Return-Path: <jörg@bücher.test>\r\n".encode())


def test_smtplib_send_message(toaster):
    from email.message import EmailMessage
    em = EmailMessage()
    em["From"] = "Sender <sender@remote.test>"
    em["To"] = "alice@example.com, bob@example.com"
    em["Subject"] = "send_message"
    em.set_content("first line\n.second line starts with a dot\n")
    with toaster.smtp() as client:
        assert client.send_message(em) == {}
    for mailbox in ("alice@example.com", "bob@example.com"):
        body = stored_body(toaster, mailbox)
        assert b"\r\n.second line starts with a dot\r\n" in body
        assert b"\n" not in body.replace(b"\r\n", b"")


def test_data_terminator_split_across_segments(toaster):
    """The end-of-data dot line and dot-stuffing work whatever the segmentation."""
    import socket
    msg = message("split", body=b"..a\r\n.\r\nb\r\n")
    wire = dot_stuff(msg)
    cuts = range(len(wire) - len(b"\r\n.\r\n") - 6, len(wire))
    for cut in cuts:
        with toaster.raw() as c:
            c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            c.greet()
            c.send(b"MAIL FROM:<sender@remote.test>\r\nRCPT TO:<alice@example.com>\r\nDATA\r\n")
            assert c.replies(3)[2].startswith(b"354 ")
            c.send(wire[:cut])
            time.sleep(0.02)
            c.send(wire[cut:])
            assert QUEUED_RE.match(c.reply_line())
    stored = [split_trace(m)[1] for m in toaster.messages("alice@example.com")]
    assert stored == [msg] * len(cuts)


def test_pipelined_burst_with_backpressure(make_toaster):
    """A thousand pipelined RCPTs and their replies, read by another thread:
    output backpressure must neither lose nor reorder replies."""
    import threading
    users = ["p%03d@example.com" % i for i in range(1000)]
    t = make_toaster(users=["%s:{PLAIN}x" % u for u in users], aliases=[])
    msg = message("burst")
    stream = b"EHLO client.example\r\n"
    for rounds in range(3):
        stream += b"MAIL FROM:<sender@remote.test>\r\n"
        stream += b"".join(b"RCPT TO:<%s>\r\n" % u.encode() for u in users)
        stream += b"DATA\r\n" + dot_stuff(msg)
    stream += b"QUIT\r\n"
    with t.raw(timeout=60) as c:
        c.reply()
        sender = threading.Thread(target=c.send, args=(stream,))
        sender.start()
        c.reply()
        replies = c.replies(3 * (len(users) + 3) + 1)
        sender.join(30)
    per_round = len(users) + 3
    for r in range(3):
        chunk = replies[r * per_round:(r + 1) * per_round]
        assert chunk[0] == b"250 2.1.0 Ok"
        assert chunk[1:-2] == [b"250 2.1.5 Ok"] * len(users)
        assert chunk[-2].startswith(b"354 ")
        assert QUEUED_RE.match(chunk[-1]), chunk[-1]
    assert replies[-1] == b"221 2.0.0 Bye"
    for u in users[::97]:
        assert len(t.delivered(u)) == 3
    assert len(t.all_delivered()) == 3000
