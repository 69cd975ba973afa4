/*
 * tests/unit/test_utf8.c - core/utf8.h: one character at a time (code
 * points, U+FFFD for broken sequences with the bytes they cover, the
 * incomplete flag at the end of the input), the strict reading and the
 * well-formedness check built on it (overlong forms, surrogates, beyond
 * U+10FFFF, a real U+FFFD), and encoding round trips.
 */
#include <stdint.h>

#include "core/utf8.h"
#include "tests/unit/unit.h"

int main(void);

struct decode_case {
    const char *in;
    size_t len;
    uint32_t cp;
    size_t n;
    bool is_incomplete;
};

int
main(void)
{
    static const struct decode_case cases[] = {
        {"A", 1, 'A', 1, false},
        {"\xc3\xa9", 2, 0xe9, 2, false},
        {"\xe2\x82\xac", 3, 0x20ac, 3, false},
        {"\xf0\x9f\x98\x80", 4, 0x1f600, 4, false},
        {"\xef\xbf\xbd", 3, UTF8_REPLACEMENT, 3, false}, /* U+FFFD itself */
        {"\xc0\x80", 2, UTF8_REPLACEMENT, 1, false},     /* overlong lead */
        {"\xe0\x80\x80", 3, UTF8_REPLACEMENT, 1, false}, /* overlong */
        {"\xed\xa0\x80", 3, UTF8_REPLACEMENT, 1, false}, /* surrogate */
        {"\xf4\x90\x80\x80", 4, UTF8_REPLACEMENT, 1, false}, /* > U+10FFFF */
        {"\xf5", 1, UTF8_REPLACEMENT, 1, false},
        {"\x80", 1, UTF8_REPLACEMENT, 1, false},         /* stray continuation */
        {"\xe2\x82", 2, UTF8_REPLACEMENT, 2, true},      /* ends inside */
        {"\xf1\x80\x80" "A", 4, UTF8_REPLACEMENT, 3, false}, /* broken at the 4th */
        {"\xc3" "A", 2, UTF8_REPLACEMENT, 1, false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct decode_case *c = &cases[i];
        uint32_t cp = 0;
        bool is_incomplete = !c->is_incomplete;
        size_t n = utf8_decode((const unsigned char *)c->in, c->len, &cp, &is_incomplete);
        if (n != c->n || cp != c->cp || is_incomplete != c->is_incomplete) {
            fprintf(stderr, "case %zu: n %zu cp %x incomplete %d\n", i, n, (unsigned)cp,
                    is_incomplete);
        }
        CHECK(n == c->n && cp == c->cp && is_incomplete == c->is_incomplete);
    }
    /* Encode, then read back strictly: the same code point and length. */
    static const uint32_t cps[] = {0, 'A', 0x7f, 0x80, 0x7ff, 0x800, 0xfffd, 0xffff, 0x10000,
                                   0x10ffff};
    for (size_t i = 0; i < sizeof(cps) / sizeof(cps[0]); i++) {
        char buf[4];
        size_t n = utf8_encode(cps[i], buf);
        uint32_t cp = 0;
        CHECK(n >= 1 && utf8_decode_strict((const unsigned char *)buf, n, &cp) == n &&
              cp == cps[i]);
    }
    uint32_t cp0;
    CHECK(utf8_decode_strict((const unsigned char *)"\xf1\x80\x80" "A", 4, &cp0) == 0);
    CHECK(utf8_decode_strict((const unsigned char *)"\xe2\x82", 2, &cp0) == 0);
    CHECK(utf8_is_valid("", 0));
    CHECK(utf8_is_valid("plain", 5));
    CHECK(utf8_is_valid("gr\xc3\xbc\xc3\x9f" "e", 7));
    CHECK(utf8_is_valid("\xef\xbf\xbd", 3));
    CHECK(utf8_is_valid("\xf4\x8f\xbf\xbf", 4)); /* U+10FFFF */
    CHECK(!utf8_is_valid("\xf1\x80\x80" "A", 4));
    CHECK(!utf8_is_valid("\xef\xbf", 2));
    CHECK(!utf8_is_valid("\xed\xbf\xbf", 3));
    CHECK(!utf8_is_valid("a\xc0\xafz", 4));
    CHECK(!utf8_is_valid("\xf4\x90\x80\x80", 4));
    CHECK(!utf8_is_valid("\xff", 1));
    UNIT_DONE();
}
