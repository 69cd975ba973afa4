"""DANE (RFC 7672) and MTA-STS (RFC 8461) in the outbound relay, end to end:
the real toasterd relays mail for remote.test to smtp_sink.SmtpSink on
loopback, with the DNS override zone as the only DNS ($SECURE yes marks
answers DNSSEC-validated, so DANE can apply) and, for MTA-STS, a loopback
HTTPS server (http.server + ssl, a certificate for mta-sts.remote.test from
a test CA that smtp_tls_ca_file trusts; mta_sts_port points at it).

DANE: a TLSA record matching the sink's key delivers over TLS; one that
does not match, or a server without STARTTLS, defers; an unsigned zone is
"may" under dane and a deferral under dane-only. MTA-STS: an enforce
policy delivers over verified TLS to a listed MX, defers an MX not listed
or a server without STARTTLS; testing delivers and logs; a policy that
cannot be fetched (404, a certificate for another name) is no policy; the
policy is fetched once and then cached. Every address is on 127.0.0.0/8.
"""

import hashlib
import http.server
import ssl
import subprocess
import threading
import time
from pathlib import Path

import pytest

from conftest import wait_until
from smtp_sink import SmtpSink
from test_relay import (DELIVERY_S, log_line, queue_ids, relay_toaster, send, show,
                        wait_deferred, wait_queue_empty)


# ---- certificates ------------------------------------------------------------------


def _openssl(*args):
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def make_ca(directory):
    """A test CA (EC P-256): returns (cert, key) paths."""
    directory = Path(directory)
    cert, key = directory / "ca.pem", directory / "ca.key"
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2",
             "-subj", "/CN=toaster test CA", "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    return cert, key


def make_leaf(directory, name, ca):
    """A certificate for name signed by ca: returns (cert, key) paths."""
    directory = Path(directory)
    cert, key, csr = (directory / (name + ".pem"), directory / (name + ".key"),
                      directory / (name + ".csr"))
    ext = directory / (name + ".ext")
    ext.write_text("subjectAltName=DNS:%s\nbasicConstraints=CA:FALSE\n" % name)
    _openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-keyout", str(key), "-out", str(csr), "-subj", "/CN=" + name)
    _openssl("x509", "-req", "-in", str(csr), "-CA", str(ca[0]), "-CAkey", str(ca[1]),
             "-CAcreateserial", "-out", str(cert), "-days", "2", "-extfile", str(ext))
    return cert, key


def spki_sha256(cert):
    """The hex SHA-256 of cert's SubjectPublicKeyInfo: TLSA "3 1 1" data."""
    pub = subprocess.run(["openssl", "x509", "-in", str(cert), "-pubkey", "-noout"],
                         check=True, capture_output=True).stdout
    der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "DER"], input=pub,
                         check=True, capture_output=True).stdout
    return hashlib.sha256(der).hexdigest()


@pytest.fixture
def sink():
    """A sink without STARTTLS."""
    with SmtpSink() as s:
        yield s


@pytest.fixture
def pki(tmp_path):
    """A CA, the MX's certificate (mx.remote.test) and the policy host's."""
    directory = tmp_path / "pki"
    directory.mkdir()
    ca = make_ca(directory)
    return {
        "ca": ca,
        "mx": make_leaf(directory, "mx.remote.test", ca),
        "sts": make_leaf(directory, "mta-sts.remote.test", ca),
        "other": make_leaf(directory, "other.remote.test", ca),
    }


# ---- the policy server ----------------------------------------------------------------


class PolicyServer:
    """HTTPS on 127.0.0.1 serving /.well-known/mta-sts.txt (RFC 8461 3.3)."""

    def __init__(self, cert, key, body, status=200, content_type="text/plain"):
        self.body = body.encode() if isinstance(body, str) else body
        self.status = status
        self.content_type = content_type
        self.requests = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                outer.requests.append((self.path, self.headers.get("Host")))
                ok = self.path == "/.well-known/mta-sts.txt" and outer.status == 200
                body = outer.body if ok else b"not here\n"
                self.send_response(outer.status if ok else 404)
                self.send_header("Content-Type", outer.content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(cert), str(key))
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


def policy(mode, *mx, max_age=86400):
    return "version: STSv1\r\nmode: %s\r\n%smax_age: %d\r\n" % (
        mode, "".join("mx: %s\r\n" % m for m in mx), max_age)


def sts_zone(policy_id="20261205"):
    return ["remote.test MX 10 mx.remote.test", "mx.remote.test A 127.0.0.1",
            '_mta-sts.remote.test TXT "v=STSv1; id=%s;"' % policy_id,
            "mta-sts.remote.test A 127.0.0.1"]


