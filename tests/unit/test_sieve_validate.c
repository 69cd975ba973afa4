/*
 * tests/unit/test_sieve_validate.c - sieve_compile() end to end: the
 * example scripts of RFC 5228 and of each extension RFC we validate must
 * compile; broken scripts must fail with the exact line and message
 * (unknown command, unrequired extension, misplaced require, bad
 * arguments, conflicting tags, bad comparator, bad encoded-character ...);
 * the resolved fields the interpreter reads (ids, match type,
 * comparator, relation, tag values) are checked on a few scripts; the
 * script size bound is tried at max - 1, max and max + 1.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "filters/sieve_parse.h"
#include "filters/sieve_validate.h"
#include "tests/unit/unit.h"

int main(void);

struct example {
    const char *name;
    const char *text;
};

/* Each of these is (or is closely adapted from) an example of the RFC
 * named; adaptations only add a "require" the fragment assumed. */
static const struct example valid[] = {
    {"RFC 5228 2.9 if/elsif/else", "require \"fileinto\";\n"
                                   "if header :contains \"from\" \"coyote\" {\n"
                                   "   discard;\n"
                                   "} elsif header :contains [\"subject\"] [\"$$$\"] {\n"
                                   "   discard;\n"
                                   "} else {\n"
                                   "   fileinto \"INBOX\";\n"
                                   "}\n"},
    {"RFC 5228 3.1 redirect chain", "if header :contains [\"From\"] [\"coyote\"] {\n"
                                    "   redirect \"acm@example.com\";\n"
                                    "} elsif header :contains \"Subject\" \"$$$\" {\n"
                                    "   redirect \"ceo@example.com\";\n"
                                    "} else {\n"
                                    "   redirect \"postmaster@example.com\";\n"
                                    "}\n"},
    {"RFC 5228 3.2 require", "require [\"fileinto\", \"reject\"];\n"},
    {"RFC 5228 3.3 stop", "if true { stop; }\n"},
    {"RFC 5228 4.1 fileinto", "require \"fileinto\";\n"
                              "if header :contains [\"from\"] \"coyote\" {\n"
                              "   fileinto \"INBOX.harassment\";\n"
                              "}\n"},
    {"RFC 5228 4.2 redirect", "redirect \"bart@example.com\";\n"},
    {"redirect address forms", "redirect \"first.last+tag@sub.example.com\";\n"
                               "redirect \"\\\"john doe\\\"@example.com\";\n"
                               "redirect \"postmaster@[192.0.2.1]\";\n"
                               "redirect \"j\xc3\xb6rg@b\xc3\xbc"
                               "cher.example\";\n"},
    {"RFC 5228 4.3 keep", "keep;\n"},
    {"RFC 5228 4.4 discard",
     "if header :contains [\"from\"] [\"idiot@example.com\"] {\n   discard;\n}\n"},
    {"RFC 5228 5.1 address", "if address :is :all \"from\" \"tim@example.com\" {\n discard;\n}\n"},
    {"RFC 5228 5.2/5.3 allof anyof", "if allof (false, false) { keep; }\n"
                                     "if anyof (true, false) { keep; }\n"
                                     "if anyof (not exists \"x\", size :under 1M) { keep; }\n"},
    {"RFC 5228 5.4 envelope",
     "require \"envelope\";\n"
     "if envelope :all :is \"from\" \"tim@example.com\" {\n   discard;\n}\n"},
    {"RFC 5228 5.5 exists", "if exists [\"From\",\"Date\"] { keep; }\n"},
    {"RFC 5228 5.7 header", "if header :contains [\"X-Caffeine\"] [\"\"] { discard; }\n"
                            "if header :is [\"X-Caffeine\"] [\"\"] { discard; }\n"},
    {"RFC 5228 5.9 size", "if size :over 500K { discard; }\n"},
    {"RFC 5228 2.7.3 comparators",
     "require \"comparator-i;ascii-numeric\";\n"
     "if header :is :comparator \"i;ascii-numeric\" \"X-Priority\" \"1\" { keep; }\n"
     "if header :contains :comparator \"i;octet\" \"Subject\" \"MAKE MONEY FAST\" { discard; }\n"
     "if header :matches :comparator \"i;ascii-casemap\" \"Subject\" \"*money*\" { discard; }\n"},
    {"RFC 5228 2.7.1 :matches wildcards",
     "if header :matches \"Subject\" [\"*make*money*fast*\", \"?\\\\*\"] { discard; }\n"},
    {"RFC 5228 9 extended example",
     "#\n"
     "# Example Sieve Filter\n"
     "# Declare any optional features or extension used by the script\n"
     "#\n"
     "require [\"fileinto\"];\n"
     "\n"
     "#\n"
     "# Handle messages from known mailing lists\n"
     "# Move messages from IETF filter discussion list to filter mailbox\n"
     "#\n"
     "if header :is \"Sender\" \"owner-ietf-mta-filters@imc.org\"\n"
     "        {\n"
     "        fileinto \"filter\";  # move to \"filter\" mailbox\n"
     "        }\n"
     "#\n"
     "# Keep all messages to or from people in my company\n"
     "#\n"
     "elsif address :DOMAIN :is [\"From\", \"To\"] \"example.com\"\n"
     "        {\n"
     "        keep;               # keep in \"In\" mailbox\n"
     "        }\n"
     "\n"
     "#\n"
     "# Try and catch unsolicited email.  If a message is not to me,\n"
     "# or it contains a subject known to be spam, file it away.\n"
     "#\n"
     "elsif anyof (NOT address :all :contains\n"
     "               [\"To\", \"Cc\", \"Bcc\"] \"me@example.com\",\n"
     "             header :matches \"subject\"\n"
     "               [\"*make*money*fast*\", \"*university*dipl*mas*\"])\n"
     "        {\n"
     "        fileinto \"spam\";   # move to \"spam\" mailbox\n"
     "        }\n"
     "else\n"
     "        {\n"
     "        # Move all other (non-company) mail to \"personal\"\n"
     "        # mailbox.\n"
     "        fileinto \"personal\";\n"
     "        }\n"},
    {"RFC 5228 2.4.2.4 encoded-character",
     "require \"encoded-character\";\n"
     "if header :contains \"Subject\" \"$${hex:24 24}\" { discard; }\n"
     "if header :contains \"Subject\" \"${unicode:40}${hex: 40 }${Unicode:1F600}\" { keep; }\n"},
    {"RFC 3894 copy", "require [\"copy\", \"fileinto\"];\n"
                      "redirect :copy \"sieve-admin@example.com\";\n"
                      "fileinto :copy \"incoming\";\n"},
    {"RFC 5229 variables 3", "require \"variables\";\n"
                             "set \"honorific\"  \"Mr\";\n"
                             "set \"first_name\" \"Wile\";\n"
                             "set \"last_name\"  \"Coyote\";\n"
                             "set \"vacation\" text:\n"
                             "Dear ${HONORIFIC} ${last_name},\n"
                             "I'm out, please leave a message after the meep.\n"
                             ".\n"
                             ";\n"},
    {"RFC 5229 variables 3.2 match variables",
     "require [\"fileinto\", \"variables\"];\n"
     "if header :matches \"List-ID\" \"*<*@*\" {\n"
     "    fileinto \"INBOX.lists.${2}\"; stop;\n"
     "}\n"
     "# Imagine the header\n"
     "# Subject: [acme-users] [fwd] version 1.0 is out\n"
     "if header :matches \"Subject\" \"[*] *\" {\n"
     "    # ${1} will hold \"acme-users\",\n"
     "    # ${2} will hold \"[fwd] version 1.0 is out\"\n"
     "    fileinto \"INBOX.lists.${1}\"; stop;\n"
     "}\n"
     "# Imagine the header\n"
     "# To: coyote@ACME.Example.COM\n"
     "if address :matches [\"To\", \"Cc\"] [\"coyote@**.com\",\n"
     "        \"wile@**.com\"] {\n"
     "    # ${0} is the matching address\n"
     "    # ${1} is always the empty string\n"
     "    # ${2} is part of the domain name (\"ACME.Example\")\n"
     "    fileinto \"INBOX.business.${2}\"; stop;\n"
     "} else {\n"
     "    # Control wouldn't reach this block if any match was\n"
     "    # successful, so no match variables are set at this\n"
     "    # point.\n"
     "}\n"
     "if anyof (true, address :domain :matches \"To\" \"*.com\") {\n"
     "    # The second test is never evaluated, so there are\n"
     "    # still no match variables set.\n"
     "    stop;\n"
     "}\n"},
    {"RFC 5229 4.1 set modifiers", "require \"variables\";\n"
                                   "set \"a\" \"juMBlEd lETteRS\";\n"
                                   "set \"b\" \"${a}\";\n"
                                   "set :length \"length\" \"${a}\";\n"
                                   "set :lower \"lower\" \"${a}\";\n"
                                   "set :upperfirst \"upperfirst\" \"${a}\";\n"
                                   "set :upperfirst :lower \"b\" \"${a}\";\n"
                                   "set :quotewildcard \"b\" \"Rock*\";\n"},
    {"RFC 5229 5 string test", "require \"variables\";\n"
                               "set \"state\" \"${state} pending\";\n"
                               "if string :matches \" ${state} \" \"* pending *\" {\n"
                               "    # the above test always succeeds\n"
                               "}\n"},
    {"RFC 5230 4.1 vacation", "require \"vacation\";\n"
                              "if header :contains \"subject\" \"cyrus\" {\n"
                              "    vacation \"I'm out -- send mail to cyrus-bugs\";\n"
                              "} else {\n"
                              "    vacation \"I'm out -- call me at +1 304 555 0123\";\n"
                              "}\n"},
    {"RFC 5230 4.1 vacation :days :addresses",
     "require \"vacation\";\n"
     "vacation :days 23 :addresses [\"tjs@example.edu\",\n"
     "                              \"ts4z@landru.example.edu\"]\n"
     "   \"I'm away until October 19.\n"
     "   If it's an emergency, call 911, I guess.\" ;\n"},
    {"RFC 5230 4.1 vacation :subject with variables",
     "require [\"vacation\", \"variables\"];\n"
     "if header :matches \"subject\" \"*\" {\n"
     "    vacation :subject \"Automatic response to: ${1}\"\n"
     "             \"I'm away\";\n"
     "}\n"},
    {"RFC 5230 4.1 vacation :mime",
     "require \"vacation\";\n"
     "vacation :mime text:\n"
     "Content-Type: multipart/alternative; boundary=foo\n"
     "\n"
     "--foo\n"
     "\n"
     "I'm at the beach relaxing.  Mmmm, surf...\n"
     "\n"
     "--foo\n"
     "Content-Type: text/html; charset=us-ascii\n"
     "\n"
     "<!DOCTYPE HTML PUBLIC \"-//W3C//DTD HTML 4.0//EN\"\n"
     " \"http://www.w3.org/TR/REC-html40/strict.dtd\">\n"
     "<HTML><HEAD><TITLE>How to relax</TITLE>\n"
     "<BASE HREF=\"http://home.example.com/pictures/\"></HEAD>\n"
     "<BODY><P>I'm at the <A HREF=\"beach.gif\">beach</A> relaxing.\n"
     "Mmmm, <A HREF=\"ocean.gif\">surf</A>...\n"
     "</BODY></HTML>\n"
     "\n"
     "--foo--\n"
     ".\n"
     ";\n"},
    {"RFC 5230 4.1 vacation :from :handle",
     "require \"vacation\";\n"
     "vacation :days 7 :from \"hemingway@example.com\" \"Gone Fishin'\";\n"
     "vacation :handle \"ran-away\" \"I'm not here\";\n"},
    {"RFC 6131 vacation-seconds",
     "require [\"vacation\", \"vacation-seconds\"];\n"
     "vacation :seconds 1800 \"I am in a meeting, and do not have access to email.\";\n"},
    {"RFC 5231 relational",
     "require [\"relational\", \"comparator-i;ascii-numeric\", \"fileinto\"];\n"
     "if header :value \"lt\" :comparator \"i;ascii-numeric\"\n"
     "          [\"x-priority\"] [\"3\"]\n"
     "{\n"
     "   fileinto \"Priority\";\n"
     "}\n"
     "elsif address :count \"gt\" :comparator \"i;ascii-numeric\"\n"
     "           [\"to\"] [\"5\"]\n"
     "{\n"
     "   # everything with more than 5 recipients in the \"to\" field\n"
     "   # is considered SPAM\n"
     "   fileinto \"SPAM\";\n"
     "}\n"
     "elsif address :value \"gt\" :all :comparator \"i;ascii-casemap\"\n"
     "           [\"from\"] [\"M\"]\n"
     "{\n"
     "   fileinto \"From N-Z\";\n"
     "} else {\n"
     "   fileinto \"From A-M\";\n"
     "}\n"
     "if allof ( address :count \"eq\" :comparator \"i;ascii-numeric\"\n"
     "                   [\"to\", \"cc\"] [\"1\"] ,\n"
     "           address :all :comparator \"i;ascii-casemap\"\n"
     "                   [\"to\", \"cc\"] [\"me@foo.example.com\"] )\n"
     "{\n"
     "   fileinto \"Only me\";\n"
     "}\n"},
    {"RFC 5232 imap4flags",
     "require [\"fileinto\", \"imap4flags\", \"variables\"];\n"
     "if size :over 1M {\n"
     "    addflag \"MyFlags\" \"Big\";\n"
     "    if header :is \"From\" \"boss@company.example.com\" {\n"
     "        # The message will be marked as \"\\Flagged Big\" when filed into mailbox\n"
     "        # \"Big messages\"\n"
     "        addflag \"MyFlags\" \"\\\\Flagged\";\n"
     "    }\n"
     "    fileinto :flags \"${MyFlags}\" \"Big messages\";\n"
     "}\n"
     "if header :is \"From\" \"grandma@example.net\" {\n"
     "    addflag \"MyFlags\" [\"\\\\Answered\", \"$MDNSent\"];\n"
     "    fileinto :flags \"${MyFlags}\" \"GrandMa\";\n"
     "}\n"
     "if header :is \"Sender\" \"owner-ietf-mta-filters@example.org\" {\n"
     "    set \"MyFlags\" \"\\\\Flagged $Work\";\n"
     "    keep :flags \"${MyFlags}\";\n"
     "}\n"
     "elsif anyof address :domain :is [\"From\", \"To\"] \"company.example.com\" {\n"
     "    keep :flags \"${MyFlags}\"; # keep in \"In\" folder\n"
     "}\n"
     "elsif anyof (not address :all :contains\n"
     "               [\"To\", \"Cc\"] \"me@company.example.com\",\n"
     "             header :matches \"subject\"\n"
     "               [\"*make*money*fast*\", \"*university*dipl*mas*\"]) {\n"
     "    removeflag \"MyFlags\" \"\\\\Flagged\";\n"
     "    fileinto :flags \"${MyFlags}\" \"spam\";\n"
     "} else {\n"
     "    fileinto :flags \"${MyFlags}\" \"personal\";\n"
     "}\n"},
    {"RFC 5232 hasflag and setflag",
     "require [\"imap4flags\", \"relational\", \"comparator-i;ascii-numeric\", \"variables\",\n"
     "         \"fileinto\"];\n"
     "setflag \"\\\\Seen\";\n"
     "setflag \"flagvar\" [\"\\\\Deleted\", \"\\\\Answered\"];\n"
     "if hasflag :contains \"MyVar\" \"Junk\" { discard; }\n"
     "if hasflag :contains \"Junk\" { discard; }\n"
     "if hasflag :count \"ge\" :comparator \"i;ascii-numeric\" \"MyFlags\" \"2\" {\n"
     "    fileinto \"Imp\";\n"
     "}\n"
     "removeflag \"\\\\Seen\";\n"},
    {"RFC 5233 subaddress", "require [\"envelope\", \"subaddress\", \"fileinto\"];\n"
                            "\n"
                            "# In this example the same user account receives mail for both\n"
                            "# \"ken@example.com\" and \"postmaster@example.com\"\n"
                            "\n"
                            "# File all messages to postmaster into a single mailbox,\n"
                            "# ignoring the :detail part.\n"
                            "if envelope :user \"to\" \"postmaster\" {\n"
                            "    fileinto \"inbox.postmaster\";\n"
                            "    stop;\n"
                            "}\n"
                            "\n"
                            "# File mailing list messages (subscribed as \"ken+mta-filters\").\n"
                            "if envelope :detail \"to\" \"mta-filters\" {\n"
                            "    fileinto \"inbox.ietf-mta-filters\";\n"
                            "}\n"
                            "\n"
                            "# Redirect all mail sent to \"ken+foo\".\n"
                            "if envelope :detail \"to\" \"foo\" {\n"
                            "    redirect \"ken@example.net\";\n"
                            "}\n"},
    {"RFC 5173 body",
     "require [\"body\", \"fileinto\"];\n"
     "if body :raw :contains \"MAKE MONEY FAST\" {\n"
     "    discard;\n"
     "}\n"
     "# Save any message with any text MIME part that contains the\n"
     "# words \"missile\" or \"coordinates\" in the \"secrets\" folder.\n"
     "if body :content \"text\" :contains [\"missile\", \"coordinates\"] {\n"
     "    fileinto \"secrets\";\n"
     "}\n"
     "# Save any message with an audio/mp3 MIME part in\n"
     "# the \"jukebox\" folder.\n"
     "if body :content \"audio/mp3\" :contains \"\" {\n"
     "    fileinto \"jukebox\";\n"
     "}\n"
     "if body :text :contains \"project schedule\" { fileinto \"project/schedule\"; }\n"},
    {"RFC 5260 date", "require [\"date\", \"relational\", \"fileinto\"];\n"
                      "if allof(header :is \"from\" \"boss@example.com\",\n"
                      "         date :value \"ge\" :originalzone \"date\" \"hour\" \"09\",\n"
                      "         date :value \"lt\" :originalzone \"date\" \"hour\" \"17\")\n"
                      "{ fileinto \"urgent\"; }\n"
                      "if anyof(date :is \"received\" \"weekday\" \"0\",\n"
                      "         date :is \"received\" \"weekday\" \"6\")\n"
                      "{ fileinto \"weekend\"; }\n"},
    {"RFC 5260 currentdate",
     "require [\"date\", \"relational\", \"vacation\"];\n"
     "if allof(currentdate :value \"ge\" \"date\" \"2007-06-30\",\n"
     "         currentdate :value \"le\" \"date\" \"2007-07-07\")\n"
     "{ vacation :days 7  \"I'm away during the first week in July.\"; }\n"},
    {"RFC 5260 currentdate with variables",
     "require [\"date\", \"variables\", \"fileinto\"];\n"
     "if currentdate :matches \"month\" \"*\" { set \"month\" \"${1}\"; }\n"
     "if currentdate :matches \"year\"  \"*\" { set \"year\"  \"${1}\"; }\n"
     "fileinto \"${month}-${year}\";\n"},
    {"RFC 5260 date :zone",
     "require [\"date\", \"variables\"];\n"
     "if date :zone \"-0800\" :matches \"date\" \"iso8601\" \"*\" { set \"d\" \"${0}\"; }\n"
     "if currentdate :zone \"+0000\" :is \"zone\" \"+0000\" { keep; }\n"},
    {"RFC 5260 index",
     "require [\"date\", \"index\", \"relational\"];\n"
     "if date :value \"gt\" :index 2 :zone \"-0500\" \"received\"\n"
     "        \"iso8601\" \"2007-02-26T09:00:00-05:00\"\n"
     "{ redirect \"aftercutoff@example.org\"; }\n"
     "if header :index 1 :last :matches \"received\" \"*(* [*.*.*.*])*\" { keep; }\n"
     "if address :index 1 :is \"from\" \"x@example.org\" { keep; }\n"},
    {"RFC 5293 editheader", "require [\"editheader\"];\n"
                            "/* Don't redirect if we already have */\n"
                            "if not header :contains \"X-Sieve-Filtered\"\n"
                            "        [\"<kim@job.example.com>\", \"<kim@home.example.com>\"]\n"
                            "{\n"
                            "        addheader \"X-Sieve-Filtered\" \"<kim@job.example.com>\";\n"
                            "        redirect \"kim@home.example.com\";\n"
                            "}\n"
                            "addheader :last \"X-Hello\" \"World\";\n"
                            "deleteheader :index 1 :is \"Delivered-To\" \"bob@example.com\";\n"
                            "deleteheader :index 1 :last \"X-Spam-Status\";\n"
                            "deleteheader :matches \"X-Spam-*\" \"*\";\n"
                            "deleteheader \"X-Test\";\n"},
    {"RFC 5293 editheader with variables", "require [\"editheader\", \"variables\"];\n"
                                           "if header :matches \"Subject\" \"*\" {\n"
                                           "    set \"subject\" \"${1}\";\n"
                                           "    deleteheader \"Subject\";\n"
                                           "    addheader \"Subject\" \"[SPAM] ${subject}\";\n"
                                           "}\n"},
    {"RFC 5429 reject", "require [\"reject\"];\n"
                        "if header :contains \"from\" \"coyote@desert.example.org\" {\n"
                        "    reject text:\n"
                        "I am not taking mail from you, and I don't\n"
                        "want your birdseed, either!\n"
                        ".\n"
                        "    ;\n"
                        "}\n"},
    {"RFC 5429 ereject", "require [\"ereject\"];\n"
                         "if address \"from\" \"someone.i.dont.like@example.com\" {\n"
                         "    ereject \"I no longer accept mail from this address\";\n"
                         "}\n"},
    {"RFC 6134 extlists", "require [\"extlists\", \"envelope\", \"variables\"];\n"
                          "if envelope :list \"from\" \":addrbook:default\" { keep; }\n"
                          "if address :list :domain \"from\" \"tag:example.com,2011:blocked\" "
                          "{ discard; }\n"
                          "if header :list \"x-list\" \":addrbook:default\" { keep; }\n"
                          "if string :list \"${x}\" \":addrbook:default\" { keep; }\n"
                          "if valid_ext_list [\":addrbook:default\", \"x\"] { keep; }\n"},
    {"RFC 5490 mailbox", "require [\"fileinto\", \"mailbox\", \"copy\"];\n"
                         "if mailboxexists \"Partners\" {\n"
                         "    fileinto :create \"Partners\";\n"
                         "} else {\n"
                         "    fileinto :create :copy \"Unsorted\";\n"
                         "}\n"},
    {"RFC 5235 spamtest",
     "require [\"spamtest\", \"fileinto\", \"relational\", \"comparator-i;ascii-numeric\"];\n"
     "if spamtest :value \"eq\" :comparator \"i;ascii-numeric\" \"0\"\n"
     "{\n"
     "    fileinto \"INBOX.unclassified\";\n"
     "}\n"
     "elsif spamtest :value \"ge\" :comparator \"i;ascii-numeric\" \"3\"\n"
     "{\n"
     "    fileinto \"INBOX.spam-trap\";\n"
     "}\n"},
    {"RFC 5235 spamtestplus",
     "require [\"spamtestplus\", \"fileinto\", \"relational\",\n"
     "         \"comparator-i;ascii-numeric\"];\n"
     "if spamtest :percent :value \"eq\" :comparator \"i;ascii-numeric\" \"0\"\n"
     "{\n"
     "    fileinto \"INBOX.unclassified\";\n"
     "}\n"
     "elsif spamtest :percent :value \"ge\" :comparator \"i;ascii-numeric\" \"50\"\n"
     "{\n"
     "    fileinto \"INBOX.spam-trap\";\n"
     "}\n"},
    {"RFC 5235 virustest",
     "require [\"virustest\", \"fileinto\", \"relational\", \"comparator-i;ascii-numeric\"];\n"
     "if virustest :value \"eq\" :comparator \"i;ascii-numeric\" \"0\"\n"
     "{\n"
     "    fileinto \"INBOX.unclassified\";\n"
     "}\n"
     "if virustest :value \"eq\" :comparator \"i;ascii-numeric\" \"4\"\n"
     "{\n"
     "    fileinto \"INBOX.quarantine\";\n"
     "}\n"
     "elsif virustest :value \"eq\" :comparator \"i;ascii-numeric\" \"5\"\n"
     "{\n"
     "    discard;\n"
     "}\n"},
    {"RFC 6609 include", "require [\"include\"];\n"
                         "include :personal \"always_allow\";\n"
                         "include :global \"spam_tests\";\n"
                         "include :personal \"spam_tests\";\n"
                         "include :personal \"mailing_lists\";\n"
                         "include :once :optional \"maybe\";\n"
                         "return;\n"},
    {"RFC 6609 global variables", "require [\"variables\", \"include\", \"relational\"];\n"
                                  "global \"test\";\n"
                                  "global \"test_mailbox\";\n"
                                  "set \"test\" \"$$\";\n"
                                  "include \"subscript1\";\n"
                                  "set \"global.i_am_on_vacation\" \"1\";\n"
                                  "if string :is \"${global.i_am_on_vacation}\" \"1\" { keep; }\n"
                                  "if string :count \"eq\" \"${test}\" \"0\" { return; }\n"},
    {"RFC 7352 duplicate", "require [\"duplicate\", \"variables\", \"imap4flags\"];\n"
                           "if header :matches \"subject\" \"ALERT: *\" {\n"
                           "  if duplicate :seconds 60 :uniqueid \"${1}\" {\n"
                           "    setflag \"\\\\seen\";\n"
                           "  }\n"
                           "}\n"},
    {"RFC 7352 duplicate :header :handle",
     "require [\"duplicate\", \"fileinto\", \"mailbox\"];\n"
     "if duplicate {\n"
     "  fileinto :create \"Trash/Duplicate\";\n"
     "}\n"
     "if duplicate :header \"X-Event-ID\" :handle \"notifier\" { discard; }\n"
     "if duplicate :last :seconds 1800 { stop; }\n"},
    {"CRLF line ends and case-insensitive names",
     "REQUIRE \"fileinto\";\r\nIF HEADER :IS \"a\" \"b\" {\r\n  FileInto \"x\";\r\n}\r\n"},
};

