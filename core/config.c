/*
 * core/config.c - parse and validate the configuration.
 *
 * One table describes every key: its type, where it lives in struct config,
 * its embedded default and its bounds. The file format is "key = value"
 * lines with '#' comments; an unknown key or a bad value is an error that
 * names the file and line. Runs once at start-up on the main thread.
 */
#include "core/config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#include "core/assertions.h"
#include "core/cidr_list.h"
#include "core/chroot_paths.h"
#include "core/kv_redis.h"

#define CONFIG_LINE_BYTES_MAX 4096
#define CONFIG_FILE_LINES_MAX 100000

enum config_type {
    CONFIG_STRING,
    CONFIG_U32,
    CONFIG_BYTES,    /* u64 with optional k/m/g suffix */
    CONFIG_DURATION, /* u32 milliseconds, value takes ms/s/m/h/d suffix */
    CONFIG_SECONDS,  /* u64 seconds, value takes s/m/h/d/w suffix: periods past 49 days */
    CONFIG_BOOL,
    CONFIG_LISTEN,
    CONFIG_BARE_LF,
    CONFIG_LOG_LEVEL,
    CONFIG_TLS_SNI, /* repeated: each line adds an entry, an empty value clears */
    CONFIG_LINES,   /* repeated: each line kept as written, an empty value clears */
};

struct config_key {
    const char      *name;
    enum config_type type;
    size_t           offset;
    size_t           size;    /* strings: buffer size */
    const char      *default_text;
    uint64_t         min;
    uint64_t         max;
};

#define KEY(t, field, def, lo, hi)                                                \
    { .name = #field, .type = (t), .offset = offsetof(struct config, field),          \
      .size = sizeof(((struct config *)0)->field), .default_text = (def), .min = (lo), \
      .max = (hi) }
#define LISTEN_KEY(n, proto, def)                                                    \
    { .name = (n), .type = CONFIG_LISTEN,                                            \
      .offset = offsetof(struct config, listen) + (proto) * sizeof(struct listen_list), \
      .size = sizeof(struct listen_list), .default_text = (def), .min = 0, .max = 0 }

#define STR(x) #x
#define XSTR(x) STR(x)

