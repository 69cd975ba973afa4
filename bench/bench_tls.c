/*
 * bench/bench_tls.c - the TLS client of toaster-bench smtp --starttls:
 * OpenSSL 3 over two memory BIOs, so no call here touches a socket,
 * blocks or waits.
 *
 * Owns the run's client SSL_CTX, and per connection slot its SSL object
 * (while a session is in progress), the last session for --tls-resume and
 * three fixed buffers: the ciphertext a recv brings (BENCH_TLS_IN_BYTES),
 * the ciphertext chunk being sent (BENCH_TLS_OUT_BYTES) and one record's
 * plaintext being gathered from the queued pieces. The read BIO takes
 * every received byte (OpenSSL keeps a partial record); the write BIO
 * holds what OpenSSL wrote until bench_tls_next_out() copies a chunk into
 * the out buffer, which stays put until the send of it is done, whatever
 * OpenSSL writes meanwhile. Plaintext is encrypted lazily, a record at a
 * time, only while the write BIO holds less than a chunk, so a 1 MiB
 * message never sits in memory as ciphertext.
 *
 * The SSL_CTX is made on the main thread before the workers start and only
 * read afterwards; each struct bench_tls is used by the thread that owns
 * its slot, the session callback included (it runs inside that slot's
 * SSL_read or handshake).
 *
 * Limits: BENCH_TLS_OUT_BYTES per send, RECORD_PLAIN_MAX plaintext per
 * record, BENCH_TLS_QUEUE_IOV_MAX queued pieces.
 */
#include "bench/bench_tls.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "core/assertions.h"

/* The most plaintext one TLS record carries, and what a record adds to it
 * at most (header, nonce or inner type, tag, padding), with room to spare. */
#define RECORD_PLAIN_MAX (16 * 1024)
#define RECORD_OVERHEAD_MAX 512

static_assert(BENCH_TLS_OUT_BYTES >= RECORD_PLAIN_MAX + RECORD_OVERHEAD_MAX,
              "a send holds at least one whole record");

struct bench_tls_client {
    SSL_CTX *ctx;
    char sni[BENCH_TLS_SNI_BYTES_MAX + 1]; /* "" for none */
    bool is_resume;
};

struct bench_tls {
    struct bench_tls_client *client;
    SSL *ssl;             /* NULL when idle; owns both BIOs */
    BIO *rbio;            /* ciphertext in */
    BIO *wbio;            /* ciphertext out, not yet in out[] */
    SSL_SESSION *session; /* for --tls-resume; owned */
    bool is_established;
    bool is_resumed;
    /* Plaintext queued by bench_tls_queue(), advanced in place. */
    struct iovec queue[BENCH_TLS_QUEUE_IOV_MAX];
    uint32_t queue_first;
    uint32_t queue_count;
    /* The chunk handed out by bench_tls_next_out(); 0 bytes: none. */
    size_t out_bytes;
    char error[256];
    char in[BENCH_TLS_IN_BYTES];
    char out[BENCH_TLS_OUT_BYTES];
    char stage[RECORD_PLAIN_MAX];
};

static int session_new(SSL *ssl, SSL_SESSION *session);
static int encrypt_record(struct bench_tls *tls);
static int tls_fail(struct bench_tls *tls, const char *what, int ssl_rc);
static void error_text(char *buf, size_t buf_bytes, const char *what);

int
bench_tls_client_create(const struct bench_tls_client_config *config,
                        struct bench_tls_client **client_out, char *err, size_t err_bytes)
{
    ASSERT(config != NULL);
    ASSERT(client_out != NULL);
    *client_out = NULL;
    if (config->sni != NULL && strlen(config->sni) > BENCH_TLS_SNI_BYTES_MAX) {
        (void)snprintf(err, err_bytes, "SNI name longer than %d bytes", BENCH_TLS_SNI_BYTES_MAX);
        return -EINVAL;
    }
    struct bench_tls_client *client = calloc(1, sizeof(*client));
    if (client == NULL) {
        (void)snprintf(err, err_bytes, "out of memory");
        return -ENOMEM;
    }
    if (config->sni != NULL) {
        (void)snprintf(client->sni, sizeof(client->sni), "%s", config->sni);
    }
    client->is_resume = config->is_resume;
    ERR_clear_error();
    client->ctx = SSL_CTX_new(TLS_client_method());
    if (client->ctx == NULL) {
        error_text(err, err_bytes, "SSL_CTX_new");
        free(client);
        return -ENOMEM;
    }
    SSL_CTX *ctx = client->ctx;
    /* TLS 1.2 and 1.3 only, as the servers we measure offer; no
     * certificate check, since test servers use self-signed ones. */
    if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
        SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) != 1) {
        error_text(err, err_bytes, "setting the TLS versions");
        SSL_CTX_free(ctx);
        free(client);
        return -EINVAL;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    (void)SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
    if (client->is_resume) {
        /* Sessions are kept per slot by session_new(), not in the
         * context's cache (which would need a lock across threads). */
        (void)SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT |
                                                      SSL_SESS_CACHE_NO_INTERNAL_STORE);
        SSL_CTX_sess_set_new_cb(ctx, session_new);
    } else {
        (void)SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    }
    *client_out = client;
    return 0;
}

