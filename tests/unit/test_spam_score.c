/*
 * tests/unit/test_spam_score.c - the spam scorer end to end, through
 * spam_scan_prepare/spam_scan_run: each built-in check positive and
 * negative on small messages, GTUBE, thresholds to actions and replies,
 * the exact header lines, SPF/DKIM/DMARC/virus inputs, DNSBL and URIBL
 * through a table-backed dns_source (per-code symbols, the lists' error
 * codes, the lookup bound, and a first run that must wait for DNS then a
 * rerun with the answer, writing nothing to the store before), Bayes,
 * greylisting and rate limits with an injected clock.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "filters/spam_bayes.h"
#include "filters/spam_checks.h"
#include "filters/spam_score.h"
#include "tests/unit/unit.h"

int main(void);

#define GOOD_HEAD                                                                        \
    "From: alice@example.com\r\nTo: bob@example.net\r\n"                                 \
    "Date: Fri, 4 Dec 2026 10:00:00 +0000\r\nMessage-ID: <1@example.com>\r\n"            \
    "Subject: hello\r\n"

/* ---- a table-backed dns_source ---------------------------------------- */

struct dns_entry {
    const char *name;
    uint32_t    a[2]; /* host order; 0 ends */
    bool        is_pending;
    bool        was_asked;
    struct dns_record   records[2];
    struct dns_answer   answer;
};

struct dns_table {
    struct dns_entry *entries;
    size_t            count;
    size_t            lookups;
    char              asked[64][300];
    struct dns_answer nx;
};

static int
table_lookup(void *ctx, enum dns_type type, const char *name, const struct dns_answer **out)
{
    struct dns_table *t = ctx;
    CHECK(type == DNS_TYPE_A);
    if (t->lookups < 64) {
        (void)snprintf(t->asked[t->lookups], sizeof(t->asked[0]), "%s", name);
    }
    t->lookups++;
    if (strlen(name) > 253) {
        return -EINVAL;
    }
    for (size_t i = 0; i < t->count; i++) {
        struct dns_entry *e = &t->entries[i];
        if (strcmp(e->name, name) != 0) {
            continue;
        }
        if (e->is_pending) {
            e->was_asked = true;
            return -EINPROGRESS;
        }
        uint32_t n = 0;
        for (; n < 2 && e->a[n] != 0; n++) {
            e->records[n].a.s_addr = htonl(e->a[n]);
        }
        e->answer = (struct dns_answer){ .type = DNS_TYPE_A, .status = DNS_STATUS_OK,
                                         .ttl = 60, .count = n, .records = e->records };
        *out = &e->answer;
        return 0;
    }
    t->nx = (struct dns_answer){ .type = DNS_TYPE_A, .status = DNS_STATUS_NXDOMAIN };
    *out = &t->nx;
    return 0;
}

/* ---- helpers ------------------------------------------------------------ */

static struct spam_filter *
make_filter(const char *rules_text, const struct spam_config *cfg_in)
{
    struct spam_config cfg;
    if (cfg_in != NULL) {
        cfg = *cfg_in;
    } else {
        spam_config_defaults(&cfg);
        cfg.greylist_mode = SPAM_GREYLIST_OFF;
    }
    struct spam_rules *rules = NULL;
    char err[256] = "";
    int rc = spam_rules_parse(rules_text, strlen(rules_text), &rules, err, sizeof(err));
    if (rc != 0) {
        fprintf(stderr, "rules: %s\n", err);
    }
    CHECK(rc == 0);
    struct spam_filter *f = NULL;
    CHECK(spam_filter_create_rules(&cfg, rules, &f) == 0);
    return f;
}

static struct spam_inputs
inputs_v4(const char *ip)
{
    static const char *const rcpts[] = { "bob@example.net" };
    struct spam_inputs in = { .mail_from = "alice@example.com", .rcpts = rcpts, .rcpt_count = 1,
                              .now_s = 1000000 };
    in.client.family = AF_INET;
    CHECK(inet_pton(AF_INET, ip, &in.client.addr4) == 1);
    return in;
}

/* Run msg through f with no DNS and no store; 0 or the error. */
static int
score(struct spam_filter *f, const char *msg, const struct spam_inputs *in,
      const struct dns_source *dns, struct kv *kv, struct spam_result *res)
{
    struct spam_scan *scan = NULL;
    CHECK(spam_scan_prepare(f, msg, strlen(msg), &scan) == 0);
    int rc = spam_scan_run(f, scan, in, dns, kv, res);
    spam_scan_destroy(&scan);
    CHECK(scan == NULL);
    return rc;
}

static const struct spam_symbol *
find(const struct spam_result *res, const char *name)
{
    for (size_t i = 0; i < res->symbol_count; i++) {
        if (strcmp(res->symbols[i].name, name) == 0) {
            return &res->symbols[i];
        }
    }
    return NULL;
}

static bool
near(double a, double b)
{
    return a - b < 1e-9 && b - a < 1e-9;
}

/* ---- tests -------------------------------------------------------------- */

