"""The HTTP listener (core/http_listener) against the real toasterd, and
`toasterctl dns`.

Each client set-up document is fetched the way its client fetches it
(http.client, curl) and parsed with a real parser (ElementTree, plistlib),
its ports checked against the listeners the daemon was given; then the
refusals (404, 405, 400, 411, 413, 417, 431, 505, 408) with raw bytes, a
client that vanishes mid-request, pipelined garbage, 1,000 requests in a
row without a leaked descriptor, and HTTPS on https_listen. `toasterctl dns`
is checked record by record: the MTA-STS id against the policy the daemon
serves, the DKIM record by verifying a dkimpy signature with it.
"""

import base64
import hashlib
import http.client
import os
import plistlib
import re
import shutil
import select
import socket
import ssl
import struct
import subprocess
import time
import uuid
import xml.etree.ElementTree as ET

import dkim
import pytest
from cryptography.hazmat.primitives import serialization

from conftest import TOASTERCTL, TOASTERD, free_ports, wait_until

AUTODISCOVER_REQUEST = (
    '<?xml version="1.0" encoding="utf-8"?>\r\n'
    '<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/'
    'requestschema/2006">\r\n'
    "  <Request>\r\n"
    "    <EMailAddress>%s</EMailAddress>\r\n"
    "    <AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/"
    "responseschema/2006a</AcceptableResponseSchema>\r\n"
    "  </Request>\r\n"
    "</Autodiscover>\r\n"
)
OUTLOOK_NS = "{http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a}"


def port_of(t):
    return t.ports["http_listen"]


def request(t, method, path, host="example.com", body=None, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", port_of(t), timeout=10)
    try:
        all_headers = {"Host": host}
        all_headers.update(headers or {})
        conn.request(method, path, body=body, headers=all_headers)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def raw(t, data, timeout=10.0, port=None):
    """Send bytes, read until the server closes; returns everything read."""
    with socket.create_connection(("127.0.0.1", port or port_of(t)), timeout=timeout) as s:
        s.sendall(data)
        chunks = []
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)


def status_of(response):
    m = re.match(rb"HTTP/1\.1 (\d{3}) ", response)
    assert m, response[:200]
    return int(m.group(1))


def check_common_headers(headers, body):
    assert headers["connection"] == "close"
    assert headers["server"] == "toaster"
    assert int(headers["content-length"]) == len(body)
    assert re.match(r"^[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT$",
                    headers["date"])


# ---- the documents -------------------------------------------------------------


def thunderbird_servers(body):
    root = ET.fromstring(body)
    assert root.tag == "clientConfig" and root.get("version") == "1.1"
    provider = root.find("emailProvider")
    servers = []
    for tag in ("incomingServer", "outgoingServer"):
        for s in provider.findall(tag):
            servers.append((s.get("type"), s.findtext("hostname"), int(s.findtext("port")),
                            s.findtext("socketType"), s.findtext("username"),
                            s.findtext("authentication")))
    return provider.get("id"), servers


