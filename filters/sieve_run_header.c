/*
 * filters/sieve_run_header.c - the header view of the Sieve interpreter:
 * the header block split into fields that "header", "address", "exists",
 * "date" and the rest read (names case-insensitive, values unfolded and
 * trimmed, RFC 2047 words decoded where RFC 5228 2.7.2 says), that
 * addheader/deleteheader (RFC 5293) change and that :index/:last
 * (RFC 5260 section 6) count in; and RFC 5322 address lists.
 * Received and Auto-Submitted cannot be added or deleted (Pigeonhole's
 * protected fields: the attempt is ignored). The edited block is rendered
 * into the result once per run.
 * Bounds: SIEVE_RUN_HEADER_BYTES_MAX for the view (adding past it is a
 * runtime error); fields at most one per line plus one per addheader run.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/ascii.h"
#include "core/assertions.h"
#include "core/base64.h"
#include "filters/sieve_run_internal.h"
#include "filters/sieve_validate.h"
#include "proto/imap/imap_text.h"

static bool
is_wsp(char c)
{
    return c == ' ' || c == '\t';
}

/* ---- the view ---- */

static int
fields_reserve(struct run *run, size_t count)
{
    if (count <= run->field_cap) {
        return 0;
    }
    size_t cap = run->field_cap < 16 ? 16 : run->field_cap * 2;
    while (cap < count) {
        cap *= 2;
    }
    struct run_field *p = realloc(run->fields, cap * sizeof(*p));
    if (p == NULL) {
        return -ENOMEM;
    }
    run->fields = p;
    run->field_cap = cap;
    return 0;
}

static int
scratch_reserve(struct run *run, size_t bytes)
{
    if (bytes <= run->scratch_cap) {
        return 0;
    }
    char *a = malloc(bytes);
    char *b = bytes <= SIZE_MAX / SIEVE_RUN_DECODE_GROWTH ? malloc(bytes * SIEVE_RUN_DECODE_GROWTH)
                                                         : NULL;
    if (a == NULL || b == NULL) {
        free(a);
        free(b);
        return -ENOMEM;
    }
    free(run->scratch);
    free(run->scratch_addr);
    run->scratch = a;
    run->scratch_addr = b;
    run->scratch_cap = bytes;
    return 0;
}

int
run_header_load(struct run *run, const char *h, size_t len)
{
    run->field_count = 0;
    run->header_bytes = 0;
    size_t longest = 0;
    for (size_t i = 0; i < len;) {
        size_t start = i;
        size_t colon = SIZE_MAX;
        size_t j = i;
        while (j < len && h[j] != '\n') {
            if (colon == SIZE_MAX && h[j] == ':') {
                colon = j;
            }
            j++;
        }
        /* A field goes on over lines starting with white space. */
        size_t end = j;
        while (end < len && end + 1 < len && is_wsp(h[end + 1])) {
            end++;
            while (end < len && h[end] != '\n') {
                end++;
            }
        }
        i = end < len ? end + 1 : len;
        if (i - start <= 2 && (h[start] == '\r' || h[start] == '\n')) {
            continue; /* an empty line cut short by header_len: no field */
        }
        int rc = fields_reserve(run, run->field_count + 1);
        if (rc < 0) {
            return rc;
        }
        struct run_field *f = &run->fields[run->field_count++];
        f->raw = h + start;
        f->raw_len = i - start;
        f->is_deleted = false;
        f->name_len = SIZE_MAX;
        if (colon != SIZE_MAX && colon > start) {
            size_t nlen = colon - start;
            while (nlen > 0 && is_wsp(h[start + nlen - 1])) {
                nlen--;
            }
            f->name_len = nlen > 0 ? nlen : SIZE_MAX;
        }
        run->header_bytes += f->raw_len;
        if (f->raw_len > longest) {
            longest = f->raw_len;
        }
    }
    return scratch_reserve(run, longest + 1);
}

void
run_header_free(struct run *run)
{
    free(run->fields);
    free(run->scratch);
    free(run->scratch_addr);
    run->fields = NULL;
    run->scratch = NULL;
    run->scratch_addr = NULL;
    run->field_count = 0;
    run->field_cap = 0;
    run->scratch_cap = 0;
    sieve_arena_free(&run->edits);
}

