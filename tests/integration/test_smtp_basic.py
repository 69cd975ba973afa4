"""Plain SMTP deliveries through the real toasterd, checked on disk byte by byte.

Covers recipient resolution as a client sees it (users, subaddresses, aliases
with duplicates, catch-alls, postmaster forms, unknown_recipient_mailbox,
every relay form refused), the sender forms (null, SMTPUTF8, DSN and BODY
parameters), the small verbs, and the stored file: trace headers followed by
exactly the bytes sent (dot-unstuffed), an honest S=/W= in the name, and
nothing left behind in spool/ or Maildir/tmp/.
"""

import re

import pytest

from conftest import filter_fields, QUEUED_RE, dot_stuff, split_trace, wait_until

SENDER = "sender@remote.test"


def message(subject, body=b"Hello.\r\n", extra_headers=b""):
    if isinstance(subject, str):
        subject = subject.encode()
    return (
        b"From: <sender@remote.test>\r\n"
        b"To: <alice@example.com>\r\n"
        b"Subject: " + subject + b"\r\n"
        b"Message-ID: <" + subject.replace(b" ", b"-") + b"@remote.test>\r\n"
        + extra_headers
        + b"\r\n"
        + body
    )


def raw_send(toaster, mail_from, rcpts, msg, mail_params="", rcpt_params="", ehlo=True):
    """One DATA transaction over a raw socket; returns the queue id."""
    with toaster.raw() as c:
        assert c.reply_line().startswith(b"220 ")
        line = c.cmd(("EHLO" if ehlo else "HELO") + " client.example")[-1]
        assert line.startswith(b"250"), line
        line = c.cmd(("MAIL FROM:<%s> %s" % (mail_from, mail_params)).rstrip().encode())[-1]
        assert line == b"250 2.1.0 Ok", line
        for rcpt in rcpts:
            line = c.cmd(("RCPT TO:<%s> %s" % (rcpt, rcpt_params)).rstrip().encode())[-1]
            assert line == b"250 2.1.5 Ok", (rcpt, line)
        assert c.cmd("DATA")[-1] == b"354 End data with <CR><LF>.<CR><LF>"
        c.send(dot_stuff(msg))
        line = c.reply_line()
        m = QUEUED_RE.match(line)
        assert m, line
        assert c.cmd("QUIT")[-1] == b"221 2.0.0 Bye"
        return m.group(1).decode()


def check_stored(toaster, path, msg, mail_from, qid=None, rcpt=None, protocol=b"ESMTP"):
    """The stored file is trace headers + msg, and its name tells its size."""
    stored = path.read_bytes()
    trace, rest = split_trace(stored)
    assert rest == msg
    assert trace.startswith(b"Return-Path: <" + mail_from.encode() + b">\r\n")
    assert trace[len(b"Return-Path: <" + mail_from.encode() + b">\r\n") :].startswith(
        filter_fields(stored) + b"Received: ")
    assert b"by mx.example.com (toaster) with " + protocol + b" id " in trace
    if qid is not None:
        assert b" id " + qid.encode() in trace
    if rcpt:
        assert b"\tfor <" + rcpt.encode() + b">;" in trace
    elif rcpt is False:  # several recipients: none of them is named
        assert b"for <" not in trace
    m = re.search(r",S=(\d+),W=(\d+)$", path.name)
    assert m, path.name
    assert int(m.group(1)) == len(stored) == path.stat().st_size
    assert int(m.group(2)) == len(stored)  # CRLF on disk: wire size == file size
    return stored


def check_clean(toaster):
    """Spool and Maildir tmp/ are empty once the 250 has been given."""
    assert wait_until(lambda: toaster.spool_files() == [], 3), toaster.spool_files()
    assert toaster.tmp_files() == []


def rcpt_reply(toaster, rcpt, mail_from=SENDER):
    with toaster.raw() as c:
        c.greet()
        assert c.cmd("MAIL FROM:<%s>" % mail_from)[-1].startswith(b"250 ")
        return c.cmd(b"RCPT TO:<" + rcpt.encode() + b">")[-1]


