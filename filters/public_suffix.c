/*
 * filters/public_suffix.c - the Public Suffix List as one read-only hash
 * table, and the organizational-domain lookup DMARC uses.
 *
 * Owns the table built from the list file at start-up: an arena of rule
 * names (lower-case A-label form) and an open-addressing index of them,
 * each with flags saying whether the name is a normal rule, the base of a
 * wildcard rule ("*.name") or an exception ("!name"). After load nothing
 * is written, so any thread may look up without locks. Lookups copy the
 * name into a stack buffer and probe at most one key per label.
 * Limits: PUBLIC_SUFFIX_FILE_BYTES_MAX, PUBLIC_SUFFIX_RULES_MAX,
 * PUBLIC_SUFFIX_LINE_BYTES_MAX, names of PUBLIC_SUFFIX_NAME_BYTES_MAX.
 */
#define _GNU_SOURCE /* memmem */
#include "filters/public_suffix.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/ascii.h"
#include "core/assertions.h"
#include "core/hash.h"
#include "core/utf8.h"

#define RULE_NORMAL 1u    /* "name" is a rule */
#define RULE_WILDCARD 2u  /* "*.name" is a rule */
#define RULE_EXCEPTION 4u /* "!name" is a rule */
#define LABELS_MAX 128u   /* 253 octets hold at most 127 labels */
#define LABEL_BYTES_MAX 63u

struct public_suffix_rule {
    uint32_t offset; /* into arena */
    uint16_t len;
    uint8_t flags;
};

struct public_suffix {
    char *arena;
    size_t arena_used;
    size_t arena_bytes;
    struct public_suffix_rule *rules;
    size_t rule_count;
    size_t rule_capacity;
    uint32_t *slots; /* rule index + 1, 0 = free */
    size_t slot_count;
    size_t flag_count; /* rules counted with each flag separately */
};

static int label_to_ascii(const char *label, size_t len, char *out, size_t out_bytes,
                          size_t *out_len);
static int punycode_encode(const uint32_t *cps, size_t count, char *out, size_t out_bytes,
                           size_t *out_len);
static const struct public_suffix_rule *rule_find(const struct public_suffix *ps, const char *key,
                                                  size_t len);
static int rule_add(struct public_suffix *ps, const char *key, size_t len, uint8_t flag);
static int load_line(struct public_suffix *ps, const char *line, size_t len, bool *is_private,
                     unsigned flags);

int
public_suffix_load(const char *path, unsigned flags, struct public_suffix **ps_out,
                   unsigned *line_out)
{
    ASSERT(path != NULL);
    ASSERT(ps_out != NULL);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return -errno;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int err = -errno;
        (void)close(fd); /* read-only descriptor: nothing to lose on close */
        return err;
    }
    if (st.st_size < 0 || (uint64_t)st.st_size > PUBLIC_SUFFIX_FILE_BYTES_MAX) {
        (void)close(fd);
        return -EFBIG;
    }
    size_t size = (size_t)st.st_size;
    char *text = malloc(size + 1);
    if (text == NULL) {
        (void)close(fd);
        return -ENOMEM;
    }
    size_t got = 0;
    while (got < size) {
        ssize_t n = read(fd, text + got, size - got);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            int err = -errno;
            free(text);
            (void)close(fd);
            return err;
        }
        if (n == 0) {
            break; /* the file shrank while we read it: use what is there */
        }
        got += (size_t)n;
    }
    (void)close(fd);
    int rc = public_suffix_load_buffer(text, got, flags, ps_out, line_out);
    free(text);
    return rc;
}

