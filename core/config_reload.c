/*
 * core/config_reload.c - the live/restart classification of configuration
 * keys and the key-by-key comparison a reload makes.
 *
 * Owns one table: the keys that apply live. Everything else needs a
 * restart, so a key added to core/config.c is safe by default. Main thread
 * (and unit tests); no I/O.
 */
#include "core/config_reload.h"

#include <assert.h>
#include <stdio.h>
#include <string.h>

#include "core/assertions.h"

/* Keys whose new value goes into service on a reload, and where:
 * tls_*: core/tls.c builds a new certificate generation for new
 *        handshakes; log_*: core/log.c switches for the next line;
 * the rest: store/recipients.c builds the users and aliases tables from
 *        them (recipients_load_config) and nothing else reads them. */
static const char *const config_reload_live_keys[] = {
    "tls_cert",
    "tls_key",
    "tls_sni",
    "log_level",
    "log_format",
    "log_timestamps",
    "users_file",
    "aliases_file",
    "local_domains",
    "recipient_delimiter",
    "unknown_recipient_mailbox",
    "postmaster_address",
};

enum config_reload_kind
config_reload_kind(const char *name)
{
    for (size_t i = 0; i < sizeof(config_reload_live_keys) / sizeof(config_reload_live_keys[0]);
         i++) {
        if (strcmp(name, config_reload_live_keys[i]) == 0) {
            return CONFIG_RELOAD_LIVE;
        }
    }
    return CONFIG_RELOAD_RESTART;
}

void
config_reload_compare(const struct config *running, const struct config *next,
                      struct config_reload_changes *changes_out)
{
    size_t count = config_key_count();
    ASSERT(count <= CONFIG_RELOAD_KEYS_MAX);
    changes_out->live_count = 0;
    changes_out->restart_count = 0;
    for (size_t i = 0; i < count; i++) {
        if (config_key_equal(running, next, i)) {
            continue;
        }
        if (config_reload_kind(config_key_name(i)) == CONFIG_RELOAD_LIVE) {
            changes_out->live[changes_out->live_count++] = i;
        } else {
            changes_out->restart[changes_out->restart_count++] = i;
        }
    }
}

void
config_reload_merge(const struct config *running, const struct config *next,
                    struct config *merged_out)
{
    ASSERT(merged_out != running && merged_out != next);
    memcpy(merged_out, next, sizeof(*merged_out));
    size_t count = config_key_count();
    for (size_t i = 0; i < count; i++) {
        if (config_reload_kind(config_key_name(i)) == CONFIG_RELOAD_RESTART) {
            config_key_copy(merged_out, running, i);
        }
    }
}

void
config_reload_apply(struct config *running, const struct config *merged)
{
    ASSERT(running != merged);
    size_t count = config_key_count();
    for (size_t i = 0; i < count; i++) {
        if (config_reload_kind(config_key_name(i)) == CONFIG_RELOAD_LIVE &&
            !config_key_equal(running, merged, i)) {
            config_key_copy(running, merged, i);
        }
    }
    static_assert(sizeof(running->users_path) == sizeof(merged->users_path), "same field");
    memcpy(running->users_path, merged->users_path, sizeof(running->users_path));
    memcpy(running->aliases_path, merged->aliases_path, sizeof(running->aliases_path));
}

char *
config_reload_names(const size_t *indices, size_t count, char *out, size_t out_bytes)
{
    ASSERT(out_bytes >= 4);
    size_t len = 0;
    out[0] = '\0';
    for (size_t i = 0; i < count; i++) {
        const char *name = config_key_name(indices[i]);
        int n = snprintf(out + len, out_bytes - len, "%s%s", i > 0 ? ", " : "", name);
        if (n < 0 || (size_t)n >= out_bytes - len) {
            memcpy(out + out_bytes - 4, "...", 4);
            return out;
        }
        len += (size_t)n;
    }
    return out;
}
