/*
 * filters/sieve_exec.h - Sieve at delivery: the chain of scripts one
 * recipient's message goes through (sieve_before, the user's active
 * script, sieve_after: Pigeonhole's order, the next script running only
 * while keep is in effect), the cache of compiled scripts, and the
 * environment the interpreter asks (the user's folders, included
 * scripts, address lists, duplicate and vacation tracking in the
 * key-value store).
 *
 * Scripts are compiled once and kept, keyed by path and the file's
 * identity (device, inode, size, mtime), so a script uploaded over
 * ManageSieve or edited on disk is compiled again at its first use.
 * Thread-safe: workers run messages concurrently; toasterctl sieve-test
 * uses the same code. Every call may block on disk (and on the
 * key-value store within its own timeout): workers only.
 */
#ifndef TOASTER_FILTERS_SIEVE_EXEC_H
#define TOASTER_FILTERS_SIEVE_EXEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "filters/sieve_run.h"

struct kv;

#define SIEVE_EXEC_ERROR_BYTES 512u
#define SIEVE_EXEC_BUILTIN "builtin" /* sieve_before's value for the shipped script */

/* Bounds. The cache holds compiled scripts and address lists, evicting
 * the least recently used past either count or bytes; a script or list in
 * use by a run is never freed under it (reference counts). */
#define SIEVE_EXEC_CACHE_ENTRIES_DEFAULT 4096u /* cache_entries_max 0 means this */
#define SIEVE_EXEC_CACHE_BYTES_MAX (256u * 1024u * 1024u) /* compiled bytes kept */
#define SIEVE_EXEC_GLOBAL_SCRIPTS_MAX 64u   /* *.sieve of one sieve_before/after directory */
#define SIEVE_EXEC_NAME_BYTES_MAX 128u      /* include / list names (ManageSieve's bound) */
#define SIEVE_EXEC_LIST_BYTES_MAX (1024u * 1024u) /* one :addrbook list file */
#define SIEVE_EXEC_LIST_LINE_BYTES_MAX 512u /* one line of it, without the line end */
#define SIEVE_EXEC_LIST_ENTRIES_MAX 65536u  /* entries of one list */
#define SIEVE_EXEC_HELD_MAX (SIEVE_RUN_INCLUDES_MAX + 16u) /* scripts + lists one run holds */
/* Tracking without a key-value store (settings->kv NULL): a private
 * embedded store of this many entries, for the process's lifetime. */
#define SIEVE_EXEC_LOCAL_KV_ENTRIES 4096u
#define SIEVE_EXEC_REDIRECT_ID_BYTES_MAX 998u /* a Message-ID the loop guard looks at */

struct sieve_exec_settings {
    const char *before;        /* "builtin", "" or a file or a directory of *.sieve */
    const char *after;         /* "" or a file or a directory of *.sieve */
    const char *global_dir;    /* include :global; "" none */
    uint64_t max_script_size;  /* sieve_max_script_size */
    struct sieve_run_limits limits;
    struct sieve_env env;      /* settings only (spam/virus headers, periods); the
                                  callbacks are filled per run by sieve_exec */
    struct kv *kv;             /* duplicate and vacation tracking; NULL: a private
                                  embedded store (SIEVE_EXEC_LOCAL_KV_ENTRIES) */
    size_t cache_entries_max;  /* 0: SIEVE_EXEC_CACHE_ENTRIES_DEFAULT */
    uint64_t redirect_duplicate_seconds; /* redirect loop guard; 0: 12h (Pigeonhole's
                                            sieve_redirect_duplicate_period) */
};

/* The shipped global script (etc/sieve/default.sieve, compiled into the
 * binary), which sieve_before = "builtin" runs. */
extern const char sieve_exec_builtin_script[];
extern const size_t sieve_exec_builtin_script_bytes;

struct sieve_exec;

/* Compiles the global scripts now: a global script that does not
 * compile stops the daemon with its error and line in err. Returns 0
 * and *exec_out, or -errno. */
int sieve_exec_create(const struct sieve_exec_settings *settings, struct sieve_exec **exec_out,
                      char *err, size_t err_bytes);

