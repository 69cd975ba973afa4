/*
 * filters/spam_message.c - the analysis of one message for the spam
 * checks (see spam_message.h): one pass over the MIME structure from
 * proto/imap/imap_mime, then per part the decoding the checks need.
 *
 * Owns the struct spam_message and its copies of the header block and of
 * the decoded text. Runs on a worker thread. Work is linear in the bytes
 * looked at; every loop over message bytes is bounded by the message
 * length or by a limit of spam_limits.h (parts, text bytes, URLs, names).
 * Temporary buffers for one part are at most a few times
 * SPAM_TEXT_BYTES_MAX and freed before the next part.
 */
#define _GNU_SOURCE /* memmem */
#include "filters/spam_message.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "core/ascii.h"
#include "core/assertions.h"
#include "core/span.h"
#include "proto/imap/imap_decode.h"
#include "proto/imap/imap_mime.h"
#include "proto/imap/imap_rfc822.h"
#include "proto/imap/imap_text.h"

static const char gtube[] = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X";

/* Extensions Windows (and some unpackers) run or mount when opened. */
static const char *const bad_extensions[] = {
    "ade", "adp", "app",  "appx", "apk", "bat", "chm", "cmd", "com",  "cpl",  "exe",
    "hta", "img", "ins",  "iso",  "isp", "jar", "jnlp", "js", "jse",  "lib",  "lnk",
    "mde", "msc", "msi",  "msix", "msp", "mst", "pif", "ps1", "reg",  "scr",  "sct",
    "shb", "shs", "vb",   "vbe",  "vbs", "vhd", "vhdx", "vxd", "wsc", "wsf", "wsh",
};

static void analyse_header(struct spam_message *m, const char *hdr, size_t len);
static void analyse_part(struct spam_message *m, const char *msg,
                         const struct imap_mime_part *part);
static void check_names(struct spam_message *m, const struct imap_mime_part *part,
                        const char *msg);
static void add_text(struct spam_message *m, const char *msg, const struct imap_mime_part *part,
                     bool is_html);
static void find_urls(struct spam_message *m, const char *s, size_t len);
static void add_url_domain(struct spam_message *m, const char *host, size_t len);
static size_t strip_html(const char *in, size_t len, char *out, size_t out_bytes);
static void append_text(struct spam_message *m, const char *s, size_t len);
static bool span_has_prefix_nocase(const char *s, size_t len, const char *prefix);
static void compute_digest(struct spam_message *m);

int
spam_message_analyse(const char *msg, size_t len, struct spam_message **message_out)
{
    ASSERT(message_out != NULL);
    ASSERT(msg != NULL || len == 0);
    *message_out = NULL;
    struct spam_message *m = calloc(1, sizeof(*m));
    if (m == NULL) {
        return -ENOMEM;
    }
    struct imap_mime_part *parts = calloc(SPAM_PARTS_MAX, sizeof(*parts));
    /* Decoded text is at most three bytes per message byte (charsets to
     * UTF-8), so a small message gets a small buffer. */
    m->text_max = len < (SPAM_TEXT_BYTES_MAX - 16) / 3 ? 3 * len + 16 : SPAM_TEXT_BYTES_MAX;
    m->text = malloc(m->text_max + 1);
    if (parts == NULL || m->text == NULL) {
        free(parts);
        spam_message_destroy(&m);
        return -ENOMEM;
    }
    m->text[0] = '\0';

    struct imap_mime_result mr;
    (void)imap_mime_parse(msg != NULL ? msg : "", len, parts, SPAM_PARTS_MAX, &mr); /* never fails */
    ASSERT(mr.part_count >= 1);
    m->part_count = mr.part_count;
    m->is_mime_truncated = mr.is_truncated;

    size_t hlen = parts[0].header_size;
    if (hlen > SPAM_HEADER_BYTES_MAX) {
        hlen = SPAM_HEADER_BYTES_MAX;
        m->is_header_truncated = true;
    }
    m->header_block = malloc(hlen + 1);
    if (m->header_block == NULL) {
        free(parts);
        spam_message_destroy(&m);
        return -ENOMEM;
    }
    if (hlen > 0) {
        memcpy(m->header_block, msg + parts[0].header_offset, hlen);
    }
    m->header_block[hlen] = '\0';
    m->header_len = hlen;
    analyse_header(m, m->header_block, m->header_len);

    for (size_t i = 0; i < mr.part_count; i++) {
        analyse_part(m, msg, &parts[i]);
    }
    free(parts);

    m->is_gtube = m->text_len >= sizeof(gtube) - 1 &&
                  memmem(m->text, m->text_len, gtube, sizeof(gtube) - 1) != NULL;
    compute_digest(m);
    *message_out = m;
    return 0;
}

