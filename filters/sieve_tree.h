/*
 * filters/sieve_tree.h - the syntax tree of one compiled Sieve script
 * (RFC 5228 section 8.2), the arena it lives in, the limits that bound
 * its compilation and the error list that compilation fills.
 *
 * The parser (sieve_parse) builds the tree; the validator
 * (sieve_validate) checks it against the table of commands and tests and
 * fills in the resolved fields (node id, tag ids, positional arguments,
 * match type, comparator ...). The interpreter only reads a validated
 * tree. Everything of one script (nodes, arguments, strings) is carved
 * from one arena and freed at once by sieve_script_free().
 * Limits: struct sieve_limits (defaults SIEVE_*_DEFAULT below).
 */
#ifndef TOASTER_FILTERS_SIEVE_TREE_H
#define TOASTER_FILTERS_SIEVE_TREE_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Defaults, each a ceiling as well: a caller may lower them. */
#define SIEVE_SCRIPT_BYTES_DEFAULT (1024u * 1024u)       /* whole script */
#define SIEVE_BLOCK_DEPTH_DEFAULT 32u                    /* nested { } blocks */
#define SIEVE_TEST_DEPTH_DEFAULT 32u                     /* nested tests (not, allof ...) */
#define SIEVE_STRING_BYTES_DEFAULT (64u * 1024u)         /* one string, decoded */
#define SIEVE_LIST_ENTRIES_DEFAULT 1024u                 /* strings in one string list */
#define SIEVE_NODES_DEFAULT 16384u                       /* commands + tests + arguments */
#define SIEVE_MEMORY_BYTES_DEFAULT (16u * 1024u * 1024u) /* the arena */
#define SIEVE_ERRORS_MAX 10u                             /* errors kept, like sievec */
#define SIEVE_ERROR_TEXT_BYTES 240u                      /* one message, without "line N: " */
#define SIEVE_IDENTIFIER_BYTES_MAX 64u                   /* identifiers and tags */
#define SIEVE_POSITIONAL_MAX 4u                          /* positional arguments of any command */

struct sieve_limits {
    size_t script_bytes_max;
    uint32_t block_depth_max;
    uint32_t test_depth_max;
    size_t string_bytes_max;
    size_t list_entries_max;
    size_t node_count_max;
    size_t memory_bytes_max;
    size_t error_count_max; /* 1 .. SIEVE_ERRORS_MAX */
};

/* The defaults above. */
static inline void
sieve_limits_default(struct sieve_limits *limits_out)
{
    limits_out->script_bytes_max = SIEVE_SCRIPT_BYTES_DEFAULT;
    limits_out->block_depth_max = SIEVE_BLOCK_DEPTH_DEFAULT;
    limits_out->test_depth_max = SIEVE_TEST_DEPTH_DEFAULT;
    limits_out->string_bytes_max = SIEVE_STRING_BYTES_DEFAULT;
    limits_out->list_entries_max = SIEVE_LIST_ENTRIES_DEFAULT;
    limits_out->node_count_max = SIEVE_NODES_DEFAULT;
    limits_out->memory_bytes_max = SIEVE_MEMORY_BYTES_DEFAULT;
    limits_out->error_count_max = SIEVE_ERRORS_MAX;
}

/* ---- errors ---- */

struct sieve_error {
    uint32_t line; /* 1-based; 0 for an error about the whole script */
    char text[SIEVE_ERROR_TEXT_BYTES];
};

/* Errors of one compilation, in the order found. At most count_max are
 * kept; is_truncated says more were found. */
struct sieve_errors {
    size_t count;
    size_t count_max;
    bool is_truncated;
    struct sieve_error items[SIEVE_ERRORS_MAX];
};

/* ---- the arena ---- */

struct sieve_arena_chunk {
    struct sieve_arena_chunk *next;
    size_t used;
    size_t size;
    /* data follows, aligned to max_align_t */
};

struct sieve_arena {
    struct sieve_arena_chunk *head;
    size_t bytes_total; /* malloc'd so far */
    size_t bytes_max;
    bool is_full; /* an allocation failed on bytes_max */
};

#define SIEVE_ARENA_CHUNK_BYTES (32u * 1024u)

static inline void
sieve_arena_init(struct sieve_arena *arena, size_t bytes_max)
{
    arena->head = NULL;
    arena->bytes_total = 0;
    arena->bytes_max = bytes_max;
    arena->is_full = false;
}