static bool
field_is(const struct run_field *f, const char *name, size_t name_len)
{
    if (f->is_deleted || f->name_len != name_len) {
        return false;
    }
    for (size_t k = 0; k < name_len; k++) {
        if (run_lower((unsigned char)f->raw[k]) != run_lower((unsigned char)name[k])) {
            return false;
        }
    }
    return true;
}

size_t
run_field_next(struct run *run, size_t from, const char *name, size_t name_len)
{
    for (size_t i = from; i < run->field_count; i++) {
        run->work++; /* a field looked at: scans are bounded by the match work */
        if (field_is(&run->fields[i], name, name_len)) {
            return i;
        }
    }
    return SIZE_MAX;
}

/* The field :index (and :last) of node selects among name's fields, or
 * SIZE_MAX when there is none that far. */
size_t
run_field_pick(struct run *run, const struct sieve_node *node, const char *name, size_t name_len)
{
    const struct sieve_arg *index = sieve_node_tag(node, SIEVE_TAG_INDEX);
    ASSERT(index != NULL);
    ASSERT(index->param != NULL);
    uint64_t want = index->param->number;
    bool is_last = sieve_node_tag(node, SIEVE_TAG_LAST) != NULL;
    uint64_t seen = 0;
    run->work += run->field_count;
    if (!is_last) {
        for (size_t i = 0; i < run->field_count; i++) {
            if (field_is(&run->fields[i], name, name_len) && ++seen == want) {
                return i;
            }
        }
        return SIZE_MAX;
    }
    for (size_t i = run->field_count; i > 0; i--) {
        if (field_is(&run->fields[i - 1], name, name_len) && ++seen == want) {
            return i - 1;
        }
    }
    return SIZE_MAX;
}

/* Field's value unfolded (CR and LF of folds removed) and trimmed into
 * run->scratch, NUL-terminated; returns its length. */
size_t
run_field_value(struct run *run, size_t field)
{
    const struct run_field *f = &run->fields[field];
    ASSERT(f->name_len != SIZE_MAX);
    ASSERT(f->raw_len < run->scratch_cap);
    const char *colon = memchr(f->raw, ':', f->raw_len);
    ASSERT(colon != NULL);
    size_t out = 0;
    for (const char *p = colon + 1; p < f->raw + f->raw_len; p++) {
        if (*p != '\r' && *p != '\n') {
            run->scratch[out++] = *p;
        }
    }
    size_t start = 0;
    while (start < out && is_wsp(run->scratch[start])) {
        start++;
    }
    while (out > start && is_wsp(run->scratch[out - 1])) {
        out--;
    }
    memmove(run->scratch, run->scratch + start, out - start);
    run->scratch[out - start] = '\0';
    run->work += f->raw_len;
    return out - start;
}

/* ---- RFC 2047 encoded words (header test values) ---- */

/* in[0..len) decoded to UTF-8 into run->scratch_addr (RFC 5228 2.7.2:
 * header values are matched decoded): encoded words in any charset iconv
 * knows, as IMAP SEARCH decodes them. Returns the length. */
size_t
run_decode_2047(struct run *run, const char *in, size_t len)
{
    ASSERT(len < run->scratch_cap);
    return imap_text_decode_header(in, len, run->scratch_addr,
                                   run->scratch_cap * SIEVE_RUN_DECODE_GROWTH);
}

/* ---- addresses (RFC 5322 3.4, leniently) ---- */

/* The next address of the list value[0..len) from *pos into out (its
 * addr-spec with comments, folding white space and quotes removed).
 * Returns true with *out_len, or false at the end. Groups give their
 * members; an empty group gives nothing. */
