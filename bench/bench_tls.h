/*
 * bench/bench_tls.h - the TLS client under toaster-bench smtp --starttls:
 * OpenSSL 3 over memory BIOs, driven by the caller's io_uring loop.
 *
 * The loop owns the socket and every op; this module never touches a file
 * descriptor. Ciphertext the loop received goes in through
 * bench_tls_received(), plaintext comes out of bench_tls_read();
 * plaintext to send is queued with bench_tls_queue() (the caller's
 * buffers, borrowed until sent) and comes out as ciphertext chunks from
 * bench_tls_next_out(), which the loop sends and confirms with
 * bench_tls_sent(). One struct bench_tls per connection slot, reused for
 * every connection the slot makes; one struct bench_tls_client per run,
 * shared by every worker thread (OpenSSL makes SSL_new() and the session
 * callbacks safe across threads; everything else here runs on the thread
 * that owns the slot).
 *
 * Limits: BENCH_TLS_OUT_BYTES of ciphertext in flight per connection, at
 * most BENCH_TLS_QUEUE_IOV_MAX plaintext pieces queued at a time.
 */
#ifndef TOASTER_BENCH_TLS_H
#define TOASTER_BENCH_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

/* Ciphertext buffers per connection: what one recv may bring, and what one
 * send carries at most (a few full records). */
#define BENCH_TLS_IN_BYTES (16 * 1024)
#define BENCH_TLS_OUT_BYTES (64 * 1024)
/* Plaintext pieces queued at once (a transaction's commands, head, tail). */
#define BENCH_TLS_QUEUE_IOV_MAX 4
/* The longest SNI name accepted (a DNS name). */
#define BENCH_TLS_SNI_BYTES_MAX 253

struct bench_tls_client;
struct bench_tls;

struct bench_tls_client_config {
    const char *sni; /* server name to send, or NULL for none */
    bool is_resume;  /* offer the last session of a slot when it reconnects */
};

/* Make the client context: TLS 1.2 and 1.3 only, no certificate check (a
 * load generator talks to test servers with self-signed certificates).
 * Returns 0 and sets *client_out, or -ENOMEM / -EINVAL with the reason in
 * err. */
int bench_tls_client_create(const struct bench_tls_client_config *config,
                            struct bench_tls_client **client_out, char *err, size_t err_bytes);

/* Free the context; every struct bench_tls made from it must be gone.
 * NULLs *client. */
void bench_tls_client_destroy(struct bench_tls_client **client);

/* A connection slot's TLS state and buffers, idle (no session). Returns 0
 * and sets *tls_out, or -ENOMEM. */
int bench_tls_create(struct bench_tls_client *client, struct bench_tls **tls_out);

/* Free it (any session, any kept ticket). NULLs *tls. */
void bench_tls_destroy(struct bench_tls **tls);

/* Start a client handshake on a fresh connection: the ClientHello is then
 * waiting in bench_tls_next_out(). With is_resume, the slot's last session
 * is offered. Returns 0, or -ENOMEM / -EPROTO (bench_tls_error() says
 * why); the slot must be idle (bench_tls_reset() after the last one). */
int bench_tls_begin(struct bench_tls *tls);

/* The connection is gone: drop its session state and anything queued,
 * keeping the ticket for resumption. Idle again; harmless when idle. */
void bench_tls_reset(struct bench_tls *tls);

/* Whether a session is in progress (begun, not reset). */
bool bench_tls_is_active(const struct bench_tls *tls);

/* Whether the handshake has finished, and whether it resumed a session. */
bool bench_tls_is_established(const struct bench_tls *tls);
bool bench_tls_is_resumed(const struct bench_tls *tls);

/* The protocol and cipher agreed, e.g. "TLSv1.3 TLS_AES_256_GCM_SHA384";
 * "" before the handshake has finished. */
const char *bench_tls_describe(const struct bench_tls *tls, char *buf, size_t buf_bytes);

/* Where the next recv writes ciphertext: sets *bytes_out to the room
 * (always > 0 while active). */
char *bench_tls_recv_buf(struct bench_tls *tls, size_t *bytes_out);

/* bytes of ciphertext arrived in the recv buffer. Advances the handshake
 * if it is still going; *is_established_out says whether it finished in
 * this call. Returns 0, or -EPROTO (handshake or record failure;
 * bench_tls_error() says why). */
int bench_tls_received(struct bench_tls *tls, size_t bytes, bool *is_established_out);

/* Decrypt into plain[0..plain_bytes): returns bytes > 0, 0 when nothing
 * more is available now, -ECONNRESET when the server sent close_notify,
 * or -EPROTO. Only after the handshake. */
ssize_t bench_tls_read(struct bench_tls *tls, char *plain, size_t plain_bytes);

/* Queue plaintext iov[0..count) for sending; the bytes are borrowed until
 * bench_tls_is_plain_queued() says false. Only after the handshake, and
 * only when no plaintext is queued (ciphertext may still be waiting: the
 * new records follow it). */
void bench_tls_queue(struct bench_tls *tls, const struct iovec *iov, uint32_t count);

/* The next ciphertext to send, encrypting queued plaintext as needed:
 * returns its length (0: nothing to send) and sets *iov_out to it. The
 * caller sends it whole and then calls bench_tls_sent(); only one chunk is
 * out at a time. Returns -EPROTO if encryption failed. */
ssize_t bench_tls_next_out(struct bench_tls *tls, struct iovec *iov_out);

/* The chunk from bench_tls_next_out() is sent, all of it. */
void bench_tls_sent(struct bench_tls *tls);

/* Whether queued plaintext or unsent ciphertext remains. */
bool bench_tls_has_pending(const struct bench_tls *tls);

/* Whether plaintext queued by bench_tls_queue() is not yet all encrypted
 * and handed out (the caller's buffers are still borrowed). */
bool bench_tls_is_plain_queued(const struct bench_tls *tls);

/* Why the last call failed (OpenSSL's words), for the one line logged. */
const char *bench_tls_error(const struct bench_tls *tls);

#endif
