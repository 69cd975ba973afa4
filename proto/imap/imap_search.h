/*
 * proto/imap/imap_search.h - SEARCH and UID SEARCH: the arguments compiled
 * into a program, messages matched one at a time, the answer written.
 *
 * Grammar: RFC 3501 / RFC 9051 section 6.4.4 search keys, RFC 4731 / RFC
 * 9051 ESEARCH result options (RETURN (MIN MAX ALL COUNT)), RFC 7162
 * MODSEQ, RFC 5032 OLDER / YOUNGER. Not supported: RETURN (SAVE) and "$"
 * (RFC 5182 SEARCHRES; both answer BAD), RETURN (PARTIAL), FUZZY.
 *
 * Pure protocol code, no I/O. The program lives in caller storage (keys,
 * sequence-set ranges, a byte arena for strings) and borrows nothing from
 * the command text, so it may travel to a worker thread with its storage.
 * imap_search_match() is const on the program and may run on any thread;
 * it does not allocate (glibc's iconv_open aside, see imap_text.h) and
 * uses about 32 KiB of stack when it reads bodies, so keys that need
 * content belong on worker threads; with imap_search_needs() == 0 a match
 * is a few comparisons and fine on the reactor.
 *
 * Semantics worth knowing:
 *  - strings are compared as UTF-8 with imap_text's case folding, match
 *    means "contains"; CHARSET must be UTF-8 or US-ASCII (any case), both
 *    read as UTF-8; anything else gives IMAP_SEARCH_BADCHARSET;
 *  - FROM, TO, CC, BCC, SUBJECT and HEADER search every field of that name
 *    in the top-level header, RFC 2047 words decoded; an empty string
 *    matches when the field exists (RFC 3501 says so for HEADER);
 *  - BODY searches every text/ part (a part without Content-Type counts
 *    as text/plain), also inside message/rfc822 parts, after undoing
 *    base64 / quoted-printable and converting its charset (unknown
 *    charsets: the bytes are read as UTF-8); TEXT also searches the
 *    top-level header and the headers of attached messages;
 *  - BEFORE, ON, SINCE compare the calendar date of the internal date in
 *    its own offset (internal_date_tz_minutes); SENTBEFORE, SENTON,
 *    SENTSINCE the date written in the Date: field (its own zone); a
 *    message without a readable Date: field uses its internal date there,
 *    as Dovecot does;
 *  - OLDER n: internal date <= now - n; YOUNGER n: internal date >= now -
 *    n (Dovecot's boundaries; a message exactly n seconds old is both);
 *  - MODSEQ compares the message's one mod-sequence whatever the entry
 *    name (we keep no per-flag mod-sequences); the answer then carries
 *    "(MODSEQ n)" / "MODSEQ n";
 *  - KEYWORD \Seen (a system flag) means SEEN.
 *
 * Limits: the caller's key array (IMAP_SEARCH_TOO_MANY_KEYS), range array
 * and string arena; NOT / OR / parenthesis nesting at most
 * IMAP_PARSER_DEPTH_MAX; a search string at most IMAP_TEXT_NEEDLE_BYTES_MAX
 * bytes; decoded header values IMAP_TEXT_HEADER_BYTES_MAX; MIME as
 * imap_mime (the caller's part array). Matching one message is linear in
 * its size times the number of text keys.
 */
#ifndef TOASTER_PROTO_IMAP_SEARCH_H
#define TOASTER_PROTO_IMAP_SEARCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/limits.h"
#include "core/span.h"
#include "proto/imap/imap_flags.h"
#include "proto/imap/imap_mime.h"
#include "proto/imap/imap_parser.h"
#include "proto/imap/imap_quote.h"
#include "proto/imap/imap_seqset.h"

#define IMAP_SEARCH_NONE UINT32_MAX

/* Sensible storage sizes for one SEARCH command. */
#define IMAP_SEARCH_KEYS_DEFAULT 256u
#define IMAP_SEARCH_RANGES_DEFAULT IMAP_SEQSET_ARRAY_LEN_DEFAULT
#define IMAP_SEARCH_TEXT_BYTES_DEFAULT (16u * 1024)

/* What the program reads (imap_search_needs); 0: flags and index only. */
#define IMAP_SEARCH_NEEDS_HEADER 0x1u /* the header block (data may hold only it) */
#define IMAP_SEARCH_NEEDS_BODY 0x2u   /* the whole message */

/* Between the parts of a body text (imap_search_body_text): a byte UTF-8
 * never uses, so a folded needle cannot match across two parts. */
#define IMAP_SEARCH_BODY_TEXT_SEPARATOR '\xff'