int
public_suffix_load_buffer(const char *text, size_t len, unsigned flags,
                          struct public_suffix **ps_out, unsigned *line_out)
{
    ASSERT(ps_out != NULL);
    ASSERT(text != NULL || len == 0);
    if (text == NULL) {
        text = ""; /* an empty list; keeps the line loop's pointers non-null */
    }
    *ps_out = NULL;
    if (len > PUBLIC_SUFFIX_FILE_BYTES_MAX) {
        return -EFBIG;
    }
    struct public_suffix *ps = calloc(1, sizeof(*ps));
    if (ps == NULL) {
        return -ENOMEM;
    }
    /* A rule's A-label form can be longer than its UTF-8 form, but never
     * more than 253 octets; the arena grows by doubling within that. */
    ps->arena_bytes = len + 1024;
    ps->arena = malloc(ps->arena_bytes);
    ps->rule_capacity = 1024;
    ps->rules = malloc(ps->rule_capacity * sizeof(*ps->rules));
    if (ps->arena == NULL || ps->rules == NULL) {
        public_suffix_destroy(&ps);
        return -ENOMEM;
    }
    bool is_private = false;
    unsigned line_no = 0;
    size_t pos = 0;
    int rc = 0;
    while (pos < len) {
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t end = nl != NULL ? (size_t)(nl - text) : len;
        line_no++;
        rc = load_line(ps, text + pos, end - pos, &is_private, flags);
        if (rc != 0) {
            break;
        }
        pos = end + 1;
    }
    if (rc != 0) {
        if (line_out != NULL) {
            *line_out = line_no;
        }
        public_suffix_destroy(&ps);
        return rc;
    }
    *ps_out = ps;
    return 0;
}

void
public_suffix_destroy(struct public_suffix **ps)
{
    ASSERT(ps != NULL);
    if (*ps == NULL) {
        return;
    }
    free((*ps)->arena);
    free((*ps)->rules);
    free((*ps)->slots);
    free(*ps);
    *ps = NULL;
}

size_t
public_suffix_rule_count(const struct public_suffix *ps)
{
    ASSERT(ps != NULL);
    return ps->flag_count;
}

int
public_suffix_normalize(const char *name, char *out, size_t out_bytes)
{
    ASSERT(name != NULL);
    ASSERT(out != NULL);
    size_t len = strlen(name);
    if (len > 0 && name[len - 1] == '.') {
        len--;
    }
    if (len == 0) {
        return -EINVAL;
    }
    char buf[PUBLIC_SUFFIX_NAME_BYTES_MAX + 1];
    size_t used = 0;
    size_t pos = 0;
    while (pos <= len) {
        const char *dot = memchr(name + pos, '.', len - pos);
        size_t end = dot != NULL ? (size_t)(dot - name) : len;
        if (end == pos) {
            return -EINVAL;
        }
        if (used > 0) {
            if (used + 1 > PUBLIC_SUFFIX_NAME_BYTES_MAX) {
                return -EINVAL;
            }
            buf[used++] = '.';
        }
        size_t label_len = 0;
        int rc = label_to_ascii(name + pos, end - pos, buf + used,
                                PUBLIC_SUFFIX_NAME_BYTES_MAX - used, &label_len);
        if (rc != 0) {
            return -EINVAL;
        }
        used += label_len;
        pos = end + 1;
    }
    if (used + 1 > out_bytes) {
        return -ENOSPC;
    }
    memcpy(out, buf, used);
    out[used] = '\0';
    return 0;
}

/* The number of trailing labels of the normalized name (label_count labels
 * starting at starts[]) that form its public suffix. */
static size_t
suffix_labels(const struct public_suffix *ps, const char *name, size_t name_len,
              const size_t *starts, size_t label_count)
{
    size_t best = 1; /* the implicit "*" rule */
    for (size_t k = 1; k <= label_count; k++) {
        size_t start = starts[label_count - k];
        const struct public_suffix_rule *r = rule_find(ps, name + start, name_len - start);
        if (r != NULL && (r->flags & RULE_EXCEPTION) != 0) {
            /* An exception prevails over every other rule; its suffix is
             * the rule minus its leftmost label. */
            return k - 1;
        }
        if (r != NULL && (r->flags & RULE_NORMAL) != 0 && k > best) {
            best = k;
        }
        if (k >= 2) {
            size_t parent = starts[label_count - k + 1];
            const struct public_suffix_rule *w = rule_find(ps, name + parent, name_len - parent);
            if (w != NULL && (w->flags & RULE_WILDCARD) != 0 && k > best) {
                best = k;
            }
        }
    }
    return best;
}

