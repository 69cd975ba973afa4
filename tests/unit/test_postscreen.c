/*
 * tests/unit/test_postscreen.c - the port 25 screening policy without a
 * socket: client address forms, postscreen_access parsing (inline and from
 * a file, every error named, the entry bound at max and max + 1) and
 * first-match CIDR matching for IPv4 and IPv6, then the verdict at connect
 * through its life: unknown (TEST), pregreet (refused until bad_ttl),
 * waited (PASS OLD until good_ttl), the rate limit at max - 1, max and
 * max + 1 per minute, and the access list before all of it. Time is an
 * injected clock in the key-value store.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/kv.h"
#include "core/postscreen.h"
#include "tests/unit/unit.h"

int main(void);

static uint64_t fake_now_ms = 1000000;

static uint64_t
fake_clock(void *arg)
{
    (void)arg;
    return fake_now_ms;
}

static struct postscreen_access access_list;

static int
parse(const char *text)
{
    char err[256];
    access_list.count = 0;
    int rc = postscreen_access_parse(text, &access_list, err, sizeof(err));
    if (rc != 0 && strstr(err, "postscreen_access") == NULL) {
        return -1000; /* every error names the key */
    }
    return rc;
}

static enum postscreen_access_action
match(const char *client)
{
    struct postscreen_addr addr;
    if (postscreen_addr_parse(client, &addr) != 0) {
        return (enum postscreen_access_action)-1;
    }
    return postscreen_access_match(&access_list, &addr);
}

static void
test_addresses(void)
{
    struct postscreen_addr a;
    CHECK(postscreen_addr_parse("192.0.2.1", &a) == 0 && a.family == 4 && a.bytes[0] == 192 &&
          a.bytes[3] == 1);
    CHECK(postscreen_addr_parse("IPv6:2001:db8::1", &a) == 0 && a.family == 6 &&
          a.bytes[0] == 0x20 && a.bytes[15] == 1);
    CHECK(postscreen_addr_parse("2001:db8::1", &a) == 0 && a.family == 6);
    CHECK(postscreen_addr_parse("IPv6:::ffff:192.0.2.7", &a) == 0 && a.family == 4 &&
          a.bytes[3] == 7);
    CHECK(postscreen_addr_parse("unknown", &a) == -EINVAL);
    CHECK(postscreen_addr_parse("", &a) == -EINVAL);
    CHECK(postscreen_addr_parse("192.0.2.1 ", &a) == -EINVAL);
    CHECK(postscreen_addr_parse("[192.0.2.1]", &a) == -EINVAL);
    CHECK(postscreen_addr_parse(NULL, &a) == -EINVAL);
}

static void
test_access_parse(void)
{
    CHECK(parse("") == 0 && access_list.count == 0);
    CHECK(parse("  ,, \n # nothing\n") == 0 && access_list.count == 0);
    CHECK(parse("192.0.2.0/24 reject, 198.51.100.7 permit") == 0 && access_list.count == 2);
    CHECK(access_list.entries[0].prefix_bits == 24 && !access_list.entries[0].is_permit);
    CHECK(access_list.entries[1].prefix_bits == 32 && access_list.entries[1].is_permit);
    /* File-like text: one per line, comments, CRLF, tabs, any case. */
    CHECK(parse("# allow our relay\n"
                "198.51.100.0/25\tPERMIT   # the relays, a, b\r\n"
                "2001:db8::/32 Reject\n"
                "\n"
                "0.0.0.0/0 permit, ::/0 reject\n") == 0);
    CHECK(access_list.count == 4);
    CHECK(access_list.entries[1].network.family == 6 && access_list.entries[1].prefix_bits == 32);
    CHECK(access_list.entries[2].prefix_bits == 0);
    /* Errors, each named. */
    CHECK(parse("192.0.2.0/24") == -EINVAL);                 /* no action */
    CHECK(parse("192.0.2.0/24 allow") == -EINVAL);           /* unknown action */
    CHECK(parse("192.0.2.0/24 reject now") == -EINVAL);      /* extra field */
    CHECK(parse("192.0.2.1/24 reject") == -EINVAL);          /* host bits */
    CHECK(parse("192.0.2.0/33 reject") == -EINVAL);          /* prefix too long */
    CHECK(parse("192.0.2.0/ reject") == -EINVAL);
    CHECK(parse("192.0.2.0/2x reject") == -EINVAL);
    CHECK(parse("192.0.2.0/-1 reject") == -EINVAL);
    CHECK(parse("192.0.2.0/0024 reject") == -EINVAL);
    CHECK(parse("2001:db8::/129 reject") == -EINVAL);
    CHECK(parse("2001:db8::1/64 reject") == -EINVAL);
    CHECK(parse("::ffff:192.0.2.0/120 reject") == -EINVAL); /* write it as IPv4 */
    CHECK(parse("mail.example.com reject") == -EINVAL);      /* names are not resolved */
    CHECK(parse("192.0.2.0/24 reject,, 192.0.2.999 permit") == -EINVAL);
    char long_item[400];
    memset(long_item, ' ', sizeof(long_item));
    long_item[sizeof(long_item) - 1] = '\0';
    memcpy(long_item, "192.0.2.1", 9);
    CHECK(parse(long_item) == -EINVAL);
    /* The entry bound: max fits, max + 1 is an error. */
    size_t bytes = (size_t)(POSTSCREEN_ACCESS_MAX + 1) * 24 + 1;
    char *many = malloc(bytes);
    CHECK(many != NULL);
    if (many != NULL) {
        size_t len = 0;
        for (int i = 0; i < POSTSCREEN_ACCESS_MAX; i++) {
            len += (size_t)snprintf(many + len, bytes - len, "10.%d.%d.0/24 reject\n",
                                    i / 256, i % 256);
        }
        CHECK(parse(many) == 0 && access_list.count == POSTSCREEN_ACCESS_MAX);
        (void)snprintf(many + len, bytes - len, "10.200.0.0/16 reject\n");
        CHECK(parse(many) == -EINVAL);
        free(many);
    }
}

