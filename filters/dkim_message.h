/*
 * filters/dkim_message.h - a message on disk as the DKIM signer and
 * verifier read it: the header block read once (at most
 * DKIM_HEADER_BLOCK_BYTES_MAX, split into at most DKIM_HEADER_FIELDS_MAX
 * fields), then the body streamed in DKIM_READ_CHUNK_BYTES pieces with
 * pread(2), so a message of tens of MiB never sits in memory and the
 * file's offset is left alone. Lines end with CRLF. Blocking I/O: worker
 * threads and tools only.
 */
#ifndef TOASTER_FILTERS_DKIM_MESSAGE_H
#define TOASTER_FILTERS_DKIM_MESSAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct dkim_field {
    uint32_t offset;   /* in dkim_message.header */
    uint32_t len;      /* the whole field, folding included, without its final CRLF */
    uint32_t name_len; /* the name before ':' without trailing WSP; 0 when there is no ':' */
};

struct dkim_message {
    char *header;      /* owned: the header block and perhaps the body's start */
    size_t header_len; /* bytes of the header block, its empty line included */
    size_t read_len;   /* bytes read into header */
    bool is_eof;       /* those bytes are the whole file */
    size_t field_count;
    struct dkim_field *fields; /* owned: DKIM_HEADER_FIELDS_MAX */
};

/* Read and split the header block of the message in fd (from offset 0).
 * Returns 0, -EMSGSIZE when the header block or its field count is over
 * its bound, -ENOMEM, or -errno of pread. On error nothing is left to free. */
int dkim_message_open(int fd, struct dkim_message *msg_out);

/* Stream the body: each chunk goes to feed(arg, bytes, len) until the file
 * ends or is_full(arg) says no more is needed (NULL: read to the end).
 * Returns 0 or -errno (-ENOMEM for the chunk buffer). */
int dkim_message_body(const struct dkim_message *msg, int fd,
                      void (*feed)(void *arg, const char *bytes, size_t len),
                      bool (*is_full)(void *arg), void *arg);

/* The field's name equals name (ASCII case-insensitive). */
bool dkim_message_field_is(const struct dkim_message *msg, const struct dkim_field *field,
                           const char *name);

void dkim_message_close(struct dkim_message *msg);

#endif
