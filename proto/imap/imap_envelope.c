/*
 * proto/imap/imap_envelope.c - ENVELOPE fields and RFC 5322 address lists.
 *
 * Pure, no allocation, any thread. The header block is walked once for
 * the four plain fields (the last occurrence counts, as in Dovecot) and
 * once per address field (every occurrence adds to the list, as in
 * Dovecot); addresses are parsed and written one at a time, so nothing is
 * stored. Every loop advances through its input, so work is linear in the
 * header size (bounded by the caller, IMAP_MIME_HEADER_BYTES_MAX for
 * parsed messages) times the 8 walks.
 *
 * Address parsing follows Dovecot's message_address_parse() closely so
 * that clients see the same ENVELOPE from both: a display name is an
 * RFC 5322 phrase (comments dropped, quoted strings unquoted, words joined
 * by one space); a mailbox without '@' gets host "MISSING_DOMAIN"; an
 * empty local part gives "MISSING_MAILBOX"; a group gives (NIL NIL name
 * NIL) ... (NIL NIL NIL NIL); an address that does not parse is still
 * shown with its missing parts filled ("SYNTAX_ERROR" for the host of an
 * unclosed '<'), a bare addr-spec takes its last comment as name, an empty
 * element gives MISSING_MAILBOX, and the list ends where an address is not
 * followed by ','. Deliberate difference: CFWS around the dots of a local
 * part or domain ("a . b @ c") is read as RFC 5322 obs-local-part.
 */
#include "proto/imap/imap_envelope.h"

#include <string.h>

#include "core/assertions.h"
#include "core/span.h"
#include "proto/imap/imap_rfc822.h"

enum envelope_field {
    ENV_DATE,
    ENV_SUBJECT,
    ENV_FROM,
    ENV_SENDER,
    ENV_REPLY_TO,
    ENV_TO,
    ENV_CC,
    ENV_BCC,
    ENV_IN_REPLY_TO,
    ENV_MESSAGE_ID,
    ENV_FIELD_COUNT,
};

static const char *const envelope_field_names[ENV_FIELD_COUNT] = {
    [ENV_DATE] = "date",         [ENV_SUBJECT] = "subject",
    [ENV_FROM] = "from",         [ENV_SENDER] = "sender",
    [ENV_REPLY_TO] = "reply-to", [ENV_TO] = "to",
    [ENV_CC] = "cc",             [ENV_BCC] = "bcc",
    [ENV_IN_REPLY_TO] = "in-reply-to", [ENV_MESSAGE_ID] = "message-id",
};

struct address {
    struct imap_rfc822_value name;
    struct imap_rfc822_value adl;
    struct imap_rfc822_value mailbox;
    struct imap_rfc822_value host;
};

struct address_list {
    struct imap_out *out;
    unsigned         flags;
    const char      *s;
    size_t           len;
    size_t           count;
};

static const struct imap_rfc822_value missing_mailbox = {
    .ptr = "MISSING_MAILBOX", .len = 15, .kind = IMAP_RFC822_VALUE_RAW,
};
static const struct imap_rfc822_value missing_domain = {
    .ptr = "MISSING_DOMAIN", .len = 14, .kind = IMAP_RFC822_VALUE_RAW,
};
static const struct imap_rfc822_value syntax_error = {
    .ptr = "SYNTAX_ERROR", .len = 12, .kind = IMAP_RFC822_VALUE_RAW,
};

static size_t header_addresses_write(struct imap_out *out, const char *hdr, size_t len,
                                     const char *name, unsigned flags);
static void address_list_parse(struct address_list *list);
static void address_emit(struct address_list *list, const struct address *addr);
static bool address_parse(struct address_list *list, size_t *pos);
static bool mailbox_parse(struct address_list *list, size_t *pos);
static bool mailbox_broken(struct address_list *list, struct address *addr, bool is_angle,
                           size_t q, size_t *pos);
static struct imap_rfc822_value last_comment(const char *s, size_t len);
static size_t words_end(const char *s, size_t len, size_t pos, bool is_dot_separated,
                        size_t *last_word_end_out, bool *is_ok_out);
static bool addr_spec_parse(struct address_list *list, size_t *pos, struct address *addr);
static struct imap_rfc822_value value_of(const char *ptr, size_t len,
                                         enum imap_rfc822_value_kind kind);

