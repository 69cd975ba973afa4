/*
 * tests/fuzz/fuzz_dkim.c - libFuzzer harness for the DKIM readers of
 * outside bytes: the tag-list parser, the DKIM-Signature reader, the key
 * record reader (filters/dkim_tags) and the canonicalizers
 * (filters/dkim_canon). No OpenSSL: signatures are not computed here.
 *
 * Each input goes through all of them, from an exact-size heap copy so
 * ASan sees any read past it. Properties: the tag parser's spans lie inside
 * the input, names are unique and well-formed, and the count is within
 * DKIM_TAGS_MAX; an accepted signature has a valid d=, a From in h=, a
 * b= of 1..DKIM_SIGNATURE_BYTES_MAX bytes and a b= span inside the input;
 * an accepted key record is revoked exactly when p= is empty; a relaxed
 * header has no WSP run and no WSP at its end and is never longer than
 * the field; the body canonicalizers give the same bytes whether fed whole
 * or in pieces, end with CRLF (or relaxed: nothing), never hold WSP before
 * a CRLF (relaxed), and hash at most l= bytes.
 *
 * Build: clang -g -O1 -fsanitize=fuzzer,address,undefined -I. \
 *   filters/dkim_tags.c filters/dkim_canon.c core/assertions.c tests/fuzz/fuzz_dkim.c
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "filters/dkim_canon.h"
#include "filters/dkim_tags.h"
#include "tests/fuzz/fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_BODY_KEEP 4096u

struct body_sink {
    size_t len;
    uint64_t hash;             /* FNV-1a over every byte */
    char keep[FUZZ_BODY_KEEP]; /* the first bytes, for the shape checks */
};

static struct dkim_tag_list list;
static struct dkim_sig sig;
static struct dkim_key_record record;
static struct body_sink sinks[2];

static void
sink_emit(void *arg, const char *bytes, size_t len)
{
    struct body_sink *sink = arg;
    for (size_t i = 0; i < len; i++) {
        if (sink->len < FUZZ_BODY_KEEP) {
            sink->keep[sink->len] = bytes[i];
        }
        sink->len++;
        sink->hash = (sink->hash ^ (unsigned char)bytes[i]) * 1099511628211u;
    }
}

static bool
is_inside(struct span s, const char *base, size_t size)
{
    return s.len == 0 || (s.ptr >= base && s.ptr + s.len <= base + size);
}

static void
check_tags(const char *copy, size_t size)
{
    char reason[DKIM_REASON_BYTES] = "";
    if (dkim_tags_parse(copy, size, &list, reason, sizeof(reason)) != 0) {
        FUZZ_CHECK(reason[0] != '\0');
        return;
    }
    FUZZ_CHECK(list.count >= 1 && list.count <= DKIM_TAGS_MAX);
    for (size_t i = 0; i < list.count; i++) {
        const struct dkim_tag *tag = &list.tags[i];
        FUZZ_CHECK(tag->name.len > 0 && is_inside(tag->name, copy, size));
        FUZZ_CHECK(is_inside(tag->value, copy, size) && is_inside(tag->value_raw, copy, size));
        FUZZ_CHECK(tag->value.len <= tag->value_raw.len);
        FUZZ_CHECK(memchr(tag->value_raw.ptr, ';', tag->value_raw.len) == NULL);
        for (size_t j = 0; j < i; j++) {
            FUZZ_CHECK(!(list.tags[j].name.len == tag->name.len &&
                         memcmp(list.tags[j].name.ptr, tag->name.ptr, tag->name.len) == 0));
        }
    }
}

static void
check_signature(const char *copy, size_t size)
{
    char reason[DKIM_REASON_BYTES] = "";
    if (dkim_sig_parse(copy, size, &sig, reason, sizeof(reason)) != 0) {
        FUZZ_CHECK(reason[0] != '\0');
        return;
    }
    FUZZ_CHECK(dkim_domain_is_valid(sig.domain, strlen(sig.domain)));
    FUZZ_CHECK(dkim_domain_is_valid(sig.selector, strlen(sig.selector)));
    FUZZ_CHECK(sig.signature_len >= 1 && sig.signature_len <= DKIM_SIGNATURE_BYTES_MAX);
    FUZZ_CHECK(sig.body_hash_len == 32 ||
               (sig.algorithm == DKIM_ALGORITHM_RSA_SHA1 && sig.body_hash_len == 20));
    FUZZ_CHECK(sig.header_count >= 1 && sig.header_count <= DKIM_SIG_HEADERS_MAX);
    bool has_from = false;
    for (size_t i = 0; i < sig.header_count; i++) {
        size_t n = strnlen(sig.headers[i], sizeof(sig.headers[i]));
        FUZZ_CHECK(n >= 1 && n <= DKIM_HEADER_NAME_BYTES_MAX);
        has_from = has_from || strcmp(sig.headers[i], "from") == 0;
    }
    FUZZ_CHECK(has_from);
    FUZZ_CHECK(sig.b_raw_offset + sig.b_raw_len <= size);
    FUZZ_CHECK(strchr(sig.identity, '@') != NULL);
    if (sig.has_timestamp && sig.has_expiry) {
        FUZZ_CHECK(sig.expiry > sig.timestamp);
    }
}

