/*
 * store/dsn.c - delivery status notifications for queued mail (RFC 3464,
 * RFC 3461 NOTIFY/RET/ENVID/ORCPT, RFC 6522 multipart/report, RFC 6533
 * for UTF-8).
 *
 * Builds the three parts apart (a Postfix-like text, the delivery-status
 * fields, the original or its header block), picks a boundary none of
 * them holds, then joins them under the DSN's own header. Text that came
 * from outside (addresses, ORCPT, ENVID, remote replies and names) goes
 * through one cleaner that turns controls into spaces, so nothing can
 * start a field or a line of its own. Owns nothing past a call but the
 * buffer it returns. Pure (the caller passes every time), any thread.
 * Limits: DSN_BYTES_MAX, DSN_RETURN_BYTES_MAX, DSN_HEADER_BYTES_MAX,
 * DSN_REPLY_BYTES_MAX, QUEUE_RCPTS_MAX reports, DSN_BOUNDARY_TRIES, lines
 * of at most 998 bytes.
 */
#include "store/dsn.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/assertions.h"
#include "core/utf8.h"
#include "proto/mail_compose.h"
#include "proto/smtp/smtp_parser.h"

#define DSN_REMOTE_BYTES_MAX 255u   /* a remote's name, as a DNS name */
#define DSN_ADDR_TYPE_BYTES_MAX 32u /* "rfc822", "utf-8" */
#define DSN_WRAP_COLUMNS 76u        /* the text part's lines, as Postfix wraps */
#define DSN_DATE_BYTES 40u          /* "Sat, 05 Dec 2026 02:10:00 +0000" and a NUL */

static_assert(2u * DSN_RETURN_BYTES_MAX + DSN_HEADER_BYTES_MAX < DSN_BYTES_MAX,
              "the original leaves room for the report");
static_assert(QUEUE_REPLY_BYTES - 1 <= DSN_REPLY_BYTES_MAX, "a queued reply is never cut");
/* "Diagnostic-Code: smtp; " + reply, and "<address>: host <name> said: "
 * on a line of its own, stay within a line. */
static_assert(23 + DSN_REPLY_BYTES_MAX <= MAIL_COMPOSE_LINE_BYTES_MAX, "reply line");
/* Per recipient: the text line (a piece of at most
 * DSN_RCPT_TEXT_BYTES_MAX, grown by wrapping by at most 6 bytes a line of
 * 76) and the status block (two addresses, the remote's name, the reply
 * and fixed fields); QUEUE_RCPTS_MAX of them with the original fit. */
#define DSN_RCPT_TEXT_BYTES_MAX 4096u
#define DSN_RCPT_STATUS_BYTES_MAX                                                                  \
    (2u * (SMTP_ADDRESS_BYTES_MAX + 64u) + DSN_REMOTE_BYTES_MAX + DSN_REPLY_BYTES_MAX + 256u)
static_assert((size_t)QUEUE_RCPTS_MAX * (DSN_RCPT_TEXT_BYTES_MAX * 2u + DSN_RCPT_STATUS_BYTES_MAX) +
                      2u * DSN_RETURN_BYTES_MAX + DSN_HEADER_BYTES_MAX + 8192u <
                  DSN_BYTES_MAX,
              "DSN_BYTES_MAX is not reached by reports within their bounds");

enum dsn_kind { DSN_KIND_FAILURE, DSN_KIND_DELAY, DSN_KIND_SUCCESS };

/* What one report says, cleaned and decided before any part is written. */
struct dsn_line {
    const struct queue_rcpt *rcpt;
    const struct dsn_rcpt_report *report;
    const char *reply;
    size_t reply_len;
    char orcpt_type[DSN_ADDR_TYPE_BYTES_MAX + 1];
    char orcpt[QUEUE_ORCPT_BYTES];
    size_t orcpt_len; /* 0: no Original-Recipient field */
};

static int format_date(int64_t unix_seconds, char out[DSN_DATE_BYTES]);
static void put_text(struct mail_compose *out, const char *s, size_t len, size_t len_max,
                     bool is_utf8_allowed);
static void decode_orcpt(const char *orcpt, struct dsn_line *line);
static void write_text_part(struct mail_compose *out, const struct dsn_request *request,
                            enum dsn_kind kind, const struct dsn_line *lines, size_t line_count);
static void write_rcpt_text(struct mail_compose *out, const struct dsn_line *line);
static void write_wrapped(struct mail_compose *out, const char *text, size_t len);
static void write_duration(struct mail_compose *out, int64_t seconds);
static int write_status_part(struct mail_compose *out, const struct dsn_request *request,
                             const struct dsn_line *lines, size_t line_count, bool is_global);
