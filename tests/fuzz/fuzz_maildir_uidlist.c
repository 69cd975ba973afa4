/*
 * tests/fuzz/fuzz_maildir_uidlist.c - libFuzzer harness for the Dovecot
 * Maildir metadata parsers: dovecot-uidlist, dovecot-keywords, the
 * subscriptions file and Maildir file names (store/maildir_*.c).
 *
 * Every input goes to all four parsers. Whatever parses must serialize,
 * parse again and serialize to the same bytes; every uidlist record must
 * be found again by its name and its UID; a parsed file name with flags
 * must rebuild to a name that parses to the same base, flags and
 * keywords. Inputs are exact-size heap copies so ASan sees any read past
 * them. A broken property aborts.
 *
 * Build: clang -g -O1 -fsanitize=fuzzer,address,undefined -I. \
 *   store/maildir_*.c core/assertions.c tests/fuzz/fuzz_maildir_uidlist.c
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/maildir_keywords.h"
#include "store/maildir_name.h"
#include "store/maildir_subscriptions.h"
#include "store/maildir_uidlist.h"
#include "tests/fuzz/fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
fuzz_name(const char *in, size_t size)
{
    struct maildir_name n;
    if (maildir_name_parse(in, size, &n) != 0) {
        return;
    }
    FUZZ_CHECK(n.base.len > 0 && n.base.len <= size);
    FUZZ_CHECK(memchr(n.base.ptr, ':', n.base.len) == NULL);
    char out[MAILDIR_NAME_BYTES_MAX + 1];
    size_t len = 0;
    int rc = maildir_name_build(n.base, n.flags, n.keywords, out, sizeof(out), &len);
    if (rc != 0) {
        FUZZ_CHECK(rc == -ENAMETOOLONG);
        return;
    }
    struct maildir_name again;
    FUZZ_CHECK(maildir_name_parse(out, len, &again) == 0);
    FUZZ_CHECK(again.base.len == n.base.len && memcmp(again.base.ptr, n.base.ptr, n.base.len) == 0);
    FUZZ_CHECK(again.flags == n.flags);
    FUZZ_CHECK(again.keywords == n.keywords);
    FUZZ_CHECK(again.has_flags && !again.is_info_odd);
    FUZZ_CHECK(again.has_size == n.has_size && again.size == n.size);
}

static void
fuzz_keywords(const char *in, size_t size)
{
    static struct maildir_keywords kw;
    static struct maildir_keywords kw2;
    static char out[MAILDIR_KEYWORDS_FILE_BYTES_MAX];
    static char out2[MAILDIR_KEYWORDS_FILE_BYTES_MAX];
    FUZZ_CHECK(maildir_keywords_parse(&kw, in, size, NULL) == 0);
    size_t len = 0;
    FUZZ_CHECK(maildir_keywords_serialize(&kw, out, sizeof(out), &len) == 0);
    size_t skipped = 1;
    FUZZ_CHECK(maildir_keywords_parse(&kw2, out, len, &skipped) == 0);
    FUZZ_CHECK(skipped == 0);
    FUZZ_CHECK(kw2.used == kw.used);
    size_t len2 = 0;
    FUZZ_CHECK(maildir_keywords_serialize(&kw2, out2, sizeof(out2), &len2) == 0);
    FUZZ_CHECK(len2 == len && memcmp(out, out2, len) == 0);
    for (unsigned i = 0; i < MAILDIR_KEYWORDS_MAX; i++) {
        const char *name = maildir_keywords_name(&kw, i);
        if (name != NULL) {
            int found = maildir_keywords_lookup(&kw, name, strlen(name));
            FUZZ_CHECK(found >= 0 && (unsigned)found <= i);
        }
    }
}

static void
fuzz_uidlist(const char *in, size_t size)
{
    struct maildir_uidlist list;
    int rc = maildir_uidlist_parse(&list, in, size, NULL);
    if (rc != 0) {
        FUZZ_CHECK(rc == -EINVAL || rc == -E2BIG || rc == -ENOMEM);
        maildir_uidlist_free(&list);
        return;
    }
    for (size_t i = 0; i < list.rec_count; i++) {
        const struct maildir_uidlist_rec *rec = &list.recs[i];
        FUZZ_CHECK(maildir_uidlist_lookup(&list, rec->name, rec->name_len) == rec);
        FUZZ_CHECK(maildir_uidlist_lookup_uid(&list, rec->uid) == rec);
        FUZZ_CHECK(rec->uid < list.next_uid);
    }
    size_t bytes = maildir_uidlist_serialized_bytes(&list) + 1;
    char *out = malloc(bytes);
    char *out2 = malloc(bytes);
    FUZZ_CHECK(out != NULL && out2 != NULL);
    size_t len = 0;
    FUZZ_CHECK(maildir_uidlist_serialize(&list, out, bytes, &len) == 0);
    struct maildir_uidlist again;
    FUZZ_CHECK(maildir_uidlist_parse(&again, out, len, NULL) == 0);
    FUZZ_CHECK(again.live_count == list.live_count);
    FUZZ_CHECK(again.next_uid == list.next_uid);
    size_t len2 = 0;
    FUZZ_CHECK(maildir_uidlist_serialized_bytes(&again) + 1 <= bytes);
    FUZZ_CHECK(maildir_uidlist_serialize(&again, out2, bytes, &len2) == 0);
    if (list.version_read == 3) {
        FUZZ_CHECK(len2 == len && memcmp(out, out2, len) == 0);
    }
    /* Edits keep the table consistent. */
    uint32_t uid = 0;
    rc = maildir_uidlist_append(&again, "fuzz.new.name", 13, "W1", &uid);
    FUZZ_CHECK(rc == 0 || rc == -EEXIST || rc == -EOVERFLOW);
    if (rc == 0) {
        FUZZ_CHECK(maildir_uidlist_lookup(&again, "fuzz.new.name", 13)->uid == uid);
        FUZZ_CHECK(maildir_uidlist_remove(&again, uid) == 0);
        FUZZ_CHECK(maildir_uidlist_lookup(&again, "fuzz.new.name", 13) == NULL);
    }
    /* Expunging the first record still serializes to a valid list. */
    if (again.live_count > 0) {
        size_t first = 0;
        while (again.recs[first].is_removed) {
            first++;
        }
        FUZZ_CHECK(maildir_uidlist_remove(&again, again.recs[first].uid) == 0);
        size_t bytes3 = maildir_uidlist_serialized_bytes(&again) + 1;
        char *out3 = malloc(bytes3);
        FUZZ_CHECK(out3 != NULL);
        size_t len3 = 0;
        FUZZ_CHECK(maildir_uidlist_serialize(&again, out3, bytes3, &len3) == 0);
        struct maildir_uidlist third;
        FUZZ_CHECK(maildir_uidlist_parse(&third, out3, len3, NULL) == 0);
        FUZZ_CHECK(third.live_count == again.live_count);
        FUZZ_CHECK(third.next_uid == again.next_uid);
        maildir_uidlist_free(&third);
        free(out3);
    }
    free(out);
    free(out2);
    maildir_uidlist_free(&again);
    maildir_uidlist_free(&list);
}

