/*
 * filters/sieve_run_internal.h - what the parts of the Sieve interpreter
 * share (not a public header): the state of one sieve_run() call, the
 * variable scopes (RFC 5229), the editable header view (RFC 5293) and
 * the matcher every test goes through (match types, relational,
 * :list). sieve_run.c walks the tree and collects actions;
 * sieve_run_vars.c keeps variables and flags; sieve_run_header.c owns
 * the header view and address parsing; sieve_run_ext.c has the tests
 * and actions that need the world outside (spamtest, date, body,
 * duplicate, vacation).
 */
#ifndef TOASTER_FILTERS_SIEVE_RUN_INTERNAL_H
#define TOASTER_FILTERS_SIEVE_RUN_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "filters/sieve_run.h"
#include "filters/sieve_validate.h"

#define SIEVE_RUN_VARIABLES_MAX 255u           /* Pigeonhole's sieve_variables_max_scope_size */
#define SIEVE_RUN_VARIABLE_BYTES_MAX 4096u     /* Pigeonhole's sieve_variables_max_variable_size */
#define SIEVE_RUN_VARIABLE_NAME_BYTES 80u      /* "global." + identifier + NUL */
#define SIEVE_RUN_MATCH_VALUES 10u             /* ${0} .. ${9} */
#define SIEVE_RUN_STRING_BYTES_MAX (64u * 1024u) /* one string after ${} expansion */
#define SIEVE_RUN_TMP_BYTES_MAX (8u * 1024u * 1024u) /* expansions of one command or test */
#define SIEVE_RUN_ADDHEADER_BYTES_MAX 2048u    /* Pigeonhole's sieve_editheader_max_header_size */
/* Decoding a header value to UTF-8 grows it at most threefold (one
 * invalid byte becomes U+FFFD, a Latin-1 byte two bytes). */
#define SIEVE_RUN_DECODE_GROWTH 3u

/* A borrowed view: text need not be NUL-terminated. */
struct rstr {
    const char *text;
    size_t len;
};

struct run_var {
    char name[SIEVE_RUN_VARIABLE_NAME_BYTES]; /* lower case */
    size_t name_len;
    bool is_global_alias; /* "global NAME": reads and writes go to the global scope */
    char *value;          /* malloc'd, cap bytes (value + NUL) */
    size_t len;
    size_t cap;
};

/* The variables of one script (or the global ones): at most
 * SIEVE_RUN_VARIABLES_MAX, each value at most SIEVE_RUN_VARIABLE_BYTES_MAX. */
struct run_scope {
    struct run_var *vars; /* SIEVE_RUN_VARIABLES_MAX slots, calloc'd on first use */
    size_t count;
};

/* One field of the header view: the original bytes or an added field. */
struct run_field {
    const char *raw; /* from the name to the end of its last line, line end included */
    size_t raw_len;
    size_t name_len; /* SIZE_MAX: not a field (a stray line kept as it is) */
    bool is_deleted;
};

/* An include on the stack or already done (for :once and loops). */
struct run_include {
    const struct sieve_script *script;
    bool is_global;
    char name[SIEVE_IDENTIFIER_BYTES_MAX * 4];
};

struct run {
    const struct sieve_message *message;
    const struct sieve_env *env;
    const struct sieve_script *script; /* the script running now (main or included) */
    /* header view */
    struct run_field *fields;
    size_t field_count;
    size_t field_cap;
    size_t header_bytes; /* sum of live raw_len, bounded by SIEVE_RUN_HEADER_BYTES_MAX */
    bool is_header_edited;
    struct sieve_arena edits; /* added fields' bytes, freed at the end of the run */
    char *scratch;      /* one unfolded value: scratch_cap bytes */
    char *scratch_addr; /* one address, or a decoded value: scratch_cap *
                           SIEVE_RUN_DECODE_GROWTH bytes */
    size_t scratch_cap;
    /* limits and counters */
    uint64_t steps;
    uint64_t steps_max;
    size_t actions_max;
    size_t redirects_max;
    size_t redirects;
    uint64_t work;
    uint64_t work_max;
    /* control */
    bool implicit_keep;
    bool is_kept; /* an explicit keep ran: the chain goes on */
    bool is_stopped;
    bool is_returned; /* "return": ends the current included script */
    /* strings made for one command or test (expansions), reset between them */
    struct sieve_arena tmp;
    /* variables */
    struct run_scope *scope; /* the current script's */
    struct run_scope globals;
    struct run_var match[SIEVE_RUN_MATCH_VALUES];
    size_t match_count;
    struct run_var flags; /* imap4flags' internal variable */
    /* include */
    struct run_include *stack; /* SIEVE_RUN_INCLUDE_DEPTH_MAX + 1 */
    size_t depth;
    struct run_include *done; /* SIEVE_RUN_INCLUDES_MAX */
    size_t done_count;
    struct sieve_actions *actions;
    struct sieve_run_error *error;
};

