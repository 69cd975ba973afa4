/*
 * proto/imap/imap_fetch.c - FETCH items into a typed request, and one
 * message's FETCH response into a sink.
 *
 * Parsing walks the argument tree the generic parser built (proto/imap/
 * imap_parser.h) and keeps spans into the command text. Writing runs on a
 * worker thread in two passes over the request: the first resolves every
 * section against the message's MIME tree, measures every literal
 * (decoding BINARY data without storing it) and renders ENVELOPE / BODY /
 * BODYSTRUCTURE into the caller's buffer, so every failure is known before
 * the first byte goes out; the second writes. No allocation, no I/O.
 * Limits: IMAP_FETCH_SECTIONS_MAX, IMAP_FETCH_FIELDS_MAX (parse),
 * work->parts_cap and work->buf_bytes (write); all loops are bounded by
 * the command's node count or by the message's length and part count.
 */
#include "proto/imap/imap_fetch.h"

#include <errno.h>
#include <string.h>

#include "core/assertions.h"
#include "proto/imap/imap_bodystructure.h"
#include "proto/imap/imap_decode.h"
#include "proto/imap/imap_envelope.h"
#include "proto/imap/imap_quote.h"
#include "proto/imap/imap_rfc822.h"

/* 2^63 - 1 as RFC 7162 bounds mod-sequence values. */
#define MODSEQ_MAX 9223372036854775807ULL
/* Bytes collected before they are handed to sink->write(). */
#define WRITER_BYTES 1024

static_assert(IMAP_FETCH_SECTIONS_MAX <= 255, "section index fits the plan");
static_assert(IMAP_MIME_DEPTH_MAX <= UINT32_MAX, "depth fits");

enum cte {
    CTE_IDENTITY, /* absent, 7bit, 8bit, binary */
    CTE_BASE64,
    CTE_QP,
    CTE_UNKNOWN,
};

enum plan_kind {
    PLAN_RANGE,   /* a verbatim range of the message */
    PLAN_FIELDS,  /* selected header fields of a header block, then CRLF */
    PLAN_DECODED, /* optional verbatim prefix, then a decoded body */
    PLAN_NIL,     /* BINARY of undecodable data */
    PLAN_SIZE,    /* BINARY.SIZE: a number */
};

/* What one section turns into for this message. The data is a "virtual"
 * byte string of full_len bytes; the response shows [clip_off, clip_off +
 * clip_len) of it. */
struct plan {
    enum plan_kind kind;
    enum cte       cte;
    size_t         src_off; /* range / header block / encoded body */
    size_t         src_len;
    size_t         prefix_len; /* PLAN_DECODED: data[0..prefix_len) first */
    uint64_t       full_len;
    uint64_t       clip_off;
    uint64_t       clip_len;
    bool           has_nul; /* a NUL inside the clip */
};

/* Buffered output to the sink. */
struct writer {
    const struct imap_fetch_sink *sink;
    size_t                        len;
    char                          buf[WRITER_BYTES];
};

/* The visible window of a virtual byte string: bytes are fed in order;
 * those inside [win_start, win_end) are measured (NUL search) or written. */
struct clip {
    uint64_t       pos;
    uint64_t       win_start;
    uint64_t       win_end;
    bool           is_measure;
    bool           has_nul;
    bool           convert_nul; /* write NUL as 0x80 (BODY literals) */
    struct writer *w;
};

/* Section text: "1.2.HEADER.FIELDS" etc. */
struct spec_name {
    const char          *text;
    enum imap_fetch_spec spec;
};

static const struct spec_name spec_names[] = {
    { "HEADER", IMAP_FETCH_SPEC_HEADER },
    { "HEADER.FIELDS", IMAP_FETCH_SPEC_HEADER_FIELDS },
    { "HEADER.FIELDS.NOT", IMAP_FETCH_SPEC_HEADER_FIELDS_NOT },
    { "TEXT", IMAP_FETCH_SPEC_TEXT },
    { "MIME", IMAP_FETCH_SPEC_MIME },
};

static enum imap_fetch_parse_result parse_item(const struct imap_parsed *parsed, uint32_t index,
                                               struct imap_fetch_request *req,
                                               const char **text_out);
static enum imap_fetch_parse_result parse_section(const struct imap_parsed *parsed,
                                                  uint32_t index, struct imap_fetch_request *req,
                                                  const char **text_out);
static bool parse_part_path(struct span text, struct span *part_out, uint32_t *depth_out,
                            struct span *rest_out);
static enum imap_fetch_parse_result parse_modifiers(const struct imap_parsed *parsed,
                                                    uint32_t index, unsigned flags,
                                                    struct imap_fetch_request *req,
                                                    const char **text_out);
static enum imap_fetch_parse_result add_simple_section(struct imap_fetch_request *req,
                                                       enum imap_fetch_section_kind kind,
                                                       enum imap_fetch_spec spec,
                                                       const char **text_out);
static void derive(struct imap_fetch_request *req);
static bool is_whole_message(const struct imap_fetch_section *sec);
static bool parse_u64(struct span text, uint64_t *value_out);

static int plan_section(const struct imap_fetch_request *req, const struct imap_fetch_section *sec,
                        const struct imap_message *msg, const struct imap_mime_part *parts,
                        size_t part_count, struct plan *plan);
static bool resolve_part(const struct imap_fetch_section *sec, const struct imap_mime_part *parts,
                         size_t part_count, uint32_t *index_out);
static enum cte cte_of(const struct imap_mime_part *part);
static void plan_clip(const struct imap_fetch_section *sec, struct plan *plan);
static void plan_measure(const struct imap_fetch_request *req, const struct imap_fetch_section *sec,
                         const struct imap_message *msg, struct plan *plan);
static void plan_feed(const struct imap_fetch_request *req, const struct imap_fetch_section *sec,
                      const struct imap_message *msg, const struct plan *plan, struct clip *clip,
                      long *decoded_out);
static void feed_fields(const struct imap_fetch_request *req, const struct imap_fetch_section *sec,
                        const char *hdr, size_t len, struct clip *clip);
static bool field_listed(const struct imap_fetch_request *req,
                         const struct imap_fetch_section *sec, struct span name);
static bool field_name_equals(const struct imap_fetch_field *field, struct span name);
static void clip_put(struct clip *clip, const char *bytes, size_t len);
static void clip_emit(void *ctx, const char *bytes, size_t len);

static void write_section(const struct imap_fetch_request *req,
                          const struct imap_fetch_section *sec, const struct imap_message *msg,
                          const struct plan *plan, struct writer *w);
static void write_section_name(const struct imap_fetch_request *req,
                               const struct imap_fetch_section *sec, struct writer *w);
static void write_field_name(const struct imap_fetch_field *field, struct writer *w);
static void write_flags(const struct imap_message *msg, struct writer *w);
static void write_internaldate(const struct imap_message *msg, struct writer *w);