static const struct config_key config_keys[] = {
    LISTEN_KEY("smtp_listen", LISTENER_SMTP, "127.0.0.1:2525"),
    LISTEN_KEY("submission_listen", LISTENER_SUBMISSION, "127.0.0.1:2587"),
    LISTEN_KEY("submissions_listen", LISTENER_SUBMISSIONS, "127.0.0.1:2465"),
    LISTEN_KEY("imap_listen", LISTENER_IMAP, "127.0.0.1:2143"),
    LISTEN_KEY("imaps_listen", LISTENER_IMAPS, "127.0.0.1:2993"),
    LISTEN_KEY("managesieve_listen", LISTENER_MANAGESIEVE, "127.0.0.1:4190"),
    LISTEN_KEY("http_listen", LISTENER_HTTP, "127.0.0.1:8080"),
    LISTEN_KEY("lmtp_listen", LISTENER_LMTP, ""),
    LISTEN_KEY("https_listen", LISTENER_HTTPS, ""),
    KEY(CONFIG_STRING, data_dir, "./var", 0, 0),
    KEY(CONFIG_STRING, users_file, "", 0, 0),
    KEY(CONFIG_STRING, aliases_file, "", 0, 0),
    KEY(CONFIG_STRING, redis, "", 0, 0),
    KEY(CONFIG_STRING, myhostname, "", 0, 0),
    KEY(CONFIG_STRING, local_domains, "", 0, 0),
    KEY(CONFIG_STRING, recipient_delimiter, "+", 0, 0),
    KEY(CONFIG_STRING, lmtp_socket_mode, "0660", 0, 0),
    KEY(CONFIG_STRING, unknown_recipient_mailbox, "", 0, 0),
    KEY(CONFIG_STRING, postmaster_address, "", 0, 0),
    KEY(CONFIG_STRING, control_socket, "", 0, 0),
    KEY(CONFIG_STRING, tls_cert, "", 0, 0),
    KEY(CONFIG_STRING, tls_key, "", 0, 0),
    KEY(CONFIG_TLS_SNI, tls_sni, "", 0, 0),
    KEY(CONFIG_U32, reactor_threads, "0", 0, REACTOR_THREADS_CEILING),
    KEY(CONFIG_STRING, reactor_cpus, "", 0, 0),
    KEY(CONFIG_U32, worker_threads, "0", 0, WORKER_THREADS_CEILING),
    KEY(CONFIG_U32, ring_entries, "1024", 64, 32768),
    KEY(CONFIG_BOOL, sqpoll, "no", 0, 0),
    KEY(CONFIG_DURATION, sqpoll_idle_ms, "50ms", 1, 10000),
    KEY(CONFIG_U32, reactor_io_workers, "32", 0, 1024),
    KEY(CONFIG_BYTES, recv_buffer_bytes, XSTR(RECV_BUFFER_BYTES_DEFAULT), 4096, 1048576),
    KEY(CONFIG_U32, recv_buffer_count, XSTR(RECV_BUFFER_COUNT_DEFAULT), 16, 32768),
    KEY(CONFIG_U32, spool_buffers, XSTR(SPOOL_BUFFERS_DEFAULT), 1, 65536),
    KEY(CONFIG_U32, worker_queue_entries, XSTR(WORKER_QUEUE_DEFAULT), 16, 1048576),
    KEY(CONFIG_U32, max_connections, XSTR(CONNECTIONS_PER_REACTOR_DEFAULT), 1,
        CONNECTIONS_PER_REACTOR_CEILING),
    KEY(CONFIG_U32, max_connections_per_ip, XSTR(CONNECTIONS_PER_IP_DEFAULT), 1,
        CONNECTIONS_PER_REACTOR_CEILING),
    KEY(CONFIG_BYTES, message_size_limit, "50m", 1024, MESSAGE_BYTES_CEILING),
    KEY(CONFIG_U32, recipient_limit, XSTR(SMTP_RCPT_DEFAULT), 1, SMTP_RCPT_CEILING),
    KEY(CONFIG_U32, hopcount_limit, "50", 0, 1000),
    KEY(CONFIG_U32, smtp_error_limit, XSTR(SMTP_ERRORS_DEFAULT), 1, 1000),
    KEY(CONFIG_U32, smtp_junk_command_limit, XSTR(SMTP_JUNK_COMMANDS_DEFAULT), 1, 100000),
    KEY(CONFIG_BARE_LF, bare_lf, "normalize", 0, 0),
    KEY(CONFIG_DURATION, smtp_idle_timeout_ms, "300s", 100, 3600000),
    KEY(CONFIG_DURATION, smtp_data_timeout_ms, "300s", 100, 3600000),
    KEY(CONFIG_DURATION, send_timeout_ms, "300s", 100, 3600000),
    KEY(CONFIG_DURATION, imap_login_timeout_ms, "60s", 100, 3600000),
    KEY(CONFIG_DURATION, imap_idle_timeout_ms, "30m", 100, 86400000),
    KEY(CONFIG_U32, imap_scratch_buffers, "64", 1, 65536),
    KEY(CONFIG_BOOL, allow_plaintext_auth, "no", 0, 0),
    KEY(CONFIG_BOOL, loopback_is_secure, "yes", 0, 0),
    KEY(CONFIG_DURATION, managesieve_timeout_ms, "30m", 1000, 86400000),
    KEY(CONFIG_BYTES, sieve_max_script_size, "1m", 64, 64u * 1024 * 1024),
    KEY(CONFIG_U32, sieve_quota_max_scripts, "0", 0, 1000000),
    KEY(CONFIG_BYTES, sieve_quota_max_storage, "0", 0, 1ull << 40),
    KEY(CONFIG_BOOL, sieve, "yes", 0, 0),
    KEY(CONFIG_STRING, sieve_before, "builtin", 0, 0),
    KEY(CONFIG_STRING, sieve_after, "", 0, 0),
    KEY(CONFIG_STRING, sieve_global_dir, "", 0, 0),
    KEY(CONFIG_U32, sieve_max_actions, "32", 1, 32),
    KEY(CONFIG_U32, sieve_max_redirects, "4", 0, 32),
    KEY(CONFIG_U32, sieve_max_steps, "100000", 100, 100000),
    KEY(CONFIG_STRING, sieve_spamtest_status_header, "X-Spam-Score", 0, 0),
    KEY(CONFIG_U32, sieve_spamtest_max_value, "10", 1, 1000000),
    KEY(CONFIG_STRING, sieve_virustest_status_header, "X-Virus", 0, 0),
    KEY(CONFIG_SECONDS, sieve_vacation_min_period_s, "1d", 0, 3650u * 86400u),
    KEY(CONFIG_SECONDS, sieve_vacation_default_period_s, "7d", 0, 3650u * 86400u),
    KEY(CONFIG_SECONDS, sieve_vacation_max_period_s, "90d", 0, 3650u * 86400u),
    KEY(CONFIG_SECONDS, sieve_duplicate_default_period_s, "7d", 0, 3650u * 86400u),
    KEY(CONFIG_SECONDS, sieve_duplicate_max_period_s, "7d", 0, 3650u * 86400u),
    KEY(CONFIG_SECONDS, sieve_redirect_duplicate_period_s, "12h", 60, 3650u * 86400u),
    KEY(CONFIG_BOOL, outbound_delivery, "yes", 0, 0),
    KEY(CONFIG_STRING, relay_host, "", 0, 0),
    KEY(CONFIG_STRING, relay_domains, "", 0, 0),
    KEY(CONFIG_STRING, transport_file, "", 0, 0),
    KEY(CONFIG_STRING, smtp_sasl_password_file, "", 0, 0),
    KEY(CONFIG_SECONDS, queue_retry_min_s, "5m", 1, 86400u),
    KEY(CONFIG_SECONDS, queue_retry_max_s, "70m", 1, 86400u),
    KEY(CONFIG_SECONDS, queue_lifetime_s, "5d", 1, 100u * 86400u),
    KEY(CONFIG_SECONDS, delay_warning_time_s, "0", 0, 100u * 86400u),
    KEY(CONFIG_DURATION, smtp_connect_timeout_ms, "30s", 100, 3600000),
    KEY(CONFIG_DURATION, smtp_greeting_timeout_ms, "300s", 100, 3600000),
    KEY(CONFIG_DURATION, smtp_data_done_timeout_ms, "600s", 100, 3600000),
    KEY(CONFIG_STRING, smtp_helo_name, "", 0, 0),
    KEY(CONFIG_U32, smtp_mx_address_limit, "5", 1, 20),
    KEY(CONFIG_U32, smtp_mx_session_limit, "2", 1, 20),
    KEY(CONFIG_STRING, smtp_address_preference, "ipv4", 0, 0),
    KEY(CONFIG_U32, smtp_mx_port, "25", 1, 65535),
    KEY(CONFIG_STRING, smtp_tls_security, "may", 0, 0),
    KEY(CONFIG_STRING, smtp_tls_policy_file, "", 0, 0),
    KEY(CONFIG_STRING, smtp_tls_ca_file, "", 0, 0),
    KEY(CONFIG_BOOL, smtp_mta_sts, "yes", 0, 0),
    KEY(CONFIG_DURATION, mta_sts_fetch_timeout_ms, "10s", 100, 60000),
    KEY(CONFIG_U32, mta_sts_port, "443", 1, 65535),
    KEY(CONFIG_U32, mta_sts_cache_max, "10000", 1, 1000000),
    KEY(CONFIG_DURATION, http_timeout_ms, "10s", 100, 300000),
    KEY(CONFIG_STRING, metrics_allow, "127.0.0.0/8, ::1", 0, 0),
    KEY(CONFIG_STRING, mta_sts_mode, "testing", 0, 0),
    KEY(CONFIG_STRING, mta_sts_mx, "", 0, 0),
    KEY(CONFIG_SECONDS, mta_sts_max_age_s, "1w", 60, 31557600u),
    KEY(CONFIG_U32, smtp_destination_concurrency_limit, "20", 1, 10000),
    KEY(CONFIG_DURATION, smtp_destination_rate_delay_ms, "0s", 0, 3600000),
    KEY(CONFIG_DURATION, smtp_connection_cache_time_limit_ms, "2s", 0, 300000),
    KEY(CONFIG_U32, smtp_process_limit, "100", 1, 100000),
    KEY(CONFIG_STRING, mynetworks, "", 0, 0),
    KEY(CONFIG_U32, submission_messages_per_hour, "0", 0, 1000000),
    KEY(CONFIG_U32, submission_recipients_per_message, "100", 1, SMTP_RCPT_CEILING),
    KEY(CONFIG_BOOL, imap_fetch_splice, "yes", 0, 0),
    KEY(CONFIG_BOOL, direct_sockets, "yes", 0, 0),
    KEY(CONFIG_DURATION, shutdown_timeout_ms, "30s", 0, 3600000),
    KEY(CONFIG_DURATION, kv_snapshot_interval_ms, "300s", 0, 86400000u),
    KEY(CONFIG_STRING, redis_password, "", 0, 0),
    KEY(CONFIG_U32, redis_db, "0", 0, 65535),
    KEY(CONFIG_STRING, redis_prefix, "toaster:", 0, 0),
    KEY(CONFIG_DURATION, redis_timeout_ms, "100ms", 1, 10000),
    KEY(CONFIG_U32, redis_cache_s, "300", 0, 3600),
    KEY(CONFIG_U32, redis_cache_entries, "16384", 64, 16777216),
    KEY(CONFIG_STRING, dns_servers, "", 0, 0),
    KEY(CONFIG_DURATION, dns_timeout_ms, "2s", 100, 30000),
    KEY(CONFIG_U32, dns_tries, "2", 1, 5),
    KEY(CONFIG_U32, dns_cache_entries, "10000", 16, 1000000),
    KEY(CONFIG_STRING, dns_override_file, "", 0, 0),
    KEY(CONFIG_BOOL, dkim_verify, "yes", 0, 0),
    KEY(CONFIG_LINES, dkim_key, "", 0, 0),
    KEY(CONFIG_BOOL, spf, "yes", 0, 0),
    KEY(CONFIG_BOOL, dmarc, "yes", 0, 0),
    KEY(CONFIG_BOOL, dmarc_reject, "yes", 0, 0),
    KEY(CONFIG_STRING, authserv_id, "", 0, 0),
    KEY(CONFIG_STRING, public_suffix_file, "/usr/share/publicsuffix/public_suffix_list.dat", 0, 0),
    KEY(CONFIG_DURATION, filter_time_budget_ms, "120s", 0, 3600000),
    KEY(CONFIG_STRING, filter_order, "clamav, dkim, spf, dmarc, spam", 0, 0),
    KEY(CONFIG_BOOL, spam, "yes", 0, 0),
    KEY(CONFIG_STRING, spam_rules_file, "", 0, 0),
    KEY(CONFIG_STRING, spam_reject_score, "15", 0, 0),
    KEY(CONFIG_STRING, spam_add_header_score, "6", 0, 0),
    KEY(CONFIG_STRING, spam_greylist_score, "4", 0, 0),
    KEY(CONFIG_STRING, spam_rewrite_subject_score, "", 0, 0),
    KEY(CONFIG_STRING, greylist, "score", 0, 0),
    KEY(CONFIG_BOOL, greylist_local, "no", 0, 0),
    KEY(CONFIG_DURATION, greylist_delay_ms, "300s", 1000, 86400000),
    KEY(CONFIG_DURATION, greylist_retry_window_ms, "2d", 60000, 2592000000u),
    KEY(CONFIG_DURATION, greylist_pass_ttl_ms, "35d", 60000, 4233600000u),
    KEY(CONFIG_STRING, ratelimit_sender, "", 0, 0),
    KEY(CONFIG_STRING, ratelimit_ip, "", 0, 0),
    KEY(CONFIG_STRING, ratelimit_rcpt, "", 0, 0),
    KEY(CONFIG_U32, bayes_min_learns, "200", 1, 1000000),
    KEY(CONFIG_U32, spam_many_recipients, "50", 1, 100000),
    KEY(CONFIG_U32, uribl_lookups_max, "16", 0, 16),
    KEY(CONFIG_BOOL, clamav, "yes", 0, 0),
    KEY(CONFIG_STRING, clamav_db, "", 0, 0),
    KEY(CONFIG_STRING, clamav_action, "reject", 0, 0),
    KEY(CONFIG_STRING, quarantine_mailbox, "", 0, 0),
    /* Ceilings as filters/clamav_engine.h has them (libclamav's own). */
    KEY(CONFIG_BYTES, clamav_max_scan_size, "100m", 1, 4ull * 1024 * 1024 * 1024 - 1),
    KEY(CONFIG_BYTES, clamav_max_file_size, "64m", 1, 2ull * 1024 * 1024 * 1024 - 1),
    KEY(CONFIG_U32, clamav_max_recursion, "17", 1, 64),
    KEY(CONFIG_U32, clamav_max_files, "10000", 1, 100000),
    KEY(CONFIG_DURATION, clamav_max_scan_time_ms, "120s", 1, 3600000),
    KEY(CONFIG_BOOL, clamav_alert_exceeds_max, "no", 0, 0),
    KEY(CONFIG_BOOL, fsync, "yes", 0, 0),
    KEY(CONFIG_DURATION, commit_window_ms, "0ms", 0, 1000),
    KEY(CONFIG_BOOL, spool_unnamed, "yes", 0, 0),
    KEY(CONFIG_BOOL, log_timestamps, "yes", 0, 0),
    KEY(CONFIG_LOG_LEVEL, log_level, "info", 0, 0),
    KEY(CONFIG_STRING, log_format, "auto", 0, 0),
    KEY(CONFIG_STRING, user, "", 0, 0),
    KEY(CONFIG_STRING, group, "", 0, 0),
    KEY(CONFIG_STRING, chroot, "", 0, 0),
    KEY(CONFIG_DURATION, postscreen_greet_wait_ms, "0s", 0, 60000),
    KEY(CONFIG_DURATION, postscreen_bad_ttl_ms, "24h", 1000, 2592000000u),
    KEY(CONFIG_DURATION, postscreen_good_ttl_ms, "7d", 1000, 2592000000u),
    KEY(CONFIG_U32, postscreen_rate_limit, "0", 0, 1000000),
    KEY(CONFIG_STRING, postscreen_access, "", 0, 0),
    KEY(CONFIG_U32, kv_embedded_entries, XSTR(KV_EMBEDDED_ENTRIES_DEFAULT), 64,
        KV_EMBEDDED_ENTRIES_CEILING),
};

