/*
 * proto/imap/imap_fetch.h - IMAP FETCH (RFC 3501 6.4.5 / 7.4.2, RFC 9051
 * 6.4.5 / 7.5.2, BINARY RFC 3516, CONDSTORE/QRESYNC RFC 7162): the item
 * list parsed into a typed request, and one message's "* n FETCH (...)"
 * response written into a caller's sink.
 *
 * Pure protocol code: no I/O, no allocation. Parsing runs wherever the
 * session runs; imap_fetch_write() runs on worker threads with working
 * memory the caller provides (struct imap_fetch_work). The request borrows
 * from the command text (header field names), which stays valid while the
 * command runs.
 *
 * Limits: IMAP_FETCH_SECTIONS_MAX sections and IMAP_FETCH_FIELDS_MAX header
 * field names per command (beyond: BAD); part paths at most
 * IMAP_MIME_DEPTH_MAX numbers; ENVELOPE, BODY and BODYSTRUCTURE text of one
 * message at most work->buf_bytes (beyond: NO [LIMIT]). BINARY data is
 * decoded in a streaming way (twice: once to validate and measure, once to
 * write), so decoding needs no buffer whatever the part size.
 *
 * Choices where the RFCs leave room (Dovecot 2.3 is the reference):
 *  - a section that does not exist (BODY[9], BODY[1.HEADER] of a part
 *    that is not message/rfc822) is an empty string, as Dovecot answers
 *    (RFC 9051 does not ask for NIL); empty data is written as "" where
 *    Dovecot writes {0}CRLF, both are the same IMAP string;
 *  - a partial whose origin is at or beyond the end gives "";
 *  - BINARY of a part whose base64 holds a byte outside the alphabet is NIL
 *    and its BINARY.SIZE is 0 (Dovecot); an unknown Content-Transfer-Encoding
 *    fails the whole message with NO [UNKNOWN-CTE] before anything is
 *    written (RFC 3516 section 4.3);
 *  - BODY[...] data that holds NUL bytes is sent with each NUL replaced by
 *    0x80 (IMAP literals must not hold NUL; Dovecot does the same); BINARY
 *    data holding NUL is sent as literal8 "~{n}";
 *  - the section in the response is upper-cased, header field names too
 *    (atoms stay atoms, quoted names are quoted), as Dovecot echoes them;
 *    BINARY responses carry "<origin>" after a partial request, as Dovecot's;
 *  - BINARY[] of a message whose top-level part is base64 or
 *    quoted-printable gives the header as stored followed by the decoded
 *    body (the Content-Transfer-Encoding field is not rewritten);
 *  - items come out in a fixed order: UID, FLAGS, INTERNALDATE,
 *    RFC822.SIZE, MODSEQ, ENVELOPE, BODY, BODYSTRUCTURE, then the sections
 *    (BODY[], BINARY[], BINARY.SIZE[], RFC822...) in request order.
 */
#ifndef TOASTER_PROTO_IMAP_FETCH_H
#define TOASTER_PROTO_IMAP_FETCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/limits.h"
#include "core/span.h"
#include "proto/imap/imap_flags.h"
#include "proto/imap/imap_mime.h"
#include "proto/imap/imap_parser.h"

#define IMAP_FETCH_SECTIONS_MAX 32
#define IMAP_FETCH_FIELDS_MAX 128

/* Suggested size of struct imap_fetch_work's buf: room for the ENVELOPE,
 * BODY and BODYSTRUCTURE of any message within IMAP_MIME_PARTS_MAX parts of
 * ordinary headers. */
#define IMAP_FETCH_WORK_BYTES_DEFAULT (1024u * 1024u)

/* Item bits (struct imap_fetch_request.items). */
#define IMAP_FETCH_UID 0x01u
#define IMAP_FETCH_FLAGS 0x02u
#define IMAP_FETCH_INTERNALDATE 0x04u
#define IMAP_FETCH_RFC822_SIZE 0x08u
#define IMAP_FETCH_MODSEQ 0x10u
#define IMAP_FETCH_ENVELOPE 0x20u
#define IMAP_FETCH_BODY 0x40u          /* BODY without brackets */
#define IMAP_FETCH_BODYSTRUCTURE 0x80u

enum imap_fetch_section_kind {
    IMAP_FETCH_SECTION_BODY = 0,      /* BODY[...] / BODY.PEEK[...] */
    IMAP_FETCH_SECTION_BINARY,        /* BINARY[...] / BINARY.PEEK[...] */
    IMAP_FETCH_SECTION_BINARY_SIZE,   /* BINARY.SIZE[...] */
    IMAP_FETCH_SECTION_RFC822,        /* = BODY[] */
    IMAP_FETCH_SECTION_RFC822_HEADER, /* = BODY.PEEK[HEADER] */
    IMAP_FETCH_SECTION_RFC822_TEXT,   /* = BODY[TEXT] */
};

enum imap_fetch_spec {
    IMAP_FETCH_SPEC_ALL = 0,          /* [] or [1.2]: no text after the part path */
    IMAP_FETCH_SPEC_HEADER,
    IMAP_FETCH_SPEC_HEADER_FIELDS,
    IMAP_FETCH_SPEC_HEADER_FIELDS_NOT,
    IMAP_FETCH_SPEC_TEXT,
    IMAP_FETCH_SPEC_MIME,
};

/* A header field name of HEADER.FIELDS (.NOT), borrowed from the command:
 * an atom, a quoted string's inside (escapes kept when is_escaped) or a
 * literal's data. */
struct imap_fetch_field {
    struct span name;
    bool        is_atom;    /* echoed as an atom, else as a quoted string */
    bool        is_escaped; /* name holds '\' escapes (quoted string) */
};

