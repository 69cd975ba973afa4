/*
 * core/relay_tls_policy.c - the TLS each hop of a route gets: DANE (RFC
 * 7672) and MTA-STS (RFC 8461) over the configured level (see
 * relay_tls_policy.h).
 *
 * Owns the MTA-STS policy cache: one entry per recipient domain, holding
 * the policy text as fetched (parsed again when used, so an entry costs
 * its few hundred bytes, not a struct mta_sts_policy of 16 KiB), its id,
 * when it expires, and the id whose fetch failed last and when to try it
 * again. A mutex guards it; it is never held across DNS or the fetch.
 * Does not talk SMTP and does not decide about sessions: the agent
 * (core/relay_session.c) does what the hops say.
 *
 * Runs on workers. Restartable: each run asks every DNS question it needs
 * and returns -EINPROGRESS while any is unanswered; the fetch happens only
 * on a run with every answer in. Limits: RELAY_TLS_POLICY_TLSA_MAX records
 * per hop, RELAY_TLS_POLICY_CACHE_CEILING domains, MTA_STS_POLICY_BYTES_MAX
 * of policy, ROUTE_ANSWER_RECORDS_MAX records looked at per answer.
 */
#define _GNU_SOURCE
#include "core/relay_tls_policy.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "core/assertions.h"
#include "core/log.h"
#include "core/mta_sts_fetch.h"
#include "proto/smtp/mta_sts.h"

#define STS_NAME_BYTES (ROUTE_NAME_BYTES_MAX + 16u) /* "_mta-sts." + domain, checked */

static_assert(RELAY_TLS_POLICY_TLSA_MAX <= TLS_TLSA_MAX, "hop records fit a connection's");
static_assert(RELAY_TLS_POLICY_TLSA_DATA_BYTES <= UINT8_MAX, "length in a uint8_t");
static_assert(MTA_STS_FETCH_ADDRESSES_MAX >= 2, "an IPv4 and an IPv6 address at least");

/* One domain's MTA-STS state. */
struct sts_entry {
    char domain[MTA_STS_NAME_BYTES];
    char id[MTA_STS_ID_BYTES];        /* of the cached policy; "" when none */
    char *body;                       /* the policy text (parsed fine when stored), or NULL */
    size_t body_len;
    int64_t expires_at;               /* unix seconds: fetched + max_age */
    char failed_id[MTA_STS_ID_BYTES]; /* the id whose fetch failed last */
    int64_t retry_at;                 /* no new fetch of failed_id before */
    struct sts_entry *next;           /* bucket chain */
};

struct sts_cache {
    pthread_mutex_t lock;
    struct relay_tls_policy_settings settings;
    struct sts_entry **buckets;
    size_t bucket_count; /* a power of two */
    size_t count;
    uint64_t fetch_count;
};

static struct sts_cache *sts_cache;

/* What the TXT record said. */
enum sts_txt {
    STS_TXT_NONE,    /* no (single, valid) STSv1 record */
    STS_TXT_ID,      /* one record, its id */
    STS_TXT_UNKNOWN, /* the lookup failed: we cannot tell */
};

static void text_format(char *out, size_t out_bytes, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int dane_hop(const struct relay_tls_request *request, const struct dns_source *source,
                    const struct route_hop *route_hop, struct relay_tls_hop *hop);
static int sts_resolve(const struct relay_tls_request *request, const struct dns_source *source,
                       struct mta_sts_policy *policy_out, bool *has_policy_out);
static void sts_apply(const struct relay_tls_request *request,
                      const struct mta_sts_policy *policy, struct relay_tls_hop *hops);

/* ---- levels ---------------------------------------------------------------------- */

static const char *const level_names[] = {
    [RELAY_TLS_NONE] = "none",       [RELAY_TLS_MAY] = "may",
    [RELAY_TLS_ENCRYPT] = "encrypt", [RELAY_TLS_VERIFY] = "verify",
    [RELAY_TLS_DANE] = "dane",       [RELAY_TLS_DANE_ONLY] = "dane-only",
};

int
relay_tls_level_parse(const char *text, enum relay_tls_level *level_out)
{
    ASSERT(text != NULL);
    for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
        if (strcmp(text, level_names[i]) == 0) {
            *level_out = (enum relay_tls_level)i;
            return 0;
        }
    }
    if (strcmp(text, "secure") == 0) { /* Postfix's name for verify with its match list */
        *level_out = RELAY_TLS_VERIFY;
        return 0;
    }
    return -EINVAL;
}

