/*
 * store/queue_outcome.c - one delivery attempt's results written into its
 * queue entry, and the DSNs they call for queued as entries of their own.
 *
 * Works in three steps so that nothing is half done: a plan (the new
 * recipient states, in memory of its own, checked before anything is
 * written), the DSNs (composed by store/dsn, each made durable as a queue
 * entry), then the envelope rewritten or the entry removed. A failure in
 * the last two steps leaves the caller's entry as it was. Owns no state
 * between calls. Runs on a worker thread: every call may block on disk.
 * Limits: QUEUE_OUTCOME_GENERATED_MAX DSNs, QUEUE_RCPTS_MAX recipients,
 * QUEUE_REPLY_BYTES per reply, DSN_ORIGINAL_READ_BYTES of the original
 * (plus its Return-Path line), QUEUE_OUTCOME_ID_TRIES ids per DSN.
 */
#define _GNU_SOURCE
#include "store/queue_outcome.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "core/assertions.h"
#include "core/fd_io.h"
#include "core/log.h"
#include "store/dsn.h"

/* Every queue message starts with this line; a DSN's says "null sender". */
#define OUTCOME_RETURN_PATH "Return-Path: <>\r\n"
/* The original's own Return-Path line, at its longest: the address as
 * received (in angle brackets) and the field name. Longer first lines are
 * not taken for one. */
#define OUTCOME_RETURN_PATH_BYTES_MAX (SMTP_ADDRESS_BYTES_MAX + 64)
/* "451 4.4.7 Message delivery time exceeded; last reply from <remote>:
 * <reply>" at its longest. */
#define OUTCOME_EXPIRY_BYTES (QUEUE_REPLY_BYTES + 320)
#define OUTCOME_NAME_BYTES 64

static_assert(OUTCOME_EXPIRY_BYTES - 1 <= DSN_REPLY_BYTES_MAX, "an expiry text is never cut");
static_assert(QUEUE_OUTCOME_ID_INDEX < 0xffu, "not the committer's ids");

/* What happened to one recipient in this call. */
enum outcome_change {
    OUTCOME_CHANGE_NONE,      /* not tried, not expired */
    OUTCOME_CHANGE_DELIVERED, /* DELIVERED */
    OUTCOME_CHANGE_RELAYED,   /* RELAYED */
    OUTCOME_CHANGE_PASSED_ON, /* PASSED_ON: delivered, no report of ours */
    OUTCOME_CHANGE_DEFERRED,  /* DEFERRED, still pending */
    OUTCOME_CHANGE_FAILED,    /* FAILED */
    OUTCOME_CHANGE_EXPIRED,   /* lifetime over: failed */
};

/* The new states, before anything is written. The recipients and their
 * strings live in rcpts / storage, which become the entry's own on
 * success. */
struct outcome_plan {
    size_t rcpt_count;
    struct queue_rcpt *rcpts;                /* rcpt_count + 1, calloc'd */
    char *storage;                           /* every string of rcpts */
    enum outcome_change *changes;            /* per recipient */
    const struct queue_outcome **outcome_of; /* per recipient: its outcome or NULL */
    size_t pending_count;
    int64_t next_attempt;
    bool is_warning; /* the delay warning goes now */
    bool is_changed; /* something to write: a change, the warning, or nothing pending */
};

/* The original as the DSNs return it: without its Return-Path line. */
struct outcome_original {
    bool is_read;
    char *bytes; /* malloc'd */
    const char *message;
    size_t message_len;
    uint64_t message_bytes;
};

static int plan_make(const struct queue_entry *entry, const struct queue_outcome *outcomes,
                     size_t outcome_count, const struct queue_outcome_params *params,
                     struct outcome_plan *plan);
static void plan_free(struct outcome_plan *plan);
static void plan_log(const struct queue_entry *entry, const struct outcome_plan *plan);
static int dsns_store(struct queue *queue, const struct queue_entry *entry,
                      const struct outcome_plan *plan, const struct queue_outcome_params *params,
                      struct queue_outcome_result *result_out);
