/*
 * filters/filter_chain.h - judging one message between the end of its data
 * and the SMTP reply: the filters in their order, one verdict (accept,
 * reject 5xx, defer 4xx) and the edits to make to the stored message.
 *
 * Order. Every message: the antivirus scan. Mail from the internet
 * (neither authenticated nor from mynetworks): DKIM verification and SPF
 * side by side, then DMARC (which needs both), one Authentication-Results
 * field for the three, then spam scoring, which reads all of them. Mail
 * from our own users (authenticated, or mynetworks): DKIM signing with
 * the keys of its From: domain, which leaves.
 *
 * A run is a function of the message, its envelope and the DNS answers it
 * has: filter_run_step() runs the chain on a worker and, when an answer
 * is missing, returns -EINPROGRESS once the queries are out; the caller
 * has it called again once filter_run_wait()'s callback says they are in.
 * What is costly and does not depend on DNS is done once per message and
 * kept in the run (the antivirus scan, DKIM body hashes, the spam
 * analysis), so a rerun is cheap.
 *
 * Edits: the new header fields go right below Return-Path (RFC 5321 4.4
 * wants it first), our own forged Authentication-Results fields are taken
 * out (RFC 8601 5), and a Subject is rewritten when the spam action says
 * so. Bounded: FILTER_EDITS_MAX edits, FILTER_HEADERS_BYTES_MAX of new
 * fields.
 *
 * Worker threads (any, one at a time per run). The chain is read-only
 * after start.
 */
#ifndef TOASTER_FILTERS_FILTER_CHAIN_H
#define TOASTER_FILTERS_FILTER_CHAIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/metrics_text.h"
#include "core/stats.h"

struct clamav;
struct dkim_keys;
struct dns_resolver;
struct filter_chain;
struct filter_run;
struct kv;
struct public_suffix;
struct spam_filter;

enum filter_action {
    FILTER_ACCEPT,
    FILTER_REJECT, /* 5xx: reply holds it */
    FILTER_DEFER,  /* 4xx: reply holds it */
};

/* What a virus does to the message (clamav_action). */
enum filter_virus_action {
    FILTER_VIRUS_REJECT, /* 554 5.7.0 with the signature's name */
    FILTER_VIRUS_HEADER, /* accepted with X-Virus: NAME */
    FILTER_VIRUS_QUARANTINE, /* accepted (250) into the quarantine mailbox only */
};

/* The stages whose order the operator chooses (filter_order). DMARC must
 * come after DKIM and SPF, and scoring after all three, since each reads
 * the others' results; the antivirus scan may go anywhere (last: cheap
 * refusals first; first: no infected message is parsed by the others). */
enum filter_stage {
    FILTER_STAGE_CLAMAV,
    FILTER_STAGE_DKIM,
    FILTER_STAGE_SPF,
    FILTER_STAGE_DMARC,
    FILTER_STAGE_SPAM,
    FILTER_STAGE_COUNT,
};

/* Parse "clamav, dkim, spf, dmarc, spam" (each once, in an order the
 * dependencies above allow) into order_out. Returns 0, or -EINVAL with the
 * reason in error_out. */
int filter_order_parse(const char *text, enum filter_stage order_out[FILTER_STAGE_COUNT],
                       char *error_out, size_t error_bytes);

/* What main builds from the configuration. Pointers stay the caller's and
 * must outlive the chain; NULL turns a filter off. */
struct filter_chain_config {
    struct clamav *clamav;
    enum filter_virus_action virus_action;
    struct dns_resolver *dns;        /* NULL: no DKIM verification, SPF, DMARC, DNS lists */
    const char *authserv_id;         /* Authentication-Results: our host name */
    bool is_dkim_verify;
    bool is_spf;
    bool is_dmarc;
    bool is_dmarc_reject;            /* p=reject (after pct=) is refused with 550 5.7.1 */
    const struct public_suffix *psl; /* NULL: a domain is its own organizational domain */
    const struct dkim_keys *dkim_keys; /* NULL: nothing is signed */
    const struct spam_filter *spam;
    struct kv *kv;                   /* greylisting, rate limits, Bayes */
    bool is_greylist_local;          /* greylist loopback and private clients too */
    /* A message whose checks (DNS waits included) run longer than this is
     * deferred (451 4.7.1), so a slow resolver or a pathological message
     * never holds a client past its patience; 0: no budget. Each filter
     * has its own bound besides (clamav_max_scan_time, dns_timeout). */
    uint32_t time_budget_ms;
    enum filter_stage order[FILTER_STAGE_COUNT]; /* filter_order_parse() */
    size_t order_count;
};