const char *
relay_tls_level_name(enum relay_tls_level level)
{
    ASSERT((size_t)level < sizeof(level_names) / sizeof(level_names[0]));
    return level_names[level];
}

size_t
relay_tls_hop_tlsa(const struct relay_tls_hop *hop, struct tls_tlsa out[TLS_TLSA_MAX])
{
    ASSERT(hop->tlsa_count <= RELAY_TLS_POLICY_TLSA_MAX);
    for (size_t i = 0; i < hop->tlsa_count; i++) {
        out[i] = (struct tls_tlsa){
            .usage = hop->tlsa[i].usage,
            .selector = hop->tlsa[i].selector,
            .matching_type = hop->tlsa[i].matching_type,
            .data = hop->tlsa[i].data,
            .len = hop->tlsa[i].len,
        };
    }
    return hop->tlsa_count;
}

/* ---- resolve ----------------------------------------------------------------------- */

int
relay_tls_policy_resolve(const struct relay_tls_request *request,
                         const struct dns_source *source, struct relay_tls_hop *hops_out,
                         char *reason_out, size_t reason_bytes)
{
    ASSERT(request != NULL);
    ASSERT(request->domain != NULL);
    ASSERT(request->route != NULL);
    ASSERT(request->route->status == ROUTE_OK);
    ASSERT(request->route->hop_count <= ROUTE_ADDRESSES_CEILING);
    ASSERT((size_t)request->level < sizeof(level_names) / sizeof(level_names[0]));
    ASSERT(reason_bytes > 0);
    const struct route_result *route = request->route;
    reason_out[0] = '\0';
    bool is_pending = false;

    /* DANE first: it decides the hops it applies to, whatever MTA-STS says. */
    for (size_t i = 0; i < route->hop_count; i++) {
        struct relay_tls_hop *hop = &hops_out[i];
        memset(hop, 0, sizeof(*hop));
        hop->level = request->level;
        if (request->level == RELAY_TLS_DANE || request->level == RELAY_TLS_DANE_ONLY) {
            int rc = dane_hop(request, source, &route->hops[i], hop);
            if (rc == -EINPROGRESS) {
                is_pending = true;
            }
        }
    }

    struct mta_sts_policy *policy = NULL;
    bool has_policy = false;
    bool is_sts = request->is_mta_sts &&
                  (route->kind == ROUTE_KIND_MX || route->kind == ROUTE_KIND_IMPLICIT);
    if (is_sts && sts_cache != NULL) {
        /* 16 KiB: too much for a worker's stack frame next to the caller's. */
        policy = malloc(sizeof(*policy));
        if (policy == NULL) {
            text_format(reason_out, reason_bytes, "out of memory for the MTA-STS policy of %s",
                        request->domain);
            return -ENOMEM;
        }
        /* With DANE answers still missing, only ask (no fetch) this run. */
        int rc = is_pending ? -EINPROGRESS : 0;
        int sts_rc = sts_resolve(request, source, is_pending ? NULL : policy, &has_policy);
        if (sts_rc == -EINPROGRESS || rc == -EINPROGRESS) {
            free(policy);
            return -EINPROGRESS;
        }
        if (has_policy) {
            sts_apply(request, policy, hops_out);
        }
        free(policy);
    } else if (is_pending) {
        return -EINPROGRESS;
    }

    for (size_t i = 0; i < route->hop_count; i++) {
        if (!hops_out[i].is_skipped) {
            return 0;
        }
    }
    text_format(reason_out, reason_bytes, "no usable hop for %s: %s", request->domain,
                route->hop_count > 0 ? hops_out[0].reason : "no hops");
    return -EAGAIN;
}

/* ---- DANE -------------------------------------------------------------------------- */

/* Whether a TLSA record is one we use for SMTP (RFC 7672 3.1.3: only
 * DANE-TA(2) and DANE-EE(3); RFC 6698: selectors 0/1, matching 0/1/2,
 * digests of their length) and can keep (its data fits). */