def test_thunderbird_autoconfig(toaster):
    t = toaster
    status, headers, body = request(
        t, "GET", "/.well-known/autoconfig/mail/config-v1.1.xml?emailaddress=alice%40example.com")
    assert status == 200, body
    check_common_headers(headers, body)
    assert headers["content-type"].startswith("application/xml")
    domain, servers = thunderbird_servers(body)
    assert domain == "example.com"
    p = t.ports
    assert servers == [
        ("imap", "mx.example.com", p["imaps_listen"], "SSL", "%EMAILADDRESS%", "password-cleartext"),
        ("imap", "mx.example.com", p["imap_listen"], "STARTTLS", "%EMAILADDRESS%",
         "password-cleartext"),
        ("smtp", "mx.example.com", p["submissions_listen"], "SSL", "%EMAILADDRESS%",
         "password-cleartext"),
        ("smtp", "mx.example.com", p["submission_listen"], "STARTTLS", "%EMAILADDRESS%",
         "password-cleartext"),
    ]
    # Thunderbird's other URL, the domain taken from the Host it asked
    # (example.org is hosted through users_file).
    status, _, body = request(t, "GET", "/mail/config-v1.1.xml",
                              host="autoconfig.example.org:%d" % port_of(t))
    assert status == 200
    assert thunderbird_servers(body)[0] == "example.org"
    # Unencoded '@' as Thunderbird sends it; upper case domain.
    status, _, body = request(t, "GET", "/mail/config-v1.1.xml?emailaddress=bob@EXAMPLE.com")
    assert status == 200 and thunderbird_servers(body)[0] == "example.com"
    # HEAD: the same header as GET, no body.
    get = request(t, "GET", "/mail/config-v1.1.xml", host="autoconfig.example.org")
    status, head_headers, head_body = request(t, "HEAD", "/mail/config-v1.1.xml",
                                              host="autoconfig.example.org")
    assert status == 200 and head_body == b""
    assert int(head_headers["content-length"]) == len(get[2])
    assert head_headers["content-type"] == get[1]["content-type"]
    # Domains we do not host, and addresses that are not addresses.
    assert request(t, "GET", "/mail/config-v1.1.xml?emailaddress=a@elsewhere.test")[0] == 404
    assert request(t, "GET", "/mail/config-v1.1.xml", host="autoconfig.elsewhere.test")[0] == 404
    assert request(t, "GET", "/mail/config-v1.1.xml", host="[::1]")[0] == 404
    for bad in ("alice", "a@b@example.com", "%3Cx%3E@example.com", "a%00@example.com",
                "a..b@example.com", "x" * 300 + "@example.com"):
        assert request(t, "GET", "/mail/config-v1.1.xml?emailaddress=" + bad)[0] == 400, bad


def test_thunderbird_with_curl(toaster):
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    out = subprocess.run(
        ["curl", "-sS", "-i", "--max-time", "10", "-H", "Host: autoconfig.example.com",
         "http://127.0.0.1:%d/mail/config-v1.1.xml?emailaddress=alice%%40example.com"
         % port_of(toaster)], capture_output=True, check=True)
    head, _, body = out.stdout.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert thunderbird_servers(body)[0] == "example.com"


def test_autodiscover(toaster):
    t = toaster
    body = (AUTODISCOVER_REQUEST % "carol@example.org").encode()
    status, headers, answer = request(t, "POST", "/autodiscover/autodiscover.xml", body=body,
                                      headers={"Content-Type": "text/xml"})
    assert status == 200, answer
    check_common_headers(headers, answer)
    root = ET.fromstring(answer)
    account = root.find(OUTLOOK_NS + "Response/" + OUTLOOK_NS + "Account")
    assert account.findtext(OUTLOOK_NS + "AccountType") == "email"
    assert account.findtext(OUTLOOK_NS + "Action") == "settings"
    protocols = {p.findtext(OUTLOOK_NS + "Type"): p for p in account.findall(OUTLOOK_NS + "Protocol")}
    assert set(protocols) == {"IMAP", "SMTP"}
    for kind, port in (("IMAP", t.ports["imaps_listen"]), ("SMTP", t.ports["submissions_listen"])):
        p = protocols[kind]
        assert p.findtext(OUTLOOK_NS + "Server") == "mx.example.com"
        assert int(p.findtext(OUTLOOK_NS + "Port")) == port
        assert p.findtext(OUTLOOK_NS + "LoginName") == "carol@example.org"
        assert p.findtext(OUTLOOK_NS + "SSL") == "on"
    # The path in Outlook's other spelling; curl, which sends Expect: 100-continue
    # for bodies over 1 KiB (padded here to make it do so).
    padded = (AUTODISCOVER_REQUEST % "alice@example.com").replace(
        "<Request>", "<Request>" + " " * 2000).encode()
    status, _, answer = request(t, "POST", "/Autodiscover/Autodiscover.xml", body=padded)
    assert status == 200 and b"<LoginName>alice@example.com</LoginName>" in answer
    if shutil.which("curl") is not None:
        out = subprocess.run(
            ["curl", "-sS", "--max-time", "10", "-H", "Expect: 100-continue",
             "--data-binary", "@-", "-H", "Content-Type: text/xml",
             "http://127.0.0.1:%d/autodiscover/autodiscover.xml" % port_of(t)],
            input=padded, capture_output=True, check=True)
        assert b"<LoginName>alice@example.com</LoginName>" in out.stdout
    # Refusals: not hosted, no address, wrong method.
    body = (AUTODISCOVER_REQUEST % "x@elsewhere.test").encode()
    assert request(t, "POST", "/autodiscover/autodiscover.xml", body=body)[0] == 404
    assert request(t, "POST", "/autodiscover/autodiscover.xml", body=b"<Autodiscover/>")[0] == 400
    status, headers, _ = request(t, "GET", "/autodiscover/autodiscover.xml")
    assert status == 405 and headers["allow"] == "POST"


