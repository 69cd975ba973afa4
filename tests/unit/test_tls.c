/*
 * tests/unit/test_tls.c - core/tls against a real OpenSSL client, all in
 * memory: the client's SSL sits on memory BIOs, and its ciphertext is fed
 * to tls_conn_input() in pieces of many sizes while tls_conn_output() goes
 * back to it. Covers TLS 1.3 and 1.2 handshakes and data both ways (1 MiB
 * each way, byte for byte), refusal of TLS 1.1 and of weak cipher lists,
 * SNI (exact, wildcard, unknown), ticket resumption, garbage, close_notify,
 * the self-signed default made once under data_dir, certificate errors,
 * trimming an idle connection, and exact in_used accounting. Certificates
 * are made here with the OpenSSL API in a temporary directory.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "core/config.h"
#include "core/tls.h"
#include "tests/unit/unit.h"

#define MIB (1024u * 1024u)

static char tmp_dir[] = "/tmp/toaster-tls-XXXXXX";
static char path_default_cert[600], path_default_key[600];
static char path_a_cert[600], path_a_key[600];
static char path_b_cert[600], path_b_key[600];

/* Big: struct config holds the tls_sni table. */
static struct config test_config;

struct buf {
    uint8_t *ptr;
    size_t   len;
    size_t   cap;
};

static void
buf_append(struct buf *b, const void *data, size_t len)
{
    if (b->len + len > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + len) {
            cap *= 2;
        }
        uint8_t *p = realloc(b->ptr, cap);
        if (p == NULL) {
            perror("realloc");
            exit(2);
        }
        b->ptr = p;
        b->cap = cap;
    }
    if (len > 0) {
        memcpy(b->ptr + b->len, data, len);
    }
    b->len += len;
}

static void
buf_free(struct buf *b)
{
    free(b->ptr);
    memset(b, 0, sizeof(*b));
}

static void
die_openssl(const char *what)
{
    fprintf(stderr, "%s failed\n", what);
    ERR_print_errors_fp(stderr);
    exit(2);
}

/* A self-signed certificate with CN and one DNS name, written as PEM. */
static void
make_cert(const char *cert_path, const char *key_path, const char *name, bool is_rsa)
{
    EVP_PKEY *pkey = is_rsa ? EVP_RSA_gen(2048) : EVP_EC_gen("P-256");
    X509 *cert = X509_new();
    if (pkey == NULL || cert == NULL) {
        die_openssl("key");
    }
    X509_set_version(cert, X509_VERSION_3);
    ASN1_INTEGER_set(X509_get_serialNumber(cert), 1000 + (long)strlen(name));
    X509_gmtime_adj(X509_getm_notBefore(cert), -60);
    X509_gmtime_adj(X509_getm_notAfter(cert), 86400);
    X509_set_pubkey(cert, pkey);
    X509_NAME *subject = X509_get_subject_name(cert);
    X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_ASC, (const unsigned char *)name, -1, -1,
                               0);
    X509_set_issuer_name(cert, subject);
    char san[300];
    (void)snprintf(san, sizeof(san), "DNS:%s", name);
    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, cert, cert, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, NID_subject_alt_name, san);
    if (ext == NULL || X509_add_ext(cert, ext, -1) != 1) {
        die_openssl("san");
    }
    X509_EXTENSION_free(ext);
    if (X509_sign(cert, pkey, EVP_sha256()) <= 0) {
        die_openssl("sign");
    }
    FILE *f = fopen(cert_path, "w");
    if (f == NULL || PEM_write_X509(f, cert) != 1 || fclose(f) != 0) {
        die_openssl(cert_path);
    }
    f = fopen(key_path, "w");
    if (f == NULL || PEM_write_PrivateKey(f, pkey, NULL, NULL, 0, NULL, NULL) != 1 ||
        fclose(f) != 0) {
        die_openssl(key_path);
    }
    X509_free(cert);
    EVP_PKEY_free(pkey);
}

/* The client: an OpenSSL SSL on two memory BIOs. */
struct client {
    SSL_CTX *ctx;
    SSL     *ssl;
    BIO     *rbio; /* what the server sent, for the client to read */
    BIO     *wbio; /* what the client wrote, for the server */
};

static void
client_open(struct client *c, int min_version, int max_version, const char *ciphers,
            const char *sni, SSL_SESSION *session)
{
    memset(c, 0, sizeof(*c));
    c->ctx = SSL_CTX_new(TLS_client_method());
    if (c->ctx == NULL) {
        die_openssl("client ctx");
    }
    SSL_CTX_set_min_proto_version(c->ctx, min_version);
    SSL_CTX_set_max_proto_version(c->ctx, max_version);
    if (ciphers != NULL && SSL_CTX_set_cipher_list(c->ctx, ciphers) != 1) {
        die_openssl("client ciphers");
    }
    SSL_CTX_set_verify(c->ctx, SSL_VERIFY_NONE, NULL);
    c->ssl = SSL_new(c->ctx);
    c->rbio = BIO_new(BIO_s_mem());
    c->wbio = BIO_new(BIO_s_mem());
    if (c->ssl == NULL || c->rbio == NULL || c->wbio == NULL) {
        die_openssl("client ssl");
    }
    BIO_set_mem_eof_return(c->rbio, -1); /* empty means "retry", not EOF */
    SSL_set_bio(c->ssl, c->rbio, c->wbio);
    SSL_set_connect_state(c->ssl);
    if (sni != NULL) {
        SSL_set_tlsext_host_name(c->ssl, sni);
    }
    if (session != NULL) {
        SSL_set_session(c->ssl, session);
    }
}

static void
client_close(struct client *c)
{
    /* Freeing a connection that did not shut down marks its session not
     * resumable (OpenSSL's guard against truncation), which would spoil
     * the resumption test: call it shut down, as a client that sent
     * close_notify would. */
    SSL_set_shutdown(c->ssl, SSL_SENT_SHUTDOWN);
    SSL_free(c->ssl);
    SSL_CTX_free(c->ctx);
    memset(c, 0, sizeof(*c));
}

