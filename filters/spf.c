/*
 * filters/spf.c - check_host() (RFC 7208 sections 4 to 6) over a
 * struct dns_source, for the MAIL FROM and HELO identities.
 *
 * Owns nothing past a call: each run walks the records afresh, counts the
 * 4.6.4 limits afresh, and stops with -EINPROGRESS at the first answer
 * that is not there yet (a rerun with the same answers gets at least that
 * far and further). Where one mechanism needs several independent answers
 * (the addresses of up to ten MX or PTR names) all of them are asked for
 * before giving up, so one rerun collects them all. Runs on worker
 * threads; no allocation. The include/redirect recursion is bounded by
 * SPF_DNS_MECHANISMS_MAX, since each level costs one of those.
 * Limits: SPF_DNS_MECHANISMS_MAX, SPF_VOID_LOOKUPS_MAX, SPF_MX_NAMES_MAX,
 * SPF_PTR_NAMES_MAX, SPF_RECORD_BYTES_MAX, SPF_EXPLANATION_BYTES_MAX.
 */
#include "filters/spf.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "core/ascii.h"
#include "core/assertions.h"
#include "filters/spf_macro.h"
#include "filters/spf_record.h"

#define EXPAND_BYTES_MAX 2048u /* a domain-spec before it is cut to 253 octets */
#define NAME_BYTES_MAX 253u
#define LABEL_BYTES_MAX 63u

/* What evaluating one mechanism (or a lookup within it) gave. */
enum eval {
    EVAL_NO_MATCH,
    EVAL_MATCH,
    EVAL_TEMPERROR,
    EVAL_PERMERROR,
    EVAL_IN_PROGRESS,
};

struct spf_run {
    const struct spf_request *request;
    const struct dns_source *dns;
    struct spf_outcome *out;
    const char *local_part;    /* l */
    const char *sender_domain; /* o */
    char local_buf[SPF_SENDER_BYTES_MAX];
    uint32_t dns_mechanisms;
    uint32_t void_lookups;
};

/* One check_host() level: its <domain> and the %{p} value once known. */
struct spf_frame {
    const char *domain;
    char ptr_name[SPF_DOMAIN_BYTES_MAX];
    bool has_ptr_name;
};

static int check_host(struct spf_run *run, const char *domain, bool want_exp, unsigned depth);

static void __attribute__((format(printf, 2, 3)))
set_reason(struct spf_run *run, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(run->out->reason, sizeof(run->out->reason), fmt, ap);
    va_end(ap);
    if (n < 0) {
        run->out->reason[0] = '\0';
    }
    /* Record text is peer data: keep the reason printable and one line. */
    for (char *p = run->out->reason; *p != '\0'; p++) {
        unsigned char c = (unsigned char)*p;
        if (c < 0x20 || c >= 0x7f) {
            *p = '?';
        }
    }
}

const char *
spf_result_name(enum spf_result result)
{
    switch (result) {
    case SPF_RESULT_NONE:
        return "none";
    case SPF_RESULT_NEUTRAL:
        return "neutral";
    case SPF_RESULT_PASS:
        return "pass";
    case SPF_RESULT_FAIL:
        return "fail";
    case SPF_RESULT_SOFTFAIL:
        return "softfail";
    case SPF_RESULT_TEMPERROR:
        return "temperror";
    case SPF_RESULT_PERMERROR:
        return "permerror";
    }
    ASSERT(!"unknown spf result");
    return "permerror";
}

int
spf_ip_from_sockaddr(const struct sockaddr *sa, struct spf_ip *out)
{
    ASSERT(sa != NULL);
    ASSERT(out != NULL);
    memset(out, 0, sizeof(*out));
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)(const void *)sa;
        memcpy(out->bytes, &sin->sin_addr, 4);
        return 0;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)(const void *)sa;
        if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)) {
            memcpy(out->bytes, &sin6->sin6_addr.s6_addr[12], 4);
            return 0;
        }
        out->is_v6 = true;
        memcpy(out->bytes, &sin6->sin6_addr, 16);
        return 0;
    }
    return -EAFNOSUPPORT;
}

int
spf_ip_parse(const char *text, struct spf_ip *out)
{
    ASSERT(text != NULL);
    ASSERT(out != NULL);
    memset(out, 0, sizeof(*out));
    if (inet_pton(AF_INET, text, out->bytes) == 1) {
        return 0;
    }
    struct in6_addr a6;
    if (inet_pton(AF_INET6, text, &a6) != 1) {
        return -EINVAL;
    }
    if (IN6_IS_ADDR_V4MAPPED(&a6)) {
        memcpy(out->bytes, &a6.s6_addr[12], 4);
        return 0;
    }
    out->is_v6 = true;
    memcpy(out->bytes, &a6, 16);
    return 0;
}

