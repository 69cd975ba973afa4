/*
 * core/dns.c - the resolver thread, batches and shared queries (see
 * dns.h).
 *
 * Owns the c-ares channel (used by the resolver thread only), the table of
 * queries in flight, the cache (core/dns_cache) and the current override
 * zone (core/dns_zone). Workers call dns_batch_lookup: a question is
 * answered from the batch, the zone, the cache, or joins the query in
 * flight for it, or starts one - queued for the resolver thread, which an
 * eventfd wakes. The thread sends queries with ares_send (built with
 * ares_create_query: a random ID of its own, RD and AD set so a validating
 * resolver tells us whether the answer is authenticated, and an EDNS(0)
 * OPT offering DNS_EDNS_PAYLOAD_BYTES), polls the eventfd and c-ares's
 * sockets (tracked by its socket-state callback), reads the raw answers
 * itself (core/dns_parse), puts them in the cache and hands them to every
 * waiting batch, calling a batch's ready() when its last question is
 * answered. Nothing here blocks a worker: its calls take the resolver
 * mutex for a table probe and a few pointer moves.
 *
 * One mutex (resolver->lock) guards the in-flight table, the submit list
 * and every batch's pending state (slot answers, pending count, armed
 * wait); the cache and the zone have their own locks, taken after it or
 * alone, never before it.
 * Limits: DNS_BATCH_QUESTIONS_MAX, DNS_INFLIGHT_MAX, DNS_SERVERS_MAX,
 * DNS_SOCKETS_MAX, the configuration's cache bounds and TTL caps.
 */
#define _GNU_SOURCE
#include "core/dns.h"

#include <ares.h>
#include <assert.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <unistd.h>

#include "core/assertions.h"
#include "core/dns_parse.h"
#include "core/dns_zone.h"
#include "core/log.h"

#define DNS_INFLIGHT_BUCKETS 1024u
#define DNS_SOCKETS_MAX 32
#define DNS_READY_CHUNK 32
#define DNS_CLASS_IN 1
#define DNS_TYPE_COUNT 6
/* EDNS(0) UDP payload we offer (RFC 6891; 1232 as DNS Flag Day 2020
 * advises): DKIM keys of 2048 bits and long SPF records fit one datagram,
 * larger answers come truncated and c-ares asks again over TCP. */
#define DNS_EDNS_PAYLOAD_BYTES 1232

static_assert((DNS_INFLIGHT_BUCKETS & (DNS_INFLIGHT_BUCKETS - 1)) == 0, "a power of two");
static_assert(DNS_SOCKETS_MAX >= 2 * DNS_SERVERS_MAX, "a UDP and a TCP socket per server");
static_assert(DNS_INFLIGHT_MAX <= 65536 / 4, "free query IDs stay easy to draw");

struct dns_query;

/* One question of a batch. While pending it waits on its query's list;
 * answer and result are then written by the resolver thread (under the
 * resolver lock). */
struct dns_slot {
    enum dns_type            type;
    uint32_t                 hash;
    char                     name[DNS_NAME_BYTES_MAX + 1];
    const struct dns_answer *answer; /* NULL while pending */
    struct dns_result       *result; /* the pinned reference; NULL for refused answers */
    struct dns_query        *query;  /* while pending */
    struct dns_slot         *next_waiter;
    struct dns_batch        *batch;
};

struct dns_batch {
    struct dns_resolver *resolver;
    uint32_t             slot_max;      /* DNS_BATCH_QUESTIONS_MAX, or 1 for dns_resolve */
    uint32_t             count;         /* slots used; only the owner's thread writes it */
    uint32_t             pending_count; /* under resolver->lock */
    void (*ready)(void *arg);           /* under resolver->lock; NULL: no wait armed */
    void *ready_arg;
    /* dns_resolve's caller, for a batch of one made by it. */
    void (*done)(void *arg, const struct dns_answer *answer);
    void           *done_arg;
    struct dns_slot slots[];
};

/* One query in flight, shared by every batch asking the same question. */
struct dns_query {
    struct dns_query    *next_in_bucket;
    struct dns_query    *next_submit;
    struct dns_resolver *resolver;
    enum dns_type        type;
    uint32_t             hash;
    uint16_t             qid;     /* while sent: its bit is set in resolver->qids_used */
    bool                 is_sent;
    char                 name[DNS_NAME_BYTES_MAX + 1];
    struct dns_slot     *waiters;
};

struct dns_socket {
    int  fd;
    bool is_readable;
    bool is_writable;
};

struct dns_resolver {
    uint32_t          ttl_max_s;
    uint32_t          negative_ttl_max_s;
    uint32_t          seed;
    struct dns_cache *cache;

    pthread_rwlock_t zone_lock;
    struct dns_zone *zone; /* NULL: no override file */

    pthread_mutex_t   lock;
    struct dns_query *inflight[DNS_INFLIGHT_BUCKETS];
    uint32_t          inflight_count;
    struct dns_query *submit_first;
    struct dns_query *submit_last;
    bool              is_stopping;

