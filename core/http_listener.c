/*
 * core/http_listener.c - serves HTTP on a reactor (see http_listener.h).
 *
 * Owns each connection's request parser (proto/http/http_request), the
 * POST body it reads into (malloc'd at the announced length, at most
 * HTTP_LISTENER_POST_BYTES_MAX) and the one response it sends (malloc'd,
 * header and body together). The route table maps a path to the methods
 * it takes and a function that renders its body; the documents themselves
 * are pure functions in proto/http/.
 *
 * Reactor thread only. The users and aliases table (which domains we
 * host) is read through recipients_current() within the callback, as the
 * SMTP listener reads it.
 */
#define _GNU_SOURCE
#include "core/http_listener.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/assertions.h"
#include "core/cidr_list.h"
#include "core/log.h"
#include "core/metrics.h"
#include "proto/http/http_reply.h"
#include "proto/http/http_request.h"
#include "proto/http/mail_autoconfig.h"
#include "proto/http/mta_sts_policy.h"
#include "store/recipients.h"

/* A POST body (an Autodiscover request is a few hundred bytes). */
#define HTTP_LISTENER_POST_BYTES_MAX (64u * 1024u)
/* The extra header fields a route may add (Allow, Content-Disposition). */
#define HTTP_LISTENER_FIELDS_BYTES 256u

static_assert(HTTP_LISTENER_POST_BYTES_MAX <= HTTP_REQUEST_BODY_BYTES_CEILING,
              "the parser takes a body this large");

enum {
    ROUTE_GET = 1u << 0, /* HEAD goes wherever GET does */
    ROUTE_POST = 1u << 1,
};

/* What a route sees of the request. */
struct route_request {
    const struct http_request *request;
    struct conn *conn;
    const struct recipients *recipients;
};

/* What a route answers: a status, and for 200 the body it wrote into
 * body[0..body_bytes) with its media type. */
struct route_answer {
    int status;
    const char *reason;       /* for the log when status is not 200 */
    const char *content_type;
    char *body;
    size_t body_bytes;
    size_t body_len;
    char fields[HTTP_LISTENER_FIELDS_BYTES]; /* extra header lines, CRLF each */
};

struct route {
    const char *path;
    bool is_path_nocase;       /* Autodiscover's clients spell it either way */
    uint32_t methods;          /* ROUTE_GET | ROUTE_POST */
    const char *allow_field;   /* the Allow header for a 405 */
    size_t body_bytes_max;     /* the body buffer render() gets */
    /* NULL: anyone; else peers outside the list get 403 (the /metrics
     * hook: { "/metrics", false, ROUTE_GET, "Allow: GET, HEAD\r\n",
     * <bound>, metrics_render, &http_listener.metrics_allow }). */
    const struct cidr_list *allow;
    void (*render)(const struct route_request *rq, struct route_answer *answer);
};

struct http_conn {
    struct http_request request;
    struct conn *conn;
    char *post_body;           /* the POST body being read */
    const char *interim;       /* "100 Continue" being sent, or NULL */
    size_t interim_sent;
    char *out;                 /* the response */
    size_t out_len;
    size_t out_sent;
    bool is_answered;          /* the response is queued: close once it is out */
    bool is_stopping;          /* the daemon stops: close without an answer */
};

static struct {
    const struct config *config;
    struct mail_autoconfig_server server;
    char mta_sts_policy[MTA_STS_POLICY_BYTES_MAX];
    size_t mta_sts_policy_len;
    struct cidr_list metrics_allow; /* who may GET /metrics (metrics_allow) */
} http_listener;

static const char interim_continue[] = "HTTP/1.1 100 Continue\r\n\r\n";
/* Sent when there is no memory for a response. */
static const char answer_no_memory[] = "HTTP/1.1 503 Service Unavailable\r\n"
                                       "Server: toaster\r\n"
                                       "Content-Length: 0\r\n"
                                       "Connection: close\r\n\r\n";

static void request_serve(struct http_conn *hc);
static void answer_error(struct http_conn *hc, int status, const char *reason,
                         const char *fields);

/* ---- the handler -------------------------------------------------------- */

static void
hc_open(struct conn *conn)
{
    struct http_conn *hc = conn_state(conn);
    memset(hc, 0, sizeof(*hc));
    hc->conn = conn;
    http_request_init(&hc->request, HTTP_LISTENER_POST_BYTES_MAX);
    /* The whole request within http_timeout, however slowly it trickles. */
    conn_timer_start(conn, http_listener.config->http_timeout_ms);
}

