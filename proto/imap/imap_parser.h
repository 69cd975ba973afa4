/*
 * proto/imap/imap_parser.h - one framed IMAP command into tag, command name
 * and an argument tree.
 *
 * Pure: no I/O, no allocation, no state between calls. Input is what
 * imap_reader produced (struct imap_command_text); the tree lives in a
 * caller-provided array of nodes, and every span borrows from the command
 * text (valid as long as the reader's buffer is).
 *
 * The parser is generic (RFC 3501 / RFC 9051 section 9 lexical rules); what
 * a command's arguments mean is the session's business (one file per
 * command). Shapes it produces:
 *  - atoms: maximal runs of ATOM-CHAR plus the astring and list extras
 *    ']' '%' '*' (so "[Gmail]/Sent", "INBOX.*", "1:*", "\Seen" are atoms);
 *    ASCII only; the session checks which characters its argument allows
 *    (IMAP_NODE_F_WILDCARD, IMAP_NODE_F_RESP_SPECIAL help);
 *  - NIL (case-insensitive; the text is kept, so a mailbox named "nil" can
 *    still be read as an astring);
 *  - quoted strings, escapes kept in the span (IMAP_NODE_F_ESCAPED; decode
 *    with imap_parser_unquote()); 8-bit bytes only with IMAP_PARSE_F_UTF8
 *    (UTF8=ACCEPT enabled) and then only well-formed UTF-8;
 *  - literals: the inline data, or IMAP_NODE_F_STREAMED when the reader
 *    handed the data to the session in chunks (an APPEND message);
 *  - parenthesized lists, at most IMAP_PARSER_DEPTH_MAX deep;
 *  - fetch sections: BODY, BODY.PEEK, BINARY, BINARY.PEEK and BINARY.SIZE
 *    directly followed by '[' give an IMAP_NODE_SECTION whose children are
 *    the tokens between the brackets (an atom like "1.2.HEADER.FIELDS" and a
 *    list of header names), with an optional "<offset.length>" partial.
 * Tokens are separated by one or more spaces (RFC 3501 says exactly one; we
 * tolerate more, and trailing spaces, as Dovecot does).
 */
#ifndef TOASTER_PROTO_IMAP_PARSER_H
#define TOASTER_PROTO_IMAP_PARSER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/limits.h"
#include "core/span.h"
#include "proto/imap/imap_reader.h"

#define IMAP_NODE_NONE UINT32_MAX

enum imap_command {
    IMAP_CMD_UNKNOWN = 0,
    IMAP_CMD_CAPABILITY,
    IMAP_CMD_NOOP,
    IMAP_CMD_LOGOUT,
    IMAP_CMD_STARTTLS,
    IMAP_CMD_AUTHENTICATE,
    IMAP_CMD_LOGIN,
    IMAP_CMD_ENABLE,
    IMAP_CMD_ID,
    IMAP_CMD_SELECT,
    IMAP_CMD_EXAMINE,
    IMAP_CMD_CREATE,
    IMAP_CMD_DELETE,
    IMAP_CMD_RENAME,
    IMAP_CMD_SUBSCRIBE,
    IMAP_CMD_UNSUBSCRIBE,
    IMAP_CMD_LIST,
    IMAP_CMD_LSUB,
    IMAP_CMD_NAMESPACE,
    IMAP_CMD_STATUS,
    IMAP_CMD_APPEND,
    IMAP_CMD_IDLE,
    IMAP_CMD_CHECK,
    IMAP_CMD_CLOSE,
    IMAP_CMD_UNSELECT,
    IMAP_CMD_EXPUNGE,
    IMAP_CMD_SEARCH,
    IMAP_CMD_FETCH,
    IMAP_CMD_STORE,
    IMAP_CMD_COPY,
    IMAP_CMD_MOVE,
    IMAP_CMD_SORT,
    IMAP_CMD_THREAD,
    IMAP_CMD_GETQUOTA,
    IMAP_CMD_GETQUOTAROOT,
    IMAP_CMD_SETQUOTA,
    IMAP_CMD_GETMETADATA,
    IMAP_CMD_SETMETADATA,
    IMAP_CMD_COMPRESS,
    IMAP_CMD_NOTIFY,
    IMAP_CMD_COUNT,
};

enum imap_node_kind {
    IMAP_NODE_LIST = 0, /* "(...)"; nodes[0] is the list of all arguments */
    IMAP_NODE_ATOM,
    IMAP_NODE_NIL,
    IMAP_NODE_QUOTED,   /* text: between the quotes, escapes kept */
    IMAP_NODE_LITERAL,  /* text: the data (inline), or empty when streamed */
    IMAP_NODE_SECTION,  /* text: the name ("BODY.PEEK"); section: between the
                         * brackets; children: tokens between the brackets */
};

