/*
 * proto/imap/imap_seqset.c - IMAP sequence sets (see imap_seqset.h).
 *
 * Owns nothing: ranges are the caller's. Pure, any thread. Parsing is one
 * pass over the text; ranges are appended unsorted and sorted-and-merged
 * only when the array fills, which must then leave it at most half full, so
 * each merge pays for ranges_max / 2 appends: O(n log m) overall however
 * the client repeats or overlaps its ranges. Items with "*" never take a
 * slot: they all contain "*", so their union is one interval kept in two
 * numbers (star_lo, star_hi) until the mailbox size is known.
 */
#include "proto/imap/imap_seqset.h"

#include <stdlib.h>
#include <string.h>

#include "core/assertions.h"

static enum imap_seqset_result range_append(struct imap_seqset *set, uint32_t first,
                                            uint32_t last);
static void sort_merge(struct imap_seqset *set);
static int range_compare(const void *a, const void *b);
static size_t number_parse(const char *s, size_t len, size_t pos, uint32_t *value_out);
static size_t limit_of(const struct imap_seqset *set);

void
imap_seqset_init(struct imap_seqset *set, struct imap_seq_range *ranges, size_t ranges_max)
{
    ASSERT(set != NULL);
    ASSERT(ranges != NULL);
    ASSERT(ranges_max >= 4);
    *set = (struct imap_seqset){
        .ranges = ranges,
        .ranges_max = ranges_max,
        .is_merged = true,
    };
}

enum imap_seqset_result
imap_seqset_parse(struct imap_seqset *set, struct span text)
{
    ASSERT(set != NULL);
    imap_seqset_init(set, set->ranges, set->ranges_max);
    if (text.len == 1 && text.ptr[0] == '$') {
        set->is_searchres = true;
        return IMAP_SEQSET_OK;
    }

    enum imap_seqset_result result = IMAP_SEQSET_OK;
    size_t pos = 0;
    /* Each round consumes at least one byte or fails. */
    for (;;) {
        uint32_t a;
        uint32_t b;
        size_t next = number_parse(text.ptr, text.len, pos, &a);
        if (next == pos) {
            result = IMAP_SEQSET_SYNTAX;
            break;
        }
        pos = next;
        b = a;
        if (pos < text.len && text.ptr[pos] == ':') {
            pos++;
            next = number_parse(text.ptr, text.len, pos, &b);
            if (next == pos) {
                result = IMAP_SEQSET_SYNTAX;
                break;
            }
            pos = next;
        }
        if (a == 0 || b == 0) {
            /* 0 is "*" here: the union of star items is one interval. */
            uint32_t x = a == 0 ? b : a;
            if (!set->has_star) {
                set->star_lo = x;
                set->star_hi = x;
                set->has_star = true;
            } else if (x != 0) {
                set->star_lo = set->star_lo == 0 || x < set->star_lo ? x : set->star_lo;
                set->star_hi = set->star_hi == 0 || x > set->star_hi ? x : set->star_hi;
            }
        } else {
            result = range_append(set, a < b ? a : b, a < b ? b : a);
            if (result != IMAP_SEQSET_OK) {
                break;
            }
        }
        if (pos == text.len) {
            break;
        }
        if (text.ptr[pos] != ',') {
            result = IMAP_SEQSET_SYNTAX;
            break;
        }
        pos++;
    }
    if (result != IMAP_SEQSET_OK) {
        imap_seqset_init(set, set->ranges, set->ranges_max);
        return result;
    }
    sort_merge(set);
    if (set->count > limit_of(set)) {
        imap_seqset_init(set, set->ranges, set->ranges_max);
        return IMAP_SEQSET_TOO_MANY;
    }
    return IMAP_SEQSET_OK;
}

void
imap_seqset_resolve(struct imap_seqset *set, uint32_t star_value)
{
    ASSERT(set != NULL);
    ASSERT(!set->is_searchres);
    if (set->has_star && star_value > 0) {
        uint32_t lo = set->star_lo == 0 || set->star_lo > star_value ? star_value : set->star_lo;
        uint32_t hi = set->star_hi == 0 || set->star_hi < star_value ? star_value : set->star_hi;
        /* parse left the array at most half full, so one more fits. */
        ASSERT(set->count < set->ranges_max);
        set->ranges[set->count++] = (struct imap_seq_range){ .first = lo, .last = hi };
        set->is_merged = false;
    }
    set->has_star = false;
    sort_merge(set);
}

