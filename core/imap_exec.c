/*
 * core/imap_exec.c - dispatch of IMAP mailbox commands on a worker, and
 * the response writers the command files share (see imap_exec.h).
 *
 * Owns the command's output buffer (grown on the worker, freed by
 * imap_exec_finish) and the untagged-update writer for the selected
 * mailbox. Runs on worker threads.
 */
#define _GNU_SOURCE
#include "core/imap_exec.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/assertions.h"
#include "core/log.h"
#include "core/mutf7.h"
#include "proto/imap/imap_seqset.h"
#include "store/maildir_folders.h"
#include "store/maildir_name.h"

/* Output never grows past this in one step: a FETCH step stops adding
 * messages at IMAP_EXEC_STEP_BYTES, and one message's answer without its
 * literal bodies (sent from the message bytes) stays far below. */
#define IMAP_EXEC_OUT_BYTES_MAX (256u * 1024 * 1024)

static bool out_reserve(struct imap_exec *x, size_t more);
static int crlf_copy(struct imap_exec_file *f);
static int file_read(int fd, size_t size, struct imap_exec_file *f);
static void message_date_set(struct imap_message *msg, time_t when);

/* Each worker's buffer for the message it is reading (imap_exec_file_open). */
#define IMAP_EXEC_READ_KEEP_BYTES (4u * 1024 * 1024)
static _Thread_local char *read_buffer;
static _Thread_local size_t read_buffer_cap;
/* Frees a worker's buffer when the worker thread ends. */
static pthread_key_t read_buffer_key;
static pthread_once_t read_buffer_once = PTHREAD_ONCE_INIT;

static void
read_buffer_key_make(void)
{
    int rc = pthread_key_create(&read_buffer_key, free);
    ASSERT(rc == 0);
}
static void header_cache_fill(struct imap_exec *x, const struct mailbox_message *m,
                              const char *data, size_t len);
static void view_sync(struct imap_exec *x, bool may_expunge);
static void updates_expunged(void *arg, uint32_t seq, uint32_t uid);
static void updates_exists(void *arg, uint32_t exists, uint32_t recent);
static void updates_flags(void *arg, const struct mailbox_message *m);

void
imap_exec_run(struct imap_exec *x)
{
    ASSERT(x != NULL && x->root != NULL && x->view != NULL);
    x->is_more = false;
    if (x->is_idle_done) {
        imap_cmd_idle(x);
        return;
    }
    ASSERT(x->command != NULL);
    switch (x->command->command) {
    case IMAP_CMD_SELECT:
    case IMAP_CMD_EXAMINE:
        imap_cmd_select(x);
        break;
    case IMAP_CMD_CLOSE:
    case IMAP_CMD_UNSELECT:
        imap_cmd_close(x);
        break;
    case IMAP_CMD_NOOP:
    case IMAP_CMD_CHECK:
        imap_cmd_noop(x);
        break;
    case IMAP_CMD_IDLE:
        imap_cmd_idle(x);
        break;
    case IMAP_CMD_EXPUNGE:
        imap_cmd_expunge(x);
        break;
    case IMAP_CMD_LIST:
    case IMAP_CMD_LSUB:
        imap_cmd_list(x);
        break;
    case IMAP_CMD_STATUS:
        imap_cmd_status(x);
        break;
    case IMAP_CMD_CREATE:
    case IMAP_CMD_DELETE:
    case IMAP_CMD_RENAME:
        imap_cmd_folder(x);
        break;
    case IMAP_CMD_SUBSCRIBE:
    case IMAP_CMD_UNSUBSCRIBE:
        imap_cmd_subscribe(x);
        break;
    case IMAP_CMD_FETCH:
        imap_cmd_fetch(x);
        break;
    case IMAP_CMD_STORE:
        imap_cmd_store(x);
        break;
    case IMAP_CMD_SEARCH:
        imap_cmd_search(x);
        break;
    case IMAP_CMD_COPY:
    case IMAP_CMD_MOVE:
        imap_cmd_copy(x);
        break;
    case IMAP_CMD_APPEND:
        imap_cmd_append(x);
        break;
    default:
        /* The session forwards only the commands above. */
        ASSERT(false);
    }
}

void
imap_exec_push(struct imap_exec *x)
{
    ASSERT(x != NULL && x->view != NULL);
    x->is_more = false;
    if (!mailbox_view_is_attached(x->view)) {
        return;
    }
    if (mailbox_view_is_dirty(x->view)) {
        int rc = mailbox_index_refresh(mailbox_view_index(x->view), false, false);
        if (rc != 0 && rc != -EAGAIN) {
            log_warning("%s: refresh: %s", mailbox_index_path(mailbox_view_index(x->view)),
                        strerror(-rc));
        }
    }
    view_sync(x, true);
}

