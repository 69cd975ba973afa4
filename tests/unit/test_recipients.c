/*
 * tests/unit/test_recipients.c - users and aliases tables, and recipient
 * resolution (store/recipients.c).
 *
 * Each test writes users_file/aliases_file contents to temporary files under
 * /tmp, loads a table and checks resolutions from a table of cases (status,
 * mailboxes and remotes in result order). Also covers load errors with their
 * "path:line" messages, the limits (line length, alias depth and expansion
 * at max - 1, max, max + 1), and Maildir path validation.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/limits.h"
#include "store/recipients.h"
#include "tests/unit/unit.h"

#define TEMP_FILES_MAX 64
#define JOINED_BYTES 65536

static char temp_paths[TEMP_FILES_MAX][64];
static size_t temp_count;

/* Writes len bytes to a new temporary file and returns its path (removed
 * at exit by remove_temp_files()). */
static const char *
write_temp_bytes(const char *content, size_t len)
{
    if (temp_count == TEMP_FILES_MAX) {
        fprintf(stderr, "too many temporary files\n");
        exit(2);
    }
    char *path = temp_paths[temp_count];
    snprintf(path, sizeof temp_paths[0], "/tmp/test_recipients_XXXXXX");
    int fd = mkstemp(path);
    if (fd < 0) {
        perror("mkstemp");
        exit(2);
    }
    size_t done = 0;
    while (done < len) {
        ssize_t n = write(fd, content + done, len - done);
        if (n <= 0) {
            perror("write");
            exit(2);
        }
        done += (size_t)n;
    }
    if (close(fd) != 0) {
        perror("close");
        exit(2);
    }
    temp_count++;
    return path;
}

static const char *
write_temp(const char *content)
{
    return write_temp_bytes(content, strlen(content));
}

static void
remove_temp_files(void)
{
    for (size_t i = 0; i < temp_count; i++) {
        (void)unlink(temp_paths[i]);
    }
    temp_count = 0;
}

static struct recipients_options
default_options(const char *users_path, const char *aliases_path)
{
    return (struct recipients_options){
        .users_path = users_path,
        .aliases_path = aliases_path,
        .local_domains = "extra.test, Listed.Test.",
        .recipient_delimiter = "+",
        .unknown_recipient_mailbox = "",
        .postmaster_address = "",
        .myhostname = "MX.Example.NET.",
    };
}

/* Loads and fails the whole program if that does not work: every later
 * check would be meaningless. */
static struct recipients *
load_or_die(const struct recipients_options *options)
{
    struct recipients *table = NULL;
    char err[256];
    int rc = recipients_load(options, &table, err, sizeof err);
    if (rc != 0 || table == NULL) {
        fprintf(stderr, "recipients_load: %d: %s\n", rc, err);
        exit(2);
    }
    CHECK_STR(err, "");
    return table;
}

/* Result arrays large enough that only ALIAS_EXPANSION_MAX limits. */
static const char *mailbox_slots[ALIAS_EXPANSION_MAX + 8];
static const char *remote_slots[ALIAS_EXPANSION_MAX + 8];

static struct recipients_result
fresh_result(void)
{
    return (struct recipients_result){
        .mailboxes = mailbox_slots,
        .mailbox_capacity = ALIAS_EXPANSION_MAX + 8,
        .remotes = remote_slots,
        .remote_capacity = ALIAS_EXPANSION_MAX + 8,
    };
}

static void
join(char *out, size_t out_bytes, const char **items, size_t count, size_t capacity)
{
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; i < count && i < capacity; i++) {
        int n = snprintf(out + used, out_bytes - used, "%s%s", i > 0 ? " " : "", items[i]);
        if (n < 0 || (size_t)n >= out_bytes - used) {
            return;
        }
        used += (size_t)n;
    }
}

struct resolve_case {
    const char            *address;
    enum recipients_status status;
    const char            *mailboxes; /* space separated, in result order */
    const char            *remotes;
};

static void
check_cases(const struct recipients *table, const struct resolve_case *cases, size_t count)
{
    static char joined[JOINED_BYTES];
    for (size_t i = 0; i < count; i++) {
        const struct resolve_case *c = &cases[i];
        struct recipients_result result = fresh_result();
        unsigned long failed_before = unit_checks_failed;
        enum recipients_status status =
            recipients_resolve(table, span_make(c->address, strlen(c->address)), &result);
        CHECK(status == c->status);
        CHECK(result.status == status);
        join(joined, sizeof joined, result.mailboxes, result.mailbox_count,
             result.mailbox_capacity);
        CHECK_STR(joined, c->mailboxes);
        join(joined, sizeof joined, result.remotes, result.remote_count, result.remote_capacity);
        CHECK_STR(joined, c->remotes);
        if (unit_checks_failed != failed_before) {
            fprintf(stderr, "  ^ case %zu: address \"%s\" (status %d, want %d)\n", i, c->address,
                    (int)status, (int)c->status);
        }
    }
}

#define CHECK_CASES(table, cases) check_cases((table), (cases), sizeof(cases) / sizeof((cases)[0]))

static const char main_users[] =
    "# users of the main fixture\n"
    "\n"
    "alice@example.com:{PLAIN}a:1000:1000::/home/alice::\n"
    "Bob@Example.COM:{SHA512-CRYPT}$6$x\n"
    "   \n"
    "carol@example.com\n"
    "a+b@example.com:{PLAIN}ab\n"
    "postmaster@other.org:{PLAIN}pm\n"
    "dave@other.org:{PLAIN}d\n"
    "eve@example.com:{PLAIN}e\n"
    "alice@example.com:{PLAIN}second\n"
    "\xc3\xbcn\xc3\xaf@example.com:{PLAIN}u\n"
    "crlf@example.com:{PLAIN}z\r\n";

static const char main_aliases[] =
    "# aliases of the main fixture\n"
    "info@example.com: alice@example.com, bob@example.com\n"
    "sales@example.com  carol@example.com,alice@example.com bob@example.com\n"
    "team@example.com : info@example.com, sales@example.com,  dave@other.org\n"
    "ext@example.com: friend@far.away, friend@FAR.Away.\n"
    "mixed@example.com: alice@example.com friend@far.away\n"
    "alice+news@example.com: carol@example.com\n"
    "Eve@Example.com: eve@example.com, dave@other.org\n"
    "loop1@example.com: loop2@example.com\n"
    "loop2@example.com: loop1@example.com\n"
    "loopy1@example.com: loopy2@example.com, alice@example.com\n"
    "loopy2@example.com: loopy1@example.com\n"
    "ghost@example.com: nobody@example.com\n"
    "relay@example.com: a%b@example.com, carol@example.com\n"
    "chain@example.com: info@example.com\n"
    "away@example.com: ext@example.com\n"
    "\t\n"
    "@catch.test: dave@other.org\n"
    "fwd@catch.test: missing@catch.test\n"
    "@loop.test: x@loop.test\n"
    "postmaster@example.com: alice@example.com\n"
    "postmaster@self.test: postmaster@self.test, carol@example.com\n"
    "pmfwd@example.com: postmaster@other.org\n"
    "lit@example.com: someone@[192.0.2.1]\n";

