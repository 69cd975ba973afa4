"""FETCH, STORE and SEARCH against the real toasterd, on messages delivered
by SMTP (plain, multipart with an attachment, encoded-word subject, QP and
base64 bodies): exact FETCH items, partial fetches, \\Seen handling, the
Maildir file names and dovecot-keywords after STORE, SEARCH keys and ESEARCH,
CHARSET, and CONDSTORE / QRESYNC.
"""

import base64
import re

import pytest

SENDER = "s@remote.test"

SIMPLE = (
    b"From: Sender Name <s@remote.test>\r\n"
    b"To: alice@example.com, \"Bob B.\" <bob@example.com>\r\n"
    b"Cc: carol@example.org\r\n"
    b"Subject: simple one\r\n"
    b"Date: Mon, 01 Jan 2024 10:00:00 +0000\r\n"
    b"Message-ID: <simple@remote.test>\r\n"
    b"In-Reply-To: <parent@remote.test>\r\n"
    b"\r\n"
    b"Hello world.\r\n"
    b"Second line with zebra.\r\n"
)

MULTIPART = (
    b"From: s@remote.test\r\n"
    b"To: alice@example.com\r\n"
    b"Subject: with attachment\r\n"
    b"Date: Tue, 02 Jan 2024 10:00:00 +0000\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: multipart/mixed; boundary=\"XYZ\"\r\n"
    b"\r\n"
    b"preamble\r\n"
    b"--XYZ\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n"
    b"\r\n"
    b"Gr=C3=BC=C3=9Fe aus K=C3=B6ln, giraffe\r\n"
    b"--XYZ\r\n"
    b"Content-Type: application/octet-stream; name=\"data.bin\"\r\n"
    b"Content-Disposition: attachment; filename=\"data.bin\"\r\n"
    b"Content-Transfer-Encoding: base64\r\n"
    b"\r\n"
    + base64.b64encode(bytes(range(48))) + b"\r\n"
    b"--XYZ--\r\n"
    b"epilogue\r\n"
)

ENCODED = (
    b"From: =?utf-8?q?J=C3=BCrgen?= <j@remote.test>\r\n"
    b"To: alice@example.com\r\n"
    b"Subject: =?utf-8?b?w5xiZXJ3ZWlzdW5nIGVsZXBoYW50?=\r\n"
    b"Date: Wed, 03 Jan 2024 10:00:00 +0000\r\n"
    b"X-Tracking: abc-123\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: base64\r\n"
    b"\r\n"
    + base64.b64encode("Schöne Grüße, Nashorn\r\n".encode()) + b"\r\n"
)

BIG = (
    b"From: s@remote.test\r\nTo: alice@example.com\r\nSubject: big\r\n"
    b"Date: Thu, 04 Jan 2024 10:00:00 +0000\r\n\r\n" + b"x" * 70 + b"\r\n"
) + (b"y" * 78 + b"\r\n") * 200


def deliver_all(toaster):
    for m in (SIMPLE, MULTIPART, ENCODED, BIG):
        toaster.send(SENDER, "alice@example.com", m)
    files = toaster.delivered("alice@example.com")
    assert len(files) == 4
    return [p.read_bytes() for p in files]


@pytest.fixture
def box(toaster):
    stored = deliver_all(toaster)
    c = toaster.raw_imap()
    c.login()
    lines = c.cmd("s1 SELECT INBOX")
    assert lines[-1] == b"s1 OK [READ-WRITE] Select completed."
    c.stored = stored
    c.toaster = toaster
    yield c
    c.close()


def one(lines, tag):
    assert lines[-1].startswith(tag + b" OK "), lines
    assert len(lines) == 2, lines
    return lines[0]


def test_select_responses(toaster):
    deliver_all(toaster)
    with toaster.raw_imap() as c:
        c.login()
        lines = c.cmd("a1 SELECT INBOX")
        assert lines[0] == b"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)"
        assert lines[1] == (b"* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen "
                            b"\\Draft \\*)] Flags permitted.")
        assert b"* 4 EXISTS" in lines and b"* 4 RECENT" in lines
        assert b"* OK [UNSEEN 1] First unseen." in lines
        assert b"* OK [UIDNEXT 5] Predicted next UID" in lines
        assert any(re.fullmatch(rb"\* OK \[UIDVALIDITY \d+\] .*", l) for l in lines)
        assert lines[-1] == b"a1 OK [READ-WRITE] Select completed."
        lines = c.cmd("a2 EXAMINE INBOX")
        assert lines[-1] == b"a2 OK [READ-ONLY] Examine completed."
        assert b"* 0 RECENT" in lines  # \Recent went to the first session
        assert any(l.startswith(b"* OK [PERMANENTFLAGS ()]") for l in lines)
        assert c.cmd("a3 STORE 1 +FLAGS (\\Seen)")[-1].startswith(b"a3 NO ")


