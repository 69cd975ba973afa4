/*
 * proto/smtp/smtp_parser.h - SMTP command lines into structured commands.
 *
 * Pure: no I/O, no allocation, no state between calls. Input is one command
 * line without its line end (the session finds line ends and enforces
 * SMTP_LINE_BYTES_MAX). Output spans borrow from that line.
 */
#ifndef TOASTER_PROTO_SMTP_PARSER_H
#define TOASTER_PROTO_SMTP_PARSER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/limits.h"
#include "core/span.h"

enum smtp_verb {
    SMTP_VERB_UNKNOWN = 0,
    SMTP_VERB_HELO,
    SMTP_VERB_EHLO,
    SMTP_VERB_MAIL,
    SMTP_VERB_RCPT,
    SMTP_VERB_DATA,
    SMTP_VERB_BDAT,
    SMTP_VERB_RSET,
    SMTP_VERB_NOOP,
    SMTP_VERB_QUIT,
    SMTP_VERB_VRFY,
    SMTP_VERB_EXPN,
    SMTP_VERB_HELP,
    SMTP_VERB_STARTTLS,
    SMTP_VERB_AUTH,
    SMTP_VERB_COUNT,
};

/* Why a line did not parse; each maps to one reply in the session. */
enum smtp_parse_error {
    SMTP_PARSE_OK = 0,
    SMTP_PARSE_UNKNOWN_VERB,      /* 500 5.5.2 */
    SMTP_PARSE_SYNTAX,            /* 501 5.5.4: arguments malformed */
    SMTP_PARSE_BAD_PATH,          /* 501 5.1.7 (MAIL) / 501 5.1.3 (RCPT): address syntax */
    SMTP_PARSE_PATH_TOO_LONG,     /* 501 5.1.7 / 5.1.3 */
    SMTP_PARSE_TOO_MANY_PARAMS,   /* 501 5.5.4 */
    SMTP_PARSE_NUL_BYTE,          /* 500 5.5.2: NUL in a command */
};

struct smtp_param {
    struct span keyword;  /* e.g. "SIZE"; compared case-insensitively */
    struct span value;    /* after '='; empty (len 0, ptr NULL) when there was no '=' */
    bool        has_value;
};

/* A path as given in MAIL FROM:<...> or RCPT TO:<...>. */
struct smtp_path {
    bool        is_null;      /* "<>": only valid for MAIL */
    bool        is_postmaster;/* RCPT TO:<postmaster> (any case, no domain) */
    bool        has_source_route; /* "<@a,@b:user@d>": the route was dropped */
    bool        is_utf8;      /* any byte >= 0x80 in the mailbox */
    struct span mailbox;      /* "local@domain" as written (quotes kept), route removed */
    struct span local_part;   /* part of mailbox before the last '@' (quotes kept) */
    struct span domain;       /* after the last '@'; empty for bare postmaster */
};

struct smtp_cmd {
    enum smtp_verb        verb;
    struct span           verb_text;   /* the verb as sent */
    struct span           argument;    /* everything after the verb and one space, trimmed */
    /* MAIL and RCPT only: */
    struct smtp_path      path;
    struct smtp_param     params[SMTP_PARAMS_MAX];
    size_t                param_count;
    /* BDAT only: */
    uint64_t              bdat_size;
    bool                  bdat_last;
};

/* Parse one command line (no CRLF). Returns SMTP_PARSE_OK and fills *cmd,
 * or an error (cmd->verb is still set when the verb was recognised, so the
 * session can choose 501 with the right enhanced code).
 *
 * Grammar (RFC 5321 section 4.1, with Postfix's usual tolerance):
 *  - verbs are case-insensitive; "MAIL FROM:" and "RCPT TO:" allow spaces
 *    after the colon; the path must be in angle brackets, except that a bare
 *    address with no spaces is accepted as Postfix does by default;
 *  - paths: Dot-string or Quoted-string local part, domain name or address
 *    literal ([1.2.3.4], [IPv6:...]); source routes are accepted and dropped
 *    (has_source_route set); "<>" only for MAIL; "<postmaster>" for RCPT;
 *  - parameters: esmtp-keyword ["=" esmtp-value], separated by spaces,
 *    at most SMTP_PARAMS_MAX;
 *  - BDAT: "BDAT <size> [LAST]", size in decimal, at most 20 digits and no
 *    overflow;
 *  - a NUL byte anywhere is SMTP_PARSE_NUL_BYTE. */
enum smtp_parse_error smtp_parser_parse(const char *line, size_t len, struct smtp_cmd *cmd);

/* Name of a verb for logs ("MAIL"). */
const char *smtp_verb_name(enum smtp_verb verb);

/* Decode an xtext value (RFC 3461 section 4: "+HH" escapes) as used in
 * ORCPT and ENVID. Returns the decoded length, or -1 when malformed or when
 * it does not fit in out_bytes. */
long smtp_xtext_decode(struct span in, char *out, size_t out_bytes);

#endif
