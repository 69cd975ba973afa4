/*
 * tests/unit/test_tls_client.c - core/tls's client side (the delivery
 * agent's outgoing STARTTLS) against its own server side, both as
 * struct tls_conn, all in memory: the three checks (none: any certificate,
 * the result only reported; name: chain and name; DANE: TLSA records, RFC
 * 7672), data both ways, SNI, a trust anchor from a CA file or the
 * system's store, and the argument bounds. The server's certificate is the
 * self-signed default tls_server_create() makes under a temporary
 * data_dir.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "core/config.h"
#include "core/tls.h"
#include "tests/unit/unit.h"

static char tmp_dir[] = "/tmp/toaster-tls-client-XXXXXX";
static char cert_path[600];
static struct config server_config; /* big: on the heap of the program, not the stack */

/* Ciphertext both ways until both handshakes finish, one fails, or
 * nothing moves. Returns true when both are established. */
static bool
pump(struct tls_conn *client, struct tls_conn *server, enum tls_status *client_status,
     enum tls_status *server_status)
{
    *client_status = TLS_OK;
    *server_status = TLS_OK;
    uint8_t plain[256];
    for (int round = 0; round < 50; round++) {
        bool moved = false;
        struct span out = tls_conn_output(client);
        size_t used = 0, got = 0;
        *server_status = tls_conn_input(server, (const uint8_t *)out.ptr, out.len, &used, plain,
                                        sizeof(plain), &got);
        CHECK(got == 0);
        tls_conn_output_sent(client, used);
        moved = moved || used > 0;
        out = tls_conn_output(server);
        *client_status = tls_conn_input(client, (const uint8_t *)out.ptr, out.len, &used, plain,
                                        sizeof(plain), &got);
        CHECK(got == 0);
        tls_conn_output_sent(server, used);
        moved = moved || used > 0;
        if (*client_status != TLS_OK || *server_status != TLS_OK) {
            return false;
        }
        if (tls_conn_is_established(client) && tls_conn_is_established(server) &&
            tls_conn_output(client).len == 0 && tls_conn_output(server).len == 0) {
            return true;
        }
        if (!moved && round > 0) {
            return false;
        }
    }
    return false;
}

/* from writes text; to reads it back whole. */
static void
check_send(struct tls_conn *from, struct tls_conn *to, const char *text)
{
    size_t len = strlen(text);
    CHECK(tls_conn_write(from, (const uint8_t *)text, len) == (long)len);
    struct span out = tls_conn_output(from);
    uint8_t plain[256];
    size_t used = 0, got = 0;
    CHECK(tls_conn_input(to, (const uint8_t *)out.ptr, out.len, &used, plain, sizeof(plain),
                         &got) == TLS_OK);
    tls_conn_output_sent(from, used);
    CHECK(got == len && memcmp(plain, text, len) == 0);
}

/* A handshake of a new client connection against a new server one. */
static int
connect_pair(struct tls_client *client, struct tls_server *server, const char *name,
             enum tls_verify verify, const struct tls_tlsa *tlsa, size_t tlsa_count,
             struct tls_conn **client_conn_out, struct tls_conn **server_conn_out,
             bool *is_established_out)
{
    *client_conn_out = NULL;
    *server_conn_out = NULL;
    *is_established_out = false;
    int rc = tls_conn_new_client(client, name, verify, tlsa, tlsa_count, client_conn_out);
    if (rc != 0) {
        return rc;
    }
    *server_conn_out = tls_conn_new(server);
    CHECK(*server_conn_out != NULL);
    if (*server_conn_out == NULL) {
        tls_conn_free(client_conn_out);
        return -ENOMEM;
    }
    /* The ClientHello comes from a call with no input. */
    uint8_t plain[16];
    size_t used = 0, got = 0;
    CHECK(tls_conn_input(*client_conn_out, NULL, 0, &used, plain, sizeof(plain), &got) == TLS_OK);
    CHECK(tls_conn_output(*client_conn_out).len > 0);
    enum tls_status cs, ss;
    *is_established_out = pump(*client_conn_out, *server_conn_out, &cs, &ss);
    return 0;
}

static void
free_pair(struct tls_conn **a, struct tls_conn **b)
{
    tls_conn_free(a);
    tls_conn_free(b);
}

