/*
 * tests/unit/test_delivery_message.c - the mailbox set of a message being
 * received: duplicates count once (many RCPTs of one alias never reach the
 * limit by repetition), the limit holds at max-1, max and max+1 distinct
 * mailboxes, and truncation after a refused recipient forgets exactly the
 * mailboxes added after the mark. A pool hands back the same message
 * emptied (no allocation once warm), and frees one that grew large.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "store/delivery.h"
#include "tests/unit/unit.h"

static void
name_of(size_t i, char *out, size_t out_bytes)
{
    (void)snprintf(out, out_bytes, "user%zu@example.test", i);
}

static void
test_duplicates(void)
{
    struct delivery_message *m = delivery_message_create();
    CHECK(m != NULL);
    CHECK(m->spool_fd == -1);
    int rc = 0;
    for (int round = 0; round < 3 * DELIVERY_MAILBOXES_MAX && rc == 0; round++) {
        rc = delivery_message_add_mailbox(m, "alice@example.test");
    }
    CHECK(rc == 0);
    CHECK(m->mailbox_count == 1);
    CHECK(delivery_message_add_mailbox(m, "bob@example.test") == 0);
    CHECK(delivery_message_add_mailbox(m, "alice@example.test") == 0);
    CHECK(m->mailbox_count == 2);
    CHECK_STR(delivery_message_mailbox(m, 0), "alice@example.test");
    CHECK_STR(delivery_message_mailbox(m, 1), "bob@example.test");
    delivery_message_destroy(&m);
    CHECK(m == NULL);
}

static void
test_limit(void)
{
    struct delivery_message *m = delivery_message_create();
    char name[64];
    int rc = 0;
    for (size_t i = 0; i < DELIVERY_MAILBOXES_MAX - 1 && rc == 0; i++) {
        name_of(i, name, sizeof(name));
        rc = delivery_message_add_mailbox(m, name);
    }
    CHECK(rc == 0);
    CHECK(m->mailbox_count == DELIVERY_MAILBOXES_MAX - 1);
    name_of(DELIVERY_MAILBOXES_MAX - 1, name, sizeof(name));
    CHECK(delivery_message_add_mailbox(m, name) == 0); /* max */
    CHECK(m->mailbox_count == DELIVERY_MAILBOXES_MAX);
    name_of(DELIVERY_MAILBOXES_MAX, name, sizeof(name));
    CHECK(delivery_message_add_mailbox(m, name) == -E2BIG); /* max + 1 */
    name_of(17, name, sizeof(name));
    CHECK(delivery_message_add_mailbox(m, name) == 0); /* a duplicate at max is fine */
    CHECK(m->mailbox_count == DELIVERY_MAILBOXES_MAX);
    delivery_message_destroy(&m);
}

static void
test_truncate(void)
{
    struct delivery_message *m = delivery_message_create();
    char name[64];
    for (size_t i = 0; i < 100; i++) {
        name_of(i, name, sizeof(name));
        CHECK(delivery_message_add_mailbox(m, name) == 0);
    }
    delivery_message_truncate(m, 40);
    CHECK(m->mailbox_count == 40);
    /* The forgotten ones can be added again; the kept ones are still known. */
    name_of(50, name, sizeof(name));
    CHECK(delivery_message_add_mailbox(m, name) == 0);
    CHECK(m->mailbox_count == 41);
    name_of(39, name, sizeof(name));
    CHECK(delivery_message_add_mailbox(m, name) == 0);
    CHECK(m->mailbox_count == 41);
    delivery_message_truncate(m, 0);
    CHECK(m->mailbox_count == 0);
    CHECK(delivery_message_add_mailbox(m, name) == 0);
    CHECK(m->mailbox_count == 1);
    delivery_message_destroy(&m);
}

