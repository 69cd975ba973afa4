/*
 * filters/dkim_message.c - the header block and the body stream of a
 * message on disk (see dkim_message.h). Worker threads and tools.
 * Limits: DKIM_HEADER_BLOCK_BYTES_MAX, DKIM_HEADER_FIELDS_MAX,
 * DKIM_READ_CHUNK_BYTES (filters/dkim_limits.h).
 */
#define _GNU_SOURCE
#include "filters/dkim_message.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/ascii.h"
#include "core/assertions.h"
#include "filters/dkim_limits.h"

static_assert(DKIM_HEADER_BLOCK_BYTES_MAX <= UINT32_MAX, "field offsets fit u32");

static int split_fields(struct dkim_message *msg, size_t end);

int
dkim_message_open(int fd, struct dkim_message *msg_out)
{
    ASSERT(fd >= 0);
    memset(msg_out, 0, sizeof(*msg_out));
    char *buf = malloc(DKIM_HEADER_BLOCK_BYTES_MAX);
    struct dkim_field *fields = calloc(DKIM_HEADER_FIELDS_MAX, sizeof(*fields));
    if (buf == NULL || fields == NULL) {
        free(buf);
        free(fields);
        return -ENOMEM;
    }
    msg_out->header = buf;
    msg_out->fields = fields;
    size_t read_len = 0;
    size_t scanned = 0; /* bytes before it hold no end of the block */
    size_t header_len = 0;
    bool is_found = false;
    bool is_eof = false;
    while (!is_found && !is_eof) {
        if (read_len == DKIM_HEADER_BLOCK_BYTES_MAX) {
            dkim_message_close(msg_out);
            return -EMSGSIZE;
        }
        ssize_t got =
            pread(fd, buf + read_len, DKIM_HEADER_BLOCK_BYTES_MAX - read_len, (off_t)read_len);
        if (got < 0) {
            if (errno == EINTR) {
                continue;
            }
            int err = -errno;
            dkim_message_close(msg_out);
            return err;
        }
        if (got == 0) {
            is_eof = true;
        }
        read_len += (size_t)got;
        if (scanned == 0 && read_len >= 2 && buf[0] == '\r' && buf[1] == '\n') {
            header_len = 2; /* no header fields at all */
            is_found = true;
            break;
        }
        const char *end =
            read_len > scanned ? memmem(buf + scanned, read_len - scanned, "\r\n\r\n", 4) : NULL;
        if (end != NULL) {
            header_len = (size_t)(end - buf) + 4;
            is_found = true;
        } else {
            scanned = read_len >= 3 ? read_len - 3 : 0;
        }
    }
    if (!is_found) {
        header_len = read_len; /* the file ends inside the header: no body */
    }
    msg_out->header_len = header_len;
    msg_out->read_len = read_len;
    msg_out->is_eof = is_eof;
    /* The fields end before the empty line (or at the end of the file). */
    size_t fields_end = is_found ? header_len - 2 : header_len;
    int rc = split_fields(msg_out, fields_end);
    if (rc != 0) {
        dkim_message_close(msg_out);
        return rc;
    }
    return 0;
}

int
dkim_message_body(const struct dkim_message *msg, int fd,
                  void (*feed)(void *arg, const char *bytes, size_t len),
                  bool (*is_full)(void *arg), void *arg)
{
    ASSERT(msg->header != NULL);
    ASSERT(msg->read_len >= msg->header_len);
    if (msg->read_len > msg->header_len) {
        feed(arg, msg->header + msg->header_len, msg->read_len - msg->header_len);
    }
    if (msg->is_eof) {
        return 0; /* the header read already met the end of the file */
    }
    char *chunk = malloc(DKIM_READ_CHUNK_BYTES);
    if (chunk == NULL) {
        return -ENOMEM;
    }
    off_t offset = (off_t)msg->read_len;
    for (;;) {
        if (is_full != NULL && is_full(arg)) {
            break;
        }
        ssize_t got = pread(fd, chunk, DKIM_READ_CHUNK_BYTES, offset);
        if (got < 0) {
            if (errno == EINTR) {
                continue;
            }
            int err = -errno;
            free(chunk);
            return err;
        }
        if (got == 0) {
            break;
        }
        feed(arg, chunk, (size_t)got);
        offset += got;
    }
    free(chunk);
    return 0;
}

bool
dkim_message_field_is(const struct dkim_message *msg, const struct dkim_field *field,
                      const char *name)
{
    size_t n = strlen(name);
    if (field->name_len != n) {
        return false;
    }
    const char *p = msg->header + field->offset;
    for (size_t i = 0; i < n; i++) {
        if (ascii_lower((unsigned char)p[i]) != ascii_lower((unsigned char)name[i])) {
            return false;
        }
    }
    return true;
}

void
dkim_message_close(struct dkim_message *msg)
{
    free(msg->header);
    free(msg->fields);
    memset(msg, 0, sizeof(*msg));
}

/* Lines up to end; a line that starts with WSP continues the field above. */
static int
split_fields(struct dkim_message *msg, size_t end)
{
    const char *buf = msg->header;
    size_t pos = 0;
    msg->field_count = 0;
    while (pos < end) {
        const char *crlf = memmem(buf + pos, end - pos, "\r\n", 2);
        size_t line_end = crlf != NULL ? (size_t)(crlf - buf) : end;
        size_t next = crlf != NULL ? line_end + 2 : end;
        if (msg->field_count > 0 && ascii_is_blank(buf[pos])) {
            struct dkim_field *field = &msg->fields[msg->field_count - 1];
            field->len = (uint32_t)(line_end - field->offset);
        } else {
            if (msg->field_count == DKIM_HEADER_FIELDS_MAX) {
                return -EMSGSIZE;
            }
            struct dkim_field *field = &msg->fields[msg->field_count++];
            field->offset = (uint32_t)pos;
            field->len = (uint32_t)(line_end - pos);
            const char *colon = memchr(buf + pos, ':', line_end - pos);
            size_t name_len = colon != NULL ? (size_t)(colon - (buf + pos)) : 0;
            while (name_len > 0 && ascii_is_blank(buf[pos + name_len - 1])) {
                name_len--;
            }
            field->name_len = (uint32_t)name_len;
        }
        pos = next;
    }
    return 0;
}
