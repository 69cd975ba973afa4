/*
 * tests/unit/test_dkim_verify.c - signing and verification end to end,
 * through files on disk and a table-backed struct dns_source: round trips
 * for RSA 1024 and 2048 and Ed25519 in every canonicalization, then each
 * way a signature must not pass (header or body changed, a header added
 * past the oversigning, x= expired, key revoked, h= without From, RSA 512,
 * sha1, key type mismatch, t=s against a subdomain i=), each DNS outcome
 * (pending then answered, NXDOMAIN, TEMPFAIL), l= shorter and longer than
 * the body, the signature count bound, a header block over its bound, the
 * signing-key table, and the Authentication-Results text.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "filters/dkim_keys.h"
#include "filters/dkim_sign.h"
#include "filters/dkim_verify.h"
#include "tests/unit/test_dkim_dns.h"
#include "tests/unit/unit.h"

int main(void);

#define NOW 1700000000u

static char dir[] = "/tmp/test_dkim_XXXXXX";

static const char message[] = "From: Alice <alice@example.org>\r\n"
                              "To: bob@example.net\r\n"
                              "Subject: Hello   there\r\n"
                              "  folded line\r\n"
                              "Date: Fri, 04 Dec 2026 10:00:00 +0000\r\n"
                              "Message-ID: <1@example.org>\r\n"
                              "X-Unsigned: whatever\r\n"
                              "\r\n"
                              "Hello Bob,  \r\n"
                              "\r\n"
                              "a line\twith tabs\r\n"
                              "\r\n"
                              "\r\n";

/* Write bytes to a new file; returns an fd open for reading. */
static int
file_with(const char *bytes, size_t len)
{
    static unsigned counter;
    char path[128];
    (void)snprintf(path, sizeof(path), "%s/m%u", dir, counter++);
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    CHECK(fd >= 0);
    size_t done = 0;
    while (done < len) {
        ssize_t n = write(fd, bytes + done, len - done);
        CHECK(n > 0);
        if (n <= 0) {
            break;
        }
        done += (size_t)n;
    }
    return fd;
}

static struct dkim_key
make_key(const char *domain, const char *selector, EVP_PKEY *pkey)
{
    struct dkim_key key;
    memset(&key, 0, sizeof(key));
    (void)snprintf(key.domain, sizeof(key.domain), "%s", domain);
    (void)snprintf(key.selector, sizeof(key.selector), "%s", selector);
    key.pkey = pkey;
    key.type =
        EVP_PKEY_get_base_id(pkey) == EVP_PKEY_ED25519 ? DKIM_KEY_TYPE_ED25519 : DKIM_KEY_TYPE_RSA;
    key.bits = (unsigned)EVP_PKEY_get_bits(pkey);
    return key;
}

/* Sign msg with keys; the signed message (fields + msg) into out. */
static size_t
sign_into(const struct dkim_key *const *keys, size_t count, const char *msg, size_t msg_len,
          const struct dkim_sign_options *options, char *out, size_t out_bytes)
{
    int fd = file_with(msg, msg_len);
    size_t len = 0;
    int rc = dkim_sign(keys, count, fd, options, out, out_bytes, &len);
    CHECK(rc == 0);
    (void)close(fd);
    CHECK(len + msg_len <= out_bytes);
    if (rc != 0 || len + msg_len > out_bytes) {
        return 0;
    }
    memcpy(out + len, msg, msg_len);
    return len + msg_len;
}

struct outcome {
    size_t count;
    struct dkim_result results[DKIM_VERIFY_SIGNATURES_MAX + 1];
};

static struct outcome
verify_bytes(const char *bytes, size_t len, struct test_dns *dns, uint64_t now_s)
{
    struct outcome outcome = {0};
    int fd = file_with(bytes, len);
    struct dkim_verify *ctx = NULL;
    CHECK(dkim_verify_prepare(fd, now_s, &ctx) == 0);
    (void)close(fd);
    if (ctx == NULL) {
        return outcome;
    }
    struct dns_source source = test_dns_source(dns);
    const struct dkim_result *results = NULL;
    int rc = dkim_verify_finish(ctx, &source, &results, &outcome.count);
    CHECK(rc == 0);
    if (rc == 0) {
        memcpy(outcome.results, results, outcome.count * sizeof(*results));
    }
    dkim_verify_destroy(&ctx);
    CHECK(ctx == NULL);
    return outcome;
}

static void
publish(struct test_dns *dns, const char *name, EVP_PKEY *pkey)
{
    static char records[TEST_DNS_ENTRIES_MAX][DKIM_KEY_RECORD_BYTES_MAX];
    char *text = records[dns->entry_count];
    int len = dkim_keys_record(pkey, text, DKIM_KEY_RECORD_BYTES_MAX);
    CHECK(len > 0);
    CHECK(test_dns_add(dns, name, text, (size_t)len, DNS_STATUS_OK) != NULL);
}

static EVP_PKEY *rsa512;
static EVP_PKEY *rsa1024;
static EVP_PKEY *rsa2048;
static EVP_PKEY *ed25519;
static char signed_buf[1 << 21];

static void
options_at(struct dkim_sign_options *options, enum dkim_canon header, enum dkim_canon body)
{
    dkim_sign_options_default(options);
    options->canon_header = header;
    options->canon_body = body;
    options->now_s = NOW;
}

