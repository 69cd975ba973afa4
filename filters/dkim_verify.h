/*
 * filters/dkim_verify.h - verification of every DKIM-Signature of an
 * inbound message (RFC 6376 6, RFC 8301, RFC 8463), in two phases so that
 * a rerun after a DNS answer arrives costs almost nothing:
 *
 *   dkim_verify_prepare()  reads the message once from its file (header
 *                          block bounded, body streamed), parses each
 *                          signature, and computes its body hash and its
 *                          header hash; the message is not kept.
 *   dkim_verify_finish()   asks the dns_source for each key record, checks
 *                          each signature, and returns -EINPROGRESS while
 *                          some key is not answered yet: call it again from
 *                          the same context once the answers are in.
 *
 * At most DKIM_VERIFY_SIGNATURES_MAX signatures are checked, from the top
 * of the header (the most recent first); when there are more, one more
 * result of DKIM_RESULT_POLICY says how many were not checked.
 * A message without signatures gives no results (dkim=none).
 * Worker threads; one context belongs to one job at a time.
 */
#ifndef TOASTER_FILTERS_DKIM_VERIFY_H
#define TOASTER_FILTERS_DKIM_VERIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/dns_answer.h"
#include "filters/dkim_limits.h"
#include "filters/dkim_tags.h"

/* RFC 8601 2.7.1 results. */
enum dkim_result_code {
    DKIM_RESULT_PASS,
    DKIM_RESULT_FAIL,      /* did not verify: body or header changed, expired, sha1, weak RSA key */
    DKIM_RESULT_NEUTRAL,   /* would be fail, but the key is in testing mode (t=y) */
    DKIM_RESULT_POLICY,    /* not checked: past DKIM_VERIFY_SIGNATURES_MAX */
    DKIM_RESULT_TEMPERROR, /* the key could not be fetched now (DNS timeout or error) */
    DKIM_RESULT_PERMERROR, /* malformed signature or key record, no key, revoked key,
                              l= past the body, t= in the future, header block too big */
};

struct dkim_result {
    enum dkim_result_code code;
    char domain[DKIM_DOMAIN_BYTES_MAX + 1];     /* d=, "" when unreadable */
    char selector[DKIM_SELECTOR_BYTES_MAX + 1]; /* s= */
    char algorithm[16];                         /* a=, "" when unknown */
    char identity[DKIM_IDENTITY_BYTES_MAX + 1]; /* i=, "" when absent */
    char b_prefix[9];                           /* first 8 characters of b= (RFC 6008 header.b) */
    bool is_testing;                            /* the key says t=y */
    char reason[DKIM_REASON_BYTES];             /* for people and reason="" */
};

struct dkim_verify;

/* Phase 1: read the message in fd (CRLF line ends, from offset 0 with
 * pread; the file offset is untouched). now_s is the time x= is checked
 * against. Returns 0 and sets *ctx_out; -ENOMEM or -errno of the read
 * (the caller logs it and records dkim=temperror). A header block over
 * DKIM_HEADER_BLOCK_BYTES_MAX is not an error here: the context then
 * gives one permerror result. */
int dkim_verify_prepare(int fd, uint64_t now_s, struct dkim_verify **ctx_out);

/* Phase 2: returns 0 with *results_out / *count_out (owned by ctx, valid
 * until it is destroyed), or -EINPROGRESS when queries are outstanding
 * (every missing key has been asked for by then). Each call after the
 * first only looks up the keys not answered before. */
int dkim_verify_finish(struct dkim_verify *ctx, const struct dns_source *source,
                       const struct dkim_result **results_out, size_t *count_out);

void dkim_verify_destroy(struct dkim_verify **ctx);

/* "pass", "fail", "neutral", "policy", "temperror", "permerror". */
const char *dkim_result_name(enum dkim_result_code code);

/* The Authentication-Results resinfo for one result (RFC 8601, 6008):
 * `dkim=pass header.d=example.org header.s=sel header.a=rsa-sha256
 * header.b=abcdefgh`, with reason="..." after the result when it is not
 * pass and header.i= when the signature had i=. Values that are not MIME
 * tokens are quoted. Returns the length, or -ENOSPC. */
int dkim_result_format(const struct dkim_result *result, char *out, size_t out_bytes);

/* Every result joined with "; " - the dkim part of an Authentication-Results
 * field - or "dkim=none" when there are none. Returns the length, or
 * -ENOSPC (out then holds the results that fit, NUL-terminated). */
int dkim_results_format(const struct dkim_result *results, size_t count, char *out,
                        size_t out_bytes);

#endif