static void original_read(struct queue *queue, const struct queue_entry *entry,
                          struct outcome_original *original);
static int dsn_entry_store(struct queue *queue, const struct dsn_result *dsn, const char *sender,
                           int64_t now, char id_out[SPOOL_QUEUE_ID_BYTES]);
static uint64_t random_mix(uint64_t random, size_t index);

int
queue_outcome_apply(struct queue *queue, struct queue_entry *entry,
                    const struct queue_outcome *outcomes, size_t outcome_count,
                    const struct queue_outcome_params *params,
                    struct queue_outcome_result *result_out)
{
    ASSERT(queue != NULL && entry != NULL && params != NULL && result_out != NULL);
    ASSERT(outcomes != NULL || outcome_count == 0);
    ASSERT(params->policy != NULL && queue_schedule_check(params->policy) == 0);
    ASSERT(params->hostname != NULL && params->hostname[0] != '\0');
    ASSERT(params->now >= 0);
    ASSERT(entry->rcpts != NULL && entry->rcpt_count > 0 && entry->rcpt_count <= QUEUE_RCPTS_MAX);
    memset(result_out, 0, sizeof(*result_out));

    struct outcome_plan plan;
    int rc = plan_make(entry, outcomes, outcome_count, params, &plan);
    if (rc != 0) {
        return rc;
    }
    plan_log(entry, &plan);
    /* The DSNs first: durable before the envelope forgets why they are
     * owed (a crash in between sends one twice, never none). */
    rc = dsns_store(queue, entry, &plan, params, result_out);
    if (rc != 0) {
        plan_free(&plan);
        return rc;
    }
    struct queue_entry staged = *entry;
    staged.rcpts = plan.rcpts;
    if (plan.is_warning) {
        staged.warned_at = params->now > 0 ? params->now : 1; /* 0 would read "never" */
    }
    if (!plan.is_changed) {
        rc = 0; /* nothing tried, nothing due: the envelope stays as it is */
    } else if (plan.pending_count > 0) {
        rc = queue_entry_update(queue, &staged);
    } else {
        rc = queue_entry_retire(queue, entry->id);
        if (rc == -ENOENT) {
            rc = 0; /* a file already gone: the entry is gone all the same */
        }
    }
    if (rc != 0) {
        log_error("%s: cannot record the attempt's outcome (%s); the next attempt repeats it",
                  entry->id, strerror(-rc));
        plan_free(&plan);
        return rc;
    }
    /* The entry now owns the new recipients and strings. */
    free(entry->storage);
    free(entry->rcpt_storage);
    *entry = staged;
    entry->storage = plan.storage;
    entry->rcpt_storage = plan.rcpts;
    entry->rcpts = plan.rcpts;
    plan.storage = NULL;
    plan.rcpts = NULL;
    result_out->is_removed = plan.pending_count == 0;
    result_out->pending_count = plan.pending_count;
    result_out->next_attempt = plan.pending_count > 0 ? plan.next_attempt : 0;
    plan_free(&plan);
    return 0;
}

/* ---- the plan ------------------------------------------------------------ */

/* Check the outcomes and work out every recipient's new state. Returns 0,
 * -EINVAL (bad outcomes; logged) or -ENOMEM; on failure nothing is left
 * allocated. */
