/*
 * core/imap_cmd_select.c - the commands that open, poll and close the
 * selected mailbox: SELECT and EXAMINE (with CONDSTORE and QRESYNC
 * parameters, RFC 7162), CLOSE, UNSELECT, NOOP and CHECK, IDLE (RFC 2177)
 * and EXPUNGE / UID EXPUNGE (RFC 4315).
 *
 * Runs on a worker (see core/imap_exec.h): opening an index may scan the
 * folder, EXPUNGE unlinks files.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "core/assertions.h"
#include "core/imap_exec.h"
#include "core/log.h"
#include "proto/imap/imap_seqset.h"
#include "store/maildir_folders.h"
#include "store/maildir_name.h"

struct qresync_args {
    bool is_given;
    uint32_t uidvalidity;
    uint64_t modseq;
    uint32_t known_node; /* IMAP_NODE_NONE: all UIDs */
};

static int select_params(struct imap_exec *x, uint32_t node, struct qresync_args *q);
static void select_answer(struct imap_exec *x, bool is_examine, const struct qresync_args *q);
static void qresync_answer(struct imap_exec *x, const struct qresync_args *q,
                           const struct mailbox_status *st);
static bool u64_of(const struct imap_node *n, uint64_t *out);
static bool want_all(void *arg, uint32_t n);

void
imap_cmd_select(struct imap_exec *x)
{
    const struct imap_parsed *p = x->command;
    bool is_examine = p->command == IMAP_CMD_EXAMINE;
    uint32_t argc = p->nodes[0].child_count;
    /* A SELECT deselects the current mailbox first, whatever happens next
     * (RFC 9051 6.3.2); QRESYNC clients are told so with [CLOSED]. */
    bool was_selected = mailbox_view_is_attached(x->view);
    if (was_selected) {
        mailbox_view_detach(x->view);
        if (x->enabled & (IMAP_ENABLED_QRESYNC | IMAP_ENABLED_IMAP4REV2)) {
            imap_exec_cstr(x, "* OK [CLOSED] Previous mailbox closed.\r\n");
        }
    }
    x->outcome = was_selected ? IMAP_OUTCOME_DESELECTED : IMAP_OUTCOME_STAY;
    if (argc < 1 || argc > 2) {
        imap_exec_bad(x, "SELECT needs a mailbox name.");
        return;
    }
    uint32_t name_node = imap_node_first_child(p, 0);
    struct qresync_args q = {.known_node = IMAP_NODE_NONE};
    if (argc == 2 && select_params(x, imap_node_next(p, name_node), &q) != 0) {
        return;
    }
    char name[MAILDIR_FOLDERS_NAME_BYTES_MAX + 1];
    if (imap_exec_mailbox_arg(x, name_node, name, sizeof(name)) != 0) {
        return;
    }
    char path[PATH_MAX];
    if (imap_exec_folder_path(x, name, path, sizeof(path)) != 0) {
        imap_exec_no(x, "[CANNOT] Invalid mailbox name.");
        return;
    }
    struct mailbox_index *index = NULL;
    int rc = mailbox_index_open(path, x->root, &index);
    if (rc == 0) {
        rc = mailbox_index_refresh(index, !is_examine, false);
        if (rc == -EAGAIN) {
            rc = 0; /* another writer holds the uidlist: serve what we know */
        }
    }
    if (rc != 0) {
        mailbox_index_release(&index);
        if (rc == -ENOENT) {
            imap_exec_no(x, "[NONEXISTENT] Mailbox doesn't exist.");
        } else if (rc == -EAGAIN) {
            imap_exec_no(x, "[INUSE] Mailbox is locked, try again.");
        } else {
            log_warning("imap: select %s: %s", path, strerror(-rc));
            imap_exec_no(x, "[SERVERBUG] Internal error opening the mailbox.");
        }
        return;
    }
    mailbox_view_attach(x->view, index, is_examine, x->view_notify, x->view_owner);
    mailbox_index_release(&index); /* the view holds its own reference */
    select_answer(x, is_examine, &q);
    x->outcome = is_examine ? IMAP_OUTCOME_EXAMINED : IMAP_OUTCOME_SELECTED;
}

