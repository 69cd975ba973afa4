/*
 * tests/unit/test_dkim_tags.c - the tag-list parser (RFC 6376 3.2), the
 * DKIM-Signature reader (3.5, 6.1.1) and the key record reader (3.6.1),
 * with base64 under DKIM's whitespace rules. Table-driven: valid,
 * invalid and borderline inputs, each bound at max - 1 / max / max + 1
 * where it has one. Every refusal must come with a reason.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "filters/dkim_tags.h"
#include "tests/unit/unit.h"

int main(void);

static char reason[DKIM_REASON_BYTES];

static int
tags(const char *text, struct dkim_tag_list *list)
{
    reason[0] = '\0';
    int rc = dkim_tags_parse(text, strlen(text), list, reason, sizeof(reason));
    if (rc != 0) {
        CHECK(reason[0] != '\0');
    }
    return rc;
}

static bool
tag_is(const struct dkim_tag_list *list, const char *name, const char *value)
{
    const struct dkim_tag *tag = dkim_tags_find(list, name);
    return tag != NULL && tag->value.len == strlen(value) &&
           memcmp(tag->value.ptr, value, tag->value.len) == 0;
}

static void
test_tag_list(void)
{
    static struct dkim_tag_list list;
    CHECK(tags("a=1", &list) == 0 && list.count == 1 && tag_is(&list, "a", "1"));
    CHECK(tags("a=1;", &list) == 0 && list.count == 1);
    CHECK(tags("a=1; \t", &list) == 0 && list.count == 1);
    CHECK(tags(" a = 1 ;b=2", &list) == 0 && tag_is(&list, "a", "1") && tag_is(&list, "b", "2"));
    /* FWS: CRLF followed by WSP, anywhere around names and values. */
    CHECK(tags("a=1;\r\n\tb\r\n =\r\n two  words\r\n ;", &list) == 0 &&
          tag_is(&list, "b", "two  words"));
    /* Empty values are values. */
    CHECK(tags("p=; k=rsa", &list) == 0 && tag_is(&list, "p", ""));
    /* Names: case-sensitive, letters then letters/digits/_. */
    CHECK(tags("A=1; a=2", &list) == 0 && tag_is(&list, "A", "1") && tag_is(&list, "a", "2"));
    CHECK(tags("x_1=y", &list) == 0 && tag_is(&list, "x_1", "y"));
    CHECK(tags("1a=y", &list) == -EINVAL);
    CHECK(tags("_a=y", &list) == -EINVAL);
    /* Raw value span: from after '=' to before ';'. */
    CHECK(tags("b= ab c ;x=1", &list) == 0);
    CHECK(dkim_tags_find(&list, "b")->value_raw.len == 6);
    /* Syntax errors. */
    CHECK(tags("", &list) == -EINVAL);
    CHECK(tags("  ", &list) == -EINVAL);
    CHECK(tags(";", &list) == -EINVAL);
    CHECK(tags("a=1;;b=2", &list) == -EINVAL);
    CHECK(tags("a", &list) == -EINVAL);
    CHECK(tags("a 1=2", &list) == -EINVAL);
    CHECK(tags("=1", &list) == -EINVAL);
    CHECK(tags("a=\x01", &list) == -EINVAL);
    CHECK(tags("a=caf\xc3\xa9", &list) == -EINVAL);
    CHECK(tags("a=1\r\nb=2", &list) == -EINVAL); /* CRLF without WSP after it */
    CHECK(tags("a=1\n b=2", &list) == -EINVAL);  /* bare LF */
    CHECK(tags("a=1\r\n", &list) == -EINVAL);
    /* Duplicates are an error whatever the values. */
    CHECK(tags("a=1; b=2; a=1", &list) == -EINVAL);
    CHECK(strstr(reason, "twice") != NULL);
    /* The tag count bound: max is fine, max + 1 is not. */
    char big[DKIM_TAGS_MAX * 8 + 16];
    size_t n = 0;
    for (unsigned i = 0; i < DKIM_TAGS_MAX; i++) {
        n += (size_t)snprintf(big + n, sizeof(big) - n, "t%u=1;", i);
    }
    CHECK(tags(big, &list) == 0 && list.count == DKIM_TAGS_MAX);
    (void)snprintf(big + n, sizeof(big) - n, "z=1");
    CHECK(tags(big, &list) == -EINVAL);
    CHECK(dkim_tags_find(&list, "nope") == NULL);
}

