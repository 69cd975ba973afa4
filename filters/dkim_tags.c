/*
 * filters/dkim_tags.c - tag-lists (RFC 6376 3.2), DKIM-Signature values
 * (3.5) and key records (3.6.1); see dkim_tags.h.
 *
 * The generic parser keeps spans into the caller's text: the trimmed value
 * each reader decodes, and the raw value (everything between '=' and ';')
 * that the verifier deletes for b=. Tag names are case-sensitive; values
 * that name things (algorithms, canonicalizations, key types) are compared
 * without case, as other verifiers do. Any thread; no allocation.
 */
#include "filters/dkim_tags.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/ascii.h"
#include "core/assertions.h"
#include "core/base64.h"

/* t= and x=: RFC 6376 asks for at least 40 bits; 12 digits go past 2^39
 * and to the year 33658. */
#define DKIM_TIME_DIGITS_MAX 12u
/* l=: at most 76 digits by the grammar; 19 keep it inside uint64_t. */
#define DKIM_LENGTH_DIGITS_MAX 19u

static size_t skip_fws(const char *text, size_t len, size_t pos);
static void say(char *reason, size_t reason_bytes, const char *format, ...)
    __attribute__((format(printf, 3, 4)));
static int parse_digits(struct span value, size_t digits_max, uint64_t *out);
static bool list_has(struct span value, const char *item);
static int copy_domain(struct span value, char *out, size_t out_bytes);
static int parse_headers(struct span value, struct dkim_sig *sig, char *reason,
                         size_t reason_bytes);
static bool is_valchar(unsigned char c);

int
dkim_tags_parse(const char *text, size_t len, struct dkim_tag_list *list_out, char *reason,
                size_t reason_bytes)
{
    ASSERT(text != NULL || len == 0);
    ASSERT(list_out != NULL);
    list_out->count = 0;
    size_t pos = 0;
    for (;;) {
        pos = skip_fws(text, len, pos);
        if (pos == len) {
            if (list_out->count == 0) {
                say(reason, reason_bytes, "empty tag-list");
                return -EINVAL;
            }
            return 0;
        }
        size_t name_start = pos;
        if (!((text[pos] >= 'a' && text[pos] <= 'z') || (text[pos] >= 'A' && text[pos] <= 'Z'))) {
            say(reason, reason_bytes, "tag-list syntax: a tag name must start with a letter");
            return -EINVAL;
        }
        while (pos < len &&
               ((text[pos] >= 'a' && text[pos] <= 'z') || (text[pos] >= 'A' && text[pos] <= 'Z') ||
                (text[pos] >= '0' && text[pos] <= '9') || text[pos] == '_')) {
            pos++;
        }
        struct span name = span_make(text + name_start, pos - name_start);
        pos = skip_fws(text, len, pos);
        if (pos == len || text[pos] != '=') {
            say(reason, reason_bytes, "tag-list syntax: no '=' after tag %.*s",
                (int)(name.len < 32 ? name.len : 32), name.ptr);
            return -EINVAL;
        }
        pos++;
        size_t raw_start = pos;
        const char *semicolon = memchr(text + pos, ';', len - pos);
        size_t end = semicolon != NULL ? (size_t)(semicolon - text) : len;
        for (size_t i = raw_start; i < end; i++) {
            unsigned char c = (unsigned char)text[i];
            if (is_valchar(c) || ascii_is_blank((char)c)) {
                continue;
            }
            if (c == '\r' && i + 2 < end && text[i + 1] == '\n' && ascii_is_blank(text[i + 2])) {
                i++;
                continue;
            }
            say(reason, reason_bytes, "tag-list syntax: byte 0x%02x in the value of %.*s", c,
                (int)(name.len < 32 ? name.len : 32), name.ptr);
            return -EINVAL;
        }
        size_t value_start = raw_start;
        size_t value_end = end;
        while (value_start < value_end &&
               (ascii_is_blank(text[value_start]) || text[value_start] == '\r' ||
                text[value_start] == '\n')) {
            value_start++;
        }
        while (value_end > value_start &&
               (ascii_is_blank(text[value_end - 1]) || text[value_end - 1] == '\r' ||
                text[value_end - 1] == '\n')) {
            value_end--;
        }
        for (size_t i = 0; i < list_out->count; i++) {
            const struct span other = list_out->tags[i].name;
            if (other.len == name.len && memcmp(other.ptr, name.ptr, name.len) == 0) {
                say(reason, reason_bytes, "tag %.*s appears twice",
                    (int)(name.len < 32 ? name.len : 32), name.ptr);
                return -EINVAL;
            }
        }
        if (list_out->count == DKIM_TAGS_MAX) {
            say(reason, reason_bytes, "more than %u tags", DKIM_TAGS_MAX);
            return -EINVAL;
        }
        struct dkim_tag *tag = &list_out->tags[list_out->count++];
        tag->name = name;
        tag->value = span_make(text + value_start, value_end - value_start);
        tag->value_raw = span_make(text + raw_start, end - raw_start);
        if (end == len) {
            return 0;
        }
        pos = end + 1;
    }
}

