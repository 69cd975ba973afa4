/*
 * tests/fuzz/fuzz_imap_parser.c - libFuzzer harness for imap_reader and
 * imap_parser together, plus imap_seqset and core/mutf7 on the atoms and
 * strings the parser finds.
 *
 * The first input bytes choose the reader limits (small ones, so limits are
 * hit often), parser flags and a seed for chunk sizes; the rest is fed as
 * client bytes in pseudo-random chunks. Each continuation request is
 * accepted or refused by the seed. Properties checked: the reader consumes
 * within its input and makes progress, streamed chunks add up to their
 * literal, framed literals lie inside the command text, the same bytes fed
 * whole give the same commands (checked by a hash of every event), parse
 * results keep spans inside the command and children counts consistent,
 * and seqset/mutf7 stay within their outputs. A broken property aborts.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/mutf7.h"
#include "proto/imap/imap_parser.h"
#include "proto/imap/imap_reader.h"
#include "proto/imap/imap_seqset.h"
#include "tests/fuzz/fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The reader's literal table (lent to it, as the session lends its own). */
static struct imap_literal reader_literals[IMAP_LITERALS_CEILING];

static struct imap_node nodes[512];
static struct imap_seq_range ranges[64];

static uint64_t
hash_bytes(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) {
        h = (h ^ b[i]) * 1099511628211ull;
    }
    return h;
}

static void
check_strings(const struct imap_parsed *parsed)
{
    char out[1024];
    size_t len;
    for (size_t i = 0; i < parsed->node_count; i++) {
        const struct imap_node *node = &parsed->nodes[i];
        if (node->kind == IMAP_NODE_ATOM) {
            struct imap_seqset set;
            imap_seqset_init(&set, ranges, sizeof(ranges) / sizeof(ranges[0]));
            if (imap_seqset_parse(&set, node->text) == IMAP_SEQSET_OK && !set.is_searchres) {
                imap_seqset_resolve(&set, (uint32_t)node->text.len * 7);
                FUZZ_CHECK(set.count <= sizeof(ranges) / sizeof(ranges[0]));
                for (size_t k = 1; k < set.count; k++) {
                    FUZZ_CHECK((uint64_t)set.ranges[k - 1].last + 1 < set.ranges[k].first);
                }
                for (size_t k = 0; k < set.count; k++) {
                    FUZZ_CHECK(imap_seqset_contains(&set, set.ranges[k].first));
                    FUZZ_CHECK(imap_seqset_contains(&set, set.ranges[k].last));
                }
            }
        }
        if (node->kind == IMAP_NODE_ATOM || node->kind == IMAP_NODE_QUOTED) {
            int rc = mutf7_decode(node->text, out, sizeof(out), &len);
            FUZZ_CHECK(rc == 0 || rc == -EINVAL || rc == -ENOSPC);
            if (rc == 0) {
                FUZZ_CHECK(len <= sizeof(out));
                char back[2048];
                size_t back_len;
                /* Canonical: encoding the decoded name gives it back. */
                FUZZ_CHECK(mutf7_encode(span_make(out, len), back, sizeof(back),
                                             &back_len) == 0);
                FUZZ_CHECK(back_len == node->text.len);
                FUZZ_CHECK(memcmp(back, node->text.ptr, back_len) == 0);
            }
            if (node->kind == IMAP_NODE_QUOTED) {
                long n = imap_parser_unquote(node->text, out, sizeof(out));
                FUZZ_CHECK(n >= -1 && n <= (long)node->text.len);
            }
        }
    }
}

static uint64_t
check_command(const struct imap_reader *reader, unsigned flags)
{
    struct imap_command_text cmd = imap_reader_command(reader);
    uint64_t h = hash_bytes(0, cmd.text, cmd.len);
    for (size_t i = 0; i < cmd.literal_count; i++) {
        const struct imap_literal *lit = &cmd.literals[i];
        FUZZ_CHECK(lit->announce_offset < lit->data_offset);
        FUZZ_CHECK(lit->data_offset <= cmd.len);
        if (!lit->is_streamed) {
            FUZZ_CHECK(lit->len <= cmd.len - lit->data_offset);
        }
        if (i > 0) {
            FUZZ_CHECK(lit->announce_offset >= cmd.literals[i - 1].data_offset);
        }
        h = hash_bytes(h, lit, sizeof(*lit));
    }
    struct imap_parsed parsed;
    enum imap_parse_error err =
        imap_parser_parse(&cmd, flags, nodes, sizeof(nodes) / sizeof(nodes[0]), &parsed);
    h = hash_bytes(h, &err, sizeof(err));
    FUZZ_CHECK(parsed.node_count <= sizeof(nodes) / sizeof(nodes[0]));
    FUZZ_CHECK(parsed.error_offset <= cmd.len);
    for (size_t i = 0; i < parsed.node_count; i++) {
        struct span t = nodes[i].text;
        if (t.len > 0) {
            FUZZ_CHECK(t.ptr >= cmd.text && t.ptr + t.len <= cmd.text + cmd.len);
        }
    }
    if (err == IMAP_PARSE_OK) {
        FUZZ_CHECK(parsed.tag.len > 0);
        FUZZ_CHECK(parsed.command != IMAP_CMD_UNKNOWN);
        /* Walk the tree; children counts match the links. */
        for (size_t i = 0; i < parsed.node_count; i++) {
            const struct imap_node *node = &nodes[i];
            if (node->kind == IMAP_NODE_LIST || node->kind == IMAP_NODE_SECTION) {
                uint32_t seen = 0;
                uint32_t child = imap_node_first_child(&parsed, (uint32_t)i);
                while (child != IMAP_NODE_NONE) {
                    FUZZ_CHECK(child > i && child < parsed.node_count);
                    seen++;
                    child = imap_node_next(&parsed, child);
                }
                FUZZ_CHECK(seen == node->child_count);
            }
            if (node->kind == IMAP_NODE_QUOTED && (flags & IMAP_PARSE_F_UTF8) == 0) {
                for (size_t k = 0; k < node->text.len; k++) {
                    FUZZ_CHECK((unsigned char)node->text.ptr[k] < 0x80);
                }
            }
            if (node->kind == IMAP_NODE_LITERAL && (node->flags & IMAP_NODE_F_BINARY) == 0) {
                FUZZ_CHECK(node->text.len == 0 ||
                           memchr(node->text.ptr, '\0', node->text.len) == NULL);
            }
        }
        check_strings(&parsed);
    }
    return h;
}