def test_expect_continue(toaster):
    body = (AUTODISCOVER_REQUEST % "alice@example.com").encode()
    head = ("POST /autodiscover/autodiscover.xml HTTP/1.1\r\nHost: autodiscover.example.com\r\n"
            "Expect: 100-continue\r\nContent-Length: %d\r\n\r\n" % len(body)).encode()
    with socket.create_connection(("127.0.0.1", port_of(toaster)), timeout=10) as s:
        s.sendall(head)
        interim = s.recv(4096)
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        s.sendall(body)
        answer = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            answer += chunk
    assert status_of(answer) == 200 and b"<LoginName>alice@example.com</LoginName>" in answer


def test_mobileconfig(toaster):
    t = toaster
    status, headers, body = request(t, "GET", "/apple/mobileconfig?emailaddress=dave%40example.org")
    assert status == 200, body
    check_common_headers(headers, body)
    assert headers["content-type"] == "application/x-apple-aspen-config"
    assert headers["content-disposition"] == 'attachment; filename="example.org.mobileconfig"'
    profile = plistlib.loads(body)
    assert profile["PayloadType"] == "Configuration"
    assert profile["PayloadUUID"] == str(uuid.uuid5(
        uuid.NAMESPACE_URL, "toaster:mobileconfig:dave@example.org:profile")).upper()
    (account,) = profile["PayloadContent"]
    assert account["PayloadType"] == "com.apple.mail.managed"
    assert account["PayloadUUID"] == str(uuid.uuid5(
        uuid.NAMESPACE_URL, "toaster:mobileconfig:dave@example.org:account")).upper()
    assert account["EmailAddress"] == "dave@example.org"
    assert account["IncomingMailServerHostName"] == "mx.example.com"
    assert account["IncomingMailServerPortNumber"] == t.ports["imaps_listen"]
    assert account["IncomingMailServerUseSSL"] is True
    assert account["OutgoingMailServerPortNumber"] == t.ports["submissions_listen"]
    assert account["IncomingMailServerUsername"] == "dave@example.org"
    # The same address, the same bytes (the UUIDs are derived, not random).
    assert request(t, "GET", "/apple/mobileconfig?emailaddress=dave%40example.org")[2] == body
    assert request(t, "GET", "/apple/mobileconfig")[0] == 400
    assert request(t, "GET", "/apple/mobileconfig?emailaddress=a@elsewhere.test")[0] == 404
    status, headers, _ = request(t, "POST", "/apple/mobileconfig", body=b"x")
    assert status == 405 and headers["allow"] == "GET, HEAD"


def test_mta_sts_policy(make_toaster):
    t = make_toaster(config={"mta_sts_mode": "enforce",
                             "mta_sts_mx": "mx1.example.com, *.backup.example.net",
                             "mta_sts_max_age": "1d"})
    status, headers, body = request(t, "GET", "/.well-known/mta-sts.txt",
                                    host="MTA-STS.example.com")
    assert status == 200
    check_common_headers(headers, body)
    assert headers["content-type"].startswith("text/plain")
    assert body == (b"version: STSv1\r\nmode: enforce\r\nmx: mx1.example.com\r\n"
                    b"mx: *.backup.example.net\r\nmax_age: 86400\r\n")
    assert request(t, "GET", "/.well-known/mta-sts.txt", host="mta-sts.example.org")[0] == 200
    for host in ("mta-sts.elsewhere.test", "example.com", "mta-sts.", "www.example.com"):
        assert request(t, "GET", "/.well-known/mta-sts.txt", host=host)[0] == 404, host


