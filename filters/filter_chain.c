/*
 * filters/filter_chain.c - the filters in their order over one message
 * (see filter_chain.h). Each stage reads the run's inputs and earlier
 * stages' results and either finishes (its result kept in the run, so a
 * rerun skips it) or asks for DNS answers. The verdict is the first
 * refusal, else acceptance with every stage's header fields.
 *
 * Header fields are collected in one growing buffer, each ending in CRLF,
 * and bounded (FILTER_HEADERS_BYTES_MAX): they go on top of the stored
 * message.
 */
#include "filters/filter_chain.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/assertions.h"
#include "filters/clamav_scan.h"

#define FILTER_HEADERS_BYTES_MAX (64u * 1024)
#define FILTER_FIELD_BYTES 256 /* envelope strings copied into a run */

struct filter_chain {
    struct filter_chain_config config;
};

enum stage_state {
    STAGE_TODO,
    STAGE_DONE,
};

struct filter_run {
    const struct filter_chain *chain;
    char queue_id[32];
    char client_address[64];
    char helo[FILTER_FIELD_BYTES];
    char mail_from[FILTER_FIELD_BYTES];
    char user[FILTER_FIELD_BYTES];
    bool is_trusted_network;
    uint32_t rcpt_count;
    /* stages */
    enum stage_state virus_state;
    struct clamav_result virus;
    /* output */
    struct filter_verdict verdict;
    bool is_verdict_final; /* a stage refused: the rest do not run */
    char *headers;
    size_t headers_len;
    size_t headers_cap;
};

int
filter_chain_create(const struct filter_chain_config *config, struct filter_chain **chain_out)
{
    struct filter_chain *chain = calloc(1, sizeof(*chain));
    if (chain == NULL) {
        return -ENOMEM;
    }
    chain->config = *config;
    *chain_out = chain;
    return 0;
}

void
filter_chain_destroy(struct filter_chain **chain)
{
    free(*chain);
    *chain = NULL;
}

bool
filter_chain_is_active(const struct filter_chain *chain)
{
    return chain != NULL && chain->config.clamav != NULL;
}

static void
field_copy(char *out, size_t out_bytes, const char *in)
{
    (void)snprintf(out, out_bytes, "%s", in != NULL ? in : "");
}

int
filter_run_create(const struct filter_chain *chain, const struct filter_envelope *envelope,
                  struct filter_run **run_out)
{
    struct filter_run *run = calloc(1, sizeof(*run));
    if (run == NULL) {
        return -ENOMEM;
    }
    run->chain = chain;
    field_copy(run->queue_id, sizeof(run->queue_id), envelope->queue_id);
    field_copy(run->client_address, sizeof(run->client_address), envelope->client_address);
    field_copy(run->helo, sizeof(run->helo), envelope->helo);
    field_copy(run->mail_from, sizeof(run->mail_from), envelope->mail_from);
    field_copy(run->user, sizeof(run->user), envelope->user);
    run->is_trusted_network = envelope->is_trusted_network;
    run->rcpt_count = envelope->rcpt_count;
    run->verdict.action = FILTER_ACCEPT;
    run->verdict.headers = "";
    *run_out = run;
    return 0;
}

void
filter_run_destroy(struct filter_run **run)
{
    if (*run == NULL) {
        return;
    }
    free((*run)->headers);
    free(*run);
    *run = NULL;
}

/* Append one header field (printf-style, without its CRLF). A field that
 * would pass the bound is dropped and said so in the summary. */