static bool copy_full(struct mail_compose *out, const char *msg, size_t len);
static size_t header_block_len(const char *msg, size_t len);

int
dsn_compose(const struct dsn_request *request, struct dsn_result *result_out)
{
    ASSERT(request != NULL);
    ASSERT(result_out != NULL);
    ASSERT(request->entry != NULL);
    ASSERT(request->reports != NULL || request->report_count == 0);
    ASSERT(request->message != NULL || request->message_len == 0);
    memset(result_out, 0, sizeof(*result_out));
    const struct queue_entry *entry = request->entry;
    if (entry->mail_from[0] == '\0') {
        return -EINVAL; /* never a DSN to the null sender */
    }
    const char *hostname = request->hostname;
    size_t hostname_len = hostname != NULL ? strlen(hostname) : 0;
    if (hostname_len == 0 || hostname_len > DSN_REMOTE_BYTES_MAX) {
        return -EINVAL;
    }
    for (size_t i = 0; i < hostname_len; i++) {
        unsigned char c = (unsigned char)hostname[i];
        if (c <= 0x20 || c >= 0x7f || c == '<' || c == '>' || c == '@' || c == ';') {
            return -EINVAL;
        }
    }
    if (request->report_count > QUEUE_RCPTS_MAX) {
        return -EINVAL;
    }
    char date_now[DSN_DATE_BYTES];
    int date_now_len = format_date(request->now, date_now);
    if (date_now_len < 0) {
        return -EINVAL;
    }

    /* Which reports NOTIFY lets through, and the kind of the whole. */
    struct dsn_line *lines = NULL;
    if (request->report_count > 0) {
        lines = calloc(request->report_count, sizeof(*lines));
        if (lines == NULL) {
            return -ENOMEM;
        }
    }
    size_t line_count = 0;
    bool has_failed = false;
    bool has_delayed = false;
    bool is_global = !mail_compose_is_ascii(entry->mail_from, strlen(entry->mail_from));
    for (size_t i = 0; i < request->report_count; i++) {
        const struct dsn_rcpt_report *report = &request->reports[i];
        ASSERT(report->action >= DSN_ACTION_FAILED && report->action <= DSN_ACTION_RELAYED);
        if (report->rcpt_index >= entry->rcpt_count) {
            free(lines);
            return -EINVAL;
        }
        const struct queue_rcpt *rcpt = &entry->rcpts[report->rcpt_index];
        if (!dsn_is_wanted(rcpt->notify, report->action)) {
            continue;
        }
        struct dsn_line *line = &lines[line_count++];
        line->rcpt = rcpt;
        line->report = report;
        line->reply = report->reply != NULL      ? report->reply
                      : rcpt->last_reply != NULL ? rcpt->last_reply
                                                 : "";
        line->reply_len = strlen(line->reply);
        decode_orcpt(rcpt->orcpt, line);
        has_failed = has_failed || report->action == DSN_ACTION_FAILED;
        has_delayed = has_delayed || report->action == DSN_ACTION_DELAYED;
        if (!mail_compose_is_ascii(rcpt->address, strlen(rcpt->address)) ||
            !mail_compose_is_ascii(line->orcpt, line->orcpt_len)) {
            is_global = true;
        }
    }
    if (line_count == 0) {
        free(lines);
        return -ENODATA;
    }
    enum dsn_kind kind = has_failed    ? DSN_KIND_FAILURE
                         : has_delayed ? DSN_KIND_DELAY
                                       : DSN_KIND_SUCCESS;

    struct mail_compose text = {.bytes_max = DSN_BYTES_MAX};
    struct mail_compose status = {.bytes_max = DSN_BYTES_MAX};
    /* A returned message grows by its line ends made CRLF: at most double. */
    struct mail_compose copy = {.bytes_max = 2u * DSN_RETURN_BYTES_MAX};
    struct mail_compose out = {.bytes_max = DSN_BYTES_MAX};
    int rc = 0;

    /* Part 1: the explanation. Addresses may be UTF-8 (SMTPUTF8). */
    bool is_text_utf8 = is_global;
    mail_compose_str(&text, "Content-Description: Notification\r\n");
    mail_compose_str(&text, is_text_utf8 ? "Content-Type: text/plain; charset=utf-8\r\n"
                                            "Content-Transfer-Encoding: 8bit\r\n\r\n"
                                          : "Content-Type: text/plain; charset=us-ascii\r\n\r\n");
    write_text_part(&text, request, kind, lines, line_count);

    /* Part 2: the machine-readable report. */
    mail_compose_str(&status, "Content-Description: Delivery report\r\n");
    mail_compose_str(&status, is_global ? "Content-Type: message/global-delivery-status\r\n"
                                           "Content-Transfer-Encoding: 8bit\r\n\r\n"
                                         : "Content-Type: message/delivery-status\r\n\r\n");
    rc = write_status_part(&status, request, lines, line_count, is_global);

    /* Part 3: the original, whole or its header block (see dsn.h). */
    size_t header_len = header_block_len(request->message, request->message_len);
    bool is_header_ascii = mail_compose_is_ascii(request->message, header_len);
    bool is_full = kind == DSN_KIND_FAILURE && entry->ret != QUEUE_RET_HDRS &&
                   request->message_bytes <= DSN_RETURN_BYTES_MAX &&
                   request->message_len >= request->message_bytes;
    if (is_full) {
        is_full = copy_full(&copy, request->message, (size_t)request->message_bytes);
    }
    if (!is_full) {
        free(copy.bytes);
        copy = (struct mail_compose){.bytes_max = DSN_HEADER_BYTES_MAX};
        mail_compose_copy_header(&copy, request->message, header_len);
    }
    bool is_copy_ascii = copy.error != 0 || mail_compose_is_ascii(copy.bytes, copy.len);
    if (!is_full) {
        is_header_ascii = is_copy_ascii; /* what was copied, not what was cut off */
    }
    if (rc == 0) {
        rc = text.error != 0 ? text.error : status.error != 0 ? status.error : copy.error;
    }

    /* The boundary, from a hash of everything the message will hold: a
     * sender cannot write the boundary its own message will be given. */
    char boundary[DSN_BOUNDARY_BYTES];
    char salt[65];
    int boundary_len = 0;
    if (rc == 0) {
        char text_hex[65];
        char status_hex[65];
        char copy_hex[65];
        mail_compose_sha256_hex(text.bytes, text.len, text_hex);
        mail_compose_sha256_hex(status.bytes, status.len, status_hex);
        mail_compose_sha256_hex(copy.len > 0 ? copy.bytes : "", copy.len, copy_hex);
        char seed[300];
        int seed_len = snprintf(seed, sizeof(seed), "%s|%lld|%s|%s|%s", entry->id,
                                (long long)request->now, text_hex, status_hex, copy_hex);
        ASSERT(seed_len > 0 && (size_t)seed_len < sizeof(seed));
        mail_compose_sha256_hex(seed, (size_t)seed_len, salt);
        const char *parts[3] = {text.bytes, status.bytes, copy.bytes};
        size_t part_lens[3] = {text.len, status.len, copy.len};
        boundary_len = dsn_boundary_pick(parts, part_lens, 3, salt, boundary);
        if (boundary_len < 0) {
            rc = -E2BIG; /* crafted to hold every boundary we would try */
        }
    }

    if (rc == 0) {
        static const char *const subjects[] = {
            [DSN_KIND_FAILURE] = "Undelivered Mail Returned to Sender",
            [DSN_KIND_DELAY] = "Delayed Mail (still being retried)",
            [DSN_KIND_SUCCESS] = "Successful Mail Delivery Report",
        };
        mail_compose_str(&out, "Date: ");
        mail_compose_bytes(&out, date_now, (size_t)date_now_len);
        mail_compose_str(&out, "\r\nFrom: Mail Delivery System <MAILER-DAEMON@");
        mail_compose_str(&out, hostname);
        mail_compose_str(&out, ">\r\nSubject: ");
        mail_compose_str(&out, subjects[kind]);
        mail_compose_str(&out, "\r\nTo: <");
        put_text(&out, entry->mail_from, strlen(entry->mail_from), SMTP_ADDRESS_BYTES_MAX, true);
        mail_compose_str(&out, ">\r\nAuto-Submitted: auto-replied\r\nMessage-ID: <dsn.");
        char now_text[32];
        int now_len = snprintf(now_text, sizeof(now_text), "%lld.", (long long)request->now);
        ASSERT(now_len > 0 && (size_t)now_len < sizeof(now_text));
        mail_compose_bytes(&out, now_text, (size_t)now_len);
        mail_compose_bytes(&out, salt + 40, 24);
        mail_compose_str(&out, ".");
        put_text(&out, entry->id, strnlen(entry->id, sizeof(entry->id)), sizeof(entry->id), false);
        mail_compose_str(&out, "@");
        mail_compose_str(&out, hostname);
        mail_compose_str(&out, ">\r\nMIME-Version: 1.0\r\n"
                                "Content-Type: multipart/report; report-type=delivery-status;"
                                "\r\n boundary=\"");
        mail_compose_bytes(&out, boundary, (size_t)boundary_len);
        mail_compose_str(&out, "\"\r\n");
        bool is_8bit = is_text_utf8 || is_global || !is_copy_ascii;
        if (is_8bit) {
            mail_compose_str(&out, "Content-Transfer-Encoding: 8bit\r\n");
        }
        mail_compose_str(&out, "\r\nThis is a MIME-encapsulated message.\r\n\r\n--");
        mail_compose_bytes(&out, boundary, (size_t)boundary_len);
        mail_compose_str(&out, "\r\n");
        mail_compose_bytes(&out, text.bytes, text.len);
        mail_compose_str(&out, "\r\n--");
        mail_compose_bytes(&out, boundary, (size_t)boundary_len);
        mail_compose_str(&out, "\r\n");
        mail_compose_bytes(&out, status.bytes, status.len);
        mail_compose_str(&out, "\r\n--");
        mail_compose_bytes(&out, boundary, (size_t)boundary_len);
        mail_compose_str(&out, "\r\n");
        if (is_full) {
            mail_compose_str(&out, "Content-Description: Undelivered Message\r\n");
            mail_compose_str(&out, is_header_ascii ? "Content-Type: message/rfc822\r\n"
                                                    : "Content-Type: message/global\r\n");
        } else {
            mail_compose_str(&out, kind == DSN_KIND_FAILURE
                                        ? "Content-Description: Undelivered Message Headers\r\n"
                                        : "Content-Description: Message Headers\r\n");
            mail_compose_str(&out, is_header_ascii ? "Content-Type: text/rfc822-headers\r\n"
                                                    : "Content-Type: message/global-headers\r\n");
        }
        if (!is_copy_ascii) {
            mail_compose_str(&out, "Content-Transfer-Encoding: 8bit\r\n");
        }
        mail_compose_str(&out, "\r\n");
        mail_compose_bytes(&out, copy.bytes, copy.len);
        mail_compose_str(&out, "\r\n--");
        mail_compose_bytes(&out, boundary, (size_t)boundary_len);
        mail_compose_str(&out, "--\r\n");
        rc = out.error;
        result_out->is_8bit = is_8bit;
    }
    if (rc == 0 && mail_compose_longest_line(out.bytes, out.len) > MAIL_COMPOSE_LINE_BYTES_MAX) {
        rc = -E2BIG;
    }
    free(text.bytes);
    free(status.bytes);
    free(copy.bytes);
    free(lines);
    if (rc != 0) {
        free(out.bytes);
        memset(result_out, 0, sizeof(*result_out));
        return rc;
    }
    result_out->bytes = out.bytes;
    result_out->len = out.len;
    result_out->report_count = line_count;
    result_out->is_utf8 = is_global;
    result_out->is_full_return = is_full;
    return 0;
}