static void w_bytes(struct writer *w, const char *bytes, size_t len);
static void w_cstr(struct writer *w, const char *cstr);
static void w_char(struct writer *w, char c);
static void w_uint(struct writer *w, uint64_t value);
static void w_flush(struct writer *w);
static void w_upper(struct writer *w, const char *bytes, size_t len);

enum imap_fetch_parse_result
imap_fetch_parse(const struct imap_parsed *parsed, uint32_t first, unsigned flags,
                 struct imap_fetch_request *req_out, const char **text_out)
{
    ASSERT(parsed != NULL);
    ASSERT(req_out != NULL);
    ASSERT(text_out != NULL);
    memset(req_out, 0, offsetof(struct imap_fetch_request, sections));
    req_out->section_count = 0;
    req_out->field_count = 0;
    req_out->has_changedsince = false;
    req_out->changedsince = 0;
    req_out->is_vanished = false;
    req_out->sets_seen = false;
    req_out->needs = IMAP_FETCH_NEEDS_NOTHING;
    *text_out = "";
    if (first == IMAP_NODE_NONE) {
        *text_out = "Missing FETCH items";
        return IMAP_FETCH_PARSE_BAD;
    }
    ASSERT(first < parsed->node_count);
    const struct imap_node *node = &parsed->nodes[first];
    enum imap_fetch_parse_result r = IMAP_FETCH_PARSE_OK;
    if (node->kind == IMAP_NODE_ATOM && span_equals_nocase(node->text, "ALL")) {
        req_out->items |= IMAP_FETCH_FLAGS | IMAP_FETCH_INTERNALDATE | IMAP_FETCH_RFC822_SIZE |
                          IMAP_FETCH_ENVELOPE;
    } else if (node->kind == IMAP_NODE_ATOM && span_equals_nocase(node->text, "FAST")) {
        req_out->items |= IMAP_FETCH_FLAGS | IMAP_FETCH_INTERNALDATE | IMAP_FETCH_RFC822_SIZE;
    } else if (node->kind == IMAP_NODE_ATOM && span_equals_nocase(node->text, "FULL")) {
        req_out->items |= IMAP_FETCH_FLAGS | IMAP_FETCH_INTERNALDATE | IMAP_FETCH_RFC822_SIZE |
                          IMAP_FETCH_ENVELOPE | IMAP_FETCH_BODY;
    } else if (node->kind == IMAP_NODE_LIST) {
        if (node->child_count == 0) {
            *text_out = "Empty FETCH item list";
            return IMAP_FETCH_PARSE_BAD;
        }
        /* Bounded by the command's node count. */
        for (uint32_t c = imap_node_first_child(parsed, first); c != IMAP_NODE_NONE;
             c = imap_node_next(parsed, c)) {
            r = parse_item(parsed, c, req_out, text_out);
            if (r != IMAP_FETCH_PARSE_OK) {
                return r;
            }
        }
    } else {
        r = parse_item(parsed, first, req_out, text_out);
        if (r != IMAP_FETCH_PARSE_OK) {
            return r;
        }
    }
    uint32_t mods = imap_node_next(parsed, first);
    if (mods != IMAP_NODE_NONE) {
        r = parse_modifiers(parsed, mods, flags, req_out, text_out);
        if (r != IMAP_FETCH_PARSE_OK) {
            return r;
        }
        if (imap_node_next(parsed, mods) != IMAP_NODE_NONE) {
            *text_out = "Unexpected argument after FETCH modifiers";
            return IMAP_FETCH_PARSE_BAD;
        }
    }
    if ((flags & IMAP_FETCH_PARSE_F_UID) != 0) {
        req_out->items |= IMAP_FETCH_UID;
    }
    derive(req_out);
    return IMAP_FETCH_PARSE_OK;
}

int
imap_fetch_write(const struct imap_fetch_request *req, const struct imap_message *msg,
                 const struct imap_fetch_options *options, struct imap_fetch_work *work,
                 const struct imap_fetch_sink *sink)
{
    ASSERT(req != NULL);
    ASSERT(msg != NULL);
    ASSERT(options != NULL);
    ASSERT(work != NULL);
    ASSERT(sink != NULL && sink->write != NULL && sink->write_range != NULL);
    ASSERT(req->section_count <= IMAP_FETCH_SECTIONS_MAX);
    if (req->needs == IMAP_FETCH_NEEDS_SIZE) {
        ASSERT(msg->data != NULL || msg->is_nul_free);
    } else if (req->needs != IMAP_FETCH_NEEDS_NOTHING) {
        ASSERT(msg->data != NULL);
        ASSERT(work->parts != NULL);
        ASSERT(work->parts_cap >= 1 && work->parts_cap <= IMAP_MIME_PARTS_MAX);
    }

    /* Pass 1: everything that can fail, and every length. */
    size_t part_count = 0;
    if (req->needs > IMAP_FETCH_NEEDS_SIZE) {
        struct imap_mime_result mime;
        int err = imap_mime_parse(msg->data, msg->data_len, work->parts, work->parts_cap, &mime);
        ASSERT(err == 0);
        part_count = mime.part_count;
        ASSERT(part_count >= 1);
    }
    struct plan plans[IMAP_FETCH_SECTIONS_MAX];
    for (size_t i = 0; i < req->section_count; i++) {
        int err = plan_section(req, &req->sections[i], msg, work->parts, part_count, &plans[i]);
        if (err < 0) {
            return err;
        }
    }
    static const uint32_t structure_items[] = {
        IMAP_FETCH_ENVELOPE, IMAP_FETCH_BODY, IMAP_FETCH_BODYSTRUCTURE,
    };
    struct span structure_text[3] = { { 0 } };
    struct imap_out out;
    imap_out_init(&out, work->buf, work->buf != NULL ? work->buf_bytes : 0);
    for (size_t k = 0; k < 3; k++) {
        if ((req->items & structure_items[k]) == 0) {
            continue;
        }
        size_t start = out.len;
        if (structure_items[k] == IMAP_FETCH_ENVELOPE) {
            imap_envelope_write(&out, msg->data + work->parts[0].header_offset,
                                work->parts[0].header_size, options->quote_flags);
        } else {
            imap_bodystructure_write(&out, msg->data, work->parts, part_count, 0,
                                     structure_items[k] == IMAP_FETCH_BODYSTRUCTURE,
                                     options->quote_flags);
        }
        if (out.is_overflow) {
            return -E2BIG;
        }
        structure_text[k] = span_make(out.buf + start, out.len - start);
    }

    /* Pass 2: write; nothing below can fail. */
    struct writer w = { .sink = sink, .len = 0 };
    w_cstr(&w, "* ");
    w_uint(&w, msg->seq);
    w_cstr(&w, " FETCH (");
    bool is_first = true;
#define NEXT_ITEM()               \
    do {                          \
        if (!is_first) {          \
            w_char(&w, ' ');      \
        }                         \
        is_first = false;         \
    } while (0)
    if ((req->items & IMAP_FETCH_UID) != 0 || options->add_uid) {
        NEXT_ITEM();
        w_cstr(&w, "UID ");
        w_uint(&w, msg->uid);
    }
    if ((req->items & IMAP_FETCH_FLAGS) != 0 || options->add_flags) {
        NEXT_ITEM();
        write_flags(msg, &w);
    }
    if ((req->items & IMAP_FETCH_INTERNALDATE) != 0) {
        NEXT_ITEM();
        write_internaldate(msg, &w);
    }
    if ((req->items & IMAP_FETCH_RFC822_SIZE) != 0) {
        NEXT_ITEM();
        w_cstr(&w, "RFC822.SIZE ");
        w_uint(&w, msg->size);
    }
    if ((req->items & IMAP_FETCH_MODSEQ) != 0 || options->add_modseq) {
        NEXT_ITEM();
        w_cstr(&w, "MODSEQ (");
        w_uint(&w, msg->modseq);
        w_char(&w, ')');
    }
    static const char *const structure_names[] = { "ENVELOPE ", "BODY ", "BODYSTRUCTURE " };
    for (size_t k = 0; k < 3; k++) {
        if ((req->items & structure_items[k]) != 0) {
            NEXT_ITEM();
            w_cstr(&w, structure_names[k]);
            w_bytes(&w, structure_text[k].ptr, structure_text[k].len);
        }
    }
    for (size_t i = 0; i < req->section_count; i++) {
        NEXT_ITEM();
        write_section(req, &req->sections[i], msg, &plans[i], &w);
    }
#undef NEXT_ITEM
    w_cstr(&w, ")\r\n");
    w_flush(&w);
    return 0;
}

