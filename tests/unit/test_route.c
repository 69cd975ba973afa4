/*
 * tests/unit/test_route.c - next-hop routing (store/route) over a
 * table-backed DNS source (tests/unit/dns_table). Covers RFC 5321 section
 * 5.1 (MX by preference, equal preferences shuffled deterministically by
 * the seed, implicit MX, NXDOMAIN permanent, SERVFAIL temporary, MX
 * pointing at ourselves by name and by address), the null MX of RFC 7505,
 * address families and per-host and per-result address bounds, address
 * literals, relay_host / transport_file / relay_domains precedence, the
 * transport_file parser's line-numbered errors and every ROUTE_* bound at
 * max and max + 1. Each resolution runs twice, with every answer at hand
 * and with every first question answered -EINPROGRESS and rerun, and both
 * runs must agree.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store/route.h"
#include "tests/unit/dns_table.h"
#include "tests/unit/unit.h"

int main(void);

#define ROWS_MAX 1200

static struct dns_table *table;
static struct dns_table_row rows[ROWS_MAX];
static size_t row_count;
static char row_text[ROWS_MAX][64];

static void
zone_begin(void)
{
    dns_table_destroy(&table);
    row_count = 0;
}

static void
add(enum dns_type type, const char *name, enum dns_status status, const char *data)
{
    if (row_count == ROWS_MAX) {
        abort();
    }
    rows[row_count++] = (struct dns_table_row){type, name, status, data};
}

static void
mx(const char *name, const char *data)
{
    add(DNS_TYPE_MX, name, DNS_STATUS_OK, data);
}

static void
a(const char *name, const char *address)
{
    add(DNS_TYPE_A, name, DNS_STATUS_OK, address);
}

static void
aaaa(const char *name, const char *address)
{
    add(DNS_TYPE_AAAA, name, DNS_STATUS_OK, address);
}

/* A row's data made up at run time, kept in the next row's slot. */
static const char *text(const char *format, ...) __attribute__((format(printf, 1, 2)));

static const char *
text(const char *format, ...)
{
    char *slot = row_text[row_count];
    va_list args;
    va_start(args, format);
    (void)vsnprintf(slot, sizeof(row_text[0]), format, args); /* short test strings */
    va_end(args);
    return slot;
}

static void
zone_end(void)
{
    table = dns_table_create(rows, row_count);
    if (table == NULL) {
        abort();
    }
}

static struct route_request request;
static struct route_result result;
static size_t last_reruns;

static void
request_reset(const char *domain)
{
    memset(&request, 0, sizeof(request));
    request.domain = domain;
    request.myhostname = "mx.toaster.test";
    request.family = ROUTE_FAMILY_PREFER_IPV4;
    request.seed = 1;
}

static bool
results_equal(const struct route_result *x, const struct route_result *y)
{
    if (x->status != y->status || x->kind != y->kind || x->reply_code != y->reply_code ||
        strcmp(x->enhanced, y->enhanced) != 0 || strcmp(x->reason, y->reason) != 0 ||
        x->hop_count != y->hop_count) {
        return false;
    }
    for (size_t i = 0; i < x->hop_count; i++) {
        const struct route_hop *p = &x->hops[i];
        const struct route_hop *q = &y->hops[i];
        if (strcmp(p->host, q->host) != 0 || p->port != q->port ||
            p->preference != q->preference || p->address.family != q->address.family ||
            memcmp(&p->address.v6, &q->address.v6,
                   p->address.family == AF_INET ? 4 : 16) != 0) {
            return false;
        }
    }
    return true;
}

/* Resolve request.domain both ways; leaves the answer in result. */
static enum route_status
resolve(void)
{
    struct dns_source source = dns_table_source(table);
    dns_table_forget(table);
    dns_table_set_deferred(table, false);
    int rc = route_resolve(&request, &source, &result);
    CHECK(rc == 0);
    dns_table_forget(table);
    dns_table_set_deferred(table, true);
    struct route_result again;
    size_t runs = 0;
    do {
        rc = route_resolve(&request, &source, &again);
        runs++;
    } while (rc == -EINPROGRESS && runs < 50);
    CHECK(rc == 0);
    CHECK(results_equal(&result, &again));
    last_reruns = runs;
    return result.status;
}

static const char *
hop_address(size_t index)
{
    static char buffer[INET6_ADDRSTRLEN];
    const struct route_hop *hop = &result.hops[index];
    const void *raw = hop->address.family == AF_INET ? (const void *)&hop->address.v4
                                                     : (const void *)&hop->address.v6;
    if (inet_ntop(hop->address.family, raw, buffer, sizeof(buffer)) == NULL) {
        return "?";
    }
    return buffer;
}

