/*
 * core/mta_sts_fetch.h - fetch an MTA-STS policy file (RFC 8461 3.3):
 * "GET /.well-known/mta-sts.txt" from https://mta-sts.<domain>/, over TLS
 * with a certificate valid for that name (core/tls.h, TLS_VERIFY_NAME),
 * status 200 only (no redirects), Content-Type text/plain, body at most
 * MTA_STS_POLICY_BYTES_MAX.
 *
 * Blocking: for a worker thread, never a reactor. The whole fetch (every
 * connect tried, the handshake, the request, the response) fits in one
 * deadline of timeout_ms. The addresses come from the caller (resolved
 * through its dns_source), so this does no DNS.
 */
#ifndef TOASTER_CORE_MTA_STS_FETCH_H
#define TOASTER_CORE_MTA_STS_FETCH_H

#include <stddef.h>
#include <stdint.h>

#include "core/relay_tls_policy.h"

#define MTA_STS_FETCH_ADDRESSES_MAX 8u
#define MTA_STS_FETCH_TIMEOUT_MS_DEFAULT 10000u
#define MTA_STS_FETCH_PORT_DEFAULT 443u

struct mta_sts_fetch_request {
    const char *domain;                                /* the policy domain (not mta-sts.) */
    const struct relay_tls_fetch_address *addresses;   /* tried in order */
    size_t address_count;                              /* the first ..._ADDRESSES_MAX used */
    uint16_t port;                                     /* 443 */
    uint32_t timeout_ms;                               /* the whole fetch */
    struct tls_client *client;                         /* borrowed */
};

/* Fetch into body[0..body_max) (body_max at most MTA_STS_POLICY_BYTES_MAX
 * is what the RFC allows). Returns 0 and *body_len_out, or: -ETIMEDOUT
 * (deadline), -ECONNREFUSED / -EHOSTUNREACH / ... (the last connect's
 * error), -EPERM (the certificate does not verify for mta-sts.<domain>),
 * -EPROTO (TLS failure, malformed HTTP, status other than 200, a media
 * type other than text/plain), -E2BIG (body over body_max), -EINVAL (no
 * address, bad domain), -ENOMEM; err says which in words. */
int mta_sts_fetch(const struct mta_sts_fetch_request *request, char *body, size_t body_max,
                  size_t *body_len_out, char *err, size_t err_bytes);

#endif