const char *
imap_fetch_error_text(int error)
{
    switch (error) {
    case -EINVAL:
        return "[UNKNOWN-CTE] Unknown Content-Transfer-Encoding";
    case -E2BIG:
        return "[LIMIT] Message structure too large to fetch";
    default:
        return "[SERVERBUG] FETCH failed";
    }
}

/* --- parsing ------------------------------------------------------------ */

static enum imap_fetch_parse_result
parse_item(const struct imap_parsed *parsed, uint32_t index, struct imap_fetch_request *req,
           const char **text_out)
{
    const struct imap_node *node = &parsed->nodes[index];
    if (node->kind == IMAP_NODE_SECTION) {
        return parse_section(parsed, index, req, text_out);
    }
    if (node->kind != IMAP_NODE_ATOM) {
        *text_out = "Invalid FETCH item";
        return IMAP_FETCH_PARSE_BAD;
    }
    static const struct {
        const char *name;
        uint32_t    bit;
    } simple[] = {
        { "UID", IMAP_FETCH_UID },
        { "FLAGS", IMAP_FETCH_FLAGS },
        { "INTERNALDATE", IMAP_FETCH_INTERNALDATE },
        { "RFC822.SIZE", IMAP_FETCH_RFC822_SIZE },
        { "MODSEQ", IMAP_FETCH_MODSEQ },
        { "ENVELOPE", IMAP_FETCH_ENVELOPE },
        { "BODY", IMAP_FETCH_BODY },
        { "BODYSTRUCTURE", IMAP_FETCH_BODYSTRUCTURE },
    };
    for (size_t i = 0; i < sizeof(simple) / sizeof(simple[0]); i++) {
        if (span_equals_nocase(node->text, simple[i].name)) {
            req->items |= simple[i].bit;
            return IMAP_FETCH_PARSE_OK;
        }
    }
    if (span_equals_nocase(node->text, "RFC822")) {
        return add_simple_section(req, IMAP_FETCH_SECTION_RFC822, IMAP_FETCH_SPEC_ALL, text_out);
    }
    if (span_equals_nocase(node->text, "RFC822.HEADER")) {
        return add_simple_section(req, IMAP_FETCH_SECTION_RFC822_HEADER, IMAP_FETCH_SPEC_HEADER,
                                  text_out);
    }
    if (span_equals_nocase(node->text, "RFC822.TEXT")) {
        return add_simple_section(req, IMAP_FETCH_SECTION_RFC822_TEXT, IMAP_FETCH_SPEC_TEXT,
                                  text_out);
    }
    *text_out = "Unknown FETCH item";
    return IMAP_FETCH_PARSE_BAD;
}

static enum imap_fetch_parse_result
add_simple_section(struct imap_fetch_request *req, enum imap_fetch_section_kind kind,
                   enum imap_fetch_spec spec, const char **text_out)
{
    if (req->section_count == IMAP_FETCH_SECTIONS_MAX) {
        *text_out = "Too many FETCH sections";
        return IMAP_FETCH_PARSE_TOO_MANY;
    }
    struct imap_fetch_section *sec = &req->sections[req->section_count++];
    memset(sec, 0, sizeof(*sec));
    sec->kind = (uint8_t)kind;
    sec->spec = (uint8_t)spec;
    sec->is_peek = kind == IMAP_FETCH_SECTION_RFC822_HEADER;
    sec->part = span_make("", 0);
    return IMAP_FETCH_PARSE_OK;
}

