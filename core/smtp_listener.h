/*
 * core/smtp_listener.h - glue that serves SMTP on a reactor: joins the pure
 * session (proto/smtp) to the reactor's sockets and file operations, to
 * the recipient tables and to delivery (store/).
 */
#ifndef TOASTER_CORE_SMTP_LISTENER_H
#define TOASTER_CORE_SMTP_LISTENER_H

#include "core/config.h"
#include "core/reactor.h"


struct kv;

/* Set up what every SMTP connection shares (session limits, per-reactor
 * spool buffer pools). kv is the key-value store postscreen remembers
 * clients in (main's; it must outlive the listener). Returns 0 or -errno.
 * Main thread, before reactors. */
int smtp_listener_init(const struct config *config, struct kv *kv);
void smtp_listener_destroy(void);

struct filter_chain;

/* The filters every message passes before delivery (NULL: none). Main
 * thread, before the reactors start; the chain must outlive them. */
void smtp_listener_set_filters(const struct filter_chain *filters);

/* The handler for smtp_listen and submission_listen entries. */
extern const struct conn_handler smtp_listener_handler;


#endif
