/*
 * filters/dmarc.c - DMARC evaluation (RFC 7489 sections 3, 4 and 6.6).
 *
 * Reads the From field values (peer data, bounded by DMARC_FROM_BYTES_MAX),
 * two TXT lookups at most through the dns_source, the SPF outcome and the
 * DKIM pass domains. Owns nothing past a call; no allocation (the From
 * field is cleaned into a stack buffer of DMARC_FROM_BYTES_MAX). Runs on
 * worker threads; the public suffix table is read-only and shared.
 */
#include "filters/dmarc.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include "core/ascii.h"
#include "core/assertions.h"

#define COMMENT_DEPTH_MAX 32u

enum discovery {
    DISCOVERY_FOUND,
    DISCOVERY_NOT_FOUND,
    DISCOVERY_MULTIPLE,
    DISCOVERY_INVALID,
    DISCOVERY_TEMPFAIL,
    DISCOVERY_IN_PROGRESS,
};

static void __attribute__((format(printf, 2, 3)))
set_reason(struct dmarc_outcome *out, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out->reason, sizeof(out->reason), fmt, ap);
    va_end(ap);
    if (n < 0) {
        out->reason[0] = '\0';
    }
}

const char *
dmarc_result_name(enum dmarc_result result)
{
    switch (result) {
    case DMARC_RESULT_NONE:
        return "none";
    case DMARC_RESULT_PASS:
        return "pass";
    case DMARC_RESULT_FAIL:
        return "fail";
    case DMARC_RESULT_TEMPERROR:
        return "temperror";
    case DMARC_RESULT_PERMERROR:
        return "permerror";
    }
    ASSERT(!"unknown dmarc result");
    return "permerror";
}

uint32_t
dmarc_pct_roll_random(void)
{
    /* Rejection sampling keeps 0..99 uniform: 4294967200 = 42949672 * 100. */
    for (int tries = 0; tries < 16; tries++) {
        uint32_t x;
        if (getrandom(&x, sizeof(x), 0) != (ssize_t)sizeof(x)) {
            return 0; /* no randomness: apply the policy (the strict side) */
        }
        if (x < 4294967200u) {
            return x % 100;
        }
    }
    return 0;
}

/* Copy value without comments, CR, LF and TAB (become spaces), keeping
 * quoted strings. Returns the length or -EINVAL. */
static int
clean_field(const char *value, char *buf, size_t buf_bytes)
{
    size_t n = strlen(value);
    if (n >= buf_bytes) {
        return -EINVAL;
    }
    size_t k = 0;
    unsigned depth = 0;
    bool in_quote = false;
    for (size_t i = 0; i < n; i++) {
        char c = value[i];
        if (c == '\r' || c == '\n' || c == '\t') {
            c = ' ';
        }
        if (depth > 0) {
            if (c == '\\' && i + 1 < n) {
                i++;
            } else if (c == '(') {
                if (++depth > COMMENT_DEPTH_MAX) {
                    return -EINVAL;
                }
            } else if (c == ')') {
                depth--;
            }
            continue;
        }
        if (in_quote) {
            buf[k++] = c;
            if (c == '\\' && i + 1 < n) {
                buf[k++] = value[++i];
            } else if (c == '"') {
                in_quote = false;
            }
            continue;
        }
        if (c == '(') {
            depth = 1;
            buf[k++] = ' ';
            continue;
        }
        if (c == '"') {
            in_quote = true;
        }
        buf[k++] = c;
    }
    ASSERT(k < buf_bytes);
    buf[k] = '\0';
    return (int)k;
}

/* The domain of one mailbox in s[0..n) ("Name <a@b>" or "a@b"), into
 * out. Returns 1 with a domain, 0 for none (no '@'), -EINVAL. */
