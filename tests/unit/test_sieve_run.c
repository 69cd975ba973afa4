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
#include <strings.h>

#include "filters/sieve_run.h"
#include "filters/sieve_run_internal.h"
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
    {"RFC 2047 any charset iconv knows (KOI8-R)",
     "if header :is \"subject\" \"\xd0\x9f\xd1\x80\xd0\xb8\" { discard; }\n",
     "Subject: =?koi8-r?q?=F0=D2=C9?=\r\n\r\n", NULL, NULL, 100, 0, "discard"},
    {"RFC 2047 unknown charset left raw",
     "if header :is \"subject\" \"=?x-no-such-charset?q?x?=\" { discard; }\n",
     "Subject: =?x-no-such-charset?q?x?=\r\n\r\n", NULL, NULL, 100, 0, "discard"},
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

    /* Field scans count as match work even when nothing matches: 2000
     * fields looked at per exists, four times, over a budget of 5000. */
    static char many[2000 * 7 + 8];
    size_t many_len = 0;
    for (size_t i = 0; i < 2000; i++) {
        memcpy(many + many_len, "A: b\r\n", 6);
        many_len += 6;
    }
    memcpy(many + many_len, "\r\n", 3);
    struct sieve_run_limits fl = {.match_work_max = 5000};
    CHECK(run_text("if exists \"x\" { discard; }\nif exists \"x\" { discard; }\n", many, &fl,
                   got, sizeof(got), &error) == 0);
    CHECK(run_text("if exists \"x\" { discard; }\nif exists \"x\" { discard; }\n"
                   "if exists \"x\" { discard; }\n",
                   many, &fl, got, sizeof(got), &error) == -E2BIG);
    CHECK_STR(got, "keep*");
    CHECK(error.line == 3);

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

/* ---- extensions: a test environment ---- */

struct test_script {
    bool is_global;
    const char *name;
    const char *text;
    struct sieve_script *compiled;
};

static struct test_script test_scripts[] = {
    {false, "always_allow", "if address :is \"from\" \"boss@example.com\" { keep; }\n", NULL},
    {true, "spam_tests",
     "require [\"fileinto\", \"spamtest\", \"relational\", \"comparator-i;ascii-numeric\"];\n"
     "if spamtest :value \"ge\" :comparator \"i;ascii-numeric\" \"5\" { fileinto \"Junk\"; }\n",
     NULL},
    {false, "spam_tests", "if header :contains \"subject\" \"$$$\" { discard; }\n", NULL},
    {false, "mailing_lists",
     "require \"fileinto\";\nif exists \"list-id\" { fileinto \"lists\"; }\n", NULL},
    {false, "subject_tests",
     "require [\"variables\", \"include\"];\nglobal \"test\";\n"
     "if header :contains \"Subject\" \"${test}\" { discard; }\n",
     NULL},
    {false, "loop_a", "require \"include\";\ninclude \"loop_b\";\n", NULL},
    {false, "loop_b", "require \"include\";\ninclude \"loop_a\";\n", NULL},
    {false, "self", "require \"include\";\ninclude \"self\";\n", NULL},
    {false, "counter",
     "require [\"variables\", \"include\"];\nset \"global.n\" \"${global.n}x\";\n", NULL},
    {false, "returns",
     "require [\"include\", \"fileinto\"];\nfileinto \"before\";\nreturn;\nfileinto \"after\";\n",
     NULL},
    {false, "stops", "require [\"include\", \"fileinto\"];\nfileinto \"s\";\nstop;\n", NULL},
    {false, "locals",
     "require [\"variables\", \"include\"];\nset \"local\" \"inner\";\n"
     "if string :is \"${mainvar}\" \"\" { discard; }\n",
     NULL},
    {false, "d1", "require \"include\";\ninclude \"d2\";\n", NULL},
    {false, "d2", "require \"include\";\ninclude \"d3\";\n", NULL},
    {false, "d3", "require \"include\";\ninclude \"d4\";\n", NULL},
    {false, "d4", "require \"include\";\ninclude \"d5\";\n", NULL},
    {false, "d5", "require \"include\";\ninclude \"d6\";\n", NULL},
    {false, "d6", "require \"include\";\ninclude \"d7\";\n", NULL},
    {false, "d7", "require \"include\";\ninclude \"d8\";\n", NULL},
    {false, "d8", "require \"include\";\ninclude \"d9\";\n", NULL},
    {false, "d9", "require \"include\";\ninclude \"d10\";\n", NULL},
    {false, "d10", "require \"include\";\ninclude \"d11\";\n", NULL},
    {false, "d11", "keep;\n", NULL},
};

/* "genN" (N < 300): generated scripts, "keep;" each, for the include bound. */
static struct sieve_script *gen_scripts[300];

static int
env_include_load(void *ctx, bool is_global, const char *name,
                 const struct sieve_script **script_out)
{
    (void)ctx;
    if (!is_global && strncmp(name, "gen", 3) == 0) {
        unsigned long n = strtoul(name + 3, NULL, 10);
        if (n >= 300) {
            return -ENOENT;
        }
        if (gen_scripts[n] == NULL) {
            struct sieve_errors errors;
            if (sieve_compile("keep;", 5, NULL, &gen_scripts[n], &errors) != 0) {
                return -EIO;
            }
        }
        *script_out = gen_scripts[n];
        return 0;
    }
    for (size_t i = 0; i < sizeof(test_scripts) / sizeof(test_scripts[0]); i++) {
        struct test_script *t = &test_scripts[i];
        if (t->is_global != is_global || strcmp(t->name, name) != 0) {
            continue;
        }
        if (t->compiled == NULL) {
            struct sieve_errors errors;
            if (sieve_compile(t->text, strlen(t->text), NULL, &t->compiled, &errors) != 0) {
                fprintf(stderr, "include %s: %s\n", name, errors.items[0].text);
                return -EIO;
            }
        }
        *script_out = t->compiled;
        return 0;
    }
    return -ENOENT;
}

static int
env_mailbox_exists(void *ctx, const char *mailbox, size_t len)
{
    (void)ctx;
    static const char *const boxes[] = {"INBOX", "Junk", "Partners"};
    for (size_t i = 0; i < sizeof(boxes) / sizeof(boxes[0]); i++) {
        if (strlen(boxes[i]) == len && memcmp(boxes[i], mailbox, len) == 0) {
            return 1;
        }
    }
    if (len == 5 && memcmp(mailbox, "Error", 5) == 0) {
        return -EIO;
    }
    return 0;
}

static char seen_keys[4][SIEVE_RUN_DUPLICATE_KEY_BYTES];
static size_t seen_key_count;

static int
env_duplicate_seen(void *ctx, const char *key)
{
    (void)ctx;
    for (size_t i = 0; i < seen_key_count; i++) {
        if (strcmp(seen_keys[i], key) == 0) {
            return 1;
        }
    }
    return 0;
}

static int
env_list_contains(void *ctx, const char *list, const char *value, size_t len)
{
    (void)ctx;
    static const struct {
        const char *list;
        const char *value;
    } lists[] = {
        {":addrbook:default", "coyote@desert.example.org"},
        {":addrbook:default", "friend@example.com"},
        {"tag:example.com,2011:blocked", "spam.example"},
        {":addrbook:empty", NULL},
    };
    bool is_known = false;
    for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++) {
        if (strcmp(lists[i].list, list) != 0) {
            continue;
        }
        is_known = true;
        if (lists[i].value != NULL && strlen(lists[i].value) == len &&
            strncasecmp(lists[i].value, value, len) == 0) {
            return 1;
        }
    }
    return is_known ? 0 : -ENOENT;
}

static const struct sieve_env test_env = {
    .mailbox_exists = env_mailbox_exists,
    .include_load = env_include_load,
    .duplicate_seen = env_duplicate_seen,
    .list_contains = env_list_contains,
};

struct ext_case {
    const char *name;
    const char *script;
    const char *header; /* NULL: msg_default */
    const char *body;   /* NULL: none */
    const char *from;   /* envelope */
    const char *to;
    int want_rc;
    const char *want;
    const char *want_flags; /* implicit_flags; NULL: none */
    bool is_virus_scanned;
    int64_t now_unix; /* 0: 1971-01-01 */
};

#define MSG_LISTS                                                                                  \
    "Received: from a by b; Tue, 1 Apr 1997 09:06:31 -0800\r\n" \
    "Received: from c by d; Wed, 2 Apr 1997 10:00:00 +0000\r\n" \
    "Received: from e by f; Thu, 3 Apr 2003 11:00:00 +0100\r\n" \
    "Subject: [acme-users] [fwd] version 1.0 is out\r\n" \
    "List-ID: Acme users <acme-users@lists.example.org>\r\n" \
    "To: coyote@ACME.Example.COM, baz@example.com\r\n" \
    "Cc: qux@example.com\r\n" \
    "X-A: one\r\n" \
    "X-A: two\r\n" \
    "X-A: three\r\n" \
    "\r\n"

