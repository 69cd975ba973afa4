"""ClamAV in toasterd: messages are scanned in process at end of DATA.

The daemon runs with `clamav = yes`. With no database configured and none in
/var/lib/clamav it loads the shipped one (EICAR and the ClamAV test files),
logs one warning about it, rejects infected mail with 554 5.7.0 and the
signature name and accepts clean mail. With a database directory that holds
nothing yet, every message is deferred with 451 4.7.1 (never accepted
unscanned) until a database appears and a reload (SIGHUP) loads it; a new
signature file in the directory is picked up by the watch without a reload.
"""

import base64
import os
import signal
from pathlib import Path

import pytest

from conftest import dot_stuff, wait_until

EICAR = rb"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
TESTFILES = Path("/usr/share/clamav-testfiles")
SYSTEM_DB = Path("/var/lib/clamav")


def system_db_present():
    if not SYSTEM_DB.is_dir():
        return False
    exts = (".cvd", ".cld", ".cud", ".ndb", ".hdb", ".ldb", ".hsb")
    return any(p.name.endswith(exts) for p in SYSTEM_DB.iterdir())


def message(attachment=None, name="file.bin", subject="hello"):
    head = (
        "From: Alice <alice@example.com>\r\n"
        "To: Bob <bob@example.com>\r\n"
        "Subject: %s\r\n"
        "Message-ID: <%s@example.com>\r\n"
        "MIME-Version: 1.0\r\n" % (subject, subject.replace(" ", "."))
    ).encode()
    if attachment is None:
        return head + b"Content-Type: text/plain\r\n\r\nJust text, nothing attached.\r\n"
    b64 = base64.encodebytes(attachment).replace(b"\n", b"\r\n")
    return (
        head
        + b'Content-Type: multipart/mixed; boundary="xyz"\r\n\r\n'
        + b"--xyz\r\nContent-Type: text/plain\r\n\r\nSee attached.\r\n"
        + b"--xyz\r\nContent-Type: application/octet-stream; name=\"%s\"\r\n" % name.encode()
        + b"Content-Transfer-Encoding: base64\r\n\r\n"
        + b64
        + b"--xyz--\r\n"
    )


def data_reply(toaster, msg):
    """One transaction; returns the final reply line to DATA."""
    with toaster.raw() as raw:
        raw.greet()
        assert raw.cmd("MAIL FROM:<alice@example.com>")[-1].startswith(b"250 ")
        assert raw.cmd("RCPT TO:<bob@example.com>")[-1].startswith(b"250 ")
        assert raw.cmd("DATA")[-1].startswith(b"354 ")
        raw.send(dot_stuff(msg))
        return raw.reply_line()


def start_clamav(make_toaster, **config):
    toaster = make_toaster(config=dict(clamav="yes", **config), start=False)
    try:
        toaster.start()
    except AssertionError:
        if "unknown key 'clamav" in toaster.log():
            pytest.skip("toasterd does not know the clamav keys yet")
        raise
    return toaster


def wait_engine(toaster, generation=1, timeout=30):
    toaster.wait_log("clamav: engine %d loaded" % generation, timeout=timeout)


def test_shipped_database_rejects_eicar_accepts_clean(make_toaster):
    toaster = start_clamav(make_toaster)
    wait_engine(toaster)
    line = data_reply(toaster, message(EICAR, "eicar.com", "eicar"))
    assert line.startswith(b"554 5.7.0 "), line
    assert b"eicar" in line.lower(), line
    if not system_db_present():
        assert b"Eicar-Test-Signature" in line, line
    line = data_reply(toaster, message(subject="clean"))
    assert line.startswith(b"250 "), line
    assert len(toaster.all_delivered()) == 1
    # A reload (SIGHUP, as toasterctl reload raises) loads a new engine
    # while the daemon serves, and the warning is not repeated.
    toaster.signal(signal.SIGHUP)
    wait_engine(toaster, generation=2)
    line = data_reply(toaster, message(EICAR, "eicar.com", "eicar again"))
    assert line.startswith(b"554 5.7.0 "), line
    if not system_db_present():
        log = toaster.log()
        assert log.count("using toaster's shipped test signatures") == 1, log
        assert (toaster.data_dir / "clamav" / "toaster.ndb").is_file()
    toaster.stop()


@pytest.mark.skipif(not TESTFILES.is_dir(), reason="clamav-testfiles is not installed")
def test_shipped_database_detects_test_files(make_toaster):
    if system_db_present():
        pytest.skip("a system database is in use, not the shipped one")
    toaster = start_clamav(make_toaster)
    wait_engine(toaster)
    for name in ("clam.exe", "clam.zip", "clam.pdf", "clam.tar.gz"):
        line = data_reply(toaster, message((TESTFILES / name).read_bytes(), name, name))
        assert line.startswith(b"554 5.7.0 "), (name, line)
        assert b"Toaster.Test.ClamAV-Test-File" in line, (name, line)
    assert toaster.all_delivered() == []
    toaster.stop()


