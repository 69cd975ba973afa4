/*
 * filters/dkim_sign.h - DKIM signing of an outgoing message on disk (RFC
 * 6376 5, RFC 8463): one DKIM-Signature field per key given, the body read
 * once whatever the number of keys. Worker threads and tools.
 *
 * Signed fields: From, Subject, Date, To, Cc, Message-ID, Reply-To,
 * In-Reply-To, References, MIME-Version, Content-Type,
 * Content-Transfer-Encoding, each as often as the message has it; From,
 * Subject, Date, To, Cc, Message-ID, MIME-Version, Content-Type and
 * Content-Transfer-Encoding once more (oversigned), so that none can be
 * added after signing without breaking the signature.
 */
#ifndef TOASTER_FILTERS_DKIM_SIGN_H
#define TOASTER_FILTERS_DKIM_SIGN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "filters/dkim_canon.h"
#include "filters/dkim_keys.h"

struct dkim_sign_options {
    enum dkim_canon canon_header; /* DKIM_CANON_RELAXED unless chosen otherwise */
    enum dkim_canon canon_body;
    uint64_t now_s;          /* t= (Unix seconds) */
    uint64_t expire_after_s; /* x= = t= + this; 0: no x= */
    bool has_length;         /* l=: for tests only; never on outgoing mail (RFC 6376 8.2) */
    uint64_t length;
};

/* relaxed/relaxed, t= now from the clock, no x=. */
void dkim_sign_options_default(struct dkim_sign_options *options_out);

/* Sign the message in fd (read from offset 0 with pread; CRLF line ends)
 * with each of key_count keys. Writes the DKIM-Signature fields, each
 * folded at 78 columns and ending with CRLF, to out: prepend them to the
 * message as they are. Returns 0 and sets *len_out; -EMSGSIZE when the
 * header block is over DKIM_HEADER_BLOCK_BYTES_MAX or the fields to sign
 * are more than DKIM_SIG_HEADERS_MAX; -ENOSPC when out is too small
 * (DKIM_SIGN_FIELD_BYTES_MAX per key is always enough); -ENOMEM, -EIO
 * (OpenSSL), -errno of the read. */
int dkim_sign(const struct dkim_key *const *keys, size_t key_count, int fd,
              const struct dkim_sign_options *options, char *out, size_t out_bytes,
              size_t *len_out);

#endif
