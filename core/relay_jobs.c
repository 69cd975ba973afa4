/*
 * core/relay_jobs.c - the delivery agent's work that blocks, on the worker
 * pool: one attempt of one queue entry passes through these phases (see
 * enum relay_phase), each a run() here and a done() back on the agent's
 * reactor (core/relay.c).
 *
 *   LOAD   take the entry's lock (without waiting: toasterctl may hold
 *          it), load the envelope, pick the due recipients, map the
 *          message, group the recipients by destination.
 *   ROUTE  resolve each remote group's route (store/route over core/dns);
 *          restartable: while answers are missing the job waits for them
 *          off the pool and runs again.
 *   LOCAL  write local groups (bounces to our own users) into their INBOX.
 *   APPLY  the attempt's results to disk (store/queue_outcome: states,
 *          back-off, DSNs), then let go of the map and the lock.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/assertions.h"
#include "core/ascii.h"
#include "core/config.h"
#include "core/dns.h"
#include "core/fd_io.h"
#include "core/log.h"
#include "core/reactor.h"
#include "core/relay_internal.h"
#include "filters/dkim_sign.h"
#include "filters/dkim_tags.h"
#include "filters/dmarc.h"
#include "filters/message_fields.h"
#include "store/mailbox_index.h"
#include "store/maildir_add.h"
#include "store/maildir_folders.h"
#include "store/recipients.h"

/* ---- LOAD ---------------------------------------------------------------- */

/* The domain of "local@domain", lower-cased into out; false when there is
 * no '@' or it does not fit. */
static bool
domain_of(const char *address, char *out, size_t out_bytes)
{
    const char *at = strrchr(address, '@');
    if (at == NULL || at[1] == '\0') {
        return false;
    }
    size_t len = strlen(at + 1);
    if (len >= out_bytes) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        out[i] = (char)ascii_lower((unsigned char)at[1 + i]);
    }
    if (len > 0 && out[len - 1] == '.') {
        len--;
    }
    out[len] = '\0';
    return len > 0;
}

static bool
has_8bit(const uint8_t *bytes, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (bytes[i] >= 0x80) {
            return true;
        }
    }
    return false;
}

/* A destination's key: a configured next hop as "[host]:port" (or
 * "host:port" for an MX lookup), else the domain itself. */
static void
group_key(const struct route_table *routes, struct relay_group *group)
{
    struct route_nexthop nexthop;
    if (routes != NULL && route_table_find(routes, group->domain, &nexthop)) {
        (void)snprintf(group->key, sizeof(group->key), "%s%s%s:%u",
                       nexthop.is_mx_lookup ? "" : "[", nexthop.host,
                       nexthop.is_mx_lookup ? "" : "]", (unsigned)nexthop.port);
    } else {
        (void)snprintf(group->key, sizeof(group->key), "%s", group->domain);
    }
}

/* Map <id>.msg read-only, whole, its pages read now (on this worker, not
 * later on the reactor), and find where the Return-Path line ends. */
static int
message_map(struct relay_attempt *attempt)
{
    /* The lock is held on <id>.msg itself (queue_entry_lock): its fd is
     * the message, opened read-only, so no second open is needed. */
    int fd = attempt->lock_fd;
    ASSERT(fd >= 0);
    struct stat st;
    if (fstat(fd, &st) != 0) {
        return -errno;
    }
    if ((uint64_t)st.st_size != attempt->entry.size || st.st_size == 0) {
        return -EBADMSG;
    }
    void *map = NULL;
    if ((uint64_t)st.st_size <= RELAY_READ_BYTES_MAX) {
        /* Most mail: read into memory. A mapping would cost its munmap a
         * TLB shootdown across every core this process runs on. */
        map = malloc((size_t)st.st_size);
        if (map == NULL) {
            return -ENOMEM;
        }
        int rc = fd_read_all(fd, map, (size_t)st.st_size); /* a fresh fd: from offset 0 */
        if (rc != 0) {
            free(map);
            return rc == -ENODATA ? -EBADMSG : rc;
        }
        attempt->is_map_heap = true;
    } else {
        map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
        if (map == MAP_FAILED) {
            return -errno;
        }
    }
    attempt->map = map;
    attempt->map_len = (size_t)st.st_size;
    attempt->body_offset = 0;
    static const char return_path[] = "Return-Path:";
    if (attempt->map_len > sizeof(return_path) &&
        strncasecmp((const char *)attempt->map, return_path, sizeof(return_path) - 1) == 0) {
        const uint8_t *lf = memchr(attempt->map, '\n', attempt->map_len);
        if (lf != NULL) {
            attempt->body_offset = (size_t)(lf - attempt->map) + 1;
        }
    }
    return 0;
}

