/*
 * store/maildir_subscriptions.c - the subscriptions file (see
 * maildir_subscriptions.h). Pure code; load-time allocation bounded by
 * MAILDIR_SUBSCRIPTIONS_MAX.
 */
#define _GNU_SOURCE
#include "store/maildir_subscriptions.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/assertions.h"
#include "core/hash.h"

#define SUBS_HEADER "V\t2\n\n"

static_assert(MAILDIR_SUBSCRIPTIONS_MAX < UINT32_MAX / 4, "slot values fit 32 bits");

void
maildir_subscriptions_init(struct maildir_subscriptions *subs)
{
    ASSERT(subs != NULL);
    memset(subs, 0, sizeof(*subs));
}

void
maildir_subscriptions_free(struct maildir_subscriptions *subs)
{
    if (subs == NULL) {
        return;
    }
    for (size_t i = 0; i < subs->count; i++) {
        free(subs->names[i]);
    }
    free(subs->names);
    free(subs->slots);
    memset(subs, 0, sizeof(*subs));
}

/* Converts an API name (levels split by sep) to the file form in out:
 * levels joined by tabs, each level tab-escaped as Dovecot's
 * str_append_tabescaped() does (only \001 can occur here: tab, CR, LF and
 * NUL are refused), and any case of "INBOX" written "INBOX" as Dovecot
 * does. Returns the length, or -EINVAL / -ENAMETOOLONG. */
static int
to_file_form(const char *name, size_t len, char sep, char *out)
{
    if (len == 0) {
        return -EINVAL;
    }
    if (len > MAILDIR_SUBSCRIPTION_NAME_BYTES_MAX) {
        return -ENAMETOOLONG;
    }
    if (len == 5 && strncasecmp(name, "INBOX", 5) == 0) {
        memcpy(out, "INBOX", 6);
        return 5;
    }
    size_t n = 0;
    bool is_level_empty = true;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        if (c == '\n' || c == '\r' || c == '\0' || c == '\t') {
            return -EINVAL;
        }
        if (c == sep) {
            if (is_level_empty) {
                return -EINVAL;
            }
            out[n++] = '\t';
            is_level_empty = true;
            continue;
        }
        size_t need = c == '\001' ? 2 : 1;
        if (n + need > MAILDIR_SUBSCRIPTION_NAME_BYTES_MAX) {
            return -ENAMETOOLONG;
        }
        if (c == '\001') {
            out[n++] = '\001';
            out[n++] = '1';
        } else {
            out[n++] = c;
        }
        is_level_empty = false;
    }
    if (is_level_empty) {
        return -EINVAL; /* trailing separator */
    }
    out[n] = '\0';
    return (int)n;
}

/* Checks a line of a version 2 file (already in file form) and copies it
 * to out. Returns the length or -EINVAL. */
static int
file_line_form(const char *line, size_t len, char *out)
{
    if (len > MAILDIR_SUBSCRIPTION_NAME_BYTES_MAX) {
        return -EINVAL;
    }
    bool is_level_empty = true;
    for (size_t i = 0; i < len; i++) {
        char c = line[i];
        if (c == '\r' || c == '\0') {
            return -EINVAL;
        }
        if (c == '\t') {
            if (is_level_empty) {
                return -EINVAL;
            }
            is_level_empty = true;
        } else {
            is_level_empty = false;
        }
    }
    if (is_level_empty) {
        return -EINVAL;
    }
    memcpy(out, line, len);
    out[len] = '\0';
    return (int)len;
}

/* Drops removed names (keeping the order) and rebuilds the index with
 * at least four slots per live name. */
static int
index_grow(struct maildir_subscriptions *subs)
{
    size_t slot_count = 32;
    while (slot_count < 4 * (subs->live_count + 1)) {
        slot_count *= 2;
    }
    uint32_t *slots = calloc(slot_count, sizeof(*slots));
    if (slots == NULL) {
        return -ENOMEM;
    }
    size_t kept = 0;
    for (size_t i = 0; i < subs->count; i++) {
        if (subs->names[i] == NULL) {
            continue;
        }
        subs->names[kept] = subs->names[i];
        hash_slots_put(slots, slot_count, hash_fnv1a_string(subs->names[kept]),
                       (uint32_t)(kept + 1));
        kept++;
    }
    ASSERT(kept == subs->live_count);
    subs->count = kept;
    free(subs->slots);
    subs->slots = slots;
    subs->slot_count = slot_count;
    return 0;
}

