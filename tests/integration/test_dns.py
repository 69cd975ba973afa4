"""The resolver of core/dns.h against a real DNS server on 127.0.0.1.

tests/tools/dns_query (path in $DNS_QUERY) asks questions the way a filter
does, against dns_server.DNSServer (dnspython, on a free loopback port),
which counts every query it receives. Covered: answers of each type (A,
AAAA, MX incl. null MX, TXT of several strings, PTR, TLSA, a CNAME chain,
TXT within EDNS's 1232 bytes in one datagram, larger over TCP, a server
without EDNS), NXDOMAIN against NODATA with the
SOA's negative TTL and its cap, SERVFAIL and REFUSED, a server that never
answers (TEMPFAIL after the timeout), the cache (a second lookup sends no
packet; an expired TTL sends one), the override file winning over the
server and `$UNLISTED NXDOMAIN` keeping every other name off the network,
invalid names sending nothing, and many batches asking at once sharing one
query per question.
"""

import os
import subprocess

import pytest

from dns_server import DNSServer

DNS_QUERY = os.environ.get("DNS_QUERY")

pytestmark = pytest.mark.skipif(
    not DNS_QUERY or not os.path.exists(DNS_QUERY),
    reason="DNS_QUERY is not set to the dns_query tool (run through meson test)")

TLSA_HEX = "d2abde240d7cd3ee6b4b28c54df034b97983a1d16e8a410e4561cb106618e971"


def run(server, *args, timeout_ms=300, tries=1, extra=(), check=True):
    """Run dns_query; returns (round lines, stats dict or {}, completed process)."""
    cmd = [DNS_QUERY, "--timeout-ms", str(timeout_ms), "--tries", str(tries), "--stats"]
    if server is not None:
        cmd += ["--server", server.address]
    cmd += list(extra) + list(args)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    if check:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    for marker in ("Sanitizer", "runtime error:", "assertion failed"):
        assert marker not in proc.stderr, proc.stderr
    stats = {}
    rounds = []
    for line in proc.stdout.splitlines():
        if line.startswith("stats "):
            stats = {k: int(v) for k, v in (f.split("=") for f in line.split()[1:])}
        elif line.startswith(("round ", "oneshot ", "threads ")):
            rounds.append({"head": line, "lines": []})
        else:
            rounds[-1]["lines"].append(line)
    return rounds, stats, proc


@pytest.fixture
def server():
    with DNSServer(soa_ttl=3600, soa_minimum=60) as s:
        yield s


def test_each_type(server):
    server.add("mx.example.org", "A", "127.0.0.1", "127.0.0.2", ttl=120)
    server.add("mx.example.org", "AAAA", "::1", ttl=200)
    server.add("example.org", "MX", "10 mx.example.org.", ttl=300)
    server.add("null.example.org", "MX", "0 .", ttl=300)
    server.add("example.org", "TXT", '"v=spf1 ip4:127.0.0.1 " "-all"', ttl=300)
    server.add("1.0.0.127.in-addr.arpa", "PTR", "MX.Example.ORG.", ttl=300)
    server.add("_25._tcp.mx.example.org", "TLSA", "3 1 1 " + TLSA_HEX, ttl=300)
    server.add("www.example.org", "CNAME", "alias.example.org.", ttl=50)
    server.add("alias.example.org", "CNAME", "mx.example.org.", ttl=400)
    rounds, stats, _ = run(
        server,
        "A", "mx.example.org", "AAAA", "MX.example.org.", "MX", "example.org",
        "MX", "null.example.org", "TXT", "example.org", "PTR", "1.0.0.127.in-addr.arpa",
        "TLSA", "_25._tcp.mx.example.org", "A", "www.example.org")
    lines = rounds[0]["lines"]
    # The order of records in an RRset is the server's choice.
    lines[0:2] = sorted(lines[0:2])
    lines[8:10] = sorted(lines[8:10])
    assert lines == [
        "mx.example.org A OK 120 127.0.0.1",
        "mx.example.org A OK 120 127.0.0.2",
        "MX.example.org. AAAA OK 200 ::1",
        "example.org MX OK 300 10 mx.example.org",
        "null.example.org MX OK 300 0 .",
        'example.org TXT OK 300 "v=spf1 ip4:127.0.0.1 -all"',
        "1.0.0.127.in-addr.arpa PTR OK 300 mx.example.org",
        "_25._tcp.mx.example.org TLSA OK 300 3 1 1 " + TLSA_HEX,
        # Through two CNAMEs: the smallest TTL of the chain.
        "www.example.org A OK 50 127.0.0.1",
        "www.example.org A OK 50 127.0.0.2",
    ]
    assert stats["queries_sent"] == 8
    assert server.total() == 8