static void
test_mx_preference_order(void)
{
    /* RFC 5321 5.1: the lowest preference first. Records given out of
     * order. */
    zone_begin();
    mx("example.com", "20 mail-b.example.com");
    mx("example.com", "10 mail-a.example.com");
    a("mail-a.example.com", "192.0.2.129");
    a("mail-b.example.com", "192.0.2.130");
    zone_end();
    request_reset("Example.COM.");
    CHECK(resolve() == ROUTE_OK);
    CHECK(result.kind == ROUTE_KIND_MX);
    CHECK(result.hop_count == 2);
    CHECK_STR(result.hops[0].host, "mail-a.example.com");
    CHECK_STR(hop_address(0), "192.0.2.129");
    CHECK(result.hops[0].preference == 10);
    CHECK(result.hops[0].port == 25);
    CHECK_STR(result.hops[1].host, "mail-b.example.com");
    CHECK(result.hops[1].preference == 20);
    CHECK(!result.hops[0].is_dnssec); /* the table does not set AD */
    CHECK(result.enhanced[0] == '\0');
    /* One round of MX, one of all the hosts' addresses, one to finish. */
    CHECK(last_reruns == 3);
    /* mx_port moves every MX hop (tests aim at a sink on a high port). */
    request.mx_port = 2526;
    CHECK(resolve() == ROUTE_OK);
    CHECK(result.hops[0].port == 2526 && result.hops[1].port == 2526);
}

static void
test_equal_preference_shuffle(void)
{
    zone_begin();
    mx("shuffle.test", "10 a.shuffle.test");
    mx("shuffle.test", "10 b.shuffle.test");
    mx("shuffle.test", "10 c.shuffle.test");
    mx("shuffle.test", "5 first.shuffle.test");
    mx("shuffle.test", "30 last.shuffle.test");
    a("a.shuffle.test", "192.0.2.1");
    a("b.shuffle.test", "192.0.2.2");
    a("c.shuffle.test", "192.0.2.3");
    a("first.shuffle.test", "192.0.2.4");
    a("last.shuffle.test", "192.0.2.5");
    zone_end();
    request_reset("shuffle.test");
    request.addresses_max = 5;
    int seen_second[3] = {0, 0, 0};
    bool is_bad = false;
    for (uint64_t seed = 0; seed < 300; seed++) {
        request.seed = seed;
        if (resolve() != ROUTE_OK || result.hop_count != 5) {
            is_bad = true;
            continue;
        }
        is_bad |= strcmp(result.hops[0].host, "first.shuffle.test") != 0;
        is_bad |= strcmp(result.hops[4].host, "last.shuffle.test") != 0;
        for (size_t i = 1; i <= 3; i++) {
            is_bad |= result.hops[i].preference != 10;
        }
        seen_second[result.hops[1].host[0] - 'a']++;
        /* The same seed gives the same order. */
        struct route_result first = result;
        (void)resolve();
        is_bad |= !results_equal(&first, &result);
    }
    CHECK(!is_bad);
    /* Each of the three comes second about a third of the time. */
    for (int i = 0; i < 3; i++) {
        CHECK(seen_second[i] > 60);
    }
}

static void
test_implicit_mx_and_failures(void)
{
    zone_begin();
    a("nomx.test", "192.0.2.50");
    aaaa("nomx.test", "2001:db8::50");
    add(DNS_TYPE_MX, "servfail.test", DNS_STATUS_TEMPFAIL, NULL);
    add(DNS_TYPE_MX, "refused.test", DNS_STATUS_PERMFAIL, NULL);
    mx("deadhosts.test", "10 gone1.deadhosts.test");
    mx("deadhosts.test", "20 gone2.deadhosts.test");
    mx("flaky.test", "10 gone.flaky.test");
    mx("flaky.test", "20 slow.flaky.test");
    add(DNS_TYPE_A, "slow.flaky.test", DNS_STATUS_TEMPFAIL, NULL);
    mx("halfflaky.test", "10 slow.flaky.test");
    mx("halfflaky.test", "20 ok.halfflaky.test");
    a("ok.halfflaky.test", "192.0.2.60");
    mx("badhost.test", "10 bad..name");
    mx("badhost.test", "20 ok.halfflaky.test");
    zone_end();

    /* RFC 5321 5.1: no MX, the domain itself at preference 0. */
    request_reset("nomx.test");
    CHECK(resolve() == ROUTE_OK);
    CHECK(result.kind == ROUTE_KIND_IMPLICIT);
    CHECK(result.hop_count == 2);
    CHECK_STR(hop_address(0), "192.0.2.50");
    CHECK_STR(hop_address(1), "2001:db8::50");
    CHECK(result.hops[0].preference == 0);
    CHECK_STR(result.hops[0].host, "nomx.test");

    request_reset("nxdomain.test");
    CHECK(resolve() == ROUTE_PERMFAIL);
    CHECK(result.reply_code == 550);
    CHECK_STR(result.enhanced, "5.1.2");
    CHECK_STR(result.reason, "Host or domain name not found. Name service error for "
                             "name=nxdomain.test type=MX: Host not found");
    CHECK(result.hop_count == 0);

    request_reset("servfail.test");
    CHECK(resolve() == ROUTE_TEMPFAIL);
    CHECK(result.reply_code == 451);
    CHECK_STR(result.enhanced, "4.4.3");
    request_reset("refused.test");
    CHECK(resolve() == ROUTE_TEMPFAIL);

    /* Every MX host without an address: permanent. */
    request_reset("deadhosts.test");
    CHECK(resolve() == ROUTE_PERMFAIL);
    CHECK_STR(result.enhanced, "5.4.4");
    CHECK(strstr(result.reason, "name=gone1.deadhosts.test type=A") != NULL);
    /* One of them only temporarily: temporary. */
    request_reset("flaky.test");
    CHECK(resolve() == ROUTE_TEMPFAIL);
    CHECK_STR(result.enhanced, "4.4.3");
    /* A temporary failure of one host beside a working one: the working one. */
    request_reset("halfflaky.test");
    CHECK(resolve() == ROUTE_OK);
    CHECK(result.hop_count == 1);
    CHECK_STR(result.hops[0].host, "ok.halfflaky.test");
    /* An MX naming an invalid host: that host is skipped. */
    request_reset("badhost.test");
    CHECK(resolve() == ROUTE_OK);
    CHECK(result.hop_count == 1);
    CHECK(result.hops[0].preference == 20);
}

