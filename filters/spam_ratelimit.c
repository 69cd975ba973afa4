/*
 * filters/spam_ratelimit.c - fixed-window message counters (see
 * spam_ratelimit.h). Keys are "rl:<kind>:<16 hex>" (the subject hashed,
 * case folded), each living one window. Any thread; one store write per
 * call.
 */
#include "filters/spam_ratelimit.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ascii.h"
#include "core/assertions.h"

#define RATE_WINDOW_S_MAX (30u * 24 * 3600)
#define RATE_COUNT_MAX 100000000u

int
spam_ratelimit_parse(const char *text, struct spam_rate *rate_out)
{
    ASSERT(text != NULL);
    *rate_out = (struct spam_rate){ 0 };
    if (strcmp(text, "off") == 0 || strcmp(text, "0") == 0) {
        return 0;
    }
    char *end = NULL;
    errno = 0;
    unsigned long count = strtoul(text, &end, 10);
    if (end == text || *end != '/' || errno != 0 || count == 0 || count > RATE_COUNT_MAX ||
        text[0] == '-' || text[0] == '+') {
        return -EINVAL;
    }
    const char *w = end + 1;
    unsigned long window = 1;
    if (*w >= '0' && *w <= '9') {
        errno = 0;
        window = strtoul(w, &end, 10);
        if (errno != 0 || window == 0) {
            return -EINVAL;
        }
    } else {
        end = (char *)w; /* "100/h" means one hour */
    }
    unsigned long unit;
    switch (*end) {
    case 's': unit = 1; break;
    case 'm': unit = 60; break;
    case 'h': unit = 3600; break;
    case 'd': unit = 86400; break;
    default: return -EINVAL;
    }
    if (end[1] != '\0' || window > RATE_WINDOW_S_MAX / unit) {
        return -EINVAL;
    }
    rate_out->count = (uint32_t)count;
    rate_out->window_s = (uint32_t)(window * unit);
    return 0;
}

int
spam_ratelimit_hit(struct kv *kv, enum spam_rate_kind kind, const struct spam_rate *rate,
                   const char *subject, bool *is_over_out)
{
    ASSERT(kv != NULL);
    ASSERT(subject != NULL);
    *is_over_out = false;
    if (rate->count == 0) {
        return 0;
    }
    ASSERT(rate->window_s > 0);
    uint64_t h = 1469598103934665603ull;
    for (const unsigned char *p = (const unsigned char *)subject; *p != '\0'; p++) {
        h = (h ^ ascii_lower(*p)) * 1099511628211ull;
    }
    char key[KV_KEY_BYTES_MAX];
    int klen = snprintf(key, sizeof(key), "rl:%c:%016" PRIx64, (char)kind, h);
    ASSERT(klen > 0 && (size_t)klen < sizeof(key));
    uint64_t value = 0;
    int rc = kv_incr(kv, key, (size_t)klen, rate->window_s, &value);
    if (rc != 0) {
        return 0; /* store unavailable: limit nothing */
    }
    *is_over_out = value > rate->count;
    return 0;
}
