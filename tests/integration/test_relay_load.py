"""The outbound relay under load and across a crash, with smtp_sink as the
remote MX (loopback only):

- kill -9 with 1,000 messages queued and deliveries under way: after a
  restart every message arrives at least once, and a message arrives twice
  only when the killed daemon had sent it whole (the sink's 250 came just
  before the kill, or an instant after it, unheard) and its queue entry
  was still there; then once more after the restart (RFC 5321 6.1: a
  duplicate, never a loss). An entry gone from the queue at the kill had
  been delivered before it;
- 10,000 messages to 100 destinations (d0.test .. d99.test, each its own
  MX address 127.0.0.10 .. 127.0.0.109, one sink on all of them): each
  arrives exactly once, at its destination's address, and no destination
  ever sees more parallel sessions than smtp_destination_concurrency_limit
  (nor all together more than smtp_process_limit), against a slow remote
  that makes the agent want more.
"""

import collections
import re
import signal
import smtplib
import threading
import time

from conftest import QUEUED_RE, wait_until
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
    """Send (tag, rcpt) items over `clients` parallel SMTP connections;
    returns {tag: queue id}."""
    errors = []
    qids = {}

    def worker(part):
        try:
            with smtplib.SMTP("127.0.0.1", t.port, local_hostname="load.test",
                              timeout=60) as c:
                c.ehlo()
                for tag, rcpt in part:
                    assert c.mail("alice@example.com")[0] == 250
                    assert c.rcpt(rcpt)[0] == 250
                    code, resp = c.data(msg(tag, rcpt))
                    m = QUEUED_RE.match(b"%d %s" % (code, resp))
                    assert m, (code, resp)
                    qids[tag] = m.group(1).decode()
        except Exception as exc:  # reported below, in the test's thread
            errors.append(repr(exc))

    threads = [threading.Thread(target=worker, args=(items[i::clients],))
               for i in range(clients)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == [], errors
    assert len(qids) == len(items)
    return qids


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
        qids = inject(t, [(tag, "bob@remote.test") for tag in tags])
        assert wait_until(lambda: len(queue_ids(t)) == count, 30), len(queue_ids(t))
        assert sink.messages == []
        # Let the sink take mail, slowly enough that deliveries are in
        # flight when the daemon dies.
        sink.configure(greeting="220 sink.test ESMTP", delay_s=0.01)
        assert sink.wait_for(100, 60), t.log()[-3000:]
        killed_at = time.time()
        t.signal(signal.SIGKILL)
        assert t.wait() == -signal.SIGKILL
        left = set(queue_ids(t))  # what the dead daemon had not finished
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
        # Which daemon sent each copy: the killed one over a connection it
        # made before the kill, or the restarted one.
        arrived = collections.defaultdict(list)
        for m in sink.snapshot():
            is_old = sink.sessions[m.session].started_at < killed_at
            arrived[tag_of(m.data)].append((m.accepted_at, is_old))
        assert set(arrived) == set(tags)
        duplicates = {tag: copies for tag, copies in arrived.items() if len(copies) > 1}
        # A duplicate is a message the killed daemon had sent whole (the
        # sink may have said 250 to it an instant after the kill: the
        # daemon never heard it), sent once more after the restart.
        late = {tag: copies for tag, copies in duplicates.items()
                if [is_old for _, is_old in copies] != [True, False]}
        assert late == {}, "duplicates not sent by the killed daemon first: %r" % late
        # Its queue entry was still there; one the agent had removed went once.
        finished = {tag: copies for tag, copies in duplicates.items() if qids[tag] not in left}
        assert finished == {}, "sent again though its entry was gone: %r" % finished
        # An entry removed before the kill was delivered before the kill.
        lost = [tag for tag in tags if qids[tag] not in left and not arrived[tag][0][1]]
        assert lost == [], "removed from the queue before it was sent: %r" % lost[:10]
        answered_late = sum(1 for copies in duplicates.values() if copies[0][0] >= killed_at)
        print("kill -9: %d delivered before the kill, %d left queued, %d duplicates (%d "
              "answered by the sink after the kill signal)"
              % (before, len(left), len(duplicates), answered_late))
        t.stop()
        t.check_log_clean()


def test_10000_messages_to_100_destinations(make_toaster):
    domains = 100
    per_domain = 100
    limit = 2
    addresses = ["127.0.0.%d" % (10 + i) for i in range(domains)]
    with SmtpSink(host=addresses) as sink:
        zone = []
        for i in range(domains):
            zone += ["d%d.test MX 10 mx.d%d.test" % (i, i), "mx.d%d.test A %s" % (i, addresses[i])]
        # A slow remote (10 ms before each reply), so that mail for each
        # destination piles up and the agent wants more sessions than the
        # limit allows; 100 x 2 sessions fit in smtp_process_limit.
        sink.configure(delay_s=0.01)
        config = dict(BASE, smtp_mx_port=sink.port, smtp_destination_concurrency_limit=limit,
                      smtp_process_limit=250, fsync="no")
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
        assert sink.max_parallel_total <= 250
        # The limit was reached (else this test could not have failed).
        at_limit = sum(1 for n in sink.max_parallel.values() if n == limit)
        assert at_limit > 0, sink.max_parallel
        print("10,000 to 100: injected in %.1f s, all delivered after %.1f s, %d connections, "
              "max %d parallel, %d destinations at the limit" % (
                  injected_s, total_s, sink.connections, sink.max_parallel_total, at_limit))
