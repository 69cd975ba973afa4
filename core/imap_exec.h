/*
 * core/imap_exec.h - running one IMAP mailbox command on a worker: the
 * context every command file (core/imap_cmd_*.c) gets, and the response
 * writers they share.
 *
 * The session (proto/imap/imap_session) checked the command's state and
 * handed it over; the listener (core/imap_listener.c) runs imap_exec_run()
 * on a worker thread and sends what it wrote. A command that has more to
 * say than one step should hold (FETCH of many bodies) sets is_more: its
 * output is sent, then imap_exec_run() is called again to continue from the
 * state it keeps in the context. Untagged updates for the selected mailbox
 * (EXPUNGE, EXISTS, FETCH FLAGS) are written before the tagged reply, as
 * RFC 9051 7.5.1 allows for each command.
 *
 * Worker threads only: commands read directories and files and may
 * allocate (freed when the command ends). The session and the view are the
 * connection's, lent for the command: the reactor does not touch them until
 * the job comes back.
 * Output is bytes, and on plaintext connections also ranges of message
 * files that the reactor splices to the socket without reading them
 * (FETCH BODY[]): the listener sends out[0..ranges[0].at), the first
 * range, the bytes up to the next range, and so on.
 *
 * Limits: IMAP_EXEC_STEP_BYTES per step of output bytes,
 * IMAP_EXEC_STEP_FILES files and IMAP_EXEC_STEP_RANGE_BYTES of ranges.
 */
#ifndef TOASTER_CORE_IMAP_EXEC_H
#define TOASTER_CORE_IMAP_EXEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/span.h"
#include "proto/imap/imap_flags.h"
#include "proto/imap/imap_parser.h"
#include "proto/imap/imap_quote.h"
#include "proto/imap/imap_session.h"
#include "store/mailbox_index.h"

/* A step stops adding messages once its output passes this. */
#define IMAP_EXEC_STEP_BYTES (256u * 1024)
#define IMAP_EXEC_STEP_FILES 64u
#define IMAP_EXEC_STEP_RANGE_BYTES (16u * 1024 * 1024)
/* Smaller messages are read and copied: splice goes through io_uring's
 * worker threads, which for a few pages costs more than the copy it saves
 * (measured: bench/results/imap-splice-2026-12-04.md). */
#define IMAP_EXEC_SPLICE_MIN_BYTES (64u * 1024)

/* File bytes sent as they are, after out[0..at). */
struct imap_exec_range {
    size_t   at;
    uint32_t file; /* index into imap_exec.files */
    uint64_t offset;
    uint64_t len;
};
#define IMAP_EXEC_ROOT_BYTES 4096

struct imap_exec {
    /* Set by the listener before each run. */
    const struct imap_parsed *command; /* NULL for IMAP_REQUEST_IDLE_DONE */
    struct span tag;
    bool is_idle_done;
    bool is_push;               /* not a command: IDLE news (imap_exec_push) */
    const char *root;           /* the user's Maildir */
    struct mailbox_view *view;  /* the connection's (attached when selected) */
    struct imap_session *session;
    unsigned enabled;           /* IMAP_ENABLED_* at the start */
    bool is_readonly;           /* the selected mailbox was EXAMINEd */
    bool is_flags_trailing_ok;  /* APPEND: more arguments follow the flag list */
    const struct maildir_keywords *sync_keywords; /* during mailbox_view_sync */
    /* APPEND whose message was streamed: the spool file (-1: none). */
    int append_fd;
    uint64_t append_size;
    bool is_append_failed;      /* the streaming failed: answer NO */
    bool is_splice_ok;          /* file ranges may be sent (no TLS beneath) */

    /* Output of this step: the listener sends out[0..out_len) and then
     * resets out_len before the next step. */
    char *out;
    size_t out_len;
    size_t out_cap;
    bool is_out_failed; /* an allocation failed: the command answers NO */
    /* File ranges of this step and the files they read (owned: closed
     * when the step's output is sent, imap_exec_output_reset). */
    struct imap_exec_range *ranges;
    size_t range_count;
    size_t range_cap;
    uint64_t range_bytes;
    int files[IMAP_EXEC_STEP_FILES];
    uint32_t file_count;

    /* Results. */
    enum imap_command_outcome outcome;
    unsigned enable_bits;  /* IMAP_ENABLED_* the command turned on */
    bool is_more;          /* run again after the output is sent */
    struct mailbox_index *index_to_attach; /* a reference a command still holds */
    /* For SELECT: how the view tells the connection of changes. */
    void (*view_notify)(struct mailbox_view *view);
    void *view_owner;

