/*
 * filters/sieve_validate.c - the semantic checks sievec makes on a parsed
 * Sieve script, and sieve_compile() which runs lexer, parser and these.
 *
 * Owns the table of commands, tests and tagged arguments of RFC 5228 and
 * the extensions we implement (the capability list below), the rules
 * about "require" (first, top level, known names; every extension used
 * must be required), argument shapes (tags before positional arguments,
 * each tag's value, positional count and types), tests and blocks each
 * command takes, if/elsif/else order, and the constant values some
 * arguments must have (comparators, relational operators, date parts,
 * zones, header names, variable names). It also decodes
 * encoded-character strings (RFC 5228 2.4.2.4) and marks strings that
 * hold variable references (RFC 5229).
 *
 * Up to limits->error_count_max errors are collected in script order.
 * Messages follow sievec's wording where it has one. Runs on the calling
 * thread; the walk recurses as deep as the parser allowed (bounded).
 */
#include "filters/sieve_validate.h"

#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "core/assertions.h"
#include "core/utf8.h"
#include "filters/sieve_parse.h"

static_assert((int)SIEVE_TAG_COUNT_ALL <= 64, "a node's tag_mask has 64 bits");
static_assert((int)SIEVE_EXT_COUNT <= 64, "script->extensions has 64 bits");

/* ---- the tables ---- */

enum param { P_NONE, P_STRING, P_STRING_LIST, P_NUMBER };

/* Tags of one group exclude each other (two match types, :over and
 * :under ...). */
enum group {
    G_NONE,
    G_MATCH,
    G_COMPARATOR,
    G_ADDRESS_PART,
    G_SIZE,
    G_BODY,
    G_ZONE,
    G_LOCATION,
    G_DUPLICATE_ID,
    G_CASE,
    G_CASE_FIRST,
    G_PERIOD,
};

struct tag_def {
    const char *name;
    enum sieve_tag id;
    enum sieve_ext ext; /* needed unless the command owns the tag */
    enum param param;
    enum group group;
};

static const struct tag_def tag_defs[] = {
    {"is", SIEVE_TAG_IS, SIEVE_EXT_NONE, P_NONE, G_MATCH},
    {"contains", SIEVE_TAG_CONTAINS, SIEVE_EXT_NONE, P_NONE, G_MATCH},
    {"matches", SIEVE_TAG_MATCHES, SIEVE_EXT_NONE, P_NONE, G_MATCH},
    {"value", SIEVE_TAG_VALUE, SIEVE_EXT_RELATIONAL, P_STRING, G_MATCH},
    {"count", SIEVE_TAG_COUNT, SIEVE_EXT_RELATIONAL, P_STRING, G_MATCH},
    {"comparator", SIEVE_TAG_COMPARATOR, SIEVE_EXT_NONE, P_STRING, G_COMPARATOR},
    {"all", SIEVE_TAG_ALL, SIEVE_EXT_NONE, P_NONE, G_ADDRESS_PART},
    {"localpart", SIEVE_TAG_LOCALPART, SIEVE_EXT_NONE, P_NONE, G_ADDRESS_PART},
    {"domain", SIEVE_TAG_DOMAIN, SIEVE_EXT_NONE, P_NONE, G_ADDRESS_PART},
    {"user", SIEVE_TAG_USER, SIEVE_EXT_SUBADDRESS, P_NONE, G_ADDRESS_PART},
    {"detail", SIEVE_TAG_DETAIL, SIEVE_EXT_SUBADDRESS, P_NONE, G_ADDRESS_PART},
    {"over", SIEVE_TAG_OVER, SIEVE_EXT_NONE, P_NUMBER, G_SIZE},
    {"under", SIEVE_TAG_UNDER, SIEVE_EXT_NONE, P_NUMBER, G_SIZE},
    {"copy", SIEVE_TAG_COPY, SIEVE_EXT_COPY, P_NONE, G_NONE},
    {"flags", SIEVE_TAG_FLAGS, SIEVE_EXT_IMAP4FLAGS, P_STRING_LIST, G_NONE},
    {"create", SIEVE_TAG_CREATE, SIEVE_EXT_MAILBOX, P_NONE, G_NONE},
    {"days", SIEVE_TAG_DAYS, SIEVE_EXT_VACATION, P_NUMBER, G_PERIOD},
    {"seconds", SIEVE_TAG_SECONDS, SIEVE_EXT_VACATION_SECONDS, P_NUMBER, G_PERIOD},
    {"subject", SIEVE_TAG_SUBJECT, SIEVE_EXT_VACATION, P_STRING, G_NONE},
    {"from", SIEVE_TAG_FROM, SIEVE_EXT_VACATION, P_STRING, G_NONE},
    {"addresses", SIEVE_TAG_ADDRESSES, SIEVE_EXT_VACATION, P_STRING_LIST, G_NONE},
    {"mime", SIEVE_TAG_MIME, SIEVE_EXT_VACATION, P_NONE, G_NONE},
    {"handle", SIEVE_TAG_HANDLE, SIEVE_EXT_VACATION, P_STRING, G_NONE},
    {"personal", SIEVE_TAG_PERSONAL, SIEVE_EXT_INCLUDE, P_NONE, G_LOCATION},
    {"global", SIEVE_TAG_GLOBAL, SIEVE_EXT_INCLUDE, P_NONE, G_LOCATION},
    {"once", SIEVE_TAG_ONCE, SIEVE_EXT_INCLUDE, P_NONE, G_NONE},
    {"optional", SIEVE_TAG_OPTIONAL, SIEVE_EXT_INCLUDE, P_NONE, G_NONE},
    {"header", SIEVE_TAG_HEADER, SIEVE_EXT_DUPLICATE, P_STRING, G_DUPLICATE_ID},
    {"uniqueid", SIEVE_TAG_UNIQUEID, SIEVE_EXT_DUPLICATE, P_STRING, G_DUPLICATE_ID},
    {"last", SIEVE_TAG_LAST, SIEVE_EXT_INDEX, P_NONE, G_NONE},
    {"index", SIEVE_TAG_INDEX, SIEVE_EXT_INDEX, P_NUMBER, G_NONE},
    {"zone", SIEVE_TAG_ZONE, SIEVE_EXT_DATE, P_STRING, G_ZONE},
    {"originalzone", SIEVE_TAG_ORIGINALZONE, SIEVE_EXT_DATE, P_NONE, G_ZONE},
    {"raw", SIEVE_TAG_RAW, SIEVE_EXT_BODY, P_NONE, G_BODY},
    {"content", SIEVE_TAG_CONTENT, SIEVE_EXT_BODY, P_STRING_LIST, G_BODY},
    {"text", SIEVE_TAG_TEXT, SIEVE_EXT_BODY, P_NONE, G_BODY},
    {"percent", SIEVE_TAG_PERCENT, SIEVE_EXT_SPAMTESTPLUS, P_NONE, G_NONE},
    {"lower", SIEVE_TAG_LOWER, SIEVE_EXT_VARIABLES, P_NONE, G_CASE},
    {"upper", SIEVE_TAG_UPPER, SIEVE_EXT_VARIABLES, P_NONE, G_CASE},
    {"lowerfirst", SIEVE_TAG_LOWERFIRST, SIEVE_EXT_VARIABLES, P_NONE, G_CASE_FIRST},
    {"upperfirst", SIEVE_TAG_UPPERFIRST, SIEVE_EXT_VARIABLES, P_NONE, G_CASE_FIRST},
    {"quotewildcard", SIEVE_TAG_QUOTEWILDCARD, SIEVE_EXT_VARIABLES, P_NONE, G_NONE},
    {"length", SIEVE_TAG_LENGTH, SIEVE_EXT_VARIABLES, P_NONE, G_NONE},
    {"list", SIEVE_TAG_LIST, SIEVE_EXT_EXTLISTS, P_NONE, G_MATCH},
};

