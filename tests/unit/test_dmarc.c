/*
 * tests/unit/test_dmarc.c - DMARC (RFC 7489) over a table-backed DNS
 * source and a small public suffix list: the identifier alignment
 * examples of appendix B.1 (SPF and DKIM, strict and relaxed), the
 * domain owner records of B.2 (monitoring, reports, sampling with pct=),
 * record parsing rules of 6.3 (v first, p required with the rua fallback,
 * bad values to defaults, unknown tags, repeats), discovery of 6.6.3
 * (From domain, then organizational domain, sp= for subdomains, several
 * records, DNS failure), the From field forms of 6.6.1 (display names,
 * comments, groups, several addresses and fields), and reruns through a
 * source that answers -EINPROGRESS first.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "filters/dmarc.h"
#include "tests/unit/dns_table.h"
#include "tests/unit/unit.h"

int main(void);

static struct public_suffix *psl;
static struct dns_table *table;

static const struct dns_table_row zone[] = {
    {DNS_TYPE_TXT, "_dmarc.example.com", DNS_STATUS_OK,
     "v=DMARC1; p=reject; sp=quarantine; adkim=r; aspf=r; rua=mailto:dmarc-feedback@example.com"},
    {DNS_TYPE_TXT, "_dmarc.example.com", DNS_STATUS_OK, "some other text"},
    {DNS_TYPE_TXT, "_dmarc.test.example.com", DNS_STATUS_OK,
     "v=DMARC1; p=quarantine; rua=mailto:dmarc-feedback@example.com,"
     "mailto:tld-test@thirdparty.example.net!10m; pct=25"},
    {DNS_TYPE_TXT, "_dmarc.strict.example", DNS_STATUS_OK, "v=DMARC1; p=reject; adkim=s; aspf=s"},
    {DNS_TYPE_TXT, "_dmarc.nosp.example", DNS_STATUS_OK, "v=DMARC1; p=reject"},
    {DNS_TYPE_TXT, "_dmarc.monitor.example", DNS_STATUS_OK,
     "v=DMARC1; p=none; rua=mailto:dmarc-feedback@monitor.example; "
     "ruf=mailto:auth-reports@thirdparty.example.net"},
    {DNS_TYPE_TXT, "_dmarc.two.example", DNS_STATUS_OK, "v=DMARC1; p=reject"},
    {DNS_TYPE_TXT, "_dmarc.two.example", DNS_STATUS_OK, "v=DMARC1; p=none"},
    {DNS_TYPE_TXT, "_dmarc.sub.two.example", DNS_STATUS_OK, "v=DMARC1; p=none"},
    {DNS_TYPE_TXT, "_dmarc.sub.two.example", DNS_STATUS_OK, "v=DMARC1; p=quarantine"},
    {DNS_TYPE_TXT, "_dmarc.bad.example", DNS_STATUS_OK, "v=DMARC1; p=bogus"},
    {DNS_TYPE_TXT, "_dmarc.fallback.example", DNS_STATUS_OK,
     "v=DMARC1; p=bogus; rua=mailto:r@fallback.example"},
    {DNS_TYPE_TXT, "_dmarc.temp.example", DNS_STATUS_TEMPFAIL, NULL},
    {DNS_TYPE_TXT, "_dmarc.sub.temp2.example", DNS_STATUS_OK, "v=DMARC1; p=reject"},
    {DNS_TYPE_TXT, "_dmarc.temp2.example", DNS_STATUS_TEMPFAIL, NULL},
    {DNS_TYPE_TXT, "_dmarc.co.uk", DNS_STATUS_OK, "v=DMARC1; p=reject"},
    {DNS_TYPE_TXT, "_dmarc.shop.co.uk", DNS_STATUS_OK, "v=DMARC1; p=quarantine"},
    {DNS_TYPE_TXT, "_dmarc.xn--bcher-kva.example", DNS_STATUS_OK, "v=DMARC1; p=reject"},
};

static struct dmarc_outcome last;

static enum dmarc_result
evaluate(const char *from, enum spf_result spf, const char *spf_domain, const char *dkim1,
         const char *dkim2, uint32_t roll)
{
    const char *froms[1] = {from};
    const char *dkim[2] = {dkim1, dkim2};
    struct dmarc_request request = {
        .from_values = froms,
        .from_count = from != NULL ? 1 : 0,
        .spf_result = spf,
        .spf_domain = spf_domain,
        .dkim_pass_domains = dkim,
        .dkim_pass_count = dkim2 != NULL   ? 2
                           : dkim1 != NULL ? 1
                                           : 0,
        .pct_roll = roll,
        .psl = psl,
    };
    struct dns_source source = dns_table_source(table);
    dns_table_forget(table);
    dns_table_set_deferred(table, false);
    CHECK(dmarc_evaluate(&request, &source, &last) == 0);
    dns_table_forget(table);
    dns_table_set_deferred(table, true);
    struct dmarc_outcome again;
    int rc;
    int runs = 0;
    do {
        rc = dmarc_evaluate(&request, &source, &again);
        runs++;
    } while (rc == -EINPROGRESS && runs < 10);
    CHECK(rc == 0);
    CHECK(runs <= 3);
    CHECK(again.result == last.result);
    CHECK(again.disposition == last.disposition);
    CHECK_STR(again.reason, last.reason);
    dns_table_set_deferred(table, false);
    return last.result;
}

/* B.1.1 and B.1.2: alignment, relaxed (example.com) and strict. */
static void
test_alignment(void)
{
    /* SPF: MAIL FROM sender@example.com, From sender@example.com. */
    CHECK(evaluate("sender@example.com", SPF_RESULT_PASS, "example.com", NULL, NULL, 0) ==
          DMARC_RESULT_PASS);
    CHECK(last.is_spf_aligned && !last.is_dkim_aligned);
    CHECK(evaluate("sender@strict.example", SPF_RESULT_PASS, "strict.example", NULL, NULL, 0) ==
          DMARC_RESULT_PASS);
    /* MAIL FROM child.example.com: relaxed yes, strict no. */
    CHECK(evaluate("sender@example.com", SPF_RESULT_PASS, "child.example.com", NULL, NULL, 0) ==
          DMARC_RESULT_PASS);
    CHECK(evaluate("sender@strict.example", SPF_RESULT_PASS, "child.strict.example", NULL, NULL,
                   0) == DMARC_RESULT_FAIL);
    CHECK(last.disposition == DMARC_POLICY_REJECT);
    /* MAIL FROM example.org: not aligned. */
    CHECK(evaluate("sender@example.com", SPF_RESULT_PASS, "example.org", NULL, NULL, 0) ==
          DMARC_RESULT_FAIL);
    CHECK(last.policy == DMARC_POLICY_REJECT && last.disposition == DMARC_POLICY_REJECT);
    /* Only an SPF pass counts. */
    CHECK(evaluate("sender@example.com", SPF_RESULT_SOFTFAIL, "example.com", NULL, NULL, 0) ==
          DMARC_RESULT_FAIL);
    CHECK(evaluate("sender@example.com", SPF_RESULT_NEUTRAL, "example.com", NULL, NULL, 0) ==
          DMARC_RESULT_FAIL);
    /* DKIM: d=example.com, From example.com: aligned. */
    CHECK(evaluate("sender@example.com", SPF_RESULT_FAIL, "example.org", "example.com", NULL, 0) ==
          DMARC_RESULT_PASS);
    CHECK(last.is_dkim_aligned && !last.is_spf_aligned);
    CHECK(last.disposition == DMARC_POLICY_NONE);
    /* d=example.com, From child.example.com: relaxed only. */
    CHECK(evaluate("sender@child.example.com", SPF_RESULT_NONE, "", "example.com", NULL, 0) ==
          DMARC_RESULT_PASS);
    CHECK(evaluate("sender@child.strict.example", SPF_RESULT_NONE, "", "strict.example", NULL, 0) ==
          DMARC_RESULT_FAIL);
    /* d=sample.net, From child.example.com: no. */
    CHECK(evaluate("sender@child.example.com", SPF_RESULT_NONE, "", "sample.net", NULL, 0) ==
          DMARC_RESULT_FAIL);
    /* Any one of several signatures is enough; case does not matter. */
    CHECK(evaluate("sender@example.com", SPF_RESULT_NONE, "", "sample.net", "MAIL.Example.COM",
                   0) == DMARC_RESULT_PASS);
    /* Relaxed alignment stops at the public suffix: co.uk is not an org domain. */
    CHECK(evaluate("a@shop.co.uk", SPF_RESULT_PASS, "other.co.uk", "co.uk", NULL, 0) ==
          DMARC_RESULT_FAIL);
    CHECK(evaluate("a@shop.co.uk", SPF_RESULT_PASS, "mail.shop.co.uk", NULL, NULL, 0) ==
          DMARC_RESULT_PASS);
    CHECK_STR(last.org_domain, "shop.co.uk");
}

