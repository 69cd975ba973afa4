"""DKIM interoperability with Debian's python3-dkim (dkimpy): messages signed
by our signer (tests/tools/dkim_tool, the same filters/dkim code the daemon
runs) verify with dkim.verify(), and messages dkimpy signs verify with ours,
for rsa-sha256 (1024 and 2048 bits) and ed25519-sha256 in each pair of
canonicalizations; a changed header or body fails on both sides. Then
`toasterctl dkim keygen`: the key file is 0600 and loads, the printed TXT
record is split into strings of at most 255 bytes and its p= is the key's
public key, and dkimpy verifies a message signed with the new key against
that record. DNS answers come from a table (no network)."""

import base64
import os
import re
import stat
import subprocess
from pathlib import Path

import pytest

from conftest import TOASTERCTL

dkim = pytest.importorskip("dkim")

DKIM_TOOL = os.environ.get("DKIM_TOOL") or "/work/main/build/tests/dkim_tool"

pytestmark = pytest.mark.skipif(
    not os.access(DKIM_TOOL, os.X_OK),
    reason=f"DKIM_TOOL ({DKIM_TOOL}) is not built: meson compile tests/dkim_tool",
)

DOMAIN = "example.org"

MESSAGE = (
    b"From: Alice Example <alice@example.org>\r\n"
    b"To: Bob <bob@example.net>,\r\n"
    b"  Carol <carol@example.net>\r\n"
    b"Cc: dave@example.net\r\n"
    b"Subject: Quarterly   numbers\t(draft)\r\n"
    b"Date: Fri, 04 Dec 2026 10:00:00 +0000\r\n"
    b"Message-ID: <interop-1@example.org>\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: 8bit\r\n"
    b"X-Mailer: test\r\n"
    b"\r\n"
    b"Hello Bob,  \r\n"
    b"\r\n"
    b"the numbers:\t 1  2   3\r\n"
    + b"a line of text that goes on for a while\r\n" * 200
    + b"--\r\n"
    b"Alice\r\n"
    b"\r\n"
    b"\r\n"
)


def openssl_key(path, kind):
    if kind == "ed25519":
        args = ["openssl", "genpkey", "-algorithm", "ED25519", "-out", str(path)]
    else:
        bits = kind.removeprefix("rsa")
        args = ["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt",
                f"rsa_keygen_bits:{bits}", "-out", str(path)]
    subprocess.run(args, check=True, capture_output=True, timeout=120)


def public_der(path):
    return subprocess.run(["openssl", "pkey", "-in", str(path), "-pubout", "-outform", "DER"],
                          check=True, capture_output=True, timeout=30).stdout


def key_record(path, kind):
    """The record as a DNS operator would publish it, made with openssl (not our code)."""
    der = public_der(path)
    if kind == "ed25519":
        return b"v=DKIM1; k=ed25519; p=" + base64.b64encode(der[-32:])
    return b"v=DKIM1; k=rsa; p=" + base64.b64encode(der)


def dkimpy_private(path, kind):
    """dkimpy takes RSA keys as PEM and Ed25519 keys as the base64 of the raw 32 bytes."""
    if kind == "ed25519":
        der = subprocess.run(["openssl", "pkey", "-in", str(path), "-outform", "DER"],
                             check=True, capture_output=True, timeout=30).stdout
        return base64.b64encode(der[-32:])
    return Path(path).read_bytes()


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    root = tmp_path_factory.mktemp("dkim-keys")
    made = {}
    for kind in ("rsa1024", "rsa2048", "ed25519"):
        path = root / f"{kind}.pem"
        openssl_key(path, kind)
        made[kind] = (path, key_record(path, kind))
    return made


def dns_table(records):
    table = {f"{name}.".encode(): text for name, text in records.items()}

    def dnsfunc(name, timeout=5):
        return table.get(name)

    return dnsfunc


def tool_sign(message_path, key_path, selector, canon, extra=()):
    result = subprocess.run(
        [DKIM_TOOL, "sign", "--key", str(key_path), "--domain", DOMAIN, "--selector", selector,
         "--canon", canon, *extra, str(message_path)],
        capture_output=True, timeout=60)
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout


