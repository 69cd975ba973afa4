/*
 * tests/unit/test_config.c - the configuration parser: embedded defaults,
 * every value type with its bounds, and errors that name file and line.
 * Files are written to a temporary directory and loaded as toasterd would.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/config.h"
#include "tests/unit/unit.h"

static char tmp_dir[] = "/tmp/toaster-config-XXXXXX";

static const char *
write_file(const char *name, const char *text)
{
    static char path[512];
    (void)snprintf(path, sizeof(path), "%s/%s", tmp_dir, name);
    FILE *f = fopen(path, "w");
    if (f == NULL) {
        perror(path);
        exit(2);
    }
    fputs(text, f);
    fclose(f);
    return path;
}

static void
test_defaults(void)
{
    struct config c;
    config_defaults(&c);
    char err[256];
    CHECK(config_finish(&c, err, sizeof(err)) == 0);
    CHECK_STR(c.data_dir, "./var");
    CHECK_STR(c.users_path, "./var/users");
    CHECK_STR(c.aliases_path, "./var/aliases");
    CHECK_STR(c.control_socket, "");
    CHECK_STR(c.control_socket_path, "./var/toasterd.sock");
    CHECK(c.listen[LISTENER_SMTP].count == 1);
    CHECK_STR(c.listen[LISTENER_SMTP].addresses[0].text, "127.0.0.1:2525");
    CHECK_STR(c.listen[LISTENER_SUBMISSION].addresses[0].text, "127.0.0.1:2587");
    CHECK_STR(c.listen[LISTENER_SUBMISSIONS].addresses[0].text, "127.0.0.1:2465");
    CHECK_STR(c.listen[LISTENER_IMAP].addresses[0].text, "127.0.0.1:2143");
    CHECK_STR(c.listen[LISTENER_IMAPS].addresses[0].text, "127.0.0.1:2993");
    CHECK_STR(c.listen[LISTENER_MANAGESIEVE].addresses[0].text, "127.0.0.1:4190");
    CHECK_STR(c.listen[LISTENER_HTTP].addresses[0].text, "127.0.0.1:8080");
    CHECK(c.message_size_limit == 50ULL * 1024 * 1024);
    CHECK(c.recipient_limit == 1000);
    CHECK(c.smtp_idle_timeout_ms == 300000);
    CHECK(c.fsync);
    CHECK(c.bare_lf == BARE_LF_NORMALIZE);
    CHECK(c.reactor_threads >= 1);
    CHECK(c.worker_threads >= 1);
    CHECK(c.myhostname[0] != '\0');
}

static void
test_values(void)
{
    struct config c;
    char err[256];
    config_defaults(&c);
    CHECK(config_set(&c, "message_size_limit", "10m", err, sizeof(err)) == 0);
    CHECK(c.message_size_limit == 10ULL * 1024 * 1024);
    CHECK(config_set(&c, "message_size_limit", "2g", err, sizeof(err)) == 0);
    CHECK(config_set(&c, "message_size_limit", "3g", err, sizeof(err)) == -EINVAL);
    CHECK(strstr(err, "outside") != NULL);
    CHECK(config_set(&c, "message_size_limit", "1023", err, sizeof(err)) == -EINVAL);
    CHECK(config_set(&c, "message_size_limit", "-5", err, sizeof(err)) == -EINVAL);
    CHECK(config_set(&c, "message_size_limit", "12x", err, sizeof(err)) == -EINVAL);
    CHECK(config_set(&c, "message_size_limit", "99999999999999999999999", err,
                     sizeof(err)) == -EINVAL);
    CHECK(config_set(&c, "smtp_idle_timeout", "5m", err, sizeof(err)) == 0);
    CHECK(c.smtp_idle_timeout_ms == 300000);
    CHECK(config_set(&c, "smtp_idle_timeout", "250ms", err, sizeof(err)) == 0);
    CHECK(c.smtp_idle_timeout_ms == 250);
    CHECK(config_set(&c, "smtp_idle_timeout", "7", err, sizeof(err)) == 0);
    CHECK(c.smtp_idle_timeout_ms == 7000); /* a bare number means seconds */
    CHECK(config_set(&c, "smtp_idle_timeout", "2d", err, sizeof(err)) == -EINVAL);
    CHECK(config_set(&c, "smtp_idle_timeout_ms", "1s", err, sizeof(err)) == -EINVAL);
    CHECK(config_set(&c, "fsync", "no", err, sizeof(err)) == 0);
    CHECK(!c.fsync);
    CHECK(config_set(&c, "fsync", "maybe", err, sizeof(err)) == -EINVAL);
    CHECK(config_set(&c, "bare_lf", "reject", err, sizeof(err)) == 0);
    CHECK(c.bare_lf == BARE_LF_REJECT);
    CHECK(config_set(&c, "bare_lf", "allow", err, sizeof(err)) == -EINVAL);
    CHECK(config_set(&c, "recipient_limit", "10000", err, sizeof(err)) == 0);
    CHECK(config_set(&c, "recipient_limit", "10001", err, sizeof(err)) == -EINVAL);
    CHECK(config_set(&c, "recipient_limit", "0", err, sizeof(err)) == -EINVAL);
    CHECK(config_set(&c, "no_such_key", "1", err, sizeof(err)) == -EINVAL);
    CHECK(strstr(err, "unknown key 'no_such_key'") != NULL);
}

