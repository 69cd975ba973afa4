"""Roundcube end to end: Debian's Roundcube on toasterd, driven in headless
Chromium as a person would use it (conftest.py sets the three up).

The steps run in order in one browser session, each test building on the
one before (logged in, messages in place), and each leaves a screenshot:
  1. log in as alice: the message SMTP delivered to her is in the list;
  2. open it: its body is shown;
  3. write to bob, save a draft, send (submission with STARTTLS): bob's
     INBOX over IMAP has it, alice's Sent has Roundcube's copy, the draft
     is gone from Drafts;
  4. mark a message as junk (markasjunk's toolbar button): IMAP shows it in
     Junk and no longer in INBOX;
  5. Settings > Folders: create Invoices (.Invoices on disk, subscribed);
     Settings > Filters (managesieve plugin): a rule "Subject contains
     invoice -> move to Invoices"; the script is on disk where Pigeonhole
     keeps it and active; the next matching message SMTP delivers lands in
     Invoices, one that does not match stays in INBOX;
  6. the quick search in INBOX finds one message and hides the rest;
  7. a message to oneself with a 100 KB attachment: the download is the
     file byte for byte; Delete moves it to Trash, Empty expunges it; a
     folder renamed in Settings keeps its mail;
  8. Roundcube's logs hold no NO, BAD or failed SMTP reply from toasterd
     and no error of Roundcube's own.
Every wait is an explicit condition with a deadline; Roundcube's IMAP, SMTP
and ManageSieve conversations are copied next to the screenshots.
"""

import email.utils
import os
import re

import pytest
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.select import Select
from selenium.webdriver.support.ui import WebDriverWait

from conftest import PASSWORDS, wait_until

WAIT_S = 30  # one UI step (Roundcube's AJAX round trips through php -S)
MAIL_WAIT_S = 20  # a message on its way through toasterd

GREETING_SUBJECT = "Welcome to toaster"
GREETING_BODY = "This message came in by SMTP, line one."
TO_BOB_SUBJECT = "Lunch on Friday?"
TO_BOB_BODY = "Bob, shall we meet at noon? Alice"
JUNK_SUBJECT = "Cheap watches, best price"
JUNK_BODY = "Buy now, only today."
INVOICE_SUBJECT = "Your invoice 2026-117"
OTHER_SUBJECT = "Minutes of the meeting"
FILTER_NAME = "Invoices to their folder"
ATTACH_SUBJECT = "The quarterly report"

# A server reply of NO, BAD or BYE in Roundcube's IMAP log ("[3FFD] S: A0005
# NO ...", "[3FFD] S: * BYE ...") or ManageSieve log ("<sess> S: NO ...").
PROTOCOL_FAILURE = re.compile(r"[\]>] S: (\S+ )?(NO|BAD|BYE)\b")
LOGOUT_BYE = re.compile(r"S: \* BYE Logging out")


def message(sender, rcpt, subject, body):
    return ("From: <%s>\r\nTo: <%s>\r\nSubject: %s\r\nDate: %s\r\nMessage-ID: %s\r\n"
            "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n%s\r\n" % (
                sender, rcpt, subject, email.utils.formatdate(),
                email.utils.make_msgid(domain="client.example"), body)).encode()


def deliver(toaster, rcpt, subject, body, sender="carol@example.org"):
    """Send one message to toasterd's SMTP port (smtplib); returns the queue id."""
    return toaster.send(sender, rcpt, message(sender, rcpt, subject, body))


def imap_subjects(toaster, user, folder):
    """Subjects of the messages in a folder, read over IMAP as the user."""
    client = toaster.imap(user, PASSWORDS[user])
    try:
        typ, data = client.select('"%s"' % folder, readonly=True)
        assert typ == "OK", (folder, data)
        typ, data = client.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])") \
            if int(data[0]) else ("OK", [])
        assert typ == "OK", data
        subjects = []
        for item in data:
            if isinstance(item, tuple):
                m = re.search(rb"Subject: ?(.*?)\r?\n(?![ \t])", item[1], re.S)
                subjects.append(m.group(1).replace(b"\r\n", b"").decode() if m else "")
        return subjects
    finally:
        client.logout()


def wait_for_subject(toaster, user, folder, subject, timeout=MAIL_WAIT_S):
    ok = wait_until(lambda: subject in imap_subjects(toaster, user, folder), timeout, 0.2)
    assert ok, "%r not in %s's %s: %r" % (subject, user, folder,
                                          imap_subjects(toaster, user, folder))


