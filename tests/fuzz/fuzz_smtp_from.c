/*
 * tests/fuzz/fuzz_smtp_from.c - libFuzzer harness for the From: header
 * reader of the submission policy (proto/smtp/smtp_from), which parses
 * what an authenticated client wrote.
 *
 * The input is a message (header block and maybe a body). Properties: the
 * header length is 0 or ends right after an empty line; extraction from an
 * exact-size heap copy (so ASan sees any read past it) gives a known status;
 * OK means 1..SMTP_FROM_ADDRESSES_MAX addresses, each NUL-terminated,
 * non-empty, with one '@' outside quotes or none at all (a bare local part
 * is refused by the policy later), no CR, LF or NUL; and the same block
 * read twice gives the same answer.
 *
 * Build: clang -g -O1 -fsanitize=fuzzer,address,undefined -I. \
 *   proto/smtp/smtp_from.c core/assertions.c tests/fuzz/fuzz_smtp_from.c
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/smtp/smtp_from.h"
#include "tests/fuzz/fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct smtp_from_result first;
static struct smtp_from_result second;

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *copy = malloc(size > 0 ? size : 1);
    FUZZ_CHECK(copy != NULL);
    memcpy(copy, data, size);
    size_t header = smtp_from_header_length(copy, size);
    FUZZ_CHECK(header <= size);
    if (header > 0) {
        FUZZ_CHECK(copy[header - 1] == '\n');
    }
    size_t block = header > 0 ? header : size;
    memset(&first, 0, sizeof(first));
    enum smtp_from_status status = smtp_from_extract(copy, block, &first);
    FUZZ_CHECK(status == SMTP_FROM_OK || status == SMTP_FROM_ABSENT ||
               status == SMTP_FROM_SYNTAX || status == SMTP_FROM_TOO_MANY);
    if (status == SMTP_FROM_OK) {
        FUZZ_CHECK(first.count >= 1 && first.count <= SMTP_FROM_ADDRESSES_MAX);
        for (size_t i = 0; i < first.count; i++) {
            const char *a = first.addresses[i];
            size_t n = strnlen(a, sizeof(first.addresses[i]));
            FUZZ_CHECK(n > 0 && n < sizeof(first.addresses[i]));
            FUZZ_CHECK(memchr(a, '\r', n) == NULL && memchr(a, '\n', n) == NULL);
        }
    }
    memset(&second, 0, sizeof(second));
    FUZZ_CHECK(smtp_from_extract(copy, block, &second) == status);
    FUZZ_CHECK(second.count == first.count);
    for (size_t i = 0; i < first.count && status == SMTP_FROM_OK; i++) {
        FUZZ_CHECK(strcmp(first.addresses[i], second.addresses[i]) == 0);
    }
    free(copy);
    return 0;
}
