/*
 * tests/unit/test_bench_capture.h - runs a toaster-bench command line
 * parser on an argv of the test's own with stdout and stderr captured, for
 * the test_bench_* programs (smtp and imap options alike).
 */
#ifndef TOASTER_TESTS_BENCH_CAPTURE_H
#define TOASTER_TESTS_BENCH_CAPTURE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

#define TEST_BENCH_ARGS_MAX 40
#define TEST_BENCH_CAPTURE_BYTES 8192

/* What the last test_bench_parse() wrote to stderr and stdout. */
extern char test_bench_captured_err[TEST_BENCH_CAPTURE_BYTES];
extern char test_bench_captured_out[TEST_BENCH_CAPTURE_BYTES];

/* A parser under test: bench_smtp_options_parse() or
 * bench_imap_options_parse() behind an adapter taking void *. */
typedef int test_bench_parse_fn(int argc, char **argv, void *options);

/* fn on argv[0..argc) (argv[argc] NULL), output captured. Returns fn's
 * result. */
int test_bench_run(test_bench_parse_fn *fn, void *options, int argc, char **argv);

/* fn on argv0 followed by the NULL-terminated arguments in args (at most
 * TEST_BENCH_ARGS_MAX; more abort), output captured. Returns fn's result. */
int test_bench_parse(test_bench_parse_fn *fn, void *options, const char *argv0, va_list args);

/* A usage error: -EINVAL, nothing on stdout, and exactly one line on
 * stderr that starts with prefix and names option. Says why not on
 * stderr. */
bool test_bench_is_usage_error(int rc, const char *prefix, const char *option);

/* 0 with nothing on stdout or stderr. Says why not on stderr. */
bool test_bench_is_ok(int rc);

#endif
