/*
 * core/mta_sts_fetch.c - the HTTPS GET of an MTA-STS policy (see
 * mta_sts_fetch.h).
 *
 * Owns one socket and one client tls_conn for the length of a call; both
 * are closed and freed before it returns, whatever happens. Blocking with
 * poll(2) against one deadline on CLOCK_MONOTONIC, so a server that
 * trickles bytes cannot hold a worker past timeout_ms. Reads the response
 * with proto/http/http_response (head within its bound, body within the
 * caller's). Runs on a worker.
 */
#define _GNU_SOURCE
#include "core/mta_sts_fetch.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/assertions.h"
#include "proto/http/http_response.h"
#include "proto/smtp/mta_sts.h"

#define FETCH_HOST_BYTES (MTA_STS_NAME_BYTES + 8u) /* "mta-sts." + domain */
#define FETCH_REQUEST_BYTES 512u
#define FETCH_RECV_BYTES 16384u
/* Rounds of the I/O loop: each moves at least a byte or waits in poll, so
 * this only bounds a bug; the deadline bounds a peer. */
#define FETCH_ROUNDS_MAX 1000000u

static_assert(FETCH_HOST_BYTES + 128u < FETCH_REQUEST_BYTES, "the request fits");

/* One fetch in progress. */
struct fetch {
    int fd;
    struct tls_conn *tls;
    int64_t deadline_ms;
    char *err;
    size_t err_bytes;
};