static enum imap_fetch_parse_result
parse_section(const struct imap_parsed *parsed, uint32_t index, struct imap_fetch_request *req,
              const char **text_out)
{
    const struct imap_node *node = &parsed->nodes[index];
    enum imap_fetch_section_kind kind;
    bool is_peek = false;
    if (span_equals_nocase(node->text, "BODY")) {
        kind = IMAP_FETCH_SECTION_BODY;
    } else if (span_equals_nocase(node->text, "BODY.PEEK")) {
        kind = IMAP_FETCH_SECTION_BODY;
        is_peek = true;
    } else if (span_equals_nocase(node->text, "BINARY")) {
        kind = IMAP_FETCH_SECTION_BINARY;
    } else if (span_equals_nocase(node->text, "BINARY.PEEK")) {
        kind = IMAP_FETCH_SECTION_BINARY;
        is_peek = true;
    } else if (span_equals_nocase(node->text, "BINARY.SIZE")) {
        kind = IMAP_FETCH_SECTION_BINARY_SIZE;
        is_peek = true;
    } else {
        *text_out = "Unknown FETCH item";
        return IMAP_FETCH_PARSE_BAD;
    }
    if (req->section_count == IMAP_FETCH_SECTIONS_MAX) {
        *text_out = "Too many FETCH sections";
        return IMAP_FETCH_PARSE_TOO_MANY;
    }
    struct imap_fetch_section sec;
    memset(&sec, 0, sizeof(sec));
    sec.kind = (uint8_t)kind;
    sec.is_peek = is_peek;
    sec.part = span_make("", 0);
    sec.field_first = (uint32_t)req->field_count;
    if ((node->flags & IMAP_NODE_F_PARTIAL) != 0) {
        if (kind == IMAP_FETCH_SECTION_BINARY_SIZE) {
            *text_out = "BINARY.SIZE takes no partial range";
            return IMAP_FETCH_PARSE_BAD;
        }
        ASSERT(node->partial_len > 0);
        sec.is_partial = true;
        sec.partial_offset = node->partial_offset;
        sec.partial_len = node->partial_len;
    }
    uint32_t spec_index = imap_node_first_child(parsed, index);
    uint32_t list_index = IMAP_NODE_NONE;
    enum imap_fetch_spec spec = IMAP_FETCH_SPEC_ALL;
    if (spec_index != IMAP_NODE_NONE) {
        const struct imap_node *spec_node = &parsed->nodes[spec_index];
        if (spec_node->kind != IMAP_NODE_ATOM) {
            *text_out = "Invalid section";
            return IMAP_FETCH_PARSE_BAD;
        }
        struct span rest;
        if (!parse_part_path(spec_node->text, &sec.part, &sec.part_depth, &rest)) {
            *text_out = "Invalid section part number";
            return IMAP_FETCH_PARSE_BAD;
        }
        if (rest.len > 0) {
            bool is_known = false;
            for (size_t i = 0; i < sizeof(spec_names) / sizeof(spec_names[0]); i++) {
                if (span_equals_nocase(rest, spec_names[i].text)) {
                    spec = spec_names[i].spec;
                    is_known = true;
                    break;
                }
            }
            if (!is_known) {
                *text_out = "Invalid section text";
                return IMAP_FETCH_PARSE_BAD;
            }
        }
        list_index = imap_node_next(parsed, spec_index);
    }
    if (spec == IMAP_FETCH_SPEC_MIME && sec.part_depth == 0) {
        *text_out = "MIME needs a part number";
        return IMAP_FETCH_PARSE_BAD;
    }
    if (kind != IMAP_FETCH_SECTION_BODY && spec != IMAP_FETCH_SPEC_ALL) {
        *text_out = "BINARY takes only a part number";
        return IMAP_FETCH_PARSE_BAD;
    }
    bool wants_list =
        spec == IMAP_FETCH_SPEC_HEADER_FIELDS || spec == IMAP_FETCH_SPEC_HEADER_FIELDS_NOT;
    if (wants_list != (list_index != IMAP_NODE_NONE)) {
        *text_out = wants_list ? "Missing header field list" : "Unexpected section argument";
        return IMAP_FETCH_PARSE_BAD;
    }
    if (wants_list) {
        const struct imap_node *list = &parsed->nodes[list_index];
        if (list->kind != IMAP_NODE_LIST || list->child_count == 0 ||
            imap_node_next(parsed, list_index) != IMAP_NODE_NONE) {
            *text_out = "Invalid header field list";
            return IMAP_FETCH_PARSE_BAD;
        }
        for (uint32_t c = imap_node_first_child(parsed, list_index); c != IMAP_NODE_NONE;
             c = imap_node_next(parsed, c)) {
            const struct imap_node *name = &parsed->nodes[c];
            if (!imap_node_is_string(name) || (name->flags & IMAP_NODE_F_STREAMED) != 0) {
                *text_out = "Invalid header field name";
                return IMAP_FETCH_PARSE_BAD;
            }
            if (req->field_count == IMAP_FETCH_FIELDS_MAX) {
                *text_out = "Too many header field names";
                return IMAP_FETCH_PARSE_TOO_MANY;
            }
            struct imap_fetch_field *field = &req->fields[req->field_count++];
            field->name = name->text;
            field->is_atom = name->kind == IMAP_NODE_ATOM || name->kind == IMAP_NODE_NIL;
            field->is_escaped =
                name->kind == IMAP_NODE_QUOTED && (name->flags & IMAP_NODE_F_ESCAPED) != 0;
            sec.field_count++;
        }
    }
    sec.spec = (uint8_t)spec;
    req->sections[req->section_count++] = sec;
    return IMAP_FETCH_PARSE_OK;
}

/* "1.2.3" optionally followed by ".REST": each number 1..2^32-1 without a
 * leading zero, at most IMAP_MIME_DEPTH_MAX of them. */
static bool
parse_part_path(struct span text, struct span *part_out, uint32_t *depth_out,
                struct span *rest_out)
{
    size_t   pos = 0;
    size_t   part_end = 0;
    uint32_t depth = 0;
    while (pos < text.len && text.ptr[pos] >= '0' && text.ptr[pos] <= '9') {
        if (text.ptr[pos] == '0') {
            return false; /* 0, or a leading zero */
        }
        uint64_t value = 0;
        size_t   digits = 0;
        while (pos < text.len && text.ptr[pos] >= '0' && text.ptr[pos] <= '9') {
            if (++digits > 10) {
                return false;
            }
            value = value * 10 + (uint64_t)(text.ptr[pos] - '0');
            pos++;
        }
        if (value > UINT32_MAX) {
            return false;
        }
        if (++depth > IMAP_MIME_DEPTH_MAX) {
            return false;
        }
        part_end = pos;
        if (pos == text.len) {
            break;
        }
        if (text.ptr[pos] != '.') {
            return false;
        }
        pos++;
        if (pos == text.len) {
            return false; /* a trailing dot */
        }
    }
    *part_out = span_make(text.ptr, part_end);
    *depth_out = depth;
    *rest_out = span_make(text.ptr + pos, text.len - pos);
    return true;
}

static enum imap_fetch_parse_result
parse_modifiers(const struct imap_parsed *parsed, uint32_t index, unsigned flags,
                struct imap_fetch_request *req, const char **text_out)
{
    const struct imap_node *list = &parsed->nodes[index];
    if (list->kind != IMAP_NODE_LIST || list->child_count == 0) {
        *text_out = "Invalid FETCH modifiers";
        return IMAP_FETCH_PARSE_BAD;
    }
    for (uint32_t c = imap_node_first_child(parsed, index); c != IMAP_NODE_NONE;
         c = imap_node_next(parsed, c)) {
        const struct imap_node *node = &parsed->nodes[c];
        if (node->kind == IMAP_NODE_ATOM && span_equals_nocase(node->text, "CHANGEDSINCE")) {
            uint32_t value_index = imap_node_next(parsed, c);
            if (req->has_changedsince || value_index == IMAP_NODE_NONE ||
                parsed->nodes[value_index].kind != IMAP_NODE_ATOM ||
                !parse_u64(parsed->nodes[value_index].text, &req->changedsince) ||
                req->changedsince > MODSEQ_MAX) {
                *text_out = "Invalid CHANGEDSINCE modifier";
                return IMAP_FETCH_PARSE_BAD;
            }
            req->has_changedsince = true;
            c = value_index;
        } else if (node->kind == IMAP_NODE_ATOM && span_equals_nocase(node->text, "VANISHED")) {
            if (req->is_vanished) {
                *text_out = "Invalid VANISHED modifier";
                return IMAP_FETCH_PARSE_BAD;
            }
            req->is_vanished = true;
        } else {
            *text_out = "Unknown FETCH modifier";
            return IMAP_FETCH_PARSE_BAD;
        }
    }
    if (req->is_vanished) {
        /* RFC 7162 section 3.2.6. */
        if ((flags & IMAP_FETCH_PARSE_F_UID) == 0) {
            *text_out = "VANISHED is allowed only in UID FETCH";
            return IMAP_FETCH_PARSE_BAD;
        }
        if ((flags & IMAP_FETCH_PARSE_F_QRESYNC) == 0) {
            *text_out = "VANISHED needs ENABLE QRESYNC";
            return IMAP_FETCH_PARSE_BAD;
        }
        if (!req->has_changedsince) {
            *text_out = "VANISHED needs CHANGEDSINCE";
            return IMAP_FETCH_PARSE_BAD;
        }
    }
    return IMAP_FETCH_PARSE_OK;
}

