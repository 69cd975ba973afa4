/*
 * core/imap_cmd_fetch.c - FETCH and UID FETCH (RFC 9051 6.4.5), with
 * CONDSTORE's CHANGEDSINCE and QRESYNC's VANISHED modifiers (RFC 7162).
 *
 * Resumable: the messages are collected once; each step writes responses
 * until the step's output passes IMAP_EXEC_STEP_BYTES and then asks to be
 * run again, so FETCH 1:* BODY[] of a large mailbox never holds more than
 * one step's bytes. A message asked for whole (BODY[], RFC822) on a
 * plaintext connection goes out as a file range the reactor splices to
 * the socket (imap_exec_file_range) when the index knows the file holds
 * no NUL; otherwise files are read into the worker's buffer.
 * Worker thread (see core/imap_exec.h).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/assertions.h"
#include "core/imap_exec.h"
#include "core/log.h"
#include "proto/imap/imap_fetch.h"
#include "proto/imap/imap_mime.h"
#include "proto/imap/imap_seqset.h"
#include "store/maildir_name.h"

struct fetch_state {
    struct imap_fetch_request request;
    struct mailbox_snapshot snapshot;
    size_t next; /* first message of the next step */
    struct maildir_keywords keywords;
    struct imap_fetch_work work;
    size_t gone_count;    /* messages whose files vanished */
    bool is_seen_set;     /* \Seen was set on messages[i] by this FETCH */
    bool *seen_changed;   /* per message: FLAGS must be shown */
    bool is_failed;
    const char *failure;  /* NO text */
};

static int fetch_start(struct imap_exec *x);
static void fetch_state_free(void *state);
static void vanished_write(struct imap_exec *x, uint32_t set_node);
static void range_write(struct imap_exec *x, bool *is_any, uint32_t first, uint32_t last);
static bool seqset_wanted(void *arg, uint32_t n);
static void sink_write(void *ctx, const char *bytes, size_t len);
static void sink_write_range(void *ctx, uint64_t offset, uint64_t len);

struct sink_ctx {
    struct imap_exec *x;
    struct imap_exec_file *file;
};

void
imap_cmd_fetch(struct imap_exec *x)
{
    if (x->state == NULL && fetch_start(x) != 0) {
        return;
    }
    struct fetch_state *st = x->state;
    const struct imap_parsed *p = x->command;
    bool with_modseq = (x->enabled & IMAP_ENABLED_CONDSTORE) != 0 ||
                       st->request.has_changedsince ||
                       (st->request.items & IMAP_FETCH_MODSEQ) != 0;
    while (st->next < st->snapshot.count && !st->is_failed) {
        const struct mailbox_message *m = &st->snapshot.messages[st->next];
        bool show_flags = st->seen_changed != NULL && st->seen_changed[st->next];
        st->next++;
        if (m->is_gone) {
            st->gone_count++;
            continue;
        }
        bool needs_data = st->request.needs != IMAP_FETCH_NEEDS_NOTHING;
        bool needs_date = (st->request.items & IMAP_FETCH_INTERNALDATE) != 0;
        struct imap_exec_file f;
        int rc = -ESTALE;
        if (st->request.needs == IMAP_FETCH_NEEDS_SIZE && imap_exec_can_send_file(x, m)) {
            rc = imap_exec_file_open_unread(x, m, &st->keywords, needs_date, &f);
        }
        if (rc == -ESTALE) {
            rc = imap_exec_file_open(x, m, &st->keywords, needs_data,
                                     st->request.needs == IMAP_FETCH_NEEDS_HEADER, needs_date, &f);
        }
        if (rc == -ENOENT) {
            st->gone_count++;
            continue;
        }
        if (rc != 0) {
            log_warning("imap: fetch uid %u: %s", m->uid, strerror(-rc));
            st->is_failed = true;
            st->failure = "[SERVERBUG] Error reading a message.";
            break;
        }
        struct sink_ctx sc = {.x = x, .file = &f};
        struct imap_fetch_sink sink = {
            .ctx = &sc, .write = sink_write, .write_range = sink_write_range};
        struct imap_fetch_options opts = {
            .add_uid = p->is_uid,
            .add_flags = show_flags,
            .add_modseq = with_modseq,
            .quote_flags = (x->enabled & IMAP_ENABLED_UTF8_ACCEPT) ? IMAP_QUOTE_UTF8 : 0,
        };
        rc = imap_fetch_write(&st->request, &f.message, &opts, &st->work, &sink);
        imap_exec_file_close(&f);
        if (rc != 0) {
            st->is_failed = true;
            st->failure = imap_fetch_error_text(rc);
            break;
        }
        if (x->is_out_failed) {
            st->is_failed = true;
            st->failure = "[LIMIT] Response too large.";
            break;
        }
        if (imap_exec_step_is_full(x) && st->next < st->snapshot.count) {
            x->is_more = true;
            return;
        }
    }
    /* No EXPUNGE during FETCH by sequence number (RFC 9051 7.5.1). */
    imap_exec_updates(x, p->is_uid);
    if (st->is_failed) {
        imap_exec_no(x, st->failure);
    } else if (st->gone_count > 0) {
        imap_exec_no(x, "[EXPUNGEISSUED] Some of the requested messages no longer exist.");
    } else {
        imap_exec_ok(x, "Fetch completed.");
    }
}