/* Keys are spelled in files without the "_ms" that the struct fields carry. */
static const char *
config_key_public_name(const struct config_key *key, char *buf, size_t buf_bytes)
{
    size_t n = strlen(key->name);
    if (key->type == CONFIG_DURATION && n > 3 && strcmp(key->name + n - 3, "_ms") == 0) {
        (void)snprintf(buf, buf_bytes, "%.*s", (int)(n - 3), key->name);
        return buf;
    }
    if (key->type == CONFIG_SECONDS && n > 2 && strcmp(key->name + n - 2, "_s") == 0) {
        (void)snprintf(buf, buf_bytes, "%.*s", (int)(n - 2), key->name);
        return buf;
    }
    return key->name;
}

static const struct config_key *
config_key_find(const char *name)
{
    char buf[128];
    for (size_t i = 0; i < sizeof(config_keys) / sizeof(config_keys[0]); i++) {
        if (strcmp(config_key_public_name(&config_keys[i], buf, sizeof(buf)), name) == 0) {
            return &config_keys[i];
        }
    }
    return NULL;
}

static int __attribute__((format(printf, 3, 4)))
config_error(char *err, size_t err_bytes, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    (void)vsnprintf(err, err_bytes, fmt, ap);
    va_end(ap);
    return -EINVAL;
}