# ---- deliveries ----------------------------------------------------------------


def test_single_recipient_stored_exactly(toaster):
    msg = message("single")
    qid = raw_send(toaster, SENDER, ["alice@example.com"], msg)
    [path] = toaster.delivered("alice@example.com")
    stored = check_stored(toaster, path, msg, SENDER, qid=qid, rcpt="alice@example.com")
    check_clean(toaster)
    assert toaster.all_delivered() == [path]
    toaster.wait_log("%s: from=<%s>, size=%d, nrcpt=1, status=delivered" % (qid, SENDER, len(stored)))


def test_smtplib_sendmail(toaster):
    with toaster.smtp() as client:
        refused = client.sendmail(SENDER, ["alice@example.com", "bob@example.com"],
                                  message("smtplib"))
        assert refused == {}
    for mailbox in ("alice@example.com", "bob@example.com"):
        [path] = toaster.delivered(mailbox)
        check_stored(toaster, path, message("smtplib"), SENDER)
    check_clean(toaster)


def test_multi_recipient_alias_expansion_delivers_once(toaster):
    msg = message("aliases")
    # all@ = alice, team@ (= alice, bob), carol; plus alice and team again.
    qid = raw_send(toaster, SENDER,
                   ["all@example.com", "alice@example.com", "team@example.com",
                    "info@example.org", "Alice+x@Example.COM"], msg)
    for mailbox in ("alice@example.com", "bob@example.com", "carol@example.org"):
        paths = toaster.delivered(mailbox)
        assert len(paths) == 1, (mailbox, paths)
        check_stored(toaster, paths[0], msg, SENDER, qid=qid, rcpt=False)
    assert len(toaster.all_delivered()) == 3
    assert toaster.delivered("dave@example.org") == []
    check_clean(toaster)
    toaster.wait_log("%s: from=<%s>" % (qid, SENDER))
    assert re.search(r"%s: from=<[^>]*>, size=\d+, nrcpt=5, status=delivered \(3 mailboxes\)"
                     % qid, toaster.log())


def test_subaddress_and_case(toaster):
    rcpts = ["alice+tag@example.com", "ALICE+Other.Tag@Example.COM", "Bob@EXAMPLE.com",
             "carol+@example.org"]
    for i, rcpt in enumerate(rcpts):
        raw_send(toaster, SENDER, [rcpt], message("sub %d" % i))
    assert len(toaster.delivered("alice@example.com")) == 2
    assert len(toaster.delivered("bob@example.com")) == 1
    assert len(toaster.delivered("carol@example.org")) == 1
    # No mailbox named after the tag or the case of the address.
    assert sorted(p.parent.parent.parent.name for p in toaster.all_delivered()) == [
        "alice", "alice", "bob", "carol"]
    # Only the base user is known: an unknown base with a tag stays unknown.
    assert rcpt_reply(toaster, "nobody+alice@example.com").startswith(b"550 5.1.1 ")


def test_catch_all_alias(toaster):
    raw_send(toaster, SENDER, ["anything@example.net"], message("catch-all"))
    assert len(toaster.delivered("dave@example.org")) == 1