def test_mta_sts_defaults_and_bad_config(make_toaster):
    t = make_toaster()
    status, _, body = request(t, "GET", "/.well-known/mta-sts.txt", host="mta-sts.example.com")
    assert status == 200
    assert body == (b"version: STSv1\r\nmode: testing\r\nmx: mx.example.com\r\n"
                    b"max_age: 604800\r\n")
    # A policy that cannot be: the start fails with the reason.
    bad = make_toaster(config={"mta_sts_mx": "mx_1.example.com"}, start=False)
    with pytest.raises(AssertionError):
        bad.start()
    assert "mta_sts: an mx pattern is not a host name" in bad.log()
    conf = bad.root / "bad.conf"
    conf.write_text("data_dir = %s\nmta_sts_mode = sometimes\n" % bad.data_dir)
    out = subprocess.run([TOASTERD, "-n", "-c", str(conf)], capture_output=True, text=True)
    assert out.returncode == 1 and "mta_sts_mode" in out.stderr


# ---- refusals -------------------------------------------------------------------


def test_status_codes(toaster):
    t = toaster
    assert request(t, "GET", "/")[0] == 404
    assert request(t, "GET", "/nothing/here")[0] == 404
    status, headers, body = request(t, "PUT", "/mail/config-v1.1.xml", body=b"x")
    assert status == 405 and headers["allow"] == "GET, HEAD, POST"
    check_common_headers(headers, body)
    status, headers, _ = request(t, "DELETE", "/")
    assert status == 405 and headers["allow"] == "GET, HEAD, POST"
    cases = [
        (b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505),
        (b"GET / HTTP/1.1\r\n\r\n", 400),                                # no Host
        (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
        (b"GET / HTTP/1.1\nHost: a\n\n", 400),                           # bare LF
        (b"GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n", 400),       # obs-fold
        (b"GET / HTTP/1.1\r\nHost: a\r\nX : a\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nHost: a\r\n\r\n", 411),
        (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 411),
        (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"
         b"0\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc", 400),
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 70000\r\n\r\n", 413),
        (b"POST / HTTP/1.1\r\nHost: a\r\nExpect: magic\r\nContent-Length: 1\r\n\r\nx", 417),
        (b"GET /" + b"a" * 3000 + b" HTTP/1.1\r\nHost: a\r\n\r\n", 414),
        (b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + b"b" * 5000 + b"\r\n\r\n", 431),
        (b"GET / HTTP/1.1\r\nHost: a\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(120))
         + b"\r\n", 431),
        (b"GET / HTTP/1.1\r\nHost: a\r\n" + b"X-Many: " + b"m" * 3000 + b"\r\n" + b"X-More: "
         + b"m" * 3000 + b"\r\n" + b"X-Most: " + b"m" * 3000 + b"\r\n\r\n", 431),
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 64, 400),  # a TLS hello
    ]
    for data, want in cases:
        answer = raw(t, data)
        assert status_of(answer) == want, (data[:60], answer[:120])
        head, _, body = answer.partition(b"\r\n\r\n")
        fields = head.split(b"\r\n")[1:]
        assert b"Connection: close" in fields
        assert b"Content-Length: %d" % len(body) in fields


def test_read_timeout(make_toaster):
    t = make_toaster(config={"http_timeout": "1s"})
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port_of(t)), timeout=10) as s:
        s.sendall(b"GET /mail/config-v1.1.xml HTTP/1.1\r\nHost: examp")
        answer = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            answer += chunk
    elapsed = time.monotonic() - started
    assert status_of(answer) == 408
    assert 0.8 <= elapsed < 5, elapsed
    # A client that trickles a header line every 0.3 s never lets a read
    # time out, but the whole request still has its one deadline.
    started = time.monotonic()
    answer = b""
    with socket.create_connection(("127.0.0.1", port_of(t)), timeout=10) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: a\r\n")
        while time.monotonic() < started + 6:
            readable, _, _ = select.select([s], [], [], 0.3)
            if readable:
                chunk = s.recv(4096)
                if not chunk:
                    break
                answer += chunk
                continue
            try:
                s.sendall(b"X-Slow: 1\r\n")
            except OSError:
                break
    elapsed = time.monotonic() - started
    assert status_of(answer) == 408
    assert 0.8 <= elapsed < 3, elapsed


