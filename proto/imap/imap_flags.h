/*
 * proto/imap/imap_flags.h - the IMAP system flags as bits, and the one
 * message description the FETCH, SEARCH and STORE code in proto/ shares.
 *
 * Header only. Store-side flag letters (Maildir "DFRST") are mapped to
 * these bits by the glue; proto/ never sees a file name.
 */
#ifndef TOASTER_PROTO_IMAP_FLAGS_H
#define TOASTER_PROTO_IMAP_FLAGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/span.h"

#define IMAP_FLAG_SEEN 0x01u
#define IMAP_FLAG_ANSWERED 0x02u
#define IMAP_FLAG_FLAGGED 0x04u
#define IMAP_FLAG_DELETED 0x08u
#define IMAP_FLAG_DRAFT 0x10u
#define IMAP_FLAG_RECENT 0x20u /* session-only; never stored, never set by STORE */
#define IMAP_FLAGS_STORABLE 0x1fu
#define IMAP_FLAG_COUNT 6

/* Keywords a mailbox can hold (Dovecot's letters a..z). */
#define IMAP_KEYWORDS_MAX 26

/* Names in bit order: "\\Seen", "\\Answered", ... "\\Recent". */
static inline const char *
imap_flag_name(unsigned bit_index)
{
    static const char *const names[IMAP_FLAG_COUNT] = {
        "\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft", "\\Recent",
    };
    return bit_index < IMAP_FLAG_COUNT ? names[bit_index] : "";
}

/* The bit of a system flag name (case-insensitive, with the backslash), or
 * 0 when text is not one. */
static inline unsigned
imap_flag_from_name(struct span text)
{
    for (unsigned i = 0; i < IMAP_FLAG_COUNT; i++) {
        if (span_equals_nocase(text, imap_flag_name(i))) {
            return 1u << i;
        }
    }
    return 0;
}

/* One message as FETCH, SEARCH and STORE see it. The glue fills it from the
 * mailbox index and, when the request needs content, from the message file
 * (data: the whole message as stored, CRLF line ends; NULL when the request
 * needs no content). Keyword names are borrowed for the call. */
struct imap_message {
    uint32_t seq;
    uint32_t uid;
    uint32_t flags;      /* IMAP_FLAG_* */
    uint32_t keyword_mask; /* bit i = keyword_names[i] is set */
    const char *const *keyword_names; /* the mailbox's keywords, index = bit */
    size_t keyword_count;
    uint64_t modseq;
    int64_t internal_date; /* seconds since the epoch (UTC) */
    int32_t internal_date_tz_minutes; /* offset shown in INTERNALDATE */
    uint64_t size;       /* RFC822.SIZE: octets of data */
    const char *data;    /* whole message, or NULL */
    size_t data_len;
    /* The message holds no NUL byte. With it, FETCH of whole-message
     * sections (IMAP_FETCH_NEEDS_SIZE) may be given data == NULL and
     * data_len the size: their bytes then go out by write_range only. */
    bool is_nul_free;
    /* The message's searchable body text (imap_search_body_text) when the
     * glue has it, else NULL: BODY searches body_folded[0..body_folded_len)
     * and TEXT body_folded[0..body_folded_text_len) instead of the body in
     * data (which then needs to hold only the header block). */
    const char *body_folded;
    size_t body_folded_len;
    size_t body_folded_text_len;
};

#endif
