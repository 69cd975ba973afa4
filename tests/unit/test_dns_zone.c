/*
 * tests/unit/test_dns_zone.c - the override file reader (core/dns_zone):
 * every record type, TXT as several quoted strings with escapes, comments,
 * $TTL, $UNLISTED and $SECURE (the AD bit), NXDOMAIN names and NODATA for unlisted types; each
 * kind of bad line with the line number in the message; and the bounds
 * (line length, file size, records, fields, TXT string length) at
 * max and max + 1. Answers must outlive the zone that gave them.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/dns_zone.h"
#include "tests/unit/unit.h"

int main(void);

static const char zone_text[] =
    "; an override file\n"
    "# both comment styles\n"
    "\n"
    "example.org. 600 TXT \"v=spf1 ip4:127.0.0.1 -all\"   ; trailing comment\n"
    "example.org. MX 10 mx.example.org.\n"
    "EXAMPLE.org MX 20 MX2.example.org\n"
    "mx.example.org. IN A 127.0.0.1\n"
    "mx.example.org. A 127.0.0.2\n"
    "mx.example.org. 30 IN AAAA 2001:db8::1\n"
    "$TTL 3600\n"
    "sel._domainkey.example.org. TXT \"v=DKIM1; k=rsa; \" \"p=AB\\\"C\\\\D\\065\" bare\n"
    "null.example.org. MX 0 .\n"
    "1.0.0.127.in-addr.arpa. PTR mx.example.org.\n"
    "_25._tcp.mx.example.org. TLSA 3 1 1 0a1B 2c3d\t# hex split by blanks\n"
    "gone.example.org NXDOMAIN\n"
    "empty.example.org TXT \"\"\n"
    "semi.example.org TXT \"a;b#c\"\r\n";

static struct dns_zone *
parse_ok(const char *text)
{
    struct dns_zone *zone = NULL;
    char error[DNS_ZONE_ERROR_BYTES];
    int rc = dns_zone_parse(text, strlen(text), &zone, error, sizeof(error));
    if (rc != 0) {
        fprintf(stderr, "unexpected error: %s\n", error);
    }
    CHECK(rc == 0);
    return zone;
}

/* The error message for text, or "" when it parses. */
static const char *
parse_error(const char *text, size_t len)
{
    static char error[DNS_ZONE_ERROR_BYTES];
    struct dns_zone *zone = NULL;
    int rc = dns_zone_parse(text, len, &zone, error, sizeof(error));
    if (rc == 0) {
        dns_zone_destroy(&zone);
        return "";
    }
    CHECK(rc == -EINVAL);
    CHECK(zone == NULL);
    return error;
}

static struct dns_result *
look(const struct dns_zone *zone, enum dns_type type, const char *name)
{
    struct dns_result *result = NULL;
    CHECK(dns_zone_lookup(zone, type, name, &result) == 0);
    return result;
}

