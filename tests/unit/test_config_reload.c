/*
 * tests/unit/test_config_reload.c - which configuration keys a reload
 * applies live and which need a restart (core/config_reload.h): the
 * classification, the key-by-key comparison of two configurations built
 * with config_set() as a file would, the merge that keeps restart keys at
 * their running values, and applying the live ones. No files, no daemon.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "core/config.h"
#include "core/config_reload.h"
#include "tests/unit/unit.h"

static struct config running;
static struct config next;
static struct config merged;

static void
fresh(struct config *c)
{
    char err[256];
    config_defaults(c);
    CHECK(config_set(c, "data_dir", "/var/lib/toaster", err, sizeof(err)) == 0);
    CHECK(config_set(c, "myhostname", "mx.example.com", err, sizeof(err)) == 0);
    CHECK(config_finish(c, err, sizeof(err)) == 0);
}

static void
set(struct config *c, const char *key, const char *value)
{
    char err[256];
    int rc = config_set(c, key, value, err, sizeof(err));
    if (rc != 0) {
        (void)fprintf(stderr, "config_set %s: %s\n", key, err);
    }
    CHECK(rc == 0);
}

static bool
has(const size_t *indices, size_t count, const char *name)
{
    for (size_t i = 0; i < count; i++) {
        if (strcmp(config_key_name(indices[i]), name) == 0) {
            return true;
        }
    }
    return false;
}

static void
test_kinds(void)
{
    static const char *const live[] = { "tls_cert", "tls_key", "tls_sni", "log_level",
                                        "log_format", "log_timestamps", "users_file",
                                        "aliases_file", "local_domains", "recipient_delimiter",
                                        "unknown_recipient_mailbox", "postmaster_address" };
    for (size_t i = 0; i < sizeof(live) / sizeof(live[0]); i++) {
        CHECK(config_reload_kind(live[i]) == CONFIG_RELOAD_LIVE);
    }
    static const char *const restart[] = { "smtp_listen", "imaps_listen", "data_dir",
                                           "reactor_threads", "worker_threads", "user", "group",
                                           "chroot", "max_connections", "message_size_limit",
                                           "control_socket", "redis", "myhostname",
                                           "smtp_idle_timeout", "no_such_key", "" };
    for (size_t i = 0; i < sizeof(restart) / sizeof(restart[0]); i++) {
        CHECK(config_reload_kind(restart[i]) == CONFIG_RELOAD_RESTART);
    }
    /* Every live name is a real key (a typo here would make it restart). */
    for (size_t i = 0; i < sizeof(live) / sizeof(live[0]); i++) {
        bool found = false;
        for (size_t k = 0; k < config_key_count(); k++) {
            found = found || strcmp(config_key_name(k), live[i]) == 0;
        }
        CHECK(found);
    }
    /* Files spell durations without "_ms": the names here do too. */
    bool found = false;
    for (size_t k = 0; k < config_key_count(); k++) {
        found = found || strcmp(config_key_name(k), "smtp_idle_timeout") == 0;
        CHECK(strcmp(config_key_name(k), "smtp_idle_timeout_ms") != 0);
    }
    CHECK(found);
    CHECK(config_key_count() <= CONFIG_RELOAD_KEYS_MAX);
}

static void
test_no_change(void)
{
    fresh(&running);
    fresh(&next);
    struct config_reload_changes changes;
    config_reload_compare(&running, &next, &changes);
    CHECK(changes.live_count == 0);
    CHECK(changes.restart_count == 0);
    /* Setting a key to the value it has is no change, even after a
     * longer value left bytes behind the terminator. */
    set(&next, "tls_cert", "/etc/a-much-longer-path/cert.pem");
    set(&next, "tls_cert", "");
    set(&next, "smtp_listen", "127.0.0.1:2525");
    config_reload_compare(&running, &next, &changes);
    CHECK(changes.live_count == 0);
    CHECK(changes.restart_count == 0);
}