/* Everything the client wrote so far. */
static void
client_take(struct client *c, struct buf *out)
{
    uint8_t tmp[8192];
    int n;
    while ((n = BIO_read(c->wbio, tmp, sizeof(tmp))) > 0) {
        buf_append(out, tmp, (size_t)n);
    }
}

/* Whatever the server has to send goes to the client. */
static void
server_to_client(struct tls_conn *conn, struct client *c)
{
    struct span out = tls_conn_output(conn);
    CHECK(out.len <= TLS_OUTPUT_MAX);
    if (out.len > 0) {
        CHECK(BIO_write(c->rbio, out.ptr, (int)out.len) == (int)out.len);
        tls_conn_output_sent(conn, out.len);
    }
}

/* Read what the client can; returns the SSL error that stopped it. */
static int
client_read(struct client *c, struct buf *plain)
{
    uint8_t tmp[16384];
    size_t got = 0;
    while (SSL_read_ex(c->ssl, tmp, sizeof(tmp), &got) == 1) {
        buf_append(plain, tmp, got);
    }
    return SSL_get_error(c->ssl, 0);
}

/* Feed data to the server in pieces of at most piece bytes, plaintext into
 * an out buffer of out_bytes, checking the in_used promise on each call:
 * all of the piece unless out filled. The server's output goes to c. */
static enum tls_status
feed(struct tls_conn *conn, const uint8_t *data, size_t len, size_t piece, size_t out_bytes,
     struct buf *plain, struct client *c)
{
    uint8_t *out = malloc(out_bytes);
    if (out == NULL) {
        exit(2);
    }
    size_t pos = 0;
    enum tls_status status = TLS_OK;
    size_t calls_max = 10 * (len + 10);
    for (size_t calls = 0; calls < calls_max; calls++) {
        if (pos == len && !tls_conn_has_plaintext(conn)) {
            break;
        }
        size_t n = len - pos < piece ? len - pos : piece;
        size_t used = 99999999, got = 99999999;
        status = tls_conn_input(conn, data + pos, n, &used, out, out_bytes, &got);
        CHECK(used <= n);
        CHECK(got <= out_bytes);
        if (used > n || got > out_bytes) {
            break;
        }
        if (status == TLS_OK && got < out_bytes && used != n) {
            CHECK(used == n); /* everything taken unless out filled */
        }
        buf_append(plain, out, got);
        pos += used;
        if (c != NULL) {
            server_to_client(conn, c);
        }
        if (status != TLS_OK) {
            break;
        }
    }
    free(out);
    return status;
}

/* Run the handshake; true when both sides finished it. */
static bool
handshake(struct client *c, struct tls_conn *conn, enum tls_status *status_out)
{
    *status_out = TLS_OK;
    for (int round = 0; round < 20; round++) {
        int rc = SSL_do_handshake(c->ssl);
        int error = rc == 1 ? SSL_ERROR_NONE : SSL_get_error(c->ssl, rc);
        struct buf wire = { 0 };
        client_take(c, &wire);
        struct buf plain = { 0 };
        *status_out = feed(conn, wire.ptr, wire.len, wire.len ? wire.len : 1, 16384, &plain, c);
        CHECK(plain.len == 0);
        buf_free(&wire);
        buf_free(&plain);
        if (*status_out != TLS_OK) {
            return false;
        }
        if (rc == 1 && tls_conn_is_established(conn)) {
            return true;
        }
        if (rc != 1 && error != SSL_ERROR_WANT_READ) {
            return false;
        }
    }
    return false;
}

static void
fill_pattern(uint8_t *p, size_t len, uint32_t seed)
{
    uint32_t x = seed * 2654435761u + 1;
    for (size_t i = 0; i < len; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        p[i] = (uint8_t)x;
    }
}

static struct tls_server *
server_with(const char *cert, const char *key, bool with_sni)
{
    config_defaults(&test_config);
    char err[512];
    char data_dir[700];
    (void)snprintf(data_dir, sizeof(data_dir), "%s/data", tmp_dir);
    CHECK(config_set(&test_config, "data_dir", data_dir, err, sizeof(err)) == 0);
    CHECK(config_set(&test_config, "myhostname", "mx.test.example", err, sizeof(err)) == 0);
    CHECK(config_set(&test_config, "tls_cert", cert, err, sizeof(err)) == 0);
    CHECK(config_set(&test_config, "tls_key", key, err, sizeof(err)) == 0);
    if (with_sni) {
        char line[1400];
        (void)snprintf(line, sizeof(line), "Mail.Example.ORG %s %s", path_a_cert, path_a_key);
        CHECK(config_set(&test_config, "tls_sni", line, err, sizeof(err)) == 0);
        (void)snprintf(line, sizeof(line), "*.example.net %s %s", path_b_cert, path_b_key);
        CHECK(config_set(&test_config, "tls_sni", line, err, sizeof(err)) == 0);
    }
    CHECK(config_finish(&test_config, err, sizeof(err)) == 0);
    struct tls_server *server = NULL;
    int rc = tls_server_create(&test_config, &server, err, sizeof(err));
    if (rc != 0) {
        fprintf(stderr, "tls_server_create: %s\n", err);
    }
    CHECK(rc == 0);
    CHECK(server != NULL);
    return server;
}

/* One megabyte each way, the client's ciphertext fed in odd pieces. */
static void
check_bulk(struct client *c, struct tls_conn *conn, size_t piece, size_t out_bytes)
{
    uint8_t *data = malloc(MIB);
    if (data == NULL) {
        exit(2);
    }
    fill_pattern(data, MIB, (uint32_t)piece);

    /* Client to server. */
    size_t written = 0;
    CHECK(SSL_write_ex(c->ssl, data, MIB, &written) == 1);
    CHECK(written == MIB);
    struct buf wire = { 0 };
    client_take(c, &wire);
    CHECK(wire.len > MIB);
    struct buf plain = { 0 };
    CHECK(feed(conn, wire.ptr, wire.len, piece, out_bytes, &plain, c) == TLS_OK);
    CHECK_BYTES(plain.ptr, plain.len, data, (size_t)MIB);
    buf_free(&wire);
    buf_free(&plain);

    /* Server to client, as fast as the output drains. */
    size_t sent = 0;
    struct buf got = { 0 };
    for (int rounds = 0; sent < MIB && rounds < 100000; rounds++) {
        size_t want = MIB - sent < 50000 ? MIB - sent : 50000;
        long n = tls_conn_write(conn, data + sent, want);
        CHECK(n >= 0);
        if (n < 0) {
            break;
        }
        CHECK(tls_conn_output(conn).len <= TLS_OUTPUT_MAX);
        sent += (size_t)n;
        server_to_client(conn, c);
        (void)client_read(c, &got);
    }
    CHECK(sent == MIB);
    CHECK_BYTES(got.ptr, got.len, data, (size_t)MIB);
    buf_free(&got);
    free(data);
}