static void
check_key_record(const char *copy, size_t size)
{
    char reason[DKIM_REASON_BYTES] = "";
    if (dkim_key_record_parse(copy, size, &record, reason, sizeof(reason)) != 0) {
        FUZZ_CHECK(reason[0] != '\0');
        return;
    }
    FUZZ_CHECK(record.public_key_len <= DKIM_PUBLIC_KEY_BYTES_MAX);
    FUZZ_CHECK(record.is_revoked == (record.public_key_len == 0));
}

static void
check_header(const char *copy, size_t size)
{
    char *out = malloc(size > 0 ? size : 1);
    FUZZ_CHECK(out != NULL);
    size_t len = 0;
    FUZZ_CHECK(dkim_canon_header(DKIM_CANON_SIMPLE, copy, size, out, size, &len) == 0);
    FUZZ_CHECK(len == size && memcmp(out, copy, size) == 0);
    FUZZ_CHECK(dkim_canon_header(DKIM_CANON_RELAXED, copy, size, out, size, &len) == 0);
    FUZZ_CHECK(len <= size);
    const char *colon = memchr(out, ':', len);
    if (colon != NULL) {
        size_t v = (size_t)(colon - out) + 1;
        for (size_t i = v; i < len; i++) {
            bool is_wsp = out[i] == ' ' || out[i] == '\t';
            FUZZ_CHECK(out[i] != '\t');
            if (is_wsp) {
                FUZZ_CHECK(i > v && i + 1 < len && out[i + 1] != ' ');
            }
        }
    }
    if (size > 0) {
        /* Too small an output is refused, never overrun. */
        int rc = dkim_canon_header(DKIM_CANON_SIMPLE, copy, size, out, size - 1, &len);
        FUZZ_CHECK(rc == -ENOSPC);
    }
    free(out);
}

static void
check_body(const char *copy, size_t size)
{
    bool has_limit = size > 0 && (copy[0] & 1);
    uint64_t limit = size > 1 ? (unsigned char)copy[1] * 4u : 0;
    size_t piece = size > 2 ? 1u + (unsigned char)copy[2] % 17u : 1u;
    for (int c = 0; c < 2; c++) {
        enum dkim_canon canon = c == 0 ? DKIM_CANON_SIMPLE : DKIM_CANON_RELAXED;
        struct dkim_body_canon bc;
        memset(sinks, 0, sizeof(sinks));
        dkim_body_canon_init(&bc, canon, has_limit, limit, sink_emit, &sinks[0]);
        dkim_body_canon_feed(&bc, copy, size);
        dkim_body_canon_finish(&bc);
        uint64_t canonical = bc.canonical_bytes;
        dkim_body_canon_init(&bc, canon, has_limit, limit, sink_emit, &sinks[1]);
        for (size_t i = 0; i < size; i += piece) {
            dkim_body_canon_feed(&bc, copy + i, size - i < piece ? size - i : piece);
        }
        dkim_body_canon_finish(&bc);
        FUZZ_CHECK(sinks[0].len == sinks[1].len && sinks[0].hash == sinks[1].hash);
        FUZZ_CHECK(bc.canonical_bytes == canonical);
        if (has_limit) {
            FUZZ_CHECK(sinks[0].len <= limit);
            FUZZ_CHECK(sinks[0].len == (canonical < limit ? canonical : limit));
            continue;
        }
        FUZZ_CHECK(sinks[0].len == canonical);
        size_t kept = sinks[0].len < FUZZ_BODY_KEEP ? sinks[0].len : FUZZ_BODY_KEEP;
        const char *k = sinks[0].keep;
        if (canon == DKIM_CANON_SIMPLE) {
            FUZZ_CHECK(sinks[0].len >= 2);
        }
        if (sinks[0].len > 0 && sinks[0].len == kept) {
            FUZZ_CHECK(k[kept - 2] == '\r' && k[kept - 1] == '\n');
            if (kept >= 4) {
                /* No empty line at the end, unless the body is just CRLF. */
                FUZZ_CHECK(!(k[kept - 4] == '\r' && k[kept - 3] == '\n'));
            }
        }
        for (size_t i = 0; canon == DKIM_CANON_RELAXED && i + 2 < kept; i++) {
            FUZZ_CHECK(!(k[i] == ' ' && k[i + 1] == '\r' && k[i + 2] == '\n'));
            FUZZ_CHECK(k[i] != '\t' && !(k[i] == ' ' && k[i + 1] == ' '));
        }
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *copy = malloc(size > 0 ? size : 1);
    FUZZ_CHECK(copy != NULL);
    memcpy(copy, data, size);
    check_tags(copy, size);
    check_signature(copy, size);
    check_key_record(copy, size);
    check_header(copy, size);
    check_body(copy, size);
    free(copy);
    return 0;
}