/* size bytes, zeroed, aligned for any type; NULL when the arena would
 * grow past bytes_max or malloc fails. */
static inline void *
sieve_arena_alloc(struct sieve_arena *arena, size_t size)
{
    const size_t align = _Alignof(max_align_t);
    const size_t header = (sizeof(struct sieve_arena_chunk) + align - 1) / align * align;
    if (size > arena->bytes_max) {
        arena->is_full = true;
        return NULL;
    }
    size = (size + align - 1) / align * align; /* rounds up */
    struct sieve_arena_chunk *chunk = arena->head;
    if (chunk == NULL || chunk->size - chunk->used < size) {
        size_t room = arena->bytes_max - arena->bytes_total; /* bytes_total <= bytes_max */
        size_t data = SIEVE_ARENA_CHUNK_BYTES;
        if (room >= header && data > room - header) {
            data = room - header; /* the last chunk takes what is left */
        }
        if (data < size) {
            data = size;
        }
        if (arena->bytes_total + header + data > arena->bytes_max) {
            arena->is_full = true;
            return NULL;
        }
        chunk = malloc(header + data);
        if (chunk == NULL) {
            return NULL;
        }
        chunk->used = 0;
        chunk->size = data;
        chunk->next = arena->head;
        arena->head = chunk;
        arena->bytes_total += header + data;
    }
    void *p = (char *)chunk + header + chunk->used;
    chunk->used += size;
    memset(p, 0, size);
    return p;
}

/* A NUL-terminated copy of s[0..len) in the arena, or NULL. */
static inline char *
sieve_arena_strdup(struct sieve_arena *arena, const char *s, size_t len)
{
    if (len == SIZE_MAX) {
        return NULL;
    }
    char *p = sieve_arena_alloc(arena, len + 1);
    if (p != NULL) {
        memcpy(p, s, len);
        p[len] = '\0';
    }
    return p;
}

static inline void
sieve_arena_free(struct sieve_arena *arena)
{
    struct sieve_arena_chunk *chunk = arena->head;
    while (chunk != NULL) {
        struct sieve_arena_chunk *next = chunk->next;
        free(chunk);
        chunk = next;
    }
    arena->head = NULL;
    arena->bytes_total = 0;
}

/* ---- the tree ---- */

/* Extensions, one bit each in struct sieve_script.extensions. */
enum sieve_ext {
    SIEVE_EXT_NONE = 0, /* core RFC 5228 */
    SIEVE_EXT_FILEINTO,
    SIEVE_EXT_REJECT,
    SIEVE_EXT_ENVELOPE,
    SIEVE_EXT_ENCODED_CHARACTER,
    SIEVE_EXT_VACATION,
    SIEVE_EXT_VACATION_SECONDS,
    SIEVE_EXT_SUBADDRESS,
    SIEVE_EXT_CMP_NUMERIC,
    SIEVE_EXT_RELATIONAL,
    SIEVE_EXT_IMAP4FLAGS,
    SIEVE_EXT_COPY,
    SIEVE_EXT_INCLUDE,
    SIEVE_EXT_VARIABLES,
    SIEVE_EXT_BODY,
    SIEVE_EXT_MAILBOX,
    SIEVE_EXT_DATE,
    SIEVE_EXT_INDEX,
    SIEVE_EXT_DUPLICATE,
    SIEVE_EXT_EDITHEADER,
    SIEVE_EXT_SPAMTEST,
    SIEVE_EXT_SPAMTESTPLUS,
    SIEVE_EXT_VIRUSTEST,
    SIEVE_EXT_EREJECT,
    SIEVE_EXT_CMP_OCTET,   /* "comparator-i;octet": always there, may be required */
    SIEVE_EXT_CMP_CASEMAP, /* "comparator-i;ascii-casemap": likewise */
    SIEVE_EXT_EXTLISTS,    /* RFC 6134: the :list match type, valid_ext_list */
    SIEVE_EXT_COUNT,
};

#define SIEVE_EXT_BIT(ext) (UINT64_C(1) << (unsigned)(ext))

