/*
 * core/sieve_stage.h - Sieve at delivery: each local mailbox's scripts
 * (filters/sieve_exec) run over an accepted message on a worker, and
 * their result becomes the message's placements (store/delivery.h):
 * folders, flags and keywords, discard, an edited header, redirects,
 * rejections and vacation replies.
 *
 * Three threads take part, one step each:
 *   1. a worker: sieve_stage_run() reads the message from its spool file,
 *      runs every mailbox's chain, places the copies, writes the
 *      generated messages (vacation replies, rejections) into files of
 *      the message's own, and says what comes next;
 *   2. the reactor, only when addresses must be resolved (a redirect, a
 *      reply to the sender): sieve_stage_resolve() reads the users and
 *      aliases tables, which only a reactor may, and makes local targets
 *      placements and remote ones outbound recipients;
 *   3. the committer, once the message is durable: the duplicate marks
 *      are recorded (sieve_exec_commit) and one line per recipient says
 *      what Sieve did.
 * Limits: SIEVE_RUN_HEADER_BYTES_MAX + SIEVE_RUN_BODY_BYTES_MAX bytes read
 * per message; DELIVERY_MAILBOXES_MAX copies, DELIVERY_CONTENTS_MAX own
 * files and DELIVERY_OUTBOUND_MAX replies per message (store/delivery.h).
 */
#ifndef TOASTER_CORE_SIEVE_STAGE_H
#define TOASTER_CORE_SIEVE_STAGE_H

#include <stdbool.h>
#include <stddef.h>

#include "core/limits.h"

struct delivery_message;
struct recipients;
struct sieve_exec;
struct sieve_stage;

/* Start-up (main thread): exec runs the scripts (NULL: Sieve is off);
 * data_dir and hostname are copied. Returns 0 or -errno. */
int sieve_stage_init(struct sieve_exec *exec, const char *data_dir, const char *hostname,
                     bool is_fsync_on);

/* Whether messages take the Sieve stage at all. */
bool sieve_stage_is_active(void);

/* Shutdown, after the workers and the committer stopped. */
void sieve_stage_destroy(void);

enum sieve_stage_next {
    SIEVE_STAGE_SUBMIT,  /* ready for delivery_submit() */
    SIEVE_STAGE_RESOLVE, /* addresses to resolve on the reactor first */
    SIEVE_STAGE_REFUSE,  /* every recipient rejected it: answer the reply */
    SIEVE_STAGE_DEFER,   /* an operating error (memory, the spool file): answer 451 */
};

/* Worker. Runs every mailbox's scripts over the message and places its
 * copies. *stage_out is the state the later steps need (NULL when there is
 * none); with SIEVE_STAGE_REFUSE the SMTP reply ("550 5.7.1 ...") is in
 * reply (at least SMTP_REPLY_LINE_BYTES_MAX bytes). A message every
 * mailbox keeps in INBOX unflagged stays on the fast path (no
 * placements). is_virus_scanned: the ClamAV stage ran on the message. */
enum sieve_stage_next sieve_stage_run(struct delivery_message *message, bool is_virus_scanned,
                                      struct sieve_stage **stage_out, char *reply,
                                      size_t reply_bytes);

/* Reactor. Resolves the stage's addresses against table (local: a copy
 * into each mailbox's INBOX; remote: a recipient of the message's queue
 * entry for a redirect, an outbound entry for a reply) and hands the
 * stage to the committer's hook. Returns 0, or -errno (the caller
 * answers 451; the stage is then still the caller's to release). */
int sieve_stage_resolve(struct sieve_stage *stage, struct delivery_message *message,
                        const struct recipients *table);

/* Hand the stage to the committer (delivery_message_on_commit): it is
 * freed there after the commit. */
void sieve_stage_attach(struct sieve_stage **stage, struct delivery_message *message);

/* Free a stage that will not reach the committer (refused, deferred, the
 * client gone). NULLs the pointer; safe with NULL. */
void sieve_stage_release(struct sieve_stage **stage);

#endif
