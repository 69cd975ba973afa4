/*
 * tests/unit/test_mailbox_index.c - the shared folder index and its views
 * on real Maildirs under a mkdtemp() root: one index per path, what two
 * sessions see of each other's STORE and EXPUNGE (expunges held back while
 * a view may not report them, its own changes not echoed), new mail pushed
 * through mailbox_index_changed_path(), changes made by another program
 * found by a refresh, \Recent claimed by the first view, and tombstones
 * dropped once every view has reported them. The body text cache: put and
 * get through a snapshot, a snapshot's reference outliving the expunge of
 * its message, the per-message and global bounds, and the global byte
 * count back where it was once the index is unloaded.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/mailbox_index.h"
#include "store/maildir_add.h"
#include "store/maildir_name.h"
#include "tests/unit/unit.h"

static char root[64];
static char box[128];

struct recorder {
    uint32_t expunged_seqs[64];
    size_t expunged_count;
    uint32_t exists;
    uint32_t recent;
    size_t exists_calls;
    uint32_t flag_uids[64];
    uint32_t flag_values[64];
    size_t flag_count;
    int notified;
};

static void
on_expunged(void *arg, uint32_t seq, uint32_t uid)
{
    struct recorder *r = arg;
    (void)uid;
    if (r->expunged_count < 64) {
        r->expunged_seqs[r->expunged_count++] = seq;
    }
}

static void
on_exists(void *arg, uint32_t exists, uint32_t recent)
{
    struct recorder *r = arg;
    r->exists = exists;
    r->recent = recent;
    r->exists_calls++;
}

static void
on_flags(void *arg, const struct mailbox_message *m)
{
    struct recorder *r = arg;
    if (r->flag_count < 64) {
        r->flag_uids[r->flag_count] = m->uid;
        r->flag_values[r->flag_count] = m->flags;
        r->flag_count++;
    }
}

static void
on_notify(struct mailbox_view *view)
{
    struct recorder *r = view->owner;
    r->notified++;
}

static void
sync_view(struct mailbox_view *view, bool may_expunge, struct recorder *r)
{
    struct mailbox_view_changes changes = {
        .arg = r, .expunged = on_expunged, .exists = on_exists, .flags = on_flags};
    r->expunged_count = 0;
    r->exists_calls = 0;
    r->flag_count = 0;
    mailbox_view_sync(view, may_expunge, &changes);
}

static void
make_dir(const char *path)
{
    if (mkdir(path, 0700) != 0) {
        perror(path);
        exit(2);
    }
}

/* Write a message file into new/ (or cur/ with flags) the way a delivery
 * agent does. */