struct imap_fetch_section {
    uint8_t     kind;           /* enum imap_fetch_section_kind */
    uint8_t     spec;           /* enum imap_fetch_spec */
    bool        is_peek;
    bool        is_partial;
    uint32_t    partial_offset;
    uint32_t    partial_len;    /* >= 1 when is_partial */
    struct span part;           /* "1.2.3" (validated), empty for the message */
    uint32_t    part_depth;     /* numbers in part */
    uint32_t    field_first;    /* index into request.fields */
    uint32_t    field_count;
};

enum imap_fetch_needs {
    IMAP_FETCH_NEEDS_NOTHING = 0, /* index data only: data may be NULL */
    /* Only whole-message sections (BODY[], BODY.PEEK[], RFC822, with or
     * without a partial): data may be NULL when the message is_nul_free,
     * its bytes then go out by write_range. */
    IMAP_FETCH_NEEDS_SIZE,
    IMAP_FETCH_NEEDS_HEADER,      /* data may hold only the header block */
    IMAP_FETCH_NEEDS_MESSAGE,     /* data must hold the whole message */
};

struct imap_fetch_request {
    uint32_t                  items;          /* IMAP_FETCH_* bits */
    size_t                    section_count;
    struct imap_fetch_section sections[IMAP_FETCH_SECTIONS_MAX];
    size_t                    field_count;
    struct imap_fetch_field   fields[IMAP_FETCH_FIELDS_MAX];
    bool                      has_changedsince;
    uint64_t                  changedsince;
    bool                      is_vanished;
    /* Derived: a non-PEEK BODY[]/BINARY[], RFC822 or RFC822.TEXT is asked
     * for, so the caller sets \Seen before writing the responses. */
    bool                      sets_seen;
    enum imap_fetch_needs     needs;
};

/* imap_fetch_parse() flags. */
#define IMAP_FETCH_PARSE_F_UID 0x1u     /* UID FETCH: the UID item is implied */
#define IMAP_FETCH_PARSE_F_QRESYNC 0x2u /* QRESYNC enabled: VANISHED allowed (UID FETCH) */

enum imap_fetch_parse_result {
    IMAP_FETCH_PARSE_OK = 0,
    IMAP_FETCH_PARSE_BAD,      /* syntax or rule broken: "tag BAD <text>" */
    IMAP_FETCH_PARSE_TOO_MANY, /* over a bound: "tag BAD <text>" too */
};

/* Parse the FETCH arguments that start at node index first (the node after
 * the sequence set) up to the end of parsed's argument list: one item, a
 * macro (ALL, FAST, FULL) or a list of items, then optionally a modifier
 * list ((CHANGEDSINCE n) or (CHANGEDSINCE n VANISHED)). flags:
 * IMAP_FETCH_PARSE_F_*. Returns IMAP_FETCH_PARSE_OK and fills *req_out, or
 * an error with a short text (static) for the BAD reply in *text_out. The
 * request borrows from the command text. */
enum imap_fetch_parse_result imap_fetch_parse(const struct imap_parsed *parsed, uint32_t first,
                                              unsigned flags, struct imap_fetch_request *req_out,
                                              const char **text_out);

/* Where the response goes. Calls come in order; together they are exactly
 * the bytes of "* seq FETCH (...)\r\n". */
struct imap_fetch_sink {
    void *ctx;
    /* Bytes of the response. */
    void (*write)(void *ctx, const char *bytes, size_t len);
    /* The literal's content: len bytes of message->data starting at
     * offset; the caller may send them straight from the file (splice)
     * instead of copying. Only used for literal data that is a verbatim
     * range of the message (BODY[], BODY[TEXT], BODY[1], RFC822...);
     * decoded BINARY data and assembled headers (HEADER.FIELDS) go through
     * write(). */
    void (*write_range)(void *ctx, uint64_t offset, uint64_t len);
};

/* Caller-provided working memory, reused across messages (one per worker).
 * parts: at least 1 and at most IMAP_MIME_PARTS_MAX records (fewer parts
 * than the message has: BODYSTRUCTURE and part numbers see a truncated
 * tree); buf: ENVELOPE/BODY/BODYSTRUCTURE text, buf_bytes of it
 * (IMAP_FETCH_WORK_BYTES_DEFAULT is enough for ordinary mail). */
struct imap_fetch_work {
    struct imap_mime_part *parts;
    size_t                 parts_cap;
    char                  *buf;
    size_t                 buf_bytes;
};

struct imap_fetch_options {
    bool     add_uid;    /* UID FETCH */
    bool     add_flags;  /* \Seen was just set implicitly: FLAGS must be shown */
    bool     add_modseq; /* CONDSTORE enabled or CHANGEDSINCE */
    unsigned quote_flags; /* IMAP_QUOTE_UTF8 (UTF8=ACCEPT) or 0 */
};

/* Write one message's FETCH response for req into sink. msg->data must
 * hold what req->needs says (ASSERTed). Everything that can fail is
 * checked before the first byte is written: returns 0 when the response
 * was written, or, with nothing written, -EINVAL (BINARY of a part with
 * an unknown Content-Transfer-Encoding) or -E2BIG (work->buf too small);
 * imap_fetch_error_text() gives the NO text for those. */
int imap_fetch_write(const struct imap_fetch_request *req, const struct imap_message *msg,
                     const struct imap_fetch_options *options, struct imap_fetch_work *work,
                     const struct imap_fetch_sink *sink);

/* "[UNKNOWN-CTE] ..." / "[LIMIT] ..." for a negative imap_fetch_write()
 * result; a generic text for anything else. */
const char *imap_fetch_error_text(int error);

#endif
