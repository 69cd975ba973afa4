/*
 * tests/fuzz/fuzz_smtp_parser.c - libFuzzer harness for smtp_parser_parse()
 * and smtp_xtext_decode().
 *
 * The input is split at LF (one trailing CR dropped, as the session does)
 * and each line is parsed from an exact-size heap copy, so ASan sees any
 * read past it; the whole input is also parsed as one line. Every result
 * is checked against properties the header promises: spans inside the
 * line, NUL if and only if SMTP_PARSE_NUL_BYTE, paths within
 * SMTP_ADDRESS_BYTES_MAX and free of control bytes, mailbox = local "@"
 * domain, well-formed parameters, BDAT size equal to its digits, and the
 * same answer when parsed twice. A broken property aborts.
 *
 * Build: clang -g -O1 -fsanitize=fuzzer,address,undefined -I. \
 *   proto/smtp/smtp_parser.c core/assertions.c tests/fuzz/fuzz_smtp_parser.c
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/smtp/smtp_parser.h"
#include "tests/fuzz/fuzz_check.h"

/* Lines parsed per input; the input is at most -max_len anyway. */
#define FUZZ_LINES_MAX 4096

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool
span_is_inside(struct span s, const char *base, size_t len)
{
    if (s.len == 0) {
        return s.ptr == NULL;
    }
    return s.ptr >= base && s.len <= len && (size_t)(s.ptr - base) <= len - s.len;
}

static bool
spans_equal(struct span a, struct span b)
{
    return a.ptr == b.ptr && a.len == b.len;
}

static bool
is_ctl(unsigned char c)
{
    return c < 0x20 || c == 0x7f;
}

