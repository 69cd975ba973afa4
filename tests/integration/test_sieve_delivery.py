"""Sieve at delivery through the real toasterd: mail sent over SMTP (smtplib)
and what each user's script (put in place over ManageSieve for one test,
as files in the user's home elsewhere, the way Pigeonhole keeps them) made
of it on disk: fileinto a folder (made by :create, or INBOX and a log line
when missing), :flags as Maildir letters and dovecot-keywords, keep plus
fileinto :copy, discard, redirect to a local user and to a remote address
(a queue entry), reject of the only recipient (550 5.7.1 at DATA) and of
one of two (the other gets it, the local sender a rejection), a vacation
reply once per sender, the shipped global script (spam into Junk, the
user's whitelist and blacklist files), a runtime error (INBOX and a log
line), and sieve = no.
"""
import os
import re
import smtplib

import pytest

from conftest import wait_until
from test_managesieve import Sieve, literal

BASE = {"clamav": "no", "sieve": "yes"}  # ClamAV has nothing to say here; starts faster

RULES = """\
# this test's own rule: one body phrase scores past spam_add_header_score
body   TEST_LOUD     7.0 loudly suspicious
"""


def home(t, user):
    local, domain = user.split("@")
    return t.data_dir / "mail" / domain / local


def maildir(t, user, folder=None):
    root = t.maildir(user)
    return root if folder is None else root / ("." + folder)


def files(path, sub="new"):
    d = path / sub
    return sorted(d.iterdir()) if d.is_dir() else []


def put_script(t, user, text, name="test"):
    """The user's active script, as Pigeonhole keeps it on disk."""
    h = home(t, user)
    (h / "sieve").mkdir(parents=True, exist_ok=True)
    (h / "sieve" / (name + ".sieve")).write_text(text)
    link = h / ".dovecot.sieve"
    if link.is_symlink() or link.exists():
        link.unlink()
    os.symlink("sieve/%s.sieve" % name, link)


def message(sender, rcpts, subject, body="hello there", extra=""):
    return ("From: <%s>\r\nTo: %s\r\nSubject: %s\r\n"
            "Date: Fri, 04 Dec 2026 10:00:00 +0000\r\nMessage-ID: <%s@test>\r\n%s\r\n"
            "%s\r\n" % (sender, ", ".join("<%s>" % r for r in rcpts), subject,
                        re.sub(r"\W", ".", subject), extra, body)).encode()


def send(t, sender, rcpts, subject, **kwargs):
    if isinstance(rcpts, str):
        rcpts = [rcpts]
    with smtplib.SMTP("127.0.0.1", t.port, timeout=30) as s:
        s.ehlo("client.remote.test")
        s.sendmail(sender, rcpts, message(sender, rcpts, subject, **kwargs))


def with_subject(paths, subject):
    return [p for p in paths if ("Subject: %s\r\n" % subject).encode() in p.read_bytes()]


def wait_files(path, sub="new", count=1):
    assert wait_until(lambda: len(files(path, sub)) >= count, 10), (path, sub)
    return files(path, sub)


# ---- folders, flags, copies, discard ------------------------------------------


def test_fileinto_existing_created_and_missing_folder(make_toaster):
    t = make_toaster(config=BASE)
    root = maildir(t, "alice@example.com")
    for sub in ("cur", "new", "tmp"):
        (root / ".Work" / sub).mkdir(parents=True, exist_ok=True)
    put_script(t, "alice@example.com",
               'require ["fileinto", "mailbox"];\r\n'
               'if header :contains "subject" "work" { fileinto "Work"; stop; }\r\n'
               'if header :contains "subject" "list" { fileinto :create "Lists.toaster"; stop; }\r\n'
               'if header :contains "subject" "nowhere" { fileinto "Missing"; stop; }\r\n')
    send(t, "x@remote.test", "alice@example.com", "work item")
    send(t, "x@remote.test", "alice@example.com", "list post")
    send(t, "x@remote.test", "alice@example.com", "nowhere to go")
    work = files(maildir(t, "alice@example.com", "Work"))
    assert len(with_subject(work, "work item")) == 1 and len(work) == 1
    lists = maildir(t, "alice@example.com", "Lists.toaster")
    assert (lists / "maildirfolder").is_file()  # a real Maildir++ folder
    assert len(with_subject(files(lists), "list post")) == 1
    inbox = files(root)
    assert [p.name for p in with_subject(inbox, "nowhere to go")] == [p.name for p in inbox]
    assert not (root / ".Missing").exists()
    t.wait_log("mailbox 'Missing' does not exist; storing into INBOX")
    t.wait_log("sieve: alice@example.com: stored mail into mailbox 'Work'")