static void
test_base64(void)
{
    uint8_t out[16];
    size_t len = 0;
    CHECK(dkim_base64_decode(SPAN_LITERAL("aGVsbG8="), out, sizeof(out), &len) == 0 && len == 5 &&
          memcmp(out, "hello", 5) == 0);
    CHECK(dkim_base64_decode(SPAN_LITERAL(" aG V\r\n\ts bG8 = "), out, sizeof(out), &len) == 0 &&
          len == 5);
    CHECK(dkim_base64_decode(SPAN_LITERAL("aGk="), out, sizeof(out), &len) == 0 && len == 2);
    CHECK(dkim_base64_decode(SPAN_LITERAL("aA=="), out, sizeof(out), &len) == 0 && len == 1);
    CHECK(dkim_base64_decode(SPAN_LITERAL(""), out, sizeof(out), &len) == 0 && len == 0);
    CHECK(dkim_base64_decode(SPAN_LITERAL("aGVsbG8"), out, sizeof(out), &len) == -EINVAL);
    CHECK(dkim_base64_decode(SPAN_LITERAL("aA="), out, sizeof(out), &len) == -EINVAL);
    CHECK(dkim_base64_decode(SPAN_LITERAL("a==="), out, sizeof(out), &len) == -EINVAL);
    CHECK(dkim_base64_decode(SPAN_LITERAL("aA=a"), out, sizeof(out), &len) == -EINVAL);
    CHECK(dkim_base64_decode(SPAN_LITERAL("a!bc"), out, sizeof(out), &len) == -EINVAL);
    CHECK(dkim_base64_decode(SPAN_LITERAL("===="), out, sizeof(out), &len) == -EINVAL);
    CHECK(dkim_base64_decode(SPAN_LITERAL("a"), out, sizeof(out), &len) == -EINVAL);
    /* Output bound: 3 bytes fit 3, not 2. */
    CHECK(dkim_base64_decode(SPAN_LITERAL("YWJj"), out, 3, &len) == 0 && len == 3);
    CHECK(dkim_base64_decode(SPAN_LITERAL("YWJj"), out, 2, &len) == -ENOSPC);
    CHECK(dkim_base64_decode(SPAN_LITERAL("YWI="), out, 1, &len) == -ENOSPC);
    char text[16];
    CHECK(dkim_base64_encode((const uint8_t *)"hello", 5, text, sizeof(text)) == 8);
    CHECK_STR(text, "aGVsbG8=");
    CHECK(dkim_base64_encode((const uint8_t *)"", 0, text, sizeof(text)) == 0);
}

#define BH "bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=;"
#define B "b=dGVzdHNpZ25hdHVyZQ=="

static int
sig(const char *text, struct dkim_sig *out)
{
    reason[0] = '\0';
    int rc = dkim_sig_parse(text, strlen(text), out, reason, sizeof(reason));
    if (rc != 0) {
        CHECK(reason[0] != '\0');
    }
    return rc;
}

