/*
 * core/dns_parse.h - the immutable, reference-counted DNS answer
 * (struct dns_result) that the cache keeps and batches pin, the domain
 * name rules of core/dns_answer.h, and the reader of raw DNS responses as
 * they come from the network (RFC 1035 section 4, RFC 2308 for negative
 * answers).
 *
 * Pure code: no I/O, no locks, any thread. A result is one allocation
 * (header, records, their strings and bytes), never changed after
 * dns_result_create returns, so any number of threads may read it while
 * they hold a reference.
 * Limits: DNS_NAME_BYTES_MAX, DNS_ANSWER_RECORDS_MAX, DNS_CNAME_HOPS_MAX.
 */
#ifndef TOASTER_CORE_DNS_PARSE_H
#define TOASTER_CORE_DNS_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/dns_answer.h"

/* A domain name in presentation form without the trailing dot
 * (RFC 1035 2.3.4: 255 octets on the wire is 253 characters here). */
#define DNS_NAME_BYTES_MAX 253
#define DNS_LABEL_BYTES_MAX 63

/* Records of the asked type one answer may carry; a response with more is
 * refused as PERMFAIL rather than cut short (a partial TXT set could hide
 * the SPF record). */
#define DNS_ANSWER_RECORDS_MAX 256

/* CNAME links followed inside one response from the question's name. */
#define DNS_CNAME_HOPS_MAX 16

/* RFC 2181 8: a TTL with the top bit set is read as 0. */
#define DNS_TTL_WIRE_MAX 0x7fffffffu

struct dns_result {
    uint32_t          refs;  /* atomic; the result is freed when it drops to 0 */
    uint32_t          bytes; /* the whole allocation, for the cache's byte bound */
    char              name[DNS_NAME_BYTES_MAX + 1]; /* the question's name, "" if none */
    struct dns_answer answer;
    /* The records and the bytes they point to follow in the same allocation. */
};

/* Check a name against the rules of core/dns_answer.h and write it in
 * lower case without a trailing dot into out (DNS_NAME_BYTES_MAX + 1
 * bytes). Labels are 1..63 printable ASCII characters other than '.', '\'
 * and space; the whole name is 1..253 characters. Returns 0 or -EINVAL. */
int dns_name_normalize(const char *name, char *out);

/* Make a result: copies records (and the strings and bytes they point to)
 * into one allocation with one reference. name may be NULL. count must be
 * 0 unless status is DNS_STATUS_OK, and at most DNS_ANSWER_RECORDS_MAX.
 * Returns 0 and sets *result_out, or -ENOMEM. */
int dns_result_create(const char *name, enum dns_type type, enum dns_status status, uint32_t ttl,
                      bool authenticated, const struct dns_record *records, uint32_t count,
                      struct dns_result **result_out);

/* Take another reference; returns result. Any thread. */
struct dns_result *dns_result_ref(struct dns_result *result);

/* Drop a reference (the last one frees it) and NULL *result. NULL is fine. */
void dns_result_unref(struct dns_result **result);

/* Read a DNS response to the question (qname, type; qname normalized) into
 * a result named qname. Never fails on the bytes: a response that is not
 * one to this question or breaks RFC 1035 gives a PERMFAIL result, a
 * truncated one (TC) or SERVFAIL a TEMPFAIL result, NXDOMAIN and NODATA
 * carry the negative TTL of the authority section's SOA (the smaller of
 * its TTL and MINIMUM, RFC 2308 5; 0 without an SOA). Positive TTLs are the
 * smallest among the records and the CNAMEs that led to them. TTLs are
 * capped at ttl_max_s (positive) and negative_ttl_max_s (NXDOMAIN, NODATA).
 * Records of the type are taken from the owner the CNAME chain in the
 * response leads to; a record whose target name has bytes outside the name
 * rules above is left out. Returns 0 and sets *result_out, or -ENOMEM. */
int dns_parse_response(const uint8_t *msg, size_t msg_len, enum dns_type type, const char *qname,
                       uint32_t ttl_max_s, uint32_t negative_ttl_max_s,
                       struct dns_result **result_out);

/* "A", "MX", ... for logs and tools; "?" for an unknown number. */
const char *dns_type_name(enum dns_type type);

/* "OK", "NXDOMAIN", "NODATA", "TEMPFAIL", "PERMFAIL". */
const char *dns_status_name(enum dns_status status);

/* The type for a name such as "txt" or "TLSA"; -EINVAL if unknown. */
int dns_type_from_name(const char *text, enum dns_type *type_out);

#endif