def test_fileinto_flags_and_keywords(make_toaster):
    t = make_toaster(config=BASE)
    put_script(t, "bob@example.com",
               'require ["fileinto", "imap4flags", "mailbox"];\r\n'
               'fileinto :create :flags ["\\\\Seen", "\\\\Flagged", "$Important"] "Flagged";\r\n'
               'addflag "\\\\Answered";\r\nkeep;\r\n')
    send(t, "x@remote.test", "bob@example.com", "flag me")
    folder = maildir(t, "bob@example.com", "Flagged")
    cur = files(folder, "cur")
    assert len(cur) == 1 and files(folder, "new") == []
    assert cur[0].name.endswith(":2,FSa"), cur[0].name
    size = cur[0].stat().st_size
    assert ",S=%d,W=%d:2," % (size, size) in cur[0].name
    assert (folder / "dovecot-keywords").read_text() == "0 $Important\n"
    # keep without :flags takes the internal variable: INBOX cur/ with R.
    inbox_cur = files(maildir(t, "bob@example.com"), "cur")
    assert len(inbox_cur) == 1 and inbox_cur[0].name.endswith(":2,R")


def test_keep_and_fileinto_copy(make_toaster):
    t = make_toaster(config=BASE)
    put_script(t, "carol@example.org",
               'require ["fileinto", "copy", "mailbox"];\r\n'
               'fileinto :copy :create "Archive";\r\n')
    send(t, "x@remote.test", "carol@example.org", "both places")
    inbox = files(maildir(t, "carol@example.org"))
    archive = files(maildir(t, "carol@example.org", "Archive"))
    assert len(with_subject(inbox, "both places")) == 1
    assert len(with_subject(archive, "both places")) == 1
    # One file, two names (a hard link), when the file system allows.
    assert inbox[0].read_bytes() == archive[0].read_bytes()


def test_discard(make_toaster):
    t = make_toaster(config=BASE)
    put_script(t, "dave@example.org", 'if header :contains "subject" "junk" { discard; }\r\n')
    send(t, "x@remote.test", ["dave@example.org", "carol@example.org"], "junk mail")
    assert len(wait_files(maildir(t, "carol@example.org"))) == 1
    assert files(maildir(t, "dave@example.org")) == []
    t.wait_log("sieve: dave@example.org: discarded")


# ---- redirect -------------------------------------------------------------------


def test_redirect_to_local_user(make_toaster):
    t = make_toaster(config=BASE)
    put_script(t, "alice@example.com", 'redirect "bob@example.com";\r\n')
    send(t, "x@remote.test", "alice@example.com", "forward me")
    bob = wait_files(maildir(t, "bob@example.com"))
    assert len(with_subject(bob, "forward me")) == 1
    assert files(maildir(t, "alice@example.com")) == []
    # The envelope sender is unchanged.
    assert bob[0].read_bytes().startswith(b"Return-Path: <x@remote.test>\r\n")
    t.wait_log("sieve: alice@example.com: forwarded to <bob@example.com>")


def test_redirect_to_remote_address(make_toaster):
    t = make_toaster(config=BASE)
    put_script(t, "alice@example.com",
               'require "copy";\r\nredirect :copy "alice@elsewhere.test";\r\n')
    send(t, "x@remote.test", "alice@example.com", "away copy")
    assert len(with_subject(files(maildir(t, "alice@example.com")), "away copy")) == 1
    queue = t.data_dir / "queue"
    ids = t.queue_ids()
    assert len(ids) == 1
    env = t.queue_envelope(ids[0])
    assert "\nfrom <x@remote.test>\n" in env
    assert re.search(r"\nrcpt \w+ \d+ \d+ <alice@elsewhere\.test> ", env), env
    msg = (queue / (ids[0] + ".msg")).read_bytes()
    assert b"Subject: away copy\r\n" in msg


