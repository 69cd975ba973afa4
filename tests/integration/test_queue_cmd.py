"""toasterctl queue against the real daemon's outbound queue: entries made
by mail to an alias that forwards off the server, then listed (text as
postqueue -p, and JSON), shown, held, released, flushed (the daemon's
control socket answers, saying it has no delivery agent yet) and deleted,
with the files checked after each step. Also: bad arguments and their exit
codes, a broken envelope reported without hiding the others, and the
commands with no daemon running."""

import json
import os
import re
import socket
import subprocess

from conftest import DEFAULT_ALIASES, TOASTERCTL

ALIASES = DEFAULT_ALIASES + ["away@example.com: someone@remote.test, other@far.test"]
SENDER = "sender@remote.test"


def message(subject):
    return ("From: <%s>\r\nTo: <away@example.com>\r\nSubject: %s\r\n\r\nbody text\r\n"
            % (SENDER, subject)).encode()


def ctl(t, *args):
    return subprocess.run([TOASTERCTL, "-c", str(t.config_file), "queue", *args],
                          capture_output=True, text=True, timeout=30)


def queued(t, subject):
    qid = t.send(SENDER, ["away@example.com"], message(subject))
    assert qid in t.queue_ids()
    return qid


def env_text(t, qid):
    return t.queue_envelope(qid)


