/*
 * tests/unit/test_imap_session.c - the IMAP session state machine (first
 * slice: up to authentication), driven the way its owner drives it.
 *
 * A fake owner lends one command scratch (and checks it is given back
 * between commands), answers AUTH requests from a one-user table (alice /
 * secret, canonical "alice@example.test") and collects every reply byte.
 * Each transcript case is run whole and one byte at a time; both runs must
 * give the same replies.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/imap/imap_session.h"
#include "tests/unit/unit.h"

#define S(s) (s), (sizeof(s) - 1)
/* Expands S() in its arguments before CHECK_BYTES counts them. */
#define CHECK_OUT(...) CHECK_BYTES(__VA_ARGS__)

#define CAPS_COMMON "IMAP4rev1 IMAP4rev2 LITERAL+ ENABLE ID IDLE NAMESPACE UNSELECT"
#define CAPS_PLAIN CAPS_COMMON " SASL-IR AUTH=PLAIN"
#define CAPS_NOPLAIN CAPS_COMMON " SASL-IR LOGINDISABLED"
#define CAPS_AUTH                                                                              \
    CAPS_COMMON " UTF8=ACCEPT CHILDREN SPECIAL-USE LIST-EXTENDED LIST-STATUS ESEARCH BINARY"    \
                " CONDSTORE QRESYNC UIDPLUS MOVE"
#define GREETING "* OK [CAPABILITY " CAPS_PLAIN "] imap.test ready.\r\n"
#define LOGGED_IN " OK [CAPABILITY " CAPS_AUTH "] Logged in\r\n"

static char scratch_buf[IMAP_LINE_BYTES_MAX_DEFAULT + IMAP_LITERAL_BYTES_MAX_DEFAULT];
static struct imap_node scratch_nodes[IMAP_PARSER_NODES_DEFAULT];

struct owner {
    struct imap_session_scratch scratch;
    bool is_lent;
    bool is_starved; /* acquire returns NULL */
    unsigned acquire_count;
    char transcript[16384];
    size_t transcript_len;
    unsigned auth_count;
    unsigned command_count;
    char appended[65536]; /* streamed APPEND data the owner stored */
    size_t appended_len;
    unsigned chunk_count;
};

static struct imap_session_scratch *
owner_acquire(void *arg)
{
    struct owner *o = arg;
    CHECK(!o->is_lent);
    if (o->is_starved) {
        return NULL;
    }
    o->is_lent = true;
    o->acquire_count++;
    return &o->scratch;
}

static void
owner_release(void *arg, struct imap_session_scratch *scratch)
{
    struct owner *o = arg;
    CHECK(o->is_lent);
    CHECK(scratch == &o->scratch);
    o->is_lent = false;
}

static const struct imap_session_callbacks callbacks = {
    .scratch_acquire = owner_acquire,
    .scratch_release = owner_release,
};

static struct imap_session_config config;

static void
config_setup(bool is_plaintext_allowed)
{
    memset(&config, 0, sizeof(config));
    config.hostname = "imap.test";
    config.version = "0.1";
    imap_reader_config_default(&config.reader, 1024 * 1024);
    config.error_limit = IMAP_SESSION_ERROR_LIMIT_DEFAULT;
    config.is_plaintext_auth_allowed = is_plaintext_allowed;
}

static void
owner_init(struct owner *o)
{
    memset(o, 0, sizeof(*o));
    o->scratch.buf = scratch_buf;
    o->scratch.buf_bytes = sizeof(scratch_buf);
    o->scratch.nodes = scratch_nodes;
    o->scratch.nodes_max = IMAP_PARSER_NODES_DEFAULT;
}

static void
drain(struct owner *o, struct imap_session *s)
{
    struct span out = imap_session_output(s);
    CHECK(o->transcript_len + out.len <= sizeof(o->transcript));
    if (o->transcript_len + out.len <= sizeof(o->transcript)) {
        memcpy(o->transcript + o->transcript_len, out.ptr, out.len);
        o->transcript_len += out.len;
    }
    imap_session_output_sent(s, out.len);
}

static void
answer_auth(struct owner *o, struct imap_session *s)
{
    bool ok = strcmp(imap_session_auth_user(s), "alice") == 0 &&
              strcmp(imap_session_auth_password(s), "secret") == 0;
    o->auth_count++;
    imap_session_auth_done(s, ok, ok ? "alice@example.test" : NULL);
    CHECK(s->pass[0] == '\0');
}