struct broken {
    const char *text;
    uint32_t line;
    const char *error;
};

static const struct broken broken[] = {
    /* The lexer and the parser, through sieve_compile. */
    {"keep;\nfileinto \"abc;\n", 3, "end of file before end of quoted string started at line 2"},
    {"keep;\nstop\n]", 3,
     "expected end of command ';' or the beginning of a compound block '{', but found "
     "']'"},
    {"keep;\n}\n", 2, "unexpected '}' found at (the presumed) end of file"},
    {"require \"vacation\";\nvacation text:\nGone.\n", 4,
     "end of file before end of multi-line string"},
    {"if size :over 18446744073709551616 { discard; }", 1,
     "number exceeds integer limits (max 18446744073709551615)"},
    {"if size :over 17179869184G { discard; }", 1,
     "number exceeds integer limits (max 18446744073709551615)"},
    {"fileinto \"\xc3\x28\";", 1,
     "quoted string started at line 1 contains invalid UTF-8 (byte 0xc3)"},
    /* Commands and tests. */
    {"require \"fileinto\";\nkeep;\nfileintoo \"x\";\n", 3,
     "unknown command 'fileintoo' (only reported once at first occurrence)"},
    {"if headr \"a\" \"b\" { keep; }", 1,
     "unknown test 'headr' (only reported once at first occurrence)"},
    {"fileinto \"x\";", 1,
     "unknown command 'fileinto' (the \"fileinto\" extension is not required)"},
    {"if envelope \"to\" \"x\" { keep; }", 1,
     "unknown test 'envelope' (the \"envelope\" extension is not required)"},
    {"set \"a\" \"b\";", 1, "unknown command 'set' (the \"variables\" extension is not required)"},
    {"require \"fileinto\";\nfileinto :copy \"x\";", 2,
     "unknown tagged argument ':copy' for the fileinto command (the \"copy\" extension is not "
     "required)"},
    {"if address :user \"to\" \"x\" { keep; }", 1,
     "unknown tagged argument ':user' for the address test (the \"subaddress\" extension is not "
     "required)"},
    {"if header :value \"gt\" \"x\" \"1\" { keep; }", 1,
     "unknown tagged argument ':value' for the header test (the \"relational\" extension is not "
     "required)"},
    {"if header :index 1 \"x\" \"1\" { keep; }", 1,
     "unknown tagged argument ':index' for the header test (the \"index\" extension is not "
     "required)"},
    {"if header :list \"from\" \":addrbook:default\" { keep; }", 1,
     "unknown tagged argument ':list' for the header test (the \"extlists\" extension is not "
     "required)"},
    {"require [\"extlists\", \"body\"];\nif body :list \":addrbook:default\" { keep; }", 2,
     "unknown tagged argument ':list' for the body test"},
    {"require \"extlists\";\nif header :list :is \"from\" \"x\" { keep; }", 2,
     "the :list and :is tags cannot be used together for the header test"},
    {"if valid_ext_list \"x\" { keep; }", 1,
     "unknown test 'valid_ext_list' (the \"extlists\" extension is not required)"},
    {"require \"vacation\";\nvacation :seconds 60 \"x\";", 2,
     "unknown tagged argument ':seconds' for the vacation command (the \"vacation-seconds\" "
     "extension is not required)"},
    {"require \"spamtest\";\nif spamtest :percent \"5\" { keep; }", 2,
     "unknown tagged argument ':percent' for the spamtest test (the \"spamtestplus\" extension "
     "is not required)"},
    {"keep :foo;", 1, "unknown tagged argument ':foo' for the keep command"},
    {"require \"fileintoo\";", 1, "require command: unknown Sieve capability `fileintoo'"},
    {"require [\"fileinto\",\n\"notify\"];", 2,
     "require command: unknown Sieve capability `notify'"},
    {"keep;\nrequire \"fileinto\";", 2,
     "require commands can only be placed at top level at the beginning of the file"},
    {"if true {\n  require \"fileinto\";\n}", 2,
     "require commands can only be placed at top level at the beginning of the file"},
    {"require 5;", 1,
     "the require command expects a string list as argument 1 (capabilities), but a number was "
     "found"},
    {"keep;\nelsif true { keep; }", 2, "the elsif command must follow an if or elsif command"},
    {"else { keep; }", 1, "the else command must follow an if or elsif command"},
    {"if true { keep; }\nkeep;\nelse { keep; }", 3,
     "the else command must follow an if or elsif command"},
    {"if true { keep; } else { keep; } else { keep; }", 1,
     "the else command must follow an if or elsif command"},
    {"if true;", 1, "the if command requires a command block, but it is missing"},
    {"keep { stop; }", 1, "the keep command does not accept a command block"},
    {"if { keep; }", 1, "the if command requires one test, but none was found"},
    {"if (true, false) { keep; }", 1,
     "the if command requires one test, but a test list was found"},
    {"keep stop;", 1, "the keep command accepts no tests, but a test was found"},
    {"require \"fileinto\";\nfileinto \"a\"\nkeep;", 3,
     "the fileinto command accepts no tests, but the test 'keep' follows it (missing ';' at "
     "the end of line 2?)"},
    {"if true {\n  discard\n  stop;\n}", 3,
     "the discard command accepts no tests, but the test 'stop' follows it (missing ';' at "
     "the end of line 2?)"},
    {"if not (true) { keep; }", 1, "the not test requires one test, but a test list was found"},
    {"if anyof { keep; }", 1, "the anyof test requires a list of tests, but none was found"},
    {"redirect;", 1, "the redirect command expects 1 positional argument, but 0 were found"},
    {"redirect \"a@b.c\" \"d@e.f\";", 1,
     "the redirect command expects 1 positional argument, but 2 were found"},
    {"redirect [\"a@b.c\"];", 1,
     "the redirect command expects a string as argument 1 (address), but a string list was "
     "found"},
    {"redirect 1;", 1,
     "the redirect command expects a string as argument 1 (address), but a number was found"},
    {"redirect \"not an address\";", 1, "specified redirect address 'not an address' is invalid"},
    {"redirect \"a..b@example.com\";", 1,
     "specified redirect address 'a..b@example.com' is invalid"},
    {"redirect \"a@example..com\";", 1, "specified redirect address 'a@example..com' is invalid"},
    {"redirect \"@example.com\";", 1, "specified redirect address '@example.com' is invalid"},
    {"redirect \"a@\";", 1, "specified redirect address 'a@' is invalid"},
    {"redirect \"Bob <bob@example.com>\";", 1,
     "specified redirect address 'Bob <bob@example.com>' is invalid"},
    {"if header \"a\" { keep; }", 1,
     "the header test expects 2 positional arguments, but 1 were found"},
    {"if exists \"Bad Header\" { keep; }", 1,
     "specified header field name 'Bad Header' is invalid"},
    {"if header :is :contains \"a\" \"b\" { keep; }", 1,
     "the :is and :contains tags cannot be used together for the header test"},
    {"if header :is :is \"a\" \"b\" { keep; }", 1,
     "tagged argument ':is' is given twice for the header test"},
    {"if size :over 1 :under 2 { keep; }", 1,
     "the :over and :under tags cannot be used together for the size test"},
    {"if size 100 { keep; }", 1, "the size test expects 0 positional arguments, but 1 were found"},
    {"if size { keep; }", 1, "the size test requires either the :under or the :over tag"},
    {"if size :over \"1\" { keep; }", 1,
     "the :over tag for the size test requires a number argument, but a string was found"},
    {"if header \"a\" \"b\" :is { keep; }", 1,
     "tagged argument ':is' of the header test comes after a positional argument"},
    {"if header :comparator \"i;foo\" \"a\" \"b\" { keep; }", 1, "unknown comparator 'i;foo'"},
    {"if header :comparator \"i;ascii-numeric\" \"a\" \"1\" { keep; }", 1,
     "unknown comparator 'i;ascii-numeric'"},
    {"if header :comparator { keep; }", 1,
     "the :comparator tag for the header test requires a string argument, but none was found"},
    {"require \"comparator-i;ascii-numeric\";\n"
     "if header :contains :comparator \"i;ascii-numeric\" \"a\" \"1\" { keep; }",
     2, "the comparator 'i;ascii-numeric' cannot be used with the :contains match type"},
    {"require \"relational\";\nif header :value \"xx\" \"a\" \"1\" { keep; }", 2,
     "the :value match type requires a constant string argument being one of \"gt\", \"ge\", "
     "\"lt\", \"le\", \"eq\" or \"ne\", but \"xx\" was found"},
    {"require \"envelope\";\nif envelope \"sender\" \"x\" { keep; }", 2,
     "specified envelope part 'sender' is not supported by the envelope test"},
    {"require \"variables\";\nset \"1a\" \"b\";", 2, "invalid variable name '1a'"},
    {"require \"variables\";\nset :lower :upper \"a\" \"b\";", 2,
     "the :lower and :upper tags cannot be used together for the set command"},
    {"require \"variables\";\nset \"a\" \"${foo.bar}\";", 2,
     "variable namespace 'foo' is unknown (not required or not supported)"},
    {"require \"imap4flags\";\nsetflag \"var\" \"\\\\Seen\";", 2,
     "the setflag command takes variable names only with the \"variables\" extension"},
    {"require \"date\";\nif date \"date\" \"fortnight\" \"1\" { keep; }", 2,
     "invalid date part 'fortnight'"},
    {"require \"date\";\nif currentdate :zone \"CET\" \"hour\" \"1\" { keep; }", 2,
     "invalid time zone 'CET' for the :zone tag (expected +hhmm or -hhmm)"},
    {"require \"date\";\nif date :zone \"+0100\" :originalzone \"date\" \"hour\" \"1\" { keep; }",
     2, "the :zone and :originalzone tags cannot be used together for the date test"},
    {"require [\"date\", \"index\"];\nif date :last \"date\" \"hour\" \"1\" { keep; }", 2,
     "the :last tag of the date test requires :index"},
    {"require \"index\";\nif header :index 0 \"a\" \"b\" { keep; }", 2,
     "the :index tag of the header test requires a position of 1 or more"},
    {"require \"editheader\";\ndeleteheader :last \"X-A\";", 2,
     "the :last tag of the deleteheader command requires :index"},
    {"require \"editheader\";\naddheader \"X A\" \"b\";", 2,
     "specified header field name 'X A' is invalid"},
    {"require \"include\";\ninclude :personal :global \"a\";", 2,
     "the :personal and :global tags cannot be used together for the include command"},
    {"require \"include\";\ninclude \"../etc/passwd\";", 2,
     "include: invalid script name '../etc/passwd'"},
    {"require \"include\";\nglobal \"x\";", 2,
     "the global command takes variable names only with the \"variables\" extension"},
    {"require \"duplicate\";\nif duplicate :header \"X\" :uniqueid \"y\" { keep; }", 2,
     "the :header and :uniqueid tags cannot be used together for the duplicate test"},
    {"require \"vacation\";\nvacation :days \"7\" \"x\";", 2,
     "the :days tag for the vacation command requires a number argument, but a string was "
     "found"},
    {"require [\"vacation\", \"vacation-seconds\"];\nvacation :days 1 :seconds 60 \"x\";", 2,
     "the :days and :seconds tags cannot be used together for the vacation command"},
    {"require [\"body\"];\nif body :raw :text \"x\" { keep; }", 2,
     "the :raw and :text tags cannot be used together for the body test"},
    /* Error texts stay UTF-8 whatever the string held. */
    {"require [\"encoded-character\"];\nredirect \"${hex:ff}\x01\xc3\xa9@\";", 2,
     "specified redirect address '??\xc3\xa9@' is invalid"},
    {"redirect \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\xc3\xa9x\";", 1,
     "specified redirect address 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa...' is invalid"},
    /* encoded-character */
    {"require \"encoded-character\";\nkeep;\nfileinto \"${unicode:D800}\";", 3,
     "unknown command 'fileinto' (the \"fileinto\" extension is not required)"},
    {"require [\"encoded-character\", \"fileinto\"];\nfileinto \"${unicode:D800}\";", 2,
     "invalid unicode character 0x0000d800 in encoded character substitution"},
    {"require [\"encoded-character\", \"fileinto\"];\nfileinto \"${unicode:110000}\";", 2,
     "invalid unicode character 0x00110000 in encoded character substitution"},
    {"require [\"encoded-character\", \"fileinto\"];\nfileinto\n\"${unicode:FFFFFFFFFFFF}\";", 3,
     "invalid unicode character 0xffffffff in encoded character substitution"},
};

