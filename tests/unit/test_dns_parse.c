/*
 * tests/unit/test_dns_parse.c - the reader of raw DNS responses and the
 * name rules (core/dns_parse), fed hand-built messages: each record type
 * (A, AAAA, MX and null MX, TXT of several strings and with a NUL byte,
 * PTR, TLSA), compression pointers (good ones, loops, forward and
 * out-of-range ones), every truncation of a message, CNAME chains and
 * loops, NXDOMAIN and NODATA with and without an SOA (RFC 2308 negative
 * TTL and its cap), RCODEs, the TC and AD bits, questions that do not
 * match, and the bounds (255-octet names, 256 records) at max and max + 1.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/dns_parse.h"
#include "tests/unit/unit.h"

int main(void);

#define FLAGS_QR 0x8000u
#define FLAGS_TC 0x0200u
#define FLAGS_RD 0x0100u
#define FLAGS_RA 0x0080u
#define FLAGS_AD 0x0020u
#define RESPONSE (FLAGS_QR | FLAGS_RD | FLAGS_RA)

struct msg {
    uint8_t b[16384];
    size_t  n;
};

static void
put8(struct msg *m, unsigned v)
{
    m->b[m->n++] = (uint8_t)v;
}

static void
put16(struct msg *m, unsigned v)
{
    put8(m, v >> 8);
    put8(m, v & 0xff);
}

static void
put32(struct msg *m, uint32_t v)
{
    put16(m, v >> 16);
    put16(m, v & 0xffff);
}

static void
put_bytes(struct msg *m, const void *p, size_t n)
{
    memcpy(m->b + m->n, p, n);
    m->n += n;
}

/* Labels of a dotted name, then the root (unless ends_with_pointer). */
static void
put_labels(struct msg *m, const char *dotted, bool is_terminated)
{
    while (*dotted != '\0') {
        const char *dot = strchr(dotted, '.');
        size_t len = dot != NULL ? (size_t)(dot - dotted) : strlen(dotted);
        put8(m, (unsigned)len);
        put_bytes(m, dotted, len);
        dotted += len + (dot != NULL ? 1 : 0);
    }
    if (is_terminated) {
        put8(m, 0);
    }
}

static void
put_name(struct msg *m, const char *dotted)
{
    put_labels(m, dotted, true);
}

static void
put_pointer(struct msg *m, unsigned offset)
{
    put16(m, 0xc000u | offset);
}

static void
header(struct msg *m, unsigned flags, unsigned qd, unsigned an, unsigned ns, unsigned ar)
{
    m->n = 0;
    put16(m, 0x1234);
    put16(m, flags);
    put16(m, qd);
    put16(m, an);
    put16(m, ns);
    put16(m, ar);
}

static void
question(struct msg *m, const char *name, unsigned type)
{
    put_name(m, name);
    put16(m, type);
    put16(m, 1);
}

/* Type, class IN, TTL and a zero length; returns where the length goes
 * (rr_end fills it in). The owner is written by the caller. */
static size_t
rr_begin(struct msg *m, unsigned type, uint32_t ttl)
{
    put16(m, type);
    put16(m, 1);
    put32(m, ttl);
    size_t at = m->n;
    put16(m, 0);
    return at;
}

static void
rr_end(struct msg *m, size_t at)
{
    size_t len = m->n - at - 2;
    m->b[at] = (uint8_t)(len >> 8);
    m->b[at + 1] = (uint8_t)(len & 0xff);
}

static void
soa(struct msg *m, uint32_t ttl, uint32_t minimum)
{
    put_name(m, "example.org");
    size_t at = rr_begin(m, 6, ttl);
    put_name(m, "ns.example.org");
    put_name(m, "hostmaster.example.org");
    put32(m, 1);
    put32(m, 3600);
    put32(m, 600);
    put32(m, 86400);
    put32(m, minimum);
    rr_end(m, at);
}

static struct dns_result *
parse(const struct msg *m, enum dns_type type, const char *qname)
{
    /* An exact-size copy, so reads past the end are caught by ASan. */
    uint8_t *copy = malloc(m->n > 0 ? m->n : 1);
    memcpy(copy, m->b, m->n);
    struct dns_result *result = NULL;
    int rc = dns_parse_response(copy, m->n, type, qname, 86400, 900, &result);
    free(copy);
    CHECK(rc == 0);
    CHECK(result != NULL);
    return result;
}

