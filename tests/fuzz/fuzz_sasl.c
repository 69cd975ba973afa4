/*
 * tests/fuzz/fuzz_sasl.c - libFuzzer harness for the SASL response
 * decoders (core/sasl), which read base64 straight from IMAP and SMTP
 * clients before they have logged in.
 *
 * The first byte picks the output room (1..64 bytes for the user, 1..64
 * for the password or the text); the rest is the response. Properties:
 * outputs are exact-size heap buffers (ASan sees any write past them);
 * on success every output is NUL-terminated inside its room, non-empty for
 * the user and LOGIN's text, free of NUL inside; on failure they are wiped;
 * and a decode that fits a small room gives the same answer in a large one.
 *
 * Build: clang -g -O1 -fsanitize=fuzzer,address,undefined -I. \
 *   core/sasl.c core/assertions.c tests/fuzz/fuzz_sasl.c
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/sasl.h"
#include "tests/fuzz/fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool
all_zero(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i] != 0) {
            return false;
        }
    }
    return true;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) {
        return 0;
    }
    size_t room = 1 + (data[0] & 0x3f);
    struct span b64 = span_make((const char *)data + 1, size - 1);

    char *user = malloc(room);
    char *password = malloc(room);
    char big_user[512];
    char big_password[512];
    FUZZ_CHECK(user != NULL && password != NULL);
    memset(user, 0x55, room);
    memset(password, 0x55, room);
    bool ok = sasl_plain_decode(b64, user, room, password, room);
    bool big_ok = sasl_plain_decode(b64, big_user, sizeof(big_user), big_password,
                                    sizeof(big_password));
    if (ok) {
        FUZZ_CHECK(big_ok);
        size_t u = strnlen(user, room);
        size_t p = strnlen(password, room);
        FUZZ_CHECK(u > 0 && u < room && p < room);
        FUZZ_CHECK(strcmp(user, big_user) == 0 && strcmp(password, big_password) == 0);
    } else {
        FUZZ_CHECK(all_zero(user, room) && all_zero(password, room));
    }

    memset(user, 0x55, room);
    ok = sasl_text_decode(b64, user, room);
    big_ok = sasl_text_decode(b64, big_user, sizeof(big_user));
    if (ok) {
        FUZZ_CHECK(big_ok);
        size_t u = strnlen(user, room);
        FUZZ_CHECK(u > 0 && u < room && strcmp(user, big_user) == 0);
    } else {
        FUZZ_CHECK(all_zero(user, room));
    }
    free(user);
    free(password);
    return 0;
}