void
bench_tls_client_destroy(struct bench_tls_client **client)
{
    if (*client == NULL) {
        return;
    }
    SSL_CTX_free((*client)->ctx);
    free(*client);
    *client = NULL;
}

int
bench_tls_create(struct bench_tls_client *client, struct bench_tls **tls_out)
{
    ASSERT(client != NULL);
    /* malloc, not calloc: the buffers need no zeroing, and untouched
     * pages of an idle slot then cost nothing. */
    struct bench_tls *tls = malloc(sizeof(*tls));
    if (tls == NULL) {
        return -ENOMEM;
    }
    tls->client = client;
    tls->ssl = NULL;
    tls->rbio = NULL;
    tls->wbio = NULL;
    tls->session = NULL;
    tls->is_established = false;
    tls->is_resumed = false;
    tls->queue_first = 0;
    tls->queue_count = 0;
    tls->out_bytes = 0;
    tls->error[0] = '\0';
    *tls_out = tls;
    return 0;
}

void
bench_tls_destroy(struct bench_tls **tls)
{
    if (*tls == NULL) {
        return;
    }
    bench_tls_reset(*tls);
    SSL_SESSION_free((*tls)->session); /* NULL is fine */
    free(*tls);
    *tls = NULL;
}

int
bench_tls_begin(struct bench_tls *tls)
{
    ASSERT(tls->ssl == NULL);
    ERR_clear_error();
    tls->ssl = SSL_new(tls->client->ctx);
    if (tls->ssl == NULL) {
        error_text(tls->error, sizeof(tls->error), "SSL_new");
        return -ENOMEM;
    }
    tls->rbio = BIO_new(BIO_s_mem());
    tls->wbio = BIO_new(BIO_s_mem());
    if (tls->rbio == NULL || tls->wbio == NULL) {
        error_text(tls->error, sizeof(tls->error), "BIO_new");
        BIO_free(tls->rbio);
        BIO_free(tls->wbio);
        tls->rbio = NULL;
        tls->wbio = NULL;
        SSL_free(tls->ssl);
        tls->ssl = NULL;
        return -ENOMEM;
    }
    /* An empty read BIO means "more to come", not end of file. */
    (void)BIO_set_mem_eof_return(tls->rbio, -1);
    (void)BIO_set_mem_eof_return(tls->wbio, -1);
    SSL_set_bio(tls->ssl, tls->rbio, tls->wbio); /* the SSL owns them now */
    SSL_set_connect_state(tls->ssl);
    SSL_set_app_data(tls->ssl, tls);
    if (tls->client->sni[0] != '\0' && SSL_set_tlsext_host_name(tls->ssl, tls->client->sni) != 1) {
        error_text(tls->error, sizeof(tls->error), "setting SNI");
        bench_tls_reset(tls);
        return -EPROTO;
    }
    if (tls->client->is_resume && tls->session != NULL &&
        SSL_SESSION_is_resumable(tls->session) == 1 &&
        SSL_set_session(tls->ssl, tls->session) != 1) {
        error_text(tls->error, sizeof(tls->error), "offering the last session");
        bench_tls_reset(tls);
        return -EPROTO;
    }
    tls->is_established = false;
    tls->is_resumed = false;
    /* Writes the ClientHello into the write BIO and wants the reply. */
    int rc = SSL_do_handshake(tls->ssl);
    if (rc != 1 && SSL_get_error(tls->ssl, rc) != SSL_ERROR_WANT_READ) {
        (void)tls_fail(tls, "starting the handshake", rc);
        bench_tls_reset(tls);
        return -EPROTO;
    }
    return 0;
}

