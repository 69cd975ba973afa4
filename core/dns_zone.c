/*
 * core/dns_zone.c - the override file's reader and its lookups (see
 * dns_zone.h).
 *
 * Parsing reads the lines into a list of entries (name, type, TTL, one
 * record, its line number), sorts them by name and type, and builds one
 * immutable result per (name, type) plus the shared NODATA and NXDOMAIN
 * results per type. The names end up in a sorted array searched by
 * bisection, so a lookup is a few string compares and a reference count
 * increment. Pure apart from dns_zone_load's read; any thread.
 * Limits: DNS_ZONE_FILE_BYTES_MAX, DNS_ZONE_LINE_BYTES_MAX,
 * DNS_ZONE_RECORDS_MAX, 255 bytes per TXT string, DNS_ZONE_FIELDS_MAX
 * fields per line.
 */
#define _GNU_SOURCE
#include "core/dns_zone.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "core/ascii.h"
#include "core/assertions.h"

#define DNS_ZONE_TYPE_COUNT 6
#define DNS_ZONE_FIELDS_MAX 256
#define DNS_ZONE_TXT_STRING_BYTES_MAX 255
#define DNS_ZONE_TTL_MAX_S 0x7fffffffu
#define DNS_ZONE_KIND_NXDOMAIN (-1)

static const enum dns_type dns_zone_types[DNS_ZONE_TYPE_COUNT] = {
    DNS_TYPE_A, DNS_TYPE_PTR, DNS_TYPE_MX, DNS_TYPE_TXT, DNS_TYPE_AAAA, DNS_TYPE_TLSA,
};

/* One line of the file: a record of a type, or "name NXDOMAIN". */
struct zone_entry {
    char              name[DNS_NAME_BYTES_MAX + 1];
    int               kind; /* type index, or DNS_ZONE_KIND_NXDOMAIN */
    uint32_t          ttl;
    uint32_t          line;
    bool              is_secure; /* under "$SECURE yes" */
    struct dns_record record; /* strings and bytes malloc'd, freed after building */
};

struct zone_name {
    char               name[DNS_NAME_BYTES_MAX + 1];
    bool               is_nxdomain;
    struct dns_result *by_type[DNS_ZONE_TYPE_COUNT]; /* NULL: NODATA */
};

struct dns_zone {
    bool               is_unlisted_nxdomain;
    size_t             name_count;
    struct zone_name  *names; /* sorted by name */
    struct dns_result *nodata[DNS_ZONE_TYPE_COUNT];
    struct dns_result *nxdomain[DNS_ZONE_TYPE_COUNT];
};

/* A field of a line after quotes and escapes are undone. */
struct zone_field {
    const char *text;
    size_t      len;
    bool        is_quoted;
};

/* The parser's state across lines. */
struct zone_parser {
    struct zone_entry *entries;
    size_t             entry_count;
    size_t             entry_room;
    uint32_t           ttl_default;
    bool               is_unlisted_nxdomain;
    bool               is_secure; /* $SECURE: the records below are "authenticated" */
    char              *error;
    size_t             error_bytes;
};

static int
zone_type_index(enum dns_type type)
{
    for (int i = 0; i < DNS_ZONE_TYPE_COUNT; i++) {
        if (dns_zone_types[i] == type) {
            return i;
        }
    }
    return -1;
}

