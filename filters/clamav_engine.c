/*
 * filters/clamav_engine.c - loading, publishing and retiring ClamAV engines
 * (see clamav_engine.h).
 *
 * Owns the libclamav engines, the loader thread, its eventfd (reload
 * requests, stop, "a retired engine is free to go") and its inotify watch
 * on the database directory. Does not scan (clamav_scan.c) and does not
 * decide what a verdict means for the mail (the daemon does).
 * Threads: clamav_create/destroy on the main thread; acquire/release and
 * reload from any thread (workers); loading, watching and freeing on the
 * loader thread only, so a worker never pays for cl_load or cl_engine_free.
 * Locking: one mutex guards the published pointer, the free list and the
 * status; it is never held across a libclamav call or a system call.
 * Limits: two engines alive at once (a load waits for the retired engine's
 * last scan), CLAMAV_INOTIFY_EVENTS_BYTES read per wake-up, the scan
 * limits of clamav_config on every engine.
 */
#define _GNU_SOURCE
#include "filters/clamav_engine.h"

#include <assert.h>
#include <clamav.h>
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <time.h>
#include <unistd.h>

#include "core/assertions.h"
#include "core/log.h"
#include "filters/clamav_log.h"

#define CLAMAV_INOTIFY_EVENTS_BYTES 8192
#define CLAMAV_INOTIFY_MASK                                                              \
    (IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_DELETE_SELF |         \
     IN_MOVE_SELF | IN_ONLYDIR)
/* Settings files that change an engine without holding signatures. */
static const char *const clamav_settings_extensions[] = {".ign", ".ign2", ".fp", ".sfp",
                                                         ".cfg", ".pwdb", ".info", ".cat"};

static_assert(CLAMAV_INOTIFY_EVENTS_BYTES >= sizeof(struct inotify_event) + NAME_MAX + 1,
              "one event with the longest name fits the read buffer");

struct clamav_engine {
    struct cl_engine     *engine;
    atomic_uint           refs; /* 1 while published, + 1 per scan */
    uint64_t              generation;
    bool                  is_shipped; /* loaded from the shipped database */
    struct clamav_engine *free_next; /* on clamav.freeable */
};

struct clamav {
    struct clamav_config config; /* strings point into the copies below */
    char                *db_dir_copy;
    char                *system_db_dir_copy;
    char                *data_dir_copy;
    char                *tmp_dir_copy;

    pthread_mutex_t       lock;
    struct clamav_engine *current;  /* guarded by lock */
    struct clamav_engine *freeable; /* guarded by lock: refs reached 0 */
    struct clamav_status  status;   /* guarded by lock */

    pthread_t   thread;
    int         wake_fd;    /* eventfd */
    int         inotify_fd; /* -1 when not watching */
    int         watch;      /* -1: no watch */
    char        watched_dir[CLAMAV_DB_PATH_BYTES];
    atomic_bool is_reload_requested;
    atomic_bool is_stopping;
    bool        is_shipped_warned; /* loader thread only */
};

static pthread_once_t clamav_init_once = PTHREAD_ONCE_INIT;
static cl_error_t     clamav_init_result;
/* The scan running on this thread, for libclamav's message callback. */
static __thread struct clamav_scan_messages *clamav_scan_messages_current;

static void clamav_init_library(void);
static void clamav_libclamav_message(enum cl_msg severity, const char *fullmsg, const char *msg,
                                     void *context);
static void *clamav_loader_main(void *arg);
static void clamav_load(struct clamav *clamav);
static void clamav_free_retired(struct clamav *clamav);
static void clamav_watch_point(struct clamav *clamav, const char *dir);
static bool clamav_watch_drain(struct clamav *clamav);
static bool clamav_is_db_event_name(const char *name);
static void clamav_wake(struct clamav *clamav);
static uint64_t clamav_now_ms(void);
static char *clamav_strdup_or_null(const char *s, bool *is_failed);

/* ---- public ------------------------------------------------------------- */