void
spam_message_destroy(struct spam_message **message)
{
    if (message == NULL || *message == NULL) {
        return;
    }
    free((*message)->header_block);
    free((*message)->text);
    free(*message);
    *message = NULL;
}

bool
spam_message_address_domain(const char *value, size_t len, char *out, size_t out_bytes)
{
    ASSERT(out_bytes > 0);
    out[0] = '\0';
    /* The first <...> holds the address when there is one; otherwise the
     * value is a bare addr-spec, maybe with a comment. Quoted display
     * names may hold '<' and '@', so skip quoted strings. */
    size_t start = 0;
    size_t end = len;
    for (size_t i = 0; i < len; i++) {
        if (value[i] == '"') {
            bool closed;
            i = imap_rfc822_quoted_end(value, len, i, &closed) - 1;
            continue;
        }
        if (value[i] == '<') {
            start = i + 1;
            const char *gt = memchr(value + start, '>', len - start);
            end = gt != NULL ? (size_t)(gt - value) : len;
            break;
        }
        if (value[i] == ',') {
            end = i; /* a second address: only the first counts */
            break;
        }
    }
    const char *at = NULL;
    for (size_t i = start; i < end; i++) {
        if (value[i] == '@') {
            at = value + i;
        }
    }
    if (at == NULL) {
        return false;
    }
    size_t n = 0;
    for (const char *c = at + 1; c < value + end; c++) {
        unsigned char u = (unsigned char)*c;
        if (u == '>' || u == '(' || u == ' ' || u == '\t' || u == '\r' || u == '\n' ||
            u == ';' || u == ',') {
            break;
        }
        if (n + 1 >= out_bytes) {
            out[0] = '\0';
            return false;
        }
        out[n++] = (char)ascii_lower(u);
    }
    while (n > 0 && out[n - 1] == '.') {
        n--;
    }
    out[n] = '\0';
    return n > 0;
}

bool
spam_message_name_is_bad(const char *name, size_t len, bool *is_double_out)
{
    *is_double_out = false;
    while (len > 0 && (name[len - 1] == '.' || name[len - 1] == ' ' || name[len - 1] == '\t')) {
        len--;
    }
    size_t dot = len;
    while (dot > 0 && name[dot - 1] != '.') {
        dot--;
    }
    if (dot == 0) {
        return false; /* no extension */
    }
    size_t ext_len = len - dot;
    bool is_bad = false;
    for (size_t i = 0; i < sizeof(bad_extensions) / sizeof(bad_extensions[0]); i++) {
        const char *e = bad_extensions[i];
        if (strlen(e) != ext_len) {
            continue;
        }
        bool eq = true;
        for (size_t k = 0; k < ext_len; k++) {
            if (ascii_lower((unsigned char)name[dot + k]) != (unsigned char)e[k]) {
                eq = false;
                break;
            }
        }
        if (eq) {
            is_bad = true;
            break;
        }
    }
    if (!is_bad) {
        return false;
    }
    /* Another extension of 2..4 letters or digits before it. */
    size_t prev_end = dot - 1; /* index of the '.' */
    size_t k = prev_end;
    while (k > 0 && name[k - 1] != '.' && prev_end - k < 5) {
        unsigned char u = (unsigned char)name[k - 1];
        if (!((u >= 'a' && u <= 'z') || (u >= 'A' && u <= 'Z') || (u >= '0' && u <= '9'))) {
            break;
        }
        k--;
    }
    size_t prev_len = prev_end - k;
    if (k > 1 && name[k - 1] == '.' && prev_len >= 2 && prev_len <= 4) {
        *is_double_out = true;
    }
    return true;
}

