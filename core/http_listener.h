/*
 * core/http_listener.h - the small HTTP/1.1 server on http_listen (and,
 * under TLS, https_listen): the documents mail clients fetch to set
 * themselves up (Thunderbird autoconfig, Outlook Autodiscover, an Apple
 * .mobileconfig profile) and the MTA-STS policy, all generated from the
 * configuration for the domains we host.
 *
 * One request per connection: every answer carries Content-Length and
 * "Connection: close", and the connection closes once it is sent. GET,
 * HEAD and POST; bounds as proto/http/http_request.h; the whole request
 * must arrive within http_timeout (else 408). Documents are made on the
 * reactor (microseconds of work) into a bounded malloc'd body.
 *
 * Routes are one table in http_listener.c; /metrics is meant to be one
 * more entry there, behind a CIDR allow list (route.allow).
 */
#ifndef TOASTER_CORE_HTTP_LISTENER_H
#define TOASTER_CORE_HTTP_LISTENER_H

#include "core/config.h"
#include "core/reactor.h"

/* Main thread, before the reactors start: the documents' settings from
 * config (kept by pointer; it outlives the reactors). Returns 0, or
 * -EINVAL when the MTA-STS settings make no valid policy (logged). */
int http_listener_init(const struct config *config);

/* The handler for http_listen and https_listen entries. */
extern const struct conn_handler http_listener_handler;

#endif
