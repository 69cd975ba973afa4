/*
 * proto/imap/imap_search.c - SEARCH / UID SEARCH: compile, match, answer
 * (see imap_search.h for the semantics).
 *
 * Owns nothing: the program lives in the caller's storage. Parsing runs
 * wherever the session runs (no allocation, no blocking); matching runs
 * on worker threads when it needs message content (iconv, MIME parsing)
 * and is cheap enough for the reactor when imap_search_needs() is 0.
 * Limits: the caller's arrays, IMAP_PARSER_DEPTH_MAX nesting (which also
 * bounds the recursion of both the compiler and the matcher),
 * IMAP_TEXT_NEEDLE_BYTES_MAX per string, IMAP_TEXT_HEADER_BYTES_MAX per
 * decoded header value, IMAP_MIME_HEADER_BYTES_MAX per header block.
 */
#define _GNU_SOURCE /* memrchr */
#include "proto/imap/imap_search.h"

#include <assert.h>
#include <errno.h>
#include <string.h>

#include "core/assertions.h"
#include "core/base64.h"
#include "core/utf8.h"
#include "proto/imap/imap_decode.h"
#include "proto/imap/imap_rfc822.h"
#include "proto/imap/imap_text.h"

/* Day numbers (days since 1970-01-01, negative before) are stored in the
 * key's unsigned number with this bias; year 1 is day -719162. */
#define DAY_BIAS 1000000
/* Body text is decoded and converted in chunks of this size. */
#define BODY_CHUNK_BYTES 4096u
/* Undecoded bytes of a multi-byte character carried between chunks. */
#define BODY_CARRY_BYTES 16u
/* Folded text is written in slices of this many input bytes (at most
 * three output bytes each, see imap_text_fold). */
#define FOLD_SLICE_BYTES 512u
/* Mod-sequences are 63-bit (RFC 7162 mod-sequence-value). */
#define MODSEQ_MAX ((uint64_t)INT64_MAX)

static_assert(BODY_CHUNK_BYTES % 4 == 0, "base64 chunks hold whole quanta");
static_assert(IMAP_PARSER_DEPTH_MAX < 1000, "recursion depth stays small");
static_assert(FOLD_SLICE_BYTES >= 4, "a slice holds more than an incomplete character");
static_assert((unsigned char)IMAP_SEARCH_BODY_TEXT_SEPARATOR == 0xffu,
              "the separator is a byte UTF-8 never uses");

enum arg_kind {
    ARG_NONE = 0,
    ARG_STRING,   /* astring, folded */
    ARG_HEADER,   /* field name, then a string */
    ARG_DATE,     /* RFC 3501 date */
    ARG_NUMBER64, /* LARGER / SMALLER */
    ARG_INTERVAL, /* OLDER / YOUNGER: nz-number seconds */
    ARG_KEYWORD,
    ARG_SET,
    ARG_NOT,
    ARG_OR,
    ARG_MODSEQ,
};

struct key_def {
    const char *name;
    uint8_t     op;     /* enum imap_search_op */
    uint8_t     arg;    /* enum arg_kind */
    uint32_t    number; /* flag bit */
    const char *field;  /* header field of FROM, TO, ... */
};

static const struct key_def key_defs[] = {
    { "ALL", IMAP_SEARCH_OP_ALL, ARG_NONE, 0, NULL },
    { "ANSWERED", IMAP_SEARCH_OP_FLAG, ARG_NONE, IMAP_FLAG_ANSWERED, NULL },
    { "BCC", IMAP_SEARCH_OP_HEADER, ARG_STRING, 0, "Bcc" },
    { "BEFORE", IMAP_SEARCH_OP_BEFORE, ARG_DATE, 0, NULL },
    { "BODY", IMAP_SEARCH_OP_BODY, ARG_STRING, 0, NULL },
    { "CC", IMAP_SEARCH_OP_HEADER, ARG_STRING, 0, "Cc" },
    { "DELETED", IMAP_SEARCH_OP_FLAG, ARG_NONE, IMAP_FLAG_DELETED, NULL },
    { "DRAFT", IMAP_SEARCH_OP_FLAG, ARG_NONE, IMAP_FLAG_DRAFT, NULL },
    { "FLAGGED", IMAP_SEARCH_OP_FLAG, ARG_NONE, IMAP_FLAG_FLAGGED, NULL },
    { "FROM", IMAP_SEARCH_OP_HEADER, ARG_STRING, 0, "From" },
    { "HEADER", IMAP_SEARCH_OP_HEADER, ARG_HEADER, 0, NULL },
    { "KEYWORD", IMAP_SEARCH_OP_KEYWORD, ARG_KEYWORD, 0, NULL },
    { "LARGER", IMAP_SEARCH_OP_LARGER, ARG_NUMBER64, 0, NULL },
    { "MODSEQ", IMAP_SEARCH_OP_MODSEQ, ARG_MODSEQ, 0, NULL },
    { "NEW", IMAP_SEARCH_OP_NEW, ARG_NONE, 0, NULL },
    { "NOT", IMAP_SEARCH_OP_NOT, ARG_NOT, 0, NULL },
    { "OLD", IMAP_SEARCH_OP_OLD, ARG_NONE, 0, NULL },
    { "OLDER", IMAP_SEARCH_OP_OLDER, ARG_INTERVAL, 0, NULL },
    { "ON", IMAP_SEARCH_OP_ON, ARG_DATE, 0, NULL },
    { "OR", IMAP_SEARCH_OP_OR, ARG_OR, 0, NULL },
    { "RECENT", IMAP_SEARCH_OP_FLAG, ARG_NONE, IMAP_FLAG_RECENT, NULL },
    { "SEEN", IMAP_SEARCH_OP_FLAG, ARG_NONE, IMAP_FLAG_SEEN, NULL },
    { "SENTBEFORE", IMAP_SEARCH_OP_SENTBEFORE, ARG_DATE, 0, NULL },
    { "SENTON", IMAP_SEARCH_OP_SENTON, ARG_DATE, 0, NULL },
    { "SENTSINCE", IMAP_SEARCH_OP_SENTSINCE, ARG_DATE, 0, NULL },
    { "SINCE", IMAP_SEARCH_OP_SINCE, ARG_DATE, 0, NULL },
    { "SMALLER", IMAP_SEARCH_OP_SMALLER, ARG_NUMBER64, 0, NULL },
    { "SUBJECT", IMAP_SEARCH_OP_HEADER, ARG_STRING, 0, "Subject" },
    { "TEXT", IMAP_SEARCH_OP_TEXT, ARG_STRING, 0, NULL },
    { "TO", IMAP_SEARCH_OP_HEADER, ARG_STRING, 0, "To" },
    { "UID", IMAP_SEARCH_OP_UID, ARG_SET, 0, NULL },
    { "UNANSWERED", IMAP_SEARCH_OP_UNFLAG, ARG_NONE, IMAP_FLAG_ANSWERED, NULL },
    { "UNDELETED", IMAP_SEARCH_OP_UNFLAG, ARG_NONE, IMAP_FLAG_DELETED, NULL },
    { "UNDRAFT", IMAP_SEARCH_OP_UNFLAG, ARG_NONE, IMAP_FLAG_DRAFT, NULL },
    { "UNFLAGGED", IMAP_SEARCH_OP_UNFLAG, ARG_NONE, IMAP_FLAG_FLAGGED, NULL },
    { "UNKEYWORD", IMAP_SEARCH_OP_UNKEYWORD, ARG_KEYWORD, 0, NULL },
    { "UNSEEN", IMAP_SEARCH_OP_UNFLAG, ARG_NONE, IMAP_FLAG_SEEN, NULL },
    { "YOUNGER", IMAP_SEARCH_OP_YOUNGER, ARG_INTERVAL, 0, NULL },
};

struct parser {
    const struct imap_parsed         *parsed;
    const struct imap_search_storage *st;
    struct imap_search               *search;
    size_t                            key_count;
    size_t                            ranges_used;
    size_t                            text_used;
    enum imap_search_error            error;
};

/* One message being matched; MIME structure and sent date are worked out
 * at most once. */
struct match {
    const struct imap_search         *search;
    const struct imap_message        *m;
    const struct imap_search_context *ctx;
    size_t                            part_count; /* valid when is_mime_done */
    bool                              is_mime_done;
    bool                              is_sent_done;
    int64_t                           sent_day;
};