const struct dkim_tag *
dkim_tags_find(const struct dkim_tag_list *list, const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < list->count; i++) {
        if (list->tags[i].name.len == n && memcmp(list->tags[i].name.ptr, name, n) == 0) {
            return &list->tags[i];
        }
    }
    return NULL;
}

int
dkim_base64_decode(struct span text, uint8_t *out, size_t out_bytes, size_t *len_out)
{
    uint32_t acc = 0;
    size_t digits = 0;
    size_t pads = 0;
    size_t n = 0;
    for (size_t i = 0; i < text.len; i++) {
        unsigned char c = (unsigned char)text.ptr[i];
        if (ascii_is_blank((char)c) || c == '\r' || c == '\n') {
            continue;
        }
        if (c == '=') {
            pads++;
            if (pads > 2) {
                return -EINVAL;
            }
            continue;
        }
        int v = base64_digit_value(c, '/');
        if (v < 0 || pads > 0) {
            return -EINVAL;
        }
        acc = (acc << 6) | (uint32_t)v;
        digits++;
        if (digits % 4 == 0) {
            if (n + 3 > out_bytes) {
                return -ENOSPC;
            }
            out[n++] = (uint8_t)(acc >> 16);
            out[n++] = (uint8_t)(acc >> 8);
            out[n++] = (uint8_t)acc;
            acc = 0;
        }
    }
    size_t rest = digits % 4;
    if ((digits + pads) % 4 != 0 || (rest == 0 && pads != 0) || rest == 1) {
        return -EINVAL;
    }
    if (rest == 2) {
        if (n + 1 > out_bytes) {
            return -ENOSPC;
        }
        out[n++] = (uint8_t)(acc >> 4);
    } else if (rest == 3) {
        if (n + 2 > out_bytes) {
            return -ENOSPC;
        }
        out[n++] = (uint8_t)(acc >> 10);
        out[n++] = (uint8_t)(acc >> 2);
    }
    *len_out = n;
    return 0;
}

size_t
dkim_base64_encode(const uint8_t *bytes, size_t len, char *out, size_t out_bytes)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    ASSERT(out_bytes >= (len + 2) / 3 * 4 + 1);
    size_t n = 0;
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)bytes[i] << 16;
        if (i + 1 < len) {
            v |= (uint32_t)bytes[i + 1] << 8;
        }
        if (i + 2 < len) {
            v |= bytes[i + 2];
        }
        out[n++] = alphabet[(v >> 18) & 63];
        out[n++] = alphabet[(v >> 12) & 63];
        out[n++] = i + 1 < len ? alphabet[(v >> 6) & 63] : '=';
        out[n++] = i + 2 < len ? alphabet[v & 63] : '=';
    }
    out[n] = '\0';
    return n;
}

const char *
dkim_algorithm_name(enum dkim_algorithm algorithm)
{
    switch (algorithm) {
    case DKIM_ALGORITHM_RSA_SHA256:
        return "rsa-sha256";
    case DKIM_ALGORITHM_ED25519_SHA256:
        return "ed25519-sha256";
    case DKIM_ALGORITHM_RSA_SHA1:
        return "rsa-sha1";
    }
    return "unknown";
}

