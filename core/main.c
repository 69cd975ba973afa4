/*
 * core/main.c - toasterd: read the configuration, start the committer, the
 * workers and one reactor per core, then wait for signals.
 *
 * The main thread owns start-up (bind, then give root up: core/privileges.h),
 * SIGHUP (reload the configuration's live keys, the TLS certificates, users
 * and aliases without dropping a connection: core/config_reload.h; the
 * control request "reload" raises it too) and
 * SIGTERM/SIGINT (stop accepting, let sessions finish up to
 * shutdown_timeout, exit 0). Every other thread has these
 * signals blocked; the main thread takes them with sigwaitinfo, so no work
 * happens in a signal handler.
 */
#define _GNU_SOURCE
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/assertions.h"
#include "core/config.h"
#include "core/config_reload.h"
#include "core/control.h"
#include "core/histogram.h"
#include "core/http_listener.h"
#include "core/ip_limit.h"
#include "core/log.h"
#include "core/chroot_paths.h"
#include "core/privileges.h"
#include "core/reactor.h"
#include "core/sd_notify.h"
#include "core/relay.h"
#include "core/tls.h"
#include "core/imap_listener.h"
#include "core/imap_exec.h"
#include "core/managesieve_listener.h"
#include "core/sieve_settings.h"
#include "core/sieve_stage.h"
#include "core/smtp_listener.h"
#include "filters/clamav_engine.h"
#include "filters/sieve_exec.h"
#include "filters/filter_chain.h"
#include "filters/spam_score.h"
#include "filters/spam_bayes.h"
#include "core/kv.h"
#include "core/kv_redis.h"
#include "core/kv_snapshot.h"
#include "filters/dkim_keys.h"
#include "filters/public_suffix.h"
#include "core/dns.h"
#include "core/metrics.h"
#include "core/stats.h"
#include "core/workers.h"
#include "store/delivery.h"
#include "store/mailbox_index.h"
#include "store/maildir_watch.h"
#include "store/recipients.h"
#include "store/spool.h"

#include "core/version.h"

static_assert(STATS_JSON_BYTES_MAX <= CONTROL_ANSWER_BYTES_MAX, "a stats answer fits");

static void
usage(FILE *out)
{
    (void)fprintf(out,
                  "usage: toasterd [-c FILE] [-n] [-d] [-V]\n"
                  "  -c FILE  read the configuration from FILE (default: embedded defaults)\n"
                  "  -n       check the configuration, print it, and exit\n"
                  "  -V       print the version and exit\n");
}

static int
load_recipients(const struct config *config, struct recipients **table_out)
{
    char err[1024] = "";
    int rc = recipients_load_config(config, table_out, err, sizeof(err));
    if (rc != 0) {
        log_error("cannot load users and aliases: %s", err[0] ? err : strerror(-rc));
        return rc;
    }
    log_info("loaded %zu users, %zu aliases, %zu local domains",
             recipients_user_count(*table_out), recipients_alias_count(*table_out),
             recipients_domain_count(*table_out));
    return 0;
}

/* log_format: "auto" is journal when stderr is journald's stream. */
static enum log_format
log_format_from(const struct config *config)
{
    if (strcmp(config->log_format, "journal") == 0 ||
        (strcmp(config->log_format, "auto") == 0 && log_stderr_is_journal())) {
        return LOG_FORMAT_JOURNAL;
    }
    return LOG_FORMAT_PLAIN;
}

/* SIGHUP: read the configuration file again (core/config_reload.h: which
 * keys apply live, which need a restart) and build what it feeds (the
 * users and aliases tables, the TLS certificates) off to the side; only
 * when all of it loaded is it put in service, and the old tables and
 * certificates are freed once every reactor has moved past them. A file
 * with an error, or a table or certificate that does not load, keeps
 * everything as it was. ClamAV and Sieve reload as before once the file
 * has been read. Returns 0 or -errno. */
