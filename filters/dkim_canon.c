/*
 * filters/dkim_canon.c - DKIM canonicalization of header fields and of the
 * body (RFC 6376 3.4.1 to 3.4.5; see dkim_canon.h).
 *
 * The body canonicalizer is a byte-at-a-time state machine with a few
 * bytes of state: empty lines are counted, not stored, and written only
 * when content follows them, so a body of a million empty lines costs no
 * memory. Output is gathered in a small buffer and handed to the callback
 * in pieces, clipped at l=. Runs on any thread; no allocation.
 */
#include "filters/dkim_canon.h"

#include <errno.h>
#include <string.h>

#include "core/ascii.h"
#include "core/assertions.h"

static void body_put(struct dkim_body_canon *bc, const char *bytes, size_t len);
static void body_flush(struct dkim_body_canon *bc);
static void body_content(struct dkim_body_canon *bc, char c);
static void body_line_end(struct dkim_body_canon *bc);

int
dkim_canon_header(enum dkim_canon canon, const char *field, size_t len, char *out, size_t out_bytes,
                  size_t *len_out)
{
    ASSERT(field != NULL || len == 0);
    ASSERT(out != NULL);
    if (canon == DKIM_CANON_SIMPLE) {
        if (len > out_bytes) {
            return -ENOSPC;
        }
        memcpy(out, field, len);
        *len_out = len;
        return 0;
    }
    ASSERT(canon == DKIM_CANON_RELAXED);
    /* The name: lower case, WSP before the colon deleted. */
    const char *colon = memchr(field, ':', len);
    size_t name_end = colon != NULL ? (size_t)(colon - field) : len;
    size_t n = 0;
    size_t name_len = name_end;
    while (name_len > 0 && (ascii_is_blank(field[name_len - 1]) || field[name_len - 1] == '\r' ||
                            field[name_len - 1] == '\n')) {
        name_len--;
    }
    if (name_len + (colon != NULL ? 1 : 0) > out_bytes) {
        return -ENOSPC;
    }
    for (size_t i = 0; i < name_len; i++) {
        out[n++] = (char)ascii_lower((unsigned char)field[i]);
    }
    if (colon == NULL) {
        *len_out = n;
        return 0;
    }
    out[n++] = ':';
    /* The value: unfolded (CRLF deleted), WSP runs to one SP, WSP at its
     * start and end deleted. */
    bool has_wsp = false;
    bool has_content = false;
    for (size_t i = name_end + 1; i < len; i++) {
        char c = field[i];
        if (c == '\r' && i + 1 < len && field[i + 1] == '\n') {
            i++;
            continue;
        }
        if (ascii_is_blank(c)) {
            has_wsp = true;
            continue;
        }
        if (has_wsp && has_content) {
            if (n >= out_bytes) {
                return -ENOSPC;
            }
            out[n++] = ' ';
        }
        has_wsp = false;
        if (n >= out_bytes) {
            return -ENOSPC;
        }
        out[n++] = c;
        has_content = true;
    }
    *len_out = n;
    return 0;
}

void
dkim_body_canon_init(struct dkim_body_canon *bc, enum dkim_canon canon, bool has_limit,
                     uint64_t limit_bytes, dkim_canon_emit_fn emit, void *emit_arg)
{
    ASSERT(bc != NULL);
    ASSERT(emit != NULL);
    ASSERT(canon == DKIM_CANON_SIMPLE || canon == DKIM_CANON_RELAXED);
    memset(bc, 0, sizeof(*bc));
    bc->canon = canon;
    bc->emit = emit;
    bc->emit_arg = emit_arg;
    bc->has_limit = has_limit;
    bc->limit_bytes = has_limit ? limit_bytes : 0;
}

