/*
 * tests/fuzz/fuzz_sieve_run.c - libFuzzer harness for the Sieve
 * interpreter (filters/sieve_run*), every extension included.
 *
 * The input is a script, a NUL byte, then a message (the first 5 bytes
 * after the NUL, when present, choose the envelope, the virus scan flag
 * and the message size; the rest is the header block, and what follows
 * its blank line is the body). Scripts that compile are run on an
 * exact-size heap copy of the message (so ASan sees any read past it)
 * with small limits and a fake environment: a few included scripts (one
 * includes itself, one includes another, one sets a global), mailboxes,
 * a duplicate store and lists that answer from the bytes they are given,
 * and an unknown list.
 * Properties: sieve_run() answers 0, or -E2BIG / -ENOMEM / -EFBIG /
 * -EINVAL with a non-empty error text and a result reset to the implicit
 * keep alone (no flags, no header, no duplicate marks). A finished result
 * holds 1 .. SIEVE_RUN_ACTIONS_MAX + 1 actions, no two alike, the
 * implicit keep only last; FILEINTO / REDIRECT / REJECT targets, flags
 * and vacation strings are NUL-terminated; no reject or ereject stands
 * next to a delivery, a vacation or another reject; at most 4 redirects;
 * an edited header ends with an empty line; duplicate keys are 64 hex
 * digits. The same script run twice into one result (a sieve_before
 * chain) keeps these properties, and a second run gives the same answer.
 *
 * Build: meson setup -Dfuzz=true (tests/meson.build, target fuzz_sieve_run).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "filters/sieve_run.h"
#include "filters/sieve_validate.h"
#include "tests/fuzz/fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct fake_script {
    bool is_global;
    const char *name;
    const char *text;
    struct sieve_script *compiled;
    bool is_bad;
};

static struct fake_script fake_scripts[] = {
    {false, "a", "require [\"fileinto\", \"imap4flags\"];\naddflag \"\\\\Seen\";\n"
                 "fileinto \"from-a\";\n", NULL, false},
    {false, "self", "require \"include\";\ninclude \"self\";\n", NULL, false},
    {false, "chain", "require \"include\";\ninclude :once \"a\";\nreturn;\nkeep;\n", NULL, false},
    {true, "g", "require [\"variables\", \"include\"];\nglobal \"x\";\nset \"x\" \"${x}g\";\n",
     NULL, false},
    {true, "reject", "require \"reject\";\nreject \"no\";\n", NULL, false},
};

static int
fake_include_load(void *ctx, bool is_global, const char *name,
                  const struct sieve_script **script_out)
{
    (void)ctx;
    for (size_t i = 0; i < sizeof(fake_scripts) / sizeof(fake_scripts[0]); i++) {
        struct fake_script *f = &fake_scripts[i];
        if (f->is_global != is_global || strcmp(f->name, name) != 0) {
            continue;
        }
        if (f->compiled == NULL && !f->is_bad) {
            struct sieve_errors errors;
            if (sieve_compile(f->text, strlen(f->text), NULL, &f->compiled, &errors) != 0) {
                f->is_bad = true;
            }
        }
        FUZZ_CHECK(f->compiled != NULL);
        *script_out = f->compiled;
        return 0;
    }
    return strcmp(name, "broken") == 0 ? -EIO : -ENOENT;
}

static int
fake_mailbox_exists(void *ctx, const char *mailbox, size_t len)
{
    (void)ctx;
    if (len == 5 && memcmp(mailbox, "error", 5) == 0) {
        return -EIO;
    }
    return (int)(len % 2);
}

static int
fake_duplicate_seen(void *ctx, const char *key)
{
    (void)ctx;
    FUZZ_CHECK(strlen(key) == 64);
    return key[0] < '8' ? 1 : 0;
}

static int
fake_list_contains(void *ctx, const char *list, const char *value, size_t len)
{
    (void)ctx;
    if (strncmp(list, ":unknown", 8) == 0) {
        return -ENOENT;
    }
    unsigned sum = 0;
    for (size_t i = 0; i < len; i++) {
        sum += (unsigned char)value[i];
    }
    return (int)(sum % 2);
}

static const struct sieve_env fake_env = {
    .mailbox_exists = fake_mailbox_exists,
    .include_load = fake_include_load,
    .duplicate_seen = fake_duplicate_seen,
    .list_contains = fake_list_contains,
    .vacation_min_seconds = 60,
};

static bool
is_reject(enum sieve_action_type type)
{
    return type == SIEVE_ACTION_REJECT || type == SIEVE_ACTION_EREJECT;
}

static bool
is_nul_terminated(const char *s, size_t max)
{
    return s != NULL && memchr(s, '\0', max + 1) != NULL;
}

static void
check_reset(int rc, const struct sieve_actions *a, const struct sieve_run_error *error)
{
    FUZZ_CHECK(rc == -E2BIG || rc == -ENOMEM || rc == -EFBIG || rc == -EINVAL);
    FUZZ_CHECK(error->text[0] != '\0');
    FUZZ_CHECK(a->count == 0 && a->implicit_keep && !a->is_keep_explicit);
    FUZZ_CHECK(a->implicit_flags == NULL && a->header == NULL && a->duplicate_count == 0);
}

static void
check_finished(const struct sieve_actions *a)
{
    FUZZ_CHECK(a->is_finished);
    FUZZ_CHECK(a->count >= 1 && a->count <= SIEVE_RUN_ACTIONS_MAX + 1);
    size_t redirects = 0;
    size_t rejects = 0;
    size_t deliveries = 0;
    for (size_t i = 0; i < a->count; i++) {
        const struct sieve_action *x = &a->items[i];
        if (x->is_implicit) {
            FUZZ_CHECK(x->type == SIEVE_ACTION_KEEP && i == a->count - 1);
        }
        if (x->type == SIEVE_ACTION_FILEINTO || x->type == SIEVE_ACTION_REDIRECT ||
            is_reject(x->type)) {
            FUZZ_CHECK(x->target != NULL && x->target[x->target_len] == '\0');
        }
        if (x->flags != NULL) {
            FUZZ_CHECK(x->type == SIEVE_ACTION_KEEP || x->type == SIEVE_ACTION_FILEINTO);
            FUZZ_CHECK(is_nul_terminated(x->flags, 64 * 1024));
        }
        if (x->type == SIEVE_ACTION_VACATION) {
            const struct sieve_vacation *v = x->vacation;
            FUZZ_CHECK(v != NULL && v->reason != NULL && v->reason[v->reason_len] == '\0');
            FUZZ_CHECK(v->handle != NULL);
            FUZZ_CHECK(v->address_count <= SIEVE_RUN_VACATION_ADDRESSES_MAX);
            FUZZ_CHECK(v->period_seconds >= 60);
            deliveries++;
        }
        redirects += x->type == SIEVE_ACTION_REDIRECT;
        rejects += is_reject(x->type);
        deliveries += (x->type == SIEVE_ACTION_KEEP && !x->is_implicit) ||
                      x->type == SIEVE_ACTION_FILEINTO || x->type == SIEVE_ACTION_REDIRECT;
        for (size_t j = 0; j < i; j++) {
            const struct sieve_action *y = &a->items[j];
            if (x->type == SIEVE_ACTION_VACATION || is_reject(x->type)) {
                FUZZ_CHECK(x->type != y->type);
                continue;
            }
            FUZZ_CHECK(!(x->type == y->type && x->target_len == y->target_len &&
                         (x->target_len == 0 ||
                          memcmp(x->target, y->target, x->target_len) == 0)));
        }
    }
    FUZZ_CHECK(redirects <= SIEVE_RUN_REDIRECTS_DEFAULT);
    FUZZ_CHECK(rejects <= 1);
    if (rejects == 1) {
        FUZZ_CHECK(deliveries == 0);
    }
    if (a->header != NULL) {
        FUZZ_CHECK(a->header_len >= 2 && a->header[a->header_len] == '\0');
        FUZZ_CHECK(memcmp(a->header + a->header_len - 2, "\r\n", 2) == 0);
        FUZZ_CHECK(a->header_len == 2 ||
                   (a->header_len >= 4 &&
                    memcmp(a->header + a->header_len - 4, "\r\n\r\n", 4) == 0));
    }
    FUZZ_CHECK(a->duplicate_count <= SIEVE_RUN_DUPLICATES_MAX);
    for (size_t i = 0; i < a->duplicate_count; i++) {
        FUZZ_CHECK(strlen(a->duplicates[i].key) == 64);
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, 0, size);
    size_t script_len = nul != NULL ? (size_t)(nul - data) : size;
    size_t rest = nul != NULL ? size - script_len - 1 : 0;
    const uint8_t *tail = nul != NULL ? nul + 1 : data + size;

    struct sieve_script *script = NULL;
    struct sieve_errors errors;
    if (sieve_compile((const char *)data, script_len, NULL, &script, &errors) != 0) {
        return 0;
    }
    uint8_t opts[5] = {0};
    size_t opts_len = rest < sizeof(opts) ? rest : sizeof(opts);
    memcpy(opts, tail, opts_len);
    tail += opts_len;
    rest -= opts_len;
    char *msg = malloc(rest > 0 ? rest : 1);
    FUZZ_CHECK(msg != NULL);
    memcpy(msg, tail, rest);
    /* The body starts after the first empty line, when there is one. */
    const char *body = NULL;
    size_t body_len = 0;
    for (size_t i = 0; i + 1 < rest; i++) {
        if (msg[i] == '\n' && (msg[i + 1] == '\n' || (msg[i + 1] == '\r' && i + 2 < rest &&
                                                      msg[i + 2] == '\n'))) {
            size_t start = i + (msg[i + 1] == '\n' ? 2 : 3);
            body = msg + start;
            body_len = rest - start;
            break;
        }
    }
    static const char *const froms[] = {NULL, "", "a@b.example", "\"x y\"@[1.2.3.4]"};
    struct sieve_message message = {
        .header = msg,
        .header_len = rest,
        .body = (opts[0] & 16) ? body : NULL,
        .body_len = (opts[0] & 16) ? body_len : 0,
        .envelope_from = froms[opts[0] & 3],
        .envelope_to = (opts[0] & 4) ? "rcpt+detail@example.org" : NULL,
        .auth_user = (opts[0] & 8) ? "user" : NULL,
        .user = (opts[0] & 32) ? "rcpt@example.org" : NULL,
        .size_bytes = (uint64_t)opts[1] << 24 | (uint64_t)opts[2] << 16 |
                      (uint64_t)opts[3] << 8 | opts[4],
        .now_unix = 1700000000,
        .zone_minutes = (opts[0] & 64) ? 120 : 0,
        .is_virus_scanned = (opts[0] & 128) != 0,
    };
    struct sieve_run_limits limits = {.steps_max = 2000, .match_work_max = 200000};
    struct sieve_actions a1;
    struct sieve_actions a2;
    struct sieve_run_error e1;
    struct sieve_run_error e2;
    sieve_actions_init(&a1);
    int rc1 = sieve_run(script, &message, &fake_env, &limits, &a1, &e1);
    if (rc1 < 0) {
        check_reset(rc1, &a1, &e1);
    }
    sieve_actions_init(&a2);
    int rc2 = sieve_run(script, &message, &fake_env, &limits, &a2, &e2);
    FUZZ_CHECK(rc1 == rc2 && a1.count == a2.count);
    FUZZ_CHECK(a1.implicit_keep == a2.implicit_keep);
    FUZZ_CHECK(a1.header_len == a2.header_len);
    for (size_t i = 0; i < a1.count && i < a2.count; i++) {
        FUZZ_CHECK(a1.items[i].type == a2.items[i].type &&
                   a1.items[i].target_len == a2.items[i].target_len);
    }
    /* A chain: the same script again on the shared result while keep holds. */
    if (rc1 == 0 && a1.implicit_keep) {
        int rc = sieve_run(script, &message, &fake_env, &limits, &a1, &e1);
        if (rc < 0) {
            check_reset(rc, &a1, &e1);
        }
    }
    sieve_actions_finish(&a1);
    sieve_actions_finish(&a2);
    check_finished(&a1);
    check_finished(&a2);
    sieve_actions_free(&a1);
    sieve_actions_free(&a2);
    free(msg);
    sieve_script_free(&script);
    return 0;
}
