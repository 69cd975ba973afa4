/*
 * proto/imap/imap_reader.h - IMAP command framing: bytes in, one command
 * (line text plus literals) out.
 *
 * Pure: no I/O, no allocation. The owner (the IMAP session) feeds received
 * bytes; the reader assembles one command at a time in a buffer the owner
 * provides and reports events: "send a continuation", "here is a chunk of a
 * streamed literal", "a command is complete", "refuse this command".
 *
 * Framing rules (RFC 3501 / RFC 9051 section 4.3, RFC 7888, RFC 3516):
 *  - a line ends at CRLF; a bare LF is accepted as a line end too and the
 *    command is flagged (has_bare_lf) so the session may count or log it.
 *    Dovecot accepts bare LF and real clients (scripts, telnet) send it;
 *    refusing it buys nothing since an IMAP line cannot hold an LF anyway.
 *    A CR that is not followed by LF is an error (BAD).
 *  - a NUL byte in line text is an error (BAD). Literal data may hold any
 *    byte; the parser/session decide whether NUL is allowed (literal8).
 *  - a line that ends in "{n}", "{n+}", "~{n}" or "~{n+}" announces a
 *    literal of n bytes (n up to 20 digits; overflow counts as too big);
 *    after the literal, the command continues with more line text.
 *  - the command name (after the tag, and after "UID") selects the literal
 *    limit: APPEND literals may reach append_bytes_max and are streamed to
 *    the owner when above inline_bytes_max; every other literal must fit
 *    literal_bytes_max and the command buffer, and is kept inline.
 *
 * Limits (struct imap_reader_config): line text per command (literal data
 * excluded), literals per command, literal size (ordinary, APPEND,
 * non-synchronising under LITERAL-), the buffer size, and a ceiling on the
 * bytes the reader will skip while discarding a refused command.
 */
#ifndef TOASTER_PROTO_IMAP_READER_H
#define TOASTER_PROTO_IMAP_READER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/limits.h"
#include "core/span.h"

/* The reader's bounds are the IMAP_* rows of core/limits.h; configuration
 * may lower them. */

struct imap_reader_config {
    size_t   line_bytes_max;     /* line text of one command, literal data excluded */
    size_t   literal_count_max;  /* literals per command, <= IMAP_LITERALS_CEILING */
    uint64_t literal_bytes_max;  /* any literal of a non-APPEND command */
    uint64_t append_bytes_max;   /* an APPEND literal (the message size limit) */
    uint64_t inline_bytes_max;   /* APPEND literals up to this stay inline */
    uint64_t nonsync_bytes_max;  /* {n+} above this is refused: UINT64_MAX with
                                  * LITERAL+, IMAP_LITERAL_MINUS_BYTES_MAX with
                                  * LITERAL- */
    uint64_t discard_bytes_max;  /* skipping more than this while discarding
                                  * a refused command is fatal */
};

/* One literal of the command being assembled. */
struct imap_literal {
    size_t   announce_offset; /* offset in the command text of '{' or '~' */
    size_t   data_offset;     /* offset where the data starts (inline) or would
                               * have started (streamed): just after '}' */
    uint64_t len;             /* n as announced */
    bool     is_sync;         /* "{n}": the client waited for a continuation */
    bool     is_binary;       /* "~{n}" (literal8) */
    bool     is_streamed;     /* data went to the owner in chunks, not inline */
};

/* A complete command as the parser sees it. The text holds the line pieces
 * without their line ends; after each literal's '}' comes its data when
 * inline, nothing when streamed. Borrowed from the reader's buffer, valid
 * until the next imap_reader_feed() or imap_reader_reset(). */
struct imap_command_text {
    const char                *text;
    size_t                     len;
    const struct imap_literal *literals;
    size_t                     literal_count;
    bool                       has_bare_lf; /* some line ended in LF alone */
    bool                       is_append;   /* command name was APPEND */
};

enum imap_reader_event {
    IMAP_READER_NEED_MORE = 0, /* input used up, nothing to report */
    IMAP_READER_CONTINUE,      /* synchronising literal accepted: send "+ OK"
                                * (or refuse with imap_reader_refuse_literal()) */
    IMAP_READER_LITERAL_DATA,  /* a chunk of a streamed literal: imap_reader_chunk() */
    IMAP_READER_COMMAND,       /* a command is complete: imap_reader_command() */
    IMAP_READER_TOO_BIG,       /* synchronising literal over its limit, refused
                                * without reading it: answer "tag NO [TOOBIG]";
                                * the command is dropped, the client goes on */
    IMAP_READER_ERROR,         /* command discarded up to its end: answer
                                * "tag BAD" with imap_reader_error(); the
                                * reader is ready for the next command */
    IMAP_READER_FATAL,         /* cannot find the next command: "* BYE", close */
};

