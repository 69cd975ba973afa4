"""IMAP mailbox management against the real toasterd, checked both on the
wire and on disk (Maildir++ as Dovecot lays it out).

Covers the special folders created at first login, CREATE / DELETE / RENAME
(hierarchies, INBOX, children, non-ASCII names in modified UTF-7 and UTF-8,
invalid names that must create nothing), LIST patterns and LIST-EXTENDED
selection/return options, LSUB, STATUS of every item, SUBSCRIBE and the
`subscriptions` file.
"""

import re

import pytest

from conftest import wait_until

SPECIAL = [
    b'* LIST (\\HasNoChildren \\Drafts) "." Drafts',
    b'* LIST (\\HasNoChildren \\Junk) "." Junk',
    b'* LIST (\\HasNoChildren \\Sent) "." Sent',
    b'* LIST (\\HasNoChildren \\Trash) "." Trash',
]


def msg(subject, body=b"Body.\r\n"):
    return (b"From: <sender@remote.test>\r\nTo: <alice@example.com>\r\nSubject: "
            + subject.encode() + b"\r\n\r\n" + body)


def untagged(lines):
    return [l for l in lines[:-1]]


def names(lines, kind=b"LIST"):
    out = []
    for l in lines[:-1]:
        if l.startswith(b"* " + kind + b" "):
            out.append(l.rsplit(b" ", 1)[1])
    return out


def test_special_folders_created_at_first_login(toaster):
    md = toaster.maildir("alice@example.com")
    assert not md.exists()
    with toaster.raw_imap() as c:
        c.login()
        lines = c.cmd('a1 LIST "" *')
        assert lines == [b'* LIST (\\HasNoChildren) "." INBOX'] + SPECIAL + [
            b"a1 OK List completed."
        ]
        lines = c.cmd('a2 LIST (SPECIAL-USE) "" *')
        assert lines == SPECIAL + [b"a2 OK List completed."]
        lines = c.cmd('a3 LSUB "" *')
        assert sorted(lines[:-1]) == sorted(
            b'* LSUB () "." ' + n for n in (b"Sent", b"Drafts", b"Junk", b"Trash"))
        assert lines[-1] == b"a3 OK Lsub completed."
    for name in ("Sent", "Drafts", "Junk", "Trash"):
        d = md / ("." + name)
        for sub in ("cur", "new", "tmp"):
            assert (d / sub).is_dir(), d / sub
        assert (d / "maildirfolder").is_file()
        assert (d / "maildirfolder").stat().st_size == 0
    for sub in ("cur", "new", "tmp"):
        assert (md / sub).is_dir()
    assert not (md / "maildirfolder").exists()
    assert (md / "subscriptions").read_bytes() == b"V\t2\n\nSent\nDrafts\nJunk\nTrash\n"


def test_special_folder_delete(toaster):
    with toaster.raw_imap() as c:
        c.login()
        assert c.cmd("a1 DELETE Junk") == [b"a1 OK Delete completed."]
        assert not (toaster.maildir("alice@example.com") / ".Junk").exists()
        assert b"Junk" not in b"".join(c.cmd('a2 LIST "" *'))


def test_create_delete_on_disk(toaster):
    md = toaster.maildir("alice@example.com")
    with toaster.raw_imap() as c:
        c.login()
        assert c.cmd("a1 CREATE Projects") == [b"a1 OK Create completed."]
        assert (md / ".Projects" / "maildirfolder").is_file()
        assert all((md / ".Projects" / s).is_dir() for s in ("cur", "new", "tmp"))
        assert c.cmd("a2 CREATE Projects") == [b"a2 NO [ALREADYEXISTS] Mailbox already exists."]
        assert c.cmd("a3 CREATE inbox") == [b"a3 NO [ALREADYEXISTS] Mailbox already exists."]
        assert c.cmd('a4 LIST "" Projects') == [
            b'* LIST (\\HasNoChildren) "." Projects', b"a4 OK List completed."]
        assert c.cmd("a5 DELETE Projects") == [b"a5 OK Delete completed."]
        assert not (md / ".Projects").exists()
        assert c.cmd("a6 DELETE Projects") == [b"a6 NO [NONEXISTENT] Mailbox doesn't exist."]
        assert c.cmd("a7 DELETE INBOX") == [b"a7 NO [CANNOT] INBOX can't be deleted."]
        assert c.cmd("a8 SELECT Projects") == [b"a8 NO [NONEXISTENT] Mailbox doesn't exist."]
        assert c.cmd('a9 LIST "" Projects') == [b"a9 OK List completed."]


