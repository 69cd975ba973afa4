"""A loopback DNS server for tests, made with dnspython: answers from a table.

    from dns_server import DNSServer
    with DNSServer() as server:            # UDP and TCP on 127.0.0.1, a free port
        server.add("example.org", "MX", "10 mx.example.org.", ttl=300)
        server.add("example.org", "TXT", '"v=spf1 " "-all"')
        server.add("www.example.org", "CNAME", "example.org.")
        server.exists("empty.example.org")       # NODATA for every type
        server.behave("slow.example.org", "A", delay=0.5)
        server.behave("broken.example.org", "A", rcode="SERVFAIL")  # or REFUSED, FORMERR
        server.behave("silent.example.org", "A", drop=True)         # never answers
        ... server.address  -> "127.0.0.1:PORT"
        ... server.count("example.org", "MX"), server.total(), server.query_ids

A name that is not in the table is NXDOMAIN, a listed name without the asked
type is NODATA; both carry an SOA in the authority section whose TTL and
MINIMUM are `soa_ttl` and `soa_minimum` (RFC 2308: the negative TTL is the
smaller). Names are case-insensitive. Answers larger than the UDP size the
query offers (512 bytes without EDNS) come back truncated (TC), and in full
over TCP. `authenticated = True` sets the AD bit in every answer. Every query
received, answered or not, is counted by (name, type). Later tests (SPF,
outbound delivery) reuse this fixture.
"""

import collections
import socket
import socketserver
import struct
import threading
import time

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset


def _key(name):
    return str(name).lower().rstrip(".") + "."