/* BODY[] or RFC822 (any partial): the message's bytes as they are. */
static bool
is_whole_message(const struct imap_fetch_section *sec)
{
    return sec->kind == IMAP_FETCH_SECTION_RFC822 ||
           (sec->kind == IMAP_FETCH_SECTION_BODY && sec->spec == IMAP_FETCH_SPEC_ALL &&
            sec->part_depth == 0);
}

static void
derive(struct imap_fetch_request *req)
{
    if (req->has_changedsince) {
        req->items |= IMAP_FETCH_MODSEQ; /* RFC 7162 section 3.1.4.1 */
    }
    enum imap_fetch_needs needs = IMAP_FETCH_NEEDS_NOTHING;
    if ((req->items & IMAP_FETCH_ENVELOPE) != 0) {
        needs = IMAP_FETCH_NEEDS_HEADER;
    }
    /* Order matters below: NOTHING < SIZE < HEADER < MESSAGE. */
    if ((req->items & (IMAP_FETCH_BODY | IMAP_FETCH_BODYSTRUCTURE)) != 0) {
        needs = IMAP_FETCH_NEEDS_MESSAGE;
    }
    bool sets_seen = false;
    bool has_whole = false;
    for (size_t i = 0; i < req->section_count; i++) {
        const struct imap_fetch_section *sec = &req->sections[i];
        bool is_header_only =
            sec->part_depth == 0 &&
            (sec->spec == IMAP_FETCH_SPEC_HEADER || sec->spec == IMAP_FETCH_SPEC_HEADER_FIELDS ||
             sec->spec == IMAP_FETCH_SPEC_HEADER_FIELDS_NOT);
        if (is_whole_message(sec)) {
            has_whole = true;
        } else if (is_header_only) {
            if (needs < IMAP_FETCH_NEEDS_HEADER) {
                needs = IMAP_FETCH_NEEDS_HEADER;
            }
        } else {
            needs = IMAP_FETCH_NEEDS_MESSAGE;
        }
        switch ((enum imap_fetch_section_kind)sec->kind) {
        case IMAP_FETCH_SECTION_BODY:
        case IMAP_FETCH_SECTION_BINARY:
            sets_seen = sets_seen || !sec->is_peek;
            break;
        case IMAP_FETCH_SECTION_RFC822:
        case IMAP_FETCH_SECTION_RFC822_TEXT:
            sets_seen = true;
            break;
        case IMAP_FETCH_SECTION_BINARY_SIZE:
        case IMAP_FETCH_SECTION_RFC822_HEADER:
            break;
        }
    }
    if (has_whole) {
        /* The bytes alone when nothing else needs content; with a header
         * item beside it, data must hold the whole message, not a header. */
        needs = needs == IMAP_FETCH_NEEDS_NOTHING ? IMAP_FETCH_NEEDS_SIZE : IMAP_FETCH_NEEDS_MESSAGE;
    }
    req->needs = needs;
    req->sets_seen = sets_seen;
}

/* Digits only, no sign, at most 2^64-1. */
static bool
parse_u64(struct span text, uint64_t *value_out)
{
    if (text.len == 0 || text.len > 20) {
        return false;
    }
    uint64_t value = 0;
    for (size_t i = 0; i < text.len; i++) {
        unsigned char c = (unsigned char)text.ptr[i];
        if (c < '0' || c > '9') {
            return false;
        }
        uint64_t digit = (uint64_t)(c - '0');
        if (value > (UINT64_MAX - digit) / 10) {
            return false;
        }
        value = value * 10 + digit;
    }
    *value_out = value;
    return true;
}

/* --- planning ------------------------------------------------------------ */

static int
plan_section(const struct imap_fetch_request *req, const struct imap_fetch_section *sec,
             const struct imap_message *msg, const struct imap_mime_part *parts,
             size_t part_count, struct plan *plan)
{
    memset(plan, 0, sizeof(*plan));
    plan->kind = PLAN_RANGE; /* an empty range unless found below */
    if (is_whole_message(sec)) {
        /* No MIME structure needed (IMAP_FETCH_NEEDS_SIZE). */
        plan->src_off = 0;
        plan->src_len = msg->data_len;
        plan->full_len = plan->src_len;
        plan_measure(req, sec, msg, plan);
        return 0;
    }
    uint32_t index = 0;
    bool is_found = resolve_part(sec, parts, part_count, &index);
    enum imap_fetch_spec spec = (enum imap_fetch_spec)sec->spec;
    if (sec->kind == IMAP_FETCH_SECTION_BINARY || sec->kind == IMAP_FETCH_SECTION_BINARY_SIZE) {
        ASSERT(spec == IMAP_FETCH_SPEC_ALL);
        if (!is_found) {
            /* Dovecot: an empty part, BINARY.SIZE 0. */
            if (sec->kind == IMAP_FETCH_SECTION_BINARY_SIZE) {
                plan->kind = PLAN_SIZE;
            }
            plan_clip(sec, plan);
            return 0;
        }
        const struct imap_mime_part *part = &parts[index];
        plan->cte = cte_of(part);
        if (plan->cte == CTE_UNKNOWN) {
            return -EINVAL;
        }
        if (plan->cte == CTE_IDENTITY) {
            if (sec->part_depth == 0) {
                plan->src_off = 0;
                plan->src_len = msg->data_len;
            } else {
                plan->src_off = part->body_offset;
                plan->src_len = part->body_size;
            }
            plan->full_len = plan->src_len;
        } else {
            plan->kind = PLAN_DECODED;
            plan->prefix_len = sec->part_depth == 0 ? part->body_offset : 0;
            plan->src_off = part->body_offset;
            plan->src_len = part->body_size;
        }
        if (sec->kind == IMAP_FETCH_SECTION_BINARY_SIZE) {
            plan_measure(req, sec, msg, plan);
            plan->kind = PLAN_SIZE;
            return 0;
        }
        plan_measure(req, sec, msg, plan);
        return 0;
    }

    /* BODY[...] and the RFC822 items. */
    if (is_found) {
        const struct imap_mime_part *part = &parts[index];
        switch (spec) {
        case IMAP_FETCH_SPEC_ALL:
            if (sec->part_depth == 0) {
                plan->src_off = 0;
                plan->src_len = msg->data_len;
            } else {
                plan->src_off = part->body_offset;
                plan->src_len = part->body_size;
            }
            break;
        case IMAP_FETCH_SPEC_MIME:
            plan->src_off = part->header_offset;
            plan->src_len = part->header_size;
            break;
        case IMAP_FETCH_SPEC_HEADER:
        case IMAP_FETCH_SPEC_HEADER_FIELDS:
        case IMAP_FETCH_SPEC_HEADER_FIELDS_NOT:
        case IMAP_FETCH_SPEC_TEXT:
            if (sec->part_depth > 0) {
                /* HEADER and TEXT of a part are those of the message a
                 * message/rfc822 part holds; other parts have none. */
                if ((part->flags & IMAP_MIME_IS_MESSAGE) == 0 ||
                    part->first_child == IMAP_MIME_NONE) {
                    break;
                }
                part = &parts[part->first_child];
            }
            if (spec == IMAP_FETCH_SPEC_TEXT) {
                plan->src_off = part->body_offset;
                plan->src_len = part->body_size;
            } else {
                plan->src_off = part->header_offset;
                plan->src_len = part->header_size;
                if (spec != IMAP_FETCH_SPEC_HEADER) {
                    plan->kind = PLAN_FIELDS;
                }
            }
            break;
        }
    }
    ASSERT(plan->src_off <= msg->data_len || plan->src_len == 0);
    if (plan->kind == PLAN_RANGE) {
        plan->full_len = plan->src_len;
    }
    plan_measure(req, sec, msg, plan);
    return 0;
}