static void
test_round_trip(void)
{
    EVP_PKEY *keys[] = {rsa1024, rsa2048, ed25519};
    const char *algorithms[] = {"rsa-sha256", "rsa-sha256", "ed25519-sha256"};
    for (size_t k = 0; k < 3; k++) {
        for (int canon = 0; canon < 4; canon++) {
            struct test_dns dns = {0};
            publish(&dns, "sel._domainkey.example.org", keys[k]);
            struct dkim_key key = make_key("example.org", "sel", keys[k]);
            const struct dkim_key *list[] = {&key};
            struct dkim_sign_options options;
            options_at(&options, (canon & 1) ? DKIM_CANON_RELAXED : DKIM_CANON_SIMPLE,
                       (canon & 2) ? DKIM_CANON_RELAXED : DKIM_CANON_SIMPLE);
            size_t len = sign_into(list, 1, message, sizeof(message) - 1, &options, signed_buf,
                                   sizeof(signed_buf));
            CHECK(strncmp(signed_buf, "DKIM-Signature: v=1; a=", 23) == 0);
            /* Folded: no line over 78 columns, CRLF only. */
            size_t column = 0;
            size_t sig_len = (size_t)(strstr(signed_buf, message) - signed_buf);
            for (size_t i = 0; i < sig_len; i++) {
                if (signed_buf[i] == '\n') {
                    CHECK(i > 0 && signed_buf[i - 1] == '\r');
                    column = 0;
                } else if (signed_buf[i] != '\r') {
                    column++;
                    CHECK(column <= 78);
                }
            }
            CHECK(memmem(signed_buf, sig_len, "t=1700000000;", 13) != NULL);
            CHECK(memmem(signed_buf, sig_len, "x=", 2) == NULL);
            struct outcome o = verify_bytes(signed_buf, len, &dns, NOW + 60);
            CHECK(o.count == 1);
            if (o.results[0].code != DKIM_RESULT_PASS) {
                fprintf(stderr, "key %zu canon %d: %s\n", k, canon, o.results[0].reason);
            }
            CHECK(o.results[0].code == DKIM_RESULT_PASS);
            CHECK_STR(o.results[0].domain, "example.org");
            CHECK_STR(o.results[0].selector, "sel");
            CHECK_STR(o.results[0].algorithm, algorithms[k]);
            CHECK_STR(o.results[0].identity, "");
            const char *b = strstr(signed_buf, " b=");
            CHECK(b != NULL && strlen(o.results[0].b_prefix) == 8 &&
                  strncmp(b + 3, o.results[0].b_prefix, 8) == 0);
        }
    }
}

/* Sign message relaxed/relaxed (or simple/simple) with key, change the
 * signed message with edit, verify. */
static struct outcome
tampered(EVP_PKEY *pkey, bool is_simple, const char *from, const char *to)
{
    struct test_dns dns = {0};
    publish(&dns, "sel._domainkey.example.org", pkey);
    struct dkim_key key = make_key("example.org", "sel", pkey);
    const struct dkim_key *list[] = {&key};
    struct dkim_sign_options options;
    enum dkim_canon canon = is_simple ? DKIM_CANON_SIMPLE : DKIM_CANON_RELAXED;
    options_at(&options, canon, canon);
    size_t len =
        sign_into(list, 1, message, sizeof(message) - 1, &options, signed_buf, sizeof(signed_buf));
    static char edited[8192];
    char *at = strstr(signed_buf, from);
    CHECK(at != NULL && len < sizeof(edited) - strlen(to));
    size_t head = (size_t)(at - signed_buf);
    memcpy(edited, signed_buf, head);
    memcpy(edited + head, to, strlen(to));
    memcpy(edited + head + strlen(to), at + strlen(from), len - head - strlen(from));
    return verify_bytes(edited, len - strlen(from) + strlen(to), &dns, NOW);
}

static void
test_tampering(void)
{
    EVP_PKEY *keys[] = {rsa2048, ed25519};
    for (size_t k = 0; k < 2; k++) {
        struct outcome o = tampered(keys[k], false, "Subject: Hello", "Subject: Hullo");
        CHECK(o.count == 1 && o.results[0].code == DKIM_RESULT_FAIL);
        CHECK(strstr(o.results[0].reason, "did not verify") != NULL);
        o = tampered(keys[k], false, "Hello Bob", "Hello Rob");
        CHECK(o.count == 1 && o.results[0].code == DKIM_RESULT_FAIL);
        CHECK_STR(o.results[0].reason, "body hash mismatch");
        /* A second From (oversigned) added above the first. */
        o = tampered(keys[k], false, "From: Alice",
                     "From: Mallory <m@evil.example>\r\nFrom: Alice");
        CHECK(o.count == 1 && o.results[0].code == DKIM_RESULT_FAIL);
        /* A Cc added, although the message had none: oversigned too. */
        o = tampered(keys[k], false, "To: bob", "Cc: eve@example.net\r\nTo: bob");
        CHECK(o.count == 1 && o.results[0].code == DKIM_RESULT_FAIL);
        /* An unsigned field may be added; relaxed survives whitespace changes. */
        o = tampered(keys[k], false, "X-Unsigned:", "X-Added: 1\r\nX-Unsigned:");
        CHECK(o.count == 1 && o.results[0].code == DKIM_RESULT_PASS);
        o = tampered(keys[k], false, "Subject: Hello   there", "subject:Hello there ");
        CHECK(o.count == 1 && o.results[0].code == DKIM_RESULT_PASS);
        o = tampered(keys[k], false, "Hello Bob,  \r\n", "Hello  Bob,\r\n");
        CHECK(o.count == 1 && o.results[0].code == DKIM_RESULT_PASS);
        /* simple does not. */
        o = tampered(keys[k], true, "Subject: Hello   there", "Subject: Hello there");
        CHECK(o.count == 1 && o.results[0].code == DKIM_RESULT_FAIL);
        o = tampered(keys[k], true, "Hello Bob,  \r\n", "Hello Bob,\r\n");
        CHECK(o.count == 1 && o.results[0].code == DKIM_RESULT_FAIL);
        /* Empty lines at the end do not count, in either form. */
        o = tampered(keys[k], true, "tabs\r\n\r\n\r\n", "tabs\r\n");
        CHECK(o.count == 1 && o.results[0].code == DKIM_RESULT_PASS);
    }
}