static void
test_main_fixture(void)
{
    struct recipients_options options =
        default_options(write_temp(main_users), write_temp(main_aliases));
    struct recipients *table = load_or_die(&options);

    CHECK(recipients_user_count(table) == 9);
    CHECK(recipients_alias_count(table) == 22);
    /* example.com, other.org, catch.test, loop.test, self.test, extra.test,
     * listed.test, and always myhostname and localhost (Postfix's default
     * mydestination) */
    CHECK(recipients_domain_count(table) == 9);

    static const struct {
        const char *domain;
        bool        is_local;
    } domains[] = {
        { "example.com", true },   { "EXAMPLE.COM.", true },  { "catch.test", true },
        { "extra.test", true },    { "listed.test", true },   { "self.test", true },
        { "far.away", false },     { "mx.example.net", true },  { "", false },
        { "example.com..", false }, { ".", false },            { "[192.0.2.1]", false },
    };
    for (size_t i = 0; i < sizeof domains / sizeof domains[0]; i++) {
        struct span d = span_make(domains[i].domain, strlen(domains[i].domain));
        CHECK(recipients_domain_is_local(table, d) == domains[i].is_local);
    }

    static const struct resolve_case cases[] = {
        /* Users, any case; the first users_file entry wins. */
        { "alice@example.com", RECIPIENTS_OK, "alice@example.com", "" },
        { "ALICE@EXAMPLE.COM", RECIPIENTS_OK, "alice@example.com", "" },
        { "alice@example.com.", RECIPIENTS_OK, "alice@example.com", "" },
        { "bob@example.com", RECIPIENTS_OK, "bob@example.com", "" },
        { "dave@Other.Org", RECIPIENTS_OK, "dave@other.org", "" },
        { "crlf@example.com", RECIPIENTS_OK, "crlf@example.com", "" },
        /* UTF-8 local parts: bytewise after ASCII lowercasing. */
        { "\xc3\xbcn\xc3\xaf@EXAMPLE.com", RECIPIENTS_OK, "\xc3\xbcn\xc3\xaf@example.com", "" },
        { "\xc3\x9cN\xc3\x8f@example.com", RECIPIENTS_UNKNOWN_USER, "", "" },
        /* Quoted local parts are unquoted before lookup. */
        { "\"alice\"@example.com", RECIPIENTS_OK, "alice@example.com", "" },
        { "\"al\\ice\"@example.com", RECIPIENTS_OK, "alice@example.com", "" },
        { "\"john doe\"@catch.test", RECIPIENTS_OK, "dave@other.org", "" },
        { "\"john doe\"@example.com", RECIPIENTS_UNKNOWN_USER, "", "" },
        /* Aliases: both separators, nesting, duplicates once. */
        { "info@example.com", RECIPIENTS_OK, "alice@example.com bob@example.com", "" },
        { "sales@example.com", RECIPIENTS_OK,
          "carol@example.com alice@example.com bob@example.com", "" },
        { "team@example.com", RECIPIENTS_OK,
          "alice@example.com bob@example.com carol@example.com dave@other.org", "" },
        { "chain@example.com", RECIPIENTS_OK, "alice@example.com bob@example.com", "" },
        /* Foreign targets are remotes, deduplicated. */
        { "ext@example.com", RECIPIENTS_OK, "", "friend@far.away" },
        { "away@example.com", RECIPIENTS_OK, "", "friend@far.away" },
        { "mixed@example.com", RECIPIENTS_OK, "alice@example.com", "friend@far.away" },
        { "lit@example.com", RECIPIENTS_OK, "", "someone@[192.0.2.1]" },
        /* An alias that names its own user. */
        { "eve@example.com", RECIPIENTS_OK, "eve@example.com dave@other.org", "" },
        { "eve+x@example.com", RECIPIENTS_OK, "eve@example.com dave@other.org", "" },
        /* Cycles: fine when they reach a mailbox, a loop when not. */
        { "loop1@example.com", RECIPIENTS_ALIAS_LOOP, "", "" },
        { "loop2@example.com", RECIPIENTS_ALIAS_LOOP, "", "" },
        { "loopy1@example.com", RECIPIENTS_OK, "alice@example.com", "" },
        { "loopy2@example.com", RECIPIENTS_OK, "alice@example.com", "" },
        { "x@loop.test", RECIPIENTS_ALIAS_LOOP, "", "" },
        /* A target nobody is at is skipped. */
        { "ghost@example.com", RECIPIENTS_UNKNOWN_USER, "", "" },
        { "relay@example.com", RECIPIENTS_OK, "carol@example.com", "" },
        /* Subaddresses: alias with it, alias without, user, catch-all. */
        { "alice+news@example.com", RECIPIENTS_OK, "carol@example.com", "" },
        { "Alice+News@example.com", RECIPIENTS_OK, "carol@example.com", "" },
        { "alice+other@example.com", RECIPIENTS_OK, "alice@example.com", "" },
        { "info+x@example.com", RECIPIENTS_OK, "alice@example.com bob@example.com", "" },
        { "a+b@example.com", RECIPIENTS_OK, "a+b@example.com", "" },
        { "carol+@example.com", RECIPIENTS_OK, "carol@example.com", "" },
        { "+x@example.com", RECIPIENTS_UNKNOWN_USER, "", "" },
        { "nobody+x@catch.test", RECIPIENTS_OK, "dave@other.org", "" },
        { "alice-x@example.com", RECIPIENTS_UNKNOWN_USER, "", "" },
        /* Catch-all, directly and for an alias target. */
        { "anyone@catch.test", RECIPIENTS_OK, "dave@other.org", "" },
        { "fwd@catch.test", RECIPIENTS_OK, "dave@other.org", "" },
        { "nobody@example.com", RECIPIENTS_UNKNOWN_USER, "", "" },
        { "nobody@extra.test", RECIPIENTS_UNKNOWN_USER, "", "" },
        /* Postmaster. */
        { "postmaster", RECIPIENTS_OK, "postmaster@mx.example.net", "" },
        { "PostMaster", RECIPIENTS_OK, "postmaster@mx.example.net", "" },
        { "postmaster@example.com", RECIPIENTS_OK, "alice@example.com", "" },
        { "POSTMASTER@EXAMPLE.COM.", RECIPIENTS_OK, "alice@example.com", "" },
        { "postmaster@other.org", RECIPIENTS_OK, "postmaster@other.org", "" },
        { "postmaster@extra.test", RECIPIENTS_OK, "postmaster@extra.test", "" },
        { "postmaster@catch.test", RECIPIENTS_OK, "postmaster@catch.test", "" },
        { "postmaster@self.test", RECIPIENTS_OK, "postmaster@self.test carol@example.com", "" },
        { "pmfwd@example.com", RECIPIENTS_OK, "postmaster@other.org", "" },
        { "postmaster@far.away", RECIPIENTS_NOT_LOCAL, "", "" },
        { "postmaster@mx.example.net", RECIPIENTS_OK, "postmaster@mx.example.net", "" },
        { "postmaster@localhost", RECIPIENTS_OK, "postmaster@localhost", "" },
        { "nobody@mx.example.net", RECIPIENTS_UNKNOWN_USER, "", "" },
        { "postmaster+x@example.com", RECIPIENTS_OK, "alice@example.com", "" },
        /* Relay forms in local domains; foreign ones are just foreign. */
        { "a%b@example.com", RECIPIENTS_RELAY_FORM, "", "" },
        { "alice%far.away@example.com", RECIPIENTS_RELAY_FORM, "", "" },
        { "far.away!alice@example.com", RECIPIENTS_RELAY_FORM, "", "" },
        { "alice@far.away@example.com", RECIPIENTS_RELAY_FORM, "", "" },
        { "\"a%b\"@example.com", RECIPIENTS_RELAY_FORM, "", "" },
        { "\"a@b\"@catch.test", RECIPIENTS_RELAY_FORM, "", "" },
        { "a%b@extra.test", RECIPIENTS_RELAY_FORM, "", "" },
        { "@relay.far:alice@example.com", RECIPIENTS_RELAY_FORM, "", "" },
        { "@a,@b:alice@example.com", RECIPIENTS_RELAY_FORM, "", "" },
        { "@a:postmaster@example.com", RECIPIENTS_RELAY_FORM, "", "" },
        { "@a,@b:alice@far.away", RECIPIENTS_NOT_LOCAL, "", "" },
        { "a%b@far.away", RECIPIENTS_NOT_LOCAL, "", "" },
        /* Foreign domains and address literals. */
        { "alice@far.away", RECIPIENTS_NOT_LOCAL, "", "" },
        { "alice@example.com.evil", RECIPIENTS_NOT_LOCAL, "", "" },
        { "user@[127.0.0.1]", RECIPIENTS_NOT_LOCAL, "", "" },
        { "user@[IPv6:::1]", RECIPIENTS_NOT_LOCAL, "", "" },
        { "postmaster@[127.0.0.1]", RECIPIENTS_NOT_LOCAL, "", "" },
        { "a@../example.com", RECIPIENTS_NOT_LOCAL, "", "" },
        /* Syntax. */
        { "", RECIPIENTS_SYNTAX, "", "" },
        { "alice", RECIPIENTS_SYNTAX, "", "" },
        { "postmasters", RECIPIENTS_SYNTAX, "", "" },
        { "@example.com", RECIPIENTS_SYNTAX, "", "" },
        { "@catch.test", RECIPIENTS_SYNTAX, "", "" },
        { "alice@", RECIPIENTS_SYNTAX, "", "" },
        { "alice@.", RECIPIENTS_SYNTAX, "", "" },
        { "al ice@example.com", RECIPIENTS_SYNTAX, "", "" },
        { "alice@exa mple.com", RECIPIENTS_SYNTAX, "", "" },
        { "alice@example.com\x01", RECIPIENTS_SYNTAX, "", "" },
        { "ali\tce@example.com", RECIPIENTS_SYNTAX, "", "" },
        { "\"\"@example.com", RECIPIENTS_SYNTAX, "", "" },
        { "\"alice@example.com", RECIPIENTS_SYNTAX, "", "" },
        { "\"alice\"x@example.com", RECIPIENTS_SYNTAX, "", "" },
        { "\"al\x01ice\"@example.com", RECIPIENTS_SYNTAX, "", "" },
        { "\"alice\\", RECIPIENTS_SYNTAX, "", "" },
        { "a\"b@example.com", RECIPIENTS_SYNTAX, "", "" },
        { "alice@[127.0.0.1", RECIPIENTS_SYNTAX, "", "" },
        { "@a,@b", RECIPIENTS_SYNTAX, "", "" },
        { "@a:", RECIPIENTS_SYNTAX, "", "" },
        { "@a:postmaster", RECIPIENTS_SYNTAX, "", "" },
        { "@a b:alice@example.com", RECIPIENTS_SYNTAX, "", "" },
    };
    CHECK_CASES(table, cases);

    /* A NUL byte inside the span is not an address terminator. */
    static const char with_nul[] = "alice\0x@example.com";
    struct recipients_result result = fresh_result();
    CHECK(recipients_resolve(table, span_make(with_nul, sizeof with_nul - 1), &result) ==
          RECIPIENTS_SYNTAX);
    CHECK(!recipients_domain_is_local(table, span_make("example.com\0x", 13)));

    /* Longest address accepted, one more byte rejected. */
    char long_address[SMTP_ADDRESS_BYTES_MAX + 2];
    memset(long_address, 'x', sizeof long_address);
    memcpy(long_address + SMTP_ADDRESS_BYTES_MAX - strlen("@catch.test"), "@catch.test",
           strlen("@catch.test"));
    result = fresh_result();
    CHECK(recipients_resolve(table, span_make(long_address, SMTP_ADDRESS_BYTES_MAX), &result) ==
          RECIPIENTS_OK);
    memset(long_address, 'x', sizeof long_address);
    memcpy(long_address + SMTP_ADDRESS_BYTES_MAX + 1 - strlen("@catch.test"), "@catch.test",
           strlen("@catch.test"));
    result = fresh_result();
    CHECK(recipients_resolve(table, span_make(long_address, SMTP_ADDRESS_BYTES_MAX + 1),
                             &result) == RECIPIENTS_SYNTAX);

    /* Mailbox names are the table's canonical pointers: the same user from
     * two addresses is the same pointer, and it outlives the input. */
    result = fresh_result();
    CHECK(recipients_resolve(table, SPAN_LITERAL("ALICE@example.com"), &result) ==
          RECIPIENTS_OK);
    const char *alice = result.mailboxes[0];
    result = fresh_result();
    CHECK(recipients_resolve(table, SPAN_LITERAL("postmaster@example.com"), &result) ==
          RECIPIENTS_OK);
    CHECK(result.mailboxes[0] == alice);

    /* Password hashes: first entry wins, "" when absent, NULL for others. */
    const char *hash = recipients_password_hash(table, SPAN_LITERAL("ALICE@example.com"));
    CHECK(hash != NULL && strcmp(hash, "{PLAIN}a") == 0);
    hash = recipients_password_hash(table, SPAN_LITERAL("bob@example.com"));
    CHECK(hash != NULL && strcmp(hash, "{SHA512-CRYPT}$6$x") == 0);
    hash = recipients_password_hash(table, SPAN_LITERAL("carol@example.com"));
    CHECK(hash != NULL && strcmp(hash, "") == 0);
    hash = recipients_password_hash(table, SPAN_LITERAL("crlf@example.com"));
    CHECK(hash != NULL && strcmp(hash, "{PLAIN}z") == 0);
    CHECK(recipients_password_hash(table, SPAN_LITERAL("info@example.com")) == NULL);
    CHECK(recipients_password_hash(table, SPAN_LITERAL("")) == NULL);

    recipients_destroy(&table);
    CHECK(table == NULL);
    recipients_destroy(&table);
    CHECK(table == NULL);
}