static enum dns_status
parse_status(const struct msg *m, enum dns_type type, const char *qname)
{
    struct dns_result *result = parse(m, type, qname);
    enum dns_status status = result->answer.status;
    CHECK(result->answer.type == type);
    if (status != DNS_STATUS_OK) {
        CHECK(result->answer.count == 0);
    }
    dns_result_unref(&result);
    return status;
}

static void
test_names(void)
{
    char out[DNS_NAME_BYTES_MAX + 1];
    CHECK(dns_name_normalize("Example.ORG.", out) == 0);
    CHECK_STR(out, "example.org");
    CHECK(dns_name_normalize("sel._domainkey.example.org", out) == 0);
    CHECK_STR(out, "sel._domainkey.example.org");
    CHECK(dns_name_normalize("2.0.0.127.zen.example", out) == 0);
    CHECK(dns_name_normalize("", out) == -EINVAL);
    CHECK(dns_name_normalize(".", out) == -EINVAL);
    CHECK(dns_name_normalize("a..b", out) == -EINVAL);
    CHECK(dns_name_normalize(".a", out) == -EINVAL);
    CHECK(dns_name_normalize("a..", out) == -EINVAL);
    CHECK(dns_name_normalize("a b.org", out) == -EINVAL);
    CHECK(dns_name_normalize("a\\.org", out) == -EINVAL);
    CHECK(dns_name_normalize("a\x01.org", out) == -EINVAL);
    CHECK(dns_name_normalize("caf\xc3\xa9.org", out) == -EINVAL);
    /* A label of 63 and of 64 characters. */
    char name[400];
    memset(name, 'a', 63);
    strcpy(name + 63, ".org");
    CHECK(dns_name_normalize(name, out) == 0);
    memset(name, 'a', 64);
    strcpy(name + 64, ".org");
    CHECK(dns_name_normalize(name, out) == -EINVAL);
    /* Names of 252, 253 and 254 characters (with and without the dot). */
    for (size_t len = 252; len <= 254; len++) {
        for (size_t i = 0; i < len; i++) {
            name[i] = (i % 10 == 9) ? '.' : 'x';
        }
        name[len] = '\0';
        if (name[len - 1] == '.') {
            name[len - 1] = 'y';
        }
        CHECK(dns_name_normalize(name, out) == (len <= 253 ? 0 : -EINVAL));
        name[len] = '.';
        name[len + 1] = '\0';
        CHECK(dns_name_normalize(name, out) == (len <= 253 ? 0 : -EINVAL));
    }
}

static void
test_a_aaaa(void)
{
    struct msg m;
    header(&m, RESPONSE, 1, 3, 0, 0);
    question(&m, "mx.example.org", DNS_TYPE_A);
    put_pointer(&m, 12);
    size_t at = rr_begin(&m, DNS_TYPE_A, 300);
    put_bytes(&m, "\x7f\x00\x00\x01", 4);
    rr_end(&m, at);
    put_pointer(&m, 12);
    at = rr_begin(&m, DNS_TYPE_A, 120);
    put_bytes(&m, "\xc0\x00\x02\x01", 4);
    rr_end(&m, at);
    /* An AAAA record in an A answer is not an A record. */
    put_pointer(&m, 12);
    at = rr_begin(&m, DNS_TYPE_AAAA, 5);
    put_bytes(&m, "0123456789abcdef", 16);
    rr_end(&m, at);
    struct dns_result *r = parse(&m, DNS_TYPE_A, "mx.example.org");
    CHECK(r->answer.status == DNS_STATUS_OK);
    CHECK(r->answer.count == 2);
    CHECK(r->answer.ttl == 120);
    CHECK(!r->answer.authenticated);
    CHECK(r->answer.records[0].a.s_addr == htonl(0x7f000001));
    CHECK(r->answer.records[1].a.s_addr == htonl(0xc0000201));
    CHECK_STR(r->name, "mx.example.org");
    dns_result_unref(&r);
    CHECK(r == NULL);

    /* The question's name in another case is the same question. */
    m.b[13] = 'M';
    CHECK(parse_status(&m, DNS_TYPE_A, "mx.example.org") == DNS_STATUS_OK);

    /* AD bit, and an A record of 5 bytes. */
    header(&m, RESPONSE | FLAGS_AD, 1, 1, 0, 0);
    question(&m, "v6.example.org", DNS_TYPE_AAAA);
    put_pointer(&m, 12);
    at = rr_begin(&m, DNS_TYPE_AAAA, 60);
    put_bytes(&m, "\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\x01", 16);
    rr_end(&m, at);
    r = parse(&m, DNS_TYPE_AAAA, "v6.example.org");
    CHECK(r->answer.status == DNS_STATUS_OK && r->answer.count == 1);
    CHECK(r->answer.authenticated);
    char text[INET6_ADDRSTRLEN];
    CHECK_STR(inet_ntop(AF_INET6, &r->answer.records[0].aaaa, text, sizeof(text)), "2001:db8::1");
    dns_result_unref(&r);

    header(&m, RESPONSE, 1, 1, 0, 0);
    question(&m, "x.org", DNS_TYPE_A);
    put_pointer(&m, 12);
    at = rr_begin(&m, DNS_TYPE_A, 60);
    put_bytes(&m, "\1\2\3\4\5", 5);
    rr_end(&m, at);
    CHECK(parse_status(&m, DNS_TYPE_A, "x.org") == DNS_STATUS_PERMFAIL);
}

