/*
 * core/metrics.c - gathers every module's counters into the Prometheus
 * document (see metrics.h).
 *
 * Owns only the pointers main gives it and a count of renders under way
 * (so metrics_stop() can wait them out before the reactors go). Reads:
 * each reactor's struct reactor_stats (connections, bytes, SMTP refusals
 * by reason, IMAP sessions and commands, the latency histograms), the
 * worker pool's depth, the committer's syncs, the filter chain's verdicts
 * and times, the delivery agent's queue gauges. All relaxed loads: a
 * document may show one counter a little older than another, never a torn
 * value. Any thread; allocates one scratch histogram per render.
 * Limits: METRICS_BODY_BYTES_MAX (the caller's buffer).
 */
#include "core/metrics.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/assertions.h"
#include "core/reactor.h"
#include "core/relay.h"
#include "core/stats.h"
#include "core/version.h"
#include "core/workers.h"
#include "filters/filter_chain.h"
#include "proto/imap/imap_parser.h"
#include "store/delivery.h"

struct metrics_source {
    struct reactor **reactors;
    uint32_t         reactor_count;
    struct workers  *workers;
    uint64_t         start_ns;
};

static struct metrics_source source_storage;
static struct metrics_source *source; /* NULL: not serving */
static uint32_t readers;              /* renders under way */

void
metrics_start(struct reactor **reactors, uint32_t reactor_count, struct workers *workers)
{
    ASSERT(reactors != NULL);
    ASSERT(reactor_count > 0 && reactor_count <= STATS_REACTORS_MAX);
    ASSERT(__atomic_load_n(&source, __ATOMIC_SEQ_CST) == NULL);
    source_storage.reactors = reactors;
    source_storage.reactor_count = reactor_count;
    source_storage.workers = workers;
    source_storage.start_ns = stats_clock_ns();
    __atomic_store_n(&source, &source_storage, __ATOMIC_SEQ_CST);
}

void
metrics_stop(void)
{
    __atomic_store_n(&source, NULL, __ATOMIC_SEQ_CST);
    /* A render that saw the source counted itself first (both seq_cst), so
     * once the count is zero nobody reads the reactors any more. */
    while (__atomic_load_n(&readers, __ATOMIC_SEQ_CST) != 0) {
        struct timespec pause = { .tv_sec = 0, .tv_nsec = 100000 };
        (void)nanosleep(&pause, NULL); /* an interruption only shortens the pause */
    }
}

/* ---- the families ------------------------------------------------------------- */

/* A gauge or counter with one sample and no labels. */
static void
single(struct metrics_text *t, const char *name, const char *type, const char *help,
       uint64_t value)
{
    metrics_text_family(t, name, type, help);
    metrics_text_sample(t, name, NULL, 0, value);
}

/* The per-reactor families: one sample per reactor of a field of
 * struct stats_reactor (the document's form, cq_overflow included). */
struct reactor_family {
    const char *name;
    const char *type;
    const char *help;
    size_t      offset; /* of a uint64_t in struct stats_reactor */
};

static const struct reactor_family reactor_families[] = {
    { "toaster_connections_open", "gauge", "Connection slots in use.",
      offsetof(struct stats_reactor, connections_open) },
    { "toaster_connections_total", "counter", "Connections accepted into a slot.",
      offsetof(struct stats_reactor, connections_total) },
    { "toaster_connections_refused_total", "counter",
      "Connections refused at accept for a limit (421).",
      offsetof(struct stats_reactor, connections_refused) },
    { "toaster_received_bytes_total", "counter", "Bytes received from clients.",
      offsetof(struct stats_reactor, bytes_in) },
    { "toaster_sent_bytes_total", "counter", "Bytes sent to clients.",
      offsetof(struct stats_reactor, bytes_out) },
    { "toaster_tls_handshakes_total", "counter", "TLS sessions established.",
      offsetof(struct stats_reactor, tls_handshakes) },
    { "toaster_smtp_messages_accepted_total", "counter",
      "Messages answered 250 at the end of data.",
      offsetof(struct stats_reactor, messages_accepted) },
    { "toaster_smtp_messages_refused_total", "counter",
      "Messages answered 4xx or 5xx at the end of data.",
      offsetof(struct stats_reactor, messages_refused) },
    { "toaster_io_uring_sq_full_total", "counter",
      "Times the io_uring submission queue was full and submitted early.",
      offsetof(struct stats_reactor, sq_full) },
    { "toaster_io_uring_cq_overflow_total", "counter",
      "Completions the kernel could not post to the completion queue.",
      offsetof(struct stats_reactor, cq_overflow) },
};

