/*
 * tests/unit/test_sieve_reject.c - the DSN a Sieve "reject" sends after
 * the SMTP transaction (filters/sieve_reject, RFC 5429 2.1, RFC 3464).
 * The structure is checked by reading the DSN back with the project's
 * MIME walker (filters/sieve_body): three parts, text/plain with the
 * reason, message/delivery-status with failed/5.7.1, text/rfc822-headers
 * with the original header block only. Also: the null sender, LF-only and
 * over-long original lines, non-ASCII reasons, subjects and recipients,
 * quoted-printable for long reason lines (decoded back), header injection,
 * determinism, and the size bounds at max - 1, max, max + 1.
 */
#define _GNU_SOURCE /* memmem, strcasestr */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "filters/sieve_body.h"
#include "filters/sieve_reject.h"
#include "tests/unit/unit.h"

int main(void);

static const char original[] = "From: Bob <bob@example.org>\r\n"
                               "To: alice@example.com\r\n"
                               "Subject: cheap offer\r\n"
                               "Message-ID: <m1@example.org>\r\n"
                               "\r\n"
                               "body text that must not be sent back\r\n";

struct part_text {
    size_t count;
    char text[4][4096];
    size_t len[4];
};

static int
keep_piece(void *ctx, const char *text, size_t len)
{
    struct part_text *p = ctx;
    if (p->count < 4) {
        size_t n = len < sizeof(p->text[0]) - 1 ? len : sizeof(p->text[0]) - 1;
        memcpy(p->text[p->count], text, n);
        p->text[p->count][n] = '\0';
        p->len[p->count] = len;
    }
    p->count++;
    return 0;
}

/* The decoded content of the DSN's parts of one type. */
static struct part_text
parts_of(const char *dsn, size_t len, const char *type)
{
    struct part_text p;
    memset(&p, 0, sizeof(p));
    const char *body = memmem(dsn, len, "\r\n\r\n", 4);
    CHECK(body != NULL);
    if (body == NULL) {
        return p;
    }
    size_t header_len = (size_t)(body - dsn) + 4;
    struct sieve_string types[1] = {{.text = (char *)type, .len = strlen(type)}};
    int rc = sieve_body_walk(dsn, header_len, dsn + header_len, len - header_len,
                             SIEVE_BODY_CONTENT, types, 1, keep_piece, &p);
    CHECK(rc == 0);
    return p;
}

/* The offset of the next "\r\n" in s[from..len), or len. */
static size_t
next_crlf(const char *s, size_t from, size_t len)
{
    for (size_t i = from; i + 1 < len; i++) {
        if (s[i] == '\r' && s[i + 1] == '\n') {
            return i;
        }
    }
    return len;
}

/* The value of the top-level header field name ("" when absent). */
static const char *
field(const char *dsn, size_t len, const char *name)
{
    static char value[1024];
    value[0] = '\0';
    size_t header_len = 0;
    while (header_len < len) {
        size_t crlf = next_crlf(dsn, header_len, len);
        if (crlf == header_len || crlf == len) {
            break; /* the empty line */
        }
        header_len = crlf + 2;
    }
    size_t name_len = strlen(name);
    size_t pos = 0;
    while (pos < header_len) {
        size_t next = next_crlf(dsn, pos, header_len) + 2;
        if (strncasecmp(dsn + pos, name, name_len) == 0 && dsn[pos + name_len] == ':') {
            size_t v = pos + name_len + 1;
            while (dsn[v] == ' ') {
                v++;
            }
            size_t stop = next;
            while (stop < header_len && dsn[stop] == ' ') {
                stop = next_crlf(dsn, stop, header_len) + 2;
            }
            size_t n = stop - 2 - v;
            n = n < sizeof(value) - 1 ? n : sizeof(value) - 1;
            memcpy(value, dsn + v, n);
            value[n] = '\0';
            return value;
        }
        pos = next;
    }
    return value;
}