void
imap_exec_finish(struct imap_exec *x)
{
    ASSERT(x != NULL);
    if (x->state != NULL) {
        ASSERT(x->state_free != NULL);
        x->state_free(x->state);
        x->state = NULL;
    }
    if (x->index_to_attach != NULL) {
        mailbox_index_release(&x->index_to_attach);
    }
    imap_exec_output_reset(x);
    free(x->out);
    x->out = NULL;
    x->out_cap = 0;
    free(x->ranges);
    x->ranges = NULL;
    x->range_cap = 0;
}

void
imap_exec_output_reset(struct imap_exec *x)
{
    ASSERT(x != NULL);
    for (uint32_t i = 0; i < x->file_count; i++) {
        /* Read-only files: closing never waits for the disk. */
        (void)close(x->files[i]);
    }
    x->file_count = 0;
    x->out_len = 0;
    x->range_count = 0;
    x->range_bytes = 0;
}

bool
imap_exec_step_is_full(const struct imap_exec *x)
{
    return x->out_len >= IMAP_EXEC_STEP_BYTES || x->file_count >= IMAP_EXEC_STEP_FILES ||
           x->range_bytes >= IMAP_EXEC_STEP_RANGE_BYTES;
}

/* ---- writers ------------------------------------------------------------- */

void
imap_exec_write(struct imap_exec *x, const char *bytes, size_t len)
{
    if (len == 0 || !out_reserve(x, len)) {
        return;
    }
    memcpy(x->out + x->out_len, bytes, len);
    x->out_len += len;
}

void
imap_exec_cstr(struct imap_exec *x, const char *text)
{
    imap_exec_write(x, text, strlen(text));
}

void
imap_exec_printf(struct imap_exec *x, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    /* Callers format numbers and short fixed texts only. */
    ASSERT(n >= 0 && (size_t)n < sizeof(line));
    imap_exec_write(x, line, (size_t)n);
}

struct imap_out
imap_exec_out_begin(struct imap_exec *x, size_t want)
{
    struct imap_out out;
    if (!out_reserve(x, want)) {
        imap_out_init(&out, NULL, 0);
        return out;
    }
    imap_out_init(&out, x->out + x->out_len, x->out_cap - x->out_len);
    return out;
}

void
imap_exec_out_commit(struct imap_exec *x, const struct imap_out *out)
{
    if (out->is_overflow || out->buf == NULL) {
        return;
    }
    ASSERT(out->buf == x->out + x->out_len);
    ASSERT(out->len <= x->out_cap - x->out_len);
    x->out_len += out->len;
}

static void
tagged(struct imap_exec *x, const char *status, const char *text)
{
    imap_exec_write(x, x->tag.ptr, x->tag.len);
    imap_exec_cstr(x, " ");
    imap_exec_cstr(x, status);
    imap_exec_cstr(x, " ");
    imap_exec_cstr(x, text);
    imap_exec_cstr(x, "\r\n");
}

void
imap_exec_ok(struct imap_exec *x, const char *text)
{
    tagged(x, "OK", text);
}

void
imap_exec_no(struct imap_exec *x, const char *text)
{
    tagged(x, "NO", text);
}

void
imap_exec_bad(struct imap_exec *x, const char *text)
{
    tagged(x, "BAD", text);
}

static int mailbox_arg(struct imap_exec *x, uint32_t node, char *out, size_t out_bytes,
                       bool is_create);

int
imap_exec_mailbox_arg(struct imap_exec *x, uint32_t node, char *out, size_t out_bytes)
{
    return mailbox_arg(x, node, out, out_bytes, false);
}

int
imap_exec_mailbox_arg_create(struct imap_exec *x, uint32_t node, char *out, size_t out_bytes)
{
    return mailbox_arg(x, node, out, out_bytes, true);
}