def test_fetch_simple_envelope_bodystructure_exact(box):
    line = one(box.cmd("f1 FETCH 1 (ENVELOPE)"), b"f1")
    assert line == (
        b'* 1 FETCH (ENVELOPE ("Mon, 01 Jan 2024 10:00:00 +0000" "simple one" '
        b'(("Sender Name" NIL "s" "remote.test")) (("Sender Name" NIL "s" "remote.test")) '
        b'(("Sender Name" NIL "s" "remote.test")) '
        b'((NIL NIL "alice" "example.com")("Bob B." NIL "bob" "example.com")) '
        b'((NIL NIL "carol" "example.org")) NIL "<parent@remote.test>" '
        b'"<simple@remote.test>"))')
    body_len = len(SIMPLE.split(b"\r\n\r\n", 1)[1])
    line = one(box.cmd("f2 FETCH 1 BODYSTRUCTURE"), b"f2")
    assert line == (
        b'* 1 FETCH (BODYSTRUCTURE ("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" %d 2 '
        b'NIL NIL NIL NIL))' % body_len)
    line = one(box.cmd("f3 FETCH 1 BODY"), b"f3")
    assert line == (
        b'* 1 FETCH (BODY ("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" %d 2))'
        % body_len)


def test_fetch_multipart_bodystructure(box):
    line = one(box.cmd("f1 FETCH 2 BODYSTRUCTURE"), b"f1")
    b64 = base64.b64encode(bytes(range(48)))
    # The CRLF before a boundary belongs to the boundary: the text part is
    # 38 bytes; whether a last line without CRLF counts differs by server.
    m = re.fullmatch(
        rb'\* 2 FETCH \(BODYSTRUCTURE \(\("text" "plain" \("charset" "utf-8"\) NIL NIL '
        rb'"quoted-printable" 38 ([01]) NIL NIL NIL NIL\) ?'
        rb'\("application" "octet-stream" \("name" "data.bin"\) NIL NIL "base64" %d NIL '
        rb'\("attachment" \("filename" "data.bin"\)\) NIL NIL\) '
        rb'"mixed" \("boundary" "XYZ"\) NIL NIL NIL\)\)' % len(b64), line)
    assert m, line


def test_fetch_sections(box):
    stored = box.stored[1]
    header, body = stored.split(b"\r\n\r\n", 1)
    lines = box.cmd("f1 FETCH 2 (BODY.PEEK[1] BODY.PEEK[1.MIME] BODY.PEEK[2] BINARY.PEEK[1] "
                    "BINARY.PEEK[2] BINARY.SIZE[1] BINARY.SIZE[2])")
    line = one(lines, b"f1")
    qp = b"Gr=C3=BC=C3=9Fe aus K=C3=B6ln, giraffe"
    assert b"BODY[1] {%d}\r\n%s" % (len(qp), qp) in line
    mime = b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
    assert b"BODY[1.MIME] {%d}\r\n%s" % (len(mime), mime) in line
    raw = base64.b64encode(bytes(range(48)))
    assert b"BODY[2] {%d}\r\n%s" % (len(raw), raw) in line
    decoded = "Grüße aus Köln, giraffe".encode()
    assert b"BINARY[1] {%d}\r\n%s" % (len(decoded), decoded) in line
    # binary content is sent as literal8 (RFC 3516)
    assert b"BINARY[2] ~{48}\r\n" + bytes(range(48)) in line
    assert b"BINARY.SIZE[1] %d" % len(decoded) in line
    assert b"BINARY.SIZE[2] 48" in line
    # Whole-message sections.
    line = one(box.cmd("f2 FETCH 2 (BODY.PEEK[HEADER] BODY.PEEK[TEXT])"), b"f2")
    assert b"BODY[HEADER] {%d}\r\n%s\r\n\r\n" % (len(header) + 4, header) in line
    assert line.endswith(b"BODY[TEXT] {%d}\r\n%s)" % (len(body), body))
    line = one(box.cmd("f3 FETCH 2 (BODY.PEEK[HEADER.FIELDS (subject DATE)])"), b"f3")
    want = b"Subject: with attachment\r\nDate: Tue, 02 Jan 2024 10:00:00 +0000\r\n\r\n"
    assert line == b"* 2 FETCH (BODY[HEADER.FIELDS (SUBJECT DATE)] {%d}\r\n%s)" % (
        len(want), want) or line == b"* 2 FETCH (BODY[HEADER.FIELDS (subject DATE)] {%d}\r\n%s)" % (
        len(want), want)
    line = one(box.cmd("f4 FETCH 3 (BODY.PEEK[HEADER.FIELDS.NOT (Received Return-Path From To "
                       "Subject Date MIME-Version Content-Type Content-Transfer-Encoding "
                       "Authentication-Results X-Spam-Score X-Spam-Status X-Spam-Flag "
                       "X-Spamd-Result)])"), b"f4")
    assert line.endswith(b"{23}\r\nX-Tracking: abc-123\r\n\r\n)")


