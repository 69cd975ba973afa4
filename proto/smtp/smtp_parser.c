/*
 * proto/smtp/smtp_parser.c - SMTP command lines into struct smtp_cmd.
 *
 * Recognises the verb, then checks the argument the way that verb needs it:
 * MAIL and RCPT get a full path and parameter parse (RFC 5321 section 4.1.2,
 * with RFC 6531 UTF-8), BDAT a size and an optional LAST, the others a plain
 * string or nothing. Owns nothing: every span in the result borrows from the
 * caller's line. Pure and reentrant, so it runs on any reactor thread; no
 * allocation and no state between calls. Every loop walks the line at most
 * a small constant number of times, so work is linear in the line length,
 * which the session bounds by SMTP_LINE_BYTES_MAX before we see it.
 * Limits: SMTP_ADDRESS_BYTES_MAX per path, SMTP_PARAMS_MAX per command,
 * 20 digits for a BDAT size (core/limits.h).
 *
 * Where we are tolerant, as Postfix is by default, because rejecting costs
 * real mail: spaces or tabs between tokens, spaces after "FROM:"/"TO:",
 * a bare address without angle brackets (it then ends at the first space),
 * misplaced dots in a Dot-string local part ("a..b", "a." as sent by some
 * mobile carriers), '_' in domain labels, lower-case hex in xtext, "::"
 * standing for a single zero group in an IPv6 literal (RFC 5952 style).
 *
 * Where we are strict, because these bytes end up in spool records,
 * headers and logs: NUL anywhere, control characters in paths and
 * arguments, malformed UTF-8 in paths and parameter values, unbalanced
 * brackets and quotes, paths over SMTP_ADDRESS_BYTES_MAX, more than
 * SMTP_PARAMS_MAX parameters, a domain with an empty label (a trailing dot
 * included), address literals other than IPv4 and IPv6 (no other tag is
 * registered), and xtext that would decode to a control character.
 */
#include "proto/smtp/smtp_parser.h"

#include <limits.h>
#include <string.h>

#include "core/ascii.h"
#include "core/assertions.h"
#include "core/utf8.h"

/* RFC 1035: a label is at most 63 octets, a name at most 255. Applied to
 * ASCII labels only: a U-label's UTF-8 form may be longer than its A-label,
 * and the path limit bounds it anyway. */
#define SMTP_PARSER_LABEL_BYTES_MAX 63
#define SMTP_PARSER_DOMAIN_BYTES_MAX 255

/* UINT64_MAX has 20 decimal digits. */
#define SMTP_PARSER_BDAT_DIGITS_MAX 20

/* 16-bit groups in an IPv6 address. */
#define SMTP_PARSER_IPV6_GROUPS 8

static_assert(SMTP_ADDRESS_BYTES_MAX < SMTP_LINE_BYTES_MAX, "a path fits in a command line");
static_assert(SMTP_PARAMS_MAX > 0, "MAIL needs room for parameters");

static const char *const smtp_parser_verb_names[SMTP_VERB_COUNT] = {
    [SMTP_VERB_UNKNOWN] = "UNKNOWN", [SMTP_VERB_HELO] = "HELO",
    [SMTP_VERB_EHLO] = "EHLO",       [SMTP_VERB_MAIL] = "MAIL",
    [SMTP_VERB_RCPT] = "RCPT",       [SMTP_VERB_DATA] = "DATA",
    [SMTP_VERB_BDAT] = "BDAT",       [SMTP_VERB_RSET] = "RSET",
    [SMTP_VERB_NOOP] = "NOOP",       [SMTP_VERB_QUIT] = "QUIT",
    [SMTP_VERB_VRFY] = "VRFY",       [SMTP_VERB_EXPN] = "EXPN",
    [SMTP_VERB_HELP] = "HELP",       [SMTP_VERB_STARTTLS] = "STARTTLS",
    [SMTP_VERB_AUTH] = "AUTH",
};

