/*
 * store/password.c - users_file password checks (see password.h).
 *
 * Owns nothing: the crypt work area is heap-allocated per call (libxcrypt's
 * struct crypt_data is ~32 KiB, too much for a small worker stack). Uses
 * libxcrypt's crypt_rn, which returns NULL on failure instead of a "*"
 * string, and which sanitizers do not intercept (their crypt_r
 * interceptor can leave the real function unresolved). Runs on workers.
 */
#define _GNU_SOURCE
#include "store/password.h"

#include <crypt.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/assertions.h"

static bool equal_in_constant_time(const char *a, size_t a_len, const char *b, size_t b_len);
static int crypt_check(const char *hash, const char *password);

int
password_verify(const char *stored, const char *password)
{
    ASSERT(stored != NULL && password != NULL);
    size_t password_len = strnlen(password, PASSWORD_BYTES_MAX + 1);
    if (password_len > PASSWORD_BYTES_MAX) {
        return -EACCES;
    }
    const char *hash = stored;
    char scheme[32] = "CRYPT"; /* Dovecot's default_pass_scheme */
    if (stored[0] == '{') {
        const char *end = strchr(stored, '}');
        if (end == NULL || (size_t)(end - stored - 1) >= sizeof(scheme) || end == stored + 1) {
            return -EINVAL;
        }
        memcpy(scheme, stored + 1, (size_t)(end - stored - 1));
        scheme[end - stored - 1] = '\0';
        hash = end + 1;
    }
    size_t hash_len = strnlen(hash, PASSWORD_HASH_BYTES_MAX + 1);
    if (hash_len == 0 || hash_len > PASSWORD_HASH_BYTES_MAX) {
        return -EINVAL;
    }
    if (strcasecmp(scheme, "PLAIN") == 0 || strcasecmp(scheme, "CLEARTEXT") == 0) {
        return equal_in_constant_time(hash, hash_len, password, password_len) ? 0 : -EACCES;
    }
    /* Each crypt scheme names the prefix its hashes carry; a hash filed
     * under the wrong scheme is the operator's mistake, not a match. */
    static const struct {
        const char *name;
        const char *prefix;
    } crypts[] = {
        {"CRYPT", ""},         {"MD5-CRYPT", "$1$"},  {"SHA256-CRYPT", "$5$"},
        {"SHA512-CRYPT", "$6$"}, {"BLF-CRYPT", "$2"}, {"YESCRYPT", "$y$"},
    };
    for (size_t i = 0; i < sizeof(crypts) / sizeof(crypts[0]); i++) {
        if (strcasecmp(scheme, crypts[i].name) != 0) {
            continue;
        }
        if (strncmp(hash, crypts[i].prefix, strlen(crypts[i].prefix)) != 0) {
            return -EINVAL;
        }
        return crypt_check(hash, password);
    }
    return -ENOTSUP;
}

static int
crypt_check(const char *hash, const char *password)
{
    struct crypt_data *data = calloc(1, sizeof(*data));
    if (data == NULL) {
        return -ENOMEM;
    }
    const char *out = crypt_rn(password, hash, data, (int)sizeof(*data));
    int rc;
    /* NULL on failure (unknown prefix, bad salt); a '*' string is checked
     * too, as older libcrypts return one. */
    if (out == NULL || out[0] == '*') {
        rc = -EINVAL;
    } else {
        size_t out_len = strlen(out);
        rc = equal_in_constant_time(out, out_len, hash, strlen(hash)) ? 0 : -EACCES;
    }
    explicit_bzero(data, sizeof(*data));
    free(data);
    return rc;
}

static bool
equal_in_constant_time(const char *a, size_t a_len, const char *b, size_t b_len)
{
    unsigned char diff = a_len == b_len ? 0 : 1;
    size_t n = a_len < b_len ? a_len : b_len;
    for (size_t i = 0; i < n; i++) {
        diff |= (unsigned char)(a[i] ^ b[i]);
    }
    return diff == 0;
}