void
clamav_config_defaults(struct clamav_config *config_out)
{
    ASSERT(config_out != NULL);
    memset(config_out, 0, sizeof(*config_out));
    config_out->system_db_dir = CLAMAV_DB_SYSTEM_DIR;
    config_out->max_scan_bytes = CLAMAV_MAX_SCAN_BYTES_DEFAULT;
    config_out->max_file_bytes = CLAMAV_MAX_FILE_BYTES_DEFAULT;
    config_out->max_recursion = CLAMAV_MAX_RECURSION_DEFAULT;
    config_out->max_files = CLAMAV_MAX_FILES_DEFAULT;
    config_out->max_scan_time_ms = CLAMAV_MAX_SCAN_TIME_MS_DEFAULT;
    config_out->watch_debounce_ms = CLAMAV_WATCH_DEBOUNCE_MS_DEFAULT;
    config_out->retry_ms = CLAMAV_RETRY_MS_DEFAULT;
    config_out->is_watching = true;
    config_out->alert_exceeds_max = false;
    config_out->heuristic_alerts = true;
}

int
clamav_config_check(const struct clamav_config *config, const char **reason_out)
{
    ASSERT(config != NULL);
    ASSERT(reason_out != NULL);
    *reason_out = NULL;
    if (config->max_scan_bytes == 0 || config->max_scan_bytes > CLAMAV_MAX_SCAN_BYTES_CEILING) {
        *reason_out = "clamav_max_scan_size must be between 1 and 4095 MiB";
    } else if (config->max_file_bytes == 0 ||
               config->max_file_bytes > CLAMAV_MAX_FILE_BYTES_CEILING) {
        *reason_out = "clamav_max_file_size must be between 1 and 2047 MiB";
    } else if (config->max_recursion == 0 ||
               config->max_recursion > CLAMAV_MAX_RECURSION_CEILING) {
        *reason_out = "clamav_max_recursion must be between 1 and 64";
    } else if (config->max_files == 0 || config->max_files > CLAMAV_MAX_FILES_CEILING) {
        *reason_out = "clamav_max_files must be between 1 and 100000";
    } else if (config->max_scan_time_ms == 0 ||
               config->max_scan_time_ms > CLAMAV_MAX_SCAN_TIME_MS_CEILING) {
        *reason_out = "clamav_max_scan_time must be between 1 ms and 1 hour";
    } else if (config->retry_ms == 0) {
        *reason_out = "clamav retry interval must not be 0";
    } else if ((config->db_dir == NULL || config->db_dir[0] == '\0') &&
               (config->data_dir == NULL || config->data_dir[0] == '\0')) {
        *reason_out = "clamav needs data_dir for its shipped database";
    }
    return *reason_out == NULL ? 0 : -EINVAL;
}

