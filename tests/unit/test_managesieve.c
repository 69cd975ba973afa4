/*
 * tests/unit/test_managesieve.c - the ManageSieve reader and session fed
 * as bytes: RFC 5804's examples (greeting, AUTHENTICATE PLAIN with and
 * without an initial response, NOOP with a tag, STARTTLS, UNAUTHENTICATE,
 * LOGOUT), every script command's argument checks, literals in both forms
 * and split across feeds byte by byte, and bad input: overlong lines,
 * quoted strings past 1,024 octets, scripts past the size limit (read to
 * their end, so the next command is understood), absurd literal sizes,
 * garbage, bare LF, and the error limit.
 */
#include <stdlib.h>
#include <string.h>

#include "proto/managesieve/managesieve_session.h"
#include "tests/unit/unit.h"

static unsigned big_live; /* big buffers lent and not given back */

static char *
test_big_acquire(void *owner, size_t bytes)
{
    (void)owner;
    big_live++;
    return malloc(bytes);
}

static void
test_big_release(void *owner, char *buffer)
{
    (void)owner;
    big_live--;
    free(buffer);
}

static struct managesieve_session_config config = {
    .implementation = "toaster test",
    .sieve_extensions = "fileinto reject",
    .error_limit = 5,
    .reader = { .line_bytes_max = 2048, .big_literal_bytes_max = 10000,
                .big_acquire = test_big_acquire, .big_release = test_big_release },
};

static char out[65536];
static size_t out_len;

/* Move the session's output into out (appending). */
static void
drain(struct managesieve_session *s)
{
    struct span o = managesieve_session_output(s);
    if (out_len + o.len < sizeof(out)) {
        memcpy(out + out_len, o.ptr, o.len);
        out_len += o.len;
        out[out_len] = '\0';
    }
    managesieve_session_output_sent(s, o.len);
}

static void
out_reset(void)
{
    out_len = 0;
    out[0] = '\0';
}

/* Feed all of text (draining as the client would read), return bytes used. */
static size_t
feed(struct managesieve_session *s, const char *text, size_t len)
{
    size_t used = 0;
    for (int guard = 0; used < len && guard < 1000; guard++) {
        used += managesieve_session_feed(s, text + used, len - used);
        drain(s);
        if (!managesieve_session_wants_input(s)) {
            break;
        }
    }
    return used;
}

static size_t
feed_str(struct managesieve_session *s, const char *text)
{
    return feed(s, text, strlen(text));
}

static void
start(struct managesieve_session *s, bool is_secure, bool is_tls_offered)
{
    managesieve_session_init(s, &config, is_secure, is_tls_offered, false);
    out_reset();
    drain(s);
}

static void
login(struct managesieve_session *s)
{
    /* "\0tim\0tanstaaftanstaaf" from RFC 4616, as an initial response. */
    feed_str(s, "AUTHENTICATE \"PLAIN\" \"AHRpbQB0YW5zdGFhZnRhbnN0YWFm\"\r\n");
    CHECK(managesieve_session_take_request(s) == MANAGESIEVE_REQUEST_AUTH);
    managesieve_session_auth_done(s, true, "tim@example.org");
    drain(s);
    out_reset();
}

static void
test_greeting_and_capability(void)
{
    struct managesieve_session s;
    start(&s, false, true);
    CHECK_STR(out, "\"IMPLEMENTATION\" \"toaster test\"\r\n"
                   "\"SASL\" \"\"\r\n"
                   "\"SIEVE\" \"fileinto reject\"\r\n"
                   "\"STARTTLS\"\r\n"
                   "\"UNAUTHENTICATE\"\r\n"
                   "\"VERSION\" \"1.0\"\r\n"
                   "OK \"toaster ManageSieve ready.\"\r\n");
    /* Secure (loopback) offers PLAIN; TLS on from the start offers no STARTTLS. */
    managesieve_session_init(&s, &config, false, false, true);
    out_reset();
    drain(&s);
    CHECK(strstr(out, "\"SASL\" \"PLAIN\"\r\n") != NULL);
    CHECK(strstr(out, "STARTTLS") == NULL);
    out_reset();
    feed_str(&s, "capability\r\n");
    CHECK(strstr(out, "\"VERSION\" \"1.0\"\r\nOK \"Capability completed.\"\r\n") != NULL);
    out_reset();
    feed_str(&s, "CAPABILITY extra\r\n");
    CHECK_STR(out, "NO \"Syntax: CAPABILITY\"\r\n");
    managesieve_session_finish(&s);
}

