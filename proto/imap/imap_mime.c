/*
 * proto/imap/imap_mime.c - one pass over a stored message that finds its
 * MIME parts (RFC 2045, RFC 2046) and their Content-* fields.
 *
 * Owns nothing: the part records are the caller's and every span borrows
 * from the message. Pure and reentrant, no allocation; runs wherever the
 * message bytes are (a worker, for large messages). The walk is iterative:
 * an explicit stack of open parts and one of active boundaries, each at
 * most IMAP_MIME_DEPTH_MAX deep, so hostile nesting costs no C stack.
 * Boundary lines match as Dovecot matches them: "--" then a prefix equal to
 * an active boundary (the longest one when several match), "--" after it
 * closes; anything after that on the line is ignored (RFC 2046 allows only
 * white space, real mail has more). The line break before a boundary line
 * belongs to the boundary. Each byte is looked at a bounded number of
 * times per nesting level (line scan, plus LF counting when a text or
 * message part closes).
 */
#include "proto/imap/imap_mime.h"

#include <assert.h>
#include <string.h>

#include "core/assertions.h"
#include "proto/imap/imap_rfc822.h"

static_assert(IMAP_MIME_PARTS_MAX < UINT32_MAX, "part indexes fit uint32_t");
static_assert(IMAP_MIME_DEPTH_MAX >= 2, "room for a multipart and a child");

struct mime_boundary {
    uint32_t    part; /* the multipart this boundary belongs to */
    struct span text;
};

struct mime_walk {
    const char              *msg;
    size_t                   len;
    struct imap_mime_part   *parts;
    size_t                   parts_cap;
    struct imap_mime_result *result;
    uint32_t                 open[IMAP_MIME_DEPTH_MAX + 1];
    size_t                   open_count;
    struct mime_boundary     bounds[IMAP_MIME_DEPTH_MAX];
    size_t                   bound_count;
};

struct boundary_match {
    size_t line_start;
    size_t next_line;
    size_t level; /* index into bounds */
    bool   is_close;
};

static uint32_t part_start(struct mime_walk *w, uint32_t parent, size_t offset);
static size_t header_end(struct mime_walk *w, size_t pos);
static void header_fields(struct mime_walk *w, struct imap_mime_part *part);
static void content_type(struct imap_mime_part *part, struct span value);
static bool boundary_find(const struct mime_walk *w, size_t pos, struct boundary_match *out);
static bool boundary_line(const struct mime_walk *w, size_t line, size_t line_end,
                          size_t *level_out, bool *is_close_out);
static void part_close(struct mime_walk *w, uint32_t index, size_t end);
static struct span first_token(struct span value);

int
imap_mime_parse(const char *msg, size_t len, struct imap_mime_part *parts, size_t parts_cap,
                struct imap_mime_result *result_out)
{
    ASSERT(parts != NULL);
    ASSERT(parts_cap >= 1);
    ASSERT(parts_cap <= IMAP_MIME_PARTS_MAX);
    ASSERT(result_out != NULL);
    if (len > 0) {
        ASSERT(msg != NULL);
    }
    memset(result_out, 0, sizeof(*result_out));
    struct mime_walk w = {
        .msg = msg, .len = len, .parts = parts, .parts_cap = parts_cap, .result = result_out,
    };

    uint32_t cur = part_start(&w, IMAP_MIME_NONE, 0);
    bool is_header_due = true;
    size_t pos = 0;
    /* Where the current scan began: the line break before a boundary line
     * belongs to it only when it lies inside the scanned bytes (right after
     * a closing boundary line it is that line's own end, as in Dovecot). */
    size_t scan_floor = 0;
    /* Each round either starts a part (at most parts_cap) or moves pos past
     * a boundary line, so the loop ends. */
    for (;;) {
        if (is_header_due) {
            struct imap_mime_part *part = &parts[cur];
            size_t end = header_end(&w, part->header_offset);
            part->header_size = end - part->header_offset;
            part->body_offset = end;
            header_fields(&w, part);
            is_header_due = false;
            pos = end;
            scan_floor = end;
            bool is_deep = part->depth + 1 > IMAP_MIME_DEPTH_MAX - 1;
            if ((part->flags & IMAP_MIME_IS_MULTIPART) != 0 && part->boundary.len > 0) {
                if (is_deep || w.bound_count == IMAP_MIME_DEPTH_MAX) {
                    result_out->is_truncated = true;
                } else {
                    w.bounds[w.bound_count++] = (struct mime_boundary){
                        .part = cur, .text = part->boundary,
                    };
                }
            } else if ((part->flags & IMAP_MIME_IS_MESSAGE) != 0) {
                if (is_deep || result_out->part_count == parts_cap) {
                    result_out->is_truncated = true;
                } else {
                    cur = part_start(&w, cur, end);
                    is_header_due = true;
                    continue;
                }
            }
        }
        struct boundary_match m;
        if (!boundary_find(&w, pos, &m)) {
            while (w.open_count > 0) {
                part_close(&w, w.open[--w.open_count], len);
            }
            break;
        }
        size_t end = m.line_start;
        if (end > scan_floor && msg[end - 1] == '\n') {
            end--;
            if (end > scan_floor && msg[end - 1] == '\r') {
                end--;
            }
        }
        uint32_t owner = w.bounds[m.level].part;
        while (w.open_count > 0 && w.open[w.open_count - 1] != owner) {
            part_close(&w, w.open[--w.open_count], end);
        }
        ASSERT(w.open_count > 0);
        w.bound_count = m.level + 1;
        pos = m.next_line;
        scan_floor = pos;
        if (m.is_close) {
            w.bound_count = m.level; /* the rest is epilogue */
            continue;
        }
        if (result_out->part_count == parts_cap) {
            result_out->is_truncated = true;
            continue; /* the child's bytes stay unparsed body of its parent */
        }
        cur = part_start(&w, owner, pos);
        is_header_due = true;
    }
    return 0;
}

