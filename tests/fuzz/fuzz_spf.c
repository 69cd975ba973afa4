/*
 * tests/fuzz/fuzz_spf.c - libFuzzer harness for the SPF code that reads
 * network input: the record reader (filters/spf_record), the macro
 * expander (filters/spf_macro) and check_host() itself (filters/spf),
 * with the input served as the TXT record of every name.
 *
 * Properties: spf_record_check() accepts exactly when walking the terms
 * with spf_record_next() meets no error; every domain-spec of an
 * accepted record passes spf_macro_check(), and its expansion, when it
 * succeeds, is NUL-terminated, fits the buffer and has the length it
 * claims; expansion never succeeds on text the check refuses;
 * check_host() ends with one of the seven results within the limits
 * (at most SPF_DNS_MECHANISMS_MAX + 1 DNS terms, SPF_VOID_LOOKUPS_MAX + 1
 * void lookups), with an explanation only for fail, and gives the same
 * outcome twice.
 *
 * Build: clang -g -O1 -fsanitize=fuzzer,address,undefined -I. \
 *   filters/spf.c filters/spf_macro.c filters/spf_record.c \
 *   core/assertions.c tests/fuzz/fuzz_spf.c
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "filters/spf.h"
#include "filters/spf_macro.h"
#include "filters/spf_record.h"
#include "tests/fuzz/fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct dns_record txt_record;
static struct dns_answer txt_answer = {
    .type = DNS_TYPE_TXT, .status = DNS_STATUS_OK, .count = 1, .records = &txt_record};
static struct dns_record a_record;
static struct dns_answer a_answer = {
    .type = DNS_TYPE_A, .status = DNS_STATUS_OK, .count = 1, .records = &a_record};
static struct dns_answer nx_answer = {.status = DNS_STATUS_NXDOMAIN};
static struct dns_answer temp_answer = {.status = DNS_STATUS_TEMPFAIL};
static struct dns_record mx_record = {.mx = {.preference = 10, .host = "mx.example.com"}};
static struct dns_answer mx_answer = {
    .type = DNS_TYPE_MX, .status = DNS_STATUS_OK, .count = 1, .records = &mx_record};
static struct dns_record ptr_record = {.ptr = "host.example.com"};
static struct dns_answer ptr_answer = {
    .type = DNS_TYPE_PTR, .status = DNS_STATUS_OK, .count = 1, .records = &ptr_record};

/* Every name has the input as TXT; other types depend on the name, so
 * matches, void lookups and failures all happen. */
static int
fuzz_lookup(void *ctx, enum dns_type type, const char *name, const struct dns_answer **answer_out)
{
    (void)ctx;
    size_t n = strlen(name);
    FUZZ_CHECK(n > 0);
    if (n > 253) {
        return -EINVAL;
    }
    unsigned h = 0;
    for (size_t i = 0; i < n; i++) {
        h = h * 31 + (unsigned char)name[i];
    }
    switch (type) {
    case DNS_TYPE_TXT:
        *answer_out = (h % 17 == 0) ? &temp_answer : &txt_answer;
        return 0;
    case DNS_TYPE_A:
        *answer_out = (h % 3 == 0) ? &nx_answer : &a_answer;
        return 0;
    case DNS_TYPE_MX:
        *answer_out = (h % 2 == 0) ? &nx_answer : &mx_answer;
        return 0;
    case DNS_TYPE_PTR:
        *answer_out = &ptr_answer;
        return 0;
    default:
        *answer_out = &nx_answer;
        return 0;
    }
}