/* Parse, collect the messages, set \Seen where asked, write VANISHED. */
static int
fetch_start(struct imap_exec *x)
{
    const struct imap_parsed *p = x->command;
    if (p->nodes[0].child_count < 2) {
        imap_exec_bad(x, "FETCH needs a message set and items.");
        return -EINVAL;
    }
    struct fetch_state *st = calloc(1, sizeof(*st));
    if (st == NULL) {
        imap_exec_no(x, "[SERVERBUG] Out of memory.");
        return -ENOMEM;
    }
    x->state = st;
    x->state_free = fetch_state_free;
    uint32_t set_node = imap_node_first_child(p, 0);
    const char *text = NULL;
    unsigned flags = (p->is_uid ? IMAP_FETCH_PARSE_F_UID : 0) |
                     ((x->enabled & IMAP_ENABLED_QRESYNC) ? IMAP_FETCH_PARSE_F_QRESYNC : 0);
    if (imap_fetch_parse(p, imap_node_next(p, set_node), flags, &st->request, &text) !=
        IMAP_FETCH_PARSE_OK) {
        imap_exec_bad(x, text != NULL ? text : "Invalid FETCH items.");
        return -EINVAL;
    }
    if (st->request.has_changedsince || (st->request.items & IMAP_FETCH_MODSEQ)) {
        /* RFC 7162 3.1: using CONDSTORE enables it. */
        x->enable_bits |= IMAP_ENABLED_CONDSTORE;
    }
    st->snapshot.is_with_headers = st->request.needs == IMAP_FETCH_NEEDS_HEADER;
    if (imap_exec_collect(x, set_node, p->is_uid, &st->snapshot) != 0) {
        return -EINVAL;
    }
    if (st->request.has_changedsince) {
        size_t kept = 0;
        for (size_t i = 0; i < st->snapshot.count; i++) {
            if (st->snapshot.messages[i].modseq > st->request.changedsince) {
                st->snapshot.messages[kept++] = st->snapshot.messages[i];
            }
        }
        st->snapshot.count = kept;
    }
    if (st->request.is_vanished) {
        vanished_write(x, set_node);
    }
    mailbox_index_keywords(mailbox_view_index(x->view), &st->keywords);
    {
        /* Whole messages alone (NEEDS_SIZE) need no MIME parts. */
        bool is_content = st->request.needs > IMAP_FETCH_NEEDS_SIZE;
        st->work.parts_cap = is_content ? IMAP_MIME_PARTS_MAX : 1;
        st->work.parts = calloc(st->work.parts_cap, sizeof(*st->work.parts));
        st->work.buf_bytes = is_content ? IMAP_FETCH_WORK_BYTES_DEFAULT : 4096;
        st->work.buf = malloc(st->work.buf_bytes);
        if (st->work.parts == NULL || st->work.buf == NULL) {
            imap_exec_no(x, "[SERVERBUG] Out of memory.");
            return -ENOMEM;
        }
    }
    if (st->request.sets_seen && !x->is_readonly && st->snapshot.count > 0) {
        /* \Seen first, so the responses show it (RFC 9051 6.4.5). */
        st->seen_changed = calloc(st->snapshot.count, sizeof(*st->seen_changed));
        if (st->seen_changed == NULL) {
            imap_exec_no(x, "[SERVERBUG] Out of memory.");
            return -ENOMEM;
        }
        uint32_t *before = malloc(st->snapshot.count * sizeof(*before));
        if (before == NULL) {
            imap_exec_no(x, "[SERVERBUG] Out of memory.");
            return -ENOMEM;
        }
        for (size_t i = 0; i < st->snapshot.count; i++) {
            before[i] = st->snapshot.messages[i].flags;
        }
        int rc = mailbox_view_store(x->view, &st->snapshot, MAILBOX_FLAGS_ADD,
                                    MAILDIR_FLAG_SEEN, 0, 0);
        if (rc != 0) {
            log_warning("imap: fetch: setting \\Seen: %s", strerror(-rc));
        }
        for (size_t i = 0; i < st->snapshot.count; i++) {
            st->seen_changed[i] = st->snapshot.messages[i].flags != before[i];
        }
        free(before);
    }
    return 0;
}

