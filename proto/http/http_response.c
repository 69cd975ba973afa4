/*
 * proto/http/http_response.c - one HTTP/1.1 response, read incrementally
 * (see http_response.h): a line reader for the status line, the header
 * fields, chunk sizes and trailers, and byte copying for bodies.
 */
#include "proto/http/http_response.h"

#include <errno.h>
#include <string.h>

enum state {
    ST_STATUS,
    ST_HEADER,
    ST_BODY_LENGTH,
    ST_BODY_CLOSE,
    ST_CHUNK_SIZE,
    ST_CHUNK_DATA,
    ST_CHUNK_END, /* the CRLF after a chunk's data */
    ST_TRAILER,
    ST_DONE,
    ST_FAILED,
};

void
http_response_init(struct http_response *response, char *body, size_t body_max)
{
    memset(response, 0, sizeof(*response));
    response->body = body;
    response->body_max = body_max;
    response->state = ST_STATUS;
    response->body_kind = HTTP_BODY_CLOSE;
}

static char
lower(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c + ('a' - 'A')) : c;
}

static bool
is_tchar(char c)
{
    /* RFC 9110 5.6.2 token characters. */
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static bool
name_is(const char *name, size_t len, const char *want)
{
    if (strlen(want) != len) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        if (lower(name[i]) != want[i]) {
            return false;
        }
    }
    return true;
}

static int
fail(struct http_response *response, int rc)
{
    response->state = ST_FAILED;
    return rc;
}

/* "HTTP/1.x NNN reason". */
static int
status_line(struct http_response *response, const char *line, size_t len)
{
    if (len < 12 || memcmp(line, "HTTP/1.", 7) != 0 || line[7] < '0' || line[7] > '9' ||
        line[8] != ' ') {
        return -EPROTO;
    }
    for (size_t i = 9; i < 12; i++) {
        if (line[i] < '0' || line[i] > '9') {
            return -EPROTO;
        }
    }
    if (len > 12 && line[12] != ' ') {
        return -EPROTO;
    }
    int status = (line[9] - '0') * 100 + (line[10] - '0') * 10 + (line[11] - '0');
    if (status < 100 || status > 599) {
        return -EPROTO;
    }
    response->minor_version = line[7] - '0';
    response->status = status;
    return 0;
}

static int
header_line(struct http_response *response, const char *line, size_t len)
{
    if (line[0] == ' ' || line[0] == '\t') {
        return -EPROTO; /* obsolete line folding: refused (RFC 9112 5.2) */
    }
    size_t colon = 0;
    while (colon < len && line[colon] != ':') {
        if (!is_tchar(line[colon])) {
            return -EPROTO;
        }
        colon++;
    }
    if (colon == len || colon == 0) {
        return -EPROTO;
    }
    size_t start = colon + 1;
    size_t end = len;
    while (start < end && (line[start] == ' ' || line[start] == '\t')) {
        start++;
    }
    while (end > start && (line[end - 1] == ' ' || line[end - 1] == '\t')) {
        end--;
    }
    const char *value = line + start;
    size_t value_len = end - start;
    if (name_is(line, colon, "content-length")) {
        uint64_t n = 0;
        if (value_len == 0 || value_len > 15) {
            return -EPROTO;
        }
        for (size_t i = 0; i < value_len; i++) {
            if (value[i] < '0' || value[i] > '9') {
                return -EPROTO;
            }
            n = n * 10 + (uint64_t)(value[i] - '0');
        }
        if (response->has_length && response->content_length != n) {
            return -EPROTO; /* two lengths that disagree (RFC 9112 6.3) */
        }
        response->has_length = true;
        response->content_length = n;
    } else if (name_is(line, colon, "transfer-encoding")) {
        /* Only "chunked" alone is understood. */
        if (value_len == 7 && name_is(value, 7, "chunked") && !response->is_chunked) {
            response->is_chunked = true;
        } else {
            return -ENOTSUP;
        }
    } else if (name_is(line, colon, "content-type")) {
        size_t type_len = 0;
        while (type_len < value_len && value[type_len] != ';' && value[type_len] != ' ' &&
               value[type_len] != '\t') {
            type_len++;
        }
        if (type_len >= sizeof(response->content_type)) {
            return -EPROTO;
        }
        for (size_t i = 0; i < type_len; i++) {
            response->content_type[i] = lower(value[i]);
        }
        response->content_type[type_len] = '\0';
    }
    return 0;
}

/* The empty line after the header: which body follows. Returns 1 when
 * the response is complete already. */
