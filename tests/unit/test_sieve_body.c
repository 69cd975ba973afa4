/*
 * tests/unit/test_sieve_body.c - the pieces of text the Sieve "body" test
 * (RFC 5173) matches, from filters/sieve_body: the section 7 example
 * message under :raw, :text and every kind of :content (multipart
 * prologue/epilogue without boundaries, message/rfc822 header, nested
 * parts, invalid type strings), with LF and CRLF line ends, header and
 * body adjacent or apart; transfer decoding and charsets; broken MIME
 * (missing boundaries, truncated and invalid base64); the callback's stop
 * and error; and each bound (depth, parts, decoded bytes) at max - 1,
 * max, max + 1.
 */
#define _GNU_SOURCE /* strcasestr */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "filters/sieve_body.h"
#include "tests/unit/unit.h"

int main(void);

#define PIECES_MAX 64

struct pieces {
    size_t count;
    char *text[PIECES_MAX];
    size_t len[PIECES_MAX];
    size_t total_bytes;
    int stop_after; /* return 1 after this many pieces; 0: never */
    int fail_with;  /* return this (< 0) on the first piece; 0: never */
};

static int
collect(void *ctx, const char *text, size_t len)
{
    struct pieces *p = ctx;
    if (p->fail_with < 0) {
        return p->fail_with;
    }
    p->total_bytes += len;
    if (p->count < PIECES_MAX) {
        p->text[p->count] = malloc(len + 1);
        if (p->text[p->count] != NULL) {
            memcpy(p->text[p->count], text, len);
            p->text[p->count][len] = '\0';
        }
        p->len[p->count] = len;
    }
    p->count++;
    if (p->stop_after > 0 && p->count >= (size_t)p->stop_after) {
        return 1;
    }
    return 0;
}

static void
pieces_free(struct pieces *p)
{
    for (size_t i = 0; i < p->count && i < PIECES_MAX; i++) {
        free(p->text[i]);
    }
    memset(p, 0, sizeof(*p));
}

/* Walks message (header, blank line, body in one string) with one content
 * type string (NULL: none). When is_apart, header and body are handed
 * over from separate buffers. */
static int
walk(const char *message, enum sieve_body_transform transform, const char *type, bool is_apart,
     struct pieces *out)
{
    size_t len = strlen(message);
    const char *blank = strstr(message, "\r\n\r\n");
    size_t header_len;
    if (blank != NULL) {
        header_len = (size_t)(blank - message) + 4;
    } else {
        blank = strstr(message, "\n\n");
        header_len = blank != NULL ? (size_t)(blank - message) + 2 : len;
    }
    struct sieve_string types[1];
    size_t type_count = 0;
    if (type != NULL) {
        types[0] = (struct sieve_string){.text = (char *)type, .len = strlen(type)};
        type_count = 1;
    }
    if (!is_apart) {
        return sieve_body_walk(message, header_len, message + header_len, len - header_len,
                               transform, types, type_count, collect, out);
    }
    char *header = malloc(header_len + 1);
    char *body = malloc(len - header_len + 1);
    CHECK(header != NULL && body != NULL);
    memcpy(header, message, header_len);
    memcpy(body, message + header_len, len - header_len);
    int rc = sieve_body_walk(header, header_len, body, len - header_len, transform, types,
                             type_count, collect, out);
    free(header);
    free(body);
    return rc;
}

/* Whether any piece contains needle (ASCII case-insensitive). */
static bool
any_contains(const struct pieces *p, const char *needle)
{
    for (size_t i = 0; i < p->count && i < PIECES_MAX; i++) {
        if (p->text[i] != NULL && strcasestr(p->text[i], needle) != NULL) {
            return true;
        }
    }
    return false;
}