enum imap_seqset_result
imap_seqset_add(struct imap_seqset *set, uint32_t first, uint32_t last)
{
    ASSERT(set != NULL);
    ASSERT(first >= 1);
    ASSERT(first <= last);
    enum imap_seqset_result result = range_append(set, first, last);
    if (result != IMAP_SEQSET_OK) {
        return result;
    }
    sort_merge(set);
    if (set->count > limit_of(set)) {
        /* The count grew, so the new range merged with nothing and is
         * still there as given: take it out again. */
        for (size_t i = 0; i < set->count; i++) {
            if (set->ranges[i].first == first && set->ranges[i].last == last) {
                memmove(&set->ranges[i], &set->ranges[i + 1],
                        (set->count - i - 1) * sizeof(set->ranges[0]));
                break;
            }
        }
        set->count--;
        return IMAP_SEQSET_TOO_MANY;
    }
    return IMAP_SEQSET_OK;
}

bool
imap_seqset_contains(const struct imap_seqset *set, uint32_t n)
{
    ASSERT(set != NULL);
    ASSERT(set->is_merged);
    ASSERT(!set->has_star);
    size_t lo = 0;
    size_t hi = set->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (set->ranges[mid].last < n) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo < set->count && set->ranges[lo].first <= n;
}

uint64_t
imap_seqset_member_count(const struct imap_seqset *set)
{
    ASSERT(set != NULL);
    ASSERT(set->is_merged);
    uint64_t total = 0;
    for (size_t i = 0; i < set->count; i++) {
        total += (uint64_t)set->ranges[i].last - set->ranges[i].first + 1;
    }
    return total;
}

uint32_t
imap_seqset_max(const struct imap_seqset *set)
{
    ASSERT(set != NULL);
    ASSERT(set->is_merged);
    return set->count > 0 ? set->ranges[set->count - 1].last : 0;
}

bool
imap_seqset_next(const struct imap_seqset *set, struct imap_seqset_iter *iter, uint32_t *n_out)
{
    ASSERT(set != NULL);
    ASSERT(iter != NULL);
    ASSERT(n_out != NULL);
    ASSERT(set->is_merged);
    if (iter->range >= set->count) {
        return false;
    }
    const struct imap_seq_range *r = &set->ranges[iter->range];
    uint64_t n = iter->next == 0 ? r->first : iter->next;
    ASSERT(n <= r->last);
    *n_out = (uint32_t)n;
    if (n == r->last) {
        iter->range++;
        iter->next = 0;
    } else {
        iter->next = n + 1;
    }
    return true;
}

/* Helpers. */

static enum imap_seqset_result
range_append(struct imap_seqset *set, uint32_t first, uint32_t last)
{
    if (set->count == set->ranges_max - 1) {
        sort_merge(set);
        if (set->count > limit_of(set)) {
            return IMAP_SEQSET_TOO_MANY;
        }
    }
    set->ranges[set->count++] = (struct imap_seq_range){ .first = first, .last = last };
    set->is_merged = set->count == 1;
    return IMAP_SEQSET_OK;
}

static void
sort_merge(struct imap_seqset *set)
{
    if (set->is_merged) {
        return;
    }
    qsort(set->ranges, set->count, sizeof(set->ranges[0]), range_compare);
    size_t out = 0;
    for (size_t i = 0; i < set->count; i++) {
        struct imap_seq_range r = set->ranges[i];
        if (out > 0 && (uint64_t)set->ranges[out - 1].last + 1 >= r.first) {
            if (r.last > set->ranges[out - 1].last) {
                set->ranges[out - 1].last = r.last;
            }
        } else {
            set->ranges[out++] = r;
        }
    }
    set->count = out;
    set->is_merged = true;
}

static int
range_compare(const void *a, const void *b)
{
    const struct imap_seq_range *x = a;
    const struct imap_seq_range *y = b;
    if (x->first != y->first) {
        return x->first < y->first ? -1 : 1;
    }
    if (x->last != y->last) {
        return x->last < y->last ? -1 : 1;
    }
    return 0;
}

/* nz-number (no leading zero, at most 2^32-1) or "*" (value 0) at pos.
 * Returns the position after it, or pos when there is none. */
static size_t
number_parse(const char *s, size_t len, size_t pos, uint32_t *value_out)
{
    if (pos >= len) {
        return pos;
    }
    if (s[pos] == '*') {
        *value_out = 0;
        return pos + 1;
    }
    if (s[pos] < '1' || s[pos] > '9') {
        return pos;
    }
    uint64_t value = 0;
    size_t i = pos;
    while (i < len && s[i] >= '0' && s[i] <= '9') {
        value = value * 10 + (uint64_t)(s[i] - '0');
        if (value > UINT32_MAX) {
            return pos;
        }
        i++;
    }
    *value_out = (uint32_t)value;
    return i;
}

/* Ranges allowed after merging: half the array (see the header). */
static size_t
limit_of(const struct imap_seqset *set)
{
    return set->ranges_max / 2;
}