#define T(x) (UINT64_C(1) << SIEVE_TAG_##x)
#define MATCH_CORE (T(IS) | T(CONTAINS) | T(MATCHES) | T(COMPARATOR))
#define MATCH_EXT (T(VALUE) | T(COUNT))
#define ADDRESS_CORE (T(ALL) | T(LOCALPART) | T(DOMAIN))
#define ADDRESS_EXT (T(USER) | T(DETAIL))
#define INDEX_EXT (T(INDEX) | T(LAST))
#define LIST_EXT T(LIST) /* extlists: header, address, envelope, string (RFC 6134 2.5) */

enum tests_taken { TESTS_NONE, TESTS_ONE, TESTS_LIST };

struct node_def {
    const char *name;
    enum sieve_id id;
    bool is_test;
    enum sieve_ext ext;
    uint64_t tags_own; /* allowed, no extra require */
    uint64_t tags_ext; /* allowed when the tag's extension is required */
    enum tests_taken tests;
    bool has_block;
    uint8_t positional_min;
    uint8_t positional_max;
    bool is_optional_first; /* with fewer than max, the first is left out */
    enum param positional[SIEVE_POSITIONAL_MAX];
    const char *positional_names[SIEVE_POSITIONAL_MAX];
};

#define P1(t1, n1)                                                                                 \
    1, 1, false, {t1},                                                                             \
    {                                                                                              \
        n1                                                                                         \
    }
#define P2(t1, n1, t2, n2)                                                                         \
    2, 2, false, {t1, t2},                                                                         \
    {                                                                                              \
        n1, n2                                                                                     \
    }
#define P3(t1, n1, t2, n2, t3, n3)                                                                 \
    3, 3, false, {t1, t2, t3},                                                                     \
    {                                                                                              \
        n1, n2, n3                                                                                 \
    }
#define P0                                                                                         \
    0, 0, false, {P_NONE},                                                                         \
    {                                                                                              \
        NULL                                                                                       \
    }

static const struct node_def node_defs[] = {
    /* commands */
    {"require", SIEVE_CMD_REQUIRE, false, SIEVE_EXT_NONE, 0, 0, TESTS_NONE, false,
     P1(P_STRING_LIST, "capabilities")},
    {"if", SIEVE_CMD_IF, false, SIEVE_EXT_NONE, 0, 0, TESTS_ONE, true, P0},
    {"elsif", SIEVE_CMD_ELSIF, false, SIEVE_EXT_NONE, 0, 0, TESTS_ONE, true, P0},
    {"else", SIEVE_CMD_ELSE, false, SIEVE_EXT_NONE, 0, 0, TESTS_NONE, true, P0},
    {"stop", SIEVE_CMD_STOP, false, SIEVE_EXT_NONE, 0, 0, TESTS_NONE, false, P0},
    {"keep", SIEVE_CMD_KEEP, false, SIEVE_EXT_NONE, 0, T(FLAGS), TESTS_NONE, false, P0},
    {"discard", SIEVE_CMD_DISCARD, false, SIEVE_EXT_NONE, 0, 0, TESTS_NONE, false, P0},
    {"redirect", SIEVE_CMD_REDIRECT, false, SIEVE_EXT_NONE, 0, T(COPY), TESTS_NONE, false,
     P1(P_STRING, "address")},
    {"fileinto", SIEVE_CMD_FILEINTO, false, SIEVE_EXT_FILEINTO, 0, T(COPY) | T(FLAGS) | T(CREATE),
     TESTS_NONE, false, P1(P_STRING, "folder")},
    {"reject", SIEVE_CMD_REJECT, false, SIEVE_EXT_REJECT, 0, 0, TESTS_NONE, false,
     P1(P_STRING, "reason")},
    {"ereject", SIEVE_CMD_EREJECT, false, SIEVE_EXT_EREJECT, 0, 0, TESTS_NONE, false,
     P1(P_STRING, "reason")},
    {"set", SIEVE_CMD_SET, false, SIEVE_EXT_VARIABLES,
     T(LOWER) | T(UPPER) | T(LOWERFIRST) | T(UPPERFIRST) | T(QUOTEWILDCARD) | T(LENGTH), 0,
     TESTS_NONE, false, P2(P_STRING, "name", P_STRING, "value")},
    {"setflag",
     SIEVE_CMD_SETFLAG,
     false,
     SIEVE_EXT_IMAP4FLAGS,
     0,
     0,
     TESTS_NONE,
     false,
     1,
     2,
     true,
     {P_STRING, P_STRING_LIST},
     {"variable name", "list of flags"}},
    {"addflag",
     SIEVE_CMD_ADDFLAG,
     false,
     SIEVE_EXT_IMAP4FLAGS,
     0,
     0,
     TESTS_NONE,
     false,
     1,
     2,
     true,
     {P_STRING, P_STRING_LIST},
     {"variable name", "list of flags"}},
    {"removeflag",
     SIEVE_CMD_REMOVEFLAG,
     false,
     SIEVE_EXT_IMAP4FLAGS,
     0,
     0,
     TESTS_NONE,
     false,
     1,
     2,
     true,
     {P_STRING, P_STRING_LIST},
     {"variable name", "list of flags"}},
    {"vacation", SIEVE_CMD_VACATION, false, SIEVE_EXT_VACATION,
     T(DAYS) | T(SUBJECT) | T(FROM) | T(ADDRESSES) | T(MIME) | T(HANDLE), T(SECONDS), TESTS_NONE,
     false, P1(P_STRING, "reason")},
    {"include", SIEVE_CMD_INCLUDE, false, SIEVE_EXT_INCLUDE,
     T(PERSONAL) | T(GLOBAL) | T(ONCE) | T(OPTIONAL), 0, TESTS_NONE, false,
     P1(P_STRING, "script name")},
    {"return", SIEVE_CMD_RETURN, false, SIEVE_EXT_INCLUDE, 0, 0, TESTS_NONE, false, P0},
    {"global", SIEVE_CMD_GLOBAL, false, SIEVE_EXT_INCLUDE, 0, 0, TESTS_NONE, false,
     P1(P_STRING_LIST, "variable names")},
    {"addheader", SIEVE_CMD_ADDHEADER, false, SIEVE_EXT_EDITHEADER, T(LAST), 0, TESTS_NONE, false,
     P2(P_STRING, "field name", P_STRING, "value")},
    {"deleteheader",
     SIEVE_CMD_DELETEHEADER,
     false,
     SIEVE_EXT_EDITHEADER,
     T(INDEX) | T(LAST) | MATCH_CORE,
     MATCH_EXT,
     TESTS_NONE,
     false,
     1,
     2,
     false,
     {P_STRING, P_STRING_LIST},
     {"field name", "value patterns"}},
    /* tests */
    {"address", SIEVE_TEST_ADDRESS, true, SIEVE_EXT_NONE, MATCH_CORE | ADDRESS_CORE,
     MATCH_EXT | ADDRESS_EXT | INDEX_EXT | LIST_EXT, TESTS_NONE, false,
     P2(P_STRING_LIST, "header list", P_STRING_LIST, "key list")},
    {"envelope", SIEVE_TEST_ENVELOPE, true, SIEVE_EXT_ENVELOPE, MATCH_CORE | ADDRESS_CORE,
     MATCH_EXT | ADDRESS_EXT | LIST_EXT, TESTS_NONE, false,
     P2(P_STRING_LIST, "envelope part", P_STRING_LIST, "key list")},
    {"header", SIEVE_TEST_HEADER, true, SIEVE_EXT_NONE, MATCH_CORE,
     MATCH_EXT | INDEX_EXT | LIST_EXT, TESTS_NONE, false,
     P2(P_STRING_LIST, "header names", P_STRING_LIST, "key list")},
    {"exists", SIEVE_TEST_EXISTS, true, SIEVE_EXT_NONE, 0, 0, TESTS_NONE, false,
     P1(P_STRING_LIST, "header names")},
    {"size", SIEVE_TEST_SIZE, true, SIEVE_EXT_NONE, T(OVER) | T(UNDER), 0, TESTS_NONE, false, P0},
    {"allof", SIEVE_TEST_ALLOF, true, SIEVE_EXT_NONE, 0, 0, TESTS_LIST, false, P0},
    {"anyof", SIEVE_TEST_ANYOF, true, SIEVE_EXT_NONE, 0, 0, TESTS_LIST, false, P0},
    {"not", SIEVE_TEST_NOT, true, SIEVE_EXT_NONE, 0, 0, TESTS_ONE, false, P0},
    {"true", SIEVE_TEST_TRUE, true, SIEVE_EXT_NONE, 0, 0, TESTS_NONE, false, P0},
    {"false", SIEVE_TEST_FALSE, true, SIEVE_EXT_NONE, 0, 0, TESTS_NONE, false, P0},
    {"string", SIEVE_TEST_STRING, true, SIEVE_EXT_VARIABLES, MATCH_CORE, MATCH_EXT | LIST_EXT,
     TESTS_NONE, false, P2(P_STRING_LIST, "source", P_STRING_LIST, "key list")},
    {"hasflag",
     SIEVE_TEST_HASFLAG,
     true,
     SIEVE_EXT_IMAP4FLAGS,
     MATCH_CORE,
     MATCH_EXT,
     TESTS_NONE,
     false,
     1,
     2,
     true,
     {P_STRING_LIST, P_STRING_LIST},
     {"variable list", "list of flags"}},
    {"body", SIEVE_TEST_BODY, true, SIEVE_EXT_BODY, MATCH_CORE | T(RAW) | T(CONTENT) | T(TEXT),
     MATCH_EXT, TESTS_NONE, false, P1(P_STRING_LIST, "key list")},
    {"mailboxexists", SIEVE_TEST_MAILBOXEXISTS, true, SIEVE_EXT_MAILBOX, 0, 0, TESTS_NONE, false,
     P1(P_STRING_LIST, "mailbox names")},
    {"date", SIEVE_TEST_DATE, true, SIEVE_EXT_DATE, MATCH_CORE | T(ZONE) | T(ORIGINALZONE),
     MATCH_EXT | INDEX_EXT, TESTS_NONE, false,
     P3(P_STRING, "header name", P_STRING, "date part", P_STRING_LIST, "key list")},
    {"currentdate", SIEVE_TEST_CURRENTDATE, true, SIEVE_EXT_DATE, MATCH_CORE | T(ZONE), MATCH_EXT,
     TESTS_NONE, false, P2(P_STRING, "date part", P_STRING_LIST, "key list")},
    {"spamtest", SIEVE_TEST_SPAMTEST, true, SIEVE_EXT_SPAMTEST, MATCH_CORE, MATCH_EXT | T(PERCENT),
     TESTS_NONE, false, P1(P_STRING, "value")},
    {"virustest", SIEVE_TEST_VIRUSTEST, true, SIEVE_EXT_VIRUSTEST, MATCH_CORE, MATCH_EXT,
     TESTS_NONE, false, P1(P_STRING, "value")},
    {"duplicate", SIEVE_TEST_DUPLICATE, true, SIEVE_EXT_DUPLICATE,
     T(HANDLE) | T(HEADER) | T(UNIQUEID) | T(SECONDS) | T(LAST), 0, TESTS_NONE, false, P0},
    {"valid_ext_list", SIEVE_TEST_VALID_EXT_LIST, true, SIEVE_EXT_EXTLISTS, 0, 0, TESTS_NONE,
     false, P1(P_STRING_LIST, "ext-list-names")},
};

