/*
 * proto/imap/imap_text.c - RFC 2047 header decoding, charsets to UTF-8 and
 * case-insensitive "contains" (see imap_text.h for what is folded).
 *
 * Owns nothing beyond an iconv descriptor inside a struct imap_text_conv.
 * Pure, any thread (worker threads in practice: iconv_open may load a
 * gconv module). Limits: the caller's output buffers,
 * IMAP_TEXT_CHARSET_NAME_MAX, IMAP_TEXT_NEEDLE_BYTES_MAX; every loop
 * consumes at least one input byte per round.
 */
#define _GNU_SOURCE /* memmem */
#include "proto/imap/imap_text.h"

#include <assert.h>
#include <errno.h>
#include <iconv.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "core/assertions.h"
#include "core/utf8.h"
#include "proto/imap/imap_decode.h"

enum conv_kind {
    CONV_NONE = 0,
    CONV_UTF8,   /* UTF-8 and US-ASCII (8-bit bytes in "ASCII" are taken as UTF-8) */
    CONV_LATIN1, /* ISO-8859-1: byte = code point */
    CONV_ICONV,
};

#define REPLACEMENT_CHAR UTF8_REPLACEMENT
/* Decoded bytes of adjacent encoded words waiting for conversion. */
#define PENDING_BYTES 2048u

static_assert(IMAP_TEXT_FINDER_BYTES >= 2 * IMAP_TEXT_NEEDLE_BYTES_MAX + 8,
              "finder buffer leaves room for new text after the kept tail");

struct writer {
    char  *buf;
    size_t cap;
    size_t len;
    bool   is_full;
};

/* An RFC 2047 encoded word found in a header value. */
struct encoded_word {
    struct span charset; /* without "*language" */
    struct span text;    /* encoded-text */
    char        encoding;/* 'B' or 'Q' */
    size_t      end;     /* index after "?=" */
};

static uint32_t fold_cp(uint32_t c);
static bool writer_put_cp(struct writer *w, uint32_t cp);
static void writer_put_utf8(struct writer *w, const char *s, size_t len);
static void pending_flush(struct imap_text_conv *conv, const char *pending, size_t *pending_len,
                          struct writer *w);
static void writer_put_bytes(struct writer *w, const char *s, size_t len);
static bool charset_is(struct span charset, const char *const *names);
static bool iconv_is_utf8_passthrough(iconv_t cd);
static bool encoded_word_parse(const char *s, size_t len, size_t pos, struct encoded_word *ew);
static size_t q_decode(struct span text, char *out, size_t out_bytes);
static void finder_flush(struct imap_text_finder *finder);
static void finder_put_cp(struct imap_text_finder *finder, uint32_t cp);

