/*
 * filters/sieve_exec.c - Sieve at delivery (see sieve_exec.h): the chain
 * of scripts for one recipient, the cache of compiled scripts and address
 * lists, and the environment callbacks the interpreter asks.
 *
 * Owns the global scripts (compiled at create and reload, kept until the
 * next reload, so a global script broken on disk never silently turns
 * the global filter off), the cache (one table, one mutex; entries
 * reference-counted so a run never loses a script or list it holds) and,
 * without a shared key-value store, a private embedded one for duplicate
 * and vacation tracking. Does not deliver, send or log: results and error
 * texts go back to the caller.
 *
 * The multiscript rule is Pigeonhole's (lda_sieve_execute_scripts and
 * sieve_result_execute): the next script runs only while keep is in
 * effect (actions->implicit_keep, which an explicit "keep" also leaves
 * set, as Pigeonhole merges an explicit keep into the implicit one for
 * the next round); "stop" ends the current script only; a runtime error
 * ends the sequence with the implicit keep alone; a script that does not
 * compile ends the sequence too (what earlier scripts chose stays, with
 * the keep); a missing user script is skipped.
 *
 * Workers only: stat/open/read on every run. Limits: the SIEVE_EXEC_*
 * bounds in sieve_exec.h, sieve_max_script_size, the run limits.
 */
#define _GNU_SOURCE
#include "filters/sieve_exec.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <assert.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/assertions.h"
#include "core/hash.h"
#include "core/kv.h"
#include "core/limits.h"
#include "core/mutf7.h"
#include "core/span.h"
#include "proto/mail_compose.h"
#include "filters/sieve_validate.h"
#include "filters/sieve_vacation.h"
#include "proto/managesieve/managesieve_session.h"
#include "store/maildir_folders.h"

#define EXEC_PATH_BYTES 4096u
#define DUPLICATE_KEY_PREFIX "sieve-dup:"
#define LIST_PREFIX ":addrbook:"
#define USER_SCRIPT_NAME ".dovecot.sieve"
#define PERIOD_TTL_MAX UINT32_MAX

static_assert(sizeof(DUPLICATE_KEY_PREFIX) - 1 < KV_KEY_BYTES_MAX, "a duplicate key fits");
static_assert(SIEVE_EXEC_LIST_LINE_BYTES_MAX < SIEVE_EXEC_LIST_BYTES_MAX, "a line fits a list");

/* ---- private types ---- */

enum entry_kind { ENTRY_SCRIPT, ENTRY_LIST };

/* An address list: lower-case entries, sorted for bsearch. */
struct address_list {
    char *text;           /* the entries, NUL-separated */
    const char **entries; /* into text */
    size_t count;
};

/* One cached file. refs counts the table's reference (while is_in_table)
 * and each run holding it; whoever drops the last one frees it. */
struct entry {
    struct entry *hash_next;
    struct entry *lru_prev; /* toward the most recently used */
    struct entry *lru_next;
    char *path;
    uint32_t hash;
    enum entry_kind kind;
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime;
    size_t bytes; /* what it costs the cache's bound */
    uint32_t refs;
    bool is_in_table;
    struct sieve_script *script;
    struct address_list list;
};

/* The global scripts of one create or reload: runs take a reference, so
 * a reload never frees scripts under a running message. */
struct globals {
    uint32_t refs;
    size_t count;        /* scripts[0 .. count) */
    size_t before_count; /* scripts[0 .. before_count) run before the user's */
    struct sieve_script *scripts[2 * SIEVE_EXEC_GLOBAL_SCRIPTS_MAX]; /* before, then after */
    char *names[2 * SIEVE_EXEC_GLOBAL_SCRIPTS_MAX];
};

struct sieve_exec {
    pthread_mutex_t lock; /* the table, the LRU list, counters, globals pointer */
    struct entry **buckets;
    size_t bucket_count; /* a power of two */
    struct entry *lru_head;
    struct entry *lru_tail;
    size_t entry_count;
    size_t entries_max;
    size_t bytes;
    uint64_t compile_count;
    uint64_t hit_count;
    struct globals *globals;

    struct kv *kv;       /* the one in use */
    struct kv *kv_owned; /* the private one, when settings gave none */
    char *before;
    char *after;
    char *global_dir;
    char *spam_header;
    char *virus_header;
    uint64_t max_script_size;
    struct sieve_run_limits limits;
    struct sieve_env env; /* settings; callbacks filled per run */
    uint32_t redirect_ttl_s;
};

/* What one run holds and what its callbacks need. */
struct run_ctx {
    struct sieve_exec *exec;
    const struct sieve_exec_user *user;
    struct entry *held[SIEVE_EXEC_HELD_MAX];
    size_t held_count;
    char include_error[SIEVE_EXEC_ERROR_BYTES];
};

/* ---- static prototypes ---- */

static int globals_load(struct sieve_exec *exec, struct globals **globals_out, char *err,
                        size_t err_bytes);
static void globals_put(struct sieve_exec *exec, struct globals *globals);
static void table_clear(struct sieve_exec *exec);
static int cache_acquire(struct sieve_exec *exec, enum entry_kind kind, const char *path,
                         struct entry **entry_out, char *err, size_t err_bytes);
static void cache_release(struct sieve_exec *exec, struct entry *entry);
static int run_chain(struct sieve_exec *exec, const struct sieve_exec_user *user,
                     const struct sieve_script *only, const struct sieve_message *message,
                     struct sieve_actions *actions, char *err, size_t err_bytes);
static uint32_t period_ttl(uint64_t period_seconds, uint64_t fallback_seconds);

/* ---- public functions ---- */

static char *
strdup_or_empty(const char *s)
{
    return strdup(s != NULL ? s : "");
}