/* Header facts from the top-level header block. */
static void
analyse_header(struct spam_message *m, const char *hdr, size_t len)
{
    size_t pos = 0;
    struct imap_rfc822_field f;
    while (imap_rfc822_header_next(hdr, len, &pos, &f)) {
        if (span_equals_nocase(f.name, "date")) {
            m->has_date = true;
        } else if (span_equals_nocase(f.name, "message-id")) {
            m->has_message_id = true;
        } else if (span_equals_nocase(f.name, "from")) {
            if (!m->has_from) {
                m->has_from = true;
                (void)spam_message_address_domain(f.value.ptr, f.value.len, m->from_domain,
                                                  sizeof(m->from_domain));
            }
        } else if (span_equals_nocase(f.name, "reply-to")) {
            if (!m->has_reply_to) {
                m->has_reply_to = true;
                (void)spam_message_address_domain(f.value.ptr, f.value.len, m->reply_to_domain,
                                                  sizeof(m->reply_to_domain));
            }
        } else if (span_equals_nocase(f.name, "subject")) {
            if (!m->has_subject) {
                m->has_subject = true;
                /* Folding stays (as CRLF + blank), so the value can go back
                 * into a header as it is; any other CR, LF or NUL goes. */
                size_t n = 0;
                for (size_t i = 0; i < f.value.len && n + 3 < sizeof(m->subject_raw); i++) {
                    char c = f.value.ptr[i];
                    if (c == '\n' && i + 1 < f.value.len && ascii_is_blank(f.value.ptr[i + 1]) &&
                        n > 0) {
                        /* The fold and its blank go together, or not at all. */
                        if (n + 4 >= sizeof(m->subject_raw)) {
                            break;
                        }
                        m->subject_raw[n++] = '\r';
                        m->subject_raw[n++] = '\n';
                        m->subject_raw[n++] = f.value.ptr[++i];
                    } else if (c != '\r' && c != '\n' && c != '\0') {
                        m->subject_raw[n++] = c;
                    }
                }
                m->subject_raw[n] = '\0';
            }
        } else if (span_equals_nocase(f.name, "to") || span_equals_nocase(f.name, "cc")) {
            /* One '@' per address, quoted strings and comments aside. */
            for (size_t i = 0; i < f.value.len; i++) {
                char c = f.value.ptr[i];
                if (c == '"') {
                    bool closed;
                    i = imap_rfc822_quoted_end(f.value.ptr, f.value.len, i, &closed) - 1;
                } else if (c == '(') {
                    size_t next = imap_rfc822_skip_cfws(f.value.ptr, f.value.len, i);
                    i = next > i ? next - 1 : i;
                } else if (c == '@') {
                    m->header_rcpt_count++;
                }
            }
        }
    }
}

static void
analyse_part(struct spam_message *m, const char *msg, const struct imap_mime_part *part)
{
    if ((part->flags & IMAP_MIME_IS_MULTIPART) != 0) {
        if (part->boundary.len == 0) {
            m->is_multipart_no_boundary = true;
        } else if (part->first_child == IMAP_MIME_NONE) {
            m->is_multipart_no_children = true;
        }
        return;
    }
    if ((part->flags & IMAP_MIME_IS_MESSAGE) != 0) {
        return; /* its parts follow as parts of their own */
    }
    check_names(m, part, msg);
    bool is_attachment = false;
    if (part->disposition.ptr != NULL) {
        size_t p = imap_rfc822_skip_cfws(part->disposition.ptr, part->disposition.len, 0);
        is_attachment = span_has_prefix_nocase(part->disposition.ptr + p,
                                               part->disposition.len - p, "attachment");
    }
    bool is_text = part->type.len == 0 || span_equals_nocase(part->type, "text");
    if (!is_text) {
        return;
    }
    bool is_html = span_equals_nocase(part->subtype, "html");
    bool is_plain = part->subtype.len == 0 || span_equals_nocase(part->subtype, "plain");
    if (!is_attachment) {
        if (is_html) {
            m->html_part_count++;
        } else if (is_plain) {
            m->plain_part_count++;
        }
    }
    if (is_html || is_plain) {
        add_text(m, msg, part, is_html);
    }
}

