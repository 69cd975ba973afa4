/*
 * filters/auth_results.h - the Authentication-Results header field
 * (RFC 8601) that records what the DKIM, SPF and DMARC checks found, and
 * the test that tells our own field from a forged one in inbound mail.
 *
 * Formatting is a pure function into the caller's buffer: one field,
 * folded before each result (and inside one when a line would pass 78
 * octets), values quoted where the ABNF needs it, attacker-supplied text
 * (selectors, reasons) stripped of control characters and parentheses
 * so it can neither end the field nor break a comment. Each value is cut
 * at AUTH_RESULTS_VALUE_BYTES_MAX octets.
 */
#ifndef TOASTER_FILTERS_AUTH_RESULTS_H
#define TOASTER_FILTERS_AUTH_RESULTS_H

#include <stdbool.h>
#include <stddef.h>

#include "filters/dmarc.h"
#include "filters/spf.h"

#define AUTH_RESULTS_VALUE_BYTES_MAX 255u /* one property value or comment */
#define AUTH_RESULTS_B_PREFIX_BYTES 8u    /* header.b= carries this much of b= */
#define AUTH_RESULTS_DKIM_MAX 16u         /* further DKIM results are left out */
#define AUTH_RESULTS_LINE_BYTES_SOFT 78u  /* fold before a line passes this */

/* DKIM results as RFC 8601 2.7.1 names them. */
enum auth_results_dkim_result {
    AUTH_RESULTS_DKIM_NONE,
    AUTH_RESULTS_DKIM_PASS,
    AUTH_RESULTS_DKIM_FAIL,
    AUTH_RESULTS_DKIM_POLICY,
    AUTH_RESULTS_DKIM_NEUTRAL,
    AUTH_RESULTS_DKIM_TEMPERROR,
    AUTH_RESULTS_DKIM_PERMERROR,
};

/* One verified (or not) DKIM-Signature. Every string may be NULL. */
struct auth_results_dkim {
    enum auth_results_dkim_result result;
    const char *domain;    /* d= */
    const char *selector;  /* s= */
    const char *algorithm; /* a=, e.g. "rsa-sha256" */
    const char *b;         /* b= (its first 8 characters are reported) */
    const char *reason;    /* a comment, e.g. "body hash mismatch" */
};

struct auth_results_input {
    const char *authserv_id; /* our host name */
    const struct auth_results_dkim *dkim;
    size_t dkim_count;
    const struct spf_outcome *spf;     /* NULL: SPF not run */
    const struct dmarc_outcome *dmarc; /* NULL: DMARC not run */
};

/* Write "Authentication-Results: ...\r\n" (NUL-terminated) into out.
 * With no DKIM, SPF or DMARC result the field says "none". Returns the
 * length without the NUL, -ENOSPC when out is too small, -EINVAL for an
 * empty authserv_id. */
int auth_results_format(const struct auth_results_input *input, char *out, size_t out_bytes);

/* Whether an Authentication-Results field value (the text after the
 * colon, folded or not) names authserv_id, compared without regard to
 * case. The daemon removes such fields from inbound mail before adding
 * its own (RFC 8601 5). */
bool auth_results_header_is_ours(const char *value, size_t len, const char *authserv_id);

/* Copy text into out as safe comment text: control characters and 8-bit
 * bytes dropped, parentheses and backslashes replaced, at most
 * out_bytes - 1 octets. Returns the length written. */
size_t auth_results_comment_sanitize(const char *text, char *out, size_t out_bytes);

const char *auth_results_dkim_result_name(enum auth_results_dkim_result result);

#endif
