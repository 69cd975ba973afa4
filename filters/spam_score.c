/*
 * filters/spam_score.c - the scorer's driver: symbols to score, score to
 * action and SMTP reply, and the header lines (see spam_score.h for the
 * calls and their order).
 *
 * Owns struct spam_filter (config + rules, read-only once made) and
 * struct spam_scan (one message's analysis and its DNS-free symbols).
 * Runs on workers. A run that must wait for DNS returns before anything
 * is written to the store, so a rerun from the start counts nothing twice.
 * Limits: SPAM_SYMBOLS_MAX symbols per result, SPAM_RCPTS_MAX recipients
 * counted and greylisted per message.
 */
#include "filters/spam_score.h"

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>

#include "core/assertions.h"
#include "filters/spam_bayes.h"
#include "filters/spam_checks.h"

struct spam_filter {
    struct spam_config config;
    struct spam_rules *rules;
};

struct spam_scan {
    struct spam_message *message;
    struct spam_symbols  symbols; /* from the message alone */
};

void
spam_config_defaults(struct spam_config *config)
{
    *config = (struct spam_config){
        .reject_score = SPAM_REJECT_SCORE_DEFAULT,
        .add_header_score = SPAM_ADD_HEADER_SCORE_DEFAULT,
        .greylist_score = SPAM_GREYLIST_SCORE_DEFAULT,
        .is_rewrite_subject = false,
        .rewrite_subject_score = SPAM_REWRITE_SUBJECT_SCORE_DEFAULT,
        .greylist_mode = SPAM_GREYLIST_SCORE,
        .greylist = {
            .delay_s = SPAM_GREYLIST_DELAY_S_DEFAULT,
            .retry_window_s = SPAM_GREYLIST_RETRY_WINDOW_S_DEFAULT,
            .pass_ttl_s = SPAM_GREYLIST_PASS_TTL_S_DEFAULT,
        },
        .bayes_min_learns = SPAM_BAYES_MIN_LEARNS_DEFAULT,
        .many_recipients = SPAM_MANY_RECIPIENTS_DEFAULT,
        .uribl_lookups_max = SPAM_URIBL_LOOKUPS_MAX,
    };
}

int
spam_filter_create(const struct spam_config *config, const char *rules_path,
                   struct spam_filter **filter_out, char *err, size_t err_bytes)
{
    struct spam_rules *rules = NULL;
    int rc;
    if (rules_path == NULL || rules_path[0] == '\0') {
        rc = spam_rules_parse("", 0, &rules, err, err_bytes);
    } else {
        rc = spam_rules_load(rules_path, &rules, err, err_bytes);
    }
    if (rc != 0) {
        return rc;
    }
    rc = spam_filter_create_rules(config, rules, filter_out);
    if (rc != 0) {
        spam_rules_destroy(&rules);
    }
    return rc;
}

int
spam_filter_create_rules(const struct spam_config *config, struct spam_rules *rules,
                         struct spam_filter **filter_out)
{
    ASSERT(config != NULL);
    ASSERT(rules != NULL);
    struct spam_filter *f = calloc(1, sizeof(*f));
    if (f == NULL) {
        return -ENOMEM;
    }
    f->config = *config;
    f->rules = rules;
    *filter_out = f;
    return 0;
}

void
spam_filter_destroy(struct spam_filter **filter)
{
    if (filter == NULL || *filter == NULL) {
        return;
    }
    spam_rules_destroy(&(*filter)->rules);
    free(*filter);
    *filter = NULL;
}

const struct spam_config *
spam_filter_config(const struct spam_filter *filter)
{
    return &filter->config;
}

int
spam_scan_prepare(const struct spam_filter *filter, const char *msg, size_t len,
                  struct spam_scan **scan_out)
{
    ASSERT(filter != NULL);
    ASSERT(scan_out != NULL);
    *scan_out = NULL;
    struct spam_scan *scan = calloc(1, sizeof(*scan));
    if (scan == NULL) {
        return -ENOMEM;
    }
    int rc = spam_message_analyse(msg, len, &scan->message);
    if (rc != 0) {
        free(scan);
        return rc;
    }
    spam_checks_message(filter->rules, &filter->config, scan->message, &scan->symbols);
    *scan_out = scan;
    return 0;
}

