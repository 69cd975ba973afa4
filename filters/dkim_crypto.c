/*
 * filters/dkim_crypto.c - header hashing, key records into EVP_PKEYs,
 * RSA and Ed25519 over the SHA-256 hash (see dkim_crypto.h).
 *
 * Both algorithms sign the same 32-byte hash: RSA as PKCS #1 v1.5 with a
 * SHA-256 DigestInfo (EVP_PKEY_sign/verify with the digest given), Ed25519
 * as a one-shot EVP_DigestSign/Verify over the hash (RFC 8463 3). So the
 * verifier hashes once in its first phase and keeps 32 bytes, whatever
 * key arrives later. Worker threads and tools; keys are never shared
 * between threads while in use here.
 */
#include "filters/dkim_crypto.h"

#include <errno.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/assertions.h"

#define DKIM_ED25519_KEY_BYTES 32u

int
dkim_crypto_hash_headers(EVP_MD_CTX *md, const struct dkim_message *msg,
                         const char (*names)[DKIM_HEADER_NAME_BYTES_MAX + 1], size_t name_count,
                         enum dkim_canon canon)
{
    ASSERT(msg->field_count <= DKIM_HEADER_FIELDS_MAX);
    uint64_t used[(DKIM_HEADER_FIELDS_MAX + 63) / 64];
    memset(used, 0, sizeof(used));
    char *scratch = NULL;
    size_t scratch_bytes = 0;
    int rc = 0;
    for (size_t n = 0; n < name_count && rc == 0; n++) {
        size_t found = msg->field_count;
        for (size_t i = msg->field_count; i > 0; i--) {
            size_t k = i - 1;
            if ((used[k / 64] >> (k % 64)) & 1u) {
                continue;
            }
            if (dkim_message_field_is(msg, &msg->fields[k], names[n])) {
                found = k;
                break;
            }
        }
        if (found == msg->field_count) {
            continue; /* none (left): the null string */
        }
        used[found / 64] |= (uint64_t)1 << (found % 64);
        const struct dkim_field *field = &msg->fields[found];
        if (scratch_bytes < (size_t)field->len + 2) {
            free(scratch);
            scratch_bytes = (size_t)field->len + 2;
            scratch = malloc(scratch_bytes);
            if (scratch == NULL) {
                return -ENOMEM;
            }
        }
        size_t len = 0;
        rc = dkim_canon_header(canon, msg->header + field->offset, field->len, scratch,
                               scratch_bytes - 2, &len);
        ASSERT(rc == 0); /* the canonical form is never longer */
        scratch[len++] = '\r';
        scratch[len++] = '\n';
        if (EVP_DigestUpdate(md, scratch, len) != 1) {
            rc = -EIO;
        }
    }
    free(scratch);
    return rc;
}

int
dkim_crypto_hash_signature_field(EVP_MD_CTX *md, const char *text, size_t len,
                                 enum dkim_canon canon)
{
    char *scratch = malloc(len > 0 ? len : 1);
    if (scratch == NULL) {
        return -ENOMEM;
    }
    size_t out_len = 0;
    int rc = dkim_canon_header(canon, text, len, scratch, len, &out_len);
    ASSERT(rc == 0);
    if (EVP_DigestUpdate(md, scratch, out_len) != 1) {
        rc = -EIO;
    }
    free(scratch);
    return rc;
}

/* Decoded RSA keys by their DER bytes: decoding costs about 118 us of a
 * 164 us verification (bench/results/filters-speed-2026-12-04.md), and a
 * busy sender signs thousands of messages with one key. Direct-mapped,
 * DKIM_KEY_CACHE_SLOTS slots, one short mutex; a slot holds its own
 * reference and hands out more (EVP_PKEY is immutable and refcounted, so
 * any thread may verify with it). Entries live until replaced: the DER
 * bytes are the key, so a rotated key simply misses. */
#define DKIM_KEY_CACHE_SLOTS 256u

struct key_cache_slot {
    uint64_t hash;
    size_t der_len;
    unsigned char *der;
    EVP_PKEY *key;
    unsigned bits;
};

static struct {
    pthread_mutex_t lock;
    struct key_cache_slot slots[DKIM_KEY_CACHE_SLOTS];
} key_cache = { .lock = PTHREAD_MUTEX_INITIALIZER };

static uint64_t
key_cache_hash(const unsigned char *der, size_t len)
{
    uint64_t h = 14695981039346656037ull; /* FNV-1a */
    for (size_t i = 0; i < len; i++) {
        h = (h ^ der[i]) * 1099511628211ull;
    }
    return h;
}

static EVP_PKEY *
key_cache_get(uint64_t hash, const unsigned char *der, size_t len, unsigned *bits_out)
{
    struct key_cache_slot *slot = &key_cache.slots[hash % DKIM_KEY_CACHE_SLOTS];
    EVP_PKEY *key = NULL;
    pthread_mutex_lock(&key_cache.lock);
    if (slot->key != NULL && slot->hash == hash && slot->der_len == len &&
        memcmp(slot->der, der, len) == 0 && EVP_PKEY_up_ref(slot->key) == 1) {
        key = slot->key;
        *bits_out = slot->bits;
    }
    pthread_mutex_unlock(&key_cache.lock);
    return key;
}

