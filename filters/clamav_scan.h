/*
 * filters/clamav_scan.h - scan one message (the spool file) with the engine
 * in use.
 *
 * Any thread, many at once: each scan holds a reference to the engine it
 * started with, so a reload never frees an engine under a scan. The spool
 * file is an RFC 5322 message; mail parsing is on, so attachments are
 * decoded (base64, quoted-printable, uuencode, binhex) and scanned, and so
 * are archives, PDF, OLE2, HTML and executables inside them. Heuristic
 * alerts are as clamd's defaults (general heuristics on, the optional
 * alerts off), limits are those of clamav_config.
 *
 * What the daemon does with a verdict:
 *   CLAMAV_CLEAN     accept;
 *   CLAMAV_VIRUS     554 5.7.0 with result.name (or, by clamav_action,
 *                    quarantine / add a header only);
 *   CLAMAV_NOT_READY 451 4.7.1 (no engine loaded yet);
 *   CLAMAV_ERROR     451 4.7.1 (result.name holds cl_strerror's text, or
 *                    the error libclamav reported during a scan it then
 *                    called clean: such a scan did not see everything);
 * never a silent accept when the scan did not happen.
 *
 * Limits (clamav_config): a message larger than max_file_bytes is not
 * scanned; inside a message libclamav stops at max_scan_bytes, max_files
 * and max_recursion, and skips inner files above max_file_bytes. As with
 * clamd's defaults, the verdict is then CLAMAV_CLEAN with is_over_limit set
 * and `limit` naming the limit ("MaxFileSize", "MaxScanSize", "MaxFiles",
 * "MaxRecursion"...); with alert_exceeds_max it is CLAMAV_VIRUS
 * "Heuristics.Limits.Exceeded.<limit>". A real detection in the part that
 * was scanned wins either way. A scan that runs past max_scan_time_ms is
 * CLAMAV_ERROR ("Exceeded time limit", -ETIMEDOUT), so the sender retries:
 * libclamav itself would call it clean.
 */
#ifndef TOASTER_FILTERS_CLAMAV_SCAN_H
#define TOASTER_FILTERS_CLAMAV_SCAN_H

#include <stdbool.h>
#include <stdint.h>

#include "filters/clamav_engine.h"

/* Signature name or error text, NUL included; longer names are cut. Only
 * printable ASCII other than '\\' survives, so the name fits an SMTP reply. */
#define CLAMAV_NAME_BYTES 128

enum clamav_verdict {
    CLAMAV_CLEAN = 0,
    CLAMAV_VIRUS,
    CLAMAV_NOT_READY,
    CLAMAV_ERROR,
};

struct clamav_result {
    enum clamav_verdict verdict;
    char                name[CLAMAV_NAME_BYTES]; /* VIRUS: signature; ERROR: reason; else "" */
    int                 cl_error;        /* ERROR: the cl_error_t; else 0 */
    uint64_t            engine_generation; /* 0: no engine */
    uint64_t            scanned_bytes;   /* as libclamav counts: 4 KiB units, rounded down */
    uint64_t            scan_us;
    bool                is_over_limit;   /* a limit cut the scan short */
    char                limit[32];       /* which one, e.g. "MaxScanSize"; else "" */
};

/* Scan the whole file behind `fd` (read with pread/mmap: its offset is not
 * used or moved). Fills *result_out in every case and returns 0 for CLEAN
 * and VIRUS, -EAGAIN for NOT_READY, and for ERROR -ETIMEDOUT (time limit),
 * -ENOMEM, -EBADF (fd not readable) or -EIO (anything else). Errors are
 * logged once per kind, not once per message. */
int clamav_scan_fd(struct clamav *clamav, int fd, struct clamav_result *result_out);

/* "clean", "virus", "not-ready", "error". */
const char *clamav_verdict_name(enum clamav_verdict verdict);

#endif