/* The caller's capacity bounds the result as much as ALIAS_EXPANSION_MAX. */
static void
test_capacity(void)
{
    struct recipients_options options =
        default_options(write_temp(main_users), write_temp(main_aliases));
    struct recipients *table = load_or_die(&options);

    const char *mailboxes[2];
    const char *remotes[1];
    struct recipients_result result = {
        .mailboxes = mailboxes,
        .mailbox_capacity = 2,
        .remotes = remotes,
        .remote_capacity = 1,
    };
    CHECK(recipients_resolve(table, SPAN_LITERAL("info@example.com"), &result) ==
          RECIPIENTS_OK);
    CHECK(result.mailbox_count == 2);
    CHECK(recipients_resolve(table, SPAN_LITERAL("sales@example.com"), &result) ==
          RECIPIENTS_TOO_MANY);
    CHECK(result.status == RECIPIENTS_TOO_MANY);
    CHECK(result.mailbox_count == 3);
    CHECK(recipients_resolve(table, SPAN_LITERAL("mixed@example.com"), &result) ==
          RECIPIENTS_OK);
    CHECK(result.mailbox_count == 1 && result.remote_count == 1);

    result.mailbox_capacity = 0;
    result.mailboxes = NULL;
    CHECK(recipients_resolve(table, SPAN_LITERAL("alice@example.com"), &result) ==
          RECIPIENTS_TOO_MANY);
    CHECK(recipients_resolve(table, SPAN_LITERAL("ext@example.com"), &result) ==
          RECIPIENTS_OK);
    CHECK(recipients_resolve(table, SPAN_LITERAL("nobody@example.com"), &result) ==
          RECIPIENTS_UNKNOWN_USER);
    recipients_destroy(&table);
}