/* Commands and tests the validator knows. */
enum sieve_id {
    SIEVE_ID_UNKNOWN = 0, /* only in a tree that failed validation */
    /* commands */
    SIEVE_CMD_REQUIRE,
    SIEVE_CMD_IF,
    SIEVE_CMD_ELSIF,
    SIEVE_CMD_ELSE,
    SIEVE_CMD_STOP,
    SIEVE_CMD_KEEP,
    SIEVE_CMD_DISCARD,
    SIEVE_CMD_REDIRECT,
    SIEVE_CMD_FILEINTO,
    SIEVE_CMD_REJECT,
    SIEVE_CMD_EREJECT,
    SIEVE_CMD_SET,
    SIEVE_CMD_SETFLAG,
    SIEVE_CMD_ADDFLAG,
    SIEVE_CMD_REMOVEFLAG,
    SIEVE_CMD_VACATION,
    SIEVE_CMD_INCLUDE,
    SIEVE_CMD_RETURN,
    SIEVE_CMD_GLOBAL,
    SIEVE_CMD_ADDHEADER,
    SIEVE_CMD_DELETEHEADER,
    /* tests */
    SIEVE_TEST_ADDRESS,
    SIEVE_TEST_ENVELOPE,
    SIEVE_TEST_HEADER,
    SIEVE_TEST_EXISTS,
    SIEVE_TEST_SIZE,
    SIEVE_TEST_ALLOF,
    SIEVE_TEST_ANYOF,
    SIEVE_TEST_NOT,
    SIEVE_TEST_TRUE,
    SIEVE_TEST_FALSE,
    SIEVE_TEST_STRING,
    SIEVE_TEST_HASFLAG,
    SIEVE_TEST_BODY,
    SIEVE_TEST_MAILBOXEXISTS,
    SIEVE_TEST_DATE,
    SIEVE_TEST_CURRENTDATE,
    SIEVE_TEST_SPAMTEST,
    SIEVE_TEST_VIRUSTEST,
    SIEVE_TEST_DUPLICATE,
    SIEVE_TEST_VALID_EXT_LIST,
};

/* Tagged arguments the validator knows (at most 64: a node keeps a mask). */
enum sieve_tag {
    SIEVE_TAG_UNKNOWN = 0,
    SIEVE_TAG_IS,
    SIEVE_TAG_CONTAINS,
    SIEVE_TAG_MATCHES,
    SIEVE_TAG_VALUE,      /* param: relational operator string */
    SIEVE_TAG_COUNT,      /* param: relational operator string */
    SIEVE_TAG_COMPARATOR, /* param: comparator name */
    SIEVE_TAG_ALL,
    SIEVE_TAG_LOCALPART,
    SIEVE_TAG_DOMAIN,
    SIEVE_TAG_USER,
    SIEVE_TAG_DETAIL,
    SIEVE_TAG_OVER,  /* param: number */
    SIEVE_TAG_UNDER, /* param: number */
    SIEVE_TAG_COPY,
    SIEVE_TAG_FLAGS, /* param: string list */
    SIEVE_TAG_CREATE,
    SIEVE_TAG_DAYS,      /* param: number */
    SIEVE_TAG_SECONDS,   /* param: number (vacation-seconds, duplicate) */
    SIEVE_TAG_SUBJECT,   /* param: string */
    SIEVE_TAG_FROM,      /* param: string */
    SIEVE_TAG_ADDRESSES, /* param: string list */
    SIEVE_TAG_MIME,
    SIEVE_TAG_HANDLE, /* param: string (vacation, duplicate) */
    SIEVE_TAG_PERSONAL,
    SIEVE_TAG_GLOBAL,
    SIEVE_TAG_ONCE,
    SIEVE_TAG_OPTIONAL,
    SIEVE_TAG_HEADER,   /* param: string (duplicate) */
    SIEVE_TAG_UNIQUEID, /* param: string (duplicate) */
    SIEVE_TAG_LAST,
    SIEVE_TAG_INDEX, /* param: number */
    SIEVE_TAG_ZONE,  /* param: string */
    SIEVE_TAG_ORIGINALZONE,
    SIEVE_TAG_RAW,
    SIEVE_TAG_CONTENT, /* param: string list */
    SIEVE_TAG_TEXT,
    SIEVE_TAG_PERCENT,
    SIEVE_TAG_LOWER,
    SIEVE_TAG_UPPER,
    SIEVE_TAG_LOWERFIRST,
    SIEVE_TAG_UPPERFIRST,
    SIEVE_TAG_QUOTEWILDCARD,
    SIEVE_TAG_LENGTH,
    SIEVE_TAG_LIST, /* extlists' match type */
    SIEVE_TAG_COUNT_ALL, /* not a tag: how many there are */
};