int
sieve_exec_create(const struct sieve_exec_settings *settings, struct sieve_exec **exec_out,
                  char *err, size_t err_bytes)
{
    ASSERT(settings != NULL);
    ASSERT(exec_out != NULL);
    ASSERT(err != NULL && err_bytes > 0);
    err[0] = '\0';
    *exec_out = NULL;
    struct sieve_exec *exec = calloc(1, sizeof(*exec));
    if (exec == NULL) {
        (void)snprintf(err, err_bytes, "sieve: out of memory");
        return -ENOMEM;
    }
    int rc = pthread_mutex_init(&exec->lock, NULL);
    if (rc != 0) {
        free(exec);
        (void)snprintf(err, err_bytes, "sieve: %s", strerror(rc));
        return -rc;
    }
    exec->entries_max = settings->cache_entries_max;
    if (exec->entries_max == 0 || exec->entries_max > SIEVE_EXEC_CACHE_ENTRIES_DEFAULT) {
        exec->entries_max = SIEVE_EXEC_CACHE_ENTRIES_DEFAULT;
    }
    exec->bucket_count = 1;
    while (exec->bucket_count < 2 * exec->entries_max) {
        exec->bucket_count *= 2; /* at most half full on average */
    }
    exec->buckets = calloc(exec->bucket_count, sizeof(exec->buckets[0]));
    exec->before = strdup_or_empty(settings->before);
    exec->after = strdup_or_empty(settings->after);
    exec->global_dir = strdup_or_empty(settings->global_dir);
    exec->spam_header = settings->env.spam_header != NULL ? strdup(settings->env.spam_header)
                                                          : NULL;
    exec->virus_header = settings->env.virus_header != NULL ? strdup(settings->env.virus_header)
                                                            : NULL;
    if (exec->buckets == NULL || exec->before == NULL || exec->after == NULL ||
        exec->global_dir == NULL ||
        (settings->env.spam_header != NULL && exec->spam_header == NULL) ||
        (settings->env.virus_header != NULL && exec->virus_header == NULL)) {
        (void)snprintf(err, err_bytes, "sieve: out of memory");
        sieve_exec_destroy(&exec);
        return -ENOMEM;
    }
    exec->max_script_size = settings->max_script_size;
    if (exec->max_script_size == 0 || exec->max_script_size > SIEVE_SCRIPT_BYTES_DEFAULT) {
        exec->max_script_size = SIEVE_SCRIPT_BYTES_DEFAULT; /* the compiler's ceiling */
    }
    exec->limits = settings->limits;
    exec->env = settings->env;
    exec->redirect_ttl_s = period_ttl(settings->redirect_duplicate_seconds, 12u * 3600u);
    exec->env.ctx = NULL;
    exec->env.mailbox_exists = NULL;
    exec->env.include_load = NULL;
    exec->env.duplicate_seen = NULL;
    exec->env.list_contains = NULL;
    exec->env.spam_header = exec->spam_header;
    exec->env.virus_header = exec->virus_header;
    if (settings->kv != NULL) {
        exec->kv = settings->kv;
    } else {
        rc = kv_embedded_create(SIEVE_EXEC_LOCAL_KV_ENTRIES, NULL, NULL, &exec->kv_owned);
        if (rc != 0) {
            (void)snprintf(err, err_bytes, "sieve: private key-value store: %s", strerror(-rc));
            sieve_exec_destroy(&exec);
            return rc;
        }
        exec->kv = exec->kv_owned;
    }
    if (strcmp(exec->after, SIEVE_EXEC_BUILTIN) == 0) {
        (void)snprintf(err, err_bytes, "sieve_after: \"builtin\" is for sieve_before only");
        sieve_exec_destroy(&exec);
        return -EINVAL;
    }
    rc = globals_load(exec, &exec->globals, err, err_bytes);
    if (rc != 0) {
        sieve_exec_destroy(&exec);
        return rc;
    }
    *exec_out = exec;
    return 0;
}

int
sieve_exec_reload(struct sieve_exec *exec, char *err, size_t err_bytes)
{
    ASSERT(exec != NULL);
    ASSERT(err != NULL && err_bytes > 0);
    err[0] = '\0';
    struct globals *fresh = NULL;
    int rc = globals_load(exec, &fresh, err, err_bytes);
    if (rc != 0) {
        return rc; /* the old ones stay */
    }
    ASSERT(pthread_mutex_lock(&exec->lock) == 0);
    struct globals *old = exec->globals;
    exec->globals = fresh;
    table_clear(exec);
    ASSERT(pthread_mutex_unlock(&exec->lock) == 0);
    globals_put(exec, old);
    return 0;
}

void
sieve_exec_destroy(struct sieve_exec **exec_ptr)
{
    ASSERT(exec_ptr != NULL);
    struct sieve_exec *exec = *exec_ptr;
    if (exec == NULL) {
        return;
    }
    *exec_ptr = NULL;
    if (exec->buckets != NULL) {
        table_clear(exec);
        ASSERT(exec->entry_count == 0);
    }
    if (exec->globals != NULL) {
        ASSERT(exec->globals->refs == 1); /* nobody runs any more */
        globals_put(exec, exec->globals);
    }
    kv_destroy(&exec->kv_owned);
    free(exec->buckets);
    free(exec->before);
    free(exec->after);
    free(exec->global_dir);
    free(exec->spam_header);
    free(exec->virus_header);
    ASSERT(pthread_mutex_destroy(&exec->lock) == 0);
    free(exec);
}

int
sieve_exec_run(struct sieve_exec *exec, const struct sieve_exec_user *user,
               const struct sieve_message *message, struct sieve_actions *actions, char *err,
               size_t err_bytes)
{
    ASSERT(exec != NULL);
    ASSERT(message != NULL);
    ASSERT(actions != NULL);
    ASSERT(err != NULL && err_bytes > 0);
    return run_chain(exec, user, NULL, message, actions, err, err_bytes);
}

void
sieve_exec_commit(struct sieve_exec *exec, const struct sieve_actions *actions)
{
    ASSERT(exec != NULL);
    ASSERT(actions != NULL);
    ASSERT(actions->duplicate_count <= SIEVE_RUN_DUPLICATES_MAX);
    for (size_t i = 0; i < actions->duplicate_count; i++) {
        const struct sieve_duplicate_mark *mark = &actions->duplicates[i];
        char key[KV_KEY_BYTES_MAX + 1];
        int n = snprintf(key, sizeof(key), "%s%s", DUPLICATE_KEY_PREFIX, mark->key);
        ASSERT(n > 0);
        size_t key_len = (size_t)n < KV_KEY_BYTES_MAX ? (size_t)n : KV_KEY_BYTES_MAX;
        uint32_t ttl = period_ttl(mark->period_seconds, exec->env.duplicate_default_seconds != 0
                                                            ? exec->env.duplicate_default_seconds
                                                            : 12u * 3600u);
        /* Best effort: a mark lost (store down) lets a later copy of the
         * message be delivered again, which loses nothing. */
        (void)kv_set(exec->kv, key, key_len, "1", 1, ttl);
    }
}

bool
sieve_exec_vacation_claim(struct sieve_exec *exec, const char *user, const char *sender,
                          const struct sieve_vacation *vacation)
{
    ASSERT(exec != NULL);
    ASSERT(vacation != NULL);
    if (user == NULL || sender == NULL || sender[0] == '\0') {
        return false;
    }
    char key[SIEVE_VACATION_KEY_BYTES];
    sieve_vacation_key(user, sender, vacation->handle != NULL ? vacation->handle : "", key);
    size_t key_len = strnlen(key, sizeof(key));
    if (key_len > KV_KEY_BYTES_MAX) {
        /* "vacation:" + a hex digest: the digest cut to what the store
         * keeps still holds 220 bits. */
        key_len = KV_KEY_BYTES_MAX;
    }
    uint32_t ttl = period_ttl(vacation->period_seconds, exec->env.vacation_default_seconds != 0
                                                            ? exec->env.vacation_default_seconds
                                                            : 7u * 86400u);
    /* One atomic increment: the first claim of a period sees 1, every
     * other one more; two workers can never both answer true. */
    uint64_t count = 0;
    if (kv_incr(exec->kv, key, key_len, ttl, &count) != 0) {
        return false; /* store down or key not ours: never reply twice */
    }
    return count == 1;
}

