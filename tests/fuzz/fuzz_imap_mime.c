/*
 * tests/fuzz/fuzz_imap_mime.c - libFuzzer harness for the MIME parser and
 * the ENVELOPE / BODY / BODYSTRUCTURE writers.
 *
 * The first input byte picks the number of part records (1..256, so the
 * parts limit is hit often) and the output room; the rest is the message,
 * copied to an exact-size heap buffer so ASan sees any read outside it.
 * Properties: part records are a consistent tree inside the message
 * (offsets in range, header + body = part, children inside their parent,
 * depth under the bound); every writer run into a large buffer does not
 * overflow (sizes are bounded by the input), gives balanced parentheses
 * outside strings, and run into a small room reports overflow, stays in it
 * and leaves a prefix of the full output. A broken property aborts.
 *
 * Build: see tests/meson.build (-Dfuzz=true).
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/imap/imap_bodystructure.h"
#include "proto/imap/imap_envelope.h"
#include "proto/imap/imap_mime.h"
#include "proto/imap/imap_quote.h"
#include "tests/fuzz/fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct imap_mime_part parts[256];

enum what { WHAT_ENVELOPE, WHAT_BODY, WHAT_BODYSTRUCTURE };

static void
generate(struct imap_out *out, const char *msg, size_t part_count, enum what what)
{
    if (what == WHAT_ENVELOPE) {
        imap_envelope_write(out, msg + parts[0].header_offset, parts[0].header_size, 0);
    } else {
        imap_bodystructure_write(out, msg, parts, part_count, 0, what == WHAT_BODYSTRUCTURE, 0);
    }
}

/* Parentheses outside quoted strings and literals balance. */
static void
check_balanced(const char *s, size_t len)
{
    long depth = 0;
    size_t i = 0;
    while (i < len) {
        char c = s[i];
        if (c == '"') {
            i++;
            while (i < len && s[i] != '"') {
                i += s[i] == '\\' ? 2 : 1;
            }
            FUZZ_CHECK(i < len);
            i++;
        } else if (c == '{') {
            size_t n = 0;
            i++;
            while (i < len && s[i] >= '0' && s[i] <= '9') {
                n = n * 10 + (size_t)(s[i] - '0');
                i++;
            }
            FUZZ_CHECK(i + 3 <= len && memcmp(s + i, "}\r\n", 3) == 0);
            i += 3 + n;
            FUZZ_CHECK(i <= len);
        } else {
            depth += c == '(';
            depth -= c == ')';
            FUZZ_CHECK(depth >= 0);
            i++;
        }
    }
    FUZZ_CHECK(depth == 0);
}

static void
check_tree(size_t len, size_t count)
{
    FUZZ_CHECK(count >= 1);
    FUZZ_CHECK(parts[0].header_offset == 0);
    FUZZ_CHECK(parts[0].header_size + parts[0].body_size == len);
    for (size_t i = 0; i < count; i++) {
        const struct imap_mime_part *p = &parts[i];
        FUZZ_CHECK(p->body_offset == p->header_offset + p->header_size);
        FUZZ_CHECK(p->body_offset + p->body_size <= len);
        FUZZ_CHECK(p->depth < IMAP_MIME_DEPTH_MAX);
        if (i > 0) {
            FUZZ_CHECK(p->parent < i);
            const struct imap_mime_part *up = &parts[p->parent];
            FUZZ_CHECK(p->depth == up->depth + 1);
            FUZZ_CHECK(p->header_offset >= up->body_offset);
            FUZZ_CHECK(p->body_offset + p->body_size <= up->body_offset + up->body_size);
        }
        if (p->first_child != IMAP_MIME_NONE) {
            FUZZ_CHECK(p->first_child > i && p->first_child < count);
        }
        if (p->next_sibling != IMAP_MIME_NONE) {
            FUZZ_CHECK(p->next_sibling > i && p->next_sibling < count);
            FUZZ_CHECK(parts[p->next_sibling].header_offset >= p->body_offset + p->body_size);
        }
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) {
        return 0;
    }
    size_t cap = 1 + data[0];
    size_t small_room = (size_t)data[0] * 3;
    size_t len = size - 1;
    char *msg = malloc(len > 0 ? len : 1);
    FUZZ_CHECK(msg != NULL);
    if (len > 0) {
        memcpy(msg, data + 1, len);
    }
    struct imap_mime_result result;
    FUZZ_CHECK(imap_mime_parse(msg, len, parts, cap, &result) == 0);
    FUZZ_CHECK(result.part_count >= 1 && result.part_count <= cap);
    check_tree(len, result.part_count);

    /* Output is bounded by a constant times the input plus per-part text:
     * the worst is a From of commas, each a MISSING address, shown 3 times. */
    size_t big_room = 256 * len + 1024 * result.part_count + 4096;
    char *big = malloc(big_room);
    char *small = malloc(small_room + 1);
    FUZZ_CHECK(big != NULL && small != NULL);
    for (int w = 0; w < 3; w++) {
        struct imap_out out;
        imap_out_init(&out, big, big_room);
        generate(&out, msg, result.part_count, (enum what)w);
        FUZZ_CHECK(!out.is_overflow);
        check_balanced(big, out.len);

        small[small_room] = 0x5a;
        struct imap_out tight;
        imap_out_init(&tight, small, small_room);
        generate(&tight, msg, result.part_count, (enum what)w);
        FUZZ_CHECK(tight.len <= small_room);
        FUZZ_CHECK(small[small_room] == 0x5a);
        FUZZ_CHECK(tight.is_overflow == (out.len > small_room));
        FUZZ_CHECK(memcmp(small, big, tight.len) == 0);
        if (!tight.is_overflow) {
            FUZZ_CHECK(tight.len == out.len);
        }
    }
    free(big);
    free(small);
    free(msg);
    return 0;
}