#define IMAP_NODE_F_ESCAPED 0x01u      /* quoted string holds '\' escapes */
#define IMAP_NODE_F_8BIT 0x02u         /* bytes >= 0x80 (quoted, literal) */
#define IMAP_NODE_F_STREAMED 0x04u     /* literal data went to the session */
#define IMAP_NODE_F_BINARY 0x08u       /* literal8 "~{n}" */
#define IMAP_NODE_F_PARTIAL 0x10u      /* section has "<offset.length>" */
#define IMAP_NODE_F_WILDCARD 0x20u     /* atom holds '%' or '*' */
#define IMAP_NODE_F_RESP_SPECIAL 0x40u /* atom holds ']' or '[' */
#define IMAP_NODE_F_NUL 0x80u          /* literal8 data holds NUL */

struct imap_node {
    struct span text;
    struct span section;      /* IMAP_NODE_SECTION only */
    uint32_t    next;         /* next sibling, or IMAP_NODE_NONE */
    uint32_t    child_count;  /* LIST and SECTION; children start at index + 1 */
    uint32_t    literal_index;/* IMAP_NODE_LITERAL: index into the command's literals */
    uint32_t    partial_offset;
    uint32_t    partial_len;
    uint8_t     kind;         /* enum imap_node_kind */
    uint8_t     flags;        /* IMAP_NODE_F_* */
};

/* Parser options. */
#define IMAP_PARSE_F_UTF8 0x01u /* UTF8=ACCEPT enabled: UTF-8 in quoted strings */

enum imap_parse_error {
    IMAP_PARSE_OK = 0,
    IMAP_PARSE_BAD_TAG,         /* no valid tag: answer "* BAD" */
    IMAP_PARSE_NO_COMMAND,      /* a tag and nothing else */
    IMAP_PARSE_UNKNOWN_COMMAND, /* "tag BAD"; name is set */
    IMAP_PARSE_BAD_UID,         /* UID before a command that has no UID form */
    IMAP_PARSE_SYNTAX,          /* a malformed token */
    IMAP_PARSE_UNBALANCED,      /* '(' / ')' / '[' / ']' do not pair */
    IMAP_PARSE_TOO_DEEP,        /* over IMAP_PARSER_DEPTH_MAX */
    IMAP_PARSE_TOO_MANY_NODES,  /* over the caller's node array */
    IMAP_PARSE_8BIT,            /* 8-bit text where not allowed, or bad UTF-8 */
    IMAP_PARSE_NUL,             /* NUL in a literal that is not literal8 */
};

struct imap_parsed {
    struct span        tag;
    struct span        name;       /* command name as sent (after "UID") */
    enum imap_command  command;
    bool               is_uid;
    bool               has_bare_lf;/* copied from the reader */
    struct imap_node  *nodes;      /* the caller's array; nodes[0] = arguments */
    size_t             node_count;
    size_t             error_offset; /* where parsing stopped (logs) */
};

/* Parse one command. nodes/nodes_max: the caller's array (nodes_max >= 1).
 * flags: IMAP_PARSE_F_*. Returns IMAP_PARSE_OK and fills *out, or an error;
 * on error tag (when valid), name, command and is_uid are still set so the
 * session can reply, and node_count may be partial (do not use the tree).
 * Linear in the command length. */
enum imap_parse_error imap_parser_parse(const struct imap_command_text *cmd, unsigned flags,
                                        struct imap_node *nodes, size_t nodes_max,
                                        struct imap_parsed *out);

/* Name of a command ("FETCH"). */
const char *imap_command_name(enum imap_command command);

/* Name of an error for logs and BAD texts. */
const char *imap_parse_error_name(enum imap_parse_error error);

/* Decode a quoted string's escapes (IMAP_NODE_QUOTED text) into out.
 * Returns the decoded length, or -1 when it does not fit in out_bytes. */
long imap_parser_unquote(struct span quoted, char *out, size_t out_bytes);

/* First child of a LIST or SECTION node, next sibling: IMAP_NODE_NONE at
 * the end. */
uint32_t imap_node_first_child(const struct imap_parsed *parsed, uint32_t index);
uint32_t imap_node_next(const struct imap_parsed *parsed, uint32_t index);

/* An atom that is a number (RFC 3501 "number", 0..2^32-1, digits only)?
 * Sets *value_out. */
bool imap_node_u32(const struct imap_node *node, uint32_t *value_out);

/* An atom, quoted string, inline literal or NIL given as a string (astring
 * or nstring semantics are the session's choice): the text. */
bool imap_node_is_string(const struct imap_node *node);

#endif
