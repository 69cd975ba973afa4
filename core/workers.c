/*
 * core/workers.c - worker threads fed by a ck_ring.
 *
 * Owns the job ring and the threads. Producers (reactor threads) enqueue
 * with ck_ring_enqueue_mpmc; a worker takes jobs as long as there are any
 * and sleeps on an eventfd (semaphore mode) only when the ring is empty.
 * A producer writes the eventfd only when some worker has said it is going
 * to sleep, so a busy pool costs no system call per job. Results go back
 * through the job's own done path (core/reactor.c), not through here.
 * Limits: the ring size (worker_queue_entries); a full ring is refused.
 */
#include "core/workers.h"

#include <ck_pr.h>
#include <ck_ring.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "core/assertions.h"
#include "core/log.h"

struct workers {
    struct ck_ring         ring;
    struct ck_ring_buffer *slots;
    int                    wake_fd;   /* eventfd, EFD_SEMAPHORE: one count per wake-up */
    uint32_t               sleepers;  /* workers that found the ring empty */
    uint32_t               thread_count;
    pthread_t             *threads;
    bool                   is_stopping;
    uint64_t               jobs_done; /* every worker adds: atomic increment */
};

/* Sentinel job: one per thread at shutdown. */
static struct job workers_stop_job;

/* The next job: from the ring at once, or after sleeping until a producer
 * saw this worker announced as a sleeper. */
static struct job *
workers_next_job(struct workers *pool)
{
    void *entry = NULL;
    for (;;) {
        if (ck_ring_dequeue_mpmc(&pool->ring, pool->slots, &entry)) {
            return entry;
        }
        /* Announce the sleep, then look once more: a job enqueued before
         * the announcement is found here, one enqueued after it is
         * followed by an eventfd write (workers_submit). */
        ck_pr_inc_32(&pool->sleepers);
        ck_pr_fence_memory();
        if (ck_ring_dequeue_mpmc(&pool->ring, pool->slots, &entry)) {
            ck_pr_dec_32(&pool->sleepers);
            return entry;
        }
        uint64_t count;
        ssize_t n;
        do {
            n = read(pool->wake_fd, &count, sizeof(count));
        } while (n < 0 && errno == EINTR);
        ASSERT(n == (ssize_t)sizeof(count));
        ASSERT(count == 1);
        ck_pr_dec_32(&pool->sleepers);
        /* A wake-up may be spare (another worker took the job first):
         * the loop simply looks again. */
    }
}

static void *
workers_main(void *arg)
{
    struct workers *pool = arg;
    for (;;) {
        struct job *job = workers_next_job(pool);
        if (job == &workers_stop_job) {
            break;
        }
        job->run(job);
        /* One locked add per job: jobs block on disks and filters, so the
         * shared cache line costs nothing next to them. */
        ck_pr_inc_64(&pool->jobs_done);
    }
    return NULL;
}

int
workers_create(uint32_t thread_count, uint32_t queue_entries, struct workers **pool_out)
{
    ASSERT(thread_count > 0);
    ASSERT(queue_entries >= 4 && (queue_entries & (queue_entries - 1)) == 0);
    struct workers *pool = calloc(1, sizeof(*pool));
    if (pool == NULL) {
        return -ENOMEM;
    }
    /* Room for the stop sentinels on top of the configured queue. */
    uint32_t ring_size = queue_entries * 2;
    pool->slots = calloc(ring_size, sizeof(*pool->slots));
    pool->threads = calloc(thread_count, sizeof(*pool->threads));
    pool->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_SEMAPHORE);
    if (pool->slots == NULL || pool->threads == NULL || pool->wake_fd < 0) {
        int rc = pool->wake_fd < 0 ? -errno : -ENOMEM;
        if (pool->wake_fd >= 0) {
            (void)close(pool->wake_fd);
        }
        free(pool->slots);
        free(pool->threads);
        free(pool);
        return rc;
    }
    ck_ring_init(&pool->ring, ring_size);
    for (uint32_t i = 0; i < thread_count; i++) {
        int rc = pthread_create(&pool->threads[i], NULL, workers_main, pool);
        if (rc != 0) {
            log_error("cannot start worker thread: %s", strerror(rc));
            pool->thread_count = i;
            workers_destroy(&pool);
            return -rc;
        }
        pool->thread_count = i + 1;
    }
    *pool_out = pool;
    return 0;
}

static void
workers_wake_one(struct workers *pool)
{
    uint64_t one = 1;
    ssize_t n;
    do {
        n = write(pool->wake_fd, &one, sizeof(one));
    } while (n < 0 && errno == EINTR);
    /* An eventfd write only fails on counter overflow (2^64 - 2 jobs). */
    ASSERT(n == (ssize_t)sizeof(one));
}

bool
workers_submit(struct workers *pool, struct job *job)
{
    ASSERT(job != NULL && job->run != NULL);
    ASSERT(!pool->is_stopping);
    /* Keep half the ring for sentinels: the configured size is the bound. */
    if (ck_ring_size(&pool->ring) >= ck_ring_capacity(&pool->ring) / 2) {
        return false;
    }
    if (!ck_ring_enqueue_mpmc(&pool->ring, pool->slots, job)) {
        return false;
    }
    ck_pr_fence_memory();
    if (ck_pr_load_32(&pool->sleepers) > 0) {
        workers_wake_one(pool);
    }
    return true;
}

uint64_t
workers_queue_depth(const struct workers *pool)
{
    /* ck_ring_size reads both ends with ck_pr loads; the stop sentinels
     * only exist after the control thread has gone. */
    return ck_ring_size(&pool->ring);
}

uint64_t
workers_jobs_done(const struct workers *pool)
{
    return ck_pr_load_64((uint64_t *)&pool->jobs_done);
}

uint32_t
workers_thread_count(const struct workers *pool)
{
    return pool->thread_count;
}

void
workers_destroy(struct workers **pool_ptr)
{
    struct workers *pool = *pool_ptr;
    if (pool == NULL) {
        return;
    }
    pool->is_stopping = true;
    for (uint32_t i = 0; i < pool->thread_count; i++) {
        while (!ck_ring_enqueue_mpmc(&pool->ring, pool->slots, &workers_stop_job)) {
            usleep(1000);
        }
        workers_wake_one(pool);
    }
    for (uint32_t i = 0; i < pool->thread_count; i++) {
        (void)pthread_join(pool->threads[i], NULL);
    }
    (void)close(pool->wake_fd);
    free(pool->slots);
    free(pool->threads);
    free(pool);
    *pool_ptr = NULL;
}
