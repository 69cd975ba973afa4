/*
 * tests/fuzz/fuzz_transport_file.c - libFuzzer harness for the
 * transport_file parser and the next-hop syntax (store/route), which read
 * what an operator wrote.
 *
 * The input is a transport file. Properties: the parse, from an exact-size
 * heap copy (so ASan sees any read past it), ends in 0, -EINVAL or -E2BIG
 * (or -ENOMEM); an error leaves no table and says "transport_file: line N"
 * with N no more than the lines of the input; a success holds no more
 * entries than lines, and every entry's domain (or a subdomain, for a
 * ".domain" entry) is found again with a host and a port; parsing twice
 * gives the same. Each line is also fed to route_nexthop_parse alone.
 *
 * Build: clang -g -O1 -fsanitize=fuzzer,address,undefined -I. \
 *   store/route.c core/assertions.c tests/fuzz/fuzz_transport_file.c
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/route.h"
#include "tests/fuzz/fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 64 * 1024) {
        return 0; /* the bounds are unit-tested; keep runs fast */
    }
    char *copy = malloc(size > 0 ? size : 1);
    FUZZ_CHECK(copy != NULL);
    memcpy(copy, data, size);
    size_t line_count = 1;
    for (size_t i = 0; i < size; i++) {
        line_count += copy[i] == '\n';
    }
    struct route_table *table = NULL;
    char error[256] = "";
    int rc = route_table_create(NULL, NULL, copy, size, &table, error, sizeof(error));
    FUZZ_CHECK(rc == 0 || rc == -EINVAL || rc == -E2BIG || rc == -ENOMEM);
    if (rc != 0) {
        FUZZ_CHECK(table == NULL);
        if (rc != -ENOMEM) {
            unsigned line = 0;
            FUZZ_CHECK(sscanf(error, "transport_file: line %u:", &line) == 1);
            FUZZ_CHECK(line >= 1 && line <= line_count);
        }
    } else {
        FUZZ_CHECK(table != NULL);
        FUZZ_CHECK(route_table_transport_count(table) <= line_count);
        FUZZ_CHECK(route_table_transport_count(table) <= ROUTE_TRANSPORT_ENTRIES_MAX);
    }

    /* Every line: its first field found again, its second parsed alone. */
    size_t pos = 0;
    while (pos < size) {
        const char *start = copy + pos;
        const char *lf = memchr(start, '\n', size - pos);
        size_t len = lf != NULL ? (size_t)(lf - start) : size - pos;
        pos += len + (lf != NULL);
        size_t i = 0;
        while (i < len && (start[i] == ' ' || start[i] == '\t')) {
            i++;
        }
        size_t key_start = i;
        while (i < len && start[i] != ' ' && start[i] != '\t' && start[i] != '\r') {
            i++;
        }
        size_t key_len = i - key_start;
        while (i < len && (start[i] == ' ' || start[i] == '\t')) {
            i++;
        }
        size_t value_start = i;
        while (i < len && start[i] != ' ' && start[i] != '\t' && start[i] != '\r') {
            i++;
        }
        struct route_nexthop hop;
        char why[128];
        if (route_nexthop_parse(start + value_start, i - value_start, &hop, why, sizeof(why)) ==
            0) {
            FUZZ_CHECK(hop.host[0] != '\0');
            FUZZ_CHECK(hop.port != 0);
            FUZZ_CHECK(strlen(hop.host) <= ROUTE_NAME_BYTES_MAX);
        }
        if (table == NULL || key_len == 0 || key_len > 250 || start[key_start] == '#' ||
            i - value_start == 0) {
            continue;
        }
        char name[256];
        size_t used = 0;
        if (start[key_start] == '.') {
            name[used++] = 'x';
        }
        memcpy(name + used, start + key_start, key_len);
        name[used + key_len] = '\0';
        if (memchr(name, '\0', used + key_len) != name + used + key_len) {
            continue;
        }
        struct route_nexthop found;
        FUZZ_CHECK(route_table_find(table, name, &found));
        FUZZ_CHECK(found.host[0] != '\0' && found.port != 0);
    }

    struct route_table *again = NULL;
    int rc_again = route_table_create(NULL, NULL, copy, size, &again, error, sizeof(error));
    FUZZ_CHECK(rc_again == rc);
    if (rc == 0) {
        FUZZ_CHECK(route_table_transport_count(again) == route_table_transport_count(table));
    }
    route_table_destroy(&again);
    route_table_destroy(&table);
    free(copy);
    return 0;
}
