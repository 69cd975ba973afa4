/*
 * filters/sieve_run.h - the Sieve interpreter (RFC 5228 core): runs a
 * validated script (filters/sieve_validate.h) over one message's header
 * block and envelope and gives the ordered list of actions to take.
 *
 * Covered: require, if/elsif/else, stop, keep, discard, redirect,
 * fileinto; tests address, envelope, header, exists, size, allof, anyof,
 * not, true, false; comparators i;octet, i;ascii-casemap, i;ascii-numeric
 * (:is only); match types :is, :contains, :matches; address parts :all,
 * :localpart, :domain. Any other command or test (an extension the
 * validator accepts but this interpreter does not run yet) is a runtime
 * error.
 *
 * On any error (a limit broken, an unsupported command, no memory)
 * sieve_run() returns < 0, fills error_out and leaves actions_out holding
 * exactly one implicit keep: the caller delivers to INBOX as RFC 5228
 * section 2.10.6 asks and logs error_out.
 * No I/O, no global state; runs on whatever thread calls it.
 */
#ifndef TOASTER_FILTERS_SIEVE_RUN_H
#define TOASTER_FILTERS_SIEVE_RUN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "filters/sieve_tree.h"

#define SIEVE_RUN_STEPS_DEFAULT 100000u            /* commands + tests visited */
#define SIEVE_RUN_ACTIONS_MAX 32u                  /* distinct actions (ceiling) */
#define SIEVE_RUN_REDIRECTS_DEFAULT 4u             /* Pigeonhole's sieve_max_redirects */
#define SIEVE_RUN_MATCH_WORK_DEFAULT 10000000u     /* byte comparisons, all tests */
#define SIEVE_RUN_HEADER_BYTES_MAX (1024u * 1024u) /* header block looked at */
#define SIEVE_RUN_ERROR_TEXT_BYTES 240u

/* The message, filled by the caller. Strings need not outlive the call. */
struct sieve_message {
    const char *header; /* the header block as received (CRLF or LF), */
    size_t header_len;  /* may run into the body: scanning stops at the blank line */
    const char *envelope_from; /* MAIL FROM path without <>; "" = null path; NULL = unknown */
    const char *envelope_to;   /* this recipient's RCPT TO path; NULL = unknown */
    const char *auth_user;     /* SMTP AUTH identity; NULL = none */
    uint64_t size_bytes;       /* whole message, for "size" */
};

/* 0 in a field means its default; a value above the default (or above
 * SIEVE_RUN_ACTIONS_MAX for actions) counts as the default. */
struct sieve_run_limits {
    uint64_t steps_max;
    size_t actions_max;
    size_t redirects_max;
    uint64_t match_work_max;
};

enum sieve_action_type {
    SIEVE_ACTION_KEEP,     /* deliver to INBOX */
    SIEVE_ACTION_DISCARD,  /* informational: the implicit keep was cancelled by discard */
    SIEVE_ACTION_FILEINTO, /* deliver to target (a mailbox name, UTF-8) */
    SIEVE_ACTION_REDIRECT, /* forward to target (an address) */
};

struct sieve_action {
    enum sieve_action_type type;
    const char *target; /* FILEINTO / REDIRECT: in the script's arena, NUL-terminated */
    size_t target_len;
    uint32_t line;     /* the command's line; 0 for the implicit keep */
    bool is_implicit;  /* KEEP added by RFC 5228 2.10.2 */
};

/* Distinct actions in the order first executed: duplicates collapse, and
 * keep and fileinto "INBOX" (any case) count as one, the first kept. */
struct sieve_actions {
    size_t count;
    struct sieve_action items[SIEVE_RUN_ACTIONS_MAX + 1]; /* + the implicit keep */
};

struct sieve_run_error {
    uint32_t line; /* 0: not tied to a line */
    char text[SIEVE_RUN_ERROR_TEXT_BYTES];
};

/* Runs script over message. limits may be NULL (defaults).
 * Returns 0 with actions_out filled; or -E2BIG (a limit broken), -ENOTSUP
 * (a command or test not runnable yet), -EFBIG (header_len above
 * SIEVE_RUN_HEADER_BYTES_MAX), -ENOMEM; then error_out says why and
 * actions_out holds one implicit KEEP. */
int sieve_run(const struct sieve_script *script, const struct sieve_message *message,
              const struct sieve_run_limits *limits, struct sieve_actions *actions_out,
              struct sieve_run_error *error_out);

/* Exposed for tests: whether value matches the glob pattern (* ? and
 * backslash escapes) under comparator; *work counts comparisons and the
 * match gives up (returns -E2BIG) past work_max. Returns 1, 0 or < 0. */
int sieve_glob_match(const char *value, size_t value_len, const char *pattern,
                     size_t pattern_len, enum sieve_comparator comparator, uint64_t *work,
                     uint64_t work_max);

#endif