/* DKIM: a message whose From: domain has keys and that carries no
 * signature of that domain yet (bounces, vacation replies, and our users'
 * mail when the filters did not sign it at receipt) is signed now; the
 * fields go out before the message. Failures are logged, never fatal. */
#define RELAY_FROM_FIELDS_MAX 4u
#define RELAY_SIGN_KEYS_MAX 4u

static void
dkim_sign_if_ours(struct relay_attempt *attempt)
{
    const struct dkim_keys *keys = relay_agent.dkim_keys;
    if (keys == NULL) {
        return;
    }
    const char *text = (const char *)attempt->map;
    size_t len = attempt->map_len < DKIM_HEADER_BLOCK_BYTES_MAX ? attempt->map_len
                                                                : DKIM_HEADER_BLOCK_BYTES_MAX;
    char *from_values[RELAY_FROM_FIELDS_MAX] = { NULL };
    size_t from_count = 0;
    size_t pos = attempt->body_offset;
    struct message_field field;
    struct dkim_sig *sig = NULL;
    char signed_domains[4][DKIM_DOMAIN_BYTES_MAX + 1];
    size_t signed_count = 0;
    for (size_t n = 0; n < DKIM_SIG_HEADERS_MAX * 16 && message_fields_next(text, len, &pos, &field);
         n++) {
        size_t value_len = field.value_end - field.value_start;
        if (message_field_is(text, &field, "From") && from_count < RELAY_FROM_FIELDS_MAX) {
            from_values[from_count] = strndup(text + field.value_start, value_len);
            if (from_values[from_count] != NULL) {
                from_count++;
            }
        } else if (message_field_is(text, &field, "DKIM-Signature") && signed_count < 4) {
            if (sig == NULL) {
                sig = malloc(sizeof(*sig));
            }
            char reason[128];
            if (sig != NULL && dkim_sig_parse(text + field.value_start, value_len, sig, reason,
                                              sizeof(reason)) == 0) {
                memcpy(signed_domains[signed_count++], sig->domain, sizeof(signed_domains[0]));
            }
        }
    }
    free(sig);
    char domain[DMARC_DOMAIN_BYTES_MAX];
    int rc = dmarc_from_domain((const char *const *)from_values, from_count, domain,
                               sizeof(domain));
    for (size_t i = 0; i < from_count; i++) {
        free(from_values[i]);
    }
    if (rc != 0) {
        return;
    }
    for (size_t i = 0; i < signed_count; i++) {
        if (strcmp(signed_domains[i], domain) == 0) {
            return; /* signed at receipt */
        }
    }
    const struct dkim_key *chosen[RELAY_SIGN_KEYS_MAX];
    size_t key_count = dkim_keys_for_domain(keys, domain, chosen, RELAY_SIGN_KEYS_MAX);
    if (key_count == 0) {
        return;
    }
    int fd = attempt->lock_fd; /* <id>.msg, read-only (see message_map) */
    char *out = malloc(DKIM_SIGN_FIELD_BYTES_MAX * RELAY_SIGN_KEYS_MAX);
    size_t out_len = 0;
    rc = out == NULL ? -ENOMEM : 0;
    if (rc == 0) {
        /* The file starts with its Return-Path line: a field no key signs,
         * so the signature holds for the message sent without it. */
        struct dkim_sign_options options;
        dkim_sign_options_default(&options);
        rc = dkim_sign(chosen, key_count, fd, &options, out,
                       DKIM_SIGN_FIELD_BYTES_MAX * RELAY_SIGN_KEYS_MAX, &out_len);
    }
    if (rc != 0) {
        log_warning("%s: DKIM signing for %s failed: %s; sent unsigned", attempt->id, domain,
                    strerror(-rc));
        free(out);
        return;
    }
    attempt->dkim_fields = out;
    attempt->dkim_fields_len = out_len;
    log_info("%s: DKIM-signed for %s", attempt->id, domain);
}

