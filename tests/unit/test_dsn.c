/*
 * tests/unit/test_dsn.c - delivery status notifications for queued mail
 * (store/dsn, RFC 3464 / 3461 / 6522 / 6533). Each DSN is taken apart
 * here: the top-level header, the boundary, the three parts and their
 * Content-Types, and the delivery-status fields line by line, compared
 * with the shape of RFC 3464 section 6's examples. Also: every NOTIFY
 * case, RET=HDRS / FULL / unspecified and the DSN_RETURN_BYTES_MAX bound
 * at max - 1, max, max + 1, ENVID and xtext-decoded ORCPT echoed, UTF-8
 * recipients and originals, CR/LF injection through the reply, ORCPT,
 * ENVID and remote name, over-long replies, boundary collisions, the
 * status code derivation and the null sender.
 */
#define _GNU_SOURCE /* memmem */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/dsn.h"
#include "tests/unit/unit.h"

int main(void);

static const char original[] = "Return-Path: <alice@example.com>\r\n"
                               "From: Alice <alice@example.com>\r\n"
                               "To: bob@example.net\r\n"
                               "Subject: lunch\r\n"
                               "Message-ID: <m1@example.com>\r\n"
                               "\r\n"
                               "the body of the original\r\n";

struct fixture {
    struct queue_entry entry;
    struct queue_rcpt rcpts[4];
    struct dsn_rcpt_report reports[4];
    struct dsn_request request;
};

static void
fixture_init(struct fixture *f, enum dsn_action action, uint32_t notify)
{
    memset(f, 0, sizeof(*f));
    (void)snprintf(f->entry.id, sizeof(f->entry.id), "%s", "14CB8BFEB7900000");
    (void)snprintf(f->entry.mail_from, sizeof(f->entry.mail_from), "%s", "alice@example.com");
    f->entry.arrival = 1733900000;
    f->entry.size = sizeof(original) - 1;
    f->rcpts[0] = (struct queue_rcpt){.address = "bob@example.net",
                                      .orcpt = "",
                                      .notify = notify,
                                      .last_reply = "550 5.1.1 <bob@example.net>: User unknown"};
    f->entry.rcpts = f->rcpts;
    f->entry.rcpt_count = 1;
    f->reports[0] = (struct dsn_rcpt_report){.rcpt_index = 0,
                                             .action = action,
                                             .remote_mta = "mx.example.net",
                                             .reply = NULL,
                                             .last_attempt = 1733903600};
    f->request = (struct dsn_request){.entry = &f->entry,
                                      .reports = f->reports,
                                      .report_count = 1,
                                      .hostname = "mail.example.com",
                                      .now = 1733903600,
                                      .retry_until = 1733900000 + 5 * 86400,
                                      .message = original,
                                      .message_len = sizeof(original) - 1,
                                      .message_bytes = sizeof(original) - 1};
}

/* The DSN taken apart: its header block, and each part's header and body. */
struct parsed {
    char boundary[DSN_BOUNDARY_BYTES + 8];
    const char *header;
    size_t header_len;
    size_t part_count;
    const char *part[4];
    size_t part_len[4];
    bool is_closed;
};

static bool
has_line(const char *text, size_t len, const char *line)
{
    char want[1200];
    int n = snprintf(want, sizeof(want), "\n%s\r\n", line);
    if (n <= 0 || (size_t)n >= sizeof(want)) {
        return false;
    }
    if (len >= (size_t)n - 1 && memcmp(text, want + 1, (size_t)n - 1) == 0) {
        return true;
    }
    return memmem(text, len, want, (size_t)n) != NULL;
}

static bool
is_line_start(const char *text, size_t len, const char *prefix)
{
    size_t n = strlen(prefix);
    for (size_t i = 0; i + n <= len; i++) {
        if ((i == 0 || text[i - 1] == '\n') && memcmp(text + i, prefix, n) == 0) {
            return true;
        }
    }
    return false;
}

/* Every line ends in CRLF, none is over 998 bytes, no bare CR or LF. */
static bool
is_well_formed(const char *text, size_t len)
{
    size_t line = 0;
    for (size_t i = 0; i < len; i++) {
        if (text[i] == '\r') {
            if (i + 1 >= len || text[i + 1] != '\n') {
                return false;
            }
            i++;
            line = 0;
        } else if (text[i] == '\n' || text[i] == '\0') {
            return false;
        } else if (++line > 998) {
            return false;
        }
    }
    return len >= 2 && text[len - 2] == '\r' && text[len - 1] == '\n';
}

