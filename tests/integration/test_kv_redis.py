"""The Redis backend of the key-value store (core/kv_redis.h) against a real
redis-server started here on 127.0.0.1 and a free port (no persistence),
and against Python servers that misbehave.

tests/tools/kv_tool (path in $KV_TOOL) drives the kv API from a script we
feed line by line; each answer carries the call's duration (us=). Redis
itself is inspected with a small RESP client over a socket (binary-safe).
Covered: set/get/del/incr with TTLs and their expiry, the incr window kept
from the first increment, binary keys and values (NUL, CR, LF), the key and
value bounds (max, max + 1) and a foreign over-long value, the key prefix
seen in Redis and SCAN-based count per prefix, two stores sharing state,
the waiting path and the non-waiting path (miss, asynchronous fetch, cache
hit, cache expiry within the key's TTL, read-your-writes, the counter
estimate), Redis killed (-EAGAIN within a bound, then at once) and
restarted (the store reconnects by itself; killed while idle, it notices
without a request), many waiting threads on one connection, AUTH and
SELECT, a unix socket, a server that never answers
(no connection: -EAGAIN at once), one that answers the PING handshake and
then goes silent (waiting calls time out after timeout_ms, the bounded
queue refuses the rest) and a SIGSTOPped Redis that comes back.
"""

import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import select

import pytest

from conftest import free_ports, wait_until

KV_TOOL = os.environ.get("KV_TOOL")
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
# "At once": well under the 100 ms a waiting caller would wait, with room
# for a loaded test machine.
AT_ONCE_US = 50000

pytestmark = [
    pytest.mark.skipif(not KV_TOOL or not os.path.exists(KV_TOOL),
                       reason="KV_TOOL is not set to the kv_tool (run through meson test)"),
    pytest.mark.skipif(not os.path.exists(REDIS_SERVER), reason="redis-server is not installed"),
]


class Redis:
    """Our own redis-server on 127.0.0.1:port, no persistence."""

    def __init__(self, tmp_path, port=None, extra=(), password=None):
        self.port = port or free_ports(1)[0]
        self.dir = tmp_path
        self.proc = None
        self.extra = list(extra)
        self.password = password

    def start(self):
        self.proc = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", str(self.dir)] + self.extra +
            (["--requirepass", self.password] if self.password else []),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        assert wait_until(self._pings, timeout=10), "redis-server did not start"
        return self

    def _pings(self):
        try:
            return self.command("PING") == "PONG"
        except OSError:
            return False

    def kill(self):
        self.proc.kill()
        self.proc.wait(timeout=10)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            if self.proc.returncode is None:
                os.kill(self.proc.pid, signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)

    def command(self, *args, db=0):
        """One command (in database db); the reply decoded (bytes for bulk strings)."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
            commands = []
            if self.password:
                commands.append(("AUTH", self.password))
            if db:
                commands.append(("SELECT", db))
            commands.append(args)
            out = b""
            for command in commands:
                out += b"*%d\r\n" % len(command)
                for a in command:
                    a = a if isinstance(a, bytes) else str(a).encode()
                    out += b"$%d\r\n%s\r\n" % (len(a), a)
            s.sendall(out)
            reader = RespReader(s)
            for _ in commands[:-1]:
                reply = reader.read()
                assert reply == "OK", reply
            return reader.read()


class RespReader:
    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def _fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("closed")
        self.buf += data

    def _line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def read(self):
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            return RuntimeError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            while len(self.buf) < n + 2:
                self._fill()
            data, self.buf = self.buf[:n], self.buf[n + 2:]
            return data
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self.read() for _ in range(n)]
        raise ValueError(line)


class KvTool:
    """kv_tool as a conversation: one line in, one line out."""

    def __init__(self, address, *args):
        self.proc = subprocess.Popen([KV_TOOL, "--redis", address] + list(args),
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
        self.buf = b""

    def cmd(self, line, timeout=10.0):
        """The answer's fields; with us= split off as the last one (an int)."""
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            assert left > 0, "kv_tool did not answer %r in %.1f s" % (line, timeout)
            ready, _, _ = select.select([self.proc.stdout], [], [], left)
            if ready:
                data = os.read(self.proc.stdout.fileno(), 65536)
                assert data, "kv_tool exited: " + self.proc.stderr.read().decode()
                self.buf += data
        answer, self.buf = self.buf.split(b"\n", 1)
        fields = answer.decode().split()
        assert fields and fields[0] != "error", answer
        if fields[-1].startswith("us="):
            fields = fields[:-1] + [int(fields[-1][3:])]
        return fields

    def connected(self, timeout_ms=10000):
        return self.cmd("connected %d" % timeout_ms, timeout=timeout_ms / 1000 + 5) == \
            ["connected", "1"]

    def stats(self):
        fields = self.cmd("stats")
        return {k: int(v) for k, v in (f.split("=") for f in fields[1:])}

    def close(self, timeout=10.0):
        """End the script; the store's destroy must finish in time."""
        self.proc.stdin.close()
        start = time.monotonic()
        self.proc.wait(timeout=timeout)
        elapsed = time.monotonic() - start
        err = self.proc.stderr.read().decode()
        for marker in ("Sanitizer", "runtime error:", "assertion failed"):
            assert marker not in err, err
        assert self.proc.returncode == 0, err
        return elapsed

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def redis(tmp_path):
    r = Redis(tmp_path).start()
    yield r
    r.stop()