def wait(browser, condition, timeout=WAIT_S, what=""):
    try:
        return WebDriverWait(browser, timeout, ignored_exceptions=(
            StaleElementReferenceException,)).until(condition)
    except TimeoutException:
        raise AssertionError("timed out waiting for %s on %s" % (what or condition,
                                                              browser.current_url))


def visible(browser, css, timeout=WAIT_S):
    return wait(browser, EC.visibility_of_element_located((By.CSS_SELECTOR, css)), timeout, css)


def list_row(browser, subject):
    """The message list row showing subject, or None."""
    for row in browser.find_elements(By.CSS_SELECTOR, "#messagelist tbody tr"):
        if subject in row.text:
            return row
    return None


def wait_row(browser, subject, present=True):
    if present:
        return wait(browser, lambda b: list_row(b, subject), what="row %r" % subject)
    return wait(browser, lambda b: list_row(b, subject) is None, what="no row %r" % subject)


def roundcube_idle(browser):
    """Roundcube has started (its first requests are sent from its init),
    has no request running and shows no 'Loading...' message: a command
    given while it is busy is dropped, as a person's click would be."""
    return browser.execute_script(
        "return !!(window.rcmail && rcmail.loaded === true && !rcmail.busy && "
        "!document.querySelector('#messagestack .loading'))")


def wait_idle(browser):
    wait(browser, roundcube_idle, what="Roundcube to be idle")


def command(browser, css):
    """Click a Roundcube button or link that runs a command, once Roundcube
    is idle and the command enabled."""
    wait_idle(browser)
    enabled_button(browser, css).click()


def open_folder(browser, name):
    """Go to a folder of the mail view, once Roundcube is ready for the
    click, and wait until its list is shown."""
    if "_task=mail" not in browser.current_url or not browser.find_elements(
            By.ID, "mailboxlist"):
        command(browser, "#taskmenu a.mail")
    visible(browser, "#messagelist")
    command(browser, "#mailboxlist a[rel='%s']" % name)
    wait(browser, lambda b: b.execute_script("return rcmail.env.mailbox") == name and
         roundcube_idle(b), what="folder %s listed" % name)


def enabled_button(browser, css):
    """A Roundcube command button once its command is enabled (Roundcube
    marks disabled commands with the class, not the attribute)."""
    def ready(b):
        for e in b.find_elements(By.CSS_SELECTOR, css):
            if e.is_displayed() and "disabled" not in (e.get_attribute("class") or "").split():
                return e
        return None
    return wait(browser, ready, what="enabled " + css)


def wait_preview(browser, text):
    """The preview pane (an iframe) shows a message whose body has text."""
    wait(browser, EC.frame_to_be_available_and_switch_to_it((By.ID, "messagecontframe")),
         what="the preview frame")
    try:
        wait(browser, lambda b: b.find_elements(By.ID, "messagebody") and
             text in b.find_element(By.ID, "messagebody").text, what="preview of %r" % text)
    finally:
        browser.switch_to.default_content()


@pytest.fixture(autouse=True)
def top_page(browser):
    """Each step starts outside any content frame."""
    browser.switch_to.default_content()


@pytest.fixture(scope="module")
def alice(browser, roundcube, toaster):
    """Mail waiting for alice before she logs in."""
    deliver(toaster, "alice@example.com", GREETING_SUBJECT, GREETING_BODY)
    deliver(toaster, "alice@example.com", JUNK_SUBJECT, JUNK_BODY)
    wait_for_subject(toaster, "alice@example.com", "INBOX", JUNK_SUBJECT)
    return browser


def test_01_login_lists_smtp_message(alice, roundcube, shot):
    browser = alice
    browser.get(roundcube.url)
    visible(browser, "#rcmloginuser").send_keys("alice@example.com")
    browser.find_element(By.ID, "rcmloginpwd").send_keys(PASSWORDS["alice@example.com"])
    shot("login-form")
    browser.find_element(By.ID, "rcmloginsubmit").click()
    visible(browser, "#messagelist")
    row = wait_row(browser, GREETING_SUBJECT)
    assert "carol@example.org" in row.text, row.text
    wait_row(browser, JUNK_SUBJECT)
    wait_idle(browser)
    shot("inbox")


def test_02_open_message_shows_body(alice, shot):
    browser = alice
    wait_idle(browser)
    row = wait_row(browser, GREETING_SUBJECT)
    ActionChains(browser).double_click(row).perform()
    body = visible(browser, "#messagebody")
    wait(browser, lambda b: GREETING_BODY in b.find_element(By.ID, "messagebody").text,
         what="the body text")
    assert GREETING_SUBJECT in browser.find_element(By.CSS_SELECTOR, "h2.subject").text
    assert body.is_displayed()
    shot("message-open")