/* An MX answer whose owner and hosts are compressed. */
static void
build_mx(struct msg *m)
{
    header(m, RESPONSE, 1, 3, 0, 0);
    question(m, "example.org", DNS_TYPE_MX);
    put_pointer(m, 12);
    size_t at = rr_begin(m, DNS_TYPE_MX, 3600);
    put16(m, 10);
    put_labels(m, "MX", false);
    put_pointer(m, 12); /* mx.example.org */
    rr_end(m, at);
    size_t second_host = 0;
    put_pointer(m, 12);
    at = rr_begin(m, DNS_TYPE_MX, 3600);
    put16(m, 20);
    second_host = m->n;
    put_labels(m, "mx2", false);
    put_pointer(m, 12);
    rr_end(m, at);
    put_pointer(m, 12);
    at = rr_begin(m, DNS_TYPE_MX, 3600);
    put16(m, 30);
    put_labels(m, "backup", false);
    put_pointer(m, (unsigned)second_host); /* backup.mx2.example.org */
    rr_end(m, at);
}

static void
test_mx_and_compression(void)
{
    struct msg m;
    build_mx(&m);
    struct dns_result *r = parse(&m, DNS_TYPE_MX, "example.org");
    CHECK(r->answer.status == DNS_STATUS_OK);
    CHECK(r->answer.count == 3);
    CHECK(r->answer.records[0].mx.preference == 10);
    CHECK_STR(r->answer.records[0].mx.host, "mx.example.org");
    CHECK_STR(r->answer.records[1].mx.host, "mx2.example.org");
    CHECK_STR(r->answer.records[2].mx.host, "backup.mx2.example.org");
    CHECK(r->answer.records[2].mx.preference == 30);
    dns_result_unref(&r);

    /* Every truncation of the message is refused, never read past. */
    size_t full = m.n;
    for (size_t len = 0; len < full; len++) {
        m.n = len;
        CHECK(parse_status(&m, DNS_TYPE_MX, "example.org") == DNS_STATUS_PERMFAIL);
    }
    m.n = full;

    /* Null MX (RFC 7505). */
    header(&m, RESPONSE, 1, 1, 0, 0);
    question(&m, "null.example.org", DNS_TYPE_MX);
    put_pointer(&m, 12);
    size_t at = rr_begin(&m, DNS_TYPE_MX, 300);
    put16(&m, 0);
    put8(&m, 0);
    rr_end(&m, at);
    r = parse(&m, DNS_TYPE_MX, "null.example.org");
    CHECK(r->answer.status == DNS_STATUS_OK && r->answer.count == 1);
    CHECK_STR(r->answer.records[0].mx.host, "");
    dns_result_unref(&r);

    /* A host with a space in a label is left out, so NODATA. */
    header(&m, RESPONSE, 1, 1, 0, 0);
    question(&m, "odd.example.org", DNS_TYPE_MX);
    put_pointer(&m, 12);
    at = rr_begin(&m, DNS_TYPE_MX, 300);
    put16(&m, 5);
    put_name(&m, "a b.example.org");
    rr_end(&m, at);
    CHECK(parse_status(&m, DNS_TYPE_MX, "odd.example.org") == DNS_STATUS_NODATA);

    /* A host whose name runs past its rdata. */
    header(&m, RESPONSE, 1, 1, 0, 0);
    question(&m, "x.org", DNS_TYPE_MX);
    put_pointer(&m, 12);
    at = rr_begin(&m, DNS_TYPE_MX, 300);
    put16(&m, 5);
    put_name(&m, "mx.x.org");
    rr_end(&m, at);
    m.b[at + 1] -= 2; /* rdlength two short: the name ends outside */
    CHECK(parse_status(&m, DNS_TYPE_MX, "x.org") == DNS_STATUS_PERMFAIL);
}

