/*
 * core/imap_cmd_mailbox.c - the commands about folders rather than
 * messages: LIST (RFC 9051, LIST-EXTENDED RFC 5258, SPECIAL-USE RFC 6154,
 * LIST-STATUS RFC 5819, CHILDREN), LSUB, STATUS, CREATE, DELETE, RENAME,
 * SUBSCRIBE and UNSUBSCRIBE, on the user's Maildir++ tree
 * (store/maildir_folders).
 *
 * Runs on a worker (see core/imap_exec.h): it reads directories.
 * Limits: IMAP_LIST_PATTERNS_MAX patterns per LIST; the folder limits of
 * store/maildir_folders.h.
 */
#define _GNU_SOURCE
#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/assertions.h"
#include "core/imap_exec.h"
#include "core/log.h"
#include "core/mutf7.h"
#include "store/maildir_folders.h"
#include "store/maildir_subscriptions.h"

#define IMAP_LIST_PATTERNS_MAX 32
#define IMAP_LIST_PATTERN_BYTES (MAILDIR_FOLDERS_NAME_BYTES_MAX * 2 + 16)

#define STATUS_MESSAGES 0x01u
#define STATUS_RECENT 0x02u
#define STATUS_UIDNEXT 0x04u
#define STATUS_UIDVALIDITY 0x08u
#define STATUS_UNSEEN 0x10u
#define STATUS_DELETED 0x20u
#define STATUS_SIZE 0x40u
#define STATUS_HIGHESTMODSEQ 0x80u

/* STATUS items, in the order the answer lists them. */
static const struct {
    const char *name;
    unsigned bit;
} status_names[] = {
    {"MESSAGES", STATUS_MESSAGES}, {"RECENT", STATUS_RECENT},
    {"UIDNEXT", STATUS_UIDNEXT},   {"UIDVALIDITY", STATUS_UIDVALIDITY},
    {"UNSEEN", STATUS_UNSEEN},     {"DELETED", STATUS_DELETED},
    {"SIZE", STATUS_SIZE},         {"HIGHESTMODSEQ", STATUS_HIGHESTMODSEQ},
};

struct list_request {
    bool is_lsub;
    bool select_subscribed;
    bool select_special_use;
    bool is_recursive_match;
    bool return_subscribed;
    bool return_children;
    bool return_special_use;
    unsigned return_status; /* STATUS_* */
    size_t pattern_count;
    char patterns[IMAP_LIST_PATTERNS_MAX][IMAP_LIST_PATTERN_BYTES];
};

static int list_parse(struct imap_exec *x, struct list_request *req);
static int pattern_arg(struct imap_exec *x, const struct imap_node *n, char *out, size_t out_bytes);
static bool pattern_match(const char *pattern, const char *name);
static int status_items(struct imap_exec *x, uint32_t list_node, unsigned *items_out);
static void status_write(struct imap_exec *x, const char *name, unsigned items, bool is_quiet);
static void list_line(struct imap_exec *x, const struct list_request *req,
                      const struct maildir_folder *f, bool is_subscribed, bool has_sub_child);
static void subscribed_list(struct imap_exec *x, const struct list_request *req,
                            const struct maildir_folder_list *folders,
                            const struct maildir_subscriptions *subs);