static int
reload(const char *config_path, struct config *running, struct tls_server *tls,
       struct clamav *clamav, struct sieve_exec *sieve, struct reactor **reactors,
       uint32_t reactor_count, uint64_t *user_count_out)
{
    static struct config next;   /* big: off the stack, main thread only */
    static struct config merged;
    char err[1024] = "";
    config_defaults(&next);
    int rc = config_path != NULL ? config_load_file(&next, config_path, err, sizeof(err)) : 0;
    if (rc == 0) {
        rc = config_finish(&next, err, sizeof(err));
    }
    if (rc == 0 && running->is_chrooted && strcmp(next.chroot, running->chroot) != 0) {
        /* Its paths would be judged against a chroot toasterd is not in. */
        (void)snprintf(err, sizeof(err), "chroot changed to \"%.512s\": needs a restart",
                       next.chroot);
        rc = -EINVAL;
    } else if (rc == 0 && running->is_chrooted) {
        /* The file names outside paths: inside ones from here on. */
        rc = chroot_paths_rewrite(&next, err, sizeof(err));
    }
    if (rc != 0) {
        log_error("reload failed: %s; the running configuration stays", err);
        return rc;
    }
    struct config_reload_changes changes;
    config_reload_compare(running, &next, &changes);
    char names[1024];
    if (changes.restart_count > 0) {
        log_warning("reload: %s changed: needs a restart; the running value stays",
                    config_reload_names(changes.restart, changes.restart_count, names,
                                        sizeof(names)));
    }
    config_reload_merge(running, &next, &merged);
    rc = config_finish(&merged, err, sizeof(err));
    if (rc != 0) {
        log_error("reload failed: %s; the running configuration stays", err);
        return rc;
    }
    if (clamav != NULL) {
        clamav_reload(clamav); /* in the background; scans go on meanwhile */
    }
    if (sieve != NULL) {
        /* Scripts compiled again at their next use; a global one that no
         * longer compiles keeps the old in service. */
        char sieve_err[SIEVE_EXEC_ERROR_BYTES] = "";
        int sieve_rc = sieve_exec_reload(sieve, sieve_err, sizeof(sieve_err));
        if (sieve_rc != 0) {
            log_error("sieve: reload failed, keeping the previous scripts: %s",
                      sieve_err[0] != '\0' ? sieve_err : strerror(-sieve_rc));
        } else {
            log_info("sieve: scripts reloaded");
        }
    }
    struct recipients *table = NULL;
    rc = load_recipients(&merged, &table);
    if (rc != 0) {
        log_error("reload failed; keeping the previous users and aliases");
        return rc;
    }
    /* After the drop the certificates are read as the mail user: a key
     * only root can read fails here, and the old ones stay. */
    struct tls_certs *certs = NULL;
    if (tls != NULL) {
        char tls_err[512] = "";
        rc = tls_certs_load(&merged, &certs, tls_err, sizeof(tls_err));
        if (rc != 0) {
            recipients_destroy(&table);
            log_error("reload failed: %s; keeping the previous certificates, users and "
                      "aliases", tls_err);
            return rc;
        }
    }
    /* Everything loaded: in service from here on. */
    if (changes.live_count > 0) {
        log_info("reload: %s changed",
                 config_reload_names(changes.live, changes.live_count, names, sizeof(names)));
    }
    config_reload_apply(running, &merged);
    log_set_level((enum log_level)running->log_level);
    log_set_format(log_format_from(running), running->log_timestamps);
    *user_count_out = recipients_user_count(table);
    struct recipients *old = recipients_publish(table);
    bool is_tls_reloaded = certs != NULL;
    struct tls_certs *old_certs = certs != NULL ? tls_server_swap(tls, certs) : NULL;
    uint64_t epoch = reactor_epoch_advance();
    for (uint32_t i = 0; i < reactor_count; i++) {
        reactor_wake(reactors[i]);
    }
    for (uint32_t i = 0; i < reactor_count; i++) {
        /* Each reactor passes its loop top within one turn of being woken. */
        for (unsigned spins = 0; !reactor_epoch_reached(reactors[i], epoch); spins++) {
            ASSERT(spins < 600000); /* 10 minutes without a loop turn: a hung reactor */
            usleep(1000);
        }
    }
    recipients_destroy(&old);
    tls_certs_free(&old_certs);
    log_info("reload: users and aliases replaced%s",
             is_tls_reloaded ? ", TLS certificates reloaded" : "");
    return 0;
}

/* The control request "reload" (toasterctl reload, toasterctl user ...)
 * raises SIGHUP, so the reload runs on the main thread as for a signal, and
 * answers once a reload that started after the request has finished. The
 * main thread bumps started before it reads the files and finished after;
 * the control thread only reads. */
#define RELOAD_ANSWER_WAIT_MS 20000
static struct {
    uint64_t started;
    uint64_t finished;
    uint64_t user_count; /* after the last successful reload */
    uint8_t  is_ok;      /* the last reload's result */
    uint8_t  is_stopping;
} reload_state;

static int
reload_answer(void *arg, char *out, size_t out_bytes)
{
    (void)arg;
    uint64_t started = __atomic_load_n(&reload_state.started, __ATOMIC_ACQUIRE);
    if (kill(getpid(), SIGHUP) != 0) {
        return -errno;
    }
    const char *state = "pending";
    /* Bounded: RELOAD_ANSWER_WAIT_MS in 10 ms steps, less at shutdown. */
    for (unsigned waited_ms = 0; waited_ms < RELOAD_ANSWER_WAIT_MS; waited_ms += 10) {
        if (__atomic_load_n(&reload_state.finished, __ATOMIC_ACQUIRE) > started) {
            state = __atomic_load_n(&reload_state.is_ok, __ATOMIC_ACQUIRE) ? "done" : "failed";
            break;
        }
        if (__atomic_load_n(&reload_state.is_stopping, __ATOMIC_ACQUIRE)) {
            break;
        }
        usleep(10 * 1000);
    }
    int n = snprintf(out, out_bytes, "{\"reload\":\"%s\",\"users\":%llu}\n", state,
                     (unsigned long long)__atomic_load_n(&reload_state.user_count,
                                                         __ATOMIC_ACQUIRE));
    return n > 0 && (size_t)n < out_bytes ? n : -EMSGSIZE;
}

/* Each connection holds a socket and, during DATA, a spool file: raise the
 * soft descriptor limit to the hard one, as Postfix and Dovecot do, and say
 * when it is still below what the configured connection slots can use. */
static void
raise_fd_limit(const struct config *config)
{
    struct rlimit limit;
    if (getrlimit(RLIMIT_NOFILE, &limit) != 0) {
        log_warning("getrlimit(RLIMIT_NOFILE): %s", strerror(errno));
        return;
    }
    if (limit.rlim_cur < limit.rlim_max) {
        limit.rlim_cur = limit.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &limit) != 0) {
            log_warning("setrlimit(RLIMIT_NOFILE): %s", strerror(errno));
            (void)getrlimit(RLIMIT_NOFILE, &limit);
        }
    }
    rlim_t wanted = (rlim_t)config->reactor_threads * config->max_connections * 2 + 64;
    if (limit.rlim_cur < wanted) {
        log_warning("open file limit %llu is below the %llu that %u reactors x %u "
                    "connections may need; raise it (LimitNOFILE=) or lower max_connections",
                    (unsigned long long)limit.rlim_cur, (unsigned long long)wanted,
                    config->reactor_threads, config->max_connections);
    }
}

/* What `toasterctl stats` reads: every module's counters, gathered on the
 * control thread. The snapshot and the merged histogram are big, so they
 * live here rather than on that thread's stack. */
struct stats_source {
    struct reactor       **reactors;
    uint32_t               reactor_count;
    struct workers        *workers;
    uint64_t               start_ns;
    struct stats_snapshot  snapshot;
    struct histogram       latency;
};