    int         wake_fd;
    pthread_t   thread;
    bool        has_thread;
    ares_channel channel;
    bool        has_channel;
    /* Query IDs in use (ares_send keeps the ID we put in the packet),
     * and random bytes to draw new ones from. Resolver thread only. */
    uint64_t          qids_used[65536 / 64];
    uint16_t          random_ids[64];
    size_t            random_id_count;
    struct dns_socket sockets[DNS_SOCKETS_MAX]; /* resolver thread only */
    size_t            socket_count;
    bool              has_logged_sockets_full;

    /* TTL 0 answers for failures, made at start so failing needs no memory. */
    struct dns_result *tempfail_results[DNS_TYPE_COUNT];
    struct dns_result *permfail_results[DNS_TYPE_COUNT];

    uint32_t         batch_count; /* atomic */
    struct dns_stats stats;       /* atomic adds */
};

/* The answer of a refused question (over a bound), one per type; static,
 * so it needs no reference. */
static const struct dns_answer dns_refused_answers[DNS_TYPE_COUNT] = {
    { .type = DNS_TYPE_A, .status = DNS_STATUS_TEMPFAIL },
    { .type = DNS_TYPE_PTR, .status = DNS_STATUS_TEMPFAIL },
    { .type = DNS_TYPE_MX, .status = DNS_STATUS_TEMPFAIL },
    { .type = DNS_TYPE_TXT, .status = DNS_STATUS_TEMPFAIL },
    { .type = DNS_TYPE_AAAA, .status = DNS_STATUS_TEMPFAIL },
    { .type = DNS_TYPE_TLSA, .status = DNS_STATUS_TEMPFAIL },
};

static void *dns_thread_main(void *arg);
static void dns_query_complete(struct dns_query *query, struct dns_result *result);
static void dns_qid_release(struct dns_resolver *resolver, uint16_t id);

static void
stat_add(uint64_t *counter)
{
    (void)__atomic_fetch_add(counter, 1, __ATOMIC_RELAXED);
}

/* The position of type in dns_refused_answers (and the failure results). */
static size_t
type_index(enum dns_type type)
{
    for (size_t i = 0; i < DNS_TYPE_COUNT; i++) {
        if (dns_refused_answers[i].type == type) {
            return i;
        }
    }
    ASSERT(!"a type of enum dns_type");
    return 0;
}

static const struct dns_answer *
refused_answer(enum dns_type type)
{
    return &dns_refused_answers[type_index(type)];
}

static bool
type_is_known(enum dns_type type)
{
    return strcmp(dns_type_name(type), "?") != 0;
}

static uint32_t
question_hash(uint32_t seed, enum dns_type type, const char *name)
{
    uint32_t h = 2166136261u ^ seed;
    h = (h ^ (uint32_t)type) * 16777619u;
    for (const unsigned char *p = (const unsigned char *)name; *p != '\0'; p++) {
        h = (h ^ *p) * 16777619u;
    }
    return h;
}

/* ---- configuration and life cycle ------------------------------------------ */

void
dns_config_defaults(struct dns_config *config)
{
    memset(config, 0, sizeof(*config));
    config->timeout_ms = DNS_TIMEOUT_MS_DEFAULT;
    config->tries = DNS_TRIES_DEFAULT;
    config->cache_entries = DNS_CACHE_ENTRIES_DEFAULT;
    config->cache_bytes = DNS_CACHE_BYTES_DEFAULT;
    config->ttl_max_s = DNS_TTL_MAX_S_DEFAULT;
    config->negative_ttl_max_s = DNS_NEGATIVE_TTL_MAX_S_DEFAULT;
}

static pthread_once_t dns_library_once = PTHREAD_ONCE_INIT;
static int dns_library_status = ARES_SUCCESS;

static void
dns_library_init(void)
{
    dns_library_status = ares_library_init(ARES_LIB_INIT_ALL);
}

/* c-ares tells us which sockets to poll for what. */
static void
dns_sock_state(void *data, ares_socket_t fd, int readable, int writable)
{
    struct dns_resolver *resolver = data;
    size_t i = 0;
    while (i < resolver->socket_count && resolver->sockets[i].fd != fd) {
        i++;
    }
    if (!readable && !writable) {
        if (i < resolver->socket_count) {
            resolver->sockets[i] = resolver->sockets[--resolver->socket_count];
        }
        return;
    }
    if (i == resolver->socket_count) {
        if (resolver->socket_count == DNS_SOCKETS_MAX) {
            /* Its queries time out; say so once rather than per packet. */
            if (!resolver->has_logged_sockets_full) {
                log_error("dns: more than %d c-ares sockets, socket %d not polled",
                          DNS_SOCKETS_MAX, (int)fd);
                resolver->has_logged_sockets_full = true;
            }
            return;
        }
        resolver->socket_count++;
    }
    resolver->sockets[i].fd = fd;
    resolver->sockets[i].is_readable = readable != 0;
    resolver->sockets[i].is_writable = writable != 0;
}