/* RETURN options (ESEARCH). */
#define IMAP_SEARCH_RETURN_MIN 0x1u
#define IMAP_SEARCH_RETURN_MAX 0x2u
#define IMAP_SEARCH_RETURN_ALL 0x4u
#define IMAP_SEARCH_RETURN_COUNT 0x8u

/* imap_search_parse flags. */
#define IMAP_SEARCH_F_REV2 0x1u /* IMAP4rev2 enabled: plain SEARCH answers with ESEARCH */

/* The response code for IMAP_SEARCH_BADCHARSET: "tag NO " this " ...". */
#define IMAP_SEARCH_BADCHARSET_CODE "[BADCHARSET (UTF-8 US-ASCII)]"

enum imap_search_error {
    IMAP_SEARCH_OK = 0,
    IMAP_SEARCH_BADCHARSET,       /* answer "tag NO [BADCHARSET (UTF-8 US-ASCII)] ..." */
    IMAP_SEARCH_SYNTAX,           /* everything below: "tag BAD <text>" */
    IMAP_SEARCH_UNKNOWN_KEY,
    IMAP_SEARCH_MISSING_ARGUMENT,
    IMAP_SEARCH_BAD_STRING,
    IMAP_SEARCH_BAD_DATE,
    IMAP_SEARCH_BAD_NUMBER,
    IMAP_SEARCH_BAD_SET,
    IMAP_SEARCH_BAD_RETURN,
    IMAP_SEARCH_NO_SAVE,          /* RETURN (SAVE) or "$": SEARCHRES not supported */
    IMAP_SEARCH_TOO_DEEP,
    IMAP_SEARCH_TOO_MANY_KEYS,
    IMAP_SEARCH_TOO_MANY_RANGES,
    IMAP_SEARCH_STRING_TOO_LONG,
    IMAP_SEARCH_TEXT_FULL,        /* strings over the caller's arena */
};

/* Operations of the program (private to imap_search.c; here only so the
 * caller can size struct imap_search_key arrays). */
enum imap_search_op {
    IMAP_SEARCH_OP_AND = 0, IMAP_SEARCH_OP_OR, IMAP_SEARCH_OP_NOT, IMAP_SEARCH_OP_ALL,
    IMAP_SEARCH_OP_FLAG, IMAP_SEARCH_OP_UNFLAG, IMAP_SEARCH_OP_NEW, IMAP_SEARCH_OP_OLD,
    IMAP_SEARCH_OP_KEYWORD, IMAP_SEARCH_OP_UNKEYWORD, IMAP_SEARCH_OP_LARGER,
    IMAP_SEARCH_OP_SMALLER, IMAP_SEARCH_OP_BEFORE, IMAP_SEARCH_OP_ON, IMAP_SEARCH_OP_SINCE,
    IMAP_SEARCH_OP_SENTBEFORE, IMAP_SEARCH_OP_SENTON, IMAP_SEARCH_OP_SENTSINCE,
    IMAP_SEARCH_OP_OLDER, IMAP_SEARCH_OP_YOUNGER, IMAP_SEARCH_OP_MODSEQ, IMAP_SEARCH_OP_SEQ,
    IMAP_SEARCH_OP_UID, IMAP_SEARCH_OP_HEADER, IMAP_SEARCH_OP_BODY, IMAP_SEARCH_OP_TEXT,
};

struct imap_search_key {
    uint32_t           op;     /* enum imap_search_op */
    uint32_t           next;   /* next operand of the same AND / OR, or IMAP_SEARCH_NONE */
    uint32_t           child;  /* AND, OR, NOT: first operand */
    uint64_t           number; /* size, mod-sequence, seconds, day number or flag bit */
    struct span        name;   /* HEADER field name, KEYWORD (in the arena) */
    struct span        text;   /* folded search string (in the arena) */
    struct imap_seqset set;    /* SEQ / UID: parsed, "*" unresolved */
};

/* Where a program lives; all owned by the caller, who keeps it alive as
 * long as the struct imap_search is used. */
struct imap_search_storage {
    struct imap_search_key *keys;
    size_t                  keys_max;
    struct imap_seq_range  *ranges;     /* shared by every sequence set */
    size_t                  ranges_max;
    char                   *text;       /* folded strings, names */
    size_t                  text_bytes;
};

struct imap_search {
    const struct imap_search_key *keys;
    size_t                        key_count;
    uint32_t                      root;        /* an AND key */
    unsigned                      needs;       /* IMAP_SEARCH_NEEDS_* */
    unsigned                      return_mask; /* IMAP_SEARCH_RETURN_* (ESEARCH only) */
    bool                          is_uid;      /* UID SEARCH: answer with UIDs */
    bool                          is_esearch;  /* answer "* ESEARCH" */
    bool                          has_modseq;  /* a MODSEQ key: answer carries MODSEQ */
};