def test_alias_loop_and_remote_target_tempfail(make_toaster):
    from conftest import DEFAULT_ALIASES
    t = make_toaster(aliases=DEFAULT_ALIASES + [
        "loop1@example.com: loop2@example.com",
        "loop2@example.com: loop1@example.com",
        "away@example.com: someone@remote.test",
        # An alias naming itself means the user of that name (none here).
        "selfref@example.com: selfref@example.com, bob@example.com",
    ])
    with t.raw() as c:
        c.greet()
        assert c.cmd("MAIL FROM:<%s>" % SENDER)[-1] == b"250 2.1.0 Ok"
        # The operator must fix these; the sender keeps the mail meanwhile.
        assert c.cmd("RCPT TO:<loop1@example.com>")[-1] == \
            b"451 4.3.0 <loop1@example.com>: Temporary lookup failure"
        # A local alias that forwards off the server: the outbound queue.
        assert c.cmd("RCPT TO:<away@example.com>")[-1] == b"250 2.1.5 Ok"
        assert c.cmd("RCPT TO:<selfref@example.com>")[-1] == b"250 2.1.5 Ok"
        assert c.cmd("DATA")[-1].startswith(b"354 ")
        c.send(dot_stuff(message("selfref")))
        assert QUEUED_RE.match(c.reply_line())
    assert [p.parent.parent.parent.name for p in t.all_delivered()] == ["bob"]
    ids = t.queue_ids()
    assert len(ids) == 1
    assert "rcpt pending 0 0 <someone@remote.test> rfc822;away@example.com -\n" in \
        t.queue_envelope(ids[0])
    t.wait_log("alias expansion of <loop1@example.com> failed")


def test_unknown_user_refused(toaster):
    line = rcpt_reply(toaster, "nobody@example.com")
    assert line == (b"550 5.1.1 <nobody@example.com>: Recipient address rejected: "
                    b"User unknown in local recipient table")
    # A domain known only through users_file is local too.
    assert rcpt_reply(toaster, "nobody@example.org").startswith(b"550 5.1.1 ")


@pytest.mark.parametrize("rcpt,mailbox", [
    ("postmaster", "postmaster@mx.example.com"),
    ("POSTMASTER", "postmaster@mx.example.com"),
    # myhostname and localhost are local, as in Postfix's default mydestination.
    ("postmaster@mx.example.com", "postmaster@mx.example.com"),
    ("postmaster@localhost", "postmaster@localhost"),
    ("postmaster@example.com", "postmaster@example.com"),
    ("PostMaster@Example.ORG", "postmaster@example.org"),
])
def test_postmaster_forms(toaster, rcpt, mailbox):
    raw_send(toaster, SENDER, [rcpt], message("to " + rcpt))
    [path] = toaster.delivered(mailbox)
    check_stored(toaster, path, message("to " + rcpt), SENDER, rcpt=rcpt)
    check_clean(toaster)


def test_postmaster_with_null_sender(toaster):
    # RFC 5321 4.5.1 / 6.1: bounces to postmaster must never be refused.
    raw_send(toaster, "", ["postmaster"], message("bounce"))
    [path] = toaster.delivered("postmaster@mx.example.com")
    check_stored(toaster, path, message("bounce"), "")


def test_postmaster_address_setting(make_toaster):
    t = make_toaster(config={"postmaster_address": "bob@example.com"})
    raw_send(t, SENDER, ["postmaster"], message("pm1"))
    raw_send(t, SENDER, ["postmaster@example.org"], message("pm2"))
    assert len(t.delivered("bob@example.com")) == 2
    assert len(t.all_delivered()) == 2


def test_unknown_recipient_mailbox(make_toaster):
    t = make_toaster(config={"unknown_recipient_mailbox": "bob@example.com"})
    raw_send(t, SENDER, ["nobody@example.com", "someone+x@example.org"],
             message("unknown"))
    [path] = t.delivered("bob@example.com")
    check_stored(t, path, message("unknown"), SENDER)
    assert len(t.all_delivered()) == 1
    # Still no relaying through it.
    assert rcpt_reply(t, "nobody@remote.test").startswith(b"554 5.7.1 ")


@pytest.mark.parametrize("rcpt", [
    "someone@remote.test",
    "alice@example.com.remote.test",
    "alice@sub.example.com",
    "postmaster@remote.test",
    "alice%remote.test@example.com",
    "alice!remote.test@example.com",
    "remote.test!alice@example.com",
    '"alice@remote.test"@example.com',
    '"alice%remote.test"@example.com',
    "@mx.example.com:alice@example.com",
    "@a.test,@b.test:alice@example.com",
    "@mx.example.com:postmaster@example.com",
    "alice@[127.0.0.1]",
])
def test_relay_denied(toaster, rcpt):
    line = rcpt_reply(toaster, rcpt)
    assert line.startswith(b"554 5.7.1 <"), (rcpt, line)
    assert line.endswith(b">: Relay access denied"), (rcpt, line)