/* The fake owner runs a mailbox command: it writes one tagged line naming
 * the command (as core/imap_exec would write the real answer) and moves
 * the state the way the real command does on success. */
static void
answer_command(struct owner *o, struct imap_session *s, enum imap_request request)
{
    enum imap_command_outcome outcome = IMAP_OUTCOME_STAY;
    char line[256];
    struct span tag = imap_session_tag(s);
    int n;
    if (request == IMAP_REQUEST_IDLE_DONE) {
        CHECK(imap_session_command_is_idle_done(s));
        n = snprintf(line, sizeof(line), "%.*s OK owner IDLE done\r\n", (int)tag.len, tag.ptr);
    } else {
        const struct imap_parsed *p = imap_session_command(s);
        CHECK(p->tag.len == tag.len && memcmp(p->tag.ptr, tag.ptr, tag.len) == 0);
        switch (p->command) {
        case IMAP_CMD_SELECT:
            outcome = IMAP_OUTCOME_SELECTED;
            break;
        case IMAP_CMD_EXAMINE:
            outcome = IMAP_OUTCOME_EXAMINED;
            break;
        case IMAP_CMD_CLOSE:
        case IMAP_CMD_UNSELECT:
            outcome = IMAP_OUTCOME_DESELECTED;
            break;
        case IMAP_CMD_IDLE:
            outcome = IMAP_OUTCOME_IDLE;
            break;
        default:
            break;
        }
        if (outcome == IMAP_OUTCOME_IDLE) {
            n = snprintf(line, sizeof(line), "+ idling\r\n");
        } else {
            n = snprintf(line, sizeof(line), "%.*s OK owner %s%s\r\n", (int)tag.len, tag.ptr,
                         p->is_uid ? "UID " : "", imap_command_name(p->command));
        }
    }
    CHECK(n > 0 && (size_t)n < sizeof(line));
    if (o->transcript_len + (size_t)n <= sizeof(o->transcript)) {
        memcpy(o->transcript + o->transcript_len, line, (size_t)n);
        o->transcript_len += (size_t)n;
    }
    o->command_count++;
    imap_session_command_done(s, outcome);
}

/* Feed in pieces of at most step bytes, answering requests at once when
 * auto_auth. Returns the bytes consumed. */
static size_t
drive(struct owner *o, struct imap_session *s, const char *in, size_t len, size_t step,
      bool auto_auth)
{
    size_t pos = 0;
    for (unsigned rounds = 0; rounds < 1000000; rounds++) {
        drain(o, s);
        enum imap_request request = imap_session_take_request(s);
        if (request == IMAP_REQUEST_AUTH) {
            if (!auto_auth) {
                break;
            }
            answer_auth(o, s);
            continue;
        }
        if (request == IMAP_REQUEST_APPEND_DATA) {
            const struct imap_reader_chunk *c = imap_session_append_chunk(s);
            CHECK(c->offset == o->appended_len);
            if (o->appended_len + c->data.len <= sizeof(o->appended)) {
                memcpy(o->appended + o->appended_len, c->data.ptr, c->data.len);
                o->appended_len += c->data.len;
            }
            o->chunk_count++;
            imap_session_append_data_done(s);
            continue;
        }
        if (request == IMAP_REQUEST_COMMAND || request == IMAP_REQUEST_IDLE_DONE) {
            CHECK(o->is_lent || request == IMAP_REQUEST_IDLE_DONE);
            answer_command(o, s, request);
            continue;
        }
        if (pos >= len || imap_session_is_closing(s)) {
            break;
        }
        size_t n = len - pos < step ? len - pos : step;
        size_t used = imap_session_feed(s, in + pos, n);
        CHECK(!o->is_lent || imap_session_is_mid_command(s));
        pos += used;
        if (used == 0 && imap_session_wants_input(s)) {
            break;
        }
    }
    drain(o, s);
    return pos;
}