@pytest.fixture
def tools():
    started = []

    def start(address, *args):
        tool = KvTool(address, *args)
        started.append(tool)
        return tool

    yield start
    for tool in started:
        tool.kill()


def addr(redis):
    return "127.0.0.1:%d" % redis.port


def test_set_get_del_incr_with_ttls(redis, tools):
    kv = tools(addr(redis))
    assert kv.connected()
    assert kv.cmd("get k")[:2] == ["get", "-ENOENT"]
    assert kv.cmd("set k v1 1")[:2] == ["set", "0"]
    assert kv.cmd("get k")[:3] == ["get", "0", "v1"]
    assert 0 < redis.command("PTTL", "toaster:k") <= 1000
    assert kv.cmd("set forever v 0")[:2] == ["set", "0"]
    assert redis.command("PTTL", "toaster:forever") == -1
    assert kv.cmd("incr c 2")[:3] == ["incr", "0", "1"]
    assert kv.cmd("incr c 2")[:3] == ["incr", "0", "2"]
    assert kv.cmd("incr c0 0")[:3] == ["incr", "0", "1"]
    assert redis.command("PTTL", "toaster:c0") == -1
    time.sleep(1.1)
    # The set's TTL ran out; the counter's window is the first incr's (2 s),
    # not renewed by the second.
    assert kv.cmd("get k")[:2] == ["get", "-ENOENT"]
    assert 0 < redis.command("PTTL", "toaster:c") <= 900
    assert kv.cmd("incr c 2")[:3] == ["incr", "0", "3"]
    assert 0 < redis.command("PTTL", "toaster:c") <= 900
    time.sleep(1.0)
    assert kv.cmd("incr c 2")[:3] == ["incr", "0", "1"]  # a new window
    assert kv.cmd("del forever")[:2] == ["del", "0"]
    assert kv.cmd("del forever")[:2] == ["del", "-ENOENT"]
    assert kv.cmd("get forever")[:2] == ["get", "-ENOENT"]
    # A value that is not a counter stays as it is.
    assert kv.cmd("set word abc 0")[:2] == ["set", "0"]
    assert kv.cmd("incr word 5")[:2] == ["incr", "-EINVAL"]
    assert redis.command("GET", "toaster:word") == b"abc"
    redis.command("SET", "toaster:neg", "-5")
    assert kv.cmd("incr neg 5")[:2] == ["incr", "-EINVAL"]
    assert redis.command("GET", "toaster:neg") == b"-5"
    # Redis counts in int64: the last step is -ERANGE, the value unchanged.
    redis.command("SET", "toaster:big", str(2**63 - 2))
    assert kv.cmd("incr big 5")[:3] == ["incr", "0", str(2**63 - 1)]
    assert kv.cmd("incr big 5")[:2] == ["incr", "-ERANGE"]
    # A key of another type is not a value.
    redis.command("RPUSH", "toaster:list", "x")
    assert kv.cmd("get list")[:2] == ["get", "-EINVAL"]
    assert kv.cmd("incr list 5")[:2] == ["incr", "-EINVAL"]
    stats = kv.stats()
    assert stats["errors"] >= 4 and stats["connects"] == 1 and stats["timeouts"] == 0
    assert kv.close() < 2


