/*
 * filters/spf_record.h - the SPF record (RFC 7208 sections 4.5, 4.6, 5,
 * 6 and 12): picking the one "v=spf1" record among a name's TXT records,
 * and reading its terms one at a time.
 *
 * The reader keeps no term list: spf_record_check() walks the whole record
 * once (a syntax error anywhere is permerror before anything is
 * evaluated, RFC 7208 4.6) and the evaluator then walks it again with
 * spf_record_next(). Terms are views into the record text.
 */
#ifndef TOASTER_FILTERS_SPF_RECORD_H
#define TOASTER_FILTERS_SPF_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/dns_answer.h"

enum spf_term_kind {
    SPF_TERM_ALL,
    SPF_TERM_INCLUDE,
    SPF_TERM_A,
    SPF_TERM_MX,
    SPF_TERM_PTR,
    SPF_TERM_IP4,
    SPF_TERM_IP6,
    SPF_TERM_EXISTS,
    SPF_TERM_REDIRECT,         /* modifier */
    SPF_TERM_EXP,              /* modifier */
    SPF_TERM_UNKNOWN_MODIFIER, /* name=value, ignored (RFC 7208 6) */
};

struct spf_term {
    enum spf_term_kind kind;
    char qualifier;          /* '+', '-', '~' or '?' (mechanisms) */
    const char *domain_spec; /* NULL when absent */
    size_t domain_spec_len;
    uint8_t network[16]; /* ip4 (first 4 bytes) / ip6 */
    uint8_t cidr4;       /* 0..32, 32 when not given */
    uint8_t cidr6;       /* 0..128, 128 when not given */
    const char *text;    /* the whole term, for reasons */
    size_t text_len;
};

struct spf_record_cursor {
    const char *text;
    size_t len;
    size_t pos;
};

struct spf_record_summary {
    size_t redirect_index; /* term index of redirect=, or SIZE_MAX */
    size_t exp_index;      /* term index of exp=, or SIZE_MAX */
    size_t term_count;
    bool has_all;
    size_t error_pos; /* byte offset of the first error, for reasons */
};

/* Is text[0..len) an SPF record: "v=spf1" (any case) then SP or the end. */
bool spf_record_is_spf(const char *text, size_t len);

/* Pick the record among a TXT answer's records (status OK). Returns 0 and
 * the record, -ENOENT when none is an SPF record, -EEXIST when more than
 * one is (permerror, RFC 7208 4.5). */
int spf_record_select(const struct dns_answer *answer, const char **text_out, size_t *len_out);

/* Walk the whole record: 0 with *summary_out filled, -EINVAL for a syntax
 * error (an unknown mechanism, a bad CIDR length or address, a bad
 * domain-spec or macro, redirect= or exp= twice), -E2BIG for a record over
 * SPF_RECORD_BYTES_MAX. */
int spf_record_check(const char *text, size_t len, struct spf_record_summary *summary_out);

/* Start reading the terms of a record that spf_record_is_spf() accepted. */
void spf_record_begin(struct spf_record_cursor *cursor, const char *text, size_t len);

/* The next term: 1 and *term_out, 0 at the end, -EINVAL on a syntax error
 * (cursor->pos then points at the bad term). */
int spf_record_next(struct spf_record_cursor *cursor, struct spf_term *term_out);

/* Whether text[0..len) is a valid domain-spec (macro-string + domain-end,
 * RFC 7208 7.1). */
bool spf_record_domain_spec_is_valid(const char *text, size_t len);

#endif