bool
sieve_exec_redirect_claim(struct sieve_exec *exec, const char *user, const char *message_id,
                          size_t message_id_len, const char *target)
{
    ASSERT(exec != NULL);
    ASSERT(user != NULL && target != NULL);
    if (message_id == NULL || message_id_len == 0 ||
        message_id_len > SIEVE_EXEC_REDIRECT_ID_BYTES_MAX) {
        return true;
    }
    /* user NUL id NUL target: no two different triples hash alike. */
    size_t user_len = strlen(user);
    size_t target_len = strlen(target);
    char input[2 * SMTP_ADDRESS_BYTES_MAX + SIEVE_EXEC_REDIRECT_ID_BYTES_MAX + 2];
    if (user_len + 1 + message_id_len + 1 + target_len > sizeof(input)) {
        return true;
    }
    memcpy(input, user, user_len + 1);
    memcpy(input + user_len + 1, message_id, message_id_len);
    input[user_len + 1 + message_id_len] = '\0';
    memcpy(input + user_len + 2 + message_id_len, target, target_len);
    char hex[65];
    mail_compose_sha256_hex(input, user_len + 2 + message_id_len + target_len, hex);
    char key[KV_KEY_BYTES_MAX + 1];
    int n = snprintf(key, sizeof(key), "sieve-redirect:%s", hex); /* cut: still 196 bits */
    ASSERT(n > 0);
    size_t key_len = (size_t)n < sizeof(key) ? (size_t)n : sizeof(key) - 1;
    uint64_t count = 0;
    if (kv_incr(exec->kv, key, key_len, exec->redirect_ttl_s, &count) != 0) {
        return true;
    }
    return count == 1;
}

int
sieve_exec_run_script(struct sieve_exec *exec, const struct sieve_exec_user *user,
                      const struct sieve_script *script, const struct sieve_message *message,
                      struct sieve_actions *actions, char *err, size_t err_bytes)
{
    ASSERT(exec != NULL);
    ASSERT(script != NULL);
    ASSERT(message != NULL);
    ASSERT(actions != NULL);
    ASSERT(err != NULL && err_bytes > 0);
    return run_chain(exec, user, script, message, actions, err, err_bytes);
}

void
sieve_exec_stats(struct sieve_exec *exec, struct sieve_exec_stats *stats_out)
{
    ASSERT(exec != NULL);
    ASSERT(stats_out != NULL);
    ASSERT(pthread_mutex_lock(&exec->lock) == 0);
    stats_out->compile_count = exec->compile_count;
    stats_out->hit_count = exec->hit_count;
    stats_out->entry_count = exec->entry_count;
    stats_out->bytes = exec->bytes;
    ASSERT(pthread_mutex_unlock(&exec->lock) == 0);
}

/* ---- reading and compiling files ---- */

/* Reads the regular file open as fd (identity in st) into a malloc'd
 * buffer of at most max_bytes. -EFBIG past it (also when the file grew
 * while being read). */
static int
read_bounded(int fd, const struct stat *st, size_t max_bytes, char **bytes_out, size_t *len_out)
{
    if ((uint64_t)st->st_size > max_bytes) {
        return -EFBIG;
    }
    size_t cap = (size_t)st->st_size + 1; /* one more: notices growth */
    char *buf = malloc(cap);
    if (buf == NULL) {
        return -ENOMEM;
    }
    size_t len = 0;
    for (;;) {
        if (len == cap) {
            if (len > max_bytes) {
                free(buf);
                return -EFBIG;
            }
            size_t grown = cap * 2 > max_bytes + 1 ? max_bytes + 1 : cap * 2;
            char *more = realloc(buf, grown);
            if (more == NULL) {
                free(buf);
                return -ENOMEM;
            }
            buf = more;
            cap = grown;
        }
        ssize_t n = read(fd, buf + len, cap - len);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            int rc = -errno;
            free(buf);
            return rc;
        }
        if (n == 0) {
            break;
        }
        len += (size_t)n;
    }
    if (len > max_bytes) {
        free(buf);
        return -EFBIG;
    }
    *bytes_out = buf;
    *len_out = len;
    return 0;
}

/* Opens path (following links: .dovecot.sieve is one), checks it is a
 * regular file and reads it. *st_out: the identity of what was read. */
static int
read_file(const char *path, size_t max_bytes, struct stat *st_out, char **bytes_out,
          size_t *len_out)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        return -errno;
    }
    int rc = 0;
    if (fstat(fd, st_out) != 0) {
        rc = -errno;
    } else if (!S_ISREG(st_out->st_mode)) {
        rc = S_ISDIR(st_out->st_mode) ? -EISDIR : -EINVAL;
    } else {
        rc = read_bounded(fd, st_out, max_bytes, bytes_out, len_out);
    }
    (void)close(fd); /* read-only: nothing to lose */
    return rc;
}

static void
limits_for(uint64_t max_script_size, struct sieve_limits *limits_out)
{
    sieve_limits_default(limits_out);
    if (max_script_size != 0 && max_script_size < limits_out->script_bytes_max) {
        limits_out->script_bytes_max = (size_t)max_script_size;
    }
}

/* "name: line N: text" for the first error, and how many more. */
static void
format_compile_error(const char *name, const struct sieve_errors *errors, char *err,
                     size_t err_bytes)
{
    if (errors->count == 0) {
        (void)snprintf(err, err_bytes, "%s: does not compile", name);
        return;
    }
    const struct sieve_error *first = &errors->items[0];
    size_t more = errors->count - 1;
    if (first->line > 0) {
        (void)snprintf(err, err_bytes, "%s: line %u: %s%s", name, (unsigned)first->line,
                       first->text, more > 0 || errors->is_truncated ? " (and more errors)" : "");
    } else {
        (void)snprintf(err, err_bytes, "%s: %s%s", name, first->text,
                       more > 0 || errors->is_truncated ? " (and more errors)" : "");
    }
}

int
sieve_exec_compile_file(const char *path, uint64_t max_script_size,
                        struct sieve_script **script_out, struct sieve_errors *errors_out)
{
    ASSERT(path != NULL);
    ASSERT(script_out != NULL);
    ASSERT(errors_out != NULL);
    *script_out = NULL;
    memset(errors_out, 0, sizeof(*errors_out));
    errors_out->count_max = SIEVE_ERRORS_MAX;
    struct sieve_limits limits;
    limits_for(max_script_size, &limits);
    struct stat st;
    char *bytes = NULL;
    size_t len = 0;
    int rc = read_file(path, limits.script_bytes_max, &st, &bytes, &len);
    if (rc == -EFBIG) {
        errors_out->count = 1;
        errors_out->items[0].line = 0;
        (void)snprintf(errors_out->items[0].text, sizeof(errors_out->items[0].text),
                       "script is larger than %zu bytes", limits.script_bytes_max);
        return rc;
    }
    if (rc != 0) {
        return rc;
    }
    rc = sieve_compile(bytes, len, &limits, script_out, errors_out);
    free(bytes);
    return rc;
}