/* The part a section's path names, following RFC 3501 section 6.4.5 as
 * Dovecot does: in a multipart the nth child; in any other part only 1 (the
 * part itself); a message/rfc822 part followed by more numbers stands for
 * the message it holds. Returns false when no such part exists. */
static bool
resolve_part(const struct imap_fetch_section *sec, const struct imap_mime_part *parts,
             size_t part_count, uint32_t *index_out)
{
    uint32_t index = 0;
    size_t   pos = 0;
    for (uint32_t n = 0; n < sec->part_depth; n++) {
        uint64_t num = 0;
        while (pos < sec->part.len && sec->part.ptr[pos] != '.') {
            num = num * 10 + (uint64_t)(sec->part.ptr[pos] - '0');
            pos++;
        }
        pos++; /* the dot, or past the end */
        bool is_more = n + 1 < sec->part_depth;
        const struct imap_mime_part *part = &parts[index];
        if ((part->flags & IMAP_MIME_IS_MULTIPART) != 0) {
            uint32_t child = part->first_child;
            /* The sibling chain ends, so this runs at most part_count times. */
            for (uint64_t k = 1; k < num && child != IMAP_MIME_NONE; k++) {
                child = parts[child].next_sibling;
            }
            if (child == IMAP_MIME_NONE) {
                return false;
            }
            ASSERT(child < part_count);
            index = child;
        } else if (num != 1) {
            return false;
        } else if (is_more && (part->flags & IMAP_MIME_IS_MESSAGE) == 0) {
            return false;
        }
        if (is_more && (parts[index].flags & IMAP_MIME_IS_MESSAGE) != 0) {
            if (parts[index].first_child == IMAP_MIME_NONE) {
                return false;
            }
            index = parts[index].first_child;
        }
    }
    *index_out = index;
    return true;
}

static enum cte
cte_of(const struct imap_mime_part *part)
{
    struct span e = part->encoding;
    if (e.ptr == NULL || e.len == 0 || span_equals_nocase(e, "7bit") ||
        span_equals_nocase(e, "8bit") || span_equals_nocase(e, "binary")) {
        return CTE_IDENTITY;
    }
    if (span_equals_nocase(e, "base64")) {
        return CTE_BASE64;
    }
    if (span_equals_nocase(e, "quoted-printable")) {
        return CTE_QP;
    }
    return CTE_UNKNOWN;
}

/* The visible window once full_len is known. */
static void
plan_clip(const struct imap_fetch_section *sec, struct plan *plan)
{
    if (!sec->is_partial) {
        plan->clip_off = 0;
        plan->clip_len = plan->full_len;
        return;
    }
    plan->clip_off = sec->partial_offset;
    if (plan->clip_off >= plan->full_len) {
        plan->clip_off = plan->full_len;
        plan->clip_len = 0;
        return;
    }
    uint64_t left = plan->full_len - plan->clip_off;
    plan->clip_len = sec->partial_len < left ? sec->partial_len : left;
}

/* Run the data once without writing: full length, clip, NUL in the clip,
 * and whether BINARY data decodes. */
static void
plan_measure(const struct imap_fetch_request *req, const struct imap_fetch_section *sec,
             const struct imap_message *msg, struct plan *plan)
{
    struct clip clip = {
        .is_measure = true,
        .win_start = sec->is_partial ? sec->partial_offset : 0,
        .win_end = sec->is_partial ? (uint64_t)sec->partial_offset + sec->partial_len
                                   : UINT64_MAX,
    };
    if (plan->kind == PLAN_RANGE) {
        plan_clip(sec, plan);
        if (plan->clip_len > 0 && !msg->is_nul_free &&
            memchr(msg->data + plan->src_off + plan->clip_off, '\0', plan->clip_len) != NULL) {
            plan->has_nul = true;
        }
        return;
    }
    long decoded = 0;
    plan_feed(req, sec, msg, plan, &clip, &decoded);
    if (decoded < 0) {
        plan->kind = PLAN_NIL;
        plan->full_len = 0;
        plan_clip(sec, plan);
        return;
    }
    plan->full_len = clip.pos;
    plan->has_nul = clip.has_nul;
    plan_clip(sec, plan);
}

/* Feed a FIELDS or DECODED plan's virtual bytes through clip. */
static void
plan_feed(const struct imap_fetch_request *req, const struct imap_fetch_section *sec,
          const struct imap_message *msg, const struct plan *plan, struct clip *clip,
          long *decoded_out)
{
    *decoded_out = 0;
    if (plan->kind == PLAN_FIELDS) {
        feed_fields(req, sec, msg->data + plan->src_off, plan->src_len, clip);
        return;
    }
    ASSERT(plan->kind == PLAN_DECODED);
    clip_put(clip, msg->data, plan->prefix_len);
    const char *src = msg->data + plan->src_off;
    if (plan->cte == CTE_BASE64) {
        *decoded_out = imap_decode_base64_stream(src, plan->src_len, clip_emit, clip);
    } else {
        ASSERT(plan->cte == CTE_QP);
        *decoded_out = imap_decode_qp_stream(src, plan->src_len, clip_emit, clip);
    }
}

/* HEADER.FIELDS (.NOT): the selected fields in message order, each with
 * its continuation lines and line break, then the empty line. */