void
imap_cmd_close(struct imap_exec *x)
{
    if (x->command->nodes[0].child_count != 0) {
        imap_exec_bad(x, "No arguments expected.");
        return;
    }
    if (x->command->command == IMAP_CMD_CLOSE && !x->is_readonly) {
        /* CLOSE expunges silently (RFC 9051 6.4.1). */
        long n = mailbox_view_expunge(x->view, NULL, false);
        if (n < 0) {
            log_warning("imap: close: expunge: %s", strerror((int)-n));
        }
    }
    mailbox_view_detach(x->view);
    x->outcome = IMAP_OUTCOME_DESELECTED;
    imap_exec_ok(x, x->command->command == IMAP_CMD_CLOSE ? "Close completed."
                                                          : "Unselect completed.");
}

void
imap_cmd_noop(struct imap_exec *x)
{
    if (x->command->nodes[0].child_count != 0) {
        imap_exec_bad(x, "No arguments expected.");
        return;
    }
    imap_exec_updates(x, true);
    imap_exec_ok(x, x->command->command == IMAP_CMD_CHECK ? "Check completed."
                                                          : "NOOP completed.");
}

void
imap_cmd_idle(struct imap_exec *x)
{
    if (x->is_idle_done) {
        imap_exec_updates(x, true);
        imap_exec_ok(x, "Idle completed.");
        return;
    }
    if (x->command->nodes[0].child_count != 0) {
        imap_exec_bad(x, "No arguments expected.");
        return;
    }
    imap_exec_updates(x, true);
    imap_exec_cstr(x, "+ idling\r\n");
    x->outcome = IMAP_OUTCOME_IDLE;
}

void
imap_cmd_expunge(struct imap_exec *x)
{
    const struct imap_parsed *p = x->command;
    uint32_t argc = p->nodes[0].child_count;
    if (argc != (p->is_uid ? 1u : 0u)) {
        imap_exec_bad(x, p->is_uid ? "UID EXPUNGE needs a UID set." : "No arguments expected.");
        return;
    }
    if (x->is_readonly) {
        imap_exec_no(x, "[READ-ONLY] Mailbox is read-only.");
        return;
    }
    struct mailbox_snapshot uids = {0};
    if (p->is_uid && imap_exec_collect(x, imap_node_first_child(p, 0), true, &uids) != 0) {
        mailbox_snapshot_free(&uids);
        return;
    }
    long n = mailbox_view_expunge(x->view, p->is_uid ? &uids : NULL, false);
    mailbox_snapshot_free(&uids);
    imap_exec_updates(x, true);
    if (n < 0) {
        log_warning("imap: expunge: %s", strerror((int)-n));
        imap_exec_no(x, "[SERVERBUG] Some messages could not be expunged.");
        return;
    }
    imap_exec_ok(x, "Expunge completed.");
}

/* ---- SELECT details ---------------------------------------------------------- */