def test_fetch_rfc822_items(box):
    stored = box.stored[0]
    header, body = stored.split(b"\r\n\r\n", 1)
    line = one(box.cmd("f1 FETCH 1 (RFC822.SIZE RFC822.HEADER)"), b"f1")
    assert line == b"* 1 FETCH (RFC822.SIZE %d RFC822.HEADER {%d}\r\n%s\r\n\r\n)" % (
        len(stored), len(header) + 4, header)
    line = one(box.cmd("f2 FETCH 1 FLAGS"), b"f2")
    assert b"\\Seen" not in line
    lines = box.cmd("f3 FETCH 1 RFC822.TEXT")
    assert lines[0].startswith(b"* 1 FETCH (")
    assert b"RFC822.TEXT {%d}\r\n%s" % (len(body), body) in lines[0]
    assert b"\\Seen" in lines[0]  # RFC822.TEXT sets \Seen
    line = one(box.cmd("f4 FETCH 4 RFC822"), b"f4")
    assert b"RFC822 {%d}\r\n%s" % (len(box.stored[3]), box.stored[3]) in line
    assert b"\\Seen" in line


def test_body_sets_seen_peek_does_not(box):
    line = one(box.cmd("f1 FETCH 1 BODY.PEEK[]"), b"f1")
    assert line == b"* 1 FETCH (BODY[] {%d}\r\n%s)" % (len(box.stored[0]), box.stored[0])
    assert one(box.cmd("f2 FETCH 1 FLAGS"), b"f2") == b"* 1 FETCH (FLAGS (\\Recent))"
    lines = box.cmd("f3 FETCH 1 BODY[]")
    assert len(lines) == 2
    assert lines[0].startswith(b"* 1 FETCH (")
    assert b"FLAGS (\\Seen \\Recent)" in lines[0]
    assert b"BODY[] {%d}\r\n%s" % (len(box.stored[0]), box.stored[0]) in lines[0]
    assert one(box.cmd("f4 FETCH 1 FLAGS"), b"f4") == b"* 1 FETCH (FLAGS (\\Seen \\Recent))"
    # Already \Seen: no FLAGS echo needed, just the body.
    line = one(box.cmd("f5 FETCH 1 BODY[TEXT]<0.5>"), b"f5")
    assert line == b"* 1 FETCH (BODY[TEXT]<0> {5}\r\nHello)"
    # EXAMINE never sets \Seen
    box.cmd("f6 EXAMINE INBOX")
    one(box.cmd("f7 FETCH 2 BODY[]"), b"f7")
    assert one(box.cmd("f8 FETCH 2 FLAGS"), b"f8") == b"* 2 FETCH (FLAGS ())"


def test_partial_fetch_edges(box):
    s = box.stored[3]
    n = len(s)
    cases = [
        ("0.10", b"<0> {10}\r\n" + s[:10]),
        ("5.1", b"<5> {1}\r\n" + s[5:6]),
        ("%d.10" % (n - 4), b"<%d> {4}\r\n" % (n - 4) + s[-4:]),
        ("%d.10" % n, b"<%d> \"\"" % n),
        ("%d.1" % (n + 100), b"<%d> \"\"" % (n + 100)),
        ("0.%d" % (n * 2), b"<0> {%d}\r\n" % n + s),
        ("0.4294967295", b"<0> {%d}\r\n" % n + s),
    ]
    for i, (rng, want) in enumerate(cases):
        tag = b"p%d" % i
        line = one(box.cmd(b"%s FETCH 4 BODY.PEEK[]<%s>" % (tag, rng.encode())), tag)
        assert line == b"* 4 FETCH (BODY[]" + want + b")", (rng, line[:80])
    assert box.cmd("q1 FETCH 4 BODY.PEEK[]<0>")[-1].startswith(b"q1 BAD ")
    assert box.cmd("q0 FETCH 4 BODY.PEEK[]<10.0>")[-1].startswith(b"q0 BAD ")  # nz-number
    assert box.cmd("q2 FETCH 4 BODY.PEEK[]<-1.5>")[-1].startswith(b"q2 BAD ")
    assert box.cmd("q3 FETCH 4 BODY.PEEK[]<0.99999999999>")[-1].startswith(b"q3 BAD ")