static enum smtp_verb verb_lookup(struct span text);
static enum smtp_parse_error parse_verb_argument(struct smtp_cmd *cmd);
static enum smtp_parse_error parse_text(const struct smtp_cmd *cmd, bool is_required);
static enum smtp_parse_error parse_mail_rcpt(struct smtp_cmd *cmd, const char *keyword,
                                             bool is_mail);
static enum smtp_parse_error parse_path(struct span inner, bool is_mail, struct smtp_path *path);
static enum smtp_parse_error parse_params(struct span arg, size_t pos, struct smtp_cmd *cmd);
static enum smtp_parse_error parse_param(struct span token, struct smtp_param *param);
static enum smtp_parse_error parse_bdat(struct smtp_cmd *cmd);
static bool path_close_find(struct span arg, size_t from, size_t *close_out);
static size_t local_part_length(const char *s, size_t len);
static bool domain_is_valid(const char *s, size_t len);
static bool address_literal_is_valid(const char *s, size_t len);
static bool ipv4_is_valid(const char *s, size_t len);
static bool ipv6_is_valid(const char *s, size_t len);
static struct span span_or_empty(const char *ptr, size_t len);
static bool is_ws(char c);
static bool is_alnum(char c);
static bool is_digit(char c);

enum smtp_parse_error
smtp_parser_parse(const char *line, size_t len, struct smtp_cmd *cmd)
{
    ASSERT(cmd != NULL);
    if (len > 0) {
        ASSERT(line != NULL);
    }

    memset(cmd, 0, sizeof(*cmd));
    if (len == 0) {
        return SMTP_PARSE_UNKNOWN_VERB;
    }

    /* The verb ends at the first space or tab; Postfix splits on both. */
    size_t verb_end = 0;
    while (verb_end < len && !is_ws(line[verb_end])) {
        verb_end++;
    }
    cmd->verb_text = span_or_empty(line, verb_end);
    cmd->verb = verb_lookup(cmd->verb_text);

    size_t arg_start = verb_end;
    while (arg_start < len && is_ws(line[arg_start])) {
        arg_start++;
    }
    size_t arg_end = len;
    while (arg_end > arg_start && is_ws(line[arg_end - 1])) {
        arg_end--;
    }
    cmd->argument = span_or_empty(line + arg_start, arg_end - arg_start);

    /* Checked after the verb so the session can still name it in a log,
     * and before anything else so no later step ever sees a NUL. */
    if (memchr(line, '\0', len) != NULL) {
        return SMTP_PARSE_NUL_BYTE;
    }

    enum smtp_parse_error err = parse_verb_argument(cmd);
    if (err != SMTP_PARSE_OK) {
        /* Keep verb, verb_text and argument for the reply and the log, but
         * never hand out half a path or parameter list. */
        memset(&cmd->path, 0, sizeof(cmd->path));
        memset(cmd->params, 0, sizeof(cmd->params));
        cmd->param_count = 0;
        cmd->bdat_size = 0;
        cmd->bdat_last = false;
    }
    return err;
}

const char *
smtp_verb_name(enum smtp_verb verb)
{
    ASSERT((unsigned)verb < SMTP_VERB_COUNT);
    return smtp_parser_verb_names[verb];
}

