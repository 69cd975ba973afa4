/*
 * filters/dkim_verify.c - two-phase DKIM verification (see dkim_verify.h).
 *
 * Phase 1 does all the work that reads the message: the header block is
 * read and split, each DKIM-Signature (at most DKIM_VERIFY_SIGNATURES_MAX)
 * is parsed, its header hash computed, and one pass over the body feeds
 * one canonicalizer per distinct (c= body, l=) pair. What survives into
 * phase 2 is small: per signature the two hashes' outcome, b= and the key
 * name. Phase 2 is key lookups and one public-key operation per
 * signature, each done once; a signature whose key is not answered yet
 * stays open and the call returns -EINPROGRESS. Worker threads.
 */
#include "filters/dkim_verify.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ascii.h"
#include "core/assertions.h"
#include "filters/dkim_crypto.h"
#include "filters/dkim_message.h"

struct verify_body {
    enum dkim_canon canon;
    bool has_length;
    uint64_t length;
    EVP_MD_CTX *md;
    struct dkim_body_canon bc;
    bool has_failed;
    uint8_t digest[DKIM_HASH_BYTES];
};

struct verify_sig {
    bool is_done; /* result final */
    enum dkim_algorithm algorithm;
    bool is_body_ok;
    bool is_identity_subdomain; /* i= is below d=: refused by t=s keys */
    size_t body_index;
    uint8_t body_hash[DKIM_HASH_BYTES]; /* bh= */
    uint8_t header_hash[DKIM_HASH_BYTES];
    uint8_t signature[DKIM_SIGNATURE_BYTES_MAX];
    size_t signature_len;
    char key_name[DKIM_DOMAIN_BYTES_MAX + 1];
    bool has_length;
    uint64_t length;
};

struct dkim_verify {
    size_t count;   /* results */
    size_t checked; /* signatures with a verify_sig */
    struct verify_sig sigs[DKIM_VERIFY_SIGNATURES_MAX];
    struct dkim_result results[DKIM_VERIFY_SIGNATURES_MAX + 1];
};

struct body_pass {
    struct verify_body *bodies;
    size_t count;
};

static void set_result(struct dkim_verify *ctx, size_t index, enum dkim_result_code code,
                       const char *format, ...) __attribute__((format(printf, 4, 5)));
static int prepare_signature(struct dkim_verify *ctx, const struct dkim_message *msg,
                             const struct dkim_field *field, uint64_t now_s,
                             struct verify_body *bodies, size_t *body_count, struct dkim_sig *sig);
static void check_signature(struct dkim_verify *ctx, size_t index, const struct dns_answer *answer);
static void body_emit(void *arg, const char *bytes, size_t len);
static void body_feed(void *arg, const char *bytes, size_t len);
static bool body_is_full(void *arg);
static size_t put_value(char *out, size_t out_bytes, size_t n, const char *value);