/* A match in progress: the expanded keys and, for :count, the count. */
struct matcher {
    const struct sieve_node *node;
    struct rstr *keys;
    size_t key_count;
    uint64_t count;
    bool is_capturing; /* :matches sets ${0}..${9} on success */
};

/* sieve_run.c */
int run_fail(struct run *run, int rc, uint32_t line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
int run_matcher_init(struct run *run, const struct sieve_node *node, const struct sieve_arg *keys,
                     struct matcher *m);
int run_matcher_value(struct run *run, struct matcher *m, const char *value, size_t len);
int run_matcher_end(struct run *run, struct matcher *m);
bool run_ascii_iequal(const char *a, size_t a_len, const char *b);
unsigned char run_lower(unsigned char c);
size_t run_utf8_char_len(const char *s, size_t left);
int run_add_action(struct run *run, enum sieve_action_type type, const char *target,
                   size_t target_len, const char *flags, uint32_t line,
                   struct sieve_action **action_out);

/* sieve_run_vars.c */
int run_expand(struct run *run, const struct sieve_string *s, struct rstr *out);
int run_expand_list(struct run *run, const struct sieve_arg *arg, struct rstr **out,
                    size_t *count_out);
int run_var_set(struct run *run, const char *name, size_t name_len, const char *value,
                size_t len, uint32_t line);
struct rstr run_var_get(struct run *run, const char *name, size_t name_len);
int run_var_assign(struct run *run, struct run_var *var, const char *value, size_t len);
void run_vars_free(struct run *run, struct run_scope *scope);
int run_cmd_set(struct run *run, const struct sieve_node *cmd);
int run_cmd_global(struct run *run, const struct sieve_node *cmd);
int run_set_match_values(struct run *run, const char *value, size_t len, const size_t *caps,
                         size_t cap_count);
int run_cmd_flags(struct run *run, const struct sieve_node *cmd);
int run_test_hasflag(struct run *run, const struct sieve_node *test);
int run_flags_from_list(struct run *run, const struct sieve_arg *list, const char **flags_out);
const char *run_flags_current(struct run *run);
char *run_flags_dedup(char *flags);
int run_flags_merge(struct run *run, const char *a, const char *b, const char **out);

/* sieve_run_header.c */
int run_header_load(struct run *run, const char *header, size_t len);
void run_header_free(struct run *run);
size_t run_field_next(struct run *run, size_t from, const char *name, size_t name_len);
size_t run_field_pick(struct run *run, const struct sieve_node *node, const char *name,
                      size_t name_len);
size_t run_field_value(struct run *run, size_t field);
size_t run_decode_2047(struct run *run, const char *in, size_t len);
bool run_address_next(const char *value, size_t len, size_t *pos, char *out, size_t *out_len);
bool run_address_part(enum sieve_address_part which, const char *addr, size_t len,
                      const char **part, size_t *part_len);
int run_cmd_addheader(struct run *run, const struct sieve_node *cmd);
int run_cmd_deleteheader(struct run *run, const struct sieve_node *cmd);
int run_header_render(struct run *run);

/* sieve_run_ext.c */
int run_test_spamtest(struct run *run, const struct sieve_node *test);
int run_test_virustest(struct run *run, const struct sieve_node *test);
int run_test_date(struct run *run, const struct sieve_node *test);
int run_test_body(struct run *run, const struct sieve_node *test);
int run_test_duplicate(struct run *run, const struct sieve_node *test);
int run_cmd_vacation(struct run *run, const struct sieve_node *cmd);

/* Exposed for tests through sieve_run.h's neighbours: SHA-256 of
 * data[0..len) as 64 lower-case hex digits and a NUL. */

#endif