int
spam_scan_prepare_fd(const struct spam_filter *filter, int fd, uint64_t size,
                     struct spam_scan **scan_out)
{
    ASSERT(fd >= 0);
    *scan_out = NULL;
    size_t len = size > SPAM_SCAN_BYTES_MAX ? SPAM_SCAN_BYTES_MAX : (size_t)size;
    if (len == 0) {
        return spam_scan_prepare(filter, "", 0, scan_out);
    }
    /* Mapped, not read: only the header, the text parts and the boundary
     * lines are touched, and the page cache already holds the file. */
    void *map = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
    if (map == MAP_FAILED) {
        return -errno;
    }
    int rc = spam_scan_prepare(filter, map, len, scan_out);
    (void)munmap(map, len); /* a read-only private mapping: nothing to lose */
    return rc;
}

const struct spam_message *
spam_scan_message(const struct spam_scan *scan)
{
    return scan->message;
}

void
spam_scan_destroy(struct spam_scan **scan)
{
    if (scan == NULL || *scan == NULL) {
        return;
    }
    spam_message_destroy(&(*scan)->message);
    free(*scan);
    *scan = NULL;
}

static void
client_text(const struct spam_client *client, char *out, size_t out_bytes)
{
    const void *a = client->family == AF_INET ? (const void *)&client->addr4
                                              : (const void *)&client->addr6;
    if (inet_ntop(client->family, a, out, (socklen_t)out_bytes) == NULL) {
        out[0] = '\0';
    }
}

/* Rate limits; true (and reply set) when one is exceeded. */
static bool
check_rates(const struct spam_config *cfg, const struct spam_inputs *in, struct kv *kv,
            struct spam_result *result)
{
    bool is_over = false;
    const char *what = NULL;
    if (in->mail_from != NULL && in->mail_from[0] != '\0') {
        bool over = false;
        (void)spam_ratelimit_hit(kv, SPAM_RATE_SENDER, &cfg->ratelimit_sender, in->mail_from,
                                 &over); /* fails open */
        if (over) {
            is_over = true;
            what = "sender";
        }
    }
    if (in->client.family == AF_INET || in->client.family == AF_INET6) {
        char ip[INET6_ADDRSTRLEN];
        client_text(&in->client, ip, sizeof(ip));
        bool over = false;
        if (ip[0] != '\0') {
            (void)spam_ratelimit_hit(kv, SPAM_RATE_IP, &cfg->ratelimit_ip, ip, &over);
        }
        if (over && !is_over) {
            is_over = true;
            what = "client address";
        }
    }
    for (size_t i = 0; i < in->rcpt_count && i < SPAM_RCPTS_MAX; i++) {
        bool over = false;
        (void)spam_ratelimit_hit(kv, SPAM_RATE_RCPT, &cfg->ratelimit_rcpt, in->rcpts[i], &over);
        if (over && !is_over) {
            is_over = true;
            what = "recipient";
        }
    }
    if (is_over) {
        (void)snprintf(result->reply, sizeof(result->reply),
                       "451 4.7.1 Rate limit exceeded for this %s, try again later", what);
    }
    return is_over;
}

/* Greylisting; true (and reply set) when the message must wait. */
static bool
check_greylist(const struct spam_config *cfg, const struct spam_inputs *in, struct kv *kv,
               struct spam_result *result)
{
    uint32_t wait_max_s = 0;
    bool is_deferred = false;
    const char *sender = in->mail_from != NULL ? in->mail_from : "";
    for (size_t i = 0; i < in->rcpt_count && i < SPAM_RCPTS_MAX; i++) {
        uint32_t wait_s = 0;
        int rc = spam_greylist_check(kv, &cfg->greylist, &in->client, sender, in->rcpts[i],
                                     in->now_s, &wait_s);
        if (rc == 1) {
            is_deferred = true;
            wait_max_s = wait_s > wait_max_s ? wait_s : wait_max_s;
        }
    }
    if (is_deferred) {
        (void)snprintf(result->reply, sizeof(result->reply),
                       "451 4.7.1 Greylisted, try again in %u seconds (and within %u hours)",
                       wait_max_s, cfg->greylist.retry_window_s / 3600);
    }
    return is_deferred;
}

