/*
 * filters/dkim_limits.h - every bound of the DKIM signer and verifier in
 * one place. A message or DNS record past one of them gives a permerror
 * (verification) or -EINVAL/-EMSGSIZE (signing, configuration), never a
 * crash or an unbounded allocation.
 */
#ifndef TOASTER_FILTERS_DKIM_LIMITS_H
#define TOASTER_FILTERS_DKIM_LIMITS_H

#include <assert.h>

/* Header block of a message read by the verifier or signer (as IMAP MIME). */
#define DKIM_HEADER_BLOCK_BYTES_MAX (256u * 1024u)
/* Header fields in that block. */
#define DKIM_HEADER_FIELDS_MAX 1024u
/* One header field name (h= entries and message fields alike). */
#define DKIM_HEADER_NAME_BYTES_MAX 128u
/* One DKIM-Signature field, name and folding included. */
#define DKIM_SIG_FIELD_BYTES_MAX (16u * 1024u)
/* One key record (the TXT strings joined). */
#define DKIM_KEY_RECORD_BYTES_MAX 4096u
/* Tags in one tag-list (unknown tags count too). */
#define DKIM_TAGS_MAX 64u
/* Entries of h=. */
#define DKIM_SIG_HEADERS_MAX 64u
/* Signatures verified per message; later ones get DKIM_RESULT_POLICY. */
#define DKIM_VERIFY_SIGNATURES_MAX 8u
/* d= and the key's DNS name (RFC 1035). */
#define DKIM_DOMAIN_BYTES_MAX 253u
/* s= (it may hold dots: sub-labels). */
#define DKIM_SELECTOR_BYTES_MAX 128u
/* i= (local part @ domain). */
#define DKIM_IDENTITY_BYTES_MAX 320u
/* RSA moduli a verifier accepts: RFC 8301 sets the floor; the ceiling
 * bounds the work a hostile key record can ask for. */
#define DKIM_RSA_BITS_MIN 1024u
#define DKIM_RSA_BITS_MAX 8192u
/* RSA signing keys (RFC 8301: 1024 to 4096 are what verifiers must take). */
#define DKIM_SIGN_RSA_BITS_MIN 1024u
#define DKIM_SIGN_RSA_BITS_MAX 4096u
/* Decoded b= (an RSA signature is as long as the modulus). */
#define DKIM_SIGNATURE_BYTES_MAX (DKIM_RSA_BITS_MAX / 8u)
/* Decoded p= (a SubjectPublicKeyInfo for DKIM_RSA_BITS_MAX). */
#define DKIM_PUBLIC_KEY_BYTES_MAX 1200u
/* Chunk of the message read per pread(2). */
#define DKIM_READ_CHUNK_BYTES (64u * 1024u)
/* Configured signing keys (dkim_key lines). */
#define DKIM_KEYS_MAX 256u
/* A t= this far past the verifier's clock is still taken (clocks drift);
 * further in the future is a permerror (RFC 6376 6.1.1 lets verifiers
 * refuse it). */
#define DKIM_CLOCK_SKEW_S 3600u
/* The DKIM-Signature field the signer writes. */
#define DKIM_SIGN_FIELD_BYTES_MAX 4096u

static_assert(DKIM_SIG_FIELD_BYTES_MAX <= DKIM_HEADER_BLOCK_BYTES_MAX, "a signature fits a block");
static_assert(DKIM_SIGNATURE_BYTES_MAX * 4 / 3 + 4 < DKIM_SIG_FIELD_BYTES_MAX, "b= fits a field");
static_assert(DKIM_PUBLIC_KEY_BYTES_MAX * 4 / 3 + 4 < DKIM_KEY_RECORD_BYTES_MAX,
              "p= fits a record");

#endif