static int
plan_make(const struct queue_entry *entry, const struct queue_outcome *outcomes,
          size_t outcome_count, const struct queue_outcome_params *params,
          struct outcome_plan *plan)
{
    size_t n = entry->rcpt_count;
    memset(plan, 0, sizeof(*plan));
    plan->rcpt_count = n;
    plan->rcpts = calloc(n + 1, sizeof(*plan->rcpts));
    plan->changes = calloc(n, sizeof(*plan->changes));
    plan->outcome_of = calloc(n, sizeof(*plan->outcome_of));
    if (plan->rcpts == NULL || plan->changes == NULL || plan->outcome_of == NULL) {
        plan_free(plan);
        return -ENOMEM;
    }
    if (outcome_count > n) {
        log_error("%s: %zu outcomes for %zu recipients", entry->id, outcome_count, n);
        plan_free(plan);
        return -EINVAL;
    }
    for (size_t i = 0; i < outcome_count; i++) {
        const struct queue_outcome *outcome = &outcomes[i];
        size_t index = outcome->rcpt_index;
        const char *fault = NULL;
        if (index >= n) {
            fault = "recipient index out of range";
        } else if (entry->rcpts[index].state != QUEUE_RCPT_PENDING) {
            fault = "recipient not pending";
        } else if (plan->outcome_of[index] != NULL) {
            fault = "recipient named twice";
        } else if (outcome->kind != QUEUE_OUTCOME_DELIVERED &&
                   outcome->kind != QUEUE_OUTCOME_RELAYED &&
                   outcome->kind != QUEUE_OUTCOME_PASSED_ON &&
                   outcome->kind != QUEUE_OUTCOME_DEFERRED &&
                   outcome->kind != QUEUE_OUTCOME_FAILED) {
            fault = "unknown outcome";
        }
        if (fault != NULL) {
            log_error("%s: outcome %zu (recipient %zu): %s", entry->id, i, index, fault);
            plan_free(plan);
            return -EINVAL;
        }
        plan->outcome_of[index] = outcome;
    }

    /* The replies of this attempt, cleaned, for the size of the storage. */
    char(*replies)[QUEUE_REPLY_BYTES] = NULL;
    if (outcome_count > 0) {
        replies = calloc(n, sizeof(*replies));
        if (replies == NULL) {
            plan_free(plan);
            return -ENOMEM;
        }
    }
    const struct queue_schedule_policy *policy = params->policy;
    bool is_warned = entry->warned_at != 0;
    bool is_expired_now = queue_schedule_is_expired(policy, entry->arrival, params->now);
    size_t storage_bytes = 0;
    for (size_t i = 0; i < n; i++) {
        struct queue_rcpt *rcpt = &plan->rcpts[i];
        *rcpt = entry->rcpts[i];
        const struct queue_outcome *outcome = plan->outcome_of[i];
        enum outcome_change change = OUTCOME_CHANGE_NONE;
        if (outcome != NULL) {
            (void)queue_text_clean(outcome->reply, replies[i], sizeof(replies[i]));
            rcpt->last_reply = replies[i];
            if (rcpt->attempts < UINT32_MAX) {
                rcpt->attempts++;
            }
            switch (outcome->kind) {
            case QUEUE_OUTCOME_DELIVERED:
                rcpt->state = QUEUE_RCPT_DELIVERED;
                change = OUTCOME_CHANGE_DELIVERED;
                break;
            case QUEUE_OUTCOME_RELAYED:
                rcpt->state = QUEUE_RCPT_DELIVERED;
                change = OUTCOME_CHANGE_RELAYED;
                break;
            case QUEUE_OUTCOME_PASSED_ON:
                rcpt->state = QUEUE_RCPT_DELIVERED;
                change = OUTCOME_CHANGE_PASSED_ON;
                break;
            case QUEUE_OUTCOME_FAILED:
                rcpt->state = QUEUE_RCPT_FAILED;
                change = OUTCOME_CHANGE_FAILED;
                break;
            case QUEUE_OUTCOME_DEFERRED: {
                struct queue_schedule_outcome decision;
                queue_schedule_after_defer(policy, entry->arrival, rcpt->attempts, params->now,
                                           is_warned, random_mix(params->random, i), &decision);
                if (decision.is_expired) {
                    rcpt->state = QUEUE_RCPT_FAILED;
                    change = OUTCOME_CHANGE_EXPIRED;
                } else {
                    rcpt->next_attempt = decision.next_attempt_s;
                    change = OUTCOME_CHANGE_DEFERRED;
                }
                break;
            }
            }
        } else if (rcpt->state == QUEUE_RCPT_PENDING && is_expired_now) {
            rcpt->state = QUEUE_RCPT_FAILED;
            change = OUTCOME_CHANGE_EXPIRED;
        }
        plan->changes[i] = change;
        plan->is_changed = plan->is_changed || change != OUTCOME_CHANGE_NONE;
        if (rcpt->state == QUEUE_RCPT_PENDING) {
            if (plan->pending_count == 0 || rcpt->next_attempt < plan->next_attempt) {
                plan->next_attempt = rcpt->next_attempt;
            }
            plan->pending_count++;
        }
        const char *orcpt = rcpt->orcpt != NULL ? rcpt->orcpt : "";
        const char *reply = rcpt->last_reply != NULL ? rcpt->last_reply : "";
        storage_bytes += strlen(rcpt->address) + strlen(orcpt) + strlen(reply) + 3;
    }
    plan->is_warning =
        plan->pending_count > 0 &&
        queue_schedule_is_warning_due(policy, entry->arrival, params->now, is_warned);
    /* An entry with nothing pending goes, even when nothing changed now
     * (left so by a crash between the last update and a removal). */
    plan->is_changed = plan->is_changed || plan->is_warning || plan->pending_count == 0;

