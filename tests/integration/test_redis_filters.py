"""The daemon's state in a real redis-server (started here, on a loopback
port of its own): greylisting triplets, Bayes tokens learned through
toasterctl, postscreen's memory of bad clients, all under redis_prefix and
shared by two daemons on one Redis. Then Redis is killed in the middle of
mail: messages are still accepted (the documented fallback: no state, no
greylisting), nothing is lost, and the daemons reconnect by themselves when
Redis is back.
"""
import shutil
import smtplib
import socket
import subprocess
import time

import pytest

from conftest import TOASTERCTL, free_ports, wait_until

REDIS_SERVER = shutil.which("redis-server")
REDIS_CLI = shutil.which("redis-cli")

pytestmark = pytest.mark.skipif(REDIS_SERVER is None or REDIS_CLI is None,
                                reason="redis-server is not installed")


class Redis:
    def __init__(self, port):
        self.port = port
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        assert wait_until(self.is_up, 10), "redis-server did not start"

    def is_up(self):
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
            return True
        except OSError:
            return False

    def stop(self):
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def cli(self, *args):
        out = subprocess.run([REDIS_CLI, "-p", str(self.port), *args], capture_output=True,
                             text=True, timeout=10)
        return out.stdout


@pytest.fixture
def redis():
    r = Redis(free_ports(1)[0])
    r.start()
    yield r
    r.stop()


def message(subject):
    return ("From: <a@remote.test>\r\nTo: <carol@example.org>\r\nSubject: %s\r\n"
            "Date: Fri, 04 Dec 2026 10:00:00 +0000\r\nMessage-ID: <%s@remote.test>\r\n\r\n"
            "Hello.\r\n" % (subject, subject)).encode()


def send(toaster, subject):
    with smtplib.SMTP("127.0.0.1", toaster.port, timeout=30) as s:
        s.ehlo("client.remote.test")
        s.sendmail("a@remote.test", ["carol@example.org"], message(subject))


def redis_config(redis, **extra):
    config = {"redis": "127.0.0.1:%d" % redis.port, "greylist": "always",
              "greylist_local": "yes", "greylist_delay": "1s"}
    config.update(extra)
    return config


def test_greylisting_shared_through_redis(make_toaster, redis):
    one = make_toaster(config=redis_config(redis), name="one")
    two = make_toaster(config=redis_config(redis), name="two")
    with pytest.raises(smtplib.SMTPDataError) as info:
        send(one, "grey")
    assert info.value.smtp_code == 451
    keys = redis.cli("--scan", "--pattern", "toaster:*").split()
    assert keys, "no key under the prefix"
    time.sleep(1.5)
    # The other daemon knows the triplet from Redis: its retry passes.
    send(two, "grey")
    assert len(two.messages("carol@example.org")) == 1


def test_bayes_learned_into_redis(make_toaster, redis, tmp_path):
    t = make_toaster(config=redis_config(redis, redis_prefix="bayes-test:"))
    path = tmp_path / "spam.eml"
    path.write_bytes(b"Subject: pills\r\n\r\ncheap pills discount pharmacy offer now\r\n")
    out = subprocess.run([TOASTERCTL, "-c", str(t.config_file), "learn", "spam", str(path)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "learned 1 as spam" in out.stdout, out.stdout + out.stderr
    keys = redis.cli("--scan", "--pattern", "bayes-test:*").split()
    assert len(keys) > 3, keys  # the tokens and the counters


def test_redis_killed_mid_run_loses_nothing(make_toaster, redis):
    t = make_toaster(config=redis_config(redis))
    with pytest.raises(smtplib.SMTPDataError):
        send(t, "before")  # greylisted: Redis holds the triplet
    redis.stop()
    # Redis gone: mail goes on without greylisting (no state to consult),
    # promptly, and every message is delivered.
    start = time.monotonic()
    for n in range(5):
        send(t, "during%d" % n)
    assert time.monotonic() - start < 10
    redis.start()
    # Back: the daemon reconnects by itself and uses it again.
    assert len(t.messages("carol@example.org")) == 5
    assert wait_until(lambda: _greylisted_again(t, redis), 15)
    t.check_log_clean()


def _greylisted_again(t, redis):
    """A new sender is greylisted again: its triplet went into Redis."""
    try:
        send(t, "after%d" % int(time.monotonic() * 1000))
    except smtplib.SMTPDataError as e:
        return e.smtp_code == 451 and bool(redis.cli("--scan", "--pattern", "toaster:*").split())
    return False