def test_create_trailing_separator(toaster):
    md = toaster.maildir("alice@example.com")
    with toaster.raw_imap() as c:
        c.login()
        assert c.cmd("a1 CREATE Folder.")[-1] == b"a1 OK Create completed."
        assert (md / ".Folder").is_dir()
        assert c.cmd('a2 LIST "" Folder')[0] == b'* LIST (\\HasNoChildren) "." Folder'


def test_hierarchy(toaster):
    md = toaster.maildir("alice@example.com")
    with toaster.raw_imap() as c:
        c.login()
        assert c.cmd("a1 CREATE Work")[-1] == b"a1 OK Create completed."
        assert c.cmd("a2 CREATE Work.2024")[-1] == b"a2 OK Create completed."
        assert c.cmd("a3 CREATE Work.2024.Q1")[-1] == b"a3 OK Create completed."
        assert (md / ".Work.2024.Q1" / "cur").is_dir()
        lines = c.cmd('a4 LIST "" Work*')
        assert lines == [
            b'* LIST (\\HasChildren) "." Work',
            b'* LIST (\\HasChildren) "." Work.2024',
            b'* LIST (\\HasNoChildren) "." Work.2024.Q1',
            b"a4 OK List completed.",
        ]
        assert c.cmd('a5 LIST "" Work.%') == [
            b'* LIST (\\HasChildren) "." Work.2024', b"a5 OK List completed."]
        assert c.cmd('a6 LIST Work. %') == [
            b'* LIST (\\HasChildren) "." Work.2024', b"a6 OK List completed."]
        # A folder with children can not be deleted in Maildir++.
        assert c.cmd("a7 DELETE Work") == [
            b"a7 NO [HASCHILDREN] Mailbox has children, delete them first."]
        assert (md / ".Work").is_dir()
        # Renaming a parent renames its children too (RFC 3501 6.3.5).
        assert c.cmd("a8 RENAME Work Job") == [b"a8 OK Rename completed."]
        assert not any(p.name.startswith(".Work") for p in md.iterdir())
        assert (md / ".Job.2024.Q1" / "cur").is_dir()
        assert c.cmd('a9 LIST "" Job*')[:-1] == [
            b'* LIST (\\HasChildren) "." Job',
            b'* LIST (\\HasChildren) "." Job.2024',
            b'* LIST (\\HasNoChildren) "." Job.2024.Q1',
        ]
        assert c.cmd("b1 RENAME Job.2024 Archive") == [b"b1 OK Rename completed."]
        assert (md / ".Archive.Q1").is_dir() and not (md / ".Job.2024").exists()
        assert c.cmd("b2 RENAME Job Archive") == [
            b"b2 NO [ALREADYEXISTS] Mailbox already exists."]
        assert c.cmd("b3 RENAME Nope Other") == [
            b"b3 NO [NONEXISTENT] Mailbox doesn't exist."]
        assert c.cmd("b4 RENAME Job Job.sub")[-1].startswith(b"b4 NO ")


def test_create_without_parent_lists_parent_as_nonexistent(toaster):
    with toaster.raw_imap() as c:
        c.login()
        c.cmd("a1 CREATE x.y.z")
        lines = c.cmd('a2 LIST "" x*')
        assert lines[-1] == b"a2 OK List completed."
        assert lines[-2] == b'* LIST (\\HasNoChildren) "." x.y.z'
        for l in lines[:-2]:
            assert re.match(rb'\* LIST \((\\NonExistent|\\Noselect) \\HasChildren\) "\." x', l), l
        assert c.cmd("a3 SELECT x")[-1].startswith(b"a3 NO ")
        assert c.cmd('a4 LIST "" x%')[:-1] == lines[:1]