void
imap_cmd_list(struct imap_exec *x)
{
    struct list_request *req = calloc(1, sizeof(*req));
    if (req == NULL) {
        imap_exec_no(x, "[SERVERBUG] Out of memory.");
        return;
    }
    req->is_lsub = x->command->command == IMAP_CMD_LSUB;
    if (list_parse(x, req) != 0) {
        free(req);
        return;
    }
    /* LIST "" "": the hierarchy delimiter and the root. */
    if (req->pattern_count == 1 && req->patterns[0][0] == '\0' && !req->is_lsub) {
        imap_exec_cstr(x, "* LIST (\\Noselect) \".\" \"\"\r\n");
        imap_exec_ok(x, "List completed.");
        free(req);
        return;
    }
    struct maildir_folder_list folders = {0};
    struct maildir_subscriptions subs;
    maildir_subscriptions_init(&subs);
    int rc = maildir_folders_list(x->root, 0, &folders);
    bool needs_subs = req->is_lsub || req->select_subscribed || req->return_subscribed;
    if (rc == 0 && needs_subs) {
        rc = maildir_folders_subscriptions_read(x->root, &subs);
    }
    if (rc != 0) {
        log_warning("imap: list %s: %s", x->root, strerror(-rc));
        imap_exec_no(x, rc == -E2BIG ? "[LIMIT] Too many folders." : "[SERVERBUG] List failed.");
        maildir_folders_list_free(&folders);
        maildir_subscriptions_free(&subs);
        free(req);
        return;
    }
    if (req->is_lsub || req->select_subscribed) {
        subscribed_list(x, req, &folders, &subs);
    } else {
        for (size_t i = 0; i < folders.count; i++) {
            const struct maildir_folder *f = &folders.folders[i];
            bool is_match = false;
            for (size_t p = 0; p < req->pattern_count && !is_match; p++) {
                is_match = pattern_match(req->patterns[p], f->name);
            }
            if (!is_match) {
                continue;
            }
            if (req->select_special_use && f->special_use == NULL) {
                continue;
            }
            bool is_subscribed =
                needs_subs && maildir_subscriptions_contains(&subs, f->name, f->name_len, '.');
            list_line(x, req, f, is_subscribed, false);
            if (req->return_status != 0 && f->is_selectable && !f->is_nonexistent) {
                status_write(x, f->name, req->return_status, true);
            }
        }
    }
    bool is_lsub = req->is_lsub;
    maildir_folders_list_free(&folders);
    maildir_subscriptions_free(&subs);
    free(req);
    imap_exec_ok(x, is_lsub ? "Lsub completed." : "List completed.");
}

void
imap_cmd_status(struct imap_exec *x)
{
    const struct imap_parsed *p = x->command;
    if (p->nodes[0].child_count != 2) {
        imap_exec_bad(x, "STATUS needs a mailbox and a list of items.");
        return;
    }
    uint32_t name_node = imap_node_first_child(p, 0);
    uint32_t items_node = imap_node_next(p, name_node);
    unsigned items = 0;
    if (status_items(x, items_node, &items) != 0) {
        return;
    }
    char name[MAILDIR_FOLDERS_NAME_BYTES_MAX + 1];
    if (imap_exec_mailbox_arg(x, name_node, name, sizeof(name)) != 0) {
        return;
    }
    size_t before = x->out_len;
    status_write(x, name, items, false);
    if (x->out_len == before) {
        return; /* status_write answered NO */
    }
    imap_exec_ok(x, "Status completed.");
}

void
imap_cmd_folder(struct imap_exec *x)
{
    const struct imap_parsed *p = x->command;
    enum imap_command command = p->command;
    uint32_t argc = p->nodes[0].child_count;
    if ((command == IMAP_CMD_RENAME && argc != 2) || (command != IMAP_CMD_RENAME && argc != 1)) {
        imap_exec_bad(x, command == IMAP_CMD_RENAME ? "RENAME needs two mailbox names."
                                                    : "A mailbox name is expected.");
        return;
    }
    uint32_t first = imap_node_first_child(p, 0);
    char name[MAILDIR_FOLDERS_NAME_BYTES_MAX + 2];
    char target[MAILDIR_FOLDERS_NAME_BYTES_MAX + 2];
    /* CREATE "a.b." creates "a.b": a trailing delimiter only says that
     * children are intended (RFC 9051 6.3.4). */
    if (command == IMAP_CMD_CREATE) {
        if (imap_exec_mailbox_arg_create(x, first, name, sizeof(name)) != 0) {
            return;
        }
    } else if (imap_exec_mailbox_arg(x, first, name, sizeof(name)) != 0) {
        return;
    }
    int rc;
    switch (command) {
    case IMAP_CMD_CREATE:
        rc = maildir_folders_create(x->root, name, 0);
        break;
    case IMAP_CMD_DELETE:
        rc = maildir_folders_delete(x->root, name);
        break;
    default:
        ASSERT(command == IMAP_CMD_RENAME);
        if (imap_exec_mailbox_arg(x, imap_node_next(p, first), target, sizeof(target)) != 0) {
            return;
        }
        rc = maildir_folders_rename(x->root, name, target, 0);
        break;
    }
    switch (rc) {
    case 0:
        imap_exec_ok(x, command == IMAP_CMD_CREATE   ? "Create completed."
                        : command == IMAP_CMD_DELETE ? "Delete completed."
                                                     : "Rename completed.");
        return;
    case -EEXIST:
        imap_exec_no(x, "[ALREADYEXISTS] Mailbox already exists.");
        return;
    case -ENOENT:
        imap_exec_no(x, "[NONEXISTENT] Mailbox doesn't exist.");
        return;
    case -EPERM:
        imap_exec_no(x, "[CANNOT] INBOX can't be deleted.");
        return;
    case -ENOTEMPTY:
        imap_exec_no(x, "[HASCHILDREN] Mailbox has children, delete them first.");
        return;
    case -EINVAL:
        imap_exec_no(x, "[CANNOT] Can't rename a mailbox under itself.");
        return;
    case -ENAMETOOLONG:
    case -EDQUOT:
    case -E2BIG:
        imap_exec_no(x, "[LIMIT] Mailbox name too long or too many mailboxes.");
        return;
    default:
        log_warning("imap: %s %s: %s", imap_command_name(command), name, strerror(-rc));
        imap_exec_no(x, "[SERVERBUG] Internal error.");
        return;
    }
}