    /* Copy every string into the plan's own block: the entry's storage
     * and the caller's replies do not outlive the call. */
    plan->storage = malloc(storage_bytes);
    if (plan->storage == NULL) {
        free(replies);
        plan_free(plan);
        return -ENOMEM;
    }
    char *cursor = plan->storage;
    for (size_t i = 0; i < n; i++) {
        struct queue_rcpt *rcpt = &plan->rcpts[i];
        const char *strings[3] = {rcpt->address, rcpt->orcpt != NULL ? rcpt->orcpt : "",
                                  rcpt->last_reply != NULL ? rcpt->last_reply : ""};
        const char **fields[3] = {&rcpt->address, &rcpt->orcpt, &rcpt->last_reply};
        for (size_t k = 0; k < 3; k++) {
            size_t len = strlen(strings[k]);
            ASSERT((size_t)(cursor - plan->storage) + len + 1 <= storage_bytes);
            memcpy(cursor, strings[k], len + 1);
            *fields[k] = cursor;
            cursor += len + 1;
        }
    }
    free(replies);
    return 0;
}

static void
plan_free(struct outcome_plan *plan)
{
    free(plan->rcpts);
    free(plan->storage);
    free(plan->changes);
    free(plan->outcome_of);
    memset(plan, 0, sizeof(*plan));
}

/* One line per recipient that changed, as Postfix logs a delivery. */
static void
plan_log(const struct queue_entry *entry, const struct outcome_plan *plan)
{
    static const char *const words[] = {
        [OUTCOME_CHANGE_NONE] = "",
        [OUTCOME_CHANGE_DELIVERED] = "sent",
        [OUTCOME_CHANGE_RELAYED] = "sent (relayed)",
        [OUTCOME_CHANGE_PASSED_ON] = "sent",
        [OUTCOME_CHANGE_DEFERRED] = "deferred",
        [OUTCOME_CHANGE_FAILED] = "bounced",
        [OUTCOME_CHANGE_EXPIRED] = "expired",
    };
    for (size_t i = 0; i < plan->rcpt_count; i++) {
        enum outcome_change change = plan->changes[i];
        /* The agent logs each result as it comes (core/relay.c); only an
         * expiry is decided here. */
        if (change != OUTCOME_CHANGE_EXPIRED) {
            continue;
        }
        const struct queue_outcome *outcome = plan->outcome_of[i];
        const struct queue_rcpt *rcpt = &plan->rcpts[i];
        const char *relay =
            outcome != NULL && outcome->remote_mta != NULL && outcome->remote_mta[0] != '\0'
                ? outcome->remote_mta
                : "none";
        log_info("%s: to=<%.320s>, relay=%.255s, attempts=%" PRIu32 ", status=%s (%s)", entry->id,
                 rcpt->address, relay, rcpt->attempts, words[change], rcpt->last_reply);
    }
}

