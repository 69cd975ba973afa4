/*
 * tests/unit/test_dkim_dns.h - a struct dns_source answered from a fixed
 * table, for the DKIM unit tests and tests/tools/dkim_tool: each entry is
 * a name with one TXT record, or a status (NXDOMAIN, TEMPFAIL...), or
 * "pending" (the lookup says -EINPROGRESS until the test marks it
 * answered). Lookups are counted so a test can see what a rerun asked.
 */
#ifndef TOASTER_TESTS_UNIT_TEST_DKIM_DNS_H
#define TOASTER_TESTS_UNIT_TEST_DKIM_DNS_H

#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>

#include "core/dns_answer.h"

#define TEST_DNS_ENTRIES_MAX 16

struct test_dns_entry {
    const char *name;
    const char *text; /* TXT record, or NULL with status != OK */
    size_t text_len;
    enum dns_status status;
    bool is_pending;
    struct dns_record record;
    struct dns_answer answer;
};

struct test_dns {
    size_t entry_count;
    struct test_dns_entry entries[TEST_DNS_ENTRIES_MAX];
    unsigned lookup_count;
};

static inline struct test_dns_entry *
test_dns_add(struct test_dns *dns, const char *name, const char *text, size_t text_len,
             enum dns_status status)
{
    if (dns->entry_count == TEST_DNS_ENTRIES_MAX) {
        return NULL;
    }
    struct test_dns_entry *e = &dns->entries[dns->entry_count++];
    memset(e, 0, sizeof(*e));
    e->name = name;
    e->text = text;
    e->text_len = text_len;
    e->status = status;
    return e;
}

static inline int
test_dns_lookup(void *ctx, enum dns_type type, const char *name,
                const struct dns_answer **answer_out)
{
    struct test_dns *dns = ctx;
    dns->lookup_count++;
    if (name[0] == '\0' || strlen(name) > 253 || strstr(name, "..") != NULL) {
        return -EINVAL;
    }
    for (size_t i = 0; i < dns->entry_count; i++) {
        struct test_dns_entry *e = &dns->entries[i];
        if (strcasecmp(e->name, name) != 0) {
            continue;
        }
        if (e->is_pending) {
            return -EINPROGRESS;
        }
        e->answer.type = type;
        e->answer.status = e->status;
        e->answer.count = 0;
        if (e->status == DNS_STATUS_OK && type == DNS_TYPE_TXT) {
            e->record.txt.text = e->text;
            e->record.txt.len = (uint32_t)e->text_len;
            e->answer.count = 1;
            e->answer.records = &e->record;
        } else if (e->status == DNS_STATUS_OK) {
            e->answer.status = DNS_STATUS_NODATA;
        }
        *answer_out = &e->answer;
        return 0;
    }
    static struct dns_answer nxdomain = {.type = DNS_TYPE_TXT, .status = DNS_STATUS_NXDOMAIN};
    *answer_out = &nxdomain;
    return 0;
}

static inline struct dns_source
test_dns_source(struct test_dns *dns)
{
    return (struct dns_source){.lookup = test_dns_lookup, .ctx = dns};
}

#endif