static bool
parse(const struct dsn_result *r, struct parsed *p)
{
    memset(p, 0, sizeof(*p));
    const char *end = memmem(r->bytes, r->len, "\r\n\r\n", 4);
    if (end == NULL) {
        return false;
    }
    p->header = r->bytes;
    p->header_len = (size_t)(end - r->bytes) + 2;
    const char *b = memmem(r->bytes, p->header_len, "boundary=\"", 10);
    if (b == NULL) {
        return false;
    }
    b += 10;
    const char *q = memchr(b, '"', p->header_len - (size_t)(b - r->bytes));
    if (q == NULL || (size_t)(q - b) + 1 > DSN_BOUNDARY_BYTES) {
        return false;
    }
    char delim[DSN_BOUNDARY_BYTES + 8];
    int n = snprintf(delim, sizeof(delim), "\r\n--%.*s", (int)(q - b), b);
    (void)snprintf(p->boundary, sizeof(p->boundary), "%.*s", (int)(q - b), b);
    const char *pos = r->bytes;
    const char *stop = r->bytes + r->len;
    const char *prev = NULL;
    while (pos < stop) {
        const char *d = memmem(pos, (size_t)(stop - pos), delim, (size_t)n);
        if (d == NULL) {
            break;
        }
        if (prev != NULL && p->part_count < 4) {
            p->part[p->part_count] = prev;
            p->part_len[p->part_count] = (size_t)(d - prev);
            p->part_count++;
        }
        const char *after = d + n;
        if (after + 4 <= stop && memcmp(after, "--\r\n", 4) == 0) {
            p->is_closed = after + 4 == stop;
            break;
        }
        if (after + 2 > stop || memcmp(after, "\r\n", 2) != 0) {
            return false;
        }
        prev = after + 2;
        pos = prev;
    }
    return true;
}

/* The part's Content-Type value (up to ';' or the line end) is want. */
static bool
part_type_is(const struct parsed *p, size_t index, const char *want)
{
    if (index >= p->part_count) {
        return false;
    }
    char line[128];
    (void)snprintf(line, sizeof(line), "Content-Type: %s", want);
    const char *body = memmem(p->part[index], p->part_len[index], "\r\n\r\n", 4);
    size_t head_len = body != NULL ? (size_t)(body - p->part[index]) + 2 : p->part_len[index];
    return has_line(p->part[index], head_len, line) ||
           (strncmp(want, "text/plain", 10) == 0 &&
            memmem(p->part[index], head_len, line, strlen(line)) != NULL);
}

static const char *
part_body(const struct parsed *p, size_t index, size_t *len_out)
{
    const char *body = memmem(p->part[index], p->part_len[index], "\r\n\r\n", 4);
    if (body == NULL) {
        *len_out = 0;
        return "";
    }
    body += 4;
    *len_out = p->part_len[index] - (size_t)(body - p->part[index]);
    return body;
}

static void
test_failure_shape(void)
{
    struct fixture f;
    fixture_init(&f, DSN_ACTION_FAILED, 0);
    (void)snprintf(f.entry.envid, sizeof(f.entry.envid), "%s", "QQ314159");
    struct dsn_result r;
    CHECK(dsn_compose(&f.request, &r) == 0);
    CHECK(r.report_count == 1);
    CHECK(r.is_full_return);
    CHECK(!r.is_8bit);
    CHECK(!r.is_utf8);
    CHECK(is_well_formed(r.bytes, r.len));
    struct parsed p;
    CHECK(parse(&r, &p));
    CHECK(p.part_count == 3);
    CHECK(p.is_closed);
    CHECK(has_line(p.header, p.header_len,
                   "From: Mail Delivery System <MAILER-DAEMON@mail.example.com>"));
    CHECK(has_line(p.header, p.header_len, "To: <alice@example.com>"));
    CHECK(has_line(p.header, p.header_len, "Subject: Undelivered Mail Returned to Sender"));
    CHECK(has_line(p.header, p.header_len, "Auto-Submitted: auto-replied"));
    CHECK(has_line(p.header, p.header_len, "MIME-Version: 1.0"));
    CHECK(has_line(p.header, p.header_len, "Date: Wed, 11 Dec 2024 07:53:20 +0000"));
    CHECK(has_line(p.header, p.header_len,
                   "Content-Type: multipart/report; report-type=delivery-status;"));
    CHECK(is_line_start(p.header, p.header_len, "Message-ID: <dsn.1733903600."));
    CHECK(strstr(p.boundary, "=_toaster-dsn-") == p.boundary);
    CHECK(part_type_is(&p, 0, "text/plain; charset=us-ascii"));
    CHECK(part_type_is(&p, 1, "message/delivery-status"));
    CHECK(part_type_is(&p, 2, "message/rfc822"));
    size_t len;
    const char *text = part_body(&p, 0, &len);
    CHECK(memmem(text, len, "This is the mail system at host mail.example.com.", 49) != NULL);
    /* Wrapped at 76 columns, continued with four spaces, as Postfix. */
    CHECK(has_line(text, len,
                   "<bob@example.net>: host mx.example.net said: 550 5.1.1 <bob@example.net>:"));
    CHECK(has_line(text, len, "    User unknown"));
    const char *status = part_body(&p, 1, &len);
    /* Per-message fields, an empty line, the per-recipient fields. */
    static const char want_status[] = "Reporting-MTA: dns; mail.example.com\r\n"
                                      "X-Toaster-Queue-ID: 14CB8BFEB7900000\r\n"
                                      "X-Toaster-Sender: rfc822; alice@example.com\r\n"
                                      "Original-Envelope-Id: QQ314159\r\n"
                                      "Arrival-Date: Wed, 11 Dec 2024 06:53:20 +0000\r\n"
                                      "\r\n"
                                      "Final-Recipient: rfc822; bob@example.net\r\n"
                                      "Action: failed\r\n"
                                      "Status: 5.1.1\r\n"
                                      "Remote-MTA: dns; mx.example.net\r\n"
                                      "Diagnostic-Code: smtp; 550 5.1.1 <bob@example.net>: "
                                      "User unknown\r\n"
                                      "Last-Attempt-Date: Wed, 11 Dec 2024 07:53:20 +0000\r\n";
    CHECK_BYTES(status, len, want_status, sizeof(want_status) - 1);
    const char *copy = part_body(&p, 2, &len);
    CHECK_BYTES(copy, len, original, sizeof(original) - 1);
    free(r.bytes);
}