static const struct ext_case ext_cases[] = {
    /* ---- RFC 5229 variables ---- */
    {"5229 3: expansion, case-insensitive names",
     "require \"variables\";\nset \"honorific\" \"Mr\";\nset \"first_name\" \"Wile\";\n"
     "set \"last_name\" \"Coyote\";\n"
     "set \"vacation\" text:\nDear ${HONORIFIC} ${last_name},\nI'm out, please leave a message "
     "after the meep.\n.\n;\n"
     "if string :is \"${vacation}\" \"Dear Mr Coyote,\r\nI'm out, please leave a message after "
     "the meep.\r\n\" { discard; }\n",
     NULL, NULL, NULL, NULL, 0, "discard", NULL, false},
    {"5229 3: not references stay, unknown is empty",
     "require \"variables\";\nset \"company\" \"ACME\";\n"
     "if allof (string :is \"&%${}!\" \"&%${}!\", string :is \"${doh!}\" \"${doh!}\",\n"
     "  string :is \"${BAD${Company}\" \"${BADACME\",\n"
     "  string :is \"${President, ${Company} Inc.}\" \"${President, ACME Inc.}\",\n"
     "  string :is \"x${unknown}y${1}z\" \"xyz\", string :is \"${a.b\" \"${a.b\")\n"
     "{ discard; }\n",
     NULL, NULL, NULL, NULL, 0, "discard", NULL, false},
    {"5229 4: set modifiers",
     "require [\"variables\", \"fileinto\"];\nset \"a\" \"juMBlEd lETteRS\";\n"
     "set :length \"b\" \"${a}\";\nif not string :is \"${b}\" \"15\" { redirect \"1@x\"; }\n"
     "set :lower \"b\" \"${a}\";\nif not string :is :comparator \"i;octet\" \"${b}\" "
     "\"jumbled letters\" { redirect \"2@x\"; }\n"
     "set :upperfirst \"b\" \"${a}\";\nif not string :comparator \"i;octet\" \"${b}\" "
     "\"JuMBlEd lETteRS\" { redirect \"3@x\"; }\n"
     "set :upperfirst :lower \"b\" \"${a}\";\nif not string :comparator \"i;octet\" \"${b}\" "
     "\"Jumbled letters\" { redirect \"4@x\"; }\n"
     "set :quotewildcard \"b\" \"Rock*\";\nif not string :comparator \"i;octet\" \"${b}\" "
     "\"Rock\\\\*\" { fileinto \"5\"; }\n"
     "set :upper \"b\" \"${a}\";\nif not string :comparator \"i;octet\" \"${b}\" "
     "\"JUMBLED LETTERS\" { fileinto \"6\"; }\n"
     "set :lowerfirst \"b\" \"ABC\";\nif not string :comparator \"i;octet\" \"${b}\" "
     "\"aBC\" { fileinto \"7\"; }\n"
     "set :length \"b\" \"\xc3\xa9t\xc3\xa9\";\nif not string \"${b}\" \"3\" "
     "{ fileinto \"8\"; }\n",
     NULL, NULL, NULL, NULL, 0, "keep*", NULL, false},
    {"5229 4: quotewildcard makes a literal pattern",
     "require \"variables\";\nset :quotewildcard \"p\" \"a*b?c\\\\\";\n"
     "if string :matches \"a*b?c\\\\\" \"${p}\" { discard; }\n"
     "if string :matches \"aXXbYc\\\\\" \"${p}\" { redirect \"no@x\"; }\n",
     NULL, NULL, NULL, NULL, 0, "discard", NULL, false},
    {"5229 5: string test with state",
     "require \"variables\";\nset \"state\" \"${state} pending\";\n"
     "if string :matches \" ${state} \" \"* pending *\" { discard; }\n",
     NULL, NULL, NULL, NULL, 0, "discard", NULL, false},
    {"5229 5: string :count ignores empty strings",
     "require [\"variables\", \"relational\", \"comparator-i;ascii-numeric\"];\n"
     "set \"a\" \"x\";\nif string :count \"eq\" :comparator \"i;ascii-numeric\" "
     "[\"${a}\", \"\", \"${none}\", \"y\"] \"2\" { discard; }\n",
     NULL, NULL, NULL, NULL, 0, "discard", NULL, false},
    {"5229 3.2: List-ID ${2}",
     "require [\"fileinto\", \"variables\"];\n"
     "if header :matches \"List-ID\" \"*<*@*\" { fileinto \"INBOX.lists.${2}\"; stop; }\n",
     "List-ID: Acme users <acme-users@lists.example.org>\r\n\r\n", NULL, NULL, NULL, 0,
     "fileinto:INBOX.lists.acme-users", NULL, false},
    {"5229 3.2: Subject [*] * takes the shortest",
     "require [\"fileinto\", \"variables\"];\n"
     "if header :matches \"Subject\" \"[*] *\" { fileinto \"INBOX.lists.${1}\"; stop; }\n",
     "Subject: [acme-users] [fwd] version 1.0 is out\r\n\r\n", NULL, NULL, NULL, 0,
     "fileinto:INBOX.lists.acme-users", NULL, false},
    {"5229 3.2: ${0} ${1} empty ${2} domain",
     "require [\"fileinto\", \"variables\"];\n"
     "if address :matches [\"To\", \"Cc\"] [\"coyote@**.com\", \"wile@**.com\"] {\n"
     "  fileinto \"INBOX.business.${2}\";\n"
     "  if string :is \"${0}/${1}/${3}\" \"coyote@ACME.Example.COM//\" { discard; }\n}\n",
     "To: coyote@ACME.Example.COM\r\n\r\n", NULL, NULL, NULL, 0,
     "fileinto:INBOX.business.ACME.Example discard", NULL, false},
    {"5229 3.2: failed match leaves the match values",
     "require [\"fileinto\", \"variables\"];\n"
     "if header :matches \"Subject\" \"* for *\" { set \"x\" \"${2}\"; }\n"
     "if header :matches \"Subject\" \"nope*\" { discard; }\n"
     "if string :is \"${2}\" \"you\" { fileinto \"ok\"; }\n",
     NULL, NULL, NULL, NULL, 0, "fileinto:ok", NULL, false},
    {"5229 3.2: ? captures one character, UTF-8 aware",
     "require [\"fileinto\", \"variables\"];\n"
     "if string :matches \"x\xc3\xa9y\" \"x?y\" { fileinto \"got-${1}\"; }\n",
     NULL, NULL, NULL, NULL, 0, "fileinto:got-\xc3\xa9", NULL, false},
    {"5229: variables in fileinto, redirect and reject reasons",
     "require [\"fileinto\", \"variables\", \"copy\"];\nset \"box\" \"Box\";\nset \"who\" \"me\";\n"
     "fileinto \"${box}.1\";\nredirect :copy \"${who}@example.com\";\n",
     NULL, NULL, NULL, NULL, 0, "fileinto:Box.1 redirect:me@example.com+copy", NULL, false},
    {"5229: redirect to an expanded quoted local part",
     "require \"variables\";\nset \"who\" \"\\\"john doe\\\"\";\nredirect \"${who}@example.com\";\n"
     "redirect \"\\\"jane doe\\\"@example.com\";\n",
     NULL, NULL, NULL, NULL, 0, "redirect:\"john doe\"@example.com redirect:\"jane doe\"@example.com",
     NULL, false},
    {"5229: fileinto an expanded name with a control character is a runtime error",
     "require [\"variables\", \"fileinto\"];\nset \"b\" \"a\r\nb\";\nfileinto \"${b}\";\n", NULL,
     NULL, NULL, NULL, -EINVAL, "keep*", NULL, false},
    {"5229: fileinto an expanded empty name is a runtime error",
     "require [\"variables\", \"fileinto\"];\nfileinto \"${nothing}\";\n", NULL, NULL, NULL,
     NULL, -EINVAL, "keep*", NULL, false},
    {"5229: redirect to an expanded non-address is a runtime error",
     "require \"variables\";\nset \"who\" \"not an address\";\nredirect \"${who}\";\n", NULL,
     NULL, NULL, NULL, -EINVAL, "keep*", NULL, false},

    /* ---- RFC 5232 imap4flags ---- */
    {"5232 7 ex1: setflag \\\\Deleted goes to the implicit keep",
     "require \"imap4flags\";\nif size :over 50 { setflag \"\\\\Deleted\"; }\n", NULL, NULL, NULL,
     NULL, 0, "keep*[\\Deleted]", "\\Deleted", false},
    {"5232 7 ex2: flag variable on fileinto :flags",
     "require [\"imap4flags\", \"fileinto\", \"variables\"];\n"
     "if header :contains \"from\" \"coyote\" {\n  setflag \"flagvar\" \"\\\\Flagged\";\n"
     "  fileinto :flags \"${flagvar}\" \"INBOX.From Boss\";\n}\n",
     NULL, NULL, NULL, NULL, 0, "fileinto:INBOX.From Boss[\\Flagged]", NULL, false},
    {"5232: add, remove, normalise (system flags case-insensitive, each once)",
     "require \"imap4flags\";\naddflag \"\\\\seen\";\naddflag [\"\\\\SEEN $Label1\", "
     "\"\\\\flagged  $Label1 \\\\Bogus bad(flag\"];\nremoveflag \"\\\\FLAGGED\";\n",
     NULL, NULL, NULL, NULL, 0, "keep*[\\Seen $Label1]", "\\Seen $Label1", false},
    {"5232: keep and fileinto take the internal variable at that moment",
     "require [\"imap4flags\", \"fileinto\"];\naddflag \"A\";\nfileinto \"one\";\n"
     "addflag \"B\";\nkeep;\nremoveflag \"A\";\n",
     NULL, NULL, NULL, NULL, 0, "fileinto:one[A] keep[A B]", "B", false},
    {"5232: keep :flags overrides the internal variable",
     "require \"imap4flags\";\naddflag \"A\";\nkeep :flags [\"\\\\Answered\", \"C\"];\n", NULL,
     NULL, NULL, NULL, 0, "keep[\\Answered C]", "A", false},
    {"5232 4: hasflag on a variable",
     "require [\"imap4flags\", \"variables\", \"relational\", \"comparator-i;ascii-numeric\", "
     "\"fileinto\"];\nset \"MyVar\" \"A B C\";\n"
     "if hasflag :is \"MyVar\" \"b\" { fileinto \"1\"; }\n"
     "if hasflag :contains \"MyVar\" \"b c\" { fileinto \"2\"; }\n"
     "if hasflag :count \"ge\" :comparator \"i;ascii-numeric\" \"MyVar\" \"3\" "
     "{ fileinto \"3\"; }\n"
     "if hasflag :count \"gt\" :comparator \"i;ascii-numeric\" \"MyVar\" \"3\" "
     "{ fileinto \"4\"; }\n"
     "setflag \"\\\\Seen\";\nif hasflag \"\\\\seen\" { fileinto \"5\"; }\n",
     NULL, NULL, NULL, NULL, 0, "fileinto:1 fileinto:3 fileinto:5[\\Seen]",
     "\\Seen", false},
    {"5232: duplicate fileinto merges flags",
     "require [\"imap4flags\", \"fileinto\"];\nfileinto :flags \"A\" \"x\";\n"
     "fileinto :flags \"B\" \"x\";\n",
     NULL, NULL, NULL, NULL, 0, "fileinto:x[A B]", NULL, false},

    /* ---- RFC 3894 copy ---- */
    {"3894: fileinto :copy keeps the implicit keep",
     "require [\"fileinto\", \"copy\"];\nfileinto :copy \"x\";\n", NULL, NULL, NULL, NULL, 0,
     "fileinto:x+copy keep*", NULL, false},

    /* ---- RFC 5429 reject / ereject ---- */
    {"5429 2.1: reject cancels the implicit keep",
     "require [\"reject\"];\nif header :contains \"from\" \"coyote@desert.example.org\" {\n"
     "  reject text:\nI am not taking mail from you, and I don't\nwant your birdseed, either!\n"
     ".\n;\n}\n",
     NULL, NULL, NULL, NULL, 0,
     "reject:I am not taking mail from you, and I don't\r\nwant your birdseed, either!\r\n", NULL,
     false},
    {"5429 2.2: ereject",
     "require [\"ereject\"];\nif address \"from\" \"coyote@desert.example.org\" {\n"
     "  ereject \"I no longer accept mail from this address\";\n}\n",
     NULL, NULL, NULL, NULL, 0, "ereject:I no longer accept mail from this address", NULL, false},
    {"5429: reject with discard is fine", "require \"reject\";\ndiscard;\nreject \"no\";\n", NULL,
     NULL, NULL, NULL, 0, "discard reject:no", NULL, false},
    {"5429: reject after fileinto is a runtime error",
     "require [\"reject\", \"fileinto\"];\nfileinto \"x\";\nreject \"no\";\n", NULL, NULL, NULL,
     NULL, -EINVAL, "keep*", NULL, false},
    {"5429: keep after reject is a runtime error", "require \"reject\";\nreject \"no\";\nkeep;\n",
     NULL, NULL, NULL, NULL, -EINVAL, "keep*", NULL, false},
    {"5429: reject with redirect :copy is a runtime error (Pigeonhole)",
     "require [\"reject\", \"copy\"];\nredirect :copy \"a@b.example\";\nreject \"no\";\n", NULL,
     NULL, NULL, NULL, -EINVAL, "keep*", NULL, false},
    {"5429: reject with vacation is a runtime error",
     "require [\"reject\", \"vacation\"];\nvacation \"away\";\nreject \"no\";\n", NULL, NULL, NULL,
     NULL, -EINVAL, "keep*", NULL, false},
    {"5429: two rejects are a runtime error",
     "require [\"reject\", \"ereject\"];\nreject \"a\";\nereject \"b\";\n", NULL, NULL, NULL, NULL,
     -EINVAL, "keep*", NULL, false},
    {"5429: the same reject twice is still two", "require \"reject\";\nreject \"a\";\nreject \"a\";\n",
     NULL, NULL, NULL, NULL, -EINVAL, "keep*", NULL, false},

    /* ---- RFC 5231 relational ---- */
    {"5231 6: address :count to+cc ge 3",
     "require [\"relational\", \"comparator-i;ascii-numeric\"];\n"
     "if address :count \"ge\" :comparator \"i;ascii-numeric\" [\"to\", \"cc\"] [\"3\"] "
     "{ discard; }\n",
     "To: foo@example.com, baz@example.com\r\nCc: qux@example.com\r\n\r\n", NULL, NULL, NULL, 0,
     "discard", NULL, false},
    {"5231 6: address :count to ge 3 or cc ge 3 false",
     "require [\"relational\", \"comparator-i;ascii-numeric\"];\n"
     "if anyof (address :count \"ge\" :comparator \"i;ascii-numeric\" [\"to\"] [\"3\"],\n"
     "  address :count \"ge\" :comparator \"i;ascii-numeric\" [\"cc\"] [\"3\"]) { discard; }\n",
     "To: foo@example.com, baz@example.com\r\nCc: qux@example.com\r\n\r\n", NULL, NULL, NULL, 0,
     "keep*", NULL, false},
    {"5231 6: header :count received ge 3, received+subject ge 3, to+cc not",
     "require [\"relational\", \"comparator-i;ascii-numeric\", \"fileinto\"];\n"
     "if header :count \"ge\" :comparator \"i;ascii-numeric\" [\"received\"] [\"3\"] "
     "{ fileinto \"1\"; }\n"
     "if header :count \"ge\" :comparator \"i;ascii-numeric\" [\"received\", \"subject\"] [\"3\"] "
     "{ fileinto \"2\"; }\n"
     "if header :count \"ge\" :comparator \"i;ascii-numeric\" [\"to\", \"cc\"] [\"3\"] "
     "{ fileinto \"3\"; }\n",
     MSG_LISTS, NULL, NULL, NULL, 0, "fileinto:1 fileinto:2", NULL, false},
    {"5231: every operator under i;ascii-numeric",
     "require [\"relational\", \"comparator-i;ascii-numeric\", \"fileinto\"];\n"
     "if header :value \"gt\" :comparator \"i;ascii-numeric\" \"x-n\" \"9\" { fileinto \"gt\"; }\n"
     "if header :value \"ge\" :comparator \"i;ascii-numeric\" \"x-n\" \"10\" { fileinto \"ge\"; }\n"
     "if header :value \"lt\" :comparator \"i;ascii-numeric\" \"x-n\" \"10\" { fileinto \"lt\"; }\n"
     "if header :value \"le\" :comparator \"i;ascii-numeric\" \"x-n\" \"010\" { fileinto \"le\"; }\n"
     "if header :value \"eq\" :comparator \"i;ascii-numeric\" \"x-n\" \"10abc\" { fileinto \"eq\"; }\n"
     "if header :value \"ne\" :comparator \"i;ascii-numeric\" \"x-n\" \"10\" { fileinto \"ne\"; }\n"
     "if header :value \"gt\" :comparator \"i;ascii-numeric\" \"x-inf\" \"99999999999999999999\" "
     "{ fileinto \"inf\"; }\n"
     "if header :value \"eq\" :comparator \"i;ascii-numeric\" \"x-inf\" \"zzz\" "
     "{ fileinto \"infeq\"; }\n",
     "X-N: 10\r\nX-Inf: abc\r\n\r\n", NULL, NULL, NULL, 0,
     "fileinto:gt fileinto:ge fileinto:le fileinto:eq fileinto:inf fileinto:infeq", NULL,
     false},
    {"5231: i;ascii-casemap and i;octet order",
     "require [\"relational\", \"fileinto\"];\n"
     "if header :value \"gt\" \"x-s\" \"a\" { fileinto \"casemap-gt\"; }\n"
     "if header :value \"gt\" :comparator \"i;octet\" \"x-s\" \"a\" { fileinto \"octet-gt\"; }\n"
     "if header :value \"lt\" \"x-s\" \"bb\" { fileinto \"prefix-lt\"; }\n"
     "if header :value \"eq\" \"x-s\" \"b\" { fileinto \"casemap-eq\"; }\n"
     "if header :value \"ne\" :comparator \"i;octet\" \"x-s\" \"b\" { fileinto \"octet-ne\"; }\n",
     "X-S: B\r\n\r\n", NULL, NULL, NULL, 0,
     "fileinto:casemap-gt fileinto:prefix-lt fileinto:casemap-eq fileinto:octet-ne", NULL,
     false},
    {"5231: :count of an absent header is 0",
     "require [\"relational\", \"comparator-i;ascii-numeric\"];\n"
     "if header :count \"eq\" :comparator \"i;ascii-numeric\" \"x-none\" \"0\" { discard; }\n",
     NULL, NULL, NULL, NULL, 0, "discard", NULL, false},

    /* ---- RFC 5233 subaddress ---- */
    {"5233: :user and :detail",
     "require [\"envelope\", \"subaddress\", \"fileinto\"];\n"
     "if envelope :user \"to\" \"ken\" { fileinto \"user\"; }\n"
     "if envelope :detail \"to\" \"sieve\" { fileinto \"detail\"; }\n"
     "if address :detail :matches \"from\" \"*\" { fileinto \"nodetail\"; }\n"
     "if address :user \"from\" \"coyote\" { fileinto \"fromuser\"; }\n",
     NULL, NULL, "x@y.example", "ken+sieve@example.org", 0,
     "fileinto:user fileinto:detail fileinto:fromuser", NULL, false},
    {"5233: empty detail is \"\"",
     "require [\"envelope\", \"subaddress\"];\nif envelope :detail :is \"to\" \"\" { discard; }\n",
     NULL, NULL, "x@y.example", "ken+@example.org", 0, "discard", NULL, false},

    /* ---- RFC 5490 mailbox ---- */
    {"5490: mailboxexists and fileinto :create",
     "require [\"fileinto\", \"mailbox\"];\n"
     "if mailboxexists \"Partners\" { fileinto :create \"Partners\"; }\n"
     "if mailboxexists [\"Partners\", \"Nope\"] { discard; }\n",
     NULL, NULL, NULL, NULL, 0, "fileinto:Partners+create", NULL, false},
    {"5490: a store error is a runtime error",
     "require \"mailbox\";\nif mailboxexists \"Error\" { discard; }\n", NULL, NULL, NULL, NULL,
     -EINVAL, "keep*", NULL, false},

    /* ---- RFC 5235 spamtest / virustest ---- */
    {"5235 3.1: untested -> 0",
     "require [\"spamtest\", \"fileinto\", \"relational\", \"comparator-i;ascii-numeric\"];\n"
     "if spamtest :value \"eq\" :comparator \"i;ascii-numeric\" \"0\" "
     "{ fileinto \"INBOX.unclassified\"; }\n"
     "elsif spamtest :value \"ge\" :comparator \"i;ascii-numeric\" \"3\" "
     "{ fileinto \"INBOX.spam-trap\"; }\n",
     NULL, NULL, NULL, NULL, 0, "fileinto:INBOX.unclassified", NULL, false},
    {"5235 3.1: score 6.00 of 10 -> 6 -> spam-trap",
     "require [\"spamtest\", \"fileinto\", \"relational\", \"comparator-i;ascii-numeric\"];\n"
     "if spamtest :value \"eq\" :comparator \"i;ascii-numeric\" \"0\" "
     "{ fileinto \"INBOX.unclassified\"; }\n"
     "elsif spamtest :value \"ge\" :comparator \"i;ascii-numeric\" \"3\" "
     "{ fileinto \"INBOX.spam-trap\"; }\n"
     "if spamtest :is \"6\" { fileinto \"six\"; }\n",
     "X-Spam-Score: 6.00\r\n\r\n", NULL, NULL, NULL, 0, "fileinto:INBOX.spam-trap fileinto:six",
     NULL, false},
    {"5235: scaling: negative -> 1, over max -> 10, junk -> 0, percent",
     "require [\"spamtestplus\", \"fileinto\"];\n"
     "if spamtest \"1\" { fileinto \"low\"; }\n"
     "if spamtest :percent \"0\" { fileinto \"p0\"; }\n",
     "X-Spam-Score: -0.40\r\n\r\n", NULL, NULL, NULL, 0, "fileinto:low fileinto:p0", NULL, false},
    {"5235: over the maximum",
     "require [\"spamtestplus\", \"fileinto\"];\n"
     "if spamtest \"10\" { fileinto \"ten\"; }\nif spamtest :percent \"100\" { fileinto \"p100\"; }\n",
     "X-Spam-Score: 15\r\n\r\n", NULL, NULL, NULL, 0, "fileinto:ten fileinto:p100", NULL, false},
    {"5235: percent of 6.00 is 60, 5.55 -> 5 and 55",
     "require [\"spamtestplus\", \"fileinto\"];\n"
     "if spamtest :percent \"55\" { fileinto \"p55\"; }\nif spamtest \"5\" { fileinto \"s5\"; }\n",
     "X-Spam-Score: 5.55\r\n\r\n", NULL, NULL, NULL, 0, "fileinto:p55 fileinto:s5", NULL, false},
    {"5235: a value that is no number is untested",
     "require [\"spamtest\"];\nif spamtest \"0\" { discard; }\n",
     "X-Spam-Score: Yes, score=7.1\r\n\r\n", NULL, NULL, NULL, 0, "discard", NULL, false},
    {"5235: virustest 5 when the virus header is there",
     "require [\"virustest\", \"relational\", \"comparator-i;ascii-numeric\"];\n"
     "if virustest :value \"ge\" :comparator \"i;ascii-numeric\" \"4\" { discard; }\n",
     "X-Virus: Eicar-Test-Signature\r\n\r\n", NULL, NULL, NULL, 0, "discard", NULL, true},
    {"5235: virustest 1 when scanned clean, 0 when not scanned",
     "require [\"virustest\", \"fileinto\"];\nif virustest \"1\" { fileinto \"clean\"; }\n"
     "if virustest \"0\" { fileinto \"untested\"; }\n",
     NULL, NULL, NULL, NULL, 0, "fileinto:clean", NULL, true},
    {"5235: virustest 0 when not scanned",
     "require [\"virustest\", \"fileinto\"];\nif virustest \"0\" { fileinto \"untested\"; }\n",
     NULL, NULL, NULL, NULL, 0, "fileinto:untested", NULL, false},

    /* ---- RFC 5260 date / index ---- */
    {"5260 5: date :originalzone hour between 9 and 17",
     "require [\"date\", \"relational\", \"fileinto\"];\n"
     "if allof (header :contains \"from\" \"coyote\",\n"
     "  date :value \"ge\" :originalzone \"date\" \"hour\" \"09\",\n"
     "  date :value \"lt\" :originalzone \"date\" \"hour\" \"17\") { fileinto \"urgent\"; }\n",
     NULL, NULL, NULL, NULL, 0, "fileinto:urgent", NULL, false},
    {"5260: date in the local zone (UTC) and with :zone",
     "require [\"date\", \"fileinto\"];\n"
     "if date :is \"date\" \"hour\" \"17\" { fileinto \"utc17\"; }\n"
     "if date :zone \"+0200\" \"date\" \"time\" \"19:06:31\" { fileinto \"plus2\"; }\n"
     "if date :is \"date\" \"date\" \"1997-04-01\" { fileinto \"day\"; }\n"
     "if date :is \"date\" \"weekday\" \"2\" { fileinto \"tuesday\"; }\n"
     "if date :matches \"x-none\" \"year\" \"*\" { fileinto \"none\"; }\n",
     NULL, NULL, NULL, NULL, 0, "fileinto:utc17 fileinto:plus2 fileinto:day fileinto:tuesday",
     NULL, false},
    {"5260 6: :index on received dates",
     "require [\"date\", \"index\", \"fileinto\"];\n"
     "if date :index 1 \"received\" \"year\" \"1997\" { fileinto \"first\"; }\n"
     "if date :index 1 :last \"received\" \"year\" \"2003\" { fileinto \"last\"; }\n"
     "if date :index 2 :originalzone \"received\" \"zone\" \"+0000\" { fileinto \"second\"; }\n"
     "if date :index 4 \"received\" \"year\" \"1997\" { fileinto \"none\"; }\n",
     MSG_LISTS, NULL, NULL, NULL, 0, "fileinto:first fileinto:last fileinto:second", NULL, false},
    {"5260 6: header and address :index",
     "require [\"index\", \"fileinto\"];\n"
     "if header :index 2 \"x-a\" \"two\" { fileinto \"2\"; }\n"
     "if header :index 1 :last \"x-a\" \"three\" { fileinto \"last\"; }\n"
     "if header :index 3 :last \"x-a\" \"one\" { fileinto \"3last\"; }\n"
     "if header :index 4 \"x-a\" \"one\" { fileinto \"none\"; }\n"
     "if address :index 1 :domain \"to\" \"acme.example.com\" { fileinto \"addr\"; }\n",
     MSG_LISTS, NULL, NULL, NULL, 0, "fileinto:2 fileinto:last fileinto:3last fileinto:addr",
     NULL, false},
    {"5260 5: currentdate",
     "require [\"date\", \"relational\", \"fileinto\"];\n"
     "if currentdate :is \"date\" \"1971-01-01\" { fileinto \"today\"; }\n"
     "if currentdate :zone \"-0100\" \"date\" \"1970-12-31\" { fileinto \"yesterday\"; }\n"
     "if currentdate :value \"lt\" \"year\" \"2000\" { fileinto \"old\"; }\n",
     NULL, NULL, NULL, NULL, 0, "fileinto:today fileinto:yesterday fileinto:old", NULL,
     false},

    {"5260 7: currentdate range -> vacation (2007-07-01)",
     "require [\"date\", \"relational\", \"vacation\"];\n"
     "if allof(currentdate :value \"ge\" \"date\" \"2007-06-30\",\n"
     "         currentdate :value \"le\" \"date\" \"2007-07-07\")\n"
     "{ vacation :days 7 \"I'm away during the first week in July.\"; }\n",
     NULL, NULL, "a@b.example", NULL, 0, "vacation keep*", NULL, false, 1183291200},
    {"5260 7: currentdate :matches into variables (2007-07-01)",
     "require [\"date\", \"variables\", \"fileinto\"];\n"
     "if currentdate :matches \"month\" \"*\" { set \"month\" \"${1}\"; }\n"
     "if currentdate :matches \"year\"  \"*\" { set \"year\"  \"${1}\"; }\n"
     "fileinto \"${month}-${year}\";\n",
     NULL, NULL, NULL, NULL, 0, "fileinto:07-2007", NULL, false, 1183291200},

    /* ---- RFC 5173 body ---- */
    {"5173: body :contains and :raw",
     "require [\"body\", \"fileinto\"];\n"
     "if body :contains \"anvil\" { fileinto \"anvil\"; }\n"
     "if body :raw :contains \"MAKE MONEY FAST\" { discard; }\n"
     "if body :text :matches \"*sorry*\" { fileinto \"sorry\"; }\n",
     NULL, "Look, I'm sorry about the whole anvil thing\r\n", NULL, NULL, 0,
     "fileinto:anvil fileinto:sorry", NULL, false},
    {"5173 7: body :content on a multipart",
     "require [\"body\", \"fileinto\"];\n"
     "if body :content \"text/html\" :contains \"<b>\" { fileinto \"html\"; }\n"
     "if body :content \"text/plain\" :contains \"<b>\" { fileinto \"plain\"; }\n"
     "if body :content \"image\" :contains \"x\" { fileinto \"image\"; }\n",
     "MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=\"b1\"\r\n\r\n",
     "--b1\r\nContent-Type: text/plain\r\n\r\nplain words\r\n--b1\r\n"
     "Content-Type: text/html\r\n\r\n<p><b>bold</b></p>\r\n--b1--\r\n",
     NULL, NULL, 0, "fileinto:html", NULL, false},

    /* ---- RFC 5230 vacation (details in test_vacation) ---- */
    {"5230 4: vacation on subject",
     "require \"vacation\";\nif header :contains \"subject\" \"cyrus\" {\n"
     "  vacation \"I'm out -- send mail to cyrus-bugs\";\n} else {\n"
     "  vacation \"I'm out -- call me at +1 304 555 0123\";\n}\n",
     NULL, NULL, "coyote@desert.example.org", NULL, 0, "vacation keep*", NULL, false},
    {"5230: two vacations are a runtime error",
     "require \"vacation\";\nvacation \"a\";\nvacation \"b\";\n", NULL, NULL, NULL, NULL, -EINVAL,
     "keep*", NULL, false},

    /* ---- RFC 6609 include ---- */
    {"6609 3: include :personal and :global",
     "require [\"include\"];\ninclude :personal \"always_allow\";\n"
     "include :global \"spam_tests\";\ninclude :personal \"spam_tests\";\n"
     "include :personal \"mailing_lists\";\n",
     "From: boss@example.com\r\nX-Spam-Score: 8\r\nList-ID: <a.b>\r\n\r\n", NULL, NULL, NULL, 0,
     "keep fileinto:Junk fileinto:lists", NULL, false},
    {"6609 3.4: global variables",
     "require [\"variables\", \"include\"];\nglobal \"test\";\nset \"test\" \"$$\";\n"
     "include \"subject_tests\";\nset \"test\" \"Make money\";\ninclude \"subject_tests\";\n",
     "Subject: Make money fast\r\n\r\n", NULL, NULL, NULL, 0, "discard", NULL, false},
    {"6609: locals stay local", 
     "require [\"variables\", \"include\", \"fileinto\"];\nset \"local\" \"outer\";\n"
     "set \"mainvar\" \"x\";\n"
     "include \"locals\";\nif string :is \"${local}\" \"outer\" { fileinto \"ok\"; }\n",
     NULL, NULL, NULL, NULL, 0, "discard fileinto:ok", NULL, false},
    {"6609: :once and the global namespace",
     "require [\"variables\", \"include\", \"fileinto\"];\ninclude :once \"counter\";\n"
     "include :once \"counter\";\ninclude \"counter\";\n"
     "if string :is \"${global.n}\" \"xx\" { fileinto \"twice\"; }\n",
     NULL, NULL, NULL, NULL, 0, "fileinto:twice", NULL, false},
    {"6609 3.3: return ends the included script only",
     "require [\"include\", \"fileinto\"];\ninclude \"returns\";\nfileinto \"main\";\n", NULL,
     NULL, NULL, NULL, 0, "fileinto:before fileinto:main", NULL, false},
    {"6609 3.3: return in the main script is stop",
     "require [\"include\", \"fileinto\"];\nfileinto \"a\";\nreturn;\nfileinto \"b\";\n", NULL,
     NULL, NULL, NULL, 0, "fileinto:a", NULL, false},
    {"6609: stop in an included script ends everything",
     "require [\"include\", \"fileinto\"];\ninclude \"stops\";\nfileinto \"main\";\n", NULL,
     NULL, NULL, NULL, 0, "fileinto:s", NULL, false},
    {"6609: :optional missing is no error",
     "require \"include\";\ninclude :optional \"nothere\";\ndiscard;\n", NULL, NULL, NULL, NULL,
     0, "discard", NULL, false},
    {"6609: missing is a runtime error",
     "require \"include\";\ninclude \"nothere\";\ndiscard;\n", NULL, NULL, NULL, NULL, -EINVAL,
     "keep*", NULL, false},
    {"6609: a loop is a runtime error", "require \"include\";\ninclude \"loop_a\";\n", NULL, NULL,
     NULL, NULL, -EINVAL, "keep*", NULL, false},
    {"6609: a script including itself is a runtime error",
     "require \"include\";\ninclude \"self\";\n", NULL, NULL, NULL, NULL, -EINVAL, "keep*", NULL,
     false},
    {"6609: depth 10 is fine", "require \"include\";\ninclude \"d2\";\n", NULL, NULL, NULL, NULL,
     0, "keep", NULL, false},
    {"6609: depth 11 is over the limit", "require \"include\";\ninclude \"d1\";\n", NULL, NULL,
     NULL, NULL, -E2BIG, "keep*", NULL, false},

    /* ---- RFC 6134 extlists ---- */
    {"6134: :list on address, envelope, header and string",
     "require [\"extlists\", \"envelope\", \"variables\", \"fileinto\"];\n"
     "if address :list \"from\" \":addrbook:default\" { fileinto \"addr\"; }\n"
     "if envelope :list \"from\" \":addrbook:default\" { fileinto \"env\"; }\n"
     "if address :list :domain \"to\" \"tag:example.com,2011:blocked\" { fileinto \"blocked\"; }\n"
     "if header :list \"x-friend\" \":addrbook:default\" { fileinto \"hdr\"; }\n"
     "set \"a\" \"Friend@example.com\";\n"
     "if string :list \"${a}\" [\":addrbook:empty\", \":addrbook:default\"] { fileinto \"str\"; }\n"
     "if valid_ext_list \":addrbook:default\" { fileinto \"valid\"; }\n"
     "if valid_ext_list [\":addrbook:default\", \":nope\"] { fileinto \"invalid\"; }\n",
     "From: Wile <coyote@desert.example.org>\r\nTo: a@spam.example\r\n"
     "X-Friend: friend@example.com\r\n\r\n",
     NULL, "friend@example.com", NULL, 0,
     "fileinto:addr fileinto:env fileinto:blocked fileinto:hdr fileinto:str fileinto:valid",
     NULL, false},
    {"6134: an unknown list is a runtime error",
     "require \"extlists\";\nif header :list \"from\" \":addrbook:nope\" { discard; }\n", NULL,
     NULL, NULL, NULL, -EINVAL, "keep*", NULL, false},
};

