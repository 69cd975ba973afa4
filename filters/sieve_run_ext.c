/*
 * filters/sieve_run_ext.c - the Sieve tests and actions that read more
 * than the header view or answer to the world outside: spamtest,
 * spamtestplus and virustest (RFC 5235, scaled as Pigeonhole's
 * ext-spamvirustest-common.c does), date and currentdate (RFC 5260,
 * through filters/sieve_date), body (RFC 5173, through
 * filters/sieve_body), duplicate (RFC 7352: the key and the check; the
 * caller records) and vacation (RFC 5230 + vacation-seconds: the action
 * only; whether to answer is the caller's).
 * Bounds: SIEVE_RUN_BODY_BYTES_MAX body bytes looked at,
 * SIEVE_RUN_DUPLICATES_MAX duplicate marks, SIEVE_RUN_VACATION_ADDRESSES_MAX
 * :addresses kept (the rest ignored).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>

#include "core/assertions.h"
#include "filters/sieve_body.h"
#include "filters/sieve_date.h"
#include "filters/sieve_run_internal.h"

#define SPAM_HEADER_DEFAULT "X-Spam-Score"
#define SPAM_MAX_DEFAULT 10.0
#define VIRUS_HEADER_DEFAULT "X-Virus"
#define DAY_SECONDS 86400u
#define VACATION_MIN_DEFAULT (1u * DAY_SECONDS)
#define VACATION_DEFAULT_DEFAULT (7u * DAY_SECONDS)
#define VACATION_MAX_DEFAULT (90u * DAY_SECONDS)
#define DUPLICATE_DEFAULT_DEFAULT (7u * DAY_SECONDS)
#define DUPLICATE_MAX_DEFAULT (7u * DAY_SECONDS)

/* ---- spamtest / virustest (RFC 5235) ---- */

/* Pigeonhole's ext_spamvirustest_parse_decimal_value: [+-] digits
 * [("." / ",") digits], at most 5 digits each side, nothing else. */
static bool
parse_decimal(const char *s, size_t len, double *value_out)
{
    size_t i = 0;
    double sign = 1.0;
    if (len == 0) {
        return false;
    }
    if (s[i] == '+' || s[i] == '-') {
        sign = s[i] == '-' ? -1.0 : 1.0;
        i++;
    }
    double value = 0;
    size_t digits = 0;
    while (i < len && s[i] >= '0' && s[i] <= '9') {
        value = value * 10 + (s[i] - '0');
        if (digits++ > 4) {
            return false;
        }
        i++;
    }
    if (i < len && (s[i] == '.' || s[i] == ',')) {
        double radix = 0.1;
        i++;
        digits = 0;
        while (i < len && s[i] >= '0' && s[i] <= '9') {
            value += (s[i] - '0') * radix;
            if (digits++ > 4) {
                return false;
            }
            radix /= 10;
            i++;
        }
    }
    if (i != len) {
        return false;
    }
    *value_out = value * sign;
    return true;
}

/* The first field named name, unfolded into run->scratch; false when absent. */
static bool
first_value(struct run *run, const char *name, struct rstr *out)
{
    size_t f = run_field_next(run, 0, name, strlen(name));
    if (f == SIZE_MAX) {
        return false;
    }
    size_t len = run_field_value(run, f);
    *out = (struct rstr){run->scratch, len};
    return true;
}

static int
match_one(struct run *run, const struct sieve_node *test, const char *value, size_t len)
{
    struct matcher m;
    int rc = run_matcher_init(run, test, test->positional[0], &m);
    if (rc < 0) {
        return rc;
    }
    rc = run_matcher_value(run, &m, value, len);
    return rc != 0 ? rc : run_matcher_end(run, &m);
}

int
run_test_spamtest(struct run *run, const struct sieve_node *test)
{
    bool is_percent = sieve_node_tag(test, SIEVE_TAG_PERCENT) != NULL;
    const char *name = run->env->spam_header != NULL ? run->env->spam_header : SPAM_HEADER_DEFAULT;
    double max = run->env->spam_max_score > 0 ? run->env->spam_max_score : SPAM_MAX_DEFAULT;
    char text[8] = "0"; /* not tested: no header, or a value that does not parse */
    struct rstr value;
    double score = 0;
    if (first_value(run, name, &value) && parse_decimal(value.text, value.len, &score)) {
        double ratio = score < 0 ? 0 : score > max ? 1 : score / max;
        /* Pigeonhole: percent = ratio * 100, else 1 + ratio * 9 (1 .. 10). */
        int n = is_percent ? (int)(ratio * 100 + 0.001) : (int)(ratio * 9 + 1.001);
        (void)snprintf(text, sizeof(text), "%d", n);
    }
    return match_one(run, test, text, strlen(text));
}

