/*
 * tests/unit/test_cidr_list.c - mynetworks lists: IPv4 and IPv6 networks
 * with and without brackets and prefixes, matches at the edges of a
 * prefix, IPv4-mapped addresses, the reactor's "IPv6:" form, and the
 * refusals (bad address, prefix too long, host bits, too many).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "core/cidr_list.h"
#include "tests/unit/unit.h"

static void
test_match(void)
{
    struct cidr_list list;
    char err[128];
    CHECK(cidr_list_parse("127.0.0.0/8, [::1]/128 192.0.2.128/25,2001:db8::/32,10.1.2.3",
                          &list, err, sizeof(err)) == 0);
    CHECK(list.count == 5);
    CHECK(cidr_list_contains_text(&list, "127.0.0.1"));
    CHECK(cidr_list_contains_text(&list, "127.255.255.255"));
    CHECK(!cidr_list_contains_text(&list, "128.0.0.1"));
    CHECK(cidr_list_contains_text(&list, "IPv6:::1"));
    CHECK(cidr_list_contains_text(&list, "::ffff:127.0.0.1"));
    CHECK(cidr_list_contains_text(&list, "192.0.2.128"));
    CHECK(cidr_list_contains_text(&list, "192.0.2.255"));
    CHECK(!cidr_list_contains_text(&list, "192.0.2.127"));
    CHECK(cidr_list_contains_text(&list, "IPv6:2001:db8:ffff::1"));
    CHECK(!cidr_list_contains_text(&list, "2001:db9::1"));
    CHECK(cidr_list_contains_text(&list, "10.1.2.3"));
    CHECK(!cidr_list_contains_text(&list, "10.1.2.4"));
    CHECK(!cidr_list_contains_text(&list, "not an address"));
    CHECK(cidr_list_parse("", &list, err, sizeof(err)) == 0);
    CHECK(list.count == 0);
    CHECK(!cidr_list_contains_text(&list, "127.0.0.1"));
    CHECK(cidr_list_parse("0.0.0.0/0", &list, err, sizeof(err)) == 0);
    CHECK(cidr_list_contains_text(&list, "203.0.113.9"));
    CHECK(!cidr_list_contains_text(&list, "2001:db8::1"));
}

static void
test_refusals(void)
{
    struct cidr_list list;
    char err[128];
    CHECK(cidr_list_parse("127.0.0.1/33", &list, err, sizeof(err)) == -EINVAL);
    CHECK(strstr(err, "127.0.0.1/33") != NULL);
    CHECK(cidr_list_parse("192.0.2.1/24", &list, err, sizeof(err)) == -EINVAL);
    CHECK(strstr(err, "host bits") != NULL);
    CHECK(cidr_list_parse("example.com", &list, err, sizeof(err)) == -EINVAL);
    CHECK(cidr_list_parse("10.0.0.0/", &list, err, sizeof(err)) == -EINVAL);
    CHECK(cidr_list_parse("10.0.0.0/x", &list, err, sizeof(err)) == -EINVAL);
    char many[CIDR_LIST_MAX * 16 + 32];
    size_t n = 0;
    for (int i = 0; i <= CIDR_LIST_MAX; i++) {
        n += (size_t)snprintf(many + n, sizeof(many) - n, "10.0.%d.%d,", i / 250, i % 250);
    }
    CHECK(cidr_list_parse(many, &list, err, sizeof(err)) == -E2BIG);
}

int
main(void)
{
    test_match();
    test_refusals();
    UNIT_DONE();
}