bool
run_address_next(const char *value, size_t len, size_t *pos, char *out, size_t *out_len)
{
    size_t i = *pos;
    while (i < len) {
        size_t n = 0;
        bool in_angle = false;
        bool angle_done = false;
        bool in_quote = false;
        size_t comment = 0;
        for (; i < len; i++) {
            char c = value[i];
            if (in_quote) {
                if (c == '\\' && i + 1 < len) {
                    i++;
                    c = value[i];
                } else if (c == '"') {
                    in_quote = false;
                    continue;
                }
                if (!angle_done) {
                    out[n++] = c;
                }
                continue;
            }
            if (comment > 0) {
                if (c == '\\' && i + 1 < len) {
                    i++;
                } else if (c == '(') {
                    comment++;
                } else if (c == ')') {
                    comment--;
                }
                continue;
            }
            if (c == '(') {
                comment = 1;
            } else if (c == '"') {
                in_quote = true;
            } else if (c == '<' && !in_angle) {
                in_angle = true;
                angle_done = false;
                n = 0;
            } else if (c == '>' && in_angle) {
                in_angle = false;
                angle_done = true;
            } else if (c == ':') {
                n = 0; /* a group's name, or a route inside <> */
                if (!in_angle) {
                    angle_done = false;
                }
            } else if ((c == ',' && !in_angle) || c == ';') {
                i++;
                break;
            } else if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
                continue;
            } else if (!angle_done) {
                if (c == ',' && in_angle) {
                    n = 0; /* route list "@a,@b:" */
                } else {
                    out[n++] = c;
                }
            }
        }
        if (n > 0) {
            out[n] = '\0';
            *out_len = n;
            *pos = i;
            return true;
        }
    }
    *pos = len;
    return false;
}

/* The address part of addr[0..len) asked: sets *part and *part_len;
 * false when the address has none (no '@' for :localpart/:domain/:user,
 * no "+" separator for :detail, RFC 5233 section 4). The user is the
 * local part up to the first "+", the detail what follows it. */
bool
run_address_part(enum sieve_address_part which, const char *addr, size_t len,
                 const char **part, size_t *part_len)
{
    const char *at = NULL;
    for (size_t i = len; i > 0; i--) {
        if (addr[i - 1] == '@') {
            at = addr + i - 1;
            break;
        }
    }
    if (which == SIEVE_ADDR_ALL) {
        *part = addr;
        *part_len = len;
        return true;
    }
    if (at == NULL) {
        return false;
    }
    if (which == SIEVE_ADDR_LOCALPART) {
        *part = addr;
        *part_len = (size_t)(at - addr);
        return true;
    }
    if (which == SIEVE_ADDR_DOMAIN) {
        *part = at + 1;
        *part_len = len - (size_t)(at - addr) - 1;
        return true;
    }
    size_t local_len = (size_t)(at - addr);
    const char *plus = memchr(addr, '+', local_len);
    if (which == SIEVE_ADDR_USER) {
        *part = addr;
        *part_len = plus != NULL ? (size_t)(plus - addr) : local_len;
        return true;
    }
    if (which == SIEVE_ADDR_DETAIL && plus != NULL) {
        *part = plus + 1;
        *part_len = local_len - (size_t)(plus - addr) - 1;
        return true;
    }
    return false;
}


/* ---- editheader (RFC 5293) ---- */

/* Pigeonhole's default sieve_editheader_protected: these fields carry
 * the message's trace and loop protection. */
static bool
is_protected(const char *name, size_t len)
{
    return run_ascii_iequal(name, len, "received") || run_ascii_iequal(name, len, "auto-submitted");
}

/* A value may hold folds (CRLF followed by white space) but no other
 * line break and no NUL (RFC 5293 section 5). */
static bool
is_field_value(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '\0') {
            return false;
        }
        if (s[i] == '\r' || s[i] == '\n') {
            size_t j = i;
            if (s[j] == '\r') {
                j++;
            }
            if (j >= len || s[j] != '\n' || j + 1 >= len || !is_wsp(s[j + 1])) {
                return false;
            }
            i = j;
        }
    }
    return true;
}

/* A value with bytes past US-ASCII becomes RFC 2047 encoded words
 * (UTF-8, base64, at most 45 bytes of text each so a word stays under
 * 75 characters, split between characters, folded onto lines of their
 * own), as RFC 5293 section 4 asks; header tests decode them back. */