/* Capability names, in the order of the "SIEVE" capability (roughly
 * Pigeonhole's). The two comparator-i;octet/-casemap entries are
 * requirable but, as in Pigeonhole, not advertised. */
struct ext_def {
    const char *name;
    enum sieve_ext ext;
    enum sieve_ext implies;
    bool is_advertised;
};

static const struct ext_def ext_defs[] = {
    {"fileinto", SIEVE_EXT_FILEINTO, SIEVE_EXT_NONE, true},
    {"reject", SIEVE_EXT_REJECT, SIEVE_EXT_NONE, true},
    {"envelope", SIEVE_EXT_ENVELOPE, SIEVE_EXT_NONE, true},
    {"encoded-character", SIEVE_EXT_ENCODED_CHARACTER, SIEVE_EXT_NONE, true},
    {"vacation", SIEVE_EXT_VACATION, SIEVE_EXT_NONE, true},
    {"vacation-seconds", SIEVE_EXT_VACATION_SECONDS, SIEVE_EXT_VACATION, true},
    {"subaddress", SIEVE_EXT_SUBADDRESS, SIEVE_EXT_NONE, true},
    {"comparator-i;ascii-numeric", SIEVE_EXT_CMP_NUMERIC, SIEVE_EXT_NONE, true},
    {"relational", SIEVE_EXT_RELATIONAL, SIEVE_EXT_NONE, true},
    {"imap4flags", SIEVE_EXT_IMAP4FLAGS, SIEVE_EXT_NONE, true},
    {"copy", SIEVE_EXT_COPY, SIEVE_EXT_NONE, true},
    {"include", SIEVE_EXT_INCLUDE, SIEVE_EXT_NONE, true},
    {"variables", SIEVE_EXT_VARIABLES, SIEVE_EXT_NONE, true},
    {"body", SIEVE_EXT_BODY, SIEVE_EXT_NONE, true},
    {"mailbox", SIEVE_EXT_MAILBOX, SIEVE_EXT_NONE, true},
    {"date", SIEVE_EXT_DATE, SIEVE_EXT_NONE, true},
    {"index", SIEVE_EXT_INDEX, SIEVE_EXT_NONE, true},
    {"duplicate", SIEVE_EXT_DUPLICATE, SIEVE_EXT_NONE, true},
    {"editheader", SIEVE_EXT_EDITHEADER, SIEVE_EXT_NONE, true},
    {"spamtest", SIEVE_EXT_SPAMTEST, SIEVE_EXT_NONE, true},
    {"spamtestplus", SIEVE_EXT_SPAMTESTPLUS, SIEVE_EXT_SPAMTEST, true},
    {"virustest", SIEVE_EXT_VIRUSTEST, SIEVE_EXT_NONE, true},
    {"ereject", SIEVE_EXT_EREJECT, SIEVE_EXT_NONE, true},
    {"comparator-i;octet", SIEVE_EXT_CMP_OCTET, SIEVE_EXT_NONE, false},
    {"comparator-i;ascii-casemap", SIEVE_EXT_CMP_CASEMAP, SIEVE_EXT_NONE, false},
    {"extlists", SIEVE_EXT_EXTLISTS, SIEVE_EXT_NONE, true},
};

static const char capabilities[] =
    "fileinto reject envelope encoded-character vacation vacation-seconds subaddress "
    "comparator-i;ascii-numeric relational imap4flags copy include variables body mailbox "
    "date index duplicate editheader spamtest spamtestplus virustest ereject extlists";

/* ---- validator state ---- */

struct validator {
    struct sieve_script *script;
    struct sieve_errors *errors;
    uint64_t ext; /* required so far */
    bool is_failed;
    /* Unknown command/test names already reported (sievec reports each
     * once); bounded by the error list. */
    const char *unknown_names[SIEVE_ERRORS_MAX];
    size_t unknown_count;
};