static void
test_valid_examples(void)
{
    for (size_t i = 0; i < sizeof(valid) / sizeof(valid[0]); i++) {
        struct sieve_script *script = NULL;
        struct sieve_errors errors;
        int rc = sieve_compile(valid[i].text, strlen(valid[i].text), NULL, &script, &errors);
        CHECK(rc == 0);
        if (rc != 0) {
            char buf[1024];
            (void)sieve_errors_format(&errors, "\n", buf, sizeof(buf));
            fprintf(stderr, "  example \"%s\":\n%s", valid[i].name, buf);
        }
        CHECK(rc != 0 || script != NULL);
        sieve_script_free(&script);
        CHECK(script == NULL);
    }
}

static void
test_broken_examples(void)
{
    for (size_t i = 0; i < sizeof(broken) / sizeof(broken[0]); i++) {
        struct sieve_script *script = NULL;
        struct sieve_errors errors;
        int rc = sieve_compile(broken[i].text, strlen(broken[i].text), NULL, &script, &errors);
        CHECK(rc == -EINVAL);
        CHECK(script == NULL);
        sieve_script_free(&script);
        bool is_ok = errors.count >= 1 && errors.items[0].line == broken[i].line &&
                     strcmp(errors.items[0].text, broken[i].error) == 0;
        CHECK(is_ok);
        if (!is_ok) {
            char buf[1024];
            (void)sieve_errors_format(&errors, "\n", buf, sizeof(buf));
            fprintf(stderr, "  script %zu wanted line %u: %s\n  got:\n%s", i, broken[i].line,
                    broken[i].error, buf);
        }
    }
}