int
imap_text_conv_open(struct imap_text_conv *conv, struct span charset)
{
    static const char *const utf8_names[] = {
        "utf-8", "utf8", "us-ascii", "ascii", "us_ascii", "ansi_x3.4-1968", NULL,
    };
    static const char *const latin1_names[] = {
        "iso-8859-1", "iso8859-1", "iso_8859-1", "latin1", "l1", "iso-ir-100", NULL,
    };
    ASSERT(conv != NULL);
    conv->kind = CONV_NONE;
    conv->cd = NULL;
    if (charset.len == 0 || charset_is(charset, utf8_names)) {
        conv->kind = CONV_UTF8;
        return 0;
    }
    if (charset_is(charset, latin1_names)) {
        conv->kind = CONV_LATIN1;
        return 0;
    }
    if (charset.len > IMAP_TEXT_CHARSET_NAME_MAX) {
        return -EINVAL;
    }
    /* Only name characters reach iconv: no "//TRANSLIT" or other suffixes. */
    char name[IMAP_TEXT_CHARSET_NAME_MAX + 1];
    for (size_t i = 0; i < charset.len; i++) {
        unsigned char c = (unsigned char)charset.ptr[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '-' || c == '_' || c == '.' || c == ':' || c == '+';
        if (!ok) {
            return -EINVAL;
        }
        name[i] = (char)c;
    }
    name[charset.len] = '\0';
    iconv_t cd = iconv_open("UTF-8", name);
    if (cd == (iconv_t)-1) {
        return -EINVAL;
    }
    if (iconv_is_utf8_passthrough(cd)) {
        /* glibc copies UTF-8 to UTF-8 unchecked, under any of its aliases
         * ("utf-+8", "ISO-IR-193"...): our own reader checks it instead. */
        (void)iconv_close(cd);
        conv->kind = CONV_UTF8;
        return 0;
    }
    conv->kind = CONV_ICONV;
    conv->cd = cd;
    return 0;
}

/* Whether cd passes a sequence above U+10FFFF through as it is, as an
 * unchecked UTF-8 copy does; a real decoder refuses it. */
static bool
iconv_is_utf8_passthrough(iconv_t cd)
{
    char probe[] = "\xf4\x90\x80\x80";
    char got[16];
    char *ip = probe;
    size_t il = sizeof probe - 1;
    char *op = got;
    size_t ol = sizeof got;
    size_t r = iconv(cd, &ip, &il, &op, &ol);
    (void)iconv(cd, NULL, NULL, NULL, NULL); /* back to the initial state */
    return r != (size_t)-1 && il == 0 && (size_t)(op - got) == sizeof probe - 1 &&
           memcmp(got, probe, sizeof probe - 1) == 0;
}

size_t
imap_text_conv_run(struct imap_text_conv *conv, const char *in, size_t len, bool is_final,
                   char *out, size_t out_bytes, size_t *used_out)
{
    ASSERT(conv != NULL);
    ASSERT(conv->kind != CONV_NONE);
    ASSERT(used_out != NULL);
    struct writer w = { .buf = out, .cap = out_bytes };
    size_t pos = 0;
    const unsigned char *u = (const unsigned char *)in;
    if (conv->kind == CONV_UTF8) {
        while (pos < len) {
            /* Most mail is ASCII: copy runs of it whole. */
            if (u[pos] < 0x80) {
                size_t run = pos;
                while (run < len && u[run] < 0x80 && w.len + (run - pos) < w.cap) {
                    run++;
                }
                if (run == pos) {
                    w.is_full = true;
                    break;
                }
                memcpy(w.buf + w.len, u + pos, run - pos);
                w.len += run - pos;
                pos = run;
                continue;
            }
            uint32_t cp;
            bool is_incomplete;
            size_t n = utf8_decode(u + pos, len - pos, &cp, &is_incomplete);
            if (is_incomplete && !is_final) {
                break;
            }
            if (!writer_put_cp(&w, cp)) {
                break;
            }
            pos += n;
        }
    } else if (conv->kind == CONV_LATIN1) {
        while (pos < len && writer_put_cp(&w, u[pos])) {
            pos++;
        }
    } else {
        char *ip = (char *)(uintptr_t)in;
        size_t il = len;
        char *op = out;
        size_t ol = out_bytes;
        /* Each round consumes input, or ends the loop. */
        while (il > 0) {
            size_t r = iconv((iconv_t)conv->cd, &ip, &il, &op, &ol);
            if (r != (size_t)-1) {
                break;
            }
            int err = errno;
            if (err == EILSEQ || (err == EINVAL && is_final)) {
                if (ol < 3) {
                    break;
                }
                op += utf8_encode(REPLACEMENT_CHAR, op);
                ol -= 3;
                size_t skip = err == EILSEQ ? 1 : il;
                ip += skip;
                il -= skip;
                continue;
            }
            break; /* E2BIG (out is full) or EINVAL (incomplete, not final) */
        }
        if (is_final && il == 0) {
            /* Back to the initial shift state for the next call. */
            (void)iconv((iconv_t)conv->cd, NULL, NULL, &op, &ol);
        }
        pos = len - il;
        w.len = (size_t)(op - out);
    }
    *used_out = pos;
    return w.len;
}

void
imap_text_conv_close(struct imap_text_conv *conv)
{
    ASSERT(conv != NULL);
    if (conv->kind == CONV_ICONV) {
        (void)iconv_close((iconv_t)conv->cd); /* cannot fail on a valid descriptor */
    }
    conv->kind = CONV_NONE;
    conv->cd = NULL;
}

long
imap_text_to_utf8(struct span charset, const char *in, size_t len, char *out, size_t out_bytes)
{
    struct imap_text_conv conv;
    if (imap_text_conv_open(&conv, charset) != 0) {
        return -1;
    }
    size_t used;
    size_t n = imap_text_conv_run(&conv, in, len, true, out, out_bytes, &used);
    imap_text_conv_close(&conv);
    return (long)n;
}

size_t
imap_text_decode_header(const char *value, size_t len, char *out, size_t out_bytes)
{
    ASSERT(value != NULL || len == 0);
    struct writer w = { .buf = out, .cap = out_bytes };
    char pending[PENDING_BYTES];
    size_t pending_len = 0;
    struct imap_text_conv conv = { .kind = CONV_NONE };
    struct span conv_charset = { 0 };
    bool last_was_word = false;
    size_t i = 0;

    /* Each round consumes at least one byte. */
    while (i < len && !w.is_full) {
        char c = value[i];
        if (c == '\r' || c == '\n') {
            i++; /* unfolding: the line break goes, the white space after it stays */
            continue;
        }
        struct encoded_word ew;
        if (c == ' ' || c == '\t') {
            size_t j = i;
            while (j < len && (value[j] == ' ' || value[j] == '\t' || value[j] == '\r' ||
                               value[j] == '\n')) {
                j++;
            }
            if (last_was_word && encoded_word_parse(value, len, j, &ew)) {
                i = j; /* white space between encoded words disappears */
                continue;
            }
            pending_flush(&conv, pending, &pending_len, &w);
            for (size_t k = i; k < j; k++) {
                if (value[k] == ' ' || value[k] == '\t') {
                    writer_put_bytes(&w, &value[k], 1);
                }
            }
            last_was_word = false;
            i = j;
            continue;
        }
        if (c == '=' && encoded_word_parse(value, len, i, &ew)) {
            bool is_same = conv.kind != CONV_NONE && conv_charset.len == ew.charset.len &&
                           strncasecmp(conv_charset.ptr, ew.charset.ptr, ew.charset.len) == 0;
            if (!is_same || pending_len + ew.text.len > sizeof(pending)) {
                pending_flush(&conv, pending, &pending_len, &w);
            }
            if (!is_same) {
                if (conv.kind != CONV_NONE) {
                    imap_text_conv_close(&conv);
                }
                if (imap_text_conv_open(&conv, ew.charset) == 0) {
                    conv_charset = ew.charset;
                }
            }
            long n = -1;
            if (conv.kind != CONV_NONE && ew.text.len <= sizeof(pending) - pending_len) {
                if (ew.encoding == 'B') {
                    n = imap_decode_base64(ew.text.ptr, ew.text.len, pending + pending_len,
                                           sizeof(pending) - pending_len);
                } else {
                    n = (long)q_decode(ew.text, pending + pending_len,
                                       sizeof(pending) - pending_len);
                }
            }
            if (n < 0) {
                /* Unknown charset, too long or bad base64: the word stays as it was. */
                writer_put_utf8(&w, value + i, ew.end - i);
                last_was_word = false;
            } else {
                pending_len += (size_t)n;
                last_was_word = true;
            }
            i = ew.end;
            continue;
        }
        pending_flush(&conv, pending, &pending_len, &w);
        last_was_word = false;
        size_t j = i + 1;
        while (j < len && value[j] != ' ' && value[j] != '\t' && value[j] != '\r' &&
               value[j] != '\n' && !(value[j] == '=' && j + 1 < len && value[j + 1] == '?')) {
            j++;
        }
        writer_put_utf8(&w, value + i, j - i);
        i = j;
    }
    pending_flush(&conv, pending, &pending_len, &w);
    if (conv.kind != CONV_NONE) {
        imap_text_conv_close(&conv);
    }
    return w.len;
}

size_t
imap_text_fold(const char *utf8, size_t len, char *out, size_t out_bytes)
{
    ASSERT(utf8 != NULL || len == 0);
    struct writer w = { .buf = out, .cap = out_bytes };
    const unsigned char *u = (const unsigned char *)utf8;
    size_t pos = 0;
    while (pos < len) {
        uint32_t cp;
        bool is_incomplete;
        size_t n = utf8_decode(u + pos, len - pos, &cp, &is_incomplete);
        if (!writer_put_cp(&w, fold_cp(cp))) {
            break;
        }
        pos += n;
    }
    return w.len;
}

void
imap_text_finder_init(struct imap_text_finder *finder, const char *needle, size_t needle_len)
{
    ASSERT(finder != NULL);
    ASSERT(needle_len <= IMAP_TEXT_NEEDLE_BYTES_MAX);
    ASSERT(needle != NULL || needle_len == 0);
    finder->needle = needle;
    finder->needle_len = needle_len;
    finder->buf_len = 0;
    finder->partial_len = 0;
    finder->is_found = needle_len == 0;
}

bool
imap_text_finder_feed(struct imap_text_finder *finder, const char *utf8, size_t len)
{
    ASSERT(finder != NULL);
    ASSERT(utf8 != NULL || len == 0);
    const unsigned char *u = (const unsigned char *)utf8;
    size_t pos = 0;
    /* Each round consumes at least one input byte, or stores the rest. */
    while (pos < len && !finder->is_found) {
        uint32_t cp;
        bool is_incomplete;
        size_t n;
        if (finder->partial_len > 0) {
            unsigned char tmp[8];
            size_t have = finder->partial_len;
            memcpy(tmp, finder->partial, have);
            size_t take = len - pos < 4 ? len - pos : 4;
            memcpy(tmp + have, u + pos, take);
            n = utf8_decode(tmp, have + take, &cp, &is_incomplete);
            if (is_incomplete) {
                /* Still short: all of the input went into tmp. */
                ASSERT(have + take < sizeof(finder->partial) + 1);
                memcpy(finder->partial, tmp, have + take);
                finder->partial_len = have + take;
                pos = len;
                break;
            }
            /* The partial bytes were a valid prefix, so n covers them all. */
            ASSERT(n >= have);
            finder->partial_len = 0;
            pos += n - have;
        } else if (u[pos] < 0x80) {
            /* A run of ASCII folds byte by byte (A-Z to a-z, as fold_cp). */
            size_t run = pos;
            while (run < len && u[run] < 0x80) {
                run++;
            }
            while (pos < run && !finder->is_found) {
                if (finder->buf_len == sizeof(finder->buf)) {
                    finder_flush(finder);
                    continue;
                }
                size_t take = sizeof(finder->buf) - finder->buf_len;
                if (take > run - pos) {
                    take = run - pos;
                }
                char *out = finder->buf + finder->buf_len;
                for (size_t i = 0; i < take; i++) {
                    unsigned char c = u[pos + i];
                    out[i] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
                }
                finder->buf_len += take;
                pos += take;
            }
            continue;
        } else {
            n = utf8_decode(u + pos, len - pos, &cp, &is_incomplete);
            if (is_incomplete) {
                memcpy(finder->partial, u + pos, len - pos);
                finder->partial_len = len - pos;
                pos = len;
                break;
            }
            pos += n;
        }
        finder_put_cp(finder, cp);
    }
    if (!finder->is_found) {
        finder_flush(finder);
    }
    return finder->is_found;
}

bool
imap_text_finder_end(struct imap_text_finder *finder)
{
    ASSERT(finder != NULL);
    ASSERT(finder->partial_len < sizeof(finder->partial));
    if (finder->is_found || finder->partial_len == 0) {
        finder->partial_len = 0;
        return finder->is_found;
    }
    /* The kept bytes are a valid prefix of one sequence (feed keeps
     * nothing else), which imap_text_fold() turns into one U+FFFD. */
    finder->partial_len = 0;
    finder_put_cp(finder, REPLACEMENT_CHAR);
    if (!finder->is_found) {
        finder_flush(finder);
    }
    return finder->is_found;
}

bool
imap_text_contains(const char *utf8, size_t len, const char *needle, size_t needle_len)
{
    struct imap_text_finder finder;
    imap_text_finder_init(&finder, needle, needle_len);
    (void)imap_text_finder_feed(&finder, utf8, len); /* the end call gives the answer */
    return imap_text_finder_end(&finder);
}

/* Helpers. */

/* Simple case folding of the ranges listed in imap_text.h. */
static uint32_t
fold_cp(uint32_t c)
{
    if (c < 0x80) {
        return c >= 'A' && c <= 'Z' ? c + 32 : c;
    }
    if (c < 0x100) {
        if (c >= 0xc0 && c <= 0xde && c != 0xd7) {
            return c + 32;
        }
        return c == 0xb5 ? 0x3bcu : c;
    }
    if (c < 0x180) {
        if (c == 0x178) {
            return 0xff;
        }
        if (c == 0x17f) {
            return 's';
        }
        /* Pairs with the capital on the even code point. */
        if ((c <= 0x12f) || (c >= 0x132 && c <= 0x137) || (c >= 0x14a && c <= 0x177)) {
            return c | 1u;
        }
        /* Pairs with the capital on the odd code point. */
        if ((c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17e)) {
            return (c & 1u) != 0 ? c + 1 : c;
        }
        return c; /* U+0130, U+0131, U+0138, U+0149 */
    }
    if (c >= 0x386 && c <= 0x3ab) {
        if (c == 0x386) {
            return 0x3ac;
        }
        if (c >= 0x388 && c <= 0x38a) {
            return c + 37;
        }
        if (c == 0x38c) {
            return 0x3cc;
        }
        if (c == 0x38e || c == 0x38f) {
            return c + 63;
        }
        if (c >= 0x391 && c != 0x3a2) {
            return c + 32;
        }
        return c;
    }
    if (c == 0x3c2) {
        return 0x3c3;
    }
    if (c >= 0x400 && c <= 0x40f) {
        return c + 80;
    }
    if (c >= 0x410 && c <= 0x42f) {
        return c + 32;
    }
    return c;
}

static bool
writer_put_cp(struct writer *w, uint32_t cp)
{
    char tmp[4];
    size_t n = utf8_encode(cp, tmp);
    if (w->len + n > w->cap) {
        w->is_full = true;
        return false;
    }
    memcpy(w->buf + w->len, tmp, n);
    w->len += n;
    return true;
}

/* Bytes that should be UTF-8: copied character by character, invalid
 * ones as U+FFFD. */
static void
writer_put_utf8(struct writer *w, const char *s, size_t len)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t pos = 0;
    while (pos < len && !w->is_full) {
        uint32_t cp;
        bool is_incomplete;
        size_t n = utf8_decode(u + pos, len - pos, &cp, &is_incomplete);
        if (!writer_put_cp(w, cp)) {
            break;
        }
        pos += n;
    }
}