static int
stats_answer(void *arg, char *out, size_t out_bytes)
{
    struct stats_source *source = arg;
    struct stats_snapshot *snapshot = &source->snapshot;
    memset(snapshot, 0, sizeof(*snapshot));
    (void)snprintf(snapshot->version, sizeof(snapshot->version), "%s", TOASTER_VERSION);
    snapshot->uptime_s = (stats_clock_ns() - source->start_ns) / UINT64_C(1000000000);
    ASSERT(source->reactor_count <= STATS_REACTORS_MAX);
    snapshot->reactor_count = source->reactor_count;
    histogram_init(&source->latency);
    for (uint32_t i = 0; i < source->reactor_count; i++) {
        reactor_stats_read(source->reactors[i], &snapshot->reactors[i], &source->latency);
    }
    stats_latency_from(snapshot, &source->latency);
    snapshot->workers.threads = workers_thread_count(source->workers);
    snapshot->workers.queue_depth = workers_queue_depth(source->workers);
    snapshot->workers.jobs_done = workers_jobs_done(source->workers);
    struct delivery_stats delivery;
    delivery_stats_read(&delivery);
    snapshot->delivery.batches = delivery.batches;
    snapshot->delivery.messages = delivery.messages;
    snapshot->delivery.fsyncs = delivery.fsyncs;
    return stats_json_format(snapshot, out, out_bytes);
}

static size_t
collect_listeners(const struct config *config, struct tls_server *tls,
                  struct reactor_listener *out, size_t capacity)
{
    static const char *const names[LISTENER_PROTOCOL_COUNT] = {
        [LISTENER_SMTP] = "smtp_listen",
        [LISTENER_SUBMISSION] = "submission_listen",
        [LISTENER_SUBMISSIONS] = "submissions_listen",
        [LISTENER_IMAP] = "imap_listen",
        [LISTENER_IMAPS] = "imaps_listen",
        [LISTENER_MANAGESIEVE] = "managesieve_listen",
        [LISTENER_HTTP] = "http_listen",
        [LISTENER_LMTP] = "lmtp_listen",
        [LISTENER_HTTPS] = "https_listen",
    };
    size_t count = 0;
    for (int protocol = 0; protocol < LISTENER_PROTOCOL_COUNT; protocol++) {
        const struct listen_list *list = &config->listen[protocol];
        const struct conn_handler *handler = NULL;
        /* Submission speaks the same SMTP until AUTH arrives; it relays
         * nothing, exactly like port 25. */
        bool is_implicit_tls = protocol == LISTENER_SUBMISSIONS || protocol == LISTENER_IMAPS ||
                               protocol == LISTENER_HTTPS;
        if (protocol == LISTENER_SMTP || protocol == LISTENER_SUBMISSION ||
            protocol == LISTENER_SUBMISSIONS || protocol == LISTENER_LMTP) {
            handler = &smtp_listener_handler; /* LMTP: the same session in LMTP mode */
        } else if (protocol == LISTENER_IMAP || protocol == LISTENER_IMAPS) {
            handler = &imap_listener_handler;
        } else if (protocol == LISTENER_MANAGESIEVE) {
            handler = &managesieve_listener_handler;
        } else if (protocol == LISTENER_HTTP || protocol == LISTENER_HTTPS) {
            handler = &http_listener_handler;
        }
        if (handler == NULL) {
            if (list->count > 0) {
                log_debug("%s: not served by this version", names[protocol]);
            }
            continue;
        }
        for (size_t i = 0; i < list->count && count < capacity; i++) {
            out[count].protocol = protocol;
            out[count].address = &list->addresses[i];
            out[count].handler = handler;
            /* LMTP offers no STARTTLS: a trusted front end on loopback or
             * a Unix socket. */
            out[count].tls = protocol == LISTENER_LMTP ? NULL : tls;
            out[count].is_implicit_tls = is_implicit_tls;
            log_info("listening on %s (%s)", list->addresses[i].text, names[protocol]);
            count++;
        }
    }
    return count;
}

/* What the filters hold for the daemon's life. */
struct filters {
    struct kv *kv;        /* greylisting, rate limits; postscreen's memory too */
    struct kv_snapshot *kv_snapshot;       /* embedded: saved in data_dir/kv */
    struct kv_snapshot *bayes_kv_snapshot;
    struct kv *bayes_kv;  /* Bayes counts (a table of their own when embedded) */
    struct spam_filter *spam;
    struct clamav *clamav;
    struct dns_resolver *dns;
    struct public_suffix *psl;
    struct dkim_keys *dkim_keys;
    struct filter_chain *chain;
};

static void
filters_stop(struct filters *f)
{
    filter_chain_destroy(&f->chain);
    spam_filter_destroy(&f->spam);
    clamav_destroy(&f->clamav); /* no scan runs once the workers are gone */
    (void)kv_snapshot_stop(&f->kv_snapshot); /* the last save; its outcome is logged */
    (void)kv_snapshot_stop(&f->bayes_kv_snapshot);
    kv_destroy(&f->kv);
    kv_destroy(&f->bayes_kv);
    if (f->dns != NULL) {
        dns_resolver_destroy(&f->dns);
    }
    public_suffix_destroy(&f->psl);
    dkim_keys_destroy(&f->dkim_keys);
}

static int
filters_start_clamav(const struct config *config, struct filters *f,
                     struct filter_chain_config *chain)
{
    struct clamav_config av;
    clamav_config_defaults(&av);
    av.db_dir = config->clamav_db;
    av.data_dir = config->data_dir;
    av.max_scan_bytes = config->clamav_max_scan_size;
    av.max_file_bytes = config->clamav_max_file_size;
    av.max_recursion = config->clamav_max_recursion;
    av.max_files = config->clamav_max_files;
    av.max_scan_time_ms = config->clamav_max_scan_time_ms;
    av.alert_exceeds_max = config->clamav_alert_exceeds_max;
    /* A chroot has no /tmp: libclamav's scan directories go under data_dir. */
    static char tmp_dir[PATH_MAX];
    if (config->is_chrooted) {
        int n = snprintf(tmp_dir, sizeof(tmp_dir), "%s/clamav-tmp", config->data_dir);
        if (n < 0 || (size_t)n >= sizeof(tmp_dir)) {
            return -ENAMETOOLONG;
        }
        if (mkdir(tmp_dir, 0700) != 0 && errno != EEXIST) {
            int mkdir_rc = -errno;
            log_error("clamav: mkdir %s: %s", tmp_dir, strerror(errno));
            return mkdir_rc;
        }
        av.tmp_dir = tmp_dir;
    }
    const char *reason = NULL;
    if (clamav_config_check(&av, &reason) != 0) {
        log_error("clamav: %s", reason);
        return -EINVAL;
    }
    int rc = clamav_create(&av, &f->clamav);
    if (rc != 0) {
        return rc;
    }
    chain->clamav = f->clamav;
    chain->virus_action = strcmp(config->clamav_action, "header") == 0 ? FILTER_VIRUS_HEADER
                          : strcmp(config->clamav_action, "quarantine") == 0
                              ? FILTER_VIRUS_QUARANTINE
                              : FILTER_VIRUS_REJECT;
    return 0;
}