/* One case: greeting skipped, the rest compared; whole and byte at a time. */
static void
transcript_case(const char *name, bool is_plaintext_allowed, bool is_secure, const char *in,
                size_t in_len, const char *want, size_t want_len)
{
    static const size_t steps[] = {1u << 20, 1, 3};
    for (size_t k = 0; k < sizeof(steps) / sizeof(steps[0]); k++) {
        config_setup(is_plaintext_allowed);
        struct owner o;
        owner_init(&o);
        struct imap_session s;
        imap_session_init(&s, &config, &callbacks, &o, is_secure);
        drain(&o, &s);
        size_t greet = o.transcript_len;
        drive(&o, &s, in, in_len, steps[k], true);
        size_t got_len = o.transcript_len - greet;
        if (got_len != want_len || memcmp(o.transcript + greet, want, want_len) != 0) {
            fprintf(stderr, "case %s, step %zu:\n", name, steps[k]);
        }
        CHECK_OUT(o.transcript + greet, got_len, want, want_len);
        imap_session_finish(&s);
        CHECK(!o.is_lent);
    }
}

/* An APPEND literal above the inline bound streams to the owner chunk by
 * chunk, with a synchronising literal and with LITERAL+, fed whole and a
 * byte at a time; the command then reaches the owner complete. */
static void
test_append_stream(void)
{
    static char in[40000];
    static const size_t steps[] = {1u << 20, 1, 997};
    for (int is_plus = 0; is_plus < 2; is_plus++) {
        for (size_t k = 0; k < sizeof(steps) / sizeof(steps[0]); k++) {
            size_t body = 20000;
            int n = snprintf(in, sizeof(in), "a LOGIN alice secret\r\nb APPEND Sent (\\Seen) {%zu%s}\r\n",
                             body, is_plus ? "+" : "");
            size_t len = (size_t)n;
            for (size_t i = 0; i < body; i++) {
                in[len++] = (char)('A' + i % 26);
            }
            memcpy(in + len, "\r\nc NOOP\r\n", 11);
            len += 11;
            config_setup(true);
            struct owner o;
            owner_init(&o);
            struct imap_session s;
            imap_session_init(&s, &config, &callbacks, &o, false);
            drain(&o, &s);
            size_t greet = o.transcript_len;
            drive(&o, &s, in, len, steps[k], true);
            CHECK(o.appended_len == body);
            CHECK(o.chunk_count >= 1);
            CHECK(o.appended_len == body && memcmp(o.appended, in + n, body) == 0);
            const char *want = is_plus ? "b OK owner APPEND\r\nc OK NOOP completed.\r\n"
                                       : "+ OK\r\nb OK owner APPEND\r\nc OK NOOP completed.\r\n";
            const char *got = o.transcript + greet;
            size_t got_len = o.transcript_len - greet;
            const char *logged = strstr(got, "Logged in\r\n");
            CHECK(logged != NULL);
            if (logged != NULL) {
                logged += strlen("Logged in\r\n");
                CHECK_BYTES(logged, got_len - (size_t)(logged - got), want, strlen(want));
            }
            imap_session_finish(&s);
            CHECK(!o.is_lent);
        }
    }
}

static void
test_size(void)
{
    printf("sizeof(struct imap_session) = %zu (bound %u), reader %zu\n",
           sizeof(struct imap_session), IMAP_SESSION_BYTES_MAX, sizeof(struct imap_reader));
    CHECK(sizeof(struct imap_session) <= IMAP_SESSION_BYTES_MAX);
    printf("command scratch (borrowed mid-command only): nodes %zu + buffer %zu bytes\n",
           sizeof(scratch_nodes), sizeof(scratch_buf));
}

static void
test_greeting(void)
{
    config_setup(true);
    struct owner o;
    owner_init(&o);
    struct imap_session s;
    imap_session_init(&s, &config, &callbacks, &o, false);
    drain(&o, &s);
    CHECK_OUT(o.transcript, o.transcript_len, S(GREETING));
    CHECK(imap_session_state(&s) == IMAP_STATE_NOT_AUTHENTICATED);
    CHECK(imap_session_wants_input(&s));
    CHECK(!imap_session_is_mid_command(&s));

    config_setup(false);
    owner_init(&o);
    imap_session_init(&s, &config, &callbacks, &o, false);
    drain(&o, &s);
    CHECK_OUT(o.transcript, o.transcript_len,
              S("* OK [CAPABILITY " CAPS_NOPLAIN "] imap.test ready.\r\n"));
    /* A secure transport advertises AUTH=PLAIN even when plaintext is off. */
    owner_init(&o);
    imap_session_init(&s, &config, &callbacks, &o, true);
    drain(&o, &s);
    CHECK_OUT(o.transcript, o.transcript_len, S(GREETING));
}

/* STARTTLS (RFC 9051 6.2.1): offered before login where the transport
 * can start TLS; the feed stops right after the command, so whatever was
 * pipelined after it stays with the owner, who throws it away; then the
 * session is secure and stops offering it. */