bool
dsn_is_wanted(uint32_t notify, enum dsn_action action)
{
    if ((notify & QUEUE_NOTIFY_NEVER) != 0) {
        return false;
    }
    switch (action) {
    case DSN_ACTION_FAILED:
        return notify == 0 || (notify & QUEUE_NOTIFY_FAILURE) != 0;
    case DSN_ACTION_DELAYED:
        return notify == 0 || (notify & QUEUE_NOTIFY_DELAY) != 0;
    case DSN_ACTION_DELIVERED:
    case DSN_ACTION_RELAYED:
        return (notify & QUEUE_NOTIFY_SUCCESS) != 0;
    }
    ASSERT(false);
    return false;
}

/* "d.d{1,3}.d{1,3}" at s, followed by a blank or the end. Returns its
 * length, or 0. */
static size_t
enhanced_code_len(const char *s)
{
    size_t i = 0;
    if (s[i] != '2' && s[i] != '4' && s[i] != '5') {
        return 0;
    }
    i++;
    for (int group = 0; group < 2; group++) {
        if (s[i] != '.') {
            return 0;
        }
        i++;
        size_t digits = 0;
        while (digits < 4 && s[i] >= '0' && s[i] <= '9') {
            digits++;
            i++;
        }
        if (digits == 0 || digits > 3) {
            return 0;
        }
    }
    return s[i] == '\0' || s[i] == ' ' || s[i] == '\t' ? i : 0;
}