int
clamav_create(const struct clamav_config *config, struct clamav **clamav_out)
{
    ASSERT(config != NULL);
    ASSERT(clamav_out != NULL);
    *clamav_out = NULL;
    const char *reason = NULL;
    if (clamav_config_check(config, &reason) != 0) {
        log_error("clamav: %s", reason);
        return -EINVAL;
    }
    int rc = pthread_once(&clamav_init_once, clamav_init_library);
    ASSERT(rc == 0);
    if (clamav_init_result != CL_SUCCESS) {
        log_error("clamav: cl_init failed: %s", cl_strerror(clamav_init_result));
        return -EIO;
    }

    struct clamav *clamav = calloc(1, sizeof(*clamav));
    if (clamav == NULL) {
        return -ENOMEM;
    }
    clamav->config = *config;
    bool is_failed = false;
    clamav->db_dir_copy = clamav_strdup_or_null(config->db_dir, &is_failed);
    clamav->system_db_dir_copy = clamav_strdup_or_null(config->system_db_dir, &is_failed);
    clamav->data_dir_copy = clamav_strdup_or_null(config->data_dir, &is_failed);
    clamav->tmp_dir_copy = clamav_strdup_or_null(config->tmp_dir, &is_failed);
    clamav->config.db_dir = clamav->db_dir_copy;
    clamav->config.system_db_dir = clamav->system_db_dir_copy;
    clamav->config.data_dir = clamav->data_dir_copy;
    clamav->config.tmp_dir = clamav->tmp_dir_copy;
    clamav->wake_fd = -1;
    clamav->inotify_fd = -1;
    clamav->watch = -1;
    if (is_failed) {
        rc = -ENOMEM;
        goto fail;
    }
    rc = pthread_mutex_init(&clamav->lock, NULL);
    if (rc != 0) {
        rc = -rc;
        goto fail;
    }
    clamav->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (clamav->wake_fd < 0) {
        rc = -errno;
        log_error("clamav: eventfd: %s", strerror(-rc));
        goto fail_mutex;
    }
    if (config->is_watching) {
        clamav->inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
        if (clamav->inotify_fd < 0) {
            /* Out of inotify instances: scanning works, only the automatic
             * reload does not. */
            log_warning("clamav: cannot watch the database directory (inotify_init1: %s); "
                        "new signatures load on toasterctl reload only",
                        strerror(errno));
        }
    }
    atomic_store(&clamav->is_reload_requested, true); /* the first load */
    rc = pthread_create(&clamav->thread, NULL, clamav_loader_main, clamav);
    if (rc != 0) {
        rc = -rc;
        log_error("clamav: cannot start the loader thread: %s", strerror(-rc));
        goto fail_mutex;
    }
    *clamav_out = clamav;
    return 0;

fail_mutex:
    (void)pthread_mutex_destroy(&clamav->lock);
fail:
    if (clamav->inotify_fd >= 0) {
        (void)close(clamav->inotify_fd);
    }
    if (clamav->wake_fd >= 0) {
        (void)close(clamav->wake_fd);
    }
    free(clamav->db_dir_copy);
    free(clamav->system_db_dir_copy);
    free(clamav->data_dir_copy);
    free(clamav->tmp_dir_copy);
    free(clamav);
    return rc;
}

void
clamav_reload(struct clamav *clamav)
{
    ASSERT(clamav != NULL);
    atomic_store(&clamav->is_reload_requested, true);
    clamav_wake(clamav);
}

void
clamav_destroy(struct clamav **clamav_io)
{
    ASSERT(clamav_io != NULL);
    struct clamav *clamav = *clamav_io;
    if (clamav == NULL) {
        return;
    }
    atomic_store(&clamav->is_stopping, true);
    clamav_wake(clamav);
    int rc = pthread_join(clamav->thread, NULL);
    ASSERT(rc == 0);

    /* No scan may run now, so the published engine has only its own
     * reference and no retired engine is left in use. */
    clamav_free_retired(clamav);
    ASSERT(clamav->freeable == NULL);
    if (clamav->current != NULL) {
        ASSERT(atomic_load(&clamav->current->refs) == 1);
        cl_error_t err = cl_engine_free(clamav->current->engine);
        ASSERT(err == CL_SUCCESS);
        free(clamav->current);
        clamav->current = NULL;
        clamav->status.engines_alive--;
    }
    ASSERT(clamav->status.engines_alive == 0);
    if (clamav->inotify_fd >= 0) {
        (void)close(clamav->inotify_fd); /* closing drops the watch; nothing to lose */
    }
    (void)close(clamav->wake_fd);
    rc = pthread_mutex_destroy(&clamav->lock);
    ASSERT(rc == 0);
    free(clamav->db_dir_copy);
    free(clamav->system_db_dir_copy);
    free(clamav->data_dir_copy);
    free(clamav->tmp_dir_copy);
    free(clamav);
    *clamav_io = NULL;
}

void
clamav_status_get(struct clamav *clamav, struct clamav_status *status_out)
{
    ASSERT(clamav != NULL);
    ASSERT(status_out != NULL);
    pthread_mutex_lock(&clamav->lock);
    *status_out = clamav->status;
    pthread_mutex_unlock(&clamav->lock);
}