def test_relay_denied_transaction_goes_on(toaster):
    """A refused recipient does not end the transaction."""
    with toaster.raw() as c:
        c.greet()
        assert c.cmd("MAIL FROM:<%s>" % SENDER)[-1] == b"250 2.1.0 Ok"
        assert c.cmd("RCPT TO:<victim@remote.test>")[-1].startswith(b"554 5.7.1")
        assert c.cmd("RCPT TO:<nobody@example.com>")[-1].startswith(b"550 5.1.1")
        assert c.cmd("RCPT TO:<bob@example.com>")[-1] == b"250 2.1.5 Ok"
        assert c.cmd("DATA")[-1].startswith(b"354 ")
        c.send(dot_stuff(message("mixed")))
        assert QUEUED_RE.match(c.reply_line())
    assert len(toaster.delivered("bob@example.com")) == 1
    assert len(toaster.all_delivered()) == 1


def test_data_without_valid_recipient(toaster):
    with toaster.raw() as c:
        c.greet()
        assert c.cmd("MAIL FROM:<%s>" % SENDER)[-1] == b"250 2.1.0 Ok"
        assert c.cmd("RCPT TO:<victim@remote.test>")[-1].startswith(b"554 5.7.1")
        assert c.cmd("DATA")[-1] == b"554 5.5.1 Error: no valid recipients"
        assert c.cmd("QUIT")[-1] == b"221 2.0.0 Bye"
    assert toaster.all_delivered() == []


# ---- senders and parameters ----------------------------------------------------


def test_null_sender(toaster):
    msg = message("null sender")
    qid = raw_send(toaster, "", ["alice@example.com"], msg)
    [path] = toaster.delivered("alice@example.com")
    assert path.read_bytes().startswith(b"Return-Path: <>\r\n")
    check_stored(toaster, path, msg, "", qid=qid)
    toaster.wait_log("%s: from=<>, size=" % qid)


def test_helo_session_protocol(toaster):
    msg = message("helo")
    raw_send(toaster, SENDER, ["alice@example.com"], msg, ehlo=False)
    [path] = toaster.delivered("alice@example.com")
    stored = check_stored(toaster, path, msg, SENDER, protocol=b"SMTP")
    assert b"Received: from client.example ([127.0.0.1])\r\n" in stored


def test_8bitmime_body_byte_exact(toaster):
    # Every byte value except CR and LF, in lines of 64, plus lines of
    # Latin-1 and UTF-8 text.
    values = bytes(b for b in range(256) if b not in (0x0A, 0x0D))
    body = b"".join(values[i:i + 64] + b"\r\n" for i in range(0, len(values), 64))
    body += "Grüße, Jürgen — ☃\r\n".encode() + "caf\xe9\r\n".encode("latin-1")
    msg = message("8bit", body=body,
                  extra_headers=b"MIME-Version: 1.0\r\n"
                                b"Content-Type: text/plain; charset=utf-8\r\n"
                                b"Content-Transfer-Encoding: 8bit\r\n")
    raw_send(toaster, SENDER, ["alice@example.com"], msg, mail_params="BODY=8BITMIME")
    [path] = toaster.delivered("alice@example.com")
    check_stored(toaster, path, msg, SENDER)


def test_body_7bit_param_and_bad_body_param(toaster):
    raw_send(toaster, SENDER, ["alice@example.com"], message("7bit"), mail_params="BODY=7BIT")
    with toaster.raw() as c:
        c.greet()
        assert c.cmd("MAIL FROM:<a@remote.test> BODY=BINARYMIME")[-1] == \
            b"555 5.5.4 Unsupported BODY parameter"
        assert c.cmd("MAIL FROM:<a@remote.test> FROBNICATE=1")[-1].startswith(
            b"555 5.5.4 Unsupported option: FROBNICATE")