void
imap_cmd_subscribe(struct imap_exec *x)
{
    const struct imap_parsed *p = x->command;
    if (p->nodes[0].child_count != 1) {
        imap_exec_bad(x, "A mailbox name is expected.");
        return;
    }
    char name[MAILDIR_FOLDERS_NAME_BYTES_MAX + 1];
    if (imap_exec_mailbox_arg(x, imap_node_first_child(p, 0), name, sizeof(name)) != 0) {
        return;
    }
    bool is_subscribe = p->command == IMAP_CMD_SUBSCRIBE;
    int rc = maildir_folders_subscribe(x->root, name, is_subscribe);
    if (rc == -EAGAIN) {
        imap_exec_no(x, "[INUSE] Subscriptions are being changed, try again.");
        return;
    }
    if (rc == -E2BIG) {
        imap_exec_no(x, "[LIMIT] Too many subscriptions.");
        return;
    }
    if (rc != 0) {
        log_warning("imap: subscribe %s: %s", name, strerror(-rc));
        imap_exec_no(x, "[SERVERBUG] Internal error.");
        return;
    }
    imap_exec_ok(x, is_subscribe ? "Subscribe completed." : "Unsubscribe completed.");
}

/* ---- LIST details ------------------------------------------------------------ */

/* LIST [(selection)] reference pattern(s) [RETURN (options)]; LSUB
 * reference pattern. */
