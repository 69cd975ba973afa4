/*
 * tests/unit/test_public_suffix.c - the Public Suffix List table: the
 * list's own test vectors (publicsuffix.org test_psl.txt, the cases that
 * the 2023 list still has) against the installed list, normal, wildcard
 * and exception rules, IDN rules matched in both U-label and A-label form
 * (Punycode checked against RFC 3492 samples), the PRIVATE section on and
 * off, and the load bounds (line length, rule count, file size) at max and
 * max + 1, from small lists in memory.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "filters/public_suffix.h"
#include "tests/unit/unit.h"

int main(void);

static struct public_suffix *ps;

/* want NULL: the name is a public suffix (or invalid) and has no
 * organizational domain. */
static void
org(const char *name, const char *want)
{
    char out[PUBLIC_SUFFIX_NAME_BYTES_MAX + 1];
    int rc = public_suffix_org_domain(ps, name, out, sizeof(out));
    if (want == NULL) {
        CHECK(rc == 1 || rc == -EINVAL);
        if (!(rc == 1 || rc == -EINVAL)) {
            fprintf(stderr, "  %s: got %d %s, want none\n", name, rc, out);
        }
        return;
    }
    CHECK(rc == 0);
    if (rc != 0) {
        fprintf(stderr, "  %s: got %d, want %s\n", name, rc, want);
        return;
    }
    CHECK_STR(out, want);
}

static void
test_psl_vectors(void)
{
    unsigned line = 0;
    int rc = public_suffix_load(PUBLIC_SUFFIX_FILE_DEFAULT, PUBLIC_SUFFIX_ALL, &ps, &line);
    CHECK(rc == 0); /* the Debian package "publicsuffix" must be installed */
    if (rc != 0) {
        fprintf(stderr, "  cannot load %s: %s (line %u)\n", PUBLIC_SUFFIX_FILE_DEFAULT,
                strerror(-rc), line);
        return;
    }
    CHECK(public_suffix_rule_count(ps) > 9000);
    /* Mixed case. */
    org("COM", NULL);
    org("example.COM", "example.com");
    org("WwW.example.COM", "example.com");
    /* Leading dot / empty labels: invalid. */
    org(".com", NULL);
    org(".example", NULL);
    org(".example.com", NULL);
    org("example..com", NULL);
    /* Unlisted TLD. */
    org("example", NULL);
    org("example.example", "example.example");
    org("b.example.example", "example.example");
    org("a.b.example.example", "example.example");
    /* TLD with only one rule. */
    org("biz", NULL);
    org("domain.biz", "domain.biz");
    org("b.domain.biz", "domain.biz");
    org("a.b.domain.biz", "domain.biz");
    /* TLD with some two-level rules. */
    org("com", NULL);
    org("example.com", "example.com");
    org("b.example.com", "example.com");
    org("a.b.example.com", "example.com");
    org("uk.com", NULL);
    org("example.uk.com", "example.uk.com");
    org("b.example.uk.com", "example.uk.com");
    org("a.b.example.uk.com", "example.uk.com");
    org("test.ac", "test.ac");
    /* TLD with only one wildcard rule. */
    org("mm", NULL);
    org("c.mm", NULL);
    org("b.c.mm", "b.c.mm");
    org("a.b.c.mm", "b.c.mm");
    /* More complex TLD. */
    org("jp", NULL);
    org("test.jp", "test.jp");
    org("www.test.jp", "test.jp");
    org("ac.jp", NULL);
    org("test.ac.jp", "test.ac.jp");
    org("www.test.ac.jp", "test.ac.jp");
    org("kyoto.jp", NULL);
    org("test.kyoto.jp", "test.kyoto.jp");
    org("ide.kyoto.jp", NULL);
    org("b.ide.kyoto.jp", "b.ide.kyoto.jp");
    org("a.b.ide.kyoto.jp", "b.ide.kyoto.jp");
    org("c.kobe.jp", NULL);
    org("b.c.kobe.jp", "b.c.kobe.jp");
    org("a.b.c.kobe.jp", "b.c.kobe.jp");
    org("city.kobe.jp", "city.kobe.jp");
    org("www.city.kobe.jp", "city.kobe.jp");
    /* TLD with a wildcard rule and exceptions. */
    org("ck", NULL);
    org("test.ck", NULL);
    org("b.test.ck", "b.test.ck");
    org("a.b.test.ck", "b.test.ck");
    org("www.ck", "www.ck");
    org("www.www.ck", "www.ck");
    /* US K12. */
    org("us", NULL);
    org("test.us", "test.us");
    org("www.test.us", "test.us");
    org("ak.us", NULL);
    org("test.ak.us", "test.ak.us");
    org("www.test.ak.us", "test.ak.us");
    org("k12.ak.us", NULL);
    org("test.k12.ak.us", "test.k12.ak.us");
    org("www.test.k12.ak.us", "test.k12.ak.us");
    /* IDN labels, as U-labels and as A-labels; results in A-label form. */
    org("食狮.com.cn", "xn--85x722f.com.cn");
    org("食狮.公司.cn", "xn--85x722f.xn--55qx5d.cn");
    org("www.食狮.公司.cn", "xn--85x722f.xn--55qx5d.cn");
    org("shishi.公司.cn", "shishi.xn--55qx5d.cn");
    org("公司.cn", NULL);
    org("食狮.中国", "xn--85x722f.xn--fiqs8s");
    org("www.食狮.中国", "xn--85x722f.xn--fiqs8s");
    org("shishi.中国", "shishi.xn--fiqs8s");
    org("中国", NULL);
    org("xn--85x722f.com.cn", "xn--85x722f.com.cn");
    org("xn--85x722f.xn--55qx5d.cn", "xn--85x722f.xn--55qx5d.cn");
    org("www.xn--85x722f.xn--55qx5d.cn", "xn--85x722f.xn--55qx5d.cn");
    org("shishi.xn--55qx5d.cn", "shishi.xn--55qx5d.cn");
    org("xn--55qx5d.cn", NULL);
    org("xn--85x722f.xn--fiqs8s", "xn--85x722f.xn--fiqs8s");
    org("www.xn--85x722f.xn--fiqs8s", "xn--85x722f.xn--fiqs8s");
    org("shishi.xn--fiqs8s", "shishi.xn--fiqs8s");
    org("xn--fiqs8s", NULL);
    /* A final dot is allowed. */
    org("www.example.com.", "example.com");
    /* PRIVATE section: on by default, as in libpsl. */
    org("foo.blogspot.com", "foo.blogspot.com");
    org("www.foo.github.io", "foo.github.io");
    char suffix[256];
    CHECK(public_suffix_suffix(ps, "a.b.c.kobe.jp", suffix, sizeof(suffix)) == 0);
    CHECK_STR(suffix, "c.kobe.jp");
    CHECK(public_suffix_suffix(ps, "www.city.kobe.jp", suffix, sizeof(suffix)) == 0);
    CHECK_STR(suffix, "kobe.jp");
    CHECK(public_suffix_suffix(ps, "x.example", suffix, sizeof(suffix)) == 0);
    CHECK_STR(suffix, "example");
    CHECK(public_suffix_suffix(ps, "a.example.com", suffix, 3) == -ENOSPC);
    public_suffix_destroy(&ps);
    CHECK(ps == NULL);

    CHECK(public_suffix_load(PUBLIC_SUFFIX_FILE_DEFAULT, PUBLIC_SUFFIX_ICANN_ONLY, &ps, NULL) == 0);
    org("foo.blogspot.com", "blogspot.com");
    org("www.foo.github.io", "github.io");
    org("a.b.c.kobe.jp", "b.c.kobe.jp");
    public_suffix_destroy(&ps);
}

