/*
 * core/ip_limit.c - a shared per-IP connection counter.
 *
 * Open addressing with linear probing and backward-shift deletion, so the
 * table never fills with tombstones. The table has at least twice as many
 * buckets as there can be connections, so a probe always ends. IPv4-mapped
 * IPv6 addresses count as their IPv4 address.
 */
#include "core/ip_limit.h"

#include <ck_spinlock.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "core/assertions.h"
#include "core/hash.h"

struct ip_bucket {
    uint8_t  key[16]; /* IPv6 form; IPv4 as ::ffff:a.b.c.d */
    uint32_t count;   /* 0 = empty */
};

static struct ip_bucket *ip_table;
static uint32_t ip_table_mask;
static uint32_t ip_per_max;
static ck_spinlock_fas_t ip_lock = CK_SPINLOCK_FAS_INITIALIZER;

int
ip_limit_init(uint32_t max_tracked, uint32_t per_ip_max)
{
    uint32_t size = 64;
    while (size < max_tracked * 2u) {
        size *= 2;
    }
    ip_table = calloc(size, sizeof(*ip_table));
    if (ip_table == NULL) {
        return -ENOMEM;
    }
    ip_table_mask = size - 1;
    ip_per_max = per_ip_max;
    return 0;
}

void
ip_limit_destroy(void)
{
    free(ip_table);
    ip_table = NULL;
}

static void
ip_key(const struct sockaddr_storage *addr, uint8_t key[16])
{
    memset(key, 0, 16);
    if (addr->ss_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)addr;
        key[10] = 0xff;
        key[11] = 0xff;
        memcpy(key + 12, &sin->sin_addr, 4);
    } else if (addr->ss_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)addr;
        memcpy(key, &sin6->sin6_addr, 16);
    }
}

bool
ip_limit_acquire(const struct sockaddr_storage *addr)
{
    uint8_t key[16];
    ip_key(addr, key);
    bool is_allowed = false;
    ck_spinlock_fas_lock(&ip_lock);
    uint32_t i = hash_fnv1a(key, 16) & ip_table_mask;
    for (uint32_t probes = 0; probes <= ip_table_mask; probes++, i = (i + 1) & ip_table_mask) {
        struct ip_bucket *bucket = &ip_table[i];
        if (bucket->count == 0) {
            memcpy(bucket->key, key, 16);
            bucket->count = 1;
            is_allowed = true;
            break;
        }
        if (memcmp(bucket->key, key, 16) == 0) {
            if (bucket->count < ip_per_max) {
                bucket->count++;
                is_allowed = true;
            }
            break;
        }
    }
    ck_spinlock_fas_unlock(&ip_lock);
    return is_allowed;
}

void
ip_limit_release(const struct sockaddr_storage *addr)
{
    uint8_t key[16];
    ip_key(addr, key);
    ck_spinlock_fas_lock(&ip_lock);
    uint32_t i = hash_fnv1a(key, 16) & ip_table_mask;
    bool is_found = false;
    for (uint32_t probes = 0; probes <= ip_table_mask; probes++, i = (i + 1) & ip_table_mask) {
        struct ip_bucket *bucket = &ip_table[i];
        ASSERT(bucket->count != 0); /* release without acquire */
        if (memcmp(bucket->key, key, 16) == 0) {
            is_found = true;
            break;
        }
    }
    ASSERT(is_found);
    if (--ip_table[i].count == 0) {
        /* Backward-shift: move later members of the cluster up so lookups
         * never stop early at the hole. */
        uint32_t hole = i;
        for (uint32_t j = (i + 1) & ip_table_mask; ip_table[j].count != 0;
             j = (j + 1) & ip_table_mask) {
            uint32_t home = hash_fnv1a(ip_table[j].key, 16) & ip_table_mask;
            bool is_movable = hole <= j ? (home <= hole || home > j) : (home <= hole && home > j);
            if (is_movable) {
                ip_table[hole] = ip_table[j];
                ip_table[j].count = 0;
                hole = j;
            }
        }
    }
    ck_spinlock_fas_unlock(&ip_lock);
}