static void
test_null_mx(void)
{
    zone_begin();
    mx("example.net", "0 .");
    a("example.net", "192.0.2.70"); /* has an address: still no mail (RFC 7505 3) */
    mx("mixed.test", "0 .");
    mx("mixed.test", "10 mx.mixed.test");
    a("mx.mixed.test", "192.0.2.71");
    zone_end();
    request_reset("example.net");
    CHECK(resolve() == ROUTE_PERMFAIL);
    CHECK(result.reply_code == 556);
    CHECK_STR(result.enhanced, "5.1.10");
    CHECK_STR(result.reason, "Domain example.net does not accept mail (nullMX)");
    CHECK(last_reruns == 2); /* no address was asked for */
    request_reset("EXAMPLE.net.");
    CHECK(resolve() == ROUTE_PERMFAIL);
    CHECK_STR(result.reason, "Domain example.net does not accept mail (nullMX)");
    /* A null MX beside real ones is a broken zone; the real ones are used. */
    request_reset("mixed.test");
    CHECK(resolve() == ROUTE_OK);
    CHECK(result.hop_count == 1);
    CHECK_STR(result.hops[0].host, "mx.mixed.test");
}

static void
test_mx_to_self(void)
{
    static const char our_v4[] = "198.51.100.25";
    struct route_self selves[2];
    memset(selves, 0, sizeof(selves));
    selves[0].address.family = AF_INET;
    (void)inet_pton(AF_INET, our_v4, &selves[0].address.v4);
    selves[1].address.family = AF_INET6;
    (void)inet_pton(AF_INET6, "2001:db8::25", &selves[1].address.v6);
    selves[1].port = 25;

    zone_begin();
    /* We are the backup MX (by name): only the primary. */
    mx("backup.test", "10 primary.backup.test");
    mx("backup.test", "20 mx.toaster.test");
    mx("backup.test", "30 tertiary.backup.test");
    a("primary.backup.test", "192.0.2.80");
    a("tertiary.backup.test", "192.0.2.81");
    a("mx.toaster.test", our_v4);
    /* We are the primary: nobody better, a loop. */
    mx("primary.test", "10 mx.toaster.test");
    mx("primary.test", "20 other.primary.test");
    a("other.primary.test", "192.0.2.82");
    /* By address, at the same preference as another host: both out. */
    mx("byaddr.test", "5 best.byaddr.test");
    mx("byaddr.test", "10 alias.byaddr.test");
    mx("byaddr.test", "10 peer.byaddr.test");
    a("best.byaddr.test", "192.0.2.83");
    a("alias.byaddr.test", our_v4);
    a("peer.byaddr.test", "192.0.2.84");
    mx("v6self.test", "10 six.v6self.test");
    aaaa("six.v6self.test", "2001:db8::25");
    /* Implicit MX pointing at us. */
    a("implicit.test", our_v4);
    zone_end();

    request_reset("backup.test");
    request.selves = selves;
    request.self_count = 2;
    CHECK(resolve() == ROUTE_OK);
    CHECK(result.hop_count == 1);
    CHECK_STR(result.hops[0].host, "primary.backup.test");

    request_reset("primary.test");
    request.selves = selves;
    request.self_count = 2;
    CHECK(resolve() == ROUTE_PERMFAIL);
    CHECK(result.reply_code == 554);
    CHECK_STR(result.enhanced, "5.4.6");
    CHECK_STR(result.reason, "mail for primary.test loops back to myself");

    /* Whatever the shuffle puts first at preference 10, only 5 is left. */
    request_reset("byaddr.test");
    request.selves = selves;
    request.self_count = 2;
    bool is_bad = false;
    for (uint64_t seed = 0; seed < 20; seed++) {
        request.seed = seed;
        is_bad |= resolve() != ROUTE_OK;
        is_bad |= result.hop_count != 1;
        is_bad |= strcmp(result.hops[0].host, "best.byaddr.test") != 0;
    }
    CHECK(!is_bad);
    /* Without our addresses the alias is an ordinary host. */
    request.self_count = 0;
    CHECK(resolve() == ROUTE_OK);
    CHECK(result.hop_count == 3);

    /* An endpoint with a port is us only on that port. */
    request_reset("v6self.test");
    request.selves = selves;
    request.self_count = 2;
    CHECK(resolve() == ROUTE_PERMFAIL);
    CHECK_STR(result.enhanced, "5.4.6");
    request.mx_port = 2525;
    CHECK(resolve() == ROUTE_OK);

    request_reset("implicit.test");
    request.selves = selves;
    request.self_count = 1;
    CHECK(resolve() == ROUTE_PERMFAIL);
    CHECK_STR(result.enhanced, "5.4.6");

    /* A domain named as we are with no MX: us too. */
    request_reset("mx.toaster.test");
    CHECK(resolve() == ROUTE_PERMFAIL);
    CHECK_STR(result.enhanced, "5.4.6");
}