static bool
is_alnum(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static void
check_xtext(struct span value)
{
    char *out = malloc(value.len > 0 ? value.len : 1);
    FUZZ_CHECK(out != NULL);
    long n = smtp_xtext_decode(value, out, value.len);
    FUZZ_CHECK(n >= -1);
    FUZZ_CHECK(n <= (long)value.len);
    for (long i = 0; i < n; i++) {
        FUZZ_CHECK(!is_ctl((unsigned char)out[i]));
    }
    if (n > 0) {
        /* One byte less room: must refuse, never overflow. */
        FUZZ_CHECK(smtp_xtext_decode(value, out, (size_t)n - 1) == -1);
    }
    free(out);
}

static void
check_path(const struct smtp_cmd *cmd)
{
    const struct smtp_path *path = &cmd->path;
    if (path->is_null) {
        FUZZ_CHECK(cmd->verb == SMTP_VERB_MAIL);
        FUZZ_CHECK(path->mailbox.len == 0);
        FUZZ_CHECK(!path->is_postmaster);
        FUZZ_CHECK(!path->is_utf8);
        return;
    }
    struct span mailbox = path->mailbox;
    FUZZ_CHECK(mailbox.len > 0);
    FUZZ_CHECK(mailbox.len <= SMTP_ADDRESS_BYTES_MAX);
    bool has_high = false;
    for (size_t i = 0; i < mailbox.len; i++) {
        unsigned char c = (unsigned char)mailbox.ptr[i];
        FUZZ_CHECK(!is_ctl(c));
        has_high = has_high || c >= 0x80;
    }
    FUZZ_CHECK(path->is_utf8 == has_high);
    if (path->is_postmaster) {
        FUZZ_CHECK(cmd->verb == SMTP_VERB_RCPT);
        FUZZ_CHECK(span_equals_nocase(mailbox, "postmaster"));
        FUZZ_CHECK(path->domain.len == 0);
        FUZZ_CHECK(!path->has_source_route);
        return;
    }
    FUZZ_CHECK(path->local_part.ptr == mailbox.ptr);
    FUZZ_CHECK(path->local_part.len > 0);
    FUZZ_CHECK(path->domain.len > 0);
    FUZZ_CHECK(path->local_part.len + 1 + path->domain.len == mailbox.len);
    FUZZ_CHECK(mailbox.ptr[path->local_part.len] == '@');
    FUZZ_CHECK(memchr(path->domain.ptr, '@', path->domain.len) == NULL);
    FUZZ_CHECK(memchr(path->domain.ptr, ' ', path->domain.len) == NULL);
}

static void
check_params(const struct smtp_cmd *cmd)
{
    for (size_t i = 0; i < cmd->param_count; i++) {
        const struct smtp_param *param = &cmd->params[i];
        FUZZ_CHECK(param->keyword.len > 0);
        FUZZ_CHECK(is_alnum((unsigned char)param->keyword.ptr[0]));
        for (size_t k = 0; k < param->keyword.len; k++) {
            unsigned char c = (unsigned char)param->keyword.ptr[k];
            FUZZ_CHECK(is_alnum(c) || c == '-');
        }
        FUZZ_CHECK(param->has_value == (param->value.len > 0));
        for (size_t k = 0; k < param->value.len; k++) {
            unsigned char c = (unsigned char)param->value.ptr[k];
            FUZZ_CHECK(c != '=' && c != ' ' && !is_ctl(c));
        }
        if (param->has_value) {
            check_xtext(param->value);
        }
    }
}

static void
check_bdat(const struct smtp_cmd *cmd)
{
    struct span arg = cmd->argument;
    FUZZ_CHECK(arg.len > 0);
    unsigned __int128 value = 0;
    size_t digits = 0;
    while (digits < arg.len && arg.ptr[digits] >= '0' && arg.ptr[digits] <= '9') {
        value = value * 10 + (unsigned)(arg.ptr[digits] - '0');
        digits++;
    }
    FUZZ_CHECK(digits >= 1 && digits <= 20);
    FUZZ_CHECK(value == cmd->bdat_size);
    FUZZ_CHECK(cmd->bdat_last == (digits < arg.len));
}

static void
check_line(const uint8_t *bytes, size_t len)
{
    char *line = malloc(len > 0 ? len : 1);
    FUZZ_CHECK(line != NULL);
    if (len > 0) {
        memcpy(line, bytes, len);
    }
    const char *ptr = len > 0 ? line : NULL;

    struct smtp_cmd cmd;
    enum smtp_parse_error err = smtp_parser_parse(ptr, len, &cmd);

    FUZZ_CHECK(span_is_inside(cmd.verb_text, line, len));
    FUZZ_CHECK(span_is_inside(cmd.argument, line, len));
    FUZZ_CHECK(span_is_inside(cmd.path.mailbox, line, len));
    FUZZ_CHECK(span_is_inside(cmd.path.local_part, line, len));
    FUZZ_CHECK(span_is_inside(cmd.path.domain, line, len));
    FUZZ_CHECK(cmd.param_count <= SMTP_PARAMS_MAX);
    for (size_t i = 0; i < cmd.param_count; i++) {
        FUZZ_CHECK(span_is_inside(cmd.params[i].keyword, line, len));
        FUZZ_CHECK(span_is_inside(cmd.params[i].value, line, len));
    }
    FUZZ_CHECK((unsigned)cmd.verb < SMTP_VERB_COUNT);
    FUZZ_CHECK(smtp_verb_name(cmd.verb) != NULL);
    if (cmd.verb != SMTP_VERB_UNKNOWN) {
        FUZZ_CHECK(span_equals_nocase(cmd.verb_text, smtp_verb_name(cmd.verb)));
    }
    if (cmd.argument.len > 0) {
        FUZZ_CHECK(cmd.argument.ptr[0] != ' ' && cmd.argument.ptr[0] != '\t');
        char last = cmd.argument.ptr[cmd.argument.len - 1];
        FUZZ_CHECK(last != ' ' && last != '\t');
    }

    bool has_nul = len > 0 && memchr(line, '\0', len) != NULL;
    FUZZ_CHECK(has_nul == (err == SMTP_PARSE_NUL_BYTE));
    if (err == SMTP_PARSE_UNKNOWN_VERB) {
        FUZZ_CHECK(cmd.verb == SMTP_VERB_UNKNOWN);
    }

    if (err != SMTP_PARSE_OK) {
        FUZZ_CHECK(cmd.param_count == 0);
        FUZZ_CHECK(cmd.path.mailbox.len == 0);
    } else {
        switch (cmd.verb) {
        case SMTP_VERB_MAIL:
        case SMTP_VERB_RCPT:
            check_path(&cmd);
            check_params(&cmd);
            break;
        case SMTP_VERB_BDAT:
            check_bdat(&cmd);
            break;
        case SMTP_VERB_DATA:
        case SMTP_VERB_RSET:
        case SMTP_VERB_QUIT:
        case SMTP_VERB_STARTTLS:
            FUZZ_CHECK(cmd.argument.len == 0);
            break;
        case SMTP_VERB_HELO:
        case SMTP_VERB_EHLO:
        case SMTP_VERB_VRFY:
        case SMTP_VERB_EXPN:
        case SMTP_VERB_AUTH:
            FUZZ_CHECK(cmd.argument.len > 0);
            break;
        default:
            break;
        }
        for (size_t i = 0; i < cmd.argument.len; i++) {
            unsigned char c = (unsigned char)cmd.argument.ptr[i];
            FUZZ_CHECK(c == '\t' || !is_ctl(c));
        }
        if (cmd.verb != SMTP_VERB_MAIL && cmd.verb != SMTP_VERB_RCPT) {
            FUZZ_CHECK(cmd.param_count == 0);
            FUZZ_CHECK(cmd.path.mailbox.len == 0);
        }
    }

    /* Pure: the same line gives the same answer. */
    struct smtp_cmd again;
    FUZZ_CHECK(smtp_parser_parse(ptr, len, &again) == err);
    FUZZ_CHECK(again.verb == cmd.verb);
    FUZZ_CHECK(spans_equal(again.argument, cmd.argument));
    FUZZ_CHECK(spans_equal(again.path.mailbox, cmd.path.mailbox));
    FUZZ_CHECK(spans_equal(again.path.domain, cmd.path.domain));
    FUZZ_CHECK(again.param_count == cmd.param_count);
    FUZZ_CHECK(again.bdat_size == cmd.bdat_size);

    free(line);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t pos = 0;
    for (int lines = 0; lines < FUZZ_LINES_MAX && pos <= size; lines++) {
        const uint8_t *lf = size > pos ? memchr(data + pos, '\n', size - pos) : NULL;
        size_t end = lf != NULL ? (size_t)(lf - data) : size;
        size_t len = end - pos;
        if (len > 0 && data[end - 1] == '\r') {
            len--;
        }
        check_line(data + pos, len);
        if (lf == NULL) {
            break;
        }
        pos = end + 1;
    }
    /* The whole input as one line reaches the control-byte checks. */
    if (size <= SMTP_LINE_BYTES_MAX) {
        check_line(data, size);
    }
    return 0;
}