int
dkim_sig_parse(const char *value, size_t len, struct dkim_sig *sig_out, char *reason,
               size_t reason_bytes)
{
    static_assert(DKIM_TAGS_MAX <= 64, "the tag list lives on the stack");
    struct dkim_tag_list list;
    memset(sig_out, 0, sizeof(*sig_out));
    if (len > DKIM_SIG_FIELD_BYTES_MAX) {
        say(reason, reason_bytes, "signature over %u bytes", DKIM_SIG_FIELD_BYTES_MAX);
        return -EINVAL;
    }
    if (dkim_tags_parse(value, len, &list, reason, reason_bytes) != 0) {
        return -EINVAL;
    }
    static const char *const required[] = {"v", "a", "b", "bh", "d", "h", "s"};
    for (size_t i = 0; i < sizeof(required) / sizeof(required[0]); i++) {
        if (dkim_tags_find(&list, required[i]) == NULL) {
            say(reason, reason_bytes, "no %s= tag", required[i]);
            return -EINVAL;
        }
    }
    const struct dkim_tag *tag = dkim_tags_find(&list, "v");
    if (!(tag->value.len == 1 && tag->value.ptr[0] == '1')) {
        say(reason, reason_bytes, "v= is not 1");
        return -EINVAL;
    }
    tag = dkim_tags_find(&list, "a");
    size_t hash_bytes = 32;
    if (span_equals_nocase(tag->value, "rsa-sha256")) {
        sig_out->algorithm = DKIM_ALGORITHM_RSA_SHA256;
    } else if (span_equals_nocase(tag->value, "ed25519-sha256")) {
        sig_out->algorithm = DKIM_ALGORITHM_ED25519_SHA256;
    } else if (span_equals_nocase(tag->value, "rsa-sha1")) {
        sig_out->algorithm = DKIM_ALGORITHM_RSA_SHA1;
        hash_bytes = 20;
    } else {
        say(reason, reason_bytes, "unknown algorithm a=%.*s",
            (int)(tag->value.len < 32 ? tag->value.len : 32), tag->value.ptr);
        return -EINVAL;
    }
    tag = dkim_tags_find(&list, "b");
    sig_out->b_raw_offset = (size_t)(tag->value_raw.ptr - value);
    sig_out->b_raw_len = tag->value_raw.len;
    size_t prefix = 0;
    for (size_t i = 0; i < tag->value.len && prefix < 8; i++) {
        char c = tag->value.ptr[i];
        if (!(ascii_is_blank(c) || c == '\r' || c == '\n')) {
            sig_out->b_prefix[prefix++] = c;
        }
    }
    sig_out->b_prefix[prefix] = '\0';
    int rc = dkim_base64_decode(tag->value, sig_out->signature, sizeof(sig_out->signature),
                                &sig_out->signature_len);
    if (rc != 0 || sig_out->signature_len == 0) {
        say(reason, reason_bytes, "b= %s",
            rc == -ENOSPC ? "too long" : (rc != 0 ? "is not base64" : "is empty"));
        return -EINVAL;
    }
    tag = dkim_tags_find(&list, "bh");
    rc = dkim_base64_decode(tag->value, sig_out->body_hash, sizeof(sig_out->body_hash),
                            &sig_out->body_hash_len);
    if (rc != 0 || sig_out->body_hash_len != hash_bytes) {
        say(reason, reason_bytes, "bh= %s",
            rc == -EINVAL ? "is not base64" : "has the wrong length");
        return -EINVAL;
    }
    sig_out->canon_header = DKIM_CANON_SIMPLE;
    sig_out->canon_body = DKIM_CANON_SIMPLE;
    tag = dkim_tags_find(&list, "c");
    if (tag != NULL) {
        const char *slash = memchr(tag->value.ptr, '/', tag->value.len);
        struct span header = span_make(
            tag->value.ptr, slash != NULL ? (size_t)(slash - tag->value.ptr) : tag->value.len);
        struct span body = slash != NULL ? span_make(slash + 1, tag->value.len - header.len - 1)
                                         : SPAN_LITERAL("simple");
        enum dkim_canon *targets[2] = {&sig_out->canon_header, &sig_out->canon_body};
        struct span parts[2] = {header, body};
        for (size_t i = 0; i < 2; i++) {
            if (span_equals_nocase(parts[i], "simple")) {
                *targets[i] = DKIM_CANON_SIMPLE;
            } else if (span_equals_nocase(parts[i], "relaxed")) {
                *targets[i] = DKIM_CANON_RELAXED;
            } else {
                say(reason, reason_bytes, "unknown canonicalization c=%.*s",
                    (int)(tag->value.len < 32 ? tag->value.len : 32), tag->value.ptr);
                return -EINVAL;
            }
        }
    }
    tag = dkim_tags_find(&list, "d");
    if (copy_domain(tag->value, sig_out->domain, sizeof(sig_out->domain)) != 0) {
        say(reason, reason_bytes, "d= is not a domain name");
        return -EINVAL;
    }
    tag = dkim_tags_find(&list, "s");
    if (copy_domain(tag->value, sig_out->selector, sizeof(sig_out->selector)) != 0 ||
        tag->value.len + sizeof("._domainkey.") - 1 + strlen(sig_out->domain) >
            DKIM_DOMAIN_BYTES_MAX) {
        say(reason, reason_bytes, "s= is not a selector");
        return -EINVAL;
    }
    if (parse_headers(dkim_tags_find(&list, "h")->value, sig_out, reason, reason_bytes) != 0) {
        return -EINVAL;
    }
    tag = dkim_tags_find(&list, "i");
    if (tag != NULL) {
        const char *at = NULL;
        for (size_t i = tag->value.len; i > 0; i--) {
            if (tag->value.ptr[i - 1] == '@') {
                at = tag->value.ptr + i - 1;
                break;
            }
        }
        if (at == NULL || tag->value.len > DKIM_IDENTITY_BYTES_MAX) {
            say(reason, reason_bytes, "i= is not an identity (local@domain)");
            return -EINVAL;
        }
        for (size_t i = 0; i < tag->value.len; i++) {
            if (ascii_is_blank(tag->value.ptr[i]) || tag->value.ptr[i] == '\r' ||
                tag->value.ptr[i] == '\n') {
                say(reason, reason_bytes, "i= holds white space");
                return -EINVAL;
            }
        }
        size_t domain_len = tag->value.len - (size_t)(at + 1 - tag->value.ptr);
        size_t d_len = strlen(sig_out->domain);
        bool is_within = false;
        if (domain_len == d_len) {
            is_within = span_equals_nocase(span_make(at + 1, domain_len), sig_out->domain);
        } else if (domain_len > d_len) {
            is_within =
                at[1 + domain_len - d_len - 1] == '.' &&
                span_equals_nocase(span_make(at + 1 + domain_len - d_len, d_len), sig_out->domain);
        }
        if (!is_within) {
            say(reason, reason_bytes, "i= domain is not d= or a subdomain of it");
            return -EINVAL;
        }
        memcpy(sig_out->identity, tag->value.ptr, tag->value.len);
        sig_out->identity[tag->value.len] = '\0';
        sig_out->has_identity = true;
    } else {
        (void)snprintf(sig_out->identity, sizeof(sig_out->identity), "@%s", sig_out->domain);
    }
    tag = dkim_tags_find(&list, "l");
    if (tag != NULL) {
        if (parse_digits(tag->value, DKIM_LENGTH_DIGITS_MAX, &sig_out->length) != 0) {
            say(reason, reason_bytes, "l= is not a length");
            return -EINVAL;
        }
        sig_out->has_length = true;
    }
    tag = dkim_tags_find(&list, "q");
    if (tag != NULL && !list_has(tag->value, "dns/txt")) {
        say(reason, reason_bytes, "q= does not offer dns/txt");
        return -EINVAL;
    }
    tag = dkim_tags_find(&list, "t");
    if (tag != NULL) {
        if (parse_digits(tag->value, DKIM_TIME_DIGITS_MAX, &sig_out->timestamp) != 0) {
            say(reason, reason_bytes, "t= is not a time");
            return -EINVAL;
        }
        sig_out->has_timestamp = true;
    }
    tag = dkim_tags_find(&list, "x");
    if (tag != NULL) {
        if (parse_digits(tag->value, DKIM_TIME_DIGITS_MAX, &sig_out->expiry) != 0) {
            say(reason, reason_bytes, "x= is not a time");
            return -EINVAL;
        }
        sig_out->has_expiry = true;
        if (sig_out->has_timestamp && sig_out->expiry <= sig_out->timestamp) {
            say(reason, reason_bytes, "x= is not after t=");
            return -EINVAL;
        }
    }
    return 0;
}