size_t
dsn_status(const char *reply, enum dsn_action action, char status_out[16])
{
    char class_wanted = action == DSN_ACTION_FAILED    ? '5'
                        : action == DSN_ACTION_DELAYED ? '4'
                                                       : '2';
    char basic = '\0';
    if (reply != NULL && reply[0] >= '2' && reply[0] <= '5' && reply[1] >= '0' && reply[1] <= '9' &&
        reply[2] >= '0' && reply[2] <= '9' &&
        (reply[3] == ' ' || reply[3] == '-' || reply[3] == '\0')) {
        basic = reply[0];
        /* A delay is class 4 whatever the reply; a failure may be 4 (the
         * message expired after temporary errors, as Postfix reports). */
        bool is_fitting = action == DSN_ACTION_FAILED    ? basic == '5' || basic == '4'
                          : action == DSN_ACTION_DELAYED ? basic == '4'
                                                         : basic == '2';
        if (!is_fitting) {
            basic = '\0';
        } else if (reply[3] != '\0') {
            size_t n = enhanced_code_len(reply + 4);
            if (n > 0 && reply[4] == basic) {
                memcpy(status_out, reply + 4, n);
                status_out[n] = '\0';
                return n;
            }
        }
    }
    status_out[0] = basic != '\0' ? basic : class_wanted;
    memcpy(status_out + 1, ".0.0", 5);
    return 5;
}

