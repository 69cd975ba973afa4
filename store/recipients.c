/*
 * store/recipients.c - the users and aliases tables, and what one envelope
 * recipient resolves to.
 *
 * Owns the in-memory copy of users_file (Dovecot passwd-file) and
 * aliases_file, plus the set of local domains. recipients_load() builds it
 * with malloc, and afterwards nothing changes, so every reactor thread reads
 * it without locks. Does not deliver, verify passwords or touch sockets.
 * Loading reads files with blocking stdio (start-up and SIGHUP only);
 * resolution is pure memory work with no allocation and a bounded stack,
 * safe on a reactor.
 * Limits: TABLE_LINE_BYTES_MAX per file line, SMTP_ADDRESS_BYTES_MAX per
 * address or table key, ALIAS_DEPTH_MAX nesting and ALIAS_EXPANSION_MAX
 * results per recipient (core/limits.h); RECIPIENTS_ENTRIES_MAX entries per
 * table and RECIPIENTS_STEPS_MAX alias targets examined per recipient (here).
 */
#include "store/recipients.h"

#include <ck_pr.h>

#include <errno.h>
#include <stdalign.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ascii.h"
#include "core/assertions.h"
#include "core/config.h"
#include "core/limits.h"

/* A table key is "local@domain" or "@domain" with the local part unquoted;
 * it is never longer than the address it came from. */
#define KEY_BYTES_MAX SMTP_ADDRESS_BYTES_MAX

/* RFC 1035 bounds a domain name at 255 bytes; a directory name (NAME_MAX on
 * Linux) at 255 as well. */
#define DOMAIN_BYTES_MAX 255
#define PATH_PART_BYTES_MAX 255

/* Entries per table (users, aliases, domains, interned strings). Far above
 * any real site, but it bounds what a runaway file can make us allocate. */
#define RECIPIENTS_ENTRIES_MAX (1u << 22)

/* Alias targets examined while resolving one recipient. Overlapping group
 * aliases visit some members twice, so allow several times the result
 * limit; beyond it the work on a reactor is no longer small. */
#define RECIPIENTS_STEPS_MAX (4 * ALIAS_EXPANSION_MAX)

/* Characters of recipient_delimiter. Postfix allows a set; a handful is
 * plenty. */
#define DELIMITERS_MAX 16

/* Targets on one aliases_file line: at most one per two bytes. */
#define TARGETS_PER_LINE_MAX (TABLE_LINE_BYTES_MAX / 2 + 1)

#define ARENA_BLOCK_BYTES (64 * 1024)
#define INDEX_SLOTS_MIN 64

static_assert(KEY_BYTES_MAX <= TABLE_LINE_BYTES_MAX, "a key fits on a line");
static_assert(DOMAIN_BYTES_MAX + sizeof("postmaster@") <= KEY_BYTES_MAX + 1,
              "postmaster@<domain> is a valid key");
static_assert(RECIPIENTS_ENTRIES_MAX <= UINT32_MAX / 4, "index values and slots fit");
static_assert(TARGETS_PER_LINE_MAX <= UINT32_MAX, "target count fits");

/* Bump allocator for strings and target arrays: one malloc per 64 KiB
 * instead of one per string, and everything is freed together. */
struct arena_block {
    struct arena_block *next;
    size_t              used;
    size_t              size;
    alignas(max_align_t) unsigned char data[];
};

struct arena {
    struct arena_block *head;
};

/* Open-addressing hash index (linear probing, load factor at most 1/2) from
 * a NUL-terminated key owned by an arena to a value. Empty slot: key NULL. */
struct index_slot {
    const char *key;
    uint32_t    hash;
    uint32_t    value;
};

struct index {
    struct index_slot *slots;
    size_t             mask; /* slot count - 1; slot count is a power of two */
    size_t             count;
};

struct user {
    const char *name;          /* "local@domain", lower case */
    const char *password_hash; /* second passwd-file field, "" if absent */
};

struct alias {
    const char        *key;     /* "local@domain" or "@domain", lower case */
    const char *const *targets; /* interned, normalized (see intern_target) */
    uint32_t           target_count;
    uint32_t           line_number; /* for the duplicate-key message */
};

struct domain {
    const char *name;       /* lower case, no trailing dot */
    const char *postmaster; /* canonical mailbox "postmaster@<name>" */
};

struct recipients {
    struct arena  arena;        /* keys, names, targets */
    struct arena  secret_arena; /* password hashes, wiped on destroy */

    struct user  *users;
    size_t        user_count;
    size_t        user_capacity;
    struct index  user_index;

    struct alias *aliases;
    size_t        alias_count;
    size_t        alias_capacity;
    struct index  alias_index;

    struct domain *domains;
    size_t         domain_count;
    size_t         domain_capacity;
    struct index   domain_index;

    /* One stored copy of every string that is not a user name but may be
     * handed out as a mailbox or remote target, so results can be
     * deduplicated by pointer. */
    struct index  intern_index;

    char          delimiters[DELIMITERS_MAX + 1];
    const char   *myhostname;            /* lower case, no trailing dot */
    const char   *myhostname_postmaster; /* canonical "postmaster@<myhostname>" */
    const char   *unknown_mailbox;       /* canonical, or NULL */
    const char   *postmaster_address;    /* interned normalized address, or NULL */
};

/* Where a load error is reported: "path:line: reason", or "option: reason"
 * when line_number is 0. */
struct load {
    struct recipients *table;
    const char        *path;
    size_t             line_number;
    char              *err;
    size_t             err_bytes;
    const char       **targets_scratch; /* TARGETS_PER_LINE_MAX entries */
};

struct line_reader {
    FILE  *file;
    size_t len;
    char   buf[TABLE_LINE_BYTES_MAX + 2]; /* line, a CR we strip, and NUL */
};

/* One address taken apart. key holds the lookup form: unquoted local part
 * and domain, both ASCII-lowercased, the domain without its trailing dot. */
struct parsed_address {
    char        key[KEY_BYTES_MAX + 1];
    size_t      key_len;
    size_t      local_len;   /* key[local_len] is '@' (bare postmaster: == key_len) */
    struct span raw_local;   /* local part as written, quotes kept */
    bool        is_bare_postmaster;
    bool        has_route;   /* "@a,@b:" prefix */
    bool        has_routing; /* '%', '!' or '@' in the (unquoted) local part */
    bool        is_literal;  /* domain is "[...]" */
};

/* State of one recipients_resolve() call; lives on the caller's stack. */
struct resolve {
    const struct recipients  *table;
    struct recipients_result *result;
    enum recipients_status    fatal; /* RECIPIENTS_OK, or ALIAS_LOOP / TOO_MANY */
    size_t                    steps;
    size_t                    reached; /* mailboxes/remotes found, duplicates included */
    bool                      saw_cycle;
    bool                      in_postmaster_address;
    size_t                    depth;
    uint32_t                  path[ALIAS_DEPTH_MAX]; /* aliases being expanded */
    size_t                    visited_count;
    uint32_t                  visited[ALIAS_EXPANSION_MAX]; /* aliases expanded so far */
};

static void arena_free(struct arena *arena, bool is_secret);
static const char *arena_copy(struct arena *arena, const char *ptr, size_t len);
static void *arena_alloc(struct arena *arena, size_t bytes, size_t align);

static uint32_t key_hash(const char *key, size_t len);
static const struct index_slot *index_find(const struct index *index, const char *key,
                                           size_t len);
static int index_insert(struct index *index, const char *key, size_t len, uint32_t value);
static void index_free(struct index *index);