/* Writes folded text into a bounded buffer (imap_search_body_text): the
 * same folding the finder does, pieces of any size, a character split
 * between pieces kept in carry until the next one. */
struct folder {
    char         *out;
    size_t        cap;
    size_t        len;
    unsigned char carry[4]; /* an incomplete UTF-8 sequence from the last piece */
    size_t        carry_len;
    bool          is_full;
};

static bool parse_sequence(struct parser *p, uint32_t node, unsigned depth, uint32_t and_key);
static uint32_t parse_key(struct parser *p, uint32_t *node, unsigned depth);
static bool parse_argument(struct parser *p, uint32_t key, const struct key_def *def,
                           uint32_t *node, unsigned depth);
static bool parse_return(struct parser *p, uint32_t list);
static uint32_t key_new(struct parser *p, enum imap_search_op op);
static bool fail(struct parser *p, enum imap_search_error error);
static uint32_t take_node(struct parser *p, uint32_t *node);
static bool node_string(struct parser *p, uint32_t node, char *out, size_t out_bytes,
                        size_t *len_out);
static bool arena_put(struct parser *p, const char *bytes, size_t len, struct span *out);
static bool parse_folded(struct parser *p, uint32_t node, struct span *out);
static bool parse_set(struct parser *p, struct imap_seqset *set, struct span text);
static bool digits_u64(struct span text, uint64_t *value_out);
static bool date_parse(struct span text, int64_t *day_out);
static int month_of(const char *s);
static int64_t days_from_civil(int64_t year, unsigned month, unsigned day);
static unsigned days_in_month(int64_t year, unsigned month);
static int64_t floor_div(int64_t a, int64_t b);
static bool match_key(struct match *mt, uint32_t index);
static bool keyword_is_set(const struct imap_message *m, struct span name);
static bool set_contains(const struct imap_seqset *set, uint32_t n, uint32_t star);
static size_t header_block_len(const struct imap_message *m);
static bool header_contains(const struct imap_message *m, struct span name, struct span needle);
static bool text_contains(struct match *mt, struct span needle);
static bool body_contains(struct match *mt, struct span needle);
static bool folded_contains(const char *text, size_t len, struct span needle);
static bool part_is_text_leaf(const struct imap_mime_part *part);
static bool part_is_attached_header(const struct imap_mime_part *parts, size_t i,
                                    size_t data_len);
static void header_feed(const char *hdr, size_t len, struct imap_text_finder *finder);
static bool part_body_contains(const struct imap_message *m, const struct imap_mime_part *part,
                               struct span needle);
static bool finder_sink(void *arg, const char *utf8, size_t len);
static void part_decode(const char *data, size_t data_len, const struct imap_mime_part *part,
                        bool (*sink)(void *arg, const char *utf8, size_t len), void *arg);
static bool folder_sink(void *arg, const char *utf8, size_t len);
static void folder_put(struct folder *f, const char *utf8, size_t len);
static void folder_fold(struct folder *f, const char *utf8, size_t len);
static void folder_end(struct folder *f, bool is_partial_searched);
static void folder_separator(struct folder *f);
static void header_fold(const char *hdr, size_t len, struct folder *f);
static size_t utf8_incomplete_tail(const unsigned char *u, size_t len);
static bool mime_ready(struct match *mt);
static int64_t sent_day(struct match *mt);
static bool sent_date_parse(const char *s, size_t len, int64_t *day_out);
static int64_t internal_day(const struct imap_message *m);
static bool span_equals_span_nocase(struct span a, struct span b);
static void out_compact_set(struct imap_out *out, const uint32_t *numbers, size_t count);

enum imap_search_error
imap_search_parse(struct imap_search *search, const struct imap_parsed *parsed, uint32_t first,
                  unsigned flags, const struct imap_search_storage *storage)
{
    ASSERT(search != NULL);
    ASSERT(parsed != NULL);
    ASSERT(storage != NULL);
    ASSERT(storage->keys != NULL);
    ASSERT(storage->keys_max >= 1);
    memset(search, 0, sizeof(*search));
    search->keys = storage->keys;
    search->root = IMAP_SEARCH_NONE;
    search->is_uid = parsed->is_uid;
    struct parser p = { .parsed = parsed, .st = storage, .search = search };

    uint32_t node = first;
    const struct imap_node *n = node != IMAP_NODE_NONE ? &parsed->nodes[node] : NULL;
    if (n != NULL && n->kind == IMAP_NODE_ATOM && span_equals_nocase(n->text, "RETURN")) {
        node = imap_node_next(parsed, node);
        if (node == IMAP_NODE_NONE || parsed->nodes[node].kind != IMAP_NODE_LIST) {
            return IMAP_SEARCH_BAD_RETURN;
        }
        if (!parse_return(&p, node)) {
            return p.error;
        }
        search->is_esearch = true;
        node = imap_node_next(parsed, node);
        n = node != IMAP_NODE_NONE ? &parsed->nodes[node] : NULL;
    } else if ((flags & IMAP_SEARCH_F_REV2) != 0) {
        search->is_esearch = true;
        search->return_mask = IMAP_SEARCH_RETURN_ALL;
    }
    if (n != NULL && n->kind == IMAP_NODE_ATOM && span_equals_nocase(n->text, "CHARSET")) {
        node = imap_node_next(parsed, node);
        char name[IMAP_TEXT_CHARSET_NAME_MAX];
        size_t name_len;
        if (node == IMAP_NODE_NONE) {
            return IMAP_SEARCH_MISSING_ARGUMENT;
        }
        if (!node_string(&p, node, name, sizeof(name), &name_len)) {
            return p.error == IMAP_SEARCH_STRING_TOO_LONG ? IMAP_SEARCH_BADCHARSET : p.error;
        }
        struct span cs = span_make(name, name_len);
        if (!span_equals_nocase(cs, "UTF-8") && !span_equals_nocase(cs, "US-ASCII")) {
            return IMAP_SEARCH_BADCHARSET;
        }
        node = imap_node_next(parsed, node);
    }
    if (node == IMAP_NODE_NONE) {
        return IMAP_SEARCH_MISSING_ARGUMENT;
    }
    uint32_t root = key_new(&p, IMAP_SEARCH_OP_AND);
    if (root == IMAP_SEARCH_NONE || !parse_sequence(&p, node, 0, root)) {
        return p.error;
    }
    search->root = root;
    search->key_count = p.key_count;
    return IMAP_SEARCH_OK;
}

const char *
imap_search_error_text(enum imap_search_error error)
{
    switch (error) {
    case IMAP_SEARCH_OK:
        return "OK";
    case IMAP_SEARCH_BADCHARSET:
        return "Unsupported charset";
    case IMAP_SEARCH_SYNTAX:
        return "Invalid search arguments";
    case IMAP_SEARCH_UNKNOWN_KEY:
        return "Unknown search key";
    case IMAP_SEARCH_MISSING_ARGUMENT:
        return "Missing search argument";
    case IMAP_SEARCH_BAD_STRING:
        return "Invalid search string";
    case IMAP_SEARCH_BAD_DATE:
        return "Invalid date (want d-Mon-yyyy)";
    case IMAP_SEARCH_BAD_NUMBER:
        return "Invalid number";
    case IMAP_SEARCH_BAD_SET:
        return "Invalid sequence set";
    case IMAP_SEARCH_BAD_RETURN:
        return "Invalid RETURN options";
    case IMAP_SEARCH_NO_SAVE:
        return "SEARCHRES (SAVE, $) not supported";
    case IMAP_SEARCH_TOO_DEEP:
        return "Search keys nested too deeply";
    case IMAP_SEARCH_TOO_MANY_KEYS:
        return "Too many search keys";
    case IMAP_SEARCH_TOO_MANY_RANGES:
        return "Too many sequence ranges";
    case IMAP_SEARCH_STRING_TOO_LONG:
        return "Search string too long";
    case IMAP_SEARCH_TEXT_FULL:
        return "Search strings too long in total";
    }
    return "Invalid search arguments";
}

unsigned
imap_search_needs(const struct imap_search *search)
{
    ASSERT(search != NULL);
    return search->needs;
}

