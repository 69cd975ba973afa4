/*
 * bench/bench_clock.h - the two clocks the one-core speed tools read
 * together (dkim_speed, sieve_speed): this thread's CPU time, which other
 * load on a shared machine does not inflate, and the wall clock.
 */
#ifndef TOASTER_BENCH_BENCH_CLOCK_H
#define TOASTER_BENCH_BENCH_CLOCK_H

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

struct bench_clock {
    struct timespec cpu;
    struct timespec wall;
};

/* Both clocks now; a clock that cannot be read ends the tool (exit 2). */
static inline void
bench_clock_now(struct bench_clock *clock_out)
{
    if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &clock_out->cpu) != 0 ||
        clock_gettime(CLOCK_MONOTONIC, &clock_out->wall) != 0) {
        perror("clock_gettime");
        exit(2);
    }
}

static inline double
bench_seconds_between(const struct timespec *start, const struct timespec *end)
{
    return (double)(end->tv_sec - start->tv_sec) + (double)(end->tv_nsec - start->tv_nsec) / 1e9;
}

#endif