/* What matching needs besides the message. */
struct imap_search_context {
    uint32_t               messages;  /* highest sequence number ("*" in sets) */
    uint32_t               uid_max;   /* highest UID in the mailbox ("*" in UID sets) */
    int64_t                now;       /* seconds since the epoch, for OLDER / YOUNGER */
    struct imap_mime_part *parts;     /* scratch for BODY / TEXT (the worker's own) */
    size_t                 parts_cap; /* 1..IMAP_MIME_PARTS_MAX */
};

/* Compile SEARCH arguments: first is the node of the first argument
 * (imap_node_first_child(parsed, 0) for SEARCH), IMAP_NODE_NONE when
 * there is none; is_uid comes from parsed. flags: IMAP_SEARCH_F_*.
 * Returns IMAP_SEARCH_OK and fills *search (which points into storage),
 * or an error (see enum; imap_search_error_text() for the BAD text). Safe
 * on any tree the parser produced; linear in the number of nodes (plus
 * the sequence sets' own cost). */
enum imap_search_error imap_search_parse(struct imap_search *search,
                                         const struct imap_parsed *parsed, uint32_t first,
                                         unsigned flags, const struct imap_search_storage *storage);

/* Short human text for "tag BAD <text>" (or the NO text for BADCHARSET). */
const char *imap_search_error_text(enum imap_search_error error);

/* IMAP_SEARCH_NEEDS_* bits: what the glue must load into struct
 * imap_message (data) before calling imap_search_match(). */
unsigned imap_search_needs(const struct imap_search *search);

/* Does message m match? m->data must hold what imap_search_needs() asked
 * for (a text key on a message without data does not match), except that
 * a message carrying its body text (m->body_folded, from
 * imap_search_body_text() with the same parts_cap) needs only the header
 * block in data when imap_search_body_text_suffices(). ctx->parts must be
 * set when IMAP_SEARCH_NEEDS_BODY is. */
bool imap_search_match(const struct imap_search *search, const struct imap_message *m,
                       const struct imap_search_context *ctx);

/* True when the program needs the body (IMAP_SEARCH_NEEDS_BODY) only for
 * what a body text holds (BODY, TEXT): a message with m->body_folded set
 * and its header block in data is then matched without its file. */
bool imap_search_body_text_suffices(const struct imap_search *search);

/* The searchable body text of a whole message (data, CRLF as stored):
 * what BODY searches, each text leaf with its transfer encoding undone,
 * its charset converted and case-folded exactly as the streaming match
 * reads it, the parts joined by IMAP_SEARCH_BODY_TEXT_SEPARATOR; then,
 * for TEXT, each header block of an attached message (as "Name: decoded
 * value\r\n" lines, folded), each after a separator. BODY x then is
 * memmem(out, *body_len_out, x) and the non-header half of TEXT x is
 * memmem(out, *len_out, x), with the same answers as reading the message
 * (for the same parts_cap: parts is scratch as in imap_search_context).
 * Returns 0 and sets *body_len_out <= *len_out <= out_bytes, or -ENOBUFS
 * when the text does not fit out_bytes (out then holds a part of it).
 * Linear in data_len; no allocation (iconv aside, see imap_text.h); about
 * 24 KiB of stack. */
int imap_search_body_text(const char *data, size_t data_len, struct imap_mime_part *parts,
                          size_t parts_cap, char *out, size_t out_bytes, size_t *body_len_out,
                          size_t *len_out);

/* With a MODSEQ key and RETURN of only MIN and/or MAX, RFC 7162 wants the
 * highest mod-sequence of the MIN / MAX messages only, not of every match:
 * true then, and the caller passes that to imap_search_format(). */
bool imap_search_modseq_of_ends(const struct imap_search *search);

/* Write the untagged answer: numbers[0..count) are the matches in
 * ascending order (UIDs for UID SEARCH, else sequence numbers),
 * highest_modseq as the caller computed it (used only with has_modseq and
 * count > 0). Forms: "* SEARCH 2 3 5 (MODSEQ 917)\r\n" or
 * "* ESEARCH (TAG \"a1\") UID MIN 2 MAX 5 COUNT 3 ALL 2:3,5 MODSEQ 917\r\n"
 * (RFC 4731: no MIN / MAX / ALL / MODSEQ when nothing matched; COUNT 0).
 * Linear in count. Returns 0, or -ENOBUFS when out overflowed (out then
 * holds no partial answer past its overflow point; the caller discards
 * it). */
int imap_search_format(const struct imap_search *search, struct span tag,
                       const uint32_t *numbers, size_t count, uint64_t highest_modseq,
                       struct imap_out *out);

#endif
