/*
 * core/version.h - the version toasterd reports (-V, stats, IMAP ID).
 */
#ifndef TOASTER_CORE_VERSION_H
#define TOASTER_CORE_VERSION_H

#define TOASTER_VERSION "0.1.0"

#endif