/* B.2: domain owner records. */
static void
test_owner_examples(void)
{
    /* B.2.1/B.2.2: monitoring only, with aggregate and failure URIs. */
    CHECK(evaluate("a@monitor.example", SPF_RESULT_FAIL, "x.example", NULL, NULL, 0) ==
          DMARC_RESULT_FAIL);
    CHECK(last.policy == DMARC_POLICY_NONE && last.disposition == DMARC_POLICY_NONE);
    CHECK(last.record.rua_count == 1 && last.record.ruf_count == 1);
    CHECK_STR(last.record.rua[0], "mailto:dmarc-feedback@monitor.example");
    CHECK_STR(last.record.ruf[0], "mailto:auth-reports@thirdparty.example.net");
    /* B.2.4: test.example.com, quarantine for 25% of failing mail. */
    CHECK(evaluate("a@test.example.com", SPF_RESULT_FAIL, "x.example", NULL, NULL, 24) ==
          DMARC_RESULT_FAIL);
    CHECK(last.policy == DMARC_POLICY_QUARANTINE && last.disposition == DMARC_POLICY_QUARANTINE);
    CHECK(!last.is_sampled_out && !last.is_sp_used);
    CHECK(last.record.pct == 25 && last.record.rua_count == 2);
    CHECK_STR(last.record.rua[1], "mailto:tld-test@thirdparty.example.net!10m");
    CHECK(evaluate("a@test.example.com", SPF_RESULT_FAIL, "x.example", NULL, NULL, 25) ==
          DMARC_RESULT_FAIL);
    CHECK(last.policy == DMARC_POLICY_QUARANTINE && last.disposition == DMARC_POLICY_NONE);
    CHECK(last.is_sampled_out);
    CHECK(evaluate("a@test.example.com", SPF_RESULT_FAIL, "x.example", NULL, NULL, 0) ==
          DMARC_RESULT_FAIL);
    CHECK(last.disposition == DMARC_POLICY_QUARANTINE);
    CHECK(evaluate("a@test.example.com", SPF_RESULT_FAIL, "x.example", NULL, NULL, 99) ==
          DMARC_RESULT_FAIL);
    CHECK(last.disposition == DMARC_POLICY_NONE);
}

