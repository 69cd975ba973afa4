/*
 * core/postscreen.c - the port 25 screening policy (see postscreen.h):
 * postscreen_access parsing and matching, the verdict at connect, and the
 * memory of clients in the key-value store.
 *
 * Owns the parsed access list (read-only after creation) and the key
 * names it uses in the store: "ps:<address>" holds "good" or "bad" with
 * its TTL, "psr:<address>" the connection counter of the current minute.
 * Does no socket I/O and keeps no per-connection state. Any thread; a
 * decision costs a scan of the access list and at most three store calls.
 * Limits: POSTSCREEN_ACCESS_MAX (core/limits.h); the file form of
 * postscreen_access is read at most POSTSCREEN_FILE_BYTES_MAX.
 */
#define _GNU_SOURCE
#include "core/postscreen.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/assertions.h"

#define POSTSCREEN_FILE_BYTES_MAX (1024 * 1024)
#define POSTSCREEN_ENTRY_BYTES_MAX 256 /* one "NETWORK ACTION" item */
#define POSTSCREEN_RATE_WINDOW_S 60u
#define POSTSCREEN_KEY_GOOD "good"
#define POSTSCREEN_KEY_BAD "bad"

static_assert(KV_KEY_BYTES_MAX >= 4 + INET6_ADDRSTRLEN, "an address key fits the store");

struct postscreen {
    struct postscreen_config config;
    struct kv               *kv; /* borrowed */
    struct postscreen_access access;
};

static int __attribute__((format(printf, 3, 4)))
postscreen_error(char *err, size_t err_bytes, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    (void)vsnprintf(err, err_bytes, fmt, ap);
    va_end(ap);
    return -EINVAL;
}

/* ---- addresses ---------------------------------------------------------- */

int
postscreen_addr_parse(const char *text, struct postscreen_addr *out)
{
    if (text == NULL) {
        return -EINVAL;
    }
    if (strncmp(text, "IPv6:", 5) == 0) {
        text += 5;
    }
    memset(out, 0, sizeof(*out));
    struct in_addr v4;
    if (inet_pton(AF_INET, text, &v4) == 1) {
        out->family = 4;
        memcpy(out->bytes, &v4, 4);
        return 0;
    }
    struct in6_addr v6;
    if (inet_pton(AF_INET6, text, &v6) == 1) {
        if (IN6_IS_ADDR_V4MAPPED(&v6)) {
            out->family = 4;
            memcpy(out->bytes, &v6.s6_addr[12], 4);
        } else {
            out->family = 6;
            memcpy(out->bytes, &v6, 16);
        }
        return 0;
    }
    return -EINVAL;
}

/* The canonical text of addr (inet_ntop), for store keys and replies. */
static void
postscreen_addr_text(const struct postscreen_addr *addr, char *out, size_t out_bytes)
{
    ASSERT(out_bytes >= INET6_ADDRSTRLEN);
    const char *rc = inet_ntop(addr->family == 4 ? AF_INET : AF_INET6, addr->bytes, out,
                               (socklen_t)out_bytes);
    ASSERT(rc != NULL); /* a parsed address and a buffer of INET6_ADDRSTRLEN */
}

static bool
postscreen_prefix_contains(const struct postscreen_addr *network, uint8_t prefix_bits,
                           const struct postscreen_addr *addr)
{
    if (network->family != addr->family) {
        return false;
    }
    size_t whole = prefix_bits / 8u;
    if (memcmp(network->bytes, addr->bytes, whole) != 0) {
        return false;
    }
    uint8_t rest = prefix_bits % 8u;
    if (rest == 0) {
        return true;
    }
    uint8_t mask = (uint8_t)(0xffu << (8u - rest));
    return (network->bytes[whole] & mask) == (addr->bytes[whole] & mask);
}

/* ---- postscreen_access ---------------------------------------------------- */