/* Group the due recipients by domain. */
static int
groups_make(struct relay_attempt *attempt, const size_t *due, size_t due_count)
{
    struct queue_entry *entry = &attempt->entry;
    attempt->groups = calloc(due_count, sizeof(*attempt->groups));
    size_t *indexes = calloc(due_count, sizeof(*indexes));
    struct smtp_client_rcpt *client_rcpts = calloc(due_count, sizeof(*client_rcpts));
    char (*domains)[ROUTE_NAME_BYTES_MAX + 1] = calloc(due_count, sizeof(*domains));
    if (attempt->groups == NULL || indexes == NULL || client_rcpts == NULL || domains == NULL) {
        free(indexes);
        free(client_rcpts);
        free(domains);
        return -ENOMEM;
    }
    for (size_t i = 0; i < due_count; i++) {
        if (!domain_of(entry->rcpts[due[i]].address, domains[i], sizeof(domains[i]))) {
            domains[i][0] = '\0'; /* refused by the route: a group of its own */
        }
    }
    /* Each group's recipients are consecutive in indexes. */
    bool *is_taken = calloc(due_count, sizeof(*is_taken));
    if (is_taken == NULL) {
        free(indexes);
        free(client_rcpts);
        free(domains);
        return -ENOMEM;
    }
    size_t filled = 0;
    for (size_t i = 0; i < due_count; i++) {
        if (is_taken[i]) {
            continue;
        }
        struct relay_group *group = &attempt->groups[attempt->group_count++];
        group->attempt = attempt;
        memcpy(group->domain, domains[i], sizeof(group->domain));
        group->rcpts = &indexes[filled];
        group->client_rcpts = &client_rcpts[filled];
        for (size_t j = i; j < due_count; j++) {
            if (is_taken[j] || strcmp(domains[j], domains[i]) != 0) {
                continue;
            }
            is_taken[j] = true;
            const struct queue_rcpt *rcpt = &entry->rcpts[due[j]];
            indexes[filled] = due[j];
            client_rcpts[filled] = (struct smtp_client_rcpt){
                .address = { .ptr = rcpt->address, .len = strlen(rcpt->address) },
                .notify = rcpt->notify,
                .orcpt = { .ptr = rcpt->orcpt, .len = strlen(rcpt->orcpt) },
            };
            filled++;
            group->rcpt_count++;
            if (has_8bit((const uint8_t *)rcpt->address, strlen(rcpt->address))) {
                attempt->is_utf8 = true;
            }
        }
        group_key(relay_agent.routes, group);
    }
    ASSERT(filled == due_count);
    free(is_taken);
    free(domains);
    attempt->groups_open = attempt->group_count;
    return 0;
}