static int load_options(struct load *ld, const struct recipients_options *options);
static int load_users(struct load *ld, const char *path);
static int load_aliases(struct load *ld, const char *path);
static int load_local_domains(struct load *ld, const char *list);
static int domain_add(struct load *ld, const char *name, size_t len);
static int load_postmasters(struct load *ld);
static int load_fail(struct load *ld, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void resolve_address(struct resolve *rs, struct span address,
                            enum recipients_status *form_out);
static void resolve_local(struct resolve *rs, const struct parsed_address *address);
static void resolve_postmaster(struct resolve *rs, const char *domain, size_t domain_len,
                               const char *mailbox);
static void resolve_expand(struct resolve *rs, uint32_t alias_index);
static void resolve_add_mailbox(struct resolve *rs, const char *mailbox);
static void resolve_add_remote(struct resolve *rs, const char *remote);

static bool parse_address(struct span address, struct parsed_address *out);
static bool domain_name_is_valid(const char *domain, size_t len);
static bool local_part_is_valid(const char *local, size_t len);
static bool path_part_is_safe(const char *part, size_t len);
static size_t lower_copy(char *out, const char *in, size_t len);

static inline const char *
option_string(const char *value)
{
    return value != NULL ? value : "";
}

/* ---------------------------------------------------------------------- */
/* Public functions                                                       */
/* ---------------------------------------------------------------------- */

int
recipients_load(const struct recipients_options *options, struct recipients **table_out,
                char *err, size_t err_bytes)
{
    ASSERT(options != NULL);
    ASSERT(table_out != NULL);
    ASSERT(err != NULL);
    ASSERT(err_bytes > 0);

    *table_out = NULL;
    err[0] = '\0';

    struct recipients *table = calloc(1, sizeof *table);
    if (table == NULL) {
        (void)snprintf(err, err_bytes, "recipients: out of memory");
        return -ENOMEM;
    }
    struct load ld = {
        .table = table,
        .err = err,
        .err_bytes = err_bytes,
    };
    ld.targets_scratch = calloc(TARGETS_PER_LINE_MAX, sizeof *ld.targets_scratch);
    int rc = ld.targets_scratch == NULL ? -ENOMEM : 0;
    if (rc == 0) {
        rc = load_options(&ld, options);
    }
    if (rc == 0) {
        rc = load_users(&ld, option_string(options->users_path));
    }
    if (rc == 0) {
        rc = load_aliases(&ld, option_string(options->aliases_path));
    }
    if (rc == 0) {
        rc = load_local_domains(&ld, option_string(options->local_domains));
    }
    if (rc == 0) {
        /* As Postfix's default mydestination: the host's own name and
         * localhost are always local, so postmaster@<myhostname> is ours. */
        rc = domain_add(&ld, table->myhostname, strlen(table->myhostname));
    }
    if (rc == 0) {
        rc = domain_add(&ld, "localhost", strlen("localhost"));
    }
    if (rc == 0) {
        rc = load_postmasters(&ld);
    }
    free(ld.targets_scratch);
    if (rc != 0) {
        if (err[0] == '\0') {
            (void)snprintf(err, err_bytes, "recipients: %s", strerror(-rc));
        }
        recipients_destroy(&table);
        return rc;
    }
    *table_out = table;
    return 0;
}

void
recipients_destroy(struct recipients **table)
{
    ASSERT(table != NULL);
    struct recipients *t = *table;
    if (t == NULL) {
        return;
    }
    index_free(&t->user_index);
    index_free(&t->alias_index);
    index_free(&t->domain_index);
    index_free(&t->intern_index);
    free(t->users);
    free(t->aliases);
    free(t->domains);
    arena_free(&t->arena, false);
    arena_free(&t->secret_arena, true);
    free(t);
    *table = NULL;
}

size_t
recipients_user_count(const struct recipients *table)
{
    ASSERT(table != NULL);
    return table->user_count;
}

size_t
recipients_alias_count(const struct recipients *table)
{
    ASSERT(table != NULL);
    return table->alias_count;
}

size_t
recipients_domain_count(const struct recipients *table)
{
    ASSERT(table != NULL);
    return table->domain_count;
}

bool
recipients_domain_is_local(const struct recipients *table, struct span domain)
{
    ASSERT(table != NULL);
    if (domain.len > 0 && domain.ptr[domain.len - 1] == '.') {
        domain.len--;
    }
    if (domain.len == 0 || domain.len > DOMAIN_BYTES_MAX) {
        return false;
    }
    char name[DOMAIN_BYTES_MAX + 1];
    for (size_t i = 0; i < domain.len; i++) {
        unsigned char c = (unsigned char)domain.ptr[i];
        /* A NUL would make the lookup compare a shorter key. */
        if (c == '\0') {
            return false;
        }
        name[i] = (char)ascii_lower(c);
    }
    name[domain.len] = '\0';
    return index_find(&table->domain_index, name, domain.len) != NULL;
}

enum recipients_status
recipients_resolve(const struct recipients *table, struct span address,
                   struct recipients_result *result)
{
    ASSERT(table != NULL);
    ASSERT(result != NULL);
    if (result->mailbox_capacity > 0) {
        ASSERT(result->mailboxes != NULL);
    }
    if (result->remote_capacity > 0) {
        ASSERT(result->remotes != NULL);
    }
    if (address.len > 0) {
        ASSERT(address.ptr != NULL);
    }

    result->mailbox_count = 0;
    result->remote_count = 0;

    /* About 4.2 KiB, mostly the visited set. Recursion below adds about
     * 1.3 KiB per alias level (two key buffers), and there are at most
     * ALIAS_DEPTH_MAX + 2 levels (postmaster_address adds one): under
     * 32 KiB of stack in all. */
    struct resolve rs = {
        .table = table,
        .result = result,
        .fatal = RECIPIENTS_OK,
    };
    enum recipients_status form = RECIPIENTS_OK;
    resolve_address(&rs, address, &form);

    enum recipients_status status;
    if (form != RECIPIENTS_OK) {
        /* SYNTAX, RELAY_FORM or NOT_LOCAL: nothing was looked up. */
        status = form;
    } else if (rs.fatal != RECIPIENTS_OK) {
        status = rs.fatal;
    } else if (result->mailbox_count + result->remote_count > 0) {
        status = RECIPIENTS_OK;
    } else if (rs.saw_cycle) {
        status = RECIPIENTS_ALIAS_LOOP;
    } else {
        status = RECIPIENTS_UNKNOWN_USER;
    }
    result->status = status;
    return status;
}

int
recipients_maildir_path(const char *data_dir, const char *mailbox, char *path_out,
                        size_t path_bytes)
{
    ASSERT(data_dir != NULL);
    ASSERT(mailbox != NULL);
    ASSERT(path_out != NULL);
    ASSERT(path_bytes > 0);

    path_out[0] = '\0';
    if (data_dir[0] == '\0') {
        return -EINVAL;
    }
    size_t mailbox_len = strnlen(mailbox, KEY_BYTES_MAX + 1);
    if (mailbox_len > KEY_BYTES_MAX) {
        return -ENAMETOOLONG;
    }
    const char *at = memchr(mailbox, '@', mailbox_len);
    if (at == NULL) {
        return -EINVAL;
    }
    size_t local_len = (size_t)(at - mailbox);
    const char *domain = at + 1;
    size_t domain_len = mailbox_len - local_len - 1;
    /* A second '@' means this is not a canonical name from our table. */
    if (memchr(domain, '@', domain_len) != NULL) {
        return -EINVAL;
    }
    if (!path_part_is_safe(mailbox, local_len) || !path_part_is_safe(domain, domain_len)) {
        return -EINVAL;
    }
    if (local_len > PATH_PART_BYTES_MAX || domain_len > PATH_PART_BYTES_MAX) {
        return -ENAMETOOLONG;
    }
    int n = snprintf(path_out, path_bytes, "%s/mail/%.*s/%.*s/Maildir", data_dir,
                     (int)domain_len, domain, (int)local_len, mailbox);
    if (n < 0) {
        path_out[0] = '\0';
        return -EINVAL;
    }
    if ((size_t)n >= path_bytes) {
        /* Never leave a truncated path that names some other directory. */
        path_out[0] = '\0';
        return -ENAMETOOLONG;
    }
    return 0;
}

const char *
recipients_password_hash(const struct recipients *table, struct span mailbox)
{
    ASSERT(table != NULL);
    if (mailbox.len == 0 || mailbox.len > KEY_BYTES_MAX) {
        return NULL;
    }
    char key[KEY_BYTES_MAX + 1];
    for (size_t i = 0; i < mailbox.len; i++) {
        if (mailbox.ptr[i] == '\0') {
            return NULL;
        }
    }
    size_t len = lower_copy(key, mailbox.ptr, mailbox.len);
    const struct index_slot *slot = index_find(&table->user_index, key, len);
    if (slot == NULL) {
        return NULL;
    }
    return table->users[slot->value].password_hash;
}

/* ---------------------------------------------------------------------- */
/* Loading                                                                */
/* ---------------------------------------------------------------------- */

static int
load_fail(struct load *ld, int rc, const char *fmt, ...)
{
    size_t used = 0;
    int n;
    if (ld->line_number > 0) {
        n = snprintf(ld->err, ld->err_bytes, "%s:%zu: ", ld->path, ld->line_number);
    } else {
        n = snprintf(ld->err, ld->err_bytes, "%s: ", ld->path);
    }
    if (n > 0) {
        used = (size_t)n < ld->err_bytes ? (size_t)n : ld->err_bytes - 1;
    }
    va_list ap;
    va_start(ap, fmt);
    (void)vsnprintf(ld->err + used, ld->err_bytes - used, fmt, ap);
    va_end(ap);
    return rc;
}

/* Grows a malloc'ed array so one more element fits. */
static int
array_reserve(void **array, size_t *capacity, size_t count, size_t element_bytes)
{
    if (count < *capacity) {
        return 0;
    }
    size_t next = *capacity == 0 ? 64 : *capacity * 2;
    if (next > RECIPIENTS_ENTRIES_MAX) {
        next = RECIPIENTS_ENTRIES_MAX;
    }
    if (next <= count) {
        return -E2BIG;
    }
    void *grown = realloc(*array, next * element_bytes);
    if (grown == NULL) {
        return -ENOMEM;
    }
    *array = grown;
    *capacity = next;
    return 0;
}

/* Returns a stable pointer to one stored copy of the string. */
static int
intern(struct recipients *t, const char *str, size_t len, const char **out)
{
    const struct index_slot *slot = index_find(&t->intern_index, str, len);
    if (slot != NULL) {
        *out = slot->key;
        return 0;
    }
    if (t->intern_index.count >= RECIPIENTS_ENTRIES_MAX) {
        return -E2BIG;
    }
    const char *copy = arena_copy(&t->arena, str, len);
    if (copy == NULL) {
        return -ENOMEM;
    }
    int rc = index_insert(&t->intern_index, copy, len, 0);
    if (rc != 0) {
        return rc;
    }
    *out = copy;
    return 0;
}

/* The pointer every result uses for this mailbox name: the user's own name
 * when it is a user, else one interned copy. Equal names, equal pointers. */
static int
canonical_mailbox(struct recipients *t, const char *name, size_t len, const char **out)
{
    const struct index_slot *slot = index_find(&t->user_index, name, len);
    if (slot != NULL) {
        *out = t->users[slot->value].name;
        return 0;
    }
    return intern(t, name, len, out);
}

static int
domain_add(struct load *ld, const char *name, size_t len)
{
    struct recipients *t = ld->table;
    if (index_find(&t->domain_index, name, len) != NULL) {
        return 0;
    }
    int rc = array_reserve((void **)&t->domains, &t->domain_capacity, t->domain_count,
                           sizeof *t->domains);
    if (rc == -E2BIG) {
        return load_fail(ld, rc, "more than %u domains", RECIPIENTS_ENTRIES_MAX);
    }
    if (rc != 0) {
        return rc;
    }
    const char *copy = arena_copy(&t->arena, name, len);
    if (copy == NULL) {
        return -ENOMEM;
    }
    rc = index_insert(&t->domain_index, copy, len, (uint32_t)t->domain_count);
    if (rc != 0) {
        return rc;
    }
    t->domains[t->domain_count++] = (struct domain){ .name = copy, .postmaster = NULL };
    return 0;
}

/* Lower-cases a configured domain into out (DOMAIN_BYTES_MAX + 1 bytes),
 * dropping one trailing dot. Returns its length, or 0 when it is not a
 * valid domain name. */
static size_t
domain_normalize(const char *in, size_t len, char *out)
{
    if (len > 0 && in[len - 1] == '.') {
        len--;
    }
    if (len == 0 || len > DOMAIN_BYTES_MAX) {
        return 0;
    }
    size_t n = lower_copy(out, in, len);
    return domain_name_is_valid(out, n) ? n : 0;
}

static int
load_options(struct load *ld, const struct recipients_options *options)
{
    struct recipients *t = ld->table;

    ld->path = "recipient_delimiter";
    const char *delimiters = option_string(options->recipient_delimiter);
    size_t delimiter_count = strnlen(delimiters, DELIMITERS_MAX + 1);
    if (delimiter_count > DELIMITERS_MAX) {
        return load_fail(ld, -EINVAL, "more than %d characters", DELIMITERS_MAX);
    }
    for (size_t i = 0; i < delimiter_count; i++) {
        unsigned char c = (unsigned char)delimiters[i];
        /* These would split addresses, not subaddresses. */
        if (c <= ' ' || c == 0x7f || c == '@' || c == '"' || c == '.') {
            return load_fail(ld, -EINVAL, "character 0x%02x cannot be a delimiter", c);
        }
        t->delimiters[i] = (char)ascii_lower(c);
    }
    t->delimiters[delimiter_count] = '\0';

    ld->path = "myhostname";
    const char *myhostname = option_string(options->myhostname);
    char name[DOMAIN_BYTES_MAX + 1];
    size_t name_len = domain_normalize(myhostname, strnlen(myhostname, DOMAIN_BYTES_MAX + 2),
                                       name);
    if (name_len == 0) {
        /* Bare "postmaster" must always reach someone (RFC 5321 4.5.1). */
        return load_fail(ld, -EINVAL, "'%.64s' is not a domain name", myhostname);
    }
    t->myhostname = arena_copy(&t->arena, name, name_len);
    if (t->myhostname == NULL) {
        return -ENOMEM;
    }

    struct parsed_address a;
    ld->path = "unknown_recipient_mailbox";
    const char *unknown = option_string(options->unknown_recipient_mailbox);
    size_t unknown_len = strnlen(unknown, KEY_BYTES_MAX + 1);
    if (unknown_len > 0) {
        bool is_valid = parse_address(span_make(unknown, unknown_len), &a) &&
                        !a.is_bare_postmaster && !a.has_route && !a.has_routing &&
                        !a.is_literal &&
                        domain_name_is_valid(a.key + a.local_len + 1,
                                             a.key_len - a.local_len - 1) &&
                        path_part_is_safe(a.key, a.local_len) &&
                        a.local_len <= PATH_PART_BYTES_MAX;
        if (!is_valid) {
            return load_fail(ld, -EINVAL, "'%.64s' is not a usable local@domain mailbox",
                             unknown);
        }
        /* Resolved to its canonical pointer in load_postmasters(), once
         * the users are known. */
        t->unknown_mailbox = arena_copy(&t->arena, a.key, a.key_len);
        if (t->unknown_mailbox == NULL) {
            return -ENOMEM;
        }
    }

    ld->path = "postmaster_address";
    const char *postmaster = option_string(options->postmaster_address);
    size_t postmaster_len = strnlen(postmaster, KEY_BYTES_MAX + 1);
    if (postmaster_len > 0) {
        bool is_valid = parse_address(span_make(postmaster, postmaster_len), &a) &&
                        !a.is_bare_postmaster && !a.has_route;
        if (!is_valid) {
            return load_fail(ld, -EINVAL, "'%.64s' is not a local@domain address",
                             postmaster);
        }
        /* Stored like an alias target, so a foreign one is a remote. */
        char normalized[KEY_BYTES_MAX + 1];
        memcpy(normalized, a.raw_local.ptr, a.raw_local.len);
        size_t n = a.raw_local.len;
        memcpy(normalized + n, a.key + a.local_len, a.key_len - a.local_len);
        n += a.key_len - a.local_len;
        int rc = intern(t, normalized, n, &t->postmaster_address);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

static int
reader_open(struct load *ld, struct line_reader *rd, const char *path)
{
    ld->path = path;
    ld->line_number = 0;
    rd->file = NULL;
    if (path[0] == '\0') {
        return 0;
    }
    rd->file = fopen(path, "re");
    if (rd->file == NULL) {
        int rc = errno > 0 ? -errno : -EIO;
        if (rc == -ENOENT) {
            /* A site without aliases (or users) simply has none. */
            return 0;
        }
        return load_fail(ld, rc, "cannot open: %s", strerror(-rc));
    }
    return 0;
}

/* Reads the next line into rd->buf without its LF or CRLF. Returns 1 with a
 * line, 0 at end of file (or when there is no file), or -errno. */
static int
reader_next(struct load *ld, struct line_reader *rd)
{
    if (rd->file == NULL) {
        return 0;
    }
    ld->line_number++;
    rd->len = 0;
    errno = 0;
    size_t len = 0;
    bool is_any = false;
    int c = EOF;
    /* Bounded: each iteration stores a byte or ends the line, and the
     * buffer check stops storing. */
    for (;;) {
        c = getc_unlocked(rd->file);
        if (c == EOF || c == '\n') {
            is_any = is_any || c == '\n';
            break;
        }
        is_any = true;
        if (c == '\0') {
            return load_fail(ld, -EINVAL, "NUL byte in line");
        }
        if (len == TABLE_LINE_BYTES_MAX + 1) {
            return load_fail(ld, -EINVAL, "line longer than %d bytes", TABLE_LINE_BYTES_MAX);
        }
        rd->buf[len++] = (char)c;
    }
    if (c == EOF && ferror(rd->file)) {
        int rc = errno > 0 ? -errno : -EIO;
        return load_fail(ld, rc, "read: %s", strerror(-rc));
    }
    if (!is_any) {
        return 0;
    }
    if (len > 0 && rd->buf[len - 1] == '\r') {
        len--;
    }
    if (len > TABLE_LINE_BYTES_MAX) {
        return load_fail(ld, -EINVAL, "line longer than %d bytes", TABLE_LINE_BYTES_MAX);
    }
    rd->buf[len] = '\0';
    rd->len = len;
    return 1;
}

static void
reader_close(struct line_reader *rd)
{
    if (rd->file != NULL) {
        /* Read-only: a close error loses nothing. */
        (void)fclose(rd->file);
        rd->file = NULL;
    }
}

/* Trims blanks at both ends. Returns false for blank and comment lines. */
static bool
line_content(const char *buf, size_t len, size_t *start_out, size_t *end_out)
{
    size_t start = 0;
    while (start < len && ascii_is_blank(buf[start])) {
        start++;
    }
    size_t end = len;
    while (end > start && ascii_is_blank(buf[end - 1])) {
        end--;
    }
    *start_out = start;
    *end_out = end;
    return start < end && buf[start] != '#';
}

/* Splits "local@domain" (table syntax, no quoting) at its only '@' and
 * lower-cases it into key (KEY_BYTES_MAX + 1 bytes) with one trailing dot
 * of the domain dropped. Returns the key length, or 0 when it is not
 * local@domain; *local_len_out is 0 for "@domain". */
static size_t
table_key_normalize(const char *in, size_t len, char *key, size_t *local_len_out)
{
    const char *at = memchr(in, '@', len);
    if (at == NULL || len > KEY_BYTES_MAX) {
        return 0;
    }
    size_t local_len = (size_t)(at - in);
    const char *domain = at + 1;
    size_t domain_len = len - local_len - 1;
    if (domain_len > 0 && domain[domain_len - 1] == '.') {
        domain_len--;
    }
    if (domain_len == 0 || memchr(domain, '@', domain_len) != NULL) {
        return 0;
    }
    if (local_len > 0 && !local_part_is_valid(in, local_len)) {
        return 0;
    }
    size_t n = lower_copy(key, in, local_len);
    key[n++] = '@';
    n += lower_copy(key + n, domain, domain_len);
    *local_len_out = local_len;
    return n;
}

static int
user_add(struct load *ld, const char *name, size_t name_len, const char *hash, size_t hash_len)
{
    struct recipients *t = ld->table;
    char key[KEY_BYTES_MAX + 1];
    size_t local_len = 0;
    if (name_len > KEY_BYTES_MAX) {
        return load_fail(ld, -EINVAL, "user name longer than %d bytes", KEY_BYTES_MAX);
    }
    size_t key_len = table_key_normalize(name, name_len, key, &local_len);
    if (key_len == 0 || local_len == 0) {
        return load_fail(ld, -EINVAL, "user name must be local@domain");
    }
    const char *domain = key + local_len + 1;
    size_t domain_len = key_len - local_len - 1;
    if (!domain_name_is_valid(domain, domain_len)) {
        return load_fail(ld, -EINVAL, "user name has an invalid domain");
    }
    /* Every user gets a Maildir; refuse names that could not have one now
     * rather than failing each delivery later. */
    if (!path_part_is_safe(key, local_len) || local_len > PATH_PART_BYTES_MAX) {
        return load_fail(ld, -EINVAL, "user name is not usable as a directory name");
    }
    if (index_find(&t->user_index, key, key_len) != NULL) {
        /* Dovecot uses the first entry for a user; so do we. */
        return 0;
    }
    int rc = array_reserve((void **)&t->users, &t->user_capacity, t->user_count,
                           sizeof *t->users);
    if (rc == -E2BIG) {
        return load_fail(ld, rc, "more than %u users", RECIPIENTS_ENTRIES_MAX);
    }
    if (rc != 0) {
        return rc;
    }
    rc = domain_add(ld, domain, domain_len);
    if (rc != 0) {
        return rc;
    }
    const char *name_copy = arena_copy(&t->arena, key, key_len);
    const char *hash_copy = arena_copy(&t->secret_arena, hash, hash_len);
    if (name_copy == NULL || hash_copy == NULL) {
        return -ENOMEM;
    }
    rc = index_insert(&t->user_index, name_copy, key_len, (uint32_t)t->user_count);
    if (rc != 0) {
        return rc;
    }
    t->users[t->user_count++] = (struct user){ .name = name_copy, .password_hash = hash_copy };
    return 0;
}

/* Reads a table file a line at a time and hands each line with content
 * (comments and blank lines skipped) to add_line. Stops at the first error. */
static int
load_table_file(struct load *ld, const char *path,
                int (*add_line)(struct load *ld, const char *line, size_t len))
{
    struct line_reader *rd = malloc(sizeof *rd);
    if (rd == NULL) {
        return -ENOMEM;
    }
    int rc = reader_open(ld, rd, path);
    while (rc == 0) {
        rc = reader_next(ld, rd);
        if (rc <= 0) {
            break;
        }
        rc = 0;
        size_t start;
        size_t end;
        if (line_content(rd->buf, rd->len, &start, &end)) {
            rc = add_line(ld, rd->buf + start, end - start);
        }
    }
    reader_close(rd);
    free(rd);
    return rc;
}

/* user:password[:uid:gid:gecos:home:shell:extra]; only the first two fields
 * matter here. */
static int
user_line_add(struct load *ld, const char *line, size_t len)
{
    const char *colon = memchr(line, ':', len);
    size_t name_len = colon != NULL ? (size_t)(colon - line) : len;
    const char *hash = "";
    size_t hash_len = 0;
    if (colon != NULL) {
        hash = colon + 1;
        size_t rest = len - name_len - 1;
        const char *next = memchr(hash, ':', rest);
        hash_len = next != NULL ? (size_t)(next - hash) : rest;
    }
    return user_add(ld, line, name_len, hash, hash_len);
}

static int
load_users(struct load *ld, const char *path)
{
    return load_table_file(ld, path, user_line_add);
}

/* Validates one alias target and returns its stored form: the local part
 * as written (quotes kept: it may be relayed elsewhere verbatim) and the
 * domain in lower case without its trailing dot, interned so that equal
 * targets share a pointer. */
static int
intern_target(struct load *ld, const char *target, size_t len, const char **out)
{
    struct parsed_address a;
    /* Enough of the target to find it in the file. */
    int shown = len < 64 ? (int)len : 64;
    if (len > KEY_BYTES_MAX) {
        return load_fail(ld, -EINVAL, "target longer than %d bytes", KEY_BYTES_MAX);
    }
    if (!parse_address(span_make(target, len), &a) || a.is_bare_postmaster || a.has_route) {
        return load_fail(ld, -EINVAL, "target '%.*s' is not local@domain", shown, target);
    }
    const char *domain = a.key + a.local_len + 1;
    size_t domain_len = a.key_len - a.local_len - 1;
    if (!a.is_literal && !domain_name_is_valid(domain, domain_len)) {
        return load_fail(ld, -EINVAL, "target '%.*s' has an invalid domain", shown, target);
    }
    char normalized[KEY_BYTES_MAX + 1];
    memcpy(normalized, a.raw_local.ptr, a.raw_local.len);
    size_t n = a.raw_local.len;
    normalized[n++] = '@';
    memcpy(normalized + n, domain, domain_len);
    n += domain_len;
    int rc = intern(ld->table, normalized, n, out);
    if (rc == -E2BIG) {
        return load_fail(ld, rc, "more than %u distinct targets", RECIPIENTS_ENTRIES_MAX);
    }
    return rc;
}

static int
alias_add(struct load *ld, const char *line, size_t len)
{
    struct recipients *t = ld->table;

    /* The key ends at a blank or at the ':' of "key: targets". */
    size_t key_end = 0;
    while (key_end < len && !ascii_is_blank(line[key_end]) && line[key_end] != ':') {
        key_end++;
    }
    char key[KEY_BYTES_MAX + 1];
    size_t local_len = 0;
    if (key_end > KEY_BYTES_MAX) {
        return load_fail(ld, -EINVAL, "alias longer than %d bytes", KEY_BYTES_MAX);
    }
    size_t key_len = key_end > 0 ? table_key_normalize(line, key_end, key, &local_len) : 0;
    if (key_len == 0) {
        return load_fail(ld, -EINVAL, "alias must be local@domain or @domain");
    }
    const char *domain = key + local_len + 1;
    size_t domain_len = key_len - local_len - 1;
    if (!domain_name_is_valid(domain, domain_len)) {
        return load_fail(ld, -EINVAL, "alias has an invalid domain");
    }
    const struct index_slot *previous = index_find(&t->alias_index, key, key_len);
    if (previous != NULL) {
        /* Postfix keeps one of the two and warns; an operator who wrote
         * both meant something we cannot guess. */
        return load_fail(ld, -EINVAL, "duplicate alias %s (first on line %u)", key,
                         t->aliases[previous->value].line_number);
    }

    size_t i = key_end;
    while (i < len && ascii_is_blank(line[i])) {
        i++;
    }
    if (i < len && line[i] == ':') {
        i++;
    }
    uint32_t target_count = 0;
    /* Bounded: each iteration consumes at least one byte. */
    while (i < len) {
        while (i < len && (ascii_is_blank(line[i]) || line[i] == ',')) {
            i++;
        }
        if (i == len) {
            break;
        }
        size_t start = i;
        while (i < len && !ascii_is_blank(line[i]) && line[i] != ',') {
            i++;
        }
        ASSERT(target_count < TARGETS_PER_LINE_MAX);
        int rc = intern_target(ld, line + start, i - start, &ld->targets_scratch[target_count]);
        if (rc != 0) {
            return rc;
        }
        target_count++;
    }
    if (target_count == 0) {
        return load_fail(ld, -EINVAL, "alias %s has no targets", key);
    }

    int rc = array_reserve((void **)&t->aliases, &t->alias_capacity, t->alias_count,
                           sizeof *t->aliases);
    if (rc == -E2BIG) {
        return load_fail(ld, rc, "more than %u aliases", RECIPIENTS_ENTRIES_MAX);
    }
    if (rc != 0) {
        return rc;
    }
    rc = domain_add(ld, domain, domain_len);
    if (rc != 0) {
        return rc;
    }
    const char *key_copy = arena_copy(&t->arena, key, key_len);
    const char **targets =
        arena_alloc(&t->arena, target_count * sizeof *targets, alignof(const char *));
    if (key_copy == NULL || targets == NULL) {
        return -ENOMEM;
    }
    memcpy(targets, ld->targets_scratch, target_count * sizeof *targets);
    rc = index_insert(&t->alias_index, key_copy, key_len, (uint32_t)t->alias_count);
    if (rc != 0) {
        return rc;
    }
    ASSERT(ld->line_number <= UINT32_MAX);
    t->aliases[t->alias_count++] = (struct alias){
        .key = key_copy,
        .targets = targets,
        .target_count = target_count,
        .line_number = (uint32_t)ld->line_number,
    };
    return 0;
}

static int
load_aliases(struct load *ld, const char *path)
{
    return load_table_file(ld, path, alias_add);
}

static int
load_local_domains(struct load *ld, const char *list)
{
    ld->path = "local_domains";
    ld->line_number = 0;
    size_t len = strlen(list);
    size_t i = 0;
    /* Bounded: each iteration consumes at least one byte. */
    while (i < len) {
        while (i < len && (ascii_is_blank(list[i]) || list[i] == ',')) {
            i++;
        }
        if (i == len) {
            break;
        }
        size_t start = i;
        while (i < len && !ascii_is_blank(list[i]) && list[i] != ',') {
            i++;
        }
        char name[DOMAIN_BYTES_MAX + 1];
        size_t name_len = domain_normalize(list + start, i - start, name);
        if (name_len == 0) {
            return load_fail(ld, -EINVAL, "'%.*s' is not a domain name",
                             (int)(i - start < 64 ? i - start : 64), list + start);
        }
        int rc = domain_add(ld, name, name_len);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

/* Fixes the mailbox names handed out for postmaster and unknown recipients,
 * now that all users are known. */
static int
load_postmasters(struct load *ld)
{
    struct recipients *t = ld->table;
    char name[KEY_BYTES_MAX + 1];
    static const char prefix[] = "postmaster@";
    const size_t prefix_len = sizeof prefix - 1;
    memcpy(name, prefix, prefix_len);

    for (size_t i = 0; i < t->domain_count; i++) {
        size_t domain_len = strlen(t->domains[i].name);
        ASSERT(domain_len <= DOMAIN_BYTES_MAX);
        memcpy(name + prefix_len, t->domains[i].name, domain_len);
        int rc = canonical_mailbox(t, name, prefix_len + domain_len, &t->domains[i].postmaster);
        if (rc != 0) {
            return rc;
        }
    }
    size_t host_len = strlen(t->myhostname);
    ASSERT(host_len <= DOMAIN_BYTES_MAX);
    memcpy(name + prefix_len, t->myhostname, host_len);
    int rc = canonical_mailbox(t, name, prefix_len + host_len, &t->myhostname_postmaster);
    if (rc != 0) {
        return rc;
    }
    if (t->unknown_mailbox != NULL) {
        rc = canonical_mailbox(t, t->unknown_mailbox, strlen(t->unknown_mailbox),
                               &t->unknown_mailbox);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

/* ---------------------------------------------------------------------- */
/* Resolution                                                             */
/* ---------------------------------------------------------------------- */

static bool
resolve_was_visited(const struct resolve *rs, uint32_t alias_index)
{
    for (size_t i = 0; i < rs->visited_count; i++) {
        if (rs->visited[i] == alias_index) {
            return true;
        }
    }
    return false;
}

static bool
resolve_is_on_path(const struct resolve *rs, uint32_t alias_index)
{
    for (size_t i = 0; i < rs->depth; i++) {
        if (rs->path[i] == alias_index) {
            return true;
        }
    }
    return false;
}

/* Resolves one address into rs->result. *form_out is left alone when the
 * address was resolved locally (mailboxes may or may not have been added);
 * it is set to SYNTAX, RELAY_FORM or NOT_LOCAL when the address is one of
 * those and nothing was looked up. */
static void
resolve_address(struct resolve *rs, struct span address, enum recipients_status *form_out)
{
    const struct recipients *t = rs->table;
    struct parsed_address a;
    if (!parse_address(address, &a)) {
        *form_out = RECIPIENTS_SYNTAX;
        return;
    }
    if (a.is_bare_postmaster) {
        resolve_postmaster(rs, t->myhostname, strlen(t->myhostname), t->myhostname_postmaster);
        return;
    }
    const char *domain = a.key + a.local_len + 1;
    size_t domain_len = a.key_len - a.local_len - 1;
    const struct index_slot *slot =
        a.is_literal ? NULL : index_find(&t->domain_index, domain, domain_len);
    if (a.has_route || a.has_routing) {
        /* Someone asking us to forward to a host named inside the address.
         * Checked before postmaster: "@relay:postmaster@local" is still a
         * routing request. */
        *form_out = slot != NULL ? RECIPIENTS_RELAY_FORM : RECIPIENTS_NOT_LOCAL;
        return;
    }
    if (slot == NULL) {
        *form_out = RECIPIENTS_NOT_LOCAL;
        return;
    }
    if (a.local_len == strlen("postmaster") && memcmp(a.key, "postmaster", a.local_len) == 0) {
        resolve_postmaster(rs, domain, domain_len, t->domains[slot->value].postmaster);
        return;
    }
    resolve_local(rs, &a);
}

/* Steps 4 to 7 of the header for an address in a local domain. */
static void
resolve_local(struct resolve *rs, const struct parsed_address *a)
{
    const struct recipients *t = rs->table;

    /* The subaddress starts at the first delimiter character, as in
     * Postfix; a local part that starts with one has no subaddress. */
    char base[KEY_BYTES_MAX + 1];
    size_t base_len = 0;
    size_t cut = 0;
    while (cut < a->local_len) {
        char c = a->key[cut];
        /* strchr() would find the terminator for a NUL; keys have none. */
        if (c != '\0' && strchr(t->delimiters, c) != NULL) {
            break;
        }
        cut++;
    }
    if (cut > 0 && cut < a->local_len) {
        memcpy(base, a->key, cut);
        base_len = cut + (a->key_len - a->local_len);
        memcpy(base + cut, a->key + a->local_len, a->key_len - a->local_len);
        base[base_len] = '\0';
    }

    const struct index_slot *alias = index_find(&t->alias_index, a->key, a->key_len);
    if (alias == NULL && base_len > 0) {
        alias = index_find(&t->alias_index, base, base_len);
    }
    const struct index_slot *user = index_find(&t->user_index, a->key, a->key_len);
    if (user == NULL && base_len > 0) {
        user = index_find(&t->user_index, base, base_len);
    }

    if (alias != NULL) {
        if (!resolve_was_visited(rs, alias->value)) {
            resolve_expand(rs, alias->value);
            return;
        }
        /* The alias is already being (or was) expanded: as in Postfix,
         * "a: a, b" means the user a, not the alias again. If there is no
         * such user this branch reaches nobody. */
        if (resolve_is_on_path(rs, alias->value)) {
            rs->saw_cycle = true;
        }
        if (user != NULL) {
            resolve_add_mailbox(rs, t->users[user->value].name);
        }
        return;
    }
    if (user != NULL) {
        resolve_add_mailbox(rs, t->users[user->value].name);
        return;
    }
    /* "@domain" is the tail of the key. */
    const struct index_slot *catch_all =
        index_find(&t->alias_index, a->key + a->local_len, a->key_len - a->local_len);
    if (catch_all != NULL) {
        if (!resolve_was_visited(rs, catch_all->value)) {
            resolve_expand(rs, catch_all->value);
        } else if (resolve_is_on_path(rs, catch_all->value)) {
            rs->saw_cycle = true;
        }
        return;
    }
    if (t->unknown_mailbox != NULL) {
        resolve_add_mailbox(rs, t->unknown_mailbox);
    }
}

/* Step 1: postmaster is always accepted (RFC 5321 4.5.1). mailbox is the
 * canonical "postmaster@<domain>", the last resort. */
static void
resolve_postmaster(struct resolve *rs, const char *domain, size_t domain_len,
                   const char *mailbox)
{
    const struct recipients *t = rs->table;
    char key[KEY_BYTES_MAX + 1];
    static const char prefix[] = "postmaster@";
    const size_t prefix_len = sizeof prefix - 1;
    ASSERT(prefix_len + domain_len <= KEY_BYTES_MAX);
    memcpy(key, prefix, prefix_len);
    memcpy(key + prefix_len, domain, domain_len);
    size_t key_len = prefix_len + domain_len;
    key[key_len] = '\0';

    size_t reached_before = rs->reached;
    const struct index_slot *alias = index_find(&t->alias_index, key, key_len);
    if (alias != NULL) {
        if (!resolve_was_visited(rs, alias->value)) {
            resolve_expand(rs, alias->value);
        } else {
            /* "postmaster@d: postmaster@d, admin@d" keeps the mailbox. */
            resolve_add_mailbox(rs, mailbox);
        }
    }
    if (rs->fatal != RECIPIENTS_OK) {
        return;
    }
    /* Only once per recipient: postmaster_address may itself lead back
     * to postmaster. */
    if (rs->reached == reached_before && t->postmaster_address != NULL &&
        !rs->in_postmaster_address) {
        rs->in_postmaster_address = true;
        enum recipients_status form = RECIPIENTS_OK;
        resolve_address(rs, span_make(t->postmaster_address, strlen(t->postmaster_address)),
                        &form);
        if (form == RECIPIENTS_NOT_LOCAL) {
            resolve_add_remote(rs, t->postmaster_address);
        }
        rs->in_postmaster_address = false;
    }
    if (rs->fatal != RECIPIENTS_OK) {
        /* A loop or an oversized list is the operator's to fix; 451 keeps
         * the mail with the sender meanwhile. */
        return;
    }
    if (rs->reached == reached_before) {
        resolve_add_mailbox(rs, mailbox);
    }
}

static void
resolve_expand(struct resolve *rs, uint32_t alias_index)
{
    if (rs->fatal != RECIPIENTS_OK) {
        return;
    }
    if (rs->depth >= ALIAS_DEPTH_MAX) {
        rs->fatal = RECIPIENTS_ALIAS_LOOP;
        return;
    }
    if (rs->visited_count >= ALIAS_EXPANSION_MAX) {
        rs->fatal = RECIPIENTS_TOO_MANY;
        return;
    }
    const struct alias *alias = &rs->table->aliases[alias_index];
    rs->visited[rs->visited_count++] = alias_index;
    rs->path[rs->depth++] = alias_index;
    for (uint32_t i = 0; i < alias->target_count && rs->fatal == RECIPIENTS_OK; i++) {
        if (++rs->steps > RECIPIENTS_STEPS_MAX) {
            rs->fatal = RECIPIENTS_TOO_MANY;
            break;
        }
        const char *target = alias->targets[i];
        enum recipients_status form = RECIPIENTS_OK;
        resolve_address(rs, span_make(target, strlen(target)), &form);
        /* A target in a foreign domain is relayed; a relay form or bad
         * syntax is nowhere to deliver, so the target is skipped (load
         * already rejected bad syntax). */
        if (form == RECIPIENTS_NOT_LOCAL) {
            resolve_add_remote(rs, target);
        }
    }
    ASSERT(rs->depth > 0);
    rs->depth--;
}

/* Adds an item to one of the result's lists (mailboxes or remotes) unless
 * it is there already. Results are deduplicated by pointer: the table hands
 * out one pointer per distinct mailbox name and per distinct target. */
static void
resolve_add(struct resolve *rs, const char **list, size_t *count, size_t capacity,
            const char *item)
{
    struct recipients_result *r = rs->result;
    ASSERT(item != NULL);
    if (rs->fatal != RECIPIENTS_OK) {
        return;
    }
    rs->reached++;
    for (size_t i = 0; i < *count; i++) {
        if (list[i] == item) {
            return;
        }
    }
    if (*count >= capacity || r->mailbox_count + r->remote_count >= ALIAS_EXPANSION_MAX) {
        (*count)++;
        rs->fatal = RECIPIENTS_TOO_MANY;
        return;
    }
    list[(*count)++] = item;
}

static void
resolve_add_mailbox(struct resolve *rs, const char *mailbox)
{
    struct recipients_result *r = rs->result;
    resolve_add(rs, r->mailboxes, &r->mailbox_count, r->mailbox_capacity, mailbox);
}

static void
resolve_add_remote(struct resolve *rs, const char *remote)
{
    struct recipients_result *r = rs->result;
    resolve_add(rs, r->remotes, &r->remote_count, r->remote_capacity, remote);
}

/* ---------------------------------------------------------------------- */
/* Address syntax                                                         */
/* ---------------------------------------------------------------------- */

/* Takes apart "local@domain", "\"quoted local\"@domain", bare "postmaster"
 * and "@a,@b:local@domain". Returns false on a syntax error: empty, too
 * long, no '@', empty local part or domain, control bytes or spaces outside
 * quotes, unbalanced quotes. */
static bool
parse_address(struct span address, struct parsed_address *out)
{
    out->key_len = 0;
    out->local_len = 0;
    out->raw_local = span_make(NULL, 0);
    out->is_bare_postmaster = false;
    out->has_route = false;
    out->has_routing = false;
    out->is_literal = false;

    if (address.len == 0 || address.len > KEY_BYTES_MAX) {
        return false;
    }
    const char *p = address.ptr;
    size_t n = address.len;

    if (p[0] == '@') {
        const char *colon = memchr(p, ':', n);
        if (colon == NULL) {
            return false;
        }
        size_t route_len = (size_t)(colon - p);
        for (size_t i = 0; i < route_len; i++) {
            unsigned char c = (unsigned char)p[i];
            if (c <= ' ' || c == 0x7f) {
                return false;
            }
        }
        out->has_route = true;
        p = colon + 1;
        n -= route_len + 1;
        if (n == 0) {
            return false;
        }
    }

    char *key = out->key;
    size_t key_len = 0;
    size_t at; /* index in p of the '@' before the domain */
    if (p[0] == '"') {
        size_t i = 1;
        bool is_closed = false;
        while (i < n) {
            unsigned char c = (unsigned char)p[i++];
            if (c == '"') {
                is_closed = true;
                break;
            }
            if (c == '\\') {
                if (i == n) {
                    return false;
                }
                c = (unsigned char)p[i++];
            }
            /* Quoting may hide spaces, not control bytes. */
            if (c < ' ' || c == 0x7f) {
                return false;
            }
            /* The routing check applies to the unquoted text: a quoted
             * '%' is still a '%' to whoever parses it next. */
            if (c == '%' || c == '!' || c == '@') {
                out->has_routing = true;
            }
            key[key_len++] = (char)ascii_lower(c);
        }
        if (!is_closed || i == n || p[i] != '@') {
            return false;
        }
        at = i;
    } else {
        size_t i = n;
        while (i > 0 && p[i - 1] != '@') {
            i--;
        }
        if (i == 0) {
            if (!out->has_route && span_equals_nocase(span_make(p, n), "postmaster")) {
                memcpy(key, "postmaster", strlen("postmaster"));
                out->key_len = strlen("postmaster");
                out->local_len = out->key_len;
                key[out->key_len] = '\0';
                out->raw_local = span_make(p, n);
                out->is_bare_postmaster = true;
                return true;
            }
            return false;
        }
        at = i - 1;
        for (size_t j = 0; j < at; j++) {
            unsigned char c = (unsigned char)p[j];
            if (c <= ' ' || c == 0x7f || c == '"') {
                return false;
            }
            if (c == '%' || c == '!' || c == '@') {
                out->has_routing = true;
            }
            key[key_len++] = (char)ascii_lower(c);
        }
    }
    if (key_len == 0) {
        return false;
    }
    out->raw_local = span_make(p, at);
    out->local_len = key_len;
    key[key_len++] = '@';

    const char *domain = p + at + 1;
    size_t domain_len = n - at - 1;
    if (domain_len > 0 && domain[domain_len - 1] == '.') {
        domain_len--;
    }
    if (domain_len == 0) {
        return false;
    }
    for (size_t i = 0; i < domain_len; i++) {
        unsigned char c = (unsigned char)domain[i];
        if (c <= ' ' || c == 0x7f || c == '@' || c == '"') {
            return false;
        }
        key[key_len++] = (char)ascii_lower(c);
    }
    if (domain[0] == '[') {
        if (domain_len < 3 || domain[domain_len - 1] != ']') {
            return false;
        }
        out->is_literal = true;
    }
    ASSERT(key_len <= KEY_BYTES_MAX);
    key[key_len] = '\0';
    out->key_len = key_len;
    return true;
}

/* A domain name as we store it: lower case letters, digits, '-', '_' and
 * UTF-8 bytes, in dot-separated non-empty labels. */
static bool
domain_name_is_valid(const char *domain, size_t len)
{
    if (len == 0 || len > DOMAIN_BYTES_MAX) {
        return false;
    }
    if (domain[0] == '.' || domain[len - 1] == '.') {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)domain[i];
        bool is_ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
                     c == '_' || c >= 0x80 || (c == '.' && domain[i - 1] != '.');
        if (!is_ok) {
            return false;
        }
    }
    return true;
}

/* A table key's local part: no quoting in the files, so no spaces, control
 * bytes, quotes or '@'. */
static bool
local_part_is_valid(const char *local, size_t len)
{
    if (len == 0) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)local[i];
        if (c <= ' ' || c == 0x7f || c == '"' || c == '@') {
            return false;
        }
    }
    return true;
}

/* One directory name under <data_dir>/mail: nothing that walks elsewhere
 * ('/', "..", a leading '.'), and no control bytes that break logs. */
static bool
path_part_is_safe(const char *part, size_t len)
{
    if (len == 0 || part[0] == '.') {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)part[i];
        if (c < ' ' || c == 0x7f || c == '/') {
            return false;
        }
        if (c == '.' && i + 1 < len && part[i + 1] == '.') {
            return false;
        }
    }
    return true;
}

/* Copies len bytes ASCII-lowercased and NUL-terminates; returns len. */
static size_t
lower_copy(char *out, const char *in, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        out[i] = (char)ascii_lower((unsigned char)in[i]);
    }
    out[len] = '\0';
    return len;
}

/* ---------------------------------------------------------------------- */
/* Arena and hash index                                                   */
/* ---------------------------------------------------------------------- */

static void *
arena_alloc(struct arena *arena, size_t bytes, size_t align)
{
    ASSERT(align > 0);
    ASSERT((align & (align - 1)) == 0);
    ASSERT(align <= alignof(max_align_t));
    struct arena_block *block = arena->head;
    if (block != NULL) {
        size_t offset = (block->used + align - 1) & ~(align - 1);
        if (offset <= block->size && bytes <= block->size - offset) {
            block->used = offset + bytes;
            return block->data + offset;
        }
    }
    /* The tail of the old block is wasted; strings are short next to 64 KiB. */
    size_t size = bytes > ARENA_BLOCK_BYTES ? bytes : ARENA_BLOCK_BYTES;
    block = malloc(sizeof *block + size);
    if (block == NULL) {
        return NULL;
    }
    block->next = arena->head;
    block->size = size;
    block->used = bytes;
    arena->head = block;
    return block->data;
}

static const char *
arena_copy(struct arena *arena, const char *ptr, size_t len)
{
    char *copy = arena_alloc(arena, len + 1, 1);
    if (copy == NULL) {
        return NULL;
    }
    memcpy(copy, ptr, len);
    copy[len] = '\0';
    return copy;
}

static void
arena_free(struct arena *arena, bool is_secret)
{
    struct arena_block *block = arena->head;
    while (block != NULL) {
        struct arena_block *next = block->next;
        if (is_secret) {
            explicit_bzero(block->data, block->used);
        }
        free(block);
        block = next;
    }
    arena->head = NULL;
}

/* FNV-1a, folded to 32 bits. Keys come from the operator's files; lookups
 * cannot add entries, so a peer cannot lengthen probe chains. */
static uint32_t
key_hash(const char *key, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)key[i];
        h *= 0x100000001b3ull;
    }
    return (uint32_t)(h ^ (h >> 32));
}

