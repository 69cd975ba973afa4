/*
 * filters/spam_score.h - the spam scorer as the daemon calls it, in the
 * manner of Rspamd: symbols with weights add up to a score, the score
 * chooses an action (reject, soft reject/greylist, add header, rewrite
 * subject, no action), and the result gives the SMTP reply and the
 * X-Spam-* / X-Spamd-Result header lines to prepend.
 *
 * At end of DATA, on a worker:
 *   spam_filter_create()     once at start-up / reload (rules + config)
 *   spam_scan_prepare()      once per message: the analysis and every
 *                            check that needs neither DNS nor the store
 *   spam_scan_run()          DNS lists (DNSBL, URIBL), Bayes, rate limits,
 *                            greylisting; returns -EINPROGRESS when a DNS
 *                            answer is missing: run it again, from the
 *                            start, once the dns_source has the answers
 *                            (the store is only written on the final run)
 *   spam_result_headers()    the header lines for an accepted message
 *   spam_scan_destroy()
 * Everything here is bounded by spam_limits.h; see the README for the
 * configuration keys.
 */
#ifndef TOASTER_FILTERS_SPAM_SCORE_H
#define TOASTER_FILTERS_SPAM_SCORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/dns_answer.h"
#include "core/kv.h"
#include "filters/spam_greylist.h"
#include "filters/spam_limits.h"
#include "filters/spam_message.h"
#include "filters/spam_ratelimit.h"
#include "filters/spam_rules.h"

/* Rspamd's default thresholds. */
#define SPAM_REJECT_SCORE_DEFAULT 15.0
#define SPAM_ADD_HEADER_SCORE_DEFAULT 6.0
#define SPAM_GREYLIST_SCORE_DEFAULT 4.0
#define SPAM_REWRITE_SUBJECT_SCORE_DEFAULT 8.0 /* used only when enabled (off by default) */
#define SPAM_MANY_RECIPIENTS_DEFAULT 50u
#define SPAM_REPLY_BYTES 160u
#define SPAM_SUBJECT_PREFIX "***SPAM*** "

enum spam_greylist_mode {
    SPAM_GREYLIST_OFF,
    SPAM_GREYLIST_SCORE,  /* only when the score reaches greylist_score (Rspamd) */
    SPAM_GREYLIST_ALWAYS, /* every message from an unauthenticated client */
};

/* Organizational domain (public suffix + 1) of name into out; returns 0,
 * or <0 to fall back to the last two labels. filters/public_suffix's
 * public_suffix_org_domain fits (with ctx the struct public_suffix). */
typedef int (*spam_org_domain_fn)(const void *ctx, const char *name, char *out,
                                  size_t out_bytes);

struct spam_config {
    double   reject_score;
    double   add_header_score;
    double   greylist_score;
    bool     is_rewrite_subject;    /* off by default, as in Rspamd */
    double   rewrite_subject_score;
    enum spam_greylist_mode greylist_mode;
    struct spam_greylist_config greylist;
    struct spam_rate ratelimit_sender;
    struct spam_rate ratelimit_ip;
    struct spam_rate ratelimit_rcpt;
    uint32_t bayes_min_learns;
    uint32_t many_recipients;      /* MANY_RECIPIENTS above this many To/Cc + envelope */
    uint32_t uribl_lookups_max;    /* link domains looked up per zone, <= SPAM_URIBL_LOOKUPS_MAX */
    spam_org_domain_fn org_domain; /* may be NULL */
    const void        *org_domain_ctx;
    /* Where Bayes counts live; NULL: the kv given to spam_scan_run. Bayes
     * writes about a thousand keys per learned message, so on the embedded
     * backend it wants a table of its own, apart from greylisting's. */
    struct kv         *bayes_kv;
};

/* The defaults above; greylisting SCORE, rate limits off. */
void spam_config_defaults(struct spam_config *config);