/* One "NETWORK ACTION" item, already trimmed and non-empty. */
static int
postscreen_access_parse_entry(char *item, struct postscreen_access *access, char *err,
                              size_t err_bytes)
{
    char *save = NULL;
    char *network = strtok_r(item, " \t", &save);
    char *action = strtok_r(NULL, " \t", &save);
    char *extra = strtok_r(NULL, " \t", &save);
    if (network == NULL || action == NULL || extra != NULL) {
        return postscreen_error(err, err_bytes,
                                "postscreen_access: want 'NETWORK permit|reject', not '%s'",
                                item);
    }
    struct postscreen_access_entry entry;
    memset(&entry, 0, sizeof(entry));
    if (strcasecmp(action, "permit") == 0) {
        entry.is_permit = true;
    } else if (strcasecmp(action, "reject") != 0) {
        return postscreen_error(err, err_bytes,
                                "postscreen_access: action '%s' after %s: want permit or reject",
                                action, network);
    }
    char *slash = strchr(network, '/');
    if (slash != NULL) {
        *slash = '\0';
    }
    struct in6_addr bytes;
    if (inet_pton(AF_INET, network, &bytes) == 1) {
        entry.network.family = 4;
        memcpy(entry.network.bytes, &bytes, 4);
    } else if (inet_pton(AF_INET6, network, &bytes) == 1) {
        entry.network.family = 6;
        memcpy(entry.network.bytes, &bytes, 16);
    } else {
        return postscreen_error(err, err_bytes, "postscreen_access: '%s' is not an address",
                                network);
    }
    unsigned max_bits = entry.network.family == 4 ? 32u : 128u;
    unsigned bits = max_bits;
    if (slash != NULL) {
        const char *p = slash + 1;
        if (*p == '\0' || strlen(p) > 3) {
            return postscreen_error(err, err_bytes, "postscreen_access: bad prefix after %s",
                                    network);
        }
        bits = 0;
        for (; *p != '\0'; p++) {
            if (!isdigit((unsigned char)*p)) {
                return postscreen_error(err, err_bytes,
                                        "postscreen_access: bad prefix after %s", network);
            }
            bits = bits * 10u + (unsigned)(*p - '0');
        }
        if (bits > max_bits) {
            return postscreen_error(err, err_bytes,
                                    "postscreen_access: %s/%u: prefix longer than %u bits",
                                    network, bits, max_bits);
        }
    }
    entry.prefix_bits = (uint8_t)bits;
    /* Host bits set ("192.0.2.1/24") is a typo more often than not: say
     * so, as Postfix's cidr tables do, rather than guess. */
    for (unsigned bit = bits; bit < max_bits; bit++) {
        if (entry.network.bytes[bit / 8u] & (0x80u >> (bit % 8u))) {
            return postscreen_error(err, err_bytes,
                                    "postscreen_access: %s/%u has host bits set", network,
                                    bits);
        }
    }
    if (entry.network.family == 6 && IN6_IS_ADDR_V4MAPPED(&bytes)) {
        return postscreen_error(err, err_bytes,
                                "postscreen_access: %s: write IPv4-mapped networks as IPv4",
                                network);
    }
    if (access->count == POSTSCREEN_ACCESS_MAX) {
        return postscreen_error(err, err_bytes, "postscreen_access: more than %d entries",
                                POSTSCREEN_ACCESS_MAX);
    }
    access->entries[access->count++] = entry;
    return 0;
}

static char *
postscreen_trim(char *s)
{
    while (*s == ' ' || *s == '\t' || *s == '\r') {
        s++;
    }
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r')) {
        s[--n] = '\0';
    }
    return s;
}

int
postscreen_access_parse(const char *text, struct postscreen_access *access, char *err,
                        size_t err_bytes)
{
    ASSERT(text != NULL);
    const char *p = text;
    /* Line by line, a comment cut off, then item by item between commas:
     * every pass moves forward, so this ends within strlen(text) passes. */
    while (*p != '\0') {
        size_t line_len = strcspn(p, "\n");
        const char *line_end = p + line_len;
        const char *hash = memchr(p, '#', line_len);
        const char *content_end = hash != NULL ? hash : line_end;
        const char *q = p;
        while (q < content_end) {
            const char *comma = memchr(q, ',', (size_t)(content_end - q));
            const char *item_end = comma != NULL ? comma : content_end;
            size_t len = (size_t)(item_end - q);
            char item[POSTSCREEN_ENTRY_BYTES_MAX];
            if (len >= sizeof(item)) {
                return postscreen_error(err, err_bytes,
                                        "postscreen_access: entry longer than %d bytes",
                                        POSTSCREEN_ENTRY_BYTES_MAX - 1);
            }
            memcpy(item, q, len);
            item[len] = '\0';
            char *trimmed = postscreen_trim(item);
            if (*trimmed != '\0') {
                int rc = postscreen_access_parse_entry(trimmed, access, err, err_bytes);
                if (rc != 0) {
                    return rc;
                }
            }
            q = comma != NULL ? comma + 1 : content_end;
        }
        p = *line_end != '\0' ? line_end + 1 : line_end;
    }
    return 0;
}