__attribute__((format(printf, 3, 4))) static int
zone_error(struct zone_parser *parser, uint32_t line, const char *fmt, ...)
{
    if (parser->error_bytes == 0) {
        return -EINVAL;
    }
    int n = snprintf(parser->error, parser->error_bytes, "line %u: ", line);
    if (n >= 0 && (size_t)n < parser->error_bytes) {
        va_list ap;
        va_start(ap, fmt);
        (void)vsnprintf(parser->error + n, parser->error_bytes - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return -EINVAL;
}

/* Split line (len bytes, NUL-free) into fields, decoding quoted strings
 * into out (at least len bytes). A ';' or '#' outside quotes starts a
 * comment. Returns the field count, or -EINVAL with the error set. */
static int
zone_split(struct zone_parser *parser, uint32_t line_number, const char *line, size_t len,
           char *out, struct zone_field *fields)
{
    size_t count = 0;
    size_t pos = 0;
    size_t out_len = 0;
    for (;;) {
        while (pos < len && (ascii_is_blank(line[pos]) || line[pos] == '\r')) {
            pos++;
        }
        if (pos == len || line[pos] == ';' || line[pos] == '#') {
            break;
        }
        if (count == DNS_ZONE_FIELDS_MAX) {
            return zone_error(parser, line_number, "more than %u fields", DNS_ZONE_FIELDS_MAX);
        }
        struct zone_field *field = &fields[count++];
        field->text = out + out_len;
        size_t start = out_len;
        if (line[pos] == '"') {
            field->is_quoted = true;
            pos++;
            for (;;) {
                if (pos == len) {
                    return zone_error(parser, line_number, "unterminated quoted string");
                }
                char c = line[pos];
                if (c == '"') {
                    pos++;
                    break;
                }
                if (c != '\\') {
                    out[out_len++] = c;
                    pos++;
                    continue;
                }
                /* \DDD is one byte by its decimal value; \X is X. */
                if (pos + 1 == len) {
                    return zone_error(parser, line_number, "backslash at the end of the line");
                }
                if (line[pos + 1] >= '0' && line[pos + 1] <= '9') {
                    if (pos + 3 >= len || line[pos + 2] < '0' || line[pos + 2] > '9' ||
                        line[pos + 3] < '0' || line[pos + 3] > '9') {
                        return zone_error(parser, line_number,
                                          "\\DDD needs three decimal digits");
                    }
                    unsigned value = (unsigned)(line[pos + 1] - '0') * 100 +
                                     (unsigned)(line[pos + 2] - '0') * 10 +
                                     (unsigned)(line[pos + 3] - '0');
                    if (value > 255) {
                        return zone_error(parser, line_number, "\\%.3s is not a byte",
                                          line + pos + 1);
                    }
                    out[out_len++] = (char)value;
                    pos += 4;
                } else {
                    out[out_len++] = line[pos + 1];
                    pos += 2;
                }
            }
            if (pos < len && !ascii_is_blank(line[pos]) && line[pos] != '\r' &&
                line[pos] != ';' && line[pos] != '#') {
                return zone_error(parser, line_number, "text right after a closing quote");
            }
        } else {
            field->is_quoted = false;
            while (pos < len && !ascii_is_blank(line[pos]) && line[pos] != '\r' &&
                   line[pos] != ';' && line[pos] != '#') {
                if (line[pos] == '"') {
                    return zone_error(parser, line_number, "a quote inside a word");
                }
                out[out_len++] = line[pos++];
            }
        }
        field->len = out_len - start;
        ASSERT(out_len <= len);
    }
    return (int)count;
}

/* A whole field as a decimal number no larger than max. */
static bool
field_number(const struct zone_field *field, uint32_t max, uint32_t *value_out)
{
    if (field->is_quoted || field->len == 0 || field->len > 10) {
        return false;
    }
    uint64_t value = 0;
    for (size_t i = 0; i < field->len; i++) {
        if (field->text[i] < '0' || field->text[i] > '9') {
            return false;
        }
        value = value * 10 + (uint64_t)(field->text[i] - '0');
    }
    if (value > max) {
        return false;
    }
    *value_out = (uint32_t)value;
    return true;
}

static bool
field_is(const struct zone_field *field, const char *word)
{
    return !field->is_quoted && field->len == strlen(word) &&
           strncasecmp(field->text, word, field->len) == 0;
}

/* A field as a normalized name into out; false if it is not a name. */
static bool
field_name(const struct zone_field *field, char *out)
{
    char copy[DNS_NAME_BYTES_MAX + 2];
    if (field->is_quoted || field->len >= sizeof(copy) ||
        memchr(field->text, '\0', field->len) != NULL) {
        return false;
    }
    memcpy(copy, field->text, field->len);
    copy[field->len] = '\0';
    return dns_name_normalize(copy, out) == 0;
}

static char *
dup_bytes(const char *bytes, size_t len)
{
    char *copy = malloc(len + 1);
    if (copy != NULL) {
        if (len > 0) {
            memcpy(copy, bytes, len);
        }
        copy[len] = '\0';
    }
    return copy;
}

static void
entry_free(struct zone_entry *entry)
{
    switch (entry->kind) {
    case 1: /* PTR */
        free((char *)entry->record.ptr);
        break;
    case 2: /* MX */
        free((char *)entry->record.mx.host);
        break;
    case 3: /* TXT */
        free((char *)entry->record.txt.text);
        break;
    case 5: /* TLSA */
        free((uint8_t *)entry->record.tlsa.data);
        break;
    default:
        break;
    }
    memset(&entry->record, 0, sizeof(entry->record));
}

/* Read the rdata fields (count of them) of a record of type into entry. */
static int
zone_rdata(struct zone_parser *parser, uint32_t line, enum dns_type type,
           const struct zone_field *fields, size_t count, struct zone_entry *entry)
{
    char text[DNS_NAME_BYTES_MAX + 2];
    char name[DNS_NAME_BYTES_MAX + 1];
    struct dns_record *record = &entry->record;
    switch (type) {
    case DNS_TYPE_A:
    case DNS_TYPE_AAAA:
        if (count != 1 || fields[0].is_quoted || fields[0].len >= sizeof(text)) {
            return zone_error(parser, line, "%s takes one address", dns_type_name(type));
        }
        memcpy(text, fields[0].text, fields[0].len);
        text[fields[0].len] = '\0';
        if (inet_pton(type == DNS_TYPE_A ? AF_INET : AF_INET6, text,
                      type == DNS_TYPE_A ? (void *)&record->a : (void *)&record->aaaa) != 1) {
            return zone_error(parser, line, "not an %s address: %s",
                              type == DNS_TYPE_A ? "IPv4" : "IPv6", text);
        }
        return 0;
    case DNS_TYPE_MX: {
        uint32_t preference = 0;
        if (count != 2 || !field_number(&fields[0], UINT16_MAX, &preference)) {
            return zone_error(parser, line, "MX takes a preference (0-65535) and a host");
        }
        record->mx.preference = (uint16_t)preference;
        if (field_is(&fields[1], ".")) {
            name[0] = '\0'; /* null MX */
        } else if (!field_name(&fields[1], name)) {
            return zone_error(parser, line, "not a host name: %.*s", (int)fields[1].len,
                              fields[1].text);
        }
        record->mx.host = dup_bytes(name, strlen(name));
        return record->mx.host != NULL ? 0 : -ENOMEM;
    }
    case DNS_TYPE_PTR:
        if (count != 1 || !field_name(&fields[0], name)) {
            return zone_error(parser, line, "PTR takes one host name");
        }
        record->ptr = dup_bytes(name, strlen(name));
        return record->ptr != NULL ? 0 : -ENOMEM;
    case DNS_TYPE_TXT: {
        if (count == 0) {
            return zone_error(parser, line, "TXT takes one or more strings");
        }
        size_t total = 0;
        for (size_t i = 0; i < count; i++) {
            if (fields[i].len > DNS_ZONE_TXT_STRING_BYTES_MAX) {
                return zone_error(parser, line,
                                  "a TXT string longer than %u bytes (split it into several "
                                  "quoted strings)",
                                  DNS_ZONE_TXT_STRING_BYTES_MAX);
            }
            total += fields[i].len;
        }
        char *joined = malloc(total + 1);
        if (joined == NULL) {
            return -ENOMEM;
        }
        size_t used = 0;
        for (size_t i = 0; i < count; i++) {
            memcpy(joined + used, fields[i].text, fields[i].len);
            used += fields[i].len;
        }
        joined[used] = '\0';
        record->txt.text = joined;
        record->txt.len = (uint32_t)used;
        return 0;
    }
    case DNS_TYPE_TLSA: {
        uint32_t usage = 0;
        uint32_t selector = 0;
        uint32_t matching = 0;
        if (count < 4 || !field_number(&fields[0], UINT8_MAX, &usage) ||
            !field_number(&fields[1], UINT8_MAX, &selector) ||
            !field_number(&fields[2], UINT8_MAX, &matching)) {
            return zone_error(parser, line,
                              "TLSA takes usage, selector, matching type (0-255) and hex data");
        }
        size_t digits = 0;
        for (size_t i = 3; i < count; i++) {
            digits += fields[i].len;
        }
        if (digits % 2 != 0) {
            return zone_error(parser, line, "TLSA data has an odd number of hex digits");
        }
        uint8_t *data = malloc(digits / 2 + 1);
        if (data == NULL) {
            return -ENOMEM;
        }
        size_t data_len = 0;
        int high = -1;
        for (size_t i = 3; i < count; i++) {
            for (size_t k = 0; k < fields[i].len; k++) {
                int v = ascii_hex_value((unsigned char)fields[i].text[k]);
                if (v < 0 || fields[i].is_quoted) {
                    free(data);
                    return zone_error(parser, line, "TLSA data is not hex");
                }
                if (high < 0) {
                    high = v;
                } else {
                    data[data_len++] = (uint8_t)(high << 4 | v);
                    high = -1;
                }
            }
        }
        record->tlsa.usage = (uint8_t)usage;
        record->tlsa.selector = (uint8_t)selector;
        record->tlsa.matching = (uint8_t)matching;
        record->tlsa.data = data;
        record->tlsa.len = (uint32_t)data_len;
        return 0;
    }
    }
    return zone_error(parser, line, "unsupported type");
}

static int
zone_line(struct zone_parser *parser, uint32_t line_number, const char *line, size_t len)
{
    char decoded[DNS_ZONE_LINE_BYTES_MAX];
    struct zone_field fields[DNS_ZONE_FIELDS_MAX];
    ASSERT(len <= sizeof(decoded));
    int count = zone_split(parser, line_number, line, len, decoded, fields);
    if (count <= 0) {
        return count; /* blank, comment, or the error */
    }
    size_t n = (size_t)count;
    if (!fields[0].is_quoted && fields[0].len > 0 && fields[0].text[0] == '$') {
        uint32_t ttl = 0;
        if (field_is(&fields[0], "$TTL")) {
            if (n != 2 || !field_number(&fields[1], DNS_ZONE_TTL_MAX_S, &ttl)) {
                return zone_error(parser, line_number, "$TTL takes one number of seconds");
            }
            parser->ttl_default = ttl;
            return 0;
        }
        if (field_is(&fields[0], "$UNLISTED")) {
            if (n == 2 && field_is(&fields[1], "NXDOMAIN")) {
                parser->is_unlisted_nxdomain = true;
                return 0;
            }
            if (n == 2 && field_is(&fields[1], "RESOLVE")) {
                parser->is_unlisted_nxdomain = false;
                return 0;
            }
            return zone_error(parser, line_number, "$UNLISTED takes NXDOMAIN or RESOLVE");
        }
        if (field_is(&fields[0], "$SECURE")) {
            if (n == 2 && field_is(&fields[1], "yes")) {
                parser->is_secure = true;
                return 0;
            }
            if (n == 2 && field_is(&fields[1], "no")) {
                parser->is_secure = false;
                return 0;
            }
            return zone_error(parser, line_number, "$SECURE takes yes or no");
        }
        return zone_error(parser, line_number, "unknown directive %.*s", (int)fields[0].len,
                          fields[0].text);
    }
    if (parser->entry_count == DNS_ZONE_RECORDS_MAX) {
        return zone_error(parser, line_number, "more than %u records", DNS_ZONE_RECORDS_MAX);
    }
    if (parser->entry_count == parser->entry_room) {
        size_t room = parser->entry_room == 0 ? 64 : parser->entry_room * 2;
        if (room > DNS_ZONE_RECORDS_MAX) {
            room = DNS_ZONE_RECORDS_MAX;
        }
        struct zone_entry *grown = realloc(parser->entries, room * sizeof(*grown));
        if (grown == NULL) {
            return -ENOMEM;
        }
        parser->entries = grown;
        parser->entry_room = room;
    }
    struct zone_entry *entry = &parser->entries[parser->entry_count];
    memset(entry, 0, sizeof(*entry));
    entry->line = line_number;
    entry->ttl = parser->ttl_default;
    entry->is_secure = parser->is_secure;
    entry->kind = DNS_ZONE_KIND_NXDOMAIN;
    if (!field_name(&fields[0], entry->name)) {
        return zone_error(parser, line_number, "not a domain name: %.*s", (int)fields[0].len,
                          fields[0].text);
    }
    size_t i = 1;
    if (i < n && field_number(&fields[i], DNS_ZONE_TTL_MAX_S, &entry->ttl)) {
        i++;
    }
    if (i < n && field_is(&fields[i], "IN")) {
        i++;
    }
    if (i == n) {
        return zone_error(parser, line_number, "a record type is missing");
    }
    if (field_is(&fields[i], "NXDOMAIN")) {
        if (i + 1 != n) {
            return zone_error(parser, line_number, "NXDOMAIN takes nothing after it");
        }
        parser->entry_count++;
        return 0;
    }
    char type_text[8];
    enum dns_type type = DNS_TYPE_A;
    if (fields[i].is_quoted || fields[i].len >= sizeof(type_text)) {
        return zone_error(parser, line_number, "unknown type %.*s", (int)fields[i].len,
                          fields[i].text);
    }
    memcpy(type_text, fields[i].text, fields[i].len);
    type_text[fields[i].len] = '\0';
    if (dns_type_from_name(type_text, &type) != 0) {
        return zone_error(parser, line_number, "unknown type %s", type_text);
    }
    entry->kind = zone_type_index(type);
    ASSERT(entry->kind >= 0);
    int rc = zone_rdata(parser, line_number, type, fields + i + 1, n - i - 1, entry);
    if (rc != 0) {
        entry_free(entry);
        return rc;
    }
    parser->entry_count++;
    return 0;
}

static int
entry_compare(const void *a, const void *b)
{
    const struct zone_entry *x = a;
    const struct zone_entry *y = b;
    int c = strcmp(x->name, y->name);
    if (c != 0) {
        return c;
    }
    if (x->kind != y->kind) {
        return x->kind < y->kind ? -1 : 1;
    }
    return x->line < y->line ? -1 : (x->line > y->line ? 1 : 0);
}

/* Build the zone's names and results from the parsed entries. */
static int
zone_build(struct zone_parser *parser, struct dns_zone *zone)
{
    for (int t = 0; t < DNS_ZONE_TYPE_COUNT; t++) {
        if (dns_result_create(NULL, dns_zone_types[t], DNS_STATUS_NODATA, DNS_ZONE_TTL_DEFAULT_S,
                              false, NULL, 0, &zone->nodata[t]) != 0 ||
            dns_result_create(NULL, dns_zone_types[t], DNS_STATUS_NXDOMAIN,
                              DNS_ZONE_TTL_DEFAULT_S, false, NULL, 0, &zone->nxdomain[t]) != 0) {
            return -ENOMEM;
        }
    }
    zone->is_unlisted_nxdomain = parser->is_unlisted_nxdomain;
    struct zone_entry *entries = parser->entries;
    size_t count = parser->entry_count;
    if (count == 0) {
        return 0;
    }
    qsort(entries, count, sizeof(*entries), entry_compare);
    zone->names = calloc(count, sizeof(*zone->names));
    if (zone->names == NULL) {
        return -ENOMEM;
    }
    struct dns_record *records = malloc(DNS_ANSWER_RECORDS_MAX * sizeof(*records));
    if (records == NULL) {
        return -ENOMEM;
    }
    int rc = 0;
    size_t i = 0;
    while (i < count && rc == 0) {
        struct zone_name *name = &zone->names[zone->name_count++];
        memcpy(name->name, entries[i].name, sizeof(name->name));
        size_t name_end = i;
        while (name_end < count && strcmp(entries[name_end].name, name->name) == 0) {
            name_end++;
        }
        /* NXDOMAIN sorts first (kind -1): it may not share a name. */
        if (entries[i].kind == DNS_ZONE_KIND_NXDOMAIN) {
            name->is_nxdomain = true;
            for (size_t k = i + 1; k < name_end; k++) {
                if (entries[k].kind != DNS_ZONE_KIND_NXDOMAIN) {
                    rc = zone_error(parser, entries[k].line,
                                    "%s has records but is NXDOMAIN on line %u", name->name,
                                    entries[i].line);
                    break;
                }
            }
            i = name_end;
            continue;
        }
        while (i < name_end && rc == 0) {
            size_t type_end = i;
            uint32_t ttl = entries[i].ttl;
            bool is_secure = true; /* every record of the answer under $SECURE yes */
            while (type_end < name_end && entries[type_end].kind == entries[i].kind) {
                if (type_end - i == DNS_ANSWER_RECORDS_MAX) {
                    rc = zone_error(parser, entries[type_end].line,
                                    "more than %u records of one name and type",
                                    DNS_ANSWER_RECORDS_MAX);
                    break;
                }
                records[type_end - i] = entries[type_end].record;
                ttl = entries[type_end].ttl < ttl ? entries[type_end].ttl : ttl;
                is_secure = is_secure && entries[type_end].is_secure;
                type_end++;
            }
            if (rc != 0) {
                break;
            }
            int t = entries[i].kind;
            rc = dns_result_create(NULL, dns_zone_types[t], DNS_STATUS_OK, ttl, is_secure, records,
                                   (uint32_t)(type_end - i), &name->by_type[t]);
            i = type_end;
        }
    }
    free(records);
    return rc;
}

int
dns_zone_parse(const char *text, size_t len, struct dns_zone **zone_out, char *error_out,
               size_t error_bytes)
{
    struct zone_parser parser = {
        .ttl_default = DNS_ZONE_TTL_DEFAULT_S,
        .error = error_out,
        .error_bytes = error_bytes,
    };
    if (error_bytes > 0) {
        error_out[0] = '\0';
    }
    if (len > DNS_ZONE_FILE_BYTES_MAX) {
        if (error_bytes > 0) {
            (void)snprintf(error_out, error_bytes, "larger than %u bytes",
                           DNS_ZONE_FILE_BYTES_MAX);
        }
        return -EINVAL;
    }
    int rc = 0;
    size_t pos = 0;
    uint32_t line_number = 0;
    while (pos < len && rc == 0) {
        line_number++;
        const char *line = text + pos;
        const char *newline = memchr(line, '\n', len - pos);
        size_t line_len = newline != NULL ? (size_t)(newline - line) : len - pos;
        pos += line_len + (newline != NULL ? 1 : 0);
        if (line_len > DNS_ZONE_LINE_BYTES_MAX) {
            rc = zone_error(&parser, line_number, "longer than %u bytes",
                            DNS_ZONE_LINE_BYTES_MAX);
        } else if (memchr(line, '\0', line_len) != NULL) {
            rc = zone_error(&parser, line_number, "a NUL byte");
        } else {
            rc = zone_line(&parser, line_number, line, line_len);
        }
    }
    struct dns_zone *zone = NULL;
    if (rc == 0) {
        zone = calloc(1, sizeof(*zone));
        rc = zone != NULL ? zone_build(&parser, zone) : -ENOMEM;
    }
    for (size_t i = 0; i < parser.entry_count; i++) {
        entry_free(&parser.entries[i]);
    }
    free(parser.entries);
    if (rc != 0) {
        if (rc == -ENOMEM && error_bytes > 0) {
            (void)snprintf(error_out, error_bytes, "out of memory");
        }
        dns_zone_destroy(&zone);
        return rc;
    }
    *zone_out = zone;
    return 0;
}

int
dns_zone_load(const char *path, struct dns_zone **zone_out, char *error_out, size_t error_bytes)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int err = errno;
        (void)snprintf(error_out, error_bytes, "%s: %s", path, strerror(err));
        return -err;
    }
    /* One byte more than allowed tells a file that is too large. */
    size_t room = DNS_ZONE_FILE_BYTES_MAX + 1;
    char *text = malloc(room);
    if (text == NULL) {
        (void)close(fd);
        (void)snprintf(error_out, error_bytes, "%s: out of memory", path);
        return -ENOMEM;
    }
    size_t len = 0;
    while (len < room) {
        ssize_t n = read(fd, text + len, room - len);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            int err = errno;
            (void)close(fd);
            free(text);
            (void)snprintf(error_out, error_bytes, "%s: %s", path, strerror(err));
            return -err;
        }
        if (n == 0) {
            break;
        }
        len += (size_t)n;
    }
    (void)close(fd); /* read-only: nothing to lose */
    char message[DNS_ZONE_ERROR_BYTES];
    int rc = dns_zone_parse(text, len, zone_out, message, sizeof(message));
    free(text);
    if (rc != 0) {
        (void)snprintf(error_out, error_bytes, "%s: %s", path, message);
    }
    return rc;
}

