/*
 * filters/clamav_db.c - choosing the signature directory and writing the
 * shipped database (see clamav_db.h).
 *
 * Runs on the ClamAV loader thread (and in tests); it does blocking file
 * I/O, never on a reactor. The shipped files are a few kilobytes.
 * Limits: CLAMAV_DB_PATH_BYTES per path, CLAMAV_DB_DIR_ENTRIES_MAX entries
 * read from a directory.
 */
#define _GNU_SOURCE
#include "filters/clamav_db.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/assertions.h"
#include "core/log.h"

/* The extensions cl_load() reads as signatures (libclamav readdb.h
 * CLI_DBEXT), without the settings-only ones (.cfg, .ign, .fp ...), which
 * alone do not make a database. */
static const char *const clamav_db_extensions[] = {
    ".cvd", ".cld", ".cud", ".db",  ".hdb", ".hdu", ".hsb", ".hsu", ".mdb", ".mdu",
    ".msb", ".msu", ".ndb", ".ndu", ".ldb", ".ldu", ".sdb", ".zmd", ".rmd", ".idb",
    ".cdb", ".cbc", ".pdb", ".gdb", ".wdb", ".ftm", ".yar", ".yara", ".crb",
};

static int clamav_db_write_one(int dir_fd, const struct clamav_db_file *file);
static bool clamav_db_file_equals(int dir_fd, const struct clamav_db_file *file);

bool
clamav_db_is_signature_name(const char *name)
{
    ASSERT(name != NULL);
    size_t name_len = strlen(name);
    if (name[0] == '.') {
        return false; /* our own temporary files and editors' */
    }
    for (size_t i = 0; i < sizeof(clamav_db_extensions) / sizeof(clamav_db_extensions[0]); i++) {
        size_t ext_len = strlen(clamav_db_extensions[i]);
        if (name_len > ext_len &&
            strcmp(name + name_len - ext_len, clamav_db_extensions[i]) == 0) {
            return true;
        }
    }
    return false;
}

bool
clamav_db_dir_has_database(const char *dir)
{
    ASSERT(dir != NULL);
    DIR *stream = opendir(dir);
    if (stream == NULL) {
        return false;
    }
    bool found = false;
    for (uint32_t seen = 0; !found && seen < CLAMAV_DB_DIR_ENTRIES_MAX; seen++) {
        struct dirent *entry = readdir(stream);
        if (entry == NULL) {
            break;
        }
        if (entry->d_type != DT_REG && entry->d_type != DT_LNK && entry->d_type != DT_UNKNOWN) {
            continue;
        }
        found = clamav_db_is_signature_name(entry->d_name);
    }
    /* A read-only stream: closing it cannot lose data. */
    (void)closedir(stream);
    return found;
}

int
clamav_db_write_shipped(const char *dir)
{
    ASSERT(dir != NULL);
    if (mkdir(dir, 0750) != 0 && errno != EEXIST) {
        int err = errno;
        log_error("clamav: cannot create %s: %s", dir, strerror(err));
        return -err;
    }
    int dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir_fd < 0) {
        int err = errno;
        log_error("clamav: cannot open %s: %s", dir, strerror(err));
        return -err;
    }
    int rc = 0;
    bool is_changed = false;
    for (size_t i = 0; rc == 0 && i < clamav_db_shipped_file_count; i++) {
        const struct clamav_db_file *file = &clamav_db_shipped_files[i];
        ASSERT(strchr(file->name, '/') == NULL);
        if (clamav_db_file_equals(dir_fd, file)) {
            continue;
        }
        rc = clamav_db_write_one(dir_fd, file);
        if (rc != 0) {
            log_error("clamav: cannot write %s/%s: %s", dir, file->name, strerror(-rc));
        }
        is_changed = true;
    }
    if (rc == 0 && is_changed && fsync(dir_fd) != 0) {
        rc = -errno;
        log_error("clamav: cannot sync %s: %s", dir, strerror(-rc));
    }
    /* A directory opened read-only: nothing to lose at close. */
    (void)close(dir_fd);
    return rc;
}

int
clamav_db_choose(const char *configured, const char *system_dir, const char *data_dir,
                 char *dir_out, size_t dir_bytes, bool *is_shipped_out)
{
    ASSERT(dir_out != NULL);
    ASSERT(is_shipped_out != NULL);
    *is_shipped_out = false;
    int len;
    if (configured != NULL && configured[0] != '\0') {
        len = snprintf(dir_out, dir_bytes, "%s", configured);
    } else if (system_dir != NULL && system_dir[0] != '\0' &&
               clamav_db_dir_has_database(system_dir)) {
        len = snprintf(dir_out, dir_bytes, "%s", system_dir);
    } else {
        if (data_dir == NULL || data_dir[0] == '\0') {
            return -EINVAL;
        }
        len = snprintf(dir_out, dir_bytes, "%s/%s", data_dir, CLAMAV_DB_SHIPPED_SUBDIR);
        *is_shipped_out = true;
    }
    if (len < 0 || (size_t)len >= dir_bytes) {
        return -ENAMETOOLONG;
    }
    return 0;
}

/* ---- helpers ------------------------------------------------------------ */

static bool
clamav_db_file_equals(int dir_fd, const struct clamav_db_file *file)
{
    int fd = openat(dir_fd, file->name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        return false;
    }
    struct stat st;
    bool is_equal = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && (size_t)st.st_size == file->size;
    unsigned char chunk[4096];
    for (size_t done = 0; is_equal && done < file->size;) {
        size_t want = file->size - done < sizeof(chunk) ? file->size - done : sizeof(chunk);
        ssize_t got = pread(fd, chunk, want, (off_t)done);
        if (got <= 0) {
            is_equal = false;
            break;
        }
        is_equal = memcmp(chunk, file->bytes + done, (size_t)got) == 0;
        done += (size_t)got;
    }
    /* Read-only: nothing to lose at close. */
    (void)close(fd);
    return is_equal;
}

static int
clamav_db_write_one(int dir_fd, const struct clamav_db_file *file)
{
    char tmp_name[256];
    int len = snprintf(tmp_name, sizeof(tmp_name), ".%s.tmp", file->name);
    if (len < 0 || (size_t)len >= sizeof(tmp_name)) {
        return -ENAMETOOLONG;
    }
    int fd = openat(dir_fd, tmp_name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0640);
    if (fd < 0) {
        return -errno;
    }
    int rc = 0;
    for (size_t done = 0; done < file->size;) {
        ssize_t wrote = write(fd, file->bytes + done, file->size - done);
        if (wrote < 0 && errno == EINTR) {
            continue;
        }
        if (wrote <= 0) {
            rc = wrote < 0 ? -errno : -EIO;
            break;
        }
        done += (size_t)wrote;
    }
    if (rc == 0 && fsync(fd) != 0) {
        rc = -errno;
    }
    if (close(fd) != 0 && rc == 0) {
        rc = -errno;
    }
    if (rc == 0 && renameat(dir_fd, tmp_name, dir_fd, file->name) != 0) {
        rc = -errno;
    }
    if (rc != 0) {
        /* Best effort: a stale temporary file ends in ".tmp", which neither
         * clamav_db_is_signature_name nor cl_load takes for signatures. */
        (void)unlinkat(dir_fd, tmp_name, 0);
    }
    return rc;
}