def test_header_action_marks_and_delivers(make_toaster):
    """clamav_action = header: the infected message is delivered with X-Virus
    right below Return-Path (the spool file rewritten once, with the
    filters' fields), and a clean one gets no X-Virus."""
    toaster = start_clamav(make_toaster, clamav_action="header")
    wait_engine(toaster)
    infected = message(EICAR, "eicar.com", "marked")
    line = data_reply(toaster, infected)
    assert line.startswith(b"250 "), line
    clean = message(subject="untouched")
    assert data_reply(toaster, clean).startswith(b"250 ")
    stored = sorted(toaster.messages("bob@example.com"), key=len)
    assert len(stored) == 2
    marked = [m for m in stored if b"Subject: marked" in m][0]
    assert marked.startswith(b"Return-Path: <alice@example.com>\r\nX-Virus: Eicar-Test-Signature\r\n"), marked[:200]
    assert marked.endswith(infected[-200:])
    untouched = [m for m in stored if b"Subject: untouched" in m][0]
    assert untouched.startswith(b"Return-Path: ") and b"X-Virus" not in untouched
    # Maildir's S= is the size of the file as stored, header field included.
    for path in toaster.delivered("bob@example.com"):
        assert ",S=%d" % path.stat().st_size in path.name, path.name
    toaster.stop()


def test_quarantine_action(make_toaster):
    """clamav_action = quarantine: 250 for the sender, the message goes to
    the quarantine mailbox only, with the virus and its recipients named."""
    toaster = start_clamav(make_toaster, clamav_action="quarantine")
    wait_engine(toaster)
    line = data_reply(toaster, message(EICAR, "eicar.com", "quarantined"))
    assert line.startswith(b"250 "), line
    assert toaster.messages("bob@example.com") == []
    held = toaster.messages("quarantine@mx.example.com")
    assert len(held) == 1
    assert b"X-Virus: Eicar-Test-Signature\r\nX-Quarantined-For: <bob@example.com>\r\n" in held[0]
    # Clean mail is not touched by the quarantine.
    assert data_reply(toaster, message(subject="fine")).startswith(b"250 ")
    assert len(toaster.messages("bob@example.com")) == 1
    toaster.stop()


def test_no_database_defers_until_reload(make_toaster, tmp_path):
    db = tmp_path / "clamav-db"
    db.mkdir()
    toaster = start_clamav(make_toaster, clamav_db=str(db))
    toaster.wait_log("no engine: scans answer not-ready", timeout=30)
    # Neither infected nor clean mail passes unscanned.
    line = data_reply(toaster, message(EICAR, "eicar.com", "eicar"))
    assert line.startswith(b"451 4.7.1 "), line
    line = data_reply(toaster, message(subject="clean"))
    assert line.startswith(b"451 4.7.1 "), line
    assert toaster.all_delivered() == []

    (db / "local.ndb").write_text("Local.Eicar:0:0:%s\n" % EICAR.hex())
    toaster.signal(signal.SIGHUP)
    wait_engine(toaster)
    line = data_reply(toaster, message(EICAR, "eicar.com", "eicar"))
    assert line.startswith(b"554 5.7.0 "), line
    assert b"Local.Eicar" in line, line
    line = data_reply(toaster, message(subject="clean"))
    assert line.startswith(b"250 "), line
    toaster.stop()


def test_watch_loads_a_new_signature_file(make_toaster, tmp_path):
    db = tmp_path / "clamav-db"
    db.mkdir()
    (db / "local.ndb").write_text("Local.Eicar:0:0:%s\n" % EICAR.hex())
    toaster = start_clamav(make_toaster, clamav_db=str(db))
    wait_engine(toaster)
    pattern = b"toaster integration watch pattern 51d0"
    line = data_reply(toaster, message(pattern, "pattern.txt", "before"))
    assert line.startswith(b"250 "), line

    tmp = db / ".new.ndb.part"
    tmp.write_text("Toaster.Test.Watched:0:*:%s\n" % pattern.hex())
    os.rename(tmp, db / "new.ndb")
    wait_engine(toaster, generation=2)
    line = data_reply(toaster, message(pattern, "pattern.txt", "after"))
    assert line.startswith(b"554 5.7.0 "), line
    assert b"Toaster.Test.Watched" in line, line
    toaster.stop()