/* unknown_recipient_mailbox catches what nothing else does, also for alias
 * targets, but never before a catch-all or relay check. */
static void
test_unknown_mailbox(void)
{
    struct recipients_options options =
        default_options(write_temp(main_users), write_temp(main_aliases));
    options.unknown_recipient_mailbox = "Carol@Example.com";
    options.recipient_delimiter = "+-";
    struct recipients *table = load_or_die(&options);

    static const struct resolve_case cases[] = {
        { "nobody@example.com", RECIPIENTS_OK, "carol@example.com", "" },
        { "nobody@extra.test", RECIPIENTS_OK, "carol@example.com", "" },
        { "ghost@example.com", RECIPIENTS_OK, "carol@example.com", "" },
        { "alice@example.com", RECIPIENTS_OK, "alice@example.com", "" },
        { "alice-x@example.com", RECIPIENTS_OK, "alice@example.com", "" },
        { "info-x+y@example.com", RECIPIENTS_OK, "alice@example.com bob@example.com", "" },
        { "anyone@catch.test", RECIPIENTS_OK, "dave@other.org", "" },
        { "a%b@example.com", RECIPIENTS_RELAY_FORM, "", "" },
        { "nobody@far.away", RECIPIENTS_NOT_LOCAL, "", "" },
        { "relay@example.com", RECIPIENTS_OK, "carol@example.com", "" },
        { "loop1@example.com", RECIPIENTS_ALIAS_LOOP, "", "" },
    };
    CHECK_CASES(table, cases);
    recipients_destroy(&table);

    /* An unknown mailbox that is not a user still gets one pointer. */
    options.unknown_recipient_mailbox = "lost@Found.test";
    table = load_or_die(&options);
    static const struct resolve_case lost_cases[] = {
        { "nobody@example.com", RECIPIENTS_OK, "lost@found.test", "" },
        { "found.test!x@example.com", RECIPIENTS_RELAY_FORM, "", "" },
    };
    CHECK_CASES(table, lost_cases);
    CHECK(!recipients_domain_is_local(table, SPAN_LITERAL("found.test")));
    recipients_destroy(&table);
}

/* No delimiter: the subaddress is part of the local part. */
static void
test_no_delimiter(void)
{
    struct recipients_options options =
        default_options(write_temp(main_users), write_temp(main_aliases));
    options.recipient_delimiter = "";
    struct recipients *table = load_or_die(&options);
    static const struct resolve_case cases[] = {
        { "alice+news@example.com", RECIPIENTS_OK, "carol@example.com", "" },
        { "alice+x@example.com", RECIPIENTS_UNKNOWN_USER, "", "" },
        { "a+b@example.com", RECIPIENTS_OK, "a+b@example.com", "" },
        { "eve+x@example.com", RECIPIENTS_UNKNOWN_USER, "", "" },
    };
    CHECK_CASES(table, cases);
    recipients_destroy(&table);
}

