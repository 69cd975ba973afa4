/*
 * filters/dkim_canon.h - DKIM canonicalization (RFC 6376 3.4): the
 * "simple" and "relaxed" forms of one header field, and a streaming body
 * canonicalizer that takes the body in chunks of any size and hands the
 * canonical bytes to a callback, up to an optional length (l=).
 *
 * Lines end with CRLF only: a bare CR or a bare LF is an ordinary byte of
 * the line (messages are stored with CRLF line ends; anything else is the
 * sender's and is hashed as it is). No allocation, no I/O; any thread.
 */
#ifndef TOASTER_FILTERS_DKIM_CANON_H
#define TOASTER_FILTERS_DKIM_CANON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum dkim_canon {
    DKIM_CANON_SIMPLE,
    DKIM_CANON_RELAXED,
};

/* The canonical form of one header field: field is the whole field (name,
 * colon, value, folding) without the CRLF that ends it; the result has no
 * final CRLF either (the caller adds it, except for the DKIM-Signature
 * being signed or verified). Returns 0 and sets *len_out, or -ENOSPC when
 * out_bytes is too small (the result is never longer than the field). */
int dkim_canon_header(enum dkim_canon canon, const char *field, size_t len, char *out,
                      size_t out_bytes, size_t *len_out);

/* Receives canonical body bytes, in order. */
typedef void (*dkim_canon_emit_fn)(void *arg, const char *bytes, size_t len);

struct dkim_body_canon {
    enum dkim_canon canon;
    dkim_canon_emit_fn emit;
    void *emit_arg;
    bool has_limit;
    uint64_t limit_bytes;     /* l=: bytes handed to emit at most */
    uint64_t emitted_bytes;   /* handed to emit so far */
    uint64_t canonical_bytes; /* length of the whole canonical body so far */
    uint64_t empty_lines;     /* CRLFs held back: dropped if the body ends here */
    bool is_in_line;          /* the current line has content */
    bool has_cr;              /* the last byte was a CR, its meaning not yet known */
    bool has_wsp;             /* relaxed: a run of WSP not yet written */
    bool is_finished;
    uint32_t buffered; /* bytes in buf */
    char buf[512];     /* output gathered before emit */
};

/* Start. limit_bytes is used only when has_limit. */
void dkim_body_canon_init(struct dkim_body_canon *bc, enum dkim_canon canon, bool has_limit,
                          uint64_t limit_bytes, dkim_canon_emit_fn emit, void *emit_arg);
/* Feed the next bytes of the body (after the empty line ending the header). */
void dkim_body_canon_feed(struct dkim_body_canon *bc, const char *bytes, size_t len);
/* The body has ended: applies the end-of-body rules and flushes. After it,
 * canonical_bytes is the length of the whole canonical body (for l=). */
void dkim_body_canon_finish(struct dkim_body_canon *bc);
/* True when a limit is set and reached: more input changes no hash. */
bool dkim_body_canon_is_full(const struct dkim_body_canon *bc);

#endif
