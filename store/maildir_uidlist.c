/*
 * store/maildir_uidlist.c - dovecot-uidlist read, edit, write and lock
 * (see maildir_uidlist.h for the format and the rules).
 *
 * Owns the in-memory table of one mailbox's UIDs. Parsing and serializing
 * are pure; lock/commit/unlock do blocking file I/O (worker threads only).
 * Limits: MAILDIR_UIDLIST_LINE_BYTES_MAX per line,
 * MAILDIR_UIDLIST_RECORDS_MAX records, MAILDIR_UIDLIST_HDR_KEYS_MAX header
 * keys.
 */
#define _GNU_SOURCE
#include "store/maildir_uidlist.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "core/assertions.h"
#include "core/hash.h"
#include "store/maildir_dotlock.h"

static_assert(MAILDIR_UIDLIST_LOCK_STALE_S == MAILDIR_DOTLOCK_UIDLIST_STALE_S, "Dovecot's");
static_assert(MAILDIR_UIDLIST_RECORDS_MAX < UINT32_MAX / 2, "slot values fit 32 bits");

/* ---- small parsing helpers ---- */

/* Decimal u32 in s[0..len), all digits, no sign. */
static bool
parse_u32(const char *s, size_t len, uint32_t *value_out)
{
    if (len == 0 || len > 10) {
        return false;
    }
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return false;
        }
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (v > UINT32_MAX) {
        return false;
    }
    *value_out = (uint32_t)v;
    return true;
}

static bool
is_hex_guid(const char *s)
{
    if (strlen(s) != 32) {
        return false;
    }
    for (size_t i = 0; i < 32; i++) {
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) {
            return false;
        }
    }
    return true;
}

/* ext tokens: "" or "K<value>( K<value>)*", K in 'A'..'Z', values without
 * spaces, newlines or NUL, and a token never starts with ':'. */
static bool
ext_is_valid(const char *ext, size_t len)
{
    size_t i = 0;
    while (i < len) {
        if (ext[i] < 'A' || ext[i] > 'Z') {
            return false;
        }
        while (i < len && ext[i] != ' ') {
            if (ext[i] == '\n' || ext[i] == '\0' || ext[i] == '\r') {
                return false;
            }
            i++;
        }
        if (i < len) {
            i++; /* the single space */
            if (i == len) {
                return false;
            }
        }
    }
    return true;
}

/* ---- the hash index of base names ---- */

static size_t
base_len_of(const char *name, size_t len)
{
    const char *colon = memchr(name, ':', len);
    return colon != NULL ? (size_t)(colon - name) : len;
}

/* Drops removed records (keeping UID order) and rebuilds the index with
 * at least four slots per live record, so it is at most a quarter full
 * after and half full before the next rebuild. */
static int
index_grow(struct maildir_uidlist *list)
{
    size_t slot_count = 64;
    while (slot_count < 4 * (list->live_count + 1)) {
        slot_count *= 2;
    }
    uint32_t *slots = calloc(slot_count, sizeof(*slots));
    if (slots == NULL) {
        return -ENOMEM;
    }
    size_t kept = 0;
    for (size_t i = 0; i < list->rec_count; i++) {
        if (list->recs[i].is_removed) {
            free(list->recs[i].name);
            continue;
        }
        list->recs[kept] = list->recs[i];
        const struct maildir_uidlist_rec *rec = &list->recs[kept];
        hash_slots_put(slots, slot_count, hash_fnv1a(rec->name, rec->base_len),
                       (uint32_t)(kept + 1));
        kept++;
    }
    ASSERT(kept == list->live_count);
    list->rec_count = kept;
    free(list->slots);
    list->slots = slots;
    list->slot_count = slot_count;
    return 0;
}

