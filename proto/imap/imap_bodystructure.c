/*
 * proto/imap/imap_bodystructure.c - BODY / BODYSTRUCTURE writer.
 *
 * Pure, no allocation, any thread. Recursion follows the part tree, whose
 * depth imap_mime bounds by IMAP_MIME_DEPTH_MAX; the ENVELOPE of a
 * message/rfc822 part comes from imap_envelope. Field by field this
 * follows Dovecot 2.3's imap-bodystructure.c so clients see the same
 * strings from both servers (see tests/unit/fixtures/mime/).
 */
#include "proto/imap/imap_bodystructure.h"

#include <string.h>

#include "core/assertions.h"
#include "proto/imap/imap_envelope.h"
#include "proto/imap/imap_rfc822.h"

#define EMPTY_BODY "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0"
#define EMPTY_ENVELOPE "(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)"

/* RFC 2231 parameters of one field that are grouped; more are shown raw. */
#define PARAMS_2231_MAX 32

struct param_2231 {
    struct span              name;
    struct imap_rfc822_value value;
    struct span              base;
    unsigned                 index;
    bool                     has_index;
    bool                     is_extended;
    bool                     is_valid;
};

struct group_2231 {
    struct span              base;
    bool                     is_extended;
    const struct param_2231 *items;
    size_t                   count;
};

static void part_write(struct imap_out *out, const char *msg, const struct imap_mime_part *parts,
                       size_t part_count, uint32_t index, bool is_extended, unsigned flags);
static void params_write(struct imap_out *out, struct span params, bool is_text, unsigned flags);
static size_t params_2231_write(struct imap_out *out, struct span params, size_t star_count,
                                size_t written, unsigned flags);
static void extension_common_write(struct imap_out *out, const struct imap_mime_part *part,
                                   unsigned flags);
static void nstring_nolf(struct imap_out *out, struct span value, unsigned flags);
static void string_raw(struct imap_out *out, struct span value, unsigned flags);

void
imap_bodystructure_write(struct imap_out *out, const char *msg,
                         const struct imap_mime_part *parts, size_t part_count, uint32_t index,
                         bool is_extended, unsigned flags)
{
    ASSERT(index < part_count);
    part_write(out, msg, parts, part_count, index, is_extended, flags);
}

static void
part_write(struct imap_out *out, const char *msg, const struct imap_mime_part *parts,
           size_t part_count, uint32_t index, bool is_extended, unsigned flags)
{
    const struct imap_mime_part *part = &parts[index];
    ASSERT(part->depth <= IMAP_MIME_DEPTH_MAX);
    imap_out_char(out, '(');
    if ((part->flags & IMAP_MIME_IS_MULTIPART) != 0) {
        if (part->first_child == IMAP_MIME_NONE) {
            imap_out_cstr(out, EMPTY_BODY);
            imap_out_cstr(out, is_extended ? " NIL NIL NIL NIL)" : ")");
        }
        for (uint32_t c = part->first_child; c != IMAP_MIME_NONE; c = parts[c].next_sibling) {
            ASSERT(c < part_count);
            ASSERT(parts[c].parent == index);
            part_write(out, msg, parts, part_count, c, is_extended, flags);
        }
        imap_out_char(out, ' ');
        string_raw(out, part->subtype, flags);
        if (is_extended) {
            imap_out_char(out, ' ');
            params_write(out, part->params, false, flags);
            extension_common_write(out, part, flags);
        }
        imap_out_char(out, ')');
        return;
    }

    bool has_type = (part->flags & IMAP_MIME_HAS_TYPE) != 0;
    bool is_message = (part->flags & IMAP_MIME_IS_MESSAGE) != 0;
    bool is_text = (part->flags & IMAP_MIME_IS_TEXT) != 0;
    if (is_message) {
        /* Dovecot spells this one in lower case whatever the header says. */
        imap_out_cstr(out, "\"message\" \"rfc822\"");
    } else if (has_type) {
        string_raw(out, part->type, flags);
        imap_out_char(out, ' ');
        string_raw(out, part->subtype, flags);
    } else {
        imap_out_cstr(out, "\"text\" \"plain\"");
    }
    imap_out_char(out, ' ');
    params_write(out, has_type ? part->params : span_make(NULL, 0), is_text, flags);
    imap_out_char(out, ' ');
    nstring_nolf(out, part->id, flags);
    imap_out_char(out, ' ');
    nstring_nolf(out, part->description, flags);
    imap_out_char(out, ' ');
    if (part->encoding.ptr != NULL && part->encoding.len > 0) {
        string_raw(out, part->encoding, flags);
    } else {
        imap_out_cstr(out, "\"7bit\"");
    }
    imap_out_char(out, ' ');
    imap_out_uint(out, part->body_size);
    if (is_message) {
        imap_out_char(out, ' ');
        uint32_t c = part->first_child;
        if (c == IMAP_MIME_NONE) {
            /* Not parsed (a limit was reached): an empty message. */
            imap_out_cstr(out, EMPTY_ENVELOPE " " EMPTY_BODY);
            imap_out_cstr(out, is_extended ? " NIL NIL NIL NIL)" : ")");
        } else {
            ASSERT(c < part_count);
            imap_envelope_write(out, msg + parts[c].header_offset, parts[c].header_size, flags);
            imap_out_char(out, ' ');
            part_write(out, msg, parts, part_count, c, is_extended, flags);
        }
        imap_out_char(out, ' ');
        imap_out_uint(out, part->body_lines);
    } else if (is_text) {
        imap_out_char(out, ' ');
        imap_out_uint(out, part->body_lines);
    }
    if (is_extended) {
        imap_out_char(out, ' ');
        nstring_nolf(out, part->md5, flags);
        extension_common_write(out, part, flags);
    }
    imap_out_char(out, ')');
}

