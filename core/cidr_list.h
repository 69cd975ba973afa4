/*
 * core/cidr_list.h - a list of networks ("192.0.2.0/24, [2001:db8::]/32,
 * 127.0.0.1") and the test whether an address is in it: `mynetworks`, the
 * clients that may relay without authenticating.
 *
 * Parsed once at start-up into a fixed array (CIDR_LIST_MAX networks);
 * matching is pure memory work, safe on any thread. An IPv4-mapped IPv6
 * address (::ffff:192.0.2.1) matches as the IPv4 address it carries.
 */
#ifndef TOASTER_CORE_CIDR_LIST_H
#define TOASTER_CORE_CIDR_LIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CIDR_LIST_MAX 64

struct cidr_net {
    uint8_t  address[16]; /* IPv4 in the first 4 bytes */
    uint8_t  prefix_bits;
    bool     is_v6;
};

struct cidr_list {
    struct cidr_net nets[CIDR_LIST_MAX];
    size_t          count;
};

/* Parse a comma- or blank-separated list: "a.b.c.d[/n]", "v6[/n]" or
 * "[v6][/n]". Host bits set under the prefix are an error, as Postfix
 * warns of them. Returns 0, or -EINVAL with the reason in err (naming the
 * bad item), or -E2BIG past CIDR_LIST_MAX. "" gives an empty list. */
int cidr_list_parse(const char *text, struct cidr_list *list_out, char *err, size_t err_bytes);

/* Whether an address, as text ("192.0.2.1", "2001:db8::1", or the
 * reactor's "IPv6:2001:db8::1"), is in the list. False for text that is
 * no address. */
bool cidr_list_contains_text(const struct cidr_list *list, const char *address);

#endif
