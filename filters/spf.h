/*
 * filters/spf.h - Sender Policy Framework (RFC 7208): check_host() for the
 * MAIL FROM and HELO identities, run on a worker for one message.
 *
 * The evaluation is a pure function of the request and the answers of a
 * struct dns_source (core/dns_answer.h). When an answer is not there yet
 * the check returns -EINPROGRESS; the caller reruns it from the start once
 * the queries it started have answers, and the rerun, seeing the same
 * answers, reaches the same point and goes on. All RFC 7208 4.6.4 limits
 * (SPF_DNS_MECHANISMS_MAX, SPF_VOID_LOOKUPS_MAX, SPF_MX_NAMES_MAX,
 * SPF_PTR_NAMES_MAX) are counted afresh on each run. Nothing is allocated;
 * the stack use is bounded by the include/redirect depth, which the DNS
 * mechanism limit bounds.
 */
#ifndef TOASTER_FILTERS_SPF_H
#define TOASTER_FILTERS_SPF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "core/dns_answer.h"

#define SPF_DNS_MECHANISMS_MAX 10u     /* include, a, mx, ptr, exists, redirect */
#define SPF_VOID_LOOKUPS_MAX 2u        /* NXDOMAIN or empty answers; the 3rd is permerror */
#define SPF_MX_NAMES_MAX 10u           /* MX names per "mx": more is permerror */
#define SPF_PTR_NAMES_MAX 10u          /* PTR names per "ptr"/%{p}: the rest are ignored */
#define SPF_RECORD_BYTES_MAX 4096u     /* a longer v=spf1 record is permerror */
#define SPF_DOMAIN_BYTES_MAX 254u      /* 253 octets + NUL */
#define SPF_SENDER_BYTES_MAX 320u      /* local-part (64, be lenient: 64+) @ domain */
#define SPF_EXPLANATION_BYTES_MAX 512u /* expanded exp= text, longer is cut */
#define SPF_REASON_BYTES_MAX 256u

enum spf_result {
    SPF_RESULT_NONE,
    SPF_RESULT_NEUTRAL,
    SPF_RESULT_PASS,
    SPF_RESULT_FAIL,
    SPF_RESULT_SOFTFAIL,
    SPF_RESULT_TEMPERROR,
    SPF_RESULT_PERMERROR,
};

enum spf_identity {
    SPF_IDENTITY_MAILFROM, /* RFC5321.MailFrom, or postmaster@HELO for a null path */
    SPF_IDENTITY_HELO,
};

/* The client address; IPv4 in bytes[0..3]. IPv4-mapped IPv6 addresses
 * are turned into IPv4 by the constructors (RFC 7208 section 5). */
struct spf_ip {
    bool is_v6;
    uint8_t bytes[16];
};

struct spf_request {
    struct spf_ip ip;
    const char *helo;      /* HELO/EHLO argument as received; "" if none */
    const char *mail_from; /* reverse-path without <>, "" for the null path */
    const char *receiver;  /* our host name for %{r}; NULL gives "unknown" */
    int64_t now_s;         /* %{t}: seconds since the epoch, fixed per message */
};

struct spf_outcome {
    enum spf_result result;
    enum spf_identity identity;
    bool is_null_sender;                         /* MAIL FROM was <> */
    char domain[SPF_DOMAIN_BYTES_MAX];           /* the checked domain, lower case */
    char sender[SPF_SENDER_BYTES_MAX];           /* <sender> as checked */
    char explanation[SPF_EXPLANATION_BYTES_MAX]; /* fail only, else "" */
    char reason[SPF_REASON_BYTES_MAX];           /* why, for Received-SPF comments */
    uint32_t dns_mechanisms;                     /* counted in the last run */
    uint32_t void_lookups;
};

/* check_host() for the MAIL FROM identity: <sender> is request->mail_from,
 * or postmaster@<helo> when it is empty; <domain> its domain. Returns 0
 * with *out filled, or -EINPROGRESS (a query was started: run again later
 * with the same request and source). Never fails otherwise: every error
 * is an SPF result. */
int spf_check_mailfrom(const struct spf_request *request, const struct dns_source *dns,
                       struct spf_outcome *out);

/* check_host() for the HELO identity (RFC 7208 2.3): <domain> is the
 * HELO name, <sender> postmaster@<helo>. An address literal or a name
 * that is not a multi-label domain gives none. Same returns. */
int spf_check_helo(const struct spf_request *request, const struct dns_source *dns,
                   struct spf_outcome *out);

/* "pass", "fail", ... as RFC 7208 section 2.6 and RFC 8601 spell them. */
const char *spf_result_name(enum spf_result result);

/* Client address from a socket address (AF_INET or AF_INET6; a mapped
 * IPv4 address becomes IPv4). Returns 0 or -EAFNOSUPPORT. */
int spf_ip_from_sockaddr(const struct sockaddr *sa, struct spf_ip *out);

/* Client address from text ("192.0.2.3", "2001:db8::cb01", "::ffff:1.2.3.4").
 * Returns 0 or -EINVAL. */
int spf_ip_parse(const char *text, struct spf_ip *out);

/* One "Received-SPF: ..." header field (RFC 7208 9.1), folded, ending in
 * CRLF, NUL-terminated. Returns its length, or -ENOSPC. */
int spf_received_spf_header(const struct spf_request *request, const struct spf_outcome *outcome,
                            char *out, size_t out_bytes);

#endif
