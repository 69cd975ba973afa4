/*
 * tests/unit/test_imap_seqset.c - imap_seqset parse, resolve, membership
 * and iteration.
 *
 * Table cases render the merged set back as text before and after "*" is
 * resolved; limits are tested at the range bound (max - 1, max, max + 1),
 * on numbers at and past 2^32-1, and on "1:*" repeated 10,000 times and
 * other large inputs that must stay fast (no quadratic merging).
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "proto/imap/imap_seqset.h"
#include "tests/unit/unit.h"

static struct imap_seq_range ranges[IMAP_SEQSET_ARRAY_LEN_DEFAULT];

static void
render(const struct imap_seqset *set, char *out, size_t out_bytes)
{
    size_t n = 0;
    out[0] = '\0';
    for (size_t i = 0; i < set->count && n < out_bytes; i++) {
        const struct imap_seq_range *r = &set->ranges[i];
        if (r->first == r->last) {
            n += (size_t)snprintf(out + n, out_bytes - n, "%s%u", i ? "," : "", r->first);
        } else {
            n += (size_t)snprintf(out + n, out_bytes - n, "%s%u:%u", i ? "," : "", r->first,
                                  r->last);
        }
    }
    if (set->has_star && n < out_bytes) {
        snprintf(out + n, out_bytes - n, "%s*[%u,%u]", set->count ? "," : "", set->star_lo,
                 set->star_hi);
    }
}

/* want_parsed: rendering after parse ("ERR" for syntax, "TOOMANY");
 * want_resolved: after resolving "*" to star. */
static void
check_set(const char *file, int line, const char *text, const char *want_parsed, uint32_t star,
          const char *want_resolved)
{
    struct imap_seqset set;
    imap_seqset_init(&set, ranges, IMAP_SEQSET_ARRAY_LEN_DEFAULT);
    char got[512];
    enum imap_seqset_result r = imap_seqset_parse(&set, span_make(text, strlen(text)));
    if (r == IMAP_SEQSET_SYNTAX) {
        snprintf(got, sizeof(got), "ERR");
    } else if (r == IMAP_SEQSET_TOO_MANY) {
        snprintf(got, sizeof(got), "TOOMANY");
    } else if (set.is_searchres) {
        snprintf(got, sizeof(got), "$");
    } else {
        render(&set, got, sizeof(got));
    }
    unit_check_bytes(file, line, got, strlen(got), want_parsed, strlen(want_parsed));
    if (r != IMAP_SEQSET_OK) {
        CHECK(set.count == 0 && !set.has_star);
        return;
    }
    if (want_resolved == NULL || set.is_searchres) {
        return;
    }
    imap_seqset_resolve(&set, star);
    render(&set, got, sizeof(got));
    unit_check_bytes(file, line, got, strlen(got), want_resolved, strlen(want_resolved));
}

#define S(text, parsed, star, resolved) check_set(__FILE__, __LINE__, text, parsed, star, resolved)

