/*
 * tests/unit/test_spam_message.c - what the spam analysis finds in small
 * hand-made messages: header facts (Date, Message-ID, From/Reply-To
 * domains, To/Cc count), text and HTML parts, broken multiparts,
 * dangerous attachment names in every form (filename, name, RFC 2231,
 * RFC 2047), link domains, transfer encodings and charsets, GTUBE; each
 * positive and negative, and the bounds (links, text bytes) broken.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "filters/spam_message.h"
#include "tests/unit/unit.h"

int main(void);

static struct spam_message *
analyse(const char *text)
{
    struct spam_message *m = NULL;
    CHECK(spam_message_analyse(text, strlen(text), &m) == 0);
    return m;
}

static void
test_header_facts(void)
{
    struct spam_message *m = analyse("From: \"Bob <x@y>\" <bob@Mail.Example.COM>\r\n"
                                     "Reply-To: other@elsewhere.test\r\n"
                                     "To: a@x.test, \"c@d\" <b@x.test>\r\n"
                                     "Cc: (note@x) c@x.test\r\n"
                                     "Date: Fri, 4 Dec 2026 10:00:00 +0000\r\n"
                                     "Message-ID: <1@x.test>\r\n"
                                     "Subject: hello\r\n\tworld\n new\rline\r\n"
                                     "\r\n"
                                     "body\r\n");
    CHECK(m->has_date);
    CHECK(m->has_message_id);
    CHECK(m->has_from);
    CHECK_STR(m->from_domain, "mail.example.com");
    CHECK_STR(m->reply_to_domain, "elsewhere.test");
    CHECK(m->header_rcpt_count == 3);
    CHECK_STR(m->subject_raw, "hello\r\n\tworld\r\n newline");
    CHECK(m->plain_part_count == 1);
    CHECK(m->html_part_count == 0);
    CHECK_STR(m->text, "body\r\n");
    spam_message_destroy(&m);
    CHECK(m == NULL);

    m = analyse("Subject: none of them\n\nbody\n");
    CHECK(!m->has_date && !m->has_message_id && !m->has_from && !m->has_reply_to);
    CHECK_STR(m->from_domain, "");
    spam_message_destroy(&m);

    /* Empty input and a header without body. */
    m = analyse("");
    CHECK(m->text_len == 0 && m->header_len == 0);
    CHECK(m->text_max == 16); /* small messages get small buffers */
    spam_message_destroy(&m);
    m = analyse("From: a@b.test\r\n");
    CHECK(m->has_from);
    spam_message_destroy(&m);
}

/* A fold right at the Subject bound is kept whole or dropped, never cut
 * between its CRLF and its blank (found by fuzz_spam_message). */
static void
test_subject_bound(void)
{
    for (size_t pad = SPAM_SUBJECT_BYTES - 8; pad < SPAM_SUBJECT_BYTES + 16; pad++) {
        char msg[2 * SPAM_SUBJECT_BYTES];
        size_t n = (size_t)snprintf(msg, sizeof(msg), "Subject: ");
        memset(msg + n, 'x', pad - 9);
        n += pad - 9;
        n += (size_t)snprintf(msg + n, sizeof(msg) - n, "\r\n yy\r\n\r\nbody\r\n");
        struct spam_message *m = NULL;
        CHECK(spam_message_analyse(msg, n, &m) == 0);
        size_t len = strlen(m->subject_raw);
        CHECK(len < SPAM_SUBJECT_BYTES);
        for (size_t i = 0; i < len; i++) {
            if (m->subject_raw[i] == '\r') {
                CHECK(i + 2 < len && m->subject_raw[i + 1] == '\n' && m->subject_raw[i + 2] == ' ');
            }
        }
        spam_message_destroy(&m);
    }
}

static void
test_address_domain(void)
{
    char d[SPAM_DOMAIN_BYTES];
    const char *v = "Name <user@Example.org>";
    CHECK(spam_message_address_domain(v, strlen(v), d, sizeof(d)));
    CHECK_STR(d, "example.org");
    v = "user@example.org (comment)";
    CHECK(spam_message_address_domain(v, strlen(v), d, sizeof(d)));
    CHECK_STR(d, "example.org");
    v = "\"a@evil.test\" <user@good.test>";
    CHECK(spam_message_address_domain(v, strlen(v), d, sizeof(d)));
    CHECK_STR(d, "good.test");
    v = "first@one.test, second@two.test";
    CHECK(spam_message_address_domain(v, strlen(v), d, sizeof(d)));
    CHECK_STR(d, "one.test");
    v = "undisclosed-recipients:;";
    CHECK(!spam_message_address_domain(v, strlen(v), d, sizeof(d)));
    v = "<user@>";
    CHECK(!spam_message_address_domain(v, strlen(v), d, sizeof(d)));
}

