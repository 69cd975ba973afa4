/*
 * tests/unit/test_sieve_run.c - sieve_run() over compiled scripts: the
 * RFC 5228 examples that use the core commands and tests (sections 2.x,
 * 4.x, 5.x, 9), each run on a message and checked against the expected
 * action list; match type edge cases (:matches "*", "?", escapes,
 * backtracking, case folding, UTF-8 "?"), comparators, address parts with
 * display names, comments, routes, groups and missing headers; header
 * unfolding; envelope (null reverse path); size bounds at N-1, N, N+1;
 * implicit keep rules and duplicate collapsing; every run limit broken
 * (steps, actions, redirects, match work, header bytes) gives an error
 * and the single implicit keep; unsupported commands give an error.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "filters/sieve_run.h"
#include "filters/sieve_validate.h"
#include "tests/unit/unit.h"

int main(void);

/* The action list as text: "keep* fileinto:X redirect:Y discard"
 * ("keep*" is the implicit keep). */
static void
render(const struct sieve_actions *actions, char *out, size_t out_len)
{
    static const char *const names[] = {"keep",    "discard:", "fileinto:", "redirect:",
                                        "reject:", "ereject:", "vacation"};
    size_t n = 0;
    out[0] = '\0';
    for (size_t i = 0; i < actions->count; i++) {
        const struct sieve_action *a = &actions->items[i];
        const char *t = a->type == SIEVE_ACTION_KEEP ? (a->is_implicit ? "keep*" : "keep")
                        : a->type == SIEVE_ACTION_DISCARD ? "discard"
                                                          : names[a->type];
        int w = snprintf(out + n, out_len - n, "%s%s%.*s%s%s%s%s%s", i == 0 ? "" : " ", t,
                         (int)a->target_len, a->target != NULL ? a->target : "",
                         a->flags != NULL ? "[" : "", a->flags != NULL ? a->flags : "",
                         a->flags != NULL ? "]" : "", a->is_create ? "+create" : "",
                         a->is_copy ? "+copy" : "");
        if (w < 0 || (size_t)w >= out_len - n) {
            return;
        }
        n += (size_t)w;
    }
}

static const char *msg_default = "Date: Tue, 1 Apr 1997 09:06:31 -0800 (PST)\r\n"
                                 "From: coyote@desert.example.org\r\n"
                                 "To: roadrunner@acme.example.com\r\n"
                                 "Subject: I have a present for you\r\n"
                                 "\r\n"
                                 "Look, I'm sorry about the whole anvil thing\r\n";

struct run_case {
    const char *name;
    const char *script;
    const char *header; /* NULL: msg_default */
    const char *envelope_from;
    const char *envelope_to;
    uint64_t size_bytes;
    int want_rc;
    const char *want; /* rendered actions */
};

