/*
 * store/dsn.h - delivery status notifications for queued mail (RFC 3464):
 * the bounce ("Undelivered Mail Returned to Sender"), the delay warning
 * ("Delayed Mail (still being retried)") and the success report, composed
 * for one queue entry and some of its recipients as a complete RFC 5322
 * message (CRLF) from MAILER-DAEMON to the envelope sender:
 * multipart/report; report-type=delivery-status with a Postfix-like text
 * part, message/delivery-status, and the original (message/rfc822 or
 * text/rfc822-headers; message/global, message/global-headers and
 * message/global-delivery-status of RFC 6533 when the original's header or
 * an address is UTF-8).
 *
 * Pure: no I/O. The delivery agent reads the original (at most
 * DSN_ORIGINAL_READ_BYTES of it), calls dsn_compose(), and queues the
 * result with the null sender (RFC 3461 6.2: a DSN is never answered by a
 * DSN) and BODY=8BITMIME / SMTPUTF8 as the result's flags say.
 * Any thread. Limits: DSN_BYTES_MAX for the whole, DSN_RETURN_BYTES_MAX
 * for a returned whole message, DSN_HEADER_BYTES_MAX for a returned header
 * block, DSN_REPLY_BYTES_MAX of each remote reply, DSN_BOUNDARY_TRIES.
 */
#ifndef TOASTER_STORE_DSN_H
#define TOASTER_STORE_DSN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/queue.h"

/* The whole original is returned only when it is at most this long (and
 * every line fits in 998 bytes, without NULs or lone CRs); otherwise its
 * header block alone. Postfix's bounce_size_limit default, with the same
 * "headers only past it" choice. */
#define DSN_RETURN_BYTES_MAX 50000u
#define DSN_HEADER_BYTES_MAX (128u * 1024u) /* a returned header block, cut on a line */
#define DSN_REPLY_BYTES_MAX 900u            /* of a remote reply; keeps lines <= 998 */
#define DSN_BYTES_MAX (16u * 1024u * 1024u) /* the whole DSN: 1000 long reports fit */
#define DSN_BOUNDARY_BYTES 48u              /* a MIME boundary + NUL */
#define DSN_BOUNDARY_TRIES 16u

/* How much of the original the caller needs to read: enough for the whole
 * returned message or for the longest header block we copy. */
#define DSN_ORIGINAL_READ_BYTES                                                                    \
    (DSN_RETURN_BYTES_MAX > DSN_HEADER_BYTES_MAX ? DSN_RETURN_BYTES_MAX : DSN_HEADER_BYTES_MAX)

enum dsn_action {
    DSN_ACTION_FAILED,    /* reported when NOTIFY has FAILURE or is not given */
    DSN_ACTION_DELAYED,   /* reported when NOTIFY has DELAY or is not given */
    DSN_ACTION_DELIVERED, /* reported only when NOTIFY has SUCCESS */
    DSN_ACTION_RELAYED,   /* handed to a server without DSN; only with SUCCESS */
};

/* One recipient this report is about. Strings are borrowed for the call. */
struct dsn_rcpt_report {
    size_t rcpt_index; /* into entry->rcpts */
    enum dsn_action action;
    const char *remote_mta; /* the remote's name ("mx.example.net"), NULL or "" for none */
    const char *reply;      /* the remote's reply ("550 5.1.1 ...") or our own
                             * diagnosis; NULL: the recipient's last_reply */
    int64_t last_attempt;   /* unix seconds; 0: now */
};

struct dsn_request {
    const struct queue_entry *entry;       /* envelope: sender, ENVID, RET, recipients */
    const struct dsn_rcpt_report *reports; /* which recipients, in this order */
    size_t report_count;
    const char *hostname; /* ours: Reporting-MTA, MAILER-DAEMON's domain, Message-ID */
    int64_t now;          /* unix seconds: Date */
    int64_t retry_until;  /* unix seconds: Will-Retry-Until for delays (arrival + lifetime) */
    /* The original message as queued, or its first bytes (at least
     * DSN_ORIGINAL_READ_BYTES of it when it is longer); message_bytes is
     * its whole size (entry->size). */
    const char *message;
    size_t message_len;
    uint64_t message_bytes;
};

struct dsn_result {
    char *bytes; /* malloc'd; the caller frees */
    size_t len;
    size_t report_count; /* recipients reported (after NOTIFY) */
    bool is_8bit;        /* needs BODY=8BITMIME */
    bool is_utf8;        /* needs SMTPUTF8 (a UTF-8 address in the header) */
    bool is_full_return; /* the whole original is inside */
};

/* Compose the DSN. Recipients whose NOTIFY does not ask for their action
 * are left out. Subject by the most severe action reported: failed, then
 * delayed, then delivered/relayed. The original is returned whole for
 * failures when RET is FULL or not given and it fits DSN_RETURN_BYTES_MAX,
 * otherwise its header block only (delay warnings and success reports
 * always headers only, as Postfix).
 * Returns 0 with *result_out filled; -EINVAL for the null sender (never a
 * DSN to <>: the caller drops it with a log line), a report index out of
 * range, a hostname that is empty or not ASCII, or now outside the years
 * 0..9999; -ENODATA when NOTIFY leaves no recipient to report (nothing to
 * send); -E2BIG past DSN_BYTES_MAX or a header line over 998 bytes;
 * -ENOMEM. On failure *result_out is zeroed. */
int dsn_compose(const struct dsn_request *request, struct dsn_result *result_out);

/* Whether a recipient's NOTIFY asks for a report of this action. */
bool dsn_is_wanted(uint32_t notify, enum dsn_action action);

/* The RFC 3463 status for a reply and action: the reply's enhanced code
 * when it has one of the same class as its basic code, else X.0.0 from the
 * basic code, else 5.0.0 / 4.0.0 / 2.0.0 by action (a delay is always
 * class 4). status_out holds at least 16 bytes; returns its length. */
size_t dsn_status(const char *reply, enum dsn_action action, char status_out[16]);

/* A MIME boundary none of parts[0..part_count) contains: candidates are
 * derived from salt and a try counter, at most DSN_BOUNDARY_TRIES of them.
 * Returns the length, or -EEXIST when every candidate occurs. Exposed for
 * the collision tests. */
int dsn_boundary_pick(const char *const parts[], const size_t part_lens[], size_t part_count,
                      const char *salt, char boundary_out[DSN_BOUNDARY_BYTES]);

#endif
