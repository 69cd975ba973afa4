/*
 * tests/fuzz/fuzz_check.h - the one assertion every fuzz harness uses: a
 * property that must hold for any input; when it breaks, say which and
 * abort so libFuzzer keeps the input.
 */
#ifndef TOASTER_TESTS_FUZZ_CHECK_H
#define TOASTER_TESTS_FUZZ_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#define FUZZ_CHECK(expr)                                                                 \
    do {                                                                                 \
        if (!(expr)) {                                                                   \
            (void)fprintf(stderr, "%s:%d: property broken: %s\n", __FILE__, __LINE__,    \
                          #expr);                                                        \
            abort();                                                                     \
        }                                                                                \
    } while (0)

#endif
