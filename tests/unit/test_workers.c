/*
 * tests/unit/test_workers.c - the worker pool's hand-off: every job runs
 * exactly once whatever the mix of producers and sleeping workers (a lost
 * wake-up would leave a job waiting forever, which the bounded waits here
 * turn into a failure), a pool that went idle wakes for the next job, a
 * full queue says so instead of blocking, and one producer's full queue
 * does not refuse another's.
 */
#include <ck_pr.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/workers.h"
#include "tests/unit/unit.h"

#define PRODUCERS 3
#define JOBS_PER_PRODUCER 20000

struct counted_job {
    struct job job;
    uint32_t   runs; /* atomic */
};

static uint64_t jobs_run;

static void
counted_run(struct job *job)
{
    struct counted_job *cj = (struct counted_job *)job;
    ck_pr_inc_32(&cj->runs);
    ck_pr_inc_64(&jobs_run);
}

struct producer {
    struct workers     *pool;
    uint32_t            index;
    struct counted_job *jobs;
    size_t              count;
    uint64_t            refusals;
};

static void *
producer_main(void *arg)
{
    struct producer *p = arg;
    for (size_t i = 0; i < p->count; i++) {
        p->jobs[i].job.run = counted_run;
        while (!workers_submit(p->pool, p->index, &p->jobs[i].job)) {
            p->refusals++; /* full: let the workers catch up */
            usleep(100);
        }
        if (i % 1000 == 0) {
            usleep(1000); /* let the workers run dry and sleep now and then */
        }
    }
    return NULL;
}

/* Wait up to seconds for jobs_run to reach want. */
static bool
wait_for_runs(uint64_t want, int seconds)
{
    for (int i = 0; i < seconds * 1000; i++) {
        if (ck_pr_load_64(&jobs_run) >= want) {
            return true;
        }
        usleep(1000);
    }
    return ck_pr_load_64(&jobs_run) >= want;
}

static void
test_every_job_once(void)
{
    struct workers *pool = NULL;
    CHECK(workers_create(2, PRODUCERS, 1024, &pool) == 0);
    jobs_run = 0;
    struct counted_job *jobs = calloc(PRODUCERS * JOBS_PER_PRODUCER, sizeof(*jobs));
    CHECK(jobs != NULL);
    struct producer producers[PRODUCERS];
    pthread_t threads[PRODUCERS];
    for (int i = 0; i < PRODUCERS; i++) {
        producers[i] = (struct producer){ .pool = pool,
                                          .index = (uint32_t)i,
                                          .jobs = jobs + (size_t)i * JOBS_PER_PRODUCER,
                                          .count = JOBS_PER_PRODUCER };
        CHECK(pthread_create(&threads[i], NULL, producer_main, &producers[i]) == 0);
    }
    for (int i = 0; i < PRODUCERS; i++) {
        (void)pthread_join(threads[i], NULL);
    }
    CHECK(wait_for_runs(PRODUCERS * JOBS_PER_PRODUCER, 30));
    size_t wrong = 0;
    for (size_t i = 0; i < PRODUCERS * JOBS_PER_PRODUCER; i++) {
        wrong += ck_pr_load_32(&jobs[i].runs) != 1;
    }
    CHECK(wrong == 0);
    CHECK(workers_jobs_done(pool) == PRODUCERS * JOBS_PER_PRODUCER);
    CHECK(workers_queue_depth(pool) == 0);

    /* Idle long enough that both workers sleep; one more job must run. */
    usleep(50000);
    struct counted_job late = { .job.run = counted_run };
    CHECK(workers_submit(pool, PRODUCERS - 1, &late.job));
    CHECK(wait_for_runs(PRODUCERS * JOBS_PER_PRODUCER + 1, 10));
    CHECK(ck_pr_load_32(&late.runs) == 1);
    workers_destroy(&pool);
    CHECK(pool == NULL);
    free(jobs);
}

/* A job that holds its worker until released. */
static uint32_t gate_open;

static void
gated_run(struct job *job)
{
    (void)job;
    while (!ck_pr_load_32(&gate_open)) {
        usleep(100);
    }
    ck_pr_inc_64(&jobs_run);
}

static void
test_full_queue_refuses(void)
{
    struct workers *pool = NULL;
    CHECK(workers_create(1, 2, 16, &pool) == 0);
    jobs_run = 0;
    gate_open = 0;
    static struct counted_job jobs[64];
    size_t accepted = 0;
    for (size_t i = 0; i < 64; i++) {
        jobs[i].job.run = gated_run;
        if (workers_submit(pool, 0, &jobs[i].job)) {
            accepted++;
        }
    }
    /* 16 queued plus at most the one the worker took: the rest refused. */
    CHECK(accepted >= 16 && accepted <= 17);
    CHECK(workers_queue_depth(pool) == 16);
    /* The other producer's queue is its own. */
    static struct counted_job other[16];
    size_t other_accepted = 0;
    for (size_t i = 0; i < 16; i++) {
        other[i].job.run = gated_run;
        other_accepted += workers_submit(pool, 1, &other[i].job);
    }
    CHECK(other_accepted == 16);
    CHECK(!workers_submit(pool, 1, &jobs[63].job));
    ck_pr_store_32(&gate_open, 1);
    CHECK(wait_for_runs(accepted + other_accepted, 10));
    workers_destroy(&pool);
}

int
main(void)
{
    test_every_job_once();
    test_full_queue_refuses();
    UNIT_DONE();
}