static int
mailbox_arg(struct imap_exec *x, uint32_t node, char *out, size_t out_bytes, bool is_create)
{
    const struct imap_parsed *p = x->command;
    ASSERT(node < p->node_count);
    const struct imap_node *n = &p->nodes[node];
    if (!imap_node_is_string(n) || (n->flags & (IMAP_NODE_F_NUL | IMAP_NODE_F_BINARY)) != 0) {
        imap_exec_bad(x, "Invalid mailbox name.");
        return -EINVAL;
    }
    char raw[MAILDIR_FOLDERS_NAME_BYTES_MAX * 2 + 16];
    size_t raw_len;
    if (n->kind == IMAP_NODE_QUOTED && (n->flags & IMAP_NODE_F_ESCAPED) != 0) {
        long r = imap_parser_unquote(n->text, raw, sizeof(raw) - 1);
        if (r < 0) {
            imap_exec_no(x, "[CANNOT] Mailbox name too long.");
            return -EINVAL;
        }
        raw_len = (size_t)r;
    } else {
        if (n->text.len >= sizeof(raw)) {
            imap_exec_no(x, "[CANNOT] Mailbox name too long.");
            return -EINVAL;
        }
        memcpy(raw, n->text.ptr, n->text.len);
        raw_len = n->text.len;
    }
    if (is_create && raw_len > 1 && raw[raw_len - 1] == '.') {
        raw_len--;
    }
    raw[raw_len] = '\0';
    size_t len = raw_len;
    bool is_8bit = false;
    for (size_t i = 0; i < raw_len; i++) {
        is_8bit |= (unsigned char)raw[i] >= 0x80;
    }
    if (is_8bit) {
        /* Only UTF8=ACCEPT clients may send UTF-8 names (the parser
         * refused 8-bit bytes otherwise); store them as mUTF-7. */
        if (mutf7_encode(span_make(raw, raw_len), out, out_bytes, &len) != 0) {
            imap_exec_no(x, "[CANNOT] Invalid mailbox name.");
            return -EINVAL;
        }
    } else {
        if (!mutf7_is_valid(span_make(raw, raw_len))) {
            imap_exec_no(x, "[CANNOT] Mailbox name is not valid modified UTF-7.");
            return -EINVAL;
        }
        if (raw_len >= out_bytes) {
            imap_exec_no(x, "[CANNOT] Mailbox name too long.");
            return -EINVAL;
        }
        memcpy(out, raw, raw_len + 1);
    }
    out[len] = '\0';
    /* INBOX is case-insensitive, and so is its prefix for its children. */
    if (len >= 5 && strncasecmp(out, "INBOX", 5) == 0 && (len == 5 || out[5] == '.')) {
        memcpy(out, "INBOX", 5);
    }
    if (maildir_folders_name_check(out, len) != 0) {
        imap_exec_no(x, "[CANNOT] Invalid mailbox name.");
        return -EINVAL;
    }
    return 0;
}

void
imap_exec_mailbox_write(struct imap_exec *x, const char *name)
{
    size_t len = strlen(name);
    struct imap_out out = imap_exec_out_begin(x, len * 4 + 32);
    if (x->enabled & IMAP_ENABLED_UTF8_ACCEPT) {
        char utf8[MAILDIR_FOLDERS_NAME_BYTES_MAX * 4 + 16];
        size_t utf8_len = 0;
        if (mutf7_decode(span_make(name, len), utf8, sizeof(utf8), &utf8_len) == 0) {
            imap_out_astring(&out, utf8, utf8_len, IMAP_QUOTE_UTF8);
            imap_exec_out_commit(x, &out);
            return;
        }
    }
    imap_out_astring(&out, name, len, 0);
    imap_exec_out_commit(x, &out);
}

int
imap_exec_target_open(struct imap_exec *x, uint32_t node, char *path_out, size_t path_bytes,
                      struct mailbox_index **index_out)
{
    char name[MAILDIR_FOLDERS_NAME_BYTES_MAX + 1];
    if (imap_exec_mailbox_arg(x, node, name, sizeof(name)) != 0) {
        return -EINVAL;
    }
    if (imap_exec_folder_path(x, name, path_out, path_bytes) != 0) {
        imap_exec_no(x, "[CANNOT] Invalid mailbox name.");
        return -EINVAL;
    }
    int rc = mailbox_index_open(path_out, x->root, index_out);
    if (rc == 0) {
        return 0;
    }
    if (rc == -ENOENT) {
        imap_exec_no(x, "[TRYCREATE] Mailbox doesn't exist.");
    } else if (rc == -EAGAIN) {
        imap_exec_no(x, "[INUSE] Mailbox is locked, try again.");
    } else {
        log_warning("imap: %s to %s: %s", imap_command_name(x->command->command), path_out,
                    strerror(-rc));
        imap_exec_no(x, "[SERVERBUG] Internal error opening the mailbox.");
    }
    return rc;
}

int
imap_exec_folder_path(const struct imap_exec *x, const char *name, char *out, size_t out_bytes)
{
    return maildir_folders_path(x->root, name, out, out_bytes);
}

/* ---- untagged updates ------------------------------------------------------ */

