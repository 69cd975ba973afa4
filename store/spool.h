/*
 * store/spool.h - the spool directory: where a message's bytes land while
 * the client is still sending them, named by its queue id.
 *
 * A spool file holds exactly the bytes that will be delivered (trace headers
 * and the dot-unstuffed body, CRLF line ends). Where the file system allows,
 * it has no name at all until delivery links it into the Maildirs. It is not a promise to anyone:
 * the client hears 250 only after the Maildir copies are durable, so a spool
 * file left behind by a crash belongs to a message nobody acknowledged, and
 * start-up removes it.
 */
#ifndef TOASTER_STORE_SPOOL_H
#define TOASTER_STORE_SPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SPOOL_QUEUE_ID_BYTES 17 /* 16 hex digits + NUL */
#define SPOOL_PATH_BYTES 4096

/* Create <data_dir>/spool and <data_dir>/mail if missing and remove spool
 * files a previous run left behind (each is logged). Main thread, start-up
 * only. Returns 0 or -errno (logged). */
int spool_prepare(const char *data_dir);

/* A new queue id: 16 upper-case hex digits, unique within this host for
 * the life of the machine (time in microseconds, reactor index, and a
 * per-thread counter). */
void spool_queue_id_make(uint32_t reactor_index, char id_out[SPOOL_QUEUE_ID_BYTES]);

/* "<data_dir>/spool". Returns 0 or -ENAMETOOLONG. */
int spool_dir_path(const char *data_dir, char *path_out, size_t path_bytes);

/* Whether spool files can be unnamed: opened with O_TMPFILE in the spool
 * directory and later linked into a Maildir through /proc/self/fd. Such a
 * file never has a directory entry in the spool, so receiving a message
 * neither creates nor removes one (the spool directory's lock is never
 * contended), and a crash leaves nothing behind. Main thread, start-up. */
bool spool_probe_unnamed(const char *data_dir);

/* One change to a spool file: at offset, delete_len bytes go and len
 * bytes come in their place. */
struct spool_edit {
    uint64_t offset;
    uint64_t delete_len;
    const char *bytes;
    size_t len;
};

/* Apply edits (sorted by offset, not overlapping, at most
 * SPOOL_EDITS_MAX) to the message in *fd_inout, which holds size bytes:
 * the header fields the filters add right below Return-Path, a forged
 * Authentication-Results taken out, a Subject rewritten. A new spool file
 * gets the old file's unchanged parts by copy_file_range (in the kernel,
 * no copy through user space) and the new bytes between them, and
 * replaces the old one - a named spool file under the same name
 * (queue_id, renamed over it), an unnamed one as a new unnamed file. The
 * old descriptor is closed and *fd_inout, *size_inout describe the new
 * file, which is not synced (the committer syncs it with its batch). On
 * failure nothing changes and -errno is returned (-EINVAL for edits out
 * of order or past the end). Blocking: workers only. */
#define SPOOL_EDITS_MAX 64
int spool_rewrite(int spool_dir_fd, bool is_unnamed, const char *queue_id, int *fd_inout,
                  uint64_t *size_inout, const struct spool_edit *edits, size_t edit_count);

#endif
