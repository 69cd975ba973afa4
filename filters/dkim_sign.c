/*
 * filters/dkim_sign.c - DKIM-Signature fields for outgoing mail (see
 * dkim_sign.h).
 *
 * Order: the header block is read and split, the body streamed once
 * through the body canonicalizer into SHA-256 (bh=), then per key the
 * field is written up to "b=", the signed fields and that text are hashed,
 * and the signature is appended. The signature covers exactly the text we
 * write (b= empty), so the folding is ours to choose even under "simple".
 * Worker threads and tools; the keys are only read.
 */
#include "filters/dkim_sign.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "core/assertions.h"
#include "filters/dkim_crypto.h"
#include "filters/dkim_message.h"
#include "filters/dkim_tags.h"

#define DKIM_SIGN_COLUMNS 78u

struct signed_field {
    const char *name;
    bool is_oversigned;
};

static const struct signed_field signed_fields[] = {
    {"From", true},         {"Subject", true},      {"Date", true},
    {"To", true},           {"Cc", true},           {"Message-ID", true},
    {"Reply-To", false},    {"In-Reply-To", false}, {"References", false},
    {"MIME-Version", true}, {"Content-Type", true}, {"Content-Transfer-Encoding", true},
};

/* The field being written, with its column for folding. */
struct builder {
    char *buf;
    size_t len;
    size_t bytes;
    size_t column;
    bool is_full;
};

struct body_hash {
    EVP_MD_CTX *md;
    struct dkim_body_canon canon;
    bool has_failed;
};

static void put_raw(struct builder *b, const char *text, size_t len);
static void put_token(struct builder *b, const char *separator, const char *text);
static void put_base64(struct builder *b, const char *text);
static void body_emit(void *arg, const char *bytes, size_t len);
static void body_feed(void *arg, const char *bytes, size_t len);
static const char *canon_name(enum dkim_canon canon);

void
dkim_sign_options_default(struct dkim_sign_options *options_out)
{
    memset(options_out, 0, sizeof(*options_out));
    options_out->canon_header = DKIM_CANON_RELAXED;
    options_out->canon_body = DKIM_CANON_RELAXED;
    options_out->now_s = (uint64_t)time(NULL);
}

