/*
 * tests/fuzz/fuzz_dns_parse.c - libFuzzer harness for what the resolver
 * reads from outside: raw DNS responses from the network
 * (dns_parse_response) and, when the first byte has its top bit set, the
 * override file (dns_zone_parse).
 *
 * Response mode: byte 0 picks the asked type, byte 1 the question's name
 * (one of a few, so responses that carry the question can match it), the
 * rest is the message, parsed from an exact-size heap copy. Properties: a
 * result always comes back, of the asked type, with a known status; only
 * OK carries records (1..DNS_ANSWER_RECORDS_MAX); TTLs keep their caps;
 * names handed out keep the name rules (or are "" for a null MX); TXT text
 * is NUL-terminated after its length and never longer than the message;
 * the same bytes give the same answer twice.
 * Zone mode: parsing either fails with a message starting "line " or
 * "larger", or gives a zone whose answers for a few names keep the same
 * properties.
 *
 * Build: clang -g -O1 -fsanitize=fuzzer,address,undefined -I. \
 *   core/dns_parse.c core/dns_zone.c core/assertions.c tests/fuzz/fuzz_dns_parse.c
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/dns_parse.h"
#include "core/dns_zone.h"
#include "tests/fuzz/fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define TTL_MAX_S 86400u
#define NEGATIVE_TTL_MAX_S 900u

static const enum dns_type types[] = {
    DNS_TYPE_A, DNS_TYPE_AAAA, DNS_TYPE_MX, DNS_TYPE_TXT, DNS_TYPE_PTR, DNS_TYPE_TLSA,
};
static const char *const qnames[] = {
    "example.org", "a", "mx.example.org", "sel._domainkey.example.org",
};

static void
check_name(const char *name, bool may_be_empty)
{
    size_t len = strlen(name);
    if (len == 0) {
        FUZZ_CHECK(may_be_empty);
        return;
    }
    char normalized[DNS_NAME_BYTES_MAX + 1];
    FUZZ_CHECK(dns_name_normalize(name, normalized) == 0);
    FUZZ_CHECK(strcmp(normalized, name) == 0); /* already lower case, no dot */
}

static void
check_answer(const struct dns_answer *a, enum dns_type type, size_t text_bytes_max)
{
    FUZZ_CHECK(a->type == type);
    FUZZ_CHECK(a->status == DNS_STATUS_OK || a->status == DNS_STATUS_NXDOMAIN ||
               a->status == DNS_STATUS_NODATA || a->status == DNS_STATUS_TEMPFAIL ||
               a->status == DNS_STATUS_PERMFAIL);
    if (a->status != DNS_STATUS_OK) {
        FUZZ_CHECK(a->count == 0);
        return;
    }
    FUZZ_CHECK(a->count >= 1 && a->count <= DNS_ANSWER_RECORDS_MAX);
    FUZZ_CHECK(a->records != NULL);
    for (uint32_t i = 0; i < a->count; i++) {
        const struct dns_record *r = &a->records[i];
        switch (type) {
        case DNS_TYPE_MX:
            check_name(r->mx.host, true);
            break;
        case DNS_TYPE_PTR:
            check_name(r->ptr, false);
            break;
        case DNS_TYPE_TXT:
            FUZZ_CHECK(r->txt.len <= text_bytes_max);
            FUZZ_CHECK(r->txt.text[r->txt.len] == '\0');
            break;
        case DNS_TYPE_TLSA:
            FUZZ_CHECK(r->tlsa.len <= text_bytes_max);
            if (r->tlsa.len > 0) {
                volatile uint8_t last = r->tlsa.data[r->tlsa.len - 1]; /* readable */
                (void)last;
            }
            break;
        case DNS_TYPE_A:
        case DNS_TYPE_AAAA:
            break;
        }
    }
}

static void
fuzz_response(const uint8_t *data, size_t size)
{
    enum dns_type type = types[data[0] % (sizeof(types) / sizeof(types[0]))];
    const char *qname = qnames[data[1] % (sizeof(qnames) / sizeof(qnames[0]))];
    size_t len = size - 2;
    uint8_t *copy = malloc(len > 0 ? len : 1);
    FUZZ_CHECK(copy != NULL);
    memcpy(copy, data + 2, len);
    struct dns_result *first = NULL;
    FUZZ_CHECK(dns_parse_response(copy, len, type, qname, TTL_MAX_S, NEGATIVE_TTL_MAX_S,
                                  &first) == 0);
    FUZZ_CHECK(first != NULL && first->refs == 1);
    FUZZ_CHECK(strcmp(first->name, qname) == 0);
    check_answer(&first->answer, type, len);
    if (first->answer.status == DNS_STATUS_OK) {
        FUZZ_CHECK(first->answer.ttl <= TTL_MAX_S);
    } else if (first->answer.status == DNS_STATUS_NXDOMAIN ||
               first->answer.status == DNS_STATUS_NODATA) {
        FUZZ_CHECK(first->answer.ttl <= NEGATIVE_TTL_MAX_S);
    } else {
        FUZZ_CHECK(first->answer.ttl == 0);
    }
    struct dns_result *second = NULL;
    FUZZ_CHECK(dns_parse_response(copy, len, type, qname, TTL_MAX_S, NEGATIVE_TTL_MAX_S,
                                  &second) == 0);
    FUZZ_CHECK(second->answer.status == first->answer.status);
    FUZZ_CHECK(second->answer.count == first->answer.count);
    FUZZ_CHECK(second->answer.ttl == first->answer.ttl);
    FUZZ_CHECK(second->bytes == first->bytes);
    dns_result_unref(&first);
    dns_result_unref(&second);
    free(copy);
}

static void
fuzz_zone(const uint8_t *data, size_t size)
{
    size_t len = size - 1;
    char *copy = malloc(len > 0 ? len : 1);
    FUZZ_CHECK(copy != NULL);
    memcpy(copy, data + 1, len);
    struct dns_zone *zone = NULL;
    char error[DNS_ZONE_ERROR_BYTES];
    int rc = dns_zone_parse(copy, len, &zone, error, sizeof(error));
    if (rc != 0) {
        FUZZ_CHECK(rc == -22 /* EINVAL */);
        FUZZ_CHECK(zone == NULL);
        FUZZ_CHECK(strncmp(error, "line ", 5) == 0 || strncmp(error, "larger", 6) == 0);
        free(copy);
        return;
    }
    static const char *const names[] = { "a", "example.org", "x.test", "mx.example.org" };
    for (size_t n = 0; n < sizeof(names) / sizeof(names[0]); n++) {
        for (size_t t = 0; t < sizeof(types) / sizeof(types[0]); t++) {
            struct dns_result *result = NULL;
            if (dns_zone_lookup(zone, types[t], names[n], &result) == 0) {
                check_answer(&result->answer, types[t], len);
                FUZZ_CHECK(result->answer.status != DNS_STATUS_TEMPFAIL &&
                           result->answer.status != DNS_STATUS_PERMFAIL);
                dns_result_unref(&result);
            }
        }
    }
    dns_zone_destroy(&zone);
    free(copy);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2) {
        return 0;
    }
    if ((data[0] & 0x80) != 0) {
        fuzz_zone(data, size);
    } else {
        fuzz_response(data, size);
    }
    return 0;
}