#define FILTER_FIELD_BYTES 256 /* envelope strings copied into a run */
#define FILTER_RCPTS_MAX 100   /* recipients the spam filter sees (greylisting, rate limits) */

/* The envelope as the SMTP session saw it (copied by filter_run_create). */
struct filter_envelope {
    const char *queue_id;
    const char *client_address; /* "192.0.2.1" or "2001:db8::1" */
    const char *helo;
    const char *mail_from;      /* "" for the null sender */
    const char *user;           /* authenticated user, "" for none */
    bool is_trusted_network;    /* the client is in mynetworks */
    const char *const *rcpts;   /* envelope recipients */
    uint32_t rcpt_count;
};

#define FILTER_REPLY_BYTES 512
#define FILTER_SUMMARY_BYTES 512
#define FILTER_EDITS_MAX 16
#define FILTER_HEADERS_BYTES_MAX (64u * 1024)

/* One change to the stored message (store/spool.h's spool_edit). */
struct filter_edit {
    uint64_t offset;
    uint64_t delete_len;
    const char *bytes;
    size_t len;
};

struct filter_verdict {
    enum filter_action action;
    enum stats_reason reason;           /* REJECT, DEFER: why, for the metrics */
    char reply[FILTER_REPLY_BYTES];     /* REJECT, DEFER: the whole SMTP reply */
    char summary[FILTER_SUMMARY_BYTES]; /* for the message's log line */
    const struct filter_edit *edits;    /* ACCEPT: sorted by offset */
    size_t edit_count;
    bool is_quarantined; /* ACCEPT: deliver to the quarantine mailbox, nowhere else */
    bool is_virus_scanned; /* ClamAV scanned this message to a verdict (Sieve's virustest:
                              no X-Virus field then means clean, not untested) */
};

/* Build the chain. Returns 0 or -ENOMEM. Main thread, start-up. */
int filter_chain_create(const struct filter_chain_config *config, struct filter_chain **chain_out);
void filter_chain_destroy(struct filter_chain **chain);

/* Whether any filter is configured (else messages skip the stage). */
bool filter_chain_is_active(const struct filter_chain *chain);

/* State for one message. Returns 0 or -ENOMEM (the caller defers). */
int filter_run_create(const struct filter_chain *chain, const struct filter_envelope *envelope,
                      struct filter_run **run_out);
void filter_run_destroy(struct filter_run **run);

/* Run the chain over the message in spool_fd (size bytes, CRLF as
 * stored). Returns 0 when the verdict is ready, or -EINPROGRESS when DNS
 * answers are awaited (see filter_run_wait). */
int filter_run_step(struct filter_run *run, int spool_fd, uint64_t size);

/* After -EINPROGRESS: ready(arg) is called once (on another thread) when
 * every awaited answer is in or has timed out; then call
 * filter_run_step() again. Returns false when nothing is awaited (call
 * filter_run_step() again at once). */
bool filter_run_wait(struct filter_run *run, void (*ready)(void *arg), void *arg);

/* The verdict, valid until the run is destroyed (after step returned 0). */
const struct filter_verdict *filter_run_verdict(const struct filter_run *run);

/* ---- what the chain counts (Prometheus metrics, core/metrics.c) ---------- */

/* The filters counted: the stages, DKIM signing, and the chain as a whole
 * (one verdict per message, its time from the first step to the verdict
 * with the DNS waits). */
#define FILTER_STATS_SIGN FILTER_STAGE_COUNT
#define FILTER_STATS_CHAIN (FILTER_STAGE_COUNT + 1)
#define FILTER_STATS_COUNT (FILTER_STAGE_COUNT + 2)

/* Since start, over every chain. Workers add with atomics; any thread
 * reads with relaxed loads. A message is counted when its verdict is made:
 * each filter that ran to a result gets the message's verdict if it made
 * it, else accept; its time is what it spent on workers (DNS waits not
 * included), except the chain's, which is wall time. */
struct filter_chain_stats {
    uint64_t verdicts[FILTER_STATS_COUNT][3]; /* [filter][enum filter_action] */
    struct metrics_histogram duration[FILTER_STATS_COUNT];
};

/* The counters (static storage; never NULL). */
const struct filter_chain_stats *filter_chain_stats(void);

/* "clamav", "dkim", "spf", "dmarc", "spam", "dkim_sign", "chain". */
const char *filter_stats_name(unsigned filter);

/* "accept", "reject", "defer". */
const char *filter_action_name(enum filter_action action);

#endif
