"""toasterctl against the same configuration files the daemon reads: `config`
prints the effective settings, `resolve` answers what the SMTP server would
decide for an address (mailbox and Maildir path, or the refusal), with a
non-zero exit status for refusals."""

import subprocess

from conftest import LISTEN_KEYS, TOASTERCTL


def ctl(toaster, *args):
    toaster.config_file.write_text(toaster.config_text())
    return subprocess.run([TOASTERCTL, "-c", str(toaster.config_file), *args],
                          capture_output=True, text=True, timeout=30)


def test_config_prints_effective_settings(make_toaster):
    toaster = make_toaster(start=False, config={"recipient_limit": "42"})
    toaster.ports = {key: 20000 + i for i, key in enumerate(LISTEN_KEYS)}  # not started
    out = ctl(toaster, "config")
    assert out.returncode == 0, out.stderr
    assert "recipient_limit = 42\n" in out.stdout
    assert "smtp_listen = 127.0.0.1:20000\n" in out.stdout
    assert "data_dir = %s\n" % toaster.data_dir in out.stdout


def test_resolve_matches_the_server(make_toaster):
    toaster = make_toaster(start=False)
    toaster.ports = {key: 20000 + i for i, key in enumerate(LISTEN_KEYS)}  # not started
    out = ctl(toaster, "resolve", "team@example.com", "alice+tag@example.com", "postmaster")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    maildir = toaster.data_dir / "mail" / "example.com"
    assert "team@example.com: mailbox alice@example.com %s/alice/Maildir" % maildir in lines
    assert "team@example.com: mailbox bob@example.com %s/bob/Maildir" % maildir in lines
    assert any(l.startswith("alice+tag@example.com: mailbox alice@example.com ") for l in lines)
    assert any(l.startswith("postmaster: mailbox postmaster@mx.example.com ") for l in lines)

    out = ctl(toaster, "resolve", "nobody@example.com")
    assert out.returncode == 1
    assert out.stdout == "nobody@example.com: unknown user (550 5.1.1)\n"
    out = ctl(toaster, "resolve", "someone@far.away")
    assert out.returncode == 1
    assert "relay denied (554 5.7.1)" in out.stdout


def test_bad_configuration_names_file_and_line(make_toaster):
    toaster = make_toaster(start=False)
    toaster.config_file.write_text("data_dir = /tmp/x\nno_such_key = 1\n")
    out = subprocess.run([TOASTERCTL, "-c", str(toaster.config_file), "config"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 1
    assert "%s:2: unknown key 'no_such_key'" % toaster.config_file in out.stderr