static const char rfc5173_example[] =
    "From: Whomsoever@example.com\n"
    "To: Someone@example.net\n"
    "Subject: whatever\n"
    "Content-Type: multipart/mixed; boundary=outer\n"
    "\n"
    "This is a multi-part message in MIME format.\n"
    "\n"
    "--outer\n"
    "Content-Type: multipart/alternative; boundary=inner\n"
    "\n"
    "This is a nested multi-part message in MIME format.\n"
    "\n"
    "--inner\n"
    "Content-Type: text/plain; charset=\"us-ascii\"\n"
    "\n"
    "Hello\n"
    "\n"
    "--inner\n"
    "Content-Type: text/html; charset=\"us-ascii\"\n"
    "\n"
    "<html><body>Hello</body></html>\n"
    "\n"
    "--inner--\n"
    "\n"
    "This is the end of the inner MIME multipart.\n"
    "\n"
    "--outer\n"
    "Content-Type: message/rfc822\n"
    "\n"
    "From: Someone.Else@example.com\n"
    "Subject: hello request\n"
    "\n"
    "Please say Hello\n"
    "\n"
    "--outer--\n"
    "\n"
    "This is the end of the outer MIME multipart.\n";

/* LF to CRLF, malloc'd. */
static char *
to_crlf(const char *s)
{
    size_t n = strlen(s);
    char *out = malloc(2 * n + 1);
    size_t j = 0;
    CHECK(out != NULL);
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\n') {
            out[j++] = '\r';
        }
        out[j++] = s[i];
    }
    out[j] = '\0';
    return out;
}

static void
test_rfc5173_example(const char *message, bool is_apart)
{
    bool is_crlf = strstr(message, "\r\n") != NULL;
    const char *nl = is_crlf ? "\r\n" : "\n";
    char want[256];
    struct pieces p = {0};

    /* :raw: the whole undecoded body, one piece; "MIME" is in it. */
    CHECK(walk(message, SIEVE_BODY_RAW, NULL, is_apart, &p) == 0);
    CHECK(p.count == 1);
    CHECK(p.len[0] == strlen(strstr(message, is_crlf ? "\r\n\r\n" : "\n\n")) - 2 * strlen(nl));
    CHECK(any_contains(&p, "MIME"));
    CHECK(any_contains(&p, "--inner"));
    pieces_free(&p);

    /* "multipart": the four prologues/epilogues, no boundary line. */
    CHECK(walk(message, SIEVE_BODY_CONTENT, "multipart", is_apart, &p) == 0);
    CHECK(p.count == 4);
    (void)snprintf(want, sizeof(want), "This is a multi-part message in MIME format.%s", nl);
    CHECK_STR(p.text[0], want);
    (void)snprintf(want, sizeof(want), "%sThis is the end of the outer MIME multipart.%s", nl,
                   nl);
    CHECK_STR(p.text[1], want);
    (void)snprintf(want, sizeof(want), "This is a nested multi-part message in MIME format.%s",
                   nl);
    CHECK_STR(p.text[2], want);
    (void)snprintf(want, sizeof(want), "%sThis is the end of the inner MIME multipart.%s", nl, nl);
    CHECK_STR(p.text[3], want);
    CHECK(!any_contains(&p, "--inner"));
    CHECK(!any_contains(&p, "--outer"));
    CHECK(!any_contains(&p, "Hello"));
    pieces_free(&p);

    /* "message/rfc822": the nested header only, without its empty line. */
    CHECK(walk(message, SIEVE_BODY_CONTENT, "message/rfc822", is_apart, &p) == 0);
    CHECK(p.count == 1);
    (void)snprintf(want, sizeof(want), "From: Someone.Else@example.com%sSubject: hello request%s",
                   nl, nl);
    CHECK_STR(p.text[0], want);
    CHECK(!any_contains(&p, "Please say Hello"));
    pieces_free(&p);
    CHECK(walk(message, SIEVE_BODY_CONTENT, "message", is_apart, &p) == 0);
    CHECK(p.count == 1);
    pieces_free(&p);

    /* "text/plain": the plain part and the nested message's body (no
     * Content-Type: text/plain); not the HTML. */
    CHECK(walk(message, SIEVE_BODY_CONTENT, "text/plain", is_apart, &p) == 0);
    CHECK(p.count == 2);
    (void)snprintf(want, sizeof(want), "Hello%s", nl);
    CHECK_STR(p.text[0], want);
    (void)snprintf(want, sizeof(want), "Please say Hello%s", nl);
    CHECK_STR(p.text[1], want);
    CHECK(!any_contains(&p, "<html>"));
    pieces_free(&p);
    CHECK(walk(message, SIEVE_BODY_CONTENT, "TEXT/Plain", is_apart, &p) == 0);
    CHECK(p.count == 2);
    pieces_free(&p);

    /* "text" and :text: the three text parts; "html" is in one of them. */
    CHECK(walk(message, SIEVE_BODY_CONTENT, "text", is_apart, &p) == 0);
    CHECK(p.count == 3);
    CHECK(any_contains(&p, "html"));
    CHECK(any_contains(&p, "please say hello"));
    CHECK(!any_contains(&p, "MIME format"));
    pieces_free(&p);
    CHECK(walk(message, SIEVE_BODY_TEXT, "ignored/for-text", is_apart, &p) == 0);
    CHECK(p.count == 3);
    pieces_free(&p);

    /* "": everything: 4 multipart pieces, 3 text parts, 1 nested header. */
    CHECK(walk(message, SIEVE_BODY_CONTENT, "", is_apart, &p) == 0);
    CHECK(p.count == 8);
    pieces_free(&p);

    /* Strings that match no type (RFC 5173 5.2), and a type not there. */
    static const char *const none[] = {"text/", "/plain", "text/plain/stupid", "/", "image",
                                       "text/plai", "tex"};
    for (size_t i = 0; i < sizeof(none) / sizeof(none[0]); i++) {
        CHECK(walk(message, SIEVE_BODY_CONTENT, none[i], is_apart, &p) == 0);
        CHECK(p.count == 0);
        pieces_free(&p);
    }
    /* No content types at all: nothing matches. */
    CHECK(walk(message, SIEVE_BODY_CONTENT, NULL, is_apart, &p) == 0);
    CHECK(p.count == 0);
    pieces_free(&p);
}