static void
check_lines(const char *dsn, size_t len)
{
    size_t run = 0;
    bool is_ok = true;
    for (size_t i = 0; i < len; i++) {
        if (dsn[i] == '\r') {
            is_ok = is_ok && i + 1 < len && dsn[i + 1] == '\n';
            i++;
            run = 0;
            continue;
        }
        is_ok = is_ok && dsn[i] != '\n' && dsn[i] != '\0';
        run++;
        is_ok = is_ok && run <= 998;
    }
    CHECK(is_ok);
    CHECK(len >= 2 && dsn[len - 2] == '\r' && dsn[len - 1] == '\n');
}

static char *
reject(const char *header, size_t header_len, const char *recipient, const char *reason,
       size_t *len_out, int *rc_out)
{
    char *dsn = (char *)"unset";
    *rc_out = sieve_reject_compose(header, header_len, "bob@example.org", recipient, reason,
                                   strlen(reason), "mx.example.com", 1183204800, &dsn, len_out);
    if (*rc_out != 0) {
        CHECK(dsn == NULL);
        return NULL;
    }
    check_lines(dsn, *len_out);
    return dsn;
}

static void
test_basic(void)
{
    size_t len = 0;
    int rc;
    char *dsn = reject(original, strlen(original), "alice@example.com",
                       "I do not want offers.", &len, &rc);
    CHECK(rc == 0);
    if (dsn == NULL) {
        return;
    }
    CHECK_STR(field(dsn, len, "From"), "Mail Delivery System <MAILER-DAEMON@mx.example.com>");
    CHECK_STR(field(dsn, len, "To"), "<bob@example.org>");
    CHECK_STR(field(dsn, len, "Subject"), "Rejected: cheap offer");
    CHECK_STR(field(dsn, len, "Date"), "Sat, 30 Jun 2007 12:00:00 +0000");
    CHECK_STR(field(dsn, len, "Auto-Submitted"), "auto-replied");
    CHECK_STR(field(dsn, len, "MIME-Version"), "1.0");
    CHECK(strncmp(field(dsn, len, "Message-ID"), "<reject.1183204800.", 19) == 0);
    const char *type = field(dsn, len, "Content-Type");
    CHECK(strncmp(type, "multipart/report; report-type=delivery-status;\r\n boundary=\"=_", 61) ==
          0);

    /* Three parts, in RFC 3464's order. */
    struct part_text all = parts_of(dsn, len, "");
    CHECK(all.count == 4); /* the three parts and the multipart's prologue */
    struct part_text text = parts_of(dsn, len, "text/plain");
    CHECK(text.count == 1);
    CHECK(strstr(text.text[0], "Your message to <alice@example.com> was automatically "
                               "rejected:\r\n\r\nI do not want offers.\r\n") != NULL);
    struct part_text status = parts_of(dsn, len, "message/delivery-status");
    CHECK(status.count == 1);
    CHECK(strstr(status.text[0], "Reporting-MTA: dns; mx.example.com\r\n\r\n") == status.text[0]);
    CHECK(strstr(status.text[0], "\r\nFinal-Recipient: rfc822; alice@example.com\r\n") != NULL);
    CHECK(strstr(status.text[0], "\r\nAction: failed\r\n") != NULL);
    CHECK(strstr(status.text[0], "\r\nStatus: 5.7.1\r\n") != NULL);
    struct part_text headers = parts_of(dsn, len, "text/rfc822-headers");
    CHECK(headers.count == 1);
    CHECK_STR(headers.text[0], "From: Bob <bob@example.org>\r\nTo: alice@example.com\r\n"
                               "Subject: cheap offer\r\nMessage-ID: <m1@example.org>\r\n");
    CHECK(memmem(dsn, len, "must not be sent back", 21) == NULL);
    CHECK(len > 4 && memcmp(dsn + len - 4, "--\r\n", 4) == 0);

    /* The same input gives the same bytes. */
    size_t len2 = 0;
    char *again = reject(original, strlen(original), "alice@example.com",
                         "I do not want offers.", &len2, &rc);
    CHECK(again != NULL && len2 == len && memcmp(again, dsn, len) == 0);
    free(again);
    free(dsn);
}