long
smtp_xtext_decode(struct span in, char *out, size_t out_bytes)
{
    if (in.len > 0) {
        ASSERT(in.ptr != NULL);
    }
    if (out_bytes > 0) {
        ASSERT(out != NULL);
    }

    size_t out_len = 0;
    size_t i = 0;
    while (i < in.len) {
        unsigned char c = (unsigned char)in.ptr[i];
        unsigned char decoded;
        if (c == '+') {
            if (in.len - i < 3) {
                return -1;
            }
            int hi = ascii_hex_value((unsigned char)in.ptr[i + 1]);
            int lo = ascii_hex_value((unsigned char)in.ptr[i + 2]);
            if (hi < 0 || lo < 0) {
                return -1;
            }
            decoded = (unsigned char)(hi * 16 + lo);
            /* ORCPT and ENVID are copied into DSNs and logs; a CR, LF or
             * NUL smuggled in as "+0D" would forge header lines there. */
            if (decoded < 0x20 || decoded == 0x7f) {
                return -1;
            }
            i += 3;
        } else if (c >= 33 && c <= 126 && c != '=') {
            /* RFC 3461 xchar: printable ASCII except "+" and "=". */
            decoded = c;
            i++;
        } else {
            return -1;
        }
        if (out_len == out_bytes) {
            return -1;
        }
        out[out_len++] = (char)decoded;
    }
    ASSERT(out_len <= (size_t)LONG_MAX);
    return (long)out_len;
}

/* Helpers. */

/* Check the argument the way the verb needs it. */
static enum smtp_parse_error
parse_verb_argument(struct smtp_cmd *cmd)
{
    switch (cmd->verb) {
    case SMTP_VERB_UNKNOWN:
        return SMTP_PARSE_UNKNOWN_VERB;
    case SMTP_VERB_HELO:
    case SMTP_VERB_EHLO:
    case SMTP_VERB_VRFY:
    case SMTP_VERB_EXPN:
    case SMTP_VERB_AUTH:
        return parse_text(cmd, true);
    case SMTP_VERB_NOOP:
    case SMTP_VERB_HELP:
        return parse_text(cmd, false);
    case SMTP_VERB_DATA:
    case SMTP_VERB_RSET:
    case SMTP_VERB_QUIT:
    case SMTP_VERB_STARTTLS:
        /* RFC 5321 section 4.1.1: these take no argument. */
        return span_is_empty(cmd->argument) ? SMTP_PARSE_OK : SMTP_PARSE_SYNTAX;
    case SMTP_VERB_MAIL:
        return parse_mail_rcpt(cmd, "FROM:", true);
    case SMTP_VERB_RCPT:
        return parse_mail_rcpt(cmd, "TO:", false);
    case SMTP_VERB_BDAT:
        return parse_bdat(cmd);
    case SMTP_VERB_COUNT:
        break;
    }
    /* verb_lookup never returns SMTP_VERB_COUNT. */
    ASSERT(cmd->verb < SMTP_VERB_COUNT);
    return SMTP_PARSE_SYNTAX;
}

static enum smtp_verb
verb_lookup(struct span text)
{
    for (unsigned v = SMTP_VERB_UNKNOWN + 1; v < SMTP_VERB_COUNT; v++) {
        if (span_equals_nocase(text, smtp_parser_verb_names[v])) {
            return (enum smtp_verb)v;
        }
    }
    return SMTP_VERB_UNKNOWN;
}

/* A free-form argument (HELO domain, VRFY string, AUTH mechanism, HELP
 * topic): printable bytes, spaces, tabs and UTF-8 bytes. The session decides
 * what it means; we only keep control characters out of replies and logs.
 * Postfix accepts any HELO argument, so we do not check domain syntax. */
static enum smtp_parse_error
parse_text(const struct smtp_cmd *cmd, bool is_required)
{
    struct span arg = cmd->argument;
    if (is_required && span_is_empty(arg)) {
        return SMTP_PARSE_SYNTAX;
    }
    for (size_t i = 0; i < arg.len; i++) {
        unsigned char c = (unsigned char)arg.ptr[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f) {
            return SMTP_PARSE_SYNTAX;
        }
    }
    return SMTP_PARSE_OK;
}