static size_t
hc_input(struct conn *conn, const uint8_t *bytes, size_t len)
{
    struct http_conn *hc = conn_state(conn);
    if (hc->is_answered || hc->is_stopping) {
        return len; /* after the answer nothing is read as a request */
    }
    size_t used = 0;
    int rc = http_request_feed(&hc->request, bytes, len, &used);
    if (rc == HTTP_REQUEST_BODY_WANTED) {
        /* The length is within HTTP_LISTENER_POST_BYTES_MAX (413 otherwise). */
        hc->post_body = malloc((size_t)hc->request.content_length);
        if (hc->post_body == NULL) {
            log_error("http: %s: no memory for a %llu-byte request body", conn_peer_text(conn),
                      (unsigned long long)hc->request.content_length);
            answer_error(hc, 503, "out of memory", NULL);
            return len;
        }
        http_request_body_buffer(&hc->request, hc->post_body,
                                 (size_t)hc->request.content_length);
        size_t more = 0;
        rc = http_request_feed(&hc->request, bytes + used, len - used, &more);
        used += more;
        if (rc == HTTP_REQUEST_NEED_MORE && hc->request.expects_continue &&
            hc->request.minor_version == 1) {
            hc->interim = interim_continue; /* RFC 9110 10.1.1 */
        }
    }
    if (rc == HTTP_REQUEST_DONE) {
        request_serve(hc);
    } else if (rc == HTTP_REQUEST_FAILED) {
        answer_error(hc, hc->request.status, hc->request.reason, NULL);
        used = len;
    }
    return used;
}

static bool
hc_wants_input(struct conn *conn)
{
    struct http_conn *hc = conn_state(conn);
    return !hc->is_answered && !hc->is_stopping;
}

static uint32_t
hc_read_timeout_ms(struct conn *conn)
{
    (void)conn;
    return http_listener.config->http_timeout_ms;
}

static struct span
hc_pending_output(struct conn *conn)
{
    struct http_conn *hc = conn_state(conn);
    if (hc->interim != NULL) {
        return span_make(hc->interim + hc->interim_sent, strlen(hc->interim) - hc->interim_sent);
    }
    if (hc->out != NULL) {
        return span_make(hc->out + hc->out_sent, hc->out_len - hc->out_sent);
    }
    return span_make(NULL, 0);
}

static void
hc_output_sent(struct conn *conn, size_t bytes)
{
    struct http_conn *hc = conn_state(conn);
    if (hc->interim != NULL) {
        ASSERT(bytes <= strlen(hc->interim) - hc->interim_sent);
        hc->interim_sent += bytes;
        if (hc->interim_sent == strlen(hc->interim)) {
            hc->interim = NULL;
            hc->interim_sent = 0;
        }
        return;
    }
    ASSERT(hc->out != NULL);
    ASSERT(bytes <= hc->out_len - hc->out_sent);
    hc->out_sent += bytes;
}

static bool
hc_is_closing(struct conn *conn)
{
    struct http_conn *hc = conn_state(conn);
    return hc->is_answered || hc->is_stopping;
}

/* The read timeout and the whole-request timer end alike: 408. */
static void
hc_timeout(struct conn *conn)
{
    struct http_conn *hc = conn_state(conn);
    if (!hc->is_answered && !hc->is_stopping) {
        answer_error(hc, 408, "request not received in time", NULL);
    } /* the reactor looks at the connection after every callback */
}

static void
hc_shutdown(struct conn *conn, bool is_forced)
{
    (void)is_forced;
    struct http_conn *hc = conn_state(conn);
    if (!hc->is_answered) {
        hc->is_stopping = true; /* a queued "100 Continue" may still go out */
    }
}

static void
hc_close(struct conn *conn)
{
    struct http_conn *hc = conn_state(conn);
    free(hc->post_body);
    hc->post_body = NULL;
    if (hc->out != answer_no_memory) {
        free(hc->out);
    }
    hc->out = NULL;
}

const struct conn_handler http_listener_handler = {
    .name = "http",
    .state_bytes = sizeof(struct http_conn),
    .refusal_text = "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n"
                    "Connection: close\r\n\r\n",
    .open = hc_open,
    .input = hc_input,
    .wants_input = hc_wants_input,
    .read_timeout_ms = hc_read_timeout_ms,
    .pending_output = hc_pending_output,
    .output_sent = hc_output_sent,
    .is_closing = hc_is_closing,
    .timeout = hc_timeout,
    .shutdown = hc_shutdown,
    .close = hc_close,
    .timer = hc_timeout,
};

