/*
 * core/tls.h - TLS for the reactors: OpenSSL 3 driven through memory, so
 * no TLS call touches a socket or blocks.
 *
 * struct tls_server holds the SSL_CTX: TLS 1.2 and 1.3 only, forward-secret
 * AEAD ciphers, session tickets, the default certificate (tls_cert and
 * tls_key, or a self-signed one made at first start under data_dir) and the
 * per-domain ones chosen by SNI (tls_sni). It is built once at start; a
 * reload builds a new generation of certificates (struct tls_certs) and
 * swaps it in: new handshakes use it, connections made before go on with
 * theirs.
 *
 * struct tls_client is the SSL_CTX of our outgoing SMTP connections (the
 * delivery agent): the same protocol versions, ciphers and groups, the
 * system's trust store (or a CA file), DANE (RFC 7671/7672) support.
 * Each client connection says how much it checks: nothing (opportunistic
 * TLS: any certificate, the result only logged), the name and chain
 * (smtp_tls_security = verify, MTA-STS), or DANE TLSA records.
 *
 * struct tls_conn is one connection's TLS state, server or client side. The reactor gives it the
 * ciphertext it received and takes plaintext out; it gives it plaintext
 * and takes out the ciphertext to send. Everything else (sockets, buffers
 * for what the protocol has not consumed yet) stays with the reactor.
 */
#ifndef TOASTER_CORE_TLS_H
#define TOASTER_CORE_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/config.h"
#include "core/span.h"

/* The most plaintext one TLS record carries (RFC 8446 5.1). */
#define TLS_RECORD_PLAIN_MAX 16384u

struct tls_server;
struct tls_conn;

/* Build the server side from the configuration: load tls_cert/tls_key (or
 * make and keep a self-signed certificate for myhostname under
 * <data_dir>/tls/ the first time) and every tls_sni certificate. Returns 0,
 * or -errno / -EINVAL with the reason (file, OpenSSL's error) in err. */
int tls_server_create(const struct config *config, struct tls_server **server_out, char *err,
                      size_t err_bytes);
void tls_server_free(struct tls_server **server);

/* Before tls_server_create() when that runs with other file permissions
 * (core/privileges.h: as root, while data_dir belongs to the mail user):
 * make the self-signed pair under <data_dir>/tls/ when tls_cert is empty,
 * as the user who will read it on a reload. Returns 0 or -errno with the
 * reason in err. */
int tls_server_prepare(const struct config *config, char *err, size_t err_bytes);

/* One generation of server certificates (default and tls_sni). */
struct tls_certs;

/* Load a generation from config as tls_server_create() does (main thread;
 * blocks on files). Returns 0 and *certs_out, or -errno / -EINVAL with the
 * reason in err; nothing in service changes. */
int tls_certs_load(const struct config *config, struct tls_certs **certs_out, char *err,
                   size_t err_bytes);

/* Put certs in service for new connections (main thread) and return the
 * generation it replaces, which the caller frees with tls_certs_free()
 * only once every reactor has passed a new epoch (core/reactor.h). The
 * session ticket keys carry over, so tickets issued before still resume. */
struct tls_certs *tls_server_swap(struct tls_server *server, struct tls_certs *certs);
void tls_certs_free(struct tls_certs **certs);

/* A new server-side connection, before its handshake. NULL when out of
 * memory. */
struct tls_conn *tls_conn_new(struct tls_server *server);
void tls_conn_free(struct tls_conn **conn);

struct tls_client;

/* The client side. ca_file: PEM trust anchors to use instead of the
 * system's store (NULL or "": the system's). Returns 0, or -errno /
 * -EINVAL with the reason in err. */
int tls_client_create(const char *ca_file, struct tls_client **client_out, char *err,
                      size_t err_bytes);
void tls_client_free(struct tls_client **client);

/* How a client connection checks the server's certificate. */
enum tls_verify {
    TLS_VERIFY_NONE, /* opportunistic: any certificate; the result is only reported */
    TLS_VERIFY_NAME, /* chain to a trust anchor and valid for server_name */
    TLS_VERIFY_DANE, /* the TLSA records given (DANE-TA(2) / DANE-EE(3), RFC 7672) */
};

/* One TLSA record (RFC 6698): usage, selector, matching type and the data. */
struct tls_tlsa {
    uint8_t        usage;
    uint8_t        selector;
    uint8_t        matching_type;
    const uint8_t *data;
    size_t         len;
};

#define TLS_TLSA_MAX 32u /* records looked at per connection */