static int
ext_run(const char *script_text, const struct sieve_message *message, const struct sieve_env *env,
        const struct sieve_run_limits *limits, struct sieve_actions *actions,
        struct sieve_run_error *error)
{
    struct sieve_script *script = NULL;
    struct sieve_errors errors;
    int rc = sieve_compile(script_text, strlen(script_text), NULL, &script, &errors);
    if (rc != 0) {
        fprintf(stderr, "compile failed: line %u: %s\n%s\n",
                errors.count > 0 ? errors.items[0].line : 0,
                errors.count > 0 ? errors.items[0].text : "?", script_text);
        CHECK(rc == 0);
        return -1000;
    }
    rc = sieve_run(script, message, env, limits, actions, error);
    sieve_script_free(&script);
    return rc;
}

static void
ext_one(const struct ext_case *c)
{
    const char *header = c->header != NULL ? c->header : msg_default;
    struct sieve_message message = {.header = header,
                                    .header_len = strlen(header),
                                    .body = c->body,
                                    .body_len = c->body != NULL ? strlen(c->body) : 0,
                                    .envelope_from = c->from,
                                    .envelope_to = c->to,
                                    .user = "rcpt@example.org",
                                    .size_bytes = 100,
                                    .now_unix = c->now_unix != 0 ? c->now_unix : 365 * 86400,
                                    .is_virus_scanned = c->is_virus_scanned};
    struct sieve_actions actions;
    struct sieve_run_error error;
    sieve_actions_init(&actions);
    int rc = ext_run(c->script, &message, &test_env, NULL, &actions, &error);
    const char *flags = actions.implicit_flags;
    sieve_actions_finish(&actions);
    char got[2048];
    render(&actions, got, sizeof(got));
    if (rc != c->want_rc || strcmp(got, c->want) != 0) {
        fprintf(stderr, "%s: rc %d (want %d), error line %u \"%s\"\n", c->name, rc, c->want_rc,
                error.line, error.text);
    }
    CHECK(rc == c->want_rc);
    CHECK_STR(got, c->want);
    if (c->want_flags == NULL) {
        CHECK(flags == NULL);
    } else {
        CHECK(flags != NULL);
        CHECK_STR(flags != NULL ? flags : "", c->want_flags);
    }
    if (rc < 0) {
        CHECK(error.text[0] != '\0');
    }
    sieve_actions_free(&actions);
}