void
imap_exec_updates(struct imap_exec *x, bool may_expunge)
{
    if (!mailbox_view_is_attached(x->view)) {
        return;
    }
    int rc = mailbox_index_refresh(mailbox_view_index(x->view), false, false);
    if (rc != 0 && rc != -EAGAIN) {
        log_warning("%s: refresh: %s", mailbox_index_path(mailbox_view_index(x->view)),
                    strerror(-rc));
    }
    view_sync(x, may_expunge);
}

/* The callbacks run under the index lock: the keyword table they show is
 * copied before. */
static void
view_sync(struct imap_exec *x, bool may_expunge)
{
    struct maildir_keywords names;
    mailbox_index_keywords(mailbox_view_index(x->view), &names);
    x->sync_keywords = &names;
    struct mailbox_view_changes changes = {
        .arg = x,
        .expunged = updates_expunged,
        .exists = updates_exists,
        .flags = updates_flags,
    };
    mailbox_view_sync(x->view, may_expunge, &changes);
    x->sync_keywords = NULL;
}

static void
updates_expunged(void *arg, uint32_t seq, uint32_t uid)
{
    struct imap_exec *x = arg;
    (void)uid;
    /* QRESYNC clients get VANISHED; collecting them into one response is
     * left to a later step, one line per UID is correct too. */
    if (x->enabled & IMAP_ENABLED_QRESYNC) {
        imap_exec_printf(x, "* VANISHED %u\r\n", uid);
    } else {
        imap_exec_printf(x, "* %u EXPUNGE\r\n", seq);
    }
}

static void
updates_exists(void *arg, uint32_t exists, uint32_t recent)
{
    struct imap_exec *x = arg;
    imap_exec_printf(x, "* %u EXISTS\r\n", exists);
    if ((x->enabled & IMAP_ENABLED_IMAP4REV2) == 0) {
        imap_exec_printf(x, "* %u RECENT\r\n", recent);
    }
}

static void
updates_flags(void *arg, const struct mailbox_message *m)
{
    struct imap_exec *x = arg;
    imap_exec_fetch_flags(x, m, (x->enabled & IMAP_ENABLED_QRESYNC) != 0,
                          (x->enabled & IMAP_ENABLED_CONDSTORE) != 0);
}

static bool
seqset_wants(void *arg, uint32_t n)
{
    return imap_seqset_contains(arg, n);
}

int
imap_exec_collect(struct imap_exec *x, uint32_t node, bool by_uid,
                  struct mailbox_snapshot *snapshot)
{
    const struct imap_node *n = &x->command->nodes[node];
    if (n->kind != IMAP_NODE_ATOM) {
        imap_exec_bad(x, "Invalid message set.");
        return -EINVAL;
    }
    struct imap_seq_range *ranges = malloc(IMAP_SEQSET_ARRAY_LEN_DEFAULT * sizeof(*ranges));
    if (ranges == NULL) {
        imap_exec_no(x, "[SERVERBUG] Out of memory.");
        return -ENOMEM;
    }
    struct imap_seqset set;
    imap_seqset_init(&set, ranges, IMAP_SEQSET_ARRAY_LEN_DEFAULT);
    enum imap_seqset_result r = imap_seqset_parse(&set, n->text);
    if (r != IMAP_SEQSET_OK || set.is_searchres) {
        free(ranges);
        imap_exec_bad(x, r == IMAP_SEQSET_TOO_MANY ? "Message set has too many ranges."
                                                   : "Invalid message set.");
        return -EINVAL;
    }
    struct mailbox_status st;
    mailbox_view_status(x->view, &st);
    imap_seqset_resolve(&set, by_uid ? st.uid_max : st.exists);
    if (!by_uid && imap_seqset_max(&set) > st.exists) {
        free(ranges);
        imap_exec_bad(x, "Invalid message set: no such message.");
        return -EINVAL;
    }
    int rc = mailbox_view_collect(x->view, by_uid, seqset_wants, &set, snapshot);
    free(ranges);
    if (rc != 0) {
        imap_exec_no(x, "[SERVERBUG] Out of memory.");
        return rc;
    }
    return 0;
}