static void
test_html_only(void)
{
    struct spam_message *m = analyse("Content-Type: text/html; charset=utf-8\r\n\r\n"
                                     "<html><head><style>p {color: red}</style>"
                                     "<script>var hidden = 1;</script></head>"
                                     "<body><p>Buy&nbsp;&#86;iagra &amp; more</p><!-- secret -->"
                                     "<a href=\"http://Shop.Example.NET/x?y\">here</a></body></html>");
    CHECK(m->html_part_count == 1);
    CHECK(m->plain_part_count == 0);
    CHECK(strstr(m->text, "Buy Viagra & more") != NULL);
    CHECK(strstr(m->text, "hidden") == NULL);
    CHECK(strstr(m->text, "color") == NULL);
    CHECK(strstr(m->text, "secret") == NULL);
    CHECK(strstr(m->text, "<") == NULL);
    CHECK(m->url_domain_count == 1);
    CHECK_STR(m->url_domains[0], "shop.example.net");
    spam_message_destroy(&m);

    m = analyse("Content-Type: multipart/alternative; boundary=b\r\n\r\n"
                "--b\r\nContent-Type: text/plain\r\n\r\nplain words\r\n"
                "--b\r\nContent-Type: text/html\r\n\r\n<p>html words</p>\r\n"
                "--b--\r\n");
    CHECK(m->html_part_count == 1);
    CHECK(m->plain_part_count == 1);
    CHECK(strstr(m->text, "plain words") != NULL);
    CHECK(strstr(m->text, "html words") != NULL);
    CHECK(!m->is_multipart_no_boundary && !m->is_multipart_no_children);
    spam_message_destroy(&m);

    /* An HTML attachment does not make a message HTML-only. */
    m = analyse("Content-Type: multipart/mixed; boundary=b\r\n\r\n"
                "--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n"
                "--b\r\nContent-Type: text/html\r\nContent-Disposition: attachment\r\n\r\n<p>x</p>\r\n"
                "--b--\r\n");
    CHECK(m->html_part_count == 0);
    CHECK(m->plain_part_count == 1);
    spam_message_destroy(&m);
}

static void
test_broken_multipart(void)
{
    struct spam_message *m = analyse("Content-Type: multipart/mixed\r\n\r\nno boundary here\r\n");
    CHECK(m->is_multipart_no_boundary);
    spam_message_destroy(&m);
    m = analyse("Content-Type: multipart/mixed; boundary=\"never\"\r\n\r\n"
                "--other\r\n\r\ntext\r\n");
    CHECK(!m->is_multipart_no_boundary);
    CHECK(m->is_multipart_no_children);
    spam_message_destroy(&m);
}