/* One run of script_text over header with the test env; the result is
 * left in *actions (initialised here, finished, caller frees). */
static int
ext_result(const char *script_text, const char *header, const char *from,
           const struct sieve_env *env, struct sieve_actions *actions,
           struct sieve_run_error *error)
{
    struct sieve_message message = {.header = header,
                                    .header_len = strlen(header),
                                    .envelope_from = from,
                                    .user = "rcpt@example.org",
                                    .size_bytes = 100};
    sieve_actions_init(actions);
    int rc = ext_run(script_text, &message, env, NULL, actions, error);
    sieve_actions_finish(actions);
    return rc;
}

static void
test_vacation(void)
{
    struct sieve_actions actions;
    struct sieve_run_error error;
    /* RFC 5230 section 4 example with :days and :addresses. */
    CHECK(ext_result("require \"vacation\";\n"
                     "vacation :days 23 :addresses [\"tjs@example.edu\", "
                     "\"ts4z@landru.example.edu\"]\n"
                     "\"I'm away until October 19.  If it's an emergency, call 911, I guess.\";\n",
                     msg_default, "coyote@desert.example.org", &test_env, &actions, &error) == 0);
    CHECK(actions.count == 2 && actions.items[0].type == SIEVE_ACTION_VACATION);
    const struct sieve_vacation *v = actions.items[0].vacation;
    CHECK(v != NULL);
    if (v != NULL) {
        CHECK(v->period_seconds == 23u * 86400u);
        CHECK(v->address_count == 2);
        CHECK_STR(v->addresses[0], "tjs@example.edu");
        CHECK_STR(v->addresses[1], "ts4z@landru.example.edu");
        CHECK_STR(v->reply_to, "coyote@desert.example.org");
        CHECK(v->subject == NULL && v->from == NULL && !v->is_mime);
        CHECK_STR(v->reason, "I'm away until October 19.  If it's an emergency, call 911, I guess.");
        CHECK(v->reason_len == strlen(v->reason));
        /* No :handle: one made from the arguments (RFC 5230 4.2). */
        CHECK_STR(v->handle, "I'm away until October 19.  If it's an emergency, call 911, I guess."
                             "<default-subject><default-from><NO-MIME>");
    }
    CHECK(actions.items[1].is_implicit);
    sieve_actions_free(&actions);

    /* Every tag, with variables; :days 0 is raised to the minimum. */
    CHECK(ext_result("require [\"vacation\", \"variables\"];\nset \"who\" \"Wile\";\n"
                     "vacation :days 0 :subject \"Away: ${who}\" :from \"me@example.org\" "
                     ":handle \"h1\" :mime \"Content-Type: text/plain\r\n\r\n${who} is out\";\n",
                     msg_default, "", &test_env, &actions, &error) == 0);
    v = actions.count > 0 ? actions.items[0].vacation : NULL;
    CHECK(v != NULL);
    if (v != NULL) {
        CHECK(v->period_seconds == 86400u);
        CHECK_STR(v->subject, "Away: Wile");
        CHECK_STR(v->from, "me@example.org");
        CHECK_STR(v->handle, "h1");
        CHECK(v->is_mime);
        CHECK_STR(v->reason, "Content-Type: text/plain\r\n\r\nWile is out");
        CHECK_STR(v->reply_to, ""); /* the null sender: the caller does not answer */
    }
    sieve_actions_free(&actions);

    /* Periods: the default, above the maximum, :seconds under the env's bounds. */
    CHECK(ext_result("require \"vacation\";\nvacation \"x\";\n", msg_default, NULL, &test_env,
                     &actions, &error) == 0);
    CHECK(actions.items[0].vacation->period_seconds == 7u * 86400u);
    CHECK(actions.items[0].vacation->reply_to == NULL);
    sieve_actions_free(&actions);
    CHECK(ext_result("require \"vacation\";\nvacation :days 1000 \"x\";\n", msg_default, NULL,
                     &test_env, &actions, &error) == 0);
    CHECK(actions.items[0].vacation->period_seconds == 90u * 86400u);
    sieve_actions_free(&actions);
    CHECK(ext_result("require \"vacation-seconds\";\nvacation :seconds 60 \"x\";\n", msg_default,
                     NULL, &test_env, &actions, &error) == 0);
    CHECK(actions.items[0].vacation->period_seconds == 86400u);
    sieve_actions_free(&actions);
    struct sieve_env env = test_env;
    env.vacation_min_seconds = 30;
    env.vacation_default_seconds = 3600;
    env.vacation_max_seconds = 7200;
    CHECK(ext_result("require \"vacation-seconds\";\nvacation :seconds 60 \"x\";\n", msg_default,
                     NULL, &env, &actions, &error) == 0);
    CHECK(actions.items[0].vacation->period_seconds == 60u);
    sieve_actions_free(&actions);
    CHECK(ext_result("require \"vacation-seconds\";\nvacation :seconds 29 \"x\";\n", msg_default,
                     NULL, &env, &actions, &error) == 0);
    CHECK(actions.items[0].vacation->period_seconds == 30u);
    sieve_actions_free(&actions);
    CHECK(ext_result("require \"vacation\";\nvacation :days 1 \"x\";\n", msg_default, NULL, &env,
                     &actions, &error) == 0);
    CHECK(actions.items[0].vacation->period_seconds == 7200u);
    sieve_actions_free(&actions);
    CHECK(ext_result("require \"vacation\";\nvacation \"x\";\n", msg_default, NULL, &env, &actions,
                     &error) == 0);
    CHECK(actions.items[0].vacation->period_seconds == 3600u);
    sieve_actions_free(&actions);
    /* More :addresses than kept: the first SIEVE_RUN_VACATION_ADDRESSES_MAX. */
    char script[4096];
    size_t n = (size_t)snprintf(script, sizeof(script), "require \"vacation\";\nvacation :addresses [");
    for (unsigned i = 0; i < SIEVE_RUN_VACATION_ADDRESSES_MAX + 1; i++) {
        n += (size_t)snprintf(script + n, sizeof(script) - n, "%s\"a%u@x.example\"", i ? ", " : "",
                              i);
    }
    snprintf(script + n, sizeof(script) - n, "] \"x\";\n");
    CHECK(ext_result(script, msg_default, NULL, &test_env, &actions, &error) == 0);
    CHECK(actions.items[0].vacation->address_count == SIEVE_RUN_VACATION_ADDRESSES_MAX);
    CHECK_STR(actions.items[0].vacation->addresses[SIEVE_RUN_VACATION_ADDRESSES_MAX - 1], "a31@x.example");
    sieve_actions_free(&actions);
}