static void
test_expiry_and_length(void)
{
    struct test_dns dns = {0};
    publish(&dns, "sel._domainkey.example.org", ed25519);
    struct dkim_key key = make_key("example.org", "sel", ed25519);
    const struct dkim_key *list[] = {&key};
    struct dkim_sign_options options;
    options_at(&options, DKIM_CANON_RELAXED, DKIM_CANON_RELAXED);
    options.expire_after_s = 3600;
    size_t len =
        sign_into(list, 1, message, sizeof(message) - 1, &options, signed_buf, sizeof(signed_buf));
    CHECK(strstr(signed_buf, "x=1700003600;") != NULL);
    struct outcome o = verify_bytes(signed_buf, len, &dns, NOW + 3600);
    CHECK(o.count == 1 && o.results[0].code == DKIM_RESULT_PASS);
    o = verify_bytes(signed_buf, len, &dns, NOW + 3601);
    CHECK(o.count == 1 && o.results[0].code == DKIM_RESULT_FAIL);
    CHECK(strstr(o.results[0].reason, "expired") != NULL);

    /* t= in the future: taken within DKIM_CLOCK_SKEW_S, refused past it. */
    o = verify_bytes(signed_buf, len, &dns, NOW - DKIM_CLOCK_SKEW_S);
    CHECK(o.count == 1 && o.results[0].code == DKIM_RESULT_PASS);
    o = verify_bytes(signed_buf, len, &dns, NOW - DKIM_CLOCK_SKEW_S - 1);
    CHECK(o.count == 1 && o.results[0].code == DKIM_RESULT_PERMERROR);
    CHECK(strstr(o.results[0].reason, "future") != NULL);

    /* l= shorter than the body: text appended after it does not break it. */
    options_at(&options, DKIM_CANON_RELAXED, DKIM_CANON_RELAXED);
    options.has_length = true;
    options.length = 10;
    len =
        sign_into(list, 1, message, sizeof(message) - 1, &options, signed_buf, sizeof(signed_buf));
    CHECK(strstr(signed_buf, " l=10;") != NULL);
    o = verify_bytes(signed_buf, len, &dns, NOW);
    CHECK(o.count == 1 && o.results[0].code == DKIM_RESULT_PASS);
    static const char extra[] = "appended by someone\r\n";
    memcpy(signed_buf + len, extra, sizeof(extra) - 1);
    o = verify_bytes(signed_buf, len + sizeof(extra) - 1, &dns, NOW);
    CHECK(o.count == 1 && o.results[0].code == DKIM_RESULT_PASS);
    /* ... but a change inside the first l= bytes does. */
    char *hello = strstr(signed_buf, "Hello Bob");
    hello[1] = 'a';
    o = verify_bytes(signed_buf, len, &dns, NOW);
    CHECK(o.count == 1 && o.results[0].code == DKIM_RESULT_FAIL);
    /* l= longer than the body: permerror. Relaxed canonical body is 32 bytes. */
    options.length = 33;
    len =
        sign_into(list, 1, message, sizeof(message) - 1, &options, signed_buf, sizeof(signed_buf));
    o = verify_bytes(signed_buf, len, &dns, NOW);
    CHECK(o.count == 1 && o.results[0].code == DKIM_RESULT_PERMERROR);
    CHECK(strstr(o.results[0].reason, "l=33") != NULL);
    options.length = 32;
    len =
        sign_into(list, 1, message, sizeof(message) - 1, &options, signed_buf, sizeof(signed_buf));
    o = verify_bytes(signed_buf, len, &dns, NOW);
    CHECK(o.count == 1 && o.results[0].code == DKIM_RESULT_PASS);
}

/* A hand-written signature in front of message. */
static struct outcome
with_field(const char *field, struct test_dns *dns)
{
    size_t n = (size_t)snprintf(signed_buf, sizeof(signed_buf), "%s\r\n%s", field, message);
    return verify_bytes(signed_buf, n, dns, NOW);
}