static void
test_access_match(void)
{
    CHECK(parse("192.0.2.7 permit, 192.0.2.0/24 reject, 198.51.100.0/23 reject, "
                "2001:db8:1::/48 permit, 2001:db8::/32 reject, 203.0.113.128/25 permit") == 0);
    CHECK(match("192.0.2.7") == POSTSCREEN_ACCESS_PERMIT); /* the first match wins */
    CHECK(match("192.0.2.8") == POSTSCREEN_ACCESS_REJECT);
    CHECK(match("192.0.3.7") == POSTSCREEN_ACCESS_NONE);
    CHECK(match("198.51.100.255") == POSTSCREEN_ACCESS_REJECT);
    CHECK(match("198.51.101.1") == POSTSCREEN_ACCESS_REJECT); /* /23 spans two /24s */
    CHECK(match("198.51.102.1") == POSTSCREEN_ACCESS_NONE);
    CHECK(match("203.0.113.127") == POSTSCREEN_ACCESS_NONE); /* /25 boundary */
    CHECK(match("203.0.113.128") == POSTSCREEN_ACCESS_PERMIT);
    CHECK(match("IPv6:2001:db8:1::25") == POSTSCREEN_ACCESS_PERMIT);
    CHECK(match("IPv6:2001:db8:2::25") == POSTSCREEN_ACCESS_REJECT);
    CHECK(match("IPv6:2001:db9::25") == POSTSCREEN_ACCESS_NONE);
    CHECK(match("IPv6:::ffff:192.0.2.9") == POSTSCREEN_ACCESS_REJECT); /* mapped = IPv4 */
    /* /0 covers its own family only. */
    CHECK(parse("0.0.0.0/0 reject") == 0);
    CHECK(match("203.0.113.1") == POSTSCREEN_ACCESS_REJECT);
    CHECK(match("IPv6:2001:db8::1") == POSTSCREEN_ACCESS_NONE);
    CHECK(parse("::/0 permit") == 0);
    CHECK(match("IPv6:::1") == POSTSCREEN_ACCESS_PERMIT);
    CHECK(match("127.0.0.1") == POSTSCREEN_ACCESS_NONE);
}

static void
test_access_load(void)
{
    char err[512];
    CHECK(postscreen_access_load("", &access_list, err, sizeof(err)) == 0);
    CHECK(access_list.count == 0);
    CHECK(postscreen_access_load("127.0.0.1 reject", &access_list, err, sizeof(err)) == 0);
    CHECK(access_list.count == 1);
    char path[] = "/tmp/test_postscreen_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    if (fd >= 0) {
        const char text[] = "# test\n192.0.2.0/24 reject\n2001:db8::/32 permit\n";
        CHECK(write(fd, text, sizeof(text) - 1) == (ssize_t)(sizeof(text) - 1));
        CHECK(close(fd) == 0);
        /* The load replaces what was there. */
        CHECK(postscreen_access_load(path, &access_list, err, sizeof(err)) == 0);
        CHECK(access_list.count == 2);
        CHECK(match("192.0.2.1") == POSTSCREEN_ACCESS_REJECT);
        /* A bad line in the file names the file. */
        FILE *file = fopen(path, "w");
        CHECK(file != NULL);
        if (file != NULL) {
            fputs("192.0.2.0/24 maybe\n", file);
            CHECK(fclose(file) == 0);
        }
        CHECK(postscreen_access_load(path, &access_list, err, sizeof(err)) == -EINVAL);
        CHECK(strstr(err, path) != NULL);
        CHECK(strstr(err, "maybe") != NULL);
        CHECK(unlink(path) == 0);
    }
    CHECK(postscreen_access_load("/nonexistent/postscreen_access", &access_list, err,
                                 sizeof(err)) == -ENOENT);
    CHECK(strstr(err, "/nonexistent/postscreen_access") != NULL);
}