int
dkim_verify_prepare(int fd, uint64_t now_s, struct dkim_verify **ctx_out)
{
    ASSERT(fd >= 0);
    *ctx_out = NULL;
    struct dkim_verify *ctx = calloc(1, sizeof(*ctx));
    if (ctx == NULL) {
        return -ENOMEM;
    }
    struct dkim_message msg;
    int rc = dkim_message_open(fd, &msg);
    if (rc == -EMSGSIZE) {
        ctx->count = 1;
        set_result(ctx, 0, DKIM_RESULT_PERMERROR,
                   "header block over %u KiB or %u fields: not verified",
                   DKIM_HEADER_BLOCK_BYTES_MAX / 1024, DKIM_HEADER_FIELDS_MAX);
        ctx->results[0].b_prefix[0] = '\0';
        *ctx_out = ctx;
        return 0;
    }
    if (rc != 0) {
        free(ctx);
        return rc;
    }
    struct verify_body bodies[DKIM_VERIFY_SIGNATURES_MAX];
    size_t body_count = 0;
    struct dkim_sig *sig = malloc(sizeof(*sig));
    if (sig == NULL) {
        dkim_message_close(&msg);
        free(ctx);
        return -ENOMEM;
    }
    size_t unchecked = 0;
    for (size_t i = 0; i < msg.field_count && rc == 0; i++) {
        if (!dkim_message_field_is(&msg, &msg.fields[i], "DKIM-Signature")) {
            continue;
        }
        if (ctx->checked == DKIM_VERIFY_SIGNATURES_MAX) {
            unchecked++;
            continue;
        }
        rc = prepare_signature(ctx, &msg, &msg.fields[i], now_s, bodies, &body_count, sig);
    }
    free(sig);
    ctx->count = ctx->checked;
    if (unchecked > 0) {
        set_result(ctx, ctx->count, DKIM_RESULT_POLICY,
                   "%zu more signature%s not checked (at most %u per message)", unchecked,
                   unchecked == 1 ? "" : "s", DKIM_VERIFY_SIGNATURES_MAX);
        ctx->count++;
    }
    /* One pass over the body for every (c=, l=) pair. */
    if (rc == 0 && body_count > 0) {
        struct body_pass pass = {.bodies = bodies, .count = body_count};
        rc = dkim_message_body(&msg, fd, body_feed, body_is_full, &pass);
        for (size_t b = 0; b < body_count && rc == 0; b++) {
            dkim_body_canon_finish(&bodies[b].bc);
            unsigned len = 0;
            if (bodies[b].has_failed ||
                EVP_DigestFinal_ex(bodies[b].md, bodies[b].digest, &len) != 1) {
                rc = -EIO;
            }
        }
        for (size_t s = 0; s < ctx->checked && rc == 0; s++) {
            struct verify_sig *vs = &ctx->sigs[s];
            if (vs->is_done) {
                continue;
            }
            const struct verify_body *body = &bodies[vs->body_index];
            vs->is_body_ok = memcmp(body->digest, vs->body_hash, DKIM_HASH_BYTES) == 0;
            if (vs->has_length && body->bc.canonical_bytes < vs->length) {
                set_result(ctx, s, DKIM_RESULT_PERMERROR,
                           "l=%llu is longer than the canonical body (%llu bytes)",
                           (unsigned long long)vs->length,
                           (unsigned long long)body->bc.canonical_bytes);
            }
        }
    }
    for (size_t b = 0; b < body_count; b++) {
        EVP_MD_CTX_free(bodies[b].md);
    }
    dkim_message_close(&msg);
    if (rc != 0) {
        free(ctx);
        return rc;
    }
    *ctx_out = ctx;
    return 0;
}

int
dkim_verify_finish(struct dkim_verify *ctx, const struct dns_source *source,
                   const struct dkim_result **results_out, size_t *count_out)
{
    ASSERT(ctx != NULL);
    ASSERT(source != NULL);
    bool is_waiting = false;
    for (size_t s = 0; s < ctx->checked; s++) {
        struct verify_sig *vs = &ctx->sigs[s];
        if (vs->is_done) {
            continue;
        }
        const struct dns_answer *answer = NULL;
        int rc = dns_source_lookup(source, DNS_TYPE_TXT, vs->key_name, &answer);
        if (rc == -EINPROGRESS) {
            is_waiting = true; /* asked; keep asking for the others meanwhile */
            continue;
        }
        if (rc == -EINVAL) {
            set_result(ctx, s, DKIM_RESULT_PERMERROR, "key name %s is not a domain name",
                       vs->key_name);
            continue;
        }
        if (rc != 0 || answer == NULL) {
            set_result(ctx, s, DKIM_RESULT_TEMPERROR, "key lookup failed: %s",
                       strerror(rc < 0 ? -rc : EIO));
            continue;
        }
        check_signature(ctx, s, answer);
    }
    if (is_waiting) {
        return -EINPROGRESS;
    }
    *results_out = ctx->results;
    *count_out = ctx->count;
    return 0;
}