/* The key must contain no NUL byte. */
static const struct index_slot *
index_find(const struct index *index, const char *key, size_t len)
{
    if (index->slots == NULL) {
        return NULL;
    }
    uint32_t hash = key_hash(key, len);
    size_t i = hash & index->mask;
    /* At most every slot once; the load factor keeps one empty. */
    for (size_t probes = 0; probes <= index->mask; probes++) {
        const struct index_slot *slot = &index->slots[i];
        if (slot->key == NULL) {
            return NULL;
        }
        if (slot->hash == hash && strncmp(slot->key, key, len) == 0 && slot->key[len] == '\0') {
            return slot;
        }
        i = (i + 1) & index->mask;
    }
    return NULL;
}

static void
index_place(struct index_slot *slots, size_t mask, struct index_slot entry)
{
    size_t i = entry.hash & mask;
    size_t probes = 0;
    while (slots[i].key != NULL) {
        /* The load factor keeps a free slot; not finding one is our bug. */
        probes++;
        ASSERT(probes <= mask);
        i = (i + 1) & mask;
    }
    slots[i] = entry;
}

/* The key must be stored for the index's lifetime and not be present. */
static int
index_insert(struct index *index, const char *key, size_t len, uint32_t value)
{
    size_t slot_count = index->slots == NULL ? 0 : index->mask + 1;
    if ((index->count + 1) * 2 > slot_count) {
        size_t next = slot_count == 0 ? INDEX_SLOTS_MIN : slot_count * 2;
        struct index_slot *slots = calloc(next, sizeof *slots);
        if (slots == NULL) {
            return -ENOMEM;
        }
        for (size_t i = 0; i < slot_count; i++) {
            if (index->slots[i].key != NULL) {
                index_place(slots, next - 1, index->slots[i]);
            }
        }
        free(index->slots);
        index->slots = slots;
        index->mask = next - 1;
    }
    index_place(index->slots, index->mask,
                (struct index_slot){ .key = key, .hash = key_hash(key, len), .value = value });
    index->count++;
    return 0;
}