def test_redirect_loop_guard(make_toaster):
    """The same message (by Message-ID) coming back to a user whose script
    redirects it away again is not sent out a second time (Pigeonhole's
    guard): it went out once; only a loop brings it back."""
    t = make_toaster(config=BASE)
    put_script(t, "alice@example.com", 'redirect "alice@elsewhere.test";\r\n')
    send(t, "x@remote.test", "alice@example.com", "round trip")
    assert wait_until(lambda: len(t.queue_ids()) == 1, 10)
    send(t, "x@remote.test", "alice@example.com", "round trip")  # same Message-ID
    t.wait_log("not forwarded to <alice@elsewhere.test> again: redirect loop")
    assert len(t.queue_ids()) == 1
    assert files(maildir(t, "alice@example.com")) == []  # redirect cancelled the keep
    # Another message (another Message-ID) goes out as usual.
    send(t, "x@remote.test", "alice@example.com", "next one")
    assert wait_until(lambda: len(t.queue_ids()) == 2, 10)


VIRUSTEST = ('require ["virustest", "relational", "comparator-i;ascii-numeric", '
             '"fileinto", "mailbox"];\r\n'
             'if virustest :value "eq" :comparator "i;ascii-numeric" "1" '
             '{ fileinto :create "Scanned"; }\r\n'
             'elsif virustest :value "eq" :comparator "i;ascii-numeric" "0" '
             '{ fileinto :create "Untested"; }\r\n')


def test_virustest_says_whether_clamav_scanned(make_toaster):
    """virustest (RFC 5235): 1 for mail ClamAV scanned and found clean
    (from outside, and our own users' mail, which is scanned too), 0 for
    mail no scanner looked at."""
    t = make_toaster(config=dict(BASE, clamav="yes"), start=False)
    t.start()
    t.wait_log("clamav: engine 1 loaded", timeout=30)
    put_script(t, "bob@example.com", VIRUSTEST)
    send(t, "x@remote.test", "bob@example.com", "from outside")
    msg = message("alice@example.com", ["bob@example.com"], "from alice")
    with smtplib.SMTP("127.0.0.1", t.ports["submission_listen"], timeout=30) as s:
        s.ehlo("laptop.example.com")
        s.login("alice@example.com", "alice-secret")
        s.sendmail("alice@example.com", ["bob@example.com"], msg)
    scanned = wait_files(maildir(t, "bob@example.com", "Scanned"), count=2)
    assert len(with_subject(scanned, "from outside")) == 1
    assert len(with_subject(scanned, "from alice")) == 1

    u = make_toaster(config=BASE)  # clamav = no
    put_script(u, "bob@example.com", VIRUSTEST)
    send(u, "x@remote.test", "bob@example.com", "not scanned")
    assert len(with_subject(wait_files(maildir(u, "bob@example.com", "Untested")),
                            "not scanned")) == 1


# ---- reject ---------------------------------------------------------------------


REJECT = 'require "reject";\r\nif header :contains "subject" "unwanted" ' \
         '{ reject "I do not want this"; }\r\n'


def test_reject_single_recipient_at_data(make_toaster):
    t = make_toaster(config=BASE)
    put_script(t, "carol@example.org", REJECT)
    with pytest.raises(smtplib.SMTPDataError) as info:
        send(t, "x@remote.test", "carol@example.org", "unwanted offer")
    assert info.value.smtp_code == 550
    assert info.value.smtp_error == b"5.7.1 I do not want this"
    assert files(maildir(t, "carol@example.org")) == []
    assert t.queue_ids() == []


def test_reject_one_of_two(make_toaster):
    t = make_toaster(config=BASE)
    put_script(t, "carol@example.org", REJECT)
    send(t, "alice@example.com", ["carol@example.org", "dave@example.org"], "unwanted news")
    assert len(with_subject(wait_files(maildir(t, "dave@example.org")), "unwanted news")) == 1
    assert files(maildir(t, "carol@example.org")) == []
    # The rejection goes to the (local) sender, with the null sender.
    alice = wait_files(maildir(t, "alice@example.com"))
    assert len(alice) == 1
    dsn = alice[0].read_bytes()
    assert dsn.startswith(b"Return-Path: <>\r\n")
    assert b"I do not want this" in dsn
    t.wait_log("sieve: carol@example.org: rejected")


# ---- vacation -------------------------------------------------------------------


def test_vacation_once_per_sender(make_toaster):
    t = make_toaster(config=BASE)
    put_script(t, "bob@example.com",
               'require "vacation";\r\n'
               'vacation :days 7 :subject "Away" "I am away until Monday.";\r\n')
    send(t, "alice@example.com", "bob@example.com", "first question")
    assert len(wait_files(maildir(t, "bob@example.com"))) == 1
    replies = wait_files(maildir(t, "alice@example.com"))
    assert len(replies) == 1
    reply = replies[0].read_bytes()
    assert reply.startswith(b"Return-Path: <>\r\n")
    assert b"Subject: Away\r\n" in reply
    assert b"Auto-Submitted: auto-replied" in reply
    assert b"I am away until Monday." in reply
    # A second message within :days: delivered, no second reply.
    send(t, "alice@example.com", "bob@example.com", "second question")
    assert len(wait_files(maildir(t, "bob@example.com"), count=2)) == 2
    t.wait_log("vacation response to <alice@example.com> already sent")
    assert len(files(maildir(t, "alice@example.com"))) == 1


