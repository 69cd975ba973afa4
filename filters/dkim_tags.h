/*
 * filters/dkim_tags.h - the tag=value lists of DKIM (RFC 6376 3.2): the
 * generic parser, the DKIM-Signature reader (3.5) and the key record
 * reader (3.6.1), plus the base64 decoder with DKIM's whitespace rules.
 *
 * Every reader takes bytes from outside (a message, a DNS answer) and
 * returns 0 or -EINVAL with a human reason; nothing asserts on the input,
 * every count and length is bounded (filters/dkim_limits.h). No
 * allocation; any thread.
 */
#ifndef TOASTER_FILTERS_DKIM_TAGS_H
#define TOASTER_FILTERS_DKIM_TAGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/span.h"
#include "filters/dkim_canon.h"
#include "filters/dkim_limits.h"

#define DKIM_REASON_BYTES 128u

struct dkim_tag {
    struct span name;
    struct span value;     /* without the FWS around it */
    struct span value_raw; /* from after '=' to before ';' or the end: what b= deletion removes */
};

struct dkim_tag_list {
    size_t count;
    struct dkim_tag tags[DKIM_TAGS_MAX];
};

/* Parse text as a tag-list. Returns 0, or -EINVAL with a reason (syntax,
 * a tag twice, more than DKIM_TAGS_MAX tags). Spans point into text. */
int dkim_tags_parse(const char *text, size_t len, struct dkim_tag_list *list_out, char *reason,
                    size_t reason_bytes);

/* The tag named name, or NULL. */
const struct dkim_tag *dkim_tags_find(const struct dkim_tag_list *list, const char *name);

/* Base64 (RFC 4648) where FWS may appear anywhere (RFC 6376 3.5 b=, bh=,
 * 3.6.1 p=). Padding must be correct. Returns 0 and sets *len_out, -EINVAL
 * for a bad digit or padding, -ENOSPC when it does not fit out_bytes. */
int dkim_base64_decode(struct span text, uint8_t *out, size_t out_bytes, size_t *len_out);

/* Base64 without line breaks; out needs 4 * ceil(len / 3) + 1 bytes.
 * Returns the length written (NUL-terminated). */
size_t dkim_base64_encode(const uint8_t *bytes, size_t len, char *out, size_t out_bytes);

enum dkim_algorithm {
    DKIM_ALGORITHM_RSA_SHA256,
    DKIM_ALGORITHM_ED25519_SHA256,
    DKIM_ALGORITHM_RSA_SHA1, /* parsed so the result can say why it fails (RFC 8301) */
};

/* "rsa-sha256", "ed25519-sha256", "rsa-sha1". */
const char *dkim_algorithm_name(enum dkim_algorithm algorithm);

struct dkim_sig {
    enum dkim_algorithm algorithm;
    enum dkim_canon canon_header;
    enum dkim_canon canon_body;
    char domain[DKIM_DOMAIN_BYTES_MAX + 1];     /* d=, lower case */
    char selector[DKIM_SELECTOR_BYTES_MAX + 1]; /* s= */
    char identity[DKIM_IDENTITY_BYTES_MAX + 1]; /* i=, or "@" d= */
    bool has_identity;                          /* i= was present */
    char b_prefix[9];                           /* first 8 characters of b= */
    size_t b_raw_offset;                        /* where b='s value starts in the text parsed */
    size_t b_raw_len;      /* up to ';' or the end: what the verifier deletes */
    uint8_t body_hash[32]; /* bh= */
    size_t body_hash_len;
    uint8_t signature[DKIM_SIGNATURE_BYTES_MAX]; /* b= */
    size_t signature_len;
    size_t header_count; /* h= entries */
    char headers[DKIM_SIG_HEADERS_MAX][DKIM_HEADER_NAME_BYTES_MAX + 1];
    bool has_length;
    uint64_t length; /* l= */
    bool has_timestamp;
    uint64_t timestamp; /* t= */
    bool has_expiry;
    uint64_t expiry; /* x= */
};

/* Read the value of a DKIM-Signature field (after its colon) per RFC 6376
 * 3.5 and 6.1.1: required tags, v=1, a known a= and c=, h= with From, i=
 * within d=, q= with dns/txt, x= after t=. When the algorithm is rsa-sha1
 * the signature is read (so a result can name it) and algorithm says so.
 * Returns 0, or -EINVAL with a reason (a permerror). Unknown tags are
 * ignored. The value of b= is decoded but not checked. */
int dkim_sig_parse(const char *value, size_t len, struct dkim_sig *sig_out, char *reason,
                   size_t reason_bytes);

enum dkim_key_type {
    DKIM_KEY_TYPE_RSA,
    DKIM_KEY_TYPE_ED25519,
};

struct dkim_key_record {
    enum dkim_key_type type;
    bool is_revoked;    /* p= empty */
    bool is_testing;    /* t=y */
    bool is_strict;     /* t=s: i= must be in d= itself, not a subdomain */
    bool allows_sha256; /* h= absent or listing sha256 */
    uint8_t public_key[DKIM_PUBLIC_KEY_BYTES_MAX]; /* p=, decoded */
    size_t public_key_len;
};

/* Read a key record (RFC 6376 3.6.1): v=DKIM1 first if present, k= rsa or
 * ed25519 (rsa when absent), h=, s= with email or *, t= flags, p=.
 * Returns 0, or -EINVAL with a reason (unknown key type, bad base64,
 * service not email, syntax). */
int dkim_key_record_parse(const char *text, size_t len, struct dkim_key_record *key_out,
                          char *reason, size_t reason_bytes);

/* True for a name that may be used as d= or a selector label sequence:
 * labels of letters, digits, '-' and '_' separated by single dots, each
 * label 1..63 bytes. */
bool dkim_domain_is_valid(const char *name, size_t len);

#endif