static void
test_editheader(void)
{
    struct sieve_actions actions;
    struct sieve_run_error error;
    char got[512];
    /* RFC 5293 section 8's example: mark and redirect once. */
    const char *mark = "require [\"editheader\"];\n"
                       "if not header :contains \"X-Sieve-Filtered\" [\"<kim@job.example.com>\", "
                       "\"<kim@home.example.com>\"] {\n"
                       "  addheader \"X-Sieve-Filtered\" \"<kim@job.example.com>\";\n"
                       "  redirect \"kim@home.example.com\";\n}\n";
    CHECK(ext_result(mark, "Subject: hi\r\n\r\n", NULL, &test_env, &actions, &error) == 0);
    render(&actions, got, sizeof(got));
    CHECK_STR(got, "redirect:kim@home.example.com");
    CHECK(actions.header != NULL);
    CHECK_STR(actions.header != NULL ? actions.header : "",
              "X-Sieve-Filtered: <kim@job.example.com>\r\nSubject: hi\r\n\r\n");
    CHECK(actions.header_len == strlen(actions.header != NULL ? actions.header : ""));
    sieve_actions_free(&actions);
    CHECK(ext_result(mark, "X-Sieve-Filtered: <kim@job.example.com>\r\n\r\n", NULL, &test_env,
                     &actions, &error) == 0);
    render(&actions, got, sizeof(got));
    CHECK_STR(got, "keep*");
    CHECK(actions.header == NULL); /* nothing changed */
    sieve_actions_free(&actions);

    /* :last, deletion of all, by :index, by :index :last, by value;
     * protected fields; bare LF lines come out as CRLF; later tests see it. */
    CHECK(ext_result("require [\"editheader\", \"fileinto\", \"index\"];\n"
                     "addheader \"X-Source\" \"mailing list\";\n"
                     "addheader :last \"X-Trailer\" \"end\";\n"
                     "deleteheader \"X-A\";\n"
                     "deleteheader :index 2 \"X-B\";\n"
                     "deleteheader :index 1 :last \"X-B\";\n"
                     "deleteheader :contains \"X-C\" [\"bad\", \"worse\"];\n"
                     "deleteheader \"Received\";\naddheader \"received\" \"forged\";\n"
                     "addheader \"Auto-Submitted\" \"no\";\n"
                     "if header :is \"x-source\" \"mailing list\" { fileinto \"seen-add\"; }\n"
                     "if not exists \"x-a\" { fileinto \"seen-delete\"; }\n"
                     "if header :index 1 \"x-b\" \"b1\" { fileinto \"b1-first\"; }\n",
                     "Received: r\nX-A: 1\r\nX-B: b1\r\nX-B: b2\r\nX-B: b3\r\nX-B: b4\r\n"
                     "X-C: good\r\nX-C: bad one\r\nX-A: 2\r\n folded\r\n\r\nbody",
                     NULL, &test_env, &actions, &error) == 0);
    render(&actions, got, sizeof(got));
    CHECK_STR(got, "fileinto:seen-add fileinto:seen-delete fileinto:b1-first");
    CHECK_STR(actions.header != NULL ? actions.header : "",
              "X-Source: mailing list\r\nReceived: r\r\nX-B: b1\r\nX-B: b3\r\nX-C: good\r\n"
              "X-Trailer: end\r\n\r\n");
    sieve_actions_free(&actions);

    /* Values with folds are kept; a bare line break is a runtime error. */
    CHECK(ext_result("require \"editheader\";\naddheader \"X-F\" \"a\r\n b\";\n",
                     "X: 1\r\n\r\n", NULL, &test_env, &actions, &error) == 0);
    CHECK_STR(actions.header != NULL ? actions.header : "", "X-F: a\r\n b\r\nX: 1\r\n\r\n");
    sieve_actions_free(&actions);
    CHECK(ext_result("require [\"editheader\", \"variables\"];\nset \"v\" \"a\r\nX-Evil: 1\";\n"
                     "addheader \"X-F\" \"${v}\";\n",
                     "X: 1\r\n\r\n", NULL, &test_env, &actions, &error) == -EINVAL);
    render(&actions, got, sizeof(got));
    CHECK_STR(got, "keep*");
    CHECK(actions.header == NULL);
    sieve_actions_free(&actions);
    CHECK(ext_result("require [\"editheader\", \"variables\"];\nset \"n\" \"Bad Name\";\n"
                     "addheader \"${n}\" \"x\";\n",
                     "X: 1\r\n\r\n", NULL, &test_env, &actions, &error) == -EINVAL);
    sieve_actions_free(&actions);
    /* Match variables are not set by deleteheader. */
    CHECK(ext_result("require [\"editheader\", \"variables\", \"fileinto\"];\n"
                     "if header :matches \"subject\" \"*\" { set \"s\" \"${1}\"; }\n"
                     "deleteheader :matches \"x\" \"*\";\n"
                     "fileinto \"${1}\";\n",
                     "Subject: keepme\r\nX: gone\r\n\r\n", NULL, &test_env, &actions,
                     &error) == 0);
    render(&actions, got, sizeof(got));
    CHECK_STR(got, "fileinto:keepme");
    CHECK_STR(actions.header != NULL ? actions.header : "", "Subject: keepme\r\n\r\n");
    sieve_actions_free(&actions);
    /* Adding past the header bound is a runtime error. */
    char *script = malloc(70000);
    CHECK(script != NULL);
    if (script != NULL) {
        size_t n = (size_t)snprintf(script, 70000, "require [\"editheader\", \"variables\"];\n"
                                                    "set \"v\" \"");
        for (size_t i = 0; i < 2000; i++) {
            script[n++] = 'v';
        }
        n += (size_t)snprintf(script + n, 70000 - n, "\";\n");
        for (size_t i = 0; i < 600; i++) {
            n += (size_t)snprintf(script + n, 70000 - n, "addheader \"X-%zu\" \"${v}\";\n", i);
        }
        struct sieve_run_limits limits = {0};
        struct sieve_message message = {.header = "X: 1\r\n\r\n", .header_len = 8};
        sieve_actions_init(&actions);
        int rc = ext_run(script, &message, &test_env, &limits, &actions, &error);
        CHECK(rc == -E2BIG);
        CHECK(strstr(error.text, "header block over") != NULL);
        sieve_actions_finish(&actions);
        render(&actions, got, sizeof(got));
        CHECK_STR(got, "keep*");
        sieve_actions_free(&actions);
        /* One value: SIEVE_RUN_ADDHEADER_BYTES_MAX bytes fine, one more an error. */
        for (size_t extra = 0; extra < 2; extra++) {
            n = (size_t)snprintf(script, 70000, "require \"editheader\";\naddheader \"X\" \"");
            memset(script + n, 'w', SIEVE_RUN_ADDHEADER_BYTES_MAX + extra);
            n += SIEVE_RUN_ADDHEADER_BYTES_MAX + extra;
            snprintf(script + n, 70000 - n, "\";\n");
            CHECK(ext_result(script, "Y: 1\r\n\r\n", NULL, &test_env, &actions, &error) ==
                  (extra == 0 ? 0 : -E2BIG));
            CHECK((actions.header != NULL) == (extra == 0));
            sieve_actions_free(&actions);
        }
        free(script);
    }
    /* RFC 5260 section 7: the processing date as a header field. */
    struct sieve_message dated = {.header = "Y: 1\r\n\r\n", .header_len = 9,
                                  .now_unix = 1183291200, .zone_minutes = 60};
    sieve_actions_init(&actions);
    CHECK(ext_run("require [\"variables\", \"date\", \"editheader\"];\n"
                  "if currentdate :matches \"std11\" \"*\" { addheader \"Processing-date\" \"${0}\"; }\n",
                  &dated, &test_env, NULL, &actions, &error) == 0);
    CHECK_STR(actions.header != NULL ? actions.header : "",
              "Processing-date: Sun, 01 Jul 2007 13:00:00 +0100\r\nY: 1\r\n\r\n");
    sieve_actions_free(&actions);

    /* Values past US-ASCII are RFC 2047 encoded; the header test decodes them. */
    CHECK(ext_result("require [\"editheader\", \"fileinto\"];\n"
                     "addheader \"X-U\" \"caf\xc3\xa9 au lait\";\n"
                     "if header :is \"x-u\" \"caf\xc3\xa9 au lait\" { fileinto \"decoded\"; }\n",
                     "Y: 1\r\n\r\n", NULL, &test_env, &actions, &error) == 0);
    render(&actions, got, sizeof(got));
    CHECK_STR(got, "fileinto:decoded");
    CHECK_STR(actions.header != NULL ? actions.header : "",
              "X-U: =?UTF-8?B?Y2Fmw6kgYXUgbGFpdA==?=\r\nY: 1\r\n\r\n");
    sieve_actions_free(&actions);    /* A long one: several words, folded, split between characters. */
    char long_script[1024];
    char value[256];
    size_t vn = 0;
    for (size_t i = 0; i < 100; i++) {
        memcpy(value + vn, i % 2 ? "\xc3\xa9" : "e", i % 2 ? 2 : 1);
        vn += i % 2 ? 2 : 1;
    }
    value[vn] = '\0';
    snprintf(long_script, sizeof(long_script),
             "require [\"editheader\", \"fileinto\"];\naddheader :last \"X-L\" \"%s\";\n"
             "if header :is \"x-l\" \"%s\" { fileinto \"decoded\"; }\n",
             value, value);
    CHECK(ext_result(long_script, "Y: 1\r\n\r\n", NULL, &test_env, &actions, &error) == 0);
    render(&actions, got, sizeof(got));
    CHECK_STR(got, "fileinto:decoded");
    CHECK(actions.header != NULL && strstr(actions.header, "?=\r\n =?UTF-8?B?") != NULL);
    sieve_actions_free(&actions);
}

