/*
 * filters/sieve_run.h - the Sieve interpreter: runs a validated script
 * (filters/sieve_validate.h) over one message for one recipient and
 * appends the actions it chose to a result that several scripts may share
 * (sieve_before, the user's script, sieve_after: Pigeonhole's order).
 *
 * Covered: RFC 5228 in full, and reject/ereject (RFC 5429), variables
 * (5229), imap4flags (5232), relational (5231), i;ascii-numeric (4790),
 * subaddress (5233), body (5173), copy (3894), mailbox (5490), date and
 * index (5260), spamtest/spamtestplus/virustest (5235), vacation (5230,
 * the action only: the caller tracks responses and sends), include
 * (6609), duplicate (7352, the check only: the caller records after
 * delivery), editheader (5293) and extlists (6134, :list through the
 * caller's list_contains).
 *
 * What needs the world outside (mailboxes, included scripts, duplicate
 * and list stores) comes through struct sieve_env callbacks; the
 * interpreter itself does no I/O and keeps no global state, so it runs on
 * any thread (workers at delivery, toasterctl sieve-test).
 *
 * Use:
 *   struct sieve_actions actions;
 *   sieve_actions_init(&actions);
 *   for each script in order:
 *       rc = sieve_run(script, &message, &env, &limits, &actions, &error);
 *       if (rc < 0) { log error; break; }   -- actions now: one implicit keep
 *       if (!actions.implicit_keep) break;  -- Pigeonhole runs the next script
 *                                              only while keep is in effect
 *   sieve_actions_finish(&actions);         -- adds the implicit keep
 *   ... execute actions.items[0 .. count) ...
 *   sieve_actions_free(&actions);
 *
 * On any error (a limit broken, no memory, a runtime error such as an
 * unknown list or an include that is missing) sieve_run() returns < 0,
 * fills error_out and resets the result to exactly one implicit keep with
 * no flags and no header edits (RFC 5228 2.10.6): the caller delivers to
 * INBOX and logs error_out. sieve_actions_finish() is still to be called.
 * (Precisely: after an error count is 0 and implicit_keep is true, so
 * sieve_actions_finish() adds that one keep.)
 *
 * Between the scripts of a chain the result carries: the actions, the
 * edited header (the next script sees it), imap4flags' internal variable
 * (implicit_flags: the next script starts with it, so a global script's
 * addflag reaches the user's implicit keep) and the redirect count.
 * Variables do not carry over. An explicit keep, like the implicit one,
 * lets the chain go on; the implicit keep never adds a second INBOX copy
 * next to an explicit keep or fileinto "INBOX" (it gives them its flags).
 */
#ifndef TOASTER_FILTERS_SIEVE_RUN_H
#define TOASTER_FILTERS_SIEVE_RUN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "filters/sieve_tree.h"

#define SIEVE_RUN_STEPS_DEFAULT 100000u            /* commands + tests visited, per run */
#define SIEVE_RUN_ACTIONS_MAX 32u                  /* distinct actions (ceiling) */
#define SIEVE_RUN_REDIRECTS_DEFAULT 4u             /* Pigeonhole's sieve_max_redirects */
#define SIEVE_RUN_MATCH_WORK_DEFAULT 10000000u     /* byte comparisons, all tests */
#define SIEVE_RUN_HEADER_BYTES_MAX (1024u * 1024u) /* header block looked at */
#define SIEVE_RUN_BODY_BYTES_MAX (4u * 1024u * 1024u) /* body bytes the body test reads */
#define SIEVE_RUN_ERROR_TEXT_BYTES 240u
#define SIEVE_RUN_INCLUDE_DEPTH_MAX 10u            /* Pigeonhole's sieve_include_max_nesting_depth */
#define SIEVE_RUN_INCLUDES_MAX 255u                /* Pigeonhole's sieve_include_max_includes */
#define SIEVE_RUN_DUPLICATES_MAX 8u                /* duplicate marks one result records */
#define SIEVE_RUN_VACATION_ADDRESSES_MAX 32u       /* :addresses kept */
#define SIEVE_RUN_DUPLICATE_KEY_BYTES 65u          /* hex SHA-256 + NUL */
#define SIEVE_RUN_ARENA_BYTES_MAX (16u * 1024u * 1024u) /* a result's runtime strings */