static void
check_small_exchange(struct client *c, struct tls_conn *conn)
{
    static const char hello[] = "EHLO client.example\r\n";
    CHECK(SSL_write(c->ssl, hello, (int)strlen(hello)) == (int)strlen(hello));
    struct buf wire = { 0 }, plain = { 0 };
    client_take(c, &wire);
    CHECK(feed(conn, wire.ptr, wire.len, wire.len, 4096, &plain, c) == TLS_OK);
    CHECK_BYTES(plain.ptr, plain.len, hello, strlen(hello));
    static const char reply[] = "250 mx.test.example\r\n";
    CHECK(tls_conn_write(conn, (const uint8_t *)reply, strlen(reply)) == (long)strlen(reply));
    server_to_client(conn, c);
    struct buf got = { 0 };
    CHECK(client_read(c, &got) == SSL_ERROR_WANT_READ);
    CHECK_BYTES(got.ptr, got.len, reply, strlen(reply));
    buf_free(&wire);
    buf_free(&plain);
    buf_free(&got);
}

static void
test_tls13_and_tls12(void)
{
    struct tls_server *server = server_with(path_default_cert, path_default_key, false);
    if (server == NULL) {
        return;
    }
    static const size_t pieces[] = { 13, 1000, 4093, 16389, 65537, 10 * MIB };
    static const size_t out_sizes[] = { 700, 16384, 5, 100000, 16383, 64 * 1024 };
    for (int v = 0; v < 2; v++) {
        for (size_t i = 0; i < sizeof(pieces) / sizeof(pieces[0]); i++) {
            struct client c;
            int version = v == 0 ? TLS1_3_VERSION : TLS1_2_VERSION;
            client_open(&c, TLS1_2_VERSION, version, NULL, NULL, NULL);
            struct tls_conn *conn = tls_conn_new(server);
            CHECK(conn != NULL);
            CHECK(!tls_conn_is_established(conn));
            CHECK(tls_conn_write(conn, (const uint8_t *)"x", 1) == 0);
            enum tls_status status;
            CHECK(handshake(&c, conn, &status));
            CHECK(status == TLS_OK);
            CHECK(tls_conn_is_established(conn));
            CHECK_STR(tls_conn_version(conn), v == 0 ? "TLSv1.3" : "TLSv1.2");
            CHECK_STR(SSL_get_version(c.ssl), tls_conn_version(conn));
            CHECK_STR(tls_conn_cipher(conn), SSL_get_cipher_name(c.ssl));
            if (v == 1) {
                CHECK(strncmp(tls_conn_cipher(conn), "ECDHE-RSA-", 10) == 0);
            }
            CHECK(tls_conn_cipher_bits(conn) >= 128);
            CHECK(tls_conn_server_name(conn) == NULL);
            CHECK(!tls_conn_is_resumed(conn));
            CHECK_STR(tls_conn_failure(conn), "");
            check_small_exchange(&c, conn);
            check_bulk(&c, conn, pieces[i], out_sizes[i]);
            tls_conn_free(&conn);
            CHECK(conn == NULL);
            client_close(&c);
        }
    }
    tls_server_free(&server);
    CHECK(server == NULL);
}

/* The server's answer to a client it refuses: TLS_FAILED, a reason, and
 * an alert record (content type 21) to send before closing. */
static void
check_refused(struct tls_server *server, int min_version, int max_version, const char *ciphers)
{
    struct client c;
    client_open(&c, min_version, max_version, ciphers, NULL, NULL);
    struct tls_conn *conn = tls_conn_new(server);
    CHECK(conn != NULL);
    CHECK(SSL_do_handshake(c.ssl) != 1);
    struct buf wire = { 0 }, plain = { 0 };
    client_take(&c, &wire);
    CHECK(wire.len > 0);
    uint8_t out[1024];
    size_t used = 0, got = 0;
    enum tls_status status = tls_conn_input(conn, wire.ptr, wire.len, &used, out, sizeof(out),
                                            &got);
    CHECK(status == TLS_FAILED);
    CHECK(got == 0);
    CHECK(tls_conn_failure(conn)[0] != '\0');
    struct span alert = tls_conn_output(conn);
    CHECK(alert.len >= 7);
    CHECK(alert.len > 0 && (uint8_t)alert.ptr[0] == 21);
    CHECK(!tls_conn_is_established(conn));
    /* Sticky: nothing more is taken or produced. */
    CHECK(tls_conn_input(conn, wire.ptr, wire.len, &used, out, sizeof(out), &got) == TLS_FAILED);
    CHECK(used == 0 && got == 0);
    CHECK(tls_conn_write(conn, (const uint8_t *)"x", 1) == -1);
    tls_conn_close_notify(conn);
    /* The client learns why. */
    server_to_client(conn, &c);
    CHECK(SSL_do_handshake(c.ssl) != 1);
    buf_free(&wire);
    buf_free(&plain);
    tls_conn_free(&conn);
    client_close(&c);
}