def test_smtputf8_sender(toaster):
    sender = "jörg.müller@bücher.test"
    msg = message("utf8", body="Grüße\r\n".encode())
    qid = raw_send(toaster, sender, ["alice@example.com"], msg, mail_params="SMTPUTF8")
    [path] = toaster.delivered("alice@example.com")
    stored = path.read_bytes()
    assert stored.startswith(("Return-Path: <%s>\r\n" % sender).encode())
    check_stored(toaster, path, msg, sender, qid=qid, protocol=b"UTF8SMTP")


def test_smtputf8_required_for_utf8_address(toaster):
    with toaster.raw() as c:
        c.greet()
        line = c.cmd("MAIL FROM:<jörg@bücher.test>".encode())[-1]
        assert line == b"553 5.6.7 Error: non-ASCII address needs SMTPUTF8"
        assert c.cmd("MAIL FROM:<a@remote.test>")[-1] == b"250 2.1.0 Ok"
        line = c.cmd("RCPT TO:<jürgen@example.com>".encode())[-1]
        assert line == b"553 5.6.7 Error: non-ASCII address needs SMTPUTF8"
        assert c.cmd("MAIL FROM:<a@remote.test> SMTPUTF8=yes")[-1].startswith(b"50")


def test_smtputf8_user_local_part(make_toaster):
    from conftest import DEFAULT_USERS
    t = make_toaster(users=DEFAULT_USERS + ["jürgen@example.com:{PLAIN}x",
                                            "δοκιμή@example.org:{PLAIN}y"])
    msg = message("utf8 user", body="Hallo Jürgen\r\n".encode())
    raw_send(t, "jörg@bücher.test", ["jürgen@example.com", "δοκιμή@example.org"], msg,
             mail_params="SMTPUTF8")
    for mailbox in ("jürgen@example.com", "δοκιμή@example.org"):
        [path] = t.delivered(mailbox)
        check_stored(t, path, msg, "jörg@bücher.test", protocol=b"UTF8SMTP")
    # ASCII case folding only: an upper-case non-ASCII letter is another user.
    assert rcpt_reply(t, "JÜRGEN@example.com", mail_from="a@remote.test").startswith(b"55")


def test_dsn_parameters_accepted(toaster):
    msg = message("dsn")
    raw_send(toaster, SENDER, ["alice@example.com", "bob@example.com"], msg,
             mail_params="RET=HDRS ENVID=QQ314159+2Bx",
             rcpt_params="NOTIFY=SUCCESS,FAILURE,DELAY ORCPT=rfc822;alice+2Bx@example.com")
    raw_send(toaster, SENDER, ["alice@example.com"], message("dsn2"),
             mail_params="RET=FULL", rcpt_params="NOTIFY=NEVER")
    assert len(toaster.delivered("alice@example.com")) == 2
    assert len(toaster.delivered("bob@example.com")) == 1


@pytest.mark.parametrize("command,reply", [
    ("MAIL FROM:<a@remote.test> RET=SOME", b"501 5.5.4 Bad RET parameter"),
    ("MAIL FROM:<a@remote.test> RET", b"501 5.5.4 Bad RET parameter"),
    ("MAIL FROM:<a@remote.test> ENVID=bad+zz", b"501 5.5.4 Bad ENVID parameter"),
    ("MAIL FROM:<a@remote.test> SIZE=12x", b"501 5.5.4 Bad SIZE parameter"),
    ("MAIL FROM:<a@remote.test> SIZE=99999999999", b"552 5.3.4 Message size exceeds fixed limit"),
    ("RCPT TO:<alice@example.com> NOTIFY=NEVER,SUCCESS", b"501 5.5.4 Bad NOTIFY parameter"),
    ("RCPT TO:<alice@example.com> NOTIFY=SOMETIMES", b"501 5.5.4 Bad NOTIFY parameter"),
    ("RCPT TO:<alice@example.com> ORCPT=alice@example.com", b"501 5.5.4 Bad ORCPT parameter"),
    ("RCPT TO:<alice@example.com> ORCPT=;x", b"501 5.5.4 Bad ORCPT parameter"),
])
def test_bad_parameters(toaster, command, reply):
    with toaster.raw() as c:
        c.greet()
        if command.startswith("RCPT"):
            assert c.cmd("MAIL FROM:<a@remote.test>")[-1] == b"250 2.1.0 Ok"
        assert c.cmd(command)[-1] == reply
        # The session carries on.
        assert c.cmd("NOOP")[-1] == b"250 2.0.0 Ok"