static void
test_postmaster_address(void)
{
    static const char aliases[] = "postmaster@example.com: alice@example.com\n"
                                  "admins@example.com: bob@example.com, boss@far.away\n"
                                  "back@example.com: postmaster@extra.test, alice@example.com\n";
    const char *users_path = write_temp(main_users);
    const char *aliases_path = write_temp(aliases);

    struct recipients_options options = default_options(users_path, aliases_path);
    options.postmaster_address = "Carol@Example.COM";
    struct recipients *table = load_or_die(&options);
    static const struct resolve_case user_cases[] = {
        /* The alias wins over postmaster_address. */
        { "postmaster@example.com", RECIPIENTS_OK, "alice@example.com", "" },
        { "postmaster@extra.test", RECIPIENTS_OK, "carol@example.com", "" },
        { "postmaster", RECIPIENTS_OK, "carol@example.com", "" },
        { "POSTMASTER", RECIPIENTS_OK, "carol@example.com", "" },
        { "postmaster@other.org", RECIPIENTS_OK, "carol@example.com", "" },
        { "back@example.com", RECIPIENTS_OK, "carol@example.com alice@example.com", "" },
    };
    CHECK_CASES(table, user_cases);
    recipients_destroy(&table);

    options.postmaster_address = "boss@FAR.away";
    table = load_or_die(&options);
    static const struct resolve_case remote_cases[] = {
        { "postmaster@extra.test", RECIPIENTS_OK, "", "boss@far.away" },
        { "postmaster", RECIPIENTS_OK, "", "boss@far.away" },
        { "postmaster@example.com", RECIPIENTS_OK, "alice@example.com", "" },
    };
    CHECK_CASES(table, remote_cases);
    recipients_destroy(&table);

    options.postmaster_address = "admins@example.com";
    table = load_or_die(&options);
    static const struct resolve_case alias_cases[] = {
        { "postmaster@extra.test", RECIPIENTS_OK, "bob@example.com", "boss@far.away" },
        { "postmaster", RECIPIENTS_OK, "bob@example.com", "boss@far.away" },
    };
    CHECK_CASES(table, alias_cases);
    recipients_destroy(&table);

    /* postmaster_address that reaches nobody: the mailbox still gets it. */
    options.postmaster_address = "nobody@extra.test";
    table = load_or_die(&options);
    static const struct resolve_case nobody_cases[] = {
        { "postmaster@extra.test", RECIPIENTS_OK, "postmaster@extra.test", "" },
        { "postmaster", RECIPIENTS_OK, "postmaster@mx.example.net", "" },
    };
    CHECK_CASES(table, nobody_cases);
    recipients_destroy(&table);

    /* postmaster_address that leads back to postmaster ends there. */
    options.postmaster_address = "postmaster@extra.test";
    table = load_or_die(&options);
    static const struct resolve_case self_cases[] = {
        { "postmaster@extra.test", RECIPIENTS_OK, "postmaster@extra.test", "" },
        { "postmaster@listed.test", RECIPIENTS_OK, "postmaster@extra.test", "" },
        { "postmaster", RECIPIENTS_OK, "postmaster@extra.test", "" },
    };
    CHECK_CASES(table, self_cases);
    recipients_destroy(&table);

    /* Bare postmaster uses an alias for postmaster@myhostname, which makes
     * that domain local. */
    static const char host_aliases[] = "postmaster@mx.example.net: dave@other.org\n";
    options = default_options(users_path, write_temp(host_aliases));
    table = load_or_die(&options);
    static const struct resolve_case host_cases[] = {
        { "postmaster", RECIPIENTS_OK, "dave@other.org", "" },
        { "postmaster@MX.example.net", RECIPIENTS_OK, "dave@other.org", "" },
        { "postmaster@example.com", RECIPIENTS_OK, "postmaster@example.com", "" },
    };
    CHECK_CASES(table, host_cases);
    recipients_destroy(&table);
}

/* Nesting at ALIAS_DEPTH_MAX - 1, ALIAS_DEPTH_MAX and one more. */
static void
test_alias_depth(void)
{
    static char aliases[16384];
    size_t used = 0;
    for (int length = ALIAS_DEPTH_MAX - 1; length <= ALIAS_DEPTH_MAX + 1; length++) {
        for (int i = 1; i <= length; i++) {
            int n;
            if (i < length) {
                n = snprintf(aliases + used, sizeof aliases - used,
                             "c%d_%d@chain.test: c%d_%d@chain.test\n", length, i, length, i + 1);
            } else {
                n = snprintf(aliases + used, sizeof aliases - used,
                             "c%d_%d@chain.test: target@chain.test\n", length, i);
            }
            used += (size_t)n;
        }
    }
    struct recipients_options options =
        default_options(write_temp("target@chain.test:x\n"), write_temp(aliases));
    struct recipients *table = load_or_die(&options);
    char address[64];
    for (int length = ALIAS_DEPTH_MAX - 1; length <= ALIAS_DEPTH_MAX + 1; length++) {
        snprintf(address, sizeof address, "c%d_1@chain.test", length);
        struct recipients_result result = fresh_result();
        enum recipients_status status =
            recipients_resolve(table, span_make(address, strlen(address)), &result);
        if (length <= ALIAS_DEPTH_MAX) {
            CHECK(status == RECIPIENTS_OK);
            CHECK(result.mailbox_count == 1 &&
                  strcmp(result.mailboxes[0], "target@chain.test") == 0);
        } else {
            CHECK(status == RECIPIENTS_ALIAS_LOOP);
        }
        /* The inner end of the chain is shallower. */
        snprintf(address, sizeof address, "c%d_2@chain.test", length);
        result = fresh_result();
        CHECK(recipients_resolve(table, span_make(address, strlen(address)), &result) ==
              RECIPIENTS_OK);
    }
    recipients_destroy(&table);
}

/* Expansion at ALIAS_EXPANSION_MAX - 1, ALIAS_EXPANSION_MAX and one more,
 * counting mailboxes and remotes together. */