static void
test_builtin_checks(void)
{
    struct spam_filter *f = make_filter("", NULL);
    struct spam_inputs in = inputs_v4("192.0.2.1");
    struct spam_result res;

    CHECK(score(f, GOOD_HEAD "\r\nplain text\r\n", &in, NULL, NULL, &res) == 0);
    CHECK(res.symbol_count == 0);
    CHECK(res.score == 0.0);
    CHECK(res.action == SPAM_ACTION_NO_ACTION && res.disposition == SPAM_ACCEPT);

    CHECK(score(f, "From: a@b.test\r\nSubject: x\r\n\r\nbody\r\n", &in, NULL, NULL, &res) == 0);
    CHECK(find(&res, "MISSING_DATE") != NULL && near(find(&res, "MISSING_DATE")->score, 1.0));
    CHECK(find(&res, "MISSING_MID") != NULL && near(find(&res, "MISSING_MID")->score, 2.5));
    CHECK(find(&res, "MISSING_FROM") == NULL);
    CHECK(near(res.score, 3.5));

    CHECK(score(f, "Subject: x\r\n\r\nbody\r\n", &in, NULL, NULL, &res) == 0);
    CHECK(find(&res, "MISSING_FROM") != NULL);

    CHECK(score(f, GOOD_HEAD "Content-Type: text/html\r\n\r\n<p>hi</p>\r\n", &in, NULL, NULL,
                &res) == 0);
    CHECK(find(&res, "MIME_HTML_ONLY") != NULL && near(res.score, 0.2));

    CHECK(score(f, GOOD_HEAD "Reply-To: x@other.test\r\n\r\nhi\r\n", &in, NULL, NULL, &res) == 0);
    CHECK(find(&res, "REPLYTO_DOM_NEQ_FROM_DOM") != NULL);
    CHECK(score(f, GOOD_HEAD "Reply-To: x@lists.EXAMPLE.com\r\n\r\nhi\r\n", &in, NULL, NULL,
                &res) == 0);
    CHECK(find(&res, "REPLYTO_DOM_NEQ_FROM_DOM") == NULL); /* same organization */

    CHECK(score(f, GOOD_HEAD "Content-Type: multipart/mixed\r\n\r\nx\r\n", &in, NULL, NULL,
                &res) == 0);
    CHECK(find(&res, "BROKEN_CONTENT_TYPE") != NULL);
    CHECK_STR(find(&res, "BROKEN_CONTENT_TYPE")->options, "no boundary");
    CHECK(score(f, GOOD_HEAD "Content-Type: multipart/mixed; boundary=zz\r\n\r\nx\r\n", &in,
                NULL, NULL, &res) == 0);
    CHECK_STR(find(&res, "BROKEN_CONTENT_TYPE")->options, "boundary not found");

    const char *attach = GOOD_HEAD "Content-Type: multipart/mixed; boundary=b\r\n\r\n"
                                   "--b\r\n\r\ntext\r\n--b\r\nContent-Type: application/zip\r\n"
                                   "Content-Disposition: attachment; filename=\"doc.pdf.scr\"\r\n"
                                   "\r\nx\r\n--b--\r\n";
    CHECK(score(f, attach, &in, NULL, NULL, &res) == 0);
    CHECK(find(&res, "MIME_DOUBLE_BAD_EXTENSION") != NULL);
    CHECK(find(&res, "MIME_BAD_EXTENSION") == NULL);
    CHECK_STR(find(&res, "MIME_DOUBLE_BAD_EXTENSION")->options, "doc.pdf.scr");
    CHECK(near(res.score, 3.0));

    /* MANY_RECIPIENTS: the threshold, then one more. */
    static const char *rcpts[60];
    for (int i = 0; i < 60; i++) {
        rcpts[i] = "r@example.net";
    }
    in.rcpts = rcpts;
    in.rcpt_count = SPAM_MANY_RECIPIENTS_DEFAULT;
    CHECK(score(f, GOOD_HEAD "\r\nhi\r\n", &in, NULL, NULL, &res) == 0);
    CHECK(find(&res, "MANY_RECIPIENTS") == NULL);
    in.rcpt_count = SPAM_MANY_RECIPIENTS_DEFAULT + 1;
    CHECK(score(f, GOOD_HEAD "\r\nhi\r\n", &in, NULL, NULL, &res) == 0);
    CHECK(find(&res, "MANY_RECIPIENTS") != NULL);
    CHECK_STR(find(&res, "MANY_RECIPIENTS")->options, "51");
    spam_filter_destroy(&f);
    CHECK(f == NULL);
}

static void
test_regex_rules(void)
{
    struct spam_filter *f = make_filter("header SUBJ_FREE 2 Subject free +money\n"
                                        "header X_MAILER_BULK 1 X-Mailer ^bulk\n"
                                        "body BODY_WON 3 you have won\n",
                                        NULL);
    struct spam_inputs in = inputs_v4("192.0.2.1");
    struct spam_result res;
    /* Encoded words are decoded before matching; base64 bodies too. */
    const char *msg = "From: a@example.com\r\nDate: x\r\nMessage-ID: <y>\r\n"
                      "Subject: =?UTF-8?Q?FREE_money?=\r\nX-Mailer: nice\r\nX-Mailer: Bulk 2.0\r\n"
                      "Content-Transfer-Encoding: base64\r\n\r\n"
                      "WW91IGhhdmUgV09OIQ==\r\n"; /* "You have WON!" */
    CHECK(score(f, msg, &in, NULL, NULL, &res) == 0);
    CHECK(find(&res, "SUBJ_FREE") != NULL);
    CHECK(find(&res, "X_MAILER_BULK") != NULL);
    CHECK(find(&res, "BODY_WON") != NULL);
    CHECK(near(res.score, 6.0));
    CHECK(score(f, GOOD_HEAD "\r\nnothing won here\r\n", &in, NULL, NULL, &res) == 0);
    CHECK(res.symbol_count == 0);
    spam_filter_destroy(&f);
}

