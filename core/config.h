/*
 * core/config.h - the daemon's configuration: embedded defaults, overridden
 * by a "key = value" file.
 *
 * Every key has a type, a default and bounds (core/limits.h). An unknown key
 * or a bad value stops the start with an error naming the file and line.
 * The result is immutable after config_load() and shared by all threads.
 */
#ifndef TOASTER_CORE_CONFIG_H
#define TOASTER_CORE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "core/limits.h"

#define CONFIG_STRING_BYTES 1024

/* Which protocol a listener speaks. The reactor accepts on every listener;
 * main decides which ones it can serve today. */
enum listener_protocol {
    LISTENER_SMTP,
    LISTENER_SUBMISSION,
    LISTENER_SUBMISSIONS,
    LISTENER_IMAP,
    LISTENER_IMAPS,
    LISTENER_MANAGESIEVE,
    LISTENER_HTTP,
    LISTENER_LMTP, /* lmtp_listen: host:port or unix:/path (core/smtp_listener) */
    LISTENER_HTTPS, /* https_listen: the HTTP listener under implicit TLS */
    LISTENER_PROTOCOL_COUNT,
};

struct listen_address {
    struct sockaddr_storage addr;
    socklen_t               addr_len;
    char                    text[128]; /* as configured, for logs */
};

struct listen_list {
    struct listen_address addresses[LISTEN_ADDRESSES_MAX];
    size_t                count;
};

/* One tls_sni line: "DOMAIN CERTFILE KEYFILE". The domain is stored in
 * lower case; "*.example.com" matches exactly one label below it. */
struct tls_sni_entry {
    char domain[256];
    char cert_file[CONFIG_STRING_BYTES];
    char key_file[CONFIG_STRING_BYTES];
};

struct tls_sni_list {
    struct tls_sni_entry entries[TLS_SNI_MAX];
    size_t               count;
};

/* A key that may be given on several lines, each kept as written
 * (dkim_key); an empty value clears the list. */
#define CONFIG_LINES_MAX 64
struct config_lines {
    char   lines[CONFIG_LINES_MAX][CONFIG_STRING_BYTES];
    size_t count;
};

enum bare_lf_policy {
    BARE_LF_NORMALIZE, /* turn it into CRLF, as Postfix 3.9 does by default */
    BARE_LF_REJECT,    /* refuse the message (and the command line) with 5xx */
};

struct config {
    struct listen_list listen[LISTENER_PROTOCOL_COUNT];

    char data_dir[CONFIG_STRING_BYTES];
    char users_file[CONFIG_STRING_BYTES];   /* "" means <data_dir>/users */
    char aliases_file[CONFIG_STRING_BYTES]; /* "" means <data_dir>/aliases */
    char redis[CONFIG_STRING_BYTES];
    char myhostname[256];
    char local_domains[CONFIG_STRING_BYTES];
    char recipient_delimiter[16];
    char lmtp_socket_mode[8]; /* octal, for lmtp_listen's Unix sockets */
    char unknown_recipient_mailbox[CONFIG_STRING_BYTES];
    char postmaster_address[CONFIG_STRING_BYTES];
    char control_socket[CONFIG_STRING_BYTES]; /* "" means <data_dir>/toasterd.sock */

    char tls_cert[CONFIG_STRING_BYTES]; /* "" (with tls_key "") = self-signed under data_dir */
    char tls_key[CONFIG_STRING_BYTES];
    struct tls_sni_list tls_sni; /* each tls_sni line adds one; an empty value clears */

    uint32_t reactor_threads;   /* 0 = one per online CPU */
    char     reactor_cpus[CONFIG_STRING_BYTES]; /* "" = no pinning; "0,1" or "0-3" */
    uint32_t worker_threads;    /* 0 = one per online CPU */
    uint32_t ring_entries;      /* submission queue entries per reactor */
    bool     sqpoll;            /* IORING_SETUP_SQPOLL: a kernel thread polls the SQ */
    uint32_t sqpoll_idle_ms;    /* the poller sleeps after this long without work */
    uint32_t reactor_io_workers; /* kernel io-wq threads per reactor for file I/O; 0 = kernel's */
    uint32_t recv_buffer_bytes;
    uint32_t recv_buffer_count; /* power of two */
    uint32_t spool_buffers;     /* concurrent DATA transfers per reactor */
    uint32_t worker_queue_entries; /* power of two */