static int
split_normalized(const char *name, char *norm, size_t *norm_len_out, size_t *starts,
                 size_t *count_out)
{
    int rc = public_suffix_normalize(name, norm, PUBLIC_SUFFIX_NAME_BYTES_MAX + 1);
    if (rc != 0) {
        return rc == -ENOSPC ? -EINVAL : rc;
    }
    size_t n = strlen(norm);
    size_t count = 0;
    starts[count++] = 0;
    for (size_t i = 0; i < n; i++) {
        if (norm[i] == '.') {
            ASSERT(count < LABELS_MAX);
            starts[count++] = i + 1;
        }
    }
    *norm_len_out = n;
    *count_out = count;
    return 0;
}

int
public_suffix_suffix(const struct public_suffix *ps, const char *name, char *out, size_t out_bytes)
{
    ASSERT(ps != NULL);
    char norm[PUBLIC_SUFFIX_NAME_BYTES_MAX + 1];
    size_t starts[LABELS_MAX];
    size_t n = 0;
    size_t count = 0;
    int rc = split_normalized(name, norm, &n, starts, &count);
    if (rc != 0) {
        return rc;
    }
    size_t k = suffix_labels(ps, norm, n, starts, count);
    if (k == 0) {
        k = 1; /* an exception rule of one label ("!tld") cannot happen; be safe */
    }
    size_t start = starts[count - k];
    if (n - start + 1 > out_bytes) {
        return -ENOSPC;
    }
    memcpy(out, norm + start, n - start + 1);
    return 0;
}

int
public_suffix_org_domain(const struct public_suffix *ps, const char *name, char *out,
                         size_t out_bytes)
{
    ASSERT(ps != NULL);
    char norm[PUBLIC_SUFFIX_NAME_BYTES_MAX + 1];
    size_t starts[LABELS_MAX];
    size_t n = 0;
    size_t count = 0;
    int rc = split_normalized(name, norm, &n, starts, &count);
    if (rc != 0) {
        return rc;
    }
    size_t k = suffix_labels(ps, norm, n, starts, count);
    int result = 0;
    size_t start = 0;
    if (k + 1 <= count) {
        start = starts[count - k - 1];
    } else {
        result = 1; /* the name is a public suffix: no organizational domain */
    }
    if (n - start + 1 > out_bytes) {
        return -ENOSPC;
    }
    memcpy(out, norm + start, n - start + 1);
    return result;
}

/* One line of the list: a comment, a section marker, empty, or a rule. */
static int
load_line(struct public_suffix *ps, const char *line, size_t len, bool *is_private, unsigned flags)
{
    ASSERT(line != NULL);
    if (len > PUBLIC_SUFFIX_LINE_BYTES_MAX) {
        return -EINVAL;
    }
    if (len >= 2 && line[0] == '/' && line[1] == '/') {
        static const char begin_private[] = "===BEGIN PRIVATE DOMAINS===";
        static const char end_private[] = "===END PRIVATE DOMAINS===";
        if (len >= 3 && memmem(line, len, begin_private, sizeof(begin_private) - 1) != NULL) {
            *is_private = true;
        } else if (len >= 3 && memmem(line, len, end_private, sizeof(end_private) - 1) != NULL) {
            *is_private = false;
        }
        return 0;
    }
    /* The rule is the text up to the first white space. */
    size_t end = 0;
    while (end < len && line[end] != ' ' && line[end] != '\t' && line[end] != '\r') {
        end++;
    }
    if (end == 0) {
        return 0;
    }
    if (*is_private && (flags & PUBLIC_SUFFIX_ICANN_ONLY) != 0) {
        return 0;
    }
    uint8_t flag = RULE_NORMAL;
    const char *rule = line;
    if (rule[0] == '!') {
        flag = RULE_EXCEPTION;
        rule++;
        end--;
    } else if (end >= 2 && rule[0] == '*' && rule[1] == '.') {
        flag = RULE_WILDCARD;
        rule += 2;
        end -= 2;
    }
    char raw[PUBLIC_SUFFIX_LINE_BYTES_MAX + 1];
    memcpy(raw, rule, end);
    raw[end] = '\0';
    if (memchr(raw, '*', end) != NULL || memchr(raw, '!', end) != NULL) {
        return -EINVAL; /* wildcards only as the leftmost label */
    }
    char norm[PUBLIC_SUFFIX_NAME_BYTES_MAX + 1];
    int rc = public_suffix_normalize(raw, norm, sizeof(norm));
    if (rc != 0) {
        return -EINVAL;
    }
    return rule_add(ps, norm, strlen(norm), flag);
}