int
spam_scan_run(const struct spam_filter *filter, struct spam_scan *scan,
              const struct spam_inputs *in, const struct dns_source *dns, struct kv *kv,
              struct spam_result *result)
{
    ASSERT(filter != NULL);
    ASSERT(scan != NULL);
    ASSERT(in != NULL);
    ASSERT(result != NULL);
    const struct spam_config *cfg = &filter->config;
    const struct spam_rules *rules = filter->rules;
    struct spam_symbols *symbols = malloc(sizeof(*symbols));
    if (symbols == NULL) {
        return -ENOMEM;
    }
    *symbols = scan->symbols;
    spam_checks_inputs(rules, cfg, scan->message, in, symbols);
    if (dns != NULL) {
        int rc = spam_checks_dns(rules, cfg, scan->message, in, dns, symbols);
        if (rc != 0) {
            free(symbols);
            return rc; /* -EINPROGRESS: nothing written yet */
        }
    }
    struct kv *bayes_kv = cfg->bayes_kv != NULL ? cfg->bayes_kv : kv;
    if (bayes_kv != NULL) {
        double prob = 0.0;
        if (spam_bayes_classify(bayes_kv, scan->message, cfg->bayes_min_learns, &prob) == 0) {
            char options[32];
            (void)snprintf(options, sizeof(options), "%.2f%%", prob * 100.0);
            /* Rspamd's scaling: the weight times how far from 0.5 it is,
             * nothing inside the 0.45..0.55 dead zone. */
            if (prob >= 0.55) {
                spam_symbols_add(symbols, rules, "BAYES_SPAM", (prob - 0.5) * 2.0, options);
            } else if (prob <= 0.45) {
                spam_symbols_add(symbols, rules, "BAYES_HAM", (0.5 - prob) * 2.0, options);
            }
        }
    }

    memset(result, 0, sizeof(*result));
    result->reject_score = cfg->reject_score;
    result->add_header_score = cfg->add_header_score;
    double score = 0.0;
    for (size_t i = 0; i < symbols->count; i++) {
        score += symbols->items[i].score;
    }
    result->score = score;
    result->symbol_count = symbols->count;
    result->is_symbols_truncated = symbols->is_truncated;
    memcpy(result->symbols, symbols->items, symbols->count * sizeof(symbols->items[0]));
    bool is_gtube = spam_symbols_has(symbols, "GTUBE");
    free(symbols);

    if (is_gtube || score >= cfg->reject_score) {
        result->action = SPAM_ACTION_REJECT;
    } else if (cfg->is_rewrite_subject && score >= cfg->rewrite_subject_score) {
        result->action = SPAM_ACTION_REWRITE_SUBJECT;
    } else if (score >= cfg->add_header_score) {
        result->action = SPAM_ACTION_ADD_HEADER;
    } else if (score >= cfg->greylist_score) {
        result->action = SPAM_ACTION_GREYLIST;
    } else {
        result->action = SPAM_ACTION_NO_ACTION;
    }
    result->disposition = SPAM_ACCEPT;
    if (result->action == SPAM_ACTION_REJECT) {
        result->disposition = SPAM_REJECT;
        (void)snprintf(result->reply, sizeof(result->reply), "%s",
                       is_gtube ? "554 5.7.1 Gtube pattern" : "554 5.7.1 Spam message rejected");
        return 0;
    }
    if (kv != NULL && check_rates(cfg, in, kv, result)) {
        result->action = SPAM_ACTION_SOFT_REJECT;
        result->disposition = SPAM_TEMPFAIL;
        return 0;
    }
    bool is_greylistable = kv != NULL && !in->is_authenticated && !in->is_greylist_exempt &&
                           (in->client.family == AF_INET || in->client.family == AF_INET6) &&
                           (cfg->greylist_mode == SPAM_GREYLIST_ALWAYS ||
                            (cfg->greylist_mode == SPAM_GREYLIST_SCORE &&
                             score >= cfg->greylist_score));
    if (is_greylistable && check_greylist(cfg, in, kv, result)) {
        result->action = SPAM_ACTION_SOFT_REJECT;
        result->disposition = SPAM_TEMPFAIL;
        return 0;
    }
    if (result->action == SPAM_ACTION_REWRITE_SUBJECT) {
        (void)snprintf(result->subject, sizeof(result->subject), "%s%s", SPAM_SUBJECT_PREFIX,
                       scan->message->subject_raw);
    }
    return 0;
}

const char *
spam_action_name(enum spam_action action)
{
    switch (action) {
    case SPAM_ACTION_NO_ACTION: return "no action";
    case SPAM_ACTION_GREYLIST: return "greylist";
    case SPAM_ACTION_ADD_HEADER: return "add header";
    case SPAM_ACTION_REWRITE_SUBJECT: return "rewrite subject";
    case SPAM_ACTION_SOFT_REJECT: return "soft reject";
    case SPAM_ACTION_REJECT: return "reject";
    }
    return "unknown";
}

