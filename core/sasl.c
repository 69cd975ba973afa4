/*
 * core/sasl.c - SASL response decoding: base64 straight into the
 * caller's fields, split at NUL for PLAIN, with no intermediate buffer
 * that would hold a password.
 */
#include "core/sasl.h"

#include <stdint.h>
#include <string.h>

#include "core/assertions.h"
#include "core/base64.h"

/* Decode b64 into up to field_count NUL-separated fields (the last may
 * not hold a NUL). Returns the number of fields seen, or 0 when malformed
 * or a field does not fit. lens_out gets each field's length. */
static unsigned
decode_fields(struct span b64, char **fields, const size_t *field_bytes, unsigned field_count,
              size_t *lens_out)
{
    if (b64.len == 0 || b64.len % 4 != 0) {
        return 0;
    }
    unsigned field = 0;
    for (unsigned k = 0; k < field_count; k++) {
        lens_out[k] = 0;
    }
    for (size_t i = 0; i < b64.len; i += 4) {
        int v[4];
        size_t pad = 0;
        for (size_t k = 0; k < 4; k++) {
            unsigned char c = (unsigned char)b64.ptr[i + k];
            if (c == '=' && i + 4 == b64.len && k >= 2) {
                v[k] = 0;
                pad++;
            } else if (pad > 0 || (v[k] = base64_digit_value(c, '/')) < 0) {
                return 0;
            }
        }
        uint32_t bits = ((uint32_t)v[0] << 18) | ((uint32_t)v[1] << 12) | ((uint32_t)v[2] << 6) |
                        (uint32_t)v[3];
        unsigned char bytes[3] = {(unsigned char)(bits >> 16), (unsigned char)(bits >> 8),
                                  (unsigned char)bits};
        for (size_t k = 0; k < 3 - pad; k++) {
            if (bytes[k] == 0) {
                if (field + 1 >= field_count) {
                    return 0; /* a NUL in the last field */
                }
                fields[field][lens_out[field]] = '\0';
                field++;
                continue;
            }
            if (lens_out[field] + 1 >= field_bytes[field]) {
                return 0;
            }
            fields[field][lens_out[field]++] = (char)bytes[k];
        }
    }
    fields[field][lens_out[field]] = '\0';
    return field + 1;
}

bool
sasl_plain_decode(struct span b64, char *user, size_t user_bytes, char *password,
                  size_t password_bytes)
{
    ASSERT(user_bytes > 0 && password_bytes > 0);
    char authzid[256];
    char *fields[3] = {authzid, user, password};
    size_t bytes[3] = {sizeof(authzid), user_bytes, password_bytes};
    size_t lens[3];
    bool ok = decode_fields(b64, fields, bytes, 3, lens) == 3 && lens[1] > 0;
    if (ok && lens[0] > 0 && (lens[0] != lens[1] || memcmp(authzid, user, lens[0]) != 0)) {
        ok = false;
    }
    explicit_bzero(authzid, sizeof(authzid));
    if (!ok) {
        explicit_bzero(user, user_bytes);
        explicit_bzero(password, password_bytes);
    }
    return ok;
}

bool
sasl_text_decode(struct span b64, char *out, size_t out_bytes)
{
    ASSERT(out_bytes > 0);
    char *fields[1] = {out};
    size_t bytes[1] = {out_bytes};
    size_t lens[1];
    bool ok = decode_fields(b64, fields, bytes, 1, lens) == 1 && lens[0] > 0;
    if (!ok) {
        explicit_bzero(out, out_bytes);
    }
    return ok;
}
