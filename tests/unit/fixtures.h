/*
 * tests/unit/fixtures.h - read a test fixture file under tests/unit/fixtures/
 * into a static buffer. The directory is $TOASTER_FIXTURES if set, else it
 * is found next to the test's source (__FILE__ is relative to the build
 * directory, where meson test runs, or absolute).
 */
#ifndef TOASTER_TESTS_UNIT_FIXTURES_H
#define TOASTER_TESTS_UNIT_FIXTURES_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FIXTURE_BYTES_MAX 65536

/* Returns the number of bytes read into buf (NUL-terminated), or exits 2
 * when the file cannot be read: a missing fixture is a broken test. */
static inline size_t
fixture_read(const char *source_file, const char *rel_path, char *buf, size_t buf_bytes)
{
    char path[4096];
    const char *dir = getenv("TOASTER_FIXTURES");
    if (dir != NULL) {
        snprintf(path, sizeof(path), "%s/%s", dir, rel_path);
    } else {
        const char *slash = strrchr(source_file, '/');
        int dir_len = slash != NULL ? (int)(slash - source_file) : 1;
        snprintf(path, sizeof(path), "%.*s/fixtures/%s", dir_len,
                 slash != NULL ? source_file : ".", rel_path);
    }
    FILE *f = fopen(path, "rb");
    if (f == NULL && dir == NULL && source_file[0] != '/') {
        /* Not run from the build directory: __FILE__ is relative to it,
         * and the test binary lives in <build>/tests/. */
        char exe[2048];
        ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
        if (n > 0) {
            exe[n] = '\0';
            char *slash = strrchr(exe, '/');
            if (slash != NULL) {
                *slash = '\0';
                char again[8192];
                if ((size_t)snprintf(again, sizeof(again), "%s/../%s", exe, path) <
                    sizeof(again)) {
                    f = fopen(again, "rb");
                }
            }
        }
    }
    if (f == NULL) {
        perror(path);
        exit(2);
    }
    size_t n = fread(buf, 1, buf_bytes - 1, f);
    if (ferror(f) || !feof(f)) {
        fprintf(stderr, "%s: read error or larger than %zu bytes\n", path, buf_bytes - 1);
        exit(2);
    }
    (void)fclose(f);
    buf[n] = '\0';
    return n;
}

#define FIXTURE_READ(rel_path, buf) fixture_read(__FILE__, (rel_path), (buf), sizeof(buf))

#endif