static struct postscreen *
make(struct kv *kv, uint32_t greet_wait_ms, uint32_t rate_limit, const char *access_value)
{
    struct postscreen_config config = {
        .greet_wait_ms = greet_wait_ms,
        .bad_ttl_s = 3600,
        .good_ttl_s = 86400,
        .rate_limit = rate_limit,
    };
    struct postscreen *ps = NULL;
    char err[256];
    int rc = postscreen_create(&config, access_value, kv, &ps, err, sizeof(err));
    CHECK(rc == 0);
    return ps;
}

static void
test_decide(void)
{
    struct kv *kv = NULL;
    CHECK(kv_embedded_create(1024, fake_clock, NULL, &kv) == 0);

    /* Nothing configured: inactive, always a plain PASS. */
    struct postscreen *ps = make(kv, 0, 0, "");
    CHECK(!postscreen_is_active(ps));
    struct postscreen_decision d = postscreen_decide(ps, "192.0.2.1");
    CHECK(d.verdict == POSTSCREEN_PASS && d.reason == POSTSCREEN_REASON_OFF);
    postscreen_destroy(&ps);
    CHECK(ps == NULL);

    /* A bad access list is refused at creation. */
    struct postscreen_config config = { .greet_wait_ms = 1000, .bad_ttl_s = 1, .good_ttl_s = 1 };
    char err[256];
    CHECK(postscreen_create(&config, "192.0.2.0/24 deny", kv, &ps, err, sizeof(err)) ==
          -EINVAL);
    CHECK(strstr(err, "deny") != NULL);

    /* The greet wait's life cycle for one client. */
    ps = make(kv, 6000, 0, "");
    CHECK(postscreen_is_active(ps));
    CHECK(postscreen_config(ps)->greet_wait_ms == 6000);
    d = postscreen_decide(ps, "192.0.2.1");
    CHECK(d.verdict == POSTSCREEN_TEST && d.reason == POSTSCREEN_REASON_NEW);
    CHECK(postscreen_pregreet(ps, "192.0.2.1") == 0);
    d = postscreen_decide(ps, "192.0.2.1");
    CHECK(d.verdict == POSTSCREEN_REJECT && d.reason == POSTSCREEN_REASON_BAD_OLD);
    CHECK(postscreen_decide(ps, "192.0.2.2").verdict == POSTSCREEN_TEST); /* others unaffected */
    fake_now_ms += 3600u * 1000 - 1;
    CHECK(postscreen_decide(ps, "192.0.2.1").verdict == POSTSCREEN_REJECT);
    fake_now_ms += 1; /* bad_ttl over */
    CHECK(postscreen_decide(ps, "192.0.2.1").verdict == POSTSCREEN_TEST);
    CHECK(postscreen_passed(ps, "192.0.2.1") == 0);
    d = postscreen_decide(ps, "192.0.2.1");
    CHECK(d.verdict == POSTSCREEN_PASS && d.reason == POSTSCREEN_REASON_PASS_OLD);
    /* The same client in its IPv6-mapped form is the same client. */
    CHECK(postscreen_decide(ps, "IPv6:::ffff:192.0.2.1").verdict == POSTSCREEN_PASS);
    fake_now_ms += 86400u * 1000; /* good_ttl over */
    CHECK(postscreen_decide(ps, "192.0.2.1").verdict == POSTSCREEN_TEST);
    /* IPv6 clients are remembered just the same. */
    CHECK(postscreen_decide(ps, "IPv6:2001:db8::25").verdict == POSTSCREEN_TEST);
    CHECK(postscreen_pregreet(ps, "IPv6:2001:db8::25") == 0);
    CHECK(postscreen_decide(ps, "IPv6:2001:db8::25").verdict == POSTSCREEN_REJECT);
    CHECK(postscreen_decide(ps, "IPv6:2001:db8::26").verdict == POSTSCREEN_TEST);
    /* An address that does not parse is never refused for it. */
    CHECK(postscreen_decide(ps, "unknown").verdict == POSTSCREEN_PASS);
    CHECK(postscreen_pregreet(ps, "unknown") == -EINVAL);
    postscreen_destroy(&ps);

    /* Rate limit of 3 a minute, without a greet wait: max - 1, max, max + 1. */
    ps = make(kv, 0, 3, "");
    CHECK(postscreen_is_active(ps));
    d = postscreen_decide(ps, "198.51.100.1");
    CHECK(d.verdict == POSTSCREEN_PASS && d.rate_count == 1);
    CHECK(postscreen_decide(ps, "198.51.100.1").verdict == POSTSCREEN_PASS);
    d = postscreen_decide(ps, "198.51.100.1");
    CHECK(d.verdict == POSTSCREEN_PASS && d.rate_count == 3);
    d = postscreen_decide(ps, "198.51.100.1");
    CHECK(d.verdict == POSTSCREEN_LIMIT && d.reason == POSTSCREEN_REASON_RATE);
    CHECK(d.rate_count == 4);
    CHECK(postscreen_decide(ps, "198.51.100.2").verdict == POSTSCREEN_PASS); /* per address */
    fake_now_ms += 60000; /* a new minute */
    CHECK(postscreen_decide(ps, "198.51.100.1").verdict == POSTSCREEN_PASS);
    /* A known good client is still rate limited. */
    CHECK(postscreen_passed(ps, "198.51.100.1") == 0);
    CHECK(postscreen_decide(ps, "198.51.100.1").reason == POSTSCREEN_REASON_PASS_OLD);
    CHECK(postscreen_decide(ps, "198.51.100.1").verdict == POSTSCREEN_PASS);
    CHECK(postscreen_decide(ps, "198.51.100.1").verdict == POSTSCREEN_LIMIT);
    postscreen_destroy(&ps);

    /* The access list comes first: permit skips the rate limit and the
     * memory of bad clients; reject beats remembered good. */
    ps = make(kv, 6000, 1, "192.0.2.1 permit, 192.0.2.0/24 reject");
    for (int i = 0; i < 5; i++) {
        d = postscreen_decide(ps, "192.0.2.1");
        CHECK(d.verdict == POSTSCREEN_PERMIT && d.reason == POSTSCREEN_REASON_ALLOWLISTED);
    }
    CHECK(postscreen_pregreet(ps, "192.0.2.1") == 0);
    CHECK(postscreen_decide(ps, "192.0.2.1").verdict == POSTSCREEN_PERMIT);
    CHECK(postscreen_passed(ps, "192.0.2.9") == 0);
    d = postscreen_decide(ps, "192.0.2.9");
    CHECK(d.verdict == POSTSCREEN_REJECT && d.reason == POSTSCREEN_REASON_DENYLISTED);
    /* Remembered bad is refused before it is counted for the rate. */
    CHECK(postscreen_pregreet(ps, "203.0.113.5") == 0);
    d = postscreen_decide(ps, "203.0.113.5");
    CHECK(d.verdict == POSTSCREEN_REJECT && d.rate_count == 0);
    postscreen_destroy(&ps);
    kv_destroy(&kv);
}