static void
test_alias_expansion_limit(void)
{
    static char users[65536];
    size_t used = 0;
    for (int i = 0; i <= ALIAS_EXPANSION_MAX + 1; i++) {
        used += (size_t)snprintf(users + used, sizeof users - used, "u%d@b:x\n", i);
    }
    static char aliases[131072];
    size_t aliases_used = 0;
    static const int sizes[] = { ALIAS_EXPANSION_MAX - 1, ALIAS_EXPANSION_MAX,
                                 ALIAS_EXPANSION_MAX + 1 };
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        aliases_used += (size_t)snprintf(aliases + aliases_used, sizeof aliases - aliases_used,
                                         "m%d@b:", sizes[s]);
        for (int i = 0; i < sizes[s]; i++) {
            aliases_used += (size_t)snprintf(aliases + aliases_used,
                                             sizeof aliases - aliases_used, "%su%d@b",
                                             i > 0 ? "," : " ", i);
        }
        aliases_used += (size_t)snprintf(aliases + aliases_used, sizeof aliases - aliases_used,
                                         "\n");
    }
    /* max - 1 mailboxes plus one remote is max; plus two is one too many. */
    aliases_used += (size_t)snprintf(aliases + aliases_used, sizeof aliases - aliases_used,
                                     "r1@b: m%d@b, far@far.away\n"
                                     "r2@b: m%d@b, far@far.away, other@far.away\n"
                                     "dup@b: m%d@b, m%d@b, u0@b\n",
                                     ALIAS_EXPANSION_MAX - 1, ALIAS_EXPANSION_MAX - 1,
                                     ALIAS_EXPANSION_MAX, ALIAS_EXPANSION_MAX - 1);
    /* Three lists of 1500 targets each naming one user: every target is
     * examined, and that work is bounded too. */
    for (int list = 0; list < 3; list++) {
        aliases_used += (size_t)snprintf(aliases + aliases_used, sizeof aliases - aliases_used,
                                         "w%d@b:", list);
        for (int i = 0; i < 1500; i++) {
            aliases_used += (size_t)snprintf(aliases + aliases_used,
                                             sizeof aliases - aliases_used, " u1@b");
        }
        aliases_used += (size_t)snprintf(aliases + aliases_used, sizeof aliases - aliases_used,
                                         "\n");
    }
    aliases_used += (size_t)snprintf(aliases + aliases_used, sizeof aliases - aliases_used,
                                     "work@b: w0@b, w1@b\nmorework@b: w0@b, w1@b, w2@b\n");
    CHECK(aliases_used < sizeof aliases - 1);

    struct recipients_options options = default_options(write_temp(users), write_temp(aliases));
    struct recipients *table = load_or_die(&options);
    CHECK(recipients_user_count(table) == ALIAS_EXPANSION_MAX + 2);

    static const struct {
        const char            *address;
        enum recipients_status status;
        size_t                 mailbox_count;
        size_t                 remote_count;
    } cases[] = {
        { "m999@b", RECIPIENTS_OK, ALIAS_EXPANSION_MAX - 1, 0 },
        { "m1000@b", RECIPIENTS_OK, ALIAS_EXPANSION_MAX, 0 },
        { "m1001@b", RECIPIENTS_TOO_MANY, ALIAS_EXPANSION_MAX + 1, 0 },
        { "r1@b", RECIPIENTS_OK, ALIAS_EXPANSION_MAX - 1, 1 },
        { "r2@b", RECIPIENTS_TOO_MANY, ALIAS_EXPANSION_MAX - 1, 2 },
        { "dup@b", RECIPIENTS_OK, ALIAS_EXPANSION_MAX, 0 },
        { "work@b", RECIPIENTS_OK, 1, 0 },
        { "morework@b", RECIPIENTS_TOO_MANY, 1, 0 },
    };
    static_assert(ALIAS_EXPANSION_MAX == 1000, "case addresses spell the limit out");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct recipients_result result = fresh_result();
        enum recipients_status status = recipients_resolve(
            table, span_make(cases[i].address, strlen(cases[i].address)), &result);
        CHECK(status == cases[i].status);
        CHECK(result.mailbox_count == cases[i].mailbox_count);
        CHECK(result.remote_count == cases[i].remote_count);
        if (status != cases[i].status) {
            fprintf(stderr, "  ^ address %s: status %d\n", cases[i].address, (int)status);
        }
    }
    recipients_destroy(&table);
}

struct load_error_case {
    const char *users;
    const char *aliases;
    const char *where;  /* ":line: " after the file's path, or an option name */
    const char *reason; /* start of the message after it */
    bool        is_aliases_file;
};

