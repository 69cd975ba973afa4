/*
 * core/toasterctl_queue.h - `toasterctl queue`: the operator's view of the
 * outbound queue (store/queue.h), as Postfix's postqueue and postsuper:
 *
 *   queue list [--json]           every entry: id, size, arrival, sender,
 *                                 '!' when held, each pending recipient
 *                                 with its last reply, and the totals
 *   queue show ID                 the envelope in words and the header
 *   queue hold [--reason TEXT] ID...|ALL
 *   queue release ID...|ALL
 *   queue delete ID...|ALL
 *   queue flush [--socket PATH] [ID...]
 *                                 pending recipients due at once; a
 *                                 running daemon is told so
 *
 * The entries are files, so everything but the daemon's part of flush
 * works with or without a daemon. Changes are made under each entry's
 * lock (queue_entry_edit), so they never cross the delivery agent's.
 */
#ifndef TOASTER_CORE_TOASTERCTL_QUEUE_H
#define TOASTER_CORE_TOASTERCTL_QUEUE_H

#include "core/config.h"

/* argv: the subcommand, then its arguments. Returns the exit code: 0 when
 * everything asked was done (an entry already in the state asked for
 * counts as done), 1 when something failed (no such entry, an unreadable
 * envelope, a file error, a daemon that answered with an error), 2 for
 * bad arguments (unknown subcommand or option, a word that is not a
 * queue id). */
int toasterctl_queue(const struct config *config, int argc, char **argv);

#endif
