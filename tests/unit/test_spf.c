/*
 * tests/unit/test_spf.c - check_host() (RFC 7208) over a table-backed DNS
 * source. Uses the example.com zone of RFC 7208 appendix A with the
 * records of A.1 (simple examples), A.2 (multiple domains), A.3 (DNSBL
 * style) and A.4 (multiple requirements); then each result rule of
 * sections 4-6 (none, multiple records, syntax errors, include and
 * redirect results, exp= only for fail), each limit of 4.6.4 at max and
 * max + 1 (DNS-querying terms, void lookups, MX and PTR names, include and
 * redirect loops), IPv6 and IPv4-mapped clients, DNS failures becoming
 * temperror, the HELO identity and the null sender. Every check is run
 * twice: once with all answers at hand and once with a source that
 * answers -EINPROGRESS to each new question, rerunning until done; both
 * must give the same result, reason and explanation.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "filters/spf.h"
#include "tests/unit/dns_table.h"
#include "tests/unit/unit.h"

int main(void);

#define ROWS_MAX 128

/* RFC 7208 appendix A. */
static const struct dns_table_row zone[] = {
    {DNS_TYPE_MX, "example.com", DNS_STATUS_OK, "10 mail-a.example.com"},
    {DNS_TYPE_MX, "example.com", DNS_STATUS_OK, "20 mail-b.example.com"},
    {DNS_TYPE_A, "example.com", DNS_STATUS_OK, "192.0.2.10"},
    {DNS_TYPE_A, "example.com", DNS_STATUS_OK, "192.0.2.11"},
    {DNS_TYPE_A, "amy.example.com", DNS_STATUS_OK, "192.0.2.65"},
    {DNS_TYPE_A, "bob.example.com", DNS_STATUS_OK, "192.0.2.66"},
    {DNS_TYPE_A, "mail-a.example.com", DNS_STATUS_OK, "192.0.2.129"},
    {DNS_TYPE_A, "mail-b.example.com", DNS_STATUS_OK, "192.0.2.130"},
    {DNS_TYPE_MX, "example.org", DNS_STATUS_OK, "10 mail-c.example.org"},
    {DNS_TYPE_A, "mail-c.example.org", DNS_STATUS_OK, "192.0.2.140"},
    {DNS_TYPE_PTR, "10.2.0.192.in-addr.arpa", DNS_STATUS_OK, "example.com"},
    {DNS_TYPE_PTR, "11.2.0.192.in-addr.arpa", DNS_STATUS_OK, "example.com"},
    {DNS_TYPE_PTR, "65.2.0.192.in-addr.arpa", DNS_STATUS_OK, "amy.example.com"},
    {DNS_TYPE_PTR, "66.2.0.192.in-addr.arpa", DNS_STATUS_OK, "bob.example.com"},
    {DNS_TYPE_PTR, "129.2.0.192.in-addr.arpa", DNS_STATUS_OK, "mail-a.example.com"},
    {DNS_TYPE_PTR, "130.2.0.192.in-addr.arpa", DNS_STATUS_OK, "mail-b.example.com"},
    {DNS_TYPE_PTR, "140.2.0.192.in-addr.arpa", DNS_STATUS_OK, "mail-c.example.org"},
    {DNS_TYPE_PTR, "4.0.0.10.in-addr.arpa", DNS_STATUS_OK, "bob.example.com"},
};

static struct dns_table *table;
static struct dns_table_row rows[ROWS_MAX];
static size_t row_count;