static void
test_families_and_address_bounds(void)
{
    zone_begin();
    mx("dual.test", "10 mx.dual.test");
    a("mx.dual.test", "192.0.2.90");
    aaaa("mx.dual.test", "2001:db8::90");
    a("many.test", "192.0.2.1");
    a("many.test", "192.0.2.2");
    a("many.test", "192.0.2.3");
    a("many.test", "192.0.2.4");
    a("many.test", "192.0.2.5");
    a("many.test", "192.0.2.6");
    aaaa("many.test", "2001:db8::1");
    /* Six hosts of three addresses. */
    static char wide_mx[6][32];
    static char wide_host[6][32];
    static char wide_address[6][3][32];
    for (unsigned i = 0; i < 6; i++) {
        (void)snprintf(wide_mx[i], sizeof(wide_mx[i]), "%u h%u.wide.test", i + 1, i + 1);
        (void)snprintf(wide_host[i], sizeof(wide_host[i]), "h%u.wide.test", i + 1);
        mx("wide.test", wide_mx[i]);
        for (unsigned k = 0; k < 3; k++) {
            (void)snprintf(wide_address[i][k], sizeof(wide_address[i][k]), "10.0.0.%u",
                           i * 10 + k);
            a(wide_host[i], wide_address[i][k]);
        }
    }
    aaaa("six.test", "2001:db8::66");
    zone_end();

    request_reset("dual.test");
    CHECK(resolve() == ROUTE_OK);
    CHECK(result.hop_count == 2);
    CHECK(result.hops[0].address.family == AF_INET);
    CHECK(result.hops[1].address.family == AF_INET6);
    request.family = ROUTE_FAMILY_PREFER_IPV6;
    CHECK(resolve() == ROUTE_OK);
    CHECK(result.hops[0].address.family == AF_INET6);
    CHECK(result.hops[1].address.family == AF_INET);
    request.family = ROUTE_FAMILY_IPV4_ONLY;
    CHECK(resolve() == ROUTE_OK);
    CHECK(result.hop_count == 1 && result.hops[0].address.family == AF_INET);
    request.family = ROUTE_FAMILY_IPV6_ONLY;
    CHECK(resolve() == ROUTE_OK);
    CHECK(result.hop_count == 1 && result.hops[0].address.family == AF_INET6);

    /* ROUTE_HOST_ADDRESSES_MAX per host, v4 preferred. */
    request_reset("many.test");
    request.addresses_max = ROUTE_ADDRESSES_CEILING;
    CHECK(resolve() == ROUTE_OK);
    CHECK(result.hop_count == ROUTE_HOST_ADDRESSES_MAX);
    for (size_t i = 0; i < result.hop_count; i++) {
        CHECK(result.hops[i].address.family == AF_INET);
    }
    /* IPv6 only: the one AAAA. */
    request.family = ROUTE_FAMILY_IPV6_ONLY;
    CHECK(resolve() == ROUTE_OK);
    CHECK(result.hop_count == 1);

    /* The result bound: default 5, then 1, then the ceiling. */
    request_reset("wide.test");
    CHECK(resolve() == ROUTE_OK);
    CHECK(result.hop_count == ROUTE_ADDRESSES_DEFAULT);
    CHECK(result.hops[0].preference == 1 && result.hops[2].preference == 1);
    CHECK(result.hops[3].preference == 2 && result.hops[4].preference == 2);
    request.addresses_max = 1;
    CHECK(resolve() == ROUTE_OK);
    CHECK(result.hop_count == 1);
    request.addresses_max = ROUTE_ADDRESSES_CEILING;
    CHECK(resolve() == ROUTE_OK);
    CHECK(result.hop_count == 18); /* 6 hosts x 3 */

    /* An IPv6-only host with IPv4 only allowed: no address. */
    request_reset("six.test");
    request.family = ROUTE_FAMILY_IPV4_ONLY;
    CHECK(resolve() == ROUTE_PERMFAIL);
    CHECK_STR(result.enhanced, "5.4.4");
}