static int
list_parse(struct imap_exec *x, struct list_request *req)
{
    const struct imap_parsed *p = x->command;
    uint32_t i = imap_node_first_child(p, 0);
    if (i != IMAP_NODE_NONE && p->nodes[i].kind == IMAP_NODE_LIST && !req->is_lsub) {
        for (uint32_t o = imap_node_first_child(p, i); o != IMAP_NODE_NONE;
             o = imap_node_next(p, o)) {
            const struct imap_node *n = &p->nodes[o];
            if (n->kind != IMAP_NODE_ATOM) {
                imap_exec_bad(x, "Invalid LIST selection option.");
                return -EINVAL;
            }
            if (span_equals_nocase(n->text, "SUBSCRIBED")) {
                req->select_subscribed = true;
                req->return_subscribed = true;
            } else if (span_equals_nocase(n->text, "RECURSIVEMATCH")) {
                req->is_recursive_match = true;
            } else if (span_equals_nocase(n->text, "SPECIAL-USE")) {
                req->select_special_use = true;
                req->return_special_use = true;
            } else if (!span_equals_nocase(n->text, "REMOTE")) {
                imap_exec_bad(x, "Unknown LIST selection option.");
                return -EINVAL;
            }
        }
        /* RFC 5258: RECURSIVEMATCH alone is an error. */
        if (req->is_recursive_match && !req->select_subscribed && !req->select_special_use) {
            imap_exec_bad(x, "RECURSIVEMATCH needs another selection option.");
            return -EINVAL;
        }
        i = imap_node_next(p, i);
    }
    if (i == IMAP_NODE_NONE || imap_node_next(p, i) == IMAP_NODE_NONE) {
        imap_exec_bad(x, "LIST needs a reference and a mailbox pattern.");
        return -EINVAL;
    }
    char reference[IMAP_LIST_PATTERN_BYTES];
    if (pattern_arg(x, &p->nodes[i], reference, sizeof(reference)) != 0) {
        return -EINVAL;
    }
    i = imap_node_next(p, i);
    uint32_t pattern_nodes[IMAP_LIST_PATTERNS_MAX];
    size_t pattern_count = 0;
    if (p->nodes[i].kind == IMAP_NODE_LIST && !req->is_lsub) {
        for (uint32_t c = imap_node_first_child(p, i); c != IMAP_NODE_NONE;
             c = imap_node_next(p, c)) {
            if (pattern_count == IMAP_LIST_PATTERNS_MAX) {
                imap_exec_bad(x, "Too many LIST patterns.");
                return -EINVAL;
            }
            pattern_nodes[pattern_count++] = c;
        }
    } else {
        pattern_nodes[pattern_count++] = i;
    }
    i = imap_node_next(p, i);
    if (i != IMAP_NODE_NONE) {
        const struct imap_node *kw = &p->nodes[i];
        uint32_t opts = imap_node_next(p, i);
        if (req->is_lsub || kw->kind != IMAP_NODE_ATOM || !span_equals_nocase(kw->text, "RETURN") ||
            opts == IMAP_NODE_NONE || p->nodes[opts].kind != IMAP_NODE_LIST ||
            imap_node_next(p, opts) != IMAP_NODE_NONE) {
            imap_exec_bad(x, "Invalid LIST arguments.");
            return -EINVAL;
        }
        for (uint32_t o = imap_node_first_child(p, opts); o != IMAP_NODE_NONE;
             o = imap_node_next(p, o)) {
            const struct imap_node *n = &p->nodes[o];
            if (n->kind != IMAP_NODE_ATOM) {
                imap_exec_bad(x, "Invalid LIST return option.");
                return -EINVAL;
            }
            if (span_equals_nocase(n->text, "SUBSCRIBED")) {
                req->return_subscribed = true;
            } else if (span_equals_nocase(n->text, "CHILDREN")) {
                req->return_children = true;
            } else if (span_equals_nocase(n->text, "SPECIAL-USE")) {
                req->return_special_use = true;
            } else if (span_equals_nocase(n->text, "STATUS")) {
                uint32_t items = imap_node_next(p, o);
                if (items == IMAP_NODE_NONE ||
                    status_items(x, items, &req->return_status) != 0) {
                    if (items == IMAP_NODE_NONE) {
                        imap_exec_bad(x, "STATUS needs a list of items.");
                    }
                    return -EINVAL;
                }
                o = items;
            } else {
                imap_exec_bad(x, "Unknown LIST return option.");
                return -EINVAL;
            }
        }
    }
    for (size_t k = 0; k < pattern_count; k++) {
        char pattern[IMAP_LIST_PATTERN_BYTES];
        if (pattern_arg(x, &p->nodes[pattern_nodes[k]], pattern, sizeof(pattern)) != 0) {
            return -EINVAL;
        }
        /* The reference is a prefix for the pattern (RFC 9051 6.3.9). */
        int n = snprintf(req->patterns[req->pattern_count], IMAP_LIST_PATTERN_BYTES, "%s%s",
                         reference, pattern);
        if (n < 0 || n >= (int)IMAP_LIST_PATTERN_BYTES) {
            imap_exec_bad(x, "Mailbox pattern too long.");
            return -EINVAL;
        }
        req->pattern_count++;
    }
    return 0;
}