static void
test_parse(void)
{
    S("1", "1", 10, "1");
    S("1:5", "1:5", 10, "1:5");
    S("5:1", "1:5", 10, "1:5");
    S("3,5:7,10:*", "3,5:7,*[10,10]", 20, "3,5:7,10:20");
    S("3,5:7,10:*", "3,5:7,*[10,10]", 8, "3,5:10"); /* 10:* with * = 8 is 8:10 */
    S("1:*", "*[1,1]", 42, "1:42");
    S("*", "*[0,0]", 42, "42");
    S("*:*", "*[0,0]", 42, "42");
    S("*:4", "*[4,4]", 2, "2:4");
    S("1:*", "*[1,1]", 0, ""); /* empty mailbox */
    S("7,*", "7,*[0,0]", 9, "7,9");
    S("7,*", "7,*[0,0]", 8, "7:8");
    S("1,2,3,4", "1:4", 9, "1:4");
    S("4,3,2,1,1,2", "1:4", 9, "1:4");
    S("1:3,2:6,10:12,7", "1:7,10:12", 9, "1:7,10:12");
    S("20:*,5:*,9:*", "*[5,20]", 10, "5:20");
    S("20:*,5:*,*", "*[5,20]", 30, "5:30");
    S("$", "$", 0, NULL);
    S("4294967295", "4294967295", 1, "4294967295");
    S("1:4294967295", "1:4294967295", 1, "1:4294967295");
    S("4294967294,4294967295", "4294967294:4294967295", 1, "4294967294:4294967295");
    S("4294967295:*", "*[4294967295,4294967295]", 4294967295u, "4294967295");
    S("4294967296", "ERR", 0, NULL);
    S("99999999999999999999", "ERR", 0, NULL);
    S("0", "ERR", 0, NULL);
    S("0:5", "ERR", 0, NULL);
    S("01", "ERR", 0, NULL);
    S("", "ERR", 0, NULL);
    S(",", "ERR", 0, NULL);
    S("1,", "ERR", 0, NULL);
    S(",1", "ERR", 0, NULL);
    S("1::2", "ERR", 0, NULL);
    S("1:", "ERR", 0, NULL);
    S(":1", "ERR", 0, NULL);
    S("1 2", "ERR", 0, NULL);
    S("$,1", "ERR", 0, NULL);
    S("$$", "ERR", 0, NULL);
    S("-1", "ERR", 0, NULL);
    S("**", "ERR", 0, NULL);
}

static char big[200000];

static enum imap_seqset_result
parse_big(struct imap_seqset *set, size_t len)
{
    imap_seqset_init(set, ranges, IMAP_SEQSET_ARRAY_LEN_DEFAULT);
    return imap_seqset_parse(set, span_make(big, len));
}

static void
test_limits(void)
{
    struct imap_seqset set;
    size_t n;
    clock_t start = clock();

    /* "1:*" 10,000 times: one symbolic range. */
    n = 0;
    for (int i = 0; i < 10000; i++) {
        n += (size_t)snprintf(big + n, sizeof(big) - n, "%s1:*", i ? "," : "");
    }
    CHECK(parse_big(&set, n) == IMAP_SEQSET_OK);
    CHECK(set.count == 0 && set.has_star);
    imap_seqset_resolve(&set, 100);
    CHECK(set.count == 1 && set.ranges[0].first == 1 && set.ranges[0].last == 100);

    /* "1" repeated, "1:5" repeated: merge to one. */
    n = 0;
    for (int i = 0; i < 30000; i++) {
        n += (size_t)snprintf(big + n, sizeof(big) - n, "%s1:5", i ? "," : "");
    }
    CHECK(parse_big(&set, n) == IMAP_SEQSET_OK);
    CHECK(set.count == 1);

    /* Distinct ranges at max - 1, max, max + 1 (2, 4, 6, ...). */
    for (size_t k = IMAP_SEQSET_RANGES_DEFAULT - 1; k <= IMAP_SEQSET_RANGES_DEFAULT + 1; k++) {
        n = 0;
        for (size_t i = 0; i < k; i++) {
            n += (size_t)snprintf(big + n, sizeof(big) - n, "%s%zu", i ? "," : "", 2 * (i + 1));
        }
        enum imap_seqset_result r = parse_big(&set, n);
        if (k <= IMAP_SEQSET_RANGES_DEFAULT) {
            CHECK(r == IMAP_SEQSET_OK);
            CHECK(set.count == k);
            /* Room for "*" after the bound. */
            char tail[32];
            int t = snprintf(tail, sizeof(tail), ",%d:*", 3000);
            memcpy(big + n, tail, (size_t)t);
            CHECK(parse_big(&set, n + (size_t)t) == IMAP_SEQSET_OK);
            imap_seqset_resolve(&set, 5000);
            CHECK(set.count == k + 1);
        } else {
            CHECK(r == IMAP_SEQSET_TOO_MANY);
            CHECK(set.count == 0);
        }
    }

    /* Many distinct ranges interleaved with ones that merge: bounded work. */
    n = 0;
    for (int i = 0; n < sizeof(big) - 32; i++) {
        n += (size_t)snprintf(big + n, sizeof(big) - n, "%s%d", i ? "," : "",
                              (i % 2) ? 2 * (i % 999) + 2 : 1);
    }
    CHECK(parse_big(&set, n) == IMAP_SEQSET_OK);
    CHECK(set.count <= IMAP_SEQSET_RANGES_DEFAULT);

    /* Descending distinct numbers past the bound: rejected, not slow. */
    n = 0;
    for (int i = 40000; n < sizeof(big) - 32; i -= 2) {
        n += (size_t)snprintf(big + n, sizeof(big) - n, "%s%d", n ? "," : "", i);
    }
    CHECK(parse_big(&set, n) == IMAP_SEQSET_TOO_MANY);

    double seconds = (double)(clock() - start) / CLOCKS_PER_SEC;
    CHECK(seconds < 5.0);
}

