/*
 * core/dns_answer.h - what a DNS lookup gives the code that asked: the
 * answer's shape, and the one door (struct dns_source) through which the
 * filters (DKIM keys, SPF, DMARC, DNSBL) and the outbound agent (MX, A,
 * AAAA, TLSA) ask.
 *
 * Lookups never block the caller. A filter runs on a worker as a function
 * of the message and of the answers it has so far: when it asks for a name
 * that is not answered yet, dns_source.lookup returns -EINPROGRESS and the
 * query goes out; the filter gives up this run and is run again, from the
 * start, once every query it started has its answer. Answers a source has
 * handed out stay valid and unchanged until that source is reset or freed,
 * so a rerun sees exactly what the earlier run saw, whatever their TTLs.
 *
 * The resolver, its cache and dns_override_file live in core/dns.h; unit
 * tests make a dns_source from a fixed table.
 */
#ifndef TOASTER_CORE_DNS_ANSWER_H
#define TOASTER_CORE_DNS_ANSWER_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>

/* Record types by their RFC 1035/3596/6698 numbers. */
enum dns_type {
    DNS_TYPE_A = 1,
    DNS_TYPE_PTR = 12,
    DNS_TYPE_MX = 15,
    DNS_TYPE_TXT = 16,
    DNS_TYPE_AAAA = 28,
    DNS_TYPE_TLSA = 52,
};

/* How the question went. SPF, DMARC and DKIM each map these to their own
 * results (temperror, permerror, none), so the resolver must not blur a
 * timeout into "no such name". */
enum dns_status {
    DNS_STATUS_OK,        /* records present (count > 0) */
    DNS_STATUS_NXDOMAIN,  /* the name does not exist (RCODE 3) */
    DNS_STATUS_NODATA,    /* the name exists without records of this type */
    DNS_STATUS_TEMPFAIL,  /* timeout, SERVFAIL, no server reachable */
    DNS_STATUS_PERMFAIL,  /* REFUSED, FORMERR, an answer we cannot parse */
};

/* One resource record. Strings are NUL-terminated, lower case for names,
 * without the trailing dot. */
struct dns_record {
    union {
        struct in_addr  a;
        struct in6_addr aaaa;
        const char     *ptr;
        struct {
            uint16_t    preference;
            const char *host; /* "" for a null MX (RFC 7505) */
        } mx;
        struct {
            const char *text; /* the record's character-strings joined, as SPF and DKIM read them */
            uint32_t    len;  /* may contain NUL bytes: use len, not strlen */
        } txt;
        struct {
            uint8_t        usage;
            uint8_t        selector;
            uint8_t        matching;
            const uint8_t *data;
            uint32_t       len;
        } tlsa;
    };
};

struct dns_answer {
    enum dns_type            type;
    enum dns_status          status;
    uint32_t                 ttl;           /* seconds, the smallest TTL among the records or the SOA minimum */
    bool                     authenticated; /* the resolver set AD (DNSSEC), as DANE needs */
    uint32_t                 count;
    const struct dns_record *records;
};

/*
 * The door. lookup() returns 0 and sets *answer_out (owned by the source,
 * valid until it is reset or freed), -EINPROGRESS when the answer is not
 * here yet and the query has been started, or -EINVAL for a name that is
 * not a valid domain name (empty label, label over 63 or name over 253
 * octets) - no query goes out for it.
 */
struct dns_source {
    int (*lookup)(void *ctx, enum dns_type type, const char *name,
                  const struct dns_answer **answer_out);
    void *ctx;
};

static inline int dns_source_lookup(const struct dns_source *source, enum dns_type type,
                                    const char *name, const struct dns_answer **answer_out)
{
    return source->lookup(source->ctx, type, name, answer_out);
}

#endif