int
dsn_boundary_pick(const char *const parts[], const size_t part_lens[], size_t part_count,
                  const char *salt, char boundary_out[DSN_BOUNDARY_BYTES])
{
    ASSERT(parts != NULL || part_count == 0);
    ASSERT(salt != NULL);
    for (unsigned attempt = 0; attempt < DSN_BOUNDARY_TRIES; attempt++) {
        char seed[128];
        int seed_len = snprintf(seed, sizeof(seed), "%u|%.100s", attempt, salt);
        ASSERT(seed_len > 0 && (size_t)seed_len < sizeof(seed));
        char hex[65];
        mail_compose_sha256_hex(seed, (size_t)seed_len, hex);
        int n = snprintf(boundary_out, DSN_BOUNDARY_BYTES, "=_toaster-dsn-%.24s", hex);
        ASSERT(n > 0 && (size_t)n < DSN_BOUNDARY_BYTES);
        bool is_free = true;
        for (size_t i = 0; i < part_count && is_free; i++) {
            struct mail_compose view = {.bytes = (char *)parts[i], .len = part_lens[i]};
            is_free = parts[i] == NULL || !mail_compose_contains(&view, boundary_out, (size_t)n);
        }
        if (is_free) {
            return n;
        }
    }
    boundary_out[0] = '\0';
    return -EEXIST;
}

/* ---- helpers --------------------------------------------------------- */

/* An RFC 5322 date-time in UTC, as the Received line writes it (the C
 * locale's English names: the daemon never sets another). */
static int
format_date(int64_t unix_seconds, char out[DSN_DATE_BYTES])
{
    time_t t = (time_t)unix_seconds;
    struct tm tm;
    if ((int64_t)t != unix_seconds || gmtime_r(&t, &tm) == NULL || tm.tm_year + 1900 < 1970 ||
        tm.tm_year + 1900 > 9999) {
        return -EINVAL; /* four digits, and no time before the epoch */
    }
    size_t n = strftime(out, DSN_DATE_BYTES, "%a, %d %b %Y %H:%M:%S +0000", &tm);
    return n == 0 ? -EINVAL : (int)n;
}

/* Outside text inside a field or line: controls become spaces; bytes over
 * 0x7f stay only where UTF-8 is allowed and the text is well-formed UTF-8,
 * else they become '?'; at most len_max bytes, cut before a UTF-8
 * sequence that would cross the cut. */
static void
put_text(struct mail_compose *out, const char *s, size_t len, size_t len_max, bool is_utf8_allowed)
{
    if (len > len_max) {
        len = len_max;
        while (len > 0 && ((unsigned char)s[len] & 0xc0) == 0x80) {
            len--; /* s[len] continues a sequence: cut before its start */
        }
    }
    bool is_utf8_kept = is_utf8_allowed && utf8_is_valid(s, len);
    size_t start = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        const char *replacement = NULL;
        if (c < 0x20 || c == 0x7f) {
            replacement = " ";
        } else if (c >= 0x80 && !is_utf8_kept) {
            replacement = "?";
        }
        if (replacement != NULL) {
            mail_compose_bytes(out, s + start, i - start);
            mail_compose_str(out, replacement);
            start = i + 1;
        }
    }
    mail_compose_bytes(out, s + start, len - start);
}

/* ORCPT as queued: "addr-type;xtext". A type that is no atom or a value
 * that is no xtext leaves the field out (it cannot be echoed faithfully). */