/* Parse an unsigned decimal with an optional suffix whose multipliers the
 * caller gives. Rejects signs, overflow and trailing junk. */
static int
config_parse_scaled(const char *text, const char *const *suffixes, const uint64_t *scales,
                    size_t suffix_count, uint64_t *value_out)
{
    const char *p = text;
    if (!isdigit((unsigned char)*p)) {
        return -EINVAL;
    }
    uint64_t value = 0;
    for (; isdigit((unsigned char)*p); p++) {
        uint64_t digit = (uint64_t)(*p - '0');
        if (value > (UINT64_MAX - digit) / 10) {
            return -ERANGE;
        }
        value = value * 10 + digit;
    }
    uint64_t scale = 1;
    if (*p != '\0') {
        bool matched = false;
        for (size_t i = 0; i < suffix_count; i++) {
            if (strcasecmp(p, suffixes[i]) == 0) {
                scale = scales[i];
                matched = true;
                break;
            }
        }
        if (!matched) {
            return -EINVAL;
        }
    } else if (suffix_count > 0 && scales[0] != 1) {
        /* A bare number for a duration means seconds, as Postfix reads it. */
        scale = scales[0];
    }
    if (scale != 0 && value > UINT64_MAX / scale) {
        return -ERANGE;
    }
    *value_out = value * scale;
    return 0;
}

static int
config_parse_bytes(const char *text, uint64_t *value_out)
{
    static const char *const suffixes[] = { "", "k", "m", "g", "kb", "mb", "gb" };
    static const uint64_t scales[] = { 1, 1024, 1024 * 1024, 1024 * 1024 * 1024, 1024,
                                       1024 * 1024, 1024 * 1024 * 1024 };
    return config_parse_scaled(text, suffixes, scales, 7, value_out);
}

static int
config_parse_duration_ms(const char *text, uint64_t *value_out)
{
    static const char *const suffixes[] = { "s", "ms", "m", "h", "d" };
    static const uint64_t scales[] = { 1000, 1, 60000, 3600000, 86400000 };
    return config_parse_scaled(text, suffixes, scales, 5, value_out);
}

static int
config_parse_seconds(const char *text, uint64_t *value_out)
{
    static const char *const suffixes[] = { "s", "m", "h", "d", "w" };
    static const uint64_t scales[] = { 1, 60, 3600, 86400, 604800 };
    return config_parse_scaled(text, suffixes, scales, 5, value_out);
}

static int
config_parse_bool(const char *text, bool *value_out)
{
    if (strcasecmp(text, "yes") == 0 || strcasecmp(text, "true") == 0 ||
        strcmp(text, "1") == 0 || strcasecmp(text, "on") == 0) {
        *value_out = true;
        return 0;
    }
    if (strcasecmp(text, "no") == 0 || strcasecmp(text, "false") == 0 ||
        strcmp(text, "0") == 0 || strcasecmp(text, "off") == 0) {
        *value_out = false;
        return 0;
    }
    return -EINVAL;
}

/* "host:port" or "[v6]:port"; host may be "*" (all IPv4) or "[::]". Names
 * are not resolved: listening must not depend on DNS. */
static int
config_parse_listen_one(const char *text, struct listen_address *out, char *err,
                        size_t err_bytes)
{
    char host[128];
    const char *colon;
    if (strncmp(text, "unix:", 5) == 0) {
        /* A Unix socket (lmtp_listen only, checked in config_finish). */
        struct sockaddr_un *sun = (struct sockaddr_un *)&out->addr;
        size_t path_len = strlen(text + 5);
        if (text[5] != '/' || path_len >= sizeof(sun->sun_path)) {
            return config_error(err, err_bytes,
                                "bad listen address '%s' (want unix:/absolute/path, at most "
                                "%zu bytes)", text, sizeof(sun->sun_path) - 1);
        }
        memset(out, 0, sizeof(*out));
        (void)snprintf(out->text, sizeof(out->text), "%s", text);
        sun->sun_family = AF_UNIX;
        memcpy(sun->sun_path, text + 5, path_len + 1);
        out->addr_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + path_len + 1);
        return 0;
    }
    if (text[0] == '[') {
        const char *close = strchr(text, ']');
        if (close == NULL || close[1] != ':') {
            return config_error(err, err_bytes, "bad listen address '%s' (want [v6]:port)",
                                text);
        }
        size_t host_len = (size_t)(close - text - 1);
        if (host_len >= sizeof(host)) {
            return config_error(err, err_bytes, "listen host too long in '%s'", text);
        }
        memcpy(host, text + 1, host_len);
        host[host_len] = '\0';
        colon = close + 1;
    } else {
        colon = strrchr(text, ':');
        if (colon == NULL) {
            return config_error(err, err_bytes, "bad listen address '%s' (want host:port)",
                                text);
        }
        size_t host_len = (size_t)(colon - text);
        if (host_len >= sizeof(host)) {
            return config_error(err, err_bytes, "listen host too long in '%s'", text);
        }
        memcpy(host, text, host_len);
        host[host_len] = '\0';
    }
    char *end = NULL;
    errno = 0;
    unsigned long port = strtoul(colon + 1, &end, 10);
    if (errno != 0 || end == colon + 1 || *end != '\0' || port == 0 || port > 65535) {
        return config_error(err, err_bytes, "bad port in listen address '%s'", text);
    }
    memset(out, 0, sizeof(*out));
    (void)snprintf(out->text, sizeof(out->text), "%s", text);
    struct sockaddr_in *sin = (struct sockaddr_in *)&out->addr;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&out->addr;
    if (strcmp(host, "*") == 0 || strcmp(host, "0.0.0.0") == 0) {
        sin->sin_family = AF_INET;
        sin->sin_addr.s_addr = htonl(INADDR_ANY);
        sin->sin_port = htons((uint16_t)port);
        out->addr_len = sizeof(*sin);
    } else if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        sin->sin_port = htons((uint16_t)port);
        out->addr_len = sizeof(*sin);
    } else if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons((uint16_t)port);
        out->addr_len = sizeof(*sin6);
    } else {
        return config_error(err, err_bytes,
                            "listen host '%s' is not an IP address (names are not resolved)",
                            host);
    }
    return 0;
}