static void
test_refusals(void)
{
    struct tls_server *server = server_with(path_default_cert, path_default_key, false);
    if (server == NULL) {
        return;
    }
    /* OpenSSL 3 needs security level 0 to speak TLS 1.1 at all. */
    check_refused(server, TLS1_1_VERSION, TLS1_1_VERSION, "DEFAULT:@SECLEVEL=0");
    check_refused(server, TLS1_VERSION, TLS1_VERSION, "DEFAULT:@SECLEVEL=0");
    /* TLS 1.2 with CBC, static RSA or finite-field DHE only. */
    check_refused(server, TLS1_2_VERSION, TLS1_2_VERSION,
                  "AES128-SHA:AES256-SHA256:AES128-GCM-SHA256:DHE-RSA-AES128-GCM-SHA256:"
                  "ECDHE-RSA-AES128-SHA:ECDHE-RSA-AES256-SHA384");
    tls_server_free(&server);
}

static void
check_peer_cn(struct client *c, const char *want)
{
    X509 *peer = SSL_get1_peer_certificate(c->ssl);
    CHECK(peer != NULL);
    if (peer == NULL) {
        return;
    }
    char cn[256] = "";
    X509_NAME_get_text_by_NID(X509_get_subject_name(peer), NID_commonName, cn, sizeof(cn));
    CHECK_STR(cn, want);
    /* The SAN carries the same name. */
    CHECK(X509_check_host(peer, want, 0, 0, NULL) == 1);
    X509_free(peer);
}

static void
test_sni(void)
{
    struct tls_server *server = server_with(path_default_cert, path_default_key, true);
    if (server == NULL) {
        return;
    }
    static const struct {
        const char *sni;
        const char *cn;
    } cases[] = {
        { "mail.example.org", "mail.example.org" },
        { "MAIL.example.Org", "mail.example.org" },
        { "imap.example.net", "wild.example.net" },
        { "Smtp.Example.NET", "wild.example.net" },
        { "a.b.example.net", "default.example.com" },
        { "example.net", "default.example.com" },
        { "other.example.com", "default.example.com" },
        { "example.org", "default.example.com" },
        { NULL, "default.example.com" },
    };
    for (int v = 0; v < 2; v++) {
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
            struct client c;
            client_open(&c, TLS1_2_VERSION, v == 0 ? TLS1_3_VERSION : TLS1_2_VERSION, NULL,
                        cases[i].sni, NULL);
            struct tls_conn *conn = tls_conn_new(server);
            enum tls_status status;
            CHECK(handshake(&c, conn, &status));
            check_peer_cn(&c, cases[i].cn);
            if (cases[i].sni != NULL) {
                CHECK(tls_conn_server_name(conn) != NULL &&
                      strcmp(tls_conn_server_name(conn), cases[i].sni) == 0);
            } else {
                CHECK(tls_conn_server_name(conn) == NULL);
            }
            check_small_exchange(&c, conn);
            tls_conn_free(&conn);
            client_close(&c);
        }
    }
    tls_server_free(&server);
}

static void
test_resumption(void)
{
    struct tls_server *server = server_with(path_default_cert, path_default_key, true);
    if (server == NULL) {
        return;
    }
    static const struct {
        const char *sni;
        const char *cn;
    } names[] = {
        { NULL, "default.example.com" },
        { "mail.example.org", "mail.example.org" },
        { "pop.example.net", "wild.example.net" },
    };
    for (int v = 0; v < 4; v++) {
        int version = v % 2 == 0 ? TLS1_3_VERSION : TLS1_2_VERSION;
        for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
            struct client c;
            client_open(&c, TLS1_2_VERSION, version, NULL, names[i].sni, NULL);
            struct tls_conn *conn = tls_conn_new(server);
            enum tls_status status;
            CHECK(handshake(&c, conn, &status));
            /* The client takes in the tickets with the first data. */
            check_small_exchange(&c, conn);
            SSL_SESSION *session = SSL_get1_session(c.ssl);
            CHECK(session != NULL);
            CHECK(SSL_SESSION_is_resumable(session) == 1);
            CHECK(!SSL_session_reused(c.ssl));
            CHECK(!tls_conn_is_resumed(conn));
            tls_conn_free(&conn);
            client_close(&c);

            /* A second connection, on the same server (any reactor). */
            client_open(&c, TLS1_2_VERSION, version, NULL, names[i].sni, session);
            conn = tls_conn_new(server);
            CHECK(handshake(&c, conn, &status));
            if (SSL_session_reused(c.ssl) != 1) {
                fprintf(stderr, "not resumed: version %d sni %s\n", version,
                        names[i].sni ? names[i].sni : "(none)");
            }
            CHECK(SSL_session_reused(c.ssl) == 1);
            CHECK(tls_conn_is_resumed(conn));
            check_peer_cn(&c, names[i].cn);
            check_small_exchange(&c, conn);
            tls_conn_free(&conn);
            client_close(&c);
            SSL_SESSION_free(session);
        }
    }
    tls_server_free(&server);
}

static void
check_garbage(struct tls_server *server, const uint8_t *bytes, size_t len, size_t piece)
{
    struct tls_conn *conn = tls_conn_new(server);
    CHECK(conn != NULL);
    struct buf plain = { 0 };
    enum tls_status status = feed(conn, bytes, len, piece, 512, &plain, NULL);
    CHECK(status == TLS_FAILED);
    CHECK(plain.len == 0);
    CHECK(tls_conn_failure(conn)[0] != '\0');
    CHECK(!tls_conn_is_established(conn));
    CHECK(tls_conn_output(conn).len <= TLS_OUTPUT_MAX);
    tls_conn_trim(conn);
    buf_free(&plain);
    tls_conn_free(&conn);
}

