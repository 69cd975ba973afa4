/*
 * tests/unit/test_auth_results.c - the Authentication-Results field (RFC
 * 8601): exact output for DKIM + SPF + DMARC, "none" with nothing to
 * report, the null sender reported as smtp.helo, quoting of values that
 * are not tokens (header.b with '/', '+', '='), folding of long results,
 * sanitising of hostile selectors and reasons (CR, LF, parentheses), the
 * output bound, and recognising our own authserv-id (RFC 8601 5) in
 * folded, commented and quoted forms without being fooled by prefixes.
 */
#include <errno.h>
#include <string.h>

#include "filters/auth_results.h"
#include "tests/unit/unit.h"

int main(void);

static void
test_full(void)
{
    struct auth_results_dkim dkim[2] = {
        {.result = AUTH_RESULTS_DKIM_PASS,
         .domain = "example.org",
         .selector = "sel1",
         .algorithm = "rsa-sha256",
         .b = "abcdefghijklmnop"},
        {.result = AUTH_RESULTS_DKIM_FAIL,
         .domain = "example.net",
         .selector = "s2",
         .b = "ab/+cd=efgh",
         .reason = "body hash mismatch"},
    };
    struct spf_outcome spf = {.result = SPF_RESULT_PASS, .identity = SPF_IDENTITY_MAILFROM};
    strcpy(spf.domain, "example.org");
    struct dmarc_outcome dmarc = {.result = DMARC_RESULT_PASS,
                                  .has_record = true,
                                  .policy = DMARC_POLICY_REJECT,
                                  .disposition = DMARC_POLICY_NONE};
    strcpy(dmarc.from_domain, "example.org");
    struct auth_results_input in = {.authserv_id = "mx.example.com",
                                    .dkim = dkim,
                                    .dkim_count = 2,
                                    .spf = &spf,
                                    .dmarc = &dmarc};
    char out[2048];
    int n = auth_results_format(&in, out, sizeof(out));
    const char *want = "Authentication-Results: mx.example.com;\r\n"
                       "\tdkim=pass header.d=example.org header.s=sel1 header.a=rsa-sha256\r\n"
                       "\theader.b=abcdefgh;\r\n"
                       "\tdkim=fail (body hash mismatch) header.d=example.net header.s=s2\r\n"
                       "\theader.b=\"ab/+cd=e\";\r\n"
                       "\tspf=pass smtp.mailfrom=example.org;\r\n"
                       "\tdmarc=pass (p=reject dis=none) header.from=example.org\r\n";
    CHECK(n == (int)strlen(want));
    CHECK_STR(out, want);
    /* Every line is at most 78 octets here. */
    const char *line = out;
    while (*line != '\0') {
        const char *end = strstr(line, "\r\n");
        CHECK(end != NULL);
        if (end == NULL) {
            break;
        }
        CHECK(end - line <= 78);
        line = end + 2;
    }
    /* The bound: exactly enough, then one byte less. */
    CHECK(auth_results_format(&in, out, (size_t)n + 1) == n);
    CHECK(auth_results_format(&in, out, (size_t)n) == -ENOSPC);
    CHECK(out[0] == '\0');
}

static void
test_none_and_helo(void)
{
    struct auth_results_input in = {.authserv_id = "mx.example.com"};
    char out[512];
    CHECK(auth_results_format(&in, out, sizeof(out)) > 0);
    CHECK_STR(out, "Authentication-Results: mx.example.com; none\r\n");
    in.authserv_id = "";
    CHECK(auth_results_format(&in, out, sizeof(out)) == -EINVAL);

    struct spf_outcome spf = {
        .result = SPF_RESULT_SOFTFAIL, .identity = SPF_IDENTITY_MAILFROM, .is_null_sender = true};
    strcpy(spf.domain, "mail.example.org");
    struct dmarc_outcome dmarc = {.result = DMARC_RESULT_PERMERROR};
    in = (struct auth_results_input){.authserv_id = "mx.example.com", .spf = &spf, .dmarc = &dmarc};
    CHECK(auth_results_format(&in, out, sizeof(out)) > 0);
    CHECK_STR(out, "Authentication-Results: mx.example.com;\r\n"
                   "\tspf=softfail smtp.helo=mail.example.org;\r\n"
                   "\tdmarc=permerror\r\n");
    struct dmarc_outcome sampled = {.result = DMARC_RESULT_FAIL,
                                    .has_record = true,
                                    .policy = DMARC_POLICY_REJECT,
                                    .disposition = DMARC_POLICY_QUARANTINE};
    strcpy(sampled.from_domain, "example.org");
    in = (struct auth_results_input){.authserv_id = "mx example", .dmarc = &sampled};
    CHECK(auth_results_format(&in, out, sizeof(out)) > 0);
    CHECK_STR(out, "Authentication-Results: \"mx example\";\r\n"
                   "\tdmarc=fail (p=reject dis=quarantine) header.from=example.org\r\n");
}