/* Collect the value of parameter base ("filename" or "name") from the
 * parameter list s[pos..len), joining RFC 2231 sections and undoing the
 * percent-encoding; then RFC 2047 words are decoded. */
static size_t
param_name(const char *s, size_t len, size_t pos, const char *base, char *out, size_t out_bytes)
{
    char raw[512];
    size_t n = 0;
    size_t base_len = strlen(base);
    struct imap_rfc822_param param;
    size_t guard = 0;
    while (imap_rfc822_param_next(s, len, &pos, &param) && guard++ < 64) {
        if (param.name.len < base_len ||
            !span_equals_nocase(span_make(param.name.ptr, base_len), base)) {
            continue;
        }
        bool is_ext = param.name.len > base_len && param.name.ptr[param.name.len - 1] == '*';
        if (param.name.len > base_len && param.name.ptr[base_len] != '*') {
            continue; /* "filenamefoo" */
        }
        const char *v = param.value.ptr;
        size_t vlen = param.value.len;
        if (v == NULL) {
            continue;
        }
        bool is_first_section = param.name.len == base_len + 1 ||
                                (param.name.len >= base_len + 2 &&
                                 param.name.ptr[base_len + 1] == '0' &&
                                 (param.name.len == base_len + 2 ||
                                  param.name.ptr[base_len + 2] == '*'));
        if (is_ext && is_first_section) {
            /* charset'language'value */
            const char *q1 = memchr(v, '\'', vlen);
            const char *q2 = q1 != NULL ? memchr(q1 + 1, '\'', vlen - (size_t)(q1 + 1 - v)) : NULL;
            if (q2 != NULL) {
                vlen -= (size_t)(q2 + 1 - v);
                v = q2 + 1;
            }
        }
        for (size_t i = 0; i < vlen && n + 1 < sizeof(raw); i++) {
            char c = v[i];
            if (is_ext && c == '%' && i + 2 < vlen) {
                int hi = ascii_hex_value((unsigned char)v[i + 1]);
                int lo = ascii_hex_value((unsigned char)v[i + 2]);
                if (hi >= 0 && lo >= 0) {
                    raw[n++] = (char)(hi * 16 + lo);
                    i += 2;
                    continue;
                }
            }
            if (!is_ext && c == '\\' && param.value.kind == IMAP_RFC822_VALUE_QUOTED &&
                i + 1 < vlen) {
                c = v[++i];
            }
            raw[n++] = c;
        }
    }
    if (n == 0) {
        return 0;
    }
    return imap_text_decode_header(raw, n, out, out_bytes);
}

static void
note_bad_name(struct spam_message *m, const char *name, size_t len)
{
    bool is_double = false;
    if (!spam_message_name_is_bad(name, len, &is_double)) {
        return;
    }
    if (is_double) {
        m->has_double_bad_name = true;
    }
    if (m->bad_name_count < SPAM_BAD_NAMES_MAX) {
        char *out = m->bad_names[m->bad_name_count];
        size_t n = 0;
        for (size_t i = 0; i < len && n + 1 < SPAM_FILENAME_BYTES; i++) {
            unsigned char u = (unsigned char)name[i];
            bool ok = u > 32 && u < 127 && u != '[' && u != ']' && u != '(' && u != ')' &&
                      u != ',' && u != ';';
            out[n++] = ok ? (char)u : '?';
        }
        out[n] = '\0';
    }
    m->bad_name_count++;
}