/* The resolver of the filters and the delivery agent. */
static int
dns_start(const struct config *config, struct dns_resolver **resolver_out)
{
    struct dns_config dns;
    dns_config_defaults(&dns);
    dns.servers = config->dns_servers;
    dns.timeout_ms = config->dns_timeout_ms;
    dns.tries = config->dns_tries;
    dns.cache_entries = config->dns_cache_entries;
    dns.override_file = config->dns_override_file;
    char error[256];
    int rc = dns_resolver_create(&dns, resolver_out, error, sizeof(error));
    if (rc != 0) {
        log_error("dns: %s", error);
    }
    return rc;
}

/* DKIM, SPF and DMARC: the resolver they ask, the Public Suffix List,
 * the signing keys. */
/* The files the authentication filters read once, at start: the Public
 * Suffix List (DMARC) and the DKIM signing keys. Read before a chroot (they
 * may lie outside it), or by filters_start; what is loaded already is
 * kept. Returns 0 or -errno (logged). */
static int
filters_load_files(const struct config *config, struct filters *f)
{
    if (config->dmarc && f->psl == NULL) {
        unsigned line = 0;
        int rc = public_suffix_load(config->public_suffix_file, PUBLIC_SUFFIX_ALL, &f->psl, &line);
        if (rc != 0) {
            /* DMARC still works, with exact domains for relaxed alignment. */
            log_warning("public_suffix_file %s: %s (line %u): DMARC aligns exact domains only",
                        config->public_suffix_file, strerror(-rc), line);
        }
    }
    if (config->dkim_key.count > 0 && f->dkim_keys == NULL) {
        const char *values[CONFIG_LINES_MAX];
        for (size_t i = 0; i < config->dkim_key.count; i++) {
            values[i] = config->dkim_key.lines[i];
        }
        char error[256];
        int rc = dkim_keys_load(values, config->dkim_key.count, &f->dkim_keys, error,
                                sizeof(error));
        if (rc != 0) {
            log_error("dkim_key: %s", error);
            return rc;
        }
        log_info("dkim: %zu signing key(s) loaded", dkim_keys_count(f->dkim_keys));
    }
    return 0;
}

static int
filters_start_authentication(const struct config *config, struct filters *f,
                             struct filter_chain_config *chain)
{
    chain->authserv_id = config->authserv_id;
    chain->is_dkim_verify = config->dkim_verify;
    chain->is_spf = config->spf;
    chain->is_dmarc = config->dmarc;
    chain->is_dmarc_reject = config->dmarc_reject;
    if (config->dkim_verify || config->spf || config->dmarc || config->outbound_delivery) {
        int rc = dns_start(config, &f->dns);
        if (rc != 0) {
            return rc;
        }
        chain->dns = f->dns;
    }
    int rc = filters_load_files(config, f);
    if (rc != 0) {
        return rc;
    }
    chain->psl = f->psl;
    chain->dkim_keys = f->dkim_keys;
    return 0;
}

/* Bayes learns the message file at path (a blocking read: the control
 * thread or a worker). Returns spam_bayes_learn_fd's answer, or -errno
 * of the open. */
static int
bayes_learn_file(const struct filters *f, const char *path, bool is_spam)
{
    struct kv *kv = f->bayes_kv != NULL ? f->bayes_kv : f->kv;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        return -errno;
    }
    int rc = spam_bayes_learn_fd(kv, fd, is_spam);
    (void)close(fd);
    return rc;
}

/* The control request "learn spam|ham PATH" (toasterctl learn). */
static int
learn_answer(void *arg, const char *argument, char *out, size_t out_bytes)
{
    const struct filters *f = arg;
    bool is_spam = strncmp(argument, "spam ", 5) == 0;
    if (!is_spam && strncmp(argument, "ham ", 4) != 0) {
        return snprintf(out, out_bytes, "{\"error\":\"want: learn spam|ham PATH\"}\n");
    }
    if (f->spam == NULL || f->kv == NULL) {
        return snprintf(out, out_bytes, "{\"error\":\"spam filtering is off\"}\n");
    }
    int rc = bayes_learn_file(f, argument + (is_spam ? 5 : 4), is_spam);
    const char *result = rc == 0            ? "learned"
                         : rc == -EALREADY  ? "already"
                         : rc == -ENODATA   ? "no-text"
                                            : NULL;
    if (result == NULL) {
        return snprintf(out, out_bytes, "{\"error\":\"%s\"}\n", strerror(-rc));
    }
    uint64_t spam_count = 0;
    uint64_t ham_count = 0;
    (void)spam_bayes_learn_counts(f->bayes_kv != NULL ? f->bayes_kv : f->kv, &spam_count,
                                  &ham_count);
    return snprintf(out, out_bytes,
                    "{\"result\":\"%s\",\"spam\":%" PRIu64 ",\"ham\":%" PRIu64 "}\n", result,
                    spam_count, ham_count);
}

/* IMAP: a message filed into or out of Junk (a worker thread). */
static void
junk_learn(void *ctx, const char *path, bool is_spam)
{
    int rc = bayes_learn_file(ctx, path, is_spam);
    /* Gone meanwhile, known already, or no words: nothing to say. */
    if (rc != 0 && rc != -ENOENT && rc != -EALREADY && rc != -ENODATA) {
        log_warning("bayes: learning %s as %s: %s", path, is_spam ? "spam" : "ham",
                    strerror(-rc));
    }
}