int
run_test_virustest(struct run *run, const struct sieve_node *test)
{
    const char *name =
        run->env->virus_header != NULL ? run->env->virus_header : VIRUS_HEADER_DEFAULT;
    const char *text = "0"; /* not tested */
    if (run_field_next(run, 0, name, strlen(name)) != SIZE_MAX) {
        text = "5"; /* the scanner named a virus: certainly infected */
    } else if (run->message->is_virus_scanned) {
        text = "1"; /* scanned, nothing found */
    }
    return match_one(run, test, text, 1);
}

/* ---- date / currentdate (RFC 5260) ---- */

/* The zone a date is shown in: 1 with *zone_out, 0 for :originalzone,
 * or -EINVAL for a :zone that does not parse. */
static int
date_zone(struct run *run, const struct sieve_node *test, int32_t *zone_out)
{
    const struct sieve_arg *zone = sieve_node_tag(test, SIEVE_TAG_ZONE);
    if (sieve_node_tag(test, SIEVE_TAG_ORIGINALZONE) != NULL) {
        return 0;
    }
    *zone_out = run->message->zone_minutes;
    if (zone == NULL) {
        return 1;
    }
    struct rstr z;
    int rc = run_expand(run, &zone->param->strings[0], &z);
    if (rc < 0) {
        return rc;
    }
    if (sieve_zone_parse(z.text, z.len, zone_out) < 0) {
        return -EINVAL;
    }
    return 1;
}

static int
date_match(struct run *run, struct matcher *m, struct sieve_datetime *when,
           const struct rstr *part, bool *is_bad_part_out)
{
    char text[SIEVE_DATE_PART_BYTES];
    int n = sieve_date_part(when, part->text, part->len, text);
    if (n == -EINVAL) {
        *is_bad_part_out = true;
        return 0;
    }
    if (n < 0) {
        return 0; /* a date outside what the parts can show: no value */
    }
    return run_matcher_value(run, m, text, (size_t)n);
}

int
run_test_date(struct run *run, const struct sieve_node *test)
{
    bool is_current = test->id == SIEVE_TEST_CURRENTDATE;
    size_t part_pos = is_current ? 0 : 1;
    struct rstr part;
    struct matcher m;
    int rc = run_expand(run, &test->positional[part_pos]->strings[0], &part);
    if (rc == 0) {
        rc = run_matcher_init(run, test, test->positional[part_pos + 1], &m);
    }
    if (rc < 0) {
        return rc;
    }
    int32_t zone = 0;
    int zone_rc = date_zone(run, test, &zone);
    if (zone_rc == -EINVAL) {
        return 0; /* a :zone made by variables that is no zone: nothing matches */
    }
    if (zone_rc < 0) {
        return zone_rc;
    }
    bool is_bad_part = false;
    if (is_current) {
        int64_t now = run->message->now_unix != 0 ? run->message->now_unix : (int64_t)time(NULL);
        struct sieve_datetime when = {.unix_seconds = now, .zone_minutes = zone};
        rc = date_match(run, &m, &when, &part, &is_bad_part);
        if (rc != 0) {
            return rc;
        }
        return is_bad_part ? 0 : run_matcher_end(run, &m);
    }
    struct rstr name;
    rc = run_expand(run, &test->positional[0]->strings[0], &name);
    if (rc < 0) {
        return rc;
    }
    bool is_indexed = sieve_node_tag(test, SIEVE_TAG_INDEX) != NULL;
    size_t f = is_indexed ? run_field_pick(run, test, name.text, name.len)
                          : run_field_next(run, 0, name.text, name.len);
    for (; f != SIZE_MAX;
         f = is_indexed ? SIZE_MAX : run_field_next(run, f + 1, name.text, name.len)) {
        size_t len = run_field_value(run, f);
        struct sieve_datetime when;
        if (sieve_date_parse_field(run->scratch, len, &when) < 0) {
            continue; /* not a date: this field gives no value */
        }
        if (zone_rc == 1) {
            when.zone_minutes = zone;
        }
        rc = date_match(run, &m, &when, &part, &is_bad_part);
        if (rc != 0 || is_bad_part) {
            return rc < 0 ? rc : is_bad_part ? 0 : rc;
        }
    }
    return run_matcher_end(run, &m);
}

