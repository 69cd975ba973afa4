/*
 * core/imap_cmd_search.c - SEARCH and UID SEARCH (RFC 9051 6.4.4) with
 * ESEARCH return options (RFC 4731) and MODSEQ (RFC 7162), over the
 * selected mailbox.
 *
 * The program is compiled by proto/imap/imap_search; here each message of
 * the view is handed to it, with its file read only when a key needs the
 * header or the body and the index caches cannot answer: header keys take
 * the header cache, BODY and TEXT the body text cache (the folded text
 * imap_search_body_text() makes, kept in store/mailbox_index), so a
 * repeated BODY search of a folder reads no file for messages whose
 * header and body text are cached. A message read whole for a body key
 * gets its body text made once, matched with and cached. Worker thread.
 * Limits: IMAP_SEARCH_KEYS_DEFAULT keys, IMAP_SEARCH_TEXT_BYTES_DEFAULT of
 * search strings, MAILBOX_BODY_TEXT_BYTES_MAX of body text per message
 * (larger ones are searched from the file each time).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/assertions.h"
#include "core/imap_exec.h"
#include "core/log.h"
#include "proto/imap/imap_mime.h"
#include "proto/imap/imap_search.h"

static bool want_all(void *arg, uint32_t n);
static void body_text_attach(struct imap_exec *x, const struct mailbox_message *m,
                             struct imap_message *msg, const struct imap_search_context *ctx,
                             char *text_buf);

struct search_memory {
    struct imap_search_key keys[IMAP_SEARCH_KEYS_DEFAULT];
    struct imap_seq_range ranges[IMAP_SEARCH_RANGES_DEFAULT];
    char text[IMAP_SEARCH_TEXT_BYTES_DEFAULT];
};

void
imap_cmd_search(struct imap_exec *x)
{
    const struct imap_parsed *p = x->command;
    struct search_memory *mem = malloc(sizeof(*mem));
    struct mailbox_snapshot snap = {0};
    uint32_t *numbers = NULL;
    struct imap_mime_part *parts = NULL;
    char *text_buf = NULL;
    if (mem == NULL) {
        imap_exec_no(x, "[SERVERBUG] Out of memory.");
        return;
    }
    struct imap_search_storage storage = {
        .keys = mem->keys,
        .keys_max = IMAP_SEARCH_KEYS_DEFAULT,
        .ranges = mem->ranges,
        .ranges_max = IMAP_SEARCH_RANGES_DEFAULT,
        .text = mem->text,
        .text_bytes = IMAP_SEARCH_TEXT_BYTES_DEFAULT,
    };
    struct imap_search search;
    unsigned flags = (x->enabled & IMAP_ENABLED_IMAP4REV2) ? IMAP_SEARCH_F_REV2 : 0;
    enum imap_search_error err =
        imap_search_parse(&search, p, imap_node_first_child(p, 0), flags, &storage);
    if (err == IMAP_SEARCH_BADCHARSET) {
        imap_exec_no(x, IMAP_SEARCH_BADCHARSET_CODE " Unsupported charset.");
        goto out;
    }
    if (err != IMAP_SEARCH_OK) {
        imap_exec_bad(x, imap_search_error_text(err));
        goto out;
    }
    if (search.has_modseq) {
        x->enable_bits |= IMAP_ENABLED_CONDSTORE;
    }
    unsigned needs = imap_search_needs(&search);
    bool is_header_enough = needs == IMAP_SEARCH_NEEDS_HEADER;
    /* Body keys answered by cached body texts want the header cache too. */
    bool is_body_text_enough = imap_search_body_text_suffices(&search);
    snap.is_with_headers = is_header_enough || is_body_text_enough;
    snap.is_with_body_text = is_body_text_enough;
    if (mailbox_view_collect(x->view, false, want_all, NULL, &snap) != 0) {
        imap_exec_no(x, "[SERVERBUG] Out of memory.");
        goto out;
    }
    numbers = malloc((snap.count > 0 ? snap.count : 1) * sizeof(*numbers));
    if (numbers == NULL) {
        imap_exec_no(x, "[SERVERBUG] Out of memory.");
        goto out;
    }
    struct imap_search_context ctx = {
        .messages = (uint32_t)snap.count,
        .uid_max = snap.count > 0 ? snap.messages[snap.count - 1].uid : 0,
        .now = (int64_t)time(NULL),
    };
    if (needs & IMAP_SEARCH_NEEDS_BODY) {
        parts = calloc(IMAP_MIME_PARTS_MAX, sizeof(*parts));
        if (parts == NULL) {
            imap_exec_no(x, "[SERVERBUG] Out of memory.");
            goto out;
        }
        ctx.parts = parts;
        ctx.parts_cap = IMAP_MIME_PARTS_MAX;
    }
    if (is_body_text_enough) {
        text_buf = malloc(MAILBOX_BODY_TEXT_BYTES_MAX);
        if (text_buf == NULL) {
            imap_exec_no(x, "[SERVERBUG] Out of memory.");
            goto out;
        }
    }
    struct maildir_keywords kw;
    mailbox_index_keywords(mailbox_view_index(x->view), &kw);
    size_t count = 0;
    uint64_t highest = 0;
    uint64_t first_modseq = 0;
    uint64_t last_modseq = 0;
    /* The internal date (a stat) only for the keys that read it. */
    bool needs_date = false;
    for (size_t k = 0; k < search.key_count; k++) {
        switch (search.keys[k].op) {
        case IMAP_SEARCH_OP_BEFORE:
        case IMAP_SEARCH_OP_ON:
        case IMAP_SEARCH_OP_SINCE:
        case IMAP_SEARCH_OP_OLDER:
        case IMAP_SEARCH_OP_YOUNGER:
        case IMAP_SEARCH_OP_SENTBEFORE: /* falls back to it without a Date: */
        case IMAP_SEARCH_OP_SENTON:
        case IMAP_SEARCH_OP_SENTSINCE:
            needs_date = true;
            break;
        default:
            break;
        }
    }
    for (size_t i = 0; i < snap.count; i++) {
        const struct mailbox_message *m = &snap.messages[i];
        struct imap_exec_file f;
        /* With the header and the body text cached, the header is enough
         * data and the file is not read (only stat'ed when a date key
         * needs an INTERNALDATE the index does not know yet). */
        bool is_cached = is_body_text_enough && m->header != NULL && m->body_text != NULL;
        int rc = imap_exec_file_open(x, m, &kw, needs != 0, is_header_enough || is_cached,
                                     needs_date, &f);
        if (rc != 0) {
            /* Gone meanwhile: it matches nothing, as Dovecot answers. */
            continue;
        }
        if (is_body_text_enough) {
            body_text_attach(x, m, &f.message, &ctx, text_buf);
        }
        if (imap_search_match(&search, &f.message, &ctx)) {
            numbers[count++] = search.is_uid ? m->uid : m->seq;
            if (m->modseq > highest) {
                highest = m->modseq;
            }
            if (count == 1) {
                first_modseq = m->modseq;
            }
            last_modseq = m->modseq;
        }
        imap_exec_file_close(&f);
    }
    if (imap_search_modseq_of_ends(&search)) {
        unsigned r = search.return_mask;
        highest = 0;
        if ((r & IMAP_SEARCH_RETURN_MIN) && first_modseq > highest) {
            highest = first_modseq;
        }
        if ((r & IMAP_SEARCH_RETURN_MAX) && last_modseq > highest) {
            highest = last_modseq;
        }
    }
    /* Up to 11 bytes per number plus the framing; ESEARCH ALL is shorter. */
    size_t want = count * 11 + 256 + x->tag.len;
    struct imap_out out = imap_exec_out_begin(x, want);
    if (out.buf == NULL || imap_search_format(&search, x->tag, numbers, count, highest, &out) != 0) {
        imap_exec_no(x, "[SERVERBUG] Search result too large.");
        goto out;
    }
    imap_exec_out_commit(x, &out);
    /* No EXPUNGE during SEARCH by sequence number (RFC 9051 7.5.1). */
    imap_exec_updates(x, p->is_uid);
    imap_exec_ok(x, "Search completed.");