static void
decode_orcpt(const char *orcpt, struct dsn_line *line)
{
    line->orcpt_len = 0;
    if (orcpt == NULL || orcpt[0] == '\0') {
        return;
    }
    const char *semi = strchr(orcpt, ';');
    if (semi == NULL) {
        return;
    }
    size_t type_len = (size_t)(semi - orcpt);
    if (type_len == 0 || type_len > DSN_ADDR_TYPE_BYTES_MAX) {
        return;
    }
    for (size_t i = 0; i < type_len; i++) {
        unsigned char c = (unsigned char)orcpt[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-')) {
            return;
        }
    }
    const char *value = semi + 1;
    while (*value == ' ') {
        value++;
    }
    struct span in = {.ptr = value, .len = strlen(value)};
    long n = smtp_xtext_decode(in, line->orcpt, sizeof(line->orcpt));
    if (n <= 0 || (size_t)n >= sizeof(line->orcpt)) {
        return;
    }
    memcpy(line->orcpt_type, orcpt, type_len);
    line->orcpt_type[type_len] = '\0';
    line->orcpt_len = (size_t)n;
    line->orcpt[n] = '\0';
}

static void
write_text_part(struct mail_compose *out, const struct dsn_request *request, enum dsn_kind kind,
                const struct dsn_line *lines, size_t line_count)
{
    mail_compose_str(out, "This is the mail system at host ");
    mail_compose_str(out, request->hostname);
    mail_compose_str(out, ".\r\n\r\n");
    switch (kind) {
    case DSN_KIND_FAILURE:
        mail_compose_str(out, "I'm sorry to have to inform you that your message could not\r\n"
                               "be delivered to one or more recipients. It's attached below.\r\n");
        break;
    case DSN_KIND_DELAY: {
        mail_compose_str(out,
                          "####################################################################\r\n"
                          "# THIS IS A WARNING ONLY.  YOU DO NOT NEED TO RESEND YOUR MESSAGE. #\r\n"
                          "####################################################################\r\n"
                          "\r\nYour message could not be delivered for ");
        int64_t waited = request->now - request->entry->arrival;
        write_duration(out, waited);
        mail_compose_str(out, ".\r\n");
        if (request->retry_until > request->entry->arrival) {
            mail_compose_str(out, "It will be retried until it is ");
            write_duration(out, request->retry_until - request->entry->arrival);
            mail_compose_str(out, " old.\r\n");
        }
        break;
    }
    case DSN_KIND_SUCCESS:
        mail_compose_str(out, "Your message was successfully delivered to the destination(s)\r\n"
                               "listed below. If the message was delivered to mailbox you will\r\n"
                               "receive no further notifications. Otherwise you may still "
                               "receive\r\nnotifications of mail delivery errors from other "
                               "systems.\r\n");
        break;
    }
    if (kind != DSN_KIND_SUCCESS) {
        mail_compose_str(out, "\r\nFor further assistance, please send mail to postmaster.\r\n"
                               "\r\nIf you do so, please include this problem report. You can\r\n"
                               "delete your own text from the attached returned message.\r\n");
    }
    mail_compose_str(out, "\r\n                   The mail system\r\n");
    for (size_t i = 0; i < line_count; i++) {
        mail_compose_str(out, "\r\n");
        write_rcpt_text(out, &lines[i]);
    }
}

/* "<address>: host mx said: 550 ..." wrapped as Postfix wraps it. The
 * pieces are cleaned into a scratch buffer first, then wrapped. */
static void
write_rcpt_text(struct mail_compose *out, const struct dsn_line *line)
{
    struct mail_compose piece = {.bytes_max = DSN_RCPT_TEXT_BYTES_MAX};
    const struct dsn_rcpt_report *report = line->report;
    mail_compose_str(&piece, "<");
    put_text(&piece, line->rcpt->address, strlen(line->rcpt->address), SMTP_ADDRESS_BYTES_MAX,
             true);
    mail_compose_str(&piece, ">");
    if (line->orcpt_len > 0 && strcasecmp(line->orcpt, line->rcpt->address) != 0) {
        mail_compose_str(&piece, " (expanded from <");
        put_text(&piece, line->orcpt, line->orcpt_len, SMTP_ADDRESS_BYTES_MAX, true);
        mail_compose_str(&piece, ">)");
    }
    mail_compose_str(&piece, ": ");
    bool has_remote = report->remote_mta != NULL && report->remote_mta[0] != '\0';
    if (has_remote) {
        mail_compose_str(&piece, report->action == DSN_ACTION_DELIVERED ||
                                          report->action == DSN_ACTION_RELAYED
                                      ? "delivery via "
                                      : "host ");
        put_text(&piece, report->remote_mta, strlen(report->remote_mta), DSN_REMOTE_BYTES_MAX,
                 false);
        mail_compose_str(&piece, line->reply_len > 0
                                      ? (report->action == DSN_ACTION_DELIVERED ||
                                                 report->action == DSN_ACTION_RELAYED
                                             ? ": "
                                             : " said: ")
                                      : "");
    }
    if (line->reply_len > 0) {
        put_text(&piece, line->reply, line->reply_len, DSN_REPLY_BYTES_MAX, false);
    } else if (!has_remote) {
        static const char *const what[] = {
            [DSN_ACTION_FAILED] = "delivery failed",
            [DSN_ACTION_DELAYED] = "delivery temporarily suspended",
            [DSN_ACTION_DELIVERED] = "delivered",
            [DSN_ACTION_RELAYED] = "relayed",
        };
        mail_compose_str(&piece, what[report->action]);
    }
    if (piece.error != 0) {
        if (out->error == 0) {
            out->error = piece.error;
        }
    } else {
        write_wrapped(out, piece.bytes, piece.len);
    }
    free(piece.bytes);
}