/* Compiles path for the cache or the globals; err names the file. */
static int
compile_path(const char *path, const char *name, uint64_t max_script_size, struct stat *st_out,
             struct sieve_script **script_out, char *err, size_t err_bytes)
{
    struct sieve_limits limits;
    limits_for(max_script_size, &limits);
    char *bytes = NULL;
    size_t len = 0;
    int rc = read_file(path, limits.script_bytes_max, st_out, &bytes, &len);
    if (rc == -EFBIG) {
        (void)snprintf(err, err_bytes, "%s: script is larger than %zu bytes", name,
                       limits.script_bytes_max);
        return rc;
    }
    if (rc != 0) {
        (void)snprintf(err, err_bytes, "%s: %s", name, strerror(-rc));
        return rc;
    }
    struct sieve_errors errors;
    rc = sieve_compile(bytes, len, &limits, script_out, &errors);
    free(bytes);
    if (rc == -ENOMEM) {
        (void)snprintf(err, err_bytes, "%s: out of memory", name);
    } else if (rc != 0) {
        format_compile_error(name, &errors, err, err_bytes);
    }
    return rc;
}

/* ---- address lists ---- */

static char
lower_ascii(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

static int
compare_entries(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Parses a list file: one entry per line, a full address or "@domain";
 * blank lines and lines starting with '#' skipped; CRLF or LF. */
static int
list_parse(char *text, size_t len, struct address_list *list, char *err, size_t err_bytes,
           const char *name)
{
    size_t count = 0;
    size_t out = 0;
    size_t line_number = 0;
    size_t pos = 0;
    /* First pass in place: each kept line becomes a NUL-terminated lower
     * case entry at the front of text (out <= pos always). */
    while (pos < len) {
        line_number++;
        size_t end = pos;
        while (end < len && text[end] != '\n') {
            end++;
        }
        size_t line_end = end;
        if (line_end > pos && text[line_end - 1] == '\r') {
            line_end--;
        }
        if (line_end - pos > SIEVE_EXEC_LIST_LINE_BYTES_MAX) {
            (void)snprintf(err, err_bytes, "%s: line %zu: longer than %u bytes", name,
                           line_number, SIEVE_EXEC_LIST_LINE_BYTES_MAX);
            return -EINVAL;
        }
        size_t a = pos;
        size_t b = line_end;
        while (a < b && (text[a] == ' ' || text[a] == '\t')) {
            a++;
        }
        while (b > a && (text[b - 1] == ' ' || text[b - 1] == '\t')) {
            b--;
        }
        if (a < b && text[a] != '#') {
            if (memchr(text + a, '\0', b - a) != NULL) {
                (void)snprintf(err, err_bytes, "%s: line %zu: NUL byte", name, line_number);
                return -EINVAL;
            }
            if (count == SIEVE_EXEC_LIST_ENTRIES_MAX) {
                (void)snprintf(err, err_bytes, "%s: more than %u entries", name,
                               SIEVE_EXEC_LIST_ENTRIES_MAX);
                return -E2BIG;
            }
            for (size_t i = a; i < b; i++) {
                text[out++] = lower_ascii(text[i]);
            }
            text[out++] = '\0';
            count++;
        }
        pos = end < len ? end + 1 : end;
    }
    list->entries = calloc(count > 0 ? count : 1, sizeof(list->entries[0]));
    if (list->entries == NULL) {
        (void)snprintf(err, err_bytes, "%s: out of memory", name);
        return -ENOMEM;
    }
    size_t at = 0;
    for (size_t i = 0; i < count; i++) {
        list->entries[i] = text + at;
        at += strlen(text + at) + 1;
    }
    ASSERT(at == out);
    qsort(list->entries, count, sizeof(list->entries[0]), compare_entries);
    list->text = text;
    list->count = count;
    return 0;
}

static bool
list_has(const struct address_list *list, const char *key)
{
    return list->count > 0 && bsearch(&key, list->entries, list->count,
                                      sizeof(list->entries[0]), compare_entries) != NULL;
}

/* value matches an entry: the whole address (any case), or "@domain"
 * for exactly its domain. */
static int
list_lookup(const struct address_list *list, const char *value, size_t len)
{
    char key[SIEVE_EXEC_LIST_LINE_BYTES_MAX + 1];
    if (len == 0 || len > SIEVE_EXEC_LIST_LINE_BYTES_MAX || memchr(value, '\0', len) != NULL) {
        return 0; /* no entry is that long, empty, or holds a NUL */
    }
    for (size_t i = 0; i < len; i++) {
        key[i] = lower_ascii(value[i]);
    }
    key[len] = '\0';
    if (list_has(list, key)) {
        return 1;
    }
    const char *at = strrchr(key, '@');
    if (at != NULL && at != key && at[1] != '\0' && list_has(list, at)) {
        return 1;
    }
    return 0;
}

/* ---- the cache ---- */

static bool
same_file(const struct entry *entry, const struct stat *st)
{
    return entry->dev == st->st_dev && entry->ino == st->st_ino && entry->size == st->st_size &&
           entry->mtime.tv_sec == st->st_mtim.tv_sec &&
           entry->mtime.tv_nsec == st->st_mtim.tv_nsec;
}

static uint32_t
entry_hash(enum entry_kind kind, const char *path)
{
    return hash_fnv1a_string(path) ^ (uint32_t)kind;
}

static void
entry_free(struct entry *entry)
{
    ASSERT(entry->refs == 0);
    ASSERT(!entry->is_in_table);
    sieve_script_free(&entry->script);
    free(entry->list.entries);
    free(entry->list.text);
    free(entry->path);
    free(entry);
}

/* Locked. */
static struct entry *
table_find(struct sieve_exec *exec, enum entry_kind kind, const char *path, uint32_t hash)
{
    for (struct entry *e = exec->buckets[hash & (exec->bucket_count - 1)]; e != NULL;
         e = e->hash_next) {
        if (e->hash == hash && e->kind == kind && strcmp(e->path, path) == 0) {
            return e;
        }
    }
    return NULL;
}

/* Locked: entry becomes the most recently used. */
static void
lru_unlink(struct sieve_exec *exec, struct entry *entry)
{
    if (entry->lru_prev != NULL) {
        entry->lru_prev->lru_next = entry->lru_next;
    } else {
        exec->lru_head = entry->lru_next;
    }
    if (entry->lru_next != NULL) {
        entry->lru_next->lru_prev = entry->lru_prev;
    } else {
        exec->lru_tail = entry->lru_prev;
    }
    entry->lru_prev = NULL;
    entry->lru_next = NULL;
}

static void
lru_push_front(struct sieve_exec *exec, struct entry *entry)
{
    entry->lru_prev = NULL;
    entry->lru_next = exec->lru_head;
    if (exec->lru_head != NULL) {
        exec->lru_head->lru_prev = entry;
    } else {
        exec->lru_tail = entry;
    }
    exec->lru_head = entry;
}

/* Locked: takes entry out of the table and drops the table's reference. */
static void
table_remove(struct sieve_exec *exec, struct entry *entry)
{
    ASSERT(entry->is_in_table);
    struct entry **link = &exec->buckets[entry->hash & (exec->bucket_count - 1)];
    while (*link != entry) {
        ASSERT(*link != NULL);
        link = &(*link)->hash_next;
    }
    *link = entry->hash_next;
    entry->hash_next = NULL;
    lru_unlink(exec, entry);
    entry->is_in_table = false;
    ASSERT(exec->entry_count > 0);
    exec->entry_count--;
    ASSERT(exec->bytes >= entry->bytes);
    exec->bytes -= entry->bytes;
    ASSERT(entry->refs > 0);
    if (--entry->refs == 0) {
        entry_free(entry);
    }
}

/* Locked (or at destroy). */
static void
table_clear(struct sieve_exec *exec)
{
    while (exec->lru_head != NULL) {
        table_remove(exec, exec->lru_head);
    }
}

/* Locked: inserts entry (refs already counting the table) and evicts the
 * least recently used past the bounds. */
static void
table_insert(struct sieve_exec *exec, struct entry *entry)
{
    size_t b = entry->hash & (exec->bucket_count - 1);
    entry->hash_next = exec->buckets[b];
    exec->buckets[b] = entry;
    entry->is_in_table = true;
    lru_push_front(exec, entry);
    exec->entry_count++;
    exec->bytes += entry->bytes;
    while (exec->entry_count > exec->entries_max || exec->bytes > SIEVE_EXEC_CACHE_BYTES_MAX) {
        ASSERT(exec->lru_tail != NULL);
        table_remove(exec, exec->lru_tail);
    }
}

/* Reads and compiles (or parses) path into a new entry, refs 0. */
static int
entry_load(struct sieve_exec *exec, enum entry_kind kind, const char *path,
           struct entry **entry_out, char *err, size_t err_bytes)
{
    struct entry *entry = calloc(1, sizeof(*entry));
    char *path_copy = strdup(path);
    if (entry == NULL || path_copy == NULL) {
        free(entry);
        free(path_copy);
        (void)snprintf(err, err_bytes, "%s: out of memory", path);
        return -ENOMEM;
    }
    entry->path = path_copy;
    entry->kind = kind;
    entry->hash = entry_hash(kind, path);
    struct stat st;
    int rc;
    if (kind == ENTRY_SCRIPT) {
        rc = compile_path(path, path, exec->max_script_size, &st, &entry->script, err,
                          err_bytes);
        if (rc == 0) {
            entry->bytes = entry->script->arena.bytes_total + sizeof(*entry);
        }
    } else {
        char *text = NULL;
        size_t len = 0;
        rc = read_file(path, SIEVE_EXEC_LIST_BYTES_MAX, &st, &text, &len);
        if (rc == -EFBIG) {
            (void)snprintf(err, err_bytes, "%s: list is larger than %u bytes", path,
                           SIEVE_EXEC_LIST_BYTES_MAX);
        } else if (rc != 0) {
            (void)snprintf(err, err_bytes, "%s: %s", path, strerror(-rc));
        } else {
            rc = list_parse(text, len, &entry->list, err, err_bytes, path);
            if (rc != 0) {
                free(text);
            } else {
                entry->bytes = len + entry->list.count * sizeof(char *) + sizeof(*entry);
            }
        }
    }
    if (rc != 0) {
        entry_free(entry);
        return rc;
    }
    entry->dev = st.st_dev;
    entry->ino = st.st_ino;
    entry->size = st.st_size;
    entry->mtime = st.st_mtim;
    *entry_out = entry;
    return 0;
}

/* The compiled script or list of path, from the cache when the file is
 * unchanged, else read again. The caller holds a reference until
 * cache_release(). -ENOENT when there is no such file (err empty); other
 * errors with err saying why. */
static int
cache_acquire(struct sieve_exec *exec, enum entry_kind kind, const char *path,
              struct entry **entry_out, char *err, size_t err_bytes)
{
    err[0] = '\0';
    struct stat st;
    if (stat(path, &st) != 0) {
        int rc = -errno;
        if (rc == -ENOENT || rc == -ENOTDIR) {
            return -ENOENT;
        }
        (void)snprintf(err, err_bytes, "%s: %s", path, strerror(-rc));
        return rc;
    }
    uint32_t hash = entry_hash(kind, path);
    ASSERT(pthread_mutex_lock(&exec->lock) == 0);
    struct entry *found = table_find(exec, kind, path, hash);
    if (found != NULL && same_file(found, &st)) {
        found->refs++;
        lru_unlink(exec, found);
        lru_push_front(exec, found);
        exec->hit_count++;
        ASSERT(pthread_mutex_unlock(&exec->lock) == 0);
        *entry_out = found;
        return 0;
    }
    ASSERT(pthread_mutex_unlock(&exec->lock) == 0);

    /* Compiled outside the lock: other workers go on meanwhile. Two
     * workers may compile the same new file at once; the second to
     * finish uses the first one's entry. */
    struct entry *fresh = NULL;
    int rc = entry_load(exec, kind, path, &fresh, err, err_bytes);
    if (rc != 0) {
        if (rc == -ENOENT) {
            err[0] = '\0'; /* removed since the stat */
        }
        return rc;
    }
    ASSERT(pthread_mutex_lock(&exec->lock) == 0);
    exec->compile_count++;
    found = table_find(exec, kind, path, hash);
    struct entry *unused = NULL;
    if (found != NULL && found->dev == fresh->dev && found->ino == fresh->ino &&
        found->size == fresh->size && found->mtime.tv_sec == fresh->mtime.tv_sec &&
        found->mtime.tv_nsec == fresh->mtime.tv_nsec) {
        found->refs++;
        unused = fresh;
        fresh = found;
    } else {
        if (found != NULL) {
            table_remove(exec, found); /* an older version; runs holding it keep it */
        }
        fresh->refs = 2; /* the table's and the caller's */
        table_insert(exec, fresh);
    }
    ASSERT(pthread_mutex_unlock(&exec->lock) == 0);
    if (unused != NULL) {
        entry_free(unused);
    }
    *entry_out = fresh;
    return 0;
}

static void
cache_release(struct sieve_exec *exec, struct entry *entry)
{
    ASSERT(pthread_mutex_lock(&exec->lock) == 0);
    ASSERT(entry->refs > 0);
    bool is_last = --entry->refs == 0;
    ASSERT(pthread_mutex_unlock(&exec->lock) == 0);
    if (is_last) {
        entry_free(entry);
    }
}

/* ---- global scripts ---- */

static int
globals_add(struct globals *g, const char *path, const char *name, uint64_t max_script_size,
            char *err, size_t err_bytes)
{
    size_t index = g->count;
    ASSERT(index < 2 * SIEVE_EXEC_GLOBAL_SCRIPTS_MAX);
    struct stat st;
    int rc = compile_path(path, name, max_script_size, &st, &g->scripts[index], err, err_bytes);
    if (rc != 0) {
        return rc;
    }
    g->names[index] = strdup(path);
    if (g->names[index] == NULL) {
        sieve_script_free(&g->scripts[index]);
        (void)snprintf(err, err_bytes, "%s: out of memory", name);
        return -ENOMEM;
    }
    g->count++;
    return 0;
}

static int
compare_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Adds the scripts of one setting (a file, or a directory's *.sieve in
 * byte order) at the end of g. */
static int
globals_add_setting(struct globals *g, const char *key, const char *value,
                    uint64_t max_script_size, char *err, size_t err_bytes)
{
    if (value[0] == '\0') {
        return 0;
    }
    size_t base = g->count;
    if (strcmp(value, SIEVE_EXEC_BUILTIN) == 0) {
        struct sieve_errors errors;
        struct sieve_limits limits;
        limits_for(0, &limits);
        int rc = sieve_compile(sieve_exec_builtin_script, sieve_exec_builtin_script_bytes,
                               &limits, &g->scripts[base], &errors);
        if (rc != 0) {
            format_compile_error("builtin default script", &errors, err, err_bytes);
            return rc;
        }
        g->names[base] = strdup(SIEVE_EXEC_BUILTIN);
        if (g->names[base] == NULL) {
            sieve_script_free(&g->scripts[base]);
            (void)snprintf(err, err_bytes, "%s: out of memory", key);
            return -ENOMEM;
        }
        g->count++;
        return 0;
    }
    struct stat st;
    if (stat(value, &st) != 0) {
        int rc = -errno;
        /* Pigeonhole skips a missing location; a typo here would turn the
         * global filter off without a word, so we refuse to start. */
        (void)snprintf(err, err_bytes, "%s: %s: %s", key, value, strerror(-rc));
        return rc;
    }
    if (!S_ISDIR(st.st_mode)) {
        char name[EXEC_PATH_BYTES + 64];
        (void)snprintf(name, sizeof(name), "%s %s", key, value);
        return globals_add(g, value, name, max_script_size, err, err_bytes);
    }
    DIR *dir = opendir(value);
    if (dir == NULL) {
        int rc = -errno;
        (void)snprintf(err, err_bytes, "%s: %s: %s", key, value, strerror(-rc));
        return rc;
    }
    char *names[SIEVE_EXEC_GLOBAL_SCRIPTS_MAX];
    size_t name_count = 0;
    int rc = 0;
    for (size_t seen = 0;; seen++) {
        if (seen > 100000) { /* a directory this big is not a script folder */
            rc = -E2BIG;
            (void)snprintf(err, err_bytes, "%s: %s: too many entries", key, value);
            break;
        }
        errno = 0;
        struct dirent *d = readdir(dir);
        if (d == NULL) {
            if (errno != 0) {
                rc = -errno;
                (void)snprintf(err, err_bytes, "%s: %s: %s", key, value, strerror(-rc));
            }
            break;
        }
        size_t len = strlen(d->d_name);
        if (d->d_name[0] == '.' || len <= 6 || strcmp(d->d_name + len - 6, ".sieve") != 0) {
            continue;
        }
        if (name_count == SIEVE_EXEC_GLOBAL_SCRIPTS_MAX) {
            rc = -E2BIG;
            (void)snprintf(err, err_bytes, "%s: %s: more than %u scripts", key, value,
                           SIEVE_EXEC_GLOBAL_SCRIPTS_MAX);
            break;
        }
        names[name_count] = strdup(d->d_name);
        if (names[name_count] == NULL) {
            rc = -ENOMEM;
            (void)snprintf(err, err_bytes, "%s: out of memory", key);
            break;
        }
        name_count++;
    }
    (void)closedir(dir); /* read-only */
    if (rc == 0) {
        qsort(names, name_count, sizeof(names[0]), compare_names);
    }
    for (size_t i = 0; i < name_count; i++) {
        if (rc == 0) {
            char path[EXEC_PATH_BYTES];
            int n = snprintf(path, sizeof(path), "%s/%s", value, names[i]);
            if (n < 0 || (size_t)n >= sizeof(path)) {
                rc = -ENAMETOOLONG;
                (void)snprintf(err, err_bytes, "%s: %s: path too long", key, value);
            } else {
                struct stat file_st;
                if (stat(path, &file_st) == 0 && S_ISREG(file_st.st_mode)) {
                    rc = globals_add(g, path, path, max_script_size, err, err_bytes);
                }
            }
        }
        free(names[i]);
    }
    return rc;
}

static void
globals_free(struct globals *g)
{
    for (size_t i = 0; i < g->count; i++) {
        sieve_script_free(&g->scripts[i]);
        free(g->names[i]);
    }
    free(g);
}

static int
globals_load(struct sieve_exec *exec, struct globals **globals_out, char *err, size_t err_bytes)
{
    struct globals *g = calloc(1, sizeof(*g));
    if (g == NULL) {
        (void)snprintf(err, err_bytes, "sieve: out of memory");
        return -ENOMEM;
    }
    g->refs = 1;
    int rc = globals_add_setting(g, "sieve_before", exec->before, exec->max_script_size, err,
                                 err_bytes);
    g->before_count = g->count;
    if (rc == 0) {
        rc = globals_add_setting(g, "sieve_after", exec->after, exec->max_script_size, err,
                                 err_bytes);
    }
    if (rc != 0) {
        /* Scripts compiled before the failure are counted; free them. */
        globals_free(g);
        return rc;
    }
    *globals_out = g;
    return 0;
}

static struct globals *
globals_get(struct sieve_exec *exec)
{
    ASSERT(pthread_mutex_lock(&exec->lock) == 0);
    struct globals *g = exec->globals;
    ASSERT(g != NULL);
    g->refs++;
    ASSERT(pthread_mutex_unlock(&exec->lock) == 0);
    return g;
}

static void
globals_put(struct sieve_exec *exec, struct globals *g)
{
    ASSERT(pthread_mutex_lock(&exec->lock) == 0);
    ASSERT(g->refs > 0);
    bool is_last = --g->refs == 0;
    ASSERT(pthread_mutex_unlock(&exec->lock) == 0);
    if (is_last) {
        globals_free(g);
    }
}

/* ---- the environment ---- */

/* A script or list name as ManageSieve allows it (RFC 5804 1.6 and
 * store/sieve_scripts): UTF-8, no control characters, no '/', not
 * starting with '.', at most SIEVE_EXEC_NAME_BYTES_MAX bytes: ManageSieve's
 * own check, so a name it stores is a name include finds. */
static bool
name_is_valid(const char *name, size_t len)
{
    static_assert(SIEVE_EXEC_NAME_BYTES_MAX == MANAGESIEVE_SCRIPT_NAME_BYTES_MAX,
                  "include names are script names");
    return managesieve_script_name_is_valid(span_make(name, len));
}

static bool
ctx_hold(struct run_ctx *ctx, struct entry *entry)
{
    if (ctx->held_count == SIEVE_EXEC_HELD_MAX) {
        return false;
    }
    ctx->held[ctx->held_count++] = entry;
    return true;
}

static int
env_mailbox_exists(void *arg, const char *mailbox, size_t len)
{
    struct run_ctx *ctx = arg;
    if (maildir_folders_is_inbox(mailbox, len)) {
        return 1; /* every user has one: delivery makes it with the first message */
    }
    const char *root = ctx->user != NULL ? ctx->user->maildir : NULL;
    if (root == NULL) {
        return 0;
    }
    char storage[MAILDIR_FOLDERS_NAME_BYTES_MAX + 1];
    size_t storage_len = 0;
    if (mutf7_encode(span_make(mailbox, len), storage, sizeof(storage) - 1, &storage_len) != 0 ||
        maildir_folders_name_check(storage, storage_len) != 0) {
        return 0; /* a name no folder can have */
    }
    storage[storage_len] = '\0';
    char path[EXEC_PATH_BYTES];
    if (maildir_folders_path(root, storage, path, sizeof(path)) != 0) {
        return 0;
    }
    struct stat st;
    if (lstat(path, &st) != 0) {
        return errno == ENOENT || errno == ENOTDIR ? 0 : -errno;
    }
    return S_ISDIR(st.st_mode) ? 1 : 0; /* a symlink is never a folder (maildir_folders) */
}

static int
env_include_load(void *arg, bool is_global, const char *name,
                 const struct sieve_script **script_out)
{
    struct run_ctx *ctx = arg;
    size_t len = strlen(name);
    if (!name_is_valid(name, len)) {
        (void)snprintf(ctx->include_error, sizeof(ctx->include_error),
                       "include: bad script name");
        return -EINVAL;
    }
    char path[EXEC_PATH_BYTES];
    int n;
    if (is_global) {
        if (ctx->exec->global_dir[0] == '\0') {
            return -ENOENT;
        }
        n = snprintf(path, sizeof(path), "%s/%s.sieve", ctx->exec->global_dir, name);
    } else {
        if (ctx->user == NULL || ctx->user->home == NULL) {
            return -ENOENT;
        }
        n = snprintf(path, sizeof(path), "%s/sieve/%s.sieve", ctx->user->home, name);
    }
    if (n < 0 || (size_t)n >= sizeof(path)) {
        return -ENAMETOOLONG;
    }
    if (ctx->held_count == SIEVE_EXEC_HELD_MAX) {
        (void)snprintf(ctx->include_error, sizeof(ctx->include_error),
                       "include: more than %u scripts", SIEVE_EXEC_HELD_MAX);
        return -E2BIG;
    }
    struct entry *entry = NULL;
    char err[SIEVE_EXEC_ERROR_BYTES];
    int rc = cache_acquire(ctx->exec, ENTRY_SCRIPT, path, &entry, err, sizeof(err));
    if (rc != 0) {
        if (rc != -ENOENT) {
            (void)snprintf(ctx->include_error, sizeof(ctx->include_error), "%s", err);
        }
        return rc;
    }
    bool is_held = ctx_hold(ctx, entry);
    ASSERT(is_held); /* room checked above */
    *script_out = entry->script;
    return 0;
}

static bool
list_name_is_builtin(const char *name, size_t len)
{
    return (len == 9 && memcmp(name, "whitelist", 9) == 0) ||
           (len == 9 && memcmp(name, "blacklist", 9) == 0);
}

static int
env_list_contains(void *arg, const char *list, const char *value, size_t len)
{
    struct run_ctx *ctx = arg;
    size_t prefix = sizeof(LIST_PREFIX) - 1;
    if (strncmp(list, LIST_PREFIX, prefix) != 0) {
        return -ENOENT;
    }
    const char *name = list + prefix;
    size_t name_len = strlen(name);
    if (!name_is_valid(name, name_len)) {
        return -ENOENT;
    }
    bool is_builtin = list_name_is_builtin(name, name_len);
    if (ctx->user == NULL || ctx->user->home == NULL) {
        return is_builtin ? 0 : -ENOENT;
    }
    char path[EXEC_PATH_BYTES];
    int n = snprintf(path, sizeof(path), "%s/sieve/lists/%s", ctx->user->home, name);
    if (n < 0 || (size_t)n >= sizeof(path)) {
        return -ENAMETOOLONG;
    }
    for (size_t i = 0; i < ctx->held_count; i++) {
        struct entry *e = ctx->held[i];
        if (e->kind == ENTRY_LIST && strcmp(e->path, path) == 0) {
            return list_lookup(&e->list, value, len);
        }
    }
    struct entry *entry = NULL;
    char err[SIEVE_EXEC_ERROR_BYTES];
    int rc = cache_acquire(ctx->exec, ENTRY_LIST, path, &entry, err, sizeof(err));
    if (rc == -ENOENT) {
        /* whitelist and blacklist always exist: a missing file is an
         * empty list, so the shipped script runs for every user. */
        return is_builtin ? 0 : -ENOENT;
    }
    if (rc != 0) {
        (void)snprintf(ctx->include_error, sizeof(ctx->include_error), "%s", err);
        return rc;
    }
    int found = list_lookup(&entry->list, value, len);
    if (!ctx_hold(ctx, entry)) {
        cache_release(ctx->exec, entry);
    }
    return found;
}

static int
env_duplicate_seen(void *arg, const char *key)
{
    struct run_ctx *ctx = arg;
    char kv_key[KV_KEY_BYTES_MAX + 1];
    int n = snprintf(kv_key, sizeof(kv_key), "%s%s", DUPLICATE_KEY_PREFIX, key);
    ASSERT(n > 0);
    size_t key_len = (size_t)n < KV_KEY_BYTES_MAX ? (size_t)n : KV_KEY_BYTES_MAX;
    char value[KV_VALUE_BYTES_MAX];
    size_t value_len = 0;
    int rc = kv_get(ctx->exec->kv, kv_key, key_len, value, sizeof(value), &value_len);
    /* A store that cannot answer (-EAGAIN) is a miss, as the kv contract
     * says: at worst a duplicate is delivered, never a message dropped. */
    return rc == 0 ? 1 : 0;
}

/* ---- the chain ---- */

static uint32_t
period_ttl(uint64_t period_seconds, uint64_t fallback_seconds)
{
    uint64_t s = period_seconds != 0 ? period_seconds : fallback_seconds;
    if (s == 0) {
        s = 1; /* kv's 0 would mean "forever" */
    }
    return s > PERIOD_TTL_MAX ? PERIOD_TTL_MAX : (uint32_t)s;
}

static int
run_one(const struct sieve_script *script, const char *name, const struct sieve_message *message,
        const struct sieve_env *env, struct run_ctx *ctx, struct sieve_actions *actions,
        char *err, size_t err_bytes)
{
    struct sieve_run_error error;
    ctx->include_error[0] = '\0';
    int rc = sieve_run(script, message, env, &ctx->exec->limits, actions, &error);
    if (rc < 0) {
        int n;
        if (error.line > 0) {
            n = snprintf(err, err_bytes, "%s: line %u: %s", name, (unsigned)error.line,
                         error.text);
        } else {
            n = snprintf(err, err_bytes, "%s: %s", name, error.text);
        }
        if (ctx->include_error[0] != '\0' && n > 0 && (size_t)n < err_bytes) {
            (void)snprintf(err + n, err_bytes - (size_t)n, " (%s)", ctx->include_error);
        }
    }
    return rc;
}

static const char *
arena_copy(struct sieve_arena *arena, const char *text, size_t len, bool *is_failed)
{
    if (text == NULL) {
        return NULL;
    }
    const char *copy = sieve_arena_strdup(arena, text, len);
    if (copy == NULL) {
        *is_failed = true;
    }
    return copy;
}

/* Copies every string an action points to into the result's own arena
 * (target, flags, the vacation's fields). Returns 0 or -ENOMEM. */
static int
actions_detach(struct sieve_actions *actions)
{
    struct sieve_arena *arena = &actions->arena;
    bool is_failed = false;
    ASSERT(actions->count <= SIEVE_RUN_ACTIONS_MAX + 1);
    for (size_t i = 0; i < actions->count; i++) {
        struct sieve_action *a = &actions->items[i];
        if (a->target != NULL) {
            a->target = arena_copy(arena, a->target, a->target_len, &is_failed);
        }
        if (a->flags != NULL) {
            a->flags = arena_copy(arena, a->flags, strlen(a->flags), &is_failed);
        }
        if (a->vacation != NULL) {
            const struct sieve_vacation *from = a->vacation;
            struct sieve_vacation *to = sieve_arena_alloc(arena, sizeof(*to));
            if (to == NULL) {
                return -ENOMEM;
            }
            *to = *from;
            to->reason = arena_copy(arena, from->reason, from->reason_len, &is_failed);
            if (from->subject != NULL) {
                to->subject = arena_copy(arena, from->subject, strlen(from->subject),
                                         &is_failed);
            }
            if (from->from != NULL) {
                to->from = arena_copy(arena, from->from, strlen(from->from), &is_failed);
            }
            if (from->handle != NULL) {
                to->handle = arena_copy(arena, from->handle, strlen(from->handle), &is_failed);
            }
            if (from->reply_to != NULL) {
                to->reply_to = arena_copy(arena, from->reply_to, strlen(from->reply_to),
                                          &is_failed);
            }
            ASSERT(from->address_count <= SIEVE_RUN_VACATION_ADDRESSES_MAX);
            for (size_t j = 0; j < from->address_count; j++) {
                to->addresses[j] = arena_copy(arena, from->addresses[j],
                                              strlen(from->addresses[j]), &is_failed);
            }
            a->vacation = to;
        }
        if (is_failed) {
            return -ENOMEM;
        }
    }
    if (actions->implicit_flags != NULL) {
        actions->implicit_flags =
            arena_copy(arena, actions->implicit_flags, strlen(actions->implicit_flags),
                       &is_failed);
    }
    return is_failed ? -ENOMEM : 0;
}

static int
run_chain(struct sieve_exec *exec, const struct sieve_exec_user *user,
          const struct sieve_script *only, const struct sieve_message *message,
          struct sieve_actions *actions, char *err, size_t err_bytes)
{
    err[0] = '\0';
    sieve_actions_init(actions);
    struct run_ctx *ctx = malloc(sizeof(*ctx)); /* ~2 KiB: kept off small worker stacks */
    if (ctx == NULL) {
        (void)snprintf(err, err_bytes, "sieve: out of memory");
        sieve_actions_finish(actions);
        return -ENOMEM;
    }
    ctx->exec = exec;
    ctx->user = user;
    ctx->held_count = 0;
    ctx->include_error[0] = '\0';
    struct sieve_env env = exec->env;
    env.ctx = ctx;
    env.mailbox_exists = env_mailbox_exists;
    env.include_load = env_include_load;
    env.duplicate_seen = env_duplicate_seen;
    env.list_contains = env_list_contains;

    int rc = 0;
    struct entry *user_entry = NULL;
    struct globals *g = NULL;
    if (only != NULL) {
        rc = run_one(only, "script", message, &env, ctx, actions, err, err_bytes);
    } else {
        g = globals_get(exec);
        for (size_t i = 0; i < g->before_count && rc == 0 && actions->implicit_keep; i++) {
            rc = run_one(g->scripts[i], g->names[i], message, &env, ctx, actions, err,
                         err_bytes);
        }
        if (rc == 0 && actions->implicit_keep && user != NULL && user->home != NULL) {
            char path[EXEC_PATH_BYTES];
            int n = snprintf(path, sizeof(path), "%s/%s", user->home, USER_SCRIPT_NAME);
            struct entry *entry = NULL;
            if (n < 0 || (size_t)n >= sizeof(path)) {
                rc = -ENAMETOOLONG;
                (void)snprintf(err, err_bytes, "%s: path too long", user->home);
            } else {
                rc = cache_acquire(exec, ENTRY_SCRIPT, path, &entry, err, err_bytes);
            }
            if (rc == -ENOENT && err[0] == '\0') {
                rc = 0; /* no active script */
            } else if (rc == 0) {
                user_entry = entry;
                rc = run_one(entry->script, path, message, &env, ctx, actions, err, err_bytes);
            }
            /* A user script that cannot be read or compiled ends the
             * sequence (Pigeonhole): what sieve_before chose stays, and
             * the implicit keep is still in effect. */
        }
        for (size_t i = g->before_count; i < g->count && rc == 0 && actions->implicit_keep;
             i++) {
            rc = run_one(g->scripts[i], g->names[i], message, &env, ctx, actions, err,
                         err_bytes);
        }
    }
    sieve_actions_finish(actions);
    /* Actions may point into the scripts' trees; copied, they outlive a
     * reload or a cache eviction. Only then are the scripts let go. */
    if (actions_detach(actions) != 0) {
        sieve_actions_free(actions);
        sieve_actions_init(actions);
        sieve_actions_finish(actions);
        if (rc == 0) {
            rc = -ENOMEM;
            (void)snprintf(err, err_bytes, "sieve: out of memory for the result");
        }
    }
    if (user_entry != NULL) {
        cache_release(exec, user_entry);
    }
    for (size_t i = 0; i < ctx->held_count; i++) {
        cache_release(exec, ctx->held[i]);
    }
    if (g != NULL) {
        globals_put(exec, g);
    }
    free(ctx);
    return rc < 0 ? rc : 0;
}

/* ---- exposed for tests ---- */

int
sieve_exec_list_contains(struct sieve_exec *exec, const struct sieve_exec_user *user,
                         const char *list, const char *value, size_t len)
{
    ASSERT(exec != NULL);
    ASSERT(list != NULL);
    struct run_ctx *ctx = calloc(1, sizeof(*ctx));
    if (ctx == NULL) {
        return -ENOMEM;
    }
    ctx->exec = exec;
    ctx->user = user;
    int rc = env_list_contains(ctx, list, value, len);
    for (size_t i = 0; i < ctx->held_count; i++) {
        cache_release(exec, ctx->held[i]);
    }
    free(ctx);
    return rc;
}

int
sieve_exec_mailbox_exists(struct sieve_exec *exec, const struct sieve_exec_user *user,
                          const char *mailbox, size_t len)
{
    ASSERT(exec != NULL);
    struct run_ctx ctx = {.exec = exec, .user = user};
    return env_mailbox_exists(&ctx, mailbox, len);
}
