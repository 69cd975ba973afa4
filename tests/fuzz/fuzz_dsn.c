/*
 * tests/fuzz/fuzz_dsn.c - libFuzzer harness for the delivery status
 * notifications of queued mail (store/dsn).
 *
 * Input: one byte of options (action, NOTIFY, RET, a second recipient),
 * then the remote's reply up to the first NUL, the ORCPT ("type;xtext")
 * up to the second NUL, and the original message (any bytes) after it.
 * Properties, on exact-size heap copies: dsn_compose returns 0 or
 * -ENODATA (exactly when NOTIFY refuses every report) or -E2BIG (the
 * boundary search failed); a DSN has only CRLF line ends, lines of at most
 * 998 bytes, no NUL; its header block holds only the fields we write; its
 * boundary occurs as exactly three part delimiters and one close at the
 * very end; the status part has one Final-Recipient per reported
 * recipient and no line that is not a field we write (nothing injected).
 *
 * Build: see tests/meson.build (needs OpenSSL for the boundary hash).
 */
#define _GNU_SOURCE /* memmem */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/dsn.h"
#include "tests/fuzz/fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool
starts_with_any(const char *line, size_t len, const char *const names[], size_t count)
{
    for (size_t i = 0; i < count; i++) {
        size_t n = strlen(names[i]);
        if (len >= n && memcmp(line, names[i], n) == 0) {
            return true;
        }
    }
    return false;
}

static size_t
count_occurrences(const char *hay, size_t len, const char *needle, size_t needle_len)
{
    size_t count = 0;
    const char *pos = hay;
    const char *end = hay + len;
    while (pos < end) {
        const char *hit = memmem(pos, (size_t)(end - pos), needle, needle_len);
        if (hit == NULL) {
            break;
        }
        count++;
        pos = hit + 1;
    }
    return count;
}

