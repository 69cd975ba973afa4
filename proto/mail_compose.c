/*
 * proto/mail_compose.c - the output buffer and encodings the messages
 * Sieve sends itself need (filters/sieve_vacation, filters/sieve_reject;
 * store/dsn's bounces use them too),
 * and the walk over the header fields of the message they answer.
 *
 * Owns nothing past a call but the buffer it grows for the caller. Pure,
 * any thread. Limits: the buffer's bytes_max; every function is linear in
 * its input.
 */
#include "proto/mail_compose.h"

#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>

#include "core/assertions.h"

#define MAIL_COMPOSE_ENCODED_CHUNK_BYTES 45u /* UTF-8 bytes per encoded word */

/* An encoded word of a chunk: "=?UTF-8?B?" + 4 * ceil(45 / 3) + "?=" = 72 <= 75. */
static_assert(10 + (MAIL_COMPOSE_ENCODED_CHUNK_BYTES + 2) / 3 * 4 + 2 <= 75,
              "encoded words stay within RFC 2047's 75 characters");

void
mail_compose_bytes(struct mail_compose *out, const char *bytes, size_t len)
{
    ASSERT(out != NULL);
    ASSERT(out->len <= out->bytes_max);
    if (out->error != 0 || len == 0) {
        return;
    }
    if (len > out->bytes_max - out->len) {
        out->error = -E2BIG;
        return;
    }
    if (len > out->cap - out->len) {
        size_t want = out->cap < 4096 ? 4096 : out->cap * 2;
        while (want - out->len < len) {
            want *= 2;
        }
        if (want > out->bytes_max) {
            want = out->bytes_max;
        }
        char *bytes_new = realloc(out->bytes, want);
        if (bytes_new == NULL) {
            out->error = -ENOMEM;
            return;
        }
        out->bytes = bytes_new;
        out->cap = want;
    }
    memcpy(out->bytes + out->len, bytes, len);
    out->len += len;
}

void
mail_compose_str(struct mail_compose *out, const char *s)
{
    mail_compose_bytes(out, s, strlen(s));
}

/* Script- or message-given text inside a header line: CR, LF and other
 * controls become spaces, so nothing can start a new field. */
void
mail_compose_clean(struct mail_compose *out, const char *s, size_t len)
{
    size_t start = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f) {
            mail_compose_bytes(out, s + start, i - start);
            mail_compose_str(out, " ");
            start = i + 1;
        }
    }
    mail_compose_bytes(out, s + start, len - start);
}

/* RFC 2047 B encoded words of UTF-8 text, MAIL_COMPOSE_ENCODED_CHUNK_BYTES
 * (or fewer, ending on a character boundary) per word, words on their own
 * folded lines. */
void
mail_compose_encoded(struct mail_compose *out, const char *utf8, size_t len)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t pos = 0;
    bool is_first = true;
    while (pos < len) {
        size_t n = len - pos;
        if (n > MAIL_COMPOSE_ENCODED_CHUNK_BYTES) {
            n = MAIL_COMPOSE_ENCODED_CHUNK_BYTES;
            while (n > 1 && ((unsigned char)utf8[pos + n] & 0xc0) == 0x80) {
                n--;
            }
        }
        if (!is_first) {
            mail_compose_str(out, "\r\n ");
        }
        is_first = false;
        mail_compose_str(out, "=?UTF-8?B?");
        char quad[4];
        for (size_t i = 0; i < n; i += 3) {
            uint32_t v = (uint32_t)(unsigned char)utf8[pos + i] << 16;
            if (i + 1 < n) {
                v |= (uint32_t)(unsigned char)utf8[pos + i + 1] << 8;
            }
            if (i + 2 < n) {
                v |= (uint32_t)(unsigned char)utf8[pos + i + 2];
            }
            quad[0] = alphabet[(v >> 18) & 63];
            quad[1] = alphabet[(v >> 12) & 63];
            quad[2] = i + 1 < n ? alphabet[(v >> 6) & 63] : '=';
            quad[3] = i + 2 < n ? alphabet[v & 63] : '=';
            mail_compose_bytes(out, quad, 4);
        }
        mail_compose_str(out, "?=");
        pos += n;
    }
}

/* Text with its line ends made CRLF (bare LF and bare CR alike). */
void
mail_compose_crlf(struct mail_compose *out, const char *text, size_t len)
{
    size_t start = 0;
    for (size_t i = 0; i < len; i++) {
        if (text[i] == '\n' || text[i] == '\r') {
            mail_compose_bytes(out, text + start, i - start);
            mail_compose_str(out, "\r\n");
            if (text[i] == '\r' && i + 1 < len && text[i + 1] == '\n') {
                i++;
            }
            start = i + 1;
        }
    }
    mail_compose_bytes(out, text + start, len - start);
}

/* Quoted-printable (RFC 2045 6.7): line ends become hard CRLF breaks,
 * lines are soft-broken before 76 characters, '=' and bytes outside
 * printable ASCII are escaped, as is white space before a line end. */
void
mail_compose_qp(struct mail_compose *out, const char *text, size_t len)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t column = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c == '\r' || c == '\n') {
            mail_compose_str(out, "\r\n");
            if (c == '\r' && i + 1 < len && text[i + 1] == '\n') {
                i++;
            }
            column = 0;
            continue;
        }
        bool is_line_end = i + 1 >= len || text[i + 1] == '\r' || text[i + 1] == '\n';
        bool is_literal = (c >= 33 && c <= 126 && c != '=') ||
                          ((c == ' ' || c == '\t') && !is_line_end);
        size_t width = is_literal ? 1 : 3;
        if (column + width > 75) {
            mail_compose_str(out, "=\r\n");
            column = 0;
        }
        if (is_literal) {
            mail_compose_bytes(out, (const char *)&text[i], 1);
        } else {
            char esc[3] = {'=', hex[c >> 4], hex[c & 15]};
            mail_compose_bytes(out, esc, 3);
        }
        column += width;
    }
}