out:
    free(text_buf);
    free(parts);
    free(numbers);
    mailbox_snapshot_free(&snap);
    free(mem);
}

static bool
want_all(void *arg, uint32_t n)
{
    (void)arg;
    (void)n;
    return true;
}

/* Give msg its body text: the cached one, or, for a message just read
 * whole, one made now from its data (text_buf: MAILBOX_BODY_TEXT_BYTES_MAX
 * bytes of scratch), matched with and put into the cache. A text over the
 * bound is not made again; the message is then matched from its data. */
static void
body_text_attach(struct imap_exec *x, const struct mailbox_message *m, struct imap_message *msg,
                 const struct imap_search_context *ctx, char *text_buf)
{
    if (m->body_text != NULL) {
        size_t len;
        size_t body_len;
        msg->body_folded = mailbox_body_text_bytes(m->body_text, &len, &body_len);
        msg->body_folded_len = body_len;
        msg->body_folded_text_len = len;
        return;
    }
    if (m->is_body_text_too_large || msg->data == NULL) {
        return;
    }
    /* Not cached, so imap_exec_file_open() read the whole file. */
    ASSERT(msg->data_len == 0 || msg->data != m->header);
    size_t len;
    size_t body_len;
    int rc = imap_search_body_text(msg->data, msg->data_len, ctx->parts, ctx->parts_cap,
                                   text_buf, MAILBOX_BODY_TEXT_BYTES_MAX, &body_len, &len);
    struct mailbox_index *index = mailbox_view_index(x->view);
    if (rc == -ENOBUFS) {
        mailbox_index_body_text_too_large(index, m->uid);
        return;
    }
    ASSERT(rc == 0); /* the only failure is a text over the buffer */
    msg->body_folded = text_buf;
    msg->body_folded_len = body_len;
    msg->body_folded_text_len = len;
    mailbox_index_body_text_put(index, m->uid, text_buf, len, body_len);
}