/* The message, filled by the caller. Strings need not outlive the run. */
struct sieve_message {
    const char *header; /* the header block as received (CRLF or LF), */
    size_t header_len;  /* may run into the body: scanning stops at the blank line */
    const char *body;   /* the body (after the blank line); NULL: not available, */
    size_t body_len;    /* then "body" tests are false */
    const char *envelope_from; /* MAIL FROM path without <>; "" = null path; NULL = unknown */
    const char *envelope_to;   /* this recipient's RCPT TO path; NULL = unknown */
    const char *auth_user;     /* SMTP AUTH identity; NULL = none */
    const char *user;          /* the recipient's mailbox "local@domain" (vacation,
                                  duplicate, :personal); NULL = unknown */
    uint64_t size_bytes;       /* whole message, for "size" */
    int64_t now_unix;          /* "currentdate", vacation; 0: the interpreter reads the clock */
    int32_t zone_minutes;      /* the server's offset from UTC: currentdate, date without :zone */
    bool is_virus_scanned;     /* virustest: absent virus header means clean (1), not untested (0) */
};

/* The world outside, for the extensions that need it. Any callback may be
 * NULL: the test or command that needs it is then a runtime error
 * (mailboxexists and duplicate answer false, as Pigeonhole does when the
 * feature is off). Callbacks run on the interpreter's thread. */
struct sieve_env {
    void *ctx;
    /* mailbox (RFC 5490): 1 when mailbox (UTF-8, as written) exists, 0 not, < 0 error. */
    int (*mailbox_exists)(void *ctx, const char *mailbox, size_t len);
    /* include (RFC 6609): the compiled script name of the user's
     * (is_global false) or of the global store. 0 with *script_out set
     * (owned by the caller until the run ends), -ENOENT when there is none
     * (":optional" makes that no error), other < 0 an error. */
    int (*include_load)(void *ctx, bool is_global, const char *name,
                        const struct sieve_script **script_out);
    /* duplicate (RFC 7352): 1 when key (made by the interpreter from the
     * user, the handle and the unique id) was recorded and has not
     * expired, 0 when not, < 0 error. Recording is the caller's, after
     * delivery, from actions->duplicates. */
    int (*duplicate_seen)(void *ctx, const char *key);
    /* extlists (RFC 6134): 1 when the list named list (as written, e.g.
     * ":addrbook:whitelist") holds value, 0 when not, -ENOENT for an
     * unknown list, other < 0 an error. */
    int (*list_contains)(void *ctx, const char *list, const char *value, size_t len);
    /* spamtest (RFC 5235) as Pigeonhole configures it: the header holding
     * the score (NULL: "X-Spam-Score") and the score that means certain
     * spam (0: 10). virustest reads virus_header (NULL: "X-Virus"), which
     * the ClamAV filter writes with the signature name. */
    const char *spam_header;
    double spam_max_score;
    const char *virus_header;
    /* vacation (RFC 5230) periods in seconds, Pigeonhole's
     * sieve_vacation_{min,default,max}_period (0: 1d, 7d, 90d). */
    uint64_t vacation_min_seconds;
    uint64_t vacation_default_seconds;
    uint64_t vacation_max_seconds;
    /* duplicate periods, Pigeonhole's sieve_duplicate_{default,max}_period
     * (0: 7d, 7d: Pigeonhole's 14d default clamped to its 7d maximum). */
    uint64_t duplicate_default_seconds;
    uint64_t duplicate_max_seconds;
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
    SIEVE_ACTION_REJECT,   /* refuse with target as the reason (RFC 5429 reject) */
    SIEVE_ACTION_EREJECT,  /* refuse at the protocol level where possible (ereject) */
    SIEVE_ACTION_VACATION, /* send the reply described by ->vacation */
};

/* What a vacation action asks (RFC 5230 section 4). Strings in the
 * result's arena, NUL-terminated. */
struct sieve_vacation {
    const char *reason; /* the body text, or a MIME entity when is_mime */
    size_t reason_len;
    bool is_mime;
    const char *subject; /* NULL: none given (the sender builds "Auto: ...") */
    const char *from;    /* NULL: none given */
    const char *handle;  /* as given, or made from the arguments (RFC 5230 4.2) */
    const char *addresses[SIEVE_RUN_VACATION_ADDRESSES_MAX]; /* :addresses */
    size_t address_count;
    uint64_t period_seconds; /* :days / :seconds, clamped to the env's bounds */
    const char *reply_to;    /* who gets the reply: the envelope sender ("" for the
                                null path, NULL when unknown) */
};