static int
config_parse_listen(const char *text, struct listen_list *out, char *err, size_t err_bytes)
{
    struct listen_list list;
    memset(&list, 0, sizeof(list));
    char copy[CONFIG_LINE_BYTES_MAX];
    if (strlen(text) >= sizeof(copy)) {
        return config_error(err, err_bytes, "listen list too long");
    }
    strcpy(copy, text);
    char *save = NULL;
    for (char *item = strtok_r(copy, ", \t", &save); item != NULL;
         item = strtok_r(NULL, ", \t", &save)) {
        if (list.count == LISTEN_ADDRESSES_MAX) {
            return config_error(err, err_bytes, "more than %d listen addresses",
                                LISTEN_ADDRESSES_MAX);
        }
        int rc = config_parse_listen_one(item, &list.addresses[list.count], err, err_bytes);
        if (rc != 0) {
            return rc;
        }
        list.count++;
    }
    *out = list;
    return 0;
}

/* A host name as tls_sni accepts it: letters, digits, '-', '_' and dots
 * between non-empty labels, optionally "*." in front. */
static bool
config_sni_domain_ok(const char *domain)
{
    const char *p = domain;
    if (p[0] == '*' && p[1] == '.') {
        p += 2;
    }
    if (*p == '\0') {
        return false;
    }
    size_t label_len = 0;
    for (; *p != '\0'; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == '.') {
            if (label_len == 0) {
                return false;
            }
            label_len = 0;
        } else if (isalnum(c) || c == '-' || c == '_') {
            label_len++;
        } else {
            return false;
        }
    }
    return label_len > 0;
}

/* "DOMAIN CERTFILE KEYFILE" (blanks between; paths cannot hold blanks).
 * Appends to the list; "" empties it, which is also the default. */
static int
config_parse_tls_sni(const char *name, const char *text, struct tls_sni_list *list, char *err,
                     size_t err_bytes)
{
    char copy[CONFIG_LINE_BYTES_MAX];
    if (strlen(text) >= sizeof(copy)) {
        return config_error(err, err_bytes, "%s: value too long", name);
    }
    strcpy(copy, text);
    char *fields[4] = { NULL, NULL, NULL, NULL };
    size_t field_count = 0;
    char *save = NULL;
    for (char *item = strtok_r(copy, " \t", &save); item != NULL && field_count < 4;
         item = strtok_r(NULL, " \t", &save)) {
        fields[field_count++] = item;
    }
    if (field_count == 0) {
        list->count = 0;
        return 0;
    }
    if (field_count != 3) {
        return config_error(err, err_bytes, "%s: want 'DOMAIN CERTFILE KEYFILE'", name);
    }
    if (list->count == TLS_SNI_MAX) {
        return config_error(err, err_bytes, "%s: more than %d entries", name, TLS_SNI_MAX);
    }
    struct tls_sni_entry *entry = &list->entries[list->count];
    if (strlen(fields[0]) >= sizeof(entry->domain) || !config_sni_domain_ok(fields[0])) {
        return config_error(err, err_bytes, "%s: bad domain '%s'", name, fields[0]);
    }
    if (strlen(fields[1]) >= sizeof(entry->cert_file) ||
        strlen(fields[2]) >= sizeof(entry->key_file)) {
        return config_error(err, err_bytes, "%s: path longer than %zu bytes", name,
                            sizeof(entry->cert_file) - 1);
    }
    char domain[sizeof(entry->domain)];
    size_t i = 0;
    for (; fields[0][i] != '\0'; i++) {
        domain[i] = (char)tolower((unsigned char)fields[0][i]);
    }
    domain[i] = '\0';
    for (size_t k = 0; k < list->count; k++) {
        if (strcmp(list->entries[k].domain, domain) == 0) {
            return config_error(err, err_bytes, "%s: '%s' given twice", name, domain);
        }
    }
    strcpy(entry->domain, domain);
    strcpy(entry->cert_file, fields[1]);
    strcpy(entry->key_file, fields[2]);
    list->count++;
    return 0;
}

