/*
 * filters/dkim_keys.c - the table of signing keys and key generation (see
 * dkim_keys.h). Runs at start-up (load) and in toasterctl (generate,
 * write); lookups from any worker. Limits: DKIM_KEYS_MAX,
 * DKIM_SIGN_RSA_BITS_MIN..MAX, DKIM_KEY_PATH_BYTES_MAX.
 */
#define _GNU_SOURCE
#include "filters/dkim_keys.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/ascii.h"
#include "core/assertions.h"

struct dkim_keys {
    size_t count;
    struct dkim_key keys[]; /* count */
};

static int copy_word(const char **cursor, char *out, size_t out_bytes);

int
dkim_keys_parse_value(const char *value, struct dkim_key *key_out, char *err, size_t err_bytes)
{
    memset(key_out, 0, sizeof(*key_out));
    const char *cursor = value;
    if (copy_word(&cursor, key_out->domain, sizeof(key_out->domain)) != 0 ||
        !dkim_domain_is_valid(key_out->domain, strlen(key_out->domain))) {
        (void)snprintf(err, err_bytes, "dkim_key '%.200s': the first word is not a domain name",
                       value);
        return -EINVAL;
    }
    if (copy_word(&cursor, key_out->selector, sizeof(key_out->selector)) != 0 ||
        !dkim_domain_is_valid(key_out->selector, strlen(key_out->selector)) ||
        strlen(key_out->selector) + strlen("._domainkey.") + strlen(key_out->domain) >
            DKIM_DOMAIN_BYTES_MAX) {
        (void)snprintf(err, err_bytes, "dkim_key '%.200s': the second word is not a selector",
                       value);
        return -EINVAL;
    }
    if (copy_word(&cursor, key_out->path, sizeof(key_out->path)) != 0) {
        (void)snprintf(err, err_bytes, "dkim_key '%.200s': the third word must be the key file",
                       value);
        return -EINVAL;
    }
    while (ascii_is_blank(*cursor)) {
        cursor++;
    }
    if (*cursor != '\0') {
        (void)snprintf(err, err_bytes,
                       "dkim_key '%.200s': expected DOMAIN SELECTOR PATH, found more", value);
        return -EINVAL;
    }
    for (char *p = key_out->domain; *p != '\0'; p++) {
        *p = (char)ascii_lower((unsigned char)*p);
    }
    for (char *p = key_out->selector; *p != '\0'; p++) {
        *p = (char)ascii_lower((unsigned char)*p);
    }
    return 0;
}

int
dkim_keys_read_file(const char *path, EVP_PKEY **pkey_out, enum dkim_key_type *type_out,
                    unsigned *bits_out, char *err, size_t err_bytes)
{
    *pkey_out = NULL;
    FILE *file = fopen(path, "re");
    if (file == NULL) {
        int rc = -errno;
        (void)snprintf(err, err_bytes, "DKIM key %s: %s", path, strerror(errno));
        return rc;
    }
    ERR_clear_error();
    EVP_PKEY *pkey = PEM_read_PrivateKey(file, NULL, NULL, NULL);
    (void)fclose(file); /* read-only: nothing to lose on close */
    if (pkey == NULL) {
        unsigned long code = ERR_get_error();
        (void)snprintf(err, err_bytes, "DKIM key %s: not a PEM private key (%s)", path,
                       code != 0 ? ERR_reason_error_string(code) : "no key found");
        ERR_clear_error();
        return -EINVAL;
    }
    int id = EVP_PKEY_get_base_id(pkey);
    int bits = EVP_PKEY_get_bits(pkey);
    if (id == EVP_PKEY_RSA) {
        if (bits < (int)DKIM_SIGN_RSA_BITS_MIN || bits > (int)DKIM_SIGN_RSA_BITS_MAX) {
            (void)snprintf(err, err_bytes, "DKIM key %s: RSA of %d bits (%u to %u allowed)", path,
                           bits, DKIM_SIGN_RSA_BITS_MIN, DKIM_SIGN_RSA_BITS_MAX);
            EVP_PKEY_free(pkey);
            return -EINVAL;
        }
        *type_out = DKIM_KEY_TYPE_RSA;
    } else if (id == EVP_PKEY_ED25519) {
        *type_out = DKIM_KEY_TYPE_ED25519;
    } else {
        (void)snprintf(err, err_bytes, "DKIM key %s: neither RSA nor Ed25519", path);
        EVP_PKEY_free(pkey);
        return -EINVAL;
    }
    *bits_out = (unsigned)bits;
    *pkey_out = pkey;
    return 0;
}