def test_binary_keys_and_values(redis, tools):
    kv = tools(addr(redis))
    assert kv.connected()
    key = "a\\x00b\\x0d\\x0a\\x20c"
    assert kv.cmd("set %s v\\x00\\x0d\\x0a\\xff 0" % key)[:2] == ["set", "0"]
    assert kv.cmd("get %s" % key)[:3] == ["get", "0", "v\\x00\\x0d\\x0a\\xff"]
    assert redis.command("GET", b"toaster:a\x00b\r\n c") == b"v\x00\r\n\xff"
    assert kv.cmd("get a")[:2] == ["get", "-ENOENT"]  # the NUL does not cut the key
    assert kv.cmd("set empty - 0")[:2] == ["set", "0"]
    assert kv.cmd("get empty")[:3] == ["get", "0", "-"]
    assert redis.command("GET", "toaster:empty") == b""
    kv.close()


def test_bounds(redis, tools):
    kv = tools(addr(redis))
    assert kv.connected()
    assert kv.cmd("set %s v 0" % ("k" * 64))[:2] == ["set", "0"]
    assert kv.cmd("set %s v 0" % ("k" * 65))[:2] == ["set", "-EINVAL"]
    assert kv.cmd("get %s" % ("k" * 65))[:2] == ["get", "-EINVAL"]
    assert kv.cmd("incr %s 5" % ("k" * 65))[:2] == ["incr", "-EINVAL"]
    assert kv.cmd("del %s" % ("k" * 65))[:2] == ["del", "-EINVAL"]
    assert kv.cmd("set - v 0")[:2] == ["set", "-EINVAL"]
    assert kv.cmd("set v64 %s 0" % ("v" * 64))[:2] == ["set", "0"]
    assert kv.cmd("get v64")[:3] == ["get", "0", "v" * 64]
    assert kv.cmd("set v65 %s 0" % ("v" * 65))[:2] == ["set", "-EINVAL"]
    assert redis.command("EXISTS", "toaster:v65") == 0
    # Another program's longer value is not ours to return.
    redis.command("SET", "toaster:foreign", "x" * 65)
    assert kv.cmd("get foreign")[:2] == ["get", "-ENOSPC"]
    assert redis.command("EXISTS", "toaster:" + "k" * 64) == 1
    kv.close()


def test_prefix_and_count(redis, tools):
    a = tools(addr(redis))
    b = tools(addr(redis), "--prefix", "other*[x]:")
    none = tools(addr(redis), "--prefix", "")
    for t in (a, b, none):
        assert t.connected()
    assert a.cmd("set one 1 0")[:2] == ["set", "0"]
    assert a.cmd("set two 2 0")[:2] == ["set", "0"]
    assert b.cmd("set one b 0")[:2] == ["set", "0"]
    keys = sorted(redis.command("KEYS", "*"))
    assert keys == [b"other*[x]:one", b"toaster:one", b"toaster:two"]
    assert a.cmd("get one")[:3] == ["get", "0", "1"]
    assert b.cmd("get one")[:3] == ["get", "0", "b"]
    assert b.cmd("get two")[:2] == ["get", "-ENOENT"]
    # A glob character in the prefix matches itself only.
    redis.command("SET", "otherX[x]:no", "1")
    assert a.cmd("count")[:2] == ["count", "2"]
    assert b.cmd("count")[:2] == ["count", "1"]
    assert none.cmd("count")[:2] == ["count", "4"]  # DBSIZE
    assert none.cmd("get toaster:two")[:3] == ["get", "0", "2"]
    for t in (a, b, none):
        t.close()


