/*
 * filters/dmarc_record.h - the DMARC policy record (RFC 7489 sections 6.3
 * and 6.4): a tag-value list read from a TXT record, that is from the
 * network. Parsing is a pure function into a fixed-size struct.
 *
 * Rules applied (RFC 7489 6.3, 6.6.3): "v=DMARC1" must be the first tag,
 * exactly; a malformed tag list or a repeated tag makes the record
 * invalid; unknown tags are ignored; a bad value of pct, adkim, aspf, fo,
 * rf or ri falls back to the tag's default; a missing or bad p= (or a bad
 * sp=) makes the record act as "p=none" when rua= holds at least one
 * valid URI, and makes it invalid otherwise. rua= and ruf= are kept (no
 * report is ever sent).
 */
#ifndef TOASTER_FILTERS_DMARC_RECORD_H
#define TOASTER_FILTERS_DMARC_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DMARC_RECORD_BYTES_MAX 4096u /* a longer record is invalid */
#define DMARC_URIS_MAX 8u            /* further rua/ruf URIs are ignored */
#define DMARC_URI_BYTES_MAX 256u     /* a longer URI is not valid */
#define DMARC_TAGS_MAX 64u           /* more tags: invalid record */

enum dmarc_policy {
    DMARC_POLICY_NONE,
    DMARC_POLICY_QUARANTINE,
    DMARC_POLICY_REJECT,
};

enum dmarc_alignment {
    DMARC_ALIGN_RELAXED,
    DMARC_ALIGN_STRICT,
};

/* fo= options, RFC 7489 6.3. */
#define DMARC_FO_0 1u
#define DMARC_FO_1 2u
#define DMARC_FO_D 4u
#define DMARC_FO_S 8u

struct dmarc_record {
    enum dmarc_policy p;
    enum dmarc_policy sp; /* = p when sp= is absent */
    bool has_sp;
    bool is_p_fallback;         /* p= missing or bad; acting as none for rua= */
    unsigned pct;               /* 0..100, default 100 */
    enum dmarc_alignment adkim; /* default relaxed */
    enum dmarc_alignment aspf;
    unsigned fo;   /* DMARC_FO_* bits, default DMARC_FO_0 */
    uint32_t ri_s; /* default 86400 */
    size_t rua_count;
    size_t ruf_count;
    char rua[DMARC_URIS_MAX][DMARC_URI_BYTES_MAX];
    char ruf[DMARC_URIS_MAX][DMARC_URI_BYTES_MAX];
};

/* Does text[0..len) start with the v=DMARC1 tag (RFC 7489 6.6.3 step 2)? */
bool dmarc_record_is_dmarc(const char *text, size_t len);

/* Parse a record. Returns 0 with *out filled, -ENOENT when it is not a
 * DMARC record at all, -EINVAL when it is one but invalid (then no policy
 * applies: DMARC permerror). */
int dmarc_record_parse(const char *text, size_t len, struct dmarc_record *out);

const char *dmarc_policy_name(enum dmarc_policy policy);

#endif