static void
zone_begin(void)
{
    dns_table_destroy(&table);
    row_count = 0;
    for (size_t i = 0; i < sizeof(zone) / sizeof(zone[0]); i++) {
        rows[row_count++] = zone[i];
    }
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
txt(const char *name, const char *text)
{
    add(DNS_TYPE_TXT, name, DNS_STATUS_OK, text);
}

static void
zone_end(void)
{
    table = dns_table_create(rows, row_count);
    if (table == NULL) {
        abort();
    }
}

static struct spf_outcome last;
static size_t last_reruns;

static enum spf_result
check_identity(const char *ip, const char *mail_from, const char *helo, bool is_helo)
{
    struct spf_request request = {
        .helo = helo,
        .mail_from = mail_from,
        .receiver = "mx.example.net",
        .now_s = 1700000000,
    };
    if (spf_ip_parse(ip, &request.ip) != 0) {
        abort();
    }
    struct dns_source source = dns_table_source(table);
    dns_table_forget(table);
    dns_table_set_deferred(table, false);
    int rc = is_helo ? spf_check_helo(&request, &source, &last)
                     : spf_check_mailfrom(&request, &source, &last);
    CHECK(rc == 0);
    /* Again, with every first question answered "in progress". */
    dns_table_forget(table);
    dns_table_set_deferred(table, true);
    struct spf_outcome again;
    size_t runs = 0;
    do {
        rc = is_helo ? spf_check_helo(&request, &source, &again)
                     : spf_check_mailfrom(&request, &source, &again);
        runs++;
    } while (rc == -EINPROGRESS && runs < 200);
    CHECK(rc == 0);
    CHECK(again.result == last.result);
    CHECK_STR(again.reason, last.reason);
    CHECK_STR(again.explanation, last.explanation);
    CHECK(again.dns_mechanisms == last.dns_mechanisms);
    CHECK(again.void_lookups == last.void_lookups);
    /* Cheap reruns: never more runs than distinct questions + 1. */
    CHECK(runs <= dns_table_distinct_count(table) + 1);
    last_reruns = runs - 1;
    dns_table_set_deferred(table, false);
    return last.result;
}

static enum spf_result
check(const char *ip, const char *mail_from)
{
    return check_identity(ip, mail_from, "helo.example.net", false);
}

/* Check one record of A.1 published at example.com. */
static void
a1(const char *record, const char *ip, enum spf_result want)
{
    zone_begin();
    txt("example.com", record);
    zone_end();
    enum spf_result got = check(ip, "user@example.com");
    CHECK(got == want);
    if (got != want) {
        fprintf(stderr, "  %s from %s: got %s (%s), want %s\n", record, ip, spf_result_name(got),
                last.reason, spf_result_name(want));
    }
}

static void
test_appendix_a1(void)
{
    a1("v=spf1 +all", "192.0.2.1", SPF_RESULT_PASS);
    a1("v=spf1 +all", "2001:db8::1", SPF_RESULT_PASS);
    a1("v=spf1 a -all", "192.0.2.10", SPF_RESULT_PASS);
    a1("v=spf1 a -all", "192.0.2.11", SPF_RESULT_PASS);
    a1("v=spf1 a -all", "192.0.2.12", SPF_RESULT_FAIL);
    a1("v=spf1 a:example.org -all", "192.0.2.140", SPF_RESULT_FAIL);
    a1("v=spf1 a:example.org -all", "192.0.2.10", SPF_RESULT_FAIL);
    a1("v=spf1 mx -all", "192.0.2.129", SPF_RESULT_PASS);
    a1("v=spf1 mx -all", "192.0.2.130", SPF_RESULT_PASS);
    a1("v=spf1 mx -all", "192.0.2.140", SPF_RESULT_FAIL);
    a1("v=spf1 mx:example.org -all", "192.0.2.140", SPF_RESULT_PASS);
    a1("v=spf1 mx:example.org -all", "192.0.2.129", SPF_RESULT_FAIL);
    a1("v=spf1 mx mx:example.org -all", "192.0.2.129", SPF_RESULT_PASS);
    a1("v=spf1 mx mx:example.org -all", "192.0.2.130", SPF_RESULT_PASS);
    a1("v=spf1 mx mx:example.org -all", "192.0.2.140", SPF_RESULT_PASS);
    a1("v=spf1 mx mx:example.org -all", "192.0.2.10", SPF_RESULT_FAIL);
    a1("v=spf1 mx/30 mx:example.org/30 -all", "192.0.2.131", SPF_RESULT_PASS);
    a1("v=spf1 mx/30 mx:example.org/30 -all", "192.0.2.128", SPF_RESULT_PASS);
    a1("v=spf1 mx/30 mx:example.org/30 -all", "192.0.2.143", SPF_RESULT_PASS);
    a1("v=spf1 mx/30 mx:example.org/30 -all", "192.0.2.144", SPF_RESULT_FAIL);
    a1("v=spf1 mx/30 mx:example.org/30 -all", "192.0.2.127", SPF_RESULT_FAIL);
    a1("v=spf1 ptr -all", "192.0.2.65", SPF_RESULT_PASS);  /* amy.example.com */
    a1("v=spf1 ptr -all", "192.0.2.140", SPF_RESULT_FAIL); /* valid, not example.com */
    a1("v=spf1 ptr -all", "10.0.0.4", SPF_RESULT_FAIL);    /* bob is not 10.0.0.4 */
    a1("v=spf1 ptr -all", "192.0.2.10", SPF_RESULT_PASS);  /* example.com itself */
    a1("v=spf1 ip4:192.0.2.128/28 -all", "192.0.2.65", SPF_RESULT_FAIL);
    a1("v=spf1 ip4:192.0.2.128/28 -all", "192.0.2.129", SPF_RESULT_PASS);
    CHECK(last.dns_mechanisms == 0);
}

static void
test_appendix_a2(void)
{
    /* A.2: sub-domains redirect to one record, which includes others. */
    zone_begin();
    txt("example.org", "v=spf1 include:example.com include:example.net -all");
    txt("la.example.org", "v=spf1 redirect=example.org");
    txt("ny.example.org", "v=spf1 redirect=example.org");
    txt("sf.example.org", "v=spf1 redirect=example.org");
    txt("example.com", "v=spf1 mx -all");
    txt("example.net", "v=spf1 ip4:198.51.100.0/24 -all");
    zone_end();
    CHECK(check("192.0.2.129", "user@la.example.org") == SPF_RESULT_PASS);
    CHECK(last.dns_mechanisms == 3); /* redirect, include, mx */
    CHECK(check("198.51.100.7", "user@ny.example.org") == SPF_RESULT_PASS);
    CHECK(last.dns_mechanisms == 4);
    CHECK(check("192.0.2.65", "user@sf.example.org") == SPF_RESULT_FAIL);
    CHECK(strstr(last.reason, "example.org") != NULL);
    CHECK(check("192.0.2.130", "user@example.org") == SPF_RESULT_PASS);
    CHECK_STR(last.domain, "example.org");
}

static void
test_appendix_a3(void)
{
    /* A.3: DNSBL-style lists of users and of (user, address) pairs. */
    zone_begin();
    txt("example.com",
        "v=spf1 mx include:mobile-users._spf.%{d} include:remote-users._spf.%{d} -all");
    txt("mobile-users._spf.example.com", "v=spf1 exists:%{l1r+}.%{d}");
    txt("remote-users._spf.example.com", "v=spf1 exists:%{ir}.%{l1r+}.%{d}");
    add(DNS_TYPE_A, "mary.mobile-users._spf.example.com", DNS_STATUS_OK, "127.0.0.2");
    add(DNS_TYPE_A, "fred.mobile-users._spf.example.com", DNS_STATUS_OK, "127.0.0.2");
    add(DNS_TYPE_A, "15.15.168.192.joel.remote-users._spf.example.com", DNS_STATUS_OK, "127.0.0.2");
    add(DNS_TYPE_A, "16.15.168.192.joel.remote-users._spf.example.com", DNS_STATUS_OK, "127.0.0.2");
    zone_end();
    CHECK(check("203.0.113.9", "mary@example.com") == SPF_RESULT_PASS);
    CHECK(check("203.0.113.9", "fred+bulk@example.com") == SPF_RESULT_PASS);
    CHECK(check("192.168.15.15", "joel@example.com") == SPF_RESULT_PASS);
    CHECK(check("192.168.15.16", "joel@example.com") == SPF_RESULT_PASS);
    CHECK(check("192.168.15.17", "joel@example.com") == SPF_RESULT_FAIL);
    CHECK(check("203.0.113.9", "joe@example.com") == SPF_RESULT_FAIL);
    CHECK(check("192.0.2.129", "anyone@example.com") == SPF_RESULT_PASS);
}

static void
test_appendix_a4(void)
{
    /* A.4 as published: both includes are negated. Under RFC 7208 5.2 an
     * included "fail" is merely "no match", so an address inside
     * 192.0.2.0/24 falls through to the ptr test, whose <domain> is
     * ptr._spf.example.com, which amy.example.com is not in: "+all"
     * there passes, "-include" matches, and the result is fail. Every
     * address fails; we check that the evaluator gets there. */
    zone_begin();
    txt("example.com", "v=spf1 -include:ip4._spf.%{d} -include:ptr._spf.%{d} +all");
    txt("ip4._spf.example.com", "v=spf1 -ip4:192.0.2.0/24 +all");
    txt("ptr._spf.example.com", "v=spf1 -ptr +all");
    zone_end();
    CHECK(check("192.0.2.65", "user@example.com") == SPF_RESULT_FAIL);
    CHECK(strstr(last.reason, "-include:ptr._spf.%{d}") != NULL);
    CHECK(check("10.0.0.4", "user@example.com") == SPF_RESULT_FAIL);
    CHECK(strstr(last.reason, "-include:ip4._spf.%{d}") != NULL);
}

static void
test_results(void)
{
    zone_begin();
    txt("two.example.net", "v=spf1 -all");
    txt("two.example.net", "v=spf1 +all");
    txt("other.example.net", "spf2.0/pra +all");
    txt("other.example.net", "some other text");
    txt("syntax.example.net", "v=spf1 ip4:192.0.2.1 foo:bar -all");
    txt("late-syntax.example.net", "v=spf1 +all ip4:300.1.1.1");
    txt("neutral.example.net", "v=spf1 ip4:192.0.2.1");
    txt("soft.example.net", "v=spf1 ~all");
    txt("q.example.net", "v=spf1 ?all");
    txt("inc-none.example.net", "v=spf1 include:other.example.net -all");
    txt("inc-nx.example.net", "v=spf1 include:nx.example.net -all");
    txt("inc-fail.example.net", "v=spf1 include:soft.example.net ip4:192.0.2.99 -all");
    txt("inc-perm.example.net", "v=spf1 include:syntax.example.net +all");
    txt("redir-none.example.net", "v=spf1 redirect=other.example.net");
    txt("redir-all.example.net", "v=spf1 redirect=neutral.example.net ~all");
    txt("redir-bad.example.net", "v=spf1 redirect=%{l}.example.net");
    txt("unknown-mod.example.net", "v=spf1 foo=bar.%{d} -all");
    txt("upper.example.net", "V=SPF1 IP4:192.0.2.1 -ALL");
    txt("empty.example.net", "v=spf1");
    txt("long-target.example.net",
        "v=spf1 a:%{o}%{o}%{o}%{o}%{o}%{o}%{o}%{o}%{o}.example.net -all");
    zone_end();
    CHECK(check("192.0.2.1", "a@two.example.net") == SPF_RESULT_PERMERROR);
    CHECK(strstr(last.reason, "more than one") != NULL);
    CHECK(check("192.0.2.1", "a@other.example.net") == SPF_RESULT_NONE);
    CHECK(check("192.0.2.1", "a@nx.example.net") == SPF_RESULT_NONE);
    CHECK(check("192.0.2.1", "a@amy.example.com") == SPF_RESULT_NONE); /* NODATA */
    CHECK(check("192.0.2.1", "a@localhost") == SPF_RESULT_NONE);       /* single label */
    CHECK(check("192.0.2.1", "a@[192.0.2.1]") == SPF_RESULT_NONE);
    CHECK(check("192.0.2.1", "a@bad..example.net") == SPF_RESULT_NONE);
    /* A syntax error anywhere, even after a match, is permerror. */
    CHECK(check("192.0.2.1", "a@syntax.example.net") == SPF_RESULT_PERMERROR);
    CHECK(strstr(last.reason, "foo:bar") != NULL);
    CHECK(check("192.0.2.1", "a@late-syntax.example.net") == SPF_RESULT_PERMERROR);
    CHECK(check("192.0.2.1", "a@neutral.example.net") == SPF_RESULT_PASS);
    CHECK(check("192.0.2.2", "a@neutral.example.net") == SPF_RESULT_NEUTRAL);
    CHECK(check("192.0.2.2", "a@empty.example.net") == SPF_RESULT_NEUTRAL);
    CHECK(check("192.0.2.2", "a@soft.example.net") == SPF_RESULT_SOFTFAIL);
    CHECK(check("192.0.2.2", "a@q.example.net") == SPF_RESULT_NEUTRAL);
    CHECK(check("192.0.2.1", "a@inc-none.example.net") == SPF_RESULT_PERMERROR);
    CHECK(check("192.0.2.1", "a@inc-nx.example.net") == SPF_RESULT_PERMERROR);
    CHECK(check("192.0.2.99", "a@inc-fail.example.net") == SPF_RESULT_PASS);
    CHECK(check("192.0.2.1", "a@inc-fail.example.net") == SPF_RESULT_FAIL);
    CHECK(check("192.0.2.1", "a@inc-perm.example.net") == SPF_RESULT_PERMERROR);
    CHECK(check("192.0.2.1", "a@redir-none.example.net") == SPF_RESULT_PERMERROR);
    CHECK(check("192.0.2.1", "a@redir-all.example.net") == SPF_RESULT_SOFTFAIL);
    /* redirect to "x.example.net" built from a local-part with no record. */
    CHECK(check("192.0.2.1", "x@redir-bad.example.net") == SPF_RESULT_PERMERROR);
    CHECK(check("192.0.2.1", "a@unknown-mod.example.net") == SPF_RESULT_FAIL);
    CHECK(check("192.0.2.1", "A@UPPER.Example.NET") == SPF_RESULT_PASS);
    CHECK_STR(last.domain, "upper.example.net");
    CHECK(check("192.0.2.2", "a@upper.example.net.") == SPF_RESULT_FAIL);
    /* An expanded name over 253 octets loses labels on the left (7.3). */
    CHECK(check("192.0.2.2", "a@long-target.example.net") == SPF_RESULT_FAIL);
    /* A sender with no local-part is postmaster (4.3). */
    CHECK(check("192.0.2.2", "@soft.example.net") == SPF_RESULT_SOFTFAIL);
    CHECK_STR(last.sender, "postmaster@soft.example.net");
}

static void
test_exp(void)
{
    zone_begin();
    txt("e.example.net", "v=spf1 ip4:192.0.2.1 ~ip4:192.0.2.2 -all exp=explain.%{d}");
    txt("explain.e.example.net", "%{i} is not one of %{d}'s designated mail servers.");
    txt("e2.example.net", "v=spf1 -all exp=two.example.net");
    txt("two.example.net", "one");
    txt("two.example.net", "two");
    txt("e3.example.net", "v=spf1 -all exp=nx.example.net");
    txt("e4.example.net", "v=spf1 -all exp=bad.example.net");
    txt("bad.example.net", "100% wrong");
    txt("e5.example.net", "v=spf1 redirect=e.example.net exp=never.example.net");
    txt("never.example.net", "never used");
    txt("e6.example.net", "v=spf1 include:e.example.net -all exp=six.example.net");
    txt("six.example.net", "See http://%{d}/why.html?s=%{S}&i=%{C}%_from %{r} at %{t}");
    txt("e7.example.net", "v=spf1 -all exp=ptr.example.net");
    txt("ptr.example.net", "%{p} is not allowed");
    zone_end();
    CHECK(check("192.0.2.3", "a@e.example.net") == SPF_RESULT_FAIL);
    CHECK_STR(last.explanation, "192.0.2.3 is not one of e.example.net's designated mail servers.");
    CHECK(check("192.0.2.2", "a@e.example.net") == SPF_RESULT_SOFTFAIL);
    CHECK_STR(last.explanation, "");
    CHECK(check("192.0.2.1", "a@e.example.net") == SPF_RESULT_PASS);
    CHECK_STR(last.explanation, "");
    CHECK(check("192.0.2.3", "a@e2.example.net") == SPF_RESULT_FAIL);
    CHECK_STR(last.explanation, ""); /* two TXT records: no explanation */
    CHECK(check("192.0.2.3", "a@e3.example.net") == SPF_RESULT_FAIL);
    CHECK_STR(last.explanation, "");
    CHECK(check("192.0.2.3", "a@e4.example.net") == SPF_RESULT_FAIL);
    CHECK_STR(last.explanation, ""); /* bad macro: no explanation */
    CHECK(strstr(last.reason, "-all") != NULL);
    /* After redirect the target's exp= applies, not the first record's. */
    CHECK(check("192.0.2.3", "a@e5.example.net") == SPF_RESULT_FAIL);
    CHECK_STR(last.explanation, "192.0.2.3 is not one of e.example.net's designated mail servers.");
    /* An included record's exp= is not used; the outer one is. */
    CHECK(check("192.0.2.3", "a+b@e6.example.net") == SPF_RESULT_FAIL);
    CHECK_STR(last.explanation,
              "See http://e6.example.net/why.html?s=a%2Bb%40e6.example.net&i=192.0.2.3 "
              "from mx.example.net at 1700000000");
    CHECK(check("192.0.2.65", "a@e7.example.net") == SPF_RESULT_FAIL);
    CHECK_STR(last.explanation, "amy.example.com is not allowed");
    CHECK(check("192.0.2.99", "a@e7.example.net") == SPF_RESULT_FAIL);
    CHECK_STR(last.explanation, "unknown is not allowed");
}

static void
test_dns_mechanism_limit(void)
{
    zone_begin();
    static char names[12][32];
    for (int i = 0; i < 12; i++) {
        (void)snprintf(names[i], sizeof(names[i]), "h%d.example.net", i + 1);
        add(DNS_TYPE_A, names[i], DNS_STATUS_OK, "198.51.100.1");
    }
    txt("ten.example.net", "v=spf1 a:h1.example.net a:h2.example.net a:h3.example.net "
                           "a:h4.example.net a:h5.example.net a:h6.example.net "
                           "a:h7.example.net a:h8.example.net a:h9.example.net "
                           "a:h10.example.net ip4:192.0.2.1 -all");
    txt("eleven.example.net", "v=spf1 a:h1.example.net a:h2.example.net a:h3.example.net "
                              "a:h4.example.net a:h5.example.net a:h6.example.net "
                              "a:h7.example.net a:h8.example.net a:h9.example.net "
                              "a:h10.example.net a:h11.example.net ip4:192.0.2.1 -all");
    /* Includes and redirect count too: 1 + 9 includes/exists = 10, then the redirect. */
    txt("chain.example.net", "v=spf1 include:c1.example.net include:c2.example.net "
                             "include:c3.example.net a:h5.example.net "
                             "mx:example.com a:h3.example.net redirect=c4.example.net");
    txt("c1.example.net", "v=spf1 a:h1.example.net ?ip4:192.0.2.250");
    txt("c2.example.net", "v=spf1 a:h2.example.net ?ip4:192.0.2.250");
    txt("c3.example.net", "v=spf1 ptr ?ip4:192.0.2.250");
    txt("c4.example.net", "v=spf1 ip4:192.0.2.1 -all");
    txt("chain11.example.net", "v=spf1 include:c1.example.net include:c2.example.net "
                               "include:c3.example.net a:h5.example.net "
                               "mx:example.com a:h3.example.net a:h4.example.net "
                               "redirect=c4.example.net");
    txt("loop.example.net", "v=spf1 redirect=loop.example.net");
    txt("iloop.example.net", "v=spf1 include:iloop2.example.net -all");
    txt("iloop2.example.net", "v=spf1 include:iloop.example.net -all");
    /* ip4, ip6, all and exp= do not count. */
    txt("cheap.example.net", "v=spf1 ip4:10.0.0.1 ip4:10.0.0.2 ip4:10.0.0.3 ip4:10.0.0.4 "
                             "ip4:10.0.0.5 ip4:10.0.0.6 ip4:10.0.0.7 ip4:10.0.0.8 "
                             "ip4:10.0.0.9 ip4:10.0.0.10 ip4:10.0.0.11 ip6:::1 "
                             "ip4:192.0.2.1 -all");
    zone_end();
    CHECK(check("192.0.2.1", "a@ten.example.net") == SPF_RESULT_PASS);
    CHECK(last.dns_mechanisms == 10);
    CHECK(check("192.0.2.1", "a@eleven.example.net") == SPF_RESULT_PERMERROR);
    CHECK(strstr(last.reason, "a:h11.example.net") != NULL);
    CHECK(last.dns_mechanisms == 11);
    CHECK(check("192.0.2.1", "a@chain.example.net") == SPF_RESULT_PASS);
    CHECK(last.dns_mechanisms == 10);
    CHECK(check("192.0.2.1", "a@chain11.example.net") == SPF_RESULT_PERMERROR);
    CHECK(check("192.0.2.1", "a@loop.example.net") == SPF_RESULT_PERMERROR);
    CHECK(last.dns_mechanisms == 11);
    CHECK(check("192.0.2.1", "a@iloop.example.net") == SPF_RESULT_PERMERROR);
    CHECK(check("192.0.2.1", "a@cheap.example.net") == SPF_RESULT_PASS);
    CHECK(last.dns_mechanisms == 0);
    /* The count is per run: the same check twice gives the same numbers. */
    CHECK(check("192.0.2.1", "a@ten.example.net") == SPF_RESULT_PASS);
    CHECK(last.dns_mechanisms == 10);
}

static void
test_void_limit(void)
{
    zone_begin();
    txt("two-void.example.net", "v=spf1 a:v1.example.net mx:v2.example.net ip4:192.0.2.1 -all");
    txt("three-void.example.net",
        "v=spf1 a:v1.example.net mx:v2.example.net exists:v3.example.net ip4:192.0.2.1 -all");
    txt("nodata-void.example.net", "v=spf1 mx:amy.example.com a:example.org exists:v3.example.net "
                                   "ip4:192.0.2.1 -all");
    txt("ptr-void.example.net", "v=spf1 a:v1.example.net a:v2.example.net ptr ip4:192.0.2.1 -all");
    zone_end();
    CHECK(check("192.0.2.1", "a@two-void.example.net") == SPF_RESULT_PASS);
    CHECK(last.void_lookups == 2);
    CHECK(check("192.0.2.1", "a@three-void.example.net") == SPF_RESULT_PERMERROR);
    CHECK(last.void_lookups == 3);
    CHECK(strstr(last.reason, "void") != NULL);
    /* NODATA counts as void too (mx of amy, a of example.org, exists). */
    CHECK(check("192.0.2.1", "a@nodata-void.example.net") == SPF_RESULT_PERMERROR);
    /* No PTR record for 192.0.2.1: the third void lookup. */
    CHECK(check("192.0.2.1", "a@ptr-void.example.net") == SPF_RESULT_PERMERROR);
}

static void
test_mx_ptr_limits(void)
{
    zone_begin();
    static char hosts[11][32];
    static char mx[11][48];
    for (int i = 0; i < 11; i++) {
        (void)snprintf(hosts[i], sizeof(hosts[i]), "m%d.example.net", i + 1);
        (void)snprintf(mx[i], sizeof(mx[i]), "%d m%d.example.net", i + 1, i + 1);
        add(DNS_TYPE_A, hosts[i], DNS_STATUS_OK, "198.51.100.1");
        add(DNS_TYPE_MX, i < 10 ? "mx10.example.net" : "mx11.example.net", DNS_STATUS_OK, mx[i]);
    }
    for (int i = 0; i < 10; i++) {
        add(DNS_TYPE_MX, "mx11.example.net", DNS_STATUS_OK, mx[i]);
    }
    add(DNS_TYPE_A, "m10.example.net", DNS_STATUS_OK, "192.0.2.1");
    txt("mx10.example.net", "v=spf1 mx -all");
    txt("mx11.example.net", "v=spf1 mx -all");
    txt("nullmx.example.net", "v=spf1 mx ip4:192.0.2.1 -all");
    add(DNS_TYPE_MX, "nullmx.example.net", DNS_STATUS_OK, "0 .");
    /* 11 PTR names for 192.0.2.200; the only valid one is 10th or 11th. */
    static char ptr_names[11][40];
    for (int i = 0; i < 11; i++) {
        (void)snprintf(ptr_names[i], sizeof(ptr_names[i]), "p%d.ptr.example.net", i + 1);
        add(DNS_TYPE_PTR, "200.2.0.192.in-addr.arpa", DNS_STATUS_OK, ptr_names[i]);
        add(DNS_TYPE_PTR, "201.2.0.192.in-addr.arpa", DNS_STATUS_OK, ptr_names[i]);
        add(DNS_TYPE_A, ptr_names[i], DNS_STATUS_OK, "198.51.100.2");
    }
    add(DNS_TYPE_A, "p10.ptr.example.net", DNS_STATUS_OK, "192.0.2.201");
    add(DNS_TYPE_A, "p11.ptr.example.net", DNS_STATUS_OK, "192.0.2.200");
    txt("ptr.example.net", "v=spf1 ptr -all");
    zone_end();
    CHECK(check("192.0.2.1", "a@mx10.example.net") == SPF_RESULT_PASS);
    CHECK(check("192.0.2.1", "a@mx11.example.net") == SPF_RESULT_PERMERROR);
    CHECK(strstr(last.reason, "MX names") != NULL);
    CHECK(check("192.0.2.1", "a@nullmx.example.net") == SPF_RESULT_PASS);
    CHECK(check("192.0.2.201", "a@ptr.example.net") == SPF_RESULT_PASS); /* 10th name */
    CHECK(check("192.0.2.200", "a@ptr.example.net") == SPF_RESULT_FAIL); /* 11th ignored */
    /* The ten MX address lookups were asked together: few reruns. */
    CHECK(check("192.0.2.1", "a@mx10.example.net") == SPF_RESULT_PASS);
    CHECK(last_reruns == 3); /* TXT, MX, then all ten A at once */
}

static void
test_dns_errors(void)
{
    zone_begin();
    add(DNS_TYPE_TXT, "temp.example.net", DNS_STATUS_TEMPFAIL, NULL);
    add(DNS_TYPE_TXT, "perm.example.net", DNS_STATUS_PERMFAIL, NULL);
    txt("inc-temp.example.net", "v=spf1 include:temp.example.net -all");
    txt("a-temp.example.net", "v=spf1 a:ta.example.net -all");
    add(DNS_TYPE_A, "ta.example.net", DNS_STATUS_TEMPFAIL, NULL);
    txt("mx-temp.example.net", "v=spf1 mx -all");
    add(DNS_TYPE_MX, "mx-temp.example.net", DNS_STATUS_TEMPFAIL, NULL);
    txt("mxhost-temp.example.net", "v=spf1 mx -all");
    add(DNS_TYPE_MX, "mxhost-temp.example.net", DNS_STATUS_OK, "10 ta.example.net");
    txt("exists-temp.example.net", "v=spf1 exists:ta.example.net -all");
    txt("redir-temp.example.net", "v=spf1 redirect=temp.example.net");
    /* A PTR error makes ptr not match (5.5); it does not tempfail. */
    txt("ptr-temp.example.net", "v=spf1 ptr -all");
    add(DNS_TYPE_PTR, "77.2.0.192.in-addr.arpa", DNS_STATUS_TEMPFAIL, NULL);
    /* A matching mechanism before the failing one wins. */
    txt("first.example.net", "v=spf1 ip4:192.0.2.77 a:ta.example.net -all");
    zone_end();
    CHECK(check("192.0.2.77", "a@temp.example.net") == SPF_RESULT_TEMPERROR);
    CHECK(check("192.0.2.77", "a@perm.example.net") == SPF_RESULT_TEMPERROR);
    CHECK(check("192.0.2.77", "a@inc-temp.example.net") == SPF_RESULT_TEMPERROR);
    CHECK(check("192.0.2.77", "a@a-temp.example.net") == SPF_RESULT_TEMPERROR);
    CHECK(check("192.0.2.77", "a@mx-temp.example.net") == SPF_RESULT_TEMPERROR);
    CHECK(check("192.0.2.77", "a@mxhost-temp.example.net") == SPF_RESULT_TEMPERROR);
    CHECK(check("192.0.2.77", "a@exists-temp.example.net") == SPF_RESULT_TEMPERROR);
    CHECK(check("192.0.2.77", "a@redir-temp.example.net") == SPF_RESULT_TEMPERROR);
    CHECK(check("192.0.2.77", "a@ptr-temp.example.net") == SPF_RESULT_FAIL);
    CHECK(check("192.0.2.77", "a@first.example.net") == SPF_RESULT_PASS);
}

static void
test_ipv6(void)
{
    zone_begin();
    txt("v6.example.net", "v=spf1 ip6:2001:db8::/32 -all");
    txt("v4only.example.net", "v=spf1 ip4:0.0.0.0/0 -all");
    txt("a6.example.net", "v=spf1 a:host6.example.net//64 -all");
    add(DNS_TYPE_AAAA, "host6.example.net", DNS_STATUS_OK, "2001:db8:1::1");
    add(DNS_TYPE_A, "host6.example.net", DNS_STATUS_OK, "192.0.2.6");
    txt("a6cidr.example.net", "v=spf1 a:host6.example.net/24 -all");
    txt("mx6.example.net", "v=spf1 mx -all");
    add(DNS_TYPE_MX, "mx6.example.net", DNS_STATUS_OK, "10 host6.example.net");
    txt("ptr6.example.net", "v=spf1 ptr -all");
    add(DNS_TYPE_PTR, "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa",
        DNS_STATUS_OK, "host6.ptr6.example.net");
    add(DNS_TYPE_AAAA, "host6.ptr6.example.net", DNS_STATUS_OK, "2001:db8:1::1");
    txt("exists6.example.net", "v=spf1 exists:%{ir}.%{v}.list.example.net -all");
    add(DNS_TYPE_A,
        "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2.ip6.list.example.net",
        DNS_STATUS_OK, "127.0.0.2");
    txt("mapped.example.net", "v=spf1 ip4:192.0.2.0/24 -all");
    zone_end();
    CHECK(check("2001:db8::cb01", "a@v6.example.net") == SPF_RESULT_PASS);
    CHECK(check("2001:db9::1", "a@v6.example.net") == SPF_RESULT_FAIL);
    CHECK(check("192.0.2.1", "a@v6.example.net") == SPF_RESULT_FAIL);
    CHECK(check("2001:db8::1", "a@v4only.example.net") == SPF_RESULT_FAIL);
    CHECK(check("2001:db8:1::ffff", "a@a6.example.net") == SPF_RESULT_PASS);
    CHECK(check("2001:db8:2::1", "a@a6.example.net") == SPF_RESULT_FAIL);
    CHECK(check("192.0.2.6", "a@a6.example.net") == SPF_RESULT_PASS); /* /32 for IPv4 */
    CHECK(check("192.0.2.7", "a@a6.example.net") == SPF_RESULT_FAIL);
    CHECK(check("192.0.2.7", "a@a6cidr.example.net") == SPF_RESULT_PASS);
    CHECK(check("2001:db8:1::2", "a@a6cidr.example.net") == SPF_RESULT_FAIL); /* /128 */
    CHECK(check("2001:db8:1::1", "a@mx6.example.net") == SPF_RESULT_PASS);
    CHECK(check("2001:db8:1::1", "a@ptr6.example.net") == SPF_RESULT_PASS);
    CHECK(check("2001:db8:1::1", "a@exists6.example.net") == SPF_RESULT_PASS);
    CHECK(check("2001:db8:1::2", "a@exists6.example.net") == SPF_RESULT_FAIL);
    /* An IPv4-mapped address is treated as the IPv4 address (section 5). */
    CHECK(check("::ffff:192.0.2.10", "a@mapped.example.net") == SPF_RESULT_PASS);
    CHECK(check("::ffff:198.51.100.1", "a@mapped.example.net") == SPF_RESULT_FAIL);
    struct sockaddr_in6 sin6 = {.sin6_family = AF_INET6};
    CHECK(inet_pton(AF_INET6, "::ffff:192.0.2.10", &sin6.sin6_addr) == 1);
    struct spf_ip ip;
    CHECK(spf_ip_from_sockaddr((const struct sockaddr *)&sin6, &ip) == 0);
    CHECK(!ip.is_v6 && ip.bytes[0] == 192 && ip.bytes[3] == 10);
    CHECK(inet_pton(AF_INET6, "2001:db8::1", &sin6.sin6_addr) == 1);
    CHECK(spf_ip_from_sockaddr((const struct sockaddr *)&sin6, &ip) == 0);
    CHECK(ip.is_v6 && ip.bytes[0] == 0x20 && ip.bytes[15] == 1);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr = {htonl(0xc0000201)}};
    CHECK(spf_ip_from_sockaddr((const struct sockaddr *)&sin, &ip) == 0);
    CHECK(!ip.is_v6 && ip.bytes[0] == 192 && ip.bytes[3] == 1);
    struct sockaddr unix_sa = {.sa_family = AF_UNIX};
    CHECK(spf_ip_from_sockaddr(&unix_sa, &ip) == -EAFNOSUPPORT);
    CHECK(spf_ip_parse("192.0.2", &ip) == -EINVAL);
}