def test_two_stores_share_state(redis, tools):
    a = tools(addr(redis))
    b = tools(addr(redis))
    assert a.connected() and b.connected()
    assert a.cmd("set triplet 1.2.3.4/a@b/c@d 60")[:2] == ["set", "0"]
    assert b.cmd("get triplet")[:3] == ["get", "0", "1.2.3.4/a@b/c@d"]
    assert a.cmd("incr rate 60")[:3] == ["incr", "0", "1"]
    assert b.cmd("incr rate 60")[:3] == ["incr", "0", "2"]
    assert a.cmd("incr rate 60")[:3] == ["incr", "0", "3"]
    assert b.cmd("del triplet")[:2] == ["del", "0"]
    assert a.cmd("get triplet")[:2] == ["get", "-ENOENT"]
    a.close()
    b.close()


def test_nowait_path_and_cache(redis, tools):
    writer = tools(addr(redis))
    kv = tools(addr(redis), "--nowait", "--cache-s", "1")
    assert writer.connected() and kv.connected()
    assert writer.cmd("set ps:1.2.3.4 good 60")[:2] == ["set", "0"]
    # A miss starts a fetch and answers -EAGAIN at once; the fetch's reply
    # lands in the cache and the next get is a hit.
    got = kv.cmd("get ps:1.2.3.4")
    assert got[:2] == ["get", "-EAGAIN"] and got[2] < AT_ONCE_US
    assert wait_until(lambda: kv.cmd("get ps:1.2.3.4")[:3] == ["get", "0", "good"], timeout=2)
    assert kv.cmd("get ps:absent")[:2] == ["get", "-EAGAIN"]
    assert wait_until(lambda: kv.cmd("get ps:absent")[:2] == ["get", "-ENOENT"], timeout=2)
    stats = kv.stats()
    assert stats["cache_hits"] >= 2 and stats["cache_misses"] >= 2
    # Another machine's write is seen once the cache entry (1 s) has gone.
    assert writer.cmd("set ps:1.2.3.4 bad 60")[:2] == ["set", "0"]
    assert kv.cmd("get ps:1.2.3.4")[:3] == ["get", "0", "good"]
    time.sleep(1.1)
    assert kv.cmd("get ps:1.2.3.4")[:2] == ["get", "-EAGAIN"]
    assert wait_until(lambda: kv.cmd("get ps:1.2.3.4")[:3] == ["get", "0", "bad"], timeout=2)
    # Read your own writes, at once, and Redis has them soon after.
    assert kv.cmd("set mine yes 60")[:2] == ["set", "0"]
    assert kv.cmd("get mine")[:3] == ["get", "0", "yes"]
    assert wait_until(lambda: redis.command("GET", "toaster:mine") == b"yes", timeout=2)
    assert kv.cmd("del mine")[:2] == ["del", "0"]
    assert kv.cmd("get mine")[:2] == ["get", "-ENOENT"]
    assert wait_until(lambda: redis.command("EXISTS", "toaster:mine") == 0, timeout=2)
    # The counter: unknown, -EAGAIN (the INCR is sent all the same); known,
    # the cached value plus one.
    assert kv.cmd("incr psr:1.2.3.4 60")[:2] == ["incr", "-EAGAIN"]
    assert wait_until(lambda: redis.command("GET", "toaster:psr:1.2.3.4") == b"1", timeout=2)
    assert kv.cmd("sleep 200") == ["sleep", "200"]  # the reply reaches the cache
    assert kv.cmd("incr psr:1.2.3.4 60")[:3] == ["incr", "0", "2"]
    assert wait_until(lambda: redis.command("GET", "toaster:psr:1.2.3.4") == b"2", timeout=2)
    assert writer.cmd("incr psr:1.2.3.4 60")[:3] == ["incr", "0", "3"]
    assert kv.cmd("sleep 200") == ["sleep", "200"]
    # Our estimate missed the other machine's count until the reply came.
    assert kv.cmd("incr psr:1.2.3.4 60")[:3] == ["incr", "0", "3"]
    assert wait_until(lambda: redis.command("GET", "toaster:psr:1.2.3.4") == b"4", timeout=2)
    assert kv.cmd("sleep 200") == ["sleep", "200"]
    assert kv.cmd("incr psr:1.2.3.4 60")[:3] == ["incr", "0", "5"]
    kv.close()
    writer.close()