struct clamav_engine *
clamav_engine_acquire(struct clamav *clamav)
{
    ASSERT(clamav != NULL);
    pthread_mutex_lock(&clamav->lock);
    struct clamav_engine *engine = clamav->current;
    if (engine != NULL) {
        unsigned int refs_before = atomic_fetch_add(&engine->refs, 1);
        ASSERT(refs_before >= 1); /* the published reference */
    }
    pthread_mutex_unlock(&clamav->lock);
    return engine;
}

void
clamav_engine_release(struct clamav *clamav, struct clamav_engine *engine)
{
    ASSERT(clamav != NULL);
    ASSERT(engine != NULL);
    unsigned int refs_before = atomic_fetch_sub(&engine->refs, 1);
    ASSERT(refs_before >= 1);
    if (refs_before > 1) {
        return;
    }
    /* The last reference of a retired engine: the published one was
     * dropped at the swap, so nobody can acquire it again. */
    pthread_mutex_lock(&clamav->lock);
    ASSERT(clamav->current != engine);
    engine->free_next = clamav->freeable;
    clamav->freeable = engine;
    pthread_mutex_unlock(&clamav->lock);
    clamav_wake(clamav);
}

const struct cl_engine *
clamav_engine_cl(const struct clamav_engine *engine)
{
    ASSERT(engine != NULL);
    return engine->engine;
}

uint64_t
clamav_engine_generation(const struct clamav_engine *engine)
{
    ASSERT(engine != NULL);
    return engine->generation;
}

bool
clamav_engine_is_shipped(const struct clamav_engine *engine)
{
    ASSERT(engine != NULL);
    return engine->is_shipped;
}

bool
clamav_engine_alert_exceeds_max(const struct clamav *clamav)
{
    return clamav->config.alert_exceeds_max;
}

bool
clamav_engine_heuristic_alerts(const struct clamav *clamav)
{
    return clamav->config.heuristic_alerts;
}

uint64_t
clamav_engine_max_file_bytes(const struct clamav *clamav)
{
    return clamav->config.max_file_bytes;
}

uint32_t
clamav_engine_max_scan_time_ms(const struct clamav *clamav)
{
    return clamav->config.max_scan_time_ms;
}

void
clamav_scan_messages_begin(struct clamav_scan_messages *messages)
{
    ASSERT(messages != NULL);
    ASSERT(messages->magic == CLAMAV_SCAN_MESSAGES_MAGIC);
    ASSERT(clamav_scan_messages_current == NULL); /* one scan per thread at a time */
    clamav_scan_messages_current = messages;
}

void
clamav_scan_messages_end(void)
{
    ASSERT(clamav_scan_messages_current != NULL);
    clamav_scan_messages_current = NULL;
}

/* ---- libclamav set-up --------------------------------------------------- */

static void
clamav_init_library(void)
{
    /* Before cl_init and before any other thread uses libclamav, as the
     * header asks: libclamav's messages go through our limited logger
     * instead of its own stderr lines. */
    cl_set_clcb_msg(clamav_libclamav_message);
    clamav_init_result = cl_init(CL_INIT_DEFAULT);
}