static void
load_run(struct relay_attempt *attempt)
{
    struct relay *relay = &relay_agent;
    int rc = queue_entry_lock(relay->queue, attempt->id, false, &attempt->lock_fd);
    if (rc != 0) {
        attempt->rc = rc;
        return;
    }
    char error[256];
    rc = queue_entry_load(relay->queue, attempt->id, &attempt->entry, error, sizeof(error));
    if (rc != 0) {
        if (rc == -EBADMSG) {
            log_error("%s: queue entry left alone: %s", attempt->id, error);
        }
        attempt->rc = rc;
        queue_entry_unlock(&attempt->lock_fd);
        return;
    }
    if (attempt->entry.is_held) {
        attempt->rc = -EPERM;
        queue_entry_unlock(&attempt->lock_fd);
        return;
    }
    struct queue_entry *entry = &attempt->entry;
    int64_t now = (int64_t)time(NULL);
    attempt->started = now;
    size_t *due = calloc(entry->rcpt_count, sizeof(*due));
    attempt->results = calloc(entry->rcpt_count, sizeof(*attempt->results));
    if (due == NULL || attempt->results == NULL) {
        free(due);
        attempt->rc = -ENOMEM;
        queue_entry_unlock(&attempt->lock_fd);
        return;
    }
    size_t due_count = 0;
    size_t pending_count = 0;
    int64_t next_due = 0;
    for (size_t i = 0; i < entry->rcpt_count; i++) {
        const struct queue_rcpt *rcpt = &entry->rcpts[i];
        if (rcpt->state != QUEUE_RCPT_PENDING) {
            continue;
        }
        pending_count++;
        if (attempt->is_forced || rcpt->next_attempt <= now) {
            due[due_count++] = i;
        } else if (next_due == 0 || rcpt->next_attempt < next_due) {
            next_due = rcpt->next_attempt;
        }
    }
    if (due_count == 0 && pending_count > 0) {
        /* Not yet: toasterctl or an earlier run moved it. */
        free(due);
        attempt->rc = -EAGAIN;
        attempt->next_due = next_due;
        queue_entry_unlock(&attempt->lock_fd);
        return;
    }
    rc = 0;
    if (due_count > 0) {
        rc = message_map(attempt);
        if (rc == 0) {
            const uint8_t *body = attempt->map + attempt->body_offset;
            attempt->is_8bit = has_8bit(body, attempt->map_len - attempt->body_offset);
            attempt->is_utf8 = has_8bit((const uint8_t *)entry->mail_from,
                                        strlen(entry->mail_from));
            dkim_sign_if_ours(attempt);
            rc = groups_make(attempt, due, due_count);
        }
        if (rc == 0 && entry->envid[0] != '\0' &&
            queue_xtext_encode(entry->envid, attempt->envid_xtext,
                               sizeof(attempt->envid_xtext)) < 0) {
            attempt->envid_xtext[0] = '\0';
        }
    }
    free(due);
    if (rc != 0) {
        log_error("%s: cannot read the queued message: %s", attempt->id, strerror(-rc));
        attempt->rc = rc;
        relay_attempt_release(attempt);
        return;
    }
    /* No group (nothing pending): APPLY with no outcome removes it. */
    attempt->rc = 0;
}

/* ---- ROUTE ---------------------------------------------------------------- */

/* The resolver thread: the answers a run waited for are in. */
static void
route_ready(void *arg)
{
    struct relay_attempt *attempt = arg;
    reactor_job_complete(&attempt->job);
}

static void
route_fail(struct relay_group *group, uint16_t code, const char *enhanced, const char *reason)
{
    group->route.status = code >= 500 ? ROUTE_PERMFAIL : ROUTE_TEMPFAIL;
    group->route.reply_code = code;
    (void)snprintf(group->route.enhanced, sizeof(group->route.enhanced), "%s", enhanced);
    (void)snprintf(group->route.reason, sizeof(group->route.reason), "%s", reason);
    group->route.hop_count = 0;
    group->is_routed = true;
}

/* The TLS each hop of a routed group gets (DANE, MTA-STS: core/
 * relay_tls_policy). Returns true while DNS answers are missing. A group
 * it cannot send anywhere is failed like a route (451). */
static bool
tls_policy_run(struct relay_attempt *attempt, struct relay_group *group,
               const struct dns_source *source)
{
    if (group->is_tls_resolved || group->route.status != ROUTE_OK ||
        group->route.hop_count == 0) {
        return false;
    }
    if (group->tls_hops == NULL) {
        group->tls_hops = calloc(group->route.hop_count, sizeof(*group->tls_hops));
        if (group->tls_hops == NULL) {
            route_fail(group, 451, "4.3.0", "out of memory");
            return false;
        }
    }
    struct relay_tls_request request = {
        .domain = group->domain,
        .level = relay_tls_level_for(group->domain),
        .is_mta_sts = relay_agent.config->smtp_mta_sts,
        .route = &group->route,
        .now = attempt->started,
    };
    char reason[ROUTE_REASON_BYTES];
    int rc = relay_tls_policy_resolve(&request, source, group->tls_hops, reason, sizeof(reason));
    if (rc == -EINPROGRESS) {
        return true;
    }
    group->is_tls_resolved = true;
    if (rc != 0) {
        route_fail(group, 451, rc == -EAGAIN ? "4.7.5" : "4.3.0", reason);
    }
    return false;
}