static void
index_free(struct index *index)
{
    free(index->slots);
    index->slots = NULL;
    index->mask = 0;
    index->count = 0;
}

int
recipients_load_config(const struct config *config, struct recipients **table_out, char *err,
                       size_t err_bytes)
{
    struct recipients_options options = {
        .users_path = config->users_path,
        .aliases_path = config->aliases_path,
        .local_domains = config->local_domains,
        .recipient_delimiter = config->recipient_delimiter,
        .unknown_recipient_mailbox = config->unknown_recipient_mailbox,
        .postmaster_address = config->postmaster_address,
        .myhostname = config->myhostname,
    };
    return recipients_load(&options, table_out, err, err_bytes);
}

/* ---- the published table ---------------------------------------------------- */

static struct recipients *recipients_published; /* ck_pr load/store */

struct recipients *
recipients_publish(struct recipients *table)
{
    return ck_pr_fas_ptr(&recipients_published, table);
}

const struct recipients *
recipients_current(void)
{
    return ck_pr_load_ptr(&recipients_published);
}

bool
recipients_login_lookup(const struct recipients *table, const char *user, char *user_out,
                        size_t user_bytes, char *hash_out, size_t hash_bytes)
{
    ASSERT(user_bytes > 0 && hash_bytes > 0);
    size_t n = strnlen(user, user_bytes - 1);
    for (size_t i = 0; i < n; i++) {
        user_out[i] = (char)ascii_lower((unsigned char)user[i]);
    }
    user_out[n] = '\0';
    hash_out[0] = '\0';
    const char *hash =
        table != NULL ? recipients_password_hash(table, span_make(user_out, n)) : NULL;
    size_t hash_len = hash != NULL ? strlen(hash) : 0;
    if (hash == NULL || hash_len >= hash_bytes) {
        return false;
    }
    memcpy(hash_out, hash, hash_len + 1);
    return true;
}
