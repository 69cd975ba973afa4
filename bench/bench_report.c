/*
 * bench/bench_report.c - the pieces of report writing toaster-bench smtp
 * and imap share.
 *
 * Owns nothing: writes to the caller's stream. The JSON it writes is read
 * by bench/compare_report.py and the bench scripts, so every field name and
 * format stays as it is.
 */
#include "bench/bench_report.h"

#include <errno.h>
#include <inttypes.h>

void
bench_report_latency(FILE *out, uint64_t us)
{
    if (us < 1000) {
        (void)fprintf(out, "%" PRIu64 " us", us);
    } else if (us < 1000000) {
        (void)fprintf(out, "%.2f ms", (double)us / 1e3);
    } else {
        (void)fprintf(out, "%.3f s", (double)us / 1e6);
    }
}

void
bench_report_json_string(FILE *out, const char *s)
{
    (void)fputc('"', out);
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        if (*p == '"' || *p == '\\') {
            (void)fprintf(out, "\\%c", *p);
        } else if (*p < 0x20) {
            (void)fprintf(out, "\\u%04x", *p);
        } else {
            (void)fputc(*p, out);
        }
    }
    (void)fputc('"', out);
}

void
bench_report_json_target(FILE *out, uint64_t connects, const char *server, uint32_t connections,
                         uint32_t threads)
{
    (void)fprintf(out, "  \"connects\": %" PRIu64 ",\n", connects);
    (void)fprintf(out, "  \"server\": ");
    bench_report_json_string(out, server);
    (void)fprintf(out, ",\n  \"connections\": %" PRIu32 ",\n", connections);
    (void)fprintf(out, "  \"threads\": %" PRIu32 ",\n", threads);
}

int
bench_report_json_end(FILE *out, const char *command)
{
    (void)fprintf(out, "  \"command\": ");
    bench_report_json_string(out, command);
    (void)fprintf(out, "\n}\n");

    int rc = ferror(out) ? -EIO : 0;
    if (fclose(out) != 0 && rc == 0) {
        rc = -errno;
    }
    return rc;
}
