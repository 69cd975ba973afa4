/*
 * core/workers.c - worker threads fed by one ck_ring per producer.
 *
 * Owns the job queues and the threads. Each producer (a reactor thread)
 * has its own queue and enqueues with ck_ring_enqueue_spmc: a producer
 * never waits for another. (A shared MPMC ring makes every producer spin
 * until the ones that reserved a slot before it have published; when one
 * of them is preempted in between, as happens when reactors and workers
 * share cores, the others burn whole time slices. The login storm of
 * 40,000 IMAP sessions spent 96% of toasterd's CPU there.) Workers take
 * jobs with the lock-free multi-consumer dequeue, each starting its scan
 * where it last found one so no queue starves, and sleep on an eventfd
 * (semaphore mode) only when every queue is empty. A producer writes the
 * eventfd only when some worker has said it is going to sleep, so a busy
 * pool costs no system call per job. Results go back through the job's own
 * done path (core/reactor.c), not through here.
 * Limits: worker_queue_entries jobs per producer; a full queue is refused.
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
#include "core/kv.h"
#include "core/log.h"

/* One producer's jobs, on cache lines of its own. */
struct workers_queue {
    _Alignas(64) struct ck_ring ring;
    struct ck_ring_buffer *slots;
};

struct workers {
    struct workers_queue *queues;
    uint32_t              queue_count;
    uint32_t              queue_entries; /* the bound per queue */
    int                   wake_fd;   /* eventfd, EFD_SEMAPHORE: one count per wake-up */
    uint32_t              sleepers;  /* workers that found every queue empty */
    uint32_t              thread_count;
    pthread_t            *threads;
    uint8_t               is_stopping; /* ck_pr: set once producers are gone */
    uint64_t              jobs_done; /* every worker adds: atomic increment */
};

/* A job from any queue, starting at *start; moves *start past the queue it
 * came from. NULL when all are empty. */
static struct job *
workers_take(struct workers *pool, uint32_t *start)
{
    for (uint32_t k = 0; k < pool->queue_count; k++) {
        uint32_t i = (*start + k) % pool->queue_count;
        struct workers_queue *q = &pool->queues[i];
        void *entry;
        if (ck_ring_dequeue_mpmc(&q->ring, q->slots, &entry)) {
            *start = (i + 1) % pool->queue_count;
            return entry;
        }
    }
    return NULL;
}

/* The next job: from a queue at once, or after sleeping until a producer
 * saw this worker announced as a sleeper. NULL once the pool stops and
 * every queue is empty. */
static struct job *
workers_next_job(struct workers *pool, uint32_t *start)
{
    for (;;) {
        struct job *job = workers_take(pool, start);
        if (job != NULL) {
            return job;
        }
        /* Announce the sleep, then look once more: a job enqueued before
         * the announcement is found here, one enqueued after it is
         * followed by an eventfd write (workers_submit). */
        ck_pr_inc_32(&pool->sleepers);
        ck_pr_fence_memory();
        job = workers_take(pool, start);
        if (job != NULL) {
            ck_pr_dec_32(&pool->sleepers);
            return job;
        }
        if (ck_pr_load_8(&pool->is_stopping)) {
            ck_pr_dec_32(&pool->sleepers);
            return NULL;
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
    uint32_t start = 0;
    kv_thread_may_wait(true); /* workers may wait on Redis, briefly (core/kv.h) */
    for (;;) {
        struct job *job = workers_next_job(pool, &start);
        if (job == NULL) {
            break;
        }
        job->run(job);
        /* One locked add per job: jobs block on disks and filters, so the
         * shared cache line costs nothing next to them. */
        ck_pr_inc_64(&pool->jobs_done);
    }
    return NULL;
}

static void
workers_free(struct workers *pool)
{
    if (pool->wake_fd >= 0) {
        (void)close(pool->wake_fd);
    }
    if (pool->queues != NULL) {
        for (uint32_t i = 0; i < pool->queue_count; i++) {
            free(pool->queues[i].slots);
        }
    }
    free(pool->queues);
    free(pool->threads);
    free(pool);
}

int
workers_create(uint32_t thread_count, uint32_t producer_count, uint32_t queue_entries,
               struct workers **pool_out)
{
    ASSERT(thread_count > 0);
    ASSERT(producer_count > 0);
    ASSERT(queue_entries >= 4 && (queue_entries & (queue_entries - 1)) == 0);
    struct workers *pool = calloc(1, sizeof(*pool));
    if (pool == NULL) {
        return -ENOMEM;
    }
    pool->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_SEMAPHORE);
    int rc = pool->wake_fd < 0 ? -errno : 0;
    pool->queue_entries = queue_entries;
    pool->queues = aligned_alloc(_Alignof(struct workers_queue),
                                 producer_count * sizeof(*pool->queues));
    pool->threads = calloc(thread_count, sizeof(*pool->threads));
    if (pool->queues != NULL) {
        memset(pool->queues, 0, producer_count * sizeof(*pool->queues));
        pool->queue_count = producer_count;
        /* A ring holds size - 1: twice the bound leaves room. */
        for (uint32_t i = 0; i < producer_count; i++) {
            pool->queues[i].slots = calloc(queue_entries * 2u, sizeof(*pool->queues[i].slots));
            if (pool->queues[i].slots == NULL) {
                rc = rc != 0 ? rc : -ENOMEM;
                break;
            }
            ck_ring_init(&pool->queues[i].ring, queue_entries * 2u);
        }
    }
    if (rc == 0 && (pool->queues == NULL || pool->threads == NULL)) {
        rc = -ENOMEM;
    }
    if (rc != 0) {
        workers_free(pool);
        return rc;
    }
    for (uint32_t i = 0; i < thread_count; i++) {
        rc = pthread_create(&pool->threads[i], NULL, workers_main, pool);
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
workers_submit(struct workers *pool, uint32_t producer, struct job *job)
{
    ASSERT(job != NULL && job->run != NULL);
    ASSERT(producer < pool->queue_count);
    ASSERT(!ck_pr_load_8(&pool->is_stopping));
    struct workers_queue *q = &pool->queues[producer];
    if (ck_ring_size(&q->ring) >= pool->queue_entries) {
        return false;
    }
    bool is_queued = ck_ring_enqueue_spmc(&q->ring, q->slots, job);
    ASSERT(is_queued); /* the ring has room for twice the bound */
    ck_pr_fence_memory();
    if (ck_pr_load_32(&pool->sleepers) > 0) {
        workers_wake_one(pool);
    }
    return true;
}

uint64_t
workers_queue_depth(const struct workers *pool)
{
    /* ck_ring_size reads both ends with ck_pr loads. */
    uint64_t depth = 0;
    for (uint32_t i = 0; i < pool->queue_count; i++) {
        depth += ck_ring_size(&pool->queues[i].ring);
    }
    return depth;
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
    /* The producers are gone: workers finish what is queued, then each
     * finds every queue empty and the flag set. A worker asleep already
     * gets a wake-up; one about to sleep sees the flag first. */
    ck_pr_store_8(&pool->is_stopping, 1);
    ck_pr_fence_memory();
    for (uint32_t i = 0; i < pool->thread_count; i++) {
        workers_wake_one(pool);
    }
    for (uint32_t i = 0; i < pool->thread_count; i++) {
        (void)pthread_join(pool->threads[i], NULL);
    }
    workers_free(pool);
    *pool_ptr = NULL;
}