void
bench_tls_reset(struct bench_tls *tls)
{
    if (tls->ssl != NULL) {
        /* The SMTP session ended with QUIT (or went wrong, which a ticket
         * does not care about): without this mark, freeing an SSL that
         * sent no close_notify makes its session, the one a ticket
         * replaced last, not resumable. */
        SSL_set_shutdown(tls->ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
        SSL_free(tls->ssl); /* and both BIOs */
    }
    tls->ssl = NULL;
    tls->rbio = NULL;
    tls->wbio = NULL;
    tls->is_established = false;
    tls->is_resumed = false;
    tls->queue_first = 0;
    tls->queue_count = 0;
    tls->out_bytes = 0;
}

bool
bench_tls_is_active(const struct bench_tls *tls)
{
    return tls->ssl != NULL;
}

bool
bench_tls_is_established(const struct bench_tls *tls)
{
    return tls->is_established;
}

bool
bench_tls_is_resumed(const struct bench_tls *tls)
{
    return tls->is_resumed;
}

const char *
bench_tls_describe(const struct bench_tls *tls, char *buf, size_t buf_bytes)
{
    ASSERT(buf_bytes > 0);
    buf[0] = '\0';
    if (tls->ssl != NULL && tls->is_established) {
        (void)snprintf(buf, buf_bytes, "%s %s", SSL_get_version(tls->ssl),
                       SSL_CIPHER_get_name(SSL_get_current_cipher(tls->ssl)));
    }
    return buf;
}

char *
bench_tls_recv_buf(struct bench_tls *tls, size_t *bytes_out)
{
    ASSERT(tls->ssl != NULL);
    *bytes_out = sizeof(tls->in);
    return tls->in;
}

int
bench_tls_received(struct bench_tls *tls, size_t bytes, bool *is_established_out)
{
    ASSERT(tls->ssl != NULL);
    ASSERT(bytes > 0);
    ASSERT(bytes <= sizeof(tls->in));
    *is_established_out = false;
    ERR_clear_error();
    /* A memory BIO takes everything, or fails only for want of memory. */
    int written = BIO_write(tls->rbio, tls->in, (int)bytes);
    if (written != (int)bytes) {
        error_text(tls->error, sizeof(tls->error), "buffering received bytes");
        return -EPROTO;
    }
    if (tls->is_established) {
        return 0;
    }
    int rc = SSL_do_handshake(tls->ssl);
    if (rc == 1) {
        tls->is_established = true;
        tls->is_resumed = SSL_session_reused(tls->ssl) == 1;
        *is_established_out = true;
        return 0;
    }
    if (SSL_get_error(tls->ssl, rc) == SSL_ERROR_WANT_READ) {
        return 0;
    }
    return tls_fail(tls, "handshake", rc);
}

ssize_t
bench_tls_read(struct bench_tls *tls, char *plain, size_t plain_bytes)
{
    ASSERT(tls->ssl != NULL);
    ASSERT(tls->is_established);
    ASSERT(plain_bytes > 0);
    size_t got = 0;
    ERR_clear_error();
    int rc = SSL_read_ex(tls->ssl, plain, plain_bytes, &got);
    if (rc == 1) {
        ASSERT(got > 0 && got <= plain_bytes);
        return (ssize_t)got;
    }
    switch (SSL_get_error(tls->ssl, rc)) {
    case SSL_ERROR_WANT_READ:
        return 0;
    case SSL_ERROR_ZERO_RETURN:
        return -ECONNRESET;
    default:
        return tls_fail(tls, "reading", rc);
    }
}

void
bench_tls_queue(struct bench_tls *tls, const struct iovec *iov, uint32_t count)
{
    ASSERT(tls->ssl != NULL);
    ASSERT(tls->is_established);
    ASSERT(tls->queue_first == tls->queue_count);
    ASSERT(count >= 1);
    ASSERT(count <= BENCH_TLS_QUEUE_IOV_MAX);
    for (uint32_t i = 0; i < count; i++) {
        tls->queue[i] = iov[i];
    }
    tls->queue_first = 0;
    tls->queue_count = count;
}

ssize_t
bench_tls_next_out(struct bench_tls *tls, struct iovec *iov_out)
{
    ASSERT(tls->ssl != NULL);
    ASSERT(tls->out_bytes == 0); /* one chunk out at a time */
    /* Encrypt while one more whole record still fits in the chunk. */
    size_t pending = BIO_ctrl_pending(tls->wbio);
    while (tls->queue_first < tls->queue_count &&
           pending + RECORD_PLAIN_MAX + RECORD_OVERHEAD_MAX <= sizeof(tls->out)) {
        int rc = encrypt_record(tls);
        if (rc < 0) {
            return rc;
        }
        pending = BIO_ctrl_pending(tls->wbio);
    }
    if (pending == 0) {
        return 0;
    }
    size_t take = pending < sizeof(tls->out) ? pending : sizeof(tls->out);
    ERR_clear_error();
    int got = BIO_read(tls->wbio, tls->out, (int)take);
    if (got != (int)take) {
        error_text(tls->error, sizeof(tls->error), "taking ciphertext to send");
        return -EPROTO;
    }
    tls->out_bytes = take;
    iov_out->iov_base = tls->out;
    iov_out->iov_len = take;
    return (ssize_t)take;
}

void
bench_tls_sent(struct bench_tls *tls)
{
    ASSERT(tls->out_bytes > 0);
    tls->out_bytes = 0;
}

bool
bench_tls_has_pending(const struct bench_tls *tls)
{
    if (tls->ssl == NULL) {
        return false;
    }
    return tls->out_bytes > 0 || tls->queue_first < tls->queue_count ||
           BIO_ctrl_pending(tls->wbio) > 0;
}

bool
bench_tls_is_plain_queued(const struct bench_tls *tls)
{
    return tls->queue_first < tls->queue_count;
}

const char *
bench_tls_error(const struct bench_tls *tls)
{
    return tls->error[0] != '\0' ? tls->error : "unknown TLS error";
}

/* A new session (TLS 1.3: a ticket after the handshake) for the slot whose
 * SSL this is: keep the latest one. Returning 1 keeps the reference. */
static int
session_new(SSL *ssl, SSL_SESSION *session)
{
    struct bench_tls *tls = SSL_get_app_data(ssl);
    ASSERT(tls != NULL);
    SSL_SESSION_free(tls->session); /* NULL is fine */
    tls->session = session;
    return 1;
}

/* One record's worth of queued plaintext into the write BIO: a piece of at
 * least a record goes straight from the caller's buffer, smaller pieces
 * are gathered into stage first so a transaction's commands, head and
 * tail share records instead of making one record each. */
static int
encrypt_record(struct bench_tls *tls)
{
    ASSERT(tls->queue_first < tls->queue_count);
    const char *data;
    size_t bytes = 0;
    struct iovec *first = &tls->queue[tls->queue_first];

    if (first->iov_len >= RECORD_PLAIN_MAX) {
        data = first->iov_base;
        bytes = RECORD_PLAIN_MAX;
        first->iov_base = (char *)first->iov_base + bytes;
        first->iov_len -= bytes;
    } else {
        while (tls->queue_first < tls->queue_count && bytes < sizeof(tls->stage)) {
            struct iovec *piece = &tls->queue[tls->queue_first];
            size_t take = sizeof(tls->stage) - bytes;
            if (take > piece->iov_len) {
                take = piece->iov_len;
            }
            memcpy(tls->stage + bytes, piece->iov_base, take);
            bytes += take;
            piece->iov_base = (char *)piece->iov_base + take;
            piece->iov_len -= take;
            if (piece->iov_len == 0) {
                tls->queue_first++;
            }
        }
        data = tls->stage;
    }
    while (tls->queue_first < tls->queue_count && tls->queue[tls->queue_first].iov_len == 0) {
        tls->queue_first++;
    }
    if (bytes == 0) {
        return 0; /* only empty pieces were left */
    }
    size_t written = 0;
    ERR_clear_error();
    int rc = SSL_write_ex(tls->ssl, data, bytes, &written);
    if (rc != 1) {
        return tls_fail(tls, "encrypting", rc);
    }
    /* Without partial writes, and a memory BIO that never says "later",
     * a record is written whole. */
    ASSERT(written == bytes);
    return 0;
}

/* Record why an SSL call failed; returns -EPROTO. */
static int
tls_fail(struct bench_tls *tls, const char *what, int ssl_rc)
{
    int ssl_error = SSL_get_error(tls->ssl, ssl_rc);
    unsigned long code = ERR_peek_error();
    if (code != 0) {
        error_text(tls->error, sizeof(tls->error), what);
    } else {
        (void)snprintf(tls->error, sizeof(tls->error), "%s: SSL error %d", what, ssl_error);
    }
    return -EPROTO;
}

/* "what: OpenSSL's reason" from the thread's error queue, which is
 * emptied. */
static void
error_text(char *buf, size_t buf_bytes, const char *what)
{
    unsigned long code = ERR_get_error();
    char reason[200];

    if (code == 0) {
        (void)snprintf(buf, buf_bytes, "%s failed", what);
    } else {
        ERR_error_string_n(code, reason, sizeof(reason));
        (void)snprintf(buf, buf_bytes, "%s: %s", what, reason);
    }
    ERR_clear_error();
}