static void __attribute__((format(printf, 2, 3)))
header_add(struct filter_run *run, const char *format, ...)
{
    char field[2048];
    va_list args;
    va_start(args, format);
    int n = vsnprintf(field, sizeof(field) - 2, format, args);
    va_end(args);
    if (n < 0 || (size_t)n >= sizeof(field) - 2) {
        return;
    }
    memcpy(field + n, "\r\n", 2);
    size_t len = (size_t)n + 2;
    if (run->headers_len + len > FILTER_HEADERS_BYTES_MAX) {
        return;
    }
    if (run->headers_len + len > run->headers_cap) {
        size_t cap = run->headers_cap == 0 ? 1024 : run->headers_cap;
        while (cap < run->headers_len + len) {
            cap *= 2;
        }
        char *headers = realloc(run->headers, cap);
        if (headers == NULL) {
            return;
        }
        run->headers = headers;
        run->headers_cap = cap;
    }
    memcpy(run->headers + run->headers_len, field, len);
    run->headers_len += len;
}

static void __attribute__((format(printf, 3, 4)))
verdict_set(struct filter_run *run, enum filter_action action, const char *format, ...)
{
    ASSERT(action != FILTER_ACCEPT);
    run->verdict.action = action;
    va_list args;
    va_start(args, format);
    (void)vsnprintf(run->verdict.reply, sizeof(run->verdict.reply), format, args);
    va_end(args);
    run->is_verdict_final = true;
}

static void __attribute__((format(printf, 2, 3)))
summary_add(struct filter_run *run, const char *format, ...)
{
    size_t len = strlen(run->verdict.summary);
    if (len + 2 >= sizeof(run->verdict.summary)) {
        return;
    }
    if (len > 0) {
        run->verdict.summary[len++] = ' ';
        run->verdict.summary[len] = '\0';
    }
    va_list args;
    va_start(args, format);
    (void)vsnprintf(run->verdict.summary + len, sizeof(run->verdict.summary) - len, format,
                    args);
    va_end(args);
}

/* ---- stages --------------------------------------------------------------- */

/* Antivirus: the spool file as it is; never a silent accept unscanned. */
static void
stage_virus(struct filter_run *run, int spool_fd)
{
    struct clamav *clamav = run->chain->config.clamav;
    if (clamav == NULL || run->virus_state == STAGE_DONE) {
        return;
    }
    (void)clamav_scan_fd(clamav, spool_fd, &run->virus);
    run->virus_state = STAGE_DONE;
    switch (run->virus.verdict) {
    case CLAMAV_CLEAN:
        summary_add(run, "virus=clean%s%s", run->virus.is_over_limit ? " over-limit=" : "",
                    run->virus.limit);
        break;
    case CLAMAV_VIRUS:
        summary_add(run, "virus=%s", run->virus.name);
        if (run->chain->config.virus_action == FILTER_VIRUS_HEADER) {
            header_add(run, "X-Virus: %s", run->virus.name);
        } else {
            verdict_set(run, FILTER_REJECT, "554 5.7.0 Rejected: virus found: %s",
                        run->virus.name);
        }
        break;
    case CLAMAV_NOT_READY:
        summary_add(run, "virus=not-ready");
        verdict_set(run, FILTER_DEFER,
                    "451 4.7.1 Virus scanner not ready, try again later");
        break;
    case CLAMAV_ERROR:
        summary_add(run, "virus=error (%s)", run->virus.name);
        verdict_set(run, FILTER_DEFER, "451 4.7.1 Virus scan failed, try again later");
        break;
    }
}

int
filter_run_step(struct filter_run *run, int spool_fd, uint64_t size)
{
    (void)size;
    if (!run->is_verdict_final) {
        stage_virus(run, spool_fd);
    }
    /* Header fields are for accepted mail only. */
    if (run->verdict.action == FILTER_ACCEPT && run->headers_len > 0) {
        run->verdict.headers = run->headers;
        run->verdict.headers_len = run->headers_len;
    }
    return 0;
}

bool
filter_run_wait(struct filter_run *run, void (*ready)(void *arg), void *arg)
{
    (void)run;
    (void)ready;
    (void)arg;
    return false; /* no stage waits on DNS yet */
}

const struct filter_verdict *
filter_run_verdict(const struct filter_run *run)
{
    return &run->verdict;
}
