/*
 * proto/http/http_request.c - one HTTP/1.1 request, read incrementally
 * (see http_request.h): a line reader for the request line and the
 * header fields, then byte copying for a POST body.
 *
 * Each line is checked whole when its LF arrives: it must end in CRLF and
 * hold no other CR and no NUL. What is refused gets the status RFC 9110 /
 * 9112 name for it; the caller answers and closes, so nothing after a
 * refused request is ever read as a request.
 */
#include "proto/http/http_request.h"

#include <errno.h>
#include <string.h>

#include "core/ascii.h"
#include "core/assertions.h"

enum state {
    ST_REQUEST_LINE,
    ST_HEADER,
    ST_BODY_WAIT, /* head read; waiting for the caller's body buffer */
    ST_BODY,
    ST_DONE,
    ST_FAILED,
};

_Static_assert(HTTP_REQUEST_TARGET_BYTES_MAX < HTTP_REQUEST_LINE_BYTES_MAX,
               "a target that fits leaves room for the method and version");
_Static_assert(HTTP_REQUEST_LINE_BYTES_MAX <= HTTP_REQUEST_HEAD_BYTES_MAX,
               "a line fits in the head");

void
http_request_init(struct http_request *request, size_t body_max)
{
    ASSERT(body_max <= HTTP_REQUEST_BODY_BYTES_CEILING);
    memset(request, 0, sizeof(*request));
    request->state = ST_REQUEST_LINE;
    request->body_max = body_max;
}

/* ---- character classes ----------------------------------------------------- */

static bool
is_tchar(unsigned char c)
{
    /* RFC 9110 5.6.2 token characters. */
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* RFC 3986 reg-name characters (unreserved, pct-encoded, sub-delims). */
static bool
is_host_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != '\0' && strchr("-._~%!$&'()*+,;=", c) != NULL);
}

static bool
name_is(const char *name, size_t len, const char *want)
{
    if (strlen(want) != len) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        if (ascii_lower((unsigned char)name[i]) != (unsigned char)want[i]) {
            return false;
        }
    }
    return true;
}

static int
refuse(struct http_request *request, int status, const char *reason)
{
    request->state = ST_FAILED;
    request->status = status;
    request->reason = reason;
    return HTTP_REQUEST_FAILED;
}

/* ---- the request line ------------------------------------------------------- */

/* "host[:port]" or "[v6]:port" (RFC 9110 7.2): the host, lower case, into
 * request->host. Returns 0 or -EINVAL. */
static int
host_parse(struct http_request *request, const char *value, size_t len)
{
    size_t host_end = 0;
    if (len > 0 && value[0] == '[') {
        while (host_end < len && value[host_end] != ']') {
            unsigned char c = (unsigned char)value[host_end];
            if (host_end > 0 && ascii_hex_value(c) < 0 && c != ':' && c != '.') {
                return -EINVAL;
            }
            host_end++;
        }
        if (host_end == len) {
            return -EINVAL;
        }
        host_end++; /* the ']' */
    } else {
        while (host_end < len && value[host_end] != ':') {
            if (!is_host_char((unsigned char)value[host_end])) {
                return -EINVAL;
            }
            host_end++;
        }
    }
    if (host_end < len) {
        if (value[host_end] != ':') {
            return -EINVAL;
        }
        size_t digits = len - host_end - 1;
        if (digits > 5) {
            return -EINVAL;
        }
        for (size_t i = host_end + 1; i < len; i++) {
            if (value[i] < '0' || value[i] > '9') {
                return -EINVAL;
            }
        }
    }
    if (host_end >= sizeof(request->host)) {
        return -EINVAL;
    }
    for (size_t i = 0; i < host_end; i++) {
        request->host[i] = (char)ascii_lower((unsigned char)value[i]);
    }
    request->host[host_end] = '\0';
    return 0;
}