/* Drops every cached compilation (SIGHUP / toasterctl reload) and
 * compiles the global scripts again; on an error the old ones stay. */
int sieve_exec_reload(struct sieve_exec *exec, char *err, size_t err_bytes);

void sieve_exec_destroy(struct sieve_exec **exec);

/* The recipient whose scripts run: user "local@domain", home the
 * directory holding .dovecot.sieve and sieve/ (NULL: global scripts
 * only), maildir its Maildir root (for mailboxexists; NULL: none). */
struct sieve_exec_user {
    const char *user;
    const char *home;
    const char *maildir;
};

/* Runs the chain for one recipient and leaves the finished result in
 * *actions (initialised here; the caller calls sieve_actions_free).
 * Returns 0; or < 0 when a script failed at run time or could not be
 * compiled (a user's broken script): actions then hold the implicit
 * keep and err says which script, line and why, for the log. */
int sieve_exec_run(struct sieve_exec *exec, const struct sieve_exec_user *user,
                   const struct sieve_message *message, struct sieve_actions *actions,
                   char *err, size_t err_bytes);

/* After the message is durable: records the result's duplicate marks. */
void sieve_exec_commit(struct sieve_exec *exec, const struct sieve_actions *actions);

/* Vacation response tracking: true when no reply went from user to
 * sender for handle within the vacation's period, and then records this
 * one; false when one did (or the store fails: never reply twice). */
bool sieve_exec_vacation_claim(struct sieve_exec *exec, const char *user, const char *sender,
                               const struct sieve_vacation *vacation);

/* The redirect loop guard (Pigeonhole's, on its duplicate database):
 * true when user has not redirected the message with this Message-ID to
 * target within the redirect period, and then records it; false when it
 * has, which means the message came back around a loop and must not go
 * out again. A message without a Message-ID, or a store that fails,
 * answers true: a loop then ends at the hop limit, mail is never lost. */
bool sieve_exec_redirect_claim(struct sieve_exec *exec, const char *user, const char *message_id,
                               size_t message_id_len, const char *target);

/* ---- for toasterctl sieve-test, the benchmark and tests ---- */

/* Reads and compiles the script file path (at most max_script_size
 * bytes; 0: SIEVE_SCRIPT_BYTES_DEFAULT), not cached. Returns 0 and
 * *script_out (free with sieve_script_free()); -EINVAL with errors_out
 * filled when it does not compile; -EFBIG when it is larger (also in
 * errors_out, line 0); -ENOENT or another -errno when it cannot be read
 * (errors_out empty). */
int sieve_exec_compile_file(const char *path, uint64_t max_script_size,
                            struct sieve_script **script_out, struct sieve_errors *errors_out);

/* Runs script alone (no before/after scripts) with user's environment
 * (user may be NULL: no home, no folders): initialises *actions, runs,
 * finishes. Returns as sieve_exec_run. */
int sieve_exec_run_script(struct sieve_exec *exec, const struct sieve_exec_user *user,
                          const struct sieve_script *script, const struct sieve_message *message,
                          struct sieve_actions *actions, char *err, size_t err_bytes);

/* The environment's answers as a run gets them (exposed for tests):
 * list_contains for list (":addrbook:NAME" = <home>/sieve/lists/NAME) and
 * mailbox_exists for a UTF-8 folder name in user's Maildir. */
int sieve_exec_list_contains(struct sieve_exec *exec, const struct sieve_exec_user *user,
                             const char *list, const char *value, size_t len);
int sieve_exec_mailbox_exists(struct sieve_exec *exec, const struct sieve_exec_user *user,
                              const char *mailbox, size_t len);

struct sieve_exec_stats {
    uint64_t compile_count; /* scripts and lists read and compiled into the cache */
    uint64_t hit_count;     /* found in the cache, file unchanged */
    size_t entry_count;     /* in the cache now */
    size_t bytes;           /* their compiled size */
};

void sieve_exec_stats(struct sieve_exec *exec, struct sieve_exec_stats *stats_out);

#endif
