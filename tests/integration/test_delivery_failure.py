"""Delivery that fails on the disk side: the client gets 451 4.3.0, and no
copy of the message stays visible in any Maildir, including the mailboxes
that were written before the failing one (the committer rolls them back).
Runs as root here, so the failure is made with a file where the Maildir
directory should be rather than with permissions."""

from conftest import dot_stuff


def test_failed_mailbox_rolls_back_the_others(toaster):
    # bob sorts after alice, so alice's copy is linked first and must go.
    blocked = toaster.maildir("bob@example.com")
    blocked.parent.mkdir(parents=True)
    blocked.write_bytes(b"not a directory\n")
    with toaster.raw() as c:
        c.greet()
        assert c.cmd("MAIL FROM:<s@example.org>")[-1].startswith(b"250 ")
        assert c.cmd("RCPT TO:<alice@example.com>")[-1].startswith(b"250 ")
        assert c.cmd("RCPT TO:<bob@example.com>")[-1].startswith(b"250 ")
        assert c.cmd("DATA")[-1].startswith(b"354 ")
        c.send(dot_stuff(b"Subject: fails\r\n\r\nbody\r\n"))
        assert c.reply_line() == b"451 4.3.0 Error: cannot store the message, try again later"
        # The session goes on: the next message to alice alone is delivered.
        assert c.cmd("MAIL FROM:<s@example.org>")[-1].startswith(b"250 ")
        assert c.cmd("RCPT TO:<alice@example.com>")[-1].startswith(b"250 ")
        assert c.cmd("DATA")[-1].startswith(b"354 ")
        c.send(dot_stuff(b"Subject: works\r\n\r\nbody\r\n"))
        assert c.reply_line().startswith(b"250 2.0.0 Ok: queued as ")
    messages = toaster.messages("alice@example.com")
    assert len(messages) == 1 and b"Subject: works" in messages[0]
    assert toaster.tmp_files() == []
    assert toaster.spool_files() == []
    toaster.wait_log("status=deferred")
