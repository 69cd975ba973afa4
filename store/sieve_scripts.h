/*
 * store/sieve_scripts.h - a user's Sieve scripts on disk, kept the way
 * Pigeonhole keeps them so its users move over as they are: each script
 * is `<home>/sieve/NAME.sieve`, and the active one is the symbolic link
 * `<home>/.dovecot.sieve` -> `sieve/NAME.sieve`. (A `.dovecot.sieve` that
 * is a regular file, from a hand-made setup, is the active script with no
 * name; activating another moves it to `sieve/dovecot.orig.sieve` first,
 * so nothing is lost.)
 *
 * Writes are durable before they return: a new script is written into
 * `sieve/tmp/`, fsynced, renamed into place and the directory fsynced;
 * the link is replaced by rename, so a reader sees the old or the new
 * active script, never none.
 *
 * Blocking file system calls: workers only. Names must already be valid
 * (managesieve_script_name_is_valid).
 */
#ifndef TOASTER_STORE_SIEVE_SCRIPTS_H
#define TOASTER_STORE_SIEVE_SCRIPTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SIEVE_SCRIPTS_LIST_MAX 1000u /* scripts listed; more are not shown */
#define SIEVE_SCRIPTS_NAME_BYTES 256u

/* Pigeonhole's limits, by its names (0: no limit for the quotas). */
struct sieve_scripts_limits {
    uint64_t max_script_size;   /* sieve_max_script_size */
    uint32_t quota_max_scripts; /* sieve_quota_max_scripts */
    uint64_t quota_max_storage; /* sieve_quota_max_storage: bytes of all scripts */
};

struct sieve_scripts_entry {
    char name[SIEVE_SCRIPTS_NAME_BYTES];
    bool is_active;
};

/* The scripts of home (up to entries_max), sorted by name. Returns the
 * count or -errno. A missing sieve directory is an empty list. */
int sieve_scripts_list(const char *home, struct sieve_scripts_entry *entries, size_t entries_max);

/* The active script's name into name_out ("" when none is active, or the
 * active script is a regular file). Returns 0 or -errno. */
int sieve_scripts_active(const char *home, char *name_out, size_t name_bytes);

/* Would a script of size bytes named name fit? 0, -EFBIG (over
 * max_script_size), -EDQUOT (over quota_max_storage) or -EMLINK (over
 * quota_max_scripts). Replacing a script counts the new size only. */
int sieve_scripts_have_space(const char *home, const char *name, uint64_t size,
                             const struct sieve_scripts_limits *limits);

/* Store (or replace) name with len bytes, durably. Returns 0, the errors
 * of sieve_scripts_have_space, or -errno. */
int sieve_scripts_put(const char *home, const char *name, const char *bytes, size_t len,
                      const struct sieve_scripts_limits *limits);

/* Read name into a malloc'd buffer (*bytes_out, free() it) of *len_out
 * bytes, at most max_bytes. -ENOENT when there is no such script. */
int sieve_scripts_get(const char *home, const char *name, uint64_t max_bytes, char **bytes_out,
                      size_t *len_out);

/* Make name the active script, or deactivate with name "". -ENOENT when
 * there is no such script. */
int sieve_scripts_set_active(const char *home, const char *name);

/* Remove name: -EBUSY when it is the active one, -ENOENT when absent. */
int sieve_scripts_delete(const char *home, const char *name);

/* Rename old_name to new_name (the link follows an active script):
 * -ENOENT, -EEXIST when new_name exists. */
int sieve_scripts_rename(const char *home, const char *old_name, const char *new_name);

#endif