static struct sieve_script *
compile_ok(const char *text)
{
    struct sieve_script *script = NULL;
    struct sieve_errors errors;
    int rc = sieve_compile(text, strlen(text), NULL, &script, &errors);
    CHECK(rc == 0);
    if (rc != 0) {
        char buf[1024];
        (void)sieve_errors_format(&errors, "\n", buf, sizeof(buf));
        fprintf(stderr, "%s", buf);
    }
    return script;
}

static void
test_resolved_fields(void)
{
    struct sieve_script *script = compile_ok(
        "require [\"fileinto\", \"relational\", \"comparator-i;ascii-numeric\", \"subaddress\",\n"
        "         \"imap4flags\", \"copy\", \"vacation\", \"spamtestplus\"];\n"
        "if address :count \"GE\" :comparator \"i;ascii-numeric\" :detail [\"to\", \"cc\"] \"2\" "
        "{\n"
        "  fileinto :copy :flags [\"\\\\Seen\", \"$Junk\"] \"Lists\";\n"
        "}\n"
        "vacation :days 3 :subject \"Away\" \"reason\";\n");
    if (script == NULL) {
        return;
    }
    CHECK(sieve_script_requires(script, SIEVE_EXT_FILEINTO));
    CHECK(sieve_script_requires(script, SIEVE_EXT_SPAMTEST)); /* implied by spamtestplus */
    CHECK(!sieve_script_requires(script, SIEVE_EXT_BODY));
    CHECK(sieve_script_requires(script, SIEVE_EXT_NONE));
    const struct sieve_node *req = script->commands;
    CHECK(req->id == SIEVE_CMD_REQUIRE);
    const struct sieve_node *ifc = req->next;
    CHECK(ifc->id == SIEVE_CMD_IF);
    const struct sieve_node *address = ifc->tests;
    CHECK(address->id == SIEVE_TEST_ADDRESS);
    CHECK(address->match == SIEVE_MATCH_COUNT);
    CHECK(address->relation == SIEVE_REL_GE);
    CHECK(address->comparator == SIEVE_CMP_ASCII_NUMERIC);
    CHECK(address->address_part == SIEVE_ADDR_DETAIL);
    CHECK(address->positional_count == 2);
    CHECK(address->positional[0]->string_count == 2);
    CHECK_STR(address->positional[0]->strings[1].text, "cc");
    CHECK_STR(address->positional[1]->strings[0].text, "2");
    const struct sieve_node *fileinto = ifc->block;
    CHECK(fileinto->id == SIEVE_CMD_FILEINTO);
    CHECK(fileinto->positional_count == 1);
    CHECK_STR(fileinto->positional[0]->strings[0].text, "Lists");
    CHECK(sieve_node_tag(fileinto, SIEVE_TAG_COPY) != NULL);
    CHECK(sieve_node_tag(fileinto, SIEVE_TAG_CREATE) == NULL);
    const struct sieve_arg *flags = sieve_node_tag(fileinto, SIEVE_TAG_FLAGS);
    CHECK(flags != NULL && flags->param != NULL && flags->param->is_tag_param);
    if (flags != NULL && flags->param != NULL) {
        CHECK(flags->param->string_count == 2);
        CHECK_STR(flags->param->strings[0].text, "\\Seen");
    }
    const struct sieve_node *vacation = ifc->next;
    CHECK(vacation->id == SIEVE_CMD_VACATION);
    const struct sieve_arg *days = sieve_node_tag(vacation, SIEVE_TAG_DAYS);
    CHECK(days != NULL && days->param != NULL && days->param->number == 3);
    CHECK(vacation->positional_count == 1);
    CHECK_STR(vacation->positional[0]->strings[0].text, "reason");
    sieve_script_free(&script);

    /* Defaults: :is, i;ascii-casemap, :all, :text. */
    script = compile_ok("require \"body\";\nif anyof (address \"to\" \"x\", body \"y\") { keep; }");
    if (script != NULL) {
        const struct sieve_node *a = script->commands->next->tests->tests;
        CHECK(a->id == SIEVE_TEST_ADDRESS);
        CHECK(a->match == SIEVE_MATCH_IS);
        CHECK(a->comparator == SIEVE_CMP_ASCII_CASEMAP);
        CHECK(a->address_part == SIEVE_ADDR_ALL);
        CHECK(a->next->id == SIEVE_TEST_BODY);
        CHECK(a->next->body_transform == SIEVE_BODY_TEXT);
        sieve_script_free(&script);
    }
    /* setflag's optional first argument shifts the positional types. */
    script = compile_ok("require [\"imap4flags\", \"variables\"];\n"
                        "setflag \"\\\\Seen\";\nsetflag \"v\" \"\\\\Seen\";\n");
    if (script != NULL) {
        const struct sieve_node *one = script->commands->next;
        const struct sieve_node *two = one->next;
        CHECK(one->positional_count == 1 && two->positional_count == 2);
        CHECK_STR(one->positional[0]->strings[0].text, "\\Seen");
        CHECK_STR(two->positional[0]->strings[0].text, "v");
        sieve_script_free(&script);
    }
}