static void
check_names(struct spam_message *m, const struct imap_mime_part *part, const char *msg)
{
    (void)msg;
    char name[256];
    if (part->disposition.ptr != NULL) {
        const char *d = part->disposition.ptr;
        size_t dlen = part->disposition.len;
        size_t pos = imap_rfc822_skip_cfws(d, dlen, 0);
        pos = imap_rfc822_token_end(d, dlen, pos);
        size_t n = param_name(d, dlen, pos, "filename", name, sizeof(name));
        if (n > 0) {
            note_bad_name(m, name, n);
        }
    }
    if (part->params.ptr != NULL && part->params.len > 0) {
        size_t n = param_name(part->params.ptr, part->params.len, 0, "name", name, sizeof(name));
        if (n > 0) {
            note_bad_name(m, name, n);
        }
    }
}

struct decode_sink {
    char  *buf;
    size_t len;
    size_t cap;
};

static void
decode_emit(void *ctx, const char *bytes, size_t len)
{
    struct decode_sink *sink = ctx;
    size_t room = sink->cap - sink->len;
    size_t n = len < room ? len : room;
    memcpy(sink->buf + sink->len, bytes, n);
    sink->len += n;
}

/* Decode the part's transfer encoding and charset, find its links, and
 * append its text (HTML stripped) within SPAM_TEXT_BYTES_MAX. */
static void
add_text(struct spam_message *m, const char *msg, const struct imap_mime_part *part, bool is_html)
{
    if (m->text_len >= m->text_max) {
        m->is_text_truncated = true;
        return;
    }
    size_t remaining = m->text_max - m->text_len;
    /* HTML shrinks when its tags go: read up to four times the room. */
    size_t in_cap = (is_html ? 4 : 2) * remaining + 16;
    const char *body = msg + part->body_offset;
    size_t body_len = part->body_size;
    if (body_len > in_cap) {
        body_len = in_cap;
        m->is_text_truncated = true;
    }
    struct decode_sink sink = { .buf = malloc(body_len + 1), .len = 0, .cap = body_len };
    if (sink.buf == NULL) {
        m->is_text_truncated = true; /* out of memory: look at less, fail nothing */
        return;
    }
    if (part->encoding.ptr != NULL && span_equals_nocase(part->encoding, "base64")) {
        /* A byte outside the alphabet ends decoding; what came before stays. */
        (void)imap_decode_base64_stream(body, body_len, decode_emit, &sink);
    } else if (part->encoding.ptr != NULL &&
               span_equals_nocase(part->encoding, "quoted-printable")) {
        (void)imap_decode_qp_stream(body, body_len, decode_emit, &sink);
    } else {
        decode_emit(&sink, body, body_len);
    }

    /* Charset to UTF-8 (unknown charsets: the bytes as they are). */
    struct span charset = { 0 };
    struct imap_rfc822_param param;
    size_t pos = 0;
    size_t guard = 0;
    while (part->params.ptr != NULL &&
           imap_rfc822_param_next(part->params.ptr, part->params.len, &pos, &param) &&
           guard++ < 64) {
        if (span_equals_nocase(param.name, "charset") && param.value.ptr != NULL) {
            charset = span_make(param.value.ptr, param.value.len);
            break;
        }
    }
    char *utf8 = sink.buf;
    size_t utf8_len = sink.len;
    char *converted = NULL;
    bool is_plain_charset = charset.len == 0 || span_equals_nocase(charset, "utf-8") ||
                            span_equals_nocase(charset, "us-ascii");
    if (!is_plain_charset) {
        size_t cap = 3 * sink.len + 4;
        converted = malloc(cap);
        if (converted != NULL) {
            long n = imap_text_to_utf8(charset, sink.buf, sink.len, converted, cap);
            if (n >= 0) {
                utf8 = converted;
                utf8_len = (size_t)n;
            }
        }
    }

    find_urls(m, utf8, utf8_len);
    if (is_html) {
        char *stripped = malloc(utf8_len + 1);
        if (stripped != NULL) {
            size_t n = strip_html(utf8, utf8_len, stripped, utf8_len + 1);
            append_text(m, stripped, n);
            free(stripped);
        } else {
            m->is_text_truncated = true;
        }
    } else {
        append_text(m, utf8, utf8_len);
    }
    free(converted);
    free(sink.buf);
}