static void
clamav_libclamav_message(enum cl_msg severity, const char *fullmsg, const char *msg,
                         void *context)
{
    (void)fullmsg;
    if (severity != CL_MSG_ERROR && severity != CL_MSG_WARN) {
        return; /* verbose info: what cl_debug would print */
    }
    size_t len = strlen(msg);
    while (len > 0 && (msg[len - 1] == '\n' || msg[len - 1] == '\r')) {
        len--;
    }
    if (len > 300) {
        len = 300;
    }
    /* During a scan: its context (cl_scandesc_callback), or, for messages
     * libclamav gives before it sets the context up, the scanning thread's. */
    struct clamav_scan_messages *messages = context;
    if (messages == NULL) {
        messages = clamav_scan_messages_current;
    }
    if (messages != NULL && severity == CL_MSG_ERROR) {
        ASSERT(messages->magic == CLAMAV_SCAN_MESSAGES_MAGIC);
        if (messages->error_count++ == 0) {
            (void)snprintf(messages->first_error, sizeof(messages->first_error), "%.*s",
                           (int)len, msg);
        }
    }
    /* FNV-1a of the speaker (the text before the first ':'). */
    uint32_t hash = 2166136261u;
    for (size_t i = 0; i < len && msg[i] != ':'; i++) {
        hash = (hash ^ (unsigned char)msg[i]) * 16777619u;
    }
    uint32_t kind = (severity == CL_MSG_ERROR ? CLAMAV_LOG_LIBCLAMAV_ERROR_FIRST
                                              : CLAMAV_LOG_LIBCLAMAV_WARNING_FIRST) +
                    hash % CLAMAV_LOG_LIBCLAMAV_SLOTS;
    clamav_log_limited(kind, "libclamav %s: %.*s", severity == CL_MSG_ERROR ? "error" : "warning",
                       (int)len, msg);
}

/* ---- the loader thread -------------------------------------------------- */

static void *
clamav_loader_main(void *arg)
{
    struct clamav *clamav = arg;
    uint64_t debounce_deadline_ms = 0; /* 0: no change pending */
    uint64_t retry_deadline_ms = 0;    /* 0: no retry pending */
    bool     is_load_wanted = false;

    for (;;) {
        if (atomic_exchange(&clamav->is_reload_requested, false)) {
            is_load_wanted = true;
        }
        uint64_t now_ms = clamav_now_ms();
        if (debounce_deadline_ms != 0 && now_ms >= debounce_deadline_ms) {
            debounce_deadline_ms = 0;
            is_load_wanted = true;
            log_info("clamav: the database in %s changed, reloading", clamav->watched_dir);
        }
        if (retry_deadline_ms != 0 && now_ms >= retry_deadline_ms) {
            retry_deadline_ms = 0;
            is_load_wanted = true;
        }
        clamav_free_retired(clamav);
        if (atomic_load(&clamav->is_stopping)) {
            break;
        }

        /* Two engines at most: load only when no retired one is alive. */
        pthread_mutex_lock(&clamav->lock);
        bool is_retired_alive =
            clamav->status.engines_alive > (clamav->current != NULL ? 1u : 0u);
        pthread_mutex_unlock(&clamav->lock);
        if (is_load_wanted && !is_retired_alive) {
            is_load_wanted = false;
            clamav_load(clamav);
            pthread_mutex_lock(&clamav->lock);
            bool is_empty = clamav->current == NULL;
            pthread_mutex_unlock(&clamav->lock);
            retry_deadline_ms = is_empty ? clamav_now_ms() + clamav->config.retry_ms : 0;
            continue; /* requests made during the load are seen at the top */
        }

        int timeout_ms = -1;
        uint64_t next_ms = 0;
        if (debounce_deadline_ms != 0) {
            next_ms = debounce_deadline_ms;
        }
        if (retry_deadline_ms != 0 && (next_ms == 0 || retry_deadline_ms < next_ms)) {
            next_ms = retry_deadline_ms;
        }
        if (next_ms != 0) {
            now_ms = clamav_now_ms();
            uint64_t wait_ms = next_ms > now_ms ? next_ms - now_ms : 0;
            timeout_ms = wait_ms > INT_MAX ? INT_MAX : (int)wait_ms;
        }
        struct pollfd fds[2] = {
            {.fd = clamav->wake_fd, .events = POLLIN},
            {.fd = clamav->inotify_fd, .events = POLLIN}, /* fd -1 is ignored */
        };
        int ready = poll(fds, 2, timeout_ms);
        if (ready < 0 && errno != EINTR) {
            /* Cannot happen with valid descriptors; do not spin if it does. */
            log_error("clamav: loader poll: %s", strerror(errno));
            sleep(1);
            continue;
        }
        if (ready > 0 && (fds[0].revents & POLLIN) != 0) {
            uint64_t value;
            /* Non-blocking; EAGAIN only means another read won the race. */
            (void)read(clamav->wake_fd, &value, sizeof(value));
        }
        if (ready > 0 && (fds[1].revents & POLLIN) != 0 && clamav_watch_drain(clamav)) {
            debounce_deadline_ms = clamav_now_ms() + clamav->config.watch_debounce_ms;
            if (debounce_deadline_ms == 0) {
                debounce_deadline_ms = 1;
            }
        }
    }
    return NULL;
}