static void
test_null_sender_and_bad_input(void)
{
    struct fixture f;
    struct dsn_result r;
    fixture_init(&f, DSN_ACTION_FAILED, 0);
    f.entry.mail_from[0] = '\0';
    CHECK(dsn_compose(&f.request, &r) == -EINVAL);
    CHECK(r.bytes == NULL && r.len == 0);

    fixture_init(&f, DSN_ACTION_FAILED, 0);
    f.reports[0].rcpt_index = 1; /* out of range */
    CHECK(dsn_compose(&f.request, &r) == -EINVAL);

    fixture_init(&f, DSN_ACTION_FAILED, 0);
    f.request.hostname = "";
    CHECK(dsn_compose(&f.request, &r) == -EINVAL);
    f.request.hostname = "bad\r\nhost";
    CHECK(dsn_compose(&f.request, &r) == -EINVAL);

    fixture_init(&f, DSN_ACTION_FAILED, 0);
    f.request.report_count = QUEUE_RCPTS_MAX + 1;
    CHECK(dsn_compose(&f.request, &r) == -EINVAL);

    fixture_init(&f, DSN_ACTION_FAILED, 0);
    f.request.now = 253402300800; /* year 10000 */
    CHECK(dsn_compose(&f.request, &r) == -EINVAL);
}

/* One recipient, one action, one NOTIFY: reported or -ENODATA. */
static bool
is_reported(enum dsn_action action, uint32_t notify)
{
    struct fixture f;
    fixture_init(&f, action, notify);
    struct dsn_result r;
    int rc = dsn_compose(&f.request, &r);
    CHECK(rc == 0 || rc == -ENODATA);
    if (rc == 0) {
        CHECK(r.report_count == 1);
        CHECK(is_well_formed(r.bytes, r.len));
    }
    free(r.bytes);
    return rc == 0;
}