static void
test_mx_bounds(void)
{
    /* ROUTE_MX_RECORDS_MAX + 8 records: the lowest preference is the last
     * one given, and it must still come first. */
    zone_begin();
    for (unsigned i = 0; i < ROUTE_MX_RECORDS_MAX + 7; i++) {
        mx("records.test", text("%u far.records.test", 100 + i));
    }
    mx("records.test", "1 near.records.test");
    a("near.records.test", "192.0.2.100");
    a("far.records.test", "192.0.2.101");
    /* ROUTE_MX_HOSTS_MAX hosts without address, then one with: past the
     * bound, not looked at. */
    for (unsigned i = 0; i < ROUTE_MX_HOSTS_MAX; i++) {
        mx("hosts.test", text("%u nothing.hosts.test", i));
        (void)snprintf(row_text[row_count - 1], sizeof(row_text[0]), "%u n%u.hosts.test", i, i);
    }
    mx("hosts.test", "99 last.hosts.test");
    a("last.hosts.test", "192.0.2.102");
    for (unsigned i = 0; i + 1 < ROUTE_MX_HOSTS_MAX; i++) {
        mx("hosts9.test", text("%u nothing.hosts.test", i));
        (void)snprintf(row_text[row_count - 1], sizeof(row_text[0]), "%u n%u.hosts.test", i, i);
    }
    mx("hosts9.test", "99 last.hosts.test");

    /* ROUTE_ANSWER_RECORDS_MAX: of 1100 addresses, those past the first
     * 1024 are never looked at, whatever the seed. */
    for (unsigned i = 0; i < 1100; i++) {
        a("big.records.test", text("10.%u.%u.1", i / 256, i % 256));
    }
    request_reset("big.records.test");
    zone_end();
    bool is_past = false;
    bool is_bad = false;
    for (uint64_t seed = 0; seed < 300; seed++) {
        request.seed = seed;
        is_bad |= resolve() != ROUTE_OK || result.hop_count != ROUTE_HOST_ADDRESSES_MAX;
        for (size_t i = 0; i < result.hop_count; i++) {
            uint32_t index = ((uint32_t)((const uint8_t *)&result.hops[i].address.v4)[1] << 8) |
                             ((const uint8_t *)&result.hops[i].address.v4)[2];
            is_past |= index >= ROUTE_ANSWER_RECORDS_MAX;
        }
    }
    CHECK(!is_bad);
    CHECK(!is_past);

    request_reset("records.test");
    CHECK(resolve() == ROUTE_OK);
    CHECK_STR(result.hops[0].host, "near.records.test");
    CHECK(result.hops[0].preference == 1);

    request_reset("hosts.test");
    CHECK(resolve() == ROUTE_PERMFAIL);
    CHECK_STR(result.enhanced, "5.4.4");
    request_reset("hosts9.test");
    CHECK(resolve() == ROUTE_OK);
    CHECK_STR(result.hops[0].host, "last.hosts.test");
}

static void
test_names_and_literals(void)
{
    zone_begin();
    a("x.test", "192.0.2.1");
    zone_end();
    char name[300];
    /* 253 octets: labels of 63 + dots. */
    memset(name, 'a', sizeof(name));
    name[63] = '.';
    name[127] = '.';
    name[191] = '.';
    name[253] = '\0';
    request_reset(name);
    CHECK(resolve() == ROUTE_PERMFAIL);
    CHECK_STR(result.enhanced, "5.1.2"); /* NXDOMAIN, but asked */
    CHECK(result.reply_code == 550);
    name[253] = 'a';
    name[254] = '\0';
    request_reset(name);
    CHECK(resolve() == ROUTE_PERMFAIL);
    CHECK(result.reply_code == 501);
    /* A label of 63, then 64. */
    memset(name, 'b', 63);
    memcpy(name + 63, ".test", 6);
    request_reset(name);
    CHECK(resolve() == ROUTE_PERMFAIL && result.reply_code == 550);
    memset(name, 'b', 64);
    memcpy(name + 64, ".test", 6);
    request_reset(name);
    CHECK(resolve() == ROUTE_PERMFAIL && result.reply_code == 501);
    request_reset("");
    CHECK(resolve() == ROUTE_PERMFAIL && result.reply_code == 501);
    request_reset("a..b");
    CHECK(resolve() == ROUTE_PERMFAIL && result.reply_code == 501);
    request_reset("spa ce.test");
    CHECK(resolve() == ROUTE_PERMFAIL && result.reply_code == 501);
    CHECK_STR(result.reason, "bad domain name spa ce.test");
    request_reset("evil\r\n.test");
    CHECK(resolve() == ROUTE_PERMFAIL && result.reply_code == 501);
    CHECK_STR(result.reason, "bad domain name evil??.test");

    /* Address literals (RFC 5321 4.1.3): no DNS at all. */
    request_reset("[192.0.2.9]");
    CHECK(resolve() == ROUTE_OK);
    CHECK(result.kind == ROUTE_KIND_LITERAL);
    CHECK(result.hop_count == 1);
    CHECK_STR(hop_address(0), "192.0.2.9");
    CHECK(dns_table_distinct_count(table) == 0);
    request_reset("[IPv6:2001:db8::9]");
    CHECK(resolve() == ROUTE_OK);
    CHECK_STR(hop_address(0), "2001:db8::9");
    request.family = ROUTE_FAMILY_IPV4_ONLY;
    CHECK(resolve() == ROUTE_PERMFAIL);
    request_reset("[192.0.2.999]");
    CHECK(resolve() == ROUTE_PERMFAIL && result.reply_code == 501);
    request_reset("[]");
    CHECK(resolve() == ROUTE_PERMFAIL && result.reply_code == 501);
    struct route_self self = {.address = {.family = AF_INET}};
    (void)inet_pton(AF_INET, "192.0.2.9", &self.address.v4);
    request_reset("[192.0.2.9]");
    request.selves = &self;
    request.self_count = 1;
    CHECK(resolve() == ROUTE_PERMFAIL);
    CHECK_STR(result.enhanced, "5.4.6");
}

