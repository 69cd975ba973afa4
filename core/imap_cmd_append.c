/*
 * core/imap_cmd_append.c - APPEND (RFC 9051 6.3.12) with UIDPLUS's
 * APPENDUID (RFC 4315); synchronising and non-synchronising (LITERAL+)
 * literals.
 *
 * A small message arrives inline in the command and is written here; a
 * large one was streamed by the listener into a spool file, which is
 * linked into the folder (no copy). Either way it lands in cur/ with its
 * flags and INTERNALDATE (the file's mtime), cur/ is synced, and the
 * folder is refreshed so its UID is known. Worker thread.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/assertions.h"
#include "core/imap_exec.h"
#include "core/log.h"
#include "store/maildir_add.h"
#include "store/maildir_folders.h"

static bool date_time_parse(const char *s, size_t len, int64_t *out);

void
imap_cmd_append(struct imap_exec *x)
{
    const struct imap_parsed *p = x->command;
    uint32_t argc = p->nodes[0].child_count;
    if (argc < 2 || argc > 4) {
        imap_exec_bad(x, "APPEND needs a mailbox and a message.");
        return;
    }
    uint32_t name_node = imap_node_first_child(p, 0);
    uint32_t flags_node = IMAP_NODE_NONE;
    uint32_t date_node = IMAP_NODE_NONE;
    uint32_t i = imap_node_next(p, name_node);
    if (p->nodes[i].kind == IMAP_NODE_LIST) {
        flags_node = i;
        i = imap_node_next(p, i);
    }
    if (i != IMAP_NODE_NONE && p->nodes[i].kind == IMAP_NODE_QUOTED) {
        date_node = i;
        i = imap_node_next(p, i);
    }
    if (i == IMAP_NODE_NONE || p->nodes[i].kind != IMAP_NODE_LITERAL ||
        imap_node_next(p, i) != IMAP_NODE_NONE) {
        imap_exec_bad(x, "APPEND needs a message literal last.");
        return;
    }
    const struct imap_node *literal = &p->nodes[i];
    bool is_streamed = (literal->flags & IMAP_NODE_F_STREAMED) != 0;
    if (is_streamed && (x->append_fd < 0 || x->is_append_failed)) {
        imap_exec_no(x, "[SERVERBUG] The message could not be stored.");
        return;
    }
    uint64_t size = is_streamed ? x->append_size : literal->text.len;
    if (size == 0) {
        imap_exec_no(x, "Can't save a zero byte message.");
        return;
    }
    int64_t mtime = 0;
    if (date_node != IMAP_NODE_NONE &&
        !date_time_parse(p->nodes[date_node].text.ptr, p->nodes[date_node].text.len, &mtime)) {
        imap_exec_bad(x, "Invalid date-time.");
        return;
    }
    char target[PATH_MAX];
    struct mailbox_index *dest = NULL;
    if (imap_exec_target_open(x, name_node, target, sizeof(target), &dest) != 0) {
        return;
    }
    int rc;
    uint32_t flags = 0;
    uint32_t keywords = 0;
    if (flags_node != IMAP_NODE_NONE) {
        x->is_flags_trailing_ok = true;
        rc = imap_exec_flags_parse(x, flags_node, dest, &flags, &keywords);
        x->is_flags_trailing_ok = false;
        if (rc != 0) {
            mailbox_index_release(&dest);
            return;
        }
    }
    struct maildir_add_source source = {
        .fd = is_streamed ? x->append_fd : -1,
        .bytes = is_streamed ? NULL : literal->text.ptr,
        .size = size,
    };
    char base[MAILDIR_NAME_BYTES_MAX + 1];
    /* Until it is indexed, the new file is ours, not another program's. */
    mailbox_index_adding_begin(dest);
    rc = maildir_add(target, &source, flags, keywords, mtime, base, sizeof(base));
    if (rc == 0) {
        rc = maildir_add_sync(target);
    }
    if (rc != 0) {
        log_warning("imap: append to %s: %s", target, strerror(-rc));
        mailbox_index_adding_end(dest);
        mailbox_index_release(&dest);
        imap_exec_no(x, rc == -ENOSPC || rc == -EDQUOT ? "[OVERQUOTA] No space left."
                                                       : "[SERVERBUG] Append failed.");
        return;
    }
    const char *names[1] = {base};
    uint32_t uid = 0;
    int rrc = mailbox_index_add_files(dest, names, 1, &uid);
    mailbox_index_adding_end(dest);
    if (rrc != 0) {
        log_warning("imap: append: indexing %s: %s", target, strerror(-rrc));
    }
    struct mailbox_status st;
    mailbox_index_status(dest, &st);
    mailbox_index_release(&dest);
    imap_exec_updates(x, true);
    if (uid != 0) {
        imap_exec_write(x, x->tag.ptr, x->tag.len);
        imap_exec_printf(x, " OK [APPENDUID %u %u] Append completed.\r\n", st.uidvalidity, uid);
    } else {
        imap_exec_ok(x, "Append completed.");
    }
}

/* RFC 3501 date-time: "dd-Mon-yyyy hh:mm:ss +zzzz" (day may be " d"). */
static bool
date_time_parse(const char *s, size_t len, int64_t *out)
{
    static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    char buf[32];
    if (len < 25 || len > 26 || len >= sizeof(buf)) {
        return false;
    }
    memcpy(buf, s, len);
    buf[len] = '\0';
    const char *p = buf;
    if (len == 25) {
        /* "d-Mon-..." with one digit: accepted as Dovecot does. */
        memmove(buf + 1, buf, len + 1);
        buf[0] = ' ';
    }
    int day = (p[0] == ' ' ? 0 : (p[0] - '0') * 10) + (p[1] - '0');
    if ((p[0] != ' ' && (p[0] < '0' || p[0] > '9')) || p[1] < '0' || p[1] > '9' ||
        p[2] != '-' || p[6] != '-' || p[11] != ' ' || p[14] != ':' || p[17] != ':' ||
        p[20] != ' ' || (p[21] != '+' && p[21] != '-')) {
        return false;
    }
    int month = -1;
    for (int m = 0; m < 12; m++) {
        if (strncasecmp(p + 3, months[m], 3) == 0) {
            month = m;
        }
    }
    int digits[] = {7, 8, 9, 10, 12, 13, 15, 16, 18, 19, 22, 23, 24, 25};
    for (size_t k = 0; k < sizeof(digits) / sizeof(digits[0]); k++) {
        if (p[digits[k]] < '0' || p[digits[k]] > '9') {
            return false;
        }
    }
    int year = (p[7] - '0') * 1000 + (p[8] - '0') * 100 + (p[9] - '0') * 10 + (p[10] - '0');
    int hour = (p[12] - '0') * 10 + (p[13] - '0');
    int minute = (p[15] - '0') * 10 + (p[16] - '0');
    int second = (p[18] - '0') * 10 + (p[19] - '0');
    int zone = ((p[22] - '0') * 10 + (p[23] - '0')) * 60 + (p[24] - '0') * 10 + (p[25] - '0');
    if (month < 0 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60 ||
        year < 1970) {
        return false;
    }
    struct tm tm = {
        .tm_year = year - 1900,
        .tm_mon = month,
        .tm_mday = day,
        .tm_hour = hour,
        .tm_min = minute,
        .tm_sec = second,
    };
    int64_t t = (int64_t)timegm(&tm);
    t -= (p[21] == '+' ? 1 : -1) * (int64_t)zone * 60;
    *out = t > 0 ? t : 1;
    return true;
}