static void
test_several_types(void)
{
    struct sieve_string types[2] = {
        {.text = (char *)"text/html", .len = 9},
        {.text = (char *)"message/rfc822", .len = 14},
    };
    struct pieces p = {0};
    const char *body = strstr(rfc5173_example, "\n\n") + 2;
    size_t header_len = (size_t)(body - rfc5173_example);
    CHECK(sieve_body_walk(rfc5173_example, header_len, body, strlen(body), SIEVE_BODY_CONTENT,
                          types, 2, collect, &p) == 0);
    CHECK(p.count == 2);
    CHECK(any_contains(&p, "<html><body>Hello</body></html>"));
    CHECK(any_contains(&p, "Subject: hello request"));
    pieces_free(&p);
}

static void
test_callback(void)
{
    struct pieces p = {.stop_after = 1};
    CHECK(walk(rfc5173_example, SIEVE_BODY_CONTENT, "", false, &p) == 1);
    CHECK(p.count == 1);
    pieces_free(&p);
    p.stop_after = 2;
    CHECK(walk(rfc5173_example, SIEVE_BODY_TEXT, NULL, false, &p) == 1);
    CHECK(p.count == 2);
    pieces_free(&p);
    p.fail_with = -EIO;
    CHECK(walk(rfc5173_example, SIEVE_BODY_TEXT, NULL, false, &p) == -EIO);
    pieces_free(&p);
    p.fail_with = -EIO;
    CHECK(walk(rfc5173_example, SIEVE_BODY_RAW, NULL, false, &p) == -EIO);
    pieces_free(&p);
}

/* Headers that are not a neat block: no blank line, or running on into
 * the body (sieve_message allows both). */