int
dkim_key_record_parse(const char *text, size_t len, struct dkim_key_record *key_out, char *reason,
                      size_t reason_bytes)
{
    struct dkim_tag_list list;
    memset(key_out, 0, sizeof(*key_out));
    if (len > DKIM_KEY_RECORD_BYTES_MAX) {
        say(reason, reason_bytes, "key record over %u bytes", DKIM_KEY_RECORD_BYTES_MAX);
        return -EINVAL;
    }
    if (dkim_tags_parse(text, len, &list, reason, reason_bytes) != 0) {
        return -EINVAL;
    }
    const struct dkim_tag *tag = dkim_tags_find(&list, "v");
    if (tag != NULL && (tag != &list.tags[0] ||
                        !(tag->value.len == 5 && memcmp(tag->value.ptr, "DKIM1", 5) == 0))) {
        say(reason, reason_bytes, "key record: v= is not DKIM1 or not first");
        return -EINVAL;
    }
    key_out->type = DKIM_KEY_TYPE_RSA;
    tag = dkim_tags_find(&list, "k");
    if (tag != NULL) {
        if (span_equals_nocase(tag->value, "rsa")) {
            key_out->type = DKIM_KEY_TYPE_RSA;
        } else if (span_equals_nocase(tag->value, "ed25519")) {
            key_out->type = DKIM_KEY_TYPE_ED25519;
        } else {
            say(reason, reason_bytes, "key record: unknown key type k=%.*s",
                (int)(tag->value.len < 32 ? tag->value.len : 32), tag->value.ptr);
            return -EINVAL;
        }
    }
    tag = dkim_tags_find(&list, "h");
    key_out->allows_sha256 = tag == NULL || list_has(tag->value, "sha256");
    tag = dkim_tags_find(&list, "s");
    if (tag != NULL && !list_has(tag->value, "*") && !list_has(tag->value, "email")) {
        say(reason, reason_bytes, "key record: s= excludes email");
        return -EINVAL;
    }
    tag = dkim_tags_find(&list, "t");
    if (tag != NULL) {
        key_out->is_testing = list_has(tag->value, "y");
        key_out->is_strict = list_has(tag->value, "s");
    }
    tag = dkim_tags_find(&list, "p");
    if (tag == NULL) {
        say(reason, reason_bytes, "key record: no p= tag");
        return -EINVAL;
    }
    int rc = dkim_base64_decode(tag->value, key_out->public_key, sizeof(key_out->public_key),
                                &key_out->public_key_len);
    if (rc != 0) {
        say(reason, reason_bytes, "key record: p= %s",
            rc == -ENOSPC ? "is too long" : "is not base64");
        return -EINVAL;
    }
    key_out->is_revoked = key_out->public_key_len == 0;
    return 0;
}