def test_03_send_to_bob(alice, toaster, shot):
    browser = alice
    command(browser, "#taskmenu a.compose")
    to = visible(browser, "#compose_to .recipient-input input")
    to.send_keys("bob@example.com,")
    wait(browser, lambda b: "bob@example.com" in b.find_element(
        By.CSS_SELECTOR, "#compose_to .recipient-input").text, what="bob as a recipient")
    visible(browser, "#compose-subject").send_keys(TO_BOB_SUBJECT)
    visible(browser, "#composebody").send_keys(TO_BOB_BODY)
    wait_idle(browser)
    shot("compose")
    # Save a draft first (APPEND to Drafts); sending removes it again.
    command(browser, "a.save.draft")
    wait_for_subject(toaster, "alice@example.com", "Drafts", TO_BOB_SUBJECT)
    wait_idle(browser)
    command(browser, "button.send, a.send")
    # Roundcube goes back to the message list once the message is sent and
    # its copy saved in Sent.
    visible(browser, "#messagelist")
    wait_idle(browser)
    shot("sent")
    wait_for_subject(toaster, "bob@example.com", "INBOX", TO_BOB_SUBJECT)
    wait_for_subject(toaster, "alice@example.com", "Sent", TO_BOB_SUBJECT)
    assert wait_until(lambda: TO_BOB_SUBJECT not in imap_subjects(
        toaster, "alice@example.com", "Drafts"), MAIL_WAIT_S, 0.2), "the draft stayed"
    stored = [m for m in toaster.messages("bob@example.com") if TO_BOB_SUBJECT.encode() in m]
    assert len(stored) == 1, stored
    assert TO_BOB_BODY.encode() in stored[0]
    assert re.search(rb"^From: .*alice@example\.com", stored[0], re.M | re.I), stored[0][:800]
    # It came in by submission, authenticated as alice, under STARTTLS.
    assert re.search(rb"with ESMTPSA", stored[0]), stored[0][:800]