static void
render_reactors(struct metrics_text *t, const struct metrics_source *src,
                const struct stats_reactor *reactors)
{
    for (size_t f = 0; f < sizeof(reactor_families) / sizeof(reactor_families[0]); f++) {
        const struct reactor_family *family = &reactor_families[f];
        metrics_text_family(t, family->name, family->type, family->help);
        for (uint32_t i = 0; i < src->reactor_count; i++) {
            char index[16];
            (void)snprintf(index, sizeof(index), "%" PRIu32, i);
            struct metrics_label label = { "reactor", index };
            uint64_t value;
            memcpy(&value, (const char *)&reactors[i] + family->offset, sizeof(value));
            metrics_text_sample(t, family->name, &label, 1, value);
        }
    }
}

static void
render_smtp(struct metrics_text *t, const struct metrics_source *src)
{
    static const char *const names[2] = { "toaster_smtp_refused_total",
                                          "toaster_smtp_deferred_total" };
    static const char *const helps[2] = {
        "Permanent refusals (5xx) of SMTP and LMTP clients (postscreen), commands, "
        "recipients and messages, by reason (each refusing reply once; LMTP: each "
        "recipient's line).",
        "Temporary refusals (4xx) of SMTP and LMTP clients (postscreen), commands, "
        "recipients and messages, by reason (each refusing reply once; LMTP: each "
        "recipient's line).",
    };
    for (int kind = 0; kind < 2; kind++) {
        metrics_text_family(t, names[kind], "counter", helps[kind]);
        for (unsigned r = 0; r < STATS_REASON_COUNT; r++) {
            uint64_t sum = 0;
            for (uint32_t i = 0; i < src->reactor_count; i++) {
                const struct reactor_stats *stats = reactor_stats(src->reactors[i]);
                sum += stats_load(kind == 0 ? &stats->smtp_refused[r] : &stats->smtp_deferred[r]);
            }
            struct metrics_label label = { "reason", stats_reason_name((enum stats_reason)r) };
            metrics_text_sample(t, names[kind], &label, 1, sum);
        }
    }
    struct metrics_buckets buckets;
    memset(&buckets, 0, sizeof(buckets));
    for (uint32_t i = 0; i < src->reactor_count; i++) {
        metrics_buckets_from_histogram(&reactor_stats(src->reactors[i])->latency_us, &buckets);
    }
    metrics_text_family(t, "toaster_smtp_reply_latency_seconds", "histogram",
                        "Time from the end of a message's data to its final reply.");
    metrics_text_histogram(t, "toaster_smtp_reply_latency_seconds", NULL, 0, &buckets);
}