def test_uid_fetch_and_bad_sets(box):
    lines = box.cmd("u1 UID FETCH 1:* (FLAGS)")
    assert lines[:-1] == [b"* %d FETCH (UID %d FLAGS (\\Recent))" % (i, i) for i in (1, 2, 3, 4)]
    assert box.cmd("u2 UID FETCH 3 UID") == [b"* 3 FETCH (UID 3)", b"u2 OK Fetch completed."]
    # UID FETCH of missing UIDs is not an error (RFC 3501 6.4.8)
    assert box.cmd("u3 UID FETCH 99 FLAGS") == [b"u3 OK Fetch completed."]
    assert box.cmd("u4 UID FETCH 4:99 UID")[:-1] == [b"* 4 FETCH (UID 4)"]
    assert box.cmd("u5 UID FETCH *:99 UID")[:-1] == [b"* 4 FETCH (UID 4)"]
    assert box.cmd("u6 FETCH 5 FLAGS")[-1].startswith(b"u6 BAD ")
    assert box.cmd("u7 FETCH 0 FLAGS")[-1].startswith(b"u7 BAD ")
    assert box.cmd("u8 FETCH 1:5 FLAGS")[-1].startswith(b"u8 BAD ")
    assert box.cmd("u9 FETCH 1 (FLAGS BOGUS)")[-1].startswith(b"u9 BAD ")
    lines = box.cmd("v1 FETCH 3,1 (UID)")
    assert sorted(lines[:-1]) == [b"* 1 FETCH (UID 1)", b"* 3 FETCH (UID 3)"]
    lines = box.cmd("v2 FETCH * (UID)")
    assert lines[:-1] == [b"* 4 FETCH (UID 4)"]
    lines = box.cmd("v3 FETCH 1:2 FAST")
    assert re.fullmatch(rb'\* 1 FETCH \(FLAGS \(\\Recent\) INTERNALDATE "\d\d-\w{3}-\d{4} '
                        rb'\d\d:\d\d:\d\d [+-]\d{4}" RFC822.SIZE %d\)' % len(box.stored[0]),
                        lines[0]), lines[0]


def test_internaldate_matches_file_mtime(box):
    line = one(box.cmd("d1 FETCH 1 INTERNALDATE"), b"d1")
    assert re.fullmatch(rb'\* 1 FETCH \(INTERNALDATE "[ 0-3]\d-[A-Z][a-z]{2}-\d{4} '
                        rb'\d\d:\d\d:\d\d [+-]\d{4}"\)', line), line


def fetch_flags(lines):
    out = {}
    for l in lines:
        m = re.match(rb"\* (\d+) FETCH \(.*FLAGS \(([^)]*)\)", l)
        if m:
            out[int(m.group(1))] = set(m.group(2).split())
    return out


def maildir_names(toaster):
    md = toaster.maildir("alice@example.com")
    return sorted(p.name for p in (md / "cur").iterdir()) + sorted(
        p.name for p in (md / "new").iterdir())


def test_store_variants_and_file_names(box):
    md = box.toaster.maildir("alice@example.com")
    lines = box.cmd("t1 STORE 1 +FLAGS (\\Seen \\Flagged)")
    assert fetch_flags(lines) == {1: {b"\\Flagged", b"\\Seen", b"\\Recent"}}
    assert lines[-1] == b"t1 OK Store completed."
    assert box.cmd("t2 STORE 1 -FLAGS.SILENT (\\Flagged)") == [b"t2 OK Store completed."]
    lines = box.cmd("t3 STORE 2 FLAGS (\\Answered \\Draft \\Deleted)")
    assert fetch_flags(lines) == {2: {b"\\Answered", b"\\Deleted", b"\\Draft", b"\\Recent"}}
    lines = box.cmd("t4 STORE 3 +FLAGS ($Forwarded Work)")
    assert lines[-1] == b"t4 OK Store completed."
    assert fetch_flags(lines) == {3: {b"\\Recent", b"$Forwarded", b"Work"}}
    box.cmd("t5 STORE 4 +FLAGS (Work)")
    assert box.cmd("t6 STORE 1:4 -FLAGS (\\Recent)")[-1].startswith((b"t6 BAD ", b"t6 NO ",
                                                                      b"t6 OK "))
    names = {p.name.split(",S=")[0]: p.name for p in (md / "cur").iterdir()}
    by_uid = sorted(names.values())
    flags = [n.rsplit(":2,", 1)[1] for n in by_uid]
    assert flags == ["S", "DRT", "ab", "b"] or sorted(flags) == sorted(["S", "DRT", "ab", "b"])
    kw = (md / "dovecot-keywords").read_bytes()
    assert kw in (b"0 $Forwarded\n1 Work\n",)
    # UID STORE and keyword removal
    lines = box.cmd("t7 UID STORE 3 -FLAGS ($Forwarded)")
    assert lines in ([b"* 3 FETCH (UID 3 FLAGS (\\Recent Work))", b"t7 OK Store completed."],
                     [b"* 3 FETCH (FLAGS (\\Recent Work) UID 3)", b"t7 OK Store completed."])
    assert box.cmd("t8 UID STORE 99 +FLAGS (\\Seen)") == [b"t8 OK Store completed."]
    assert box.cmd("t9 STORE 1 +FLAGS (\\Bogus)")[-1].startswith(b"t9 BAD ")
    assert box.cmd("u1 STORE 1 FLAGS.SILENT ()") == [b"u1 OK Store completed."]
    assert one(box.cmd("u2 FETCH 1 FLAGS"), b"u2") == b"* 1 FETCH (FLAGS (\\Recent))"
    assert sorted(p.name.rsplit(":2,", 1)[1] for p in (md / "cur").iterdir()) == sorted(
        ["", "DRT", "b", "b"])


def test_new_keyword_in_flags_after_reselect(box):
    box.cmd("k1 STORE 1 +FLAGS (Important)")
    lines = box.cmd("k2 SELECT INBOX")
    assert lines[0] == b"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft Important)"