int
config_set(struct config *config, const char *name, const char *value, char *err,
           size_t err_bytes)
{
    const struct config_key *key = config_key_find(name);
    if (key == NULL) {
        return config_error(err, err_bytes, "unknown key '%s'", name);
    }
    void *field = (char *)config + key->offset;
    uint64_t number = 0;
    int rc = -EINVAL;
    switch (key->type) {
    case CONFIG_STRING:
        if (strlen(value) >= key->size) {
            return config_error(err, err_bytes, "%s: value longer than %zu bytes", name,
                                key->size - 1);
        }
        strcpy(field, value);
        return 0;
    case CONFIG_U32:
        rc = config_parse_scaled(value, NULL, NULL, 0, &number);
        break;
    case CONFIG_BYTES:
        rc = config_parse_bytes(value, &number);
        break;
    case CONFIG_DURATION:
        rc = config_parse_duration_ms(value, &number);
        break;
    case CONFIG_SECONDS:
        rc = config_parse_seconds(value, &number);
        break;
    case CONFIG_BOOL:
        if (config_parse_bool(value, field) != 0) {
            return config_error(err, err_bytes, "%s: want yes or no, not '%s'", name, value);
        }
        return 0;
    case CONFIG_LISTEN:
        rc = config_parse_listen(value, field, err, err_bytes);
        if (rc != 0) {
            char reason[256];
            (void)snprintf(reason, sizeof(reason), "%s", err);
            return config_error(err, err_bytes, "%s: %s", name, reason);
        }
        return 0;
    case CONFIG_BARE_LF:
        if (strcasecmp(value, "normalize") == 0) {
            *(enum bare_lf_policy *)field = BARE_LF_NORMALIZE;
        } else if (strcasecmp(value, "reject") == 0) {
            *(enum bare_lf_policy *)field = BARE_LF_REJECT;
        } else {
            return config_error(err, err_bytes, "%s: want normalize or reject, not '%s'", name,
                                value);
        }
        return 0;
    case CONFIG_LOG_LEVEL: {
        static const char *const levels[] = { "error", "warning", "info", "debug" };
        for (int i = 0; i < 4; i++) {
            if (strcasecmp(value, levels[i]) == 0) {
                *(int *)field = i;
                return 0;
            }
        }
        return config_error(err, err_bytes, "%s: want error, warning, info or debug", name);
    }
    case CONFIG_TLS_SNI:
        return config_parse_tls_sni(name, value, field, err, err_bytes);
    case CONFIG_LINES: {
        struct config_lines *list = field;
        if (value[0] == '\0') {
            list->count = 0;
            return 0;
        }
        if (list->count == CONFIG_LINES_MAX) {
            return config_error(err, err_bytes, "%s: more than %d lines", name,
                                CONFIG_LINES_MAX);
        }
        if (strlen(value) >= sizeof(list->lines[0])) {
            return config_error(err, err_bytes, "%s: value longer than %zu bytes", name,
                                sizeof(list->lines[0]) - 1);
        }
        strcpy(list->lines[list->count++], value);
        return 0;
    }
    }
    if (rc != 0) {
        return config_error(err, err_bytes, "%s: bad value '%s'", name, value);
    }
    if (number < key->min || number > key->max) {
        return config_error(err, err_bytes, "%s: %s is outside %" PRIu64 "..%" PRIu64, name,
                            value, key->type == CONFIG_DURATION ? key->min / 1000 : key->min,
                            key->type == CONFIG_DURATION ? key->max / 1000 : key->max);
    }
    if ((key->type == CONFIG_BYTES || key->type == CONFIG_SECONDS) &&
        key->size == sizeof(uint64_t)) {
        *(uint64_t *)field = number;
    } else {
        ASSERT(key->size == sizeof(uint32_t));
        *(uint32_t *)field = (uint32_t)number;
    }
    return 0;
}

void
config_defaults(struct config *config)
{
    memset(config, 0, sizeof(*config));
    for (size_t i = 0; i < sizeof(config_keys) / sizeof(config_keys[0]); i++) {
        char err[256];
        char buf[128];
        const char *name = config_key_public_name(&config_keys[i], buf, sizeof(buf));
        int rc = config_set(config, name, config_keys[i].default_text, err, sizeof(err));
        /* The embedded defaults are ours: a bad one is a programmer error. */
        if (rc != 0) {
            (void)fprintf(stderr, "toasterd: bad embedded default: %s\n", err);
        }
        ASSERT(rc == 0);
    }
}

static char *
config_trim(char *s)
{
    while (*s == ' ' || *s == '\t') {
        s++;
    }
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' ||
                     s[n - 1] == '\n')) {
        s[--n] = '\0';
    }
    return s;
}

int
config_load_file(struct config *config, const char *path, char *err, size_t err_bytes)
{
    FILE *file = fopen(path, "re");
    if (file == NULL) {
        int saved = errno;
        (void)snprintf(err, err_bytes, "%s: %s", path, strerror(saved));
        return -saved;
    }
    char line[CONFIG_LINE_BYTES_MAX + 2];
    unsigned long line_number = 0;
    int rc = 0;
    while (fgets(line, sizeof(line), file) != NULL) {
        line_number++;
        if (line_number > CONFIG_FILE_LINES_MAX) {
            rc = config_error(err, err_bytes, "%s: more than %d lines", path, CONFIG_FILE_LINES_MAX);
            break;
        }
        size_t len = strlen(line);
        if (len == sizeof(line) - 1 && line[len - 1] != '\n') {
            rc = config_error(err, err_bytes, "%s:%lu: line longer than %d bytes", path,
                              line_number, CONFIG_LINE_BYTES_MAX);
            break;
        }
        char *hash = strchr(line, '#');
        if (hash != NULL) {
            *hash = '\0';
        }
        char *text = config_trim(line);
        if (*text == '\0') {
            continue;
        }
        char *equals = strchr(text, '=');
        if (equals == NULL) {
            rc = config_error(err, err_bytes, "%s:%lu: expected 'key = value'", path,
                              line_number);
            break;
        }
        *equals = '\0';
        char *key = config_trim(text);
        char *value = config_trim(equals + 1);
        char reason[512];
        if (config_set(config, key, value, reason, sizeof(reason)) != 0) {
            rc = config_error(err, err_bytes, "%s:%lu: %s", path, line_number, reason);
            break;
        }
    }
    if (rc == 0 && ferror(file)) {
        rc = config_error(err, err_bytes, "%s: read error", path);
    }
    (void)fclose(file); /* read-only stream: nothing to lose on close */
    return rc;
}

/* Whether word is one of the count words (a key with a fixed set of values). */
static bool
config_word_is_one_of(const char *word, const char *const words[], size_t count)
{
    for (size_t i = 0; i < count; i++) {
        if (strcmp(word, words[i]) == 0) {
            return true;
        }
    }
    return false;
}