def test_rename_inbox_moves_messages(toaster):
    for i in range(3):
        toaster.send("s@remote.test", "alice@example.com", msg("m%d" % i))
    md = toaster.maildir("alice@example.com")
    with toaster.raw_imap() as c:
        c.login()
        assert c.cmd("a1 STATUS INBOX (MESSAGES)")[0] == b"* STATUS INBOX (MESSAGES 3)"
        assert c.cmd("a2 RENAME INBOX Old") == [b"a2 OK Rename completed."]
        # UIDs are never reused under one UIDVALIDITY: UIDNEXT stays 4 or
        # the UIDVALIDITY changes.
        line = c.cmd("a3 STATUS INBOX (MESSAGES UIDNEXT)")[0]
        assert line.startswith(b"* STATUS INBOX (MESSAGES 0 UIDNEXT "), line
        assert c.cmd("a4 STATUS Old (MESSAGES)")[0] == b"* STATUS Old (MESSAGES 3)"
        lines = c.cmd("a5 SELECT Old")
        assert b"* 3 EXISTS" in lines
        lines = c.cmd("a6 FETCH 1:* BODY.PEEK[HEADER.FIELDS (SUBJECT)]")
        assert [l.split(b"\r\n")[1] for l in lines[:-1]] == [
            b"Subject: m0", b"Subject: m1", b"Subject: m2"]
    assert len(list((md / ".Old").glob("*/*"))) == 3
    assert list((md / "new").iterdir()) == [] and list((md / "cur").iterdir()) == []
    # INBOX keeps working for delivery.
    toaster.send("s@remote.test", "alice@example.com", msg("after"))
    with toaster.raw_imap() as c:
        c.login()
        assert c.cmd("a1 STATUS INBOX (MESSAGES)")[0] == b"* STATUS INBOX (MESSAGES 1)"


def test_non_ascii_names_mutf7(toaster):
    md = toaster.maildir("alice@example.com")
    with toaster.raw_imap() as c:
        c.login()
        assert c.cmd("a1 CREATE &AOQ-pfel")[-1] == b"a1 OK Create completed."
        assert (md / ".&AOQ-pfel").is_dir()
        assert c.cmd('a2 LIST "" &AOQ-*') == [
            b'* LIST (\\HasNoChildren) "." &AOQ-pfel', b"a2 OK List completed."]
        assert c.cmd("a3 ENABLE UTF8=ACCEPT")[-1] == b"a3 OK Enabled."
        assert c.cmd('a4 LIST "" *pfel') == [
            b'* LIST (\\HasNoChildren) "." "\xc3\xa4pfel"', b"a4 OK List completed."]
        assert c.cmd(b'a5 CREATE "Gr\xc3\xbc\xc3\x9fe"')[-1] == b"a5 OK Create completed."
        assert (md / ".Gr&APwA3w-e").is_dir()
        assert c.cmd(b'a6 STATUS "Gr\xc3\xbc\xc3\x9fe" (MESSAGES)')[0] == (
            b'* STATUS "Gr\xc3\xbc\xc3\x9fe" (MESSAGES 0)')
    with toaster.raw_imap() as c:
        c.login()
        assert c.cmd('a1 LIST "" Gr*') == [
            b'* LIST (\\HasNoChildren) "." Gr&APwA3w-e', b"a1 OK List completed."]
        # Raw 8-bit without UTF8=ACCEPT is not a valid mailbox name.
        assert c.cmd(b'a2 CREATE "\xc3\xa9t\xc3\xa9"')[-1].startswith((b"a2 NO ", b"a2 BAD "))
        assert c.cmd("a3 CREATE &Jjo")[-1] == (
            b"a3 NO [CANNOT] Mailbox name is not valid modified UTF-7.")
        # Non-canonical mUTF-7: "&AGE-" is a plain "a".
        assert c.cmd("a4 CREATE &AGE-")[-1].startswith(b"a4 NO ")


@pytest.mark.parametrize("name", [
    b'"../x"', b'"a/b"', b'".x"', b'"a..b"', b'"x/../../../etc"', b'".."', b'"~root"',
    b'"a."', b'""', b'"."', b"\"a\x7fb\"",
])
def test_invalid_names_create_nothing(toaster, name):
    md = toaster.maildir("alice@example.com")
    with toaster.raw_imap() as c:
        c.login()
        before = set(toaster.root.rglob("*"))
        lines = c.cmd(b"a1 CREATE " + name)
        if name == b'"a."':  # "a" with a trailing separator is a legal CREATE
            assert lines == [b"a1 OK Create completed."]
            return
        assert lines[-1].startswith((b"a1 NO ", b"a1 BAD ")), lines
        after = set(toaster.root.rglob("*"))
        new = {p for p in after - before if p != toaster.log_file}
        assert new == set(), new
        # And the same names can not be used to reach outside the Maildir.
        for i, cmd in enumerate((b"SELECT", b"DELETE", b"STATUS")):
            arg = b" (MESSAGES)" if cmd == b"STATUS" else b""
            l = c.cmd(b"b%d %s %s%s" % (i, cmd, name, arg))
            assert l[-1].startswith((b"b%d NO " % i, b"b%d BAD " % i)), l
        assert c.cmd(b"c1 RENAME Sent " + name)[-1].startswith((b"c1 NO ", b"c1 BAD "))
        assert (md / ".Sent" / "cur").is_dir()