static void
test_notify(void)
{
    /* No NOTIFY: failures and delays, as Postfix. */
    CHECK(is_reported(DSN_ACTION_FAILED, 0));
    CHECK(is_reported(DSN_ACTION_DELAYED, 0));
    CHECK(!is_reported(DSN_ACTION_DELIVERED, 0));
    CHECK(!is_reported(DSN_ACTION_RELAYED, 0));
    /* NEVER: nothing. */
    CHECK(!is_reported(DSN_ACTION_FAILED, QUEUE_NOTIFY_NEVER));
    CHECK(!is_reported(DSN_ACTION_DELAYED, QUEUE_NOTIFY_NEVER));
    CHECK(!is_reported(DSN_ACTION_DELIVERED, QUEUE_NOTIFY_NEVER));
    /* Each only when asked. */
    CHECK(is_reported(DSN_ACTION_FAILED, QUEUE_NOTIFY_FAILURE));
    CHECK(!is_reported(DSN_ACTION_DELAYED, QUEUE_NOTIFY_FAILURE));
    CHECK(!is_reported(DSN_ACTION_DELIVERED, QUEUE_NOTIFY_FAILURE));
    CHECK(is_reported(DSN_ACTION_DELAYED, QUEUE_NOTIFY_DELAY));
    CHECK(!is_reported(DSN_ACTION_FAILED, QUEUE_NOTIFY_DELAY));
    CHECK(is_reported(DSN_ACTION_DELIVERED, QUEUE_NOTIFY_SUCCESS));
    CHECK(is_reported(DSN_ACTION_RELAYED, QUEUE_NOTIFY_SUCCESS));
    CHECK(!is_reported(DSN_ACTION_FAILED, QUEUE_NOTIFY_SUCCESS));
    CHECK(is_reported(DSN_ACTION_FAILED, QUEUE_NOTIFY_SUCCESS | QUEUE_NOTIFY_FAILURE));
    CHECK(is_reported(DSN_ACTION_DELAYED, QUEUE_NOTIFY_DELAY | QUEUE_NOTIFY_FAILURE));

    /* Two recipients, one of them NEVER: only the other is reported. */
    struct fixture f;
    fixture_init(&f, DSN_ACTION_FAILED, 0);
    f.rcpts[1] = (struct queue_rcpt){.address = "quiet@example.net",
                                     .orcpt = "",
                                     .notify = QUEUE_NOTIFY_NEVER,
                                     .last_reply = "550 5.1.1 no"};
    f.entry.rcpt_count = 2;
    f.reports[1] = f.reports[0];
    f.reports[1].rcpt_index = 1;
    f.request.report_count = 2;
    struct dsn_result r;
    CHECK(dsn_compose(&f.request, &r) == 0);
    CHECK(r.report_count == 1);
    CHECK(memmem(r.bytes, r.len, "quiet@example.net", 17) == NULL);
    free(r.bytes);

    /* Subjects: delay and success. */
    fixture_init(&f, DSN_ACTION_DELAYED, 0);
    f.rcpts[0].last_reply = "451 4.7.1 try later";
    CHECK(dsn_compose(&f.request, &r) == 0);
    struct parsed p;
    CHECK(parse(&r, &p));
    CHECK(has_line(p.header, p.header_len, "Subject: Delayed Mail (still being retried)"));
    CHECK(has_line(r.bytes, r.len, "Action: delayed"));
    CHECK(has_line(r.bytes, r.len, "Status: 4.7.1"));
    CHECK(has_line(r.bytes, r.len, "Will-Retry-Until: Mon, 16 Dec 2024 06:53:20 +0000"));
    CHECK(has_line(r.bytes, r.len, "Your message could not be delivered for 1 hour(s)."));
    CHECK(has_line(r.bytes, r.len, "It will be retried until it is 5 day(s) old."));
    CHECK(memmem(r.bytes, r.len, "THIS IS A WARNING ONLY", 22) != NULL);
    CHECK(part_type_is(&p, 2, "text/rfc822-headers")); /* delay: headers only */
    CHECK(!r.is_full_return);
    free(r.bytes);

    fixture_init(&f, DSN_ACTION_DELIVERED, QUEUE_NOTIFY_SUCCESS);
    f.rcpts[0].last_reply = "250 2.0.0 Ok: queued as 4ABC";
    CHECK(dsn_compose(&f.request, &r) == 0);
    CHECK(parse(&r, &p));
    CHECK(has_line(p.header, p.header_len, "Subject: Successful Mail Delivery Report"));
    CHECK(has_line(r.bytes, r.len, "Action: delivered"));
    CHECK(has_line(r.bytes, r.len, "Status: 2.0.0"));
    CHECK(!has_line(r.bytes, r.len, "Will-Retry-Until: Mon, 16 Dec 2024 06:53:20 +0000"));
    CHECK(part_type_is(&p, 2, "text/rfc822-headers"));
    free(r.bytes);
}