def tool_verify(tmp_path, signed, records):
    path = tmp_path / "verify.eml"
    path.write_bytes(signed)
    args = [DKIM_TOOL, "verify"]
    for i, (name, text) in enumerate(records.items()):
        record = tmp_path / f"record{i}.txt"
        record.write_bytes(text)
        args += ["--dns", f"{name}={record}"]
    result = subprocess.run(args + [str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode in (0, 1), result.stderr
    return result.returncode, result.stdout.splitlines()


CANONS = ["relaxed/relaxed", "simple/simple", "relaxed/simple", "simple/relaxed"]


@pytest.mark.parametrize("kind", ["rsa1024", "rsa2048", "ed25519"])
@pytest.mark.parametrize("canon", CANONS)
def test_we_sign_dkimpy_verifies(tmp_path, keys, kind, canon):
    key_path, record = keys[kind]
    message_path = tmp_path / "message.eml"
    message_path.write_bytes(MESSAGE)
    field = tool_sign(message_path, key_path, "sel", canon)
    assert field.startswith(b"DKIM-Signature: v=1; a=")
    assert field.endswith(b"\r\n") and b"\n" not in field.replace(b"\r\n", b"")
    assert all(len(line) <= 78 for line in field.split(b"\r\n"))
    assert f"c={canon};".encode() in field
    algorithm = b"ed25519-sha256" if kind == "ed25519" else b"rsa-sha256"
    assert b"a=" + algorithm + b";" in field
    # The oversigned fields appear once more than the message has them.
    h = re.search(rb"h=([^;]*);", field).group(1).replace(b"\r\n\t", b"").split(b":")
    assert h.count(b"From") == 2 and h.count(b"To") == 2 and h.count(b"Cc") == 2
    assert h.count(b"Reply-To") == 0 and h.count(b"MIME-Version") == 2
    dnsfunc = dns_table({f"sel._domainkey.{DOMAIN}": record})
    assert dkim.verify(field + MESSAGE, dnsfunc=dnsfunc) is True
    # Changed after signing: dkimpy says no.
    assert dkim.verify(field + MESSAGE.replace(b"numbers:", b"Numbers:"), dnsfunc=dnsfunc) is False
    assert dkim.verify(field + MESSAGE.replace(b"Quarterly", b"Yearly"), dnsfunc=dnsfunc) is False
    assert dkim.verify(b"Cc: eve@example.net\r\n" + field + MESSAGE, dnsfunc=dnsfunc) is False


def test_we_sign_with_expiry(tmp_path, keys):
    key_path, record = keys["ed25519"]
    message_path = tmp_path / "message.eml"
    message_path.write_bytes(MESSAGE)
    field = tool_sign(message_path, key_path, "sel", "relaxed/relaxed",
                      ["--expire", "86400"])
    t = int(re.search(rb"t=(\d+);", field).group(1))
    x = int(re.search(rb"x=(\d+);", field).group(1))
    assert x == t + 86400
    assert dkim.verify(field + MESSAGE, dnsfunc=dns_table({f"sel._domainkey.{DOMAIN}": record}))


@pytest.mark.parametrize("kind", ["rsa1024", "rsa2048", "ed25519"])
@pytest.mark.parametrize("canon", CANONS)
def test_dkimpy_signs_we_verify(tmp_path, keys, kind, canon):
    key_path, record = keys[kind]
    header, body = canon.encode().split(b"/")
    algorithm = b"ed25519-sha256" if kind == "ed25519" else b"rsa-sha256"
    field = dkim.sign(MESSAGE, b"sel", DOMAIN.encode(), dkimpy_private(key_path, kind),
                      canonicalize=(header, body), signature_algorithm=algorithm)
    records = {f"sel._domainkey.{DOMAIN}": record}
    rc, lines = tool_verify(tmp_path, field + MESSAGE, records)
    assert rc == 0, lines
    assert lines == [
        f"dkim=pass header.d={DOMAIN} header.i=@{DOMAIN} header.s=sel "
        f"header.a={algorithm.decode()} header.b={lines[0].split('header.b=')[1]}"
    ]
    b_value = re.search(rb"\bb=([^;]*)$", field.rstrip(), re.S).group(1)
    b_value = re.sub(rb"\s", b"", b_value).decode()
    assert lines[0].split("header.b=")[1].strip('"') == b_value[:8]
    # Tampered: ours says fail too.
    rc, lines = tool_verify(tmp_path, field + MESSAGE.replace(b"Alice\r\n", b"Mallory\r\n"),
                            records)
    assert rc == 1 and lines[0].startswith('dkim=fail reason="body hash mismatch"'), lines
    rc, lines = tool_verify(tmp_path, field + MESSAGE.replace(b"Subject: Q", b"Subject: q"),
                            records)
    assert rc == 1 and lines[0].startswith('dkim=fail reason="signature did not verify"'), lines


def test_dkimpy_body_length_and_two_signatures(tmp_path, keys):
    rsa_path, rsa_record = keys["rsa2048"]
    ed_path, ed_record = keys["ed25519"]
    first = dkim.sign(MESSAGE, b"rsa", DOMAIN.encode(), dkimpy_private(rsa_path, "rsa2048"),
                      canonicalize=(b"relaxed", b"relaxed"), length=True)
    assert b"l=" in first
    second = dkim.sign(first + MESSAGE, b"ed", DOMAIN.encode(),
                       dkimpy_private(ed_path, "ed25519"),
                       signature_algorithm=b"ed25519-sha256")
    records = {f"rsa._domainkey.{DOMAIN}": rsa_record, f"ed._domainkey.{DOMAIN}": ed_record}
    rc, lines = tool_verify(tmp_path, second + first + MESSAGE, records)
    assert rc == 0 and len(lines) == 2, lines
    assert "header.s=ed " in lines[0] and "header.s=rsa " in lines[1]
    # Text appended after l=: the l= signature still passes, the other fails.
    rc, lines = tool_verify(tmp_path, second + first + MESSAGE + b"appended\r\n", records)
    assert rc == 1
    assert lines[0].startswith("dkim=fail") and lines[1].startswith("dkim=pass"), lines


def test_missing_key_and_revoked(tmp_path, keys):
    key_path, record = keys["rsa2048"]
    field = dkim.sign(MESSAGE, b"sel", DOMAIN.encode(), dkimpy_private(key_path, "rsa2048"))
    rc, lines = tool_verify(tmp_path, field + MESSAGE, {})
    assert rc == 1 and lines[0].startswith('dkim=permerror reason="no key for signature'), lines
    rc, lines = tool_verify(tmp_path, field + MESSAGE,
                            {f"sel._domainkey.{DOMAIN}": b"v=DKIM1; k=rsa; p="})
    assert rc == 1 and lines[0].startswith('dkim=permerror reason="key revoked'), lines


def txt_strings(line):
    """The character-strings of a zone-file TXT line."""
    return re.findall(r'"([^"]*)"', line)


@pytest.mark.parametrize("args,kind", [([], "rsa"), (["--bits", "1024"], "rsa"),
                                       (["--ed25519"], "ed25519")])
def test_toasterctl_keygen(tmp_path, args, kind):
    keydir = tmp_path / "keys"
    keydir.mkdir()
    result = subprocess.run([TOASTERCTL, "dkim", "keygen", "Example.ORG", "mail2026",
                             "--dir", str(keydir), *args],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    key_path = keydir / "example.org.mail2026.pem"
    assert key_path.exists()
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    assert [p.name for p in keydir.iterdir()] == [key_path.name]  # no temporary left
    txt = [line for line in lines if line.startswith("mail2026._domainkey.example.org. IN TXT ")]
    assert len(txt) == 1
    strings = txt_strings(txt[0])
    assert strings and all(len(s) <= 255 for s in strings)
    record = "".join(strings)
    assert record.startswith(f"v=DKIM1; k={kind}; p=")
    p = base64.b64decode(record.split("p=")[1])
    der = public_der(key_path)
    assert p == (der[-32:] if kind == "ed25519" else der)
    if args == ["--bits", "1024"]:
        assert "-----BEGIN PRIVATE KEY-----" in key_path.read_text()
    config_lines = [line for line in lines if line.startswith("dkim_key = ")]
    assert config_lines == [f"dkim_key = example.org mail2026 {key_path}"]
    # The key loads in our signer; dkimpy verifies against the printed record.
    message_path = tmp_path / "message.eml"
    message_path.write_bytes(MESSAGE)
    field = tool_sign(message_path, key_path, "mail2026", "relaxed/relaxed")
    dnsfunc = dns_table({"mail2026._domainkey.example.org": record.encode()})
    assert dkim.verify(field + MESSAGE, dnsfunc=dnsfunc) is True
    # A second run never replaces the key.
    again = subprocess.run([TOASTERCTL, "dkim", "keygen", "example.org", "mail2026",
                            "--dir", str(keydir), *args],
                           capture_output=True, text=True, timeout=120)
    assert again.returncode == 1 and "exists already" in again.stderr
    assert dkim.verify(field + MESSAGE, dnsfunc=dnsfunc) is True


def test_toasterctl_keygen_4096_splits_record(tmp_path):
    result = subprocess.run([TOASTERCTL, "dkim", "keygen", "example.org", "big", "--bits", "4096",
                             "--dir", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    txt = [line for line in result.stdout.splitlines() if " IN TXT " in line][0]
    strings = txt_strings(txt)
    assert len(strings) == 3 and [len(s) for s in strings[:2]] == [255, 255]


@pytest.mark.parametrize("args", [["example.org"], ["example.org", "s", "--bits", "512"],
                                  ["example.org", "s", "--bits", "8192"],
                                  ["exa mple.org", "s"], ["example.org", "s", "--ed25519",
                                                          "--bits", "2048"]])
def test_toasterctl_keygen_refuses(tmp_path, args):
    result = subprocess.run([TOASTERCTL, "dkim", "keygen", *args, "--dir", str(tmp_path)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert list(tmp_path.iterdir()) == []


def test_toasterctl_keygen_default_dir(tmp_path):
    """Without --dir the key goes under <data_dir>/dkim, made 0700."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    config = tmp_path / "toasterd.conf"
    config.write_text(f"data_dir = {data_dir}\n")
    result = subprocess.run([TOASTERCTL, "-c", str(config), "dkim", "keygen", "example.org",
                             "s1", "--ed25519"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    key_dir = data_dir / "dkim"
    assert stat.S_IMODE(key_dir.stat().st_mode) == 0o700
    key_path = key_dir / "example.org.s1.pem"
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    assert f"dkim_key = example.org s1 {key_path}" in result.stdout.splitlines()