/* SHA-256 of the certificate (selector 0) or of its public key (1). */
static void
cert_digest(int selector, uint8_t out[32])
{
    FILE *f = fopen(cert_path, "r");
    CHECK(f != NULL);
    if (f == NULL) {
        return;
    }
    X509 *cert = PEM_read_X509(f, NULL, NULL, NULL);
    (void)fclose(f);
    CHECK(cert != NULL);
    unsigned char *der = NULL;
    int len = selector == 0 ? i2d_X509(cert, &der) : i2d_PUBKEY(X509_get0_pubkey(cert), &der);
    CHECK(len > 0);
    unsigned int digest_len = 0;
    CHECK(EVP_Digest(der, (size_t)len, out, &digest_len, EVP_sha256(), NULL) == 1);
    CHECK(digest_len == 32);
    OPENSSL_free(der);
    X509_free(cert);
}

static void
test_checks(struct tls_server *server)
{
    char err[256];
    struct tls_client *anchored = NULL; /* trusts the server's certificate */
    CHECK(tls_client_create(cert_path, &anchored, err, sizeof(err)) == 0);
    struct tls_client *system = NULL; /* the system's store: does not */
    CHECK(tls_client_create(NULL, &system, err, sizeof(err)) == 0);
    if (anchored == NULL || system == NULL) {
        tls_client_free(&anchored);
        tls_client_free(&system);
        return;
    }
    struct tls_conn *c = NULL, *s = NULL;
    bool is_up = false;

    /* Name check, trusted anchor: established, verified, SNI sent, data
     * both ways. */
    CHECK(connect_pair(anchored, server, "mx.test.example", TLS_VERIFY_NAME, NULL, 0, &c, &s,
                       &is_up) == 0);
    CHECK(is_up);
    CHECK(tls_conn_is_verified(c));
    CHECK_STR(tls_conn_verify_error(c), "");
    CHECK(tls_conn_server_name(s) != NULL && strcmp(tls_conn_server_name(s), "mx.test.example") == 0);
    check_send(c, s, "EHLO client.example\r\n");
    check_send(s, c, "250-mx.test.example\r\n250 8BITMIME\r\n");
    free_pair(&c, &s);

    /* Name check, wrong name: the client refuses the handshake. */
    CHECK(connect_pair(anchored, server, "other.example", TLS_VERIFY_NAME, NULL, 0, &c, &s,
                       &is_up) == 0);
    CHECK(!is_up);
    CHECK(!tls_conn_is_established(c));
    CHECK(strlen(tls_conn_failure(c)) > 0);
    free_pair(&c, &s);

    /* Name check against the system store: a self-signed certificate fails. */
    CHECK(connect_pair(system, server, "mx.test.example", TLS_VERIFY_NAME, NULL, 0, &c, &s,
                       &is_up) == 0);
    CHECK(!is_up);
    free_pair(&c, &s);

    /* Opportunistic: any certificate goes; the result says what it was. */
    CHECK(connect_pair(system, server, "mx.test.example", TLS_VERIFY_NONE, NULL, 0, &c, &s,
                       &is_up) == 0);
    CHECK(is_up);
    CHECK(!tls_conn_is_verified(c));
    CHECK(strstr(tls_conn_verify_error(c), "self") != NULL); /* "self-signed certificate" */
    check_send(c, s, "MAIL FROM:<a@example.org>\r\n");
    free_pair(&c, &s);
    CHECK(connect_pair(anchored, server, "other.example", TLS_VERIFY_NONE, NULL, 0, &c, &s,
                       &is_up) == 0);
    CHECK(is_up);
    CHECK(!tls_conn_is_verified(c));
    CHECK(strstr(tls_conn_verify_error(c), "hostname") != NULL); /* "hostname mismatch" */
    free_pair(&c, &s);
    CHECK(connect_pair(anchored, server, "mx.test.example", TLS_VERIFY_NONE, NULL, 0, &c, &s,
                       &is_up) == 0);
    CHECK(is_up && tls_conn_is_verified(c));
    free_pair(&c, &s);

    /* An address literal: no SNI. */
    CHECK(connect_pair(system, server, "192.0.2.7", TLS_VERIFY_NONE, NULL, 0, &c, &s, &is_up) ==
          0);
    CHECK(is_up);
    CHECK(tls_conn_server_name(s) == NULL);
    free_pair(&c, &s);

    /* DANE-EE(3): the key matches whatever the name and the trust store
     * say (RFC 7672 3.1.1), by the key (3 1 1) or the whole certificate
     * (3 0 1). */
    uint8_t spki[32], full[32];
    cert_digest(1, spki);
    cert_digest(0, full);
    struct tls_tlsa ee_spki = {3, 1, 1, spki, sizeof(spki)};
    struct tls_tlsa ee_full = {3, 0, 1, full, sizeof(full)};
    CHECK(connect_pair(system, server, "any-name.example", TLS_VERIFY_DANE, &ee_spki, 1, &c, &s,
                       &is_up) == 0);
    CHECK(is_up && tls_conn_is_verified(c));
    free_pair(&c, &s);
    CHECK(connect_pair(system, server, "mx.test.example", TLS_VERIFY_DANE, &ee_full, 1, &c, &s,
                       &is_up) == 0);
    CHECK(is_up && tls_conn_is_verified(c));
    free_pair(&c, &s);
    /* A record that does not match: refused, even with a trusted anchor. */
    uint8_t wrong[32];
    memcpy(wrong, spki, sizeof(wrong));
    wrong[0] ^= 0xff;
    struct tls_tlsa ee_wrong = {3, 1, 1, wrong, sizeof(wrong)};
    CHECK(connect_pair(anchored, server, "mx.test.example", TLS_VERIFY_DANE, &ee_wrong, 1, &c,
                       &s, &is_up) == 0);
    CHECK(!is_up);
    free_pair(&c, &s);
    /* One matching record among others is enough. */
    struct tls_tlsa both[] = {ee_wrong, ee_spki};
    CHECK(connect_pair(system, server, "mx.test.example", TLS_VERIFY_DANE, both, 2, &c, &s,
                       &is_up) == 0);
    CHECK(is_up && tls_conn_is_verified(c));
    free_pair(&c, &s);
    /* PKIX-TA(0) / PKIX-EE(1) only: unusable for SMTP, so no DANE. */
    struct tls_tlsa pkix[] = {{0, 1, 1, spki, sizeof(spki)}, {1, 1, 1, spki, sizeof(spki)}};
    CHECK(connect_pair(system, server, "mx.test.example", TLS_VERIFY_DANE, pkix, 2, &c, &s,
                       &is_up) == -EINVAL);
    CHECK(c == NULL && s == NULL);

    /* Bounds. */
    CHECK(tls_conn_new_client(system, "", TLS_VERIFY_NONE, NULL, 0, &c) == -EINVAL);
    char long_name[300];
    memset(long_name, 'a', sizeof(long_name) - 1);
    long_name[sizeof(long_name) - 1] = '\0';
    CHECK(tls_conn_new_client(system, long_name, TLS_VERIFY_NONE, NULL, 0, &c) == -EINVAL);
    static struct tls_tlsa many[TLS_TLSA_MAX + 1];
    for (size_t i = 0; i < TLS_TLSA_MAX + 1; i++) {
        many[i] = ee_spki;
    }
    CHECK(tls_conn_new_client(system, "mx.test.example", TLS_VERIFY_DANE, many, TLS_TLSA_MAX + 1,
                              &c) == -EINVAL);
    CHECK(tls_conn_new_client(system, "mx.test.example", TLS_VERIFY_DANE, many, TLS_TLSA_MAX,
                              &c) == 0);
    tls_conn_free(&c);
    CHECK(c == NULL);

    tls_client_free(&anchored);
    tls_client_free(&system);
    CHECK(anchored == NULL && system == NULL);
}