void
imap_exec_fetch_flags(struct imap_exec *x, const struct mailbox_message *m, bool with_uid,
                      bool with_modseq)
{
    /* Inside mailbox_view_sync() (the index lock is held) the table was
     * copied beforehand; elsewhere it is read now. */
    struct maildir_keywords names;
    if (m->keywords != 0 && x->sync_keywords == NULL) {
        mailbox_index_keywords(mailbox_view_index(x->view), &names);
    }
    imap_exec_printf(x, "* %u FETCH (", m->seq);
    if (with_uid) {
        imap_exec_printf(x, "UID %u ", m->uid);
    }
    imap_exec_cstr(x, "FLAGS (");
    imap_exec_flags_write(x, m->flags, m->keywords,
                          m->is_recent && (x->enabled & IMAP_ENABLED_IMAP4REV2) == 0,
                          m->keywords == 0           ? NULL
                          : x->sync_keywords != NULL ? x->sync_keywords
                                                     : &names);
    imap_exec_cstr(x, ")");
    if (with_modseq) {
        imap_exec_printf(x, " MODSEQ (%llu)", (unsigned long long)m->modseq);
    }
    imap_exec_cstr(x, ")\r\n");
}

void
imap_exec_flags_write(struct imap_exec *x, uint32_t maildir_flags, uint32_t keywords,
                      bool is_recent, const struct maildir_keywords *names)
{
    static const struct {
        uint32_t bit;
        const char *name;
    } system[] = {
        {MAILDIR_FLAG_SEEN, "\\Seen"},       {MAILDIR_FLAG_REPLIED, "\\Answered"},
        {MAILDIR_FLAG_FLAGGED, "\\Flagged"}, {MAILDIR_FLAG_TRASHED, "\\Deleted"},
        {MAILDIR_FLAG_DRAFT, "\\Draft"},
    };
    bool is_first = true;
    for (size_t i = 0; i < sizeof(system) / sizeof(system[0]); i++) {
        if (maildir_flags & system[i].bit) {
            imap_exec_cstr(x, is_first ? "" : " ");
            imap_exec_cstr(x, system[i].name);
            is_first = false;
        }
    }
    if (is_recent) {
        imap_exec_cstr(x, is_first ? "\\Recent" : " \\Recent");
        is_first = false;
    }
    for (unsigned k = 0; k < MAILDIR_KEYWORDS_MAX && names != NULL; k++) {
        const char *name = (keywords >> k) & 1u ? maildir_keywords_name(names, k) : NULL;
        if (name != NULL) {
            imap_exec_cstr(x, is_first ? "" : " ");
            imap_exec_cstr(x, name);
            is_first = false;
        }
    }
}

/* A flag list "(\Seen $Label)" or a single flag; keywords get their
 * letter (added to dovecot-keywords when new). */
int
imap_exec_flags_parse(struct imap_exec *x, uint32_t node, struct mailbox_index *index,
                      uint32_t *flags_out, uint32_t *keywords_out)
{
    const struct imap_parsed *p = x->command;
    uint32_t first = node;
    uint32_t count = 1;
    if (p->nodes[node].kind == IMAP_NODE_LIST) {
        first = imap_node_first_child(p, node);
        count = p->nodes[node].child_count;
        if (!x->is_flags_trailing_ok && imap_node_next(p, node) != IMAP_NODE_NONE) {
            imap_exec_bad(x, "Invalid flag list.");
            return -EINVAL;
        }
    } else {
        /* RFC 3501 also allows the flags unparenthesised. */
        count = 0;
        for (uint32_t i = node; i != IMAP_NODE_NONE; i = imap_node_next(p, i)) {
            count++;
        }
    }
    uint32_t i = first;
    for (uint32_t n = 0; n < count && i != IMAP_NODE_NONE; n++, i = imap_node_next(p, i)) {
        const struct imap_node *f = &p->nodes[i];
        if (f->kind != IMAP_NODE_ATOM || f->text.len == 0) {
            imap_exec_bad(x, "Invalid flag.");
            return -EINVAL;
        }
        if (f->text.ptr[0] == '\\') {
            static const struct {
                const char *name;
                uint32_t bit;
            } system[] = {
                {"\\Seen", MAILDIR_FLAG_SEEN},       {"\\Answered", MAILDIR_FLAG_REPLIED},
                {"\\Flagged", MAILDIR_FLAG_FLAGGED}, {"\\Deleted", MAILDIR_FLAG_TRASHED},
                {"\\Draft", MAILDIR_FLAG_DRAFT},
            };
            uint32_t bit = 0;
            for (size_t k = 0; k < sizeof(system) / sizeof(system[0]); k++) {
                if (span_equals_nocase(f->text, system[k].name)) {
                    bit = system[k].bit;
                }
            }
            if (bit == 0) {
                if (span_equals_nocase(f->text, "\\Recent")) {
                    continue; /* the server's to set; ignored as Dovecot does */
                }
                imap_exec_bad(x, "Invalid system flag.");
                return -EINVAL;
            }
            *flags_out |= bit;
            continue;
        }
        int k = mailbox_index_keyword(index, f->text.ptr, f->text.len);
        if (k == -EINVAL) {
            imap_exec_bad(x, "Invalid keyword.");
            return -EINVAL;
        }
        if (k == -ENOSPC) {
            imap_exec_no(x, "[LIMIT] Too many keywords in this mailbox.");
            return -ENOSPC;
        }
        if (k < 0) {
            log_warning("imap: store: adding keyword: %s", strerror(-k));
            imap_exec_no(x, k == -EAGAIN ? "[INUSE] Keywords are being changed, try again."
                                         : "[SERVERBUG] Cannot add the keyword.");
            return k;
        }
        *keywords_out |= UINT32_C(1) << k;
    }
    return 0;
}