/* A multi-label domain name we may query: labels of 1..63 octets, at
 * most 253 octets, no spaces or control bytes, no address literal. */
static bool
domain_is_valid(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > NAME_BYTES_MAX || name[0] == '[') {
        return false;
    }
    size_t label = 0;
    size_t dots = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c <= 0x20 || c == 0x7f) {
            return false;
        }
        if (c == '.') {
            if (label == 0) {
                return false;
            }
            label = 0;
            dots++;
            continue;
        }
        if (++label > LABEL_BYTES_MAX) {
            return false;
        }
    }
    return label > 0 && dots > 0;
}

static bool
ip_matches(const struct spf_ip *ip, const uint8_t *network, bool is_v6, unsigned prefix)
{
    if (ip->is_v6 != is_v6) {
        return false;
    }
    unsigned full = prefix / 8;
    unsigned rest = prefix % 8;
    if (memcmp(ip->bytes, network, full) != 0) {
        return false;
    }
    if (rest == 0) {
        return true;
    }
    uint8_t mask = (uint8_t)(0xff << (8 - rest));
    return (ip->bytes[full] & mask) == (network[full] & mask);
}

/* A lookup through the source, mapping its return. *answer_out is set
 * for EVAL_MATCH ("have an answer"). -EINVAL (not a valid name) is an
 * empty answer: no such name can exist. */
static enum eval
lookup(struct spf_run *run, enum dns_type type, const char *name,
       const struct dns_answer **answer_out)
{
    *answer_out = NULL;
    int rc = dns_source_lookup(run->dns, type, name, answer_out);
    if (rc == -EINPROGRESS) {
        return EVAL_IN_PROGRESS;
    }
    if (rc != 0) {
        *answer_out = NULL;
        return EVAL_NO_MATCH;
    }
    ASSERT(*answer_out != NULL);
    return EVAL_MATCH;
}

static bool
answer_is_void(const struct dns_answer *answer)
{
    return answer == NULL || answer->status == DNS_STATUS_NXDOMAIN ||
           answer->status == DNS_STATUS_NODATA ||
           (answer->status == DNS_STATUS_OK && answer->count == 0);
}

static bool
answer_is_error(const struct dns_answer *answer)
{
    return answer != NULL &&
           (answer->status == DNS_STATUS_TEMPFAIL || answer->status == DNS_STATUS_PERMFAIL);
}

/* Count a void lookup; EVAL_PERMERROR past the limit (RFC 7208 4.6.4). */
static enum eval
count_void(struct spf_run *run, const char *what, const char *name)
{
    run->void_lookups++;
    if (run->void_lookups > SPF_VOID_LOOKUPS_MAX) {
        set_reason(run, "more than %u void lookups (%s %s)", SPF_VOID_LOOKUPS_MAX, what, name);
        return EVAL_PERMERROR;
    }
    return EVAL_NO_MATCH;
}

static bool
address_in_answer(const struct spf_ip *ip, const struct dns_answer *answer, unsigned cidr4,
                  unsigned cidr6)
{
    if (answer == NULL || answer->status != DNS_STATUS_OK) {
        return false;
    }
    for (uint32_t i = 0; i < answer->count; i++) {
        const struct dns_record *r = &answer->records[i];
        if (answer->type == DNS_TYPE_A && ip_matches(ip, (const uint8_t *)&r->a, false, cidr4)) {
            return true;
        }
        if (answer->type == DNS_TYPE_AAAA &&
            ip_matches(ip, (const uint8_t *)&r->aaaa, true, cidr6)) {
            return true;
        }
    }
    return false;
}

/* "d.c.b.a.in-addr.arpa" or the 32 reversed nibbles + ".ip6.arpa". */
static void
reverse_name(const struct spf_ip *ip, char *out, size_t out_bytes)
{
    if (!ip->is_v6) {
        (void)snprintf(out, out_bytes, "%u.%u.%u.%u.in-addr.arpa", ip->bytes[3], ip->bytes[2],
                       ip->bytes[1], ip->bytes[0]);
        return;
    }
    static const char hex[] = "0123456789abcdef";
    ASSERT(out_bytes >= 64 + 9);
    size_t k = 0;
    for (int b = 15; b >= 0; b--) {
        out[k++] = hex[ip->bytes[b] & 0xf];
        out[k++] = '.';
        out[k++] = hex[ip->bytes[b] >> 4];
        out[k++] = '.';
    }
    memcpy(out + k, "ip6.arpa", 9);
}