static int
dns_config_check(const struct dns_config *config, char *error_out, size_t error_bytes)
{
    if (config->timeout_ms == 0 || config->timeout_ms > DNS_TIMEOUT_MS_CEILING) {
        (void)snprintf(error_out, error_bytes, "dns timeout_ms must be 1..%d",
                       DNS_TIMEOUT_MS_CEILING);
        return -EINVAL;
    }
    if (config->tries == 0 || config->tries > DNS_TRIES_CEILING) {
        (void)snprintf(error_out, error_bytes, "dns tries must be 1..%d", DNS_TRIES_CEILING);
        return -EINVAL;
    }
    if (config->cache_entries == 0 || config->cache_entries > DNS_CACHE_ENTRIES_CEILING ||
        config->cache_bytes == 0) {
        (void)snprintf(error_out, error_bytes, "dns cache entries must be 1..%u, bytes > 0",
                       DNS_CACHE_ENTRIES_CEILING);
        return -EINVAL;
    }
    if (config->servers != NULL) {
        size_t count = 1;
        for (const char *p = config->servers; *p != '\0'; p++) {
            count += *p == ',' ? 1 : 0;
        }
        if (count > DNS_SERVERS_MAX) {
            (void)snprintf(error_out, error_bytes, "dns servers: more than %d",
                           DNS_SERVERS_MAX);
            return -EINVAL;
        }
    }
    return 0;
}

static int
dns_channel_create(struct dns_resolver *resolver, const struct dns_config *config,
                   char *error_out, size_t error_bytes)
{
    (void)pthread_once(&dns_library_once, dns_library_init); /* cannot fail on Linux */
    if (dns_library_status != ARES_SUCCESS) {
        (void)snprintf(error_out, error_bytes, "c-ares: %s", ares_strerror(dns_library_status));
        return -ENOMEM;
    }
    struct ares_options options;
    memset(&options, 0, sizeof(options));
    options.timeout = (int)config->timeout_ms;
    options.tries = (int)config->tries;
    options.sock_state_cb = dns_sock_state;
    options.sock_state_cb_data = resolver;
    /* No search list: mail always asks absolute names. NOCHECKRESP: hand
     * us SERVFAIL, REFUSED and NOTIMP answers as they are, so the parser
     * judges every RCODE and REFUSED stays apart from a timeout (c-ares
     * 1.18 would report it as "could not contact servers"). The price: a
     * SERVFAIL is final instead of making c-ares try the next server. */
    options.flags = ARES_FLAG_NOSEARCH | ARES_FLAG_NOCHECKRESP | ARES_FLAG_EDNS;
    options.ednspsz = DNS_EDNS_PAYLOAD_BYTES;
    int mask = ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_SOCK_STATE_CB | ARES_OPT_FLAGS |
               ARES_OPT_EDNSPSZ;
    int rc = ares_init_options(&resolver->channel, &options, mask);
    if (rc != ARES_SUCCESS) {
        (void)snprintf(error_out, error_bytes, "c-ares: %s", ares_strerror(rc));
        return rc == ARES_ENOMEM ? -ENOMEM : -EINVAL;
    }
    resolver->has_channel = true;
    if (config->servers != NULL && config->servers[0] != '\0') {
        rc = ares_set_servers_ports_csv(resolver->channel, config->servers);
        if (rc != ARES_SUCCESS) {
            (void)snprintf(error_out, error_bytes, "dns servers \"%s\": %s", config->servers,
                           ares_strerror(rc));
            return -EINVAL;
        }
    }
    return 0;
}

static void
dns_resolver_free(struct dns_resolver *resolver)
{
    if (resolver->has_channel) {
        ares_destroy(resolver->channel);
    }
    if (resolver->wake_fd >= 0) {
        (void)close(resolver->wake_fd); /* an eventfd: nothing to flush */
    }
    dns_zone_destroy(&resolver->zone);
    dns_cache_destroy(&resolver->cache);
    for (size_t t = 0; t < DNS_TYPE_COUNT; t++) {
        dns_result_unref(&resolver->tempfail_results[t]);
        dns_result_unref(&resolver->permfail_results[t]);
    }
    (void)pthread_rwlock_destroy(&resolver->zone_lock); /* unused by now */
    (void)pthread_mutex_destroy(&resolver->lock);
    free(resolver);
}