bool
mail_compose_is_ascii(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if ((unsigned char)s[i] >= 0x80) {
            return false;
        }
    }
    return true;
}

/* The longest line in text (CR and LF both end lines), without its end. */
size_t
mail_compose_longest_line(const char *text, size_t len)
{
    size_t longest = 0;
    size_t run = 0;
    for (size_t i = 0; i < len; i++) {
        if (text[i] == '\r' || text[i] == '\n') {
            run = 0;
            continue;
        }
        run++;
        if (run > longest) {
            longest = run;
        }
    }
    return longest;
}

/* A digest of bytes in memory fails only when OpenSSL cannot allocate its
 * context or has no SHA-256 (a broken library): the callers have no error
 * to return for that, so it is asserted. */
void
mail_compose_sha256_hex(const void *data, size_t len, char hex_out[65])
{
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int digest_len = 0;
    int ok = EVP_Digest(data, len, digest, &digest_len, EVP_sha256(), NULL);
    ASSERT(ok == 1);
    ASSERT(digest_len == 32);
    mail_compose_hex(digest, hex_out);
}

void
mail_compose_hex(const unsigned char digest[32], char hex_out[65])
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < 32; i++) {
        hex_out[2 * i] = hex[digest[i] >> 4];
        hex_out[2 * i + 1] = hex[digest[i] & 15];
    }
    hex_out[64] = '\0';
}

/* The next field of a header block at *pos: name, colon, value with its
 * folded lines. Stops (false) at the empty line, at the end, and at a line
 * that is no field. The last field may end at the end of the bytes. */
bool
mail_compose_field_next(const char *header, size_t len, size_t *pos,
                         struct mail_compose_field *out)
{
    size_t at = *pos;
    if (header == NULL || at >= len || header[at] == '\r' || header[at] == '\n' ||
        header[at] == ' ' || header[at] == '\t') {
        return false;
    }
    size_t colon = at;
    while (colon < len && header[colon] != ':' && header[colon] != '\n') {
        unsigned char c = (unsigned char)header[colon];
        if (c <= ' ' || c >= 0x7f) {
            return false;
        }
        colon++;
    }
    if (colon >= len || header[colon] != ':' || colon == at) {
        return false;
    }
    size_t end = colon + 1;
    for (;;) {
        const char *lf = memchr(header + end, '\n', len - end);
        if (lf == NULL) {
            end = len;
            break;
        }
        end = (size_t)(lf - header) + 1;
        if (end >= len || (header[end] != ' ' && header[end] != '\t')) {
            break;
        }
    }
    size_t value_end = end;
    if (value_end > colon + 1 && header[value_end - 1] == '\n') {
        value_end--;
        if (value_end > colon + 1 && header[value_end - 1] == '\r') {
            value_end--;
        }
    }
    out->name = header + at;
    out->name_len = colon - at;
    out->value = header + colon + 1;
    out->value_len = value_end - (colon + 1);
    *pos = end;
    return true;
}

bool
mail_compose_field_is(const struct mail_compose_field *field, const char *name)
{
    return field->name_len == strlen(name) && strncasecmp(field->name, name, field->name_len) == 0;
}

/* The first field called name. */
bool
mail_compose_field_find(const char *header, size_t len, const char *name,
                         struct mail_compose_field *out)
{
    size_t pos = 0;
    while (mail_compose_field_next(header, len, &pos, out)) {
        if (mail_compose_field_is(out, name)) {
            return true;
        }
    }
    return false;
}

/* The header block up to its empty line, CRLF line ends, each line cut
 * at 998 bytes, lone CRs and NULs made spaces, whole lines only up to the
 * copy's bytes_max. */
void
mail_compose_copy_header(struct mail_compose *out, const char *header, size_t len)
{
    size_t pos = 0;
    while (pos < len) {
        const char *lf = memchr(header + pos, '\n', len - pos);
        size_t line_end = lf != NULL ? (size_t)(lf - header) : len;
        size_t next = lf != NULL ? line_end + 1 : len;
        size_t content_end = line_end;
        if (content_end > pos && header[content_end - 1] == '\r') {
            content_end--;
        }
        if (content_end == pos) {
            break; /* the empty line */
        }
        size_t n = content_end - pos;
        if (n > MAIL_COMPOSE_LINE_BYTES_MAX) {
            n = MAIL_COMPOSE_LINE_BYTES_MAX;
        }
        if (n + 2 > out->bytes_max - out->len) {
            break; /* the bound: whole lines only */
        }
        size_t start = pos;
        for (size_t i = pos; i < pos + n; i++) {
            if (header[i] == '\r' || header[i] == '\0') {
                mail_compose_bytes(out, header + start, i - start);
                mail_compose_str(out, " ");
                start = i + 1;
            }
        }
        mail_compose_bytes(out, header + start, pos + n - start);
        mail_compose_str(out, "\r\n");
        pos = next;
    }
}

bool
mail_compose_contains(const struct mail_compose *part, const char *needle, size_t needle_len)
{
    if (part->len < needle_len) {
        return false;
    }
    for (size_t i = 0; i + needle_len <= part->len; i++) {
        if (part->bytes[i] == needle[0] && memcmp(part->bytes + i, needle, needle_len) == 0) {
            return true;
        }
    }
    return false;
}
