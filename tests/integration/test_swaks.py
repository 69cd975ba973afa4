"""Deliveries driven by swaks, a real third-party SMTP client, against toasterd.

Runs swaks with several recipients with and without --pipeline, with HELO
instead of EHLO, with the null sender and with a dot-heavy body, and checks
its exit status, its transcript and the Maildir files. The installed swaks
(20201014) has no BDAT option; BDAT is covered in test_smtp_pipelining_bdat.py.
"""

import re
import shutil
import subprocess

import pytest

from conftest import dot_stuff, split_trace

pytestmark = pytest.mark.skipif(shutil.which("swaks") is None, reason="swaks not installed")


def swaks(toaster, *args, expect_rc=0):
    cmd = ["swaks", "--server", "127.0.0.1:%d" % toaster.port, "--helo", "swaks.example",
           "--timeout", "20", "--hide-informational", "--from", "swaks@remote.test"]
    cmd += list(args)
    proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
    out = proc.stdout.decode(errors="replace") + proc.stderr.decode(errors="replace")
    assert proc.returncode == expect_rc, (proc.returncode, out)
    return out


def test_swaks_multiple_recipients_pipelined(toaster):
    out = swaks(toaster, "--to", "alice@example.com,bob@example.com,team@example.com",
                "--pipeline", "--add-header", "X-Swaks-Token: piped-1",
                "--body", "pipelined body\n.dot line\n..two dots\n")
    assert "PIPELINING" in out
    assert re.search(r"<-\s+250 2\.0\.0 Ok: queued as [0-9A-F]{16}", out), out
    for mailbox in ("alice@example.com", "bob@example.com"):
        [path] = toaster.delivered(mailbox)
        stored = path.read_bytes()
        body = split_trace(stored)[1]
        assert b"X-Swaks-Token: piped-1\r\n" in body
        # swaks stuffed the dots; the stored body has them unstuffed again.
        assert b"\r\npipelined body\r\n.dot line\r\n..two dots\r\n" in body, body
        assert int(re.search(r",S=(\d+)", path.name).group(1)) == len(stored)
    assert len(toaster.all_delivered()) == 2


def test_swaks_without_pipelining_and_helo(toaster):
    swaks(toaster, "--to", "carol@example.org", "--protocol", "SMTP",
          "--add-header", "X-Swaks-Token: helo-1")
    [path] = toaster.delivered("carol@example.org")
    stored = path.read_bytes()
    assert b"with SMTP id " in stored
    assert b"X-Swaks-Token: helo-1\r\n" in stored
    assert b"This is a test mailing" in stored


def test_swaks_null_sender_to_postmaster(toaster):
    swaks(toaster, "--from", "<>", "--to", "postmaster@example.com", "--pipeline")
    [path] = toaster.delivered("postmaster@example.com")
    assert path.read_bytes().startswith(b"Return-Path: <>\r\n")


def test_swaks_data_file_exact(toaster, tmp_path):
    data = (b"From: swaks@remote.test\r\nTo: alice@example.com\r\nSubject: exact\r\n\r\n"
            b"line\r\n.\r\n..\r\n. \r\nend\r\n")
    # With --no-data-fixup swaks sends the file as it is: dot-stuffed and
    # terminated here, and the stored message must equal data.
    f = tmp_path / "message.eml"
    f.write_bytes(dot_stuff(data))
    swaks(toaster, "--to", "alice@example.com", "--data", "@%s" % f, "--no-data-fixup",
          "--pipeline")
    [path] = toaster.delivered("alice@example.com")
    assert split_trace(path.read_bytes())[1] == data


def test_swaks_refusals(toaster):
    out = swaks(toaster, "--to", "nobody@example.com", expect_rc=24)
    assert "550 5.1.1" in out
    out = swaks(toaster, "--to", "victim@remote.test", "--pipeline", expect_rc=24)
    assert "554 5.7.1" in out
    # One good recipient among bad ones is enough.
    swaks(toaster, "--to", "nobody@example.com,dave@example.org,x@remote.test", "--pipeline")
    assert len(toaster.delivered("dave@example.org")) == 1
    assert len(toaster.all_delivered()) == 1


def test_swaks_quit_after_rcpt(toaster):
    out = swaks(toaster, "--to", "alice@example.com", "--quit-after", "RCPT")
    assert "221 2.0.0 Bye" in out
    assert toaster.all_delivered() == []
