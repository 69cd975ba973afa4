/*
 * proto/http/http_reply.h - the bytes of one HTTP/1.1 response as the
 * daemon's HTTP listener sends it: status line, Date, "Server: toaster"
 * (no version), Content-Type, Content-Length, "Connection: close", the
 * caller's extra fields, then the body (none for HEAD, whose header is
 * the GET one).
 *
 * Every response carries Content-Length and closes the connection: one
 * request per connection, so no keep-alive state and no request after a
 * refused one is ever read. Pure: no I/O, no allocation.
 */
#ifndef TOASTER_PROTO_HTTP_HTTP_REPLY_H
#define TOASTER_PROTO_HTTP_HTTP_REPLY_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

/* The header of a response, at most (the extra fields included). */
#define HTTP_REPLY_HEAD_BYTES_MAX 1024u
/* "Sun, 06 Nov 1994 08:49:37 GMT" and its NUL. */
#define HTTP_REPLY_DATE_BYTES 30u

struct http_reply {
    int status;                /* 100 .. 599 */
    const char *content_type;  /* e.g. "text/plain; charset=utf-8" */
    const char *extra_fields;  /* NULL, or whole field lines, each ending in CRLF */
    const char *body;
    size_t body_len;
    bool is_head;              /* the response to HEAD: no body bytes */
};

/* The reason phrase we send with status ("Not Found"; "Unknown" for one
 * we never send). */
const char *http_reply_reason(int status);

/* now as an IMF-fixdate (RFC 9110 5.6.7) into out. */
void http_reply_date(time_t now, char out[HTTP_REPLY_DATE_BYTES]);

/* The whole response into out. Returns its length, or -EINVAL (extra
 * fields not CRLF-terminated lines, a CR or LF in content_type), or
 * -ENOSPC (it does not fit out_bytes, or the header not in
 * HTTP_REPLY_HEAD_BYTES_MAX). */
int http_reply_format(const struct http_reply *reply, time_t now, char *out, size_t out_bytes);

#endif
