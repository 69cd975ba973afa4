/*
 * core/hash.h - FNV-1a, the hash for our small in-memory sets (per-IP
 * counters, a message's mailboxes, a commit batch's directories). Those
 * tables are sized at most half full and bounded, so a simple hash with
 * short probes is enough; none of them is keyed by unbounded peer strings.
 */
#ifndef TOASTER_CORE_HASH_H
#define TOASTER_CORE_HASH_H

#include <stddef.h>
#include <stdint.h>

static inline uint32_t
hash_fnv1a(const void *bytes, size_t len)
{
    const unsigned char *p = bytes;
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++) {
        h = (h ^ p[i]) * 16777619u;
    }
    return h;
}

static inline uint32_t
hash_fnv1a_string(const char *text)
{
    uint32_t h = 2166136261u;
    for (const unsigned char *p = (const unsigned char *)text; *p != '\0'; p++) {
        h = (h ^ *p) * 16777619u;
    }
    return h;
}

#endif