void
dkim_body_canon_feed(struct dkim_body_canon *bc, const char *bytes, size_t len)
{
    ASSERT(!bc->is_finished);
    bool is_relaxed = bc->canon == DKIM_CANON_RELAXED;
    for (size_t i = 0; i < len; i++) {
        /* Most of a body is runs of plain bytes in the middle of a line:
         * with nothing held back, such a run goes out in one piece. */
        if (!bc->has_cr && bc->empty_lines == 0 && !bc->has_wsp) {
            size_t end = i;
            while (end < len && bytes[end] != '\r') {
                if (is_relaxed && ascii_is_blank(bytes[end])) {
                    /* One space between words is already canonical. */
                    if (bytes[end] != ' ' || end + 1 >= len || end == i ||
                        ascii_is_blank(bytes[end + 1]) || bytes[end + 1] == '\r') {
                        break;
                    }
                }
                end++;
            }
            if (end > i) {
                body_put(bc, bytes + i, end - i);
                bc->is_in_line = true;
                i = end;
                if (i == len) {
                    break;
                }
            }
        }
        char c = bytes[i];
        if (bc->has_cr) {
            bc->has_cr = false;
            if (c == '\n') {
                body_line_end(bc);
                continue;
            }
            body_content(bc, '\r'); /* a bare CR is content */
        }
        if (c == '\r') {
            bc->has_cr = true;
        } else if (bc->canon == DKIM_CANON_RELAXED && ascii_is_blank(c)) {
            bc->has_wsp = true;
        } else {
            body_content(bc, c);
        }
    }
}

void
dkim_body_canon_finish(struct dkim_body_canon *bc)
{
    ASSERT(!bc->is_finished);
    if (bc->has_cr) {
        bc->has_cr = false;
        body_content(bc, '\r');
    }
    /* Trailing WSP of an unterminated last line goes (relaxed); the line
     * gets its CRLF; the empty lines held back are dropped. */
    bc->has_wsp = false;
    if (bc->is_in_line) {
        body_put(bc, "\r\n", 2);
        bc->is_in_line = false;
    } else if (bc->canonical_bytes == 0 && bc->canon == DKIM_CANON_SIMPLE) {
        /* 3.4.3: an empty body is one CRLF in "simple"; relaxed keeps it
         * empty (3.4.4 as corrected by RFC 6376). */
        body_put(bc, "\r\n", 2);
    }
    bc->empty_lines = 0;
    body_flush(bc);
    bc->is_finished = true;
}

bool
dkim_body_canon_is_full(const struct dkim_body_canon *bc)
{
    return bc->has_limit && bc->emitted_bytes + bc->buffered >= bc->limit_bytes;
}

/* Content byte of a line: written after the empty lines and the WSP run
 * that precede it. */
static void
body_content(struct dkim_body_canon *bc, char c)
{
    while (bc->empty_lines > 0) {
        body_put(bc, "\r\n", 2);
        bc->empty_lines--;
    }
    if (bc->has_wsp) {
        body_put(bc, " ", 1);
        bc->has_wsp = false;
    }
    body_put(bc, &c, 1);
    bc->is_in_line = true;
}

static void
body_line_end(struct dkim_body_canon *bc)
{
    bc->has_wsp = false; /* relaxed: WSP at the end of a line is deleted */
    if (bc->is_in_line) {
        body_put(bc, "\r\n", 2);
        bc->is_in_line = false;
    } else {
        bc->empty_lines++;
    }
}

static void
body_put(struct dkim_body_canon *bc, const char *bytes, size_t len)
{
    bc->canonical_bytes += len;
    size_t at = 0;
    while (at < len) {
        size_t n = len - at;
        if (bc->has_limit) {
            uint64_t used = bc->emitted_bytes + bc->buffered;
            if (used >= bc->limit_bytes) {
                return; /* past l=: counted, not hashed */
            }
            if (n > bc->limit_bytes - used) {
                n = (size_t)(bc->limit_bytes - used);
            }
        }
        if (bc->buffered == sizeof(bc->buf)) {
            body_flush(bc);
        }
        size_t room = sizeof(bc->buf) - bc->buffered;
        if (n > room) {
            n = room;
        }
        memcpy(bc->buf + bc->buffered, bytes + at, n);
        bc->buffered += n;
        at += n;
    }
}

static void
body_flush(struct dkim_body_canon *bc)
{
    if (bc->buffered > 0) {
        bc->emit(bc->emit_arg, bc->buf, bc->buffered);
        bc->emitted_bytes += bc->buffered;
        bc->buffered = 0;
    }
}