/* Returns the slot holding base, or the empty slot where it would go. */
static size_t
index_find(const struct maildir_uidlist *list, const char *base, size_t base_len)
{
    ASSERT(list->slot_count > 0);
    size_t mask = list->slot_count - 1;
    size_t s = hash_fnv1a(base, base_len) & mask;
    for (size_t probes = 0; probes < list->slot_count; probes++) {
        uint32_t v = list->slots[s];
        if (v == 0) {
            return s;
        }
        const struct maildir_uidlist_rec *rec = &list->recs[v - 1];
        if (!rec->is_removed && rec->base_len == base_len &&
            memcmp(rec->name, base, base_len) == 0) {
            return s;
        }
        s = (s + 1) & mask;
    }
    ASSERT(!"uidlist hash index full"); /* kept at most half full */
    return 0;
}

/* Adds a record (uid above every other) and indexes it. */
static int
rec_add(struct maildir_uidlist *list, uint32_t uid, const char *name, size_t name_len,
        const char *ext, size_t ext_len)
{
    ASSERT(list->rec_count == 0 || list->recs[list->rec_count - 1].uid < uid);
    if (list->rec_count >= MAILDIR_UIDLIST_RECORDS_MAX) {
        return -E2BIG;
    }
    if (name_len == 0 || name_len > MAILDIR_UIDLIST_LINE_BYTES_MAX ||
        ext_len > MAILDIR_UIDLIST_LINE_BYTES_MAX) {
        return -EINVAL;
    }
    size_t base_len = base_len_of(name, name_len);
    if (base_len == 0) {
        return -EINVAL;
    }
    /* Removed records stay in the index as tombstones until it grows. */
    if ((list->rec_count + 1) * 2 > list->slot_count) {
        int rc = index_grow(list);
        if (rc != 0) {
            return rc;
        }
    }
    size_t slot = index_find(list, name, base_len);
    if (list->slots[slot] != 0) {
        return -EEXIST;
    }
    if (list->rec_count == list->rec_capacity) {
        size_t capacity = list->rec_capacity == 0 ? 64 : list->rec_capacity * 2;
        struct maildir_uidlist_rec *recs = reallocarray(list->recs, capacity, sizeof(*recs));
        if (recs == NULL) {
            return -ENOMEM;
        }
        list->recs = recs;
        list->rec_capacity = capacity;
    }
    char *block = malloc(name_len + 1 + ext_len + 1);
    if (block == NULL) {
        return -ENOMEM;
    }
    memcpy(block, name, name_len);
    block[name_len] = '\0';
    memcpy(block + name_len + 1, ext, ext_len);
    block[name_len + 1 + ext_len] = '\0';
    list->recs[list->rec_count] = (struct maildir_uidlist_rec){
        .uid = uid,
        .name_len = (uint32_t)name_len,
        .base_len = (uint32_t)base_len,
        .ext_len = (uint32_t)ext_len,
        .name = block,
        .ext = block + name_len + 1,
    };
    list->slots[slot] = (uint32_t)(list->rec_count + 1);
    list->rec_count++;
    list->live_count++;
    return 0;
}

static int
hdr_key_add(struct maildir_uidlist *list, char key, const char *value, size_t value_len)
{
    if (list->hdr_key_count == MAILDIR_UIDLIST_HDR_KEYS_MAX ||
        value_len > MAILDIR_UIDLIST_HDR_VALUE_BYTES_MAX) {
        return -EINVAL;
    }
    for (size_t i = 0; i < list->hdr_key_count; i++) {
        if (list->hdr_keys[i].key == key) {
            return -EINVAL;
        }
    }
    struct maildir_uidlist_hdr_key *k = &list->hdr_keys[list->hdr_key_count++];
    k->key = key;
    memcpy(k->value, value, value_len);
    k->value[value_len] = '\0';
    return 0;
}

/* ---- public ---- */

