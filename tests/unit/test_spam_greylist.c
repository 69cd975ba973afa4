/*
 * tests/unit/test_spam_greylist.c - greylisting and rate limits over the
 * embedded store with one injected clock (the store's TTLs and the
 * greylist's "now" move together): the greylist timeline (first 451, an
 * early retry 451 with the remaining wait, a retry after the delay passes,
 * later messages pass at once, a retry after the window starts over), the
 * /24 and /64 grouping, and rate limits at count and count + 1 per
 * window, with their parser.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "filters/spam_greylist.h"
#include "filters/spam_ratelimit.h"
#include "tests/unit/unit.h"

int main(void);

static uint64_t now_s = 1000000;

static uint64_t
clock_ms(void *arg)
{
    (void)arg;
    return now_s * 1000;
}

static struct spam_client
v4(const char *text)
{
    struct spam_client c = { .family = AF_INET };
    CHECK(inet_pton(AF_INET, text, &c.addr4) == 1);
    return c;
}

static struct spam_client
v6(const char *text)
{
    struct spam_client c = { .family = AF_INET6 };
    CHECK(inet_pton(AF_INET6, text, &c.addr6) == 1);
    return c;
}

static int
grey(struct kv *kv, const struct spam_client *c, const char *from, const char *to, uint32_t *wait)
{
    const struct spam_greylist_config cfg = {
        .delay_s = 300,
        .retry_window_s = 4 * 3600,
        .pass_ttl_s = 35 * 24 * 3600,
    };
    return spam_greylist_check(kv, &cfg, c, from, to, now_s, wait);
}

static void
test_timeline(void)
{
    struct kv *kv = NULL;
    CHECK(kv_embedded_create(1024, clock_ms, NULL, &kv) == 0);
    struct spam_client c = v4("192.0.2.10");
    uint32_t wait = 0;
    CHECK(grey(kv, &c, "a@sender.test", "b@rcpt.test", &wait) == 1);
    CHECK(wait == 300);
    now_s += 100; /* early retry */
    CHECK(grey(kv, &c, "a@sender.test", "b@rcpt.test", &wait) == 1);
    CHECK(wait == 200);
    now_s += 199; /* one second early */
    CHECK(grey(kv, &c, "a@sender.test", "b@rcpt.test", &wait) == 1);
    CHECK(wait == 1);
    now_s += 1; /* exactly the delay */
    CHECK(grey(kv, &c, "a@sender.test", "b@rcpt.test", &wait) == 0);
    now_s += 10 * 24 * 3600; /* later: at once, and the case of names does not matter */
    CHECK(grey(kv, &c, "A@Sender.TEST", "b@rcpt.test", &wait) == 0);
    /* Another host of the same /24 is the same sender farm. */
    struct spam_client c2 = v4("192.0.2.200");
    CHECK(grey(kv, &c2, "a@sender.test", "b@rcpt.test", &wait) == 0);
    /* Another /24, sender or recipient is a new triplet. */
    struct spam_client c3 = v4("192.0.3.10");
    CHECK(grey(kv, &c3, "a@sender.test", "b@rcpt.test", &wait) == 1);
    CHECK(grey(kv, &c, "other@sender.test", "b@rcpt.test", &wait) == 1);
    CHECK(grey(kv, &c, "a@sender.test", "other@rcpt.test", &wait) == 1);
    CHECK(grey(kv, &c, "", "b@rcpt.test", &wait) == 1); /* null sender */

    /* A retry after the window is a first sight again. */
    struct spam_client late = v4("198.51.100.1");
    CHECK(grey(kv, &late, "x@s.test", "y@r.test", &wait) == 1);
    now_s += 4 * 3600 + 300 + 1;
    CHECK(grey(kv, &late, "x@s.test", "y@r.test", &wait) == 1);
    CHECK(wait == 300);

    /* A good triplet is forgotten 35 days after its last message. */
    now_s += 35 * 24 * 3600 + 1;
    CHECK(grey(kv, &c, "a@sender.test", "b@rcpt.test", &wait) == 1);
    kv_destroy(&kv);
}

static void
test_ipv6(void)
{
    struct kv *kv = NULL;
    CHECK(kv_embedded_create(1024, clock_ms, NULL, &kv) == 0);
    struct spam_client a = v6("2001:db8:1:2::1");
    struct spam_client same64 = v6("2001:db8:1:2:ffff::9");
    struct spam_client other64 = v6("2001:db8:1:3::1");
    uint32_t wait = 0;
    CHECK(grey(kv, &a, "s@x.test", "r@y.test", &wait) == 1);
    now_s += 300;
    CHECK(grey(kv, &same64, "s@x.test", "r@y.test", &wait) == 0);
    CHECK(grey(kv, &other64, "s@x.test", "r@y.test", &wait) == 1);
    struct spam_client none = { .family = AF_UNSPEC };
    CHECK(grey(kv, &none, "s@x.test", "r@y.test", &wait) == -EINVAL);
    kv_destroy(&kv);
}