static bool
name_is_within(const char *name, const char *domain)
{
    size_t n = strlen(name);
    size_t d = strlen(domain);
    if (n == d) {
        return strcasecmp(name, domain) == 0;
    }
    return n > d && name[n - d - 1] == '.' && strcasecmp(name + n - d, domain) == 0;
}

/*
 * The validated names of the client (RFC 7208 5.5): PTR names (the first
 * SPF_PTR_NAMES_MAX) whose addresses include the client. Picks, into
 * best_out, the one equal to target, else one within target, else the
 * first. EVAL_MATCH when one was found, EVAL_NO_MATCH when none (a DNS
 * error on the PTR lookup included; errors on address lookups skip that
 * name), EVAL_IN_PROGRESS. *is_void_out reports an empty PTR answer.
 */
static enum eval
validated_name(struct spf_run *run, const char *target, char *best_out, size_t best_bytes,
               bool *is_void_out)
{
    char rev[80];
    reverse_name(&run->request->ip, rev, sizeof(rev));
    const struct dns_answer *ptrs;
    *is_void_out = false;
    enum eval e = lookup(run, DNS_TYPE_PTR, rev, &ptrs);
    if (e != EVAL_MATCH) {
        return e;
    }
    if (answer_is_void(ptrs)) {
        *is_void_out = true;
        return EVAL_NO_MATCH;
    }
    if (ptrs->status != DNS_STATUS_OK) {
        return EVAL_NO_MATCH;
    }
    enum dns_type type = run->request->ip.is_v6 ? DNS_TYPE_AAAA : DNS_TYPE_A;
    uint32_t count = ptrs->count < SPF_PTR_NAMES_MAX ? ptrs->count : SPF_PTR_NAMES_MAX;
    /* Ask for every name's addresses before waiting for any. */
    bool is_pending = false;
    for (uint32_t i = 0; i < count; i++) {
        const struct dns_answer *addrs;
        if (lookup(run, type, ptrs->records[i].ptr, &addrs) == EVAL_IN_PROGRESS) {
            is_pending = true;
        }
    }
    if (is_pending) {
        return EVAL_IN_PROGRESS;
    }
    int best_rank = 0; /* 3: equal to target, 2: within it, 1: any */
    for (uint32_t i = 0; i < count; i++) {
        const char *name = ptrs->records[i].ptr;
        const struct dns_answer *addrs;
        if (lookup(run, type, name, &addrs) != EVAL_MATCH) {
            continue;
        }
        if (!address_in_answer(&run->request->ip, addrs, 32, 128)) {
            continue;
        }
        int rank = 1;
        if (target != NULL && strcasecmp(name, target) == 0) {
            rank = 3;
        } else if (target != NULL && name_is_within(name, target)) {
            rank = 2;
        }
        if (rank > best_rank && strlen(name) < best_bytes) {
            best_rank = rank;
            memcpy(best_out, name, strlen(name) + 1);
        }
    }
    return best_rank > 0 ? EVAL_MATCH : EVAL_NO_MATCH;
}

static void
macro_context(const struct spf_run *run, const struct spf_frame *frame,
              struct spf_macro_context *ctx)
{
    *ctx = (struct spf_macro_context){
        .sender = run->out->sender,
        .local_part = run->local_part,
        .sender_domain = run->sender_domain,
        .domain = frame->domain,
        .helo = run->request->helo,
        .receiver = run->request->receiver,
        .ptr_name = frame->has_ptr_name ? frame->ptr_name : NULL,
        .ip = run->request->ip,
        .now_s = run->request->now_s,
    };
}

/* Expand text in mode, resolving %{p} when it is used. */
static enum eval
expand(struct spf_run *run, struct spf_frame *frame, const char *text, size_t len,
       enum spf_macro_mode mode, char *out, size_t out_bytes, size_t *out_len)
{
    struct spf_macro_context ctx;
    macro_context(run, frame, &ctx);
    int rc = spf_macro_expand(text, len, mode, &ctx, out, out_bytes, out_len);
    if (rc == -EAGAIN) {
        bool is_void;
        enum eval e =
            validated_name(run, frame->domain, frame->ptr_name, sizeof(frame->ptr_name), &is_void);
        if (e == EVAL_IN_PROGRESS) {
            return e;
        }
        if (e != EVAL_MATCH) {
            memcpy(frame->ptr_name, "unknown", sizeof("unknown"));
        }
        frame->has_ptr_name = true;
        macro_context(run, frame, &ctx);
        rc = spf_macro_expand(text, len, mode, &ctx, out, out_bytes, out_len);
    }
    if (rc != 0) {
        set_reason(run, "cannot expand '%.*s' (%s)", (int)(len < 64 ? len : 64), text,
                   rc == -ENOSPC ? "too long" : "syntax");
        return EVAL_PERMERROR;
    }
    return EVAL_MATCH;
}