static int
encode_8bit(struct run *run, struct rstr *value, uint32_t line)
{
    bool is_8bit = false;
    for (size_t i = 0; i < value->len && !is_8bit; i++) {
        is_8bit = (unsigned char)value->text[i] >= 0x80;
    }
    if (!is_8bit) {
        return 0;
    }
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t words = value->len / 40 + 1;
    char *out = sieve_arena_alloc(&run->tmp, value->len * 2 + words * 16 + 1);
    if (out == NULL) {
        return run_fail(run, run->tmp.is_full ? -E2BIG : -ENOMEM, line,
                        "no room for an encoded header value");
    }
    size_t o = 0;
    for (size_t i = 0; i < value->len;) {
        size_t n = 0;
        while (i + n < value->len) {
            size_t c = run_utf8_char_len(value->text + i + n, value->len - i - n);
            if (n + c > 45) {
                break;
            }
            n += c;
        }
        if (o > 0) {
            memcpy(out + o, "\r\n ", 3);
            o += 3;
        }
        memcpy(out + o, "=?UTF-8?B?", 10);
        o += 10;
        const unsigned char *p = (const unsigned char *)value->text + i;
        for (size_t k = 0; k < n; k += 3) {
            uint32_t v = (uint32_t)p[k] << 16;
            if (k + 1 < n) {
                v |= (uint32_t)p[k + 1] << 8;
            }
            if (k + 2 < n) {
                v |= p[k + 2];
            }
            out[o++] = b64[(v >> 18) & 63];
            out[o++] = b64[(v >> 12) & 63];
            out[o++] = k + 1 < n ? b64[(v >> 6) & 63] : '=';
            out[o++] = k + 2 < n ? b64[v & 63] : '=';
        }
        memcpy(out + o, "?=", 2);
        o += 2;
        i += n;
    }
    value->text = out;
    value->len = o;
    return 0;
}

int
run_cmd_addheader(struct run *run, const struct sieve_node *cmd)
{
    struct rstr name;
    struct rstr value;
    int rc = run_expand(run, &cmd->positional[0]->strings[0], &name);
    if (rc == 0) {
        rc = run_expand(run, &cmd->positional[1]->strings[0], &value);
    }
    if (rc < 0) {
        return rc;
    }
    if (!sieve_field_name_valid(name.text, name.len)) {
        return run_fail(run, -EINVAL, cmd->line, "addheader: invalid field name");
    }
    if (!is_field_value(value.text, value.len)) {
        return run_fail(run, -EINVAL, cmd->line, "addheader: invalid field value");
    }
    if (value.len > SIEVE_RUN_ADDHEADER_BYTES_MAX) {
        return run_fail(run, -E2BIG, cmd->line, "addheader: value over %u bytes",
                        (unsigned)SIEVE_RUN_ADDHEADER_BYTES_MAX);
    }
    if (is_protected(name.text, name.len)) {
        return 0; /* ignored, as Pigeonhole does */
    }
    rc = encode_8bit(run, &value, cmd->line);
    if (rc < 0) {
        return rc;
    }
    size_t raw_len = name.len + 2 + value.len + 2;
    if (run->header_bytes + raw_len > SIEVE_RUN_HEADER_BYTES_MAX) {
        return run_fail(run, -E2BIG, cmd->line, "addheader: header block over %u bytes",
                        (unsigned)SIEVE_RUN_HEADER_BYTES_MAX);
    }
    char *raw = sieve_arena_alloc(&run->edits, raw_len + 1);
    if (raw == NULL) {
        return run_fail(run, -ENOMEM, cmd->line, "out of memory");
    }
    memcpy(raw, name.text, name.len);
    memcpy(raw + name.len, ": ", 2);
    memcpy(raw + name.len + 2, value.text, value.len);
    memcpy(raw + name.len + 2 + value.len, "\r\n", 2);
    rc = fields_reserve(run, run->field_count + 1);
    if (rc == 0) {
        rc = scratch_reserve(run, raw_len + 1);
    }
    if (rc < 0) {
        return run_fail(run, rc, cmd->line, "out of memory");
    }
    struct run_field f = {.raw = raw, .raw_len = raw_len, .name_len = name.len};
    if (sieve_node_tag(cmd, SIEVE_TAG_LAST) != NULL) {
        run->fields[run->field_count++] = f;
    } else {
        memmove(run->fields + 1, run->fields, run->field_count * sizeof(*run->fields));
        run->fields[0] = f;
        run->field_count++;
    }
    run->header_bytes += raw_len;
    run->is_header_edited = true;
    return 0;
}