def test_list_patterns(toaster):
    with toaster.raw_imap() as c:
        c.login()
        for n in ("A", "A.B", "A.B.C", "AB", "Z"):
            assert c.cmd("x CREATE " + n)[-1] == b"x OK Create completed."
        assert names(c.cmd('a1 LIST "" %')) == [
            b"INBOX", b"A", b"AB", b"Drafts", b"Junk", b"Sent", b"Trash", b"Z"] or sorted(
            names(c.cmd('a1 LIST "" %'))) == sorted(
            [b"INBOX", b"A", b"AB", b"Drafts", b"Junk", b"Sent", b"Trash", b"Z"])
        assert sorted(names(c.cmd('a2 LIST "" A*'))) == [b"A", b"A.B", b"A.B.C", b"AB"]
        assert sorted(names(c.cmd('a3 LIST "" A%'))) == [b"A", b"AB"]
        assert sorted(names(c.cmd('a4 LIST "" A.%'))) == [b"A.B"]
        assert sorted(names(c.cmd('a5 LIST "" %.%'))) == [b"A.B"]
        assert sorted(names(c.cmd('a6 LIST A. *'))) == [b"A.B", b"A.B.C"]
        assert names(c.cmd('a7 LIST "" inbox')) == [b"INBOX"]
        assert names(c.cmd('a8 LIST "" iNbOx*')) == [b"INBOX"]
        assert names(c.cmd('a9 LIST "" nothing*')) == []
        # Empty pattern: the hierarchy delimiter and root.
        assert c.cmd('b1 LIST "" ""') == [
            b'* LIST (\\Noselect) "." ""', b"b1 OK List completed."]
        assert c.cmd('b2 LIST "" (A Z)')[:-1] == [
            b'* LIST (\\HasChildren) "." A', b'* LIST (\\HasNoChildren) "." Z']


def test_list_subscribed_return_children_status(toaster):
    toaster.send("s@remote.test", "alice@example.com", msg("one"))
    with toaster.raw_imap() as c:
        c.login()
        c.cmd("a0 CREATE Lists.Sub")
        c.cmd("a1 SUBSCRIBE INBOX")
        c.cmd("a2 SUBSCRIBE Lists.Sub")
        c.cmd("a3 SUBSCRIBE Gone")
        lines = c.cmd('a4 LIST (SUBSCRIBED) "" * RETURN (CHILDREN)')
        assert lines[-1] == b"a4 OK List completed."
        got = {l.rsplit(b" ", 1)[1]: l for l in lines[:-1]}
        assert set(got) == {b"INBOX", b"Sent", b"Drafts", b"Junk", b"Trash", b"Lists.Sub",
                            b"Gone"}
        assert got[b"INBOX"] == b'* LIST (\\HasNoChildren \\Subscribed) "." INBOX'
        assert got[b"Gone"] == b'* LIST (\\NonExistent \\Subscribed) "." Gone'
        assert got[b"Sent"] == b'* LIST (\\HasNoChildren \\Subscribed \\Sent) "." Sent'


def test_list_recursivematch_childinfo(toaster):
    with toaster.raw_imap() as c:
        c.login()
        c.cmd("a0 CREATE Lists.Sub")
        c.cmd("a2 SUBSCRIBE Lists.Sub")
        lines = c.cmd('a5 LIST (SUBSCRIBED RECURSIVEMATCH) "" %')
        # RFC 5258 5: the unsubscribed parent is returned with CHILDINFO.
        assert any(l.startswith(b"* LIST (") and
                   l.endswith(b'"." Lists ("CHILDINFO" ("SUBSCRIBED"))') for l in lines), lines