static void
test_bad_pointers(void)
{
    struct msg m;
    /* A pointer to itself. */
    header(&m, RESPONSE, 1, 1, 0, 0);
    question(&m, "x.org", DNS_TYPE_A);
    size_t self = m.n;
    put_pointer(&m, (unsigned)self);
    size_t at = rr_begin(&m, DNS_TYPE_A, 60);
    put_bytes(&m, "\1\2\3\4", 4);
    rr_end(&m, at);
    CHECK(parse_status(&m, DNS_TYPE_A, "x.org") == DNS_STATUS_PERMFAIL);

    /* Two names pointing at each other: "a" + ptr to B, B = "b" + ptr to A. */
    header(&m, RESPONSE, 1, 1, 0, 0);
    question(&m, "x.org", DNS_TYPE_A);
    size_t name_a = m.n;
    put_labels(&m, "a", false);
    put_pointer(&m, (unsigned)(name_a + 4));
    put_labels(&m, "b", false); /* at name_a + 4 */
    put_pointer(&m, (unsigned)name_a);
    at = rr_begin(&m, DNS_TYPE_A, 60);
    put_bytes(&m, "\1\2\3\4", 4);
    rr_end(&m, at);
    CHECK(parse_status(&m, DNS_TYPE_A, "x.org") == DNS_STATUS_PERMFAIL);

    /* A pointer past the end, and a forward pointer. */
    header(&m, RESPONSE, 1, 1, 0, 0);
    question(&m, "x.org", DNS_TYPE_A);
    put_pointer(&m, 0x3fff);
    at = rr_begin(&m, DNS_TYPE_A, 60);
    put_bytes(&m, "\1\2\3\4", 4);
    rr_end(&m, at);
    CHECK(parse_status(&m, DNS_TYPE_A, "x.org") == DNS_STATUS_PERMFAIL);
    header(&m, RESPONSE, 1, 1, 0, 0);
    question(&m, "x.org", DNS_TYPE_A);
    put_pointer(&m, (unsigned)m.n + 2);
    put_name(&m, "x.org");
    CHECK(parse_status(&m, DNS_TYPE_A, "x.org") == DNS_STATUS_PERMFAIL);

    /* Extended label types (0x40, 0x80) are refused. */
    header(&m, RESPONSE, 1, 1, 0, 0);
    question(&m, "x.org", DNS_TYPE_A);
    put8(&m, 0x41);
    put8(&m, 'x');
    put8(&m, 0);
    at = rr_begin(&m, DNS_TYPE_A, 60);
    put_bytes(&m, "\1\2\3\4", 4);
    rr_end(&m, at);
    CHECK(parse_status(&m, DNS_TYPE_A, "x.org") == DNS_STATUS_PERMFAIL);

    /* A name of 255 octets on the wire is read, of 257 it is not (an
     * owner that long cannot match, so 255 gives NODATA). */
    for (int extra = 0; extra <= 1; extra++) {
        header(&m, RESPONSE, 1, 1, 0, 0);
        question(&m, "x.org", DNS_TYPE_A);
        /* 4 labels of 63 = 256 octets, minus one byte of the last label
         * gives 255 with the root; extra adds two (a 1-octet label). */
        for (int i = 0; i < 4; i++) {
            unsigned len = i == 3 ? 61 : 63;
            put8(&m, len);
            for (unsigned k = 0; k < len; k++) {
                put8(&m, 'a');
            }
        }
        if (extra) {
            put8(&m, 1);
            put8(&m, 'b');
        }
        put8(&m, 0);
        at = rr_begin(&m, DNS_TYPE_A, 60);
        put_bytes(&m, "\1\2\3\4", 4);
        rr_end(&m, at);
        CHECK(parse_status(&m, DNS_TYPE_A, "x.org") ==
              (extra ? DNS_STATUS_PERMFAIL : DNS_STATUS_NODATA));
    }
}