/* "(CONDSTORE)" or "(QRESYNC (uidvalidity modseq [known-uids [seq-match]]))". */
static int
select_params(struct imap_exec *x, uint32_t node, struct qresync_args *q)
{
    const struct imap_parsed *p = x->command;
    const struct imap_node *list = &p->nodes[node];
    if (list->kind != IMAP_NODE_LIST) {
        imap_exec_bad(x, "Invalid SELECT parameters.");
        return -EINVAL;
    }
    for (uint32_t i = imap_node_first_child(p, node); i != IMAP_NODE_NONE;
         i = imap_node_next(p, i)) {
        const struct imap_node *n = &p->nodes[i];
        if (n->kind == IMAP_NODE_ATOM && span_equals_nocase(n->text, "CONDSTORE")) {
            x->enable_bits |= IMAP_ENABLED_CONDSTORE;
            continue;
        }
        if (n->kind == IMAP_NODE_ATOM && span_equals_nocase(n->text, "QRESYNC")) {
            uint32_t args = imap_node_next(p, i);
            if ((x->enabled & IMAP_ENABLED_QRESYNC) == 0) {
                imap_exec_bad(x, "QRESYNC must be enabled first.");
                return -EINVAL;
            }
            if (args == IMAP_NODE_NONE || p->nodes[args].kind != IMAP_NODE_LIST ||
                p->nodes[args].child_count < 2 || p->nodes[args].child_count > 4) {
                imap_exec_bad(x, "Invalid QRESYNC parameters.");
                return -EINVAL;
            }
            uint32_t v = imap_node_first_child(p, args);
            uint32_t m = imap_node_next(p, v);
            uint64_t modseq = 0;
            if (!imap_node_u32(&p->nodes[v], &q->uidvalidity) || q->uidvalidity == 0 ||
                !u64_of(&p->nodes[m], &modseq) || modseq == 0) {
                imap_exec_bad(x, "Invalid QRESYNC parameters.");
                return -EINVAL;
            }
            q->modseq = modseq;
            q->is_given = true;
            uint32_t known = imap_node_next(p, m);
            if (known != IMAP_NODE_NONE && p->nodes[known].kind == IMAP_NODE_ATOM) {
                q->known_node = known;
            }
            i = args;
            continue;
        }
        imap_exec_bad(x, "Unknown SELECT parameter.");
        return -EINVAL;
    }
    return 0;
}

static void
select_answer(struct imap_exec *x, bool is_examine, const struct qresync_args *q)
{
    struct mailbox_status st;
    mailbox_view_status(x->view, &st);
    struct maildir_keywords kw;
    mailbox_index_keywords(mailbox_view_index(x->view), &kw);
    bool is_rev2 = (x->enabled & IMAP_ENABLED_IMAP4REV2) != 0;

    imap_exec_cstr(x, "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft");
    for (unsigned k = 0; k < MAILDIR_KEYWORDS_MAX; k++) {
        const char *name = maildir_keywords_name(&kw, k);
        if (name != NULL) {
            imap_exec_cstr(x, " ");
            imap_exec_cstr(x, name);
        }
    }
    imap_exec_cstr(x, ")\r\n");
    if (is_examine) {
        imap_exec_cstr(x, "* OK [PERMANENTFLAGS ()] Read-only mailbox.\r\n");
    } else {
        imap_exec_cstr(x, "* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft");
        for (unsigned k = 0; k < MAILDIR_KEYWORDS_MAX; k++) {
            const char *name = maildir_keywords_name(&kw, k);
            if (name != NULL) {
                imap_exec_cstr(x, " ");
                imap_exec_cstr(x, name);
            }
        }
        imap_exec_cstr(x, " \\*)] Flags permitted.\r\n");
    }
    imap_exec_printf(x, "* %u EXISTS\r\n", st.exists);
    if (!is_rev2) {
        imap_exec_printf(x, "* %u RECENT\r\n", st.recent);
        if (st.first_unseen != 0) {
            imap_exec_printf(x, "* OK [UNSEEN %u] First unseen.\r\n", st.first_unseen);
        }
    }
    imap_exec_printf(x, "* OK [UIDVALIDITY %u] UIDs valid\r\n", st.uidvalidity);
    imap_exec_printf(x, "* OK [UIDNEXT %u] Predicted next UID\r\n", st.uidnext);
    imap_exec_printf(x, "* OK [HIGHESTMODSEQ %llu] Highest\r\n",
                     (unsigned long long)st.highest_modseq);
    if (q->is_given && q->uidvalidity == st.uidvalidity) {
        qresync_answer(x, q, &st);
    }
    imap_exec_ok(x, is_examine ? "[READ-ONLY] Examine completed." : "[READ-WRITE] Select completed.");
}