static void
feed_fields(const struct imap_fetch_request *req, const struct imap_fetch_section *sec,
            const char *hdr, size_t len, struct clip *clip)
{
    bool   is_not = sec->spec == IMAP_FETCH_SPEC_HEADER_FIELDS_NOT;
    size_t pos = 0;
    struct imap_rfc822_field field;
    /* Each round consumes at least one line of hdr. */
    while (imap_rfc822_header_next(hdr, len, &pos, &field)) {
        if (field_listed(req, sec, field.name) == is_not) {
            continue;
        }
        size_t start = (size_t)(field.name.ptr - hdr);
        size_t end = (size_t)(field.value.ptr + field.value.len - hdr);
        /* Through the field's line break (pos is past it, or at the end
         * of the block after an empty line or the last byte). */
        while (end < len && end < pos && hdr[end] != '\n') {
            end++;
        }
        if (end < len && hdr[end] == '\n') {
            clip_put(clip, hdr + start, end + 1 - start);
        } else {
            clip_put(clip, hdr + start, end - start);
            clip_put(clip, "\r\n", 2);
        }
    }
    clip_put(clip, "\r\n", 2);
}

static bool
field_listed(const struct imap_fetch_request *req, const struct imap_fetch_section *sec,
             struct span name)
{
    for (uint32_t i = 0; i < sec->field_count; i++) {
        if (field_name_equals(&req->fields[sec->field_first + i], name)) {
            return true;
        }
    }
    return false;
}

/* Case-insensitive; a quoted name's escapes are resolved on the way. */
static bool
field_name_equals(const struct imap_fetch_field *field, struct span name)
{
    size_t i = 0;
    size_t k = 0;
    while (i < field->name.len && k < name.len) {
        unsigned char a = (unsigned char)field->name.ptr[i++];
        if (field->is_escaped && a == '\\' && i < field->name.len) {
            a = (unsigned char)field->name.ptr[i++];
        }
        unsigned char b = (unsigned char)name.ptr[k++];
        if (a >= 'A' && a <= 'Z') {
            a = (unsigned char)(a + 32);
        }
        if (b >= 'A' && b <= 'Z') {
            b = (unsigned char)(b + 32);
        }
        if (a != b) {
            return false;
        }
    }
    return i == field->name.len && k == name.len;
}

static void
clip_put(struct clip *clip, const char *bytes, size_t len)
{
    uint64_t start = clip->pos;
    uint64_t end = start + len;
    clip->pos = end;
    uint64_t lo = start > clip->win_start ? start : clip->win_start;
    uint64_t hi = end < clip->win_end ? end : clip->win_end;
    if (lo >= hi) {
        return;
    }
    const char *p = bytes + (lo - start);
    size_t      n = (size_t)(hi - lo);
    if (clip->is_measure) {
        if (!clip->has_nul && memchr(p, '\0', n) != NULL) {
            clip->has_nul = true;
        }
        return;
    }
    if (!clip->convert_nul) {
        w_bytes(clip->w, p, n);
        return;
    }
    /* Bounded by n: each round writes up to the next NUL and its stand-in. */
    while (n > 0) {
        const char *nul = memchr(p, '\0', n);
        size_t      run = nul == NULL ? n : (size_t)(nul - p);
        w_bytes(clip->w, p, run);
        p += run;
        n -= run;
        if (n > 0) {
            w_char(clip->w, (char)0x80);
            p++;
            n--;
        }
    }
}

static void
clip_emit(void *ctx, const char *bytes, size_t len)
{
    clip_put(ctx, bytes, len);
}

/* --- writing ------------------------------------------------------------- */

static void
write_section(const struct imap_fetch_request *req, const struct imap_fetch_section *sec,
              const struct imap_message *msg, const struct plan *plan, struct writer *w)
{
    write_section_name(req, sec, w);
    w_char(w, ' ');
    if (plan->kind == PLAN_SIZE) {
        w_uint(w, plan->full_len);
        return;
    }
    if (plan->kind == PLAN_NIL) {
        w_cstr(w, "NIL");
        return;
    }
    if (plan->clip_len == 0) {
        w_cstr(w, "\"\"");
        return;
    }
    bool is_binary = sec->kind == IMAP_FETCH_SECTION_BINARY;
    w_cstr(w, is_binary && plan->has_nul ? "~{" : "{");
    w_uint(w, plan->clip_len);
    w_cstr(w, "}\r\n");
    bool convert_nul = !is_binary && plan->has_nul;
    if (plan->kind == PLAN_RANGE && !convert_nul) {
        w_flush(w);
        w->sink->write_range(w->sink->ctx, plan->src_off + plan->clip_off, plan->clip_len);
        return;
    }
    struct clip clip = {
        .is_measure = false,
        .win_start = plan->clip_off,
        .win_end = plan->clip_off + plan->clip_len,
        .convert_nul = convert_nul,
        .w = w,
    };
    if (plan->kind == PLAN_RANGE) {
        clip.win_start = 0;
        clip.win_end = plan->clip_len;
        clip_put(&clip, msg->data + plan->src_off + plan->clip_off, (size_t)plan->clip_len);
        return;
    }
    long decoded;
    plan_feed(req, sec, msg, plan, &clip, &decoded);
    ASSERT(decoded >= 0); /* it decoded in pass 1 */
    ASSERT(clip.pos == plan->full_len);
}

static void
write_section_name(const struct imap_fetch_request *req, const struct imap_fetch_section *sec,
                   struct writer *w)
{
    switch ((enum imap_fetch_section_kind)sec->kind) {
    case IMAP_FETCH_SECTION_RFC822:
        w_cstr(w, "RFC822");
        return;
    case IMAP_FETCH_SECTION_RFC822_HEADER:
        w_cstr(w, "RFC822.HEADER");
        return;
    case IMAP_FETCH_SECTION_RFC822_TEXT:
        w_cstr(w, "RFC822.TEXT");
        return;
    case IMAP_FETCH_SECTION_BODY:
        w_cstr(w, "BODY[");
        break;
    case IMAP_FETCH_SECTION_BINARY:
        w_cstr(w, "BINARY[");
        break;
    case IMAP_FETCH_SECTION_BINARY_SIZE:
        w_cstr(w, "BINARY.SIZE[");
        break;
    }
    w_bytes(w, sec->part.ptr, sec->part.len);
    if (sec->spec != IMAP_FETCH_SPEC_ALL) {
        if (sec->part_depth > 0) {
            w_char(w, '.');
        }
        for (size_t i = 0; i < sizeof(spec_names) / sizeof(spec_names[0]); i++) {
            if (spec_names[i].spec == sec->spec) {
                w_cstr(w, spec_names[i].text);
            }
        }
    }
    if (sec->field_count > 0) {
        w_cstr(w, " (");
        for (uint32_t i = 0; i < sec->field_count; i++) {
            if (i > 0) {
                w_char(w, ' ');
            }
            write_field_name(&req->fields[sec->field_first + i], w);
        }
        w_char(w, ')');
    }
    w_char(w, ']');
    if (sec->is_partial) {
        w_char(w, '<');
        w_uint(w, sec->partial_offset);
        w_char(w, '>');
    }
}

