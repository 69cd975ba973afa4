/*
 * tests/unit/dns_table.c - the table-backed struct dns_source of
 * dns_table.h. Test code: it allocates freely and never frees answers
 * before dns_table_destroy(), like a source whose answers stay valid.
 */
#include "tests/unit/dns_table.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct table_answer {
    struct table_answer *next;
    char *name; /* lower case, no final dot */
    struct dns_answer answer;
    struct dns_record *records;
    uint32_t capacity;
    bool is_synthetic; /* a negative answer made for a question, not a row */
};

struct asked {
    struct asked *next;
    enum dns_type type;
    char *name;
};

struct dns_table {
    struct table_answer *answers;
    struct asked *asked;
    bool is_deferred;
    size_t question_count;
    size_t distinct_count;
};

static char *
normalize(const char *name)
{
    size_t n = strlen(name);
    if (n > 0 && name[n - 1] == '.') {
        n--;
    }
    char *s = malloc(n + 1);
    if (s == NULL) {
        abort();
    }
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        s[i] = (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
    }
    s[n] = '\0';
    return s;
}

static struct table_answer *
find(struct dns_table *table, enum dns_type type, const char *name, bool any_type)
{
    for (struct table_answer *a = table->answers; a != NULL; a = a->next) {
        if (any_type && a->is_synthetic) {
            continue; /* only rows make a name exist */
        }
        if ((any_type || a->answer.type == type) && strcmp(a->name, name) == 0) {
            return a;
        }
    }
    return NULL;
}

static struct table_answer *
add_answer(struct dns_table *table, enum dns_type type, char *name, enum dns_status status)
{
    struct table_answer *a = calloc(1, sizeof(*a));
    if (a == NULL) {
        abort();
    }
    a->name = name;
    a->answer.type = type;
    a->answer.status = status;
    a->answer.ttl = 300;
    a->next = table->answers;
    table->answers = a;
    return a;
}

static char *
dup_string(const char *s)
{
    char *d = strdup(s);
    if (d == NULL) {
        abort();
    }
    return d;
}

static int
add_row(struct dns_table *table, const struct dns_table_row *row)
{
    char *name = normalize(row->name);
    struct table_answer *a = find(table, row->type, name, false);
    if (a == NULL) {
        a = add_answer(table, row->type, name, row->status);
    } else {
        free(name);
    }
    if (row->status != DNS_STATUS_OK || row->data == NULL) {
        a->answer.status = row->status;
        return 0;
    }
    if (a->answer.count == a->capacity) {
        a->capacity = a->capacity == 0 ? 4 : a->capacity * 2;
        a->records = realloc(a->records, a->capacity * sizeof(*a->records));
        if (a->records == NULL) {
            abort();
        }
    }
    struct dns_record *r = &a->records[a->answer.count];
    memset(r, 0, sizeof(*r));
    switch (row->type) {
    case DNS_TYPE_A:
        if (inet_pton(AF_INET, row->data, &r->a) != 1) {
            return -EINVAL;
        }
        break;
    case DNS_TYPE_AAAA:
        if (inet_pton(AF_INET6, row->data, &r->aaaa) != 1) {
            return -EINVAL;
        }
        break;
    case DNS_TYPE_MX: {
        unsigned pref = 0;
        char host[256] = "";
        if (sscanf(row->data, "%u %255s", &pref, host) < 1) {
            return -EINVAL;
        }
        r->mx.preference = (uint16_t)pref;
        r->mx.host = normalize(host);
        break;
    }
    case DNS_TYPE_PTR:
        r->ptr = normalize(row->data);
        break;
    case DNS_TYPE_TXT:
        r->txt.text = dup_string(row->data);
        r->txt.len = (uint32_t)strlen(row->data);
        break;
    default:
        return -EINVAL;
    }
    a->answer.count++;
    a->answer.records = a->records;
    return 0;
}

static bool
name_is_valid(const char *name)
{
    size_t n = strlen(name);
    if (n > 0 && name[n - 1] == '.') {
        n--;
    }
    if (n == 0 || n > 253) {
        return false;
    }
    size_t label = 0;
    for (size_t i = 0; i < n; i++) {
        if (name[i] == '.') {
            if (label == 0) {
                return false;
            }
            label = 0;
        } else if (++label > 63) {
            return false;
        }
    }
    return label > 0;
}

static int
table_lookup(void *ctx, enum dns_type type, const char *name, const struct dns_answer **answer_out)
{
    struct dns_table *table = ctx;
    if (!name_is_valid(name)) {
        return -EINVAL;
    }
    char *key = normalize(name);
    table->question_count++;
    bool was_asked = false;
    for (struct asked *q = table->asked; q != NULL; q = q->next) {
        if (q->type == type && strcmp(q->name, key) == 0) {
            was_asked = true;
            break;
        }
    }
    if (!was_asked) {
        struct asked *q = calloc(1, sizeof(*q));
        if (q == NULL) {
            abort();
        }
        q->type = type;
        q->name = dup_string(key);
        q->next = table->asked;
        table->asked = q;
        table->distinct_count++;
        if (table->is_deferred) {
            free(key);
            return -EINPROGRESS;
        }
    }
    struct table_answer *a = find(table, type, key, false);
    if (a == NULL) {
        /* Make the negative answer once, so it stays the same object. */
        enum dns_status status =
            find(table, type, key, true) != NULL ? DNS_STATUS_NODATA : DNS_STATUS_NXDOMAIN;
        a = add_answer(table, type, key, status);
        a->is_synthetic = true;
    } else {
        free(key);
    }
    *answer_out = &a->answer;
    return 0;
}

struct dns_table *
dns_table_create(const struct dns_table_row *rows, size_t count)
{
    struct dns_table *table = calloc(1, sizeof(*table));
    if (table == NULL) {
        return NULL;
    }
    for (size_t i = 0; i < count; i++) {
        if (add_row(table, &rows[i]) != 0) {
            fprintf(stderr, "dns_table: bad row %zu: %s\n", i, rows[i].data);
            dns_table_destroy(&table);
            return NULL;
        }
    }
    return table;
}

void
dns_table_forget(struct dns_table *table)
{
    while (table->asked != NULL) {
        struct asked *q = table->asked;
        table->asked = q->next;
        free(q->name);
        free(q);
    }
    table->question_count = 0;
    table->distinct_count = 0;
}

void
dns_table_destroy(struct dns_table **table)
{
    if (*table == NULL) {
        return;
    }
    dns_table_forget(*table);
    while ((*table)->answers != NULL) {
        struct table_answer *a = (*table)->answers;
        (*table)->answers = a->next;
        for (uint32_t i = 0; i < a->answer.count; i++) {
            if (a->answer.type == DNS_TYPE_MX) {
                free((char *)a->records[i].mx.host);
            } else if (a->answer.type == DNS_TYPE_PTR) {
                free((char *)a->records[i].ptr);
            } else if (a->answer.type == DNS_TYPE_TXT) {
                free((char *)a->records[i].txt.text);
            }
        }
        free(a->records);
        free(a->name);
        free(a);
    }
    free(*table);
    *table = NULL;
}

void
dns_table_set_deferred(struct dns_table *table, bool is_deferred)
{
    table->is_deferred = is_deferred;
}

struct dns_source
dns_table_source(struct dns_table *table)
{
    return (struct dns_source){.lookup = table_lookup, .ctx = table};
}

size_t
dns_table_question_count(const struct dns_table *table)
{
    return table->question_count;
}

size_t
dns_table_distinct_count(const struct dns_table *table)
{
    return table->distinct_count;
}