static void
test_txt_ptr_tlsa(void)
{
    struct msg m;
    header(&m, RESPONSE, 1, 2, 0, 0);
    question(&m, "example.org", DNS_TYPE_TXT);
    put_pointer(&m, 12);
    size_t at = rr_begin(&m, DNS_TYPE_TXT, 300);
    put8(&m, 7);
    put_bytes(&m, "v=spf1 ", 7);
    put8(&m, 0); /* an empty string among them */
    put8(&m, 4);
    put_bytes(&m, "-all", 4);
    rr_end(&m, at);
    put_pointer(&m, 12);
    at = rr_begin(&m, DNS_TYPE_TXT, 300);
    put8(&m, 3);
    put_bytes(&m, "a\0b", 3);
    rr_end(&m, at);
    struct dns_result *r = parse(&m, DNS_TYPE_TXT, "example.org");
    CHECK(r->answer.status == DNS_STATUS_OK && r->answer.count == 2);
    CHECK_BYTES(r->answer.records[0].txt.text, r->answer.records[0].txt.len, "v=spf1 -all", 11);
    CHECK(r->answer.records[0].txt.text[11] == '\0');
    CHECK_BYTES(r->answer.records[1].txt.text, r->answer.records[1].txt.len, "a\0b", 3);
    dns_result_unref(&r);

    /* A character-string longer than what is left of its rdata. */
    header(&m, RESPONSE, 1, 1, 0, 0);
    question(&m, "example.org", DNS_TYPE_TXT);
    put_pointer(&m, 12);
    at = rr_begin(&m, DNS_TYPE_TXT, 300);
    put8(&m, 5);
    put_bytes(&m, "abcd", 4);
    rr_end(&m, at);
    put_bytes(&m, "zzzz", 4); /* bytes after the record must not be read into it */
    CHECK(parse_status(&m, DNS_TYPE_TXT, "example.org") == DNS_STATUS_PERMFAIL);

    header(&m, RESPONSE, 1, 1, 0, 0);
    question(&m, "1.0.0.127.in-addr.arpa", DNS_TYPE_PTR);
    put_pointer(&m, 12);
    at = rr_begin(&m, DNS_TYPE_PTR, 300);
    put_name(&m, "Localhost");
    rr_end(&m, at);
    r = parse(&m, DNS_TYPE_PTR, "1.0.0.127.in-addr.arpa");
    CHECK(r->answer.status == DNS_STATUS_OK && r->answer.count == 1);
    CHECK_STR(r->answer.records[0].ptr, "localhost");
    dns_result_unref(&r);

    header(&m, RESPONSE, 1, 1, 0, 0);
    question(&m, "_25._tcp.mx.example.org", DNS_TYPE_TLSA);
    put_pointer(&m, 12);
    at = rr_begin(&m, DNS_TYPE_TLSA, 300);
    put_bytes(&m, "\x03\x01\x01\xde\xad\xbe\xef", 7);
    rr_end(&m, at);
    r = parse(&m, DNS_TYPE_TLSA, "_25._tcp.mx.example.org");
    CHECK(r->answer.status == DNS_STATUS_OK && r->answer.count == 1);
    CHECK(r->answer.records[0].tlsa.usage == 3);
    CHECK(r->answer.records[0].tlsa.selector == 1);
    CHECK(r->answer.records[0].tlsa.matching == 1);
    CHECK_BYTES(r->answer.records[0].tlsa.data, r->answer.records[0].tlsa.len,
                "\xde\xad\xbe\xef", 4);
    dns_result_unref(&r);
    header(&m, RESPONSE, 1, 1, 0, 0);
    question(&m, "_25._tcp.mx.example.org", DNS_TYPE_TLSA);
    put_pointer(&m, 12);
    at = rr_begin(&m, DNS_TYPE_TLSA, 300);
    put_bytes(&m, "\x03\x01", 2);
    rr_end(&m, at);
    CHECK(parse_status(&m, DNS_TYPE_TLSA, "_25._tcp.mx.example.org") == DNS_STATUS_PERMFAIL);
}