def dane_zone(port, tlsa_hex, secure=True):
    return (["$SECURE yes"] if secure else []) + [
        "remote.test MX 10 mx.remote.test", "mx.remote.test A 127.0.0.1",
        "_%d._tcp.mx.remote.test TLSA 3 1 1 %s" % (port, tlsa_hex)]


def not_delivered(sink, t, qid, text):
    """qid is deferred with text in its last reply and the sink got nothing."""
    wait_deferred(t, qid, "bob@remote.test", text)
    time.sleep(0.5)
    assert sink.messages == [], sink.messages
    assert qid in queue_ids(t)


# ---- DANE --------------------------------------------------------------------------------


def test_dane_match_delivers_over_tls(make_toaster, pki):
    cert, key = pki["other"]  # its name does not matter for DANE-EE(3)
    with SmtpSink(tls_cert=cert, tls_key=key) as sink:
        t = relay_toaster(make_toaster, sink.port, zone=dane_zone(sink.port, spki_sha256(cert)),
                          smtp_tls_security="dane", smtp_mta_sts="no")
        qid, _ = send(t, "dane")
        assert sink.wait_for(1, DELIVERY_S), t.log()[-3000:]
        wait_queue_empty(t)
        assert sink.messages[0].is_tls is True


def test_dane_mismatch_defers(make_toaster, pki):
    cert, key = pki["mx"]
    with SmtpSink(tls_cert=cert, tls_key=key) as sink:
        wrong = spki_sha256(pki["other"][0])
        t = relay_toaster(make_toaster, sink.port, zone=dane_zone(sink.port, wrong),
                          smtp_tls_security="dane", smtp_mta_sts="no",
                          smtp_tls_ca_file=str(pki["ca"][0]))  # a valid chain is not enough
        qid, _ = send(t, "dane mismatch")
        not_delivered(sink, t, qid, "TLS")  # the handshake fails: the records do not match


def test_dane_without_starttls_defers(make_toaster, sink, pki):
    t = relay_toaster(make_toaster, sink.port,
                      zone=dane_zone(sink.port, spki_sha256(pki["mx"][0])),
                      smtp_tls_security="dane", smtp_mta_sts="no")
    qid, _ = send(t, "dane no starttls")
    not_delivered(sink, t, qid, "TLS is required")


def test_dane_insecure_zone_is_may(make_toaster, sink, pki):
    zone = dane_zone(sink.port, spki_sha256(pki["mx"][0]), secure=False)
    t = relay_toaster(make_toaster, sink.port, zone=zone, smtp_tls_security="dane",
                      smtp_mta_sts="no")
    qid, _ = send(t, "dane unsigned")
    assert sink.wait_for(1, DELIVERY_S), t.log()[-3000:]
    wait_queue_empty(t)
    assert sink.messages[0].is_tls is False  # the sink offers no STARTTLS: may


def test_dane_only_insecure_zone_defers(make_toaster, sink, pki):
    zone = dane_zone(sink.port, spki_sha256(pki["mx"][0]), secure=False)
    t = relay_toaster(make_toaster, sink.port, zone=zone, smtp_tls_security="dane-only",
                      smtp_mta_sts="no")
    qid, _ = send(t, "dane-only unsigned")
    not_delivered(sink, t, qid, "4.7.5")
    assert "not DNSSEC-validated" in show(t, qid) or "no DNSSEC-validated" in show(t, qid)


# ---- MTA-STS ------------------------------------------------------------------------------


def sts_toaster(make_toaster, sink, pki, server, policy_id="20261205", **config):
    return relay_toaster(make_toaster, sink.port, zone=sts_zone(policy_id),
                         smtp_tls_ca_file=str(pki["ca"][0]), mta_sts_port=server.port,
                         mta_sts_fetch_timeout="5s", **config)


def test_mta_sts_enforce_delivers_verified_and_caches(make_toaster, pki):
    cert, key = pki["mx"]
    with SmtpSink(tls_cert=cert, tls_key=key) as sink, \
            PolicyServer(*pki["sts"], policy("enforce", "mx.remote.test")) as server:
        t = sts_toaster(make_toaster, sink, pki, server)
        qid, _ = send(t, "sts enforce")
        assert sink.wait_for(1, DELIVERY_S), t.log()[-3000:]
        wait_queue_empty(t)
        assert sink.messages[0].is_tls is True
        assert server.requests == [("/.well-known/mta-sts.txt",
                                    "mta-sts.remote.test:%d" % server.port)]
        send(t, "sts enforce, cached")
        assert sink.wait_for(2, DELIVERY_S), t.log()[-3000:]
        wait_queue_empty(t)
        assert len(server.requests) == 1  # same id, unexpired: the cache