static void
test_ret_and_size_bound(void)
{
    struct fixture f;
    struct dsn_result r;
    struct parsed p;
    size_t len;

    fixture_init(&f, DSN_ACTION_FAILED, 0);
    f.entry.ret = QUEUE_RET_HDRS;
    CHECK(dsn_compose(&f.request, &r) == 0);
    CHECK(parse(&r, &p) && p.part_count == 3);
    CHECK(part_type_is(&p, 2, "text/rfc822-headers"));
    CHECK(memmem(r.bytes, r.len, "the body of the original", 24) == NULL);
    const char *copy = part_body(&p, 2, &len);
    CHECK(len > 0 && memmem(copy, len, "Subject: lunch\r\n", 16) != NULL);
    CHECK(!r.is_full_return);
    free(r.bytes);

    fixture_init(&f, DSN_ACTION_FAILED, 0);
    f.entry.ret = QUEUE_RET_FULL;
    CHECK(dsn_compose(&f.request, &r) == 0);
    CHECK(parse(&r, &p) && part_type_is(&p, 2, "message/rfc822"));
    CHECK(memmem(r.bytes, r.len, "the body of the original", 24) != NULL);
    free(r.bytes);

    /* The bound: a message of max - 1, max, max + 1 bytes. */
    static char big[DSN_RETURN_BYTES_MAX + 64];
    size_t head = (size_t)snprintf(big, sizeof(big), "Subject: big\r\n\r\n");
    for (size_t delta = 0; delta < 3; delta++) {
        size_t total = DSN_RETURN_BYTES_MAX - 1 + delta;
        for (size_t i = head; i < total; i++) {
            big[i] = (i - head) % 80 == 78 ? '\r' : (i - head) % 80 == 79 ? '\n' : 'x';
        }
        fixture_init(&f, DSN_ACTION_FAILED, 0);
        f.request.message = big;
        f.request.message_len = total;
        f.request.message_bytes = total;
        CHECK(dsn_compose(&f.request, &r) == 0);
        CHECK(r.is_full_return == (total <= DSN_RETURN_BYTES_MAX));
        CHECK(parse(&r, &p) && p.part_count == 3);
        CHECK(part_type_is(
            &p, 2, total <= DSN_RETURN_BYTES_MAX ? "message/rfc822" : "text/rfc822-headers"));
        CHECK(is_well_formed(r.bytes, r.len));
        free(r.bytes);
    }

    /* Only a prefix read (message_len < message_bytes): headers only. */
    fixture_init(&f, DSN_ACTION_FAILED, 0);
    f.request.message_bytes = f.request.message_len + 10;
    CHECK(dsn_compose(&f.request, &r) == 0);
    CHECK(!r.is_full_return);
    free(r.bytes);

    /* A body line over 998 bytes cannot be returned unchanged: headers. */
    static char longline[3000];
    size_t n = (size_t)snprintf(longline, sizeof(longline), "Subject: long\r\n\r\n");
    memset(longline + n, 'y', 999);
    memcpy(longline + n + 999, "\r\n", 2);
    fixture_init(&f, DSN_ACTION_FAILED, 0);
    f.request.message = longline;
    f.request.message_len = n + 1001;
    f.request.message_bytes = n + 1001;
    CHECK(dsn_compose(&f.request, &r) == 0);
    CHECK(!r.is_full_return);
    CHECK(is_well_formed(r.bytes, r.len));
    free(r.bytes);
    /* 998 is fine. */
    memcpy(longline + n + 998, "\r\n", 2);
    f.request.message_len = n + 1000;
    f.request.message_bytes = n + 1000;
    CHECK(dsn_compose(&f.request, &r) == 0);
    CHECK(r.is_full_return);
    CHECK(is_well_formed(r.bytes, r.len));
    free(r.bytes);

    /* LF-only originals come back with CRLF. */
    static const char lf[] = "Subject: lf\nX: y\n\nbody\n";
    fixture_init(&f, DSN_ACTION_FAILED, 0);
    f.request.message = lf;
    f.request.message_len = sizeof(lf) - 1;
    f.request.message_bytes = sizeof(lf) - 1;
    CHECK(dsn_compose(&f.request, &r) == 0);
    CHECK(r.is_full_return);
    CHECK(is_well_formed(r.bytes, r.len));
    CHECK(memmem(r.bytes, r.len, "Subject: lf\r\nX: y\r\n\r\nbody\r\n", 27) != NULL);
    free(r.bytes);

    /* The header block bound: a header of many lines is cut on a line. */
    size_t huge_len = DSN_HEADER_BYTES_MAX + 4096;
    char *huge = malloc(huge_len);
    CHECK(huge != NULL);
    if (huge != NULL) {
        for (size_t i = 0; i < huge_len; i++) {
            huge[i] = i % 64 == 62 ? '\r' : i % 64 == 63 ? '\n' : 'h';
        }
        memcpy(huge, "X-A:", 4);
        fixture_init(&f, DSN_ACTION_FAILED, 0);
        f.request.message = huge;
        f.request.message_len = huge_len;
        f.request.message_bytes = huge_len;
        CHECK(dsn_compose(&f.request, &r) == 0);
        CHECK(parse(&r, &p) && p.part_count == 3);
        copy = part_body(&p, 2, &len);
        CHECK(len <= DSN_HEADER_BYTES_MAX);
        CHECK(len > DSN_HEADER_BYTES_MAX - 128);
        CHECK(len % 64 == 0); /* whole lines only */
        free(r.bytes);
        free(huge);
    }
}

static void
test_envid_orcpt(void)
{
    struct fixture f;
    struct dsn_result r;
    fixture_init(&f, DSN_ACTION_FAILED, 0);
    (void)snprintf(f.entry.envid, sizeof(f.entry.envid), "%s", "id=42+x");
    f.rcpts[0].orcpt = "rfc822;Bob+2Bsales+3Dx@example.net";
    CHECK(dsn_compose(&f.request, &r) == 0);
    CHECK(has_line(r.bytes, r.len, "Original-Envelope-Id: id=42+x"));
    CHECK(has_line(r.bytes, r.len, "Original-Recipient: rfc822; Bob+sales=x@example.net"));
    CHECK(memmem(r.bytes, r.len, "(expanded from <Bob+sales=x@example.net>)", 41) != NULL);
    free(r.bytes);

    /* Not xtext (a bare '+'), or no type: no Original-Recipient. */
    fixture_init(&f, DSN_ACTION_FAILED, 0);
    f.rcpts[0].orcpt = "rfc822;bad+zz@example.net";
    CHECK(dsn_compose(&f.request, &r) == 0);
    CHECK(!is_line_start(r.bytes, r.len, "Original-Recipient:"));
    free(r.bytes);
    fixture_init(&f, DSN_ACTION_FAILED, 0);
    f.rcpts[0].orcpt = "bob@example.net";
    CHECK(dsn_compose(&f.request, &r) == 0);
    CHECK(!is_line_start(r.bytes, r.len, "Original-Recipient:"));
    free(r.bytes);
    /* The same address as the final one: no "expanded from". */
    fixture_init(&f, DSN_ACTION_FAILED, 0);
    f.rcpts[0].orcpt = "rfc822;bob@example.net";
    CHECK(dsn_compose(&f.request, &r) == 0);
    CHECK(has_line(r.bytes, r.len, "Original-Recipient: rfc822; bob@example.net"));
    CHECK(memmem(r.bytes, r.len, "expanded from", 13) == NULL);
    free(r.bytes);
}