def test_txt_sizes_edns_and_tcp(server):
    # Three 250-byte strings: over 512 bytes, within the 1232 of EDNS, so
    # one UDP query. Six: over 1232, so UDP comes back truncated and c-ares
    # asks again over TCP.
    server.add("mid.example.org", "TXT", *['"%s"' % (c * 250) for c in "abc"])
    server.add("big.example.org", "TXT", *['"%s"' % (c * 250) for c in "abcdef"])
    rounds, _, _ = run(server, "TXT", "mid.example.org", "TXT", "big.example.org")
    got = sorted(rounds[0]["lines"])
    assert got == sorted(['mid.example.org TXT OK 300 "%s"' % (c * 250) for c in "abc"] +
                         ['big.example.org TXT OK 300 "%s"' % (c * 250) for c in "abcdef"])
    assert server.count("mid.example.org", "TXT") == 1
    assert server.count("big.example.org", "TXT") == 2  # UDP, then TCP


def test_server_without_edns(server):
    # A server from before EDNS answers FORMERR to the OPT record: c-ares
    # asks again without it.
    server.add("old.example.org", "TXT", '"old"')
    server.behave("old.example.org", "TXT", no_edns=True)
    rounds, _, _ = run(server, "TXT", "old.example.org")
    assert rounds[0]["lines"] == ['old.example.org TXT OK 300 "old"']
    assert server.count("old.example.org", "TXT") == 2


def test_nxdomain_nodata_and_negative_ttl(server):
    server.add("example.org", "MX", "10 mx.example.org.")
    server.exists("empty.example.org")
    rounds, _, _ = run(server, "A", "nx.example.org", "A", "empty.example.org", "A",
                       "example.org")
    # SOA TTL 3600, MINIMUM 60: the negative TTL is the smaller (RFC 2308).
    assert rounds[0]["lines"] == [
        "nx.example.org A NXDOMAIN 60",
        "empty.example.org A NODATA 60",
        "example.org A NODATA 60",
    ]
    rounds, _, _ = run(server, "A", "nx2.example.org", extra=["--negative-ttl-max", "7"])
    assert rounds[0]["lines"] == ["nx2.example.org A NXDOMAIN 7"]


def test_ttl_cap(server):
    server.add("long.example.org", "A", "192.0.2.1", ttl=999999)
    rounds, _, _ = run(server, "A", "long.example.org", extra=["--ttl-max", "100"])
    assert rounds[0]["lines"] == ["long.example.org A OK 100 192.0.2.1"]


def test_servfail_and_refused(server):
    server.behave("broken.example.org", "A", rcode="SERVFAIL")
    server.behave("refused.example.org", "A", rcode="REFUSED")
    rounds, stats, _ = run(server, "A", "broken.example.org", "A", "refused.example.org",
                           tries=2)
    assert rounds[0]["lines"] == [
        "broken.example.org A TEMPFAIL 0",
        "refused.example.org A PERMFAIL 0",
    ]
    assert stats["tempfails"] == 1
    # The answer is final: no second try (ARES_FLAG_NOCHECKRESP).
    assert server.count("broken.example.org", "A") == 1
    assert server.count("refused.example.org", "A") == 1
    # Failures are not cached: asking again asks the server again.
    rounds, stats, _ = run(server, "A", "broken.example.org", tries=1,
                           extra=["--repeat", "2"])
    assert [r["lines"] for r in rounds] == [["broken.example.org A TEMPFAIL 0"]] * 2
    assert stats["cache_hits"] == 0
    assert server.count("broken.example.org", "A") == 3