static bool
tlsa_is_usable(const struct dns_record *record)
{
    if (record->tlsa.usage != 2 && record->tlsa.usage != 3) {
        return false;
    }
    if (record->tlsa.selector > 1) {
        return false;
    }
    switch (record->tlsa.matching) {
    case 0:
        return record->tlsa.len > 0 && record->tlsa.len <= RELAY_TLS_POLICY_TLSA_DATA_BYTES;
    case 1:
        return record->tlsa.len == 32;
    case 2:
        return record->tlsa.len == 64;
    default:
        return false;
    }
}

/* The hop's DANE state, for a configured dane or dane-only. */
static int
dane_hop(const struct relay_tls_request *request, const struct dns_source *source,
         const struct route_hop *route_hop, struct relay_tls_hop *hop)
{
    bool is_mandatory = request->level == RELAY_TLS_DANE_ONLY;
    /* Unauthenticated MX or address answers: DANE cannot apply (RFC 7672
     * 2.2.1, 2.2.2). */
    if (!route_hop->is_dnssec || request->route->kind == ROUTE_KIND_LITERAL) {
        if (is_mandatory) {
            hop->is_skipped = true;
            text_format(hop->reason, sizeof(hop->reason),
                        "dane-only: the route to %s is not DNSSEC-validated", route_hop->host);
        } else {
            hop->level = RELAY_TLS_MAY;
        }
        return 0;
    }
    char name[ROUTE_NAME_BYTES_MAX + 32];
    text_format(name, sizeof(name), "_%u._tcp.%s", (unsigned)route_hop->port, route_hop->host);
    const struct dns_answer *answer = NULL;
    int rc = strlen(name) > ROUTE_NAME_BYTES_MAX ? -EINVAL
                                                 : dns_source_lookup(source, DNS_TYPE_TLSA, name,
                                                                     &answer);
    if (rc == -EINPROGRESS) {
        return rc;
    }
    bool is_none = false; /* no TLSA that counts (insecure, absent, name too long) */
    if (rc != 0) {
        is_none = true;
    } else if (answer->status == DNS_STATUS_TEMPFAIL || answer->status == DNS_STATUS_PERMFAIL) {
        /* A signed zone whose TLSA answer fails (bogus, SERVFAIL): the
         * server may be impersonated; do not use it (RFC 7672 2.1.1). */
        hop->is_skipped = true;
        text_format(hop->reason, sizeof(hop->reason), "TLSA lookup error for %s", name);
        return 0;
    } else if (answer->status != DNS_STATUS_OK || !answer->authenticated) {
        is_none = true;
    }
    if (is_none) {
        if (is_mandatory) {
            hop->is_skipped = true;
            text_format(hop->reason, sizeof(hop->reason),
                        "dane-only: no DNSSEC-validated TLSA records for %s", name);
        } else {
            hop->level = RELAY_TLS_MAY;
        }
        return 0;
    }
    uint32_t count = answer->count < ROUTE_ANSWER_RECORDS_MAX ? answer->count
                                                              : ROUTE_ANSWER_RECORDS_MAX;
    for (uint32_t k = 0; k < count && hop->tlsa_count < RELAY_TLS_POLICY_TLSA_MAX; k++) {
        const struct dns_record *record = &answer->records[k];
        if (!tlsa_is_usable(record)) {
            continue;
        }
        struct relay_tls_tlsa *tlsa = &hop->tlsa[hop->tlsa_count++];
        tlsa->usage = record->tlsa.usage;
        tlsa->selector = record->tlsa.selector;
        tlsa->matching_type = record->tlsa.matching;
        tlsa->len = (uint8_t)record->tlsa.len;
        memcpy(tlsa->data, record->tlsa.data, record->tlsa.len);
    }
    if (hop->tlsa_count == 0) {
        /* Records exist, none usable: TLS is still mandatory, without
         * authentication (RFC 7672 2.2). */
        hop->level = RELAY_TLS_ENCRYPT;
        text_format(hop->reason, sizeof(hop->reason),
                    "DANE: TLSA records for %s, none usable: encrypt", name);
        return 0;
    }
    hop->level = RELAY_TLS_DANE_ONLY;
    text_format(hop->reason, sizeof(hop->reason), "DANE: %zu usable TLSA record%s for %s",
                hop->tlsa_count, hop->tlsa_count == 1 ? "" : "s", name);
    return 0;
}

/* ---- MTA-STS ----------------------------------------------------------------------- */