static void
test_changes(void)
{
    fresh(&running);
    fresh(&next);
    char err[256];
    set(&next, "tls_cert", "/etc/toaster/tls/cert.pem");
    set(&next, "tls_key", "/etc/toaster/tls/key.pem");
    set(&next, "log_level", "debug");
    set(&next, "users_file", "/etc/toaster/users");
    set(&next, "smtp_listen", "127.0.0.1:25, [::1]:25");
    set(&next, "data_dir", "/srv/toaster");
    set(&next, "user", "vmail");
    set(&next, "smtp_idle_timeout", "10s");
    CHECK(config_finish(&next, err, sizeof(err)) == 0);

    struct config_reload_changes changes;
    config_reload_compare(&running, &next, &changes);
    CHECK(changes.live_count == 4);
    CHECK(has(changes.live, changes.live_count, "tls_cert"));
    CHECK(has(changes.live, changes.live_count, "tls_key"));
    CHECK(has(changes.live, changes.live_count, "log_level"));
    CHECK(has(changes.live, changes.live_count, "users_file"));
    CHECK(changes.restart_count == 4);
    CHECK(has(changes.restart, changes.restart_count, "smtp_listen"));
    CHECK(has(changes.restart, changes.restart_count, "data_dir"));
    CHECK(has(changes.restart, changes.restart_count, "user"));
    CHECK(has(changes.restart, changes.restart_count, "smtp_idle_timeout"));
    CHECK(!has(changes.restart, changes.restart_count, "tls_cert"));

    char names[256];
    config_reload_names(changes.restart, changes.restart_count, names, sizeof(names));
    CHECK(strstr(names, "smtp_listen") != NULL);
    CHECK(strstr(names, ", ") != NULL);
    /* Cut with "..." when the buffer is small, and still terminated. */
    config_reload_names(changes.restart, changes.restart_count, names, 12);
    CHECK(strlen(names) == 11);
    CHECK(strcmp(names + 8, "...") == 0);

    /* Merge: the live values of next, the restart values of running. */
    config_reload_merge(&running, &next, &merged);
    CHECK(config_finish(&merged, err, sizeof(err)) == 0);
    CHECK_STR(merged.tls_cert, "/etc/toaster/tls/cert.pem");
    CHECK(merged.log_level == 3);
    CHECK_STR(merged.users_path, "/etc/toaster/users");
    CHECK_STR(merged.data_dir, "/var/lib/toaster");
    CHECK_STR(merged.user, "");
    CHECK(merged.smtp_idle_timeout_ms == 300000);
    CHECK(merged.listen[LISTENER_SMTP].count == 1);
    CHECK_STR(merged.listen[LISTENER_SMTP].addresses[0].text, "127.0.0.1:2525");
    /* aliases_file is unchanged: its path stays under the running data_dir,
     * not next's. */
    CHECK_STR(merged.aliases_path, "/var/lib/toaster/aliases");

    /* Apply: running takes the live keys; restart keys stay. */
    config_reload_apply(&running, &merged);
    CHECK_STR(running.tls_cert, "/etc/toaster/tls/cert.pem");
    CHECK_STR(running.tls_key, "/etc/toaster/tls/key.pem");
    CHECK(running.log_level == 3);
    CHECK_STR(running.users_path, "/etc/toaster/users");
    CHECK_STR(running.data_dir, "/var/lib/toaster");
    CHECK(running.smtp_idle_timeout_ms == 300000);
    /* A second reload of the same file: only the restart keys differ, and
     * they are reported again (the file still says something else). */
    config_reload_compare(&running, &next, &changes);
    CHECK(changes.live_count == 0);
    CHECK(changes.restart_count == 4);
}

static void
test_lists(void)
{
    fresh(&running);
    fresh(&next);
    set(&running, "tls_sni", "mail.example.org /a/cert.pem /a/key.pem");
    set(&next, "tls_sni", "mail.example.org /a/cert.pem /a/key.pem");
    struct config_reload_changes changes;
    config_reload_compare(&running, &next, &changes);
    CHECK(changes.live_count == 0);
    /* One more SNI line. */
    set(&next, "tls_sni", "mail.example.net /b/cert.pem /b/key.pem");
    config_reload_compare(&running, &next, &changes);
    CHECK(changes.live_count == 1);
    CHECK(has(changes.live, changes.live_count, "tls_sni"));
    /* Same count, another key file. */
    set(&next, "tls_sni", "");
    set(&next, "tls_sni", "mail.example.org /a/cert.pem /a/key2.pem");
    config_reload_compare(&running, &next, &changes);
    CHECK(changes.live_count == 1);
    /* dkim_key lines need a restart (the signer holds the keys). */
    fresh(&next);
    set(&next, "tls_sni", "mail.example.org /a/cert.pem /a/key.pem");
    set(&next, "dkim_key", "example.com s1 /k.pem");
    config_reload_compare(&running, &next, &changes);
    CHECK(changes.live_count == 0);
    CHECK(changes.restart_count == 1);
    CHECK(has(changes.restart, changes.restart_count, "dkim_key"));
    /* Listen lists of the same length, one address different. */
    fresh(&next);
    set(&next, "tls_sni", "mail.example.org /a/cert.pem /a/key.pem");
    set(&next, "imap_listen", "127.0.0.2:2143");
    config_reload_compare(&running, &next, &changes);
    CHECK(changes.restart_count == 1);
    CHECK(has(changes.restart, changes.restart_count, "imap_listen"));
}

static void
test_service_keys(void)
{
    char err[256];
    struct config c;
    config_defaults(&c);
    CHECK_STR(c.user, "");
    CHECK_STR(c.group, "");
    CHECK_STR(c.chroot, "");
    CHECK_STR(c.log_format, "auto");
    CHECK(config_finish(&c, err, sizeof(err)) == 0);
    set(&c, "log_format", "journal");
    CHECK(config_finish(&c, err, sizeof(err)) == 0);
    set(&c, "log_format", "plain");
    CHECK(config_finish(&c, err, sizeof(err)) == 0);
    set(&c, "log_format", "syslog");
    CHECK(config_finish(&c, err, sizeof(err)) == -EINVAL);
    CHECK(strstr(err, "log_format") != NULL);
    set(&c, "log_format", "auto");
    set(&c, "chroot", "/var/lib/toaster");
    CHECK(config_finish(&c, err, sizeof(err)) == -EINVAL);
    CHECK(strstr(err, "needs user") != NULL); /* tests/unit/test_chroot_paths.c: the rest */
    set(&c, "chroot", "");
    set(&c, "user", "vmail");
    set(&c, "group", "vmail");
    CHECK(config_finish(&c, err, sizeof(err)) == 0);
}

int
main(void)
{
    test_kinds();
    test_no_change();
    test_changes();
    test_lists();
    test_service_keys();
    UNIT_DONE();
}
