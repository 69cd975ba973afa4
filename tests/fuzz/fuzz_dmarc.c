/*
 * tests/fuzz/fuzz_dmarc.c - libFuzzer harness for the DMARC readers of
 * network input: the policy record (filters/dmarc_record) and the From
 * field (dmarc_from_domain in filters/dmarc).
 *
 * Properties: a text that dmarc_record_is_dmarc() refuses parses to
 * -ENOENT, and an accepted one to 0 or -EINVAL; a parsed record has pct
 * at most 100, policies in range, at most DMARC_URIS_MAX URIs per list,
 * each NUL-terminated within DMARC_URI_BYTES_MAX and starting with a
 * scheme; a From domain, when found, is non-empty, lower case, without
 * spaces or control bytes and within 253 octets; both give the same
 * answer twice.
 *
 * Build: clang -g -O1 -fsanitize=fuzzer,address,undefined -I. \
 *   filters/dmarc.c filters/dmarc_record.c filters/public_suffix.c \
 *   core/assertions.c tests/fuzz/fuzz_dmarc.c
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "filters/dmarc.h"
#include "filters/dmarc_record.h"
#include "tests/fuzz/fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct dmarc_record first;
static struct dmarc_record second;

static void
check_uris(char (*uris)[DMARC_URI_BYTES_MAX], size_t count)
{
    FUZZ_CHECK(count <= DMARC_URIS_MAX);
    for (size_t i = 0; i < count; i++) {
        size_t n = strnlen(uris[i], DMARC_URI_BYTES_MAX);
        FUZZ_CHECK(n > 0 && n < DMARC_URI_BYTES_MAX);
        FUZZ_CHECK(memchr(uris[i], ':', n) != NULL);
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *copy = malloc(size + 1);
    FUZZ_CHECK(copy != NULL);
    memcpy(copy, data, size);
    copy[size] = '\0';
    bool is_dmarc = dmarc_record_is_dmarc(copy, size);
    int rc = dmarc_record_parse(copy, size, &first);
    if (!is_dmarc) {
        FUZZ_CHECK(rc == -ENOENT);
    } else {
        FUZZ_CHECK(rc == 0 || rc == -EINVAL);
    }
    if (rc == 0) {
        FUZZ_CHECK(first.pct <= 100);
        FUZZ_CHECK(first.p <= DMARC_POLICY_REJECT && first.sp <= DMARC_POLICY_REJECT);
        if (!first.has_sp) {
            FUZZ_CHECK(first.sp == first.p);
        }
        if (first.is_p_fallback) {
            FUZZ_CHECK(first.p == DMARC_POLICY_NONE && first.rua_count > 0);
        }
        check_uris(first.rua, first.rua_count);
        check_uris(first.ruf, first.ruf_count);
    }
    FUZZ_CHECK(dmarc_record_parse(copy, size, &second) == rc);
    if (rc == 0) {
        FUZZ_CHECK(memcmp(&first, &second, sizeof(first)) == 0);
    }
    /* The same bytes as a From field value (up to the first NUL). */
    const char *values[1] = {copy};
    char domain[DMARC_DOMAIN_BYTES_MAX];
    char again[DMARC_DOMAIN_BYTES_MAX];
    int from_rc = dmarc_from_domain(values, 1, domain, sizeof(domain));
    FUZZ_CHECK(from_rc == 0 || from_rc == -EINVAL || from_rc == -ENOTUNIQ);
    if (from_rc == 0) {
        size_t n = strnlen(domain, sizeof(domain));
        FUZZ_CHECK(n > 0 && n <= 253);
        for (size_t i = 0; i < n; i++) {
            unsigned char c = (unsigned char)domain[i];
            FUZZ_CHECK(c > 0x20 && c < 0x7f);
            FUZZ_CHECK(!(c >= 'A' && c <= 'Z'));
        }
    }
    FUZZ_CHECK(dmarc_from_domain(values, 1, again, sizeof(again)) == from_rc);
    if (from_rc == 0) {
        FUZZ_CHECK(strcmp(domain, again) == 0);
    }
    free(copy);
    return 0;
}
