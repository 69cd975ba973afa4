/*
 * filters/dmarc.h - DMARC (RFC 7489) for one received message: the
 * RFC5322.From domain, policy discovery (_dmarc.<From domain>, then
 * _dmarc.<organizational domain>), identifier alignment of the SPF and
 * DKIM results, and the policy to apply (p=, sp=, pct=).
 *
 * Like filters/spf.h this is a pure function of the request and the
 * answers of a struct dns_source: -EINPROGRESS means "run again later
 * with the same inputs". Reports (rua=, ruf=) are parsed, kept in the
 * outcome, and never sent.
 *
 * Messages that cannot be evaluated (RFC 7489 6.6.1): no From field,
 * more than one From field, no parsable address, or addresses in more
 * than one domain give DMARC_RESULT_PERMERROR with an empty from_domain
 * and DMARC_POLICY_NONE; the caller may reject such messages by its own
 * policy. (One From field with several addresses of the same domain is
 * evaluated for that domain.)
 */
#ifndef TOASTER_FILTERS_DMARC_H
#define TOASTER_FILTERS_DMARC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/dns_answer.h"
#include "filters/dmarc_record.h"
#include "filters/public_suffix.h"
#include "filters/spf.h"

#define DMARC_DOMAIN_BYTES_MAX 254u /* 253 + NUL */
#define DMARC_FROM_BYTES_MAX 16384u /* a longer From field is not evaluable */
#define DMARC_DKIM_DOMAINS_MAX 16u  /* further DKIM pass results are ignored */
#define DMARC_REASON_BYTES_MAX 160u

enum dmarc_result {
    DMARC_RESULT_NONE, /* no policy published (or no DMARC processing, 6.6.3 step 5) */
    DMARC_RESULT_PASS,
    DMARC_RESULT_FAIL,
    DMARC_RESULT_TEMPERROR, /* DNS failure during discovery */
    DMARC_RESULT_PERMERROR, /* invalid record, or message not evaluable */
};

struct dmarc_request {
    const char *const *from_values; /* each From: field's value (unfolded or not) */
    size_t from_count;              /* number of From: fields */
    enum spf_result spf_result;     /* of the MAIL FROM identity */
    const char *spf_domain;         /* the domain SPF checked (MAIL FROM or HELO), may be "" */
    const char *const *dkim_pass_domains; /* d= of each DKIM signature that verified */
    size_t dkim_pass_count;
    uint32_t pct_roll;               /* 0..99, drawn once per message (pct=) */
    const struct public_suffix *psl; /* NULL: organizational domain = the domain */
};

struct dmarc_outcome {
    enum dmarc_result result;
    enum dmarc_policy policy;      /* p= or sp= as published (none without a record) */
    enum dmarc_policy disposition; /* what to do: policy after pct=, none on pass */
    bool has_record;
    bool is_sp_used;     /* the record is the org domain's and sp= applied */
    bool is_sampled_out; /* pct= lowered the disposition */
    bool is_dkim_aligned;
    bool is_spf_aligned;
    char from_domain[DMARC_DOMAIN_BYTES_MAX]; /* lower case, A-labels */
    char org_domain[DMARC_DOMAIN_BYTES_MAX];
    char record_domain[DMARC_DOMAIN_BYTES_MAX]; /* where the record was found */
    struct dmarc_record record;
    char reason[DMARC_REASON_BYTES_MAX];
};

/* Evaluate. Returns 0 with *out filled, or -EINPROGRESS. */
int dmarc_evaluate(const struct dmarc_request *request, const struct dns_source *dns,
                   struct dmarc_outcome *out);

/* The RFC5322.From domain from the From: field values. Returns 0 and the
 * lower-case domain, -ENOENT (no From field), -EMLINK (more than one),
 * -EINVAL (no address with a domain, a domain literal, a field over
 * DMARC_FROM_BYTES_MAX), -ENOTUNIQ (addresses in different domains),
 * -ENOSPC (out too small). */
int dmarc_from_domain(const char *const *from_values, size_t from_count, char *out,
                      size_t out_bytes);

/* A uniform value 0..99 from getrandom(2) for dmarc_request.pct_roll. */
uint32_t dmarc_pct_roll_random(void);

const char *dmarc_result_name(enum dmarc_result result);

#endif