static void
test_utf8(void)
{
    struct fixture f;
    struct dsn_result r;
    struct parsed p;
    fixture_init(&f, DSN_ACTION_FAILED, 0);
    f.rcpts[0].address = "j\xc3\xb6rg@b\xc3\xbc"
                         "cher.example";
    CHECK(dsn_compose(&f.request, &r) == 0);
    CHECK(r.is_utf8);
    CHECK(r.is_8bit);
    CHECK(is_well_formed(r.bytes, r.len));
    CHECK(parse(&r, &p) && p.part_count == 3);
    CHECK(part_type_is(&p, 1, "message/global-delivery-status"));
    CHECK(part_type_is(&p, 0, "text/plain; charset=utf-8"));
    CHECK(has_line(r.bytes, r.len,
                   "Final-Recipient: utf-8; j\xc3\xb6rg@b\xc3\xbc"
                   "cher.example"));
    CHECK(has_line(p.header, p.header_len, "Content-Transfer-Encoding: 8bit"));
    free(r.bytes);

    /* A UTF-8 header in the original: message/global; a UTF-8 body only:
     * message/rfc822 with 8bit. */
    static const char u8head[] = "Subject: gr\xc3\xbc\xc3\x9f"
                                 "e\r\n\r\nhi\r\n";
    fixture_init(&f, DSN_ACTION_FAILED, 0);
    f.request.message = u8head;
    f.request.message_len = f.request.message_bytes = sizeof(u8head) - 1;
    CHECK(dsn_compose(&f.request, &r) == 0);
    CHECK(parse(&r, &p) && part_type_is(&p, 2, "message/global"));
    CHECK(r.is_8bit);
    CHECK(!r.is_utf8);
    free(r.bytes);
    f.entry.ret = QUEUE_RET_HDRS;
    CHECK(dsn_compose(&f.request, &r) == 0);
    CHECK(parse(&r, &p) && part_type_is(&p, 2, "message/global-headers"));
    free(r.bytes);
    static const char u8body[] = "Subject: plain\r\n\r\ngr\xc3\xbc\xc3\x9f"
                                 "e\r\n";
    fixture_init(&f, DSN_ACTION_FAILED, 0);
    f.request.message = u8body;
    f.request.message_len = f.request.message_bytes = sizeof(u8body) - 1;
    CHECK(dsn_compose(&f.request, &r) == 0);
    CHECK(parse(&r, &p) && part_type_is(&p, 2, "message/rfc822"));
    CHECK(r.is_8bit);
    CHECK(has_line(p.part[2], p.part_len[2], "Content-Transfer-Encoding: 8bit"));
    free(r.bytes);

    /* Invalid UTF-8 in an address: '?' rather than broken bytes. */
    fixture_init(&f, DSN_ACTION_FAILED, 0);
    f.rcpts[0].address = "bad\xff@example.net";
    CHECK(dsn_compose(&f.request, &r) == 0);
    CHECK(memchr(r.bytes, 0xff, r.len) == NULL);
    CHECK(has_line(r.bytes, r.len, "Final-Recipient: utf-8; bad?@example.net"));
    free(r.bytes);
}