def test_mta_sts_enforce_mx_not_listed_defers(make_toaster, pki):
    cert, key = pki["mx"]
    with SmtpSink(tls_cert=cert, tls_key=key) as sink, \
            PolicyServer(*pki["sts"], policy("enforce", "mx2.remote.test")) as server:
        t = sts_toaster(make_toaster, sink, pki, server)
        qid, _ = send(t, "sts not listed")
        not_delivered(sink, t, qid, "MTA-STS enforce")


def test_mta_sts_enforce_skips_unlisted_mx(make_toaster, pki):
    """The better MX (127.0.0.2) is not in the policy: never connected to;
    the listed one (127.0.0.1, the same port) gets the mail over TLS."""
    cert, key = pki["mx"]
    with SmtpSink(tls_cert=cert, tls_key=key) as listed, \
            SmtpSink(host="127.0.0.2", port=listed.port) as unlisted, \
            PolicyServer(*pki["sts"], policy("enforce", "mx.remote.test")) as server:
        zone = sts_zone() + ["remote.test MX 5 mx2.remote.test", "mx2.remote.test A 127.0.0.2"]
        t = relay_toaster(make_toaster, listed.port, zone=zone,
                          smtp_tls_ca_file=str(pki["ca"][0]), mta_sts_port=server.port)
        send(t, "sts skips mx2")
        assert listed.wait_for(1, DELIVERY_S), t.log()[-3000:]
        wait_queue_empty(t)
        assert listed.messages[0].is_tls is True
        assert unlisted.connections == 0 and unlisted.messages == []


def test_mta_sts_enforce_needs_verified_tls(make_toaster, sink, pki):
    """The sink offers no STARTTLS: enforce makes it verify, so no delivery."""
    with PolicyServer(*pki["sts"], policy("enforce", "*.remote.test")) as server:
        t = sts_toaster(make_toaster, sink, pki, server)
        qid, _ = send(t, "sts no tls")
        not_delivered(sink, t, qid, "TLS is required")
        assert len(server.requests) >= 1


def test_mta_sts_enforce_wrong_certificate_defers(make_toaster, pki):
    cert, key = pki["other"]  # valid chain, another name than mx.remote.test
    with SmtpSink(tls_cert=cert, tls_key=key) as sink, \
            PolicyServer(*pki["sts"], policy("enforce", "mx.remote.test")) as server:
        t = sts_toaster(make_toaster, sink, pki, server)
        qid, _ = send(t, "sts wrong name")
        not_delivered(sink, t, qid, "TLS")


def test_mta_sts_testing_delivers_and_logs(make_toaster, sink, pki):
    with PolicyServer(*pki["sts"], policy("testing", "mx2.remote.test")) as server:
        t = sts_toaster(make_toaster, sink, pki, server)
        send(t, "sts testing")
        assert sink.wait_for(1, DELIVERY_S), t.log()[-3000:]
        wait_queue_empty(t)
        log_line(t, "MTA-STS testing policy of remote.test", "mx.remote.test")


@pytest.mark.parametrize("case", ["404", "html", "wrong name"])
def test_mta_sts_unfetchable_is_no_policy(make_toaster, sink, pki, case):
    """A policy that cannot be had is no policy (RFC 8461 3.3): delivered in
    clear to a sink without TLS, though the body would say enforce."""
    cert_key = pki["other"] if case == "wrong name" else pki["sts"]
    with PolicyServer(*cert_key, policy("enforce", "mx2.remote.test"),
                      status=404 if case == "404" else 200,
                      content_type="text/html" if case == "html" else "text/plain") as server:
        t = sts_toaster(make_toaster, sink, pki, server)
        send(t, "sts " + case)
        assert sink.wait_for(1, DELIVERY_S), t.log()[-3000:]
        wait_queue_empty(t)
        log_line(t, "MTA-STS policy fetch for remote.test", "failed")
        if case != "wrong name":
            assert len(server.requests) == 1


def test_mta_sts_off(make_toaster, sink, pki):
    with PolicyServer(*pki["sts"], policy("enforce", "mx2.remote.test")) as server:
        t = sts_toaster(make_toaster, sink, pki, server, smtp_mta_sts="no")
        send(t, "sts off")
        assert sink.wait_for(1, DELIVERY_S), t.log()[-3000:]
        wait_queue_empty(t)
        assert server.requests == []