static void
test_keys_and_dns(void)
{
    struct dkim_key key = make_key("example.org", "sel", rsa2048);
    const struct dkim_key *list[] = {&key};
    struct dkim_sign_options options;
    options_at(&options, DKIM_CANON_RELAXED, DKIM_CANON_RELAXED);
    size_t len =
        sign_into(list, 1, message, sizeof(message) - 1, &options, signed_buf, sizeof(signed_buf));
    static char copy[8192];
    memcpy(copy, signed_buf, len);

    /* Revoked key. */
    struct test_dns dns = {0};
    test_dns_add(&dns, "sel._domainkey.example.org", "v=DKIM1; k=rsa; p=", 18, DNS_STATUS_OK);
    struct outcome o = verify_bytes(copy, len, &dns, NOW);
    CHECK(o.count == 1 && o.results[0].code == DKIM_RESULT_PERMERROR);
    CHECK(strstr(o.results[0].reason, "revoked") != NULL);
    /* No key: NXDOMAIN and NODATA are permerror; TEMPFAIL temperror; PERMFAIL temperror. */
    enum dns_status statuses[] = {DNS_STATUS_NXDOMAIN, DNS_STATUS_NODATA, DNS_STATUS_TEMPFAIL,
                                  DNS_STATUS_PERMFAIL};
    enum dkim_result_code codes[] = {DKIM_RESULT_PERMERROR, DKIM_RESULT_PERMERROR,
                                     DKIM_RESULT_TEMPERROR, DKIM_RESULT_TEMPERROR};
    for (size_t i = 0; i < 4; i++) {
        memset(&dns, 0, sizeof(dns));
        test_dns_add(&dns, "sel._domainkey.example.org", NULL, 0, statuses[i]);
        o = verify_bytes(copy, len, &dns, NOW);
        CHECK(o.count == 1 && o.results[0].code == codes[i]);
    }
    /* Key record syntax error; key type mismatch; h= without sha256; bad p=. */
    const char *records[] = {"v=DKIM1; k=rsa; p=YW!j", "v=DKIM1; k=ed25519; p=YWJj",
                             "v=DKIM1; h=sha1; p=YWJj", "v=DKIM1; p=YWJj"};
    for (size_t i = 0; i < 4; i++) {
        memset(&dns, 0, sizeof(dns));
        test_dns_add(&dns, "sel._domainkey.example.org", records[i], strlen(records[i]),
                     DNS_STATUS_OK);
        o = verify_bytes(copy, len, &dns, NOW);
        CHECK(o.count == 1 && o.results[0].code == DKIM_RESULT_PERMERROR);
    }

    /* Pending: -EINPROGRESS until answered; the rerun asks only for what
     * it lacks, and a third call asks nothing. */
    memset(&dns, 0, sizeof(dns));
    publish(&dns, "sel._domainkey.example.org", rsa2048);
    dns.entries[0].is_pending = true;
    int fd = file_with(copy, len);
    struct dkim_verify *ctx = NULL;
    CHECK(dkim_verify_prepare(fd, NOW, &ctx) == 0);
    (void)close(fd);
    struct dns_source source = test_dns_source(&dns);
    const struct dkim_result *results = NULL;
    size_t count = 99;
    CHECK(dkim_verify_finish(ctx, &source, &results, &count) == -EINPROGRESS);
    CHECK(dkim_verify_finish(ctx, &source, &results, &count) == -EINPROGRESS);
    CHECK(dns.lookup_count == 2);
    dns.entries[0].is_pending = false;
    CHECK(dkim_verify_finish(ctx, &source, &results, &count) == 0);
    CHECK(count == 1 && results[0].code == DKIM_RESULT_PASS);
    CHECK(dns.lookup_count == 3);
    CHECK(dkim_verify_finish(ctx, &source, &results, &count) == 0);
    CHECK(dns.lookup_count == 3 && count == 1 && results[0].code == DKIM_RESULT_PASS);
    dkim_verify_destroy(&ctx);
    dkim_verify_destroy(&ctx); /* NULL: nothing */

    /* Testing key: a failure becomes neutral; a pass says testing. */
    memset(&dns, 0, sizeof(dns));
    char record[DKIM_KEY_RECORD_BYTES_MAX];
    int rlen = dkim_keys_record(rsa2048, record, sizeof(record));
    CHECK(rlen > 0);
    static char testing[DKIM_KEY_RECORD_BYTES_MAX + 16];
    int tlen = snprintf(testing, sizeof(testing), "v=DKIM1; t=y; %s", record + strlen("v=DKIM1; "));
    test_dns_add(&dns, "sel._domainkey.example.org", testing, (size_t)tlen, DNS_STATUS_OK);
    o = verify_bytes(copy, len, &dns, NOW);
    CHECK(o.count == 1 && o.results[0].code == DKIM_RESULT_PASS && o.results[0].is_testing);
    char *subject = strstr(copy, "Subject: Hello");
    subject[9] = 'J';
    o = verify_bytes(copy, len, &dns, NOW);
    CHECK(o.count == 1 && o.results[0].code == DKIM_RESULT_NEUTRAL);
    CHECK(strstr(o.results[0].reason, "testing") != NULL);

    /* RSA 512: signed fine, refused on verification (RFC 8301). */
    memset(&dns, 0, sizeof(dns));
    publish(&dns, "weak._domainkey.example.org", rsa512);
    struct dkim_key weak = make_key("example.org", "weak", rsa512);
    const struct dkim_key *weak_list[] = {&weak};
    len = sign_into(weak_list, 1, message, sizeof(message) - 1, &options, signed_buf,
                    sizeof(signed_buf));
    o = verify_bytes(signed_buf, len, &dns, NOW);
    CHECK(o.count == 1 && o.results[0].code == DKIM_RESULT_FAIL);
    CHECK(strstr(o.results[0].reason, "512") != NULL);

    /* Hand-written signatures: h= without From, sha1, t=s with a subdomain i=. */
    memset(&dns, 0, sizeof(dns));
    publish(&dns, "sel._domainkey.example.org", rsa2048);
    o = with_field("DKIM-Signature: v=1; a=rsa-sha256; d=example.org; s=sel; h=to:subject;\r\n"
                   " bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=; b=YWJj",
                   &dns);
    CHECK(o.count == 1 && o.results[0].code == DKIM_RESULT_PERMERROR);
    CHECK(strstr(o.results[0].reason, "From") != NULL);
    CHECK_STR(o.results[0].domain, "example.org");
    CHECK_STR(o.results[0].b_prefix, "YWJj");
    o = with_field("DKIM-Signature: v=1; a=rsa-sha1; d=example.org; s=sel; h=from;\r\n"
                   " bh=2jmj7l5rSw0yVb/vlWAYkK/YBwk=; b=YWJj",
                   &dns);
    CHECK(o.count == 1 && o.results[0].code == DKIM_RESULT_FAIL);
    CHECK(strstr(o.results[0].reason, "8301") != NULL);
    CHECK_STR(o.results[0].algorithm, "rsa-sha1");
    o = with_field("DKIM-Signature: garbage", &dns);
    CHECK(o.count == 1 && o.results[0].code == DKIM_RESULT_PERMERROR);
    CHECK_STR(o.results[0].domain, "");
    memset(&dns, 0, sizeof(dns));
    static char strict[DKIM_KEY_RECORD_BYTES_MAX + 16];
    int slen = snprintf(strict, sizeof(strict), "v=DKIM1; t=s; %s", record + strlen("v=DKIM1; "));
    test_dns_add(&dns, "sel._domainkey.example.org", strict, (size_t)slen, DNS_STATUS_OK);
    o = with_field("DKIM-Signature: v=1; a=rsa-sha256; d=example.org; s=sel; h=from;\r\n"
                   " i=a@sub.example.org; bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=; b=YWJj",
                   &dns);
    CHECK(o.count == 1 && o.results[0].code == DKIM_RESULT_PERMERROR);
    CHECK(strstr(o.results[0].reason, "t=s") != NULL);
    CHECK_STR(o.results[0].identity, "a@sub.example.org");
    /* The same with i= in d= itself reaches the signature check (and fails it). */
    o = with_field("DKIM-Signature: v=1; a=rsa-sha256; d=example.org; s=sel; h=from;\r\n"
                   " i=a@example.org; bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=; b=YWJj",
                   &dns);
    CHECK(o.count == 1 && o.results[0].code == DKIM_RESULT_FAIL);
    /* A well-formed signature whose bh= is another body's: the body hash decides. */
    memset(&dns, 0, sizeof(dns));
    publish(&dns, "sel._domainkey.example.org", rsa2048);
    o = with_field("DKIM-Signature: v=1; a=rsa-sha256; d=example.org; s=sel; h=from;\r\n"
                   " bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=; b=YWJj",
                   &dns);
    CHECK(o.count == 1 && o.results[0].code == DKIM_RESULT_FAIL);
    CHECK_STR(o.results[0].reason, "body hash mismatch");

    /* No signature at all: no results. */
    o = verify_bytes(message, sizeof(message) - 1, &dns, NOW);
    CHECK(o.count == 0);
}

