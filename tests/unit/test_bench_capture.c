/*
 * tests/unit/test_bench_capture.c - runs a toaster-bench command line
 * parser with stdout and stderr captured in temporary files, for
 * test_bench_options.c and test_bench_imap.c.
 *
 * Not a test program of its own: linked into each that parses options.
 */
#include "test_bench_capture.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

char test_bench_captured_err[TEST_BENCH_CAPTURE_BYTES];
char test_bench_captured_out[TEST_BENCH_CAPTURE_BYTES];

static void capture_begin(int fd, FILE *stream, FILE **file_out, int *saved_out);
static void capture_end(int fd, FILE *stream, FILE *file, int saved, char *out, size_t out_bytes);

int
test_bench_run(test_bench_parse_fn *fn, void *options, int argc, char **argv)
{
    FILE *err_file;
    FILE *out_file;
    int err_saved;
    int out_saved;
    capture_begin(STDERR_FILENO, stderr, &err_file, &err_saved);
    capture_begin(STDOUT_FILENO, stdout, &out_file, &out_saved);
    int rc = fn(argc, argv, options);
    capture_end(STDOUT_FILENO, stdout, out_file, out_saved, test_bench_captured_out,
                sizeof(test_bench_captured_out));
    capture_end(STDERR_FILENO, stderr, err_file, err_saved, test_bench_captured_err,
                sizeof(test_bench_captured_err));
    return rc;
}

int
test_bench_parse(test_bench_parse_fn *fn, void *options, const char *argv0, va_list args)
{
    char *argv[TEST_BENCH_ARGS_MAX + 2];
    int argc = 0;

    argv[argc++] = (char *)argv0;
    for (;;) {
        char *arg = va_arg(args, char *);
        if (arg == NULL) {
            break;
        }
        if (argc > TEST_BENCH_ARGS_MAX) {
            abort();
        }
        argv[argc++] = arg;
    }
    argv[argc] = NULL;
    return test_bench_run(fn, options, argc, argv);
}

bool
test_bench_is_usage_error(int rc, const char *prefix, const char *option)
{
    const char *err = test_bench_captured_err;
    size_t n = strlen(err);
    bool ok = rc == -EINVAL && test_bench_captured_out[0] == '\0' && n > 0 &&
              strchr(err, '\n') == err + n - 1 && strncmp(err, prefix, strlen(prefix)) == 0 &&
              strstr(err, option) != NULL;
    if (!ok) {
        (void)fprintf(stderr, "  rc %d, stderr \"%s\", want a usage error naming %s\n", rc, err,
                      option);
    }
    return ok;
}

bool
test_bench_is_ok(int rc)
{
    bool ok = rc == 0 && test_bench_captured_err[0] == '\0' && test_bench_captured_out[0] == '\0';
    if (!ok) {
        (void)fprintf(stderr, "  rc %d, stderr \"%s\"\n", rc, test_bench_captured_err);
    }
    return ok;
}

static void
capture_begin(int fd, FILE *stream, FILE **file_out, int *saved_out)
{
    (void)fflush(stream);
    *file_out = tmpfile();
    *saved_out = dup(fd);
    if (*file_out == NULL || *saved_out < 0 || dup2(fileno(*file_out), fd) < 0) {
        perror("capture");
        abort();
    }
}

static void
capture_end(int fd, FILE *stream, FILE *file, int saved, char *out, size_t out_bytes)
{
    (void)fflush(stream);
    if (dup2(saved, fd) < 0 || close(saved) < 0) {
        perror("capture");
        abort();
    }
    rewind(file);
    size_t n = fread(out, 1, out_bytes - 1, file);
    out[n] = '\0';
    (void)fclose(file);
}