/* The request-target (RFC 9112 3.2). */
static int
target_parse(struct http_request *request, const char *target, size_t len)
{
    if (len == 0) {
        return refuse(request, 400, "empty request-target");
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)target[i];
        if (c <= 0x20 || c >= 0x7f || c == '#') {
            return refuse(request, 400, "bad byte in the request-target");
        }
    }
    if (len >= sizeof(request->target)) {
        return refuse(request, 414, "request-target too long");
    }
    const char *path = target;
    size_t path_len = len;
    size_t scheme_len = 0;
    if (len >= 7 && name_is(target, 7, "http://")) {
        scheme_len = 7;
    } else if (len >= 8 && name_is(target, 8, "https://")) {
        scheme_len = 8;
    }
    if (scheme_len > 0) {
        /* Absolute form: its authority is the host (3.2.2), Host is not used. */
        size_t end = scheme_len;
        while (end < len && target[end] != '/' && target[end] != '?') {
            end++;
        }
        if (end == scheme_len || memchr(target + scheme_len, '@', end - scheme_len) != NULL ||
            host_parse(request, target + scheme_len, end - scheme_len) != 0) {
            return refuse(request, 400, "bad authority in the request-target");
        }
        request->has_target_host = true;
        path = target + end;
        path_len = len - end;
    } else if (target[0] != '/') {
        if (request->method != HTTP_METHOD_OTHER) {
            return refuse(request, 400, "request-target not in origin or absolute form");
        }
        /* "*" (OPTIONS) or authority form (CONNECT): answered 405 anyway. */
    }
    size_t at = 0;
    if (path_len == 0 || path[0] == '?') {
        request->target[at++] = '/'; /* "http://host" or "http://host?q" */
    }
    ASSERT(at + path_len < sizeof(request->target));
    memcpy(request->target + at, path, path_len);
    at += path_len;
    request->target[at] = '\0';
    const char *question = memchr(request->target, '?', at);
    request->path_len = question != NULL ? (size_t)(question - request->target) : at;
    return 0;
}

/* method SP request-target SP HTTP-version (RFC 9112 3): single spaces. */
static int
request_line(struct http_request *request, const char *line, size_t len)
{
    const char *sp1 = memchr(line, ' ', len);
    if (sp1 == NULL || sp1 == line) {
        return refuse(request, 400, "malformed request line");
    }
    size_t method_len = (size_t)(sp1 - line);
    for (size_t i = 0; i < method_len; i++) {
        if (!is_tchar((unsigned char)line[i])) {
            return refuse(request, 400, "malformed method");
        }
    }
    size_t copy = method_len < sizeof(request->method_text) ? method_len
                                                             : sizeof(request->method_text) - 1;
    memcpy(request->method_text, line, copy);
    request->method_text[copy] = '\0';
    /* Methods are case-sensitive (RFC 9110 9.1). */
    if (method_len == 3 && memcmp(line, "GET", 3) == 0) {
        request->method = HTTP_METHOD_GET;
    } else if (method_len == 4 && memcmp(line, "HEAD", 4) == 0) {
        request->method = HTTP_METHOD_HEAD;
    } else if (method_len == 4 && memcmp(line, "POST", 4) == 0) {
        request->method = HTTP_METHOD_POST;
    } else {
        request->method = HTTP_METHOD_OTHER;
    }
    const char *rest = sp1 + 1;
    size_t rest_len = len - method_len - 1;
    const char *sp2 = memchr(rest, ' ', rest_len);
    if (sp2 == NULL) {
        return refuse(request, 400, "request line without a version");
    }
    size_t target_len = (size_t)(sp2 - rest);
    const char *version = sp2 + 1;
    size_t version_len = rest_len - target_len - 1;
    /* HTTP-version = "HTTP" "/" DIGIT "." DIGIT, case-sensitive (2.3). */
    if (version_len != 8 || memcmp(version, "HTTP/", 5) != 0 || version[5] < '0' ||
        version[5] > '9' || version[6] != '.' || version[7] < '0' || version[7] > '9') {
        return refuse(request, 400, "malformed HTTP version");
    }
    if (version[5] != '1') {
        return refuse(request, 505, "HTTP version not supported");
    }
    /* A later 1.x is answered as 1.1, the highest we speak (RFC 9110 6.2). */
    request->minor_version = version[7] == '0' ? 0 : 1;
    int rc = target_parse(request, rest, target_len);
    if (rc != 0) {
        return rc;
    }
    request->state = ST_HEADER;
    return HTTP_REQUEST_NEED_MORE;
}

/* ---- header fields ---------------------------------------------------------- */

static int
content_length_parse(struct http_request *request, const char *value, size_t len)
{
    if (request->has_length) {
        return refuse(request, 400, "more than one Content-Length");
    }
    if (len == 0 || len > 15) {
        return refuse(request, 400, "bad Content-Length");
    }
    uint64_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (value[i] < '0' || value[i] > '9') {
            return refuse(request, 400, "bad Content-Length"); /* lists too */
        }
        n = n * 10 + (uint64_t)(value[i] - '0');
    }
    request->has_length = true;
    request->content_length = n;
    return 0;
}

