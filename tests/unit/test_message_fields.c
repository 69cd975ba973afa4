/*
 * tests/unit/test_message_fields.c - header fields by offset
 * (filters/message_fields.h): plain and folded fields, bare LF, the blank
 * line that ends the header, lines that are not fields, and a header cut
 * by the end of the buffer (never a field read past it).
 */
#include <stdlib.h>
#include <string.h>

#include "filters/message_fields.h"
#include "tests/unit/unit.h"

static void
test_walk(void)
{
    const char *text = "Return-Path: <a@b>\r\n"
                       "Subject: one\r\n two\r\n\tthree\r\n"
                       "from:x@y\n"
                       "X-Empty:\r\n"
                       "\r\n"
                       "Body: not a field\r\n";
    size_t len = strlen(text);
    size_t pos = 0;
    struct message_field f;
    CHECK(message_fields_next(text, len, &pos, &f));
    CHECK(message_field_is(text, &f, "return-path") && f.start == 0 && f.end == 20);
    CHECK_BYTES(text + f.value_start, f.value_end - f.value_start, " <a@b>", 6);
    CHECK(message_fields_next(text, len, &pos, &f));
    CHECK(message_field_is(text, &f, "SUBJECT"));
    CHECK_BYTES(text + f.value_start, f.value_end - f.value_start, " one\r\n two\r\n\tthree", 18);
    CHECK(f.end - f.start == strlen("Subject: one\r\n two\r\n\tthree\r\n"));
    CHECK(message_fields_next(text, len, &pos, &f));
    CHECK(message_field_is(text, &f, "From"));
    CHECK_BYTES(text + f.value_start, f.value_end - f.value_start, "x@y", 3);
    CHECK(message_fields_next(text, len, &pos, &f));
    CHECK(message_field_is(text, &f, "X-Empty") && f.value_start == f.value_end);
    CHECK(!message_fields_next(text, len, &pos, &f)); /* the blank line */
    CHECK(!message_field_is(text, &f, "Body"));
}

static void
test_not_fields(void)
{
    const char *bad[] = {
        " continuation first: x\r\n\r\n", /* folding with nothing before it */
        "No colon here\r\n\r\n",
        ": empty name\r\n\r\n",
        "Bad Name: x\r\n\r\n",   /* a space in the name */
        "Name\x01: x\r\n\r\n",   /* a control byte */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        size_t pos = 0;
        struct message_field f;
        CHECK(!message_fields_next(bad[i], strlen(bad[i]), &pos, &f));
        CHECK(pos == 0);
    }
}

/* A header cut anywhere: a field is given only when it is whole, and its
 * offsets stay inside the buffer (each cut is its own malloc'd copy, so
 * ASan sees any read past it). */
static void
test_cut_everywhere(void)
{
    const char *text = "A: 1\r\nB: 2\r\n 3\r\nC: 4\r\n\r\n";
    size_t len = strlen(text);
    for (size_t cut = 0; cut <= len; cut++) {
        char *copy = malloc(cut + 1);
        memcpy(copy, text, cut);
        size_t pos = 0;
        struct message_field f;
        size_t count = 0;
        while (message_fields_next(copy, cut, &pos, &f)) {
            CHECK(f.end <= cut && f.value_end <= f.end);
            count++;
        }
        /* "A" needs the byte after its line to know it is not folded. */
        size_t want = cut > 6 ? 1 : 0;
        want += cut > 16 ? 1 : 0;
        want += cut > 22 ? 1 : 0;
        CHECK(count == want);
        free(copy);
    }
}

int
main(void)
{
    test_walk();
    test_not_fields();
    test_cut_everywhere();
    UNIT_DONE();
}
