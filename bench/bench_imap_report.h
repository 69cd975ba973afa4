/*
 * bench/bench_imap_report.h - the receiving and reporting side of
 * toaster-bench imap: the response reader that splits server bytes into
 * IMAP responses, what the client counts, and how it tells the user (the
 * live progress line, the summary block and the --json file).
 *
 * The reader is pure: bytes in, responses out, no I/O and no allocation,
 * so it is unit-tested without a socket. A response is a line, or lines
 * joined by literals ("... {n}\r\n" + n bytes + more line): literal bytes
 * are counted and skipped, never stored, and only the first
 * BENCH_IMAP_REPORT_KEEP_BYTES of the rest are kept for the session to
 * look at. One reader per connection.
 *
 * Each event-loop thread owns one struct bench_imap_stats and is its only
 * writer; the monitoring thread reads them at any time with relaxed loads
 * and merges them into a private copy.
 * Limits: BENCH_IMAP_REPORT_LINE_BYTES_MAX, _LITERAL_BYTES_MAX and
 * _LITERALS_MAX per response.
 */
#ifndef TOASTER_BENCH_IMAP_REPORT_H
#define TOASTER_BENCH_IMAP_REPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "bench/bench_imap_options.h"
#include "core/histogram.h"

/* Text kept from the start of each response (literals left out). */
#define BENCH_IMAP_REPORT_KEEP_BYTES 4096
/* Bytes of one response outside its literals: a SEARCH answer over a
 * million messages is about 8 MB. */
#define BENCH_IMAP_REPORT_LINE_BYTES_MAX (16u * 1024 * 1024)
/* One literal: a 64 MiB message is as large as anything we fetch. */
#define BENCH_IMAP_REPORT_LITERAL_BYTES_MAX (64u * 1024 * 1024)
/* Literals in one response: an ENVELOPE and BODYSTRUCTURE of a message
 * with 4096 parts has a few per part. */
#define BENCH_IMAP_REPORT_LITERALS_MAX 65536u

enum bench_imap_report_result {
    BENCH_IMAP_REPORT_NEED_MORE, /* every byte was taken; the response goes on */
    BENCH_IMAP_REPORT_DONE,      /* a whole response ended; text holds its start */
    BENCH_IMAP_REPORT_ERROR,     /* error says why; the connection is no longer usable */
};

enum bench_imap_report_error {
    BENCH_IMAP_REPORT_ERROR_NONE = 0,
    BENCH_IMAP_REPORT_ERROR_LINE_TOO_LONG,     /* over BENCH_IMAP_REPORT_LINE_BYTES_MAX */
    BENCH_IMAP_REPORT_ERROR_LITERAL_TOO_BIG,   /* {n} over BENCH_IMAP_REPORT_LITERAL_BYTES_MAX */
    BENCH_IMAP_REPORT_ERROR_TOO_MANY_LITERALS, /* over BENCH_IMAP_REPORT_LITERALS_MAX */
};

struct bench_imap_report_reader {
    char text[BENCH_IMAP_REPORT_KEEP_BYTES + 1]; /* + a CR that may end the line */
    size_t text_bytes;      /* kept, at most KEEP_BYTES; line ends before literals and at
                             * the end are never kept */
    bool is_truncated;      /* the response had more text than was kept */
    bool is_done;           /* the last feed ended a response: the next starts anew */
    uint64_t line_bytes;    /* response bytes outside literals, line ends included */
    uint64_t literal_bytes; /* literal bytes skipped in this response */
    uint32_t literal_count;
    uint64_t literal_left; /* > 0: inside a literal */
    /* "{n}" at the end of the line so far: 0 none, 1 digits, 2 after '}',
     * 3 after "}\r". */
    int brace_state;
    bool brace_has_digit;
    uint64_t brace_value; /* saturates above the literal limit */
    enum bench_imap_report_error error;
};

/* Start with no response in progress (a new connection). */
void bench_imap_report_reader_init(struct bench_imap_report_reader *reader);

/* Take bytes of buf[0..buf_bytes) until a response ends or buf does.
 * Returns the bytes taken and sets *result_out: DONE when they end a
 * response (buf may hold more, for the next call), NEED_MORE when all of
 * buf was taken, ERROR when the response broke a limit (the return value
 * is then meaningless). Line ends are LF with or without CR. After DONE
 * the next call starts a new response; after ERROR the reader must be
 * reinitialized. */
size_t bench_imap_report_reader_feed(struct bench_imap_report_reader *reader, const char *buf,
                                     size_t buf_bytes, enum bench_imap_report_result *result_out);

const char *bench_imap_report_error_text(enum bench_imap_report_error error);

enum bench_imap_report_kind {
    BENCH_IMAP_REPORT_GARBAGE,      /* none of the below: a protocol error */
    BENCH_IMAP_REPORT_UNTAGGED,     /* "* ..." */
    BENCH_IMAP_REPORT_CONTINUATION, /* "+ ..." or "+" */
    BENCH_IMAP_REPORT_TAGGED,       /* "tag OK|NO|BAD ..." */
};