static void
test_signature(void)
{
    static struct dkim_sig s;
    CHECK(sig(" v=1; a=rsa-sha256; d=Example.ORG; s=Sel; h=From:To; " BH " " B, &s) == 0);
    CHECK(s.algorithm == DKIM_ALGORITHM_RSA_SHA256);
    CHECK(s.canon_header == DKIM_CANON_SIMPLE && s.canon_body == DKIM_CANON_SIMPLE);
    CHECK_STR(s.domain, "example.org");
    CHECK_STR(s.selector, "sel");
    CHECK_STR(s.identity, "@example.org");
    CHECK(!s.has_identity);
    CHECK(s.header_count == 2);
    CHECK_STR(s.headers[0], "from");
    CHECK_STR(s.headers[1], "to");
    CHECK_STR(s.b_prefix, "dGVzdHNp");
    CHECK(s.signature_len == 13 && memcmp(s.signature, "testsignature", 13) == 0);
    CHECK(s.body_hash_len == 32);
    CHECK(!s.has_length && !s.has_timestamp && !s.has_expiry);
    /* Every tag, c= both halves, h= with FWS, i= in a subdomain, unknown tags ignored. */
    CHECK(sig("v=1; a=ed25519-sha256; c=relaxed/simple; d=example.org; s=a.b;\r\n"
              "\th=from : subject\r\n\t:date; i=joe@mail.example.org; l=100; q=dns/txt;\r\n"
              "\tt=1000; x=2000; z=From:foo; future=whatever; " BH " " B,
              &s) == 0);
    CHECK(s.algorithm == DKIM_ALGORITHM_ED25519_SHA256);
    CHECK(s.canon_header == DKIM_CANON_RELAXED && s.canon_body == DKIM_CANON_SIMPLE);
    CHECK(s.header_count == 3);
    CHECK_STR(s.headers[2], "date");
    CHECK_STR(s.identity, "joe@mail.example.org");
    CHECK(s.has_length && s.length == 100);
    CHECK(s.has_timestamp && s.timestamp == 1000 && s.has_expiry && s.expiry == 2000);
    CHECK(sig("v=1; a=rsa-sha256; c=relaxed; d=example.org; s=s; h=from; " BH B, &s) == 0);
    CHECK(s.canon_header == DKIM_CANON_RELAXED && s.canon_body == DKIM_CANON_SIMPLE);
    /* b= raw span: what the verifier deletes. */
    const char *with_b = "v=1; a=rsa-sha256; d=example.org; s=s; h=from; " BH " b = YWJj ;x=9";
    CHECK(sig(with_b, &s) == 0);
    CHECK(s.b_raw_len == 6 && memcmp(with_b + s.b_raw_offset, " YWJj ", 6) == 0);
    /* rsa-sha1 is read (so the result can name it), with a 20-byte bh=. */
    CHECK(sig("v=1; a=rsa-sha1; d=example.org; s=s; h=from; "
              "bh=2jmj7l5rSw0yVb/vlWAYkK/YBwk=; " B,
              &s) == 0 &&
          s.algorithm == DKIM_ALGORITHM_RSA_SHA1);

    /* Each refusal (a permerror). */
    static const char *const bad[] = {
        "a=rsa-sha256; d=example.org; s=s; h=from; " BH B,             /* no v= */
        "v=2; a=rsa-sha256; d=example.org; s=s; h=from; " BH B,        /* v= not 1 */
        "v=1; d=example.org; s=s; h=from; " BH B,                      /* no a= */
        "v=1; a=rsa-md5; d=example.org; s=s; h=from; " BH B,           /* unknown a= */
        "v=1; a=rsa-sha256; d=example.org; s=s; h=from; " BH,          /* no b= */
        "v=1; a=rsa-sha256; d=example.org; s=s; h=from; " BH "b=",     /* empty b= */
        "v=1; a=rsa-sha256; d=example.org; s=s; h=from; " BH "b=YW!j", /* bad base64 */
        "v=1; a=rsa-sha256; d=example.org; s=s; h=from; bh=YWJj; " B,  /* bh= too short */
        "v=1; a=rsa-sha256; d=example.org; s=s; h=from; " B,           /* no bh= */
        "v=1; a=rsa-sha256; s=s; h=from; " BH B,                       /* no d= */
        "v=1; a=rsa-sha256; d=exa mple.org; s=s; h=from; " BH B,       /* bad d= */
        "v=1; a=rsa-sha256; d=.org; s=s; h=from; " BH B,
        "v=1; a=rsa-sha256; d=example.org; h=from; " BH B,            /* no s= */
        "v=1; a=rsa-sha256; d=example.org; s=a..b; h=from; " BH B,    /* bad s= */
        "v=1; a=rsa-sha256; d=example.org; s=s; " BH B,               /* no h= */
        "v=1; a=rsa-sha256; d=example.org; s=s; h=to:subject; " BH B, /* h= without From */
        "v=1; a=rsa-sha256; d=example.org; s=s; h=from::to; " BH B,   /* empty h= entry */
        "v=1; a=rsa-sha256; c=fancy; d=example.org; s=s; h=from; " BH B,
        "v=1; a=rsa-sha256; c=relaxed/fancy; d=example.org; s=s; h=from; " BH B,
        "v=1; a=rsa-sha256; d=example.org; s=s; h=from; i=joe@example.com; " BH B,
        "v=1; a=rsa-sha256; d=example.org; s=s; h=from; i=joe@badexample.org; " BH B,
        "v=1; a=rsa-sha256; d=example.org; s=s; h=from; i=joe; " BH B,
        "v=1; a=rsa-sha256; d=example.org; s=s; h=from; l=-1; " BH B,
        "v=1; a=rsa-sha256; d=example.org; s=s; h=from; l=99999999999999999999; " BH B,
        "v=1; a=rsa-sha256; d=example.org; s=s; h=from; q=http; " BH B,
        "v=1; a=rsa-sha256; d=example.org; s=s; h=from; t=now; " BH B,
        "v=1; a=rsa-sha256; d=example.org; s=s; h=from; t=2000; x=1000; " BH B,
        "v=1; a=rsa-sha256; d=example.org; s=s; h=from; t=2000; x=2000; " BH B,
        "v=1; a=rsa-sha256; d=example.org; s=s; h=from; x=1234567890123; " BH B,
        "v=1; a=rsa-sha256; d=example.org; d=example.org; s=s; h=from; " BH B, /* twice */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (sig(bad[i], &s) != -EINVAL) {
            fprintf(stderr, "accepted: %s\n", bad[i]);
            CHECK(false);
        }
    }
    /* h= entry count: max is fine, max + 1 is not. */
    static char text[DKIM_SIG_FIELD_BYTES_MAX + 64];
    size_t n =
        (size_t)snprintf(text, sizeof(text), "v=1; a=rsa-sha256; d=e.org; s=s; " BH B "; h=from");
    for (unsigned i = 1; i < DKIM_SIG_HEADERS_MAX; i++) {
        n += (size_t)snprintf(text + n, sizeof(text) - n, ":x");
    }
    CHECK(sig(text, &s) == 0 && s.header_count == DKIM_SIG_HEADERS_MAX);
    (void)snprintf(text + n, sizeof(text) - n, ":x");
    CHECK(sig(text, &s) == -EINVAL);
    /* h= name length: DKIM_HEADER_NAME_BYTES_MAX, then one more. */
    n = (size_t)snprintf(text, sizeof(text), "v=1; a=rsa-sha256; d=e.org; s=s; " BH B "; h=from:");
    memset(text + n, 'n', DKIM_HEADER_NAME_BYTES_MAX);
    text[n + DKIM_HEADER_NAME_BYTES_MAX] = '\0';
    CHECK(sig(text, &s) == 0);
    text[n + DKIM_HEADER_NAME_BYTES_MAX] = 'n';
    text[n + DKIM_HEADER_NAME_BYTES_MAX + 1] = '\0';
    CHECK(sig(text, &s) == -EINVAL);
    /* Field size bound. */
    n = (size_t)snprintf(text, sizeof(text),
                         "v=1; a=rsa-sha256; d=e.org; s=s; h=from; " BH B "; z=");
    memset(text + n, 'z', DKIM_SIG_FIELD_BYTES_MAX - n);
    text[DKIM_SIG_FIELD_BYTES_MAX] = '\0';
    CHECK(sig(text, &s) == 0);
    text[DKIM_SIG_FIELD_BYTES_MAX] = 'z';
    text[DKIM_SIG_FIELD_BYTES_MAX + 1] = '\0';
    CHECK(sig(text, &s) == -EINVAL);
    /* b= size bound: a signature of DKIM_SIGNATURE_BYTES_MAX decodes, one more byte not. */
    static uint8_t raw[DKIM_SIGNATURE_BYTES_MAX + 3];
    memset(raw, 0x5a, sizeof(raw));
    char b64[sizeof(raw) * 2];
    for (size_t extra = 0; extra < 2; extra++) {
        (void)dkim_base64_encode(raw, DKIM_SIGNATURE_BYTES_MAX + extra, b64, sizeof(b64));
        (void)snprintf(text, sizeof(text), "v=1; a=rsa-sha256; d=e.org; s=s; h=from; " BH "b=%s",
                       b64);
        CHECK(sig(text, &s) == (extra == 0 ? 0 : -EINVAL));
    }
    /* Selector plus domain over 253 bytes. */
    char label[64];
    memset(label, 'a', 63);
    label[63] = '\0';
    (void)snprintf(text, sizeof(text), "v=1; a=rsa-sha256; d=%s.%s.%s; s=%s.x; h=from; " BH B,
                   label, label, label, label);
    CHECK(sig(text, &s) == -EINVAL);
}