static void
test_negative(void)
{
    struct msg m;
    /* NXDOMAIN with an SOA: min(TTL 3600, MINIMUM 60). */
    header(&m, RESPONSE | 3, 1, 0, 1, 0);
    question(&m, "nx.example.org", DNS_TYPE_A);
    soa(&m, 3600, 60);
    struct dns_result *r = parse(&m, DNS_TYPE_A, "nx.example.org");
    CHECK(r->answer.status == DNS_STATUS_NXDOMAIN);
    CHECK(r->answer.ttl == 60);
    dns_result_unref(&r);
    /* The SOA's TTL when it is the smaller; the cap over both. */
    header(&m, RESPONSE | 3, 1, 0, 1, 0);
    question(&m, "nx.example.org", DNS_TYPE_A);
    soa(&m, 30, 600);
    r = parse(&m, DNS_TYPE_A, "nx.example.org");
    CHECK(r->answer.ttl == 30);
    dns_result_unref(&r);
    header(&m, RESPONSE | 3, 1, 0, 1, 0);
    question(&m, "nx.example.org", DNS_TYPE_A);
    soa(&m, 86400, 86400);
    r = parse(&m, DNS_TYPE_A, "nx.example.org");
    CHECK(r->answer.ttl == 900); /* negative_ttl_max_s */
    dns_result_unref(&r);

    /* NODATA with an SOA; NODATA without one has TTL 0. */
    header(&m, RESPONSE, 1, 0, 1, 0);
    question(&m, "example.org", DNS_TYPE_AAAA);
    soa(&m, 3600, 120);
    r = parse(&m, DNS_TYPE_AAAA, "example.org");
    CHECK(r->answer.status == DNS_STATUS_NODATA);
    CHECK(r->answer.ttl == 120);
    dns_result_unref(&r);
    header(&m, RESPONSE, 1, 0, 0, 0);
    question(&m, "example.org", DNS_TYPE_AAAA);
    r = parse(&m, DNS_TYPE_AAAA, "example.org");
    CHECK(r->answer.status == DNS_STATUS_NODATA);
    CHECK(r->answer.ttl == 0);
    dns_result_unref(&r);

    /* A broken SOA (rdata too short) makes the answer unreadable. */
    header(&m, RESPONSE | 3, 1, 0, 1, 0);
    question(&m, "nx.example.org", DNS_TYPE_A);
    soa(&m, 3600, 60);
    m.n -= 1; /* the SOA's rdata now runs past the message */
    CHECK(parse_status(&m, DNS_TYPE_A, "nx.example.org") == DNS_STATUS_PERMFAIL);
}