    uint32_t max_connections;        /* per reactor */
    uint32_t max_connections_per_ip; /* per reactor */

    uint64_t message_size_limit;
    uint32_t recipient_limit;
    uint32_t smtp_error_limit;
    uint32_t smtp_junk_command_limit;
    enum bare_lf_policy bare_lf;
    uint32_t hopcount_limit; /* Received: fields that make a message a loop; 0: none */

    uint32_t smtp_idle_timeout_ms;
    uint32_t smtp_data_timeout_ms;
    uint32_t send_timeout_ms;
    uint32_t imap_login_timeout_ms; /* before authentication */
    uint32_t imap_idle_timeout_ms;  /* authenticated, between commands and in IDLE */
    uint32_t imap_scratch_buffers;  /* IMAP commands being read or run at once, per reactor */
    bool allow_plaintext_auth;      /* LOGIN / AUTH PLAIN without TLS from non-loopback peers */
    bool loopback_is_secure;        /* a loopback peer may send passwords without TLS */
    /* ManageSieve and the users' Sieve scripts (Pigeonhole's names). */
    uint32_t managesieve_timeout_ms;   /* a silent ManageSieve client is closed */
    uint64_t sieve_max_script_size;    /* bytes of one script */
    uint32_t sieve_quota_max_scripts;  /* scripts per user, 0: no limit */
    uint64_t sieve_quota_max_storage;  /* bytes of all of a user's scripts, 0: no limit */
    /* Sieve at delivery (Pigeonhole's names and defaults). */
    bool     sieve;                                    /* run scripts at delivery */
    char     sieve_before[CONFIG_STRING_BYTES];        /* "builtin", "" or a file / directory */
    char     sieve_after[CONFIG_STRING_BYTES];         /* "" or a file / directory */
    char     sieve_global_dir[CONFIG_STRING_BYTES];    /* include :global; "": none */
    uint32_t sieve_max_actions;                        /* distinct actions per message */
    uint32_t sieve_max_redirects;                      /* redirects per message */
    uint32_t sieve_max_steps;                          /* commands + tests per script run */
    char     sieve_spamtest_status_header[64];         /* spamtest reads the score here */
    uint32_t sieve_spamtest_max_value;                 /* the score spamtest calls certain spam */
    char     sieve_virustest_status_header[64];        /* virustest reads this field */
    uint64_t sieve_vacation_min_period_s;              /* vacation :days bounds and default */
    uint64_t sieve_vacation_default_period_s;
    uint64_t sieve_vacation_max_period_s;
    uint64_t sieve_duplicate_default_period_s;         /* duplicate :seconds default and bound */
    uint64_t sieve_duplicate_max_period_s;
    uint64_t sieve_redirect_duplicate_period_s;        /* redirect loop guard */
    /* Submission policy: clients that may relay without AUTH (CIDR list, ""
     * = none), and per-user sending limits (0 = none). */
    /* The outbound relay (issue 8; Postfix's names and defaults). */
    bool     outbound_delivery;                        /* run the delivery agent */
    char     relay_host[CONFIG_STRING_BYTES];          /* "" or a next hop for every remote domain */
    char     relay_domains[CONFIG_STRING_BYTES];       /* accepted and passed to an inner host */
    char     transport_file[CONFIG_STRING_BYTES];      /* "domain nexthop" lines */
    char     smtp_sasl_password_file[CONFIG_STRING_BYTES]; /* "nexthop user:password" lines */
    uint64_t queue_retry_min_s;                        /* back-off between attempts, from */
    uint64_t queue_retry_max_s;                        /* ... up to */
    uint64_t queue_lifetime_s;                         /* then bounce */
    uint64_t delay_warning_time_s;                     /* 0: no delay warnings */
    uint32_t smtp_connect_timeout_ms;                  /* per address */
    uint32_t smtp_greeting_timeout_ms;                 /* RFC 5321 4.5.3.2: 5 min */
    uint32_t smtp_data_done_timeout_ms;                /* RFC 5321 4.5.3.2: 10 min */
    char     smtp_helo_name[256];                      /* "": myhostname */
    uint32_t smtp_mx_address_limit;                    /* addresses tried per attempt */
    uint32_t smtp_mx_session_limit;                    /* of those, ones that answered */
    char     smtp_address_preference[16];              /* ipv4, ipv6, ipv4-only, ipv6-only */
    uint32_t smtp_mx_port;                             /* port of hosts found by MX */
    char     smtp_tls_security[16];                    /* none, may, encrypt, verify, dane, dane-only */
    char     smtp_tls_policy_file[CONFIG_STRING_BYTES]; /* "domain level" lines */
    char     smtp_tls_ca_file[CONFIG_STRING_BYTES];    /* "": the system's store */
    bool     smtp_mta_sts;                             /* MTA-STS (RFC 8461) for MX routes */
    uint32_t mta_sts_fetch_timeout_ms;                 /* a policy's HTTPS fetch, in all */
    uint32_t mta_sts_port;                             /* 443; tests point it at loopback */
    uint32_t mta_sts_cache_max;                        /* domains whose policy is kept */
    /* The HTTP listener (core/http_listener): client set-up documents and
     * the MTA-STS policy published for the hosted domains. */
    uint32_t http_timeout_ms;                          /* a whole request must arrive within */
    char     metrics_allow[CONFIG_STRING_BYTES];       /* CIDR list that may GET /metrics */
    char     mta_sts_mode[16];                         /* testing | enforce | none */
    char     mta_sts_mx[CONFIG_STRING_BYTES];          /* mx patterns; "": myhostname */
    uint64_t mta_sts_max_age_s;                        /* the policy's max_age */
    uint32_t smtp_destination_concurrency_limit;       /* sessions per destination */
    uint32_t smtp_destination_rate_delay_ms;           /* pause between deliveries to one */
    uint32_t smtp_connection_cache_time_limit_ms;      /* an idle session is kept this long */
    uint32_t smtp_process_limit;                       /* outbound sessions in all */
    char mynetworks[CONFIG_STRING_BYTES];
    uint32_t submission_messages_per_hour;
    uint32_t submission_recipients_per_message;
    bool imap_fetch_splice;         /* FETCH BODY[] by splice from the file (plaintext) */
    bool direct_sockets;            /* connections as io_uring direct descriptors */
    uint32_t shutdown_timeout_ms;