static void
test_discovery(void)
{
    /* A subdomain without its own record: the org domain's, with sp=. */
    CHECK(evaluate("a@child.example.com", SPF_RESULT_FAIL, "x.example", NULL, NULL, 0) ==
          DMARC_RESULT_FAIL);
    CHECK(last.is_sp_used);
    CHECK_STR(last.record_domain, "example.com");
    CHECK(last.policy == DMARC_POLICY_QUARANTINE);
    CHECK(evaluate("a@example.com", SPF_RESULT_FAIL, "x.example", NULL, NULL, 0) ==
          DMARC_RESULT_FAIL);
    CHECK(!last.is_sp_used && last.policy == DMARC_POLICY_REJECT);
    /* No sp=: p applies to subdomains. */
    CHECK(evaluate("a@a.b.nosp.example", SPF_RESULT_FAIL, "x.example", NULL, NULL, 0) ==
          DMARC_RESULT_FAIL);
    CHECK(last.is_sp_used && last.policy == DMARC_POLICY_REJECT);
    /* No record anywhere. */
    CHECK(evaluate("a@nothing.example", SPF_RESULT_PASS, "nothing.example", NULL, NULL, 0) ==
          DMARC_RESULT_NONE);
    CHECK(!last.has_record && last.disposition == DMARC_POLICY_NONE);
    /* Two records at the From domain: no DMARC processing (step 5), the
     * org domain is not consulted. */
    CHECK(evaluate("a@sub.two.example", SPF_RESULT_FAIL, "x.example", NULL, NULL, 0) ==
          DMARC_RESULT_NONE);
    CHECK(strstr(last.reason, "more than one") != NULL);
    CHECK(evaluate("a@two.example", SPF_RESULT_FAIL, "x.example", NULL, NULL, 0) ==
          DMARC_RESULT_NONE);
    /* Bad p= without rua=: invalid record, no policy. */
    CHECK(evaluate("a@bad.example", SPF_RESULT_FAIL, "x.example", NULL, NULL, 0) ==
          DMARC_RESULT_PERMERROR);
    CHECK(last.disposition == DMARC_POLICY_NONE);
    /* Bad p= with a valid rua=: acts as p=none. */
    CHECK(evaluate("a@fallback.example", SPF_RESULT_FAIL, "x.example", NULL, NULL, 0) ==
          DMARC_RESULT_FAIL);
    CHECK(last.record.is_p_fallback && last.policy == DMARC_POLICY_NONE);
    /* DNS trouble: temperror, at either step. */
    CHECK(evaluate("a@temp.example", SPF_RESULT_PASS, "temp.example", NULL, NULL, 0) ==
          DMARC_RESULT_TEMPERROR);
    CHECK(evaluate("a@x.temp2.example", SPF_RESULT_PASS, "temp2.example", NULL, NULL, 0) ==
          DMARC_RESULT_TEMPERROR);
    CHECK(evaluate("a@sub.temp2.example", SPF_RESULT_FAIL, "x.example", NULL, NULL, 0) ==
          DMARC_RESULT_FAIL);
    /* A From domain that is a public suffix is looked up as it is. */
    CHECK(evaluate("a@co.uk", SPF_RESULT_FAIL, "x.example", NULL, NULL, 0) == DMARC_RESULT_FAIL);
    CHECK(!last.is_sp_used && last.policy == DMARC_POLICY_REJECT);
    /* U-label From domains are queried in A-label form. */
    CHECK(evaluate("a@bücher.example", SPF_RESULT_FAIL, "x.example", NULL, NULL, 0) ==
          DMARC_RESULT_FAIL);
    CHECK_STR(last.from_domain, "xn--bcher-kva.example");
    CHECK(evaluate("a@bücher.example", SPF_RESULT_PASS, "xn--bcher-kva.example", NULL, NULL, 0) ==
          DMARC_RESULT_PASS);
}