/* Record a failed load: the engine in use (if any) stays. */
static void
clamav_load_failed(struct clamav *clamav, const char *dir, cl_error_t err, const char *what)
{
    pthread_mutex_lock(&clamav->lock);
    clamav->status.load_fail_count++;
    clamav->status.last_error = err;
    (void)snprintf(clamav->status.last_error_text, sizeof(clamav->status.last_error_text),
                   "%s: %s", what, cl_strerror(err));
    bool is_kept = clamav->current != NULL;
    pthread_mutex_unlock(&clamav->lock);
    log_error("clamav: loading %s failed (%s: %s); %s", dir, what, cl_strerror(err),
              is_kept ? "the engine in use is kept" : "no engine: scans answer not-ready");
}

static cl_error_t
clamav_engine_configure(struct clamav *clamav, struct cl_engine *engine, const char **what_out)
{
    const struct clamav_config *config = &clamav->config;
    struct {
        enum cl_engine_field field;
        long long            value;
        const char          *what;
    } nums[] = {
        {CL_ENGINE_MAX_SCANSIZE, (long long)config->max_scan_bytes, "max scan size"},
        {CL_ENGINE_MAX_FILESIZE, (long long)config->max_file_bytes, "max file size"},
        {CL_ENGINE_MAX_RECURSION, (long long)config->max_recursion, "max recursion"},
        {CL_ENGINE_MAX_FILES, (long long)config->max_files, "max files"},
        {CL_ENGINE_MAX_SCANTIME, (long long)config->max_scan_time_ms, "max scan time"},
    };
    for (size_t i = 0; i < sizeof(nums) / sizeof(nums[0]); i++) {
        cl_error_t err = cl_engine_set_num(engine, nums[i].field, nums[i].value);
        if (err != CL_SUCCESS) {
            *what_out = nums[i].what;
            return err;
        }
    }
    if (config->tmp_dir != NULL && config->tmp_dir[0] != '\0') {
        cl_error_t err = cl_engine_set_str(engine, CL_ENGINE_TMPDIR, config->tmp_dir);
        if (err != CL_SUCCESS) {
            *what_out = "temporary directory";
            return err;
        }
    }
    return CL_SUCCESS;
}