/* ---- answers ------------------------------------------------------------- */

/* One line per request, as an access log has it (the path without the
 * query: that holds addresses). */
static void
request_log(const struct http_conn *hc, int status, size_t body_len, const char *reason)
{
    const struct http_request *r = &hc->request;
    int path_len = r->path_len < 200 ? (int)r->path_len : 200;
    log_info("http: %s %s \"%s %.*s\" %d %zu%s%s", conn_peer_text(hc->conn),
             r->host[0] != '\0' ? r->host : "-", r->method_text[0] != '\0' ? r->method_text : "-",
             path_len, r->target, status, body_len, reason != NULL ? " " : "",
             reason != NULL ? reason : "");
}

/* Queue the response; the connection closes once it is sent. */
static void
answer_send(struct http_conn *hc, const struct http_reply *reply)
{
    ASSERT(!hc->is_answered);
    hc->is_answered = true;
    free(hc->post_body);
    hc->post_body = NULL;
    /* A "100 Continue" queued goes out first, whole: it may be in a send
     * already, and the final answer after it is what RFC 9110 expects. */
    size_t bytes = HTTP_REPLY_HEAD_BYTES_MAX + (reply->is_head ? 0 : reply->body_len);
    hc->out = malloc(bytes);
    int n = hc->out != NULL ? http_reply_format(reply, time(NULL), hc->out, bytes) : -ENOMEM;
    if (n < 0) {
        log_error("http: %s: cannot make the %d response: %s", conn_peer_text(hc->conn),
                  reply->status, strerror(-n));
        free(hc->out);
        hc->out = (char *)answer_no_memory; /* never written to; hc_close does not free it */
        hc->out_len = sizeof(answer_no_memory) - 1;
        return;
    }
    hc->out_len = (size_t)n;
    hc->out_sent = 0;
}

static void
answer_error(struct http_conn *hc, int status, const char *reason, const char *fields)
{
    char body[128];
    int n = snprintf(body, sizeof(body), "%d %s\n", status, http_reply_reason(status));
    ASSERT(n > 0 && (size_t)n < sizeof(body));
    request_log(hc, status, (size_t)n, reason);
    struct http_reply reply = {
        .status = status,
        .content_type = "text/plain; charset=utf-8",
        .extra_fields = fields,
        .body = body,
        .body_len = (size_t)n,
        .is_head = hc->request.method == HTTP_METHOD_HEAD,
    };
    answer_send(hc, &reply);
}

/* ---- routes ------------------------------------------------------------- */

static bool
domain_is_hosted(const struct route_request *rq, const char *domain)
{
    return rq->recipients != NULL &&
           recipients_domain_is_local(rq->recipients, span_make(domain, strlen(domain)));
}

static void
answer_status(struct route_answer *answer, int status, const char *reason)
{
    answer->status = status;
    answer->reason = reason;
}

/* The address of ?emailaddress=, checked, into address (domain lower
 * case). Returns 0, or sets the answer (400) and returns -1. */
static int
query_address(const struct route_request *rq, struct route_answer *answer,
              char address[MAIL_AUTOCONFIG_ADDRESS_BYTES_MAX + 1], size_t *at_out)
{
    char raw[MAIL_AUTOCONFIG_ADDRESS_BYTES_MAX + 1];
    int len = http_request_query_param(rq->request, "emailaddress", raw, sizeof(raw));
    if (len < 0) {
        answer_status(answer, 400, len == -ENOENT ? "no emailaddress" : "bad emailaddress");
        return -1;
    }
    if (mail_autoconfig_address_normalize(raw, (size_t)len, address, at_out) != 0) {
        answer_status(answer, 400, "bad emailaddress");
        return -1;
    }
    return 0;
}

static void
render_result(struct route_answer *answer, int n, const char *content_type)
{
    if (n < 0) {
        answer_status(answer, 500, "document did not fit");
        return;
    }
    answer->status = 200;
    answer->content_type = content_type;
    answer->body_len = (size_t)n;
}

/* Thunderbird: the domain of ?emailaddress= when given, else the Host
 * the client asked (autoconfig.<domain> or <domain>). */