static void
test_normalize(void)
{
    char out[256];
    /* RFC 3492 section 7.1 and common samples. */
    CHECK(public_suffix_normalize("bücher.example", out, sizeof(out)) == 0);
    CHECK_STR(out, "xn--bcher-kva.example");
    CHECK(public_suffix_normalize("münchen.DE.", out, sizeof(out)) == 0);
    CHECK_STR(out, "xn--mnchen-3ya.de");
    CHECK(public_suffix_normalize("例え.テスト", out, sizeof(out)) == 0);
    CHECK_STR(out, "xn--r8jz45g.xn--zckzah");
    CHECK(public_suffix_normalize("", out, sizeof(out)) == -EINVAL);
    CHECK(public_suffix_normalize(".", out, sizeof(out)) == -EINVAL);
    CHECK(public_suffix_normalize("a b.com", out, sizeof(out)) == -EINVAL);
    CHECK(public_suffix_normalize("\xff.com", out, sizeof(out)) == -EINVAL);
    CHECK(public_suffix_normalize("example.com", out, 11) == -ENOSPC);
    CHECK(public_suffix_normalize("example.com", out, 12) == 0);
    /* Label of 63 octets, then 64; name of 253, then 254. */
    char name[300];
    memset(name, 'a', 63);
    memcpy(name + 63, ".com", 5);
    CHECK(public_suffix_normalize(name, out, sizeof(out)) == 0);
    memset(name, 'a', 64);
    memcpy(name + 64, ".com", 5);
    CHECK(public_suffix_normalize(name, out, sizeof(out)) == -EINVAL);
    /* 4 labels of 62 and 4 dots = 252, then "c" = 253, "cc" = 254. */
    size_t k = 0;
    for (int i = 0; i < 4; i++) {
        memset(name + k, 'b', 62);
        k += 62;
        name[k++] = '.';
    }
    memcpy(name + k, "c", 2);
    CHECK(strlen(name) == 253);
    CHECK(public_suffix_normalize(name, out, sizeof(out)) == 0);
    memcpy(name + k, "cc", 3);
    CHECK(public_suffix_normalize(name, out, sizeof(out)) == -EINVAL);
}

static int
load_text(const char *text, unsigned flags, unsigned *line)
{
    public_suffix_destroy(&ps);
    return public_suffix_load_buffer(text, strlen(text), flags, &ps, line);
}

