/*
 * proto/managesieve/managesieve_reader.c - a byte-at-a-time state machine
 * that frames ManageSieve commands (see managesieve_reader.h). Literal
 * bodies are copied in blocks; everything else a byte at a time, which is
 * cheap for lines this short. After an error the rest of the line is
 * skipped, so the next command starts on a line of its own.
 */
#include "proto/managesieve/managesieve_reader.h"

#include <string.h>

#include "core/assertions.h"

enum reader_state {
    R_START,        /* before the command name */
    R_NAME,
    R_ARG_START,    /* after a space */
    R_ATOM,
    R_QUOTED,
    R_AFTER_ARG,    /* after a quoted string or literal: SP or end of line */
    R_LITERAL_SIZE, /* after "{" */
    R_LITERAL_CLOSE, /* after "+" */
    R_LITERAL_CR,   /* after "}" */
    R_LITERAL_LF,
    R_LITERAL_BODY,
    R_CR,           /* after CR at the end of the line */
    R_SKIP_LINE,    /* an error was found: discard up to LF */
    R_DONE,         /* a command or an error waits for ..._next() */
};

static bool
reader_is_atom_char(unsigned char c)
{
    if (c <= 0x20 || c >= 0x7f) {
        return false;
    }
    return strchr("(){\"\\%*]", c) == NULL;
}

void
managesieve_reader_init(struct managesieve_reader *reader,
                        const struct managesieve_reader_config *config)
{
    ASSERT(config->line_bytes_max > 0);
    memset(reader, 0, sizeof(*reader));
    reader->config = config;
    reader->state = R_START;
}

static void
reader_fail(struct managesieve_reader *reader, enum managesieve_read_error error)
{
    if (reader->error == MANAGESIEVE_ERROR_NONE) {
        reader->error = error;
    }
    reader->state = R_SKIP_LINE;
}

/* Append one byte of the name or the current argument to the inline area. */
static bool
reader_put(struct managesieve_reader *reader, char c)
{
    if (reader->inline_len >= sizeof(reader->inline_bytes)) {
        reader_fail(reader, MANAGESIEVE_ERROR_LINE_TOO_LONG);
        return false;
    }
    reader->inline_bytes[reader->inline_len++] = c;
    return true;
}

static struct managesieve_arg *
reader_current_arg(struct managesieve_reader *reader)
{
    ASSERT(reader->command.arg_count > 0);
    return &reader->command.args[reader->command.arg_count - 1];
}

/* Open a new argument of kind starting at the inline area's end. */
static bool
reader_open_arg(struct managesieve_reader *reader, enum managesieve_arg_kind kind)
{
    if (reader->command.arg_count >= MANAGESIEVE_ARGS_MAX) {
        reader_fail(reader, MANAGESIEVE_ERROR_TOO_MANY_ARGS);
        return false;
    }
    struct managesieve_arg *arg = &reader->command.args[reader->command.arg_count++];
    arg->kind = kind;
    arg->is_literal = false;
    arg->bytes = span_make(reader->inline_bytes + reader->inline_len, 0);
    return true;
}

/* The end of the line: a command, or the error found on it. */
static enum managesieve_read_status
reader_end_line(struct managesieve_reader *reader)
{
    reader->state = R_DONE;
    return reader->error == MANAGESIEVE_ERROR_NONE ? MANAGESIEVE_READ_COMMAND
                                                   : MANAGESIEVE_READ_ERROR;
}

