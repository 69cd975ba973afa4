/*
 * tests/unit/test_spf_macro.c - SPF macro expansion (RFC 7208 section 7):
 * every example of section 7.4 for IPv4 and IPv6, URL escaping of upper
 * case letters, %%, %_ and %-, the exp-only letters c, r and t, the
 * -EAGAIN hand-back for %{p}, and the syntax errors (bad letter, zero
 * transformer, unclosed brace, lone percent sign) plus the output bound.
 */
#include <errno.h>
#include <string.h>

#include "filters/spf_macro.h"
#include "tests/unit/unit.h"

int main(void);

static struct spf_macro_context ctx;

static void
set_context(const char *ip)
{
    memset(&ctx, 0, sizeof(ctx));
    ctx.sender = "strong-bad@email.example.com";
    ctx.local_part = "strong-bad";
    ctx.sender_domain = "email.example.com";
    ctx.domain = "email.example.com";
    ctx.helo = "mx.example.org";
    ctx.ptr_name = "mx.example.org";
    ctx.receiver = "mx.example.net";
    ctx.now_s = 1700000000;
    CHECK(spf_ip_parse(ip, &ctx.ip) == 0);
}

static void
check_expand(const char *in, enum spf_macro_mode mode, const char *want)
{
    char out[1024];
    size_t len = 0;
    int rc = spf_macro_expand(in, strlen(in), mode, &ctx, out, sizeof(out), &len);
    CHECK(rc == 0);
    if (rc != 0) {
        fprintf(stderr, "  expanding %s gave %d\n", in, rc);
        return;
    }
    CHECK(len == strlen(out));
    CHECK_STR(out, want);
    CHECK(spf_macro_check(in, strlen(in), mode, NULL) == 0);
}

static void
check_bad(const char *in, enum spf_macro_mode mode)
{
    char out[256];
    CHECK(spf_macro_expand(in, strlen(in), mode, &ctx, out, sizeof(out), NULL) == -EINVAL);
    CHECK(spf_macro_check(in, strlen(in), mode, NULL) == -EINVAL);
    CHECK(out[0] == '\0');
}

/* RFC 7208 7.4, the single-macro table. */
static void
test_rfc_table(void)
{
    set_context("192.0.2.3");
    check_expand("%{s}", SPF_MACRO_DOMAIN, "strong-bad@email.example.com");
    check_expand("%{o}", SPF_MACRO_DOMAIN, "email.example.com");
    check_expand("%{d}", SPF_MACRO_DOMAIN, "email.example.com");
    check_expand("%{d4}", SPF_MACRO_DOMAIN, "email.example.com");
    check_expand("%{d3}", SPF_MACRO_DOMAIN, "email.example.com");
    check_expand("%{d2}", SPF_MACRO_DOMAIN, "example.com");
    check_expand("%{d1}", SPF_MACRO_DOMAIN, "com");
    check_expand("%{dr}", SPF_MACRO_DOMAIN, "com.example.email");
    check_expand("%{d2r}", SPF_MACRO_DOMAIN, "example.email");
    check_expand("%{l}", SPF_MACRO_DOMAIN, "strong-bad");
    check_expand("%{l-}", SPF_MACRO_DOMAIN, "strong.bad");
    check_expand("%{lr}", SPF_MACRO_DOMAIN, "strong-bad");
    check_expand("%{lr-}", SPF_MACRO_DOMAIN, "bad.strong");
    check_expand("%{l1r-}", SPF_MACRO_DOMAIN, "strong");
}

/* RFC 7208 7.4, the macro-string table, IPv4 then IPv6. */
static void
test_rfc_strings(void)
{
    set_context("192.0.2.3");
    check_expand("%{ir}.%{v}._spf.%{d2}", SPF_MACRO_DOMAIN, "3.2.0.192.in-addr._spf.example.com");
    check_expand("%{lr-}.lp._spf.%{d2}", SPF_MACRO_DOMAIN, "bad.strong.lp._spf.example.com");
    check_expand("%{lr-}.lp.%{ir}.%{v}._spf.%{d2}", SPF_MACRO_DOMAIN,
                 "bad.strong.lp.3.2.0.192.in-addr._spf.example.com");
    check_expand("%{ir}.%{v}.%{l1r-}.lp._spf.%{d2}", SPF_MACRO_DOMAIN,
                 "3.2.0.192.in-addr.strong.lp._spf.example.com");
    check_expand("%{d2}.trusted-domains.example.net", SPF_MACRO_DOMAIN,
                 "example.com.trusted-domains.example.net");
    set_context("2001:db8::cb01");
    check_expand(
        "%{ir}.%{v}._spf.%{d2}", SPF_MACRO_DOMAIN,
        "1.0.b.c.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6._spf.example.com");
    check_expand("%{i}", SPF_MACRO_DOMAIN,
                 "2.0.0.1.0.d.b.8.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.c.b.0.1");
    check_expand("%{v}", SPF_MACRO_DOMAIN, "ip6");
}

