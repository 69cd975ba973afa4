/*
 * proto/imap/imap_quote.c - IMAP quoted strings, literals and atoms into a
 * bounded buffer.
 *
 * Pure: no allocation, no I/O, runs on any thread. Every writer checks the
 * room first and writes all of a token or nothing, so a buffer never holds
 * half an escape sequence. Work is linear in the input.
 *
 * NUL never leaves here: a string holding one is a literal with each NUL
 * sent as IMAP_QUOTE_NUL_REPLACEMENT (see imap_quote.h for why).
 */
#include "proto/imap/imap_quote.h"

#include <string.h>

#include "core/assertions.h"

/* "18446744073709551615" */
#define IMAP_QUOTE_UINT_DIGITS_MAX 20

static bool is_atom_char(unsigned char c);
static void out_literal(struct imap_out *out, const char *s, size_t len);
static void out_bytes_nul_replaced(struct imap_out *out, const char *s, size_t len);

enum sink_mode {
    SINK_MEASURE, /* count bytes and note what they need */
    SINK_QUOTED,  /* write with '"' and '\\' escaped */
    SINK_RAW,     /* write as they are (literal body) */
};

struct imap_quote_sink {
    enum sink_mode   mode;
    unsigned         flags;
    struct imap_out *out;
    /* Measured (after the humans transform when IMAP_QUOTE_HUMANS). */
    size_t len;
    bool   is_unquotable; /* NUL, CR, LF, or 8-bit without UTF8 */
    bool   has_special;   /* '"' or '\\' */
    /* Humans transform state and whether it changed anything. */
    bool is_last_space;
    bool is_space_pending;
    bool is_modified;
};

static void sink_emit(struct imap_quote_sink *sink, const char *bytes, size_t len);

void
imap_out_init(struct imap_out *out, char *buf, size_t cap)
{
    ASSERT(out != NULL);
    if (cap > 0) {
        ASSERT(buf != NULL);
    }
    out->buf = buf;
    out->cap = cap;
    out->len = 0;
    out->is_overflow = false;
}

void
imap_out_bytes(struct imap_out *out, const void *bytes, size_t len)
{
    ASSERT(out->len <= out->cap);
    if (out->is_overflow) {
        return;
    }
    if (len > out->cap - out->len) {
        out->is_overflow = true;
        return;
    }
    if (len > 0) {
        memcpy(out->buf + out->len, bytes, len);
        out->len += len;
    }
}

void
imap_out_cstr(struct imap_out *out, const char *cstr)
{
    imap_out_bytes(out, cstr, strlen(cstr));
}

void
imap_out_char(struct imap_out *out, char c)
{
    imap_out_bytes(out, &c, 1);
}

void
imap_out_uint(struct imap_out *out, uint64_t value)
{
    char digits[IMAP_QUOTE_UINT_DIGITS_MAX];
    size_t n = 0;
    do {
        digits[sizeof(digits) - 1 - n] = (char)('0' + value % 10);
        value /= 10;
        n++;
    } while (value != 0);
    imap_out_bytes(out, digits + sizeof(digits) - n, n);
}

bool
imap_quote_is_quotable(const char *s, size_t len, unsigned flags)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\0' || c == '\r' || c == '\n') {
            return false;
        }
        if (c >= 0x80 && (flags & IMAP_QUOTE_UTF8) == 0) {
            return false;
        }
    }
    return true;
}

void
imap_out_string(struct imap_out *out, const char *s, size_t len, unsigned flags)
{
    if (len > 0) {
        ASSERT(s != NULL);
    }
    if (!imap_quote_is_quotable(s, len, flags)) {
        out_literal(out, s, len);
        return;
    }
    size_t escapes = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '"' || s[i] == '\\') {
            escapes++;
        }
    }
    /* Check the whole token's room once, then copy run by run. */
    if (out->is_overflow || len + escapes + 2 > out->cap - out->len) {
        out->is_overflow = true;
        return;
    }
    imap_out_char(out, '"');
    size_t run = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '"' || s[i] == '\\') {
            imap_out_bytes(out, s + run, i - run);
            imap_out_char(out, '\\');
            run = i;
        }
    }
    imap_out_bytes(out, s + run, len - run);
    imap_out_char(out, '"');
}

void
imap_out_nstring(struct imap_out *out, const char *s, size_t len, unsigned flags)
{
    if (s == NULL) {
        imap_out_cstr(out, "NIL");
        return;
    }
    imap_out_string(out, s, len, flags);
}

void
imap_out_astring(struct imap_out *out, const char *s, size_t len, unsigned flags)
{
    bool is_atom = len > 0;
    for (size_t i = 0; i < len && is_atom; i++) {
        unsigned char c = (unsigned char)s[i];
        is_atom = is_atom_char(c) || c == ']';
    }
    if (is_atom) {
        imap_out_bytes(out, s, len);
        return;
    }
    imap_out_string(out, s, len, flags);
}

/* ATOM-CHAR: any CHAR except atom-specials: ( ) { SP CTL % * " \ ] */
static bool
is_atom_char(unsigned char c)
{
    if (c <= 0x20 || c >= 0x7f) {
        return false;
    }
    return strchr("(){%*\"\\]", c) == NULL;
}