/* "FROM:" / "TO:", optional spaces, a path, then parameters. */
static enum smtp_parse_error
parse_mail_rcpt(struct smtp_cmd *cmd, const char *keyword, bool is_mail)
{
    struct span arg = cmd->argument;
    size_t keyword_len = strlen(keyword);
    if (arg.len < keyword_len || !span_equals_nocase(span_make(arg.ptr, keyword_len), keyword)) {
        return SMTP_PARSE_SYNTAX;
    }
    size_t pos = keyword_len;
    while (pos < arg.len && is_ws(arg.ptr[pos])) {
        pos++;
    }
    if (pos == arg.len) {
        return SMTP_PARSE_SYNTAX;
    }

    struct span inner;
    if (arg.ptr[pos] == '<') {
        size_t close;
        if (!path_close_find(arg, pos + 1, &close)) {
            return SMTP_PARSE_BAD_PATH;
        }
        inner = span_or_empty(arg.ptr + pos + 1, close - (pos + 1));
        pos = close + 1;
        /* "<a@b>SIZE=1": parameters need a separating space. */
        if (pos < arg.len && !is_ws(arg.ptr[pos])) {
            return SMTP_PARSE_SYNTAX;
        }
    } else {
        /* Postfix accepts a bare address; without brackets it cannot
         * contain spaces, so it ends at the first one. */
        size_t start = pos;
        while (pos < arg.len && !is_ws(arg.ptr[pos])) {
            pos++;
        }
        inner = span_make(arg.ptr + start, pos - start);
    }

    if (inner.len > SMTP_ADDRESS_BYTES_MAX) {
        return SMTP_PARSE_PATH_TOO_LONG;
    }
    enum smtp_parse_error err = parse_path(inner, is_mail, &cmd->path);
    if (err != SMTP_PARSE_OK) {
        return err;
    }
    return parse_params(arg, pos, cmd);
}

/* The path between the brackets: [A-d-l ":"] Mailbox, or empty, or a bare
 * "postmaster". On error, *path may be partly filled; the caller ignores it. */
static enum smtp_parse_error
parse_path(struct span inner, bool is_mail, struct smtp_path *path)
{
    if (inner.len == 0) {
        /* "<>" is the null reverse-path; it is never a recipient. */
        if (!is_mail) {
            return SMTP_PARSE_BAD_PATH;
        }
        path->is_null = true;
        return SMTP_PARSE_OK;
    }
    if (!utf8_is_valid(inner.ptr, inner.len)) {
        return SMTP_PARSE_BAD_PATH;
    }

    /* Source route "@a,@b:": RFC 5321 section 4.1.1.3 says accept and
     * ignore it. Each round consumes at least "@x," so the loop is bounded
     * by the path length. */
    size_t pos = 0;
    if (inner.ptr[0] == '@') {
        bool is_route_done = false;
        while (!is_route_done && pos < inner.len) {
            if (inner.ptr[pos] != '@') {
                return SMTP_PARSE_BAD_PATH;
            }
            size_t start = ++pos;
            while (pos < inner.len && inner.ptr[pos] != ',' && inner.ptr[pos] != ':') {
                pos++;
            }
            if (pos == inner.len || !domain_is_valid(inner.ptr + start, pos - start)) {
                return SMTP_PARSE_BAD_PATH;
            }
            is_route_done = inner.ptr[pos] == ':';
            pos++;
        }
        if (!is_route_done) {
            return SMTP_PARSE_BAD_PATH;
        }
        path->has_source_route = true;
    }

    const char *mailbox = inner.ptr + pos;
    size_t mailbox_len = inner.len - pos;
    if (mailbox_len == 0) {
        return SMTP_PARSE_BAD_PATH;
    }
    size_t local_len = local_part_length(mailbox, mailbox_len);
    if (local_len == 0) {
        return SMTP_PARSE_BAD_PATH;
    }

    if (local_len == mailbox_len) {
        /* No domain: only "RCPT TO:<postmaster>" (RFC 5321 section 4.5.1). */
        if (is_mail || path->has_source_route ||
            !span_equals_nocase(span_make(mailbox, mailbox_len), "postmaster")) {
            return SMTP_PARSE_BAD_PATH;
        }
        path->is_postmaster = true;
        path->mailbox = span_make(mailbox, mailbox_len);
        path->local_part = path->mailbox;
        return SMTP_PARSE_OK;
    }

    if (mailbox[local_len] != '@') {
        return SMTP_PARSE_BAD_PATH;
    }
    const char *domain = mailbox + local_len + 1;
    size_t domain_len = mailbox_len - local_len - 1;
    if (domain_len == 0) {
        return SMTP_PARSE_BAD_PATH;
    }
    bool is_domain_ok = domain[0] == '[' ? address_literal_is_valid(domain, domain_len)
                                         : domain_is_valid(domain, domain_len);
    if (!is_domain_ok) {
        return SMTP_PARSE_BAD_PATH;
    }

    path->mailbox = span_make(mailbox, mailbox_len);
    path->local_part = span_make(mailbox, local_len);
    path->domain = span_make(domain, domain_len);
    for (size_t i = 0; i < mailbox_len; i++) {
        if ((unsigned char)mailbox[i] >= 0x80) {
            path->is_utf8 = true;
            break;
        }
    }
    return SMTP_PARSE_OK;
}