static void
test_duplicate(void)
{
    struct sieve_actions actions;
    struct sieve_run_error error;
    char got[256];
    const char *msg = "Message-ID: <1@example.org>\r\nX-Event: 42\r\n\r\n";
    seen_key_count = 0;
    /* RFC 7352 3: new message: false, one mark with the default period. */
    CHECK(ext_result("require \"duplicate\";\nif duplicate { discard; }\n", msg, NULL, &test_env,
                     &actions, &error) == 0);
    render(&actions, got, sizeof(got));
    CHECK_STR(got, "keep*");
    CHECK(actions.duplicate_count == 1);
    CHECK(strlen(actions.duplicates[0].key) == 64);
    CHECK(actions.duplicates[0].period_seconds == 7u * 86400u); /* the default */
    memcpy(seen_keys[0], actions.duplicates[0].key, SIEVE_RUN_DUPLICATE_KEY_BYTES);
    sieve_actions_free(&actions);
    /* :uniqueid with the same id gives the same key. */
    CHECK(ext_result("require \"duplicate\";\nif duplicate :uniqueid \"<1@example.org>\" "
                     "{ discard; }\n",
                     msg, NULL, &test_env, &actions, &error) == 0);
    CHECK(actions.duplicate_count == 1 && strcmp(actions.duplicates[0].key, seen_keys[0]) == 0);
    sieve_actions_free(&actions);
    /* Seen: true, and nothing recorded without :last. */
    seen_key_count = 1;
    CHECK(ext_result("require \"duplicate\";\nif duplicate { discard; }\n", msg, NULL, &test_env,
                     &actions, &error) == 0);
    render(&actions, got, sizeof(got));
    CHECK_STR(got, "discard");
    CHECK(actions.duplicate_count == 0);
    sieve_actions_free(&actions);
    CHECK(ext_result("require \"duplicate\";\nif duplicate :last :seconds 100 { discard; }\n", msg,
                     NULL, &test_env, &actions, &error) == 0);
    CHECK(actions.duplicate_count == 1 && actions.duplicates[0].period_seconds == 100);
    sieve_actions_free(&actions);
    /* Handle, header and user change the key; :seconds is clamped to the max. */
    CHECK(ext_result("require \"duplicate\";\nif duplicate :handle \"h\" { discard; }\n"
                     "if duplicate :header \"X-Event\" :seconds 1000000000 { discard; }\n",
                     msg, NULL, &test_env, &actions, &error) == 0);
    render(&actions, got, sizeof(got));
    CHECK_STR(got, "keep*");
    CHECK(actions.duplicate_count == 2);
    CHECK(strcmp(actions.duplicates[0].key, seen_keys[0]) != 0);
    CHECK(strcmp(actions.duplicates[1].key, actions.duplicates[0].key) != 0);
    CHECK(actions.duplicates[1].period_seconds == 7u * 86400u); /* the maximum */
    sieve_actions_free(&actions);
    struct sieve_message other = {.header = msg, .header_len = strlen(msg), .user = "other@x"};
    sieve_actions_init(&actions);
    CHECK(ext_run("require \"duplicate\";\nif duplicate { discard; }\n", &other, &test_env, NULL,
                  &actions, &error) == 0);
    CHECK(actions.duplicate_count == 1 && strcmp(actions.duplicates[0].key, seen_keys[0]) != 0);
    sieve_actions_free(&actions);
    /* No Message-ID: false and nothing recorded. */
    CHECK(ext_result("require \"duplicate\";\nif duplicate { discard; }\n", "X: 1\r\n\r\n", NULL,
                     &test_env, &actions, &error) == 0);
    CHECK(actions.duplicate_count == 0 && actions.count == 1);
    sieve_actions_free(&actions);
    /* No store: false, still recorded; the env's periods apply. */
    struct sieve_env env = {.duplicate_default_seconds = 60, .duplicate_max_seconds = 120};
    CHECK(ext_result("require \"duplicate\";\nif duplicate { discard; }\n"
                     "if duplicate :handle \"2\" :seconds 500 { discard; }\n",
                     msg, NULL, &env, &actions, &error) == 0);
    CHECK(actions.duplicate_count == 2 && actions.duplicates[0].period_seconds == 60 &&
          actions.duplicates[1].period_seconds == 120);
    sieve_actions_free(&actions);
    /* SIEVE_RUN_DUPLICATES_MAX marks fine, one more is a runtime error. */
    char script[2048];
    size_t n = (size_t)snprintf(script, sizeof(script), "require \"duplicate\";\n");
    for (unsigned i = 0; i < SIEVE_RUN_DUPLICATES_MAX; i++) {
        n += (size_t)snprintf(script + n, sizeof(script) - n,
                              "if duplicate :uniqueid \"id%u\" { discard; }\n", i);
    }
    CHECK(ext_result(script, msg, NULL, &test_env, &actions, &error) == 0);
    CHECK(actions.duplicate_count == SIEVE_RUN_DUPLICATES_MAX);
    sieve_actions_free(&actions);
    snprintf(script + n, sizeof(script) - n, "if duplicate :uniqueid \"one more\" { discard; }\n");
    CHECK(ext_result(script, msg, NULL, &test_env, &actions, &error) == -E2BIG);
    CHECK(actions.duplicate_count == 0);
    sieve_actions_free(&actions);
    seen_key_count = 0;
}

