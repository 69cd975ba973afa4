/*
 * core/job.h - a unit of work that leaves a reactor for the worker pool and
 * comes back.
 *
 * A job is embedded in a larger struct owned by whoever made it. The reactor
 * fills in where it must return (reactor, connection slot and generation);
 * run() executes on a worker thread and may block; done() executes on the
 * reactor that submitted it, with the connection if it still exists or NULL
 * if it went away meanwhile. A successful submit transfers the job to the
 * pool until done() is called.
 */
#ifndef TOASTER_CORE_JOB_H
#define TOASTER_CORE_JOB_H

#include <ck_stack.h>
#include <stdint.h>

struct reactor;
struct conn;

struct job {
    void (*run)(struct job *job);
    void (*done)(struct job *job, struct conn *conn);
    struct reactor *reactor; /* set by reactor_job_submit() */
    uint32_t        conn_slot;
    uint32_t        conn_generation;
    ck_stack_entry_t done_link; /* on the reactor's done stack once run() is over */
};

#endif