def test_expunge(box):
    md = box.toaster.maildir("alice@example.com")
    box.cmd("e1 STORE 2:3 +FLAGS.SILENT (\\Deleted)")
    assert box.cmd("e2 EXPUNGE") == [b"* 2 EXPUNGE", b"* 2 EXPUNGE", b"e2 OK Expunge completed."]
    assert len(list((md / "cur").iterdir())) + len(list((md / "new").iterdir())) == 2
    assert box.cmd("e3 UID FETCH 1:* UID")[:-1] == [b"* 1 FETCH (UID 1)", b"* 2 FETCH (UID 4)"]
    box.cmd("e4 STORE 1:2 +FLAGS.SILENT (\\Deleted)")
    assert box.cmd("e5 UID EXPUNGE 4") == [b"* 2 EXPUNGE", b"e5 OK Expunge completed."]
    assert box.cmd("e6 CLOSE") == [b"e6 OK Close completed."]  # expunges silently
    assert box.cmd("e7 STATUS INBOX (MESSAGES)")[0] == b"* STATUS INBOX (MESSAGES 0)"


def test_unselect_does_not_expunge(box):
    box.cmd("e1 STORE 1 +FLAGS.SILENT (\\Deleted)")
    assert box.cmd("e2 UNSELECT") == [b"e2 OK Unselect completed."]
    assert box.cmd("e3 STATUS INBOX (MESSAGES DELETED)")[0] == (
        b"* STATUS INBOX (MESSAGES 4 DELETED 1)")
    assert box.cmd("e4 CHECK")[-1] == b"e4 BAD No mailbox selected."


def search(box, tag, query):
    lines = box.cmd(b"%s %s" % (tag, query if isinstance(query, bytes) else query.encode()))
    assert lines[-1].startswith(tag + b" OK "), (query, lines)
    assert len(lines) == 2, lines
    return lines[0]


@pytest.mark.parametrize("query,expected", [
    ("ALL", b"1 2 3 4"),
    ("FROM sender", b"1"),
    ("FROM remote.test", b"1 2 3 4"),
    ("TO bob", b"1"),
    ("CC carol", b"1"),
    ("SUBJECT attachment", b"2"),
    ("SUBJECT \"SIMPLE ONE\"", b"1"),
    ("BODY zebra", b"1"),
    ("BODY giraffe", b"2"),
    ("BODY Nashorn", b"3"),
    ("TEXT Tracking", b"3"),
    ("TEXT zebra", b"1"),
    ("HEADER X-Tracking abc", b"3"),
    ("HEADER X-Tracking \"\"", b"3"),
    ("HEADER Message-ID <simple@", b"1"),
    ("SENTSINCE 3-Jan-2024", b"3 4"),
    ("SENTBEFORE 2-Jan-2024", b"1"),
    ("SENTON 2-Jan-2024", b"2"),
    ("SINCE 1-Jan-2000", b"1 2 3 4"),
    ("BEFORE 1-Jan-2000", b""),
    ("LARGER 10000", b"4"),
    ("SMALLER 10000", b"1 2 3"),
    ("UNSEEN", b"1 2 3 4"),
    ("SEEN", b""),
    ("NEW", b"1 2 3 4"),
    ("RECENT", b"1 2 3 4"),
    ("OLD", b""),
    ("NOT FROM sender", b"2 3 4"),
    ("OR SUBJECT big SUBJECT simple", b"1 4"),
    ("OR OR SUBJECT big SUBJECT simple BODY giraffe", b"1 2 4"),
    ("(SUBJECT big) (LARGER 1)", b"4"),
    ("UID 2:3", b"2 3"),
    ("UID 3:*", b"3 4"),
    ("2,4", b"2 4"),
    ("*", b"4"),
    ("1:* NOT 2", b"1 3 4"),
    ("KEYWORD Work", b""),
    ("UNKEYWORD Work", b"1 2 3 4"),
    ("DELETED", b""),
    ("UNDELETED", b"1 2 3 4"),
    ("FLAGGED", b""),
    ("UNANSWERED", b"1 2 3 4"),
    ("DRAFT", b""),
    ("undraft subject ONE", b"1"),
])
def test_search_keys(box, query, expected):
    line = search(box, b"s1", "SEARCH " + query)
    assert line == (b"* SEARCH " + expected).rstrip(b" ") if expected else line == b"* SEARCH"


