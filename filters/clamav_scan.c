/*
 * filters/clamav_scan.c - one message through cl_scandesc (see
 * clamav_scan.h).
 *
 * Owns the scan options and the mapping of libclamav's answers to a
 * verdict. Runs on worker threads, any number at once; blocks for the scan
 * (bounded by max_scan_time_ms). Allocates nothing itself; libclamav
 * allocates within the engine's limits and frees before returning.
 * Limits: CLAMAV_NAME_BYTES per name, the scan limits of the engine.
 */
#define _GNU_SOURCE
#include "filters/clamav_scan.h"

#include <assert.h>
#include <clamav.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "core/assertions.h"
#include "filters/clamav_log.h"

#define CLAMAV_LIMIT_PREFIX "Heuristics.Limits.Exceeded."

static_assert(CL_SUCCESS == 0, "cl_error_t starts at success");

static void clamav_scan_copy_name(char *name_out, const char *name);
static void clamav_scan_strip_unofficial(char *name);
static uint64_t clamav_scan_now_us(void);

int
clamav_scan_fd(struct clamav *clamav, int fd, struct clamav_result *result_out)
{
    ASSERT(clamav != NULL);
    ASSERT(result_out != NULL);
    memset(result_out, 0, sizeof(*result_out));
    uint64_t start_us = clamav_scan_now_us();

    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        result_out->verdict = CLAMAV_ERROR;
        result_out->cl_error = CL_EARG;
        clamav_scan_copy_name(result_out->name, "the message is not a readable file");
        clamav_log_limited(CLAMAV_LOG_SCAN_ERROR_FIRST + CL_EARG,
                           "scan: descriptor %d is not a regular file", fd);
        return -EBADF;
    }

    struct clamav_engine *engine = clamav_engine_acquire(clamav);
    if (engine == NULL) {
        result_out->verdict = CLAMAV_NOT_READY;
        clamav_log_limited(CLAMAV_LOG_NOT_READY,
                           "scan: no engine loaded yet, messages are deferred (451)");
        return -EAGAIN;
    }
    result_out->engine_generation = clamav_engine_generation(engine);
    bool is_file_too_big = (uint64_t)st.st_size > clamav_engine_max_file_bytes(clamav);

    struct cl_scan_options options;
    memset(&options, 0, sizeof(options));
    /* Every parser, as clamd enables them by default: a message's
     * attachments may be anything. */
    options.parse = CL_SCAN_PARSE_ARCHIVE | CL_SCAN_PARSE_ELF | CL_SCAN_PARSE_PDF |
                    CL_SCAN_PARSE_SWF | CL_SCAN_PARSE_HWP3 | CL_SCAN_PARSE_XMLDOCS |
                    CL_SCAN_PARSE_MAIL | CL_SCAN_PARSE_OLE2 | CL_SCAN_PARSE_HTML |
                    CL_SCAN_PARSE_PE | CL_SCAN_PARSE_ONENOTE | CL_SCAN_PARSE_IMAGE |
                    CL_SCAN_PARSE_IMAGE_FUZZY_HASH;
    if (clamav_engine_heuristic_alerts(clamav)) {
        options.general |= CL_SCAN_GENERAL_HEURISTICS;
    }
    /* Always on, whatever alert_exceeds_max says: without it libclamav
     * answers "clean" for a scan it cut short, even one stopped by the time
     * limit (it fails open). With it, a limit hit is reported by name, a real
     * detection still takes precedence, and the mapping below decides. */
    options.heuristic |= CL_SCAN_HEURISTIC_EXCEEDS_MAX;
    /* options.mail: CL_SCAN_MAIL_PARTIAL_MESSAGE stays off (message/partial
     * reassembly needs a shared temporary store, as clamd's default). */

    const char *virus_name = NULL;
    unsigned long scanned = 0;
    struct clamav_scan_messages messages = {.magic = CLAMAV_SCAN_MESSAGES_MAGIC};
    clamav_scan_messages_begin(&messages);
    cl_error_t err = cl_scandesc_callback(fd, NULL, &virus_name, &scanned,
                                          clamav_engine_cl(engine), &options, &messages);
    clamav_scan_messages_end();
    /* The name points into the engine's signatures: copy it before the
     * reference goes. */
    if (err == CL_VIRUS) {
        /* libclamav names no signature when it refuses the whole file for
         * its size (it reports the name to a callback only). */
        if (virus_name == NULL) {
            virus_name = is_file_too_big ? CLAMAV_LIMIT_PREFIX "MaxFileSize" : "Unnamed.Detection";
        }
        clamav_scan_copy_name(result_out->name, virus_name);
        if (clamav_engine_is_shipped(engine)) {
            clamav_scan_strip_unofficial(result_out->name);
        }
    }
    clamav_engine_release(clamav, engine);
    result_out->scanned_bytes = (uint64_t)scanned * CL_COUNT_PRECISION;
    result_out->scan_us = clamav_scan_now_us() - start_us;

    bool is_limit = err == CL_VIRUS && strncmp(result_out->name, CLAMAV_LIMIT_PREFIX,
                                               sizeof(CLAMAV_LIMIT_PREFIX) - 1) == 0;
    if (is_limit) {
        (void)snprintf(result_out->limit, sizeof(result_out->limit), "%s",
                       result_out->name + sizeof(CLAMAV_LIMIT_PREFIX) - 1);
        result_out->is_over_limit = true;
    }
    if (is_limit && strcmp(result_out->limit, "MaxScanTime") == 0) {
        err = CL_ETIMEOUT; /* an unfinished scan is no verdict: defer */
    } else if (is_limit && !clamav_engine_alert_exceeds_max(clamav)) {
        /* As clamd by default: what lies beyond a size or count limit is
         * not scanned, and the message passes; is_over_limit tells. */
        result_out->name[0] = '\0';
        err = CL_CLEAN;
    }
    if (err == CL_CLEAN &&
        result_out->scan_us / 1000u > clamav_engine_max_scan_time_ms(clamav)) {
        /* The time limit passed without libclamav saying so (it checks
         * between files): the scan may have been cut short. */
        err = CL_ETIMEOUT;
        (void)snprintf(result_out->limit, sizeof(result_out->limit), "MaxScanTime");
        result_out->is_over_limit = true;
    }

    bool is_incomplete = err == CL_CLEAN && messages.error_count > 0;
    if (err == CL_CLEAN && !is_incomplete) {
        result_out->verdict = CLAMAV_CLEAN;
        return 0;
    }
    if (err == CL_VIRUS) {
        result_out->verdict = CLAMAV_VIRUS;
        return 0;
    }
    result_out->verdict = CLAMAV_ERROR;
    if (is_incomplete) {
        /* "Clean" with an error on the way: some part was not scanned. The
         * error itself was logged (limited) by the message callback. */
        result_out->cl_error = CL_ERROR;
        clamav_scan_copy_name(result_out->name, messages.first_error);
        clamav_log_limited(CLAMAV_LOG_SCAN_ERROR_FIRST + CL_ERROR,
                           "scan incomplete: %s (the message is deferred, 451)",
                           result_out->name);
        return -EIO;
    }
    result_out->cl_error = (int)err;
    clamav_scan_copy_name(result_out->name, cl_strerror(err));
    uint32_t kind = CLAMAV_LOG_SCAN_ERROR_FIRST +
                    ((uint32_t)err < CLAMAV_LOG_SCAN_ERROR_KINDS ? (uint32_t)err
                                                                   : CLAMAV_LOG_SCAN_ERROR_KINDS - 1);
    clamav_log_limited(kind, "scan failed: %s (the message is deferred, 451)", cl_strerror(err));
    if (err == CL_ETIMEOUT) {
        return -ETIMEDOUT;
    }
    if (err == CL_EMEM) {
        return -ENOMEM;
    }
    return -EIO;
}