static void
test_strings(void)
{
    /* encoded-character decodes only when required. */
    struct sieve_script *script = compile_ok(
        "require [\"encoded-character\", \"fileinto\"];\n"
        "fileinto \"a${hex:24 24}b${unicode: 40 1F600 }c${hex:4}${hex:}${hex:4G}${unicode:}"
        "${HEX:41\r\n42}\";\n");
    if (script != NULL) {
        const struct sieve_string *s = &script->commands->next->positional[0]->strings[0];
        const char want[] = "a$$b@\xf0\x9f\x98\x80"
                            "c\x04${hex:}${hex:4G}${unicode:}AB";
        CHECK_BYTES(s->text, s->len, want, sizeof(want) - 1);
        CHECK(s->text[s->len] == '\0');
        sieve_script_free(&script);
    }
    script = compile_ok("require \"fileinto\";\nfileinto \"${hex:41}\";\n");
    if (script != NULL) {
        CHECK_STR(script->commands->next->positional[0]->strings[0].text, "${hex:41}");
        sieve_script_free(&script);
    }
    /* ${hex:00} makes a NUL: the length tells. */
    script =
        compile_ok("require [\"encoded-character\", \"fileinto\"];\nfileinto \"a${hex:00}b\";");
    if (script != NULL) {
        const struct sieve_string *s = &script->commands->next->positional[0]->strings[0];
        CHECK_BYTES(s->text, s->len, "a\0b", 3);
        sieve_script_free(&script);
    }
    /* Variable references are marked; things that only look like them are not. */
    script = compile_ok("require [\"variables\", \"fileinto\"];\n"
                        "fileinto \"${a}\";\nfileinto \"${1}\";\nfileinto \"${}\";\n"
                        "fileinto \"${a-b}\";\nfileinto \"$ {a}\";\nfileinto \"${a.}\";\n");
    if (script != NULL) {
        const struct sieve_node *n = script->commands->next;
        bool want[] = {true, true, false, false, false, false};
        for (size_t i = 0; i < 6 && n != NULL; i++, n = n->next) {
            CHECK(n->positional[0]->strings[0].has_variables == want[i]);
        }
        sieve_script_free(&script);
    }
    /* Without "variables" nothing is a reference. */
    script = compile_ok("require \"fileinto\";\nfileinto \"${a}\";\n");
    if (script != NULL) {
        CHECK(!script->commands->next->positional[0]->strings[0].has_variables);
        sieve_script_free(&script);
    }
}

