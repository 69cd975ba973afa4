/*
 * tests/unit/test_login_delay.c - the failed-login delay: doubling per
 * failure of an address or a user, the cap, forgetting after a quiet
 * period, a success clearing the pair, and a table that stays bounded
 * under many addresses.
 */
#include <stdio.h>

#include "core/login_delay.h"
#include "tests/unit/unit.h"

int main(void);

int
main(void)
{
    uint64_t t = 1000;
    CHECK(login_delay_failed("192.0.2.1", "alice@example.com", t) == 500);
    CHECK(login_delay_failed("192.0.2.1", "alice@example.com", t) == 1000);
    CHECK(login_delay_failed("192.0.2.1", "bob@example.com", t) == 2000); /* the address counts */
    CHECK(login_delay_failed("192.0.2.9", "alice@example.com", t) == 2000); /* the user counts */
    uint32_t last = 0;
    for (int i = 0; i < 20; i++) {
        last = login_delay_failed("192.0.2.1", "alice@example.com", t);
    }
    CHECK(last == LOGIN_DELAY_MAX_MS);
    /* Quiet for longer than the forget time: back to the first step. */
    t += LOGIN_DELAY_FORGET_S + 1;
    CHECK(login_delay_failed("192.0.2.1", "alice@example.com", t) == 500);
    /* A success clears both. */
    CHECK(login_delay_failed("192.0.2.1", "alice@example.com", t) == 1000);
    login_delay_succeeded("192.0.2.1", "alice@example.com");
    CHECK(login_delay_failed("192.0.2.1", "alice@example.com", t) == 500);
    /* Many addresses: the table reuses its oldest slots, never grows. */
    char address[64];
    for (int i = 0; i < 100000; i++) {
        snprintf(address, sizeof(address), "198.51.%d.%d", i / 256 % 256, i % 256);
        (void)login_delay_failed(address, "", t + (uint64_t)i);
    }
    snprintf(address, sizeof(address), "203.0.113.7");
    CHECK(login_delay_failed(address, "", t + 200000) == 500);
    CHECK(login_delay_failed(address, "", t + 200000) == 1000);
    UNIT_DONE();
}