int
dkim_keys_load(const char *const *values, size_t value_count, struct dkim_keys **keys_out,
               char *err, size_t err_bytes)
{
    *keys_out = NULL;
    if (value_count > DKIM_KEYS_MAX) {
        (void)snprintf(err, err_bytes, "dkim_key: %zu keys, at most %u", value_count,
                       DKIM_KEYS_MAX);
        return -E2BIG;
    }
    struct dkim_keys *keys = calloc(1, sizeof(*keys) + value_count * sizeof(struct dkim_key));
    if (keys == NULL) {
        (void)snprintf(err, err_bytes, "dkim_key: out of memory");
        return -ENOMEM;
    }
    for (size_t i = 0; i < value_count; i++) {
        struct dkim_key *key = &keys->keys[i];
        int rc = dkim_keys_parse_value(values[i], key, err, err_bytes);
        for (size_t j = 0; rc == 0 && j < i; j++) {
            if (strcmp(keys->keys[j].domain, key->domain) == 0 &&
                strcmp(keys->keys[j].selector, key->selector) == 0) {
                (void)snprintf(err, err_bytes, "dkim_key: %s %s given twice", key->domain,
                               key->selector);
                rc = -EEXIST;
            }
        }
        if (rc == 0) {
            rc = dkim_keys_read_file(key->path, &key->pkey, &key->type, &key->bits, err, err_bytes);
        }
        if (rc != 0) {
            dkim_keys_destroy(&keys);
            return rc;
        }
        keys->count = i + 1;
    }
    *keys_out = keys;
    return 0;
}

size_t
dkim_keys_for_domain(const struct dkim_keys *keys, const char *domain, const struct dkim_key **out,
                     size_t out_capacity)
{
    size_t n = 0;
    if (keys == NULL) {
        return 0;
    }
    size_t domain_len = strlen(domain);
    for (size_t i = 0; i < keys->count && n < out_capacity; i++) {
        if (span_equals_nocase(span_make(domain, domain_len), keys->keys[i].domain)) {
            out[n++] = &keys->keys[i];
        }
    }
    return n;
}

size_t
dkim_keys_count(const struct dkim_keys *keys)
{
    return keys != NULL ? keys->count : 0;
}

void
dkim_keys_destroy(struct dkim_keys **keys)
{
    if (*keys == NULL) {
        return;
    }
    for (size_t i = 0; i < (*keys)->count; i++) {
        EVP_PKEY_free((*keys)->keys[i].pkey);
    }
    free(*keys);
    *keys = NULL;
}

int
dkim_keys_generate(enum dkim_key_type type, unsigned bits, EVP_PKEY **pkey_out)
{
    *pkey_out = NULL;
    EVP_PKEY *pkey = NULL;
    if (type == DKIM_KEY_TYPE_ED25519) {
        pkey = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    } else {
        if (bits < DKIM_SIGN_RSA_BITS_MIN || bits > DKIM_SIGN_RSA_BITS_MAX) {
            return -EINVAL;
        }
        pkey = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)bits);
    }
    if (pkey == NULL) {
        return -EIO;
    }
    *pkey_out = pkey;
    return 0;
}