def test_nowait_cache_honours_ttl(redis, tools):
    writer = tools(addr(redis))
    kv = tools(addr(redis), "--nowait", "--cache-s", "30")
    assert writer.connected() and kv.connected()
    assert writer.cmd("set short v 2")[:2] == ["set", "0"]
    assert kv.cmd("get short")[:2] == ["get", "-EAGAIN"]
    assert wait_until(lambda: kv.cmd("get short")[:3] == ["get", "0", "v"], timeout=1)
    time.sleep(2.1)
    # The cache never outlives the key in Redis, even with cache_s 30.
    assert kv.cmd("get short")[:2] == ["get", "-EAGAIN"]
    assert wait_until(lambda: kv.cmd("get short")[:2] == ["get", "-ENOENT"], timeout=2)
    kv.close()
    writer.close()


def test_redis_killed_and_restarted(redis, tools):
    kv = tools(addr(redis), "--timeout-ms", "100")
    nowait = tools(addr(redis), "--nowait")
    assert kv.connected() and nowait.connected()
    assert kv.cmd("set k v 0")[:2] == ["set", "0"]
    redis.kill()
    # The first call finds the connection closed: -EAGAIN within the timeout.
    got = kv.cmd("get k")
    assert got[:2] == ["get", "-EAGAIN"] and got[2] < 300000
    # From then on it is down: refused at once, waiting or not.
    for line in ("get k", "set k v 0", "incr n 5", "del k"):
        got = kv.cmd(line)
        assert got[1] == "-EAGAIN" and got[2] < AT_ONCE_US, got
        got = nowait.cmd(line)
        assert got[1] in ("-EAGAIN", "0"), got  # nowait set/del may beat the news
        assert got[2] < AT_ONCE_US, got
    assert wait_until(lambda: nowait.cmd("set k v 0")[:2] == ["set", "-EAGAIN"], timeout=3)
    assert kv.stats()["is_connected"] == 0
    time.sleep(0.5)
    redis.start()
    assert kv.connected(timeout_ms=10000)
    assert nowait.connected(timeout_ms=10000)
    assert kv.cmd("set k v2 0")[:2] == ["set", "0"]
    assert kv.cmd("get k")[:3] == ["get", "0", "v2"]
    stats = kv.stats()
    assert stats["connects"] == 2 and stats["disconnects"] == 1
    assert stats["connect_failures"] >= 1 and stats["refused"] >= 4
    assert kv.close() < 2
    assert nowait.close() < 2