static const struct public_suffix_rule *
rule_find(const struct public_suffix *ps, const char *key, size_t len)
{
    if (ps->slot_count == 0) {
        return NULL;
    }
    size_t mask = ps->slot_count - 1;
    size_t s = hash_fnv1a(key, len) & mask;
    /* At most half full, so a free slot ends every probe. */
    while (ps->slots[s] != 0) {
        const struct public_suffix_rule *r = &ps->rules[ps->slots[s] - 1];
        if (r->len == len && memcmp(ps->arena + r->offset, key, len) == 0) {
            return r;
        }
        s = (s + 1) & mask;
    }
    return NULL;
}

/* Add a rule while loading. Duplicate names merge their flags. The index
 * is kept current (and at most half full) as rules arrive, so it is the
 * final index when loading ends. */
static int
rule_add(struct public_suffix *ps, const char *key, size_t len, uint8_t flag)
{
    if (ps->slot_count == 0 || ps->rule_count * 2 + 2 > ps->slot_count) {
        size_t slots = ps->slot_count == 0 ? 4096 : ps->slot_count * 2;
        uint32_t *fresh = calloc(slots, sizeof(*fresh));
        if (fresh == NULL) {
            return -ENOMEM;
        }
        for (size_t i = 0; i < ps->rule_count; i++) {
            const struct public_suffix_rule *r = &ps->rules[i];
            hash_slots_put(fresh, slots, hash_fnv1a(ps->arena + r->offset, r->len),
                           (uint32_t)(i + 1));
        }
        free(ps->slots);
        ps->slots = fresh;
        ps->slot_count = slots;
    }
    struct public_suffix_rule *existing = (struct public_suffix_rule *)rule_find(ps, key, len);
    if (existing != NULL) {
        if ((existing->flags & flag) == 0) {
            existing->flags |= flag;
            ps->flag_count++;
        }
        return 0;
    }
    if (ps->flag_count >= PUBLIC_SUFFIX_RULES_MAX) {
        return -E2BIG;
    }
    if (ps->rule_count == ps->rule_capacity) {
        struct public_suffix_rule *grown =
            realloc(ps->rules, ps->rule_capacity * 2 * sizeof(*grown));
        if (grown == NULL) {
            return -ENOMEM;
        }
        ps->rules = grown;
        ps->rule_capacity *= 2;
    }
    if (ps->arena_used + len > ps->arena_bytes) {
        size_t bytes = ps->arena_bytes * 2 + len;
        char *grown = realloc(ps->arena, bytes);
        if (grown == NULL) {
            return -ENOMEM;
        }
        ps->arena = grown;
        ps->arena_bytes = bytes;
    }
    memcpy(ps->arena + ps->arena_used, key, len);
    ps->rules[ps->rule_count] = (struct public_suffix_rule){
        .offset = (uint32_t)ps->arena_used, .len = (uint16_t)len, .flags = flag};
    ps->arena_used += len;
    ps->rule_count++;
    ps->flag_count++;
    hash_slots_put(ps->slots, ps->slot_count, hash_fnv1a(key, len), (uint32_t)ps->rule_count);
    return 0;
}

/* One label to lower-case ASCII: ASCII labels are lower-cased, labels with
 * 8-bit bytes must be UTF-8 and become "xn--" + Punycode. */