int
maildir_uidlist_init_new(struct maildir_uidlist *list, uint32_t uidvalidity,
                         const char *guid_hex)
{
    ASSERT(list != NULL);
    memset(list, 0, sizeof(*list));
    if (uidvalidity == 0) {
        return -EINVAL;
    }
    char guid[33];
    if (guid_hex != NULL) {
        if (!is_hex_guid(guid_hex)) {
            return -EINVAL;
        }
        memcpy(guid, guid_hex, sizeof(guid));
    } else {
        unsigned char bytes[16];
        if (getrandom(bytes, sizeof(bytes), 0) != (ssize_t)sizeof(bytes)) {
            return -EIO;
        }
        for (size_t i = 0; i < sizeof(bytes); i++) {
            (void)snprintf(guid + 2 * i, 3, "%02x", bytes[i]);
        }
    }
    list->version_read = 3;
    list->uidvalidity = uidvalidity;
    list->next_uid = 1;
    list->header_next_uid = 1;
    list->is_changed = true;
    int rc = hdr_key_add(list, 'V', "", 0);
    ASSERT(rc == 0);
    rc = hdr_key_add(list, 'N', "", 0);
    ASSERT(rc == 0);
    rc = hdr_key_add(list, 'G', guid, 32);
    ASSERT(rc == 0);
    return 0;
}

/* Header of version 3: "3 V.. N.. G.. X..". */
static int
parse_header_v3(struct maildir_uidlist *list, const char *line, size_t len)
{
    bool has_v = false;
    bool has_n = false;
    size_t i = 2; /* after "3 " */
    while (i < len) {
        const char *sp = memchr(line + i, ' ', len - i);
        size_t tok_len = sp != NULL ? (size_t)(sp - (line + i)) : len - i;
        const char *tok = line + i;
        i += tok_len + 1;
        if (tok_len == 0) {
            return -EINVAL;
        }
        char key = tok[0];
        if (key < 'A' || key > 'Z' || memchr(tok, '\0', tok_len) != NULL ||
            memchr(tok, '\r', tok_len) != NULL) {
            return -EINVAL;
        }
        if (key == 'V') {
            if (!parse_u32(tok + 1, tok_len - 1, &list->uidvalidity) || list->uidvalidity == 0) {
                return -EINVAL;
            }
            has_v = true;
            tok_len = 1;
        } else if (key == 'N') {
            if (!parse_u32(tok + 1, tok_len - 1, &list->header_next_uid) ||
                list->header_next_uid == 0) {
                return -EINVAL;
            }
            has_n = true;
            tok_len = 1;
        }
        int rc = hdr_key_add(list, key, tok + 1, tok_len - 1);
        if (rc != 0) {
            return rc;
        }
    }
    return has_v && has_n ? 0 : -EINVAL;
}

/* Header of versions 1 and 2: "<v> <uidvalidity> <next uid>". */
static int
parse_header_old(struct maildir_uidlist *list, const char *line, size_t len)
{
    const char *a = line + 2;
    const char *end = line + len;
    const char *sp = memchr(a, ' ', (size_t)(end - a));
    if (sp == NULL || !parse_u32(a, (size_t)(sp - a), &list->uidvalidity) ||
        !parse_u32(sp + 1, (size_t)(end - sp - 1), &list->header_next_uid) ||
        list->uidvalidity == 0 || list->header_next_uid == 0) {
        return -EINVAL;
    }
    int rc = hdr_key_add(list, 'V', "", 0);
    ASSERT(rc == 0);
    rc = hdr_key_add(list, 'N', "", 0);
    ASSERT(rc == 0);
    return 0;
}