static void
test_nexthop_parse(void)
{
    struct route_nexthop hop;
    char why[128];
    CHECK(route_nexthop_parse("[smtp.example.com]:587", 22, &hop, why, sizeof(why)) == 0);
    CHECK_STR(hop.host, "smtp.example.com");
    CHECK(hop.port == 587 && !hop.is_mx_lookup && !hop.is_literal);
    CHECK(route_nexthop_parse("Relay.Example.com", 17, &hop, why, sizeof(why)) == 0);
    CHECK_STR(hop.host, "relay.example.com");
    CHECK(hop.port == 25 && hop.is_mx_lookup);
    CHECK(route_nexthop_parse("smtp:[relay.test]", 17, &hop, why, sizeof(why)) == 0);
    CHECK(!hop.is_mx_lookup);
    CHECK(route_nexthop_parse("[192.0.2.7]:26", 14, &hop, why, sizeof(why)) == 0);
    CHECK(hop.is_literal && hop.port == 26);
    CHECK_STR(hop.host, "192.0.2.7");
    CHECK(route_nexthop_parse("[ipv6:2001:db8::7]:26", 21, &hop, why, sizeof(why)) == 0);
    CHECK(hop.is_literal && hop.literal.family == AF_INET6);
    CHECK(route_nexthop_parse("[2001:db8::7]", 13, &hop, why, sizeof(why)) == 0);
    CHECK(hop.is_literal);
    CHECK(route_nexthop_parse("relay.test:65535", 16, &hop, why, sizeof(why)) == 0);
    CHECK(hop.port == 65535);
    static const char *const bad[] = {
        "", "smtp:", "[relay.test", "relay.test:", "relay.test:0", "relay.test:65536",
        "relay.test:25x", "[relay.test]x", "192.0.2.7:25", "[]:25", "rel ay.test",
        "relay.test:1234567",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        why[0] = '\0';
        int rc = route_nexthop_parse(bad[i], strlen(bad[i]), &hop, why, sizeof(why));
        CHECK(rc == -EINVAL);
        CHECK(why[0] != '\0');
    }
}

static struct route_table *rtable;
static char error[256];

static int
make(const char *relay_host, const char *relay_domains, const char *transport)
{
    route_table_destroy(&rtable);
    error[0] = '\0';
    return route_table_create(relay_host, relay_domains, transport,
                              transport != NULL ? strlen(transport) : 0, &rtable, error,
                              sizeof(error));
}

