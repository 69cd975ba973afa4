/*
 * proto/smtp/smtp_hops.h - counting the Received: fields of a message as
 * its body streams in, so a message that has already passed through too
 * many servers (a mail loop: RFC 5321 section 6.3) is refused at the end
 * of data, as Postfix refuses it past hopcount_limit.
 *
 * Pure and incremental: fed the decoded body (CRLF line ends, in pieces of
 * any size), a few bytes of state, no allocation. Only field names at the
 * start of a header line count ("Received" in any case, optional blanks,
 * then ':'); continuation lines and the body after the first empty line
 * do not.
 */
#ifndef TOASTER_PROTO_SMTP_HOPS_H
#define TOASTER_PROTO_SMTP_HOPS_H

#include <stddef.h>
#include <stdint.h>

struct smtp_hop_counter {
    uint32_t state;    /* private */
    uint32_t matched;  /* private: bytes of "received" matched on this line */
    uint32_t received; /* Received: fields seen so far */
};

void smtp_hop_counter_init(struct smtp_hop_counter *counter);

/* Consume body bytes. Never fails; stops counting at the end of the
 * header block (or at UINT32_MAX fields). */
void smtp_hop_counter_feed(struct smtp_hop_counter *counter, const uint8_t *bytes, size_t len);

#endif