static int
parse_record(struct maildir_uidlist *list, const char *line, size_t len)
{
    const char *end = line + len;
    const char *sp = memchr(line, ' ', len);
    uint32_t uid;
    /* UID 4294967295 is refused: no next UID could follow it in N. */
    if (sp == NULL || !parse_u32(line, (size_t)(sp - line), &uid) || uid == 0 ||
        uid == UINT32_MAX) {
        return -EINVAL;
    }
    if (list->rec_count > 0 && uid <= list->recs[list->rec_count - 1].uid) {
        return -EINVAL; /* Dovecot: "UIDs not ordered" */
    }
    const char *rest = sp + 1;
    const char *ext = rest;
    size_t ext_len = 0;
    const char *name;
    if (list->version_read == 3) {
        /* Tokens up to the one that starts with ':'. */
        const char *p = rest;
        while (p < end && *p != ':') {
            const char *next = memchr(p, ' ', (size_t)(end - p));
            if (next == NULL || next == p) {
                return -EINVAL;
            }
            p = next + 1;
        }
        if (p >= end) {
            return -EINVAL;
        }
        ext_len = p > rest ? (size_t)(p - rest) - 1 : 0;
        if (!ext_is_valid(ext, ext_len)) {
            return -EINVAL;
        }
        name = p + 1;
    } else if (list->version_read == 2) {
        const char *flags_end = memchr(rest, ' ', (size_t)(end - rest));
        if (flags_end == NULL) {
            return -EINVAL;
        }
        name = flags_end + 1;
    } else {
        name = rest;
    }
    size_t name_len = (size_t)(end - name);
    if (name_len == 0 || memchr(name, '\0', name_len) != NULL) {
        return -EINVAL;
    }
    if (list->version_read != 3) {
        name_len = base_len_of(name, name_len); /* old files kept the flags */
    }
    int rc = rec_add(list, uid, name, name_len, ext, ext_len);
    return rc == -EEXIST ? -EINVAL : rc;
}

int
maildir_uidlist_parse(struct maildir_uidlist *list, const char *buf, size_t len,
                      size_t *line_out)
{
    ASSERT(list != NULL);
    ASSERT(buf != NULL || len == 0);
    memset(list, 0, sizeof(*list));
    size_t pos = 0;
    size_t line_no = 0;
    int rc = 0;
    while (pos < len) {
        const char *line = buf + pos;
        const char *nl = memchr(line, '\n', len - pos);
        size_t line_len = nl != NULL ? (size_t)(nl - line) : len - pos;
        pos += line_len + (nl != NULL ? 1 : 0);
        line_no++;
        if (line_len > MAILDIR_UIDLIST_LINE_BYTES_MAX) {
            rc = -E2BIG;
            break;
        }
        if (line_no == 1) {
            if (line_len < 2 || line[1] != ' ') {
                rc = -EINVAL;
                break;
            }
            list->version_read = (unsigned)(line[0] - '0');
            if (line[0] == '3') {
                rc = parse_header_v3(list, line, line_len);
            } else if (line[0] == '1' || line[0] == '2') {
                rc = parse_header_old(list, line, line_len);
            } else {
                rc = -EINVAL;
            }
        } else if (line_len == 0 && nl == NULL) {
            break;
        } else {
            rc = parse_record(list, line, line_len);
        }
        if (rc != 0) {
            break;
        }
    }
    if (rc == 0 && line_no == 0) {
        rc = -EINVAL; /* empty file: no header */
    }
    if (line_out != NULL) {
        *line_out = rc == 0 ? 0 : line_no;
    }
    if (rc != 0) {
        return rc;
    }
    list->next_uid = list->header_next_uid;
    if (list->rec_count > 0 && list->recs[list->rec_count - 1].uid >= list->next_uid) {
        list->next_uid = list->recs[list->rec_count - 1].uid + 1; /* uid < UINT32_MAX */
    }
    if (list->slot_count == 0) {
        rc = index_grow(list);
    }
    return rc;
}

void
maildir_uidlist_free(struct maildir_uidlist *list)
{
    if (list == NULL) {
        return;
    }
    for (size_t i = 0; i < list->rec_count; i++) {
        free(list->recs[i].name);
    }
    free(list->recs);
    free(list->slots);
    memset(list, 0, sizeof(*list));
}

const struct maildir_uidlist_rec *
maildir_uidlist_lookup(const struct maildir_uidlist *list, const char *name, size_t len)
{
    ASSERT(list != NULL);
    if (list->slot_count == 0 || len == 0) {
        return NULL;
    }
    size_t base_len = base_len_of(name, len);
    uint32_t v = list->slots[index_find(list, name, base_len)];
    return v == 0 ? NULL : &list->recs[v - 1];
}