static void
render_thunderbird(const struct route_request *rq, struct route_answer *answer)
{
    char address[MAIL_AUTOCONFIG_ADDRESS_BYTES_MAX + 1];
    size_t at = 0;
    const char *domain = NULL;
    if (http_request_query_param(rq->request, "emailaddress", address, sizeof(address)) !=
        -ENOENT) {
        if (query_address(rq, answer, address, &at) != 0) {
            return;
        }
        domain = address + at + 1;
    } else {
        domain = rq->request->host;
        if (strncmp(domain, "autoconfig.", 11) == 0) {
            domain += 11;
        }
        if (!mail_autoconfig_domain_ok(domain, strlen(domain))) {
            answer_status(answer, 404, "no domain");
            return;
        }
    }
    if (!domain_is_hosted(rq, domain)) {
        answer_status(answer, 404, "domain not hosted");
        return;
    }
    int n = mail_autoconfig_thunderbird(&http_listener.server, domain, answer->body,
                                        answer->body_bytes);
    render_result(answer, n, "application/xml; charset=utf-8");
}

/* Outlook: POST with <EMailAddress> in the body. */
static void
render_autodiscover(const struct route_request *rq, struct route_answer *answer)
{
    const struct http_request *r = rq->request;
    char raw[MAIL_AUTOCONFIG_ADDRESS_BYTES_MAX + 1];
    int len = mail_autoconfig_autodiscover_address(r->body, r->body_len, raw, sizeof(raw));
    char address[MAIL_AUTOCONFIG_ADDRESS_BYTES_MAX + 1];
    size_t at = 0;
    if (len < 0 || mail_autoconfig_address_normalize(raw, (size_t)len, address, &at) != 0) {
        answer_status(answer, 400, "no valid EMailAddress in the request");
        return;
    }
    if (!domain_is_hosted(rq, address + at + 1)) {
        answer_status(answer, 404, "domain not hosted");
        return;
    }
    int n = mail_autoconfig_autodiscover(&http_listener.server, address, answer->body,
                                         answer->body_bytes);
    render_result(answer, n, "application/xml; charset=utf-8");
}

/* Apple: the profile for ?emailaddress=, offered as a download. */
static void
render_mobileconfig(const struct route_request *rq, struct route_answer *answer)
{
    char address[MAIL_AUTOCONFIG_ADDRESS_BYTES_MAX + 1];
    size_t at = 0;
    if (query_address(rq, answer, address, &at) != 0) {
        return;
    }
    const char *domain = address + at + 1;
    if (!domain_is_hosted(rq, domain)) {
        answer_status(answer, 404, "domain not hosted");
        return;
    }
    int n = mail_autoconfig_mobileconfig(&http_listener.server, address, answer->body,
                                         answer->body_bytes);
    render_result(answer, n, "application/x-apple-aspen-config");
    /* The domain is LDH only (checked): safe inside the quoted filename. */
    int f = snprintf(answer->fields, sizeof(answer->fields),
                     "Content-Disposition: attachment; filename=\"%s.mobileconfig\"\r\n", domain);
    ASSERT(f > 0 && (size_t)f < sizeof(answer->fields));
}

/* MTA-STS: only on the host mta-sts.<domain> of a domain we host. */
static void
render_mta_sts(const struct route_request *rq, struct route_answer *answer)
{
    const char *host = rq->request->host;
    if (strncmp(host, "mta-sts.", 8) != 0 || !domain_is_hosted(rq, host + 8)) {
        answer_status(answer, 404, "not an mta-sts host we serve");
        return;
    }
    ASSERT(http_listener.mta_sts_policy_len <= answer->body_bytes);
    memcpy(answer->body, http_listener.mta_sts_policy, http_listener.mta_sts_policy_len);
    render_result(answer, (int)http_listener.mta_sts_policy_len, "text/plain; charset=utf-8");
}

/* Prometheus: the daemon's counters (core/metrics). */
static void
render_metrics(const struct route_request *rq, struct route_answer *answer)
{
    (void)rq;
    int n = metrics_render(answer->body, answer->body_bytes);
    if (n == -EAGAIN) {
        answer_status(answer, 503, "metrics not ready");
        return;
    }
    render_result(answer, n, METRICS_CONTENT_TYPE);
}