static void
test_authenticate(void)
{
    struct managesieve_session s;
    /* Insecure and no plaintext: refused with ENCRYPT-NEEDED. */
    start(&s, false, true);
    out_reset();
    feed_str(&s, "AUTHENTICATE \"PLAIN\" \"AHRpbQB0YW5zdGFhZnRhbnN0YWFm\"\r\n");
    CHECK_STR(out, "NO (ENCRYPT-NEEDED) \"Plaintext authentication disallowed without TLS.\"\r\n");
    CHECK(managesieve_session_take_request(&s) == MANAGESIEVE_REQUEST_NONE);

    /* Initial response. */
    start(&s, true, false);
    out_reset();
    feed_str(&s, "AUTHENTICATE \"PLAIN\" \"AHRpbQB0YW5zdGFhZnRhbnN0YWFm\"\r\n");
    CHECK(managesieve_session_take_request(&s) == MANAGESIEVE_REQUEST_AUTH);
    CHECK_STR(managesieve_session_auth_user(&s), "tim");
    CHECK_STR(managesieve_session_auth_password(&s), "tanstaaftanstaaf");
    CHECK(!managesieve_session_wants_input(&s));
    managesieve_session_auth_done(&s, true, "tim@example.org");
    drain(&s);
    CHECK_STR(out, "OK \"Logged in.\"\r\n");
    CHECK_STR(managesieve_session_user(&s), "tim@example.org");
    out_reset();
    feed_str(&s, "CAPABILITY\r\n");
    CHECK(strstr(out, "\"OWNER\" \"tim@example.org\"\r\n") != NULL);
    CHECK(strstr(out, "\"SASL\" \"\"\r\n") != NULL);
    out_reset();
    feed_str(&s, "AUTHENTICATE \"PLAIN\" \"AHRpbQB0YW5zdGFhZnRhbnN0YWFm\"\r\n");
    CHECK_STR(out, "NO \"Already authenticated.\"\r\n");
    out_reset();
    feed_str(&s, "UNAUTHENTICATE\r\n");
    CHECK_STR(out, "OK \"Unauthenticate completed.\"\r\n");
    CHECK(managesieve_session_state(&s) == MANAGESIEVE_STATE_NOT_AUTHENTICATED);
    CHECK_STR(managesieve_session_user(&s), "");

    /* Empty challenge, the response as a literal on its own line. */
    out_reset();
    feed_str(&s, "Authenticate \"plain\"\r\n");
    CHECK_STR(out, "\"\"\r\n");
    CHECK(managesieve_session_is_mid_command(&s));
    out_reset();
    feed_str(&s, "{28+}\r\nAHRpbQB0YW5zdGFhZnRhbnN0YWFm\r\n");
    CHECK(managesieve_session_take_request(&s) == MANAGESIEVE_REQUEST_AUTH);
    managesieve_session_auth_done(&s, false, NULL);
    drain(&s);
    CHECK_STR(out, "NO \"Authentication failed.\"\r\n");

    /* "*" cancels; garbage base64 and unknown mechanisms are refused. */
    out_reset();
    feed_str(&s, "AUTHENTICATE \"PLAIN\"\r\n\"*\"\r\n");
    CHECK_STR(out, "\"\"\r\nNO \"Authentication cancelled.\"\r\n");
    out_reset();
    feed_str(&s, "AUTHENTICATE \"PLAIN\" \"!!!\"\r\n");
    CHECK_STR(out, "NO \"Invalid SASL PLAIN response.\"\r\n");
    out_reset();
    feed_str(&s, "AUTHENTICATE \"DIGEST-MD5\"\r\n");
    /* The fifth failure of this session ("Already authenticated" was the first). */
    CHECK_STR(out, "NO \"Unsupported SASL mechanism.\"\r\nBYE \"Too many invalid commands.\"\r\n");
    managesieve_session_finish(&s);
}