static void
test_gtube_and_actions(void)
{
    struct spam_config cfg;
    spam_config_defaults(&cfg);
    cfg.greylist_mode = SPAM_GREYLIST_OFF;
    struct spam_filter *f = make_filter("body P1 1 p1x\nbody P3 3 p3x\nbody P05 0.5 p05x\n"
                                        "body P5 5 p5x\nbody P10 10 p10x\n",
                                        &cfg);
    struct spam_inputs in = inputs_v4("192.0.2.1");
    struct spam_result res;

    CHECK(score(f, GOOD_HEAD "\r\nXJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X\r\n",
                &in, NULL, NULL, &res) == 0);
    CHECK(res.action == SPAM_ACTION_REJECT);
    CHECK(res.disposition == SPAM_REJECT);
    CHECK_STR(res.reply, "554 5.7.1 Gtube pattern");
    CHECK(find(&res, "GTUBE") != NULL);

    struct {
        const char      *body;
        double           score;
        enum spam_action action;
    } cases[] = {
        { "p3x", 3.0, SPAM_ACTION_NO_ACTION },
        { "p3x p05x", 3.5, SPAM_ACTION_NO_ACTION },
        { "p3x p1x", 4.0, SPAM_ACTION_GREYLIST },
        { "p5x p05x", 5.5, SPAM_ACTION_GREYLIST },
        { "p5x p1x", 6.0, SPAM_ACTION_ADD_HEADER },
        { "p5x p3x p1x", 9.0, SPAM_ACTION_ADD_HEADER }, /* rewrite_subject is off */
        { "p10x p3x p1x p05x", 14.5, SPAM_ACTION_ADD_HEADER },
        { "p10x p5x", 15.0, SPAM_ACTION_REJECT },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char msg[512];
        (void)snprintf(msg, sizeof(msg), GOOD_HEAD "\r\n%s\r\n", cases[i].body);
        CHECK(score(f, msg, &in, NULL, NULL, &res) == 0);
        CHECK(near(res.score, cases[i].score));
        if (res.action != cases[i].action) {
            fprintf(stderr, "  %s: action %s\n", cases[i].body, spam_action_name(res.action));
        }
        CHECK(res.action == cases[i].action);
        CHECK(res.disposition ==
              (cases[i].action == SPAM_ACTION_REJECT ? SPAM_REJECT : SPAM_ACCEPT));
    }
    CHECK_STR(res.reply, "554 5.7.1 Spam message rejected");
    CHECK_STR(spam_action_name(SPAM_ACTION_SOFT_REJECT), "soft reject");
    spam_filter_destroy(&f);

    /* rewrite_subject on at 8. */
    cfg.is_rewrite_subject = true;
    cfg.rewrite_subject_score = 8.0;
    f = make_filter("body P5 5 p5x\nbody P3 3 p3x\n", &cfg);
    CHECK(score(f, GOOD_HEAD "\r\np5x p3x\r\n", &in, NULL, NULL, &res) == 0);
    CHECK(res.action == SPAM_ACTION_REWRITE_SUBJECT);
    CHECK_STR(res.subject, "***SPAM*** hello");
    CHECK(score(f, GOOD_HEAD "\r\np5x\r\n", &in, NULL, NULL, &res) == 0);
    CHECK(res.action == SPAM_ACTION_NO_ACTION || res.action == SPAM_ACTION_GREYLIST);
    CHECK_STR(res.subject, "");
    spam_filter_destroy(&f);
}

