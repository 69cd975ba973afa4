/*
 * store/recipients.h - the users and aliases tables, and what a recipient
 * address resolves to.
 *
 * A table set is built once from users_file (Dovecot passwd-file) and
 * aliases_file, then is immutable and shared read-only by every reactor
 * thread; SIGHUP builds a new one and swaps the pointer. Resolution is pure
 * memory work, safe on a reactor.
 */
#ifndef TOASTER_STORE_RECIPIENTS_H
#define TOASTER_STORE_RECIPIENTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/span.h"

struct recipients; /* opaque, immutable after recipients_load() */

struct recipients_options {
    const char *users_path;   /* Dovecot passwd-file; a missing file is an empty table */
    const char *aliases_path; /* "alias@domain  target[, target...]"; missing = empty */
    const char *local_domains; /* extra local domains, comma or space separated; may be "" */
    const char *recipient_delimiter; /* characters that start a subaddress, e.g. "+"; "" = none */
    const char *unknown_recipient_mailbox; /* "" or user@domain: where unknown local mail goes */
    const char *postmaster_address;        /* "" or an address: where postmaster@ goes */
    const char *myhostname;   /* domain used for a bare "postmaster" */
};

/* Build the tables. Returns 0 and sets *table_out, or -errno. On a syntax
 * error in either file, returns -EINVAL and writes "path:line: reason" to
 * err (always NUL-terminated). The caller owns the result. */
int recipients_load(const struct recipients_options *options, struct recipients **table_out,
                    char *err, size_t err_bytes);

struct config;

/* recipients_load() with the options taken from the daemon's configuration
 * (users_file, aliases_file, local_domains, recipient_delimiter,
 * unknown_recipient_mailbox, postmaster_address, myhostname). */
int recipients_load_config(const struct config *config, struct recipients **table_out,
                           char *err, size_t err_bytes);

/* Frees the tables and NULLs *table. Safe with *table == NULL. */
void recipients_destroy(struct recipients **table);

/* The table in use by every listener. recipients_publish() swaps in a new
 * one (main thread, at start and on SIGHUP) and returns the previous one,
 * which the caller frees only once every reactor has passed a new epoch
 * (core/reactor.h): readers take the pointer once per loop turn and do not
 * keep it across turns or hand it to another thread. */
struct recipients *recipients_publish(struct recipients *table);
const struct recipients *recipients_current(void);

/* Counts for logging ("loaded 12 users, 3 aliases, 2 domains"). */
size_t recipients_user_count(const struct recipients *table);
size_t recipients_alias_count(const struct recipients *table);
size_t recipients_domain_count(const struct recipients *table);

/* True when the domain (case-insensitive, no trailing dot) is local. */
bool recipients_domain_is_local(const struct recipients *table, struct span domain);

enum recipients_status {
    RECIPIENTS_OK,              /* at least one local mailbox (and/or remote target) */
    RECIPIENTS_UNKNOWN_USER,    /* local domain, nobody there: 550 5.1.1 */
    RECIPIENTS_NOT_LOCAL,       /* foreign domain: relay question, 554 5.7.1 unless allowed */
    RECIPIENTS_RELAY_FORM,      /* user%host@local, user!host@local, or a source route: 554 5.7.1 */
    RECIPIENTS_ALIAS_LOOP,      /* alias nesting deeper than ALIAS_DEPTH_MAX, or a cycle that
                                 * reaches no mailbox: 451 4.3.0, operator must fix */
    RECIPIENTS_TOO_MANY,        /* expansion exceeds ALIAS_EXPANSION_MAX (mailboxes and
                                 * remotes together) or the caller's capacity: 451 4.3.0 */
    RECIPIENTS_SYNTAX,          /* not local@domain: 501 5.1.3 */
};

/* What one recipient address became. Mailboxes are canonical users_file
 * names ("local@domain", lower case, no subaddress), borrowed from the table:
 * valid as long as the table lives. Remote targets are alias targets in
 * foreign domains, also borrowed from the table (or, for a plain foreign
 * address, not filled: status is RECIPIENTS_NOT_LOCAL). */
struct recipients_result {
    enum recipients_status status;
    size_t                 mailbox_count;
    size_t                 remote_count;
    /* Filled up to the caller's capacity; counts above may be larger only
     * when status is RECIPIENTS_TOO_MANY. */
    const char           **mailboxes;
    size_t                 mailbox_capacity;
    const char           **remotes;
    size_t                 remote_capacity;
};

/* Resolve one envelope recipient (the address inside <>, already unquoted
 * by the SMTP parser: "user+tag@Example.COM", "postmaster", "\"a b\"@x").
 * The caller points result->mailboxes/remotes at arrays of the given
 * capacities. Returns the status, also stored in result->status.
 *
 * Order, as Postfix and Dovecot users expect:
 *   1. "postmaster" (any case) and postmaster@<local domain>: an alias for it
 *      if one exists, else postmaster_address, else the mailbox
 *      postmaster@<that domain> (bare: @myhostname). Always accepted.
 *   2. local part containing '%' or '!', or a source route "@a,@b:u@d",
 *      with a local final domain: RECIPIENTS_RELAY_FORM.
 *   3. foreign domain: RECIPIENTS_NOT_LOCAL.
 *   4. alias for the full address (with subaddress), then without it;
 *      targets expanded recursively (local users, further aliases, foreign
 *      addresses as remote targets); duplicates delivered once.
 *   5. users_file entry for the address without its subaddress (first
 *      with it, for user names that contain the delimiter, as Postfix does).
 *   6. catch-all alias "@domain".
 *   7. unknown_recipient_mailbox, if set.
 *   8. RECIPIENTS_UNKNOWN_USER. */
enum recipients_status recipients_resolve(const struct recipients *table, struct span address,
                                          struct recipients_result *result);

/* Maildir directory of a canonical mailbox name ("local@domain") under
 * data_dir: "<data_dir>/mail/<domain>/<local>/Maildir". Returns 0, or
 * -ENAMETOOLONG, or -EINVAL when the name would escape the tree ('/', "..",
 * a leading '.', NUL or control bytes in either part). */
int recipients_maildir_path(const char *data_dir, const char *mailbox, char *path_out,
                            size_t path_bytes);

/* Password field of users_file for a mailbox ("local@domain", any case), as
 * written ("{SCHEME}hash", "" when absent), or NULL when it is not a user.
 * Borrowed from the table; the table wipes it on destroy. */
const char *recipients_password_hash(const struct recipients *table, struct span mailbox);

/* For a login: user lower-cased into user_out (cut to fit) and, when it is
 * a user with a hash that fits, the hash copied into hash_out. Returns
 * whether the user was found. Reads the table, so it runs where the table
 * may be read (a reactor, see recipients_publish); the copies go to a
 * worker for the check. */
bool recipients_login_lookup(const struct recipients *table, const char *user, char *user_out,
                             size_t user_bytes, char *hash_out, size_t hash_bytes);

#endif