static void
route_run(struct relay_attempt *attempt)
{
    struct relay *relay = &relay_agent;
    const struct config *config = relay->config;
    if (relay->dns == NULL) {
        for (size_t i = 0; i < attempt->group_count; i++) {
            struct relay_group *group = &attempt->groups[i];
            if (!group->is_local && !group->is_routed) {
                route_fail(group, 451, "4.3.5", "no DNS resolver is configured");
            }
        }
        return;
    }
    for (uint32_t round = 0;; round++) {
        ASSERT(round < 1000);
        if (attempt->batch == NULL) {
            int rc = dns_batch_create(relay->dns, &attempt->batch);
            if (rc != 0) {
                for (size_t i = 0; i < attempt->group_count; i++) {
                    if (!attempt->groups[i].is_local && !attempt->groups[i].is_routed) {
                        route_fail(&attempt->groups[i], 451, "4.3.0", "out of memory");
                    }
                }
                return;
            }
        }
        struct dns_source source = dns_batch_source(attempt->batch);
        bool is_pending = false;
        for (size_t i = 0; i < attempt->group_count; i++) {
            struct relay_group *group = &attempt->groups[i];
            if (group->is_local) {
                continue;
            }
            if (group->is_routed) {
                is_pending = tls_policy_run(attempt, group, &source) || is_pending;
                continue;
            }
            if (group->domain[0] == '\0') {
                route_fail(group, 501, "5.1.3", "bad recipient address syntax");
                continue;
            }
            struct route_request request = {
                .domain = group->domain,
                .table = relay->routes,
                .myhostname = config->myhostname,
                .selves = relay->selves,
                .self_count = relay->self_count,
                .family = relay->family,
                .addresses_max = config->smtp_mx_address_limit,
                .mx_port = (uint16_t)config->smtp_mx_port,
                .seed = attempt->seed + i,
            };
            int rc = route_resolve(&request, &source, &group->route);
            if (rc == -EINPROGRESS) {
                is_pending = true;
            } else if (rc == 0) {
                group->is_routed = true;
                is_pending = tls_policy_run(attempt, group, &source) || is_pending;
            } else {
                route_fail(group, 451, "4.3.0", strerror(-rc));
            }
        }
        if (!is_pending) {
            break;
        }
        if (dns_batch_wait(attempt->batch, route_ready, attempt)) {
            attempt->is_dns_waiting = true; /* done() runs this again */
            return;
        }
    }
    dns_batch_destroy(&attempt->batch);
}

/* ---- LOCAL ---------------------------------------------------------------- */

static void
local_deliver_rcpt(struct relay_attempt *attempt, size_t rcpt_index, const char *msg_path)
{
    const struct config *config = relay_agent.config;
    struct relay_result *result = &attempt->results[rcpt_index];
    if (result->is_set) {
        return; /* refused on the reactor (unknown user) */
    }
    char *const *mailboxes = attempt->local_mailboxes[rcpt_index];
    int rc = 0;
    for (size_t m = 0; mailboxes != NULL && mailboxes[m] != NULL && rc == 0; m++) {
        char maildir[4096];
        rc = recipients_maildir_path(config->data_dir, mailboxes[m], maildir, sizeof(maildir));
        if (rc == 0) {
            rc = maildir_folders_make_root(maildir);
        }
        char name[512];
        struct maildir_add_source source = { .path = msg_path, .fd = -1,
                                             .size = attempt->entry.size };
        if (rc == 0) {
            rc = maildir_add_new(maildir, &source, name, sizeof(name));
        }
        if (rc == 0 && config->fsync) {
            rc = maildir_add_sync_new(maildir);
        }
        if (rc == 0) {
            mailbox_index_changed_path(maildir);
        }
    }
    result->is_set = true;
    result->remote_mta[0] = '\0';
    if (rc == 0) {
        result->kind = QUEUE_OUTCOME_DELIVERED;
        (void)snprintf(result->reply, sizeof(result->reply), "250 2.0.0 delivered to mailbox");
    } else {
        result->kind = QUEUE_OUTCOME_DEFERRED;
        (void)snprintf(result->reply, sizeof(result->reply),
                       "451 4.3.0 cannot write to the mailbox: %s", strerror(-rc));
    }
}

