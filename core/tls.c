/*
 * core/tls.c - TLS for the reactors: OpenSSL 3 driven through a custom BIO,
 * so no call here touches a socket, blocks or waits.
 *
 * Owns the server SSL_CTX (and one per tls_sni domain), the self-signed
 * default certificate under <data_dir>/tls/, and each connection's SSL
 * object and output buffer. The BIO under every SSL reads straight from
 * the span the caller passed to tls_conn_input() (read-ahead is off, so
 * OpenSSL asks for a record header and then exactly the record body; what
 * it took is *in_used, and a partial record waits inside OpenSSL) and
 * appends what OpenSSL writes to the connection's output buffer, which is
 * allocated when first needed, bounded by TLS_OUTPUT_MAX and given back by
 * tls_conn_trim().
 *
 * tls_server_create() runs once on the main thread at start, and
 * tls_certs_load() / tls_server_swap() on a reload; they may block on the
 * file system. Everything else runs on the reactor thread that owns the
 * connection. The SSL_CTX is shared by every reactor: after it is
 * published it is only used by SSL_new(), and by the ticket and SNI code
 * inside a handshake, which OpenSSL makes safe across threads.
 * Limits: TLS_OUTPUT_MAX and TLS_RECORD_PLAIN_MAX (core/tls.h), TLS_SNI_MAX
 * (core/limits.h).
 */
#include "core/tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "core/assertions.h"
#include "core/fd_io.h"
#include "core/log.h"

/* What one record adds to its plaintext at most: header, explicit nonce or
 * inner content type, AEAD tag, with room to spare. tls_conn_write() only
 * encrypts a piece when the output has room for it plus this, so the BIO
 * never has to refuse part of an application record. */
#define TLS_RECORD_OVERHEAD_MAX 512u
static_assert(TLS_OUTPUT_MAX >= TLS_RECORD_PLAIN_MAX + TLS_RECORD_OVERHEAD_MAX,
              "the output holds at least one whole record");

/* TLS 1.2: forward secrecy (ECDHE) and AEAD only. TLS 1.3 suites are all
 * AEAD with (EC)DHE; OpenSSL's three defaults, spelled out. */
#define TLS_CIPHERS_TLS12                                                                  \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"                           \
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"                           \
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
#define TLS_CIPHERSUITES_TLS13                                                             \
    "TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256"
/* Key exchange groups: the elliptic curves only, X25519 first; finite-field
 * groups cost far more CPU per handshake for no gain. */
#define TLS_GROUPS "X25519:P-256:X448:P-384:P-521"

/* Tickets made by one SSL_CTX resume on any other from the same server, so
 * every context (default and per-domain) carries the same session id
 * context. */
#define TLS_SESSION_ID_CONTEXT "toaster"

/* The self-signed default: valid this long, back-dated a little for clocks
 * that run behind, and the longest CN X.509 allows (the SAN has the name
 * whatever its length). */
#define TLS_SELFSIGNED_DAYS 3650
#define TLS_SELFSIGNED_BACKDATE_S 3600
#define TLS_CN_BYTES_MAX 64

struct tls_sni_ctx {
    char     domain[256]; /* lower case; "*.example.com" for a wildcard */
    SSL_CTX *ctx;
};

/* One generation of certificates: built whole, then published. */
struct tls_certs {
    SSL_CTX            *ctx;       /* the default certificate; owns the ticket keys */
    struct tls_sni_ctx *sni;       /* sni_count entries, NULL when none */
    size_t              sni_count;
};

/* What the listeners hold. certs is replaced by tls_server_swap() (a
 * reload) and read with acquire loads by tls_conn_new() and the SNI
 * callback, on reactor threads, within one loop turn: a replaced
 * generation is freed only after every reactor has passed an epoch
 * (core/reactor.h). Connections made earlier keep their SSL_CTX alive by
 * its reference count. */
struct tls_server {
    struct tls_certs *certs;
};

struct tls_client {
    SSL_CTX *ctx; /* client method, DANE enabled, the trust anchors loaded */
};

struct tls_conn {
    SSL *ssl;

    /* The caller's ciphertext, valid only during tls_conn_input(). */
    const uint8_t *in;
    size_t         in_len;
    size_t         in_pos;

    /* Ciphertext to send: out[out_head..out_tail), TLS_OUTPUT_MAX bytes
     * when allocated. */
    uint8_t *out;
    size_t   out_head;
    size_t   out_tail;

    enum tls_status status;     /* sticky once not TLS_OK */
    bool is_established;        /* the first handshake finished */
    bool is_close_notify_sent;
    bool is_client;             /* made by tls_conn_new_client() */
    const char *failure;        /* static text; "" while none */
};

static BIO_METHOD *tls_bio_method;
static pthread_once_t tls_bio_once = PTHREAD_ONCE_INIT;

static void tls_bio_method_init(void);
static int tls_bio_write(BIO *bio, const char *data, size_t len, size_t *written);
static int tls_bio_read(BIO *bio, char *data, size_t len, size_t *read_bytes);
static long tls_bio_ctrl(BIO *bio, int cmd, long num, void *ptr);
static int tls_bio_create(BIO *bio);
static int tls_servername(SSL *ssl, int *alert, void *arg);
static int tls_ctx_new(SSL_CTX **ctx_out, char *err, size_t err_bytes);
static int tls_ctx_load(SSL_CTX *ctx, const char *what, const char *cert_path,
                        const char *key_path, char *err, size_t err_bytes);
static int tls_selfsigned_ensure(const struct config *config, char *cert_path,
                                 char *key_path, size_t path_bytes, char *err,
                                 size_t err_bytes);
static const char *tls_openssl_reason(void);
static const char *tls_openssl_pem_reason(const char *not_found);
static int tls_file_readable(const char *what, const char *kind, const char *path, char *err,
                             size_t err_bytes);