static void err_format(struct fetch *fetch, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int64_t monotonic_ms(void);
static int fetch_connect(struct fetch *fetch, const struct relay_tls_fetch_address *address,
                         uint16_t port);
static int fetch_wait(struct fetch *fetch, short events);
static int fetch_flush(struct fetch *fetch, size_t *sent_out);
static int fetch_exchange(struct fetch *fetch, const char *request, size_t request_len,
                          struct http_response *response);

int
mta_sts_fetch(const struct mta_sts_fetch_request *request, char *body, size_t body_max,
              size_t *body_len_out, char *err, size_t err_bytes)
{
    ASSERT(request != NULL);
    ASSERT(body != NULL);
    ASSERT(err_bytes > 0);
    ASSERT(request->client != NULL);
    err[0] = '\0';
    *body_len_out = 0;
    struct fetch fetch = {
        .fd = -1,
        .deadline_ms = monotonic_ms() + (int64_t)request->timeout_ms,
        .err = err,
        .err_bytes = err_bytes,
    };
    size_t domain_len = request->domain != NULL ? strlen(request->domain) : 0;
    if (domain_len == 0 || domain_len + 8 > ROUTE_NAME_BYTES_MAX) {
        err_format(&fetch, "bad policy domain");
        return -EINVAL;
    }
    if (request->address_count == 0) {
        err_format(&fetch, "no address for mta-sts.%s", request->domain);
        return -EINVAL;
    }
    char host[FETCH_HOST_BYTES];
    (void)snprintf(host, sizeof(host), "mta-sts.%s", request->domain); /* fits: checked */

    /* Connect to the first address that answers within the deadline. */
    int rc = -EHOSTUNREACH;
    size_t count = request->address_count < MTA_STS_FETCH_ADDRESSES_MAX
                       ? request->address_count
                       : MTA_STS_FETCH_ADDRESSES_MAX;
    for (size_t i = 0; i < count; i++) {
        rc = fetch_connect(&fetch, &request->addresses[i], request->port);
        if (rc == 0 || rc == -ETIMEDOUT) {
            break;
        }
    }
    if (rc != 0) {
        if (err[0] == '\0') {
            err_format(&fetch, "connect to %s port %u: %s", host, (unsigned)request->port,
                       strerror(-rc));
        }
        return rc;
    }

    rc = tls_conn_new_client(request->client, host, TLS_VERIFY_NAME, NULL, 0, &fetch.tls);
    if (rc != 0) {
        err_format(&fetch, "TLS for %s: %s", host, strerror(-rc));
        (void)close(fetch.fd);
        return rc;
    }
    char text[FETCH_REQUEST_BYTES];
    int text_len;
    if (request->port == 443) {
        text_len = snprintf(text, sizeof(text),
                            "GET /.well-known/mta-sts.txt HTTP/1.1\r\nHost: %s\r\n"
                            "User-Agent: toaster\r\nAccept: text/plain\r\n"
                            "Connection: close\r\n\r\n",
                            host);
    } else {
        text_len = snprintf(text, sizeof(text),
                            "GET /.well-known/mta-sts.txt HTTP/1.1\r\nHost: %s:%u\r\n"
                            "User-Agent: toaster\r\nAccept: text/plain\r\n"
                            "Connection: close\r\n\r\n",
                            host, (unsigned)request->port);
    }
    ASSERT(text_len > 0 && (size_t)text_len < sizeof(text));
    struct http_response response;
    http_response_init(&response, body, body_max);
    rc = fetch_exchange(&fetch, text, (size_t)text_len, &response);
    tls_conn_free(&fetch.tls);
    (void)close(fetch.fd); /* a read-only socket: nothing to learn from close */
    if (rc != 0) {
        return rc;
    }
    /* RFC 8461 3.3: 200 only (redirects are not followed), text/plain. */
    if (response.status != 200) {
        err_format(&fetch, "https://%s/.well-known/mta-sts.txt answered %d", host,
                   response.status);
        return -EPROTO;
    }
    if (strcmp(response.content_type, "text/plain") != 0) {
        err_format(&fetch, "https://%s/.well-known/mta-sts.txt is \"%s\", not text/plain", host,
                   response.content_type);
        return -EPROTO;
    }
    ASSERT(response.body_len <= body_max);
    *body_len_out = response.body_len;
    return 0;
}

/* ---- helpers ----------------------------------------------------------------------- */

static void
err_format(struct fetch *fetch, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    (void)vsnprintf(fetch->err, fetch->err_bytes, fmt, ap); /* cut to fit */
    va_end(ap);
}

static int64_t
monotonic_ms(void)
{
    struct timespec ts;
    int rc = clock_gettime(CLOCK_MONOTONIC, &ts);
    ASSERT(rc == 0);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wait until fd is ready for events or the deadline passes. Returns 0,
 * -ETIMEDOUT or -errno of poll. */
static int
fetch_wait(struct fetch *fetch, short events)
{
    for (uint32_t round = 0; round < 1000; round++) {
        int64_t left_ms = fetch->deadline_ms - monotonic_ms();
        if (left_ms <= 0) {
            return -ETIMEDOUT;
        }
        struct pollfd pfd = { .fd = fetch->fd, .events = events };
        int n = poll(&pfd, 1, left_ms > 60000 ? 60000 : (int)left_ms);
        if (n > 0) {
            return 0; /* ready, or an error the next call will report */
        }
        if (n < 0 && errno != EINTR) {
            return -errno;
        }
    }
    return -ETIMEDOUT;
}

/* Connect to one address, non-blocking, within the deadline. Returns 0
 * with fetch->fd open, or -errno (fd closed). */
static int
fetch_connect(struct fetch *fetch, const struct relay_tls_fetch_address *address, uint16_t port)
{
    struct sockaddr_storage storage;
    socklen_t storage_len;
    memset(&storage, 0, sizeof(storage));
    if (address->family == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)&storage;
        in->sin_family = AF_INET;
        in->sin_port = htons(port);
        in->sin_addr = address->v4;
        storage_len = sizeof(*in);
    } else if (address->family == AF_INET6) {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&storage;
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(port);
        in6->sin6_addr = address->v6;
        storage_len = sizeof(*in6);
    } else {
        return -EAFNOSUPPORT;
    }
    int fd = socket(address->family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return -errno;
    }
    fetch->fd = fd;
    int rc = 0;
    if (connect(fd, (struct sockaddr *)&storage, storage_len) != 0) {
        rc = errno == EINPROGRESS ? 0 : -errno;
        if (rc == 0) {
            rc = fetch_wait(fetch, POLLOUT);
        }
        if (rc == 0) {
            int so_error = 0;
            socklen_t so_len = sizeof(so_error);
            if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &so_error, &so_len) != 0) {
                rc = -errno;
            } else {
                rc = -so_error;
            }
        }
    }
    if (rc != 0) {
        (void)close(fd); /* never connected: nothing to flush */
        fetch->fd = -1;
    }
    return rc;
}

/* Send what TLS has for the wire, waiting as needed; *sent_out counts
 * the bytes. Returns 0 or -errno. */