static void
check_dsn(const struct dsn_result *r)
{
    static const char *const header_fields[] = {"Date: ",           "From: ",
                                                "Subject: ",        "To: ",
                                                "Auto-Submitted: ", "Message-ID: ",
                                                "MIME-Version: ",   "Content-Type: ",
                                                " boundary=\"",     "Content-Transfer-Encoding: "};
    static const char *const status_fields[] = {"Reporting-MTA: ",
                                                "X-Toaster-Queue-ID: ",
                                                "X-Toaster-Sender: ",
                                                "Original-Envelope-Id: ",
                                                "Arrival-Date: ",
                                                "Final-Recipient: ",
                                                "Original-Recipient: ",
                                                "Action: ",
                                                "Status: ",
                                                "Remote-MTA: ",
                                                "Diagnostic-Code: ",
                                                "Last-Attempt-Date: ",
                                                "Will-Retry-Until: ",
                                                "Content-Description: ",
                                                "Content-Type: ",
                                                "Content-Transfer-Encoding: "};
    const char *b = r->bytes;
    size_t len = r->len;
    FUZZ_CHECK(len >= 2 && b[len - 2] == '\r' && b[len - 1] == '\n');
    FUZZ_CHECK(memchr(b, '\0', len) == NULL);
    size_t start = 0;
    bool is_header = true;
    for (size_t i = 0; i < len; i++) {
        if (b[i] == '\n') {
            FUZZ_CHECK(i > start && b[i - 1] == '\r');
            size_t line_len = i - 1 - start;
            FUZZ_CHECK(line_len <= 998);
            if (is_header) {
                if (line_len == 0) {
                    is_header = false;
                } else {
                    FUZZ_CHECK(starts_with_any(b + start, line_len, header_fields,
                                               sizeof(header_fields) / sizeof(header_fields[0])));
                }
            }
            start = i + 1;
        } else if (b[i] == '\r') {
            FUZZ_CHECK(i + 1 < len && b[i + 1] == '\n');
        }
    }
    const char *bp = memmem(b, len, "boundary=\"", 10);
    FUZZ_CHECK(bp != NULL);
    bp += 10;
    const char *q = memchr(bp, '"', len - (size_t)(bp - b));
    FUZZ_CHECK(q != NULL && q - bp < 64);
    char delim[80];
    int n = snprintf(delim, sizeof(delim), "\r\n--%.*s", (int)(q - bp), bp);
    FUZZ_CHECK(n > 0);
    FUZZ_CHECK(count_occurrences(b, len, delim, (size_t)n) == 4);
    char close[84];
    int c = snprintf(close, sizeof(close), "%s--\r\n", delim);
    FUZZ_CHECK(len >= (size_t)c && memcmp(b + len - (size_t)c, close, (size_t)c) == 0);

    /* The status part: between the second and third delimiters. */
    const char *p1 = memmem(b, len, delim, (size_t)n);
    const char *p2 = memmem(p1 + 1, len - (size_t)(p1 + 1 - b), delim, (size_t)n);
    FUZZ_CHECK(p2 != NULL);
    const char *p3 = memmem(p2 + 1, len - (size_t)(p2 + 1 - b), delim, (size_t)n);
    FUZZ_CHECK(p3 != NULL);
    const char *s = p2 + n + 2;
    size_t finals = 0;
    while (s < p3) {
        const char *eol = memmem(s, (size_t)(p3 + 2 - s), "\r\n", 2);
        FUZZ_CHECK(eol != NULL);
        size_t line_len = (size_t)(eol - s);
        if (line_len > 0) {
            FUZZ_CHECK(starts_with_any(s, line_len, status_fields,
                                       sizeof(status_fields) / sizeof(status_fields[0])));
            finals += line_len >= 17 && memcmp(s, "Final-Recipient: ", 17) == 0;
        }
        s = eol + 2;
    }
    FUZZ_CHECK(finals == r->report_count);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) {
        return 0;
    }
    uint8_t options = data[0];
    const char *rest = (const char *)data + 1;
    size_t rest_len = size - 1;
    const char *z1 = memchr(rest, '\0', rest_len);
    size_t reply_len = z1 != NULL ? (size_t)(z1 - rest) : rest_len;
    const char *orcpt_start = z1 != NULL ? z1 + 1 : rest + rest_len;
    size_t left = rest_len - (size_t)(orcpt_start - rest);
    const char *z2 = memchr(orcpt_start, '\0', left);
    size_t orcpt_len = z2 != NULL ? (size_t)(z2 - orcpt_start) : left;
    const char *msg_start = z2 != NULL ? z2 + 1 : orcpt_start + orcpt_len;
    size_t msg_len = (size_t)((const char *)data + size - msg_start);

    char *reply = malloc(reply_len + 1);
    char *orcpt = malloc(orcpt_len + 1);
    char *msg = malloc(msg_len > 0 ? msg_len : 1);
    FUZZ_CHECK(reply != NULL && orcpt != NULL && msg != NULL);
    memcpy(reply, rest, reply_len);
    reply[reply_len] = '\0';
    memcpy(orcpt, orcpt_start, orcpt_len);
    orcpt[orcpt_len] = '\0';
    memcpy(msg, msg_start, msg_len);

    static const uint32_t notifies[4] = {0, QUEUE_NOTIFY_NEVER, QUEUE_NOTIFY_SUCCESS,
                                         QUEUE_NOTIFY_FAILURE | QUEUE_NOTIFY_DELAY};
    struct queue_entry entry;
    memset(&entry, 0, sizeof(entry));
    (void)snprintf(entry.id, sizeof(entry.id), "%s", "14CB8BFEB7900000");
    (void)snprintf(entry.mail_from, sizeof(entry.mail_from), "%s",
                   (options & 0x40) != 0 ? "j\xc3\xb6rg@example.com" : "alice@example.com");
    (void)snprintf(entry.envid, sizeof(entry.envid), "%.*s", (int)(reply_len < 40 ? reply_len : 40),
                   reply);
    entry.arrival = 1733900000;
    entry.ret = (enum queue_ret)((options >> 4) % 3);
    entry.size = msg_len;
    struct queue_rcpt rcpts[2] = {
        {.address = "bob@example.net",
         .orcpt = orcpt,
         .notify = notifies[(options >> 2) & 3],
         .last_reply = reply},
        {.address = orcpt, .orcpt = "", .notify = 0, .last_reply = ""},
    };
    entry.rcpts = rcpts;
    entry.rcpt_count = 2;
    struct dsn_rcpt_report reports[2] = {
        {.rcpt_index = 0, .action = (enum dsn_action)(options & 3), .remote_mta = reply},
        {.rcpt_index = 1, .action = DSN_ACTION_FAILED, .remote_mta = NULL, .reply = reply},
    };
    size_t report_count = (options & 0x80) != 0 && orcpt_len > 0 ? 2 : 1;
    struct dsn_request request = {.entry = &entry,
                                  .reports = reports,
                                  .report_count = report_count,
                                  .hostname = "mail.example.com",
                                  .now = 1733903600,
                                  .retry_until = 1733900000 + 432000,
                                  .message = msg,
                                  .message_len = msg_len,
                                  .message_bytes = msg_len};
    size_t wanted = 0;
    for (size_t i = 0; i < report_count; i++) {
        wanted += dsn_is_wanted(rcpts[reports[i].rcpt_index].notify, reports[i].action);
    }
    struct dsn_result result;
    int rc = dsn_compose(&request, &result);
    FUZZ_CHECK(rc == 0 || rc == -ENODATA || rc == -E2BIG);
    FUZZ_CHECK((rc == -ENODATA) == (wanted == 0));
    if (rc == 0) {
        FUZZ_CHECK(result.report_count == wanted);
        check_dsn(&result);
        free(result.bytes);
    } else {
        FUZZ_CHECK(result.bytes == NULL);
    }
    free(reply);
    free(orcpt);
    free(msg);
    return 0;
}