static void
append_text(struct spam_message *m, const char *s, size_t len)
{
    if (m->text_len > 0 && m->text_len < m->text_max) {
        m->text[m->text_len++] = '\n';
    }
    size_t room = m->text_max - m->text_len;
    if (len > room) {
        len = room;
        m->is_text_truncated = true;
    }
    for (size_t i = 0; i < len; i++) {
        m->text[m->text_len++] = s[i] != '\0' ? s[i] : ' ';
    }
    m->text[m->text_len] = '\0';
}

static bool
span_has_prefix_nocase(const char *s, size_t len, const char *prefix)
{
    size_t n = strlen(prefix);
    if (len < n) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (ascii_lower((unsigned char)s[i]) != (unsigned char)prefix[i]) {
            return false;
        }
    }
    return true;
}

static bool
is_alnum(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* http://, https:// anywhere, and www. at a word start. */
static void
find_urls(struct spam_message *m, const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        size_t host_start;
        if (c == 'h' || c == 'H') {
            if (span_has_prefix_nocase(s + i, len - i, "http://")) {
                host_start = i + 7;
            } else if (span_has_prefix_nocase(s + i, len - i, "https://")) {
                host_start = i + 8;
            } else {
                continue;
            }
        } else if ((c == 'w' || c == 'W') && (i == 0 || !is_alnum((unsigned char)s[i - 1])) &&
                   span_has_prefix_nocase(s + i, len - i, "www.")) {
            host_start = i;
        } else {
            continue;
        }
        /* The authority ends at '/', '?', '#', blanks, quotes, '<', '>'. */
        size_t end = host_start;
        while (end < len && end - host_start < 512) {
            unsigned char u = (unsigned char)s[end];
            if (u == '/' || u == '?' || u == '#' || u <= ' ' || u == '"' || u == '\'' ||
                u == '<' || u == '>' || u == '\\' || u == ')' || u == ']') {
                break;
            }
            end++;
        }
        size_t host = host_start;
        for (size_t k = host_start; k < end; k++) {
            if (s[k] == '@') {
                host = k + 1; /* userinfo@host */
            }
        }
        size_t host_end = host;
        while (host_end < end && s[host_end] != ':') {
            host_end++;
        }
        add_url_domain(m, s + host, host_end - host);
        i = end > i ? end - 1 : i;
    }
}

static void
add_url_domain(struct spam_message *m, const char *host, size_t len)
{
    while (len > 0 && (host[len - 1] == '.' || host[len - 1] == ',')) {
        len--;
    }
    if (len == 0 || len >= SPAM_DOMAIN_BYTES) {
        return;
    }
    char name[SPAM_DOMAIN_BYTES];
    bool has_dot = false;
    bool has_letter = false;
    for (size_t i = 0; i < len; i++) {
        unsigned char u = ascii_lower((unsigned char)host[i]);
        if (u == '.') {
            if (i == 0 || host[i - 1] == '.') {
                return; /* empty label */
            }
            has_dot = true;
        } else if ((u >= 'a' && u <= 'z') || u == '-' || u == '_') {
            has_letter = true;
        } else if (!(u >= '0' && u <= '9')) {
            return; /* not a host name we look up (IDN U-labels, %-escapes, [v6]) */
        }
        name[i] = (char)u;
    }
    name[len] = '\0';
    if (!has_dot || !has_letter) {
        return; /* a single label, or an IPv4 literal */
    }
    for (size_t i = 0; i < m->url_domain_count; i++) {
        if (strcmp(m->url_domains[i], name) == 0) {
            return;
        }
    }
    if (m->url_domain_count >= SPAM_URL_DOMAINS_MAX) {
        m->is_url_truncated = true;
        return;
    }
    memcpy(m->url_domains[m->url_domain_count++], name, len + 1);
}