static void
test_noop_logout_unknown(void)
{
    struct managesieve_session s;
    start(&s, true, false);
    out_reset();
    feed_str(&s, "NOOP\r\nNOOP \"STARTTLS-SYNC-42\"\r\nNOOP {3+}\r\na\"b\r\n");
    CHECK_STR(out, "OK \"NOOP completed.\"\r\n"
                   "OK (TAG \"STARTTLS-SYNC-42\") \"Done\"\r\n"
                   "OK (TAG \"a\\\"b\") \"Done\"\r\n");
    out_reset();
    feed_str(&s, "FROBNICATE\r\n");
    CHECK_STR(out, "NO \"Unknown command.\"\r\n");
    out_reset();
    feed_str(&s, "LISTSCRIPTS\r\n");
    CHECK_STR(out, "NO \"Authenticate first.\"\r\n");
    out_reset();
    feed_str(&s, "\r\n\r\nLOGOUT\r\nNOOP\r\n");
    CHECK_STR(out, "OK \"Logout completed.\"\r\n");
    CHECK(managesieve_session_is_closing(&s));
    CHECK(!managesieve_session_wants_input(&s));
    managesieve_session_finish(&s);
}

static void
test_starttls(void)
{
    struct managesieve_session s;
    start(&s, false, true);
    out_reset();
    /* Whatever follows STARTTLS is not read in plaintext. */
    const char *in = "STARTTLS\r\nAUTHENTICATE \"PLAIN\" \"AHRpbQB0YW5zdGFhZnRhbnN0YWFm\"\r\n";
    size_t used = feed_str(&s, in);
    CHECK(used == strlen("STARTTLS\r\n"));
    CHECK_STR(out, "OK \"Begin TLS negotiation now.\"\r\n");
    CHECK(managesieve_session_take_request(&s) == MANAGESIEVE_REQUEST_STARTTLS);
    out_reset();
    managesieve_session_tls_started(&s);
    drain(&s);
    /* RFC 5804 2.2: capabilities again, now with PLAIN and without STARTTLS. */
    CHECK(strstr(out, "\"SASL\" \"PLAIN\"\r\n") != NULL);
    CHECK(strstr(out, "STARTTLS") == NULL);
    CHECK(strstr(out, "OK \"TLS negotiation successful.\"\r\n") != NULL);
    out_reset();
    feed_str(&s, "STARTTLS\r\n");
    CHECK_STR(out, "NO \"TLS is already active.\"\r\n");
    managesieve_session_finish(&s);

    start(&s, true, false);
    out_reset();
    feed_str(&s, "STARTTLS\r\n");
    CHECK_STR(out, "NO \"TLS is not available here.\"\r\n");
    managesieve_session_finish(&s);
}

/* Take the script request and answer it with a fixed reply. */
static const struct managesieve_script_request *
take_script(struct managesieve_session *s)
{
    if (managesieve_session_take_request(s) != MANAGESIEVE_REQUEST_SCRIPT) {
        return NULL;
    }
    return managesieve_session_script(s);
}

