/*
 * core/sd_notify.h - tell systemd how the daemon is doing (Type=notify):
 * "READY=1" once every listener is bound and root is given up,
 * "RELOADING=1" ... "READY=1" around a reload, "STOPPING=1" at shutdown.
 *
 * One datagram to $NOTIFY_SOCKET (a path, or "@name" for the abstract
 * namespace), no libsystemd. Without $NOTIFY_SOCKET nothing is sent.
 * Main thread only.
 */
#ifndef TOASTER_CORE_SD_NOTIFY_H
#define TOASTER_CORE_SD_NOTIFY_H

/* Read $NOTIFY_SOCKET once (before threads exist, as getenv is). */
void sd_notify_setup(void);

/* Send state ("READY=1", "STATUS=...", lines joined by '\n'). Returns 0
 * (also when there is no socket), or -errno (logged by the caller if it
 * cares: systemd then times the start out). */
int sd_notify_send(const char *state);

/* "RELOADING=1" with MONOTONIC_USEC=, as systemd 253's notify-reload wants. */
int sd_notify_reloading(void);

#endif