/* The literal's size is known and its CRLF read: choose where it goes. */
static enum managesieve_read_status
reader_start_literal(struct managesieve_reader *reader)
{
    const struct managesieve_reader_config *config = reader->config;
    uint64_t size = reader->literal_size;
    struct managesieve_arg *arg = reader_current_arg(reader);
    reader->literal_left = size;
    reader->is_literal_skipped = false;
    reader->state = R_LITERAL_BODY;
    if (size <= sizeof(reader->inline_bytes) - reader->inline_len &&
        reader->line_bytes + size <= config->line_bytes_max) {
        reader->line_bytes += size;
        arg->bytes = span_make(reader->inline_bytes + reader->inline_len, 0);
        return MANAGESIEVE_READ_MORE;
    }
    if (size > MANAGESIEVE_LITERAL_SKIP_CEILING) {
        reader->state = R_DONE;
        return MANAGESIEVE_READ_FATAL;
    }
    if (reader->command.big_buffer != NULL || size > config->big_literal_bytes_max) {
        reader->error = reader->error != MANAGESIEVE_ERROR_NONE
                            ? reader->error
                            : (reader->command.big_buffer != NULL
                                   ? MANAGESIEVE_ERROR_LINE_TOO_LONG
                                   : MANAGESIEVE_ERROR_LITERAL_TOO_BIG);
        reader->is_literal_skipped = true;
        return MANAGESIEVE_READ_MORE;
    }
    char *buffer = config->big_acquire != NULL
                       ? config->big_acquire(config->owner, size == 0 ? 1 : (size_t)size)
                       : NULL;
    if (buffer == NULL) {
        if (reader->error == MANAGESIEVE_ERROR_NONE) {
            reader->error = MANAGESIEVE_ERROR_NO_MEMORY;
        }
        reader->is_literal_skipped = true;
        return MANAGESIEVE_READ_MORE;
    }
    reader->command.big_buffer = buffer;
    arg->bytes = span_make(buffer, 0);
    return MANAGESIEVE_READ_MORE;
}

/* Copy or skip literal bytes; returns how many were used. */
static size_t
reader_literal_body(struct managesieve_reader *reader, const char *in, size_t len)
{
    size_t n = len < reader->literal_left ? len : (size_t)reader->literal_left;
    if (!reader->is_literal_skipped) {
        struct managesieve_arg *arg = reader_current_arg(reader);
        memcpy((char *)arg->bytes.ptr + arg->bytes.len, in, n);
        arg->bytes.len += n;
        if (arg->bytes.ptr >= reader->inline_bytes &&
            arg->bytes.ptr < reader->inline_bytes + sizeof(reader->inline_bytes)) {
            reader->inline_len += n;
        }
    }
    reader->literal_left -= n;
    if (reader->literal_left == 0) {
        reader->state = reader->is_literal_skipped ? R_SKIP_LINE : R_AFTER_ARG;
    }
    return n;
}

/* One byte outside literal bodies. Returns a status other than READ_MORE
 * when the byte completes something. */