static void
test_records(void)
{
    struct dns_zone *zone = parse_ok(zone_text);
    CHECK(zone != NULL);
    if (zone == NULL) {
        return;
    }
    CHECK(dns_zone_name_count(zone) == 9);

    struct dns_result *r = look(zone, DNS_TYPE_TXT, "example.org");
    CHECK(r->answer.status == DNS_STATUS_OK && r->answer.count == 1 && r->answer.ttl == 600);
    CHECK_BYTES(r->answer.records[0].txt.text, r->answer.records[0].txt.len,
                "v=spf1 ip4:127.0.0.1 -all", 25);
    dns_result_unref(&r);

    r = look(zone, DNS_TYPE_MX, "example.org");
    CHECK(r->answer.status == DNS_STATUS_OK && r->answer.count == 2 && r->answer.ttl == 300);
    CHECK(r->answer.records[0].mx.preference == 10);
    CHECK_STR(r->answer.records[0].mx.host, "mx.example.org");
    CHECK(r->answer.records[1].mx.preference == 20);
    CHECK_STR(r->answer.records[1].mx.host, "mx2.example.org");
    dns_result_unref(&r);

    r = look(zone, DNS_TYPE_A, "mx.example.org");
    CHECK(r->answer.count == 2);
    CHECK(r->answer.records[0].a.s_addr == htonl(0x7f000001));
    CHECK(r->answer.records[1].a.s_addr == htonl(0x7f000002));
    dns_result_unref(&r);
    r = look(zone, DNS_TYPE_AAAA, "mx.example.org");
    CHECK(r->answer.count == 1 && r->answer.ttl == 30);
    CHECK(r->answer.records[0].aaaa.s6_addr[0] == 0x20 && r->answer.records[0].aaaa.s6_addr[15] == 1);
    dns_result_unref(&r);

    /* Several strings, escapes and a bare word, joined; $TTL applied. */
    r = look(zone, DNS_TYPE_TXT, "sel._domainkey.example.org");
    CHECK(r->answer.ttl == 3600);
    CHECK_BYTES(r->answer.records[0].txt.text, r->answer.records[0].txt.len,
                "v=DKIM1; k=rsa; p=AB\"C\\DAbare", 29);
    dns_result_unref(&r);

    r = look(zone, DNS_TYPE_MX, "null.example.org");
    CHECK(r->answer.count == 1);
    CHECK_STR(r->answer.records[0].mx.host, "");
    dns_result_unref(&r);
    r = look(zone, DNS_TYPE_PTR, "1.0.0.127.in-addr.arpa");
    CHECK_STR(r->answer.records[0].ptr, "mx.example.org");
    dns_result_unref(&r);
    r = look(zone, DNS_TYPE_TLSA, "_25._tcp.mx.example.org");
    CHECK(r->answer.records[0].tlsa.usage == 3 && r->answer.records[0].tlsa.selector == 1 &&
          r->answer.records[0].tlsa.matching == 1);
    CHECK_BYTES(r->answer.records[0].tlsa.data, r->answer.records[0].tlsa.len,
                "\x0a\x1b\x2c\x3d", 4);
    dns_result_unref(&r);
    r = look(zone, DNS_TYPE_TXT, "empty.example.org");
    CHECK(r->answer.status == DNS_STATUS_OK && r->answer.records[0].txt.len == 0);
    dns_result_unref(&r);
    r = look(zone, DNS_TYPE_TXT, "semi.example.org");
    CHECK_BYTES(r->answer.records[0].txt.text, r->answer.records[0].txt.len, "a;b#c", 5);
    dns_result_unref(&r);

    /* NXDOMAIN for every type; NODATA for a type not listed. */
    r = look(zone, DNS_TYPE_MX, "gone.example.org");
    CHECK(r->answer.status == DNS_STATUS_NXDOMAIN && r->answer.type == DNS_TYPE_MX);
    dns_result_unref(&r);
    r = look(zone, DNS_TYPE_TLSA, "example.org");
    CHECK(r->answer.status == DNS_STATUS_NODATA && r->answer.type == DNS_TYPE_TLSA);
    CHECK(r->answer.ttl == DNS_ZONE_TTL_DEFAULT_S);
    dns_result_unref(&r);
    /* Not listed: ask the resolver. */
    CHECK(dns_zone_lookup(zone, DNS_TYPE_A, "other.org", &r) == -ENOENT);
    CHECK(dns_zone_lookup(zone, DNS_TYPE_A, "org", &r) == -ENOENT);

    /* An answer outlives its zone. */
    r = look(zone, DNS_TYPE_MX, "example.org");
    dns_zone_destroy(&zone);
    CHECK(zone == NULL);
    CHECK_STR(r->answer.records[1].mx.host, "mx2.example.org");
    dns_result_unref(&r);
}