static int tls_error(char *err, size_t err_bytes, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static enum tls_status tls_conn_fail(struct tls_conn *conn, const char *why);

int
tls_server_prepare(const struct config *config, char *err, size_t err_bytes)
{
    ASSERT(config != NULL);
    if (err_bytes > 0) {
        err[0] = '\0';
    }
    if (config->tls_cert[0] != '\0') {
        return 0;
    }
    char cert_path[CONFIG_STRING_BYTES + 32];
    char key_path[CONFIG_STRING_BYTES + 32];
    return tls_selfsigned_ensure(config, cert_path, key_path, sizeof(cert_path), err,
                                 err_bytes);
}

int
tls_certs_load(const struct config *config, struct tls_certs **certs_out, char *err,
               size_t err_bytes)
{
    ASSERT(config != NULL);
    ASSERT(certs_out != NULL);
    *certs_out = NULL;
    if (err_bytes > 0) {
        err[0] = '\0';
    }
    if (pthread_once(&tls_bio_once, tls_bio_method_init) != 0 || tls_bio_method == NULL) {
        return tls_error(err, err_bytes, -ENOMEM, "tls: cannot make the BIO method");
    }
    if ((config->tls_cert[0] == '\0') != (config->tls_key[0] == '\0')) {
        return tls_error(err, err_bytes, -EINVAL,
                         "tls_cert and tls_key go together: set both, or neither");
    }
    ERR_clear_error();

    struct tls_certs *certs = calloc(1, sizeof(*certs));
    if (certs == NULL) {
        return tls_error(err, err_bytes, -ENOMEM, "tls: out of memory");
    }
    int rc = tls_ctx_new(&certs->ctx, err, err_bytes);
    if (rc != 0) {
        goto fail;
    }
    if (config->tls_cert[0] != '\0') {
        rc = tls_ctx_load(certs->ctx, "tls_cert", config->tls_cert, config->tls_key, err,
                          err_bytes);
    } else {
        char cert_path[CONFIG_STRING_BYTES + 32];
        char key_path[CONFIG_STRING_BYTES + 32];
        rc = tls_selfsigned_ensure(config, cert_path, key_path, sizeof(cert_path), err,
                                   err_bytes);
        if (rc == 0) {
            rc = tls_ctx_load(certs->ctx, "self-signed", cert_path, key_path, err,
                              err_bytes);
        }
    }
    if (rc != 0) {
        goto fail;
    }

    const struct tls_sni_list *list = &config->tls_sni;
    ASSERT(list->count <= TLS_SNI_MAX);
    if (list->count > 0) {
        certs->sni = calloc(list->count, sizeof(certs->sni[0]));
        if (certs->sni == NULL) {
            rc = tls_error(err, err_bytes, -ENOMEM, "tls: out of memory");
            goto fail;
        }
    }
    for (size_t i = 0; i < list->count; i++) {
        const struct tls_sni_entry *entry = &list->entries[i];
        struct tls_sni_ctx *sni = &certs->sni[i];
        static_assert(sizeof(sni->domain) == sizeof(entry->domain), "same domain bound");
        memcpy(sni->domain, entry->domain, sizeof(sni->domain));
        rc = tls_ctx_new(&sni->ctx, err, err_bytes);
        if (rc != 0) {
            goto fail;
        }
        certs->sni_count = i + 1;
        char what[300];
        (void)snprintf(what, sizeof(what), "tls_sni %s", entry->domain);
        rc = tls_ctx_load(sni->ctx, what, entry->cert_file, entry->key_file, err, err_bytes);
        if (rc != 0) {
            goto fail;
        }
    }
    *certs_out = certs;
    return 0;

fail:
    ERR_clear_error();
    tls_certs_free(&certs);
    return rc;
}

void
tls_certs_free(struct tls_certs **certs_ptr)
{
    ASSERT(certs_ptr != NULL);
    struct tls_certs *certs = *certs_ptr;
    if (certs == NULL) {
        return;
    }
    for (size_t i = 0; i < certs->sni_count; i++) {
        SSL_CTX_free(certs->sni[i].ctx);
    }
    free(certs->sni);
    SSL_CTX_free(certs->ctx);
    free(certs);
    *certs_ptr = NULL;
}

int
tls_server_create(const struct config *config, struct tls_server **server_out, char *err,
                  size_t err_bytes)
{
    ASSERT(server_out != NULL);
    *server_out = NULL;
    struct tls_certs *certs = NULL;
    int rc = tls_certs_load(config, &certs, err, err_bytes);
    if (rc != 0) {
        return rc;
    }
    struct tls_server *server = calloc(1, sizeof(*server));
    if (server == NULL) {
        tls_certs_free(&certs);
        return tls_error(err, err_bytes, -ENOMEM, "tls: out of memory");
    }
    SSL_CTX_set_tlsext_servername_callback(certs->ctx, tls_servername);
    SSL_CTX_set_tlsext_servername_arg(certs->ctx, server);
    __atomic_store_n(&server->certs, certs, __ATOMIC_RELEASE);
    *server_out = server;
    return 0;
}

struct tls_certs *
tls_server_swap(struct tls_server *server, struct tls_certs *certs)
{
    ASSERT(server != NULL);
    ASSERT(certs != NULL);
    struct tls_certs *old = __atomic_load_n(&server->certs, __ATOMIC_ACQUIRE);
    ASSERT(old != certs);
    /* Tickets issued before the reload still resume: the new default
     * context decrypts with the same keys (name, HMAC and AES keys: 80
     * bytes in OpenSSL 3). Without them every client makes one full
     * handshake more, which is all that is lost if this fails. */
    unsigned char keys[80];
    if (SSL_CTX_get_tlsext_ticket_keys(old->ctx, keys, sizeof(keys)) == 1) {
        (void)SSL_CTX_set_tlsext_ticket_keys(certs->ctx, keys, sizeof(keys));
    }
    explicit_bzero(keys, sizeof(keys));
    ERR_clear_error();
    SSL_CTX_set_tlsext_servername_callback(certs->ctx, tls_servername);
    SSL_CTX_set_tlsext_servername_arg(certs->ctx, server);
    return __atomic_exchange_n(&server->certs, certs, __ATOMIC_ACQ_REL);
}

void
tls_server_free(struct tls_server **server_ptr)
{
    ASSERT(server_ptr != NULL);
    struct tls_server *server = *server_ptr;
    if (server == NULL) {
        return;
    }
    tls_certs_free(&server->certs);
    free(server);
    *server_ptr = NULL;
}

/* A connection on ctx with our memory BIO, before its handshake. */
static struct tls_conn *
tls_conn_alloc(SSL_CTX *ctx)
{
    ASSERT(tls_bio_method != NULL);
    struct tls_conn *conn = calloc(1, sizeof(*conn));
    if (conn == NULL) {
        return NULL;
    }
    conn->status = TLS_OK;
    conn->failure = "";
    conn->ssl = SSL_new(ctx);
    BIO *bio = BIO_new(tls_bio_method);
    if (conn->ssl == NULL || bio == NULL) {
        BIO_free(bio);
        SSL_free(conn->ssl);
        free(conn);
        ERR_clear_error();
        return NULL;
    }
    BIO_set_data(bio, conn);
    BIO_set_init(bio, 1);
    /* One BIO both ways: SSL_set_bio takes the one reference we hold. */
    SSL_set_bio(conn->ssl, bio, bio);
    return conn;
}

struct tls_conn *
tls_conn_new(struct tls_server *server)
{
    ASSERT(server != NULL);
    const struct tls_certs *certs = __atomic_load_n(&server->certs, __ATOMIC_ACQUIRE);
    struct tls_conn *conn = tls_conn_alloc(certs->ctx);
    if (conn != NULL) {
        SSL_set_accept_state(conn->ssl);
    }
    return conn;
}

int
tls_client_create(const char *ca_file, struct tls_client **client_out, char *err,
                  size_t err_bytes)
{
    ASSERT(client_out != NULL);
    *client_out = NULL;
    if (err_bytes > 0) {
        err[0] = '\0';
    }
    if (pthread_once(&tls_bio_once, tls_bio_method_init) != 0 || tls_bio_method == NULL) {
        return tls_error(err, err_bytes, -ENOMEM, "tls: cannot make the BIO method");
    }
    struct tls_client *client = calloc(1, sizeof(*client));
    if (client == NULL) {
        return tls_error(err, err_bytes, -ENOMEM, "tls: no memory for the client");
    }
    client->ctx = SSL_CTX_new(TLS_client_method());
    if (client->ctx == NULL) {
        free(client);
        return tls_error(err, err_bytes, -ENOMEM, "tls: SSL_CTX_new: %s", tls_openssl_reason());
    }
    SSL_CTX *ctx = client->ctx;
    int rc = 0;
    if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
        SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) != 1 ||
        SSL_CTX_set_cipher_list(ctx, TLS_CIPHERS_TLS12) != 1 ||
        SSL_CTX_set_ciphersuites(ctx, TLS_CIPHERSUITES_TLS13) != 1 ||
        SSL_CTX_set1_groups_list(ctx, TLS_GROUPS) != 1 || SSL_CTX_dane_enable(ctx) <= 0) {
        rc = tls_error(err, err_bytes, -EINVAL, "tls: setting up the client context: %s",
                       tls_openssl_reason());
    } else if (ca_file != NULL && ca_file[0] != '\0') {
        rc = tls_file_readable("the CA file", "certificates", ca_file, err, err_bytes);
        if (rc == 0 && SSL_CTX_load_verify_locations(ctx, ca_file, NULL) != 1) {
            rc = tls_error(err, err_bytes, -EINVAL, "tls: %s: %s", ca_file,
                           tls_openssl_pem_reason("no certificate"));
        }
    } else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
        rc = tls_error(err, err_bytes, -EINVAL, "tls: the system's trust store: %s",
                       tls_openssl_reason());
    }
    if (rc != 0) {
        SSL_CTX_free(ctx);
        free(client);
        return rc;
    }
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
    /* As the server side: no buffers at rest, one record read at a time. */
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_CTX_set_read_ahead(ctx, 0);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    *client_out = client;
    return 0;
}