static void
test_listen(void)
{
    struct config c;
    char err[256];
    config_defaults(&c);
    CHECK(config_set(&c, "smtp_listen", "127.0.0.1:25, [::1]:25,0.0.0.0:2525", err,
                     sizeof(err)) == 0);
    CHECK(c.listen[LISTENER_SMTP].count == 3);
    CHECK(c.listen[LISTENER_SMTP].addresses[1].addr.ss_family == AF_INET6);
    CHECK(config_set(&c, "smtp_listen", "", err, sizeof(err)) == 0);
    CHECK(c.listen[LISTENER_SMTP].count == 0);
    CHECK(config_set(&c, "smtp_listen", "localhost:25", err, sizeof(err)) == -EINVAL);
    CHECK(config_set(&c, "smtp_listen", "127.0.0.1:0", err, sizeof(err)) == -EINVAL);
    CHECK(config_set(&c, "smtp_listen", "127.0.0.1:65536", err, sizeof(err)) == -EINVAL);
    CHECK(config_set(&c, "smtp_listen", "127.0.0.1", err, sizeof(err)) == -EINVAL);
    CHECK(config_set(&c, "smtp_listen", "[::1:25", err, sizeof(err)) == -EINVAL);
    /* LISTEN_ADDRESSES_MAX entries fit, one more does not. */
    char list[4096] = "";
    for (int i = 0; i < LISTEN_ADDRESSES_MAX; i++) {
        char one[32];
        (void)snprintf(one, sizeof(one), "%s127.0.0.%d:25", i ? "," : "", i + 1);
        strcat(list, one);
    }
    CHECK(config_set(&c, "smtp_listen", list, err, sizeof(err)) == 0);
    strcat(list, ",127.0.0.99:25");
    CHECK(config_set(&c, "smtp_listen", list, err, sizeof(err)) == -EINVAL);
}

/* tls_cert and tls_key go together; tls_sni adds one entry per line, up
 * to TLS_SNI_MAX, and an empty value clears them. */