static void
test_starttls(void)
{
    config_setup(false);
    struct owner o;
    owner_init(&o);
    struct imap_session s;
    imap_session_init(&s, &config, &callbacks, &o, false);
    imap_session_set_tls(&s, true, false);
    drain(&o, &s);
    CHECK_OUT(o.transcript, o.transcript_len,
              S("* OK [CAPABILITY " CAPS_COMMON " STARTTLS SASL-IR LOGINDISABLED] "
                "imap.test ready.\r\n"));
    static const char in[] = "a STARTTLS\r\nb LOGIN alice secret\r\n";
    size_t used = imap_session_feed(&s, in, sizeof(in) - 1);
    CHECK(used == strlen("a STARTTLS\r\n"));
    CHECK(!imap_session_wants_input(&s));
    CHECK(imap_session_take_request(&s) == IMAP_REQUEST_STARTTLS);
    imap_session_tls_started(&s);
    o.transcript_len = 0;
    drain(&o, &s);
    CHECK_OUT(o.transcript, o.transcript_len, S("a OK Begin TLS negotiation now.\r\n"));
    o.transcript_len = 0;
    drive(&o, &s, S("c CAPABILITY\r\nd STARTTLS\r\ne LOGIN alice secret\r\nf STARTTLS\r\n"),
          1u << 20, true);
    CHECK_OUT(o.transcript, o.transcript_len,
              S("* CAPABILITY " CAPS_COMMON " SASL-IR AUTH=PLAIN\r\n"
                "c OK Capability completed.\r\n"
                "d BAD TLS is already active.\r\n"
                "e OK [CAPABILITY " CAPS_AUTH "] Logged in\r\n"
                "f BAD TLS is already active.\r\n"));
    imap_session_finish(&s);

    /* Without TLS beneath: an unknown command, as before. */
    owner_init(&o);
    imap_session_init(&s, &config, &callbacks, &o, false);
    drain(&o, &s);
    o.transcript_len = 0;
    drive(&o, &s, S("a STARTTLS\r\n"), 1u << 20, true);
    CHECK_OUT(o.transcript, o.transcript_len, S("a BAD Unsupported command.\r\n"));
    imap_session_finish(&s);

    /* Implicit TLS: secure from the start, nothing to start. */
    owner_init(&o);
    imap_session_init(&s, &config, &callbacks, &o, false);
    imap_session_set_tls(&s, false, true);
    drain(&o, &s);
    CHECK_OUT(o.transcript, o.transcript_len, S(GREETING));
    imap_session_finish(&s);
}

