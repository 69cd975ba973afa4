/*
 * core/dns_cache.h - the resolver's memory of answers: keyed by (type,
 * lower-case name), each entry holds a reference to an immutable
 * struct dns_result until its TTL runs out or it is evicted.
 *
 * Bounded twice, at creation: at most entry_count entries and bytes_max
 * bytes of results; a new entry beyond either evicts the least recently
 * used ones. Any thread: one mutex guards the table and every call holds
 * it for a hash probe and a few pointer moves (results are freed after it
 * is released). A result handed out stays valid while its reference is
 * held, whatever the cache does meanwhile.
 */
#ifndef TOASTER_CORE_DNS_CACHE_H
#define TOASTER_CORE_DNS_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "core/dns_parse.h"

/* Ceiling of entry_count (configuration may ask for less). */
#define DNS_CACHE_ENTRIES_CEILING (1u << 20)

/* A monotonic clock in milliseconds; tests inject their own. */
typedef uint64_t (*dns_clock_fn)(void *clock_arg);

struct dns_cache;

/* Returns 0 and sets *cache_out, -EINVAL (entry_count 0 or above the
 * ceiling, bytes_max 0) or -ENOMEM. clock NULL means CLOCK_MONOTONIC. */
int dns_cache_create(uint32_t entry_count, size_t bytes_max, dns_clock_fn clock, void *clock_arg,
                     struct dns_cache **cache_out);

/* Drop every entry's reference and free the cache; NULLs *cache. */
void dns_cache_destroy(struct dns_cache **cache);

/* An unexpired answer for (type, name): 0 and a new reference in
 * *result_out (the caller unrefs it), or -ENOENT. name is normalized. */
int dns_cache_get(struct dns_cache *cache, enum dns_type type, const char *name,
                  struct dns_result **result_out);

/* Keep result (its name and type are the key) for its answer's TTL,
 * replacing an older entry of the same key; the cache takes its own
 * reference. A TTL of 0 or a result larger than the byte bound is not
 * kept. Returns 0 when kept, -ENOSPC when not. */
int dns_cache_put(struct dns_cache *cache, struct dns_result *result);

/* Entries held now (expired ones count until they are met or evicted). */
size_t dns_cache_count(struct dns_cache *cache);

/* Bytes of results held now. */
size_t dns_cache_bytes(struct dns_cache *cache);

/* The clock's now, in milliseconds. */
uint64_t dns_cache_now_ms(const struct dns_cache *cache);

#endif