static void
test_several(void)
{
    /* An RSA and an Ed25519 key for one domain: two signatures, both pass. */
    struct test_dns dns = {0};
    publish(&dns, "r._domainkey.example.org", rsa1024);
    publish(&dns, "e._domainkey.example.org", ed25519);
    struct dkim_key rsa = make_key("example.org", "r", rsa1024);
    struct dkim_key ed = make_key("example.org", "e", ed25519);
    const struct dkim_key *list[] = {&rsa, &ed};
    struct dkim_sign_options options;
    options_at(&options, DKIM_CANON_RELAXED, DKIM_CANON_SIMPLE);
    size_t len =
        sign_into(list, 2, message, sizeof(message) - 1, &options, signed_buf, sizeof(signed_buf));
    struct outcome o = verify_bytes(signed_buf, len, &dns, NOW);
    CHECK(o.count == 2);
    CHECK(o.results[0].code == DKIM_RESULT_PASS && o.results[1].code == DKIM_RESULT_PASS);
    CHECK_STR(o.results[0].algorithm, "rsa-sha256");
    CHECK_STR(o.results[1].algorithm, "ed25519-sha256");

    /* The signature bound: max signatures are all checked; max + 1 adds a policy result. */
    static char many[DKIM_SIG_FIELD_BYTES_MAX * 2];
    for (unsigned extra = 0; extra < 2; extra++) {
        size_t n = 0;
        for (unsigned i = 0; i < DKIM_VERIFY_SIGNATURES_MAX - 2 + extra; i++) {
            n += (size_t)snprintf(many + n, sizeof(many) - n,
                                  "DKIM-Signature: v=1; a=rsa-sha256; d=other%u.example; s=s; "
                                  "h=from; bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=; "
                                  "b=YWJj\r\n",
                                  i);
        }
        memcpy(many + n, signed_buf, len);
        o = verify_bytes(many, n + len, &dns, NOW);
        if (extra == 0) {
            CHECK(o.count == DKIM_VERIFY_SIGNATURES_MAX);
            CHECK(o.results[DKIM_VERIFY_SIGNATURES_MAX - 1].code == DKIM_RESULT_PASS);
        } else {
            CHECK(o.count == DKIM_VERIFY_SIGNATURES_MAX + 1);
            CHECK(o.results[DKIM_VERIFY_SIGNATURES_MAX - 1].code == DKIM_RESULT_PASS);
            CHECK(o.results[DKIM_VERIFY_SIGNATURES_MAX].code == DKIM_RESULT_POLICY);
            CHECK(strstr(o.results[DKIM_VERIFY_SIGNATURES_MAX].reason, "1 more") != NULL);
        }
        CHECK(o.results[0].code == DKIM_RESULT_PERMERROR); /* NXDOMAIN */
    }
}