void
dkim_verify_destroy(struct dkim_verify **ctx)
{
    if (*ctx == NULL) {
        return;
    }
    explicit_bzero(*ctx, sizeof(**ctx));
    free(*ctx);
    *ctx = NULL;
}

const char *
dkim_result_name(enum dkim_result_code code)
{
    switch (code) {
    case DKIM_RESULT_PASS:
        return "pass";
    case DKIM_RESULT_FAIL:
        return "fail";
    case DKIM_RESULT_NEUTRAL:
        return "neutral";
    case DKIM_RESULT_POLICY:
        return "policy";
    case DKIM_RESULT_TEMPERROR:
        return "temperror";
    case DKIM_RESULT_PERMERROR:
        return "permerror";
    }
    return "permerror";
}

int
dkim_result_format(const struct dkim_result *result, char *out, size_t out_bytes)
{
    ASSERT(out_bytes > 0);
    int n = snprintf(out, out_bytes, "dkim=%s", dkim_result_name(result->code));
    if (n < 0 || (size_t)n >= out_bytes) {
        return -ENOSPC;
    }
    size_t len = (size_t)n;
    if (result->code != DKIM_RESULT_PASS && result->reason[0] != '\0') {
        len = put_value(out, out_bytes, len, " reason=");
        len = put_value(out, out_bytes, len, result->reason);
    }
    if (result->domain[0] != '\0') {
        const char *names[] = {
            " header.d=", " header.i=", " header.s=", " header.a=", " header.b="};
        const char *values[] = {result->domain, result->identity, result->selector,
                                result->algorithm, result->b_prefix};
        for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
            if (values[i][0] == '\0') {
                continue;
            }
            len = put_value(out, out_bytes, len, names[i]);
            len = put_value(out, out_bytes, len, values[i]);
        }
    }
    if (len >= out_bytes) {
        out[out_bytes - 1] = '\0';
        return -ENOSPC;
    }
    return (int)len;
}

int
dkim_results_format(const struct dkim_result *results, size_t count, char *out, size_t out_bytes)
{
    ASSERT(out_bytes > 0);
    out[0] = '\0';
    if (count == 0) {
        int n = snprintf(out, out_bytes, "dkim=none");
        return n > 0 && (size_t)n < out_bytes ? n : -ENOSPC;
    }
    size_t len = 0;
    for (size_t i = 0; i < count; i++) {
        if (i > 0) {
            if (len + 2 >= out_bytes) {
                return -ENOSPC;
            }
            memcpy(out + len, "; ", 3);
            len += 2;
        }
        int n = dkim_result_format(&results[i], out + len, out_bytes - len);
        if (n < 0) {
            out[len > 1 ? len - 2 : 0] = '\0';
            return -ENOSPC;
        }
        len += (size_t)n;
    }
    return (int)len;
}

static void
set_result(struct dkim_verify *ctx, size_t index, enum dkim_result_code code, const char *format,
           ...)
{
    ASSERT(index <= DKIM_VERIFY_SIGNATURES_MAX);
    struct dkim_result *result = &ctx->results[index];
    result->code = code;
    va_list args;
    va_start(args, format);
    (void)vsnprintf(result->reason, sizeof(result->reason), format, args);
    va_end(args);
    if (index < DKIM_VERIFY_SIGNATURES_MAX) {
        ctx->sigs[index].is_done = true;
    }
}

/* Parse one signature, hash its header fields, and attach it to a body
 * pass. A signature that cannot be checked gets its final result now.
 * Returns 0, or -ENOMEM / -EIO (the whole verification fails). */
