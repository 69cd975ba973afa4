"""`toasterctl stats` against a running toasterd over its control socket.

Messages are sent with smtplib and with a byte-counting raw client, then the
counters that come back (`--json`, the table, `--watch`) must match what was
sent: messages accepted, bytes in, delivery batches and messages, the
latency count. Also covered: the "not running" error, the socket's mode and
removal at exit, a stale socket after SIGKILL, a second daemon refused, a
path longer than sun_path, and bounded requests on the raw socket."""

import json
import os
import signal
import socket
import stat
import subprocess
import time

from conftest import LISTEN_KEYS, QUEUED_RE, TOASTERCTL, TOASTERD, dot_stuff, free_ports, wait_until

MESSAGE = (b"From: sender@example.org\r\nTo: alice@example.com\r\nSubject: stats %d\r\n\r\n"
           b"hello\r\n.leading dot\r\n" + b"x" * 500 + b"\r\n")


def socket_path(toaster):
    return toaster.data_dir / "toasterd.sock"


def ctl(toaster, *args, timeout=30):
    return subprocess.run([TOASTERCTL, "-c", str(toaster.config_file), "stats", *args],
                          capture_output=True, text=True, timeout=timeout)


def stats_json(toaster, *args):
    out = ctl(toaster, "--json", *args)
    assert out.returncode == 0, out.stderr
    assert out.stdout.endswith("\n") and out.stdout.count("\n") == 1, out.stdout
    return json.loads(out.stdout)


def total(doc, key):
    return sum(r[key] for r in doc["reactors"])


def idle_stats(toaster, predicate=lambda doc: True):
    """Stats once every connection is closed and predicate holds."""
    docs = []

    def settled():
        doc = stats_json(toaster)
        docs.append(doc)
        return total(doc, "connections_open") == 0 and predicate(doc)

    assert wait_until(settled, 10), docs[-1]
    return docs[-1]