static void
test_tls(void)
{
    static struct config c; /* the tls_sni table is large */
    char err[512];
    config_defaults(&c);
    CHECK_STR(c.tls_cert, "");
    CHECK_STR(c.tls_key, "");
    CHECK(c.tls_sni.count == 0);
    CHECK(config_finish(&c, err, sizeof(err)) == 0);

    CHECK(config_set(&c, "tls_cert", "/etc/ssl/mail.pem", err, sizeof(err)) == 0);
    CHECK(config_finish(&c, err, sizeof(err)) == -EINVAL);
    CHECK(strstr(err, "tls_key") != NULL);
    CHECK(config_set(&c, "tls_key", "/etc/ssl/mail.key", err, sizeof(err)) == 0);
    CHECK(config_finish(&c, err, sizeof(err)) == 0);
    CHECK(config_set(&c, "tls_cert", "", err, sizeof(err)) == 0);
    CHECK(config_finish(&c, err, sizeof(err)) == -EINVAL);

    config_defaults(&c);
    CHECK(config_set(&c, "tls_sni", "Mail.Example.com /a.pem /a.key", err, sizeof(err)) == 0);
    CHECK(config_set(&c, "tls_sni", "  *.example.net\t/b.pem   /b.key ", err, sizeof(err)) == 0);
    CHECK(c.tls_sni.count == 2);
    CHECK_STR(c.tls_sni.entries[0].domain, "mail.example.com");
    CHECK_STR(c.tls_sni.entries[0].cert_file, "/a.pem");
    CHECK_STR(c.tls_sni.entries[0].key_file, "/a.key");
    CHECK_STR(c.tls_sni.entries[1].domain, "*.example.net");
    CHECK_STR(c.tls_sni.entries[1].key_file, "/b.key");
    CHECK(config_set(&c, "tls_sni", "MAIL.example.com /c.pem /c.key", err, sizeof(err)) ==
          -EINVAL);
    CHECK(strstr(err, "twice") != NULL);
    static const char *const bad[] = {
        "mail.example.com /a.pem",
        "mail.example.com /a.pem /a.key /extra",
        "*.*.example.com /a.pem /a.key",
        "mail.*.com /a.pem /a.key",
        "*example.com /a.pem /a.key",
        "*. /a.pem /a.key",
        "mail..example.com /a.pem /a.key",
        ".example.com /a.pem /a.key",
        "example.com. /a.pem /a.key",
        "ex ample.com",
        "m@il.example.com /a.pem /a.key",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        CHECK(config_set(&c, "tls_sni", bad[i], err, sizeof(err)) == -EINVAL);
        CHECK(strstr(err, "tls_sni") != NULL);
    }
    CHECK(c.tls_sni.count == 2);
    CHECK(config_set(&c, "tls_sni", "", err, sizeof(err)) == 0);
    CHECK(c.tls_sni.count == 0);
    for (int i = 0; i < TLS_SNI_MAX; i++) {
        char line[128];
        (void)snprintf(line, sizeof(line), "d%d.example /c%d.pem /k%d.key", i, i, i);
        CHECK(config_set(&c, "tls_sni", line, err, sizeof(err)) == 0);
    }
    CHECK(c.tls_sni.count == TLS_SNI_MAX);
    CHECK(config_set(&c, "tls_sni", "one.more.example /c.pem /k.key", err, sizeof(err)) ==
          -EINVAL);
    CHECK(strstr(err, "more than") != NULL);
    CHECK(c.tls_sni.count == TLS_SNI_MAX);

    /* Repeated lines in a file add up. */
    config_defaults(&c);
    const char *path = write_file("sni.conf",
                                  "tls_cert = /etc/ssl/default.pem\n"
                                  "tls_key = /etc/ssl/default.key\n"
                                  "tls_sni = a.example /a.pem /a.key\n"
                                  "tls_sni = *.b.example /b.pem /b.key\n");
    CHECK(config_load_file(&c, path, err, sizeof(err)) == 0);
    CHECK(config_finish(&c, err, sizeof(err)) == 0);
    CHECK(c.tls_sni.count == 2);
    CHECK_STR(c.tls_sni.entries[1].domain, "*.b.example");
    path = write_file("sni_bad.conf", "tls_sni = a.example /a.pem\n");
    CHECK(config_load_file(&c, path, err, sizeof(err)) == -EINVAL);
    CHECK(strstr(err, "sni_bad.conf:1: tls_sni") != NULL);
}

