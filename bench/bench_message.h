/*
 * bench/bench_message.h - the messages toaster-bench sends.
 *
 * A message is two parts. The head (RFC 5322 header block, the blank line
 * and a few padding lines) is written per message into the caller's buffer:
 * it carries the unique Message-ID, the recipients and the date. The tail
 * (the body proper) is built once per size class at start-up and shared,
 * read-only, by every connection and thread: plain text for small sizes, a
 * MIME multipart with a base64 attachment from BENCH_MESSAGE_MIME_BYTES up.
 * The padding lines make head + tail exactly the requested size.
 *
 * Every line is at most 78 characters and ends in CRLF. The tail contains
 * lines that start with a dot (one is a lone "."), so a server that does
 * not undo dot-stuffing correctly delivers the wrong bytes or cuts the
 * message short. Each class therefore keeps two tails: as is, for BDAT, and
 * dot-stuffed with the ".\r\n" terminator, for DATA. The head never starts
 * a line with a dot, so it is the same for both.
 */
#ifndef TOASTER_BENCH_MESSAGE_H
#define TOASTER_BENCH_MESSAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* Messages of at least this size are MIME multipart with an attachment. */
#define BENCH_MESSAGE_MIME_BYTES (16 * 1024)

/* Largest message size class (the server will usually refuse earlier). */
#define BENCH_MESSAGE_BYTES_MAX (256ULL * 1024 * 1024)

/* Size classes in a --size-mix. */
#define BENCH_MESSAGE_CLASSES_MAX 16

/* Longest address (--from, or one formatted --rcpt). */
#define BENCH_MESSAGE_ADDRESS_BYTES_MAX 256

/* Length of "Mon, 02 Jan 2006 15:04:05 +0000" plus the NUL. */
#define BENCH_MESSAGE_DATE_BYTES 32

struct bench_message_class_spec {
    size_t   size_bytes;
    uint32_t weight;
};

struct bench_message_config {
    const char                            *from;
    const struct bench_message_class_spec *classes;
    size_t                                 class_count;
    size_t                                 rcpt_bytes_max; /* longest recipient address */
    uint32_t                               rcpts_per_message;
};

/* One size class: what SIZE= announces and the shared tails. */
struct bench_message_body {
    size_t      size_bytes; /* head + tail, unstuffed, CRLF line ends */
    uint32_t    weight;
    bool        is_mime;
    const char *tail;            /* for BDAT */
    size_t      tail_bytes;
    const char *tail_data;       /* dot-stuffed, ends with ".\r\n", for DATA */
    size_t      tail_data_bytes;
};

/* What makes one message's head unique. */
struct bench_message_head_args {
    uint64_t           run_id;
    uint32_t           thread_index;
    uint64_t           sequence;
    const char        *date; /* from bench_message_date() */
    const char *const *rcpts;
    uint32_t           rcpt_count;
};

struct bench_message;

/* Build every size class. Returns 0 and sets *message_out, or -EINVAL with
 * a reason in err (a size too small for the headers, a bad address) or
 * -ENOMEM. The caller owns the result until bench_message_destroy(). */
int bench_message_create(const struct bench_message_config *config,
                         struct bench_message **message_out, char *err, size_t err_bytes);

void bench_message_destroy(struct bench_message **message);

size_t bench_message_class_count(const struct bench_message *message);

const struct bench_message_body *bench_message_class(const struct bench_message *message,
                                                     size_t index);

/* Pick a class by weight; random is any uniformly distributed value. */
size_t bench_message_pick(const struct bench_message *message, uint64_t random);

/* Buffer size bench_message_head() needs, for any class and arguments
 * within the configuration. */
size_t bench_message_head_bytes_max(const struct bench_message *message);

/* Write the head of one message of class index into buf. Returns its
 * length; head + the class tail is exactly the class size (asserted: the
 * configuration bounds every variable field). */
size_t bench_message_head(const struct bench_message *message, size_t index,
                          const struct bench_message_head_args *args, char *buf, size_t buf_bytes);

/* RFC 5322 date-time in UTC, always BENCH_MESSAGE_DATE_BYTES - 1 chars. */
void bench_message_date(time_t when, char out[BENCH_MESSAGE_DATE_BYTES]);

/* Check an address or a --rcpt pattern: printable ASCII without spaces or
 * angle brackets, one '@', and in a pattern at most one "%d" and no other
 * '%' except "%%". Returns true if usable. */
bool bench_message_address_ok(const char *address, bool is_pattern);

/* Expand a pattern, replacing "%d" with user and "%%" with '%'. Returns
 * the length, or -ENAMETOOLONG if it does not fit in out_bytes. */
int bench_message_address_format(const char *pattern, uint32_t user, char *out, size_t out_bytes);

#endif
