/*
 * filters/spam_message.h - what the spam checks look at in one message,
 * worked out once (the "prepare" step) so that a scoring run that has to
 * wait for DNS can be rerun cheaply: header facts, the MIME structure's
 * oddities, attachment names, link domains, and the decoded text of the
 * text parts (quoted-printable and base64 undone, charsets turned into
 * UTF-8, HTML tags stripped).
 *
 * Built on the project's MIME parser (proto/imap/imap_mime, imap_rfc822,
 * imap_decode, imap_text). Runs on a worker; allocates the struct and its
 * buffers (within the bounds of spam_limits.h) and frees them in
 * spam_message_destroy. Attacker bytes go in: nothing here trusts them.
 */
#ifndef TOASTER_FILTERS_SPAM_MESSAGE_H
#define TOASTER_FILTERS_SPAM_MESSAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "filters/spam_limits.h"

#define SPAM_DIGEST_BYTES 16u

struct spam_message {
    /* Top-level header facts. */
    bool   has_date;
    bool   has_message_id;
    bool   has_from;
    bool   has_reply_to;
    bool   has_subject;
    char   from_domain[SPAM_DOMAIN_BYTES];     /* lower case; "" when none found */
    char   reply_to_domain[SPAM_DOMAIN_BYTES]; /* lower case; "" when none found */
    size_t header_rcpt_count;                  /* addresses in To: and Cc: */
    char   subject_raw[SPAM_SUBJECT_BYTES];    /* raw value, folding as CRLF + blank,
                                                * other CR/LF/NUL removed, cut */

    /* MIME structure. */
    size_t part_count;
    bool   is_mime_truncated;         /* SPAM_PARTS_MAX or the nesting limit reached */
    size_t plain_part_count;          /* text/plain parts that are not attachments */
    size_t html_part_count;           /* text/html parts that are not attachments */
    bool   is_multipart_no_boundary;  /* a multipart without boundary parameter */
    bool   is_multipart_no_children;  /* a multipart whose boundary never appears */

    /* Attachment names (Content-Disposition filename, Content-Type name,
     * RFC 2231 and RFC 2047 forms decoded) with a dangerous extension. */
    size_t bad_name_count;
    bool   has_double_bad_name; /* "invoice.pdf.exe" */
    char   bad_names[SPAM_BAD_NAMES_MAX][SPAM_FILENAME_BYTES]; /* sanitised, cut */

    bool is_gtube;

    /* Host names of http(s):// and www. links in the text parts (not IP
     * literals), lower case, each once, in order of appearance. */
    size_t url_domain_count;
    bool   is_url_truncated;
    char   url_domains[SPAM_URL_DOMAINS_MAX][SPAM_DOMAIN_BYTES];

    /* Owned copies. header_block: the top-level header block (cut at
     * SPAM_HEADER_BYTES_MAX). text: decoded text parts joined by LF, no
     * NUL inside, NUL-terminated, at most SPAM_TEXT_BYTES_MAX. */
    char  *header_block;
    size_t header_len;
    bool   is_header_truncated;
    char  *text;
    size_t text_len;
    size_t text_max; /* min(SPAM_TEXT_BYTES_MAX, what this message can decode to) */
    bool   is_text_truncated;

    /* SHA-256 (first 16 bytes) of the Subject and the decoded text: the
     * same message learned twice has the same digest, whatever relays
     * added to its header. */
    uint8_t digest[SPAM_DIGEST_BYTES];
};

/* Analyse msg[0..len) (header and body, CRLF or LF line ends). Returns 0
 * and sets *message_out (owned by the caller), or -ENOMEM. Never fails on
 * content. */
int spam_message_analyse(const char *msg, size_t len, struct spam_message **message_out);

void spam_message_destroy(struct spam_message **message);

/* The domain of the first address in a From:/Reply-To: style value, lower
 * case, into out (SPAM_DOMAIN_BYTES). Returns false when there is none. */
bool spam_message_address_domain(const char *value, size_t len, char *out, size_t out_bytes);

/* True when name (a file name, any case) ends in a dangerous extension
 * (.exe .scr .js .vbs ...); *is_double_out tells whether another short
 * extension precedes it ("a.pdf.exe"). Trailing dots and blanks, which
 * Windows ignores, are ignored too. */
bool spam_message_name_is_bad(const char *name, size_t len, bool *is_double_out);

#endif
