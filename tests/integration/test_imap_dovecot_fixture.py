"""A Maildir written by Dovecot (tests/unit/fixtures/dovecot/) served by
toasterd: the UIDVALIDITY, UIDs, flags and keyword letters are kept, and
after toasterd changes it (STORE, EXPUNGE, new delivery) dovecot-uidlist is
still a valid version 3 file with a correct next UID.
"""

import re

import pytest
from pathlib import Path

FIXTURES = Path(__file__).resolve().parent.parent / "unit" / "fixtures" / "dovecot"
BODY = b"Subject: x\n\nbody of 30\nbytes.\n"  # 30 bytes, 4 LFs: S=30, W=34
assert len(BODY) == 30
HEADER_RE = re.compile(rb"^3 V(\d+) N(\d+) G[0-9a-f]{32}$")


def install(toaster, user="alice@example.com"):
    md = toaster.maildir(user)
    for sub in ("cur", "new", "tmp"):
        (md / sub).mkdir(parents=True, exist_ok=True)
    (md / "dovecot-uidlist").write_bytes((FIXTURES / "inbox.dovecot-uidlist").read_bytes())
    (md / "dovecot-keywords").write_bytes((FIXTURES / "dovecot-keywords").read_bytes())
    names = (FIXTURES / "filenames.txt").read_text().split("\n")[:4]
    for n in names:
        (md / "cur" / n).write_bytes(BODY)
    return md


def parse_uidlist(data):
    lines = data.split(b"\n")
    assert lines[-1] == b"", data
    m = HEADER_RE.match(lines[0])
    assert m, lines[0]
    recs = {}
    for l in lines[1:-1]:
        m2 = re.fullmatch(rb"(\d+)(?: [A-Z][^ ]*)* :(.+)", l)
        assert m2, l
        recs[int(m2.group(1))] = m2.group(2).decode()
    uids = list(recs)
    assert uids == sorted(uids), uids
    return int(m.group(1)), int(m.group(2)), recs


def test_dovecot_maildir_served(toaster):
    md = install(toaster)
    with toaster.raw_imap() as c:
        c.login()
        lines = c.cmd("a1 SELECT INBOX")
        assert b"* OK [UIDVALIDITY 1795841654] UIDs valid" in lines
        assert b"* 4 EXISTS" in lines  # uid 2 has no file
        assert b"* OK [UIDNEXT 6] Predicted next UID" in lines
        assert lines[0] == (b"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft "
                            b"$Forwarded Work $Junk Personal)")
        lines = c.cmd("a2 UID FETCH 1:* (UID FLAGS RFC822.SIZE)")
        got = {}
        for l in lines[:-1]:
            m = re.fullmatch(rb"\* (\d) FETCH \((.*)\)", l)
            assert m, l
            items = m.group(2)
            uid = int(re.search(rb"UID (\d+)", items).group(1))
            flags = set(re.search(rb"FLAGS \(([^)]*)\)", items).group(1).split())
            size = int(re.search(rb"RFC822.SIZE (\d+)", items).group(1))
            got[uid] = (int(m.group(1)), flags, size)
        assert {u: (g[0], g[1]) for u, g in got.items()} == {
            1: (1, {b"\\Flagged", b"\\Seen"}),
            3: (2, {b"\\Draft", b"\\Answered", b"\\Deleted", b"Personal"}),
            4: (3, set()),
            5: (4, {b"\\Seen"}),
        }
        assert c.cmd("a3 UID SEARCH KEYWORD Personal")[0] == b"* SEARCH 3"
        # Work on it.
        c.cmd("a4 UID STORE 1 +FLAGS.SILENT ($Junk)")
        c.cmd("a5 UID STORE 4 +FLAGS.SILENT (\\Deleted NewKw)")
        assert c.cmd("a6 EXPUNGE")[:-1] == [b"* 2 EXPUNGE", b"* 2 EXPUNGE"]
    toaster.send("s@remote.test", "alice@example.com", b"Subject: new\r\n\r\nnew\r\n")
    with toaster.raw_imap() as c:
        c.login()
        lines = c.cmd("b1 SELECT INBOX")
        assert b"* OK [UIDVALIDITY 1795841654] UIDs valid" in lines
        assert b"* OK [UIDNEXT 7] Predicted next UID" in lines
        lines = c.cmd("b2 UID FETCH 1:* (FLAGS)")
        uids = [int(re.search(rb"UID (\d+)", l).group(1)) for l in lines[:-1]]
        assert uids == [1, 5, 6]
        assert b"$Junk" in lines[0]
    uv, nxt, recs = parse_uidlist((md / "dovecot-uidlist").read_bytes())
    assert uv == 1795841654
    assert nxt == 7
    assert sorted(recs) == [1, 5, 6]
    assert recs[1].startswith("1795841654.M500375P31461.vm,S=30,W=34")
    # Files on disk: flags in the name, keyword letters per dovecot-keywords.
    kw = (md / "dovecot-keywords").read_text().split("\n")
    assert kw[:4] == ["0 $Forwarded", "1 Work", "2 $Junk", "3 Personal"]
    files = {p.name.split(":2,")[0]: p.name for p in (md / "cur").iterdir()}
    assert files["1795841654.M500375P31461.vm,S=30,W=34"].endswith(":2,FSc")
    assert "1795841654.M524040P31465.vm,S=30,W=34" not in files
    assert "1795841700.M1P2Q3.toaster,S=38,W=38" not in files


def test_dovecot_empty_and_fresh_uidlists(toaster):
    md = toaster.maildir("bob@example.com")
    for sub in ("cur", "new", "tmp"):
        (md / sub).mkdir(parents=True, exist_ok=True)
    (md / "dovecot-uidlist").write_bytes((FIXTURES / "fresh.dovecot-uidlist").read_bytes())
    names = (FIXTURES / "filenames.txt").read_text().split("\n")[4:7]
    for n in names:
        (md / "new" / n).write_bytes(b"Subject: y\n\nbody 25 bytes\n")
    (md / "new" / "1795841900.M1P1.host,S=1").write_bytes(b"z")
    with toaster.raw_imap() as c:
        c.login("bob@example.com")
        lines = c.cmd("a1 SELECT INBOX")
        assert b"* OK [UIDVALIDITY 1795841658] UIDs valid" in lines
        assert b"* 4 EXISTS" in lines
        assert b"* OK [UIDNEXT 5] Predicted next UID" in lines
        lines = c.cmd("a2 UID FETCH 1:* UID")
        assert lines[:-1] == [b"* %d FETCH (UID %d)" % (i, i) for i in (1, 2, 3, 4)]
    uv, nxt, recs = parse_uidlist((md / "dovecot-uidlist").read_bytes())
    assert (uv, nxt) == (1795841658, 5) and sorted(recs) == [1, 2, 3, 4]
    assert recs[4].startswith("1795841900.M1P1.host,S=1")


def test_lf_files_served_with_crlf(toaster):
    install(toaster)
    with toaster.raw_imap() as c:
        c.login()
        c.cmd("a1 SELECT INBOX")
        lines = c.cmd("a2 UID FETCH 1 (RFC822.SIZE BODY.PEEK[])")
        crlf = BODY.replace(b"\n", b"\r\n")
        assert lines[0] == b"* 1 FETCH (UID 1 RFC822.SIZE 34 BODY[] {34}\r\n" + crlf + b")"
