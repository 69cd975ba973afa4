/*
 * tests/fuzz/fuzz_spam_message.c - libFuzzer harness for the spam
 * scorer's message analysis and everything that reads its results: the
 * input is a message (attacker bytes from any SMTP client).
 *
 * Properties: the analysis never fails on content; its text holds no NUL
 * and stays within SPAM_TEXT_BYTES_MAX; link domains are non-empty lower
 * case host names; attachment names are sanitised; a full scoring run
 * (regex rules, a DNS source that lists every name, Bayes over an empty
 * store) ends with a bounded symbol list; the header lines fit
 * SPAM_HEADERS_BYTES_MAX and hold only printable ASCII, tabs and CRLF
 * line ends, each continuation line starting with a tab; the Subject kept
 * for rewriting has CR and LF only as folding; and the same
 * bytes analysed twice give the same digest.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "filters/spam_bayes.h"
#include "filters/spam_score.h"
#include "tests/fuzz/fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct spam_filter *filter;
static struct kv *store;
static struct dns_record listed_record;
static struct dns_answer listed_answer;

static int
list_everything(void *ctx, enum dns_type type, const char *name, const struct dns_answer **out)
{
    (void)ctx;
    FUZZ_CHECK(type == DNS_TYPE_A);
    FUZZ_CHECK(strlen(name) > 0);
    *out = &listed_answer;
    return 0;
}

static void
setup(void)
{
    static const char rules[] = "header SUBJ 1 Subject (free|money)+\n"
                                "header FROM_B64 1 From =\\?[^?]+\\?B\\?\n"
                                "body WON 2 you (have )?won\n"
                                "body URL 1 https?://[a-z0-9.]+\n"
                                "dnsbl RBL 3 bl.test\n"
                                "uribl URI 4 uri.test 127.0.0.2\n";
    struct spam_rules *r = NULL;
    FUZZ_CHECK(spam_rules_parse(rules, sizeof(rules) - 1, &r, NULL, 0) == 0);
    struct spam_config cfg;
    spam_config_defaults(&cfg);
    cfg.bayes_min_learns = 0;
    FUZZ_CHECK(spam_filter_create_rules(&cfg, r, &filter) == 0);
    FUZZ_CHECK(kv_embedded_create(1024, NULL, NULL, &store) == 0);
    listed_record.a.s_addr = htonl(0x7f000002);
    listed_answer = (struct dns_answer){ .type = DNS_TYPE_A, .status = DNS_STATUS_OK,
                                         .count = 1, .records = &listed_record };
}

static void
check_headers(const char *h, size_t len)
{
    FUZZ_CHECK(len >= 2 && h[len - 2] == '\r' && h[len - 1] == '\n');
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)h[i];
        if (c == '\r') {
            FUZZ_CHECK(i + 1 < len && h[i + 1] == '\n');
            continue;
        }
        if (c == '\n') {
            FUZZ_CHECK(i > 0 && h[i - 1] == '\r');
            /* The next line is a field name or a continuation with a tab. */
            if (i + 1 < len) {
                FUZZ_CHECK(h[i + 1] == '\t' || h[i + 1] == 'X');
            }
            continue;
        }
        FUZZ_CHECK(c == '\t' || (c >= 32 && c < 127));
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (filter == NULL) {
        setup();
    }
    char *copy = malloc(size > 0 ? size : 1);
    FUZZ_CHECK(copy != NULL);
    memcpy(copy, data, size);

    struct spam_scan *scan = NULL;
    FUZZ_CHECK(spam_scan_prepare(filter, copy, size, &scan) == 0);
    const struct spam_message *m = spam_scan_message(scan);
    FUZZ_CHECK(m->text_len <= SPAM_TEXT_BYTES_MAX);
    FUZZ_CHECK(strlen(m->text) == m->text_len);
    FUZZ_CHECK(m->header_len <= SPAM_HEADER_BYTES_MAX);
    FUZZ_CHECK(m->url_domain_count <= SPAM_URL_DOMAINS_MAX);
    for (size_t i = 0; i < m->url_domain_count; i++) {
        const char *d = m->url_domains[i];
        FUZZ_CHECK(d[0] != '\0' && d[0] != '.');
        for (const char *c = d; *c != '\0'; c++) {
            FUZZ_CHECK((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '.' ||
                       *c == '-' || *c == '_');
        }
    }
    for (size_t i = 0; i < m->bad_name_count && i < SPAM_BAD_NAMES_MAX; i++) {
        for (const char *c = m->bad_names[i]; *c != '\0'; c++) {
            FUZZ_CHECK(*c > 32 && *c < 127 && *c != '[' && *c != ']' && *c != ';');
        }
    }
    /* The Subject may go back into a header: CR only in CRLF + blank. */
    for (const char *c = m->subject_raw; *c != '\0'; c++) {
        if (*c == '\r') {
            FUZZ_CHECK(c[1] == '\n' && (c[2] == ' ' || c[2] == '\t'));
        } else if (*c == '\n') {
            FUZZ_CHECK(c > m->subject_raw && c[-1] == '\r');
        }
    }
    uint64_t tokens[SPAM_TOKENS_MAX];
    FUZZ_CHECK(spam_bayes_tokens(m, tokens, SPAM_TOKENS_MAX) <= SPAM_TOKENS_MAX);

    static const char *const rcpts[] = { "r@example.net" };
    struct spam_inputs in = { .mail_from = "s@example.com", .rcpts = rcpts, .rcpt_count = 1,
                              .now_s = 1000 };
    in.client.family = AF_INET;
    in.client.addr4.s_addr = htonl(0xc0000205);
    struct dns_source dns = { .lookup = list_everything };
    struct spam_result res;
    FUZZ_CHECK(spam_scan_run(filter, scan, &in, &dns, store, &res) == 0);
    FUZZ_CHECK(res.symbol_count <= SPAM_SYMBOLS_MAX);
    static char headers[SPAM_HEADERS_BYTES_MAX];
    long n = spam_result_headers(&res, headers, sizeof(headers));
    FUZZ_CHECK(n > 0);
    check_headers(headers, (size_t)n);

    /* Same bytes, same analysis. */
    struct spam_message *again = NULL;
    FUZZ_CHECK(spam_message_analyse(copy, size, &again) == 0);
    FUZZ_CHECK(memcmp(again->digest, m->digest, SPAM_DIGEST_BYTES) == 0);
    FUZZ_CHECK(again->text_len == m->text_len);
    spam_message_destroy(&again);
    spam_scan_destroy(&scan);
    free(copy);
    return 0;
}