static const struct run_case cases[] = {
    /* ---- RFC 5228 examples ---- */
    {"2.9 if/elsif/else: from coyote -> discard",
     "require \"fileinto\";\n"
     "if header :contains \"from\" \"coyote\" {\n   discard;\n"
     "} elsif header :contains [\"subject\"] [\"$$$\"] {\n   discard;\n"
     "} else {\n   fileinto \"INBOX\";\n}\n",
     NULL, NULL, NULL, 100, 0, "discard"},
    {"2.9 if/elsif/else: subject $$$ -> discard",
     "require \"fileinto\";\n"
     "if header :contains \"from\" \"coyote\" {\n   discard;\n"
     "} elsif header :contains [\"subject\"] [\"$$$\"] {\n   discard;\n"
     "} else {\n   fileinto \"INBOX\";\n}\n",
     "From: bird@example.com\r\nSubject: make $$$ fast\r\n\r\n", NULL, NULL, 100, 0, "discard"},
    {"2.9 if/elsif/else: else -> fileinto",
     "require \"fileinto\";\n"
     "if header :contains \"from\" \"coyote\" {\n   discard;\n"
     "} elsif header :contains [\"subject\"] [\"$$$\"] {\n   discard;\n"
     "} else {\n   fileinto \"INBOX\";\n}\n",
     "From: bird@example.com\r\nSubject: hello\r\n\r\n", NULL, NULL, 100, 0, "fileinto:INBOX"},
    {"3.1 redirect chain: coyote",
     "if header :contains [\"From\"] [\"coyote\"] {\n   redirect \"acm@example.com\";\n"
     "} elsif header :contains \"Subject\" \"$$$\" {\n   redirect \"ceo@example.com\";\n"
     "} else {\n   redirect \"postmaster@example.com\";\n}\n",
     NULL, NULL, NULL, 100, 0, "redirect:acm@example.com"},
    {"3.1 redirect chain: else",
     "if header :contains [\"From\"] [\"coyote\"] {\n   redirect \"acm@example.com\";\n"
     "} elsif header :contains \"Subject\" \"$$$\" {\n   redirect \"ceo@example.com\";\n"
     "} else {\n   redirect \"postmaster@example.com\";\n}\n",
     "From: x@y\r\n\r\n", NULL, NULL, 100, 0, "redirect:postmaster@example.com"},
    {"3.2 require only: implicit keep", "require [\"fileinto\"];\n", NULL, NULL, NULL, 100, 0,
     "keep*"},
    {"3.3 stop before fileinto", "require \"fileinto\";\nif true { stop; }\nfileinto \"x\";\n",
     NULL, NULL, NULL, 100, 0, "keep*"},
    {"3.3 stop keeps earlier actions",
     "require \"fileinto\";\nfileinto \"a\";\nstop;\nfileinto \"b\";\n", NULL, NULL, NULL, 100, 0,
     "fileinto:a"},
    {"4.1 fileinto on from coyote",
     "require \"fileinto\";\nif header :contains [\"from\"] \"coyote\" {\n"
     "   fileinto \"INBOX.harassment\";\n}\n",
     NULL, NULL, NULL, 100, 0, "fileinto:INBOX.harassment"},
    {"4.2 redirect", "redirect \"bart@example.com\";\n", NULL, NULL, NULL, 100, 0,
     "redirect:bart@example.com"},
    {"4.3 keep", "keep;\n", NULL, NULL, NULL, 100, 0, "keep"},
    {"4.4 discard on idiot",
     "if header :contains [\"from\"] [\"idiot@example.com\"] {\n   discard;\n}\n",
     "From: The Idiot <IDIOT@example.com>\r\n\r\n", NULL, NULL, 100, 0, "discard"},
    {"4.4 discard not taken",
     "if header :contains [\"from\"] [\"idiot@example.com\"] {\n   discard;\n}\n", NULL, NULL,
     NULL, 100, 0, "keep*"},
    {"5.1 address :is :all",
     "if address :is :all \"from\" \"tim@example.com\" {\n discard;\n}\n",
     "From: Tim <tim@example.com>\r\n\r\n", NULL, NULL, 100, 0, "discard"},
    {"5.4 envelope :all :is from",
     "require \"envelope\";\nif envelope :all :is \"from\" \"tim@example.com\" {\n discard;\n}\n",
     NULL, "tim@example.com", "me@example.org", 100, 0, "discard"},
    {"5.5 exists From and Date",
     "if exists [\"From\",\"Date\"] {\n discard;\n}\n", NULL, NULL, NULL, 100, 0, "discard"},
    {"5.5 exists one missing",
     "if exists [\"From\",\"X-Nope\"] {\n discard;\n}\n", NULL, NULL, NULL, 100, 0, "keep*"},
    {"5.6 header :contains subject",
     "if header :contains [\"To\", \"Cc\"] [\"me@example.com\", \"me00@landru.example.com\"] "
     "{ discard; }\n",
     "To: Me <ME00@landru.example.com>\r\n\r\n", NULL, NULL, 100, 0, "discard"},
    {"5.8 not true", "if not true { discard; }\n", NULL, NULL, NULL, 100, 0, "keep*"},
    {"5.2/5.3 allof anyof",
     "if allof (true, anyof (false, header :is \"subject\" \"I have a present for you\")) "
     "{ discard; }\n",
     NULL, NULL, NULL, 100, 0, "discard"},
    {"5.2 allof short-circuit false",
     "if allof (false, true) { discard; }\n", NULL, NULL, NULL, 100, 0, "keep*"},
    {"5.9 size :over 1M at 1M is false", "if size :over 1M { discard; }\n", NULL, NULL, NULL,
     1048576, 0, "keep*"},
    {"5.9 size :over 1M at 1M+1", "if size :over 1M { discard; }\n", NULL, NULL, NULL, 1048577,
     0, "discard"},
    {"5.9 size :under 100 at 99", "if size :under 100 { discard; }\n", NULL, NULL, NULL, 99, 0,
     "discard"},
    {"5.9 size :under 100 at 100", "if size :under 100 { discard; }\n", NULL, NULL, NULL, 100, 0,
     "keep*"},
    {"9 example script, frobnitzm",
     "require \"fileinto\";\n"
     "if header :is \"Sender\" \"owner-ietf-mta-filters@imc.org\" {\n"
     "        fileinto \"filter\";\n"
     "} elsif address :DOMAIN :is [\"From\", \"To\"] \"example.com\" {\n"
     "        keep;\n"
     "} elsif anyof (NOT address :all :contains [\"To\", \"Cc\", \"Bcc\"] \"me@example.com\",\n"
     "               header :matches \"subject\" [\"*make*money*fast*\", \"*university*dipl*mas*\"]) {\n"
     "        fileinto \"spam\";\n"
     "} else {\n"
     "        fileinto \"personal\";\n"
     "}\n",
     "Sender: owner-ietf-mta-filters@imc.org\r\n\r\n", NULL, NULL, 100, 0, "fileinto:filter"},
    {"9 example script, domain keep",
     "require \"fileinto\";\n"
     "if header :is \"Sender\" \"owner-ietf-mta-filters@imc.org\" {\n"
     "        fileinto \"filter\";\n"
     "} elsif address :DOMAIN :is [\"From\", \"To\"] \"example.com\" {\n"
     "        keep;\n"
     "} elsif anyof (NOT address :all :contains [\"To\", \"Cc\", \"Bcc\"] \"me@example.com\",\n"
     "               header :matches \"subject\" [\"*make*money*fast*\", \"*university*dipl*mas*\"]) {\n"
     "        fileinto \"spam\";\n"
     "} else {\n"
     "        fileinto \"personal\";\n"
     "}\n",
     "From: Boss <boss@Example.COM>\r\nTo: me@example.com\r\n\r\n", NULL, NULL, 100, 0, "keep"},
    {"9 example script, spam",
     "require \"fileinto\";\n"
     "if header :is \"Sender\" \"owner-ietf-mta-filters@imc.org\" {\n"
     "        fileinto \"filter\";\n"
     "} elsif address :DOMAIN :is [\"From\", \"To\"] \"example.com\" {\n"
     "        keep;\n"
     "} elsif anyof (NOT address :all :contains [\"To\", \"Cc\", \"Bcc\"] \"me@example.com\",\n"
     "               header :matches \"subject\" [\"*make*money*fast*\", \"*university*dipl*mas*\"]) {\n"
     "        fileinto \"spam\";\n"
     "} else {\n"
     "        fileinto \"personal\";\n"
     "}\n",
     "From: a@b.org\r\nTo: me@example.org\r\nCc: Me <me@example.com>\r\n"
     "Subject: MAKE lots of MONEY really FAST\r\n\r\n",
     NULL, NULL, 100, 0, "fileinto:spam"},
    {"9 example script, personal",
     "require \"fileinto\";\n"
     "if header :is \"Sender\" \"owner-ietf-mta-filters@imc.org\" {\n"
     "        fileinto \"filter\";\n"
     "} elsif address :DOMAIN :is [\"From\", \"To\"] \"example.com\" {\n"
     "        keep;\n"
     "} elsif anyof (NOT address :all :contains [\"To\", \"Cc\", \"Bcc\"] \"me@example.com\",\n"
     "               header :matches \"subject\" [\"*make*money*fast*\", \"*university*dipl*mas*\"]) {\n"
     "        fileinto \"spam\";\n"
     "} else {\n"
     "        fileinto \"personal\";\n"
     "}\n",
     "From: a@b.org\r\nTo: x@y.org\r\nCc: me@example.com\r\nSubject: lunch\r\n\r\n", NULL, NULL, 100, 0,
     "fileinto:personal"},

    /* ---- implicit keep and collapsing ---- */
    {"keep + fileinto both", "require \"fileinto\";\nkeep;\nfileinto \"a\";\n", NULL, NULL, NULL,
     100, 0, "keep fileinto:a"},
    {"discard then keep: keep stays", "discard;\nkeep;\n", NULL, NULL, NULL, 100, 0,
     "discard keep"},
    {"duplicate fileinto collapses",
     "require \"fileinto\";\nfileinto \"a\";\nfileinto \"a\";\nfileinto \"b\";\n", NULL, NULL,
     NULL, 100, 0, "fileinto:a fileinto:b"},
    {"keep then fileinto INBOX: one copy",
     "require \"fileinto\";\nkeep;\nfileinto \"inbox\";\nfileinto \"INBOX.sub\";\n", NULL, NULL,
     NULL, 100, 0, "keep fileinto:INBOX.sub"},
    {"fileinto INBOX then keep: one copy",
     "require \"fileinto\";\nfileinto \"INBOX\";\nkeep;\n", NULL, NULL, NULL, 100, 0,
     "fileinto:INBOX"},
    {"duplicate redirect and keep collapse",
     "redirect \"x@y\";\nkeep;\nredirect \"x@y\";\nkeep;\n", NULL, NULL, NULL, 100, 0,
     "redirect:x@y keep"},
    {"redirect :copy keeps implicit keep",
     "require \"copy\";\nredirect :copy \"x@y\";\n", NULL, NULL, NULL, 100, 0,
     "redirect:x@y+copy keep*"},
    {"empty script", "", NULL, NULL, NULL, 100, 0, "keep*"},
    {"nested if with stop inside",
     "if true { if true { stop; } discard; }\ndiscard;\n", NULL, NULL, NULL, 100, 0, "keep*"},

    /* ---- header fields ---- */
    {"folded subject unfolds",
     "if header :is \"subject\" \"a long  subject\" { discard; }\n",
     "Subject: a long\r\n  subject\r\n\r\n", NULL, NULL, 100, 0, "discard"},
    {"LF-only header block", "if header :is \"subject\" \"hi\" { discard; }\n",
     "X: 1\nSubject:   hi  \nY: 2\n\n", NULL, NULL, 100, 0, "discard"},
    {"header after blank line ignored", "if exists \"subject\" { discard; }\n",
     "X: 1\r\n\r\nSubject: body\r\n", NULL, NULL, 100, 0, "keep*"},
    {"second occurrence matches", "if header :is \"received\" \"b\" { discard; }\n",
     "Received: a\r\nReceived: b\r\n\r\n", NULL, NULL, 100, 0, "discard"},
    {"missing header: :matches * false", "if header :matches \"x-nope\" \"*\" { discard; }\n",
     NULL, NULL, NULL, 100, 0, "keep*"},
    {"empty header: :is \"\" true", "if header :is \"x-empty\" \"\" { discard; }\n",
     "X-Empty:\r\n\r\n", NULL, NULL, 100, 0, "discard"},
    {"name with space before colon", "if header :is \"subject\" \"x\" { discard; }\n",
     "Subject : x\r\n\r\n", NULL, NULL, 100, 0, "discard"},

    {"RFC 2047 Q word", "if header :is \"subject\" \"caf\xc3\xa9 ok\" { discard; }\n",
     "Subject: =?UTF-8?Q?caf=C3=A9_ok?=\r\n\r\n", NULL, NULL, 100, 0, "discard"},
    {"RFC 2047 B words, space between dropped",
     "if header :is \"subject\" \"Hello world!\" { discard; }\n",
     "Subject: =?utf-8?b?SGVsbG8g?= =?utf-8*en?B?d29ybGQ=?=!\r\n\r\n", NULL, NULL, 100, 0,
     "discard"},
    {"RFC 2047 text around words kept",
     "if header :is \"subject\" \"re: x y z\" { discard; }\n",
     "Subject: re: =?us-ascii?q?x?= y =?us-ascii?q?z?=\r\n\r\n", NULL, NULL, 100, 0,
     "discard"},
    {"RFC 2047 unknown charset left raw",
     "if header :is \"subject\" \"=?koi8-r?q?x?=\" { discard; }\n",
     "Subject: =?koi8-r?q?x?=\r\n\r\n", NULL, NULL, 100, 0, "discard"},
    {"RFC 2047 broken word left raw", "if header :is \"subject\" \"=?utf-8?q?a b?=\" { discard; }\n",
     "Subject: =?utf-8?q?a b?=\r\n\r\n", NULL, NULL, 100, 0, "discard"},

    /* ---- match types and comparators ---- */
    {":matches * on anything", "if header :matches \"subject\" \"*\" { discard; }\n", NULL, NULL,
     NULL, 100, 0, "discard"},
    {":matches ? one char", "if header :matches \"x\" \"?\" { discard; }\n", "X: \xc3\xa9\r\n\r\n",
     NULL, NULL, 100, 0, "discard"},
    {":matches ? not two", "if header :matches \"x\" \"?\" { discard; }\n", "X: ab\r\n\r\n", NULL,
     NULL, 100, 0, "keep*"},
    {":matches escaped * literal", "if header :matches \"x\" \"a\\\\*b\" { discard; }\n",
     "X: a*b\r\n\r\n", NULL, NULL, 100, 0, "discard"},
    {":matches escaped * not wildcard", "if header :matches \"x\" \"a\\\\*b\" { discard; }\n",
     "X: axxb\r\n\r\n", NULL, NULL, 100, 0, "keep*"},
    {":matches backtracking", "if header :matches \"x\" \"*a*b?\" { discard; }\n",
     "X: xxaxxbxbz\r\n\r\n", NULL, NULL, 100, 0, "discard"},
    {":matches casemap default", "if header :matches \"x\" \"HELLO*\" { discard; }\n",
     "X: hello world\r\n\r\n", NULL, NULL, 100, 0, "discard"},
    {":matches i;octet is case-sensitive",
     "if header :comparator \"i;octet\" :matches \"x\" \"HELLO*\" { discard; }\n",
     "X: hello world\r\n\r\n", NULL, NULL, 100, 0, "keep*"},
    {":is i;octet exact", "if header :comparator \"i;octet\" :is \"x\" \"Hi\" { discard; }\n",
     "X: Hi\r\n\r\n", NULL, NULL, 100, 0, "discard"},
    {":contains empty key matches", "if header :contains \"x\" \"\" { discard; }\n",
     "X: q\r\n\r\n", NULL, NULL, 100, 0, "discard"},
    {":contains casemap", "if header :contains \"subject\" \"PRESENT\" { discard; }\n", NULL,
     NULL, NULL, 100, 0, "discard"},
    {"i;ascii-numeric :is leading zeros",
     "require \"comparator-i;ascii-numeric\";\n"
     "if header :comparator \"i;ascii-numeric\" :is \"x\" \"42\" { discard; }\n",
     "X: 0042abc\r\n\r\n", NULL, NULL, 100, 0, "discard"},
    {"i;ascii-numeric non-digits equal (infinity)",
     "require \"comparator-i;ascii-numeric\";\n"
     "if header :comparator \"i;ascii-numeric\" :is \"x\" \"abc\" { discard; }\n",
     "X: zzz\r\n\r\n", NULL, NULL, 100, 0, "discard"},

    /* ---- address parts ---- */
    {"address display name quoted with comma",
     "if address :is \"from\" \"j@x.org\" { discard; }\n",
     "From: \"Doe, John\" <j@x.org>\r\n\r\n", NULL, NULL, 100, 0, "discard"},
    {"address comment", "if address :is :localpart \"from\" \"j\" { discard; }\n",
     "From: j@x.org (John (the) Doe)\r\n\r\n", NULL, NULL, 100, 0, "discard"},
    {"address list second", "if address :is :domain \"to\" \"b.example\" { discard; }\n",
     "To: a@a.example,\r\n  B <b@B.Example>\r\n\r\n", NULL, NULL, 100, 0, "discard"},
    {"address group members", "if address :is \"to\" \"m2@x\" { discard; }\n",
     "To: team: m1@x, M <m2@x>;, other@y\r\n\r\n", NULL, NULL, 100, 0, "discard"},
    {"address after group", "if address :is \"to\" \"other@y\" { discard; }\n",
     "To: team: m1@x, M <m2@x>;, other@y\r\n\r\n", NULL, NULL, 100, 0, "discard"},
    {"empty group no address", "if address :matches \"to\" \"*\" { discard; }\n",
     "To: undisclosed-recipients:;\r\n\r\n", NULL, NULL, 100, 0, "keep*"},
    {"route dropped", "if address :is \"from\" \"u@d\" { discard; }\n",
     "From: <@r1.example,@r2.example:u@d>\r\n\r\n", NULL, NULL, 100, 0, "discard"},
    {"missing address header", "if address :matches :all \"cc\" \"*\" { discard; }\n", NULL,
     NULL, NULL, 100, 0, "keep*"},
    {"invalid address: no :domain",
     "if address :matches :domain \"from\" \"*\" { discard; }\n", "From: nobody\r\n\r\n", NULL,
     NULL, 100, 0, "keep*"},
    {"invalid address: :all raw", "if address :is :all \"from\" \"nobody\" { discard; }\n",
     "From: nobody\r\n\r\n", NULL, NULL, 100, 0, "discard"},
    {"quoted localpart", "if address :is :localpart \"from\" \"john doe\" { discard; }\n",
     "From: \"john doe\"@x.org\r\n\r\n", NULL, NULL, 100, 0, "discard"},

    /* ---- envelope ---- */
    {"envelope null reverse path matches \"\" for :domain",
     "require \"envelope\";\nif envelope :is :domain \"from\" \"\" { discard; }\n", NULL, "", "a@b",
     100, 0, "discard"},
    {"envelope to :localpart",
     "require \"envelope\";\nif envelope :is :localpart \"to\" \"Alice\" { discard; }\n", NULL,
     "x@y", "alice@example.org", 100, 0, "discard"},
    {"envelope auth absent: nothing matches",
     "require \"envelope\";\nif envelope :is \"auth\" \"\" { discard; }\n"
     "if envelope :is :localpart \"auth\" \"bob\" { redirect \"b@x\"; }\n",
     "X: 1\r\n\r\n", NULL, NULL, 100, 0, "keep*"},
    {"stop inside elsif block skips the rest",
     "require \"fileinto\";\nif false { keep; } elsif true { fileinto \"a\"; stop; } else { keep; }\n"
     "fileinto \"b\";\n",
     NULL, NULL, NULL, 100, 0, "fileinto:a"},
    {"else after taken if chain then next if evaluates",
     "if true { keep; } else { discard; }\nif false { discard; } else { redirect \"r@x\"; }\n",
     NULL, NULL, NULL, 100, 0, "keep redirect:r@x"},
    {"envelope unknown: false",
     "require \"envelope\";\nif envelope :matches \"to\" \"*\" { discard; }\n", NULL, NULL, NULL,
     100, 0, "keep*"},

    /* ---- errors: fallback to keep ---- */
    {"vacation keeps the implicit keep",
     "require \"vacation\";\nvacation \"away\";\n", NULL, NULL, NULL, 100, 0, "vacation keep*"},
    {"body without a body is false",
     "require \"body\";\nif body :contains \"x\" { discard; }\n", NULL, NULL, NULL, 100, 0,
     "keep*"},
    {"five redirects over the limit of 4",
     "redirect \"a@x\";\nredirect \"b@x\";\nredirect \"c@x\";\nredirect \"d@x\";\n"
     "redirect \"e@x\";\n",
     NULL, NULL, NULL, 100, -E2BIG, "keep*"},
    {"four redirects fine",
     "redirect \"a@x\";\nredirect \"b@x\";\nredirect \"c@x\";\nredirect \"d@x\";\n"
     "redirect \"a@x\";\n",
     NULL, NULL, NULL, 100, 0, "redirect:a@x redirect:b@x redirect:c@x redirect:d@x"},
};

