"""The outbound relay under load and across a crash, with smtp_sink as the
remote MX (loopback only):

- kill -9 with 1,000 messages queued and deliveries under way: after a
  restart every message arrives at least once, and a message arrives twice
  only when the sink had answered 250 to it before the kill (RFC 5321 6.1:
  a duplicate, never a loss);
- 10,000 messages to 100 destinations (d0.test .. d99.test, each its own
  MX address 127.0.0.10 .. 127.0.0.109, one sink on all of them): each
  arrives exactly once, at its destination's address, and no destination
  ever sees more parallel sessions than smtp_destination_concurrency_limit
  (nor all together more than smtp_process_limit).
"""

import collections
import re
import signal
import smtplib
import threading
import time

from conftest import wait_until
from smtp_sink import SmtpSink
from test_relay import BASE, queue_ids

HOLD_GREETING = "421 4.3.2 sink.test not now, come back later"


def msg(tag, rcpt):
    return ("From: <alice@example.com>\r\nTo: <%s>\r\nSubject: load %s\r\n"
            "Message-ID: <%s@load.test>\r\n\r\nbody of %s\r\n" % (rcpt, tag, tag, tag)).encode()


def tag_of(data):
    m = re.search(rb"\r\nMessage-ID: <([^@>]+)@load\.test>\r\n", data)
    assert m, data[:400]
    return m.group(1).decode()


def inject(t, items, clients=4):
    """Send (tag, rcpt) items over `clients` parallel SMTP connections."""
    errors = []

    def worker(part):
        try:
            with smtplib.SMTP("127.0.0.1", t.port, local_hostname="load.test",
                              timeout=60) as c:
                for tag, rcpt in part:
                    c.sendmail("alice@example.com", [rcpt], msg(tag, rcpt))
        except Exception as exc:  # reported below, in the test's thread
            errors.append(repr(exc))

    threads = [threading.Thread(target=worker, args=(items[i::clients],))
               for i in range(clients)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == [], errors


def restart(t):
    """Start the same daemon (same data_dir, same configuration) again."""
    if t._log_handle is not None:
        t._log_handle.close()
        t._log_handle = None
    t.proc = None
    t.start()


def test_kill_9_with_1000_queued(make_toaster):
    count = 1000
    with SmtpSink() as sink:
        sink.configure(greeting=HOLD_GREETING)  # every attempt defers
        t = make_toaster(config=dict(BASE, smtp_mx_port=sink.port), start=False)
        t.write_dns_zone(["remote.test MX 10 mx.remote.test", "mx.remote.test A 127.0.0.1"])
        t.start()
        tags = ["k%04d" % i for i in range(count)]
        inject(t, [(tag, "bob@remote.test") for tag in tags])
        assert wait_until(lambda: len(queue_ids(t)) == count, 30), len(queue_ids(t))
        assert sink.messages == []
        # Let the sink take mail, slowly enough that deliveries are in
        # flight when the daemon dies.
        sink.configure(greeting="220 sink.test ESMTP", delay_s=0.01)
        assert sink.wait_for(100, 60), t.log()[-3000:]
        killed_at = time.time()
        t.signal(signal.SIGKILL)
        assert t.wait() == -signal.SIGKILL
        before = len(sink.snapshot())
        assert before < count, "everything went before the kill: the test proved nothing"
        sink.configure(delay_s=0)
        restart(t)
        # Every message arrives.
        def all_arrived():
            return {tag_of(m.data) for m in sink.snapshot()} >= set(tags)
        assert wait_until(all_arrived, 120, 0.2), (
            len({tag_of(m.data) for m in sink.snapshot()}), t.log()[-3000:])
        assert wait_until(lambda: queue_ids(t) == [], 30), queue_ids(t)[:10]
        time.sleep(1.0)
        arrived = collections.defaultdict(list)
        for m in sink.snapshot():
            arrived[tag_of(m.data)].append(m.accepted_at)
        assert set(arrived) == set(tags)
        duplicates = {tag: times for tag, times in arrived.items() if len(times) > 1}
        late = {tag: times for tag, times in duplicates.items() if min(times) >= killed_at}
        assert late == {}, "duplicates the sink never answered 250 before the kill: %r" % late
        # A duplicate can only be a message the agent was finishing when it
        # died: at most one per session in flight.
        assert len(duplicates) <= 100, len(duplicates)
        assert all(len(times) == 2 for times in duplicates.values()), duplicates
        print("kill -9: %d delivered before the kill, %d duplicates" % (before,
                                                                       len(duplicates)))
        t.stop()
        t.check_log_clean()


def test_10000_messages_to_100_destinations(make_toaster):
    domains = 100
    per_domain = 100
    limit = 4
    addresses = ["127.0.0.%d" % (10 + i) for i in range(domains)]
    with SmtpSink(host=addresses) as sink:
        zone = []
        for i in range(domains):
            zone += ["d%d.test MX 10 mx.d%d.test" % (i, i), "mx.d%d.test A %s" % (i, addresses[i])]
        config = dict(BASE, smtp_mx_port=sink.port, smtp_destination_concurrency_limit=limit,
                      smtp_process_limit=100, fsync="no")
        t = make_toaster(config=config, start=False)
        t.write_dns_zone(zone)
        t.start()
        items = [("m%05d" % n, "r%d@d%d.test" % (n // domains, n % domains))
                 for n in range(domains * per_domain)]
        started = time.monotonic()
        inject(t, items)
        injected_s = time.monotonic() - started
        assert sink.wait_for(len(items), 150), (len(sink.messages), t.log()[-3000:])
        assert wait_until(lambda: queue_ids(t) == [], 30), queue_ids(t)[:10]
        total_s = time.monotonic() - started
        time.sleep(1.0)
        got = collections.Counter(tag_of(m.data) for m in sink.snapshot())
        assert len(got) == len(items) and set(got.values()) == {1}, \
            [tag for tag, n in got.items() if n > 1][:10]
        expected = dict(items)
        for m in sink.snapshot():
            rcpt = expected[tag_of(m.data)]
            assert m.rcpts == [rcpt]
            domain = int(rcpt.split("@d")[1].split(".")[0])
            assert m.local[0] == addresses[domain], (rcpt, m.local)
        over = {a: n for a, n in sink.max_parallel.items() if n > limit}
        assert over == {}, over
        assert sink.max_parallel_total <= 100
        print("10,000 to 100: injected in %.1f s, all delivered after %.1f s, %d connections, "
              "max %d parallel" % (injected_s, total_s, sink.connections,
                                   sink.max_parallel_total))