static int
prepare_signature(struct dkim_verify *ctx, const struct dkim_message *msg,
                  const struct dkim_field *field, uint64_t now_s, struct verify_body *bodies,
                  size_t *body_count, struct dkim_sig *sig)
{
    size_t index = ctx->checked++;
    struct verify_sig *vs = &ctx->sigs[index];
    struct dkim_result *result = &ctx->results[index];
    const char *text = msg->header + field->offset;
    size_t value_offset = (size_t)field->name_len;
    while (value_offset < field->len && text[value_offset] != ':') {
        value_offset++;
    }
    value_offset++; /* past the colon, which dkim_message_field_is() proved is there */
    char reason[DKIM_REASON_BYTES] = "";
    int rc =
        dkim_sig_parse(text + value_offset, field->len - value_offset, sig, reason, sizeof(reason));
    (void)snprintf(result->domain, sizeof(result->domain), "%s", sig->domain);
    (void)snprintf(result->selector, sizeof(result->selector), "%s", sig->selector);
    (void)snprintf(result->b_prefix, sizeof(result->b_prefix), "%s", sig->b_prefix);
    if (rc != 0) {
        set_result(ctx, index, DKIM_RESULT_PERMERROR, "%s", reason);
        return 0;
    }
    (void)snprintf(result->algorithm, sizeof(result->algorithm), "%s",
                   dkim_algorithm_name(sig->algorithm));
    if (sig->has_identity) {
        (void)snprintf(result->identity, sizeof(result->identity), "%s", sig->identity);
    }
    if (sig->algorithm == DKIM_ALGORITHM_RSA_SHA1) {
        set_result(ctx, index, DKIM_RESULT_FAIL, "rsa-sha1 is not accepted (RFC 8301)");
        return 0;
    }
    if (sig->has_timestamp && sig->timestamp > now_s + DKIM_CLOCK_SKEW_S) {
        set_result(ctx, index, DKIM_RESULT_PERMERROR, "t=%llu is in the future",
                   (unsigned long long)sig->timestamp);
        return 0;
    }
    if (sig->has_expiry && now_s > sig->expiry) {
        set_result(ctx, index, DKIM_RESULT_FAIL, "signature expired (x=%llu)",
                   (unsigned long long)sig->expiry);
        return 0;
    }
    vs->algorithm = sig->algorithm;
    memcpy(vs->body_hash, sig->body_hash, DKIM_HASH_BYTES);
    memcpy(vs->signature, sig->signature, sig->signature_len);
    vs->signature_len = sig->signature_len;
    vs->has_length = sig->has_length;
    vs->length = sig->length;
    const char *at = strrchr(sig->identity, '@');
    vs->is_identity_subdomain = at != NULL && strcmp(at + 1, sig->domain) != 0 &&
                                !span_equals_nocase(span_make(at + 1, strlen(at + 1)), sig->domain);
    int n = snprintf(vs->key_name, sizeof(vs->key_name), "%s._domainkey.%s", sig->selector,
                     sig->domain);
    ASSERT(n > 0 && (size_t)n < sizeof(vs->key_name)); /* dkim_sig_parse bounds both */

    /* The header hash: the fields h= names, then this field with the value
     * of b= deleted, without its CRLF. */
    size_t cut = value_offset + sig->b_raw_offset;
    ASSERT(cut + sig->b_raw_len <= field->len);
    char *copy = malloc(field->len > 0 ? field->len : 1);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    if (copy == NULL || md == NULL) {
        free(copy);
        EVP_MD_CTX_free(md);
        return -ENOMEM;
    }
    memcpy(copy, text, cut);
    memcpy(copy + cut, text + cut + sig->b_raw_len, field->len - cut - sig->b_raw_len);
    size_t copy_len = field->len - sig->b_raw_len;
    unsigned digest_len = 0;
    rc = EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1 ? 0 : -EIO;
    if (rc == 0) {
        rc = dkim_crypto_hash_headers(md, msg,
                                      (const char(*)[DKIM_HEADER_NAME_BYTES_MAX + 1]) sig->headers,
                                      sig->header_count, sig->canon_header);
    }
    if (rc == 0) {
        rc = dkim_crypto_hash_signature_field(md, copy, copy_len, sig->canon_header);
    }
    if (rc == 0 && EVP_DigestFinal_ex(md, vs->header_hash, &digest_len) != 1) {
        rc = -EIO;
    }
    free(copy);
    EVP_MD_CTX_free(md);
    if (rc != 0) {
        return rc;
    }

    /* The body pass this signature shares. */
    size_t b = 0;
    while (b < *body_count &&
           !(bodies[b].canon == sig->canon_body && bodies[b].has_length == sig->has_length &&
             bodies[b].length == sig->length)) {
        b++;
    }
    if (b == *body_count) {
        ASSERT(b < DKIM_VERIFY_SIGNATURES_MAX);
        struct verify_body *body = &bodies[b];
        memset(body, 0, sizeof(*body));
        body->canon = sig->canon_body;
        body->has_length = sig->has_length;
        body->length = sig->length;
        body->md = EVP_MD_CTX_new();
        if (body->md == NULL) {
            return -ENOMEM;
        }
        (*body_count)++;
        if (EVP_DigestInit_ex(body->md, EVP_sha256(), NULL) != 1) {
            return -EIO;
        }
        dkim_body_canon_init(&body->bc, sig->canon_body, sig->has_length, sig->length, body_emit,
                             body);
    }
    vs->body_index = b;
    return 0;
}

