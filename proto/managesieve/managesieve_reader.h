/*
 * proto/managesieve/managesieve_reader.h - framing of ManageSieve commands
 * (RFC 5804 section 4): an atom naming the command, then arguments
 * separated by one space - atoms and numbers, quoted strings (at most
 * 1024 octets, `\"` and `\\` the only escapes) and literals (`{N+}` as
 * the RFC has clients send them; `{N}` is taken the same way, without a
 * continuation, as Pigeonhole does, since ManageSieve has none) - up to
 * CRLF (a bare LF is accepted).
 *
 * Fed bytes, it yields one whole command at a time. Arguments are kept in
 * a small inline area; one literal per command may be large (a script for
 * PUTSCRIPT or CHECKSCRIPT): the reader asks its owner for a buffer of the
 * announced size, bounded by big_literal_bytes_max. A literal above that
 * bound, or a line above line_bytes_max, is read to its end and thrown
 * away, and the command is reported as an error, so the conversation stays
 * in step; a literal whose size no client could mean (above
 * MANAGESIEVE_LITERAL_SKIP_CEILING) is fatal.
 *
 * Pure: no sockets, no allocation of its own. Any thread, one reader per
 * connection.
 */
#ifndef TOASTER_PROTO_MANAGESIEVE_READER_H
#define TOASTER_PROTO_MANAGESIEVE_READER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/span.h"

#define MANAGESIEVE_ARGS_MAX 4u            /* no command takes more than 3 */
#define MANAGESIEVE_INLINE_BYTES 4096u     /* atoms, quoted strings, small literals of one command */
#define MANAGESIEVE_QUOTED_BYTES_MAX 1024u /* RFC 5804 section 4 */
#define MANAGESIEVE_NAME_BYTES_MAX 32u     /* the command name */
/* Past this a literal is not skipped but ends the conversation. */
#define MANAGESIEVE_LITERAL_SKIP_CEILING (64u * 1024 * 1024)

enum managesieve_arg_kind {
    MANAGESIEVE_ARG_ATOM,   /* includes numbers: see managesieve_arg_number() */
    MANAGESIEVE_ARG_STRING, /* quoted or literal */
};

struct managesieve_arg {
    enum managesieve_arg_kind kind;
    bool is_literal;
    struct span bytes; /* inline area or the owner's big buffer */
};

struct managesieve_command {
    struct span name; /* as sent; compare without case */
    struct managesieve_arg args[MANAGESIEVE_ARGS_MAX];
    uint32_t arg_count;
    char *big_buffer; /* the owner's buffer holding a big literal, or NULL */
};

enum managesieve_read_status {
    MANAGESIEVE_READ_MORE,    /* every byte consumed, no command yet */
    MANAGESIEVE_READ_COMMAND, /* a command is complete (managesieve_reader_command()) */
    MANAGESIEVE_READ_ERROR,   /* a malformed or oversized command was read
                               * to its end: answer NO with ..._error() */
    MANAGESIEVE_READ_FATAL,   /* the stream cannot be followed: BYE and close */
};

enum managesieve_read_error {
    MANAGESIEVE_ERROR_NONE,
    MANAGESIEVE_ERROR_SYNTAX,         /* bad token, stray byte, missing name */
    MANAGESIEVE_ERROR_LINE_TOO_LONG,
    MANAGESIEVE_ERROR_TOO_MANY_ARGS,
    MANAGESIEVE_ERROR_LITERAL_TOO_BIG, /* above big_literal_bytes_max: QUOTA/MAXSIZE */
    MANAGESIEVE_ERROR_NO_MEMORY,       /* the owner had no buffer: TRYLATER */
};

struct managesieve_reader_config {
    size_t line_bytes_max;        /* all bytes of a command outside big literals */
    size_t big_literal_bytes_max; /* a script */
    /* Lend a buffer of bytes octets for a big literal (NULL: none now).
     * The reader hands it back through the command (big_buffer) or, when
     * the command is thrown away, through release. */
    char *(*big_acquire)(void *owner, size_t bytes);
    void (*big_release)(void *owner, char *buffer);
    void *owner;
};

/* Reader state; fields are private. */
struct managesieve_reader {
    const struct managesieve_reader_config *config;
    int state;
    enum managesieve_read_error error;
    size_t line_bytes;   /* counted against line_bytes_max */
    uint64_t literal_left;
    uint64_t literal_size;
    uint32_t literal_digits;
    bool is_literal_skipped;
    bool is_quoted_escape;
    bool is_string_line;
    struct managesieve_command command;
    size_t inline_len;
    char inline_bytes[MANAGESIEVE_INLINE_BYTES];
};

void managesieve_reader_init(struct managesieve_reader *reader,
                             const struct managesieve_reader_config *config);

/* Consume bytes until a command or an error is complete, or all are used.
 * *consumed_out says how many were taken. After READ_COMMAND or
 * READ_ERROR, call managesieve_reader_next() before feeding again. */
enum managesieve_read_status managesieve_reader_feed(struct managesieve_reader *reader,
                                                     const char *in, size_t len,
                                                     size_t *consumed_out);

/* The complete command (READ_COMMAND), valid until ..._next(). */
const struct managesieve_command *managesieve_reader_command(const struct managesieve_reader *reader);
enum managesieve_read_error managesieve_reader_error(const struct managesieve_reader *reader);

/* Between commands: forget the last one. A big buffer still held by the
 * command is released unless the caller took it (managesieve_reader_take_big()). */
void managesieve_reader_next(struct managesieve_reader *reader);

/* The next line is a lone string, without a command name (a SASL
 * response, RFC 5804 2.1): it comes back as a command with an empty name
 * and one argument. Call between commands; ..._next() ends the mode. */
void managesieve_reader_expect_string_line(struct managesieve_reader *reader);

/* Take ownership of the command's big buffer (the owner frees it). */
char *managesieve_reader_take_big(struct managesieve_reader *reader);

/* True between commands (nothing of the next one read yet). */
bool managesieve_reader_is_idle(const struct managesieve_reader *reader);

/* Release any buffer held (the connection ends). */
void managesieve_reader_finish(struct managesieve_reader *reader);

/* An atom made only of digits, as a number (at most UINT32_MAX): true
 * and *value_out, else false. */
bool managesieve_arg_number(const struct managesieve_arg *arg, uint32_t *value_out);

#endif