static void
test_load_errors(void)
{
    static const struct load_error_case cases[] = {
        { "nodomain:{PLAIN}x\n", "", ":1: ", "user name must be local@domain", false },
        { "# c\n\nok@d.test:x\n@d.test:x\n", "", ":4: ", "user name must be local@domain",
          false },
        { "ok@d.test:x\nlocal@:x\n", "", ":2: ", "user name must be local@domain", false },
        { "a@b@d.test:x\n", "", ":1: ", "user name must be local@domain", false },
        { "a/b@d.test:x\n", "", ":1: ", "user name is not usable as a directory name", false },
        { ".hidden@d.test:x\n", "", ":1: ", "user name is not usable as a directory name",
          false },
        { "a..b@d.test:x\n", "", ":1: ", "user name is not usable as a directory name", false },
        { "a@../d:x\n", "", ":1: ", "user name has an invalid domain", false },
        { "a@d/e:x\n", "", ":1: ", "user name has an invalid domain", false },
        { "a@[127.0.0.1]:x\n", "", ":1: ", "user name has an invalid domain", false },
        { "a b@d.test:x\n", "", ":1: ", "user name must be local@domain", false },
        { "", "a@d.test\n", ":1: ", "alias a@d.test has no targets", true },
        { "", "# x\na@d.test:\n", ":2: ", "alias a@d.test has no targets", true },
        { "", "a@d.test: , ,\n", ":1: ", "alias a@d.test has no targets", true },
        { "", "nodomain: x@y.test\n", ":1: ", "alias must be local@domain or @domain", true },
        { "", ": x@y.test\n", ":1: ", "alias must be local@domain or @domain", true },
        { "", "a@: x@y.test\n", ":1: ", "alias must be local@domain or @domain", true },
        { "", "a@d/x: x@y.test\n", ":1: ", "alias has an invalid domain", true },
        { "", "a@d.test: |/bin/sh\n", ":1: ", "target '|/bin/sh' is not local@domain", true },
        { "", "a@d.test: bare\n", ":1: ", "target 'bare' is not local@domain", true },
        { "", "a@d.test: postmaster\n", ":1: ", "target 'postmaster' is not local@domain",
          true },
        { "", "a@d.test: @r:x@y.test\n", ":1: ", "target '@r:x@y.test' is not local@domain",
          true },
        { "", "a@d.test: x@bad/domain\n", ":1: ", "target 'x@bad/domain' has an invalid domain",
          true },
        { "", "a@d.test: b@d.test\nA@D.TEST: c@d.test\n", ":2: ",
          "duplicate alias a@d.test (first on line 1)", true },
        { "", "@d.test: b@d.test\n@D.test.: c@d.test\n", ":2: ",
          "duplicate alias @d.test (first on line 1)", true },
        { "a@d.test:x\0y\n", "", ":1: ", "NUL byte in line", false },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct load_error_case *c = &cases[i];
        /* The NUL case needs its real length. */
        size_t users_len = strlen(c->users);
        if (strstr(c->reason, "NUL") != NULL) {
            users_len = strlen(c->users) + 1 + strlen(c->users + strlen(c->users) + 1);
        }
        const char *users_path = write_temp_bytes(c->users, users_len);
        const char *aliases_path = write_temp(c->aliases);
        struct recipients_options options = default_options(users_path, aliases_path);
        struct recipients *table = NULL;
        char err[256];
        int rc = recipients_load(&options, &table, err, sizeof err);
        CHECK(rc == -EINVAL);
        CHECK(table == NULL);
        char want[512];
        snprintf(want, sizeof want, "%s%s%s", c->is_aliases_file ? aliases_path : users_path,
                 c->where, c->reason);
        CHECK_STR(err, want);
        remove_temp_files();
    }

    /* Options are checked too and named in the message. */
    static const struct {
        const char *field;
        const char *value;
        const char *want;
    } option_cases[] = {
        { "local_domains", "good.test bad/domain",
          "local_domains: 'bad/domain' is not a domain name" },
        { "local_domains", "a..b", "local_domains: 'a..b' is not a domain name" },
        { "myhostname", "", "myhostname: '' is not a domain name" },
        { "myhostname", "bad host", "myhostname: 'bad host' is not a domain name" },
        { "unknown_recipient_mailbox", "nobody",
          "unknown_recipient_mailbox: 'nobody' is not a usable local@domain mailbox" },
        { "unknown_recipient_mailbox", "../x@d.test",
          "unknown_recipient_mailbox: '../x@d.test' is not a usable local@domain mailbox" },
        { "postmaster_address", "postmaster",
          "postmaster_address: 'postmaster' is not a local@domain address" },
        { "recipient_delimiter", "+@",
          "recipient_delimiter: character 0x40 cannot be a delimiter" },
    };
    for (size_t i = 0; i < sizeof option_cases / sizeof option_cases[0]; i++) {
        struct recipients_options options = default_options("", "");
        const char *field = option_cases[i].field;
        if (strcmp(field, "local_domains") == 0) {
            options.local_domains = option_cases[i].value;
        } else if (strcmp(field, "myhostname") == 0) {
            options.myhostname = option_cases[i].value;
        } else if (strcmp(field, "unknown_recipient_mailbox") == 0) {
            options.unknown_recipient_mailbox = option_cases[i].value;
        } else if (strcmp(field, "postmaster_address") == 0) {
            options.postmaster_address = option_cases[i].value;
        } else {
            options.recipient_delimiter = option_cases[i].value;
        }
        struct recipients *table = NULL;
        char err[256];
        CHECK(recipients_load(&options, &table, err, sizeof err) == -EINVAL);
        CHECK(table == NULL);
        CHECK_STR(err, option_cases[i].want);
    }

    /* An error message never overflows a small buffer. */
    struct recipients_options options =
        default_options(write_temp("nodomain:x\n"), "");
    struct recipients *table = NULL;
    char small[8];
    CHECK(recipients_load(&options, &table, small, sizeof small) == -EINVAL);
    CHECK(strlen(small) == sizeof small - 1);

    /* A directory where a file should be is an operating error. */
    options = default_options("/tmp", "");
    char err[256];
    CHECK(recipients_load(&options, &table, err, sizeof err) == -EISDIR);
    CHECK(table == NULL);
    CHECK(strncmp(err, "/tmp:", 5) == 0);
    remove_temp_files();
}

/* Lines up to TABLE_LINE_BYTES_MAX bytes (without LF or CRLF) load; one
 * byte more is an error naming the line, in either file. */
static void
test_line_limit(void)
{
    static char content[TABLE_LINE_BYTES_MAX + 64];
    static const char *const endings[] = { "\n", "\r\n", "" };
    static const char *const first_lines[] = { "a@d.test:x\n", "a@d.test x@d.test\n" };
    for (size_t e = 0; e < sizeof endings / sizeof endings[0]; e++) {
        for (size_t extra = 0; extra <= 1; extra++) {
            for (size_t file = 0; file < 2; file++) {
                /* Line 1 is valid; line 2 is a comment of max + extra bytes. */
                size_t line_len = TABLE_LINE_BYTES_MAX + extra;
                size_t used = (size_t)snprintf(content, sizeof content, "%s", first_lines[file]);
                content[used] = '#';
                memset(content + used + 1, 'c', line_len - 1);
                used += line_len;
                used += (size_t)snprintf(content + used, sizeof content - used, "%s",
                                         endings[e]);
                const char *path = write_temp_bytes(content, used);
                struct recipients_options options =
                    file == 0 ? default_options(path, "") : default_options("", path);
                struct recipients *table = NULL;
                char err[256];
                int rc = recipients_load(&options, &table, err, sizeof err);
                if (extra == 0) {
                    CHECK(rc == 0);
                    CHECK(table != NULL);
                    CHECK(table != NULL && recipients_domain_is_local(table,
                                                                      SPAN_LITERAL("d.test")));
                } else {
                    char want[256];
                    snprintf(want, sizeof want, "%s:2: line longer than %d bytes", path,
                             TABLE_LINE_BYTES_MAX);
                    CHECK(rc == -EINVAL);
                    CHECK_STR(err, want);
                }
                recipients_destroy(&table);
            }
            remove_temp_files();
        }
    }

    /* A much longer line stops at the limit rather than being buffered. */
    size_t huge_len = 1 << 20;
    char *huge = malloc(huge_len);
    CHECK(huge != NULL);
    if (huge != NULL) {
        memset(huge, 'x', huge_len);
        struct recipients_options options = default_options(write_temp_bytes(huge, huge_len), "");
        struct recipients *table = NULL;
        char err[256];
        CHECK(recipients_load(&options, &table, err, sizeof err) == -EINVAL);
        CHECK(strstr(err, ":1: line longer than") != NULL);
        free(huge);
    }
    remove_temp_files();
}

/* Missing files and empty paths are empty tables; only options make
 * domains local then, and postmaster still works. */