void
dns_zone_destroy(struct dns_zone **zone)
{
    struct dns_zone *z = *zone;
    if (z == NULL) {
        return;
    }
    for (size_t i = 0; i < z->name_count; i++) {
        for (int t = 0; t < DNS_ZONE_TYPE_COUNT; t++) {
            dns_result_unref(&z->names[i].by_type[t]);
        }
    }
    for (int t = 0; t < DNS_ZONE_TYPE_COUNT; t++) {
        dns_result_unref(&z->nodata[t]);
        dns_result_unref(&z->nxdomain[t]);
    }
    free(z->names);
    free(z);
    *zone = NULL;
}

int
dns_zone_lookup(const struct dns_zone *zone, enum dns_type type, const char *name,
                struct dns_result **result_out)
{
    ASSERT(zone != NULL);
    int t = zone_type_index(type);
    ASSERT(t >= 0);
    size_t low = 0;
    size_t high = zone->name_count;
    while (low < high) {
        size_t mid = low + (high - low) / 2; /* rounds down: mid < high */
        int c = strcmp(name, zone->names[mid].name);
        if (c == 0) {
            const struct zone_name *found = &zone->names[mid];
            struct dns_result *result = found->is_nxdomain          ? zone->nxdomain[t]
                                        : found->by_type[t] != NULL ? found->by_type[t]
                                                                    : zone->nodata[t];
            *result_out = dns_result_ref(result);
            return 0;
        }
        if (c < 0) {
            high = mid;
        } else {
            low = mid + 1;
        }
    }
    if (zone->is_unlisted_nxdomain) {
        *result_out = dns_result_ref(zone->nxdomain[t]);
        return 0;
    }
    return -ENOENT;
}

size_t
dns_zone_name_count(const struct dns_zone *zone)
{
    return zone->name_count;
}