class SilentServer:
    """Accepts connections and reads; answers the first pongs commands with
    +PONG, then nothing, ever."""

    def __init__(self, pongs=0):
        self.pongs = pongs
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.received = b""
        self.conns = []
        self.stopping = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        self.sock.settimeout(0.1)
        while not self.stopping:
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.accepted += 1
            self.conns.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        answered = 0
        try:
            while not self.stopping:
                data = conn.recv(65536)
                if not data:
                    return
                self.received += data
                while answered < self.pongs and b"PING" in data:
                    conn.sendall(b"+PONG\r\n")
                    answered += 1
                    data = data.replace(b"PING", b"", 1)
        except OSError:
            return

    def close(self):
        self.stopping = True
        self.sock.close()
        for c in self.conns:
            c.close()


def test_server_that_never_answers():
    server = SilentServer(pongs=0)
    try:
        kv = KvTool("127.0.0.1:%d" % server.port, "--connect-timeout-ms", "200")
        try:
            # The handshake's PING never comes back: never connected.
            assert kv.cmd("connected 1000") == ["connected", "0"]
            assert server.accepted >= 1
            for line in ("get k", "set k v 1", "incr k 1", "count"):
                got = kv.cmd(line)
                assert got[-1] < AT_ONCE_US, got
                assert got[1] in ("-EAGAIN", "0"), got  # count answers 0
            stats = kv.stats()
            assert stats["connect_failures"] >= 1 and stats["connects"] == 0
            assert kv.close() < 3
        finally:
            kv.kill()
    finally:
        server.close()


def test_server_that_goes_silent():
    server = SilentServer(pongs=1)
    try:
        kv = KvTool("127.0.0.1:%d" % server.port, "--timeout-ms", "100", "--queue", "4")
        try:
            assert kv.connected(timeout_ms=3000)
            # The waiting caller gives up after timeout_ms, not sooner, not much later.
            got = kv.cmd("get k")
            assert got[:2] == ["get", "-EAGAIN"] and 90000 <= got[2] < 400000, got
            # The abandoned request still holds its slot until the connection
            # is declared dead (io timeout, 1 s): with a queue of 4, the
            # non-waiting sets fill it and the rest are refused at once.
            assert kv.cmd("nowait") == ["mode", "nowait"]
            answers = [kv.cmd("set k%d v 0" % i) for i in range(8)]
            assert [a[1] for a in answers].count("0") == 3, answers
            assert all(a[1] in ("0", "-EAGAIN") and a[2] < AT_ONCE_US for a in answers)
            assert kv.cmd("wait") == ["mode", "wait"]
            stats = kv.stats()
            assert stats["timeouts"] == 1 and stats["refused"] >= 5
            assert b"GET" in server.received and b"toaster:k" in server.received
            # The silent connection is dropped and another one tried.
            assert wait_until(lambda: kv.stats()["disconnects"] >= 1, timeout=5)
            assert wait_until(lambda: server.accepted >= 2, timeout=5)
            assert kv.close() < 3
        finally:
            kv.kill()
    finally:
        server.close()


def test_stopped_redis_comes_back(redis, tools):
    kv = tools(addr(redis), "--timeout-ms", "100")
    assert kv.connected()
    assert kv.cmd("set k v 0")[:2] == ["set", "0"]
    os.kill(redis.proc.pid, signal.SIGSTOP)
    try:
        got = kv.cmd("get k")
        assert got[:2] == ["get", "-EAGAIN"] and 90000 <= got[2] < 400000, got
        for _ in range(5):
            got = kv.cmd("get k")
            assert got[1] == "-EAGAIN" and got[2] < 400000, got
        assert kv.stats()["timeouts"] >= 1
    finally:
        os.kill(redis.proc.pid, signal.SIGCONT)
    assert wait_until(lambda: kv.cmd("get k")[:3] == ["get", "0", "v"], timeout=10)
    assert kv.close() < 3


