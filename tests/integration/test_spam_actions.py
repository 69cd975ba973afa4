"""The spam score's actions on real mail, with an operator's rules file:
below the add-header score the message carries X-Spam-Status: No; at it,
X-Spam-Flag: YES; at the rewrite-subject score its Subject is rewritten
in the stored file (the one edit that replaces a field); at the reject
score it is refused at DATA. The shipped etc/spam.rules loads.
"""
import smtplib
from pathlib import Path

import pytest

RULES = """\
# a test's own rules: one body rule per action level
body   TEST_MILD     3.0 mildly suspicious
body   TEST_LOUD     7.0 loudly suspicious
body   TEST_SUBJECT  9.0 rewrite my subject
body   TEST_REJECT  20.0 refuse this outright
"""


def message(subject, text):
    return ("From: <x@remote.test>\r\nTo: <carol@example.org>\r\nSubject: %s\r\n"
            "Date: Fri, 04 Dec 2026 10:00:00 +0000\r\nMessage-ID: <%s@remote.test>\r\n\r\n"
            "%s\r\n" % (subject, subject.replace(" ", "."), text)).encode()


def send(t, subject, text):
    with smtplib.SMTP("127.0.0.1", t.port, timeout=30) as s:
        s.ehlo("client.remote.test")
        s.sendmail("x@remote.test", ["carol@example.org"], message(subject, text))


def stored(t, marker):
    found = [m for m in t.messages("carol@example.org") if marker in m]
    assert len(found) == 1, marker
    return found[0]


@pytest.fixture
def scored(make_toaster, tmp_path):
    rules = tmp_path / "spam.rules"
    rules.write_text(RULES)
    return make_toaster(config={"spam_rules_file": str(rules),
                                "spam_rewrite_subject_score": "8", "clamav": "no"})


def test_actions_by_score(scored):
    send(scored, "plain", "nothing to see")
    send(scored, "mild", "this is mildly suspicious text")
    send(scored, "loud", "this is loudly suspicious text")
    send(scored, "subject", "please rewrite my subject now")
    with pytest.raises(smtplib.SMTPDataError) as info:
        send(scored, "refused", "refuse this outright please")
    assert info.value.smtp_code == 554 and b"5.7.1" in info.value.smtp_error

    mild = stored(scored, b"mildly")
    assert b"X-Spam-Status: No, score=3.00" in mild and b"X-Spam-Flag" not in mild
    assert b"TEST_MILD(3.00)" in mild
    loud = stored(scored, b"loudly")
    assert b"X-Spam-Flag: YES\r\n" in loud and b"X-Spam-Status: Yes, score=7.00" in loud
    assert b"Subject: loud\r\n" in loud
    rewritten = stored(scored, b"rewrite my subject")
    assert b"\r\nSubject: ***SPAM*** subject\r\n" in rewritten
    assert rewritten.count(b"\r\nSubject: ") == 1  # replaced, not added
    assert b"X-Spam-Flag: YES\r\n" in rewritten
    # The stored size is the rewritten file's.
    for path in scored.delivered("carol@example.org"):
        assert ",S=%d," % path.stat().st_size in path.name


def test_shipped_rules_load(make_toaster):
    shipped = Path(__file__).resolve().parents[2] / "etc" / "spam.rules"
    t = make_toaster(config={"spam_rules_file": str(shipped), "clamav": "no"})
    send(t, "lottery", "Congratulations, you have won the national lottery jackpot today")
    assert b"LOTTERY_WINNER(2.00)" in stored(t, b"lottery jackpot")
