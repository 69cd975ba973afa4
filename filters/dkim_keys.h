/*
 * filters/dkim_keys.h - the signing keys: the configuration's
 * `dkim_key = DOMAIN SELECTOR /path/key.pem` lines read into a table at
 * start, looked up by the sender's domain; plus what `toasterctl dkim
 * keygen` needs (a new key, its file written 0600 without replacing one,
 * the key record to publish).
 *
 * Keys are RSA of DKIM_SIGN_RSA_BITS_MIN..MAX bits or Ed25519, in PEM
 * (PKCS #8 or the traditional RSA form). The table is read-only after
 * dkim_keys_load(), so any worker may sign with it at once (OpenSSL 3
 * keys are safe to use concurrently for signing). Private keys stay in
 * this table; nothing hands them to a session.
 */
#ifndef TOASTER_FILTERS_DKIM_KEYS_H
#define TOASTER_FILTERS_DKIM_KEYS_H

#include <openssl/evp.h>
#include <stddef.h>

#include "filters/dkim_limits.h"
#include "filters/dkim_tags.h"

#define DKIM_KEY_PATH_BYTES_MAX 1024u

struct dkim_key {
    char domain[DKIM_DOMAIN_BYTES_MAX + 1];     /* lower case */
    char selector[DKIM_SELECTOR_BYTES_MAX + 1]; /* lower case */
    char path[DKIM_KEY_PATH_BYTES_MAX + 1];
    enum dkim_key_type type;
    unsigned bits;
    EVP_PKEY *pkey; /* owned by the table */
};

struct dkim_keys;

/* Split one dkim_key value ("DOMAIN SELECTOR PATH", blanks between) into
 * key_out's domain, selector and path (nothing loaded). Returns 0, or
 * -EINVAL with the reason in err. */
int dkim_keys_parse_value(const char *value, struct dkim_key *key_out, char *err, size_t err_bytes);

/* Read a private key file. Returns 0 and sets *pkey_out (caller frees),
 * *type_out, *bits_out, or -errno / -EINVAL with err naming the file and
 * the reason (unreadable, not PEM, not RSA or Ed25519, RSA size). */
int dkim_keys_read_file(const char *path, EVP_PKEY **pkey_out, enum dkim_key_type *type_out,
                        unsigned *bits_out, char *err, size_t err_bytes);

/* Build the table from value_count dkim_key values (0 is fine: no
 * signing). Every key is loaded now. Returns 0 and sets *keys_out, or an
 * error with err naming the value or file (-EINVAL, -ENOENT, -E2BIG past
 * DKIM_KEYS_MAX, -EEXIST for a domain and selector given twice). */
int dkim_keys_load(const char *const *values, size_t value_count, struct dkim_keys **keys_out,
                   char *err, size_t err_bytes);

/* The keys for domain (case-insensitive, exact: no parent domains), in
 * configuration order, at most out_capacity. Returns how many. */
size_t dkim_keys_for_domain(const struct dkim_keys *keys, const char *domain,
                            const struct dkim_key **out, size_t out_capacity);

size_t dkim_keys_count(const struct dkim_keys *keys);

void dkim_keys_destroy(struct dkim_keys **keys);

/* A new key: RSA of bits (DKIM_SIGN_RSA_BITS_MIN..MAX) or Ed25519 (bits
 * ignored). Returns 0 and *pkey_out, -EINVAL or -EIO. */
int dkim_keys_generate(enum dkim_key_type type, unsigned bits, EVP_PKEY **pkey_out);

/* Write pkey as PKCS #8 PEM to path, mode 0600: into a temporary file in
 * the same directory, fsync, then link(2) to path so an existing file is
 * never replaced (-EEXIST), then the directory synced. Returns 0 or
 * -errno with err naming the file. */
int dkim_keys_write_private(const char *path, EVP_PKEY *pkey, char *err, size_t err_bytes);

/* The key record to publish: "v=DKIM1; k=rsa; p=..." (k=ed25519 with the
 * 32-byte raw key for Ed25519). Returns its length, or -ENOSPC / -EIO. */
int dkim_keys_record(EVP_PKEY *pkey, char *out, size_t out_bytes);

#endif