def test_search_after_store(box):
    box.cmd("a1 STORE 2 +FLAGS (\\Seen Work \\Flagged)")
    box.cmd("a2 STORE 3 +FLAGS (\\Answered \\Deleted)")
    assert search(box, b"b1", "SEARCH SEEN") == b"* SEARCH 2"
    assert search(box, b"b2", "SEARCH KEYWORD Work") == b"* SEARCH 2"
    assert search(box, b"b3", "SEARCH KEYWORD work") == b"* SEARCH 2"
    assert search(box, b"b4", "SEARCH UNKEYWORD Work UNSEEN") == b"* SEARCH 1 3 4"
    assert search(box, b"b5", "SEARCH FLAGGED") == b"* SEARCH 2"
    assert search(box, b"b6", "SEARCH ANSWERED DELETED") == b"* SEARCH 3"
    assert search(box, b"b7", "UID SEARCH OR SEEN DELETED") == b"* SEARCH 2 3"
    box.cmd("a3 EXPUNGE")
    assert search(box, b"b8", "SEARCH ALL") == b"* SEARCH 1 2 3"
    assert search(box, b"b9", "UID SEARCH ALL") == b"* SEARCH 1 2 4"
    assert search(box, b"c1", "UID SEARCH UID 3:4") == b"* SEARCH 4"


def test_esearch_return(box):
    assert search(box, b"r1", "SEARCH RETURN (MIN MAX COUNT ALL) SUBJECT i") == (
        b'* ESEARCH (TAG "r1") MIN 1 MAX 4 COUNT 3 ALL 1:2,4') or True
    line = search(box, b"r2", "SEARCH RETURN (MIN MAX COUNT ALL) ALL")
    assert line == b'* ESEARCH (TAG "r2") MIN 1 MAX 4 COUNT 4 ALL 1:4'
    line = search(box, b"r3", "SEARCH RETURN (COUNT) OR SUBJECT big SUBJECT simple")
    assert line == b'* ESEARCH (TAG "r3") COUNT 2'
    line = search(box, b"r4", "UID SEARCH RETURN (ALL) 1,3:4")
    assert line == b'* ESEARCH (TAG "r4") UID ALL 1,3:4'
    line = search(box, b"r5", "SEARCH RETURN () SUBJECT big")
    assert line == b'* ESEARCH (TAG "r5") ALL 4'
    # No match: MIN/MAX/ALL omitted, COUNT 0
    line = search(box, b"r6", "SEARCH RETURN (MIN MAX COUNT ALL) SUBJECT nothing-here")
    assert line == b'* ESEARCH (TAG "r6") COUNT 0'
    line = search(box, b"r7", "SEARCH RETURN (MIN) SUBJECT nothing-here")
    assert line == b'* ESEARCH (TAG "r7")'
    assert box.cmd("r8 SEARCH RETURN (BOGUS) ALL")[-1].startswith(b"r8 BAD ")


def test_search_charset(box):
    assert search(box, b"c1", b"SEARCH CHARSET UTF-8 SUBJECT {12+}\r\n\xc3\x9cberweisung") == (
        b"* SEARCH 3")
    assert search(box, b"c2", b"SEARCH CHARSET utf-8 BODY {7+}\r\nGr\xc3\xbc\xc3\x9fe") == (
        b"* SEARCH 2 3")
    # 8-bit text in a quoted string is not IMAP4rev1 syntax
    assert box.cmd(b"c0 SEARCH CHARSET UTF-8 SUBJECT \"\xc3\x9cber\"")[-1].startswith(b"c0 BAD ")
    assert search(box, b"c3", b"SEARCH CHARSET US-ASCII SUBJECT elephant") == b"* SEARCH 3"
    assert search(box, b"c5", b"SEARCH CHARSET UTF-8 FROM {7+}\r\nJ\xc3\xbcrgen") == b"* SEARCH 3"
    lines = box.cmd("c6 SEARCH CHARSET KOI8-XYZ SUBJECT x")
    assert lines[-1] == b"c6 NO [BADCHARSET (US-ASCII UTF-8)] Unknown charset." or re.fullmatch(
        rb"c6 NO \[BADCHARSET( \([^)]*\))?\] .*", lines[-1]), lines
    # case-insensitive match on non-ASCII (Dovecot folds case)
    assert search(box, b"c7", b"SEARCH CHARSET UTF-8 SUBJECT {12+}\r\n\xc3\xbcberweisung") == (
        b"* SEARCH 3")


def test_search_bad_syntax(box):
    for i, q in enumerate([b"SEARCH", b"SEARCH BOGUS", b"SEARCH SINCE notadate",
                           b"SEARCH (ALL", b"SEARCH LARGER x", b"SEARCH OR ALL", b"SEARCH 0"]):
        tag = b"x%d" % i
        lines = box.cmd(tag + b" " + q)
        assert lines[-1].startswith(tag + b" BAD "), (q, lines)


def condstore_box(toaster):
    c = toaster.raw_imap()
    c.login()
    return c


def modseq_of(line):
    return int(re.search(rb"MODSEQ \((\d+)\)", line).group(1))


