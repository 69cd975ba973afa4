#!/usr/bin/python3
"""bench/imap_fill.py - a Maildir data set for the IMAP benchmarks.

Writes N messages per user straight into DATA_DIR/mail/<domain>/<local>/Maildir/cur/
with Dovecot-style names (<time>.M<usec>P<pid>Q<n>.<host>,S=<size>,W=<size>:2,<flags>),
the layout both toasterd and a Dovecot with
mail_location = maildir:DATA_DIR/mail/%d/%n/Maildir read. Messages vary: plain text,
multipart/alternative, multipart/mixed with 1-100 KiB base64 attachments,
RFC 2047 encoded-word subjects, a dozen senders, dates over 2025-2026, about a third
seen and some flagged. Lines end in CRLF, so S= (size) equals W= (wire size).
The same --seed gives the same bytes and the same file names.

  imap_fill.py --data-dir DIR --users 20 --messages 2000 [--domain example.test]
               [--user-pattern 'user%d'] [--seed 1] [--users-file FILE]

--users-file also writes 'user@domain:{PLAIN}x' lines for the same users.
Standard library only.
"""

import argparse
import base64
import os
import random
import sys
import time

FROM = [("Alice Archer", "alice"), ("Bob Baker", "bob"), ("Carol Cooper", "carol"),
        ("Dave Dyer", "dave"), ("Erin Evans", "erin"), ("Frank Fisher", "frank"),
        ("Grace Gardner", "grace"), ("Heidi Hunter", "heidi"), ("Mallory Mason", "mallory"),
        ("Oscar Olsen", "oscar"), ("Jörg Müller", "joerg"), ("Zoë Ångström", "zoe")]
SUBJECT_WORDS = ["report", "meeting", "invoice", "lunch", "project", "update", "holiday",
                 "budget", "draft", "question", "notes", "plan"]
BODY_WORDS = ["deadline", "attached", "thanks", "schedule", "review", "quarterly", "coffee",
              "release", "please", "the", "and", "for", "with", "team", "tomorrow", "numbers",
              "customer", "server", "mail", "weekend", "office", "call", "agenda", "minutes"]
UNICODE_SUBJECTS = ["Grüße aus Köln", "Café crème à 10h", "Съешь же ещё этих булок",
                    "東京の会議", "Ελληνικά νέα", "naïve résumé"]
DOMAINS = ["example.org", "example.net", "mail.example.com", "corp.example"]
MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
DAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
START = 1735689600  # 2025-01-01 00:00:00 UTC
SPAN = 2 * 365 * 86400
HOST = "bench.example.test"


def encoded_word(text, rng):
    raw = text.encode("utf-8")
    if rng.random() < 0.5:
        return "=?UTF-8?B?%s?=" % base64.b64encode(raw).decode("ascii")
    out = []
    for b in raw:
        c = chr(b)
        if c == " ":
            out.append("_")
        elif b < 128 and (c.isalnum() or c in "!*+-/"):
            out.append(c)
        else:
            out.append("=%02X" % b)
    return "=?UTF-8?Q?%s?=" % "".join(out)


def sentence(rng, words):
    return " ".join(rng.choice(BODY_WORDS) for _ in range(words)).capitalize() + "."


def paragraph_lines(rng, lines):
    return [sentence(rng, rng.randint(6, 12)) for _ in range(lines)]


def rfc2822_date(t):
    tm = time.gmtime(t)
    return "%s, %d %s %d %02d:%02d:%02d +0000" % (DAYS[tm.tm_wday], tm.tm_mday,
                                                 MONTHS[tm.tm_mon - 1], tm.tm_year,
                                                 tm.tm_hour, tm.tm_min, tm.tm_sec)


def base64_lines(data):
    enc = base64.b64encode(data).decode("ascii")
    return [enc[i:i + 76] for i in range(0, len(enc), 76)]