void
imap_envelope_write(struct imap_out *out, const char *hdr, size_t len, unsigned flags)
{
    /* As in Dovecot: the last Date, Subject, In-Reply-To and Message-ID
     * count; every From, To... field adds its addresses to one list. */
    struct span fields[ENV_FIELD_COUNT] = { { 0 } };
    size_t pos = 0;
    struct imap_rfc822_field field;
    while (imap_rfc822_header_next(hdr, len, &pos, &field)) {
        for (size_t i = 0; i < ENV_FIELD_COUNT; i++) {
            if (span_equals_nocase(field.name, envelope_field_names[i])) {
                fields[i] = field.value;
                break;
            }
        }
    }
    imap_out_char(out, '(');
    for (size_t i = 0; i < ENV_FIELD_COUNT; i++) {
        if (i > 0) {
            imap_out_char(out, ' ');
        }
        struct span v = fields[i];
        switch ((enum envelope_field)i) {
        case ENV_SUBJECT: {
            struct imap_rfc822_value value = value_of(v.ptr, v.len, IMAP_RFC822_VALUE_RAW);
            imap_rfc822_value_write(out, &value, flags | IMAP_QUOTE_HUMANS);
            break;
        }
        case ENV_DATE:
        case ENV_IN_REPLY_TO:
        case ENV_MESSAGE_ID: {
            struct imap_rfc822_value value = value_of(v.ptr, v.len, IMAP_RFC822_VALUE_NOLF);
            imap_rfc822_value_write(out, &value, flags);
            break;
        }
        case ENV_SENDER:
        case ENV_REPLY_TO: {
            /* Both default to From when absent or empty (RFC 3501). */
            size_t mark = out->len;
            bool was_overflow = out->is_overflow;
            if (header_addresses_write(out, hdr, len, envelope_field_names[i], flags) > 0) {
                break;
            }
            out->len = mark;
            out->is_overflow = was_overflow;
            (void)header_addresses_write(out, hdr, len, envelope_field_names[ENV_FROM], flags);
            break;
        }
        case ENV_FROM:
        case ENV_TO:
        case ENV_CC:
        case ENV_BCC:
            (void)header_addresses_write(out, hdr, len, envelope_field_names[i], flags);
            break;
        case ENV_FIELD_COUNT:
            ASSERT(false);
        }
    }
    imap_out_char(out, ')');
}

size_t
imap_envelope_write_addresses(struct imap_out *out, const char *value, size_t len,
                              unsigned flags)
{
    struct address_list list = {
        .out = out, .flags = flags, .s = value, .len = len, .count = 0,
    };
    address_list_parse(&list);
    imap_out_cstr(out, list.count == 0 ? "NIL" : ")");
    return list.count;
}

/* All fields called name, as one address list (or NIL). */
static size_t
header_addresses_write(struct imap_out *out, const char *hdr, size_t len, const char *name,
                       unsigned flags)
{
    struct address_list list = { .out = out, .flags = flags, .count = 0 };
    size_t pos = 0;
    struct imap_rfc822_field field;
    while (imap_rfc822_header_next(hdr, len, &pos, &field)) {
        if (span_equals_nocase(field.name, name)) {
            list.s = field.value.ptr;
            list.len = field.value.len;
            address_list_parse(&list);
        }
    }
    imap_out_cstr(out, list.count == 0 ? "NIL" : ")");
    return list.count;
}

/* Each round parses one element and needs a ',' to go on; an empty
 * element (", ,") gives a MISSING_MAILBOX address, as in Dovecot. */
static void
address_list_parse(struct address_list *list)
{
    const char *value = list->s;
    size_t len = list->len;
    size_t p = imap_rfc822_skip_cfws(value, len, 0);
    while (p < len) {
        size_t before = p;
        if (!address_parse(list, &p)) {
            break;
        }
        p = imap_rfc822_skip_cfws(value, len, p);
        if (p >= len || value[p] != ',') {
            break;
        }
        p = imap_rfc822_skip_cfws(value, len, p + 1);
        ASSERT(p > before);
    }
}

static void
address_emit(struct address_list *list, const struct address *addr)
{
    struct imap_out *out = list->out;
    if (list->count == 0) {
        imap_out_char(out, '(');
    }
    list->count++;
    imap_out_char(out, '(');
    unsigned name_flags = list->flags | IMAP_QUOTE_HUMANS;
    if (addr->name.ptr != NULL &&
        imap_quote_produced_len(imap_rfc822_value_produce, &addr->name, name_flags) == 0) {
        imap_out_cstr(out, "NIL"); /* "" <a@b>: no name, as Dovecot */
    } else {
        imap_rfc822_value_write(out, &addr->name, name_flags);
    }
    imap_out_char(out, ' ');
    imap_rfc822_value_write(out, &addr->adl, list->flags);
    imap_out_char(out, ' ');
    imap_rfc822_value_write(out, &addr->mailbox, list->flags);
    imap_out_char(out, ' ');
    imap_rfc822_value_write(out, &addr->host, list->flags);
    imap_out_char(out, ')');
}