def test_size_parameter_within_limit(toaster):
    raw_send(toaster, SENDER, ["alice@example.com"], message("size"), mail_params="SIZE=1000")
    assert len(toaster.delivered("alice@example.com")) == 1


# ---- small verbs ---------------------------------------------------------------


def test_ehlo_extensions(toaster):
    with toaster.raw() as c:
        lines = c.greet()
    assert lines[0] == b"250-mx.example.com"
    keywords = [l[4:] for l in lines[1:]]
    assert keywords == [b"PIPELINING", b"SIZE 52428800", b"8BITMIME", b"ENHANCEDSTATUSCODES",
                        b"SMTPUTF8", b"CHUNKING", b"STARTTLS", b"DSN"]
    assert all(l.startswith(b"250-") for l in lines[:-1]) and lines[-1].startswith(b"250 ")


def test_banner_and_helo(toaster):
    with toaster.raw() as c:
        assert c.reply() == [b"220 mx.example.com ESMTP toaster"]
        assert c.cmd("HELO client.example") == [b"250 mx.example.com"]
        assert c.cmd("HELO")[-1] == b"501 5.5.4 Syntax: HELO hostname"
        assert c.cmd("EHLO")[-1] == b"501 5.5.4 Syntax: EHLO hostname"


def test_vrfy_expn_help_noop_rset_quit(toaster):
    with toaster.raw() as c:
        c.greet()
        assert c.cmd("VRFY alice")[-1].startswith(b"252 2.5.2 ")
        assert c.cmd("VRFY nobody@example.com")[-1].startswith(b"252 2.5.2 ")
        assert c.cmd("EXPN team@example.com") == [b"502 5.5.1 Error: command not implemented"]
        help_lines = c.cmd("HELP")
        assert help_lines[0].startswith(b"214-") and help_lines[-1].startswith(b"214 ")
        assert all(l[:4] in (b"214-", b"214 ") for l in help_lines)
        assert c.cmd("NOOP") == [b"250 2.0.0 Ok"]
        assert c.cmd("noop with arguments")[-1] == b"250 2.0.0 Ok"
        assert c.cmd("RSET") == [b"250 2.0.0 Ok"]
        # RSET drops the transaction: RCPT needs a new MAIL.
        assert c.cmd("MAIL FROM:<a@remote.test>")[-1] == b"250 2.1.0 Ok"
        assert c.cmd("RCPT TO:<alice@example.com>")[-1] == b"250 2.1.5 Ok"
        assert c.cmd("RSET")[-1] == b"250 2.0.0 Ok"
        assert c.cmd("RCPT TO:<alice@example.com>")[-1] == b"503 5.5.1 Error: need MAIL command"
        assert c.cmd("DATA")[-1] == b"503 5.5.1 Error: need RCPT command"
        assert c.cmd("MAIL FROM:<a@remote.test>")[-1] == b"250 2.1.0 Ok"
        assert c.cmd("MAIL FROM:<a@remote.test>")[-1] == b"503 5.5.1 Error: nested MAIL command"
        # Inside a transaction; and AUTH belongs to submission, not port 25.
        assert c.cmd("STARTTLS")[-1] == b"503 5.5.1 Error: MAIL transaction in progress"
        assert c.cmd("AUTH PLAIN AGFAAGI=")[-1] == b"503 5.5.1 Error: authentication not enabled"
        assert c.cmd("FROB")[-1] == b"500 5.5.2 Error: command not recognized"
        assert c.cmd("QUIT") == [b"221 2.0.0 Bye"]
        assert c.closed()
    assert toaster.all_delivered() == []