/* Results of the other filters, as the caller learned them. */
enum spam_spf_result {
    SPAM_SPF_UNCHECKED, /* no symbol */
    SPAM_SPF_PASS,      /* R_SPF_ALLOW */
    SPAM_SPF_FAIL,      /* R_SPF_FAIL */
    SPAM_SPF_SOFTFAIL,  /* R_SPF_SOFTFAIL */
    SPAM_SPF_NEUTRAL,   /* R_SPF_NEUTRAL */
    SPAM_SPF_NONE,      /* R_SPF_NA */
    SPAM_SPF_TEMPERROR, /* R_SPF_DNSFAIL */
    SPAM_SPF_PERMERROR, /* R_SPF_PERMFAIL */
};
enum spam_dkim_result {
    SPAM_DKIM_UNCHECKED,
    SPAM_DKIM_PASS,      /* R_DKIM_ALLOW */
    SPAM_DKIM_FAIL,      /* R_DKIM_REJECT: a signature that does not verify */
    SPAM_DKIM_NONE,      /* R_DKIM_NA: no signature */
    SPAM_DKIM_TEMPERROR, /* R_DKIM_TEMPFAIL */
    SPAM_DKIM_PERMERROR, /* R_DKIM_PERMFAIL */
};
enum spam_dmarc_result {
    SPAM_DMARC_UNCHECKED,
    SPAM_DMARC_PASS,            /* DMARC_POLICY_ALLOW */
    SPAM_DMARC_FAIL_REJECT,     /* DMARC_POLICY_REJECT */
    SPAM_DMARC_FAIL_QUARANTINE, /* DMARC_POLICY_QUARANTINE */
    SPAM_DMARC_FAIL_NONE,       /* DMARC_POLICY_SOFTFAIL (p=none) */
    SPAM_DMARC_NONE,            /* DMARC_NA: no record */
    SPAM_DMARC_TEMPERROR,       /* DMARC_DNSFAIL */
    SPAM_DMARC_PERMERROR,       /* DMARC_BAD_POLICY */
};

struct spam_inputs {
    struct spam_client  client;      /* family AF_UNSPEC: none (local pickup) */
    bool                is_authenticated; /* submission: no DNSBL, no greylisting */
    bool                is_greylist_exempt; /* a local client (loopback, private) and
                                             * greylist_local off: as Rspamd's check_local */
    const char         *mail_from;   /* envelope sender, "" for the null sender */
    const char *const  *rcpts;       /* envelope recipients */
    size_t              rcpt_count;
    enum spam_spf_result   spf;
    const char            *spf_domain;   /* option text of the SPF symbol; may be NULL */
    enum spam_dkim_result  dkim;
    const char            *dkim_domain;  /* d= of the signature; may be NULL */
    enum spam_dmarc_result dmarc;
    const char            *dmarc_domain; /* From domain; may be NULL */
    const char            *virus_name;   /* ClamAV found this (header-only mode); NULL: none */
    uint64_t               now_s;        /* wall clock, seconds (greylisting) */
};

/* Rspamd's actions, from least to most severe. */
enum spam_action {
    SPAM_ACTION_NO_ACTION,
    SPAM_ACTION_GREYLIST,        /* score in the greylist band, triplet passed */
    SPAM_ACTION_ADD_HEADER,
    SPAM_ACTION_REWRITE_SUBJECT,
    SPAM_ACTION_SOFT_REJECT,     /* greylisted now, or over a rate limit: 451 */
    SPAM_ACTION_REJECT,          /* 554 */
};

/* What the SMTP session does with the message. */
enum spam_disposition {
    SPAM_ACCEPT,   /* store it, with the headers */
    SPAM_TEMPFAIL, /* answer reply (451 4.7.1 ...) */
    SPAM_REJECT,   /* answer reply (554 5.7.1 ...) */
};

struct spam_symbol {
    char   name[SPAM_SYMBOL_NAME_BYTES];
    double score;                      /* weight times the check's factor */
    char   options[SPAM_OPTIONS_BYTES]; /* sanitised: printable ASCII, no []();, */
};

