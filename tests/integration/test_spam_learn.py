"""Teaching the spam filter's Bayes classifier, as Rspamd users do it:
`toasterctl learn spam|ham FILE|DIR` through the running daemon (files,
directories, Maildirs; a message learned twice is known already; one
learned as the other class moves over), and over IMAP when a user moves
mail into Junk (spam) or out of it into anything but Trash (ham).
"""
import subprocess

from conftest import TOASTERCTL


def learn(toaster, kind, *paths):
    out = subprocess.run([TOASTERCTL, "-c", str(toaster.config_file), "learn", kind, *paths],
                         capture_output=True, text=True, timeout=60)
    return out.returncode, out.stdout + out.stderr


def spam_message(n):
    return ("From: <deals%d@pills.test>\r\nTo: <carol@example.org>\r\n"
            "Subject: cheap pills %d\r\nDate: Fri, 04 Dec 2026 10:00:00 +0000\r\n"
            "Message-ID: <p%d@pills.test>\r\n\r\n"
            "Buy cheap pills now, limited offer, viagra cialis discount pharmacy %d\r\n"
            % (n, n, n, n)).encode()


def ham_message(n):
    return ("From: <bob@example.com>\r\nTo: <carol@example.org>\r\n"
            "Subject: meeting notes %d\r\nDate: Fri, 04 Dec 2026 10:00:00 +0000\r\n"
            "Message-ID: <m%d@example.com>\r\n\r\n"
            "Here are the notes from the project meeting, agenda item %d.\r\n"
            % (n, n, n)).encode()


def test_toasterctl_learn_files_and_maildir(toaster, tmp_path):
    one = tmp_path / "spam1.eml"
    one.write_bytes(spam_message(1))
    rc, out = learn(toaster, "spam", str(one))
    assert rc == 0 and "learned 1 as spam" in out, out
    assert "1 spam and 0 ham" in out, out
    rc, out = learn(toaster, "spam", str(one))
    assert rc == 0 and "1 known already" in out, out
    # A Maildir: cur/ and new/ are its messages.
    maildir = tmp_path / "hamdir"
    for sub in ("cur", "new", "tmp"):
        (maildir / sub).mkdir(parents=True)
    for n in range(3):
        (maildir / "cur" / ("m%d:2,S" % n)).write_bytes(ham_message(n))
    (maildir / "new" / "m9").write_bytes(ham_message(9))
    (maildir / "tmp" / "half").write_bytes(b"not a message yet")
    rc, out = learn(toaster, "ham", str(maildir))
    assert rc == 0 and "learned 4 as ham" in out, out
    assert "1 spam and 4 ham" in out, out
    # Learned the other way: it moves to the other class.
    rc, out = learn(toaster, "ham", str(one))
    assert rc == 0 and "learned 1 as ham" in out and "0 spam and 5 ham" in out, out
    # Bad arguments and paths.
    assert learn(toaster, "eggs", str(one))[0] == 2
    rc, out = learn(toaster, "spam", str(tmp_path / "missing.eml"))
    assert rc == 1 and "No such file" in out, out


def test_learn_without_daemon_fails_clearly(toaster, tmp_path):
    toaster.stop()
    one = tmp_path / "m.eml"
    one.write_bytes(spam_message(2))
    rc, out = learn(toaster, "spam", str(one))
    assert rc == 1 and "toasterd.sock" in out, out


def test_imap_moves_teach_bayes(toaster):
    for n in range(2):
        with toaster.smtp() as s:
            s.sendmail("deals@pills.test", ["carol@example.org"], spam_message(10 + n))
    imap = toaster.imap("carol@example.org")
    assert imap.select("INBOX")[0] == "OK"
    typ, data = imap.uid("MOVE", "1:*", "Junk")
    assert typ == "OK", data
    junk = toaster.maildir("carol@example.org") / ".Junk" / "cur"
    files = sorted(junk.iterdir())
    assert len(files) == 2
    # IMAP taught them already: toasterctl finds them known.
    rc, out = learn(toaster, "spam", str(files[0]))
    assert rc == 0 and "1 known already" in out and "2 spam and 0 ham" in out, out
    # Out of Junk into INBOX: ham now.
    assert imap.select("Junk")[0] == "OK"
    typ, data = imap.uid("MOVE", "1", "INBOX")
    assert typ == "OK", data
    maildir = toaster.maildir("carol@example.org")
    moved = [p for d in ("cur", "new") for p in (maildir / d).iterdir()]
    assert len(moved) == 1
    rc, out = learn(toaster, "ham", str(moved[0]))
    assert rc == 0 and "1 known already" in out and "1 spam and 1 ham" in out, out
    # Junk to Trash teaches nothing: the one left stays spam.
    typ, data = imap.uid("MOVE", "2", "Trash")
    assert typ == "OK", data
    trashed = list((maildir / ".Trash" / "cur").iterdir())
    assert len(trashed) == 1
    rc, out = learn(toaster, "spam", str(trashed[0]))
    assert rc == 0 and "1 known already" in out and "1 spam and 1 ham" in out, out
    imap.logout()