/* The target name of a domain-spec (or the frame's domain when absent),
 * cut to 253 octets from the left (RFC 7208 7.3) and without a final dot. */
static enum eval
target_name(struct spf_run *run, struct spf_frame *frame, const struct spf_term *term, char *out)
{
    if (term->domain_spec == NULL) {
        size_t n = strlen(frame->domain);
        ASSERT(n < SPF_DOMAIN_BYTES_MAX);
        memcpy(out, frame->domain, n + 1);
        return EVAL_MATCH;
    }
    char buf[EXPAND_BYTES_MAX];
    size_t len = 0;
    enum eval e = expand(run, frame, term->domain_spec, term->domain_spec_len, SPF_MACRO_DOMAIN,
                         buf, sizeof(buf), &len);
    if (e != EVAL_MATCH) {
        return e;
    }
    if (len > 0 && buf[len - 1] == '.') {
        buf[--len] = '\0';
    }
    const char *p = buf;
    while (len > NAME_BYTES_MAX) {
        const char *dot = memchr(p, '.', len);
        if (dot == NULL) {
            break;
        }
        len -= (size_t)(dot - p) + 1;
        p = dot + 1;
    }
    if (len > NAME_BYTES_MAX) {
        set_reason(run, "expanded name is longer than 253 octets");
        return EVAL_PERMERROR;
    }
    memcpy(out, p, len);
    out[len] = '\0';
    return EVAL_MATCH;
}

static enum eval
count_dns_mechanism(struct spf_run *run, const struct spf_term *term)
{
    run->dns_mechanisms++;
    if (run->dns_mechanisms > SPF_DNS_MECHANISMS_MAX) {
        set_reason(run, "more than %u DNS-querying terms (at '%.*s')", SPF_DNS_MECHANISMS_MAX,
                   (int)(term->text_len < 64 ? term->text_len : 64), term->text);
        return EVAL_PERMERROR;
    }
    return EVAL_NO_MATCH;
}

static enum eval
eval_a(struct spf_run *run, const struct spf_term *term, const char *target)
{
    enum dns_type type = run->request->ip.is_v6 ? DNS_TYPE_AAAA : DNS_TYPE_A;
    const struct dns_answer *answer;
    enum eval e = lookup(run, type, target, &answer);
    if (e != EVAL_MATCH) {
        return e;
    }
    if (answer_is_error(answer)) {
        set_reason(run, "DNS error looking up %s for '%.*s'", target,
                   (int)(term->text_len < 64 ? term->text_len : 64), term->text);
        return EVAL_TEMPERROR;
    }
    if (answer_is_void(answer)) {
        return count_void(run, "a", target);
    }
    return address_in_answer(&run->request->ip, answer, term->cidr4, term->cidr6) ? EVAL_MATCH
                                                                                  : EVAL_NO_MATCH;
}

static enum eval
eval_mx(struct spf_run *run, const struct spf_term *term, const char *target)
{
    const struct dns_answer *mxs;
    enum eval e = lookup(run, DNS_TYPE_MX, target, &mxs);
    if (e != EVAL_MATCH) {
        return e;
    }
    if (answer_is_error(mxs)) {
        set_reason(run, "DNS error looking up MX %s", target);
        return EVAL_TEMPERROR;
    }
    if (answer_is_void(mxs)) {
        return count_void(run, "mx", target);
    }
    if (mxs->count > SPF_MX_NAMES_MAX) {
        set_reason(run, "more than %u MX names for %s", SPF_MX_NAMES_MAX, target);
        return EVAL_PERMERROR;
    }
    enum dns_type type = run->request->ip.is_v6 ? DNS_TYPE_AAAA : DNS_TYPE_A;
    bool is_pending = false;
    for (uint32_t i = 0; i < mxs->count; i++) {
        const char *host = mxs->records[i].mx.host;
        const struct dns_answer *addrs;
        if (host[0] != '\0' && lookup(run, type, host, &addrs) == EVAL_IN_PROGRESS) {
            is_pending = true;
        }
    }
    if (is_pending) {
        return EVAL_IN_PROGRESS;
    }
    for (uint32_t i = 0; i < mxs->count; i++) {
        const char *host = mxs->records[i].mx.host;
        if (host[0] == '\0') {
            continue; /* a null MX (RFC 7505) names no host */
        }
        const struct dns_answer *addrs;
        if (lookup(run, type, host, &addrs) != EVAL_MATCH) {
            continue;
        }
        if (answer_is_error(addrs)) {
            set_reason(run, "DNS error looking up MX host %s", host);
            return EVAL_TEMPERROR;
        }
        if (address_in_answer(&run->request->ip, addrs, term->cidr4, term->cidr6)) {
            return EVAL_MATCH;
        }
    }
    (void)term;
    return EVAL_NO_MATCH;
}

