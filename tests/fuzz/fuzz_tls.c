/*
 * tests/fuzz/fuzz_tls.c - libFuzzer harness for core/tls: arbitrary bytes
 * as a client's ciphertext into a fresh server connection.
 *
 * The server is built once, from a self-signed certificate that
 * tls_server_create() makes in a temporary data_dir (removed at exit).
 * Each input is fed to a new tls_conn in pieces of varying sizes, each
 * from an exact-size heap copy so ASan sees any read past it, with out
 * buffers of varying sizes. After every call the promises of core/tls.h
 * are checked: in_used and out_len within bounds, all of a piece taken
 * unless out filled or the output is full, no plaintext before the
 * handshake, the output within TLS_OUTPUT_MAX, a failure that has a reason,
 * refuses writes and sticks. A broken property aborts.
 *
 * Build: meson setup -Dfuzz=true (clang), target fuzz_tls.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/config.h"
#include "core/tls.h"
#include "tests/fuzz/fuzz_check.h"

/* Calls per input; the input is at most -max_len anyway. */
#define FUZZ_ROUNDS_MAX 4096

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct config fuzz_config; /* large (the tls_sni table): not on the stack */
static struct tls_server *fuzz_server;
static char fuzz_dir[] = "/tmp/toaster-fuzz-tls-XXXXXX";

static void
fuzz_cleanup(void)
{
    char path[256];
    (void)snprintf(path, sizeof(path), "%s/tls/selfsigned.pem", fuzz_dir);
    (void)unlink(path);
    (void)snprintf(path, sizeof(path), "%s/tls/selfsigned.key", fuzz_dir);
    (void)unlink(path);
    (void)snprintf(path, sizeof(path), "%s/tls", fuzz_dir);
    (void)rmdir(path);
    (void)rmdir(fuzz_dir);
    tls_server_free(&fuzz_server);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    FUZZ_CHECK(mkdtemp(fuzz_dir) != NULL);
    memset(&fuzz_config, 0, sizeof(fuzz_config));
    (void)snprintf(fuzz_config.data_dir, sizeof(fuzz_config.data_dir), "%s", fuzz_dir);
    (void)snprintf(fuzz_config.myhostname, sizeof(fuzz_config.myhostname), "fuzz.example");
    char err[512];
    int rc = tls_server_create(&fuzz_config, &fuzz_server, err, sizeof(err));
    if (rc != 0) {
        (void)fprintf(stderr, "tls_server_create: %s\n", err);
    }
    FUZZ_CHECK(rc == 0);
    FUZZ_CHECK(atexit(fuzz_cleanup) == 0);
    return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* Record headers are 5 bytes and ClientHellos a few hundred: these
     * sizes split them at every kind of place. */
    static const size_t pieces[] = { 5, 1, 300, 2, 16389, 7, 65536, 3 };
    static const size_t out_sizes[] = { 16384, 1, 100, 4096 };
    static uint8_t out[16384];

    struct tls_conn *conn = tls_conn_new(fuzz_server);
    FUZZ_CHECK(conn != NULL);
    FUZZ_CHECK(!tls_conn_is_established(conn));
    FUZZ_CHECK(tls_conn_output(conn).len == 0);

    size_t pos = 0;
    for (size_t round = 0; round < FUZZ_ROUNDS_MAX && pos < size; round++) {
        size_t n = pieces[round % (sizeof(pieces) / sizeof(pieces[0]))];
        if (n > size - pos) {
            n = size - pos;
        }
        size_t out_bytes = out_sizes[round % (sizeof(out_sizes) / sizeof(out_sizes[0]))];
        uint8_t *piece = malloc(n);
        FUZZ_CHECK(piece != NULL);
        memcpy(piece, data + pos, n);

        size_t output_before = tls_conn_output(conn).len;
        size_t used = SIZE_MAX, got = SIZE_MAX;
        enum tls_status status = tls_conn_input(conn, piece, n, &used, out, out_bytes, &got);
        free(piece);

        FUZZ_CHECK(status == TLS_OK || status == TLS_CLOSED || status == TLS_FAILED);
        FUZZ_CHECK(used <= n);
        FUZZ_CHECK(got <= out_bytes);
        /* Nobody can finish a handshake with random bytes, but if the
         * fuzzer ever does, plaintext is allowed after it only. */
        if (got > 0) {
            FUZZ_CHECK(tls_conn_is_established(conn));
        }
        struct span output = tls_conn_output(conn);
        FUZZ_CHECK(output.len <= TLS_OUTPUT_MAX);
        FUZZ_CHECK(output.len >= output_before);
        if (status == TLS_OK && got < out_bytes && used < n) {
            /* Only a full output may stop the input early. */
            FUZZ_CHECK(output.len + TLS_RECORD_PLAIN_MAX > TLS_OUTPUT_MAX);
        }
        if (status == TLS_FAILED) {
            FUZZ_CHECK(tls_conn_failure(conn)[0] != '\0');
            FUZZ_CHECK(tls_conn_write(conn, (const uint8_t *)"x", 1) == -1);
        } else {
            FUZZ_CHECK(tls_conn_failure(conn)[0] == '\0');
        }
        if (status == TLS_OK && !tls_conn_is_established(conn)) {
            FUZZ_CHECK(tls_conn_write(conn, (const uint8_t *)"x", 1) == 0);
        }
        /* Send all of the output, or half of it, as a slow peer would. */
        if (output.len > 0) {
            tls_conn_output_sent(conn, round % 2 == 0 ? output.len : output.len / 2);
        }
        if (round % 5 == 4) {
            tls_conn_trim(conn);
        }
        pos += used;
        if (status != TLS_OK) {
            /* Once more: it must stick and take nothing. */
            size_t again_used = SIZE_MAX, again_got = SIZE_MAX;
            FUZZ_CHECK(tls_conn_input(conn, data, size, &again_used, out, sizeof(out),
                                      &again_got) == status);
            FUZZ_CHECK(again_used == 0 && again_got == 0);
            break;
        }
    }
    tls_conn_close_notify(conn);
    FUZZ_CHECK(tls_conn_output(conn).len <= TLS_OUTPUT_MAX);
    tls_conn_trim(conn);
    tls_conn_free(&conn);
    FUZZ_CHECK(conn == NULL);
    return 0;
}
