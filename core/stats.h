/*
 * core/stats.h - the counters an operator reads with `toasterctl stats`,
 * and the one document they travel in.
 *
 * Counters that live inside a running module (a reactor, the committer)
 * have a single writer, the module's own thread, and any number of readers
 * on other threads: the writer does a relaxed load, add and relaxed store
 * (no lock prefix on the hot path), readers do relaxed loads. A reader may
 * see one counter a little older than another, never a torn value.
 *
 * struct stats_snapshot is what the daemon sends over the control socket
 * (as JSON, stats_json_format) and what toasterctl reads back
 * (stats_json_parse) and prints (stats_table_print). The formatting and the
 * parsing are pure functions, unit-tested in tests/unit/test_stats.c.
 * Limits: STATS_REACTORS_MAX reactors per document, STATS_JSON_BYTES_MAX
 * per document, STATS_JSON_DEPTH_MAX nesting.
 */
#ifndef TOASTER_CORE_STATS_H
#define TOASTER_CORE_STATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include "core/histogram.h"
#include "core/limits.h"

#define STATS_REACTORS_MAX REACTOR_THREADS_CEILING
/* About 400 bytes per reactor plus the rest: 256 reactors fit with room. */
#define STATS_JSON_BYTES_MAX (256u * 1024u)
#define STATS_JSON_DEPTH_MAX 4
#define STATS_VERSION_BYTES 32
#define STATS_ERROR_BYTES 128

/* Why the SMTP listener refused (5xx) or deferred (4xx) a command, a
 * recipient or a message: a fixed set, so the metrics' series stay
 * bounded (core/metrics.c names them with stats_reason_name()). Both the
 * listener's own decisions and the session's (proto/smtp/smtp_session.h,
 * enum smtp_refusal) are counted here. */
enum stats_reason {
    STATS_REASON_RECIPIENT_UNKNOWN, /* 550 5.1.1 at RCPT */
    STATS_REASON_RELAY_DENIED,      /* 554 5.7.1 at RCPT */
    STATS_REASON_RATE_LIMIT,        /* a sender's hourly limit, a spam rate limit */
    STATS_REASON_GREYLIST,          /* 451 until the client retries */
    STATS_REASON_SPAM,              /* the spam score's reject or tempfail */
    STATS_REASON_VIRUS,             /* ClamAV found one (or could not scan: temporary) */
    STATS_REASON_POLICY,            /* DMARC reject, a From: we will not send, a Sieve reject */
    STATS_REASON_SIZE,              /* message or header too large */
    STATS_REASON_PROTOCOL,          /* bad syntax, bad sequence, a line too long */
    STATS_REASON_TLS_REQUIRED,      /* the command needs TLS first (538 5.7.11) */
    STATS_REASON_INTERNAL,          /* our fault: out of memory, busy, storage, time budget */
    STATS_REASON_AUTH_REQUIRED,     /* MAIL on submission before AUTH (530 5.7.0) */
    STATS_REASON_AUTH_FAILED,       /* AUTH with wrong credentials (535 5.7.8) */
    STATS_REASON_TOO_MANY_RECIPIENTS, /* past the recipient bound (452 4.5.3) */
    STATS_REASON_MAILBOX_FULL,      /* LMTP: the recipient's mailbox is over quota (552 5.2.2) */
    STATS_REASON_OTHER,
    STATS_REASON_COUNT,
};

/* "recipient_unknown", ... (a label value). */
const char *stats_reason_name(enum stats_reason reason);

/* IMAP commands are counted by their enum imap_command
 * (proto/imap/imap_parser.h) value, below this bound (asserted there). */
#define STATS_IMAP_COMMANDS_MAX 64

/* One reactor's counters. Written only by the reactor's own thread (and by
 * protocol handlers running on it); read anywhere with stats_load(). */
struct reactor_stats {
    uint64_t connections_open;    /* gauge: connection slots in use */
    uint64_t connections_total;   /* accepted into a slot since start */
    uint64_t connections_refused; /* refused at accept for a limit (421) */
    uint64_t messages_accepted;   /* 250 at end of data */
    uint64_t messages_refused;    /* 4xx/5xx at end of data, decided after the body */
    uint64_t bytes_in;            /* received from clients */
    uint64_t bytes_out;           /* sent to clients */
    uint64_t file_bytes_spliced;  /* of file ranges (FETCH bodies), sent file -> pipe -> socket */
    uint64_t file_bytes_encrypted; /* of file ranges under TLS, read a record at a time */
    uint64_t tls_handshakes;      /* TLS sessions established (resumed ones included) */
    uint64_t sq_full;             /* io_uring SQ was full and had to be submitted early */
    uint64_t cq_overflow;         /* the kernel's count; filled in by reactor_stats_read() */
    struct histogram latency_us;  /* end of data -> final reply queued */
    /* For the metrics (core/metrics.c), not in the stats document. */
    uint64_t smtp_refused[STATS_REASON_COUNT];  /* 5xx refusals: the listener's, its sessions' */
    uint64_t smtp_deferred[STATS_REASON_COUNT]; /* 4xx refusals: the listener's, its sessions' */
    uint64_t imap_sessions_open;  /* gauge */
    uint64_t imap_sessions_total;
    uint64_t imap_logins_ok;
    uint64_t imap_logins_failed;
    uint64_t imap_commands[STATS_IMAP_COMMANDS_MAX]; /* by enum imap_command */
    struct histogram imap_command_us; /* a mailbox command: start of its run -> done */
};