def make_message(rng, user_address, index):
    """One message as a list of lines (no line ends) and its date."""
    name, local = rng.choice(FROM)
    sender_domain = rng.choice(DOMAINS)
    t = START + rng.randrange(SPAN)
    if rng.random() < 0.15:
        subject = encoded_word(rng.choice(UNICODE_SUBJECTS) + " " + rng.choice(SUBJECT_WORDS),
                               rng)
    else:
        subject = "%s %s #%d" % (rng.choice(SUBJECT_WORDS).capitalize(),
                                 rng.choice(SUBJECT_WORDS), rng.randint(1, 999))
    if any(ord(ch) > 127 for ch in name):
        from_header = "%s <%s@%s>" % (encoded_word(name, rng), local, sender_domain)
    else:
        from_header = "%s <%s@%s>" % (name, local, sender_domain)
    head = [
        "Return-Path: <%s@%s>" % (local, sender_domain),
        "Received: from mx.%s by %s; %s" % (sender_domain, HOST, rfc2822_date(t + 2)),
        "From: " + from_header,
        "To: " + user_address,
        "Subject: " + subject,
        "Date: " + rfc2822_date(t),
        "Message-ID: <%d.%d.%s@%s>" % (t, index, local, sender_domain),
        "MIME-Version: 1.0",
    ]
    kind = rng.random()
    text = paragraph_lines(rng, rng.randint(3, 40))
    if kind < 0.5:
        head.append("Content-Type: text/plain; charset=utf-8")
        head.append("Content-Transfer-Encoding: 8bit")
        return head + [""] + text, t
    boundary = "=_bench_%d_%d" % (index, rng.randrange(1 << 30))
    if kind < 0.8:
        head.append('Content-Type: multipart/alternative; boundary="%s"' % boundary)
        html = ["<html><body>"] + ["<p>%s</p>" % line for line in text] + ["</body></html>"]
        body = ["This is a multi-part message in MIME format.", "", "--" + boundary,
                "Content-Type: text/plain; charset=utf-8", ""] + text + [
                "", "--" + boundary, "Content-Type: text/html; charset=utf-8", ""] + html + [
                "", "--%s--" % boundary, ""]
        return head + [""] + body, t
    head.append('Content-Type: multipart/mixed; boundary="%s"' % boundary)
    body = ["--" + boundary, "Content-Type: text/plain; charset=utf-8", ""] + text + [""]
    for a in range(1 if rng.random() < 0.8 else 2):
        size = rng.randint(1024, 100 * 1024)
        data = rng.randbytes(size) if hasattr(rng, "randbytes") else bytes(
            rng.getrandbits(8) for _ in range(size))
        ext, ctype = rng.choice([("pdf", "application/pdf"), ("png", "image/png"),
                                 ("zip", "application/zip")])
        fname = "%s-%d.%s" % (rng.choice(SUBJECT_WORDS), a + 1, ext)
        body += ["--" + boundary,
                 'Content-Type: %s; name="%s"' % (ctype, fname),
                 "Content-Transfer-Encoding: base64",
                 'Content-Disposition: attachment; filename="%s"' % fname, ""]
        body += base64_lines(data) + [""]
    body += ["--%s--" % boundary, ""]
    return head + [""] + body, t


def fill_user(args, rng, local, domain):
    address = "%s@%s" % (local, domain)
    maildir = os.path.join(args.data_dir, "mail", domain, local, "Maildir")
    for sub in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(maildir, sub), exist_ok=True)
    pid = 4000 + rng.randrange(1000)
    for i in range(args.messages):
        lines, t = make_message(rng, address, i)
        data = ("\r\n".join(lines) + "\r\n").encode("utf-8")
        flags = ""
        r = rng.random()
        if r < 0.1:
            flags = "FS"
        elif r < 0.35:
            flags = "S"
        elif r < 0.4:
            flags = "F"
        usec = rng.randrange(1000000)
        name = "%d.M%dP%dQ%d.%s,S=%d,W=%d:2,%s" % (t, usec, pid, i + 1, HOST, len(data),
                                                  len(data), flags)
        path = os.path.join(maildir, "cur", name)
        with open(path, "wb") as f:
            f.write(data)
        os.utime(path, (t, t))
    return address


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data-dir", required=True)
    p.add_argument("--users", type=int, default=20)
    p.add_argument("--messages", type=int, default=2000)
    p.add_argument("--domain", default="example.test")
    p.add_argument("--user-pattern", default="user%d")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--users-file")
    args = p.parse_args()
    if not 1 <= args.users <= 100000 or not 0 <= args.messages <= 10000000:
        p.error("--users must be 1..100000 and --messages 0..10000000")
    if args.user_pattern.count("%d") != 1 or "/" in args.user_pattern:
        p.error("--user-pattern needs exactly one %d and no /")
    addresses = []
    for u in range(1, args.users + 1):
        # One generator per user: the same user gets the same mail whatever --users says.
        rng = random.Random("%d/%d" % (args.seed, u))
        addresses.append(fill_user(args, rng, args.user_pattern.replace("%d", str(u)),
                                   args.domain))
    if args.users_file:
        with open(args.users_file, "w") as f:
            for address in addresses:
                f.write("%s:{PLAIN}x\n" % address)
    print("imap_fill: %d users x %d messages in %s" % (args.users, args.messages,
                                                        os.path.join(args.data_dir, "mail")),
          file=sys.stderr)


if __name__ == "__main__":
    main()