/* address = mailbox / group */
static bool
address_parse(struct address_list *list, size_t *pos)
{
    const char *s = list->s;
    size_t len = list->len;
    size_t start = *pos;
    size_t phrase_end = start;
    bool is_ok = true;
    size_t q = words_end(s, len, start, false, &phrase_end, &is_ok);
    if (!is_ok || q >= len || s[q] != ':' || phrase_end == start) {
        return mailbox_parse(list, pos);
    }
    struct address group = {
        .mailbox = value_of(s + start, phrase_end - start, IMAP_RFC822_VALUE_PHRASE),
    };
    address_emit(list, &group);
    q = imap_rfc822_skip_cfws(s, len, q + 1);
    /* Bounded: every round consumes at least one byte or stops. */
    while (q < len) {
        if (s[q] == ';') {
            q++;
            break;
        }
        if (s[q] == ',') {
            q = imap_rfc822_skip_cfws(s, len, q + 1);
            continue;
        }
        size_t before = q;
        if (!mailbox_parse(list, &q) || q == before) {
            q = len; /* broken member: the rest of the list goes */
            break;
        }
        q = imap_rfc822_skip_cfws(s, len, q);
        if (q < len && s[q] != ',' && s[q] != ';') {
            q = len;
            break;
        }
    }
    struct address end = { .name = { .ptr = NULL } };
    address_emit(list, &end);
    *pos = q;
    return true;
}

/* A mailbox that did not parse is still shown, its missing parts filled
 * ("SYNTAX_ERROR" for the host of an unclosed "<...", as Dovecot). The
 * list goes on only if a ',' follows where parsing stopped (at q). */
static bool
mailbox_broken(struct address_list *list, struct address *addr, bool is_angle, size_t q,
               size_t *pos)
{
    if (addr->mailbox.ptr == NULL) {
        addr->mailbox = missing_mailbox;
    }
    if (addr->host.ptr == NULL || (is_angle && addr->host.ptr == missing_domain.ptr)) {
        addr->host = is_angle ? syntax_error : missing_domain;
    }
    address_emit(list, addr);
    *pos = q;
    return true;
}

/* mailbox = name-addr / addr-spec; name-addr = [phrase] "<" [route ":"]
 * addr-spec ">" */
static bool
mailbox_parse(struct address_list *list, size_t *pos)
{
    const char *s = list->s;
    size_t len = list->len;
    size_t start = *pos;
    size_t phrase_end = start;
    bool is_ok = true;
    size_t q = words_end(s, len, start, false, &phrase_end, &is_ok);
    struct address addr = { .name = { .ptr = NULL } };
    if (is_ok && q < len && s[q] == '<') {
        if (phrase_end > start) {
            addr.name = value_of(s + start, phrase_end - start, IMAP_RFC822_VALUE_PHRASE);
        }
        q = imap_rfc822_skip_cfws(s, len, q + 1);
        if (q < len && s[q] == '@') {
            const char *colon = memchr(s + q, ':', len - q);
            const char *gt = memchr(s + q, '>', len - q);
            if (colon == NULL || (gt != NULL && gt < colon)) {
                return mailbox_broken(list, &addr, true, len, pos);
            }
            addr.adl = value_of(s + q, (size_t)(colon - (s + q)), IMAP_RFC822_VALUE_NOLF);
            q = imap_rfc822_skip_cfws(s, len, (size_t)(colon - s) + 1);
        }
        if (!addr_spec_parse(list, &q, &addr)) {
            return mailbox_broken(list, &addr, true, len, pos);
        }
        q = imap_rfc822_skip_cfws(s, len, q);
        if (q >= len || s[q] != '>') {
            return mailbox_broken(list, &addr, true, q, pos);
        }
        *pos = q + 1;
        address_emit(list, &addr);
        return true;
    }
    q = start;
    if (!addr_spec_parse(list, &q, &addr)) {
        return mailbox_broken(list, &addr, false, len, pos);
    }
    if (addr.name.ptr == NULL) {
        addr.name = last_comment(s + start, q - start);
    }
    *pos = q;
    address_emit(list, &addr);
    return true;
}

/* The inside of the last top-level comment in s[0..len), as Dovecot names
 * a bare addr-spec after its comment ("a@b (Name)"); absent when none. */
