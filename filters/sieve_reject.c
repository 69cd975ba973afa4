/*
 * filters/sieve_reject.c - the delivery status notification a Sieve
 * "reject" sends after the SMTP transaction (RFC 5429 2.1, RFC 3464).
 *
 * Builds the three parts (the reason as text/plain, the
 * message/delivery-status fields, the original header block as
 * text/rfc822-headers) apart, picks a boundary none of them contains,
 * then joins them under the DSN's own header. Owns nothing past a call
 * but the buffer it returns. Pure (the caller passes now_unix), any
 * thread. Limits: SIEVE_REJECT_BYTES_MAX for the whole,
 * SIEVE_REJECT_HEADER_BYTES_MAX for the copied header, lines of at most
 * 998 bytes (longer reason lines make the text quoted-printable; longer
 * original header lines are cut), SIEVE_REJECT_BOUNDARY_TRIES boundaries.
 */
#include "filters/sieve_reject.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/assertions.h"
#include "proto/mail_compose.h"
#include "filters/sieve_date.h"
#include "proto/imap/imap_text.h"

#define SIEVE_REJECT_SUBJECT_BYTES_MAX 256u
#define SIEVE_REJECT_BOUNDARY_TRIES 16u
#define SIEVE_REJECT_BOUNDARY_BYTES 48u

static_assert(SIEVE_REJECT_HEADER_BYTES_MAX < SIEVE_REJECT_BYTES_MAX,
              "the header copy leaves room for the rest");

static void write_subject(struct mail_compose *out, const char *header, size_t len);