static void
test_transcripts(void)
{
    transcript_case("capability", true, false, S("a CAPABILITY\r\n"),
                    S("* CAPABILITY " CAPS_PLAIN "\r\na OK Capability completed.\r\n"));
    transcript_case("noop-logout", true, false, S("a NOOP\r\nb LOGOUT\r\nc NOOP\r\n"),
                    S("a OK NOOP completed.\r\n* BYE Logging out\r\nb OK Logout completed.\r\n"));
    transcript_case("noop-args", true, false, S("a NOOP x\r\n"),
                    S("a BAD NOOP takes no arguments.\r\n"));
    transcript_case(
        "login-ok", true, false, S("a LOGIN alice secret\r\nb CAPABILITY\r\n"),
        S("a" LOGGED_IN "* CAPABILITY " CAPS_AUTH "\r\nb OK Capability completed.\r\n"));
    transcript_case("login-quoted", true, false, S("a LOGIN \"alice\" \"sec\\\\ret\"\r\n"),
                    S("a NO [AUTHENTICATIONFAILED] Authentication failed.\r\n"));
    transcript_case("login-fail", true, false, S("a LOGIN alice wrong\r\nb LOGIN alice secret\r\n"),
                    S("a NO [AUTHENTICATIONFAILED] Authentication failed.\r\nb" LOGGED_IN));
    transcript_case("login-args", true, false, S("a LOGIN alice\r\nb LOGIN (x) y\r\n"),
                    S("a BAD LOGIN needs a user name and a password.\r\n"
                      "b BAD Invalid user name or password argument.\r\n"));
    transcript_case("login-insecure", false, false, S("a LOGIN alice secret\r\n"),
                    S("a NO [PRIVACYREQUIRED] Plaintext authentication disallowed on "
                      "non-secure connections.\r\n"));
    transcript_case("login-secure", false, true, S("a LOGIN alice secret\r\n"), S("a" LOGGED_IN));
    transcript_case("login-literals", true, false, S("a LOGIN {5}\r\nalice {6}\r\nsecret\r\n"),
                    S("+ OK\r\n+ OK\r\na" LOGGED_IN));
    transcript_case("login-literal-plus", true, false,
                    S("a LOGIN {5+}\r\nalice {6+}\r\nsecret\r\n"), S("a" LOGGED_IN));
    transcript_case("login-twice", true, false,
                    S("a LOGIN alice secret\r\nb LOGIN alice secret\r\n"),
                    S("a" LOGGED_IN "b BAD Already authenticated.\r\n"));
    /* "\0alice\0secret" */
    transcript_case("auth-ir", true, false, S("a AUTHENTICATE PLAIN AGFsaWNlAHNlY3JldA==\r\n"),
                    S("a" LOGGED_IN));
    /* "alice\0alice\0secret": authzid equal to authcid */
    transcript_case("auth-ir-authzid", true, false,
                    S("a AUTHENTICATE plain YWxpY2UAYWxpY2UAc2VjcmV0\r\n"), S("a" LOGGED_IN));
    /* "bob\0alice\0secret": no master users */
    transcript_case("auth-ir-other-authzid", true, false,
                    S("a AUTHENTICATE PLAIN Ym9iAGFsaWNlAHNlY3JldA==\r\n"),
                    S("a BAD Invalid SASL PLAIN response.\r\n"));
    transcript_case("auth-continuation", true, false,
                    S("a AUTHENTICATE PLAIN\r\nAGFsaWNlAHNlY3JldA==\r\nb NOOP\r\n"),
                    S("+ \r\na" LOGGED_IN "b OK NOOP completed.\r\n"));
    transcript_case("auth-continuation-wrong", true, false,
                    S("a AUTHENTICATE PLAIN\r\nAGFsaWNlAHdyb25n\r\n"),
                    S("+ \r\na NO [AUTHENTICATIONFAILED] Authentication failed.\r\n"));
    transcript_case("auth-cancel", true, false, S("a AUTHENTICATE PLAIN\r\n*\r\nb NOOP\r\n"),
                    S("+ \r\na BAD Authentication cancelled.\r\nb OK NOOP completed.\r\n"));
    transcript_case("auth-bad-base64", true, false,
                    S("a AUTHENTICATE PLAIN\r\n!!!!\r\nb AUTHENTICATE PLAIN AGFsaWNl\r\n"
                      "c AUTHENTICATE PLAIN =\r\nd AUTHENTICATE PLAIN AGFsaWNlAHNlY3JldA=x\r\n"),
                    S("+ \r\na BAD Invalid SASL PLAIN response.\r\n"
                      "b BAD Invalid SASL PLAIN response.\r\n"
                      "c BAD Invalid SASL PLAIN response.\r\n"
                      "d BAD Invalid SASL PLAIN response.\r\n"));
    transcript_case("auth-literal-in-response", true, false,
                    S("a AUTHENTICATE PLAIN\r\n{5}\r\nb NOOP\r\n"),
                    S("+ \r\na BAD Invalid SASL PLAIN response.\r\nb OK NOOP completed.\r\n"));
    transcript_case("auth-empty-responses", true, false,
                    S("a AUTHENTICATE PLAIN\r\n\r\nb AUTHENTICATE PLAIN\r\n=\r\nc NOOP\r\n"),
                    S("+ \r\na BAD Invalid SASL PLAIN response.\r\n"
                      "+ \r\nb BAD Invalid SASL PLAIN response.\r\nc OK NOOP completed.\r\n"));
    transcript_case("login-literal8", true, false, S("a LOGIN ~{5}\r\nalice secret\r\n"),
                    S("+ OK\r\na BAD Invalid user name or password argument.\r\n"));
    transcript_case("auth-mech", true, false, S("a AUTHENTICATE CRAM-MD5\r\nb AUTHENTICATE\r\n"),
                    S("a NO Unsupported authentication mechanism.\r\n"
                      "b BAD AUTHENTICATE needs a mechanism.\r\n"));
    transcript_case("auth-insecure", false, false,
                    S("a AUTHENTICATE PLAIN AGFsaWNlAHNlY3JldA==\r\n"),
                    S("a NO [PRIVACYREQUIRED] Plaintext authentication disallowed on "
                      "non-secure connections.\r\n"));
    transcript_case(
        "id", true, false,
        S("a ID (\"name\" \"mutt\" \"version\" {3}\r\n2.2)\r\nb ID NIL\r\nc ID\r\n"),
        S("+ OK\r\n* ID (\"name\" \"toaster\" \"version\" \"0.1\")\r\na OK ID completed.\r\n"
          "* ID (\"name\" \"toaster\" \"version\" \"0.1\")\r\nb OK ID completed.\r\n"
          "c BAD ID takes one argument.\r\n"));
    transcript_case("enable-before-auth", true, false, S("a ENABLE IMAP4rev2\r\n"),
                    S("a BAD ENABLE needs authentication.\r\n"));
    transcript_case("enable-after-auth", true, false,
                    S("a LOGIN alice secret\r\nb ENABLE IMAP4rev2 X-UNKNOWN utf8=accept\r\n"
                      "c ENABLE IMAP4rev2\r\n"),
                    S("a" LOGGED_IN "* ENABLED IMAP4rev2 UTF8=ACCEPT\r\nb OK Enabled.\r\n"
                      "* ENABLED\r\nc OK Enabled.\r\n"));
    transcript_case("wrong-state-pre", true, false,
                    S("a SELECT INBOX\r\nb FETCH 1 FLAGS\r\nc FOO\r\n"),
                    S("a BAD Not authenticated.\r\nb BAD Not authenticated.\r\n"
                      "c BAD Unknown command.\r\n"));
    transcript_case("wrong-state-auth", true, false,
                    S("a LOGIN alice secret\r\nb FETCH 1 FLAGS\r\nc LIST \"\" *\r\n"
                      "d SELECT INBOX\r\ne UID FETCH 1 FLAGS\r\nf NOOP\r\ng CLOSE\r\n"
                      "h STORE 1 +FLAGS \\Seen\r\ni NOOP\r\nj EXAMINE x\r\nk EXPUNGE\r\n"
                      "l UNSELECT\r\nm CHECK\r\n"),
                    S("a" LOGGED_IN "b BAD No mailbox selected.\r\nc OK owner LIST\r\n"
                      "d OK owner SELECT\r\ne OK owner UID FETCH\r\nf OK owner NOOP\r\n"
                      "g OK owner CLOSE\r\nh BAD No mailbox selected.\r\ni OK NOOP completed.\r\n"
                      "j OK owner EXAMINE\r\nk OK owner EXPUNGE\r\nl OK owner UNSELECT\r\n"
                      "m BAD No mailbox selected.\r\n"));
    transcript_case("unsupported", true, false,
                    S("a LOGIN alice secret\r\nb GETQUOTAROOT INBOX\r\nc COMPRESS DEFLATE\r\n"),
                    S("a" LOGGED_IN "b BAD Unsupported command.\r\nc BAD Unsupported command.\r\n"));
    transcript_case("namespace", true, false,
                    S("a NAMESPACE\r\nb LOGIN alice secret\r\nc NAMESPACE\r\nd NAMESPACE x\r\n"),
                    S("a BAD Not authenticated.\r\nb" LOGGED_IN
                      "* NAMESPACE ((\"\" \".\")) NIL NIL\r\nc OK Namespace completed.\r\n"
                      "d BAD NAMESPACE takes no arguments.\r\n"));
    transcript_case("idle", true, false,
                    S("a LOGIN alice secret\r\nb IDLE\r\ndone\r\nc IDLE\r\nc NOOP\r\n"
                      "d NOOP\r\n"),
                    S("a" LOGGED_IN "+ idling\r\nb OK owner IDLE done\r\n+ idling\r\n"
                      "c BAD Expected DONE.\r\nd OK NOOP completed.\r\n"));
    transcript_case("enable-condstore", true, false,
                    S("a LOGIN alice secret\r\nb ENABLE QRESYNC\r\nc ENABLE CONDSTORE\r\n"),
                    S("a" LOGGED_IN "* ENABLED CONDSTORE QRESYNC\r\nb OK Enabled.\r\n"
                      "* ENABLED\r\nc OK Enabled.\r\n"));
    transcript_case("bad-tag", true, false, S("\r\n+ NOOP\r\n"),
                    S("* BAD Invalid tag.\r\n* BAD Invalid tag.\r\n"));
    transcript_case("toobig", true, false, S("a LOGIN {99999999}\r\nb NOOP\r\n"),
                    S("a NO [TOOBIG] Literal too big.\r\nb OK NOOP completed.\r\n"));
    transcript_case("append-pre", true, false, S("a APPEND INBOX {10}\r\nb NOOP\r\n"),
                    S("a BAD Not authenticated.\r\nb OK NOOP completed.\r\n"));
    transcript_case("append-auth", true, false,
                    S("a LOGIN alice secret\r\nb APPEND INBOX {10}\r\n0123456789\r\n"
                      "c NOOP\r\n"),
                    S("a" LOGGED_IN "+ OK\r\nb OK owner APPEND\r\nc OK NOOP completed.\r\n"));
    transcript_case("tag-63", true, false,
                    S("ttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttt NOOP\r\n"),
                    S("ttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttt"
                      " OK NOOP completed.\r\n"));
    transcript_case("tag-64", true, false,
                    S("tttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttt NOOP\r\n"),
                    S("* BAD Invalid tag.\r\n"));
    transcript_case("bare-cr", true, false, S("a NO\rOP\r\nb NOOP\r\n"),
                    S("a BAD Malformed command line.\r\nb OK NOOP completed.\r\n"));
}