static void
test_not_evaluable(void)
{
    CHECK(evaluate(NULL, SPF_RESULT_PASS, "example.com", NULL, NULL, 0) == DMARC_RESULT_PERMERROR);
    CHECK_STR(last.reason, "no From field");
    CHECK_STR(last.from_domain, "");
    CHECK(evaluate("a@example.com, b@example.org", SPF_RESULT_PASS, "example.com", NULL, NULL, 0) ==
          DMARC_RESULT_PERMERROR);
    CHECK(evaluate("undisclosed-recipients:;", SPF_RESULT_PASS, "example.com", NULL, NULL, 0) ==
          DMARC_RESULT_PERMERROR);
    CHECK(evaluate("a@[192.0.2.1]", SPF_RESULT_PASS, "example.com", NULL, NULL, 0) ==
          DMARC_RESULT_PERMERROR);
    /* Same domain twice: evaluated. */
    CHECK(evaluate("a@example.com, b@EXAMPLE.com", SPF_RESULT_PASS, "example.com", NULL, NULL, 0) ==
          DMARC_RESULT_PASS);
    const char *two[2] = {"a@example.com", "b@example.com"};
    char domain[256];
    CHECK(dmarc_from_domain(two, 2, domain, sizeof(domain)) == -EMLINK);
}

static void
from_ok(const char *value, const char *want)
{
    const char *v[1] = {value};
    char domain[256];
    int rc = dmarc_from_domain(v, 1, domain, sizeof(domain));
    CHECK(rc == 0);
    if (rc != 0) {
        fprintf(stderr, "  From: %s -> %d\n", value, rc);
        return;
    }
    CHECK_STR(domain, want);
}

static void
from_bad(const char *value, int want)
{
    const char *v[1] = {value};
    char domain[256];
    int rc = dmarc_from_domain(v, 1, domain, sizeof(domain));
    CHECK(rc == want);
    if (rc != want) {
        fprintf(stderr, "  From: %s -> %d (%s), want %d\n", value, rc, domain, want);
    }
}