static void
render_imap(struct metrics_text *t, const struct metrics_source *src)
{
    uint64_t open = 0;
    uint64_t total = 0;
    uint64_t ok = 0;
    uint64_t failed = 0;
    struct metrics_buckets buckets;
    memset(&buckets, 0, sizeof(buckets));
    for (uint32_t i = 0; i < src->reactor_count; i++) {
        const struct reactor_stats *stats = reactor_stats(src->reactors[i]);
        open += stats_load(&stats->imap_sessions_open);
        total += stats_load(&stats->imap_sessions_total);
        ok += stats_load(&stats->imap_logins_ok);
        failed += stats_load(&stats->imap_logins_failed);
        metrics_buckets_from_histogram(&stats->imap_command_us, &buckets);
    }
    single(t, "toaster_imap_sessions_open", "gauge", "IMAP connections open.", open);
    single(t, "toaster_imap_sessions_total", "counter", "IMAP connections accepted.", total);
    metrics_text_family(t, "toaster_imap_logins_total", "counter",
                        "IMAP logins (LOGIN, AUTHENTICATE) by result.");
    struct metrics_label label = { "result", "ok" };
    metrics_text_sample(t, "toaster_imap_logins_total", &label, 1, ok);
    label.value = "failed";
    metrics_text_sample(t, "toaster_imap_logins_total", &label, 1, failed);
    metrics_text_family(t, "toaster_imap_commands_total", "counter",
                        "IMAP commands read, by command: every tagged command once, whether "
                        "the session answered it (CAPABILITY, NOOP, LOGIN ...) or a worker ran "
                        "it; unknown names and unreadable lines as other.");
    for (unsigned c = 0; c < IMAP_CMD_COUNT; c++) {
        uint64_t sum = 0;
        for (uint32_t i = 0; i < src->reactor_count; i++) {
            sum += stats_load(&reactor_stats(src->reactors[i])->imap_commands[c]);
        }
        struct metrics_label command = {
            "command", c == IMAP_CMD_UNKNOWN ? "other" : imap_command_name((enum imap_command)c)
        };
        metrics_text_sample(t, "toaster_imap_commands_total", &command, 1, sum);
    }
    metrics_text_family(t, "toaster_imap_command_duration_seconds", "histogram",
                        "Time an IMAP mailbox command took, from its first step to its reply.");
    metrics_text_histogram(t, "toaster_imap_command_duration_seconds", NULL, 0, &buckets);
}

static void
render_filters(struct metrics_text *t)
{
    const struct filter_chain_stats *stats = filter_chain_stats();
    metrics_text_family(t, "toaster_filter_verdicts_total", "counter",
                        "Messages judged, by filter and verdict: a filter that refused counts "
                        "the refusal, the others that ran count accept; filter=\"chain\" is the "
                        "message's verdict.");
    for (unsigned f = 0; f < FILTER_STATS_COUNT; f++) {
        for (unsigned a = 0; a < 3; a++) {
            struct metrics_label labels[2] = {
                { "filter", filter_stats_name(f) },
                { "verdict", filter_action_name((enum filter_action)a) },
            };
            metrics_text_sample(t, "toaster_filter_verdicts_total", labels, 2,
                                __atomic_load_n(&stats->verdicts[f][a], __ATOMIC_RELAXED));
        }
    }
    metrics_text_family(t, "toaster_filter_duration_seconds", "histogram",
                        "Worker time each filter spent on a message (DNS waits not included); "
                        "filter=\"chain\": the wall time to the verdict, waits included.");
    for (unsigned f = 0; f < FILTER_STATS_COUNT; f++) {
        struct metrics_buckets buckets;
        memset(&buckets, 0, sizeof(buckets));
        metrics_histogram_add_to(&stats->duration[f], &buckets);
        struct metrics_label label = { "filter", filter_stats_name(f) };
        metrics_text_histogram(t, "toaster_filter_duration_seconds", &label, 1, &buckets);
    }
}

static void
render_queue(struct metrics_text *t)
{
    struct relay_metrics relay;
    relay_metrics_read(&relay);
    single(t, "toaster_queue_entries", "gauge",
           "Outbound queue entries the delivery agent knows of (held ones included).",
           relay.entries);
    single(t, "toaster_queue_entries_active", "gauge", "Queue entries being attempted now.",
           relay.entries_active);
    single(t, "toaster_queue_entries_deferred", "gauge",
           "Queue entries attempted and waiting for their next attempt.", relay.entries_deferred);
    single(t, "toaster_queue_entries_held", "gauge",
           "Queue entries on hold (toasterctl queue hold), as of each one's last load by the "
           "agent: a hold or release shows within queue_retry_min, at once after a flush.",
           relay.entries_held);
    uint64_t now_s = (uint64_t)time(NULL);
    uint64_t age_s = relay.oldest_arrival_s > 0 && now_s > relay.oldest_arrival_s
                         ? now_s - relay.oldest_arrival_s
                         : 0;
    single(t, "toaster_queue_oldest_entry_age_seconds", "gauge",
           "Age of the oldest queue entry the agent knows of, held ones aside (0: none).", age_s);
    single(t, "toaster_relay_sessions_open", "gauge", "Outbound SMTP sessions open.",
           relay.sessions_open);
    single(t, "toaster_relay_attempts_total", "counter", "Delivery attempts of queue entries.",
           relay.attempts_total);
    metrics_text_family(t, "toaster_relay_recipients_total", "counter",
                        "Recipients' attempt outcomes: delivered (remote or local), deferred "
                        "(tried again later), bounced (failed for good).");
    struct metrics_label label = { "outcome", "delivered" };
    metrics_text_sample(t, "toaster_relay_recipients_total", &label, 1, relay.rcpt_delivered);
    label.value = "deferred";
    metrics_text_sample(t, "toaster_relay_recipients_total", &label, 1, relay.rcpt_deferred);
    label.value = "bounced";
    metrics_text_sample(t, "toaster_relay_recipients_total", &label, 1, relay.rcpt_bounced);
}