static void
test_garbage(void)
{
    struct tls_server *server = server_with(path_default_cert, path_default_key, false);
    if (server == NULL) {
        return;
    }
    static const char http[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    check_garbage(server, (const uint8_t *)http, strlen(http), 1);
    check_garbage(server, (const uint8_t *)http, strlen(http), 1000);
    static const char smtp[] = "EHLO foo\r\n";
    check_garbage(server, (const uint8_t *)smtp, strlen(smtp), 3);
    /* A handshake record header with a huge length, then junk. */
    static const uint8_t huge[] = { 0x16, 0x03, 0x01, 0xff, 0xff, 1, 2, 3, 4, 5, 6, 7, 8 };
    struct tls_conn *conn = tls_conn_new(server);
    uint8_t out[64];
    size_t used = 0, got = 0;
    enum tls_status status = tls_conn_input(conn, huge, sizeof(huge), &used, out, sizeof(out),
                                            &got);
    CHECK(status == TLS_FAILED || (status == TLS_OK && used == sizeof(huge)));
    tls_conn_free(&conn);
    /* A handshake record holding a nonsense message. */
    static const uint8_t bad_hello[] = { 0x16, 0x03, 0x01, 0x00, 0x08, 0x01, 0x00, 0x00, 0x04,
                                         0xde, 0xad, 0xbe, 0xef };
    check_garbage(server, bad_hello, sizeof(bad_hello), 5);
    uint8_t *noise = malloc(100000);
    for (uint32_t seed = 1; seed <= 20; seed++) {
        fill_pattern(noise, 100000, seed);
        check_garbage(server, noise, 100000, seed * 97);
    }
    free(noise);
    tls_server_free(&server);
}

static void
test_close_notify(void)
{
    struct tls_server *server = server_with(path_default_cert, path_default_key, false);
    if (server == NULL) {
        return;
    }
    for (int v = 0; v < 2; v++) {
        struct client c;
        client_open(&c, TLS1_2_VERSION, v == 0 ? TLS1_3_VERSION : TLS1_2_VERSION, NULL, NULL,
                    NULL);
        struct tls_conn *conn = tls_conn_new(server);
        enum tls_status status;
        CHECK(handshake(&c, conn, &status));
        check_small_exchange(&c, conn);
        /* Plaintext, then close_notify, in one piece: both come out. */
        CHECK(SSL_write(c.ssl, "QUIT\r\n", 6) == 6);
        CHECK(SSL_shutdown(c.ssl) == 0);
        struct buf wire = { 0 }, plain = { 0 };
        client_take(&c, &wire);
        uint8_t out[256];
        size_t used = 0, got = 0;
        status = tls_conn_input(conn, wire.ptr, wire.len, &used, out, sizeof(out), &got);
        CHECK(status == TLS_CLOSED);
        CHECK(used == wire.len);
        CHECK_BYTES(out, got, "QUIT\r\n", (size_t)6);
        CHECK(tls_conn_input(conn, NULL, 0, &used, out, sizeof(out), &got) == TLS_CLOSED);
        CHECK_STR(tls_conn_failure(conn), "");
        /* Our reply and our close_notify still go out. */
        CHECK(tls_conn_write(conn, (const uint8_t *)"221 bye\r\n", 9) == 9);
        tls_conn_close_notify(conn);
        tls_conn_close_notify(conn); /* once only */
        CHECK(tls_conn_write(conn, (const uint8_t *)"x", 1) == -1);
        server_to_client(conn, &c);
        struct buf got_plain = { 0 };
        CHECK(client_read(&c, &got_plain) == SSL_ERROR_ZERO_RETURN);
        CHECK_BYTES(got_plain.ptr, got_plain.len, "221 bye\r\n", (size_t)9);
        buf_free(&wire);
        buf_free(&plain);
        buf_free(&got_plain);
        tls_conn_free(&conn);
        client_close(&c);
    }
    /* close_notify from the server side first. */
    struct client c;
    client_open(&c, TLS1_2_VERSION, TLS1_3_VERSION, NULL, NULL, NULL);
    struct tls_conn *conn = tls_conn_new(server);
    tls_conn_close_notify(conn); /* before the handshake: nothing */
    CHECK(tls_conn_output(conn).len == 0);
    enum tls_status status;
    CHECK(handshake(&c, conn, &status));
    tls_conn_close_notify(conn);
    server_to_client(conn, &c);
    struct buf got_plain = { 0 };
    CHECK(client_read(&c, &got_plain) == SSL_ERROR_ZERO_RETURN);
    CHECK(got_plain.len == 0);
    buf_free(&got_plain);
    tls_conn_free(&conn);
    client_close(&c);
    tls_server_free(&server);
}

static bool
read_cert_der(const char *path, struct buf *der)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return false;
    }
    X509 *cert = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    if (cert == NULL) {
        return false;
    }
    unsigned char *p = NULL;
    int n = i2d_X509(cert, &p);
    bool ok = n > 0;
    if (ok) {
        buf_append(der, p, (size_t)n);
    }
    OPENSSL_free(p);
    X509_free(cert);
    return ok;
}