static void
test_bad_names(void)
{
    bool dbl = false;
    CHECK(spam_message_name_is_bad("setup.EXE", 9, &dbl) && !dbl);
    CHECK(spam_message_name_is_bad("invoice.pdf.exe", 15, &dbl) && dbl);
    CHECK(spam_message_name_is_bad("run.exe. . ", 11, &dbl) && !dbl);
    CHECK(spam_message_name_is_bad("a.js", 4, &dbl));
    CHECK(spam_message_name_is_bad("disk.iso", 8, &dbl));
    CHECK(spam_message_name_is_bad("x.lnk", 5, &dbl));
    CHECK(!spam_message_name_is_bad("report.pdf", 10, &dbl));
    CHECK(!spam_message_name_is_bad("a.exe.txt", 9, &dbl));
    CHECK(!spam_message_name_is_bad("exe", 3, &dbl));
    CHECK(!spam_message_name_is_bad("x.jsx", 5, &dbl));
    CHECK(!spam_message_name_is_bad("", 0, &dbl));
    /* "my photos.exe": the part before is no short extension. */
    CHECK(spam_message_name_is_bad("my photos.exe", 13, &dbl) && !dbl);

    const char *msg =
        "Content-Type: multipart/mixed; boundary=b\r\n\r\n"
        "--b\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n"
        "--b\r\nContent-Type: application/octet-stream\r\n"
        "Content-Disposition: attachment; filename=\"setup.exe\"\r\n\r\nMZ\r\n"
        "--b\r\nContent-Type: application/octet-stream;\r\n name=\"=?UTF-8?B?c2NyZWVuLnNjcg==?=\"\r\n\r\nx\r\n"
        "--b\r\nContent-Type: application/octet-stream\r\n"
        "Content-Disposition: attachment; filename*=UTF-8''%45vil%2Ejs\r\n\r\nx\r\n"
        "--b\r\nContent-Type: application/octet-stream\r\n"
        "Content-Disposition: attachment; filename*0=\"part\"; filename*1=\".vbs\"\r\n\r\nx\r\n"
        "--b\r\nContent-Type: application/pdf\r\n"
        "Content-Disposition: attachment; filename=\"fine.pdf\"\r\n\r\nx\r\n"
        "--b--\r\n";
    struct spam_message *m = analyse(msg);
    CHECK(m->bad_name_count == 4);
    CHECK(!m->has_double_bad_name);
    CHECK_STR(m->bad_names[0], "setup.exe");
    CHECK_STR(m->bad_names[1], "screen.scr");
    CHECK_STR(m->bad_names[2], "Evil.js");
    CHECK_STR(m->bad_names[3], "part.vbs");
    spam_message_destroy(&m);

    m = analyse("Content-Type: multipart/mixed; boundary=b\r\n\r\n"
                "--b\r\nContent-Type: application/octet-stream\r\n"
                "Content-Disposition: attachment; filename*=utf-8'en'invoice%2Epdf%2Eexe\r\n\r\nx\r\n"
                "--b--\r\n");
    CHECK(m->bad_name_count == 1);
    CHECK(m->has_double_bad_name);
    spam_message_destroy(&m);

    m = analyse("Content-Type: multipart/mixed; boundary=b\r\n\r\n"
                "--b\r\nContent-Type: application/pdf; name=\"doc.pdf\"\r\n"
                "Content-Disposition: attachment; filename=\"doc.pdf\"\r\n\r\nx\r\n"
                "--b--\r\n");
    CHECK(m->bad_name_count == 0);
    spam_message_destroy(&m);

    /* Names go into headers later: control bytes and brackets become '?'. */
    m = analyse("Content-Type: multipart/mixed; boundary=b\r\n\r\n"
                "--b\r\nContent-Type: application/octet-stream\r\n"
                "Content-Disposition: attachment; filename*=UTF-8''a%0D%0A%5Bb%5D.exe\r\n\r\nx\r\n"
                "--b--\r\n");
    CHECK(m->bad_name_count == 1);
    CHECK_STR(m->bad_names[0], "a?b?.exe"); /* CR LF dropped by the RFC 2047 decoder */
    spam_message_destroy(&m);
}

static void
test_urls(void)
{
    struct spam_message *m = analyse(
        "Subject: links\r\n\r\n"
        "Go to http://Example.COM/path and HTTPS://user:pw@www.Evil.test:8080/x?y\r\n"
        "or www.foo.org, or http://192.0.2.1/ip, or http://example.com again,\r\n"
        "or http://localhost/ or http://bad..dots/ or https://xn--bcher-kva.example/\r\n");
    CHECK(m->url_domain_count == 4);
    CHECK_STR(m->url_domains[0], "example.com");
    CHECK_STR(m->url_domains[1], "www.evil.test");
    CHECK_STR(m->url_domains[2], "www.foo.org");
    CHECK_STR(m->url_domains[3], "xn--bcher-kva.example");
    CHECK(!m->is_url_truncated);
    spam_message_destroy(&m);

    /* SPAM_URL_DOMAINS_MAX distinct hosts are kept, the next is not. */
    size_t cap = (SPAM_URL_DOMAINS_MAX + 2) * 40 + 64;
    char *text = malloc(cap);
    size_t len = (size_t)snprintf(text, cap, "Subject: many\r\n\r\n");
    for (unsigned i = 0; i < SPAM_URL_DOMAINS_MAX; i++) {
        len += (size_t)snprintf(text + len, cap - len, "http://h%u.example/ ", i);
    }
    m = analyse(text);
    CHECK(m->url_domain_count == SPAM_URL_DOMAINS_MAX);
    CHECK(!m->is_url_truncated);
    spam_message_destroy(&m);
    (void)snprintf(text + len, cap - len, "http://one-more.example/");
    m = analyse(text);
    CHECK(m->url_domain_count == SPAM_URL_DOMAINS_MAX);
    CHECK(m->is_url_truncated);
    spam_message_destroy(&m);
    free(text);
}

