/*
 * tests/fuzz/fuzz_mta_sts.c - MTA-STS policies and TXT records from the
 * network (proto/smtp/mta_sts): any bytes parse or fail cleanly; a parsed
 * policy keeps its invariants (mode, max_age in range, mx within bounds,
 * patterns lower case and NUL-terminated) and matching any host in it
 * never reads past a name.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/smtp/mta_sts.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    char id[MTA_STS_ID_BYTES];
    if (mta_sts_txt_parse(text, size, id) == 0) {
        size_t n = strlen(id);
        if (n == 0 || n >= MTA_STS_ID_BYTES) {
            abort();
        }
    }
    static struct mta_sts_policy policy;
    char err[MTA_STS_ERROR_BYTES];
    if (mta_sts_policy_parse(text, size, &policy, err, sizeof(err)) != 0) {
        return 0;
    }
    if (policy.max_age > MTA_STS_MAX_AGE_MAX || policy.mx_count > MTA_STS_MX_MAX ||
        (policy.mode != MTA_STS_MODE_NONE && policy.mx_count == 0)) {
        abort();
    }
    for (size_t i = 0; i < policy.mx_count; i++) {
        size_t n = strnlen(policy.mx[i], MTA_STS_NAME_BYTES);
        if (n == 0 || n >= MTA_STS_NAME_BYTES) {
            abort();
        }
        for (size_t k = 0; k < n; k++) {
            if (policy.mx[i][k] >= 'A' && policy.mx[i][k] <= 'Z') {
                abort();
            }
        }
        /* Each pattern's own suffix, and the pattern itself, are hosts to try. */
        (void)mta_sts_mx_matches(&policy, policy.mx[i]);
        (void)mta_sts_mx_matches(&policy, policy.mx[i][0] == '*' ? policy.mx[i] + 2 : policy.mx[i]);
    }
    return 0;
}
