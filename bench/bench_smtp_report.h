/*
 * bench/bench_smtp_report.h - what toaster-bench smtp counts, and how it
 * tells the user: the live progress line, the final summary block and the
 * --json file.
 *
 * Each event-loop thread owns one struct bench_smtp_stats and is its only
 * writer (bench_smtp_stats_add()); the monitoring thread reads all of them
 * at any time with relaxed loads and merges them into a private copy.
 */
#ifndef TOASTER_BENCH_SMTP_REPORT_H
#define TOASTER_BENCH_SMTP_REPORT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "core/histogram.h"

/* Reply codes are three digits: one counter each. */
#define BENCH_SMTP_CODES 1000

struct bench_smtp_stats {
    uint64_t messages_accepted; /* final 250 after the data */
    uint64_t messages_failed;   /* refused, or lost to a close or a timeout */
    uint64_t bytes_accepted;    /* message bytes (unstuffed) of the accepted ones */
    uint64_t connects_ok;
    uint64_t connect_errors;    /* socket, bind or connect failed */
    uint64_t timeouts;          /* no reply (or no connect) within --timeout */
    uint64_t closed;            /* the server closed or reset the connection early */
    uint64_t protocol_errors;   /* malformed or out-of-turn replies */
    uint64_t sessions_without_pipelining; /* --pipelining on, not advertised */
    uint64_t sessions_without_chunking;   /* --bdat, not advertised */
    uint64_t tls_handshakes;              /* --starttls: handshakes finished */
    uint64_t tls_resumed;                 /* of which resumed a session */
    uint64_t tls_errors;                  /* STARTTLS not offered, handshake or record failed */
    uint64_t connections_open;            /* gauge: sockets connected now */
    uint64_t last_final_reply_ns;         /* CLOCK_MONOTONIC of the last final reply */
    uint64_t codes[BENCH_SMTP_CODES];     /* refusals and unexpected replies, by code */
    struct histogram latency;             /* end of data -> final reply, us */
};

/* Zero everything (the latency histogram included). */
void bench_smtp_stats_init(struct bench_smtp_stats *stats);

/* Add n to one counter of stats. Only the owning thread may call this. */
void bench_smtp_stats_add(uint64_t *counter, uint64_t n);

/* Store a value (only the owning thread). */
void bench_smtp_stats_set(uint64_t *counter, uint64_t value);

/* Merge a (possibly live) src into a private dst. */
void bench_smtp_stats_merge(struct bench_smtp_stats *dst, const struct bench_smtp_stats *src);

/* Errors of every kind, refused replies included. */
uint64_t bench_smtp_stats_errors(const struct bench_smtp_stats *stats);

/* What the summary says about the run besides the counters. */
struct bench_smtp_report_info {
    const char *server;
    const char *command; /* argv, shell-quoted */
    uint32_t    connections;
    uint32_t    threads;
    const char *size_text;
    bool        is_pipelining;
    bool        is_bdat;
    bool        is_starttls;
    const char *tls_text; /* protocol and cipher of a handshake, or "" */
    double      rate;    /* 0: closed loop */
    double      seconds; /* from start to the last final reply */
};

/* One progress line, rewritten in place (carriage return, no newline). */
void bench_smtp_report_progress(FILE *out, double elapsed_s, const struct bench_smtp_stats *stats,
                                double msgs_per_s_now);

/* The final human-readable block. */
void bench_smtp_report_summary(FILE *out, const struct bench_smtp_report_info *info,
                               const struct bench_smtp_stats *stats);

/* Write the --json summary to path. Returns 0 or -errno. */
int bench_smtp_report_json(const char *path, const struct bench_smtp_report_info *info,
                           const struct bench_smtp_stats *stats);

#endif