int
dns_resolver_create(const struct dns_config *config, struct dns_resolver **resolver_out,
                    char *error_out, size_t error_bytes)
{
    ASSERT(config != NULL);
    if (error_bytes > 0) {
        error_out[0] = '\0';
    }
    int rc = dns_config_check(config, error_out, error_bytes);
    if (rc != 0) {
        return rc;
    }
    struct dns_resolver *resolver = calloc(1, sizeof(*resolver));
    if (resolver == NULL) {
        return -ENOMEM;
    }
    resolver->wake_fd = -1;
    resolver->ttl_max_s = config->ttl_max_s;
    resolver->negative_ttl_max_s = config->negative_ttl_max_s;
    if (getrandom(&resolver->seed, sizeof(resolver->seed), GRND_NONBLOCK) !=
        (ssize_t)sizeof(resolver->seed)) {
        resolver->seed = (uint32_t)(uintptr_t)resolver; /* weaker spread, still correct */
    }
    rc = pthread_mutex_init(&resolver->lock, NULL);
    if (rc != 0) {
        free(resolver);
        return -rc;
    }
    rc = pthread_rwlock_init(&resolver->zone_lock, NULL);
    if (rc != 0) {
        (void)pthread_mutex_destroy(&resolver->lock);
        free(resolver);
        return -rc;
    }
    for (size_t t = 0; t < DNS_TYPE_COUNT && rc == 0; t++) {
        enum dns_type type = dns_refused_answers[t].type;
        rc = dns_result_create(NULL, type, DNS_STATUS_TEMPFAIL, 0, false, NULL, 0,
                               &resolver->tempfail_results[t]);
        if (rc == 0) {
            rc = dns_result_create(NULL, type, DNS_STATUS_PERMFAIL, 0, false, NULL, 0,
                                   &resolver->permfail_results[t]);
        }
    }
    if (rc == 0) {
        rc = dns_cache_create(config->cache_entries, config->cache_bytes, config->clock,
                              config->clock_arg, &resolver->cache);
    }
    if (rc == 0 && config->override_file != NULL && config->override_file[0] != '\0') {
        rc = dns_zone_load(config->override_file, &resolver->zone, error_out, error_bytes);
    }
    if (rc == 0) {
        resolver->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (resolver->wake_fd < 0) {
            rc = -errno;
            (void)snprintf(error_out, error_bytes, "dns: eventfd: %s", strerror(-rc));
        }
    }
    if (rc == 0) {
        rc = dns_channel_create(resolver, config, error_out, error_bytes);
    }
    if (rc == 0) {
        rc = -pthread_create(&resolver->thread, NULL, dns_thread_main, resolver);
        if (rc != 0) {
            (void)snprintf(error_out, error_bytes, "dns: thread: %s", strerror(-rc));
        }
    }
    if (rc != 0) {
        dns_resolver_free(resolver);
        return rc;
    }
    resolver->has_thread = true;
    *resolver_out = resolver;
    return 0;
}

static void
dns_wake(struct dns_resolver *resolver)
{
    uint64_t one = 1;
    /* Only EAGAIN (the counter near overflow) can fail, and then the
     * thread is due to wake anyway. */
    (void)!write(resolver->wake_fd, &one, sizeof(one));
}

void
dns_resolver_destroy(struct dns_resolver **resolver)
{
    struct dns_resolver *r = *resolver;
    if (r == NULL) {
        return;
    }
    ASSERT(pthread_mutex_lock(&r->lock) == 0);
    r->is_stopping = true;
    ASSERT(pthread_mutex_unlock(&r->lock) == 0);
    dns_wake(r);
    if (r->has_thread) {
        ASSERT(pthread_join(r->thread, NULL) == 0);
    }
    /* dns_resolve's batches went with their answers when the thread ended
     * every query; the callers' batches must be gone already. */
    ASSERT(__atomic_load_n(&r->batch_count, __ATOMIC_ACQUIRE) == 0);
    ASSERT(r->inflight_count == 0);
    dns_resolver_free(r);
    *resolver = NULL;
}

int
dns_resolver_load_override(struct dns_resolver *resolver, const char *path, char *error_out,
                           size_t error_bytes)
{
    struct dns_zone *zone = NULL;
    if (path != NULL && path[0] != '\0') {
        int rc = dns_zone_load(path, &zone, error_out, error_bytes);
        if (rc != 0) {
            return rc;
        }
    }
    ASSERT(pthread_rwlock_wrlock(&resolver->zone_lock) == 0);
    struct dns_zone *old = resolver->zone;
    resolver->zone = zone;
    ASSERT(pthread_rwlock_unlock(&resolver->zone_lock) == 0);
    /* Answers of the old zone pinned in batches hold their own references. */
    dns_zone_destroy(&old);
    return 0;
}

void
dns_resolver_stats(const struct dns_resolver *resolver, struct dns_stats *stats_out)
{
    const struct dns_stats *s = &resolver->stats;
    stats_out->queries_sent = __atomic_load_n(&s->queries_sent, __ATOMIC_RELAXED);
    stats_out->queries_shared = __atomic_load_n(&s->queries_shared, __ATOMIC_RELAXED);
    stats_out->cache_hits = __atomic_load_n(&s->cache_hits, __ATOMIC_RELAXED);
    stats_out->cache_misses = __atomic_load_n(&s->cache_misses, __ATOMIC_RELAXED);
    stats_out->override_answers = __atomic_load_n(&s->override_answers, __ATOMIC_RELAXED);
    stats_out->timeouts = __atomic_load_n(&s->timeouts, __ATOMIC_RELAXED);
    stats_out->tempfails = __atomic_load_n(&s->tempfails, __ATOMIC_RELAXED);
    stats_out->refused = __atomic_load_n(&s->refused, __ATOMIC_RELAXED);
}

/* ---- batches ------------------------------------------------------------------ */

static int
dns_batch_source_lookup(void *ctx, enum dns_type type, const char *name,
                        const struct dns_answer **answer_out)
{
    return dns_batch_lookup(ctx, type, name, answer_out);
}