int
sieve_reject_compose(const char *original_header, size_t header_len,
                     const char *envelope_from, const char *recipient, const char *reason,
                     size_t reason_len, const char *hostname, int64_t now_unix,
                     char **bytes_out, size_t *len_out)
{
    ASSERT(original_header != NULL || header_len == 0);
    ASSERT(recipient != NULL);
    ASSERT(reason != NULL || reason_len == 0);
    ASSERT(hostname != NULL);
    ASSERT(bytes_out != NULL);
    ASSERT(len_out != NULL);
    *bytes_out = NULL;
    *len_out = 0;
    if (envelope_from == NULL || envelope_from[0] == '\0') {
        return -EINVAL;
    }
    if (reason == NULL) {
        reason = "";
    }
    struct sieve_datetime when = {.unix_seconds = now_unix, .zone_minutes = 0};
    char date[SIEVE_DATE_PART_BYTES];
    int date_len = sieve_date_part(&when, "std11", 5, date);
    if (date_len < 0) {
        return -EINVAL;
    }

    /* The three parts, each with its own header lines. */
    struct mail_compose text = {.bytes_max = SIEVE_REJECT_BYTES_MAX};
    struct mail_compose status = {.bytes_max = SIEVE_REJECT_BYTES_MAX};
    struct mail_compose copy = {.bytes_max = SIEVE_REJECT_HEADER_BYTES_MAX};
    struct mail_compose out = {.bytes_max = SIEVE_REJECT_BYTES_MAX};
    bool is_8bit = false;
    int rc = 0;

    mail_compose_str(&text, "Content-Type: text/plain; charset=utf-8\r\n");
    bool is_qp = mail_compose_longest_line(reason, reason_len) > MAIL_COMPOSE_LINE_BYTES_MAX;
    bool is_text_ascii = mail_compose_is_ascii(reason, reason_len) &&
                         mail_compose_is_ascii(recipient, strlen(recipient));
    if (is_qp) {
        mail_compose_str(&text, "Content-Transfer-Encoding: quoted-printable\r\n\r\n");
    } else if (!is_text_ascii) {
        mail_compose_str(&text, "Content-Transfer-Encoding: 8bit\r\n\r\n");
        is_8bit = true;
    } else {
        mail_compose_str(&text, "\r\n");
    }
    /* The introduction is ASCII apart from the address, which the QP
     * encoder handles like any other text. */
    struct mail_compose intro = {.bytes_max = SIEVE_REJECT_BYTES_MAX};
    mail_compose_str(&intro, "Your message to <");
    mail_compose_clean(&intro, recipient, strlen(recipient));
    mail_compose_str(&intro, "> was automatically rejected:\r\n\r\n");
    mail_compose_bytes(&intro, reason, reason_len);
    if (intro.error == 0) {
        if (is_qp) {
            mail_compose_qp(&text, intro.bytes, intro.len);
        } else {
            mail_compose_crlf(&text, intro.bytes, intro.len);
        }
        if (text.len < 2 || text.bytes[text.len - 1] != '\n') {
            mail_compose_str(&text, "\r\n");
        }
    }
    rc = intro.error;
    free(intro.bytes);

    mail_compose_str(&status, "Content-Type: message/delivery-status\r\n\r\n");
    mail_compose_str(&status, "Reporting-MTA: dns; ");
    mail_compose_clean(&status, hostname, strlen(hostname));
    mail_compose_str(&status, "\r\n\r\n");
    /* RFC 6533: an address that is not ASCII is of type utf-8. */
    bool is_rcpt_ascii = mail_compose_is_ascii(recipient, strlen(recipient));
    mail_compose_str(&status, is_rcpt_ascii ? "Final-Recipient: rfc822; "
                                             : "Final-Recipient: utf-8; ");
    mail_compose_clean(&status, recipient, strlen(recipient));
    mail_compose_str(&status, "\r\nAction: failed\r\nStatus: 5.7.1\r\n"
                               "Diagnostic-Code: smtp; 550 5.7.1 rejected by the recipient's "
                               "Sieve filter\r\nLast-Attempt-Date: ");
    mail_compose_bytes(&status, date, (size_t)date_len);
    mail_compose_str(&status, "\r\n");
    is_8bit = is_8bit || !is_rcpt_ascii;

    bool is_header_ascii = mail_compose_is_ascii(original_header, header_len);
    mail_compose_copy_header(&copy, original_header, header_len);

    if (rc == 0) {
        rc = text.error != 0 ? text.error : status.error != 0 ? status.error : copy.error;
    }

    /* A boundary in none of the parts, derived from a hash of the parts
     * themselves: the same input gives the same DSN, and a header cannot
     * be written to hold the boundary its own hash will give. */
    char boundary[SIEVE_REJECT_BOUNDARY_BYTES];
    char hex[65];
    char text_hex[65];
    char copy_hex[65];
    bool is_boundary_found = false;
    if (rc == 0) {
        mail_compose_sha256_hex(text.bytes, text.len, text_hex);
        mail_compose_sha256_hex(copy.len > 0 ? copy.bytes : "", copy.len, copy_hex);
    }
    for (unsigned attempt = 0; rc == 0 && attempt < SIEVE_REJECT_BOUNDARY_TRIES; attempt++) {
        char seed[192];
        int seed_len = snprintf(seed, sizeof(seed), "%u|%lld|%s|%s", attempt,
                                (long long)now_unix, text_hex, copy_hex);
        ASSERT(seed_len > 0);
        mail_compose_sha256_hex(seed, (size_t)seed_len < sizeof(seed) ? (size_t)seed_len
                                                                      : sizeof(seed) - 1,
                                 hex);
        int n = snprintf(boundary, sizeof(boundary), "=_toaster-reject-%.20s", hex);
        ASSERT(n > 0 && (size_t)n < sizeof(boundary));
        if (!mail_compose_contains(&text, boundary, (size_t)n) &&
            !mail_compose_contains(&copy, boundary, (size_t)n)) {
            is_boundary_found = true;
        }
        if (is_boundary_found) {
            break;
        }
    }
    if (rc == 0 && !is_boundary_found) {
        rc = -EINVAL; /* crafted to hold every boundary we would try */
    }

    if (rc == 0) {
        mail_compose_str(&out, "Message-ID: <reject.");
        char now_text[32];
        int now_len = snprintf(now_text, sizeof(now_text), "%lld.", (long long)now_unix);
        ASSERT(now_len > 0);
        mail_compose_bytes(&out, now_text, (size_t)now_len);
        mail_compose_bytes(&out, hex + 20, 24);
        mail_compose_str(&out, "@");
        mail_compose_clean(&out, hostname, strlen(hostname));
        mail_compose_str(&out, ">\r\nDate: ");
        mail_compose_bytes(&out, date, (size_t)date_len);
        mail_compose_str(&out, "\r\nFrom: Mail Delivery System <MAILER-DAEMON@");
        mail_compose_clean(&out, hostname, strlen(hostname));
        mail_compose_str(&out, ">\r\nTo: <");
        mail_compose_clean(&out, envelope_from, strlen(envelope_from));
        mail_compose_str(&out, ">\r\n");
        write_subject(&out, original_header, header_len);
        mail_compose_str(&out, "Auto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\n"
                                "Content-Type: multipart/report; report-type=delivery-status;"
                                "\r\n boundary=\"");
        mail_compose_str(&out, boundary);
        mail_compose_str(&out, "\"\r\n");
        if (is_8bit || !is_header_ascii) {
            mail_compose_str(&out, "Content-Transfer-Encoding: 8bit\r\n");
        }
        mail_compose_str(&out, "\r\nThis is a MIME-encapsulated message.\r\n\r\n--");
        mail_compose_str(&out, boundary);
        mail_compose_str(&out, "\r\n");
        mail_compose_bytes(&out, text.bytes, text.len);
        mail_compose_str(&out, "\r\n--");
        mail_compose_str(&out, boundary);
        mail_compose_str(&out, "\r\n");
        mail_compose_bytes(&out, status.bytes, status.len);
        mail_compose_str(&out, "\r\n--");
        mail_compose_str(&out, boundary);
        mail_compose_str(&out, is_header_ascii ? "\r\nContent-Type: text/rfc822-headers\r\n\r\n"
                                                : "\r\nContent-Type: text/rfc822-headers\r\n"
                                                  "Content-Transfer-Encoding: 8bit\r\n\r\n");
        mail_compose_bytes(&out, copy.bytes, copy.len);
        mail_compose_str(&out, "\r\n--");
        mail_compose_str(&out, boundary);
        mail_compose_str(&out, "--\r\n");
        rc = out.error;
    }
    if (rc == 0 && mail_compose_longest_line(out.bytes, out.len) > MAIL_COMPOSE_LINE_BYTES_MAX) {
        rc = -E2BIG; /* a line from recipient, envelope_from or hostname */
    }
    free(text.bytes);
    free(status.bytes);
    free(copy.bytes);
    if (rc != 0) {
        free(out.bytes);
        return rc;
    }
    *bytes_out = out.bytes;
    *len_out = out.len;
    return 0;
}

