/*
 * tests/unit/test_ip_limit.c - the shared per-IP connection counter: the
 * cap at max-1, max and max+1, IPv4 and IPv6 kept apart, and counts that
 * survive heavy insert/delete churn (backward-shift deletion) exactly.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <string.h>

#include "core/ip_limit.h"
#include "tests/unit/unit.h"

static struct sockaddr_storage
v4(uint32_t host)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
    sin->sin_family = AF_INET;
    sin->sin_addr.s_addr = htonl(host);
    return ss;
}

static struct sockaddr_storage
v6(const char *text)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
    sin6->sin6_family = AF_INET6;
    (void)inet_pton(AF_INET6, text, &sin6->sin6_addr);
    return ss;
}

int
main(void)
{
    CHECK(ip_limit_init(1000, 3) == 0);
    struct sockaddr_storage a = v4(0x7f000001);
    struct sockaddr_storage b = v4(0x7f000002);
    struct sockaddr_storage c = v6("::1");
    CHECK(ip_limit_acquire(&a));
    CHECK(ip_limit_acquire(&a));
    CHECK(ip_limit_acquire(&a));  /* max */
    CHECK(!ip_limit_acquire(&a)); /* max + 1 */
    CHECK(ip_limit_acquire(&b));
    CHECK(ip_limit_acquire(&c));
    ip_limit_release(&a);
    CHECK(ip_limit_acquire(&a)); /* back to max */
    CHECK(!ip_limit_acquire(&a));
    ip_limit_release(&a);
    ip_limit_release(&a);
    ip_limit_release(&a);
    ip_limit_release(&b);
    ip_limit_release(&c);

    /* Churn: many addresses colliding in a small table; every count stays
     * exact while neighbours come and go. */
    for (int round = 0; round < 50; round++) {
        bool is_exact = true;
        for (uint32_t i = 0; i < 900; i++) {
            struct sockaddr_storage x = v4(0x0a000000 + i * 7919u + (uint32_t)round);
            is_exact = is_exact && ip_limit_acquire(&x);
        }
        for (uint32_t i = 0; i < 900; i += 2) {
            struct sockaddr_storage x = v4(0x0a000000 + i * 7919u + (uint32_t)round);
            ip_limit_release(&x);
        }
        for (uint32_t i = 1; i < 900; i += 2) {
            struct sockaddr_storage x = v4(0x0a000000 + i * 7919u + (uint32_t)round);
            /* The odd ones hold 1: two more reach the cap of 3, a third fails. */
            is_exact = is_exact && ip_limit_acquire(&x) && ip_limit_acquire(&x);
            is_exact = is_exact && !ip_limit_acquire(&x);
            ip_limit_release(&x);
            ip_limit_release(&x);
            ip_limit_release(&x);
        }
        CHECK(is_exact);
    }
    ip_limit_destroy();
    UNIT_DONE();
}
