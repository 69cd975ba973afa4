/*
 * core/workers.h - the worker pool: threads that take jobs from lock-free
 * rings (Concurrency Kit ck_ring, one per producer, many consumers) and run
 * them where blocking is fine.
 */
#ifndef TOASTER_CORE_WORKERS_H
#define TOASTER_CORE_WORKERS_H

#include <stdbool.h>
#include <stdint.h>

#include "core/job.h"

struct workers;

/* Start thread_count threads around producer_count queues of queue_entries
 * each (a power of two). Returns 0 and sets *pool_out, or -errno. */
int workers_create(uint32_t thread_count, uint32_t producer_count, uint32_t queue_entries,
                   struct workers **pool_out);

/* Queue a job on producer's queue (producer < producer_count; one thread
 * at a time per producer, e.g. reactor i uses queue i). Returns true, or
 * false when that queue is full (backpressure: the caller retries later or
 * answers with a temporary failure). */
bool workers_submit(struct workers *pool, uint32_t producer, struct job *job);

/* For the operator (any thread, approximate while jobs move): jobs queued
 * and not yet taken by a worker, jobs finished since start, threads. */
uint64_t workers_queue_depth(const struct workers *pool);
uint64_t workers_jobs_done(const struct workers *pool);
uint32_t workers_thread_count(const struct workers *pool);

/* Once no producer submits any more: let the workers finish every queued
 * job, then join them and free the pool. */
void workers_destroy(struct workers **pool);

#endif