def test_queue_commands(make_toaster):
    t = make_toaster(aliases=ALIASES)
    first = queued(t, "first one")
    second = queued(t, "second one")
    size = (t.data_dir / "queue" / (first + ".msg")).stat().st_size

    out = ctl(t, "list")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("-Queue ID-")
    row = re.compile(r"^([0-9A-F]{16})([ !]) +(\d+) .{20} (\S+)$")
    rows = [row.match(line) for line in lines if row.match(line)]
    assert [m.group(1) for m in rows] == sorted([first, second])
    assert all(m.group(2) == " " for m in rows)
    assert int(rows[0].group(3)) == size
    assert all(m.group(4) == SENDER for m in rows)
    assert out.stdout.count(" " * 48 + "someone@remote.test\n") == 2
    assert out.stdout.count(" " * 48 + "other@far.test\n") == 2
    total = (2 * size + 1023) // 1024
    assert lines[-1] == "-- %d Kbytes in 2 Requests." % total

    out = ctl(t, "list", "--json")
    assert out.returncode == 0, out.stderr
    docs = [json.loads(line) for line in out.stdout.splitlines()]
    assert sorted(d["queue_id"] for d in docs) == sorted([first, second])
    doc = [d for d in docs if d["queue_id"] == first][0]
    assert doc["sender"] == SENDER and doc["held"] is False and doc["message_size"] == size
    assert [r["address"] for r in doc["recipients"]] == ["someone@remote.test", "other@far.test"]
    assert all(r["state"] == "pending" and r["attempts"] == 0 for r in doc["recipients"])

    out = ctl(t, "show", first)
    assert out.returncode == 0, out.stderr
    assert "id:        %s\n" % first in out.stdout
    assert "sender:    <%s>\n" % SENDER in out.stdout
    assert "held:      no\n" in out.stdout
    assert "recipient: <someone@remote.test> pending, 0 attempts, next at once\n" in out.stdout
    assert "           orcpt rfc822;away@example.com\n" in out.stdout
    assert "\nSubject: first one\n" in out.stdout
    assert "\r" not in out.stdout
    assert "body text" not in out.stdout  # the header only

    # Hold: the '!' mark, a version 2 envelope with the reason.
    out = ctl(t, "hold", "--reason", "checking a complaint", first)
    assert out.returncode == 0, out.stderr
    assert "%s: held\n" % first in out.stdout
    text = env_text(t, first)
    assert text.startswith("toaster-queue 2\n")
    assert re.search(r"\nuser -\nhold \d+ checking a complaint\nrcpt ", text), text
    out = ctl(t, "list")
    assert re.search(r"^%s! " % first, out.stdout, re.M), out.stdout
    assert re.search(r"^%s  " % second, out.stdout, re.M), out.stdout
    assert "(held: checking a complaint)" in out.stdout
    assert json.loads(ctl(t, "list", "--json").stdout.splitlines()[0])["held"] is True
    assert "held:      since " in ctl(t, "show", first).stdout
    out = ctl(t, "hold", first)
    assert out.returncode == 0 and "%s: held already\n" % first in out.stdout

    # Release: back to version 1, the same bytes as before the hold.
    out = ctl(t, "release", first)
    assert out.returncode == 0, out.stderr
    assert "%s: released\n" % first in out.stdout
    assert env_text(t, first).startswith("toaster-queue 1\n")
    assert "\nhold " not in env_text(t, first)
    assert ctl(t, "release", first).stdout.startswith("%s: not held\n" % first)

    # Flush: a recipient due later is due at once, and the daemon is told
    # (it says it has no delivery agent: nothing is sent).
    t.queue_envelope_write(second, env_text(t, second).replace(
        "rcpt pending 0 0 <someone", "rcpt pending 3 1999999999 <someone"))
    assert "next 1999999999 (" in ctl(t, "show", second).stdout
    out = ctl(t, "flush")
    assert out.returncode == 0, out.stderr
    assert "%s: due at once\n" % second in out.stdout
    assert "%s: nothing pending to hurry\n" % first in out.stdout
    assert "no delivery agent yet" in out.stdout
    assert "rcpt pending 3 0 <someone@remote.test>" in env_text(t, second)
    t.wait_log("queue flush requested for every entry")
    out = ctl(t, "flush", first)
    assert out.returncode == 0, out.stderr
    t.wait_log("queue flush requested for %s" % first)

    # Delete one: every file of it gone.
    out = ctl(t, "delete", first)
    assert out.returncode == 0, out.stderr
    assert first not in t.queue_ids()
    assert not (t.data_dir / "queue" / (first + ".env")).exists()
    assert not (t.data_dir / "queue" / (first + ".msg")).exists()
    out = ctl(t, "list")
    assert first not in out.stdout and second in out.stdout
    assert out.stdout.splitlines()[-1].endswith("in 1 Request.")
    # ALL.
    third = queued(t, "third one")
    out = ctl(t, "hold", "ALL")
    assert out.returncode == 0 and out.stdout.endswith("held: 2 entries\n"), out.stdout
    assert env_text(t, third).startswith("toaster-queue 2\n")
    assert ctl(t, "release", "ALL").stdout.endswith("released: 2 entries\n")
    out = ctl(t, "delete", "ALL")
    assert out.returncode == 0 and out.stdout.endswith("deleted: 2 entries\n"), out.stdout
    assert list((t.data_dir / "queue").iterdir()) == []
    out = ctl(t, "list")
    assert out.returncode == 0 and out.stdout == "Mail queue is empty\n"
    assert ctl(t, "list", "--json").stdout == ""


def test_queue_bad_arguments(make_toaster):
    t = make_toaster(aliases=ALIASES)
    qid = queued(t, "args")
    for args in (["show"], ["show", qid, qid], ["hold"], ["list", qid], ["list", "--watch"],
                 ["frobnicate"], [], ["flush", "ALL"], ["delete", "--json", qid]):
        out = ctl(t, *args)
        assert out.returncode == 2, (args, out.stdout, out.stderr)
        assert "usage: toasterctl queue" in out.stderr
    for bad in ("../../etc/passwd", qid.lower(), qid + "0", qid[:-1], "ALL2"):
        out = ctl(t, "delete", bad)
        assert out.returncode == 2 and "not a queue id" in out.stderr, (bad, out.stderr)
    # A valid id that is not there: an error, and nothing else touched.
    out = ctl(t, "delete", "0000000000000001")
    assert out.returncode == 1 and "no such entry" in out.stderr
    out = ctl(t, "show", "0000000000000001")
    assert out.returncode == 1 and "no such queue entry" in out.stderr
    assert qid in t.queue_ids()
    # Several ids, one missing: the others are done, the exit code says 1.
    out = ctl(t, "hold", qid, "0000000000000001")
    assert out.returncode == 1 and "%s: held\n" % qid in out.stdout


