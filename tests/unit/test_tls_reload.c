/*
 * tests/unit/test_tls_reload.c - a reload of the server certificates
 * (core/tls.h: tls_certs_load, tls_server_swap): a connection made before
 * the swap goes on after the old generation is freed (its SSL_CTX lives
 * on by reference), new connections get the new certificate, a generation
 * that does not load changes nothing, and tls_server_prepare() makes the
 * self-signed pair only when tls_cert is empty. Client and server are
 * both struct tls_conn in memory; each client trusts one certificate, so
 * "verified" says which one the server sent. Run under ASan it also
 * checks the lifetimes.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/config.h"
#include "core/tls.h"
#include "tests/unit/unit.h"

static char tmp_dir[] = "/tmp/toaster-tls-reload-XXXXXX";
static struct config config_a; /* big: not on the stack */
static struct config config_b;
static struct config config_c;

static bool
pump(struct tls_conn *client, struct tls_conn *server)
{
    uint8_t plain[256];
    for (int round = 0; round < 50; round++) {
        bool moved = false;
        struct span out = tls_conn_output(client);
        size_t used = 0, got = 0;
        enum tls_status ss = tls_conn_input(server, (const uint8_t *)out.ptr, out.len, &used,
                                            plain, sizeof(plain), &got);
        tls_conn_output_sent(client, used);
        moved = moved || used > 0;
        out = tls_conn_output(server);
        enum tls_status cs = tls_conn_input(client, (const uint8_t *)out.ptr, out.len, &used,
                                            plain, sizeof(plain), &got);
        tls_conn_output_sent(server, used);
        moved = moved || used > 0;
        if (cs != TLS_OK || ss != TLS_OK) {
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

/* A handshake; *is_verified_out: the client's anchor signed what it got. */
static void
connect_pair(struct tls_client *client, struct tls_server *server, struct tls_conn **c_out,
             struct tls_conn **s_out, bool *is_verified_out)
{
    *is_verified_out = false;
    CHECK(tls_conn_new_client(client, "mx.test.example", TLS_VERIFY_NONE, NULL, 0, c_out) == 0);
    *s_out = tls_conn_new(server);
    CHECK(*c_out != NULL && *s_out != NULL);
    if (*c_out == NULL || *s_out == NULL) {
        return;
    }
    uint8_t plain[16];
    size_t used = 0, got = 0;
    CHECK(tls_conn_input(*c_out, NULL, 0, &used, plain, sizeof(plain), &got) == TLS_OK);
    CHECK(pump(*c_out, *s_out));
    *is_verified_out = tls_conn_is_verified(*c_out);
}

static void
setup(struct config *config, const char *name)
{
    char dir[128];
    char err[256];
    (void)snprintf(dir, sizeof(dir), "%s/%s", tmp_dir, name);
    CHECK(mkdir(dir, 0700) == 0);
    config_defaults(config);
    CHECK(config_set(config, "data_dir", dir, err, sizeof(err)) == 0);
    CHECK(config_set(config, "myhostname", "mx.test.example", err, sizeof(err)) == 0);
    CHECK(config_finish(config, err, sizeof(err)) == 0);
}

static bool
exists(const char *dir, const char *file)
{
    char path[300];
    struct stat st;
    (void)snprintf(path, sizeof(path), "%s/%s/tls/%s", tmp_dir, dir, file);
    return stat(path, &st) == 0;
}

static void
test_prepare(void)
{
    char err[256];
    setup(&config_c, "c");
    CHECK(tls_server_prepare(&config_c, err, sizeof(err)) == 0);
    CHECK(exists("c", "selfsigned.pem") && exists("c", "selfsigned.key"));
    CHECK(tls_server_prepare(&config_c, err, sizeof(err)) == 0); /* kept, not made again */
    /* With tls_cert set nothing is made (and nothing read yet). */
    struct config *d = &config_c;
    setup(d, "d");
    CHECK(config_set(d, "tls_cert", "/nonexistent/cert.pem", err, sizeof(err)) == 0);
    CHECK(config_set(d, "tls_key", "/nonexistent/key.pem", err, sizeof(err)) == 0);
    CHECK(tls_server_prepare(d, err, sizeof(err)) == 0);
    CHECK(!exists("d", "selfsigned.pem"));
    /* ... but loading it fails, naming the file, and makes nothing. */
    struct tls_certs *certs = NULL;
    CHECK(tls_certs_load(d, &certs, err, sizeof(err)) == -ENOENT);
    CHECK(certs == NULL);
    CHECK(strstr(err, "tls_cert: certificate /nonexistent/cert.pem") != NULL);
}

static void
test_swap(void)
{
    char err[256];
    char anchor[300];
    setup(&config_a, "a");
    setup(&config_b, "b");
    struct tls_server *server = NULL;
    CHECK(tls_server_create(&config_a, &server, err, sizeof(err)) == 0);
    struct tls_certs *certs_b = NULL;
    CHECK(tls_certs_load(&config_b, &certs_b, err, sizeof(err)) == 0); /* makes b's pair */
    struct tls_client *trusts_a = NULL;
    struct tls_client *trusts_b = NULL;
    (void)snprintf(anchor, sizeof(anchor), "%s/a/tls/selfsigned.pem", tmp_dir);
    CHECK(tls_client_create(anchor, &trusts_a, err, sizeof(err)) == 0);
    (void)snprintf(anchor, sizeof(anchor), "%s/b/tls/selfsigned.pem", tmp_dir);
    CHECK(tls_client_create(anchor, &trusts_b, err, sizeof(err)) == 0);
    if (server == NULL || certs_b == NULL || trusts_a == NULL || trusts_b == NULL) {
        tls_server_free(&server);
        tls_certs_free(&certs_b);
        tls_client_free(&trusts_a);
        tls_client_free(&trusts_b);
        return;
    }
    bool is_verified = false;
    struct tls_conn *c1 = NULL, *s1 = NULL, *c = NULL, *s = NULL;
    /* Before: certificate a. */
    connect_pair(trusts_a, server, &c1, &s1, &is_verified);
    CHECK(is_verified);
    connect_pair(trusts_b, server, &c, &s, &is_verified);
    CHECK(!is_verified);
    tls_conn_free(&c);
    tls_conn_free(&s);

    /* The swap, and the old generation freed at once (the daemon waits
     * for an epoch; no reactor holds it here). */
    struct tls_certs *old = tls_server_swap(server, certs_b);
    CHECK(old != NULL && old != certs_b);
    tls_certs_free(&old);
    CHECK(old == NULL);

    /* The connection from before goes on, both ways. */
    check_send(c1, s1, "a1 NOOP\r\n");
    check_send(s1, c1, "a1 OK NOOP completed\r\n");
    /* New ones get certificate b. */
    connect_pair(trusts_b, server, &c, &s, &is_verified);
    CHECK(is_verified);
    check_send(c, s, "EHLO client.example\r\n");
    tls_conn_free(&c);
    tls_conn_free(&s);
    connect_pair(trusts_a, server, &c, &s, &is_verified);
    CHECK(!is_verified);
    tls_conn_free(&c);
    tls_conn_free(&s);
    check_send(s1, c1, "* 1 EXISTS\r\n");
    tls_conn_free(&c1);
    tls_conn_free(&s1);

    /* Back to a: generations can be swapped again and again. */
    struct tls_certs *certs_a = NULL;
    CHECK(tls_certs_load(&config_a, &certs_a, err, sizeof(err)) == 0);
    if (certs_a != NULL) {
        old = tls_server_swap(server, certs_a);
        tls_certs_free(&old);
        connect_pair(trusts_a, server, &c, &s, &is_verified);
        CHECK(is_verified);
        tls_conn_free(&c);
        tls_conn_free(&s);
    }
    tls_server_free(&server);
    CHECK(server == NULL);
    tls_client_free(&trusts_a);
    tls_client_free(&trusts_b);
}

int
main(void)
{
    if (mkdtemp(tmp_dir) == NULL) {
        perror("mkdtemp");
        return 2;
    }
    test_prepare();
    test_swap();
    char cmd[300];
    (void)snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp_dir);
    (void)system(cmd);
    UNIT_DONE();
}