const struct maildir_uidlist_rec *
maildir_uidlist_lookup_uid(const struct maildir_uidlist *list, uint32_t uid)
{
    ASSERT(list != NULL);
    size_t lo = 0;
    size_t hi = list->rec_count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (list->recs[mid].uid < uid) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    if (lo < list->rec_count && list->recs[lo].uid == uid && !list->recs[lo].is_removed) {
        return &list->recs[lo];
    }
    return NULL;
}

bool
maildir_uidlist_rec_ext(const struct maildir_uidlist_rec *rec, char key, struct span *value_out)
{
    ASSERT(rec != NULL);
    const char *p = rec->ext;
    const char *end = rec->ext + rec->ext_len;
    while (p < end) {
        const char *sp = memchr(p, ' ', (size_t)(end - p));
        const char *tok_end = sp != NULL ? sp : end;
        if (*p == key) {
            *value_out = span_make(p + 1, (size_t)(tok_end - p - 1));
            return true;
        }
        p = tok_end + 1;
    }
    return false;
}

int
maildir_uidlist_append(struct maildir_uidlist *list, const char *name, size_t len,
                       const char *ext, uint32_t *uid_out)
{
    ASSERT(list != NULL);
    ASSERT(ext != NULL);
    ASSERT(uid_out != NULL);
    size_t base_len = base_len_of(name, len);
    size_t ext_len = strlen(ext);
    if (base_len == 0 || memchr(name, '\n', base_len) != NULL ||
        memchr(name, '\0', base_len) != NULL || memchr(name, '\r', base_len) != NULL ||
        !ext_is_valid(ext, ext_len)) {
        return -EINVAL;
    }
    const struct maildir_uidlist_rec *old = maildir_uidlist_lookup(list, name, base_len);
    if (old != NULL) {
        *uid_out = old->uid;
        return -EEXIST;
    }
    ASSERT(list->next_uid != 0);
    if (list->next_uid == UINT32_MAX) {
        return -EOVERFLOW;
    }
    int rc = rec_add(list, list->next_uid, name, base_len, ext, ext_len);
    if (rc != 0) {
        return rc;
    }
    *uid_out = list->next_uid;
    list->next_uid++;
    list->is_changed = true;
    return 0;
}

int
maildir_uidlist_remove(struct maildir_uidlist *list, uint32_t uid)
{
    ASSERT(list != NULL);
    const struct maildir_uidlist_rec *found = maildir_uidlist_lookup_uid(list, uid);
    if (found == NULL) {
        return -ENOENT;
    }
    struct maildir_uidlist_rec *rec = &list->recs[found - list->recs];
    rec->is_removed = true; /* its index slot becomes a tombstone */
    list->live_count--;
    list->is_changed = true;
    return 0;
}

static uint32_t
header_n(const struct maildir_uidlist *list)
{
    return list->is_changed ? list->next_uid : list->header_next_uid;
}

size_t
maildir_uidlist_serialized_bytes(const struct maildir_uidlist *list)
{
    ASSERT(list != NULL);
    size_t n = 2; /* "3" + "\n" */
    for (size_t i = 0; i < list->hdr_key_count; i++) {
        n += 2 + (list->hdr_keys[i].key == 'V' || list->hdr_keys[i].key == 'N'
                      ? 10
                      : strlen(list->hdr_keys[i].value));
    }
    for (size_t i = 0; i < list->rec_count; i++) {
        const struct maildir_uidlist_rec *rec = &list->recs[i];
        if (!rec->is_removed) {
            n += 10 + 1 + rec->ext_len + 2 + rec->name_len + 1;
        }
    }
    return n;
}

