/*
 * filters/clamav_engine.h - the ClamAV engine of the daemon: loaded by a
 * background thread, swapped while scans go on.
 *
 * clamav_create() returns at once; its thread loads the first engine, then
 * loads a new one on clamav_reload() (toasterctl reload) and, on its own,
 * when the database directory changes (inotify, debounced). A new engine is
 * published by a pointer swap; a scan holds a reference to the engine it
 * started with, and a retired engine is freed by the loader thread when its
 * last scan ends. A load that fails keeps the engine in use. At most two
 * engines exist at once: a new load waits until the retired one is freed
 * (which takes at most one scan's time limit).
 * Scans: filters/clamav_scan.h. Signatures: filters/clamav_db.h.
 */
#ifndef TOASTER_FILTERS_CLAMAV_ENGINE_H
#define TOASTER_FILTERS_CLAMAV_ENGINE_H

#include <stdbool.h>
#include <stdint.h>

#include "filters/clamav_db.h"

/* Scan limits: defaults and ceilings (configuration may lower a limit,
 * never raise it past the ceiling; 0 is refused, as it means "no limit" to
 * libclamav). */
#define CLAMAV_MAX_SCAN_BYTES_DEFAULT (100ULL * 1024 * 1024)
#define CLAMAV_MAX_SCAN_BYTES_CEILING (4ULL * 1024 * 1024 * 1024 - 1)
#define CLAMAV_MAX_FILE_BYTES_DEFAULT (64ULL * 1024 * 1024)
#define CLAMAV_MAX_FILE_BYTES_CEILING (2ULL * 1024 * 1024 * 1024 - 1)
#define CLAMAV_MAX_RECURSION_DEFAULT 17u
#define CLAMAV_MAX_RECURSION_CEILING 64u
#define CLAMAV_MAX_FILES_DEFAULT 10000u
#define CLAMAV_MAX_FILES_CEILING 100000u
#define CLAMAV_MAX_SCAN_TIME_MS_DEFAULT 120000u
#define CLAMAV_MAX_SCAN_TIME_MS_CEILING 3600000u
/* Quiet time after the last change in the database directory before the
 * reload (freshclam writes several files in a row). */
#define CLAMAV_WATCH_DEBOUNCE_MS_DEFAULT 2000u
/* While no engine is loaded, the load is retried this often. */
#define CLAMAV_RETRY_MS_DEFAULT 60000u
/* Error text kept from the last failed load. */
#define CLAMAV_ERROR_BYTES 256

struct clamav_config {
    const char *db_dir;      /* NULL or "": automatic (clamav_db_choose) */
    const char *system_db_dir; /* where automatic looks first: CLAMAV_DB_SYSTEM_DIR */
    const char *data_dir;    /* the shipped database goes to <data_dir>/clamav */
    const char *tmp_dir;     /* NULL: libclamav's default ($TMPDIR or /tmp) */
    uint64_t    max_scan_bytes;    /* CL_ENGINE_MAX_SCANSIZE */
    uint64_t    max_file_bytes;    /* CL_ENGINE_MAX_FILESIZE */
    uint32_t    max_recursion;     /* CL_ENGINE_MAX_RECURSION */
    uint32_t    max_files;         /* CL_ENGINE_MAX_FILES */
    uint32_t    max_scan_time_ms;  /* CL_ENGINE_MAX_SCANTIME */
    uint32_t    watch_debounce_ms;
    uint32_t    retry_ms;
    bool        is_watching;        /* inotify on the database directory */
    bool        alert_exceeds_max;  /* a size/count limit hit is a detection
                                       (Heuristics.Limits.Exceeded.*); else clean */
    bool        heuristic_alerts;   /* CL_SCAN_GENERAL_HEURISTICS, as clamd's HeuristicAlerts */
};