static void
run_one(const struct run_case *c, const struct sieve_run_limits *limits)
{
    struct sieve_script *script = NULL;
    struct sieve_errors errors;
    int rc = sieve_compile(c->script, strlen(c->script), NULL, &script, &errors);
    if (rc != 0) {
        fprintf(stderr, "%s: compile failed: %s\n", c->name,
                errors.count > 0 ? errors.items[0].text : "?");
        CHECK(rc == 0);
        return;
    }
    const char *header = c->header != NULL ? c->header : msg_default;
    struct sieve_message message = {.header = header,
                                    .header_len = strlen(header),
                                    .envelope_from = c->envelope_from,
                                    .envelope_to = c->envelope_to,
                                    .size_bytes = c->size_bytes};
    struct sieve_actions actions;
    struct sieve_run_error error;
    sieve_actions_init(&actions);
    rc = sieve_run(script, &message, NULL, limits, &actions, &error);
    sieve_actions_finish(&actions);
    char got[1024];
    render(&actions, got, sizeof(got));
    sieve_actions_free(&actions);
    if (rc != c->want_rc || strcmp(got, c->want) != 0) {
        fprintf(stderr, "%s: rc %d (want %d), error \"%s\"\n", c->name, rc, c->want_rc,
                error.text);
    }
    CHECK(rc == c->want_rc);
    CHECK_STR(got, c->want);
    if (rc < 0) {
        CHECK(error.text[0] != '\0');
    }
    sieve_script_free(&script);
}