def test_list_return_status(toaster):
    toaster.send("s@remote.test", "alice@example.com", msg("one"))
    toaster.send("s@remote.test", "alice@example.com", msg("two"))
    with toaster.raw_imap() as c:
        c.login()
        lines = c.cmd('a1 LIST "" % RETURN (STATUS (MESSAGES UNSEEN))')
        i = lines.index(b'* LIST (\\HasNoChildren) "." INBOX')
        assert lines[i + 1] == b"* STATUS INBOX (MESSAGES 2 UNSEEN 2)"
        i = lines.index(b'* LIST (\\HasNoChildren \\Sent) "." Sent')
        assert lines[i + 1] == b"* STATUS Sent (MESSAGES 0 UNSEEN 0)"


def test_list_subscribed_return_status(toaster):
    toaster.send("s@remote.test", "alice@example.com", msg("one"))
    with toaster.raw_imap() as c:
        c.login()
        c.cmd("a1 SUBSCRIBE INBOX")
        lines = c.cmd('a2 LIST (SUBSCRIBED) "" * RETURN (CHILDREN STATUS (MESSAGES UNSEEN))')
        i = lines.index(b'* LIST (\\HasNoChildren \\Subscribed) "." INBOX')
        assert lines[i + 1] == b"* STATUS INBOX (MESSAGES 1 UNSEEN 1)"
        i = lines.index(b'* LIST (\\HasNoChildren \\Subscribed \\Trash) "." Trash')
        assert lines[i + 1] == b"* STATUS Trash (MESSAGES 0 UNSEEN 0)"


def test_lsub_and_subscriptions_file(toaster):
    md = toaster.maildir("alice@example.com")
    with toaster.raw_imap() as c:
        c.login()
        c.cmd("a0 CREATE Lists")
        assert c.cmd("a1 SUBSCRIBE Lists") == [b"a1 OK Subscribe completed."]
        assert c.cmd("a2 SUBSCRIBE NotThere") == [b"a2 OK Subscribe completed."]
        data = (md / "subscriptions").read_bytes()
        assert data.startswith(b"V\t2\n\n")
        assert sorted(data[5:].split(b"\n")[:-1]) == sorted(
            [b"Sent", b"Drafts", b"Junk", b"Trash", b"Lists", b"NotThere"])
        assert data.endswith(b"\n")
        lines = c.cmd('a4 LSUB "" *')
        assert sorted(lines[:-1]) == sorted([
            b'* LSUB () "." Sent', b'* LSUB () "." Drafts', b'* LSUB () "." Trash',
            b'* LSUB () "." Junk',
            b'* LSUB () "." Lists', b'* LSUB (\\Noselect) "." NotThere'])
        assert c.cmd('a5 LSUB "" L%')[:-1] == [b'* LSUB () "." Lists']
    # Persistence: a new session (and a restart) sees the same list.
    toaster.stop()
    toaster.proc = None
    toaster.start()
    with toaster.raw_imap() as c:
        c.login()
        lines = c.cmd('a1 LSUB "" *')
        assert len(lines) == 7 and b'* LSUB () "." Lists' in lines


def test_unsubscribe(toaster):
    md = toaster.maildir("alice@example.com")
    with toaster.raw_imap() as c:
        c.login()
        assert c.cmd("a1 UNSUBSCRIBE Junk") == [b"a1 OK Unsubscribe completed."]
        assert (md / "subscriptions").read_bytes() == b"V\t2\n\nSent\nDrafts\nTrash\n"
        assert b'* LSUB () "." Junk' not in c.cmd('a2 LSUB "" *')


def test_subscriptions_file_written_by_dovecot_is_read(toaster):
    md = toaster.maildir("bob@example.com")
    with toaster.raw_imap() as c:
        c.login("bob@example.com")
    (md / "subscriptions").write_bytes(b"V\t2\n\nINBOX\nArchive\n")
    with toaster.raw_imap() as c:
        c.login("bob@example.com")
        assert sorted(c.cmd('a1 LSUB "" *')[:-1]) == sorted([
            b'* LSUB () "." INBOX', b'* LSUB (\\Noselect) "." Archive'])


def test_subscribe_survives_rename_and_delete(toaster):
    md = toaster.maildir("alice@example.com")
    with toaster.raw_imap() as c:
        c.login()
        c.cmd("a1 CREATE Tmp")
        c.cmd("a2 SUBSCRIBE Tmp")
        c.cmd("a3 DELETE Tmp")
        # RFC 3501: deleting does not unsubscribe.
        assert b"Tmp" in (md / "subscriptions").read_bytes()