static void
test_selfsigned(void)
{
    char data_dir[700], cert_path[900], key_path[900], tls_dir[800];
    (void)snprintf(data_dir, sizeof(data_dir), "%s/fresh", tmp_dir);
    (void)snprintf(tls_dir, sizeof(tls_dir), "%s/tls", data_dir);
    (void)snprintf(cert_path, sizeof(cert_path), "%s/selfsigned.pem", tls_dir);
    (void)snprintf(key_path, sizeof(key_path), "%s/selfsigned.key", tls_dir);
    char err[512];
    config_defaults(&test_config);
    CHECK(config_set(&test_config, "data_dir", data_dir, err, sizeof(err)) == 0);
    CHECK(config_set(&test_config, "myhostname", "mx1.selfsigned.example", err,
                     sizeof(err)) == 0);
    CHECK(config_finish(&test_config, err, sizeof(err)) == 0);

    struct tls_server *server = NULL;
    int rc = tls_server_create(&test_config, &server, err, sizeof(err));
    if (rc != 0) {
        fprintf(stderr, "self-signed: %s\n", err);
    }
    CHECK(rc == 0);
    struct stat st;
    CHECK(stat(key_path, &st) == 0 && (st.st_mode & 0777) == 0600);
    CHECK(stat(tls_dir, &st) == 0 && (st.st_mode & 0777) == 0700);
    CHECK(stat(cert_path, &st) == 0);
    char tmp_path[1000];
    (void)snprintf(tmp_path, sizeof(tmp_path), "%s.tmp", key_path);
    CHECK(access(tmp_path, F_OK) != 0);
    struct buf first = { 0 }, second = { 0 }, served = { 0 };
    CHECK(read_cert_der(cert_path, &first));

    /* It serves that certificate, with the host name in CN and SAN, and an
     * ECDSA key (so the TLS 1.2 suite is ECDHE-ECDSA). */
    for (int v = 0; v < 2 && server != NULL; v++) {
        struct client c;
        client_open(&c, TLS1_2_VERSION, v == 0 ? TLS1_3_VERSION : TLS1_2_VERSION, NULL, NULL,
                    NULL);
        struct tls_conn *conn = tls_conn_new(server);
        enum tls_status status;
        CHECK(handshake(&c, conn, &status));
        check_peer_cn(&c, "mx1.selfsigned.example");
        if (v == 1) {
            CHECK(strncmp(tls_conn_cipher(conn), "ECDHE-ECDSA-", 12) == 0);
        }
        X509 *peer = SSL_get1_peer_certificate(c.ssl);
        if (v == 0 && peer != NULL) {
            unsigned char *p = NULL;
            int n = i2d_X509(peer, &p);
            if (n > 0) {
                buf_append(&served, p, (size_t)n);
            }
            OPENSSL_free(p);
            EVP_PKEY *pub = X509_get0_pubkey(peer);
            CHECK(pub != NULL && EVP_PKEY_is_a(pub, "EC"));
            /* Ten years, give or take the back-dating. */
            int days = 0, secs = 0;
            CHECK(ASN1_TIME_diff(&days, &secs, X509_get0_notBefore(peer),
                                 X509_get0_notAfter(peer)) == 1);
            CHECK(days >= 3650 && days <= 3651);
        }
        X509_free(peer);
        check_small_exchange(&c, conn);
        tls_conn_free(&conn);
        client_close(&c);
    }
    CHECK_BYTES(served.ptr, served.len, first.ptr, first.len);
    tls_server_free(&server);

    /* The second start loads the same pair. */
    rc = tls_server_create(&test_config, &server, err, sizeof(err));
    CHECK(rc == 0);
    CHECK(read_cert_der(cert_path, &second));
    CHECK_BYTES(second.ptr, second.len, first.ptr, first.len);
    tls_server_free(&server);

    /* A lost certificate (crash between the two renames): a new pair. */
    CHECK(unlink(cert_path) == 0);
    rc = tls_server_create(&test_config, &server, err, sizeof(err));
    CHECK(rc == 0);
    buf_free(&second);
    CHECK(read_cert_der(cert_path, &second));
    CHECK(second.len > 0 && (second.len != first.len ||
                             memcmp(second.ptr, first.ptr, first.len) != 0));
    tls_server_free(&server);

    buf_free(&first);
    buf_free(&second);
    buf_free(&served);
}

static void
test_bad_files(void)
{
    char err[1024];
    struct tls_server *server = NULL;
    config_defaults(&test_config);
    char data_dir[700];
    (void)snprintf(data_dir, sizeof(data_dir), "%s/data", tmp_dir);
    CHECK(config_set(&test_config, "data_dir", data_dir, err, sizeof(err)) == 0);

    /* Certificate of one pair, key of another. */
    CHECK(config_set(&test_config, "tls_cert", path_a_cert, err, sizeof(err)) == 0);
    CHECK(config_set(&test_config, "tls_key", path_b_key, err, sizeof(err)) == 0);
    CHECK(config_finish(&test_config, err, sizeof(err)) == 0);
    CHECK(tls_server_create(&test_config, &server, err, sizeof(err)) == -EINVAL);
    CHECK(server == NULL);
    CHECK(strstr(err, path_b_key) != NULL);
    CHECK(strstr(err, path_a_cert) != NULL);
    CHECK(strstr(err, "tls_cert") != NULL);

    /* A file that is not there. */
    char missing[700];
    (void)snprintf(missing, sizeof(missing), "%s/missing.pem", tmp_dir);
    CHECK(config_set(&test_config, "tls_cert", missing, err, sizeof(err)) == 0);
    CHECK(tls_server_create(&test_config, &server, err, sizeof(err)) == -ENOENT);
    CHECK(strstr(err, missing) != NULL);
    CHECK(strstr(err, "No such file") != NULL);

    /* A key file that holds a certificate. */
    CHECK(config_set(&test_config, "tls_cert", path_a_cert, err, sizeof(err)) == 0);
    CHECK(config_set(&test_config, "tls_key", path_a_cert, err, sizeof(err)) == 0);
    CHECK(tls_server_create(&test_config, &server, err, sizeof(err)) == -EINVAL);
    CHECK(strstr(err, path_a_cert) != NULL);
    CHECK(strstr(err, "no PEM private key") != NULL);

    /* Only one of the two. */
    CHECK(config_set(&test_config, "tls_key", "", err, sizeof(err)) == 0);
    CHECK(config_finish(&test_config, err, sizeof(err)) == -EINVAL);
    CHECK(strstr(err, "tls_key") != NULL);
    CHECK(tls_server_create(&test_config, &server, err, sizeof(err)) == -EINVAL);
    CHECK(server == NULL);

    /* A bad tls_sni pair names the domain and the file. */
    config_defaults(&test_config);
    CHECK(config_set(&test_config, "data_dir", data_dir, err, sizeof(err)) == 0);
    CHECK(config_set(&test_config, "tls_cert", path_default_cert, err, sizeof(err)) == 0);
    CHECK(config_set(&test_config, "tls_key", path_default_key, err, sizeof(err)) == 0);
    char line[1400];
    (void)snprintf(line, sizeof(line), "x.example %s %s", path_a_cert, path_default_key);
    CHECK(config_set(&test_config, "tls_sni", line, err, sizeof(err)) == 0);
    CHECK(tls_server_create(&test_config, &server, err, sizeof(err)) == -EINVAL);
    CHECK(strstr(err, "x.example") != NULL);
    CHECK(strstr(err, path_default_key) != NULL);
    CHECK(server == NULL);
}