void
tls_client_free(struct tls_client **client_ptr)
{
    ASSERT(client_ptr != NULL);
    struct tls_client *client = *client_ptr;
    if (client == NULL) {
        return;
    }
    SSL_CTX_free(client->ctx);
    free(client);
    *client_ptr = NULL;
}

/* Whether name is an IP address literal (no SNI for those, RFC 6066 3). */
static bool
tls_name_is_address(const char *name)
{
    unsigned char buf[sizeof(struct in6_addr)];
    return inet_pton(AF_INET, name, buf) == 1 || inet_pton(AF_INET6, name, buf) == 1;
}

int
tls_conn_new_client(struct tls_client *client, const char *server_name,
                    enum tls_verify verify, const struct tls_tlsa *tlsa, size_t tlsa_count,
                    struct tls_conn **conn_out)
{
    ASSERT(client != NULL);
    ASSERT(server_name != NULL);
    ASSERT(conn_out != NULL);
    ASSERT(tlsa != NULL || tlsa_count == 0);
    *conn_out = NULL;
    if (server_name[0] == '\0' || strlen(server_name) > 253 || tlsa_count > TLS_TLSA_MAX) {
        return -EINVAL;
    }
    struct tls_conn *conn = tls_conn_alloc(client->ctx);
    if (conn == NULL) {
        return -ENOMEM;
    }
    SSL *ssl = conn->ssl;
    bool is_ok = true;
    if (!tls_name_is_address(server_name)) {
        is_ok = SSL_set_tlsext_host_name(ssl, server_name) == 1;
    }
    if (verify == TLS_VERIFY_DANE) {
        /* RFC 7672: DANE-EE matches the key whatever the names say;
         * DANE-TA chains to the record's key and checks the name. */
        size_t usable = 0;
        is_ok = is_ok && SSL_dane_enable(ssl, server_name) > 0;
        if (is_ok) {
            (void)SSL_dane_set_flags(ssl, DANE_FLAG_NO_DANE_EE_NAMECHECKS);
        }
        for (size_t i = 0; i < tlsa_count && is_ok; i++) {
            if (tlsa[i].usage != 2 && tlsa[i].usage != 3) {
                continue; /* PKIX-TA / PKIX-EE: unusable for SMTP (RFC 7672 3.1.3) */
            }
            int added = SSL_dane_tlsa_add(ssl, tlsa[i].usage, tlsa[i].selector,
                                          tlsa[i].matching_type, tlsa[i].data, tlsa[i].len);
            if (added > 0) {
                usable++;
            } else if (added < 0) {
                is_ok = false;
            }
        }
        if (is_ok && usable == 0) {
            tls_conn_free(&conn);
            ERR_clear_error();
            return -EINVAL;
        }
        SSL_set_verify(ssl, SSL_VERIFY_PEER, NULL);
    } else {
        /* The name is set for TLS_VERIFY_NONE too, so the verify result
         * says whether the certificate would have passed. */
        is_ok = is_ok && SSL_set1_host(ssl, server_name) == 1;
        SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        SSL_set_verify(ssl, verify == TLS_VERIFY_NAME ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);
    }
    if (!is_ok) {
        tls_conn_free(&conn);
        ERR_clear_error();
        return -EINVAL;
    }
    conn->is_client = true;
    SSL_set_connect_state(ssl);
    *conn_out = conn;
    return 0;
}