int
postscreen_access_load(const char *value, struct postscreen_access *access, char *err,
                       size_t err_bytes)
{
    access->count = 0;
    if (value[0] != '/') {
        return postscreen_access_parse(value, access, err, err_bytes);
    }
    FILE *file = fopen(value, "re");
    if (file == NULL) {
        int saved = errno;
        (void)snprintf(err, err_bytes, "postscreen_access: %s: %s", value, strerror(saved));
        return -saved;
    }
    char *text = malloc(POSTSCREEN_FILE_BYTES_MAX + 1);
    if (text == NULL) {
        (void)fclose(file); /* read-only stream */
        (void)snprintf(err, err_bytes, "postscreen_access: out of memory");
        return -ENOMEM;
    }
    size_t len = fread(text, 1, POSTSCREEN_FILE_BYTES_MAX + 1, file);
    int rc = 0;
    if (ferror(file)) {
        rc = postscreen_error(err, err_bytes, "postscreen_access: %s: read error", value);
    } else if (len > POSTSCREEN_FILE_BYTES_MAX) {
        rc = postscreen_error(err, err_bytes, "postscreen_access: %s: larger than %d bytes",
                              value, POSTSCREEN_FILE_BYTES_MAX);
    } else if (memchr(text, '\0', len) != NULL) {
        rc = postscreen_error(err, err_bytes, "postscreen_access: %s: NUL byte", value);
    }
    (void)fclose(file); /* read-only stream: nothing to lose on close */
    if (rc == 0) {
        text[len] = '\0';
        char reason[512];
        rc = postscreen_access_parse(text, access, reason, sizeof(reason));
        if (rc != 0) {
            (void)snprintf(err, err_bytes, "%s (in %s)", reason, value);
        }
    }
    free(text);
    return rc;
}

enum postscreen_access_action
postscreen_access_match(const struct postscreen_access *access, const struct postscreen_addr *addr)
{
    ASSERT(access->count <= POSTSCREEN_ACCESS_MAX);
    for (size_t i = 0; i < access->count; i++) {
        const struct postscreen_access_entry *entry = &access->entries[i];
        if (postscreen_prefix_contains(&entry->network, entry->prefix_bits, addr)) {
            return entry->is_permit ? POSTSCREEN_ACCESS_PERMIT : POSTSCREEN_ACCESS_REJECT;
        }
    }
    return POSTSCREEN_ACCESS_NONE;
}

/* ---- the policy ----------------------------------------------------------- */

int
postscreen_create(const struct postscreen_config *config, const char *access_value,
                  struct kv *kv, struct postscreen **out, char *err, size_t err_bytes)
{
    ASSERT(kv != NULL);
    struct postscreen *postscreen = calloc(1, sizeof(*postscreen));
    if (postscreen == NULL) {
        (void)snprintf(err, err_bytes, "postscreen: out of memory");
        return -ENOMEM;
    }
    postscreen->config = *config;
    postscreen->kv = kv;
    int rc = postscreen_access_load(access_value, &postscreen->access, err, err_bytes);
    if (rc != 0) {
        free(postscreen);
        return rc;
    }
    *out = postscreen;
    return 0;
}

void
postscreen_destroy(struct postscreen **postscreen)
{
    free(*postscreen);
    *postscreen = NULL;
}

bool
postscreen_is_active(const struct postscreen *postscreen)
{
    return postscreen->config.greet_wait_ms > 0 || postscreen->config.rate_limit > 0 ||
           postscreen->access.count > 0;
}

const struct postscreen_config *
postscreen_config(const struct postscreen *postscreen)
{
    return &postscreen->config;
}

/* "ps:192.0.2.1" (what we remember) or "psr:192.0.2.1" (the rate counter). */
static size_t
postscreen_key(const char *prefix, const struct postscreen_addr *addr, char *out,
               size_t out_bytes)
{
    char text[INET6_ADDRSTRLEN];
    postscreen_addr_text(addr, text, sizeof(text));
    int n = snprintf(out, out_bytes, "%s%s", prefix, text);
    ASSERT(n > 0 && (size_t)n < out_bytes);
    return (size_t)n;
}