    /* A resumable command's own state, freed by state_free at the end. */
    void *state;
    void (*state_free)(void *state);
};

/* Run (or continue) the command. Worker thread. */
void imap_exec_run(struct imap_exec *x);

/* An IDLE session's mailbox changed: refresh it if new mail waits and
 * write the untagged updates. Worker thread. */
void imap_exec_push(struct imap_exec *x);

/* Free what the command still holds (after the last step, or when the
 * connection went away). Any thread. */
void imap_exec_finish(struct imap_exec *x);

/* The step's output was sent: forget its bytes and ranges, close its
 * files (the buffers stay for the next step). */
void imap_exec_output_reset(struct imap_exec *x);

/* True when the step wrote as much as one step should hold. */
bool imap_exec_step_is_full(const struct imap_exec *x);

/* ---- for command files --------------------------------------------------- */

void imap_exec_write(struct imap_exec *x, const char *bytes, size_t len);
void imap_exec_cstr(struct imap_exec *x, const char *text);
void imap_exec_printf(struct imap_exec *x, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* An imap_out over at least want free bytes of the output; commit what was
 * written with imap_exec_out_commit(). On allocation failure the out has
 * no room and is_out_failed is set. */
struct imap_out imap_exec_out_begin(struct imap_exec *x, size_t want);
void imap_exec_out_commit(struct imap_exec *x, const struct imap_out *out);

/* "tag OK text\r\n" (text may start with "[CODE] "). */
void imap_exec_ok(struct imap_exec *x, const char *text);
void imap_exec_no(struct imap_exec *x, const char *text);
void imap_exec_bad(struct imap_exec *x, const char *text);

/* A mailbox name argument (astring, mUTF-7 or with UTF8=ACCEPT UTF-8) into
 * its storage name (mUTF-7, "INBOX" for any case of inbox). Returns 0, or
 * -EINVAL after writing "tag BAD/NO ..." itself. */
int imap_exec_mailbox_arg(struct imap_exec *x, uint32_t node, char *out, size_t out_bytes);

/* The same for CREATE, where a trailing delimiter ("a.b.") only says that
 * children are intended (RFC 9051 6.3.4) and is dropped. */
int imap_exec_mailbox_arg_create(struct imap_exec *x, uint32_t node, char *out,
                                 size_t out_bytes);

/* Write a storage name as IMAP wants it shown (mUTF-7, or UTF-8 when
 * UTF8=ACCEPT is enabled), quoted as needed. */
void imap_exec_mailbox_write(struct imap_exec *x, const char *name);

/* The untagged updates of the selected mailbox (refreshing it first when
 * it may be out of date). may_expunge: false during FETCH, STORE and
 * SEARCH by sequence number (RFC 9051 7.5.1). */
void imap_exec_updates(struct imap_exec *x, bool may_expunge);

/* The messages of a sequence set argument (by_uid: a UID set) in the
 * view, appended to snapshot. Returns 0, or -EINVAL after writing "tag
 * BAD" (syntax, or a sequence number past the end), or -ENOMEM after
 * writing "tag NO". */
int imap_exec_collect(struct imap_exec *x, uint32_t node, bool by_uid,
                      struct mailbox_snapshot *snapshot);

/* A flag list "(\Seen $Label)" (or, for STORE, flags without
 * parentheses) into Maildir flag bits and keyword bits of index (new
 * keywords are added to its dovecot-keywords). Returns 0, or -errno after
 * writing "tag BAD/NO". */
int imap_exec_flags_parse(struct imap_exec *x, uint32_t node, struct mailbox_index *index,
                          uint32_t *flags_out, uint32_t *keywords_out);

/* Write "* n FETCH (FLAGS (...) [UID u] [MODSEQ (m)])\r\n" for m. */
void imap_exec_fetch_flags(struct imap_exec *x, const struct mailbox_message *m, bool with_uid,
                           bool with_modseq);

/* FLAGS list text of a message: "\\Seen \\Flagged $Label1". */
void imap_exec_flags_write(struct imap_exec *x, uint32_t maildir_flags, uint32_t keywords,
                           bool is_recent, const struct maildir_keywords *names);

/* One message's file, read for FETCH and SEARCH (into the worker's own
 * buffer: one open message per worker at a time). */
struct imap_exec_file {
    struct imap_message message; /* proto/imap's view of it */
    char *map;                   /* the bytes read (the worker's buffer) */
    size_t map_len;
    char *copy; /* the CRLF copy of a file stored with bare LF, or NULL */
    int fd;     /* imap_exec_file_open_unread: open until a range takes it (-1) */
    int32_t file_index; /* its place in imap_exec.files once a range took it, or -1 */
    const char *keyword_names[MAILDIR_KEYWORDS_MAX];
};

/* Fill f->message from m (flags as IMAP bits, keywords from kw); with
 * needs_data map the file (or, with is_header_enough, take m's cached
 * header block when the snapshot has it), with needs_date stat it for
 * INTERNALDATE unless the index knows it. A file read fills the header
 * cache. Returns 0, -ENOENT (the file is gone: expunged by someone else;
 * the index is marked for a refresh) or another -errno. */
int imap_exec_file_open(struct imap_exec *x, const struct mailbox_message *m,
                        const struct maildir_keywords *kw, bool needs_data,
                        bool is_header_enough, bool needs_date, struct imap_exec_file *f);
void imap_exec_file_close(struct imap_exec_file *f);

/* Send f's file from offset for len bytes as it is, after what was
 * written so far: the step keeps the file open (the first call for f takes
 * f->fd). f must come from imap_exec_file_open_unread(). */
void imap_exec_file_range(struct imap_exec *x, struct imap_exec_file *f, uint64_t offset,
                          uint64_t len);

/* May a message's bytes go out by file ranges? A plaintext connection, a
 * file of at least IMAP_EXEC_SPLICE_MIN_BYTES stored with CRLF (IMAP's
 * line ends) and known to hold no NUL (which a BODY literal must not
 * carry), and room in the step. */
bool imap_exec_can_send_file(const struct imap_exec *x, const struct mailbox_message *m);

/* Like imap_exec_file_open() with the whole message wanted, but the file
 * is only opened, not read: message.data is NULL, data_len its size,
 * is_nul_free set; the bytes go out with imap_exec_file_range(). Returns
 * 0, -ENOENT, -ESTALE (the file's size is not the index's: read it
 * instead) or another -errno. */
int imap_exec_file_open_unread(struct imap_exec *x, const struct mailbox_message *m,
                               const struct maildir_keywords *kw, bool needs_date,
                               struct imap_exec_file *f);

/* The mailbox argument at node as a target (APPEND, COPY, MOVE): its path
 * and a reference to its index. Returns 0, or -errno after writing "tag
 * BAD/NO" ([TRYCREATE] when it does not exist). */
int imap_exec_target_open(struct imap_exec *x, uint32_t node, char *path_out, size_t path_bytes,
                          struct mailbox_index **index_out);

/* Path of a folder by storage name under the user's root. Returns 0 or
 * -ENAMETOOLONG / -EINVAL. */
int imap_exec_folder_path(const struct imap_exec *x, const char *name, char *out,
                          size_t out_bytes);

/* Command files: each runs one or a few commands. */
/* Bayes learning as users file mail (the spam filter's, set by main
 * before the reactors start; NULL: none): COPY or MOVE into Junk learns
 * each message as spam, out of Junk into anything but Trash as ham, as
 * Dovecot's IMAPSieve + Rspamd setups do. Called on the worker running
 * the command, with the message file's path. */
typedef void (*imap_junk_learn_fn)(void *ctx, const char *path, bool is_spam);
void imap_cmd_copy_set_learner(imap_junk_learn_fn learn, void *ctx);

void imap_cmd_select(struct imap_exec *x);     /* SELECT, EXAMINE */
void imap_cmd_close(struct imap_exec *x);      /* CLOSE, UNSELECT */
void imap_cmd_noop(struct imap_exec *x);       /* NOOP, CHECK (selected) */
void imap_cmd_idle(struct imap_exec *x);       /* IDLE and its DONE */
void imap_cmd_expunge(struct imap_exec *x);    /* EXPUNGE, UID EXPUNGE */
void imap_cmd_list(struct imap_exec *x);       /* LIST, LSUB */
void imap_cmd_status(struct imap_exec *x);     /* STATUS */
void imap_cmd_folder(struct imap_exec *x);     /* CREATE, DELETE, RENAME */
void imap_cmd_subscribe(struct imap_exec *x);  /* SUBSCRIBE, UNSUBSCRIBE */
void imap_cmd_fetch(struct imap_exec *x);      /* FETCH, UID FETCH */
void imap_cmd_store(struct imap_exec *x);      /* STORE, UID STORE */
void imap_cmd_search(struct imap_exec *x);     /* SEARCH, UID SEARCH */
void imap_cmd_copy(struct imap_exec *x);       /* COPY, MOVE and UID forms */
void imap_cmd_append(struct imap_exec *x);     /* APPEND */

#endif