int
config_finish(struct config *config, char *err, size_t err_bytes)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    if (cpus < 1) {
        cpus = 1;
    }
    if (config->reactor_threads == 0) {
        config->reactor_threads = (uint32_t)(cpus > REACTOR_THREADS_CEILING
                                                 ? REACTOR_THREADS_CEILING : cpus);
    }
    if (config->worker_threads == 0) {
        config->worker_threads = (uint32_t)(cpus > WORKER_THREADS_CEILING
                                                ? WORKER_THREADS_CEILING : cpus);
    }
    if ((config->recv_buffer_count & (config->recv_buffer_count - 1)) != 0) {
        return config_error(err, err_bytes, "recv_buffer_count must be a power of two");
    }
    if ((config->worker_queue_entries & (config->worker_queue_entries - 1)) != 0) {
        return config_error(err, err_bytes, "worker_queue_entries must be a power of two");
    }
    if (config->data_dir[0] == '\0') {
        return config_error(err, err_bytes, "data_dir must not be empty");
    }
    struct cidr_list networks;
    char networks_err[128];
    if (cidr_list_parse(config->mynetworks, &networks, networks_err, sizeof(networks_err)) != 0) {
        return config_error(err, err_bytes, "mynetworks: %s", networks_err);
    }
    if (cidr_list_parse(config->metrics_allow, &networks, networks_err, sizeof(networks_err)) !=
        0) {
        return config_error(err, err_bytes, "metrics_allow: %s", networks_err);
    }
    struct kv_redis_address redis_address;
    if (config->redis[0] != '\0' && kv_redis_address_parse(config->redis, &redis_address) != 0) {
        return config_error(err, err_bytes,
                            "redis: want host:port, [v6]:port or unix:/path, not '%s'",
                            config->redis);
    }
    if (strcmp(config->clamav_action, "reject") != 0 &&
        strcmp(config->clamav_action, "header") != 0 &&
        strcmp(config->clamav_action, "quarantine") != 0) {
        return config_error(err, err_bytes, "clamav_action must be reject, quarantine or header");
    }
    if (config->sieve_vacation_min_period_s > config->sieve_vacation_default_period_s ||
        config->sieve_vacation_default_period_s > config->sieve_vacation_max_period_s) {
        return config_error(err, err_bytes,
                            "sieve_vacation_min_period <= sieve_vacation_default_period <= "
                            "sieve_vacation_max_period must hold");
    }
    if (config->sieve_duplicate_default_period_s > config->sieve_duplicate_max_period_s) {
        return config_error(err, err_bytes,
                            "sieve_duplicate_default_period must not exceed "
                            "sieve_duplicate_max_period");
    }
    if (config->queue_retry_min_s > config->queue_retry_max_s) {
        return config_error(err, err_bytes, "queue_retry_min must not exceed queue_retry_max");
    }
    static const char *const preferences[] = { "ipv4", "ipv6", "ipv4-only", "ipv6-only" };
    static const char *const tls_levels[] = { "none",   "may",  "encrypt",
                                              "verify", "dane", "dane-only" };
    if (!config_word_is_one_of(config->smtp_address_preference, preferences, 4)) {
        return config_error(err, err_bytes,
                            "smtp_address_preference must be ipv4, ipv6, ipv4-only or ipv6-only");
    }
    static const char *const mta_sts_modes[] = { "testing", "enforce", "none" };
    if (!config_word_is_one_of(config->mta_sts_mode, mta_sts_modes, 3)) {
        return config_error(err, err_bytes, "mta_sts_mode must be testing, enforce or none");
    }
    if (!config_word_is_one_of(config->smtp_tls_security, tls_levels, 6)) {
        return config_error(err, err_bytes, "smtp_tls_security must be none, may, encrypt, "
                                            "verify, dane or dane-only");
    }
    if (config->myhostname[0] == '\0') {
        if (gethostname(config->myhostname, sizeof(config->myhostname) - 1) != 0 ||
            config->myhostname[0] == '\0') {
            strcpy(config->myhostname, "localhost");
        }
    }
    if (config->quarantine_mailbox[0] == '\0') {
        int qn = snprintf(config->quarantine_mailbox, sizeof(config->quarantine_mailbox),
                     "quarantine@%s", config->myhostname);
        if (qn < 0 || (size_t)qn >= sizeof(config->quarantine_mailbox)) {
            return config_error(err, err_bytes, "quarantine_mailbox: myhostname too long");
        }
    }
    if (config->authserv_id[0] == '\0') {
        (void)snprintf(config->authserv_id, sizeof(config->authserv_id), "%s",
                       config->myhostname);
    }
    int n;
    if (config->users_file[0] != '\0') {
        n = snprintf(config->users_path, sizeof(config->users_path), "%s", config->users_file);
    } else {
        n = snprintf(config->users_path, sizeof(config->users_path), "%s/users",
                     config->data_dir);
    }
    if (n < 0 || (size_t)n >= sizeof(config->users_path)) {
        return config_error(err, err_bytes, "users_file path too long");
    }
    if (config->aliases_file[0] != '\0') {
        n = snprintf(config->aliases_path, sizeof(config->aliases_path), "%s",
                     config->aliases_file);
    } else {
        n = snprintf(config->aliases_path, sizeof(config->aliases_path), "%s/aliases",
                     config->data_dir);
    }
    if (n < 0 || (size_t)n >= sizeof(config->aliases_path)) {
        return config_error(err, err_bytes, "aliases_file path too long");
    }
    if (config->control_socket[0] != '\0') {
        n = snprintf(config->control_socket_path, sizeof(config->control_socket_path), "%s",
                     config->control_socket);
    } else {
        n = snprintf(config->control_socket_path, sizeof(config->control_socket_path),
                     "%s/toasterd.sock", config->data_dir);
    }
    if (n < 0 || (size_t)n >= sizeof(config->control_socket_path)) {
        return config_error(err, err_bytes, "control_socket path too long");
    }
    if ((config->tls_cert[0] == '\0') != (config->tls_key[0] == '\0')) {
        return config_error(err, err_bytes,
                            "tls_cert and tls_key go together: set both, or neither for the "
                            "self-signed certificate");
    }
    if (config->max_connections_per_ip > config->max_connections) {
        config->max_connections_per_ip = config->max_connections;
    }
    for (int protocol = 0; protocol < LISTENER_PROTOCOL_COUNT; protocol++) {
        const struct listen_list *list = &config->listen[protocol];
        for (size_t i = 0; i < list->count && protocol != LISTENER_LMTP; i++) {
            if (list->addresses[i].addr.ss_family == AF_UNIX) {
                return config_error(err, err_bytes, "%s: unix: sockets are for lmtp_listen only",
                                    list->addresses[i].text);
            }
        }
    }
    char *mode_end = NULL;
    unsigned long lmtp_mode = strtoul(config->lmtp_socket_mode, &mode_end, 8);
    if (config->lmtp_socket_mode[0] < '0' || config->lmtp_socket_mode[0] > '7' ||
        *mode_end != '\0' || lmtp_mode > 0777) {
        return config_error(err, err_bytes, "lmtp_socket_mode: want an octal mode like 0660");
    }
    static const char *const log_formats[] = { "auto", "plain", "journal" };
    if (!config_word_is_one_of(config->log_format, log_formats, 3)) {
        return config_error(err, err_bytes, "log_format must be auto, plain or journal");
    }
    if (config->chroot[0] != '\0' && !config->is_chrooted) {
        int chroot_rc = chroot_paths_check(config, err, err_bytes);
        if (chroot_rc != 0) {
            return chroot_rc;
        }
    }
    return 0;
}