static void
test_helo_and_null_sender(void)
{
    zone_begin();
    txt("mail-a.example.com", "v=spf1 a -all");
    zone_end();
    CHECK(check_identity("192.0.2.129", "user@nx.example.net", "mail-a.example.com", true) ==
          SPF_RESULT_PASS);
    CHECK(last.identity == SPF_IDENTITY_HELO);
    CHECK_STR(last.domain, "mail-a.example.com");
    CHECK_STR(last.sender, "postmaster@mail-a.example.com");
    CHECK(check_identity("192.0.2.130", "", "mail-a.example.com", true) == SPF_RESULT_FAIL);
    CHECK(check_identity("192.0.2.129", "", "[192.0.2.129]", true) == SPF_RESULT_NONE);
    CHECK(check_identity("192.0.2.129", "", "localhost", true) == SPF_RESULT_NONE);
    CHECK(check_identity("192.0.2.129", "", "", true) == SPF_RESULT_NONE);
    /* Null MAIL FROM: the MAIL FROM identity is postmaster@HELO (2.4). */
    CHECK(check_identity("192.0.2.129", "", "mail-a.example.com", false) == SPF_RESULT_PASS);
    CHECK(last.identity == SPF_IDENTITY_MAILFROM);
    CHECK(last.is_null_sender);
    CHECK_STR(last.sender, "postmaster@mail-a.example.com");
    CHECK_STR(last.domain, "mail-a.example.com");
    /* Bounds of the inputs. */
    char long_from[SPF_SENDER_BYTES_MAX + 8];
    memset(long_from, 'a', sizeof(long_from) - 1);
    long_from[sizeof(long_from) - 1] = '\0';
    CHECK(check_identity("192.0.2.129", long_from, "x.example.net", false) == SPF_RESULT_NONE);
    char fits[SPF_SENDER_BYTES_MAX];
    memset(fits, 'a', sizeof(fits) - 1);
    fits[sizeof(fits) - 1] = '\0';
    memcpy(fits + sizeof(fits) - 1 - 19, "@mail-a.example.com", 19);
    CHECK(check_identity("192.0.2.129", fits, "x.example.net", false) == SPF_RESULT_PASS);
}