    uint32_t kv_snapshot_interval_ms; /* embedded store saved to data_dir/kv this often */
    /* Redis behind the key-value store (core/kv_redis.h); redis "" = embedded. */
    char     redis_password[256];
    uint32_t redis_db;
    char     redis_prefix[65];
    uint32_t redis_timeout_ms;
    uint32_t redis_cache_s;
    uint32_t redis_cache_entries;

    /* DNS for the filters (core/dns.h). */
    char     dns_servers[CONFIG_STRING_BYTES]; /* "": /etc/resolv.conf */
    uint32_t dns_timeout_ms;
    uint32_t dns_tries;
    uint32_t dns_cache_entries;
    char     dns_override_file[CONFIG_STRING_BYTES];
    /* Sender authentication (filters/dkim_*, spf, dmarc, auth_results). */
    bool     dkim_verify;
    struct config_lines dkim_key;     /* "DOMAIN SELECTOR /path/key.pem" each */
    bool     spf;
    bool     dmarc;
    bool     dmarc_reject;            /* p=reject (after pct=) refused with 550 5.7.1 */
    char     authserv_id[256];        /* "": myhostname */
    char     public_suffix_file[CONFIG_STRING_BYTES];

    uint32_t filter_time_budget_ms;          /* a message's checks, DNS waits included */
    char     filter_order[128];              /* clamav, dkim, spf, dmarc, spam */