/* RFC 7162 3.2.5.1: what changed since the client's MODSEQ. MODSEQs of
 * expunged messages are not kept, so VANISHED (EARLIER) lists every UID
 * below UIDNEXT (within the client's known UIDs) that is not here now:
 * more than strictly needed, never less. */
static void
qresync_answer(struct imap_exec *x, const struct qresync_args *q, const struct mailbox_status *st)
{
    struct mailbox_snapshot all = {0};
    if (mailbox_view_collect(x->view, true, want_all, NULL, &all) != 0) {
        mailbox_snapshot_free(&all);
        return;
    }
    struct imap_seq_range *ranges = NULL;
    struct imap_seqset known;
    bool has_known = false;
    if (q->known_node != IMAP_NODE_NONE) {
        ranges = malloc(IMAP_SEQSET_ARRAY_LEN_DEFAULT * sizeof(*ranges));
        if (ranges != NULL) {
            imap_seqset_init(&known, ranges, IMAP_SEQSET_ARRAY_LEN_DEFAULT);
            if (imap_seqset_parse(&known, x->command->nodes[q->known_node].text) ==
                    IMAP_SEQSET_OK &&
                !known.is_searchres) {
                imap_seqset_resolve(&known, st->uidnext > 0 ? st->uidnext - 1 : 0);
                has_known = true;
            }
        }
    }
    /* Missing UIDs as ranges, in one pass over the present ones. */
    bool is_any = false;
    uint32_t next_present_index = 0;
    uint32_t run_first = 0;
    uint32_t limit = st->uidnext > 0 ? st->uidnext - 1 : 0;
    for (uint64_t uid = 1; uid <= limit; uid++) {
        bool is_present = next_present_index < all.count &&
                          all.messages[next_present_index].uid == uid;
        if (is_present) {
            next_present_index++;
        }
        bool is_gone = !is_present && (!has_known || imap_seqset_contains(&known, (uint32_t)uid));
        if (is_gone && run_first == 0) {
            run_first = (uint32_t)uid;
        }
        if ((!is_gone || uid == limit) && run_first != 0) {
            uint32_t run_last = is_gone ? (uint32_t)uid : (uint32_t)uid - 1;
            imap_exec_cstr(x, is_any ? "," : "* VANISHED (EARLIER) ");
            if (run_first == run_last) {
                imap_exec_printf(x, "%u", run_first);
            } else {
                imap_exec_printf(x, "%u:%u", run_first, run_last);
            }
            is_any = true;
            run_first = 0;
        }
        if (!is_gone && next_present_index >= all.count && !has_known) {
            /* Past the last present UID every UID is gone: one range. */
            if (uid < limit) {
                imap_exec_cstr(x, is_any ? "," : "* VANISHED (EARLIER) ");
                if (uid + 1 == limit) {
                    imap_exec_printf(x, "%u", limit);
                } else {
                    imap_exec_printf(x, "%llu:%u", (unsigned long long)uid + 1, limit);
                }
                is_any = true;
            }
            break;
        }
    }
    if (is_any) {
        imap_exec_cstr(x, "\r\n");
    }
    for (size_t i = 0; i < all.count; i++) {
        const struct mailbox_message *m = &all.messages[i];
        if (m->modseq > q->modseq && !m->is_gone) {
            imap_exec_fetch_flags(x, m, true, true);
        }
    }
    free(ranges);
    mailbox_snapshot_free(&all);
}

static bool
u64_of(const struct imap_node *n, uint64_t *out)
{
    if (n->kind != IMAP_NODE_ATOM || n->text.len == 0 || n->text.len > 19) {
        return false;
    }
    uint64_t v = 0;
    for (size_t i = 0; i < n->text.len; i++) {
        char c = n->text.ptr[i];
        if (c < '0' || c > '9') {
            return false;
        }
        v = v * 10 + (uint64_t)(c - '0');
    }
    *out = v;
    return true;
}

static bool
want_all(void *arg, uint32_t n)
{
    (void)arg;
    (void)n;
    return true;
}