/* A score key: a decimal number, or "" for an action that never fires. */
static int
spam_score_parse(const char *name, const char *text, double *score_out)
{
    if (text[0] == '\0') {
        *score_out = INFINITY;
        return 0;
    }
    char *end = NULL;
    errno = 0;
    double score = strtod(text, &end);
    if (errno != 0 || end == text || *end != '\0' || !isfinite(score)) {
        log_error("%s: '%s' is not a number", name, text);
        return -EINVAL;
    }
    *score_out = score;
    return 0;
}

static int
spam_rate_parse(const char *name, const char *text, struct spam_rate *rate_out)
{
    if (text[0] == '\0') {
        *rate_out = (struct spam_rate){ 0 };
        return 0;
    }
    if (spam_ratelimit_parse(text, rate_out) != 0) {
        log_error("%s: want COUNT/WINDOW (e.g. 100/1h), not '%s'", name, text);
        return -EINVAL;
    }
    return 0;
}

/* The Public Suffix List for the spam filter's organizational domains. */
static int
spam_org_domain(const void *ctx, const char *name, char *out, size_t out_bytes)
{
    return public_suffix_org_domain(ctx, name, out, out_bytes);
}

static int
filters_start_spam(const struct config *config, struct filters *f,
                   struct filter_chain_config *chain)
{
    struct spam_config spam;
    spam_config_defaults(&spam);
    double rewrite = INFINITY;
    int rc = spam_score_parse("spam_reject_score", config->spam_reject_score, &spam.reject_score);
    if (rc == 0) {
        rc = spam_score_parse("spam_add_header_score", config->spam_add_header_score,
                              &spam.add_header_score);
    }
    if (rc == 0) {
        rc = spam_score_parse("spam_greylist_score", config->spam_greylist_score,
                              &spam.greylist_score);
    }
    if (rc == 0) {
        rc = spam_score_parse("spam_rewrite_subject_score", config->spam_rewrite_subject_score,
                              &rewrite);
    }
    spam.is_rewrite_subject = isfinite(rewrite);
    spam.rewrite_subject_score = spam.is_rewrite_subject ? rewrite : 0;
    if (rc == 0) {
        rc = spam_rate_parse("ratelimit_sender", config->ratelimit_sender, &spam.ratelimit_sender);
    }
    if (rc == 0) {
        rc = spam_rate_parse("ratelimit_ip", config->ratelimit_ip, &spam.ratelimit_ip);
    }
    if (rc == 0) {
        rc = spam_rate_parse("ratelimit_rcpt", config->ratelimit_rcpt, &spam.ratelimit_rcpt);
    }
    if (rc != 0) {
        return rc;
    }
    if (strcmp(config->greylist, "score") == 0) {
        spam.greylist_mode = SPAM_GREYLIST_SCORE;
    } else if (strcmp(config->greylist, "always") == 0) {
        spam.greylist_mode = SPAM_GREYLIST_ALWAYS;
    } else if (strcmp(config->greylist, "no") == 0) {
        spam.greylist_mode = SPAM_GREYLIST_OFF;
    } else {
        log_error("greylist: want score, always or no, not '%s'", config->greylist);
        return -EINVAL;
    }
    spam.greylist.delay_s = config->greylist_delay_ms / 1000u;
    spam.greylist.retry_window_s = config->greylist_retry_window_ms / 1000u;
    spam.greylist.pass_ttl_s = config->greylist_pass_ttl_ms / 1000u;
    spam.bayes_min_learns = config->bayes_min_learns;
    spam.many_recipients = config->spam_many_recipients;
    spam.uribl_lookups_max = config->uribl_lookups_max;
    if (f->psl != NULL) {
        spam.org_domain = spam_org_domain;
        spam.org_domain_ctx = f->psl;
    }
    spam.bayes_kv = f->bayes_kv;
    char error[512];
    rc = spam_filter_create(&spam, config->spam_rules_file, &f->spam, error, sizeof(error));
    if (rc != 0) {
        log_error("spam_rules_file %s: %s", config->spam_rules_file, error);
        return rc;
    }
    chain->spam = f->spam;
    chain->kv = f->kv;
    imap_cmd_copy_set_learner(junk_learn, f);
    chain->is_greylist_local = config->greylist_local;
    return 0;
}

/* The key-value stores the filters and postscreen share. */
static int
filters_start_kv(const struct config *config, struct filters *f)
{
    if (config->redis[0] != '\0') {
        /* Shared by every toaster on that Redis; Bayes lives there too. */
        struct kv_redis_config redis;
        kv_redis_config_defaults(&redis);
        redis.address = config->redis;
        redis.password = config->redis_password;
        redis.db = config->redis_db;
        redis.prefix = config->redis_prefix;
        redis.timeout_ms = config->redis_timeout_ms;
        redis.cache_s = config->redis_cache_s;
        redis.cache_entries = config->redis_cache_entries;
        int rc = kv_redis_create(&redis, &f->kv);
        if (rc != 0) {
            log_error("redis %s: %s", config->redis, strerror(-rc));
        } else {
            log_info("key-value store: redis at %s (prefix '%s')", config->redis,
                     config->redis_prefix);
        }
        return rc;
    }
    int rc = kv_embedded_create(config->kv_embedded_entries, NULL, NULL, &f->kv);
    if (rc == 0 && config->spam) {
        /* Bayes writes a thousand keys per learned message: apart from
         * greylisting and postscreen, so it cannot push them out. */
        rc = kv_embedded_create(config->kv_embedded_entries, NULL, NULL, &f->bayes_kv);
    }
    if (rc != 0) {
        log_error("key-value store: %s", strerror(-rc));
        return rc;
    }
    /* Persisted in data_dir/kv: loaded now (before anyone reads them), saved
     * every kv_snapshot_interval and at the end. */
    uint32_t every_s = config->kv_snapshot_interval_ms / 1000u;
    if (config->kv_snapshot_interval_ms > 0 && every_s == 0) {
        every_s = 1;
    }
    char path[PATH_MAX];
    int n = snprintf(path, sizeof(path), "%s/kv/greylist.kv", config->data_dir);
    rc = n < 0 || (size_t)n >= sizeof(path) ? -ENAMETOOLONG
                                            : kv_snapshot_open(f->kv, path, every_s, &f->kv_snapshot);
    if (rc == 0 && f->bayes_kv != NULL) {
        n = snprintf(path, sizeof(path), "%s/kv/bayes.kv", config->data_dir);
        rc = n < 0 || (size_t)n >= sizeof(path)
                 ? -ENAMETOOLONG
                 : kv_snapshot_open(f->bayes_kv, path, every_s, &f->bayes_kv_snapshot);
    }
    if (rc != 0) {
        log_error("key-value store snapshot in %s/kv: %s", config->data_dir, strerror(-rc));
    }
    return rc;
}