static void
test_large(void)
{
    /* A body of ~1.5 MiB crosses many read chunks. */
    size_t body = 3u << 19;
    size_t head = sizeof(message) - 1;
    char *big = malloc(head + body);
    CHECK(big != NULL);
    memcpy(big, message, head);
    for (size_t i = 0; i < body; i++) {
        big[head + i] = (i % 73 == 71) ? '\r' : (i % 73 == 72) ? '\n' : (char)('a' + i % 26);
    }
    struct test_dns dns = {0};
    publish(&dns, "sel._domainkey.example.org", ed25519);
    struct dkim_key key = make_key("example.org", "sel", ed25519);
    const struct dkim_key *list[] = {&key};
    struct dkim_sign_options options;
    options_at(&options, DKIM_CANON_SIMPLE, DKIM_CANON_SIMPLE);
    size_t len = sign_into(list, 1, big, head + body, &options, signed_buf, sizeof(signed_buf));
    struct outcome o = verify_bytes(signed_buf, len, &dns, NOW);
    CHECK(o.count == 1 && o.results[0].code == DKIM_RESULT_PASS);
    free(big);

    /* A header block over its bound: one permerror, and signing refuses. */
    size_t over = (DKIM_HEADER_BLOCK_BYTES_MAX / 100 + 2) * 100;
    char *fat = malloc(over);
    CHECK(fat != NULL);
    for (size_t i = 0; i < over; i += 100) {
        memcpy(fat + i, "X-Filler: ", 10);
        memset(fat + i + 10, 'f', 88);
        memcpy(fat + i + 98, "\r\n", 2);
    }
    o = verify_bytes(fat, over, &dns, NOW);
    CHECK(o.count == 1 && o.results[0].code == DKIM_RESULT_PERMERROR);
    int fd = file_with(fat, over);
    size_t out_len = 0;
    CHECK(dkim_sign(list, 1, fd, &options, signed_buf, sizeof(signed_buf), &out_len) == -EMSGSIZE);
    (void)close(fd);
    /* More fields than DKIM_HEADER_FIELDS_MAX in a small block: the same. */
    size_t fields = DKIM_HEADER_FIELDS_MAX + 1;
    for (size_t i = 0; i < fields; i++) {
        memcpy(fat + 4 * i, "a:\r\n", 4);
    }
    memcpy(fat + 4 * fields, "\r\n", 2);
    o = verify_bytes(fat, 4 * fields + 2, &dns, NOW);
    CHECK(o.count == 1 && o.results[0].code == DKIM_RESULT_PERMERROR);
    o = verify_bytes(fat + 4, 4 * (fields - 1) + 2, &dns, NOW);
    CHECK(o.count == 0);
    free(fat);

    /* Output space for the signer: too small says -ENOSPC. */
    fd = file_with(message, sizeof(message) - 1);
    CHECK(dkim_sign(list, 1, fd, &options, signed_buf, 100, &out_len) == -ENOSPC);
    (void)close(fd);
}