static void
test_trim(void)
{
    struct tls_server *server = server_with(path_default_cert, path_default_key, false);
    if (server == NULL) {
        return;
    }
    for (int v = 0; v < 2; v++) {
        struct client c;
        client_open(&c, TLS1_2_VERSION, v == 0 ? TLS1_3_VERSION : TLS1_2_VERSION, NULL, NULL,
                    NULL);
        struct tls_conn *conn = tls_conn_new(server);
        tls_conn_trim(conn); /* before anything: harmless */
        enum tls_status status;
        CHECK(handshake(&c, conn, &status));
        check_small_exchange(&c, conn);
        for (int round = 0; round < 3; round++) {
            tls_conn_trim(conn);
            CHECK(tls_conn_output(conn).len == 0);
            check_small_exchange(&c, conn);
        }
        /* Trim with part of a record inside: the part is kept. */
        CHECK(SSL_write(c.ssl, "NOOP\r\n", 6) == 6);
        struct buf wire = { 0 };
        client_take(&c, &wire);
        uint8_t out[64];
        size_t used = 0, got = 0;
        CHECK(tls_conn_input(conn, wire.ptr, 10, &used, out, sizeof(out), &got) == TLS_OK);
        CHECK(used == 10 && got == 0);
        tls_conn_trim(conn);
        CHECK(tls_conn_input(conn, wire.ptr + 10, wire.len - 10, &used, out, sizeof(out),
                             &got) == TLS_OK);
        CHECK(used == wire.len - 10);
        CHECK_BYTES(out, got, "NOOP\r\n", (size_t)6);
        buf_free(&wire);
        /* Output pending: trim keeps it. */
        CHECK(tls_conn_write(conn, (const uint8_t *)"250 ok\r\n", 8) == 8);
        size_t pending = tls_conn_output(conn).len;
        CHECK(pending > 8);
        tls_conn_trim(conn);
        CHECK(tls_conn_output(conn).len == pending);
        server_to_client(conn, &c);
        struct buf got_plain = { 0 };
        (void)client_read(&c, &got_plain);
        CHECK_BYTES(got_plain.ptr, got_plain.len, "250 ok\r\n", (size_t)8);
        buf_free(&got_plain);
        tls_conn_free(&conn);
        client_close(&c);
    }
    tls_server_free(&server);
}

/* The same client records fed whole and one byte at a time give the same
 * plaintext; a small out buffer stops input exactly at a record's end. */
static void
test_in_used(void)
{
    struct tls_server *server = server_with(path_default_cert, path_default_key, false);
    if (server == NULL) {
        return;
    }
    static const size_t sizes[] = { 1, 100, 16384, 3, 5000, 16384, 16384, 77 };
    size_t total = 0;
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        total += sizes[i];
    }
    uint8_t *plain_in = malloc(total);
    fill_pattern(plain_in, total, 7);
    struct buf results[2] = { { 0 }, { 0 } };
    for (int mode = 0; mode < 2; mode++) {
        struct client c;
        client_open(&c, TLS1_2_VERSION, TLS1_3_VERSION, NULL, NULL, NULL);
        struct tls_conn *conn = tls_conn_new(server);
        enum tls_status status;
        CHECK(handshake(&c, conn, &status));
        size_t pos = 0;
        for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
            CHECK(SSL_write(c.ssl, plain_in + pos, (int)sizes[i]) == (int)sizes[i]);
            pos += sizes[i];
        }
        struct buf wire = { 0 };
        client_take(&c, &wire);
        if (mode == 0) {
            /* One byte at a time: every byte is taken. */
            uint8_t out[TLS_RECORD_PLAIN_MAX];
            for (size_t k = 0; k < wire.len; k++) {
                size_t used = 0, got = 0;
                status = tls_conn_input(conn, wire.ptr + k, 1, &used, out, sizeof(out), &got);
                CHECK(status == TLS_OK);
                CHECK(used == 1);
                buf_append(&results[0], out, got);
            }
        } else {
            CHECK(feed(conn, wire.ptr, wire.len, wire.len, TLS_RECORD_PLAIN_MAX, &results[1],
                       &c) == TLS_OK);
        }
        buf_free(&wire);
        tls_conn_free(&conn);
        client_close(&c);
    }
    CHECK_BYTES(results[0].ptr, results[0].len, plain_in, total);
    CHECK_BYTES(results[1].ptr, results[1].len, plain_in, total);

    /* No read-ahead: with room for the first record only, input stops at
     * that record's end (TLS 1.3 adds 22 bytes to each record). */
    struct client c;
    client_open(&c, TLS1_2_VERSION, TLS1_3_VERSION, NULL, NULL, NULL);
    struct tls_conn *conn = tls_conn_new(server);
    enum tls_status status;
    CHECK(handshake(&c, conn, &status));
    CHECK(SSL_write(c.ssl, "first", 5) == 5);
    CHECK(SSL_write(c.ssl, "second", 6) == 6);
    struct buf wire = { 0 };
    client_take(&c, &wire);
    CHECK(wire.len == (5 + 22) + (6 + 22));
    uint8_t out[16];
    size_t used = 0, got = 0;
    CHECK(tls_conn_input(conn, wire.ptr, wire.len, &used, out, 5, &got) == TLS_OK);
    CHECK(used == 5 + 22);
    CHECK_BYTES(out, got, "first", (size_t)5);
    /* A record larger than out: the rest waits inside, and in_len 0
     * drains it. */
    CHECK(tls_conn_input(conn, wire.ptr + used, wire.len - used, &used, out, 4, &got) ==
          TLS_OK);
    CHECK(used == 6 + 22);
    CHECK_BYTES(out, got, "seco", (size_t)4);
    CHECK(tls_conn_has_plaintext(conn));
    CHECK(tls_conn_input(conn, NULL, 0, &used, out, sizeof(out), &got) == TLS_OK);
    CHECK(used == 0);
    CHECK_BYTES(out, got, "nd", (size_t)2);
    CHECK(!tls_conn_has_plaintext(conn));
    buf_free(&wire);
    tls_conn_free(&conn);
    client_close(&c);

    buf_free(&results[0]);
    buf_free(&results[1]);
    free(plain_in);
    tls_server_free(&server);
}

/* A peer that never reads: the output stops at TLS_OUTPUT_MAX, writes take
 * less, and it all flows once drained. */