static void
render_all(struct metrics_text *t, const struct metrics_source *src,
           struct stats_reactor *reactors, struct histogram *scratch)
{
    metrics_text_family(t, "toaster_build_info", "gauge", "The running version (always 1).");
    struct metrics_label version = { "version", TOASTER_VERSION };
    metrics_text_sample(t, "toaster_build_info", &version, 1, 1);
    single(t, "toaster_uptime_seconds", "gauge", "Seconds since toasterd started serving.",
           (stats_clock_ns() - src->start_ns) / UINT64_C(1000000000));
    single(t, "toaster_reactors", "gauge", "Reactor threads.", src->reactor_count);

    histogram_init(scratch); /* reactor_stats_read merges into it; unused here */
    for (uint32_t i = 0; i < src->reactor_count; i++) {
        reactor_stats_read(src->reactors[i], &reactors[i], scratch);
    }
    render_reactors(t, src, reactors);
    render_smtp(t, src);
    render_imap(t, src);

    single(t, "toaster_worker_threads", "gauge", "Worker threads.",
           workers_thread_count(src->workers));
    single(t, "toaster_worker_queue_depth", "gauge", "Jobs waiting for a worker.",
           workers_queue_depth(src->workers));
    single(t, "toaster_worker_jobs_total", "counter", "Jobs the workers finished.",
           workers_jobs_done(src->workers));

    struct delivery_stats delivery;
    delivery_stats_read(&delivery);
    single(t, "toaster_delivery_syncs_total", "counter",
           "Group commits (one sync round each); messages per sync is "
           "toaster_delivery_messages_total / toaster_delivery_syncs_total.",
           delivery.batches);
    single(t, "toaster_delivery_messages_total", "counter", "Messages committed by the committer.",
           delivery.messages);
    single(t, "toaster_delivery_fsyncs_total", "counter", "fsync and fdatasync calls issued.",
           delivery.fsyncs);

    render_filters(t);
    render_queue(t);
}

int
metrics_render(char *buf, size_t buf_bytes)
{
    ASSERT(buf != NULL && buf_bytes > 0);
    __atomic_add_fetch(&readers, 1, __ATOMIC_SEQ_CST);
    const struct metrics_source *src = __atomic_load_n(&source, __ATOMIC_SEQ_CST);
    int rc = -EAGAIN;
    if (src != NULL) {
        /* The reactors' rows and one histogram: too big for a reactor's stack. */
        struct stats_reactor *reactors = calloc(src->reactor_count, sizeof(*reactors));
        struct histogram *scratch = malloc(sizeof(*scratch));
        if (reactors == NULL || scratch == NULL) {
            rc = -ENOMEM;
        } else {
            struct metrics_text text;
            metrics_text_init(&text, buf, buf_bytes);
            render_all(&text, src, reactors, scratch);
            rc = metrics_text_is_over(&text) ? -ENOSPC : (int)text.len;
        }
        free(reactors);
        free(scratch);
    }
    __atomic_sub_fetch(&readers, 1, __ATOMIC_SEQ_CST);
    return rc;
}
