/*
 * bench/bench_reply.h - the SMTP reply parser of toaster-bench's client.
 *
 * Pure: bytes in, reply codes out, no I/O and no allocation, so it is
 * unit-tested and fuzzed without a socket. The caller owns the receive
 * buffer: bench_reply_line_next() finds one line in it, and
 * bench_reply_feed() takes that line and says whether a reply (one line,
 * or "250-" lines ending in a "250 " one) is complete. It also notes the
 * EHLO keywords the client acts on. One struct bench_reply per connection.
 * Limits: BENCH_REPLY_LINES_MAX lines per reply.
 */
#ifndef TOASTER_BENCH_REPLY_H
#define TOASTER_BENCH_REPLY_H

#include <stddef.h>
#include <stdint.h>

/* Lines in one reply, the last included. A long EHLO reply has a few
 * dozen; more than this is a broken or hostile server. */
#define BENCH_REPLY_LINES_MAX 1000

/* EHLO keywords the client uses, as bits of struct bench_reply.extensions. */
#define BENCH_REPLY_EXT_PIPELINING 0x1u
#define BENCH_REPLY_EXT_CHUNKING 0x2u
#define BENCH_REPLY_EXT_SIZE 0x4u

enum bench_reply_result {
    BENCH_REPLY_NEED_MORE, /* a continuation line ("250-..."): the reply goes on */
    BENCH_REPLY_DONE,      /* the last line: code holds the reply's code */
    BENCH_REPLY_ERROR,     /* error says why; the connection is no longer usable */
};

enum bench_reply_error {
    BENCH_REPLY_ERROR_NONE = 0,
    BENCH_REPLY_ERROR_MALFORMED,      /* not "Xyz", "Xyz ..." or "Xyz-...", X in 2..5 */
    BENCH_REPLY_ERROR_TOO_MANY_LINES, /* a continuation line past BENCH_REPLY_LINES_MAX - 1 */
};

struct bench_reply {
    uint32_t               line_count; /* lines of the reply in progress */
    int                    code;       /* of the last line fed; the reply's when DONE */
    uint32_t               extensions; /* BENCH_REPLY_EXT_* from 250 lines after the first */
    enum bench_reply_error error;
};

/* Start with no reply in progress (a new connection). */
void bench_reply_init(struct bench_reply *reply);

/* The first line of buf[0..buf_bytes): returns the bytes it takes, its LF
 * included, and sets *line_bytes_out to its length without the LF and one
 * CR before it. Returns 0 when buf holds no LF yet (more bytes needed).
 * Reads nothing past buf_bytes. */
size_t bench_reply_line_next(const char *buf, size_t buf_bytes, size_t *line_bytes_out);

/* Feed one line, without its line end. The line's code ends the reply when
 * the fourth byte is a space or the line is just the three digits; the code
 * of a multi-line reply is that of its last line. After DONE the next line
 * starts a new reply, and extensions start empty again; after ERROR the
 * parser must be reinitialized before it is used again. */
enum bench_reply_result bench_reply_feed(struct bench_reply *reply, const char *line,
                                         size_t line_bytes);

/* The EHLO keyword an extension line carries ("PIPELINING", "CHUNKING",
 * "SIZE 1000", any case) as a BENCH_REPLY_EXT_* bit, or 0. line is a whole
 * reply line, code included. */
uint32_t bench_reply_extension(const char *line, size_t line_bytes);

/* A short description of error, for the one line the client logs. */
const char *bench_reply_error_text(enum bench_reply_error error);

#endif