/* ---- message files ------------------------------------------------------ */

/* f->message from the index's record m: flags, keywords, sizes and, when
 * the index knows it, INTERNALDATE (*needs_date then becomes false). */
static void
message_fill(struct imap_exec *x, const struct mailbox_message *m,
             const struct maildir_keywords *kw, bool *needs_date, struct imap_exec_file *f)
{
    memset(f, 0, sizeof(*f));
    f->fd = -1;
    f->file_index = -1;
    struct imap_message *msg = &f->message;
    msg->seq = m->seq;
    msg->uid = m->uid;
    msg->modseq = m->modseq;
    /* IMAP counts CRLF line ends: a file Dovecot wrote with LF is larger
     * on the wire than on disk (W= says by how much). */
    msg->size = m->vsize;
    static const struct {
        uint32_t maildir;
        uint32_t imap;
    } map[] = {
        {MAILDIR_FLAG_SEEN, IMAP_FLAG_SEEN},       {MAILDIR_FLAG_REPLIED, IMAP_FLAG_ANSWERED},
        {MAILDIR_FLAG_FLAGGED, IMAP_FLAG_FLAGGED}, {MAILDIR_FLAG_TRASHED, IMAP_FLAG_DELETED},
        {MAILDIR_FLAG_DRAFT, IMAP_FLAG_DRAFT},
    };
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
        if (m->flags & map[i].maildir) {
            msg->flags |= map[i].imap;
        }
    }
    if (m->is_recent && (x->enabled & IMAP_ENABLED_IMAP4REV2) == 0) {
        msg->flags |= IMAP_FLAG_RECENT;
    }
    size_t names = 0;
    for (unsigned k = 0; k < MAILDIR_KEYWORDS_MAX && kw != NULL; k++) {
        const char *name = maildir_keywords_name(kw, k);
        f->keyword_names[k] = name != NULL ? name : "";
        if (name != NULL) {
            names = k + 1;
        }
    }
    msg->keyword_names = f->keyword_names;
    msg->keyword_count = names;
    msg->keyword_mask = m->keywords & ((names >= 32 ? 0 : (UINT32_C(1) << names)) - 1u);
    if (*needs_date && m->mtime > 0) {
        /* Known from an earlier read: no stat. */
        message_date_set(msg, (time_t)m->mtime);
        *needs_date = false;
    }
}

static void
message_date_set(struct imap_message *msg, time_t when)
{
    struct tm tm;
    msg->internal_date = (int64_t)when;
    if (localtime_r(&when, &tm) != NULL) {
        msg->internal_date_tz_minutes = (int32_t)(tm.tm_gmtoff / 60);
    }
}

/* Open m's file and stat it; INTERNALDATE from the stat when the index did
 * not know it (and remembered there). Returns the fd or -errno (-ENOENT:
 * gone, the index is marked for a refresh). */
static int
message_file_open(struct imap_exec *x, const struct mailbox_message *m, struct stat *st,
                  struct imap_message *msg)
{
    char path[PATH_MAX];
    int n = snprintf(path, sizeof(path), "%s/%s/%s",
                     mailbox_index_path(mailbox_view_index(x->view)),
                     m->is_in_new ? "new" : "cur", m->name);
    if (n < 0 || (size_t)n >= sizeof(path)) {
        return -ENAMETOOLONG;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        int err = errno;
        if (err == ENOENT) {
            /* Renamed or expunged behind our back: look again next time. */
            mailbox_index_changed_path(mailbox_index_path(mailbox_view_index(x->view)));
        }
        return -err;
    }
    if (fstat(fd, st) != 0) {
        int err = errno;
        (void)close(fd);
        return -err;
    }
    if (m->mtime <= 0) {
        time_t mtime = st->st_mtim.tv_sec;
        message_date_set(msg, mtime);
        if (mtime > 0) {
            mailbox_index_set_mtime(mailbox_view_index(x->view), m->uid, (int64_t)mtime);
        }
    }
    return fd;
}

