"""Group commit as the operator tunes it: `commit_window` lets one batch
gather the messages of many connections, and `spool_unnamed = no` keeps
named spool files (the fallback for file systems without O_TMPFILE).
Either way every 250 is in its Maildir, once, and the spool ends empty."""

import json
import subprocess
import threading

import pytest

from conftest import TOASTERCTL

USERS = ["u%d@example.com:{PLAIN}x" % i for i in range(8)]
SENDERS = 8
PER_SENDER = 5


def send_many(toaster, worker, queue_ids, errors):
    try:
        for n in range(PER_SENDER):
            message = ("Subject: commit %d-%d\r\n\r\nbody %d-%d\r\n" % (worker, n, worker, n))
            queue_ids.append(toaster.send("s@example.org", "u%d@example.com" % worker, message))
    except Exception as error:  # reported by the main thread
        errors.append(error)


def delivery_stats(toaster):
    out = subprocess.run([TOASTERCTL, "-c", str(toaster.config_file), "stats", "--json"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)["delivery"]


@pytest.mark.parametrize("spool_unnamed", ["yes", "no"])
def test_commit_window_batches_many_connections(make_toaster, spool_unnamed):
    # A long window makes the sharing certain, not a matter of timing: the
    # eight senders' messages arrive well within 300 ms of each other.
    toaster = make_toaster(users=USERS, aliases=[],
                           config={"commit_window": "300ms", "spool_unnamed": spool_unnamed})
    queue_ids, errors = [], []
    threads = [threading.Thread(target=send_many, args=(toaster, i, queue_ids, errors))
               for i in range(SENDERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert len(queue_ids) == SENDERS * PER_SENDER
    assert len(set(queue_ids)) == len(queue_ids)
    for worker in range(SENDERS):
        assert len(toaster.delivered("u%d@example.com" % worker)) == PER_SENDER
    assert toaster.spool_files() == []
    stats = delivery_stats(toaster)
    assert stats["messages"] == SENDERS * PER_SENDER
    # Each sender waits for its 250 before the next message, so a batch
    # holds at most one message per sender, and the window fills it.
    assert stats["batches"] <= SENDERS * PER_SENDER // 2, stats
