/*
 * filters/dkim_crypto.h - the OpenSSL side of DKIM: hashing the signed
 * header fields (RFC 6376 5.4, 3.7), public keys from key records, and
 * signing or checking the SHA-256 hash with RSA (PKCS #1 v1.5) or Ed25519
 * (RFC 8463: PureEdDSA over the 32-byte hash). OpenSSL 3 EVP only. Worker
 * threads and tools.
 */
#ifndef TOASTER_FILTERS_DKIM_CRYPTO_H
#define TOASTER_FILTERS_DKIM_CRYPTO_H

#include <openssl/evp.h>
#include <stddef.h>
#include <stdint.h>

#include "filters/dkim_canon.h"
#include "filters/dkim_limits.h"
#include "filters/dkim_message.h"
#include "filters/dkim_tags.h"

#define DKIM_HASH_BYTES 32u

/* Feed md the canonical forms of the fields h= names, each with its CRLF:
 * for each name, the last instance not yet used, from the bottom up; a
 * name with no instance left adds nothing (RFC 6376 5.4.2).
 * Returns 0, -ENOMEM, or -EIO when OpenSSL fails. */
int dkim_crypto_hash_headers(EVP_MD_CTX *md, const struct dkim_message *msg,
                             const char (*names)[DKIM_HEADER_NAME_BYTES_MAX + 1], size_t name_count,
                             enum dkim_canon canon);

/* Feed md the canonical DKIM-Signature field (text is the whole field
 * with the value of b= already deleted), without a final CRLF.
 * Returns 0, -ENOMEM, or -EIO. */
int dkim_crypto_hash_signature_field(EVP_MD_CTX *md, const char *text, size_t len,
                                     enum dkim_canon canon);

/* The public key of a (not revoked) key record. Returns 0 and sets
 * *key_out (the caller frees it with EVP_PKEY_free), -EINVAL when p= is
 * not a key of the record's type, or -EKEYREJECTED for an RSA key outside
 * DKIM_RSA_BITS_MIN..DKIM_RSA_BITS_MAX; *bits_out says its size. */
int dkim_crypto_public_key(const struct dkim_key_record *record, EVP_PKEY **key_out,
                           unsigned *bits_out);

/* Check signature over the 32-byte hash. Returns 0 when it matches,
 * -EBADMSG when it does not. */
int dkim_crypto_verify(EVP_PKEY *key, const uint8_t hash[DKIM_HASH_BYTES], const uint8_t *signature,
                       size_t signature_len);

/* Sign the 32-byte hash. Returns 0 and sets *len_out, -ENOSPC, or -EIO. */
int dkim_crypto_sign(EVP_PKEY *key, const uint8_t hash[DKIM_HASH_BYTES], uint8_t *out,
                     size_t out_bytes, size_t *len_out);

#endif