/* "Subject: Rejected: " + the original subject decoded, cut at
 * SIEVE_REJECT_SUBJECT_BYTES_MAX, controls made spaces, encoded when it
 * is not ASCII; "Automatically rejected mail" without one. */
static void
write_subject(struct mail_compose *out, const char *header, size_t len)
{
    struct mail_compose_field field;
    char subject[SIEVE_REJECT_SUBJECT_BYTES_MAX];
    size_t subject_len;
    if (mail_compose_field_find(header, len, "subject", &field)) {
        memcpy(subject, "Rejected: ", 10);
        size_t n = imap_text_decode_header(field.value, field.value_len, subject + 10,
                                           sizeof(subject) - 10);
        /* The decoder keeps the blank after the colon: drop leading blanks. */
        size_t skip = 0;
        while (skip < n && (subject[10 + skip] == ' ' || subject[10 + skip] == '\t')) {
            skip++;
        }
        memmove(subject + 10, subject + 10 + skip, n - skip);
        subject_len = 10 + n - skip;
    } else {
        subject_len = strlen("Automatically rejected mail");
        memcpy(subject, "Automatically rejected mail", subject_len);
    }
    ASSERT(subject_len <= sizeof(subject));
    for (size_t i = 0; i < subject_len; i++) {
        if ((unsigned char)subject[i] < 0x20 || subject[i] == 0x7f) {
            subject[i] = ' ';
        }
    }
    mail_compose_str(out, "Subject: ");
    if (mail_compose_is_ascii(subject, subject_len)) {
        mail_compose_bytes(out, subject, subject_len);
    } else {
        mail_compose_encoded(out, subject, subject_len);
    }
    mail_compose_str(out, "\r\n");
}
