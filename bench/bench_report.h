/*
 * bench/bench_report.h - the pieces of report writing toaster-bench smtp
 * and imap share: a latency in human units, JSON strings, the JSON fields
 * that say what was driven and how, and closing a JSON file.
 *
 * Each command keeps its own lines and fields (bench_smtp_report,
 * bench_imap_report); these calls only write what both write the same way.
 * Runs on the main thread after the workers are joined.
 */
#ifndef TOASTER_BENCH_REPORT_H
#define TOASTER_BENCH_REPORT_H

#include <stdint.h>
#include <stdio.h>

/* A latency in microseconds as "750 us", "1.25 ms" or "2.500 s". */
void bench_report_latency(FILE *out, uint64_t us);

/* s as a JSON string: quotes and backslashes escaped, control bytes as
 * \u00XX, other bytes as they are. */
void bench_report_json_string(FILE *out, const char *s);

/* The lines "connects", "server", "connections" and "threads" of a JSON
 * summary, each ending ",\n". */
void bench_report_json_target(FILE *out, uint64_t connects, const char *server,
                              uint32_t connections, uint32_t threads);

/* The last line, "command", the closing brace, and fclose(out). Returns 0,
 * or -EIO / -errno if anything written to out was lost. */
int bench_report_json_end(FILE *out, const char *command);

#endif