static void
test_output_bound(void)
{
    struct tls_server *server = server_with(path_default_cert, path_default_key, false);
    if (server == NULL) {
        return;
    }
    struct client c;
    client_open(&c, TLS1_2_VERSION, TLS1_3_VERSION, NULL, NULL, NULL);
    struct tls_conn *conn = tls_conn_new(server);
    enum tls_status status;
    CHECK(handshake(&c, conn, &status));
    size_t len = 300000;
    uint8_t *data = malloc(len);
    fill_pattern(data, len, 3);
    size_t sent = 0;
    for (int round = 0; round < 10; round++) {
        long n = tls_conn_write(conn, data + sent, len - sent);
        CHECK(n >= 0);
        sent += (size_t)(n > 0 ? n : 0);
    }
    CHECK(sent > 0 && sent < len);
    CHECK(tls_conn_output(conn).len <= TLS_OUTPUT_MAX);
    CHECK(tls_conn_write(conn, data + sent, len - sent) == 0);
    /* Partly drained: the rest stays contiguous and more fits. */
    struct span out = tls_conn_output(conn);
    size_t half = out.len / 2;
    CHECK(BIO_write(c.rbio, out.ptr, (int)half) == (int)half);
    tls_conn_output_sent(conn, half);
    struct buf got = { 0 };
    for (int round = 0; round < 1000 && sent < len; round++) {
        long n = tls_conn_write(conn, data + sent, len - sent);
        CHECK(n >= 0);
        sent += (size_t)(n > 0 ? n : 0);
        server_to_client(conn, &c);
        (void)client_read(&c, &got);
    }
    CHECK(sent == len);
    CHECK_BYTES(got.ptr, got.len, data, len);
    buf_free(&got);
    free(data);
    tls_conn_free(&conn);
    client_close(&c);
    tls_server_free(&server);
}

/* TLS 1.3 KeyUpdate: each one the client requests gets an answer. A
 * client that requests thousands without reading fills our output; input
 * then stops (in_used short, out not full) until the output drains, and
 * nothing is lost either way. */
static void
test_key_update(void)
{
    struct tls_server *server = server_with(path_default_cert, path_default_key, false);
    if (server == NULL) {
        return;
    }
    struct client c;
    client_open(&c, TLS1_3_VERSION, TLS1_3_VERSION, NULL, NULL, NULL);
    struct tls_conn *conn = tls_conn_new(server);
    enum tls_status status;
    CHECK(handshake(&c, conn, &status));
    check_small_exchange(&c, conn);
    CHECK(SSL_key_update(c.ssl, SSL_KEY_UPDATE_REQUESTED) == 1);
    check_small_exchange(&c, conn);
    check_small_exchange(&c, conn);

    enum { UPDATES = 6000 };
    uint8_t expect[UPDATES];
    for (int i = 0; i < UPDATES; i++) {
        CHECK(SSL_key_update(c.ssl, SSL_KEY_UPDATE_REQUESTED) == 1);
        expect[i] = (uint8_t)i;
        CHECK(SSL_write(c.ssl, &expect[i], 1) == 1);
    }
    struct buf wire = { 0 }, plain = { 0 };
    client_take(&c, &wire);
    size_t pos = 0;
    int stops = 0;
    uint8_t out[1024];
    for (int round = 0; round < 100000 && pos < wire.len; round++) {
        size_t used = 0, got = 0;
        status = tls_conn_input(conn, wire.ptr + pos, wire.len - pos, &used, out, sizeof(out),
                                &got);
        CHECK(status == TLS_OK);
        if (status != TLS_OK) {
            break;
        }
        buf_append(&plain, out, got);
        pos += used;
        CHECK(tls_conn_output(conn).len <= TLS_OUTPUT_MAX);
        if (pos < wire.len && got < sizeof(out)) {
            stops++; /* output full: a write now takes nothing either */
            CHECK(tls_conn_write(conn, (const uint8_t *)"x", 1) == 0);
            server_to_client(conn, &c);
        }
    }
    CHECK(pos == wire.len);
    CHECK(stops > 0);
    CHECK_BYTES(plain.ptr, plain.len, expect, (size_t)UPDATES);
    /* The client reads every answer and the connection goes on. */
    size_t drained = 0;
    do {
        uint8_t none[16];
        size_t used = 0, got = 0;
        CHECK(tls_conn_input(conn, NULL, 0, &used, none, sizeof(none), &got) == TLS_OK);
        drained = tls_conn_output(conn).len;
        server_to_client(conn, &c);
        struct buf nothing = { 0 };
        CHECK(client_read(&c, &nothing) == SSL_ERROR_WANT_READ);
        CHECK(nothing.len == 0);
        buf_free(&nothing);
    } while (drained > 0);
    check_small_exchange(&c, conn);
    buf_free(&wire);
    buf_free(&plain);
    tls_conn_free(&conn);
    client_close(&c);
    tls_server_free(&server);
}

int
main(void)
{
    if (mkdtemp(tmp_dir) == NULL) {
        perror("mkdtemp");
        return 2;
    }
    (void)snprintf(path_default_cert, sizeof(path_default_cert), "%s/default.pem", tmp_dir);
    (void)snprintf(path_default_key, sizeof(path_default_key), "%s/default.key", tmp_dir);
    (void)snprintf(path_a_cert, sizeof(path_a_cert), "%s/a.pem", tmp_dir);
    (void)snprintf(path_a_key, sizeof(path_a_key), "%s/a.key", tmp_dir);
    (void)snprintf(path_b_cert, sizeof(path_b_cert), "%s/b.pem", tmp_dir);
    (void)snprintf(path_b_key, sizeof(path_b_key), "%s/b.key", tmp_dir);
    make_cert(path_default_cert, path_default_key, "default.example.com", true);
    make_cert(path_a_cert, path_a_key, "mail.example.org", false);
    make_cert(path_b_cert, path_b_key, "wild.example.net", false);

    test_tls13_and_tls12();
    test_refusals();
    test_sni();
    test_resumption();
    test_garbage();
    test_close_notify();
    test_selfsigned();
    test_bad_files();
    test_trim();
    test_in_used();
    test_output_bound();
    test_key_update();

    char cmd[600];
    (void)snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp_dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "could not remove %s\n", tmp_dir);
    }
    UNIT_DONE();
}