def test_timeout_is_tempfail(server):
    server.behave("silent.example.org", "TXT", drop=True)
    server.add("ok.example.org", "TXT", '"fine"')
    rounds, stats, _ = run(server, "TXT", "silent.example.org", "TXT", "ok.example.org",
                           timeout_ms=200, tries=2)
    assert rounds[0]["lines"] == [
        "silent.example.org TXT TEMPFAIL 0",
        'ok.example.org TXT OK 300 "fine"',
    ]
    assert stats["timeouts"] == 1
    assert server.count("silent.example.org", "TXT") == 2
    # 200 ms, then 400 ms (c-ares doubles the timeout each round).
    elapsed_ms = int(rounds[0]["head"].split("elapsed_ms=")[1])
    assert 550 <= elapsed_ms < 3000, rounds[0]["head"]


def test_no_server_listening():
    # A port nobody listens on: ICMP refused or timeout, TEMPFAIL either way.
    with DNSServer() as s:
        address = s.address
    proc = subprocess.run(
        [DNS_QUERY, "--server", address, "--timeout-ms", "200", "--tries", "1",
         "A", "example.org"], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert "example.org A TEMPFAIL 0" in proc.stdout.splitlines()


def test_cache_hit_sends_no_packet(server):
    server.add("example.org", "MX", "10 mx.example.org.", ttl=300)
    server.exists("empty.example.org")
    rounds, stats, _ = run(server, "MX", "example.org", "MX", "Example.ORG", "A",
                           "empty.example.org", extra=["--repeat", "3"])
    assert len(rounds) == 3
    for r in rounds:
        assert r["lines"] == [
            "example.org MX OK 300 10 mx.example.org",
            "Example.ORG MX OK 300 10 mx.example.org",
            "empty.example.org A NODATA 60",
        ]
    assert server.count("example.org", "MX") == 1
    assert server.count("empty.example.org", "A") == 1  # negative answers are cached too
    assert stats["queries_sent"] == 2
    assert stats["cache_misses"] == 2
    # Round 1: Example.ORG is the same question as example.org, pinned in
    # the batch; rounds 2 and 3: both names from the cache once per batch.
    assert stats["cache_hits"] == 4


def test_ttl_expiry(server):
    server.add("short.example.org", "A", "192.0.2.7", ttl=1)
    rounds, stats, _ = run(server, "A", "short.example.org",
                           extra=["--repeat", "2", "--sleep-ms", "1300"])
    assert [r["lines"] for r in rounds] == [["short.example.org A OK 1 192.0.2.7"]] * 2
    assert server.count("short.example.org", "A") == 2
    assert stats["cache_hits"] == 0


def test_override_wins_over_server(server, tmp_path):
    server.add("example.org", "TXT", '"from the server"')
    server.add("other.example.org", "TXT", '"server only"')
    zone = tmp_path / "override.zone"
    zone.write_text(
        "; fixed answers\n"
        "example.org. 60 TXT \"from the \" \"file\"   # two strings\n"
        "gone.example.org NXDOMAIN\n")
    rounds, stats, _ = run(server, "TXT", "example.org", "A", "example.org", "TXT",
                           "gone.example.org", "TXT", "other.example.org",
                           extra=["--override", str(zone)])
    assert rounds[0]["lines"] == [
        'example.org TXT OK 60 "from the file"',
        "example.org A NODATA 300",
        "gone.example.org TXT NXDOMAIN 300",
        'other.example.org TXT OK 300 "server only"',
    ]
    assert server.count("example.org", "TXT") == 0
    assert server.count("example.org", "A") == 0
    assert server.count("gone.example.org", "TXT") == 0
    assert server.count("other.example.org", "TXT") == 1
    assert stats["override_answers"] == 3


def test_unlisted_nxdomain_never_waits_on_the_network(server, tmp_path):
    zone = tmp_path / "isolated.zone"
    zone.write_text("$UNLISTED NXDOMAIN\nmx.test. A 127.0.0.1\n")
    server.add("example.org", "A", "192.0.2.1")
    rounds, stats, _ = run(server, "A", "mx.test", "A", "example.org", "MX", "anything.invalid",
                           extra=["--override", str(zone)])
    assert rounds[0]["lines"] == [
        "mx.test A OK 300 127.0.0.1",
        "example.org A NXDOMAIN 300",
        "anything.invalid MX NXDOMAIN 300",
    ]
    assert server.total() == 0
    assert stats["queries_sent"] == 0


def test_bad_override_file_names_the_line(server, tmp_path):
    zone = tmp_path / "bad.zone"
    zone.write_text("ok.test. A 127.0.0.1\nbad.test. A 300.1.1.1\n")
    _, _, proc = run(server, "A", "ok.test", extra=["--override", str(zone)], check=False)
    assert proc.returncode == 2
    assert "bad.zone: line 2: not an IPv4 address: 300.1.1.1" in proc.stderr


def test_query_ids_are_random(server):
    # ares_send sends the ID it is given: each query must carry a fresh one.
    for i in range(20):
        server.add("id%d.example.org" % i, "A", "192.0.2.1")
    args = []
    for i in range(20):
        args += ["A", "id%d.example.org" % i]
    run(server, *args)
    assert len(server.query_ids) == 20
    assert len(set(server.query_ids)) >= 19


def test_invalid_names_send_nothing(server):
    rounds, stats, _ = run(server, "A", "a..b", "A", "x" * 64 + ".org", "A",
                           ".".join(["abcdefghi"] * 26), "TXT", "")
    assert rounds[0]["lines"] == [
        "a..b A INVALID",
        "x" * 64 + ".org A INVALID",
        ".".join(["abcdefghi"] * 26) + " A INVALID",
        " TXT INVALID",
    ]
    assert server.total() == 0


def test_parallel_batches_share_one_query(server):
    # The answers come late, so every batch asks while the queries are out.
    for i in range(3):
        server.add("n%d.example.org" % i, "A", "192.0.2.%d" % (i + 1))
        server.behave("n%d.example.org" % i, "A", delay=0.3)
    args = []
    for i in range(3):
        args += ["A", "n%d.example.org" % i]
    rounds, stats, _ = run(server, *args, timeout_ms=2000, extra=["--batches", "50"])
    assert rounds[0]["lines"] == ["n%d.example.org A OK 300 192.0.2.%d" % (i, i + 1)
                                  for i in range(3)]
    for i in range(3):
        assert server.count("n%d.example.org" % i, "A") == 1
    assert stats["queries_sent"] == 3
    assert stats["queries_shared"] == 49 * 3


def test_batch_question_bound(server, tmp_path):
    # DNS_BATCH_QUESTIONS_MAX (64) distinct questions per batch; the 65th
    # gets TEMPFAIL with no query, the 64th and a repeat of the 1st do not.
    zone = tmp_path / "bound.zone"
    zone.write_text("$UNLISTED NXDOMAIN\n")
    args = []
    for i in range(65):
        args += ["A", "q%d.test" % i]
    args += ["A", "q0.test"]
    rounds, stats, _ = run(server, *args, extra=["--override", str(zone)])
    lines = rounds[0]["lines"]
    assert lines[63] == "q63.test A NXDOMAIN 300"
    assert lines[64] == "q64.test A TEMPFAIL 0"
    assert lines[65] == "q0.test A NXDOMAIN 300"
    assert stats["refused"] == 1
    assert server.total() == 0


def test_oneshot_resolve(server, tmp_path):
    # dns_resolve: answers at hand come back before it returns, the others
    # on the resolver thread; the same cache and override file serve both.
    server.add("example.org", "MX", "10 mx.example.org.")
    server.add("slow.example.org", "A", "192.0.2.5")
    server.behave("slow.example.org", "A", delay=0.2)
    server.behave("silent.example.org", "A", drop=True)
    zone = tmp_path / "o.zone"
    zone.write_text("fixed.test TXT \"fixed\"\n")
    rounds, stats, _ = run(server, "MX", "example.org", "A", "slow.example.org", "A",
                           "silent.example.org", "TXT", "fixed.test", "A", "bad..name",
                           timeout_ms=300,
                           extra=["--oneshot", "--repeat", "2", "--override", str(zone)])
    assert rounds[0]["head"].endswith("synchronous=1")  # the override answer
    assert rounds[1]["head"].endswith("synchronous=3")  # and two from the cache
    for r in rounds:
        assert r["lines"] == [
            "example.org MX OK 300 10 mx.example.org",
            "slow.example.org A OK 300 192.0.2.5",
            "silent.example.org A TEMPFAIL 0",
            'fixed.test TXT OK 300 "fixed"',
            "bad..name A INVALID",
        ]
    assert server.count("example.org", "MX") == 1
    assert server.count("slow.example.org", "A") == 1
    assert server.count("silent.example.org", "A") == 2  # TEMPFAIL is not cached
    assert stats["cache_hits"] == 2


def test_shutdown_answers_pending_questions(server):
    # The tool exits while a oneshot question waits on a silent server:
    # destroying the resolver answers it TEMPFAIL first (no hang, no leak).
    server.behave("silent.example.org", "A", drop=True)
    rounds, _, proc = run(server, "A", "silent.example.org", "A", "Silent.example.org",
                          timeout_ms=5000, extra=["--oneshot", "--abandon"])
    assert rounds[0]["lines"] == ["silent.example.org A TEMPFAIL 0",
                                  "Silent.example.org A TEMPFAIL 0"]
    elapsed_ms = int(rounds[0]["head"].split("elapsed_ms=")[1].split()[0])
    assert elapsed_ms < 2000  # not the 5 s timeout
    assert server.count("silent.example.org", "A") == 1  # the two shared one query


def test_worker_threads(server):
    # Eight threads run filter runs at once, each with its own batch, over
    # answers that are late, short-lived (TTL 1: expiring while others
    # ask), failing and missing. Every run must end answered, with the
    # same statuses. Under TSan this is the resolver's race test.
    server.add("slow.example.org", "A", "192.0.2.1")
    server.behave("slow.example.org", "A", delay=0.05)
    server.add("short.example.org", "TXT", '"x"', ttl=1)
    server.behave("broken.example.org", "MX", rcode="SERVFAIL")
    server.exists("empty.example.org")
    args = ["A", "slow.example.org", "TXT", "short.example.org", "MX", "broken.example.org",
            "AAAA", "empty.example.org", "A", "nx.example.org"]
    rounds, stats, proc = run(server, *args, timeout_ms=1000,
                              extra=["--threads", "8", "--repeat", "40"])
    assert rounds[0]["head"].endswith("runs=320 failures=0"), rounds[0]["head"]
    assert rounds[0]["lines"] == [
        "slow.example.org A OK",
        "short.example.org TXT OK",
        "broken.example.org MX TEMPFAIL",
        "empty.example.org AAAA NODATA",
        "nx.example.org A NXDOMAIN",
    ]
    # Answers were shared and cached: far fewer queries than questions.
    assert server.count("slow.example.org", "A") <= 2
    assert stats["queries_sent"] < 320 * 5 / 4


def test_authenticated_bit(server):
    server.authenticated = True
    server.add("secure.example.org", "A", "192.0.2.9")
    rounds, _, _ = run(server, "A", "secure.example.org")
    assert rounds[0]["lines"] == ["secure.example.org A OK 300 ad 192.0.2.9"]