/* Space-separated esmtp-keyword["=" esmtp-value] from arg[pos] on. The
 * loop consumes at least one byte per round. */
static enum smtp_parse_error
parse_params(struct span arg, size_t pos, struct smtp_cmd *cmd)
{
    while (pos < arg.len) {
        if (is_ws(arg.ptr[pos])) {
            pos++;
            continue;
        }
        size_t start = pos;
        while (pos < arg.len && !is_ws(arg.ptr[pos])) {
            pos++;
        }
        if (cmd->param_count == SMTP_PARAMS_MAX) {
            return SMTP_PARSE_TOO_MANY_PARAMS;
        }
        enum smtp_parse_error err =
            parse_param(span_make(arg.ptr + start, pos - start), &cmd->params[cmd->param_count]);
        if (err != SMTP_PARSE_OK) {
            return err;
        }
        cmd->param_count++;
    }
    return SMTP_PARSE_OK;
}

/* RFC 5321 section 4.1.2: esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT /
 * "-"), esmtp-value = 1*(%d33-60 / %d62-126), widened by RFC 6531 to UTF-8. */
static enum smtp_parse_error
parse_param(struct span token, struct smtp_param *param)
{
    ASSERT(token.len > 0);
    if (!is_alnum(token.ptr[0])) {
        return SMTP_PARSE_SYNTAX;
    }
    size_t k = 1;
    while (k < token.len && (is_alnum(token.ptr[k]) || token.ptr[k] == '-')) {
        k++;
    }
    param->keyword = span_make(token.ptr, k);
    if (k == token.len) {
        return SMTP_PARSE_OK;
    }
    if (token.ptr[k] != '=' || k + 1 == token.len) {
        return SMTP_PARSE_SYNTAX;
    }
    struct span value = span_make(token.ptr + k + 1, token.len - k - 1);
    bool has_utf8 = false;
    for (size_t i = 0; i < value.len; i++) {
        unsigned char c = (unsigned char)value.ptr[i];
        if (c >= 0x80) {
            has_utf8 = true;
        } else if (c < 33 || c > 126 || c == '=') {
            return SMTP_PARSE_SYNTAX;
        }
    }
    if (has_utf8 && !utf8_is_valid(value.ptr, value.len)) {
        return SMTP_PARSE_SYNTAX;
    }
    param->value = value;
    param->has_value = true;
    return SMTP_PARSE_OK;
}

