/*
 * tests/unit/test_smtp_hops.c - the Received: field counter: what counts
 * (field names at a header line's start, any case, blanks before the
 * colon), what does not (continuation lines, other fields that start
 * alike, anything after the empty line), and the same answer whatever
 * size the pieces come in.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "proto/smtp/smtp_hops.h"
#include "tests/unit/unit.h"

static uint32_t
count_whole(const char *text)
{
    struct smtp_hop_counter counter;
    smtp_hop_counter_init(&counter);
    smtp_hop_counter_feed(&counter, (const uint8_t *)text, strlen(text));
    return counter.received;
}

/* The same text fed in pieces of every size from 1 to its length: the
 * count must not depend on where the pieces end. */
static void
check_every_split(const char *text, uint32_t want)
{
    size_t len = strlen(text);
    CHECK(count_whole(text) == want);
    for (size_t piece = 1; piece <= len; piece++) {
        struct smtp_hop_counter counter;
        smtp_hop_counter_init(&counter);
        for (size_t at = 0; at < len; at += piece) {
            size_t n = len - at < piece ? len - at : piece;
            smtp_hop_counter_feed(&counter, (const uint8_t *)text + at, n);
        }
        CHECK(counter.received == want);
    }
}

static void
test_counts(void)
{
    check_every_split("", 0);
    check_every_split("Subject: x\r\n\r\nReceived: not a header\r\n", 0);
    /* RFC 5321 4.4 trace fields, as relays prepend them. */
    check_every_split("Received: from a.example by b.example; Fri, 4 Dec 2026 10:00:00 +0000\r\n"
                      "Received: from c.example\r\n\tby a.example; Fri, 4 Dec 2026 09:59:00 +0000\r\n"
                      "Subject: hi\r\n\r\nbody\r\n",
                      2);
    check_every_split("received: x\r\nRECEIVED : y\r\nReCeIvEd\t: z\r\n\r\n", 3);
    /* Alike but not the same field. */
    check_every_split("Received-SPF: pass\r\nReceivedx: 1\r\nX-Received: 2\r\nReceive: 3\r\n\r\n", 0);
    /* A continuation line that says Received: is part of another field. */
    check_every_split("Subject: loop\r\n Received: no\r\n\tReceived: no\r\n\r\n", 0);
    /* The header ends at the first empty line. */
    check_every_split("Received: 1\r\n\r\nReceived: 2\r\n", 1);
    /* A message without a body, cut in the middle of a name. */
    check_every_split("Received: 1\r\nReceiv", 1);
    /* A CR alone at a line start is not the empty line. */
    check_every_split("Received: 1\r\n\rReceived: 2\r\nReceived: 3\r\n\r\n", 2);
}

static void
test_many(void)
{
    /* 60 hops, as a loop between two servers builds them. */
    char text[60 * 40 + 32];
    size_t at = 0;
    for (int i = 0; i < 60; i++) {
        at += (size_t)snprintf(text + at, sizeof(text) - at, "Received: from hop%02d.example\r\n", i);
    }
    (void)snprintf(text + at, sizeof(text) - at, "\r\nbody\r\n");
    CHECK(count_whole(text) == 60);
}

int
main(void)
{
    test_counts();
    test_many();
    UNIT_DONE();
}