int
run_cmd_deleteheader(struct run *run, const struct sieve_node *cmd)
{
    struct rstr name;
    int rc = run_expand(run, &cmd->positional[0]->strings[0], &name);
    if (rc < 0) {
        return rc;
    }
    if (!sieve_field_name_valid(name.text, name.len)) {
        return run_fail(run, -EINVAL, cmd->line, "deleteheader: invalid field name");
    }
    if (is_protected(name.text, name.len)) {
        return 0; /* ignored, as Pigeonhole does */
    }
    const struct sieve_arg *patterns = cmd->positional_count == 2 ? cmd->positional[1] : NULL;
    struct matcher m;
    if (patterns != NULL) {
        rc = run_matcher_init(run, cmd, patterns, &m);
        if (rc < 0) {
            return rc;
        }
        m.is_capturing = false; /* deleteheader sets no match variables */
    }
    size_t only = SIZE_MAX;
    if (sieve_node_tag(cmd, SIEVE_TAG_INDEX) != NULL) {
        only = run_field_pick(run, cmd, name.text, name.len);
        if (only == SIZE_MAX) {
            return 0;
        }
    }
    size_t picked[1] = {only};
    run->work += run->field_count;
    for (size_t i = 0; i < run->field_count; i++) {
        if (only != SIZE_MAX && i != picked[0]) {
            continue;
        }
        if (!field_is(&run->fields[i], name.text, name.len)) {
            continue;
        }
        if (patterns != NULL) {
            size_t len = run_field_value(run, i);
            size_t decoded = run_decode_2047(run, run->scratch, len);
            m.count = 0;
            rc = run_matcher_value(run, &m, run->scratch_addr, decoded);
            if (rc == 0 && m.node->match == SIEVE_MATCH_COUNT) {
                rc = run_matcher_end(run, &m);
            }
            if (rc < 0) {
                return rc;
            }
            if (rc == 0) {
                continue;
            }
        }
        run->fields[i].is_deleted = true;
        run->header_bytes -= run->fields[i].raw_len;
        run->is_header_edited = true;
    }
    return 0;
}

/* The view, with CRLF line ends and the empty line, into the result. */
int
run_header_render(struct run *run)
{
    if (!run->is_header_edited) {
        return 0;
    }
    size_t total = 2;
    for (size_t i = 0; i < run->field_count; i++) {
        if (!run->fields[i].is_deleted) {
            total += run->fields[i].raw_len * 2 + 2; /* bare LFs may become CRLF */
        }
    }
    char *p = sieve_arena_alloc(&run->actions->arena, total + 1);
    if (p == NULL) {
        return run_fail(run, -ENOMEM, 0, "out of memory for the edited header");
    }
    size_t o = 0;
    for (size_t i = 0; i < run->field_count; i++) {
        const struct run_field *f = &run->fields[i];
        if (f->is_deleted) {
            continue;
        }
        for (size_t k = 0; k < f->raw_len; k++) {
            char c = f->raw[k];
            if (c == '\n' && (k == 0 || f->raw[k - 1] != '\r')) {
                p[o++] = '\r';
            }
            p[o++] = c;
        }
        if (f->raw_len == 0 || f->raw[f->raw_len - 1] != '\n') {
            p[o++] = '\r';
            p[o++] = '\n';
        }
    }
    p[o++] = '\r';
    p[o++] = '\n';
    ASSERT(o <= total);
    p[o] = '\0';
    if (o > SIEVE_RUN_HEADER_BYTES_MAX) {
        /* Bare LFs grew into CRLFs: the next script could not read it. */
        return run_fail(run, -E2BIG, 0, "edited header block over %u bytes",
                        (unsigned)SIEVE_RUN_HEADER_BYTES_MAX);
    }
    run->actions->header = p;
    run->actions->header_len = o;
    return 0;
}