/* The cache's mutex: a failure is a programmer error (a destroyed or
 * foreign mutex), never an operating one. */
static void
cache_lock(void)
{
    int rc = pthread_mutex_lock(&sts_cache->lock);
    ASSERT(rc == 0);
}

static void
cache_unlock(void)
{
    int rc = pthread_mutex_unlock(&sts_cache->lock);
    ASSERT(rc == 0);
}

static uint64_t
name_hash(const char *name)
{
    uint64_t hash = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; name[i] != '\0'; i++) {
        hash ^= (uint8_t)name[i];
        hash *= 1099511628211ull;
    }
    return hash;
}

/* Locked. */
static struct sts_entry *
cache_find(const char *domain)
{
    struct sts_entry *entry = sts_cache->buckets[name_hash(domain) & (sts_cache->bucket_count - 1)];
    for (size_t n = 0; entry != NULL; entry = entry->next, n++) {
        ASSERT(n <= sts_cache->count);
        if (strcmp(entry->domain, domain) == 0) {
            return entry;
        }
    }
    return NULL;
}

/* Locked: unlink and free entry. */
static void
cache_remove(struct sts_entry *entry)
{
    struct sts_entry **link =
        &sts_cache->buckets[name_hash(entry->domain) & (sts_cache->bucket_count - 1)];
    while (*link != entry) {
        ASSERT(*link != NULL);
        link = &(*link)->next;
    }
    *link = entry->next;
    free(entry->body);
    free(entry);
    ASSERT(sts_cache->count > 0);
    sts_cache->count--;
}

/* Locked: the entry for domain, made (evicting the entry that expires
 * first when the cache is full) if there is none. NULL when out of
 * memory. */
static struct sts_entry *
cache_get(const char *domain)
{
    struct sts_entry *entry = cache_find(domain);
    if (entry != NULL) {
        return entry;
    }
    if (sts_cache->count >= sts_cache->settings.cache_max) {
        struct sts_entry *oldest = NULL;
        for (size_t b = 0; b < sts_cache->bucket_count; b++) {
            for (struct sts_entry *e = sts_cache->buckets[b]; e != NULL; e = e->next) {
                int64_t when = e->body != NULL ? e->expires_at : e->retry_at;
                int64_t oldest_when =
                    oldest == NULL ? 0 : (oldest->body != NULL ? oldest->expires_at
                                                               : oldest->retry_at);
                if (oldest == NULL || when < oldest_when) {
                    oldest = e;
                }
            }
        }
        ASSERT(oldest != NULL);
        cache_remove(oldest);
    }
    entry = calloc(1, sizeof(*entry));
    if (entry == NULL) {
        return NULL;
    }
    ASSERT(strlen(domain) < sizeof(entry->domain));
    memcpy(entry->domain, domain, strlen(domain) + 1);
    size_t b = name_hash(domain) & (sts_cache->bucket_count - 1);
    entry->next = sts_cache->buckets[b];
    sts_cache->buckets[b] = entry;
    sts_cache->count++;
    return entry;
}

/* The "_mta-sts" TXT answer: one STSv1 record with a valid id, or none
 * (RFC 8461 3.1: other records are discarded; more than one, or an
 * invalid one, is no policy announced). */
static enum sts_txt
sts_txt_read(const struct dns_answer *answer, char id_out[MTA_STS_ID_BYTES])
{
    if (answer->status == DNS_STATUS_TEMPFAIL) {
        return STS_TXT_UNKNOWN;
    }
    if (answer->status != DNS_STATUS_OK) {
        return STS_TXT_NONE;
    }
    size_t found = 0;
    bool is_valid = false;
    uint32_t count = answer->count < ROUTE_ANSWER_RECORDS_MAX ? answer->count
                                                              : ROUTE_ANSWER_RECORDS_MAX;
    for (uint32_t k = 0; k < count; k++) {
        const char *text = answer->records[k].txt.text;
        size_t len = answer->records[k].txt.len;
        if (len < 7 || memcmp(text, "v=STSv1", 7) != 0) {
            continue;
        }
        found++;
        is_valid = mta_sts_txt_parse(text, len, id_out) == 0;
    }
    return found == 1 && is_valid ? STS_TXT_ID : STS_TXT_NONE;
}