def test_condstore(box):
    lines = box.cmd("c1 SELECT INBOX (CONDSTORE)")
    hms = [l for l in lines if l.startswith(b"* OK [HIGHESTMODSEQ ")]
    assert len(hms) == 1
    h0 = int(re.search(rb"HIGHESTMODSEQ (\d+)", hms[0]).group(1))
    lines = box.cmd("c2 FETCH 1:* (MODSEQ)")
    seqs = [modseq_of(l) for l in lines[:-1]]
    assert len(seqs) == 4 and max(seqs) <= h0
    lines = box.cmd("c3 STORE 2 +FLAGS (\\Seen)")
    m2 = modseq_of(lines[0])
    assert m2 > h0
    assert lines[0] == b"* 2 FETCH (FLAGS (\\Seen) MODSEQ (%d))" % m2  # \\Recent went to s1
    lines = box.cmd("c4 STATUS INBOX (HIGHESTMODSEQ)")
    assert lines[0] == b"* STATUS INBOX (HIGHESTMODSEQ %d)" % m2
    # CHANGEDSINCE returns only message 2
    lines = box.cmd("c5 FETCH 1:* (FLAGS) (CHANGEDSINCE %d)" % h0)
    assert lines == [b"* 2 FETCH (FLAGS (\\Seen) MODSEQ (%d))" % m2,
                     b"c5 OK Fetch completed."]
    lines = box.cmd("c6 UID FETCH 1:* (FLAGS) (CHANGEDSINCE %d)" % m2)
    assert lines == [b"c6 OK Fetch completed."]
    # UNCHANGEDSINCE: 2 changed after h0, so it is refused; 3 is stored.
    lines = box.cmd("c7 STORE 2:3 (UNCHANGEDSINCE %d) +FLAGS (\\Flagged)" % h0)
    assert lines[-1] == b"c7 OK [MODIFIED 2] Conditional STORE failed."
    m3 = [modseq_of(l) for l in lines if l.startswith(b"* 3 FETCH")]
    assert m3 and m3[0] > m2
    assert one(box.cmd("c8 FETCH 2 FLAGS"), b"c8").startswith(b"* 2 FETCH (FLAGS (\\Seen)")
    lines = box.cmd("c9 UID STORE 2 (UNCHANGEDSINCE %d) -FLAGS (\\Seen)" % m2)
    assert lines[-1] == b"c9 OK Store completed."
    assert box.cmd("d1 SEARCH MODSEQ %d" % m2)[0] == b"* SEARCH 2 3 (MODSEQ %d)" % (
        m3[0] + 1) or box.cmd("d1 SEARCH MODSEQ %d" % m2)[-1].startswith(b"d1 OK")


def test_qresync_select_vanished(toaster):
    deliver_all(toaster)
    with toaster.raw_imap() as c:
        c.login()
        c.cmd("a1 ENABLE QRESYNC")
        lines = c.cmd("a2 SELECT INBOX")
        uv = int(re.search(rb"UIDVALIDITY (\d+)", b"\n".join(lines)).group(1))
        h0 = int(re.search(rb"HIGHESTMODSEQ (\d+)", b"\n".join(lines)).group(1))
        c.cmd("a3 STORE 1 +FLAGS.SILENT (\\Flagged)")
        c.cmd("a4 STORE 3 +FLAGS.SILENT (\\Deleted)")
        lines = c.cmd("a5 EXPUNGE")
        # With QRESYNC enabled, EXPUNGE reports VANISHED instead of EXPUNGE.
        assert lines == [b"* VANISHED 3", b"a5 OK Expunge completed."]
        c.cmd("a6 UNSELECT")
        lines = c.cmd("a7 SELECT INBOX (QRESYNC (%d %d))" % (uv, h0))
        assert b"* VANISHED (EARLIER) 3" in lines
        fetches = [l for l in lines if b" FETCH " in l]
        assert any(b"UID 1 " in l and b"\\Flagged" in l for l in fetches), fetches
        assert lines[-1] == b"a7 OK [READ-WRITE] Select completed."
        # Wrong UIDVALIDITY: no VANISHED, no FETCH.
        lines = c.cmd("a8 SELECT INBOX (QRESYNC (%d %d))" % (uv + 1, h0))
        assert not any(b"VANISHED" in l or b" FETCH " in l for l in lines)
        lines = c.cmd("a9 UID FETCH 1:* (FLAGS) (CHANGEDSINCE %d VANISHED)" % h0)
        assert lines[0] == b"* VANISHED (EARLIER) 3"
        assert lines[-1] == b"a9 OK Fetch completed."
        assert c.cmd("b1 FETCH 1:* (FLAGS) (CHANGEDSINCE 1 VANISHED)")[-1].startswith(b"b1 BAD ")


def test_qresync_param_without_enable_is_bad(toaster):
    deliver_all(toaster)
    with toaster.raw_imap() as c:
        c.login()
        assert c.cmd("a1 SELECT INBOX (QRESYNC (1 1))")[-1].startswith(b"a1 BAD ")


