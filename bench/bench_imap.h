/*
 * bench/bench_imap.h - toaster-bench imap and imap-idle: IMAP sessions on
 * io_uring.
 *
 * One event loop per --threads, each with its own io_uring, connections
 * and counters; the calling thread only watches, prints the progress line
 * and the summary, and (imap-idle) delivers the messages over SMTP.
 */
#ifndef TOASTER_BENCH_IMAP_H
#define TOASTER_BENCH_IMAP_H

#include "bench/bench_imap_options.h"

/* Run the benchmark described by options. command is the whole command
 * line, shell-quoted, for the JSON summary. Returns an exit status (the
 * BENCH_EXIT_* of bench/bench_smtp.h): OK if no error was counted and
 * some work was done, FAILED otherwise, USAGE when the options do not fit
 * this machine (too few file descriptors, an unreadable users file). */
int bench_imap_run(const struct bench_imap_options *options, const char *command);

/* toaster-bench imap|imap-idle ARGS...: parse, run, report. argv[0] is
 * "imap" or "imap-idle". */
int bench_imap_main(int argc, char **argv, const char *command);

#endif