static void
test_from_forms(void)
{
    from_ok("user@example.com", "example.com");
    from_ok(" user@Example.COM ", "example.com");
    from_ok("John Doe <jdoe@machine.example>", "machine.example");
    from_ok("\"Joe Q. Public\" <john.q.public@example.com>", "example.com");
    from_ok("\"a@b.example, c\" <x@y.example>", "y.example");
    from_ok("Pete(A nice \\) chap) <pete(his account)@silly.test(his host)>", "silly.test");
    from_ok("(comment) user@example.com (another)", "example.com");
    from_ok("Mary Smith <mary@x.test>,\r\n jdoe@x.test", "x.test");
    from_ok("A Group:Ed Jones <c@a.test>,joe@a.test,John <jdoe@a.test>;", "a.test");
    from_ok("<@route.example:user@final.example>", "final.example");
    from_ok("\"quoted@local\"@example.net", "example.net");
    from_ok("user@example.com.", "example.com");
    from_ok("user@bücher.example", "xn--bcher-kva.example");
    from_bad("", -EINVAL);
    from_bad("no address here", -EINVAL);
    from_bad("user@", -EINVAL);
    from_bad("user@exa mple.com", -EINVAL);
    from_bad("user@[IPv6:2001:db8::1]", -EINVAL);
    from_bad("a@x.test, b@y.test", -ENOTUNIQ);
    from_bad("G: a@x.test;, b@y.test", -ENOTUNIQ);
    from_bad("user@a..example", -EINVAL);
    from_bad("((((((((((((((((((((((((((((((((((deep)))))))))))))))))))))))))))))))))) a@b.test",
             -EINVAL);
    const char *v[1] = {NULL};
    char domain[256];
    CHECK(dmarc_from_domain(v, 0, domain, sizeof(domain)) == -ENOENT);
    /* The field bound: max fits, max + 1 does not. */
    char *big = malloc(DMARC_FROM_BYTES_MAX + 2);
    CHECK(big != NULL);
    memset(big, ' ', DMARC_FROM_BYTES_MAX);
    memcpy(big + DMARC_FROM_BYTES_MAX - 13, "a@example.com", 13);
    big[DMARC_FROM_BYTES_MAX] = '\0';
    v[0] = big;
    CHECK(dmarc_from_domain(v, 1, domain, sizeof(domain)) == 0);
    memset(big, ' ', DMARC_FROM_BYTES_MAX + 1);
    memcpy(big + DMARC_FROM_BYTES_MAX + 1 - 13, "a@example.com", 13);
    big[DMARC_FROM_BYTES_MAX + 1] = '\0';
    CHECK(dmarc_from_domain(v, 1, domain, sizeof(domain)) == -EINVAL);
    free(big);
    v[0] = "a@example.com";
    CHECK(dmarc_from_domain(v, 1, domain, 11) == -ENOSPC);
    CHECK(dmarc_from_domain(v, 1, domain, 12) == 0);
}

static void
parse_ok(const char *text, struct dmarc_record *r)
{
    int rc = dmarc_record_parse(text, strlen(text), r);
    CHECK(rc == 0);
    if (rc != 0) {
        fprintf(stderr, "  record refused: %s\n", text);
    }
}