static void
test_headers(void)
{
    struct spam_filter *f = make_filter("body P5 5 p5x\n", NULL);
    struct spam_inputs in = inputs_v4("192.0.2.1");
    struct spam_result res;
    char out[SPAM_HEADERS_BYTES_MAX];

    CHECK(score(f, "From: a@example.com\r\nMessage-ID: <x>\r\n\r\np5x\r\n", &in, NULL, NULL,
                &res) == 0);
    long n = spam_result_headers(&res, out, sizeof(out));
    CHECK(n > 0);
    CHECK_STR(out, "X-Spam-Score: 6.00\r\n"
                   "X-Spam-Status: Yes, score=6.00 required=6.00\r\n"
                   "X-Spam-Flag: YES\r\n"
                   "X-Spamd-Result: default: False [6.00 / 15.00];\r\n"
                   "\tP5(5.00)[];\r\n"
                   "\tMISSING_DATE(1.00)[]\r\n");
    CHECK((size_t)n == strlen(out));

    CHECK(score(f, "From: a@example.com\r\nMessage-ID: <x>\r\n\r\nhi\r\n", &in, NULL, NULL,
                &res) == 0);
    CHECK(spam_result_headers(&res, out, sizeof(out)) > 0);
    CHECK_STR(out, "X-Spam-Score: 1.00\r\n"
                   "X-Spam-Status: No, score=1.00 required=6.00\r\n"
                   "X-Spamd-Result: default: False [1.00 / 15.00];\r\n"
                   "\tMISSING_DATE(1.00)[]\r\n");

    /* Negative scores, options from the peer sanitised, ties by name. */
    in.spf = SPAM_SPF_PASS;
    in.spf_domain = "example.com";
    in.dkim = SPAM_DKIM_PASS;
    in.dkim_domain = "ex[a]mple.com;\r\n(x)";
    CHECK(score(f, GOOD_HEAD "\r\nhi\r\n", &in, NULL, NULL, &res) == 0);
    CHECK(spam_result_headers(&res, out, sizeof(out)) > 0);
    CHECK_STR(out, "X-Spam-Score: -0.40\r\n"
                   "X-Spam-Status: No, score=-0.40 required=6.00\r\n"
                   "X-Spamd-Result: default: False [-0.40 / 15.00];\r\n"
                   "\tR_DKIM_ALLOW(-0.20)[ex?a?mple.com????x?];\r\n"
                   "\tR_SPF_ALLOW(-0.20)[example.com]\r\n");

    /* No symbols at all; then a buffer one byte short. */
    in = inputs_v4("192.0.2.1");
    CHECK(score(f, GOOD_HEAD "\r\nhi\r\n", &in, NULL, NULL, &res) == 0);
    n = spam_result_headers(&res, out, sizeof(out));
    CHECK_STR(out, "X-Spam-Score: 0.00\r\n"
                   "X-Spam-Status: No, score=0.00 required=6.00\r\n"
                   "X-Spamd-Result: default: False [0.00 / 15.00]\r\n");
    CHECK(spam_result_headers(&res, out, (size_t)n + 1) == n);
    CHECK(spam_result_headers(&res, out, (size_t)n) == -ENOSPC);

    /* A reject says True. */
    CHECK(score(f, GOOD_HEAD "\r\nXJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X\r\n",
                &in, NULL, NULL, &res) == 0);
    CHECK(spam_result_headers(&res, out, sizeof(out)) > 0);
    CHECK(strstr(out, "X-Spamd-Result: default: True [0.00 / 15.00];\r\n\tGTUBE(0.00)[]\r\n") != NULL);

    /* The worst case fits SPAM_HEADERS_BYTES_MAX. */
    struct spam_result full = { .score = -999.99, .reject_score = 15, .add_header_score = 6 };
    full.symbol_count = SPAM_SYMBOLS_MAX;
    for (size_t i = 0; i < SPAM_SYMBOLS_MAX; i++) {
        memset(full.symbols[i].name, 'N', SPAM_SYMBOL_NAME_BYTES - 1);
        memset(full.symbols[i].options, 'o', SPAM_OPTIONS_BYTES - 1);
        full.symbols[i].score = -999.99;
    }
    CHECK(spam_result_headers(&full, out, sizeof(out)) > 0);
    spam_filter_destroy(&f);
}

static void
test_inputs(void)
{
    struct spam_filter *f = make_filter("", NULL);
    struct spam_inputs in = inputs_v4("192.0.2.1");
    struct spam_result res;
    in.spf = SPAM_SPF_FAIL;
    in.spf_domain = "example.com";
    in.dkim = SPAM_DKIM_FAIL;
    in.dkim_domain = "example.com";
    in.dmarc = SPAM_DMARC_FAIL_REJECT;
    in.dmarc_domain = "example.com";
    in.virus_name = "Eicar-Signature";
    CHECK(score(f, GOOD_HEAD "\r\nhi\r\n", &in, NULL, NULL, &res) == 0);
    CHECK(find(&res, "R_SPF_FAIL") != NULL && near(find(&res, "R_SPF_FAIL")->score, 1.0));
    CHECK(find(&res, "R_DKIM_REJECT") != NULL && near(find(&res, "R_DKIM_REJECT")->score, 1.0));
    CHECK(find(&res, "DMARC_POLICY_REJECT") != NULL);
    CHECK(near(find(&res, "DMARC_POLICY_REJECT")->score, 2.0));
    CHECK(find(&res, "CLAM_VIRUS") != NULL);
    CHECK_STR(find(&res, "CLAM_VIRUS")->options, "Eicar-Signature");
    CHECK(near(res.score, 14.0));
    CHECK(res.action == SPAM_ACTION_ADD_HEADER);

    struct {
        enum spam_spf_result   spf;
        enum spam_dkim_result  dkim;
        enum spam_dmarc_result dmarc;
        const char            *a;
        const char            *b;
        const char            *c;
    } cases[] = {
        { SPAM_SPF_SOFTFAIL, SPAM_DKIM_NONE, SPAM_DMARC_FAIL_QUARANTINE, "R_SPF_SOFTFAIL",
          "R_DKIM_NA", "DMARC_POLICY_QUARANTINE" },
        { SPAM_SPF_NEUTRAL, SPAM_DKIM_TEMPERROR, SPAM_DMARC_FAIL_NONE, "R_SPF_NEUTRAL",
          "R_DKIM_TEMPFAIL", "DMARC_POLICY_SOFTFAIL" },
        { SPAM_SPF_NONE, SPAM_DKIM_PERMERROR, SPAM_DMARC_NONE, "R_SPF_NA", "R_DKIM_PERMFAIL",
          "DMARC_NA" },
        { SPAM_SPF_TEMPERROR, SPAM_DKIM_PASS, SPAM_DMARC_TEMPERROR, "R_SPF_DNSFAIL",
          "R_DKIM_ALLOW", "DMARC_DNSFAIL" },
        { SPAM_SPF_PERMERROR, SPAM_DKIM_PASS, SPAM_DMARC_PERMERROR, "R_SPF_PERMFAIL",
          "R_DKIM_ALLOW", "DMARC_BAD_POLICY" },
        { SPAM_SPF_PASS, SPAM_DKIM_PASS, SPAM_DMARC_PASS, "R_SPF_ALLOW", "R_DKIM_ALLOW",
          "DMARC_POLICY_ALLOW" },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        in = inputs_v4("192.0.2.1");
        in.spf = cases[i].spf;
        in.dkim = cases[i].dkim;
        in.dmarc = cases[i].dmarc;
        CHECK(score(f, GOOD_HEAD "\r\nhi\r\n", &in, NULL, NULL, &res) == 0);
        CHECK(res.symbol_count == 3);
        CHECK(find(&res, cases[i].a) != NULL);
        CHECK(find(&res, cases[i].b) != NULL);
        CHECK(find(&res, cases[i].c) != NULL);
    }
    CHECK(near(res.score, -0.9));
    /* Unchecked: no symbols. */
    in = inputs_v4("192.0.2.1");
    CHECK(score(f, GOOD_HEAD "\r\nhi\r\n", &in, NULL, NULL, &res) == 0);
    CHECK(res.symbol_count == 0);
    spam_filter_destroy(&f);
}