static int
fetch_flush(struct fetch *fetch, size_t *sent_out)
{
    *sent_out = 0;
    for (uint32_t round = 0; round < FETCH_ROUNDS_MAX; round++) {
        struct span out = tls_conn_output(fetch->tls);
        if (out.len == 0) {
            return 0;
        }
        ssize_t n = send(fetch->fd, out.ptr, out.len, MSG_NOSIGNAL);
        if (n > 0) {
            tls_conn_output_sent(fetch->tls, (size_t)n);
            *sent_out += (size_t)n;
            continue;
        }
        if (n < 0 && errno != EAGAIN && errno != EINTR) {
            return -errno;
        }
        int rc = fetch_wait(fetch, POLLOUT);
        if (rc != 0) {
            return rc;
        }
    }
    return -ETIMEDOUT;
}

/* Handshake, request, response. Returns 0 with the response complete, or
 * -errno with err set. */
static int
fetch_exchange(struct fetch *fetch, const char *request, size_t request_len,
               struct http_response *response)
{
    uint8_t in[FETCH_RECV_BYTES];
    uint8_t plain[FETCH_RECV_BYTES];
    size_t in_len = 0;
    size_t request_sent = 0;
    bool is_checked = false;
    bool is_eof = false;
    for (uint32_t round = 0; round < FETCH_ROUNDS_MAX; round++) {
        /* Ciphertext in, plaintext out, until TLS takes no more. */
        size_t used = 0;
        size_t plain_len = 0;
        enum tls_status status =
            tls_conn_input(fetch->tls, in, in_len, &used, plain, sizeof(plain), &plain_len);
        ASSERT(used <= in_len);
        memmove(in, in + used, in_len - used);
        in_len -= used;
        if (plain_len > 0) {
            size_t fed = 0;
            int rc = http_response_feed(response, plain, plain_len, &fed);
            if (rc == 1) {
                return 0;
            }
            if (rc < 0) {
                err_format(fetch, "bad HTTP response: %s",
                           rc == -E2BIG ? "too large" : strerror(-rc));
                return rc;
            }
        }
        if (status == TLS_FAILED) {
            const char *why = tls_conn_failure(fetch->tls);
            const char *verify = tls_conn_verify_error(fetch->tls);
            err_format(fetch, "TLS failed: %s%s%s", why != NULL ? why : "",
                       verify != NULL && verify[0] != '\0' ? "; " : "",
                       verify != NULL ? verify : "");
            return verify != NULL && verify[0] != '\0' ? -EPERM : -EPROTO;
        }
        if (tls_conn_is_established(fetch->tls) && !is_checked) {
            is_checked = true;
            if (!tls_conn_is_verified(fetch->tls)) {
                const char *why = tls_conn_verify_error(fetch->tls);
                err_format(fetch, "certificate not valid for the policy host: %s",
                           why != NULL ? why : "unknown");
                return -EPERM;
            }
        }
        if (is_checked && request_sent < request_len) {
            long n = tls_conn_write(fetch->tls, (const uint8_t *)request + request_sent,
                                    request_len - request_sent);
            if (n < 0) {
                err_format(fetch, "TLS closed before the request went out");
                return -EPROTO;
            }
            request_sent += (size_t)n;
        }
        size_t sent = 0;
        int rc = fetch_flush(fetch, &sent);
        if (rc != 0) {
            err_format(fetch, "send: %s", strerror(-rc));
            return rc;
        }
        if (status == TLS_CLOSED || is_eof) {
            if (tls_conn_has_plaintext(fetch->tls)) {
                continue;
            }
            rc = http_response_eof(response);
            if (rc == 1) {
                return 0;
            }
            err_format(fetch, "the server closed the connection before the response ended");
            return -EPROTO;
        }
        if (tls_conn_has_plaintext(fetch->tls) || (in_len > 0 && (used > 0 || sent > 0))) {
            continue; /* more to take from what is here (output had been full) */
        }
        if (in_len == sizeof(in)) {
            err_format(fetch, "TLS input stuck");
            return -EPROTO;
        }
        rc = fetch_wait(fetch, POLLIN);
        if (rc != 0) {
            err_format(fetch, "%s", rc == -ETIMEDOUT ? "timed out" : strerror(-rc));
            return rc;
        }
        ssize_t n = recv(fetch->fd, in + in_len, sizeof(in) - in_len, 0);
        if (n > 0) {
            in_len += (size_t)n;
        } else if (n == 0) {
            is_eof = true;
        } else if (errno != EAGAIN && errno != EINTR) {
            rc = -errno;
            err_format(fetch, "recv: %s", strerror(-rc));
            return rc;
        }
    }
    err_format(fetch, "too many rounds");
    return -ETIMEDOUT;
}
