/*
 * tests/unit/test_clamav.c - the ClamAV filter through libclamav with real
 * signature files: the shipped database (EICAR plain and as a base64 MIME
 * attachment, every file of Debian's clamav-testfiles, clean mail clean),
 * the database directory choice, not-ready until a first engine loads, a
 * broken database that keeps the old engine, the directory watch that
 * reloads by itself, the scan limits at their edges, and a few hundred
 * scans on several threads while engines are swapped under them (run it
 * under ASan: no engine is freed while a scan holds it). No sockets; each
 * case makes its own temporary directories.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "filters/clamav_db.h"
#include "filters/clamav_engine.h"
#include "filters/clamav_log.h"
#include "filters/clamav_scan.h"
#include "tests/unit/unit.h"

#include <clamav.h>

int main(void);

#define TESTFILES_DIR "/usr/share/clamav-testfiles"
#define WAIT_MS_MAX 30000

static const char eicar[] =
    "X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*";

/* ---- helpers ------------------------------------------------------------- */

static uint64_t
now_ms(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (uint64_t)now.tv_sec * 1000u + (uint64_t)now.tv_nsec / 1000000u;
}

static void
sleep_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void
make_temp_dir(char *path_out, size_t path_bytes)
{
    snprintf(path_out, path_bytes, "/tmp/toaster-clamav-XXXXXX");
    if (mkdtemp(path_out) == NULL) {
        perror("mkdtemp");
        exit(2);
    }
}

static int
remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st;
    (void)type;
    (void)ftw;
    return remove(path);
}

