/*
 * proto/http/http_response.h - reading one HTTP/1.1 response (RFC 9112)
 * as an outgoing client needs it: the delivery agent fetching an MTA-STS
 * policy (RFC 8461 3.3) over its TLS client. The status line, the header
 * fields it uses (Content-Type, Content-Length, Transfer-Encoding), and
 * the body, whether sized by Content-Length, chunked, or ended by the
 * server closing the connection.
 *
 * Pure and incremental: fed the bytes as they arrive, in pieces of any
 * size; no I/O. Bounds: HTTP_RESPONSE_HEAD_BYTES_MAX of status line and
 * header, the caller's body buffer (a longer body is an error: MTA-STS
 * caps policies at 64 KiB), chunk-size lines and trailers within the head
 * bound. Anything malformed is an error, never a guess.
 */
#ifndef TOASTER_PROTO_HTTP_HTTP_RESPONSE_H
#define TOASTER_PROTO_HTTP_HTTP_RESPONSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HTTP_RESPONSE_HEAD_BYTES_MAX (16u * 1024u)
#define HTTP_RESPONSE_LINE_BYTES_MAX 4096u
#define HTTP_RESPONSE_CONTENT_TYPE_BYTES 128u

enum http_response_body {
    HTTP_BODY_LENGTH,  /* Content-Length bytes */
    HTTP_BODY_CHUNKED, /* Transfer-Encoding: chunked */
    HTTP_BODY_CLOSE,   /* until the server closes (no length given) */
    HTTP_BODY_NONE,    /* 1xx, 204, 304 */
};

struct http_response {
    /* What the response says, filled as it arrives. */
    int status;                                          /* 100 .. 599 */
    int minor_version;                                   /* HTTP/1.x */
    char content_type[HTTP_RESPONSE_CONTENT_TYPE_BYTES]; /* the media type, lower case,
                                                            parameters cut; "" when none */
    enum http_response_body body_kind;
    uint64_t content_length;

    /* The body, into the caller's buffer. */
    char *body;
    size_t body_len;
    size_t body_max;

    /* Private. */
    int state;
    char line[HTTP_RESPONSE_LINE_BYTES_MAX];
    size_t line_len;
    size_t head_bytes;
    uint64_t remaining; /* of Content-Length, or of the current chunk */
    bool has_length;
    bool is_chunked;
};

/* Ready to read a response into body[0..body_max). */
void http_response_init(struct http_response *response, char *body, size_t body_max);

/* Consume in[0..len): sets *used. Returns 1 when the response is complete
 * (*used stops right after it), 0 when more is needed, or an error:
 * -EPROTO (malformed), -E2BIG (head or body over its bound), -ENOTSUP (a
 * transfer coding other than chunked). */
int http_response_feed(struct http_response *response, const uint8_t *in, size_t len,
                       size_t *used);

/* The server closed the connection: 1 when that completes the response
 * (a close-delimited body), -EPROTO when the response was cut short. */
int http_response_eof(struct http_response *response);

#endif
