/*
 * core/config_reload.h - what a reload may change while toasterd runs.
 *
 * A reload (SIGHUP, `toasterctl reload`) reads the configuration file into
 * a new struct config and compares it with the running one key by key.
 * A key is LIVE when the daemon can put its new value in service without
 * dropping a connection: the TLS certificates (new handshakes), the log
 * settings, and what the users and aliases tables are built from. Every
 * other key is RESTART: a change is logged as "needs a restart" and the
 * running value stays. Live keys are read by the main thread only, so
 * copying them into the running configuration races with nothing.
 * Pure: no I/O; the caller logs.
 */
#ifndef TOASTER_CORE_CONFIG_RELOAD_H
#define TOASTER_CORE_CONFIG_RELOAD_H

#include <stdbool.h>
#include <stddef.h>

#include "core/config.h"

enum config_reload_kind {
    CONFIG_RELOAD_LIVE,
    CONFIG_RELOAD_RESTART,
};

/* Bound on the keys compared (config_key_count() is asserted below it). */
#define CONFIG_RELOAD_KEYS_MAX 512

/* Which kind the key named name (as files spell it) is. Unknown names
 * are RESTART. */
enum config_reload_kind config_reload_kind(const char *name);

/* The keys whose values differ, as indices for config_key_name(). */
struct config_reload_changes {
    size_t live[CONFIG_RELOAD_KEYS_MAX];
    size_t live_count;
    size_t restart[CONFIG_RELOAD_KEYS_MAX];
    size_t restart_count;
};

/* Compare running with next (both through config_finish()). */
void config_reload_compare(const struct config *running, const struct config *next,
                           struct config_reload_changes *changes_out);

/* merged_out = next, but with every RESTART key as running has it: what
 * the daemon will run with after the reload. The caller runs
 * config_finish() on it for the derived paths. */
void config_reload_merge(const struct config *running, const struct config *next,
                         struct config *merged_out);

/* Copy the LIVE keys and the paths derived from them (users_path,
 * aliases_path) from merged into running. Main thread. */
void config_reload_apply(struct config *running, const struct config *merged);

/* "tls_cert, tls_key" for the indices given (NUL-terminated, cut with
 * "..." when out is too small). Returns out. */
char *config_reload_names(const size_t *indices, size_t count, char *out, size_t out_bytes);

#endif