static void
test_script_commands(void)
{
    struct managesieve_session s;
    start(&s, true, false);
    login(&s);

    feed_str(&s, "PUTSCRIPT \"vacation\" {13+}\r\nkeep;\r\nstop;\r\n");
    const struct managesieve_script_request *r = take_script(&s);
    CHECK(r != NULL && r->op == MANAGESIEVE_OP_PUTSCRIPT);
    if (r != NULL) {
        CHECK_BYTES(r->name.ptr, r->name.len, "vacation", 8);
        CHECK_BYTES(r->script.ptr, r->script.len, "keep;\r\nstop;\r", 13);
    }
    CHECK(!managesieve_session_wants_input(&s));
    managesieve_session_script_done(&s, false);
    /* The literal was 13 octets: the "\n" left is the end of the line. */
    CHECK(managesieve_session_wants_input(&s));

    /* A literal above the inline area goes into a lent buffer. */
    char big[8000];
    memset(big, 'x', sizeof(big));
    char head[64];
    (void)snprintf(head, sizeof(head), "PUTSCRIPT \"big\" {%zu+}\r\n", sizeof(big));
    feed_str(&s, head);
    feed(&s, big, sizeof(big));
    feed_str(&s, "\r\n");
    r = take_script(&s);
    CHECK(r != NULL && r->script.len == sizeof(big));
    CHECK(big_live == 1);
    managesieve_session_script_done(&s, false);
    CHECK(big_live == 0);

    struct {
        const char *line;
        enum managesieve_script_op op;
    } good[] = {
        { "LISTSCRIPTS\r\n", MANAGESIEVE_OP_LISTSCRIPTS },
        { "SETACTIVE \"\"\r\n", MANAGESIEVE_OP_SETACTIVE },
        { "setactive \"vacation\"\r\n", MANAGESIEVE_OP_SETACTIVE },
        { "GETSCRIPT \"vacation\"\r\n", MANAGESIEVE_OP_GETSCRIPT },
        { "DELETESCRIPT \"vacation\"\r\n", MANAGESIEVE_OP_DELETESCRIPT },
        { "RENAMESCRIPT \"a\" \"b\"\r\n", MANAGESIEVE_OP_RENAMESCRIPT },
        { "CHECKSCRIPT {5+}\r\nkeep;\r\n", MANAGESIEVE_OP_CHECKSCRIPT },
        { "HAVESPACE \"myscript\" 999999\r\n", MANAGESIEVE_OP_HAVESPACE },
        { "GETSCRIPT \"\xc3\xa9t\xc3\xa9\"\r\n", MANAGESIEVE_OP_GETSCRIPT },
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        out_reset();
        feed_str(&s, good[i].line);
        r = take_script(&s);
        CHECK(r != NULL && r->op == good[i].op);
        if (r == NULL) {
            fprintf(stderr, "  line: %s  out: %s\n", good[i].line, out);
            continue;
        }
        if (good[i].op == MANAGESIEVE_OP_HAVESPACE) {
            CHECK(r->size == 999999);
        }
        managesieve_session_script_done(&s, false);
    }

    struct {
        const char *line;
        const char *reply;
    } bad[] = {
        { "PUTSCRIPT \"x\"\r\n", "NO \"Wrong arguments for this command.\"\r\n" },
        { "PUTSCRIPT x \"keep;\"\r\n", "NO \"Wrong arguments for this command.\"\r\n" },
        { "GETSCRIPT \"a/b\"\r\n", "NO \"Invalid script name.\"\r\n" },
        { "GETSCRIPT \".hidden\"\r\n", "NO \"Invalid script name.\"\r\n" },
        { "GETSCRIPT \"\"\r\n", "NO \"Invalid script name.\"\r\n" },
        { "GETSCRIPT \"a\xc2\x85" "b\"\r\n", "NO \"Invalid script name.\"\r\n" },
        { "GETSCRIPT \"\xff\"\r\n", "NO \"Invalid script name.\"\r\n" },
        { "RENAMESCRIPT \"a\" \"\"\r\n", "NO \"Invalid new script name.\"\r\n" },
        { "HAVESPACE \"a\" 99999999999\r\n", "NO \"Wrong arguments for this command.\"\r\n" },
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        start(&s, true, false);
        login(&s);
        feed_str(&s, bad[i].line);
        CHECK_STR(out, bad[i].reply);
        CHECK(managesieve_session_take_request(&s) == MANAGESIEVE_REQUEST_NONE);
        managesieve_session_finish(&s);
    }
    CHECK(big_live == 0);
}

