/*
 * store/maildir_keywords.c - the dovecot-keywords table (see
 * maildir_keywords.h). Pure code; loops are bounded by the buffer length
 * and by the 26 slots.
 */
#include "store/maildir_keywords.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "core/assertions.h"

static_assert(MAILDIR_KEYWORD_BYTES_MAX <= UINT8_MAX, "lens[] holds a name length");

void
maildir_keywords_init(struct maildir_keywords *kw)
{
    ASSERT(kw != NULL);
    memset(kw, 0, sizeof(*kw));
}

bool
maildir_keywords_is_valid(const char *name, size_t len)
{
    if (len == 0 || len > MAILDIR_KEYWORD_BYTES_MAX) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c <= 0x20 || c >= 0x7f || strchr("(){%*\"\\]", c) != NULL) {
            return false;
        }
    }
    return true;
}

static void
keywords_store(struct maildir_keywords *kw, unsigned index, const char *name, size_t len)
{
    ASSERT(index < MAILDIR_KEYWORDS_MAX);
    ASSERT(len <= MAILDIR_KEYWORD_BYTES_MAX);
    memcpy(kw->names[index], name, len);
    kw->names[index][len] = '\0';
    kw->lens[index] = (uint8_t)len;
    kw->used |= UINT32_C(1) << index;
}

int
maildir_keywords_parse(struct maildir_keywords *kw, const char *buf, size_t len,
                       size_t *skipped_out)
{
    ASSERT(kw != NULL);
    ASSERT(buf != NULL || len == 0);
    maildir_keywords_init(kw);
    size_t skipped = 0;
    size_t pos = 0;
    while (pos < len) {
        const char *line = buf + pos;
        const char *nl = memchr(line, '\n', len - pos);
        size_t line_len = nl != NULL ? (size_t)(nl - line) : len - pos;
        pos += line_len + (nl != NULL ? 1 : 0);

        /* "<index> <name>": index is 1-2 digits, no leading zero but "0". */
        size_t i = 0;
        unsigned index = 0;
        while (i < line_len && i < 3 && line[i] >= '0' && line[i] <= '9') {
            index = index * 10 + (unsigned)(line[i] - '0');
            i++;
        }
        bool ok = i > 0 && i < 3 && !(i == 2 && line[0] == '0') && i < line_len &&
                  line[i] == ' ' && index < MAILDIR_KEYWORDS_MAX &&
                  (kw->used & (UINT32_C(1) << index)) == 0 &&
                  maildir_keywords_is_valid(line + i + 1, line_len - i - 1);
        if (!ok) {
            if (line_len > 0) {
                skipped++;
            }
            continue;
        }
        keywords_store(kw, index, line + i + 1, line_len - i - 1);
    }
    if (skipped_out != NULL) {
        *skipped_out = skipped;
    }
    return 0;
}

int
maildir_keywords_lookup(const struct maildir_keywords *kw, const char *name, size_t len)
{
    ASSERT(kw != NULL);
    for (unsigned i = 0; i < MAILDIR_KEYWORDS_MAX; i++) {
        if ((kw->used & (UINT32_C(1) << i)) != 0 && kw->lens[i] == len &&
            strncasecmp(kw->names[i], name, len) == 0) {
            return (int)i;
        }
    }
    return -ENOENT;
}

int
maildir_keywords_add(struct maildir_keywords *kw, const char *name, size_t len)
{
    ASSERT(kw != NULL);
    if (!maildir_keywords_is_valid(name, len)) {
        return -EINVAL;
    }
    int found = maildir_keywords_lookup(kw, name, len);
    if (found >= 0) {
        return found;
    }
    for (unsigned i = 0; i < MAILDIR_KEYWORDS_MAX; i++) {
        if ((kw->used & (UINT32_C(1) << i)) == 0) {
            keywords_store(kw, i, name, len);
            return (int)i;
        }
    }
    return -ENOSPC;
}

const char *
maildir_keywords_name(const struct maildir_keywords *kw, unsigned index)
{
    ASSERT(kw != NULL);
    if (index >= MAILDIR_KEYWORDS_MAX || (kw->used & (UINT32_C(1) << index)) == 0) {
        return NULL;
    }
    return kw->names[index];
}

int
maildir_keywords_serialize(const struct maildir_keywords *kw, char *out, size_t out_bytes,
                           size_t *len_out)
{
    ASSERT(kw != NULL);
    ASSERT(out != NULL);
    ASSERT(len_out != NULL);
    size_t n = 0;
    for (unsigned i = 0; i < MAILDIR_KEYWORDS_MAX; i++) {
        if ((kw->used & (UINT32_C(1) << i)) == 0) {
            continue;
        }
        ASSERT(kw->lens[i] > 0);
        size_t need = (i < 10 ? 2 : 3) + (size_t)kw->lens[i] + 1;
        if (out_bytes - n < need) {
            return -ENOBUFS;
        }
        int w = snprintf(out + n, out_bytes - n, "%u ", i);
        ASSERT(w > 0 && (size_t)w == need - (size_t)kw->lens[i] - 1);
        n += (size_t)w;
        memcpy(out + n, kw->names[i], kw->lens[i]);
        n += kw->lens[i];
        out[n++] = '\n';
    }
    ASSERT(n <= MAILDIR_KEYWORDS_FILE_BYTES_MAX);
    *len_out = n;
    return 0;
}