static void
test_escapes_and_letters(void)
{
    set_context("192.0.2.3");
    /* Upper case letters are URL-escaped after expansion (7.3). */
    check_expand("%{S}", SPF_MACRO_DOMAIN, "strong-bad%40email.example.com");
    check_expand("%{L}", SPF_MACRO_DOMAIN, "strong-bad");
    check_expand("%{D2R}", SPF_MACRO_DOMAIN, "example.email");
    check_expand("%%", SPF_MACRO_DOMAIN, "%");
    check_expand("a%_b", SPF_MACRO_DOMAIN, "a b");
    check_expand("a%-b", SPF_MACRO_DOMAIN, "a%20b");
    check_expand("%{h}", SPF_MACRO_DOMAIN, "mx.example.org");
    check_expand("%{p}", SPF_MACRO_DOMAIN, "mx.example.org");
    check_expand("%{p2}", SPF_MACRO_DOMAIN, "example.org");
    check_expand("%{i}", SPF_MACRO_DOMAIN, "192.0.2.3");
    check_expand("%{c}", SPF_MACRO_EXPLAIN, "192.0.2.3");
    check_expand("%{r}", SPF_MACRO_EXPLAIN, "mx.example.net");
    check_expand("%{t}", SPF_MACRO_EXPLAIN, "1700000000");
    check_expand("%{d9}", SPF_MACRO_DOMAIN, "email.example.com");
    check_expand("%{d1000}", SPF_MACRO_DOMAIN, "email.example.com"); /* clamped */
    check_expand("%{l+-}", SPF_MACRO_DOMAIN, "strong.bad");
    check_expand("%{s=}", SPF_MACRO_DOMAIN, "strong-bad@email.example.com");
    check_expand("%{sr}", SPF_MACRO_DOMAIN, "com.example.strong-bad@email");
    check_expand("%{s2r-.}", SPF_MACRO_DOMAIN, "bad@email.strong");
    check_expand("", SPF_MACRO_DOMAIN, "");
    check_expand("%{i} is not one of %{d}'s designated mail servers.", SPF_MACRO_EXPLAIN,
                 "192.0.2.3 is not one of email.example.com's designated mail servers.");
    ctx.receiver = NULL;
    check_expand("%{r}", SPF_MACRO_EXPLAIN, "unknown");
    set_context("2001:db8::cb01");
    check_expand("%{c}", SPF_MACRO_EXPLAIN, "2001:db8::cb01");
    check_expand("%{C}", SPF_MACRO_EXPLAIN, "2001%3Adb8%3A%3Acb01");
}

static void
test_errors(void)
{
    set_context("192.0.2.3");
    check_bad("%", SPF_MACRO_DOMAIN);
    check_bad("a%", SPF_MACRO_DOMAIN);
    check_bad("%x", SPF_MACRO_DOMAIN);
    check_bad("%{", SPF_MACRO_DOMAIN);
    check_bad("%{d", SPF_MACRO_DOMAIN);
    check_bad("%{x}", SPF_MACRO_DOMAIN);
    check_bad("%{}", SPF_MACRO_DOMAIN);
    check_bad("%{d0}", SPF_MACRO_DOMAIN); /* the digit transformer is nonzero */
    check_bad("%{d2x}", SPF_MACRO_DOMAIN);
    check_bad("%{dr2}", SPF_MACRO_DOMAIN);
    check_bad("%{s@}", SPF_MACRO_DOMAIN); /* '@' is no delimiter */
    check_bad("%{c}", SPF_MACRO_DOMAIN);  /* c, r, t only in exp text */
    check_bad("%{r}", SPF_MACRO_DOMAIN);
    check_bad("%{t}", SPF_MACRO_DOMAIN);
    check_bad("a b", SPF_MACRO_DOMAIN); /* SP only in explain-string */
    check_bad("a\tb", SPF_MACRO_EXPLAIN);
    check_bad("\x80", SPF_MACRO_DOMAIN);
    /* %{p} without a resolved name hands back to the evaluator. */
    ctx.ptr_name = NULL;
    char out[64];
    CHECK(spf_macro_expand("%{p}", 4, SPF_MACRO_DOMAIN, &ctx, out, sizeof(out), NULL) == -EAGAIN);
    CHECK(spf_macro_uses_ptr("x.%{p}", 6));
    CHECK(spf_macro_uses_ptr("%{P}", 4));
    CHECK(!spf_macro_uses_ptr("%%{p}", 5));
    CHECK(!spf_macro_uses_ptr("%{d}", 4));
    /* The output bound: exactly full works, one byte less is -ENOSPC. */
    set_context("192.0.2.3");
    char small[18];
    size_t len = 0;
    CHECK(spf_macro_expand("%{o}", 4, SPF_MACRO_DOMAIN, &ctx, small, 18, &len) == 0);
    CHECK(len == 17);
    CHECK(spf_macro_expand("%{o}", 4, SPF_MACRO_DOMAIN, &ctx, small, 17, &len) == -ENOSPC);
    CHECK(small[0] == '\0');
    /* Macro-string syntax: what ends a domain-spec. */
    bool ends = false;
    CHECK(spf_macro_check("%{d}", 4, SPF_MACRO_DOMAIN, &ends) == 0);
    CHECK(ends);
    CHECK(spf_macro_check("%{d}.com", 8, SPF_MACRO_DOMAIN, &ends) == 0);
    CHECK(!ends);
    CHECK(spf_macro_check("x%%", 3, SPF_MACRO_DOMAIN, &ends) == 0);
    CHECK(ends);
}

int
main(void)
{
    test_rfc_table();
    test_rfc_strings();
    test_escapes_and_letters();
    test_errors();
    UNIT_DONE();
}