static void
test_dnsbl(void)
{
    struct spam_filter *f = make_filter("dnsbl RBL_ANY 3 bl.test\n"
                                        "dnsbl RBL_TWO 4 bl.test 127.0.0.2\n"
                                        "dnsbl RBL_OTHER 1 other.test\n",
                                        NULL);
    struct dns_entry entries[] = {
        { .name = "5.2.0.192.bl.test", .a = { 0x7f000002 } },
        { .name = "6.2.0.192.bl.test", .a = { 0x7f000003 } },
        { .name = "7.2.0.192.bl.test", .a = { 0x7ffffffe } },
        { .name = "8.2.0.192.bl.test", .a = { 0x0a000001 } }, /* not 127/8: not listed */
        { .name = "5.2.0.192.other.test", .a = { 0x7f000002, 0x7f000004 } },
        { .name = "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.2.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2.bl.test",
          .a = { 0x7f000002 } },
    };
    struct dns_table table = { .entries = entries, .count = sizeof(entries) / sizeof(entries[0]) };
    struct dns_source dns = { .lookup = table_lookup, .ctx = &table };
    struct spam_result res;

    struct spam_inputs in = inputs_v4("192.0.2.5");
    CHECK(score(f, GOOD_HEAD "\r\nhi\r\n", &in, &dns, NULL, &res) == 0);
    CHECK(find(&res, "RBL_TWO") != NULL);
    CHECK(find(&res, "RBL_ANY") == NULL); /* a code rule matched */
    CHECK_STR(find(&res, "RBL_TWO")->options, "192.0.2.5");
    CHECK(find(&res, "RBL_OTHER") != NULL);
    CHECK(near(res.score, 5.0));
    CHECK(table.lookups == 2); /* one per zone */

    in = inputs_v4("192.0.2.6");
    CHECK(score(f, GOOD_HEAD "\r\nhi\r\n", &in, &dns, NULL, &res) == 0);
    CHECK(find(&res, "RBL_ANY") != NULL && find(&res, "RBL_TWO") == NULL);
    in = inputs_v4("192.0.2.7"); /* the list's own error code */
    CHECK(score(f, GOOD_HEAD "\r\nhi\r\n", &in, &dns, NULL, &res) == 0);
    CHECK(res.symbol_count == 0);
    in = inputs_v4("192.0.2.8");
    CHECK(score(f, GOOD_HEAD "\r\nhi\r\n", &in, &dns, NULL, &res) == 0);
    CHECK(res.symbol_count == 0);
    in = inputs_v4("192.0.2.9"); /* NXDOMAIN */
    CHECK(score(f, GOOD_HEAD "\r\nhi\r\n", &in, &dns, NULL, &res) == 0);
    CHECK(res.symbol_count == 0);

    /* IPv6 nibbles. */
    in = inputs_v4("192.0.2.9");
    in.client.family = AF_INET6;
    CHECK(inet_pton(AF_INET6, "2001:db8:1:2::1", &in.client.addr6) == 1);
    char name[300];
    CHECK(spam_checks_dnsbl_name(&in.client, "bl.test", name, sizeof(name)) == 0);
    CHECK_STR(name, "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.2.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2.bl.test");
    CHECK(spam_checks_dnsbl_name(&in.client, "bl.test", name, 20) == -ENOSPC);
    struct spam_client mapped = { .family = AF_INET6 };
    CHECK(inet_pton(AF_INET6, "::ffff:192.0.2.5", &mapped.addr6) == 1);
    CHECK(spam_checks_dnsbl_name(&mapped, "bl.test", name, sizeof(name)) == 0);
    CHECK_STR(name, "5.2.0.192.bl.test");
    CHECK(score(f, GOOD_HEAD "\r\nhi\r\n", &in, &dns, NULL, &res) == 0);
    CHECK(find(&res, "RBL_TWO") != NULL);
    CHECK_STR(find(&res, "RBL_TWO")->options, "2001:db8:1:2::1");

    /* Private, loopback and authenticated clients are not looked up. */
    const char *skipped[] = { "10.1.2.3", "127.0.0.1", "192.168.1.1", "172.16.0.1" };
    for (size_t i = 0; i < 4; i++) {
        table.lookups = 0;
        in = inputs_v4(skipped[i]);
        CHECK(score(f, GOOD_HEAD "\r\nhi\r\n", &in, &dns, NULL, &res) == 0);
        CHECK(table.lookups == 0);
    }
    table.lookups = 0;
    in = inputs_v4("192.0.2.5");
    in.is_authenticated = true;
    CHECK(score(f, GOOD_HEAD "\r\nhi\r\n", &in, &dns, NULL, &res) == 0);
    CHECK(table.lookups == 0);
    CHECK(res.symbol_count == 0);
    spam_filter_destroy(&f);
}

