/*
 * filters/dmarc_record.c - reading a DMARC record (RFC 7489 6.3, 6.4).
 *
 * Input is TXT text from the network: bounded by DMARC_RECORD_BYTES_MAX
 * and DMARC_TAGS_MAX, every byte checked, nothing asserted about it.
 * Writes only into the caller's struct. Runs on worker threads.
 */
#include "filters/dmarc_record.h"

#include <errno.h>
#include <string.h>
#include <strings.h>

#include "core/ascii.h"
#include "core/assertions.h"

struct span_text {
    const char *p;
    size_t n;
};

static bool
is_wsp(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static struct span_text
trim(const char *p, size_t n)
{
    while (n > 0 && is_wsp(p[0])) {
        p++;
        n--;
    }
    while (n > 0 && is_wsp(p[n - 1])) {
        n--;
    }
    return (struct span_text){p, n};
}

static bool
span_is(struct span_text s, const char *want)
{
    return s.n == strlen(want) && strncasecmp(s.p, want, s.n) == 0;
}

bool
dmarc_record_is_dmarc(const char *text, size_t len)
{
    ASSERT(text != NULL || len == 0);
    const char *semi = memchr(text, ';', len);
    size_t first = semi != NULL ? (size_t)(semi - text) : len;
    const char *eq = memchr(text, '=', first);
    if (eq == NULL) {
        return false;
    }
    struct span_text name = trim(text, (size_t)(eq - text));
    struct span_text value = trim(eq + 1, first - (size_t)(eq - text) - 1);
    /* The version is compared exactly: "v=DMARC1", upper case. */
    return name.n == 1 && name.p[0] == 'v' && value.n == 6 && memcmp(value.p, "DMARC1", 6) == 0;
}

static bool
parse_policy(struct span_text v, enum dmarc_policy *out)
{
    if (span_is(v, "none")) {
        *out = DMARC_POLICY_NONE;
    } else if (span_is(v, "quarantine")) {
        *out = DMARC_POLICY_QUARANTINE;
    } else if (span_is(v, "reject")) {
        *out = DMARC_POLICY_REJECT;
    } else {
        return false;
    }
    return true;
}

static bool
parse_uint(struct span_text v, uint32_t max, uint32_t *out)
{
    if (v.n == 0 || v.n > 10) {
        return false;
    }
    uint64_t x = 0;
    for (size_t i = 0; i < v.n; i++) {
        if (v.p[i] < '0' || v.p[i] > '9') {
            return false;
        }
        x = x * 10 + (uint64_t)(v.p[i] - '0');
    }
    if (x > max) {
        return false;
    }
    *out = (uint32_t)x;
    return true;
}

/* dmarc-uri = URI [ "!" 1*DIGIT [ "k" / "m" / "g" / "t" ] ]; the URI
 * needs a scheme ("mailto:") and a non-empty rest without spaces. */
static bool
uri_is_valid(struct span_text u)
{
    if (u.n == 0 || u.n >= DMARC_URI_BYTES_MAX) {
        return false;
    }
    size_t i = 0;
    if (!((u.p[0] >= 'a' && u.p[0] <= 'z') || (u.p[0] >= 'A' && u.p[0] <= 'Z'))) {
        return false;
    }
    while (i < u.n && u.p[i] != ':') {
        char c = u.p[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '+' || c == '-' || c == '.';
        if (!ok) {
            return false;
        }
        i++;
    }
    if (i == u.n || i + 1 == u.n) {
        return false;
    }
    const char *bang = memchr(u.p + i, '!', u.n - i);
    size_t end = bang != NULL ? (size_t)(bang - u.p) : u.n;
    if (end == i + 1) {
        return false;
    }
    for (size_t j = i + 1; j < end; j++) {
        unsigned char c = (unsigned char)u.p[j];
        if (c <= 0x20 || c >= 0x7f) {
            return false;
        }
    }
    if (bang != NULL) {
        size_t k = end + 1;
        size_t digits = 0;
        while (k < u.n && u.p[k] >= '0' && u.p[k] <= '9') {
            k++;
            digits++;
        }
        if (digits == 0) {
            return false;
        }
        if (k < u.n && strchr("kmgtKMGT", u.p[k]) != NULL) {
            k++;
        }
        if (k != u.n) {
            return false;
        }
    }
    return true;
}

static void
parse_uris(struct span_text v, char (*out)[DMARC_URI_BYTES_MAX], size_t *count)
{
    size_t pos = 0;
    while (pos <= v.n) {
        const char *comma = memchr(v.p + pos, ',', v.n - pos);
        size_t end = comma != NULL ? (size_t)(comma - v.p) : v.n;
        struct span_text u = trim(v.p + pos, end - pos);
        if (uri_is_valid(u) && *count < DMARC_URIS_MAX) {
            memcpy(out[*count], u.p, u.n);
            out[*count][u.n] = '\0';
            (*count)++;
        }
        pos = end + 1;
    }
}

static unsigned
parse_fo(struct span_text v)
{
    unsigned fo = 0;
    size_t pos = 0;
    while (pos <= v.n) {
        const char *colon = memchr(v.p + pos, ':', v.n - pos);
        size_t end = colon != NULL ? (size_t)(colon - v.p) : v.n;
        struct span_text o = trim(v.p + pos, end - pos);
        if (span_is(o, "0")) {
            fo |= DMARC_FO_0;
        } else if (span_is(o, "1")) {
            fo |= DMARC_FO_1;
        } else if (span_is(o, "d")) {
            fo |= DMARC_FO_D;
        } else if (span_is(o, "s")) {
            fo |= DMARC_FO_S;
        } else {
            return DMARC_FO_0; /* a bad value: the default */
        }
        pos = end + 1;
    }
    return fo;
}

static bool
tag_name_is_valid(struct span_text name)
{
    if (name.n == 0 ||
        !((name.p[0] >= 'a' && name.p[0] <= 'z') || (name.p[0] >= 'A' && name.p[0] <= 'Z'))) {
        return false;
    }
    for (size_t i = 1; i < name.n; i++) {
        char c = name.p[i];
        bool ok =
            (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
        if (!ok) {
            return false;
        }
    }
    return true;
}

const char *
dmarc_policy_name(enum dmarc_policy policy)
{
    switch (policy) {
    case DMARC_POLICY_NONE:
        return "none";
    case DMARC_POLICY_QUARANTINE:
        return "quarantine";
    case DMARC_POLICY_REJECT:
        return "reject";
    }
    ASSERT(!"unknown dmarc policy");
    return "none";
}

int
dmarc_record_parse(const char *text, size_t len, struct dmarc_record *out)
{
    ASSERT(text != NULL || len == 0);
    ASSERT(out != NULL);
    memset(out, 0, sizeof(*out));
    out->pct = 100;
    out->fo = DMARC_FO_0;
    out->ri_s = 86400;
    if (!dmarc_record_is_dmarc(text, len)) {
        return -ENOENT;
    }
    if (len > DMARC_RECORD_BYTES_MAX) {
        return -EINVAL;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)text[i];
        if ((c < 0x20 && !is_wsp((char)c)) || c >= 0x7f) {
            return -EINVAL;
        }
    }
    /* Names seen, to refuse repeats (a tag-list rule, RFC 6376 3.2). */
    struct span_text seen[DMARC_TAGS_MAX];
    size_t seen_count = 0;
    bool has_p = false;
    bool is_p_bad = false;
    bool is_sp_bad = false;
    size_t pos = 0;
    while (pos < len) {
        const char *semi = memchr(text + pos, ';', len - pos);
        size_t end = semi != NULL ? (size_t)(semi - text) : len;
        struct span_text spec = trim(text + pos, end - pos);
        pos = end + 1;
        if (spec.n == 0) {
            continue; /* empty spec (";;" or a final ";"): tolerated */
        }
        const char *eq = memchr(spec.p, '=', spec.n);
        if (eq == NULL) {
            return -EINVAL;
        }
        struct span_text name = trim(spec.p, (size_t)(eq - spec.p));
        struct span_text value = trim(eq + 1, spec.n - (size_t)(eq - spec.p) - 1);
        if (!tag_name_is_valid(name)) {
            return -EINVAL;
        }
        for (size_t i = 0; i < seen_count; i++) {
            if (seen[i].n == name.n && strncasecmp(seen[i].p, name.p, name.n) == 0) {
                return -EINVAL;
            }
        }
        if (seen_count == DMARC_TAGS_MAX) {
            return -EINVAL;
        }
        seen[seen_count++] = name;
        if (seen_count == 1) {
            continue; /* v=DMARC1, checked above */
        }
        if (span_is(name, "v")) {
            return -EINVAL; /* v= only first (caught as a repeat, kept for clarity) */
        } else if (span_is(name, "p")) {
            has_p = true;
            is_p_bad = !parse_policy(value, &out->p);
        } else if (span_is(name, "sp")) {
            out->has_sp = parse_policy(value, &out->sp);
            is_sp_bad = !out->has_sp;
        } else if (span_is(name, "pct")) {
            uint32_t pct;
            if (parse_uint(value, 100, &pct)) {
                out->pct = pct;
            }
        } else if (span_is(name, "adkim") || span_is(name, "aspf")) {
            enum dmarc_alignment *a = span_is(name, "adkim") ? &out->adkim : &out->aspf;
            if (span_is(value, "s")) {
                *a = DMARC_ALIGN_STRICT;
            } else {
                *a = DMARC_ALIGN_RELAXED; /* "r", or the default for a bad value */
            }
        } else if (span_is(name, "fo")) {
            out->fo = parse_fo(value);
        } else if (span_is(name, "ri")) {
            uint32_t ri;
            if (parse_uint(value, UINT32_MAX, &ri)) {
                out->ri_s = ri;
            }
        } else if (span_is(name, "rua")) {
            parse_uris(value, out->rua, &out->rua_count);
        } else if (span_is(name, "ruf")) {
            parse_uris(value, out->ruf, &out->ruf_count);
        }
        /* rf= and unknown tags: ignored. */
    }
    if (!has_p || is_p_bad || is_sp_bad) {
        /* RFC 7489 6.6.3 step 6. */
        if (out->rua_count == 0) {
            return -EINVAL;
        }
        out->p = DMARC_POLICY_NONE;
        out->has_sp = false;
        out->is_p_fallback = true;
    }
    if (!out->has_sp) {
        out->sp = out->p;
    }
    return 0;
}