/* ---- body (RFC 5173) ---- */

struct body_ctx {
    struct run *run;
    struct matcher *m;
};

static int
body_piece(void *ctx, const char *text, size_t len)
{
    struct body_ctx *b = ctx;
    return run_matcher_value(b->run, b->m, text, len);
}

int
run_test_body(struct run *run, const struct sieve_node *test)
{
    struct matcher m;
    int rc = run_matcher_init(run, test, test->positional[0], &m);
    if (rc < 0) {
        return rc;
    }
    m.is_capturing = false; /* RFC 5173 section 6: body sets no match variables */
    if (run->message->body == NULL) {
        return 0;
    }
    struct sieve_string *types = NULL;
    size_t type_count = 0;
    const struct sieve_arg *content = sieve_node_tag(test, SIEVE_TAG_CONTENT);
    if (content != NULL) {
        struct rstr *list = NULL;
        rc = run_expand_list(run, content->param, &list, &type_count);
        if (rc < 0) {
            return rc;
        }
        types = sieve_arena_alloc(&run->tmp, sizeof(*types) * (type_count + 1));
        if (types == NULL) {
            return run_fail(run, run->tmp.is_full ? -E2BIG : -ENOMEM, test->line,
                            "no room for content types");
        }
        for (size_t i = 0; i < type_count; i++) {
            types[i].text = (char *)list[i].text;
            types[i].len = list[i].len;
            types[i].line = test->line;
        }
    }
    size_t body_len = run->message->body_len;
    if (body_len > SIEVE_RUN_BODY_BYTES_MAX) {
        body_len = SIEVE_RUN_BODY_BYTES_MAX;
    }
    const char *h = run->message->header != NULL ? run->message->header : "";
    size_t h_len = run->message->header != NULL ? run->message->header_len : 0;
    struct body_ctx ctx = {run, &m};
    rc = sieve_body_walk(h, h_len, run->message->body, body_len, test->body_transform, types,
                         type_count, body_piece, &ctx);
    if (rc < 0) {
        if (run->error->text[0] != '\0') {
            return rc; /* the matcher's error, already recorded */
        }
        return run_fail(run, rc == -ENOMEM ? -ENOMEM : -E2BIG, test->line,
                        "body: the message is over the body test's bounds (%d)", rc);
    }
    if (rc == 1) {
        return 1;
    }
    return run_matcher_end(run, &m);
}

/* ---- duplicate (RFC 7352) ---- */

/* The duplicate key: hex SHA-256 over the parts, each NUL-ended so no
 * two different lists give the same input. Returns 0 or -ENOMEM. */
static int
duplicate_key(const struct rstr *parts, size_t part_count, char out[SIEVE_RUN_DUPLICATE_KEY_BYTES])
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (ctx == NULL) {
        return -ENOMEM;
    }
    bool is_ok = EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1;
    for (size_t i = 0; i < part_count && is_ok; i++) {
        is_ok = EVP_DigestUpdate(ctx, parts[i].text, parts[i].len) == 1 &&
                EVP_DigestUpdate(ctx, "", 1) == 1;
    }
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int digest_len = 0;
    is_ok = is_ok && EVP_DigestFinal_ex(ctx, digest, &digest_len) == 1 && digest_len == 32;
    EVP_MD_CTX_free(ctx);
    if (!is_ok) {
        return -ENOMEM;
    }
    static const char hex[] = "0123456789abcdef";
    for (unsigned int i = 0; i < digest_len; i++) {
        out[2 * i] = hex[digest[i] >> 4];
        out[2 * i + 1] = hex[digest[i] & 15];
    }
    out[64] = '\0';
    return 0;
}