static void
test_use(void)
{
    struct imap_seqset set;
    imap_seqset_init(&set, ranges, IMAP_SEQSET_ARRAY_LEN_DEFAULT);
    CHECK(imap_seqset_parse(&set, SPAN_LITERAL("2,4:6,9:*")) == IMAP_SEQSET_OK);
    imap_seqset_resolve(&set, 10);
    CHECK(!imap_seqset_contains(&set, 1));
    CHECK(imap_seqset_contains(&set, 2));
    CHECK(!imap_seqset_contains(&set, 3));
    CHECK(imap_seqset_contains(&set, 4));
    CHECK(imap_seqset_contains(&set, 6));
    CHECK(!imap_seqset_contains(&set, 7));
    CHECK(imap_seqset_contains(&set, 10));
    CHECK(!imap_seqset_contains(&set, 11));
    CHECK(!imap_seqset_contains(&set, UINT32_MAX));
    CHECK(imap_seqset_member_count(&set) == 6);
    CHECK(imap_seqset_max(&set) == 10);

    struct imap_seqset_iter it = { 0 };
    uint32_t v;
    char got[64];
    size_t n = 0;
    while (imap_seqset_next(&set, &it, &v)) {
        n += (size_t)snprintf(got + n, sizeof(got) - n, "%u ", v);
    }
    CHECK_STR(got, "2 4 5 6 9 10 ");

    /* Iteration at the top of the number space ends. */
    CHECK(imap_seqset_parse(&set, SPAN_LITERAL("4294967294:4294967295")) == IMAP_SEQSET_OK);
    imap_seqset_resolve(&set, 1);
    it = (struct imap_seqset_iter){ 0 };
    size_t count = 0;
    while (imap_seqset_next(&set, &it, &v)) {
        count++;
    }
    CHECK(count == 2);
    CHECK(imap_seqset_member_count(&set) == 2);

    /* Building a set ($ result). */
    imap_seqset_init(&set, ranges, 8);
    CHECK(imap_seqset_add(&set, 5, 5) == IMAP_SEQSET_OK);
    CHECK(imap_seqset_add(&set, 1, 1) == IMAP_SEQSET_OK);
    CHECK(imap_seqset_add(&set, 3, 3) == IMAP_SEQSET_OK);
    CHECK(imap_seqset_add(&set, 7, 7) == IMAP_SEQSET_OK);
    CHECK(imap_seqset_add(&set, 9, 9) == IMAP_SEQSET_TOO_MANY);
    CHECK(set.count == 4);
    CHECK(imap_seqset_add(&set, 2, 2) == IMAP_SEQSET_OK);
    CHECK(set.count == 3);
    CHECK(imap_seqset_contains(&set, 2) && !imap_seqset_contains(&set, 9));
    CHECK(imap_seqset_member_count(&set) == 5);
}

int
main(void)
{
    test_parse();
    test_limits();
    test_use();
    UNIT_DONE();
}