static void
fetch_state_free(void *state)
{
    struct fetch_state *st = state;
    mailbox_snapshot_free(&st->snapshot);
    free(st->work.parts);
    free(st->work.buf);
    free(st->seen_changed);
    free(st);
}

/* UID FETCH ... (CHANGEDSINCE m VANISHED): expunged UIDs of the set. As in
 * SELECT's QRESYNC, MODSEQs of expunged messages are not kept, so every
 * UID of the set below UIDNEXT that is not here is reported. */
static void
vanished_write(struct imap_exec *x, uint32_t set_node)
{
    struct imap_seq_range *ranges = malloc(IMAP_SEQSET_ARRAY_LEN_DEFAULT * sizeof(*ranges));
    if (ranges == NULL) {
        return;
    }
    struct imap_seqset set;
    imap_seqset_init(&set, ranges, IMAP_SEQSET_ARRAY_LEN_DEFAULT);
    struct mailbox_status status;
    mailbox_view_status(x->view, &status);
    if (imap_seqset_parse(&set, x->command->nodes[set_node].text) != IMAP_SEQSET_OK ||
        set.is_searchres) {
        free(ranges);
        return;
    }
    uint32_t limit = status.uidnext > 0 ? status.uidnext - 1 : 0;
    imap_seqset_resolve(&set, status.uid_max);
    struct imap_seqset_iter it = {0};
    uint32_t uid;
    size_t present = 0;
    bool is_any = false;
    uint32_t run_first = 0;
    uint32_t run_last = 0;
    /* The present UIDs, to skip them. */
    struct mailbox_snapshot here = {0};
    if (mailbox_view_collect(x->view, true, seqset_wanted, &set, &here) != 0) {
        free(ranges);
        mailbox_snapshot_free(&here);
        return;
    }
    while (imap_seqset_next(&set, &it, &uid) && uid <= limit) {
        while (present < here.count && here.messages[present].uid < uid) {
            present++;
        }
        if (present < here.count && here.messages[present].uid == uid &&
            !here.messages[present].is_gone) {
            continue;
        }
        if (run_first != 0 && uid == run_last + 1) {
            run_last = uid;
            continue;
        }
        if (run_first != 0) {
            range_write(x, &is_any, run_first, run_last);
        }
        run_first = run_last = uid;
    }
    if (run_first != 0) {
        range_write(x, &is_any, run_first, run_last);
    }
    if (is_any) {
        imap_exec_cstr(x, "\r\n");
    }
    mailbox_snapshot_free(&here);
    free(ranges);
}

static void
range_write(struct imap_exec *x, bool *is_any, uint32_t first, uint32_t last)
{
    imap_exec_cstr(x, *is_any ? "," : "* VANISHED (EARLIER) ");
    if (first == last) {
        imap_exec_printf(x, "%u", first);
    } else {
        imap_exec_printf(x, "%u:%u", first, last);
    }
    *is_any = true;
}

static bool
seqset_wanted(void *arg, uint32_t n)
{
    return imap_seqset_contains(arg, n);
}

static void
sink_write(void *ctx, const char *bytes, size_t len)
{
    struct sink_ctx *sc = ctx;
    imap_exec_write(sc->x, bytes, len);
}

/* Literal bytes: a range of the unread file, or copied from the read one. */
static void
sink_write_range(void *ctx, uint64_t offset, uint64_t len)
{
    struct sink_ctx *sc = ctx;
    const char *data = sc->file->message.data;
    if (data == NULL) {
        imap_exec_file_range(sc->x, sc->file, offset, len);
        return;
    }
    imap_exec_write(sc->x, data + offset, (size_t)len);
}
