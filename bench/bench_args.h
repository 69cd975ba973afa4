/*
 * bench/bench_args.h - the value parsers the command lines of toaster-bench
 * smtp and imap share: numbers, IP literals with and without a port,
 * comma-separated lists (--source and the mixes) and the usage error line.
 *
 * Pure functions on strings, no allocation; each returns 0 (or a count)
 * or -EINVAL and leaves the message to the caller, except
 * bench_args_usage_error(), which is the message.
 */
#ifndef TOASTER_BENCH_ARGS_H
#define TOASTER_BENCH_ARGS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* A decimal number in min..max, digits only (no sign, no space). Returns
 * 0 and sets *out, or -EINVAL. */
int bench_args_u64(const char *text, uint64_t min, uint64_t max, uint64_t *out);

/* A finite number in min..max as strtod reads it, nothing after it.
 * Returns 0 and sets *out, or -EINVAL. */
int bench_args_double(const char *text, double min, double max, double *out);

/* An IPv4 or IPv6 literal, port 0. Returns 0 and fills *out and
 * *bytes_out, or -EINVAL. */
int bench_args_address(const char *text, struct sockaddr_storage *out, socklen_t *bytes_out);

/* "1.2.3.4:25" or "[::1]:25". Only literals: a benchmark must not depend
 * on DNS, and must connect exactly where it was told. Returns 0 and fills
 * *out, *bytes_out and text_out (the address as "host:port" or
 * "[host]:port", cut to text_bytes), or -EINVAL. */
int bench_args_host_port(const char *text, struct sockaddr_storage *out, socklen_t *bytes_out,
                         char *text_out, size_t text_bytes);

/* The next item of a comma-separated list at *cursor, copied into
 * item[0..item_bytes) with its NUL. Returns 1 and advances *cursor, 0 at
 * the end of the list, or -EINVAL for an empty item, one of item_bytes or
 * more, or a trailing comma. Each call moves at least one byte on, so a
 * loop over a list ends within strlen(list) rounds. */
int bench_args_list_next(const char **cursor, char *item, size_t item_bytes);

/* --source: IP literals (IPv6 with or without brackets), comma-separated,
 * all of family, at most sources_max. Returns 0 and fills sources,
 * *count_out and *bytes_out, or -EINVAL (also for an empty list). */
int bench_args_sources(const char *text, sa_family_t family, struct sockaddr_storage *sources,
                       uint32_t sources_max, uint32_t *count_out, socklen_t *bytes_out);

/* Print "toaster-bench COMMAND: OPTION VALUE: WHY" (or, with value NULL,
 * "toaster-bench COMMAND: OPTION WHY") to stderr. Returns -EINVAL. */
int bench_args_usage_error(const char *command, const char *option, const char *value,
                           const char *why);

#endif
