/*
 * proto/imap/imap_seqset.h - IMAP sequence sets (RFC 3501 sequence-set,
 * RFC 9051 / RFC 5182 "$").
 *
 * Pure, no allocation: ranges live in a caller-provided array. Parsing
 * sorts and merges as it goes, so "1:*,1:*,..." or "1,1,1,..." stay one
 * range and cost O(n log m); "*" is kept symbolic until
 * imap_seqset_resolve() is told the mailbox size (or the highest UID).
 *
 * Limits: numbers are nz-number, 1..2^32-1 (a bigger number or 0 is a
 * syntax error); at most ranges_max / 2 ranges after merging (beyond:
 * IMAP_SEQSET_TOO_MANY, the session answers BAD). Half the array is work
 * space: merging only when the array is full and demanding that it then be
 * at most half full keeps the work linear-logarithmic for any input.
 */
#ifndef TOASTER_PROTO_IMAP_SEQSET_H
#define TOASTER_PROTO_IMAP_SEQSET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/limits.h"
#include "core/span.h"


struct imap_seq_range {
    uint32_t first; /* first <= last, both >= 1 */
    uint32_t last;
};

struct imap_seqset {
    struct imap_seq_range *ranges;     /* the caller's array */
    size_t                 ranges_max; /* its length */
    size_t                 count;      /* ranges in use; sorted and merged when is_merged */
    bool                   is_merged;
    bool                   is_searchres;/* "$": the saved search result (RFC 5182) */
    bool                   has_star;   /* some item used "*", not yet resolved */
    uint32_t               star_lo;    /* items with "*" cover [min(star_lo,*), */
    uint32_t               star_hi;    /*  max(star_hi,*)]; 0 stands for "*" itself */
};

enum imap_seqset_result {
    IMAP_SEQSET_OK = 0,
    IMAP_SEQSET_SYNTAX,   /* not a sequence set, 0, or a number over 2^32-1 */
    IMAP_SEQSET_TOO_MANY, /* more than ranges_max / 2 ranges after merging */
};

/* Prepare an empty set over ranges[ranges_max] (ranges_max >= 4). */
void imap_seqset_init(struct imap_seqset *set, struct imap_seq_range *ranges, size_t ranges_max);

/* Parse text (an atom) into the set, replacing what it held. "$" alone
 * sets is_searchres (the session substitutes the saved result). On error
 * the set is empty. */
enum imap_seqset_result imap_seqset_parse(struct imap_seqset *set, struct span text);

/* Replace "*" by star_value (the number of messages, or the highest UID;
 * 0 for an empty mailbox, where items with "*" then match nothing). Leaves
 * the set sorted and merged. Must not be called for "$". */
void imap_seqset_resolve(struct imap_seqset *set, uint32_t star_value);

/* Add one range (first <= last) and keep the set sorted and merged, e.g.
 * to build the "$" result. Returns IMAP_SEQSET_TOO_MANY at the bound. */
enum imap_seqset_result imap_seqset_add(struct imap_seqset *set, uint32_t first, uint32_t last);

/* After resolve: is n in the set? O(log count). */
bool imap_seqset_contains(const struct imap_seqset *set, uint32_t n);

/* After resolve: the number of members (up to 2^32-1 fits in uint64_t). */
uint64_t imap_seqset_member_count(const struct imap_seqset *set);

/* After resolve: the highest member, or 0 when empty. */
uint32_t imap_seqset_max(const struct imap_seqset *set);

/* Iteration in ascending order, after resolve:
 *     struct imap_seqset_iter it = { 0 };
 *     uint32_t n;
 *     while (imap_seqset_next(set, &it, &n)) { ... } */
struct imap_seqset_iter {
    size_t   range;
    uint64_t next; /* 0: start of the current range */
};
bool imap_seqset_next(const struct imap_seqset *set, struct imap_seqset_iter *iter,
                      uint32_t *n_out);

#endif