static int
key(const char *text, struct dkim_key_record *out)
{
    reason[0] = '\0';
    int rc = dkim_key_record_parse(text, strlen(text), out, reason, sizeof(reason));
    if (rc != 0) {
        CHECK(reason[0] != '\0');
    }
    return rc;
}

static void
test_key_record(void)
{
    static struct dkim_key_record k;
    CHECK(key("v=DKIM1; k=rsa; p=YWJj", &k) == 0 && k.type == DKIM_KEY_TYPE_RSA &&
          k.public_key_len == 3 && !k.is_revoked && !k.is_testing && !k.is_strict &&
          k.allows_sha256);
    CHECK(key("p=YWJj", &k) == 0 && k.type == DKIM_KEY_TYPE_RSA);
    CHECK(key("v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=", &k) == 0 &&
          k.type == DKIM_KEY_TYPE_ED25519 && k.public_key_len == 32);
    CHECK(key("v=DKIM1; p=", &k) == 0 && k.is_revoked);
    CHECK(key("v=DKIM1; t=y:s; p=YWJj", &k) == 0 && k.is_testing && k.is_strict);
    CHECK(key("v=DKIM1; t=s; p=YWJj", &k) == 0 && !k.is_testing && k.is_strict);
    CHECK(key("v=DKIM1; t=y : x; p=YWJj", &k) == 0 && k.is_testing && !k.is_strict);
    CHECK(key("v=DKIM1; h=sha1:sha256; p=YWJj", &k) == 0 && k.allows_sha256);
    CHECK(key("v=DKIM1; h=sha1; p=YWJj", &k) == 0 && !k.allows_sha256);
    CHECK(key("v=DKIM1; s=email; p=YWJj", &k) == 0);
    CHECK(key("v=DKIM1; s=*; p=YWJj", &k) == 0);
    CHECK(key("v=DKIM1; s=other:email; n=notes here; p=YWJj", &k) == 0);
    CHECK(key("v=DKIM1; p=YW Jj; unknown=1", &k) == 0 && k.public_key_len == 3);
    /* Refusals. */
    CHECK(key("v=DKIM2; p=YWJj", &k) == -EINVAL);
    CHECK(key("k=rsa; v=DKIM1; p=YWJj", &k) == -EINVAL); /* v= not first */
    CHECK(key("v=DKIM1; k=dsa; p=YWJj", &k) == -EINVAL);
    CHECK(key("v=DKIM1; k=rsa", &k) == -EINVAL); /* no p= */
    CHECK(key("v=DKIM1; p=YW!j", &k) == -EINVAL);
    CHECK(key("v=DKIM1; s=other; p=YWJj", &k) == -EINVAL);
    CHECK(key("v=DKIM1; p=YWJj; p=YWJj", &k) == -EINVAL);
    CHECK(key("", &k) == -EINVAL);
    CHECK(key("hello world", &k) == -EINVAL);
    /* Size bounds: the record, and p= decoded. */
    static char text[DKIM_KEY_RECORD_BYTES_MAX + 16];
    size_t n = (size_t)snprintf(text, sizeof(text), "p=YWJj; n=");
    memset(text + n, 'n', DKIM_KEY_RECORD_BYTES_MAX - n);
    text[DKIM_KEY_RECORD_BYTES_MAX] = '\0';
    CHECK(key(text, &k) == 0);
    text[DKIM_KEY_RECORD_BYTES_MAX] = 'n';
    text[DKIM_KEY_RECORD_BYTES_MAX + 1] = '\0';
    CHECK(key(text, &k) == -EINVAL);
    static uint8_t raw[DKIM_PUBLIC_KEY_BYTES_MAX + 3];
    memset(raw, 1, sizeof(raw));
    n = (size_t)snprintf(text, sizeof(text), "p=");
    (void)dkim_base64_encode(raw, DKIM_PUBLIC_KEY_BYTES_MAX, text + n, sizeof(text) - n);
    CHECK(key(text, &k) == 0 && k.public_key_len == DKIM_PUBLIC_KEY_BYTES_MAX);
    (void)dkim_base64_encode(raw, DKIM_PUBLIC_KEY_BYTES_MAX + 3, text + n, sizeof(text) - n);
    CHECK(key(text, &k) == -EINVAL);
}

static void
test_domain(void)
{
    CHECK(dkim_domain_is_valid("example.org", 11));
    CHECK(dkim_domain_is_valid("a", 1));
    CHECK(dkim_domain_is_valid("sel_1.sub-x", 11));
    CHECK(!dkim_domain_is_valid("", 0));
    CHECK(!dkim_domain_is_valid("a.", 2));
    CHECK(!dkim_domain_is_valid(".a", 2));
    CHECK(!dkim_domain_is_valid("a..b", 4));
    CHECK(!dkim_domain_is_valid("a b", 3));
    char label[70];
    memset(label, 'a', sizeof(label));
    CHECK(dkim_domain_is_valid(label, 63));
    CHECK(!dkim_domain_is_valid(label, 64));
}

int
main(void)
{
    test_tag_list();
    test_base64();
    test_signature();
    test_key_record();
    test_domain();
    UNIT_DONE();
}