static enum managesieve_read_status
reader_byte(struct managesieve_reader *reader, char c)
{
    unsigned char u = (unsigned char)c;
    if (reader->state != R_SKIP_LINE) {
        reader->line_bytes++;
        if (reader->line_bytes > reader->config->line_bytes_max) {
            reader_fail(reader, MANAGESIEVE_ERROR_LINE_TOO_LONG);
        }
    }
    switch ((enum reader_state)reader->state) {
    case R_START:
        if (c == '\r' || c == '\n') { /* empty lines are ignored */
            reader->line_bytes = 0;
            return MANAGESIEVE_READ_MORE;
        }
        if (reader->is_string_line) { /* a SASL response: one string alone */
            reader->line_bytes--;
            reader->state = R_ARG_START;
            return reader_byte(reader, c);
        }
        if (!reader_is_atom_char(u)) {
            reader_fail(reader, MANAGESIEVE_ERROR_SYNTAX);
            return MANAGESIEVE_READ_MORE;
        }
        reader->command.name = span_make(reader->inline_bytes + reader->inline_len, 0);
        reader->state = R_NAME;
        __attribute__((fallthrough));
    case R_NAME:
        if (reader_is_atom_char(u)) {
            if (reader->command.name.len >= MANAGESIEVE_NAME_BYTES_MAX) {
                reader_fail(reader, MANAGESIEVE_ERROR_SYNTAX);
            } else if (reader_put(reader, c)) {
                reader->command.name.len++;
            }
            return MANAGESIEVE_READ_MORE;
        }
        break; /* SP or end of line, below */
    case R_ARG_START:
        if (c == '"') {
            if (reader_open_arg(reader, MANAGESIEVE_ARG_STRING)) {
                reader->state = R_QUOTED;
                reader->is_quoted_escape = false;
            }
        } else if (c == '{') {
            if (reader_open_arg(reader, MANAGESIEVE_ARG_STRING)) {
                reader_current_arg(reader)->is_literal = true;
                reader->literal_size = 0;
                reader->literal_digits = 0;
                reader->state = R_LITERAL_SIZE;
                reader->command.args[reader->command.arg_count - 1].bytes.len = 0;
            }
        } else if (reader_is_atom_char(u)) {
            if (reader_open_arg(reader, MANAGESIEVE_ARG_ATOM) && reader_put(reader, c)) {
                reader_current_arg(reader)->bytes.len = 1;
                reader->state = R_ATOM;
            }
        } else {
            reader_fail(reader, MANAGESIEVE_ERROR_SYNTAX);
            if (c == '\n') {
                return reader_end_line(reader);
            }
        }
        return MANAGESIEVE_READ_MORE;
    case R_ATOM:
        if (reader_is_atom_char(u)) {
            if (reader_put(reader, c)) {
                reader_current_arg(reader)->bytes.len++;
            }
            return MANAGESIEVE_READ_MORE;
        }
        break;
    case R_QUOTED: {
        struct managesieve_arg *arg = reader_current_arg(reader);
        if (reader->is_quoted_escape) {
            reader->is_quoted_escape = false;
            if (c != '"' && c != '\\') {
                reader_fail(reader, MANAGESIEVE_ERROR_SYNTAX);
                return c == '\n' ? reader_end_line(reader) : MANAGESIEVE_READ_MORE;
            }
        } else if (c == '\\') {
            reader->is_quoted_escape = true;
            return MANAGESIEVE_READ_MORE;
        } else if (c == '"') {
            reader->state = R_AFTER_ARG;
            return MANAGESIEVE_READ_MORE;
        } else if (c == '\r' || c == '\n' || c == '\0') {
            reader_fail(reader, MANAGESIEVE_ERROR_SYNTAX);
            return c == '\n' ? reader_end_line(reader) : MANAGESIEVE_READ_MORE;
        }
        if (arg->bytes.len >= MANAGESIEVE_QUOTED_BYTES_MAX) {
            reader_fail(reader, MANAGESIEVE_ERROR_LINE_TOO_LONG);
        } else if (reader_put(reader, c)) {
            arg->bytes.len++;
        }
        return MANAGESIEVE_READ_MORE;
    }
    case R_AFTER_ARG:
        break;
    case R_LITERAL_SIZE:
        if (c >= '0' && c <= '9') {
            reader->literal_digits++;
            reader->literal_size = reader->literal_size * 10 + (uint64_t)(c - '0');
            if (reader->literal_size > 10ull * MANAGESIEVE_LITERAL_SKIP_CEILING) {
                reader->state = R_DONE;
                return MANAGESIEVE_READ_FATAL;
            }
        } else if (c == '+' && reader->literal_digits > 0) {
            reader->state = R_LITERAL_CLOSE;
        } else if (c == '}' && reader->literal_digits > 0) {
            reader->state = R_LITERAL_CR;
        } else {
            reader_fail(reader, MANAGESIEVE_ERROR_SYNTAX);
            return c == '\n' ? reader_end_line(reader) : MANAGESIEVE_READ_MORE;
        }
        return MANAGESIEVE_READ_MORE;
    case R_LITERAL_CLOSE:
        if (c == '}') {
            reader->state = R_LITERAL_CR;
        } else {
            reader_fail(reader, MANAGESIEVE_ERROR_SYNTAX);
            return c == '\n' ? reader_end_line(reader) : MANAGESIEVE_READ_MORE;
        }
        return MANAGESIEVE_READ_MORE;
    case R_LITERAL_CR:
        if (c == '\r') {
            reader->state = R_LITERAL_LF;
            return MANAGESIEVE_READ_MORE;
        }
        /* a bare LF ends the literal's line too */
        __attribute__((fallthrough));
    case R_LITERAL_LF:
        if (c != '\n') {
            reader_fail(reader, MANAGESIEVE_ERROR_SYNTAX);
            return MANAGESIEVE_READ_MORE;
        }
        return reader_start_literal(reader);
    case R_CR:
        if (c == '\n') {
            return reader_end_line(reader);
        }
        reader_fail(reader, MANAGESIEVE_ERROR_SYNTAX);
        return MANAGESIEVE_READ_MORE;
    case R_SKIP_LINE:
        return c == '\n' ? reader_end_line(reader) : MANAGESIEVE_READ_MORE;
    case R_LITERAL_BODY:
    case R_DONE:
        ASSERT(!"unreachable reader state");
        return MANAGESIEVE_READ_FATAL;
    }
    /* After a name, an atom or a string: a space, or the end of the line. */
    if (c == ' ') {
        reader->state = R_ARG_START;
    } else if (c == '\r') {
        reader->state = R_CR;
    } else if (c == '\n') {
        return reader_end_line(reader);
    } else {
        reader_fail(reader, MANAGESIEVE_ERROR_SYNTAX);
    }
    return MANAGESIEVE_READ_MORE;
}