int
maildir_uidlist_serialize(const struct maildir_uidlist *list, char *out, size_t out_bytes,
                          size_t *len_out)
{
    ASSERT(list != NULL);
    ASSERT(out != NULL);
    ASSERT(len_out != NULL);
    ASSERT(list->uidvalidity != 0);
    if (out_bytes < maildir_uidlist_serialized_bytes(list) + 1) {
        return -ENOBUFS;
    }
    size_t n = 0;
    out[n++] = '3';
    for (size_t i = 0; i < list->hdr_key_count; i++) {
        const struct maildir_uidlist_hdr_key *k = &list->hdr_keys[i];
        int w;
        if (k->key == 'V') {
            w = snprintf(out + n, out_bytes - n, " V%" PRIu32, list->uidvalidity);
        } else if (k->key == 'N') {
            w = snprintf(out + n, out_bytes - n, " N%" PRIu32, header_n(list));
        } else {
            w = snprintf(out + n, out_bytes - n, " %c%s", k->key, k->value);
        }
        ASSERT(w > 0 && (size_t)w < out_bytes - n);
        n += (size_t)w;
    }
    out[n++] = '\n';
    for (size_t i = 0; i < list->rec_count; i++) {
        const struct maildir_uidlist_rec *rec = &list->recs[i];
        if (rec->is_removed) {
            continue;
        }
        int w = snprintf(out + n, out_bytes - n, "%" PRIu32 "%s%s :", rec->uid,
                         rec->ext_len > 0 ? " " : "", rec->ext);
        ASSERT(w > 0 && (size_t)w < out_bytes - n);
        n += (size_t)w;
        ASSERT(out_bytes - n > rec->name_len + 1);
        memcpy(out + n, rec->name, rec->name_len);
        n += rec->name_len;
        out[n++] = '\n';
    }
    ASSERT(n <= maildir_uidlist_serialized_bytes(list));
    *len_out = n;
    return 0;
}

uint32_t
maildir_uidlist_uidvalidity_next(uint32_t last, time_t now)
{
    uint32_t t = now > 0 && (uint64_t)now < UINT32_MAX ? (uint32_t)now : 1;
    if (t <= last) {
        t = last + 1;
    }
    return t == 0 ? 1 : t;
}

int
maildir_uidlist_uidvalidity_file_parse(const char *buf, size_t len, uint32_t *value_out)
{
    ASSERT(value_out != NULL);
    if (len > 0 && buf[len - 1] == '\n') {
        len--; /* tolerate a newline an operator's editor added */
    }
    if (len == 0 || len > 8) {
        return -EINVAL;
    }
    uint32_t v = 0;
    for (size_t i = 0; i < len; i++) {
        char c = buf[i];
        uint32_t d;
        if (c >= '0' && c <= '9') {
            d = (uint32_t)(c - '0');
        } else if (c >= 'a' && c <= 'f') {
            d = (uint32_t)(c - 'a' + 10);
        } else if (c >= 'A' && c <= 'F') {
            d = (uint32_t)(c - 'A' + 10);
        } else {
            return -EINVAL;
        }
        v = (v << 4) | d;
    }
    *value_out = v;
    return 0;
}

int
maildir_uidlist_uidvalidity_file_format(uint32_t value, char *out, size_t out_bytes)
{
    ASSERT(out != NULL);
    ASSERT(out_bytes >= 9);
    int n = snprintf(out, out_bytes, "%08" PRIx32, value);
    ASSERT(n == 8);
    return n;
}

/* ---- lock protocol: Dovecot's dotlock (store/maildir_dotlock.c) ---- */

int
maildir_uidlist_lock(int dir_fd, time_t now, int *lock_fd_out)
{
    return maildir_dotlock_take(dir_fd, MAILDIR_UIDLIST_NAME, MAILDIR_UIDLIST_LOCK_STALE_S, now,
                                lock_fd_out);
}

int
maildir_uidlist_commit(int dir_fd, int lock_fd, const char *buf, size_t len)
{
    ASSERT(buf != NULL);
    ASSERT(len >= 2 && buf[0] == '3' && buf[len - 1] == '\n'); /* our own serialization */
    return maildir_dotlock_replace(dir_fd, MAILDIR_UIDLIST_NAME, lock_fd, buf, len);
}

int
maildir_uidlist_unlock(int dir_fd, int lock_fd)
{
    return maildir_dotlock_release(dir_fd, MAILDIR_UIDLIST_NAME, lock_fd);
}