/* Addresses of mta-sts.<domain> from its A and AAAA answers (IPv4 first).
 * Returns the count, or -EINPROGRESS when an answer is missing. */
static int
sts_addresses(const struct dns_source *source, const char *domain,
              struct relay_tls_fetch_address addresses[MTA_STS_FETCH_ADDRESSES_MAX])
{
    char host[STS_NAME_BYTES];
    text_format(host, sizeof(host), "mta-sts.%s", domain);
    const struct dns_answer *answers[2] = { NULL, NULL };
    static const enum dns_type types[2] = { DNS_TYPE_A, DNS_TYPE_AAAA };
    bool is_pending = false;
    for (size_t t = 0; t < 2; t++) {
        int rc = dns_source_lookup(source, types[t], host, &answers[t]);
        if (rc == -EINPROGRESS) {
            is_pending = true;
        } else if (rc != 0) {
            answers[t] = NULL; /* a name too long: no address */
        }
    }
    if (is_pending) {
        return -EINPROGRESS;
    }
    size_t n = 0;
    for (size_t t = 0; t < 2; t++) {
        if (answers[t] == NULL || answers[t]->status != DNS_STATUS_OK) {
            continue;
        }
        for (uint32_t k = 0; k < answers[t]->count && n < MTA_STS_FETCH_ADDRESSES_MAX; k++) {
            struct relay_tls_fetch_address *address = &addresses[n++];
            memset(address, 0, sizeof(*address));
            if (types[t] == DNS_TYPE_A) {
                address->family = AF_INET;
                address->v4 = answers[t]->records[k].a;
            } else {
                address->family = AF_INET6;
                address->v6 = answers[t]->records[k].aaaa;
            }
        }
    }
    return (int)n;
}

/* Fetch and parse a policy (no lock held). Returns 0 with the text in
 * *body_out (malloc'd, the caller frees) and the parsed policy, or -errno
 * with the reason in err. */
static int
sts_fetch(const char *domain, const struct relay_tls_fetch_address *addresses,
          size_t address_count, char **body_out, size_t *body_len_out,
          struct mta_sts_policy *policy, char *err, size_t err_bytes)
{
    char *body = malloc(MTA_STS_POLICY_BYTES_MAX);
    if (body == NULL) {
        text_format(err, err_bytes, "out of memory");
        return -ENOMEM;
    }
    size_t len = 0;
    const struct relay_tls_policy_settings *settings = &sts_cache->settings;
    int rc;
    if (settings->fetch != NULL) {
        rc = settings->fetch(settings->fetch_ctx, domain, addresses, address_count, body,
                             MTA_STS_POLICY_BYTES_MAX, &len, err, err_bytes);
    } else {
        struct mta_sts_fetch_request fetch = {
            .domain = domain,
            .addresses = addresses,
            .address_count = address_count,
            .port = settings->port,
            .timeout_ms = settings->fetch_timeout_ms,
            .client = settings->client,
        };
        rc = mta_sts_fetch(&fetch, body, MTA_STS_POLICY_BYTES_MAX, &len, err, err_bytes);
    }
    if (rc == 0) {
        ASSERT(len <= MTA_STS_POLICY_BYTES_MAX);
        char parse_err[MTA_STS_ERROR_BYTES];
        rc = mta_sts_policy_parse(body, len, policy, parse_err, sizeof(parse_err));
        if (rc != 0) {
            text_format(err, err_bytes, "policy does not parse: %s", parse_err);
            rc = -EPROTO;
        }
    }
    if (rc != 0) {
        free(body);
        return rc;
    }
    char *kept = realloc(body, len > 0 ? len : 1); /* only shrinks */
    *body_out = kept != NULL ? kept : body;
    *body_len_out = len;
    return 0;
}

/* The MTA-STS policy in force for request->domain (RFC 8461 5.1): asks
 * the TXT record (and, when a fetch is due, mta-sts.<domain>'s
 * addresses), fetches when the id is new or the cached policy expired,
 * and falls back on the cached policy while unexpired. With policy_out
 * NULL it only asks. Returns 0 (*has_policy_out says whether policy_out
 * was filled) or -EINPROGRESS. */