static void
remove_tree(const char *path)
{
    nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void
write_file(const char *dir, const char *name, const void *bytes, size_t len)
{
    char path[4096];
    char tmp[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    snprintf(tmp, sizeof(tmp), "%s/.%s.part", dir, name);
    FILE *f = fopen(tmp, "wb");
    if (f == NULL || fwrite(bytes, 1, len, f) != len || fclose(f) != 0) {
        perror(tmp);
        exit(2);
    }
    if (rename(tmp, path) != 0) {
        perror(path);
        exit(2);
    }
}

static void
write_str(const char *dir, const char *name, const char *text)
{
    write_file(dir, name, text, strlen(text));
}

/* An unnamed file holding `bytes`, as a spool file is. */
static int
temp_fd(const void *bytes, size_t len)
{
    int fd = open("/tmp", O_TMPFILE | O_RDWR, 0600);
    if (fd < 0) {
        perror("O_TMPFILE");
        exit(2);
    }
    const char *p = bytes;
    for (size_t done = 0; done < len;) {
        ssize_t n = write(fd, p + done, len - done);
        if (n <= 0) {
            perror("write");
            exit(2);
        }
        done += (size_t)n;
    }
    return fd;
}

static void
hex_of(const char *text, char *hex_out)
{
    for (size_t i = 0; text[i] != '\0'; i++) {
        sprintf(hex_out + 2 * i, "%02x", (unsigned char)text[i]);
    }
}

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Base64 of `in` with CRLF every 76 characters; returns the length. */
static size_t
base64_lines(const unsigned char *in, size_t len, char *out)
{
    size_t o = 0;
    size_t line = 0;
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < len) {
            v |= (uint32_t)in[i + 1] << 8;
        }
        if (i + 2 < len) {
            v |= in[i + 2];
        }
        out[o++] = b64_alphabet[(v >> 18) & 63];
        out[o++] = b64_alphabet[(v >> 12) & 63];
        out[o++] = i + 1 < len ? b64_alphabet[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < len ? b64_alphabet[v & 63] : '=';
        line += 4;
        if (line >= 76) {
            out[o++] = '\r';
            out[o++] = '\n';
            line = 0;
        }
    }
    out[o++] = '\r';
    out[o++] = '\n';
    out[o] = '\0';
    return o;
}

/* A multipart message with a text part and one base64 attachment per
 * entry of `attachments` (NULL-terminated sizes in `sizes`). */
static char *
mail_with_attachments(const unsigned char *const *attachments, const size_t *sizes, size_t count,
                      size_t *len_out)
{
    size_t cap = 4096;
    for (size_t i = 0; i < count; i++) {
        cap += sizes[i] * 2 + 512;
    }
    char *mail = malloc(cap);
    if (mail == NULL) {
        perror("malloc");
        exit(2);
    }
    size_t len = (size_t)sprintf(mail,
                                 "Received: from client.example (client.example [192.0.2.1])\r\n"
                                 "\tby mx.example.org with ESMTP; Fri, 4 Dec 2026 12:00:00 +0000\r\n"
                                 "From: Alice <alice@example.com>\r\n"
                                 "To: Bob <bob@example.org>\r\n"
                                 "Subject: the files you asked for\r\n"
                                 "Date: Fri, 4 Dec 2026 12:00:00 +0000\r\n"
                                 "Message-ID: <files@example.com>\r\n"
                                 "MIME-Version: 1.0\r\n"
                                 "Content-Type: multipart/mixed; boundary=\"b0undary\"\r\n"
                                 "\r\n"
                                 "This is a multi-part message in MIME format.\r\n"
                                 "--b0undary\r\n"
                                 "Content-Type: text/plain; charset=us-ascii\r\n"
                                 "\r\n"
                                 "Hello Bob, here they are.\r\n");
    for (size_t i = 0; i < count; i++) {
        len += (size_t)sprintf(mail + len,
                               "--b0undary\r\n"
                               "Content-Type: application/octet-stream; name=\"file%zu.bin\"\r\n"
                               "Content-Transfer-Encoding: base64\r\n"
                               "Content-Disposition: attachment; filename=\"file%zu.bin\"\r\n"
                               "\r\n",
                               i, i);
        len += base64_lines(attachments[i], sizes[i], mail + len);
    }
    len += (size_t)sprintf(mail + len, "--b0undary--\r\n");
    *len_out = len;
    return mail;
}

static const char clean_mail[] =
    "Received: from client.example (client.example [192.0.2.1])\r\n"
    "\tby mx.example.org with ESMTP; Fri, 4 Dec 2026 12:00:00 +0000\r\n"
    "From: Alice <alice@example.com>\r\n"
    "To: Bob <bob@example.org>\r\n"
    "Subject: lunch\r\n"
    "Date: Fri, 4 Dec 2026 12:00:00 +0000\r\n"
    "Message-ID: <lunch@example.com>\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: multipart/alternative; boundary=\"alt\"\r\n"
    "\r\n"
    "--alt\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n"
    "Content-Transfer-Encoding: quoted-printable\r\n"
    "\r\n"
    "Shall we have lunch at noon? The caf=C3=A9 on the corner.\r\n"
    "--alt\r\n"
    "Content-Type: text/html; charset=utf-8\r\n"
    "\r\n"
    "<html><body><p>Shall we have <b>lunch</b> at noon?</p>"
    "<a href=\"https://example.com/\">menu</a></body></html>\r\n"
    "--alt--\r\n";

static int
scan_bytes(struct clamav *av, const void *bytes, size_t len, struct clamav_result *result)
{
    int fd = temp_fd(bytes, len);
    int rc = clamav_scan_fd(av, fd, result);
    close(fd);
    return rc;
}

static struct clamav_status
status_of(struct clamav *av)
{
    struct clamav_status status;
    clamav_status_get(av, &status);
    return status;
}

/* Wait until the loader has attempted `load_count` loads. */
static bool
wait_loads(struct clamav *av, uint64_t load_count)
{
    uint64_t deadline = now_ms() + WAIT_MS_MAX;
    while (now_ms() < deadline) {
        struct clamav_status status = status_of(av);
        if (status.load_count >= load_count &&
            (status.generation + status.load_fail_count) >= load_count) {
            return true;
        }
        sleep_ms(5);
    }
    return false;
}

static bool
wait_generation(struct clamav *av, uint64_t generation)
{
    uint64_t deadline = now_ms() + WAIT_MS_MAX;
    while (now_ms() < deadline) {
        if (status_of(av).generation >= generation) {
            return true;
        }
        sleep_ms(5);
    }
    return false;
}

static bool
wait_engines_alive(struct clamav *av, uint32_t alive)
{
    uint64_t deadline = now_ms() + WAIT_MS_MAX;
    while (now_ms() < deadline) {
        if (status_of(av).engines_alive == alive) {
            return true;
        }
        sleep_ms(5);
    }
    return false;
}

/* A handle on the shipped database: data_dir is a new temporary directory,
 * and the system directory one that holds no database. */
static struct clamav *
shipped_create(char *data_dir, size_t data_dir_bytes, const struct clamav_config *base)
{
    make_temp_dir(data_dir, data_dir_bytes);
    struct clamav_config config;
    if (base != NULL) {
        config = *base;
    } else {
        clamav_config_defaults(&config);
    }
    config.data_dir = data_dir;
    config.system_db_dir = "/nonexistent/toaster-clamav-test";
    struct clamav *av = NULL;
    CHECK(clamav_create(&config, &av) == 0);
    CHECK(wait_generation(av, 1));
    return av;
}

/* ---- cases ------------------------------------------------------------- */

static void
test_config_check(void)
{
    struct clamav_config config;
    const char *reason = NULL;
    clamav_config_defaults(&config);
    config.data_dir = "/tmp";
    CHECK(clamav_config_check(&config, &reason) == 0);
    CHECK(reason == NULL);

    config.max_scan_bytes = CLAMAV_MAX_SCAN_BYTES_CEILING;
    CHECK(clamav_config_check(&config, &reason) == 0);
    config.max_scan_bytes = CLAMAV_MAX_SCAN_BYTES_CEILING + 1;
    CHECK(clamav_config_check(&config, &reason) == -EINVAL);
    CHECK(reason != NULL);
    config.max_scan_bytes = 0;
    CHECK(clamav_config_check(&config, &reason) == -EINVAL);
    config.max_scan_bytes = 1;
    CHECK(clamav_config_check(&config, &reason) == 0);

    config.max_file_bytes = CLAMAV_MAX_FILE_BYTES_CEILING;
    CHECK(clamav_config_check(&config, &reason) == 0);
    config.max_file_bytes = CLAMAV_MAX_FILE_BYTES_CEILING + 1;
    CHECK(clamav_config_check(&config, &reason) == -EINVAL);
    config.max_file_bytes = CLAMAV_MAX_FILE_BYTES_DEFAULT;

    config.max_recursion = CLAMAV_MAX_RECURSION_CEILING;
    CHECK(clamav_config_check(&config, &reason) == 0);
    config.max_recursion = CLAMAV_MAX_RECURSION_CEILING + 1;
    CHECK(clamav_config_check(&config, &reason) == -EINVAL);
    config.max_recursion = CLAMAV_MAX_RECURSION_DEFAULT;

    config.max_files = CLAMAV_MAX_FILES_CEILING;
    CHECK(clamav_config_check(&config, &reason) == 0);
    config.max_files = CLAMAV_MAX_FILES_CEILING + 1;
    CHECK(clamav_config_check(&config, &reason) == -EINVAL);
    config.max_files = CLAMAV_MAX_FILES_DEFAULT;

    config.max_scan_time_ms = CLAMAV_MAX_SCAN_TIME_MS_CEILING;
    CHECK(clamav_config_check(&config, &reason) == 0);
    config.max_scan_time_ms = CLAMAV_MAX_SCAN_TIME_MS_CEILING + 1;
    CHECK(clamav_config_check(&config, &reason) == -EINVAL);
    config.max_scan_time_ms = 0;
    CHECK(clamav_config_check(&config, &reason) == -EINVAL);
    config.max_scan_time_ms = CLAMAV_MAX_SCAN_TIME_MS_DEFAULT;

    /* Automatic database without data_dir: nowhere for the shipped one. */
    config.data_dir = NULL;
    CHECK(clamav_config_check(&config, &reason) == -EINVAL);
    config.db_dir = "/var/lib/clamav";
    CHECK(clamav_config_check(&config, &reason) == 0);

    struct clamav *av = NULL;
    config.max_files = 0;
    CHECK(clamav_create(&config, &av) == -EINVAL);
    CHECK(av == NULL);
}

static void
test_db_choice(void)
{
    CHECK(clamav_db_is_signature_name("main.cvd"));
    CHECK(clamav_db_is_signature_name("daily.cld"));
    CHECK(clamav_db_is_signature_name("bytecode.cud"));
    CHECK(clamav_db_is_signature_name("local.ndb"));
    CHECK(clamav_db_is_signature_name("local.hdb"));
    CHECK(clamav_db_is_signature_name("rules.yara"));
    CHECK(!clamav_db_is_signature_name(".ndb"));
    CHECK(!clamav_db_is_signature_name(".toaster.ndb.tmp"));
    CHECK(!clamav_db_is_signature_name("freshclam.dat"));
    CHECK(!clamav_db_is_signature_name("local.ign2"));
    CHECK(!clamav_db_is_signature_name("README"));

    char system_dir[256];
    char data_dir[256];
    make_temp_dir(system_dir, sizeof(system_dir));
    make_temp_dir(data_dir, sizeof(data_dir));
    char dir[CLAMAV_DB_PATH_BYTES];
    bool is_shipped = false;
    char want[512];

    /* Empty system directory (or only non-signature files): shipped. */
    write_str(system_dir, "freshclam.dat", "state");
    CHECK(!clamav_db_dir_has_database(system_dir));
    CHECK(clamav_db_choose(NULL, system_dir, data_dir, dir, sizeof(dir), &is_shipped) == 0);
    snprintf(want, sizeof(want), "%s/clamav", data_dir);
    CHECK_STR(dir, want);
    CHECK(is_shipped);
    CHECK(clamav_db_choose("", "/nonexistent/x", data_dir, dir, sizeof(dir), &is_shipped) == 0);
    CHECK(is_shipped);

    /* A database in the system directory: that one. */
    write_str(system_dir, "daily.cld", "not really a cld");
    CHECK(clamav_db_dir_has_database(system_dir));
    CHECK(clamav_db_choose(NULL, system_dir, data_dir, dir, sizeof(dir), &is_shipped) == 0);
    CHECK_STR(dir, system_dir);
    CHECK(!is_shipped);

    /* Configured: that directory, whatever it holds. */
    CHECK(clamav_db_choose("/srv/av", system_dir, data_dir, dir, sizeof(dir), &is_shipped) == 0);
    CHECK_STR(dir, "/srv/av");
    CHECK(!is_shipped);

    /* No data_dir for the shipped one; a path too long for the buffer. */
    CHECK(clamav_db_choose(NULL, "/nonexistent/x", NULL, dir, sizeof(dir), &is_shipped) ==
          -EINVAL);
    char small[8];
    CHECK(clamav_db_choose(NULL, "/nonexistent/x", data_dir, small, sizeof(small),
                           &is_shipped) == -ENAMETOOLONG);

    /* Writing the shipped files: a second write leaves them untouched. */
    snprintf(dir, sizeof(dir), "%s/clamav", data_dir);
    CHECK(clamav_db_shipped_file_count >= 2);
    CHECK(clamav_db_write_shipped(dir) == 0);
    CHECK(clamav_db_dir_has_database(dir));
    char path[4200];
    snprintf(path, sizeof(path), "%s/%s", dir, clamav_db_shipped_files[0].name);
    struct stat before;
    struct stat after;
    CHECK(stat(path, &before) == 0);
    CHECK((size_t)before.st_size == clamav_db_shipped_files[0].size);
    CHECK(clamav_db_write_shipped(dir) == 0);
    CHECK(stat(path, &after) == 0);
    CHECK(before.st_ino == after.st_ino);
    /* A damaged copy is rewritten. */
    write_str(dir, clamav_db_shipped_files[0].name, "damaged");
    CHECK(clamav_db_write_shipped(dir) == 0);
    CHECK(stat(path, &after) == 0);
    CHECK((size_t)after.st_size == clamav_db_shipped_files[0].size);
    /* A parent that does not exist. */
    CHECK(clamav_db_write_shipped("/nonexistent/toaster/clamav") == -ENOENT);

    remove_tree(system_dir);
    remove_tree(data_dir);
}

static void
test_shipped(void)
{
    char data_dir[256];
    uint64_t start_ms = now_ms();
    struct clamav *av = shipped_create(data_dir, sizeof(data_dir), NULL);
    struct clamav_status status = status_of(av);
    CHECK(status.generation == 1);
    CHECK(status.is_shipped);
    CHECK(status.signature_count == 4);
    CHECK(status.last_error == 0);
    CHECK(status.engines_alive == 1);
    printf("shipped database loaded in %llu ms (creation to engine: %llu ms)\n",
           (unsigned long long)status.load_ms, (unsigned long long)(now_ms() - start_ms));

    struct clamav_result result;
    /* EICAR as a plain file, and with a line end after it. */
    CHECK(scan_bytes(av, eicar, strlen(eicar), &result) == 0);
    CHECK(result.verdict == CLAMAV_VIRUS);
    CHECK_STR(result.name, "Eicar-Test-Signature");
    CHECK(result.engine_generation == 1);
    char eicar_line[100];
    snprintf(eicar_line, sizeof(eicar_line), "%s\r\n", eicar);
    CHECK(scan_bytes(av, eicar_line, strlen(eicar_line), &result) == 0);
    CHECK(result.verdict == CLAMAV_VIRUS);
    CHECK_STR(result.name, "Eicar-Test-Signature");

    /* EICAR as a base64 attachment of a mail message. */
    const unsigned char *parts[1] = {(const unsigned char *)eicar};
    size_t sizes[1] = {strlen(eicar)};
    size_t mail_len = 0;
    char *mail = mail_with_attachments(parts, sizes, 1, &mail_len);
    CHECK(scan_bytes(av, mail, mail_len, &result) == 0);
    CHECK(result.verdict == CLAMAV_VIRUS);
    CHECK_STR(result.name, "Eicar-Test-Signature");
    /* The same message without mail parsing would not show it: the base64
     * text itself does not hold the signature. */
    CHECK(strstr(mail, "EICAR") == NULL);
    free(mail);

    /* The ClamAV test program as an attachment, read from the package. */
    int exe_fd = open(TESTFILES_DIR "/clam.exe", O_RDONLY);
    if (exe_fd >= 0) {
        unsigned char exe[4096];
        ssize_t exe_len = read(exe_fd, exe, sizeof(exe));
        close(exe_fd);
        CHECK(exe_len > 0);
        parts[0] = exe;
        sizes[0] = (size_t)exe_len;
        mail = mail_with_attachments(parts, sizes, 1, &mail_len);
        CHECK(scan_bytes(av, mail, mail_len, &result) == 0);
        CHECK(result.verdict == CLAMAV_VIRUS);
        CHECK_STR(result.name, "Toaster.Test.ClamAV-Test-File");
        free(mail);
    }

    /* Clean mail: multipart text and HTML, and a clean attachment. */
    CHECK(scan_bytes(av, clean_mail, strlen(clean_mail), &result) == 0);
    CHECK(result.verdict == CLAMAV_CLEAN);
    CHECK_STR(result.name, "");
    static const unsigned char notes[] = "Meeting notes: EICAR is a test file, not a virus.\n";
    parts[0] = notes;
    sizes[0] = sizeof(notes) - 1;
    mail = mail_with_attachments(parts, sizes, 1, &mail_len);
    CHECK(scan_bytes(av, mail, mail_len, &result) == 0);
    CHECK(result.verdict == CLAMAV_CLEAN);
    free(mail);
    /* EICAR not at the start of a file is not EICAR (as the standard says). */
    char quoted[200];
    snprintf(quoted, sizeof(quoted), "The test string is: %s\n", eicar);
    CHECK(scan_bytes(av, quoted, strlen(quoted), &result) == 0);
    CHECK(result.verdict == CLAMAV_CLEAN);

    /* A descriptor that is not a regular file is an error, not clean. */
    CHECK(clamav_scan_fd(av, -1, &result) == -EBADF);
    CHECK(result.verdict == CLAMAV_ERROR);
    int pipe_fds[2];
    CHECK(pipe(pipe_fds) == 0);
    CHECK(clamav_scan_fd(av, pipe_fds[0], &result) == -EBADF);
    CHECK(result.verdict == CLAMAV_ERROR);
    close(pipe_fds[0]);
    close(pipe_fds[1]);

    CHECK_STR(clamav_verdict_name(CLAMAV_CLEAN), "clean");
    CHECK_STR(clamav_verdict_name(CLAMAV_VIRUS), "virus");
    CHECK_STR(clamav_verdict_name(CLAMAV_NOT_READY), "not-ready");
    CHECK_STR(clamav_verdict_name(CLAMAV_ERROR), "error");

    /* The shipped files are where the report says. */
    char path[512];
    snprintf(path, sizeof(path), "%s/clamav/toaster.ndb", data_dir);
    CHECK(access(path, R_OK) == 0);

    clamav_destroy(&av);
    CHECK(av == NULL);
    remove_tree(data_dir);
}

/* Every file of Debian's clamav-testfiles holds the ClamAV test program in
 * some wrapping (packed, archived, encoded, embedded in a document). */
static void
test_testfiles(void)
{
    DIR *dir = opendir(TESTFILES_DIR);
    if (dir == NULL) {
        printf("SKIP test_testfiles: %s missing (apt-get install clamav-testfiles)\n",
               TESTFILES_DIR);
        return;
    }
    char data_dir[256];
    struct clamav *av = shipped_create(data_dir, sizeof(data_dir), NULL);
    unsigned file_count = 0;
    struct dirent *entry;
    while ((entry = readdir(dir)) != NULL) {
        if (entry->d_name[0] == '.') {
            continue;
        }
        char path[512];
        snprintf(path, sizeof(path), "%s/%s", TESTFILES_DIR, entry->d_name);
        int fd = open(path, O_RDONLY);
        CHECK(fd >= 0);
        if (fd < 0) {
            continue;
        }
        struct clamav_result result;
        CHECK(clamav_scan_fd(av, fd, &result) == 0);
        close(fd);
        bool is_detected = result.verdict == CLAMAV_VIRUS &&
                           strcmp(result.name, "Toaster.Test.ClamAV-Test-File") == 0;
        if (!is_detected) {
            fprintf(stderr, "%s: %s %s\n", entry->d_name, clamav_verdict_name(result.verdict),
                    result.name);
        }
        CHECK(is_detected);
        file_count++;
    }
    closedir(dir);
    printf("clamav-testfiles: %u files scanned\n", file_count);
    CHECK(file_count >= 40);
    clamav_destroy(&av);
    remove_tree(data_dir);
}

/* No database yet: scans answer not-ready (never clean) until one loads. */
static void
test_not_ready_then_ready(void)
{
    char db_dir[256];
    make_temp_dir(db_dir, sizeof(db_dir));
    struct clamav_config config;
    clamav_config_defaults(&config);
    config.db_dir = db_dir;
    config.is_watching = false; /* only the explicit reload loads */
    struct clamav *av = NULL;
    CHECK(clamav_create(&config, &av) == 0);
    CHECK(wait_loads(av, 1));
    struct clamav_status status = status_of(av);
    CHECK(status.generation == 0);
    CHECK(status.load_fail_count == 1);
    CHECK(status.last_error != 0);
    CHECK(status.last_error_text[0] != '\0');

    uint64_t not_ready_before = clamav_log_count(CLAMAV_LOG_NOT_READY);
    struct clamav_result result;
    CHECK(scan_bytes(av, eicar, strlen(eicar), &result) == -EAGAIN);
    CHECK(result.verdict == CLAMAV_NOT_READY);
    CHECK(result.engine_generation == 0);
    CHECK(scan_bytes(av, clean_mail, strlen(clean_mail), &result) == -EAGAIN);
    CHECK(result.verdict == CLAMAV_NOT_READY);
    CHECK(clamav_log_count(CLAMAV_LOG_NOT_READY) == not_ready_before + 2);

    char hex[200];
    hex_of(eicar, hex);
    char line[300];
    snprintf(line, sizeof(line), "Local.Eicar:0:0:%s\n", hex);
    write_str(db_dir, "local.ndb", line);
    clamav_reload(av);
    CHECK(wait_generation(av, 1));
    status = status_of(av);
    CHECK(!status.is_shipped);
    CHECK(status.last_error == 0);
    CHECK(scan_bytes(av, eicar, strlen(eicar), &result) == 0);
    CHECK(result.verdict == CLAMAV_VIRUS);
    /* Not the shipped database: libclamav's marker stays on the name. */
    CHECK_STR(result.name, "Local.Eicar.UNOFFICIAL");
    clamav_destroy(&av);
    remove_tree(db_dir);
}

/* A broken database file: the load fails, is reported, and the engine in
 * use keeps scanning. */
static void
test_broken_db_keeps_engine(void)
{
    char db_dir[256];
    make_temp_dir(db_dir, sizeof(db_dir));
    char hex[200];
    hex_of(eicar, hex);
    char line[300];
    snprintf(line, sizeof(line), "Local.Eicar:0:0:%s\n", hex);
    write_str(db_dir, "local.ndb", line);

    struct clamav_config config;
    clamav_config_defaults(&config);
    config.db_dir = db_dir;
    config.is_watching = false;
    struct clamav *av = NULL;
    CHECK(clamav_create(&config, &av) == 0);
    CHECK(wait_generation(av, 1));

    write_str(db_dir, "broken.ndb", "Broken.Sig:0:*:zz-not-hex\nno colons at all\n");
    clamav_reload(av);
    CHECK(wait_loads(av, 2));
    struct clamav_status status = status_of(av);
    CHECK(status.generation == 1);
    CHECK(status.load_fail_count == 1);
    CHECK(status.last_error != 0);
    printf("broken database reported as: %s\n", status.last_error_text);
    CHECK(status.engines_alive == 1);
    struct clamav_result result;
    CHECK(scan_bytes(av, eicar, strlen(eicar), &result) == 0);
    CHECK(result.verdict == CLAMAV_VIRUS);
    CHECK(result.engine_generation == 1);

    /* Repaired: the next reload succeeds and clears the error. */
    char path[512];
    snprintf(path, sizeof(path), "%s/broken.ndb", db_dir);
    CHECK(unlink(path) == 0);
    clamav_reload(av);
    CHECK(wait_generation(av, 2));
    status = status_of(av);
    CHECK(status.last_error == 0);
    CHECK(wait_engines_alive(av, 1));
    clamav_destroy(&av);
    remove_tree(db_dir);
}

/* A new signature file in the watched directory reloads on its own. */
static void
test_watch_reloads(void)
{
    char db_dir[256];
    make_temp_dir(db_dir, sizeof(db_dir));
    char hex[200];
    hex_of(eicar, hex);
    char line[300];
    snprintf(line, sizeof(line), "Local.Eicar:0:0:%s\n", hex);
    write_str(db_dir, "local.ndb", line);

    struct clamav_config config;
    clamav_config_defaults(&config);
    config.db_dir = db_dir;
    config.watch_debounce_ms = 100;
    struct clamav *av = NULL;
    CHECK(clamav_create(&config, &av) == 0);
    CHECK(wait_generation(av, 1));

    static const char pattern[] = "toaster watch test pattern 7c1e9a";
    struct clamav_result result;
    CHECK(scan_bytes(av, pattern, sizeof(pattern) - 1, &result) == 0);
    CHECK(result.verdict == CLAMAV_CLEAN);

    /* A file that is not a database does not reload. */
    write_str(db_dir, "notes.txt", "not a database\n");
    sleep_ms(400);
    CHECK(status_of(av).load_count == 1);

    char pattern_hex[200];
    hex_of(pattern, pattern_hex);
    snprintf(line, sizeof(line), "Toaster.Test.Watch:0:*:%s\n", pattern_hex);
    uint64_t written_ms = now_ms();
    write_str(db_dir, "new.ndb", line);
    CHECK(wait_generation(av, 2));
    printf("watch: the new engine was in %llu ms after the write (debounce 100 ms)\n",
           (unsigned long long)(now_ms() - written_ms));
    CHECK(status_of(av).load_count == 2);
    CHECK(scan_bytes(av, pattern, sizeof(pattern) - 1, &result) == 0);
    CHECK(result.verdict == CLAMAV_VIRUS);
    CHECK_STR(result.name, "Toaster.Test.Watch.UNOFFICIAL");
    CHECK(result.engine_generation == 2);

    /* Several writes in a row: one reload after the quiet time. */
    for (int i = 0; i < 5; i++) {
        char name[32];
        snprintf(name, sizeof(name), "burst%d.ndb", i);
        snprintf(line, sizeof(line), "Toaster.Test.Burst%d:0:*:%s%02x\n", i, pattern_hex, i);
        write_str(db_dir, name, line);
        sleep_ms(20);
    }
    CHECK(wait_generation(av, 3));
    sleep_ms(400);
    CHECK(status_of(av).generation == 3);

    /* A deleted signature file reloads too, and the pattern is gone. */
    char path[512];
    snprintf(path, sizeof(path), "%s/new.ndb", db_dir);
    CHECK(unlink(path) == 0);
    CHECK(wait_generation(av, 4));
    CHECK(scan_bytes(av, pattern, sizeof(pattern) - 1, &result) == 0);
    CHECK(result.verdict == CLAMAV_CLEAN);
    clamav_destroy(&av);
    remove_tree(db_dir);
}

/* libclamav extracts attachments into tmp_dir: a usable one works, and one
 * it cannot write into fails the scan (451), it does not pass the mail. */
static void
test_tmp_dir(void)
{
    char tmp_dir[256];
    make_temp_dir(tmp_dir, sizeof(tmp_dir));
    struct clamav_config config;
    clamav_config_defaults(&config);
    config.tmp_dir = tmp_dir;
    char data_dir[256];
    struct clamav *av = shipped_create(data_dir, sizeof(data_dir), &config);
    const unsigned char *parts[1] = {(const unsigned char *)eicar};
    size_t sizes[1] = {strlen(eicar)};
    size_t mail_len = 0;
    char *mail = mail_with_attachments(parts, sizes, 1, &mail_len);
    struct clamav_result result;
    CHECK(scan_bytes(av, mail, mail_len, &result) == 0);
    CHECK(result.verdict == CLAMAV_VIRUS);
    CHECK(scan_bytes(av, clean_mail, strlen(clean_mail), &result) == 0);
    CHECK(result.verdict == CLAMAV_CLEAN);
    /* Nothing is left behind in it. */
    DIR *dir = opendir(tmp_dir);
    unsigned left = 0;
    struct dirent *entry;
    while (dir != NULL && (entry = readdir(dir)) != NULL) {
        left += entry->d_name[0] != '.';
    }
    if (dir != NULL) {
        closedir(dir);
    }
    CHECK(left == 0);
    clamav_destroy(&av);
    remove_tree(data_dir);

    char missing[300];
    snprintf(missing, sizeof(missing), "%s/missing", tmp_dir);
    config.tmp_dir = missing;
    av = shipped_create(data_dir, sizeof(data_dir), &config);
    int rc = scan_bytes(av, mail, mail_len, &result);
    printf("tmp_dir missing: %s %s (rc %d)\n", clamav_verdict_name(result.verdict), result.name, rc);
    CHECK(result.verdict == CLAMAV_ERROR);
    CHECK(rc < 0);
    clamav_destroy(&av);
    remove_tree(data_dir);
    remove_tree(tmp_dir);
    free(mail);
}

/* ---- swaps under load -------------------------------------------------- */

struct stress_arg {
    struct clamav *av;
    int            eicar_fd;
    int            clean_fd;
    int            zip_fd; /* -1 without clamav-testfiles */
    unsigned       scans;
    unsigned       wrong;
    uint64_t       generation_max;
};

static void *
stress_main(void *p)
{
    struct stress_arg *arg = p;
    for (unsigned i = 0; i < arg->scans; i++) {
        struct clamav_result result;
        int kind = (int)(i % 3);
        int fd = kind == 0 ? arg->eicar_fd : kind == 1 ? arg->clean_fd : arg->zip_fd;
        if (fd < 0) {
            fd = arg->eicar_fd;
            kind = 0;
        }
        int rc = clamav_scan_fd(arg->av, fd, &result);
        bool is_right = rc == 0 && (kind == 1 ? result.verdict == CLAMAV_CLEAN
                                              : result.verdict == CLAMAV_VIRUS);
        if (!is_right) {
            arg->wrong++;
        }
        if (result.engine_generation > arg->generation_max) {
            arg->generation_max = result.engine_generation;
        }
    }
    return NULL;
}

static void
test_swap_under_load(void)
{
    char data_dir[256];
    struct clamav *av = shipped_create(data_dir, sizeof(data_dir), NULL);
    int eicar_fd = temp_fd(eicar, strlen(eicar));
    int clean_fd = temp_fd(clean_mail, strlen(clean_mail));
    int zip_fd = open(TESTFILES_DIR "/clam.zip", O_RDONLY);

    enum { THREADS = 4, SCANS = 150, RELOADS = 20 };
    pthread_t threads[THREADS];
    struct stress_arg args[THREADS];
    for (int t = 0; t < THREADS; t++) {
        args[t] = (struct stress_arg){.av = av, .eicar_fd = eicar_fd, .clean_fd = clean_fd,
                                      .zip_fd = zip_fd, .scans = SCANS};
        CHECK(pthread_create(&threads[t], NULL, stress_main, &args[t]) == 0);
    }
    uint64_t reloads_seen = 0;
    for (int r = 0; r < RELOADS; r++) {
        uint64_t generation = status_of(av).generation;
        clamav_reload(av);
        if (wait_generation(av, generation + 1)) {
            reloads_seen++;
        }
        /* Never more than two engines: a new load waits for the retired
         * engine's last scan. */
        CHECK(status_of(av).engines_alive <= 2);
    }
    unsigned wrong = 0;
    uint64_t generation_max = 0;
    for (int t = 0; t < THREADS; t++) {
        CHECK(pthread_join(threads[t], NULL) == 0);
        wrong += args[t].wrong;
        if (args[t].generation_max > generation_max) {
            generation_max = args[t].generation_max;
        }
    }
    CHECK(wrong == 0);
    CHECK(reloads_seen == RELOADS);
    CHECK(status_of(av).generation == 1 + RELOADS);
    CHECK(generation_max > 1); /* the scans did see swaps */
    printf("swap under load: %d scans on %d threads, %d reloads, scans saw up to engine %llu\n",
           THREADS * SCANS, THREADS, RELOADS, (unsigned long long)generation_max);
    /* Retired engines go once their scans are over. */
    CHECK(wait_engines_alive(av, 1));
    close(eicar_fd);
    close(clean_fd);
    if (zip_fd >= 0) {
        close(zip_fd);
    }
    clamav_destroy(&av);
    remove_tree(data_dir);
}

/* A reference held across swaps keeps its engine alive and usable; the
 * engine goes only when the reference does, and no third engine is loaded
 * meanwhile (two at most). */
static void
test_held_engine_survives_swap(void)
{
    char data_dir[256];
    struct clamav *av = shipped_create(data_dir, sizeof(data_dir), NULL);
    struct clamav_engine *held = clamav_engine_acquire(av);
    CHECK(held != NULL);
    CHECK(clamav_engine_generation(held) == 1);
    CHECK(clamav_engine_is_shipped(held));

    clamav_reload(av);
    CHECK(wait_generation(av, 2));
    CHECK(status_of(av).engines_alive == 2);
    /* Another reload waits: the retired engine is still held. */
    clamav_reload(av);
    sleep_ms(200);
    CHECK(status_of(av).generation == 2);
    CHECK(status_of(av).engines_alive == 2);

    /* The held engine still scans (libclamav directly, as clamav_scan does). */
    int fd = temp_fd(eicar, strlen(eicar));
    struct cl_scan_options options;
    memset(&options, 0, sizeof(options));
    options.parse = ~0u;
    const char *name = NULL;
    unsigned long scanned = 0;
    CHECK(cl_scandesc(fd, NULL, &name, &scanned, clamav_engine_cl(held), &options) == CL_VIRUS);
    CHECK(name != NULL && strncmp(name, "Eicar-Test-Signature", 20) == 0);
    /* New scans use the new engine meanwhile. */
    struct clamav_result result;
    CHECK(clamav_scan_fd(av, fd, &result) == 0);
    CHECK(result.verdict == CLAMAV_VIRUS);
    CHECK(result.engine_generation == 2);
    close(fd);

    clamav_engine_release(av, held);
    /* Released: the old engine is freed, then the waiting reload runs. */
    CHECK(wait_generation(av, 3));
    CHECK(wait_engines_alive(av, 1));
    clamav_destroy(&av);
    remove_tree(data_dir);
}

/* ---- limits ------------------------------------------------------------- */

static void
test_limits(void)
{
    /* A message above max_file_bytes is not scanned (as clamd): clean with
     * is_over_limit, or a detection with alert_exceeds_max. At the limit
     * it is scanned. */
    enum { LIMIT = 64 * 1024 };
    struct clamav_config config;
    clamav_config_defaults(&config);
    config.max_file_bytes = LIMIT;
    char data_dir[256];
    struct clamav *av = shipped_create(data_dir, sizeof(data_dir), &config);

    char *big = malloc(LIMIT + 1);
    unsigned char *filler = malloc(256 * 1024);
    if (big == NULL || filler == NULL) {
        perror("malloc");
        exit(2);
    }
    memset(big, 'a', LIMIT + 1);
    memcpy(big, eicar, strlen(eicar));
    struct clamav_result result;
    CHECK(scan_bytes(av, big, LIMIT, &result) == 0); /* max */
    CHECK(result.verdict == CLAMAV_VIRUS);
    CHECK(!result.is_over_limit);
    /* libclamav counts what it read in 4 KiB units. */
    CHECK(result.scanned_bytes <= LIMIT);
    memcpy(big, "Zz", 2); /* no longer EICAR */
    CHECK(scan_bytes(av, big, LIMIT, &result) == 0);
    CHECK(result.verdict == CLAMAV_CLEAN);
    CHECK(result.scanned_bytes >= LIMIT - 4096);
    memcpy(big, eicar, strlen(eicar));
    CHECK(scan_bytes(av, big, LIMIT - 1, &result) == 0); /* max - 1 */
    CHECK(result.verdict == CLAMAV_VIRUS);
    CHECK(scan_bytes(av, big, LIMIT + 1, &result) == 0); /* max + 1 */
    CHECK(result.verdict == CLAMAV_CLEAN);
    CHECK(result.is_over_limit);
    CHECK_STR(result.limit, "MaxFileSize");
    CHECK_STR(result.name, "");
    clamav_destroy(&av);
    remove_tree(data_dir);

    config.alert_exceeds_max = true;
    av = shipped_create(data_dir, sizeof(data_dir), &config);
    CHECK(scan_bytes(av, big, LIMIT + 1, &result) == 0);
    CHECK(result.verdict == CLAMAV_VIRUS);
    CHECK_STR(result.name, "Heuristics.Limits.Exceeded.MaxFileSize");
    CHECK(result.is_over_limit);
    CHECK(scan_bytes(av, big, LIMIT, &result) == 0);
    CHECK_STR(result.name, "Eicar-Test-Signature");
    clamav_destroy(&av);
    remove_tree(data_dir);
    free(big);

    /* max_scan_bytes: libclamav stops reading a message's parts once this
     * much was scanned; EICAR after a large clean attachment is then not
     * reached. Below the limit it is. */
    enum { FILLER = 256 * 1024 };
    for (size_t i = 0; i < FILLER; i++) {
        filler[i] = (unsigned char)('A' + (i * 7) % 26);
    }
    const unsigned char *parts[2] = {filler, (const unsigned char *)eicar};
    size_t sizes[2] = {FILLER, strlen(eicar)};
    size_t mail_len = 0;
    char *mail = mail_with_attachments(parts, sizes, 2, &mail_len);

    clamav_config_defaults(&config);
    config.max_scan_bytes = 1024 * 1024;
    av = shipped_create(data_dir, sizeof(data_dir), &config);
    CHECK(scan_bytes(av, mail, mail_len, &result) == 0);
    CHECK(result.verdict == CLAMAV_VIRUS);
    CHECK(!result.is_over_limit);
    clamav_destroy(&av);
    remove_tree(data_dir);

    config.max_scan_bytes = 128 * 1024;
    av = shipped_create(data_dir, sizeof(data_dir), &config);
    CHECK(scan_bytes(av, mail, mail_len, &result) == 0);
    CHECK(result.verdict == CLAMAV_CLEAN);
    CHECK(result.is_over_limit);
    CHECK_STR(result.limit, "MaxScanSize");
    clamav_destroy(&av);
    remove_tree(data_dir);

    config.alert_exceeds_max = true;
    av = shipped_create(data_dir, sizeof(data_dir), &config);
    CHECK(scan_bytes(av, mail, mail_len, &result) == 0);
    CHECK(result.verdict == CLAMAV_VIRUS);
    CHECK_STR(result.name, "Heuristics.Limits.Exceeded.MaxScanSize");
    CHECK(result.is_over_limit);
    clamav_destroy(&av);
    remove_tree(data_dir);

    /* max_files: the EICAR attachment is the third file of the message
     * (body text, filler, EICAR); with two files allowed it is not reached. */
    clamav_config_defaults(&config);
    config.max_files = 2;
    av = shipped_create(data_dir, sizeof(data_dir), &config);
    CHECK(scan_bytes(av, mail, mail_len, &result) == 0);
    CHECK(result.verdict == CLAMAV_CLEAN);
    CHECK(result.is_over_limit);
    printf("max_files 2: clean, limit %s\n", result.limit);
    clamav_destroy(&av);
    remove_tree(data_dir);
    config.max_files = 10;
    av = shipped_create(data_dir, sizeof(data_dir), &config);
    CHECK(scan_bytes(av, mail, mail_len, &result) == 0);
    CHECK(result.verdict == CLAMAV_VIRUS);
    clamav_destroy(&av);
    remove_tree(data_dir);

    /* max_scan_time_ms: a scan past its time budget is an error (the
     * message is deferred, 451), not clean. 1 ms cannot cover decoding
     * forty attachments. */
    const unsigned char *many[40];
    size_t many_sizes[40];
    for (size_t i = 0; i < 40; i++) {
        many[i] = filler;
        many_sizes[i] = FILLER;
    }
    size_t many_len = 0;
    char *many_mail = mail_with_attachments(many, many_sizes, 40, &many_len);
    clamav_config_defaults(&config);
    config.max_scan_time_ms = 1;
    config.heuristic_alerts = false; /* the time limit holds without them */
    av = shipped_create(data_dir, sizeof(data_dir), &config);
    uint64_t timeouts_before = clamav_log_count(CLAMAV_LOG_SCAN_ERROR_FIRST + CL_ETIMEOUT);
    CHECK(scan_bytes(av, many_mail, many_len, &result) == -ETIMEDOUT);
    CHECK(result.verdict == CLAMAV_ERROR);
    CHECK(result.cl_error == CL_ETIMEOUT);
    CHECK_STR(result.limit, "MaxScanTime");
    printf("over max_scan_time: %s after %llu us\n", result.name,
           (unsigned long long)result.scan_us);
    /* A second one is counted, and not logged again within the minute. */
    CHECK(scan_bytes(av, many_mail, many_len, &result) == -ETIMEDOUT);
    CHECK(clamav_log_count(CLAMAV_LOG_SCAN_ERROR_FIRST + CL_ETIMEOUT) == timeouts_before + 2);
    clamav_destroy(&av);
    remove_tree(data_dir);
    /* The same message within the default time limit is clean. */
    clamav_config_defaults(&config);
    av = shipped_create(data_dir, sizeof(data_dir), &config);
    CHECK(scan_bytes(av, many_mail, many_len, &result) == 0);
    CHECK(result.verdict == CLAMAV_CLEAN);
    CHECK(!result.is_over_limit);
    printf("a %zu-byte message with 40 attachments scanned in %llu us\n", many_len,
           (unsigned long long)result.scan_us);
    clamav_destroy(&av);
    remove_tree(data_dir);
    free(many_mail);
    free(mail);
    free(filler);
}

int
main(void)
{
    test_config_check();
    test_db_choice();
    test_shipped();
    test_testfiles();
    test_not_ready_then_ready();
    test_broken_db_keeps_engine();
    test_watch_reloads();
    test_tmp_dir();
    test_held_engine_survives_swap();
    test_swap_under_load();
    test_limits();
    UNIT_DONE();
}