static void
test_several_errors(void)
{
    const char *text = "require \"fileinto\";\n"
                       "fileintoo \"a\";\n"
                       "fileintoo \"b\";\n"
                       "redirect 5;\n"
                       "keep :copy;\n"
                       "elsif true { keep; }\n";
    struct sieve_script *script = NULL;
    struct sieve_errors errors;
    CHECK(sieve_compile(text, strlen(text), NULL, &script, &errors) == -EINVAL);
    CHECK(errors.count == 4); /* fileintoo once */
    char buf[1024];
    (void)sieve_errors_format(&errors, "\n", buf, sizeof(buf));
    CHECK_STR(buf, "line 2: error: unknown command 'fileintoo' (only reported once at first "
                   "occurrence).\n"
                   "line 4: error: the redirect command expects a string as argument 1 (address), "
                   "but a number was found.\n"
                   "line 5: error: unknown tagged argument ':copy' for the keep command.\n"
                   "line 6: error: the elsif command must follow an if or elsif command.\n");

    /* The error bound: 12 unknown commands, 10 kept by default, 3 when asked. */
    char many[512];
    size_t n = 0;
    for (int i = 0; i < 12; i++) {
        n += (size_t)snprintf(many + n, sizeof(many) - n, "bad%d;\n", i);
    }
    CHECK(sieve_compile(many, n, NULL, &script, &errors) == -EINVAL);
    CHECK(errors.count == SIEVE_ERRORS_MAX && errors.is_truncated);
    CHECK(errors.items[9].line == 10);
    struct sieve_limits limits;
    memset(&limits, 0, sizeof(limits));
    limits.error_count_max = 3;
    CHECK(sieve_compile(many, n, &limits, &script, &errors) == -EINVAL);
    CHECK(errors.count == 3 && errors.is_truncated);
    (void)sieve_errors_format(&errors, "\r\n", buf, sizeof(buf));
    CHECK(strstr(buf, "error: more errors follow (only the first 3 are shown).\r\n") != NULL);
}