static void
test_unlisted(void)
{
    struct dns_zone *zone = parse_ok("$UNLISTED NXDOMAIN\nmx.test A 127.0.0.1\n");
    struct dns_result *r = look(zone, DNS_TYPE_A, "other.test");
    CHECK(r->answer.status == DNS_STATUS_NXDOMAIN);
    dns_result_unref(&r);
    r = look(zone, DNS_TYPE_A, "mx.test");
    CHECK(r->answer.status == DNS_STATUS_OK);
    dns_result_unref(&r);
    dns_zone_destroy(&zone);
    /* The last directive counts. */
    zone = parse_ok("$UNLISTED NXDOMAIN\n$unlisted resolve\n");
    CHECK(dns_zone_lookup(zone, DNS_TYPE_A, "other.test", &r) == -ENOENT);
    dns_zone_destroy(&zone);
    /* An empty file is a zone with nothing in it. */
    zone = parse_ok("");
    CHECK(dns_zone_name_count(zone) == 0);
    CHECK(dns_zone_lookup(zone, DNS_TYPE_A, "x.test", &r) == -ENOENT);
    dns_zone_destroy(&zone);
}

/* $SECURE yes|no: answers whose every record is under "yes" are
 * authenticated; the default is no; negative answers never are. */
static void
test_secure(void)
{
    struct dns_zone *zone = parse_ok("example.org MX 10 mx.example.org\n"
                                     "$SECURE yes\n"
                                     "mx.example.org A 127.0.0.1\n"
                                     "_25._tcp.mx.example.org TLSA 3 1 1 0a1b\n"
                                     "mixed.example.org A 127.0.0.2\n"
                                     "$secure NO\n"
                                     "mixed.example.org A 127.0.0.3\n"
                                     "plain.example.org A 127.0.0.4\n"
                                     "$SECURE yes\n"
                                     "gone.example.org NXDOMAIN\n");
    struct dns_result *r = look(zone, DNS_TYPE_MX, "example.org");
    CHECK(r->answer.status == DNS_STATUS_OK && !r->answer.authenticated);
    dns_result_unref(&r);
    r = look(zone, DNS_TYPE_A, "mx.example.org");
    CHECK(r->answer.status == DNS_STATUS_OK && r->answer.authenticated);
    dns_result_unref(&r);
    r = look(zone, DNS_TYPE_TLSA, "_25._tcp.mx.example.org");
    CHECK(r->answer.status == DNS_STATUS_OK && r->answer.authenticated);
    CHECK(r->answer.count == 1 && r->answer.records[0].tlsa.usage == 3);
    dns_result_unref(&r);
    r = look(zone, DNS_TYPE_A, "mixed.example.org"); /* one record of two: not */
    CHECK(r->answer.status == DNS_STATUS_OK && r->answer.count == 2 && !r->answer.authenticated);
    dns_result_unref(&r);
    r = look(zone, DNS_TYPE_A, "plain.example.org");
    CHECK(r->answer.status == DNS_STATUS_OK && !r->answer.authenticated);
    dns_result_unref(&r);
    r = look(zone, DNS_TYPE_AAAA, "mx.example.org");
    CHECK(r->answer.status == DNS_STATUS_NODATA && !r->answer.authenticated);
    dns_result_unref(&r);
    r = look(zone, DNS_TYPE_A, "gone.example.org");
    CHECK(r->answer.status == DNS_STATUS_NXDOMAIN && !r->answer.authenticated);
    dns_result_unref(&r);
    dns_zone_destroy(&zone);
}