static void
test_small_lists(void)
{
    unsigned line = 0;
    CHECK(load_text("// comment\n\ncom\n*.ck\n!www.ck\nfoo.com   trailing words\r\n"
                    "// ===BEGIN PRIVATE DOMAINS===\nprivate.com\n"
                    "// ===END PRIVATE DOMAINS===\n",
                    PUBLIC_SUFFIX_ALL, &line) == 0);
    CHECK(public_suffix_rule_count(ps) == 5);
    org("a.foo.com", "a.foo.com");
    org("b.a.foo.com", "a.foo.com");
    org("x.private.com", "x.private.com");
    org("x.y.ck", "x.y.ck");
    org("www.ck", "www.ck");
    CHECK(load_text("com\n// ===BEGIN PRIVATE DOMAINS===\nprivate.com\n", PUBLIC_SUFFIX_ICANN_ONLY,
                    &line) == 0);
    CHECK(public_suffix_rule_count(ps) == 1);
    org("x.private.com", "private.com");
    /* A duplicate rule merges; wildcard and normal on one name both count. */
    CHECK(load_text("com\ncom\n*.com\n", PUBLIC_SUFFIX_ALL, &line) == 0);
    CHECK(public_suffix_rule_count(ps) == 2);
    org("a.b.com", "a.b.com");
    /* An empty list: every TLD is a public suffix (the "*" rule). */
    CHECK(load_text("", PUBLIC_SUFFIX_ALL, &line) == 0);
    org("a.b.example", "b.example");
    /* Bad rules name their line. */
    CHECK(load_text("com\nfoo..com\n", PUBLIC_SUFFIX_ALL, &line) == -EINVAL);
    CHECK(line == 2);
    CHECK(ps == NULL);
    CHECK(load_text("com\nnet\na.*.com\n", PUBLIC_SUFFIX_ALL, &line) == -EINVAL);
    CHECK(line == 3);
    /* Line length: max is fine, max + 1 is an error. */
    char *text = malloc(PUBLIC_SUFFIX_LINE_BYTES_MAX + 8);
    CHECK(text != NULL);
    memset(text, 'x', PUBLIC_SUFFIX_LINE_BYTES_MAX);
    memcpy(text, "//", 2);
    text[PUBLIC_SUFFIX_LINE_BYTES_MAX] = '\n';
    text[PUBLIC_SUFFIX_LINE_BYTES_MAX + 1] = '\0';
    CHECK(load_text(text, PUBLIC_SUFFIX_ALL, &line) == 0);
    memset(text, 'x', PUBLIC_SUFFIX_LINE_BYTES_MAX + 1);
    memcpy(text, "//", 2);
    text[PUBLIC_SUFFIX_LINE_BYTES_MAX + 1] = '\n';
    text[PUBLIC_SUFFIX_LINE_BYTES_MAX + 2] = '\0';
    CHECK(load_text(text, PUBLIC_SUFFIX_ALL, &line) == -EINVAL);
    CHECK(line == 1);
    free(text);
    /* Rule count: max is fine, max + 1 is -E2BIG. */
    size_t bytes = (PUBLIC_SUFFIX_RULES_MAX + 1) * 8 + 1;
    text = malloc(bytes);
    CHECK(text != NULL);
    size_t used = 0;
    for (unsigned i = 0; i < PUBLIC_SUFFIX_RULES_MAX; i++) {
        used += (size_t)snprintf(text + used, bytes - used, "r%u\n", i);
    }
    CHECK(public_suffix_load_buffer(text, used, PUBLIC_SUFFIX_ALL, &ps, &line) == 0);
    CHECK(public_suffix_rule_count(ps) == PUBLIC_SUFFIX_RULES_MAX);
    org("a.b.r99999", "b.r99999");
    public_suffix_destroy(&ps);
    used += (size_t)snprintf(text + used, bytes - used, "extra\n");
    CHECK(public_suffix_load_buffer(text, used, PUBLIC_SUFFIX_ALL, &ps, &line) == -E2BIG);
    CHECK(line == PUBLIC_SUFFIX_RULES_MAX + 1);
    free(text);
    /* File size. */
    text = calloc(1, PUBLIC_SUFFIX_FILE_BYTES_MAX + 1);
    CHECK(text != NULL);
    memset(text, '\n', PUBLIC_SUFFIX_FILE_BYTES_MAX + 1);
    CHECK(public_suffix_load_buffer(text, PUBLIC_SUFFIX_FILE_BYTES_MAX, PUBLIC_SUFFIX_ALL, &ps,
                                    NULL) == 0);
    public_suffix_destroy(&ps);
    CHECK(public_suffix_load_buffer(text, PUBLIC_SUFFIX_FILE_BYTES_MAX + 1, PUBLIC_SUFFIX_ALL, &ps,
                                    NULL) == -EFBIG);
    free(text);
    CHECK(public_suffix_load("/nonexistent/psl.dat", 0, &ps, NULL) == -ENOENT);
}

int
main(void)
{
    test_psl_vectors();
    test_normalize();
    test_small_lists();
    public_suffix_destroy(&ps);
    UNIT_DONE();
}