/* ---- the DSNs ------------------------------------------------------------ */

enum outcome_dsn { OUTCOME_DSN_BOUNCE, OUTCOME_DSN_DELAY, OUTCOME_DSN_SUCCESS };

/* The reports of one DSN kind, those NOTIFY lets through. Returns their
 * count; expiry texts go into expiry (one per recipient). */
static size_t
reports_make(const struct outcome_plan *plan, enum outcome_dsn which, int64_t now,
             struct dsn_rcpt_report *reports, char (*expiry)[OUTCOME_EXPIRY_BYTES])
{
    size_t count = 0;
    for (size_t i = 0; i < plan->rcpt_count; i++) {
        const struct queue_rcpt *rcpt = &plan->rcpts[i];
        const struct queue_outcome *outcome = plan->outcome_of[i];
        enum outcome_change change = plan->changes[i];
        struct dsn_rcpt_report report = {
            .rcpt_index = i,
            .remote_mta = outcome != NULL ? outcome->remote_mta : NULL,
            .reply = NULL, /* the recipient's last_reply */
            .last_attempt = outcome != NULL ? now : 0,
        };
        switch (which) {
        case OUTCOME_DSN_BOUNCE:
            if (change != OUTCOME_CHANGE_FAILED && change != OUTCOME_CHANGE_EXPIRED) {
                continue;
            }
            report.action = DSN_ACTION_FAILED;
            if (change == OUTCOME_CHANGE_EXPIRED) {
                /* Our verdict, not the remote's: no Remote-MTA, and the
                 * status 4.4.7 of RFC 3463 ("delivery time expired"),
                 * with the last answer for the sender to read. */
                const char *remote = report.remote_mta;
                bool has_remote = remote != NULL && remote[0] != '\0';
                if (rcpt->last_reply[0] == '\0') {
                    (void)snprintf(expiry[i], OUTCOME_EXPIRY_BYTES,
                                   "451 4.4.7 Message delivery time exceeded");
                } else {
                    (void)snprintf(expiry[i], OUTCOME_EXPIRY_BYTES,
                                   "451 4.4.7 Message delivery time exceeded; last reply%s%.255s: "
                                   "%s",
                                   has_remote ? " from " : "", has_remote ? remote : "",
                                   rcpt->last_reply);
                }
                report.reply = expiry[i];
                report.remote_mta = NULL;
            }
            break;
        case OUTCOME_DSN_DELAY:
            if (rcpt->state != QUEUE_RCPT_PENDING) {
                continue;
            }
            report.action = DSN_ACTION_DELAYED;
            break;
        case OUTCOME_DSN_SUCCESS:
            if (change != OUTCOME_CHANGE_DELIVERED && change != OUTCOME_CHANGE_RELAYED) {
                continue;
            }
            report.action =
                change == OUTCOME_CHANGE_RELAYED ? DSN_ACTION_RELAYED : DSN_ACTION_DELIVERED;
            break;
        }
        if (dsn_is_wanted(rcpt->notify, report.action)) {
            reports[count++] = report;
        }
    }
    return count;
}

/* Compose and store the bounce, the delay warning and the success report
 * this plan calls for. Returns 0 (a DSN that cannot be composed is logged
 * and skipped) or -errno of a write or an allocation. */
