/*
 * core/kv_snapshot.h - the embedded key-value store kept across restarts:
 * a snapshot file in data_dir written now and then and at shutdown, and
 * read back at start-up, so greylisting triplets, rate counters, Bayes
 * tokens and postscreen's memory survive a restart.
 *
 * The file (all integers little-endian):
 *
 *   header, 48 bytes:
 *     0  magic "TOASTKV\0"
 *     8  u32 version (1)          12  u32 header bytes (48)
 *    16  u64 entry count          24  u64 body bytes
 *    32  u64 saved at (wall-clock ms since the epoch)
 *    40  u64 checksum: FNV-1a 64 over the body, then header bytes 0-39
 *   body, entry count records:
 *     u8 key length (1..KV_KEY_BYTES_MAX), u8 value length
 *     (0..KV_VALUE_BYTES_MAX), u64 expiry (wall-clock ms since the epoch;
 *     0: none), the key, the value
 *
 * Expiries are stored on the wall clock, since the store's own clock is
 * monotonic and starts again with the machine. Saves and loads block on
 * the disk: start-up, shutdown and the saver thread call them, never a
 * reactor. Both work while other threads use the store.
 */
#ifndef TOASTER_CORE_KV_SNAPSHOT_H
#define TOASTER_CORE_KV_SNAPSHOT_H

#include <stdint.h>

#include "core/kv.h"

#define KV_SNAPSHOT_VERSION 1u
#define KV_SNAPSHOT_HEADER_BYTES 48u

/* The saver's default period (config key kv_snapshot_interval). */
#define KV_SNAPSHOT_INTERVAL_S_DEFAULT 300u
/* The longest period accepted: a day. */
#define KV_SNAPSHOT_INTERVAL_S_CEILING 86400u

/* What a save or a load did. */
struct kv_snapshot_stats {
    uint64_t entry_count;   /* saved, or loaded into the store */
    uint64_t expired_count; /* load: expired by the wall clock, skipped */
    uint64_t full_count;    /* load: dropped, the store had no room in the key's set */
    uint64_t present_count; /* load: skipped, the key was live in the store already */
};

struct kv_snapshot;

/* Write every live entry of the embedded store kv to path, atomically: a
 * temporary file "<path>.tmp" in the same directory, fsync, rename over
 * path, fsync of the directory. A failure leaves the previous file as it
 * was and removes the temporary one. Saves are serialised within the
 * process. stats_out may be NULL. Returns 0, -EOPNOTSUPP (kv is not the
 * embedded backend), -ENAMETOOLONG, or the -errno of the failing call
 * (-ENOENT: the directory is missing, -ENOSPC, -EIO ...). */
int kv_embedded_save(struct kv *kv, const char *path, struct kv_snapshot_stats *stats_out);

/* Read path back into the embedded store kv (meant to be empty, at
 * start-up), skipping entries whose wall-clock expiry has passed. The
 * whole file is checked (magic, version, sizes, every record's bounds,
 * checksum) before the first entry goes in, so a torn or corrupt file
 * loads nothing. Entries that find their set full are dropped and counted
 * (a store configured smaller than before), keys already live are kept as
 * they are. stats_out may be NULL. Returns 0, -ENOENT (no snapshot yet:
 * start empty), -EINVAL (not a snapshot, a version we do not read, torn
 * or corrupt: log it and start empty), -EOPNOTSUPP, or another -errno
 * from reading. */
int kv_embedded_load(struct kv *kv, const char *path, struct kv_snapshot_stats *stats_out);

/* The same with the wall clock given (ms since the epoch), for tests. */
int kv_embedded_save_at(struct kv *kv, const char *path, uint64_t wall_now_ms,
                        struct kv_snapshot_stats *stats_out);
int kv_embedded_load_at(struct kv *kv, const char *path, uint64_t wall_now_ms,
                        struct kv_snapshot_stats *stats_out);

/* Start a thread that saves kv to path every interval_s seconds (0: no
 * thread; only kv_snapshot_stop saves). A failed save is logged (once
 * until a save works again) and retried next period. kv must outlive the
 * saver. Returns 0 and sets *snapshot_out, -EINVAL (interval above
 * KV_SNAPSHOT_INTERVAL_S_CEILING, empty path), -EOPNOTSUPP (not the
 * embedded backend), -ENAMETOOLONG, -ENOMEM or the thread's error. */
int kv_snapshot_start(struct kv *kv, const char *path, uint32_t interval_s,
                      struct kv_snapshot **snapshot_out);

/* What the daemon calls at start-up for each embedded store: create the
 * directory holding path if missing (one level, mode 0700), load path
 * (logged: entries loaded, expired, dropped; "none yet" for a first start;
 * a corrupt or unreadable snapshot is logged, renamed to "<path>.bad" for
 * a look later, and the store starts empty), then kv_snapshot_start. A bad
 * snapshot never fails the start. Returns 0 and sets *snapshot_out, or the
 * error of mkdir (not -EEXIST) or of kv_snapshot_start. */
int kv_snapshot_open(struct kv *kv, const char *path, uint32_t interval_s,
                     struct kv_snapshot **snapshot_out);

/* Wake and join the thread (at once, whatever the interval), save one last
 * time, log the outcome, free; NULLs *snapshot. Call before kv_destroy.
 * Returns the last save's result (see kv_embedded_save). */
int kv_snapshot_stop(struct kv_snapshot **snapshot);

#endif