static int
header_line(struct http_request *request, const char *line, size_t len)
{
    if (line[0] == ' ' || line[0] == '\t') {
        return refuse(request, 400, "obsolete line folding"); /* RFC 9112 5.2 */
    }
    if (++request->field_count > HTTP_REQUEST_FIELDS_MAX) {
        return refuse(request, 431, "too many header fields");
    }
    size_t colon = 0;
    while (colon < len && line[colon] != ':') {
        if (!is_tchar((unsigned char)line[colon])) {
            /* Blanks before the colon included (RFC 9112 5.1). */
            return refuse(request, 400, "malformed header field name");
        }
        colon++;
    }
    if (colon == len || colon == 0) {
        return refuse(request, 400, "header field without a name or colon");
    }
    size_t start = colon + 1;
    size_t end = len;
    while (start < end && ascii_is_blank(line[start])) {
        start++;
    }
    while (end > start && ascii_is_blank(line[end - 1])) {
        end--;
    }
    for (size_t i = start; i < end; i++) {
        unsigned char c = (unsigned char)line[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f) {
            return refuse(request, 400, "control byte in a header field value");
        }
    }
    const char *value = line + start;
    size_t value_len = end - start;
    if (name_is(line, colon, "host")) {
        if (request->has_host) {
            return refuse(request, 400, "more than one Host");
        }
        request->has_host = true;
        if (request->has_target_host) {
            return 0; /* the absolute form's authority wins (RFC 9112 3.2.2) */
        }
        if (host_parse(request, value, value_len) != 0) {
            return refuse(request, 400, "bad Host");
        }
    } else if (name_is(line, colon, "content-length")) {
        return content_length_parse(request, value, value_len);
    } else if (name_is(line, colon, "transfer-encoding")) {
        if (request->has_transfer_encoding) {
            request->is_chunked = false; /* two fields: a coding list; refused below */
        } else {
            request->is_chunked = name_is(value, value_len, "chunked");
        }
        request->has_transfer_encoding = true;
    } else if (name_is(line, colon, "expect")) {
        if (!name_is(value, value_len, "100-continue")) {
            return refuse(request, 417, "unknown expectation");
        }
        request->expects_continue = true;
    }
    return 0;
}

/* The empty line after the header: what follows. */
static int
head_done(struct http_request *request)
{
    if (request->minor_version == 1 && !request->has_host) {
        return refuse(request, 400, "HTTP/1.1 request without Host");
    }
    if (request->has_transfer_encoding && request->has_length) {
        return refuse(request, 400, "Content-Length beside Transfer-Encoding");
    }
    if (request->has_transfer_encoding) {
        /* No chunked request bodies here: clients of these documents send
         * small bodies with a length (RFC 9110 15.5.12). */
        return request->is_chunked ? refuse(request, 411, "chunked request body")
                                   : refuse(request, 501, "unknown transfer coding");
    }
    switch (request->method) {
    case HTTP_METHOD_GET:
    case HTTP_METHOD_HEAD:
        if (request->content_length > 0) {
            return refuse(request, 400, "a body on GET or HEAD");
        }
        break;
    case HTTP_METHOD_POST:
        if (!request->has_length) {
            return refuse(request, 411, "POST without Content-Length");
        }
        if (request->content_length > request->body_max) {
            return refuse(request, 413, "request body too large");
        }
        if (request->content_length > 0) {
            request->state = ST_BODY_WAIT;
            return HTTP_REQUEST_BODY_WANTED;
        }
        break;
    case HTTP_METHOD_OTHER:
        break; /* answered 405 before any body would matter */
    }
    request->state = ST_DONE;
    return HTTP_REQUEST_DONE;
}

/* One complete line, its CRLF cut. */
static int
line_done(struct http_request *request, const char *line, size_t len)
{
    if (request->state == ST_REQUEST_LINE) {
        if (len == 0) {
            return HTTP_REQUEST_NEED_MORE; /* empty lines before the request (RFC 9112 2.2) */
        }
        return request_line(request, line, len);
    }
    ASSERT(request->state == ST_HEADER);
    return len == 0 ? head_done(request) : header_line(request, line, len);
}

/* ---- public ------------------------------------------------------------------ */