static int
run_text(const char *script_text, const char *header, const struct sieve_run_limits *limits,
         char *got, size_t got_len, struct sieve_run_error *error)
{
    struct sieve_script *script = NULL;
    struct sieve_errors errors;
    int rc = sieve_compile(script_text, strlen(script_text), NULL, &script, &errors);
    CHECK(rc == 0);
    if (rc != 0) {
        return -1000;
    }
    struct sieve_message message = {.header = header, .header_len = strlen(header),
                                    .size_bytes = 10};
    struct sieve_actions actions;
    sieve_actions_init(&actions);
    rc = sieve_run(script, &message, NULL, limits, &actions, error);
    sieve_actions_finish(&actions);
    render(&actions, got, got_len);
    sieve_actions_free(&actions);
    sieve_script_free(&script);
    return rc;
}

static void
test_limits(void)
{
    char got[512];
    struct sieve_run_error error;
    /* steps: 3 commands + 0 tests = 3 steps; limit 3 passes, 2 fails */
    struct sieve_run_limits limits = {.steps_max = 3};
    CHECK(run_text("keep;\nkeep;\nkeep;\n", "X: 1\r\n\r\n", &limits, got, sizeof(got), &error) ==
          0);
    CHECK_STR(got, "keep");
    limits.steps_max = 2;
    CHECK(run_text("keep;\nkeep;\nkeep;\n", "X: 1\r\n\r\n", &limits, got, sizeof(got), &error) ==
          -E2BIG);
    CHECK_STR(got, "keep*");
    CHECK(error.line == 3);

    /* actions: 2 distinct allowed, the third fails */
    struct sieve_run_limits al = {.actions_max = 2};
    CHECK(run_text("require \"fileinto\";\nfileinto \"a\";\nfileinto \"b\";\nfileinto \"a\";\n",
                   "X: 1\r\n\r\n", &al, got, sizeof(got), &error) == 0);
    CHECK_STR(got, "fileinto:a fileinto:b");
    CHECK(run_text("require \"fileinto\";\nfileinto \"a\";\nfileinto \"b\";\nfileinto \"c\";\n",
                   "X: 1\r\n\r\n", &al, got, sizeof(got), &error) == -E2BIG);
    CHECK_STR(got, "keep*");

    /* redirects lowered to 1 */
    struct sieve_run_limits rl = {.redirects_max = 1};
    CHECK(run_text("redirect \"a@x\";\nredirect \"b@x\";\n", "X: 1\r\n\r\n", &rl, got,
                   sizeof(got), &error) == -E2BIG);
    CHECK_STR(got, "keep*");
    CHECK(error.line == 2);

    /* a limit above the default counts as the default */
    struct sieve_run_limits big = {.redirects_max = 1000};
    CHECK(run_text("redirect \"a@x\";\nredirect \"b@x\";\nredirect \"c@x\";\nredirect \"d@x\";\n"
                   "redirect \"e@x\";\n",
                   "X: 1\r\n\r\n", &big, got, sizeof(got), &error) == -E2BIG);

    /* match work: a :matches whose last star backtracks over a long value
     * (about 20000 x 50 comparisons) */
    static char header[20000];
    size_t n = (size_t)snprintf(header, sizeof(header), "X: ");
    while (n < sizeof(header) - 8) {
        header[n++] = 'a';
    }
    memcpy(header + n, "\r\n\r\n", 5);
    struct sieve_run_limits wl = {.match_work_max = 100000};
    CHECK(run_text("if header :matches \"x\" \"*aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab\" { discard; }\n", header, &wl, got,
                   sizeof(got), &error) == -E2BIG);
    CHECK_STR(got, "keep*");
    /* the same with the default budget still ends (the budget bounds it) */
    int rc = run_text("if header :matches \"x\" \"*aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab\" { discard; }\n", header, NULL,
                      got, sizeof(got), &error);
    CHECK(rc == 0 || rc == -E2BIG);
    CHECK_STR(got, "keep*");
    /* a linear :matches on the same value passes under the small budget */
    CHECK(run_text("if header :matches \"x\" \"a*a\" { discard; }\n", header, &wl, got,
                   sizeof(got), &error) == 0);
    CHECK_STR(got, "discard");

    /* header block bytes */
    size_t big_len = SIEVE_RUN_HEADER_BYTES_MAX + 1;
    char *huge = malloc(big_len);
    CHECK(huge != NULL);
    if (huge != NULL) {
        memset(huge, 'a', big_len);
        struct sieve_script *script = NULL;
        struct sieve_errors errors;
        CHECK(sieve_compile("discard;", 8, NULL, &script, &errors) == 0);
        struct sieve_message m = {.header = huge, .header_len = big_len};
        struct sieve_actions actions;
        sieve_actions_init(&actions);
        CHECK(sieve_run(script, &m, NULL, NULL, &actions, &error) == -EFBIG);
        sieve_actions_finish(&actions);
        render(&actions, got, sizeof(got));
        CHECK_STR(got, "keep*");
        sieve_actions_free(&actions);
        m.header_len = big_len - 1;
        sieve_actions_init(&actions);
        CHECK(sieve_run(script, &m, NULL, NULL, &actions, &error) == 0);
        sieve_actions_finish(&actions);
        render(&actions, got, sizeof(got));
        CHECK_STR(got, "discard");
        sieve_actions_free(&actions);
        sieve_script_free(&script);
        free(huge);
    }
}