/* Text of HTML: tags become one space, script/style/comments go, a few
 * entities are decoded (the rest stay as they are). */
static size_t
strip_html(const char *in, size_t len, char *out, size_t out_bytes)
{
    ASSERT(out_bytes >= len);
    size_t n = 0;
    size_t i = 0;
    while (i < len) {
        char c = in[i];
        if (c == '<') {
            if (span_has_prefix_nocase(in + i, len - i, "<!--")) {
                const char *e = memmem(in + i + 4, len - i - 4, "-->", 3);
                i = e != NULL ? (size_t)(e - in) + 3 : len;
                continue;
            }
            const char *skip_to = NULL;
            if (span_has_prefix_nocase(in + i, len - i, "<script")) {
                skip_to = "</script";
            } else if (span_has_prefix_nocase(in + i, len - i, "<style")) {
                skip_to = "</style";
            }
            if (skip_to != NULL) {
                size_t k = i + 1;
                size_t sl = strlen(skip_to);
                while (k < len && !span_has_prefix_nocase(in + k, len - k, skip_to)) {
                    k++;
                }
                i = k + (k < len ? sl : 0);
            }
            const char *gt = i < len ? memchr(in + i, '>', len - i) : NULL;
            i = gt != NULL ? (size_t)(gt - in) + 1 : len;
            if (n > 0 && out[n - 1] != ' ') {
                out[n++] = ' ';
            }
            continue;
        }
        if (c == '&') {
            static const struct {
                const char *name;
                char        c;
            } entities[] = {
                { "&nbsp;", ' ' }, { "&amp;", '&' }, { "&lt;", '<' },
                { "&gt;", '>' },   { "&quot;", '"' }, { "&apos;", '\'' },
            };
            bool done = false;
            for (size_t k = 0; k < sizeof(entities) / sizeof(entities[0]); k++) {
                if (span_has_prefix_nocase(in + i, len - i, entities[k].name)) {
                    out[n++] = entities[k].c;
                    i += strlen(entities[k].name);
                    done = true;
                    break;
                }
            }
            if (!done && i + 2 < len && in[i + 1] == '#') {
                /* &#NNN; for ASCII only: "&#86;iagra" hides words. */
                size_t k = i + 2;
                unsigned v = 0;
                while (k < len && k < i + 6 && in[k] >= '0' && in[k] <= '9') {
                    v = v * 10 + (unsigned)(in[k] - '0');
                    k++;
                }
                if (k > i + 2 && k < len && in[k] == ';' && v > 0 && v < 128) {
                    out[n++] = (char)v;
                    i = k + 1;
                    done = true;
                }
            }
            if (done) {
                continue;
            }
        }
        out[n++] = c;
        i++;
    }
    ASSERT(n <= out_bytes);
    return n;
}

static void
compute_digest(struct spam_message *m)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    bool ok = ctx != NULL && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1 &&
              EVP_DigestUpdate(ctx, m->subject_raw, strlen(m->subject_raw)) == 1 &&
              EVP_DigestUpdate(ctx, "\n", 1) == 1 &&
              EVP_DigestUpdate(ctx, m->text, m->text_len) == 1 &&
              EVP_DigestFinal_ex(ctx, md, &md_len) == 1;
    EVP_MD_CTX_free(ctx);
    if (ok && md_len >= SPAM_DIGEST_BYTES) {
        memcpy(m->digest, md, SPAM_DIGEST_BYTES);
        return;
    }
    /* OpenSSL failed (memory): fall back to two FNV-1a halves so the
     * double-learn guard still has a key. */
    uint64_t h1 = 1469598103934665603ull;
    uint64_t h2 = 1099511628211ull ^ 0x5bd1e995ull;
    for (size_t i = 0; i < m->text_len; i++) {
        h1 = (h1 ^ (unsigned char)m->text[i]) * 1099511628211ull;
        h2 = (h2 ^ (unsigned char)m->text[i]) * 1099511628211ull + 7;
    }
    memcpy(m->digest, &h1, 8);
    memcpy(m->digest + 8, &h2, 8);
}