enum imap_reader_error {
    IMAP_READER_OK = 0,
    IMAP_READER_LINE_TOO_LONG,     /* line text over line_bytes_max or the buffer */
    IMAP_READER_NUL_BYTE,          /* NUL in line text */
    IMAP_READER_BARE_CR,           /* CR not followed by LF */
    IMAP_READER_TOO_MANY_LITERALS, /* over literal_count_max */
    IMAP_READER_LITERAL_TOO_BIG,   /* non-sync literal over its limit ([TOOBIG]) */
    IMAP_READER_DISCARD_TOO_BIG,   /* fatal: would skip past discard_bytes_max */
};

/* Streamed literal data (APPEND bodies). data borrows from the bytes passed
 * to imap_reader_feed(); copy or write it out before feeding again. */
struct imap_reader_chunk {
    struct span data;
    size_t      literal_index; /* index into the command's literals */
    uint64_t    offset;        /* of data.ptr[0] within the literal */
    uint64_t    total;         /* the literal's announced length */
    bool        is_last;       /* the literal ends with this chunk */
};

/* Embedded in the session; the fields are private: use the functions below. */
struct imap_reader {
    struct imap_reader_config config;
    char                     *buf;
    size_t                    buf_bytes;
    size_t                    len;          /* bytes in buf */
    size_t                    text_bytes;   /* line text counted against line_bytes_max */
    size_t                    line_start;   /* offset of the current line piece */
    int                       state;
    enum imap_reader_error    error;
    bool                      has_bare_lf;
    bool                      saw_cr;
    bool                      is_append;
    bool                      name_known;   /* the command name has been looked at */
    bool                      reset_pending;/* the last event ended a command */
    uint64_t                  literal_left; /* bytes of literal still to read or skip */
    uint64_t                  discarded;    /* bytes skipped for this command */
    size_t                    literal_count;
    struct imap_literal      *literals;     /* the owner's table of IMAP_LITERALS_CEILING:
                                             * lent with buf, so an idle owner keeps neither */
    char                      tail[32];     /* last line bytes while discarding */
    size_t                    tail_len;
    struct imap_reader_chunk  chunk;
};

/* Fill *config with the defaults; append_bytes_max is the caller's message
 * size limit. */
void imap_reader_config_default(struct imap_reader_config *config, uint64_t append_bytes_max);

/* Prepare a reader over buf and a literal table of IMAP_LITERALS_CEILING
 * records (both owned by the caller and lent until the next init; buf_bytes
 * >= 1 KiB and at least config->line_bytes_max is sensible). The config is
 * copied; it must satisfy inline_bytes_max <= buf_bytes and
 * literal_count_max <= IMAP_LITERALS_CEILING (asserted). */
void imap_reader_init(struct imap_reader *reader, const struct imap_reader_config *config,
                      char *buf, size_t buf_bytes, struct imap_literal *literals);

/* Consume input until an event or the end of in. Returns the event and
 * sets *used_out to the bytes consumed (the owner feeds the rest again
 * after handling the event). Never consumes bytes of the next command
 * together with an event, so a pipelining client is handled one command at
 * a time. After FATAL every call returns FATAL and consumes nothing. */
enum imap_reader_event imap_reader_feed(struct imap_reader *reader, const char *in, size_t len,
                                        size_t *used_out);

/* After COMMAND: the command. */
struct imap_command_text imap_reader_command(const struct imap_reader *reader);

/* After LITERAL_DATA: the chunk. */
const struct imap_reader_chunk *imap_reader_chunk(const struct imap_reader *reader);

/* After ERROR / FATAL: why. */
enum imap_reader_error imap_reader_error(const struct imap_reader *reader);

/* The tag of the command being read or just ended, for the tagged reply;
 * empty when the line does not start with a valid tag (answer untagged). */
struct span imap_reader_tag(const struct imap_reader *reader);

/* After CONTINUE: do not send "+"; drop the command (the client will not
 * send the literal) and answer it with a tagged NO or BAD. */
void imap_reader_refuse_literal(struct imap_reader *reader);

/* Forget any partial command (e.g. after STARTTLS). */
void imap_reader_reset(struct imap_reader *reader);

/* True when a command is partly read (for the idle/command timeout). */
bool imap_reader_is_mid_command(const struct imap_reader *reader);

/* Name of an error for logs. */
const char *imap_reader_error_name(enum imap_reader_error error);

#endif
