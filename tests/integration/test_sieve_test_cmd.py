"""`toasterctl sieve-test SCRIPT MESSAGE [-f FROM] [-a TO] [-u USER]`: the
example scripts of RFC 5228, 5230, 5232 and 5429 run over small messages,
and the printed actions compared line by line with what the RFCs say they
do; a script that does not compile prints its errors with their lines and
exits 2; a script that fails at run time prints the implicit keep and
exits 1; with -u the user's folders, :addrbook lists and :personal scripts
are the ones under that user's home. No daemon runs: toasterctl reads the
same configuration file the daemon would."""

import subprocess

from conftest import LISTEN_KEYS, TOASTERCTL

RFC5228_SCRIPT = r'''# RFC 5228 section 9
require "fileinto";
if header :is "Sender" "owner-ietf-mta-filters@imc.org"
        {
            fileinto "filter";  # move to "filter" mailbox
        }
        #
        # Keep all messages to or from people in my company
        #
        elsif address :DOMAIN :is ["From", "To"] "example.com"
        {
            keep;               # keep in "In" mailbox
        }
        #
        # Try and catch unsolicited email.  If a message is not to me,
        # or it contains a subject known to be spam, file it away.
        #
        elsif anyof (NOT address :all :contains
                       ["To", "Cc", "Bcc"] "me@example.com",
                     header :matches "subject"
                       ["*make*money*fast*", "*university*dipl*mas*"])
        {
            fileinto "spam";   # move to "spam" mailbox
        }
        else
        {
            # Move all other (non-company) mail to "personal"
            # mailbox.
            fileinto "personal";
        }
'''


def message(headers, body="Hello.\r\n"):
    return ("\r\n".join(headers) + "\r\n\r\n" + body).encode()


def ctl(toaster, *args):
    toaster.ports = {key: 20000 + i for i, key in enumerate(LISTEN_KEYS)}  # not started
    toaster.config_file.write_text(toaster.config_text())
    return subprocess.run([TOASTERCTL, "-c", str(toaster.config_file), *args],
                          capture_output=True, text=True, timeout=30)


def sieve_test(toaster, tmp_path, script, msg, *options):
    script_path = tmp_path / "script.sieve"
    message_path = tmp_path / "message.eml"
    script_path.write_text(script)
    message_path.write_bytes(msg)
    return ctl(toaster, "sieve-test", str(script_path), str(message_path), *options)


def test_rfc5228_example(make_toaster, tmp_path):
    toaster = make_toaster(start=False)
    cases = [
        (["Sender: owner-ietf-mta-filters@imc.org", "From: x@imc.org", "To: me@example.com",
          "Subject: list"], 'fileinto "filter"'),
        (["From: colleague@example.com", "To: me@example.org", "Subject: lunch"], "keep"),
        (["From: stranger@example.org", "To: someone@example.org", "Subject: hi"],
         'fileinto "spam"'),
        # To me (in Cc), but the subject is known spam.
        (["From: stranger@example.org", "To: list@example.org", "Cc: me@example.com",
          "Subject: Make lots of MONEY fast"], 'fileinto "spam"'),
        # To me, from outside the company: "personal" (the domain test is
        # :is, so example.com.au is not the company).
        (["From: friend@example.org", "To: me@example.com.au", "Subject: hello"],
         'fileinto "personal"'),
    ]
    for headers, want in cases:
        out = sieve_test(toaster, tmp_path, RFC5228_SCRIPT, message(headers))
        assert out.returncode == 0, (headers, out.stderr)
        assert out.stdout == want + "\n", headers


def test_discard_redirect_reject(make_toaster, tmp_path):
    toaster = make_toaster(start=False)
    msg = message(["From: idiot@example.com", "To: me@example.com", "Subject: x"])
    # RFC 5228 4.4
    out = sieve_test(toaster, tmp_path,
                     'if header :contains ["from"] ["idiot@example.com"] {\n  discard;\n}\n', msg)
    assert (out.returncode, out.stdout) == (0, "discard\n"), out.stderr
    # RFC 5228 4.2; the address printed as a Sieve string
    out = sieve_test(toaster, tmp_path, 'redirect "bart@example.com";\n', msg)
    assert (out.returncode, out.stdout) == (0, 'redirect "bart@example.com"\n'), out.stderr
    # RFC 5429 2.1, a reason with a quote and a backslash escaped on output
    out = sieve_test(toaster, tmp_path,
                     'require ["reject"];\n'
                     'if address :is "from" "idiot@example.com" {\n'
                     '  reject "I no longer accept mail from \\"you\\" \\\\ here";\n}\n', msg)
    assert out.returncode == 0, out.stderr
    assert out.stdout == 'reject "I no longer accept mail from \\"you\\" \\\\ here"\n'
    # Not matching: the implicit keep alone.
    other = message(["From: friend@example.org", "Subject: x"])
    out = sieve_test(toaster, tmp_path,
                     'if header :contains ["from"] ["idiot@example.com"] {\n  discard;\n}\n', other)
    assert (out.returncode, out.stdout) == (0, "keep\n"), out.stderr