static enum eval
eval_ptr(struct spf_run *run, const char *target)
{
    char name[SPF_DOMAIN_BYTES_MAX];
    bool is_void = false;
    enum eval e = validated_name(run, target, name, sizeof(name), &is_void);
    if (e == EVAL_IN_PROGRESS) {
        return e;
    }
    if (is_void) {
        return count_void(run, "ptr", target);
    }
    if (e != EVAL_MATCH) {
        return EVAL_NO_MATCH;
    }
    return name_is_within(name, target) ? EVAL_MATCH : EVAL_NO_MATCH;
}

static enum eval
eval_exists(struct spf_run *run, const char *target)
{
    const struct dns_answer *answer;
    enum eval e = lookup(run, DNS_TYPE_A, target, &answer); /* A even for IPv6 clients */
    if (e != EVAL_MATCH) {
        return e;
    }
    if (answer_is_error(answer)) {
        set_reason(run, "DNS error looking up %s for exists", target);
        return EVAL_TEMPERROR;
    }
    if (answer_is_void(answer)) {
        return count_void(run, "exists", target);
    }
    return EVAL_MATCH;
}

static enum eval
eval_include(struct spf_run *run, const char *target, unsigned depth)
{
    int r = check_host(run, target, false, depth + 1);
    if (r == -EINPROGRESS) {
        return EVAL_IN_PROGRESS;
    }
    switch ((enum spf_result)r) {
    case SPF_RESULT_PASS:
        return EVAL_MATCH;
    case SPF_RESULT_FAIL:
    case SPF_RESULT_SOFTFAIL:
    case SPF_RESULT_NEUTRAL:
        return EVAL_NO_MATCH;
    case SPF_RESULT_TEMPERROR:
        return EVAL_TEMPERROR;
    case SPF_RESULT_NONE:
        set_reason(run, "include:%s has no SPF record", target);
        return EVAL_PERMERROR;
    case SPF_RESULT_PERMERROR:
        return EVAL_PERMERROR;
    }
    ASSERT(!"unknown spf result");
    return EVAL_PERMERROR;
}

static enum eval
eval_term(struct spf_run *run, struct spf_frame *frame, const struct spf_term *term, unsigned depth)
{
    const struct spf_ip *ip = &run->request->ip;
    switch (term->kind) {
    case SPF_TERM_ALL:
        return EVAL_MATCH;
    case SPF_TERM_IP4:
        return ip_matches(ip, term->network, false, term->cidr4) ? EVAL_MATCH : EVAL_NO_MATCH;
    case SPF_TERM_IP6:
        return ip_matches(ip, term->network, true, term->cidr6) ? EVAL_MATCH : EVAL_NO_MATCH;
    case SPF_TERM_INCLUDE:
    case SPF_TERM_A:
    case SPF_TERM_MX:
    case SPF_TERM_PTR:
    case SPF_TERM_EXISTS:
        break;
    case SPF_TERM_REDIRECT:
    case SPF_TERM_EXP:
    case SPF_TERM_UNKNOWN_MODIFIER:
        return EVAL_NO_MATCH;
    }
    enum eval e = count_dns_mechanism(run, term);
    if (e != EVAL_NO_MATCH) {
        return e;
    }
    char target[SPF_DOMAIN_BYTES_MAX];
    e = target_name(run, frame, term, target);
    if (e != EVAL_MATCH) {
        return e;
    }
    switch (term->kind) {
    case SPF_TERM_INCLUDE:
        return eval_include(run, target, depth);
    case SPF_TERM_A:
        return eval_a(run, term, target);
    case SPF_TERM_MX:
        return eval_mx(run, term, target);
    case SPF_TERM_PTR:
        return eval_ptr(run, target);
    case SPF_TERM_EXISTS:
        return eval_exists(run, target);
    default:
        break;
    }
    ASSERT(!"term kind handled above");
    return EVAL_PERMERROR;
}

static enum spf_result
qualifier_result(char q)
{
    switch (q) {
    case '-':
        return SPF_RESULT_FAIL;
    case '~':
        return SPF_RESULT_SOFTFAIL;
    case '?':
        return SPF_RESULT_NEUTRAL;
    default:
        return SPF_RESULT_PASS;
    }
}