bool
imap_search_match(const struct imap_search *search, const struct imap_message *m,
                  const struct imap_search_context *ctx)
{
    ASSERT(search != NULL);
    ASSERT(m != NULL);
    ASSERT(ctx != NULL);
    ASSERT(search->root != IMAP_SEARCH_NONE);
    if ((search->needs & IMAP_SEARCH_NEEDS_BODY) != 0) {
        ASSERT(ctx->parts != NULL);
        ASSERT(ctx->parts_cap >= 1);
        ASSERT(ctx->parts_cap <= IMAP_MIME_PARTS_MAX);
    }
    struct match mt = { .search = search, .m = m, .ctx = ctx };
    return match_key(&mt, search->root);
}

bool
imap_search_body_text_suffices(const struct imap_search *search)
{
    ASSERT(search != NULL);
    /* Only BODY and TEXT set IMAP_SEARCH_NEEDS_BODY (parse_argument), and
     * both read the body through body_contains() / text_contains(), which
     * take the body text when the message has it. A key added later that
     * reads the body some other way must make this false for it. */
    return (search->needs & IMAP_SEARCH_NEEDS_BODY) != 0;
}

int
imap_search_body_text(const char *data, size_t data_len, struct imap_mime_part *parts,
                      size_t parts_cap, char *out, size_t out_bytes, size_t *body_len_out,
                      size_t *len_out)
{
    ASSERT(data != NULL || data_len == 0);
    ASSERT(parts != NULL);
    ASSERT(parts_cap >= 1 && parts_cap <= IMAP_MIME_PARTS_MAX);
    ASSERT(out != NULL || out_bytes == 0);
    ASSERT(body_len_out != NULL && len_out != NULL);
    *body_len_out = 0;
    *len_out = 0;
    struct imap_mime_result result;
    if (data == NULL || imap_mime_parse(data, data_len, parts, parts_cap, &result) != 0 ||
        result.part_count == 0) {
        /* As mime_ready(): no structure, nothing but the header is searched. */
        return 0;
    }
    size_t part_count = result.part_count;
    struct folder f = { .out = out, .cap = out_bytes };
    bool is_first = true;
    /* The text leaves, each as body_contains() reads it. */
    for (size_t i = 0; i < part_count && !f.is_full; i++) {
        if (!part_is_text_leaf(&parts[i])) {
            continue;
        }
        if (!is_first) {
            folder_separator(&f);
        }
        is_first = false;
        part_decode(data, data_len, &parts[i], folder_sink, &f);
        /* imap_text_finder_end(): a character left incomplete is a U+FFFD. */
        folder_end(&f, true);
    }
    size_t body_len = f.len;
    /* The headers of attached messages, each as text_contains() feeds it. */
    for (size_t i = 1; i < part_count && !f.is_full; i++) {
        if (!part_is_attached_header(parts, i, data_len)) {
            continue;
        }
        folder_separator(&f);
        header_fold(data + parts[i].header_offset, parts[i].header_size, &f);
        /* text_contains() asks the finder without imap_text_finder_end(). */
        folder_end(&f, false);
    }
    if (f.is_full) {
        return -ENOBUFS;
    }
    *body_len_out = body_len;
    *len_out = f.len;
    return 0;
}

bool
imap_search_modseq_of_ends(const struct imap_search *search)
{
    ASSERT(search != NULL);
    const unsigned ends = IMAP_SEARCH_RETURN_MIN | IMAP_SEARCH_RETURN_MAX;
    return search->is_esearch && search->has_modseq && (search->return_mask & ends) != 0 &&
           (search->return_mask & ~ends) == 0;
}

int
imap_search_format(const struct imap_search *search, struct span tag, const uint32_t *numbers,
                   size_t count, uint64_t highest_modseq, struct imap_out *out)
{
    ASSERT(search != NULL);
    ASSERT(out != NULL);
    ASSERT(numbers != NULL || count == 0);
    for (size_t i = 1; i < count; i++) {
        ASSERT(numbers[i - 1] < numbers[i]);
    }
    bool has_modseq = search->has_modseq && count > 0;
    if (!search->is_esearch) {
        imap_out_cstr(out, "* SEARCH");
        for (size_t i = 0; i < count && !out->is_overflow; i++) {
            imap_out_char(out, ' ');
            imap_out_uint(out, numbers[i]);
        }
        if (has_modseq) {
            imap_out_cstr(out, " (MODSEQ ");
            imap_out_uint(out, highest_modseq);
            imap_out_char(out, ')');
        }
        imap_out_cstr(out, "\r\n");
        return out->is_overflow ? -ENOBUFS : 0;
    }
    imap_out_cstr(out, "* ESEARCH (TAG ");
    imap_out_string(out, tag.ptr, tag.len, 0);
    imap_out_char(out, ')');
    if (search->is_uid) {
        imap_out_cstr(out, " UID");
    }
    unsigned mask = search->return_mask;
    if (count > 0 && (mask & IMAP_SEARCH_RETURN_MIN) != 0) {
        imap_out_cstr(out, " MIN ");
        imap_out_uint(out, numbers[0]);
    }
    if (count > 0 && (mask & IMAP_SEARCH_RETURN_MAX) != 0) {
        imap_out_cstr(out, " MAX ");
        imap_out_uint(out, numbers[count - 1]);
    }
    if ((mask & IMAP_SEARCH_RETURN_COUNT) != 0) {
        imap_out_cstr(out, " COUNT ");
        imap_out_uint(out, count);
    }
    if (count > 0 && (mask & IMAP_SEARCH_RETURN_ALL) != 0) {
        imap_out_cstr(out, " ALL ");
        out_compact_set(out, numbers, count);
    }
    if (has_modseq) {
        imap_out_cstr(out, " MODSEQ ");
        imap_out_uint(out, highest_modseq);
    }
    imap_out_cstr(out, "\r\n");
    return out->is_overflow ? -ENOBUFS : 0;
}

/* Compiling. */

/* The keys from node to the end of its sibling chain become the operands
 * of and_key. Each round consumes at least one node. */
static bool
parse_sequence(struct parser *p, uint32_t node, unsigned depth, uint32_t and_key)
{
    uint32_t last = IMAP_SEARCH_NONE;
    if (node == IMAP_NODE_NONE) {
        return fail(p, IMAP_SEARCH_SYNTAX); /* "()" */
    }
    while (node != IMAP_NODE_NONE) {
        uint32_t key = parse_key(p, &node, depth);
        if (key == IMAP_SEARCH_NONE) {
            return false;
        }
        if (last == IMAP_SEARCH_NONE) {
            p->st->keys[and_key].child = key;
        } else {
            p->st->keys[last].next = key;
        }
        last = key;
    }
    return true;
}

/* One search key starting at *node; *node moves past it. Returns the key,
 * or IMAP_SEARCH_NONE with p->error set. */
static uint32_t
parse_key(struct parser *p, uint32_t *node, unsigned depth)
{
    if (depth > IMAP_PARSER_DEPTH_MAX) {
        fail(p, IMAP_SEARCH_TOO_DEEP);
        return IMAP_SEARCH_NONE;
    }
    uint32_t here = *node;
    const struct imap_node *n = &p->parsed->nodes[here];
    *node = imap_node_next(p->parsed, here);
    if (n->kind == IMAP_NODE_LIST) {
        if (depth + 1 > IMAP_PARSER_DEPTH_MAX) {
            fail(p, IMAP_SEARCH_TOO_DEEP);
            return IMAP_SEARCH_NONE;
        }
        uint32_t key = key_new(p, IMAP_SEARCH_OP_AND);
        if (key == IMAP_SEARCH_NONE ||
            !parse_sequence(p, imap_node_first_child(p->parsed, here), depth + 1, key)) {
            return IMAP_SEARCH_NONE;
        }
        return key;
    }
    if (n->kind != IMAP_NODE_ATOM) {
        fail(p, IMAP_SEARCH_SYNTAX);
        return IMAP_SEARCH_NONE;
    }
    const struct key_def *def = NULL;
    for (size_t i = 0; i < sizeof(key_defs) / sizeof(key_defs[0]); i++) {
        if (span_equals_nocase(n->text, key_defs[i].name)) {
            def = &key_defs[i];
            break;
        }
    }
    if (def == NULL) {
        char c = n->text.len > 0 ? n->text.ptr[0] : '\0';
        if (!((c >= '0' && c <= '9') || c == '*' || c == '$')) {
            fail(p, IMAP_SEARCH_UNKNOWN_KEY);
            return IMAP_SEARCH_NONE;
        }
        uint32_t key = key_new(p, IMAP_SEARCH_OP_SEQ);
        if (key == IMAP_SEARCH_NONE || !parse_set(p, &p->st->keys[key].set, n->text)) {
            return IMAP_SEARCH_NONE;
        }
        return key;
    }
    uint32_t key = key_new(p, (enum imap_search_op)def->op);
    if (key == IMAP_SEARCH_NONE || !parse_argument(p, key, def, node, depth)) {
        return IMAP_SEARCH_NONE;
    }
    return key;
}