ALL_STATUS = b"MESSAGES RECENT UIDNEXT UIDVALIDITY UNSEEN DELETED SIZE HIGHESTMODSEQ"


def test_status_every_item(toaster):
    sizes = []
    for i in range(3):
        toaster.send("s@remote.test", "alice@example.com", msg("st%d" % i))
    sizes = [p.stat().st_size for p in toaster.delivered("alice@example.com")]
    with toaster.raw_imap() as c:
        c.login()
        lines = c.cmd(b"a1 STATUS INBOX (" + ALL_STATUS + b")")
        m = re.fullmatch(
            rb"\* STATUS INBOX \(MESSAGES 3 RECENT 3 UIDNEXT 4 UIDVALIDITY (\d+) UNSEEN 3 "
            rb"DELETED 0 SIZE (\d+) HIGHESTMODSEQ (\d+)\)", lines[0])
        assert m, lines
        assert int(m.group(2)) == sum(sizes)
        uidvalidity, modseq = int(m.group(1)), int(m.group(3))
        assert lines[1] == b"a1 OK Status completed."
        c.cmd("a2 SELECT INBOX")
        c.cmd("a3 STORE 1 +FLAGS.SILENT (\\Seen)")
        c.cmd("a4 STORE 2 +FLAGS.SILENT (\\Deleted)")
        c.cmd("a5 UNSELECT")
        lines = c.cmd(b"a6 STATUS INBOX (" + ALL_STATUS + b")")
        m2 = re.fullmatch(
            rb"\* STATUS INBOX \(MESSAGES 3 RECENT 0 UIDNEXT 4 UIDVALIDITY (\d+) UNSEEN 2 "
            rb"DELETED 1 SIZE (\d+) HIGHESTMODSEQ (\d+)\)", lines[0])
        assert m2, lines
        assert int(m2.group(1)) == uidvalidity and int(m2.group(3)) > modseq
        assert c.cmd("a7 STATUS INBOX (MESSAGES)") == [
            b"* STATUS INBOX (MESSAGES 3)", b"a7 OK Status completed."]
        assert c.cmd("a8 STATUS Nope (MESSAGES)") == [
            b"a8 NO [NONEXISTENT] Mailbox doesn't exist."]
        assert c.cmd("a9 STATUS INBOX (BOGUS)")[-1].startswith(b"a9 BAD ")
        assert c.cmd("b1 STATUS INBOX ()")[-1].startswith((b"b1 BAD ", b"b1 OK "))
        assert c.cmd("b2 STATUS INBOX")[-1].startswith(b"b2 BAD ")


def test_status_uidvalidity_differs_per_folder_and_is_stable(toaster):
    with toaster.raw_imap() as c:
        c.login()
        vals = {}
        for name in ("INBOX", "Sent", "Trash"):
            line = c.cmd("a STATUS %s (UIDVALIDITY)" % name)[0]
            vals[name] = int(re.search(rb"UIDVALIDITY (\d+)", line).group(1))
        assert len(set(vals.values())) == 3
        assert all(0 < v < 2**32 for v in vals.values())
    with toaster.raw_imap() as c:
        c.login()
        for name, v in vals.items():
            line = c.cmd("a STATUS %s (UIDVALIDITY)" % name)[0]
            assert int(re.search(rb"UIDVALIDITY (\d+)", line).group(1)) == v


def test_recreated_folder_gets_new_uidvalidity(toaster):
    with toaster.raw_imap() as c:
        c.login()
        c.cmd("a1 CREATE F")
        v1 = c.cmd("a2 STATUS F (UIDVALIDITY)")[0]
        c.cmd("a3 DELETE F")
        c.cmd("a4 CREATE F")
        v2 = c.cmd("a5 STATUS F (UIDVALIDITY)")[0]
        assert v1 != v2


def test_users_are_isolated(toaster):
    with toaster.raw_imap() as c:
        c.login("alice@example.com")
        c.cmd("a1 CREATE Private")
    with toaster.raw_imap() as c:
        c.login("bob@example.com")
        assert names(c.cmd('a1 LIST "" *')) == [b"INBOX", b"Drafts", b"Junk", b"Sent", b"Trash"]
        assert c.cmd("a2 SELECT Private")[-1].startswith(b"a2 NO ")
    assert (toaster.maildir("alice@example.com") / ".Private").is_dir()
    assert not (toaster.maildir("bob@example.com") / ".Private").exists()