/* Convert the decoded bytes of the encoded words seen so far. */
static void
pending_flush(struct imap_text_conv *conv, const char *pending, size_t *pending_len,
              struct writer *w)
{
    if (*pending_len == 0 || w->is_full) {
        *pending_len = 0;
        return;
    }
    size_t used;
    w->len += imap_text_conv_run(conv, pending, *pending_len, true, w->buf + w->len,
                                 w->cap - w->len, &used);
    w->is_full = used < *pending_len;
    *pending_len = 0;
}

static void
writer_put_bytes(struct writer *w, const char *s, size_t len)
{
    if (w->is_full || w->len + len > w->cap) {
        w->is_full = true;
        return;
    }
    memcpy(w->buf + w->len, s, len);
    w->len += len;
}

static bool
charset_is(struct span charset, const char *const *names)
{
    for (size_t i = 0; names[i] != NULL; i++) {
        if (span_equals_nocase(charset, names[i])) {
            return true;
        }
    }
    return false;
}

/* "=?" charset ["*" language] "?" ("B" / "Q") "?" encoded-text "?=" at
 * s[pos]; encoded-text holds no white space, no '?'. */
static bool
encoded_word_parse(const char *s, size_t len, size_t pos, struct encoded_word *ew)
{
    if (pos + 1 >= len || s[pos] != '=' || s[pos + 1] != '?') {
        return false;
    }
    size_t i = pos + 2;
    size_t cs_start = i;
    while (i < len && s[i] != '?' && s[i] != ' ' && s[i] != '\t' && s[i] != '\r' &&
           s[i] != '\n') {
        i++;
    }
    if (i == cs_start || i >= len || s[i] != '?') {
        return false;
    }
    struct span charset = span_make(s + cs_start, i - cs_start);
    const char *star = memchr(charset.ptr, '*', charset.len);
    if (star != NULL) {
        charset.len = (size_t)(star - charset.ptr);
        if (charset.len == 0) {
            return false;
        }
    }
    i++;
    if (i + 1 >= len || s[i + 1] != '?') {
        return false;
    }
    char enc = s[i];
    if (enc == 'b') {
        enc = 'B';
    } else if (enc == 'q') {
        enc = 'Q';
    }
    if (enc != 'B' && enc != 'Q') {
        return false;
    }
    i += 2;
    size_t text_start = i;
    while (i < len && s[i] != '?') {
        if (s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n') {
            return false;
        }
        i++;
    }
    if (i + 1 >= len || s[i + 1] != '=') {
        return false;
    }
    ew->charset = charset;
    ew->text = span_make(s + text_start, i - text_start);
    ew->encoding = enc;
    ew->end = i + 2;
    return true;
}