static void
test_hostile_values(void)
{
    struct auth_results_dkim dkim = {
        .result = AUTH_RESULTS_DKIM_PERMERROR,
        .domain = "evil.example\r\nX-Injected: yes",
        .selector = "s\"e\\l(x)",
        .reason = "bad (unbalanced\r\nBcc: victim@example.com",
        .b = "\r\n\r\n\r\n",
    };
    struct auth_results_input in = {
        .authserv_id = "mx.example.com", .dkim = &dkim, .dkim_count = 1};
    char out[2048];
    int n = auth_results_format(&in, out, sizeof(out));
    CHECK(n > 0);
    /* No CR or LF except the folding ones, each followed by a tab. */
    for (int i = 0; i < n; i++) {
        if (out[i] == '\r') {
            CHECK(i + 2 < n ? out[i + 1] == '\n' && out[i + 2] == '\t' : i == n - 2);
        }
        if (out[i] == '\n') {
            CHECK(i > 0 && out[i - 1] == '\r');
        }
    }
    CHECK(strstr(out, "\nX-Injected") == NULL);
    CHECK(strstr(out, "\nBcc") == NULL);
    CHECK(strstr(out, "(bad [unbalancedBcc: victim@example.com)") != NULL);
    CHECK(strstr(out, "header.d=\"evil.example??X-Injected: yes\"") != NULL);
    CHECK(strstr(out, "header.s=\"s\\\"e\\\\l(x)\"") != NULL);
    CHECK(strstr(out, "header.b=\"??????\"") != NULL);
    /* Parentheses balance outside quoted strings. */
    int depth = 0;
    bool in_quote = false;
    for (int i = 0; i < n; i++) {
        if (in_quote) {
            if (out[i] == '\\') {
                i++;
            } else if (out[i] == '"') {
                in_quote = false;
            }
            continue;
        }
        if (out[i] == '"') {
            in_quote = true;
        } else if (out[i] == '(') {
            depth++;
        } else if (out[i] == ')') {
            depth--;
            CHECK(depth >= 0);
        }
    }
    CHECK(depth == 0 && !in_quote);
    /* Long values are cut at AUTH_RESULTS_VALUE_BYTES_MAX. */
    char long_domain[600];
    memset(long_domain, 'a', sizeof(long_domain) - 1);
    long_domain[sizeof(long_domain) - 1] = '\0';
    dkim = (struct auth_results_dkim){.result = AUTH_RESULTS_DKIM_PASS, .domain = long_domain};
    n = auth_results_format(&in, out, sizeof(out));
    CHECK(n > 0);
    const char *d = strstr(out, "header.d=");
    CHECK(d != NULL && strspn(d + 9, "a") == AUTH_RESULTS_VALUE_BYTES_MAX);
    char c[8];
    CHECK(auth_results_comment_sanitize("a(b)c\\d\r\ne\x80", c, sizeof(c)) == 7);
    CHECK_STR(c, "a[b]c/d");
    CHECK(auth_results_comment_sanitize(NULL, c, sizeof(c)) == 0);
}

static void
test_is_ours(void)
{
    const char *id = "mx.example.com";
#define OURS(s) auth_results_header_is_ours((s), strlen(s), id)
    CHECK(OURS("mx.example.com; spf=pass smtp.mailfrom=example.org"));
    CHECK(OURS(" MX.Example.COM;\r\n\tdkim=pass"));
    CHECK(OURS("mx.example.com 1; none"));
    CHECK(OURS("(forged?) (nested (comment)) mx.example.com; none"));
    CHECK(OURS("\"mx.example.com\"; none"));
    CHECK(OURS("\r\n mx.example.com;"));
    CHECK(OURS("mx.example.com"));
    CHECK(OURS("mx.example.com(comment); none"));
    CHECK(!OURS("mx.example.com.evil.test; none"));
    CHECK(!OURS("evil-mx.example.com; none"));
    CHECK(!OURS("mx.example.co; none"));
    CHECK(!OURS("mx.example.com@x; none"));
    CHECK(!OURS("other.example; spf=pass smtp.mailfrom=mx.example.com"));
    CHECK(!OURS("(unclosed mx.example.com; none"));
    CHECK(!OURS("\"mx.example.com; none"));
    CHECK(!OURS(""));
    CHECK(!OURS("   "));
    CHECK(!OURS("; none"));
    CHECK(!auth_results_header_is_ours("mx.example.com", 13, id)); /* length-bounded */
#undef OURS
}

int
main(void)
{
    test_full();
    test_none_and_helo();
    test_hostile_values();
    test_is_ours();
    UNIT_DONE();
}