/* The arguments of one key (def) into key; *node is the node after the
 * key's name. */
static bool
parse_argument(struct parser *p, uint32_t key, const struct key_def *def, uint32_t *node,
               unsigned depth)
{
    struct imap_search_key *k = &p->st->keys[key];
    k->number = def->number;
    uint32_t arg;
    switch ((enum arg_kind)def->arg) {
    case ARG_NONE:
        return true;
    case ARG_STRING:
        if ((arg = take_node(p, node)) == IMAP_NODE_NONE || !parse_folded(p, arg, &k->text)) {
            return false;
        }
        if (def->field != NULL) {
            k->name = span_make(def->field, strlen(def->field));
            p->search->needs |= IMAP_SEARCH_NEEDS_HEADER;
        } else {
            p->search->needs |= IMAP_SEARCH_NEEDS_HEADER | IMAP_SEARCH_NEEDS_BODY;
        }
        return true;
    case ARG_HEADER: {
        char name[IMAP_TEXT_NEEDLE_BYTES_MAX];
        size_t name_len;
        if ((arg = take_node(p, node)) == IMAP_NODE_NONE ||
            !node_string(p, arg, name, sizeof(name), &name_len) ||
            !arena_put(p, name, name_len, &k->name)) {
            return false;
        }
        if ((arg = take_node(p, node)) == IMAP_NODE_NONE || !parse_folded(p, arg, &k->text)) {
            return false;
        }
        p->search->needs |= IMAP_SEARCH_NEEDS_HEADER;
        return true;
    }
    case ARG_DATE: {
        int64_t day;
        char text[32];
        size_t len;
        if ((arg = take_node(p, node)) == IMAP_NODE_NONE) {
            return false;
        }
        if (!node_string(p, arg, text, sizeof(text), &len) ||
            !date_parse(span_make(text, len), &day)) {
            return fail(p, IMAP_SEARCH_BAD_DATE);
        }
        k->number = (uint64_t)(day + DAY_BIAS);
        if (def->op == IMAP_SEARCH_OP_SENTBEFORE || def->op == IMAP_SEARCH_OP_SENTON ||
            def->op == IMAP_SEARCH_OP_SENTSINCE) {
            p->search->needs |= IMAP_SEARCH_NEEDS_HEADER;
        }
        return true;
    }
    case ARG_NUMBER64:
    case ARG_INTERVAL: {
        if ((arg = take_node(p, node)) == IMAP_NODE_NONE) {
            return false;
        }
        const struct imap_node *a = &p->parsed->nodes[arg];
        uint64_t value;
        if (a->kind != IMAP_NODE_ATOM || !digits_u64(a->text, &value) ||
            (def->arg == ARG_INTERVAL && (value == 0 || value > UINT32_MAX))) {
            return fail(p, IMAP_SEARCH_BAD_NUMBER);
        }
        k->number = value;
        return true;
    }
    case ARG_KEYWORD: {
        if ((arg = take_node(p, node)) == IMAP_NODE_NONE) {
            return false;
        }
        const struct imap_node *a = &p->parsed->nodes[arg];
        if (a->kind != IMAP_NODE_ATOM || a->text.len == 0) {
            return fail(p, IMAP_SEARCH_SYNTAX);
        }
        unsigned bit = imap_flag_from_name(a->text);
        if (bit != 0) {
            k->op = def->op == IMAP_SEARCH_OP_KEYWORD ? IMAP_SEARCH_OP_FLAG : IMAP_SEARCH_OP_UNFLAG;
            k->number = bit;
            return true;
        }
        if (a->text.len > IMAP_TEXT_NEEDLE_BYTES_MAX) {
            return fail(p, IMAP_SEARCH_STRING_TOO_LONG);
        }
        return arena_put(p, a->text.ptr, a->text.len, &k->name);
    }
    case ARG_SET: {
        if ((arg = take_node(p, node)) == IMAP_NODE_NONE) {
            return false;
        }
        const struct imap_node *a = &p->parsed->nodes[arg];
        if (a->kind != IMAP_NODE_ATOM) {
            return fail(p, IMAP_SEARCH_BAD_SET);
        }
        return parse_set(p, &k->set, a->text);
    }
    case ARG_NOT: {
        if (*node == IMAP_NODE_NONE) {
            return fail(p, IMAP_SEARCH_MISSING_ARGUMENT);
        }
        uint32_t child = parse_key(p, node, depth + 1);
        if (child == IMAP_SEARCH_NONE) {
            return false;
        }
        p->st->keys[key].child = child;
        return true;
    }
    case ARG_OR: {
        uint32_t a_key = IMAP_SEARCH_NONE;
        uint32_t b_key = IMAP_SEARCH_NONE;
        if (*node == IMAP_NODE_NONE) {
            return fail(p, IMAP_SEARCH_MISSING_ARGUMENT);
        }
        a_key = parse_key(p, node, depth + 1);
        if (a_key == IMAP_SEARCH_NONE) {
            return false;
        }
        if (*node == IMAP_NODE_NONE) {
            return fail(p, IMAP_SEARCH_MISSING_ARGUMENT);
        }
        b_key = parse_key(p, node, depth + 1);
        if (b_key == IMAP_SEARCH_NONE) {
            return false;
        }
        p->st->keys[key].child = a_key;
        p->st->keys[a_key].next = b_key;
        return true;
    }
    case ARG_MODSEQ: {
        /* MODSEQ [entry-name entry-type-req] mod-sequence-valzer */
        if ((arg = take_node(p, node)) == IMAP_NODE_NONE) {
            return false;
        }
        const struct imap_node *a = &p->parsed->nodes[arg];
        uint64_t value;
        if (a->kind != IMAP_NODE_ATOM || !digits_u64(a->text, &value)) {
            /* entry-name: "/flags/<flag>", then priv / shared / all. */
            char entry[128];
            size_t entry_len;
            if (!node_string(p, arg, entry, sizeof(entry), &entry_len) || entry_len < 8 ||
                !span_equals_nocase(span_make(entry, 7), "/flags/")) {
                return fail(p, IMAP_SEARCH_SYNTAX);
            }
            if ((arg = take_node(p, node)) == IMAP_NODE_NONE) {
                return false;
            }
            a = &p->parsed->nodes[arg];
            if (a->kind != IMAP_NODE_ATOM || (!span_equals_nocase(a->text, "priv") &&
                                              !span_equals_nocase(a->text, "shared") &&
                                              !span_equals_nocase(a->text, "all"))) {
                return fail(p, IMAP_SEARCH_SYNTAX);
            }
            if ((arg = take_node(p, node)) == IMAP_NODE_NONE) {
                return false;
            }
            a = &p->parsed->nodes[arg];
        }
        if (a->kind != IMAP_NODE_ATOM || !digits_u64(a->text, &value) || value > MODSEQ_MAX) {
            return fail(p, IMAP_SEARCH_BAD_NUMBER);
        }
        k->number = value;
        p->search->has_modseq = true;
        return true;
    }
    }
    return fail(p, IMAP_SEARCH_SYNTAX);
}