void
tls_conn_free(struct tls_conn **conn_ptr)
{
    ASSERT(conn_ptr != NULL);
    struct tls_conn *conn = *conn_ptr;
    if (conn == NULL) {
        return;
    }
    SSL_free(conn->ssl); /* frees the BIO too */
    free(conn->out);
    free(conn);
    *conn_ptr = NULL;
}

enum tls_status
tls_conn_input(struct tls_conn *conn, const uint8_t *in, size_t in_len, size_t *in_used,
               uint8_t *out, size_t out_bytes, size_t *out_len)
{
    ASSERT(conn != NULL);
    ASSERT(in != NULL || in_len == 0);
    ASSERT(out != NULL || out_bytes == 0);
    ASSERT(in_used != NULL);
    ASSERT(out_len != NULL);
    *in_used = 0;
    *out_len = 0;
    if (conn->status != TLS_OK) {
        return conn->status;
    }
    /* Errors other connections left on this thread must not be read as
     * ours. */
    ERR_clear_error();
    conn->in = in;
    conn->in_len = in_len;
    conn->in_pos = 0;

    enum tls_status status = TLS_OK;
    /* Each round finishes the handshake (once), returns at least one
     * plaintext byte or takes at least one input byte, or it ends the loop;
     * the bound only makes that visible. */
    size_t rounds_max = 2 + out_bytes + in_len;
    for (size_t round = 0; round < rounds_max; round++) {
        int rc;
        if (!conn->is_established) {
            rc = SSL_do_handshake(conn->ssl);
            if (rc == 1) {
                conn->is_established = true;
                continue;
            }
        } else {
            if (*out_len == out_bytes) {
                break;
            }
            size_t got = 0;
            rc = SSL_read_ex(conn->ssl, out + *out_len, out_bytes - *out_len, &got);
            if (rc == 1) {
                ASSERT(got > 0 && got <= out_bytes - *out_len);
                *out_len += got;
                continue;
            }
        }
        int error = SSL_get_error(conn->ssl, rc);
        if (error == SSL_ERROR_WANT_READ) {
            if (conn->in_pos < conn->in_len) {
                continue; /* not our BIO's doing: let OpenSSL read on */
            }
            /* The BIO ran dry: all of the input is inside OpenSSL. */
        } else if (error == SSL_ERROR_WANT_WRITE) {
            /* The output is full (a peer that sends without reading, or a
             * certificate chain larger than the output): stop taking input
             * until the caller sends some and calls again. */
        } else if (error == SSL_ERROR_ZERO_RETURN) {
            if (conn->is_established) {
                conn->status = TLS_CLOSED;
                status = TLS_CLOSED;
            } else {
                status = tls_conn_fail(conn, "peer closed during handshake");
            }
        } else if (error == SSL_ERROR_SSL) {
            status = tls_conn_fail(conn, NULL);
        } else {
            /* SSL_ERROR_SYSCALL and anything unexpected: our BIO never
             * fails on its own, so this is OpenSSL giving up on a record. */
            status = tls_conn_fail(conn, "bad record");
        }
        break;
    }
    *in_used = conn->in_pos;
    conn->in = NULL;
    conn->in_len = 0;
    conn->in_pos = 0;
    ERR_clear_error();
    return status;
}

bool
tls_conn_has_plaintext(const struct tls_conn *conn)
{
    ASSERT(conn != NULL);
    return conn->status == TLS_OK && conn->is_established && SSL_pending(conn->ssl) > 0;
}

long
tls_conn_write(struct tls_conn *conn, const uint8_t *plain, size_t len)
{
    ASSERT(conn != NULL);
    ASSERT(plain != NULL || len == 0);
    if (conn->status == TLS_FAILED || conn->is_close_notify_sent) {
        return -1;
    }
    if (!conn->is_established) {
        return 0;
    }
    ERR_clear_error();
    if (len > TLS_OUTPUT_MAX) {
        len = TLS_OUTPUT_MAX; /* more never fits, and the result stays a long */
    }
    size_t taken = 0;
    /* One round per record: the output holds only a few. */
    while (taken < len) {
        size_t piece = len - taken;
        if (piece > TLS_RECORD_PLAIN_MAX) {
            piece = TLS_RECORD_PLAIN_MAX;
        }
        size_t room = TLS_OUTPUT_MAX - conn->out_tail;
        if (room < piece + TLS_RECORD_OVERHEAD_MAX) {
            break;
        }
        size_t written = 0;
        int rc = SSL_write_ex(conn->ssl, plain + taken, piece, &written);
        if (rc != 1) {
            int error = SSL_get_error(conn->ssl, rc);
            if (error == SSL_ERROR_WANT_WRITE && written == 0) {
                /* A post-handshake reply from an earlier input is still
                 * waiting for room, and OpenSSL flushes it first. No
                 * plaintext was taken, so nothing has to be retried. */
                break;
            }
            /* Part of our record was refused, which the room check above
             * rules out, or OpenSSL failed: the record stream is no longer
             * ours to continue. */
            (void)tls_conn_fail(conn, error == SSL_ERROR_SSL ? NULL : "write failed");
            ERR_clear_error();
            return -1;
        }
        ASSERT(written == piece);
        taken += written;
    }
    ERR_clear_error();
    return (long)taken;
}