static void
test_variable_bounds(void)
{
    struct sieve_actions actions;
    struct sieve_run_error error;
    char got[256];
    size_t size = 64 * 1024;
    char *script = malloc(size);
    CHECK(script != NULL);
    if (script == NULL) {
        return;
    }
    /* SIEVE_RUN_VARIABLES_MAX variables are fine, one more is a runtime error. */
    for (unsigned extra = 0; extra < 2; extra++) {
        size_t n = (size_t)snprintf(script, size, "require \"variables\";\n");
        for (unsigned i = 0; i < SIEVE_RUN_VARIABLES_MAX + extra; i++) {
            n += (size_t)snprintf(script + n, size - n, "set \"v%u\" \"%u\";\n", i, i);
        }
        snprintf(script + n, size - n, "if string \"${v254}\" \"254\" { discard; }\n");
        CHECK(ext_result(script, msg_default, NULL, &test_env, &actions, &error) ==
              (extra == 0 ? 0 : -E2BIG));
        render(&actions, got, sizeof(got));
        CHECK_STR(got, extra == 0 ? "discard" : "keep*");
        sieve_actions_free(&actions);
    }
    /* A value over SIEVE_RUN_VARIABLE_BYTES_MAX is cut to it (4095 and 4096 stay). */
    static const size_t lengths[] = {SIEVE_RUN_VARIABLE_BYTES_MAX - 1, SIEVE_RUN_VARIABLE_BYTES_MAX,
                                     SIEVE_RUN_VARIABLE_BYTES_MAX + 1};
    static const char *const want[] = {"4095", "4096", "4096"};
    for (size_t k = 0; k < 3; k++) {
        size_t n = (size_t)snprintf(script, size, "require [\"variables\", \"fileinto\"];\nset \"b\" \"");
        memset(script + n, 'x', lengths[k]);
        n += lengths[k];
        snprintf(script + n, size - n, "\";\nset :length \"n\" \"${b}\";\nfileinto \"${n}\";\n");
        CHECK(ext_result(script, msg_default, NULL, &test_env, &actions, &error) == 0);
        render(&actions, got, sizeof(got));
        char w[64];
        snprintf(w, sizeof(w), "fileinto:%s", want[k]);
        CHECK_STR(got, w);
        sieve_actions_free(&actions);
    }
    /* Cutting never splits a UTF-8 character. */
    size_t n = (size_t)snprintf(script, size, "require [\"variables\", \"fileinto\"];\nset \"b\" \"x");
    for (size_t i = 0; i < 2100; i++) {
        memcpy(script + n, "\xc3\xa9", 2);
        n += 2;
    }
    snprintf(script + n, size - n, "\";\nset :length \"n\" \"${b}\";\nfileinto \"${n}\";\n");
    CHECK(ext_result(script, msg_default, NULL, &test_env, &actions, &error) == 0);
    render(&actions, got, sizeof(got));
    CHECK_STR(got, "fileinto:2048"); /* "x" + 2047 two-byte characters = 4095 bytes */
    sieve_actions_free(&actions);
    /* An expanded string over SIEVE_RUN_STRING_BYTES_MAX is a runtime error. */
    n = (size_t)snprintf(script, size, "require \"variables\";\nset \"b\" \"");
    memset(script + n, 'y', 4096);
    n += 4096;
    n += (size_t)snprintf(script + n, size - n, "\";\nif string \"");
    for (size_t i = 0; i < 16; i++) {
        n += (size_t)snprintf(script + n, size - n, "${b}");
    }
    snprintf(script + n, size - n, "\" \"\" { discard; }\n");
    CHECK(ext_result(script, msg_default, NULL, &test_env, &actions, &error) == 0);
    sieve_actions_free(&actions);
    n = strlen(script) - strlen("\" \"\" { discard; }\n");
    snprintf(script + n, size - n, "x\" \"\" { discard; }\n");
    CHECK(ext_result(script, msg_default, NULL, &test_env, &actions, &error) == -E2BIG);
    render(&actions, got, sizeof(got));
    CHECK_STR(got, "keep*");
    sieve_actions_free(&actions);
    free(script);
}