static void
test_decoding(void)
{
    /* base64 text, and GTUBE inside it. */
    struct spam_message *m = analyse(
        "Content-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        "WEpTKkM0SkRCUUFETjEuTlNCTjMqMklETkVOKkdUVUJFLVNUQU5EQVJELUFOVEktVUJFLVRF\r\n"
        "U1QtRU1BSUwqQy4zNFg=\r\n");
    CHECK(m->is_gtube);
    spam_message_destroy(&m);
    m = analyse("Subject: plain\r\n\r\nXJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-"
                "EMAIL*C.34X\r\n");
    CHECK(m->is_gtube);
    spam_message_destroy(&m);
    m = analyse("Subject: almost\r\n\r\nXJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-"
                "EMAIL*C.34\r\n");
    CHECK(!m->is_gtube);
    spam_message_destroy(&m);

    /* quoted-printable in ISO-8859-1, a NUL in the text. */
    m = analyse("Content-Type: text/plain; charset=iso-8859-1\r\n"
                "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
                "caf=E9 a=3Db soft=\r\nbreak =00end\r\n");
    CHECK(strcmp(m->text, "caf\xc3\xa9 a=b softbreak  end\r\n") == 0);
    CHECK(strlen(m->text) == m->text_len);
    spam_message_destroy(&m);

    /* Text of an attached image is not read. */
    m = analyse("Content-Type: multipart/mixed; boundary=b\r\n\r\n"
                "--b\r\nContent-Type: image/png\r\n\r\nhttp://hidden.example/\r\n--b--\r\n");
    CHECK(m->text_len == 0);
    CHECK(m->url_domain_count == 0);
    spam_message_destroy(&m);
}

static void
test_text_bound(void)
{
    size_t body = SPAM_TEXT_BYTES_MAX + 100;
    const char *head = "Subject: big\r\n\r\n";
    size_t hl = strlen(head);
    char *msg = malloc(hl + body + 1);
    memcpy(msg, head, hl);
    memset(msg + hl, 'a', body);
    msg[hl + body] = '\0';
    struct spam_message *m = NULL;
    CHECK(spam_message_analyse(msg, hl + body, &m) == 0);
    CHECK(m->text_len == SPAM_TEXT_BYTES_MAX);
    CHECK(m->is_text_truncated);
    spam_message_destroy(&m);
    /* Exactly the bound: nothing cut. */
    CHECK(spam_message_analyse(msg, hl + SPAM_TEXT_BYTES_MAX, &m) == 0);
    CHECK(m->text_len == SPAM_TEXT_BYTES_MAX);
    CHECK(!m->is_text_truncated);
    spam_message_destroy(&m);
    free(msg);
}

static void
test_digest(void)
{
    struct spam_message *a = analyse("Received: from a\r\nSubject: s\r\n\r\nsame body\r\n");
    struct spam_message *b = analyse("Received: from b\r\nX-Other: 1\r\nSubject: s\r\n\r\nsame body\r\n");
    struct spam_message *c = analyse("Subject: s\r\n\r\nother body\r\n");
    CHECK(memcmp(a->digest, b->digest, SPAM_DIGEST_BYTES) == 0);
    CHECK(memcmp(a->digest, c->digest, SPAM_DIGEST_BYTES) != 0);
    spam_message_destroy(&a);
    spam_message_destroy(&b);
    spam_message_destroy(&c);
}

int
main(void)
{
    test_header_facts();
    test_address_domain();
    test_subject_bound();
    test_html_only();
    test_broken_multipart();
    test_bad_names();
    test_urls();
    test_decoding();
    test_text_bound();
    test_digest();
    UNIT_DONE();
}