static void
clamav_load(struct clamav *clamav)
{
    char dir[CLAMAV_DB_PATH_BYTES];
    bool is_shipped = false;
    int rc = clamav_db_choose(clamav->config.db_dir, clamav->config.system_db_dir,
                              clamav->config.data_dir, dir, sizeof(dir), &is_shipped);
    pthread_mutex_lock(&clamav->lock);
    clamav->status.load_count++;
    pthread_mutex_unlock(&clamav->lock);
    if (rc != 0) {
        clamav_load_failed(clamav, "(none)", CL_EARG, "database directory");
        return;
    }
    if (is_shipped) {
        if (!clamav->is_shipped_warned) {
            clamav->is_shipped_warned = true;
            log_warning("clamav: no ClamAV database in %s: using toaster's shipped test "
                        "signatures in %s, which detect only EICAR and the ClamAV test files; "
                        "install clamav-freshclam for real signatures",
                        clamav->config.system_db_dir != NULL ? clamav->config.system_db_dir
                                                             : "(none)",
                        dir);
        }
        if (clamav_db_write_shipped(dir) != 0) {
            clamav_load_failed(clamav, dir, CL_EWRITE, "writing the shipped database");
            return;
        }
    }
    /* Point the watch before loading, so a change made during the load
     * causes another one. */
    clamav_watch_point(clamav, dir);

    uint64_t start_ms = clamav_now_ms();
    struct cl_engine *engine = cl_engine_new();
    if (engine == NULL) {
        clamav_load_failed(clamav, dir, CL_EMEM, "cl_engine_new");
        return;
    }
    const char *what = NULL;
    cl_error_t err = clamav_engine_configure(clamav, engine, &what);
    unsigned int signature_count = 0;
    if (err == CL_SUCCESS) {
        what = "cl_load";
        err = cl_load(dir, engine, &signature_count, CL_DB_STDOPT);
    }
    if (err == CL_SUCCESS) {
        what = "cl_engine_compile";
        err = cl_engine_compile(engine);
    }
    if (err == CL_SUCCESS && signature_count == 0) {
        what = "no signatures";
        err = CL_EMALFDB;
    }
    if (err != CL_SUCCESS) {
        cl_error_t free_err = cl_engine_free(engine);
        ASSERT(free_err == CL_SUCCESS);
        clamav_load_failed(clamav, dir, err, what);
        return;
    }

    struct clamav_engine *fresh = calloc(1, sizeof(*fresh));
    if (fresh == NULL) {
        cl_error_t free_err = cl_engine_free(engine);
        ASSERT(free_err == CL_SUCCESS);
        clamav_load_failed(clamav, dir, CL_EMEM, "engine record");
        return;
    }
    uint64_t load_ms = clamav_now_ms() - start_ms;
    fresh->engine = engine;
    fresh->is_shipped = is_shipped;
    atomic_init(&fresh->refs, 1);

    pthread_mutex_lock(&clamav->lock);
    struct clamav_engine *old = clamav->current;
    fresh->generation = ++clamav->status.generation;
    clamav->current = fresh;
    clamav->status.engines_alive++;
    clamav->status.signature_count = signature_count;
    clamav->status.load_ms = load_ms;
    clamav->status.is_shipped = is_shipped;
    clamav->status.last_error = 0;
    clamav->status.last_error_text[0] = '\0';
    (void)snprintf(clamav->status.db_dir, sizeof(clamav->status.db_dir), "%s", dir);
    uint64_t generation = fresh->generation;
    pthread_mutex_unlock(&clamav->lock);

    log_info("clamav: engine %llu loaded from %s: %u signatures in %llu ms",
             (unsigned long long)generation, dir, signature_count, (unsigned long long)load_ms);
    if (old != NULL) {
        clamav_engine_release(clamav, old); /* the published reference */
    }
}

/* Free the engines whose last scan ended. Loader thread (and destroy). */
static void
clamav_free_retired(struct clamav *clamav)
{
    pthread_mutex_lock(&clamav->lock);
    struct clamav_engine *list = clamav->freeable;
    clamav->freeable = NULL;
    pthread_mutex_unlock(&clamav->lock);
    uint32_t freed = 0;
    while (list != NULL) {
        struct clamav_engine *next = list->free_next;
        ASSERT(atomic_load(&list->refs) == 0);
        cl_error_t err = cl_engine_free(list->engine);
        ASSERT(err == CL_SUCCESS);
        free(list);
        freed++;
        list = next;
    }
    if (freed > 0) {
        pthread_mutex_lock(&clamav->lock);
        ASSERT(clamav->status.engines_alive >= freed);
        clamav->status.engines_alive -= freed;
        pthread_mutex_unlock(&clamav->lock);
    }
}

/* ---- the database watch ------------------------------------------------- */

/* Watch `dir` (and stop watching another). A directory that cannot be
 * watched (missing) is logged; the next load tries again. */