def test_half_request_and_vanish(toaster):
    t = toaster
    for partial in (b"GET /mail/config-v1.1.xml HT", b"POST /autodiscover/autodiscover.xml "
                    b"HTTP/1.1\r\nHost: a\r\nContent-Length: 500\r\n\r\n<Auto", b"G"):
        s = socket.create_connection(("127.0.0.1", port_of(t)), timeout=10)
        s.sendall(partial)
        s.close()
    # Reset instead of a close, too.
    s = socket.create_connection(("127.0.0.1", port_of(t)), timeout=10)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.sendall(b"GET / HTTP/1.1\r\nHo")
    s.close()
    assert request(t, "GET", "/.well-known/mta-sts.txt", host="mta-sts.example.com")[0] == 200
    assert t.is_running()


def test_pipelined_garbage(toaster):
    answer = raw(toaster, b"GET /.well-known/mta-sts.txt HTTP/1.1\r\nHost: mta-sts.example.com"
                 b"\r\n\r\n" + b"GET / HTTP/1.1\r\nHost: a\r\n\r\n" + b"\x00\xffgarbage\r\n" * 50)
    assert status_of(answer) == 200
    # One answer, then the connection closed: nothing after the first request is read.
    assert answer.count(b"HTTP/1.1 ") == 1
    head, _, body = answer.partition(b"\r\n\r\n")
    assert body.startswith(b"version: STSv1\r\n")
    # Garbage first: one 400, then close.
    answer = raw(toaster, b"\x00\x01\x02 garbage garbage\r\n" * 20)
    assert status_of(answer) == 400 and answer.count(b"HTTP/1.1 ") == 1