static void
test_files(void)
{
    struct config c;
    char err[512];
    config_defaults(&c);
    const char *path = write_file("good.conf",
                                  "# comment\n"
                                  "\n"
                                  "data_dir = /srv/mail   # trailing comment\n"
                                  "  recipient_limit=50\r\n"
                                  "users_file = /etc/toaster/users\n");
    CHECK(config_load_file(&c, path, err, sizeof(err)) == 0);
    CHECK(config_finish(&c, err, sizeof(err)) == 0);
    CHECK_STR(c.data_dir, "/srv/mail");
    CHECK(c.recipient_limit == 50);
    CHECK_STR(c.users_path, "/etc/toaster/users");
    CHECK_STR(c.aliases_path, "/srv/mail/aliases");
    CHECK_STR(c.control_socket_path, "/srv/mail/toasterd.sock");

    config_defaults(&c);
    CHECK(config_set(&c, "control_socket", "/run/toaster/ctl.sock", err, sizeof(err)) == 0);
    CHECK(config_finish(&c, err, sizeof(err)) == 0);
    CHECK_STR(c.control_socket_path, "/run/toaster/ctl.sock");

    config_defaults(&c);
    path = write_file("unknown.conf", "data_dir = /x\n\nbogus_key = 1\n");
    CHECK(config_load_file(&c, path, err, sizeof(err)) == -EINVAL);
    CHECK(strstr(err, "unknown.conf:3: unknown key 'bogus_key'") != NULL);

    config_defaults(&c);
    path = write_file("badvalue.conf", "recipient_limit = lots\n");
    CHECK(config_load_file(&c, path, err, sizeof(err)) == -EINVAL);
    CHECK(strstr(err, "badvalue.conf:1: recipient_limit") != NULL);

    config_defaults(&c);
    path = write_file("noequals.conf", "data_dir /x\n");
    CHECK(config_load_file(&c, path, err, sizeof(err)) == -EINVAL);
    CHECK(strstr(err, "noequals.conf:1:") != NULL);

    config_defaults(&c);
    CHECK(config_load_file(&c, "/nonexistent/toaster.conf", err, sizeof(err)) == -ENOENT);

    config_defaults(&c);
    char *long_line = malloc(10000);
    memset(long_line, 'x', 9998);
    memcpy(long_line, "data_dir = ", 11);
    long_line[9998] = '\n';
    long_line[9999] = '\0';
    path = write_file("long.conf", long_line);
    free(long_line);
    CHECK(config_load_file(&c, path, err, sizeof(err)) == -EINVAL);
    CHECK(strstr(err, "long.conf:1: line longer") != NULL);

    config_defaults(&c);
    CHECK(config_set(&c, "recv_buffer_count", "1000", err, sizeof(err)) == 0);
    CHECK(config_finish(&c, err, sizeof(err)) == -EINVAL);
    CHECK(strstr(err, "power of two") != NULL);
}

/* Periods in seconds (CONFIG_SECONDS): suffixes up to weeks, beyond what
 * a u32 of milliseconds holds, and the Sieve periods' ordering check. */
static void
test_seconds(void)
{
    struct config c;
    char err[256];
    config_defaults(&c);
    CHECK(c.sieve_vacation_default_period_s == 7u * 86400u);
    CHECK(c.sieve_vacation_max_period_s == 90u * 86400u);
    CHECK(c.sieve_duplicate_default_period_s == 7u * 86400u);
    CHECK(config_set(&c, "sieve_vacation_max_period", "2w", err, sizeof(err)) == 0);
    CHECK(c.sieve_vacation_max_period_s == 14u * 86400u);
    CHECK(config_set(&c, "sieve_vacation_max_period", "3600", err, sizeof(err)) == 0);
    CHECK(c.sieve_vacation_max_period_s == 3600u);
    CHECK(config_set(&c, "sieve_vacation_max_period", "5ms", err, sizeof(err)) == -EINVAL);
    CHECK(config_set(&c, "sieve_vacation_max_period", "3651d", err, sizeof(err)) == -EINVAL);
    CHECK(config_set(&c, "sieve_vacation_max_period_s", "1d", err, sizeof(err)) == -EINVAL);
    /* max below the default: refused by config_finish */
    CHECK(config_finish(&c, err, sizeof(err)) == -EINVAL);
    CHECK(strstr(err, "sieve_vacation") != NULL);
    CHECK(config_set(&c, "sieve_vacation_max_period", "30d", err, sizeof(err)) == 0);
    CHECK(config_finish(&c, err, sizeof(err)) == 0);
    CHECK(config_set(&c, "sieve_duplicate_default_period", "8d", err, sizeof(err)) == 0);
    CHECK(config_finish(&c, err, sizeof(err)) == -EINVAL);
}