/* The key record has arrived (or its absence): decide the signature. */
static void
check_signature(struct dkim_verify *ctx, size_t index, const struct dns_answer *answer)
{
    struct verify_sig *vs = &ctx->sigs[index];
    struct dkim_result *result = &ctx->results[index];
    switch (answer->status) {
    case DNS_STATUS_OK:
        break;
    case DNS_STATUS_NXDOMAIN:
    case DNS_STATUS_NODATA:
        set_result(ctx, index, DKIM_RESULT_PERMERROR, "no key for signature (%s)", vs->key_name);
        return;
    case DNS_STATUS_TEMPFAIL:
        set_result(ctx, index, DKIM_RESULT_TEMPERROR, "key unavailable (%s: DNS timeout)",
                   vs->key_name);
        return;
    case DNS_STATUS_PERMFAIL:
    default:
        set_result(ctx, index, DKIM_RESULT_TEMPERROR, "key unavailable (%s: DNS error)",
                   vs->key_name);
        return;
    }
    struct dkim_key_record *record = malloc(sizeof(*record));
    if (record == NULL) {
        set_result(ctx, index, DKIM_RESULT_TEMPERROR, "out of memory");
        return;
    }
    char reason[DKIM_REASON_BYTES] = "no TXT record";
    bool is_found = false;
    for (uint32_t i = 0; i < answer->count && !is_found; i++) {
        const struct dns_record *rr = &answer->records[i];
        if (answer->type != DNS_TYPE_TXT || rr->txt.text == NULL) {
            continue;
        }
        char first_reason[DKIM_REASON_BYTES];
        if (dkim_key_record_parse(rr->txt.text, rr->txt.len, record, first_reason,
                                  sizeof(first_reason)) == 0) {
            is_found = true;
        } else if (i == 0) {
            memcpy(reason, first_reason, sizeof(reason));
        }
    }
    if (!is_found) {
        set_result(ctx, index, DKIM_RESULT_PERMERROR, "%s", reason);
        free(record);
        return;
    }
    result->is_testing = record->is_testing;
    bool is_ed25519 = vs->algorithm == DKIM_ALGORITHM_ED25519_SHA256;
    EVP_PKEY *key = NULL;
    unsigned bits = 0;
    if (record->is_revoked) {
        set_result(ctx, index, DKIM_RESULT_PERMERROR, "key revoked (empty p=)");
    } else if (!record->allows_sha256) {
        set_result(ctx, index, DKIM_RESULT_PERMERROR, "key record h= excludes sha256");
    } else if ((record->type == DKIM_KEY_TYPE_ED25519) != is_ed25519) {
        set_result(ctx, index, DKIM_RESULT_PERMERROR, "key type does not match a=%s",
                   dkim_algorithm_name(vs->algorithm));
    } else if (record->is_strict && vs->is_identity_subdomain) {
        set_result(ctx, index, DKIM_RESULT_PERMERROR,
                   "i= is a subdomain of d= and the key says t=s");
    } else {
        int rc = dkim_crypto_public_key(record, &key, &bits);
        if (rc == -EKEYREJECTED && bits < DKIM_RSA_BITS_MIN) {
            set_result(ctx, index, DKIM_RESULT_FAIL, "RSA key of %u bits, under %u (RFC 8301)",
                       bits, DKIM_RSA_BITS_MIN);
        } else if (rc == -EKEYREJECTED) {
            set_result(ctx, index, DKIM_RESULT_PERMERROR, "RSA key of %u bits, over %u", bits,
                       DKIM_RSA_BITS_MAX);
        } else if (rc != 0) {
            set_result(ctx, index, DKIM_RESULT_PERMERROR, "key record p= is not a %s key",
                       is_ed25519 ? "Ed25519" : "RSA");
        } else if (!vs->is_body_ok) {
            set_result(ctx, index, DKIM_RESULT_FAIL, "body hash mismatch");
        } else if (dkim_crypto_verify(key, vs->header_hash, vs->signature, vs->signature_len) !=
                   0) {
            set_result(ctx, index, DKIM_RESULT_FAIL, "signature did not verify");
        } else {
            set_result(ctx, index, DKIM_RESULT_PASS, "%s",
                       record->is_testing ? "good signature (key in testing mode)"
                                          : "good signature");
        }
    }
    EVP_PKEY_free(key);
    free(record);
    if (result->is_testing && result->code == DKIM_RESULT_FAIL) {
        /* RFC 6376 3.6.1 t=y: not to be treated differently from unsigned mail. */
        result->code = DKIM_RESULT_NEUTRAL;
        size_t len = strlen(result->reason);
        (void)snprintf(result->reason + len, sizeof(result->reason) - len,
                       " (key in testing mode)");
    }
}