/* The filters every message passes before delivery, from the configuration.
 * The ClamAV engine loads in the background: until it is in, scans defer. */
static int
filters_start(const struct config *config, struct filters *f)
{
    struct filter_chain_config chain = { .time_budget_ms = config->filter_time_budget_ms };
    char error[160];
    if (filter_order_parse(config->filter_order, chain.order, error, sizeof(error)) != 0) {
        log_error("filter_order: %s", error);
        return -EINVAL;
    }
    chain.order_count = FILTER_STAGE_COUNT;
    int rc = config->clamav ? filters_start_clamav(config, f, &chain) : 0;
    if (rc == 0) {
        rc = filters_start_authentication(config, f, &chain);
    }
    if (rc == 0 && config->spam) {
        rc = filters_start_spam(config, f, &chain);
    }
    if (rc == 0) {
        rc = filter_chain_create(&chain, &f->chain);
    }
    if (rc == 0) {
        smtp_listener_set_filters(f->chain);
    }
    return rc;
}

/* With chroot set: read what may lie outside it, rewrite the paths, enter
 * it (core/chroot_paths.h, core/privileges.h). Returns 0 or -1 (logged). */
static int
chroot_enter(struct config *config, const char **config_path, const struct privileges *privileges,
             struct filters *f)
{
    char err[2048];
    /* The file is read again on a reload, from inside. */
    static char inside_path[PATH_MAX];
    if (*config_path != NULL) {
        int path_rc = chroot_paths_config_file(config->chroot, *config_path, inside_path,
                                               sizeof(inside_path));
        if (path_rc != 0) {
            log_error("chroot = %s: the configuration file %s is read again on a reload, so it "
                      "must lie under the chroot (a symbolic link to a file there will do): %s",
                      config->chroot, *config_path,
                      path_rc == -EXDEV ? "it lies outside" : strerror(-path_rc));
            return -1;
        }
    }
    int rc = config->dns_servers[0] == '\0' ? chroot_paths_resolv_load("/etc/resolv.conf") : 0;
    if (rc != 0) {
        log_warning("chroot: /etc/resolv.conf: %s; set dns_servers", strerror(-rc));
    }
    if (filters_load_files(config, f) != 0) {
        return -1;
    }
    tzset(); /* /etc/localtime now: glibc keeps the zone for localtime_r */
    if (chroot_paths_rewrite(config, err, sizeof(err)) != 0 ||
        privileges_chroot(privileges, config->chroot, err, sizeof(err)) != 0) {
        log_error("%s", err);
        return -1;
    }
    if (*config_path != NULL) {
        *config_path = inside_path;
    }
    log_info("chroot %s: entered; data in %s inside it, named spool files (no /proc inside)",
             config->chroot, config->data_dir);
    return 0;
}

/* Sieve at delivery (core/sieve_stage): the global scripts compiled now,
 * so one that does not compile stops the start with its error and line.
 * exec stays NULL when sieve = no. Returns 0 or -errno (logged). */
static int
sieve_start(const struct config *config, struct kv *kv, struct sieve_exec **exec_out)
{
    *exec_out = NULL;
    if (config->sieve) {
        struct sieve_exec_settings settings;
        sieve_settings_from_config(config, kv, &settings);
        char err[SIEVE_EXEC_ERROR_BYTES] = "";
        int rc = sieve_exec_create(&settings, exec_out, err, sizeof(err));
        if (rc != 0) {
            log_error("sieve: %s", err[0] != '\0' ? err : strerror(-rc));
            return rc;
        }
    }
    int rc = sieve_stage_init(*exec_out, config->data_dir, config->myhostname, config->fsync);
    if (rc != 0) {
        log_error("sieve: %s: %s", config->data_dir, strerror(-rc));
        sieve_exec_destroy(exec_out);
    }
    return rc;
}