static int
dsns_store(struct queue *queue, const struct queue_entry *entry, const struct outcome_plan *plan,
           const struct queue_outcome_params *params, struct queue_outcome_result *result_out)
{
    static const char *const names[] = {
        [OUTCOME_DSN_BOUNCE] = "non-delivery notification",
        [OUTCOME_DSN_DELAY] = "delay notification",
        [OUTCOME_DSN_SUCCESS] = "delivery status notification",
    };
    struct queue_entry view = *entry; /* the new states, for store/dsn */
    view.rcpts = plan->rcpts;
    struct dsn_rcpt_report *reports = calloc(plan->rcpt_count, sizeof(*reports));
    char(*expiry)[OUTCOME_EXPIRY_BYTES] = calloc(plan->rcpt_count, sizeof(*expiry));
    if (reports == NULL || expiry == NULL) {
        free(reports);
        free(expiry);
        return -ENOMEM;
    }
    struct outcome_original original = {0};
    int rc = 0;
    for (int which = OUTCOME_DSN_BOUNCE; which <= OUTCOME_DSN_SUCCESS && rc == 0; which++) {
        if (which == OUTCOME_DSN_DELAY && !plan->is_warning) {
            continue;
        }
        size_t count = reports_make(plan, (enum outcome_dsn)which, params->now, reports, expiry);
        if (count == 0) {
            continue;
        }
        if (entry->mail_from[0] == '\0') {
            /* RFC 3461 6.2: never a DSN to the null sender. */
            log_info("%s: no %s: the sender is <>", entry->id, names[which]);
            continue;
        }
        if (!original.is_read) {
            original_read(queue, entry, &original);
        }
        struct dsn_request request = {
            .entry = &view,
            .reports = reports,
            .report_count = count,
            .hostname = params->hostname,
            .now = params->now,
            .retry_until = entry->arrival + (int64_t)params->policy->lifetime_s,
            .message = original.message,
            .message_len = original.message_len,
            .message_bytes = original.message_bytes,
        };
        struct dsn_result dsn;
        int compose_rc = dsn_compose(&request, &dsn);
        if (compose_rc == -ENOMEM) {
            rc = compose_rc; /* passing: the next attempt composes it again */
            break;
        }
        if (compose_rc != 0) {
            log_error("%s: cannot compose the sender %s: %s; none is sent", entry->id, names[which],
                      strerror(-compose_rc));
            continue;
        }
        ASSERT(result_out->generated_count < QUEUE_OUTCOME_GENERATED_MAX);
        char *id = result_out->generated_ids[result_out->generated_count];
        rc = dsn_entry_store(queue, &dsn, entry->mail_from, params->now, id);
        free(dsn.bytes);
        if (rc != 0) {
            log_error("%s: cannot queue the sender %s: %s", entry->id, names[which], strerror(-rc));
            id[0] = '\0';
            break;
        }
        result_out->generated_count++;
        log_info("%s: sender %s: %s", entry->id, names[which], id);
    }
    free(original.bytes);
    free(reports);
    free(expiry);
    return rc;
}

/* The original for the DSNs: its first bytes, without the Return-Path
 * line every queued message starts with. A message that cannot be read is
 * logged and returned as nothing: the DSN then carries no copy, which is
 * better than no DSN. */