struct span
tls_conn_output(const struct tls_conn *conn)
{
    ASSERT(conn != NULL);
    ASSERT(conn->out_head <= conn->out_tail);
    if (conn->out_tail == conn->out_head) {
        return span_make(NULL, 0);
    }
    return span_make((const char *)conn->out + conn->out_head, conn->out_tail - conn->out_head);
}

void
tls_conn_output_sent(struct tls_conn *conn, size_t bytes)
{
    ASSERT(conn != NULL);
    ASSERT(bytes <= conn->out_tail - conn->out_head);
    conn->out_head += bytes;
    if (conn->out_head == conn->out_tail) {
        conn->out_head = 0;
        conn->out_tail = 0;
    } else if (conn->out_head > 0) {
        /* Nothing is in flight between a send's end and the next one:
         * the only moment the rest may move down to make room. */
        memmove(conn->out, conn->out + conn->out_head, conn->out_tail - conn->out_head);
        conn->out_tail -= conn->out_head;
        conn->out_head = 0;
    }
}

void
tls_conn_close_notify(struct tls_conn *conn)
{
    ASSERT(conn != NULL);
    if (conn->is_close_notify_sent || conn->status == TLS_FAILED || !conn->is_established) {
        /* Before the handshake ends there is no session to close, and after a
         * failure OpenSSL already queued its alert. */
        return;
    }
    conn->is_close_notify_sent = true;
    ERR_clear_error();
    /* 0 means "sent, the peer's has not come yet", which is all we ask;
     * a full output leaves it inside OpenSSL, and the connection closes
     * either way, so there is nothing to do on failure. */
    (void)SSL_shutdown(conn->ssl);
    ERR_clear_error();
}

void
tls_conn_trim(struct tls_conn *conn)
{
    ASSERT(conn != NULL);
    if (conn->out != NULL && conn->out_head == conn->out_tail) {
        free(conn->out);
        conn->out = NULL;
        conn->out_head = 0;
        conn->out_tail = 0;
    }
    /* SSL_MODE_RELEASE_BUFFERS gives back OpenSSL's record buffers as soon
     * as they are empty; this catches what is left. 0 means a buffer holds
     * part of a record and has to stay, which is right. */
    (void)SSL_free_buffers(conn->ssl);
}

bool
tls_conn_is_established(const struct tls_conn *conn)
{
    ASSERT(conn != NULL);
    return conn->is_established;
}

const char *
tls_conn_version(const struct tls_conn *conn)
{
    ASSERT(conn != NULL);
    return SSL_get_version(conn->ssl);
}

const char *
tls_conn_cipher(const struct tls_conn *conn)
{
    ASSERT(conn != NULL);
    const char *name = SSL_CIPHER_get_name(SSL_get_current_cipher(conn->ssl));
    return name != NULL ? name : "(none)";
}

int
tls_conn_cipher_bits(const struct tls_conn *conn)
{
    ASSERT(conn != NULL);
    return SSL_CIPHER_get_bits(SSL_get_current_cipher(conn->ssl), NULL);
}

const char *
tls_conn_server_name(const struct tls_conn *conn)
{
    ASSERT(conn != NULL);
    return SSL_get_servername(conn->ssl, TLSEXT_NAMETYPE_host_name);
}

bool
tls_conn_is_resumed(const struct tls_conn *conn)
{
    ASSERT(conn != NULL);
    return SSL_session_reused(conn->ssl) == 1;
}

bool
tls_conn_is_verified(const struct tls_conn *conn)
{
    ASSERT(conn != NULL);
    return conn->is_established && SSL_get0_peer_certificate(conn->ssl) != NULL &&
           SSL_get_verify_result(conn->ssl) == X509_V_OK;
}

const char *
tls_conn_verify_error(const struct tls_conn *conn)
{
    ASSERT(conn != NULL);
    if (!conn->is_established) {
        return "no handshake";
    }
    if (SSL_get0_peer_certificate(conn->ssl) == NULL) {
        return "no certificate";
    }
    long result = SSL_get_verify_result(conn->ssl);
    return result == X509_V_OK ? "" : X509_verify_cert_error_string(result);
}

const char *
tls_conn_failure(const struct tls_conn *conn)
{
    ASSERT(conn != NULL);
    return conn->failure;
}

/* The BIO: reads come from the span of the current tls_conn_input() call,
 * writes go to the output buffer. */

static void
tls_bio_method_init(void)
{
    /* One method for the process, kept until exit: BIO type indexes are a
     * small finite supply, so servers made again (tests) must not take new
     * ones. */
    int index = BIO_get_new_index();
    if (index == -1) {
        return;
    }
    BIO_METHOD *method = BIO_meth_new(index | BIO_TYPE_SOURCE_SINK, "toaster tls");
    if (method == NULL) {
        return;
    }
    if (BIO_meth_set_write_ex(method, tls_bio_write) != 1 ||
        BIO_meth_set_read_ex(method, tls_bio_read) != 1 ||
        BIO_meth_set_ctrl(method, tls_bio_ctrl) != 1 ||
        BIO_meth_set_create(method, tls_bio_create) != 1) {
        BIO_meth_free(method);
        return;
    }
    tls_bio_method = method;
}

static int
tls_bio_create(BIO *bio)
{
    BIO_set_init(bio, 0);
    BIO_set_data(bio, NULL);
    return 1;
}