def test_imap4flags(make_toaster, tmp_path):
    toaster = make_toaster(start=False)
    # RFC 5232 section 7 (the boss example).
    script = ('require ["imap4flags", "fileinto", "variables"];\n'
              'if header :contains "from" "boss@frobnitzm.example.edu" {\n'
              '    setflag "flagvar" "\\\\Flagged";\n'
              '    fileinto :flags "${flagvar}" "INBOX.From Boss";\n'
              '}\n')
    msg = message(["From: The Boss <boss@frobnitzm.example.edu>", "Subject: now"])
    out = sieve_test(toaster, tmp_path, script, msg)
    assert out.returncode == 0, out.stderr
    assert out.stdout == 'fileinto "INBOX.From Boss" :flags "\\\\Flagged"\n'
    # Flags on the implicit keep.
    script = ('require "imap4flags";\n'
              'if header :contains "Subject" "urgent" { addflag "\\\\Flagged"; }\n')
    out = sieve_test(toaster, tmp_path, script, message(["Subject: urgent: read"]))
    assert (out.returncode, out.stdout) == (0, 'keep :flags "\\\\Flagged"\n'), out.stderr


def test_vacation(make_toaster, tmp_path):
    toaster = make_toaster(start=False)
    # RFC 5230 section 3 (first example), then with :subject.
    script = ('require "vacation";\n'
              'if header :contains "subject" "cyrus" {\n'
              '    vacation "I\'m out -- send mail to cyrus-bugs";\n'
              '} else {\n'
              '    vacation "I\'m out -- call me at +1 304 555 0123";\n'
              '}\n')
    msg = message(["From: someone@example.org", "To: me@example.com",
                   "Subject: cyrus", " bugs"])
    out = sieve_test(toaster, tmp_path, script, msg, "-f", "someone@example.org", "-a",
                     "me@example.com")
    assert out.returncode == 0, out.stderr
    assert out.stdout == 'vacation "someone@example.org" "Auto: cyrus bugs"\nkeep\n'
    script = 'require "vacation";\nvacation :days 7 :subject "Gone \\"fishing\\"" "Back soon";\n'
    out = sieve_test(toaster, tmp_path, script, msg, "-f", "someone@example.org", "-a",
                     "me@example.com")
    assert out.returncode == 0, out.stderr
    assert out.stdout == 'vacation "someone@example.org" "Gone \\"fishing\\""\nkeep\n'


def test_compile_error_exits_2(make_toaster, tmp_path):
    toaster = make_toaster(start=False)
    msg = message(["Subject: x"])
    # fileinto without require (RFC 5228 3.2): an error on line 2.
    out = sieve_test(toaster, tmp_path, '# no require\nfileinto "x";\n', msg)
    assert out.returncode == 2
    assert out.stdout == ""
    lines = out.stderr.splitlines()
    assert lines and lines[0].startswith("line 2: "), out.stderr
    # Two errors, each on its own line with its number.
    out = sieve_test(toaster, tmp_path, 'keep;\nfoo;\nkeep;\nbar;\n', msg)
    assert out.returncode == 2
    numbers = [l.split(":")[0] for l in out.stderr.splitlines()]
    assert numbers[:2] == ["line 2", "line 4"], out.stderr
    # An unfinished block.
    out = sieve_test(toaster, tmp_path, 'if true {\n  keep;\n', msg)
    assert out.returncode == 2
    assert out.stderr.startswith("line "), out.stderr
    # Usage errors are 2 as well; a missing message is 1.
    (tmp_path / "script.sieve").write_text("keep;\n")
    out = ctl(toaster, "sieve-test", str(tmp_path / "script.sieve"))
    assert out.returncode == 2
    out = ctl(toaster, "sieve-test", str(tmp_path / "script.sieve"), str(tmp_path / "nothere"))
    assert out.returncode == 1


def test_runtime_error_is_keep_exit_1(make_toaster, tmp_path):
    toaster = make_toaster(start=False, config={"sieve_max_redirects": "1"})
    script = 'redirect "a@example.net";\nredirect "b@example.net";\n'
    out = sieve_test(toaster, tmp_path, script, message(["Subject: x"]))
    assert out.returncode == 1
    assert out.stdout == "keep\n"
    assert "line 2" in out.stderr


def test_user_environment(make_toaster, tmp_path):
    toaster = make_toaster(start=False)
    home = toaster.data_dir / "mail" / "example.com" / "alice"
    maildir = home / "Maildir"
    for sub in ("cur", "new", "tmp", ".Work/cur", ".Work/new", ".Work/tmp"):
        (maildir / sub).mkdir(parents=True, exist_ok=True)
    (home / "sieve" / "lists").mkdir(parents=True)
    (home / "sieve" / "lists" / "friends").write_text("# friends\n@friends.example\n")
    (home / "sieve" / "extra.sieve").write_text(
        'if header :contains "subject" "extra" { redirect "extra@example.net"; }\n')
    script = ('require ["mailbox", "fileinto", "extlists", "include", "copy"];\n'
              'if mailboxexists "Work" { fileinto :copy "Work"; }\n'
              'if mailboxexists "Play" { fileinto :copy "Play"; }\n'
              'if address :list "from" ":addrbook:friends" { redirect :copy "f@example.net"; }\n'
              'include :personal "extra";\n')
    msg = message(["From: pal@friends.example", "To: alice@example.com", "Subject: extra"])
    out = sieve_test(toaster, tmp_path, script, msg, "-u", "alice@example.com")
    assert out.returncode == 0, out.stderr
    assert out.stdout == ('fileinto "Work"\nredirect "f@example.net"\n'
                          'redirect "extra@example.net"\n')
    # Another user has none of that: no folder, and the list is unknown.
    out = sieve_test(toaster, tmp_path, script, msg, "-u", "bob@example.com")
    assert out.returncode == 1
    assert out.stdout == "keep\n"
    # Not a user at all.
    out = sieve_test(toaster, tmp_path, script, msg, "-u", "nobody@example.com")
    assert out.returncode == 1
    assert "not a local user" in out.stderr
