/*
 * filters/spam_greylist.c - the greylisting triplet store (see
 * spam_greylist.h). One key per triplet: "first seen at T" (decimal
 * seconds) while it is grey, "pass" once it passed. Owns nothing between
 * calls; any thread. Bounded: one store read and at most one write per
 * call; names are hashed, so the key is fixed-size whatever the sender.
 */
#include "filters/spam_greylist.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "core/ascii.h"
#include "core/assertions.h"

static uint64_t
fnv1a64_lower(uint64_t h, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        h = (h ^ ascii_lower(*p)) * 1099511628211ull;
    }
    return h;
}

static uint64_t
fnv1a64(uint64_t h, const void *bytes, size_t len)
{
    const unsigned char *p = bytes;
    for (size_t i = 0; i < len; i++) {
        h = (h ^ p[i]) * 1099511628211ull;
    }
    return h;
}

int
spam_client_from_text(const char *text, struct spam_client *client_out)
{
    ASSERT(text != NULL);
    *client_out = (struct spam_client){ .family = AF_UNSPEC };
    if (inet_pton(AF_INET, text, &client_out->addr4) == 1) {
        client_out->family = AF_INET;
        return 0;
    }
    if (inet_pton(AF_INET6, text, &client_out->addr6) == 1) {
        if (IN6_IS_ADDR_V4MAPPED(&client_out->addr6)) {
            memcpy(&client_out->addr4.s_addr, client_out->addr6.s6_addr + 12, 4);
            client_out->family = AF_INET;
        } else {
            client_out->family = AF_INET6;
        }
        return 0;
    }
    return -EINVAL;
}

int
spam_greylist_check(struct kv *kv, const struct spam_greylist_config *config,
                    const struct spam_client *client, const char *sender,
                    const char *recipient, uint64_t now_s, uint32_t *wait_s_out)
{
    ASSERT(kv != NULL);
    ASSERT(config != NULL);
    ASSERT(sender != NULL);
    ASSERT(recipient != NULL);
    *wait_s_out = 0;
    uint8_t net[9] = { 0 };
    size_t net_len;
    if (client->family == AF_INET) {
        net[0] = 4;
        memcpy(net + 1, &client->addr4.s_addr, 3); /* network order: the /24 */
        net_len = 4;
    } else if (client->family == AF_INET6) {
        net[0] = 6;
        memcpy(net + 1, client->addr6.s6_addr, 8); /* the /64 */
        net_len = 9;
    } else {
        return -EINVAL;
    }
    uint64_t h = fnv1a64(1469598103934665603ull, net, net_len);
    h = fnv1a64(h, "\0", 1);
    h = fnv1a64_lower(h, sender);
    h = fnv1a64(h, "\0", 1);
    h = fnv1a64_lower(h, recipient);
    char key[KV_KEY_BYTES_MAX];
    int klen = snprintf(key, sizeof(key), "grey:%016" PRIx64, h);
    ASSERT(klen > 0 && (size_t)klen < sizeof(key));

    char value[32];
    size_t vlen = 0;
    int rc = kv_get(kv, key, (size_t)klen, value, sizeof(value) - 1, &vlen);
    if (rc == -ENOENT) {
        char first[24];
        int n = snprintf(first, sizeof(first), "%" PRIu64, now_s);
        /* Remembered until the end of the retry window; a retry after it
         * finds nothing and starts over. */
        (void)kv_set(kv, key, (size_t)klen, first, (size_t)n,
                     config->delay_s + config->retry_window_s); /* a lost write defers again */
        *wait_s_out = config->delay_s > 0 ? config->delay_s : 1;
        return config->delay_s > 0 ? 1 : 0;
    }
    if (rc != 0) {
        return 0; /* store unavailable or value not ours: fail open */
    }
    value[vlen] = '\0';
    if (strcmp(value, "pass") == 0) {
        (void)kv_set(kv, key, (size_t)klen, "pass", 4, config->pass_ttl_s); /* refresh; best effort */
        return 0;
    }
    uint64_t first_s = 0;
    for (size_t i = 0; i < vlen; i++) {
        if (value[i] < '0' || value[i] > '9') {
            return 0; /* garbage in the store: fail open */
        }
        first_s = first_s * 10 + (uint64_t)(value[i] - '0');
    }
    if (now_s < first_s + config->delay_s) {
        uint64_t wait = first_s + config->delay_s - now_s;
        *wait_s_out = wait > UINT32_MAX ? UINT32_MAX : (uint32_t)wait;
        return 1;
    }
    (void)kv_set(kv, key, (size_t)klen, "pass", 4, config->pass_ttl_s); /* best effort */
    return 0;
}