static int
hex_value(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

/* RFC 2047 "Q": '_' is a space, "=XX" a byte, anything else itself (a
 * malformed "=" too). Needs out_bytes >= text.len. */
static size_t
q_decode(struct span text, char *out, size_t out_bytes)
{
    ASSERT(out_bytes >= text.len);
    size_t n = 0;
    for (size_t i = 0; i < text.len; i++) {
        char c = text.ptr[i];
        if (c == '_') {
            out[n++] = ' ';
        } else if (c == '=' && i + 2 < text.len && hex_value(text.ptr[i + 1]) >= 0 &&
                   hex_value(text.ptr[i + 2]) >= 0) {
            out[n++] = (char)(hex_value(text.ptr[i + 1]) * 16 + hex_value(text.ptr[i + 2]));
            i += 2;
        } else {
            out[n++] = c;
        }
    }
    return n;
}

/* Search what is in the buffer, then keep only the bytes a match could
 * still start in. */
static void
finder_flush(struct imap_text_finder *finder)
{
    if (finder->buf_len >= finder->needle_len &&
        memmem(finder->buf, finder->buf_len, finder->needle, finder->needle_len) != NULL) {
        finder->is_found = true;
        return;
    }
    size_t keep = finder->needle_len > 0 ? finder->needle_len - 1 : 0;
    if (finder->buf_len > keep) {
        memmove(finder->buf, finder->buf + finder->buf_len - keep, keep);
        finder->buf_len = keep;
    }
}

static void
finder_put_cp(struct imap_text_finder *finder, uint32_t cp)
{
    if (finder->buf_len + 4 > sizeof(finder->buf)) {
        finder_flush(finder);
        if (finder->is_found) {
            return;
        }
    }
    finder->buf_len += utf8_encode(fold_cp(cp), finder->buf + finder->buf_len);
}
