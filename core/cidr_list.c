/*
 * core/cidr_list.c - parse a list of networks and match addresses
 * against it (core/cidr_list.h). Pure: no I/O, no allocation; any thread.
 * Limits: CIDR_LIST_MAX networks, 64 bytes per item.
 */
#include "core/cidr_list.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CIDR_ITEM_BYTES 64

static bool
parse_address(const char *text, uint8_t out[16], bool *is_v6_out)
{
    memset(out, 0, 16);
    if (strncmp(text, "IPv6:", 5) == 0) {
        text += 5;
    }
    struct in_addr v4;
    if (inet_pton(AF_INET, text, &v4) == 1) {
        memcpy(out, &v4, 4);
        *is_v6_out = false;
        return true;
    }
    struct in6_addr v6;
    if (inet_pton(AF_INET6, text, &v6) != 1) {
        return false;
    }
    static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
    if (memcmp(v6.s6_addr, mapped, sizeof(mapped)) == 0) {
        memcpy(out, v6.s6_addr + 12, 4);
        *is_v6_out = false;
        return true;
    }
    memcpy(out, v6.s6_addr, 16);
    *is_v6_out = true;
    return true;
}

static bool
prefix_matches(const uint8_t *a, const uint8_t *b, unsigned bits)
{
    unsigned whole = bits / 8; /* rounds down: the rest is a partial byte */
    if (memcmp(a, b, whole) != 0) {
        return false;
    }
    unsigned rest = bits % 8;
    if (rest == 0) {
        return true;
    }
    uint8_t mask = (uint8_t)(0xffu << (8 - rest));
    return (a[whole] & mask) == (b[whole] & mask);
}

static int
parse_item(const char *item, struct cidr_net *net, char *err, size_t err_bytes)
{
    char text[CIDR_ITEM_BYTES];
    size_t len = strlen(item);
    if (len >= sizeof(text)) {
        (void)snprintf(err, err_bytes, "network too long: %.32s...", item);
        return -EINVAL;
    }
    memcpy(text, item, len + 1);
    char *slash = strchr(text, '/');
    long bits = -1;
    if (slash != NULL) {
        *slash = '\0';
        char *end = NULL;
        const char *digits = slash + 1;
        if (*digits < '0' || *digits > '9') {
            (void)snprintf(err, err_bytes, "bad prefix length in \"%s\"", item);
            return -EINVAL;
        }
        bits = strtol(digits, &end, 10);
        if (*end != '\0' || bits > 128) {
            (void)snprintf(err, err_bytes, "bad prefix length in \"%s\"", item);
            return -EINVAL;
        }
    }
    char *address = text;
    size_t address_len = strlen(address);
    if (address_len >= 2 && address[0] == '[' && address[address_len - 1] == ']') {
        address[address_len - 1] = '\0';
        address++;
    }
    if (!parse_address(address, net->address, &net->is_v6)) {
        (void)snprintf(err, err_bytes, "not an IP address: \"%s\"", item);
        return -EINVAL;
    }
    long width = net->is_v6 ? 128 : 32;
    if (bits < 0) {
        bits = width;
    } else if (bits > width) {
        (void)snprintf(err, err_bytes, "prefix longer than the address in \"%s\"", item);
        return -EINVAL;
    }
    net->prefix_bits = (uint8_t)bits;
    /* Host bits under the prefix usually mean a typing mistake. */
    uint8_t host[16];
    memcpy(host, net->address, 16);
    for (long b = bits; b < width; b++) {
        host[b / 8] &= (uint8_t) ~(0x80u >> (b % 8));
    }
    if (memcmp(host, net->address, 16) != 0) {
        (void)snprintf(err, err_bytes, "host bits set in \"%s\"", item);
        return -EINVAL;
    }
    return 0;
}

int
cidr_list_parse(const char *text, struct cidr_list *list_out, char *err, size_t err_bytes)
{
    memset(list_out, 0, sizeof(*list_out));
    const char *p = text;
    /* Each turn consumes at least one byte. */
    while (*p != '\0') {
        while (*p == ',' || *p == ' ' || *p == '\t') {
            p++;
        }
        if (*p == '\0') {
            break;
        }
        size_t len = strcspn(p, ", \t");
        char item[CIDR_ITEM_BYTES];
        if (len >= sizeof(item)) {
            (void)snprintf(err, err_bytes, "network too long: %.32s...", p);
            return -EINVAL;
        }
        memcpy(item, p, len);
        item[len] = '\0';
        p += len;
        if (list_out->count == CIDR_LIST_MAX) {
            (void)snprintf(err, err_bytes, "more than %d networks", CIDR_LIST_MAX);
            return -E2BIG;
        }
        int rc = parse_item(item, &list_out->nets[list_out->count], err, err_bytes);
        if (rc != 0) {
            return rc;
        }
        list_out->count++;
    }
    return 0;
}

bool
cidr_list_contains_text(const struct cidr_list *list, const char *address)
{
    if (list->count == 0) {
        return false;
    }
    uint8_t bytes[16];
    bool is_v6;
    if (strlen(address) >= CIDR_ITEM_BYTES || !parse_address(address, bytes, &is_v6)) {
        return false;
    }
    for (size_t i = 0; i < list->count; i++) {
        const struct cidr_net *net = &list->nets[i];
        if (net->is_v6 == is_v6 && prefix_matches(net->address, bytes, net->prefix_bits)) {
            return true;
        }
    }
    return false;
}