# ---- the shipped global script -------------------------------------------------


@pytest.fixture
def global_toaster(make_toaster, tmp_path):
    rules = tmp_path / "spam.rules"
    rules.write_text(RULES)
    return make_toaster(config=dict(BASE, spam_rules_file=str(rules)))


def test_global_spam_into_junk(global_toaster):
    t = global_toaster
    send(t, "spammer@remote.test", "carol@example.org", "offer", body="loudly suspicious")
    junk = wait_files(maildir(t, "carol@example.org", "Junk"))
    assert len(junk) == 1 and b"X-Spam-Flag: YES\r\n" in junk[0].read_bytes()
    assert files(maildir(t, "carol@example.org")) == []
    send(t, "friend@remote.test", "carol@example.org", "plain", body="nothing to see")
    assert len(with_subject(wait_files(maildir(t, "carol@example.org")), "plain")) == 1


def test_global_whitelist_and_blacklist(global_toaster):
    t = global_toaster
    lists = home(t, "dave@example.org") / "sieve" / "lists"
    lists.mkdir(parents=True)
    (lists / "whitelist").write_text("# friends\nfriend@remote.test\n")
    (lists / "blacklist").write_text("@spammy.test\n")
    send(t, "friend@remote.test", "dave@example.org", "friendly", body="loudly suspicious")
    inbox = wait_files(maildir(t, "dave@example.org"))
    assert len(with_subject(inbox, "friendly")) == 1
    assert b"X-Spam-Flag: YES\r\n" in inbox[0].read_bytes()  # flagged, yet trusted
    send(t, "bulk@spammy.test", ["dave@example.org", "carol@example.org"], "blocked")
    assert len(with_subject(wait_files(maildir(t, "carol@example.org")), "blocked")) == 1
    assert with_subject(files(maildir(t, "dave@example.org")), "blocked") == []
    assert files(maildir(t, "dave@example.org", "Junk")) == []


# ---- errors and switches ------------------------------------------------------


def test_runtime_error_keeps_in_inbox(make_toaster):
    t = make_toaster(config=BASE)
    put_script(t, "alice@example.com",
               'require ["include", "fileinto"];\r\ninclude :personal "not-there";\r\n'
               'fileinto "Never";\r\n')
    with smtplib.SMTP("127.0.0.1", t.port, timeout=30) as s:
        s.ehlo("client.remote.test")
        s.mail("x@remote.test")
        s.rcpt("alice@example.com")
        code, reply = s.data(message("x@remote.test", ["alice@example.com"], "broken script"))
    assert code == 250
    queue_id = reply.decode().rsplit(" ", 1)[-1]
    assert len(with_subject(files(maildir(t, "alice@example.com")), "broken script")) == 1
    assert not maildir(t, "alice@example.com", "Never").exists()
    t.wait_log("%s: sieve: alice@example.com: " % queue_id)
    line = [l for l in t.log().splitlines()
            if "%s: sieve: alice@example.com: " % queue_id in l and "error" in l]
    assert line and "not-there" in line[0], t.log()


def test_sieve_off_delivers_to_inbox(make_toaster):
    t = make_toaster(config=dict(BASE, sieve="no"))
    put_script(t, "alice@example.com", "discard;\r\n")
    send(t, "x@remote.test", "alice@example.com", "no sieve")
    assert len(with_subject(files(maildir(t, "alice@example.com")), "no sieve")) == 1
    assert "sieve: alice@example.com" not in t.log()


def test_without_filters_sieve_still_runs(make_toaster):
    """No filter active: the Sieve stage is its own worker hop."""
    t = make_toaster(config=dict(BASE, spam="no", dkim_verify="no", spf="no", dmarc="no"))
    put_script(t, "alice@example.com",
               'require ["fileinto", "mailbox"];\r\nfileinto :create "Direct";\r\n')
    send(t, "x@remote.test", "alice@example.com", "direct")
    assert len(files(maildir(t, "alice@example.com", "Direct"))) == 1
    assert files(maildir(t, "alice@example.com")) == []