static void
test_header_shapes(void)
{
    struct pieces p = {0};
    const char header[] = "Subject: x\r\nContent-Type: text/plain; charset=iso-8859-1\r\n";
    const char body[] = "caf\xe9\r\n";
    CHECK(sieve_body_walk(header, strlen(header), body, strlen(body), SIEVE_BODY_TEXT, NULL, 0,
                          collect, &p) == 0);
    CHECK(p.count == 1);
    CHECK_STR(p.text[0], "caf\xc3\xa9\r\n");
    pieces_free(&p);

    const char whole[] = "Subject: x\r\nContent-Type: text/plain; charset=iso-8859-1\r\n\r\n"
                         "caf\xe9\r\n";
    const char *after = strstr(whole, "\r\n\r\n") + 4;
    /* header_len covers the whole message; body is a separate copy. */
    char *copy = strdup(after);
    CHECK(sieve_body_walk(whole, strlen(whole), copy, strlen(copy), SIEVE_BODY_TEXT, NULL, 0,
                          collect, &p) == 0);
    CHECK(p.count == 1);
    CHECK_STR(p.text[0], "caf\xc3\xa9\r\n");
    pieces_free(&p);
    free(copy);

    /* An empty body: a text part with nothing in it is one empty piece. */
    CHECK(sieve_body_walk(header, strlen(header), NULL, 0, SIEVE_BODY_TEXT, NULL, 0, collect,
                          &p) == 0);
    CHECK(p.count == 1);
    CHECK(p.len[0] == 0);
    pieces_free(&p);
    CHECK(sieve_body_walk(NULL, 0, NULL, 0, SIEVE_BODY_RAW, NULL, 0, collect, &p) == 0);
    CHECK(p.count == 1);
    CHECK(p.len[0] == 0);
    pieces_free(&p);
    /* No header at all: text/plain by default. */
    CHECK(sieve_body_walk(NULL, 0, "plain\n", 6, SIEVE_BODY_TEXT, NULL, 0, collect, &p) == 0);
    CHECK(p.count == 1);
    CHECK_STR(p.text[0], "plain\n");
    pieces_free(&p);
}