    /* Spam scoring (filters/spam_*), Rspamd's actions and defaults. */
    bool     spam;
    char     spam_rules_file[CONFIG_STRING_BYTES]; /* "": built-in weights only */
    char     spam_reject_score[16];          /* decimal numbers; "" turns an action off */
    char     spam_add_header_score[16];
    char     spam_greylist_score[16];
    char     spam_rewrite_subject_score[16];
    char     greylist[16];                   /* score | always | no */
    bool     greylist_local;                 /* loopback and private clients too */
    uint32_t greylist_delay_ms;
    uint32_t greylist_retry_window_ms;
    uint32_t greylist_pass_ttl_ms;
    char     ratelimit_sender[32];           /* COUNT/WINDOW, "": none */
    char     ratelimit_ip[32];
    char     ratelimit_rcpt[32];
    uint32_t bayes_min_learns;
    uint32_t spam_many_recipients;
    uint32_t uribl_lookups_max;

    /* ClamAV in process (filters/clamav_*). */
    bool     clamav;
    char     clamav_db[CONFIG_STRING_BYTES];  /* "": /var/lib/clamav if it holds one, else shipped */
    char     clamav_action[16];               /* reject | quarantine | header */
    char     quarantine_mailbox[256];         /* "": quarantine@myhostname */
    uint64_t clamav_max_scan_size;
    uint64_t clamav_max_file_size;
    uint32_t clamav_max_recursion;
    uint32_t clamav_max_files;
    uint32_t clamav_max_scan_time_ms;
    bool     clamav_alert_exceeds_max;

    bool fsync;          /* only tests on tmpfs turn this off; 250 means fsynced */
    uint32_t commit_window_ms; /* how long the committer waits for a batch to fill */
    bool spool_unnamed;  /* O_TMPFILE spool files where the file system allows */
    bool log_timestamps; /* prefix each log line with UTC time */
    int  log_level;      /* 0 error, 1 warning, 2 info, 3 debug */
    char log_format[16]; /* auto (journal when stderr is journald's), plain, journal */

    /* Running as a service (core/privileges.h): the mail user toasterd
     * becomes once its listeners are bound ("": stay as started), its
     * group ("": the user's primary group); the directory it then enters
     * with chroot(2) ("": none; core/chroot_paths.h). */
    char user[64];
    char group[64];
    char chroot[CONFIG_STRING_BYTES];

    /* postscreen on smtp_listen (core/postscreen) and the key-value store. */
    uint32_t postscreen_greet_wait_ms; /* hold the banner this long; 0 = no greet wait */
    uint32_t postscreen_bad_ttl_ms;    /* a pregreeter is refused this long */
    uint32_t postscreen_good_ttl_ms;   /* a client that waited skips the wait this long */
    uint32_t postscreen_rate_limit;    /* connections per minute per address; 0 = no limit */
    char     postscreen_access[CONFIG_STRING_BYTES]; /* "NET permit|reject, ..." or /path */
    uint32_t kv_embedded_entries;      /* entries of the embedded key-value store */

    /* Derived at load: the effective paths. */
    char users_path[CONFIG_STRING_BYTES];
    char aliases_path[CONFIG_STRING_BYTES];
    char control_socket_path[CONFIG_STRING_BYTES];
    /* Set by chroot_paths_rewrite: the paths are inside chroot now. */
    bool is_chrooted;
};

/* Fill *config with the embedded defaults. */
void config_defaults(struct config *config);

/* Apply a configuration file on top of what *config holds. Returns 0, or
 * -EINVAL with "file:line: reason" in err, or -errno when the file cannot be
 * read (also described in err). */
int config_load_file(struct config *config, const char *path, char *err, size_t err_bytes);

/* Set one key from text, as a file line would ("key", "value"). Returns 0 or
 * -EINVAL with the reason in err. Used by config_load_file and tests. */
int config_set(struct config *config, const char *key, const char *value, char *err,
               size_t err_bytes);

/* Resolve what depends on other keys (paths under data_dir, thread counts
 * from the CPU count). Returns 0 or -EINVAL with the reason in err. */
int config_finish(struct config *config, char *err, size_t err_bytes);

/* Print every key with its value as a configuration file would hold it. */
void config_dump(const struct config *config, int fd);

/* The keys one by one (core/config_reload): how many there are, key
 * index's name as files spell it (a static string), whether a and b hold
 * the same value for it, and copying its value from src to dst. */
size_t config_key_count(void);
const char *config_key_name(size_t index);
bool config_key_equal(const struct config *a, const struct config *b, size_t index);
void config_key_copy(struct config *dst, const struct config *src, size_t index);

#endif