def test_queue_broken_envelope(make_toaster):
    """A broken envelope, as the message file's attribute or as an <id>.env
    file (which wins over the attribute), is reported with its place and
    line, left alone by every command but delete."""
    t = make_toaster(aliases=ALIASES)
    good = queued(t, "good")
    bad = queued(t, "bad")
    bad_file = queued(t, "bad file")
    t.queue_envelope_write(bad, "toaster-queue 9\n")
    (t.data_dir / "queue" / (bad_file + ".env")).write_text("toaster-queue 8\n")
    out = ctl(t, "list")
    assert out.returncode == 1
    assert "queue/%s.msg (its envelope attribute):1: unsupported version" % bad in out.stderr
    assert "queue/%s.env:1: unsupported version" % bad_file in out.stderr
    assert good in out.stdout and "in 1 Request." in out.stdout
    assert ctl(t, "hold", bad).returncode == 1
    assert ctl(t, "hold", bad_file).returncode == 1
    # Deleting by hand works on a broken entry.
    out = ctl(t, "delete", bad, bad_file)
    assert out.returncode == 0, out.stderr
    for qid in (bad, bad_file):
        assert not (t.data_dir / "queue" / (qid + ".msg")).exists()
        assert not (t.data_dir / "queue" / (qid + ".env")).exists()
    assert ctl(t, "list").returncode == 0
    assert t.queue_ids() == [good]


def test_queue_without_daemon(make_toaster):
    t = make_toaster(aliases=ALIASES)
    qid = queued(t, "offline")
    t.queue_envelope_write(qid, env_text(t, qid).replace(
        "rcpt pending 0 0 <other", "rcpt pending 1 1999999999 <other"))
    t.stop()
    out = ctl(t, "flush")
    assert out.returncode == 0, out.stderr
    assert "no daemon at " in out.stdout
    assert "rcpt pending 1 0 <other@far.test>" in env_text(t, qid)
    assert ctl(t, "hold", qid).returncode == 0
    assert qid + "!" in ctl(t, "list").stdout
    # The daemon starts with a held version 2 entry and keeps it.
    t.proc = None
    t.start()
    assert env_text(t, qid).startswith("toaster-queue 2\n")
    assert qid + "!" in ctl(t, "list").stdout
    t.check_log_clean()


def test_queue_no_directory(tmp_path):
    conf = tmp_path / "ctl.conf"
    conf.write_text("data_dir = %s\n" % (tmp_path / "nothing"))
    out = subprocess.run([TOASTERCTL, "-c", str(conf), "queue", "list"], capture_output=True,
                         text=True, timeout=30)
    assert out.returncode == 0 and out.stdout == "Mail queue is empty\n", out.stderr
    assert not os.path.exists(tmp_path / "nothing" / "queue")


def control(t, line):
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(5)
        s.connect(str(t.data_dir / "toasterd.sock"))
        s.sendall(line.encode() + b"\n")
        data = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                return data.decode()
            data += chunk


def test_control_queue_flush_request(make_toaster):
    """The daemon's answer: ok, and whether a delivery agent runs to act on
    it; an argument that is not a queue id is refused."""
    t = make_toaster()  # outbound_delivery = no
    assert control(t, "queue-flush") == '{"result":"ok","delivery_agent":false}\n'
    assert control(t, "queue-flush 0123456789ABCDEF") == \
        '{"result":"ok","delivery_agent":false}\n'
    t.wait_log("queue flush requested for 0123456789ABCDEF; no delivery agent runs")
    for bad in ("queue-flush 0123456789abcdef", "queue-flush ../x",
                "queue-flush 0123456789ABCDEF0", "queue-flush "):
        assert control(t, bad) == '{"error":"not a queue id"}\n', bad
    assert control(t, "queue-flushALL") == '{"error":"unknown command"}\n'
    t.stop()
    agent = make_toaster(config={"outbound_delivery": "yes"})
    assert control(agent, "queue-flush") == '{"result":"ok","delivery_agent":true}\n'
    agent.wait_log("queue flush requested for every entry")