enum sieve_match {
    SIEVE_MATCH_IS = 0,
    SIEVE_MATCH_CONTAINS,
    SIEVE_MATCH_MATCHES,
    SIEVE_MATCH_VALUE,
    SIEVE_MATCH_COUNT,
    SIEVE_MATCH_LIST /* extlists (RFC 6134): keys are list names */
};
enum sieve_comparator { SIEVE_CMP_ASCII_CASEMAP = 0, SIEVE_CMP_OCTET, SIEVE_CMP_ASCII_NUMERIC };
enum sieve_address_part {
    SIEVE_ADDR_ALL = 0,
    SIEVE_ADDR_LOCALPART,
    SIEVE_ADDR_DOMAIN,
    SIEVE_ADDR_USER,
    SIEVE_ADDR_DETAIL
};
enum sieve_relation {
    SIEVE_REL_NONE = 0,
    SIEVE_REL_GT,
    SIEVE_REL_GE,
    SIEVE_REL_LT,
    SIEVE_REL_LE,
    SIEVE_REL_EQ,
    SIEVE_REL_NE
};
enum sieve_body_transform { SIEVE_BODY_TEXT = 0, SIEVE_BODY_RAW, SIEVE_BODY_CONTENT };

enum sieve_arg_type {
    SIEVE_ARG_NUMBER,
    SIEVE_ARG_STRING,      /* one string, no brackets */
    SIEVE_ARG_STRING_LIST, /* "[" string *("," string) "]" */
    SIEVE_ARG_TAG,
};

/* One string after lexing: escapes removed, line ends as CRLF,
 * dot-stuffing undone and (when "encoded-character" is required)
 * ${hex:}/${unicode:} decoded. text is NUL-terminated, but may hold NUL
 * bytes from ${hex:00}: use len. */
struct sieve_string {
    char *text;
    size_t len;
    uint32_t line;
    bool is_multiline;  /* came from text: ... . */
    bool has_variables; /* holds a ${name} reference ("variables" required) */
};

struct sieve_arg {
    enum sieve_arg_type type;
    uint32_t line;
    uint64_t number;              /* NUMBER, quantifier applied */
    struct sieve_string *strings; /* STRING (1) or STRING_LIST (>= 1) */
    size_t string_count;
    const char *tag; /* TAG: name without ':', as written */
    /* Filled by validation. */
    enum sieve_tag tag_id;   /* TAG */
    struct sieve_arg *param; /* TAG taking a value: that argument */
    bool is_tag_param;       /* this argument is some tag's value */
    struct sieve_arg *next;
};

/* A command or a test: identifier arguments [test / test-list] [block]. */
struct sieve_node {
    const char *name; /* as written */
    uint32_t line;
    bool is_test;
    struct sieve_arg *args; /* in script order, tags included */
    size_t arg_count;
    struct sieve_node *tests; /* a test or a test list (is_test_list) */
    size_t test_count;
    bool is_test_list;
    struct sieve_node *block; /* commands of { ... } (has_block) */
    size_t block_count;
    bool has_block;
    struct sieve_node *next; /* sibling */

    /* Filled by validation. */
    enum sieve_id id;
    uint64_t tag_mask; /* bit (1 << enum sieve_tag) per tag present */
    struct sieve_arg *positional[SIEVE_POSITIONAL_MAX]; /* in order */
    size_t positional_count;
    enum sieve_match match;                   /* default :is */
    enum sieve_relation relation;             /* with :value / :count */
    enum sieve_comparator comparator;         /* default i;ascii-casemap */
    enum sieve_address_part address_part;     /* default :all */
    enum sieve_body_transform body_transform; /* default :text */
};

/* A compiled script: owns its arena; free with sieve_script_free(). */
struct sieve_script {
    struct sieve_arena arena;
    struct sieve_node *commands; /* top level */
    size_t command_count;
    uint64_t extensions; /* SIEVE_EXT_BIT per required extension */
    size_t node_count;
};

/* The argument of tag on node (its value is ->param), or NULL when absent. */
static inline const struct sieve_arg *
sieve_node_tag(const struct sieve_node *node, enum sieve_tag tag)
{
    if ((node->tag_mask & (UINT64_C(1) << (unsigned)tag)) == 0) {
        return NULL;
    }
    for (const struct sieve_arg *a = node->args; a != NULL; a = a->next) {
        if (a->type == SIEVE_ARG_TAG && a->tag_id == tag) {
            return a;
        }
    }
    return NULL;
}

#endif
