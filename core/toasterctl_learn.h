/*
 * core/toasterctl_learn.h - `toasterctl learn spam|ham FILE|DIR...`:
 * teaches the running daemon's Bayes classifier (filters/spam_bayes),
 * one message file per control request. A directory is walked one level
 * deep, and a Maildir (cur/ and new/) or a Maildir++ folder is taken as
 * its messages, so `learn spam ~/Maildir/.Junk` does what it says.
 */
#ifndef TOASTER_CORE_TOASTERCTL_LEARN_H
#define TOASTER_CORE_TOASTERCTL_LEARN_H

#include "core/config.h"

/* argv: spam|ham, then paths (and --socket PATH). Returns the exit code:
 * 0 when every message was learned or known already, 1 when one failed,
 * 2 for bad arguments. */
int toasterctl_learn(const struct config *config, int argc, char **argv);

#endif
