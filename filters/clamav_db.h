/*
 * filters/clamav_db.h - where the ClamAV signatures come from.
 *
 * With no database configured, toaster uses the system's (/var/lib/clamav,
 * kept fresh by freshclam) when that directory holds one; otherwise the
 * small database it ships: EICAR and signatures for the ClamAV test files,
 * so the pipeline works out of the box. The shipped files are compiled into
 * the binary (filters/clamav_db/embed.py makes clamav_db_files.c at build
 * time) and written to <data_dir>/clamav/ before loading: the daemon then
 * finds them whether it runs from the build directory or installed, and no
 * install path has to be right.
 */
#ifndef TOASTER_FILTERS_CLAMAV_DB_H
#define TOASTER_FILTERS_CLAMAV_DB_H

#include <stdbool.h>
#include <stddef.h>

#define CLAMAV_DB_SYSTEM_DIR "/var/lib/clamav"
#define CLAMAV_DB_SHIPPED_SUBDIR "clamav" /* under data_dir */
#define CLAMAV_DB_PATH_BYTES 4096
/* Directory entries looked at when deciding whether a directory holds a
 * database; a database directory has a handful. */
#define CLAMAV_DB_DIR_ENTRIES_MAX 100000u

/* One file of the shipped database, as compiled in. */
struct clamav_db_file {
    const char          *name; /* e.g. "toaster.ndb": no '/' */
    const unsigned char *bytes;
    size_t               size;
};

/* The shipped database (generated from filters/clamav_db/). */
extern const struct clamav_db_file clamav_db_shipped_files[];
extern const size_t                clamav_db_shipped_file_count;

/* Whether `name` ends in an extension libclamav loads as signatures or as a
 * signed container (.cvd, .cld, .cud, .ndb, .hdb, .ldb, ...). */
bool clamav_db_is_signature_name(const char *name);

/* Whether `dir` is a readable directory holding at least one signature file.
 * Never fails: unreadable or missing is false. */
bool clamav_db_dir_has_database(const char *dir);

/* Write the shipped database into `dir` (created 0750 if missing; its parent
 * must exist). A file whose content is already right is not touched (so a
 * watch on the directory sees no change); others are written to a temporary
 * name, fsynced and renamed. Returns 0 or -errno (logged). */
int clamav_db_write_shipped(const char *dir);

/* Choose the database directory. `configured` non-empty: that directory,
 * whatever it holds (a broken or empty one is a load error, not a silent
 * fallback). Empty or NULL: `system_dir` if it holds a database, else
 * <data_dir>/clamav for the shipped one (*is_shipped_out true). Returns 0,
 * or -ENAMETOOLONG / -EINVAL (no data_dir for the shipped database). */
int clamav_db_choose(const char *configured, const char *system_dir, const char *data_dir,
                     char *dir_out, size_t dir_bytes, bool *is_shipped_out);

#endif