def test_mail_before_helo(toaster):
    with toaster.raw() as c:
        c.reply()
        assert c.cmd("MAIL FROM:<a@remote.test>")[-1] == b"503 5.5.1 Error: send HELO/EHLO first"
        assert c.cmd("NOOP")[-1] == b"250 2.0.0 Ok"


# ---- bytes on disk -------------------------------------------------------------


def test_dot_stuffing_round_trip(toaster):
    body = (b".leading dot\r\n"
            b"..two leading dots\r\n"
            b".\r\n"
            b"..\r\n"
            b"...\r\n"
            b"middle . dot\r\n"
            b" .space then dot\r\n"
            b"\r\n"
            b".\r\n"
            b"last line.\r\n")
    msg = message("dots", body=body)
    wire = dot_stuff(msg)
    assert b"\r\n..\r\n" in wire and b"\r\n...\r\n" in wire
    qid = raw_send(toaster, SENDER, ["alice@example.com"], msg)
    [path] = toaster.delivered("alice@example.com")
    check_stored(toaster, path, msg, SENDER, qid=qid)
    check_clean(toaster)


def test_message_without_final_newline_and_empty_body(toaster):
    with toaster.raw() as c:
        c.greet()
        # Body without a trailing CRLF before the dot line is impossible in
        # SMTP; the smallest body is empty.
        assert c.cmd("MAIL FROM:<a@remote.test>")[-1] == b"250 2.1.0 Ok"
        assert c.cmd("RCPT TO:<alice@example.com>")[-1] == b"250 2.1.5 Ok"
        assert c.cmd("DATA")[-1].startswith(b"354")
        c.send(b".\r\n")
        assert QUEUED_RE.match(c.reply_line())
    [path] = toaster.delivered("alice@example.com")
    check_stored(toaster, path, b"", "a@remote.test")


def test_several_messages_one_session(toaster):
    msgs = [message("seq %d" % i, body=b"number %d\r\n" % i) for i in range(5)]
    qids = []
    with toaster.raw() as c:
        c.greet()
        for i, msg in enumerate(msgs):
            rcpt = "alice@example.com" if i % 2 == 0 else "bob@example.com"
            qids.append(toaster.transact(c, SENDER, [rcpt], dot_stuff(msg)))
    assert len(set(qids)) == 5
    stored = sorted(toaster.messages("alice@example.com") + toaster.messages("bob@example.com"))
    assert sorted(split_trace(s)[1] for s in stored) == sorted(msgs)
    check_clean(toaster)


def test_large_message_byte_exact(toaster):
    # Several MiB crosses many receive buffers and spool writes.
    line = bytes(range(0x21, 0x7f)) + b"\r\n"
    body = b"".join(b"%06d " % i + line for i in range(40000))
    msg = message("large", body=body)
    raw_send(toaster, SENDER, ["alice@example.com", "carol@example.org"], msg)
    for mailbox in ("alice@example.com", "carol@example.org"):
        [path] = toaster.delivered(mailbox)
        check_stored(toaster, path, msg, SENDER)
    check_clean(toaster)


def test_refused_recipients_are_logged_for_operators(toaster):
    # One stable line per refusal, in the shape fail2ban filters for Postfix know.
    assert rcpt_reply(toaster, "nobody@example.com").startswith(b"550 5.1.1 ")
    assert rcpt_reply(toaster, "someone@far.away").startswith(b"554 5.7.1 ")
    toaster.wait_log(
        "NOQUEUE: reject: RCPT from [127.0.0.1]: 550 5.1.1 Recipient address rejected: "
        "User unknown in local recipient table; from=<%s> to=<nobody@example.com> "
        "proto=ESMTP helo=<client.example>" % SENDER)
    toaster.wait_log("NOQUEUE: reject: RCPT from [127.0.0.1]: 554 5.7.1 Relay access denied; "
                     "from=<%s> to=<someone@far.away>" % SENDER)