static void
test_errors(void)
{
    static const struct {
        const char *text;
        const char *error;
    } cases[] = {
        { "a.test A 1.2.3.4\nb.test SRV 0 0 25 x.test\n", "line 2: unknown type SRV" },
        { "a.test A 1.2.3.256\n", "line 1: not an IPv4 address: 1.2.3.256" },
        { "a.test A 1.2.3.4 5.6.7.8\n", "line 1: A takes one address" },
        { "a.test AAAA 1.2.3.4\n", "line 1: not an IPv6 address: 1.2.3.4" },
        { "a.test MX 10\n", "line 1: MX takes a preference (0-65535) and a host" },
        { "a.test MX 65536 mx.test\n", "line 1: MX takes a preference (0-65535) and a host" },
        { "a.test MX 10 mx..test\n", "line 1: not a host name: mx..test" },
        { "a.test PTR\n", "line 1: PTR takes one host name" },
        { "a.test TXT\n", "line 1: TXT takes one or more strings" },
        { "a.test TXT \"open\n", "line 1: unterminated quoted string" },
        { "a.test TXT \"x\"y\n", "line 1: text right after a closing quote" },
        { "a.test TXT ab\"c\"\n", "line 1: a quote inside a word" },
        { "a.test TXT \"\\25\"\n", "line 1: \\DDD needs three decimal digits" },
        { "a.test TXT \"\\256\"\n", "line 1: \\256 is not a byte" },
        { "a.test TXT \"x\\", "line 1: backslash at the end of the line" },
        { "a.test TLSA 3 1 1 abc\n", "line 1: TLSA data has an odd number of hex digits" },
        { "a.test TLSA 3 1 1 zz\n", "line 1: TLSA data is not hex" },
        { "a.test TLSA 3 1 256 00\n",
          "line 1: TLSA takes usage, selector, matching type (0-255) and hex data" },
        { "a..test A 1.2.3.4\n", "line 1: not a domain name: a..test" },
        { "a.test\n", "line 1: a record type is missing" },
        { "a.test 300 IN\n", "line 1: a record type is missing" },
        { "a.test NXDOMAIN extra\n", "line 1: NXDOMAIN takes nothing after it" },
        { "$ORIGIN test.\n", "line 1: unknown directive $ORIGIN" },
        { "$TTL soon\n", "line 1: $TTL takes one number of seconds" },
        { "$UNLISTED maybe\n", "line 1: $UNLISTED takes NXDOMAIN or RESOLVE" },
        { "$SECURE\n", "line 1: $SECURE takes yes or no" },
        { "$SECURE maybe\n", "line 1: $SECURE takes yes or no" },
        { "$SECURE yes no\n", "line 1: $SECURE takes yes or no" },
        { "; ok\nx.test A 1.1.1.1\nx.test NXDOMAIN\n",
          "line 2: x.test has records but is NXDOMAIN on line 3" },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *got = parse_error(cases[i].text, strlen(cases[i].text));
        if (strcmp(got, cases[i].error) != 0) {
            fprintf(stderr, "case %zu\n", i);
        }
        CHECK_STR(got, cases[i].error);
    }
    /* A NUL byte in the file. */
    CHECK_STR(parse_error("a.test A 1.2.3.4\nb\0", 19), "line 2: a NUL byte");
}

