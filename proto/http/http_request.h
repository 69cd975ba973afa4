/*
 * proto/http/http_request.h - reading one HTTP/1.1 request (RFC 9112) as
 * the daemon's small HTTP listener serves it: client configuration
 * documents (autoconfig, Autodiscover, mobileconfig), the MTA-STS policy,
 * later /metrics.
 *
 * Pure and incremental: fed the bytes as they arrive, in pieces of any
 * size; no I/O, no allocation. The request line, the header fields it
 * uses (Host, Content-Length, Transfer-Encoding, Expect) and, for POST, a
 * body sized by Content-Length into a buffer the caller lends once the
 * head is read.
 *
 * Strict where leniency lets two parsers disagree (request smuggling):
 * CRLF line ends only (a bare LF or CR is refused), no obs-fold, no blank
 * before a field's colon, exactly one Host and at most one Content-Length
 * (no lists), Transfer-Encoding refused (a chunked request body gets 411,
 * any other coding 501), Content-Length beside Transfer-Encoding refused.
 * Every refusal carries the status the server answers with and a reason.
 *
 * Bounds: HTTP_REQUEST_TARGET_BYTES_MAX of request-target (414),
 * HTTP_REQUEST_LINE_BYTES_MAX per line and HTTP_REQUEST_HEAD_BYTES_MAX of
 * request line and header together (431), HTTP_REQUEST_FIELDS_MAX header
 * fields (431), the caller's body bound (413, POST only; GET and HEAD may
 * not carry a body: 400).
 */
#ifndef TOASTER_PROTO_HTTP_HTTP_REQUEST_H
#define TOASTER_PROTO_HTTP_HTTP_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HTTP_REQUEST_HEAD_BYTES_MAX (8u * 1024u)
#define HTTP_REQUEST_LINE_BYTES_MAX 4096u
#define HTTP_REQUEST_TARGET_BYTES_MAX 2048u
#define HTTP_REQUEST_FIELDS_MAX 100u
#define HTTP_REQUEST_HOST_BYTES_MAX 256u   /* the host part, without the port */
#define HTTP_REQUEST_METHOD_BYTES_MAX 16u
#define HTTP_REQUEST_BODY_BYTES_CEILING (64u * 1024u)

enum http_method {
    HTTP_METHOD_OTHER, /* a valid token we do not serve: the server answers 405 */
    HTTP_METHOD_GET,
    HTTP_METHOD_HEAD,
    HTTP_METHOD_POST,
};

/* What http_request_feed returns. */
enum http_request_result {
    HTTP_REQUEST_FAILED = -1,    /* refused: see status and reason */
    HTTP_REQUEST_NEED_MORE = 0,  /* feed more bytes */
    HTTP_REQUEST_DONE = 1,       /* the request is complete */
    HTTP_REQUEST_BODY_WANTED = 2 /* head read, a POST body of content_length bytes
                                    follows: lend a buffer with http_request_body_buffer() */
};

struct http_request {
    /* What the request says, filled as it arrives. */
    enum http_method method;
    char method_text[HTTP_REQUEST_METHOD_BYTES_MAX]; /* as sent */
    int minor_version;                               /* HTTP/1.x: 0 or 1 */
    char target[HTTP_REQUEST_TARGET_BYTES_MAX];      /* "/path?query" (origin form; from the
                                                        absolute form, the path part) */
    size_t path_len;                                 /* target[0..path_len): before '?' */
    char host[HTTP_REQUEST_HOST_BYTES_MAX];          /* lower case, port cut; "" when none */
    bool has_host;
    bool has_length;
    uint64_t content_length;
    bool expects_continue;                           /* "Expect: 100-continue" */

    /* The refusal: the status to answer (400, 411, 413, 414, 417, 431,
     * 501, 505; 405 and 408 are the server's own) and why, for the log. */
    int status;
    const char *reason;

    /* The body (POST), into the caller's buffer. */
    char *body;
    size_t body_len;

    /* Private. */
    int state;
    size_t body_max;       /* the caller's bound for a POST body */
    char line[HTTP_REQUEST_LINE_BYTES_MAX];
    size_t line_len;
    size_t head_bytes;
    uint32_t field_count;
    bool has_transfer_encoding;
    bool is_chunked;
    bool has_target_host;  /* absolute form: the Host field is not used */
};

/* Ready to read one request; POST bodies longer than body_max (at most
 * HTTP_REQUEST_BODY_BYTES_CEILING) are refused with 413. */
void http_request_init(struct http_request *request, size_t body_max);

/* Consume in[0..len): sets *used (never more than len). Returns
 * HTTP_REQUEST_DONE (complete; *used stops right after it),
 * HTTP_REQUEST_NEED_MORE, HTTP_REQUEST_BODY_WANTED (the head is read; call
 * http_request_body_buffer before feeding the rest), or
 * HTTP_REQUEST_FAILED with status and reason set. Fed again after DONE or
 * FAILED it returns the same without taking anything. */
int http_request_feed(struct http_request *request, const uint8_t *in, size_t len,
                      size_t *used);

/* After HTTP_REQUEST_BODY_WANTED: the body goes to body[0..content_length)
 * (body_bytes >= content_length, asserted). */
void http_request_body_buffer(struct http_request *request, char *body, size_t body_bytes);

/* The head is read and a body is expected: the moment a server answers
 * "100 Continue" to a client that asked for it. */
bool http_request_is_reading_body(const struct http_request *request);

/* The value of name in the request's query string ("a=1&emailaddress=x%40y"),
 * percent-decoded ('+' is a space) into out (NUL-terminated). Returns its
 * length, -ENOENT (absent), -EINVAL (a bad %-escape, or a NUL or control
 * byte decoded), -ENOSPC (does not fit out_bytes). The first occurrence
 * counts. */
int http_request_query_param(const struct http_request *request, const char *name, char *out,
                             size_t out_bytes);

#endif
