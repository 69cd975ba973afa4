/*
 * tests/fuzz/fuzz_managesieve.c - libFuzzer harness for the ManageSieve
 * reader and session (proto/managesieve), which read every byte a client
 * sends before and after login.
 *
 * The input is fed in pieces whose sizes come from its own bytes (so
 * literals and lines split everywhere); the owner's side answers each
 * request the way the listener would (logins alternate between success
 * and failure, script commands get a reply), so every state is reached.
 * Properties: nothing is consumed while a request is pending, output
 * stays within the session's buffer (drained as a client would read),
 * every big buffer lent is given back, and a script request's spans lie
 * inside the bytes the reader holds.
 *
 * Build: see tests/meson.build (fuzz_targets).
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/managesieve/managesieve_session.h"
#include "tests/fuzz/fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int big_live;

static char *
big_acquire(void *owner, size_t bytes)
{
    (void)owner;
    big_live++;
    return malloc(bytes);
}

static void
big_release(void *owner, char *buffer)
{
    (void)owner;
    big_live--;
    free(buffer);
}

static const struct managesieve_session_config config = {
    .implementation = "toaster fuzz",
    .sieve_extensions = "fileinto",
    .error_limit = 1000,
    .reader = { .line_bytes_max = 4096, .big_literal_bytes_max = 8192,
                .big_acquire = big_acquire, .big_release = big_release },
};

static void
answer(struct managesieve_session *s, unsigned *turn)
{
    switch (managesieve_session_take_request(s)) {
    case MANAGESIEVE_REQUEST_NONE:
        return;
    case MANAGESIEVE_REQUEST_AUTH:
        FUZZ_CHECK(strlen(managesieve_session_auth_user(s)) > 0);
        managesieve_session_auth_done(s, (*turn)++ % 2 == 0, NULL);
        return;
    case MANAGESIEVE_REQUEST_STARTTLS:
        managesieve_session_tls_started(s);
        return;
    case MANAGESIEVE_REQUEST_SCRIPT: {
        const struct managesieve_script_request *r = managesieve_session_script(s);
        /* Touch every byte: ASan says whether they are all there. */
        volatile unsigned sum = 0;
        for (size_t i = 0; i < r->script.len; i++) {
            sum += (unsigned char)r->script.ptr[i];
        }
        for (size_t i = 0; i < r->name.len; i++) {
            sum += (unsigned char)r->name.ptr[i];
        }
        (void)sum;
        managesieve_session_script_done(s, (*turn)++ % 3 == 0);
        return;
    }
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2) {
        return 0;
    }
    struct managesieve_session *s = malloc(sizeof(*s));
    FUZZ_CHECK(s != NULL);
    managesieve_session_init(s, &config, data[0] & 1, data[0] & 2, false);
    unsigned turn = 0;
    size_t at = 1;
    unsigned stuck = 0;
    while (at < size && !managesieve_session_is_closing(s) && stuck < 4) {
        size_t piece = 1 + data[at - 1] % 64;
        if (piece > size - at) {
            piece = size - at;
        }
        bool had_request = s->request != MANAGESIEVE_REQUEST_NONE;
        size_t used = managesieve_session_feed(s, (const char *)data + at, piece);
        FUZZ_CHECK(used <= piece);
        FUZZ_CHECK(!had_request || used == 0);
        at += used;
        stuck = used == 0 ? stuck + 1 : 0;
        FUZZ_CHECK(managesieve_session_output(s).len <= MANAGESIEVE_SESSION_OUT_BYTES);
        managesieve_session_output_sent(s, managesieve_session_output(s).len);
        answer(s, &turn);
    }
    managesieve_session_finish(s);
    FUZZ_CHECK(big_live == 0);
    free(s);
    return 0;
}