static void
test_rate_parse(void)
{
    struct spam_rate r;
    CHECK(spam_ratelimit_parse("100/1h", &r) == 0 && r.count == 100 && r.window_s == 3600);
    CHECK(spam_ratelimit_parse("5/30s", &r) == 0 && r.count == 5 && r.window_s == 30);
    CHECK(spam_ratelimit_parse("20/m", &r) == 0 && r.window_s == 60);
    CHECK(spam_ratelimit_parse("1/30d", &r) == 0 && r.window_s == 30 * 86400);
    CHECK(spam_ratelimit_parse("off", &r) == 0 && r.count == 0);
    CHECK(spam_ratelimit_parse("0", &r) == 0 && r.count == 0);
    CHECK(spam_ratelimit_parse("1/31d", &r) == -EINVAL);
    CHECK(spam_ratelimit_parse("100", &r) == -EINVAL);
    CHECK(spam_ratelimit_parse("100/1", &r) == -EINVAL);
    CHECK(spam_ratelimit_parse("100/1x", &r) == -EINVAL);
    CHECK(spam_ratelimit_parse("100/1hh", &r) == -EINVAL);
    CHECK(spam_ratelimit_parse("-1/1h", &r) == -EINVAL);
    CHECK(spam_ratelimit_parse("0/1h", &r) == -EINVAL);
    CHECK(spam_ratelimit_parse("/1h", &r) == -EINVAL);
    CHECK(spam_ratelimit_parse("100/0h", &r) == -EINVAL);
}

static void
test_rate_limits(void)
{
    struct kv *kv = NULL;
    CHECK(kv_embedded_create(1024, clock_ms, NULL, &kv) == 0);
    struct spam_rate r = { .count = 3, .window_s = 60 };
    bool over = true;
    for (int i = 0; i < 3; i++) {
        CHECK(spam_ratelimit_hit(kv, SPAM_RATE_SENDER, &r, "bulk@x.test", &over) == 0);
        CHECK(!over);
    }
    CHECK(spam_ratelimit_hit(kv, SPAM_RATE_SENDER, &r, "BULK@x.test", &over) == 0);
    CHECK(over); /* count + 1 */
    /* Other kinds and subjects count apart. */
    CHECK(spam_ratelimit_hit(kv, SPAM_RATE_RCPT, &r, "bulk@x.test", &over) == 0 && !over);
    CHECK(spam_ratelimit_hit(kv, SPAM_RATE_SENDER, &r, "other@x.test", &over) == 0 && !over);
    /* The window ends, the count starts over. */
    now_s += 60;
    CHECK(spam_ratelimit_hit(kv, SPAM_RATE_SENDER, &r, "bulk@x.test", &over) == 0 && !over);
    /* Off: nothing counted. */
    struct spam_rate off = { 0 };
    size_t before = kv_count(kv);
    CHECK(spam_ratelimit_hit(kv, SPAM_RATE_IP, &off, "192.0.2.1", &over) == 0 && !over);
    CHECK(kv_count(kv) == before);
    kv_destroy(&kv);
}

static void
test_client_text(void)
{
    struct spam_client c;
    CHECK(spam_client_from_text("192.0.2.1", &c) == 0 && c.family == AF_INET);
    CHECK(c.addr4.s_addr == htonl(0xc0000201));
    CHECK(spam_client_from_text("2001:db8::1", &c) == 0 && c.family == AF_INET6);
    CHECK(c.addr6.s6_addr[0] == 0x20 && c.addr6.s6_addr[15] == 1);
    CHECK(spam_client_from_text("::ffff:198.51.100.7", &c) == 0 && c.family == AF_INET);
    CHECK(c.addr4.s_addr == htonl(0xc6336407));
    CHECK(spam_client_from_text("", &c) == -EINVAL && c.family == AF_UNSPEC);
    CHECK(spam_client_from_text("192.0.2.1:25", &c) == -EINVAL);
    CHECK(spam_client_from_text("unix", &c) == -EINVAL);
}

int
main(void)
{
    test_client_text();
    test_timeline();
    test_ipv6();
    test_rate_parse();
    test_rate_limits();
    UNIT_DONE();
}
