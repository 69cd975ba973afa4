/*
 * core/imap_cmd_copy.c - COPY, MOVE (RFC 6851) and their UID forms, with
 * UIDPLUS's COPYUID (RFC 4315).
 *
 * Each message is hard-linked into the target folder's cur/ under a new
 * unique name with its flags (keyword letters translated to the target's
 * dovecot-keywords), the target's cur/ is synced once, and the target is
 * refreshed so the new UIDs are known for COPYUID. MOVE then expunges the
 * sources, reporting "* OK [COPYUID ...]" before the EXPUNGEs as RFC 6851
 * asks. Worker thread.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/assertions.h"
#include "core/imap_exec.h"
#include "core/log.h"
#include "store/maildir_add.h"
#include "store/maildir_folders.h"
#include "store/maildir_name.h"

static void uid_list_write(struct imap_exec *x, const uint32_t *uids, size_t count);

/* Messages learned per command at most: a MOVE of a whole mailbox into
 * Junk teaches Bayes its first ones and does not hold the worker long. */
#define IMAP_COPY_LEARN_MAX 500

static struct {
    imap_junk_learn_fn learn;
    void *ctx;
} junk_learner;

void
imap_cmd_copy_set_learner(imap_junk_learn_fn learn, void *ctx)
{
    junk_learner.learn = learn;
    junk_learner.ctx = ctx;
}

/* The folder path names Maildir++'s folder (".Junk"), at its end. */
static bool
folder_is(const char *path, const char *folder)
{
    size_t len = strlen(path);
    size_t n = strlen(folder);
    return len > n && path[len - n - 1] == '/' && strcmp(path + len - n, folder) == 0;
}

/* What moving from src to target teaches: 1 spam, 0 ham, -1 nothing. */
static int
junk_learn_kind(const char *src, const char *target)
{
    if (junk_learner.learn == NULL) {
        return -1;
    }
    bool is_src_junk = folder_is(src, ".Junk");
    bool is_target_junk = folder_is(target, ".Junk");
    if (is_target_junk && !is_src_junk) {
        return 1;
    }
    if (is_src_junk && !is_target_junk && !folder_is(target, ".Trash")) {
        return 0;
    }
    return -1;
}