static int
tls_bio_write(BIO *bio, const char *data, size_t len, size_t *written)
{
    struct tls_conn *conn = BIO_get_data(bio);
    ASSERT(conn != NULL);
    BIO_clear_retry_flags(bio);
    *written = 0;
    if (len == 0) {
        return 1;
    }
    if (conn->out == NULL) {
        conn->out = malloc(TLS_OUTPUT_MAX);
        if (conn->out == NULL) {
            return 0; /* no retry flag: OpenSSL fails the connection */
        }
        conn->out_head = 0;
        conn->out_tail = 0;
    }
    /* Appends only: a send may be in flight from out[out_head..out_tail),
     * so those bytes never move here (tls_conn_output_sent compacts). */
    size_t room = TLS_OUTPUT_MAX - conn->out_tail;
    if (room == 0) {
        BIO_set_retry_write(bio);
        return 0;
    }
    size_t n = len < room ? len : room;
    memcpy(conn->out + conn->out_tail, data, n);
    conn->out_tail += n;
    *written = n;
    return 1;
}

static int
tls_bio_read(BIO *bio, char *data, size_t len, size_t *read_bytes)
{
    struct tls_conn *conn = BIO_get_data(bio);
    ASSERT(conn != NULL);
    BIO_clear_retry_flags(bio);
    *read_bytes = 0;
    ASSERT(conn->in_pos <= conn->in_len);
    size_t left = conn->in_len - conn->in_pos;
    if (left == 0) {
        BIO_set_retry_read(bio);
        return 0;
    }
    size_t n = len < left ? len : left;
    memcpy(data, conn->in + conn->in_pos, n);
    conn->in_pos += n;
    *read_bytes = n;
    return 1;
}

static long
tls_bio_ctrl(BIO *bio, int cmd, long num, void *ptr)
{
    (void)bio;
    (void)num;
    (void)ptr;
    switch (cmd) {
    case BIO_CTRL_FLUSH:
        return 1; /* the output buffer is the caller's to send */
    default:
        return 0; /* pending counts, EOF, kTLS: none of them here */
    }
}

/* SNI: an exact name first, then a wildcard one label up; anything else
 * keeps the default certificate. */
static int
tls_servername(SSL *ssl, int *alert, void *arg)
{
    const struct tls_server *server = arg;
    /* The generation in service now: a connection made before a reload
     * picks the new domain certificates. */
    const struct tls_certs *certs = __atomic_load_n(&server->certs, __ATOMIC_ACQUIRE);
    const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    if (name == NULL || certs->sni_count == 0) {
        return SSL_TLSEXT_ERR_OK;
    }
    char lower[256];
    size_t len = strnlen(name, sizeof(lower));
    if (len == 0 || len == sizeof(lower)) {
        return SSL_TLSEXT_ERR_OK;
    }
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        lower[i] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
    }
    lower[len] = '\0';
    SSL_CTX *chosen = NULL;
    for (size_t i = 0; i < certs->sni_count && chosen == NULL; i++) {
        if (strcmp(certs->sni[i].domain, lower) == 0) {
            chosen = certs->sni[i].ctx;
        }
    }
    const char *dot = strchr(lower, '.');
    if (chosen == NULL && dot != NULL && dot != lower) {
        for (size_t i = 0; i < certs->sni_count && chosen == NULL; i++) {
            const char *domain = certs->sni[i].domain;
            if (domain[0] == '*' && strcmp(domain + 1, dot) == 0) {
                chosen = certs->sni[i].ctx;
            }
        }
    }
    if (chosen != NULL && SSL_set_SSL_CTX(ssl, chosen) == NULL) {
        *alert = SSL_AD_INTERNAL_ERROR;
        return SSL_TLSEXT_ERR_ALERT_FATAL;
    }
    return SSL_TLSEXT_ERR_OK;
}

static int
tls_ctx_new(SSL_CTX **ctx_out, char *err, size_t err_bytes)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL) {
        return tls_error(err, err_bytes, -ENOMEM, "tls: SSL_CTX_new: %s", tls_openssl_reason());
    }
    if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
        SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) != 1 ||
        SSL_CTX_set_cipher_list(ctx, TLS_CIPHERS_TLS12) != 1 ||
        SSL_CTX_set_ciphersuites(ctx, TLS_CIPHERSUITES_TLS13) != 1 ||
        SSL_CTX_set1_groups_list(ctx, TLS_GROUPS) != 1 ||
        SSL_CTX_set_session_id_context(ctx, (const unsigned char *)TLS_SESSION_ID_CONTEXT,
                                       sizeof(TLS_SESSION_ID_CONTEXT) - 1) != 1) {
        int rc = tls_error(err, err_bytes, -EINVAL, "tls: setting up the context: %s",
                           tls_openssl_reason());
        SSL_CTX_free(ctx);
        return rc;
    }
    /* Server order for TLS 1.2 picks AES-GCM over CHACHA20 unless the
     * client puts CHACHA20 first (phones without AES instructions). */
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_PRIORITIZE_CHACHA);
    /* Stateless tickets, encrypted with this context's keys: they resume on
     * any reactor, and no session cache (with its lock) is needed. */
    SSL_CTX_clear_options(ctx, SSL_OP_NO_TICKET);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    /* Release record buffers whenever they are empty: an idle connection
     * then holds no 16 KiB buffers. The write buffer may move between
     * calls since the caller's plaintext does. */
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    /* No read-ahead: OpenSSL asks for exactly one record at a time, so
     * *in_used never covers bytes past the record it needs. */
    SSL_CTX_set_read_ahead(ctx, 0);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    *ctx_out = ctx;
    return 0;
}

/* Whether path can be opened for reading; errno's text in err if not, as
 * OpenSSL's own reason for a missing file says only "system lib". */
static int
tls_file_readable(const char *what, const char *kind, const char *path, char *err,
                  size_t err_bytes)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return tls_error(err, err_bytes, -errno, "%s: %s %s: %s", what, kind, path,
                         strerror(errno));
    }
    (void)close(fd); /* opened only to ask */
    return 0;
}