bool
dkim_domain_is_valid(const char *name, size_t len)
{
    if (len == 0 || len > DKIM_DOMAIN_BYTES_MAX) {
        return false;
    }
    size_t label = 0;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        if (c == '.') {
            if (label == 0) {
                return false;
            }
            label = 0;
            continue;
        }
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_')) {
            return false;
        }
        if (++label > 63) {
            return false;
        }
    }
    return label > 0;
}

/* FWS: WSP, and CRLF when WSP follows it. */
static size_t
skip_fws(const char *text, size_t len, size_t pos)
{
    while (pos < len) {
        if (ascii_is_blank(text[pos])) {
            pos++;
        } else if (text[pos] == '\r' && pos + 2 < len && text[pos + 1] == '\n' &&
                   ascii_is_blank(text[pos + 2])) {
            pos += 3;
        } else {
            break;
        }
    }
    return pos;
}

static void
say(char *reason, size_t reason_bytes, const char *format, ...)
{
    if (reason == NULL || reason_bytes == 0) {
        return;
    }
    va_list args;
    va_start(args, format);
    (void)vsnprintf(reason, reason_bytes, format, args);
    va_end(args);
}

static int
parse_digits(struct span value, size_t digits_max, uint64_t *out)
{
    if (value.len == 0 || value.len > digits_max) {
        return -EINVAL;
    }
    uint64_t n = 0;
    for (size_t i = 0; i < value.len; i++) {
        if (value.ptr[i] < '0' || value.ptr[i] > '9') {
            return -EINVAL;
        }
        n = n * 10 + (uint64_t)(value.ptr[i] - '0');
    }
    *out = n;
    return 0;
}

