/*
 * core/imap_listener.h - glue that serves IMAP on a reactor: joins the pure
 * session (proto/imap/imap_session) to the reactor's sockets, to the
 * worker pool (password checks, mailbox commands: core/imap_exec.h) and to
 * the shared mailbox indexes (store/mailbox_index), whose changes wake
 * selected and IDLE sessions through reactor_conn_poke().
 */
#ifndef TOASTER_CORE_IMAP_LISTENER_H
#define TOASTER_CORE_IMAP_LISTENER_H

#include "core/config.h"
#include "core/reactor.h"

/* Set up what every IMAP connection shares (session config, per-reactor
 * scratch pools). Returns 0 or -errno. Main thread, before reactors. */
int imap_listener_init(const struct config *config);
void imap_listener_destroy(void);

/* The handler for imap_listen entries. */
extern const struct conn_handler imap_listener_handler;

#endif