/* Slot of the tab-form name, or the empty slot where it would go. */
static size_t
index_find(const struct maildir_subscriptions *subs, const char *tab_name)
{
    ASSERT(subs->slot_count > 0);
    size_t mask = subs->slot_count - 1;
    size_t s = hash_fnv1a_string(tab_name) & mask;
    for (size_t probes = 0; probes < subs->slot_count; probes++) {
        uint32_t v = subs->slots[s];
        if (v == 0 || (subs->names[v - 1] != NULL && strcmp(subs->names[v - 1], tab_name) == 0)) {
            return s;
        }
        s = (s + 1) & mask;
    }
    ASSERT(!"subscriptions hash index full"); /* kept at most half full */
    return 0;
}

/* Adds a tab-form name. Returns 1 added, 0 present, or -errno. */
static int
add_tab_form(struct maildir_subscriptions *subs, const char *tab_name, size_t len)
{
    /* Removed names stay in the index as tombstones until it grows. */
    if ((subs->count + 1) * 2 > subs->slot_count) {
        int rc = index_grow(subs);
        if (rc != 0) {
            return rc;
        }
    }
    size_t slot = index_find(subs, tab_name);
    if (subs->slots[slot] != 0) {
        return 0;
    }
    if (subs->live_count >= MAILDIR_SUBSCRIPTIONS_MAX) {
        return -E2BIG;
    }
    if (subs->count == subs->capacity) {
        size_t capacity = subs->capacity == 0 ? 16 : subs->capacity * 2;
        char **names = reallocarray(subs->names, capacity, sizeof(*names));
        if (names == NULL) {
            return -ENOMEM;
        }
        subs->names = names;
        subs->capacity = capacity;
    }
    char *copy = strndup(tab_name, len);
    if (copy == NULL) {
        return -ENOMEM;
    }
    subs->names[subs->count] = copy;
    subs->slots[slot] = (uint32_t)(subs->count + 1);
    subs->count++;
    subs->live_count++;
    return 1;
}

int
maildir_subscriptions_parse(struct maildir_subscriptions *subs, const char *buf, size_t len,
                            char old_sep, size_t *skipped_out)
{
    ASSERT(subs != NULL);
    ASSERT(buf != NULL || len == 0);
    maildir_subscriptions_free(subs);
    size_t skipped = 0;
    size_t pos = 0;
    /* Exactly Dovecot's test: the file is version 2 only if it starts
     * with the whole header; anything else is the old format. */
    subs->was_old_format = !(len >= sizeof(SUBS_HEADER) - 1 &&
                             memcmp(buf, SUBS_HEADER, sizeof(SUBS_HEADER) - 1) == 0);
    if (!subs->was_old_format) {
        pos = sizeof(SUBS_HEADER) - 1;
    }
    char tab_name[MAILDIR_SUBSCRIPTION_NAME_BYTES_MAX + 1];
    int rc = 0;
    while (pos < len) {
        const char *line = buf + pos;
        const char *nl = memchr(line, '\n', len - pos);
        size_t line_len = nl != NULL ? (size_t)(nl - line) : len - pos;
        pos += line_len + (nl != NULL ? 1 : 0);
        if (line_len == 0) {
            continue; /* the empty line after the header */
        }
        int n = subs->was_old_format ? to_file_form(line, line_len, old_sep, tab_name)
                                     : file_line_form(line, line_len, tab_name);
        if (n < 0) {
            skipped++;
            continue;
        }
        rc = add_tab_form(subs, tab_name, (size_t)n);
        if (rc < 0) {
            break;
        }
        if (rc == 0) {
            skipped++;
        }
        rc = 0;
    }
    if (skipped_out != NULL) {
        *skipped_out = skipped;
    }
    return rc;
}