static int
tls_ctx_load(SSL_CTX *ctx, const char *what, const char *cert_path, const char *key_path,
             char *err, size_t err_bytes)
{
    ERR_clear_error();
    int rc = tls_file_readable(what, "certificate", cert_path, err, err_bytes);
    if (rc == 0) {
        rc = tls_file_readable(what, "key", key_path, err, err_bytes);
    }
    if (rc != 0) {
        return rc;
    }
    if (SSL_CTX_use_certificate_chain_file(ctx, cert_path) != 1) {
        return tls_error(err, err_bytes, -EINVAL, "%s: certificate %s: %s", what, cert_path,
                         tls_openssl_pem_reason("no PEM certificate in it"));
    }
    /* This also compares the key with the certificate. */
    if (SSL_CTX_use_PrivateKey_file(ctx, key_path, SSL_FILETYPE_PEM) != 1) {
        return tls_error(err, err_bytes, -EINVAL, "%s: key %s (for certificate %s): %s", what,
                         key_path, cert_path, tls_openssl_pem_reason("no PEM private key in it"));
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        return tls_error(err, err_bytes, -EINVAL,
                         "%s: key %s does not match certificate %s", what, key_path,
                         cert_path);
    }
    ERR_clear_error();
    return 0;
}

/* The self-signed default. */

/* path.tmp, written and fsynced, then renamed over path: a crash leaves
 * the old file or the whole new one, never a half. */
static int
tls_file_write_atomic(const char *path, mode_t mode, const char *data, size_t len, char *err,
                      size_t err_bytes)
{
    char tmp[CONFIG_STRING_BYTES + 64];
    int n = snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    if (n < 0 || (size_t)n >= sizeof(tmp)) {
        return tls_error(err, err_bytes, -ENAMETOOLONG, "tls: path too long: %s", path);
    }
    /* A temporary file left by a crash is ours to replace. */
    if (unlink(tmp) != 0 && errno != ENOENT) {
        return tls_error(err, err_bytes, -errno, "tls: unlink %s: %s", tmp, strerror(errno));
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0) {
        return tls_error(err, err_bytes, -errno, "tls: create %s: %s", tmp, strerror(errno));
    }
    int rc = fd_write_all(fd, data, len);
    if (rc == 0 && fsync(fd) != 0) {
        rc = -errno;
    }
    if (close(fd) != 0 && rc == 0) {
        rc = -errno;
    }
    if (rc == 0 && rename(tmp, path) != 0) {
        rc = -errno;
    }
    if (rc != 0) {
        (void)unlink(tmp); /* best effort: the error below is what matters */
        return tls_error(err, err_bytes, rc, "tls: write %s: %s", path, strerror(-rc));
    }
    return 0;
}

static int
tls_dir_sync(const char *dir, char *err, size_t err_bytes)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        return tls_error(err, err_bytes, -errno, "tls: open %s: %s", dir, strerror(errno));
    }
    int rc = fsync(fd) == 0 ? 0 : -errno;
    (void)close(fd); /* read-only directory handle: nothing to lose */
    if (rc != 0) {
        return tls_error(err, err_bytes, rc, "tls: fsync %s: %s", dir, strerror(-rc));
    }
    return 0;
}

/* PEM text of a key or certificate, written into a memory BIO. The key's
 * BIO is a secure-memory one, so its buffer is wiped when freed. */
static int
tls_pem_file(const char *path, mode_t mode, EVP_PKEY *pkey, X509 *cert, char *err,
             size_t err_bytes)
{
    BIO *bio = BIO_new(pkey != NULL ? BIO_s_secmem() : BIO_s_mem());
    if (bio == NULL) {
        return tls_error(err, err_bytes, -ENOMEM, "tls: out of memory");
    }
    int ok = pkey != NULL ? PEM_write_bio_PrivateKey(bio, pkey, NULL, NULL, 0, NULL, NULL)
                          : PEM_write_bio_X509(bio, cert);
    char *data = NULL;
    long len = BIO_get_mem_data(bio, &data);
    int rc;
    if (ok != 1 || len <= 0 || data == NULL) {
        rc = tls_error(err, err_bytes, -EINVAL, "tls: PEM for %s: %s", path,
                       tls_openssl_reason());
    } else {
        rc = tls_file_write_atomic(path, mode, data, (size_t)len, err, err_bytes);
    }
    BIO_free(bio);
    return rc;
}

static int
tls_x509_add_ext(X509 *cert, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, cert, cert, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    if (ext == NULL) {
        return -1;
    }
    int ok = X509_add_ext(cert, ext, -1);
    X509_EXTENSION_free(ext);
    return ok == 1 ? 0 : -1;
}

/* subjectAltName DNS:<name>, built as a structure so that no character in
 * the name is read as syntax. */
static int
tls_x509_add_san(X509 *cert, const char *hostname)
{
    GENERAL_NAMES *names = sk_GENERAL_NAME_new_null();
    GENERAL_NAME *name = GENERAL_NAME_new();
    ASN1_IA5STRING *ia5 = ASN1_IA5STRING_new();
    int rc = -1;
    if (names == NULL || name == NULL || ia5 == NULL ||
        ASN1_STRING_set(ia5, hostname, (int)strlen(hostname)) != 1) {
        goto out;
    }
    GENERAL_NAME_set0_value(name, GEN_DNS, ia5);
    ia5 = NULL;
    if (sk_GENERAL_NAME_push(names, name) <= 0) {
        goto out;
    }
    name = NULL;
    if (X509_add1_ext_i2d(cert, NID_subject_alt_name, names, 0, X509V3_ADD_DEFAULT) == 1) {
        rc = 0;
    }
out:
    ASN1_IA5STRING_free(ia5);
    GENERAL_NAME_free(name);
    GENERAL_NAMES_free(names);
    return rc;
}