class CountingSMTP:
    """A raw SMTP client that counts every byte it sends and receives."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.file = self.sock.makefile("rb")
        self.sent = 0
        self.received = 0

    def send(self, data):
        self.sock.sendall(data)
        self.sent += len(data)

    def reply(self):
        while True:
            line = self.file.readline()
            assert line.endswith(b"\r\n"), line
            self.received += len(line)
            if line[3:4] != b"-":
                return line.rstrip(b"\r\n")

    def close(self):
        self.file.close()
        self.sock.close()


def test_counts_match_what_was_sent(toaster):
    before = stats_json(toaster)
    assert before["version"]
    assert len(before["reactors"]) == 2
    assert [r["index"] for r in before["reactors"]] == [0, 1]
    assert total(before, "messages_accepted") == 0
    assert before["workers"]["threads"] == 2
    assert before["latency_us"]["count"] == 0

    count = 5
    for i in range(count):
        toaster.send("sender@example.org", ["alice@example.com"], MESSAGE % i)
    # One more with two recipients: still one message, one commit.
    toaster.send("sender@example.org", ["alice@example.com", "bob@example.com"], MESSAGE % 9)
    count += 1

    doc = idle_stats(toaster, lambda d: d["delivery"]["messages"] == count)
    assert total(doc, "messages_accepted") == count
    assert total(doc, "messages_refused") == 0
    # Each connection also carried EHLO, MAIL, RCPT, DATA and QUIT.
    assert total(doc, "bytes_in") >= sum(len(MESSAGE % i) for i in range(count))
    assert total(doc, "bytes_out") >= count * len(b"250 2.0.0 Ok: queued as 0123456789ABCDEF\r\n")
    # The start-up probe of the fixture counts too.
    assert total(doc, "connections_total") >= count
    assert total(doc, "connections_refused") == 0
    assert total(doc, "cq_overflow") == 0
    delivery = doc["delivery"]
    assert delivery["messages"] == count
    assert 1 <= delivery["batches"] <= count
    assert abs(delivery["messages_per_batch"] - count / delivery["batches"]) <= 0.005
    # fsync is on: every spool file is synced, and each batch's new/ once.
    assert delivery["fsyncs"] >= count + delivery["batches"]
    # Without filters a message goes straight from its reactor to the
    # committer, so no worker job need be counted for it.
    assert doc["workers"]["jobs_done"] <= count
    assert doc["workers"]["queue_depth"] == 0
    latency = doc["latency_us"]
    assert latency["count"] == count
    assert 0 < latency["p50"] <= latency["p90"] <= latency["p99"] <= latency["p999"]
    assert latency["p999"] <= latency["max"] < 30 * 1000 * 1000
    assert doc["uptime_s"] >= before["uptime_s"]


def test_bytes_are_exact(toaster):
    before = idle_stats(toaster)
    client = CountingSMTP(toaster.port)
    assert client.reply().startswith(b"220 ")
    client.send(b"EHLO counting.example\r\n")
    assert client.reply().startswith(b"250 ")
    for i in range(3):
        client.send(b"MAIL FROM:<sender@example.org>\r\n")
        assert client.reply().startswith(b"250 ")
        client.send(b"RCPT TO:<carol@example.org>\r\n")
        assert client.reply().startswith(b"250 ")
        client.send(b"DATA\r\n")
        assert client.reply().startswith(b"354 ")
        client.send(dot_stuff(MESSAGE % i))
        assert QUEUED_RE.match(client.reply())
    # Refused before the end of data: not a message, but bytes all the same.
    client.send(b"RCPT TO:<nobody@example.com>\r\n")
    assert client.reply().startswith(b"503 ")
    client.send(b"QUIT\r\n")
    assert client.reply().startswith(b"221 ")
    client.close()

    after = idle_stats(toaster)
    assert total(after, "bytes_in") - total(before, "bytes_in") == client.sent
    assert total(after, "bytes_out") - total(before, "bytes_out") == client.received
    assert total(after, "messages_accepted") - total(before, "messages_accepted") == 3
    assert total(after, "connections_total") - total(before, "connections_total") == 1
    assert after["latency_us"]["count"] - before["latency_us"]["count"] == 3
    assert after["delivery"]["messages"] - before["delivery"]["messages"] == 3


def test_table(toaster):
    for i in range(2):
        toaster.send("sender@example.org", ["dave@example.org"], MESSAGE % i)
    idle_stats(toaster, lambda d: d["delivery"]["messages"] == 2)
    out = ctl(toaster)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("toasterd ") and lines[0].endswith(", 2 reactors"), lines[0]
    header = next(l for l in lines if l.startswith("reactor "))
    for column in ("open", "conns", "refused", "msgs ok", "bytes in", "bytes out", "sq full",
                   "cq ovf"):
        assert column in header
    assert "msgs/s" not in header  # rates only with --watch
    rows = [l.split() for l in lines if l[:1].isdigit() or l.startswith("total ")]
    assert [r[0] for r in rows] == ["0", "1", "total"]
    assert int(rows[0][4]) + int(rows[1][4]) == int(rows[2][4]) == 2  # msgs ok
    assert any(l.startswith("workers   2 threads, 0 jobs queued, ") for l in lines)
    assert any(l.startswith("delivery  2 messages in ") for l in lines)
    assert any(l.startswith("latency   end of data to reply, 2 messages: p50 ") for l in lines)


def test_watch(toaster):
    proc = subprocess.Popen([TOASTERCTL, "-c", str(toaster.config_file), "stats", "--watch",
                             "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        first = json.loads(proc.stdout.readline())
        started = time.monotonic()
        toaster.send("sender@example.org", ["alice@example.com"], MESSAGE % 1)
        # One line a second; the message shows up within a few.
        for _ in range(5):
            doc = json.loads(proc.stdout.readline())
            if total(doc, "messages_accepted") == 1:
                break
        assert total(doc, "messages_accepted") == 1
        assert total(first, "messages_accepted") == 0
        assert time.monotonic() - started >= 0.5
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(10)
        proc.stdout.close()
        proc.stderr.close()

    # The table form redraws (clear screen) and shows rates from the second frame on.
    proc = subprocess.Popen([TOASTERCTL, "-c", str(toaster.config_file), "stats", "--watch"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(2.5)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=10)
    frames = out.split(b"\033[H\033[2J")
    assert len(frames) >= 3, out  # "" before the first clear, then at least two frames
    assert b"msgs/s" not in frames[1]
    assert b"msgs/s" in frames[2] and b"syncs/s" in frames[2]


def test_not_running(make_toaster):
    toaster = make_toaster(start=False)
    toaster.ports = {key: 20000 + i for i, key in enumerate(LISTEN_KEYS)}  # not started
    toaster.config_file.write_text(toaster.config_text())
    for args in ((), ("--json",), ("--watch",)):
        out = ctl(toaster, *args)
        assert out.returncode == 1
        assert out.stdout == ""
        assert out.stderr == ("toasterctl: toasterd is not running (nothing answers on %s)\n"
                              % socket_path(toaster))
    out = ctl(toaster, "--bogus")
    assert out.returncode == 2
    assert "usage:" in out.stderr


def test_socket_mode_and_removal(toaster):
    path = socket_path(toaster)
    st = os.lstat(path)
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o600
    toaster.stop()
    assert not path.exists()
    out = ctl(toaster)
    assert out.returncode == 1
    assert "toasterd is not running" in out.stderr


def test_stale_socket_and_second_daemon(toaster, make_toaster):
    path = socket_path(toaster)
    # A second daemon on the same socket refuses to start, before it touches
    # anything, and leaves the first one's socket alone.
    other = make_toaster(start=False, config={"control_socket": str(path)})
    other.ports = dict(zip(LISTEN_KEYS, free_ports(len(LISTEN_KEYS))))
    other.config_file.write_text(other.config_text())
    run = subprocess.run([TOASTERD, "-c", str(other.config_file)], capture_output=True,
                         text=True, timeout=30)
    assert run.returncode == 1
    assert "control socket %s: another toasterd is running there" % path in run.stderr
    assert stats_json(toaster)["reactors"]

    # SIGKILL leaves the socket behind; the next start replaces it.
    toaster.signal(signal.SIGKILL)
    toaster.wait()
    toaster.proc = None
    assert stat.S_ISSOCK(os.lstat(path).st_mode)
    out = ctl(toaster)
    assert out.returncode == 1 and "not running" in out.stderr
    toaster.start()
    assert "removed a stale socket" in toaster.log()
    assert stats_json(toaster)["delivery"]["messages"] == 0

    # Something that is not a socket is never removed: the start fails.
    toaster.stop()
    path.write_text("not a socket\n")
    toaster.proc = None
    run = subprocess.run([TOASTERD, "-c", str(toaster.config_file)], capture_output=True,
                         text=True, timeout=30)
    assert run.returncode == 1
    assert "exists and is not a socket" in run.stderr
    assert path.read_text() == "not a socket\n"


def test_configured_long_path(make_toaster, tmp_path):
    # Longer than sun_path (108 bytes): reached through /proc/self/fd.
    directory = tmp_path / ("d" * 60) / ("e" * 60)
    directory.mkdir(parents=True)
    path = directory / "control.sock"
    assert len(str(path)) > 108
    toaster = make_toaster(config={"control_socket": str(path)})
    assert not socket_path(toaster).exists()
    assert stat.S_IMODE(os.lstat(path).st_mode) == 0o600
    doc = stats_json(toaster)
    assert len(doc["reactors"]) == 2
    # --socket points elsewhere than the configuration says.
    out = subprocess.run([TOASTERCTL, "stats", "--json", "--socket", str(path)],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["workers"]["threads"] == 2
    toaster.stop()
    assert not path.exists()


def raw_request(path, data, timeout=5):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    sock.connect(str(path))
    answer = b""
    try:
        sock.sendall(data)
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return answer
            answer += chunk
    except ConnectionResetError:
        # The daemon closed with bytes of ours unread (a request too long):
        # Linux then reports a reset after the answer.
        return answer
    finally:
        sock.close()


def test_requests_are_bounded(toaster):
    path = socket_path(toaster)
    assert json.loads(raw_request(path, b"stats\n"))["reactors"]
    assert json.loads(raw_request(path, b"stats\r\n"))["reactors"]
    assert raw_request(path, b"bogus\n") == b'{"error":"unknown command"}\n'
    assert raw_request(path, b"stats") == b""  # no newline before EOF: no answer
    assert raw_request(path, b"x" * 5000) == b'{"error":"request too long"}\n'

    # A client that says nothing is dropped after a second and does not
    # hold up the next one for longer than that.
    silent = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    silent.connect(str(path))
    try:
        started = time.monotonic()
        assert json.loads(raw_request(path, b"stats\n"))["reactors"]
        assert time.monotonic() - started < 3
        silent.settimeout(5)
        assert silent.recv(100) == b""
    finally:
        silent.close()

    # After all that, the daemon still answers toasterctl.
    out = ctl(toaster)
    assert out.returncode == 0, out.stderr