static void
test_received_spf(void)
{
    zone_begin();
    txt("example.com", "v=spf1 mx -all");
    zone_end();
    struct spf_request request = {
        .helo = "mail-a.example.com",
        .mail_from = "us\"er@example.com",
        .receiver = "mx.example.net",
    };
    CHECK(spf_ip_parse("192.0.2.129", &request.ip) == 0);
    struct dns_source source = dns_table_source(table);
    struct spf_outcome out;
    CHECK(spf_check_mailfrom(&request, &source, &out) == 0);
    CHECK(out.result == SPF_RESULT_PASS);
    char header[1024];
    int n = spf_received_spf_header(&request, &out, header, sizeof(header));
    CHECK(n > 0);
    CHECK_STR(header, "Received-SPF: pass (pass matched 'mx' in the record of example.com)\r\n"
                      "\tclient-ip=192.0.2.129; envelope-from=\"us\\\"er@example.com\";\r\n"
                      "\thelo=\"mail-a.example.com\"; identity=mailfrom; "
                      "receiver=\"mx.example.net\"\r\n");
    CHECK(spf_received_spf_header(&request, &out, header, 100) == -ENOSPC);
    /* Long HELO and receiver: cut inside their quoted strings, never past the buffer. */
    static char long_name[1200];
    memset(long_name, 'h', sizeof(long_name) - 1);
    request.helo = long_name;
    request.receiver = long_name;
    static char big[8192];
    n = spf_received_spf_header(&request, &out, big, sizeof(big));
    CHECK(n > 0 && (size_t)n == strlen(big));
    CHECK(n > 0 && big[n - 1] == '\n');
    CHECK(spf_received_spf_header(&request, &out, big, 2000) == -ENOSPC);
}

int
main(void)
{
    test_appendix_a1();
    test_appendix_a2();
    test_appendix_a3();
    test_appendix_a4();
    test_results();
    test_exp();
    test_dns_mechanism_limit();
    test_void_limit();
    test_mx_ptr_limits();
    test_dns_errors();
    test_ipv6();
    test_helo_and_null_sender();
    test_received_spf();
    dns_table_destroy(&table);
    UNIT_DONE();
}