int
run_test_duplicate(struct run *run, const struct sieve_node *test)
{
    const struct sieve_arg *uniqueid = sieve_node_tag(test, SIEVE_TAG_UNIQUEID);
    const struct sieve_arg *header = sieve_node_tag(test, SIEVE_TAG_HEADER);
    const struct sieve_arg *handle = sieve_node_tag(test, SIEVE_TAG_HANDLE);
    const struct sieve_arg *seconds = sieve_node_tag(test, SIEVE_TAG_SECONDS);
    bool is_last = sieve_node_tag(test, SIEVE_TAG_LAST) != NULL;
    struct rstr id;
    int rc = 0;
    if (uniqueid != NULL) {
        rc = run_expand(run, &uniqueid->param->strings[0], &id);
    } else {
        struct rstr name = {"Message-ID", 10};
        if (header != NULL) {
            rc = run_expand(run, &header->param->strings[0], &name);
        }
        if (rc < 0) {
            return rc;
        }
        size_t f = run_field_next(run, 0, name.text, name.len);
        if (f == SIZE_MAX) {
            return 0; /* no id: not a duplicate, nothing recorded (RFC 7352 3.1) */
        }
        size_t len = run_field_value(run, f);
        id = (struct rstr){run->scratch, len};
    }
    if (rc < 0) {
        return rc;
    }
    if (id.len == 0) {
        return 0;
    }
    struct rstr h = {NULL, 0};
    if (handle != NULL) {
        rc = run_expand(run, &handle->param->strings[0], &h);
        if (rc < 0) {
            return rc;
        }
    }
    /* The key: the user, the handle (or none) and the id. */
    const char *user = run->message->user != NULL ? run->message->user : "";
    const struct rstr parts[] = {
        {"sieve duplicate", 15},
        {user, strlen(user)},
        h.text != NULL ? (struct rstr){"h", 1} : (struct rstr){"default", 7},
        h.text != NULL ? h : (struct rstr){"", 0},
        id,
    };
    char key[SIEVE_RUN_DUPLICATE_KEY_BYTES];
    rc = duplicate_key(parts, sizeof(parts) / sizeof(parts[0]), key);
    if (rc < 0) {
        return run_fail(run, rc, test->line, "duplicate: no memory for the key");
    }
    uint64_t max = run->env->duplicate_max_seconds != 0 ? run->env->duplicate_max_seconds
                                                        : DUPLICATE_MAX_DEFAULT;
    uint64_t period = run->env->duplicate_default_seconds != 0
                          ? run->env->duplicate_default_seconds
                          : DUPLICATE_DEFAULT_DEFAULT;
    if (seconds != NULL) {
        period = seconds->param->number;
    }
    if (period > max) {
        period = max;
    }
    int seen = 0;
    if (run->env->duplicate_seen != NULL) {
        seen = run->env->duplicate_seen(run->env->ctx, key);
        if (seen < 0) {
            return run_fail(run, -EINVAL, test->line, "duplicate: lookup failed (%d)", seen);
        }
    }
    /* Record when new; a seen id only with :last (its expiry restarts). */
    if (seen == 0 || is_last) {
        struct sieve_actions *actions = run->actions;
        size_t i = 0;
        while (i < actions->duplicate_count && strcmp(actions->duplicates[i].key, key) != 0) {
            i++;
        }
        if (i == actions->duplicate_count) {
            if (i >= SIEVE_RUN_DUPLICATES_MAX) {
                return run_fail(run, -E2BIG, test->line, "duplicate: more than %u marks",
                                (unsigned)SIEVE_RUN_DUPLICATES_MAX);
            }
            memcpy(actions->duplicates[i].key, key, sizeof(key));
            actions->duplicates[i].period_seconds = period;
            actions->duplicate_count++;
        } else if (period > actions->duplicates[i].period_seconds) {
            actions->duplicates[i].period_seconds = period;
        }
    }
    return seen > 0 ? 1 : 0;
}

/* ---- vacation (RFC 5230) ---- */

static const char *
arena_copy(struct run *run, const struct rstr *s)
{
    return sieve_arena_strdup(&run->actions->arena, s->text, s->len);
}