static void
body_emit(void *arg, const char *bytes, size_t len)
{
    struct verify_body *body = arg;
    if (EVP_DigestUpdate(body->md, bytes, len) != 1) {
        body->has_failed = true;
    }
}

static void
body_feed(void *arg, const char *bytes, size_t len)
{
    struct body_pass *pass = arg;
    for (size_t b = 0; b < pass->count; b++) {
        if (!dkim_body_canon_is_full(&pass->bodies[b].bc)) {
            dkim_body_canon_feed(&pass->bodies[b].bc, bytes, len);
        }
    }
}

/* Every pass has its l= bytes: the rest of the body changes nothing. */
static bool
body_is_full(void *arg)
{
    struct body_pass *pass = arg;
    for (size_t b = 0; b < pass->count; b++) {
        if (!dkim_body_canon_is_full(&pass->bodies[b].bc)) {
            return false;
        }
    }
    return true;
}

/* Append a property value: as it is when every byte is a MIME token byte
 * (RFC 2045) or a plain label (a leading " name=" passes as well), else
 * as a quoted-string with control bytes dropped. */
static size_t
put_value(char *out, size_t out_bytes, size_t n, const char *value)
{
    bool is_token = value[0] != ' ';
    for (const char *p = value; *p != '\0' && is_token; p++) {
        unsigned char c = (unsigned char)*p;
        is_token = c > 0x20 && c < 0x7f && strchr("()<>,;:\\\"/[]?= ", c) == NULL;
    }
    bool is_label = value[0] == ' ';
    if (!is_token && !is_label && n < out_bytes) {
        out[n++] = '"';
    }
    for (const char *p = value; *p != '\0'; p++) {
        unsigned char c = (unsigned char)*p;
        if (c < 0x20 || c == 0x7f) {
            continue;
        }
        if (!is_token && !is_label && (c == '"' || c == '\\') && n < out_bytes) {
            out[n++] = '\\';
        }
        if (n < out_bytes) {
            out[n++] = (char)c;
        }
    }
    if (!is_token && !is_label && n < out_bytes) {
        out[n++] = '"';
    }
    if (n < out_bytes) {
        out[n] = '\0';
    }
    return n;
}
