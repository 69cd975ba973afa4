/*
 * tests/tools/clamav_tool.c - the ClamAV filter from the command line: load
 * an engine as the daemon does, report what it cost, scan files.
 *
 *   clamav_tool [--db DIR] [--system-db DIR] [--data-dir DIR] FILE...
 *
 * Without --db the choice is the daemon's: the system directory
 * (/var/lib/clamav) if it holds a database, else the shipped one written to
 * <data-dir>/clamav (default: a new temporary directory). Prints one line
 * for the engine (signatures, load time, resident memory before and after)
 * and one per file ("FILE: clean|virus NAME|error REASON"). Exit status: 0
 * all clean, 1 a detection, 2 an error, or no engine (the first load failed,
 * or took over 10 minutes).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "filters/clamav_engine.h"
#include "filters/clamav_scan.h"

int main(int argc, char **argv);

#define WAIT_MS_MAX (600u * 1000u)

static long
rss_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (f == NULL) {
        return -1;
    }
    char line[256];
    long kib = -1;
    while (fgets(line, sizeof(line), f) != NULL) {
        if (sscanf(line, "VmRSS: %ld kB", &kib) == 1) {
            break;
        }
    }
    fclose(f);
    return kib;
}

static uint64_t
now_ms(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (uint64_t)now.tv_sec * 1000u + (uint64_t)now.tv_nsec / 1000000u;
}

/* Until the first load succeeded or failed. */
static void
wait_first_load(struct clamav *av, struct clamav_status *status_out)
{
    uint64_t start_ms = now_ms();
    for (;;) {
        clamav_status_get(av, status_out);
        if (status_out->generation > 0 || status_out->load_fail_count > 0 ||
            now_ms() - start_ms > WAIT_MS_MAX) {
            return;
        }
        struct timespec pause = {.tv_sec = 0, .tv_nsec = 5 * 1000000L};
        nanosleep(&pause, NULL);
    }
}

static void
usage(void)
{
    fprintf(stderr, "usage: clamav_tool [--db DIR] [--system-db DIR] [--data-dir DIR] FILE...\n");
    exit(2);
}

int
main(int argc, char **argv)
{
    log_setup(LOG_LEVEL_WARNING, false);
    struct clamav_config config;
    clamav_config_defaults(&config);
    config.is_watching = false;
    char temp_dir[] = "/tmp/clamav-tool-XXXXXX";
    int arg = 1;
    for (; arg < argc && strncmp(argv[arg], "--", 2) == 0; arg += 2) {
        if (arg + 1 >= argc) {
            usage();
        }
        if (strcmp(argv[arg], "--db") == 0) {
            config.db_dir = argv[arg + 1];
        } else if (strcmp(argv[arg], "--system-db") == 0) {
            config.system_db_dir = argv[arg + 1];
        } else if (strcmp(argv[arg], "--data-dir") == 0) {
            config.data_dir = argv[arg + 1];
        } else {
            usage();
        }
    }
    if (config.data_dir == NULL) {
        if (mkdtemp(temp_dir) == NULL) {
            perror("mkdtemp");
            return 2;
        }
        config.data_dir = temp_dir;
    }

    long rss_start_kib = rss_kib();
    /* First a handle whose load fails at once: what libclamav itself costs
     * (cl_init: OpenSSL, libxml2, its Rust parts), apart from an engine. */
    struct clamav_config empty = config;
    empty.db_dir = "/nonexistent/clamav-tool";
    struct clamav *av = NULL;
    struct clamav_status status;
    if (clamav_create(&empty, &av) != 0) {
        return 2;
    }
    wait_first_load(av, &status);
    clamav_destroy(&av);
    long rss_init_kib = rss_kib();

    uint64_t start_ms = now_ms();
    if (clamav_create(&config, &av) != 0) {
        return 2;
    }
    wait_first_load(av, &status);
    if (status.generation == 0) {
        fprintf(stderr, "no engine: %s\n", status.last_error_text);
        clamav_destroy(&av);
        return 2;
    }
    printf("engine: %u signatures from %s%s, loaded in %llu ms (%llu ms from start), "
           "resident memory %ld KiB at start, %ld KiB after cl_init, %ld KiB with the engine\n",
           status.signature_count, status.db_dir, status.is_shipped ? " (shipped)" : "",
           (unsigned long long)status.load_ms, (unsigned long long)(now_ms() - start_ms),
           rss_start_kib, rss_init_kib, rss_kib());

    int exit_code = 0;
    for (; arg < argc; arg++) {
        int fd = open(argv[arg], O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            printf("%s: error %s\n", argv[arg], strerror(errno));
            exit_code = 2;
            continue;
        }
        struct clamav_result result;
        (void)clamav_scan_fd(av, fd, &result); /* the verdict says it all */
        close(fd);
        printf("%s: %s%s%s%s%s (%llu us)\n", argv[arg], clamav_verdict_name(result.verdict),
               result.name[0] != '\0' ? " " : "", result.name,
               result.is_over_limit ? " over limit " : "", result.limit,
               (unsigned long long)result.scan_us);
        if (result.verdict == CLAMAV_VIRUS && exit_code == 0) {
            exit_code = 1;
        } else if (result.verdict == CLAMAV_ERROR || result.verdict == CLAMAV_NOT_READY) {
            exit_code = 2;
        }
    }
    clamav_destroy(&av);
    if (config.data_dir == temp_dir) {
        /* Only the shipped files are in it; best effort. */
        char path[sizeof(temp_dir) + 64];
        for (size_t i = 0; i < clamav_db_shipped_file_count; i++) {
            snprintf(path, sizeof(path), "%s/clamav/%s", temp_dir, clamav_db_shipped_files[i].name);
            (void)unlink(path);
        }
        snprintf(path, sizeof(path), "%s/clamav", temp_dir);
        (void)rmdir(path);
        (void)rmdir(temp_dir);
    }
    return exit_code;
}