static int
dns_batch_create_sized(struct dns_resolver *resolver, uint32_t slot_max,
                       struct dns_batch **batch_out)
{
    ASSERT(resolver != NULL);
    ASSERT(slot_max >= 1 && slot_max <= DNS_BATCH_QUESTIONS_MAX);
    struct dns_batch *batch =
        calloc(1, sizeof(*batch) + (size_t)slot_max * sizeof(struct dns_slot));
    if (batch == NULL) {
        return -ENOMEM;
    }
    batch->resolver = resolver;
    batch->slot_max = slot_max;
    (void)__atomic_fetch_add(&resolver->batch_count, 1, __ATOMIC_RELAXED);
    *batch_out = batch;
    return 0;
}

int
dns_batch_create(struct dns_resolver *resolver, struct dns_batch **batch_out)
{
    return dns_batch_create_sized(resolver, DNS_BATCH_QUESTIONS_MAX, batch_out);
}

struct dns_source
dns_batch_source(struct dns_batch *batch)
{
    return (struct dns_source){ .lookup = dns_batch_source_lookup, .ctx = batch };
}

/* Pin an answer found without a query into the next slot. */
static void
slot_pin(struct dns_batch *batch, struct dns_slot *slot, struct dns_result *result,
         const struct dns_answer **answer_out)
{
    ASSERT(pthread_mutex_lock(&batch->resolver->lock) == 0);
    slot->result = result;
    slot->answer = result != NULL ? &result->answer : refused_answer(slot->type);
    batch->count++;
    ASSERT(pthread_mutex_unlock(&batch->resolver->lock) == 0);
    *answer_out = slot->answer;
}

int
dns_batch_lookup(struct dns_batch *batch, enum dns_type type, const char *name,
                 const struct dns_answer **answer_out)
{
    ASSERT(batch != NULL);
    ASSERT(answer_out != NULL);
    ASSERT(type_is_known(type));
    struct dns_resolver *resolver = batch->resolver;
    char key[DNS_NAME_BYTES_MAX + 1];
    if (name == NULL || dns_name_normalize(name, key) != 0) {
        return -EINVAL;
    }
    uint32_t hash = question_hash(resolver->seed, type, key);

    /* Asked before by this batch: the same answer, or still pending. */
    int rc = 1;
    ASSERT(pthread_mutex_lock(&resolver->lock) == 0);
    for (uint32_t i = 0; i < batch->count; i++) {
        const struct dns_slot *slot = &batch->slots[i];
        if (slot->hash == hash && slot->type == type && strcmp(slot->name, key) == 0) {
            if (slot->answer != NULL) {
                *answer_out = slot->answer;
                rc = 0;
            } else {
                rc = -EINPROGRESS;
            }
            break;
        }
    }
    ASSERT(pthread_mutex_unlock(&resolver->lock) == 0);
    if (rc <= 0) {
        return rc;
    }
    if (batch->count == batch->slot_max) {
        /* Not pinned: the rerun asks its questions in the same order and
         * finds the batch full at the same one. */
        stat_add(&resolver->stats.refused);
        stat_add(&resolver->stats.tempfails);
        *answer_out = refused_answer(type);
        return 0;
    }
    struct dns_slot *slot = &batch->slots[batch->count];
    memset(slot, 0, sizeof(*slot));
    slot->type = type;
    slot->hash = hash;
    slot->batch = batch;
    memcpy(slot->name, key, strlen(key) + 1);

    struct dns_result *result = NULL;
    ASSERT(pthread_rwlock_rdlock(&resolver->zone_lock) == 0);
    int zone_rc = resolver->zone != NULL ? dns_zone_lookup(resolver->zone, type, key, &result)
                                         : -ENOENT;
    ASSERT(pthread_rwlock_unlock(&resolver->zone_lock) == 0);
    if (zone_rc == 0) {
        stat_add(&resolver->stats.override_answers);
        slot_pin(batch, slot, result, answer_out);
        return 0;
    }
    if (dns_cache_get(resolver->cache, type, key, &result) == 0) {
        stat_add(&resolver->stats.cache_hits);
        slot_pin(batch, slot, result, answer_out);
        return 0;
    }

    bool is_new = false;
    bool must_wake = false;
    ASSERT(pthread_mutex_lock(&resolver->lock) == 0);
    struct dns_query *query = resolver->inflight[hash & (DNS_INFLIGHT_BUCKETS - 1)];
    while (query != NULL &&
           !(query->hash == hash && query->type == type && strcmp(query->name, key) == 0)) {
        query = query->next_in_bucket;
    }
    if (query == NULL && dns_cache_get(resolver->cache, type, key, &result) == 0) {
        /* Answered between the first look and taking the lock. */
        slot->result = result;
        slot->answer = &result->answer;
        batch->count++;
        ASSERT(pthread_mutex_unlock(&resolver->lock) == 0);
        stat_add(&resolver->stats.cache_hits);
        *answer_out = slot->answer;
        return 0;
    }
    if (query == NULL && resolver->inflight_count < DNS_INFLIGHT_MAX && !resolver->is_stopping) {
        query = calloc(1, sizeof(*query));
        if (query != NULL) {
            query->resolver = resolver;
            query->type = type;
            query->hash = hash;
            memcpy(query->name, key, strlen(key) + 1);
            struct dns_query **bucket = &resolver->inflight[hash & (DNS_INFLIGHT_BUCKETS - 1)];
            query->next_in_bucket = *bucket;
            *bucket = query;
            resolver->inflight_count++;
            must_wake = resolver->submit_first == NULL;
            if (resolver->submit_last != NULL) {
                resolver->submit_last->next_submit = query;
            } else {
                resolver->submit_first = query;
            }
            resolver->submit_last = query;
            is_new = true;
        }
    }
    if (query == NULL) {
        /* Too many in flight (or no memory): pinned, so the rerun sees it. */
        slot->answer = refused_answer(type);
        batch->count++;
        ASSERT(pthread_mutex_unlock(&resolver->lock) == 0);
        stat_add(&resolver->stats.refused);
        stat_add(&resolver->stats.tempfails);
        *answer_out = slot->answer;
        return 0;
    }
    slot->query = query;
    slot->next_waiter = query->waiters;
    query->waiters = slot;
    batch->pending_count++;
    batch->count++;
    ASSERT(pthread_mutex_unlock(&resolver->lock) == 0);
    stat_add(is_new ? &resolver->stats.cache_misses : &resolver->stats.queries_shared);
    if (must_wake) {
        dns_wake(resolver);
    }
    return -EINPROGRESS;
}