int
imap_exec_file_open(struct imap_exec *x, const struct mailbox_message *m,
                    const struct maildir_keywords *kw, bool needs_data, bool is_header_enough,
                    bool needs_date, struct imap_exec_file *f)
{
    message_fill(x, m, kw, &needs_date, f);
    struct imap_message *msg = &f->message;
    if (needs_data && is_header_enough && m->header != NULL) {
        /* The header cache answers: no file to open. */
        msg->data = m->header;
        msg->data_len = m->header_len;
        needs_data = false;
    }
    if (!needs_data && !needs_date) {
        return 0;
    }
    struct stat st;
    int fd = message_file_open(x, m, &st, msg);
    if (fd < 0) {
        return fd;
    }
    if (needs_data) {
        msg->size = (uint64_t)st.st_size;
        if (st.st_size > 0) {
            /* Read, not mmap: mapping and unmapping a file per message in a
             * many-threaded process costs a TLB shootdown on every core
             * and serialises the workers on the address-space lock. */
            int rc = file_read(fd, (size_t)st.st_size, f);
            if (rc != 0) {
                (void)close(fd);
                return rc;
            }
            msg->data = f->map;
            msg->data_len = f->map_len;
        } else {
            msg->data = "";
            msg->data_len = 0;
        }
        /* Our own files are stored with CRLF (S= equals W=). One with bare
         * LF (Dovecot's default, or no W= to tell) is served as CRLF from
         * a converted copy, as Dovecot does. */
        if (msg->data_len > 0 && (m->vsize != m->size || !m->has_vsize)) {
            int rc = crlf_copy(f);
            if (rc != 0) {
                (void)close(fd);
                imap_exec_file_close(f);
                return rc;
            }
        }
        if (m->header == NULL) {
            header_cache_fill(x, m, msg->data, msg->data_len);
        }
        if (!m->is_nul_free && f->copy == NULL &&
            memchr(msg->data, '\0', msg->data_len) == NULL) {
            /* Learnt once: the next FETCH of it may splice the file. */
            mailbox_index_set_nul_free(mailbox_view_index(x->view), m->uid);
        }
    }
    (void)close(fd);
    return 0;
}

int
imap_exec_file_open_unread(struct imap_exec *x, const struct mailbox_message *m,
                           const struct maildir_keywords *kw, bool needs_date,
                           struct imap_exec_file *f)
{
    message_fill(x, m, kw, &needs_date, f);
    struct imap_message *msg = &f->message;
    struct stat st;
    int fd = message_file_open(x, m, &st, msg);
    if (fd < 0) {
        return fd;
    }
    if ((uint64_t)st.st_size != m->size || st.st_size == 0) {
        (void)close(fd);
        return -ESTALE;
    }
    f->fd = fd;
    msg->data = NULL;
    msg->data_len = (size_t)st.st_size;
    msg->is_nul_free = true;
    return 0;
}

bool
imap_exec_can_send_file(const struct imap_exec *x, const struct mailbox_message *m)
{
    return x->is_splice_ok && m->is_nul_free && m->has_vsize && m->vsize == m->size &&
           m->size >= IMAP_EXEC_SPLICE_MIN_BYTES && x->file_count < IMAP_EXEC_STEP_FILES &&
           x->range_bytes < IMAP_EXEC_STEP_RANGE_BYTES;
}

void
imap_exec_file_range(struct imap_exec *x, struct imap_exec_file *f, uint64_t offset,
                     uint64_t len)
{
    ASSERT(f->fd >= 0 || f->file_index >= 0);
    ASSERT(offset <= f->message.data_len && len <= f->message.data_len - offset);
    if (len == 0) {
        return;
    }
    if (f->file_index < 0) {
        ASSERT(x->file_count < IMAP_EXEC_STEP_FILES);
        f->file_index = (int32_t)x->file_count;
        x->files[x->file_count++] = f->fd;
        f->fd = -1;
    }
    if (x->range_count == x->range_cap) {
        size_t cap = x->range_cap == 0 ? 16 : x->range_cap * 2;
        struct imap_exec_range *grown = realloc(x->ranges, cap * sizeof(*grown));
        if (grown == NULL) {
            x->is_out_failed = true;
            return;
        }
        x->ranges = grown;
        x->range_cap = cap;
    }
    x->ranges[x->range_count++] = (struct imap_exec_range){
        .at = x->out_len, .file = (uint32_t)f->file_index, .offset = offset, .len = len};
    x->range_bytes += len;
}

