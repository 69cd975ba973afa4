/*
 * core/imap_cmd_store.c - STORE and UID STORE (RFC 9051 6.4.6) with
 * CONDSTORE's UNCHANGEDSINCE and MODIFIED (RFC 7162 3.1.3).
 *
 * Flags change in the shared index first (other sessions see them at their
 * next sync), then the files are renamed with the new flag letters.
 * Keywords new to the folder are added to dovecot-keywords. Worker thread.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/assertions.h"
#include "core/imap_exec.h"
#include "core/log.h"
#include "store/maildir_name.h"

static uint64_t u64_or_zero(const struct imap_node *n, bool *ok);

void
imap_cmd_store(struct imap_exec *x)
{
    const struct imap_parsed *p = x->command;
    if (p->nodes[0].child_count < 3) {
        imap_exec_bad(x, "STORE needs a message set, an action and flags.");
        return;
    }
    if (x->is_readonly) {
        imap_exec_no(x, "[READ-ONLY] Mailbox is read-only.");
        return;
    }
    uint32_t set_node = imap_node_first_child(p, 0);
    uint32_t at = imap_node_next(p, set_node);
    uint64_t unchangedsince = 0;
    bool has_unchangedsince = false;
    if (p->nodes[at].kind == IMAP_NODE_LIST) {
        /* (UNCHANGEDSINCE n) */
        uint32_t k = imap_node_first_child(p, at);
        uint32_t v = k != IMAP_NODE_NONE ? imap_node_next(p, k) : IMAP_NODE_NONE;
        bool ok = false;
        if (v != IMAP_NODE_NONE && imap_node_next(p, v) == IMAP_NODE_NONE &&
            p->nodes[k].kind == IMAP_NODE_ATOM &&
            span_equals_nocase(p->nodes[k].text, "UNCHANGEDSINCE")) {
            unchangedsince = u64_or_zero(&p->nodes[v], &ok);
        }
        if (!ok) {
            imap_exec_bad(x, "Invalid STORE modifier.");
            return;
        }
        has_unchangedsince = true;
        x->enable_bits |= IMAP_ENABLED_CONDSTORE;
        at = imap_node_next(p, at);
    }
    const struct imap_node *action = at != IMAP_NODE_NONE ? &p->nodes[at] : NULL;
    uint32_t flags_node = action != NULL ? imap_node_next(p, at) : IMAP_NODE_NONE;
    if (action == NULL || action->kind != IMAP_NODE_ATOM || flags_node == IMAP_NODE_NONE) {
        imap_exec_bad(x, "STORE needs an action and flags.");
        return;
    }
    struct span a = action->text;
    enum mailbox_flags_op op = MAILBOX_FLAGS_REPLACE;
    if (a.len > 0 && a.ptr[0] == '+') {
        op = MAILBOX_FLAGS_ADD;
        a = span_make(a.ptr + 1, a.len - 1);
    } else if (a.len > 0 && a.ptr[0] == '-') {
        op = MAILBOX_FLAGS_REMOVE;
        a = span_make(a.ptr + 1, a.len - 1);
    }
    bool is_silent = false;
    if (span_equals_nocase(a, "FLAGS.SILENT")) {
        is_silent = true;
    } else if (!span_equals_nocase(a, "FLAGS")) {
        imap_exec_bad(x, "Invalid STORE action.");
        return;
    }
    uint32_t flags = 0;
    uint32_t keywords = 0;
    if (imap_exec_flags_parse(x, flags_node, mailbox_view_index(x->view), &flags, &keywords) !=
        0) {
        return;
    }
    struct mailbox_snapshot snap = {0};
    if (imap_exec_collect(x, set_node, p->is_uid, &snap) != 0) {
        mailbox_snapshot_free(&snap);
        return;
    }
    uint64_t *before = calloc(snap.count > 0 ? snap.count : 1, sizeof(*before));
    if (before == NULL) {
        mailbox_snapshot_free(&snap);
        imap_exec_no(x, "[SERVERBUG] Out of memory.");
        return;
    }
    for (size_t i = 0; i < snap.count; i++) {
        before[i] = snap.messages[i].modseq;
    }
    /* UNCHANGEDSINCE 0 fails every message (all MODSEQs are above it);
     * the index reads 0 as "no condition", and 1 gives the same answer. */
    int rc = mailbox_view_store(x->view, &snap, op, flags, keywords,
                                has_unchangedsince ? (unchangedsince == 0 ? 1 : unchangedsince) : 0);
    bool with_modseq = (x->enabled & IMAP_ENABLED_CONDSTORE) || has_unchangedsince;
    size_t modified = 0;
    for (size_t i = 0; i < snap.count; i++) {
        const struct mailbox_message *m = &snap.messages[i];
        if (m->is_gone) {
            continue;
        }
        if (m->is_modified) {
            modified++;
            continue;
        }
        /* .SILENT: no FETCH for our change, except that CONDSTORE wants the
         * new MODSEQ of each message changed (RFC 7162 3.1.3). */
        bool is_changed = m->modseq != before[i];
        if (!is_silent || (with_modseq && is_changed)) {
            if (is_silent) {
                imap_exec_printf(x, "* %u FETCH (", m->seq);
                if (p->is_uid) {
                    imap_exec_printf(x, "UID %u ", m->uid);
                }
                imap_exec_printf(x, "MODSEQ (%llu))\r\n", (unsigned long long)m->modseq);
            } else {
                imap_exec_fetch_flags(x, m, p->is_uid, with_modseq);
            }
        }
    }
    /* No EXPUNGE during STORE by sequence number (RFC 9051 7.5.1). */
    imap_exec_updates(x, p->is_uid);
    if (rc != 0) {
        log_warning("imap: store: %s", strerror(-rc));
    }
    if (modified > 0) {
        /* RFC 7162 3.1.3: the messages left alone, in the set's numbering. */
        imap_exec_write(x, x->tag.ptr, x->tag.len);
        imap_exec_cstr(x, " OK [MODIFIED ");
        bool is_first = true;
        for (size_t i = 0; i < snap.count; i++) {
            const struct mailbox_message *m = &snap.messages[i];
            if (!m->is_modified) {
                continue;
            }
            imap_exec_printf(x, "%s%u", is_first ? "" : ",", p->is_uid ? m->uid : m->seq);
            is_first = false;
        }
        imap_exec_cstr(x, "] Conditional STORE failed.\r\n");
    } else {
        imap_exec_ok(x, "Store completed.");
    }
    free(before);
    mailbox_snapshot_free(&snap);
}

static uint64_t
u64_or_zero(const struct imap_node *n, bool *ok)
{
    *ok = false;
    if (n->kind != IMAP_NODE_ATOM || n->text.len == 0 || n->text.len > 19) {
        return 0;
    }
    uint64_t v = 0;
    for (size_t i = 0; i < n->text.len; i++) {
        char c = n->text.ptr[i];
        if (c < '0' || c > '9') {
            return 0;
        }
        v = v * 10 + (uint64_t)(c - '0');
    }
    *ok = true;
    return v;
}
