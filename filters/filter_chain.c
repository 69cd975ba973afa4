/*
 * filters/filter_chain.c - the filters in their order over one message
 * (see filter_chain.h). Each stage reads the run's inputs and earlier
 * stages' results and either finishes (its result kept in the run, so a
 * rerun skips it) or has started DNS queries (-EINPROGRESS). The verdict
 * is the first refusal, else acceptance with the edits of every stage.
 *
 * The message's first FILTER_TEXT_BYTES_MAX bytes are read once into the
 * run: the header fields are found there by offset (message_fields), and
 * the spam filter analyses them. DKIM reads the spool file itself, in
 * pieces, since it must hash all of it.
 */
#define _GNU_SOURCE
#include "filters/filter_chain.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/assertions.h"
#include "core/dns.h"
#include "core/log.h"
#include "filters/auth_results.h"
#include "filters/clamav_scan.h"
#include "filters/dkim_keys.h"
#include "filters/dkim_sign.h"
#include "filters/dkim_verify.h"
#include "filters/dmarc.h"
#include "filters/message_fields.h"
#include "filters/spam_score.h"
#include "filters/spf.h"

#define FILTER_TEXT_BYTES_MAX (4u * 1024 * 1024) /* read of the message kept in the run */
#define FILTER_FROM_FIELDS_MAX 4                 /* more From: fields: DMARC says permerror */
#define FILTER_SIGN_KEYS_MAX 8
#define FILTER_AUTH_RESULTS_BYTES 4096

struct filter_chain {
    struct filter_chain_config config;
};

static struct filter_chain_stats filter_stats;

struct filter_run {
    const struct filter_chain *chain;
    char queue_id[32];
    char client_address[64];
    char helo[FILTER_FIELD_BYTES];
    char mail_from[FILTER_FIELD_BYTES];
    char user[FILTER_FIELD_BYTES];
    bool is_trusted_network;
    bool is_inbound; /* neither authenticated nor from mynetworks */
    uint32_t rcpt_count;
    char (*rcpts)[FILTER_FIELD_BYTES];
    const char *rcpt_pointers[FILTER_RCPTS_MAX];
    uint32_t rcpt_kept;
    int64_t arrival_s;
    /* the message's first bytes */
    char *text;
    size_t text_len;
    bool is_text_read;
    size_t return_path_end; /* where new fields go */
    char *from_values[FILTER_FROM_FIELDS_MAX];
    size_t from_count;
    bool is_from_over;      /* more From: fields than we keep */
    struct dns_batch *batch;
    /* stages and their results */
    bool is_virus_done;
    struct clamav_result virus;
    bool is_dkim_done;
    struct dkim_verify *dkim;
    const struct dkim_result *dkim_results;
    size_t dkim_count;
    int dkim_error; /* prepare failed: dkim=temperror */
    bool is_spf_done;
    bool has_spf;
    struct spf_outcome spf;
    bool is_dmarc_done;
    bool has_dmarc;
    struct dmarc_outcome dmarc;
    uint32_t pct_roll;
    bool is_spam_done;
    struct spam_scan *spam_scan;
    struct spam_result spam;
    bool has_spam;
    bool is_sign_done;
    /* time spent, for the log line and the budget */
    uint64_t started_ns;
    uint64_t virus_ns;
    uint64_t dkim_ns;
    uint64_t spam_ns;
    uint64_t sign_ns;
    uint64_t stage_ns[FILTER_STATS_COUNT]; /* per filter, for the metrics */
    unsigned current_stage; /* the filter running now (FILTER_STATS_CHAIN between) */
    unsigned verdict_stage; /* the filter that refused */
    /* output */
    struct filter_verdict verdict;
    bool is_verdict_final;   /* a stage refused: the rest do not run */
    bool is_finished;        /* edits made */
    char *signatures;        /* DKIM-Signature fields */
    size_t signatures_len;
    char *headers;           /* the other new fields */
    size_t headers_len;
    size_t headers_cap;
    char *block;             /* signatures + headers, the inserted bytes */
    char *subject;           /* the rewritten Subject field */
    struct filter_edit edits[FILTER_EDITS_MAX];
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
    if (chain == NULL) {
        return false;
    }
    const struct filter_chain_config *c = &chain->config;
    bool has_dns_checks = c->dns != NULL && (c->is_dkim_verify || c->is_spf || c->is_dmarc);
    return c->clamav != NULL || has_dns_checks || c->dkim_keys != NULL || c->spam != NULL;
}

