/*
 * core/hash.h - FNV-1a, the hash for our small in-memory sets (per-IP
 * counters, a message's mailboxes, the Maildir metadata tables). Those
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

/* Put value (an index + 1; 0 marks a free slot) at the first free slot from
 * hash on, in a table of slot_count slots (a power of two) that the caller
 * keeps at most half full, so the probe always ends. */
static inline void
hash_slots_put(uint32_t *slots, size_t slot_count, uint32_t hash, uint32_t value)
{
    size_t mask = slot_count - 1;
    size_t s = hash & mask;
    while (slots[s] != 0) {
        s = (s + 1) & mask;
    }
    slots[s] = value;
}

#endif