static void
test_pool(void)
{
    struct delivery_message_pool pool = { 0 };
    struct delivery_message *m = delivery_message_take(&pool);
    CHECK(m != NULL);
    CHECK(m->spool_fd == -1);
    CHECK(delivery_message_add_mailbox(m, "alice@example.test") == 0);
    CHECK(delivery_message_add_mailbox(m, "bob@example.test") == 0);
    (void)snprintf(m->mail_from, sizeof(m->mail_from), "sender@example.test");
    m->rcpt_count = 2;
    struct delivery_message *first = m;
    delivery_message_give(&pool, &m);
    CHECK(m == NULL);
    CHECK(pool.free_count == 1);

    m = delivery_message_take(&pool);
    CHECK(m == first); /* reused, not allocated */
    CHECK(pool.free_count == 0);
    CHECK(m->mailbox_count == 0);
    CHECK(m->rcpt_count == 0);
    CHECK_STR(m->mail_from, "");
    /* The set forgot the old names: they are new again, and found once. */
    CHECK(delivery_message_add_mailbox(m, "bob@example.test") == 0);
    CHECK(delivery_message_add_mailbox(m, "bob@example.test") == 0);
    CHECK(m->mailbox_count == 1);
    CHECK_STR(delivery_message_mailbox(m, 0), "bob@example.test");

    /* A message that grew past the bound is freed, not kept. */
    char name[64];
    for (size_t i = 0; i < 5000; i++) {
        name_of(i, name, sizeof(name));
        CHECK(delivery_message_add_mailbox(m, name) == 0);
    }
    delivery_message_give(&pool, &m);
    CHECK(pool.free_count == 0);
    delivery_message_pool_drain(&pool);
    CHECK(pool.free_list == NULL);
}

/* Each mailbox keeps the envelope recipient that reached it first (Sieve's
 * envelope "to"); a mailbox added without one has "". Truncation and a
 * pool round trip keep names and recipients paired. */
static void
test_rcpt(void)
{
    struct delivery_message *m = delivery_message_create();
    CHECK(m != NULL);
    CHECK(delivery_message_add_mailbox_for(m, "alice@example.test", "alice+news@Example.TEST") == 0);
    CHECK(delivery_message_add_mailbox_for(m, "alice@example.test", "team@example.test") == 0);
    CHECK(delivery_message_add_mailbox(m, "bob@example.test") == 0);
    CHECK(delivery_message_add_mailbox_for(m, "carol@example.test", "carol@example.test") == 0);
    CHECK(m->mailbox_count == 3);
    CHECK_STR(delivery_message_mailbox(m, 0), "alice@example.test");
    CHECK_STR(delivery_message_mailbox_rcpt(m, 0), "alice+news@Example.TEST");
    CHECK_STR(delivery_message_mailbox(m, 1), "bob@example.test");
    CHECK_STR(delivery_message_mailbox_rcpt(m, 1), "");
    CHECK_STR(delivery_message_mailbox_rcpt(m, 2), "carol@example.test");
    delivery_message_truncate(m, 1);
    CHECK(delivery_message_add_mailbox_for(m, "dave@example.test", "d@example.test") == 0);
    CHECK_STR(delivery_message_mailbox(m, 1), "dave@example.test");
    CHECK_STR(delivery_message_mailbox_rcpt(m, 1), "d@example.test");
    /* The recipient's bound: SMTP_ADDRESS_BYTES_MAX bytes, and one more. */
    char rcpt[SMTP_ADDRESS_BYTES_MAX + 2];
    memset(rcpt, 'r', sizeof(rcpt) - 1);
    rcpt[SMTP_ADDRESS_BYTES_MAX + 1] = '\0';
    CHECK(delivery_message_add_mailbox_for(m, "erin@example.test", rcpt) == -EINVAL);
    rcpt[SMTP_ADDRESS_BYTES_MAX] = '\0';
    CHECK(delivery_message_add_mailbox_for(m, "erin@example.test", rcpt) == 0);
    CHECK(strlen(delivery_message_mailbox_rcpt(m, 2)) == SMTP_ADDRESS_BYTES_MAX);
    CHECK(m->mailbox_count == 3);
    delivery_message_destroy(&m);
}

int
main(void)
{
    test_duplicates();
    test_limit();
    test_truncate();
    test_pool();
    test_rcpt();
    UNIT_DONE();
}
