/*
 * tests/unit/test_mutf7.c - modified UTF-7 mailbox names (core/mutf7).
 *
 * Known pairs from RFC 3501 section 5.1.3 and real clients decode and encode
 * both ways; every non-canonical or malformed form is rejected; output
 * bounds are checked at the exact size and one byte less; and a sweep over
 * code points checks that encode then decode gives the input back.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "core/mutf7.h"
#include "core/utf8.h"
#include "tests/unit/unit.h"

struct pair {
    const char *mutf7;
    const char *utf8;
};

static const struct pair pairs[] = {
    { "INBOX", "INBOX" },
    { "", "" },
    { "&-", "&" },
    { "A&-B", "A&B" },
    { "&-&-", "&&" },
    { "~peter/mail/&U,BTFw-/&ZeVnLIqe-", "~peter/mail/\xe5\x8f\xb0\xe5\x8c\x97/\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e" },
    { "&AOk-t&AOk-", "\xc3\xa9t\xc3\xa9" },
    { "Entw&APw-rfe", "Entw\xc3\xbcrfe" },
    { "&BBoEPgRABDcEOAQ9BDA-", "\xd0\x9a\xd0\xbe\xd1\x80\xd0\xb7\xd0\xb8\xd0\xbd\xd0\xb0" },
    { "&2D3eAA-", "\xf0\x9f\x98\x80" },            /* U+1F600, a surrogate pair */
    { "&2D3eANg93gE-", "\xf0\x9f\x98\x80\xf0\x9f\x98\x81" },
    { "&AOkA6QDp-", "\xc3\xa9\xc3\xa9\xc3\xa9" },  /* three units: no padding */
    { "&AOkA6QDpAOk-", "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9" },
    { "&AKA-", "\xc2\xa0" },
    { "a&AOk-&-b", "a\xc3\xa9&b" },
};

static const char *const bad_mutf7[] = {
    "&",            /* unterminated */
    "a&AOk",        /* unterminated */
    "&AOk",
    "&-&",
    "&AGE-",        /* encodes 'a': printable ASCII must be direct */
    "&ACY-",        /* encodes '&' */
    "&AOk-&AOk-",   /* two adjacent shifts */
    "&AOl-",        /* non-zero padding bits */
    "&AOkA-",       /* leftover 6+ bits */
    "&2D0-",        /* lone high surrogate */
    "&3gA-",        /* lone low surrogate */
    "&2D3YPQ-",     /* high surrogate followed by high surrogate */
    "&AAA-",        /* U+0000 */
    "&AAo-",        /* LF */
    "&AJ8-",        /* C1 control */
    "&AO*-",        /* not base64 */
    "&AO/-",        /* '/' is not in the modified alphabet */
    "&AO=-",
    "a\x01",
    "a\x7f",
    "caf\xc3\xa9",  /* raw 8-bit */
    "a\tb",
};

static const char *const bad_utf8[] = {
    "\xc3",
    "\xc3\x28",
    "\xc0\xaf",             /* overlong */
    "\xe0\x80\xaf",
    "\xed\xa0\x80",         /* surrogate */
    "\xf4\x90\x80\x80",     /* above U+10FFFF */
    "\xff",
    "a\nb",
    "\x7f",
    "\xc2\x85",             /* C1 control */
};

static void
test_pairs(void)
{
    char out[256];
    size_t len;
    for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++) {
        const struct pair *p = &pairs[i];
        struct span m = span_make(p->mutf7, strlen(p->mutf7));
        struct span u = span_make(p->utf8, strlen(p->utf8));
        CHECK(mutf7_decode(m, out, sizeof(out), &len) == 0);
        CHECK_BYTES(out, len, p->utf8, u.len);
        CHECK(mutf7_is_valid(m));
        CHECK(mutf7_encode(u, out, sizeof(out), &len) == 0);
        CHECK_BYTES(out, len, p->mutf7, m.len);
        /* Exact room works; one byte less is -ENOSPC, never an overflow. */
        CHECK(mutf7_decode(m, out, u.len, &len) == 0);
        CHECK(mutf7_encode(u, out, m.len, &len) == 0);
        if (u.len > 0) {
            CHECK(mutf7_decode(m, out, u.len - 1, &len) == -ENOSPC);
        }
        if (m.len > 0) {
            CHECK(mutf7_encode(u, out, m.len - 1, &len) == -ENOSPC);
        }
        CHECK(u.len <= 2 * m.len);
    }
}

static void
test_bad(void)
{
    char out[256];
    size_t len;
    for (size_t i = 0; i < sizeof(bad_mutf7) / sizeof(bad_mutf7[0]); i++) {
        struct span m = span_make(bad_mutf7[i], strlen(bad_mutf7[i]));
        if (mutf7_decode(m, out, sizeof(out), &len) != -EINVAL) {
            fprintf(stderr, "accepted bad mutf7 #%zu\n", i);
            CHECK(false);
        }
        CHECK(!mutf7_is_valid(m));
    }
    for (size_t i = 0; i < sizeof(bad_utf8) / sizeof(bad_utf8[0]); i++) {
        struct span u = span_make(bad_utf8[i], strlen(bad_utf8[i]));
        if (mutf7_encode(u, out, sizeof(out), &len) != -EINVAL) {
            fprintf(stderr, "accepted bad utf8 #%zu\n", i);
            CHECK(false);
        }
    }
}

/* Names of 1..4 code points from a sweep: encode, decode, compare. */
static void
test_round_trip(void)
{
    char in[32];
    char enc[128];
    char dec[64];
    unsigned long failures = 0;
    unsigned long rounds = 0;
    for (uint32_t cp = 0x20; cp < 0x110000; cp += (cp < 0x800 ? 1 : 97)) {
        if ((cp >= 0xd800 && cp <= 0xdfff) || (cp >= 0x7f && cp <= 0x9f)) {
            continue;
        }
        for (size_t count = 1; count <= 4; count++) {
            size_t n = 0;
            for (size_t k = 0; k < count; k++) {
                n += utf8_encode(k == 1 ? 'x' : cp, in + n);
            }
            size_t enc_len;
            size_t dec_len;
            rounds++;
            if (mutf7_encode(span_make(in, n), enc, sizeof(enc), &enc_len) != 0 ||
                mutf7_decode(span_make(enc, enc_len), dec, sizeof(dec), &dec_len) != 0 ||
                dec_len != n || memcmp(dec, in, n) != 0) {
                failures++;
            }
        }
    }
    CHECK(rounds > 10000);
    CHECK(failures == 0);
}

int
main(void)
{
    test_pairs();
    test_bad();
    test_round_trip();
    UNIT_DONE();
}