static int
sts_resolve(const struct relay_tls_request *request, const struct dns_source *source,
            struct mta_sts_policy *policy_out, bool *has_policy_out)
{
    *has_policy_out = false;
    const char *domain = request->domain;
    if (strlen(domain) >= MTA_STS_NAME_BYTES - 8) { /* "_mta-sts." must fit a name */
        return 0;
    }
    char txt_name[STS_NAME_BYTES];
    text_format(txt_name, sizeof(txt_name), "_mta-sts.%s", domain);
    const struct dns_answer *answer = NULL;
    int rc = dns_source_lookup(source, DNS_TYPE_TXT, txt_name, &answer);
    if (rc == -EINPROGRESS) {
        return rc;
    }
    char id[MTA_STS_ID_BYTES] = "";
    enum sts_txt txt = rc == 0 ? sts_txt_read(answer, id) : STS_TXT_NONE;

    /* Is a fetch due? */
    bool is_fetch_due = false;
    cache_lock();
    const struct sts_entry *entry = cache_find(domain);
    if (txt == STS_TXT_ID) {
        bool is_current = entry != NULL && entry->body != NULL &&
                          strcmp(entry->id, id) == 0 && request->now < entry->expires_at;
        bool is_backing_off = entry != NULL && strcmp(entry->failed_id, id) == 0 &&
                              request->now < entry->retry_at;
        is_fetch_due = !is_current && !is_backing_off;
    }
    cache_unlock();

    struct relay_tls_fetch_address addresses[MTA_STS_FETCH_ADDRESSES_MAX];
    int address_count = 0;
    if (is_fetch_due) {
        address_count = sts_addresses(source, domain, addresses);
        if (address_count == -EINPROGRESS) {
            return -EINPROGRESS;
        }
        ASSERT(address_count >= 0);
    }
    if (policy_out == NULL) {
        return 0; /* asked everything this run can know of */
    }

    char *body = NULL;
    size_t body_len = 0;
    char err[MTA_STS_ERROR_BYTES + 64] = "";
    int fetch_rc = 0;
    if (is_fetch_due) {
        if (address_count == 0) {
            fetch_rc = -EHOSTUNREACH;
            text_format(err, sizeof(err), "mta-sts.%s has no address", domain);
        } else {
            fetch_rc = sts_fetch(domain, addresses, (size_t)address_count, &body, &body_len,
                                 policy_out, err, sizeof(err));
        }
        if (fetch_rc != 0) {
            log_warning("relay: MTA-STS policy fetch for %s (id %s) failed: %s", domain, id,
                        err);
        }
    }

    cache_lock();
    if (is_fetch_due) {
        sts_cache->fetch_count++;
        struct sts_entry *stored = cache_get(domain);
        if (stored == NULL) {
            log_warning("relay: MTA-STS cache: out of memory for %s", domain);
        } else if (fetch_rc == 0) {
            free(stored->body);
            stored->body = body;
            stored->body_len = body_len;
            body = NULL;
            memcpy(stored->id, id, sizeof(stored->id));
            stored->expires_at = request->now + (int64_t)policy_out->max_age;
            stored->failed_id[0] = '\0';
            stored->retry_at = 0;
        } else {
            memcpy(stored->failed_id, id, sizeof(stored->failed_id));
            stored->retry_at = request->now + RELAY_TLS_POLICY_FETCH_RETRY_S;
        }
    }
    /* What is in force now: the cached policy while unexpired, whatever
     * the TXT record says or the fetch did (RFC 8461 5.1). */
    struct sts_entry *current = cache_find(domain);
    char *text = NULL;
    size_t text_len = 0;
    if (current != NULL && current->body != NULL && request->now < current->expires_at) {
        text = current->body;
        text_len = current->body_len;
    } else if (current != NULL && current->body != NULL) {
        /* Expired: forget it, so the cache holds only policies in force. */
        free(current->body);
        current->body = NULL;
        current->body_len = 0;
        current->id[0] = '\0';
    }
    if (text != NULL) {
        char parse_err[MTA_STS_ERROR_BYTES];
        int parse_rc = mta_sts_policy_parse(text, text_len, policy_out, parse_err,
                                            sizeof(parse_err));
        ASSERT(parse_rc == 0); /* it parsed when stored: a failure now is our bug */
        *has_policy_out = true;
    }
    cache_unlock();
    free(body);
    return 0;
}