class DNSServer:
    def __init__(self, soa_ttl=3600, soa_minimum=60, host="127.0.0.1"):
        self.soa_ttl = soa_ttl
        self.soa_minimum = soa_minimum
        self.authenticated = False
        self._records = {}  # (name., TYPE) -> (ttl, [rdata text])
        self._names = set()
        self._behaviors = {}  # (name., TYPE) -> dict
        self._counts = collections.Counter()
        self.query_ids = []  # the ID of every query, in order
        self._lock = threading.Lock()
        server = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self):
                server._serve_tcp(self.request)

        socketserver.ThreadingTCPServer.allow_reuse_address = True
        # A UDP port the kernel picks may be taken for TCP: try another.
        for attempt in range(50):
            self._udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self._udp.bind((host, 0))
            self._udp.settimeout(0.1)  # so close() is noticed
            self.port = self._udp.getsockname()[1]
            try:
                self._tcp = socketserver.ThreadingTCPServer((host, self.port), Handler)
                break
            except OSError:
                self._udp.close()
                if attempt == 49:
                    raise
        self._tcp.daemon_threads = True
        self._threads = [
            threading.Thread(target=self._serve_udp, daemon=True),
            threading.Thread(target=self._tcp.serve_forever, daemon=True),
        ]
        self._stopping = False
        for t in self._threads:
            t.start()
        self.address = "%s:%d" % (host, self.port)

    # ---- the table ---------------------------------------------------------

    def add(self, name, rtype, *rdatas, ttl=300):
        """Records of one type for a name (rdata in zone-file text)."""
        with self._lock:
            key = (_key(name), rtype.upper())
            old_ttl, old = self._records.get(key, (ttl, []))
            self._records[key] = (ttl, old + list(rdatas))
            self._names.add(_key(name))

    def exists(self, name):
        """Make name exist without records (NODATA for every type)."""
        with self._lock:
            self._names.add(_key(name))

    def behave(self, name, rtype, delay=0.0, drop=False, rcode=None, no_edns=False):
        """How to treat questions for (name, type): answer late, never,
        with an error rcode, or (no_edns) as a server from before EDNS
        (FORMERR to queries with an OPT record, over UDP)."""
        with self._lock:
            self._behaviors[(_key(name), rtype.upper())] = {
                "delay": delay,
                "drop": drop,
                "rcode": rcode,
                "no_edns": no_edns,
            }

    def clear(self):
        with self._lock:
            self._records.clear()
            self._names.clear()
            self._behaviors.clear()
            self._counts.clear()

    def count(self, name, rtype):
        with self._lock:
            return self._counts[(_key(name), rtype.upper())]

    def total(self):
        with self._lock:
            return sum(self._counts.values())

    # ---- answering ---------------------------------------------------------

    def _soa(self, qname):
        labels = qname.labels
        zone = dns.name.Name(labels[-3:]) if len(labels) >= 3 else dns.name.root
        return dns.rrset.from_text(
            zone, self.soa_ttl, "IN", "SOA",
            "ns.%s hostmaster.%s 1 3600 600 86400 %d" % (zone, zone, self.soa_minimum))

    def _answer(self, query):
        """(behavior, response message) for a parsed query."""
        response = dns.message.make_response(query)
        response.flags |= dns.flags.RA
        if self.authenticated:
            response.flags |= dns.flags.AD
        else:
            response.flags &= ~dns.flags.AD
        if not query.question:
            response.set_rcode(dns.rcode.FORMERR)
            return {}, response
        question = query.question[0]
        qname = question.name
        rtype = dns.rdatatype.to_text(question.rdtype)
        with self._lock:
            key = (_key(qname), rtype)
            self._counts[key] += 1
            self.query_ids.append(query.id)
            behavior = dict(self._behaviors.get(key, {}))
            if behavior.get("rcode"):
                response.set_rcode(dns.rcode.from_text(behavior["rcode"]))
                return behavior, response
            name = qname
            for _ in range(8):
                cname = self._records.get((_key(name), "CNAME"))
                if cname is None or rtype == "CNAME":
                    break
                response.answer.append(
                    dns.rrset.from_text_list(name, cname[0], "IN", "CNAME", cname[1]))
                name = dns.name.from_text(cname[1][0])
            found = self._records.get((_key(name), rtype))
            if found is not None:
                response.answer.append(
                    dns.rrset.from_text_list(name, found[0], "IN", rtype, found[1]))
            elif _key(name) in self._names:
                response.authority.append(self._soa(name))
            else:
                response.set_rcode(dns.rcode.NXDOMAIN)
                response.authority.append(self._soa(name))
        return behavior, response

    def _serve_udp(self):
        while not self._stopping:
            try:
                data, peer = self._udp.recvfrom(65535)
            except socket.timeout:
                continue
            except OSError:
                return
            try:
                query = dns.message.from_wire(data)
            except Exception:
                continue
            behavior, response = self._answer(query)
            if behavior.get("drop"):
                continue
            if behavior.get("no_edns") and query.edns >= 0:
                # An old server: FORMERR, and no OPT record in the answer.
                response = dns.message.make_response(query)
                response.use_edns(False)
                response.set_rcode(dns.rcode.FORMERR)
            limit = max(512, query.payload) if query.edns >= 0 else 512
            try:
                wire = response.to_wire(max_size=limit)
            except dns.exception.TooBig:
                short = dns.message.make_response(query)
                short.flags |= dns.flags.TC
                wire = short.to_wire()
            delay = behavior.get("delay", 0.0)
            if delay:
                threading.Timer(delay, self._send_udp, (wire, peer)).start()
            else:
                self._send_udp(wire, peer)

    def _send_udp(self, wire, peer):
        try:
            self._udp.sendto(wire, peer)
        except OSError:
            pass

    def _serve_tcp(self, sock):
        while True:
            head = _recv_exact(sock, 2)
            if head is None:
                return
            data = _recv_exact(sock, struct.unpack("!H", head)[0])
            if data is None:
                return
            try:
                query = dns.message.from_wire(data)
            except Exception:
                return
            behavior, response = self._answer(query)
            if behavior.get("drop"):
                continue
            if behavior.get("delay"):
                time.sleep(behavior["delay"])
            wire = response.to_wire(max_size=65535)
            sock.sendall(struct.pack("!H", len(wire)) + wire)

    def close(self):
        self._stopping = True
        self._tcp.shutdown()
        self._tcp.server_close()
        self._threads[0].join(timeout=2)
        self._udp.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _recv_exact(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            return None
        data += chunk
    return data