static void
test_glob(void)
{
    struct {
        const char *value;
        const char *pattern;
        int want;
    } g[] = {
        {"", "*", 1},       {"", "", 1},          {"", "?", 0},          {"a", "", 0},
        {"abc", "a?c", 1},  {"abc", "a*", 1},     {"abc", "*c", 1},      {"abc", "*b", 0},
        {"a*c", "a\\*c", 1}, {"abc", "a\\*c", 0}, {"a?c", "a\\?c", 1},   {"abc", "a\\?c", 0},
        {"a\\c", "a\\\\c", 1}, {"ab", "a\\", 0},  {"a\\", "a\\", 1},     {"aaab", "*ab", 1},
        {"mississippi", "*sip*", 1}, {"mississippi", "m*s*s*i", 1}, {"mississippi", "*x*", 0},
        {"ABC", "abc", 1},  {"\xc3\xa9t\xc3\xa9", "?t?", 1}, {"\xc3\xa9t\xc3\xa9", "??t", 0},
    };
    for (size_t i = 0; i < sizeof(g) / sizeof(g[0]); i++) {
        uint64_t work = 0;
        int rc = sieve_glob_match(g[i].value, strlen(g[i].value), g[i].pattern,
                                  strlen(g[i].pattern), SIEVE_CMP_ASCII_CASEMAP, &work, 1000);
        if (rc != g[i].want) {
            fprintf(stderr, "glob \"%s\" ~ \"%s\": %d want %d\n", g[i].value, g[i].pattern, rc,
                    g[i].want);
        }
        CHECK(rc == g[i].want);
    }
    uint64_t work = 0;
    CHECK(sieve_glob_match("ABC", 3, "abc", 3, SIEVE_CMP_OCTET, &work, 1000) == 0);
    work = 0;
    CHECK(sieve_glob_match("aaaaaaaaaaaaaaaaaaaa", 20, "*a*a*a*b", 8, SIEVE_CMP_OCTET, &work, 10) ==
          -E2BIG);
}

int
main(void)
{
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        run_one(&cases[i], NULL);
    }
    test_limits();
    test_glob();
    UNIT_DONE();
}