static void
test_uribl_and_rerun(void)
{
    struct spam_config cfg;
    spam_config_defaults(&cfg);
    cfg.greylist_mode = SPAM_GREYLIST_ALWAYS;
    cfg.uribl_lookups_max = 5;
    (void)spam_ratelimit_parse("100/1h", &cfg.ratelimit_sender);
    struct spam_filter *f = make_filter("uribl URI_BAD 6 uri.test\n"
                                        "dnsbl RBL_SLOW 2 slow.test\n",
                                        &cfg);
    struct dns_entry entries[] = {
        { .name = "evil.test.uri.test", .a = { 0x7f000002 } },
        { .name = "shop.co.uk.uri.test", .a = { 0x7f000002 } },
        { .name = "5.2.0.192.slow.test", .a = { 0x7f000002 }, .is_pending = true },
    };
    struct dns_table table = { .entries = entries, .count = 3 };
    struct dns_source dns = { .lookup = table_lookup, .ctx = &table };
    char msg[4096];
    size_t len = (size_t)snprintf(msg, sizeof(msg),
                                  GOOD_HEAD "\r\nhttp://www.evil.test/a http://x.EVIL.test/b "
                                            "http://mail.shop.co.uk/ ");
    for (int i = 0; i < 10; i++) {
        len += (size_t)snprintf(msg + len, sizeof(msg) - len, "http://site%d.example/ ", i);
    }
    struct kv *kv = NULL;
    CHECK(kv_embedded_create(4096, NULL, NULL, &kv) == 0);
    struct spam_inputs in = inputs_v4("192.0.2.5");
    struct spam_scan *scan = NULL;
    CHECK(spam_scan_prepare(f, msg, len, &scan) == 0);
    struct spam_result res;
    /* First run: the DNSBL answer is not there. Nothing goes to the store. */
    CHECK(spam_scan_run(f, scan, &in, &dns, kv, &res) == -EINPROGRESS);
    CHECK(entries[2].was_asked);
    CHECK(kv_count(kv) == 0);
    /* Lookups in rule order: five URIBL (evil.test once for two hosts,
     * the bound of 5 stops at site2), then the DNSBL. */
    CHECK(table.lookups == 6);
    CHECK_STR(table.asked[0], "evil.test.uri.test");
    CHECK_STR(table.asked[1], "shop.co.uk.uri.test");
    CHECK_STR(table.asked[2], "site0.example.uri.test");
    CHECK_STR(table.asked[4], "site2.example.uri.test");
    CHECK_STR(table.asked[5], "5.2.0.192.slow.test");
    /* The answer arrives; the rerun completes and writes. */
    entries[2].is_pending = false;
    CHECK(spam_scan_run(f, scan, &in, &dns, kv, &res) == 0);
    CHECK(find(&res, "RBL_SLOW") != NULL);
    CHECK(find(&res, "URI_BAD") != NULL);
    CHECK_STR(find(&res, "URI_BAD")->options, "evil.test,shop.co.uk");
    CHECK(near(res.score, 8.0));
    /* Greylisting is always on here: the first message waits. */
    CHECK(res.action == SPAM_ACTION_SOFT_REJECT && res.disposition == SPAM_TEMPFAIL);
    CHECK_STR(res.reply, "451 4.7.1 Greylisted, try again in 300 seconds (and within 48 hours)");
    CHECK(kv_count(kv) == 2); /* the rate counter and the triplet */
    spam_scan_destroy(&scan);
    kv_destroy(&kv);
    spam_filter_destroy(&f);
}

static uint64_t fake_now_s = 5000000;

static uint64_t
fake_clock_ms(void *arg)
{
    (void)arg;
    return fake_now_s * 1000;
}