static void
test_injection(void)
{
    struct fixture f;
    struct dsn_result r;
    fixture_init(&f, DSN_ACTION_FAILED, 0);
    f.rcpts[0].last_reply = "550 5.1.1 no\r\nBcc: victim@example.org\r\n\r\n--x";
    f.rcpts[0].orcpt = "rfc822;a@b+0D+0AX-Injected:+201";
    (void)snprintf(f.entry.envid, sizeof(f.entry.envid), "%s", "e\r\nX-Env: 1");
    f.reports[0].remote_mta = "mx\r\nX-Remote: 1";
    CHECK(dsn_compose(&f.request, &r) == 0);
    CHECK(is_well_formed(r.bytes, r.len));
    CHECK(!is_line_start(r.bytes, r.len, "Bcc:"));
    CHECK(!is_line_start(r.bytes, r.len, "X-Injected:"));
    CHECK(!is_line_start(r.bytes, r.len, "X-Env:"));
    CHECK(!is_line_start(r.bytes, r.len, "X-Remote:"));
    /* An ORCPT whose xtext decodes to a control is no ORCPT at all. */
    CHECK(!is_line_start(r.bytes, r.len, "Original-Recipient:"));
    CHECK(has_line(r.bytes, r.len,
                   "Diagnostic-Code: smtp; 550 5.1.1 no  Bcc: victim@example.org    --x"));
    struct parsed p;
    CHECK(parse(&r, &p) && p.part_count == 3 && p.is_closed);
    free(r.bytes);

    /* An over-long reply is cut at DSN_REPLY_BYTES_MAX; lines stay short. */
    static char reply[3000];
    memcpy(reply, "550 5.7.1 ", 10);
    memset(reply + 10, 'z', sizeof(reply) - 11);
    reply[sizeof(reply) - 1] = '\0';
    fixture_init(&f, DSN_ACTION_FAILED, 0);
    f.reports[0].reply = reply;
    CHECK(dsn_compose(&f.request, &r) == 0);
    CHECK(is_well_formed(r.bytes, r.len));
    const char *diag = memmem(r.bytes, r.len, "Diagnostic-Code: smtp; ", 23);
    CHECK(diag != NULL);
    if (diag != NULL) {
        const char *eol = memchr(diag, '\r', r.len - (size_t)(diag - r.bytes));
        CHECK(eol != NULL && (size_t)(eol - diag) == 23 + DSN_REPLY_BYTES_MAX);
    }
    free(r.bytes);

    /* A reply with a leading non-code (our own diagnosis) gives no
     * Diagnostic-Code, and a status from the action. */
    fixture_init(&f, DSN_ACTION_FAILED, 0);
    f.reports[0].reply = "connect to mx.example.net[192.0.2.1]:25: Connection refused";
    f.reports[0].remote_mta = NULL;
    CHECK(dsn_compose(&f.request, &r) == 0);
    CHECK(!is_line_start(r.bytes, r.len, "Diagnostic-Code:"));
    CHECK(!is_line_start(r.bytes, r.len, "Remote-MTA:"));
    CHECK(has_line(r.bytes, r.len, "Status: 5.0.0"));
    CHECK(memmem(r.bytes, r.len, "<bob@example.net>: connect to", 29) != NULL);
    free(r.bytes);
}