static void verror(struct validator *v, uint32_t line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void validate_block(struct validator *v, struct sieve_node *first, bool is_top);
static void validate_node(struct validator *v, struct sieve_node *node);

static void
verror(struct validator *v, uint32_t line, const char *fmt, ...)
{
    char text[SIEVE_ERROR_TEXT_BYTES];
    va_list ap;
    va_start(ap, fmt);
    (void)vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    sieve_errors_add(v->errors, line, "%s", text);
    v->is_failed = true;
}

static bool
has_ext(const struct validator *v, enum sieve_ext ext)
{
    return ext == SIEVE_EXT_NONE || (v->ext & SIEVE_EXT_BIT(ext)) != 0;
}

const char *
sieve_ext_name(enum sieve_ext ext)
{
    for (size_t i = 0; i < sizeof(ext_defs) / sizeof(ext_defs[0]); i++) {
        if (ext_defs[i].ext == ext) {
            return ext_defs[i].name;
        }
    }
    return NULL;
}

const char *
sieve_capabilities(void)
{
    return capabilities;
}

/* s (which may hold anything, ${hex:} decoding makes any byte) fit for
 * an error message that ManageSieve sends as UTF-8: at most 48 bytes cut
 * at a character boundary, controls and bytes that are not well-formed
 * UTF-8 as '?'. */
static const char *
sanitize(const char *s, size_t len, char *buf, size_t size)
{
    ASSERT(size >= 8);
    size_t max = size - 4 < 48 ? size - 4 : 48;
    const unsigned char *u = (const unsigned char *)s;
    size_t n = 0;
    size_t i = 0;
    while (i < len) {
        uint32_t cp;
        size_t step = utf8_decode_strict(u + i, len - i, &cp);
        if (step == 0 || cp < 0x20 || cp == 0x7f) {
            step = step == 0 ? 1 : step;
            cp = '?';
        }
        size_t out = cp == '?' ? 1 : step;
        if (n + out > max) {
            break;
        }
        if (cp == '?') {
            buf[n] = '?';
        } else {
            memcpy(buf + n, s + i, step);
        }
        n += out;
        i += step;
    }
    if (i < len) {
        memcpy(buf + n, "...", 3);
        n += 3;
    }
    buf[n] = '\0';
    return buf;
}

static const char *
arg_type_name(const struct sieve_arg *arg)
{
    switch (arg->type) {
    case SIEVE_ARG_NUMBER:
        return "a number";
    case SIEVE_ARG_STRING:
        return "a string";
    case SIEVE_ARG_STRING_LIST:
        return "a string list";
    case SIEVE_ARG_TAG:
        return "a tag";
    }
    return "?";
}

static const char *
param_name(enum param param)
{
    switch (param) {
    case P_STRING:
        return "a string";
    case P_STRING_LIST:
        return "a string list";
    case P_NUMBER:
        return "a number";
    case P_NONE:
        break;
    }
    return "nothing";
}

static bool
param_accepts(enum param param, const struct sieve_arg *arg)
{
    switch (param) {
    case P_STRING:
        return arg->type == SIEVE_ARG_STRING;
    case P_STRING_LIST:
        return arg->type == SIEVE_ARG_STRING || arg->type == SIEVE_ARG_STRING_LIST;
    case P_NUMBER:
        return arg->type == SIEVE_ARG_NUMBER;
    case P_NONE:
        break;
    }
    return false;
}

static const char *
kind(const struct sieve_node *node)
{
    return node->is_test ? "test" : "command";
}

/* ---- constant-value checks ---- */

static bool
is_identifier(const char *s, size_t len)
{
    if (len == 0 || len > SIEVE_IDENTIFIER_BYTES_MAX) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        bool is_alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
        if (!is_alpha && !(i > 0 && c >= '0' && c <= '9')) {
            return false;
        }
    }
    return true;
}

/* RFC 5322 field-name: 1*ftext, ftext = %d33-57 / %d59-126. */
bool
sieve_field_name_valid(const char *s, size_t len)
{
    if (len == 0 || len > 998) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 33 || c > 126 || c == ':') {
            return false;
        }
    }
    return true;
}

/* A variable name for set, setflag's first argument, hasflag's variable
 * list or global: an identifier, or "global." identifier with include
 * (RFC 6609 3.5). */
static bool
is_variable_name(const struct validator *v, const char *s, size_t len)
{
    if (has_ext(v, SIEVE_EXT_INCLUDE) && len > 7 && strncasecmp(s, "global.", 7) == 0) {
        return is_identifier(s + 7, len - 7);
    }
    return is_identifier(s, len);
}

static void
check_header_names(struct validator *v, const struct sieve_arg *arg)
{
    for (size_t i = 0; i < arg->string_count; i++) {
        const struct sieve_string *s = &arg->strings[i];
        if (!s->has_variables && !sieve_field_name_valid(s->text, s->len)) {
            char buf[64];
            verror(v, s->line, "specified header field name '%s' is invalid",
                   sanitize(s->text, s->len, buf, sizeof(buf)));
        }
    }
}

static void
check_variable_names(struct validator *v, const struct sieve_node *node,
                     const struct sieve_arg *arg)
{
    if (!has_ext(v, SIEVE_EXT_VARIABLES)) {
        verror(v, arg->line, "the %s %s takes variable names only with the \"variables\" extension",
               node->name, kind(node));
        return;
    }
    for (size_t i = 0; i < arg->string_count; i++) {
        const struct sieve_string *s = &arg->strings[i];
        if (!is_variable_name(v, s->text, s->len)) {
            char buf[64];
            verror(v, s->line, "invalid variable name '%s'",
                   sanitize(s->text, s->len, buf, sizeof(buf)));
        }
    }
}

static void
check_comparator(struct validator *v, struct sieve_node *node, const struct sieve_arg *param)
{
    const struct sieve_string *s = &param->strings[0];
    if (strcasecmp(s->text, "i;ascii-casemap") == 0 && s->len == 15) {
        node->comparator = SIEVE_CMP_ASCII_CASEMAP;
    } else if (strcasecmp(s->text, "i;octet") == 0 && s->len == 7) {
        node->comparator = SIEVE_CMP_OCTET;
    } else if (strcasecmp(s->text, "i;ascii-numeric") == 0 && s->len == 15 &&
               has_ext(v, SIEVE_EXT_CMP_NUMERIC)) {
        node->comparator = SIEVE_CMP_ASCII_NUMERIC;
    } else {
        char buf[64];
        verror(v, s->line, "unknown comparator '%s'", sanitize(s->text, s->len, buf, sizeof(buf)));
    }
}

static void
check_relation(struct validator *v, struct sieve_node *node, const struct sieve_arg *tag)
{
    static const struct {
        const char *name;
        enum sieve_relation relation;
    } relations[] = {
        {"gt", SIEVE_REL_GT}, {"ge", SIEVE_REL_GE}, {"lt", SIEVE_REL_LT},
        {"le", SIEVE_REL_LE}, {"eq", SIEVE_REL_EQ}, {"ne", SIEVE_REL_NE},
    };
    const struct sieve_string *s = &tag->param->strings[0];
    for (size_t i = 0; i < sizeof(relations) / sizeof(relations[0]); i++) {
        if (s->len == 2 && strcasecmp(s->text, relations[i].name) == 0) {
            node->relation = relations[i].relation;
            return;
        }
    }
    char buf[64];
    verror(v, s->line,
           "the :%s match type requires a constant string argument being one of \"gt\", "
           "\"ge\", \"lt\", \"le\", \"eq\" or \"ne\", but \"%s\" was found",
           tag->tag, sanitize(s->text, s->len, buf, sizeof(buf)));
}

static void
check_date_part(struct validator *v, const struct sieve_string *s)
{
    static const char *const parts[] = {"year",  "month",  "day",    "date", "julian",
                                        "hour",  "minute", "second", "time", "iso8601",
                                        "std11", "zone",   "weekday"};
    if (s->has_variables) {
        return;
    }
    for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
        if (strlen(parts[i]) == s->len && strcasecmp(s->text, parts[i]) == 0) {
            return;
        }
    }
    char buf[64];
    verror(v, s->line, "invalid date part '%s'", sanitize(s->text, s->len, buf, sizeof(buf)));
}