static void
clamav_watch_point(struct clamav *clamav, const char *dir)
{
    if (clamav->inotify_fd < 0) {
        return;
    }
    if (clamav->watch >= 0 && strcmp(clamav->watched_dir, dir) == 0) {
        return;
    }
    if (clamav->watch >= 0) {
        /* EINVAL: the kernel dropped it already (directory removed). */
        (void)inotify_rm_watch(clamav->inotify_fd, clamav->watch);
        clamav->watch = -1;
    }
    int watch = inotify_add_watch(clamav->inotify_fd, dir, CLAMAV_INOTIFY_MASK);
    if (watch < 0) {
        log_warning("clamav: cannot watch %s for database changes: %s", dir, strerror(errno));
        clamav->watched_dir[0] = '\0';
        return;
    }
    clamav->watch = watch;
    (void)snprintf(clamav->watched_dir, sizeof(clamav->watched_dir), "%s", dir);
}

/* Read what inotify holds. Returns whether a database file changed. */
static bool
clamav_watch_drain(struct clamav *clamav)
{
    _Alignas(struct inotify_event) char buffer[CLAMAV_INOTIFY_EVENTS_BYTES];
    bool is_changed = false;
    /* Each read takes up to a buffer of events; the queue is bounded by the
     * kernel (max_queued_events), and an overflow counts as a change. */
    for (int round = 0; round < 64; round++) {
        ssize_t got = read(clamav->inotify_fd, buffer, sizeof(buffer));
        if (got <= 0) {
            break;
        }
        for (ssize_t at = 0; at + (ssize_t)sizeof(struct inotify_event) <= got;) {
            const struct inotify_event *event = (const struct inotify_event *)(buffer + at);
            at += (ssize_t)sizeof(struct inotify_event) + (ssize_t)event->len;
            if ((event->mask & IN_Q_OVERFLOW) != 0) {
                is_changed = true;
            } else if (event->wd != clamav->watch) {
                continue; /* a watch dropped earlier (IN_IGNORED after rm) */
            } else if ((event->mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED)) != 0) {
                /* The directory itself went away: watch it again at the
                 * next load, which this change causes. */
                if ((event->mask & IN_IGNORED) == 0) {
                    (void)inotify_rm_watch(clamav->inotify_fd, clamav->watch);
                }
                clamav->watch = -1;
                clamav->watched_dir[0] = '\0';
                is_changed = true;
            } else if (event->len > 0 && clamav_is_db_event_name(event->name)) {
                is_changed = true;
            }
        }
    }
    return is_changed;
}

static bool
clamav_is_db_event_name(const char *name)
{
    if (clamav_db_is_signature_name(name)) {
        return true;
    }
    if (name[0] == '.') {
        return false;
    }
    size_t name_len = strlen(name);
    for (size_t i = 0;
         i < sizeof(clamav_settings_extensions) / sizeof(clamav_settings_extensions[0]); i++) {
        size_t ext_len = strlen(clamav_settings_extensions[i]);
        if (name_len > ext_len &&
            strcmp(name + name_len - ext_len, clamav_settings_extensions[i]) == 0) {
            return true;
        }
    }
    return false;
}

/* ---- helpers ------------------------------------------------------------ */

static void
clamav_wake(struct clamav *clamav)
{
    uint64_t one = 1;
    /* An eventfd write fails only when the counter would overflow, and then
     * the loader has a wake-up pending anyway. */
    (void)write(clamav->wake_fd, &one, sizeof(one));
}

static uint64_t
clamav_now_ms(void)
{
    struct timespec now;
    (void)clock_gettime(CLOCK_MONOTONIC, &now); /* cannot fail */
    return (uint64_t)now.tv_sec * 1000u + (uint64_t)now.tv_nsec / 1000000u;
}

static char *
clamav_strdup_or_null(const char *s, bool *is_failed)
{
    if (s == NULL) {
        return NULL;
    }
    char *copy = strdup(s);
    if (copy == NULL) {
        *is_failed = true;
    }
    return copy;
}