static void
test_transport_parse(void)
{
    CHECK(make(NULL, NULL,
               "# routes\n"
               "\n"
               "example.com [inner.example.com]:2525\r\n"
               "  .example.com\tsub-relay.example.com  \n"
               "Other.Test. smtp:[192.0.2.44]\n"
               "   # indented comment\n"
               "last.test [last.relay]") == 0);
    CHECK(route_table_transport_count(rtable) == 4);
    struct route_nexthop hop;
    CHECK(route_table_find(rtable, "example.com", &hop));
    CHECK_STR(hop.host, "inner.example.com");
    CHECK(hop.port == 2525);
    CHECK(route_table_find(rtable, "a.b.EXAMPLE.com.", &hop));
    CHECK_STR(hop.host, "sub-relay.example.com");
    CHECK(hop.is_mx_lookup);
    CHECK(route_table_find(rtable, "other.test", &hop));
    CHECK(hop.is_literal);
    CHECK(!route_table_find(rtable, "sub.other.test", &hop)); /* no ".other.test" entry */
    CHECK(!route_table_find(rtable, "xexample.com", &hop));
    CHECK(route_table_find(rtable, "last.test", &hop));

    /* Errors, each naming its line. */
    static const struct {
        const char *text;
        int         rc;
        const char *error;
    } bad[] = {
        {"a.test [x]\nb.test\n", -EINVAL, "transport_file: line 2: want \"domain nexthop\""},
        {"a.test [x] extra\n", -EINVAL, "transport_file: line 1: want \"domain nexthop\""},
        {"\n\nbad..test [x]\n", -EINVAL, "transport_file: line 3: bad domain"},
        {"a.test [x]:99999\n", -EINVAL, "transport_file: line 1: port out of range"},
        {"a.test 192.0.2.1\n", -EINVAL,
         "transport_file: line 1: an IP address must be in brackets"},
        {"a.test [x\n", -EINVAL, "transport_file: line 1: '[' without ']'"},
        {"a.test [x]\n.a.test [y]\nb.test [z]\nA.TEST [w]\n", -EINVAL,
         "transport_file: line 4: a.test is listed twice (first on line 1)"},
        {". [x]\n", -EINVAL, "transport_file: line 1: bad domain"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        CHECK(make(NULL, NULL, bad[i].text) == bad[i].rc);
        CHECK_STR(error, bad[i].error);
        CHECK(rtable == NULL);
    }
    /* A NUL byte. */
    static const char nul[] = "a.test [x]\nb.test\0 [y]\n";
    CHECK(route_table_create(NULL, NULL, nul, sizeof(nul) - 1, &rtable, error, sizeof(error)) ==
          -EINVAL);
    CHECK_STR(error, "transport_file: line 2: NUL byte");
    CHECK(make("[bad", NULL, NULL) == -EINVAL);
    CHECK_STR(error, "relay_host: '[' without ']'");
    CHECK(make(NULL, "ok.test, bad..test", NULL) == -EINVAL);
    CHECK_STR(error, "relay_domains: bad domain bad..test");
}

static void
test_transport_bounds(void)
{
    /* A line of ROUTE_TRANSPORT_LINE_BYTES_MAX bytes, then one more. */
    size_t line_bytes = ROUTE_TRANSPORT_LINE_BYTES_MAX;
    char *line = malloc(line_bytes + 3);
    if (line == NULL) {
        abort();
    }
    memcpy(line, "a.test [x]", 10);
    memset(line + 10, ' ', line_bytes - 10);
    line[line_bytes] = '\n';
    line[line_bytes + 1] = '\0';
    CHECK(make(NULL, NULL, line) == 0);
    memset(line + 10, ' ', line_bytes + 1 - 10);
    line[line_bytes + 1] = '\n';
    line[line_bytes + 2] = '\0';
    CHECK(make(NULL, NULL, line) == -E2BIG);
    CHECK_STR(error, "transport_file: line 1: over 1024 bytes");
    free(line);

    /* ROUTE_TRANSPORT_ENTRIES_MAX entries, then one more. */
    size_t entry_bytes = 32;
    char *many = malloc((ROUTE_TRANSPORT_ENTRIES_MAX + 1) * entry_bytes + 1);
    if (many == NULL) {
        abort();
    }
    size_t used = 0;
    for (unsigned i = 0; i < ROUTE_TRANSPORT_ENTRIES_MAX; i++) {
        used += (size_t)sprintf(many + used, "d%u.test [r%u]\n", i, i % 7);
    }
    CHECK(make(NULL, NULL, many) == 0);
    CHECK(route_table_transport_count(rtable) == ROUTE_TRANSPORT_ENTRIES_MAX);
    struct route_nexthop hop;
    CHECK(route_table_find(rtable, "d65535.test", &hop));
    CHECK_STR(hop.host, "r1");
    CHECK(!route_table_find(rtable, "d65536.test", &hop));
    (void)sprintf(many + used, "x.test [y]\n");
    CHECK(make(NULL, NULL, many) == -E2BIG);
    CHECK_STR(error, "transport_file: line 65537: over 65536 entries");
    free(many);

    /* ROUTE_TRANSPORT_BYTES_MAX bytes of comments, then one more. */
    char *big = malloc(ROUTE_TRANSPORT_BYTES_MAX + 1);
    if (big == NULL) {
        abort();
    }
    for (size_t i = 0; i < ROUTE_TRANSPORT_BYTES_MAX; i += 512) {
        memset(big + i, '#', 511);
        big[i + 511] = '\n';
    }
    CHECK(route_table_create(NULL, NULL, big, ROUTE_TRANSPORT_BYTES_MAX, &rtable, error,
                             sizeof(error)) == 0);
    CHECK(route_table_transport_count(rtable) == 0);
    route_table_destroy(&rtable);
    big[ROUTE_TRANSPORT_BYTES_MAX] = '\n';
    CHECK(route_table_create(NULL, NULL, big, ROUTE_TRANSPORT_BYTES_MAX + 1, &rtable, error,
                             sizeof(error)) == -E2BIG);
    CHECK(rtable == NULL);

    /* The same through a file. */
    char path[] = "/tmp/test_route_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    CHECK(write(fd, big, ROUTE_TRANSPORT_BYTES_MAX) == (ssize_t)ROUTE_TRANSPORT_BYTES_MAX);
    CHECK(route_table_load(NULL, NULL, path, &rtable, error, sizeof(error)) == 0);
    route_table_destroy(&rtable);
    CHECK(write(fd, "\n", 1) == 1);
    CHECK(route_table_load(NULL, NULL, path, &rtable, error, sizeof(error)) == -E2BIG);
    CHECK(ftruncate(fd, 0) == 0);
    CHECK(pwrite(fd, "a.test [b]\nc.test d:26\n", 23, 0) == 23);
    CHECK(route_table_load("[smart.test]", "c.test", path, &rtable, error, sizeof(error)) == 0);
    CHECK(route_table_transport_count(rtable) == 2);
    route_table_destroy(&rtable);
    (void)close(fd);
    CHECK(unlink(path) == 0);
    CHECK(route_table_load(NULL, NULL, path, &rtable, error, sizeof(error)) == -ENOENT);
    CHECK(strstr(error, path) != NULL);
    CHECK(route_table_load(NULL, NULL, "", &rtable, error, sizeof(error)) == 0);
    route_table_destroy(&rtable);
    free(big);

    /* relay_domains: ROUTE_RELAY_DOMAINS_MAX, then one more. */
    char *domains = malloc(ROUTE_RELAY_DOMAINS_MAX * 16 + 32);
    if (domains == NULL) {
        abort();
    }
    used = 0;
    for (unsigned i = 0; i < ROUTE_RELAY_DOMAINS_MAX; i++) {
        used += (size_t)sprintf(domains + used, "r%u.test, ", i);
    }
    CHECK(make(NULL, domains, NULL) == 0);
    CHECK(route_table_is_relay_domain(rtable, "r1023.test"));
    (void)sprintf(domains + used, "one.more");
    CHECK(make(NULL, domains, NULL) == -E2BIG);
    CHECK_STR(error, "relay_domains: over 1024 domains");
    free(domains);
}

static void
test_routing_precedence(void)
{
    zone_begin();
    a("smart.relay.test", "192.0.2.200");
    mx("relay.test", "10 mx.relay.test");
    a("mx.relay.test", "192.0.2.201");
    a("inner.gateway.test", "10.1.1.1");
    mx("gateway.test", "10 mx.toaster.test");
    mx("gateway.test", "20 lower.gateway.test");
    mx("backup.gateway.test", "10 primary.gateway.test");
    mx("backup.gateway.test", "20 mx.toaster.test");
    a("primary.gateway.test", "10.1.1.2");
    mx("example.org", "10 mx.example.org");
    a("mx.example.org", "192.0.2.202");
    a("mx.toaster.test", "198.51.100.25");
    zone_end();

    CHECK(make("[smart.relay.test]:587", "gateway.test .gateway.test",
               "inner.gateway.test [inner.gateway.test]:2525\n"
               "gateway.test [inner.gateway.test]\n") == 0);
    /* Anything else: the smarthost, resolved without MX. */
    request_reset("example.org");
    request.table = rtable;
    CHECK(resolve() == ROUTE_OK);
    CHECK(result.kind == ROUTE_KIND_RELAY_HOST);
    CHECK(result.hop_count == 1);
    CHECK_STR(result.hops[0].host, "smart.relay.test");
    CHECK(result.hops[0].port == 587);
    CHECK(dns_table_distinct_count(table) == 2); /* A and AAAA, no MX */
    /* A transport entry wins over relay_host. */
    request_reset("gateway.test");
    request.table = rtable;
    CHECK(resolve() == ROUTE_OK);
    CHECK(result.kind == ROUTE_KIND_TRANSPORT);
    CHECK_STR(hop_address(0), "10.1.1.1");
    CHECK(result.hops[0].port == 25);
    /* A relay domain with no transport entry: its own MX, never the
     * smarthost; we are its backup MX. */
    CHECK(route_table_is_relay_domain(rtable, "backup.gateway.test"));
    CHECK(route_table_is_relay_domain(rtable, "GATEWAY.test."));
    CHECK(!route_table_is_relay_domain(rtable, "xgateway.test"));
    request_reset("backup.gateway.test");
    request.table = rtable;
    CHECK(resolve() == ROUTE_OK);
    CHECK(result.kind == ROUTE_KIND_MX);
    CHECK(result.hop_count == 1);
    CHECK_STR(result.hops[0].host, "primary.gateway.test");
    /* An address literal goes to the smarthost too. */
    request_reset("[192.0.2.9]");
    request.table = rtable;
    CHECK(resolve() == ROUTE_OK);
    CHECK(result.kind == ROUTE_KIND_RELAY_HOST);

    /* A configured host that does not resolve: temporary, not a bounce. */
    CHECK(make("[nowhere.test]", NULL, "mx.example.org nowhere2.test\n") == 0);
    request_reset("example.org");
    request.table = rtable;
    CHECK(resolve() == ROUTE_TEMPFAIL);
    CHECK(result.reply_code == 451);
    CHECK_STR(result.enhanced, "4.3.5");
    request_reset("mx.example.org");
    request.table = rtable;
    CHECK(resolve() == ROUTE_TEMPFAIL);
    CHECK_STR(result.enhanced, "4.3.5");
    /* An unbracketed relay host is looked up by MX, and an address
     * literal one not at all; bracketed hosts skip the self check. */
    CHECK(make("relay.test:2526", NULL, "a.test [192.0.2.33]:24\nb.test [mx.toaster.test]\n") ==
          0);
    request_reset("example.org");
    request.table = rtable;
    CHECK(resolve() == ROUTE_OK);
    CHECK_STR(result.hops[0].host, "mx.relay.test");
    CHECK(result.hops[0].port == 2526);
    CHECK(result.hops[0].preference == 10);
    request_reset("a.test");
    request.table = rtable;
    CHECK(resolve() == ROUTE_OK);
    CHECK(dns_table_distinct_count(table) == 0);
    CHECK_STR(result.hops[0].host, "192.0.2.33");
    CHECK(result.hops[0].port == 24);
    request_reset("b.test");
    request.table = rtable;
    CHECK(resolve() == ROUTE_OK);
    CHECK_STR(hop_address(0), "198.51.100.25");
    route_table_destroy(&rtable);
    CHECK(rtable == NULL);
}

int
main(void)
{
    test_mx_preference_order();
    test_equal_preference_shuffle();
    test_implicit_mx_and_failures();
    test_null_mx();
    test_mx_to_self();
    test_families_and_address_bounds();
    test_mx_bounds();
    test_names_and_literals();
    test_nexthop_parse();
    test_transport_parse();
    test_transport_bounds();
    test_routing_precedence();
    dns_table_destroy(&table);
    UNIT_DONE();
}