uint32_t
dns_batch_pending(struct dns_batch *batch)
{
    ASSERT(pthread_mutex_lock(&batch->resolver->lock) == 0);
    uint32_t pending = batch->pending_count;
    ASSERT(pthread_mutex_unlock(&batch->resolver->lock) == 0);
    return pending;
}

bool
dns_batch_wait(struct dns_batch *batch, void (*ready)(void *arg), void *arg)
{
    ASSERT(batch != NULL);
    ASSERT(ready != NULL);
    ASSERT(pthread_mutex_lock(&batch->resolver->lock) == 0);
    ASSERT(batch->ready == NULL);
    bool is_waiting = batch->pending_count > 0;
    if (is_waiting) {
        batch->ready = ready;
        batch->ready_arg = arg;
    }
    ASSERT(pthread_mutex_unlock(&batch->resolver->lock) == 0);
    return is_waiting;
}

void
dns_batch_reset(struct dns_batch *batch)
{
    ASSERT(batch != NULL);
    ASSERT(pthread_mutex_lock(&batch->resolver->lock) == 0);
    for (uint32_t i = 0; i < batch->count; i++) {
        struct dns_slot *slot = &batch->slots[i];
        if (slot->query == NULL) {
            continue;
        }
        struct dns_slot **link = &slot->query->waiters;
        while (*link != slot) {
            ASSERT(*link != NULL);
            link = &(*link)->next_waiter;
        }
        *link = slot->next_waiter;
        slot->query = NULL;
    }
    batch->pending_count = 0;
    batch->ready = NULL;
    batch->ready_arg = NULL;
    uint32_t count = batch->count;
    batch->count = 0;
    ASSERT(pthread_mutex_unlock(&batch->resolver->lock) == 0);
    for (uint32_t i = 0; i < count; i++) {
        dns_result_unref(&batch->slots[i].result);
        batch->slots[i].answer = NULL;
    }
}

void
dns_batch_destroy(struct dns_batch **batch)
{
    struct dns_batch *b = *batch;
    if (b == NULL) {
        return;
    }
    dns_batch_reset(b);
    uint32_t before = __atomic_fetch_sub(&b->resolver->batch_count, 1, __ATOMIC_RELEASE);
    ASSERT(before > 0);
    free(b);
    *batch = NULL;
}

/* ---- one-shot questions ------------------------------------------------------------ */

/* ready() of a batch made by dns_resolve: resolver thread. */
static void
dns_resolve_ready(void *arg)
{
    struct dns_batch *batch = arg;
    ASSERT(batch->count == 1);
    ASSERT(batch->slots[0].answer != NULL); /* written on this thread before ready */
    batch->done(batch->done_arg, batch->slots[0].answer);
    dns_batch_destroy(&batch);
}

int
dns_resolve(struct dns_resolver *resolver, enum dns_type type, const char *name,
            void (*done)(void *arg, const struct dns_answer *answer), void *arg)
{
    ASSERT(done != NULL);
    struct dns_batch *batch = NULL;
    int rc = dns_batch_create_sized(resolver, 1, &batch);
    if (rc != 0) {
        return rc;
    }
    batch->done = done;
    batch->done_arg = arg;
    const struct dns_answer *answer = NULL;
    rc = dns_batch_lookup(batch, type, name, &answer);
    if (rc == -EINPROGRESS && dns_batch_wait(batch, dns_resolve_ready, batch)) {
        return -EINPROGRESS; /* the batch is the resolver thread's now */
    }
    if (rc == -EINPROGRESS) {
        /* Answered between the lookup and the wait: read it from the slot. */
        rc = dns_batch_lookup(batch, type, name, &answer);
        ASSERT(rc == 0);
    }
    if (rc == 0) {
        done(arg, answer);
    }
    dns_batch_destroy(&batch);
    return rc;
}

/* ---- the resolver thread -------------------------------------------------------- */

/* Deliver result to every batch waiting on query, then free the query.
 * Resolver thread. Takes over the caller's reference to result. */
