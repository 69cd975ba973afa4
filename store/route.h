/*
 * store/route.h - where mail for a domain goes: the routing table
 * (relay_host, transport_file, relay_domains) and the resolution of a
 * next hop into the ordered list of addresses to try (RFC 5321 section
 * 5.1: MX by preference, equal preferences shuffled, implicit MX, null MX
 * of RFC 7505, MX pointing at ourselves).
 *
 * Pure: DNS comes through a struct dns_source (core/dns_answer.h), so the
 * daemon resolves through core/dns and tests through a table. Resolution
 * is restartable like the filters': route_resolve() returns -EINPROGRESS
 * while answers are missing (having asked for every one it can know it
 * needs), and the caller runs it again, with the same request and seed,
 * when they are in. A route_table is immutable once made: a reload makes a
 * new one and swaps the pointer, and readers on any thread share it.
 * Limits: the ROUTE_*_MAX below.
 */
#ifndef TOASTER_STORE_ROUTE_H
#define TOASTER_STORE_ROUTE_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/dns_answer.h"

#define ROUTE_NAME_BYTES_MAX 253u  /* a domain or host name (RFC 1035), without the dot */
#define ROUTE_LABEL_BYTES_MAX 63u
#define ROUTE_PORT_DEFAULT 25u
/* MX records kept per domain: the lowest preferences, when an answer has
 * more. */
#define ROUTE_MX_RECORDS_MAX 32u
/* MX hosts whose addresses are looked up (in preference order). */
#define ROUTE_MX_HOSTS_MAX 10u
/* Addresses taken from one host (its A and AAAA records together). */
#define ROUTE_HOST_ADDRESSES_MAX 4u
/* Addresses in a result: Postfix's smtp_mx_address_limit (5) by default,
 * the request may ask for up to the ceiling. */
#define ROUTE_ADDRESSES_DEFAULT 5u
#define ROUTE_ADDRESSES_CEILING 20u
/* For the agent, not used here: of the hops of a result, how many that
 * accept a TCP connection it tries in one delivery attempt before it
 * defers (Postfix's smtp_mx_session_limit). Hops that refuse or time out
 * at connect do not count. */
#define ROUTE_SESSIONS_DEFAULT 2u
/* Records of one answer looked at (an answer is bounded by its packet;
 * this bounds the loops whatever the source). */
#define ROUTE_ANSWER_RECORDS_MAX 1024u
/* The transport file: bytes, one line (without its LF), entries. */
#define ROUTE_TRANSPORT_BYTES_MAX (4u * 1024 * 1024)
#define ROUTE_TRANSPORT_LINE_BYTES_MAX 1024u
#define ROUTE_TRANSPORT_ENTRIES_MAX 65536u
/* Domains in relay_domains. */
#define ROUTE_RELAY_DOMAINS_MAX 1024u
#define ROUTE_REASON_BYTES 256u

/* An IPv4 or IPv6 address. */
struct route_address {
    int family; /* AF_INET or AF_INET6 */
    union {
        struct in_addr  v4;
        struct in6_addr v6;
    };
};

/* A next hop as configured: "[host]:port", "host:port", "[host]", "host",
 * with an IP address literal in brackets ("[192.0.2.1]",
 * "[ipv6:2001:db8::1]", "[2001:db8::1]"), as Postfix writes them. */
struct route_nexthop {
    char     host[ROUTE_NAME_BYTES_MAX + 1]; /* lower case; the address text for a literal */
    uint16_t port;                           /* ROUTE_PORT_DEFAULT when not given */
    bool     is_mx_lookup;                   /* no brackets: look up host's MX first */
    bool     is_literal;                     /* host is an IP address (always bracketed) */
    struct route_address literal;            /* when is_literal */
};

/* Parse a next hop (len bytes, no NUL needed; an optional "smtp:" prefix,
 * Postfix's transport, is skipped). Returns 0, or -EINVAL with the reason
 * in error_out (may be NULL). */
int route_nexthop_parse(const char *text, size_t len, struct route_nexthop *nexthop_out,
                        char *error_out, size_t error_bytes);

struct route_table;

/* Make a table. relay_host: "" or NULL for none, else a next hop.
 * relay_domains: "" or NULL, else names separated by commas and/or
 * blanks; "example.com" is that domain, ".example.com" its subdomains.
 * transport_text: transport_bytes bytes of transport file (NULL/0: none):
 * lines "domain nexthop", ".domain" for the subdomains of domain, blank
 * lines and "#" comments; a domain listed twice is an error. Returns 0 and
 * sets *table_out, -EINVAL with "<what>: line N: <why>" in error_out, -E2BIG
 * past a ROUTE_TRANSPORT_* or ROUTE_RELAY_DOMAINS_MAX bound (error_out says
 * which), or -ENOMEM. */
int route_table_create(const char *relay_host, const char *relay_domains,
                       const char *transport_text, size_t transport_bytes,
                       struct route_table **table_out, char *error_out, size_t error_bytes);