static void
test_greylist_band(void)
{
    struct spam_config cfg;
    spam_config_defaults(&cfg); /* greylist SCORE at 4 */
    struct spam_filter *f = make_filter("body P5 4.5 p5x\nbody P7 7 p7x\n", &cfg);
    struct kv *kv = NULL;
    CHECK(kv_embedded_create(4096, fake_clock_ms, NULL, &kv) == 0);
    struct spam_inputs in = inputs_v4("192.0.2.5");
    struct spam_result res;
    in.now_s = fake_now_s;
    /* Under the greylist score: accepted, nothing remembered. */
    CHECK(score(f, GOOD_HEAD "\r\nhello\r\n", &in, NULL, kv, &res) == 0);
    CHECK(res.disposition == SPAM_ACCEPT && kv_count(kv) == 0);
    /* In the band: 451, then the retry after 5 minutes passes. */
    CHECK(score(f, GOOD_HEAD "\r\np5x\r\n", &in, NULL, kv, &res) == 0);
    CHECK(res.action == SPAM_ACTION_SOFT_REJECT && res.disposition == SPAM_TEMPFAIL);
    CHECK_STR(res.reply, "451 4.7.1 Greylisted, try again in 300 seconds (and within 48 hours)");
    fake_now_s += 60;
    in.now_s = fake_now_s;
    CHECK(score(f, GOOD_HEAD "\r\np5x\r\n", &in, NULL, kv, &res) == 0);
    CHECK_STR(res.reply, "451 4.7.1 Greylisted, try again in 240 seconds (and within 48 hours)");
    fake_now_s += 240;
    in.now_s = fake_now_s;
    CHECK(score(f, GOOD_HEAD "\r\np5x\r\n", &in, NULL, kv, &res) == 0);
    CHECK(res.action == SPAM_ACTION_GREYLIST && res.disposition == SPAM_ACCEPT);
    CHECK_STR(res.reply, "");
    /* Above add_header the triplet is known now: accepted with headers. */
    CHECK(score(f, GOOD_HEAD "\r\np7x\r\n", &in, NULL, kv, &res) == 0);
    CHECK(res.action == SPAM_ACTION_ADD_HEADER && res.disposition == SPAM_ACCEPT);
    /* Authenticated and local clients are never greylisted. */
    struct spam_inputs auth = inputs_v4("198.51.100.7");
    auth.is_authenticated = true;
    CHECK(score(f, GOOD_HEAD "\r\np5x\r\n", &auth, NULL, kv, &res) == 0);
    CHECK(res.disposition == SPAM_ACCEPT);
    struct spam_inputs local = inputs_v4("198.51.100.7");
    local.client.family = AF_UNSPEC;
    CHECK(score(f, GOOD_HEAD "\r\np5x\r\n", &local, NULL, kv, &res) == 0);
    CHECK(res.disposition == SPAM_ACCEPT);
    kv_destroy(&kv);
    spam_filter_destroy(&f);
}

static void
test_rate_limit(void)
{
    struct spam_config cfg;
    spam_config_defaults(&cfg);
    cfg.greylist_mode = SPAM_GREYLIST_OFF;
    CHECK(spam_ratelimit_parse("2/1h", &cfg.ratelimit_sender) == 0);
    CHECK(spam_ratelimit_parse("3/1h", &cfg.ratelimit_ip) == 0);
    CHECK(spam_ratelimit_parse("4/1h", &cfg.ratelimit_rcpt) == 0);
    struct spam_filter *f = make_filter("", &cfg);
    struct kv *kv = NULL;
    CHECK(kv_embedded_create(4096, NULL, NULL, &kv) == 0);
    struct spam_inputs in = inputs_v4("192.0.2.5");
    struct spam_result res;
    CHECK(score(f, GOOD_HEAD "\r\nhi\r\n", &in, NULL, kv, &res) == 0);
    CHECK(res.disposition == SPAM_ACCEPT);
    CHECK(score(f, GOOD_HEAD "\r\nhi\r\n", &in, NULL, kv, &res) == 0);
    CHECK(res.disposition == SPAM_ACCEPT);
    CHECK(score(f, GOOD_HEAD "\r\nhi\r\n", &in, NULL, kv, &res) == 0);
    CHECK(res.disposition == SPAM_TEMPFAIL && res.action == SPAM_ACTION_SOFT_REJECT);
    CHECK_STR(res.reply, "451 4.7.1 Rate limit exceeded for this sender, try again later");
    /* Another sender from the same address: the IP limit (3) is reached. */
    in.mail_from = "carol@example.com";
    CHECK(score(f, GOOD_HEAD "\r\nhi\r\n", &in, NULL, kv, &res) == 0);
    CHECK_STR(res.reply, "451 4.7.1 Rate limit exceeded for this client address, try again later");
    /* Another address and sender, same recipient: its limit (4) is reached. */
    in = inputs_v4("198.51.100.1");
    in.mail_from = "dave@example.org";
    CHECK(score(f, GOOD_HEAD "\r\nhi\r\n", &in, NULL, kv, &res) == 0);
    CHECK_STR(res.reply, "451 4.7.1 Rate limit exceeded for this recipient, try again later");
    kv_destroy(&kv);
    spam_filter_destroy(&f);
}