int
dkim_sign(const struct dkim_key *const *keys, size_t key_count, int fd,
          const struct dkim_sign_options *options, char *out, size_t out_bytes, size_t *len_out)
{
    ASSERT(fd >= 0);
    ASSERT(keys != NULL || key_count == 0);
    *len_out = 0;
    if (key_count == 0) {
        return 0; /* nothing to sign with: no need to read the message */
    }
    struct dkim_message msg;
    int rc = dkim_message_open(fd, &msg);
    if (rc != 0) {
        return rc;
    }
    /* h=: each listed field as often as present, oversigned ones once more. */
    static_assert(DKIM_SIG_HEADERS_MAX <= 64, "the h= list lives on the stack");
    char names[DKIM_SIG_HEADERS_MAX][DKIM_HEADER_NAME_BYTES_MAX + 1];
    size_t name_count = 0;
    for (size_t s = 0; s < sizeof(signed_fields) / sizeof(signed_fields[0]) && rc == 0; s++) {
        size_t count = signed_fields[s].is_oversigned ? 1 : 0;
        for (size_t i = 0; i < msg.field_count; i++) {
            count += dkim_message_field_is(&msg, &msg.fields[i], signed_fields[s].name) ? 1 : 0;
        }
        for (size_t i = 0; i < count; i++) {
            if (name_count == DKIM_SIG_HEADERS_MAX) {
                rc = -EMSGSIZE;
                break;
            }
            (void)snprintf(names[name_count++], sizeof(names[0]), "%s", signed_fields[s].name);
        }
    }
    /* bh= */
    struct body_hash body = {.md = EVP_MD_CTX_new()};
    uint8_t body_digest[DKIM_HASH_BYTES];
    unsigned body_digest_len = 0;
    if (rc == 0 && body.md == NULL) {
        rc = -ENOMEM;
    }
    if (rc == 0 && EVP_DigestInit_ex(body.md, EVP_sha256(), NULL) != 1) {
        rc = -EIO;
    }
    if (rc == 0) {
        dkim_body_canon_init(&body.canon, options->canon_body, options->has_length, options->length,
                             body_emit, &body);
        rc = dkim_message_body(&msg, fd, body_feed, NULL, &body);
    }
    if (rc == 0) {
        dkim_body_canon_finish(&body.canon);
        if (body.has_failed || EVP_DigestFinal_ex(body.md, body_digest, &body_digest_len) != 1) {
            rc = -EIO;
        }
    }
    EVP_MD_CTX_free(body.md);
    char bh[DKIM_HASH_BYTES * 2];
    if (rc == 0) {
        (void)dkim_base64_encode(body_digest, sizeof(body_digest), bh, sizeof(bh));
    }

    size_t total = 0;
    EVP_MD_CTX *md = rc == 0 ? EVP_MD_CTX_new() : NULL;
    if (rc == 0 && md == NULL) {
        rc = -ENOMEM;
    }
    for (size_t k = 0; k < key_count && rc == 0; k++) {
        const struct dkim_key *key = keys[k];
        struct builder b = {.buf = out + total, .bytes = out_bytes - total};
        char token[DKIM_DOMAIN_BYTES_MAX + 64];
        put_raw(&b, "DKIM-Signature: v=1;", strlen("DKIM-Signature: v=1;"));
        (void)snprintf(token, sizeof(token), "a=%s;",
                       key->type == DKIM_KEY_TYPE_ED25519 ? "ed25519-sha256" : "rsa-sha256");
        put_token(&b, " ", token);
        (void)snprintf(token, sizeof(token), "c=%s/%s;", canon_name(options->canon_header),
                       canon_name(options->canon_body));
        put_token(&b, " ", token);
        (void)snprintf(token, sizeof(token), "d=%s;", key->domain);
        put_token(&b, " ", token);
        (void)snprintf(token, sizeof(token), "s=%s;", key->selector);
        put_token(&b, " ", token);
        (void)snprintf(token, sizeof(token), "t=%llu;", (unsigned long long)options->now_s);
        put_token(&b, " ", token);
        if (options->expire_after_s > 0) {
            (void)snprintf(token, sizeof(token), "x=%llu;",
                           (unsigned long long)(options->now_s + options->expire_after_s));
            put_token(&b, " ", token);
        }
        if (options->has_length) {
            (void)snprintf(token, sizeof(token), "l=%llu;", (unsigned long long)options->length);
            put_token(&b, " ", token);
        }
        for (size_t i = 0; i < name_count; i++) {
            (void)snprintf(token, sizeof(token), "%s%s%s", i == 0 ? "h=" : "", names[i],
                           i + 1 < name_count ? ":" : ";");
            put_token(&b, i == 0 ? " " : "", token);
        }
        put_token(&b, " ", "bh=");
        put_base64(&b, bh);
        put_raw(&b, ";", 1);
        put_token(&b, " ", "b=");
        if (b.is_full) {
            rc = -ENOSPC;
            break;
        }
        uint8_t digest[DKIM_HASH_BYTES];
        unsigned digest_len = 0;
        if (EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
            rc = -EIO;
            break;
        }
        rc = dkim_crypto_hash_headers(md, &msg, names, name_count, options->canon_header);
        if (rc == 0) {
            rc = dkim_crypto_hash_signature_field(md, b.buf, b.len, options->canon_header);
        }
        if (rc == 0 && EVP_DigestFinal_ex(md, digest, &digest_len) != 1) {
            rc = -EIO;
        }
        uint8_t signature[DKIM_SIGN_RSA_BITS_MAX / 8];
        size_t signature_len = 0;
        if (rc == 0) {
            rc = dkim_crypto_sign(key->pkey, digest, signature, sizeof(signature), &signature_len);
        }
        if (rc != 0) {
            break;
        }
        char b64[sizeof(signature) * 4 / 3 + 8];
        (void)dkim_base64_encode(signature, signature_len, b64, sizeof(b64));
        put_base64(&b, b64);
        put_raw(&b, "\r\n", 2);
        if (b.is_full) {
            rc = -ENOSPC;
            break;
        }
        total += b.len;
    }
    EVP_MD_CTX_free(md);
    dkim_message_close(&msg);
    if (rc != 0) {
        return rc;
    }
    *len_out = total;
    return 0;
}

static void
put_raw(struct builder *b, const char *text, size_t len)
{
    if (b->is_full || b->len + len > b->bytes) {
        b->is_full = true;
        return;
    }
    memcpy(b->buf + b->len, text, len);
    b->len += len;
    b->column += len;
}

/* text after separator, or on a new folded line when it would pass the
 * column limit. */
static void
put_token(struct builder *b, const char *separator, const char *text)
{
    size_t len = strlen(text);
    size_t sep_len = strlen(separator);
    if (b->column + sep_len + len > DKIM_SIGN_COLUMNS && b->column > 1) {
        put_raw(b, "\r\n\t", 3);
        b->column = 1;
    } else {
        put_raw(b, separator, sep_len);
    }
    put_raw(b, text, len);
}

/* base64 text in pieces that fill each line to the column limit. */
static void
put_base64(struct builder *b, const char *text)
{
    size_t len = strlen(text);
    size_t pos = 0;
    while (pos < len) {
        if (b->column + 8 > DKIM_SIGN_COLUMNS) {
            put_raw(b, "\r\n\t", 3);
            b->column = 1;
        }
        size_t room = DKIM_SIGN_COLUMNS - b->column;
        size_t piece = len - pos < room ? len - pos : room;
        put_raw(b, text + pos, piece);
        pos += piece;
    }
}

static void
body_emit(void *arg, const char *bytes, size_t len)
{
    struct body_hash *body = arg;
    if (EVP_DigestUpdate(body->md, bytes, len) != 1) {
        body->has_failed = true;
    }
}

static void
body_feed(void *arg, const char *bytes, size_t len)
{
    struct body_hash *body = arg;
    dkim_body_canon_feed(&body->canon, bytes, len);
}

static const char *
canon_name(enum dkim_canon canon)
{
    return canon == DKIM_CANON_RELAXED ? "relaxed" : "simple";
}