/* A new part record at offset, linked under parent and pushed as open. */
static uint32_t
part_start(struct mime_walk *w, uint32_t parent, size_t offset)
{
    ASSERT(w->result->part_count < w->parts_cap);
    ASSERT(w->open_count <= IMAP_MIME_DEPTH_MAX);
    uint32_t index = (uint32_t)w->result->part_count++;
    struct imap_mime_part *part = &w->parts[index];
    memset(part, 0, sizeof(*part));
    part->parent = parent;
    part->first_child = IMAP_MIME_NONE;
    part->next_sibling = IMAP_MIME_NONE;
    part->last_child = IMAP_MIME_NONE;
    part->header_offset = offset;
    part->body_offset = offset;
    if (parent != IMAP_MIME_NONE) {
        struct imap_mime_part *up = &w->parts[parent];
        part->depth = up->depth + 1;
        if (up->last_child == IMAP_MIME_NONE) {
            up->first_child = index;
        } else {
            w->parts[up->last_child].next_sibling = index;
        }
        up->last_child = index;
        if ((up->flags & IMAP_MIME_IS_DIGEST) != 0) {
            part->flags |= IMAP_MIME_IS_DEFAULT_RFC822;
        }
    }
    w->open[w->open_count++] = index;
    return index;
}

/* End of the header block that starts at pos: after the empty line, at a
 * boundary line of an enclosing multipart (the part then has an empty
 * body), at the end of the message, or at the header bound. */
static size_t
header_end(struct mime_walk *w, size_t pos)
{
    size_t start = pos;
    while (pos < w->len) {
        if (pos - start >= IMAP_MIME_HEADER_BYTES_MAX) {
            w->result->is_header_truncated = true;
            return pos;
        }
        const char *lf = memchr(w->msg + pos, '\n', w->len - pos);
        size_t line_end = lf == NULL ? w->len : (size_t)(lf - w->msg);
        size_t next = lf == NULL ? w->len : line_end + 1;
        size_t content_end = line_end;
        if (content_end > pos && w->msg[content_end - 1] == '\r') {
            content_end--;
        }
        if (content_end == pos) {
            return next;
        }
        size_t level = 0;
        bool is_close = false;
        if (boundary_line(w, pos, content_end, &level, &is_close)) {
            return pos;
        }
        pos = next;
    }
    return w->len;
}

static void
header_fields(struct mime_walk *w, struct imap_mime_part *part)
{
    const char *hdr = w->msg + part->header_offset;
    size_t pos = 0;
    struct imap_rfc822_field field;
    bool is_type_seen = false;
    while (imap_rfc822_header_next(hdr, part->header_size, &pos, &field)) {
        struct span n = field.name;
        if (n.len < 8 || !span_equals_nocase(span_make(n.ptr, 8), "content-")) {
            continue;
        }
        struct span rest = span_make(n.ptr + 8, n.len - 8);
        /* The first of each field counts, as in Dovecot. */
        if (span_equals_nocase(rest, "type")) {
            if (!is_type_seen) {
                is_type_seen = true;
                content_type(part, field.value);
            }
        } else if (span_equals_nocase(rest, "transfer-encoding")) {
            if (part->encoding.ptr == NULL) {
                part->encoding = first_token(field.value);
            }
        } else if (span_equals_nocase(rest, "id")) {
            if (part->id.ptr == NULL) {
                part->id = field.value;
            }
        } else if (span_equals_nocase(rest, "description")) {
            if (part->description.ptr == NULL) {
                part->description = field.value;
            }
        } else if (span_equals_nocase(rest, "disposition")) {
            if (part->disposition.ptr == NULL) {
                part->disposition = field.value;
            }
        } else if (span_equals_nocase(rest, "language")) {
            if (part->language.ptr == NULL) {
                part->language = field.value;
            }
        } else if (span_equals_nocase(rest, "location")) {
            if (part->location.ptr == NULL) {
                part->location = field.value;
            }
        } else if (span_equals_nocase(rest, "md5")) {
            if (part->md5.ptr == NULL) {
                part->md5 = field.value;
            }
        }
    }
    if ((part->flags & IMAP_MIME_HAS_TYPE) == 0) {
        /* RFC 2045 section 5.2 and RFC 2046 section 5.1.5 defaults. */
        if ((part->flags & IMAP_MIME_IS_DEFAULT_RFC822) != 0) {
            part->flags |= IMAP_MIME_IS_MESSAGE;
        } else {
            part->flags |= IMAP_MIME_IS_TEXT;
        }
    }
}