static void
test_replies(void)
{
    char out[512];
    size_t n = postscreen_reply(POSTSCREEN_REJECT, "192.0.2.1", "mx.example.com", out,
                                sizeof(out));
    CHECK_BYTES(out, n, "554 5.7.1 Service unavailable; client [192.0.2.1] blocked\r\n",
                strlen("554 5.7.1 Service unavailable; client [192.0.2.1] blocked\r\n"));
    n = postscreen_reply(POSTSCREEN_LIMIT, "IPv6:2001:db8::1", "mx.example.com", out,
                         sizeof(out));
    CHECK_STR(out, "421 4.7.0 mx.example.com Error: too many connections from "
                   "[IPv6:2001:db8::1], try again later\r\n");
    CHECK(n == strlen(out));
    n = postscreen_reply(POSTSCREEN_TEST, "192.0.2.1", "mx.example.com", out, sizeof(out));
    CHECK_STR(out, "554 5.5.1 Error: no SMTP service\r\n");
    /* Truncated, still one line ending in CRLF. */
    char small[20];
    n = postscreen_reply(POSTSCREEN_REJECT, "192.0.2.1", "mx", small, sizeof(small));
    CHECK(n == sizeof(small) - 1);
    CHECK(small[n - 2] == '\r' && small[n - 1] == '\n' && small[n] == '\0');
    CHECK(strncmp(small, "554 5.7.1 ", 10) == 0);
    CHECK_STR(postscreen_reason_name(POSTSCREEN_REASON_NEW), "PASS NEW");
    CHECK_STR(postscreen_reason_name(POSTSCREEN_REASON_PASS_OLD), "PASS OLD");
    CHECK_STR(postscreen_reason_name(POSTSCREEN_REASON_DENYLISTED), "DENYLISTED");
}

int
main(void)
{
    test_addresses();
    test_access_parse();
    test_access_match();
    test_access_load();
    test_decide();
    test_replies();
    UNIT_DONE();
}