int
main(int argc, char **argv)
{
    const char *config_path = NULL;
    bool is_check_only = false;
    int opt;
    while ((opt = getopt(argc, argv, "c:nVh")) != -1) {
        switch (opt) {
        case 'c':
            config_path = optarg;
            break;
        case 'n':
            is_check_only = true;
            break;
        case 'V':
            printf("toasterd %s\n", TOASTER_VERSION);
            return 0;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind != argc) {
        usage(stderr);
        return 2;
    }

    static struct config config;
    config_defaults(&config);
    char err[1024];
    if (config_path != NULL && config_load_file(&config, config_path, err, sizeof(err)) != 0) {
        (void)fprintf(stderr, "toasterd: %s\n", err);
        return 1;
    }
    if (config_finish(&config, err, sizeof(err)) != 0) {
        (void)fprintf(stderr, "toasterd: %s%s%s\n", config_path ? config_path : "",
                      config_path ? ": " : "", err);
        return 1;
    }
    if (is_check_only) {
        config_dump(&config, STDOUT_FILENO);
        return 0;
    }
    /* What toasterd creates (mail, queue, spool, kv snapshots, Sieve
     * scripts) is the mail user's alone: 0600 files, 0700 directories. */
    (void)umask(077);
    sd_notify_setup();
    log_setup((enum log_level)config.log_level, config.log_timestamps);
    log_set_format(log_format_from(&config), config.log_timestamps);
    /* The mail user, looked up while single-threaded (core/privileges.h
     * has the whole order). */
    static struct privileges privileges;
    bool is_root_warning = false;
    if (privileges_prepare(config.user, config.group, &privileges, &is_root_warning, err,
                           sizeof(err)) != 0) {
        log_error("%s", err);
        return 1;
    }
    if (is_root_warning) {
        log_warning("running as root with no user set: every file will belong to root; set "
                    "user (and group) to the mail user, e.g. user = vmail");
    }
    if (privileges.is_drop && config.sqpoll) {
        /* The kernel's submission-queue thread does file I/O with the
         * credentials the ring was made with, which would be root's. */
        log_error("sqpoll = yes cannot be combined with user: turn one off");
        return 1;
    }

    /* Block the signals we handle before any thread exists, so every thread
     * inherits the mask and only sigwaitinfo below sees them. */
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGTERM);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGHUP);
    /* A signal ignored by inheritance (a shell's background job ignores
     * SIGINT) would be dropped before sigwaitinfo could take it. */
    (void)signal(SIGTERM, SIG_DFL);
    (void)signal(SIGINT, SIG_DFL);
    (void)signal(SIGHUP, SIG_DFL);
    if (pthread_sigmask(SIG_BLOCK, &signals, NULL) != 0) {
        log_error("cannot block signals");
        return 1;
    }
    (void)signal(SIGPIPE, SIG_IGN);

    raise_fd_limit(&config);
    if (privileges_data_dir(&privileges, config.data_dir, err, sizeof(err)) != 0) {
        log_error("%s", err);
        return 1;
    }
    /* TLS while single-threaded: the self-signed pair is made as the mail
     * user (it reads it again on a reload), the configured keys are read
     * as root (they may be root's alone); from then on every file is
     * created as the mail user, while binding still may use root. One TLS
     * context for every listener and reactor: session tickets made on one
     * reactor resume on another. */
    struct tls_server *tls = NULL;
    char tls_error[512] = "";
    if (privileges_files_as(&privileges, PRIVILEGES_FILES_USER, err, sizeof(err)) != 0) {
        log_error("%s", err);
        return 1;
    }
    if (tls_server_prepare(&config, tls_error, sizeof(tls_error)) != 0) {
        log_error("TLS: %s", tls_error);
        return 1;
    }
    if (privileges_files_as(&privileges, PRIVILEGES_FILES_ROOT, err, sizeof(err)) != 0) {
        log_error("%s", err);
        return 1;
    }
    if (tls_server_create(&config, &tls, tls_error, sizeof(tls_error)) != 0) {
        log_error("TLS: %s", tls_error);
        return 1;
    }
    if (privileges_files_as(&privileges, PRIVILEGES_FILES_USER, err, sizeof(err)) != 0) {
        log_error("%s", err);
        return 1;
    }
    /* chroot (core/chroot_paths.h): what may lie outside it is read now
     * (the name servers of /etc/resolv.conf, the Public Suffix List, the
     * DKIM keys); every other path is rewritten to its inside form, and
     * from here on toasterd opens files inside the chroot only. */
    struct filters filters = {0};
    if (config.chroot[0] != '\0' && chroot_enter(&config, &config_path, &privileges, &filters) != 0) {
        return 1;
    }
    /* Start-up clears the spool of files left by an earlier run: a second
     * daemon on the same data must stop before that, while a first one
     * still owns them. control_open() below checks again and binds. */
    if (control_check(config.control_socket_path) != 0) {
        return 1;
    }
    if (spool_prepare(config.data_dir) != 0) {
        return 1;
    }
    struct recipients *table = NULL;
    if (load_recipients(&config, &table) != 0) {
        return 1;
    }
    __atomic_store_n(&reload_state.user_count, (uint64_t)recipients_user_count(table),
                     __ATOMIC_RELEASE);
    (void)recipients_publish(table);

    int rc = ip_limit_init(config.reactor_threads * config.max_connections,
                           config.max_connections_per_ip);
    if (rc == 0) {
        rc = delivery_start(config.data_dir, config.myhostname, config.fsync,
                            config.commit_window_ms);
    }
    struct workers *workers = NULL;
    if (rc == 0) {
        rc = workers_create(config.worker_threads, config.reactor_threads,
                            config.worker_queue_entries, &workers);
    }
    if (rc == 0) {
        rc = filters_start_kv(&config, &filters);
    }
    if (rc == 0) {
        rc = smtp_listener_init(&config, filters.kv);
    }
    if (rc == 0) {
        rc = imap_listener_init(&config);
    }
    if (rc == 0) {
        rc = managesieve_listener_init(&config);
    }
    if (rc == 0) {
        rc = http_listener_init(&config);
    }
    if (rc == 0) {
        rc = filters_start(&config, &filters);
    }
    struct sieve_exec *sieve = NULL;
    if (rc == 0) {
        rc = sieve_start(&config, filters.kv, &sieve);
    }
    if (rc != 0) {
        log_error("start-up failed: %s", strerror(-rc));
        return 1;
    }
    if (!config.fsync) {
        log_warning("fsync = no: a crash can lose mail that was acknowledged");
    }
    /* Before any reactor listens: with SO_REUSEPORT a second daemon could
     * otherwise share our ports. */
    struct control *control = NULL;
    if (control_open(config.control_socket_path, &control) != 0) {
        return 1;
    }

    static struct reactor_listener listeners[LISTENER_PROTOCOL_COUNT * LISTEN_ADDRESSES_MAX];
    size_t listener_count = collect_listeners(&config, tls, listeners,
                                              sizeof(listeners) / sizeof(listeners[0]));
    struct reactor **reactors = calloc(config.reactor_threads, sizeof(*reactors));
    if (reactors == NULL) {
        control_close(&control);
        return 1;
    }
    /* Other programs' changes in loaded folders reach IDLE sessions at once
     * (without it they are seen at the next command). */
    rc = maildir_watch_start(mailbox_index_changed_outside);
    if (rc != 0) {
        log_warning("maildir watch: %s; changes other programs make are seen at the next "
                    "command", strerror(-rc));
    }
    /* The delivery agent's sessions: a state area on every reactor; new
     * queue entries are noted from the first commit on. */
    if (config.outbound_delivery) {
        rc = reactor_client_handler_register(relay_session_handler());
        ASSERT(rc == 0);
        delivery_set_queued_hook(relay_notify_queued);
    }
    uint32_t started = 0;
    for (uint32_t i = 0; i < config.reactor_threads; i++) {
        rc = reactor_start(i, &config, listeners, listener_count, workers, &reactors[i]);
        if (rc != 0) {
            log_error("reactor %u failed to start: %s", i, strerror(-rc));
            break;
        }
        started++;
    }
    if (started < config.reactor_threads) {
        for (uint32_t i = 0; i < started; i++) {
            reactor_request_stop(reactors[i]);
            reactor_join(&reactors[i]);
        }
        control_close(&control);
        return 1;
    }
    /* Every reactor listens (reactor_start returns after bind and
     * listen): root is no longer needed, for any thread. */
    if (privileges_drop(&privileges, err, sizeof(err)) != 0) {
        log_error("cannot give up root: %s", err);
        for (uint32_t i = 0; i < config.reactor_threads; i++) {
            reactor_request_stop(reactors[i]);
            reactor_join(&reactors[i]);
        }
        control_close(&control);
        return 1;
    }
    if (privileges.is_drop) {
        log_info("running as %s (uid %u, gid %u)", privileges.user, (unsigned)privileges.uid,
                 (unsigned)privileges.gid);
    }
    if (config.outbound_delivery) {
        if (relay_start(&config, reactors[0], filters.dns, filters.dkim_keys) != 0) {
            for (uint32_t i = 0; i < config.reactor_threads; i++) {
                reactor_request_stop(reactors[i]);
                reactor_join(&reactors[i]);
            }
            control_close(&control);
            return 1;
        }
    } else {
        log_info("outbound_delivery = no: queued mail waits on disk");
    }
    static struct stats_source stats_source;
    stats_source.reactors = reactors;
    stats_source.reactor_count = config.reactor_threads;
    stats_source.workers = workers;
    stats_source.start_ns = stats_clock_ns();
    metrics_start(reactors, config.reactor_threads, workers); /* /metrics on http_listen */
    /* In main's frame, which outlives the control thread. */
    const struct control_command commands[] = {
        { .name = "stats", .answer = stats_answer, .arg = &stats_source },
        { .name = "reload", .answer = reload_answer, .arg = NULL },
        { .name = "learn", .answer_argument = learn_answer, .arg = &filters },
        { .name = "queue-flush", .answer = relay_control_flush_all, .arg = NULL },
        { .name = "queue-flush", .answer_argument = relay_control_flush_one, .arg = NULL },
    };
    if (control_start(control, commands, sizeof(commands) / sizeof(commands[0])) != 0) {
        metrics_stop();
        for (uint32_t i = 0; i < config.reactor_threads; i++) {
            reactor_request_stop(reactors[i]);
            reactor_join(&reactors[i]);
        }
        control_close(&control);
        return 1;
    }
    log_info("toasterd %s started: %u reactor(s), %u worker(s), data in %s", TOASTER_VERSION,
             config.reactor_threads, config.worker_threads, config.data_dir);
    rc = sd_notify_send("READY=1");
    if (rc != 0) {
        log_warning("sd_notify READY=1: %s", strerror(-rc));
    }

    for (;;) {
        siginfo_t info;
        int signo = sigwaitinfo(&signals, &info);
        if (signo < 0) {
            if (errno == EINTR) {
                continue;
            }
            log_error("sigwaitinfo: %s", strerror(errno));
            break;
        }
        if (signo == SIGHUP) {
            log_info("SIGHUP: reloading the configuration, users and aliases");
            (void)sd_notify_reloading(); /* systemd only shows it: nothing to do on failure */
            __atomic_add_fetch(&reload_state.started, 1, __ATOMIC_ACQ_REL);
            uint64_t user_count = 0;
            bool is_ok = reload(config_path, &config, tls, filters.clamav, sieve, reactors,
                                config.reactor_threads, &user_count) == 0;
            if (is_ok) {
                __atomic_store_n(&reload_state.user_count, user_count, __ATOMIC_RELEASE);
            }
            __atomic_store_n(&reload_state.is_ok, (uint8_t)is_ok, __ATOMIC_RELEASE);
            __atomic_add_fetch(&reload_state.finished, 1, __ATOMIC_ACQ_REL);
            (void)sd_notify_send("READY=1");
            continue;
        }
        log_info("%s: stopping; sessions have %u ms to finish",
                 signo == SIGTERM ? "SIGTERM" : "SIGINT", config.shutdown_timeout_ms);
        break;
    }

    (void)sd_notify_send("STOPPING=1"); /* systemd only shows it */
    /* The control thread reads the reactors: it goes first, and a reload
     * request it is waiting on will not come now. */
    __atomic_store_n(&reload_state.is_stopping, 1, __ATOMIC_RELEASE);
    control_close(&control);
    metrics_stop(); /* renders read every reactor: none may be under way as they go */
    for (uint32_t i = 0; i < config.reactor_threads; i++) {
        reactor_request_stop(reactors[i]);
    }
    for (uint32_t i = 0; i < config.reactor_threads; i++) {
        reactor_join(&reactors[i]);
    }
    free(reactors);
    workers_destroy(&workers);
    tls_server_free(&tls);
    delivery_stop();
    relay_stop(); /* after its reactor, the workers that ran its jobs, the committer */
    /* After the workers and the committer (its hook records duplicate
     * marks), before the store it writes to. */
    sieve_stage_destroy();
    sieve_exec_destroy(&sieve);
    smtp_listener_destroy();
    filters_stop(&filters); /* after the listener: postscreen used the store */
    imap_listener_destroy();
    maildir_watch_stop();
    (void)mailbox_index_drop_idle();
    table = recipients_publish(NULL);
    recipients_destroy(&table);
    ip_limit_destroy();
    log_info("stopped");
    return 0;
}