/* AUTH is a request: nothing after it is processed until auth_done. */
static void
test_pipelined_auth(void)
{
    config_setup(true);
    struct owner o;
    owner_init(&o);
    struct imap_session s;
    imap_session_init(&s, &config, &callbacks, &o, false);
    drain(&o, &s);
    o.transcript_len = 0;
    static const char in[] = "a LOGIN alice secret\r\nb NOOP\r\nc CAPABILITY\r\n";
    size_t used = imap_session_feed(&s, in, sizeof(in) - 1);
    CHECK(used == strlen("a LOGIN alice secret\r\n"));
    CHECK(!imap_session_wants_input(&s));
    CHECK(imap_session_output(&s).len == 0);
    CHECK(!o.is_lent); /* no scratch held while waiting */
    CHECK(imap_session_feed(&s, in + used, sizeof(in) - 1 - used) == 0);
    CHECK(imap_session_take_request(&s) == IMAP_REQUEST_AUTH);
    CHECK(imap_session_take_request(&s) == IMAP_REQUEST_NONE); /* in flight */
    CHECK_STR(imap_session_auth_user(&s), "alice");
    CHECK_STR(imap_session_auth_password(&s), "secret");
    imap_session_auth_done(&s, true, "alice@example.test");
    CHECK(s.pass[0] == '\0');
    CHECK(imap_session_state(&s) == IMAP_STATE_AUTHENTICATED);
    CHECK_STR(imap_session_user(&s), "alice@example.test");
    CHECK(imap_session_wants_input(&s));
    used += imap_session_feed(&s, in + used, sizeof(in) - 1 - used);
    CHECK(used == sizeof(in) - 1);
    drain(&o, &s);
    CHECK_OUT(o.transcript, o.transcript_len,
              S("a" LOGGED_IN "b OK NOOP completed.\r\n* CAPABILITY " CAPS_AUTH
                "\r\nc OK Capability completed.\r\n"));
    imap_session_finish(&s);
}

