/*
 * core/managesieve_listener.h - glue that serves ManageSieve (RFC 5804)
 * on a reactor: joins the pure session (proto/managesieve) to the
 * reactor's sockets and TLS, to the worker pool (password checks, and
 * every script command against store/sieve_scripts, with validation by
 * the Sieve compiler), and to the login slow-down shared with IMAP and
 * SMTP.
 */
#ifndef TOASTER_CORE_MANAGESIEVE_LISTENER_H
#define TOASTER_CORE_MANAGESIEVE_LISTENER_H

#include "core/config.h"
#include "core/reactor.h"

/* Main thread, before the reactors start. Returns 0 or -errno. */
int managesieve_listener_init(const struct config *config);

/* The handler for managesieve_listen entries. */
extern const struct conn_handler managesieve_listener_handler;

#endif