/* Add n to a single-writer counter. Only the owning thread may call this. */
static inline void
stats_add(uint64_t *counter, uint64_t n)
{
    __atomic_store_n(counter, __atomic_load_n(counter, __ATOMIC_RELAXED) + n, __ATOMIC_RELAXED);
}

/* Set a single-writer gauge. Only the owning thread may call this. */
static inline void
stats_set(uint64_t *counter, uint64_t value)
{
    __atomic_store_n(counter, value, __ATOMIC_RELAXED);
}

/* Read a counter from any thread. */
static inline uint64_t
stats_load(const uint64_t *counter)
{
    return __atomic_load_n(counter, __ATOMIC_RELAXED);
}

/* Count a refusal the SMTP listener or one of its sessions decided: reply
 * "5..." as refused, any other (a 4xx) as deferred. Only the owning
 * reactor's thread. */
static inline void
stats_refusal_count(struct reactor_stats *stats, const char *reply, enum stats_reason reason)
{
    if ((unsigned)reason >= STATS_REASON_COUNT) {
        reason = STATS_REASON_OTHER;
    }
    stats_add(reply != NULL && reply[0] == '5' ? &stats->smtp_refused[reason]
                                               : &stats->smtp_deferred[reason],
              1);
}

/* CLOCK_MONOTONIC in nanoseconds, for latencies. */
static inline uint64_t
stats_clock_ns(void)
{
    struct timespec now;
    (void)clock_gettime(CLOCK_MONOTONIC, &now); /* cannot fail for this clock */
    return (uint64_t)now.tv_sec * UINT64_C(1000000000) + (uint64_t)now.tv_nsec;
}

/* ---- the document -------------------------------------------------------- */

struct stats_reactor {
    uint64_t connections_open;
    uint64_t connections_total;
    uint64_t connections_refused;
    uint64_t messages_accepted;
    uint64_t messages_refused;
    uint64_t bytes_in;
    uint64_t bytes_out;
    uint64_t file_bytes_spliced;
    uint64_t file_bytes_encrypted;
    uint64_t tls_handshakes;
    uint64_t sq_full;
    uint64_t cq_overflow;
};

struct stats_snapshot {
    char                 version[STATS_VERSION_BYTES];
    uint64_t             uptime_s;
    uint32_t             reactor_count;
    struct stats_reactor reactors[STATS_REACTORS_MAX];
    struct {
        uint64_t threads;
        uint64_t queue_depth; /* jobs waiting for a worker */
        uint64_t jobs_done;
    } workers;
    struct {
        uint64_t batches;  /* group commits (each one sync round) */
        uint64_t messages; /* messages committed */
        uint64_t fsyncs;   /* fsync/fdatasync calls issued */
    } delivery;
    struct {
        uint64_t count;
        uint64_t p50;
        uint64_t p90;
        uint64_t p99;
        uint64_t p999;
        uint64_t max;
    } latency_us; /* merged over every reactor */
    /* Set instead of everything else when the daemon answered an error. */
    char error[STATS_ERROR_BYTES];
};

/* Copy one reactor's counters into the document's form. */
void stats_reactor_from(struct stats_reactor *out, const struct reactor_stats *stats);

/* Fill the latency summary from a (merged, private) histogram. */
void stats_latency_from(struct stats_snapshot *snapshot, const struct histogram *histogram);

/* Sum of every reactor's counters (for the totals row and the rates). */
void stats_reactors_total(const struct stats_snapshot *snapshot, struct stats_reactor *out);

/* Write the snapshot as one line of JSON ending in '\n' into out. Returns
 * the length (without the NUL), or -ENOSPC when it does not fit. */
int stats_json_format(const struct stats_snapshot *snapshot, char *out, size_t out_bytes);

/* Read a document written by stats_json_format() (or an {"error": "..."}
 * answer, which sets snapshot->error). Unknown keys are skipped, so an
 * older toasterctl reads a newer daemon. Returns 0, or -EINVAL for text
 * that is not such a document (too long, too deep, malformed, more than
 * STATS_REACTORS_MAX reactors). Never reads past len. */
int stats_json_parse(const char *text, size_t len, struct stats_snapshot *snapshot);

/* Print the snapshot as a table: a row per reactor, totals, workers,
 * delivery, latency. With prev (an earlier snapshot, interval_s seconds
 * before), also print per-second rates, as `--watch` does. */
void stats_table_print(FILE *out, const struct stats_snapshot *snapshot,
                       const struct stats_snapshot *prev, double interval_s);

#endif
