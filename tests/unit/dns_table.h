/*
 * tests/unit/dns_table.h - a struct dns_source answering from a fixed
 * table, for the SPF and DMARC tests: one row per record (or per error
 * status), rows of the same type and name make one answer. A name with no
 * row of the asked type answers NODATA if it has rows of another type,
 * NXDOMAIN otherwise. In deferred mode the first question for each
 * (type, name) answers -EINPROGRESS, as the real resolver does while a
 * query is out, so reruns can be tested.
 */
#ifndef TOASTER_TESTS_UNIT_DNS_TABLE_H
#define TOASTER_TESTS_UNIT_DNS_TABLE_H

#include <stdbool.h>
#include <stddef.h>

#include "core/dns_answer.h"

struct dns_table_row {
    enum dns_type type;
    const char *name;
    enum dns_status status; /* DNS_STATUS_OK for a record row */
    const char *data;       /* A/AAAA address, "pref host" for MX, TXT text, PTR name */
};

struct dns_table;

/* Returns NULL only when out of memory or a row's data does not parse
 * (then it prints the row). */
struct dns_table *dns_table_create(const struct dns_table_row *rows, size_t count);
void dns_table_destroy(struct dns_table **table);

void dns_table_set_deferred(struct dns_table *table, bool is_deferred);
/* Forget which questions were asked (deferred mode asks again). */
void dns_table_forget(struct dns_table *table);

struct dns_source dns_table_source(struct dns_table *table);

/* Questions answered with 0 or -EINPROGRESS since create/forget. */
size_t dns_table_question_count(const struct dns_table *table);
/* Distinct (type, name) pairs asked. */
size_t dns_table_distinct_count(const struct dns_table *table);

#endif