/* Scripts sharing one result: sieve_before, the user's, sieve_after. */
static void
test_chain(void)
{
    struct sieve_actions actions;
    struct sieve_run_error error;
    char got[512];
    struct sieve_message message = {.header = "Subject: s\r\n\r\n", .header_len = 14};
    sieve_actions_init(&actions);
    CHECK(ext_run("require [\"imap4flags\", \"fileinto\", \"copy\", \"editheader\"];\n"
                  "addflag \"\\\\Seen\";\nfileinto :copy \"a\";\naddheader \"X-Before\" \"1\";\n",
                  &message, &test_env, NULL, &actions, &error) == 0);
    CHECK(actions.implicit_keep);
    CHECK(ext_run("require [\"imap4flags\", \"editheader\", \"fileinto\"];\n"
                  "if hasflag \"\\\\Seen\" { addflag \"X\"; }\n"
                  "if exists \"X-Before\" { addheader :last \"X-User\" \"2\"; }\n",
                  &message, &test_env, NULL, &actions, &error) == 0);
    sieve_actions_finish(&actions);
    sieve_actions_finish(&actions); /* once */
    render(&actions, got, sizeof(got));
    CHECK_STR(got, "fileinto:a[\\Seen]+copy keep*[\\Seen X]");
    CHECK_STR(actions.header != NULL ? actions.header : "",
              "X-Before: 1\r\nSubject: s\r\nX-User: 2\r\n\r\n");
    sieve_actions_free(&actions);

    /* An explicit keep lets the chain go on (as Pigeonhole's multiscript),
     * and the implicit keep then adds no second INBOX copy; an explicit
     * store in INBOX takes the implicit keep's flags. */
    sieve_actions_init(&actions);
    CHECK(ext_run("keep;\n", &message, &test_env, NULL, &actions, &error) == 0);
    CHECK(actions.implicit_keep);
    CHECK(ext_run("require \"imap4flags\";\naddflag \"\\\\Seen\";\n", &message, &test_env,
                  NULL, &actions, &error) == 0);
    sieve_actions_finish(&actions);
    render(&actions, got, sizeof(got));
    CHECK_STR(got, "keep[\\Seen]");
    sieve_actions_free(&actions);
    sieve_actions_init(&actions);
    CHECK(ext_run("require [\"fileinto\", \"copy\", \"imap4flags\"];\n"
                  "fileinto :copy :flags \"A\" \"inbox\";\naddflag [\"B\", \"A\"];\n",
                  &message, &test_env, NULL, &actions, &error) == 0);
    sieve_actions_finish(&actions);
    render(&actions, got, sizeof(got));
    CHECK_STR(got, "fileinto:inbox[A B]+copy");
    sieve_actions_free(&actions);
    /* discard after keep: the keep stands, the chain stops only without it. */
    sieve_actions_init(&actions);
    CHECK(ext_run("discard;\n", &message, &test_env, NULL, &actions, &error) == 0);
    CHECK(!actions.implicit_keep);
    sieve_actions_free(&actions);

    /* Redirects count over the whole result. */
    sieve_actions_init(&actions);
    CHECK(ext_run("require \"copy\";\nredirect :copy \"a@x.example\";\n"
                  "redirect :copy \"b@x.example\";\nredirect :copy \"c@x.example\";\n",
                  &message, &test_env, NULL, &actions, &error) == 0);
    CHECK(ext_run("redirect \"d@x.example\";\nredirect \"e@x.example\";\n", &message, &test_env,
                  NULL, &actions, &error) == -E2BIG);
    CHECK(error.line == 2);
    sieve_actions_finish(&actions);
    render(&actions, got, sizeof(got));
    CHECK_STR(got, "keep*"); /* an error drops the earlier scripts' actions too */
    sieve_actions_free(&actions);

    /* Include counts against steps and actions. */
    struct sieve_run_limits limits = {.steps_max = 5};
    sieve_actions_init(&actions);
    CHECK(ext_run("require \"include\";\ninclude \"d9\";\n", &message, &test_env, &limits,
                  &actions, &error) == -E2BIG);
    CHECK(strstr(error.text, "step") != NULL);
    sieve_actions_free(&actions);
    /* Without an env, include is a runtime error and mailboxexists false. */
    sieve_actions_init(&actions);
    CHECK(ext_run("require \"include\";\ninclude \"d9\";\n", &message, NULL, NULL, &actions,
                  &error) == -EINVAL);
    sieve_actions_free(&actions);
    sieve_actions_init(&actions);
    CHECK(ext_run("require \"mailbox\";\nif mailboxexists \"INBOX\" { discard; }\n", &message,
                  NULL, NULL, &actions, &error) == 0);
    sieve_actions_finish(&actions);
    render(&actions, got, sizeof(got));
    CHECK_STR(got, "keep*");
    sieve_actions_free(&actions);
}

/* SIEVE_RUN_INCLUDES_MAX distinct scripts fine, one more is a runtime
 * error; including one script again and again counts once. */
static void
test_include_count(void)
{
    struct sieve_actions actions;
    struct sieve_run_error error;
    size_t size = 16 * 1024;
    char *script = malloc(size);
    CHECK(script != NULL);
    if (script == NULL) {
        return;
    }
    for (unsigned extra = 0; extra < 2; extra++) {
        size_t n = (size_t)snprintf(script, size, "require \"include\";\n");
        for (unsigned i = 0; i < SIEVE_RUN_INCLUDES_MAX + extra; i++) {
            n += (size_t)snprintf(script + n, size - n, "include \"gen%u\";\n", i);
        }
        CHECK(ext_result(script, msg_default, NULL, &test_env, &actions, &error) ==
              (extra == 0 ? 0 : -E2BIG));
        sieve_actions_free(&actions);
    }
    size_t n = (size_t)snprintf(script, size, "require \"include\";\n");
    for (unsigned i = 0; i < SIEVE_RUN_INCLUDES_MAX + 10; i++) {
        n += (size_t)snprintf(script + n, size - n, "include \"gen7\";\n");
    }
    CHECK(ext_result(script, msg_default, NULL, &test_env, &actions, &error) == 0);
    CHECK(actions.count == 1 && actions.items[0].type == SIEVE_ACTION_KEEP &&
          !actions.items[0].is_implicit);
    sieve_actions_free(&actions);
    free(script);
}

int
main(void)
{
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        run_one(&cases[i], NULL);
    }
    test_limits();
    test_glob();
    for (size_t i = 0; i < sizeof(ext_cases) / sizeof(ext_cases[0]); i++) {
        ext_one(&ext_cases[i]);
    }
    test_vacation();
    test_editheader();
    test_duplicate();
    test_variable_bounds();
    test_chain();
    test_include_count();
    for (size_t i = 0; i < 300; i++) {
        sieve_script_free(&gen_scripts[i]);
    }
    for (size_t i = 0; i < sizeof(test_scripts) / sizeof(test_scripts[0]); i++) {
        sieve_script_free(&test_scripts[i].compiled);
    }
    UNIT_DONE();
}