/* Apply a policy in force to the hops DANE did not take. */
static void
sts_apply(const struct relay_tls_request *request, const struct mta_sts_policy *policy,
          struct relay_tls_hop *hops)
{
    const struct route_result *route = request->route;
    if (policy->mode == MTA_STS_MODE_NONE) {
        return;
    }
    for (size_t i = 0; i < route->hop_count; i++) {
        struct relay_tls_hop *hop = &hops[i];
        const char *host = route->hops[i].host;
        if (hop->is_skipped || hop->level == RELAY_TLS_DANE_ONLY) {
            continue; /* DANE decided (RFC 8461 2) */
        }
        bool is_match = mta_sts_mx_matches(policy, host);
        if (policy->mode == MTA_STS_MODE_TESTING) {
            if (!is_match) {
                log_info("relay: MTA-STS testing policy of %s: MX %s is not listed "
                         "(delivering anyway)",
                         request->domain, host);
                text_format(hop->reason, sizeof(hop->reason),
                            "MTA-STS testing: %s is not in the policy of %s", host,
                            request->domain);
            }
            continue;
        }
        ASSERT(policy->mode == MTA_STS_MODE_ENFORCE);
        if (!is_match) {
            hop->is_skipped = true;
            text_format(hop->reason, sizeof(hop->reason),
                        "MTA-STS enforce: %s is not in the policy of %s", host, request->domain);
            continue;
        }
        hop->level = RELAY_TLS_VERIFY;
        hop->is_mta_sts = true;
        text_format(hop->reason, sizeof(hop->reason), "MTA-STS enforce: %s verified by name",
                    host);
    }
}

/* ---- cache ------------------------------------------------------------------------- */

int
relay_tls_policy_start(const struct relay_tls_policy_settings *settings)
{
    ASSERT(settings != NULL);
    if (sts_cache != NULL) {
        return -EALREADY;
    }
    if (settings->cache_max == 0 || settings->cache_max > RELAY_TLS_POLICY_CACHE_CEILING) {
        return -EINVAL;
    }
    if (settings->client == NULL && settings->fetch == NULL) {
        return -EINVAL;
    }
    struct sts_cache *cache = calloc(1, sizeof(*cache));
    if (cache == NULL) {
        return -ENOMEM;
    }
    cache->settings = *settings;
    if (cache->settings.fetch_timeout_ms == 0) {
        cache->settings.fetch_timeout_ms = MTA_STS_FETCH_TIMEOUT_MS_DEFAULT;
    }
    if (cache->settings.port == 0) {
        cache->settings.port = MTA_STS_FETCH_PORT_DEFAULT;
    }
    size_t buckets = 64;
    while (buckets < settings->cache_max) {
        buckets *= 2;
    }
    cache->bucket_count = buckets;
    cache->buckets = calloc(buckets, sizeof(*cache->buckets));
    if (cache->buckets == NULL) {
        free(cache);
        return -ENOMEM;
    }
    int rc = pthread_mutex_init(&cache->lock, NULL);
    if (rc != 0) {
        free(cache->buckets);
        free(cache);
        return -rc;
    }
    sts_cache = cache;
    return 0;
}

void
relay_tls_policy_stop(void)
{
    if (sts_cache == NULL) {
        return;
    }
    for (size_t b = 0; b < sts_cache->bucket_count; b++) {
        struct sts_entry *entry = sts_cache->buckets[b];
        while (entry != NULL) {
            struct sts_entry *next = entry->next;
            free(entry->body);
            free(entry);
            entry = next;
        }
    }
    (void)pthread_mutex_destroy(&sts_cache->lock); /* unlocked: the workers stopped */
    free(sts_cache->buckets);
    free(sts_cache);
    sts_cache = NULL;
}

size_t
relay_tls_policy_cache_count(void)
{
    if (sts_cache == NULL) {
        return 0;
    }
    cache_lock();
    size_t count = sts_cache->count;
    cache_unlock();
    return count;
}

uint64_t
relay_tls_policy_fetch_count(void)
{
    if (sts_cache == NULL) {
        return 0;
    }
    cache_lock();
    uint64_t count = sts_cache->fetch_count;
    cache_unlock();
    return count;
}

/* ---- helpers ----------------------------------------------------------------------- */

/* Log and reply texts: cut to fit, which is what we want for them. */
static void
text_format(char *out, size_t out_bytes, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    (void)vsnprintf(out, out_bytes, fmt, ap);
    va_end(ap);
}