static void
test_key_table(void)
{
    /* Key files: PKCS #8 and traditional PEM, and the errors. */
    char rsa_path[128];
    char ed_path[128];
    char trad_path[128];
    char junk_path[128];
    char weak_path[128];
    (void)snprintf(rsa_path, sizeof(rsa_path), "%s/rsa.pem", dir);
    (void)snprintf(ed_path, sizeof(ed_path), "%s/ed.pem", dir);
    (void)snprintf(trad_path, sizeof(trad_path), "%s/trad.pem", dir);
    (void)snprintf(junk_path, sizeof(junk_path), "%s/junk.pem", dir);
    (void)snprintf(weak_path, sizeof(weak_path), "%s/weak.pem", dir);
    char err[512] = "";
    CHECK(dkim_keys_write_private(rsa_path, rsa1024, err, sizeof(err)) == 0);
    CHECK(dkim_keys_write_private(ed_path, ed25519, err, sizeof(err)) == 0);
    CHECK(dkim_keys_write_private(weak_path, rsa512, err, sizeof(err)) == 0);
    struct stat st;
    CHECK(stat(rsa_path, &st) == 0 && (st.st_mode & 0777) == 0600);
    /* Never replaces. */
    CHECK(dkim_keys_write_private(rsa_path, rsa2048, err, sizeof(err)) == -EEXIST);
    CHECK(strstr(err, rsa_path) != NULL);
    BIO *bio = BIO_new_file(trad_path, "w");
    CHECK(bio != NULL &&
          PEM_write_bio_PrivateKey_traditional(bio, rsa2048, NULL, NULL, 0, NULL, NULL) == 1);
    BIO_free(bio);
    FILE *f = fopen(trad_path, "r");
    char line[64] = "";
    CHECK(f != NULL && fgets(line, sizeof(line), f) != NULL);
    CHECK(strncmp(line, "-----BEGIN RSA PRIVATE KEY-----", 31) == 0);
    (void)fclose(f);
    f = fopen(junk_path, "w");
    CHECK(f != NULL && fputs("not a key\n", f) >= 0);
    (void)fclose(f);

    char v1[256], v2[256], v3[256];
    (void)snprintf(v1, sizeof(v1), "Example.ORG  rsa  %s", rsa_path);
    (void)snprintf(v2, sizeof(v2), "example.org\ted\t%s", ed_path);
    (void)snprintf(v3, sizeof(v3), "other.example trad %s ", trad_path);
    const char *values[] = {v1, v2, v3};
    struct dkim_keys *keys = NULL;
    CHECK(dkim_keys_load(values, 3, &keys, err, sizeof(err)) == 0);
    CHECK(dkim_keys_count(keys) == 3);
    const struct dkim_key *found[4];
    CHECK(dkim_keys_for_domain(keys, "EXAMPLE.org", found, 4) == 2);
    CHECK(found[0]->type == DKIM_KEY_TYPE_RSA && found[0]->bits == 1024);
    CHECK_STR(found[0]->domain, "example.org");
    CHECK(found[1]->type == DKIM_KEY_TYPE_ED25519);
    CHECK(dkim_keys_for_domain(keys, "example.org", found, 1) == 1);
    CHECK(dkim_keys_for_domain(keys, "other.example", found, 4) == 1 && found[0]->bits == 2048);
    CHECK(dkim_keys_for_domain(keys, "sub.example.org", found, 4) == 0);
    CHECK(dkim_keys_for_domain(keys, "org", found, 4) == 0);
    /* The loaded keys sign, and verify. */
    struct test_dns dns = {0};
    publish(&dns, "rsa._domainkey.example.org", rsa1024);
    publish(&dns, "ed._domainkey.example.org", ed25519);
    size_t n = dkim_keys_for_domain(keys, "example.org", found, 4);
    struct dkim_sign_options options;
    dkim_sign_options_default(&options);
    int fd = file_with(message, sizeof(message) - 1);
    size_t len = 0;
    CHECK(dkim_sign(found, n, fd, &options, signed_buf, sizeof(signed_buf), &len) == 0);
    (void)close(fd);
    memcpy(signed_buf + len, message, sizeof(message) - 1);
    struct outcome o = verify_bytes(signed_buf, len + sizeof(message) - 1, &dns, options.now_s);
    CHECK(o.count == 2 && o.results[0].code == DKIM_RESULT_PASS &&
          o.results[1].code == DKIM_RESULT_PASS);
    dkim_keys_destroy(&keys);
    CHECK(keys == NULL);
    CHECK(dkim_keys_load(values, 0, &keys, err, sizeof(err)) == 0 && dkim_keys_count(keys) == 0);
    dkim_keys_destroy(&keys);

    /* Errors name the value or the file. */
    struct {
        const char *value_format;
        int rc;
        const char *says;
    } bad[] = {
        {"example.org sel DIR/missing.pem", -ENOENT, "missing.pem"},
        {"example.org sel DIR/junk.pem", -EINVAL, "junk.pem"},
        {"example.org sel DIR/weak.pem", -EINVAL, "512"},
        {"example.org sel", -EINVAL, "key file"},
        {"example..org sel DIR/rsa.pem", -EINVAL, "domain"},
        {"example.org s!l DIR/rsa.pem", -EINVAL, "selector"},
        {"example.org sel DIR/rsa.pem extra", -EINVAL, "more"},
        {"", -EINVAL, "domain"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char value[256];
        const char *mark = strstr(bad[i].value_format, "DIR");
        if (mark != NULL) {
            (void)snprintf(value, sizeof(value), "%.*s%s%s", (int)(mark - bad[i].value_format),
                           bad[i].value_format, dir, mark + 3);
        } else {
            (void)snprintf(value, sizeof(value), "%s", bad[i].value_format);
        }
        const char *one[] = {value};
        err[0] = '\0';
        int rc = dkim_keys_load(one, 1, &keys, err, sizeof(err));
        if (rc != bad[i].rc || strstr(err, bad[i].says) == NULL) {
            fprintf(stderr, "value '%s': rc %d, '%s'\n", value, rc, err);
            CHECK(false);
        }
        CHECK(keys == NULL);
    }
    const char *twice[] = {v1, v1};
    CHECK(dkim_keys_load(twice, 2, &keys, err, sizeof(err)) == -EEXIST);
    CHECK(strstr(err, "twice") != NULL);
    static const char *too_many[DKIM_KEYS_MAX + 1];
    for (size_t i = 0; i <= DKIM_KEYS_MAX; i++) {
        too_many[i] = v1;
    }
    CHECK(dkim_keys_load(too_many, DKIM_KEYS_MAX + 1, &keys, err, sizeof(err)) == -E2BIG);

    /* Generation. */
    EVP_PKEY *made = NULL;
    CHECK(dkim_keys_generate(DKIM_KEY_TYPE_RSA, 512, &made) == -EINVAL && made == NULL);
    CHECK(dkim_keys_generate(DKIM_KEY_TYPE_RSA, 8192, &made) == -EINVAL);
    CHECK(dkim_keys_generate(DKIM_KEY_TYPE_ED25519, 0, &made) == 0 && made != NULL);
    char record[DKIM_KEY_RECORD_BYTES_MAX];
    CHECK(dkim_keys_record(made, record, sizeof(record)) > 0);
    CHECK(strncmp(record, "v=DKIM1; k=ed25519; p=", 22) == 0 && strlen(record) == 22 + 44);
    CHECK(dkim_keys_record(made, record, 30) == -ENOSPC);
    EVP_PKEY_free(made);
}

static void
test_format(void)
{
    struct dkim_result r;
    memset(&r, 0, sizeof(r));
    r.code = DKIM_RESULT_PASS;
    (void)snprintf(r.domain, sizeof(r.domain), "example.org");
    (void)snprintf(r.selector, sizeof(r.selector), "sel");
    (void)snprintf(r.algorithm, sizeof(r.algorithm), "rsa-sha256");
    (void)snprintf(r.b_prefix, sizeof(r.b_prefix), "abcdefgh");
    (void)snprintf(r.reason, sizeof(r.reason), "good signature");
    char out[512];
    int n = dkim_result_format(&r, out, sizeof(out));
    CHECK_STR(out, "dkim=pass header.d=example.org header.s=sel header.a=rsa-sha256 "
                   "header.b=abcdefgh");
    CHECK(n == (int)strlen(out));
    r.code = DKIM_RESULT_FAIL;
    (void)snprintf(r.reason, sizeof(r.reason), "body \"hash\" mismatch");
    (void)snprintf(r.identity, sizeof(r.identity), "joe@example.org");
    (void)snprintf(r.b_prefix, sizeof(r.b_prefix), "ab/de+gh");
    (void)dkim_result_format(&r, out, sizeof(out));
    CHECK_STR(out, "dkim=fail reason=\"body \\\"hash\\\" mismatch\" header.d=example.org "
                   "header.i=joe@example.org header.s=sel header.a=rsa-sha256 "
                   "header.b=\"ab/de+gh\"");
    memset(&r, 0, sizeof(r));
    r.code = DKIM_RESULT_POLICY;
    (void)snprintf(r.reason, sizeof(r.reason), "2 more");
    (void)dkim_result_format(&r, out, sizeof(out));
    CHECK_STR(out, "dkim=policy reason=\"2 more\"");
    CHECK(dkim_result_format(&r, out, 8) == -ENOSPC);
    CHECK(dkim_results_format(NULL, 0, out, sizeof(out)) == 9);
    CHECK_STR(out, "dkim=none");
    struct dkim_result two[2];
    memset(two, 0, sizeof(two));
    two[0].code = DKIM_RESULT_PASS;
    (void)snprintf(two[0].domain, sizeof(two[0].domain), "a.example");
    two[1].code = DKIM_RESULT_TEMPERROR;
    (void)snprintf(two[1].reason, sizeof(two[1].reason), "key unavailable");
    int len = dkim_results_format(two, 2, out, sizeof(out));
    CHECK_STR(out, "dkim=pass header.d=a.example; dkim=temperror reason=\"key unavailable\"");
    CHECK(len == (int)strlen(out));
    CHECK(dkim_results_format(two, 2, out, 35) == -ENOSPC);
    CHECK_STR(out, "dkim=pass header.d=a.example");
    CHECK_STR(dkim_result_name(DKIM_RESULT_TEMPERROR), "temperror");
    CHECK_STR(dkim_result_name(DKIM_RESULT_NEUTRAL), "neutral");
}

int
main(void)
{
    CHECK(mkdtemp(dir) != NULL);
    rsa512 = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)512);
    rsa1024 = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
    rsa2048 = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    ed25519 = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    CHECK(rsa512 != NULL && rsa1024 != NULL && rsa2048 != NULL && ed25519 != NULL);
    test_round_trip();
    test_tampering();
    test_expiry_and_length();
    test_keys_and_dns();
    test_several();
    test_large();
    test_key_table();
    test_format();
    EVP_PKEY_free(rsa512);
    EVP_PKEY_free(rsa1024);
    EVP_PKEY_free(rsa2048);
    EVP_PKEY_free(ed25519);
    char command[256];
    (void)snprintf(command, sizeof(command), "rm -rf '%s'", dir);
    CHECK(system(command) == 0);
    UNIT_DONE();
}