static void
test_bayes_symbol(void)
{
    struct spam_config cfg;
    spam_config_defaults(&cfg);
    cfg.greylist_mode = SPAM_GREYLIST_OFF;
    cfg.bayes_min_learns = 5;
    /* Bayes in a store of its own; the state store stays empty. */
    struct kv *kv = NULL;
    CHECK(kv_embedded_create(65536, NULL, NULL, &kv) == 0);
    struct kv *state = NULL;
    CHECK(kv_embedded_create(1024, NULL, NULL, &state) == 0);
    cfg.bayes_kv = kv;
    struct spam_filter *f = make_filter("", &cfg);
    static const char *const spam_text =
        "cheap pills casino lottery winner bitcoin prize claim urgent bonus offer discount";
    static const char *const ham_text =
        "meeting agenda project review deadline budget lunch tomorrow minutes draft kernel patch";
    char msg[1024];
    for (int i = 0; i < 5; i++) {
        int n = snprintf(msg, sizeof(msg), GOOD_HEAD "\r\n%s number%c\r\n", spam_text, 'a' + i);
        CHECK(spam_bayes_learn(kv, msg, (size_t)n, true) == 0);
        n = snprintf(msg, sizeof(msg), GOOD_HEAD "\r\n%s number%c\r\n", ham_text, 'a' + i);
        CHECK(spam_bayes_learn(kv, msg, (size_t)n, false) == 0);
    }
    struct spam_inputs in = inputs_v4("192.0.2.5");
    struct spam_result res;
    (void)snprintf(msg, sizeof(msg), GOOD_HEAD "\r\n%s again\r\n", spam_text);
    CHECK(score(f, msg, &in, NULL, state, &res) == 0);
    const struct spam_symbol *s = find(&res, "BAYES_SPAM");
    CHECK(s != NULL);
    CHECK(s != NULL && s->score > 4.5 && s->score <= 5.1);
    CHECK(s != NULL && strchr(s->options, '%') != NULL);
    (void)snprintf(msg, sizeof(msg), GOOD_HEAD "\r\n%s again\r\n", ham_text);
    CHECK(score(f, msg, &in, NULL, NULL, &res) == 0); /* no state store: Bayes still speaks */
    s = find(&res, "BAYES_HAM");
    CHECK(s != NULL && s->score < -2.5 && s->score >= -3.0);
    CHECK(kv_count(state) == 0);
    kv_destroy(&state);
    kv_destroy(&kv);
    spam_filter_destroy(&f);
}

static void
test_shipped_rules(void)
{
    struct spam_config cfg;
    spam_config_defaults(&cfg);
    struct spam_filter *f = NULL;
    char err[256] = "";
    CHECK(spam_filter_create(&cfg, SPAM_SOURCE_ROOT "/etc/spam.rules", &f, err, sizeof(err)) == 0);
    struct spam_inputs in = inputs_v4("192.0.2.5");
    struct spam_result res;
    CHECK(score(f, GOOD_HEAD "\r\nCongratulations, you have won the national lottery!\r\n", &in,
                NULL, NULL, &res) == 0);
    CHECK(find(&res, "LOTTERY_WINNER") != NULL);
    spam_filter_destroy(&f);
    CHECK(spam_filter_create(&cfg, NULL, &f, err, sizeof(err)) == 0);
    CHECK(spam_filter_config(f)->reject_score == 15.0);
    spam_filter_destroy(&f);
    CHECK(spam_filter_create(&cfg, "/nonexistent", &f, err, sizeof(err)) == -ENOENT);
    CHECK(f == NULL);
}

static void
test_prepare_fd(void)
{
    struct spam_filter *f = make_filter("", NULL);
    char path[] = "/tmp/test_spam_score_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    const char *msg = "Subject: x\r\n\r\nXJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-"
                      "EMAIL*C.34X\r\n";
    CHECK(write(fd, msg, strlen(msg)) == (ssize_t)strlen(msg));
    struct spam_scan *scan = NULL;
    CHECK(spam_scan_prepare_fd(f, fd, strlen(msg), &scan) == 0);
    CHECK(spam_scan_message(scan)->is_gtube);
    CHECK(!spam_scan_message(scan)->has_date);
    struct spam_inputs in = inputs_v4("192.0.2.1");
    struct spam_result res;
    CHECK(spam_scan_run(f, scan, &in, NULL, NULL, &res) == 0);
    CHECK(res.disposition == SPAM_REJECT);
    spam_scan_destroy(&scan);
    /* An empty file is an empty message. */
    CHECK(spam_scan_prepare_fd(f, fd, 0, &scan) == 0);
    CHECK(spam_scan_message(scan)->text_len == 0);
    spam_scan_destroy(&scan);
    CHECK(close(fd) == 0);
    CHECK(unlink(path) == 0);
    spam_filter_destroy(&f);
}

static void
test_org_domain(void)
{
    char out[SPAM_DOMAIN_BYTES];
    spam_checks_org_domain(NULL, "a.b.example.com", out, sizeof(out));
    CHECK_STR(out, "example.com");
    spam_checks_org_domain(NULL, "www.shop.co.uk", out, sizeof(out));
    CHECK_STR(out, "shop.co.uk");
    spam_checks_org_domain(NULL, "co.uk", out, sizeof(out));
    CHECK_STR(out, "co.uk");
    spam_checks_org_domain(NULL, "example.com", out, sizeof(out));
    CHECK_STR(out, "example.com");
    spam_checks_org_domain(NULL, "localhost", out, sizeof(out));
    CHECK_STR(out, "localhost");
}

int
main(void)
{
    test_builtin_checks();
    test_regex_rules();
    test_gtube_and_actions();
    test_headers();
    test_inputs();
    test_dnsbl();
    test_uribl_and_rerun();
    test_greylist_band();
    test_rate_limit();
    test_bayes_symbol();
    test_shipped_rules();
    test_org_domain();
    test_prepare_fd();
    UNIT_DONE();
}
