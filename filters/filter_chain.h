/*
 * filters/filter_chain.h - judging one message between the end of its data
 * and the SMTP reply: the filters in their order (antivirus, DKIM
 * verification, SPF, DMARC, spam scoring, then DKIM signing of mail that
 * leaves), one verdict (accept, reject 5xx, defer 4xx) and the header
 * fields to put on top of the message (Authentication-Results, X-Spam-*,
 * X-Virus, DKIM-Signature).
 *
 * A run is a function of the message, its envelope and the DNS answers it
 * has: filter_run_step() runs the chain from the start on a worker and,
 * when an answer is missing, returns -EINPROGRESS after the queries went
 * out; the caller has it called again once filter_run_wait()'s callback
 * says the answers are in. Expensive work done once per message (the
 * antivirus scan, body hashes, the spam filter's analysis) is kept in the
 * run, so a rerun is cheap.
 *
 * Worker threads (any, one at a time per run). The chain itself is
 * read-only after start.
 */
#ifndef TOASTER_FILTERS_FILTER_CHAIN_H
#define TOASTER_FILTERS_FILTER_CHAIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct clamav;
struct filter_chain;
struct filter_run;

enum filter_action {
    FILTER_ACCEPT,
    FILTER_REJECT, /* 5xx: reply holds it */
    FILTER_DEFER,  /* 4xx: reply holds it */
};

/* What a virus does to the message (clamav_action). */
enum filter_virus_action {
    FILTER_VIRUS_REJECT,  /* 554 5.7.0 with the signature's name */
    FILTER_VIRUS_HEADER,  /* accepted with X-Virus: NAME */
};

/* What main builds from the configuration. Pointers stay the caller's and
 * must outlive the chain. */
struct filter_chain_config {
    struct clamav *clamav; /* NULL: no antivirus */
    enum filter_virus_action virus_action;
};

/* The envelope as the SMTP session saw it (copied by filter_run_create). */
struct filter_envelope {
    const char *queue_id;
    const char *client_address; /* "192.0.2.1" or "2001:db8::1" */
    const char *helo;
    const char *mail_from;      /* "" for the null sender */
    const char *user;           /* authenticated user, "" for none */
    bool is_trusted_network;    /* the client is in mynetworks */
    uint32_t rcpt_count;
};

#define FILTER_REPLY_BYTES 512
#define FILTER_SUMMARY_BYTES 256

struct filter_verdict {
    enum filter_action action;
    char reply[FILTER_REPLY_BYTES];     /* REJECT, DEFER: the whole SMTP reply */
    char summary[FILTER_SUMMARY_BYTES]; /* for the message's log line */
    const char *headers;                /* to put on top; "" when none */
    size_t headers_len;
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

#endif