static void
local_run(struct relay_attempt *attempt)
{
    const struct config *config = relay_agent.config;
    char msg_path[4096];
    int n = snprintf(msg_path, sizeof(msg_path), "%s/queue/%s.msg", config->data_dir,
                     attempt->id);
    ASSERT(n > 0 && (size_t)n < sizeof(msg_path));
    for (size_t i = 0; i < attempt->group_count; i++) {
        struct relay_group *group = &attempt->groups[i];
        if (!group->is_local) {
            continue;
        }
        for (size_t k = 0; k < group->rcpt_count; k++) {
            local_deliver_rcpt(attempt, group->rcpts[k], msg_path);
        }
    }
}

/* ---- APPLY ---------------------------------------------------------------- */

static void
apply_run(struct relay_attempt *attempt)
{
    struct relay *relay = &relay_agent;
    struct queue_entry *entry = &attempt->entry;
    struct queue_outcome *outcomes = calloc(entry->rcpt_count + 1, sizeof(*outcomes));
    if (outcomes == NULL) {
        attempt->apply_rc = -ENOMEM;
    } else {
        size_t count = 0;
        for (size_t i = 0; i < entry->rcpt_count; i++) {
            const struct relay_result *result = &attempt->results[i];
            if (!result->is_set) {
                continue;
            }
            outcomes[count++] = (struct queue_outcome){
                .rcpt_index = i,
                .kind = result->kind,
                .reply = result->reply,
                .remote_mta = result->remote_mta[0] != '\0' ? result->remote_mta : NULL,
            };
        }
        struct queue_outcome_params params = {
            .policy = &relay->policy,
            .hostname = relay->config->myhostname,
            .now = (int64_t)time(NULL),
            .random = relay_random(),
        };
        attempt->apply_rc = queue_outcome_apply(relay->queue, entry, outcomes, count, &params,
                                                &attempt->outcome);
        free(outcomes);
    }
    if (attempt->apply_rc != 0) {
        log_error("%s: cannot record the delivery results: %s (the next attempt repeats "
                  "them)", attempt->id, strerror(-attempt->apply_rc));
    }
    relay_attempt_release(attempt);
}

/* ---- the pool's entry point ------------------------------------------------- */

void
relay_job_run(struct job *job)
{
    struct relay_attempt *attempt = (struct relay_attempt *)job;
    switch (attempt->phase) {
    case RELAY_PHASE_LOAD:
        load_run(attempt);
        break;
    case RELAY_PHASE_ROUTE:
        route_run(attempt);
        if (attempt->is_dns_waiting) {
            return; /* route_ready completes the job */
        }
        break;
    case RELAY_PHASE_LOCAL:
        local_run(attempt);
        break;
    case RELAY_PHASE_APPLY:
        apply_run(attempt);
        break;
    case RELAY_PHASE_SEND:
        ASSERT(false);
    }
    reactor_job_complete(job);
}

/* Let go of the map and the lock (worker: munmap and close may take a
 * moment). The in-memory entry stays for done() to look at. */
void
relay_attempt_release(struct relay_attempt *attempt)
{
    if (attempt->map != NULL) {
        if (attempt->is_map_heap) {
            free((void *)attempt->map);
        } else {
            (void)munmap((void *)attempt->map, attempt->map_len);
        }
        attempt->map = NULL;
        attempt->map_len = 0;
    }
    dns_batch_destroy(&attempt->batch);
    queue_entry_unlock(&attempt->lock_fd);
}