static X509 *
tls_selfsigned_make(const char *hostname, EVP_PKEY *pkey)
{
    X509 *cert = X509_new();
    BIGNUM *serial = BN_new();
    if (cert == NULL || serial == NULL) {
        goto fail;
    }
    /* 127 random bits: positive, and well under the 20 octets RFC 5280
     * allows. */
    if (X509_set_version(cert, X509_VERSION_3) != 1 ||
        BN_rand(serial, 127, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) != 1 ||
        BN_to_ASN1_INTEGER(serial, X509_get_serialNumber(cert)) == NULL ||
        X509_gmtime_adj(X509_getm_notBefore(cert), -TLS_SELFSIGNED_BACKDATE_S) == NULL ||
        X509_time_adj_ex(X509_getm_notAfter(cert), TLS_SELFSIGNED_DAYS, 0, NULL) == NULL ||
        X509_set_pubkey(cert, pkey) != 1) {
        goto fail;
    }
    X509_NAME *subject = X509_get_subject_name(cert);
    const char *cn = strlen(hostname) <= TLS_CN_BYTES_MAX ? hostname : "toaster";
    if (X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1,
                                   -1, 0) != 1 ||
        X509_set_issuer_name(cert, subject) != 1 || tls_x509_add_san(cert, hostname) != 0 ||
        tls_x509_add_ext(cert, NID_basic_constraints, "critical,CA:FALSE") != 0 ||
        tls_x509_add_ext(cert, NID_key_usage, "critical,digitalSignature") != 0 ||
        tls_x509_add_ext(cert, NID_ext_key_usage, "serverAuth") != 0 ||
        tls_x509_add_ext(cert, NID_subject_key_identifier, "hash") != 0 ||
        X509_sign(cert, pkey, EVP_sha256()) <= 0) {
        goto fail;
    }
    BN_free(serial);
    return cert;
fail:
    BN_free(serial);
    X509_free(cert);
    return NULL;
}

/* Make <data_dir>/tls/selfsigned.{pem,key} unless both are there, and give
 * their paths. The key is written first, so a crash between the two leaves
 * no certificate, and the next start makes a new pair. */
static int
tls_selfsigned_ensure(const struct config *config, char *cert_path, char *key_path,
                      size_t path_bytes, char *err, size_t err_bytes)
{
    char dir[CONFIG_STRING_BYTES + 8];
    int n = snprintf(dir, sizeof(dir), "%s/tls", config->data_dir);
    int n_cert = snprintf(cert_path, path_bytes, "%s/selfsigned.pem", dir);
    int n_key = snprintf(key_path, path_bytes, "%s/selfsigned.key", dir);
    if (n < 0 || (size_t)n >= sizeof(dir) || n_cert < 0 || (size_t)n_cert >= path_bytes ||
        n_key < 0 || (size_t)n_key >= path_bytes) {
        return tls_error(err, err_bytes, -ENAMETOOLONG, "tls: data_dir path too long");
    }
    if (access(cert_path, F_OK) == 0 && access(key_path, F_OK) == 0) {
        return 0;
    }
    /* data_dir itself may not exist yet on a first start. */
    if (mkdir(config->data_dir, 0755) != 0 && errno != EEXIST) {
        return tls_error(err, err_bytes, -errno, "tls: mkdir %s: %s", config->data_dir,
                         strerror(errno));
    }
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        return tls_error(err, err_bytes, -errno, "tls: mkdir %s: %s", dir, strerror(errno));
    }
    ERR_clear_error();
    EVP_PKEY *pkey = EVP_EC_gen("P-256");
    if (pkey == NULL) {
        return tls_error(err, err_bytes, -ENOMEM, "tls: making a P-256 key: %s",
                         tls_openssl_reason());
    }
    X509 *cert = tls_selfsigned_make(config->myhostname, pkey);
    int rc;
    if (cert == NULL) {
        rc = tls_error(err, err_bytes, -EINVAL, "tls: making the self-signed certificate: %s",
                       tls_openssl_reason());
    } else {
        rc = tls_pem_file(key_path, 0600, pkey, NULL, err, err_bytes);
        if (rc == 0) {
            rc = tls_pem_file(cert_path, 0644, NULL, cert, err, err_bytes);
        }
        if (rc == 0) {
            rc = tls_dir_sync(dir, err, err_bytes);
        }
    }
    X509_free(cert);
    EVP_PKEY_free(pkey);
    if (rc == 0) {
        log_info("tls: made a self-signed certificate for %s in %s", config->myhostname,
                 cert_path);
    }
    return rc;
}

/* The first reason OpenSSL queued: the cause, where the last one is
 * often only "PEM lib". */
static const char *
tls_openssl_reason(void)
{
    unsigned long code = ERR_peek_error();
    const char *reason = code != 0 ? ERR_reason_error_string(code) : NULL;
    return reason != NULL ? reason : "unknown OpenSSL error";
}

/* Reading a file that holds no PEM object of the kind asked for queues
 * decoder and PEM errors whose texts ("unsupported", "PEM lib") do not say
 * that; the caller's words do. */
static const char *
tls_openssl_pem_reason(const char *not_found)
{
    unsigned long code = ERR_peek_error();
    int lib = ERR_GET_LIB(code);
    if (lib == ERR_LIB_PEM || lib == ERR_LIB_OSSL_DECODER) {
        return not_found;
    }
    return tls_openssl_reason();
}

static int
tls_error(char *err, size_t err_bytes, int rc, const char *fmt, ...)
{
    if (err_bytes > 0) {
        va_list ap;
        va_start(ap, fmt);
        (void)vsnprintf(err, err_bytes, fmt, ap);
        va_end(ap);
    }
    return rc;
}

/* Mark the connection failed with why (or OpenSSL's first reason when
 * NULL). The alert OpenSSL queued is already in the output. */
static enum tls_status
tls_conn_fail(struct tls_conn *conn, const char *why)
{
    if (why == NULL) {
        unsigned long code = ERR_peek_error();
        why = code != 0 ? ERR_reason_error_string(code) : NULL;
        if (why == NULL) {
            why = "bad record";
        }
    }
    conn->status = TLS_FAILED;
    conn->failure = why;
    return TLS_FAILED;
}