enum bench_imap_report_status {
    BENCH_IMAP_REPORT_STATUS_NONE,
    BENCH_IMAP_REPORT_STATUS_OK,
    BENCH_IMAP_REPORT_STATUS_NO,
    BENCH_IMAP_REPORT_STATUS_BAD,
    BENCH_IMAP_REPORT_STATUS_BYE,     /* untagged only */
    BENCH_IMAP_REPORT_STATUS_PREAUTH, /* untagged only */
};

/* What a response's first line says; the pointers are views into it. */
struct bench_imap_report_response {
    enum bench_imap_report_kind kind;
    const char *tag; /* TAGGED: the tag */
    size_t tag_bytes;
    enum bench_imap_report_status status; /* TAGGED, or untagged OK/NO/BAD/BYE/PREAUTH */
    bool has_number;                      /* "* 12 EXISTS" */
    uint64_t number;
    const char *word; /* untagged: the keyword ("EXISTS", "OK", "SEARCH") */
    size_t word_bytes;
};

/* Classify the kept text of a response. Never fails: anything that is not
 * a well-formed tagged, untagged or continuation response is GARBAGE. */
void bench_imap_report_response_parse(const char *text, size_t text_bytes,
                                      struct bench_imap_report_response *out);

/* Whether text holds the capability atom name (any case) as a whole word,
 * as in "* CAPABILITY IMAP4rev1 LITERAL+" or "OK [CAPABILITY ... LITERAL+]". */
bool bench_imap_report_has_atom(const char *text, size_t text_bytes, const char *name);

/* Counters of one kind of command. */
struct bench_imap_kind_stats {
    uint64_t done;            /* tagged OK */
    uint64_t no;              /* tagged NO */
    uint64_t bad;             /* tagged BAD */
    uint64_t failed;          /* lost to a close, a timeout or a protocol error */
    struct histogram latency; /* command sent -> tagged OK, us */
};

struct bench_imap_stats {
    struct bench_imap_kind_stats kinds[BENCH_IMAP_KIND_COUNT];
    uint64_t bytes_received;
    uint64_t connects_ok;
    uint64_t connect_errors;                /* socket, bind or connect failed */
    uint64_t timeouts;                      /* no response (or no connect) within --timeout */
    uint64_t closed;                        /* the server closed or reset the connection early */
    uint64_t protocol_errors;               /* malformed, out-of-turn or over-limit responses */
    uint64_t login_refused;                 /* LOGIN answered NO or BAD */
    uint64_t select_refused;                /* SELECT answered NO or BAD */
    uint64_t bye;                           /* untagged BYE outside LOGOUT */
    uint64_t sessions_without_literal_plus; /* APPEND waited for "+" */
    uint64_t connections_open;              /* gauge */
    uint64_t sessions_ready;                /* gauge: logged in and selected (imap-idle: idling) */
    uint64_t last_done_ns;                  /* CLOCK_MONOTONIC of the last tagged OK */
};

void bench_imap_stats_init(struct bench_imap_stats *stats);

/* Add n to (or store a value in) one counter. Only the owning thread. */
void bench_imap_stats_add(uint64_t *counter, uint64_t n);
void bench_imap_stats_set(uint64_t *counter, uint64_t value);

/* Merge a (possibly live) src into a private dst. */
void bench_imap_stats_merge(struct bench_imap_stats *dst, const struct bench_imap_stats *src);

/* Commands answered OK, of every kind. */
uint64_t bench_imap_stats_done(const struct bench_imap_stats *stats);

/* Errors of every kind, NO and BAD included. */
uint64_t bench_imap_stats_errors(const struct bench_imap_stats *stats);

struct bench_imap_report_info {
    const char *server;
    const char *command; /* argv, shell-quoted */
    uint32_t connections;
    uint32_t threads;
    const char *mix_text;
    const char *mailbox;
    double seconds; /* from start to the last tagged OK */
};

/* One progress line, rewritten in place (carriage return, no newline). */
void bench_imap_report_progress(FILE *out, double elapsed_s, const struct bench_imap_stats *stats,
                                double per_s_now);

void bench_imap_report_summary(FILE *out, const struct bench_imap_report_info *info,
                               const struct bench_imap_stats *stats);

/* Write the --json summary to path. Returns 0 or -errno. */
int bench_imap_report_json(const char *path, const struct bench_imap_report_info *info,
                           const struct bench_imap_stats *stats);

/* What imap-idle found. */
struct bench_imap_idle_result {
    uint32_t connections;
    uint64_t idling;    /* sessions that reached IDLE */
    uint64_t expected;  /* idling sessions whose user got a message */
    uint64_t heard;     /* of those, pushed an EXISTS in time */
    uint64_t delivered; /* SMTP 250s */
    uint64_t deliver_errors;
    double deliver_seconds;
    double ready_seconds;  /* from the start until every session idled (or gave up) */
    struct histogram push; /* 250 -> EXISTS, us */
};

void bench_imap_report_idle_summary(FILE *out, const struct bench_imap_report_info *info,
                                    const struct bench_imap_stats *stats,
                                    const struct bench_imap_idle_result *result);

int bench_imap_report_idle_json(const char *path, const struct bench_imap_report_info *info,
                                const struct bench_imap_stats *stats,
                                const struct bench_imap_idle_result *result);

#endif