/* RFC 5260 4.1: zone = ("+" / "-") 4DIGIT. */
static void
check_zone(struct validator *v, const struct sieve_string *s)
{
    if (s->has_variables) {
        return;
    }
    const char *z = s->text;
    bool is_ok = s->len == 5 && (z[0] == '+' || z[0] == '-');
    for (size_t i = 1; is_ok && i < 5; i++) {
        is_ok = z[i] >= '0' && z[i] <= '9';
    }
    if (is_ok) {
        is_ok = (z[3] - '0') < 6; /* minutes below 60 */
    }
    if (!is_ok) {
        char buf[64];
        verror(v, s->line, "invalid time zone '%s' for the :zone tag (expected +hhmm or -hhmm)",
               sanitize(s->text, s->len, buf, sizeof(buf)));
    }
}

/* RFC 5322 atext, plus any 8-bit byte (SMTPUTF8 addresses; the lexer
 * already made sure strings are UTF-8). */
static bool
is_atext(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c >= 0x80 || (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

static bool
is_dot_atom(const char *s, size_t len)
{
    if (len == 0 || s[0] == '.' || s[len - 1] == '.') {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '.' ? s[i - 1] == '.' : !is_atext(c)) {
            return false;
        }
    }
    return true;
}

/* A redirect target (RFC 5228 4.2: "syntactically valid"): an RFC 5321
 * mailbox, local@domain, with a dot-atom or quoted-string local part and
 * a domain name or address literal. The interpreter checks again after
 * variables are expanded. */
bool
sieve_redirect_address_valid(const char *s, size_t len)
{
    const char *at = NULL;
    for (size_t i = len; i > 0; i--) {
        if (s[i - 1] == '@') {
            at = s + i - 1;
            break;
        }
    }
    if (at == NULL || len > 320) {
        return false;
    }
    size_t local_len = (size_t)(at - s);
    const char *domain = at + 1;
    size_t domain_len = len - local_len - 1;
    bool is_local_ok;
    if (local_len >= 2 && s[0] == '"' && s[local_len - 1] == '"') {
        is_local_ok = true;
        for (size_t i = 1; i + 1 < local_len && is_local_ok; i++) {
            unsigned char c = (unsigned char)s[i];
            if (c == '\\') {
                i++; /* quoted-pair: the next character is taken as it is */
                is_local_ok = i + 1 < local_len && (unsigned char)s[i] >= 0x20;
            } else {
                is_local_ok = c >= 0x20 && c != '"' && c != 0x7f;
            }
        }
    } else {
        is_local_ok = is_dot_atom(s, local_len);
    }
    if (!is_local_ok || local_len > 64 || domain_len == 0 || domain_len > 255) {
        return false;
    }
    if (domain[0] == '[') {
        return domain_len > 2 && domain[domain_len - 1] == ']' &&
               memchr(domain + 1, '[', domain_len - 2) == NULL &&
               memchr(domain + 1, ']', domain_len - 2) == NULL &&
               memchr(domain, ' ', domain_len) == NULL;
    }
    for (size_t i = 0; i < domain_len; i++) {
        unsigned char c = (unsigned char)domain[i];
        bool is_ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                     c == '-' || c == '.' || c >= 0x80;
        if (!is_ok || (c == '.' && (i == 0 || domain[i - 1] == '.' || i + 1 == domain_len))) {
            return false;
        }
    }
    return true;
}

static void
check_script_name(struct validator *v, const struct sieve_string *s)
{
    if (s->has_variables) {
        return;
    }
    bool is_ok = s->len > 0 && s->len <= 255 && memchr(s->text, '/', s->len) == NULL &&
                 memchr(s->text, '\0', s->len) == NULL && strcmp(s->text, ".") != 0 &&
                 strcmp(s->text, "..") != 0;
    for (size_t i = 0; is_ok && i < s->len; i++) {
        unsigned char c = (unsigned char)s->text[i];
        is_ok = c >= 0x20 && c != 0x7f;
    }
    if (!is_ok) {
        char buf[64];
        verror(v, s->line, "include: invalid script name '%s'",
               sanitize(s->text, s->len, buf, sizeof(buf)));
    }
}

/* ---- strings: encoded-character and variable references ---- */

static int
hex_value(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

static size_t
skip_blanks(const char *s, size_t len, size_t i)
{
    while (i < len) {
        if (s[i] == ' ' || s[i] == '\t') {
            i++;
        } else if (s[i] == '\r' && i + 1 < len && s[i + 1] == '\n') {
            i += 2;
        } else {
            break;
        }
    }
    return i;
}

/* One "${hex:...}" or "${unicode:...}" at s[i] ("${" already seen).
 * Returns the bytes it covers and sets *out_len_out to the decoded
 * length when it is a well-formed encoding, 0 when it is not one (left
 * as it is), or -1 after reporting a bad code point. Called first with
 * out == NULL to measure and check, then, only when that succeeded,
 * with out to write (in place: out never overtakes the bytes still to
 * be read, since every encoding is longer than what it stands for). */
static long
decode_one(struct validator *v, const struct sieve_string *str, size_t i, char *out,
           size_t *out_len_out)
{
    const char *s = str->text;
    size_t len = str->len;
    size_t p = i + 2;
    bool is_unicode;
    if (len - p >= 4 && strncasecmp(s + p, "hex:", 4) == 0) {
        is_unicode = false;
        p += 4;
    } else if (len - p >= 8 && strncasecmp(s + p, "unicode:", 8) == 0) {
        is_unicode = true;
        p += 8;
    } else {
        return 0;
    }
    size_t n = 0;
    size_t items = 0;
    p = skip_blanks(s, len, p);
    while (p < len && s[p] != '}') {
        if (items > 0) {
            size_t q = skip_blanks(s, len, p);
            if (q == p) {
                return 0; /* items must be separated by blanks */
            }
            p = q;
            if (p < len && s[p] == '}') {
                break;
            }
        }
        uint32_t value = 0;
        size_t digits = 0;
        bool is_too_big = false;
        while (p < len && hex_value(s[p]) >= 0) {
            if (value > 0x10ffffu) {
                is_too_big = true; /* keep reading, the value is refused anyway */
            } else {
                value = value * 16 + (uint32_t)hex_value(s[p]);
            }
            digits++;
            p++;
        }
        if (digits == 0 || (!is_unicode && digits > 2)) {
            return 0;
        }
        if (is_unicode) {
            if (is_too_big || value > 0x10ffffu || (value >= 0xd800 && value <= 0xdfff)) {
                if (out != NULL) {
                    return 0; /* the measuring pass reported it */
                }
                verror(v, str->line,
                       "invalid unicode character 0x%08x in encoded character substitution",
                       is_too_big ? 0xffffffffu : value);
                return -1;
            }
            char enc[4];
            size_t k = utf8_encode(value, enc);
            if (out != NULL) {
                memcpy(out + n, enc, k);
            }
            n += k;
        } else {
            if (out != NULL) {
                out[n] = (char)value;
            }
            n++;
        }
        items++;
    }
    if (p >= len || items == 0) {
        return 0;
    }
    *out_len_out = n;
    return (long)(p + 1 - i);
}

/* Decodes every encoding in str, in place. */
static void
decode_string(struct validator *v, struct sieve_string *str)
{
    size_t w = 0;
    size_t i = 0;
    while (i < str->len) {
        if (str->text[i] == '$' && i + 1 < str->len && str->text[i + 1] == '{') {
            size_t n = 0;
            long covered = decode_one(v, str, i, NULL, &n);
            if (covered < 0) {
                return; /* reported; the string is left as it was */
            }
            if (covered > 0) {
                size_t n2 = 0;
                long again = decode_one(v, str, i, str->text + w, &n2);
                ASSERT(again == covered);
                ASSERT(n2 == n);
                w += n;
                i += (size_t)covered;
                continue;
            }
        }
        str->text[w++] = str->text[i++];
    }
    str->text[w] = '\0';
    str->len = w;
}

/* Marks a string holding a variable reference (RFC 5229 3):
 *   "${" [namespace "."] variable-name "}", variable-name = num / identifier.
 * Anything else after "${" is not a reference and stays literal. A
 * reference into a namespace nobody required is an error; the only
 * namespace we know is "global" (include, RFC 6609). */
static void
scan_variables(struct validator *v, struct sieve_string *str)
{
    const char *s = str->text;
    size_t len = str->len;
    for (size_t i = 0; i + 1 < len; i++) {
        if (s[i] != '$' || s[i + 1] != '{') {
            continue;
        }
        size_t start = i + 2;
        size_t end = start;
        while (end < len && end - start <= 256 &&
               ((s[end] >= 'a' && s[end] <= 'z') || (s[end] >= 'A' && s[end] <= 'Z') ||
                (s[end] >= '0' && s[end] <= '9') || s[end] == '_' || s[end] == '.')) {
            end++;
        }
        if (end >= len || s[end] != '}' || end == start) {
            continue;
        }
        const char *name = s + start;
        size_t name_len = end - start;
        bool is_number = true;
        for (size_t k = 0; k < name_len; k++) {
            is_number = is_number && name[k] >= '0' && name[k] <= '9';
        }
        if (is_number) {
            str->has_variables = true;
            continue;
        }
        const char *dot = memchr(name, '.', name_len);
        if (dot == NULL) {
            if (is_identifier(name, name_len)) {
                str->has_variables = true;
            }
            continue;
        }
        /* Every part must be an identifier, or this is no reference. */
        bool is_ref = true;
        size_t part = 0;
        for (size_t k = 0; k <= name_len && is_ref; k++) {
            if (k == name_len || name[k] == '.') {
                is_ref = k > part && (is_identifier(name + part, k - part) ||
                                      (k == name_len && name[part] >= '0' && name[part] <= '9'));
                part = k + 1;
            }
        }
        if (!is_ref) {
            continue;
        }
        size_t ns_len = (size_t)(dot - name);
        if (ns_len == 6 && strncasecmp(name, "global", 6) == 0 && has_ext(v, SIEVE_EXT_INCLUDE)) {
            str->has_variables = true;
            continue;
        }
        char buf[64];
        verror(v, str->line, "variable namespace '%s' is unknown (not required or not supported)",
               sanitize(name, ns_len, buf, sizeof(buf)));
        return;
    }
}

/* The strings of node's own arguments; done as the walk reaches the
 * node, so errors come out in script order. */
static void
process_strings(struct validator *v, struct sieve_node *node)
{
    for (struct sieve_arg *arg = node->args; arg != NULL; arg = arg->next) {
        for (size_t i = 0; i < arg->string_count; i++) {
            if (has_ext(v, SIEVE_EXT_ENCODED_CHARACTER)) {
                decode_string(v, &arg->strings[i]);
            }
            if (has_ext(v, SIEVE_EXT_VARIABLES)) {
                scan_variables(v, &arg->strings[i]);
            }
        }
    }
}

/* ---- require ---- */

static void
require_extensions(struct validator *v, const struct sieve_node *node)
{
    for (const struct sieve_arg *arg = node->args; arg != NULL; arg = arg->next) {
        if (arg->type != SIEVE_ARG_STRING && arg->type != SIEVE_ARG_STRING_LIST) {
            continue; /* the argument check reports it */
        }
        for (size_t i = 0; i < arg->string_count; i++) {
            const struct sieve_string *s = &arg->strings[i];
            const struct ext_def *found = NULL;
            for (size_t k = 0; k < sizeof(ext_defs) / sizeof(ext_defs[0]); k++) {
                if (strlen(ext_defs[k].name) == s->len && strcmp(ext_defs[k].name, s->text) == 0) {
                    found = &ext_defs[k];
                    break;
                }
            }
            if (found == NULL) {
                char buf[64];
                verror(v, s->line, "require command: unknown Sieve capability `%s'",
                       sanitize(s->text, s->len, buf, sizeof(buf)));
                continue;
            }
            v->ext |= SIEVE_EXT_BIT(found->ext);
            if (found->implies != SIEVE_EXT_NONE) {
                v->ext |= SIEVE_EXT_BIT(found->implies);
            }
        }
    }
}

/* ---- the walk ---- */

static const struct node_def *
find_node_def(const char *name, bool is_test)
{
    for (size_t i = 0; i < sizeof(node_defs) / sizeof(node_defs[0]); i++) {
        if (node_defs[i].is_test == is_test && strcasecmp(node_defs[i].name, name) == 0) {
            return &node_defs[i];
        }
    }
    return NULL;
}

static const struct tag_def *
find_tag_def(const char *name)
{
    for (size_t i = 0; i < sizeof(tag_defs) / sizeof(tag_defs[0]); i++) {
        if (strcasecmp(tag_defs[i].name, name) == 0) {
            return &tag_defs[i];
        }
    }
    return NULL;
}

static void
report_unknown(struct validator *v, const struct sieve_node *node, const struct node_def *def)
{
    if (def != NULL) {
        verror(v, node->line, "unknown %s '%s' (the \"%s\" extension is not required)", kind(node),
               node->name, sieve_ext_name(def->ext));
        return;
    }
    for (size_t i = 0; i < v->unknown_count; i++) {
        if (strcasecmp(v->unknown_names[i], node->name) == 0) {
            v->is_failed = true;
            return; /* sievec reports each unknown name once */
        }
    }
    if (v->unknown_count < SIEVE_ERRORS_MAX) {
        v->unknown_names[v->unknown_count++] = node->name;
    }
    verror(v, node->line, "unknown %s '%s' (only reported once at first occurrence)", kind(node),
           node->name);
}

/* Tags, their values and the positional arguments. Returns false when
 * the arguments are too broken for the specific checks to run. */
static bool
validate_arguments(struct validator *v, struct sieve_node *node, const struct node_def *def)
{
    const struct sieve_arg *group_seen[G_PERIOD + 1] = {NULL};
    bool is_ok = true;
    bool seen_positional = false;
    for (struct sieve_arg *arg = node->args; arg != NULL; arg = arg->next) {
        if (arg->type != SIEVE_ARG_TAG) {
            seen_positional = true;
            if (node->positional_count < SIEVE_POSITIONAL_MAX) {
                node->positional[node->positional_count] = arg;
            }
            node->positional_count++;
            continue;
        }
        const struct tag_def *tag = find_tag_def(arg->tag);
        uint64_t bit = tag != NULL ? UINT64_C(1) << tag->id : 0;
        bool is_own = (def->tags_own & bit) != 0;
        bool is_allowed = is_own || ((def->tags_ext & bit) != 0 && has_ext(v, tag->ext));
        if (!is_allowed) {
            if (tag != NULL && (def->tags_ext & bit) != 0) {
                verror(v, arg->line,
                       "unknown tagged argument ':%s' for the %s %s (the \"%s\" extension is "
                       "not required)",
                       arg->tag, node->name, kind(node), sieve_ext_name(tag->ext));
            } else {
                verror(v, arg->line, "unknown tagged argument ':%s' for the %s %s", arg->tag,
                       node->name, kind(node));
            }
            is_ok = false;
            /* A tag we know elsewhere takes its value along, so one
             * mistake does not also miscount the positional arguments. */
            if (tag != NULL && tag->param != P_NONE && arg->next != NULL &&
                param_accepts(tag->param, arg->next)) {
                arg->next->is_tag_param = true;
                arg = arg->next;
            }
            continue;
        }
        arg->tag_id = tag->id;
        if (seen_positional) {
            verror(v, arg->line,
                   "tagged argument ':%s' of the %s %s comes after a positional argument", arg->tag,
                   node->name, kind(node));
            is_ok = false;
        }
        if ((node->tag_mask & bit) != 0) {
            verror(v, arg->line, "tagged argument ':%s' is given twice for the %s %s", arg->tag,
                   node->name, kind(node));
            is_ok = false;
        } else if (tag->group != G_NONE && group_seen[tag->group] != NULL) {
            verror(v, arg->line, "the :%s and :%s tags cannot be used together for the %s %s",
                   group_seen[tag->group]->tag, arg->tag, node->name, kind(node));
            is_ok = false;
        }
        node->tag_mask |= bit;
        if (tag->group != G_NONE && group_seen[tag->group] == NULL) {
            group_seen[tag->group] = arg;
        }
        if (tag->param == P_NONE) {
            continue;
        }
        struct sieve_arg *value = arg->next;
        if (value == NULL || !param_accepts(tag->param, value)) {
            if (value == NULL) {
                verror(v, arg->line,
                       "the :%s tag for the %s %s requires %s argument, but none "
                       "was found",
                       arg->tag, node->name, kind(node), param_name(tag->param));
            } else {
                verror(v, value->line,
                       "the :%s tag for the %s %s requires %s argument, but %s "
                       "was found",
                       arg->tag, node->name, kind(node), param_name(tag->param),
                       arg_type_name(value));
            }
            is_ok = false;
            continue;
        }
        value->is_tag_param = true;
        arg->param = value;
        arg = value; /* consumed */
    }

    size_t count = node->positional_count;
    if (count < def->positional_min || count > def->positional_max) {
        if (def->positional_min == def->positional_max) {
            verror(v, node->line, "the %s %s expects %u positional argument%s, but %zu were found",
                   node->name, kind(node), def->positional_min, def->positional_min == 1 ? "" : "s",
                   count);
        } else {
            verror(v, node->line,
                   "the %s %s expects %u to %u positional arguments, but %zu were found",
                   node->name, kind(node), def->positional_min, def->positional_max, count);
        }
        return false;
    }
    size_t skip = def->is_optional_first ? def->positional_max - count : 0;
    for (size_t i = 0; i < count; i++) {
        const struct sieve_arg *arg = node->positional[i];
        enum param want = def->positional[i + skip];
        if (!param_accepts(want, arg)) {
            verror(v, arg->line, "the %s %s expects %s as argument %zu (%s), but %s was found",
                   node->name, kind(node), param_name(want), i + 1, def->positional_names[i + skip],
                   arg_type_name(arg));
            is_ok = false;
        }
    }
    return is_ok;
}

static void
validate_tests_and_block(struct validator *v, struct sieve_node *node, const struct node_def *def)
{
    switch (def->tests) {
    case TESTS_NONE:
        if (node->test_count > 0) {
            /* "fileinto "a"\nkeep;" parses as fileinto with the test keep:
             * most likely a ';' is missing where the line ends. */
            uint32_t last_line = node->line;
            for (const struct sieve_arg *a = node->args; a != NULL; a = a->next) {
                last_line = a->line;
            }
            if (!node->is_test_list && node->tests->line > last_line) {
                verror(v, node->tests->line,
                       "the %s %s accepts no tests, but the test '%s' follows it (missing ';' "
                       "at the end of line %u?)",
                       node->name, kind(node), node->tests->name, last_line);
            } else {
                verror(v, node->line, "the %s %s accepts no tests, but %s was found", node->name,
                       kind(node), node->is_test_list ? "a test list" : "a test");
            }
        }
        break;
    case TESTS_ONE:
        if (node->test_count == 0) {
            verror(v, node->line, "the %s %s requires one test, but none was found", node->name,
                   kind(node));
        } else if (node->is_test_list) {
            verror(v, node->line, "the %s %s requires one test, but a test list was found",
                   node->name, kind(node));
        }
        break;
    case TESTS_LIST:
        if (node->test_count == 0) {
            verror(v, node->line, "the %s %s requires a list of tests, but none was found",
                   node->name, kind(node));
        }
        break;
    }
    if (def->has_block && !node->has_block) {
        verror(v, node->line, "the %s command requires a command block, but it is missing",
               node->name);
    } else if (!def->has_block && node->has_block) {
        verror(v, node->line, "the %s command does not accept a command block", node->name);
    }
}

/* The checks one command or test needs beyond its argument shape. */
static void
validate_specific(struct validator *v, struct sieve_node *node)
{
    struct sieve_arg **pos = node->positional;
    const struct sieve_arg *tag;

    /* Match type, comparator, address part, body transform. */
    if ((tag = sieve_node_tag(node, SIEVE_TAG_CONTAINS)) != NULL) {
        node->match = SIEVE_MATCH_CONTAINS;
    } else if ((tag = sieve_node_tag(node, SIEVE_TAG_MATCHES)) != NULL) {
        node->match = SIEVE_MATCH_MATCHES;
    } else if ((tag = sieve_node_tag(node, SIEVE_TAG_VALUE)) != NULL) {
        node->match = SIEVE_MATCH_VALUE;
        check_relation(v, node, tag);
    } else if ((tag = sieve_node_tag(node, SIEVE_TAG_COUNT)) != NULL) {
        node->match = SIEVE_MATCH_COUNT;
        check_relation(v, node, tag);
    } else if (sieve_node_tag(node, SIEVE_TAG_LIST) != NULL) {
        node->match = SIEVE_MATCH_LIST;
    }
    if ((tag = sieve_node_tag(node, SIEVE_TAG_COMPARATOR)) != NULL) {
        check_comparator(v, node, tag->param);
        if (node->comparator == SIEVE_CMP_ASCII_NUMERIC &&
            (node->match == SIEVE_MATCH_CONTAINS || node->match == SIEVE_MATCH_MATCHES)) {
            verror(v, tag->line,
                   "the comparator 'i;ascii-numeric' cannot be used with the :%s match type",
                   node->match == SIEVE_MATCH_CONTAINS ? "contains" : "matches");
        }
    }
    static const struct {
        enum sieve_tag tag;
        enum sieve_address_part part;
    } parts[] = {{SIEVE_TAG_LOCALPART, SIEVE_ADDR_LOCALPART},
                 {SIEVE_TAG_DOMAIN, SIEVE_ADDR_DOMAIN},
                 {SIEVE_TAG_USER, SIEVE_ADDR_USER},
                 {SIEVE_TAG_DETAIL, SIEVE_ADDR_DETAIL}};
    for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
        if (sieve_node_tag(node, parts[i].tag) != NULL) {
            node->address_part = parts[i].part;
        }
    }
    if (sieve_node_tag(node, SIEVE_TAG_RAW) != NULL) {
        node->body_transform = SIEVE_BODY_RAW;
    } else if (sieve_node_tag(node, SIEVE_TAG_CONTENT) != NULL) {
        node->body_transform = SIEVE_BODY_CONTENT;
    }
    if ((tag = sieve_node_tag(node, SIEVE_TAG_INDEX)) != NULL && tag->param->number == 0) {
        verror(v, tag->line, "the :index tag of the %s %s requires a position of 1 or more",
               node->name, kind(node));
    }
    if ((tag = sieve_node_tag(node, SIEVE_TAG_ZONE)) != NULL) {
        check_zone(v, &tag->param->strings[0]);
    }
    if ((tag = sieve_node_tag(node, SIEVE_TAG_HEADER)) != NULL) {
        check_header_names(v, tag->param);
    }

    switch (node->id) {
    case SIEVE_CMD_REDIRECT: {
        const struct sieve_string *s = &pos[0]->strings[0];
        if (!s->has_variables && !sieve_redirect_address_valid(s->text, s->len)) {
            char buf[64];
            verror(v, s->line, "specified redirect address '%s' is invalid",
                   sanitize(s->text, s->len, buf, sizeof(buf)));
        }
        break;
    }
    case SIEVE_CMD_SET: {
        const struct sieve_string *s = &pos[0]->strings[0];
        if (!is_variable_name(v, s->text, s->len)) {
            char buf[64];
            verror(v, s->line, "invalid variable name '%s'",
                   sanitize(s->text, s->len, buf, sizeof(buf)));
        }
        break;
    }
    case SIEVE_CMD_SETFLAG:
    case SIEVE_CMD_ADDFLAG:
    case SIEVE_CMD_REMOVEFLAG:
    case SIEVE_TEST_HASFLAG:
        if (node->positional_count == 2) {
            check_variable_names(v, node, pos[0]);
        }
        break;
    case SIEVE_CMD_INCLUDE:
        check_script_name(v, &pos[0]->strings[0]);
        break;
    case SIEVE_CMD_GLOBAL:
        check_variable_names(v, node, pos[0]);
        break;
    case SIEVE_CMD_ADDHEADER:
    case SIEVE_CMD_DELETEHEADER:
        check_header_names(v, pos[0]);
        if (node->id == SIEVE_CMD_DELETEHEADER && sieve_node_tag(node, SIEVE_TAG_LAST) != NULL &&
            sieve_node_tag(node, SIEVE_TAG_INDEX) == NULL) {
            verror(v, node->line, "the :last tag of the %s command requires :index", node->name);
        }
        break;
    case SIEVE_TEST_ADDRESS:
    case SIEVE_TEST_HEADER:
    case SIEVE_TEST_EXISTS:
    case SIEVE_TEST_DATE:
        check_header_names(v, pos[0]);
        if (sieve_node_tag(node, SIEVE_TAG_LAST) != NULL &&
            sieve_node_tag(node, SIEVE_TAG_INDEX) == NULL) {
            verror(v, node->line, "the :last tag of the %s test requires :index", node->name);
        }
        if (node->id == SIEVE_TEST_DATE) {
            check_date_part(v, &pos[1]->strings[0]);
        }
        break;
    case SIEVE_TEST_CURRENTDATE:
        check_date_part(v, &pos[0]->strings[0]);
        break;
    case SIEVE_TEST_ENVELOPE:
        for (size_t i = 0; i < pos[0]->string_count; i++) {
            const struct sieve_string *s = &pos[0]->strings[i];
            if (s->has_variables) {
                continue;
            }
            if (!(s->len == 4 && strcasecmp(s->text, "from") == 0) &&
                !(s->len == 2 && strcasecmp(s->text, "to") == 0) &&
                !(s->len == 4 && strcasecmp(s->text, "auth") == 0)) {
                char buf[64];
                verror(v, s->line,
                       "specified envelope part '%s' is not supported by the envelope test",
                       sanitize(s->text, s->len, buf, sizeof(buf)));
            }
        }
        break;
    case SIEVE_TEST_SIZE:
        if (sieve_node_tag(node, SIEVE_TAG_OVER) == NULL &&
            sieve_node_tag(node, SIEVE_TAG_UNDER) == NULL) {
            verror(v, node->line, "the size test requires either the :under or the :over tag");
        }
        break;
    default:
        break;
    }
}

static void
validate_node(struct validator *v, struct sieve_node *node)
{
    const struct node_def *def = find_node_def(node->name, node->is_test);
    bool is_known = def != NULL && has_ext(v, def->ext);
    if (!is_known) {
        report_unknown(v, node, def);
    }
    /* Requires are read before the walk and their strings are names,
     * never encoded or expanded. */
    if (def == NULL || def->id != SIEVE_CMD_REQUIRE) {
        process_strings(v, node);
    }
    if (!is_known) {
        /* Sub-tests and blocks are still checked for errors of their own. */
        for (struct sieve_node *t = node->tests; t != NULL; t = t->next) {
            validate_node(v, t);
        }
        validate_block(v, node->block, false);
        return;
    }
    node->id = def->id;
    bool is_ok = validate_arguments(v, node, def);
    validate_tests_and_block(v, node, def);
    if (is_ok) {
        validate_specific(v, node);
    }
    for (struct sieve_node *t = node->tests; t != NULL; t = t->next) {
        validate_node(v, t);
    }
    validate_block(v, node->block, false);
}

static void
validate_block(struct validator *v, struct sieve_node *first, bool is_top)
{
    bool is_require_allowed = is_top;
    enum sieve_id prev = SIEVE_ID_UNKNOWN;
    for (struct sieve_node *node = first; node != NULL; node = node->next) {
        bool is_require = strcasecmp(node->name, "require") == 0;
        if (is_require && !is_require_allowed) {
            verror(v, node->line,
                   "require commands can only be placed at top level at the beginning of the "
                   "file");
        }
        if (!is_require) {
            is_require_allowed = false;
        }
        validate_node(v, node);
        if ((node->id == SIEVE_CMD_ELSIF || node->id == SIEVE_CMD_ELSE) && prev != SIEVE_CMD_IF &&
            prev != SIEVE_CMD_ELSIF) {
            verror(v, node->line, "the %s command must follow an if or elsif command", node->name);
        }
        prev = node->id;
    }
}

int
sieve_validate(struct sieve_script *script, struct sieve_errors *errors)
{
    ASSERT(script != NULL && errors != NULL);
    struct validator v;
    memset(&v, 0, sizeof(v));
    v.script = script;
    v.errors = errors;
    /* The leading requires decide what the rest may use. */
    for (struct sieve_node *node = script->commands; node != NULL; node = node->next) {
        if (strcasecmp(node->name, "require") != 0) {
            break;
        }
        require_extensions(&v, node);
    }
    script->extensions = v.ext;
    validate_block(&v, script->commands, true);
    return v.is_failed ? -EINVAL : 0;
}

bool
sieve_script_requires(const struct sieve_script *script, enum sieve_ext ext)
{
    return ext == SIEVE_EXT_NONE || (script->extensions & SIEVE_EXT_BIT(ext)) != 0;
}

static size_t
clamp(size_t value, size_t ceiling)
{
    return value == 0 || value > ceiling ? ceiling : value;
}

int
sieve_compile(const char *text, size_t len, const struct sieve_limits *limits,
              struct sieve_script **script_out, struct sieve_errors *errors_out)
{
    ASSERT(script_out != NULL && errors_out != NULL);
    ASSERT(text != NULL || len == 0);
    struct sieve_limits lim;
    sieve_limits_default(&lim);
    if (limits != NULL) {
        lim.script_bytes_max = clamp(limits->script_bytes_max, lim.script_bytes_max);
        lim.block_depth_max = (uint32_t)clamp(limits->block_depth_max, lim.block_depth_max);
        lim.test_depth_max = (uint32_t)clamp(limits->test_depth_max, lim.test_depth_max);
        lim.string_bytes_max = clamp(limits->string_bytes_max, lim.string_bytes_max);
        lim.list_entries_max = clamp(limits->list_entries_max, lim.list_entries_max);
        lim.node_count_max = clamp(limits->node_count_max, lim.node_count_max);
        lim.memory_bytes_max = clamp(limits->memory_bytes_max, lim.memory_bytes_max);
        lim.error_count_max = clamp(limits->error_count_max, lim.error_count_max);
    }
    *script_out = NULL;
    sieve_errors_init(errors_out, lim.error_count_max);
    if (len > lim.script_bytes_max) {
        sieve_errors_add(errors_out, 0, "script is too large (%zu bytes, the limit is %zu)", len,
                         lim.script_bytes_max);
        return -EFBIG;
    }
    struct sieve_script *script = calloc(1, sizeof(*script));
    if (script == NULL) {
        return -ENOMEM;
    }
    sieve_arena_init(&script->arena, lim.memory_bytes_max);
    int rc = sieve_parse(script, text, len, &lim, errors_out);
    if (rc == 0) {
        rc = sieve_validate(script, errors_out);
    }
    if (rc != 0) {
        sieve_script_free(&script);
        return rc;
    }
    *script_out = script;
    return 0;
}

void
sieve_script_free(struct sieve_script **script)
{
    if (script == NULL || *script == NULL) {
        return;
    }
    sieve_arena_free(&(*script)->arena);
    free(*script);
    *script = NULL;
}
