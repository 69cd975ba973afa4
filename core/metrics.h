/*
 * core/metrics.h - the Prometheus metrics document that the HTTP
 * listener serves on /metrics (to the clients in metrics_allow).
 *
 * The renderer gathers the counters every module already keeps (the
 * reactors' struct reactor_stats, the worker pool, the committer, the
 * filter chain, the delivery agent) with relaxed loads: it takes no lock
 * a reactor or a worker needs, and walks no connection, so a scrape costs
 * the same with ten or ten thousand connections open. The series are a
 * fixed set (per reactor index, per filter, per reason, per IMAP command),
 * never named after client input. Formatting: core/metrics_text.h.
 *
 * Any thread may render (the HTTP listener does it on its reactor);
 * metrics_start() and metrics_stop() are main's.
 * Limits: METRICS_BODY_BYTES_MAX per document.
 */
#ifndef TOASTER_CORE_METRICS_H
#define TOASTER_CORE_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "core/metrics_text.h"

struct reactor;
struct workers;

/* Two reactors make about 23 KiB; each more adds about 600 bytes, so 256
 * reactors stay under 200 KiB. */
#define METRICS_BODY_BYTES_MAX (1024u * 1024u)

/* Main thread, once the reactors run: what to read. The arrays stay the
 * caller's and must outlive metrics_stop(). */
void metrics_start(struct reactor **reactors, uint32_t reactor_count, struct workers *workers);

/* Main thread, before the reactors stop: renders that began finish first
 * (this waits for them, a few microseconds each); later ones get -EAGAIN. */
void metrics_stop(void);

/* The document into buf[0..buf_bytes) (not NUL-terminated for the
 * caller's sake, but there is room for one). Returns its length, -EAGAIN
 * before metrics_start() or after metrics_stop(), or -ENOSPC when it does
 * not fit. Any thread. */
int metrics_render(char *buf, size_t buf_bytes);

#endif