/* RETURN (...): MIN MAX ALL COUNT; SAVE is refused; () means ALL. */
static bool
parse_return(struct parser *p, uint32_t list)
{
    unsigned mask = 0;
    for (uint32_t c = imap_node_first_child(p->parsed, list); c != IMAP_NODE_NONE;
         c = imap_node_next(p->parsed, c)) {
        const struct imap_node *n = &p->parsed->nodes[c];
        if (n->kind != IMAP_NODE_ATOM) {
            return fail(p, IMAP_SEARCH_BAD_RETURN);
        }
        if (span_equals_nocase(n->text, "MIN")) {
            mask |= IMAP_SEARCH_RETURN_MIN;
        } else if (span_equals_nocase(n->text, "MAX")) {
            mask |= IMAP_SEARCH_RETURN_MAX;
        } else if (span_equals_nocase(n->text, "ALL")) {
            mask |= IMAP_SEARCH_RETURN_ALL;
        } else if (span_equals_nocase(n->text, "COUNT")) {
            mask |= IMAP_SEARCH_RETURN_COUNT;
        } else if (span_equals_nocase(n->text, "SAVE")) {
            return fail(p, IMAP_SEARCH_NO_SAVE);
        } else {
            return fail(p, IMAP_SEARCH_BAD_RETURN);
        }
    }
    p->search->return_mask = mask != 0 ? mask : IMAP_SEARCH_RETURN_ALL;
    return true;
}

static uint32_t
key_new(struct parser *p, enum imap_search_op op)
{
    if (p->key_count >= p->st->keys_max) {
        fail(p, IMAP_SEARCH_TOO_MANY_KEYS);
        return IMAP_SEARCH_NONE;
    }
    uint32_t index = (uint32_t)p->key_count++;
    struct imap_search_key *k = &p->st->keys[index];
    memset(k, 0, sizeof(*k));
    k->op = op;
    k->next = IMAP_SEARCH_NONE;
    k->child = IMAP_SEARCH_NONE;
    return index;
}

/* Record the first error; returns false so callers can "return fail()". */
static bool
fail(struct parser *p, enum imap_search_error error)
{
    if (p->error == IMAP_SEARCH_OK) {
        p->error = error;
    }
    return false;
}

/* The next node as a key's argument, moving *node on; IMAP_NODE_NONE
 * (and MISSING_ARGUMENT) at the end. */
static uint32_t
take_node(struct parser *p, uint32_t *node)
{
    uint32_t here = *node;
    if (here == IMAP_NODE_NONE) {
        fail(p, IMAP_SEARCH_MISSING_ARGUMENT);
        return IMAP_NODE_NONE;
    }
    *node = imap_node_next(p->parsed, here);
    return here;
}

/* An astring (atom, quoted, inline literal; NIL as its text) into out. */
static bool
node_string(struct parser *p, uint32_t node, char *out, size_t out_bytes, size_t *len_out)
{
    const struct imap_node *n = &p->parsed->nodes[node];
    if (!imap_node_is_string(n)) {
        return fail(p, IMAP_SEARCH_BAD_STRING);
    }
    if (n->kind == IMAP_NODE_QUOTED && (n->flags & IMAP_NODE_F_ESCAPED) != 0) {
        long len = imap_parser_unquote(n->text, out, out_bytes);
        if (len < 0) {
            return fail(p, IMAP_SEARCH_STRING_TOO_LONG);
        }
        *len_out = (size_t)len;
        return true;
    }
    if (n->text.len > out_bytes) {
        return fail(p, IMAP_SEARCH_STRING_TOO_LONG);
    }
    if (n->text.len > 0) {
        memcpy(out, n->text.ptr, n->text.len);
    }
    *len_out = n->text.len;
    return true;
}

static bool
arena_put(struct parser *p, const char *bytes, size_t len, struct span *out)
{
    if (len == 0) {
        *out = span_make("", 0); /* the arena may be NULL when it has 0 bytes */
        return true;
    }
    if (len > p->st->text_bytes - p->text_used) {
        return fail(p, IMAP_SEARCH_TEXT_FULL);
    }
    char *dst = p->st->text + p->text_used;
    memcpy(dst, bytes, len);
    p->text_used += len;
    *out = span_make(dst, len);
    return true;
}

/* A search string, case-folded, into the arena. */
static bool
parse_folded(struct parser *p, uint32_t node, struct span *out)
{
    char raw[IMAP_TEXT_NEEDLE_BYTES_MAX];
    char folded[3 * IMAP_TEXT_NEEDLE_BYTES_MAX];
    size_t raw_len;
    if (!node_string(p, node, raw, sizeof(raw), &raw_len)) {
        return false;
    }
    size_t len = imap_text_fold(raw, raw_len, folded, sizeof(folded));
    if (len > IMAP_TEXT_NEEDLE_BYTES_MAX) {
        return fail(p, IMAP_SEARCH_STRING_TOO_LONG);
    }
    return arena_put(p, folded, len, out);
}

/* A sequence set over the rest of the shared range array; it keeps only
 * the ranges it uses ("*" stays symbolic, see set_contains). */
static bool
parse_set(struct parser *p, struct imap_seqset *set, struct span text)
{
    size_t left = p->st->ranges_max - p->ranges_used;
    if (p->st->ranges == NULL || left < 4) {
        return fail(p, IMAP_SEARCH_TOO_MANY_RANGES);
    }
    imap_seqset_init(set, p->st->ranges + p->ranges_used, left);
    enum imap_seqset_result result = imap_seqset_parse(set, text);
    if (result == IMAP_SEQSET_TOO_MANY) {
        return fail(p, IMAP_SEARCH_TOO_MANY_RANGES);
    }
    if (result != IMAP_SEQSET_OK) {
        return fail(p, IMAP_SEARCH_BAD_SET);
    }
    if (set->is_searchres) {
        return fail(p, IMAP_SEARCH_NO_SAVE);
    }
    ASSERT(set->is_merged);
    p->ranges_used += set->count;
    set->ranges_max = set->count;
    return true;
}

/* 1..20 digits, no overflow. */
static bool
digits_u64(struct span text, uint64_t *value_out)
{
    if (text.len == 0 || text.len > 20) {
        return false;
    }
    uint64_t value = 0;
    for (size_t i = 0; i < text.len; i++) {
        char c = text.ptr[i];
        if (c < '0' || c > '9') {
            return false;
        }
        unsigned d = (unsigned)(c - '0');
        if (value > (UINT64_MAX - d) / 10) {
            return false;
        }
        value = value * 10 + d;
    }
    *value_out = value;
    return true;
}

/* RFC 3501 date: date-day "-" date-month "-" date-year ("1-Feb-1994"). */
static bool
date_parse(struct span text, int64_t *day_out)
{
    const char *s = text.ptr;
    size_t len = text.len;
    size_t i = 0;
    unsigned day = 0;
    while (i < len && i < 2 && s[i] >= '0' && s[i] <= '9') {
        day = day * 10 + (unsigned)(s[i] - '0');
        i++;
    }
    if (i == 0 || i + 9 != len || s[i] != '-' || s[i + 4] != '-') {
        return false;
    }
    int month = month_of(s + i + 1);
    if (month == 0) {
        return false;
    }
    unsigned year = 0;
    for (size_t k = i + 5; k < len; k++) {
        if (s[k] < '0' || s[k] > '9') {
            return false;
        }
        year = year * 10 + (unsigned)(s[k] - '0');
    }
    if (year == 0 || day == 0 || day > days_in_month(year, (unsigned)month)) {
        return false;
    }
    *day_out = days_from_civil(year, (unsigned)month, day);
    return true;
}

/* 1..12 for a three-letter English month name (any case), else 0. */
static int
month_of(const char *s)
{
    static const char names[] = "janfebmaraprmayjunjulaugsepoctnovdec";
    char lower[3];
    for (size_t i = 0; i < 3; i++) {
        char c = s[i];
        lower[i] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
    }
    for (int m = 0; m < 12; m++) {
        if (memcmp(names + 3 * m, lower, 3) == 0) {
            return m + 1;
        }
    }
    return 0;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
 * days_from_civil). */