def test_managesieve_putscript_then_delivery(make_toaster):
    t = make_toaster(config=BASE)
    script = ('require ["fileinto", "mailbox", "imap4flags"];\r\n'
              'if address :is "from" "boss@remote.test" '
              '{ fileinto :create :flags "\\\\Flagged" "Boss"; }\r\n')
    with Sieve(t.ports["managesieve_listen"]) as s:
        assert s.login("dave@example.org")[0] == "OK"
        assert s.cmd(b'PUTSCRIPT "rules" ' + literal(script))[0] == "OK"
        assert s.cmd('SETACTIVE "rules"')[0] == "OK"
    send(t, "boss@remote.test", "dave@example.org", "meeting")
    cur = files(maildir(t, "dave@example.org", "Boss"), "cur")
    assert len(cur) == 1 and cur[0].name.endswith(":2,F")
    # A script replaced over ManageSieve is used at once (compiled again).
    with Sieve(t.ports["managesieve_listen"]) as s:
        assert s.login("dave@example.org")[0] == "OK"
        assert s.cmd(b'PUTSCRIPT "rules" ' + literal("keep;\r\n"))[0] == "OK"
    send(t, "boss@remote.test", "dave@example.org", "second meeting")
    assert len(with_subject(files(maildir(t, "dave@example.org")), "second meeting")) == 1


def test_editheader_gives_the_mailbox_its_own_file(make_toaster):
    t = make_toaster(config=BASE)
    put_script(t, "bob@example.com",
               'require ["editheader", "fileinto", "mailbox", "copy"];\r\n'
               'addheader "X-Sieve-Seen" "yes";\r\nfileinto :create :copy "Seen";\r\n')
    send(t, "x@remote.test", ["bob@example.com", "carol@example.org"], "edited")
    bob = files(maildir(t, "bob@example.com"))
    seen = files(maildir(t, "bob@example.com", "Seen"))
    carol = files(maildir(t, "carol@example.org"))
    assert len(bob) == 1 and len(seen) == 1 and len(carol) == 1
    edited = bob[0].read_bytes()
    assert b"\r\nX-Sieve-Seen: yes\r\n" in edited or edited.startswith(b"X-Sieve-Seen: yes\r\n")
    assert seen[0].read_bytes() == edited
    original = carol[0].read_bytes()
    assert b"X-Sieve-Seen" not in original
    # The body is the original's, and the name's S= is the edited file's size.
    assert edited.split(b"\r\n\r\n", 1)[1] == original.split(b"\r\n\r\n", 1)[1]
    assert ",S=%d," % len(edited) in bob[0].name
    assert os.stat(bob[0]).st_ino != os.stat(carol[0]).st_ino


def test_vacation_reply_to_remote_sender_is_queued(make_toaster):
    t = make_toaster(config=BASE)
    put_script(t, "bob@example.com",
               'require "vacation";\r\nvacation "Out of office.";\r\n')
    send(t, "someone@remote.test", "bob@example.com", "hello bob")
    assert len(wait_files(maildir(t, "bob@example.com"))) == 1
    ids = t.queue_ids()
    assert len(ids) == 1
    env = t.queue_envelope(ids[0])
    assert "\nfrom <>\n" in env
    assert "<someone@remote.test>" in env
    reply = (t.data_dir / "queue" / (ids[0] + ".msg")).read_bytes()
    assert reply.startswith(b"Return-Path: <>\r\n")
    assert b"Out of office." in reply
    assert b"Subject: Auto: hello bob\r\n" in reply


def test_broken_global_script_stops_start(make_toaster, tmp_path):
    bad = tmp_path / "before.sieve"
    bad.write_text('require "fileinto";\r\nfileintoo "x";\r\n')
    t = make_toaster(config=dict(BASE, sieve_before=str(bad)), start=False)
    with pytest.raises(AssertionError):
        t.start()
    assert t.proc is None or t.proc.poll() not in (None, 0)
    assert "line 2" in t.log() and "fileintoo" in t.log()
    t.proc = None