static void
deliver(const char *sub, const char *name)
{
    char p[512];
    snprintf(p, sizeof(p), "%s/%s/%s", box, sub, name);
    int fd = open(p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    static const char msg[] = "From: a@b\r\nSubject: x\r\n\r\nhello\r\n";
    if (fd < 0 || write(fd, msg, sizeof(msg) - 1) != (ssize_t)(sizeof(msg) - 1) ||
        close(fd) != 0) {
        perror(p);
        exit(2);
    }
}

static bool
want_all(void *arg, uint32_t n)
{
    (void)arg;
    (void)n;
    return true;
}

static bool
want_one(void *arg, uint32_t n)
{
    return n == *(const uint32_t *)arg;
}

static int
rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void
test_shared_and_views(void)
{
    deliver("cur", "1000.M1P1.host,S=34,W=34:2,");
    deliver("cur", "1001.M1P1.host,S=34,W=34:2,S");
    deliver("new", "1002.M1P1.host,S=34,W=34");

    struct mailbox_index *a = NULL;
    struct mailbox_index *b = NULL;
    CHECK(mailbox_index_open(box, NULL, &a) == 0);
    CHECK(mailbox_index_open(box, NULL, &b) == 0);
    CHECK(a == b);
    CHECK(mailbox_index_loaded_count() == 1);

    struct mailbox_status st;
    mailbox_index_status(a, &st);
    CHECK(st.exists == 3);
    CHECK(st.unseen == 2);
    CHECK(st.first_unseen == 1);
    CHECK(st.uidnext == 4);
    CHECK(st.recent == 1); /* the file in new/ */

    struct recorder ra = {0};
    struct recorder rb = {0};
    struct mailbox_view va = {0};
    struct mailbox_view vb = {0};
    mailbox_view_attach(&va, a, false, on_notify, &ra);
    mailbox_view_attach(&vb, a, false, on_notify, &rb);
    mailbox_view_status(&va, &st);
    CHECK(st.exists == 3 && st.recent == 1);
    mailbox_view_status(&vb, &st);
    CHECK(st.exists == 3 && st.recent == 0); /* the first view claimed it */

    /* A sets \Deleted on message 1 and \Flagged on 2. */
    struct mailbox_snapshot snap = {0};
    uint32_t one = 1;
    CHECK(mailbox_view_collect(&va, false, want_one, &one, &snap) == 0);
    CHECK(snap.count == 1 && snap.messages[0].uid == 1);
    CHECK(mailbox_view_store(&va, &snap, MAILBOX_FLAGS_ADD, MAILDIR_FLAG_TRASHED, 0, 0) == 0);
    CHECK(snap.messages[0].flags == MAILDIR_FLAG_TRASHED);
    mailbox_snapshot_free(&snap);
    CHECK(rb.notified > 0);

    /* B sees the flag change; A does not get its own change echoed. */
    sync_view(&vb, true, &rb);
    CHECK(rb.flag_count == 1 && rb.flag_uids[0] == 1 && rb.flag_values[0] == MAILDIR_FLAG_TRASHED);
    sync_view(&va, true, &ra);
    CHECK(ra.flag_count == 0);

    /* UNCHANGEDSINCE below the message's MODSEQ: left alone. */
    CHECK(mailbox_view_collect(&vb, false, want_one, &one, &snap) == 0);
    uint64_t old_modseq = snap.messages[0].modseq;
    CHECK(mailbox_view_store(&vb, &snap, MAILBOX_FLAGS_ADD, MAILDIR_FLAG_SEEN, 0,
                             old_modseq - 1) == 0);
    CHECK(snap.messages[0].is_modified);
    mailbox_snapshot_free(&snap);

    /* The file really was renamed with the T flag. */
    char p[512];
    struct stat sb;
    snprintf(p, sizeof(p), "%s/cur/1000.M1P1.host,S=34,W=34:2,T", box);
    CHECK(stat(p, &sb) == 0);

    /* A expunges: B may not hear of it during a FETCH ... */
    CHECK(mailbox_view_expunge(&va, NULL, false) == 1);
    CHECK(stat(p, &sb) != 0 && errno == ENOENT);
    sync_view(&vb, false, &rb);
    CHECK(rb.expunged_count == 0);
    mailbox_view_status(&vb, &st);
    CHECK(st.exists == 3);
    /* ... but is told at the next NOOP, with the right sequence number. */
    sync_view(&vb, true, &rb);
    CHECK(rb.expunged_count == 1 && rb.expunged_seqs[0] == 1);
    mailbox_view_status(&vb, &st);
    CHECK(st.exists == 2);
    sync_view(&va, true, &ra);
    CHECK(ra.expunged_count == 1 && ra.expunged_seqs[0] == 1);

    /* New mail: the committer's push marks the folder dirty and notifies. */
    int before = rb.notified;
    deliver("new", "1003.M1P1.host,S=34,W=34");
    mailbox_index_changed_path(box);
    CHECK(rb.notified == before + 1);
    CHECK(mailbox_view_is_dirty(&vb));
    CHECK(mailbox_view_claim_refresh(&vb));
    CHECK(!mailbox_view_claim_refresh(&va));
    CHECK(mailbox_index_refresh(a, false, false) == 0);
    CHECK(!mailbox_view_is_dirty(&vb));
    sync_view(&vb, false, &rb);
    CHECK(rb.exists_calls == 1 && rb.exists == 3);
    CHECK(rb.recent == 1);
    CHECK(mailbox_index_uid_of_base(a, "1003.M1P1.host,S=34,W=34", 24) == 4);

    /* Another program marks message 2 seen and deletes message 3. */
    snprintf(p, sizeof(p), "%s/cur/1001.M1P1.host,S=34,W=34:2,S", box);
    char newname[512];
    snprintf(newname, sizeof(newname), "%s/cur/1001.M1P1.host,S=34,W=34:2,RS", box);
    CHECK(rename(p, newname) == 0);
    snprintf(p, sizeof(p), "%s/new/1002.M1P1.host,S=34,W=34", box);
    CHECK(unlink(p) == 0);
    CHECK(mailbox_index_refresh(a, false, false) == 0);
    sync_view(&va, true, &ra);
    CHECK(ra.expunged_count == 1 && ra.expunged_seqs[0] == 2);
    CHECK(ra.flag_count == 1 && ra.flag_uids[0] == 2);
    CHECK(ra.flag_values[0] == (MAILDIR_FLAG_REPLIED | MAILDIR_FLAG_SEEN));
    CHECK(ra.exists_calls == 1 && ra.exists == 2);

    /* Collect by UID after all this: UIDs 2 and 4 remain for A. */
    CHECK(mailbox_view_collect(&va, true, want_all, NULL, &snap) == 0);
    CHECK(snap.count == 2);
    CHECK(snap.count == 2 && snap.messages[0].uid == 2 && snap.messages[0].seq == 1);
    CHECK(snap.count == 2 && snap.messages[1].uid == 4 && snap.messages[1].seq == 2);
    CHECK(snap.count == 2 && strcmp(snap.messages[0].name, "1001.M1P1.host,S=34,W=34:2,RS") == 0);
    mailbox_snapshot_free(&snap);

    /* B has not synced since: it still shows message 3 until told. */
    mailbox_view_status(&vb, &st);
    CHECK(st.exists == 3);
    sync_view(&vb, true, &rb);
    CHECK(rb.expunged_count == 1 && rb.expunged_seqs[0] == 2);

    /* A message added and expunged before B looked is never shown to B. */
    deliver("new", "1004.M1P1.host,S=34,W=34");
    CHECK(mailbox_index_refresh(a, false, true) == 0);
    sync_view(&va, true, &ra);
    CHECK(ra.exists == 3);
    CHECK(mailbox_view_collect(&va, true, want_all, NULL, &snap) == 0);
    for (size_t i = 0; i < snap.count; i++) {
        if (snap.messages[i].uid == 5) {
            snap.messages[0] = snap.messages[i];
            snap.count = 1;
            break;
        }
    }
    CHECK(snap.count == 1 && snap.messages[0].uid == 5);
    CHECK(mailbox_view_store(&va, &snap, MAILBOX_FLAGS_ADD, MAILDIR_FLAG_TRASHED, 0, 0) == 0);
    CHECK(mailbox_view_expunge(&va, &snap, false) == 1);
    mailbox_snapshot_free(&snap);
    sync_view(&vb, false, &rb);
    CHECK(rb.exists_calls == 0); /* nothing new to announce */
    sync_view(&vb, true, &rb);
    CHECK(rb.expunged_count == 0 && rb.exists_calls == 0);
    mailbox_view_status(&vb, &st);
    CHECK(st.exists == 2);

    mailbox_view_detach(&va);
    mailbox_view_detach(&vb);
    CHECK(!mailbox_view_is_attached(&va));
    mailbox_index_release(&a);
    CHECK(mailbox_index_loaded_count() == 1);
    mailbox_index_release(&b);
    CHECK(a == NULL && b == NULL);
    /* Nobody holds it: kept for the next open, until dropped. */
    CHECK(mailbox_index_loaded_count() == 1);
    CHECK(mailbox_index_open(box, NULL, &a) == 0);
    CHECK(mailbox_index_loaded_count() == 1);
    mailbox_index_release(&a);
    CHECK(mailbox_index_drop_idle() == 1);
    CHECK(mailbox_index_loaded_count() == 0);
}

static void
test_move_new_and_missing(void)
{
    struct mailbox_index *idx = NULL;
    char missing[256];
    snprintf(missing, sizeof(missing), "%s/nothere", root);
    CHECK(mailbox_index_open(missing, NULL, &idx) == -ENOENT);
    CHECK(idx == NULL);
    CHECK(mailbox_index_loaded_count() == 0);

    deliver("new", "1005.M1P1.host,S=34,W=34");
    CHECK(mailbox_index_open(box, NULL, &idx) == 0);
    CHECK(mailbox_index_refresh(idx, true, false) == 0);
    char p[512];
    struct stat sb;
    snprintf(p, sizeof(p), "%s/cur/1005.M1P1.host,S=34,W=34:2,", box);
    CHECK(stat(p, &sb) == 0);
    struct mailbox_view v = {0};
    struct recorder r = {0};
    mailbox_view_attach(&v, idx, true, on_notify, &r);
    struct mailbox_status st;
    mailbox_view_status(&v, &st);
    CHECK(st.exists == 3);
    CHECK(st.recent == 2); /* 1003 and 1005 were still in new/ at load */
    mailbox_view_detach(&v);
    mailbox_index_release(&idx);
    CHECK(mailbox_index_drop_idle() == 1);
}

/* MODSEQs survive the index being dropped and loaded again (a restart):
 * unchanged messages keep theirs, HIGHESTMODSEQ never goes back, and a
 * toaster-modseq file for another UIDVALIDITY is not trusted. */
static void
test_modseq_persistent(void)
{
    struct mailbox_index *idx = NULL;
    CHECK(mailbox_index_open(box, NULL, &idx) == 0);
    struct mailbox_view v = {0};
    struct recorder r = {0};
    mailbox_view_attach(&v, idx, false, on_notify, &r);
    struct mailbox_snapshot snap = {0};
    CHECK(mailbox_view_collect(&v, true, want_all, NULL, &snap) == 0);
    CHECK(snap.count >= 2);
    uint64_t first = snap.messages[0].modseq;
    uint64_t second_before = snap.count >= 2 ? snap.messages[1].modseq : 0;
    snap.messages[0] = snap.messages[snap.count - 1];
    snap.count = 1;
    CHECK(mailbox_view_store(&v, &snap, MAILBOX_FLAGS_ADD, MAILDIR_FLAG_FLAGGED, 0, 0) == 0);
    uint32_t changed_uid = snap.messages[0].uid;
    uint64_t changed = snap.messages[0].modseq;
    mailbox_snapshot_free(&snap);
    struct mailbox_status st;
    mailbox_view_status(&v, &st);
    uint64_t highest = st.highest_modseq;
    CHECK(highest == changed);
    mailbox_view_detach(&v);
    mailbox_index_release(&idx);
    CHECK(mailbox_index_drop_idle() == 1); /* as after a restart */
    CHECK(mailbox_index_loaded_count() == 0);

    CHECK(mailbox_index_open(box, NULL, &idx) == 0);
    mailbox_view_attach(&v, idx, false, on_notify, &r);
    mailbox_view_status(&v, &st);
    CHECK(st.highest_modseq == highest);
    CHECK(mailbox_view_collect(&v, true, want_all, NULL, &snap) == 0);
    for (size_t i = 0; i < snap.count; i++) {
        if (snap.messages[i].uid == changed_uid) {
            CHECK(snap.messages[i].modseq == changed);
        } else if (i == 0) {
            CHECK(snap.messages[i].modseq == first);
        } else if (i == 1) {
            CHECK(snap.messages[i].modseq == second_before);
        }
    }
    mailbox_snapshot_free(&snap);
    mailbox_view_detach(&v);
    mailbox_index_release(&idx);
    CHECK(mailbox_index_drop_idle() == 1);

    /* A file for another UIDVALIDITY: start over above everything. */
    char p[512];
    snprintf(p, sizeof(p), "%s/toaster-modseq", box);
    FILE *f = fopen(p, "w");
    CHECK(f != NULL);
    if (f != NULL) {
        fprintf(f, "toaster-modseq 1 12345 7\n1 9\n");
        fclose(f);
    }
    CHECK(mailbox_index_open(box, NULL, &idx) == 0);
    mailbox_index_status(idx, &st);
    CHECK(st.highest_modseq > highest);
    mailbox_index_release(&idx);
    CHECK(mailbox_index_drop_idle() == 1);
}

/* APPEND and COPY give their files UIDs without a rescan; a later full
 * sync (ours after a restart, or Dovecot's) finds the same UIDs in
 * dovecot-uidlist; a uidlist changed behind the index's back makes it fall
 * back to a full refresh. */
static void
test_add_files(void)
{
    struct mailbox_index *idx = NULL;
    CHECK(mailbox_index_open(box, NULL, &idx) == 0);
    struct mailbox_status st;
    mailbox_index_status(idx, &st);
    uint32_t next = st.uidnext;
    static const char msg[] = "Subject: added\r\n\r\nbody\r\n";
    char names_buf[2][256];
    const char *names[2];
    for (int i = 0; i < 2; i++) {
        struct maildir_add_source src = {.fd = -1, .bytes = msg, .size = sizeof(msg) - 1};
        CHECK(maildir_add(box, &src, i == 0 ? MAILDIR_FLAG_SEEN : 0, 0, 0, names_buf[i],
                          sizeof(names_buf[i])) == 0);
        names[i] = names_buf[i];
    }
    uint32_t uids[2] = {0, 0};
    CHECK(mailbox_index_add_files(idx, names, 2, uids) == 0);
    CHECK(uids[0] == next && uids[1] == next + 1);
    mailbox_index_status(idx, &st);
    CHECK(st.uidnext == next + 2);
    mailbox_index_release(&idx);
    CHECK(mailbox_index_drop_idle() == 1);
    /* A full load reads the same UIDs back. */
    CHECK(mailbox_index_open(box, NULL, &idx) == 0);
    size_t base0 = strcspn(names[0], ":");
    size_t base1 = strcspn(names[1], ":");
    CHECK(mailbox_index_uid_of_base(idx, names[0], base0) == next);
    CHECK(mailbox_index_uid_of_base(idx, names[1], base1) == next + 1);
    /* Another writer adds a message in new/ meanwhile: the next add finds
     * the folder changed and refreshes, and still knows every UID. */
    deliver("new", "2000.M1P1.host,S=34,W=34");
    char extra_buf[256];
    struct maildir_add_source src = {.fd = -1, .bytes = msg, .size = sizeof(msg) - 1};
    CHECK(maildir_add(box, &src, 0, 0, 0, extra_buf, sizeof(extra_buf)) == 0);
    const char *extra = extra_buf;
    uint32_t uid = 0;
    CHECK(mailbox_index_add_files(idx, &extra, 1, &uid) == 0);
    CHECK(uid != 0);
    CHECK(mailbox_index_uid_of_base(idx, "2000.M1P1.host,S=34,W=34", 24) != 0);
    mailbox_index_release(&idx);
    CHECK(mailbox_index_drop_idle() == 1);
}


/* The body text cache. */
static void
test_body_text(void)
{
    size_t base = mailbox_index_body_text_cache_bytes();
    deliver("cur", "3000.M1P1.host,S=34,W=34:2,");
    deliver("cur", "3001.M1P1.host,S=34,W=34:2,");
    deliver("cur", "3002.M1P1.host,S=34,W=34:2,");
    struct mailbox_index *idx = NULL;
    CHECK(mailbox_index_open(box, NULL, &idx) == 0);
    CHECK(mailbox_index_refresh(idx, false, true) == 0);
    struct mailbox_view view = {0};
    struct recorder r = {0};
    mailbox_view_attach(&view, idx, false, on_notify, &r);
    struct mailbox_snapshot snap = {0};
    CHECK(mailbox_view_collect(&view, false, want_all, NULL, &snap) == 0);
    CHECK(snap.count >= 3);
    uint32_t uid_a = 0;
    uint32_t uid_b = 0;
    uint32_t uid_c = 0;
    for (size_t i = 0; i < snap.count; i++) {
        const char *n = snap.messages[i].name;
        uint32_t *which = strncmp(n, "3000.", 5) == 0   ? &uid_a
                          : strncmp(n, "3001.", 5) == 0 ? &uid_b
                          : strncmp(n, "3002.", 5) == 0 ? &uid_c
                                                         : NULL;
        if (which != NULL) {
            *which = snap.messages[i].uid;
        }
        CHECK(snap.messages[i].body_text == NULL);
    }
    mailbox_snapshot_free(&snap);
    CHECK(uid_a != 0 && uid_b != 0 && uid_c != 0);

    /* Put, then get through a snapshot that asks for it (and only then). */
    static const char text[] = "hello body\xff"
                               "from: inner";
    mailbox_index_body_text_put(idx, uid_a, text, sizeof(text) - 1, 10);
    size_t one = mailbox_index_body_text_cache_bytes() - base;
    CHECK(one >= sizeof(text) - 1);
    mailbox_index_body_text_put(idx, uid_a, "other", 5, 5); /* has one: ignored */
    CHECK(mailbox_index_body_text_cache_bytes() == base + one);
    snap.is_with_body_text = true;
    CHECK(mailbox_view_collect(&view, false, want_all, NULL, &snap) == 0);
    const struct mailbox_body_text *held = NULL;
    for (size_t i = 0; i < snap.count; i++) {
        const struct mailbox_message *m = &snap.messages[i];
        CHECK((m->body_text != NULL) == (m->uid == uid_a));
        if (m->uid == uid_a) {
            held = m->body_text;
        }
    }
    CHECK(held != NULL);
    struct mailbox_snapshot plain = {0};
    CHECK(mailbox_view_collect(&view, false, want_all, NULL, &plain) == 0);
    for (size_t i = 0; i < plain.count; i++) {
        CHECK(plain.messages[i].body_text == NULL);
    }
    mailbox_snapshot_free(&plain);

    /* The message is expunged (another program removed its file): the
     * index lets go of its text, the snapshot's reference keeps it. */
    char p[512];
    snprintf(p, sizeof(p), "%s/cur/3000.M1P1.host,S=34,W=34:2,", box);
    CHECK(unlink(p) == 0);
    CHECK(mailbox_index_refresh(idx, false, true) == 0);
    sync_view(&view, true, &r);
    CHECK(mailbox_index_body_text_cache_bytes() == base + one);
    if (held != NULL) {
        size_t len;
        size_t body_len;
        const char *bytes = mailbox_body_text_bytes(held, &len, &body_len);
        CHECK_BYTES(bytes, len, text, sizeof(text) - 1);
        CHECK(body_len == 10);
    }
    mailbox_snapshot_free(&snap);
    CHECK(mailbox_index_body_text_cache_bytes() == base);
    /* And the gone message takes no new one. */
    mailbox_index_body_text_put(idx, uid_a, text, sizeof(text) - 1, 10);
    CHECK(mailbox_index_body_text_cache_bytes() == base);

    /* Per message: MAILBOX_BODY_TEXT_BYTES_MAX fits, one more does not
     * (and the message is marked so nobody makes it again). */
    static char big[MAILBOX_BODY_TEXT_BYTES_MAX + 1];
    memset(big, 'x', sizeof(big));
    mailbox_index_body_text_put(idx, uid_b, big, sizeof(big), sizeof(big));
    CHECK(mailbox_index_body_text_cache_bytes() == base);
    mailbox_index_body_text_put(idx, uid_c, big, sizeof(big) - 1, sizeof(big) - 1);
    size_t max_one = mailbox_index_body_text_cache_bytes() - base;
    CHECK(max_one >= MAILBOX_BODY_TEXT_BYTES_MAX);
    snap.is_with_body_text = true;
    CHECK(mailbox_view_collect(&view, false, want_all, NULL, &snap) == 0);
    for (size_t i = 0; i < snap.count; i++) {
        const struct mailbox_message *m = &snap.messages[i];
        CHECK(m->is_body_text_too_large == (m->uid == uid_b));
        CHECK((m->body_text != NULL) == (m->uid == uid_c));
    }
    mailbox_snapshot_free(&snap);

    /* Global: with the bound lowered to what is cached plus a little less
     * than one more text, nothing more is cached; at exactly one more it
     * is. */
    mailbox_index_body_text_cache_bytes_max_set(base + max_one + one - 1);
    /* uid_b was too large; a small text for a message without one: */
    deliver("cur", "3003.M1P1.host,S=34,W=34:2,");
    CHECK(mailbox_index_refresh(idx, false, true) == 0);
    sync_view(&view, true, &r);
    uint32_t uid_d = 0;
    CHECK(mailbox_view_collect(&view, false, want_all, NULL, &snap) == 0);
    for (size_t i = 0; i < snap.count; i++) {
        if (strncmp(snap.messages[i].name, "3003.", 5) == 0) {
            uid_d = snap.messages[i].uid;
        }
    }
    mailbox_snapshot_free(&snap);
    CHECK(uid_d != 0);
    mailbox_index_body_text_put(idx, uid_d, text, sizeof(text) - 1, 10);
    CHECK(mailbox_index_body_text_cache_bytes() == base + max_one);
    mailbox_index_body_text_cache_bytes_max_set(base + max_one + one);
    mailbox_index_body_text_put(idx, uid_d, text, sizeof(text) - 1, 10);
    CHECK(mailbox_index_body_text_cache_bytes() == base + max_one + one);
    mailbox_index_body_text_cache_bytes_max_set(SIZE_MAX);

    /* Unloading the index frees every text; a snapshot still holding one
     * keeps it until freed. */
    snap.is_with_body_text = true;
    CHECK(mailbox_view_collect(&view, false, want_all, NULL, &snap) == 0);
    mailbox_view_detach(&view);
    mailbox_index_release(&idx);
    CHECK(mailbox_index_drop_idle() == 1);
    CHECK(mailbox_index_body_text_cache_bytes() == base + max_one + one);
    mailbox_snapshot_free(&snap);
    CHECK(mailbox_index_body_text_cache_bytes() == base);
}

int main(void);

int
main(void)
{
    snprintf(root, sizeof(root), "/tmp/toaster-index-XXXXXX");
    if (mkdtemp(root) == NULL) {
        perror("mkdtemp");
        return 2;
    }
    snprintf(box, sizeof(box), "%s/Maildir", root);
    make_dir(box);
    char p[256];
    static const char *const subs[] = {"cur", "new", "tmp"};
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof(p), "%s/%s", box, subs[i]);
        make_dir(p);
    }
    test_shared_and_views();
    test_move_new_and_missing();
    test_modseq_persistent();
    test_add_files();
    test_body_text();
    if (nftw(root, rm_one, 16, FTW_DEPTH | FTW_PHYS) != 0) {
        perror(root);
    }
    UNIT_DONE();
}