def test_04_mark_as_junk(alice, toaster, shot):
    browser = alice
    wait_idle(browser)
    wait_row(browser, JUNK_SUBJECT).click()
    wait(browser, lambda b: "selected" in (list_row(b, JUNK_SUBJECT).get_attribute("class") or ""),
         what="the junk row selected")
    wait_preview(browser, JUNK_BODY)
    wait_idle(browser)
    shot("junk-selected")
    command(browser, "#toolbar-menu a.junk, #mailtoolbar a.junk")
    wait_row(browser, JUNK_SUBJECT, present=False)
    wait_idle(browser)
    shot("junk-moved")
    wait_for_subject(toaster, "alice@example.com", "Junk", JUNK_SUBJECT)
    assert JUNK_SUBJECT not in imap_subjects(toaster, "alice@example.com", "INBOX")
    junk_files = list((toaster.maildir("alice@example.com") / ".Junk" / "cur").iterdir())
    assert any(JUNK_SUBJECT.encode() in p.read_bytes() for p in junk_files), junk_files
    # markasjunk flags it before the move (STORE +FLAGS (Junk)); the keyword
    # and \Seen travel with the message.
    client = toaster.imap("alice@example.com", PASSWORDS["alice@example.com"])
    try:
        typ, data = client.select("Junk", readonly=True)
        assert typ == "OK", data
        typ, data = client.fetch("1:*", "(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        assert typ == "OK", data
        flags = [item[0] for item in data if isinstance(item, tuple) and
                 JUNK_SUBJECT.encode() in item[1]]
        assert len(flags) == 1 and re.search(rb"FLAGS \([^)]*\bJunk\b", flags[0]), data
        assert b"\\Seen" in flags[0], data
    finally:
        client.logout()
    # The Junk folder in Roundcube shows it too.
    open_folder(browser, "Junk")
    wait_row(browser, JUNK_SUBJECT)
    wait_idle(browser)
    shot("junk-folder")


def in_frame(browser, frame_id):
    """Switch into the settings content frame once it has loaded a form."""
    browser.switch_to.default_content()
    wait(browser, EC.frame_to_be_available_and_switch_to_it((By.ID, frame_id)),
         what="frame #" + frame_id)


def test_05_filter_rule(alice, toaster, shot):
    browser = alice
    # Settings > Folders > Create: the folder the rule will file into.
    command(browser, "#taskmenu a.settings")
    command(browser, "#settings-menu li.folders a")
    wait(browser, EC.url_contains("_action=folders"), what="the folders page")
    visible(browser, "#subscription-table")
    command(browser, "a.create")
    in_frame(browser, "preferences-frame")
    visible(browser, "input[name=_name]").send_keys("Invoices")
    shot("folder-create")
    command(browser, "button.submit")
    browser.switch_to.default_content()
    wait(browser, lambda b: any(e.text.strip() == "Invoices" for e in b.find_elements(
        By.CSS_SELECTOR, "#subscription-table li, #folderlist li")), what="Invoices listed")
    wait_idle(browser)
    shot("folder-created")
    maildir = toaster.maildir("alice@example.com")
    assert (maildir / ".Invoices" / "cur").is_dir(), sorted(p.name for p in maildir.iterdir())
    assert "Invoices" in (maildir / "subscriptions").read_text().split("\n")

    # Settings > Filters > Create.
    command(browser, "#settings-menu a[href$='_action=plugin.managesieve']")
    wait(browser, EC.url_contains("_action=plugin.managesieve"), what="the filters page")
    wait(browser, EC.presence_of_element_located((By.ID, "filterslist")), what="#filterslist")
    command(browser, "a.create")
    in_frame(browser, "filter-box")
    visible(browser, "#_name").send_keys(FILTER_NAME)
    Select(visible(browser, "#header0")).select_by_value("subject")
    Select(visible(browser, "#rule_op0")).select_by_value("contains")
    visible(browser, "#rule_target0_list input").send_keys("invoice")
    Select(visible(browser, "#action_type0")).select_by_value("fileinto")
    Select(visible(browser, "#action_mailbox0")).select_by_value("Invoices")
    shot("filter-form")
    command(browser, "button.submit")
    browser.switch_to.default_content()
    wait(browser, lambda b: FILTER_NAME in b.find_element(By.ID, "filterslist").text,
         what="the filter in the list")
    wait_idle(browser)
    shot("filter-saved")

    # The script is where Pigeonhole keeps it, and active.
    home = toaster.maildir("alice@example.com").parent
    active = home / ".dovecot.sieve"
    assert wait_until(active.exists, 5), sorted(p.name for p in home.iterdir())
    script = active.read_text()
    assert re.search(r'header\s+:contains\s+"subject"\s+"invoice"', script, re.I), script
    assert re.search(r'fileinto\s+"Invoices"', script), script
    assert FILTER_NAME in script, script
    assert active.is_symlink() and os.readlink(active) == "sieve/roundcube.sieve", \
        os.readlink(active)

    # The next messages: the matching one goes to Invoices, the other stays.
    deliver(toaster, "alice@example.com", INVOICE_SUBJECT, "Amount due: 42 EUR.")
    deliver(toaster, "alice@example.com", OTHER_SUBJECT, "Nothing to file here.")
    wait_for_subject(toaster, "alice@example.com", "Invoices", INVOICE_SUBJECT)
    wait_for_subject(toaster, "alice@example.com", "INBOX", OTHER_SUBJECT)
    assert INVOICE_SUBJECT not in imap_subjects(toaster, "alice@example.com", "INBOX")
    assert OTHER_SUBJECT not in imap_subjects(toaster, "alice@example.com", "Invoices")

    # And Roundcube shows it there.
    open_folder(browser, "Invoices")
    wait_row(browser, INVOICE_SUBJECT)
    wait_idle(browser)
    shot("invoices-folder")


def test_06_search(alice, shot):
    """The quick search in INBOX (IMAP SEARCH over subject and sender) keeps
    the matching message and hides the others."""
    browser = alice
    open_folder(browser, "INBOX")
    wait_row(browser, OTHER_SUBJECT)
    wait_idle(browser)
    box = visible(browser, "#mailsearchform")
    box.send_keys("Welcome" + Keys.ENTER)
    wait_row(browser, OTHER_SUBJECT, present=False)
    wait_row(browser, GREETING_SUBJECT)
    wait_idle(browser)
    shot("search")
    rows = browser.find_elements(By.CSS_SELECTOR, "#messagelist tbody tr")
    assert len(rows) == 1, [r.text for r in rows]


def test_07_attachment_trash_rename(alice, toaster, shot, e2e_root):
    """An attachment of about 100 KB (above toasterd's 64 KiB splice bound)
    sent to oneself comes back byte for byte; delete moves to Trash, Empty
    expunges it; renaming a folder in Settings keeps its mail."""
    browser = alice
    attachment = e2e_root / "report.txt"
    content = "".join("line %05d of the report\n" % i for i in range(4000)) + "caf\u00e9\n"
    attachment.write_text(content, encoding="utf-8")
    open_folder(browser, "INBOX")
    command(browser, "#taskmenu a.compose")
    visible(browser, "#compose_to .recipient-input input").send_keys("alice@example.com,")
    visible(browser, "#compose-subject").send_keys(ATTACH_SUBJECT)
    visible(browser, "#composebody").send_keys("The report is attached.")
    browser.find_element(By.CSS_SELECTOR, "input[type=file][name^='_attachments']").send_keys(
        str(attachment))
    wait(browser, lambda b: "report.txt" in b.find_element(By.ID, "attachment-list").text and
         not b.find_elements(By.CSS_SELECTOR, "#attachment-list li.uploading"),
         what="the attachment uploaded")
    shot("attachment-compose")
    command(browser, "button.send, a.send")
    wait_for_subject(toaster, "alice@example.com", "INBOX", ATTACH_SUBJECT)

    open_folder(browser, "INBOX")
    wait_idle(browser)
    ActionChains(browser).double_click(wait_row(browser, ATTACH_SUBJECT)).perform()
    link = wait(browser, lambda b: [a for a in b.find_elements(
        By.CSS_SELECTOR, "#attachment-list a.filename") if "report.txt" in a.text],
        what="the attachment link")[0]
    wait_idle(browser)
    shot("attachment-open")
    # What a click on the attachment would download, read in the page.
    served = browser.execute_async_script(
        "var done = arguments[1];"
        "fetch(arguments[0] + '&_download=1', {credentials: 'same-origin'})"
        ".then(r => r.arrayBuffer()).then(b => done(Array.from(new Uint8Array(b))))"
        ".catch(e => done(String(e)));", link.get_attribute("href"))
    assert isinstance(served, list), served
    assert bytes(served) == content.encode("utf-8"), (len(served), len(content.encode()))

    # Delete (to Trash), then Trash > Empty.
    command(browser, "#toolbar-menu a.delete, #mailtoolbar a.delete")
    wait_for_subject(toaster, "alice@example.com", "Trash", ATTACH_SUBJECT)
    assert ATTACH_SUBJECT not in imap_subjects(toaster, "alice@example.com", "INBOX")
    open_folder(browser, "Trash")
    wait_row(browser, ATTACH_SUBJECT)
    command(browser, "a[data-popup='mailboxoptions-menu']")
    command(browser, "a.purge")
    wait(browser, lambda b: [e for e in b.find_elements(
        By.CSS_SELECTOR, ".ui-dialog-buttonset button.mainaction") if e.is_displayed()],
        what="the confirmation")[0].click()
    wait_row(browser, ATTACH_SUBJECT, present=False)
    assert wait_until(lambda: imap_subjects(toaster, "alice@example.com", "Trash") == [],
                      MAIL_WAIT_S, 0.2)
    wait_idle(browser)
    shot("trash-emptied")

    # Settings > Folders: Invoices becomes Bills, with its message.
    command(browser, "#taskmenu a.settings")
    command(browser, "#settings-menu li.folders a")
    wait(browser, EC.url_contains("_action=folders"), what="the folders page")
    wait_idle(browser)
    wait(browser, lambda b: [e for e in b.find_elements(By.CSS_SELECTOR, "#subscription-table li")
                             if e.text.strip() == "Invoices"], what="Invoices")[0].click()
    in_frame(browser, "preferences-frame")
    name = visible(browser, "input[name=_name]")
    wait_idle(browser)
    name.clear()
    name.send_keys("Bills")
    command(browser, "button.submit")
    browser.switch_to.default_content()
    wait(browser, lambda b: any(e.text.strip() == "Bills" for e in b.find_elements(
        By.CSS_SELECTOR, "#subscription-table li")), what="Bills listed")
    wait_idle(browser)
    shot("folder-renamed")
    maildir = toaster.maildir("alice@example.com")
    assert not (maildir / ".Invoices").exists()
    assert INVOICE_SUBJECT in imap_subjects(toaster, "alice@example.com", "Bills")


def test_08_roundcube_logs_clean(roundcube):
    """No NO or BAD from toasterd in Roundcube's IMAP and ManageSieve logs,
    no failed SMTP reply, no error in Roundcube's own log (PHP's deprecation
    notices about PEAR are Debian's, not ours)."""
    logs = roundcube.logs()
    assert "imap.log" in logs and "sieve.log" in logs and "smtp.log" in logs, sorted(logs)
    bad = []
    for name in ("imap.log", "sieve.log"):
        bad += [l for l in logs[name].splitlines()
                if PROTOCOL_FAILURE.search(l) and not LOGOUT_BYE.search(l)]
    bad += [l for l in logs["smtp.log"].splitlines() if re.search(r"\] Recv: [45]\d\d", l)]
    bad += [l for l in logs.get("errors.log", "").splitlines()
            if l.strip() and "PHP Deprecated" not in l]
    assert not bad, "\n".join(bad)