/* Words joined into lines of at most DSN_WRAP_COLUMNS, continuation lines
 * indented by four spaces; a longer word stands on a line of its own
 * (its length is bounded by the pieces' caps). */
static void
write_wrapped(struct mail_compose *out, const char *text, size_t len)
{
    size_t column = 0;
    size_t pos = 0;
    bool is_line_start = true;
    while (pos < len) {
        while (pos < len && text[pos] == ' ') {
            pos++;
        }
        size_t word_end = pos;
        while (word_end < len && text[word_end] != ' ') {
            word_end++;
        }
        size_t word_len = word_end - pos;
        if (word_len == 0) {
            break;
        }
        if (!is_line_start && column + 1 + word_len > DSN_WRAP_COLUMNS) {
            mail_compose_str(out, "\r\n    ");
            column = 4;
            is_line_start = true;
        }
        if (!is_line_start) {
            mail_compose_str(out, " ");
            column++;
        }
        mail_compose_bytes(out, text + pos, word_len);
        column += word_len;
        is_line_start = false;
        pos = word_end;
    }
    mail_compose_str(out, "\r\n");
}

/* "N day(s)" when whole days, else "N hour(s)", else "N minute(s)"
 * (rounded down, as Postfix counts). */
static void
write_duration(struct mail_compose *out, int64_t seconds)
{
    char text[48];
    int n;
    if (seconds < 0) {
        seconds = 0;
    }
    if (seconds >= 86400 && seconds % 86400 == 0) {
        n = snprintf(text, sizeof(text), "%lld day(s)", (long long)(seconds / 86400));
    } else if (seconds >= 3600) {
        n = snprintf(text, sizeof(text), "%lld hour(s)", (long long)(seconds / 3600));
    } else {
        n = snprintf(text, sizeof(text), "%lld minute(s)", (long long)(seconds / 60));
    }
    ASSERT(n > 0 && (size_t)n < sizeof(text));
    mail_compose_bytes(out, text, (size_t)n);
}

static void
put_address_field(struct mail_compose *out, const char *name, const char *type,
                  const char *address, size_t len, bool is_global)
{
    mail_compose_str(out, name);
    bool is_ascii = mail_compose_is_ascii(address, len);
    /* RFC 6533 3: a UTF-8 address is of type utf-8 (unitext in the
     * global form). */
    mail_compose_str(out, is_ascii || !is_global ? type : "utf-8");
    mail_compose_str(out, "; ");
    put_text(out, address, len, SMTP_ADDRESS_BYTES_MAX, is_global);
    mail_compose_str(out, "\r\n");
}