enum managesieve_read_status
managesieve_reader_feed(struct managesieve_reader *reader, const char *in, size_t len,
                        size_t *consumed_out)
{
    ASSERT(reader->state != R_DONE);
    size_t used = 0;
    enum managesieve_read_status status = MANAGESIEVE_READ_MORE;
    while (used < len && status == MANAGESIEVE_READ_MORE) {
        if (reader->state == R_LITERAL_BODY) {
            used += reader_literal_body(reader, in + used, len - used);
            continue;
        }
        status = reader_byte(reader, in[used++]);
        if (status == MANAGESIEVE_READ_MORE && reader->state == R_LITERAL_BODY &&
            reader->literal_left == 0) {
            reader->state = reader->is_literal_skipped ? R_SKIP_LINE : R_AFTER_ARG;
        }
    }
    *consumed_out = used;
    return status;
}

const struct managesieve_command *
managesieve_reader_command(const struct managesieve_reader *reader)
{
    ASSERT(reader->state == R_DONE && reader->error == MANAGESIEVE_ERROR_NONE);
    return &reader->command;
}

enum managesieve_read_error
managesieve_reader_error(const struct managesieve_reader *reader)
{
    return reader->error;
}

char *
managesieve_reader_take_big(struct managesieve_reader *reader)
{
    char *buffer = reader->command.big_buffer;
    reader->command.big_buffer = NULL;
    return buffer;
}

void
managesieve_reader_next(struct managesieve_reader *reader)
{
    char *buffer = managesieve_reader_take_big(reader);
    if (buffer != NULL && reader->config->big_release != NULL) {
        reader->config->big_release(reader->config->owner, buffer);
    }
    memset(&reader->command, 0, sizeof(reader->command));
    reader->state = R_START;
    reader->error = MANAGESIEVE_ERROR_NONE;
    reader->line_bytes = 0;
    reader->inline_len = 0;
    reader->literal_left = 0;
    reader->literal_size = 0;
    reader->literal_digits = 0;
    reader->is_literal_skipped = false;
    reader->is_quoted_escape = false;
    reader->is_string_line = false;
}

void
managesieve_reader_expect_string_line(struct managesieve_reader *reader)
{
    ASSERT(managesieve_reader_is_idle(reader));
    reader->is_string_line = true;
}

bool
managesieve_reader_is_idle(const struct managesieve_reader *reader)
{
    return reader->state == R_START && reader->line_bytes == 0;
}

void
managesieve_reader_finish(struct managesieve_reader *reader)
{
    managesieve_reader_next(reader);
}

bool
managesieve_arg_number(const struct managesieve_arg *arg, uint32_t *value_out)
{
    if (arg->kind != MANAGESIEVE_ARG_ATOM || arg->bytes.len == 0 || arg->bytes.len > 10) {
        return false;
    }
    uint64_t value = 0;
    for (size_t i = 0; i < arg->bytes.len; i++) {
        char c = arg->bytes.ptr[i];
        if (c < '0' || c > '9') {
            return false;
        }
        value = value * 10 + (uint64_t)(c - '0');
    }
    if (value > UINT32_MAX) {
        return false;
    }
    *value_out = (uint32_t)value;
    return true;
}
