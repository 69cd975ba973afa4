/*
 * filters/spf_macro.h - SPF macro strings (RFC 7208 section 7): syntax
 * check and expansion of domain-spec and explain-string text taken from
 * TXT records, that is from the network.
 *
 * Pure functions: no DNS, no allocation. %{p} needs the validated domain
 * name of the client, which takes DNS lookups; the expander asks for it
 * by returning -EAGAIN when the context does not carry it yet, and the
 * evaluator (filters/spf.c) resolves it and expands again.
 */
#ifndef TOASTER_FILTERS_SPF_MACRO_H
#define TOASTER_FILTERS_SPF_MACRO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "filters/spf.h"

#define SPF_MACRO_PARTS_MAX 512u /* parts of one value after splitting */
#define SPF_MACRO_DIGITS_MAX 3u  /* a transformer of more digits is clamped to 999 */

enum spf_macro_mode {
    SPF_MACRO_DOMAIN,  /* domain-spec: no SP, no c/r/t letters */
    SPF_MACRO_EXPLAIN, /* explain-string: SP allowed, c/r/t allowed */
};

struct spf_macro_context {
    const char *sender;        /* s */
    const char *local_part;    /* l */
    const char *sender_domain; /* o */
    const char *domain;        /* d: the <domain> of this check_host() */
    const char *helo;          /* h */
    const char *receiver;      /* r; NULL gives "unknown" */
    const char *ptr_name;      /* p; NULL: not resolved yet (expansion returns -EAGAIN) */
    struct spf_ip ip;          /* i, c, v */
    int64_t now_s;             /* t */
};

/* Check the syntax of text[0..len) as a macro-string in mode. Sets
 * *ends_in_macro_out (may be NULL) when the last token is a macro-expand,
 * which domain-spec's domain-end accepts. Returns 0 or -EINVAL. */
int spf_macro_check(const char *text, size_t len, enum spf_macro_mode mode,
                    bool *ends_in_macro_out);

/* Expand text[0..len) into out (NUL-terminated, *out_len_out without the
 * NUL). Returns 0, -EINVAL (syntax, or a letter not allowed in mode),
 * -EAGAIN (%{p} with ctx->ptr_name NULL), -ENOSPC (out too small, or a
 * value of more than SPF_MACRO_PARTS_MAX parts). */
int spf_macro_expand(const char *text, size_t len, enum spf_macro_mode mode,
                     const struct spf_macro_context *ctx, char *out, size_t out_bytes,
                     size_t *out_len_out);

/* Whether text[0..len) uses %{p} (so the evaluator can resolve it first). */
bool spf_macro_uses_ptr(const char *text, size_t len);

#endif