static int
label_to_ascii(const char *label, size_t len, char *out, size_t out_bytes, size_t *out_len)
{
    bool is_ascii = true;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)label[i];
        if (c <= 0x20 || c == 0x7f) {
            return -EINVAL;
        }
        if (c >= 0x80) {
            is_ascii = false;
        }
    }
    if (is_ascii) {
        if (len > LABEL_BYTES_MAX || len > out_bytes) {
            return -EINVAL;
        }
        for (size_t i = 0; i < len; i++) {
            out[i] = (char)ascii_lower((unsigned char)label[i]);
        }
        *out_len = len;
        return 0;
    }
    uint32_t cps[LABEL_BYTES_MAX];
    size_t count = 0;
    size_t i = 0;
    while (i < len) {
        uint32_t cp;
        size_t n = utf8_decode_strict((const unsigned char *)label + i, len - i, &cp);
        if (n == 0 || count == LABEL_BYTES_MAX) {
            return -EINVAL;
        }
        cps[count++] = cp < 0x80 ? ascii_lower((unsigned char)cp) : cp;
        i += n;
    }
    if (out_bytes < 4) {
        return -EINVAL;
    }
    memcpy(out, "xn--", 4);
    size_t coded = 0;
    int rc = punycode_encode(cps, count, out + 4, out_bytes - 4, &coded);
    if (rc != 0 || coded + 4 > LABEL_BYTES_MAX) {
        return -EINVAL;
    }
    *out_len = coded + 4;
    return 0;
}

enum {
    PUNY_BASE = 36,
    PUNY_TMIN = 1,
    PUNY_TMAX = 26,
    PUNY_SKEW = 38,
    PUNY_DAMP = 700,
    PUNY_INITIAL_BIAS = 72,
    PUNY_INITIAL_N = 128,
};

static uint32_t
puny_adapt(uint32_t delta, uint32_t points, bool is_first)
{
    delta = is_first ? delta / PUNY_DAMP : delta / 2;
    delta += delta / points;
    uint32_t k = 0;
    while (delta > ((PUNY_BASE - PUNY_TMIN) * PUNY_TMAX) / 2) {
        delta /= PUNY_BASE - PUNY_TMIN;
        k += PUNY_BASE;
    }
    return k + (PUNY_BASE - PUNY_TMIN + 1) * delta / (delta + PUNY_SKEW);
}

static char
puny_digit(uint32_t d)
{
    return (char)(d < 26 ? 'a' + d : '0' + (d - 26));
}

/* RFC 3492 section 6.3 with its overflow checks (delta can reach
 * 0x110000 * 64 for a 63-code-point label, close to 2^32). */
static int
punycode_encode(const uint32_t *cps, size_t count, char *out, size_t out_bytes, size_t *out_len)
{
    size_t used = 0;
    for (size_t j = 0; j < count; j++) {
        if (cps[j] < 0x80) {
            if (used == out_bytes) {
                return -ENOSPC;
            }
            out[used++] = (char)cps[j];
        }
    }
    uint32_t b = (uint32_t)used;
    uint32_t h = b;
    if (b > 0) {
        if (used == out_bytes) {
            return -ENOSPC;
        }
        out[used++] = '-';
    }
    uint32_t n = PUNY_INITIAL_N;
    uint32_t delta = 0;
    uint32_t bias = PUNY_INITIAL_BIAS;
    while (h < count) {
        uint32_t m = UINT32_MAX;
        for (size_t j = 0; j < count; j++) {
            if (cps[j] >= n && cps[j] < m) {
                m = cps[j];
            }
        }
        if ((uint64_t)delta + (uint64_t)(m - n) * (h + 1) > UINT32_MAX) {
            return -EOVERFLOW;
        }
        delta += (m - n) * (h + 1);
        n = m;
        for (size_t j = 0; j < count; j++) {
            if (cps[j] < n) {
                delta++;
                if (delta == 0) {
                    return -EOVERFLOW;
                }
            }
            if (cps[j] == n) {
                uint32_t q = delta;
                for (uint32_t k = PUNY_BASE;; k += PUNY_BASE) {
                    uint32_t t = k <= bias               ? PUNY_TMIN
                                 : k >= bias + PUNY_TMAX ? PUNY_TMAX
                                                         : k - bias;
                    if (q < t) {
                        break;
                    }
                    if (used == out_bytes) {
                        return -ENOSPC;
                    }
                    out[used++] = puny_digit(t + (q - t) % (PUNY_BASE - t));
                    q = (q - t) / (PUNY_BASE - t);
                }
                if (used == out_bytes) {
                    return -ENOSPC;
                }
                out[used++] = puny_digit(q);
                bias = puny_adapt(delta, h + 1, h == b);
                delta = 0;
                h++;
            }
        }
        delta++;
        n++;
    }
    *out_len = used;
    return 0;
}