/* type "/" subtype *(";" parameter), CFWS allowed between tokens. A value
 * without a type or subtype token is ignored (the part keeps the default). */
static void
content_type(struct imap_mime_part *part, struct span value)
{
    const char *s = value.ptr;
    size_t len = value.len;
    size_t p = imap_rfc822_skip_cfws(s, len, 0);
    size_t type_start = p;
    p = imap_rfc822_token_end(s, len, p);
    size_t type_end = p;
    p = imap_rfc822_skip_cfws(s, len, p);
    if (type_end == type_start || p >= len || s[p] != '/') {
        return;
    }
    p = imap_rfc822_skip_cfws(s, len, p + 1);
    size_t sub_start = p;
    p = imap_rfc822_token_end(s, len, p);
    if (p == sub_start) {
        return;
    }
    part->type = span_make(s + type_start, type_end - type_start);
    part->subtype = span_make(s + sub_start, p - sub_start);
    part->params = span_make(s + p, len - p);
    part->flags |= IMAP_MIME_HAS_TYPE;
    if (span_equals_nocase(part->type, "multipart")) {
        part->flags |= IMAP_MIME_IS_MULTIPART;
        if (span_equals_nocase(part->subtype, "digest")) {
            part->flags |= IMAP_MIME_IS_DIGEST;
        }
        size_t pos = 0;
        struct imap_rfc822_param param;
        while (imap_rfc822_param_next(part->params.ptr, part->params.len, &pos, &param)) {
            if (span_equals_nocase(param.name, "boundary")) {
                part->boundary = span_make(param.value.ptr, param.value.len);
                break;
            }
        }
    } else if (span_equals_nocase(part->type, "message") &&
               span_equals_nocase(part->subtype, "rfc822")) {
        part->flags |= IMAP_MIME_IS_MESSAGE;
    } else if (span_equals_nocase(part->type, "text")) {
        part->flags |= IMAP_MIME_IS_TEXT;
    }
}

/* The next boundary line at or after pos (pos is a line start). */
static bool
boundary_find(const struct mime_walk *w, size_t pos, struct boundary_match *out)
{
    if (w->bound_count == 0) {
        return false;
    }
    while (pos < w->len) {
        const char *lf = memchr(w->msg + pos, '\n', w->len - pos);
        size_t line_end = lf == NULL ? w->len : (size_t)(lf - w->msg);
        size_t next = lf == NULL ? w->len : line_end + 1;
        if (boundary_line(w, pos, line_end, &out->level, &out->is_close)) {
            out->line_start = pos;
            out->next_line = next;
            return true;
        }
        pos = next;
    }
    return false;
}

static bool
boundary_line(const struct mime_walk *w, size_t line, size_t line_end, size_t *level_out,
              bool *is_close_out)
{
    size_t n = line_end - line;
    const char *s = w->msg + line;
    if (n < 2 || s[0] != '-' || s[1] != '-' || w->bound_count == 0) {
        return false;
    }
    size_t best_len = 0;
    bool is_found = false;
    /* Newest first, so a boundary reused by a nested part means the inner. */
    for (size_t i = w->bound_count; i-- > 0;) {
        const struct span *b = &w->bounds[i].text;
        if (b->len <= n - 2 && memcmp(s + 2, b->ptr, b->len) == 0 &&
            (!is_found || b->len > best_len)) {
            is_found = true;
            best_len = b->len;
            *level_out = i;
        }
    }
    if (!is_found) {
        return false;
    }
    *is_close_out = n - 2 - best_len >= 2 && s[2 + best_len] == '-' && s[3 + best_len] == '-';
    return true;
}

static void
part_close(struct mime_walk *w, uint32_t index, size_t end)
{
    struct imap_mime_part *part = &w->parts[index];
    if (end < part->body_offset) {
        end = part->body_offset;
    }
    part->body_size = end - part->body_offset;
    if ((part->flags & (IMAP_MIME_IS_TEXT | IMAP_MIME_IS_MESSAGE)) != 0) {
        size_t lines = 0;
        const char *p = w->msg + part->body_offset;
        const char *stop = w->msg + end;
        while (p < stop && (p = memchr(p, '\n', (size_t)(stop - p))) != NULL) {
            lines++;
            p++;
        }
        part->body_lines = lines;
    }
}

/* First RFC 2045 token of a value, comments skipped; an empty span (not
 * NULL) when there is none. */
static struct span
first_token(struct span value)
{
    size_t p = imap_rfc822_skip_cfws(value.ptr, value.len, 0);
    size_t end = imap_rfc822_token_end(value.ptr, value.len, p);
    return span_make(value.ptr + p, end - p);
}