struct postscreen_decision
postscreen_decide(struct postscreen *postscreen, const char *client)
{
    struct postscreen_decision decision = { .verdict = POSTSCREEN_PASS,
                                            .reason = POSTSCREEN_REASON_OFF };
    if (!postscreen_is_active(postscreen)) {
        return decision;
    }
    struct postscreen_addr addr;
    if (postscreen_addr_parse(client, &addr) != 0) {
        /* Only the reactor's own text comes here; an address it could not
         * format ("unknown") is not the client's fault. */
        return decision;
    }
    switch (postscreen_access_match(&postscreen->access, &addr)) {
    case POSTSCREEN_ACCESS_PERMIT:
        decision.verdict = POSTSCREEN_PERMIT;
        decision.reason = POSTSCREEN_REASON_ALLOWLISTED;
        return decision;
    case POSTSCREEN_ACCESS_REJECT:
        decision.verdict = POSTSCREEN_REJECT;
        decision.reason = POSTSCREEN_REASON_DENYLISTED;
        return decision;
    case POSTSCREEN_ACCESS_NONE:
        break;
    }
    char key[KV_KEY_BYTES_MAX];
    size_t key_len = postscreen_key("ps:", &addr, key, sizeof(key));
    char value[KV_VALUE_BYTES_MAX];
    size_t value_len = 0;
    int rc = kv_get(postscreen->kv, key, key_len, value, sizeof(value), &value_len);
    bool is_good = false;
    if (rc == 0) {
        if (value_len == strlen(POSTSCREEN_KEY_BAD) &&
            memcmp(value, POSTSCREEN_KEY_BAD, value_len) == 0) {
            decision.verdict = POSTSCREEN_REJECT;
            decision.reason = POSTSCREEN_REASON_BAD_OLD;
            return decision;
        }
        is_good = value_len == strlen(POSTSCREEN_KEY_GOOD) &&
                  memcmp(value, POSTSCREEN_KEY_GOOD, value_len) == 0;
    } else if (rc != -ENOENT) {
        decision.kv_error = rc;
    }
    if (postscreen->config.rate_limit > 0) {
        char rate_key[KV_KEY_BYTES_MAX];
        size_t rate_key_len = postscreen_key("psr:", &addr, rate_key, sizeof(rate_key));
        uint64_t count = 0;
        rc = kv_incr(postscreen->kv, rate_key, rate_key_len, POSTSCREEN_RATE_WINDOW_S, &count);
        if (rc != 0) {
            decision.kv_error = rc;
        } else {
            decision.rate_count = count;
            if (count > postscreen->config.rate_limit) {
                decision.verdict = POSTSCREEN_LIMIT;
                decision.reason = POSTSCREEN_REASON_RATE;
                return decision;
            }
        }
    }
    if (is_good) {
        decision.reason = POSTSCREEN_REASON_PASS_OLD;
        return decision;
    }
    if (postscreen->config.greet_wait_ms > 0) {
        decision.verdict = POSTSCREEN_TEST;
        decision.reason = POSTSCREEN_REASON_NEW;
    }
    return decision;
}

static int
postscreen_remember(struct postscreen *postscreen, const char *client, const char *value,
                    uint32_t ttl_s)
{
    struct postscreen_addr addr;
    if (postscreen_addr_parse(client, &addr) != 0) {
        return -EINVAL;
    }
    char key[KV_KEY_BYTES_MAX];
    size_t key_len = postscreen_key("ps:", &addr, key, sizeof(key));
    return kv_set(postscreen->kv, key, key_len, value, strlen(value), ttl_s);
}

int
postscreen_pregreet(struct postscreen *postscreen, const char *client)
{
    return postscreen_remember(postscreen, client, POSTSCREEN_KEY_BAD,
                               postscreen->config.bad_ttl_s);
}

int
postscreen_passed(struct postscreen *postscreen, const char *client)
{
    return postscreen_remember(postscreen, client, POSTSCREEN_KEY_GOOD,
                               postscreen->config.good_ttl_s);
}

const char *
postscreen_reason_name(enum postscreen_reason reason)
{
    switch (reason) {
    case POSTSCREEN_REASON_OFF:
        return "";
    case POSTSCREEN_REASON_ALLOWLISTED:
        return "ALLOWLISTED";
    case POSTSCREEN_REASON_DENYLISTED:
        return "DENYLISTED";
    case POSTSCREEN_REASON_BAD_OLD:
        return "BAD OLD";
    case POSTSCREEN_REASON_RATE:
        return "RATE";
    case POSTSCREEN_REASON_PASS_OLD:
        return "PASS OLD";
    case POSTSCREEN_REASON_NEW:
        return "PASS NEW";
    }
    ASSERT(false);
    return "";
}

size_t
postscreen_reply(enum postscreen_verdict verdict, const char *client, const char *hostname,
                 char *out, size_t out_bytes)
{
    ASSERT(out_bytes > 0);
    int n;
    switch (verdict) {
    case POSTSCREEN_REJECT:
        n = snprintf(out, out_bytes, "554 5.7.1 Service unavailable; client [%s] blocked\r\n",
                     client);
        break;
    case POSTSCREEN_LIMIT:
        n = snprintf(out, out_bytes,
                     "421 4.7.0 %s Error: too many connections from [%s], try again later\r\n",
                     hostname, client);
        break;
    case POSTSCREEN_TEST:
        n = snprintf(out, out_bytes, "554 5.5.1 Error: no SMTP service\r\n");
        break;
    default:
        ASSERT(false); /* PASS and PERMIT get the banner, not a refusal */
        return 0;
    }
    ASSERT(n > 0);
    if ((size_t)n >= out_bytes) {
        /* A very long hostname: keep the reply a line that ends in CRLF. */
        if (out_bytes >= 3) {
            out[out_bytes - 3] = '\r';
            out[out_bytes - 2] = '\n';
        }
        return out_bytes - 1;
    }
    return (size_t)n;
}