/* Feed the input; chunk sizes from the seed (0: whole). Returns a hash of
 * every event so two feedings can be compared. */
static uint64_t
feed_all(const struct imap_reader_config *config, char *buf, size_t buf_bytes, const char *in,
         size_t len, uint32_t seed, bool is_chunked, unsigned flags)
{
    struct imap_reader reader;
    imap_reader_init(&reader, config, buf, buf_bytes, reader_literals);
    uint64_t h = 1469598103934665603ull;
    uint64_t stream_left = 0;
    uint32_t rng = seed | 1;
    size_t pos = 0;
    size_t rounds = 0;
    while (pos < len) {
        size_t n = len - pos;
        if (is_chunked) {
            rng = rng * 1103515245u + 12345u;
            size_t want = 1 + ((rng >> 16) % 37);
            n = want < n ? want : n;
        }
        size_t used = 0;
        enum imap_reader_event ev = imap_reader_feed(&reader, in + pos, n, &used);
        FUZZ_CHECK(used <= n);
        FUZZ_CHECK(++rounds <= 4 * len + 16);
        pos += used;
        switch (ev) {
        case IMAP_READER_NEED_MORE:
            FUZZ_CHECK(used == n);
            break;
        case IMAP_READER_CONTINUE:
            h = hash_bytes(h, "+", 1);
            /* Refuse some, by position (same either way of feeding). */
            if ((pos * 2654435761u) % 7 == 0) {
                imap_reader_refuse_literal(&reader);
                h = hash_bytes(h, "R", 1);
            }
            break;
        case IMAP_READER_LITERAL_DATA: {
            const struct imap_reader_chunk *c = imap_reader_chunk(&reader);
            FUZZ_CHECK(c->data.len > 0);
            FUZZ_CHECK(c->data.ptr >= in && c->data.ptr + c->data.len <= in + len);
            if (c->offset == 0) {
                stream_left = c->total;
            }
            FUZZ_CHECK(c->data.len <= stream_left);
            FUZZ_CHECK(c->total - c->offset == stream_left);
            stream_left -= c->data.len;
            FUZZ_CHECK(c->is_last == (stream_left == 0));
            if (c->is_last) {
                h = hash_bytes(h, "S", 1);
                h = hash_bytes(h, &c->total, sizeof(c->total));
            }
            break;
        }
        case IMAP_READER_COMMAND:
            h = hash_bytes(h, "C", 1) ^ check_command(&reader, flags);
            break;
        case IMAP_READER_TOO_BIG: {
            struct span tag = imap_reader_tag(&reader);
            h = hash_bytes(h, "T", 1);
            h = hash_bytes(h, tag.ptr, tag.len);
            break;
        }
        case IMAP_READER_ERROR: {
            enum imap_reader_error e = imap_reader_error(&reader);
            FUZZ_CHECK(e != IMAP_READER_OK && e != IMAP_READER_DISCARD_TOO_BIG);
            h = hash_bytes(h, "E", 1);
            h = hash_bytes(h, &e, sizeof(e));
            break;
        }
        case IMAP_READER_FATAL:
            FUZZ_CHECK(imap_reader_error(&reader) == IMAP_READER_DISCARD_TOO_BIG);
            return hash_bytes(h, "F", 1);
        }
    }
    return h;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 4) {
        return 0;
    }
    struct imap_reader_config config;
    imap_reader_config_default(&config, 64 + (size_t)data[0] * 16);
    config.line_bytes_max = 32 + (size_t)data[1] * 8;
    config.literal_bytes_max = (size_t)data[2];
    config.inline_bytes_max = 8 + (data[2] & 31);
    config.literal_count_max = 1 + (data[3] & 7);
    config.nonsync_bytes_max = (data[3] & 8) ? IMAP_LITERAL_MINUS_BYTES_MAX : UINT64_MAX;
    config.discard_bytes_max = 256 + (size_t)data[0] * 64;
    unsigned flags = (data[3] & 16) ? IMAP_PARSE_F_UTF8 : 0;
    uint32_t seed = (uint32_t)data[1] << 8 | data[2];
    size_t buf_bytes = 64 + (size_t)data[1] * 16;

    const char *in = (const char *)data + 4;
    size_t len = size - 4;
    char *copy = malloc(len > 0 ? len : 1);
    char *buf = malloc(buf_bytes);
    FUZZ_CHECK(copy != NULL && buf != NULL);
    if (len > 0) {
        memcpy(copy, in, len);
    }
    /* Refusals depend on pos after a CONTINUE event, which is the same
     * whole or chunked since events stop the feed at the same byte. */
    uint64_t whole = feed_all(&config, buf, buf_bytes, copy, len, seed, false, flags);
    uint64_t chunked = feed_all(&config, buf, buf_bytes, copy, len, seed, true, flags);
    FUZZ_CHECK(whole == chunked);
    free(buf);
    free(copy);
    return 0;
}