static void
test_size_bound(void)
{
    struct sieve_limits limits;
    memset(&limits, 0, sizeof(limits));
    limits.script_bytes_max = 64;
    char text[80];
    for (size_t len = 63; len <= 65; len++) {
        /* "keep;" padded with a comment to len bytes. */
        memset(text, ' ', len);
        memcpy(text, "keep; #", 7);
        text[len - 1] = '\n';
        struct sieve_script *script = NULL;
        struct sieve_errors errors;
        int rc = sieve_compile(text, len, &limits, &script, &errors);
        if (len <= 64) {
            CHECK(rc == 0 && script != NULL);
        } else {
            CHECK(rc == -EFBIG && script == NULL);
            CHECK(errors.count == 1 && errors.items[0].line == 0);
            CHECK_STR(errors.items[0].text, "script is too large (65 bytes, the limit is 64)");
        }
        sieve_script_free(&script);
    }
    /* Limits above the defaults count as the defaults. */
    limits.script_bytes_max = SIZE_MAX;
    limits.block_depth_max = 1000;
    struct sieve_script *script = NULL;
    struct sieve_errors errors;
    char *deep = malloc(2000);
    if (deep == NULL) {
        abort();
    }
    size_t n = 0;
    for (int i = 0; i < 33; i++) {
        n += (size_t)snprintf(deep + n, 2000 - n, "if true {");
    }
    for (int i = 0; i < 33; i++) {
        deep[n++] = '}';
    }
    CHECK(sieve_compile(deep, n, &limits, &script, &errors) == -EINVAL);
    CHECK_STR(errors.items[0].text, "cannot nest command blocks deeper than 32 levels");
    free(deep);
    /* An empty script is valid and does nothing. */
    CHECK(sieve_compile("", 0, NULL, &script, &errors) == 0);
    CHECK(script != NULL && script->command_count == 0);
    sieve_script_free(&script);
}