void
config_dump(const struct config *config, int fd)
{
    static const char *const levels[] = { "error", "warning", "info", "debug" };
    for (size_t i = 0; i < sizeof(config_keys) / sizeof(config_keys[0]); i++) {
        const struct config_key *key = &config_keys[i];
        const void *field = (const char *)config + key->offset;
        char buf[128];
        const char *name = config_key_public_name(key, buf, sizeof(buf));
        switch (key->type) {
        case CONFIG_STRING:
            dprintf(fd, "%s = %s\n", name, (const char *)field);
            break;
        case CONFIG_U32:
            dprintf(fd, "%s = %" PRIu32 "\n", name, *(const uint32_t *)field);
            break;
        case CONFIG_BYTES:
            if (key->size == sizeof(uint64_t)) {
                dprintf(fd, "%s = %" PRIu64 "\n", name, *(const uint64_t *)field);
            } else {
                dprintf(fd, "%s = %" PRIu32 "\n", name, *(const uint32_t *)field);
            }
            break;
        case CONFIG_DURATION:
            dprintf(fd, "%s = %" PRIu32 "ms\n", name, *(const uint32_t *)field);
            break;
        case CONFIG_SECONDS:
            dprintf(fd, "%s = %" PRIu64 "s\n", name, *(const uint64_t *)field);
            break;
        case CONFIG_BOOL:
            dprintf(fd, "%s = %s\n", name, *(const bool *)field ? "yes" : "no");
            break;
        case CONFIG_LISTEN: {
            const struct listen_list *list = field;
            dprintf(fd, "%s = ", name);
            for (size_t j = 0; j < list->count; j++) {
                dprintf(fd, "%s%s", j ? ", " : "", list->addresses[j].text);
            }
            dprintf(fd, "\n");
            break;
        }
        case CONFIG_BARE_LF:
            dprintf(fd, "%s = %s\n", name,
                    *(const enum bare_lf_policy *)field == BARE_LF_REJECT ? "reject"
                                                                          : "normalize");
            break;
        case CONFIG_LOG_LEVEL:
            dprintf(fd, "%s = %s\n", name, levels[*(const int *)field]);
            break;
        case CONFIG_LINES: {
            const struct config_lines *list = field;
            if (list->count == 0) {
                dprintf(fd, "%s = \n", name);
            }
            for (size_t j = 0; j < list->count; j++) {
                dprintf(fd, "%s = %s\n", name, list->lines[j]);
            }
            break;
        }
        case CONFIG_TLS_SNI: {
            const struct tls_sni_list *list = field;
            if (list->count == 0) {
                dprintf(fd, "%s = \n", name);
            }
            for (size_t j = 0; j < list->count; j++) {
                dprintf(fd, "%s = %s %s %s\n", name, list->entries[j].domain,
                        list->entries[j].cert_file, list->entries[j].key_file);
            }
            break;
        }
        }
    }
}

/* ---- key by key (core/config_reload) ------------------------------------------ */

/* Public names, made once: config_key_public_name() needs a buffer, and
 * callers keep the names in lists. */
static char config_key_names[sizeof(config_keys) / sizeof(config_keys[0])][64];

size_t
config_key_count(void)
{
    return sizeof(config_keys) / sizeof(config_keys[0]);
}

const char *
config_key_name(size_t index)
{
    ASSERT(index < config_key_count());
    if (config_key_names[index][0] == '\0') {
        char buf[128];
        const char *name = config_key_public_name(&config_keys[index], buf, sizeof(buf));
        ASSERT(strlen(name) < sizeof(config_key_names[index]));
        strcpy(config_key_names[index], name);
    }
    return config_key_names[index];
}

bool
config_key_equal(const struct config *a, const struct config *b, size_t index)
{
    ASSERT(index < config_key_count());
    const struct config_key *key = &config_keys[index];
    const void *fa = (const char *)a + key->offset;
    const void *fb = (const char *)b + key->offset;
    switch (key->type) {
    case CONFIG_STRING:
        return strcmp(fa, fb) == 0;
    case CONFIG_LISTEN: {
        const struct listen_list *la = fa;
        const struct listen_list *lb = fb;
        if (la->count != lb->count) {
            return false;
        }
        for (size_t i = 0; i < la->count; i++) {
            if (strcmp(la->addresses[i].text, lb->addresses[i].text) != 0) {
                return false;
            }
        }
        return true;
    }
    case CONFIG_TLS_SNI: {
        const struct tls_sni_list *la = fa;
        const struct tls_sni_list *lb = fb;
        if (la->count != lb->count) {
            return false;
        }
        for (size_t i = 0; i < la->count; i++) {
            if (strcmp(la->entries[i].domain, lb->entries[i].domain) != 0 ||
                strcmp(la->entries[i].cert_file, lb->entries[i].cert_file) != 0 ||
                strcmp(la->entries[i].key_file, lb->entries[i].key_file) != 0) {
                return false;
            }
        }
        return true;
    }
    case CONFIG_LINES: {
        const struct config_lines *la = fa;
        const struct config_lines *lb = fb;
        if (la->count != lb->count) {
            return false;
        }
        for (size_t i = 0; i < la->count; i++) {
            if (strcmp(la->lines[i], lb->lines[i]) != 0) {
                return false;
            }
        }
        return true;
    }
    case CONFIG_BOOL:
        return *(const bool *)fa == *(const bool *)fb;
    case CONFIG_U32:
    case CONFIG_BYTES:
    case CONFIG_DURATION:
    case CONFIG_SECONDS:
    case CONFIG_BARE_LF:
    case CONFIG_LOG_LEVEL:
        /* Scalars: every byte of the field is the value. */
        return memcmp(fa, fb, key->size) == 0;
    }
    ASSERT(false);
    return false;
}

void
config_key_copy(struct config *dst, const struct config *src, size_t index)
{
    ASSERT(index < config_key_count());
    ASSERT(dst != src);
    const struct config_key *key = &config_keys[index];
    memcpy((char *)dst + key->offset, (const char *)src + key->offset, key->size);
}