/* A reference or pattern: astring or list-mailbox, stored as mUTF-7. */
static int
pattern_arg(struct imap_exec *x, const struct imap_node *n, char *out, size_t out_bytes)
{
    if (!imap_node_is_string(n) || (n->flags & (IMAP_NODE_F_NUL | IMAP_NODE_F_BINARY)) != 0) {
        imap_exec_bad(x, "Invalid mailbox pattern.");
        return -EINVAL;
    }
    char raw[IMAP_LIST_PATTERN_BYTES];
    size_t len;
    if (n->kind == IMAP_NODE_QUOTED && (n->flags & IMAP_NODE_F_ESCAPED) != 0) {
        long r = imap_parser_unquote(n->text, raw, sizeof(raw) - 1);
        if (r < 0) {
            imap_exec_bad(x, "Mailbox pattern too long.");
            return -EINVAL;
        }
        len = (size_t)r;
    } else {
        if (n->text.len >= sizeof(raw)) {
            imap_exec_bad(x, "Mailbox pattern too long.");
            return -EINVAL;
        }
        memcpy(raw, n->text.ptr, n->text.len);
        len = n->text.len;
    }
    raw[len] = '\0';
    if (n->flags & IMAP_NODE_F_8BIT) {
        size_t out_len = 0;
        if (mutf7_encode(span_make(raw, len), out, out_bytes, &out_len) != 0) {
            imap_exec_bad(x, "Invalid mailbox pattern.");
            return -EINVAL;
        }
        out[out_len] = '\0';
        return 0;
    }
    if (len >= out_bytes) {
        imap_exec_bad(x, "Mailbox pattern too long.");
        return -EINVAL;
    }
    memcpy(out, raw, len + 1);
    return 0;
}

/* '*' matches anything, '%' anything but the delimiter '.'. INBOX matches
 * case-insensitively. Iterative with one backtrack point per wildcard
 * kind, so a pattern of many '*' stays linear-ish and bounded. */
static bool
pattern_match(const char *pattern, const char *name)
{
    if (strncasecmp(name, "INBOX", 5) == 0 && (name[5] == '\0' || name[5] == '.') &&
        strncasecmp(pattern, "INBOX", 5) == 0) {
        /* Compare the rest; "inbox" in the pattern stands for INBOX. */
        pattern += 5;
        name += 5;
    }
    const char *star_p = NULL;
    const char *star_n = NULL;
    size_t steps = 0;
    while (*name != '\0') {
        /* Bounded: each backtrack advances star_n, so at most |name|^2. */
        if (++steps > 1000000) {
            return false;
        }
        if (*pattern == '*') {
            star_p = ++pattern;
            star_n = name;
            continue;
        }
        if (*pattern == '%') {
            /* '%' as a local star limited to this level: try to match the
             * rest from every position up to the next delimiter. */
            const char *rest = pattern + 1;
            for (const char *n = name;; n++) {
                if (pattern_match(rest, n)) {
                    return true;
                }
                if (*n == '\0' || *n == '.') {
                    break;
                }
            }
            return false;
        }
        if (*pattern == *name) {
            pattern++;
            name++;
            continue;
        }
        if (star_p != NULL) {
            pattern = star_p;
            name = ++star_n;
            continue;
        }
        return false;
    }
    while (*pattern == '*' || *pattern == '%') {
        pattern++;
    }
    return *pattern == '\0';
}

struct sub_candidate {
    char *name;
    bool is_subscribed;
    bool has_subscribed_child; /* RECURSIVEMATCH: a subscribed descendant */
};

static int
candidate_cmp(const void *a, const void *b)
{
    return strcmp(((const struct sub_candidate *)a)->name, ((const struct sub_candidate *)b)->name);
}

static const struct maildir_folder *
folder_find(const struct maildir_folder_list *folders, const char *name)
{
    for (size_t i = 0; i < folders->count; i++) {
        const struct maildir_folder *f = &folders->folders[i];
        if (strcmp(f->name, name) == 0 || (f->is_inbox && strcasecmp(name, "INBOX") == 0)) {
            return f;
        }
    }
    return NULL;
}

/* LSUB, and LIST (SUBSCRIBED [RECURSIVEMATCH]): subscribed names, existing
 * or not (RFC 5258 3.1), and with RECURSIVEMATCH the unsubscribed parents
 * of subscribed names, marked CHILDINFO ("SUBSCRIBED"). */