static void
test_senders(void)
{
    char *dsn = NULL;
    size_t len = 0;
    CHECK(sieve_reject_compose(original, strlen(original), "", "a@x", "r", 1, "mx", 0, &dsn,
                               &len) == -EINVAL);
    CHECK(sieve_reject_compose(original, strlen(original), NULL, "a@x", "r", 1, "mx", 0, &dsn,
                               &len) == -EINVAL);
    CHECK(dsn == NULL);
    CHECK(sieve_reject_compose(original, strlen(original), "b@x", "a@x", "r", 1, "mx",
                               253402300800LL, &dsn, &len) == -EINVAL);
    char host[1100];
    memset(host, 'h', sizeof(host) - 1);
    host[sizeof(host) - 1] = '\0';
    CHECK(sieve_reject_compose(original, strlen(original), "b@x", "a@x", "r", 1, host, 0, &dsn,
                               &len) == -E2BIG);
    CHECK(dsn == NULL);
}

static void
test_text_forms(void)
{
    size_t len = 0;
    int rc;
    /* LF-only original, no Subject, a NUL and a lone CR in a field. */
    const char lf_header[] = "From: bob@example.org\nX-Odd: a\rb\n\nbody\n";
    char *dsn = reject(lf_header, sizeof(lf_header) - 1, "alice@example.com", "no", &len, &rc);
    CHECK(rc == 0);
    if (dsn != NULL) {
        CHECK_STR(field(dsn, len, "Subject"), "Automatically rejected mail");
        struct part_text headers = parts_of(dsn, len, "text/rfc822-headers");
        CHECK(headers.count == 1);
        CHECK_STR(headers.text[0], "From: bob@example.org\r\nX-Odd: a b\r\n");
    }
    free(dsn);

    /* A non-ASCII subject (RFC 2047 in, RFC 2047 out) and reason. */
    const char enc_header[] = "Subject: =?iso-8859-1?q?caf=E9?=\r\n\r\n";
    dsn = reject(enc_header, sizeof(enc_header) - 1, "alice@example.com",
                 "Nein, danke. Gr\xc3\xbc\xc3\x9f" "e\n", &len, &rc);
    CHECK(rc == 0);
    if (dsn != NULL) {
        /* "Rejected: café" */
        CHECK_STR(field(dsn, len, "Subject"), "=?UTF-8?B?UmVqZWN0ZWQ6IGNhZsOp?=");
        CHECK_STR(field(dsn, len, "Content-Transfer-Encoding"), "8bit");
        struct part_text text = parts_of(dsn, len, "text/plain");
        CHECK(text.count == 1);
        CHECK(strstr(text.text[0], "Gr\xc3\xbc\xc3\x9f" "e\r\n") != NULL);
    }
    free(dsn);

    /* A reason line over 998 bytes: quoted-printable, decoding back. */
    char reason[1300];
    memset(reason, 'r', 1200);
    memcpy(reason + 1200, " = end", 7);
    dsn = reject(original, strlen(original), "alice@example.com", reason, &len, &rc);
    CHECK(rc == 0);
    if (dsn != NULL) {
        CHECK(memmem(dsn, len, "Content-Transfer-Encoding: quoted-printable", 43) != NULL);
        struct part_text text = parts_of(dsn, len, "text/plain");
        CHECK(text.count == 1);
        CHECK(strstr(text.text[0], reason) != NULL);
    }
    free(dsn);

    /* An original line over 998 bytes is cut to 998. */
    char long_header[2100];
    size_t n = (size_t)snprintf(long_header, sizeof(long_header), "X-Long: ");
    memset(long_header + n, 'L', 1500);
    n += 1500;
    n += (size_t)snprintf(long_header + n, sizeof(long_header) - n, "\r\nTo: a@x\r\n\r\n");
    dsn = reject(long_header, n, "alice@example.com", "no", &len, &rc);
    CHECK(rc == 0);
    if (dsn != NULL) {
        struct part_text headers = parts_of(dsn, len, "text/rfc822-headers");
        CHECK(headers.count == 1);
        CHECK(headers.len[0] == 998 + 2 + strlen("To: a@x\r\n"));
    }
    free(dsn);

    /* A recipient in UTF-8 (RFC 6533), and one trying to add a field. */
    dsn = reject(original, strlen(original), "j\xc3\xbcrgen@example.com", "no", &len, &rc);
    CHECK(rc == 0);
    if (dsn != NULL) {
        struct part_text status = parts_of(dsn, len, "message/delivery-status");
        CHECK(strstr(status.text[0], "Final-Recipient: utf-8; j\xc3\xbcrgen@example.com\r\n") !=
              NULL);
        CHECK_STR(field(dsn, len, "Content-Transfer-Encoding"), "8bit");
    }
    free(dsn);
    dsn = reject(original, strlen(original), "a@x\r\nBcc: victim@example.net", "no", &len, &rc);
    CHECK(rc == 0);
    if (dsn != NULL) {
        CHECK(memmem(dsn, len, "\r\nBcc:", 6) == NULL);
    }
    free(dsn);

    /* An original header that tries to contain a boundary. */
    const char tricky[] = "Subject: x\r\nX-B: --=_toaster-reject-0123456789abcdef0123\r\n\r\n";
    dsn = reject(tricky, sizeof(tricky) - 1, "alice@example.com", "no", &len, &rc);
    CHECK(rc == 0);
    if (dsn != NULL) {
        struct part_text all = parts_of(dsn, len, "");
        CHECK(all.count == 4);
    }
    free(dsn);
}