bool
maildir_subscriptions_contains(const struct maildir_subscriptions *subs, const char *name,
                               size_t len, char sep)
{
    ASSERT(subs != NULL);
    char tab_name[MAILDIR_SUBSCRIPTION_NAME_BYTES_MAX + 1];
    if (subs->slot_count == 0 || to_file_form(name, len, sep, tab_name) < 0) {
        return false;
    }
    return subs->slots[index_find(subs, tab_name)] != 0;
}

int
maildir_subscriptions_add(struct maildir_subscriptions *subs, const char *name, size_t len,
                          char sep)
{
    ASSERT(subs != NULL);
    char tab_name[MAILDIR_SUBSCRIPTION_NAME_BYTES_MAX + 1];
    int n = to_file_form(name, len, sep, tab_name);
    if (n < 0) {
        return n;
    }
    return add_tab_form(subs, tab_name, (size_t)n);
}

int
maildir_subscriptions_remove(struct maildir_subscriptions *subs, const char *name, size_t len,
                             char sep)
{
    ASSERT(subs != NULL);
    char tab_name[MAILDIR_SUBSCRIPTION_NAME_BYTES_MAX + 1];
    if (subs->slot_count == 0 || to_file_form(name, len, sep, tab_name) < 0) {
        return -ENOENT;
    }
    uint32_t v = subs->slots[index_find(subs, tab_name)];
    if (v == 0) {
        return -ENOENT;
    }
    free(subs->names[v - 1]);
    subs->names[v - 1] = NULL;
    subs->live_count--; /* its index slot becomes a tombstone */
    return 0;
}

int
maildir_subscriptions_next(const struct maildir_subscriptions *subs, size_t *pos, char sep,
                           char *out, size_t out_bytes, size_t *len_out)
{
    ASSERT(subs != NULL);
    ASSERT(pos != NULL);
    size_t i = *pos;
    while (i < subs->count && subs->names[i] == NULL) {
        i++;
    }
    if (i >= subs->count) {
        *pos = i;
        return 0;
    }
    /* Unescaping never makes a name longer. */
    const char *p = subs->names[i];
    size_t len = strlen(p);
    if (len + 1 > out_bytes) {
        return -ENOBUFS;
    }
    size_t n = 0;
    for (size_t k = 0; k < len; k++) {
        char c = p[k];
        if (c == '\t') {
            c = sep;
        } else if (c == '\001' && k + 1 < len) {
            /* Dovecot's tab escapes; any other byte after \001 is kept. */
            static const char codes[] = "01trn";
            static const char bytes[] = { '\0', '\001', '\t', '\r', '\n' };
            const char *code = p[k + 1] != '\0' ? strchr(codes, p[k + 1]) : NULL;
            if (code != NULL) {
                c = bytes[code - codes];
                k++;
            }
        }
        out[n++] = c;
    }
    out[n] = '\0';
    *len_out = n;
    *pos = i + 1;
    return 1;
}

size_t
maildir_subscriptions_serialized_bytes(const struct maildir_subscriptions *subs)
{
    ASSERT(subs != NULL);
    size_t n = sizeof(SUBS_HEADER) - 1;
    for (size_t i = 0; i < subs->count; i++) {
        if (subs->names[i] != NULL) {
            n += strlen(subs->names[i]) + 1;
        }
    }
    return n;
}

int
maildir_subscriptions_serialize(const struct maildir_subscriptions *subs, char *out,
                                size_t out_bytes, size_t *len_out)
{
    ASSERT(subs != NULL);
    ASSERT(out != NULL);
    ASSERT(len_out != NULL);
    if (out_bytes < maildir_subscriptions_serialized_bytes(subs)) {
        return -ENOBUFS;
    }
    size_t n = sizeof(SUBS_HEADER) - 1;
    memcpy(out, SUBS_HEADER, n);
    for (size_t i = 0; i < subs->count; i++) {
        if (subs->names[i] == NULL) {
            continue;
        }
        size_t len = strlen(subs->names[i]);
        memcpy(out + n, subs->names[i], len);
        n += len;
        out[n++] = '\n';
    }
    *len_out = n;
    return 0;
}