static int
write_status_part(struct mail_compose *out, const struct dsn_request *request,
                  const struct dsn_line *lines, size_t line_count, bool is_global)
{
    const struct queue_entry *entry = request->entry;
    char date[DSN_DATE_BYTES];
    int date_len;
    mail_compose_str(out, "Reporting-MTA: dns; ");
    mail_compose_str(out, request->hostname);
    mail_compose_str(out, "\r\nX-Toaster-Queue-ID: ");
    put_text(out, entry->id, strnlen(entry->id, sizeof(entry->id)), sizeof(entry->id), false);
    mail_compose_str(out, "\r\n");
    put_address_field(out, "X-Toaster-Sender: ", "rfc822", entry->mail_from,
                      strlen(entry->mail_from), is_global);
    if (entry->envid[0] != '\0') {
        mail_compose_str(out, "Original-Envelope-Id: ");
        put_text(out, entry->envid, strnlen(entry->envid, sizeof(entry->envid)),
                 QUEUE_ENVID_BYTES - 1, false);
        mail_compose_str(out, "\r\n");
    }
    date_len = format_date(entry->arrival, date);
    if (date_len > 0) {
        mail_compose_str(out, "Arrival-Date: ");
        mail_compose_bytes(out, date, (size_t)date_len);
        mail_compose_str(out, "\r\n");
    }
    for (size_t i = 0; i < line_count; i++) {
        const struct dsn_line *line = &lines[i];
        const struct dsn_rcpt_report *report = line->report;
        static const char *const actions[] = {
            [DSN_ACTION_FAILED] = "failed",
            [DSN_ACTION_DELAYED] = "delayed",
            [DSN_ACTION_DELIVERED] = "delivered",
            [DSN_ACTION_RELAYED] = "relayed",
        };
        mail_compose_str(out, "\r\n");
        put_address_field(out, "Final-Recipient: ", "rfc822", line->rcpt->address,
                          strlen(line->rcpt->address), is_global);
        if (line->orcpt_len > 0) {
            put_address_field(out, "Original-Recipient: ", line->orcpt_type, line->orcpt,
                              line->orcpt_len, is_global);
        }
        mail_compose_str(out, "Action: ");
        mail_compose_str(out, actions[report->action]);
        char status[16];
        size_t status_len = dsn_status(line->reply, report->action, status);
        mail_compose_str(out, "\r\nStatus: ");
        mail_compose_bytes(out, status, status_len);
        mail_compose_str(out, "\r\n");
        if (report->remote_mta != NULL && report->remote_mta[0] != '\0') {
            mail_compose_str(out, "Remote-MTA: dns; ");
            put_text(out, report->remote_mta, strlen(report->remote_mta), DSN_REMOTE_BYTES_MAX,
                     false);
            mail_compose_str(out, "\r\n");
        }
        /* Only a remote's answer is an SMTP diagnostic; our own text
         * (a failed connection) goes in the human part only. */
        if (line->reply_len >= 3 && line->reply[0] >= '2' && line->reply[0] <= '5' &&
            line->reply[1] >= '0' && line->reply[1] <= '9' && line->reply[2] >= '0' &&
            line->reply[2] <= '9') {
            mail_compose_str(out, "Diagnostic-Code: smtp; ");
            put_text(out, line->reply, line->reply_len, DSN_REPLY_BYTES_MAX, false);
            mail_compose_str(out, "\r\n");
        }
        date_len =
            format_date(report->last_attempt != 0 ? report->last_attempt : request->now, date);
        if (date_len > 0) {
            mail_compose_str(out, "Last-Attempt-Date: ");
            mail_compose_bytes(out, date, (size_t)date_len);
            mail_compose_str(out, "\r\n");
        }
        if (report->action == DSN_ACTION_DELAYED && request->retry_until > 0) {
            date_len = format_date(request->retry_until, date);
            if (date_len > 0) {
                mail_compose_str(out, "Will-Retry-Until: ");
                mail_compose_bytes(out, date, (size_t)date_len);
                mail_compose_str(out, "\r\n");
            }
        }
    }
    return out->error;
}

/* The whole message with CRLF line ends. False (out left partly written)
 * when it cannot be returned unchanged: a NUL, a lone CR, a line over 998
 * bytes, or over out's bound. */
static bool
copy_full(struct mail_compose *out, const char *msg, size_t len)
{
    size_t pos = 0;
    while (pos < len) {
        const char *lf = memchr(msg + pos, '\n', len - pos);
        size_t line_end = lf != NULL ? (size_t)(lf - msg) : len;
        size_t content_end = line_end;
        if (lf != NULL && content_end > pos && msg[content_end - 1] == '\r') {
            content_end--;
        }
        if (content_end - pos > MAIL_COMPOSE_LINE_BYTES_MAX) {
            return false;
        }
        if (memchr(msg + pos, '\0', content_end - pos) != NULL ||
            memchr(msg + pos, '\r', content_end - pos) != NULL) {
            return false;
        }
        mail_compose_bytes(out, msg + pos, content_end - pos);
        mail_compose_str(out, "\r\n");
        pos = lf != NULL ? line_end + 1 : len;
    }
    return out->error == 0;
}

/* Bytes of the header block: up to and including its empty line, or all
 * of msg when it has none. */
static size_t
header_block_len(const char *msg, size_t len)
{
    size_t pos = 0;
    while (pos < len) {
        const char *lf = memchr(msg + pos, '\n', len - pos);
        if (lf == NULL) {
            return len;
        }
        size_t line_end = (size_t)(lf - msg);
        size_t content = line_end - pos;
        if (content == 0 || (content == 1 && msg[pos] == '\r')) {
            return line_end + 1;
        }
        pos = line_end + 1;
    }
    return len;
}
