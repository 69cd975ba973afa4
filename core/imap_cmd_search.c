/*
 * core/imap_cmd_search.c - SEARCH and UID SEARCH (RFC 9051 6.4.4) with
 * ESEARCH return options (RFC 4731) and MODSEQ (RFC 7162), over the
 * selected mailbox.
 *
 * The program is compiled by proto/imap/imap_search; here each message of
 * the view is handed to it, with its file mapped only when a key needs
 * the header or the body. Worker thread.
 * Limits: IMAP_SEARCH_KEYS_DEFAULT keys, IMAP_SEARCH_TEXT_BYTES_DEFAULT of
 * search strings.
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
    snap.is_with_headers = is_header_enough;
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
        int rc = imap_exec_file_open(x, m, &kw, needs != 0, is_header_enough, needs_date, &f);
        if (rc != 0) {
            /* Gone meanwhile: it matches nothing, as Dovecot answers. */
            continue;
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