static const struct route routes[] = {
    { "/.well-known/autoconfig/mail/config-v1.1.xml", false, ROUTE_GET, "Allow: GET, HEAD\r\n",
      MAIL_AUTOCONFIG_DOCUMENT_BYTES_MAX, NULL, render_thunderbird },
    { "/mail/config-v1.1.xml", false, ROUTE_GET, "Allow: GET, HEAD\r\n",
      MAIL_AUTOCONFIG_DOCUMENT_BYTES_MAX, NULL, render_thunderbird },
    { "/autodiscover/autodiscover.xml", true, ROUTE_POST, "Allow: POST\r\n",
      MAIL_AUTOCONFIG_DOCUMENT_BYTES_MAX, NULL, render_autodiscover },
    { "/apple/mobileconfig", false, ROUTE_GET, "Allow: GET, HEAD\r\n",
      MAIL_AUTOCONFIG_DOCUMENT_BYTES_MAX, NULL, render_mobileconfig },
    { "/.well-known/mta-sts.txt", false, ROUTE_GET, "Allow: GET, HEAD\r\n",
      MTA_STS_POLICY_BYTES_MAX, NULL, render_mta_sts },
    { "/metrics", false, ROUTE_GET, "Allow: GET, HEAD\r\n", METRICS_BODY_BYTES_MAX,
      &http_listener.metrics_allow, render_metrics },
};

static const struct route *
route_find(const struct http_request *r)
{
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        const struct route *route = &routes[i];
        if (strlen(route->path) != r->path_len) {
            continue;
        }
        bool is_match = route->is_path_nocase
                            ? span_equals_nocase(span_make(r->target, r->path_len), route->path)
                            : memcmp(r->target, route->path, r->path_len) == 0;
        if (is_match) {
            return route;
        }
    }
    return NULL;
}

static void
request_serve(struct http_conn *hc)
{
    const struct http_request *r = &hc->request;
    if (r->method == HTTP_METHOD_OTHER) {
        answer_error(hc, 405, "method not served", "Allow: GET, HEAD, POST\r\n");
        return;
    }
    const struct route *route = route_find(r);
    if (route == NULL) {
        answer_error(hc, 404, NULL, NULL);
        return;
    }
    uint32_t method = r->method == HTTP_METHOD_POST ? ROUTE_POST : ROUTE_GET;
    if ((route->methods & method) == 0) {
        answer_error(hc, 405, "method not allowed here", route->allow_field);
        return;
    }
    if (route->allow != NULL && !cidr_list_contains_text(route->allow, conn_peer_text(hc->conn))) {
        answer_error(hc, 403, "peer not in the allow list", NULL);
        return;
    }
    struct route_answer answer;
    memset(&answer, 0, sizeof(answer));
    answer.body_bytes = route->body_bytes_max;
    answer.body = malloc(answer.body_bytes);
    if (answer.body == NULL) {
        answer_error(hc, 503, "out of memory", NULL);
        return;
    }
    struct route_request rq = {
        .request = r,
        .conn = hc->conn,
        .recipients = recipients_current(),
    };
    route->render(&rq, &answer);
    if (answer.status != 200) {
        free(answer.body);
        answer_error(hc, answer.status, answer.reason, NULL);
        return;
    }
    ASSERT(answer.body_len <= answer.body_bytes);
    request_log(hc, 200, answer.body_len, NULL);
    struct http_reply reply = {
        .status = 200,
        .content_type = answer.content_type,
        .extra_fields = answer.fields,
        .body = answer.body,
        .body_len = answer.body_len,
        .is_head = r->method == HTTP_METHOD_HEAD,
    };
    answer_send(hc, &reply);
    free(answer.body);
}

/* ---- set-up ------------------------------------------------------------- */

int
http_listener_init(const struct config *config)
{
    ASSERT(config != NULL);
    memset(&http_listener, 0, sizeof(http_listener));
    http_listener.config = config;
    char allow_err[128];
    if (cidr_list_parse(config->metrics_allow, &http_listener.metrics_allow, allow_err,
                        sizeof(allow_err)) != 0) {
        log_error("metrics_allow: %s", allow_err); /* config_finish checked it already */
        return -EINVAL;
    }
    mail_autoconfig_server_from_config(config, &http_listener.server);
    struct mta_sts_policy_config policy;
    mta_sts_policy_config_from(config, &policy);
    const char *reason = NULL;
    if (!mta_sts_policy_config_ok(&policy, &reason)) {
        log_error("mta_sts: %s", reason);
        return -EINVAL;
    }
    int n = mta_sts_policy_text(&policy, http_listener.mta_sts_policy,
                                sizeof(http_listener.mta_sts_policy));
    if (n < 0) {
        log_error("mta_sts: the policy does not fit %u bytes", MTA_STS_POLICY_BYTES_MAX);
        return -EINVAL;
    }
    http_listener.mta_sts_policy_len = (size_t)n;
    return 0;
}