static void
test_bounds(void)
{
    /* TXT strings of 255 and 256 bytes. */
    char text[DNS_ZONE_LINE_BYTES_MAX * 2];
    char big[300];
    memset(big, 'x', sizeof(big));
    snprintf(text, sizeof(text), "a.test TXT \"%.*s\"\n", 255, big);
    CHECK_STR(parse_error(text, strlen(text)), "");
    snprintf(text, sizeof(text), "a.test TXT \"%.*s\"\n", 256, big);
    CHECK_STR(parse_error(text, strlen(text)),
              "line 1: a TXT string longer than 255 bytes (split it into several quoted "
              "strings)");

    /* Lines of DNS_ZONE_LINE_BYTES_MAX and one more (the newline excluded). */
    for (size_t len = DNS_ZONE_LINE_BYTES_MAX; len <= DNS_ZONE_LINE_BYTES_MAX + 1; len++) {
        size_t n = (size_t)snprintf(text, sizeof(text), "a.test TXT");
        while (n + 4 <= len) {
            memcpy(text + n, " \"x\"", 4);
            n += 4;
        }
        while (n < len) {
            text[n++] = ' ';
        }
        text[n++] = '\n';
        const char *error = parse_error(text, n);
        if (len == DNS_ZONE_LINE_BYTES_MAX) {
            /* Over 256 fields though: the field bound speaks first. */
            CHECK_STR(error, "line 1: more than 256 fields");
        } else {
            CHECK_STR(error, "line 1: longer than 4096 bytes");
        }
    }
    /* 256 fields are fine (name, type, 254 strings), 257 are not. */
    for (int fields = 256; fields <= 257; fields++) {
        size_t n = (size_t)snprintf(text, sizeof(text), "a.test TXT");
        for (int i = 2; i < fields; i++) {
            n += (size_t)snprintf(text + n, sizeof(text) - n, " x");
        }
        text[n++] = '\n';
        CHECK_STR(parse_error(text, n), fields == 256 ? "" : "line 1: more than 256 fields");
    }

    /* DNS_ZONE_RECORDS_MAX records, then one more. */
    size_t room = (DNS_ZONE_RECORDS_MAX + 1) * 32;
    char *file = malloc(room);
    size_t n = 0;
    for (unsigned i = 0; i < DNS_ZONE_RECORDS_MAX; i++) {
        n += (size_t)snprintf(file + n, room - n, "h%u.test A 10.0.%u.%u\n", i, i / 256, i % 256);
    }
    struct dns_zone *zone = NULL;
    char error[DNS_ZONE_ERROR_BYTES];
    CHECK(dns_zone_parse(file, n, &zone, error, sizeof(error)) == 0);
    struct dns_result *r = NULL;
    CHECK(dns_zone_lookup(zone, DNS_TYPE_A, "h9999.test", &r) == 0);
    CHECK(r != NULL && r->answer.records[0].a.s_addr == htonl(0x0a00270f));
    dns_result_unref(&r);
    dns_zone_destroy(&zone);
    n += (size_t)snprintf(file + n, room - n, "one.more.test A 10.1.1.1\n");
    CHECK_STR(parse_error(file, n), "line 10001: more than 10000 records");
    free(file);

    /* More than DNS_ANSWER_RECORDS_MAX records of one name and type. */
    room = (DNS_ANSWER_RECORDS_MAX + 1) * 32;
    file = malloc(room);
    n = 0;
    for (unsigned i = 0; i <= DNS_ANSWER_RECORDS_MAX; i++) {
        n += (size_t)snprintf(file + n, room - n, "h.test A 10.0.%u.%u\n", i / 256, i % 256);
    }
    CHECK_STR(parse_error(file, n), "line 257: more than 256 records of one name and type");
    free(file);

    /* A file of DNS_ZONE_FILE_BYTES_MAX bytes (comments), and one more. */
    file = malloc(DNS_ZONE_FILE_BYTES_MAX + 1);
    for (size_t i = 0; i < DNS_ZONE_FILE_BYTES_MAX + 1; i++) {
        file[i] = (i % 64 == 63) ? '\n' : ';';
    }
    CHECK_STR(parse_error(file, DNS_ZONE_FILE_BYTES_MAX), "");
    CHECK_STR(parse_error(file, DNS_ZONE_FILE_BYTES_MAX + 1), "larger than 1048576 bytes");
    free(file);
}

static void
test_load(void)
{
    char error[DNS_ZONE_ERROR_BYTES + 64];
    struct dns_zone *zone = NULL;
    CHECK(dns_zone_load("/nonexistent/dir/zone", &zone, error, sizeof(error)) == -ENOENT);
    CHECK_STR(error, "/nonexistent/dir/zone: No such file or directory");
    char path[] = "/tmp/test_dns_zone_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    const char bad[] = "ok.test A 1.1.1.1\nbad.test MX\n";
    CHECK(write(fd, bad, sizeof(bad) - 1) == (ssize_t)(sizeof(bad) - 1));
    CHECK(close(fd) == 0);
    CHECK(dns_zone_load(path, &zone, error, sizeof(error)) == -EINVAL);
    char want[128];
    snprintf(want, sizeof(want), "%s: line 2: MX takes a preference (0-65535) and a host", path);
    CHECK_STR(error, want);
    fd = open(path, O_WRONLY | O_TRUNC);
    CHECK(fd >= 0);
    CHECK(write(fd, bad, 18) == 18);
    CHECK(close(fd) == 0);
    CHECK(dns_zone_load(path, &zone, error, sizeof(error)) == 0);
    CHECK(dns_zone_name_count(zone) == 1);
    dns_zone_destroy(&zone);
    CHECK(unlink(path) == 0);
}

int
main(void)
{
    test_records();
    test_unlisted();
    test_secure();
    test_errors();
    test_bounds();
    test_load();
    UNIT_DONE();
}