static void
test_capabilities(void)
{
    const char *caps = sieve_capabilities();
    CHECK(strncmp(caps, "fileinto reject envelope encoded-character vacation", 51) == 0);
    /* Every advertised name is requirable, and requiring it is enough. */
    char copy[512];
    snprintf(copy, sizeof(copy), "%s", caps);
    size_t names = 0;
    for (char *save = NULL, *name = strtok_r(copy, " ", &save); name != NULL;
         name = strtok_r(NULL, " ", &save)) {
        char text[128];
        int len = snprintf(text, sizeof(text), "require \"%s\";", name);
        struct sieve_script *script = NULL;
        struct sieve_errors errors;
        CHECK(sieve_compile(text, (size_t)len, NULL, &script, &errors) == 0);
        sieve_script_free(&script);
        names++;
    }
    CHECK(names == 24);
    CHECK(strstr(caps, "enotify") == NULL);
    CHECK_STR(sieve_ext_name(SIEVE_EXT_EDITHEADER), "editheader");
    CHECK(sieve_ext_name(SIEVE_EXT_NONE) == NULL);
}

int
main(void)
{
    test_valid_examples();
    test_broken_examples();
    test_resolved_fields();
    test_strings();
    test_several_errors();
    test_size_bound();
    test_capabilities();
    UNIT_DONE();
}