static struct imap_rfc822_value
last_comment(const char *s, size_t len)
{
    struct imap_rfc822_value found = { .ptr = NULL };
    size_t p = 0;
    while (p < len) {
        if (s[p] == '"') {
            bool is_closed = false;
            p = imap_rfc822_quoted_end(s, len, p, &is_closed);
        } else if (s[p] == '(') {
            size_t depth = 0;
            size_t q = p;
            while (q < len) {
                if (s[q] == '\\') {
                    q += 2;
                    continue;
                }
                depth += s[q] == '(';
                depth -= s[q] == ')';
                q++;
                if (depth == 0) {
                    break;
                }
            }
            if (q > len) {
                q = len;
            }
            size_t inner_end = depth == 0 ? q - 1 : q;
            found = value_of(s + p + 1, inner_end - (p + 1), IMAP_RFC822_VALUE_QUOTED);
            p = q;
        } else {
            p++;
        }
    }
    return found;
}

/* addr-spec = local-part ["@" domain]. A lone run of words without '@'
 * (a display name with no address) gives name + MISSING_* as Dovecot. */
static bool
addr_spec_parse(struct address_list *list, size_t *pos, struct address *addr)
{
    const char *s = list->s;
    size_t len = list->len;
    size_t start = *pos;
    size_t local_end = start;
    bool is_ok = true;
    size_t q = words_end(s, len, start, true, &local_end, &is_ok);
    if (!is_ok) {
        return false;
    }
    addr->mailbox = local_end > start ? value_of(s + start, local_end - start,
                                                 IMAP_RFC822_VALUE_LOCAL)
                                      : missing_mailbox;
    if (q < len && s[q] == '@') {
        q = imap_rfc822_skip_cfws(s, len, q + 1);
        size_t host_start = q;
        size_t host_end = q;
        if (q < len && s[q] == '[') {
            const char *close = memchr(s + q, ']', len - q);
            host_end = close == NULL ? len : (size_t)(close - s) + 1;
            addr->host = value_of(s + host_start, host_end - host_start, IMAP_RFC822_VALUE_NOLF);
            *pos = imap_rfc822_skip_cfws(s, len, host_end);
            return true;
        } else {
            q = words_end(s, len, q, true, &host_end, &is_ok);
            if (!is_ok) {
                return false;
            }
        }
        addr->host = host_end > host_start ? value_of(s + host_start, host_end - host_start,
                                                      IMAP_RFC822_VALUE_LOCAL)
                                           : missing_domain;
        *pos = q;
        return true;
    }
    addr->host = missing_domain;
    if (local_end > start && q < len &&
        (s[q] == '"' || imap_rfc822_is_atext((unsigned char)s[q]))) {
        /* "foo bar": a phrase, not a mailbox. */
        size_t phrase_end = start;
        q = words_end(s, len, start, false, &phrase_end, &is_ok);
        if (!is_ok) {
            return false;
        }
        addr->name = value_of(s + start, phrase_end - start, IMAP_RFC822_VALUE_PHRASE);
        addr->mailbox = missing_mailbox;
    }
    *pos = q;
    return true;
}

/* Walk words (atext/'.' runs and quoted strings) with CFWS between, from
 * pos. With is_dot_separated (local part, domain) a word must follow a
 * '.', otherwise the walk stops. Returns the index after the trailing CFWS;
 * *last_word_end_out is the end of the last word (pos if none). An
 * unclosed quoted string clears *is_ok_out. */
static size_t
words_end(const char *s, size_t len, size_t pos, bool is_dot_separated,
          size_t *last_word_end_out, bool *is_ok_out)
{
    size_t p = imap_rfc822_skip_cfws(s, len, pos);
    size_t last = pos;
    bool is_after_dot = true;
    *is_ok_out = true;
    while (p < len) {
        unsigned char c = (unsigned char)s[p];
        if (c == '"') {
            if (is_dot_separated && !is_after_dot) {
                break;
            }
            bool is_closed = false;
            p = imap_rfc822_quoted_end(s, len, p, &is_closed);
            if (!is_closed) {
                *is_ok_out = false;
                return p;
            }
            is_after_dot = false;
        } else if (imap_rfc822_is_atext(c) || c == '.') {
            if (is_dot_separated && !is_after_dot && c != '.') {
                break;
            }
            while (p < len && (imap_rfc822_is_atext((unsigned char)s[p]) || s[p] == '.')) {
                p++;
            }
            is_after_dot = s[p - 1] == '.';
        } else {
            break;
        }
        last = p;
        p = imap_rfc822_skip_cfws(s, len, p);
    }
    *last_word_end_out = last;
    return p;
}

static struct imap_rfc822_value
value_of(const char *ptr, size_t len, enum imap_rfc822_value_kind kind)
{
    return (struct imap_rfc822_value){ .ptr = ptr, .len = len, .kind = kind };
}