const char *
clamav_verdict_name(enum clamav_verdict verdict)
{
    switch (verdict) {
    case CLAMAV_CLEAN:
        return "clean";
    case CLAMAV_VIRUS:
        return "virus";
    case CLAMAV_NOT_READY:
        return "not-ready";
    case CLAMAV_ERROR:
        return "error";
    }
    ASSERT(!"unknown verdict");
    return "?";
}

/* ---- helpers ------------------------------------------------------------ */

/* Signature names come from database files; keep what an SMTP reply and a
 * log line can carry. */
static void
clamav_scan_copy_name(char *name_out, const char *name)
{
    size_t out = 0;
    for (size_t i = 0; name[i] != '\0' && out + 1 < CLAMAV_NAME_BYTES; i++) {
        unsigned char c = (unsigned char)name[i];
        name_out[out++] = (c > 0x20 && c < 0x7f && c != '\\') ? (char)c : (c == ' ' ? ' ' : '?');
    }
    name_out[out] = '\0';
}

/* libclamav marks a name from an unsigned database with ".UNOFFICIAL". The
 * shipped database is ours and unsigned by nature; its names are reported
 * as written (Eicar-Test-Signature, Toaster.Test.*). */
static void
clamav_scan_strip_unofficial(char *name)
{
    static const char suffix[] = ".UNOFFICIAL";
    size_t name_len = strlen(name);
    size_t suffix_len = sizeof(suffix) - 1;
    if (name_len > suffix_len && strcmp(name + name_len - suffix_len, suffix) == 0) {
        name[name_len - suffix_len] = '\0';
    }
}

static uint64_t
clamav_scan_now_us(void)
{
    struct timespec now;
    (void)clock_gettime(CLOCK_MONOTONIC, &now); /* cannot fail */
    return (uint64_t)now.tv_sec * 1000000u + (uint64_t)now.tv_nsec / 1000u;
}