static void
test_decoding(void)
{
    static const struct {
        const char *message;
        const char *type;
        const char *want;
    } cases[] = {
        /* base64 + ISO-8859-1 (the converter's own Latin-1 path) */
        {"Content-Type: text/plain; charset=ISO-8859-1\nContent-Transfer-Encoding: base64\n\n"
         "Q2Fm6Q==\n",
         "text", "Caf\xc3\xa9"},
        /* quoted-printable with a soft break + windows-1252 through iconv */
        {"Content-Type: text/plain; charset=\"windows-1252\"\n"
         "Content-Transfer-Encoding: Quoted-Printable\n\n"
         "price: 5 =80 =\nexactly\n",
         "text/plain", "price: 5 \xe2\x82\xac exactly\n"},
        /* UTF-8 base64 passes as it is */
        {"Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: BASE64\n\n"
         "w6lsw6h2ZQ==\n",
         "text", "\xc3\xa9l\xc3\xa8ve"},
        /* an unknown charset: the bytes unchanged */
        {"Content-Type: text/plain; charset=x-no-such-charset\n\ncaf\xe9\n", "text",
         "caf\xe9\n"},
        /* no charset: unchanged (8-bit UTF-8 without a label stays readable) */
        {"Content-Type: text/plain\n\ncaf\xc3\xa9\n", "text", "caf\xc3\xa9\n"},
        /* a non-text part is decoded, never converted */
        {"Content-Type: application/octet-stream; charset=iso-8859-1\n"
         "Content-Transfer-Encoding: base64\n\nAAH/\n",
         "application/octet-stream", "\x00\x01\xff"},
        /* an unknown transfer encoding: as it is */
        {"Content-Type: text/plain\nContent-Transfer-Encoding: x-uuencode\n\nbegin 644\n",
         "text", "begin 644\n"},
        /* truncated base64: the whole bytes it holds */
        {"Content-Transfer-Encoding: base64\n\nSGVsbG8gV29y\n", "text", "Hello Wor"},
        {"Content-Transfer-Encoding: base64\n\nSGVsbG8gV29yb\n", "text", "Hello Wor"},
        /* bytes outside the alphabet are ignored (RFC 2045 6.8) */
        {"Content-Transfer-Encoding: base64\n\nSGVs*bG8=\n", "text", "Hello"},
        {"Content-Transfer-Encoding: base64\n\n!!SGV\x80sbG8h\n", "text", "Hello!"},
        /* UTF-16 through iconv */
        {"Content-Type: text/plain; charset=UTF-16LE\nContent-Transfer-Encoding: base64\n\n"
         "aABpAA==\n",
         "text", "hi"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct pieces p = {0};
        int rc = walk(cases[i].message, SIEVE_BODY_CONTENT, cases[i].type, false, &p);
        CHECK(rc == 0);
        CHECK(p.count == 1);
        if (p.count == 1) {
            size_t want_len = strlen(cases[i].want);
            if (i == 5) {
                want_len = 3; /* holds a NUL */
            }
            CHECK_BYTES(p.text[0], p.len[0], cases[i].want, want_len);
        }
        pieces_free(&p);
    }
}

static void
test_broken_mime(void)
{
    struct pieces p = {0};
    /* The close delimiter never comes: the last part runs to the end, and
     * there is no epilogue. */
    const char *no_close = "Content-Type: multipart/mixed; boundary=b\n\npro\n--b\n\none\n--b\n\n"
                           "two\n";
    CHECK(walk(no_close, SIEVE_BODY_CONTENT, "text", false, &p) == 0);
    CHECK(p.count == 2);
    CHECK_STR(p.text[1], "two\n");
    pieces_free(&p);
    CHECK(walk(no_close, SIEVE_BODY_CONTENT, "multipart", false, &p) == 0);
    CHECK(p.count == 1);
    CHECK_STR(p.text[0], "pro");
    pieces_free(&p);

    /* The boundary never appears: the whole body is prologue, no parts. */
    const char *no_boundary_line = "Content-Type: multipart/mixed; boundary=zz\n\nall of it\n";
    CHECK(walk(no_boundary_line, SIEVE_BODY_CONTENT, "multipart", false, &p) == 0);
    CHECK(p.count == 1);
    CHECK_STR(p.text[0], "all of it\n");
    pieces_free(&p);
    CHECK(walk(no_boundary_line, SIEVE_BODY_TEXT, NULL, false, &p) == 0);
    CHECK(p.count == 0);
    pieces_free(&p);

    /* No boundary parameter at all. */
    const char *no_param = "Content-Type: multipart/mixed\n\n--x\n\nbody\n--x--\n";
    CHECK(walk(no_param, SIEVE_BODY_CONTENT, "multipart", false, &p) == 0);
    CHECK(p.count == 1);
    pieces_free(&p);

    /* A broken Content-Type counts as absent: text/plain. */
    const char *bad_type = "Content-Type: ;;;\n\nstill text\n";
    CHECK(walk(bad_type, SIEVE_BODY_TEXT, NULL, false, &p) == 0);
    CHECK(p.count == 1);
    pieces_free(&p);

    /* Boundary at the very start (empty prologue) and junk after the close
     * delimiter on its line (ignored, as Dovecot does). */
    const char *tight = "Content-Type: multipart/mixed; boundary=b\n\n--b\n\nx\n--b-- junk\nepi";
    CHECK(walk(tight, SIEVE_BODY_CONTENT, "multipart", false, &p) == 0);
    CHECK(p.count == 1);
    CHECK_STR(p.text[0], "epi");
    pieces_free(&p);

    /* A message/rfc822 part with nothing in it. */
    const char *empty_msg = "Content-Type: message/rfc822\n\n";
    CHECK(walk(empty_msg, SIEVE_BODY_CONTENT, "message/rfc822", false, &p) == 0);
    CHECK(p.count == 1);
    CHECK(p.len[0] == 0);
    pieces_free(&p);
}

/* A chain of multiparts whose innermost text part sits at depth. */
static char *
nested_message(size_t depth)
{
    size_t cap = 64 + depth * 128;
    char *m = malloc(cap);
    size_t n = 0;
    if (m == NULL) {
        abort();
    }
    for (size_t i = 0; i < depth; i++) {
        n += (size_t)snprintf(m + n, cap - n,
                              "Content-Type: multipart/mixed; boundary=b%zu\n\n--b%zu\n", i, i);
    }
    n += (size_t)snprintf(m + n, cap - n, "Content-Type: text/plain\n\ndeep\n");
    for (size_t i = depth; i-- > 0;) {
        n += (size_t)snprintf(m + n, cap - n, "--b%zu--\n", i);
    }
    CHECK(n < cap);
    return m;
}

static void
test_depth_bound(void)
{
    for (size_t depth = SIEVE_BODY_DEPTH_MAX - 1; depth <= SIEVE_BODY_DEPTH_MAX + 1; depth++) {
        char *m = nested_message(depth);
        struct pieces p = {0};
        int rc = walk(m, SIEVE_BODY_TEXT, NULL, false, &p);
        if (depth <= SIEVE_BODY_DEPTH_MAX) {
            CHECK(rc == 0);
            CHECK(p.count == 1);
            CHECK(any_contains(&p, "deep"));
        } else {
            CHECK(rc == -E2BIG);
        }
        pieces_free(&p);
        free(m);
    }
    /* Nesting through message/rfc822 counts too. */
    char m[4096];
    size_t n = 0;
    for (size_t i = 0; i <= SIEVE_BODY_DEPTH_MAX; i++) {
        n += (size_t)snprintf(m + n, sizeof(m) - n, "Content-Type: message/rfc822\n\n");
    }
    (void)snprintf(m + n, sizeof(m) - n, "Subject: in\n\ntext\n");
    struct pieces p = {0};
    CHECK(walk(m, SIEVE_BODY_TEXT, NULL, false, &p) == -E2BIG);
    pieces_free(&p);
}

/* A multipart with children: parts = children + 1. */
static char *
wide_message(size_t children)
{
    size_t cap = 128 + children * 32;
    char *m = malloc(cap);
    size_t n = 0;
    if (m == NULL) {
        abort();
    }
    n += (size_t)snprintf(m + n, cap - n, "Content-Type: multipart/mixed; boundary=b\n\n");
    for (size_t i = 0; i < children; i++) {
        n += (size_t)snprintf(m + n, cap - n, "--b\n\np%zu\n", i);
    }
    n += (size_t)snprintf(m + n, cap - n, "--b--\n");
    CHECK(n < cap);
    return m;
}

static void
test_parts_bound(void)
{
    for (size_t parts = SIEVE_BODY_PARTS_MAX - 1; parts <= SIEVE_BODY_PARTS_MAX + 1; parts++) {
        char *m = wide_message(parts - 1);
        struct pieces p = {0};
        int rc = walk(m, SIEVE_BODY_TEXT, NULL, false, &p);
        if (parts <= SIEVE_BODY_PARTS_MAX) {
            CHECK(rc == 0);
            CHECK(p.count == parts - 1);
        } else {
            CHECK(rc == -E2BIG);
        }
        pieces_free(&p);
        free(m);
    }
    /* :raw never parses, so no MIME bound applies to it. */
    char *m = wide_message(SIEVE_BODY_PARTS_MAX + 10);
    struct pieces p = {0};
    CHECK(walk(m, SIEVE_BODY_RAW, NULL, false, &p) == 0);
    CHECK(p.count == 1);
    pieces_free(&p);
    free(m);
}

/* Bytes handed over in all: max - 1 and max pass, max + 1 fails, for a
 * plain part, a base64 part, a part that grows in conversion and the sum
 * over two parts. */
static void
test_bytes_bound(void)
{
    const size_t max = SIEVE_BODY_DECODED_BYTES_MAX;
    const char header[] = "Content-Type: text/plain\n\n";
    char *body = malloc(max + 2);
    CHECK(body != NULL);
    memset(body, 'a', max + 1);
    for (size_t len = max - 1; len <= max + 1; len++) {
        struct pieces p = {0};
        int rc = sieve_body_walk(header, strlen(header), body, len, SIEVE_BODY_TEXT, NULL, 0,
                                 collect, &p);
        CHECK(rc == (len <= max ? 0 : -E2BIG));
        if (rc == 0) {
            CHECK(p.total_bytes == len);
        }
        pieces_free(&p);
    }
    free(body);

    /* base64 of max - 1, max and max + 1 bytes ('a' x n: "YWFh" per 3). */
    const char b64_header[] = "Content-Type: text/plain\nContent-Transfer-Encoding: base64\n\n";
    for (size_t len = max - 1; len <= max + 1; len++) {
        static const char alphabet[] =
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        size_t enc_len = (len + 2) / 3 * 4; /* rounds up */
        char *enc = malloc(enc_len);
        CHECK(enc != NULL);
        for (size_t i = 0; i < len / 3; i++) {
            memcpy(enc + 4 * i, "YWFh", 4);
        }
        size_t rest = len % 3;
        if (rest > 0) {
            unsigned v = rest == 1 ? 0x61u << 16 : (0x61u << 16) | (0x61u << 8);
            char *q = enc + 4 * (len / 3);
            q[0] = alphabet[(v >> 18) & 63];
            q[1] = alphabet[(v >> 12) & 63];
            q[2] = rest == 2 ? alphabet[(v >> 6) & 63] : '=';
            q[3] = '=';
        }
        struct pieces p = {0};
        int rc = sieve_body_walk(b64_header, strlen(b64_header), enc, enc_len, SIEVE_BODY_TEXT,
                                 NULL, 0, collect, &p);
        CHECK(rc == (len <= max ? 0 : -E2BIG));
        if (rc == 0) {
            CHECK(p.total_bytes == len);
        }
        pieces_free(&p);
        free(enc);
    }

    /* Latin-1 0xe9 becomes two bytes: max / 2 of them just fit. */
    const char l1_header[] = "Content-Type: text/plain; charset=iso-8859-1\n\n";
    char *l1 = malloc(max / 2 + 1);
    CHECK(l1 != NULL);
    memset(l1, 0xe9, max / 2 + 1);
    for (size_t len = max / 2 - 1; len <= max / 2 + 1; len++) {
        struct pieces p = {0};
        int rc = sieve_body_walk(l1_header, strlen(l1_header), l1, len, SIEVE_BODY_TEXT, NULL, 0,
                                 collect, &p);
        CHECK(rc == (2 * len <= max ? 0 : -E2BIG));
        if (rc == 0) {
            CHECK(p.total_bytes == 2 * len);
        }
        pieces_free(&p);
    }
    free(l1);

    /* Two parts of max / 2 + 1 bytes: the second one breaks the bound. */
    size_t half = max / 2 + 1;
    const char two_header[] = "Content-Type: multipart/mixed; boundary=b\n\n";
    char *two = malloc(2 * half + 64);
    CHECK(two != NULL);
    size_t n = 0;
    for (size_t k = 0; k < 2; k++) {
        memcpy(two + n, "--b\n\n", 5);
        n += 5;
        memset(two + n, 'x', half);
        n += half;
        two[n++] = '\n';
    }
    memcpy(two + n, "--b--\n", 6);
    n += 6;
    struct pieces p = {0};
    CHECK(sieve_body_walk(two_header, strlen(two_header), two, n, SIEVE_BODY_TEXT, NULL, 0,
                          collect, &p) == -E2BIG);
    CHECK(p.count == 1);
    pieces_free(&p);
    free(two);
}

int
main(void)
{
    char *crlf = to_crlf(rfc5173_example);
    test_rfc5173_example(rfc5173_example, false);
    test_rfc5173_example(rfc5173_example, true);
    test_rfc5173_example(crlf, false);
    test_rfc5173_example(crlf, true);
    free(crlf);
    test_several_types();
    test_callback();
    test_header_shapes();
    test_decoding();
    test_broken_mime();
    test_depth_bound();
    test_parts_bound();
    test_bytes_bound();
    UNIT_DONE();
}