static void
subscribed_list(struct imap_exec *x, const struct list_request *req,
                const struct maildir_folder_list *folders, const struct maildir_subscriptions *subs)
{
    size_t cap = 64;
    size_t count = 0;
    struct sub_candidate *c = malloc(cap * sizeof(*c));
    size_t pos = 0;
    char name[MAILDIR_SUBSCRIPTION_NAME_BYTES_MAX + 1];
    size_t len = 0;
    bool is_failed = c == NULL;
    for (size_t guard = 0; guard <= MAILDIR_SUBSCRIPTIONS_MAX && !is_failed; guard++) {
        if (maildir_subscriptions_next(subs, &pos, '.', name, sizeof(name), &len) != 1) {
            break;
        }
        name[len] = '\0';
        /* The name itself, then each parent (a.b.c: a.b, a). */
        for (size_t end = len; !is_failed;) {
            if (count == cap) {
                struct sub_candidate *grown = realloc(c, cap * 2 * sizeof(*c));
                if (grown == NULL) {
                    is_failed = true;
                    break;
                }
                c = grown;
                cap *= 2;
            }
            c[count].name = strndup(name, end);
            c[count].is_subscribed = end == len;
            c[count].has_subscribed_child = end != len;
            if (c[count].name == NULL) {
                is_failed = true;
                break;
            }
            count++;
            if (!req->is_recursive_match) {
                break;
            }
            while (end > 0 && name[end - 1] != '.') {
                end--;
            }
            if (end <= 1) {
                break;
            }
            end--; /* drop the '.' */
        }
    }
    if (is_failed) {
        imap_exec_no(x, "[SERVERBUG] Out of memory.");
    } else {
        qsort(c, count, sizeof(*c), candidate_cmp);
    }
    for (size_t i = 0; i < count && !is_failed; i++) {
        /* Merge duplicates (a name both subscribed and a parent). */
        while (i + 1 < count && strcmp(c[i].name, c[i + 1].name) == 0) {
            c[i + 1].is_subscribed |= c[i].is_subscribed;
            c[i + 1].has_subscribed_child |= c[i].has_subscribed_child;
            i++;
        }
        bool is_match = false;
        for (size_t p = 0; p < req->pattern_count && !is_match; p++) {
            is_match = pattern_match(req->patterns[p], c[i].name);
        }
        if (!is_match) {
            continue;
        }
        const struct maildir_folder *found = folder_find(folders, c[i].name);
        struct maildir_folder ghost = {
            .name = c[i].name, .name_len = strlen(c[i].name), .is_nonexistent = true};
        if (req->is_lsub) {
            if (!c[i].is_subscribed) {
                continue;
            }
            imap_exec_cstr(x, found == NULL || !found->is_selectable ? "* LSUB (\\Noselect) \".\" "
                                                                     : "* LSUB () \".\" ");
            imap_exec_mailbox_write(x, found != NULL && found->is_inbox ? "INBOX" : c[i].name);
            imap_exec_cstr(x, "\r\n");
            continue;
        }
        if (!c[i].is_subscribed && !c[i].has_subscribed_child) {
            continue;
        }
        list_line(x, req, found != NULL ? found : &ghost, c[i].is_subscribed,
                  !c[i].is_subscribed && c[i].has_subscribed_child);
        if (c[i].is_subscribed && req->return_status != 0 && found != NULL &&
            found->is_selectable && !found->is_nonexistent) {
            status_write(x, found->name, req->return_status, true);
        }
    }
    for (size_t i = 0; i < count; i++) {
        free(c[i].name);
    }
    free(c);
}

