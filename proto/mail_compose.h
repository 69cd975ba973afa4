/*
 * proto/mail_compose.h - building the messages toaster writes itself
 * (Sieve vacation replies and rejections, bounces): a capped output buffer and the few
 * encodings such a message needs (CRLF line ends, RFC 2047 encoded words,
 * quoted-printable, header values that cannot start a new field), hex
 * SHA-256 for keys and Message-IDs, and a walk over the header fields of
 * the message being answered. Shared by sieve_vacation, sieve_reject and
 * store/dsn (bounces); pure, any thread.
 */
#ifndef TOASTER_PROTO_MAIL_COMPOSE_H
#define TOASTER_PROTO_MAIL_COMPOSE_H

#include <stdbool.h>
#include <stddef.h>

#define MAIL_COMPOSE_LINE_BYTES_MAX 998u /* RFC 5322 2.1.1, without CRLF */

/* A growing buffer, at most bytes_max bytes. After the first failure
 * (error -ENOMEM or -E2BIG) every write does nothing, so a composer
 * checks error once at the end. Zero-initialise, set bytes_max; the
 * caller frees bytes. */
struct mail_compose {
    char *bytes;
    size_t len;
    size_t cap;
    size_t bytes_max;
    int error;
};

void mail_compose_bytes(struct mail_compose *out, const char *bytes, size_t len);
void mail_compose_str(struct mail_compose *out, const char *s);

/* Text for inside a header line: CR, LF and other controls become spaces. */
void mail_compose_clean(struct mail_compose *out, const char *s, size_t len);

/* RFC 2047 "B" encoded words of UTF-8 text (each at most 75 characters,
 * split on character boundaries), joined by CRLF SP folds. */
void mail_compose_encoded(struct mail_compose *out, const char *utf8, size_t len);

/* Text with every line end (LF, CR, CRLF) made CRLF. */
void mail_compose_crlf(struct mail_compose *out, const char *text, size_t len);

/* Quoted-printable (RFC 2045 6.7) with CRLF hard breaks and lines of at
 * most 76 characters. */
void mail_compose_qp(struct mail_compose *out, const char *text, size_t len);

bool mail_compose_is_ascii(const char *s, size_t len);

/* The header block of a message being answered or returned, up to its
 * empty line: CRLF line ends, each line cut at 998 bytes, lone CRs and
 * NULs made spaces, whole lines only up to out's bytes_max (the rest is
 * left off without an error). Used by sieve_reject and store/dsn. */
void mail_compose_copy_header(struct mail_compose *out, const char *header, size_t len);

/* Whether needle occurs in what out holds (a MIME boundary check). */
bool mail_compose_contains(const struct mail_compose *part, const char *needle,
                            size_t needle_len);

/* The longest line (CR and LF both end lines), without its end. */
size_t mail_compose_longest_line(const char *text, size_t len);

/* Hex SHA-256 (OpenSSL EVP), NUL-terminated. Aborts when OpenSSL cannot
 * digest at all (no memory for its context): callers have no error path
 * for that. */
void mail_compose_sha256_hex(const void *data, size_t len, char hex_out[65]);

/* A 32-byte digest as 64 lower-case hex digits and a NUL. */
void mail_compose_hex(const unsigned char digest[32], char hex_out[65]);

/* One header field of the message being answered: name and raw value
 * (folded lines kept, the last line end not), borrowed. */
struct mail_compose_field {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
};

/* The field at *pos of header[0..len), and *pos moved past it. False at
 * the empty line that ends the header, at the end of the bytes, and at a
 * line that is no field (the header ends there). The last field may end
 * at the end of the bytes without a line end. */
bool mail_compose_field_next(const char *header, size_t len, size_t *pos,
                              struct mail_compose_field *out);

/* The field's name is name (ASCII, any case). */
bool mail_compose_field_is(const struct mail_compose_field *field, const char *name);

/* The first field called name. */
bool mail_compose_field_find(const char *header, size_t len, const char *name,
                              struct mail_compose_field *out);

#endif