static uint64_t
clock_ns(void)
{
    struct timespec now;
    (void)clock_gettime(CLOCK_MONOTONIC, &now);
    return (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec;
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
    run->is_inbound = run->user[0] == '\0' && !run->is_trusted_network;
    run->rcpt_count = envelope->rcpt_count;
    uint32_t keep = envelope->rcpt_count < FILTER_RCPTS_MAX ? envelope->rcpt_count
                                                            : FILTER_RCPTS_MAX;
    if (envelope->rcpts == NULL) {
        keep = 0;
    }
    if (keep > 0) {
        run->rcpts = calloc(keep, sizeof(*run->rcpts));
        if (run->rcpts == NULL) {
            free(run);
            return -ENOMEM;
        }
        for (uint32_t i = 0; i < keep; i++) {
            field_copy(run->rcpts[i], sizeof(run->rcpts[i]), envelope->rcpts[i]);
            run->rcpt_pointers[i] = run->rcpts[i];
        }
    }
    run->rcpt_kept = keep;
    run->arrival_s = (int64_t)time(NULL);
    run->pct_roll = dmarc_pct_roll_random();
    run->started_ns = clock_ns();
    run->verdict.action = FILTER_ACCEPT;
    run->current_stage = FILTER_STATS_CHAIN;
    run->verdict_stage = FILTER_STATS_CHAIN;
    *run_out = run;
    return 0;
}

void
filter_run_destroy(struct filter_run **run_ptr)
{
    struct filter_run *run = *run_ptr;
    if (run == NULL) {
        return;
    }
    if (run->batch != NULL) {
        dns_batch_destroy(&run->batch);
    }
    dkim_verify_destroy(&run->dkim);
    spam_scan_destroy(&run->spam_scan);
    for (size_t i = 0; i < run->from_count; i++) {
        free(run->from_values[i]);
    }
    free(run->text);
    free(run->rcpts);
    free(run->signatures);
    free(run->headers);
    free(run->block);
    free(run->subject);
    free(run);
    *run_ptr = NULL;
}

/* ---- output helpers --------------------------------------------------------- */

/* Append bytes to the new fields; past FILTER_HEADERS_BYTES_MAX a field is
 * dropped (and said so in the log). */
static void
headers_append(struct filter_run *run, const char *bytes, size_t len)
{
    if (run->headers_len + len > FILTER_HEADERS_BYTES_MAX) {
        log_warning("%s: filters: header fields over %u bytes, one dropped", run->queue_id,
                    FILTER_HEADERS_BYTES_MAX);
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
    memcpy(run->headers + run->headers_len, bytes, len);
    run->headers_len += len;
}

/* One field, printf-style, without its CRLF. */
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
    headers_append(run, field, (size_t)n + 2);
}

/* Why the running filter refused, for the metrics. The spam filter's
 * temporary refusals are told apart by its own reply texts
 * (filters/spam_score.c: check_rates, check_greylist). */
static enum stats_reason
verdict_reason(const struct filter_run *run, enum filter_action action)
{
    const char *reply = run->verdict.reply;
    if (strncmp(reply, "451 4.3.0", 9) == 0) {
        return STATS_REASON_INTERNAL; /* out of memory, unreadable spool */
    }
    switch (run->current_stage) {
    case FILTER_STAGE_CLAMAV:
        return action == FILTER_REJECT ? STATS_REASON_VIRUS : STATS_REASON_INTERNAL;
    case FILTER_STAGE_SPF:
    case FILTER_STAGE_DMARC:
    case FILTER_STAGE_DKIM:
        return STATS_REASON_POLICY;
    case FILTER_STAGE_SPAM:
        if (strncmp(reply, "451 4.7.1 Greylisted", 20) == 0) {
            return STATS_REASON_GREYLIST;
        }
        if (strncmp(reply, "451 4.7.1 Rate limit", 20) == 0) {
            return STATS_REASON_RATE_LIMIT;
        }
        return STATS_REASON_SPAM;
    default:
        return STATS_REASON_INTERNAL; /* the chain's own: the time budget */
    }
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
    run->verdict_stage = run->current_stage;
    run->verdict.reason = verdict_reason(run, action);
}

/* The run has its verdict: count it for every filter that ran. */
static void
stats_count(const struct filter_run *run)
{
    bool has_run[FILTER_STATS_COUNT] = {
        [FILTER_STAGE_CLAMAV] = run->is_virus_done,
        [FILTER_STAGE_DKIM] = run->is_dkim_done,
        [FILTER_STAGE_SPF] = run->is_spf_done,
        [FILTER_STAGE_DMARC] = run->is_dmarc_done,
        [FILTER_STAGE_SPAM] = run->is_spam_done,
        [FILTER_STATS_SIGN] = run->is_sign_done,
        [FILTER_STATS_CHAIN] = true,
    };
    uint64_t now = clock_ns();
    for (unsigned i = 0; i < FILTER_STATS_COUNT; i++) {
        if (!has_run[i]) {
            continue;
        }
        enum filter_action action = FILTER_ACCEPT;
        if (i == run->verdict_stage || i == FILTER_STATS_CHAIN) {
            action = run->verdict.action;
        }
        ASSERT((unsigned)action < 3);
        __atomic_fetch_add(&filter_stats.verdicts[i][action], 1, __ATOMIC_RELAXED);
        uint64_t ns = i == FILTER_STATS_CHAIN ? now - run->started_ns : run->stage_ns[i];
        metrics_histogram_observe(&filter_stats.duration[i], ns / 1000);
    }
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

/* ---- the message's first bytes ---------------------------------------------- */

static int
text_read(struct filter_run *run, int spool_fd, uint64_t size)
{
    size_t want = size < FILTER_TEXT_BYTES_MAX ? (size_t)size : FILTER_TEXT_BYTES_MAX;
    run->text = malloc(want + 1);
    if (run->text == NULL) {
        return -ENOMEM;
    }
    size_t got = 0;
    while (got < want) {
        ssize_t n = pread(spool_fd, run->text + got, want - got, (off_t)got);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return n < 0 ? -errno : -EIO;
        }
        got += (size_t)n;
    }
    run->text[got] = '\0';
    run->text_len = got;
    /* Return-Path is the session's first line; new fields go below it. */
    size_t pos = 0;
    struct message_field field;
    if (message_fields_next(run->text, got, &pos, &field) &&
        message_field_is(run->text, &field, "Return-Path")) {
        run->return_path_end = field.end;
    }
    /* The From: values, for DMARC and for choosing the signing keys. */
    pos = 0;
    while (message_fields_next(run->text, got, &pos, &field)) {
        if (!message_field_is(run->text, &field, "From")) {
            continue;
        }
        if (run->from_count == FILTER_FROM_FIELDS_MAX) {
            run->is_from_over = true;
            break;
        }
        size_t len = field.value_end - field.value_start;
        char *value = strndup(run->text + field.value_start, len);
        if (value == NULL) {
            return -ENOMEM;
        }
        run->from_values[run->from_count++] = value;
    }
    return 0;
}

/* ---- stages ----------------------------------------------------------------- */

/* For the operator reading the quarantine: whom the message was for. */
static void
quarantine_header_add(struct filter_run *run)
{
    char list[1024];
    size_t len = 0;
    list[0] = '\0';
    for (uint32_t i = 0; i < run->rcpt_kept; i++) {
        int n = snprintf(list + len, sizeof(list) - len, "%s<%s>", i > 0 ? ", " : "",
                         run->rcpts[i]);
        if (n < 0 || (size_t)n >= sizeof(list) - len) {
            break; /* the rest do not fit: the log has the envelope */
        }
        len += (size_t)n;
    }
    header_add(run, "X-Quarantined-For: %s", list);
}

/* Antivirus: the spool file as it is; never a silent accept unscanned. */
static void
stage_virus(struct filter_run *run, int spool_fd)
{
    struct clamav *clamav = run->chain->config.clamav;
    if (clamav == NULL || run->is_virus_done) {
        return;
    }
    (void)clamav_scan_fd(clamav, spool_fd, &run->virus);
    run->is_virus_done = true;
    run->verdict.is_virus_scanned =
        run->virus.verdict == CLAMAV_CLEAN || run->virus.verdict == CLAMAV_VIRUS;
    switch (run->virus.verdict) {
    case CLAMAV_CLEAN:
        summary_add(run, "virus=clean%s%s", run->virus.is_over_limit ? " over-limit=" : "",
                    run->virus.limit);
        break;
    case CLAMAV_VIRUS:
        summary_add(run, "virus=%s", run->virus.name);
        if (run->chain->config.virus_action == FILTER_VIRUS_HEADER) {
            header_add(run, "X-Virus: %s", run->virus.name);
        } else if (run->chain->config.virus_action == FILTER_VIRUS_QUARANTINE) {
            header_add(run, "X-Virus: %s", run->virus.name);
            quarantine_header_add(run);
            run->verdict.is_quarantined = true;
            run->is_verdict_final = true; /* nothing else to judge: it goes nowhere else */
        } else {
            verdict_set(run, FILTER_REJECT, "554 5.7.0 Rejected: virus found: %s",
                        run->virus.name);
        }
        break;
    case CLAMAV_NOT_READY:
        summary_add(run, "virus=not-ready");
        verdict_set(run, FILTER_DEFER, "451 4.7.1 Virus scanner not ready, try again later");
        break;
    case CLAMAV_ERROR:
        summary_add(run, "virus=error (%s)", run->virus.name);
        verdict_set(run, FILTER_DEFER, "451 4.7.1 Virus scan failed, try again later");
        break;
    }
}

/* The DNS door of this run (made on first use). NULL: no resolver. */
static const struct dns_source *
run_dns(struct filter_run *run, struct dns_source *source_out)
{
    if (run->chain->config.dns == NULL) {
        return NULL;
    }
    if (run->batch == NULL && dns_batch_create(run->chain->config.dns, &run->batch) != 0) {
        return NULL;
    }
    *source_out = dns_batch_source(run->batch);
    return source_out;
}

/* DKIM verification: hashes once, then key lookups until all are in. */
static int
stage_dkim_verify(struct filter_run *run, int spool_fd, const struct dns_source *dns)
{
    if (run->is_dkim_done || !run->chain->config.is_dkim_verify || dns == NULL) {
        return 0;
    }
    if (run->dkim == NULL) {
        int rc = dkim_verify_prepare(spool_fd, (uint64_t)run->arrival_s, &run->dkim);
        if (rc != 0) {
            log_warning("%s: DKIM: cannot read the message: %s", run->queue_id, strerror(-rc));
            run->dkim_error = rc;
            run->is_dkim_done = true;
            return 0;
        }
    }
    int rc = dkim_verify_finish(run->dkim, dns, &run->dkim_results, &run->dkim_count);
    if (rc == -EINPROGRESS) {
        return rc;
    }
    run->is_dkim_done = true;
    if (rc != 0) {
        run->dkim_error = rc;
        run->dkim_count = 0;
    }
    return 0;
}

static int
stage_spf(struct filter_run *run, const struct dns_source *dns)
{
    if (run->is_spf_done || !run->chain->config.is_spf || dns == NULL) {
        return 0;
    }
    struct spf_request request = {
        .helo = run->helo,
        .mail_from = run->mail_from,
        .receiver = run->chain->config.authserv_id,
        .now_s = run->arrival_s,
    };
    if (spf_ip_parse(run->client_address, &request.ip) != 0) {
        run->is_spf_done = true; /* no address to check (a local pickup) */
        return 0;
    }
    int rc = spf_check_mailfrom(&request, dns, &run->spf);
    if (rc == -EINPROGRESS) {
        return rc;
    }
    run->is_spf_done = true;
    run->has_spf = rc == 0;
    if (run->has_spf) {
        summary_add(run, "spf=%s", spf_result_name(run->spf.result));
    }
    return 0;
}

static int
stage_dmarc(struct filter_run *run, const struct dns_source *dns)
{
    if (run->is_dmarc_done || !run->chain->config.is_dmarc || dns == NULL) {
        return 0;
    }
    const char *pass_domains[DMARC_DKIM_DOMAINS_MAX];
    size_t pass_count = 0;
    for (size_t i = 0; i < run->dkim_count && pass_count < DMARC_DKIM_DOMAINS_MAX; i++) {
        if (run->dkim_results[i].code == DKIM_RESULT_PASS) {
            pass_domains[pass_count++] = run->dkim_results[i].domain;
        }
    }
    struct dmarc_request request = {
        .from_values = (const char *const *)run->from_values,
        /* Past FILTER_FROM_FIELDS_MAX (> 1) the count already says
         * "more than one From:", which is all DMARC needs to know. */
        .from_count = run->from_count,
        .spf_result = run->has_spf ? run->spf.result : SPF_RESULT_NONE,
        .spf_domain = run->has_spf ? run->spf.domain : "",
        .dkim_pass_domains = pass_domains,
        .dkim_pass_count = pass_count,
        .pct_roll = run->pct_roll,
        .psl = run->chain->config.psl,
    };
    int rc = dmarc_evaluate(&request, dns, &run->dmarc);
    if (rc == -EINPROGRESS) {
        return rc;
    }
    run->is_dmarc_done = true;
    run->has_dmarc = rc == 0;
    if (!run->has_dmarc) {
        return 0;
    }
    summary_add(run, "dmarc=%s", dmarc_result_name(run->dmarc.result));
    if (run->dmarc.result == DMARC_RESULT_FAIL && run->chain->config.is_dmarc_reject &&
        run->dmarc.disposition == DMARC_POLICY_REJECT) {
        verdict_set(run, FILTER_REJECT, "550 5.7.1 Rejected by the DMARC policy of %s",
                    run->dmarc.from_domain);
    }
    return 0;
}

static enum auth_results_dkim_result
auth_results_dkim_code(enum dkim_result_code code)
{
    switch (code) {
    case DKIM_RESULT_PASS:
        return AUTH_RESULTS_DKIM_PASS;
    case DKIM_RESULT_FAIL:
        return AUTH_RESULTS_DKIM_FAIL;
    case DKIM_RESULT_NEUTRAL:
        return AUTH_RESULTS_DKIM_NEUTRAL;
    case DKIM_RESULT_POLICY:
        return AUTH_RESULTS_DKIM_POLICY;
    case DKIM_RESULT_TEMPERROR:
        return AUTH_RESULTS_DKIM_TEMPERROR;
    case DKIM_RESULT_PERMERROR:
        return AUTH_RESULTS_DKIM_PERMERROR;
    }
    return AUTH_RESULTS_DKIM_PERMERROR;
}

/* One Authentication-Results field for what ran (RFC 8601). */
static void
auth_results_add(struct filter_run *run)
{
    const struct filter_chain_config *c = &run->chain->config;
    bool is_dkim_reported = c->is_dkim_verify && run->is_dkim_done && c->dns != NULL;
    if (!is_dkim_reported && !run->has_spf && !run->has_dmarc) {
        return;
    }
    struct auth_results_dkim dkim[AUTH_RESULTS_DKIM_MAX];
    size_t dkim_count = 0;
    if (is_dkim_reported && run->dkim_error != 0) {
        dkim[dkim_count++] = (struct auth_results_dkim){
            .result = AUTH_RESULTS_DKIM_TEMPERROR, .reason = "message could not be read",
        };
    }
    for (size_t i = 0; i < run->dkim_count && dkim_count < AUTH_RESULTS_DKIM_MAX; i++) {
        const struct dkim_result *r = &run->dkim_results[i];
        dkim[dkim_count++] = (struct auth_results_dkim){
            .result = auth_results_dkim_code(r->code),
            .domain = r->domain,
            .selector = r->selector,
            .algorithm = r->algorithm,
            .b = r->b_prefix,
            .reason = r->code == DKIM_RESULT_PASS ? NULL : r->reason,
        };
    }
    if (is_dkim_reported && dkim_count == 0) {
        dkim[dkim_count++] = (struct auth_results_dkim){ .result = AUTH_RESULTS_DKIM_NONE };
    }
    if (is_dkim_reported) {
        summary_add(run, "dkim=%s", auth_results_dkim_result_name(dkim[0].result));
    }
    struct auth_results_input input = {
        .authserv_id = c->authserv_id,
        .dkim = dkim,
        .dkim_count = is_dkim_reported ? dkim_count : 0,
        .spf = run->has_spf ? &run->spf : NULL,
        .dmarc = run->has_dmarc ? &run->dmarc : NULL,
    };
    char field[FILTER_AUTH_RESULTS_BYTES];
    int n = auth_results_format(&input, field, sizeof(field));
    if (n > 0) {
        headers_append(run, field, (size_t)n);
    }
}

static enum spam_spf_result
spam_spf(const struct filter_run *run)
{
    if (!run->has_spf) {
        return SPAM_SPF_UNCHECKED;
    }
    switch (run->spf.result) {
    case SPF_RESULT_NONE:
        return SPAM_SPF_NONE;
    case SPF_RESULT_NEUTRAL:
        return SPAM_SPF_NEUTRAL;
    case SPF_RESULT_PASS:
        return SPAM_SPF_PASS;
    case SPF_RESULT_FAIL:
        return SPAM_SPF_FAIL;
    case SPF_RESULT_SOFTFAIL:
        return SPAM_SPF_SOFTFAIL;
    case SPF_RESULT_TEMPERROR:
        return SPAM_SPF_TEMPERROR;
    case SPF_RESULT_PERMERROR:
        return SPAM_SPF_PERMERROR;
    }
    return SPAM_SPF_UNCHECKED;
}

/* The DKIM results as one spam input: any pass wins, then a failure. */
static enum spam_dkim_result
spam_dkim(const struct filter_run *run, const char **domain_out)
{
    *domain_out = NULL;
    if (!run->is_dkim_done || !run->chain->config.is_dkim_verify) {
        return SPAM_DKIM_UNCHECKED;
    }
    if (run->dkim_error != 0) {
        return SPAM_DKIM_TEMPERROR;
    }
    enum spam_dkim_result best = SPAM_DKIM_NONE;
    for (size_t i = 0; i < run->dkim_count; i++) {
        const struct dkim_result *r = &run->dkim_results[i];
        if (r->code == DKIM_RESULT_PASS) {
            *domain_out = r->domain;
            return SPAM_DKIM_PASS;
        }
        if (r->code == DKIM_RESULT_FAIL) {
            best = SPAM_DKIM_FAIL;
            *domain_out = r->domain;
        } else if (best == SPAM_DKIM_NONE && r->code == DKIM_RESULT_TEMPERROR) {
            best = SPAM_DKIM_TEMPERROR;
        } else if (best == SPAM_DKIM_NONE && r->code == DKIM_RESULT_PERMERROR) {
            best = SPAM_DKIM_PERMERROR;
        }
    }
    return best;
}

static enum spam_dmarc_result
spam_dmarc(const struct filter_run *run)
{
    if (!run->has_dmarc) {
        return SPAM_DMARC_UNCHECKED;
    }
    switch (run->dmarc.result) {
    case DMARC_RESULT_PASS:
        return SPAM_DMARC_PASS;
    case DMARC_RESULT_NONE:
        return SPAM_DMARC_NONE;
    case DMARC_RESULT_TEMPERROR:
        return SPAM_DMARC_TEMPERROR;
    case DMARC_RESULT_PERMERROR:
        return SPAM_DMARC_PERMERROR;
    case DMARC_RESULT_FAIL:
        return run->dmarc.policy == DMARC_POLICY_REJECT       ? SPAM_DMARC_FAIL_REJECT
               : run->dmarc.policy == DMARC_POLICY_QUARANTINE ? SPAM_DMARC_FAIL_QUARANTINE
                                                              : SPAM_DMARC_FAIL_NONE;
    }
    return SPAM_DMARC_UNCHECKED;
}

/* Loopback and private addresses: our own machines, which Rspamd does not
 * greylist unless told to (check_local). */
static bool
client_is_local(const char *address)
{
    struct in_addr v4;
    struct in6_addr v6;
    if (inet_pton(AF_INET6, address, &v6) == 1 && IN6_IS_ADDR_V4MAPPED(&v6)) {
        memcpy(&v4, v6.s6_addr + 12, 4);
    } else if (inet_pton(AF_INET6, address, &v6) == 1) {
        return IN6_IS_ADDR_LOOPBACK(&v6) || IN6_IS_ADDR_LINKLOCAL(&v6) ||
               (v6.s6_addr[0] & 0xfe) == 0xfc;
    } else if (inet_pton(AF_INET, address, &v4) != 1) {
        return false;
    }
    uint32_t a = ntohl(v4.s_addr);
    uint32_t o1 = a >> 24;
    uint32_t o2 = (a >> 16) & 255;
    return o1 == 127 || o1 == 10 || (o1 == 172 && o2 >= 16 && o2 <= 31) ||
           (o1 == 192 && o2 == 168) || (o1 == 169 && o2 == 254);
}

static int
stage_spam(struct filter_run *run, const struct dns_source *dns)
{
    const struct spam_filter *spam = run->chain->config.spam;
    if (run->is_spam_done || spam == NULL) {
        return 0;
    }
    if (run->spam_scan == NULL &&
        spam_scan_prepare(spam, run->text, run->text_len, &run->spam_scan) != 0) {
        verdict_set(run, FILTER_DEFER, "451 4.3.0 Error: out of memory, try again later");
        run->is_spam_done = true;
        return 0;
    }
    struct spam_inputs inputs = {
        .is_authenticated = !run->is_inbound,
        .mail_from = run->mail_from,
        .rcpts = run->rcpt_pointers,
        .rcpt_count = run->rcpt_kept,
        .spf = spam_spf(run),
        .spf_domain = run->has_spf ? run->spf.domain : NULL,
        .dmarc = spam_dmarc(run),
        .dmarc_domain = run->has_dmarc ? run->dmarc.from_domain : NULL,
        .virus_name = run->is_virus_done && run->virus.verdict == CLAMAV_VIRUS ? run->virus.name
                                                                               : NULL,
        .now_s = (uint64_t)run->arrival_s,
    };
    inputs.dkim = spam_dkim(run, &inputs.dkim_domain);
    inputs.is_greylist_exempt = !run->chain->config.is_greylist_local &&
                                client_is_local(run->client_address);
    if (inet_pton(AF_INET, run->client_address, &inputs.client.addr4) == 1) {
        inputs.client.family = AF_INET;
    } else if (inet_pton(AF_INET6, run->client_address, &inputs.client.addr6) == 1) {
        inputs.client.family = AF_INET6;
    } else {
        inputs.client.family = AF_UNSPEC;
    }
    int rc = spam_scan_run(spam, run->spam_scan, &inputs, dns, run->chain->config.kv,
                           &run->spam);
    if (rc == -EINPROGRESS) {
        return rc;
    }
    run->is_spam_done = true;
    if (rc != 0) {
        log_warning("%s: spam filter: %s", run->queue_id, strerror(-rc));
        return 0;
    }
    run->has_spam = true;
    summary_add(run, "spam=%.2f/%s", run->spam.score, spam_action_name(run->spam.action));
    if (run->spam.disposition == SPAM_REJECT || run->spam.disposition == SPAM_TEMPFAIL) {
        verdict_set(run, run->spam.disposition == SPAM_REJECT ? FILTER_REJECT : FILTER_DEFER,
                    "%s", run->spam.reply);
    }
    return 0;
}

/* DKIM signing of our users' mail with its From: domain's keys. */
static void
stage_sign(struct filter_run *run, int spool_fd)
{
    const struct dkim_keys *keys = run->chain->config.dkim_keys;
    if (run->is_sign_done || keys == NULL) {
        return;
    }
    run->is_sign_done = true;
    char domain[DMARC_DOMAIN_BYTES_MAX];
    if (dmarc_from_domain((const char *const *)run->from_values, run->from_count, domain,
                          sizeof(domain)) != 0) {
        summary_add(run, "dkim-sign=no-from-domain");
        return;
    }
    const struct dkim_key *chosen[FILTER_SIGN_KEYS_MAX];
    size_t count = dkim_keys_for_domain(keys, domain, chosen, FILTER_SIGN_KEYS_MAX);
    if (count == 0) {
        return;
    }
    size_t bytes = count * DKIM_SIGN_FIELD_BYTES_MAX;
    run->signatures = malloc(bytes);
    if (run->signatures == NULL) {
        return;
    }
    struct dkim_sign_options options;
    dkim_sign_options_default(&options);
    options.now_s = (uint64_t)run->arrival_s;
    int rc = dkim_sign(chosen, count, spool_fd, &options, run->signatures, bytes,
                       &run->signatures_len);
    if (rc != 0) {
        /* Sent unsigned rather than not at all; the log says why. */
        log_warning("%s: DKIM signing for %s failed: %s", run->queue_id, domain, strerror(-rc));
        run->signatures_len = 0;
        return;
    }
    summary_add(run, "dkim-signed=%s", domain);
}

/* ---- the verdict's edits ------------------------------------------------------ */

static bool
edit_add(struct filter_run *run, uint64_t offset, uint64_t delete_len, const char *bytes,
         size_t len)
{
    if (run->verdict.edit_count == FILTER_EDITS_MAX) {
        return false;
    }
    run->edits[run->verdict.edit_count++] = (struct filter_edit){
        .offset = offset, .delete_len = delete_len, .bytes = bytes, .len = len,
    };
    return true;
}

/* The new fields below Return-Path; for mail from the internet our own
 * Authentication-Results fields taken out (nobody else may speak for
 * us); the Subject rewritten when the spam action says so. */
static void
edits_make(struct filter_run *run)
{
    size_t block_len = run->signatures_len + run->headers_len;
    if (block_len > 0) {
        run->block = malloc(block_len);
        if (run->block == NULL) {
            verdict_set(run, FILTER_DEFER, "451 4.3.0 Error: out of memory, try again later");
            return;
        }
        if (run->signatures_len > 0) {
            memcpy(run->block, run->signatures, run->signatures_len);
        }
        if (run->headers_len > 0) {
            memcpy(run->block + run->signatures_len, run->headers, run->headers_len);
        }
        (void)edit_add(run, run->return_path_end, 0, run->block, block_len);
    }
    bool is_subject_rewritten = run->has_spam &&
                                run->spam.action == SPAM_ACTION_REWRITE_SUBJECT &&
                                asprintf(&run->subject, "Subject: %s\r\n", run->spam.subject) > 0;
    if (!is_subject_rewritten) {
        run->subject = NULL;
    }
    /* Edits go in offset order: first what sits at return_path_end. */
    struct message_field subject = {0};
    bool has_subject = false;
    size_t pos = run->return_path_end;
    struct message_field field;
    while (is_subject_rewritten && message_fields_next(run->text, run->text_len, &pos, &field)) {
        if (message_field_is(run->text, &field, "Subject")) {
            subject = field;
            has_subject = true;
            break;
        }
    }
    if (is_subject_rewritten && !has_subject) {
        /* No Subject: one is added with the new fields. */
        (void)edit_add(run, run->return_path_end, 0, run->subject, strlen(run->subject));
    }
    pos = run->return_path_end;
    while (message_fields_next(run->text, run->text_len, &pos, &field)) {
        if (run->is_inbound && message_field_is(run->text, &field, "Authentication-Results") &&
            auth_results_header_is_ours(run->text + field.value_start,
                                        field.value_end - field.value_start,
                                        run->chain->config.authserv_id)) {
            if (!edit_add(run, field.start, field.end - field.start, NULL, 0)) {
                break;
            }
            summary_add(run, "forged-auth-results-removed");
        } else if (has_subject && field.start == subject.start) {
            (void)edit_add(run, field.start, field.end - field.start, run->subject,
                           strlen(run->subject));
        }
    }
    run->verdict.edits = run->edits;
}

/* ---- the order ---------------------------------------------------------------- */

static const char *const stage_names[FILTER_STAGE_COUNT] = {
    [FILTER_STAGE_CLAMAV] = "clamav", [FILTER_STAGE_DKIM] = "dkim", [FILTER_STAGE_SPF] = "spf",
    [FILTER_STAGE_DMARC] = "dmarc",   [FILTER_STAGE_SPAM] = "spam",
};

int
filter_order_parse(const char *text, enum filter_stage order_out[FILTER_STAGE_COUNT],
                   char *error_out, size_t error_bytes)
{
    int position[FILTER_STAGE_COUNT];
    for (size_t k = 0; k < FILTER_STAGE_COUNT; k++) {
        position[k] = -1;
    }
    size_t count = 0;
    const char *at = text;
    while (*at != '\0') {
        while (*at == ' ' || *at == '\t' || *at == ',') {
            at++;
        }
        size_t len = strcspn(at, " \t,");
        if (len == 0) {
            break;
        }
        size_t k = 0;
        while (k < FILTER_STAGE_COUNT &&
               (strlen(stage_names[k]) != len || strncmp(stage_names[k], at, len) != 0)) {
            k++;
        }
        if (k == FILTER_STAGE_COUNT) {
            (void)snprintf(error_out, error_bytes, "unknown filter '%.*s'", (int)len, at);
            return -EINVAL;
        }
        if (position[k] >= 0) {
            (void)snprintf(error_out, error_bytes, "'%s' given twice", stage_names[k]);
            return -EINVAL;
        }
        position[k] = (int)count;
        order_out[count++] = (enum filter_stage)k;
        at += len;
    }
    if (count != FILTER_STAGE_COUNT) {
        (void)snprintf(error_out, error_bytes,
                       "name every filter once: clamav, dkim, spf, dmarc, spam");
        return -EINVAL;
    }
    if (position[FILTER_STAGE_DMARC] < position[FILTER_STAGE_DKIM] ||
        position[FILTER_STAGE_DMARC] < position[FILTER_STAGE_SPF] ||
        position[FILTER_STAGE_SPAM] < position[FILTER_STAGE_DMARC]) {
        (void)snprintf(error_out, error_bytes,
                       "dmarc must follow dkim and spf, and spam must follow dmarc");
        return -EINVAL;
    }
    return 0;
}

/* ---- the run ------------------------------------------------------------------ */

int
filter_run_step(struct filter_run *run, int spool_fd, uint64_t size)
{
    if (run->is_finished) {
        return 0;
    }
    if (!run->is_text_read) {
        int rc = text_read(run, spool_fd, size);
        run->is_text_read = true;
        if (rc != 0) {
            log_error("%s: filters: cannot read the message: %s", run->queue_id, strerror(-rc));
            verdict_set(run, FILTER_DEFER, "451 4.3.0 Error: cannot read the message, try again later");
        }
    }
    uint32_t budget_ms = run->chain->config.time_budget_ms;
    if (!run->is_verdict_final && budget_ms > 0 &&
        clock_ns() - run->started_ns > (uint64_t)budget_ms * 1000000u) {
        summary_add(run, "over-time-budget");
        verdict_set(run, FILTER_DEFER, "451 4.7.1 Message checks took too long, try again later");
    }
    /* The stages in the configured order. A stage waiting on DNS lets the
     * next ones start their own questions (DKIM and SPF ask side by side)
     * unless they need its result: DMARC needs DKIM and SPF, scoring needs
     * every stage before it. */
    struct dns_source source;
    const struct dns_source *dns = run->is_inbound ? run_dns(run, &source) : NULL;
    unsigned pending = 0; /* 1 << stage */
    const struct filter_chain_config *c = &run->chain->config;
    for (size_t i = 0; i < c->order_count && !run->is_verdict_final; i++) {
        enum filter_stage stage = c->order[i];
        if (stage != FILTER_STAGE_CLAMAV && !run->is_inbound) {
            continue; /* our own users' mail is signed, not judged */
        }
        if ((stage == FILTER_STAGE_DMARC || stage == FILTER_STAGE_SPAM) && pending != 0) {
            return -EINPROGRESS;
        }
        uint64_t start = clock_ns();
        int rc = 0;
        run->current_stage = stage;
        switch (stage) {
        case FILTER_STAGE_CLAMAV:
            stage_virus(run, spool_fd);
            run->virus_ns += clock_ns() - start;
            break;
        case FILTER_STAGE_DKIM:
            rc = stage_dkim_verify(run, spool_fd, dns);
            run->dkim_ns += clock_ns() - start;
            break;
        case FILTER_STAGE_SPF:
            rc = stage_spf(run, dns);
            break;
        case FILTER_STAGE_DMARC:
            rc = stage_dmarc(run, dns);
            break;
        case FILTER_STAGE_SPAM:
            rc = stage_spam(run, dns);
            run->spam_ns += clock_ns() - start;
            break;
        case FILTER_STAGE_COUNT:
            ASSERT(!"not a stage");
            break;
        }
        run->stage_ns[stage] += clock_ns() - start;
        run->current_stage = FILTER_STATS_CHAIN;
        if (rc == -EINPROGRESS) {
            pending |= 1u << stage;
        }
    }
    if (pending != 0 && !run->is_verdict_final) {
        return -EINPROGRESS;
    }
    if (!run->is_verdict_final && !run->is_inbound) {
        uint64_t t4 = clock_ns();
        run->current_stage = FILTER_STATS_SIGN;
        stage_sign(run, spool_fd);
        run->current_stage = FILTER_STATS_CHAIN;
        run->sign_ns += clock_ns() - t4;
        run->stage_ns[FILTER_STATS_SIGN] = run->sign_ns;
    }
    run->is_finished = true;
    stats_count(run);
    if (run->is_inbound) {
        auth_results_add(run);
    }
    summary_add(run, "ms: virus=%.1f dkim=%.1f spam=%.1f sign=%.1f total=%.1f",
                (double)run->virus_ns / 1e6, (double)run->dkim_ns / 1e6,
                (double)run->spam_ns / 1e6, (double)run->sign_ns / 1e6,
                (double)(clock_ns() - run->started_ns) / 1e6);
    if (run->has_spam && !run->is_verdict_final) {
        char headers[SPAM_HEADERS_BYTES_MAX];
        long n = spam_result_headers(&run->spam, headers, sizeof(headers));
        if (n > 0) {
            headers_append(run, headers, (size_t)n);
        }
    }
    if (run->verdict.action == FILTER_ACCEPT) {
        edits_make(run);
    }
    return 0;
}

bool
filter_run_wait(struct filter_run *run, void (*ready)(void *arg), void *arg)
{
    if (run->batch == NULL || dns_batch_pending(run->batch) == 0) {
        return false;
    }
    return dns_batch_wait(run->batch, ready, arg);
}

const struct filter_verdict *
filter_run_verdict(const struct filter_run *run)
{
    return &run->verdict;
}

/* ---- metrics -------------------------------------------------------------------- */

const struct filter_chain_stats *
filter_chain_stats(void)
{
    return &filter_stats;
}

const char *
filter_stats_name(unsigned filter)
{
    static const char *const names[FILTER_STATS_COUNT] = {
        [FILTER_STAGE_CLAMAV] = "clamav", [FILTER_STAGE_DKIM] = "dkim",
        [FILTER_STAGE_SPF] = "spf",       [FILTER_STAGE_DMARC] = "dmarc",
        [FILTER_STAGE_SPAM] = "spam",     [FILTER_STATS_SIGN] = "dkim_sign",
        [FILTER_STATS_CHAIN] = "chain",
    };
    ASSERT(filter < FILTER_STATS_COUNT);
    return names[filter];
}

const char *
filter_action_name(enum filter_action action)
{
    switch (action) {
    case FILTER_ACCEPT:
        return "accept";
    case FILTER_REJECT:
        return "reject";
    case FILTER_DEFER:
        return "defer";
    }
    return "accept";
}