static void
test_rcodes_and_flags(void)
{
    struct msg m;
    static const struct {
        unsigned        rcode;
        enum dns_status status;
    } cases[] = {
        { 1, DNS_STATUS_PERMFAIL }, /* FORMERR */
        { 2, DNS_STATUS_TEMPFAIL }, /* SERVFAIL */
        { 4, DNS_STATUS_PERMFAIL }, /* NOTIMP */
        { 5, DNS_STATUS_PERMFAIL }, /* REFUSED */
        { 9, DNS_STATUS_PERMFAIL },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        header(&m, RESPONSE | cases[i].rcode, 1, 0, 0, 0);
        question(&m, "example.org", DNS_TYPE_A);
        CHECK(parse_status(&m, DNS_TYPE_A, "example.org") == cases[i].status);
    }
    /* Truncated (TC) is TEMPFAIL even with records in it. */
    header(&m, RESPONSE | FLAGS_TC, 1, 1, 0, 0);
    question(&m, "example.org", DNS_TYPE_A);
    put_pointer(&m, 12);
    size_t at = rr_begin(&m, DNS_TYPE_A, 60);
    put_bytes(&m, "\1\2\3\4", 4);
    rr_end(&m, at);
    CHECK(parse_status(&m, DNS_TYPE_A, "example.org") == DNS_STATUS_TEMPFAIL);
    /* Not a response; not a standard query; two questions. */
    header(&m, FLAGS_RD, 1, 0, 0, 0);
    question(&m, "example.org", DNS_TYPE_A);
    CHECK(parse_status(&m, DNS_TYPE_A, "example.org") == DNS_STATUS_PERMFAIL);
    header(&m, RESPONSE | (2u << 11), 1, 0, 0, 0);
    question(&m, "example.org", DNS_TYPE_A);
    CHECK(parse_status(&m, DNS_TYPE_A, "example.org") == DNS_STATUS_PERMFAIL);
    header(&m, RESPONSE, 2, 0, 0, 0);
    question(&m, "example.org", DNS_TYPE_A);
    question(&m, "example.org", DNS_TYPE_A);
    CHECK(parse_status(&m, DNS_TYPE_A, "example.org") == DNS_STATUS_PERMFAIL);
    /* An answer to another question. */
    header(&m, RESPONSE, 1, 0, 0, 0);
    question(&m, "other.org", DNS_TYPE_A);
    CHECK(parse_status(&m, DNS_TYPE_A, "example.org") == DNS_STATUS_PERMFAIL);
    header(&m, RESPONSE, 1, 0, 0, 0);
    question(&m, "example.org", DNS_TYPE_MX);
    CHECK(parse_status(&m, DNS_TYPE_A, "example.org") == DNS_STATUS_PERMFAIL);
    /* No question section at all is accepted (some servers omit it). */
    header(&m, RESPONSE, 0, 0, 0, 0);
    CHECK(parse_status(&m, DNS_TYPE_A, "example.org") == DNS_STATUS_NODATA);
    /* A TTL with the top bit set reads as 0 (RFC 2181 8); the cap. */
    header(&m, RESPONSE, 1, 2, 0, 0);
    question(&m, "example.org", DNS_TYPE_A);
    put_pointer(&m, 12);
    at = rr_begin(&m, DNS_TYPE_A, 0x80000000u);
    put_bytes(&m, "\1\2\3\4", 4);
    rr_end(&m, at);
    put_pointer(&m, 12);
    at = rr_begin(&m, DNS_TYPE_A, 60);
    put_bytes(&m, "\1\2\3\5", 4);
    rr_end(&m, at);
    struct dns_result *r = parse(&m, DNS_TYPE_A, "example.org");
    CHECK(r->answer.ttl == 0);
    dns_result_unref(&r);
    header(&m, RESPONSE, 1, 1, 0, 0);
    question(&m, "example.org", DNS_TYPE_A);
    put_pointer(&m, 12);
    at = rr_begin(&m, DNS_TYPE_A, 999999);
    put_bytes(&m, "\1\2\3\4", 4);
    rr_end(&m, at);
    r = parse(&m, DNS_TYPE_A, "example.org");
    CHECK(r->answer.ttl == 86400);
    dns_result_unref(&r);
}