/* RFC 3030: "BDAT" SP chunk-size [SP end-marker], chunk-size = 1*DIGIT. */
static enum smtp_parse_error
parse_bdat(struct smtp_cmd *cmd)
{
    struct span arg = cmd->argument;
    uint64_t size = 0;
    size_t pos = 0;
    while (pos < arg.len && is_digit(arg.ptr[pos])) {
        if (pos == SMTP_PARSER_BDAT_DIGITS_MAX) {
            return SMTP_PARSE_SYNTAX;
        }
        uint64_t digit = (uint64_t)(arg.ptr[pos] - '0');
        if (size > (UINT64_MAX - digit) / 10) {
            return SMTP_PARSE_SYNTAX;
        }
        size = size * 10 + digit;
        pos++;
    }
    if (pos == 0) {
        return SMTP_PARSE_SYNTAX;
    }
    if (pos < arg.len) {
        if (!is_ws(arg.ptr[pos])) {
            return SMTP_PARSE_SYNTAX;
        }
        while (pos < arg.len && is_ws(arg.ptr[pos])) {
            pos++;
        }
        /* The argument is trimmed, so something follows the spaces. */
        if (!span_equals_nocase(span_make(arg.ptr + pos, arg.len - pos), "LAST")) {
            return SMTP_PARSE_SYNTAX;
        }
        cmd->bdat_last = true;
    }
    cmd->bdat_size = size;
    return SMTP_PARSE_OK;
}

/* Index of the '>' that closes a path whose '<' is just before arg[from].
 * Quoted strings may hold '>' and '<'; outside them a second '<' is an
 * error. False when the path is not closed. */
static bool
path_close_find(struct span arg, size_t from, size_t *close_out)
{
    bool is_quoted = false;
    size_t i = from;
    while (i < arg.len) {
        char c = arg.ptr[i];
        if (is_quoted) {
            if (c == '\\') {
                i++; /* skip the escaped byte; the grammar checks it later */
            } else if (c == '"') {
                is_quoted = false;
            }
        } else if (c == '"') {
            is_quoted = true;
        } else if (c == '>') {
            *close_out = i;
            return true;
        } else if (c == '<') {
            return false;
        }
        i++;
    }
    return false;
}

/* Length of the Local-part at the start of s: a Quoted-string, or a
 * Dot-string (tolerating misplaced dots, but not a dots-only string).
 * Returns 0 when malformed. UTF-8 has been validated by the caller. */
static size_t
local_part_length(const char *s, size_t len)
{
    static const char atext_specials[] = "!#$%&'*+-/=?^_`{|}~";

    if (len > 0 && s[0] == '"') {
        size_t i = 1;
        while (i < len) {
            unsigned char c = (unsigned char)s[i];
            if (c == '"') {
                return i + 1;
            }
            if (c == '\\') {
                /* quoted-pairSMTP = "\" %d32-126 */
                if (i + 1 == len) {
                    return 0;
                }
                unsigned char escaped = (unsigned char)s[i + 1];
                if (escaped < 32 || escaped > 126) {
                    return 0;
                }
                i += 2;
                continue;
            }
            /* qtextSMTP = %d32-33 / %d35-91 / %d93-126, plus UTF-8. */
            if (c < 32 || c == 127) {
                return 0;
            }
            i++;
        }
        return 0;
    }

    size_t i = 0;
    bool has_atext = false;
    while (i < len) {
        unsigned char c = (unsigned char)s[i];
        if (c == '.') {
            i++;
            continue;
        }
        bool is_atext = c >= 0x80 || is_alnum((char)c) ||
                        (c != '\0' && strchr(atext_specials, c) != NULL);
        if (!is_atext) {
            break;
        }
        has_atext = true;
        i++;
    }
    return has_atext ? i : 0;
}

/* Domain = sub-domain *("." sub-domain), sub-domain = Let-dig [Ldh-str],
 * also U-labels (RFC 6531) and '_' (seen in the wild, harmless here). */