static void
test_errors_timeout_shutdown(void)
{
    config_setup(true);
    struct owner o;
    owner_init(&o);
    struct imap_session s;
    imap_session_init(&s, &config, &callbacks, &o, false);
    drain(&o, &s);
    o.transcript_len = 0;
    char in[64 * 32];
    size_t len = 0;
    for (unsigned i = 0; i < 25; i++) {
        len += (size_t)snprintf(in + len, sizeof(in) - len, "t%u FOO\r\n", i);
    }
    drive(&o, &s, in, len, 1u << 20, true);
    CHECK(imap_session_is_closing(&s));
    CHECK(!imap_session_wants_input(&s));
    static const char tail[] = "t19 BAD Unknown command.\r\n* BYE Too many errors.\r\n";
    CHECK(o.transcript_len >= sizeof(tail) - 1);
    CHECK_OUT(o.transcript + o.transcript_len - (sizeof(tail) - 1), sizeof(tail) - 1, S(tail));
    CHECK(!o.is_lent);
    imap_session_finish(&s);

    owner_init(&o);
    imap_session_init(&s, &config, &callbacks, &o, false);
    drain(&o, &s);
    o.transcript_len = 0;
    imap_session_timeout(&s);
    drain(&o, &s);
    CHECK_OUT(o.transcript, o.transcript_len, S("* BYE Autologout; idle for too long\r\n"));
    CHECK(imap_session_is_closing(&s));
    imap_session_finish(&s);

    owner_init(&o);
    imap_session_init(&s, &config, &callbacks, &o, false);
    drain(&o, &s);
    o.transcript_len = 0;
    /* Shutdown while AUTH is pending: the late completion is ignored. */
    CHECK(imap_session_feed(&s, S("a LOGIN alice secret\r\n")) == 22);
    CHECK(imap_session_take_request(&s) == IMAP_REQUEST_AUTH);
    imap_session_shutdown(&s);
    imap_session_auth_done(&s, true, NULL);
    drain(&o, &s);
    CHECK_OUT(o.transcript, o.transcript_len, S("* BYE Server shutting down\r\n"));
    CHECK(imap_session_is_closing(&s));
    imap_session_finish(&s);
}