static void
test_bounds(void)
{
    size_t base_len = 0;
    int rc;
    char *dsn = reject(original, strlen(original), "alice@example.com", "", &base_len, &rc);
    CHECK(rc == 0);
    free(dsn);

    /* reason_len bytes of short CRLF lines add exactly that. */
    const size_t max = SIEVE_REJECT_BYTES_MAX;
    char *reason = malloc(max + 2);
    if (reason == NULL) {
        abort();
    }
    for (size_t total = max - 1; total <= max + 1; total++) {
        size_t reason_len = total - base_len;
        memset(reason, 'z', reason_len);
        for (size_t i = 78; i + 3 < reason_len; i += 80) {
            reason[i] = '\r';
            reason[i + 1] = '\n';
        }
        reason[reason_len - 2] = '\r';
        reason[reason_len - 1] = '\n';
        reason[reason_len] = '\0';
        size_t len = 0;
        dsn = reject(original, strlen(original), "alice@example.com", reason, &len, &rc);
        if (total <= max) {
            CHECK(rc == 0);
            CHECK(len == total);
        } else {
            CHECK(rc == -E2BIG);
        }
        free(dsn);
    }
    free(reason);

    /* The copied header stops, on a whole line, at its bound. */
    size_t big_len = SIEVE_REJECT_HEADER_BYTES_MAX + 4096;
    char *big = malloc(big_len + 1);
    if (big == NULL) {
        abort();
    }
    size_t n = 0;
    while (n + 100 < big_len) {
        n += (size_t)snprintf(big + n, big_len + 1 - n, "X-Filler: %088zu\r\n", n);
    }
    n += (size_t)snprintf(big + n, big_len + 1 - n, "\r\n");
    size_t len = 0;
    dsn = reject(big, n, "alice@example.com", "no", &len, &rc);
    CHECK(rc == 0);
    if (dsn != NULL) {
        struct part_text headers = parts_of(dsn, len, "text/rfc822-headers");
        CHECK(headers.count == 1);
        CHECK(headers.len[0] <= SIEVE_REJECT_HEADER_BYTES_MAX);
        CHECK(headers.len[0] > SIEVE_REJECT_HEADER_BYTES_MAX - 100);
        CHECK(headers.len[0] % 100 == 0); /* whole 100-byte lines */
    }
    free(dsn);
    free(big);
}

int
main(void)
{
    test_basic();
    test_senders();
    test_text_forms();
    test_bounds();
    UNIT_DONE();
}