void
imap_cmd_copy(struct imap_exec *x)
{
    const struct imap_parsed *p = x->command;
    bool is_move = p->command == IMAP_CMD_MOVE;
    if (p->nodes[0].child_count != 2) {
        imap_exec_bad(x, is_move ? "MOVE needs a message set and a mailbox."
                                 : "COPY needs a message set and a mailbox.");
        return;
    }
    if (is_move && x->is_readonly) {
        imap_exec_no(x, "[READ-ONLY] Mailbox is read-only.");
        return;
    }
    uint32_t set_node = imap_node_first_child(p, 0);
    char target[PATH_MAX];
    struct mailbox_index *dest = NULL;
    if (imap_exec_target_open(x, imap_node_next(p, set_node), target, sizeof(target), &dest) !=
        0) {
        return;
    }
    int rc = 0;
    bool is_adding = false; /* between adding_begin and adding_end */
    struct mailbox_snapshot snap = {0};
    uint32_t *src_uids = NULL;
    char *bases = NULL;
    if (imap_exec_collect(x, set_node, p->is_uid, &snap) != 0) {
        goto out;
    }
    src_uids = calloc(snap.count + 1, sizeof(*src_uids));
    bases = malloc((snap.count + 1) * (MAILDIR_NAME_BYTES_MAX + 1));
    if (src_uids == NULL || bases == NULL) {
        imap_exec_no(x, "[SERVERBUG] Out of memory.");
        goto out;
    }
    struct maildir_keywords src_kw;
    mailbox_index_keywords(mailbox_view_index(x->view), &src_kw);
    const char *src_folder = mailbox_index_path(mailbox_view_index(x->view));
    size_t copied = 0;
    size_t gone = 0;
    int learn_kind = junk_learn_kind(src_folder, target);
    size_t learned = 0;
    /* Until they are indexed, the new files are ours, not another program's. */
    mailbox_index_adding_begin(dest);
    is_adding = true;
    for (size_t i = 0; i < snap.count && rc == 0; i++) {
        const struct mailbox_message *m = &snap.messages[i];
        if (m->is_gone) {
            gone++;
            continue;
        }
        /* Keyword letters mean names per folder: translate them. */
        uint32_t keywords = 0;
        for (unsigned k = 0; k < MAILDIR_KEYWORDS_MAX && m->keywords != 0; k++) {
            const char *kname = (m->keywords >> k) & 1u ? maildir_keywords_name(&src_kw, k) : NULL;
            if (kname == NULL) {
                continue;
            }
            int at = mailbox_index_keyword(dest, kname, strlen(kname));
            if (at >= 0) {
                keywords |= UINT32_C(1) << at;
            } /* else: the target has no letter left; the keyword is dropped, as Dovecot's
               * Maildir does. */
        }
        char source_path[PATH_MAX];
        if ((size_t)snprintf(source_path, sizeof(source_path), "%s/%s/%s", src_folder,
                             m->is_in_new ? "new" : "cur", m->name) >= sizeof(source_path)) {
            rc = -ENAMETOOLONG;
            break;
        }
        struct maildir_add_source source = {.path = source_path, .fd = -1, .size = m->size};
        char *base = bases + copied * (MAILDIR_NAME_BYTES_MAX + 1);
        /* \Deleted does not travel: a copy starts undeleted, as in Dovecot. */
        int arc = maildir_add(target, &source, m->flags & ~MAILDIR_FLAG_TRASHED, keywords, 0,
                              base, MAILDIR_NAME_BYTES_MAX + 1);
        if (arc == -ENOENT) {
            gone++;
            continue;
        }
        if (arc != 0) {
            rc = arc;
            break;
        }
        src_uids[copied++] = m->uid;
        if (learn_kind >= 0 && learned < IMAP_COPY_LEARN_MAX) {
            junk_learner.learn(junk_learner.ctx, source_path, learn_kind == 1);
            learned++;
        }
    }
    if (rc == 0 && copied > 0) {
        rc = maildir_add_sync(target);
    }
    if (rc != 0) {
        log_warning("imap: copy to %s: %s", target, strerror(-rc));
        /* What was linked stays: a retried COPY makes a second copy, never
         * a lost one. */
        imap_exec_no(x, rc == -ENOSPC || rc == -EDQUOT ? "[OVERQUOTA] No space left."
                                                       : "[SERVERBUG] Copy failed.");
        goto out;
    }
    uint32_t *dest_uids = calloc(copied + 1, sizeof(*dest_uids));
    const char **names = calloc(copied + 1, sizeof(*names));
    int rrc = dest_uids == NULL || names == NULL ? -ENOMEM : 0;
    for (size_t i = 0; i < copied && rrc == 0; i++) {
        names[i] = bases + i * (MAILDIR_NAME_BYTES_MAX + 1);
    }
    if (rrc == 0) {
        rrc = mailbox_index_add_files(dest, names, copied, dest_uids);
    }
    mailbox_index_adding_end(dest);
    is_adding = false;
    if (rrc != 0) {
        log_warning("imap: copy: indexing %s: %s", target, strerror(-rrc));
    }
    free(names);
    struct mailbox_status dest_status;
    mailbox_index_status(dest, &dest_status);
    bool has_all_uids = dest_uids != NULL && rrc == 0;
    for (size_t i = 0; i < copied && has_all_uids; i++) {
        has_all_uids = dest_uids[i] != 0;
    }
    char code[64];
    if (is_move) {
        if (has_all_uids && copied > 0) {
            imap_exec_printf(x, "* OK [COPYUID %u ", dest_status.uidvalidity);
            uid_list_write(x, src_uids, copied);
            imap_exec_cstr(x, " ");
            uid_list_write(x, dest_uids, copied);
            imap_exec_cstr(x, "] Moved UIDs.\r\n");
        }
        struct mailbox_snapshot moved = {0};
        moved.messages = snap.messages;
        moved.count = 0;
        /* Expunge exactly the copied ones (snap is in UID order). */
        size_t k = 0;
        for (size_t i = 0; i < snap.count && k < copied; i++) {
            if (snap.messages[i].uid == src_uids[k]) {
                snap.messages[moved.count++] = snap.messages[i];
                k++;
            }
        }
        snap.count = moved.count;
        long n = mailbox_view_expunge(x->view, &snap, true);
        if (n < 0) {
            log_warning("imap: move: expunge: %s", strerror((int)-n));
        }
        imap_exec_updates(x, true);
        imap_exec_ok(x, gone > 0 ? "[EXPUNGEISSUED] Some messages were already expunged."
                                 : "Move completed.");
    } else {
        imap_exec_updates(x, p->is_uid);
        if (gone > 0) {
            imap_exec_no(x, "[EXPUNGEISSUED] Some of the requested messages no longer exist.");
        } else if (has_all_uids && copied > 0) {
            imap_exec_write(x, x->tag.ptr, x->tag.len);
            (void)snprintf(code, sizeof(code), " OK [COPYUID %u ", dest_status.uidvalidity);
            imap_exec_cstr(x, code);
            uid_list_write(x, src_uids, copied);
            imap_exec_cstr(x, " ");
            uid_list_write(x, dest_uids, copied);
            imap_exec_cstr(x, "] Copy completed.\r\n");
        } else {
            imap_exec_ok(x, "Copy completed.");
        }
    }
    free(dest_uids);
out:
    if (is_adding) {
        mailbox_index_adding_end(dest);
    }
    free(src_uids);
    free(bases);
    mailbox_snapshot_free(&snap);
    mailbox_index_release(&dest);
}

/* A uid-set, runs compressed ("1:3,7"), in the given order. */
static void
uid_list_write(struct imap_exec *x, const uint32_t *uids, size_t count)
{
    for (size_t i = 0; i < count;) {
        size_t j = i;
        while (j + 1 < count && uids[j + 1] == uids[j] + 1) {
            j++;
        }
        if (i > 0) {
            imap_exec_cstr(x, ",");
        }
        if (j == i) {
            imap_exec_printf(x, "%u", uids[i]);
        } else {
            imap_exec_printf(x, "%u:%u", uids[i], uids[j]);
        }
        i = j + 1;
    }
}