/* Upper-cased, as Dovecot echoes it: an atom as an atom; a quoted or
 * literal name as a quoted string (escapes kept, they are valid as they
 * are), or a literal when it holds bytes a quoted string cannot. */
static void
write_field_name(const struct imap_fetch_field *field, struct writer *w)
{
    if (field->is_atom) {
        w_upper(w, field->name.ptr, field->name.len);
        return;
    }
    if (field->is_escaped) {
        w_char(w, '"');
        w_upper(w, field->name.ptr, field->name.len);
        w_char(w, '"');
        return;
    }
    bool is_quotable = imap_quote_is_quotable(field->name.ptr, field->name.len, 0);
    if (!is_quotable) {
        w_char(w, '{');
        w_uint(w, field->name.len);
        w_cstr(w, "}\r\n");
        w_upper(w, field->name.ptr, field->name.len);
        return;
    }
    w_char(w, '"');
    /* A literal's data may hold '"' or '\\', which need escapes. */
    for (size_t i = 0; i < field->name.len; i++) {
        char c = field->name.ptr[i];
        if (c == '"' || c == '\\') {
            w_char(w, '\\');
        }
        w_upper(w, &c, 1);
    }
    w_char(w, '"');
}

/* Dovecot's order: \Answered \Flagged \Deleted \Seen \Draft \Recent, then
 * keywords. */
static void
write_flags(const struct imap_message *msg, struct writer *w)
{
    static const uint32_t order[] = {
        IMAP_FLAG_ANSWERED, IMAP_FLAG_FLAGGED, IMAP_FLAG_DELETED,
        IMAP_FLAG_SEEN,     IMAP_FLAG_DRAFT,   IMAP_FLAG_RECENT,
    };
    w_cstr(w, "FLAGS (");
    bool is_first = true;
    for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
        if ((msg->flags & order[i]) == 0) {
            continue;
        }
        unsigned bit = 0;
        while ((1u << bit) != order[i]) {
            bit++;
        }
        if (!is_first) {
            w_char(w, ' ');
        }
        is_first = false;
        w_cstr(w, imap_flag_name(bit));
    }
    for (size_t i = 0; i < msg->keyword_count && i < IMAP_KEYWORDS_MAX; i++) {
        if ((msg->keyword_mask & (1u << i)) == 0) {
            continue;
        }
        ASSERT(msg->keyword_names != NULL && msg->keyword_names[i] != NULL);
        if (!is_first) {
            w_char(w, ' ');
        }
        is_first = false;
        w_cstr(w, msg->keyword_names[i]);
    }
    w_char(w, ')');
}

/* "dd-Mon-yyyy hh:mm:ss +zzzz" in the message's own offset. The civil date
 * comes from days since the epoch (Howard Hinnant's algorithm), so no libc
 * time zone state is touched on a worker thread. */
static void
write_internaldate(const struct imap_message *msg, struct writer *w)
{
    static const char months[12][4] = {
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    };
    int32_t tz = msg->internal_date_tz_minutes;
    if (tz < -(99 * 60 + 59) || tz > 99 * 60 + 59) {
        tz = 0; /* not representable as +hhmm */
    }
    int64_t t = msg->internal_date + (int64_t)tz * 60;
    int64_t days = t / 86400;
    int64_t secs = t % 86400;
    if (secs < 0) {
        secs += 86400;
        days--;
    }
    int64_t z = days + 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t y = yoe + era * 400;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    int64_t d = doy - (153 * mp + 2) / 5 + 1;
    int64_t m = mp < 10 ? mp + 3 : mp - 9;
    if (m <= 2) {
        y++;
    }
    if (y < 0) {
        y = 0;
    }
    if (y > 9999) {
        y = 9999;
    }
    char buf[40];
    int64_t hh = secs / 3600;
    int64_t mm = secs / 60 % 60;
    int64_t ss = secs % 60;
    int32_t tz_abs = tz < 0 ? -tz : tz;
    char    sign = tz < 0 ? '-' : '+';
    int     tzh = tz_abs / 60;
    int     tzm = tz_abs % 60;
    size_t  n = 0;
    buf[n++] = '"';
    buf[n++] = (char)('0' + d / 10);
    buf[n++] = (char)('0' + d % 10);
    buf[n++] = '-';
    memcpy(buf + n, months[m - 1], 3);
    n += 3;
    buf[n++] = '-';
    buf[n++] = (char)('0' + y / 1000);
    buf[n++] = (char)('0' + y / 100 % 10);
    buf[n++] = (char)('0' + y / 10 % 10);
    buf[n++] = (char)('0' + y % 10);
    buf[n++] = ' ';
    buf[n++] = (char)('0' + hh / 10);
    buf[n++] = (char)('0' + hh % 10);
    buf[n++] = ':';
    buf[n++] = (char)('0' + mm / 10);
    buf[n++] = (char)('0' + mm % 10);
    buf[n++] = ':';
    buf[n++] = (char)('0' + ss / 10);
    buf[n++] = (char)('0' + ss % 10);
    buf[n++] = ' ';
    buf[n++] = sign;
    buf[n++] = (char)('0' + tzh / 10);
    buf[n++] = (char)('0' + tzh % 10);
    buf[n++] = (char)('0' + tzm / 10);
    buf[n++] = (char)('0' + tzm % 10);
    buf[n++] = '"';
    w_cstr(w, "INTERNALDATE ");
    w_bytes(w, buf, n);
}

/* --- buffered output ----------------------------------------------------- */

static void
w_bytes(struct writer *w, const char *bytes, size_t len)
{
    if (len > sizeof(w->buf) - w->len) {
        w_flush(w);
        if (len >= sizeof(w->buf)) {
            w->sink->write(w->sink->ctx, bytes, len);
            return;
        }
    }
    memcpy(w->buf + w->len, bytes, len);
    w->len += len;
}

static void
w_cstr(struct writer *w, const char *cstr)
{
    w_bytes(w, cstr, strlen(cstr));
}

static void
w_char(struct writer *w, char c)
{
    w_bytes(w, &c, 1);
}

static void
w_uint(struct writer *w, uint64_t value)
{
    char   digits[20];
    size_t n = 0;
    do {
        digits[sizeof(digits) - 1 - n] = (char)('0' + value % 10);
        value /= 10;
        n++;
    } while (value > 0);
    w_bytes(w, digits + sizeof(digits) - n, n);
}

static void
w_flush(struct writer *w)
{
    if (w->len > 0) {
        w->sink->write(w->sink->ctx, w->buf, w->len);
        w->len = 0;
    }
}

static void
w_upper(struct writer *w, const char *bytes, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        char c = bytes[i];
        if (c >= 'a' && c <= 'z') {
            c = (char)(c - 32);
        }
        w_char(w, c);
    }
}