static void
check_expansions(const char *text, size_t len)
{
    struct spf_macro_context ctx = {
        .sender = "strong-bad@email.example.com",
        .local_part = "strong-bad",
        .sender_domain = "email.example.com",
        .domain = "email.example.com",
        .helo = "mx.example.org",
        .receiver = "mx.example.net",
        .ptr_name = "mx.example.org",
        .ip = {.is_v6 = true, .bytes = {0x20, 0x01, 0x0d, 0xb8, [15] = 1}},
        .now_s = 1,
    };
    static char out[2048];
    for (int mode = SPF_MACRO_DOMAIN; mode <= SPF_MACRO_EXPLAIN; mode++) {
        size_t out_len = 0;
        int rc = spf_macro_expand(text, len, (enum spf_macro_mode)mode, &ctx, out, sizeof(out),
                                  &out_len);
        int checked = spf_macro_check(text, len, (enum spf_macro_mode)mode, NULL);
        FUZZ_CHECK(rc == 0 || rc == -EINVAL || rc == -ENOSPC);
        if (rc == 0) {
            FUZZ_CHECK(checked == 0);
            FUZZ_CHECK(out_len < sizeof(out));
            FUZZ_CHECK(out[out_len] == '\0');
            FUZZ_CHECK(strlen(out) == out_len);
        } else {
            FUZZ_CHECK(out[0] == '\0');
        }
        if (checked != 0) {
            FUZZ_CHECK(rc == -EINVAL);
        }
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *copy = malloc(size > 0 ? size : 1);
    FUZZ_CHECK(copy != NULL);
    memcpy(copy, data, size);
    check_expansions(copy, size);
    if (spf_record_is_spf(copy, size)) {
        struct spf_record_summary summary;
        int rc = spf_record_check(copy, size, &summary);
        FUZZ_CHECK(rc == 0 || rc == -EINVAL || rc == -E2BIG);
        if (rc != -E2BIG) {
            struct spf_record_cursor cursor;
            spf_record_begin(&cursor, copy, size);
            struct spf_term term;
            int next;
            size_t terms = 0;
            while ((next = spf_record_next(&cursor, &term)) == 1) {
                terms++;
                FUZZ_CHECK(term.text >= copy && term.text + term.text_len <= copy + size);
                FUZZ_CHECK(term.cidr4 <= 32 && term.cidr6 <= 128);
                if (term.domain_spec != NULL) {
                    FUZZ_CHECK(
                        spf_record_domain_spec_is_valid(term.domain_spec, term.domain_spec_len));
                    check_expansions(term.domain_spec, term.domain_spec_len);
                }
            }
            FUZZ_CHECK(next == 0 || next == -EINVAL);
            if (rc == 0) {
                FUZZ_CHECK(next == 0 && terms == summary.term_count);
            }
            if (next == -EINVAL) {
                FUZZ_CHECK(rc == -EINVAL);
            }
        }
    }
    txt_record.txt.text = copy;
    txt_record.txt.len = (uint32_t)size;
    memcpy(&a_record.a, "\xc0\x00\x02\x01", 4);
    struct dns_source source = {.lookup = fuzz_lookup};
    struct spf_request request = {.helo = "mx.example.org",
                                  .mail_from = "user@example.com",
                                  .receiver = "mx.example.net",
                                  .now_s = 1};
    FUZZ_CHECK(spf_ip_parse(size % 2 ? "192.0.2.1" : "2001:db8::1", &request.ip) == 0);
    static struct spf_outcome first;
    static struct spf_outcome second;
    FUZZ_CHECK(spf_check_mailfrom(&request, &source, &first) == 0);
    FUZZ_CHECK(first.result <= SPF_RESULT_PERMERROR);
    FUZZ_CHECK(first.dns_mechanisms <= SPF_DNS_MECHANISMS_MAX + 1);
    FUZZ_CHECK(first.void_lookups <= SPF_VOID_LOOKUPS_MAX + 1);
    FUZZ_CHECK(strnlen(first.explanation, sizeof(first.explanation)) < sizeof(first.explanation));
    FUZZ_CHECK(strnlen(first.reason, sizeof(first.reason)) < sizeof(first.reason));
    if (first.result != SPF_RESULT_FAIL) {
        FUZZ_CHECK(first.explanation[0] == '\0');
    }
    for (const char *p = first.explanation; *p != '\0'; p++) {
        FUZZ_CHECK((unsigned char)*p >= 0x20 && (unsigned char)*p < 0x7f);
    }
    FUZZ_CHECK(spf_check_mailfrom(&request, &source, &second) == 0);
    FUZZ_CHECK(second.result == first.result);
    FUZZ_CHECK(strcmp(second.reason, first.reason) == 0);
    FUZZ_CHECK(strcmp(second.explanation, first.explanation) == 0);
    free(copy);
    return 0;
}