struct sieve_action {
    enum sieve_action_type type;
    const char *target; /* FILEINTO, REDIRECT: mailbox / address; REJECT, EREJECT:
                           the reason. In the result's arena or the script's,
                           NUL-terminated */
    size_t target_len;
    const char *flags;  /* KEEP, FILEINTO: IMAP flags to set, space-separated,
                           each once ("\\Seen $Label1"); NULL: none */
    bool is_create;     /* FILEINTO :create (RFC 5490): make the mailbox if missing */
    bool is_copy;       /* REDIRECT/FILEINTO :copy (informational: keep was not cancelled) */
    const struct sieve_vacation *vacation; /* VACATION */
    uint32_t line;     /* the command's line; 0 for the implicit keep */
    bool is_implicit;  /* KEEP added by RFC 5228 2.10.2 */
};

/* A duplicate test asked to record key for period_seconds once the
 * message is delivered (RFC 7352 3.1). */
struct sieve_duplicate_mark {
    char key[SIEVE_RUN_DUPLICATE_KEY_BYTES];
    uint64_t period_seconds;
};

/* The result of one or more runs over one message for one recipient.
 * Distinct actions in the order first executed: duplicates collapse, and
 * keep and fileinto "INBOX" (any case) count as one, the first kept. */
struct sieve_actions {
    struct sieve_arena arena; /* strings made at run time */
    size_t count;
    struct sieve_action items[SIEVE_RUN_ACTIONS_MAX + 1]; /* + the implicit keep */
    bool implicit_keep;        /* still in effect; an explicit keep of the last run
                                  counts too, so that a chain goes on after it as
                                  Pigeonhole's does (see is_keep_explicit) */
    bool is_keep_explicit;     /* the last run's keep was an explicit "keep" (which
                                  cancelled its implicit keep): finish adds nothing */
    const char *implicit_flags; /* imap4flags' internal variable after the last run:
                                   the implicit keep's flags; NULL: none */
    /* editheader: the header block after every edit, CRLF line ends and
     * ending with the empty line; NULL when no script changed it. The body
     * is unchanged. */
    const char *header;
    size_t header_len;
    size_t duplicate_count;
    struct sieve_duplicate_mark duplicates[SIEVE_RUN_DUPLICATES_MAX];
    bool is_finished;
};

struct sieve_run_error {
    uint32_t line; /* 0: not tied to a line */
    char text[SIEVE_RUN_ERROR_TEXT_BYTES];
};

/* An empty result with the implicit keep in effect. */
void sieve_actions_init(struct sieve_actions *actions);

/* Adds the implicit keep (with implicit_flags) when still in effect. Once. */
void sieve_actions_finish(struct sieve_actions *actions);

/* Frees what the runs allocated; actions may be initialised again. */
void sieve_actions_free(struct sieve_actions *actions);

/* Runs script over message, appending to actions (initialised, not
 * finished). env and limits may be NULL (no callbacks; defaults). A stop
 * ends this script only. Returns 0; or -E2BIG (a limit broken), -EFBIG
 * (header_len above SIEVE_RUN_HEADER_BYTES_MAX), -ENOMEM, -EINVAL (a
 * runtime error: unknown list, include missing, a callback's error ...);
 * then error_out says why and actions holds one implicit keep. */
int sieve_run(const struct sieve_script *script, const struct sieve_message *message,
              const struct sieve_env *env, const struct sieve_run_limits *limits,
              struct sieve_actions *actions, struct sieve_run_error *error_out);

/* Exposed for tests: whether value matches the glob pattern (* ? and
 * backslash escapes) under comparator; *work counts comparisons and the
 * match gives up (returns -E2BIG) past work_max. Returns 1, 0 or < 0. */
int sieve_glob_match(const char *value, size_t value_len, const char *pattern,
                     size_t pattern_len, enum sieve_comparator comparator, uint64_t *work,
                     uint64_t work_max);

#endif