/* ("name" "value" ...) or NIL; text parts get a default charset. As in
 * Dovecot, plain parameters come first, then the RFC 2231 ones (a '*' in
 * the name) ordered by name: continuations "x*0", "x*1"... are joined in
 * index order into one "x" (or "x*" when the first is extended, its value
 * left encoded); a lone "x*" stays as it is. More than PARAMS_2231_MAX
 * such parameters are shown as they are, which bounds the quadratic
 * grouping work. */
static void
params_write(struct imap_out *out, struct span params, bool is_text, unsigned flags)
{
    size_t count = 0;
    bool has_charset = false;
    size_t star_count = 0;
    size_t pos = 0;
    struct imap_rfc822_param param;
    while (params.ptr != NULL && imap_rfc822_param_next(params.ptr, params.len, &pos, &param)) {
        if (memchr(param.name.ptr, '*', param.name.len) != NULL) {
            star_count++;
            continue;
        }
        imap_out_char(out, count == 0 ? '(' : ' ');
        count++;
        string_raw(out, param.name, flags);
        imap_out_char(out, ' ');
        imap_rfc822_value_write(out, &param.value, flags);
        if (span_equals_nocase(param.name, "charset")) {
            has_charset = true;
        }
    }
    if (star_count > 0) {
        count += params_2231_write(out, params, star_count, count, flags);
    }
    if (is_text && !has_charset) {
        imap_out_cstr(out, count == 0 ? "(" : " ");
        imap_out_cstr(out, "\"charset\" \"us-ascii\"");
        count++;
    }
    imap_out_cstr(out, count == 0 ? "NIL" : ")");
}

/* Split an RFC 2231 name: base "*" [index] ["*"]. False when the rest is
 * not of that form (the parameter is then shown as it is). */
static bool
param_2231_split(struct span name, struct param_2231 *out)
{
    const char *star = memchr(name.ptr, '*', name.len);
    ASSERT(star != NULL);
    size_t base_len = (size_t)(star - name.ptr);
    size_t i = base_len + 1;
    out->base = span_make(name.ptr, base_len);
    out->index = 0;
    out->has_index = false;
    out->is_extended = false;
    if (i == name.len) {
        out->is_extended = true;
        return base_len > 0;
    }
    size_t digits = 0;
    while (i < name.len && name.ptr[i] >= '0' && name.ptr[i] <= '9' && digits < 6) {
        out->index = out->index * 10 + (unsigned)(name.ptr[i] - '0');
        i++;
        digits++;
    }
    if (digits == 0) {
        return false;
    }
    out->has_index = true;
    if (i < name.len && name.ptr[i] == '*') {
        out->is_extended = true;
        i++;
    }
    return i == name.len && base_len > 0;
}

static int
span_compare_nocase(struct span a, struct span b)
{
    size_t n = a.len < b.len ? a.len : b.len;
    for (size_t i = 0; i < n; i++) {
        int ca = (unsigned char)a.ptr[i];
        int cb = (unsigned char)b.ptr[i];
        ca = ca >= 'A' && ca <= 'Z' ? ca + 32 : ca;
        cb = cb >= 'A' && cb <= 'Z' ? cb + 32 : cb;
        if (ca != cb) {
            return ca - cb;
        }
    }
    return a.len < b.len ? -1 : a.len > b.len ? 1 : 0;
}

/* Producer: name base plus an optional "*". */
static void
produce_2231_name(const void *arg, struct imap_quote_sink *sink)
{
    const struct group_2231 *g = arg;
    imap_quote_sink_put(sink, g->base.ptr, g->base.len);
    if (g->is_extended) {
        imap_quote_sink_put(sink, "*", 1);
    }
}

/* Producer: the group's values in index order, up to the first gap. */
static void
produce_2231_value(const void *arg, struct imap_quote_sink *sink)
{
    const struct group_2231 *g = arg;
    for (unsigned index = 0; index < g->count; index++) {
        bool is_found = false;
        for (size_t k = 0; k < g->count && !is_found; k++) {
            const struct param_2231 *p = &g->items[k];
            if (p->has_index && p->index == index && span_compare_nocase(p->base, g->base) == 0) {
                imap_rfc822_value_produce(&p->value, sink);
                is_found = true;
            }
        }
        if (!is_found) {
            break;
        }
    }
}