/* The outbound relay's keys: Postfix's defaults, the checks that tie them. */
static void
test_relay(void)
{
    struct config c;
    char err[256];
    config_defaults(&c);
    CHECK(c.outbound_delivery);
    CHECK(c.queue_retry_min_s == 300u && c.queue_retry_max_s == 4200u);
    CHECK(c.queue_lifetime_s == 5u * 86400u && c.delay_warning_time_s == 0u);
    CHECK(c.smtp_connect_timeout_ms == 30000u && c.smtp_greeting_timeout_ms == 300000u);
    CHECK(c.smtp_data_done_timeout_ms == 600000u);
    CHECK(c.smtp_mx_address_limit == 5u && c.smtp_mx_session_limit == 2u);
    CHECK(c.smtp_mx_port == 25u && strcmp(c.smtp_tls_security, "may") == 0);
    CHECK(c.smtp_destination_concurrency_limit == 20u && c.smtp_process_limit == 100u);
    CHECK(c.smtp_connection_cache_time_limit_ms == 2000u);
    CHECK(strcmp(c.smtp_address_preference, "ipv4") == 0);
    CHECK(config_finish(&c, err, sizeof(err)) == 0);
    CHECK(config_set(&c, "queue_retry_min", "2s", err, sizeof(err)) == 0);
    CHECK(config_set(&c, "queue_retry_max", "1s", err, sizeof(err)) == 0);
    CHECK(config_finish(&c, err, sizeof(err)) == -EINVAL);
    CHECK(strstr(err, "queue_retry_min") != NULL);
    CHECK(config_set(&c, "queue_retry_max", "1h", err, sizeof(err)) == 0);
    CHECK(config_finish(&c, err, sizeof(err)) == 0);
    CHECK(config_set(&c, "queue_lifetime", "101d", err, sizeof(err)) == -EINVAL);
    CHECK(config_set(&c, "smtp_mx_port", "0", err, sizeof(err)) == -EINVAL);
    CHECK(config_set(&c, "smtp_tls_security", "maybe", err, sizeof(err)) == 0);
    CHECK(config_finish(&c, err, sizeof(err)) == -EINVAL);
    CHECK(strstr(err, "smtp_tls_security") != NULL);
    CHECK(config_set(&c, "smtp_tls_security", "verify", err, sizeof(err)) == 0);
    CHECK(config_set(&c, "smtp_address_preference", "any", err, sizeof(err)) == 0);
    CHECK(config_finish(&c, err, sizeof(err)) == -EINVAL);
    CHECK(strstr(err, "smtp_address_preference") != NULL);
    CHECK(config_set(&c, "smtp_address_preference", "ipv6-only", err, sizeof(err)) == 0);
    CHECK(config_finish(&c, err, sizeof(err)) == 0);
}

int
main(void)
{
    if (mkdtemp(tmp_dir) == NULL) {
        perror("mkdtemp");
        return 2;
    }
    test_defaults();
    test_values();
    test_seconds();
    test_relay();
    test_listen();
    test_tls();
    test_files();
    char cmd[600];
    (void)snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp_dir);
    (void)system(cmd);
    UNIT_DONE();
}