static void
dns_query_complete(struct dns_query *query, struct dns_result *result)
{
    struct dns_resolver *resolver = query->resolver;
    if (result->answer.status == DNS_STATUS_TEMPFAIL) {
        stat_add(&resolver->stats.tempfails);
    }
    if (query->is_sent) {
        dns_qid_release(resolver, query->qid);
        query->is_sent = false;
    }
    /* Cache first, then leave the table: a lookup in between joins the
     * query and is served below; one after finds the cache. */
    (void)dns_cache_put(resolver->cache, result); /* -ENOSPC: TTL 0, served only here */
    ASSERT(pthread_mutex_lock(&resolver->lock) == 0);
    struct dns_query **link = &resolver->inflight[query->hash & (DNS_INFLIGHT_BUCKETS - 1)];
    while (*link != query) {
        ASSERT(*link != NULL);
        link = &(*link)->next_in_bucket;
    }
    *link = query->next_in_bucket;
    ASSERT(resolver->inflight_count > 0);
    resolver->inflight_count--;
    ASSERT(pthread_mutex_unlock(&resolver->lock) == 0);

    /* ready() runs without the lock (it may look up again); waiters are
     * taken off the list a chunk at a time, so a batch reset meanwhile
     * still finds its slots on it. */
    bool has_more = true;
    while (has_more) {
        struct {
            void (*ready)(void *arg);
            void *arg;
        } fires[DNS_READY_CHUNK];
        size_t fire_count = 0;
        ASSERT(pthread_mutex_lock(&resolver->lock) == 0);
        while (query->waiters != NULL && fire_count < DNS_READY_CHUNK) {
            struct dns_slot *slot = query->waiters;
            query->waiters = slot->next_waiter;
            slot->next_waiter = NULL;
            slot->query = NULL;
            slot->result = dns_result_ref(result);
            slot->answer = &result->answer;
            struct dns_batch *batch = slot->batch;
            ASSERT(batch->pending_count > 0);
            batch->pending_count--;
            if (batch->pending_count == 0 && batch->ready != NULL) {
                fires[fire_count].ready = batch->ready;
                fires[fire_count].arg = batch->ready_arg;
                fire_count++;
                batch->ready = NULL;
                batch->ready_arg = NULL;
            }
        }
        has_more = query->waiters != NULL;
        ASSERT(pthread_mutex_unlock(&resolver->lock) == 0);
        for (size_t i = 0; i < fire_count; i++) {
            fires[i].ready(fires[i].arg);
        }
    }
    dns_result_unref(&result);
    free(query);
}

/* Answer query with the prebuilt failure result of its type (no
 * allocation on this path: it also serves when memory ran out). */
static void
dns_query_fail(struct dns_query *query, enum dns_status status)
{
    ASSERT(status == DNS_STATUS_TEMPFAIL || status == DNS_STATUS_PERMFAIL);
    struct dns_resolver *resolver = query->resolver;
    size_t t = type_index(query->type);
    struct dns_result *result = status == DNS_STATUS_TEMPFAIL ? resolver->tempfail_results[t]
                                                              : resolver->permfail_results[t];
    dns_query_complete(query, dns_result_ref(result));
}

static void
dns_answer_callback(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
    struct dns_query *query = arg;
    struct dns_resolver *resolver = query->resolver;
    (void)timeouts;
    if (status == ARES_SUCCESS && abuf != NULL && alen >= 0) {
        struct dns_result *result = NULL;
        int rc = dns_parse_response(abuf, (size_t)alen, query->type, query->name,
                                    resolver->ttl_max_s, resolver->negative_ttl_max_s, &result);
        if (rc == 0) {
            dns_query_complete(query, result);
            return;
        }
        dns_query_fail(query, DNS_STATUS_TEMPFAIL);
        return;
    }
    if (status == ARES_ETIMEOUT) {
        stat_add(&resolver->stats.timeouts);
    }
    /* The server refused or could not read the question: asking again
     * will not help. Everything else (timeouts, SERVFAIL, unreachable
     * servers, shutting down) may pass. */
    bool is_permanent = status == ARES_EREFUSED || status == ARES_ENOTIMP ||
                        status == ARES_EFORMERR || status == ARES_EBADRESP;
    if (status != ARES_EDESTRUCTION && status != ARES_ETIMEOUT) {
        log_debug("dns: %s %s: %s", dns_type_name(query->type), query->name,
                  ares_strerror(status));
    }
    dns_query_fail(query, is_permanent ? DNS_STATUS_PERMFAIL : DNS_STATUS_TEMPFAIL);
}

/* A random query ID no other query in flight uses (RFC 5452 9.2: with
 * the random source port, what keeps forged answers out). */
static uint16_t
dns_qid_take(struct dns_resolver *resolver)
{
    for (;;) {
        if (resolver->random_id_count == 0) {
            ssize_t n = getrandom(resolver->random_ids, sizeof(resolver->random_ids), 0);
            /* getrandom without GRND_NONBLOCK fails only on EINTR (the pool is
             * ready once the system has booted); retry then. */
            if (n != (ssize_t)sizeof(resolver->random_ids)) {
                continue;
            }
            resolver->random_id_count = sizeof(resolver->random_ids) / sizeof(uint16_t);
        }
        uint16_t id = resolver->random_ids[--resolver->random_id_count];
        uint64_t bit = 1ull << (id % 64);
        if ((resolver->qids_used[id / 64] & bit) == 0) {
            resolver->qids_used[id / 64] |= bit;
            return id;
        }
    }
}