def test_http10_and_absolute_form(toaster):
    answer = raw(toaster, b"GET /.well-known/mta-sts.txt HTTP/1.0\r\n"
                 b"Host: mta-sts.example.com\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
    # HTTP/1.0 needs no Host: then there is no mta-sts host to answer for.
    assert status_of(raw(toaster, b"GET /.well-known/mta-sts.txt HTTP/1.0\r\n\r\n")) == 404
    # The absolute form: its authority is the host (RFC 9112 3.2.2).
    answer = raw(toaster, b"GET http://mta-sts.example.org/.well-known/mta-sts.txt HTTP/1.1\r\n"
                 b"Host: ignored.example\r\n\r\n")
    assert status_of(answer) == 200 and b"version: STSv1" in answer
    # HEAD of an error: its header, no body.
    answer = raw(toaster, b"HEAD /nothing HTTP/1.1\r\nHost: a\r\n\r\n")
    head, _, body = answer.partition(b"\r\n\r\n")
    assert status_of(answer) == 404 and body == b""
    assert b"Content-Length: 14" in head.split(b"\r\n")


def test_stop_with_requests_open(make_toaster):
    t = make_toaster()
    idle = socket.create_connection(("127.0.0.1", port_of(t)), timeout=10)
    half = socket.create_connection(("127.0.0.1", port_of(t)), timeout=10)
    half.sendall(b"POST /autodiscover/autodiscover.xml HTTP/1.1\r\nHost: a\r\n"
                 b"Content-Length: 100\r\n\r\n<Auto")
    time.sleep(0.2)
    started = time.monotonic()
    t.stop()  # exits 0 with a clean log, without waiting out the timeouts
    assert time.monotonic() - started < 5
    for s in (idle, half):
        assert s.recv(4096) == b""
        s.close()


def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def test_thousand_requests(toaster):
    t = toaster
    paths = ["/mail/config-v1.1.xml?emailaddress=alice%40example.com",
             "/apple/mobileconfig?emailaddress=bob%40example.com", "/nothing"]
    for i in range(50):  # warm up: every allocator cache filled once
        request(t, "GET", paths[i % 3])
    fds_before = fd_count(t.pid)
    rss_before = rss_kib(t.pid)
    body = (AUTODISCOVER_REQUEST % "alice@example.com").encode()
    for i in range(1000):
        if i % 4 == 3:
            status = request(t, "POST", "/autodiscover/autodiscover.xml", body=body)[0]
            assert status == 200
        else:
            status = request(t, "GET", paths[i % 4 % 3])[0]
            assert status == (404 if i % 4 == 2 else 200)
    assert wait_until(lambda: fd_count(t.pid) <= fds_before, timeout=5), \
        (fd_count(t.pid), fds_before)
    # Loose: a leak of even a few hundred bytes a request would show as 4x this.
    assert rss_kib(t.pid) - rss_before < 16 * 1024


def test_https_listen(make_toaster):
    (port,) = free_ports(1)
    t = make_toaster(config={"https_listen": "127.0.0.1:%d" % port})
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=ctx)
    try:
        conn.request("GET", "/.well-known/mta-sts.txt", headers={"Host": "mta-sts.example.com"})
        resp = conn.getresponse()
        assert resp.status == 200
        assert resp.read().startswith(b"version: STSv1\r\n")
    finally:
        conn.close()
    # Plaintext to the TLS port is not HTTP there.
    try:
        answer = raw(t, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", port=port)
    except ConnectionResetError:
        answer = b""
    assert not answer.startswith(b"HTTP/")


# ---- toasterctl dns -------------------------------------------------------------


def dns_records(text):
    """{(name, type): [rdata...]} from the zone lines; comments dropped."""
    records = {}
    for line in text.splitlines():
        if not line or line.startswith(";"):
            continue
        name, klass, rtype, rdata = line.split(None, 3)
        assert klass == "IN" and name.endswith("."), line
        records.setdefault((name, rtype), []).append(rdata)
    return records


def txt_value(rdata):
    parts = re.findall(r'"((?:[^"\\]|\\.)*)"', rdata)
    assert parts and all(len(p) <= 255 for p in parts)
    return "".join(parts)


def test_toasterctl_dns(make_toaster, tmp_path):
    key_dir = tmp_path / "keys"
    key_dir.mkdir()
    for selector, extra in (("s2026", []), ("ed", ["--ed25519"])):
        out = subprocess.run([TOASTERCTL, "dkim", "keygen", "example.com", selector, "--dir",
                              str(key_dir)] + extra, capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
    t = make_toaster(config={
        "dkim_key": ["example.com s2026 %s/example.com.s2026.pem" % key_dir,
                     "example.com ed %s/example.com.ed.pem" % key_dir,
                     "example.org other %s/example.com.s2026.pem" % key_dir],
        "mta_sts_mode": "enforce",
    })
    out = subprocess.run([TOASTERCTL, "-c", str(t.config_file), "dns", "Example.COM."],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    r = dns_records(out.stdout)
    p = t.ports
    assert r[("example.com.", "MX")] == ["10 mx.example.com."]
    assert [txt_value(v) for v in r[("example.com.", "TXT")]] == ["v=spf1 mx -all"]
    assert [txt_value(v) for v in r[("_dmarc.example.com.", "TXT")]] == \
        ["v=DMARC1; p=none; rua=mailto:postmaster@example.com"]
    assert [txt_value(v) for v in r[("_smtp._tls.example.com.", "TXT")]] == \
        ["v=TLSRPTv1; rua=mailto:postmaster@example.com"]
    # The MTA-STS id is the policy the daemon serves, hashed.
    status, _, policy = request(t, "GET", "/.well-known/mta-sts.txt", host="mta-sts.example.com")
    assert status == 200 and b"mode: enforce" in policy
    assert [txt_value(v) for v in r[("_mta-sts.example.com.", "TXT")]] == \
        ["v=STSv1; id=" + hashlib.sha256(policy).hexdigest()[:20]]
    assert r[("mta-sts.example.com.", "CNAME")] == ["mx.example.com."]
    srv = {name: rdata for (name, rtype), (rdata,) in r.items() if rtype == "SRV"}
    assert srv == {
        "_submissions._tcp.example.com.": "0 1 %d mx.example.com." % p["submissions_listen"],
        "_submission._tcp.example.com.": "10 1 %d mx.example.com." % p["submission_listen"],
        "_imaps._tcp.example.com.": "0 1 %d mx.example.com." % p["imaps_listen"],
        "_imap._tcp.example.com.": "10 1 %d mx.example.com." % p["imap_listen"],
        "_pop3s._tcp.example.com.": "0 0 0 .",
        "_pop3._tcp.example.com.": "0 0 0 .",
        "_autodiscover._tcp.example.com.": "0 1 443 mx.example.com.",
    }
    assert r[("autoconfig.example.com.", "CNAME")] == ["mx.example.com."]
    assert r[("autodiscover.example.com.", "CNAME")] == ["mx.example.com."]
    # DKIM: exactly the two keys of example.com; each record verifies a
    # signature dkimpy makes with the private key.
    assert ("other._domainkey.example.com.", "TXT") not in r
    message = (b"From: alice@example.com\r\nTo: bob@example.com\r\nSubject: dns\r\n"
               b"Date: Sat, 05 Dec 2026 07:00:00 +0000\r\nMessage-ID: <dns@example.com>\r\n"
               b"\r\nHello.\r\n")
    for selector, pem, algorithm in (("s2026", "example.com.s2026.pem", b"rsa-sha256"),
                                     ("ed", "example.com.ed.pem", b"ed25519-sha256")):
        (rdata,) = r[("%s._domainkey.example.com." % selector, "TXT")]
        record = txt_value(rdata).encode()
        private = (key_dir / pem).read_bytes()
        if algorithm == b"ed25519-sha256":
            key = serialization.load_pem_private_key(private, password=None)
            private = base64.b64encode(key.private_bytes(
                serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                serialization.NoEncryption()))
        signature = dkim.sign(message, selector.encode(), b"example.com", private,
                              signature_algorithm=algorithm, include_headers=[b"from", b"subject"])
        name = ("%s._domainkey.example.com." % selector).encode()
        assert dkim.verify(signature + message,
                           dnsfunc=lambda q, timeout=5: record if q == name else None)
        # A record of another key does not verify it.
        other = r[("ed._domainkey.example.com." if selector == "s2026"
                   else "s2026._domainkey.example.com.", "TXT")][0]
        try:
            verified = dkim.verify(signature + message,
                                   dnsfunc=lambda q, timeout=5: txt_value(other).encode())
        except Exception:  # dkimpy lets the crypto library's refusal through
            verified = False
        assert not verified
    # A domain we do not host, a non-name, a missing key file.
    out = subprocess.run([TOASTERCTL, "-c", str(t.config_file), "dns", "elsewhere.test"],
                         capture_output=True, text=True)
    assert out.returncode == 1 and "not a domain toasterd hosts" in out.stderr
    assert out.stdout == ""
    out = subprocess.run([TOASTERCTL, "-c", str(t.config_file), "dns", "bad_name!"],
                         capture_output=True, text=True)
    assert out.returncode == 2
    (key_dir / "example.com.ed.pem").unlink()
    out = subprocess.run([TOASTERCTL, "-c", str(t.config_file), "dns", "example.com"],
                         capture_output=True, text=True)
    assert out.returncode == 1 and "example.com.ed.pem" in out.stderr


def test_toasterctl_dns_without_dkim_and_https(make_toaster):
    (port,) = free_ports(1)
    t = make_toaster(config={"https_listen": "127.0.0.1:%d" % port,
                             "mta_sts_mx": "mx1.example.com"})
    out = subprocess.run([TOASTERCTL, "-c", str(t.config_file), "dns", "example.org"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    r = dns_records(out.stdout)
    assert not any(name.endswith("._domainkey.example.org.") for name, _ in r)
    assert "no dkim_key line for example.org" in out.stdout
    assert r[("_autodiscover._tcp.example.org.", "SRV")] == ["0 1 %d mx.example.com." % port]
    status, _, policy = request(t, "GET", "/.well-known/mta-sts.txt", host="mta-sts.example.org")
    assert b"mx: mx1.example.com\r\n" in policy
    assert [txt_value(v) for v in r[("_mta-sts.example.org.", "TXT")]] == \
        ["v=STSv1; id=" + hashlib.sha256(policy).hexdigest()[:20]]