int
dkim_keys_write_private(const char *path, EVP_PKEY *pkey, char *err, size_t err_bytes)
{
    char tmp_path[DKIM_KEY_PATH_BYTES_MAX + 32];
    int n = snprintf(tmp_path, sizeof(tmp_path), "%s.tmp.%ld", path, (long)getpid());
    if (n < 0 || (size_t)n >= sizeof(tmp_path)) {
        (void)snprintf(err, err_bytes, "%s: path too long", path);
        return -ENAMETOOLONG;
    }
    int fd = open(tmp_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        int rc = -errno;
        (void)snprintf(err, err_bytes, "%s: %s", tmp_path, strerror(errno));
        return rc;
    }
    FILE *file = fdopen(fd, "w");
    if (file == NULL) {
        int rc = -errno;
        (void)close(fd);
        (void)unlink(tmp_path);
        (void)snprintf(err, err_bytes, "%s: %s", tmp_path, strerror(-rc));
        return rc;
    }
    const char *step = "write";
    int rc = 0;
    if (PEM_write_PrivateKey(file, pkey, NULL, NULL, 0, NULL, NULL) != 1) {
        rc = -EIO;
    } else if (fflush(file) != 0) {
        rc = -errno;
    } else if (fsync(fileno(file)) != 0) {
        rc = -errno;
        step = "fsync";
    }
    if (fclose(file) != 0 && rc == 0) {
        rc = -errno;
        step = "close";
    }
    if (rc == 0 && link(tmp_path, path) != 0) {
        rc = -errno;
        step = "link";
    }
    (void)unlink(tmp_path); /* the name is linked or the write failed: either way it goes */
    if (rc != 0) {
        (void)snprintf(err, err_bytes, "%s: %s: %s", path, step,
                       rc == -EEXIST ? "exists already (not replaced)" : strerror(-rc));
        return rc;
    }
    /* The new name is in the directory: sync it, or a crash may lose it. */
    char dir[DKIM_KEY_PATH_BYTES_MAX + 1];
    (void)snprintf(dir, sizeof(dir), "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash == dir) {
        slash[1] = '\0';
    } else if (slash != NULL) {
        *slash = '\0';
    } else {
        (void)snprintf(dir, sizeof(dir), ".");
    }
    int dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir_fd < 0 || fsync(dir_fd) != 0) {
        rc = -errno;
        (void)snprintf(err, err_bytes, "%s: sync: %s", dir, strerror(errno));
    }
    if (dir_fd >= 0) {
        (void)close(dir_fd);
    }
    return rc;
}

int
dkim_keys_record(EVP_PKEY *pkey, char *out, size_t out_bytes)
{
    uint8_t der[DKIM_PUBLIC_KEY_BYTES_MAX];
    size_t der_len = 0;
    const char *type = NULL;
    if (EVP_PKEY_get_base_id(pkey) == EVP_PKEY_ED25519) {
        der_len = sizeof(der);
        if (EVP_PKEY_get_raw_public_key(pkey, der, &der_len) != 1) {
            return -EIO;
        }
        type = "ed25519";
    } else {
        int len = i2d_PUBKEY(pkey, NULL);
        if (len <= 0 || (size_t)len > sizeof(der)) {
            return -EIO;
        }
        unsigned char *p = der;
        if (i2d_PUBKEY(pkey, &p) != len) {
            return -EIO;
        }
        der_len = (size_t)len;
        type = "rsa";
    }
    char b64[DKIM_PUBLIC_KEY_BYTES_MAX * 4 / 3 + 8];
    (void)dkim_base64_encode(der, der_len, b64, sizeof(b64));
    int n = snprintf(out, out_bytes, "v=DKIM1; k=%s; p=%s", type, b64);
    if (n < 0 || (size_t)n >= out_bytes) {
        return -ENOSPC;
    }
    return n;
}

/* The next blank-separated word into out. */
static int
copy_word(const char **cursor, char *out, size_t out_bytes)
{
    const char *p = *cursor;
    while (ascii_is_blank(*p)) {
        p++;
    }
    size_t n = 0;
    while (*p != '\0' && !ascii_is_blank(*p)) {
        if (n + 1 >= out_bytes) {
            return -ENAMETOOLONG;
        }
        out[n++] = *p++;
    }
    out[n] = '\0';
    *cursor = p;
    return n > 0 ? 0 : -EINVAL;
}