/* What the loader last did, for logs, stats and tests. */
struct clamav_status {
    uint64_t generation;      /* engines published so far; 0: none yet */
    uint64_t load_count;      /* loads attempted */
    uint64_t load_fail_count; /* loads that failed (the engine in use was kept) */
    uint32_t signature_count; /* of the engine in use */
    uint32_t engines_alive;   /* in use or retired, not yet freed */
    uint64_t load_ms;         /* time the last successful load took */
    bool     is_shipped;      /* the engine in use has the shipped database only */
    int      last_error;      /* cl_error_t of the last failed load; 0: the last load succeeded */
    char     last_error_text[CLAMAV_ERROR_BYTES];
    char     db_dir[CLAMAV_DB_PATH_BYTES]; /* of the engine in use */
};

struct clamav;
struct clamav_engine;

/* The context a scan passes to cl_scandesc_callback: libclamav's error
 * messages during that scan are counted here, because libclamav answers
 * "clean" for some scans it could not do (an attachment it could not write
 * to its temporary directory, for one). */
struct clamav_scan_messages {
    uint32_t magic; /* CLAMAV_SCAN_MESSAGES_MAGIC */
    uint32_t error_count;
    char     first_error[CLAMAV_ERROR_BYTES];
};
#define CLAMAV_SCAN_MESSAGES_MAGIC 0x5ca11edu

/* Count libclamav's error messages on this thread into `messages` until
 * clamav_scan_messages_end(). Some come before libclamav knows the scan's
 * context (the temporary directory it could not create), so the scanning
 * thread is what ties them to the scan. */
void clamav_scan_messages_begin(struct clamav_scan_messages *messages);
void clamav_scan_messages_end(void);

/* The defaults above, automatic database, watching on. */
void clamav_config_defaults(struct clamav_config *config_out);

/* Check a configuration against the ceilings. Returns 0 or -EINVAL with a
 * reason (static string) in *reason_out. */
int clamav_config_check(const struct clamav_config *config, const char **reason_out);

/* Initialise libclamav (once per process), copy `config` and start the
 * loader thread, which loads the first engine. Never waits for the load:
 * scans answer CLAMAV_NOT_READY until it is in. Main thread, start-up.
 * Returns 0, -EINVAL (config), -ENOMEM, or -errno of the thread or the
 * eventfd (logged). */
int clamav_create(const struct clamav_config *config, struct clamav **clamav_out);

/* Ask for a new engine from the same directory (re-chosen in automatic
 * mode). Returns at once; the load happens on the loader thread, and a
 * request made during a load causes one more load after it. Any thread. */
void clamav_reload(struct clamav *clamav);

/* Stop the loader thread and free the engines. No scan may be running or
 * start (asserted: every reference must be released). NULLs *clamav. */
void clamav_destroy(struct clamav **clamav);

/* A copy of the status. Any thread. */
void clamav_status_get(struct clamav *clamav, struct clamav_status *status_out);

/* Take a reference to the engine in use: NULL if none is loaded yet. The
 * reference keeps the engine alive until clamav_engine_release(). Any
 * thread; a few nanoseconds under a mutex. */
struct clamav_engine *clamav_engine_acquire(struct clamav *clamav);

/* Give a reference back. The last one of a retired engine hands it to the
 * loader thread to free (cl_engine_free of a full database takes long). */
void clamav_engine_release(struct clamav *clamav, struct clamav_engine *engine);

/* The libclamav engine of a reference, and its generation. */
const struct cl_engine *clamav_engine_cl(const struct clamav_engine *engine);
uint64_t clamav_engine_generation(const struct clamav_engine *engine);
/* Whether the engine holds toaster's shipped database only. */
bool clamav_engine_is_shipped(const struct clamav_engine *engine);

/* Scan options for the engines of this handle. */
bool clamav_engine_alert_exceeds_max(const struct clamav *clamav);
bool clamav_engine_heuristic_alerts(const struct clamav *clamav);
uint64_t clamav_engine_max_file_bytes(const struct clamav *clamav);
uint32_t clamav_engine_max_scan_time_ms(const struct clamav *clamav);

#endif