/* As route_table_create, reading the transport file from transport_path
 * ("" or NULL: none). Also -errno of open/read (error_out names the
 * path), -E2BIG for a file over ROUTE_TRANSPORT_BYTES_MAX. Blocking I/O:
 * call it at start-up or reload, not on a reactor. */
int route_table_load(const char *relay_host, const char *relay_domains,
                     const char *transport_path, struct route_table **table_out,
                     char *error_out, size_t error_bytes);

/* Free and NULL *table. NULL is fine. */
void route_table_destroy(struct route_table **table);

/* Entries read from the transport file. */
size_t route_table_transport_count(const struct route_table *table);

/* True when domain (any case, trailing dot allowed) is in relay_domains:
 * listed, or a subdomain of a ".domain" entry. */
bool route_table_is_relay_domain(const struct route_table *table, const char *domain);

/* How mail for domain is routed: a transport entry (the domain itself,
 * else the nearest ".parent"), else relay_host unless the domain is a
 * relay domain (relay domains go to their inner host, by transport entry
 * or MX, never to the smarthost), else the domain's MX. Returns true and
 * sets *nexthop_out for a configured next hop, false for "the domain's
 * own MX". */
bool route_table_find(const struct route_table *table, const char *domain,
                      struct route_nexthop *nexthop_out);

enum route_family {
    ROUTE_FAMILY_PREFER_IPV4, /* both, IPv4 first within each host */
    ROUTE_FAMILY_PREFER_IPV6, /* both, IPv6 first within each host */
    ROUTE_FAMILY_IPV4_ONLY,
    ROUTE_FAMILY_IPV6_ONLY,
};

/* One of our own SMTP endpoints: an MX host with this address is us when
 * port is 0 (any port) or the port of the hop (so a test sink on
 * 127.0.0.1 with another port is not mistaken for us). */
struct route_self {
    struct route_address address;
    uint16_t             port;
};

struct route_request {
    const char *domain;              /* the recipient domain, or an address literal "[...]" */
    const struct route_table *table; /* NULL: every domain by MX */
    const char *myhostname;          /* NULL or a name: an MX host of this name is us */
    const struct route_self *selves; /* our endpoints (an MX resolving to one is us) */
    size_t      self_count;
    enum route_family family;
    uint32_t    addresses_max;       /* 0: ROUTE_ADDRESSES_DEFAULT; at most ROUTE_ADDRESSES_CEILING */
    uint16_t    mx_port;             /* port of hops found by MX or implicit MX; 0: 25 */
    uint64_t    seed;                /* shuffles equal preferences and a host's addresses;
                                        keep it across reruns of one resolution */
};

enum route_status {
    ROUTE_OK,       /* hops[0..hop_count) to try in order */
    ROUTE_TEMPFAIL, /* defer the recipients (reply_code 4xx) */
    ROUTE_PERMFAIL, /* bounce the recipients (reply_code 5xx) */
};

enum route_kind {
    ROUTE_KIND_MX,         /* the domain's MX records */
    ROUTE_KIND_IMPLICIT,   /* no MX: the domain's own addresses (RFC 5321 5.1) */
    ROUTE_KIND_LITERAL,    /* the recipient domain was an address literal */
    ROUTE_KIND_TRANSPORT,  /* a transport_file entry */
    ROUTE_KIND_RELAY_HOST, /* relay_host */
};

struct route_hop {
    char     host[ROUTE_NAME_BYTES_MAX + 1]; /* name to verify TLS against and log; the
                                                address text for a literal */
    struct route_address address;
    uint16_t port;
    uint16_t preference;  /* MX preference; 0 for implicit MX and configured hops */
    bool     is_dnssec;   /* every answer leading here was authenticated (for DANE) */
};

struct route_result {
    enum route_status status;
    enum route_kind   kind;
    uint16_t          reply_code;    /* 0 when OK; the code for the DSN's diagnostic */
    char              enhanced[12];  /* "5.1.10"; "" when OK */
    char              reason[ROUTE_REASON_BYTES];
    size_t            hop_count;
    struct route_hop  hops[ROUTE_ADDRESSES_CEILING];
};

/* Resolve request->domain. Returns 0 with *result_out filled (status
 * OK, TEMPFAIL or PERMFAIL), or -EINPROGRESS when answers are missing
 * (the questions are out; run it again with the same request when they
 * are in). Failures: NXDOMAIN for the recipient domain 550 5.1.2; a null
 * MX 556 5.1.10; MX hosts without addresses 550 5.4.4; our own MX with no
 * better host 554 5.4.6; an invalid domain 501 5.1.2 (all permanent);
 * SERVFAIL, timeouts, refusals 451 4.4.3; a configured next hop that does
 * not resolve 451 4.3.5 (temporary: an operator's typo must not bounce
 * customers' mail). */
int route_resolve(const struct route_request *request, const struct dns_source *source,
                  struct route_result *result_out);

#endif