void
imap_quote_sink_put(struct imap_quote_sink *sink, const char *bytes, size_t len)
{
    if ((sink->flags & IMAP_QUOTE_HUMANS) == 0) {
        sink_emit(sink, bytes, len);
        return;
    }
    size_t run = 0;
    for (size_t i = 0; i < len; i++) {
        char c = bytes[i];
        if (c != ' ' && c != '\t' && c != '\r' && c != '\n') {
            continue;
        }
        sink_emit(sink, bytes + run, i - run);
        run = i + 1;
        if (c == '\r' || c == '\n') {
            sink->is_modified = true;
            continue;
        }
        if (c == '\t' || sink->is_last_space) {
            sink->is_modified = true;
        }
        if (!sink->is_last_space) {
            sink->is_space_pending = true;
        }
        sink->is_last_space = true;
    }
    sink_emit(sink, bytes + run, len - run);
}

void
imap_out_produced(struct imap_out *out, imap_quote_producer_fn *fn, const void *arg,
                  unsigned flags)
{
    struct imap_quote_sink sink = {
        .mode = SINK_MEASURE, .flags = flags, .out = out, .is_last_space = true,
    };
    fn(arg, &sink);
    bool is_humans = (flags & IMAP_QUOTE_HUMANS) != 0;
    if (is_humans && sink.is_space_pending) {
        sink.is_modified = true; /* trailing white space dropped */
    }
    bool is_literal;
    if (is_humans) {
        is_literal = sink.is_unquotable || sink.has_special || sink.is_modified;
        if (sink.len == 0) {
            is_literal = false;
        }
    } else {
        is_literal = sink.is_unquotable;
    }
    size_t measured = sink.len;
    if (is_literal) {
        imap_out_char(out, '{');
        imap_out_uint(out, measured);
        imap_out_cstr(out, "}\r\n");
        sink.mode = SINK_RAW;
    } else {
        imap_out_char(out, '"');
        sink.mode = SINK_QUOTED;
    }
    sink.len = 0;
    sink.is_last_space = true;
    sink.is_space_pending = false;
    fn(arg, &sink);
    /* A producer that is not deterministic is a programmer error. */
    ASSERT(sink.len == measured);
    if (!is_literal) {
        imap_out_char(out, '"');
    }
}

size_t
imap_quote_produced_len(imap_quote_producer_fn *fn, const void *arg, unsigned flags)
{
    struct imap_quote_sink sink = {
        .mode = SINK_MEASURE, .flags = flags, .out = NULL, .is_last_space = true,
    };
    fn(arg, &sink);
    return sink.len;
}

static void
sink_emit(struct imap_quote_sink *sink, const char *bytes, size_t len)
{
    if (len == 0) {
        return;
    }
    if (sink->is_space_pending) {
        sink->is_space_pending = false;
        sink_emit(sink, " ", 1);
    }
    sink->is_last_space = false;
    sink->len += len;
    switch (sink->mode) {
    case SINK_MEASURE:
        for (size_t i = 0; i < len; i++) {
            unsigned char c = (unsigned char)bytes[i];
            if (c == '\0' || c == '\r' || c == '\n' ||
                (c >= 0x80 && (sink->flags & IMAP_QUOTE_UTF8) == 0)) {
                sink->is_unquotable = true;
            } else if (c == '"' || c == '\\') {
                sink->has_special = true;
            }
        }
        break;
    case SINK_RAW:
        out_bytes_nul_replaced(sink->out, bytes, len);
        break;
    case SINK_QUOTED: {
        size_t run = 0;
        for (size_t i = 0; i < len; i++) {
            if (bytes[i] == '"' || bytes[i] == '\\') {
                imap_out_bytes(sink->out, bytes + run, i - run);
                imap_out_char(sink->out, '\\');
                run = i;
            }
        }
        imap_out_bytes(sink->out, bytes + run, len - run);
        break;
    }
    }
}

/* {len}CRLF and the bytes, NUL replaced; the whole token or nothing. */
static void
out_literal(struct imap_out *out, const char *s, size_t len)
{
    size_t digits = 1;
    for (size_t v = len; v >= 10; v /= 10) {
        digits++;
    }
    size_t token = 1 + digits + 3;
    if (out->is_overflow || len > out->cap - out->len || token > out->cap - out->len - len) {
        out->is_overflow = true;
        return;
    }
    imap_out_char(out, '{');
    imap_out_uint(out, len);
    imap_out_cstr(out, "}\r\n");
    out_bytes_nul_replaced(out, s, len);
}

/* Literal data: each NUL goes out as IMAP_QUOTE_NUL_REPLACEMENT. Bounded
 * by len: each round writes up to the next NUL and its stand-in. */
static void
out_bytes_nul_replaced(struct imap_out *out, const char *s, size_t len)
{
    while (len > 0) {
        const char *nul = memchr(s, '\0', len);
        size_t run = nul == NULL ? len : (size_t)(nul - s);
        imap_out_bytes(out, s, run);
        s += run;
        len -= run;
        if (len > 0) {
            imap_out_char(out, (char)IMAP_QUOTE_NUL_REPLACEMENT);
            s++;
            len--;
        }
    }
}