def test_global_script_reloaded_on_sighup(make_toaster, tmp_path):
    before = tmp_path / "before.sieve"
    before.write_text('require ["fileinto", "mailbox"];\r\nfileinto :create "First";\r\n')
    t = make_toaster(config=dict(BASE, sieve_before=str(before)))
    send(t, "x@remote.test", "carol@example.org", "one")
    assert len(files(maildir(t, "carol@example.org", "First"))) == 1
    # A broken replacement keeps the old script in service.
    before.write_text('fileintoo "x";\r\n')
    t.reload()
    t.wait_log("sieve: reload failed, keeping the previous scripts")
    send(t, "x@remote.test", "carol@example.org", "two")
    assert len(files(maildir(t, "carol@example.org", "First"))) == 2
    before.write_text('require ["fileinto", "mailbox"];\r\nfileinto :create "Second";\r\n')
    t.reload()
    t.wait_log("sieve: scripts reloaded")
    send(t, "x@remote.test", "carol@example.org", "three")
    assert len(files(maildir(t, "carol@example.org", "Second"))) == 1


def test_envelope_to_keeps_the_subaddress(make_toaster):
    t = make_toaster(config=dict(BASE, recipient_delimiter="+"))
    put_script(t, "alice@example.com",
               'require ["envelope", "subaddress", "fileinto", "mailbox"];\r\n'
               'if envelope :detail "to" "news" { fileinto :create "News"; }\r\n')
    send(t, "x@remote.test", "alice+news@example.com", "tagged")
    send(t, "x@remote.test", "alice@example.com", "untagged")
    assert len(with_subject(files(maildir(t, "alice@example.com", "News")), "tagged")) == 1
    assert len(with_subject(files(maildir(t, "alice@example.com")), "untagged")) == 1


def test_duplicate_marked_once_delivered(make_toaster):
    """duplicate (RFC 7352): the mark is recorded after the first copy is
    durable, so the same Message-ID again is recognised."""
    t = make_toaster(config=BASE)
    put_script(t, "carol@example.org",
               'require ["duplicate", "fileinto", "mailbox"];\r\n'
               'if duplicate { fileinto :create "Dupes"; }\r\n')
    send(t, "x@remote.test", "carol@example.org", "same id")
    send(t, "x@remote.test", "carol@example.org", "same id")
    assert len(with_subject(files(maildir(t, "carol@example.org")), "same id")) == 1
    assert len(with_subject(files(maildir(t, "carol@example.org", "Dupes")), "same id")) == 1


def test_reject_never_answers_the_null_sender(make_toaster):
    t = make_toaster(config=BASE)
    put_script(t, "carol@example.org", REJECT)
    send(t, "", ["carol@example.org", "dave@example.org"], "unwanted bounce")
    assert len(with_subject(wait_files(maildir(t, "dave@example.org")), "unwanted bounce")) == 1
    assert files(maildir(t, "carol@example.org")) == []
    assert t.queue_ids() == []
    assert files(maildir(t, "alice@example.com")) == []


def test_reject_by_the_only_local_recipient_with_a_remote_one(make_toaster):
    """Not every recipient refused: 250, the remote one queued, and the
    (remote) sender gets the rejection through the queue."""
    t = make_toaster(config=dict(BASE, mynetworks="127.0.0.0/8"))
    put_script(t, "carol@example.org", REJECT)
    send(t, "x@remote.test", ["carol@example.org", "far@away.test"], "unwanted relay")
    assert files(maildir(t, "carol@example.org")) == []
    envs = [t.queue_envelope(qid) for qid in t.queue_ids()]
    assert len(envs) == 2
    relayed = [e for e in envs if "<far@away.test>" in e]
    dsn = [e for e in envs if "\nfrom <>\n" in e]
    assert len(relayed) == 1 and "\nfrom <x@remote.test>\n" in relayed[0]
    assert len(dsn) == 1 and "<x@remote.test>" in dsn[0]


def test_concurrent_messages_share_batches(make_toaster):
    """Many clients at once, with a commit window so batches hold several
    messages: every copy lands where its script said, once."""
    import threading

    t = make_toaster(config=dict(BASE, commit_window="20ms"))
    for user, folder in (("alice@example.com", "A"), ("bob@example.com", "B")):
        put_script(t, user, 'require ["fileinto", "mailbox", "imap4flags"];\r\n'
                            'fileinto :create :flags "\\\\Seen" "%s";\r\n' % folder)
    errors = []

    def client(n):
        try:
            send(t, "x@remote.test", ["alice@example.com", "bob@example.com", "carol@example.org"],
                 "parallel %d" % n)
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(16)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    a = files(maildir(t, "alice@example.com", "A"), "cur")
    b = files(maildir(t, "bob@example.com", "B"), "cur")
    c = files(maildir(t, "carol@example.org"))
    assert len(a) == 16 and len(b) == 16 and len(c) == 16
    assert all(p.name.endswith(":2,S") for p in a + b)
    assert files(maildir(t, "alice@example.com")) == []