static void
test_status(void)
{
    static const struct {
        const char *reply;
        enum dsn_action action;
        const char *want;
    } cases[] = {
        {"550 5.1.1 user unknown", DSN_ACTION_FAILED, "5.1.1"},
        {"550-5.1.1 user unknown", DSN_ACTION_FAILED, "5.1.1"},
        {"550 user unknown", DSN_ACTION_FAILED, "5.0.0"},
        {"554 4.1.1 mismatched class", DSN_ACTION_FAILED, "5.0.0"},
        {"451 4.7.1 greylisted", DSN_ACTION_FAILED, "4.7.1"}, /* expired after 4xx */
        {"451 4.7.1 greylisted", DSN_ACTION_DELAYED, "4.7.1"},
        {"421 try later", DSN_ACTION_DELAYED, "4.0.0"},
        {"550 5.1.1 x", DSN_ACTION_DELAYED, "4.0.0"},
        {"250 2.0.0 ok", DSN_ACTION_DELIVERED, "2.0.0"},
        {"250 2.6.0 queued", DSN_ACTION_RELAYED, "2.6.0"},
        {"250 ok", DSN_ACTION_DELIVERED, "2.0.0"},
        {"", DSN_ACTION_FAILED, "5.0.0"},
        {"", DSN_ACTION_DELAYED, "4.0.0"},
        {"550 5.1234.1 too many digits", DSN_ACTION_FAILED, "5.0.0"},
        {"550 5.1.1x glued", DSN_ACTION_FAILED, "5.0.0"},
        {"550 5.100.999 max digits", DSN_ACTION_FAILED, "5.100.999"},
        {"55", DSN_ACTION_FAILED, "5.0.0"},
        {"550", DSN_ACTION_FAILED, "5.0.0"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char status[16];
        size_t n = dsn_status(cases[i].reply, cases[i].action, status);
        CHECK_BYTES(status, n, cases[i].want, strlen(cases[i].want));
    }
}

static void
test_boundary(void)
{
    char b0[DSN_BOUNDARY_BYTES];
    char b1[DSN_BOUNDARY_BYTES];
    const char *parts[1] = {"nothing here"};
    size_t lens[1] = {12};
    int n0 = dsn_boundary_pick(parts, lens, 1, "salt", b0);
    CHECK(n0 > 0 && (size_t)n0 == strlen(b0));
    /* A part that holds the first candidate gets another one. */
    char holder[DSN_BOUNDARY_TRIES * DSN_BOUNDARY_BYTES + 64];
    size_t holder_len = (size_t)snprintf(holder, sizeof(holder), "x--%s\r\n", b0);
    parts[0] = holder;
    lens[0] = holder_len;
    int n1 = dsn_boundary_pick(parts, lens, 1, "salt", b1);
    CHECK(n1 > 0);
    CHECK(strcmp(b0, b1) != 0);
    CHECK(strstr(holder, b1) == NULL);
    /* Holding every candidate: -EEXIST after DSN_BOUNDARY_TRIES. */
    unsigned tries = 1;
    while (tries < DSN_BOUNDARY_TRIES + 2) {
        int n = dsn_boundary_pick(parts, lens, 1, "salt", b1);
        if (n < 0) {
            CHECK(n == -EEXIST);
            break;
        }
        holder_len +=
            (size_t)snprintf(holder + holder_len, sizeof(holder) - holder_len, "%s\n", b1);
        lens[0] = holder_len;
        tries++;
    }
    CHECK(tries == DSN_BOUNDARY_TRIES);

    /* The DSN's boundary occurs nowhere in its parts: an original that
     * quotes another DSN's boundary still parses into three parts. */
    struct fixture f;
    struct dsn_result r;
    fixture_init(&f, DSN_ACTION_FAILED, 0);
    CHECK(dsn_compose(&f.request, &r) == 0);
    struct parsed p;
    CHECK(parse(&r, &p));
    char *quoting = malloc(r.len + 64);
    CHECK(quoting != NULL);
    if (quoting != NULL) {
        int q = snprintf(quoting, r.len + 64, "Subject: re\r\n\r\n--%s\r\n--%s--\r\n", p.boundary,
                         p.boundary);
        f.request.message = quoting;
        f.request.message_len = f.request.message_bytes = (size_t)q;
        struct dsn_result r2;
        CHECK(dsn_compose(&f.request, &r2) == 0);
        struct parsed p2;
        CHECK(parse(&r2, &p2) && p2.part_count == 3 && p2.is_closed);
        CHECK(strcmp(p.boundary, p2.boundary) != 0);
        CHECK(memmem(p2.part[2], p2.part_len[2], p.boundary, strlen(p.boundary)) != NULL);
        free(r2.bytes);
        free(quoting);
    }
    free(r.bytes);
}

static void
test_many_recipients(void)
{
    /* QUEUE_RCPTS_MAX recipients with replies at their bound: fits. */
    struct queue_entry entry;
    memset(&entry, 0, sizeof(entry));
    (void)snprintf(entry.id, sizeof(entry.id), "%s", "14CB8BFEB7900000");
    (void)snprintf(entry.mail_from, sizeof(entry.mail_from), "%s", "alice@example.com");
    entry.arrival = 1733900000;
    static struct queue_rcpt rcpts[QUEUE_RCPTS_MAX];
    static struct dsn_rcpt_report reports[QUEUE_RCPTS_MAX];
    static char reply[QUEUE_REPLY_BYTES];
    memset(reply, 'r', sizeof(reply) - 1);
    memcpy(reply, "550 5.1.1 ", 10);
    static char address[SMTP_ADDRESS_BYTES_MAX + 1];
    memset(address, 'a', SMTP_ADDRESS_BYTES_MAX);
    address[SMTP_ADDRESS_BYTES_MAX - 12] = '@';
    for (size_t i = 0; i < QUEUE_RCPTS_MAX; i++) {
        rcpts[i] = (struct queue_rcpt){.address = address, .orcpt = "", .last_reply = reply};
        reports[i] = (struct dsn_rcpt_report){
            .rcpt_index = i, .action = DSN_ACTION_FAILED, .remote_mta = "mx.example.net"};
    }
    entry.rcpts = rcpts;
    entry.rcpt_count = QUEUE_RCPTS_MAX;
    struct dsn_request request = {.entry = &entry,
                                  .reports = reports,
                                  .report_count = QUEUE_RCPTS_MAX,
                                  .hostname = "mail.example.com",
                                  .now = 1733903600,
                                  .message = original,
                                  .message_len = sizeof(original) - 1,
                                  .message_bytes = sizeof(original) - 1};
    struct dsn_result r;
    CHECK(dsn_compose(&request, &r) == 0);
    CHECK(r.report_count == QUEUE_RCPTS_MAX);
    CHECK(r.len < DSN_BYTES_MAX);
    CHECK(is_well_formed(r.bytes, r.len));
    free(r.bytes);
}

int
main(void)
{
    test_failure_shape();
    test_null_sender_and_bad_input();
    test_notify();
    test_ret_and_size_bound();
    test_envid_orcpt();
    test_utf8();
    test_injection();
    test_status();
    test_boundary();
    test_many_recipients();
    UNIT_DONE();
}