static void
original_read(struct queue *queue, const struct queue_entry *entry,
              struct outcome_original *original)
{
    original->is_read = true;
    original->message = "";
    original->message_len = 0;
    original->message_bytes = entry->size;
    uint64_t want = entry->size;
    if (want > (uint64_t)DSN_ORIGINAL_READ_BYTES + OUTCOME_RETURN_PATH_BYTES_MAX) {
        want = (uint64_t)DSN_ORIGINAL_READ_BYTES + OUTCOME_RETURN_PATH_BYTES_MAX;
    }
    char name[OUTCOME_NAME_BYTES];
    (void)snprintf(name, sizeof(name), "%s.msg", entry->id);
    int fd = openat(queue_dir_fd(queue), name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    int rc = fd < 0 ? -errno : 0;
    char *bytes = NULL;
    if (rc == 0) {
        bytes = malloc((size_t)want + 1);
        rc = bytes == NULL ? -ENOMEM : fd_read_all(fd, bytes, (size_t)want);
        (void)close(fd); /* read-only */
    }
    if (rc != 0) {
        log_error("%s: cannot read queue/%s for the sender's notification: %s", entry->id, name,
                  strerror(-rc));
        free(bytes);
        return;
    }
    size_t len = (size_t)want;
    size_t skip = 0;
    if (len >= 12 && strncasecmp(bytes, "Return-Path:", 12) == 0) {
        size_t limit = len < OUTCOME_RETURN_PATH_BYTES_MAX ? len : OUTCOME_RETURN_PATH_BYTES_MAX;
        const char *lf = memchr(bytes, '\n', limit);
        if (lf != NULL) {
            skip = (size_t)(lf - bytes) + 1;
        }
    }
    original->bytes = bytes;
    original->message = bytes + skip;
    original->message_len = len - skip;
    original->message_bytes = entry->size - skip;
}

/* A DSN made a queue entry: its message in an unnamed file of the queue
 * directory (a named "<id>.dsn.tmp" where O_TMPFILE is refused), synced,
 * then stored with a fresh id (another one when it is taken). Returns 0
 * and the id, or -errno. */
static int
dsn_entry_store(struct queue *queue, const struct dsn_result *dsn, const char *sender, int64_t now,
                char id_out[SPOOL_QUEUE_ID_BYTES])
{
    int dir_fd = queue_dir_fd(queue);
    spool_queue_id_make(QUEUE_OUTCOME_ID_INDEX, id_out);
    char tmp_name[OUTCOME_NAME_BYTES] = "";
    int fd = openat(dir_fd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd < 0 && (errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL)) {
        (void)snprintf(tmp_name, sizeof(tmp_name), "%s.dsn.tmp", id_out);
        fd = openat(dir_fd, tmp_name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    }
    if (fd < 0) {
        return -errno;
    }
    size_t prefix_len = sizeof(OUTCOME_RETURN_PATH) - 1;
    int rc = fd_write_all(fd, OUTCOME_RETURN_PATH, prefix_len);
    if (rc == 0) {
        rc = fd_write_all(fd, dsn->bytes, dsn->len);
    }
    if (rc == 0 && fdatasync(fd) != 0) {
        rc = -errno;
    }
    struct queue_rcpt rcpt = {
        .address = sender,
        .orcpt = "",
        .notify = 0,
        .state = QUEUE_RCPT_PENDING,
        .last_reply = "",
    };
    struct queue_entry entry = {
        .arrival = now,
        .size = prefix_len + dsn->len,
        .ret = QUEUE_RET_UNSPECIFIED,
        .rcpts = &rcpt,
        .rcpt_count = 1,
    };
    struct queue_source source = {
        .fd = fd,
        .is_unnamed = tmp_name[0] == '\0',
        .dir_fd = dir_fd,
        .name = tmp_name,
        .is_exclusive = true, /* the report's own file */
    };
    for (int tries = 0; rc == 0; tries++) {
        memcpy(entry.id, id_out, SPOOL_QUEUE_ID_BYTES);
        rc = queue_entry_store(queue, &entry, &source);
        if (rc != -EEXIST || tries + 1 >= QUEUE_OUTCOME_ID_TRIES) {
            break;
        }
        rc = 0; /* taken (two workers in one microsecond): another id */
        spool_queue_id_make(QUEUE_OUTCOME_ID_INDEX, id_out);
    }
    (void)close(fd); /* synced above; the entry holds its own link */
    if (tmp_name[0] != '\0' && unlinkat(dir_fd, tmp_name, 0) != 0) {
        log_warning("queue: cannot remove %s: %s (start-up removes it)", tmp_name, strerror(errno));
    }
    return rc;
}

/* ---- helpers ------------------------------------------------------------- */

/* Different jitter for each recipient from one random value (splitmix64's
 * finaliser), so recipients deferred together spread out. */
static uint64_t
random_mix(uint64_t random, size_t index)
{
    uint64_t z = random + 0x9e3779b97f4a7c15u * ((uint64_t)index + 1);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}