/* "%.2f" without "-0.00". */
static void
format_score(double v, char *out, size_t out_bytes)
{
    if (fabs(v) < 0.005) {
        v = 0.0;
    }
    (void)snprintf(out, out_bytes, "%.2f", v);
}

static int
by_score_then_name(const void *a, const void *b)
{
    const struct spam_symbol *x = *(const struct spam_symbol *const *)a;
    const struct spam_symbol *y = *(const struct spam_symbol *const *)b;
    double fx = fabs(x->score);
    double fy = fabs(y->score);
    if (fx != fy) {
        return fx > fy ? -1 : 1;
    }
    return strcmp(x->name, y->name);
}

struct out_buf {
    char  *buf;
    size_t cap;
    size_t len;
    bool   is_overflow;
};

__attribute__((format(printf, 2, 3))) static void
out_printf(struct out_buf *o, const char *fmt, ...)
{
    if (o->is_overflow) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(o->buf + o->len, o->cap - o->len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= o->cap - o->len) {
        o->is_overflow = true;
        return;
    }
    o->len += (size_t)n;
}

long
spam_result_headers(const struct spam_result *result, char *out, size_t out_bytes)
{
    ASSERT(result != NULL);
    ASSERT(result->symbol_count <= SPAM_SYMBOLS_MAX);
    struct out_buf o = { .buf = out, .cap = out_bytes };
    if (out_bytes == 0) {
        return -ENOSPC;
    }
    char score[32];
    char required[32];
    char reject[32];
    format_score(result->score, score, sizeof(score));
    format_score(result->add_header_score, required, sizeof(required));
    format_score(result->reject_score, reject, sizeof(reject));
    bool is_spam = result->score >= result->add_header_score ||
                   result->action == SPAM_ACTION_REJECT;
    out_printf(&o, "X-Spam-Score: %s\r\n", score);
    out_printf(&o, "X-Spam-Status: %s, score=%s required=%s\r\n", is_spam ? "Yes" : "No", score,
               required);
    if (is_spam) {
        out_printf(&o, "X-Spam-Flag: YES\r\n");
    }
    out_printf(&o, "X-Spamd-Result: default: %s [%s / %s]",
               result->action == SPAM_ACTION_REJECT ? "True" : "False", score, reject);
    const struct spam_symbol *sorted[SPAM_SYMBOLS_MAX];
    for (size_t i = 0; i < result->symbol_count; i++) {
        sorted[i] = &result->symbols[i];
    }
    qsort(sorted, result->symbol_count, sizeof(sorted[0]), by_score_then_name);
    for (size_t i = 0; i < result->symbol_count; i++) {
        format_score(sorted[i]->score, score, sizeof(score));
        out_printf(&o, ";\r\n\t%s(%s)[%s]", sorted[i]->name, score, sorted[i]->options);
    }
    out_printf(&o, "\r\n");
    if (o.is_overflow) {
        out[0] = '\0';
        return -ENOSPC;
    }
    return (long)o.len;
}

void
spam_symbols_add(struct spam_symbols *symbols, const struct spam_rules *rules, const char *name,
                 double factor, const char *options)
{
    ASSERT(symbols != NULL);
    ASSERT(name != NULL);
    if (spam_symbols_has(symbols, name)) {
        return;
    }
    if (symbols->count >= SPAM_SYMBOLS_MAX) {
        symbols->is_truncated = true;
        return;
    }
    struct spam_symbol *s = &symbols->items[symbols->count++];
    ASSERT(strlen(name) < sizeof(s->name));
    (void)snprintf(s->name, sizeof(s->name), "%s", name);
    s->score = spam_rules_weight(rules, name) * factor;
    /* Options come from messages and peers: printable ASCII only, and none
     * of the characters that structure X-Spamd-Result. */
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)(options != NULL ? options : "");
         *p != '\0' && n + 1 < sizeof(s->options); p++) {
        bool ok = *p >= 32 && *p < 127 && *p != '[' && *p != ']' && *p != '(' && *p != ')' &&
                  *p != ';';
        s->options[n++] = ok ? (char)*p : '?';
    }
    s->options[n] = '\0';
}

bool
spam_symbols_has(const struct spam_symbols *symbols, const char *name)
{
    for (size_t i = 0; i < symbols->count; i++) {
        if (strcmp(symbols->items[i].name, name) == 0) {
            return true;
        }
    }
    return false;
}