int
run_cmd_vacation(struct run *run, const struct sieve_node *cmd)
{
    const struct sieve_arg *days = sieve_node_tag(cmd, SIEVE_TAG_DAYS);
    const struct sieve_arg *seconds = sieve_node_tag(cmd, SIEVE_TAG_SECONDS);
    const struct sieve_arg *subject = sieve_node_tag(cmd, SIEVE_TAG_SUBJECT);
    const struct sieve_arg *from = sieve_node_tag(cmd, SIEVE_TAG_FROM);
    const struct sieve_arg *addresses = sieve_node_tag(cmd, SIEVE_TAG_ADDRESSES);
    const struct sieve_arg *handle = sieve_node_tag(cmd, SIEVE_TAG_HANDLE);
    bool is_mime = sieve_node_tag(cmd, SIEVE_TAG_MIME) != NULL;
    struct rstr reason;
    struct rstr subj = {NULL, 0};
    struct rstr fr = {NULL, 0};
    struct rstr hd = {NULL, 0};
    struct rstr *addr = NULL;
    size_t addr_count = 0;
    int rc = run_expand(run, &cmd->positional[0]->strings[0], &reason);
    if (rc == 0 && subject != NULL) {
        rc = run_expand(run, &subject->param->strings[0], &subj);
    }
    if (rc == 0 && from != NULL) {
        rc = run_expand(run, &from->param->strings[0], &fr);
    }
    if (rc == 0 && handle != NULL) {
        rc = run_expand(run, &handle->param->strings[0], &hd);
    }
    if (rc == 0 && addresses != NULL) {
        rc = run_expand_list(run, addresses->param, &addr, &addr_count);
    }
    if (rc < 0) {
        return rc;
    }
    const struct sieve_env *env = run->env;
    uint64_t min = env->vacation_min_seconds != 0 ? env->vacation_min_seconds
                                                  : VACATION_MIN_DEFAULT;
    uint64_t max = env->vacation_max_seconds != 0 ? env->vacation_max_seconds
                                                  : VACATION_MAX_DEFAULT;
    uint64_t period = env->vacation_default_seconds != 0 ? env->vacation_default_seconds
                                                         : VACATION_DEFAULT_DEFAULT;
    if (days != NULL) {
        uint64_t d = days->param->number;
        period = d > UINT64_MAX / DAY_SECONDS ? UINT64_MAX : d * DAY_SECONDS;
    } else if (seconds != NULL) {
        period = seconds->param->number;
    }
    if (period < min) {
        period = min;
    }
    if (period > max) {
        period = max;
    }
    struct sieve_vacation *v = sieve_arena_alloc(&run->actions->arena, sizeof(*v));
    if (v == NULL) {
        return run_fail(run, -ENOMEM, cmd->line, "out of memory");
    }
    v->reason = arena_copy(run, &reason);
    v->reason_len = reason.len;
    v->is_mime = is_mime;
    v->subject = subject != NULL ? arena_copy(run, &subj) : NULL;
    v->from = from != NULL ? arena_copy(run, &fr) : NULL;
    if (handle != NULL) {
        v->handle = arena_copy(run, &hd);
    } else {
        /* RFC 5230 4.2: made from the arguments, so a changed reply is
         * sent again (Pigeonhole joins reason, subject, from and :mime). */
        size_t n = reason.len + (subject != NULL ? subj.len : 17) +
                   (from != NULL ? fr.len : 14) + 10;
        char *p = sieve_arena_alloc(&run->actions->arena, n + 1);
        if (p != NULL) {
            int w = snprintf(p, n + 1, "%.*s%.*s%.*s%s", (int)reason.len, reason.text,
                             (int)(subject != NULL ? subj.len : 17),
                             subject != NULL ? subj.text : "<default-subject>",
                             (int)(from != NULL ? fr.len : 14),
                             from != NULL ? fr.text : "<default-from>",
                             is_mime ? "<MIME>" : "<NO-MIME>");
            ASSERT(w >= 0);
            ASSERT((size_t)w <= n);
        }
        v->handle = p;
    }
    v->address_count = 0;
    for (size_t i = 0; i < addr_count && i < SIEVE_RUN_VACATION_ADDRESSES_MAX; i++) {
        v->addresses[v->address_count++] = arena_copy(run, &addr[i]);
        if (v->addresses[i] == NULL) {
            return run_fail(run, -ENOMEM, cmd->line, "out of memory");
        }
    }
    v->period_seconds = period;
    v->reply_to = NULL;
    if (run->message->envelope_from != NULL) {
        struct rstr rt = {run->message->envelope_from, strlen(run->message->envelope_from)};
        v->reply_to = arena_copy(run, &rt);
        if (v->reply_to == NULL) {
            return run_fail(run, -ENOMEM, cmd->line, "out of memory");
        }
    }
    if (v->reason == NULL || v->handle == NULL || (subject != NULL && v->subject == NULL) ||
        (from != NULL && v->from == NULL)) {
        return run_fail(run, -ENOMEM, cmd->line, "out of memory");
    }
    struct sieve_action *a = NULL;
    rc = run_add_action(run, SIEVE_ACTION_VACATION, NULL, 0, NULL, cmd->line, &a);
    if (rc < 0) {
        return rc;
    }
    a->vacation = v;
    return 0;
}