/* The term at index of a record already checked. */
static void
term_at(const char *text, size_t len, size_t index, struct spf_term *term)
{
    struct spf_record_cursor cursor;
    spf_record_begin(&cursor, text, len);
    for (size_t i = 0; i <= index; i++) {
        int rc = spf_record_next(&cursor, term);
        ASSERT(rc == 1); /* spf_record_check() read these terms already */
    }
}

/* exp= (RFC 7208 6.2): any problem means no explanation; only an answer
 * not there yet stops the run. */
static enum eval
explain(struct spf_run *run, struct spf_frame *frame, const struct spf_term *exp_term)
{
    char name[SPF_DOMAIN_BYTES_MAX];
    char saved_reason[SPF_REASON_BYTES_MAX];
    memcpy(saved_reason, run->out->reason, sizeof(saved_reason));
    enum eval e = target_name(run, frame, exp_term, name);
    memcpy(run->out->reason, saved_reason, sizeof(saved_reason));
    if (e != EVAL_MATCH) {
        return e == EVAL_IN_PROGRESS ? e : EVAL_NO_MATCH;
    }
    const struct dns_answer *answer;
    e = lookup(run, DNS_TYPE_TXT, name, &answer);
    if (e != EVAL_MATCH) {
        return e;
    }
    if (answer->status != DNS_STATUS_OK || answer->count != 1) {
        return EVAL_NO_MATCH;
    }
    const struct dns_record *r = &answer->records[0];
    char buf[EXPAND_BYTES_MAX];
    size_t len = 0;
    e = expand(run, frame, r->txt.text, r->txt.len, SPF_MACRO_EXPLAIN, buf, sizeof(buf), &len);
    memcpy(run->out->reason, saved_reason, sizeof(saved_reason));
    if (e != EVAL_MATCH) {
        return e == EVAL_IN_PROGRESS ? e : EVAL_NO_MATCH;
    }
    /* Values like the local-part may hold 8-bit bytes: keep it ASCII. */
    size_t keep = len < SPF_EXPLANATION_BYTES_MAX - 1 ? len : SPF_EXPLANATION_BYTES_MAX - 1;
    for (size_t i = 0; i < keep; i++) {
        unsigned char c = (unsigned char)buf[i];
        run->out->explanation[i] = (c < 0x20 || c >= 0x7f) ? '?' : (char)c;
    }
    run->out->explanation[keep] = '\0';
    return EVAL_MATCH;
}