static int
mailbox_domain(const char *s, size_t n, char *out, size_t out_bytes)
{
    bool in_quote = false;
    size_t lt = SIZE_MAX;
    for (size_t i = 0; i < n; i++) {
        if (in_quote) {
            if (s[i] == '\\') {
                i++;
            } else if (s[i] == '"') {
                in_quote = false;
            }
        } else if (s[i] == '"') {
            in_quote = true;
        } else if (s[i] == '<') {
            lt = i;
            break;
        }
    }
    if (lt != SIZE_MAX) {
        const char *gt = memchr(s + lt, '>', n - lt);
        size_t end = gt != NULL ? (size_t)(gt - s) : n;
        s = s + lt + 1;
        n = end - lt - 1;
    }
    size_t at = SIZE_MAX;
    in_quote = false;
    for (size_t i = 0; i < n; i++) {
        if (in_quote) {
            if (s[i] == '\\') {
                i++;
            } else if (s[i] == '"') {
                in_quote = false;
            }
        } else if (s[i] == '"') {
            in_quote = true;
        } else if (s[i] == '@') {
            at = i;
        }
    }
    if (at == SIZE_MAX) {
        return 0;
    }
    const char *d = s + at + 1;
    size_t dn = n - at - 1;
    while (dn > 0 && d[0] == ' ') {
        d++;
        dn--;
    }
    while (dn > 0 && d[dn - 1] == ' ') {
        dn--;
    }
    if (dn > 0 && d[dn - 1] == '.') {
        dn--;
    }
    if (dn == 0 || dn > PUBLIC_SUFFIX_NAME_BYTES_MAX * 4) {
        return -EINVAL;
    }
    char raw[PUBLIC_SUFFIX_NAME_BYTES_MAX * 4 + 1];
    for (size_t i = 0; i < dn; i++) {
        unsigned char c = (unsigned char)d[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '-' || c == '.' || c == '_' || c >= 0x80;
        if (!ok) {
            return -EINVAL; /* a domain literal, spaces inside, ... */
        }
        raw[i] = (char)c;
    }
    raw[dn] = '\0';
    int rc = public_suffix_normalize(raw, out, out_bytes);
    if (rc != 0) {
        return rc == -ENOSPC ? -ENOSPC : -EINVAL;
    }
    return 1;
}

int
dmarc_from_domain(const char *const *from_values, size_t from_count, char *out, size_t out_bytes)
{
    ASSERT(out != NULL);
    ASSERT(out_bytes > 0);
    out[0] = '\0';
    if (from_count == 0) {
        return -ENOENT;
    }
    if (from_count > 1) {
        return -EMLINK;
    }
    ASSERT(from_values != NULL && from_values[0] != NULL);
    char buf[DMARC_FROM_BYTES_MAX + 1];
    int len = clean_field(from_values[0], buf, sizeof(buf));
    if (len < 0) {
        return len;
    }
    size_t found = 0;
    char domain[DMARC_DOMAIN_BYTES_MAX];
    size_t start = 0;
    bool in_quote = false;
    bool in_angle = false;
    for (size_t i = 0; i <= (size_t)len; i++) {
        char c = i < (size_t)len ? buf[i] : ',';
        if (in_quote) {
            if (c == '\\') {
                i++;
            } else if (c == '"') {
                in_quote = false;
            }
            if (i < (size_t)len) {
                continue;
            }
            c = ','; /* an unclosed quote ends with the field */
        }
        if (c == '"') {
            in_quote = true;
            continue;
        }
        if (c == '<') {
            in_angle = true;
        } else if (c == '>') {
            in_angle = false;
        }
        if (in_angle && i < (size_t)len) {
            continue;
        }
        if (c == ':') {
            start = i + 1; /* a group's display name */
            continue;
        }
        if (c != ',' && c != ';') {
            continue;
        }
        int rc = mailbox_domain(buf + start, i - start, domain, sizeof(domain));
        start = i + 1;
        if (rc < 0) {
            return rc;
        }
        if (rc == 0) {
            continue;
        }
        if (found == 0) {
            if (strlen(domain) + 1 > out_bytes) {
                return -ENOSPC;
            }
            memcpy(out, domain, strlen(domain) + 1);
        } else if (strcmp(out, domain) != 0) {
            out[0] = '\0';
            return -ENOTUNIQ;
        }
        found++;
    }
    return found > 0 ? 0 : -EINVAL;
}

static void
org_domain(const struct public_suffix *psl, const char *domain, char *out)
{
    if (psl != NULL && public_suffix_org_domain(psl, domain, out, DMARC_DOMAIN_BYTES_MAX) >= 0) {
        return;
    }
    size_t n = strlen(domain);
    ASSERT(n < DMARC_DOMAIN_BYTES_MAX);
    memcpy(out, domain, n + 1);
}

/* Look for the one DMARC record at _dmarc.<domain>. */
static enum discovery
discover(const struct dns_source *dns, const char *domain, struct dmarc_record *record)
{
    char name[DMARC_DOMAIN_BYTES_MAX + 8];
    int n = snprintf(name, sizeof(name), "_dmarc.%s", domain);
    if (n < 0 || (size_t)n > PUBLIC_SUFFIX_NAME_BYTES_MAX) {
        return DISCOVERY_NOT_FOUND; /* no such name can exist */
    }
    const struct dns_answer *answer = NULL;
    int rc = dns_source_lookup(dns, DNS_TYPE_TXT, name, &answer);
    if (rc == -EINPROGRESS) {
        return DISCOVERY_IN_PROGRESS;
    }
    if (rc != 0) {
        return DISCOVERY_NOT_FOUND;
    }
    if (answer->status == DNS_STATUS_TEMPFAIL || answer->status == DNS_STATUS_PERMFAIL) {
        return DISCOVERY_TEMPFAIL;
    }
    if (answer->status != DNS_STATUS_OK) {
        return DISCOVERY_NOT_FOUND;
    }
    const struct dns_record *only = NULL;
    size_t count = 0;
    for (uint32_t i = 0; i < answer->count; i++) {
        const struct dns_record *r = &answer->records[i];
        if (dmarc_record_is_dmarc(r->txt.text, r->txt.len)) {
            only = r;
            count++;
        }
    }
    if (count == 0) {
        return DISCOVERY_NOT_FOUND;
    }
    if (count > 1) {
        return DISCOVERY_MULTIPLE;
    }
    rc = dmarc_record_parse(only->txt.text, only->txt.len, record);
    return rc == 0 ? DISCOVERY_FOUND : DISCOVERY_INVALID;
}

static bool
is_aligned(const struct public_suffix *psl, const char *raw, const char *from, const char *from_org,
           enum dmarc_alignment mode)
{
    char domain[DMARC_DOMAIN_BYTES_MAX];
    if (raw == NULL || public_suffix_normalize(raw, domain, sizeof(domain)) != 0) {
        return false;
    }
    if (strcmp(domain, from) == 0) {
        return true;
    }
    if (mode == DMARC_ALIGN_STRICT) {
        return false;
    }
    char org[DMARC_DOMAIN_BYTES_MAX];
    org_domain(psl, domain, org);
    return strcmp(org, from_org) == 0;
}

static enum dmarc_policy
lower_policy(enum dmarc_policy p)
{
    return p == DMARC_POLICY_REJECT ? DMARC_POLICY_QUARANTINE : DMARC_POLICY_NONE;
}

int
dmarc_evaluate(const struct dmarc_request *request, const struct dns_source *dns,
               struct dmarc_outcome *out)
{
    ASSERT(request != NULL);
    ASSERT(dns != NULL);
    ASSERT(out != NULL);
    ASSERT(request->pct_roll < 100);
    memset(out, 0, sizeof(*out));
    out->result = DMARC_RESULT_NONE;
    int rc = dmarc_from_domain(request->from_values, request->from_count, out->from_domain,
                               sizeof(out->from_domain));
    if (rc != 0) {
        out->result = DMARC_RESULT_PERMERROR;
        set_reason(out, "%s",
                   rc == -ENOENT     ? "no From field"
                   : rc == -EMLINK   ? "more than one From field"
                   : rc == -ENOTUNIQ ? "From addresses in more than one domain"
                                     : "no usable address in From");
        return 0;
    }
    org_domain(request->psl, out->from_domain, out->org_domain);
    enum discovery d = discover(dns, out->from_domain, &out->record);
    memcpy(out->record_domain, out->from_domain, sizeof(out->record_domain));
    if (d == DISCOVERY_NOT_FOUND && strcmp(out->org_domain, out->from_domain) != 0) {
        d = discover(dns, out->org_domain, &out->record);
        memcpy(out->record_domain, out->org_domain, sizeof(out->record_domain));
    }
    switch (d) {
    case DISCOVERY_IN_PROGRESS:
        return -EINPROGRESS;
    case DISCOVERY_TEMPFAIL:
        out->result = DMARC_RESULT_TEMPERROR;
        set_reason(out, "DNS error looking up _dmarc.%s", out->record_domain);
        out->record_domain[0] = '\0';
        return 0;
    case DISCOVERY_NOT_FOUND:
        set_reason(out, "no DMARC record for %s", out->from_domain);
        out->record_domain[0] = '\0';
        return 0;
    case DISCOVERY_MULTIPLE:
        set_reason(out, "more than one DMARC record at _dmarc.%s", out->record_domain);
        out->record_domain[0] = '\0';
        return 0;
    case DISCOVERY_INVALID:
        out->result = DMARC_RESULT_PERMERROR;
        set_reason(out, "invalid DMARC record at _dmarc.%s", out->record_domain);
        return 0;
    case DISCOVERY_FOUND:
        break;
    }
    out->has_record = true;
    out->is_sp_used = strcmp(out->record_domain, out->from_domain) != 0;
    out->policy = out->is_sp_used ? out->record.sp : out->record.p;
    size_t dkim_count = request->dkim_pass_count < DMARC_DKIM_DOMAINS_MAX ? request->dkim_pass_count
                                                                          : DMARC_DKIM_DOMAINS_MAX;
    for (size_t i = 0; i < dkim_count && !out->is_dkim_aligned; i++) {
        out->is_dkim_aligned = is_aligned(request->psl, request->dkim_pass_domains[i],
                                          out->from_domain, out->org_domain, out->record.adkim);
    }
    if (request->spf_result == SPF_RESULT_PASS && request->spf_domain != NULL &&
        request->spf_domain[0] != '\0') {
        out->is_spf_aligned = is_aligned(request->psl, request->spf_domain, out->from_domain,
                                         out->org_domain, out->record.aspf);
    }
    if (out->is_dkim_aligned || out->is_spf_aligned) {
        out->result = DMARC_RESULT_PASS;
        out->disposition = DMARC_POLICY_NONE;
        set_reason(out, "aligned %s%s%s", out->is_dkim_aligned ? "dkim" : "",
                   out->is_dkim_aligned && out->is_spf_aligned ? " and " : "",
                   out->is_spf_aligned ? "spf" : "");
        return 0;
    }
    out->result = DMARC_RESULT_FAIL;
    out->disposition = out->policy;
    if (out->record.pct < 100 && request->pct_roll >= out->record.pct) {
        /* RFC 7489 6.6.4: outside the sample, the next policy down. */
        out->disposition = lower_policy(out->policy);
        out->is_sampled_out = out->disposition != out->policy;
    }
    set_reason(out, "no aligned pass (policy %s%s)", dmarc_policy_name(out->policy),
               out->is_sampled_out ? ", sampled out by pct" : "");
    return 0;
}