int
http_request_feed(struct http_request *request, const uint8_t *in, size_t len, size_t *used)
{
    *used = 0;
    switch (request->state) {
    case ST_DONE:
        return HTTP_REQUEST_DONE;
    case ST_FAILED:
        return HTTP_REQUEST_FAILED;
    case ST_BODY_WAIT:
        return HTTP_REQUEST_BODY_WANTED;
    default:
        break;
    }
    size_t i = 0;
    while (i < len) {
        if (request->state == ST_BODY) {
            size_t want = (size_t)request->content_length - request->body_len;
            size_t take = len - i < want ? len - i : want;
            memcpy(request->body + request->body_len, in + i, take);
            request->body_len += take;
            i += take;
            if (request->body_len == request->content_length) {
                request->state = ST_DONE;
                *used = i;
                return HTTP_REQUEST_DONE;
            }
            continue;
        }
        char c = (char)in[i++];
        if (request->state == ST_REQUEST_LINE && request->line_len == 0 && c != '\r' &&
            c != '\n' && !is_tchar((unsigned char)c)) {
            /* Not a method's first byte: a TLS hello or other protocol sent
             * here, refused at once rather than after the timeout. */
            *used = i;
            return refuse(request, 400, "not an HTTP request");
        }
        if (++request->head_bytes > HTTP_REQUEST_HEAD_BYTES_MAX) {
            *used = i;
            return request->state == ST_REQUEST_LINE
                       ? refuse(request, 414, "request line too long")
                       : refuse(request, 431, "request header too large");
        }
        if (c != '\n') {
            if (request->line_len == sizeof(request->line)) {
                *used = i;
                return request->state == ST_REQUEST_LINE
                           ? refuse(request, 414, "request line too long")
                           : refuse(request, 431, "header field line too long");
            }
            request->line[request->line_len++] = c;
            continue;
        }
        size_t line_len = request->line_len;
        request->line_len = 0;
        if (line_len == 0 || request->line[line_len - 1] != '\r') {
            *used = i;
            return refuse(request, 400, "bare LF");
        }
        line_len--;
        if (memchr(request->line, '\r', line_len) != NULL) {
            *used = i;
            return refuse(request, 400, "bare CR");
        }
        if (memchr(request->line, '\0', line_len) != NULL) {
            *used = i;
            return refuse(request, 400, "NUL byte");
        }
        int rc = line_done(request, request->line, line_len);
        if (rc != HTTP_REQUEST_NEED_MORE) {
            *used = i;
            return rc;
        }
    }
    *used = i;
    return HTTP_REQUEST_NEED_MORE;
}

void
http_request_body_buffer(struct http_request *request, char *body, size_t body_bytes)
{
    ASSERT(request->state == ST_BODY_WAIT);
    ASSERT(body != NULL);
    ASSERT(body_bytes >= request->content_length);
    request->body = body;
    request->body_len = 0;
    request->state = ST_BODY;
}

bool
http_request_is_reading_body(const struct http_request *request)
{
    return request->state == ST_BODY_WAIT || request->state == ST_BODY;
}

int
http_request_query_param(const struct http_request *request, const char *name, char *out,
                         size_t out_bytes)
{
    ASSERT(out_bytes > 0);
    size_t target_len = strlen(request->target);
    if (request->path_len >= target_len) {
        return -ENOENT;
    }
    const char *query = request->target + request->path_len + 1;
    const char *end = request->target + target_len;
    size_t name_len = strlen(name);
    const char *pair = query;
    while (pair <= end) {
        const char *amp = memchr(pair, '&', (size_t)(end - pair));
        const char *pair_end = amp != NULL ? amp : end;
        const char *equals = memchr(pair, '=', (size_t)(pair_end - pair));
        const char *key_end = equals != NULL ? equals : pair_end;
        if ((size_t)(key_end - pair) == name_len && memcmp(pair, name, name_len) == 0) {
            const char *v = equals != NULL ? equals + 1 : pair_end;
            size_t n = 0;
            while (v < pair_end) {
                int c = (unsigned char)*v;
                if (c == '%') {
                    int hi = pair_end - v > 2 ? ascii_hex_value((unsigned char)v[1]) : -1;
                    int lo = hi >= 0 ? ascii_hex_value((unsigned char)v[2]) : -1;
                    if (lo < 0) {
                        return -EINVAL;
                    }
                    c = hi * 16 + lo;
                    v += 3;
                } else {
                    if (c == '+') {
                        c = ' ';
                    }
                    v++;
                }
                if (c < 0x20 || c == 0x7f) {
                    return -EINVAL;
                }
                if (n + 1 >= out_bytes) {
                    return -ENOSPC;
                }
                out[n++] = (char)c;
            }
            out[n] = '\0';
            return (int)n;
        }
        if (amp == NULL) {
            break;
        }
        pair = amp + 1;
    }
    return -ENOENT;
}