/* Keep the header block of a message just read in the index's header
 * cache (up to and with the blank line; a message that is all header is
 * kept whole when small). */
static void
header_cache_fill(struct imap_exec *x, const struct mailbox_message *m, const char *data,
                  size_t len)
{
    size_t scan = len < MAILBOX_HEADER_BYTES_MAX ? len : MAILBOX_HEADER_BYTES_MAX;
    size_t header_len = 0;
    if (scan >= 2 && data[0] == '\r' && data[1] == '\n') {
        header_len = 2; /* no header at all */
    } else {
        const char *end = memmem(data, scan, "\r\n\r\n", 4);
        if (end != NULL) {
            header_len = (size_t)(end - data) + 4;
        } else if (len <= MAILBOX_HEADER_BYTES_MAX) {
            header_len = len;
        }
    }
    if (header_len > 0) {
        mailbox_index_header_put(mailbox_view_index(x->view), m->uid, data, header_len);
    }
}

/* Replace f's data by a copy with every bare LF made CRLF, when it has
 * any. Returns 0 or -ENOMEM. */
static int
crlf_copy(struct imap_exec_file *f)
{
    const char *data = f->message.data;
    size_t len = f->message.data_len;
    size_t bare = 0;
    for (const char *p = memchr(data, '\n', len); p != NULL;
         p = memchr(p + 1, '\n', len - (size_t)(p + 1 - data))) {
        if (p == data || p[-1] != '\r') {
            bare++;
        }
        if (p + 1 == data + len) {
            break;
        }
    }
    if (bare == 0) {
        return 0;
    }
    char *copy = malloc(len + bare);
    if (copy == NULL) {
        return -ENOMEM;
    }
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        if (data[i] == '\n' && (i == 0 || data[i - 1] != '\r')) {
            copy[o++] = '\r';
        }
        copy[o++] = data[i];
    }
    ASSERT(o == len + bare);
    f->copy = copy;
    f->message.data = copy;
    f->message.data_len = o;
    f->message.size = o;
    return 0;
}

void
imap_exec_file_close(struct imap_exec_file *f)
{
    if (f->fd >= 0) {
        (void)close(f->fd); /* opened unread and no range took it */
        f->fd = -1;
    }
    free(f->copy);
    f->copy = NULL;
    f->map = NULL;
    f->map_len = 0;
    /* A worker keeps a buffer of ordinary size for the next message; one
     * grown for a huge message goes back. */
    if (read_buffer_cap > IMAP_EXEC_READ_KEEP_BYTES) {
        free(read_buffer);
        read_buffer = NULL;
        read_buffer_cap = 0;
        (void)pthread_setspecific(read_buffer_key, NULL);
    }
}

/* The whole file into this worker's read buffer (one message at a time per
 * worker: FETCH and SEARCH open, use and close each in turn). */
static int
file_read(int fd, size_t size, struct imap_exec_file *f)
{
    if (size > read_buffer_cap) {
        size_t cap = read_buffer_cap == 0 ? 65536 : read_buffer_cap;
        while (cap < size) {
            cap *= 2;
        }
        char *grown = realloc(read_buffer, cap);
        if (grown == NULL) {
            return -ENOMEM;
        }
        read_buffer = grown;
        read_buffer_cap = cap;
        (void)pthread_once(&read_buffer_once, read_buffer_key_make);
        (void)pthread_setspecific(read_buffer_key, read_buffer);
    }
    size_t done = 0;
    while (done < size) {
        ssize_t n = pread(fd, read_buffer + done, size - done, (off_t)done);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            return -errno;
        }
        if (n == 0) {
            break; /* shrank meanwhile: serve what is there */
        }
        done += (size_t)n;
    }
    f->map = read_buffer;
    f->map_len = done;
    return 0;
}

/* ---- helpers ----------------------------------------------------------- */

static bool
out_reserve(struct imap_exec *x, size_t more)
{
    if (x->is_out_failed) {
        return false;
    }
    if (x->out_cap - x->out_len >= more) {
        return true;
    }
    size_t want = x->out_cap == 0 ? 4096 : x->out_cap;
    while (want - x->out_len < more) {
        want *= 2;
    }
    if (want > IMAP_EXEC_OUT_BYTES_MAX) {
        x->is_out_failed = true;
        return false;
    }
    char *grown = realloc(x->out, want);
    if (grown == NULL) {
        x->is_out_failed = true;
        return false;
    }
    x->out = grown;
    x->out_cap = want;
    return true;
}