static void
test_cname(void)
{
    struct msg m;
    /* www -> web -> host; records of host count, others' do not. */
    header(&m, RESPONSE, 1, 4, 0, 0);
    question(&m, "www.example.org", DNS_TYPE_A);
    put_name(&m, "web.example.org"); /* answers out of order: chain is followed by name */
    size_t at = rr_begin(&m, 5, 100);
    put_name(&m, "host.example.org");
    rr_end(&m, at);
    put_pointer(&m, 12);
    at = rr_begin(&m, 5, 40);
    put_name(&m, "web.example.org");
    rr_end(&m, at);
    put_name(&m, "host.example.org");
    at = rr_begin(&m, DNS_TYPE_A, 300);
    put_bytes(&m, "\x0a\0\0\x01", 4);
    rr_end(&m, at);
    put_name(&m, "unrelated.example.org");
    at = rr_begin(&m, DNS_TYPE_A, 300);
    put_bytes(&m, "\x0a\0\0\x02", 4);
    rr_end(&m, at);
    struct dns_result *r = parse(&m, DNS_TYPE_A, "www.example.org");
    CHECK(r->answer.status == DNS_STATUS_OK);
    CHECK(r->answer.count == 1);
    CHECK(r->answer.records[0].a.s_addr == htonl(0x0a000001));
    CHECK(r->answer.ttl == 40);
    dns_result_unref(&r);

    /* A CNAME loop. */
    header(&m, RESPONSE, 1, 2, 0, 0);
    question(&m, "a.example.org", DNS_TYPE_A);
    put_pointer(&m, 12);
    at = rr_begin(&m, 5, 100);
    put_name(&m, "b.example.org");
    rr_end(&m, at);
    put_name(&m, "b.example.org");
    at = rr_begin(&m, 5, 100);
    put_pointer(&m, 12);
    rr_end(&m, at);
    CHECK(parse_status(&m, DNS_TYPE_A, "a.example.org") == DNS_STATUS_PERMFAIL);

    /* NXDOMAIN at the end of a chain. */
    header(&m, RESPONSE | 3, 1, 1, 1, 0);
    question(&m, "a.example.org", DNS_TYPE_A);
    put_pointer(&m, 12);
    at = rr_begin(&m, 5, 100);
    put_name(&m, "gone.example.org");
    rr_end(&m, at);
    soa(&m, 60, 60);
    CHECK(parse_status(&m, DNS_TYPE_A, "a.example.org") == DNS_STATUS_NXDOMAIN);
}

static void
test_record_bound(void)
{
    struct msg m;
    for (unsigned count = DNS_ANSWER_RECORDS_MAX - 1; count <= DNS_ANSWER_RECORDS_MAX + 1;
         count++) {
        header(&m, RESPONSE, 1, count, 0, 0);
        question(&m, "many.example.org", DNS_TYPE_A);
        for (unsigned i = 0; i < count; i++) {
            put_pointer(&m, 12);
            size_t at = rr_begin(&m, DNS_TYPE_A, 60);
            put32(&m, 0x0a000000u + i);
            rr_end(&m, at);
        }
        struct dns_result *r = parse(&m, DNS_TYPE_A, "many.example.org");
        if (count <= DNS_ANSWER_RECORDS_MAX) {
            CHECK(r->answer.status == DNS_STATUS_OK);
            CHECK(r->answer.count == count);
            CHECK(r->answer.records[count - 1].a.s_addr == htonl(0x0a000000u + count - 1));
        } else {
            CHECK(r->answer.status == DNS_STATUS_PERMFAIL);
        }
        dns_result_unref(&r);
    }
}

static void
test_result_copy(void)
{
    /* dns_result_create deep-copies what the records point to. */
    char host[] = "mx.example.org";
    struct dns_record rec = { .mx = { .preference = 5, .host = host } };
    struct dns_result *r = NULL;
    CHECK(dns_result_create("example.org", DNS_TYPE_MX, DNS_STATUS_OK, 10, false, &rec, 1, &r) ==
          0);
    host[0] = 'X';
    CHECK_STR(r->answer.records[0].mx.host, "mx.example.org");
    struct dns_result *second = dns_result_ref(r);
    CHECK(r->refs == 2);
    dns_result_unref(&r);
    CHECK_STR(second->answer.records[0].mx.host, "mx.example.org");
    dns_result_unref(&second);
    dns_result_unref(&second); /* NULL is fine */

    enum dns_type type;
    CHECK(dns_type_from_name("tlsa", &type) == 0 && type == DNS_TYPE_TLSA);
    CHECK(dns_type_from_name("SRV", &type) == -EINVAL);
    CHECK_STR(dns_type_name(DNS_TYPE_AAAA), "AAAA");
    CHECK_STR(dns_status_name(DNS_STATUS_NODATA), "NODATA");
}

int
main(void)
{
    test_names();
    test_a_aaaa();
    test_mx_and_compression();
    test_bad_pointers();
    test_txt_ptr_tlsa();
    test_negative();
    test_rcodes_and_flags();
    test_cname();
    test_record_bound();
    test_result_copy();
    UNIT_DONE();
}