/* check_host(): an enum spf_result, or -EINPROGRESS. */
static int
check_host(struct spf_run *run, const char *domain, bool want_exp, unsigned depth)
{
    ASSERT(depth <= SPF_DNS_MECHANISMS_MAX + 1);
    if (!domain_is_valid(domain)) {
        set_reason(run, "'%.64s' is not a domain name", domain);
        return SPF_RESULT_NONE;
    }
    const struct dns_answer *answer;
    enum eval e = lookup(run, DNS_TYPE_TXT, domain, &answer);
    if (e == EVAL_IN_PROGRESS) {
        return -EINPROGRESS;
    }
    if (e != EVAL_MATCH) {
        set_reason(run, "no SPF record for %s", domain);
        return SPF_RESULT_NONE;
    }
    if (answer_is_error(answer)) {
        set_reason(run, "DNS error looking up TXT %s", domain);
        return SPF_RESULT_TEMPERROR;
    }
    const char *text = NULL;
    size_t len = 0;
    int rc = spf_record_select(answer, &text, &len);
    if (rc == -ENOENT) {
        set_reason(run, "no SPF record for %s", domain);
        return SPF_RESULT_NONE;
    }
    if (rc == -EEXIST) {
        set_reason(run, "more than one SPF record for %s", domain);
        return SPF_RESULT_PERMERROR;
    }
    ASSERT(rc == 0);
    struct spf_record_summary summary;
    rc = spf_record_check(text, len, &summary);
    if (rc == -E2BIG) {
        set_reason(run, "SPF record of %s is longer than %u octets", domain, SPF_RECORD_BYTES_MAX);
        return SPF_RESULT_PERMERROR;
    }
    if (rc != 0) {
        size_t at = summary.error_pos < len ? summary.error_pos : len;
        size_t show = len - at < 48 ? len - at : 48;
        set_reason(run, "syntax error in SPF record of %s at '%.*s'", domain, (int)show, text + at);
        return SPF_RESULT_PERMERROR;
    }
    struct spf_frame frame = {.domain = domain};
    struct spf_record_cursor cursor;
    spf_record_begin(&cursor, text, len);
    struct spf_term term;
    while (spf_record_next(&cursor, &term) == 1) {
        e = eval_term(run, &frame, &term, depth);
        switch (e) {
        case EVAL_NO_MATCH:
            continue;
        case EVAL_IN_PROGRESS:
            return -EINPROGRESS;
        case EVAL_TEMPERROR:
            return SPF_RESULT_TEMPERROR;
        case EVAL_PERMERROR:
            return SPF_RESULT_PERMERROR;
        case EVAL_MATCH:
            break;
        }
        enum spf_result result = qualifier_result(term.qualifier);
        set_reason(run, "%s matched '%.*s' in the record of %s", spf_result_name(result),
                   (int)(term.text_len < 96 ? term.text_len : 96), term.text, domain);
        if (result == SPF_RESULT_FAIL && want_exp && summary.exp_index != SIZE_MAX) {
            struct spf_term exp_term;
            term_at(text, len, summary.exp_index, &exp_term);
            if (explain(run, &frame, &exp_term) == EVAL_IN_PROGRESS) {
                return -EINPROGRESS;
            }
        }
        return (int)result;
    }
    if (summary.redirect_index != SIZE_MAX && !summary.has_all) {
        struct spf_term redirect;
        term_at(text, len, summary.redirect_index, &redirect);
        e = count_dns_mechanism(run, &redirect);
        if (e != EVAL_NO_MATCH) {
            return SPF_RESULT_PERMERROR;
        }
        char target[SPF_DOMAIN_BYTES_MAX];
        e = target_name(run, &frame, &redirect, target);
        if (e == EVAL_IN_PROGRESS) {
            return -EINPROGRESS;
        }
        if (e != EVAL_MATCH) {
            return SPF_RESULT_PERMERROR;
        }
        int r = check_host(run, target, want_exp, depth + 1);
        if (r == SPF_RESULT_NONE) {
            set_reason(run, "redirect=%s has no SPF record", target);
            return SPF_RESULT_PERMERROR;
        }
        return r;
    }
    set_reason(run, "no term matched in the record of %s (default neutral)", domain);
    return SPF_RESULT_NEUTRAL;
}

/* Fill the sender fields of the outcome and run check_host(). */
static int
run_check(const struct spf_request *request, const struct dns_source *dns, struct spf_outcome *out,
          enum spf_identity identity)
{
    ASSERT(request != NULL);
    ASSERT(request->helo != NULL);
    ASSERT(request->mail_from != NULL);
    ASSERT(dns != NULL);
    ASSERT(out != NULL);
    memset(out, 0, sizeof(*out));
    struct spf_run run = {.request = request, .dns = dns, .out = out};
    out->identity = identity;
    out->result = SPF_RESULT_NONE;
    const char *helo = request->helo;
    size_t helo_len = strlen(helo);
    bool use_helo = identity == SPF_IDENTITY_HELO || request->mail_from[0] == '\0';
    out->is_null_sender = request->mail_from[0] == '\0';
    const char *domain;
    if (use_helo) {
        if (helo_len == 0 || helo_len >= SPF_DOMAIN_BYTES_MAX) {
            set_reason(&run, "no usable HELO name");
            return 0;
        }
        (void)snprintf(out->sender, sizeof(out->sender), "postmaster@%s", helo);
        memcpy(run.local_buf, "postmaster", sizeof("postmaster"));
        domain = helo;
    } else {
        const char *from = request->mail_from;
        size_t from_len = strlen(from);
        if (from_len >= SPF_SENDER_BYTES_MAX) {
            set_reason(&run, "MAIL FROM is longer than %u octets", SPF_SENDER_BYTES_MAX - 1);
            return 0;
        }
        const char *at = strrchr(from, '@');
        if (at == NULL || at == from) {
            /* RFC 7208 4.3: no local-part means "postmaster". */
            memcpy(run.local_buf, "postmaster", sizeof("postmaster"));
            domain = at == NULL ? from : at + 1;
            (void)snprintf(out->sender, sizeof(out->sender), "postmaster@%s", domain);
        } else {
            memcpy(run.local_buf, from, (size_t)(at - from));
            run.local_buf[at - from] = '\0';
            memcpy(out->sender, from, from_len + 1);
            domain = at + 1;
        }
    }
    size_t domain_len = strlen(domain);
    if (domain_len > 0 && domain[domain_len - 1] == '.') {
        domain_len--;
    }
    if (domain_len >= SPF_DOMAIN_BYTES_MAX) {
        set_reason(&run, "domain is longer than 253 octets");
        return 0;
    }
    for (size_t i = 0; i < domain_len; i++) {
        out->domain[i] = (char)ascii_lower((unsigned char)domain[i]);
    }
    out->domain[domain_len] = '\0';
    run.local_part = run.local_buf;
    run.sender_domain = out->domain;
    int r = check_host(&run, out->domain, true, 0);
    out->dns_mechanisms = run.dns_mechanisms;
    out->void_lookups = run.void_lookups;
    if (r == -EINPROGRESS) {
        return -EINPROGRESS;
    }
    ASSERT(r >= SPF_RESULT_NONE && r <= SPF_RESULT_PERMERROR);
    out->result = (enum spf_result)r;
    if (out->result != SPF_RESULT_FAIL) {
        out->explanation[0] = '\0';
    }
    return 0;
}