static void
test_bad_ca_file(void)
{
    char err[256];
    struct tls_client *client = NULL;
    char path[700];
    (void)snprintf(path, sizeof(path), "%s/missing.pem", tmp_dir);
    CHECK(tls_client_create(path, &client, err, sizeof(err)) < 0);
    CHECK(client == NULL);
    CHECK(strstr(err, "missing.pem") != NULL);
    (void)snprintf(path, sizeof(path), "%s/junk.pem", tmp_dir);
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (f != NULL) {
        (void)fputs("not a certificate\n", f);
        (void)fclose(f);
    }
    CHECK(tls_client_create(path, &client, err, sizeof(err)) == -EINVAL);
    CHECK(client == NULL);
}

int
main(void)
{
    if (mkdtemp(tmp_dir) == NULL) {
        perror("mkdtemp");
        return 2;
    }
    char err[256];
    config_defaults(&server_config);
    CHECK(config_set(&server_config, "data_dir", tmp_dir, err, sizeof(err)) == 0);
    CHECK(config_set(&server_config, "myhostname", "mx.test.example", err, sizeof(err)) == 0);
    CHECK(config_finish(&server_config, err, sizeof(err)) == 0);
    struct tls_server *server = NULL;
    CHECK(tls_server_create(&server_config, &server, err, sizeof(err)) == 0);
    (void)snprintf(cert_path, sizeof(cert_path), "%s/tls/selfsigned.pem", tmp_dir);
    if (server != NULL) {
        test_checks(server);
        tls_server_free(&server);
    }
    test_bad_ca_file();
    char cmd[700];
    (void)snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp_dir);
    (void)system(cmd);
    UNIT_DONE();
}