struct spam_result {
    double                score;
    enum spam_action      action;
    enum spam_disposition disposition;
    char                  reply[SPAM_REPLY_BYTES]; /* SMTP reply for TEMPFAIL/REJECT, no CRLF */
    /* REWRITE_SUBJECT: the new Subject value (prefix + the original, raw);
     * replace the Subject field with it, or add one. */
    char                  subject[sizeof(SPAM_SUBJECT_PREFIX) + SPAM_SUBJECT_BYTES];
    double                reject_score;     /* copied from the config, for the headers */
    double                add_header_score;
    size_t                symbol_count;
    bool                  is_symbols_truncated; /* SPAM_SYMBOLS_MAX reached */
    struct spam_symbol    symbols[SPAM_SYMBOLS_MAX];
};

struct spam_filter;
struct spam_scan;

/* Make the scorer from config and the rules file at rules_path (NULL or
 * "": the built-in weights and no regex or DNS list rules). Returns 0 and
 * sets *filter_out, or the spam_rules_load error with err filled. The
 * filter is read-only afterwards: every worker may use it at once. */
int spam_filter_create(const struct spam_config *config, const char *rules_path,
                       struct spam_filter **filter_out, char *err, size_t err_bytes);

/* The same from rules already parsed; the filter takes them over. */
int spam_filter_create_rules(const struct spam_config *config, struct spam_rules *rules,
                             struct spam_filter **filter_out);

void spam_filter_destroy(struct spam_filter **filter);

const struct spam_config *spam_filter_config(const struct spam_filter *filter);

/* Analyse msg[0..len) and run the checks that need neither DNS nor the
 * store. The scan does not keep msg. Returns 0 and sets *scan_out, or
 * -ENOMEM. */
int spam_scan_prepare(const struct spam_filter *filter, const char *msg, size_t len,
                      struct spam_scan **scan_out);

/* Score: returns 0 with *result_out filled, or -EINPROGRESS when dns has
 * started queries (run again later with the same inputs; nothing was
 * written to the store). dns may be NULL (no DNS list checks), kv may be
 * NULL (no Bayes, rate limits or greylisting). */
int spam_scan_run(const struct spam_filter *filter, struct spam_scan *scan,
                  const struct spam_inputs *inputs, const struct dns_source *dns, struct kv *kv,
                  struct spam_result *result_out);

/* The same over a message file (the spool file: the message as stored,
 * size bytes from offset 0), mapped read-only, at most
 * SPAM_SCAN_BYTES_MAX of it. Returns 0, -ENOMEM, or -errno of mmap. */
int spam_scan_prepare_fd(const struct spam_filter *filter, int fd, uint64_t size,
                         struct spam_scan **scan_out);

/* The analysis, for callers that want more (tests, logs). */
const struct spam_message *spam_scan_message(const struct spam_scan *scan);

void spam_scan_destroy(struct spam_scan **scan);

/* Write the header lines for result into out (CRLF line ends, folded
 * X-Spamd-Result): X-Spam-Score, X-Spam-Status, X-Spam-Flag (at or above
 * add_header_score only), X-Spamd-Result. Returns the length, or -ENOSPC
 * (nothing usable written). SPAM_HEADERS_BYTES_MAX always suffices. */
#define SPAM_HEADERS_BYTES_MAX (SPAM_SYMBOLS_MAX * (SPAM_SYMBOL_NAME_BYTES + SPAM_OPTIONS_BYTES + 24) + 512)
long spam_result_headers(const struct spam_result *result, char *out, size_t out_bytes);

/* Rspamd's name of an action ("no action", "greylist", "add header",
 * "rewrite subject", "soft reject", "reject"), for logs. */
const char *spam_action_name(enum spam_action action);

/* Symbol list building, shared by the checks (spam_checks.c). */
struct spam_symbols {
    size_t             count;
    bool               is_truncated;
    struct spam_symbol items[SPAM_SYMBOLS_MAX];
};

/* Add symbol name with score weight(name) * factor and options (copied,
 * sanitised, cut). A name already present is not added again. Unknown
 * names (not in rules) weigh 0. */
void spam_symbols_add(struct spam_symbols *symbols, const struct spam_rules *rules,
                      const char *name, double factor, const char *options);

bool spam_symbols_has(const struct spam_symbols *symbols, const char *name);

#endif