static int
head_done(struct http_response *response)
{
    if (response->status >= 100 && response->status < 200) {
        /* An interim response: the real one follows. */
        int minor = response->minor_version;
        char *body = response->body;
        size_t body_max = response->body_max;
        size_t head_bytes = response->head_bytes;
        http_response_init(response, body, body_max);
        response->head_bytes = head_bytes;
        response->minor_version = minor;
        return 0;
    }
    if (response->is_chunked && response->has_length) {
        return -EPROTO; /* both: a smuggling shape, refused */
    }
    if (response->status == 204 || response->status == 304) {
        response->body_kind = HTTP_BODY_NONE;
        response->state = ST_DONE;
        return 1;
    }
    if (response->is_chunked) {
        response->body_kind = HTTP_BODY_CHUNKED;
        response->state = ST_CHUNK_SIZE;
        return 0;
    }
    if (response->has_length) {
        if (response->content_length > response->body_max) {
            return -E2BIG;
        }
        response->body_kind = HTTP_BODY_LENGTH;
        response->remaining = response->content_length;
        response->state = response->remaining == 0 ? ST_DONE : ST_BODY_LENGTH;
        return response->state == ST_DONE ? 1 : 0;
    }
    response->body_kind = HTTP_BODY_CLOSE;
    response->state = ST_BODY_CLOSE;
    return 0;
}

/* "1a;ext=1" -> 26. */
static int
chunk_size_line(struct http_response *response, const char *line, size_t len)
{
    uint64_t n = 0;
    size_t i = 0;
    while (i < len) {
        char c = lower(line[i]);
        int digit = (c >= '0' && c <= '9') ? c - '0' : (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
        if (digit < 0) {
            break;
        }
        if (i >= 15) {
            return -EPROTO;
        }
        n = n * 16 + (uint64_t)digit;
        i++;
    }
    if (i == 0 || (i < len && line[i] != ';' && line[i] != ' ' && line[i] != '\t')) {
        return -EPROTO;
    }
    if (n > response->body_max - response->body_len) {
        return -E2BIG;
    }
    response->remaining = n;
    response->state = n == 0 ? ST_TRAILER : ST_CHUNK_DATA;
    return 0;
}

/* One complete line (without its line end) in the current state. */
static int
line_done(struct http_response *response, const char *line, size_t len)
{
    switch (response->state) {
    case ST_STATUS:
        response->state = ST_HEADER;
        return status_line(response, line, len);
    case ST_HEADER:
        return len == 0 ? head_done(response) : header_line(response, line, len);
    case ST_CHUNK_SIZE:
        return chunk_size_line(response, line, len);
    case ST_CHUNK_END:
        if (len != 0) {
            return -EPROTO;
        }
        response->state = ST_CHUNK_SIZE;
        return 0;
    case ST_TRAILER:
        if (len == 0) {
            response->state = ST_DONE;
            return 1;
        }
        return 0; /* trailer fields: not used */
    default:
        return -EPROTO;
    }
}

static bool
is_line_state(int state)
{
    return state == ST_STATUS || state == ST_HEADER || state == ST_CHUNK_SIZE ||
           state == ST_CHUNK_END || state == ST_TRAILER;
}

int
http_response_feed(struct http_response *response, const uint8_t *in, size_t len, size_t *used)
{
    *used = 0;
    if (response->state == ST_DONE) {
        return 1;
    }
    if (response->state == ST_FAILED) {
        return -EPROTO;
    }
    size_t i = 0;
    while (i < len) {
        if (is_line_state(response->state)) {
            char c = (char)in[i++];
            if (++response->head_bytes > HTTP_RESPONSE_HEAD_BYTES_MAX) {
                *used = i;
                return fail(response, -E2BIG);
            }
            if (c != '\n') {
                if (response->line_len == sizeof(response->line)) {
                    *used = i;
                    return fail(response, -E2BIG);
                }
                response->line[response->line_len++] = c;
                continue;
            }
            size_t line_len = response->line_len;
            if (line_len > 0 && response->line[line_len - 1] == '\r') {
                line_len--;
            }
            response->line_len = 0;
            if (memchr(response->line, '\r', line_len) != NULL ||
                memchr(response->line, '\0', line_len) != NULL) {
                *used = i;
                return fail(response, -EPROTO);
            }
            int rc = line_done(response, response->line, line_len);
            if (rc < 0) {
                *used = i;
                return fail(response, rc);
            }
            if (rc == 1) {
                *used = i;
                return 1;
            }
            continue;
        }
        /* Body bytes. */
        size_t take = len - i;
        if (response->state == ST_BODY_LENGTH || response->state == ST_CHUNK_DATA) {
            if (take > response->remaining) {
                take = (size_t)response->remaining;
            }
        }
        if (take > response->body_max - response->body_len) {
            *used = i;
            return fail(response, -E2BIG);
        }
        memcpy(response->body + response->body_len, in + i, take);
        response->body_len += take;
        i += take;
        if (response->state == ST_BODY_LENGTH || response->state == ST_CHUNK_DATA) {
            response->remaining -= take;
            if (response->remaining == 0) {
                if (response->state == ST_BODY_LENGTH) {
                    response->state = ST_DONE;
                    *used = i;
                    return 1;
                }
                response->state = ST_CHUNK_END;
            }
        }
    }
    *used = i;
    return 0;
}

int
http_response_eof(struct http_response *response)
{
    if (response->state == ST_DONE) {
        return 1;
    }
    if (response->state == ST_BODY_CLOSE) {
        response->state = ST_DONE;
        return 1;
    }
    response->state = ST_FAILED;
    return -EPROTO;
}