static void
test_record_parsing(void)
{
    struct dmarc_record r;
    parse_ok("v=DMARC1; p=none", &r);
    CHECK(r.p == DMARC_POLICY_NONE && r.sp == DMARC_POLICY_NONE && !r.has_sp);
    CHECK(r.pct == 100 && r.adkim == DMARC_ALIGN_RELAXED && r.aspf == DMARC_ALIGN_RELAXED);
    CHECK(r.fo == DMARC_FO_0 && r.ri_s == 86400);
    parse_ok("v=DMARC1;p=reject;sp=none;adkim=s;aspf=s;pct=0;fo=1:d:s;rf=afrf;ri=3600;", &r);
    CHECK(r.p == DMARC_POLICY_REJECT && r.sp == DMARC_POLICY_NONE && r.has_sp);
    CHECK(r.pct == 0 && r.adkim == DMARC_ALIGN_STRICT && r.aspf == DMARC_ALIGN_STRICT);
    CHECK(r.fo == (DMARC_FO_1 | DMARC_FO_D | DMARC_FO_S) && r.ri_s == 3600);
    parse_ok("v = DMARC1 ;\tp = Quarantine ; ; future=tag ; pct=101; adkim=x; fo=2; ri=-1", &r);
    CHECK(r.p == DMARC_POLICY_QUARANTINE);
    CHECK(r.pct == 100 && r.adkim == DMARC_ALIGN_RELAXED && r.fo == DMARC_FO_0 && r.ri_s == 86400);
    parse_ok("v=DMARC1; p=none; rua=mailto:a@x.test, bogus, mailto:b@x.test!5k, mailto:c@x.test!",
             &r);
    CHECK(r.rua_count == 2);
    CHECK_STR(r.rua[1], "mailto:b@x.test!5k");
    parse_ok("v=DMARC1; p=none; rua=bogus", &r); /* a bad URI is ignored */
    CHECK(r.rua_count == 0);
    parse_ok("v=DMARC1; rua=mailto:a@x.test", &r); /* no p: rua fallback */
    CHECK(r.is_p_fallback && r.p == DMARC_POLICY_NONE);
    parse_ok("v=DMARC1; p=reject; sp=bogus; rua=mailto:a@x.test", &r);
    CHECK(r.is_p_fallback && r.p == DMARC_POLICY_NONE && r.sp == DMARC_POLICY_NONE);
    /* Not DMARC records at all. */
    CHECK(dmarc_record_parse("v=DMARC2; p=none", 16, &r) == -ENOENT);
    CHECK(dmarc_record_parse("v=dmarc1; p=none", 16, &r) == -ENOENT);
    CHECK(dmarc_record_parse("p=none; v=DMARC1", 16, &r) == -ENOENT);
    CHECK(dmarc_record_parse("v=DMARC1 p=none", 15, &r) == -ENOENT);
    CHECK(dmarc_record_parse("", 0, &r) == -ENOENT);
    CHECK(dmarc_record_is_dmarc("v=DMARC1", 8));
    /* DMARC records that are invalid. */
    static const char *const invalid[] = {
        "v=DMARC1",
        "v=DMARC1; p=bogus",
        "v=DMARC1; p=none; p=reject",
        "v=DMARC1; p=none; v=DMARC1",
        "v=DMARC1; p=none; junk",
        "v=DMARC1; p=none; 1x=y",
        "v=DMARC1; p=none; =y",
        "v=DMARC1; sp=reject",
        "v=DMARC1; p=none\x01",
    };
    for (size_t i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++) {
        int rc = dmarc_record_parse(invalid[i], strlen(invalid[i]), &r);
        CHECK(rc == -EINVAL);
        if (rc != -EINVAL) {
            fprintf(stderr, "  invalid record accepted: %s\n", invalid[i]);
        }
    }
    /* Bounds: URIs past DMARC_URIS_MAX are dropped; too many tags. */
    char text[DMARC_RECORD_BYTES_MAX + 64];
    size_t n = (size_t)snprintf(text, sizeof(text), "v=DMARC1; p=none; rua=");
    for (unsigned i = 0; i < DMARC_URIS_MAX + 1; i++) {
        n += (size_t)snprintf(text + n, sizeof(text) - n, "%smailto:r%u@x.test", i ? "," : "", i);
    }
    parse_ok(text, &r);
    CHECK(r.rua_count == DMARC_URIS_MAX);
    n = (size_t)snprintf(text, sizeof(text), "v=DMARC1; p=none");
    for (unsigned i = 0; i < DMARC_TAGS_MAX - 2; i++) {
        n += (size_t)snprintf(text + n, sizeof(text) - n, "; x%u=1", i);
    }
    parse_ok(text, &r); /* exactly DMARC_TAGS_MAX tags */
    (void)snprintf(text + n, sizeof(text) - n, "; y=1");
    CHECK(dmarc_record_parse(text, strlen(text), &r) == -EINVAL);
    memset(text, ' ', sizeof(text));
    memcpy(text, "v=DMARC1; p=none;", 17);
    CHECK(dmarc_record_parse(text, DMARC_RECORD_BYTES_MAX, &r) == 0);
    CHECK(dmarc_record_parse(text, DMARC_RECORD_BYTES_MAX + 1, &r) == -EINVAL);
}

static void
test_pct_roll(void)
{
    unsigned seen_low = 0;
    unsigned seen_high = 0;
    for (int i = 0; i < 2000; i++) {
        uint32_t x = dmarc_pct_roll_random();
        CHECK(x < 100);
        seen_low += x < 50;
        seen_high += x >= 50;
    }
    CHECK(seen_low > 700 && seen_high > 700);
}

int
main(void)
{
    static const char list[] = "com\nnet\norg\nexample\nuk\nco.uk\ntest\n";
    CHECK(public_suffix_load_buffer(list, sizeof(list) - 1, PUBLIC_SUFFIX_ALL, &psl, NULL) == 0);
    table = dns_table_create(zone, sizeof(zone) / sizeof(zone[0]));
    CHECK(table != NULL);
    test_alignment();
    test_owner_examples();
    test_discovery();
    test_not_evaluable();
    test_from_forms();
    test_record_parsing();
    test_pct_roll();
    dns_table_destroy(&table);
    public_suffix_destroy(&psl);
    UNIT_DONE();
}