/* The scratch is held only mid-command; a starved owner gets backpressure. */
static void
test_scratch(void)
{
    config_setup(true);
    struct owner o;
    owner_init(&o);
    struct imap_session s;
    imap_session_init(&s, &config, &callbacks, &o, false);
    drain(&o, &s);
    o.transcript_len = 0;
    CHECK(imap_session_feed(&s, S("a NO")) == 4);
    CHECK(o.is_lent);
    CHECK(imap_session_is_mid_command(&s));
    CHECK(imap_session_feed(&s, S("OP\r\n")) == 4);
    CHECK(!o.is_lent);
    CHECK(!imap_session_is_mid_command(&s));
    o.is_starved = true;
    CHECK(imap_session_feed(&s, S("b NOOP\r\n")) == 0);
    o.is_starved = false;
    CHECK(imap_session_feed(&s, S("b NOOP\r\n")) == 8);
    drain(&o, &s);
    CHECK_OUT(o.transcript, o.transcript_len,
              S("a OK NOOP completed.\r\nb OK NOOP completed.\r\n"));
    imap_session_finish(&s);
    CHECK(!o.is_lent);
}

/* Output above the high-water mark stops input until drained. */
static void
test_output_backpressure(void)
{
    config_setup(true);
    struct owner o;
    owner_init(&o);
    struct imap_session s;
    imap_session_init(&s, &config, &callbacks, &o, false);
    char in[4096];
    size_t len = 0;
    for (unsigned i = 0; i < 100; i++) {
        len += (size_t)snprintf(in + len, sizeof(in) - len, "c%u CAPABILITY\r\n", i);
    }
    size_t used = imap_session_feed(&s, in, len);
    CHECK(used < len);
    CHECK(!imap_session_wants_input(&s));
    CHECK(imap_session_output(&s).len <= IMAP_SESSION_OUT_BYTES);
    size_t total = drive(&o, &s, in + used, len - used, 1u << 20, true);
    CHECK(used + total == len);
    imap_session_finish(&s);
}

/* A command line over IMAP_LINE_BYTES_MAX_DEFAULT: BAD, then go on. */
static void
test_long_line(void)
{
    static char in[IMAP_LINE_BYTES_MAX_DEFAULT + 64];
    for (size_t extra = 0; extra < 3; extra++) {
        size_t text = IMAP_LINE_BYTES_MAX_DEFAULT - 1 + extra; /* max - 1, max, max + 1 */
        memcpy(in, "a NOOP ", 7);
        memset(in + 7, 'x', text - 7);
        memcpy(in + text, "\r\nb NOOP\r\n", 10);
        config_setup(true);
        struct owner o;
        owner_init(&o);
        struct imap_session s;
        imap_session_init(&s, &config, &callbacks, &o, false);
        drain(&o, &s);
        o.transcript_len = 0;
        drive(&o, &s, in, text + 10, 1u << 20, true);
        if (extra < 2) {
            CHECK_OUT(o.transcript, o.transcript_len,
                      S("a BAD NOOP takes no arguments.\r\nb OK NOOP completed.\r\n"));
        } else {
            CHECK_OUT(o.transcript, o.transcript_len,
                      S("a BAD Command line too long.\r\nb OK NOOP completed.\r\n"));
        }
        imap_session_finish(&s);
    }
}

int
main(void)
{
    test_size();
    test_append_stream();
    test_greeting();
    test_starttls();
    test_transcripts();
    test_pipelined_auth();
    test_errors_timeout_shutdown();
    test_scratch();
    test_output_backpressure();
    test_long_line();
    UNIT_DONE();
}