static bool
domain_is_valid(const char *s, size_t len)
{
    if (len == 0) {
        return false;
    }
    bool is_domain_ascii = true;
    bool is_label_ascii = true;
    size_t label_start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i == len || s[i] == '.') {
            size_t label_len = i - label_start;
            if (label_len == 0) {
                return false;
            }
            if (s[label_start] == '-' || s[i - 1] == '-') {
                return false;
            }
            if (is_label_ascii && label_len > SMTP_PARSER_LABEL_BYTES_MAX) {
                return false;
            }
            label_start = i + 1;
            is_label_ascii = true;
            continue;
        }
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x80) {
            is_label_ascii = false;
            is_domain_ascii = false;
        } else if (!is_alnum((char)c) && c != '-' && c != '_') {
            return false;
        }
    }
    return !is_domain_ascii || len <= SMTP_PARSER_DOMAIN_BYTES_MAX;
}

/* "[1.2.3.4]" or "[IPv6:...]". */
static bool
address_literal_is_valid(const char *s, size_t len)
{
    if (len < 2 || s[0] != '[' || s[len - 1] != ']') {
        return false;
    }
    const char *body = s + 1;
    size_t body_len = len - 2;
    if (body_len >= 5 && span_equals_nocase(span_make(body, 5), "IPv6:")) {
        return ipv6_is_valid(body + 5, body_len - 5);
    }
    return ipv4_is_valid(body, body_len);
}

/* Four Snum (1*3DIGIT, at most 255) separated by dots. */
static bool
ipv4_is_valid(const char *s, size_t len)
{
    size_t pos = 0;
    for (int part = 0; part < 4; part++) {
        if (part > 0) {
            if (pos == len || s[pos] != '.') {
                return false;
            }
            pos++;
        }
        unsigned value = 0;
        size_t digits = 0;
        while (pos < len && is_digit(s[pos]) && digits < 3) {
            value = value * 10 + (unsigned)(s[pos] - '0');
            digits++;
            pos++;
        }
        if (digits == 0 || value > 255) {
            return false;
        }
    }
    return pos == len;
}

/* RFC 5321 IPv6-addr: eight hex groups, or fewer around one "::", with an
 * optional IPv4 address in place of the last two groups. */
static bool
ipv6_is_valid(const char *s, size_t len)
{
    size_t groups = 0;
    bool has_double_colon = false;
    size_t pos = 0;

    if (len >= 2 && s[0] == ':' && s[1] == ':') {
        has_double_colon = true;
        pos = 2;
    } else if (len > 0 && s[0] == ':') {
        return false;
    }
    /* Each round consumes a group and its separator. */
    while (pos < len) {
        if (groups >= SMTP_PARSER_IPV6_GROUPS) {
            return false;
        }
        size_t seg_end = pos;
        while (seg_end < len && s[seg_end] != ':') {
            seg_end++;
        }
        if (memchr(s + pos, '.', seg_end - pos) != NULL) {
            /* An embedded IPv4 address is last and counts as two groups. */
            if (seg_end != len || !ipv4_is_valid(s + pos, seg_end - pos)) {
                return false;
            }
            groups += 2;
            pos = len;
            break;
        }
        size_t digits = seg_end - pos;
        if (digits == 0 || digits > 4) {
            return false;
        }
        for (size_t i = pos; i < seg_end; i++) {
            if (ascii_hex_value((unsigned char)s[i]) < 0) {
                return false;
            }
        }
        groups++;
        pos = seg_end;
        if (pos == len) {
            break;
        }
        pos++; /* the ':' */
        if (pos == len) {
            return false; /* a single trailing ':' */
        }
        if (s[pos] == ':') {
            if (has_double_colon) {
                return false;
            }
            has_double_colon = true;
            pos++;
        }
    }
    if (has_double_colon) {
        return groups < SMTP_PARSER_IPV6_GROUPS;
    }
    return groups == SMTP_PARSER_IPV6_GROUPS;
}

/* Empty spans are (NULL, 0), as the header promises for parameter values. */
static struct span
span_or_empty(const char *ptr, size_t len)
{
    return len == 0 ? span_make(NULL, 0) : span_make(ptr, len);
}

static bool
is_ws(char c)
{
    return c == ' ' || c == '\t';
}

static bool
is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool
is_alnum(char c)
{
    return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* Upper or lower case hex digit, or -1. */
