/*
 * tests/fuzz/fuzz_sieve_reply.c - libFuzzer harness for the messages
 * Sieve sends about a message it received: the vacation rules and reply
 * (filters/sieve_vacation) and the reject DSN (filters/sieve_reject), both
 * of which read the sender's header block.
 *
 * The input is a header block (and whatever follows it). Properties, on
 * exact-size heap copies: should_reply is deterministic and gives a
 * reason exactly when it says no; the reply and the DSN come back as 0 or
 * -E2BIG (and -EINVAL only for a :mime reason, which here is the input
 * itself), and then every line ends in CRLF, is at most 998 bytes and
 * holds no NUL; their header blocks hold only the fields we write (no
 * field injected from the input); the DSN read back by the MIME walker
 * has exactly one message/delivery-status and one text/rfc822-headers
 * part.
 *
 * Build: see tests/meson.build (needs OpenSSL and the proto/imap sources).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "filters/sieve_body.h"
#include "filters/sieve_reject.h"
#include "filters/sieve_vacation.h"
#include "tests/fuzz/fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* CRLF everywhere, lines <= 998, no NUL; the header's fields all named in
 * allowed (NULL-terminated), continuation lines apart. */
static void
check_message(const char *bytes, size_t len, const char *const *allowed)
{
    FUZZ_CHECK(len >= 2);
    FUZZ_CHECK(bytes[len - 2] == '\r' && bytes[len - 1] == '\n');
    size_t line_start = 0;
    bool is_header = true;
    for (size_t i = 0; i < len; i++) {
        FUZZ_CHECK(bytes[i] != '\0');
        if (bytes[i] == '\n') {
            FUZZ_CHECK(i > 0 && bytes[i - 1] == '\r');
        }
        if (bytes[i] == '\r') {
            FUZZ_CHECK(i + 1 < len && bytes[i + 1] == '\n');
            FUZZ_CHECK(i - line_start <= 998);
            if (is_header && i == line_start) {
                is_header = false; /* the empty line */
            } else if (is_header && bytes[line_start] != ' ' && bytes[line_start] != '\t') {
                bool is_known = false;
                for (size_t k = 0; allowed[k] != NULL && !is_known; k++) {
                    size_t n = strlen(allowed[k]);
                    is_known = i - line_start > n && strncasecmp(bytes + line_start, allowed[k], n) == 0 &&
                               bytes[line_start + n] == ':';
                }
                FUZZ_CHECK(is_known);
            }
            line_start = i + 2;
            i++;
        }
    }
}

struct counts {
    size_t status;
    size_t headers;
};

static int
count_status(void *ctx, const char *text, size_t len)
{
    (void)text;
    (void)len;
    ((struct counts *)ctx)->status++;
    return 0;
}

static int
count_headers(void *ctx, const char *text, size_t len)
{
    (void)text;
    (void)len;
    ((struct counts *)ctx)->headers++;
    return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *header = malloc(size > 0 ? size : 1);
    if (header == NULL) {
        return 0;
    }
    if (size > 0) {
        memcpy(header, data, size);
    }
    struct sieve_message message;
    memset(&message, 0, sizeof(message));
    message.header = header;
    message.header_len = size;
    message.envelope_from = "bob@example.org";
    message.user = "alice@example.com";
    struct sieve_vacation vacation;
    memset(&vacation, 0, sizeof(vacation));
    vacation.reason = "away\n";
    vacation.reason_len = 5;
    vacation.addresses[0] = "a.smith@example.com";
    vacation.address_count = 1;

    const char *why = NULL;
    const char *why2 = NULL;
    bool is_reply = sieve_vacation_should_reply(&message, &vacation, &why);
    FUZZ_CHECK(sieve_vacation_should_reply(&message, &vacation, &why2) == is_reply);
    FUZZ_CHECK(is_reply ? why == NULL : why != NULL);

    static const char *const reply_fields[] = {
        "Message-ID", "Date", "From", "To", "Subject", "In-Reply-To", "References",
        "Auto-Submitted", "Precedence", "MIME-Version", "Content-Type",
        "Content-Transfer-Encoding", NULL};
    char *bytes = NULL;
    size_t len = 0;
    int rc = sieve_vacation_compose(&message, &vacation, "mx.example.com", 1183204800, &bytes,
                                    &len);
    FUZZ_CHECK(rc == 0 || rc == -E2BIG);
    if (rc == 0) {
        check_message(bytes, len, reply_fields);
    }
    free(bytes);

    /* The input as a :mime entity: its own fields join ours, so only the
     * line rules are checked. */
    struct sieve_vacation mime = vacation;
    mime.is_mime = true;
    mime.reason = header;
    mime.reason_len = size;
    mime.subject = "s";
    bytes = NULL;
    rc = sieve_vacation_compose(&message, &mime, "mx.example.com", 1183204800, &bytes, &len);
    FUZZ_CHECK(rc == 0 || rc == -E2BIG || rc == -EINVAL);
    if (rc == 0) {
        FUZZ_CHECK(len <= SIEVE_VACATION_REPLY_BYTES_MAX);
        FUZZ_CHECK(bytes[len - 2] == '\r' && bytes[len - 1] == '\n');
        for (size_t i = 0; i < len; i++) {
            if (bytes[i] == '\n') {
                FUZZ_CHECK(i > 0 && bytes[i - 1] == '\r');
            }
        }
    }
    free(bytes);

    static const char *const dsn_fields[] = {"Message-ID",   "Date",           "From",
                                             "To",           "Subject",        "Auto-Submitted",
                                             "MIME-Version", "Content-Type",
                                             "Content-Transfer-Encoding", NULL};
    bytes = NULL;
    rc = sieve_reject_compose(header, size, "bob@example.org", "alice@example.com", "no\n", 3,
                              "mx.example.com", 1183204800, &bytes, &len);
    FUZZ_CHECK(rc == 0 || rc == -E2BIG);
    if (rc == 0) {
        check_message(bytes, len, dsn_fields);
        size_t header_len = 0;
        while (header_len + 1 < len && !(bytes[header_len] == '\r' && bytes[header_len + 1] == '\n' &&
                                         (header_len == 0 || bytes[header_len - 1] == '\n'))) {
            header_len++;
        }
        header_len += 2;
        FUZZ_CHECK(header_len <= len);
        struct counts counts = {0};
        struct sieve_string status_type = {.text = (char *)"message/delivery-status", .len = 23};
        struct sieve_string headers_type = {.text = (char *)"text/rfc822-headers", .len = 19};
        FUZZ_CHECK(sieve_body_walk(bytes, header_len, bytes + header_len, len - header_len,
                                   SIEVE_BODY_CONTENT, &status_type, 1, count_status,
                                   &counts) == 0);
        FUZZ_CHECK(sieve_body_walk(bytes, header_len, bytes + header_len, len - header_len,
                                   SIEVE_BODY_CONTENT, &headers_type, 1, count_headers,
                                   &counts) == 0);
        FUZZ_CHECK(counts.status == 1);
        FUZZ_CHECK(counts.headers == 1);
    }
    free(bytes);
    free(header);
    return 0;
}