/* Writes the RFC 2231 parameters; returns how many entries it wrote. */
static size_t
params_2231_write(struct imap_out *out, struct span params, size_t star_count, size_t written,
                  unsigned flags)
{
    struct param_2231 items[PARAMS_2231_MAX];
    bool is_done[PARAMS_2231_MAX] = { false };
    size_t n = 0;
    size_t count = 0;
    bool is_raw = star_count > PARAMS_2231_MAX;
    size_t pos = 0;
    struct imap_rfc822_param param;
    while (imap_rfc822_param_next(params.ptr, params.len, &pos, &param)) {
        if (memchr(param.name.ptr, '*', param.name.len) == NULL) {
            continue;
        }
        if (is_raw) {
            imap_out_char(out, written + count == 0 ? '(' : ' ');
            count++;
            string_raw(out, param.name, flags);
            imap_out_char(out, ' ');
            imap_rfc822_value_write(out, &param.value, flags);
            continue;
        }
        ASSERT(n < PARAMS_2231_MAX);
        items[n].name = param.name;
        items[n].value = param.value;
        items[n].is_valid = param_2231_split(param.name, &items[n]);
        n++;
    }
    /* Smallest remaining base name first; each round marks at least one. */
    for (;;) {
        size_t best = n;
        for (size_t i = 0; i < n; i++) {
            if (!is_done[i] &&
                (best == n || span_compare_nocase(items[i].base, items[best].base) < 0)) {
                best = i;
            }
        }
        if (best == n) {
            break;
        }
        imap_out_char(out, written + count == 0 ? '(' : ' ');
        count++;
        const struct param_2231 *b = &items[best];
        if (!b->is_valid || !b->has_index) {
            is_done[best] = true;
            string_raw(out, b->name, flags);
            imap_out_char(out, ' ');
            imap_rfc822_value_write(out, &b->value, flags);
            continue;
        }
        struct group_2231 g = { .base = b->base, .items = items, .count = n };
        for (size_t i = 0; i < n; i++) {
            if (items[i].is_valid && items[i].has_index &&
                span_compare_nocase(items[i].base, b->base) == 0) {
                is_done[i] = true;
                if (items[i].index == 0) {
                    g.is_extended = items[i].is_extended;
                }
            }
        }
        imap_out_produced(out, produce_2231_name, &g, flags);
        imap_out_char(out, ' ');
        imap_out_produced(out, produce_2231_value, &g, flags);
    }
    return count;
}

/* SP disposition SP language SP location */
static void
extension_common_write(struct imap_out *out, const struct imap_mime_part *part, unsigned flags)
{
    imap_out_char(out, ' ');
    struct span d = part->disposition;
    if (d.ptr == NULL) {
        imap_out_cstr(out, "NIL");
    } else {
        size_t p = imap_rfc822_skip_cfws(d.ptr, d.len, 0);
        size_t end = imap_rfc822_token_end(d.ptr, d.len, p);
        imap_out_char(out, '(');
        string_raw(out, span_make(d.ptr + p, end - p), flags);
        imap_out_char(out, ' ');
        params_write(out, span_make(d.ptr + end, d.len - end), false, flags);
        imap_out_char(out, ')');
    }

    imap_out_char(out, ' ');
    struct span l = part->language;
    size_t count = 0;
    if (l.ptr != NULL) {
        size_t p = imap_rfc822_skip_cfws(l.ptr, l.len, 0);
        /* Tags separated by ',' and CFWS; each round consumes a byte. */
        while (p < l.len) {
            size_t end = imap_rfc822_token_end(l.ptr, l.len, p);
            if (end == p) {
                if (l.ptr[p] != ',') {
                    break;
                }
                p = imap_rfc822_skip_cfws(l.ptr, l.len, p + 1);
                continue;
            }
            imap_out_char(out, count == 0 ? '(' : ' ');
            count++;
            string_raw(out, span_make(l.ptr + p, end - p), flags);
            p = imap_rfc822_skip_cfws(l.ptr, l.len, end);
        }
    }
    imap_out_cstr(out, count == 0 ? "NIL" : ")");

    imap_out_char(out, ' ');
    nstring_nolf(out, part->location, flags);
}

static void
nstring_nolf(struct imap_out *out, struct span value, unsigned flags)
{
    struct imap_rfc822_value v = {
        .ptr = value.ptr, .len = value.len, .kind = IMAP_RFC822_VALUE_NOLF,
    };
    imap_rfc822_value_write(out, &v, flags);
}

static void
string_raw(struct imap_out *out, struct span value, unsigned flags)
{
    imap_out_string(out, value.len > 0 ? value.ptr : "", value.len, flags);
}