def test_many_waiting_threads_share_one_connection(redis, tools):
    kv = tools(addr(redis), "--timeout-ms", "2000")
    assert kv.connected()
    fields = kv.cmd("hammer 16 200 hits 60", timeout=60)
    got = {k: int(v) for k, v in (f.split("=") for f in fields[1:-1])}
    assert got["threads"] == 16 and got["other"] == 0
    # Every increment that answered 0 happened once in Redis; one that
    # answered -EAGAIN (a slow moment) may or may not have.
    assert got["ok"] + got["eagain"] == 3200
    assert got["ok"] >= 3000
    value = int(redis.command("GET", "toaster:hits"))
    assert got["ok"] <= value <= 3200 and got["max"] <= value
    assert 0 < redis.command("PTTL", "toaster:hits") <= 60000
    stats = kv.stats()
    assert stats["requests"] == 3200 and stats["connects"] == 1
    kv.close()


def test_password_and_database(tmp_path, tools):
    r = Redis(tmp_path, password="s3cret").start()
    try:
        kv = tools("127.0.0.1:%d" % r.port, "--password", "s3cret", "--db", "3")
        assert kv.connected()
        assert kv.cmd("set k v 0")[:2] == ["set", "0"]
        assert r.command("GET", "toaster:k", db=3) == b"v"
        assert r.command("GET", "toaster:k") is None  # not in database 0
        kv.close()
        wrong = tools("127.0.0.1:%d" % r.port, "--password", "wrong",
                      "--connect-timeout-ms", "200")
        assert wrong.cmd("connected 500") == ["connected", "0"]
        assert wrong.cmd("get k")[:2] == ["get", "-EAGAIN"]
        stats = wrong.stats()
        assert stats["connects"] == 0 and stats["connect_failures"] >= 1
        wrong.proc.stdin.close()
        wrong.proc.wait(timeout=10)
        assert "redis: AUTH" in wrong.proc.stderr.read().decode()
        none = tools("127.0.0.1:%d" % r.port, "--connect-timeout-ms", "200")
        assert none.cmd("connected 500") == ["connected", "0"]  # PING: NOAUTH
    finally:
        r.stop()


def test_unix_socket(tmp_path, tools):
    path = tmp_path / "redis.sock"
    r = Redis(tmp_path, extra=["--unixsocket", str(path), "--unixsocketperm", "700"]).start()
    try:
        kv = tools("unix:%s" % path)
        assert kv.connected()
        assert kv.cmd("incr n 10")[:3] == ["incr", "0", "1"]
        assert r.command("GET", "toaster:n") == b"1"
        kv.close()
    finally:
        r.stop()


def test_restart_while_idle_is_noticed(redis, tools):
    kv = tools(addr(redis))
    assert kv.connected()
    assert kv.cmd("set k v 0")[:2] == ["set", "0"]
    redis.kill()
    # Nobody asks anything: the idle check finds the connection closed.
    assert wait_until(lambda: kv.stats()["is_connected"] == 0, timeout=3)
    assert kv.stats()["disconnects"] == 1
    redis.start()
    assert kv.connected(timeout_ms=10000)
    # The first request after the restart goes to the new connection.
    assert kv.cmd("get k")[:2] == ["get", "-ENOENT"]  # no persistence
    assert kv.cmd("set k v 0")[:2] == ["set", "0"]
    assert kv.stats()["errors"] == 0
    kv.close()


def test_destroy_sends_what_is_queued(redis, tools):
    kv = tools(addr(redis), "--nowait")
    assert kv.connected()
    script = "".join("set q%d v%d 60\n" % (i, i) for i in range(500))
    kv.proc.stdin.write(script.encode())
    kv.proc.stdin.flush()
    assert kv.close() < 3
    # Each set answered 0 (queued) or -EAGAIN (queue full): the ones that
    # answered 0 are all in Redis after the store was destroyed.
    answers = kv.buf + kv.proc.stdout.read()
    queued = [i for i, line in enumerate(answers.decode().splitlines())
              if line.startswith("set 0 ")]
    assert len(queued) >= 100
    for i in queued:
        assert redis.command("GET", "toaster:q%d" % i) == b"v%d" % i