int
spf_check_mailfrom(const struct spf_request *request, const struct dns_source *dns,
                   struct spf_outcome *out)
{
    return run_check(request, dns, out, SPF_IDENTITY_MAILFROM);
}

int
spf_check_helo(const struct spf_request *request, const struct dns_source *dns,
               struct spf_outcome *out)
{
    return run_check(request, dns, out, SPF_IDENTITY_HELO);
}

/* Append s as a quoted-string, dropping control and 8-bit bytes. */
static void
append_quoted(char *out, size_t out_bytes, size_t *used, const char *s)
{
    char buf[2 * SPF_SENDER_BYTES_MAX + 3];
    size_t k = 0;
    buf[k++] = '"';
    for (size_t i = 0; s[i] != '\0' && k < sizeof(buf) - 3; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c >= 0x7f) {
            continue;
        }
        if (c == '"' || c == '\\') {
            buf[k++] = '\\';
        }
        buf[k++] = (char)c;
    }
    buf[k++] = '"';
    buf[k] = '\0';
    int n = snprintf(out + *used, out_bytes - *used, "%s", buf);
    *used += n > 0 ? (size_t)n : 0;
}

int
spf_received_spf_header(const struct spf_request *request, const struct spf_outcome *outcome,
                        char *out, size_t out_bytes)
{
    ASSERT(request != NULL);
    ASSERT(outcome != NULL);
    ASSERT(out != NULL);
    char comment[SPF_REASON_BYTES_MAX];
    size_t k = 0;
    for (size_t i = 0; outcome->reason[i] != '\0' && k < sizeof(comment) - 1; i++) {
        char c = outcome->reason[i];
        if (c == '(' || c == ')' || c == '\\' || (unsigned char)c < 0x20 ||
            (unsigned char)c >= 0x7f) {
            c = c == '(' ? '[' : c == ')' ? ']' : '?';
        }
        comment[k++] = c;
    }
    comment[k] = '\0';
    char ip_text[INET6_ADDRSTRLEN];
    if (inet_ntop(request->ip.is_v6 ? AF_INET6 : AF_INET, request->ip.bytes, ip_text,
                  sizeof(ip_text)) == NULL) {
        return -ENOSPC;
    }
    /* Size check first, so no snprintf below can be cut: 128 covers the
     * fixed text, each quoted string takes at most twice its length + 2. */
    size_t need = 128 + strlen(comment) + strlen(ip_text) + 2 * strlen(outcome->sender) + 2 +
                  2 * strlen(request->helo) + 2 +
                  (request->receiver != NULL ? 2 * strlen(request->receiver) + 2 : 0);
    if (out_bytes < need) {
        return -ENOSPC;
    }
    size_t used = 0;
    int n = snprintf(out, out_bytes, "Received-SPF: %s (%s)\r\n\tclient-ip=%s;",
                     spf_result_name(outcome->result), comment, ip_text);
    ASSERT(n > 0 && (size_t)n < out_bytes);
    used = (size_t)n;
    n = snprintf(out + used, out_bytes - used, " envelope-from=");
    used += (size_t)n;
    append_quoted(out, out_bytes, &used, outcome->sender);
    n = snprintf(out + used, out_bytes - used, ";\r\n\thelo=");
    used += (size_t)n;
    append_quoted(out, out_bytes, &used, request->helo);
    n = snprintf(out + used, out_bytes - used, "; identity=%s",
                 outcome->identity == SPF_IDENTITY_HELO ? "helo" : "mailfrom");
    used += (size_t)n;
    if (request->receiver != NULL) {
        n = snprintf(out + used, out_bytes - used, "; receiver=");
        used += (size_t)n;
        append_quoted(out, out_bytes, &used, request->receiver);
    }
    n = snprintf(out + used, out_bytes - used, "\r\n");
    used += (size_t)n;
    ASSERT(used < out_bytes);
    return (int)used;
}