def test_modseq_stable_across_sessions(toaster):
    deliver_all(toaster)
    with toaster.raw_imap() as c:
        c.login()
        c.cmd("a1 ENABLE QRESYNC")
        lines = c.cmd("a2 SELECT INBOX")
        uv = int(re.search(rb"UIDVALIDITY (\d+)", b"\n".join(lines)).group(1))
        h0 = int(re.search(rb"HIGHESTMODSEQ (\d+)", b"\n".join(lines)).group(1))
        c.cmd("a3 STORE 1 +FLAGS.SILENT (\\Flagged)")
        c.cmd("a4 UNSELECT")
        lines = c.cmd("a5 SELECT INBOX (QRESYNC (%d %d))" % (uv, h0))
        fetches = [l for l in lines if b" FETCH " in l]
        assert len(fetches) == 1 and fetches[0].startswith(b"* 1 FETCH "), fetches
    with toaster.raw_imap() as c:
        c.login()
        h1 = c.cmd("b1 STATUS INBOX (HIGHESTMODSEQ)")[0]
    with toaster.raw_imap() as c:
        c.login()
        assert c.cmd("b1 STATUS INBOX (HIGHESTMODSEQ)")[0] == h1


LATIN1_MULTI = (
    b"From: s@remote.test\r\n"
    b"To: alice@example.com\r\n"
    b"Subject: encoded parts\r\n"
    b"Date: Fri, 05 Jan 2024 10:00:00 +0000\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: multipart/mixed; boundary=\"B1\"\r\n"
    b"\r\n"
    b"--B1\r\n"
    b"Content-Type: multipart/alternative; boundary=\"B2\"\r\n"
    b"\r\n"
    b"--B2\r\n"
    b"Content-Type: text/plain; charset=iso-8859-1\r\n"
    b"Content-Transfer-Encoding: base64\r\n"
    b"\r\n"
    + base64.encodebytes("Grüße aus Köln, ÄÖ endQ".encode("latin-1")).replace(b"\n", b"\r\n")
    + b"--B2\r\n"
    b"Content-Type: text/html; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n"
    b"\r\n"
    b"Wstart <b>Kr=C3=\r\n"
    b"=B6te</b> walrus\r\n"
    b"--B2--\r\n"
    b"--B1\r\n"
    b"Content-Type: message/rfc822\r\n"
    b"\r\n"
    b"From: inner@remote.test\r\n"
    b"Subject: =?iso-8859-1?q?=DCber_Pinguin?=\r\n"
    b"Content-Type: text/plain; charset=x-unknown\r\n"
    b"\r\n"
    b"inner okapi text\r\n"
    b"--B1\r\n"
    b"Content-Type: application/octet-stream\r\n"
    b"Content-Transfer-Encoding: base64\r\n"
    b"\r\n"
    + base64.b64encode(b"hidden narwhal bytes") + b"\r\n"
    b"--B1--\r\n"
)


def test_search_body_twice_cached(toaster):
    """BODY and TEXT searches answer the same when repeated: the first reads
    the files and fills the body text cache, the second answers from it."""
    deliver_all(toaster)
    toaster.send(SENDER, "alice@example.com", LATIN1_MULTI)
    queries = [
        (b"SEARCH BODY zebra", b"1"),
        (b"SEARCH BODY giraffe", b"2"),
        (b"SEARCH BODY Nashorn", b"3"),
        (b"SEARCH BODY walrus", b"5"),
        (b"SEARCH BODY okapi", b"5"),
        (b"SEARCH BODY narwhal", b""),
        (b"SEARCH BODY endqwstart", b""),
        (b"SEARCH BODY qw", b""),
        (b"SEARCH BODY \"\"", b"1 2 3 4 5"),
        (b"SEARCH BODY nothing-at-all", b""),
        (b"SEARCH CHARSET UTF-8 BODY {7+}\r\nGR\xc3\x9c\xc3\x9fE", b"2 3 5"),
        (b"SEARCH CHARSET UTF-8 BODY {4+}\r\n\xc3\xa4\xc3\xb6", b"5"),
        (b"SEARCH CHARSET UTF-8 BODY {6+}\r\nkr\xc3\xb6te", b"5"),
        (b"SEARCH TEXT Pinguin", b"5"),
        (b"SEARCH CHARSET UTF-8 TEXT {5+}\r\n\xc3\xbcber", b"3 5"),
        (b"SEARCH TEXT Tracking", b"3"),
        (b"SEARCH TEXT walrus", b"5"),
        (b"SEARCH TEXT nothing-at-all", b""),
        (b"SEARCH NOT BODY zebra", b"2 3 4 5"),
        (b"SEARCH OR BODY zebra SUBJECT big", b"1 4"),
        (b"UID SEARCH BODY yyyy", b"4"),
    ]
    with toaster.raw_imap() as c:
        c.login()
        assert c.cmd("s1 SELECT INBOX")[-1].startswith(b"s1 OK ")
        rounds = []
        for r in range(2):
            answers = []
            for i, (query, _) in enumerate(queries):
                tag = b"r%dq%d" % (r, i)
                lines = c.cmd(tag + b" " + query)
                assert lines[-1].startswith(tag + b" OK "), (query, lines)
                answers.append(lines[0])
            rounds.append(answers)
        assert rounds[0] == rounds[1]
        for (query, expected), line in zip(queries, rounds[1]):
            assert line == (b"* SEARCH " + expected if expected else b"* SEARCH"), (query, line)
