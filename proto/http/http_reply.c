/*
 * proto/http/http_reply.c - one HTTP/1.1 response as bytes (see
 * http_reply.h).
 */
#include "proto/http/http_reply.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "core/assertions.h"

const char *
http_reply_reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 417: return "Expectation Failed";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
    }
}

void
http_reply_date(time_t now, char out[HTTP_REPLY_DATE_BYTES])
{
    /* English names whatever the locale (RFC 9110 5.6.7). */
    static const char days[7][4] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
    static const char months[12][4] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                        "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
    struct tm tm;
    if (gmtime_r(&now, &tm) == NULL || tm.tm_year < -1900 || tm.tm_year > 9999 - 1900) {
        memset(&tm, 0, sizeof(tm)); /* out of range: the epoch's date */
        tm.tm_year = 70;
        tm.tm_mday = 1;
        tm.tm_wday = 4;
    }
    int n = snprintf(out, HTTP_REPLY_DATE_BYTES, "%s, %02d %s %04d %02d:%02d:%02d GMT",
                     days[tm.tm_wday % 7], tm.tm_mday, months[tm.tm_mon % 12],
                     tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
    ASSERT(n == (int)HTTP_REPLY_DATE_BYTES - 1);
}

/* Whole lines, each ending in CRLF, with no other CR or LF. */
static bool
fields_ok(const char *fields)
{
    size_t len = strlen(fields);
    if (len == 0) {
        return true;
    }
    if (len < 2 || fields[len - 2] != '\r' || fields[len - 1] != '\n') {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        if (fields[i] == '\r' && fields[i + 1] != '\n') {
            return false;
        }
        if (fields[i] == '\n' && (i == 0 || fields[i - 1] != '\r' || fields[i + 1] == '\r')) {
            return false; /* a bare LF, or an empty line ending the header early */
        }
    }
    return true;
}

int
http_reply_format(const struct http_reply *reply, time_t now, char *out, size_t out_bytes)
{
    ASSERT(reply->status >= 100 && reply->status <= 599);
    ASSERT(reply->content_type != NULL);
    ASSERT(reply->body != NULL || reply->body_len == 0);
    const char *extra = reply->extra_fields != NULL ? reply->extra_fields : "";
    if (!fields_ok(extra) || strpbrk(reply->content_type, "\r\n") != NULL) {
        return -EINVAL;
    }
    char date[HTTP_REPLY_DATE_BYTES];
    http_reply_date(now, date);
    char head[HTTP_REPLY_HEAD_BYTES_MAX];
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 %d %s\r\n"
                     "Date: %s\r\n"
                     "Server: toaster\r\n"
                     "Content-Type: %s\r\n"
                     "Content-Length: %zu\r\n"
                     "Connection: close\r\n"
                     "%s"
                     "\r\n",
                     reply->status, http_reply_reason(reply->status), date, reply->content_type,
                     reply->body_len, extra);
    if (n < 0 || (size_t)n >= sizeof(head)) {
        return -ENOSPC;
    }
    size_t head_len = (size_t)n;
    size_t body_len = reply->is_head ? 0 : reply->body_len;
    if (head_len + body_len > out_bytes || head_len + body_len > (size_t)INT32_MAX) {
        return -ENOSPC;
    }
    memcpy(out, head, head_len);
    if (body_len > 0) {
        memcpy(out + head_len, reply->body, body_len);
    }
    return (int)(head_len + body_len);
}