static void
list_line(struct imap_exec *x, const struct list_request *req, const struct maildir_folder *f,
          bool is_subscribed, bool has_sub_child)
{
    imap_exec_cstr(x, "* LIST (");
    bool is_first = true;
#define ATTR(text)                                                                               \
    do {                                                                                         \
        imap_exec_cstr(x, is_first ? (text) : " " text);                                         \
        is_first = false;                                                                        \
    } while (0)
    if (f->is_nonexistent) {
        ATTR("\\NonExistent");
    } else if (!f->is_selectable) {
        ATTR("\\Noselect");
    }
    if (!f->is_nonexistent || f->has_children) {
        if (f->has_children) {
            ATTR("\\HasChildren");
        } else {
            ATTR("\\HasNoChildren");
        }
    }
    if (is_subscribed && req->return_subscribed) {
        ATTR("\\Subscribed");
    }
    if (f->special_use != NULL) {
        imap_exec_cstr(x, is_first ? "" : " ");
        imap_exec_cstr(x, f->special_use);
        is_first = false;
    }
#undef ATTR
    imap_exec_cstr(x, ") \".\" ");
    imap_exec_mailbox_write(x, f->is_inbox ? "INBOX" : f->name);
    if (has_sub_child) {
        imap_exec_cstr(x, " (\"CHILDINFO\" (\"SUBSCRIBED\"))");
    }
    imap_exec_cstr(x, "\r\n");
}

/* ---- STATUS details ---------------------------------------------------------- */

static int
status_items(struct imap_exec *x, uint32_t list_node, unsigned *items_out)
{
    const struct imap_parsed *p = x->command;
    if (p->nodes[list_node].kind != IMAP_NODE_LIST || p->nodes[list_node].child_count == 0) {
        imap_exec_bad(x, "STATUS needs a list of items.");
        return -EINVAL;
    }
    unsigned items = 0;
    for (uint32_t i = imap_node_first_child(p, list_node); i != IMAP_NODE_NONE;
         i = imap_node_next(p, i)) {
        const struct imap_node *n = &p->nodes[i];
        unsigned bit = 0;
        for (size_t k = 0; k < sizeof(status_names) / sizeof(status_names[0]) &&
                           n->kind == IMAP_NODE_ATOM;
             k++) {
            if (span_equals_nocase(n->text, status_names[k].name)) {
                bit = status_names[k].bit;
            }
        }
        if (bit == 0) {
            imap_exec_bad(x, "Unknown STATUS item.");
            return -EINVAL;
        }
        items |= bit;
    }
    *items_out |= items;
    return 0;
}

/* "* STATUS name (...)". is_quiet (LIST-STATUS): a folder that cannot be
 * opened is skipped; otherwise "tag NO" is written. */
static void
status_write(struct imap_exec *x, const char *name, unsigned items, bool is_quiet)
{
    char path[PATH_MAX];
    struct mailbox_index *index = NULL;
    int rc = imap_exec_folder_path(x, name, path, sizeof(path));
    if (rc == 0) {
        rc = mailbox_index_open(path, x->root, &index);
    }
    if (rc == 0) {
        rc = mailbox_index_refresh(index, false, false);
        if (rc == -EAGAIN) {
            rc = 0;
        }
    }
    if (rc != 0) {
        mailbox_index_release(&index);
        if (is_quiet) {
            return;
        }
        if (rc == -ENOENT) {
            imap_exec_no(x, "[NONEXISTENT] Mailbox doesn't exist.");
        } else {
            log_warning("imap: status %s: %s", path, strerror(-rc));
            imap_exec_no(x, "[SERVERBUG] Internal error.");
        }
        return;
    }
    struct mailbox_status st;
    mailbox_index_status(index, &st);
    mailbox_index_release(&index);
    imap_exec_cstr(x, "* STATUS ");
    imap_exec_mailbox_write(x, name);
    imap_exec_cstr(x, " (");
    /* In status_names order. */
    const uint64_t values[] = {
        st.exists, st.recent,  st.uidnext, st.uidvalidity,
        st.unseen, st.deleted, st.size,    st.highest_modseq,
    };
    static_assert(sizeof(values) / sizeof(values[0]) ==
                      sizeof(status_names) / sizeof(status_names[0]),
                  "a value per STATUS item");
    const char *sep = "";
    for (size_t k = 0; k < sizeof(values) / sizeof(values[0]); k++) {
        if (items & status_names[k].bit) {
            imap_exec_printf(x, "%s%s %llu", sep, status_names[k].name,
                             (unsigned long long)values[k]);
            sep = " ";
        }
    }
    imap_exec_cstr(x, ")\r\n");
}