/* True when the colon-separated list value (FWS allowed around items)
 * holds item, compared without case. */
static bool
list_has(struct span value, const char *item)
{
    size_t pos = 0;
    while (pos <= value.len) {
        const char *colon = memchr(value.ptr + pos, ':', value.len - pos);
        size_t end = colon != NULL ? (size_t)(colon - value.ptr) : value.len;
        size_t a = pos;
        size_t b = end;
        while (a < b &&
               (ascii_is_blank(value.ptr[a]) || value.ptr[a] == '\r' || value.ptr[a] == '\n')) {
            a++;
        }
        while (b > a && (ascii_is_blank(value.ptr[b - 1]) || value.ptr[b - 1] == '\r' ||
                         value.ptr[b - 1] == '\n')) {
            b--;
        }
        if (span_equals_nocase(span_make(value.ptr + a, b - a), item)) {
            return true;
        }
        if (colon == NULL) {
            break;
        }
        pos = end + 1;
    }
    return false;
}

/* A domain name or selector, copied in lower case. */
static int
copy_domain(struct span value, char *out, size_t out_bytes)
{
    if (!dkim_domain_is_valid(value.ptr, value.len) || value.len + 1 > out_bytes) {
        return -EINVAL;
    }
    for (size_t i = 0; i < value.len; i++) {
        out[i] = (char)ascii_lower((unsigned char)value.ptr[i]);
    }
    out[value.len] = '\0';
    return 0;
}

/* h=: field names separated by ':' with FWS around them; From required. */
static int
parse_headers(struct span value, struct dkim_sig *sig, char *reason, size_t reason_bytes)
{
    bool has_from = false;
    size_t pos = 0;
    sig->header_count = 0;
    for (;;) {
        const char *colon = memchr(value.ptr + pos, ':', value.len - pos);
        size_t end = colon != NULL ? (size_t)(colon - value.ptr) : value.len;
        size_t a = pos;
        size_t b = end;
        while (a < b &&
               (ascii_is_blank(value.ptr[a]) || value.ptr[a] == '\r' || value.ptr[a] == '\n')) {
            a++;
        }
        while (b > a && (ascii_is_blank(value.ptr[b - 1]) || value.ptr[b - 1] == '\r' ||
                         value.ptr[b - 1] == '\n')) {
            b--;
        }
        if (a == b || b - a > DKIM_HEADER_NAME_BYTES_MAX) {
            say(reason, reason_bytes, "h= has an empty or overlong name");
            return -EINVAL;
        }
        for (size_t i = a; i < b; i++) {
            unsigned char c = (unsigned char)value.ptr[i];
            if (c < 0x21 || c > 0x7e) {
                say(reason, reason_bytes, "h= names a field with a blank or control byte");
                return -EINVAL;
            }
        }
        if (sig->header_count == DKIM_SIG_HEADERS_MAX) {
            say(reason, reason_bytes, "h= has more than %u entries", DKIM_SIG_HEADERS_MAX);
            return -EINVAL;
        }
        char *name = sig->headers[sig->header_count++];
        for (size_t i = a; i < b; i++) {
            name[i - a] = (char)ascii_lower((unsigned char)value.ptr[i]);
        }
        name[b - a] = '\0';
        if (strcmp(name, "from") == 0) {
            has_from = true;
        }
        if (colon == NULL) {
            break;
        }
        pos = end + 1;
    }
    if (!has_from) {
        say(reason, reason_bytes, "h= does not include From");
        return -EINVAL;
    }
    return 0;
}

static bool
is_valchar(unsigned char c)
{
    return (c >= 0x21 && c <= 0x3a) || (c >= 0x3c && c <= 0x7e);
}