/* A new client-side connection to server_name (sent as SNI, and the name
 * checked with TLS_VERIFY_NAME; a DANE connection checks it only for
 * DANE-TA). With TLS_VERIFY_DANE, tlsa[0..tlsa_count) are the records:
 * PKIX-TA(0) and PKIX-EE(1) are unusable for SMTP (RFC 7672 3.1.3) and
 * skipped; none usable is -EINVAL (the caller treats the server as
 * "encrypt" only, as RFC 7672 2.2 says). The handshake begins with the
 * first tls_conn_input() (in_len 0 makes the ClientHello). Returns 0 and
 * *conn_out, -EINVAL or -ENOMEM. */
int tls_conn_new_client(struct tls_client *client, const char *server_name,
                        enum tls_verify verify, const struct tls_tlsa *tlsa, size_t tlsa_count,
                        struct tls_conn **conn_out);

enum tls_status {
    TLS_OK,     /* go on (the handshake may still be running) */
    TLS_CLOSED, /* the peer sent close_notify: no more plaintext will come */
    TLS_FAILED, /* handshake failure or a broken record: send what is pending, then close */
};

/* Ciphertext in, plaintext out. Takes what it needs of in[0..in_len)
 * (*in_used; all of it unless out fills first) and writes up to out_bytes
 * of plaintext to out (*out_len, valid whatever the status: plaintext that
 * came before a close_notify or a bad record is still returned). A partial
 * record is kept inside (it counts in *in_used); the bytes after it are
 * not taken until the record's end arrives with them. While the handshake
 * runs, its replies appear in tls_conn_output(). Plaintext already
 * decrypted but not yet returned comes out first, so a call with in_len 0
 * drains it.
 * When the output is full (TLS_OUTPUT_MAX: a peer that sends without
 * reading, or a huge certificate chain), input stops with out not full
 * and in_used < in_len; call again (in_len 0 will do) once
 * tls_conn_output_sent() has made room. Once TLS_CLOSED or TLS_FAILED was
 * returned, every later call returns the same and takes nothing. */
enum tls_status tls_conn_input(struct tls_conn *conn, const uint8_t *in, size_t in_len,
                               size_t *in_used, uint8_t *out, size_t out_bytes,
                               size_t *out_len);

/* Whether plaintext is waiting inside (a call with in_len 0 returns it). */
bool tls_conn_has_plaintext(const struct tls_conn *conn);

/* Plaintext in, encrypted into the output: returns the bytes taken, 0 while
 * the handshake is not finished or the output has no room for one more
 * record, or -1 once the connection has failed (or sent its close_notify).
 * It takes records of at most TLS_RECORD_PLAIN_MAX only while the whole
 * record fits, so it may take less than len: the rest waits in the
 * caller's buffer until tls_conn_output_sent() made room. */
#define TLS_OUTPUT_MAX (4u * (TLS_RECORD_PLAIN_MAX + 512u))
long tls_conn_write(struct tls_conn *conn, const uint8_t *plain, size_t len);

/* Ciphertext waiting to be sent (handshake, alerts, data), and how much of
 * it went out. The bytes stay where they are until tls_conn_output_sent()
 * (a send may be in flight from them): new output is only appended, and
 * the rest moves down only inside tls_conn_output_sent(). */
struct span tls_conn_output(const struct tls_conn *conn);
void tls_conn_output_sent(struct tls_conn *conn, size_t bytes);

/* Queue our close_notify (the session is over). Does nothing before the
 * handshake has finished, after a failure, or a second time; afterwards
 * tls_conn_write() returns -1. */
void tls_conn_close_notify(struct tls_conn *conn);

/* Give back buffers while the connection idles with nothing pending, so
 * a TLS connection at rest costs little: the output buffer when it is
 * empty, and OpenSSL's record buffers unless they hold part of a record.
 * The connection goes on working; buffers come back when needed. */
void tls_conn_trim(struct tls_conn *conn);

bool tls_conn_is_established(const struct tls_conn *conn);
/* After the handshake: "TLSv1.3", "TLS_AES_256_GCM_SHA384", its bits, the
 * SNI name the client asked for (or NULL), whether a session was resumed. */
const char *tls_conn_version(const struct tls_conn *conn);
const char *tls_conn_cipher(const struct tls_conn *conn);
int tls_conn_cipher_bits(const struct tls_conn *conn);
const char *tls_conn_server_name(const struct tls_conn *conn);
bool tls_conn_is_resumed(const struct tls_conn *conn);
/* Client side, after the handshake: whether the certificate met the
 * connection's check (with TLS_VERIFY_NONE: whether it would have passed
 * TLS_VERIFY_NAME, for the log: Postfix's "Trusted"/"Untrusted"), and
 * why not ("" when it did). */
bool tls_conn_is_verified(const struct tls_conn *conn);
const char *tls_conn_verify_error(const struct tls_conn *conn);
/* Why the connection failed, for one log line ("" when it has not). */
const char *tls_conn_failure(const struct tls_conn *conn);

#endif
