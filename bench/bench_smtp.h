/*
 * bench/bench_smtp.h - toaster-bench smtp: SMTP sessions on io_uring.
 *
 * One event loop per --threads, each with its own io_uring, connections
 * and counters; the calling thread only watches, prints the progress line
 * and the summary.
 */
#ifndef TOASTER_BENCH_SMTP_H
#define TOASTER_BENCH_SMTP_H

#include "bench/bench_smtp_options.h"

/* Exit statuses of toaster-bench. */
#define BENCH_EXIT_OK 0
#define BENCH_EXIT_FAILED 1
#define BENCH_EXIT_USAGE 2

/* Run the benchmark described by options. command is the whole command
 * line, shell-quoted, for the JSON summary. Returns an exit status:
 * BENCH_EXIT_OK if every message got 250 and no error was counted,
 * BENCH_EXIT_FAILED otherwise (or when the run could not start),
 * BENCH_EXIT_USAGE when the options do not fit this machine (a message
 * size too small for its headers, too few file descriptors). */
int bench_smtp_run(const struct bench_smtp_options *options, const char *command);

/* toaster-bench smtp ARGS...: parse, run, report. argv[0] is "smtp". */
int bench_smtp_main(int argc, char **argv, const char *command);

#endif