static void
test_missing_files(void)
{
    struct recipients_options options =
        default_options("/tmp/test_recipients_missing_users", "/nonexistent/aliases");
    struct recipients *table = load_or_die(&options);
    CHECK(recipients_user_count(table) == 0);
    CHECK(recipients_alias_count(table) == 0);
    CHECK(recipients_domain_count(table) == 4);
    static const struct resolve_case cases[] = {
        { "postmaster", RECIPIENTS_OK, "postmaster@mx.example.net", "" },
        { "postmaster@extra.test", RECIPIENTS_OK, "postmaster@extra.test", "" },
        { "alice@extra.test", RECIPIENTS_UNKNOWN_USER, "", "" },
        { "alice@example.com", RECIPIENTS_NOT_LOCAL, "", "" },
    };
    CHECK_CASES(table, cases);
    recipients_destroy(&table);

    options = (struct recipients_options){ .myhostname = "host.test" };
    table = load_or_die(&options);
    CHECK(recipients_domain_count(table) == 2); /* host.test and localhost */
    static const struct resolve_case empty_cases[] = {
        { "postmaster", RECIPIENTS_OK, "postmaster@host.test", "" },
        { "postmaster@host.test", RECIPIENTS_OK, "postmaster@host.test", "" },
        { "a@b", RECIPIENTS_NOT_LOCAL, "", "" },
    };
    CHECK_CASES(table, empty_cases);
    recipients_destroy(&table);
}

/* 100k users load and resolve; the table must not degrade. */
static void
test_many_users(void)
{
    enum { USER_COUNT = 100000 };
    size_t bytes = (size_t)USER_COUNT * 40;
    char *users = malloc(bytes);
    CHECK(users != NULL);
    if (users == NULL) {
        return;
    }
    size_t used = 0;
    for (int i = 0; i < USER_COUNT; i++) {
        used += (size_t)snprintf(users + used, bytes - used, "user%d@d%d.bulk:{PLAIN}p%d\n", i,
                                 i % 100, i);
    }
    struct recipients_options options = default_options(write_temp_bytes(users, used), "");
    free(users);
    struct recipients *table = load_or_die(&options);
    CHECK(recipients_user_count(table) == USER_COUNT);
    CHECK(recipients_domain_count(table) == 100 + 2 + 2);
    size_t ok_count = 0;
    char address[64];
    for (int i = 0; i < USER_COUNT; i += 7) {
        int n = snprintf(address, sizeof address, "USER%d@D%d.bulk", i, i % 100);
        struct recipients_result result = fresh_result();
        if (recipients_resolve(table, span_make(address, (size_t)n), &result) == RECIPIENTS_OK &&
            result.mailbox_count == 1) {
            ok_count++;
        }
    }
    CHECK(ok_count == (USER_COUNT + 6) / 7);
    struct recipients_result result = fresh_result();
    CHECK(recipients_resolve(table, SPAN_LITERAL("user100000@d0.bulk"), &result) ==
          RECIPIENTS_UNKNOWN_USER);
    const char *hash = recipients_password_hash(table, SPAN_LITERAL("user99999@d99.bulk"));
    CHECK(hash != NULL && strcmp(hash, "{PLAIN}p99999") == 0);
    recipients_destroy(&table);
    remove_temp_files();
}

static void
test_maildir_path(void)
{
    static const struct {
        const char *mailbox;
        int         rc;
        const char *path;
    } cases[] = {
        { "alice@example.com", 0, "/srv/toaster/mail/example.com/alice/Maildir" },
        { "a+b@example.com", 0, "/srv/toaster/mail/example.com/a+b/Maildir" },
        { "a.b@example.com", 0, "/srv/toaster/mail/example.com/a.b/Maildir" },
        { "\xc3\xbcn\xc3\xaf@example.com", 0,
          "/srv/toaster/mail/example.com/\xc3\xbcn\xc3\xaf/Maildir" },
        { "../x@d", -EINVAL, "" },
        { "..@d", -EINVAL, "" },
        { ".@d", -EINVAL, "" },
        { ".hidden@d", -EINVAL, "" },
        { "a/b@d", -EINVAL, "" },
        { "a..b@d", -EINVAL, "" },
        { "a@../d", -EINVAL, "" },
        { "a@..", -EINVAL, "" },
        { "a@.d", -EINVAL, "" },
        { "a@d/e", -EINVAL, "" },
        { "a@d..e", -EINVAL, "" },
        { "a\x01@d", -EINVAL, "" },
        { "a@d\x7f", -EINVAL, "" },
        { "a\n@d", -EINVAL, "" },
        { "a@", -EINVAL, "" },
        { "@d", -EINVAL, "" },
        { "nodomain", -EINVAL, "" },
        { "a@b@c", -EINVAL, "" },
        { "", -EINVAL, "" },
    };
    char path[256];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        memset(path, 'z', sizeof path);
        int rc = recipients_maildir_path("/srv/toaster", cases[i].mailbox, path, sizeof path);
        CHECK(rc == cases[i].rc);
        CHECK_STR(path, cases[i].path);
        if (rc != cases[i].rc) {
            fprintf(stderr, "  ^ mailbox \"%s\": rc %d\n", cases[i].mailbox, rc);
        }
    }

    /* Exactly fitting, then one byte short. */
    static const char want[] = "/d/mail/e.test/a/Maildir";
    char exact[sizeof want];
    CHECK(recipients_maildir_path("/d", "a@e.test", exact, sizeof exact) == 0);
    CHECK_STR(exact, want);
    CHECK(recipients_maildir_path("/d", "a@e.test", exact, sizeof exact - 1) == -ENAMETOOLONG);
    CHECK_STR(exact, "");

    /* A part longer than a directory name may be. */
    char long_name[300];
    memset(long_name, 'a', 256);
    memcpy(long_name + 256, "@d", 3);
    char big[1024];
    CHECK(recipients_maildir_path("/d", long_name, big, sizeof big) == -ENAMETOOLONG);
    long_name[1] = '@';
    CHECK(recipients_maildir_path("/d", long_name, big, sizeof big) == -EINVAL);
    memset(long_name, 'a', 255);
    memcpy(long_name + 255, "@d", 3);
    CHECK(recipients_maildir_path("/d", long_name, big, sizeof big) == 0);

    CHECK(recipients_maildir_path("", "a@d", big, sizeof big) == -EINVAL);
}

int
main(void)
{
    test_main_fixture();
    remove_temp_files();
    test_capacity();
    remove_temp_files();
    test_unknown_mailbox();
    remove_temp_files();
    test_no_delimiter();
    remove_temp_files();
    test_postmaster_address();
    remove_temp_files();
    test_alias_depth();
    remove_temp_files();
    test_alias_expansion_limit();
    remove_temp_files();
    test_load_errors();
    test_line_limit();
    test_missing_files();
    test_many_users();
    test_maildir_path();
    remove_temp_files();
    UNIT_DONE();
}