static int64_t
days_from_civil(int64_t year, unsigned month, unsigned day)
{
    year -= month <= 2 ? 1 : 0;
    int64_t era = (year >= 0 ? year : year - 399) / 400;
    unsigned yoe = (unsigned)(year - era * 400);
    unsigned mp = month > 2 ? month - 3 : month + 9;
    unsigned doy = (153 * mp + 2) / 5 + day - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static unsigned
days_in_month(int64_t year, unsigned month)
{
    static const unsigned char days[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
    if (month == 2 && (year % 4 == 0 && (year % 100 != 0 || year % 400 == 0))) {
        return 29;
    }
    return days[month - 1];
}

static int64_t
floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    if ((a % b != 0) && ((a < 0) != (b < 0))) {
        q--;
    }
    return q;
}

/* Matching. */

static bool
match_key(struct match *mt, uint32_t index)
{
    const struct imap_search_key *k = &mt->search->keys[index];
    const struct imap_message *m = mt->m;
    int64_t day = (int64_t)k->number - DAY_BIAS;
    switch ((enum imap_search_op)k->op) {
    case IMAP_SEARCH_OP_AND:
        for (uint32_t c = k->child; c != IMAP_SEARCH_NONE; c = mt->search->keys[c].next) {
            if (!match_key(mt, c)) {
                return false;
            }
        }
        return true;
    case IMAP_SEARCH_OP_OR:
        return match_key(mt, k->child) || match_key(mt, mt->search->keys[k->child].next);
    case IMAP_SEARCH_OP_NOT:
        return !match_key(mt, k->child);
    case IMAP_SEARCH_OP_ALL:
        return true;
    case IMAP_SEARCH_OP_FLAG:
        return (m->flags & k->number) != 0;
    case IMAP_SEARCH_OP_UNFLAG:
        return (m->flags & k->number) == 0;
    case IMAP_SEARCH_OP_NEW:
        return (m->flags & IMAP_FLAG_RECENT) != 0 && (m->flags & IMAP_FLAG_SEEN) == 0;
    case IMAP_SEARCH_OP_OLD:
        return (m->flags & IMAP_FLAG_RECENT) == 0;
    case IMAP_SEARCH_OP_KEYWORD:
        return keyword_is_set(m, k->name);
    case IMAP_SEARCH_OP_UNKEYWORD:
        return !keyword_is_set(m, k->name);
    case IMAP_SEARCH_OP_LARGER:
        return m->size > k->number;
    case IMAP_SEARCH_OP_SMALLER:
        return m->size < k->number;
    case IMAP_SEARCH_OP_BEFORE:
        return internal_day(m) < day;
    case IMAP_SEARCH_OP_ON:
        return internal_day(m) == day;
    case IMAP_SEARCH_OP_SINCE:
        return internal_day(m) >= day;
    case IMAP_SEARCH_OP_SENTBEFORE:
        return sent_day(mt) < day;
    case IMAP_SEARCH_OP_SENTON:
        return sent_day(mt) == day;
    case IMAP_SEARCH_OP_SENTSINCE:
        return sent_day(mt) >= day;
    case IMAP_SEARCH_OP_OLDER:
        return m->internal_date <= mt->ctx->now - (int64_t)k->number;
    case IMAP_SEARCH_OP_YOUNGER:
        return m->internal_date >= mt->ctx->now - (int64_t)k->number;
    case IMAP_SEARCH_OP_MODSEQ:
        return m->modseq >= k->number;
    case IMAP_SEARCH_OP_SEQ:
        return set_contains(&k->set, m->seq, mt->ctx->messages);
    case IMAP_SEARCH_OP_UID:
        return set_contains(&k->set, m->uid, mt->ctx->uid_max);
    case IMAP_SEARCH_OP_HEADER:
        return header_contains(m, k->name, k->text);
    case IMAP_SEARCH_OP_BODY:
        return body_contains(mt, k->text);
    case IMAP_SEARCH_OP_TEXT:
        return text_contains(mt, k->text);
    }
    ASSERT(false); /* every op is handled above */
    return false;
}

/* Keyword names compare case-insensitively (RFC 3501 flags). */
static bool
keyword_is_set(const struct imap_message *m, struct span name)
{
    size_t count = m->keyword_count < 32 ? m->keyword_count : 32;
    for (size_t i = 0; i < count; i++) {
        if ((m->keyword_mask & (1u << i)) != 0 && m->keyword_names != NULL &&
            m->keyword_names[i] != NULL && span_equals_nocase(name, m->keyword_names[i])) {
            return true;
        }
    }
    return false;
}

/* n in the parsed set, "*" standing for star (0: an empty mailbox, where
 * items with "*" match nothing). O(log ranges). */
static bool
set_contains(const struct imap_seqset *set, uint32_t n, uint32_t star)
{
    size_t lo = 0;
    size_t hi = set->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (set->ranges[mid].last < n) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    if (lo < set->count && set->ranges[lo].first <= n) {
        return true;
    }
    if (!set->has_star || star == 0) {
        return false;
    }
    uint32_t first = set->star_lo == 0 || set->star_lo > star ? star : set->star_lo;
    uint32_t last = set->star_hi == 0 || set->star_hi < star ? star : set->star_hi;
    return n >= first && n <= last;
}

/* Bytes of data that may hold the top-level header block. */
static size_t
header_block_len(const struct imap_message *m)
{
    return m->data_len < IMAP_MIME_HEADER_BYTES_MAX ? m->data_len : IMAP_MIME_HEADER_BYTES_MAX;
}

/* A field named name whose decoded value contains needle (an empty needle:
 * the field exists). */
static bool
header_contains(const struct imap_message *m, struct span name, struct span needle)
{
    if (m->data == NULL) {
        return false;
    }
    char value[IMAP_TEXT_HEADER_BYTES_MAX];
    size_t len = header_block_len(m);
    size_t pos = 0;
    struct imap_rfc822_field field;
    /* Each field takes at least one byte. */
    for (size_t round = 0; round <= len && imap_rfc822_header_next(m->data, len, &pos, &field);
         round++) {
        if (!span_equals_span_nocase(field.name, name)) {
            continue;
        }
        if (needle.len == 0) {
            return true;
        }
        size_t n = imap_text_decode_header(field.value.ptr, field.value.len, value, sizeof(value));
        if (imap_text_contains(value, n, needle.ptr, needle.len)) {
            return true;
        }
    }
    return false;
}

/* TEXT: the top-level header, the headers of attached messages, and the
 * text parts (the last two from the body text when the message has it). */
static bool
text_contains(struct match *mt, struct span needle)
{
    const struct imap_message *m = mt->m;
    if (m->data == NULL) {
        return false;
    }
    if (needle.len == 0) {
        return true;
    }
    struct imap_text_finder finder;
    imap_text_finder_init(&finder, needle.ptr, needle.len);
    header_feed(m->data, header_block_len(m), &finder);
    if (finder.is_found) {
        return true;
    }
    if (m->body_folded != NULL) {
        return folded_contains(m->body_folded, m->body_folded_text_len, needle);
    }
    if (!mime_ready(mt)) {
        return false;
    }
    const struct imap_mime_part *parts = mt->ctx->parts;
    for (size_t i = 1; i < mt->part_count; i++) {
        if (!part_is_attached_header(parts, i, m->data_len)) {
            continue;
        }
        imap_text_finder_init(&finder, needle.ptr, needle.len);
        header_feed(m->data + parts[i].header_offset, parts[i].header_size, &finder);
        if (finder.is_found) {
            return true;
        }
    }
    return body_contains(mt, needle);
}

/* BODY: every text leaf, decoded (or the body text made of them). */
static bool
body_contains(struct match *mt, struct span needle)
{
    if (mt->m->body_folded != NULL) {
        return needle.len == 0 ||
               folded_contains(mt->m->body_folded, mt->m->body_folded_len, needle);
    }
    if (mt->m->data == NULL) {
        return false;
    }
    if (needle.len == 0) {
        return true;
    }
    if (!mime_ready(mt)) {
        return false;
    }
    const struct imap_mime_part *parts = mt->ctx->parts;
    for (size_t i = 0; i < mt->part_count; i++) {
        if (part_is_text_leaf(&parts[i]) && part_body_contains(mt->m, &parts[i], needle)) {
            return true;
        }
    }
    return false;
}

/* The needle is folded UTF-8, so it holds no separator byte and cannot
 * match across two parts of a body text. */
static bool
folded_contains(const char *text, size_t len, struct span needle)
{
    return len >= needle.len && memmem(text, len, needle.ptr, needle.len) != NULL;
}

/* A part whose decoded body BODY searches. */
static bool
part_is_text_leaf(const struct imap_mime_part *part)
{
    return part->first_child == IMAP_MIME_NONE &&
           (part->flags & (IMAP_MIME_IS_MULTIPART | IMAP_MIME_IS_MESSAGE)) == 0 &&
           (part->flags & IMAP_MIME_IS_TEXT) != 0;
}

/* parts[i] is the header of an attached message (TEXT searches it), and
 * lies inside the data (imap_mime_parse guarantees it; checked anyway). */
static bool
part_is_attached_header(const struct imap_mime_part *parts, size_t i, size_t data_len)
{
    uint32_t parent = parts[i].parent;
    return parent != IMAP_MIME_NONE && (parts[parent].flags & IMAP_MIME_IS_MESSAGE) != 0 &&
           parts[i].header_offset <= data_len &&
           parts[i].header_size <= data_len - parts[i].header_offset;
}

/* Feed a header block to a finder as "Name: decoded value" lines. */
static void
header_feed(const char *hdr, size_t len, struct imap_text_finder *finder)
{
    char value[IMAP_TEXT_HEADER_BYTES_MAX];
    size_t pos = 0;
    struct imap_rfc822_field field;
    for (size_t round = 0; round <= len && imap_rfc822_header_next(hdr, len, &pos, &field);
         round++) {
        size_t n = imap_text_decode_header(field.value.ptr, field.value.len, value, sizeof(value));
        if (imap_text_finder_feed(finder, field.name.ptr, field.name.len) ||
            imap_text_finder_feed(finder, ": ", 2) || imap_text_finder_feed(finder, value, n) ||
            imap_text_finder_feed(finder, "\r\n", 2)) {
            return;
        }
    }
}

/* One text part searched as it is decoded. */
static bool
part_body_contains(const struct imap_message *m, const struct imap_mime_part *part,
                   struct span needle)
{
    struct imap_text_finder finder;
    imap_text_finder_init(&finder, needle.ptr, needle.len);
    part_decode(m->data, m->data_len, part, finder_sink, &finder);
    return imap_text_finder_end(&finder);
}

static bool
finder_sink(void *arg, const char *utf8, size_t len)
{
    return imap_text_finder_feed(arg, utf8, len);
}

/* One text part: transfer encoding undone and charset converted in
 * chunks, so any body size costs a few KiB of stack; the UTF-8 goes to
 * sink piece by piece until it returns true (found, or full). The
 * streaming match and the body text both come from here, so they read the
 * same characters. */
static void
part_decode(const char *data, size_t data_len, const struct imap_mime_part *part,
            bool (*sink)(void *arg, const char *utf8, size_t len), void *arg)
{
    if (part->body_offset > data_len || part->body_size > data_len - part->body_offset) {
        return;
    }
    const char *body = data + part->body_offset;
    size_t len = part->body_size;
    enum { CTE_IDENTITY, CTE_BASE64, CTE_QP } cte = CTE_IDENTITY;
    if (span_equals_nocase(part->encoding, "base64")) {
        cte = CTE_BASE64;
    } else if (span_equals_nocase(part->encoding, "quoted-printable")) {
        cte = CTE_QP;
    }
    struct span charset = { 0 };
    size_t ppos = 0;
    struct imap_rfc822_param param;
    if (part->params.ptr != NULL) {
        while (imap_rfc822_param_next(part->params.ptr, part->params.len, &ppos, &param)) {
            if (span_equals_nocase(param.name, "charset") && param.value.ptr != NULL) {
                charset = span_make(param.value.ptr, param.value.len);
                break;
            }
        }
    }
    struct imap_text_conv conv;
    if (imap_text_conv_open(&conv, charset) != 0) {
        /* Unknown charset: read the bytes as UTF-8 (ASCII text still matches). */
        int rc = imap_text_conv_open(&conv, span_make("", 0));
        ASSERT(rc == 0);
    }
    bool is_stopped = false;
    char dec[BODY_CARRY_BYTES + BODY_CHUNK_BYTES];
    char utf[BODY_CHUNK_BYTES];
    char digits[BODY_CHUNK_BYTES];
    size_t carry = 0;
    size_t pos = 0;
    bool is_final = false;
    /* Each round consumes input up to the end of the part. */
    while (!is_final && !is_stopped) {
        size_t n = 0;
        if (cte == CTE_IDENTITY) {
            n = len - pos < BODY_CHUNK_BYTES ? len - pos : BODY_CHUNK_BYTES;
            memcpy(dec + carry, body + pos, n);
            pos += n;
        } else if (cte == CTE_BASE64) {
            /* Only alphabet characters, so a chunk holds whole quanta and
             * stray bytes cannot fail the decode; '=' ends the data. */
            size_t q = 0;
            while (pos < len && q < BODY_CHUNK_BYTES) {
                unsigned char c = (unsigned char)body[pos];
                if (c == '=') {
                    pos = len;
                    break;
                }
                if (base64_digit_value(c, '/') >= 0) {
                    digits[q++] = (char)c;
                }
                pos++;
            }
            long r = imap_decode_base64(digits, q, dec + carry, BODY_CHUNK_BYTES);
            n = r > 0 ? (size_t)r : 0;
        } else {
            size_t cut = len - pos <= BODY_CHUNK_BYTES ? len : pos + BODY_CHUNK_BYTES;
            if (cut < len) {
                /* End the chunk after a line break, or at least not inside
                 * "=XX", a soft break or trailing white space. */
                const char *lf = memrchr(body + pos, '\n', cut - pos);
                if (lf != NULL) {
                    cut = (size_t)(lf - body) + 1;
                } else {
                    while (cut > pos + 3 && (body[cut - 1] == '=' || body[cut - 2] == '=' ||
                                             body[cut - 1] == ' ' || body[cut - 1] == '\t')) {
                        cut--;
                    }
                }
            }
            long r = imap_decode_qp(body + pos, cut - pos, dec + carry, BODY_CHUNK_BYTES);
            n = r > 0 ? (size_t)r : 0;
            pos = cut;
        }
        is_final = pos >= len;
        size_t total = carry + n;
        size_t off = 0;
        /* Each round converts something or stops at an incomplete tail. */
        while (off < total && !is_stopped) {
            size_t used;
            size_t out = imap_text_conv_run(&conv, dec + off, total - off, is_final, utf,
                                            sizeof(utf), &used);
            is_stopped = sink(arg, utf, out);
            off += used;
            if (used == 0) {
                break;
            }
        }
        carry = total - off;
        if (carry > BODY_CARRY_BYTES) {
            carry = 0; /* cannot happen with the converters we have; drop it */
        }
        memmove(dec, dec + off, carry);
    }
    imap_text_conv_close(&conv);
}


static bool
folder_sink(void *arg, const char *utf8, size_t len)
{
    struct folder *f = arg;
    folder_put(f, utf8, len);
    return f->is_full;
}

/* Fold a piece as imap_text_finder_feed() does: a character may be split
 * between pieces, so an incomplete sequence at the end waits in carry. */
static void
folder_put(struct folder *f, const char *utf8, size_t len)
{
    const unsigned char *u = (const unsigned char *)utf8;
    size_t pos = 0;
    if (f->carry_len > 0 && len > 0) {
        unsigned char tmp[8];
        size_t have = f->carry_len;
        size_t take = len < 4 ? len : 4;
        memcpy(tmp, f->carry, have);
        memcpy(tmp + have, u, take);
        bool is_incomplete;
        uint32_t cp;
        size_t n = utf8_decode(tmp, have + take, &cp, &is_incomplete);
        if (is_incomplete) {
            /* Still short: all of the piece joins the carry. */
            ASSERT(have + take < sizeof(f->carry));
            memcpy(f->carry, tmp, have + take);
            f->carry_len = have + take;
            return;
        }
        /* The carry is a valid prefix, so the character covers it all. */
        ASSERT(n >= have);
        f->carry_len = 0;
        folder_fold(f, (const char *)tmp, n);
        pos = n - have;
    }
    /* Each round folds a slice cut before any incomplete character. */
    while (pos < len && !f->is_full) {
        size_t n = len - pos < FOLD_SLICE_BYTES ? len - pos : FOLD_SLICE_BYTES;
        size_t tail = utf8_incomplete_tail(u + pos, n);
        if (pos + n == len && tail > 0) {
            memcpy(f->carry, u + len - tail, tail);
            f->carry_len = tail;
        }
        ASSERT(tail < n || pos + n == len);
        folder_fold(f, utf8 + pos, n - tail);
        pos += n - tail;
        if (pos + tail == len) {
            break;
        }
    }
}

/* Fold text that ends on a character boundary (or is the last of it). */
static void
folder_fold(struct folder *f, const char *utf8, size_t len)
{
    if (f->is_full || len == 0) {
        return;
    }
    size_t room = f->cap - f->len;
    if (room / 3 >= len) {
        f->len += imap_text_fold(utf8, len, f->out + f->len, room);
        return;
    }
    /* Near the end of the buffer: fold aside to see whether it fits. */
    char tmp[3 * FOLD_SLICE_BYTES];
    size_t pos = 0;
    while (pos < len) {
        size_t n = len - pos < FOLD_SLICE_BYTES ? len - pos : FOLD_SLICE_BYTES;
        if (pos + n < len) {
            n -= utf8_incomplete_tail((const unsigned char *)utf8 + pos, n);
        }
        size_t w = imap_text_fold(utf8 + pos, n, tmp, sizeof(tmp));
        if (w > f->cap - f->len) {
            f->is_full = true;
            return;
        }
        memcpy(f->out + f->len, tmp, w);
        f->len += w;
        pos += n;
    }
}

/* End of one text: a character still incomplete becomes one U+FFFD when
 * the matcher would have searched it (imap_text_finder_end), else it is
 * dropped. */
static void
folder_end(struct folder *f, bool is_partial_searched)
{
    if (f->carry_len > 0 && is_partial_searched) {
        folder_fold(f, (const char *)f->carry, f->carry_len);
    }
    f->carry_len = 0;
}

static void
folder_separator(struct folder *f)
{
    ASSERT(f->carry_len == 0);
    if (f->is_full || f->len == f->cap) {
        f->is_full = true;
        return;
    }
    f->out[f->len++] = IMAP_SEARCH_BODY_TEXT_SEPARATOR;
}

/* A header block folded as header_feed() gives it to a finder. */
static void
header_fold(const char *hdr, size_t len, struct folder *f)
{
    char value[IMAP_TEXT_HEADER_BYTES_MAX];
    size_t pos = 0;
    struct imap_rfc822_field field;
    for (size_t round = 0;
         round <= len && !f->is_full && imap_rfc822_header_next(hdr, len, &pos, &field);
         round++) {
        size_t n = imap_text_decode_header(field.value.ptr, field.value.len, value, sizeof(value));
        folder_put(f, field.name.ptr, field.name.len);
        folder_put(f, ": ", 2);
        folder_put(f, value, n);
        folder_put(f, "\r\n", 2);
    }
}

/* Bytes at the end of u[0..len) that are an incomplete character. A lead
 * byte always starts a character (no character covers one after its first
 * byte), and an incomplete one has at most three bytes, so only the last
 * lead byte among the last three can start it. */
static size_t
utf8_incomplete_tail(const unsigned char *u, size_t len)
{
    for (size_t back = 1; back <= 3 && back <= len; back++) {
        unsigned char c = u[len - back];
        if (c >= 0x80 && c <= 0xbf) {
            continue; /* a continuation byte */
        }
        bool is_incomplete;
        uint32_t cp;
        (void)utf8_decode(u + len - back, back, &cp, &is_incomplete); /* only the flag counts */
        return is_incomplete ? back : 0;
    }
    return 0;
}

static bool
mime_ready(struct match *mt)
{
    if (!mt->is_mime_done) {
        struct imap_mime_result result;
        int rc = imap_mime_parse(mt->m->data, mt->m->data_len, mt->ctx->parts,
                                 mt->ctx->parts_cap, &result);
        mt->part_count = rc == 0 ? result.part_count : 0;
        mt->is_mime_done = true;
    }
    return mt->part_count > 0;
}

/* Calendar day of the Date: field in its own zone, or of the internal
 * date when there is no readable Date: field. */
static int64_t
sent_day(struct match *mt)
{
    if (mt->is_sent_done) {
        return mt->sent_day;
    }
    const struct imap_message *m = mt->m;
    mt->sent_day = internal_day(m);
    mt->is_sent_done = true;
    if (m->data == NULL) {
        return mt->sent_day;
    }
    size_t len = header_block_len(m);
    size_t pos = 0;
    struct imap_rfc822_field field;
    for (size_t round = 0; round <= len && imap_rfc822_header_next(m->data, len, &pos, &field);
         round++) {
        if (span_equals_nocase(field.name, "Date")) {
            int64_t day;
            if (sent_date_parse(field.value.ptr, field.value.len, &day)) {
                mt->sent_day = day;
            }
            break;
        }
    }
    return mt->sent_day;
}

/* RFC 5322 date-time, leniently: [day-of-week ","] day month year
 * hour ":" minute [":" second] [zone]. Two- and three-digit years as
 * RFC 5322 section 4.3 says. Only the date part is returned: it is the
 * calendar date in the message's own zone. */
static bool
sent_date_parse(const char *s, size_t len, int64_t *day_out)
{
    size_t i = imap_rfc822_skip_cfws(s, len, 0);
    if (i < len && ((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z'))) {
        while (i < len && ((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z'))) {
            i++;
        }
        i = imap_rfc822_skip_cfws(s, len, i);
        if (i < len && s[i] == ',') {
            i++;
        }
        i = imap_rfc822_skip_cfws(s, len, i);
    }
    unsigned day = 0;
    size_t start = i;
    while (i < len && i - start < 2 && s[i] >= '0' && s[i] <= '9') {
        day = day * 10 + (unsigned)(s[i++] - '0');
    }
    if (i == start) {
        return false;
    }
    i = imap_rfc822_skip_cfws(s, len, i);
    if (len - i < 3) {
        return false;
    }
    int month = month_of(s + i);
    if (month == 0) {
        return false;
    }
    i += 3;
    i = imap_rfc822_skip_cfws(s, len, i);
    unsigned year = 0;
    start = i;
    while (i < len && i - start < 4 && s[i] >= '0' && s[i] <= '9') {
        year = year * 10 + (unsigned)(s[i++] - '0');
    }
    size_t year_digits = i - start;
    if (year_digits < 2) {
        return false;
    }
    if (year_digits == 2) {
        year += year < 50 ? 2000 : 1900;
    } else if (year_digits == 3) {
        year += 1900;
    }
    i = imap_rfc822_skip_cfws(s, len, i);
    /* hour ":" minute: a date without a time is not an RFC 5322 date. */
    unsigned hour = 0;
    unsigned minute = 0;
    start = i;
    while (i < len && i - start < 2 && s[i] >= '0' && s[i] <= '9') {
        hour = hour * 10 + (unsigned)(s[i++] - '0');
    }
    if (i == start || i >= len || s[i] != ':') {
        return false;
    }
    i++;
    start = i;
    while (i < len && i - start < 2 && s[i] >= '0' && s[i] <= '9') {
        minute = minute * 10 + (unsigned)(s[i++] - '0');
    }
    if (i == start || hour > 23 || minute > 59) {
        return false;
    }
    if (year == 0 || day == 0 || day > days_in_month(year, (unsigned)month)) {
        return false;
    }
    *day_out = days_from_civil(year, (unsigned)month, day);
    return true;
}

/* Calendar day of the internal date in its own offset. */
static int64_t
internal_day(const struct imap_message *m)
{
    return floor_div(m->internal_date + (int64_t)m->internal_date_tz_minutes * 60, 86400);
}

static bool
span_equals_span_nocase(struct span a, struct span b)
{
    if (a.len != b.len) {
        return false;
    }
    for (size_t i = 0; i < a.len; i++) {
        unsigned char x = (unsigned char)a.ptr[i];
        unsigned char y = (unsigned char)b.ptr[i];
        if (x >= 'A' && x <= 'Z') {
            x = (unsigned char)(x + 32);
        }
        if (y >= 'A' && y <= 'Z') {
            y = (unsigned char)(y + 32);
        }
        if (x != y) {
            return false;
        }
    }
    return true;
}

/* "2:3,5": runs of consecutive numbers as ranges; linear. */
static void
out_compact_set(struct imap_out *out, const uint32_t *numbers, size_t count)
{
    size_t i = 0;
    while (i < count && !out->is_overflow) {
        size_t j = i;
        while (j + 1 < count && numbers[j + 1] == numbers[j] + 1) {
            j++;
        }
        if (i > 0) {
            imap_out_char(out, ',');
        }
        imap_out_uint(out, numbers[i]);
        if (j > i) {
            imap_out_char(out, ':');
            imap_out_uint(out, numbers[j]);
        }
        i = j + 1;
    }
}