static void
test_bad_input(void)
{
    struct managesieve_session s;
    start(&s, true, false);
    login(&s);

    /* A script above the limit is read to its end and refused; the next
     * command on the same line stream is understood. */
    char head[64];
    (void)snprintf(head, sizeof(head), "PUTSCRIPT \"huge\" {20000+}\r\n");
    feed_str(&s, head);
    char junk[20000];
    memset(junk, 'j', sizeof(junk));
    feed(&s, junk, sizeof(junk));
    feed_str(&s, "\r\nNOOP\r\n");
    CHECK_STR(out, "NO (QUOTA/MAXSIZE) \"Script too large.\"\r\nOK \"NOOP completed.\"\r\n");
    CHECK(big_live == 0);

    /* A quoted string past 1,024 octets, an overlong line. */
    out_reset();
    char line[3000];
    memset(line, 'a', sizeof(line));
    memcpy(line, "NOOP \"", 6);
    memcpy(line + sizeof(line) - 3, "\"\r\n", 3);
    feed(&s, line, sizeof(line));
    CHECK_STR(out, "NO \"Command line too long.\"\r\n");
    out_reset();
    memset(line, 'a', sizeof(line));
    memcpy(line + sizeof(line) - 2, "\r\n", 2);
    feed(&s, line, sizeof(line));
    CHECK_STR(out, "NO \"Syntax error.\"\r\n"); /* the name is over 32 octets */

    /* Bare LF ends a line; a CR alone inside is garbage. */
    out_reset();
    feed_str(&s, "NOOP\nNOOP\rX\r\n");
    CHECK_STR(out, "OK \"NOOP completed.\"\r\nNO \"Syntax error.\"\r\n");

    /* A literal size no client means ends the conversation. */
    out_reset();
    feed_str(&s, "PUTSCRIPT \"x\" {99999999999+}\r\n");
    CHECK_STR(out, "BYE \"Literal too large.\"\r\n");
    CHECK(managesieve_session_is_closing(&s));
    managesieve_session_finish(&s);

    /* Error limit: the fifth failure says BYE. */
    start(&s, true, false);
    out_reset();
    feed_str(&s, "X\r\nX\r\nX\r\nX\r\nX\r\nNOOP\r\n");
    CHECK_STR(out, "NO \"Unknown command.\"\r\nNO \"Unknown command.\"\r\n"
                   "NO \"Unknown command.\"\r\nNO \"Unknown command.\"\r\n"
                   "NO \"Unknown command.\"\r\nBYE \"Too many invalid commands.\"\r\n");
    managesieve_session_finish(&s);

    /* Garbage tokens, too many arguments, a "{" without a size. */
    start(&s, true, false);
    out_reset();
    feed_str(&s, "NOOP (x)\r\nNOOP a b c d e\r\nNOOP {+}\r\n");
    CHECK_STR(out, "NO \"Syntax error.\"\r\nNO \"Too many arguments.\"\r\nNO \"Syntax error.\"\r\n");
    managesieve_session_finish(&s);
}

/* Every command fed one byte at a time gives the same replies. */
static void
test_byte_at_a_time(void)
{
    const char *in = "NOOP \"t\"\r\nAUTHENTICATE \"PLAIN\"\r\n{28+}\r\n"
                     "AHRpbQB0YW5zdGFhZnRhbnN0YWFm\r\n";
    struct managesieve_session s;
    start(&s, true, false);
    out_reset();
    size_t len = strlen(in);
    for (size_t i = 0; i < len; i++) {
        CHECK(feed(&s, in + i, 1) == 1);
    }
    CHECK_STR(out, "OK (TAG \"t\") \"Done\"\r\n\"\"\r\n");
    CHECK(managesieve_session_take_request(&s) == MANAGESIEVE_REQUEST_AUTH);
    CHECK_STR(managesieve_session_auth_user(&s), "tim");
    managesieve_session_auth_done(&s, true, NULL);
    managesieve_session_finish(&s);
}

static void
test_strings(void)
{
    char buf[64];
    size_t len = 0;
    CHECK(managesieve_string_append(buf, sizeof(buf), &len, span_make("a\"b\\", 4)));
    CHECK_BYTES(buf, len, "\"a\\\"b\\\\\"", 8);
    len = 0;
    CHECK(managesieve_string_append(buf, sizeof(buf), &len, span_make("l1\r\nl2", 6)));
    CHECK_BYTES(buf, len, "{6}\r\nl1\r\nl2", 11);
    len = 0;
    CHECK(!managesieve_string_append(buf, 4, &len, span_make("abcd", 4)));
    CHECK(len == 0);
}

int
main(void)
{
    test_greeting_and_capability();
    test_authenticate();
    test_noop_logout_unknown();
    test_starttls();
    test_script_commands();
    test_bad_input();
    test_byte_at_a_time();
    test_strings();
    UNIT_DONE();
}