static void
key_cache_put(uint64_t hash, const unsigned char *der, size_t len, EVP_PKEY *key, unsigned bits)
{
    unsigned char *copy = malloc(len);
    if (copy == NULL || EVP_PKEY_up_ref(key) != 1) {
        free(copy);
        return; /* not cached: only slower next time */
    }
    memcpy(copy, der, len);
    struct key_cache_slot *slot = &key_cache.slots[hash % DKIM_KEY_CACHE_SLOTS];
    pthread_mutex_lock(&key_cache.lock);
    EVP_PKEY *old_key = slot->key;
    unsigned char *old_der = slot->der;
    *slot = (struct key_cache_slot){
        .hash = hash, .der_len = len, .der = copy, .key = key, .bits = bits,
    };
    pthread_mutex_unlock(&key_cache.lock);
    EVP_PKEY_free(old_key);
    free(old_der);
}

int
dkim_crypto_public_key(const struct dkim_key_record *record, EVP_PKEY **key_out, unsigned *bits_out)
{
    ASSERT(!record->is_revoked);
    *key_out = NULL;
    *bits_out = 0;
    EVP_PKEY *key = NULL;
    if (record->type == DKIM_KEY_TYPE_ED25519) {
        if (record->public_key_len != DKIM_ED25519_KEY_BYTES) {
            return -EINVAL;
        }
        key = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, record->public_key,
                                          record->public_key_len);
        if (key == NULL) {
            return -EINVAL;
        }
        *bits_out = 256;
        *key_out = key;
        return 0;
    }
    ASSERT(record->type == DKIM_KEY_TYPE_RSA);
    uint64_t hash = key_cache_hash(record->public_key, record->public_key_len);
    key = key_cache_get(hash, record->public_key, record->public_key_len, bits_out);
    if (key != NULL) {
        *key_out = key;
        return 0; /* only keys that passed every check below are cached */
    }
    /* RFC 6376 3.6.1: an ASN.1 DER SubjectPublicKeyInfo; some publish the
     * bare RSAPublicKey (PKCS #1), which other verifiers take too. */
    const unsigned char *p = record->public_key;
    key = d2i_PUBKEY(NULL, &p, (long)record->public_key_len);
    if (key == NULL || p != record->public_key + record->public_key_len) {
        EVP_PKEY_free(key);
        p = record->public_key;
        key = d2i_PublicKey(EVP_PKEY_RSA, NULL, &p, (long)record->public_key_len);
        if (key == NULL || p != record->public_key + record->public_key_len) {
            EVP_PKEY_free(key);
            return -EINVAL;
        }
    }
    if (EVP_PKEY_get_base_id(key) != EVP_PKEY_RSA) {
        EVP_PKEY_free(key);
        return -EINVAL;
    }
    int bits = EVP_PKEY_get_bits(key);
    *bits_out = bits > 0 ? (unsigned)bits : 0;
    if (bits < (int)DKIM_RSA_BITS_MIN || bits > (int)DKIM_RSA_BITS_MAX) {
        EVP_PKEY_free(key);
        return -EKEYREJECTED;
    }
    key_cache_put(hash, record->public_key, record->public_key_len, key, *bits_out);
    *key_out = key;
    return 0;
}

int
dkim_crypto_verify(EVP_PKEY *key, const uint8_t hash[DKIM_HASH_BYTES], const uint8_t *signature,
                   size_t signature_len)
{
    int ok = 0;
    if (EVP_PKEY_get_base_id(key) == EVP_PKEY_ED25519) {
        EVP_MD_CTX *md = EVP_MD_CTX_new();
        if (md == NULL) {
            return -ENOMEM;
        }
        ok = EVP_DigestVerifyInit(md, NULL, NULL, NULL, key) == 1 &&
             EVP_DigestVerify(md, signature, signature_len, hash, DKIM_HASH_BYTES) == 1;
        EVP_MD_CTX_free(md);
    } else {
        EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(key, NULL);
        if (ctx == NULL) {
            return -ENOMEM;
        }
        ok = EVP_PKEY_verify_init(ctx) == 1 &&
             EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) == 1 &&
             EVP_PKEY_CTX_set_signature_md(ctx, EVP_sha256()) == 1 &&
             EVP_PKEY_verify(ctx, signature, signature_len, hash, DKIM_HASH_BYTES) == 1;
        EVP_PKEY_CTX_free(ctx);
    }
    return ok ? 0 : -EBADMSG;
}

int
dkim_crypto_sign(EVP_PKEY *key, const uint8_t hash[DKIM_HASH_BYTES], uint8_t *out, size_t out_bytes,
                 size_t *len_out)
{
    size_t len = out_bytes;
    int ok = 0;
    if ((size_t)EVP_PKEY_get_size(key) > out_bytes) {
        return -ENOSPC;
    }
    if (EVP_PKEY_get_base_id(key) == EVP_PKEY_ED25519) {
        EVP_MD_CTX *md = EVP_MD_CTX_new();
        if (md == NULL) {
            return -ENOMEM;
        }
        ok = EVP_DigestSignInit(md, NULL, NULL, NULL, key) == 1 &&
             EVP_DigestSign(md, out, &len, hash, DKIM_HASH_BYTES) == 1;
        EVP_MD_CTX_free(md);
    } else {
        EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(key, NULL);
        if (ctx == NULL) {
            return -ENOMEM;
        }
        ok = EVP_PKEY_sign_init(ctx) == 1 &&
             EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) == 1 &&
             EVP_PKEY_CTX_set_signature_md(ctx, EVP_sha256()) == 1 &&
             EVP_PKEY_sign(ctx, out, &len, hash, DKIM_HASH_BYTES) == 1;
        EVP_PKEY_CTX_free(ctx);
    }
    if (!ok) {
        return -EIO;
    }
    *len_out = len;
    return 0;
}