static void
dns_qid_release(struct dns_resolver *resolver, uint16_t id)
{
    uint64_t bit = 1ull << (id % 64);
    ASSERT((resolver->qids_used[id / 64] & bit) != 0);
    resolver->qids_used[id / 64] &= ~bit;
}

static void
dns_query_send(struct dns_resolver *resolver, struct dns_query *query)
{
    unsigned char *packet = NULL;
    int packet_len = 0;
    query->qid = dns_qid_take(resolver);
    query->is_sent = true;
    int rc = ares_create_query(query->name, DNS_CLASS_IN, (int)query->type, query->qid, 1,
                               &packet, &packet_len, DNS_EDNS_PAYLOAD_BYTES);
    if (rc != ARES_SUCCESS) {
        log_error("dns: cannot build a query for %s %s: %s", dns_type_name(query->type),
                  query->name, ares_strerror(rc));
        dns_query_fail(query, DNS_STATUS_TEMPFAIL);
        return;
    }
    ASSERT(packet_len > 3);
    packet[3] |= 0x20; /* AD: tell us whether the answer was validated (RFC 6840 5.7) */
    stat_add(&resolver->stats.queries_sent);
    /* ares_send copies the packet and calls back even when it fails. */
    ares_send(resolver->channel, packet, packet_len, dns_answer_callback, query);
    ares_free_string(packet);
}

/* Take the submitted queries; true when the resolver is stopping. */
static bool
dns_take_submitted(struct dns_resolver *resolver, struct dns_query **first_out)
{
    ASSERT(pthread_mutex_lock(&resolver->lock) == 0);
    *first_out = resolver->submit_first;
    resolver->submit_first = NULL;
    resolver->submit_last = NULL;
    bool is_stopping = resolver->is_stopping;
    ASSERT(pthread_mutex_unlock(&resolver->lock) == 0);
    return is_stopping;
}

static void *
dns_thread_main(void *arg)
{
    struct dns_resolver *resolver = arg;
    (void)pthread_setname_np(pthread_self(), "dns"); /* a name for top and gdb only */
    struct pollfd fds[1 + DNS_SOCKETS_MAX];
    for (;;) {
        struct dns_query *query = NULL;
        bool is_stopping = dns_take_submitted(resolver, &query);
        while (query != NULL) {
            struct dns_query *next = query->next_submit;
            query->next_submit = NULL;
            if (is_stopping) {
                dns_query_fail(query, DNS_STATUS_TEMPFAIL);
            } else {
                dns_query_send(resolver, query);
            }
            query = next;
        }
        if (is_stopping) {
            break;
        }
        fds[0].fd = resolver->wake_fd;
        fds[0].events = POLLIN;
        fds[0].revents = 0;
        nfds_t nfds = 1;
        for (size_t i = 0; i < resolver->socket_count; i++) {
            fds[nfds].fd = resolver->sockets[i].fd;
            fds[nfds].events = (short)((resolver->sockets[i].is_readable ? POLLIN : 0) |
                                       (resolver->sockets[i].is_writable ? POLLOUT : 0));
            fds[nfds].revents = 0;
            nfds++;
        }
        struct timeval tv;
        struct timeval *next_timeout = ares_timeout(resolver->channel, NULL, &tv);
        int timeout_ms = -1;
        if (next_timeout != NULL) {
            /* Rounded up, so the timer is due when poll returns. */
            timeout_ms = (int)(next_timeout->tv_sec * 1000 + (next_timeout->tv_usec + 999) / 1000);
        }
        int n = poll(fds, nfds, timeout_ms);
        if (n < 0 && errno != EINTR) {
            log_error("dns: poll: %s", strerror(errno));
        }
        if (n > 0 && (fds[0].revents & POLLIN) != 0) {
            uint64_t value = 0;
            /* EAGAIN when another thread raced us to it: nothing to do. */
            (void)!read(resolver->wake_fd, &value, sizeof(value));
        }
        for (nfds_t i = 1; n > 0 && i < nfds; i++) {
            short revents = fds[i].revents;
            if (revents == 0) {
                continue;
            }
            ares_socket_t readable =
                (revents & (POLLIN | POLLERR | POLLHUP)) != 0 ? fds[i].fd : ARES_SOCKET_BAD;
            ares_socket_t writable = (revents & POLLOUT) != 0 ? fds[i].fd : ARES_SOCKET_BAD;
            ares_process_fd(resolver->channel, readable, writable);
        }
        /* Timeouts and retries. */
        ares_process_fd(resolver->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
    }
    /* Every query c-ares holds is answered (ARES_EDESTRUCTION: TEMPFAIL). */
    ares_destroy(resolver->channel);
    resolver->has_channel = false;
    struct dns_query *query = NULL;
    (void)dns_take_submitted(resolver, &query);
    while (query != NULL) {
        struct dns_query *next = query->next_submit;
        dns_query_fail(query, DNS_STATUS_TEMPFAIL);
        query = next;
    }
    return NULL;
}