static void
fuzz_subscriptions(const char *in, size_t size)
{
    struct maildir_subscriptions subs;
    struct maildir_subscriptions again;
    maildir_subscriptions_init(&subs);
    maildir_subscriptions_init(&again);
    int rc = maildir_subscriptions_parse(&subs, in, size, '.', NULL);
    if (rc == 0) {
        size_t bytes = maildir_subscriptions_serialized_bytes(&subs);
        char *out = malloc(bytes + 1);
        char *out2 = malloc(bytes + 1);
        FUZZ_CHECK(out != NULL && out2 != NULL);
        size_t len = 0;
        FUZZ_CHECK(maildir_subscriptions_serialize(&subs, out, bytes, &len) == 0);
        size_t skipped = 1;
        FUZZ_CHECK(maildir_subscriptions_parse(&again, out, len, '.', &skipped) == 0);
        FUZZ_CHECK(skipped == 0);
        FUZZ_CHECK(again.live_count == subs.live_count);
        size_t len2 = 0;
        FUZZ_CHECK(maildir_subscriptions_serialize(&again, out2, bytes, &len2) == 0);
        FUZZ_CHECK(len2 == len && memcmp(out, out2, len) == 0);
        /* Listing unescapes into exact-size buffers: never longer. */
        size_t pos = 0;
        size_t listed = 0;
        for (;;) {
            char name[MAILDIR_SUBSCRIPTION_NAME_BYTES_MAX + 1];
            size_t name_len = 0;
            rc = maildir_subscriptions_next(&subs, &pos, '/', name, sizeof(name), &name_len);
            FUZZ_CHECK(rc == 0 || rc == 1);
            if (rc == 0) {
                break;
            }
            FUZZ_CHECK(name_len <= MAILDIR_SUBSCRIPTION_NAME_BYTES_MAX);
            listed++;
        }
        FUZZ_CHECK(listed == subs.live_count);
        free(out);
        free(out2);
    } else {
        FUZZ_CHECK(rc == -EINVAL || rc == -E2BIG || rc == -ENOMEM);
    }
    maildir_subscriptions_free(&again);
    maildir_subscriptions_free(&subs);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *in = malloc(size == 0 ? 1 : size);
    if (in == NULL) {
        return 0;
    }
    memcpy(in, data, size);
    fuzz_name(in, size);
    fuzz_keywords(in, size);
    fuzz_uidlist(in, size);
    fuzz_subscriptions(in, size);
    free(in);
    return 0;
}
