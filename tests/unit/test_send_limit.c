/*
 * tests/unit/test_send_limit.c - the per-user messages-per-hour counter
 * with a clock the test moves: the limit at max - 1, max and max + 1,
 * users counted apart, the window sliding in five-minute steps, no limit
 * when 0, and a full set giving way to new users without growing.
 */
#include <stdio.h>

#include "core/send_limit.h"
#include "tests/unit/unit.h"

static void
test_limit(void)
{
    struct send_limit *limit = NULL;
    CHECK(send_limit_create(3, &limit) == 0);
    uint64_t t = 1000000;
    for (int i = 0; i < 2; i++) {
        CHECK(send_limit_allows(limit, "alice@example.com", t));
        send_limit_count(limit, "alice@example.com", t);
    }
    CHECK(send_limit_sent(limit, "alice@example.com", t) == 2);
    CHECK(send_limit_allows(limit, "alice@example.com", t)); /* max - 1 sent */
    send_limit_count(limit, "alice@example.com", t + 400);
    CHECK(!send_limit_allows(limit, "alice@example.com", t + 400)); /* max sent */
    send_limit_count(limit, "alice@example.com", t + 400); /* counted anyway */
    CHECK(send_limit_sent(limit, "alice@example.com", t + 400) == 4);
    CHECK(send_limit_allows(limit, "bob@example.com", t + 400));
    /* The first two leave the window an hour (twelve buckets) later. */
    CHECK(!send_limit_allows(limit, "alice@example.com", t + 3599 - (t % 300)));
    uint64_t later = (t / 300 + SEND_LIMIT_BUCKETS) * 300;
    CHECK(send_limit_sent(limit, "alice@example.com", later) == 2);
    CHECK(send_limit_allows(limit, "alice@example.com", later));
    CHECK(send_limit_sent(limit, "alice@example.com", later + 3600) == 0);
    send_limit_destroy(&limit);
    CHECK(limit == NULL);
}

static void
test_unlimited(void)
{
    struct send_limit *limit = NULL;
    CHECK(send_limit_create(0, &limit) == 0);
    for (int i = 0; i < 1000; i++) {
        send_limit_count(limit, "alice@example.com", 5);
    }
    CHECK(send_limit_allows(limit, "alice@example.com", 5));
    CHECK(send_limit_sent(limit, "alice@example.com", 5) == 0);
    send_limit_destroy(&limit);
}

static void
test_bounded(void)
{
    struct send_limit *limit = NULL;
    CHECK(send_limit_create(1, &limit) == 0);
    char user[64];
    /* Far more users than slots: the table never grows, recent ones stay. */
    int users = 4 * SEND_LIMIT_SETS * SEND_LIMIT_WAYS;
    for (int i = 0; i < users; i++) {
        (void)snprintf(user, sizeof(user), "user%d@example.com", i);
        send_limit_count(limit, user, 100 + (uint64_t)i / 64);
    }
    uint64_t end = 100 + (uint64_t)users / 64;
    CHECK(send_limit_sent(limit, user, end) == 1);
    CHECK(!send_limit_allows(limit, user, end));
    send_limit_destroy(&limit);
}

int
main(void)
{
    test_limit();
    test_unlimited();
    test_bounded();
    UNIT_DONE();
}
